/* detector.c - the detector of the public API (promptad.h): a model folder of `promptad run` (predict.h) loaded
 * onto a backend with its vision tower, memory bank, text vectors and scorer, scoring RGB images exactly as the
 * run scored its test images (same preprocessing, forward, scores and maps, so the same bits on the CPU). `promptad
 * predict` (predict.c) and the Python package (python/promptad) are built on it. */
#include "promptad.h"

#include "config.h"
#include "fsutil.h"
#include "image.h"
#include "jsonutil.h"
#include "log.h"
#include "predict.h"
#include "score.h"
#include "st_file.h"
#include "clip_resnet.h"
#include "vit.h"
#include "weights.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 4096

// ----------------------------------------------------------------------------
// The model folder (predict.h)

typedef struct model {
    cJSON *j;
    char dir[PATH_CAP];
    int k, S, G, P, E, D, R, taps[2];
    int act; // pad_activation from "activation", or -1: the checkpoint's
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

// *out = model.json's integer `key` in [lo, hi] (pad_json_get_int); else one error naming the file and the key.
static bool need_int(const cJSON *j, const char *key, int lo, int hi, int *out, const char *path) {
    int r = pad_json_get_int(j, key, lo, hi, out);
    if (r == 1) return true;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, key);
    char *v = it ? cJSON_PrintUnformatted(it) : NULL;
    PAD_LOG_ERROR("%s: '%s' %s an integer in [%d, %d]%s%s%s", path, key, r == 0 ? "is missing; expected" : "must be",
                  lo, hi, v ? " (got " : "", v ? v : "", v ? ")" : "");
    cJSON_free(v);
    return false;
}

// The numbers of model.json: every integer through need_int with its range, the threshold required (a model without
// one would call every image normal).
static pad_status model_numbers(model *m, const char *p) {
    const cJSON *j = m->j;
    const cJSON *wj = cJSON_GetObjectItemCaseSensitive(j, "weights");
    const cJSON *taps = cJSON_GetObjectItemCaseSensitive(j, "taps");
    if (!(need_int(j, "k", 1, PAD_CFG_MAX_SHOTS, &m->k, p) &&
          need_int(j, "image_size", 1, PAD_WEIGHTS_MAX_IMAGE, &m->S, p) &&
          need_int(j, "grid", 1, PAD_WEIGHTS_MAX_GRID, &m->G, p) &&
          need_int(j, "embed_dim", 1, PAD_WEIGHTS_MAX_WIDTH, &m->E, p) &&
          need_int(j, "width", 1, PAD_WEIGHTS_MAX_WIDTH, &m->D, p) &&
          need_int(j, "resolution", 1, PAD_IMAGE_MAX_DIM, &m->R, p)))
        return PAD_ERR_FORMAT;
    long long ws = 0, t0 = 0, t1 = 0;
    if (pad_json_int_value(cJSON_GetObjectItemCaseSensitive(wj, "size"), 0, 9007199254740992LL, &ws) != 1) {
        PAD_LOG_ERROR("%s: 'weights.size' must be a byte count", p);
        return PAD_ERR_FORMAT;
    }
    if (!cJSON_IsArray(taps) || cJSON_GetArraySize(taps) != 2 ||
        pad_json_int_value(cJSON_GetArrayItem(taps, 0), 0, PAD_WEIGHTS_MAX_LAYERS - 1, &t0) != 1 ||
        pad_json_int_value(cJSON_GetArrayItem(taps, 1), 0, PAD_WEIGHTS_MAX_LAYERS - 1, &t1) != 1) {
        PAD_LOG_ERROR("%s: 'taps' must be two block indices in [0, %d]", p, PAD_WEIGHTS_MAX_LAYERS - 1);
        return PAD_ERR_FORMAT;
    }
    m->P = m->G * m->G; // at most PAD_WEIGHTS_MAX_GRID^2 = 2^20
    m->weights_size = (int64_t)ws;
    m->taps[0] = (int)t0;
    m->taps[1] = (int)t1;
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "logit_scale");
    if (ls && !(cJSON_IsNumber(ls) && fabs(ls->valuedouble) <= 1e30)) { // (float) of a larger double is undefined
        PAD_LOG_ERROR("%s: 'logit_scale' must be a number", p);
        return PAD_ERR_FORMAT;
    }
    m->logit_scale = ls ? (float)ls->valuedouble : 0.0f;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "threshold"), "value");
    if (!cJSON_IsNumber(th) || !isfinite(th->valuedouble)) {
        PAD_LOG_ERROR("%s: no decision threshold ('threshold.value' must be a number); the model cannot tell normal "
                      "from anomalous images",
                      p);
        return PAD_ERR_FORMAT;
    }
    m->threshold = th->valuedouble;
    const cJSON *mr = cJSON_GetObjectItemCaseSensitive(j, "map_range");
    const cJSON *lo = cJSON_GetArrayItem(mr, 0), *hi = cJSON_GetArrayItem(mr, 1);
    bool range = cJSON_GetArraySize(mr) == 2 && cJSON_IsNumber(lo) && cJSON_IsNumber(hi);
    m->lo = range ? lo->valuedouble : 0.0;
    m->hi = range ? hi->valuedouble : 1.0;
    return PAD_OK;
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
    if (pad_json_get_int(m->j, "version", 1, INT_MAX, &ver) != 1 || ver != PAD_MODEL_VERSION) {
        PAD_LOG_ERROR("%s: model format version %d, this promptad reads version %d", p, ver, PAD_MODEL_VERSION);
        return PAD_ERR_FORMAT;
    }
    const cJSON *wj = cJSON_GetObjectItemCaseSensitive(m->j, "weights");
    const cJSON *wp = cJSON_GetObjectItemCaseSensitive(wj, "path");
    const cJSON *wf = cJSON_GetObjectItemCaseSensitive(wj, "fingerprint");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(m->j, "preprocess");
    if (!cJSON_IsString(wp) || !cJSON_IsString(wf) || !cJSON_IsString(pre)) {
        PAD_LOG_ERROR("%s: missing or malformed fields (weights.path, weights.fingerprint, preprocess)", p);
        return PAD_ERR_FORMAT;
    }
    PAD_TRY(model_numbers(m, p));
    m->weights_path = wp->valuestring;
    m->fingerprint = wf->valuestring;
    PAD_TRY(pad_preprocess_mode_parse(pre->valuestring, &m->preprocess));
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(m->j, "activation"); // optional: model.activation was set
    pad_activation a = PAD_ACT_GELU;
    if (act && (!cJSON_IsString(act) || pad_activation_parse(act->valuestring, &a) != PAD_OK)) {
        PAD_LOG_ERROR("%s: 'activation' must be \"gelu\" or \"quick_gelu\"", p);
        return PAD_ERR_FORMAT;
    }
    m->act = act ? (int)a : -1;
    m->bgr = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m->j, "input_bgr"));
    m->fp16 = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m->j, "fp16_scores"));
    const cJSON *tau = cJSON_GetObjectItemCaseSensitive(m->j, "tau");
    m->tau_exp = cJSON_IsString(tau) && strcmp(tau->valuestring, "exp") == 0;
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
// The detector

struct pad_detector {
    model m;
    double mask_thr;
    int B; // images per forward
    float tau;
    pad_backend *be;
    pad_clip_weights *wh, *wd;
    pad_vit *vit;         // the vision tower: a ViT, or
    pad_clip_resnet *crn; // a CLIP ModifiedResNet (clip_resnet.h)
    pad_bank *bank;
    pad_scorer *sc;
    float *pix_host, *maps, *scores;                                    // host: (B, 3, S, S), (B, R, R), (B)
    float *pix_dev, *f_cls, *f_tok, *f_mid, *m1, *m2, *tv_cls, *tv_seg; // backend buffers
};

pad_detector_params pad_detector_params_default(void) {
    pad_detector_params p = {
        .device = PAD_BACKEND_AUTO, .n_threads = 0, .weights = NULL, .max_batch = 16, .mask_threshold = NAN};
    return p;
}

void pad_detector_free(pad_detector *d) {
    if (!d) return;
    pad_scorer_free(d->sc);
    pad_bank_free(d->bank);
    if (d->be) {
        float *bufs[] = {d->pix_dev, d->f_cls, d->f_tok, d->f_mid, d->m1, d->m2, d->tv_cls, d->tv_seg};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            pad_buf_free(d->be, bufs[i]);
    }
    free(d->pix_host);
    free(d->maps);
    free(d->scores);
    pad_vit_free(d->vit);
    pad_clip_resnet_free(d->crn);
    pad_weights_free(d->wd);
    pad_weights_free(d->wh);
    pad_backend_free(d->be);
    model_free(&d->m);
    free(d);
}

// The weights must have the content the model was trained with (size and fingerprint).
static pad_status check_weights(const model *m, const char *wpath, const char *model_dir) {
    if (!pad_path_is_file(wpath)) {
        PAD_LOG_ERROR("%s: the model's weights file is missing (the model %s was trained with it; pass --weights "
                      "FILE if it moved)",
                      wpath, model_dir);
        return PAD_ERR_IO;
    }
    uint64_t fp;
    int64_t size;
    PAD_TRY(pad_file_fingerprint(wpath, &fp, &size));
    char fps[32];
    snprintf(fps, sizeof fps, "%016llx", (unsigned long long)fp);
    if (size != m->weights_size || strcmp(fps, m->fingerprint) != 0) {
        PAD_LOG_ERROR("%s: not the weights the model was trained with (size %lld, fingerprint %s; the model %s "
                      "expects %s: size %lld, fingerprint %s)",
                      wpath, (long long)size, fps, model_dir, m->weights_path, (long long)m->weights_size,
                      m->fingerprint);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

// The vision tower of the model's weights: a ViT, or a CLIP ModifiedResNet (taps are then stage numbers); its
// shapes must be the model's.
static pad_status load_tower(pad_detector *d, const char *wpath) {
    const model *m = &d->m;
    int S, G, E, D;
    if (pad_clip_resnet_probe(wpath)) {
        pad_clip_resnet_params rp = {.max_batch = d->B, .tap1 = m->taps[0], .tap2 = m->taps[1]};
        PAD_TRY(pad_clip_resnet_load(&d->crn, d->be, wpath, &rp));
        const pad_clip_resnet_cfg *c = pad_clip_resnet_config(d->crn);
        S = c->image_size, G = c->grid, E = c->out_dim, D = pad_clip_resnet_tap_width(d->crn);
    } else {
        PAD_TRY(pad_weights_load(&d->wh, wpath, PAD_WEIGHTS_VISION));
        const pad_clip_cfg *c = &d->wh->cfg;
        S = c->vision.image_size, G = c->vision.grid, E = c->embed_dim, D = c->vision.width;
    }
    if (S != m->S || G != m->G || E != m->E || D != m->D) {
        PAD_LOG_ERROR("%s: architecture (S %d, grid %d, E %d, D %d) differs from the model's (S %d, grid %d, E %d, "
                      "D %d)",
                      wpath, S, G, E, D, m->S, m->G, m->E, m->D);
        return PAD_ERR_FORMAT;
    }
    if (d->crn) return PAD_OK;
    if (m->act >= 0) d->wh->cfg.act = (pad_activation)m->act;
    PAD_TRY(pad_weights_to_backend(d->wh, d->be, &d->wd));
    pad_vit_params vp = pad_vit_default_params();
    vp.max_batch = d->B;
    vp.tap1 = m->taps[0];
    vp.tap2 = m->taps[1];
    return pad_vit_create(&d->vit, d->be, d->wd, &vp);
}

// Backend, vision tower, memory bank, text vectors, scorer and the batch buffers.
static pad_status build(pad_detector *d, const pad_detector_params *p, const char *wpath) {
    const model *m = &d->m;
    pad_backend_params bp = pad_backend_params_default();
    bp.kind = p->device;
    bp.n_threads = p->n_threads;
    PAD_TRY(pad_backend_create(&d->be, &bp));
    PAD_TRY(load_tower(d, wpath));
    const size_t B = (size_t)d->B, per = 3 * (size_t)m->S * (size_t)m->S, E = (size_t)m->E, P = (size_t)m->P,
                 D = (size_t)m->D, RR = (size_t)m->R * (size_t)m->R;
    d->pix_host = malloc(B * per * sizeof(float));
    d->maps = malloc(B * RR * sizeof(float));
    d->scores = malloc(B * sizeof(float));
    d->pix_dev = pad_buf_alloc(d->be, B * per * sizeof(float));
    d->f_cls = pad_buf_alloc(d->be, B * E * sizeof(float));
    d->f_tok = pad_buf_alloc(d->be, B * P * E * sizeof(float));
    d->f_mid = pad_buf_alloc(d->be, 2 * B * P * D * sizeof(float));
    if (!d->pix_host || !d->maps || !d->scores || !d->pix_dev || !d->f_cls || !d->f_tok || !d->f_mid) {
        PAD_LOG_ERROR("%s: out of memory for a batch of %d images", m->dir, d->B);
        return PAD_ERR_OOM;
    }
    PAD_TRY(pad_buf_from_host(d->be, &d->m1, m->mid1, (size_t)m->k * P * D));
    PAD_TRY(pad_buf_from_host(d->be, &d->m2, m->mid2, (size_t)m->k * P * D));
    PAD_TRY(pad_bank_init(&d->bank, d->be, d->m1, d->m2, m->k, m->P, m->D));
    if (m->cls_text) PAD_TRY(pad_buf_from_host(d->be, &d->tv_cls, m->cls_text, 2 * E));
    if (m->seg_text) PAD_TRY(pad_buf_from_host(d->be, &d->tv_seg, m->seg_text, 2 * E));
    pad_score_cfg scfg = pad_score_cfg_default(d->B, m->G, m->R);
    scfg.fp16 = m->fp16;
    PAD_TRY(pad_scorer_init(&d->sc, d->be, &scfg));
    d->tau = pad_score_tau(m->logit_scale, m->tau_exp);
    return PAD_OK;
}

pad_status pad_detector_load(pad_detector **out, const char *model_dir, const pad_detector_params *params) {
    if (!out) return PAD_ERR_INVALID_ARG;
    *out = NULL;
    pad_detector_params p = params ? *params : pad_detector_params_default();
    if (!model_dir || p.max_batch < 1 || p.max_batch > 1024 || p.n_threads > 4096 ||
        (p.device != PAD_BACKEND_AUTO && p.device != PAD_BACKEND_CPU && p.device != PAD_BACKEND_CUDA)) {
        PAD_LOG_ERROR("pad_detector_load: bad arguments (a model folder, max_batch 1..1024, a backend kind)");
        return PAD_ERR_INVALID_ARG;
    }
    pad_detector *d = calloc(1, sizeof *d);
    if (!d) return PAD_ERR_OOM;
    d->B = p.max_batch;
    pad_status st = model_load(&d->m, model_dir);
    const char *wpath = p.weights ? p.weights : d->m.weights_path;
    if (st == PAD_OK) st = check_weights(&d->m, wpath, model_dir);
    if (st == PAD_OK) st = build(d, &p, wpath);
    if (st != PAD_OK) {
        pad_detector_free(d);
        return st;
    }
    d->mask_thr = isnan(p.mask_threshold) ? d->m.threshold : p.mask_threshold;
    *out = d;
    return PAD_OK;
}

void pad_detector_get_info(const pad_detector *d, pad_detector_info *info) {
    memset(info, 0, sizeof *info);
    if (!d) return;
    const model *m = &d->m;
    const cJSON *j = m->j;
    info->map_size = m->R;
    info->image_size = m->S;
    info->threshold = m->threshold;
    info->mask_threshold = d->mask_thr;
    info->map_lo = m->lo;
    info->map_hi = m->hi;
    info->has_cls = m->cls_text != NULL;
    info->has_seg = m->seg_text != NULL;
    info->k = m->k;
    pad_json_get_int(j, "seed", 0, INT_MAX, &info->seed);
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "dataset");
    info->dataset = cJSON_IsString(it) ? it->valuestring : "";
    it = cJSON_GetObjectItemCaseSensitive(j, "class");
    info->cls = cJSON_IsString(it) ? it->valuestring : "";
    it = cJSON_GetObjectItemCaseSensitive(j, "protocol");
    info->protocol = cJSON_IsString(it) ? it->valuestring : "";
    info->preprocess = pad_preprocess_mode_str(m->preprocess);
}

// Scores b <= B decoded images: scores (b) and maps (b, R, R) into the detector's host buffers.
static pad_status score_batch(pad_detector *d, const pad_image *imgs, int b) {
    const model *m = &d->m;
    const size_t per = 3 * (size_t)m->S * (size_t)m->S, E = (size_t)m->E, P = (size_t)m->P, D = (size_t)m->D;
    const size_t RR = (size_t)m->R * (size_t)m->R;
    for (int i = 0; i < b; i++)
        PAD_TRY(pad_preprocess(&imgs[i], m->preprocess, m->S, m->bgr, d->pix_host + (size_t)i * per));
    PAD_TRY(pad_buf_upload(d->be, d->pix_dev, d->pix_host, (size_t)b * per * sizeof(float)));
    float *mid1 = d->f_mid, *mid2 = d->f_mid + (size_t)b * P * D;
    pad_vit_out vo = {d->f_cls, d->f_tok, mid1, mid2};
    PAD_TRY(d->crn ? pad_clip_resnet_forward(d->crn, d->pix_dev, b, &vo) : pad_vit_forward(d->vit, d->pix_dev, b, &vo));
    PAD_TRY(pad_score_normalize(d->be, d->f_mid, 2 * b * m->P, m->D));
    PAD_TRY(pad_scorer_visual(d->sc, d->bank, mid1, mid2, b));
    if (d->tv_cls) {
        PAD_TRY(pad_scorer_text(d->sc, d->f_cls, NULL, d->tv_cls, d->tv_cls + E, d->tau, b, m->E));
        PAD_TRY(pad_scorer_image_scores(d->sc, b, d->scores));
    }
    if (d->tv_seg) {
        PAD_TRY(pad_scorer_text(d->sc, NULL, d->f_tok, d->tv_seg, d->tv_seg + E, d->tau, b, m->E));
        PAD_TRY(pad_scorer_pixel_maps(d->sc, b));
    } else {
        PAD_TRY(pad_scorer_visual_maps(d->sc, b));
    }
    PAD_TRY(pad_buf_download(d->be, d->maps, d->sc->maps, (size_t)b * RR * sizeof(float)));
    if (!d->tv_cls) pad_score_map_max(d->maps, b, RR, d->scores); // without the cls task: the maximum of the map
    return PAD_OK;
}

// Copies the batch's results to the caller's arrays at image offset i0.
static void copy_out(const pad_detector *d, int i0, int b, float *scores, float *maps, uint8_t *masks) {
    const size_t RR = (size_t)d->m.R * (size_t)d->m.R;
    if (scores) memcpy(scores + i0, d->scores, (size_t)b * sizeof(float));
    if (maps) memcpy(maps + (size_t)i0 * RR, d->maps, (size_t)b * RR * sizeof(float));
    if (masks)
        for (size_t q = 0; q < (size_t)b * RR; q++)
            masks[(size_t)i0 * RR + q] = (double)d->maps[q] >= d->mask_thr ? 1 : 0;
}

pad_status pad_detector_score_rgb(pad_detector *d, const uint8_t *const *rgb, const int *w, const int *h, int n,
                                  float *scores, float *maps, uint8_t *masks) {
    if (!d || n < 0 || (n > 0 && (!rgb || !w || !h))) {
        PAD_LOG_ERROR("pad_detector_score_rgb: bad arguments");
        return PAD_ERR_INVALID_ARG;
    }
    for (int i = 0; i < n; i++)
        if (!rgb[i] || w[i] < 1 || h[i] < 1 || w[i] > PAD_IMAGE_MAX_DIM || h[i] > PAD_IMAGE_MAX_DIM) {
            PAD_LOG_ERROR("pad_detector_score_rgb: image %d: no pixels or size %d x %d out of 1..%d", i,
                          rgb[i] ? w[i] : 0, rgb[i] ? h[i] : 0, PAD_IMAGE_MAX_DIM);
            return PAD_ERR_INVALID_ARG;
        }
    pad_image imgs[1024];
    for (int c0 = 0; c0 < n; c0 += d->B) {
        int b = n - c0 < d->B ? n - c0 : d->B;
        for (int i = 0; i < b; i++) // the pixels are only read (pad_preprocess takes a const image)
            imgs[i] = (pad_image){.w = w[c0 + i], .h = h[c0 + i], .rgb = (uint8_t *)(uintptr_t)rgb[c0 + i]};
        PAD_TRY(score_batch(d, imgs, b));
        copy_out(d, c0, b, scores, maps, masks);
    }
    return PAD_OK;
}

pad_status pad_detector_score_files(pad_detector *d, const char *const *paths, int n, float *scores, float *maps,
                                    uint8_t *masks) {
    if (!d || n < 0 || (n > 0 && !paths)) {
        PAD_LOG_ERROR("pad_detector_score_files: bad arguments");
        return PAD_ERR_INVALID_ARG;
    }
    pad_image *imgs = calloc((size_t)d->B, sizeof *imgs);
    pad_status *sts = calloc((size_t)d->B, sizeof *sts);
    char(*msgs)[512] = calloc((size_t)d->B, sizeof *msgs);
    pad_status st = imgs && sts && msgs ? PAD_OK : PAD_ERR_OOM;
    for (int c0 = 0; c0 < n && st == PAD_OK; c0 += d->B) {
        int b = n - c0 < d->B ? n - c0 : d->B;
        // decoded in parallel; a worker's error message becomes the caller's last error
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < b; i++) {
            sts[i] = paths[c0 + i] ? pad_image_load(&imgs[i], paths[c0 + i]) : PAD_ERR_INVALID_ARG;
            snprintf(msgs[i], sizeof msgs[i], "%s", sts[i] != PAD_OK ? pad_last_error() : "");
        }
        for (int i = 0; i < b && st == PAD_OK; i++)
            if ((st = sts[i]) != PAD_OK) pad_set_last_error(msgs[i][0] ? msgs[i] : "an image path is NULL");
        if (st == PAD_OK) st = score_batch(d, imgs, b);
        if (st == PAD_OK) copy_out(d, c0, b, scores, maps, masks);
        for (int i = 0; i < b; i++)
            pad_image_free(&imgs[i]);
    }
    free(imgs);
    free(sts);
    free(msgs);
    return st;
}

void pad_detection_free(pad_detection *r) {
    if (!r) return;
    free(r->map);
    free(r->mask);
    memset(r, 0, sizeof *r);
}

pad_status pad_detector_score_file(pad_detector *d, const char *path, pad_detection *out) {
    if (!out) return PAD_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    if (!d) return PAD_ERR_INVALID_ARG;
    const size_t RR = (size_t)d->m.R * (size_t)d->m.R;
    out->map = malloc(RR * sizeof(float));
    out->mask = malloc(RR);
    pad_status st = out->map && out->mask ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_detector_score_files(d, &path, 1, &out->score, out->map, out->mask);
    if (st != PAD_OK) {
        pad_detection_free(out);
        return st;
    }
    out->map_size = d->m.R;
    out->anomalous = !isnan(d->m.threshold) && (double)out->score >= d->m.threshold;
    return PAD_OK;
}
