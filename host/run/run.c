/* run.c - the main job of run.h, as a story: the classes of the dataset, the survey of the units already finished,
 * then per class (test set decoded and encoded once, features.c) and per (shot, seed) (shots encoded and cached,
 * the memory bank and its visual score V computed once and shared by both tasks) each task's unit is trained,
 * evaluated, written and committed (unit_train.c); the predict model of the group follows (model_writer.c).
 * The method is described in docs/method.md; the other files of the loop are listed in run_internal.h. */
#include "run_internal.h"

#include "fsutil.h"
#include "log.h"
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
// One class

static pad_status run_class(run_ctx *rc, int ci) {
    const pad_run_config *cfg = rc->cfg;
    const char *name = rc->classes[ci];
    class_ctx cc;
    memset(&cc, 0, sizeof cc);
    cc.name = name;
    // what is left to do (in this shard)
    int todo_units = 0, todo_models = 0;
    for (int a = 0; a < cfg->run.n_shots; a++)
        for (int b = 0; b < cfg->run.n_seeds; b++) {
            if (!owns_group(rc, ci, a, b)) continue;
            bool all_done = true;
            for (int t = 0; t < PAD_N_TASKS; t++) {
                if (!(cfg->run.tasks & (1 << t))) continue;
                if (run_unit_state(rc, name, cfg->run.shots[a], cfg->run.seeds[b], (pad_prompt_task)t) != UNIT_DONE) {
                    todo_units++;
                    all_done = false;
                }
            }
            if (cfg->output.models &&
                (!all_done || !run_model_is_current(rc, name, cfg->run.shots[a], cfg->run.seeds[b])))
                todo_models++;
        }
    if (!todo_units && !todo_models) return PAD_OK;
    pad_status st = PAD_OK;
    char name_buf[PAD_CFG_NAME_MAX];
    st = pad_dataset_class_load(rc->ds, name, &cc.data);
    if (st != PAD_OK) {
        PAD_LOG_ERROR("class %s: cannot list the dataset (data.root %s)", name, cfg->data.root);
        return st;
    }
    cc.loaded = true;
    st = run_class_prompts(rc, &cc, name_buf, sizeof name_buf);
    if (st == PAD_OK && todo_units) st = run_prepare_class_test(rc, &cc);
    for (int a = 0; a < cfg->run.n_shots && st == PAD_OK; a++) {
        int k = cfg->run.shots[a];
        for (int b = 0; b < cfg->run.n_seeds && st == PAD_OK; b++) {
            if (!owns_group(rc, ci, a, b)) continue;
            int seed = cfg->run.seeds[b];
            bool todo[PAD_N_TASKS] = {false, false};
            for (int t = 0; t < PAD_N_TASKS; t++)
                todo[t] =
                    (cfg->run.tasks & (1 << t)) && run_unit_state(rc, name, k, seed, (pad_prompt_task)t) != UNIT_DONE;
            bool need_model = cfg->output.models && (todo[0] || todo[1] || !run_model_is_current(rc, name, k, seed));
            if (!todo[0] && !todo[1] && !need_model) continue;
            char seed_dir[PATH_CAP];
            run_unit_path(rc, seed_dir, sizeof seed_dir, name, k, seed, NULL);
            if ((st = pad_mkdir_p(seed_dir)) != PAD_OK) break;
            run_remove_stale_tmp(seed_dir);
            if (k > cc.data.n_train) {
                PAD_LOG_ERROR("class %s: %d shots requested but %s has %d train images", name, k, cfg->data.root,
                              cc.data.n_train);
                st = PAD_ERR_INVALID_ARG;
                break;
            }
            for (int t = 0; t < PAD_N_TASKS; t++)
                run_unit_summary_clear(&cc.done[t]);
            pad_shots shots;
            st =
                pad_shots_select(&cc.data, k, (pad_shot_select)cfg->run.shot_select, (uint64_t)seed, rc->lists, &shots);
            if (st != PAD_OK) break;
            st = run_shot_features(rc, &cc, shots.index, k);
            if (st == PAD_OK && (todo[0] || todo[1])) {
                pad_bank *bank = NULL;
                st = run_upload_shots(rc, &cc, shots.index, k);
                if (st == PAD_OK) st = pad_bank_init(&bank, rc->be, cc.shot_mid1, cc.shot_mid2, k, rc->P, rc->D);
                if (st == PAD_OK) st = run_visual_scores(rc, &cc, bank, todo[0]);
                for (int t = 0; t < PAD_N_TASKS && st == PAD_OK; t++) {
                    if (!todo[t]) continue;
                    if (run_stop_requested(rc)) {
                        st = PAD_ERR_ABORTED;
                        break;
                    }
                    st = run_train_unit(rc, &cc, (pad_prompt_task)t, k, seed, &shots);
                }
                pad_bank_free(bank);
            }
            if (st == PAD_OK && need_model) st = run_write_model(rc, &cc, k, seed, &shots);
            pad_shots_free(&shots);
            if (st == PAD_OK && run_stop_requested(rc)) st = PAD_ERR_ABORTED;
        }
    }
    run_class_free(rc, &cc);
    return st;
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

// Counts units and checks the finished ones before any work.
static pad_status survey(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    rc->n_units = 0;
    int mismatched = 0;
    char first[PATH_CAP] = "", fhash[64] = "";
    for (int c = 0; c < rc->n_classes; c++)
        for (int a = 0; a < cfg->run.n_shots; a++)
            for (int b = 0; b < cfg->run.n_seeds; b++)
                for (int t = 0; t < PAD_N_TASKS; t++) {
                    if (!(cfg->run.tasks & (1 << t)) || !owns_group(rc, c, a, b)) continue;
                    rc->n_units++;
                    unit_state s =
                        run_unit_state(rc, rc->classes[c], cfg->run.shots[a], cfg->run.seeds[b], (pad_prompt_task)t);
                    if (s == UNIT_DONE) rc->n_skipped++;
                    if (s == UNIT_MISMATCH && mismatched++ == 0) {
                        run_unit_path(rc, first, sizeof first, rc->classes[c], cfg->run.shots[a], cfg->run.seeds[b],
                                      pad_prompt_task_name((pad_prompt_task)t));
                        run_read_recorded_hash(first, fhash, sizeof fhash);
                    }
                }
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

pad_status pad_run(const pad_run_config *cfg, const pad_run_opts *opts, pad_run_result *res) {
    memset(res, 0, sizeof *res);
    run_ctx rc;
    memset(&rc, 0, sizeof rc);
    rc.cfg = cfg;
    rc.opts = opts;
    rc.res = res;
    snprintf(rc.dataset, sizeof rc.dataset, "%s", pad_run_config_dataset(cfg));
    pad_path_join(rc.ds_dir, sizeof rc.ds_dir, cfg->output.dir, rc.dataset);
    pad_path_join(res->results_dir, sizeof res->results_dir, cfg->output.dir, rc.dataset);
    pad_status st = PAD_OK;
    bool dry = opts && opts->dry_run;

    PAD_TRY_GOTO(st, run_ensure_generated_model(cfg), done);
    PAD_TRY_GOTO(st, run_ensure_synth(cfg), done);
    PAD_TRY_GOTO(st, run_init_model(&rc), done);
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
        PAD_TRY_GOTO(st, run_load_model(&rc), done);
        PAD_TRY_GOTO(st, run_open_cache(&rc), done);
        PAD_LOG_INFO("backend %s; model %s (S %d, grid %d, E %d, D %d); config hash %s",
                     pad_backend_kind_str(pad_backend_get_kind(rc.be)), rc.weights_path, rc.S, rc.G, rc.E, rc.D,
                     rc.hash);
        for (int c = 0; c < rc.n_classes && st == PAD_OK; c++) {
            if (run_stop_requested(&rc)) {
                st = PAD_ERR_ABORTED;
                break;
            }
            st = run_class(&rc, c);
        }
    }
done:
    res->n_computed = rc.n_computed;
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
    return st;
}
