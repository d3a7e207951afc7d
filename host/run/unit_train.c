/* unit_train.c - one unit of the run: the prompt learner of the class and task (built once per class, re-initialised
 * per unit with a seed of its own), the epochs of training with the official protocol's per-epoch selection or the
 * last epoch, the final evaluation with the chosen text vectors, the threshold and map range, then the unit's files
 * written into a temporary folder and committed by one rename (method: docs/method.md; protocols:
 * docs/protocols.md). */
#include "run_internal.h"

#include "fsutil.h"
#include "log.h"
#include "prng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The official code's 8 generic anomaly states: the prompts of a class that the prompt set does not know.
static const char *const k_generic_states[] = {"damaged {}",   "flawed {}",    "abnormal {}",    "imperfect {}",
                                               "blemished {}", "{} with flaw", "{} with defect", "{} with damage"};

// The prompt states of the class: the prompt set's entry, or the generic states with the class name.
pad_status run_class_prompts(run_ctx *rc, class_ctx *cc, char *name_buf, size_t cap) {
    for (int i = 0; i < pad_prompt_set_n_classes(rc->pset); i++)
        if (strcmp(pad_prompt_set_class_at(rc->pset, i).key, cc->name) == 0) {
            PAD_TRY(pad_prompt_set_class(rc->pset, cc->name, &cc->pclass));
            cc->pclass_valid = true;
            return PAD_OK;
        }
    snprintf(name_buf, cap, "%s", cc->name);
    for (char *p = name_buf; *p; p++)
        if (*p == '_') *p = ' ';
    cc->pclass.key = cc->name;
    cc->pclass.name = name_buf;
    cc->pclass.states = k_generic_states;
    cc->pclass.n_states = (int)(sizeof k_generic_states / sizeof k_generic_states[0]);
    cc->pclass_valid = true;
    PAD_LOG_WARN("class %s: not in the prompt set '%s' (%s); using the 8 generic anomaly states with the name '%s'",
                 cc->name, pad_prompt_set_name(rc->pset), pad_prompt_set_path(rc->pset), name_buf);
    return PAD_OK;
}

// The learner of (class, task), built on first use and kept for every unit of the class.
static pad_status learner_of(run_ctx *rc, class_ctx *cc, pad_prompt_task task, pad_prompt_learner **out) {
    const pad_run_config *cfg = rc->cfg;
    if (!cc->pl[task]) {
        pad_prompt_opts po = pad_prompt_opts_default(task);
        po.n_ctx = cfg->train.n_ctx;
        po.n_ctx_ab = cfg->train.n_ctx_ab;
        po.n_pro = task == PAD_TASK_CLS ? cfg->train.n_pro_cls : cfg->train.n_pro_seg;
        po.n_pro_ab = cfg->train.n_pro_ab;
        po.lr = cfg->train.lr;
        po.lr_min = cfg->train.lr_min;
        po.momentum = cfg->train.momentum;
        po.weight_decay = cfg->train.weight_decay;
        po.lambda_align = cfg->train.lambda_align;
        po.margin = cfg->train.margin;
        po.exp_logit_scale = cfg->run.tau_exp;
        po.eam = cfg->train.eam ? PAD_EAM_PER_TOKEN : PAD_EAM_TOKEN_AXIS;
        po.lap = cfg->train.lap ? PAD_LAP_AFTER_NAME : PAD_LAP_BEFORE_NAME;
        po.no_map = cfg->train.no_map;
        po.no_lap = cfg->train.no_lap;
        pad_status st = pad_prompt_learner_create(&cc->pl[task], rc->w_dev, rc->tok, &cc->pclass, &po);
        if (st != PAD_OK) {
            PAD_LOG_ERROR("class %s: cannot build the %s prompts (prompt set %s)", cc->name, pad_prompt_task_name(task),
                          pad_prompt_set_path(rc->pset));
            return st;
        }
        pad_prompt_learner_set_graphs(cc->pl[task], rc->graphs);
    }
    *out = cc->pl[task];
    return PAD_OK;
}

// The shots' image features and the prompt initialisation of (seed, class, k, task): independent draws per unit,
// reproducible.
static pad_status start_unit(run_ctx *rc, class_ctx *cc, pad_prompt_learner *pl, pad_prompt_task task, int k,
                             int seed) {
    if (task == PAD_TASK_CLS)
        PAD_TRY(pad_prompt_learner_set_images(pl, cc->shot_cls, k, 1));
    else
        PAD_TRY(pad_prompt_learner_set_images(pl, cc->shot_tok, k, rc->P));
    uint64_t init_seed = pad_prng_mix(((uint64_t)seed * PAD_PRNG_GOLDEN) ^ pad_prng_hash_str(cc->name) ^
                                      ((uint64_t)k << 32) ^ (uint64_t)task);
    return pad_prompt_learner_init_random(pl, init_seed);
}

static pad_status unit_alloc(const run_ctx *rc, const class_ctx *cc, unit_result *u) {
    const pad_run_config *cfg = rc->cfg;
    size_t nctx = (size_t)u->n_pro * (size_t)cfg->train.n_ctx * (size_t)rc->W;
    size_t nab = (size_t)cfg->train.n_pro_ab * (size_t)cfg->train.n_ctx_ab * (size_t)rc->W;
    u->log = calloc((size_t)u->n_epochs, sizeof *u->log);
    u->tvec = malloc(2 * (size_t)rc->E * sizeof(float));
    u->normal_ctx = malloc(nctx * sizeof(float));
    u->abnormal_ctx = malloc(nab * sizeof(float));
    u->ev.scores = malloc((size_t)cc->n * sizeof(float));
    return u->log && u->tvec && u->normal_ctx && u->abnormal_ctx && u->ev.scores ? PAD_OK : PAD_ERR_OOM;
}

static void unit_release(unit_result *u) {
    free(u->log);
    free(u->tvec);
    free(u->normal_ctx);
    free(u->abnormal_ctx);
    free(u->ev.scores);
}

// One unit on its way through the epochs: its result, learner and folders, and the best epoch so far.
typedef struct unit_run {
    unit_result u;
    pad_prompt_learner *pl;
    char final[PATH_CAP], tmp[PATH_CAP + 64];
    double t0, t_eval, best;
    int best_epoch;
    bool open; // unit_open succeeded (unit_close must run)
} unit_run;

static bool wants_tvec(const run_ctx *rc, const unit_run *r, int e) {
    return rc->cfg->run.select == PAD_SELECT_BEST || e == r->u.n_epochs - 1;
}

// After the training step of epoch e: with run.select best (official) every epoch is evaluated and the first epoch
// with the strictly best selection metric is kept (a NaN metric never wins), else the last epoch. The text vectors
// come from `tvec` (backend, (2,E)) when not NULL (a cohort computed them), else from the unit's learner. The kept
// epoch's text vectors and contexts land in r->u.
static pad_status unit_epoch(run_ctx *rc, class_ctx *cc, unit_run *r, int e, const float *tvec) {
    const bool best_mode = rc->cfg->run.select == PAD_SELECT_BEST;
    unit_result *u = &r->u;
    epoch_log *l = &u->log[e];
    if (wants_tvec(rc, r, e)) {
        double te = pad_now();
        pad_status st = tvec ? pad_buf_copy(rc->be, cc->tvec_dev, tvec, 2 * (size_t)rc->E * sizeof(float))
                             : pad_prompt_learner_text_vectors(r->pl, cc->tvec_dev);
        if (st == PAD_OK && best_mode) st = run_eval_select(rc, cc, u->task, u->ev.scores, &l->metric);
        r->t_eval += pad_now() - te;
        PAD_TRY(st);
        if (!best_mode || r->best_epoch < 0 || l->metric > r->best) {
            r->best = l->metric;
            r->best_epoch = e;
            PAD_TRY(pad_buf_download(rc->be, u->tvec, cc->tvec_dev, 2 * (size_t)rc->E * sizeof(float)));
            PAD_TRY(pad_prompt_learner_get_ctx(r->pl, u->normal_ctx, u->abnormal_ctx));
        }
        if (best_mode && e == u->n_epochs - 1) u->select_last = l->metric;
    }
    pad_run_event ev = {.kind = PAD_RUN_EV_EPOCH,
                        .cls = cc->name,
                        .task = pad_prompt_task_name(u->task),
                        .k = u->k,
                        .seed = u->seed,
                        .epoch = e + 1,
                        .n_epochs = u->n_epochs};
    run_emit(rc, &ev);
    return PAD_OK;
}

// The selection record of a unit whose epochs are done.
static void unit_selected(const run_ctx *rc, unit_run *r) {
    const bool best_mode = rc->cfg->run.select == PAD_SELECT_BEST;
    unit_result *u = &r->u;
    u->epoch_reported = r->best_epoch + 1;
    u->select_best = best_mode ? r->best : NAN;
    u->selection = best_mode ? (u->task == PAD_TASK_CLS ? "best epoch by test image_auroc (official)"
                                                        : "best epoch by test pixel_auroc (official)")
                             : "last epoch";
}

// The final evaluation with the kept text vectors, the max-F1 threshold and the colour range of the maps.
static pad_status finish_unit(run_ctx *rc, class_ctx *cc, unit_result *u, double *t_eval) {
    double te = pad_now();
    pad_status st = pad_buf_upload(rc->be, cc->tvec_dev, u->tvec, 2 * (size_t)rc->E * sizeof(float));
    if (st == PAD_OK) st = run_eval_final(rc, cc, u->task, &u->ev);
    *t_eval += pad_now() - te;
    PAD_TRY(st);
    pad_threshold_max_f1(u->ev.scores, cc->labels, cc->n, &u->thr, &u->f1, &u->prec, &u->rec);
    const bool cls = u->task == PAD_TASK_CLS;
    const float *maps = cls ? cc->vmaps_host : cc->maps_host;
    size_t N = (size_t)cc->n * (size_t)rc->R * (size_t)rc->R;
    u->map_lo = INFINITY;
    u->map_hi = -INFINITY;
    if (!cls || cc->vmaps_valid)
        for (size_t i = 0; i < N; i++) {
            u->map_lo = maps[i] < u->map_lo ? maps[i] : u->map_lo;
            u->map_hi = maps[i] > u->map_hi ? maps[i] : u->map_hi;
        }
    if (!(u->map_lo <= u->map_hi)) u->map_lo = u->map_hi = 0;
    return PAD_OK;
}

// Keeps what the predict model of the group needs from the committed unit (cc->done[task]).
static pad_status keep_summary(const run_ctx *rc, class_ctx *cc, const unit_result *u) {
    unit_summary *s = &cc->done[u->task];
    run_unit_summary_clear(s);
    s->tvec = malloc(2 * (size_t)rc->E * sizeof(float));
    if (!s->tvec) return PAD_ERR_OOM;
    memcpy(s->tvec, u->tvec, 2 * (size_t)rc->E * sizeof(float));
    *s = (unit_summary){.valid = true,
                        .tvec = s->tvec,
                        .thr = u->thr,
                        .f1 = u->f1,
                        .prec = u->prec,
                        .rec = u->rec,
                        .map_lo = u->map_lo,
                        .map_hi = u->map_hi,
                        .n_test = cc->n,
                        .n_test_anomalous = cc->n_anom};
    return PAD_OK;
}

static void emit_unit_end(const run_ctx *rc, const class_ctx *cc, const unit_result *u) {
    pad_run_event ev = {.kind = PAD_RUN_EV_UNIT_END,
                        .cls = cc->name,
                        .task = pad_prompt_task_name(u->task),
                        .k = u->k,
                        .seed = u->seed,
                        .epoch = u->epoch_reported,
                        .n_epochs = u->n_epochs,
                        .unit_seconds = u->t_total,
                        .image_auroc = u->ev.img.auroc,
                        .pixel_auroc = u->ev.has_pix ? u->ev.pix.auroc : NAN,
                        .pixel_pro = u->ev.has_pix ? u->ev.pix.pro : NAN};
    run_emit(rc, &ev);
}

// Announces the unit, prepares its learner (shots, seeded initialisation) and its result buffers.
static pad_status unit_open(run_ctx *rc, class_ctx *cc, pad_prompt_task task, int k, int seed, const pad_shots *shots,
                            unit_run *r) {
    const pad_run_config *cfg = rc->cfg;
    memset(r, 0, sizeof *r);
    r->t0 = pad_now();
    r->best = -INFINITY;
    r->best_epoch = -1;
    pad_run_event ev = {.kind = PAD_RUN_EV_UNIT_BEGIN,
                        .cls = cc->name,
                        .task = pad_prompt_task_name(task),
                        .k = k,
                        .seed = seed,
                        .n_epochs = cfg->run.epochs};
    run_emit(rc, &ev);
    run_unit_path(rc, r->final, sizeof r->final, cc->name, k, seed, pad_prompt_task_name(task));
    run_tmp_sibling(r->tmp, sizeof r->tmp, r->final);
    pad_remove_tree(r->tmp);
    unit_result *u = &r->u;
    u->task = task;
    u->k = k;
    u->seed = seed;
    u->shots = shots;
    u->n_epochs = cfg->run.epochs;
    u->n_pro = task == PAD_TASK_CLS ? cfg->train.n_pro_cls : cfg->train.n_pro_seg;
    u->select_best = u->select_last = NAN;
    r->open = true;
    PAD_TRY(learner_of(rc, cc, task, &r->pl));
    PAD_TRY(start_unit(rc, cc, r->pl, task, k, seed));
    PAD_TRY(unit_alloc(rc, cc, u));
    for (int e = 0; e < u->n_epochs; e++)
        u->log[e].metric = NAN;
    return PAD_OK;
}

// Finishes the unit after its epochs (st: how they went): the final evaluation, its files written and committed by
// one rename, its summary kept; on an error its temporary folder goes (the finished units stay).
static pad_status unit_close(run_ctx *rc, class_ctx *cc, unit_run *r, pad_status st) {
    unit_result *u = &r->u;
    if (st == PAD_OK) unit_selected(rc, r);
    if (st == PAD_OK) st = finish_unit(rc, cc, u, &r->t_eval);
    if (st == PAD_OK) {
        u->t_total = pad_now() - r->t0;
        u->t_eval = r->t_eval;
        u->t_train = u->t_total - r->t_eval;
        if (run_stop_requested(rc)) st = PAD_ERR_ABORTED;
    }
    if (st == PAD_OK) st = run_write_unit(rc, cc, u, r->tmp);
    if (st == PAD_OK) st = run_commit_dir(r->tmp, r->final);
    if (st == PAD_OK) st = keep_summary(rc, cc, u);
    if (st != PAD_OK) {
        pad_remove_tree(r->tmp);
        if (st != PAD_ERR_ABORTED)
            PAD_LOG_ERROR("class %s, k=%d, seed %d, task %s: failed (%s); the finished units are kept", cc->name, u->k,
                          u->seed, pad_prompt_task_name(u->task), pad_status_str(st));
    } else {
        rc->n_done++;
        rc->n_computed++;
        emit_unit_end(rc, cc, u);
    }
    unit_release(u);
    r->open = false;
    return st;
}

pad_status run_train_unit(run_ctx *rc, class_ctx *cc, pad_prompt_task task, int k, int seed, const pad_shots *shots) {
    unit_run *r = malloc(sizeof *r);
    if (!r) return PAD_ERR_OOM;
    pad_status st = unit_open(rc, cc, task, k, seed, shots, r);
    for (int e = 0; e < r->u.n_epochs && st == PAD_OK; e++) {
        if (run_stop_requested(rc)) {
            st = PAD_ERR_ABORTED;
            break;
        }
        epoch_log *l = &r->u.log[e];
        l->lr = pad_prompt_lr(pad_prompt_learner_opts(r->pl), e, r->u.n_epochs);
        st = pad_prompt_learner_train_epoch(r->pl, e, r->u.n_epochs, &l->loss);
        if (st == PAD_OK) st = unit_epoch(rc, cc, r, e, NULL);
    }
    if (r->open) st = unit_close(rc, cc, r, st);
    free(r);
    return st;
}

// The cohort of the class's learners of the tasks in `todo` (built on first use; prompt_cohort.h).
static pad_status cohort_of(run_ctx *rc, class_ctx *cc, unit_run *const *r, int n, pad_prompt_cohort **out) {
    if (cc->cohort && pad_prompt_cohort_size(cc->cohort) != n) {
        pad_prompt_cohort_free(cc->cohort);
        cc->cohort = NULL;
    }
    if (!cc->cohort) {
        pad_prompt_learner *m[PAD_N_TASKS];
        for (int i = 0; i < n; i++)
            m[i] = r[i]->pl;
        PAD_TRY(pad_prompt_cohort_create(&cc->cohort, rc->w_dev, m, n));
    }
    *out = cc->cohort;
    return PAD_OK;
}

pad_status run_train_group(run_ctx *rc, class_ctx *cc, const bool *todo, int k, int seed, const pad_shots *shots) {
    unit_run *r[PAD_N_TASKS] = {NULL, NULL};
    float *tvec[PAD_N_TASKS] = {NULL, NULL};
    int n = 0;
    pad_status st = PAD_OK;
    for (int t = 0; t < PAD_N_TASKS && st == PAD_OK; t++) {
        if (!todo[t]) continue;
        if (!(r[n] = calloc(1, sizeof *r[n])) ||
            !(tvec[n] = (float *)pad_buf_alloc(rc->be, 2 * (size_t)rc->E * sizeof(float)))) {
            st = PAD_ERR_OOM;
            n++;
            break;
        }
        st = unit_open(rc, cc, (pad_prompt_task)t, k, seed, shots, r[n++]);
    }
    pad_prompt_cohort *c = NULL;
    if (st == PAD_OK) st = cohort_of(rc, cc, r, n, &c);
    const int n_epochs = rc->cfg->run.epochs;
    pad_prompt_loss loss[PAD_N_TASKS];
    for (int e = 0; e < n_epochs && st == PAD_OK; e++) {
        if (run_stop_requested(rc)) {
            st = PAD_ERR_ABORTED;
            break;
        }
        st = pad_prompt_cohort_train_epoch(c, e, n_epochs, loss);
        for (int i = 0; i < n && st == PAD_OK; i++) {
            r[i]->u.log[e].lr = pad_prompt_lr(pad_prompt_learner_opts(r[i]->pl), e, n_epochs);
            r[i]->u.log[e].loss = loss[i];
        }
        if (st == PAD_OK && wants_tvec(rc, r[0], e)) st = pad_prompt_cohort_text_vectors(c, tvec);
        for (int i = 0; i < n && st == PAD_OK; i++)
            st = unit_epoch(rc, cc, r[i], e, tvec[i]);
    }
    // the units are committed one by one: an interruption keeps those already written
    for (int i = 0; i < n; i++) {
        if (r[i] && r[i]->open) {
            pad_status s = unit_close(rc, cc, r[i], st);
            if (st == PAD_OK) st = s;
        }
        free(r[i]);
        pad_buf_free(rc->be, tvec[i]);
    }
    return st;
}
