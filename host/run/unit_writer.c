/* unit_writer.c - the files of a finished unit, each written by its own function into the unit's temporary folder:
 * scores.csv (image score per test image), train.csv (the training log), prompts.safetensors (text vectors and
 * learned contexts of the reported epoch), maps.safetensors (output.maps), heatmaps/ (output.heatmaps) and, last,
 * metrics.json, which lists the other files with their sizes and whose presence marks the unit finished (run.h lists
 * the layout, unit_dir.c checks it). */
#include "run_internal.h"

#include "claim.h"
#include "fsutil.h"
#include "heatmap.h"
#include "jsonutil.h"
#include "log.h"
#include "st_file.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static FILE *open_out(const char *p) {
    FILE *fp = fopen(p, "wb");
    if (!fp) PAD_LOG_ERROR("%s: cannot write: %s", p, strerror(errno));
    return fp;
}

static pad_status close_out(FILE *fp, const char *p) {
    if (fclose(fp) != 0) {
        PAD_LOG_ERROR("%s: write error", p);
        return PAD_ERR_IO;
    }
    return PAD_OK;
}

// scores.csv: path,label,score of every test image.
static pad_status write_scores_csv(const class_ctx *cc, const unit_result *u, const char *tmp) {
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, tmp, "scores.csv");
    FILE *fp = open_out(p);
    if (!fp) return PAD_ERR_IO;
    fprintf(fp, "path,label,score\n");
    for (int i = 0; i < cc->n; i++) {
        pad_csv_field(fp, cc->data.test[cc->items[i]].path);
        fprintf(fp, ",%d,%.9g\n", cc->labels[i], (double)u->ev.scores[i]);
    }
    return close_out(fp, p);
}

// train.csv: epoch, lr, loss terms and the selection metric where it was evaluated.
static pad_status write_train_csv(const unit_result *u, const char *tmp) {
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, tmp, "train.csv");
    FILE *fp = open_out(p);
    if (!fp) return PAD_ERR_IO;
    fprintf(fp, "epoch,lr,loss,ce,eam,align,%s\n", u->task == PAD_TASK_CLS ? "image_auroc" : "pixel_auroc");
    for (int e = 0; e < u->n_epochs; e++) {
        const epoch_log *l = &u->log[e];
        fprintf(fp, "%d,%.9g,%.9g,%.9g,%.9g,%.9g,", e + 1, (double)l->lr, (double)l->loss.total, (double)l->loss.ce,
                (double)l->loss.eam, (double)l->loss.align);
        if (!isnan(l->metric)) fprintf(fp, "%.9g", l->metric);
        fputc('\n', fp);
    }
    return close_out(fp, p);
}

// prompts.safetensors: text_features [2,E], normal_ctx, abnormal_ctx of the reported epoch.
static pad_status write_prompts(const run_ctx *rc, const unit_result *u, const char *tmp) {
    const pad_run_config *cfg = rc->cfg;
    pad_st_writer *w = NULL;
    PAD_TRY(pad_st_writer_init(&w));
    int n_ctx = cfg->train.n_ctx, n_ctx_ab = cfg->train.n_ctx_ab, n_pro_ab = cfg->train.n_pro_ab;
    pad_status st = pad_st_writer_add_f32(w, "text_features", 2, (int64_t[]){2, rc->E}, u->tvec);
    if (st == PAD_OK)
        st = pad_st_writer_add_f32(w, "normal_ctx", 3, (int64_t[]){u->n_pro, n_ctx, rc->W}, u->normal_ctx);
    if (st == PAD_OK)
        st = pad_st_writer_add_f32(w, "abnormal_ctx", 3, (int64_t[]){n_pro_ab, n_ctx_ab, rc->W}, u->abnormal_ctx);
    char ebuf[32], p[PATH_CAP];
    snprintf(ebuf, sizeof ebuf, "%d", u->epoch_reported);
    if (st == PAD_OK) st = pad_st_writer_meta(w, "epoch", ebuf);
    if (st == PAD_OK) st = pad_st_writer_meta(w, "task", pad_prompt_task_name(u->task));
    pad_path_join(p, sizeof p, tmp, "prompts.safetensors");
    if (st == PAD_OK) st = pad_st_writer_save(w, p);
    pad_st_writer_free(w);
    return st;
}

// maps.safetensors (output.maps grid or full).
static pad_status write_maps(const run_ctx *rc, const class_ctx *cc, const unit_result *u, const char *tmp) {
    const pad_run_config *cfg = rc->cfg;
    if (cfg->output.maps == PAD_MAPS_NONE) return PAD_OK;
    const int n = cc->n, P = rc->P, G = rc->G, R = rc->R;
    const size_t RR = (size_t)R * (size_t)R;
    pad_st_writer *w = NULL;
    PAD_TRY(pad_st_writer_init(&w));
    pad_status st = pad_st_writer_add_f32(w, "image_score", 1, (int64_t[]){n}, u->ev.scores);
    if (st == PAD_OK) st = pad_st_writer_add(w, "labels", PAD_DTYPE_U8, 1, (int64_t[]){n}, cc->labels);
    if (st == PAD_OK && !u->baseline) st = pad_st_writer_add_f32(w, "visual_map", 3, (int64_t[]){n, G, G}, cc->V_host);
    float *grid = u->baseline ? NULL : malloc((size_t)n * (size_t)P * sizeof(float));
    if (!grid && !u->baseline) st = PAD_ERR_OOM;
    if (st == PAD_OK && u->baseline) { // the baselines have no V / T grids: image scores and pixel maps only
    } else if (st == PAD_OK && u->task == PAD_TASK_SEG) {
        st = pad_buf_download(rc->be, grid, cc->sc->T, (size_t)n * (size_t)P * sizeof(float));
        if (st == PAD_OK) st = pad_st_writer_add_f32(w, "text_map", 3, (int64_t[]){n, G, G}, grid);
    } else if (st == PAD_OK) {
        st = pad_buf_download(rc->be, grid, cc->sc->sT, (size_t)n * sizeof(float));
        if (st == PAD_OK) st = pad_st_writer_add_f32(w, "text_image_score", 1, (int64_t[]){n}, grid);
    }
    free(grid);
    if (st == PAD_OK && cfg->output.maps == PAD_MAPS_FULL) {
        const float *maps = u->task == PAD_TASK_CLS && !u->baseline ? cc->vmaps_host : cc->maps_host;
        uint16_t *h = malloc((size_t)n * RR * sizeof(uint16_t));
        if (!h) st = PAD_ERR_OOM;
        for (size_t i = 0; h && i < (size_t)n * RR; i++)
            h[i] = pad_f32_to_f16(maps[i]);
        if (st == PAD_OK) st = pad_st_writer_add(w, "pixel_map", PAD_DTYPE_F16, 3, (int64_t[]){n, R, R}, h);
        free(h);
    }
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, tmp, "maps.safetensors");
    if (st == PAD_OK) st = pad_st_writer_save(w, p);
    pad_st_writer_free(w);
    return st;
}

// heatmaps/<defect>_<name>.png for the class's heatmap samples.
static pad_status write_heatmaps(const run_ctx *rc, const class_ctx *cc, const char *dir, const float *maps, float lo,
                                 float hi) {
    if (cc->n_samples == 0) return PAD_OK;
    char hdir[PATH_CAP];
    pad_path_join(hdir, sizeof hdir, dir, "heatmaps");
    PAD_TRY(pad_mkdir_p(hdir));
    size_t RR = (size_t)rc->R * (size_t)rc->R;
    pad_preprocess_mode mode = (pad_preprocess_mode)rc->cfg->model.preprocess;
    for (int s = 0; s < cc->n_samples; s++) {
        int i = cc->samples[s];
        const pad_test_item *it = &cc->data.test[cc->items[i]];
        pad_image ov = {0};
        PAD_TRY(pad_heatmap_render(&cc->sample_img[s], mode, maps + (size_t)i * RR, rc->R, rc->R, lo, hi,
                                   it->mask_paths, it->n_masks, &ov));
        const char *base = strrchr(it->path, '/');
        base = base ? base + 1 : it->path;
        char name[600], path[PATH_CAP];
        const char *dot = strrchr(base, '.');
        snprintf(name, sizeof name, "%s_%.*s.png", it->defect_type, dot ? (int)(dot - base) : (int)strlen(base), base);
        pad_path_join(path, sizeof path, hdir, name);
        pad_status st = pad_image_save_png(path, &ov);
        pad_image_free(&ov);
        PAD_TRY(st);
    }
    return PAD_OK;
}

// metrics.json: the metrics and everything needed to tell how they were obtained.
static void add_metrics(cJSON *j, const unit_result *u) {
    pad_json_add_num(j, "image_auroc", u->ev.img.auroc);
    pad_json_add_num(j, "image_aupr", u->ev.img.aupr);
    pad_json_add_num(j, "pixel_auroc", u->ev.has_pix ? u->ev.pix.auroc : NAN);
    pad_json_add_num(j, "pixel_aupr", u->ev.has_pix ? u->ev.pix.aupr : NAN);
    pad_json_add_num(j, "pixel_pro", u->ev.has_pix ? u->ev.pix.pro : NAN);
    pad_json_add_num(j, "pixel_pro_200", u->ev.has_pix ? u->ev.pix.pro_200 : NAN);
}

static void add_settings(cJSON *j, const run_ctx *rc, const class_ctx *cc, const unit_result *u) {
    const pad_run_config *cfg = rc->cfg;
    const bool cls = u->task == PAD_TASK_CLS;
    cJSON_AddStringToObject(j, "dataset", rc->dataset);
    cJSON_AddStringToObject(j, "format", cfg->data.format);
    cJSON_AddStringToObject(j, "class", cc->name);
    cJSON_AddNumberToObject(j, "k", u->k);
    cJSON_AddNumberToObject(j, "seed", u->seed);
    cJSON_AddStringToObject(j, "task", pad_prompt_task_name(u->task));
    cJSON_AddStringToObject(j, "protocol", cfg->run.protocol == PAD_PROTOCOL_OFFICIAL ? "official" : "clean");
    char variant[96];
    pad_run_variant_name(cfg, variant, sizeof variant);
    // the method: a ResNet baseline's name, else PromptAD or its ablation variant (report.c groups by it)
    cJSON_AddStringToObject(j, "method", u->baseline ? u->baseline : variant);
    cJSON_AddStringToObject(j, "config_hash", rc->hash);
    if (!u->baseline) cJSON_AddNumberToObject(j, "epochs", cfg->run.epochs);
    if (!u->baseline) cJSON_AddNumberToObject(j, "epoch", u->epoch_reported);
    cJSON_AddStringToObject(j, "selection", u->selection);
    if (cfg->run.select == PAD_SELECT_BEST) {
        pad_json_add_num(j, "selection_best", u->select_best);
        pad_json_add_num(j, "selection_last_epoch", u->select_last);
    }
    if (u->baseline) { // docs/conv_methods.md
        const bool pc = !strcmp(u->baseline, "patchcore"), sp = !strcmp(u->baseline, "spade");
        cJSON_AddStringToObject(j, "image_score",
                                pc   ? "reweighted max patch distance (anomalib, 9 neighbours)"
                                : sp ? "mean distance of the global feature to the 5 nearest shots"
                                     : "max of the pixel map");
        cJSON_AddStringToObject(j, "pixel_map",
                                pc   ? "gaussian_4(nearest(patch distances))"
                                : sp ? "gaussian_4(mean over layer1..3 of bilinear(nearest-pixel distance))"
                                     : "gaussian_4(bilinear(Mahalanobis))");
    } else {
        cJSON_AddStringToObject(j, "image_score", cls ? "1/(1/max(bilinear(V)) + 1/s_T)" : "max of the pixel map");
        cJSON_AddStringToObject(j, "pixel_map",
                                cls ? "bilinear(V), unsmoothed (official cls am_pix)"
                                    : "gaussian_4(bilinear(1/(1/T + 1/V)))");
    }
    cJSON_AddNumberToObject(j, "n_test", cc->n);
    cJSON_AddNumberToObject(j, "n_test_anomalous", cc->n_anom);
    cJSON_AddStringToObject(j, "shot_select", pad_shot_select_str(u->shots->mode));
    if (cfg->run.shot_lists[0]) cJSON_AddStringToObject(j, "shot_lists", cfg->run.shot_lists);
    cJSON *sh = cJSON_AddArrayToObject(j, "shots");
    for (int i = 0; i < u->shots->k; i++)
        cJSON_AddItemToArray(sh, cJSON_CreateString(u->shots->paths[i]));
    cJSON_AddStringToObject(j, "preprocess", pad_preprocess_mode_str((pad_preprocess_mode)cfg->model.preprocess));
    cJSON_AddBoolToObject(j, "test_bgr", cfg->run.test_bgr != 0);
    cJSON_AddBoolToObject(j, "fp16_scores", cfg->run.fp16_scores != 0);
    if (rc->pset) cJSON_AddStringToObject(j, "prompts", pad_prompt_set_name(rc->pset));
    cJSON_AddNumberToObject(j, "resolution", rc->R);
    cJSON_AddNumberToObject(j, "fpr_limit", cfg->run.fpr_limit);
    cJSON_AddStringToObject(j, "weights", rc->weights_path);
    cJSON_AddStringToObject(j, "device", pad_backend_kind_str(pad_backend_get_kind(rc->be)));
    if (cfg->run.fast_math != PAD_MATH_FP32 && pad_backend_get_kind(rc->be) == PAD_BACKEND_CUDA)
        cJSON_AddStringToObject(j, "fast_math", pad_math_mode_str((pad_math_mode)cfg->run.fast_math));
}

static void add_threshold_and_timing(cJSON *j, const unit_result *u) {
    cJSON *th = cJSON_AddObjectToObject(j, "threshold");
    pad_json_add_num(th, "value", u->thr);
    cJSON_AddStringToObject(th, "rule", "max F1 of the image scores on this test set (score >= value: anomalous)");
    pad_json_add_num(th, "f1", u->f1);
    pad_json_add_num(th, "precision", u->prec);
    pad_json_add_num(th, "recall", u->rec);
    cJSON *mr = cJSON_AddArrayToObject(j, "map_range");
    cJSON_AddItemToArray(mr, cJSON_CreateNumber(u->map_lo));
    cJSON_AddItemToArray(mr, cJSON_CreateNumber(u->map_hi));
    cJSON *tm = cJSON_AddObjectToObject(j, "timing_s");
    cJSON_AddNumberToObject(tm, "train", u->t_train);
    cJSON_AddNumberToObject(tm, "eval", u->t_eval);
    cJSON_AddNumberToObject(tm, "total", u->t_total);
    cJSON_AddStringToObject(j, "promptad_version", PAD_VERSION);
}

// "files": {name: bytes} of every file written before metrics.json (heatmaps/ included): a unit is finished only
// when all of them are there with these sizes (unit_dir.c).
static void add_files(cJSON *j, const char *tmp) {
    cJSON *files = cJSON_AddObjectToObject(j, "files");
    static const char *const subs[] = {"", "heatmaps"};
    for (int s = 0; s < 2; s++) {
        char dir[PATH_CAP];
        pad_path_join(dir, sizeof dir, tmp, subs[s]);
        DIR *d = opendir(dir);
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || strcmp(e->d_name, "metrics.json") == 0) continue;
            char p[PATH_CAP], name[600];
            pad_path_join(p, sizeof p, dir, e->d_name);
            struct stat sb;
            if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
            snprintf(name, sizeof name, "%s%s%s", subs[s], s ? "/" : "", e->d_name);
            cJSON_AddNumberToObject(files, name, (double)sb.st_size);
        }
        closedir(d);
    }
}

static pad_status write_metrics_json(const run_ctx *rc, const class_ctx *cc, const unit_result *u, const char *tmp) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return PAD_ERR_OOM;
    add_metrics(j, u);
    add_settings(j, rc, cc, u);
    add_threshold_and_timing(j, u);
    add_files(j, tmp);
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, tmp, "metrics.json");
    pad_status st = pad_json_write_file(p, j);
    cJSON_Delete(j);
    return st;
}

pad_status run_write_unit(run_ctx *rc, class_ctx *cc, const unit_result *u, const char *tmp) {
    PAD_TRY(pad_mkdir_p(tmp));
    PAD_TRY(pad_owner_write(tmp)); // who writes this temporary folder (claim.h), removed before metrics.json
    PAD_TRY(write_scores_csv(cc, u, tmp));
    if (!u->baseline) PAD_TRY(write_train_csv(u, tmp));
    if (!u->baseline) PAD_TRY(write_prompts(rc, u, tmp));
    PAD_TRY(write_maps(rc, cc, u, tmp));
    const bool cls = u->task == PAD_TASK_CLS && !u->baseline;
    if (!cls || cc->vmaps_valid)
        PAD_TRY(write_heatmaps(rc, cc, tmp, cls ? cc->vmaps_host : cc->maps_host, u->map_lo, u->map_hi));
    char owner[PATH_CAP];
    pad_path_join(owner, sizeof owner, tmp, ".owner");
    remove(owner);
    return write_metrics_json(rc, cc, u, tmp); // last: its presence marks the unit finished
}
