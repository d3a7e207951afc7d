/* run.c - the main job of run.h, as a story: the classes of the dataset, the survey of the units already finished,
 * then per class (test set decoded and encoded once, features.c) and per (shot, seed) (shots encoded and cached,
 * the memory bank and its visual score V computed once and shared by both tasks) each task's unit is trained,
 * evaluated, written and committed (unit_train.c); the predict model of the group follows (model_writer.c).
 * The method is described in docs/method.md; the other files of the loop are listed in run_internal.h. */
#include "run_internal.h"
#include "run_method.h"

#include "claim.h"
#include "fsutil.h"
#include "log.h"
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ----------------------------------------------------------------------------
// Progress and stop

bool run_stop_requested(const run_ctx *rc) {
    return rc->opts && rc->opts->stop && *rc->opts->stop;
}

void run_emit(const run_ctx *rc, pad_run_event *ev) {
    if (!rc->opts || !rc->opts->progress) return;
    ev->n_units = rc->n_units;
    ev->n_done = rc->n_done;
    ev->n_skipped = rc->n_skipped;
    rc->opts->progress(ev, rc->opts->user_data);
}

void run_emit_stage(const run_ctx *rc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pad_run_event ev = {.kind = PAD_RUN_EV_STAGE, .message = msg};
    run_emit(rc, &ev);
}

// Sharding (pad_run_opts.shard_*): the (class, shot, seed) groups of the run, numbered j = (c * n_shots + a) *
// n_seeds + b in the order of data.classes / run.shots / run.seeds, are cut into shard_count contiguous blocks of
// (almost) equal size, block i = [floor(i M / N), floor((i+1) M / N)) of the M groups. Both tasks of a group stay
// together (they share the memory bank and V, and the group's predict model needs both), and contiguous blocks
// keep the classes whose test set a shard must encode few (a class's groups are consecutive).
static bool owns_group(const run_ctx *rc, int c, int a, int b) {
    const pad_run_opts *o = rc->opts;
    if (!o || o->shard_count <= 1) return true;
    const pad_run_config *cfg = rc->cfg;
    const long long M = (long long)rc->n_classes * cfg->run.n_shots * cfg->run.n_seeds;
    const long long j = ((long long)c * cfg->run.n_shots + a) * cfg->run.n_seeds + b;
    const long long i = o->shard_index, N = o->shard_count;
    return j >= M * i / N && j < M * (i + 1) / N;
}

// ----------------------------------------------------------------------------
// Sharing a results folder
//
// Several runs may write into one output.dir at the same time (shards on a cluster pointed at one shared folder, or
// two runs started by hand). Each (class, shot, seed) group is claimed before any of its work (claim.h: a lock on
// <class>/k<k>/seed<s>/.claim, dropped by the kernel however the holder ends), so two runs never compute the same
// group: a run that finds a group claimed defers it and goes on; at the end it comes back to its deferred groups,
// waits for each claim and finds the units finished by the other run (counted as done by another), or computes
// what that run left (it failed or was killed). Under the claim every temporary folder of the group is stale.

#define GROUP_DEFERRED 0x80 // claimed by another process on the first visit; bit t (1 << t): task t counted finished

static uint8_t *group_flags(const run_ctx *rc, int c, int a, int b) {
    return &rc->groups[((size_t)c * (size_t)rc->cfg->run.n_shots + (size_t)a) * (size_t)rc->cfg->run.n_seeds +
                       (size_t)b];
}

// Reads the state of the group's units into todo[] (true: not finished with this config) and counts the units
// found finished that were not at the survey nor by this run: another run finished them. Returns whether anything
// is left to do (a unit, or the group's predict model).
static bool group_refresh(run_ctx *rc, int ci, int a, int b, bool todo[PAD_N_TASKS]) {
    const pad_run_config *cfg = rc->cfg;
    const char *name = rc->classes[ci];
    const int k = cfg->run.shots[a], seed = cfg->run.seeds[b];
    uint8_t *fl = group_flags(rc, ci, a, b);
    for (int t = 0; t < PAD_N_TASKS; t++) {
        todo[t] = false;
        if (!(cfg->run.tasks & (1 << t))) continue;
        todo[t] = run_unit_state(rc, name, k, seed, (pad_prompt_task)t, NULL, 0) != UNIT_DONE;
        if (!todo[t] && !(*fl & (1 << t))) {
            *fl |= (uint8_t)(1 << t);
            rc->n_by_other++;
            rc->n_done++;
        }
    }
    return todo[0] || todo[1] ||
           (cfg->output.models && !run_is_baseline(cfg) && !run_model_is_current(rc, name, k, seed));
}

// Takes the claim of a deferred group, polling so that a stop request is seen while another process holds it.
static pad_status wait_claim(const run_ctx *rc, pad_claim *cl, const char *path, const char *name, int k, int seed) {
    bool got = false, told = false;
    for (;;) {
        PAD_TRY(pad_claim_acquire(cl, path, false, &got));
        if (got) return PAD_OK;
        if (run_stop_requested(rc)) return PAD_ERR_ABORTED;
        if (!told) run_emit_stage(rc, "%s k%d seed%d: waiting for the other run that is computing it", name, k, seed);
        told = true;
        nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    }
}

// ----------------------------------------------------------------------------
// One group and one class

// The class's listing and prompts (once), and its encoded test set when need_test (once).
static pad_status class_ready(run_ctx *rc, class_ctx *cc, bool need_test, char *name_buf, size_t cap) {
    if (!cc->loaded) {
        pad_status st = pad_dataset_class_load(rc->ds, cc->name, &cc->data);
        if (st != PAD_OK) {
            PAD_LOG_ERROR("class %s: cannot list the dataset (data.root %s)", cc->name, rc->cfg->data.root);
            return st;
        }
        cc->loaded = true;
        if (!run_is_baseline(rc->cfg)) PAD_TRY(run_class_prompts(rc, cc, name_buf, cap));
    }
    if (need_test && !cc->test_ready) {
        // the ResNet baselines keep normalised test images, PromptAD the encoded test set
        PAD_TRY(run_is_baseline(rc->cfg) ? run_baseline_prepare_class(rc, cc) : run_prepare_class_test(rc, cc));
        cc->test_ready = true;
    }
    return PAD_OK;
}

// Everything a group holds, released (its claim included); the group is left empty.
static void group_free(run_ctx *rc, class_ctx *cc, group_ctx *g) {
    if (cc->active == g) cc->active = NULL;
    pad_claim_release(&g->claim);
    if (g->has_shots) pad_shots_free(&g->shots);
    pad_buf_free(rc->be, g->V_dev);
    pad_buf_free(rc->be, g->vmax_dev);
    free(g->V_host);
    for (int t = 0; t < PAD_N_TASKS; t++)
        run_unit_summary_clear(&g->done[t]);
    memset(g, 0, sizeof *g);
    g->claim = (pad_claim)PAD_CLAIM_INIT;
}

// The start of group g of class ci, whose claim the caller holds: the units still to do (*work false when nothing
// is left, not even its predict model), the class ready, the shots drawn and encoded, and for PromptAD units the
// memory bank's visual score V computed once for both tasks (run_group_visual).
static pad_status group_begin(run_ctx *rc, class_ctx *cc, int ci, group_ctx *g, char *name_buf, size_t cap,
                              bool *work) {
    const pad_run_config *cfg = rc->cfg;
    *work = group_refresh(rc, ci, g->a, g->b, g->todo);
    if (!*work) return PAD_OK; // finished meanwhile (by another run)
    const bool units = g->todo[0] || g->todo[1];
    PAD_TRY(class_ready(rc, cc, units, name_buf, cap));
    if (g->k > cc->data.n_train) {
        PAD_LOG_ERROR("class %s: %d shots requested but %s has %d train images", cc->name, g->k, cfg->data.root,
                      cc->data.n_train);
        return PAD_ERR_INVALID_ARG;
    }
    PAD_TRY(pad_shots_select(&cc->data, g->k, (pad_shot_select)cfg->run.shot_select, (uint64_t)g->seed, rc->lists,
                             &g->shots));
    g->has_shots = true;
    if (run_is_baseline(cfg)) return PAD_OK;
    PAD_TRY(run_shot_features(rc, cc, g->shots.index, g->k));
    if (!units) return PAD_OK;
    pad_bank *bank = NULL;
    pad_status st = run_upload_shots(rc, cc, g->shots.index, g->k);
    if (st == PAD_OK) st = pad_bank_init(&bank, rc->be, cc->shot_mid1, cc->shot_mid2, g->k, rc->P, rc->D);
    if (st == PAD_OK) st = run_group_visual(rc, cc, g, bank);
    pad_bank_free(bank);
    return st;
}

// The end of group g after its units (st: how they went): the units committed by this run counted, its predict
// model written (PromptAD with output.models), everything it holds released, its claim last.
static pad_status group_finish(run_ctx *rc, class_ctx *cc, group_ctx *g, pad_status st) {
    for (int t = 0; t < PAD_N_TASKS; t++)
        if (g->done[t].valid) *g->flags |= (uint8_t)(1 << t);
    const bool need_model = rc->cfg->output.models && !run_is_baseline(rc->cfg); // predict serves PromptAD only
    if (st == PAD_OK && need_model && g->has_shots) st = run_write_model(rc, cc, g);
    if (st == PAD_OK && run_stop_requested(rc)) st = PAD_ERR_ABORTED;
    group_free(rc, cc, g);
    return st;
}

// The units of group g alone after group_begin (st, work): the baseline's, or PromptAD's one by one (run.cohort
// 1) or as a cohort of one group; then group_finish.
static pad_status group_alone(run_ctx *rc, class_ctx *cc, group_ctx *g, pad_status st, bool work) {
    const bool baseline = run_is_baseline(rc->cfg);
    if (st == PAD_OK && work && baseline && (g->todo[0] || g->todo[1])) {
        st = run_baseline_units(rc, cc, g->k, g->seed, &g->shots, g->todo);
        for (int t = 0; t < PAD_N_TASKS && st == PAD_OK; t++)
            if (g->todo[t]) *g->flags |= (uint8_t)(1 << t);
    }
    if (st != PAD_OK || !work || baseline) return group_finish(rc, cc, g, st);
    if (rc->cfg->run.cohort != 1 && run_cohort_units(&g, 1) > 0) return run_train_cohort(rc, cc, &g, 1, group_finish);
    for (int t = 0; t < PAD_N_TASKS && st == PAD_OK; t++) {
        if (!g->todo[t]) continue;
        if (run_stop_requested(rc)) {
            st = PAD_ERR_ABORTED;
            break;
        }
        st = run_train_unit(rc, cc, g, (pad_prompt_task)t);
    }
    return group_finish(rc, cc, g, st);
}

// The memory budget of a run.cohort auto cohort: run.cohort_mem, else half the free memory of a CUDA device (at the
// first cohort of the run), else 1 GiB.
static double cohort_budget(run_ctx *rc) {
    if (rc->cohort_budget > 0) return rc->cohort_budget;
    size_t free_b = 0, total_b = 0;
    if (rc->cfg->run.cohort_mem > 0)
        rc->cohort_budget = (double)rc->cfg->run.cohort_mem;
    else if (pad_backend_device_memory(rc->be, &free_b, &total_b) == PAD_OK && free_b > 0)
        rc->cohort_budget = 0.5 * (double)free_b;
    else
        rc->cohort_budget = 1024.0 * 1024.0 * 1024.0;
    PAD_LOG_INFO("run.cohort auto: cohorts of up to %.0f MiB%s", rc->cohort_budget / (1024.0 * 1024.0),
                 rc->cfg->run.cohort_mem > 0 ? " (run.cohort_mem)"
                 : free_b > 0                ? " (half the free device memory)"
                                             : " (the default on the CPU)");
    return rc->cohort_budget;
}

// Whether group g may join the cohort of groups p[0..n) (run.cohort N: at most N units; auto: within the memory
// budget, run_cohort_bytes). *st receives an error of the estimate.
static bool cohort_takes(run_ctx *rc, class_ctx *cc, group_ctx **p, int n, group_ctx *g, pad_status *st) {
    const int limit = rc->cfg->run.cohort;
    if (limit > 0) return run_cohort_units(p, n) + run_cohort_units(&g, 1) <= limit;
    p[n] = g; // (p has room for every group of the class)
    double bytes = 0;
    *st = run_cohort_bytes(rc, cc, p, n + 1, &bytes);
    return *st == PAD_OK && bytes <= cohort_budget(rc);
}

// Claims the group (a, b) of the class for this run: *got false when another run holds it (deferred_pass false:
// the group is deferred to the end; true: waits for it).
static pad_status group_claim(run_ctx *rc, const class_ctx *cc, int ci, group_ctx *g, bool deferred_pass, bool *got) {
    char seed_dir[PATH_CAP], lock[PATH_CAP + 16];
    run_unit_path(rc, seed_dir, sizeof seed_dir, cc->name, g->k, g->seed, NULL);
    PAD_TRY(pad_mkdir_p(seed_dir));
    snprintf(lock, sizeof lock, "%s/.claim", seed_dir);
    *got = true;
    if (deferred_pass)
        PAD_TRY(wait_claim(rc, &g->claim, lock, cc->name, g->k, g->seed));
    else
        PAD_TRY(pad_claim_acquire(&g->claim, lock, false, got));
    uint8_t *fl = group_flags(rc, ci, g->a, g->b);
    if (!*got) {
        *fl |= GROUP_DEFERRED;
        run_emit_stage(rc, "%s k%d seed%d: another run is computing it; coming back to it at the end", cc->name, g->k,
                       g->seed);
        return PAD_OK;
    }
    *fl &= (uint8_t)~GROUP_DEFERRED;
    run_remove_stale_tmp(seed_dir, !g->claim.unlocked);
    return PAD_OK;
}

// The groups of class ci in this shard. First pass (deferred_pass false): every group with work left whose claim
// is free; a claimed one is deferred. Second pass: the deferred groups, waiting for their claims. With run.cohort
// other than 1 the claimed groups with units to train gather into cohorts (run_train_cohort), each trained once
// it is full or the class has no more groups; every group keeps its claim until its units and model are done.
static pad_status run_class(run_ctx *rc, int ci, bool deferred_pass) {
    const pad_run_config *cfg = rc->cfg;
    class_ctx cc;
    memset(&cc, 0, sizeof cc);
    cc.name = rc->classes[ci];
    char name_buf[PAD_CFG_NAME_MAX];
    const int n_groups = cfg->run.n_shots * cfg->run.n_seeds;
    group_ctx *gs = calloc((size_t)n_groups, sizeof *gs);
    group_ctx **pend = calloc((size_t)n_groups, sizeof *pend); // the cohort being gathered
    int n_pend = 0;
    pad_status st = gs && pend ? PAD_OK : PAD_ERR_OOM;
    for (int j = 0; j < n_groups && st == PAD_OK; j++) {
        const int a = j / cfg->run.n_seeds, b = j % cfg->run.n_seeds;
        uint8_t *fl = group_flags(rc, ci, a, b);
        if (!owns_group(rc, ci, a, b) || deferred_pass != ((*fl & GROUP_DEFERRED) != 0)) continue;
        group_ctx *g = &gs[j];
        *g = (group_ctx){.a = a, .b = b, .k = cfg->run.shots[a], .seed = cfg->run.seeds[b], .flags = fl};
        g->claim = (pad_claim)PAD_CLAIM_INIT;
        if (!deferred_pass && !group_refresh(rc, ci, a, b, g->todo)) continue;
        bool got = false, work = false;
        if ((st = group_claim(rc, &cc, ci, g, deferred_pass, &got)) != PAD_OK || !got) continue;
        st = group_begin(rc, &cc, ci, g, name_buf, sizeof name_buf, &work);
        if (st != PAD_OK || !work || cfg->run.cohort == 1 || run_is_baseline(cfg) || !run_cohort_units(&g, 1)) {
            st = group_alone(rc, &cc, g, st, work);
            continue;
        }
        if (n_pend && !cohort_takes(rc, &cc, pend, n_pend, g, &st) && st == PAD_OK) {
            st = run_train_cohort(rc, &cc, pend, n_pend, group_finish);
            n_pend = 0;
        }
        pend[n_pend++] = g;
    }
    if (st == PAD_OK && n_pend) {
        st = run_train_cohort(rc, &cc, pend, n_pend, group_finish);
        n_pend = 0;
    }
    for (int i = 0; i < n_pend; i++) // gathered but not trained (an error came first): their claims go
        group_free(rc, &cc, pend[i]);
    run_class_learners_free(&cc);
    run_class_free(rc, &cc);
    free(gs);
    free(pend);
    return st;
}

static bool class_has_deferred(const run_ctx *rc, int ci) {
    for (int a = 0; a < rc->cfg->run.n_shots; a++)
        for (int b = 0; b < rc->cfg->run.n_seeds; b++)
            if (*group_flags(rc, ci, a, b) & GROUP_DEFERRED) return true;
    return false;
}

// ----------------------------------------------------------------------------
// The job

static pad_status pick_classes(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    int n_present = pad_dataset_n_classes(rc->ds);
    int n = cfg->data.n_classes ? cfg->data.n_classes : n_present;
    rc->classes = calloc((size_t)n, sizeof *rc->classes);
    if (!rc->classes) return PAD_ERR_OOM;
    for (int i = 0; i < n; i++) {
        const char *c = cfg->data.n_classes ? cfg->data.classes[i] : pad_dataset_class_name(rc->ds, i);
        if (pad_dataset_find_class(rc->ds, c) < 0) {
            char list[1024] = "";
            for (int j = 0; j < n_present; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", pad_dataset_class_name(rc->ds, j));
            }
            PAD_LOG_ERROR("data.classes: '%s' is not a class of %s (classes present: %s)", c, cfg->data.root, list);
            return PAD_ERR_INVALID_ARG;
        }
        rc->classes[i] = (char *)c;
    }
    rc->n_classes = n;
    return PAD_OK;
}

// Counts units and checks the finished ones before any work; a broken unit (a file missing or cut short) is named
// and will be recomputed.
static pad_status survey(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    rc->n_units = 0;
    int mismatched = 0, broken = 0;
    char first[PATH_CAP] = "", fhash[64] = "";
    size_t n_groups = (size_t)rc->n_classes * (size_t)cfg->run.n_shots * (size_t)cfg->run.n_seeds;
    rc->groups = calloc(n_groups ? n_groups : 1, 1);
    if (!rc->groups) return PAD_ERR_OOM;
    for (int c = 0; c < rc->n_classes; c++)
        for (int a = 0; a < cfg->run.n_shots; a++)
            for (int b = 0; b < cfg->run.n_seeds; b++)
                for (int t = 0; t < PAD_N_TASKS; t++) {
                    if (!(cfg->run.tasks & (1 << t)) || !owns_group(rc, c, a, b)) continue;
                    rc->n_units++;
                    const int k = cfg->run.shots[a], seed = cfg->run.seeds[b];
                    char why[300], dir[PATH_CAP];
                    unit_state s = run_unit_state(rc, rc->classes[c], k, seed, (pad_prompt_task)t, why, sizeof why);
                    run_unit_path(rc, dir, sizeof dir, rc->classes[c], k, seed,
                                  pad_prompt_task_name((pad_prompt_task)t));
                    if (s == UNIT_DONE) {
                        rc->n_skipped++;
                        *group_flags(rc, c, a, b) |= (uint8_t)(1 << t);
                    }
                    if (s == UNIT_BROKEN && broken++ < 20)
                        PAD_LOG_WARN("%s: unfinished or damaged unit (%s): it is recomputed", dir, why);
                    if (s == UNIT_MISMATCH && mismatched++ == 0) {
                        snprintf(first, sizeof first, "%s", dir);
                        run_read_recorded_hash(first, fhash, sizeof fhash);
                    }
                }
    if (broken > 20) PAD_LOG_WARN("... and %d more unfinished or damaged units", broken - 20);
    rc->n_done = rc->n_skipped;
    if (mismatched && !cfg->output.redo_on_mismatch) {
        PAD_LOG_ERROR("%s (and %d other unit%s) was computed with other settings (config hash %s, this run has %s); "
                      "choose another output.dir, or recompute with --set output.on_mismatch=redo",
                      first, mismatched - 1, mismatched == 2 ? "" : "s", fhash[0] ? fhash : "?", rc->hash);
        return PAD_ERR_INVALID_ARG;
    }
    if (mismatched)
        PAD_LOG_WARN("%d finished unit%s with other settings will be recomputed", mismatched,
                     mismatched == 1 ? "" : "s");
    return PAD_OK;
}

pad_status pad_run(const pad_run_config *cfg_in, const pad_run_opts *opts, pad_run_result *res) {
    memset(res, 0, sizeof *res);
    run_ctx rc;
    memset(&rc, 0, sizeof rc);
    // the run works on a copy whose checkpoint-dependent defaults are resolved (pad_run_config_resolve_model)
    pad_run_config *cfg = (pad_run_config *)malloc(sizeof *cfg);
    if (!cfg) return PAD_ERR_OOM;
    *cfg = *cfg_in;
    rc.cfg = cfg;
    rc.opts = opts;
    rc.res = res;
    snprintf(rc.dataset, sizeof rc.dataset, "%s", pad_run_config_dataset(cfg));
    pad_path_join(rc.ds_dir, sizeof rc.ds_dir, cfg->output.dir, rc.dataset);
    if (run_is_baseline(cfg)) { // a ResNet baseline's units go beside PromptAD's, as the CLIP baselines' (run_method.h)
        char ds[PATH_CAP];
        snprintf(ds, sizeof ds, "%s", rc.ds_dir);
        pad_path_join(rc.ds_dir, sizeof rc.ds_dir, ds, run_baseline_name(cfg));
    }
    pad_path_join(res->results_dir, sizeof res->results_dir, cfg->output.dir, rc.dataset);
    pad_status st = PAD_OK;
    bool dry = opts && opts->dry_run;

    PAD_TRY_GOTO(st, run_ensure_generated_model(cfg), done);
    PAD_TRY_GOTO(st, pad_run_config_resolve_model(cfg), done);
    PAD_TRY_GOTO(st, run_ensure_synth(cfg), done);
    PAD_TRY_GOTO(st, run_init_model(&rc), done);
    if (cfg->run.method == PAD_RUN_METHOD_CPE || cfg->run.method == PAD_RUN_METHOD_WINCLIP) {
        // the CLIP baselines have their own units (run_method.h)
        st = pad_run_baseline(cfg, opts, res, rc.hash, rc.vocab_path);
        rc.n_computed = res->n_computed;
        goto done;
    }
    const char *fmt = strcmp(cfg->data.format, "synth") == 0 ? "mvtec" : cfg->data.format;
    PAD_TRY_GOTO(st, pad_dataset_format_parse(fmt, &rc.format), done);
    PAD_TRY_GOTO(st, pad_dataset_open(&rc.ds, rc.format, cfg->data.root), done);
    PAD_TRY_GOTO(st, pick_classes(&rc), done);
    PAD_TRY_GOTO(st, survey(&rc), done);
    res->n_units = rc.n_units;
    res->n_skipped = rc.n_skipped;
    {
        pad_run_event ev = {.kind = PAD_RUN_EV_BEGIN};
        run_emit(&rc, &ev);
    }
    if (dry) goto done;
    PAD_TRY_GOTO(st, pad_mkdir_p(rc.ds_dir), done);
    if (run_is_baseline(cfg)) {
        char marker[PATH_CAP];
        pad_path_join(marker, sizeof marker, rc.ds_dir, PAD_METHOD_MARKER);
        const char *name = run_baseline_name(cfg);
        PAD_TRY_GOTO(st, pad_write_file_atomic(marker, name, strlen(name)), done);
    }
    {
        size_t n = pad_run_config_to_yaml(cfg, NULL, 0);
        char *y = malloc(n + 256);
        if (y) {
            int h = snprintf(y, 256, "# promptad %s, config hash %s\n", PAD_VERSION, rc.hash);
            pad_run_config_to_yaml(cfg, y + h, n + 1);
            char p[PATH_CAP];
            pad_path_join(p, sizeof p, rc.ds_dir, "run_config.yaml");
            pad_write_file_atomic(p, y, strlen(y));
            free(y);
        }
    }
    if (rc.n_skipped < rc.n_units || cfg->output.models) {
        PAD_TRY_GOTO(st, run_init_backend(&rc), done);
        if (run_is_baseline(cfg)) {
            PAD_TRY_GOTO(st, run_baseline_load(&rc), done); // the feature cache holds CLIP encodings only
        } else {
            PAD_TRY_GOTO(st, run_load_model(&rc), done);
            PAD_TRY_GOTO(st, run_open_cache(&rc), done);
        }
        PAD_LOG_INFO("backend %s; model %s (S %d, grid %d, E %d, D %d); config hash %s",
                     pad_backend_kind_str(pad_backend_get_kind(rc.be)), rc.weights_path, rc.S, rc.G, rc.E, rc.D,
                     rc.hash);
        for (int pass = 0; pass < 2; pass++) // the groups whose claims are free, then those deferred
            for (int c = 0; c < rc.n_classes && st == PAD_OK; c++) {
                if (run_stop_requested(&rc)) {
                    st = PAD_ERR_ABORTED;
                    break;
                }
                if (pass == 0 || class_has_deferred(&rc, c)) st = run_class(&rc, c, pass == 1);
            }
    }
done:
    res->n_computed = rc.n_computed;
    res->n_by_other = rc.n_by_other;
    if (!dry && rc.ds_dir[0] && pad_path_is_dir(rc.ds_dir)) {
        char paper[PAD_CFG_PATH_MAX];
        pad_resolve_data_path("configs/paper_results.csv", paper, sizeof paper);
        const char *dirs[1] = {cfg->output.dir};
        pad_status rs = pad_report_write(dirs, 1, cfg->output.dir, paper, &res->summary_md, NULL);
        if (st == PAD_OK) st = rs;
    }
    {
        pad_run_event ev = {.kind = PAD_RUN_EV_END};
        run_emit(&rc, &ev);
    }
    run_free_model(&rc);
    pad_dataset_free(rc.ds);
    free(rc.classes);
    free(rc.groups);
    free(cfg);
    return st;
}
