/* test_cohort.c - cohort training (prompt_cohort.h) on the CPU: learners of different classes, tasks, shot counts,
 * seeds and cut lengths trained in lockstep with one text forward/backward per epoch give, for every member, the
 * same bits as the same learner trained alone: per-epoch loss terms and text vectors, the final gradients and the
 * learned context vectors. And `promptad run` with run.cohort auto (all shots x seeds x tasks of a class in one
 * cohort), 4 (two groups per cohort) and auto within a run.cohort_mem budget writes every unit with the same bytes
 * as run.cohort 1 (metrics.json apart from its timings), and the same predict models; an interrupted cohort keeps
 * its committed units and the rerun redoes only the rest, with the same bytes. */
#include "check.h"
#include "config.h"
#include "fsutil.h"
#include "prng.h"
#include "prompt_cohort.h"
#include "prompt_set.h"
#include "run.h"
#include "tiny_model.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPOCHS    3
#define MAX_UNITS 5

static pad_backend *be;
static void setup(void) {
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
}
static void teardown(void) {
    pad_backend_free(be);
}
TestSuite(cohort, .init = setup, .fini = teardown, .timeout = 600);

typedef struct unit_spec {
    const char *cls;
    pad_prompt_task task;
    int B, T;
    uint64_t seed;
} unit_spec;

// Everything a unit's training produces that the cohort must reproduce.
typedef struct unit_out {
    pad_prompt_loss loss[EPOCHS];
    float *tvec;            // (EPOCHS, 2, E)
    float *ctx_n, *ctx_a;   // learned vectors at the end
    float *grad_n, *grad_a; // gradients of the last loss_grad
    size_t nn, na;
    int L;
} unit_out;

typedef struct env {
    pad_clip_weights *hw, *w;
    pad_tokenizer *tok;
    pad_prompt_set *set;
    int E;
} env;

static void env_open(env *v) {
    memset(v, 0, sizeof *v);
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
    cfg.text.vocab = 514;
    cfg.text.layers = 2;
    cr_assert(pad_weights_make_random(&v->hw, &cfg, 1) == PAD_OK);
    cr_assert(pad_weights_to_backend(v->hw, be, &v->w) == PAD_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/byte_vocab.txt.gz", pad_test_tmpdir("cohort"));
    cr_assert(pad_tokenizer_write_byte_vocab(path) == PAD_OK);
    cr_assert(pad_tokenizer_load(&v->tok, path) == PAD_OK);
    cr_assert(pad_prompt_set_open(&v->set, "official") == PAD_OK);
    v->E = v->hw->cfg.embed_dim;
}

static void env_close(env *v) {
    pad_prompt_set_free(v->set);
    pad_tokenizer_free(v->tok);
    pad_weights_free(v->w);
    pad_weights_free(v->hw);
}

// A learner for the unit, randomly initialised from its seed, with its own image features (raw, any values).
static pad_prompt_learner *make_unit(env *v, const unit_spec *u, float **feats_dev) {
    pad_prompt_class cls;
    cr_assert(pad_prompt_set_class(v->set, u->cls, &cls) == PAD_OK);
    pad_prompt_opts o = pad_prompt_opts_default(u->task);
    pad_prompt_learner *pl = NULL;
    cr_assert(pad_prompt_learner_create(&pl, v->w, v->tok, &cls, &o) == PAD_OK);
    cr_assert(pad_prompt_learner_init_random(pl, u->seed) == PAD_OK);
    const size_t n = (size_t)u->B * u->T * v->E;
    float *h = malloc(n * sizeof(float));
    uint64_t s = u->seed * 977 + 13;
    for (size_t i = 0; i < n; i++)
        h[i] = (float)((double)(pad_prng_next(&s) >> 11) / 9007199254740992.0 - 0.5);
    cr_assert(pad_buf_from_host(be, feats_dev, h, n) == PAD_OK);
    free(h);
    cr_assert(pad_prompt_learner_set_images(pl, *feats_dev, u->B, u->T) == PAD_OK);
    return pl;
}

static void out_alloc(unit_out *r, pad_prompt_learner *pl, int E) {
    memset(r, 0, sizeof *r);
    const pad_prompt_opts *o = pad_prompt_learner_opts(pl);
    const int W = pad_prompt_learner_width(pl);
    r->nn = (size_t)o->n_pro * o->n_ctx * W;
    r->na = (size_t)o->n_pro_ab * o->n_ctx_ab * W;
    r->L = pad_prompt_learner_seq_len(pl);
    r->tvec = calloc((size_t)EPOCHS * 2 * E, sizeof(float));
    r->ctx_n = malloc(r->nn * sizeof(float));
    r->ctx_a = malloc(r->na * sizeof(float));
    r->grad_n = malloc(r->nn * sizeof(float));
    r->grad_a = malloc(r->na * sizeof(float));
}

static void out_finish(unit_out *r, pad_prompt_learner *pl) {
    cr_assert(pad_prompt_learner_get_ctx(pl, r->ctx_n, r->ctx_a) == PAD_OK);
    cr_assert(pad_prompt_learner_get_grad(pl, r->grad_n, r->grad_a) == PAD_OK);
}

static void out_free(unit_out *r) {
    free(r->tvec);
    free(r->ctx_n);
    free(r->ctx_a);
    free(r->grad_n);
    free(r->grad_a);
}

// The reference: the unit trained alone (text vectors before every epoch when with_tvec, as the run loop does).
static void run_serial(env *v, const unit_spec *u, bool with_tvec, unit_out *r) {
    float *feats = NULL, *tv = NULL;
    pad_prompt_learner *pl = make_unit(v, u, &feats);
    out_alloc(r, pl, v->E);
    cr_assert(pad_buf_from_host(be, &tv, r->tvec, (size_t)2 * v->E) == PAD_OK);
    for (int e = 0; e < EPOCHS; e++) {
        if (with_tvec) {
            cr_assert(pad_prompt_learner_text_vectors(pl, tv) == PAD_OK);
            cr_assert(pad_buf_download(be, r->tvec + (size_t)e * 2 * v->E, tv, (size_t)2 * v->E * sizeof(float)) ==
                      PAD_OK);
        }
        cr_assert(pad_prompt_learner_train_epoch(pl, e, EPOCHS, &r->loss[e]) == PAD_OK);
    }
    out_finish(r, pl);
    pad_buf_free(be, tv);
    pad_buf_free(be, feats);
    pad_prompt_learner_free(pl);
}

static void run_cohort(env *v, const unit_spec *u, int n, bool with_tvec, unit_out *r) {
    pad_prompt_learner *pl[MAX_UNITS];
    float *feats[MAX_UNITS], *tv[MAX_UNITS];
    for (int i = 0; i < n; i++) {
        pl[i] = make_unit(v, &u[i], &feats[i]);
        out_alloc(&r[i], pl[i], v->E);
        cr_assert(pad_buf_from_host(be, &tv[i], r[i].tvec, (size_t)2 * v->E) == PAD_OK);
    }
    pad_prompt_cohort *c = NULL;
    cr_assert(pad_prompt_cohort_create(&c, v->w, pl, n) == PAD_OK);
    cr_assert(pad_prompt_cohort_size(c) == n);
    int rows = 0, L = 0;
    for (int i = 0; i < n; i++) {
        rows += pad_prompt_learner_counts(pl[i], NULL, NULL, NULL);
        if (r[i].L > L) L = r[i].L;
    }
    cr_assert(pad_prompt_cohort_rows(c) == rows && pad_prompt_cohort_seq_len(c) == L);
    int lens[MAX_UNITS], n_lens = 0;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < n_lens; j++)
            seen = seen || lens[j] == r[i].L;
        if (!seen) lens[n_lens++] = r[i].L;
    }
    cr_assert(pad_prompt_cohort_passes(c) == n_lens, "%d text passes for %d cut lengths", pad_prompt_cohort_passes(c),
              n_lens);
    pad_prompt_loss losses[MAX_UNITS];
    for (int e = 0; e < EPOCHS; e++) {
        if (with_tvec) {
            cr_assert(pad_prompt_cohort_text_vectors(c, tv) == PAD_OK);
            for (int i = 0; i < n; i++)
                cr_assert(pad_buf_download(be, r[i].tvec + (size_t)e * 2 * v->E, tv[i],
                                           (size_t)2 * v->E * sizeof(float)) == PAD_OK);
        }
        cr_assert(pad_prompt_cohort_train_epoch(c, e, EPOCHS, losses) == PAD_OK);
        for (int i = 0; i < n; i++)
            r[i].loss[e] = losses[i];
    }
    for (int i = 0; i < n; i++)
        out_finish(&r[i], pl[i]);
    pad_prompt_cohort_free(c);
    for (int i = 0; i < n; i++) {
        pad_buf_free(be, tv[i]);
        pad_buf_free(be, feats[i]);
        pad_prompt_learner_free(pl[i]);
    }
}

static void check_same(const char *what, const unit_out *a, const unit_out *b, int E) {
    cr_assert(memcmp(a->loss, b->loss, sizeof a->loss) == 0, "%s: loss terms differ (epoch 0 total %.9g vs %.9g)", what,
              (double)a->loss[0].total, (double)b->loss[0].total);
    cr_assert(memcmp(a->tvec, b->tvec, (size_t)EPOCHS * 2 * E * sizeof(float)) == 0, "%s: text vectors differ", what);
    cr_assert(memcmp(a->grad_n, b->grad_n, a->nn * sizeof(float)) == 0, "%s: normal gradients differ", what);
    cr_assert(memcmp(a->grad_a, b->grad_a, a->na * sizeof(float)) == 0, "%s: abnormal gradients differ", what);
    cr_assert(memcmp(a->ctx_n, b->ctx_n, a->nn * sizeof(float)) == 0, "%s: normal context differs", what);
    cr_assert(memcmp(a->ctx_a, b->ctx_a, a->na * sizeof(float)) == 0, "%s: abnormal context differs", what);
}

static void cohort_equals_serial(const unit_spec *u, int n, bool with_tvec) {
    env v;
    env_open(&v);
    unit_out ref[MAX_UNITS], got[MAX_UNITS];
    for (int i = 0; i < n; i++)
        run_serial(&v, &u[i], with_tvec, &ref[i]);
    run_cohort(&v, u, n, with_tvec, got);
    for (int i = 0; i < n; i++) {
        char what[128];
        snprintf(what, sizeof what, "unit %d (%s %s, seed %llu)", i, u[i].cls, pad_prompt_task_name(u[i].task),
                 (unsigned long long)u[i].seed);
        cr_assert(got[i].loss[0].total > 0.0f && got[i].loss[EPOCHS - 1].total != got[i].loss[0].total,
                  "%s: the loss did not move", what);
        check_same(what, &got[i], &ref[i], v.E);
        out_free(&ref[i]);
        out_free(&got[i]);
    }
    env_close(&v);
}

// Classes with different cut lengths, both tasks, several shot counts and seeds.
static const unit_spec k_mixed[] = {
    {"bottle", PAD_TASK_CLS, 2, 1, 1},     {"metal_nut", PAD_TASK_SEG, 1, 9, 2}, {"bottle", PAD_TASK_SEG, 2, 4, 3},
    {"toothbrush", PAD_TASK_CLS, 4, 1, 4}, {"bottle", PAD_TASK_CLS, 2, 1, 5},
};

Test(cohort, mixed_cohort_equals_serial_runs_bit_for_bit) {
    cohort_equals_serial(k_mixed, 5, true);
}

Test(cohort, cohort_without_text_vectors_equals_serial_runs) {
    cohort_equals_serial(k_mixed, 3, false);
}

Test(cohort, cohort_of_one_equals_the_learner) {
    cohort_equals_serial(k_mixed + 1, 1, true);
}

Test(cohort, mixed_members_have_different_cut_lengths) {
    env v;
    env_open(&v);
    int L[2];
    for (int i = 0; i < 2; i++) {
        float *f = NULL;
        pad_prompt_learner *pl = make_unit(&v, &k_mixed[i], &f);
        L[i] = pad_prompt_learner_seq_len(pl);
        pad_prompt_learner_free(pl);
        pad_buf_free(be, f);
    }
    cr_assert(L[0] != L[1], "the mixed cohort must pad: cut lengths %d and %d", L[0], L[1]);
    env_close(&v);
}

Test(cohort, bad_inputs_are_errors) {
    env v;
    env_open(&v);
    pad_prompt_cohort *c = NULL;
    cr_assert(pad_prompt_cohort_create(&c, v.w, NULL, 0) == PAD_ERR_INVALID_ARG && !c);
    pad_prompt_class cls;
    cr_assert(pad_prompt_set_class(v.set, "bottle", &cls) == PAD_OK);
    pad_prompt_opts o = pad_prompt_opts_default(PAD_TASK_CLS);
    pad_prompt_learner *pl = NULL;
    cr_assert(pad_prompt_learner_create(&pl, v.w, v.tok, &cls, &o) == PAD_OK);
    cr_assert(pad_prompt_cohort_create(&c, v.w, &pl, 1) == PAD_OK);
    cr_assert(pad_prompt_cohort_loss_grad(c) == PAD_ERR_INVALID_ARG, "no images");
    cr_assert(pad_prompt_cohort_train_epoch(c, 3, 3, NULL) == PAD_ERR_INVALID_ARG);
    pad_prompt_cohort_free(c);
    pad_prompt_learner_free(pl);
    env_close(&v);
}

Test(cohort, same_length_cohort_equals_serial_runs) {
    static const unit_spec u[] = {
        {"bottle", PAD_TASK_CLS, 2, 1, 1}, {"bottle", PAD_TASK_SEG, 2, 4, 3}, {"bottle", PAD_TASK_CLS, 2, 1, 5}};
    cohort_equals_serial(u, 3, true);
}

// ----------------------------------------------------------------------------
// the run loop

static void run_ok(const char *what, const char *cmd) {
    pad_cmd_result r = pad_cmd_run("%s", cmd);
    cr_assert_eq(r.exit_code, 0, "%s: exit %d\n%s", what, r.exit_code, r.err);
    pad_cmd_free(&r);
}

static char *read_bytes(const char *path, size_t *n) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(path, &t, n), PAD_OK, "%s is missing", path);
    return t;
}

static char *metrics_without_timing(const char *path) {
    char *t = read_bytes(path, NULL);
    cJSON *j = cJSON_Parse(t);
    free(t);
    cr_assert(j, "%s: bad JSON", path);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "timing_s");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

// The files of folder <want>/<rel> equal those of <got>/<rel>, byte for byte.
static void assert_files_equal(const char *want, const char *got, const char *rel, const char *const *files, int n) {
    for (int f = 0; f < n; f++) {
        char p1[2048], p2[2048];
        snprintf(p1, sizeof p1, "%s/%s/%s", want, rel, files[f]);
        snprintf(p2, sizeof p2, "%s/%s/%s", got, rel, files[f]);
        size_t na = 0, nb = 0;
        char *x = read_bytes(p1, &na), *y = read_bytes(p2, &nb);
        cr_assert(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", p1, p2);
        free(x);
        free(y);
    }
}

static void assert_unit_equal(const char *want, const char *got, const char *rel) {
    char p1[2048], p2[2048];
    snprintf(p1, sizeof p1, "%s/%s/metrics.json", want, rel);
    snprintf(p2, sizeof p2, "%s/%s/metrics.json", got, rel);
    char *m1 = metrics_without_timing(p1), *m2 = metrics_without_timing(p2);
    cr_assert_str_eq(m2, m1, "%s: metrics.json differs from run.cohort 1", rel);
    free(m1);
    free(m2);
    static const char *const files[] = {"scores.csv", "train.csv", "prompts.safetensors", "maps.safetensors"};
    assert_files_equal(want, got, rel, files, 4);
}

static void assert_model_equal(const char *want, const char *got, const char *rel) {
    static const char *const files[] = {"model/model.json", "model/model.safetensors"};
    assert_files_equal(want, got, rel, files, 2);
}

static const char *const k_classes[] = {"weave", "grid"}, *const k_tasks[] = {"cls", "seg"};
static const int k_shots[] = {1, 2}, k_seeds[] = {0, 1};

// Every unit and predict model of the run in `got` equals the one in `want` (2 classes x 2 shots x 2 seeds x 2 tasks).
static void assert_runs_equal(const char *want, const char *got) {
    char rel[256];
    for (int c = 0; c < 2; c++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                for (int t = 0; t < 2; t++) {
                    snprintf(rel, sizeof rel, "synth/%s/k%d/seed%d/%s", k_classes[c], k_shots[a], k_seeds[b],
                             k_tasks[t]);
                    assert_unit_equal(want, got, rel);
                }
                snprintf(rel, sizeof rel, "synth/%s/k%d/seed%d", k_classes[c], k_shots[a], k_seeds[b]);
                assert_model_equal(want, got, rel);
            }
}

// The config of the run-loop tests: 2 classes x shots {1, 2} x seeds {0, 1} x both tasks = 16 units, 8 groups.
static void write_run_config(const char *dir, char *cfg, size_t cap) {
    char text[2048];
    snprintf(cfg, cap, "%s/cfg.yaml", dir);
    snprintf(text, sizeof text,
             "model:\n  weights: %s/model/tiny.safetensors\n  vocab: %s/model/vocab.txt.gz\n  generate: tiny\n"
             "data:\n  format: synth\n  root: %s/data\n  synth: {classes: 2, size: 64, train: 3, test_good: 3, "
             "test_bad: 3}\n"
             "run:\n  shots: [1, 2]\n  seeds: [0, 1]\n  tasks: [cls, seg]\n  epochs: 3\n  select: best\n"
             "  resolution: 64\n  batch: 4\n  device: cpu\n  threads: 1\n"
             "output:\n  maps: grid\n  heatmaps: 0\n  models: true\n",
             dir, dir, dir);
    pad_test_write_file(cfg, text, strlen(text));
}

static char *run_out(const char *what, const char *cmd) {
    pad_cmd_result r = pad_cmd_run("%s 2>&1", cmd);
    cr_assert_eq(r.exit_code, 0, "%s: exit %d\n%s", what, r.exit_code, r.out);
    char *out = strdup(r.out ? r.out : "");
    pad_cmd_free(&r);
    return out;
}

Test(cohort, run_cohort_auto_and_n_write_the_units_and_models_of_run_cohort_1, .timeout = 900) {
    const char *dir = pad_test_tmpdir("cohort_run");
    char cfg[1024], cmd[4096], want[1100], got[1100], got4[1100];
    write_run_config(dir, cfg, sizeof cfg);
    const char *bin = pad_test_binary();
    snprintf(want, sizeof want, "%s/serial", dir);
    snprintf(got, sizeof got, "%s/cohort", dir);
    snprintf(got4, sizeof got4, "%s/cohort4", dir);
    snprintf(cmd, sizeof cmd, "%s run --config %s --quiet --set output.dir=%s --set run.cohort=1", bin, cfg, want);
    run_ok("run.cohort 1", cmd);
    // auto: the 4 groups of a class (8 units) in one cohort; 4: two groups (4 units) per cohort
    snprintf(cmd, sizeof cmd, "%s run --config %s --set output.dir=%s --set run.cohort=auto", bin, cfg, got);
    char *out = run_out("run.cohort auto", cmd);
    cr_assert(strstr(out, "class weave: training a cohort of 8 units in 4 groups (k1 seed0, k1 seed1, k2 seed0, k2 "
                          "seed1)") &&
                  strstr(out, "class grid: training a cohort of 8 units in 4 groups"),
              "run.cohort auto:\n%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s run --config %s --set output.dir=%s --set run.cohort=4", bin, cfg, got4);
    out = run_out("run.cohort 4", cmd);
    cr_assert(strstr(out, "class weave: training a cohort of 4 units in 2 groups (k1 seed0, k1 seed1)") &&
                  strstr(out, "class weave: training a cohort of 4 units in 2 groups (k2 seed0, k2 seed1)"),
              "run.cohort 4:\n%s", out);
    free(out);
    assert_runs_equal(want, got);
    assert_runs_equal(want, got4);
    // a unit lost (as by an interruption after its sibling was committed) is redone alone, with the same bytes
    char lost[2048];
    snprintf(lost, sizeof lost, "%s/synth/grid/k2/seed0/seg", got);
    cr_assert(pad_remove_tree(lost) == PAD_OK);
    snprintf(cmd, sizeof cmd, "%s run --config %s --set output.dir=%s --set run.cohort=auto", bin, cfg, got);
    out = run_out("rerun", cmd);
    cr_assert(strstr(out, "1 unit computed") || strstr(out, "1 units computed"), "rerun:\n%s", out);
    cr_assert(strstr(out, "class grid: training a cohort of 1 unit in 1 group (k2 seed0)"), "rerun:\n%s", out);
    free(out);
    assert_runs_equal(want, got);
    // run.cohort is not part of the config hash: the serial folder is complete for a cohort run
    snprintf(cmd, sizeof cmd, "%s run --config %s --set output.dir=%s --set run.cohort=auto", bin, cfg, want);
    out = run_out("rerun serial", cmd);
    cr_assert(strstr(out, "0 units computed"), "rerun:\n%s", out);
    free(out);
}

// Raises the run's stop request once `after` units have been committed.
// Raises the run's stop request once `after` units have been committed; keeps the first cohort's progress line.
typedef struct stopper {
    int after, seen;
    volatile sig_atomic_t stop;
    char cohort[512];
} stopper;

static void stop_after_units(const pad_run_event *ev, void *user) {
    stopper *s = user;
    if (ev->kind == PAD_RUN_EV_STAGE && !s->cohort[0] && strstr(ev->message, "training a cohort"))
        snprintf(s->cohort, sizeof s->cohort, "%s", ev->message);
    if (ev->kind == PAD_RUN_EV_UNIT_END && ++s->seen >= s->after) s->stop = 1;
}

static pad_status api_run(const char *cfg, const char *out_dir, const char *cohort, const char *mem, stopper *stop,
                          pad_run_result *res) {
    pad_run_config c;
    pad_run_config_default(&c);
    cr_assert_eq(pad_run_config_load(&c, cfg), PAD_OK, "%s", pad_test_log_text());
    cr_assert_eq(pad_run_config_set(&c, pad_test_fmt("output.dir=%s", out_dir)), PAD_OK);
    cr_assert_eq(pad_run_config_set(&c, pad_test_fmt("run.cohort=%s", cohort)), PAD_OK);
    cr_assert_eq(pad_run_config_set(&c, "data.classes=[weave]"), PAD_OK, "%s", pad_test_log_text());
    if (mem) cr_assert_eq(pad_run_config_set(&c, pad_test_fmt("run.cohort_mem=%s", mem)), PAD_OK);
    cr_assert_eq(pad_run_config_finalize(&c), PAD_OK, "%s", pad_test_log_text());
    pad_run_opts o = {0};
    if (stop) {
        o.progress = stop_after_units;
        o.user_data = stop;
        o.stop = &stop->stop;
    }
    pad_status st = pad_run(&c, &o, res);
    free(res->summary_md);
    res->summary_md = NULL;
    return st;
}

Test(cohort, an_interrupted_cohort_keeps_its_finished_units_and_the_rerun_redoes_the_rest, .timeout = 900) {
    pad_test_log_start();
    const char *dir = pad_test_tmpdir("cohort_stop");
    char cfg[1024];
    write_run_config(dir, cfg, sizeof cfg);
    const char *want = pad_test_fmt("%s/serial", dir), *got = pad_test_fmt("%s/cohort", dir);
    pad_run_result res;
    cr_assert_eq(api_run(cfg, want, "1", NULL, NULL, &res), PAD_OK, "%s", pad_test_log_text());
    cr_assert_eq(res.n_computed, 8);
    // run.cohort auto within 400 MiB: two groups per cohort (the tiny model's cls learner has 48 prompt rows of 23
    // tokens in a 12-layer text tower, about 66 MiB of activations, twice: a group is about 180 MiB); the stop
    // request comes when the third unit is committed
    stopper stop = {.after = 3};
    cr_assert_eq(api_run(cfg, got, "auto", "400MiB", &stop, &res), PAD_ERR_ABORTED, "%s", pad_test_log_text());
    cr_assert_eq(res.n_computed, 3);
    cr_assert(strstr(stop.cohort, "class weave: training a cohort of 4 units in 2 groups (k1 seed0, k1 seed1), about"),
              "%s", stop.cohort);
    const char *base = pad_test_fmt("%s/synth/weave", got);
    cr_assert(pad_path_is_file(pad_test_fmt("%s/k1/seed0/seg/metrics.json", base)));
    cr_assert(pad_path_is_file(pad_test_fmt("%s/k1/seed0/model/model.json", base)), "the first group's model");
    cr_assert(pad_path_is_file(pad_test_fmt("%s/k1/seed1/cls/metrics.json", base)));
    cr_assert(!pad_path_is_dir(pad_test_fmt("%s/k1/seed1/seg", base)), "the unit in progress is discarded");
    cr_assert(!pad_path_is_dir(pad_test_fmt("%s/k1/seed1/model", base)), "a group with a unit left has no model");
    cr_assert(!pad_path_is_dir(pad_test_fmt("%s/k2/seed0/cls", base)));
    pad_cmd_result r = pad_cmd_run("ls -a %s/k1/seed1 %s/k2/seed1 | grep -c '[.]tmp-'", base, base);
    cr_assert(r.out && r.out[0] == '0', "temporary folders left:\n%s", r.out);
    pad_cmd_free(&r);
    // the rerun computes the 5 others, and everything equals the serial run
    cr_assert_eq(api_run(cfg, got, "auto", NULL, NULL, &res), PAD_OK, "%s", pad_test_log_text());
    cr_assert(res.n_computed == 5 && res.n_skipped == 3, "%d computed, %d skipped", res.n_computed, res.n_skipped);
    char rel[256];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            for (int t = 0; t < 2; t++) {
                snprintf(rel, sizeof rel, "synth/weave/k%d/seed%d/%s", k_shots[a], k_seeds[b], k_tasks[t]);
                assert_unit_equal(want, got, rel);
            }
            snprintf(rel, sizeof rel, "synth/weave/k%d/seed%d", k_shots[a], k_seeds[b]);
            assert_model_equal(want, got, rel);
        }
}
