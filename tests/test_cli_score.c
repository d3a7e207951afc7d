/* test_cli_score.c - `promptad score` end to end (docs/cli.md) with the tiny 514-token model and the byte-level
 * vocabulary: the dump's names, shapes and dtypes; equality with the library path (vision tower, prompt learner,
 * memory bank and scorer in process); independent recomputations in double from the tower's features and the
 * dumped maps (text scores as sigmoids of cosines, the k-NN visual map by brute force, the image score from the
 * bilinear upsample of visual_map, pixel_map as Gaussian(bilinear(1/(1/T + 1/V))) with scipy's reflect rule); a
 * test image equal to a shot scoring zero; train-prompts -> score chaining; and bad input (missing or misshapen
 * context tensors, unreadable images, unknown class, bad options): a clear error, the right exit code, no dump. */
#include "check.h"
#include "image.h"
#include "prompt.h"
#include "prompt_set.h"
#include "score.h"
#include "st_file.h"
#include "tiny_model.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define W_TXT  128 // text width of the tiny model
#define N_TEST 3
#define RES    30 // not a multiple of the grid (4): the bilinear weights are not trivial

typedef struct env {
    char *dir;
    char model[512], vocab[512], shots[1100], shot[2][512], test[N_TEST][512], tests[1700], ctx[512];
} env;

static env make_env(void) {
    env e;
    e.dir = pad_test_tmpdir("cli_score");
    pad_tiny514_cli_files(e.dir, e.model, e.vocab, sizeof e.model);
    for (int i = 0; i < 2; i++) {
        snprintf(e.shot[i], sizeof e.shot[i], "%s/shot%d.png", e.dir, i);
        pad_test_write_pattern_png(e.shot[i], 80, 70, i);
    }
    snprintf(e.shots, sizeof e.shots, "%s,%s", e.shot[0], e.shot[1]);
    // test images: a new pattern, shot 1 itself (its visual score must vanish), a third size and pattern
    const int sizes[N_TEST][3] = {{90, 50, 2}, {80, 70, 1}, {41, 67, 3}};
    size_t len = 0;
    for (int i = 0; i < N_TEST; i++) {
        snprintf(e.test[i], sizeof e.test[i], "%s/test%d.png", e.dir, i);
        pad_test_write_pattern_png(e.test[i], sizes[i][0], sizes[i][1], sizes[i][2]);
        len += (size_t)snprintf(e.tests + len, sizeof e.tests - len, "%s%s", i ? " " : "", e.test[i]);
    }
    snprintf(e.ctx, sizeof e.ctx, "%s/ctx.safetensors", e.dir);
    pad_test_write_ctx(e.ctx, 3, 4, W_TXT, 4, 1, W_TXT, 7);
    return e;
}

static void free_env(env *e) {
    pad_cmd_result r = pad_cmd_run("rm -rf '%s'", e->dir);
    pad_cmd_free(&r);
}

static pad_cmd_result score(const env *e, const char *cls, const char *ctx, const char *shots, const char *res,
                            const char *out, const char *extra, const char *imgs) {
    // PROMPTAD_NO_REEXEC: the binary keeps this process's OpenBLAS kernels, so the library path below gives bitwise
    // the same numbers (see test_cli_train.c)
    return pad_cmd_run("PROMPTAD_NO_REEXEC=1 %s score --weights %s --vocab %s --device cpu --class %s --ctx %s "
                       "--shots %s --resolution %s --out %s %s %s",
                       pad_test_binary(), e->model, e->vocab, cls, ctx, shots, res, out, extra, imgs);
}

// ----------------------------------------------------------------------------
// the library path

typedef struct feats {
    int n, E, P, D, G;
    float tau;
    float *cls, *tok, *mid1, *mid2; // test images (n, ...)
    float *smid1, *smid2;           // shots (2, P, D)
    float tvec[2 * 64];             // t_n, t_a
    float *image_score, *text_image_score, *visual_map, *text_map, *pixel_map;
} feats;

static float *preprocess(const char (*paths)[512], int n, int S) {
    float *pix = malloc(sizeof(float) * (size_t)n * 3 * S * S);
    for (int i = 0; i < n; i++) {
        pad_image img;
        cr_assert(pad_image_load(&img, paths[i]) == PAD_OK);
        cr_assert(pad_preprocess(&img, PAD_PREPROCESS_SQUASH, S, false, pix + (size_t)i * 3 * S * S) == PAD_OK);
        pad_image_free(&img);
    }
    return pix;
}

// Features, text vectors and scores of the env's test images through the library (CPU backend, where host memory
// is backend memory).
static feats library_score(const env *e, const char *cls_key, const char *ctx_path, bool exp_scale) {
    feats f;
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_clip_weights *hw = NULL, *w = NULL;
    cr_assert(pad_weights_load(&hw, e->model, PAD_WEIGHTS_ALL) == PAD_OK);
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    const int S = hw->cfg.vision.image_size, n = N_TEST;
    f.n = n;
    f.E = hw->cfg.embed_dim;
    f.G = hw->cfg.vision.grid;
    f.P = f.G * f.G;
    f.D = hw->cfg.vision.width;
    f.tau = pad_score_tau(hw->logit_scale, exp_scale);
    cr_assert(f.E == 64);
    const size_t P = (size_t)f.P, D = (size_t)f.D, E = (size_t)f.E;
    f.cls = malloc(sizeof(float) * n * E);
    f.tok = malloc(sizeof(float) * n * P * E);
    f.mid1 = malloc(sizeof(float) * n * P * D);
    f.mid2 = malloc(sizeof(float) * n * P * D);
    f.smid1 = malloc(sizeof(float) * 2 * P * D);
    f.smid2 = malloc(sizeof(float) * 2 * P * D);
    pad_vit *vit = NULL;
    pad_vit_params vp = pad_vit_default_params();
    cr_assert(pad_vit_create(&vit, be, w, &vp) == PAD_OK);
    float *pix = preprocess(e->shot, 2, S);
    pad_vit_out so = {NULL, NULL, f.smid1, f.smid2};
    cr_assert(pad_vit_encode_host(vit, pix, 2, &so) == PAD_OK);
    free(pix);
    pix = preprocess(e->test, n, S);
    pad_vit_out to = {f.cls, f.tok, f.mid1, f.mid2};
    cr_assert(pad_vit_encode_host(vit, pix, n, &to) == PAD_OK);
    free(pix);
    pad_vit_free(vit);
    // text vectors from the context vectors
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, e->vocab) == PAD_OK);
    pad_prompt_set *set = NULL;
    pad_prompt_class cls;
    cr_assert(pad_prompt_set_open(&set, "official") == PAD_OK && pad_prompt_set_class(set, cls_key, &cls) == PAD_OK);
    pad_st_file *fc = NULL;
    cr_assert(pad_st_open(&fc, ctx_path) == PAD_OK);
    const pad_st_tensor *tn = pad_st_find(fc, "normal_ctx");
    cr_assert(tn);
    pad_prompt_opts o = pad_prompt_opts_default(PAD_TASK_CLS);
    o.n_pro = (int)tn->shape[0];
    o.exp_logit_scale = exp_scale;
    float *n0 = NULL, *a0 = NULL;
    cr_assert(pad_st_read_f32(fc, "normal_ctx", -1, NULL, &n0, NULL) == PAD_OK);
    cr_assert(pad_st_read_f32(fc, "abnormal_ctx", -1, NULL, &a0, NULL) == PAD_OK);
    pad_prompt_learner *pl = NULL;
    cr_assert(pad_prompt_learner_create(&pl, w, tok, &cls, &o) == PAD_OK);
    cr_assert(pad_prompt_learner_set_ctx(pl, n0, a0) == PAD_OK);
    cr_assert(pad_prompt_learner_text_vectors(pl, f.tvec) == PAD_OK);
    pad_prompt_learner_free(pl);
    // memory bank and scorer
    pad_bank *bank = NULL;
    cr_assert(pad_bank_init(&bank, be, f.smid1, f.smid2, 2, f.P, f.D) == PAD_OK);
    pad_scorer *sc = NULL;
    pad_score_cfg cfg = pad_score_cfg_default(n, f.G, RES);
    cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_OK);
    f.image_score = malloc(sizeof(float) * n);
    f.text_image_score = malloc(sizeof(float) * n);
    f.visual_map = malloc(sizeof(float) * n * P);
    f.text_map = malloc(sizeof(float) * n * P);
    f.pixel_map = malloc(sizeof(float) * n * RES * RES);
    pad_score_feats sf = {f.cls, f.tok, f.mid1, f.mid2};
    pad_score_outputs out = {f.image_score, f.text_image_score, f.visual_map, f.text_map, f.pixel_map};
    cr_assert(pad_score_all(sc, bank, &sf, n, f.E, f.tvec, f.tvec + E, f.tau, &out) == PAD_OK);
    pad_scorer_free(sc);
    pad_bank_free(bank);
    pad_st_close(fc);
    free(n0);
    free(a0);
    pad_prompt_set_free(set);
    pad_tokenizer_free(tok);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_backend_free(be);
    return f;
}

static void free_feats(feats *f) {
    float *p[] = {f->cls,        f->tok,      f->mid1,        f->mid2,
                  f->smid1,      f->smid2,    f->image_score, f->text_image_score,
                  f->visual_map, f->text_map, f->pixel_map};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
}

// ----------------------------------------------------------------------------
// independent references in double

static double dot_d(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

// sigmoid(tau (f̂·t_a - f̂·t_n)) with f̂ = f / max(||f||, 1e-12)
static double text_ref(const float *f, const float *t_n, const float *t_a, int E, double tau) {
    const double nrm = fmax(sqrt(dot_d(f, f, E)), 1e-12);
    const double z = tau * (dot_d(f, t_a, E) - dot_d(f, t_n, E)) / nrm;
    return 1.0 / (1.0 + exp(-z));
}

// min over the bank rows of (1 - q̂·ĝ) / 2
static double knn_ref(const float *q, const float *bank, int Nb, int D) {
    const double qn = sqrt(dot_d(q, q, D));
    double best = INFINITY;
    for (int j = 0; j < Nb; j++) {
        const float *g = bank + (size_t)j * D;
        const double d = (1.0 - dot_d(q, g, D) / (qn * sqrt(dot_d(g, g, D)))) / 2.0;
        if (d < best) best = d;
    }
    return best;
}

// torch F.interpolate(bilinear, align_corners=False) of a G x G map to R x R, in double
static void bilinear_ref(const double *in, int G, int R, double *out) {
    for (int y = 0; y < R; y++)
        for (int x = 0; x < R; x++) {
            double sy = fmax((y + 0.5) * G / R - 0.5, 0), sx = fmax((x + 0.5) * G / R - 0.5, 0);
            int y0 = (int)sy, x0 = (int)sx, y1 = y0 < G - 1 ? y0 + 1 : y0, x1 = x0 < G - 1 ? x0 + 1 : x0;
            double ly = sy - y0, lx = sx - x0;
            out[y * R + x] = (1 - ly) * ((1 - lx) * in[y0 * G + x0] + lx * in[y0 * G + x1]) +
                             ly * ((1 - lx) * in[y1 * G + x0] + lx * in[y1 * G + x1]);
        }
}

// scipy.ndimage.gaussian_filter(sigma 4, truncate 4, mode 'reflect') of an R x R map, in double
static void gaussian_ref(double *m, int R) {
    const int r = 16;
    double w[33], s = 0, *tmp = malloc(sizeof(double) * R * R);
    for (int k = -r; k <= r; k++)
        s += w[k + r] = exp(-0.5 * k * k / 16.0);
    for (int k = 0; k < 2 * r + 1; k++)
        w[k] /= s;
    for (int axis = 0; axis < 2; axis++) {
        for (int i = 0; i < R; i++)
            for (int j = 0; j < R; j++) {
                double acc = 0;
                for (int k = -r; k <= r; k++) {
                    int t = ((axis == 0 ? i : j) + k) % (2 * R);
                    if (t < 0) t += 2 * R;
                    if (t >= R) t = 2 * R - 1 - t; // half-sample symmetric: d c b a | a b c d | d c b a
                    acc += w[k + r] * (axis == 0 ? m[t * R + j] : m[i * R + t]);
                }
                tmp[i * R + j] = acc;
            }
        memcpy(m, tmp, sizeof(double) * R * R);
    }
    free(tmp);
}

// ----------------------------------------------------------------------------
// tests

static float *read_dump(pad_st_file *f, const char *name, int ndim, const int64_t *shape) {
    const pad_st_tensor *t = pad_st_find(f, name);
    cr_assert(t, "dump has no '%s'", name);
    cr_assert(t->dtype == PAD_DTYPE_F32, "%s is %s, not F32", name, pad_dtype_name(t->dtype));
    return pad_fixture_f32(f, name, ndim, shape);
}

typedef struct dump {
    float *image_score, *text_image_score, *visual_map, *text_map, *pixel_map, *text_features;
} dump;

static dump read_score_dump(const char *path, int n, int G, int R, int E) {
    pad_st_file *f = NULL;
    cr_assert(pad_st_open(&f, path) == PAD_OK);
    dump d;
    d.image_score = read_dump(f, "image_score", 1, (int64_t[]){n});
    d.text_image_score = read_dump(f, "text_image_score", 1, (int64_t[]){n});
    d.visual_map = read_dump(f, "visual_map", 3, (int64_t[]){n, G, G});
    d.text_map = read_dump(f, "text_map", 3, (int64_t[]){n, G, G});
    d.pixel_map = read_dump(f, "pixel_map", 3, (int64_t[]){n, R, R});
    d.text_features = read_dump(f, "text_features", 2, (int64_t[]){2, E});
    pad_st_close(f);
    return d;
}

static void free_dump(dump *d) {
    free(d->image_score);
    free(d->text_image_score);
    free(d->visual_map);
    free(d->text_map);
    free(d->pixel_map);
    free(d->text_features);
}

// The maps' relations that need nothing but the dump: text_image_score in (0, 1); image_score = 1 / (1/max(
// bilinear_R(visual_map)) + 1/text_image_score); pixel_map = Gaussian(bilinear_R(1/(1/text_map + 1/visual_map))).
static void check_maps(const dump *d, int n, int G) {
    const int P = G * G;
    double *up = malloc(sizeof(double) * RES * RES), grid[64];
    cr_assert(P <= 64);
    for (int i = 0; i < n; i++) {
        cr_assert(d->text_image_score[i] > 0 && d->text_image_score[i] < 1, "text_image_score[%d] = %g", i,
                  d->text_image_score[i]);
        for (int p = 0; p < P; p++)
            grid[p] = d->visual_map[i * P + p];
        bilinear_ref(grid, G, RES, up);
        double vmax = -INFINITY;
        for (int k = 0; k < RES * RES; k++)
            vmax = fmax(vmax, up[k]);
        const double img = 1.0 / (1.0 / vmax + 1.0 / d->text_image_score[i]);
        cr_assert(fabs(d->image_score[i] - img) <= 1e-6 * fabs(img) + 1e-9, "image_score[%d]: %.9g, want %.9g", i,
                  d->image_score[i], img);
        for (int p = 0; p < P; p++)
            grid[p] = 1.0 / (1.0 / d->text_map[i * P + p] + 1.0 / d->visual_map[i * P + p]);
        bilinear_ref(grid, G, RES, up);
        gaussian_ref(up, RES);
        double scale = 0;
        for (int k = 0; k < RES * RES; k++)
            scale = fmax(scale, fabs(up[k]));
        for (int k = 0; k < RES * RES; k++)
            cr_assert(fabs(d->pixel_map[(size_t)i * RES * RES + k] - up[k]) <= 1e-6 * scale + 1e-12,
                      "pixel_map[%d] pixel %d: %.9g, want %.9g", i, k, d->pixel_map[(size_t)i * RES * RES + k], up[k]);
    }
    free(up);
}

// The dump against the library (bitwise), the text and visual maps against double recomputations from the tower's
// features (sigmoids of cosines with the dumped text vectors; brute-force nearest neighbours over the shots'
// patches, mean of the two taps), and check_maps.
static void check_dump(const dump *d, const feats *f) {
    const int n = f->n, P = f->P, E = f->E, D = f->D;
    PAD_ASSERT_CLOSE("text_features", d->text_features, f->tvec, (size_t)2 * E, 0, 0);
    PAD_ASSERT_CLOSE("image_score", d->image_score, f->image_score, (size_t)n, 0, 0);
    PAD_ASSERT_CLOSE("text_image_score", d->text_image_score, f->text_image_score, (size_t)n, 0, 0);
    PAD_ASSERT_CLOSE("visual_map", d->visual_map, f->visual_map, (size_t)n * P, 0, 0);
    PAD_ASSERT_CLOSE("text_map", d->text_map, f->text_map, (size_t)n * P, 0, 0);
    PAD_ASSERT_CLOSE("pixel_map", d->pixel_map, f->pixel_map, (size_t)n * RES * RES, 0, 0);
    const float *t_n = d->text_features, *t_a = d->text_features + E;
    for (int i = 0; i < n; i++) {
        const double sT = text_ref(f->cls + (size_t)i * E, t_n, t_a, E, f->tau);
        cr_assert(fabs(d->text_image_score[i] - sT) <= 1e-6, "text_image_score[%d]: %.9g, want %.9g", i,
                  d->text_image_score[i], sT);
        for (int p = 0; p < P; p++) {
            const double T = text_ref(f->tok + ((size_t)i * P + p) * E, t_n, t_a, E, f->tau);
            cr_assert(fabs(d->text_map[i * P + p] - T) <= 1e-6, "text_map[%d,%d]: %.9g, want %.9g", i, p,
                      d->text_map[i * P + p], T);
            const size_t q = ((size_t)i * P + p) * D;
            const double V =
                0.5 * (knn_ref(f->mid1 + q, f->smid1, 2 * P, D) + knn_ref(f->mid2 + q, f->smid2, 2 * P, D));
            cr_assert(fabs(d->visual_map[i * P + p] - V) <= 1e-6, "visual_map[%d,%d]: %.9g, want %.9g", i, p,
                      d->visual_map[i * P + p], V);
        }
    }
    check_maps(d, n, f->G);
}

Test(cli_score, contract_library_and_references, .timeout = 300) {
    env e = make_env();
    char out[600];
    snprintf(out, sizeof out, "%s/score.safetensors", e.dir);
    pad_cmd_result r = score(&e, "bottle", e.ctx, e.shots, "30", out, "", e.tests);
    cr_assert(r.exit_code == 0, "score failed (%d): %s", r.exit_code, r.err);
    cr_assert(r.out[0] == '\0', "score printed to stdout: %s", r.out);
    pad_cmd_free(&r);
    feats f = library_score(&e, "bottle", e.ctx, false);
    cr_assert(f.G == 4 && f.D == 128);
    dump d = read_score_dump(out, N_TEST, f.G, RES, f.E);
    check_dump(&d, &f);
    // test image 1 is shot 1: every patch finds itself in the bank
    for (int p = 0; p < f.P; p++)
        cr_assert(fabsf(d.visual_map[f.P + p]) <= 1e-6f, "visual_map of the shot itself, patch %d: %g", p,
                  d.visual_map[f.P + p]);
    cr_assert(fabsf(d.image_score[1]) <= 1e-6f, "image_score of the shot itself: %g", d.image_score[1]);
    for (int i = 0; i < N_TEST; i++)
        if (i != 1) cr_assert(d.image_score[i] > 1e-4f, "image_score[%d] = %g", i, d.image_score[i]);
    free_dump(&d);
    free_feats(&f);

    // --logit-scale exp: the temperature exp(logit_scale) = 100
    r = score(&e, "bottle", e.ctx, e.shots, "30", out, "--logit-scale exp", e.tests);
    cr_assert(r.exit_code == 0, "score --logit-scale exp failed (%d): %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    f = library_score(&e, "bottle", e.ctx, true);
    cr_assert(fabsf(f.tau - 100.0f) < 1e-3f, "tau %g", f.tau);
    d = read_score_dump(out, N_TEST, f.G, RES, f.E);
    check_dump(&d, &f);
    free_dump(&d);
    free_feats(&f);
    free_env(&e);
}

// The context written by train-prompts is accepted as it is: cls (n_pro 3) and seg (n_pro 1, read from the shape);
// the text vectors of the score dump are those train-prompts reports for its final prompts, bit for bit, and the
// maps hold together (check_maps; the library equality is the contract test's).
Test(cli_score, train_prompts_then_score, .timeout = 300) {
    env e = make_env();
    const char *tasks[2] = {"cls", "seg"};
    const int n_pro[2] = {3, 1};
    for (int t = 0; t < 2; t++) {
        char init[600], ctx[600], out[600];
        snprintf(init, sizeof init, "%s/init_%s.safetensors", e.dir, tasks[t]);
        snprintf(ctx, sizeof ctx, "%s/ctx_%s.safetensors", e.dir, tasks[t]);
        snprintf(out, sizeof out, "%s/score_%s.safetensors", e.dir, tasks[t]);
        pad_test_write_ctx(init, n_pro[t], 4, W_TXT, 4, 1, W_TXT, 11 + (uint64_t)t);
        pad_cmd_result r = pad_cmd_run("PROMPTAD_NO_REEXEC=1 %s train-prompts --weights %s --vocab %s --device cpu "
                                       "--class pcb1 --task %s --shots %s --epochs 1 --init %s --out %s",
                                       pad_test_binary(), e.model, e.vocab, tasks[t], e.shots, init, ctx);
        cr_assert(r.exit_code == 0, "train-prompts %s failed (%d): %s", tasks[t], r.exit_code, r.err);
        pad_cmd_free(&r);
        r = score(&e, "pcb1", ctx, e.shots, "30", out, "", e.tests);
        cr_assert(r.exit_code == 0, "score with the %s prompts failed (%d): %s", tasks[t], r.exit_code, r.err);
        pad_cmd_free(&r);
        pad_st_file *ft = NULL;
        cr_assert(pad_st_open(&ft, ctx) == PAD_OK);
        float *want = pad_fixture_f32(ft, "text_features", 2, (int64_t[]){2, 64});
        pad_st_close(ft);
        dump d = read_score_dump(out, N_TEST, 4, RES, 64);
        PAD_ASSERT_CLOSE("text_features of train-prompts", d.text_features, want, 128, 0, 0);
        check_maps(&d, N_TEST, 4);
        free(want);
        free_dump(&d);
    }
    free_env(&e);
}

Test(cli_score, bad_input_is_a_clear_error, .timeout = 300) {
    env e = make_env();
    char out[600], no_ab[600], bad_nctx[600], bad_width[600], bad_ndim[600], notimg[600], shots_bad[1300];
    char tests_bad[2400], tests_missing[2400], missing_ctx[600], missing_w[600];
    snprintf(out, sizeof out, "%s/x.safetensors", e.dir);
    snprintf(no_ab, sizeof no_ab, "%s/no_ab.safetensors", e.dir);
    pad_test_write_ctx(no_ab, 3, 4, W_TXT, 0, 1, W_TXT, 1);
    snprintf(bad_nctx, sizeof bad_nctx, "%s/bad_nctx.safetensors", e.dir);
    pad_test_write_ctx(bad_nctx, 3, 2, W_TXT, 4, 1, W_TXT, 2); // n_ctx 2 where PromptAD has 4
    snprintf(bad_width, sizeof bad_width, "%s/bad_width.safetensors", e.dir);
    pad_test_write_ctx(bad_width, 3, 4, W_TXT, 4, 1, 64, 3); // abnormal_ctx of a 64-wide text tower
    snprintf(bad_ndim, sizeof bad_ndim, "%s/bad_ndim.safetensors", e.dir);
    {
        pad_st_writer *w = NULL;
        float z[4 * W_TXT] = {0};
        cr_assert(pad_st_writer_init(&w) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "normal_ctx", 2, (int64_t[]){4, W_TXT}, z) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "abnormal_ctx", 3, (int64_t[]){4, 1, W_TXT}, z) == PAD_OK);
        cr_assert(pad_st_writer_save(w, bad_ndim) == PAD_OK);
        pad_st_writer_free(w);
    }
    snprintf(notimg, sizeof notimg, "%s/not_an_image.png", e.dir);
    pad_test_write_file(notimg, "hello", 5);
    snprintf(shots_bad, sizeof shots_bad, "%s,%s", e.shot[0], notimg);
    snprintf(tests_bad, sizeof tests_bad, "%s %s", e.tests, notimg);
    snprintf(tests_missing, sizeof tests_missing, "%s /nonexistent/test.png", e.test[0]);
    snprintf(missing_ctx, sizeof missing_ctx, "%s/none.safetensors", e.dir);
    snprintf(missing_w, sizeof missing_w, "%s/none_weights.safetensors", e.dir);
    struct {
        const char *cls, *ctx, *shots, *res, *extra, *imgs;
        int code;
        const char *want[3];
    } cases[] = {
        {"tubes", e.ctx, e.shots, "30", "", e.tests, 1, {"'tubes'", "pipe_fryum", NULL}},
        {"bottle", e.ctx, e.shots, "30", "--prompts nosuchset", e.tests, 1, {"nosuchset", NULL, NULL}},
        {"bottle", no_ab, e.shots, "30", "", e.tests, 1, {"abnormal_ctx", "missing", "(n_pro_ab, 1, 128)"}},
        {"bottle", bad_nctx, e.shots, "30", "", e.tests, 1, {"normal_ctx", "(n_pro, 4, 128)", "(3, 2, 128)"}},
        {"bottle", bad_width, e.shots, "30", "", e.tests, 1, {"abnormal_ctx", "(n_pro_ab, 1, 128)", "(4, 1, 64)"}},
        {"bottle", bad_ndim, e.shots, "30", "", e.tests, 1, {"normal_ctx", "(n_pro, 4, 128)", "(4, 128)"}},
        {"bottle", missing_ctx, e.shots, "30", "", e.tests, 1, {"none.safetensors", NULL, NULL}},
        {"bottle", e.ctx, shots_bad, "30", "", e.tests, 1, {"not_an_image.png", NULL, NULL}},
        {"bottle", e.ctx, "/nonexistent/shot.png", "30", "", e.tests, 1, {"/nonexistent/shot.png", NULL, NULL}},
        {"bottle", e.ctx, e.shots, "30", "", tests_bad, 1, {"not_an_image.png", NULL, NULL}},
        {"bottle", e.ctx, e.shots, "30", "", tests_missing, 1, {"/nonexistent/test.png", NULL, NULL}},
        {"bottle", e.ctx, e.shots, "0", "", e.tests, 2, {"--resolution", NULL, NULL}},
        {"bottle", e.ctx, e.shots, "4x", "", e.tests, 2, {"--resolution", "4x", NULL}},
        {"bottle", e.ctx, e.shots, "30", "", "", 2, {"no test images", NULL, NULL}},
        {"bottle", e.ctx, e.shots, "30", "--logit-scale log", e.tests, 2, {"--logit-scale", "log", NULL}},
        {"bottle", e.ctx, e.shots, "30", "--lap-position middle", e.tests, 2, {"--lap-position", NULL, NULL}},
        {"bottle", e.ctx, e.shots, "30", "--preprocess stretch", e.tests, 2, {"stretch", NULL, NULL}},
        {"bottle", e.ctx, "a.png,,b.png", "30", "", e.tests, 2, {"--shots", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pad_cmd_result r =
            score(&e, cases[i].cls, cases[i].ctx, cases[i].shots, cases[i].res, out, cases[i].extra, cases[i].imgs);
        cr_assert(r.exit_code == cases[i].code, "case %zu: exit %d (want %d), stderr: %s", i, r.exit_code,
                  cases[i].code, r.err);
        for (int k = 0; k < 3 && cases[i].want[k]; k++)
            cr_assert(strstr(r.err, cases[i].want[k]), "case %zu: '%s' not in stderr: %s", i, cases[i].want[k], r.err);
        cr_assert(!strstr(r.err, "Segmentation") && !strstr(r.err, "Assert"), "case %zu crashed: %s", i, r.err);
        cr_assert(access(out, F_OK) != 0, "case %zu wrote %s", i, out);
        pad_cmd_free(&r);
    }
    // a missing weights file points to weights/README.md; a missing required option is a usage error
    pad_cmd_result r = pad_cmd_run("%s score --weights %s --class bottle --ctx %s --shots %s --resolution 30 --out %s "
                                   "%s",
                                   pad_test_binary(), missing_w, e.ctx, e.shots, out, e.tests);
    cr_assert(r.exit_code == 1 && strstr(r.err, "none_weights.safetensors") && strstr(r.err, "weights/README.md"),
              "missing weights: exit %d, stderr: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("%s score --weights %s --class bottle --shots %s --resolution 30 --out %s %s", pad_test_binary(),
                    e.model, e.shots, out, e.tests);
    cr_assert(r.exit_code == 2 && strstr(r.err, "required"), "missing --ctx: exit %d, stderr: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    cr_assert(access(out, F_OK) != 0, "a failed run wrote %s", out);
    free_env(&e);
}
