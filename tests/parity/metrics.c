/* metrics.c - parity of the pixel and image metrics computed on the GPU against the CPU's, one unit at a time and
 * in batches of units (the batch cases also run with --cpu-twin). */
#include "parity.h"

#include "fsutil.h"
#include "metrics.h"
#include "prompt.h"
#include "prompt_set.h"
#include "score.h"
#include "st_file.h"
#include "text.h"
#include "tokenizer.h"
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// metrics

// Random elliptical defects on n maps of H x W, scores = noise + signal inside the defects, optionally quantised.
static void make_pixels(uint8_t *masks, float *maps, int n, int H, int W, int levels) {
    for (int i = 0; i < n; i++) {
        uint8_t *m = masks + (size_t)i * H * W;
        memset(m, 0, (size_t)H * W);
        const int blobs = i % 3; // a third of the images are normal
        for (int b = 0; b < blobs; b++) {
            const float cy = frand(0, (float)H), cx = frand(0, (float)W), ry = frand(3, H / 6.0f),
                        rx = frand(3, W / 6.0f);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    const float dy = (y - cy) / ry, dx = (x - cx) / rx;
                    if (dy * dy + dx * dx <= 1.0f) m[(size_t)y * W + x] = 1;
                }
        }
        for (size_t p = 0; p < (size_t)H * W; p++) {
            float v = frand(0, 1) + (m[p] ? frand(0, 0.8f) : 0.0f);
            if (levels > 0) v = floorf(v * levels) / levels; // heavy ties
            maps[(size_t)i * H * W + p] = v;
        }
    }
}

// ----------------------------------------------------------------------------
// batches (issue 11): U units' maps against one ground truth. On the GPU the batch against the single-unit GPU call
// (bit for bit: the same integer sums and the same AUPR tree) and the CPU; with --cpu-twin the CPU batch against the
// loop of single CPU calls (bit for bit), so that the case runs on machines without a GPU too.

#define BATCH_UNITS 6

// Unit u's maps from unit 0's: odd units quantised (ties), even ones shifted by noise.
static void unit_maps(float *all, int64_t N) {
    for (int u = 1; u < BATCH_UNITS; u++)
        for (int64_t p = 0; p < N; p++) {
            const float v = all[p];
            all[u * N + p] = u % 2 ? floorf(v * (float)(8 * u)) / (float)(8 * u) : v + frand(0, 0.2f * (float)u);
        }
}

// The GPU side of the pixel batch: batch == single GPU calls bit for bit, and the CPU batch `cpu` within the
// single path's bounds; times of the batch and of the single calls.
static void pixel_batch_gpu(const char *name, pad_metrics_gt *gt, const float *all, int64_t N,
                            const pad_pixel_metrics *cpu) {
    pad_metrics_gpu *gm = NULL;
    float *d = NULL;
    pad_pixel_metrics b[BATCH_UNITS], one;
    const float *dp[BATCH_UNITS];
    TRY_OR_FAIL(name, pad_metrics_gpu_init(&gm, gt, pg.gpu));
    TRY_OR_FAIL(name, pad_buf_from_host(pg.gpu, &d, all, (size_t)(BATCH_UNITS * N)));
    for (int u = 0; u < BATCH_UNITS; u++)
        dp[u] = d + u * N;
    TRY_OR_FAIL(name, pad_metrics_gpu_pixel_batch(gm, dp, BATCH_UNITS, 0.3, PAD_METRICS_PRO, b)); // warm-up
    double t0 = pad_now();
    TRY_OR_FAIL(name, pad_metrics_gpu_pixel_batch(gm, dp, BATCH_UNITS, 0.3, PAD_METRICS_PRO, b));
    const double ms_batch = (pad_now() - t0) * 1e3;
    bool same = true, close = true;
    double ms_single = 0.0, worst = 0.0;
    for (int u = 0; u < BATCH_UNITS; u++) {
        t0 = pad_now();
        TRY_OR_FAIL(name, pad_metrics_gpu_pixel(gm, dp[u], 0.3, PAD_METRICS_PRO, &one));
        ms_single += (pad_now() - t0) * 1e3;
        same = same && memcmp(&one, &b[u], sizeof one) == 0;
        close = close && b[u].auroc == cpu[u].auroc && b[u].pro == cpu[u].pro && fabs(b[u].aupr - cpu[u].aupr) <= 1e-15;
        worst = fmax(worst, fabs(b[u].aupr - cpu[u].aupr));
    }
    line(
        same && close ? "PASS" : "FAIL", name,
        "%d units: batch %s the single GPU calls, AUROC/PRO %s the CPU's, AUPR diff %.1e; gpu batch %.2f ms, %d single "
        "calls %.2f ms (ratio %.2f)",
        BATCH_UNITS, same ? "==" : "!=", close ? "==" : "!=", worst, ms_batch, BATCH_UNITS, ms_single,
        ms_single / ms_batch);
done:
    pad_buf_free(pg.gpu, d);
    pad_metrics_gpu_free(gm);
}

static void pixel_batch_check(void) {
    const int n = 12, H = 200, W = 200;
    const int64_t N = (int64_t)n * H * W;
    char name[96];
    snprintf(name, sizeof name, "metrics/pixel batch %d units n%d %dx%d", BATCH_UNITS, n, H, W);
    if (!selected(name)) return;
    uint8_t *masks = malloc((size_t)N);
    float *all = malloc(sizeof(float) * BATCH_UNITS * (size_t)N);
    make_pixels(masks, all, n, H, W, 0);
    unit_maps(all, N);
    pad_metrics_gt *gt = NULL;
    pad_pixel_metrics cpu[BATCH_UNITS], one;
    const float *hp[BATCH_UNITS];
    for (int u = 0; u < BATCH_UNITS; u++)
        hp[u] = all + u * N;
    TRY_OR_FAIL(name, pad_metrics_gt_init(&gt, masks, n, H, W));
    TRY_OR_FAIL(name, pad_metrics_pixel_batch(gt, hp, BATCH_UNITS, 0.3, PAD_METRICS_PRO, cpu));
    if (pg.twin) {
        bool same = true;
        for (int u = 0; u < BATCH_UNITS; u++) {
            TRY_OR_FAIL(name, pad_metrics_pixel(gt, hp[u], 0.3, PAD_METRICS_PRO, &one));
            same = same && memcmp(&one, &cpu[u], sizeof one) == 0;
        }
        line(same ? "PASS" : "FAIL", name, "CPU twin: %d units: the CPU batch %s the loop of single calls", BATCH_UNITS,
             same ? "==" : "!=");
    } else {
        pixel_batch_gpu(name, gt, all, N, cpu);
    }
done:
    pad_metrics_gt_free(gt);
    free(masks);
    free(all);
}

static void image_batch_check(void) {
    const int m = 2000;
    char name[64];
    snprintf(name, sizeof name, "metrics/image batch %d units n%d", BATCH_UNITS, m);
    if (!selected(name)) return;
    float *all = rand_host((size_t)BATCH_UNITS * m, 0, 1);
    uint8_t *lab = malloc(m);
    for (int i = 0; i < m; i++)
        lab[i] = (uint8_t)(i % 3 == 0);
    unit_maps(all, m);
    float *d = NULL;
    const float *hp[BATCH_UNITS], *dp[BATCH_UNITS];
    pad_image_metrics cpu[BATCH_UNITS], got[BATCH_UNITS];
    TRY_OR_FAIL(name, pad_buf_from_host(pg.gpu, &d, all, (size_t)BATCH_UNITS * m));
    for (int u = 0; u < BATCH_UNITS; u++) {
        hp[u] = all + u * m;
        dp[u] = d + u * m;
    }
    TRY_OR_FAIL(name, pad_metrics_image_batch(hp, lab, m, BATCH_UNITS, cpu));
    if (pg.twin) {
        for (int u = 0; u < BATCH_UNITS; u++)
            TRY_OR_FAIL(name, pad_metrics_image(hp[u], lab, m, &got[u]));
    } else {
        TRY_OR_FAIL(name, pad_metrics_gpu_image_batch(NULL, dp, lab, m, BATCH_UNITS, got));
    }
    check_bits(name, got, cpu, sizeof cpu, 0.0);
done:
    pad_buf_free(pg.gpu, d);
    free(all);
    free(lab);
}

void metrics_checks(void) {
    if (!path_on(false)) return;
    pixel_batch_check();
    image_batch_check();
    if (pg.twin) {
        line("SKIP", "metrics/pixel gpu vs cpu", "CPU twin: the GPU metrics need a device");
        return;
    }
    const int n = 24, H = 400, W = 400;
    for (int q = 0; q < 2; q++) {
        char name[96];
        snprintf(name, sizeof name, "metrics/pixel n%d %dx%d%s", n, H, W, q ? " quantised" : "");
        if (!selected(name)) continue;
        uint8_t *masks = malloc((size_t)n * H * W);
        float *maps = malloc(sizeof(float) * n * H * W);
        make_pixels(masks, maps, n, H, W, q ? 64 : 0);
        pad_metrics_gt *gt = NULL;
        pad_metrics_gpu *gm = NULL;
        float *dmaps = NULL;
        pad_pixel_metrics c, d;
        if (pad_metrics_gt_init(&gt, masks, n, H, W) != PAD_OK || pad_metrics_gpu_init(&gm, gt, pg.gpu) != PAD_OK ||
            pad_buf_from_host(pg.gpu, &dmaps, maps, (size_t)n * H * W) != PAD_OK) {
            fail(name, "GPU metrics init failed");
        } else {
            pad_status s1 = pad_metrics_pixel(gt, maps, 0.3, PAD_METRICS_PRO, &c);
            pad_backend_sync(pg.gpu);
            double t0 = pad_now();
            pad_status s2 = pad_metrics_gpu_pixel(gm, dmaps, 0.3, PAD_METRICS_PRO, &d);
            double ms = (pad_now() - t0) * 1e3;
            // the per-epoch selection metric alone (AUROC + AUPR)
            pad_pixel_metrics d0;
            t0 = pad_now();
            pad_status s3 = pad_metrics_gpu_pixel(gm, dmaps, 0.3, 0, &d0);
            double ms0 = (pad_now() - t0) * 1e3;
            const bool ok = s1 == PAD_OK && s2 == PAD_OK && s3 == PAD_OK && c.auroc == d.auroc && c.pro == d.pro &&
                            fabs(c.aupr - d.aupr) <= 1e-15 && d0.auroc == c.auroc;
            line(ok ? "PASS" : "FAIL", name,
                 "AUROC %.17g/%.17g AUPR diff %.1e PRO %.17g/%.17g; gpu %.2f ms (AUROC+AUPR only %.2f ms, %d px)",
                 d.auroc, c.auroc, fabs(c.aupr - d.aupr), d.pro, c.pro, ms, ms0, n * H * W);
        }
        pad_buf_free(pg.gpu, dmaps);
        pad_metrics_gpu_free(gm);
        pad_metrics_gt_free(gt);
        free(masks);
        free(maps);
    }
    const char *name = "metrics/image n2000";
    if (selected(name)) {
        const int m = 2000;
        float *s = rand_host(m, 0, 1);
        uint8_t *lab = malloc(m);
        for (int i = 0; i < m; i++) {
            lab[i] = (uint8_t)(i % 3 == 0);
            if (i % 5 == 0) s[i] = s[i / 2]; // ties
        }
        float *ds = NULL;
        pad_image_metrics c, d;
        if (pad_buf_from_host(pg.gpu, &ds, s, m) != PAD_OK || pad_metrics_image(s, lab, m, &c) != PAD_OK ||
            pad_metrics_gpu_image(NULL, ds, lab, m, &d) != PAD_OK)
            fail(name, "image metrics failed");
        else
            line(c.auroc == d.auroc && c.aupr == d.aupr ? "PASS" : "FAIL", name, "AUROC %.17g/%.17g AUPR %.17g/%.17g",
                 d.auroc, c.auroc, d.aupr, c.aupr);
        pad_buf_free(pg.gpu, ds);
        free(s);
        free(lab);
    }
}
