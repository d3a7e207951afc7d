/* spade.c - SPADE (spade.h): the normal images' global features (host, double distances) and stage maps as rows
 * (backend); per test image the top_k nearest normal images, their pixels gathered into a gallery per stage, the
 * nearest-pixel distances by knn_l2, the bilinear resize, the mean over the stages and scipy's Gaussian, on the
 * backend. */
#include "spade.h"
#include "log.h"
#include "score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SPADE_STAGES 3 // layer1..layer3 for the maps

struct pad_spade {
    pad_spade_cfg cfg;
    pad_resnet *net;
    pad_backend *be;
    int n_stages, N, H, W;
    int C[SPADE_STAGES], h[SPADE_STAGES], w[SPADE_STAGES], Cg; // stage shapes, global feature width
    double *glob;                                              // (N, Cg) host
    float *rows[SPADE_STAGES];                                 // (N*h*w, C) backend rows of the normal images
};

pad_spade_cfg pad_spade_default_cfg(void) {
    return (pad_spade_cfg){.top_k = 5, .sigma = 4.0};
}

pad_status pad_spade_create(pad_spade **out, pad_resnet *net, pad_backend *be, const pad_spade_cfg *cfg) {
    *out = NULL;
    const pad_resnet_cfg *rc = pad_resnet_config(net);
    if (rc->n_stages < SPADE_STAGES || cfg->top_k < 1 || !(cfg->sigma > 0)) {
        PAD_LOG_ERROR("spade: needs a ResNet with 3 stages, top_k >= 1 and sigma > 0");
        return PAD_ERR_INVALID_ARG;
    }
    pad_spade *s = (pad_spade *)calloc(1, sizeof *s);
    if (!s) return PAD_ERR_OOM;
    s->cfg = *cfg, s->net = net, s->be = be, s->n_stages = rc->n_stages;
    s->Cg = rc->out[rc->n_stages - 1];
    *out = s;
    return PAD_OK;
}

void pad_spade_free(pad_spade *s) {
    if (!s) return;
    for (int l = 0; l < SPADE_STAGES; l++)
        pad_buf_free(s->be, s->rows[l]);
    free(s->glob);
    free(s);
}

// Forward of B images: global features (B, Cg) into glob (host, double) and stage rows (B*h*w, C) into rows[l]
// (backend, allocated here).
static pad_status features(pad_spade *s, const float *pixels, int B, int H, int W, double *glob, float **rows) {
    pad_resnet_feats f;
    PAD_TRY(pad_resnet_forward(s->net, pixels, B, H, W, s->n_stages, &f));
    const int last = s->n_stages - 1;
    float *g = (float *)pad_buf_alloc(s->be, (size_t)B * s->Cg * sizeof(float));
    float *gh = (float *)malloc((size_t)B * s->Cg * sizeof(float));
    pad_status st = g && gh ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_op_adaptive_avgpool2d(s->be, g, f.data[last], B, s->Cg, f.H[last], f.W[last], 1, 1);
    if (st == PAD_OK) st = pad_buf_download(s->be, gh, g, (size_t)B * s->Cg * sizeof(float));
    for (size_t i = 0; st == PAD_OK && i < (size_t)B * s->Cg; i++)
        glob[i] = gh[i];
    for (int l = 0; l < SPADE_STAGES && st == PAD_OK; l++) {
        s->C[l] = f.C[l], s->h[l] = f.H[l], s->w[l] = f.W[l];
        const int hw = f.H[l] * f.W[l];
        rows[l] = (float *)pad_buf_alloc(s->be, (size_t)B * hw * f.C[l] * sizeof(float));
        st = rows[l] ? pad_op_to_rows(s->be, rows[l], f.C[l], f.data[l], B, f.C[l], hw) : PAD_ERR_OOM;
    }
    pad_buf_free(s->be, g);
    free(gh);
    return st;
}

pad_status pad_spade_fit(pad_spade *s, const float *pixels, int N, int H, int W) {
    if (s->glob) {
        PAD_LOG_ERROR("spade: fit twice");
        return PAD_ERR_INVALID_ARG;
    }
    s->glob = (double *)malloc((size_t)N * s->Cg * sizeof(double));
    if (!s->glob) return PAD_ERR_OOM;
    s->N = N, s->H = H, s->W = W;
    return features(s, pixels, N, H, W, s->glob, s->rows);
}

typedef struct dist_idx {
    double d;
    int j;
} dist_idx;

static int cmp_dist_idx(const void *a, const void *b) {
    const dist_idx *x = (const dist_idx *)a, *y = (const dist_idx *)b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

// The top_k nearest normal images of global feature g (sorted by distance, then index) and their mean distance.
static double nearest_images(const pad_spade *s, const double *g, int k, int *sel) {
    dist_idx *d = (dist_idx *)malloc((size_t)s->N * sizeof *d);
    if (!d) return NAN;
    for (int j = 0; j < s->N; j++) {
        double acc = 0.0;
        for (int c = 0; c < s->Cg; c++) {
            const double v = g[c] - s->glob[(size_t)j * s->Cg + c];
            acc += v * v;
        }
        d[j] = (dist_idx){sqrt(acc), j};
    }
    qsort(d, (size_t)s->N, sizeof *d, cmp_dist_idx);
    double m = 0.0;
    for (int i = 0; i < k; i++) {
        sel[i] = d[i].j;
        m += d[i].d;
    }
    free(d);
    return m / k;
}

typedef struct work {
    float *gallery, *dist, *up, *acc, *tmp;
} work;

// The smoothed map (H, W) of test image b (rows of the test batch in trows) against the gallery of images sel[0..k).
static pad_status image_map(pad_spade *s, work *wk, float **trows, int b, const int *sel, int k, const double *gw,
                            int r, float *map_host) {
    const int H = s->H, W = s->W;
    const float third = 1.0f / 3.0f;
    PAD_TRY(pad_buf_zero(s->be, wk->acc, (size_t)H * W * sizeof(float)));
    for (int l = 0; l < SPADE_STAGES; l++) {
        const size_t hw = (size_t)s->h[l] * s->w[l], row = (size_t)s->C[l] * sizeof(float);
        for (int i = 0; i < k; i++)
            PAD_TRY(pad_buf_copy(s->be, wk->gallery + (size_t)i * hw * s->C[l],
                                 s->rows[l] + (size_t)sel[i] * hw * s->C[l], hw * row));
        PAD_TRY(pad_op_knn_l2(s->be, wk->dist, NULL, trows[l] + (size_t)b * hw * s->C[l], (int)hw, wk->gallery,
                              (int)(k * hw), s->C[l]));
        PAD_TRY(pad_op_upsample_bilinear(s->be, wk->up, wk->dist, 1, s->h[l], s->w[l], H, W));
        PAD_TRY(pad_op_axpy(s->be, wk->acc, wk->acc, 1.0f, wk->up, (size_t)H * W)); // sum over the stages
    }
    PAD_TRY(pad_op_scale(s->be, wk->acc, wk->acc, third, (size_t)H * W)); // torch.mean over the 3 stages
    PAD_TRY(pad_op_gaussian_filter(s->be, wk->up, wk->tmp, wk->acc, 1, H, W, gw, r));
    return pad_buf_download(s->be, map_host, wk->up, (size_t)H * W * sizeof(float));
}

pad_status pad_spade_predict(pad_spade *s, const float *pixels, int B, int H, int W, float *scores, float *maps) {
    if (!s->glob || H != s->H || W != s->W) {
        PAD_LOG_ERROR("spade: predict needs a fit at the same image size first");
        return PAD_ERR_INVALID_ARG;
    }
    const int k = s->cfg.top_k < s->N ? s->cfg.top_k : s->N;
    double *glob = (double *)malloc((size_t)B * s->Cg * sizeof(double));
    float *trows[SPADE_STAGES] = {NULL, NULL, NULL};
    int *sel = (int *)malloc((size_t)k * sizeof(int));
    work wk = {NULL, NULL, NULL, NULL, NULL};
    pad_status st = glob && sel ? features(s, pixels, B, H, W, glob, trows) : PAD_ERR_OOM;
    size_t gal = 0, hw_max = 0;
    for (int l = 0; l < SPADE_STAGES; l++) {
        const size_t hw = (size_t)s->h[l] * s->w[l];
        gal = (size_t)k * hw * s->C[l] > gal ? (size_t)k * hw * s->C[l] : gal;
        hw_max = hw > hw_max ? hw : hw_max;
    }
    const size_t HW = (size_t)H * W;
    if (st == PAD_OK && maps) {
        wk.gallery = (float *)pad_buf_alloc(s->be, gal * sizeof(float));
        wk.dist = (float *)pad_buf_alloc(s->be, hw_max * sizeof(float));
        wk.up = (float *)pad_buf_alloc(s->be, HW * sizeof(float));
        wk.acc = (float *)pad_buf_alloc(s->be, HW * sizeof(float));
        wk.tmp = (float *)pad_buf_alloc(s->be, HW * sizeof(float));
        if (!wk.gallery || !wk.dist || !wk.up || !wk.acc || !wk.tmp) st = PAD_ERR_OOM;
    }
    const int r = pad_gaussian_radius(s->cfg.sigma, 4.0);
    double *gw = (double *)malloc((size_t)(2 * r + 1) * sizeof(double));
    if (!gw) st = PAD_ERR_OOM;
    if (st == PAD_OK) pad_gaussian_kernel1d(gw, s->cfg.sigma, r);
    for (int b = 0; b < B && st == PAD_OK; b++) {
        scores[b] = (float)nearest_images(s, glob + (size_t)b * s->Cg, k, sel);
        if (maps) st = image_map(s, &wk, trows, b, sel, k, gw, r, maps + (size_t)b * HW);
    }
    pad_buf_free(s->be, wk.gallery), pad_buf_free(s->be, wk.dist), pad_buf_free(s->be, wk.up);
    pad_buf_free(s->be, wk.acc), pad_buf_free(s->be, wk.tmp);
    for (int l = 0; l < SPADE_STAGES; l++)
        pad_buf_free(s->be, trows[l]);
    free(glob), free(sel), free(gw);
    return st;
}
