/* test_prompt.c - PromptAD's prompt learner on the CPU against the PyTorch reference (tests/ref/ref_text.py,
 * float64 autograd): loss terms and gradients w.r.t. normal_ctx / abnormal_ctx at a given init for cls (bottle)
 * and seg (metal_nut, official token-axis EAM), three epochs of training (per-epoch losses and learned vectors),
 * the inference text vectors; central finite differences of the total loss; the learning-rate schedule; prompt
 * counts and sequence lengths of every official class with the real CLIP vocabulary (docs/method.md#prompt-counts). */
#include "check.h"
#include "prompt.h"
#include "prompt_set.h"
#include "tiny_model.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *be;
static void setup(void) {
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
}
static void teardown(void) {
    pad_backend_free(be);
}
TestSuite(prompt, .init = setup, .fini = teardown, .timeout = 300);

// The 0-merge byte-level vocabulary of the tiny fixtures model.
static pad_tokenizer *byte_tokenizer(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/byte_vocab.txt.gz", pad_test_tmpdir("prompt"));
    cr_assert(pad_tokenizer_write_byte_vocab(path) == PAD_OK);
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, path) == PAD_OK);
    cr_assert(pad_tokenizer_vocab_size(tok) == 514);
    return tok;
}

typedef struct fx_case {
    pad_st_file *fx;
    pad_clip_weights *hw, *w;
    pad_tokenizer *tok;
    pad_prompt_set *set;
    pad_prompt_learner *pl;
    pad_prompt_opts o;
    int W, E, B, T;
    size_t nn, na;
    float *feats_dev;
} fx_case;

static float *fx_get(fx_case *c, const char *name, size_t n) {
    const pad_st_tensor *t = pad_st_find(c->fx, name);
    cr_assert(t && (size_t)t->numel == n, "%s: tensor %s missing or of %lld values (want %zu)", c->fx->path, name,
              t ? (long long)t->numel : -1LL, n);
    float *x = NULL;
    cr_assert(pad_st_read_f32(c->fx, name, -1, NULL, &x, NULL) == PAD_OK);
    return x;
}

// The ablation of the next fx_open: 0 none, 1 no MAPs, 2 no LAPs (paper Table 2).
static int g_ablation;

// layers == 0: the fixtures' model (checksum checked); otherwise a faster tiny model with that many text layers
// (same vocabulary and sizes, other weights) for tests that do not compare with the reference.
static void fx_open(fx_case *c, const char *file, const char *cls_key, pad_prompt_task task, int layers) {
    memset(c, 0, sizeof *c);
    c->fx = pad_fixture_open(file);
    if (layers == 0)
        c->hw = pad_tiny514_weights(c->fx);
    else {
        pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
        cfg.text.vocab = 514;
        cfg.text.layers = layers;
        cr_assert(pad_weights_make_random(&c->hw, &cfg, 1) == PAD_OK);
    }
    cr_assert(pad_weights_to_backend(c->hw, be, &c->w) == PAD_OK);
    c->tok = byte_tokenizer();
    cr_assert(pad_prompt_set_open(&c->set, "official") == PAD_OK);
    pad_prompt_class cls;
    cr_assert(pad_prompt_set_class(c->set, cls_key, &cls) == PAD_OK);
    c->o = pad_prompt_opts_default(task);
    c->o.no_map = g_ablation == 1;
    c->o.no_lap = g_ablation == 2;
    cr_assert(pad_prompt_learner_create(&c->pl, c->w, c->tok, &cls, &c->o) == PAD_OK);
    c->W = c->hw->cfg.text.width;
    c->E = c->hw->cfg.embed_dim;
    c->nn = (size_t)c->o.n_pro * c->o.n_ctx * c->W;
    c->na = (size_t)c->o.n_pro_ab * c->o.n_ctx_ab * c->W;
    const pad_st_tensor *ti = pad_st_find(c->fx, "image_features");
    cr_assert(ti);
    c->B = (int)ti->shape[0];
    c->T = ti->ndim == 3 ? (int)ti->shape[1] : 1;
    float *feats = fx_get(c, "image_features", (size_t)c->B * c->T * c->E);
    cr_assert(pad_buf_from_host(be, &c->feats_dev, feats, (size_t)c->B * c->T * c->E) == PAD_OK);
    free(feats);
    cr_assert(pad_prompt_learner_set_images(c->pl, c->feats_dev, c->B, c->T) == PAD_OK);
    float *n0 = fx_get(c, "normal_ctx_init", c->nn), *a0 = fx_get(c, "abnormal_ctx_init", c->na);
    cr_assert(pad_prompt_learner_set_ctx(c->pl, n0, a0) == PAD_OK);
    free(n0);
    free(a0);
}

static void fx_close(fx_case *c) {
    pad_buf_free(be, c->feats_dev);
    pad_prompt_learner_free(c->pl);
    pad_prompt_set_free(c->set);
    pad_tokenizer_free(c->tok);
    pad_weights_free(c->w);
    pad_weights_free(c->hw);
    pad_st_close(c->fx);
}

static double fixture_f64(fx_case *c, const char *name, int i) {
    const pad_st_tensor *t = pad_st_find(c->fx, name);
    cr_assert(t && t->dtype == PAD_DTYPE_F64 && i < t->numel, "%s: no F64 tensor %s", c->fx->path, name);
    double v;
    memcpy(&v, t->data + (size_t)i * 8, 8);
    return v;
}

// Loss terms, gradients and text vectors at the init, then three epochs (per-epoch losses, learned vectors, text
// vectors after training), all against the reference. Epoch 0's gradient is the gradient at the init.
static void check_against_reference(const char *file, const char *cls_key, pad_prompt_task task, int want_P) {
    fx_case c;
    fx_open(&c, file, cls_key, task, 0);
    cr_assert(pad_prompt_learner_counts(c.pl, NULL, NULL, NULL) == want_P, "prompt count");
    float *tv = malloc(sizeof(float) * 2 * c.E), *tv_want = fx_get(&c, "text_vectors_init", (size_t)2 * c.E);
    cr_assert(pad_prompt_learner_text_vectors(c.pl, tv) == PAD_OK);
    PAD_ASSERT_REL("text vectors at the init", tv, tv_want, (size_t)2 * c.E, 1e-5);
    free(tv_want);
    const int N = 3;
    for (int e = 0; e < N; e++) {
        cr_assert(pad_prompt_learner_loss_grad(c.pl) == PAD_OK);
        pad_prompt_loss L;
        cr_assert(pad_prompt_learner_loss(c.pl, &L) == PAD_OK);
        if (e == 0) {
            const float got[4] = {L.total, L.ce, L.eam, L.align};
            const char *names[4] = {"total", "ce", "eam", "align"};
            for (int i = 0; i < 4; i++) {
                double want = fixture_f64(&c, "loss_terms", i);
                cr_assert(fabs(got[i] - want) <= 1e-5 * fabs(want) + 1e-7, "%s loss %s: got %.9g want %.9g", file,
                          names[i], got[i], want);
            }
            float *gn = malloc(sizeof(float) * c.nn), *ga = malloc(sizeof(float) * c.na);
            float *wn = fx_get(&c, "grad_normal_ctx", c.nn), *wa = fx_get(&c, "grad_abnormal_ctx", c.na);
            cr_assert(pad_prompt_learner_get_grad(c.pl, gn, ga) == PAD_OK);
            PAD_ASSERT_REL("d loss / d normal_ctx", gn, wn, c.nn, 1e-4);
            PAD_ASSERT_REL("d loss / d abnormal_ctx", ga, wa, c.na, 1e-4);
            for (int q = 0; q < c.o.n_pro_ab; q++) // each abnormal set separately (each has its own LAP rows)
                PAD_ASSERT_REL("d loss / d abnormal_ctx[q]", ga + (size_t)q * c.o.n_ctx_ab * c.W,
                               wa + (size_t)q * c.o.n_ctx_ab * c.W, (size_t)c.o.n_ctx_ab * c.W, 1e-4);
            free(gn);
            free(ga);
            free(wn);
            free(wa);
        }
        double want = fixture_f64(&c, "train_loss", e);
        cr_assert(fabs(L.total - want) <= 1e-5 * fabs(want), "%s epoch %d loss: got %.9g want %.9g", file, e, L.total,
                  want);
        cr_assert(pad_prompt_learner_step(c.pl, pad_prompt_lr(&c.o, e, N)) == PAD_OK);
    }
    float *n = malloc(sizeof(float) * c.nn), *a = malloc(sizeof(float) * c.na);
    float *nw = fx_get(&c, "normal_ctx_trained", c.nn), *aw = fx_get(&c, "abnormal_ctx_trained", c.na);
    float *n0 = fx_get(&c, "normal_ctx_init", c.nn);
    cr_assert(pad_prompt_learner_get_ctx(c.pl, n, a) == PAD_OK);
    PAD_ASSERT_REL("trained normal_ctx", n, nw, c.nn, 1e-4);
    PAD_ASSERT_REL("trained abnormal_ctx", a, aw, c.na, 1e-4);
    // the update itself (trained - init) must match too, not only the vectors dominated by their init
    for (size_t i = 0; i < c.nn; i++) {
        n[i] -= n0[i];
        nw[i] -= n0[i];
    }
    PAD_ASSERT_REL("normal_ctx update", n, nw, c.nn, 1e-3);
    float *a0 = fx_get(&c, "abnormal_ctx_init", c.na);
    for (size_t i = 0; i < c.na; i++) {
        a[i] -= a0[i];
        aw[i] -= a0[i];
    }
    // without LAPs the abnormal context has no gradient: its update is weight decay alone (about 1e-8, below the
    // float resolution of the ~0.02 parameters it is the difference of), so only the trained vectors are compared
    if (!c.o.no_lap) PAD_ASSERT_REL("abnormal_ctx update", a, aw, c.na, 1e-3);
    free(a0);
    tv_want = fx_get(&c, "text_vectors_trained", (size_t)2 * c.E);
    cr_assert(pad_prompt_learner_text_vectors(c.pl, tv) == PAD_OK);
    PAD_ASSERT_REL("text vectors after training", tv, tv_want, (size_t)2 * c.E, 1e-5);
    free(tv);
    free(tv_want);
    free(n);
    free(a);
    free(nw);
    free(aw);
    free(n0);
    fx_close(&c);
}

Test(prompt, cls_matches_reference) {
    check_against_reference("prompt_cls.safetensors", "bottle", PAD_TASK_CLS, 3 + 3 * 11 + 12);
}

// The ablations of the paper's Table 2 against the same reference: no MAPs (3 normal + 12 LAP prompts), no LAPs
// (3 normal + 33 MAP prompts); the alignment loss is 0 in both.
Test(prompt, cls_without_maps_matches_reference) {
    g_ablation = 1;
    check_against_reference("prompt_cls_nomap.safetensors", "bottle", PAD_TASK_CLS, 3 + 12);
}

Test(prompt, cls_without_laps_matches_reference) {
    g_ablation = 2;
    check_against_reference("prompt_cls_nolap.safetensors", "bottle", PAD_TASK_CLS, 3 + 3 * 11);
}

Test(prompt, no_maps_and_no_laps_is_an_error) {
    pad_prompt_opts o = pad_prompt_opts_default(PAD_TASK_CLS);
    o.no_map = o.no_lap = true;
    fx_case c;
    fx_open(&c, "prompt_cls.safetensors", "bottle", PAD_TASK_CLS, 2);
    pad_prompt_set *set = c.set;
    pad_prompt_class cls;
    cr_assert(pad_prompt_set_class(set, "bottle", &cls) == PAD_OK);
    pad_prompt_learner *pl = NULL;
    pad_test_log_start();
    cr_assert(pad_prompt_learner_create(&pl, c.w, c.tok, &cls, &o) == PAD_ERR_INVALID_ARG && !pl);
    cr_assert(strstr(pad_test_log_text(), "no MAPs and no LAPs"));
    pad_test_log_stop();
    fx_close(&c);
}

Test(prompt, seg_matches_reference) {
    check_against_reference("prompt_seg.safetensors", "metal_nut", PAD_TASK_SEG, 1 + 12 + 4);
}

// Central finite differences of the total loss w.r.t. a few parameter coordinates (CPU, float32 forward; a 2-layer
// text tower keeps it fast).
Test(prompt, gradients_match_central_finite_differences) {
    fx_case c;
    fx_open(&c, "prompt_cls.safetensors", "bottle", PAD_TASK_CLS, 2);
    float *n = fx_get(&c, "normal_ctx_init", c.nn), *a = fx_get(&c, "abnormal_ctx_init", c.na);
    float *gn = malloc(sizeof(float) * c.nn), *ga = malloc(sizeof(float) * c.na);
    cr_assert(pad_prompt_learner_loss_grad(c.pl) == PAD_OK);
    cr_assert(pad_prompt_learner_get_grad(c.pl, gn, ga) == PAD_OK);
    double gmax = 0.0;
    for (size_t i = 0; i < c.nn; i++)
        gmax = fmax(gmax, fabs(gn[i]));
    // the largest-gradient coordinate of each parameter plus a few fixed ones
    size_t in_max = 0, ia_max = 0;
    for (size_t i = 0; i < c.nn; i++)
        if (fabs(gn[i]) > fabs(gn[in_max])) in_max = i;
    for (size_t i = 0; i < c.na; i++)
        if (fabs(ga[i]) > fabs(ga[ia_max])) ia_max = i;
    const struct {
        bool abnormal;
        size_t i;
    } coords[] = {{false, in_max}, {false, 5}, {false, c.nn - 1}, {true, ia_max}, {true, 130}, {true, c.na - 3}};
    const float eps = 1e-3f;
    for (size_t k = 0; k < sizeof coords / sizeof coords[0]; k++) {
        float *p = coords[k].abnormal ? a : n;
        const size_t i = coords[k].i;
        const float g = coords[k].abnormal ? ga[i] : gn[i], x0 = p[i];
        double lv[2];
        for (int s = 0; s < 2; s++) {
            p[i] = x0 + (s ? -eps : eps);
            cr_assert(pad_prompt_learner_set_ctx(c.pl, n, a) == PAD_OK);
            cr_assert(pad_prompt_learner_loss_grad(c.pl) == PAD_OK);
            pad_prompt_loss L;
            cr_assert(pad_prompt_learner_loss(c.pl, &L) == PAD_OK);
            lv[s] = L.total;
        }
        p[i] = x0;
        const double fd = (lv[0] - lv[1]) / (2.0 * eps);
        cr_assert(fabs(fd - g) <= 5e-2 * fabs(g) + 2e-2 * gmax,
                  "finite differences, %s_ctx[%zu]: fd %.6g, backward %.6g (max |grad| %.3g)",
                  coords[k].abnormal ? "abnormal" : "normal", i, fd, g, gmax);
    }
    free(n);
    free(a);
    free(gn);
    free(ga);
    fx_close(&c);
}

Test(prompt, learning_rate_schedule_is_cosine) {
    pad_prompt_opts o = pad_prompt_opts_default(PAD_TASK_CLS);
    cr_assert(fabsf(pad_prompt_lr(&o, 0, 100) - 0.002f) < 1e-9f);
    cr_assert(fabsf(pad_prompt_lr(&o, 50, 100) - (1e-5f + (0.002f - 1e-5f) * 0.5f)) < 1e-9f);
    const double pi = 3.14159265358979323846;
    for (int e = 0; e < 100; e += 7)
        cr_assert(fabs(pad_prompt_lr(&o, e, 100) - (1e-5 + (0.002 - 1e-5) * (1 + cos(pi * e / 100)) / 2)) < 1e-9);
    cr_assert(pad_prompt_lr(&o, 99, 100) > 1e-5f && pad_prompt_lr(&o, 99, 100) < 1.1e-5f);
    pad_prompt_opts s = pad_prompt_opts_default(PAD_TASK_SEG);
    cr_assert(o.n_pro == 3 && s.n_pro == 1 && o.n_pro_ab == 4 && o.n_ctx == 4 && o.n_ctx_ab == 1);
    cr_assert(o.margin == 0.0f && o.lambda_align == 0.001f && !o.exp_logit_scale && s.eam == PAD_EAM_TOKEN_AXIS);
    // the optimizer of the official code (torch SGD), the same for both tasks
    for (int task = 0; task < 2; task++) {
        pad_prompt_opts d = pad_prompt_opts_default((pad_prompt_task)task);
        cr_assert(d.lr == 0.002f && d.lr_min == 1e-5f, "task %d: lr %g -> %g", task, d.lr, d.lr_min);
        cr_assert(d.momentum == 0.9f, "task %d: momentum %g, want 0.9", task, d.momentum);
        cr_assert(d.weight_decay == 5e-4f, "task %d: weight decay %g, want 5e-4", task, d.weight_decay);
    }
}

// |got - want| <= 2^-23 |want| for each value, naming the first that is not.
static void assert_within_two_units(const char *what, const float *got, const double *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= 0x1p-23 * fabs(want[i]), "%s[%zu]: got %.9g want %.9g", what, i, got[i],
                  want[i]);
}

// With a zero gradient an SGD step only decays: p1 = p0 (1 - lr wd), and the second step adds the momentum of the
// first: p2 = p1 - lr (momentum wd p0 + wd p1), for both parameters, with the default momentum 0.9 and weight decay
// 5e-4 written out here. The learner's gradients are zero until its first loss_grad (checked). lr = 1 and 0.5
// make the decay large (5e-4 relative) next to the tolerance: the step's float arithmetic rounds the final
// subtraction once (at most 2^-24 relative) and the small decay term's own rounding errors are 5e-4 times smaller,
// so 2^-23 relative bounds the error with a factor of two to spare, while a weight decay of 5e-5 or 0 misses by
// over 3000 times the tolerance.
Test(prompt, zero_gradient_steps_apply_weight_decay_and_momentum) {
    fx_case c;
    fx_open(&c, "prompt_seg.safetensors", "metal_nut", PAD_TASK_SEG, 1);
    const size_t n_all = c.nn + c.na;
    float *p0 = malloc(sizeof(float) * n_all), *p1 = malloc(sizeof(float) * n_all), *p2 = malloc(sizeof(float) * n_all);
    float *g = malloc(sizeof(float) * n_all);
    double *want = malloc(sizeof(double) * n_all);
    cr_assert(pad_prompt_learner_get_grad(c.pl, g, g + c.nn) == PAD_OK);
    for (size_t i = 0; i < n_all; i++)
        cr_assert(g[i] == 0.0f, "gradient %zu is %g before any loss_grad", i, g[i]);
    cr_assert(pad_prompt_learner_get_ctx(c.pl, p0, p0 + c.nn) == PAD_OK);
    const double wd = 5e-4, mom = 0.9;
    cr_assert(pad_prompt_learner_step(c.pl, 1.0f) == PAD_OK);
    cr_assert(pad_prompt_learner_get_ctx(c.pl, p1, p1 + c.nn) == PAD_OK);
    for (size_t i = 0; i < n_all; i++)
        want[i] = p0[i] * (1.0 - 1.0 * wd);
    assert_within_two_units("normal_ctx after a zero-gradient step", p1, want, c.nn);
    assert_within_two_units("abnormal_ctx after a zero-gradient step", p1 + c.nn, want + c.nn, c.na);
    cr_assert(pad_prompt_learner_step(c.pl, 0.5f) == PAD_OK);
    cr_assert(pad_prompt_learner_get_ctx(c.pl, p2, p2 + c.nn) == PAD_OK);
    for (size_t i = 0; i < n_all; i++)
        want[i] = p1[i] - 0.5 * (mom * wd * p0[i] + wd * p1[i]);
    assert_within_two_units("normal_ctx after a second zero-gradient step", p2, want, c.nn);
    assert_within_two_units("abnormal_ctx after a second zero-gradient step", p2 + c.nn, want + c.nn, c.na);
    double s0 = 0.0;
    for (size_t i = 0; i < n_all; i++)
        s0 += fabs(p0[i]);
    cr_assert(s0 > 0.0, "the parameters are all zero: the check would prove nothing");
    free(p0);
    free(p1);
    free(p2);
    free(g);
    free(want);
    fx_close(&c);
}

Test(prompt, training_is_deterministic_and_random_init_is_seeded) {
    fx_case c;
    fx_open(&c, "prompt_seg.safetensors", "metal_nut", PAD_TASK_SEG, 2);
    float *r1 = malloc(sizeof(float) * c.nn), *r2 = malloc(sizeof(float) * c.nn), *r3 = malloc(sizeof(float) * c.nn);
    cr_assert(pad_prompt_learner_init_random(c.pl, 7) == PAD_OK);
    cr_assert(pad_prompt_learner_get_ctx(c.pl, r1, NULL) == PAD_OK);
    double s2 = 0.0;
    for (size_t i = 0; i < c.nn; i++)
        s2 += (double)r1[i] * r1[i];
    const double sd = sqrt(s2 / c.nn);
    cr_assert(sd > 0.017 && sd < 0.023, "random init std %.4f (want 0.02)", sd);
    pad_prompt_loss L1, L2;
    for (int e = 0; e < 2; e++)
        cr_assert(pad_prompt_learner_train_epoch(c.pl, e, 2, &L1) == PAD_OK);
    cr_assert(pad_prompt_learner_get_ctx(c.pl, r1, NULL) == PAD_OK);
    cr_assert(pad_prompt_learner_init_random(c.pl, 7) == PAD_OK);
    for (int e = 0; e < 2; e++)
        cr_assert(pad_prompt_learner_train_epoch(c.pl, e, 2, &L2) == PAD_OK);
    cr_assert(pad_prompt_learner_get_ctx(c.pl, r2, NULL) == PAD_OK);
    cr_assert(memcmp(r1, r2, sizeof(float) * c.nn) == 0 && L1.total == L2.total, "training is not repeatable");
    cr_assert(pad_prompt_learner_init_random(c.pl, 8) == PAD_OK);
    cr_assert(pad_prompt_learner_get_ctx(c.pl, r3, NULL) == PAD_OK);
    cr_assert(memcmp(r1, r3, sizeof(float) * c.nn) != 0);
    free(r1);
    free(r2);
    free(r3);
    fx_close(&c);
}

Test(prompt, options_change_the_loss) {
    // exp(logit_scale), the per-token EAM, a margin and the LAP position all reach the loss
    fx_case c;
    fx_open(&c, "prompt_seg.safetensors", "metal_nut", PAD_TASK_SEG, 2);
    cr_assert(pad_prompt_learner_loss_grad(c.pl) == PAD_OK);
    pad_prompt_loss base;
    cr_assert(pad_prompt_learner_loss(c.pl, &base) == PAD_OK);
    float *n0 = fx_get(&c, "normal_ctx_init", c.nn), *a0 = fx_get(&c, "abnormal_ctx_init", c.na);
    for (int v = 0; v < 4; v++) {
        pad_prompt_opts o = pad_prompt_opts_default(PAD_TASK_SEG);
        if (v == 0) o.exp_logit_scale = true;
        if (v == 1) o.eam = PAD_EAM_PER_TOKEN;
        if (v == 2) o.margin = 0.5f;
        if (v == 3) o.lap = PAD_LAP_AFTER_NAME;
        pad_prompt_class cls;
        cr_assert(pad_prompt_set_class(c.set, "metal_nut", &cls) == PAD_OK);
        pad_prompt_learner *pl = NULL;
        cr_assert(pad_prompt_learner_create(&pl, c.w, c.tok, &cls, &o) == PAD_OK);
        cr_assert(pad_prompt_learner_set_ctx(pl, n0, a0) == PAD_OK);
        cr_assert(pad_prompt_learner_set_images(pl, c.feats_dev, c.B, c.T) == PAD_OK);
        cr_assert(pad_prompt_learner_loss_grad(pl) == PAD_OK);
        pad_prompt_loss L;
        cr_assert(pad_prompt_learner_loss(pl, &L) == PAD_OK);
        if (v == 0) cr_assert(L.ce != base.ce && L.eam == base.eam, "exp logit scale");
        if (v == 1) cr_assert(L.eam != base.eam && L.ce == base.ce, "per-token EAM");
        if (v == 2) cr_assert(L.eam > base.eam + 0.4f, "margin: eam %g vs %g", L.eam, base.eam);
        if (v == 3) cr_assert(L.align != base.align, "LAP position");
        pad_prompt_learner_free(pl);
    }
    free(n0);
    free(a0);
    fx_close(&c);
}

Test(prompt, bad_inputs_are_errors) {
    fx_case c;
    fx_open(&c, "prompt_cls.safetensors", "bottle", PAD_TASK_CLS, 2);
    cr_assert(pad_prompt_learner_set_images(c.pl, c.feats_dev, 1, 2) == PAD_ERR_INVALID_ARG); // cls takes T = 1
    cr_assert(pad_prompt_learner_loss_grad(c.pl) == PAD_OK); // a refused call leaves the learner as it was
    cr_assert(pad_prompt_learner_train_epoch(c.pl, 3, 3, NULL) == PAD_ERR_INVALID_ARG);
    pad_prompt_class cls;
    cr_assert(pad_prompt_set_class(c.set, "bottle", &cls) == PAD_OK);
    pad_prompt_opts o = pad_prompt_opts_default(PAD_TASK_CLS);
    o.n_pro = 0;
    pad_prompt_learner *pl = NULL;
    cr_assert(pad_prompt_learner_create(&pl, c.w, c.tok, &cls, &o) == PAD_ERR_INVALID_ARG && !pl);
    // a state that makes the prompt longer than 77 tokens
    const char *states[1] = {"{} with a very long description of a defect that goes on and on and on and on"};
    pad_prompt_class longc = {"x", "a rather long class name", states, 1};
    o = pad_prompt_opts_default(PAD_TASK_CLS);
    cr_assert(pad_prompt_learner_create(&pl, c.w, c.tok, &longc, &o) == PAD_ERR_INVALID_ARG && !pl);
    // a tokenizer whose vocabulary does not match the model
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
    cfg.text.vocab = 600;
    pad_clip_weights *w600 = NULL;
    cr_assert(pad_weights_make_random(&w600, &cfg, 0) == PAD_OK);
    pad_clip_weights *w600b = NULL;
    cr_assert(pad_weights_to_backend(w600, be, &w600b) == PAD_OK);
    cr_assert(pad_prompt_learner_create(&pl, w600b, c.tok, &cls, &o) == PAD_ERR_INVALID_ARG && !pl);
    pad_weights_free(w600b);
    pad_weights_free(w600);
    fx_close(&c);
}

// docs/method.md#prompt-counts with the real CLIP vocabulary: prompts per step and the longest sequence of every class.
Test(prompt, official_counts_and_lengths_with_clip_vocabulary) {
    PAD_REQUIRE_VOCAB();
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, pad_test_vocab_path()) == PAD_OK);
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY); // vocabulary 49408
    cfg.text.layers = 1;
    pad_clip_weights *hw = NULL, *w = NULL;
    cr_assert(pad_weights_make_random(&hw, &cfg, 3) == PAD_OK);
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    pad_prompt_set *set = NULL;
    cr_assert(pad_prompt_set_open(&set, "official") == PAD_OK);
    // class, n_MAP, NP length, max MAP length (lengths include SOT and EOT)
    const struct {
        const char *key;
        int n_map, np_len, map_len;
    } t[] = {{"carpet", 14, 8, 12},     {"grid", 14, 8, 12},       {"leather", 13, 8, 11},    {"tile", 13, 8, 11},
             {"wood", 12, 8, 11},       {"bottle", 11, 8, 12},     {"cable", 13, 8, 11},      {"capsule", 13, 8, 11},
             {"hazelnut", 12, 8, 11},   {"metal_nut", 12, 9, 13},  {"pill", 14, 8, 11},       {"screw", 11, 8, 12},
             {"toothbrush", 10, 8, 11}, {"transistor", 12, 9, 15}, {"zipper", 14, 8, 11},     {"candle", 15, 8, 13},
             {"capsules", 13, 8, 11},   {"cashew", 13, 8, 11},     {"chewinggum", 13, 9, 14}, {"fryum", 14, 9, 14},
             {"macaroni1", 13, 8, 13},  {"macaroni2", 13, 8, 13},  {"pcb1", 12, 10, 13},      {"pcb2", 12, 10, 13},
             {"pcb3", 12, 10, 13},      {"pcb4", 15, 10, 13},      {"pipe_fryum", 14, 10, 13}};
    cr_assert(pad_prompt_set_n_classes(set) == (int)(sizeof t / sizeof t[0]));
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        pad_prompt_class cls;
        cr_assert(pad_prompt_set_class(set, t[i].key, &cls) == PAD_OK);
        cr_assert(cls.n_states == t[i].n_map, "%s: n_MAP %d, want %d", t[i].key, cls.n_states, t[i].n_map);
        for (int task = 0; task < 2; task++) {
            pad_prompt_opts o = pad_prompt_opts_default((pad_prompt_task)task);
            pad_prompt_learner *pl = NULL;
            cr_assert(pad_prompt_learner_create(&pl, w, tok, &cls, &o) == PAD_OK, "%s", t[i].key);
            const int want_P = task ? 1 + t[i].n_map + 4 : 3 + 3 * t[i].n_map + 12;
            cr_assert(pad_prompt_learner_counts(pl, NULL, NULL, NULL) == want_P, "%s: P", t[i].key);
            // the cut: the longest of the MAP prompts and the LAP prompt (NP length + 1)
            const int want_L = t[i].map_len > t[i].np_len + 1 ? t[i].map_len : t[i].np_len + 1;
            cr_assert(pad_prompt_learner_seq_len(pl) == want_L, "%s: %d tokens, want %d", t[i].key,
                      pad_prompt_learner_seq_len(pl), want_L);
            pad_prompt_learner_free(pl);
        }
    }
    pad_prompt_set_free(set);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_tokenizer_free(tok);
}
