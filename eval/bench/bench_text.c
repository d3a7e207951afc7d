/* bench_text.c - speed of one PromptAD prompt-learning epoch (forward + loss + backward + SGD step) with a
 * ViT-B-16-plus-240-sized text tower (width 640, 12 layers, 10 heads, MLP 2560, embed 640; random weights), and how
 * it splits between the text forward and the rest. The class's prompts come from the official prompt set and the
 * real CLIP vocabulary (carpet: 57 cls prompts of at most 12 tokens); the image features are k random unit vectors
 * (cls) or k x 225 tokens (seg). The vision tower is shrunk to a stub (it is not used). A benchmark, not a test.
 *   build/bench_text [--device cpu|cuda] [--class C] [--task cls|seg] [--shots K] [--reps R] [--vocab V]
 *                    [--prompts SET]
 * Note: the bench does not re-execute itself with OPENBLAS_CORETYPE as `promptad` does; on machines where OpenBLAS
 * falls back to its generic kernels run it as OPENBLAS_CORETYPE=SkylakeX (or Haswell) build/bench_text. */
#include "backend.h"
#include "fsutil.h"
#include "prompt.h"
#include "prompt_set.h"
#include "text.h"
#include "tokenizer.h"
#include "weights.h"

#include <cblas.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        if ((expr) != PAD_OK) {                                                                                        \
            fprintf(stderr, "bench_text: %s failed\n", #expr);                                                         \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

typedef struct bench_opts {
    const char *device, *cls_key, *task_s, *vocab, *prompts;
    int k, reps;
} bench_opts;

// Parses the options; returns 0 or the exit code 2.
static int parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){"cpu", "carpet", "cls", NULL, "official", 4, 5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_text: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--device") == 0)
            o->device = v;
        else if (strcmp(a, "--class") == 0)
            o->cls_key = v;
        else if (strcmp(a, "--task") == 0)
            o->task_s = v;
        else if (strcmp(a, "--shots") == 0)
            o->k = atoi(v);
        else if (strcmp(a, "--reps") == 0)
            o->reps = atoi(v);
        else if (strcmp(a, "--vocab") == 0)
            o->vocab = v;
        else if (strcmp(a, "--prompts") == 0)
            o->prompts = v;
        else {
            fprintf(stderr, "bench_text: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    return o->k < 1 || o->reps < 1 ? 2 : 0;
}

// The medians of the timed pieces (seconds).
typedef struct bench_times {
    double epoch, loss_grad, step, tvec, fwd, bwd;
} bench_times;

static void print_report(const pad_backend *be, const pad_clip_weights *hw, const pad_prompt_class *cls,
                         const pad_prompt_set *set, const bench_opts *o, int P, int n_np, int n_map, int n_lap, int L,
                         const bench_times *m, const pad_prompt_loss *loss) {
    const pad_text_cfg *tc = &hw->cfg.text;
    const int E = hw->cfg.embed_dim;
    // FLOPs of the text forward (GEMMs and attention; the backward's activation gradients are about the same)
    const double M = (double)P * L, C = tc->width, H = tc->mlp;
    const double gf =
        (tc->layers * (2.0 * M * (3 * C * C + C * C + 2 * C * H) + 2.0 * 2.0 * P * L * L * C) + 2.0 * P * C * E) / 1e9;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("bench_text: OpenBLAS core %s (set OPENBLAS_CORETYPE if it is a generic one, e.g. Prescott)\n",
           openblas_get_corename());
    printf("bench_text: %s backend (%d threads), text tower %d x %d (heads %d, MLP %d, embed %d), class %s (%s), task "
           "%s, %d shots\n",
           be->ops->name, threads, tc->layers, tc->width, tc->heads, tc->mlp, E, cls->key, pad_prompt_set_name(set),
           o->task_s, o->k);
    printf("  prompts per step: %d (%d NP + %d MAP + %d LAP), %d tokens each after the cut; forward %.1f GFLOP\n", P,
           n_np, n_map, n_lap, L, gf);
    printf("  median of %d reps (ms):\n", o->reps);
    printf("    epoch (forward + loss + backward + SGD step + loss download) %9.1f\n", m->epoch * 1e3);
    printf("      loss_grad (forward + loss + backward)                       %9.1f\n", m->loss_grad * 1e3);
    printf("      SGD step                                                    %9.3f\n", m->step * 1e3);
    printf("    text forward + anchors (the inference vectors)                %9.1f\n", m->tvec * 1e3);
    printf("    text encoder forward alone   %9.1f  (%.1f GFLOP/s)\n", m->fwd * 1e3, gf / m->fwd);
    printf("    text encoder backward alone  %9.1f  (%.1f GFLOP/s at the forward's FLOPs)\n", m->bwd * 1e3,
           gf / m->bwd);
    printf("  split of loss_grad: forward %.0f%%, loss + backward %.0f%%\n", 100.0 * m->tvec / m->loss_grad,
           100.0 * (m->loss_grad - m->tvec) / m->loss_grad);
    printf("  last loss %.6f (ce %.6f, eam %.6f, align %.6f)\n", loss->total, loss->ce, loss->eam, loss->align);
}

int main(int argc, char **argv) {
    bench_opts opt;
    if (parse_args(argc, argv, &opt) != 0) return 2;
    const char *device = opt.device, *cls_key = opt.cls_key, *task_s = opt.task_s, *vocab = opt.vocab;
    const char *prompts = opt.prompts;
    const int k = opt.k, reps = opt.reps;
    const pad_prompt_task task = strcmp(task_s, "seg") == 0 ? PAD_TASK_SEG : PAD_TASK_CLS;
    char found[4096];
    if (!vocab) {
        if (pad_tokenizer_find_vocab(found, sizeof found, NULL) == PAD_OK)
            vocab = found;
        else if (access("../shared/data/" PAD_TOKENIZER_VOCAB_NAME, R_OK) == 0)
            vocab = "../shared/data/" PAD_TOKENIZER_VOCAB_NAME;
        else
            return 1;
    }
    pad_backend_kind kind;
    CHECK(pad_backend_kind_parse(device, &kind));
    pad_backend *be = NULL;
    CHECK(pad_backend_init(&be, kind, 0));
    pad_tokenizer *tok = NULL;
    CHECK(pad_tokenizer_load(&tok, vocab));
    pad_prompt_set *set = NULL;
    pad_prompt_class cls;
    CHECK(pad_prompt_set_open(&set, prompts));
    CHECK(pad_prompt_set_class(set, cls_key, &cls));

    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_B16_PLUS_240);
    cfg.vision = (pad_vision_cfg){.width = 64, .layers = 1, .patch = 16, .image_size = 32, .mlp = 64}; // unused stub
    pad_clip_weights *hw = NULL, *w = NULL;
    CHECK(pad_weights_make_random(&hw, &cfg, 0));
    CHECK(pad_weights_to_backend(hw, be, &w));
    const pad_text_cfg *tc = &hw->cfg.text;
    const int E = hw->cfg.embed_dim, T = task == PAD_TASK_SEG ? 225 : 1;

    pad_prompt_opts o = pad_prompt_opts_default(task);
    pad_prompt_learner *pl = NULL;
    CHECK(pad_prompt_learner_create(&pl, w, tok, &cls, &o));
    CHECK(pad_prompt_learner_init_random(pl, 0));
    float *feats_h = malloc((size_t)k * T * E * sizeof(float)), *feats = NULL;
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)k * T * E; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        feats_h[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    CHECK(pad_buf_from_host(be, &feats, feats_h, (size_t)k * T * E));
    CHECK(pad_prompt_learner_set_images(pl, feats, k, T));
    int n_np, n_map, n_lap;
    const int P = pad_prompt_learner_counts(pl, &n_np, &n_map, &n_lap), L = pad_prompt_learner_seq_len(pl);
    float *tvec = (float *)pad_buf_alloc(be, (size_t)2 * E * sizeof(float));

    // a standalone encoder of the same batch for a clean forward / backward split
    pad_text_encoder *te = NULL;
    int32_t *eot = malloc((size_t)P * sizeof *eot);
    for (int p = 0; p < P; p++)
        eot[p] = L - 1 - p % 3;
    CHECK(pad_text_encoder_create(&te, w, P, L));
    CHECK(pad_text_encoder_set_batch(te, eot, P));
    float *emb = NULL, *demb = (float *)pad_buf_alloc(be, (size_t)P * L * tc->width * sizeof(float));
    float *feat = (float *)pad_buf_alloc(be, (size_t)P * E * sizeof(float));
    float *emb_h = malloc((size_t)P * L * tc->width * sizeof(float));
    for (size_t i = 0; i < (size_t)P * L * tc->width; i++)
        emb_h[i] = 0.01f * (float)((i * 2654435761u) % 1000) / 1000.0f;
    CHECK(pad_buf_from_host(be, &emb, emb_h, (size_t)P * L * tc->width));

    // warm-up
    pad_prompt_loss loss;
    CHECK(pad_prompt_learner_train_epoch(pl, 0, 100, &loss));
    CHECK(pad_text_encoder_forward(te, feat, emb));
    CHECK(pad_text_encoder_backward(te, demb, feat));
    CHECK(pad_backend_sync(be));

    double *t_epoch = malloc(sizeof(double) * reps), *t_lg = malloc(sizeof(double) * reps);
    double *t_step = malloc(sizeof(double) * reps), *t_tv = malloc(sizeof(double) * reps);
    double *t_fwd = malloc(sizeof(double) * reps), *t_bwd = malloc(sizeof(double) * reps);
    for (int r = 0; r < reps; r++) {
        double t0 = pad_now();
        CHECK(pad_prompt_learner_train_epoch(pl, 1 + r, 100, &loss)); // includes the loss download (a sync)
        double t1 = pad_now();
        CHECK(pad_prompt_learner_loss_grad(pl));
        CHECK(pad_backend_sync(be));
        double t2 = pad_now();
        CHECK(pad_prompt_learner_step(pl, 1e-3f));
        CHECK(pad_backend_sync(be));
        double t3 = pad_now();
        CHECK(pad_prompt_learner_text_vectors(pl, tvec));
        CHECK(pad_backend_sync(be));
        double t4 = pad_now();
        CHECK(pad_text_encoder_forward(te, feat, emb));
        CHECK(pad_backend_sync(be));
        double t5 = pad_now();
        CHECK(pad_text_encoder_backward(te, demb, feat));
        CHECK(pad_backend_sync(be));
        double t6 = pad_now();
        t_epoch[r] = t1 - t0;
        t_lg[r] = t2 - t1;
        t_step[r] = t3 - t2;
        t_tv[r] = t4 - t3;
        t_fwd[r] = t5 - t4;
        t_bwd[r] = t6 - t5;
    }
    const bench_times m = {median(t_epoch, reps), median(t_lg, reps),  median(t_step, reps),
                           median(t_tv, reps),    median(t_fwd, reps), median(t_bwd, reps)};
    print_report(be, hw, &cls, set, &opt, P, n_np, n_map, n_lap, L, &m, &loss);

    pad_buf_free(be, emb);
    pad_buf_free(be, demb);
    pad_buf_free(be, feat);
    pad_buf_free(be, tvec);
    pad_buf_free(be, feats);
    pad_text_encoder_free(te);
    pad_prompt_learner_free(pl);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_prompt_set_free(set);
    pad_tokenizer_free(tok);
    pad_backend_free(be);
    free(feats_h);
    free(emb_h);
    free(eot);
    free(t_epoch);
    free(t_lg);
    free(t_step);
    free(t_tv);
    free(t_fwd);
    free(t_bwd);
    return 0;
}
