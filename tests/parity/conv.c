/* conv.c - parity checks of the convolutional engine (issue 13; docs/conv_methods.md): the conv ops (cuda/conv.cu on
 * cuDNN against host/backend/cpu_conv.c), PatchCore's ops (to_rows, knn_l2), the bottleneck ResNet (tiny fixture,
 * random wide_resnet50_2 at 224) and the PatchCore, PaDiM and SPADE baselines end to end, CUDA against CPU. */
#include "parity.h"

#include "padim.h"
#include "patchcore.h"
#include "resnet.h"
#include "spade.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void conv_case(const char *tag, pad_conv2d_desc d, bool bias, bool res) {
    const int Ho = pad_conv_out_size(d.H, d.kh, d.stride, d.pad), Wo = pad_conv_out_size(d.W, d.kw, d.stride, d.pad);
    const size_t nx = (size_t)d.B * d.C * d.H * d.W, ny = (size_t)d.B * d.K * Ho * Wo;
    const float a = 1.0f / sqrtf((float)(d.C * d.kh * d.kw));
    twin x = tw_rand(nx, -1, 1), w = tw_rand((size_t)d.K * d.C * d.kh * d.kw, -a, a), y = tw_nan(ny);
    twin b = bias ? tw_rand((size_t)d.K, -0.5f, 0.5f) : (twin){NULL, NULL, 0};
    twin r = res ? tw_rand(ny, -1, 1) : (twin){NULL, NULL, 0};
    char name[160];
    snprintf(name, sizeof name, "conv2d %s B%d C%d %dx%d K%d k%d s%d p%d%s%s%s", tag, d.B, d.C, d.H, d.W, d.K, d.kh,
             d.stride, d.pad, bias ? " +bias" : "", res ? " +res" : "", d.relu ? " relu" : "");
    double ms = 0;
    if (!selected(name)) goto done;
    TRY_OR_FAIL(name, pad_op_conv2d(pg.cpu, &d, y.c, x.c, w.c, b.c, r.c));
    TRY_OR_FAIL(name, pad_op_conv2d(pg.gpu, &d, y.d, x.d, w.d, b.d, r.d)); // plan + workspace made here
    const double t0 = t_begin();
    TRY_OR_FAIL(name, pad_op_conv2d(pg.gpu, &d, y.d, x.d, w.d, b.d, r.d)); // cached plan
    ms = t_end(t0);
    tw_check(name, &y, 1e-4, 1e-4, 1e-10, ms);
done:
    tw_free(&x), tw_free(&w), tw_free(&y), tw_free(&b), tw_free(&r);
}

static void pool_case(const char *name, int B, int C, int H, int W, int k, int s, int p, int mode) {
    const bool adaptive = mode < 0;
    const int Ho = adaptive ? k : pad_conv_out_size(H, k, s, p), Wo = adaptive ? s : pad_conv_out_size(W, k, s, p);
    twin x = tw_rand((size_t)B * C * H * W, -2, 2), y = tw_nan((size_t)B * C * Ho * Wo);
    if (!selected(name)) goto done;
    if (adaptive) {
        TRY_OR_FAIL(name, pad_op_adaptive_avgpool2d(pg.cpu, y.c, x.c, B, C, H, W, Ho, Wo));
        TRY_OR_FAIL(name, pad_op_adaptive_avgpool2d(pg.gpu, y.d, x.d, B, C, H, W, Ho, Wo));
    } else {
        TRY_OR_FAIL(name, pad_op_pool2d(pg.cpu, y.c, x.c, B, C, H, W, k, s, p, (pad_pool_mode)mode));
        TRY_OR_FAIL(name, pad_op_pool2d(pg.gpu, y.d, x.d, B, C, H, W, k, s, p, (pad_pool_mode)mode));
    }
    {
        float *h = gpu_get(y.d, y.n);
        check_bits(name, h, y.c, y.n * sizeof(float), 0);
        free(h);
    }
done:
    tw_free(&x), tw_free(&y);
}

void ops_conv(void) {
    if (!path_on(false)) return;
    // the fixture shapes of tests/test_conv.c, then the layer shapes of wide_resnet50_2 at 224 (B 2)
    conv_case("small", (pad_conv2d_desc){2, 3, 11, 11, 5, 3, 3, 1, 1, true}, true, false);
    conv_case("small", (pad_conv2d_desc){1, 3, 17, 13, 4, 7, 7, 2, 3, false}, false, false);
    conv_case("small", (pad_conv2d_desc){2, 6, 5, 5, 8, 1, 1, 1, 0, true}, true, true);
    conv_case("small", (pad_conv2d_desc){2, 4, 9, 9, 6, 1, 1, 2, 0, false}, true, false);
    conv_case("small", (pad_conv2d_desc){1, 5, 10, 7, 3, 3, 3, 2, 1, true}, true, true);
    conv_case("stem", (pad_conv2d_desc){2, 3, 224, 224, 64, 7, 7, 2, 3, true}, true, false);
    conv_case("layer1", (pad_conv2d_desc){2, 128, 56, 56, 128, 3, 3, 1, 1, true}, true, false);
    conv_case("layer2", (pad_conv2d_desc){2, 256, 56, 56, 256, 3, 3, 2, 1, true}, true, false);
    conv_case("layer2", (pad_conv2d_desc){2, 256, 28, 28, 512, 1, 1, 1, 0, true}, true, true);
    conv_case("layer3 downsample", (pad_conv2d_desc){2, 512, 28, 28, 1024, 1, 1, 2, 0, false}, true, false);
    conv_case("layer3", (pad_conv2d_desc){2, 512, 14, 14, 512, 3, 3, 1, 1, true}, true, false);
    pool_case("maxpool 3/2/1 (stem)", 2, 64, 112, 112, 3, 2, 1, PAD_POOL_MAX);
    pool_case("avgpool 3/1/1 (PatchCore)", 2, 512, 28, 28, 3, 1, 1, PAD_POOL_AVG);
    pool_case("avgpool 2/2/0 odd", 2, 3, 7, 9, 2, 2, 0, PAD_POOL_AVG);
    pool_case("adaptive avgpool 3x4", 2, 3, 7, 9, 3, 4, 0, -1);
    pool_case("adaptive avgpool 1x1", 2, 1024, 14, 14, 1, 1, 0, -1);
    {
        twin a = tw_rand(100003, -1, 1), b = tw_rand(100003, -1, 1), y = tw_nan(100003);
        if (!selected("residual_add relu")) goto done;
        TRY_OR_FAIL("residual_add relu", pad_op_residual_add(pg.cpu, y.c, a.c, b.c, y.n, true));
        TRY_OR_FAIL("residual_add relu", pad_op_residual_add(pg.gpu, y.d, a.d, b.d, y.n, true));
        float *h = gpu_get(y.d, y.n);
        check_bits("residual_add relu", h, y.c, y.n * sizeof(float), 0);
        free(h);
    done:
        tw_free(&a), tw_free(&b), tw_free(&y);
    }
}

// PatchCore's ops: the channels-last transpose (bit for bit) and the Euclidean nearest neighbour (distances to
// rounding, indices exact on random data).
static void knn_l2_case(int Nq, int Nb, int D) {
    char name[96];
    snprintf(name, sizeof name, "knn_l2 Nq%d Nb%d D%d", Nq, Nb, D);
    if (!selected(name)) return;
    twin q = tw_rand((size_t)Nq * D, 0, 2), b = tw_rand((size_t)Nb * D, 0, 2), d = tw_nan((size_t)Nq);
    int32_t *ic = NULL, *id = NULL, *hi = NULL;
    ic = (int32_t *)pad_buf_alloc(pg.cpu, (size_t)Nq * sizeof(int32_t));
    id = (int32_t *)pad_buf_alloc(pg.gpu, (size_t)Nq * sizeof(int32_t));
    hi = (int32_t *)malloc((size_t)Nq * sizeof(int32_t));
    if (!ic || !id || !hi) abort();
    TRY_OR_FAIL(name, pad_op_knn_l2(pg.cpu, d.c, ic, q.c, Nq, b.c, Nb, D));
    const double t0 = t_begin();
    TRY_OR_FAIL(name, pad_op_knn_l2(pg.gpu, d.d, id, q.d, Nq, b.d, Nb, D));
    const double ms = t_end(t0);
    tw_check(name, &d, 1e-4, 1e-4, 1e-10, ms);
    TRY_OR_FAIL(name, pad_buf_download(pg.gpu, hi, id, (size_t)Nq * sizeof(int32_t)));
    {
        int bad = 0;
        for (int i = 0; i < Nq; i++)
            bad += hi[i] != ic[i];
        char nm[128];
        snprintf(nm, sizeof nm, "%s indices", name);
        line(bad ? "FAIL" : "PASS", nm, "%d of %d differ", bad, Nq);
    }
done:
    tw_free(&q), tw_free(&b), tw_free(&d);
    pad_buf_free(pg.cpu, ic);
    pad_buf_free(pg.gpu, id);
    free(hi);
}

void ops_patchcore(void) {
    if (!path_on(false)) return;
    {
        const int B = 2, C = 512, HW = 28 * 28, ldo = 1536;
        twin x = tw_rand((size_t)B * C * HW, -1, 1), y = tw_nan((size_t)B * HW * ldo);
        if (!selected("to_rows")) goto done;
        TRY_OR_FAIL("to_rows", pad_op_to_rows(pg.cpu, y.c + 7, ldo, x.c, B, C, HW));
        TRY_OR_FAIL("to_rows", pad_op_to_rows(pg.gpu, y.d + 7, ldo, x.d, B, C, HW));
        float *h = gpu_get(y.d, y.n);
        check_bits("to_rows (B2 C512 28x28 into 1536-wide rows)", h, y.c, y.n * sizeof(float), 0);
        free(h);
    done:
        tw_free(&x), tw_free(&y);
    }
    knn_l2_case(37, 50, 16);
    knn_l2_case(1500, 3000, 96);
    if (!pg.quick) knn_l2_case(2 * 784, 4 * 784, 1536); // 2 test images against a 4-shot wide_resnet50_2 bank
}

// Stage outputs of both backends for the same checkpoint and input.
static void resnet_case(const char *tag, const char *path, int B, int H, int W, int last, double tol) {
    pad_resnet *rc = NULL, *rg = NULL;
    char name[160];
    snprintf(name, sizeof name, "resnet %s B%d %dx%d", tag, B, H, W);
    if (!selected(name)) return;
    float *hx = rand_host((size_t)B * 3 * H * W, -2, 2);
    twin x = tw_from(hx, (size_t)B * 3 * H * W);
    free(hx);
    TRY_OR_FAIL(name, pad_resnet_load(&rc, pg.cpu, path, last));
    TRY_OR_FAIL(name, pad_resnet_load(&rg, pg.gpu, path, last));
    pad_resnet_feats fc, fg;
    TRY_OR_FAIL(name, pad_resnet_forward(rc, x.c, B, H, W, last, &fc));
    TRY_OR_FAIL(name, pad_resnet_forward(rg, x.d, B, H, W, last, &fg));
    const double t0 = t_begin();
    TRY_OR_FAIL(name, pad_resnet_forward(rg, x.d, B, H, W, last, &fg));
    const double ms = t_end(t0);
    for (int s = 0; s < last; s++) {
        const size_t n = (size_t)B * fc.C[s] * fc.H[s] * fc.W[s];
        float *h = gpu_get(fg.data[s], n);
        char nm[200];
        snprintf(nm, sizeof nm, "%s layer%d", name, s + 1);
        check_rel(nm, h, fc.data[s], n, tol, ms);
        free(h);
    }
done:
    pad_resnet_free(rc);
    pad_resnet_free(rg);
    tw_free(&x);
}

// The three baselines end to end on the tiny fixture network (host/model/patchcore.h, padim.h, spade.h): image
// scores and maps of the CUDA backend against the CPU's.
static void methods_case(const char *name, int method) {
    if (!selected(name)) return;
    pad_resnet *rc = NULL, *rg = NULL;
    const int S = 64, k = 3, n = 2;
    float *hs = rand_host((size_t)k * 3 * S * S, -2, 2), *ht = rand_host((size_t)n * 3 * S * S, -2, 2);
    twin shots = tw_from(hs, (size_t)k * 3 * S * S), test = tw_from(ht, (size_t)n * 3 * S * S);
    float sc[2][2], *maps[2] = {malloc(sizeof(float) * n * S * S), malloc(sizeof(float) * n * S * S)};
    double ms = 0;
    free(hs), free(ht);
    for (int bk = 0; bk < 2; bk++) {
        pad_backend *be = bk ? pg.gpu : pg.cpu;
        pad_resnet **net = bk ? &rg : &rc;
        const float *sp = bk ? shots.d : shots.c, *tp = bk ? test.d : test.c;
        TRY_OR_FAIL(name, pad_resnet_load(net, be, PAD_FIXTURE_DIR "/resnet_tiny.safetensors", 0));
        const double t0 = bk ? t_begin() : 0;
        if (method == 0) {
            pad_patchcore *pc = NULL;
            const pad_patchcore_cfg cfg = pad_patchcore_default_cfg();
            pad_status st = pad_patchcore_create(&pc, *net, be, &cfg);
            if (st == PAD_OK) st = pad_patchcore_add(pc, sp, k, S, S);
            if (st == PAD_OK) st = pad_patchcore_build(pc);
            if (st == PAD_OK) st = pad_patchcore_predict(pc, tp, n, S, S, sc[bk], maps[bk], NULL);
            pad_patchcore_free(pc);
            TRY_OR_FAIL(name, st);
        } else if (method == 1) {
            pad_padim *pd = NULL;
            pad_padim_cfg cfg = pad_padim_default_cfg();
            cfg.n_features = 40;
            pad_status st = pad_padim_create(&pd, *net, be, &cfg);
            if (st == PAD_OK) st = pad_padim_fit(pd, sp, k, S, S);
            if (st == PAD_OK) st = pad_padim_predict(pd, tp, n, S, S, sc[bk], maps[bk], NULL);
            pad_padim_free(pd);
            TRY_OR_FAIL(name, st);
        } else {
            pad_spade *spd = NULL;
            const pad_spade_cfg cfg = pad_spade_default_cfg();
            pad_status st = pad_spade_create(&spd, *net, be, &cfg);
            if (st == PAD_OK) st = pad_spade_fit(spd, sp, k, S, S);
            if (st == PAD_OK) st = pad_spade_predict(spd, tp, n, S, S, sc[bk], maps[bk]);
            pad_spade_free(spd);
            TRY_OR_FAIL(name, st);
        }
        if (bk) ms = t_end(t0);
    }
    {
        char nm[128];
        snprintf(nm, sizeof nm, "%s image scores", name);
        check_rel(nm, sc[1], sc[0], (size_t)n, 1e-4, ms);
        snprintf(nm, sizeof nm, "%s maps", name);
        check_rel(nm, maps[1], maps[0], (size_t)n * S * S, 1e-4, ms);
    }
done:
    pad_resnet_free(rc);
    pad_resnet_free(rg);
    tw_free(&shots), tw_free(&test);
    free(maps[0]), free(maps[1]);
}

void methods_checks(void) {
    if (!path_on(false)) return;
    methods_case("method patchcore (tiny fixture network)", 0);
    methods_case("method padim (tiny fixture network)", 1);
    methods_case("method spade (tiny fixture network)", 2);
}

void resnet_checks(void) {
    if (!path_on(false)) return;
    resnet_case("tiny fixture", PAD_FIXTURE_DIR "/resnet_tiny.safetensors", 2, 64, 48, 3, 1e-5);
    if (pg.quick) return;
    char path[] = "/tmp/parity_wrn_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) {
        fail("resnet wide_resnet50_2", "mkstemp failed");
        return;
    }
    close(fd);
    const pad_resnet_cfg cfg = pad_resnet_preset_cfg(PAD_RESNET_WIDE50_2);
    if (pad_resnet_write_random(&cfg, 1, path) == PAD_OK)
        resnet_case("wide_resnet50_2 (random)", path, 2, 224, 224, 3, 1e-4);
    else
        fail("resnet wide_resnet50_2", "cannot write the random checkpoint");
    unlink(path);
}
