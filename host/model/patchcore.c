/* patchcore.c - PatchCore (patchcore.h): the embedding on the backend (ResNet stages, 3x3 average pools, bilinear
 * resize, channels-last concatenation), the memory bank (host rows, optional k-center-greedy coreset, uploaded once),
 * the nearest-neighbour patch scores on the backend (knn_l2), and on the host the image score's reweighting and the
 * map (nearest resize + Gaussian blur). */
#include "patchcore.h"
#include "log.h"
#include "prng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pad_patchcore {
    pad_patchcore_cfg cfg;
    pad_resnet *net;
    pad_backend *be;
    int D, C2, C3; // embedding width = channels of the two tapped stages
    // embedding buffers for the last (B, H, W)
    int eB, eH, eW, h, w, h3, w3;
    float *pool2, *pool3, *up3, *rows;
    // memory bank
    float *bank; // host rows (n_bank, D)
    int n_bank, cap_bank;
    float *bank_dev; // uploaded by build
    int n_dev;
};

pad_patchcore_cfg pad_patchcore_default_cfg(void) {
    return (pad_patchcore_cfg){.layers = {2, 3}, .num_neighbors = 9, .coreset_ratio = 1.0, .seed = 0, .sigma = 4.0};
}

pad_status pad_patchcore_create(pad_patchcore **out, pad_resnet *net, pad_backend *be, const pad_patchcore_cfg *cfg) {
    *out = NULL;
    const pad_resnet_cfg *rc = pad_resnet_config(net);
    if (cfg->layers[0] < 1 || cfg->layers[1] <= cfg->layers[0] || cfg->layers[1] > rc->n_stages ||
        cfg->num_neighbors < 1 || !(cfg->sigma > 0) || !(cfg->coreset_ratio > 0)) {
        PAD_LOG_ERROR("patchcore: bad configuration (layers %d, %d of %d stages; %d neighbours; sigma %g; coreset %g)",
                      cfg->layers[0], cfg->layers[1], rc->n_stages, cfg->num_neighbors, cfg->sigma, cfg->coreset_ratio);
        return PAD_ERR_INVALID_ARG;
    }
    pad_patchcore *pc = (pad_patchcore *)calloc(1, sizeof *pc);
    if (!pc) return PAD_ERR_OOM;
    pc->cfg = *cfg;
    pc->net = net;
    pc->be = be;
    pc->C2 = rc->out[cfg->layers[0] - 1];
    pc->C3 = rc->out[cfg->layers[1] - 1];
    pc->D = pc->C2 + pc->C3;
    *out = pc;
    return PAD_OK;
}

static void free_embed(pad_patchcore *pc) {
    float **b[] = {&pc->pool2, &pc->pool3, &pc->up3, &pc->rows};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) {
        pad_buf_free(pc->be, *b[i]);
        *b[i] = NULL;
    }
    pc->eB = pc->eH = pc->eW = 0;
}

void pad_patchcore_free(pad_patchcore *pc) {
    if (!pc) return;
    free_embed(pc);
    pad_buf_free(pc->be, pc->bank_dev);
    free(pc->bank);
    free(pc);
}

int pad_patchcore_bank_rows(const pad_patchcore *pc) {
    return pc->n_bank;
}
int pad_patchcore_dim(const pad_patchcore *pc) {
    return pc->D;
}
const float *pad_patchcore_bank(const pad_patchcore *pc) {
    return pc->bank;
}

static pad_status alloc_f(pad_backend *be, float **p, size_t n) {
    *p = (float *)pad_buf_alloc(be, n * sizeof(float));
    return *p ? PAD_OK : PAD_ERR_OOM;
}

pad_status pad_patchcore_embed(pad_patchcore *pc, const float *pixels, int B, int H, int W, const float **rows, int *h,
                               int *w, int *D) {
    pad_resnet_feats f;
    const int s2 = pc->cfg.layers[0] - 1, s3 = pc->cfg.layers[1] - 1;
    PAD_TRY(pad_resnet_forward(pc->net, pixels, B, H, W, s3 + 1, &f));
    if (pc->eB != B || pc->eH != H || pc->eW != W) {
        free_embed(pc);
        pc->h = f.H[s2], pc->w = f.W[s2], pc->h3 = f.H[s3], pc->w3 = f.W[s3];
        const size_t hw = (size_t)pc->h * pc->w, hw3 = (size_t)pc->h3 * pc->w3;
        PAD_TRY(alloc_f(pc->be, &pc->pool2, (size_t)B * pc->C2 * hw));
        PAD_TRY(alloc_f(pc->be, &pc->pool3, (size_t)B * pc->C3 * hw3));
        PAD_TRY(alloc_f(pc->be, &pc->up3, (size_t)B * pc->C3 * hw));
        PAD_TRY(alloc_f(pc->be, &pc->rows, (size_t)B * hw * pc->D));
        pc->eB = B, pc->eH = H, pc->eW = W;
    }
    const int hw = pc->h * pc->w;
    PAD_TRY(pad_op_pool2d(pc->be, pc->pool2, f.data[s2], B, pc->C2, pc->h, pc->w, 3, 1, 1, PAD_POOL_AVG));
    PAD_TRY(pad_op_pool2d(pc->be, pc->pool3, f.data[s3], B, pc->C3, pc->h3, pc->w3, 3, 1, 1, PAD_POOL_AVG));
    PAD_TRY(pad_op_upsample_bilinear(pc->be, pc->up3, pc->pool3, B * pc->C3, pc->h3, pc->w3, pc->h, pc->w));
    PAD_TRY(pad_op_to_rows(pc->be, pc->rows, pc->D, pc->pool2, B, pc->C2, hw));
    PAD_TRY(pad_op_to_rows(pc->be, pc->rows + pc->C2, pc->D, pc->up3, B, pc->C3, hw));
    *rows = pc->rows, *h = pc->h, *w = pc->w, *D = pc->D;
    return PAD_OK;
}

pad_status pad_patchcore_add(pad_patchcore *pc, const float *pixels, int B, int H, int W) {
    const float *rows;
    int h, w, D;
    PAD_TRY(pad_patchcore_embed(pc, pixels, B, H, W, &rows, &h, &w, &D));
    const long long n = (long long)B * h * w;
    if (pc->n_bank + n > (1LL << 30) / D) {
        PAD_LOG_ERROR("patchcore: the memory bank would exceed 2^30 floats");
        return PAD_ERR_INVALID_ARG;
    }
    if (pc->n_bank + n > pc->cap_bank) {
        int cap = pc->cap_bank ? pc->cap_bank : 1024;
        while (cap < pc->n_bank + n)
            cap *= 2;
        float *nb = (float *)realloc(pc->bank, (size_t)cap * D * sizeof(float));
        if (!nb) return PAD_ERR_OOM;
        pc->bank = nb, pc->cap_bank = cap;
    }
    PAD_TRY(pad_buf_download(pc->be, pc->bank + (size_t)pc->n_bank * D, rows, (size_t)n * D * sizeof(float)));
    pc->n_bank += (int)n;
    return PAD_OK;
}

pad_status pad_kcenter_greedy(const float *x, int n, int D, int k, uint64_t seed, int32_t *sel) {
    if (n < 1 || k < 1 || k > n) return PAD_ERR_INVALID_ARG;
    double *mind = (double *)malloc((size_t)n * sizeof(double));
    if (!mind) return PAD_ERR_OOM;
    uint64_t st = pad_prng_mix(seed ^ 0x434F524553455431ull); // "CORESET1"
    int c = (int)pad_prng_below(&st, (uint64_t)n);
    for (int i = 0; i < n; i++)
        mind[i] = INFINITY;
    for (int t = 0; t < k; t++) {
        sel[t] = c;
        const float *xc = x + (size_t)c * D;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * D;
            double s = 0.0;
            for (int d = 0; d < D; d++) {
                const double v = (double)xi[d] - xc[d];
                s += v * v;
            }
            s = sqrt(s);
            if (s < mind[i]) mind[i] = s;
        }
        mind[c] = 0.0;
        int best = 0;
        for (int i = 1; i < n; i++)
            if (mind[i] > mind[best]) best = i;
        c = best;
    }
    free(mind);
    return PAD_OK;
}

pad_status pad_patchcore_build(pad_patchcore *pc) {
    if (pc->n_bank == 0) {
        PAD_LOG_ERROR("patchcore: the memory bank is empty (no normal shots added)");
        return PAD_ERR_INVALID_ARG;
    }
    const int D = pc->D;
    if (pc->cfg.coreset_ratio < 1.0) {
        int k = (int)(pc->n_bank * pc->cfg.coreset_ratio);
        if (k < 1) k = 1;
        int32_t *sel = (int32_t *)malloc((size_t)k * sizeof(int32_t));
        float *nb = (float *)malloc((size_t)k * D * sizeof(float));
        pad_status st = sel && nb ? pad_kcenter_greedy(pc->bank, pc->n_bank, D, k, pc->cfg.seed, sel) : PAD_ERR_OOM;
        if (st == PAD_OK) {
            for (int i = 0; i < k; i++)
                memcpy(nb + (size_t)i * D, pc->bank + (size_t)sel[i] * D, (size_t)D * sizeof(float));
            free(pc->bank);
            pc->bank = nb, pc->n_bank = pc->cap_bank = k;
            nb = NULL;
        }
        free(sel);
        free(nb);
        PAD_TRY(st);
    }
    pad_buf_free(pc->be, pc->bank_dev);
    pc->bank_dev = NULL;
    PAD_TRY(pad_buf_from_host(pc->be, &pc->bank_dev, pc->bank, (size_t)pc->n_bank * D));
    pc->n_dev = pc->n_bank;
    return PAD_OK;
}

// anomalib's euclidean_dist for one pair, in its float operation order: sqrt(max((-2 x.y + |x|^2) + |y|^2, 0)),
// the dot product and the squared norms summed in double and rounded once (as knn_l2 does).
static float l2_anomalib(const float *x, const float *y, int D) {
    double s = 0.0, xn = 0.0, yn = 0.0;
    for (int d = 0; d < D; d++) {
        s += (double)x[d] * y[d];
        xn += (double)x[d] * x[d];
        yn += (double)y[d] * y[d];
    }
    float v = -2.0f * (float)s + (float)xn;
    v = v + (float)yn;
    return sqrtf(v < 0.0f ? 0.0f : v);
}

typedef struct dist_idx {
    float d;
    int j;
} dist_idx;

static int cmp_dist_idx(const void *a, const void *b) {
    const dist_idx *x = (const dist_idx *)a, *y = (const dist_idx *)b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

// anomalib's compute_anomaly_score for one image: feat is the embedding row of its highest-scoring patch, s_max
// that patch's score and nn the bank row nearest to it.
static pad_status reweight(const pad_patchcore *pc, const float *feat, float s_max, int nn, float *out) {
    const int D = pc->D, n = pc->n_bank;
    const int k = pc->cfg.num_neighbors < n ? pc->cfg.num_neighbors : n;
    if (pc->cfg.num_neighbors == 1) {
        *out = s_max;
        return PAD_OK;
    }
    dist_idx *all = (dist_idx *)malloc((size_t)n * sizeof *all);
    if (!all) return PAD_ERR_OOM;
    const float *m = pc->bank + (size_t)nn * D;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++)
        all[j] = (dist_idx){l2_anomalib(m, pc->bank + (size_t)j * D, D), j};
    qsort(all, (size_t)n, sizeof *all, cmp_dist_idx); // the k nearest bank rows of m: its support N_b(m*)
    // softmax over the distances of the test patch to the support samples; weight = 1 - its first entry
    double mx = -INFINITY, sum = 0.0, d0 = 0.0;
    double *dd = (double *)malloc((size_t)k * sizeof(double));
    if (!dd) {
        free(all);
        return PAD_ERR_OOM;
    }
    for (int i = 0; i < k; i++) {
        dd[i] = l2_anomalib(feat, pc->bank + (size_t)all[i].j * D, D);
        mx = dd[i] > mx ? dd[i] : mx;
    }
    for (int i = 0; i < k; i++)
        sum += exp(dd[i] - mx);
    d0 = exp(dd[0] - mx) / sum;
    *out = (float)((1.0 - d0) * (double)s_max);
    free(dd);
    free(all);
    return PAD_OK;
}

// torch's 'reflect' index (mirror without repeating the edge) of i on a line of n samples.
static int reflect_torch(int i, int n) {
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

pad_status pad_patchcore_blur(float *map, int H, int W, double sigma) {
    const int r = (int)(4.0 * sigma + 0.5);
    double *k = (double *)malloc((size_t)(2 * r + 1) * sizeof(double));
    double *tmp = (double *)malloc((size_t)H * W * sizeof(double));
    if (!k || !tmp) {
        free(k);
        free(tmp);
        return PAD_ERR_OOM;
    }
    double ks = 0.0;
    for (int i = -r; i <= r; i++)
        ks += k[i + r] = exp(-(double)(i * i) / (2.0 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++)
        k[i] /= ks;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < H; y++) // along the rows
        for (int x = 0; x < W; x++) {
            double s = 0.0;
            for (int i = -r; i <= r; i++)
                s += k[i + r] * map[(size_t)y * W + reflect_torch(x + i, W)];
            tmp[(size_t)y * W + x] = s;
        }
#pragma omp parallel for schedule(static)
    for (int x = 0; x < W; x++) // then along the columns
        for (int y = 0; y < H; y++) {
            double s = 0.0;
            for (int i = -r; i <= r; i++)
                s += k[i + r] * tmp[(size_t)reflect_torch(y + i, H) * W + x];
            map[(size_t)y * W + x] = (float)s;
        }
    free(k);
    free(tmp);
    return PAD_OK;
}

// map(H, W) = grid(h, w) resized by torch's 'nearest' (source floor(dst * (float)(in / out)), clamped).
static void nearest_resize(float *map, int H, int W, const float *grid, int h, int w) {
    const float sy = (float)h / (float)H, sx = (float)w / (float)W;
    for (int y = 0; y < H; y++) {
        int iy = (int)floorf((float)y * sy);
        iy = iy < h - 1 ? iy : h - 1;
        for (int x = 0; x < W; x++) {
            int ix = (int)floorf((float)x * sx);
            ix = ix < w - 1 ? ix : w - 1;
            map[(size_t)y * W + x] = grid[(size_t)iy * w + ix];
        }
    }
}

pad_status pad_patchcore_predict(pad_patchcore *pc, const float *pixels, int B, int H, int W, float *scores,
                                 float *maps, float *patch) {
    if (!pc->bank_dev) {
        PAD_LOG_ERROR("patchcore: predict before the memory bank was built");
        return PAD_ERR_INVALID_ARG;
    }
    const float *rows;
    int h, w, D;
    PAD_TRY(pad_patchcore_embed(pc, pixels, B, H, W, &rows, &h, &w, &D));
    const int n = B * h * w, hw = h * w;
    float *dist_dev = (float *)pad_buf_alloc(pc->be, (size_t)n * sizeof(float));
    int32_t *idx_dev = (int32_t *)pad_buf_alloc(pc->be, (size_t)n * sizeof(int32_t));
    float *dist = (float *)malloc((size_t)n * sizeof(float)), *feat = (float *)malloc((size_t)D * sizeof(float));
    int32_t *idx = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    pad_status st = dist_dev && idx_dev && dist && idx && feat ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_op_knn_l2(pc->be, dist_dev, idx_dev, rows, n, pc->bank_dev, pc->n_dev, D);
    if (st == PAD_OK) st = pad_buf_download(pc->be, dist, dist_dev, (size_t)n * sizeof(float));
    if (st == PAD_OK) st = pad_buf_download(pc->be, idx, idx_dev, (size_t)n * sizeof(int32_t));
    for (int b = 0; b < B && st == PAD_OK; b++) {
        const float *d = dist + (size_t)b * hw;
        int best = 0; // torch.argmax: the first maximum
        for (int i = 1; i < hw; i++)
            if (d[i] > d[best]) best = i;
        st = pad_buf_download(pc->be, feat, rows + ((size_t)b * hw + best) * D, (size_t)D * sizeof(float));
        if (st == PAD_OK) st = reweight(pc, feat, d[best], idx[(size_t)b * hw + best], &scores[b]);
        if (st == PAD_OK && patch) memcpy(patch + (size_t)b * hw, d, (size_t)hw * sizeof(float));
        if (st == PAD_OK && maps) {
            nearest_resize(maps + (size_t)b * H * W, H, W, d, h, w);
            st = pad_patchcore_blur(maps + (size_t)b * H * W, H, W, pc->cfg.sigma);
        }
    }
    pad_buf_free(pc->be, dist_dev);
    pad_buf_free(pc->be, idx_dev);
    free(dist);
    free(idx);
    free(feat);
    return st;
}
