/* metrics.c - the CPU reference of metrics.h: image AUROC / AUPR, pixel AUROC / AUPR, official AU-PRO and
 * PromptAD's 200-threshold PRO. Owns the ground-truth context (8-connected labelling, region sizes, hole-filled
 * region pixel lists) and the grouping of the pixels by score that every pixel metric shares.
 *
 * Pixel pipeline (one evaluation): no sort of all pixels. Two parallel passes group the pixels' low key bits by
 * the top 16 key bits (order-preserving keys, metrics_exact.h); the anomalous pixels alone are sorted; one
 * sequential walk over the distinct scores in descending order then accumulates the exact integer counts of
 * AUROC, the double-double AUPR sum, the exact fixed-point PRO curve and trapezoid and PRO-200's background
 * histogram (details above pad_metrics_pixel). */
#include "metrics.h"

#include "jsonutil.h"
#include "log.h"
#include "metrics_exact.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define PRO200_STEPS 200

struct pad_metrics_gt {
    int n, H, W;
    int64_t N;          // n * H * W
    int64_t K;          // regions
    int64_t n_anom;     // pixels in a region
    int64_t n_ok;       // background pixels
    int32_t *label;     // (N) 0 = background, 1..K
    int64_t *area;      // (K + 1) pixels per region; area[0] = n_ok
    pad_u128 *term;     // (K + 1) round(2^84 / area[k]); term[0] = 0
    int64_t *fill_off;  // (K + 2) CSR offsets into fill_idx: region k owns [fill_off[k], fill_off[k+1])
    uint32_t *fill_idx; // pixel indices (global) of each region's hole-filled image, region 0 empty
    uint32_t *anom_idx; // (n_anom) the anomalous pixels in raster order
    uint16_t *ws_slot;  // (N) low key bits grouped by bucket, allocated on the first evaluation
    uint64_t *ws_anom;  // (2 n_anom + 2) anomalous (key, region) items and their sort scratch
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

// ----------------------------------------------------------------------------
// Image level

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

pad_status pad_metrics_image(const float *scores, const uint8_t *labels, int64_t n, pad_image_metrics *out) {
    if (!scores || !labels || !out || n < 1) {
        PAD_LOG_ERROR("image metrics: need at least one score and label (n = %lld)", (long long)n);
        return PAD_ERR_INVALID_ARG;
    }
    out->auroc = out->aupr = NAN;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(scores[i])) {
            PAD_LOG_ERROR("image metrics: score %lld is not finite (%g)", (long long)i, (double)scores[i]);
            return PAD_ERR_INVALID_ARG;
        }
        if (labels[i] > 1) {
            PAD_LOG_ERROR("image metrics: label %lld is %d, expected 0 or 1", (long long)i, (int)labels[i]);
            return PAD_ERR_INVALID_ARG;
        }
    }
    uint64_t *it = malloc((size_t)n * sizeof *it);
    if (!it) {
        PAD_LOG_ERROR("image metrics: out of memory (%lld scores)", (long long)n);
        return PAD_ERR_OOM;
    }
    for (int64_t i = 0; i < n; i++)
        it[i] = ((uint64_t)~pad_mx_key(scores[i]) << 32) | labels[i];
    qsort(it, (size_t)n, sizeof *it, cmp_u64); // descending score
    uint64_t tp = 0, fp = 0, tp_prev = 0, fp_prev = 0, u2 = 0;
    pad_dd ap = {0.0, 0.0};
    for (int64_t i = 0; i < n; i++) {
        if (it[i] & 1u)
            tp++;
        else
            fp++;
        if (i == n - 1 || (it[i + 1] >> 32) != (it[i] >> 32)) {
            u2 += (fp - fp_prev) * (tp + tp_prev);
            if (tp != tp_prev) ap = pad_dd_add_d(ap, pad_mx_ap_term(tp, tp_prev, fp));
            tp_prev = tp;
            fp_prev = fp;
        }
    }
    free(it);
    pad_metrics_image_finish(u2, ap, tp, fp, n, out);
    return PAD_OK;
}

void pad_metrics_image_finish(uint64_t u2, pad_dd ap, uint64_t tp, uint64_t fp, int64_t n, pad_image_metrics *out) {
    out->auroc = out->aupr = NAN;
    if (tp == 0 || fp == 0)
        PAD_LOG_WARN("image metrics: all %lld labels are %d: AUROC is undefined (NaN)", (long long)n, tp ? 1 : 0);
    else
        out->auroc = (double)u2 / (2.0 * (double)tp * (double)fp);
    if (tp == 0)
        PAD_LOG_WARN("image metrics: no anomalous image: AUPR is undefined (NaN)");
    else
        out->aupr = ap.hi / (double)tp;
}

// ----------------------------------------------------------------------------
// Ground truth: 8-connected labelling (two-pass union-find)

static int32_t uf_find(int32_t *parent, int32_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]]; // path halving; parents always point to smaller labels
        x = parent[x];
    }
    return x;
}

// Labels one image: lab (H*W) receives 0 or 1..k in raster order of each component's first pixel; parent is
// scratch of H*W + 1 entries. Returns k.
static int32_t label_image(const uint8_t *m, int H, int W, int32_t *lab, int32_t *parent) {
    int32_t next = 0;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            int64_t p = (int64_t)y * W + x;
            if (!m[p]) {
                lab[p] = 0;
                continue;
            }
            int32_t nb[4];
            int nn = 0;
            if (x > 0) nb[nn++] = lab[p - 1];
            if (y > 0) {
                if (x > 0) nb[nn++] = lab[p - W - 1];
                nb[nn++] = lab[p - W];
                if (x + 1 < W) nb[nn++] = lab[p - W + 1];
            }
            int32_t l = 0;
            for (int j = 0; j < nn; j++) {
                if (!nb[j]) continue;
                int32_t r = uf_find(parent, nb[j]);
                if (!l) {
                    l = r;
                } else if (r != l) {
                    if (r < l) {
                        parent[l] = r;
                        l = r;
                    } else {
                        parent[r] = l;
                    }
                }
            }
            if (!l) {
                l = ++next;
                parent[l] = l;
            }
            lab[p] = l;
        }
    }
    // Roots are the smallest label of their set and were created at the set's first pixel: number them in
    // increasing order. parent[i] < i for non-roots, so parent[parent[i]] is already final.
    int32_t k = 0;
    for (int32_t i = 1; i <= next; i++)
        parent[i] = (parent[i] == i) ? ++k : parent[parent[i]];
    int64_t HW = (int64_t)H * W;
    for (int64_t p = 0; p < HW; p++)
        if (lab[p]) lab[p] = parent[lab[p]];
    return k;
}

// round(2^84 / a) for 1 <= a < 2^32.
static pad_u128 fixed_inverse(uint64_t a) {
    uint64_t num[3] = {(uint64_t)1 << 20, 0, 0}; // 2^84 in base 2^32: 2^20 * (2^32)^2
    uint64_t q[3], r = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t cur = (r << 32) | num[i];
        q[i] = cur / a;
        r = cur % a;
    }
    pad_u128 v = {(q[1] << 32) | q[2], q[0]};
    if (2 * r >= a) v = pad_u128_add(v, (pad_u128){1, 0});
    return v;
}

typedef struct bbox {
    int r0, c0, r1, c1; // inclusive
} bbox;

// Appends the pixels of region `k` of image `img` with holes filled (skimage image_filled: a non-region pixel of
// the bounding box is a hole unless an 8-connected path of non-region pixels links it to the box border) to
// gt->fill_idx. mark (box area) and stack (box area) are scratch. Returns the number of pixels appended, or -1
// when growing fill_idx fails.
static int64_t fill_region(pad_metrics_gt *gt, int64_t *cap, int img, int32_t k, bbox b, uint8_t *mark,
                           int32_t *stack) {
    const int W = gt->W, bw = b.c1 - b.c0 + 1, bh = b.r1 - b.r0 + 1;
    const int32_t *lab = gt->label + (int64_t)img * gt->H * W;
    int64_t top = 0;
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++) {
            int inside = lab[(int64_t)(y + b.r0) * W + x + b.c0] == k;
            mark[y * bw + x] = inside ? 1 : 0;
            if (!inside && (y == 0 || x == 0 || y == bh - 1 || x == bw - 1)) {
                mark[y * bw + x] = 2; // reached from outside the box
                stack[top++] = y * bw + x;
            }
        }
    while (top > 0) {
        int32_t q = stack[--top];
        int y = q / bw, x = q % bw;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int yy = y + dy, xx = x + dx;
                if (yy < 0 || xx < 0 || yy >= bh || xx >= bw) continue;
                if (mark[yy * bw + xx] == 0) {
                    mark[yy * bw + xx] = 2;
                    stack[top++] = yy * bw + xx;
                }
            }
    }
    int64_t base = gt->fill_off[k], cnt = 0;
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++) {
            if (mark[y * bw + x] == 2) continue;
            if (base + cnt >= *cap) {
                int64_t nc = *cap * 2 + 1024;
                uint32_t *p = realloc(gt->fill_idx, (size_t)nc * sizeof *p);
                if (!p) return -1;
                gt->fill_idx = p;
                *cap = nc;
            }
            gt->fill_idx[base + cnt++] = (uint32_t)((int64_t)img * gt->H * W + (int64_t)(y + b.r0) * W + x + b.c0);
        }
    return cnt;
}

pad_status pad_metrics_gt_init(pad_metrics_gt **out, const uint8_t *masks, int n, int H, int W) {
    *out = NULL;
    if (!masks || n < 1 || H < 1 || W < 1) {
        PAD_LOG_ERROR("pixel metrics: bad mask size (%d, %d, %d)", n, H, W);
        return PAD_ERR_INVALID_ARG;
    }
    const int64_t HW = (int64_t)H * W, N = (int64_t)n * HW;
    if (N > (int64_t)UINT32_MAX || HW > INT32_MAX) {
        PAD_LOG_ERROR("pixel metrics: %lld pixels (%d x %d x %d) exceed 2^32 - 1; evaluate fewer or smaller maps",
                      (long long)N, n, H, W);
        return PAD_ERR_INVALID_ARG;
    }
    double t0 = now_ms();
    pad_status st = PAD_ERR_OOM;
    int32_t *kimg = NULL;
    bbox *box = NULL;
    uint8_t *mark = NULL;
    int32_t *stack = NULL;
    pad_metrics_gt *gt = calloc(1, sizeof *gt);
    if (!gt) goto fail;
    gt->n = n;
    gt->H = H;
    gt->W = W;
    gt->N = N;
    gt->label = malloc((size_t)N * sizeof *gt->label);
    kimg = malloc((size_t)n * sizeof *kimg);
    if (!gt->label || !kimg) goto fail;

    int oom = 0;
#pragma omp parallel
    {
        int32_t *parent = malloc((size_t)(HW + 1) * sizeof *parent);
        if (!parent) {
#pragma omp atomic write
            oom = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (int i = 0; i < n; i++)
            if (parent) kimg[i] = label_image(masks + (int64_t)i * HW, H, W, gt->label + (int64_t)i * HW, parent);
        free(parent);
    }
    if (oom) goto fail;

    // global numbering: image i's regions are off_i + 1 .. off_i + k_i
    int64_t K = 0;
    for (int i = 0; i < n; i++) {
        int64_t k = kimg[i];
        kimg[i] = (int32_t)K; // now the offset
        K += k;
    }
    if (K > INT32_MAX - 1) {
        PAD_LOG_ERROR("pixel metrics: %lld ground-truth regions are too many", (long long)K);
        st = PAD_ERR_INVALID_ARG;
        goto fail;
    }
    gt->K = K;
    gt->area = calloc((size_t)(K + 1), sizeof *gt->area);
    gt->term = calloc((size_t)(K + 1), sizeof *gt->term);
    gt->fill_off = calloc((size_t)(K + 2), sizeof *gt->fill_off);
    box = malloc((size_t)(K + 1) * sizeof *box);
    if (!gt->area || !gt->term || !gt->fill_off || !box) goto fail;

#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++) {
        int32_t *lab = gt->label + (int64_t)i * HW;
        int32_t off = kimg[i];
        int32_t kn = (i + 1 < n ? kimg[i + 1] : (int32_t)K) - off;
        for (int32_t k = 1; k <= kn; k++)
            box[off + k] = (bbox){H, W, -1, -1};
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int32_t l = lab[(int64_t)y * W + x];
                if (!l) continue;
                l += off;
                lab[(int64_t)y * W + x] = l;
                gt->area[l]++;
                bbox *b = &box[l];
                if (y < b->r0) b->r0 = y;
                if (y > b->r1) b->r1 = y;
                if (x < b->c0) b->c0 = x;
                if (x > b->c1) b->c1 = x;
            }
    }
    int64_t n_anom = 0;
    for (int64_t k = 1; k <= K; k++) {
        n_anom += gt->area[k];
        gt->term[k] = fixed_inverse((uint64_t)gt->area[k]);
    }
    gt->n_anom = n_anom;
    gt->n_ok = N - n_anom;
    gt->area[0] = gt->n_ok;
    gt->anom_idx = malloc((size_t)(n_anom + 1) * sizeof *gt->anom_idx);
    if (!gt->anom_idx) goto fail;
    for (int64_t p = 0, j = 0; p < N; p++)
        if (gt->label[p]) gt->anom_idx[j++] = (uint32_t)p;

    // hole-filled pixel lists (PRO-200), region by region in order
    int64_t cap = n_anom + 1024;
    gt->fill_idx = malloc((size_t)cap * sizeof *gt->fill_idx);
    mark = malloc((size_t)HW);
    stack = malloc((size_t)HW * sizeof *stack);
    if (!gt->fill_idx || !mark || !stack) goto fail;
    int img = 0;
    for (int64_t k = 1; k <= K; k++) {
        while (img + 1 < n && kimg[img + 1] < k)
            img++;
        int64_t c = fill_region(gt, &cap, img, (int32_t)k, box[k], mark, stack);
        if (c < 0) goto fail;
        gt->fill_off[k + 1] = gt->fill_off[k] + c;
    }
    gt->fill_off[0] = 0;
    gt->fill_off[1] = 0;
    free(kimg);
    free(box);
    free(mark);
    free(stack);
    PAD_LOG_DEBUG("pixel metrics: labelled %d masks %dx%d: %lld regions, %lld anomalous pixels (%.1f ms)", n, H, W,
                  (long long)K, (long long)n_anom, now_ms() - t0);
    *out = gt;
    return PAD_OK;
fail:
    if (st == PAD_ERR_OOM) PAD_LOG_ERROR("pixel metrics: out of memory labelling %d masks %dx%d", n, H, W);
    free(kimg);
    free(box);
    free(mark);
    free(stack);
    pad_metrics_gt_free(gt);
    return st;
}

void pad_metrics_gt_free(pad_metrics_gt *gt) {
    if (!gt) return;
    free(gt->label);
    free(gt->area);
    free(gt->term);
    free(gt->fill_off);
    free(gt->fill_idx);
    free(gt->anom_idx);
    free(gt->ws_slot);
    free(gt->ws_anom);
    free(gt);
}

void pad_metrics_gt_get_info(const pad_metrics_gt *gt, pad_metrics_gt_info *info) {
    info->n = gt->n;
    info->H = gt->H;
    info->W = gt->W;
    info->n_pixels = gt->N;
    info->n_regions = gt->K;
    info->n_anomalous = gt->n_anom;
    info->n_normal = gt->n_ok;
}

const int32_t *pad_metrics_gt_labels(const pad_metrics_gt *gt) {
    return gt->label;
}

// ----------------------------------------------------------------------------
// Internal accessor for cuda/metrics.cu (metrics_exact.h)

const pad_u128 *pad_metrics_gt_terms(const pad_metrics_gt *gt) {
    return gt->term;
}

// ----------------------------------------------------------------------------
// Pixel metrics: counting pixels per distinct score instead of sorting them.
//
// Each pixel's key k = pad_mx_key(score) is reversed, nk = ~k (ascending nk = descending score), and split into a
// bucket (top 16 bits) and a slot (low 16 bits). Pass 1 counts the pixels of each bucket (per thread, contiguous
// chunks) and checks the scores; pass 2 writes each pixel's slot (2 bytes) into its bucket's range. The anomalous
// pixels (gt->anom_idx, usually a few percent) become (nk, region) items sorted by nk. Pass 3 walks the buckets in
// order, counts the pixels per slot (a 65536-entry table for large buckets, a small sort otherwise) and walks the
// distinct keys in order: each is a tie group whose anomalous items give tp and the overlap sum, fp = count - tp.
// Only integer counts cross the passes, so the result does not depend on the chunking (the thread count).

#define BUCKET_BITS 16
#define N_SLOTS     (1 << BUCKET_BITS)
#define TABLE_MIN   4096 // buckets with at least this many pixels are counted with the slot table

// Running state of the walk over the tie groups in descending score order.
typedef struct scan_state {
    const pad_u128 *term; // (K + 1)
    pad_u128 cap;         // K * 2^84: PRO = 1
    int64_t n_ok, K;
    double limit;
    uint64_t tp, fp, u2;
    pad_dd ap;
    pad_u128 P;
    pad_u192 trap;
    int pro_open; // PRO requested and still below the FPR limit
    uint64_t left_fp, right_fp;
    pad_u128 left_P, right_P; // the curve points around the limit (pad_pixel_sums)
    const float *thr;         // PRO-200 thresholds (256, padded with -inf) or NULL
    uint64_t *bg_hist;        // (PRO200_STEPS + 1) background pixels by first predicted threshold
} scan_state;

// Index of the first threshold that `v` exceeds (thr is non-increasing, padded with -inf up to 256 entries):
// the number of thresholds with v <= thr[s]; PRO200_STEPS when v exceeds none.
static inline int first_step(const float *thr, float v) {
    int s = 0;
    for (int step = 128; step > 0; step >>= 1)
        s += (v <= thr[s + step - 1]) ? step : 0;
    return s;
}

// The score of a key (inverse of pad_mx_key; -0.0 comes back as +0.0).
static float key_score(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// One tie group of reversed key nk: fp_g background and tp_g anomalous pixels whose overlap increments sum to dP.
static void scan_group(scan_state *st, uint32_t nk, uint64_t fp_g, uint64_t tp_g, pad_u128 dP) {
    const uint64_t fp0 = st->fp, tp0 = st->tp, fp = fp0 + fp_g, tp = tp0 + tp_g;
    const pad_u128 P0 = st->P, P = pad_u128_add(P0, dP);
    st->u2 += fp_g * (tp + tp0);
    if (tp_g) st->ap = pad_dd_add_d(st->ap, pad_mx_ap_term(tp, tp0, fp));
    if (st->pro_open) {
        if (pad_mx_fpr(fp, st->n_ok) <= st->limit) {
            if (fp_g)
                st->trap = pad_u192_add(
                    st->trap, pad_u192_sum_mul(pad_mx_clip(P0, st->cap), pad_mx_clip(P, st->cap), (uint32_t)fp_g));
            st->left_fp = fp;
            st->left_P = P;
        } else {
            st->right_fp = fp;
            st->right_P = P;
            st->pro_open = 0;
        }
    }
    if (st->thr && fp_g) st->bg_hist[first_step(st->thr, key_score(~nk))] += fp_g;
    st->fp = fp;
    st->tp = tp;
    st->P = P;
}

// Sorts a[0..n) ascending by bits 32..63 (LSD, 8-bit digits, trivial passes skipped) using b as scratch; returns
// the buffer that holds the result.
static uint64_t *sort_hi32(uint64_t *a, uint64_t *b, int64_t n) {
    size_t h[4][256];
    memset(h, 0, sizeof h);
    for (int64_t i = 0; i < n; i++)
        for (int p = 0; p < 4; p++)
            h[p][(a[i] >> (32 + 8 * p)) & 255]++;
    uint64_t *src = a, *dst = b;
    for (int p = 0; p < 4; p++) {
        size_t off[256], run = 0;
        int trivial = 0;
        for (int d = 0; d < 256; d++) {
            off[d] = run;
            run += h[p][d];
            if (h[p][d] == (size_t)n) trivial = 1;
        }
        if (trivial) continue;
        const int shift = 32 + 8 * p;
        for (int64_t i = 0; i < n; i++) {
            uint64_t v = src[i];
            dst[off[(v >> shift) & 255]++] = v;
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

// Sorts n < TABLE_MIN slots ascending into out (tmp is scratch).
static void sort_slots(const uint16_t *in, uint16_t *out, uint16_t *tmp, int n) {
    if (n < 48) {
        for (int i = 0; i < n; i++) {
            uint16_t v = in[i];
            int j = i - 1;
            while (j >= 0 && out[j] > v) {
                out[j + 1] = out[j];
                j--;
            }
            out[j + 1] = v;
        }
        return;
    }
    int lo[256], hi[256];
    memset(lo, 0, sizeof lo);
    memset(hi, 0, sizeof hi);
    for (int i = 0; i < n; i++) {
        lo[in[i] & 255]++;
        hi[in[i] >> 8]++;
    }
    for (int d = 0, rl = 0, rh = 0; d < 256; d++) {
        int cl = lo[d], ch = hi[d];
        lo[d] = rl;
        hi[d] = rh;
        rl += cl;
        rh += ch;
    }
    for (int i = 0; i < n; i++)
        tmp[lo[in[i] & 255]++] = in[i];
    for (int i = 0; i < n; i++)
        out[hi[tmp[i] >> 8]++] = tmp[i];
}

// PRO-200 from the background histogram of the walk and the hole-filled regions.
static double pro_200(const pad_metrics_gt *gt, const float *maps, const float *thr, const uint64_t *bg,
                      double fpr_limit) {
    double pro_sum[PRO200_STEPS];
    memset(pro_sum, 0, sizeof pro_sum);
    for (int64_t k = 1; k <= gt->K; k++) {
        uint64_t h[PRO200_STEPS + 1];
        memset(h, 0, sizeof h);
        for (int64_t j = gt->fill_off[k]; j < gt->fill_off[k + 1]; j++)
            h[first_step(thr, maps[gt->fill_idx[j]])]++;
        uint64_t c = 0;
        for (int s = 0; s < PRO200_STEPS; s++) {
            c += h[s];
            pro_sum[s] += (double)c / (double)gt->area[k];
        }
    }
    // points s = 0.. with FPR <= limit (a prefix: the FPR grows with s)
    double fpr[PRO200_STEPS], pro[PRO200_STEPS];
    int m = 0;
    uint64_t c = 0;
    for (int s = 0; s < PRO200_STEPS; s++) {
        c += bg[s];
        double x = (double)c / (double)gt->n_ok;
        if (!(x <= fpr_limit)) break;
        fpr[m] = x;
        pro[m] = pro_sum[s] / (double)gt->K;
        m++;
    }
    if (m < 2 || fpr[m - 1] == fpr[0]) {
        PAD_LOG_WARN("pixel metrics: PRO-200 keeps %d threshold%s with FPR <= %g%s: undefined (NaN)", m,
                     m == 1 ? "" : "s", fpr_limit, m >= 2 ? ", all at the same FPR" : "");
        return NAN;
    }
    const double lo = fpr[0], span = fpr[m - 1] - fpr[0];
    double area = 0.0;
    for (int i = 0; i + 1 < m; i++) {
        double x0 = (fpr[i] - lo) / span, x1 = (fpr[i + 1] - lo) / span;
        area += (x1 - x0) * (pro[i] + pro[i + 1]) / 2.0;
    }
    return area;
}

pad_status pad_metrics_pixel(pad_metrics_gt *gt, const float *maps, double fpr_limit, unsigned which,
                             pad_pixel_metrics *out) {
    if (!gt || !maps || !out) {
        PAD_LOG_ERROR("pixel metrics: NULL argument");
        return PAD_ERR_INVALID_ARG;
    }
    out->auroc = out->aupr = out->pro = out->pro_200 = NAN;
    if (!(fpr_limit > 0.0 && fpr_limit <= 1.0)) {
        PAD_LOG_ERROR("pixel metrics: FPR limit %g is not in (0, 1]", fpr_limit);
        return PAD_ERR_INVALID_ARG;
    }
    const int64_t N = gt->N, HW = (int64_t)gt->H * gt->W, nA = gt->n_anom;
    if (!gt->ws_slot) {
        gt->ws_slot = malloc((size_t)N * sizeof *gt->ws_slot);
        gt->ws_anom = malloc((size_t)(2 * nA + 2) * sizeof *gt->ws_anom);
        if (!gt->ws_slot || !gt->ws_anom) {
            free(gt->ws_slot);
            free(gt->ws_anom);
            gt->ws_slot = NULL;
            gt->ws_anom = NULL;
            PAD_LOG_ERROR("pixel metrics: out of memory for the workspace (%lld pixels)", (long long)N);
            return PAD_ERR_OOM;
        }
    }
    int maxt = 1;
#ifdef _OPENMP
    maxt = omp_get_max_threads();
#endif
    // per-thread bucket counts, turned into offsets ordered (bucket, thread); then each bucket's end; then the
    // slot table of pass 3 (kept zero between buckets)
    uint32_t *cnt = calloc(((size_t)maxt + 2) * N_SLOTS, sizeof *cnt);
    if (!cnt) {
        PAD_LOG_ERROR("pixel metrics: out of memory");
        return PAD_ERR_OOM;
    }
    uint32_t *bucket_end = cnt + (size_t)maxt * N_SLOTS, *table = bucket_end + N_SLOTS;
    uint16_t *slots = gt->ws_slot;
    double t0 = now_ms();
    int64_t bad = -1;
    float mx = -INFINITY, mn = INFINITY;
#pragma omp parallel num_threads(maxt) reduction(max : bad, mx) reduction(min : mn)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        const int64_t lo = N * t / nt, hi = N * (t + 1) / nt;
        uint32_t *h = cnt + (size_t)t * N_SLOTS;
        for (int64_t i = lo; i < hi; i++) {
            float v = maps[i];
            if (!isfinite(v)) {
                bad = i > bad ? i : bad;
                v = 0.0f;
            }
            mx = v > mx ? v : mx;
            mn = v < mn ? v : mn;
            h[~pad_mx_key(v) >> BUCKET_BITS]++;
        }
#pragma omp barrier
#pragma omp single
        {
            uint32_t run = 0;
            for (int d = 0; d < N_SLOTS; d++) {
                for (int u = 0; u < nt; u++) {
                    uint32_t c = cnt[(size_t)u * N_SLOTS + d];
                    cnt[(size_t)u * N_SLOTS + d] = run;
                    run += c;
                }
                bucket_end[d] = run;
            }
        }
        for (int64_t i = lo; i < hi; i++) {
            float v = maps[i];
            uint32_t nk = ~pad_mx_key(isfinite(v) ? v : 0.0f);
            slots[h[nk >> BUCKET_BITS]++] = (uint16_t)nk;
        }
    }
    if (bad >= 0) {
        free(cnt);
        PAD_LOG_ERROR("pixel metrics: map %lld pixel (%lld, %lld) is not finite (%g)", (long long)(bad / HW),
                      (long long)(bad % HW / gt->W), (long long)(bad % gt->W), (double)maps[bad]);
        return PAD_ERR_INVALID_ARG;
    }
    // the anomalous pixels as (nk, region), ascending nk
    uint64_t *A = gt->ws_anom;
    for (int64_t j = 0; j < nA; j++) {
        uint32_t p = gt->anom_idx[j];
        A[j] = ((uint64_t)~pad_mx_key(maps[p]) << 32) | (uint32_t)gt->label[p];
    }
    A = sort_hi32(A, gt->ws_anom + nA, nA);
    double t1 = now_ms();

    // PRO-200 thresholds (NumPy 1.x: (max - min) is float32, / 200 promotes to float64, max - step * delta is
    // float64 and the comparison with the float32 maps rounds it to float32)
    const int do_pro200 = (which & PAD_METRICS_PRO_200) && gt->K > 0 && gt->n_ok > 0;
    float thr[256];
    uint64_t bg_hist[PRO200_STEPS + 1];
    memset(bg_hist, 0, sizeof bg_hist);
    if (do_pro200) {
        const float range = mx - mn;
        const double delta = (double)range / (double)PRO200_STEPS;
        for (int s = 0; s < 256; s++)
            thr[s] = s < PRO200_STEPS ? (float)((double)mx - (double)s * delta) : -INFINITY;
    }

    // Pass 3: the buckets in order (descending score), the distinct keys of each in order.
    scan_state st;
    memset(&st, 0, sizeof st);
    st.term = gt->term;
    st.cap = (pad_u128){0, (uint64_t)gt->K << 20}; // K * 2^84 (K < 2^31)
    st.n_ok = gt->n_ok;
    st.K = gt->K;
    st.limit = fpr_limit;
    st.pro_open = (which & PAD_METRICS_PRO) && gt->K > 0 && gt->n_ok > 0;
    st.right_fp = (uint64_t)gt->n_ok; // (1, 1)
    st.right_P = st.cap;
    st.thr = do_pro200 ? thr : NULL;
    st.bg_hist = bg_hist;
    const int do_pro = st.pro_open;
    uint16_t sorted[TABLE_MIN], tmp[TABLE_MIN];
    int64_t pa = 0; // next anomalous item
    uint32_t start = 0;
    for (uint32_t b = 0; b < N_SLOTS; b++) {
        const uint32_t end = bucket_end[b], n_b = end - start;
        if (!n_b) continue;
        const uint16_t *sl = slots + start;
        start = end;
        if (n_b >= TABLE_MIN) {
            for (uint32_t i = 0; i < n_b; i++)
                table[sl[i]]++;
        } else {
            sort_slots(sl, sorted, tmp, (int)n_b);
        }
        uint32_t i = 0, slot = 0;
        for (;;) {
            uint64_t c;
            if (n_b >= TABLE_MIN) { // next used slot of the table (reset to zero on the way)
                while (slot < N_SLOTS && !table[slot])
                    slot++;
                if (slot == N_SLOTS) break;
                c = table[slot];
                table[slot] = 0;
            } else { // next run of the sorted slots
                if (i == n_b) break;
                slot = sorted[i];
                uint32_t j = i + 1;
                while (j < n_b && sorted[j] == slot)
                    j++;
                c = j - i;
                i = j;
            }
            const uint32_t nk = (b << BUCKET_BITS) | slot;
            uint64_t tp_g = 0;
            pad_u128 dP = {0, 0};
            for (; pa < nA && (uint32_t)(A[pa] >> 32) == nk; pa++) {
                tp_g++;
                dP = pad_u128_add(dP, gt->term[(uint32_t)A[pa]]);
            }
            scan_group(&st, nk, c - tp_g, tp_g, dP);
            slot++;
        }
    }
    free(cnt);
    PAD_ASSERT(pa == nA && st.tp == (uint64_t)gt->n_anom && st.fp == (uint64_t)gt->n_ok);
    double t2 = now_ms();
    const pad_pixel_sums sums = {st.u2, st.ap, st.trap, st.left_fp, st.left_P, st.right_fp, st.right_P};
    pad_metrics_pixel_finish(&sums, gt->n_anom, gt->n_ok, gt->K, fpr_limit, which, out);
    if (which & PAD_METRICS_PRO_200) {
        if (!do_pro200)
            PAD_LOG_WARN("pixel metrics: %s: PRO-200 is undefined (NaN)",
                         gt->K == 0 ? "no ground-truth region" : "no normal pixel");
        else
            out->pro_200 = pro_200(gt, maps, thr, bg_hist, fpr_limit);
    }
    PAD_LOG_DEBUG("pixel metrics: %lld pixels: bucket passes %.1f ms, walk (AUROC, AUPR%s%s) %.1f ms, PRO-200 "
                  "regions %.1f ms",
                  (long long)N, t1 - t0, do_pro ? ", PRO" : "", do_pro200 ? ", PRO-200 background" : "", t2 - t1,
                  now_ms() - t2);
    return PAD_OK;
}

void pad_metrics_pixel_finish(const pad_pixel_sums *s, int64_t n_anom, int64_t n_ok, int64_t K, double fpr_limit,
                              unsigned which, pad_pixel_metrics *out) {
    if (n_anom == 0 || n_ok == 0)
        PAD_LOG_WARN("pixel metrics: %s: pixel AUROC is undefined (NaN)",
                     n_anom ? "no normal pixel" : "no anomalous pixel");
    else
        out->auroc = (double)s->u2 / (2.0 * (double)n_anom * (double)n_ok);
    if (n_anom == 0)
        PAD_LOG_WARN("pixel metrics: no anomalous pixel: pixel AUPR is undefined (NaN)");
    else
        out->aupr = s->ap.hi / (double)n_anom;
    if (which & PAD_METRICS_PRO) {
        if (K == 0 || n_ok == 0)
            PAD_LOG_WARN("pixel metrics: %s: PRO is undefined (NaN)",
                         K == 0 ? "no ground-truth region" : "no normal pixel");
        else
            out->pro = pad_mx_pro_finish(s->trap, n_ok, K, pad_mx_fpr(s->left_fp, n_ok), pad_mx_pro_y(s->left_P, K),
                                         pad_mx_fpr(s->right_fp, n_ok), pad_mx_pro_y(s->right_P, K), fpr_limit);
    }
}

// ----------------------------------------------------------------------------
// JSON

pad_status pad_metrics_write_json(const char *path, const pad_image_metrics *img, const pad_pixel_metrics *pix) {
    pad_status st = PAD_ERR_OOM;
    cJSON *o = cJSON_CreateObject();
    if (!o || !pad_json_add_num(o, "image_auroc", img->auroc) || !pad_json_add_num(o, "image_aupr", img->aupr))
        goto done;
    if (pix && (!pad_json_add_num(o, "pixel_auroc", pix->auroc) || !pad_json_add_num(o, "pixel_aupr", pix->aupr) ||
                !pad_json_add_num(o, "pixel_pro", pix->pro) || !pad_json_add_num(o, "pixel_pro_200", pix->pro_200)))
        goto done;
    st = pad_json_write_file(path, o);
done:
    if (st == PAD_ERR_OOM) PAD_LOG_ERROR("%s: out of memory writing the metrics", path);
    cJSON_Delete(o);
    return st;
}

// ----------------------------------------------------------------------------
// CPU-only build: the GPU entry points exist and say why they cannot work.

#ifndef PAD_HAVE_CUDA
static pad_status no_cuda(void) {
    PAD_LOG_ERROR("GPU metrics: this build of promptad has no CUDA support (rebuild with -DPROMPTAD_CUDA=ON)");
    return PAD_ERR_UNSUPPORTED;
}

pad_status pad_metrics_gpu_init(pad_metrics_gpu **out, const pad_metrics_gt *gt, pad_backend *be) {
    (void)gt;
    (void)be;
    if (out) *out = NULL;
    return no_cuda();
}

void pad_metrics_gpu_free(pad_metrics_gpu *g) {
    (void)g;
}

pad_status pad_metrics_gpu_pixel(pad_metrics_gpu *g, const float *maps_dev, double fpr_limit, unsigned which,
                                 pad_pixel_metrics *out) {
    (void)g;
    (void)maps_dev;
    (void)fpr_limit;
    (void)which;
    (void)out;
    return no_cuda();
}

pad_status pad_metrics_gpu_pixel_host(pad_metrics_gpu *g, const float *maps_host, double fpr_limit, unsigned which,
                                      pad_pixel_metrics *out) {
    (void)g;
    (void)maps_host;
    (void)fpr_limit;
    (void)which;
    (void)out;
    return no_cuda();
}

pad_status pad_metrics_gpu_image(pad_metrics_gpu *g, const float *scores_dev, const uint8_t *labels, int64_t n,
                                 pad_image_metrics *out) {
    (void)g;
    (void)scores_dev;
    (void)labels;
    (void)n;
    (void)out;
    return no_cuda();
}

pad_status pad_metrics_gpu_pixel_batch(pad_metrics_gpu *g, const float *const *maps_dev, int n_units, double fpr_limit,
                                       unsigned which, pad_pixel_metrics *out) {
    (void)g;
    (void)maps_dev;
    (void)n_units;
    (void)fpr_limit;
    (void)which;
    (void)out;
    return no_cuda();
}

pad_status pad_metrics_gpu_image_batch(pad_metrics_gpu *g, const float *const *scores_dev, const uint8_t *labels,
                                       int64_t n, int n_units, pad_image_metrics *out) {
    (void)g;
    (void)scores_dev;
    (void)labels;
    (void)n;
    (void)n_units;
    (void)out;
    return no_cuda();
}

void pad_metrics_gpu_set_batch_budget(pad_metrics_gpu *g, size_t bytes) {
    (void)g;
    (void)bytes;
}

size_t pad_metrics_gpu_batch_bytes(const pad_metrics_gpu *g, int n_units) {
    (void)g;
    (void)n_units;
    return 0;
}
#endif

// ----------------------------------------------------------------------------
// Threshold (the max-F1 operating point of image scores; the run and predict report it)

typedef struct thr_item {
    float s;
    uint8_t l;
} thr_item;

static int thr_cmp_desc(const void *a, const void *b) {
    float x = ((const thr_item *)a)->s, y = ((const thr_item *)b)->s;
    return (x < y) - (x > y);
}

void pad_threshold_max_f1(const float *scores, const uint8_t *labels, int n, double *thr, double *f1, double *precision,
                          double *recall) {
    *thr = *f1 = *precision = *recall = NAN;
    if (n <= 0) return;
    thr_item *v = malloc((size_t)n * sizeof *v);
    if (!v) return;
    int P = 0;
    float mx = scores[0], mn = scores[0];
    for (int i = 0; i < n; i++) {
        v[i].s = scores[i];
        v[i].l = labels[i] ? 1 : 0;
        P += v[i].l;
        mx = scores[i] > mx ? scores[i] : mx;
        mn = scores[i] < mn ? scores[i] : mn;
    }
    if (P == 0) {
        *thr = nextafter((double)mx, INFINITY);
        free(v);
        return;
    }
    qsort(v, (size_t)n, sizeof *v, thr_cmp_desc);
    int tp = 0, fp = 0;
    double best = -1;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].s == v[i].s) {
            tp += v[j].l;
            fp += 1 - v[j].l;
            j++;
        }
        double f = 2.0 * tp / (2.0 * tp + fp + (P - tp));
        if (f > best) {
            best = f;
            *thr = v[i].s;
            *f1 = f;
            *precision = (double)tp / (tp + fp);
            *recall = (double)tp / P;
        }
        i = j;
    }
    (void)mn;
    free(v);
}
