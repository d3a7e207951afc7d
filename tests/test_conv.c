/* test_conv.c - the convolutional-network ops of backend.h (conv2d with bias/residual/ReLU, max/avg pooling,
 * adaptive average pooling, residual add) on the CPU backend against PyTorch (tests/ref/make_conv_fixtures.py),
 * thread-count independence, and argument checking. */
#include "backend.h"
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *cpu(int threads) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, threads) == PAD_OK);
    return be;
}

static float *fx(pad_st_file *f, const char *name) {
    return pad_fixture_f32(f, name, -1, NULL);
}

static float *fx_opt(pad_st_file *f, const char *name) {
    return pad_st_find(f, name) ? fx(f, name) : NULL;
}

// Runs conv case `name` of the fixture on be; returns the output (malloc'd) and its size.
static float *run_conv_case(pad_backend *be, pad_st_file *f, const char *name, size_t *n_out) {
    char key[64];
    snprintf(key, sizeof key, "conv_%s_shape", name);
    float *sh = fx(f, key);
    pad_conv2d_desc d = {.B = (int)sh[0],
                         .C = (int)sh[1],
                         .H = (int)sh[2],
                         .W = (int)sh[3],
                         .K = (int)sh[4],
                         .kh = (int)sh[5],
                         .kw = (int)sh[5],
                         .stride = (int)sh[6],
                         .pad = (int)sh[7],
                         .relu = sh[8] != 0.0f};
    free(sh);
    snprintf(key, sizeof key, "conv_%s_x", name);
    float *x = fx(f, key);
    snprintf(key, sizeof key, "conv_%s_w", name);
    float *w = fx(f, key);
    snprintf(key, sizeof key, "conv_%s_b", name);
    float *b = fx_opt(f, key);
    snprintf(key, sizeof key, "conv_%s_res", name);
    float *res = fx_opt(f, key);
    const int Ho = pad_conv_out_size(d.H, d.kh, d.stride, d.pad), Wo = pad_conv_out_size(d.W, d.kw, d.stride, d.pad);
    *n_out = (size_t)d.B * d.K * Ho * Wo;
    float *y = malloc(*n_out * sizeof(float));
    for (size_t i = 0; i < *n_out; i++)
        y[i] = NAN; // every output must be written
    cr_assert(pad_op_conv2d(be, &d, y, x, w, b, res) == PAD_OK, "conv %s", name);
    free(x);
    free(w);
    free(b);
    free(res);
    return y;
}

Test(conv, conv2d_matches_torch) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("conv_ops.safetensors");
    const char *cases[] = {"a", "b", "c", "d", "e", "f"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = 0;
        float *y = run_conv_case(be, f, cases[i], &n);
        char key[64];
        snprintf(key, sizeof key, "conv_%s_y", cases[i]);
        float *want = fx(f, key);
        cr_assert_eq(pad_st_find(f, key)->numel, (int64_t)n, "conv %s: output size", cases[i]);
        PAD_ASSERT_CLOSE(key, y, want, n, 1e-5, 1e-5);
        free(y);
        free(want);
    }
    pad_st_close(f);
    pad_backend_free(be);
}

Test(conv, conv2d_thread_independent) {
    pad_st_file *f = pad_fixture_open("conv_ops.safetensors");
    pad_backend *b1 = cpu(1), *b2 = cpu(2);
    const char *cases[] = {"a", "b", "e"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n1 = 0, n2 = 0;
        float *y1 = run_conv_case(b1, f, cases[i], &n1);
        float *y2 = run_conv_case(b2, f, cases[i], &n2);
        cr_assert(n1 == n2 && memcmp(y1, y2, n1 * sizeof(float)) == 0, "conv %s differs with the thread count",
                  cases[i]);
        free(y1);
        free(y2);
    }
    pad_backend_free(b1);
    pad_backend_free(b2);
    pad_st_close(f);
}

static void check_pool(pad_backend *be, pad_st_file *f, const char *xname, const char *yname, int k, int s, int p,
                       pad_pool_mode mode) {
    const pad_st_tensor *t = pad_st_find(f, xname);
    cr_assert(t);
    const int B = (int)t->shape[0], C = (int)t->shape[1], H = (int)t->shape[2], W = (int)t->shape[3];
    const int Ho = pad_conv_out_size(H, k, s, p), Wo = pad_conv_out_size(W, k, s, p);
    float *x = fx(f, xname), *want = fx(f, yname);
    cr_assert_eq(pad_st_find(f, yname)->numel, (int64_t)B * C * Ho * Wo);
    float *y = malloc(sizeof(float) * B * C * Ho * Wo);
    cr_assert(pad_op_pool2d(be, y, x, B, C, H, W, k, s, p, mode) == PAD_OK);
    PAD_ASSERT_CLOSE(yname, y, want, (size_t)B * C * Ho * Wo, 1e-6, 1e-6);
    free(x);
    free(want);
    free(y);
}

Test(conv, pools_match_torch) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("conv_ops.safetensors");
    check_pool(be, f, "maxpool_x", "maxpool_y", 3, 2, 1, PAD_POOL_MAX);
    check_pool(be, f, "avgpool_x", "avgpool_y", 3, 1, 1, PAD_POOL_AVG);
    check_pool(be, f, "avgpool2_x", "avgpool2_y", 2, 2, 0, PAD_POOL_AVG);
    float *x = fx(f, "adapt_x");
    float y[2 * 3 * 3 * 4];
    float *want = fx(f, "adapt_y34");
    cr_assert(pad_op_adaptive_avgpool2d(be, y, x, 2, 3, 7, 9, 3, 4) == PAD_OK);
    PAD_ASSERT_CLOSE("adaptive 3x4", y, want, 2 * 3 * 3 * 4, 1e-6, 1e-6);
    free(want);
    want = fx(f, "adapt_y11");
    cr_assert(pad_op_adaptive_avgpool2d(be, y, x, 2, 3, 7, 9, 1, 1) == PAD_OK);
    PAD_ASSERT_CLOSE("adaptive 1x1", y, want, 2 * 3, 1e-6, 1e-6);
    free(want);
    free(x);
    float *a = fx(f, "res_a"), *b = fx(f, "res_b");
    want = fx(f, "res_y");
    cr_assert(pad_op_residual_add(be, a, a, b, 50, true) == PAD_OK); // in place
    PAD_ASSERT_CLOSE("residual_add relu", a, want, 50, 0, 0);
    free(a);
    free(b);
    free(want);
    pad_st_close(f);
    pad_backend_free(be);
}

Test(conv, maxpool_ignores_padding_of_negative_maps) {
    // all-negative input: a padded max pool must return in-image values, never the zero padding
    pad_backend *be = cpu(1);
    float x[9], y[4];
    for (int i = 0; i < 9; i++)
        x[i] = -1.0f - (float)i;
    cr_assert(pad_op_pool2d(be, y, x, 1, 1, 3, 3, 3, 2, 1, PAD_POOL_MAX) == PAD_OK);
    const float want[4] = {-1.0f, -2.0f, -4.0f, -5.0f};
    PAD_ASSERT_CLOSE("maxpool negative", y, want, 4, 0, 0);
    // average pool counts the padding: the corner of a 3x3 window at pad 1 sees 4 samples, divided by 9
    cr_assert(pad_op_pool2d(be, y, x, 1, 1, 3, 3, 3, 2, 1, PAD_POOL_AVG) == PAD_OK);
    cr_assert_float_eq(y[0], (-1.0f - 2.0f - 4.0f - 5.0f) / 9.0f, 1e-6);
    pad_backend_free(be);
}

Test(conv, rejects_bad_arguments) {
    pad_backend *be = cpu(1);
    float x[16] = {0}, w[9] = {0}, y[16];
    pad_test_log_start();
    pad_conv2d_desc d = {.B = 1, .C = 1, .H = 4, .W = 4, .K = 1, .kh = 3, .kw = 3, .stride = 1, .pad = 1};
    cr_assert(pad_op_conv2d(be, &d, y, x, w, NULL, NULL) == PAD_OK);
    cr_assert(pad_op_conv2d(be, &d, x, x, w, NULL, NULL) == PAD_ERR_INVALID_ARG); // out aliases inp
    d.stride = 0;
    cr_assert(pad_op_conv2d(be, &d, y, x, w, NULL, NULL) == PAD_ERR_INVALID_ARG);
    d.stride = 1;
    d.kh = 7; // window larger than the padded input
    cr_assert(pad_op_conv2d(be, &d, y, x, w, NULL, NULL) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_op_pool2d(be, y, x, 1, 1, 4, 4, 3, 1, 2, PAD_POOL_AVG) == PAD_ERR_INVALID_ARG); // pad > k/2
    cr_assert(pad_op_adaptive_avgpool2d(be, y, x, 1, 1, 4, 4, 0, 1) == PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("bad argument");
    pad_test_log_stop();
    pad_backend_free(be);
}
