/* bench_vit.c - images/s of the dual-path vision tower (host/vit.c) with random weights of a preset architecture
 * (default ViT-B-16-plus-240) on the CPU or CUDA backend, at the given batch sizes. Not a test: eval/bench_vit.sh
 * (CPU) and eval/bench_gpu.sh (CUDA) run it next to the PyTorch twin (eval/bench/bench_vit_torch.py).
 *
 *   build/bench_vit [--device cpu|cuda] [--threads N] [--batches 1,8] [--iters K] [--min-time S]
 *                   [--math fp32|tf32|bf16] [--kernels safe|fast] [--graphs] [--preset vit-b-16-plus-240]
 *   build/bench_vit --blas-core      (prints the kernel set OpenBLAS chose, e.g. SkylakeX or Prescott)
 *
 * CUDA options: --math the GEMM precision (tensor cores for tf32/bf16), --kernels fast the fast-path kernels
 * (warp LayerNorm, dual attention through cuBLAS, one GEMM over the batch), --graphs replays each forward as a
 * CUDA graph. Each batch size runs at least --iters iterations and at least --min-time seconds (after a warm-up).
 *
 * Prints one line per batch size: "promptad device=cpu threads=2 math=fp32 kernels=safe graphs=0 batch=8 iters=3
 * images_per_s=<median iteration> best_images_per_s=<best iteration> cpu_s_per_image=<process CPU seconds per
 * image, median iteration>" (--tag replaces the first word). */
#include "backend.h"
#include "log.h"
#include "vit.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_vit [--device cpu|cuda] [--threads N] [--batches 1,8] [--iters K] [--min-time S] "
                    "[--math fp32|tf32|bf16] [--kernels safe|fast] [--graphs] [--preset tiny|vit-b-16-plus-240] "
                    "[--tag WORD]\n");
    return 2;
}

// One forward, queued through a CUDA graph when asked (pad_graph_run; eager on the CPU).
typedef struct fwd_job {
    pad_vit *vit;
    const float *pix;
    int B;
    const pad_vit_out *o;
} fwd_job;

static pad_status fwd_ops(void *ctx) {
    const fwd_job *j = (const fwd_job *)ctx;
    return pad_vit_forward(j->vit, j->pix, j->B, j->o);
}

static pad_status forward(pad_backend *be, pad_graph **gr, bool graphs, fwd_job *j) {
    if (!graphs) return fwd_ops(j);
    const uintptr_t key = (uintptr_t)j->B;
    return pad_graph_run(be, gr, &key, sizeof key, fwd_ops, j);
}

char *openblas_get_corename(void); // OpenBLAS extension

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--blas-core")) {
        printf("%s\n", openblas_get_corename());
        return 0;
    }
    const char *device = "cpu", *batches_s = "1,8", *preset_s = "vit-b-16-plus-240", *tag = "promptad";
    const char *math_s = "fp32", *kernels_s = "safe";
    int threads = 0, iters = 3;
    double min_time = 0;
    bool graphs = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--graphs")) {
            graphs = true;
            continue;
        }
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--device"))
            device = argv[++i];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches"))
            batches_s = argv[++i];
        else if (!strcmp(argv[i], "--iters"))
            iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--preset"))
            preset_s = argv[++i];
        else if (!strcmp(argv[i], "--tag"))
            tag = argv[++i];
        else if (!strcmp(argv[i], "--math"))
            math_s = argv[++i];
        else if (!strcmp(argv[i], "--kernels"))
            kernels_s = argv[++i];
        else if (!strcmp(argv[i], "--min-time"))
            min_time = atof(argv[++i]);
        else
            return usage();
    }
    int batches[16], n_b = 0, max_b = 1;
    for (char *s = (char *)batches_s; *s && n_b < 16;) {
        batches[n_b] = (int)strtol(s, &s, 10);
        if (batches[n_b] < 1) return usage();
        if (batches[n_b] > max_b) max_b = batches[n_b];
        n_b++;
        if (*s == ',') s++;
    }
    if (iters < 1) return usage();
    pad_model_preset preset;
    pad_backend_kind kind;
    pad_math_mode math;
    if (pad_model_preset_parse(preset_s, &preset) != PAD_OK || pad_backend_kind_parse(device, &kind) != PAD_OK ||
        pad_math_mode_parse(math_s, &math) != PAD_OK || (strcmp(kernels_s, "safe") && strcmp(kernels_s, "fast")))
        return usage();
    pad_backend *be = NULL;
    pad_status st = kind == PAD_BACKEND_CPU ? pad_backend_cpu_init(&be, threads) : pad_backend_init(&be, kind, 0);
    if (st != PAD_OK) return 1;
    pad_backend_set_math(be, math);
    pad_backend_set_fast_kernels(be, !strcmp(kernels_s, "fast"));
    const bool fast = be->fast_kernels;
    math = (pad_math_mode)be->math; // what the backend uses (fp32 on the CPU)
    pad_clip_cfg cfg = pad_model_preset_cfg(preset);
    pad_clip_weights *host = NULL, *w = NULL;
    pad_vit *vit = NULL;
    if (pad_weights_make_random(&host, &cfg, 0) != PAD_OK || pad_weights_to_backend(host, be, &w) != PAD_OK) return 1;
    pad_vit_params p = pad_vit_default_params();
    p.max_batch = max_b;
    if (pad_vit_create(&vit, be, w, &p) != PAD_OK) return 1;
    const int S = cfg.vision.image_size, GG = cfg.vision.grid * cfg.vision.grid, D = cfg.vision.width;
    const int E = cfg.embed_dim;
    const size_t npix = (size_t)max_b * 3 * S * S;
    float *pix_h = (float *)malloc(npix * sizeof(float));
    uint64_t r = 12345;
    for (size_t i = 0; i < npix; i++) { // xorshift, roughly N(0,1)-scaled values
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        pix_h[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    float *pix = NULL, *cls = NULL, *tok = NULL, *mid1 = NULL, *mid2 = NULL;
    if (pad_buf_from_host(be, &pix, pix_h, npix) != PAD_OK) return 1;
    cls = (float *)pad_buf_alloc(be, (size_t)max_b * E * sizeof(float));
    tok = (float *)pad_buf_alloc(be, (size_t)max_b * GG * E * sizeof(float));
    mid1 = (float *)pad_buf_alloc(be, (size_t)max_b * GG * D * sizeof(float));
    mid2 = (float *)pad_buf_alloc(be, (size_t)max_b * GG * D * sizeof(float));
    if (!cls || !tok || !mid1 || !mid2) return 1;
    pad_vit_out o = {cls, tok, mid1, mid2};
    const int max_iters = iters > 100000 ? iters : 100000;
    double *t = (double *)malloc((size_t)max_iters * sizeof(double)),
           *cpu = (double *)malloc((size_t)max_iters * sizeof(double));
    pad_graph *gr = NULL;
    for (int k = 0; k < n_b; k++) {
        const int B = batches[k];
        fwd_job job = {vit, pix, B, &o};
        for (int wu = 0; wu < (graphs ? 3 : 1); wu++) // warm-up (graphs: eager, capture, replay)
            if (forward(be, &gr, graphs, &job) != PAD_OK || pad_backend_sync(be) != PAD_OK) return 1;
        int n_it = 0;
        const double start = clock_s(CLOCK_MONOTONIC);
        while (n_it < max_iters && (n_it < iters || clock_s(CLOCK_MONOTONIC) - start < min_time)) {
            const double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            if (forward(be, &gr, graphs, &job) != PAD_OK || pad_backend_sync(be) != PAD_OK) return 1;
            t[n_it] = clock_s(CLOCK_MONOTONIC) - t0;
            cpu[n_it] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
            n_it++;
        }
        qsort(t, (size_t)n_it, sizeof(double), cmp_double);
        qsort(cpu, (size_t)n_it, sizeof(double), cmp_double);
        printf("%s device=%s threads=%d math=%s kernels=%s graphs=%d batch=%d iters=%d images_per_s=%.3f "
               "best_images_per_s=%.3f cpu_s_per_image=%.3f\n",
               tag, be->ops->name, threads, pad_math_mode_str(math), fast ? "fast" : "safe",
               graphs && pad_graph_replays(gr) > 0, B, n_it, B / t[n_it / 2], B / t[0], cpu[n_it / 2] / B);
        fflush(stdout);
    }
    pad_graph_free(be, &gr);
    free(t);
    free(cpu);
    free(pix_h);
    pad_buf_free(be, pix);
    pad_buf_free(be, cls);
    pad_buf_free(be, tok);
    pad_buf_free(be, mid1);
    pad_buf_free(be, mid2);
    pad_vit_free(vit);
    pad_weights_free(w);
    pad_weights_free(host);
    pad_backend_free(be);
    return 0;
}
