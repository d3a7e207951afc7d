/* bench_winclip.c - images/s of WinCLIP+ (host/model/winclip.h: the full forward, the 2 x 2 and 3 x 3 window
 * forwards and the few-shot scores) with random weights of a preset architecture (default ViT-B-16-plus-240) on the
 * CPU or CUDA backend. Not a test: eval/bench_winclip.sh runs it next to the PyTorch twin
 * (eval/bench/bench_winclip_torch.py, anomalib's WinClipModel semantics) and reports the ratio.
 *
 *   build/bench_winclip [--device cpu|cuda] [--threads N] [--images N] [--shots K] [--iters I] [--max-rows R]
 *                       [--preset tiny|vit-b-16-plus-240] [--tag WORD]
 *
 * The K reference images are encoded once (set-up, not timed); each iteration scores the N test images
 * (pad_winclip_score, host pixels in, image scores and score grids out). Prints one line: "promptad device=cpu
 * threads=2 images=1 shots=1 iters=2 images_per_s=<median iteration> best_images_per_s=<best iteration>"
 * (--tag replaces the first word). */
#include "backend.h"
#include "log.h"
#include "weights.h"
#include "winclip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_winclip [--device cpu|cuda] [--threads N] [--images N] [--shots K] [--iters I] "
                    "[--max-rows R] [--preset tiny|vit-b-16-plus-240] [--tag WORD]\n");
    return 2;
}

typedef struct bench_opts {
    const char *device, *preset, *tag;
    int threads, images, shots, iters, max_rows;
} bench_opts;

static int parse(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){"cpu", "vit-b-16-plus-240", "promptad", 0, 1, 1, 2, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(a, "--device"))
            o->device = v;
        else if (!strcmp(a, "--preset"))
            o->preset = v;
        else if (!strcmp(a, "--tag"))
            o->tag = v;
        else if (!strcmp(a, "--threads"))
            o->threads = atoi(v);
        else if (!strcmp(a, "--images"))
            o->images = atoi(v);
        else if (!strcmp(a, "--shots"))
            o->shots = atoi(v);
        else if (!strcmp(a, "--iters"))
            o->iters = atoi(v);
        else if (!strcmp(a, "--max-rows"))
            o->max_rows = atoi(v);
        else
            return usage();
        i++;
    }
    if (o->images < 1 || o->images > 1024 || o->shots < 0 || o->shots > 64 || o->iters < 1 || o->iters > 1000 ||
        o->threads < 0)
        return usage();
    return 0;
}

// Fills n floats with a deterministic pattern in about [-1.5, 1.5] (normalised pixels).
static void fill(float *x, size_t n, unsigned seed) {
    unsigned s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / (double)(1u << 24) * 3.0 - 1.5);
    }
}

int main(int argc, char **argv) {
    bench_opts o;
    if (parse(argc, argv, &o)) return 2;
    pad_model_preset preset;
    pad_backend_kind kind;
    if (pad_model_preset_parse(o.preset, &preset) != PAD_OK || pad_backend_kind_parse(o.device, &kind) != PAD_OK)
        return usage();
    pad_backend *be = NULL;
    pad_clip_weights *hw = NULL, *w = NULL;
    pad_winclip *wc = NULL;
    pad_status st = kind == PAD_BACKEND_CPU ? pad_backend_cpu_init(&be, o.threads) : pad_backend_init(&be, kind, 0);
    pad_clip_cfg cfg = pad_model_preset_cfg(preset);
    if (st == PAD_OK) st = pad_weights_make_random(&hw, &cfg, 0);
    if (st == PAD_OK) st = pad_weights_to_backend(hw, be, &w);
    pad_winclip_params p = pad_winclip_default_params();
    p.max_batch = o.images < 4 ? o.images : 4;
    p.max_rows = o.max_rows;
    if (st == PAD_OK) st = pad_winclip_create(&wc, be, w, &p);
    const int S = cfg.vision.image_size, G = cfg.vision.grid, E = cfg.embed_dim;
    const size_t px = (size_t)3 * S * S;
    float *test = malloc((size_t)o.images * px * sizeof(float)), *shots = malloc((size_t)(o.shots + 1) * px * 4);
    float *text = malloc((size_t)2 * E * sizeof(float)), *score = malloc((size_t)o.images * sizeof(float));
    float *grid = malloc((size_t)o.images * G * G * sizeof(float));
    double *t = malloc((size_t)o.iters * sizeof(double));
    if (st == PAD_OK && (!test || !shots || !text || !score || !grid || !t)) st = PAD_ERR_OOM;
    if (st == PAD_OK) {
        fill(test, (size_t)o.images * px, 1);
        fill(shots, (size_t)o.shots * px, 2);
        fill(text, (size_t)2 * E, 3); // the text vectors cost nothing per image: random ones stand in for CPE's
        st = pad_winclip_set_text(wc, text);
    }
    if (st == PAD_OK) st = pad_winclip_set_refs(wc, shots, o.shots);
    for (int i = 0; i < o.iters && st == PAD_OK; i++) {
        const double t0 = now_s();
        st = pad_winclip_score(wc, test, o.images, score, grid, NULL);
        t[i] = now_s() - t0;
    }
    if (st == PAD_OK) {
        qsort(t, (size_t)o.iters, sizeof *t, cmp_double);
        printf("%s device=%s threads=%d images=%d shots=%d iters=%d images_per_s=%.4f best_images_per_s=%.4f\n", o.tag,
               o.device, o.threads, o.images, o.shots, o.iters, o.images / t[o.iters / 2], o.images / t[0]);
    } else
        fprintf(stderr, "bench_winclip: failed (%s)\n", pad_status_str(st));
    free(test), free(shots), free(text), free(score), free(grid), free(t);
    pad_winclip_free(wc);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_backend_free(be);
    return st == PAD_OK ? 0 : 1;
}
