/* test_ops_text.c - the CPU ops of the text backward pass and of the prompt-learning loss against torch autograd
 * (tests/ref/ref_text.py, ops_text_grad.safetensors): attention forward/backward (causal and full), row L2
 * normalisation and its backward, cross-entropy with target 0, the EAM loss (per-sample and token-axis, two margins),
 * plus the dot product and thread-count independence. */
#include "backend.h"
#include "check.h"
#include "tiny_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *be;
static pad_st_file *fx;
static void setup(void) {
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    fx = pad_fixture_open("ops_text_grad.safetensors");
}
static void teardown(void) {
    pad_st_close(fx);
    pad_backend_free(be);
}
TestSuite(ops_text, .init = setup, .fini = teardown, .timeout = 60);

static float *get(const char *name, int ndim, const int64_t *shape) {
    return pad_fixture_f32(fx, name, ndim, shape);
}

static void attention_case(const char *tag, bool causal) {
    const int B = 2, T = 7, NH = 3, HS = 16, C = NH * HS;
    char nm[64];
#define GET(k, nd, ...) (snprintf(nm, sizeof nm, "attn_%s_%s", tag, k), get(nm, nd, (int64_t[]){__VA_ARGS__}))
    float *qkv = GET("qkv", 3, B, T, 3 * C), *att_want = GET("att", 4, B, NH, T, T);
    float *out_want = GET("out", 3, B, T, C), *dout = GET("dout", 3, B, T, C), *dqkv_want = GET("dqkv", 3, B, T, 3 * C);
#undef GET
    float *out = malloc(sizeof(float) * B * T * C), *att = malloc(sizeof(float) * B * NH * T * T);
    float *dqkv = malloc(sizeof(float) * B * T * 3 * C);
    memset(dqkv, 0xff, sizeof(float) * B * T * 3 * C); // NaN: every element must be written
    cr_assert(pad_op_attention(be, out, att, qkv, B, T, NH, HS, causal) == PAD_OK);
    PAD_ASSERT_CLOSE("attention out", out, out_want, (size_t)B * T * C, 1e-5, 1e-5);
    PAD_ASSERT_CLOSE("attention probabilities", att, att_want, (size_t)B * NH * T * T, 1e-6, 1e-5);
    cr_assert(pad_op_attention_backward(be, dqkv, dout, qkv, att, B, T, NH, HS, causal) == PAD_OK);
    PAD_ASSERT_CLOSE("attention dqkv", dqkv, dqkv_want, (size_t)B * T * 3 * C, 1e-5, 1e-4);
    free(qkv);
    free(att_want);
    free(out_want);
    free(dout);
    free(dqkv_want);
    free(out);
    free(att);
    free(dqkv);
}

Test(ops_text, attention_backward_causal) {
    attention_case("causal", true);
}

Test(ops_text, attention_backward_full) {
    attention_case("full", false);
}

Test(ops_text, attention_backward_thread_count_independent) {
    const int B = 3, T = 9, NH = 2, HS = 8, C = NH * HS;
    pad_rng rng = {5};
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = malloc(sizeof(float) * nq), *dout = malloc(sizeof(float) * no), *out = malloc(sizeof(float) * no);
    float *att = malloc(sizeof(float) * B * NH * T * T), *d1 = malloc(sizeof(float) * nq),
          *d2 = malloc(sizeof(float) * nq);
    pad_rng_fill(&rng, qkv, nq, -1, 1);
    pad_rng_fill(&rng, dout, no, -1, 1);
    pad_backend *be1;
    cr_assert(pad_backend_cpu_init(&be1, 1) == PAD_OK);
    cr_assert(pad_op_attention(be1, out, att, qkv, B, T, NH, HS, true) == PAD_OK);
    cr_assert(pad_op_attention_backward(be1, d1, dout, qkv, att, B, T, NH, HS, true) == PAD_OK);
    pad_backend_free(be1);
    cr_assert(pad_backend_cpu_init(&be1, 2) == PAD_OK);
    cr_assert(pad_op_attention_backward(be1, d2, dout, qkv, att, B, T, NH, HS, true) == PAD_OK);
    pad_backend_free(be1);
    cr_assert(memcmp(d1, d2, sizeof(float) * nq) == 0, "attention_backward depends on the thread count");
    free(qkv);
    free(dout);
    free(out);
    free(att);
    free(d1);
    free(d2);
}

Test(ops_text, l2norm_rows_and_backward) {
    const int M = 5, C = 33;
    float *x = get("l2n_x", 2, (int64_t[]){M, C}), *y_want = get("l2n_y", 2, (int64_t[]){M, C});
    float *n_want = get("l2n_norm", 1, (int64_t[]){M}), *dy = get("l2n_dy", 2, (int64_t[]){M, C});
    float *dx_want = get("l2n_dx", 2, (int64_t[]){M, C});
    float y[5 * 33], nrm[5], dx[5 * 33], xin[5 * 33];
    cr_assert(pad_op_l2norm_rows(be, y, nrm, x, M, C) == PAD_OK);
    PAD_ASSERT_CLOSE("l2norm", y, y_want, (size_t)M * C, 1e-7, 1e-6);
    PAD_ASSERT_CLOSE("l2norm norms", nrm, n_want, (size_t)M, 0, 1e-6);
    for (int i = 0; i < M * C; i++)
        dx[i] = 1.0f; // accumulates
    cr_assert(pad_op_l2norm_rows_backward(be, dx, dy, y, nrm, M, C) == PAD_OK);
    for (int i = 0; i < M * C; i++)
        dx[i] -= 1.0f;
    PAD_ASSERT_CLOSE("l2norm backward", dx, dx_want, (size_t)M * C, 1e-6, 1e-5);
    memcpy(xin, x, sizeof xin); // in place
    cr_assert(pad_op_l2norm_rows(be, xin, NULL, xin, M, C) == PAD_OK);
    cr_assert(memcmp(xin, y, sizeof xin) == 0);
    free(x);
    free(y_want);
    free(n_want);
    free(dy);
    free(dx_want);
}

Test(ops_text, cross_entropy_target_zero) {
    const int N = 7, K = 5;
    float *z = get("xent_z", 2, (int64_t[]){N, K}), *loss_want = get("xent_loss", 1, (int64_t[]){1});
    float *dz_want = get("xent_dz", 2, (int64_t[]){N, K});
    float loss, dz[35];
    cr_assert(pad_op_xent0(be, &loss, dz, z, N, K) == PAD_OK);
    PAD_ASSERT_CLOSE("xent loss", &loss, loss_want, 1, 0, 1e-6);
    PAD_ASSERT_CLOSE("xent dz", dz, dz_want, (size_t)N * K, 1e-7, 1e-5);
    free(z);
    free(loss_want);
    free(dz_want);
}

Test(ops_text, eam_loss_both_axes_and_margins) {
    const int B = 3, T = 4, D = 24;
    float *f = get("eam_f", 3, (int64_t[]){B, T, D}), *wn = get("eam_wn", 1, (int64_t[]){D});
    float *wa = get("eam_wa", 1, (int64_t[]){D});
    const char *axes[2] = {"rows", "tokens"};
    const float margins[2] = {0.0f, 0.3f};
    for (int a = 0; a < 2; a++)
        for (int mi = 0; mi < 2; mi++) {
            char nm[64], what[96];
            snprintf(nm, sizeof nm, "eam_%s%d_loss", axes[a], mi);
            float *lw = get(nm, 1, (int64_t[]){1});
            snprintf(nm, sizeof nm, "eam_%s%d_dwn", axes[a], mi);
            float *gnw = get(nm, 1, (int64_t[]){D});
            snprintf(nm, sizeof nm, "eam_%s%d_dwa", axes[a], mi);
            float *gaw = get(nm, 1, (int64_t[]){D});
            float loss = NAN, dwn[24], dwa[24];
            for (int d = 0; d < D; d++)
                dwn[d] = dwa[d] = 0.5f; // accumulates
            cr_assert(pad_op_eam_loss(be, &loss, dwn, dwa, f, wn, wa, B, T, D, a == 1, margins[mi]) == PAD_OK);
            for (int d = 0; d < D; d++) {
                dwn[d] -= 0.5f;
                dwa[d] -= 0.5f;
            }
            snprintf(what, sizeof what, "eam %s margin %.1f", axes[a], margins[mi]);
            cr_assert(loss > 0.0f, "%s: the case should have active hinges", what);
            PAD_ASSERT_CLOSE(what, &loss, lw, 1, 0, 1e-5);
            PAD_ASSERT_CLOSE(what, dwn, gnw, (size_t)D, 1e-6, 1e-5);
            PAD_ASSERT_CLOSE(what, dwa, gaw, (size_t)D, 1e-6, 1e-5);
            free(lw);
            free(gnw);
            free(gaw);
        }
    free(f);
    free(wn);
    free(wa);
}

Test(ops_text, dot_product) {
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {-1, 0.5f, 2, 0, 1}, out = 0;
    cr_assert(pad_op_dot(be, &out, a, b, 5, 2.0f) == PAD_OK);
    cr_assert(out == 2.0f * (-1 + 1 + 6 + 0 + 5));
    cr_assert(pad_op_dot(be, &out, a, a, 5, 1.0f) == PAD_OK && out == 55.0f);
}
