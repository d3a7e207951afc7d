/* test_metrics_cuda.c - the GPU pixel and image metrics (cuda/metrics.cu) against the CPU reference (eval/metrics.c)
 * on the reference fixtures and on larger tie-heavy random inputs: AUROC and PRO must be bit-identical (exact
 * integer sums, one shared finishing function), AUPR equal to the last bit or within 1e-15; the batched calls against
 * the single-unit GPU call (bit for bit) and the CPU batch. Skips without a GPU. */
#include "check.h"
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef PAD_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#ifdef PAD_HAVE_CUDA
static int g_warn;
static void count_warn(pad_log_level level, const char *msg, void *user) {
    (void)msg;
    (void)user;
    if (level == PAD_LOG_LEVEL_WARN) g_warn++;
}
#endif

// The CUDA backend whose stream the GPU metrics run on: one per test process, freed at exit.
static pad_backend *g_be;
static void free_backend(void) {
    pad_backend_free(g_be);
}
static pad_backend *test_backend(void) {
    if (!g_be) {
        cr_assert(pad_backend_cuda_init(&g_be, 0) == PAD_OK, "cannot create the CUDA backend");
        atexit(free_backend);
    }
    return g_be;
}

static void assert_same(const char *what, const pad_pixel_metrics *gpu, const pad_pixel_metrics *cpu) {
    cr_assert(gpu->auroc == cpu->auroc || (isnan(gpu->auroc) && isnan(cpu->auroc)), "%s: AUROC gpu %.17g cpu %.17g",
              what, gpu->auroc, cpu->auroc);
    cr_assert(gpu->pro == cpu->pro || (isnan(gpu->pro) && isnan(cpu->pro)), "%s: PRO gpu %.17g cpu %.17g", what,
              gpu->pro, cpu->pro);
    cr_assert(fabs(gpu->aupr - cpu->aupr) <= 1e-15 || (isnan(gpu->aupr) && isnan(cpu->aupr)),
              "%s: AUPR gpu %.17g cpu %.17g", what, gpu->aupr, cpu->aupr);
    cr_assert(isnan(gpu->pro_200), "%s: the GPU filled PRO-200", what);
}

static void compare(const char *what, const uint8_t *masks, const float *maps, int n, int H, int W) {
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, masks, n, H, W) == PAD_OK);
    pad_metrics_gpu *g;
    cr_assert(pad_metrics_gpu_init(&g, gt, test_backend()) == PAD_OK, "%s: GPU init failed", what);
    const double limits[] = {0.3, 0.05, 1.0, 0.01};
    for (int l = 0; l < 4; l++) {
        pad_pixel_metrics c, d;
        char w[160];
        snprintf(w, sizeof w, "%s @%g", what, limits[l]);
        cr_assert(pad_metrics_pixel(gt, maps, limits[l], PAD_METRICS_PRO, &c) == PAD_OK);
        cr_assert(pad_metrics_gpu_pixel_host(g, maps, limits[l], PAD_METRICS_PRO, &d) == PAD_OK, "%s", w);
        assert_same(w, &d, &c);
        cr_assert(pad_metrics_gpu_pixel_host(g, maps, limits[l], 0, &d) == PAD_OK); // AUROC/AUPR only
        cr_assert(isnan(d.pro) && d.auroc == c.auroc, "%s: PRO computed although not requested", w);
    }
    pad_metrics_gpu_free(g);
    pad_metrics_gt_free(gt);
}

Test(metrics_cuda, fixtures_match_cpu) {
    PAD_REQUIRE_CUDA();
    const char *sets[] = {"hand", "blobs"};
    const char *kinds[] = {"uniform", "signal", "quant", "fp16", "thr", "narrow"};
    for (int s = 0; s < 2; s++) {
        char file[128];
        snprintf(file, sizeof file, "metrics_pixel_%s.safetensors", sets[s]);
        pad_st_file *f = pad_fixture_open(file);
        const pad_st_tensor *tm = pad_st_find(f, "masks");
        cr_assert(tm && tm->ndim == 3);
        uint8_t *masks = malloc(tm->nbytes);
        memcpy(masks, tm->data, tm->nbytes);
        for (int k = 0; k < 6; k++) {
            char name[64], what[96];
            snprintf(name, sizeof name, "maps_%s", kinds[k]);
            float *maps = pad_fixture_f32(f, name, 3, tm->shape);
            snprintf(what, sizeof what, "%s/%s", sets[s], kinds[k]);
            compare(what, masks, maps, (int)tm->shape[0], (int)tm->shape[1], (int)tm->shape[2]);
            free(maps);
        }
        free(masks);
        pad_st_close(f);
    }
}

// Random blobs, quantised scores (heavy ties) and continuous ones, 2.4 M pixels.
Test(metrics_cuda, large_random_match_cpu) {
    PAD_REQUIRE_CUDA();
    const int n = 60, H = 200, W = 200;
    const int64_t N = (int64_t)n * H * W;
    uint8_t *mask = calloc((size_t)N, 1);
    float *map = malloc((size_t)N * sizeof *map);
    pad_rng rng = {1234};
    for (int i = 0; i < n; i++) {
        int nb = i % 5; // some anomaly-free images
        for (int b = 0; b < nb; b++) {
            int cy = (int)pad_rng_uniform(&rng, 0, H), cx = (int)pad_rng_uniform(&rng, 0, W);
            int r = 2 + (int)pad_rng_uniform(&rng, 0, 25);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) mask[(int64_t)i * H * W + y * W + x] = 1;
        }
    }
    for (int64_t i = 0; i < N; i++)
        map[i] = floorf((pad_rng_uniform(&rng, 0, 1) + (mask[i] ? 0.4f : 0.0f)) * 300.0f) / 300.0f;
    compare("quantised", mask, map, n, H, W);
    for (int64_t i = 0; i < N; i++)
        map[i] = pad_rng_uniform(&rng, -1, 1) + (mask[i] ? 0.7f : 0.0f);
    map[5] = -0.0f;
    map[6] = 0.0f;
    compare("continuous", mask, map, n, H, W);
    free(mask);
    free(map);
}

Test(metrics_cuda, device_maps_image_scores_and_errors) {
    PAD_REQUIRE_CUDA();
#ifdef PAD_HAVE_CUDA
    const int n = 7, H = 33, W = 29;
    const int64_t N = (int64_t)n * H * W;
    uint8_t *mask = calloc((size_t)N, 1);
    float *map = malloc((size_t)N * sizeof *map);
    pad_rng rng = {77};
    for (int64_t i = 0; i < N; i++) {
        mask[i] = (i % 97) < 9;
        map[i] = floorf(pad_rng_uniform(&rng, 0, 1) * 20.0f + (mask[i] ? 6.0f : 0.0f));
    }
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, n, H, W) == PAD_OK);
    pad_metrics_gpu *g;
    cr_assert(pad_metrics_gpu_init(&g, gt, test_backend()) == PAD_OK);
    float *dmap = NULL;
    cr_assert(cudaMalloc((void **)&dmap, (size_t)N * sizeof *dmap) == cudaSuccess);
    cr_assert(cudaMemcpy(dmap, map, (size_t)N * sizeof *dmap, cudaMemcpyHostToDevice) == cudaSuccess);
    pad_pixel_metrics c, d;
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_PRO, &c) == PAD_OK);
    for (int rep = 0; rep < 3; rep++) { // the context is reused
        cr_assert(pad_metrics_gpu_pixel(g, dmap, 0.3, PAD_METRICS_PRO, &d) == PAD_OK);
        assert_same("device maps", &d, &c);
    }
    // image scores on the device
    float sc[40];
    uint8_t lab[40];
    for (int i = 0; i < 40; i++) {
        lab[i] = (uint8_t)(i % 3 == 0);
        sc[i] = floorf(pad_rng_uniform(&rng, 0, 1) * 8.0f) + lab[i];
    }
    float *dsc = NULL;
    cr_assert(cudaMalloc((void **)&dsc, sizeof sc) == cudaSuccess);
    cr_assert(cudaMemcpy(dsc, sc, sizeof sc, cudaMemcpyHostToDevice) == cudaSuccess);
    pad_image_metrics ic, id;
    cr_assert(pad_metrics_image(sc, lab, 40, &ic) == PAD_OK);
    cr_assert(pad_metrics_gpu_image(g, dsc, lab, 40, &id) == PAD_OK);
    cr_assert(id.auroc == ic.auroc && id.aupr == ic.aupr);
    // errors: a non-finite score, PRO-200, a bad limit; the context stays usable
    float nan = NAN;
    cr_assert(cudaMemcpy(dmap + 2 * H * W + 5 * W + 3, &nan, sizeof nan, cudaMemcpyHostToDevice) == cudaSuccess);
    cr_assert(pad_metrics_gpu_pixel(g, dmap, 0.3, PAD_METRICS_PRO, &d) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_metrics_gpu_pixel(g, dmap, 0.3, PAD_METRICS_PRO_200, &d) == PAD_ERR_UNSUPPORTED);
    cr_assert(pad_metrics_gpu_pixel(g, dmap, 0.0, PAD_METRICS_PRO, &d) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_metrics_gpu_pixel_host(g, map, 0.3, PAD_METRICS_PRO, &d) == PAD_OK);
    assert_same("after errors", &d, &c);
    cudaFree(dmap);
    cudaFree(dsc);
    pad_metrics_gpu_free(g);
    pad_metrics_gt_free(gt);

    // no anomalous pixel: NaN and the same warnings as the CPU
    memset(mask, 0, (size_t)N);
    cr_assert(pad_metrics_gt_init(&gt, mask, n, H, W) == PAD_OK);
    cr_assert(pad_metrics_gpu_init(&g, gt, test_backend()) == PAD_OK);
    pad_metrics_gt_free(gt); // the GPU context does not need it any more
    pad_log_set(count_warn, NULL);
    cr_assert(pad_metrics_gpu_pixel_host(g, map, 0.3, PAD_METRICS_PRO, &d) == PAD_OK);
    pad_log_set(NULL, NULL);
    cr_assert(isnan(d.auroc) && isnan(d.aupr) && isnan(d.pro) && g_warn == 3, "warnings %d", g_warn);
    pad_metrics_gpu_free(g);
    free(mask);
    free(map);
#endif
}

// ----------------------------------------------------------------------------
// Batches (issue 11): every unit's result equals the single-unit GPU call's bit for bit, and the CPU's as above.

#define B_UNITS 5

Test(metrics_cuda, pixel_batch_matches_single_and_cpu) {
    PAD_REQUIRE_CUDA();
#ifdef PAD_HAVE_CUDA
    const int n = 11, H = 64, W = 48;
    const int64_t N = (int64_t)n * H * W;
    uint8_t *mask = calloc((size_t)N, 1);
    float *map = malloc((size_t)B_UNITS * N * sizeof *map); // the units contiguous, as a cohort's maps
    pad_rng rng = {4321};
    for (int64_t i = 0; i < N; i++)
        mask[i] = ((i / W) % 17 < 4 && (i % W) % 13 < 5 && (i / (H * W)) % 3 != 0);
    for (int u = 0; u < B_UNITS; u++)
        for (int64_t i = 0; i < N; i++) {
            float v = pad_rng_uniform(&rng, 0, 1) + (mask[i] ? 0.25f * (float)u : 0.0f);
            map[u * N + i] = u % 2 ? floorf(v * (float)(5 + 40 * u)) : v; // heavy ties in the odd units
        }
    for (int64_t i = 0; i < N; i++)
        map[2 * N + i] = 0.75f; // a constant unit
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, n, H, W) == PAD_OK);
    pad_metrics_gpu *g;
    cr_assert(pad_metrics_gpu_init(&g, gt, test_backend()) == PAD_OK);
    float *dmap = NULL;
    cr_assert(cudaMalloc((void **)&dmap, (size_t)B_UNITS * N * sizeof *dmap) == cudaSuccess);
    cr_assert(cudaMemcpy(dmap, map, (size_t)B_UNITS * N * sizeof *dmap, cudaMemcpyHostToDevice) == cudaSuccess);
    const float *dptr[B_UNITS], *hptr[B_UNITS];
    for (int u = 0; u < B_UNITS; u++) {
        dptr[u] = dmap + u * N;
        hptr[u] = map + u * N;
    }
    cr_assert(pad_metrics_gpu_batch_bytes(g, 1) == 0 && pad_metrics_gpu_batch_bytes(g, 2) > (size_t)N * 120);
    // budgets: all units in one chunk, chunks of 2 + 2 + 1 (both pipelines), one unit at a time
    const size_t budgets[3] = {(size_t)1 << 32, pad_metrics_gpu_batch_bytes(g, 2), 0};
    const double limits[] = {0.3, 0.01, 1.0};
    for (int b = 0; b < 3; b++) {
        pad_metrics_gpu_set_batch_budget(g, budgets[b]);
        for (int l = 0; l < 3; l++)
            for (unsigned which = 0; which <= PAD_METRICS_PRO; which += PAD_METRICS_PRO) {
                pad_pixel_metrics batch[B_UNITS], one, cpu[B_UNITS];
                cr_assert(pad_metrics_gpu_pixel_batch(g, dptr, B_UNITS, limits[l], which, batch) == PAD_OK);
                cr_assert(pad_metrics_pixel_batch(gt, hptr, B_UNITS, limits[l], which, cpu) == PAD_OK);
                for (int u = 0; u < B_UNITS; u++) {
                    char w[96];
                    snprintf(w, sizeof w, "budget %d unit %d @%g which %u", b, u, limits[l], which);
                    cr_assert(pad_metrics_gpu_pixel(g, dptr[u], limits[l], which, &one) == PAD_OK);
                    cr_assert(memcmp(&one, &batch[u], sizeof one) == 0,
                              "%s: batch (%.17g %.17g %.17g) single (%.17g %.17g %.17g)", w, batch[u].auroc,
                              batch[u].aupr, batch[u].pro, one.auroc, one.aupr, one.pro);
                    assert_same(w, &batch[u], &cpu[u]);
                }
            }
    }
    // a non-finite pixel in unit 3: an error naming it, every result NaN, the context still usable
    pad_metrics_gpu_set_batch_budget(g, (size_t)1 << 32);
    float inf = INFINITY;
    cr_assert(cudaMemcpy(dmap + 3 * N + H * W + 2 * W + 7, &inf, sizeof inf, cudaMemcpyHostToDevice) == cudaSuccess);
    pad_pixel_metrics batch[B_UNITS];
    pad_test_log_start();
    cr_assert(pad_metrics_gpu_pixel_batch(g, dptr, B_UNITS, 0.3, PAD_METRICS_PRO, batch) == PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("unit 3: map 1 pixel (2, 7) is not finite (inf)");
    cr_assert(pad_metrics_gpu_pixel_batch(g, dptr, 2, 0.3, PAD_METRICS_PRO_200, batch) == PAD_ERR_UNSUPPORTED);
    pad_test_log_stop();
    for (int u = 0; u < B_UNITS; u++)
        cr_assert(isnan(batch[u].auroc) && isnan(batch[u].aupr) && isnan(batch[u].pro));
    pad_pixel_metrics c, d;
    cr_assert(pad_metrics_gpu_pixel_batch(g, dptr, 3, 0.3, PAD_METRICS_PRO, batch) == PAD_OK);
    cr_assert(pad_metrics_pixel(gt, hptr[2], 0.3, PAD_METRICS_PRO, &c) == PAD_OK);
    assert_same("after the error", &batch[2], &c);
    cr_assert(pad_metrics_gpu_pixel(g, dptr[1], 0.3, PAD_METRICS_PRO, &d) == PAD_OK);
    cr_assert(memcmp(&d, &batch[1], sizeof d) == 0);
    cr_assert(pad_metrics_gpu_pixel_batch(g, NULL, 0, 0.3, 0, NULL) == PAD_OK);
    cudaFree(dmap);
    pad_metrics_gpu_free(g);
    pad_metrics_gt_free(gt);
    free(mask);
    free(map);
#endif
}

Test(metrics_cuda, image_batch_matches_cpu) {
    PAD_REQUIRE_CUDA();
#ifdef PAD_HAVE_CUDA
    enum { n = 301 };
    pad_rng rng = {555};
    uint8_t lab[n];
    static float s[B_UNITS][n];
    for (int i = 0; i < n; i++)
        lab[i] = (uint8_t)(i % 5 == 2 || i % 11 == 0);
    for (int u = 0; u < B_UNITS; u++)
        for (int i = 0; i < n; i++) {
            float v = pad_rng_uniform(&rng, -1, 1) + 0.3f * (float)u * lab[i];
            s[u][i] = u < 2 ? floorf(v * 6.0f) : v;
        }
    for (int i = 0; i < n; i++)
        s[4][i] = i % 2 ? -0.0f : 0.0f; // one tie group
    float *ds = NULL;
    cr_assert(cudaMalloc((void **)&ds, sizeof s) == cudaSuccess);
    cr_assert(cudaMemcpy(ds, s, sizeof s, cudaMemcpyHostToDevice) == cudaSuccess);
    const float *dptr[B_UNITS], *hptr[B_UNITS];
    for (int u = 0; u < B_UNITS; u++) {
        dptr[u] = ds + u * n;
        hptr[u] = s[u];
    }
    pad_image_metrics gb[B_UNITS], cb[B_UNITS], one;
    cr_assert(pad_metrics_gpu_image_batch(NULL, dptr, lab, n, B_UNITS, gb) == PAD_OK);
    cr_assert(pad_metrics_image_batch(hptr, lab, n, B_UNITS, cb) == PAD_OK);
    for (int u = 0; u < B_UNITS; u++) {
        cr_assert(pad_metrics_gpu_image(NULL, dptr[u], lab, n, &one) == PAD_OK);
        cr_assert(memcmp(&gb[u], &cb[u], sizeof one) == 0 && memcmp(&gb[u], &one, sizeof one) == 0,
                  "unit %d: gpu batch %.17g %.17g cpu %.17g %.17g", u, gb[u].auroc, gb[u].aupr, cb[u].auroc,
                  cb[u].aupr);
    }
    cr_assert(gb[4].auroc == 0.5);
    // on a context's stream, a sub-batch
    uint8_t mask[4] = {0, 1, 0, 0};
    pad_metrics_gt *gt;
    pad_metrics_gpu *g;
    cr_assert(pad_metrics_gt_init(&gt, mask, 1, 2, 2) == PAD_OK);
    cr_assert(pad_metrics_gpu_init(&g, gt, test_backend()) == PAD_OK);
    cr_assert(pad_metrics_gpu_image_batch(g, dptr + 1, lab, n, 3, gb) == PAD_OK);
    for (int u = 0; u < 3; u++)
        cr_assert(memcmp(&gb[u], &cb[u + 1], sizeof one) == 0, "unit %d", u + 1);
    // errors: a NaN score (every result NaN), a bad label
    float nan = NAN;
    cr_assert(cudaMemcpy(ds + 2 * n + 40, &nan, sizeof nan, cudaMemcpyHostToDevice) == cudaSuccess);
    pad_test_log_start();
    cr_assert(pad_metrics_gpu_image_batch(g, dptr, lab, n, B_UNITS, gb) == PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("unit 2 score 40 is not finite");
    lab[7] = 3;
    cr_assert(pad_metrics_gpu_image_batch(g, dptr, lab, n, 1, gb) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    for (int u = 0; u < B_UNITS; u++)
        cr_assert(isnan(gb[u].auroc) && isnan(gb[u].aupr));
    cudaFree(ds);
    pad_metrics_gpu_free(g);
    pad_metrics_gt_free(gt);
#endif
}
