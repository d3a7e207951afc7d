/* score.c - the memory bank and the scorer of score.h, written once against the checked pad_op_* wrappers. */
#include "score.h"

#include "log.h"
#include "st_file.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// helpers

float pad_score_tau(float logit_scale, bool exp_scale) {
    return exp_scale ? expf(logit_scale) : logit_scale;
}

int pad_gaussian_radius(double sigma, double truncate) {
    return (int)(truncate * sigma + 0.5);
}

// numpy's pairwise summation of a contiguous float64 array (numpy/core/src/umath/loops_utils.h, PW_BLOCKSIZE 128)
static double numpy_pairwise_sum(const double *a, int n) {
    if (n < 8) {
        double res = 0.0;
        for (int i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        int i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    int n2 = n / 2;
    n2 -= n2 % 8;
    return numpy_pairwise_sum(a, n2) + numpy_pairwise_sum(a + n2, n - n2);
}

void pad_gaussian_kernel1d(double *w, double sigma, int r) {
    const double c = -0.5 / (sigma * sigma);
    for (int k = -r; k <= r; k++)
        w[k + r] = exp(c * (double)((long long)k * k));
    const double s = numpy_pairwise_sum(w, 2 * r + 1);
    for (int i = 0; i < 2 * r + 1; i++)
        w[i] = w[i] / s;
}

pad_status pad_score_normalize(pad_backend *be, float *x, int M, int C) {
    return pad_op_l2norm_rows(be, x, NULL, x, M, C);
}

static float round_half(float x) {
    return pad_f16_to_f32(pad_f32_to_f16(x));
}

float pad_score_image(float vmax, float s_t, bool fp16) {
    const float inv_v = 1.0f / vmax;
    const float inv_t = fp16 ? round_half(1.0f / round_half(s_t)) : 1.0f / s_t;
    return 1.0f / (inv_v + inv_t);
}

// ----------------------------------------------------------------------------
// memory bank

pad_status pad_bank_init(pad_bank **out, pad_backend *be, const float *mid1, const float *mid2, int n_shots, int P,
                         int D) {
    *out = NULL;
    if (n_shots <= 0 || P <= 0 || D <= 0 || !mid1 || !mid2) {
        PAD_LOG_ERROR("memory bank: bad arguments (%d shots, %d patches, width %d)", n_shots, P, D);
        return PAD_ERR_INVALID_ARG;
    }
    pad_bank *bank = (pad_bank *)calloc(1, sizeof *bank);
    if (!bank) return PAD_ERR_OOM;
    bank->be = be;
    bank->n_shots = n_shots;
    bank->P = P;
    bank->D = D;
    const size_t rows = (size_t)n_shots * P, n = rows * D;
    bank->g = (float *)pad_buf_alloc(be, 2 * n * sizeof(float));
    pad_status st = bank->g ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_op_l2norm_rows(be, bank->g, NULL, mid1, (int)rows, D);
    if (st == PAD_OK) st = pad_op_l2norm_rows(be, bank->g + n, NULL, mid2, (int)rows, D);
    if (st != PAD_OK) {
        pad_bank_free(bank);
        return st;
    }
    *out = bank;
    return PAD_OK;
}

void pad_bank_free(pad_bank *bank) {
    if (!bank) return;
    pad_buf_free(bank->be, bank->g);
    free(bank);
}

// ----------------------------------------------------------------------------
// scorer

pad_score_cfg pad_score_cfg_default(int n_max, int grid, int res) {
    pad_score_cfg c;
    memset(&c, 0, sizeof c);
    c.n_max = n_max;
    c.grid = grid;
    c.res = res;
    c.sigma = 4.0;
    c.truncate = 4.0;
    c.fp16 = false;
    c.chunk = 16;
    c.graphs = false;
    return c;
}

pad_status pad_scorer_init(pad_scorer **out, pad_backend *be, const pad_score_cfg *cfg) {
    *out = NULL;
    if (cfg->n_max <= 0 || cfg->grid <= 0 || cfg->res <= 0 || !(cfg->sigma > 0) || !(cfg->truncate >= 0)) {
        PAD_LOG_ERROR("scorer: bad configuration (n_max %d, grid %d, resolution %d, sigma %g, truncate %g)", cfg->n_max,
                      cfg->grid, cfg->res, cfg->sigma, cfg->truncate);
        return PAD_ERR_INVALID_ARG;
    }
    const int radius = pad_gaussian_radius(cfg->sigma, cfg->truncate);
    if (radius > PAD_GAUSS_MAX_RADIUS) {
        PAD_LOG_ERROR("scorer: Gaussian radius %d (sigma %g, truncate %g) exceeds the supported %d", radius, cfg->sigma,
                      cfg->truncate, PAD_GAUSS_MAX_RADIUS);
        return PAD_ERR_INVALID_ARG;
    }
    pad_scorer *sc = (pad_scorer *)calloc(1, sizeof *sc);
    if (!sc) return PAD_ERR_OOM;
    sc->be = be;
    sc->cfg = *cfg;
    if (sc->cfg.chunk <= 0) sc->cfg.chunk = 16;
    if (sc->cfg.chunk > cfg->n_max) sc->cfg.chunk = cfg->n_max;
    sc->P = cfg->grid * cfg->grid;
    sc->radius = radius;
    const size_t n = (size_t)cfg->n_max, P = (size_t)sc->P, RR = (size_t)cfg->res * (size_t)cfg->res;
    sc->kernel = (double *)malloc(sizeof(double) * (2 * (size_t)radius + 1));
    sc->dist = (float *)pad_buf_alloc(be, 2 * n * P * sizeof(float));
    sc->V = (float *)pad_buf_alloc(be, n * P * sizeof(float));
    sc->vmax = (float *)pad_buf_alloc(be, n * sizeof(float));
    sc->T = (float *)pad_buf_alloc(be, n * P * sizeof(float));
    sc->sT = (float *)pad_buf_alloc(be, n * sizeof(float));
    sc->fused = (float *)pad_buf_alloc(be, n * P * sizeof(float));
    sc->maps = (float *)pad_buf_alloc(be, n * RR * sizeof(float));
    sc->tmp = (float *)pad_buf_alloc(be, (size_t)sc->cfg.chunk * RR * sizeof(float));
    sc->host = (float *)malloc(2 * n * sizeof(float));
    if (!sc->host || !sc->kernel || !sc->dist || !sc->V || !sc->vmax || !sc->T || !sc->sT || !sc->fused || !sc->maps ||
        !sc->tmp) {
        PAD_LOG_ERROR("scorer: out of memory for %d images at %dx%d", cfg->n_max, cfg->res, cfg->res);
        pad_scorer_free(sc);
        return PAD_ERR_OOM;
    }
    pad_gaussian_kernel1d(sc->kernel, cfg->sigma, radius);
    *out = sc;
    return PAD_OK;
}

void pad_scorer_free(pad_scorer *sc) {
    if (!sc) return;
    pad_backend *be = sc->be;
    free(sc->kernel);
    free(sc->host);
    pad_buf_free(be, sc->dist);
    pad_buf_free(be, sc->V);
    pad_buf_free(be, sc->vmax);
    pad_buf_free(be, sc->T);
    pad_buf_free(be, sc->sT);
    pad_buf_free(be, sc->fused);
    pad_buf_free(be, sc->maps);
    pad_buf_free(be, sc->tmp);
    pad_graph_free(be, &sc->g_text);
    pad_graph_free(be, &sc->g_maps);
    free(sc);
}

static pad_status check_n(const pad_scorer *sc, int n, const char *what) {
    if (n < 0 || n > sc->cfg.n_max) {
        PAD_LOG_ERROR("scorer: %s: %d images, capacity %d", what, n, sc->cfg.n_max);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

pad_status pad_scorer_visual(pad_scorer *sc, const pad_bank *bank, const float *q1, const float *q2, int n) {
    PAD_TRY(check_n(sc, n, "visual score"));
    if (bank->P != sc->P) {
        PAD_LOG_ERROR("scorer: memory bank has %d patches per image, the scorer %d", bank->P, sc->P);
        return PAD_ERR_INVALID_ARG;
    }
    if (n == 0) return PAD_OK;
    pad_backend *be = sc->be;
    const int Nq = n * sc->P, Nb = bank->n_shots * bank->P, D = bank->D;
    const size_t nq = (size_t)Nq;
    float *d1 = sc->dist, *d2 = sc->dist + nq; // contiguous (2, Nq) for a single launch
    if (q2 == q1 + nq * D) {
        PAD_TRY(pad_op_knn_min(be, d1, NULL, q1, Nq, bank->g, Nb, D, 2));
    } else {
        PAD_TRY(pad_op_knn_min(be, d1, NULL, q1, Nq, bank->g, Nb, D, 1));
        PAD_TRY(pad_op_knn_min(be, d2, NULL, q2, Nq, bank->g + (size_t)Nb * D, Nb, D, 1));
    }
    // V = 0.5 * (d1 + d2): the sum is rounded once, halving is exact
    PAD_TRY(pad_op_axpy(be, sc->V, d1, 1.0f, d2, nq));
    PAD_TRY(pad_op_scale(be, sc->V, sc->V, 0.5f, nq));
    return pad_scorer_visual_from(sc, sc->V, n);
}

pad_status pad_scorer_visual_from(pad_scorer *sc, const float *V, int n) {
    PAD_TRY(check_n(sc, n, "visual score"));
    if (n == 0) return PAD_OK;
    pad_backend *be = sc->be;
    const size_t nq = (size_t)n * sc->P;
    if (V != sc->V) PAD_TRY(pad_buf_copy(be, sc->V, V, nq * sizeof(float)));
    if (sc->cfg.fp16) PAD_TRY(pad_op_round_half(be, sc->V, sc->V, nq));
    // vmax = max over the unsmoothed bilinear upsample (slightly below the grid max for interior peaks)
    const int G = sc->cfg.grid, R = sc->cfg.res;
    PAD_TRY(pad_op_upsample_bilinear(be, sc->maps, sc->V, n, G, G, R, R));
    return pad_op_row_max(be, sc->vmax, sc->maps, n, (long long)R * R);
}

typedef struct text_job {
    pad_scorer *sc;
    const float *cls, *tokens, *t_n, *t_a;
    float tau;
    int n, E;
} text_job;

static pad_status scorer_text_ops(void *ctx) {
    const text_job *j = (const text_job *)ctx;
    pad_scorer *sc = j->sc;
    pad_backend *be = sc->be;
    const float *cls = j->cls, *tokens = j->tokens, *t_n = j->t_n, *t_a = j->t_a;
    const float tau = j->tau;
    const int n = j->n, E = j->E;
    if (cls) {
        PAD_TRY(pad_op_text_score(be, sc->sT, cls, t_n, t_a, tau, n, E));
        if (sc->cfg.fp16) PAD_TRY(pad_op_round_half(be, sc->sT, sc->sT, (size_t)n));
    }
    if (tokens) {
        const size_t m = (size_t)n * sc->P;
        PAD_TRY(pad_op_text_score(be, sc->T, tokens, t_n, t_a, tau, (int)m, E));
        if (sc->cfg.fp16) PAD_TRY(pad_op_round_half(be, sc->T, sc->T, m));
    }
    return PAD_OK;
}

pad_status pad_scorer_text(pad_scorer *sc, const float *cls, const float *tokens, const float *t_n, const float *t_a,
                           float tau, int n, int E) {
    PAD_TRY(check_n(sc, n, "text score"));
    if (n == 0) return PAD_OK;
    text_job job = {sc, cls, tokens, t_n, t_a, tau, n, E};
    if (!sc->cfg.graphs) return scorer_text_ops(&job);
    uint32_t tau_bits;
    memcpy(&tau_bits, &tau, sizeof tau_bits);
    const uintptr_t key[7] = {(uintptr_t)cls,      (uintptr_t)tokens, (uintptr_t)t_n, (uintptr_t)t_a,
                              (uintptr_t)tau_bits, (uintptr_t)n,      (uintptr_t)E};
    return pad_graph_run(sc->be, &sc->g_text, key, sizeof key, scorer_text_ops, &job);
}

pad_status pad_scorer_text_multi(pad_scorer *sc, const float *cls, const float *tokens, const float *tv, float tau,
                                 int n, int E, int U, float *sT_out, float *T_out) {
    PAD_TRY(check_n(sc, n, "text scores"));
    if (n == 0) return PAD_OK;
    if (cls && sT_out) PAD_TRY(pad_op_text_score_multi(sc->be, sT_out, cls, tv, tau, n, E, U));
    if (tokens && T_out) PAD_TRY(pad_op_text_score_multi(sc->be, T_out, tokens, tv, tau, n * sc->P, E, U));
    return PAD_OK;
}

pad_status pad_scorer_text_set(pad_scorer *sc, const float *sT, const float *T, int n) {
    PAD_TRY(check_n(sc, n, "text scores"));
    if (n == 0) return PAD_OK;
    const size_t m = (size_t)n * sc->P;
    if (sT) {
        PAD_TRY(pad_buf_copy(sc->be, sc->sT, sT, (size_t)n * sizeof(float)));
        if (sc->cfg.fp16) PAD_TRY(pad_op_round_half(sc->be, sc->sT, sc->sT, (size_t)n));
    }
    if (T) {
        PAD_TRY(pad_buf_copy(sc->be, sc->T, T, m * sizeof(float)));
        if (sc->cfg.fp16) PAD_TRY(pad_op_round_half(sc->be, sc->T, sc->T, m));
    }
    return PAD_OK;
}

// maps[0..n) = Gaussian(maps[0..n)) in chunks of cfg.chunk images
static pad_status smooth_maps(pad_scorer *sc, int n) {
    const int R = sc->cfg.res, chunk = sc->cfg.chunk;
    const size_t RR = (size_t)R * R;
    for (int i0 = 0; i0 < n; i0 += chunk) {
        const int b = n - i0 < chunk ? n - i0 : chunk;
        float *m = sc->maps + (size_t)i0 * RR;
        PAD_TRY(pad_op_gaussian_filter(sc->be, m, sc->tmp, m, b, R, R, sc->kernel, sc->radius));
    }
    return PAD_OK;
}

typedef struct maps_job {
    pad_scorer *sc;
    int n;
} maps_job;

static pad_status pixel_maps_ops(void *ctx) {
    const maps_job *j = (const maps_job *)ctx;
    pad_scorer *sc = j->sc;
    const int G = sc->cfg.grid, R = sc->cfg.res, n = j->n;
    if (sc->cfg.text_only) // the "w/o VAD" ablation: the text map alone
        PAD_TRY(pad_buf_copy(sc->be, sc->fused, sc->T, (size_t)n * sc->P * sizeof(float)));
    else
        PAD_TRY(pad_op_harmonic_fuse(sc->be, sc->fused, sc->T, sc->V, (size_t)n * sc->P));
    PAD_TRY(pad_op_upsample_bilinear(sc->be, sc->maps, sc->fused, n, G, G, R, R));
    return smooth_maps(sc, n);
}

pad_status pad_scorer_pixel_maps(pad_scorer *sc, int n) {
    PAD_TRY(check_n(sc, n, "pixel maps"));
    if (n == 0) return PAD_OK;
    maps_job job = {sc, n};
    if (!sc->cfg.graphs) return pixel_maps_ops(&job);
    const uintptr_t key = (uintptr_t)n;
    return pad_graph_run(sc->be, &sc->g_maps, &key, sizeof key, pixel_maps_ops, &job);
}

pad_status pad_scorer_visual_maps(pad_scorer *sc, int n) {
    PAD_TRY(check_n(sc, n, "visual maps"));
    if (n == 0) return PAD_OK;
    const int G = sc->cfg.grid, R = sc->cfg.res;
    return pad_op_upsample_bilinear(sc->be, sc->maps, sc->V, n, G, G, R, R);
}

pad_status pad_scorer_image_scores(pad_scorer *sc, int n, float *out) {
    PAD_TRY(check_n(sc, n, "image scores"));
    if (n == 0) return PAD_OK;
    float *h = sc->host;
    if (sc->cfg.text_only) return pad_buf_download(sc->be, out, sc->sT, sizeof(float) * (size_t)n); // s_T alone
    pad_status st = pad_buf_download(sc->be, h, sc->vmax, sizeof(float) * (size_t)n);
    if (st == PAD_OK) st = pad_buf_download(sc->be, h + n, sc->sT, sizeof(float) * (size_t)n);
    if (st == PAD_OK)
        for (int i = 0; i < n; i++)
            out[i] = pad_score_image(h[i], h[n + i], sc->cfg.fp16);
    return st;
}

// ----------------------------------------------------------------------------
// one-shot scoring

pad_status pad_score_all(pad_scorer *sc, const pad_bank *bank, const pad_score_feats *test, int n, int E,
                         const float *t_n, const float *t_a, float tau, const pad_score_outputs *out) {
    PAD_TRY(check_n(sc, n, "score"));
    if (n == 0) return PAD_OK;
    pad_backend *be = sc->be;
    const int P = sc->P, D = bank->D, R = sc->cfg.res;
    const size_t nPD = (size_t)n * P * D;
    float *q = (float *)pad_buf_alloc(be, 2 * nPD * sizeof(float)); // normalised copies of both taps, contiguous
    if (!q) return be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    pad_status st = PAD_OK;
    PAD_TRY_GOTO(st, pad_op_l2norm_rows(be, q, NULL, test->mid1, n * P, D), done);
    PAD_TRY_GOTO(st, pad_op_l2norm_rows(be, q + nPD, NULL, test->mid2, n * P, D), done);
    PAD_TRY_GOTO(st, pad_scorer_visual(sc, bank, q, q + nPD, n), done);
    PAD_TRY_GOTO(st, pad_scorer_text(sc, test->cls, test->tokens, t_n, t_a, tau, n, E), done);
    if (out->image_score) PAD_TRY_GOTO(st, pad_scorer_image_scores(sc, n, out->image_score), done);
    if (out->text_image_score)
        PAD_TRY_GOTO(st, pad_buf_download(be, out->text_image_score, sc->sT, sizeof(float) * (size_t)n), done);
    if (out->visual_map)
        PAD_TRY_GOTO(st, pad_buf_download(be, out->visual_map, sc->V, sizeof(float) * (size_t)n * P), done);
    if (out->text_map)
        PAD_TRY_GOTO(st, pad_buf_download(be, out->text_map, sc->T, sizeof(float) * (size_t)n * P), done);
    if (out->pixel_map) {
        PAD_TRY_GOTO(st, pad_scorer_pixel_maps(sc, n), done);
        PAD_TRY_GOTO(st, pad_buf_download(be, out->pixel_map, sc->maps, sizeof(float) * (size_t)n * R * R), done);
    }
done:
    pad_buf_free(be, q);
    return st;
}

void pad_score_map_max(const float *maps, int n, size_t RR, float *out) {
    for (int i = 0; i < n; i++) {
        const float *m = maps + (size_t)i * RR;
        float mx = m[0];
        for (size_t p = 1; p < RR; p++)
            mx = m[p] > mx ? m[p] : mx;
        out[i] = mx;
    }
}
