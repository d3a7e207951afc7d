/* test_metrics_batch.c - the batched metrics of many units against one ground truth (eval/metrics_batch.c): each
 * unit's result equals the single call's bit for bit (random maps with heavy ties, continuous maps, constant maps,
 * every FPR limit and metric mask), the values of constant maps, the errors (a non-finite score in one unit, bad
 * arguments), and the GPU batch calls of a CPU-only build. The GPU batch against these: tests/test_metrics_cuda.c. */
#include "check.h"
#include "metrics.h"
#include "metrics_exact.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define UNITS 5

// Random round defects on n masks of H x W (every third image normal), and UNITS maps: unit u quantised to 4 + 20 u
// levels (heavy ties) except the last, which is continuous with a signed zero.
static void make_units(uint8_t *mask, float **maps, int n, int H, int W, unsigned seed) {
    pad_rng rng = {seed};
    const int64_t N = (int64_t)n * H * W;
    memset(mask, 0, (size_t)N);
    for (int i = 0; i < n; i++)
        for (int b = 0; b < i % 3; b++) {
            const int cy = (int)pad_rng_uniform(&rng, 0, H), cx = (int)pad_rng_uniform(&rng, 0, W);
            const int r = 1 + (int)pad_rng_uniform(&rng, 0, 6);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) mask[(int64_t)i * H * W + y * W + x] = 1;
        }
    for (int u = 0; u < UNITS; u++) {
        const float levels = 4.0f + 20.0f * (float)u;
        for (int64_t p = 0; p < N; p++) {
            float v = pad_rng_uniform(&rng, 0, 1) + (mask[p] ? 0.3f * (float)u : 0.0f);
            maps[u][p] = u == UNITS - 1 ? v - 0.5f : floorf(v * levels) / levels;
        }
    }
    maps[UNITS - 1][3] = -0.0f;
    maps[UNITS - 1][4] = 0.0f;
}

static void assert_pixel_batch_is_loop(const char *what, pad_metrics_gt *gt, const float *const *maps, int n_units,
                                       double limit, unsigned which) {
    pad_pixel_metrics batch[UNITS], one;
    cr_assert(pad_metrics_pixel_batch(gt, maps, n_units, limit, which, batch) == PAD_OK, "%s", what);
    for (int u = 0; u < n_units; u++) {
        cr_assert(pad_metrics_pixel(gt, maps[u], limit, which, &one) == PAD_OK);
        cr_assert(memcmp(&one, &batch[u], sizeof one) == 0,
                  "%s unit %d @%g: batch (%.17g %.17g %.17g %.17g) loop (%.17g %.17g %.17g %.17g)", what, u, limit,
                  batch[u].auroc, batch[u].aupr, batch[u].pro, batch[u].pro_200, one.auroc, one.aupr, one.pro,
                  one.pro_200);
    }
}

Test(metrics_batch, pixel_batch_equals_loop) {
    const int n = 9, H = 37, W = 41;
    const int64_t N = (int64_t)n * H * W;
    uint8_t *mask = malloc((size_t)N);
    float *maps[UNITS];
    for (int u = 0; u < UNITS; u++)
        maps[u] = malloc((size_t)N * sizeof(float));
    make_units(mask, maps, n, H, W, 2024);
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, n, H, W) == PAD_OK);
    pad_metrics_gt_info info;
    pad_metrics_gt_get_info(gt, &info);
    cr_assert(info.n_regions > 3 && info.n_anomalous > 100, "%lld regions", (long long)info.n_regions);
    const double limits[] = {0.3, 0.05, 1.0};
    const unsigned whichs[] = {0, PAD_METRICS_PRO, PAD_METRICS_ALL};
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < 3; k++)
            assert_pixel_batch_is_loop("random", gt, (const float *const *)maps, UNITS, limits[l], whichs[k]);
    // the metrics differ between the units (the batch does not hand one unit's result to all)
    pad_pixel_metrics b[UNITS];
    cr_assert(pad_metrics_pixel_batch(gt, (const float *const *)maps, UNITS, 0.3, PAD_METRICS_PRO, b) == PAD_OK);
    cr_assert(b[0].auroc < b[2].auroc && b[2].auroc < b[3].auroc, "%.17g %.17g %.17g", b[0].auroc, b[2].auroc,
              b[3].auroc);
    // a sub-batch and repeated units
    const float *mix[4] = {maps[3], maps[0], maps[3], maps[4]};
    assert_pixel_batch_is_loop("mixed", gt, mix, 4, 0.3, PAD_METRICS_ALL);
    // an empty batch does nothing
    cr_assert(pad_metrics_pixel_batch(gt, NULL, 0, 0.3, 0, NULL) == PAD_OK);
    pad_metrics_gt_free(gt);
    for (int u = 0; u < UNITS; u++)
        free(maps[u]);
    free(mask);
}

Test(metrics_batch, pixel_constant_maps) {
    const int n = 4, H = 16, W = 12;
    const int64_t N = (int64_t)n * H * W;
    uint8_t *mask = calloc((size_t)N, 1);
    for (int64_t p = 0; p < N; p++)
        mask[p] = (p % 53) < 7;
    float *maps[3];
    const float value[3] = {0.0f, -3.5f, 1e30f};
    for (int u = 0; u < 3; u++) {
        maps[u] = malloc((size_t)N * sizeof(float));
        for (int64_t p = 0; p < N; p++)
            maps[u][p] = value[u];
    }
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, n, H, W) == PAD_OK);
    pad_metrics_gt_info info;
    pad_metrics_gt_get_info(gt, &info);
    assert_pixel_batch_is_loop("constant", gt, (const float *const *)maps, 3, 0.3, PAD_METRICS_PRO);
    pad_pixel_metrics b[3];
    cr_assert(pad_metrics_pixel_batch(gt, (const float *const *)maps, 3, 0.3, PAD_METRICS_PRO, b) == PAD_OK);
    for (int u = 0; u < 3; u++) {
        // one tie group: AUROC 1/2, AUPR the anomalous fraction, the PRO curve a straight line from (0, 0) to (1, 1)
        cr_assert(b[u].auroc == 0.5, "unit %d AUROC %.17g", u, b[u].auroc);
        const double frac = (double)info.n_anomalous / (double)info.n_pixels;
        cr_assert(fabs(b[u].aupr - frac) <= 1e-15, "unit %d AUPR %.17g want %.17g", u, b[u].aupr, frac);
        cr_assert(fabs(b[u].pro - 0.15) <= 1e-12, "unit %d PRO %.17g want 0.15", u, b[u].pro);
    }
    pad_metrics_gt_free(gt);
    for (int u = 0; u < 3; u++)
        free(maps[u]);
    free(mask);
}

Test(metrics_batch, pixel_errors) {
    const int n = 2, H = 8, W = 8;
    uint8_t mask[128] = {0};
    mask[9] = mask[10] = mask[70] = 1;
    float a[128], b[128], c[128];
    for (int p = 0; p < 128; p++)
        a[p] = b[p] = c[p] = (float)(p % 7);
    b[64 + 8 * 3 + 5] = INFINITY;
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, n, H, W) == PAD_OK);
    const float *maps[3] = {a, b, c};
    pad_pixel_metrics out[3];
    for (int u = 0; u < 3; u++)
        out[u].auroc = 7.0;
    pad_test_log_start();
    cr_assert(pad_metrics_pixel_batch(gt, maps, 3, 0.3, PAD_METRICS_PRO, out) == PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("map 1 pixel (3, 5) is not finite (inf)");
    PAD_ASSERT_LOG_HAS("unit 1 of 3 failed");
    for (int u = 0; u < 3; u++)
        cr_assert(isnan(out[u].auroc) && isnan(out[u].aupr) && isnan(out[u].pro), "unit %d not NaN", u);
    cr_assert(pad_metrics_pixel_batch(gt, maps, 1, 0.0, 0, out) == PAD_ERR_INVALID_ARG); // bad limit
    cr_assert(pad_metrics_pixel_batch(gt, maps, -1, 0.3, 0, out) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_metrics_pixel_batch(gt, NULL, 2, 0.3, 0, out) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    pad_metrics_gt_free(gt);
}

Test(metrics_batch, image_batch_equals_loop) {
    enum { n = 157 };
    pad_rng rng = {99};
    uint8_t lab[n];
    float s[UNITS][n];
    const float *ptr[UNITS];
    for (int i = 0; i < n; i++)
        lab[i] = (uint8_t)(i % 4 == 1 || i % 7 == 0);
    for (int u = 0; u < UNITS; u++) {
        for (int i = 0; i < n; i++) {
            float v = pad_rng_uniform(&rng, 0, 1) + 0.2f * (float)u * lab[i];
            s[u][i] = u < 3 ? floorf(v * (float)(3 + 5 * u)) : v; // ties in the first three units
        }
        ptr[u] = s[u];
    }
    for (int i = 0; i < n; i++)
        s[UNITS - 1][i] = 2.5f; // one constant unit
    pad_image_metrics b[UNITS], one;
    cr_assert(pad_metrics_image_batch(ptr, lab, n, UNITS, b) == PAD_OK);
    for (int u = 0; u < UNITS; u++) {
        cr_assert(pad_metrics_image(s[u], lab, n, &one) == PAD_OK);
        cr_assert(memcmp(&one, &b[u], sizeof one) == 0, "unit %d: batch %.17g %.17g loop %.17g %.17g", u, b[u].auroc,
                  b[u].aupr, one.auroc, one.aupr);
    }
    int P = 0;
    for (int i = 0; i < n; i++)
        P += lab[i];
    cr_assert(b[UNITS - 1].auroc == 0.5 && fabs(b[UNITS - 1].aupr - (double)P / n) <= 1e-15);
    cr_assert(b[0].auroc < b[3].auroc);
    // errors: a NaN in unit 1 makes every result NaN; a bad label
    s[1][17] = NAN;
    pad_test_log_start();
    cr_assert(pad_metrics_image_batch(ptr, lab, n, UNITS, b) == PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("score 17 is not finite");
    PAD_ASSERT_LOG_HAS("unit 1 of 5 failed");
    for (int u = 0; u < UNITS; u++)
        cr_assert(isnan(b[u].auroc) && isnan(b[u].aupr));
    lab[3] = 2;
    cr_assert(pad_metrics_image_batch(ptr + 2, lab, n, 2, b) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_metrics_image_batch(ptr, lab, n, -2, b) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    cr_assert(pad_metrics_image_batch(NULL, lab, n, 0, NULL) == PAD_OK);
}

// The GPU batch's per-unit counts are a scan over all units minus the scan before the unit, modulo 2^128.
Test(metrics_batch, u128_sub_is_modular) {
    const pad_u128 a = {5, 7}, b = {9, 2}; // a borrow from the high limb
    pad_u128 d = pad_u128_sub(a, b);
    cr_assert(d.lo == UINT64_MAX - 3 && d.hi == 4);
    // (x + y) - x == y even when x + y wrapped around 2^128
    const pad_u128 x = {UINT64_MAX - 1, UINT64_MAX}, y = {10, 3};
    d = pad_u128_sub(pad_u128_add(x, y), x);
    cr_assert(d.lo == 10 && d.hi == 3, "%llu %llu", (unsigned long long)d.lo, (unsigned long long)d.hi);
    d = pad_u128_sub(a, a);
    cr_assert(d.lo == 0 && d.hi == 0);
}

#ifndef PAD_HAVE_CUDA
Test(metrics_batch, gpu_batch_unsupported_without_cuda) {
    const float *maps[1] = {NULL};
    pad_pixel_metrics p;
    pad_image_metrics im;
    uint8_t lab = 0;
    pad_test_log_start();
    cr_assert(pad_metrics_gpu_pixel_batch(NULL, maps, 1, 0.3, 0, &p) == PAD_ERR_UNSUPPORTED);
    cr_assert(pad_metrics_gpu_image_batch(NULL, maps, &lab, 1, 1, &im) == PAD_ERR_UNSUPPORTED);
    PAD_ASSERT_LOG_HAS("no CUDA support");
    pad_test_log_stop();
    pad_metrics_gpu_set_batch_budget(NULL, 0);
    cr_assert(pad_metrics_gpu_batch_bytes(NULL, 4) == 0);
}
#endif
