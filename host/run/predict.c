/* predict.c - saving model folders (predict.h) and `promptad predict`: new images scored through the public detector
 * API (detector.c: the run's scoring with the saved memory bank and text vectors), a decision at the saved
 * threshold, and heatmap overlays. */
#include "predict.h"

#include "config.h"
#include "fsutil.h"
#include "heatmap.h"
#include "image.h"
#include "jsonutil.h"
#include "log.h"
#include "st_file.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_CAP 4096

// ----------------------------------------------------------------------------
// Saving

pad_status pad_model_save(const char *dir, const pad_model_info *m) {
    char tmp[PATH_CAP + 64], p[PATH_CAP + 128];
    const char *slash = strrchr(dir, '/');
    if (slash)
        snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp-%ld", (int)(slash - dir), dir, slash + 1, (long)getpid());
    else
        snprintf(tmp, sizeof tmp, ".%s.tmp-%ld", dir, (long)getpid());
    pad_remove_tree(tmp);
    PAD_TRY(pad_mkdir_p(tmp));
    int P = m->grid * m->grid;
    pad_st_writer *w = NULL;
    pad_status st = pad_st_writer_init(&w);
    if (st == PAD_OK) st = pad_st_writer_add_f32(w, "shot_mid1", 3, (int64_t[]){m->k, P, m->width}, m->shot_mid1);
    if (st == PAD_OK) st = pad_st_writer_add_f32(w, "shot_mid2", 3, (int64_t[]){m->k, P, m->width}, m->shot_mid2);
    if (st == PAD_OK && m->cls_text)
        st = pad_st_writer_add_f32(w, "cls_text_features", 2, (int64_t[]){2, m->embed_dim}, m->cls_text);
    if (st == PAD_OK && m->seg_text)
        st = pad_st_writer_add_f32(w, "seg_text_features", 2, (int64_t[]){2, m->embed_dim}, m->seg_text);
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    if (st == PAD_OK) st = pad_st_writer_save(w, p);
    pad_st_writer_free(w);
    cJSON *j = st == PAD_OK ? cJSON_CreateObject() : NULL;
    if (st == PAD_OK && !j) st = PAD_ERR_OOM;
    if (st == PAD_OK) {
        char fp[32];
        cJSON_AddStringToObject(j, "format", PAD_MODEL_FORMAT);
        cJSON_AddNumberToObject(j, "version", PAD_MODEL_VERSION);
        cJSON_AddStringToObject(j, "promptad_version", PAD_VERSION);
        cJSON_AddStringToObject(j, "dataset", m->dataset);
        cJSON_AddStringToObject(j, "class", m->cls);
        cJSON_AddNumberToObject(j, "k", m->k);
        cJSON_AddNumberToObject(j, "seed", m->seed);
        cJSON_AddStringToObject(j, "protocol", m->protocol);
        cJSON_AddStringToObject(j, "config_hash", m->config_hash);
        cJSON *wj = cJSON_AddObjectToObject(j, "weights");
        cJSON_AddStringToObject(wj, "path", m->weights_path);
        cJSON_AddNumberToObject(wj, "size", (double)m->weights_size);
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)m->weights_fp);
        cJSON_AddStringToObject(wj, "fingerprint", fp);
        cJSON_AddNumberToObject(j, "image_size", m->image_size);
        cJSON_AddNumberToObject(j, "grid", m->grid);
        cJSON_AddNumberToObject(j, "embed_dim", m->embed_dim);
        cJSON_AddNumberToObject(j, "width", m->width);
        cJSON *taps = cJSON_AddArrayToObject(j, "taps");
        cJSON_AddItemToArray(taps, cJSON_CreateNumber(m->taps[0]));
        cJSON_AddItemToArray(taps, cJSON_CreateNumber(m->taps[1]));
        cJSON_AddStringToObject(j, "preprocess", m->preprocess);
        if (m->activation) cJSON_AddStringToObject(j, "activation", m->activation);
        cJSON_AddBoolToObject(j, "input_bgr", m->input_bgr);
        cJSON_AddNumberToObject(j, "resolution", m->resolution);
        cJSON_AddNumberToObject(j, "sigma", m->sigma);
        cJSON_AddNumberToObject(j, "truncate", m->truncate);
        cJSON_AddBoolToObject(j, "fp16_scores", m->fp16_scores);
        cJSON_AddNumberToObject(j, "logit_scale", m->logit_scale);
        cJSON_AddStringToObject(j, "tau", m->tau_exp ? "exp" : "raw");
        cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
        if (m->cls_text) cJSON_AddItemToArray(tasks, cJSON_CreateString("cls"));
        if (m->seg_text) cJSON_AddItemToArray(tasks, cJSON_CreateString("seg"));
        cJSON_AddStringToObject(j, "image_score",
                                m->cls_text ? "1/(1/max(bilinear(V)) + 1/s_T) (cls task)" : "max of the pixel map");
        cJSON_AddStringToObject(j, "pixel_map",
                                m->seg_text ? "gaussian_4(bilinear(1/(1/T + 1/V))) (seg task)" : "bilinear(V)");
        cJSON *sh = cJSON_AddArrayToObject(j, "shots");
        for (int i = 0; i < m->k; i++)
            cJSON_AddItemToArray(sh, cJSON_CreateString(m->shots[i]));
        cJSON *th = cJSON_AddObjectToObject(j, "threshold");
        pad_json_add_num(th, "value", m->threshold);
        cJSON_AddStringToObject(th, "rule", m->threshold_rule ? m->threshold_rule : "");
        pad_json_add_num(th, "f1", m->threshold_f1);
        pad_json_add_num(th, "precision", m->threshold_precision);
        pad_json_add_num(th, "recall", m->threshold_recall);
        cJSON *mr = cJSON_AddArrayToObject(j, "map_range");
        cJSON_AddItemToArray(mr, cJSON_CreateNumber(m->map_lo));
        cJSON_AddItemToArray(mr, cJSON_CreateNumber(m->map_hi));
        snprintf(p, sizeof p, "%s/model.json", tmp);
        st = pad_json_write_file(p, j);
    }
    cJSON_Delete(j);
    if (st == PAD_OK) {
        char old[PATH_CAP + 128];
        snprintf(old, sizeof old, "%s.old", tmp);
        bool had = pad_path_is_dir(dir);
        if (had && rename(dir, old) != 0) {
            PAD_LOG_ERROR("%s: cannot replace the model: %s", dir, strerror(errno));
            st = PAD_ERR_IO;
        } else if (rename(tmp, dir) != 0) {
            PAD_LOG_ERROR("%s: cannot move the model into place: %s", dir, strerror(errno));
            if (had) rename(old, dir);
            st = PAD_ERR_IO;
        } else if (had) {
            pad_remove_tree(old);
        }
    }
    if (st != PAD_OK) pad_remove_tree(tmp);
    return st;
}

// ----------------------------------------------------------------------------
// Inputs

static bool is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot || n[0] == '.') return false;
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".bmp"}; // the formats image.h reads
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (strcasecmp(dot, ext[i]) == 0) return true;
    return false;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct str_list {
    char **v;
    int n, cap;
} str_list;

static bool push(str_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(s);
    return l->v[l->n++] != NULL;
}

static pad_status list_inputs(const pad_predict_opts *o, str_list *out) {
    for (int i = 0; i < o->n_inputs; i++) {
        const char *in = o->inputs[i];
        if (pad_path_is_file(in)) {
            if (!push(out, in)) return PAD_ERR_OOM;
            continue;
        }
        if (!pad_path_is_dir(in)) {
            PAD_LOG_ERROR("%s: no such image or folder", in);
            return PAD_ERR_IO;
        }
        DIR *d = opendir(in);
        if (!d) {
            PAD_LOG_ERROR("%s: cannot open folder: %s", in, strerror(errno));
            return PAD_ERR_IO;
        }
        int first = out->n;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!is_image_name(e->d_name)) continue;
            char p[PATH_CAP];
            pad_path_join(p, sizeof p, in, e->d_name);
            if (pad_path_is_file(p) && !push(out, p)) {
                closedir(d);
                return PAD_ERR_OOM;
            }
        }
        closedir(d);
        if (out->n - first > 1) qsort(out->v + first, (size_t)(out->n - first), sizeof *out->v, cmp_str);
        if (out->n == first) PAD_LOG_WARN("%s: no image (png, jpg, jpeg, bmp) in this folder", in);
    }
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// Predict

// One image's line of predictions.csv and its overlay.
static pad_status write_one(const pad_predict_opts *o, const pad_detector_info *info, pad_preprocess_mode mode,
                            FILE *csv, const char *path, int index, const pad_image *img, float score, const float *map,
                            const char *hdir) {
    pad_csv_field(csv, path);
    bool anomalous = !isnan(info->threshold) && (double)score >= info->threshold;
    fprintf(csv, ",%.9g,%.9g,%s\n", (double)score, info->threshold, anomalous ? "anomalous" : "normal");
    if (!o->heatmaps) return PAD_OK;
    pad_image ov = {0};
    PAD_TRY(pad_heatmap_render(img, mode, map, info->map_size, info->map_size, (float)info->map_lo, (float)info->map_hi,
                               NULL, 0, &ov));
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    char name[700], op[PATH_CAP + 800];
    snprintf(name, sizeof name, "%05d_%.*s.png", index, dot ? (int)(dot - base) : (int)strlen(base), base);
    snprintf(op, sizeof op, "%s/%s", hdir, name);
    pad_status st = pad_image_save_png(op, &ov);
    pad_image_free(&ov);
    return st;
}

// Scores the inputs batch by batch with the detector; unreadable images are logged, counted in *bad and skipped.
static pad_status predict_all(const pad_predict_opts *o, pad_detector *d, const str_list *in, FILE *csv,
                              const char *hdir, int *scored, int *bad) {
    pad_detector_info info;
    pad_detector_get_info(d, &info);
    pad_preprocess_mode mode;
    PAD_TRY(pad_preprocess_mode_parse(info.preprocess, &mode));
    const int B = o->batch > 0 ? o->batch : 16;
    const size_t RR = (size_t)info.map_size * (size_t)info.map_size;
    pad_image *imgs = calloc((size_t)B, sizeof *imgs);
    bool *ok = calloc((size_t)B, sizeof *ok);
    int *idx = calloc((size_t)B, sizeof *idx), *w = calloc((size_t)B, sizeof *w), *h = calloc((size_t)B, sizeof *h);
    const uint8_t **rgb = calloc((size_t)B, sizeof *rgb);
    float *maps = malloc((size_t)B * RR * sizeof(float)), *scores = malloc((size_t)B * sizeof(float));
    pad_status st = imgs && ok && idx && w && h && rgb && maps && scores ? PAD_OK : PAD_ERR_OOM;
    for (int c0 = 0; c0 < in->n && st == PAD_OK; c0 += B) {
        int nb = in->n - c0 < B ? in->n - c0 : B;
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < nb; i++)
            ok[i] = pad_image_load(&imgs[i], in->v[c0 + i]) == PAD_OK;
        int b = 0;
        for (int i = 0; i < nb; i++) {
            if (!ok[i]) {
                (*bad)++;
                continue;
            }
            idx[b] = c0 + i;
            rgb[b] = imgs[i].rgb;
            w[b] = imgs[i].w;
            h[b] = imgs[i].h;
            b++;
        }
        st = pad_detector_score_rgb(d, rgb, w, h, b, scores, maps, NULL);
        for (int i = 0, j = 0; i < nb && st == PAD_OK; i++) {
            if (!ok[i]) continue;
            st =
                write_one(o, &info, mode, csv, in->v[idx[j]], idx[j], &imgs[i], scores[j], maps + (size_t)j * RR, hdir);
            (*scored)++;
            j++;
        }
        for (int i = 0; i < nb; i++)
            pad_image_free(&imgs[i]);
    }
    free(imgs);
    free(ok);
    free(idx);
    free(w);
    free(h);
    free(rgb);
    free(maps);
    free(scores);
    return st;
}

pad_status pad_predict(const pad_predict_opts *o, int *n_scored) {
    if (n_scored) *n_scored = 0;
    pad_detector_params dp = pad_detector_params_default();
    dp.device = (pad_backend_kind)o->device;
    dp.n_threads = o->threads;
    dp.weights = o->weights;
    dp.max_batch = o->batch > 0 ? o->batch : 16;
    pad_detector *d = NULL;
    str_list in = {0};
    FILE *csv = NULL;
    int bad = 0, scored = 0;
    char csv_tmp[PATH_CAP + 64] = "", csv_path[PATH_CAP + 32] = "", hdir[PATH_CAP + 32] = "";
    pad_status st = pad_detector_load(&d, o->model_dir, &dp);
    if (st == PAD_OK) st = list_inputs(o, &in);
    if (st == PAD_OK && in.n == 0) {
        PAD_LOG_ERROR("no input image");
        st = PAD_ERR_INVALID_ARG;
    }
    if (st == PAD_OK) st = pad_mkdir_p(o->out_dir);
    snprintf(hdir, sizeof hdir, "%s/heatmaps", o->out_dir);
    if (st == PAD_OK && o->heatmaps) st = pad_mkdir_p(hdir);
    snprintf(csv_path, sizeof csv_path, "%s/predictions.csv", o->out_dir);
    snprintf(csv_tmp, sizeof csv_tmp, "%s.tmp%ld", csv_path, (long)getpid());
    if (st == PAD_OK && !(csv = fopen(csv_tmp, "wb"))) {
        PAD_LOG_ERROR("%s: cannot write: %s", csv_tmp, strerror(errno));
        st = PAD_ERR_IO;
    }
    if (st == PAD_OK) {
        fprintf(csv, "path,score,threshold,decision\n");
        st = predict_all(o, d, &in, csv, hdir, &scored, &bad);
    }
    if (csv) {
        bool werr = fclose(csv) != 0;
        if (st == PAD_OK && werr) {
            PAD_LOG_ERROR("%s: write error", csv_tmp);
            st = PAD_ERR_IO;
        }
        if (st == PAD_OK && rename(csv_tmp, csv_path) != 0) {
            PAD_LOG_ERROR("%s: cannot write: %s", csv_path, strerror(errno));
            st = PAD_ERR_IO;
        }
        if (st != PAD_OK) remove(csv_tmp);
    }
    if (st == PAD_OK && bad) {
        PAD_LOG_ERROR("%d of %d images could not be read (named above); the others are in %s", bad, in.n, csv_path);
        st = PAD_ERR_FORMAT;
    }
    if (n_scored) *n_scored = scored;
    pad_detector_free(d);
    for (int i = 0; i < in.n; i++)
        free(in.v[i]);
    free(in.v);
    return st;
}
