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

// The epochs: a training step each; with run.select best (official) every epoch is evaluated and the first epoch
// with the strictly best selection metric is kept (a NaN metric never wins), else the last epoch. The kept epoch's
// text vectors and contexts land in u; *t_eval accumulates the evaluation time.
static pad_status train_epochs(run_ctx *rc, class_ctx *cc, pad_prompt_learner *pl, unit_result *u, double *t_eval) {
    const bool best_mode = rc->cfg->run.select == PAD_SELECT_BEST;
    const int n_epochs = u->n_epochs, E = rc->E;
    double best = -INFINITY;
    int best_epoch = -1;
    for (int e = 0; e < n_epochs; e++) {
        if (run_stop_requested(rc)) return PAD_ERR_ABORTED;
        epoch_log *l = &u->log[e];
        l->metric = NAN;
        l->lr = pad_prompt_lr(pad_prompt_learner_opts(pl), e, n_epochs);
        PAD_TRY(pad_prompt_learner_train_epoch(pl, e, n_epochs, &l->loss));
        if (best_mode || e == n_epochs - 1) {
            double te = pad_now();
            pad_status st = pad_prompt_learner_text_vectors(pl, cc->tvec_dev);
            if (st == PAD_OK && best_mode) st = run_eval_select(rc, cc, u->task, u->ev.scores, &l->metric);
            *t_eval += pad_now() - te;
            PAD_TRY(st);
            if (!best_mode || best_epoch < 0 || l->metric > best) {
                best = l->metric;
                best_epoch = e;
                PAD_TRY(pad_buf_download(rc->be, u->tvec, cc->tvec_dev, 2 * (size_t)E * sizeof(float)));
                PAD_TRY(pad_prompt_learner_get_ctx(pl, u->normal_ctx, u->abnormal_ctx));
            }
            if (best_mode && e == n_epochs - 1) u->select_last = l->metric;
        }
        pad_run_event ev = {.kind = PAD_RUN_EV_EPOCH,
                            .cls = cc->name,
                            .task = pad_prompt_task_name(u->task),
                            .k = u->k,
                            .seed = u->seed,
                            .epoch = e + 1,
                            .n_epochs = n_epochs};
        run_emit(rc, &ev);
    }
    u->epoch_reported = best_epoch + 1;
    u->select_best = best_mode ? best : NAN;
    u->selection = best_mode ? (u->task == PAD_TASK_CLS ? "best epoch by test image_auroc (official)"
                                                        : "best epoch by test pixel_auroc (official)")
                             : "last epoch";
    return PAD_OK;
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

pad_status run_train_unit(run_ctx *rc, class_ctx *cc, pad_prompt_task task, int k, int seed, const pad_shots *shots) {
    const pad_run_config *cfg = rc->cfg;
    double t0 = pad_now();
    pad_run_event ev = {.kind = PAD_RUN_EV_UNIT_BEGIN,
                        .cls = cc->name,
                        .task = pad_prompt_task_name(task),
                        .k = k,
                        .seed = seed,
                        .n_epochs = cfg->run.epochs};
    run_emit(rc, &ev);
    char final[PATH_CAP], tmp[PATH_CAP + 64];
    run_unit_path(rc, final, sizeof final, cc->name, k, seed, pad_prompt_task_name(task));
    run_tmp_sibling(tmp, sizeof tmp, final);
    pad_remove_tree(tmp);

    pad_prompt_learner *pl = NULL;
    PAD_TRY(learner_of(rc, cc, task, &pl));
    PAD_TRY(start_unit(rc, cc, pl, task, k, seed));
    unit_result u;
    memset(&u, 0, sizeof u);
    u.task = task;
    u.k = k;
    u.seed = seed;
    u.shots = shots;
    u.n_epochs = cfg->run.epochs;
    u.n_pro = task == PAD_TASK_CLS ? cfg->train.n_pro_cls : cfg->train.n_pro_seg;
    u.select_best = u.select_last = NAN;
    double t_eval = 0;
    pad_status st = unit_alloc(rc, cc, &u);
    if (st == PAD_OK) st = train_epochs(rc, cc, pl, &u, &t_eval);
    if (st == PAD_OK) st = finish_unit(rc, cc, &u, &t_eval);
    if (st == PAD_OK) {
        u.t_total = pad_now() - t0;
        u.t_eval = t_eval;
        u.t_train = u.t_total - t_eval;
        if (run_stop_requested(rc)) st = PAD_ERR_ABORTED;
    }
    if (st == PAD_OK) st = run_write_unit(rc, cc, &u, tmp);
    if (st == PAD_OK) st = run_commit_dir(tmp, final);
    if (st == PAD_OK) st = keep_summary(rc, cc, &u);
    if (st != PAD_OK) {
        pad_remove_tree(tmp);
        if (st != PAD_ERR_ABORTED)
            PAD_LOG_ERROR("class %s, k=%d, seed %d, task %s: failed (%s); the finished units are kept", cc->name, k,
                          seed, pad_prompt_task_name(task), pad_status_str(st));
    } else {
        rc->n_done++;
        rc->n_computed++;
        emit_unit_end(rc, cc, &u);
    }
    unit_release(&u);
    return st;
}
