/* cpe.c - WinCLIP's compositional prompt ensemble (CPE), the zero-shot "CPE + V-V CLIP" scorer and the upsampling of
 * score grids into pixel maps (winclip.h, docs/winclip.md). The state words and templates are WinCLIP's lists as
 * anomalib ships them (the template "a jpeg corrupted photo of the {}." appears twice there and is kept twice). */
#include "log.h"
#include "score.h"
#include "text.h"
#include "winclip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NORMAL_STATES[] = {
    "{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect", "{} without damage",
};
static const char *const ANOMALOUS_STATES[] = {"damaged {}", "{} with flaw", "{} with defect", "{} with damage"};
static const char *const TEMPLATES[] = {
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of the {}.",
    "a dark photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a blurry photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.",
    "a photo of a {} for anomaly detection.",
};
#define N_NORMAL    ((int)(sizeof NORMAL_STATES / sizeof NORMAL_STATES[0]))
#define N_ANOMALOUS ((int)(sizeof ANOMALOUS_STATES / sizeof ANOMALOUS_STATES[0]))
#define N_TEMPLATES ((int)(sizeof TEMPLATES / sizeof TEMPLATES[0]))
#define PROMPT_CAP  512

int pad_cpe_n_normal(void) {
    return N_NORMAL * N_TEMPLATES;
}

int pad_cpe_n_anomalous(void) {
    return N_ANOMALOUS * N_TEMPLATES;
}

// Replaces the one "{}" of fmt by arg into buf; false when it does not fit or fmt has no "{}".
static bool fill(char *buf, size_t cap, const char *fmt, const char *arg) {
    const char *h = strstr(fmt, "{}");
    if (!h) return false;
    int n = snprintf(buf, cap, "%.*s%s%s", (int)(h - fmt), fmt, arg, h + 2);
    return n >= 0 && (size_t)n < cap;
}

bool pad_cpe_prompt(char *buf, size_t cap, bool anomalous, int i, const char *name) {
    const int ns = anomalous ? N_ANOMALOUS : N_NORMAL;
    if (i < 0 || i >= ns * N_TEMPLATES || !name) return false;
    char state[PROMPT_CAP];
    const char *st = anomalous ? ANOMALOUS_STATES[i / N_TEMPLATES] : NORMAL_STATES[i / N_TEMPLATES];
    return fill(state, sizeof state, st, name) && fill(buf, cap, TEMPLATES[i % N_TEMPLATES], state);
}

// Mean of the raw text features of one ensemble into mean (E).
static pad_status ensemble_mean(const pad_clip_weights *w, pad_tokenizer *tok, const char *name, bool anomalous,
                                float *mean) {
    const int n = anomalous ? pad_cpe_n_anomalous() : pad_cpe_n_normal(), ctx = w->cfg.text.context;
    const int E = w->cfg.embed_dim;
    int32_t *ids = (int32_t *)malloc((size_t)n * ctx * sizeof(int32_t));
    float *feat = (float *)malloc((size_t)n * E * sizeof(float));
    pad_status st = ids && feat ? PAD_OK : PAD_ERR_OOM;
    char buf[PROMPT_CAP];
    for (int i = 0; i < n && st == PAD_OK; i++) {
        bool cut = false;
        if (!pad_cpe_prompt(buf, sizeof buf, anomalous, i, name)) {
            PAD_LOG_ERROR("cpe: class name '%s' is too long for a prompt", name);
            st = PAD_ERR_INVALID_ARG;
        } else if ((st = pad_tokenizer_tokenize(tok, buf, ctx, ids + (size_t)i * ctx, &cut)) == PAD_OK && cut)
            PAD_LOG_WARN("cpe: prompt \"%s\" truncated to %d tokens", buf, ctx);
    }
    if (st == PAD_OK) st = pad_text_encode_ids(w, ids, n, ctx, feat);
    for (int e = 0; e < E && st == PAD_OK; e++) { // torch's mean over dim 0, in double here
        double s = 0.0;
        for (int i = 0; i < n; i++)
            s += (double)feat[(size_t)i * E + e];
        mean[e] = (float)(s / n);
    }
    free(ids);
    free(feat);
    return st;
}

pad_status pad_cpe_text(const pad_clip_weights *w, pad_tokenizer *tok, const char *name, float *text_raw) {
    if (!w || !tok || !name || !text_raw) return PAD_ERR_INVALID_ARG;
    PAD_TRY(ensemble_mean(w, tok, name, false, text_raw));
    return ensemble_mean(w, tok, name, true, text_raw + w->cfg.embed_dim);
}

// ----------------------------------------------------------------------------
// CPE + V-V CLIP

pad_status pad_cpe_score(pad_backend *be, pad_vit *vit, const float *text_raw, float temperature, const float *pixels,
                         int n, float *image_score, float *grid) {
    if (!be || !vit || !text_raw || n < 0 || !(temperature > 0.0f) || (n > 0 && (!pixels || !image_score || !grid)))
        return PAD_ERR_INVALID_ARG;
    if (n == 0) return PAD_OK;
    const pad_vision_cfg *c = pad_vit_cfg(vit);
    const int E = pad_vit_embed_dim(vit), P = c->grid * c->grid, Bm = pad_vit_max_batch(vit);
    const size_t img = (size_t)3 * c->image_size * c->image_size, f = sizeof(float);
    const float tau = 1.0f / temperature;
    float *text = NULL, *pix = NULL, *cls = NULL, *tok = NULL, *sc = NULL;
    pad_status st = pad_buf_from_host(be, &text, text_raw, (size_t)2 * E);
    if (st == PAD_OK) st = pad_score_normalize(be, text, 2, E);
    if (st == PAD_OK && !((pix = (float *)pad_buf_alloc(be, (size_t)Bm * img * f)) &&
                          (cls = (float *)pad_buf_alloc(be, (size_t)Bm * E * f)) &&
                          (tok = (float *)pad_buf_alloc(be, (size_t)Bm * P * E * f)) &&
                          (sc = (float *)pad_buf_alloc(be, (size_t)Bm * (P + 1) * f))))
        st = be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    for (int i0 = 0; i0 < n && st == PAD_OK; i0 += Bm) {
        const int b = n - i0 < Bm ? n - i0 : Bm;
        const pad_vit_out vo = {cls, tok, NULL, NULL};
        st = pad_buf_upload(be, pix, pixels + (size_t)i0 * img, (size_t)b * img * f);
        if (st == PAD_OK) st = pad_vit_forward(vit, pix, b, &vo);
        if (st == PAD_OK) st = pad_op_text_score(be, sc, cls, text, text + E, tau, b, E);
        if (st == PAD_OK) st = pad_op_text_score(be, sc + b, tok, text, text + E, tau, b * P, E);
        if (st == PAD_OK) st = pad_buf_download(be, image_score + i0, sc, (size_t)b * f);
        if (st == PAD_OK) st = pad_buf_download(be, grid + (size_t)i0 * P, sc + b, (size_t)b * P * f);
    }
    pad_buf_free(be, text);
    pad_buf_free(be, pix);
    pad_buf_free(be, cls);
    pad_buf_free(be, tok);
    pad_buf_free(be, sc);
    return st;
}

// ----------------------------------------------------------------------------
// maps

pad_status pad_grid_maps(pad_backend *be, const float *grid, int n, int G, int R, double sigma, float *maps,
                         float *smoothed) {
    if (!be || n < 0 || G < 1 || R < 1 || (n > 0 && (!grid || !maps))) return PAD_ERR_INVALID_ARG;
    if (n == 0) return PAD_OK;
    const bool smooth = smoothed && sigma > 0.0;
    const int r = smooth ? pad_gaussian_radius(sigma, 4.0) : 0;
    if (r > PAD_GAUSS_MAX_RADIUS) {
        PAD_LOG_ERROR("maps: Gaussian sigma %g is too large (radius %d > %d)", sigma, r, PAD_GAUSS_MAX_RADIUS);
        return PAD_ERR_INVALID_ARG;
    }
    const size_t f = sizeof(float), RR = (size_t)R * R;
    double kernel[2 * PAD_GAUSS_MAX_RADIUS + 1];
    if (smooth) pad_gaussian_kernel1d(kernel, sigma, r);
    float *g = NULL, *m = NULL, *t = NULL;
    pad_status st = pad_buf_from_host(be, &g, grid, (size_t)n * G * G);
    if (st == PAD_OK && (!(m = (float *)pad_buf_alloc(be, (size_t)n * RR * f)) ||
                         (smooth && !(t = (float *)pad_buf_alloc(be, (size_t)n * RR * f)))))
        st = be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_op_upsample_bilinear(be, m, g, n, G, G, R, R);
    if (st == PAD_OK) st = pad_buf_download(be, maps, m, (size_t)n * RR * f);
    if (st == PAD_OK && smooth) st = pad_op_gaussian_filter(be, m, t, m, n, R, R, kernel, r);
    if (st == PAD_OK && smooth) st = pad_buf_download(be, smoothed, m, (size_t)n * RR * f);
    pad_buf_free(be, g);
    pad_buf_free(be, m);
    pad_buf_free(be, t);
    return st;
}
