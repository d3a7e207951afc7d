/* bench_metrics.c - speed of the pixel metrics (eval/metrics.h) on a synthetic MVTec-like test set: n images H x W
 * (default 312 x 400 x 400 = 50 M pixels), random elliptic defects in two of three images, scores correlated with
 * the masks, once as continuous float32 (almost no ties) and once rounded to fp16 (the official protocol's ties).
 * Prints the ground-truth labelling time, the first (cold) evaluation and the median of the repeats for
 * AUROC + AUPR, + PRO, + PRO-200 on the CPU, and, when a GPU is usable, the GPU times (device-resident maps and
 * host maps) with a check that GPU and CPU agree. A benchmark, not a test: it exits 0 unless something fails.
 *   build/bench_metrics [N H W [REPEATS]]            (OMP_NUM_THREADS sets the CPU threads) */
#include "metrics.h"
#include "st_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef PAD_HAVE_CUDA
#include <cuda_runtime.h>
#endif

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + 1e-6 * (double)ts.tv_nsec;
}

static double cpu_ms(void) { // CPU time of the process (all threads): less sensitive to a loaded machine
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static float rng_unit(uint64_t *s) {
    return (float)((double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0));
}

static void make_data(int n, int H, int W, uint8_t *masks, float *maps) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    const int64_t HW = (int64_t)H * W;
    memset(masks, 0, (size_t)n * (size_t)HW);
    for (int i = 0; i < n; i++) {
        uint8_t *m = masks + (int64_t)i * HW;
        int nb = (i % 3) ? 1 + (int)(rng_unit(&s) * 5) : 0;
        for (int b = 0; b < nb; b++) {
            float cy = rng_unit(&s) * (float)H, cx = rng_unit(&s) * (float)W;
            float ry = 1 + rng_unit(&s) * (float)H / 10, rx = 1 + rng_unit(&s) * (float)W / 10;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float dy = ((float)y - cy) / ry, dx = ((float)x - cx) / rx;
                    if (dy * dy + dx * dx <= 1) m[(int64_t)y * W + x] = 1;
                }
        }
    }
    for (int64_t i = 0; i < (int64_t)n * HW; i++)
        maps[i] = 0.8f * rng_unit(&s) + (masks[i] ? 0.5f : 0.0f) + 0.3f * rng_unit(&s);
}

typedef struct timing {
    double cold, med, cpu_med; // wall ms of the first call, median wall ms and median CPU ms of the repeats
} timing;

static timing time_cpu(pad_metrics_gt *gt, const float *maps, unsigned which, int reps, pad_pixel_metrics *m) {
    double t[64], c[64];
    timing r;
    double t0 = now_ms(), c0 = cpu_ms();
    if (pad_metrics_pixel(gt, maps, 0.3, which, m) != PAD_OK) exit(1);
    r.cold = now_ms() - t0;
    r.cpu_med = cpu_ms() - c0;
    for (int k = 0; k < reps; k++) {
        t0 = now_ms();
        c0 = cpu_ms();
        if (pad_metrics_pixel(gt, maps, 0.3, which, m) != PAD_OK) exit(1);
        t[k] = now_ms() - t0;
        c[k] = cpu_ms() - c0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    qsort(c, (size_t)reps, sizeof c[0], cmp_double);
    r.med = reps ? t[reps / 2] : r.cold;
    r.cpu_med = reps ? c[reps / 2] : r.cpu_med;
    return r;
}

int main(int argc, char **argv) {
    int n = 312, H = 400, W = 400, reps = 5;
    if (argc >= 4) {
        n = atoi(argv[1]);
        H = atoi(argv[2]);
        W = atoi(argv[3]);
    }
    if (argc >= 5) reps = atoi(argv[4]);
    if (n < 1 || H < 1 || W < 1 || reps < 0 || reps > 64) {
        fprintf(stderr, "usage: bench_metrics [N H W [REPEATS (0..64)]]\n");
        return 2;
    }
    const int64_t N = (int64_t)n * H * W;
    uint8_t *masks = malloc((size_t)N);
    float *maps = malloc((size_t)N * sizeof *maps);
    if (!masks || !maps) return 1;
    make_data(n, H, W, masks, maps);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double t0 = now_ms();
    pad_metrics_gt *gt;
    if (pad_metrics_gt_init(&gt, masks, n, H, W) != PAD_OK) return 1;
    pad_metrics_gt_info info;
    pad_metrics_gt_get_info(gt, &info);
    printf("bench_metrics: %d x %d x %d = %lld pixels, %lld regions, %lld anomalous pixels, %d CPU threads\n", n, H, W,
           (long long)N, (long long)info.n_regions, (long long)info.n_anomalous, threads);
    printf("  ground-truth labelling                 %9.1f ms\n", now_ms() - t0);

    for (int variant = 0; variant < 2; variant++) {
        if (variant == 1)
            for (int64_t i = 0; i < N; i++)
                maps[i] = pad_f16_to_f32(pad_f32_to_f16(maps[i]));
        const char *name = variant ? "fp16-rounded" : "float32";
        pad_pixel_metrics m0, m1, m2;
        timing a = time_cpu(gt, maps, 0, reps, &m0);
        timing b = time_cpu(gt, maps, PAD_METRICS_PRO, reps, &m1);
        timing c = time_cpu(gt, maps, PAD_METRICS_ALL, reps, &m2);
        printf("  %-12s CPU AUROC + AUPR          cold %8.1f ms  median %8.1f ms wall, %8.1f ms CPU\n", name, a.cold,
               a.med, a.cpu_med);
        printf("  %-12s CPU AUROC + AUPR + PRO    cold %8.1f ms  median %8.1f ms wall, %8.1f ms CPU\n", name, b.cold,
               b.med, b.cpu_med);
        printf("  %-12s CPU ... + PRO-200         cold %8.1f ms  median %8.1f ms wall, %8.1f ms CPU\n", name, c.cold,
               c.med, c.cpu_med);
        printf("  %-12s AUROC %.6f AUPR %.6f PRO@0.3 %.6f PRO-200 %.6f\n", name, m2.auroc, m2.aupr, m2.pro, m2.pro_200);
#ifdef PAD_HAVE_CUDA
        if (pad_cuda_device_count() > 0) {
            pad_metrics_gpu *g;
            pad_backend *gbe = NULL;
            if (pad_backend_cuda_init(&gbe, 0) != PAD_OK || pad_metrics_gpu_init(&g, gt, gbe) != PAD_OK) return 1;
            float *dmaps = NULL;
            if (cudaMalloc((void **)&dmaps, (size_t)N * sizeof *dmaps) != cudaSuccess ||
                cudaMemcpy(dmaps, maps, (size_t)N * sizeof *dmaps, cudaMemcpyHostToDevice) != cudaSuccess)
                return 1;
            pad_pixel_metrics d;
            double tg[64], th[64];
            for (int k = 0; k < reps + 1; k++) {
                double s0 = now_ms();
                if (pad_metrics_gpu_pixel(g, dmaps, 0.3, PAD_METRICS_PRO, &d) != PAD_OK) return 1;
                tg[k] = now_ms() - s0;
                s0 = now_ms();
                if (pad_metrics_gpu_pixel_host(g, maps, 0.3, PAD_METRICS_PRO, &d) != PAD_OK) return 1;
                th[k] = now_ms() - s0;
            }
            double cold = tg[0];
            qsort(tg + 1, (size_t)reps, sizeof tg[0], cmp_double);
            qsort(th + 1, (size_t)reps, sizeof th[0], cmp_double);
            printf("  %-12s GPU AUROC + AUPR + PRO    cold %9.2f ms  median %9.2f ms (device maps), %.2f ms (host "
                   "maps, incl. copy)\n",
                   name, cold, reps ? tg[1 + reps / 2] : cold, reps ? th[1 + reps / 2] : th[0]);
            int same = d.auroc == m1.auroc && d.pro == m1.pro && fabs(d.aupr - m1.aupr) <= 1e-15;
            printf("  %-12s GPU == CPU: %s (AUROC %.17g / %.17g, AUPR diff %.3g, PRO %.17g / %.17g)\n", name,
                   same ? "yes" : "NO", d.auroc, m1.auroc, d.aupr - m1.aupr, d.pro, m1.pro);
            cudaFree(dmaps);
            pad_metrics_gpu_free(g);
            pad_backend_free(gbe);
            if (!same) return 1;
        }
#endif
    }
    pad_metrics_gt_free(gt);
    free(masks);
    free(maps);
    return 0;
}
