/* bench_patchcore.c - PatchCore (host/model/patchcore.h) on a ResNet checkpoint: the backbone forward in images/s,
 * the memory-bank build of k shots, and PatchCore's images/s on n test images (embedding, k-NN over the bank,
 * reweighting, maps), on the CPU or CUDA backend. Not a test: eval/bench_patchcore.sh runs it next to the PyTorch
 * twin (eval/bench/bench_patchcore_torch.py: torchvision's wide_resnet50_2 and our torch reference of anomalib's
 * PatchCore) on the same checkpoint and inputs, compares the outputs and reports the speed ratios.
 *
 *   build/bench_patchcore --weights W.safetensors --inputs IN.safetensors [--out OUT.safetensors] [--device cpu|cuda]
 *                         [--threads N] [--reps R] [--neighbors 9]
 *
 * IN holds "shots" (k, 3, S, S) and "test" (n, 3, S, S) (normalised pixels). OUT receives "layer2", "layer3" (the
 * stage outputs of the test batch), "scores" (n) and "maps" (n, S, S). Prints one line
 * "promptad device=cpu threads=2 k=.. n=.. size=.. forward_images_per_s=.. fit_s=.. patchcore_images_per_s=.."
 * with the median of the repetitions. */
#include "backend.h"
#include "fsutil.h"
#include "log.h"
#include "patchcore.h"
#include "resnet.h"
#include "st_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_patchcore --weights W --inputs IN [--out OUT] [--device cpu|cuda] [--threads N] "
                    "[--reps R] [--neighbors K]\n");
    return 2;
}

typedef struct opts {
    const char *weights, *inputs, *out;
    bool cuda;
    int threads, reps, neighbors;
} opts;

static bool parse(int argc, char **argv, opts *o) {
    *o = (opts){.reps = 3, .neighbors = 9};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return false;
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
        else if (!strcmp(a, "--neighbors"))
            o->neighbors = atoi(v);
        else
            return false;
        i++;
    }
    return o->weights && o->inputs && o->reps >= 1 && o->reps <= 100 && o->neighbors >= 1;
}

// Reads a (N, 3, S, S) tensor into backend memory.
static pad_status read_images(pad_backend *be, const pad_st_file *f, const char *name, float **dev, int *n, int *S) {
    float *h = NULL;
    const pad_st_tensor *t = NULL;
    const int64_t shape[4] = {-1, 3, -1, -1};
    PAD_TRY(pad_st_read_f32(f, name, 4, shape, &h, &t));
    *n = (int)t->shape[0], *S = (int)t->shape[2];
    pad_status st = t->shape[2] == t->shape[3] ? pad_buf_from_host(be, dev, h, (size_t)t->numel) : PAD_ERR_FORMAT;
    free(h);
    return st;
}

static pad_status save_out(const char *path, pad_backend *be, const pad_resnet_feats *f, int n, int S,
                           const float *scores, const float *maps) {
    pad_st_writer *w = NULL;
    PAD_TRY(pad_st_writer_init(&w));
    pad_status st = PAD_OK;
    for (int s = 1; s <= 2 && st == PAD_OK; s++) {
        const size_t cnt = (size_t)n * f->C[s] * f->H[s] * f->W[s];
        float *h = (float *)malloc(cnt * sizeof(float));
        st = h ? pad_buf_download(be, h, f->data[s], cnt * sizeof(float)) : PAD_ERR_OOM;
        const int64_t shape[4] = {n, f->C[s], f->H[s], f->W[s]};
        if (st == PAD_OK) st = pad_st_writer_add_f32(w, s == 1 ? "layer2" : "layer3", 4, shape, h);
        free(h);
    }
    const int64_t ns[1] = {n}, ms[3] = {n, S, S};
    if (st == PAD_OK) st = pad_st_writer_add_f32(w, "scores", 1, ns, scores);
    if (st == PAD_OK) st = pad_st_writer_add_f32(w, "maps", 3, ms, maps);
    if (st == PAD_OK) st = pad_st_writer_save(w, path);
    pad_st_writer_free(w);
    return st;
}

static pad_status run(const opts *o, pad_backend *be) {
    pad_st_file *f = NULL;
    PAD_TRY(pad_st_open(&f, o->inputs));
    float *shots = NULL, *test = NULL, *scores = NULL, *maps = NULL;
    int k = 0, n = 0, S = 0, S2 = 0;
    pad_resnet *net = NULL;
    pad_patchcore *pc = NULL;
    double fwd[100], pcs[100], fit = 0;
    pad_resnet_feats feats;
    pad_status st = read_images(be, f, "shots", &shots, &k, &S);
    if (st == PAD_OK) st = read_images(be, f, "test", &test, &n, &S2);
    if (st == PAD_OK && S2 != S) st = PAD_ERR_FORMAT;
    if (st == PAD_OK) st = pad_resnet_load(&net, be, o->weights, 3);
    pad_patchcore_cfg cfg = pad_patchcore_default_cfg();
    cfg.num_neighbors = o->neighbors;
    if (st == PAD_OK) st = pad_patchcore_create(&pc, net, be, &cfg);
    scores = (float *)malloc((size_t)n * sizeof(float));
    maps = (float *)malloc((size_t)n * S * S * sizeof(float));
    if (!scores || !maps) st = PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_resnet_forward(net, test, n, S, S, 3, &feats); // warm-up (allocations, plans)
    for (int r = 0; r < o->reps && st == PAD_OK; r++) {
        const double t0 = pad_now();
        st = pad_resnet_forward(net, test, n, S, S, 3, &feats);
        if (st == PAD_OK) st = pad_backend_sync(be);
        fwd[r] = pad_now() - t0;
    }
    if (st == PAD_OK) {
        const double t0 = pad_now();
        st = pad_patchcore_add(pc, shots, k, S, S);
        if (st == PAD_OK) st = pad_patchcore_build(pc);
        fit = pad_now() - t0;
    }
    for (int r = 0; r < o->reps && st == PAD_OK; r++) {
        const double t0 = pad_now();
        st = pad_patchcore_predict(pc, test, n, S, S, scores, maps, NULL);
        pcs[r] = pad_now() - t0;
    }
    if (st == PAD_OK) {
        qsort(fwd, (size_t)o->reps, sizeof(double), cmp_double);
        qsort(pcs, (size_t)o->reps, sizeof(double), cmp_double);
        printf("promptad device=%s threads=%d k=%d n=%d size=%d bank=%d forward_images_per_s=%.3f fit_s=%.3f "
               "patchcore_images_per_s=%.3f\n",
               o->cuda ? "cuda" : "cpu", o->threads, k, n, S, pad_patchcore_bank_rows(pc), n / fwd[o->reps / 2], fit,
               n / pcs[o->reps / 2]);
        if (o->out) { // the stage outputs of the last forward on the test images
            st = pad_resnet_forward(net, test, n, S, S, 3, &feats);
            if (st == PAD_OK) st = save_out(o->out, be, &feats, n, S, scores, maps);
        }
    }
    pad_patchcore_free(pc);
    pad_resnet_free(net);
    pad_buf_free(be, shots);
    pad_buf_free(be, test);
    free(scores);
    free(maps);
    pad_st_close(f);
    return st;
}

int main(int argc, char **argv) {
    opts o;
    if (!parse(argc, argv, &o)) return usage();
    pad_backend *be = NULL;
    pad_status st = o.cuda ? pad_backend_cuda_init(&be, 0) : pad_backend_cpu_init(&be, o.threads);
    if (st != PAD_OK) return 1;
    st = run(&o, be);
    pad_backend_free(be);
    if (st != PAD_OK) {
        fprintf(stderr, "bench_patchcore: %s\n", pad_status_str(st));
        return 1;
    }
    return 0;
}
