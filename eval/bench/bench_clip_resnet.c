/* bench_clip_resnet.c - the CLIP ModifiedResNet tower with the V-V attention pool (host/model/clip_resnet.h) on a
 * checkpoint: images/s of the whole forward (image embedding, V-V tokens, both taps) on the CPU or CUDA backend. Not a
 * test: eval/bench_clip_resnet.sh runs it next to the PyTorch twin (eval/bench/bench_clip_resnet_torch.py: our torch
 * ModifiedResNet of tests/ref/make_clip_resnet_fixtures.py) on the same checkpoint and images, compares the outputs
 * and reports the speed ratio.
 *
 *   build/bench_clip_resnet --weights W.safetensors --inputs IN.safetensors [--out OUT.safetensors]
 *                           [--device cpu|cuda] [--threads N] [--reps R]
 *
 * IN holds "test" (n, 3, S, S) (normalised pixels, S the model's size). OUT receives "cls", "tokens", "mid1", "mid2"
 * (taps layer2 and layer3). Prints one line "promptad device=.. threads=.. n=.. size=.. forward_images_per_s=.." with
 * the median of the repetitions. */
#include "backend.h"
#include "clip_resnet.h"
#include "fsutil.h"
#include "log.h"
#include "st_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct opts {
    const char *weights, *inputs, *out;
    bool cuda;
    int threads, reps;
} opts;

static bool parse(int argc, char **argv, opts *o) {
    *o = (opts){.reps = 3};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--weights"))
            o->weights = v;
        else if (!strcmp(a, "--inputs"))
            o->inputs = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--device"))
            o->cuda = !strcmp(v, "cuda");
        else if (!strcmp(a, "--threads"))
            o->threads = atoi(v);
        else if (!strcmp(a, "--reps"))
            o->reps = atoi(v);
        else
            return false;
    }
    return argc % 2 == 1 && o->weights && o->inputs && o->reps >= 1 && o->reps <= 100;
}

// Downloads the four outputs of n images and writes them to path.
static pad_status save_out(const char *path, pad_backend *be, float *const dev[4], const int64_t shapes[4][3]) {
    static const char *const names[4] = {"cls", "tokens", "mid1", "mid2"};
    static const int ndim[4] = {2, 3, 3, 3};
    pad_st_writer *w = NULL;
    PAD_TRY(pad_st_writer_init(&w));
    pad_status st = PAD_OK;
    for (int i = 0; i < 4 && st == PAD_OK; i++) {
        size_t cnt = 1;
        for (int d = 0; d < ndim[i]; d++)
            cnt *= (size_t)shapes[i][d];
        float *h = (float *)malloc(cnt * sizeof(float));
        st = h ? pad_buf_download(be, h, dev[i], cnt * sizeof(float)) : PAD_ERR_OOM;
        if (st == PAD_OK) st = pad_st_writer_add_f32(w, names[i], ndim[i], shapes[i], h);
        free(h);
    }
    if (st == PAD_OK) st = pad_st_writer_save(w, path);
    pad_st_writer_free(w);
    return st;
}

static pad_status run(const opts *o, pad_backend *be) {
    pad_st_file *f = NULL;
    PAD_TRY(pad_st_open(&f, o->inputs));
    float *h = NULL, *x = NULL, *dev[4] = {NULL, NULL, NULL, NULL};
    const pad_st_tensor *t = NULL;
    pad_clip_resnet *net = NULL;
    double fwd[100];
    pad_status st = pad_st_read_f32(f, "test", 4, (const int64_t[]){-1, 3, -1, -1}, &h, &t);
    const int n = st == PAD_OK ? (int)t->shape[0] : 0, S = st == PAD_OK ? (int)t->shape[2] : 0;
    if (st == PAD_OK) st = pad_buf_from_host(be, &x, h, (size_t)t->numel);
    pad_clip_resnet_params p = pad_clip_resnet_default_params();
    p.max_batch = n;
    if (st == PAD_OK) st = pad_clip_resnet_load(&net, be, o->weights, &p);
    if (st == PAD_OK && pad_clip_resnet_config(net)->image_size != S) st = PAD_ERR_FORMAT;
    int64_t shapes[4][3] = {{0}};
    if (st == PAD_OK) {
        const pad_clip_resnet_cfg *c = pad_clip_resnet_config(net);
        const int64_t GG = (int64_t)c->grid * c->grid, D = pad_clip_resnet_tap_width(net);
        const int64_t sh[4][3] = {{n, c->out_dim, 0}, {n, GG, c->out_dim}, {n, GG, D}, {n, GG, D}};
        memcpy(shapes, sh, sizeof sh);
        for (int i = 0; i < 4 && st == PAD_OK; i++)
            if (!(dev[i] = (float *)pad_buf_alloc(be, (size_t)(shapes[i][0] * shapes[i][1] * (i ? shapes[i][2] : 1)) *
                                                          sizeof(float))))
                st = PAD_ERR_OOM;
    }
    const pad_vit_out out = {dev[0], dev[1], dev[2], dev[3]};
    if (st == PAD_OK) st = pad_clip_resnet_forward(net, x, n, &out); // warm-up (cuDNN plans, workspace)
    for (int r = 0; r < o->reps && st == PAD_OK; r++) {
        const double t0 = pad_now();
        st = pad_clip_resnet_forward(net, x, n, &out);
        if (st == PAD_OK) st = pad_backend_sync(be);
        fwd[r] = pad_now() - t0;
    }
    if (st == PAD_OK) {
        qsort(fwd, (size_t)o->reps, sizeof(double), cmp_double);
        printf("promptad device=%s threads=%d n=%d size=%d forward_images_per_s=%.3f\n", o->cuda ? "cuda" : "cpu",
               o->threads, n, S, n / fwd[o->reps / 2]);
        if (o->out) st = save_out(o->out, be, dev, (const int64_t(*)[3])shapes);
    }
    for (int i = 0; i < 4; i++)
        pad_buf_free(be, dev[i]);
    pad_clip_resnet_free(net);
    pad_buf_free(be, x);
    free(h);
    pad_st_close(f);
    return st;
}

int main(int argc, char **argv) {
    opts o;
    if (!parse(argc, argv, &o)) {
        fprintf(stderr, "usage: bench_clip_resnet --weights W --inputs IN [--out OUT] [--device cpu|cuda] "
                        "[--threads N] [--reps R]\n");
        return 2;
    }
    pad_backend *be = NULL;
    pad_status st = o.cuda ? pad_backend_cuda_init(&be, 0) : pad_backend_cpu_init(&be, o.threads);
    if (st != PAD_OK) return 1;
    st = run(&o, be);
    pad_backend_free(be);
    if (st != PAD_OK) {
        fprintf(stderr, "bench_clip_resnet: %s\n", pad_status_str(st));
        return 1;
    }
    return 0;
}
