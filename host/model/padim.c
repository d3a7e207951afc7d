/* padim.c - PaDiM (padim.h): the channel subset (seeded draw, or a given one checked here and read from a
 * safetensors file), the embedding (backend forward, host gather of the selected channels with the nearest resize),
 * the per-position Gaussians in the Woodbury form, the Mahalanobis grid and the map, all on the host in double. */
#include "padim.h"
#include "cpu_ops.h"
#include "log.h"
#include "patchcore.h"
#include "prng.h"
#include "st_file.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PADIM_REG (0.01 + 1e-5) // anomalib: + 0.01 I in the covariance, + 1e-5 I before the inverse

struct pad_padim {
    pad_padim_cfg cfg;
    pad_resnet *net;
    pad_backend *be;
    int C[3], d, *chan;    // stage channels; d selected channels (sorted indices into the concatenation)
    int H, W, h, w, N;     // image size of the fit, layer1 grid, shots
    double *mean, *U, *Gi; // per position p: mean (d), U (N, d), inverse of a I + U U^T restricted (N, N)
};

pad_padim_cfg pad_padim_default_cfg(void) {
    return (pad_padim_cfg){.n_features = 550, .seed = 0, .sigma = 4.0};
}

int pad_padim_channel_count(const pad_resnet *net) {
    const pad_resnet_cfg *rc = pad_resnet_config(net);
    return rc->n_stages < 3 ? 0 : rc->out[0] + rc->out[1] + rc->out[2];
}

// Checks n channel indices: 1 <= n <= total, each in [0, total), none repeated. Errors are logged as "<src>: ...".
static pad_status check_channels(const int32_t *ch, int64_t n, int total, const char *src) {
    if (n < 1 || n > total) {
        PAD_LOG_ERROR("%s: idx has %" PRId64 " channels; expected 1 to %d (the network's layer1..3 channels)", src, n,
                      total);
        return PAD_ERR_FORMAT;
    }
    int64_t *first = (int64_t *)malloc((size_t)total * sizeof(int64_t)); // position of each channel's first use
    if (!first) return PAD_ERR_OOM;
    for (int c = 0; c < total; c++)
        first[c] = -1;
    pad_status st = PAD_OK;
    for (int64_t i = 0; i < n && st == PAD_OK; i++) {
        if (ch[i] < 0 || ch[i] >= total) {
            PAD_LOG_ERROR("%s: idx[%" PRId64 "] = %d is out of range [0, %d)", src, i, (int)ch[i], total);
            st = PAD_ERR_FORMAT;
        } else if (first[ch[i]] >= 0) {
            PAD_LOG_ERROR("%s: idx[%" PRId64 "] = %d repeats idx[%" PRId64 "]", src, i, (int)ch[i], first[ch[i]]);
            st = PAD_ERR_FORMAT;
        } else {
            first[ch[i]] = i;
        }
    }
    free(first);
    return st;
}

// The first d entries of a seeded Fisher-Yates permutation of [0, total), sorted (the distance ignores the order).
static pad_status draw_channels(int *chan, int d, int total, uint64_t seed) {
    int *perm = (int *)malloc((size_t)total * sizeof(int));
    char *mark = (char *)calloc((size_t)total, 1);
    if (!perm || !mark) {
        free(perm);
        free(mark);
        return PAD_ERR_OOM;
    }
    uint64_t st = pad_prng_mix(seed ^ 0x504144494D434831ull); // "PADIMCH1"
    for (int i = 0; i < total; i++)
        perm[i] = i;
    for (int i = 0; i < d; i++) {
        const int j = i + (int)pad_prng_below(&st, (uint64_t)(total - i));
        const int t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int i = 0; i < d; i++)
        mark[perm[i]] = 1;
    for (int i = 0, n = 0; i < total; i++)
        if (mark[i]) chan[n++] = i;
    free(mark);
    free(perm);
    return PAD_OK;
}

pad_status pad_padim_create(pad_padim **out, pad_resnet *net, pad_backend *be, const pad_padim_cfg *cfg) {
    *out = NULL;
    const pad_resnet_cfg *rc = pad_resnet_config(net);
    if (rc->n_stages < 3 || (!cfg->channels && cfg->n_features < 1) || !(cfg->sigma > 0)) {
        PAD_LOG_ERROR("padim: needs a ResNet with 3 stages and n_features >= 1 (got %d stages, %d features)",
                      rc->n_stages, cfg->n_features);
        return PAD_ERR_INVALID_ARG;
    }
    const int total = pad_padim_channel_count(net);
    if (cfg->channels && check_channels(cfg->channels, cfg->n_channels, total, "padim") != PAD_OK)
        return PAD_ERR_INVALID_ARG;
    pad_padim *p = (pad_padim *)calloc(1, sizeof *p);
    if (!p) return PAD_ERR_OOM;
    p->cfg = *cfg, p->net = net, p->be = be;
    p->cfg.channels = NULL; // borrowed by the caller: the copy is p->chan
    for (int s = 0; s < 3; s++)
        p->C[s] = rc->out[s];
    p->d = cfg->channels ? cfg->n_channels : cfg->n_features < total ? cfg->n_features : total;
    p->chan = (int *)malloc((size_t)p->d * sizeof(int));
    pad_status st = p->chan ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK && cfg->channels)
        for (int i = 0; i < p->d; i++)
            p->chan[i] = cfg->channels[i];
    else if (st == PAD_OK)
        st = draw_channels(p->chan, p->d, total, cfg->seed);
    if (st != PAD_OK) {
        pad_padim_free(p);
        return st;
    }
    *out = p;
    return PAD_OK;
}

// Element i of t as an integer channel index, or an error naming the file: an integer dtype as is, a float dtype
// when it holds an integer (checked before any conversion, so no value can overflow).
static pad_status idx_value(const pad_st_tensor *t, int64_t i, int total, const char *path, int32_t *out) {
    const unsigned char *src = t->data + (size_t)i * pad_dtype_size(t->dtype);
    int64_t v = 0;
    double x = 0;
    bool is_float = false;
    switch (t->dtype) {
    case PAD_DTYPE_I64:
        memcpy(&v, src, 8);
        break;
    case PAD_DTYPE_I32: {
        int32_t w;
        memcpy(&w, src, 4);
        v = w;
        break;
    }
    case PAD_DTYPE_I8:
        v = (int8_t)src[0];
        break;
    case PAD_DTYPE_U8:
        v = src[0];
        break;
    case PAD_DTYPE_F64:
        memcpy(&x, src, 8), is_float = true;
        break;
    default: { // F32, F16, BF16 (BOOL is refused by the caller)
        float f;
        pad_convert_to_f32(&f, src, t->dtype, 1);
        x = f, is_float = true;
    }
    }
    if (is_float) {
        if (!(x >= 0.0 && x < (double)total)) {
            PAD_LOG_ERROR("%s: idx[%" PRId64 "] = %g is out of range [0, %d)", path, i, x, total);
            return PAD_ERR_FORMAT;
        }
        if (x != floor(x)) {
            PAD_LOG_ERROR("%s: idx[%" PRId64 "] = %.17g is not an integer", path, i, x);
            return PAD_ERR_FORMAT;
        }
        v = (int64_t)x;
    }
    if (v < 0 || v >= total) {
        PAD_LOG_ERROR("%s: idx[%" PRId64 "] = %" PRId64 " is out of range [0, %d)", path, i, v, total);
        return PAD_ERR_FORMAT;
    }
    *out = (int32_t)v;
    return PAD_OK;
}

pad_status pad_padim_read_idx(const char *path, int total, int32_t **out, int *n) {
    *out = NULL, *n = 0;
    if (total < 1) {
        PAD_LOG_ERROR("%s: no channel to select (the network has %d)", path, total);
        return PAD_ERR_INVALID_ARG;
    }
    pad_st_file *f = NULL;
    PAD_TRY(pad_st_open(&f, path));
    const pad_st_tensor *t = pad_st_find(f, "idx");
    pad_status st = PAD_ERR_FORMAT;
    char shape[128];
    if (!t) {
        PAD_LOG_ERROR("%s: missing tensor 'idx' (PaDiM's channel subset)", path);
    } else if (t->dtype == PAD_DTYPE_BOOL) {
        PAD_LOG_ERROR("%s: idx: dtype %s; expected an integer dtype (I64, I32, I8, U8) or a float holding integers",
                      path, pad_dtype_name(t->dtype));
    } else if (t->ndim != 1) {
        pad_st_shape_str(shape, sizeof shape, t->ndim, t->shape);
        PAD_LOG_ERROR("%s: idx: expected a 1-D tensor, got shape %s", path, shape);
    } else if (t->numel < 1 || t->numel > total) {
        PAD_LOG_ERROR("%s: idx has %" PRId64 " channels; expected 1 to %d (the network's layer1..3 channels)", path,
                      t->numel, total);
    } else {
        int32_t *v = (int32_t *)malloc((size_t)t->numel * sizeof(int32_t));
        st = v ? PAD_OK : PAD_ERR_OOM;
        for (int64_t i = 0; i < t->numel && st == PAD_OK; i++)
            st = idx_value(t, i, total, path, &v[i]);
        if (st == PAD_OK) st = check_channels(v, t->numel, total, path);
        if (st == PAD_OK) {
            *out = v, *n = (int)t->numel;
        } else {
            free(v);
        }
    }
    pad_st_close(f);
    return st;
}

void pad_padim_free(pad_padim *p) {
    if (!p) return;
    free(p->chan);
    free(p->mean);
    free(p->U);
    free(p->Gi);
    free(p);
}

const int32_t *pad_padim_channels(const pad_padim *p, int *n) {
    *n = p->d;
    return (const int32_t *)p->chan;
}

// emb (B, h*w, d) in double: the selected channels of layer1..3, the deeper stages resized by torch's nearest.
static pad_status embed(pad_padim *p, const float *pixels, int B, int H, int W, double **out) {
    pad_resnet_feats f;
    PAD_TRY(pad_resnet_forward(p->net, pixels, B, H, W, 3, &f));
    float *host[3] = {NULL, NULL, NULL};
    pad_status st = PAD_OK;
    for (int s = 0; s < 3 && st == PAD_OK; s++) {
        const size_t n = (size_t)B * f.C[s] * f.H[s] * f.W[s];
        host[s] = (float *)malloc(n * sizeof(float));
        st = host[s] ? pad_buf_download(p->be, host[s], f.data[s], n * sizeof(float)) : PAD_ERR_OOM;
    }
    const int h = f.H[0], w = f.W[0], P = h * w, d = p->d;
    double *e = st == PAD_OK ? (double *)malloc((size_t)B * P * d * sizeof(double)) : NULL;
    if (st == PAD_OK && !e) st = PAD_ERR_OOM;
    if (st == PAD_OK) {
#pragma omp parallel for schedule(static)
        for (int bp = 0; bp < B * P; bp++) {
            const int b = bp / P, y = (bp % P) / w, x = bp % w;
            for (int i = 0; i < d; i++) {
                int c = p->chan[i], s = 0;
                while (c >= p->C[s])
                    c -= p->C[s++];
                const int hs = f.H[s], ws = f.W[s];
                int ys = (int)floorf((float)y * ((float)hs / (float)h)),
                    xs = (int)floorf((float)x * ((float)ws / (float)w));
                ys = ys < hs - 1 ? ys : hs - 1, xs = xs < ws - 1 ? xs : ws - 1;
                e[(size_t)bp * d + i] = host[s][(((size_t)b * p->C[s] + c) * hs + ys) * ws + xs];
            }
        }
        p->h = h, p->w = w;
    }
    for (int s = 0; s < 3; s++)
        free(host[s]);
    *out = e;
    return st;
}

// In-place inverse of the n x n matrix a (n <= PAD_PADIM_MAX_SHOTS) by Gauss-Jordan elimination with partial
// pivoting; false when it is singular.
static bool invert(double *a, int n) {
    double aug[PAD_PADIM_MAX_SHOTS * 2 * PAD_PADIM_MAX_SHOTS];
    const int m = 2 * n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++)
            aug[i * m + j] = j < n ? a[i * n + j] : (j - n == i);
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(aug[r * m + c]) > fabs(aug[piv * m + c])) piv = r;
        if (aug[piv * m + c] == 0.0) return false;
        for (int j = 0; j < m && piv != c; j++) {
            const double t = aug[c * m + j];
            aug[c * m + j] = aug[piv * m + j], aug[piv * m + j] = t;
        }
        const double inv = 1.0 / aug[c * m + c];
        for (int j = 0; j < m; j++)
            aug[c * m + j] *= inv;
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            const double fct = aug[r * m + c];
            for (int j = 0; j < m; j++)
                aug[r * m + j] -= fct * aug[c * m + j];
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            a[i * n + j] = aug[i * m + n + j];
    return true;
}

pad_status pad_padim_fit(pad_padim *p, const float *pixels, int N, int H, int W) {
    if (N < 1 || N > PAD_PADIM_MAX_SHOTS) {
        PAD_LOG_ERROR("padim: %d shots (1..%d supported)", N, PAD_PADIM_MAX_SHOTS);
        return PAD_ERR_INVALID_ARG;
    }
    double *e = NULL;
    PAD_TRY(embed(p, pixels, N, H, W, &e));
    const int P = p->h * p->w, d = p->d;
    free(p->mean), free(p->U), free(p->Gi);
    p->mean = (double *)malloc((size_t)P * d * sizeof(double));
    p->U = (double *)malloc((size_t)P * N * d * sizeof(double));
    p->Gi = (double *)malloc((size_t)P * N * N * sizeof(double));
    if (!p->mean || !p->U || !p->Gi) {
        free(e);
        return PAD_ERR_OOM;
    }
    p->N = N, p->H = H, p->W = W;
    const double scale = 1.0 / sqrt((double)(N > 1 ? N - 1 : 1));
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
    for (int q = 0; q < P; q++) {
        double *mu = p->mean + (size_t)q * d, *U = p->U + (size_t)q * N * d, *G = p->Gi + (size_t)q * N * N;
        for (int i = 0; i < d; i++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += e[((size_t)n * P + q) * d + i];
            mu[i] = s / N;
        }
        for (int n = 0; n < N; n++)
            for (int i = 0; i < d; i++)
                U[(size_t)n * d + i] = (e[((size_t)n * P + q) * d + i] - mu[i]) * scale;
        for (int a = 0; a < N; a++) // G = a_reg I + U U^T (N x N)
            for (int b = 0; b < N; b++) {
                double s = a == b ? PADIM_REG : 0.0;
                for (int i = 0; i < d; i++)
                    s += U[(size_t)a * d + i] * U[(size_t)b * d + i];
                G[a * N + b] = s;
            }
        bad += !invert(G, N);
    }
    free(e);
    if (bad) {
        PAD_LOG_ERROR("padim: %d singular covariance systems", bad);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

pad_status pad_padim_predict(pad_padim *p, const float *pixels, int B, int H, int W, float *scores, float *maps,
                             float *dist) {
    if (!p->mean || H != p->H || W != p->W) {
        PAD_LOG_ERROR("padim: predict needs a fit at the same image size first");
        return PAD_ERR_INVALID_ARG;
    }
    double *e = NULL;
    PAD_TRY(embed(p, pixels, B, H, W, &e));
    const int P = p->h * p->w, d = p->d, N = p->N;
    float *grid = (float *)malloc((size_t)B * P * sizeof(float));
    float *map = (float *)malloc((size_t)H * W * sizeof(float));
    int *y0 = (int *)malloc((size_t)(H + W) * 2 * sizeof(int));
    float *wy = (float *)malloc((size_t)(H + W) * 2 * sizeof(float));
    pad_status st = grid && map && y0 && wy ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) {
#pragma omp parallel for schedule(static)
        for (int bq = 0; bq < B * P; bq++) {
            const int q = bq % P;
            const double *x = e + (size_t)bq * d, *mu = p->mean + (size_t)q * d, *U = p->U + (size_t)q * N * d;
            const double *G = p->Gi + (size_t)q * N * N;
            double t[PAD_PADIM_MAX_SHOTS], dd = 0.0;
            for (int n = 0; n < N; n++)
                t[n] = 0.0;
            for (int i = 0; i < d; i++) {
                const double v = x[i] - mu[i];
                dd += v * v;
                for (int n = 0; n < N; n++)
                    t[n] += U[(size_t)n * d + i] * v;
            }
            double tgt = 0.0;
            for (int a = 0; a < N; a++)
                for (int b = 0; b < N; b++)
                    tgt += t[a] * G[a * N + b] * t[b];
            const double m = (dd - tgt) / PADIM_REG;
            grid[bq] = (float)sqrt(m > 0.0 ? m : 0.0);
        }
        if (dist) memcpy(dist, grid, (size_t)B * P * sizeof(float));
    }
    // the map: torch's bilinear resize (align_corners False) of the grid, then the Gaussian blur; score = its max
    int *y1 = y0 + H, *x0 = y0 + 2 * H, *x1 = x0 + W;
    float *ly0 = wy, *ly1 = wy + H, *lx0 = wy + 2 * H, *lx1 = lx0 + W;
    if (st == PAD_OK) {
        pad_bilinear_axis(p->h, H, y0, y1, ly0, ly1);
        pad_bilinear_axis(p->w, W, x0, x1, lx0, lx1);
    }
    for (int b = 0; b < B && st == PAD_OK; b++) {
        const float *g = grid + (size_t)b * P;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                const double top = (double)g[y0[y] * p->w + x0[x]] * lx0[x] + (double)g[y0[y] * p->w + x1[x]] * lx1[x];
                const double bot = (double)g[y1[y] * p->w + x0[x]] * lx0[x] + (double)g[y1[y] * p->w + x1[x]] * lx1[x];
                map[(size_t)y * W + x] = (float)(top * ly0[y] + bot * ly1[y]);
            }
        st = pad_patchcore_blur(map, H, W, p->cfg.sigma);
        float mx = -INFINITY;
        for (size_t i = 0; i < (size_t)H * W; i++)
            mx = map[i] > mx ? map[i] : mx;
        scores[b] = mx;
        if (maps) memcpy(maps + (size_t)b * H * W, map, (size_t)H * W * sizeof(float));
    }
    free(e), free(grid), free(map), free(y0), free(wy);
    return st;
}
