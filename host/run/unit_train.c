/* unit_train.c - the units of the run: their prompt learners (a pool per class and task, built once per class and
 * re-initialised per unit with a seed of its own), the epochs of training with the official protocol's per-epoch
 * selection or the last epoch, the final evaluation with the chosen text vectors, the threshold and map range, then
 * each unit's files written into a temporary folder and committed by one rename (method: docs/method.md; protocols:
 * docs/protocols.md). A unit trains alone (run_train_unit, run.cohort 1) or in a cohort with the units of several
 * (shot, seed) groups of its class (run_train_cohort): one text pass per epoch for all, one text-score pass over the
 * test features per task for all (run.select best), then each unit's maps and selection: the same bits per unit. */
#include "run_internal.h"

#include "fsutil.h"
#include "log.h"
#include "prng.h"
#include "text.h"

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

// Learner i of the class's pool for `task`, built on first use and kept for every unit of the class.
static pad_status learner_of(run_ctx *rc, class_ctx *cc, pad_prompt_task task, int i, pad_prompt_learner **out) {
    const pad_run_config *cfg = rc->cfg;
    if (i >= cc->n_pool[task]) {
        pad_prompt_learner **np = realloc(cc->pool[task], (size_t)(i + 1) * sizeof *np);
        if (!np) return PAD_ERR_OOM;
        for (int j = cc->n_pool[task]; j <= i; j++)
            np[j] = NULL;
        cc->pool[task] = np;
        cc->n_pool[task] = i + 1;
    }
    if (!cc->pool[task][i]) {
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
        pad_status st = pad_prompt_learner_create(&cc->pool[task][i], rc->w_dev, rc->tok, &cc->pclass, &po);
        if (st != PAD_OK) {
            PAD_LOG_ERROR("class %s: cannot build the %s prompts (prompt set %s)", cc->name, pad_prompt_task_name(task),
                          pad_prompt_set_path(rc->pset));
            return st;
        }
        pad_prompt_learner_set_graphs(cc->pool[task][i], rc->graphs);
    }
    *out = cc->pool[task][i];
    return PAD_OK;
}

void run_class_learners_free(class_ctx *cc) {
    pad_prompt_cohort_free(cc->cohort);
    cc->cohort = NULL;
    free(cc->cohort_members);
    cc->cohort_members = NULL;
    for (int t = 0; t < PAD_N_TASKS; t++) {
        for (int i = 0; i < cc->n_pool[t]; i++)
            pad_prompt_learner_free(cc->pool[t][i]);
        free(cc->pool[t]);
        cc->pool[t] = NULL;
        cc->n_pool[t] = 0;
    }
}

// The shots' image features of group g (uploaded into the class's shot buffers) and the prompt initialisation of
// (seed, class, k, task): independent draws per unit, reproducible.
static pad_status start_unit(run_ctx *rc, class_ctx *cc, const group_ctx *g, pad_prompt_learner *pl,
                             pad_prompt_task task) {
    const int k = g->k, seed = g->seed;
    PAD_TRY(run_upload_shots(rc, cc, g->shots.index, k));
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

// One unit on its way through the epochs: its group, result, learner and folders, and the best epoch so far.
typedef struct unit_run {
    group_ctx *g;
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
// come from `tvec` (backend, (2,E)) when not NULL (a cohort computed them, with their text scores `text`), else from
// the unit's learner. The kept epoch's text vectors and contexts land in r->u.
static pad_status unit_epoch(run_ctx *rc, class_ctx *cc, unit_run *r, int e, const float *tvec, const float *text) {
    const bool best_mode = rc->cfg->run.select == PAD_SELECT_BEST;
    unit_result *u = &r->u;
    epoch_log *l = &u->log[e];
    if (wants_tvec(rc, r, e)) {
        double te = pad_now();
        pad_status st = tvec ? pad_buf_copy(rc->be, cc->tvec_dev, tvec, 2 * (size_t)rc->E * sizeof(float))
                             : pad_prompt_learner_text_vectors(r->pl, cc->tvec_dev);
        if (st == PAD_OK && best_mode) st = run_group_activate(rc, cc, r->g);
        if (st == PAD_OK && best_mode) st = run_eval_select(rc, cc, u->task, text, u->ev.scores, &l->metric);
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

// The final evaluation with the kept text vectors (the cls pixel maps bilinear(V) of the group first), the max-F1
// threshold and the colour range of the maps.
static pad_status finish_unit(run_ctx *rc, class_ctx *cc, const group_ctx *g, unit_result *u, double *t_eval) {
    double te = pad_now();
    const bool cls = u->task == PAD_TASK_CLS;
    pad_status st = run_group_activate(rc, cc, g);
    if (st == PAD_OK && cls) st = run_group_vmaps(rc, cc);
    if (st == PAD_OK) st = pad_buf_upload(rc->be, cc->tvec_dev, u->tvec, 2 * (size_t)rc->E * sizeof(float));
    if (st == PAD_OK) st = run_eval_final(rc, cc, u->task, &u->ev);
    *t_eval += pad_now() - te;
    PAD_TRY(st);
    pad_threshold_max_f1(u->ev.scores, cc->labels, cc->n, &u->thr, &u->f1, &u->prec, &u->rec);
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

// Keeps what the predict model of the group needs from the committed unit (g->done[task]).
static pad_status keep_summary(const run_ctx *rc, const class_ctx *cc, group_ctx *g, const unit_result *u) {
    unit_summary *s = &g->done[u->task];
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

// Announces the unit of `task` in group g, prepares its learner (learner `slot` of the class's pool: shots, seeded
// initialisation) and its result buffers.
static pad_status unit_open(run_ctx *rc, class_ctx *cc, group_ctx *g, pad_prompt_task task, int slot, unit_run *r) {
    const pad_run_config *cfg = rc->cfg;
    memset(r, 0, sizeof *r);
    r->g = g;
    r->t0 = pad_now();
    r->best = -INFINITY;
    r->best_epoch = -1;
    pad_run_event ev = {.kind = PAD_RUN_EV_UNIT_BEGIN,
                        .cls = cc->name,
                        .task = pad_prompt_task_name(task),
                        .k = g->k,
                        .seed = g->seed,
                        .n_epochs = cfg->run.epochs};
    run_emit(rc, &ev);
    run_unit_path(rc, r->final, sizeof r->final, cc->name, g->k, g->seed, pad_prompt_task_name(task));
    run_tmp_sibling(r->tmp, sizeof r->tmp, r->final);
    pad_remove_tree(r->tmp);
    unit_result *u = &r->u;
    u->task = task;
    u->k = g->k;
    u->seed = g->seed;
    u->shots = &g->shots;
    u->n_epochs = cfg->run.epochs;
    u->n_pro = task == PAD_TASK_CLS ? cfg->train.n_pro_cls : cfg->train.n_pro_seg;
    u->select_best = u->select_last = NAN;
    r->open = true;
    PAD_TRY(learner_of(rc, cc, task, slot, &r->pl));
    PAD_TRY(start_unit(rc, cc, g, r->pl, task));
    PAD_TRY(unit_alloc(rc, cc, u));
    for (int e = 0; e < u->n_epochs; e++)
        u->log[e].metric = NAN;
    return PAD_OK;
}

// Finishes the unit after its epochs (st: how they went): the final evaluation, its files written and committed by
// one rename, its summary kept; on an error its temporary folder goes (the finished units stay).
static pad_status unit_close(run_ctx *rc, class_ctx *cc, unit_run *r, pad_status st) {
    unit_result *u = &r->u;
    if (st == PAD_OK && run_stop_requested(rc)) st = PAD_ERR_ABORTED; // (no final evaluation for nothing)
    if (st == PAD_OK) unit_selected(rc, r);
    if (st == PAD_OK) st = finish_unit(rc, cc, r->g, u, &r->t_eval);
    if (st == PAD_OK) {
        u->t_total = pad_now() - r->t0;
        u->t_eval = r->t_eval;
        u->t_train = u->t_total - r->t_eval;
        if (run_stop_requested(rc)) st = PAD_ERR_ABORTED;
    }
    if (st == PAD_OK) st = run_write_unit(rc, cc, u, r->tmp);
    if (st == PAD_OK) st = run_commit_dir(r->tmp, r->final);
    if (st == PAD_OK) st = keep_summary(rc, cc, r->g, u);
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

pad_status run_train_unit(run_ctx *rc, class_ctx *cc, group_ctx *g, pad_prompt_task task) {
    unit_run *r = malloc(sizeof *r);
    if (!r) return PAD_ERR_OOM;
    pad_status st = unit_open(rc, cc, g, task, 0, r);
    for (int e = 0; e < r->u.n_epochs && st == PAD_OK; e++) {
        if (run_stop_requested(rc)) {
            st = PAD_ERR_ABORTED;
            break;
        }
        epoch_log *l = &r->u.log[e];
        l->lr = pad_prompt_lr(pad_prompt_learner_opts(r->pl), e, r->u.n_epochs);
        st = pad_prompt_learner_train_epoch(r->pl, e, r->u.n_epochs, &l->loss);
        if (st == PAD_OK) st = unit_epoch(rc, cc, r, e, NULL, NULL);
    }
    if (r->open) st = unit_close(rc, cc, r, st);
    free(r);
    return st;
}

// ----------------------------------------------------------------------------
// Cohorts

int run_cohort_units(group_ctx *const *g, int n) {
    int units = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < PAD_N_TASKS; t++)
            units += g[i]->todo[t];
    return units;
}

pad_status run_cohort_bytes(run_ctx *rc, class_ctx *cc, group_ctx *const *g, int n, double *bytes) {
    const double E = rc->E, P = rc->P, D = rc->D, W = rc->W, f = sizeof(float);
    *bytes = 0;
    for (int i = 0; i < n; i++) {
        const double k = g[i]->k;
        // the group: V and vmax (backend and host), the memory bank and the uploaded shot features while V is made
        *bytes += f * (2 * cc->n * P + cc->n + 2 * k * P * D + k * (E + P * E + 2 * P * D));
        for (int t = 0; t < PAD_N_TASKS; t++) {
            if (!g[i]->todo[t]) continue;
            pad_prompt_learner *pl = NULL;
            PAD_TRY(learner_of(rc, cc, (pad_prompt_task)t, 0, &pl));
            const int rows = pad_prompt_learner_counts(pl, NULL, NULL, NULL), L = pad_prompt_learner_seq_len(pl);
            const double T = t == PAD_TASK_CLS ? 1 : P;
            *bytes += 2.0 * (double)pad_text_encoder_bytes(rc->w_dev, rows, L); // the learner's encoder, the cohort's
            *bytes += f * (2 * rows * L * W + 2 * rows * E);                    // the cohort's embeddings, features
            *bytes += f * k * T * (E + 2 * rows);                               // the learner's shots and logits
            *bytes += f * (cc->n * T + 2 * E); // its text scores and text vectors in the cohort's buffers
        }
    }
    return PAD_OK;
}

// The cohort of the learners of units r[0..n) (prompt_cohort.h): the class's last one when its members are the same
// learners in the same order (the pool hands out learners in a fixed order), else a new one.
static pad_status cohort_of(run_ctx *rc, class_ctx *cc, unit_run *const *r, int n, pad_prompt_cohort **out) {
    bool same = cc->cohort && pad_prompt_cohort_size(cc->cohort) == n;
    for (int i = 0; i < n && same; i++)
        same = cc->cohort_members[i] == r[i]->pl;
    if (!same) {
        pad_prompt_cohort_free(cc->cohort);
        cc->cohort = NULL;
        free(cc->cohort_members);
        if (!(cc->cohort_members = malloc((size_t)n * sizeof *cc->cohort_members))) return PAD_ERR_OOM;
        for (int i = 0; i < n; i++)
            cc->cohort_members[i] = r[i]->pl;
        PAD_TRY(pad_prompt_cohort_create(&cc->cohort, rc->w_dev, cc->cohort_members, n));
    }
    *out = cc->cohort;
    return PAD_OK;
}

// The progress line of a cohort: its units and groups (with run.cohort auto, its estimated memory).
static void emit_cohort(run_ctx *rc, class_ctx *cc, group_ctx *const *g, int n_groups, int n_units) {
    char list[256] = "", mem[64] = "";
    for (int i = 0; i < n_groups; i++) {
        size_t l = strlen(list);
        if (l + 24 >= sizeof list) {
            snprintf(list + l, sizeof list - l, ", ...");
            break;
        }
        snprintf(list + l, sizeof list - l, "%sk%d seed%d", i ? ", " : "", g[i]->k, g[i]->seed);
    }
    double bytes = 0;
    if (rc->cfg->run.cohort < 0 && run_cohort_bytes(rc, cc, g, n_groups, &bytes) == PAD_OK)
        snprintf(mem, sizeof mem, ", about %.1f MiB", bytes / (1024.0 * 1024.0));
    run_emit_stage(rc, "class %s: training a cohort of %d unit%s in %d group%s (%s)%s", cc->name, n_units,
                   n_units == 1 ? "" : "s", n_groups, n_groups == 1 ? "" : "s", list, mem);
}

// The per-epoch buffers of a cohort of n units, its cls units first (backend): their text vectors, contiguous
// (n, 2, E), and their text scores, (n_cls, test images) and (n_seg, test images, P).
typedef struct cohort_bufs {
    float *tv, *sT, *T;
    int n_cls, n_seg;
} cohort_bufs;

// The text scores of every unit of the cohort for the current text vectors b->tv: one pass over the class's test
// features per task (pad_scorer_text_multi); each unit's share of the time goes to its evaluation time.
static pad_status cohort_scores(run_ctx *rc, class_ctx *cc, unit_run *const *r, const cohort_bufs *b) {
    const double t0 = pad_now();
    const size_t E2 = 2 * (size_t)rc->E;
    if (b->n_cls)
        PAD_TRY(pad_scorer_text_multi(cc->sc, cc->cls_dev, NULL, b->tv, rc->tau, cc->n, rc->E, b->n_cls, b->sT, NULL));
    if (b->n_seg)
        PAD_TRY(pad_scorer_text_multi(cc->sc, NULL, cc->tok_dev, b->tv + (size_t)b->n_cls * E2, rc->tau, cc->n, rc->E,
                                      b->n_seg, NULL, b->T));
    const int n = b->n_cls + b->n_seg;
    const double share = (pad_now() - t0) / n;
    for (int i = 0; i < n; i++)
        r[i]->t_eval += share;
    return PAD_OK;
}

// The epochs of the cohort's units r[0..n) in lockstep: one text pass for all, with run.select best one text-score
// pass per task for all, then each unit's own selection.
static pad_status cohort_epochs(run_ctx *rc, class_ctx *cc, unit_run *const *r, int n, const cohort_bufs *b) {
    pad_prompt_cohort *c = NULL;
    PAD_TRY(cohort_of(rc, cc, r, n, &c));
    const int n_epochs = rc->cfg->run.epochs;
    const bool best_mode = rc->cfg->run.select == PAD_SELECT_BEST;
    const size_t E2 = 2 * (size_t)rc->E, nP = (size_t)cc->n * (size_t)rc->P;
    pad_prompt_loss *loss = malloc((size_t)n * sizeof *loss);
    float **tvec = malloc((size_t)n * sizeof *tvec);
    pad_status st = loss && tvec ? PAD_OK : PAD_ERR_OOM;
    for (int i = 0; i < n && st == PAD_OK; i++)
        tvec[i] = b->tv + (size_t)i * E2;
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
        const bool scored = best_mode && wants_tvec(rc, r[0], e);
        if (st == PAD_OK && wants_tvec(rc, r[0], e)) st = pad_prompt_cohort_text_vectors(c, tvec);
        if (st == PAD_OK && scored) st = cohort_scores(rc, cc, r, b);
        for (int i = 0; i < n && st == PAD_OK; i++) {
            const float *text = !scored        ? NULL
                                : i < b->n_cls ? b->sT + (size_t)i * (size_t)cc->n
                                               : b->T + (size_t)(i - b->n_cls) * nP;
            st = unit_epoch(rc, cc, r[i], e, tvec[i], text);
        }
    }
    free(loss);
    free(tvec);
    return st;
}

// Opens the units still to do of groups g[0..n_groups) into r (cls units first, then seg: each task's text vectors
// are contiguous for pad_scorer_text_multi), learner slot i of a task for its i-th unit; *m counts the units made.
static pad_status cohort_open(run_ctx *rc, class_ctx *cc, group_ctx *const *g, int n_groups, unit_run **r, int *m,
                              cohort_bufs *b) {
    for (int t = 0; t < PAD_N_TASKS; t++)
        for (int j = 0, slot = 0; j < n_groups; j++) {
            if (!g[j]->todo[t]) continue;
            if (!(r[*m] = calloc(1, sizeof *r[*m]))) return PAD_ERR_OOM;
            PAD_TRY(unit_open(rc, cc, g[j], (pad_prompt_task)t, slot++, r[(*m)++]));
            if (t == PAD_TASK_CLS)
                b->n_cls++;
            else
                b->n_seg++;
        }
    const size_t n = (size_t)*m, E2 = 2 * (size_t)rc->E, nP = (size_t)cc->n * (size_t)rc->P;
    b->tv = pad_buf_alloc(rc->be, (n ? n : 1) * E2 * sizeof(float));
    b->sT = pad_buf_alloc(rc->be, (b->n_cls ? (size_t)b->n_cls : 1) * (size_t)cc->n * sizeof(float));
    b->T = pad_buf_alloc(rc->be, (b->n_seg ? (size_t)b->n_seg : 1) * nP * sizeof(float));
    return b->tv && b->sT && b->T ? PAD_OK : PAD_ERR_OOM;
}

pad_status run_train_cohort(run_ctx *rc, class_ctx *cc, group_ctx *const *g, int n_groups, run_group_done_fn done) {
    const int n = run_cohort_units(g, n_groups);
    unit_run **r = calloc((size_t)(n > 0 ? n : 1), sizeof *r);
    cohort_bufs b = {0};
    pad_status st = r ? PAD_OK : PAD_ERR_OOM;
    int m = 0;
    if (st == PAD_OK) emit_cohort(rc, cc, g, n_groups, n);
    if (st == PAD_OK) st = cohort_open(rc, cc, g, n_groups, r, &m, &b);
    if (st == PAD_OK) st = cohort_epochs(rc, cc, r, n, &b);
    // the units are committed one by one, group after group: an interruption keeps those already written
    for (int j = 0; j < n_groups; j++) {
        pad_status sg = st;
        for (int i = 0; i < m; i++)
            if (r[i] && r[i]->g == g[j] && r[i]->open) {
                pad_status s = unit_close(rc, cc, r[i], st);
                if (sg == PAD_OK) sg = s;
            }
        pad_status s = done ? done(rc, cc, g[j], sg) : sg;
        if (st == PAD_OK) st = s;
    }
    for (int i = 0; r && i < m; i++)
        free(r[i]);
    free(r);
    pad_buf_free(rc->be, b.tv);
    pad_buf_free(rc->be, b.sT);
    pad_buf_free(rc->be, b.T);
    return st;
}
