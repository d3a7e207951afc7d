/* model_writer.c - the predict model of a (class, shot, seed) (predict.h): the raw memory-bank features of its
 * shots, the text vectors of its cls and seg units, the threshold and colour range of the unit that gives the
 * image score. Built from the units this run just finished (group_ctx.done, in memory); a unit finished by an earlier
 * run is read back from its folder (prompts.safetensors and metrics.json). */
#include "run_internal.h"

#include "fsutil.h"
#include "log.h"
#include "predict.h"
#include "st_file.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void run_unit_summary_clear(unit_summary *s) {
    free(s->tvec);
    memset(s, 0, sizeof *s);
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? it->valuedouble : NAN;
}

// The summary of a unit finished by an earlier run, from its folder.
static pad_status read_summary(const run_ctx *rc, const char *dir, unit_summary *s) {
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, dir, "prompts.safetensors");
    pad_st_file *f = NULL;
    PAD_TRY(pad_st_open(&f, p));
    pad_status st = pad_st_read_f32(f, "text_features", 2, (int64_t[]){2, rc->E}, &s->tvec, NULL);
    pad_st_close(f);
    PAD_TRY(st);
    pad_path_join(p, sizeof p, dir, "metrics.json");
    char *text = NULL;
    PAD_TRY(pad_read_file(p, &text, NULL));
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) {
        PAD_LOG_ERROR("%s: malformed JSON", p);
        return PAD_ERR_FORMAT;
    }
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(j, "threshold");
    const cJSON *mr = cJSON_GetObjectItemCaseSensitive(j, "map_range");
    s->thr = jnum(th, "value");
    s->f1 = jnum(th, "f1");
    s->prec = jnum(th, "precision");
    s->rec = jnum(th, "recall");
    s->map_lo = cJSON_GetArraySize(mr) == 2 ? cJSON_GetArrayItem(mr, 0)->valuedouble : 0.0;
    s->map_hi = cJSON_GetArraySize(mr) == 2 ? cJSON_GetArrayItem(mr, 1)->valuedouble : 1.0;
    s->n_test = (int)jnum(j, "n_test");
    s->n_test_anomalous = (int)jnum(j, "n_test_anomalous");
    s->valid = true;
    cJSON_Delete(j);
    return PAD_OK;
}

// The raw layer features of the k shots (host copies of the shot cache).
static pad_status shot_memory(const run_ctx *rc, const class_ctx *cc, const pad_shots *shots, float **m1, float **m2) {
    const size_t PD = (size_t)rc->P * (size_t)rc->D;
    const int k = shots->k;
    *m1 = malloc((size_t)k * PD * sizeof(float));
    *m2 = malloc((size_t)k * PD * sizeof(float));
    if (!*m1 || !*m2) return PAD_ERR_OOM;
    for (int i = 0; i < k; i++) {
        const shot_feat *f = run_cached_shot(cc, shots->index[i]);
        PAD_ASSERT(f != NULL);
        memcpy(*m1 + (size_t)i * PD, f->mid1, PD * sizeof(float));
        memcpy(*m2 + (size_t)i * PD, f->mid2, PD * sizeof(float));
    }
    return PAD_OK;
}

static pad_status save_model(const run_ctx *rc, const class_ctx *cc, int k, int seed, const pad_shots *shots,
                             const unit_summary *sum, const float *m1, const float *m2) {
    const pad_run_config *cfg = rc->cfg;
    // the threshold and the score range come from the unit that gives the image score (cls, else seg)
    const unit_summary *img = sum[PAD_TASK_CLS].valid ? &sum[PAD_TASK_CLS] : &sum[PAD_TASK_SEG];
    const unit_summary *pix = sum[PAD_TASK_SEG].valid ? &sum[PAD_TASK_SEG] : &sum[PAD_TASK_CLS];
    char rule[256];
    snprintf(rule, sizeof rule, "max F1 of the image scores on the test set of %s (%d images, %d anomalous), %s task",
             cc->name, img->n_test, img->n_test_anomalous, sum[PAD_TASK_CLS].valid ? "cls" : "seg");
    // the absolute path, so that predict finds the weights from any working directory
    char abs_weights[PATH_MAX] = "";
    if (!realpath(rc->weights_path, abs_weights)) abs_weights[0] = 0;
    pad_model_info mi = {
        .dataset = rc->dataset,
        .cls = cc->name,
        .protocol = cfg->run.protocol == PAD_PROTOCOL_OFFICIAL ? "official" : "clean",
        .config_hash = rc->hash,
        .k = k,
        .seed = seed,
        .weights_path = abs_weights[0] ? abs_weights : rc->weights_path,
        .weights_size = rc->weights_size,
        .weights_fp = rc->weights_fp,
        .image_size = rc->S,
        .grid = rc->G,
        .embed_dim = rc->E,
        .width = rc->D,
        .taps = {rc->taps[0], rc->taps[1]},
        .preprocess = pad_preprocess_mode_str((pad_preprocess_mode)cfg->model.preprocess),
        .activation = cfg->model.activation >= 0 ? pad_activation_name((pad_activation)cfg->model.activation) : NULL,
        .input_bgr = cfg->run.test_bgr != 0,
        .resolution = rc->R,
        .sigma = 4.0,
        .truncate = 4.0,
        .fp16_scores = cfg->run.fp16_scores != 0,
        .logit_scale = rc->w_host->logit_scale,
        .tau_exp = cfg->run.tau_exp,
        .shots = shots->paths,
        .shot_mid1 = m1,
        .shot_mid2 = m2,
        .cls_text = sum[PAD_TASK_CLS].valid ? sum[PAD_TASK_CLS].tvec : NULL,
        .seg_text = sum[PAD_TASK_SEG].valid ? sum[PAD_TASK_SEG].tvec : NULL,
        .threshold = img->thr,
        .threshold_rule = rule,
        .threshold_f1 = img->f1,
        .threshold_precision = img->prec,
        .threshold_recall = img->rec,
        .map_lo = pix->map_lo,
        .map_hi = pix->map_hi,
    };
    char dir[PATH_CAP];
    run_unit_path(rc, dir, sizeof dir, cc->name, k, seed, "model");
    return pad_model_save(dir, &mi);
}

pad_status run_write_model(run_ctx *rc, class_ctx *cc, const group_ctx *g) {
    const int k = g->k, seed = g->seed;
    const pad_shots *shots = &g->shots;
    const pad_run_config *cfg = rc->cfg;
    unit_summary read[PAD_N_TASKS];
    memset(read, 0, sizeof read);
    unit_summary sum[PAD_N_TASKS];
    memset(sum, 0, sizeof sum);
    float *m1 = NULL, *m2 = NULL;
    pad_status st = shot_memory(rc, cc, shots, &m1, &m2);
    for (int t = 0; t < PAD_N_TASKS && st == PAD_OK; t++) {
        if (!(cfg->run.tasks & (1 << t))) continue;
        if (g->done[t].valid) {
            sum[t] = g->done[t]; // borrowed: g keeps ownership
            continue;
        }
        char dir[PATH_CAP];
        run_unit_path(rc, dir, sizeof dir, cc->name, k, seed, pad_prompt_task_name((pad_prompt_task)t));
        st = read_summary(rc, dir, &read[t]);
        sum[t] = read[t];
    }
    if (st == PAD_OK) st = save_model(rc, cc, k, seed, shots, sum, m1, m2);
    for (int t = 0; t < PAD_N_TASKS; t++)
        run_unit_summary_clear(&read[t]);
    free(m1);
    free(m2);
    return st;
}
