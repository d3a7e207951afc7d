/* predict.c - model folders (predict.h) and `promptad predict`: the run's scoring of new images with a saved memory
 * bank and text vectors, a decision at the saved threshold, and heatmap overlays. */
#include "predict.h"

#include "config.h"
#include "fsutil.h"
#include "image.h"
#include "jsonutil.h"
#include "log.h"
#include "score.h"
#include "st_file.h"
#include "vit.h"
#include "weights.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
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
// Loading

typedef struct model {
    cJSON *j;
    char dir[PATH_CAP];
    int k, S, G, P, E, D, R, taps[2];
    pad_preprocess_mode preprocess;
    bool bgr, fp16, tau_exp;
    float logit_scale;
    double threshold, lo, hi;
    const char *weights_path, *fingerprint;
    int64_t weights_size;
    float *mid1, *mid2, *cls_text, *seg_text;
} model;

static void model_free(model *m) {
    cJSON_Delete(m->j);
    free(m->mid1);
    free(m->mid2);
    free(m->cls_text);
    free(m->seg_text);
    memset(m, 0, sizeof *m);
}

static pad_status model_load(model *m, const char *dir) {
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    char p[PATH_CAP + 32];
    snprintf(p, sizeof p, "%s/model.json", dir);
    if (!pad_path_is_file(p)) {
        PAD_LOG_ERROR("%s: not a promptad model folder (no model.json; models are written by 'promptad run' to "
                      "<results>/<dataset>/<class>/k<k>/seed<s>/model)",
                      dir);
        return PAD_ERR_IO;
    }
    char *text = NULL;
    PAD_TRY(pad_read_file(p, &text, NULL));
    m->j = cJSON_Parse(text);
    free(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m->j, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, PAD_MODEL_FORMAT) != 0) {
        PAD_LOG_ERROR("%s: not a promptad model description", p);
        return PAD_ERR_FORMAT;
    }
    int ver = 0;
    pad_json_get_int(m->j, "version", &ver);
    if (ver != PAD_MODEL_VERSION) {
        PAD_LOG_ERROR("%s: model format version %d, this promptad reads version %d", p, ver, PAD_MODEL_VERSION);
        return PAD_ERR_FORMAT;
    }
    const cJSON *wj = cJSON_GetObjectItemCaseSensitive(m->j, "weights");
    const cJSON *wp = cJSON_GetObjectItemCaseSensitive(wj, "path");
    const cJSON *wf = cJSON_GetObjectItemCaseSensitive(wj, "fingerprint");
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(wj, "size");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(m->j, "preprocess");
    const cJSON *taps = cJSON_GetObjectItemCaseSensitive(m->j, "taps");
    bool ok = cJSON_IsString(wp) && cJSON_IsString(wf) && cJSON_IsNumber(ws) && cJSON_IsString(pre) &&
              cJSON_GetArraySize(taps) == 2 && pad_json_get_int(m->j, "k", &m->k) &&
              pad_json_get_int(m->j, "image_size", &m->S) && pad_json_get_int(m->j, "grid", &m->G) &&
              pad_json_get_int(m->j, "embed_dim", &m->E) && pad_json_get_int(m->j, "width", &m->D) &&
              pad_json_get_int(m->j, "resolution", &m->R);
    if (!ok) {
        PAD_LOG_ERROR("%s: missing or malformed fields", p);
        return PAD_ERR_FORMAT;
    }
    m->P = m->G * m->G;
    m->weights_path = wp->valuestring;
    m->fingerprint = wf->valuestring;
    m->weights_size = (int64_t)ws->valuedouble;
    m->taps[0] = (int)cJSON_GetArrayItem(taps, 0)->valuedouble;
    m->taps[1] = (int)cJSON_GetArrayItem(taps, 1)->valuedouble;
    PAD_TRY(pad_preprocess_mode_parse(pre->valuestring, &m->preprocess));
    m->bgr = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m->j, "input_bgr"));
    m->fp16 = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m->j, "fp16_scores"));
    const cJSON *tau = cJSON_GetObjectItemCaseSensitive(m->j, "tau");
    m->tau_exp = cJSON_IsString(tau) && strcmp(tau->valuestring, "exp") == 0;
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(m->j, "logit_scale");
    m->logit_scale = cJSON_IsNumber(ls) ? (float)ls->valuedouble : 0.0f;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m->j, "threshold"), "value");
    m->threshold = cJSON_IsNumber(th) ? th->valuedouble : NAN;
    const cJSON *mr = cJSON_GetObjectItemCaseSensitive(m->j, "map_range");
    m->lo = cJSON_GetArraySize(mr) == 2 ? cJSON_GetArrayItem(mr, 0)->valuedouble : 0.0;
    m->hi = cJSON_GetArraySize(mr) == 2 ? cJSON_GetArrayItem(mr, 1)->valuedouble : 1.0;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    pad_st_file *f = NULL;
    PAD_TRY(pad_st_open(&f, p));
    pad_status st = pad_st_read_f32(f, "shot_mid1", 3, (int64_t[]){m->k, m->P, m->D}, &m->mid1, NULL);
    if (st == PAD_OK) st = pad_st_read_f32(f, "shot_mid2", 3, (int64_t[]){m->k, m->P, m->D}, &m->mid2, NULL);
    if (st == PAD_OK && pad_st_find(f, "cls_text_features"))
        st = pad_st_read_f32(f, "cls_text_features", 2, (int64_t[]){2, m->E}, &m->cls_text, NULL);
    if (st == PAD_OK && pad_st_find(f, "seg_text_features"))
        st = pad_st_read_f32(f, "seg_text_features", 2, (int64_t[]){2, m->E}, &m->seg_text, NULL);
    pad_st_close(f);
    if (st == PAD_OK && !m->cls_text && !m->seg_text) {
        PAD_LOG_ERROR("%s: holds no text features (cls_text_features / seg_text_features)", p);
        st = PAD_ERR_FORMAT;
    }
    return st;
}

// ----------------------------------------------------------------------------
// Inputs

static bool is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot || n[0] == '.') return false;
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".pnm", ".ppm", ".pgm"};
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

pad_status pad_predict(const pad_predict_opts *o, int *n_scored) {
    if (n_scored) *n_scored = 0;
    model m;
    pad_status st = model_load(&m, o->model_dir);
    str_list in = {0};
    pad_backend *be = NULL;
    pad_clip_weights *wh = NULL, *wd = NULL;
    pad_vit *vit = NULL;
    pad_bank *bank = NULL;
    pad_scorer *sc = NULL;
    float *pix_host = NULL, *pix_dev = NULL, *f_cls = NULL, *f_tok = NULL, *f_mid = NULL, *m1 = NULL, *m2 = NULL,
          *tv_cls = NULL, *tv_seg = NULL, *maps = NULL, *scores = NULL;
    pad_image *imgs = NULL;
    bool *ok = NULL;
    FILE *csv = NULL;
    int bad = 0, scored = 0;
    char csv_tmp[PATH_CAP + 64] = "", csv_path[PATH_CAP + 32] = "", hdir[PATH_CAP + 32] = "";
    if (st != PAD_OK) goto done;
    // the weights: the same content as during the run
    const char *wpath = o->weights ? o->weights : m.weights_path;
    if (!pad_path_is_file(wpath)) {
        PAD_LOG_ERROR("%s: the model's weights file is missing (the model %s was trained with it; pass --weights "
                      "FILE if it moved)",
                      wpath, o->model_dir);
        st = PAD_ERR_IO;
        goto done;
    }
    {
        uint64_t fp;
        int64_t size;
        PAD_TRY_GOTO(st, pad_file_fingerprint(wpath, &fp, &size), done);
        char fps[32];
        snprintf(fps, sizeof fps, "%016llx", (unsigned long long)fp);
        if (size != m.weights_size || strcmp(fps, m.fingerprint) != 0) {
            PAD_LOG_ERROR("%s: not the weights the model was trained with (size %lld, fingerprint %s; the model %s "
                          "expects %s: size %lld, fingerprint %s)",
                          wpath, (long long)size, fps, o->model_dir, m.weights_path, (long long)m.weights_size,
                          m.fingerprint);
            st = PAD_ERR_INVALID_ARG;
            goto done;
        }
    }
    PAD_TRY_GOTO(st, list_inputs(o, &in), done);
    if (in.n == 0) {
        PAD_LOG_ERROR("no input image");
        st = PAD_ERR_INVALID_ARG;
        goto done;
    }
    // backend and vision tower
    {
        pad_backend_params bp = pad_backend_params_default();
        bp.kind = (pad_backend_kind)o->device;
        bp.n_threads = o->threads;
        PAD_TRY_GOTO(st, pad_backend_create(&be, &bp), done);
    }
    PAD_TRY_GOTO(st, pad_weights_load(&wh, wpath, PAD_WEIGHTS_VISION), done);
    if (wh->cfg.vision.image_size != m.S || wh->cfg.vision.grid != m.G || wh->cfg.embed_dim != m.E ||
        wh->cfg.vision.width != m.D) {
        PAD_LOG_ERROR("%s: architecture (S %d, grid %d, E %d, D %d) differs from the model's (S %d, grid %d, E %d, "
                      "D %d)",
                      wpath, wh->cfg.vision.image_size, wh->cfg.vision.grid, wh->cfg.embed_dim, wh->cfg.vision.width,
                      m.S, m.G, m.E, m.D);
        st = PAD_ERR_FORMAT;
        goto done;
    }
    PAD_TRY_GOTO(st, pad_weights_to_backend(wh, be, &wd), done);
    int B = o->batch > 0 ? o->batch : 16;
    {
        pad_vit_params vp = pad_vit_default_params();
        vp.max_batch = B;
        vp.tap1 = m.taps[0];
        vp.tap2 = m.taps[1];
        PAD_TRY_GOTO(st, pad_vit_create(&vit, be, wd, &vp), done);
    }
    const size_t per = 3 * (size_t)m.S * (size_t)m.S, E = (size_t)m.E, P = (size_t)m.P, D = (size_t)m.D;
    const size_t RR = (size_t)m.R * (size_t)m.R;
    pix_host = malloc((size_t)B * per * sizeof(float));
    pix_dev = pad_buf_alloc(be, (size_t)B * per * sizeof(float));
    f_cls = pad_buf_alloc(be, (size_t)B * E * sizeof(float));
    f_tok = pad_buf_alloc(be, (size_t)B * P * E * sizeof(float));
    f_mid = pad_buf_alloc(be, 2 * (size_t)B * P * D * sizeof(float));
    maps = malloc((size_t)B * RR * sizeof(float));
    scores = malloc((size_t)B * sizeof(float));
    imgs = calloc((size_t)B, sizeof *imgs);
    ok = calloc((size_t)B, sizeof *ok);
    if (!pix_host || !pix_dev || !f_cls || !f_tok || !f_mid || !maps || !scores || !imgs || !ok) {
        st = PAD_ERR_OOM;
        goto done;
    }
    PAD_TRY_GOTO(st, pad_buf_from_host(be, &m1, m.mid1, (size_t)m.k * P * D), done);
    PAD_TRY_GOTO(st, pad_buf_from_host(be, &m2, m.mid2, (size_t)m.k * P * D), done);
    PAD_TRY_GOTO(st, pad_bank_init(&bank, be, m1, m2, m.k, m.G * m.G, m.D), done);
    if (m.cls_text) PAD_TRY_GOTO(st, pad_buf_from_host(be, &tv_cls, m.cls_text, 2 * E), done);
    if (m.seg_text) PAD_TRY_GOTO(st, pad_buf_from_host(be, &tv_seg, m.seg_text, 2 * E), done);
    {
        pad_score_cfg scfg = pad_score_cfg_default(B, m.G, m.R);
        scfg.fp16 = m.fp16;
        PAD_TRY_GOTO(st, pad_scorer_init(&sc, be, &scfg), done);
    }
    // outputs
    PAD_TRY_GOTO(st, pad_mkdir_p(o->out_dir), done);
    snprintf(hdir, sizeof hdir, "%s/heatmaps", o->out_dir);
    if (o->heatmaps) PAD_TRY_GOTO(st, pad_mkdir_p(hdir), done);
    snprintf(csv_path, sizeof csv_path, "%s/predictions.csv", o->out_dir);
    snprintf(csv_tmp, sizeof csv_tmp, "%s.tmp%ld", csv_path, (long)getpid());
    csv = fopen(csv_tmp, "wb");
    if (!csv) {
        PAD_LOG_ERROR("%s: cannot write: %s", csv_tmp, strerror(errno));
        st = PAD_ERR_IO;
        goto done;
    }
    fprintf(csv, "path,score,threshold,decision\n");
    float tau = pad_score_tau(m.logit_scale, m.tau_exp);
    for (int c0 = 0; c0 < in.n && st == PAD_OK; c0 += B) {
        int nb = in.n - c0 < B ? in.n - c0 : B;
        // decode + preprocess; unreadable files are reported and skipped
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < nb; i++) {
            ok[i] = pad_image_load(&imgs[i], in.v[c0 + i]) == PAD_OK;
        }
        int b = 0;
        int idx[4096];
        for (int i = 0; i < nb; i++) {
            if (!ok[i]) {
                bad++;
                continue;
            }
            if (b != i) {
                imgs[b] = imgs[i];
                imgs[i] = (pad_image){0};
            }
            idx[b++] = c0 + i;
        }
        for (int i = 0; i < b && st == PAD_OK; i++)
            st = pad_preprocess(&imgs[i], m.preprocess, m.S, m.bgr, pix_host + (size_t)i * per);
        if (st != PAD_OK || b == 0) goto next;
        PAD_TRY_GOTO(st, pad_buf_upload(be, pix_dev, pix_host, (size_t)b * per * sizeof(float)), next);
        {
            float *mid1 = f_mid, *mid2 = f_mid + (size_t)b * P * D;
            pad_vit_out vo = {f_cls, f_tok, mid1, mid2};
            PAD_TRY_GOTO(st, pad_vit_forward(vit, pix_dev, b, &vo), next);
            PAD_TRY_GOTO(st, pad_score_normalize(be, f_mid, 2 * b * m.P, m.D), next);
            PAD_TRY_GOTO(st, pad_scorer_visual(sc, bank, mid1, mid2, b), next);
        }
        if (tv_cls) {
            PAD_TRY_GOTO(st, pad_scorer_text(sc, f_cls, NULL, tv_cls, tv_cls + E, tau, b, m.E), next);
            PAD_TRY_GOTO(st, pad_scorer_image_scores(sc, b, scores), next);
        }
        if (tv_seg) {
            PAD_TRY_GOTO(st, pad_scorer_text(sc, NULL, f_tok, tv_seg, tv_seg + E, tau, b, m.E), next);
            PAD_TRY_GOTO(st, pad_scorer_pixel_maps(sc, b), next);
        } else {
            PAD_TRY_GOTO(st, pad_scorer_visual_maps(sc, b), next);
        }
        PAD_TRY_GOTO(st, pad_buf_download(be, maps, sc->maps, (size_t)b * RR * sizeof(float)), next);
        for (int i = 0; i < b; i++) {
            if (!tv_cls) {
                const float *mp = maps + (size_t)i * RR;
                float mx = mp[0];
                for (size_t q = 1; q < RR; q++)
                    mx = mp[q] > mx ? mp[q] : mx;
                scores[i] = mx;
            }
            const char *path = in.v[idx[i]];
            pad_csv_field(csv, path);
            bool anomalous = !isnan(m.threshold) && (double)scores[i] >= m.threshold;
            fprintf(csv, ",%.9g,%.9g,%s\n", (double)scores[i], m.threshold, anomalous ? "anomalous" : "normal");
            scored++;
            if (o->heatmaps) {
                pad_image ov = {0};
                int x0 = 0, y0 = 0;
                pad_image view = {0};
                if (m.preprocess == PAD_PREPROCESS_OPENCLIP && imgs[i].w != imgs[i].h) {
                    int s = imgs[i].w < imgs[i].h ? imgs[i].w : imgs[i].h;
                    x0 = (imgs[i].w - s) / 2;
                    y0 = (imgs[i].h - s) / 2;
                    st = pad_image_alloc(&view, s, s);
                    for (int y = 0; y < s && st == PAD_OK; y++)
                        memcpy(view.rgb + (size_t)y * s * 3, imgs[i].rgb + ((size_t)(y + y0) * imgs[i].w + x0) * 3,
                               (size_t)s * 3);
                } else {
                    st = pad_image_from_rgb(&view, imgs[i].rgb, imgs[i].w, imgs[i].h);
                }
                if (st == PAD_OK)
                    st = pad_heatmap_overlay(&view, maps + (size_t)i * RR, m.R, m.R, (float)m.lo, (float)m.hi, &ov);
                pad_image_free(&view);
                if (st == PAD_OK) {
                    const char *base = strrchr(path, '/');
                    base = base ? base + 1 : path;
                    const char *dot = strrchr(base, '.');
                    char name[700], op[PATH_CAP + 800];
                    snprintf(name, sizeof name, "%05d_%.*s.png", idx[i], dot ? (int)(dot - base) : (int)strlen(base),
                             base);
                    snprintf(op, sizeof op, "%s/%s", hdir, name);
                    st = pad_image_save_png(op, &ov);
                }
                pad_image_free(&ov);
            }
        }
    next:
        for (int i = 0; i < nb; i++)
            pad_image_free(&imgs[i]);
    }
    if (csv) {
        bool werr = fclose(csv) != 0;
        csv = NULL;
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
done:
    if (csv) {
        fclose(csv);
        remove(csv_tmp);
    }
    if (n_scored) *n_scored = scored;
    pad_scorer_free(sc);
    pad_bank_free(bank);
    if (be) {
        pad_buf_free(be, pix_dev);
        pad_buf_free(be, f_cls);
        pad_buf_free(be, f_tok);
        pad_buf_free(be, f_mid);
        pad_buf_free(be, m1);
        pad_buf_free(be, m2);
        pad_buf_free(be, tv_cls);
        pad_buf_free(be, tv_seg);
    }
    free(pix_host);
    free(maps);
    free(scores);
    free(imgs);
    free(ok);
    pad_vit_free(vit);
    pad_weights_free(wd);
    pad_weights_free(wh);
    pad_backend_free(be);
    for (int i = 0; i < in.n; i++)
        free(in.v[i]);
    free(in.v);
    model_free(&m);
    return st;
}
