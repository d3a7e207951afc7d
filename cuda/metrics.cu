/* metrics.cu - the GPU twin of eval/metrics.c's pixel metrics (pad_metrics_gpu_*, declared in eval/metrics.h):
 * pooled pixel AUROC, AUPR and the official AU-PRO of device-resident maps against ground truth labelled once on
 * the CPU (pad_metrics_gt) and uploaded, for one unit's maps or for a batch of units' maps at once (issue 11), and
 * the batched image AUROC / AUPR.
 *
 * Pixel pipeline for U units of N pixels each (U = 1 for pad_metrics_gpu_pixel; a chunk of a batch otherwise), all
 * on the context's stream, element i = u * N + p:
 *   1. keys_kernel: key = ~pad_mx_key(score) (order-preserving, -0 == +0, reversed so that ascending keys are
 *      descending scores), for U > 1 with the unit in the high 32 bits ((u << 32) | ~key), and the first non-finite
 *      pixel of each unit; for U > 1 also the region labels, repeated per unit;
 *   2. ONE cub::DeviceRadixSort::SortPairs over all U * N (key, region) pairs (32 + ceil(log2 U) key bits): each
 *      unit's pixels come out contiguous (segment u is [u N, (u + 1) N)) in descending score. One device-wide
 *      radix sort of composite keys rather than cub::DeviceSegmentedRadixSort: the segmented sorts give each
 *      segment one thread block, too few for a handful of segments of millions of pixels;
 *   3. acc_kernel: per element (is_background, fixed-point overlap increment of its region) and the tie-group end
 *      flag (key differs from the next; a unit's last element always ends a group since the unit bits differ);
 *      cub::DeviceScan::InclusiveScan of the former in place (exact integer sums, modulo 2^64 / 2^128),
 *      InclusiveSum of the flags; ends_kernel: ends[g] = index of the last element of tie group g. Unit u's
 *      cumulative counts are the scan minus its value at u N - 1 (exact modular subtraction), its groups the range
 *      of g between the flag sums at u N - 1 and (u + 1) N - 1;
 *   4. curve_kernel (grid: blocks x units) + curve_final_kernel (one block per unit): per group the AUROC count
 *      fp_g * (tp_before + tp_after) (uint64), the AUPR term (double-double) and the exact trapezoid term below the
 *      FPR limit (u192), reduced in a fixed tree that depends only on the unit's group count G (nb = ceil(G / 256)
 *      blocks, at most 1024; blocks beyond a unit's nb leave at once), so a unit's sums are the same bits whatever
 *      the other units of its chunk; the final kernel also records the two curve points around the FPR limit;
 *   5. the host reads one small record per unit and finishes with pad_metrics_pixel_finish, the function the CPU
 *      path uses.
 * Every quantity is an exact integer except the AUPR sum, a double-double whose rounding to double may differ from
 * the CPU's sequential sum in the last bit in rare cases (never between the single and the batched GPU path: same
 * terms, same tree). The arithmetic shared with the CPU lives in eval/metrics_exact.h (device code uses _rn
 * intrinsics: no FMA contraction). PRO-200 is CPU only.
 *
 * Batched image metrics: (u, ~key) composite keys with the labels as values, one radix sort, then one thread per
 * unit walks its sorted scores in the order of pad_metrics_image's loop (same tie groups, same double-double
 * additions), so the results equal the CPU's bit for bit.
 *
 * Memory (docs/metrics.md#batches): the single-unit workspace, allocated by pad_metrics_gpu_init, 48 bytes per pixel
 * plus CUB's temporary storage (about 8 more); the batch workspace, allocated on the first chunk of more than one
 * unit and kept, 56 bytes per pixel and unit plus CUB's (about 12 more), the units chunked to the budget. */
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda_runtime.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
}
#include "metrics_exact.h"

#define MT_THREADS        256
#define MT_MAX_BLOCKS     1024
#define MT_NONE           0xffffffffu
#define MT_MAX_CHUNK      64 // units per launch: their map pointers travel as a kernel argument
#define MT_DEFAULT_BUDGET ((size_t)4 << 30)

// Per-pixel increments and their inclusive scan: background count and fixed-point overlap (a u128 as lo, hi).
struct mt_acc {
    uint64_t fp, lo, hi;
};

struct mt_acc_add {
    __host__ __device__ mt_acc operator()(const mt_acc &a, const mt_acc &b) const {
        mt_acc r;
        r.fp = a.fp + b.fp;
        r.lo = a.lo + b.lo;
        r.hi = a.hi + b.hi + (r.lo < a.lo ? 1u : 0u);
        return r;
    }
};

// Partial sums of the curve.
struct mt_curve {
    uint64_t u2;
    pad_dd ap;
    pad_u192 trap;
};

// What the device reports per unit: the curve sums, the points around the FPR limit (cumulative false positives
// and overlap), the number of tie groups and the first non-finite pixel (MT_NONE: none).
struct mt_unit {
    mt_curve tot;
    uint64_t left_fp, right_fp;
    pad_u128 left_P, right_P;
    uint32_t G, bad;
};

// Per unit of the batched image metrics: the counts and the AUPR sum of pad_metrics_image's walk.
struct mt_img {
    uint64_t u2, tp, fp;
    pad_dd ap;
    uint32_t bad;
};

// The maps (or scores) of the units of one launch.
struct mt_ptrs {
    const float *p[MT_MAX_CHUNK];
};

__device__ __forceinline__ mt_curve curve_zero() {
    mt_curve c;
    c.u2 = 0;
    c.ap.hi = 0.0;
    c.ap.lo = 0.0;
    c.trap.w[0] = c.trap.w[1] = c.trap.w[2] = 0;
    return c;
}

__device__ __forceinline__ mt_curve curve_add(const mt_curve &a, const mt_curve &b) {
    mt_curve c;
    c.u2 = a.u2 + b.u2;
    c.ap = pad_dd_add(a.ap, b.ap);
    c.trap = pad_u192_add(a.trap, b.trap);
    return c;
}

// The device buffers of the pixel pipeline for `units` units of N pixels.
struct mt_ws {
    int units;          // capacity in units
    size_t key_bytes;   // 4 (one unit: 32-bit keys) or 8 (composite keys)
    void *keys;         // (units N) keys, then the tie-group end flags (uint32)
    void *keys_s;       // (units N) sorted keys
    int32_t *lab_rep;   // (units N) the region labels repeated per unit; NULL for one unit (the labels themselves)
    int32_t *lab_s;     // (units N) regions in sorted order
    mt_acc *acc;        // (units N) per-pixel increments, then their inclusive scan (in place)
    uint32_t *gid;      // (units N) inclusive scan of the end flags
    uint32_t *ends;     // (units N) last element of each tie group
    mt_curve *partials; // (units * MT_MAX_BLOCKS) block sums
    mt_unit *res;       // (units) the per-unit records
    uint32_t *scalars;  // (2 units) first non-finite pixel of each unit, then the group crossing the FPR limit
    void *temp;         // CUB temporary storage
    size_t temp_bytes;
};

struct pad_metrics_gpu {
    int device;
    cudaStream_t stream;
    bool poisoned;
    int N;                   // pixels (< 2^31)
    int64_t K, n_ok, n_anom; // regions, background and anomalous pixels
    int H, W;
    int32_t *label; // (N) region of each pixel, uploaded once
    pad_u128 *term; // (K + 1) fixed-point overlap increments
    mt_ws one;      // the single-unit workspace (init)
    mt_ws many;     // the batch workspace (first batch chunk of more than one unit)
    size_t budget;  // for the batch workspace
    float *maps;    // (N) host maps copied here by pad_metrics_gpu_pixel_host, on first use
};

#define MT_TRY(g, expr)                                                                                                \
    do {                                                                                                               \
        cudaError_t err_ = (expr);                                                                                     \
        if (err_ != cudaSuccess) {                                                                                     \
            PAD_LOG_ERROR("%s:%d: %s failed: %s", __FILE__, __LINE__, #expr, cudaGetErrorString(err_));                \
            (g)->poisoned = true;                                                                                      \
            return PAD_ERR_CUDA;                                                                                       \
        }                                                                                                              \
    } while (0)

static int grid_for(int64_t n) {
    int64_t b = (n + MT_THREADS - 1) / MT_THREADS;
    return (int)(b < 1 ? 1 : b > 8192 ? 8192 : b);
}

// Blocks of the curve reduction of a unit with G tie groups (host and device).
static __host__ __device__ __forceinline__ int curve_blocks(int64_t G) {
    int64_t nb = (G + MT_THREADS - 1) / MT_THREADS;
    return (int)(nb < 1 ? 1 : nb > MT_MAX_BLOCKS ? MT_MAX_BLOCKS : nb);
}

// Key bits above the 32 of the score that number `units` units: ceil(log2 units).
static int unit_bits(int units) {
    int b = 0;
    while ((1 << b) < units)
        b++;
    return b;
}

// ----------------------------------------------------------------------------
// Kernels

__device__ __forceinline__ void make_key(uint32_t *k, uint32_t u, float v) {
    (void)u; // one unit per launch with 32-bit keys
    *k = ~pad_mx_key(v);
}

__device__ __forceinline__ void make_key(uint64_t *k, uint32_t u, float v) {
    *k = ((uint64_t)u << 32) | ~pad_mx_key(v);
}

// grid.y = unit. Keys of unit u's n values at keys[u n ..]; val (n) repeated per unit into val_rep when not NULL;
// bad[u] = the first non-finite index (MT_NONE before).
template <typename KeyT, typename ValT>
__global__ void keys_kernel(mt_ptrs src, int n, KeyT *keys, const ValT *val, ValT *val_rep, uint32_t *bad) {
    const int u = blockIdx.y;
    const float *s = src.p[u];
    const int64_t off = (int64_t)u * n;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = s[i];
        if (!isfinite(v)) {
            atomicMin(bad + u, (uint32_t)i);
            v = 0.0f;
        }
        make_key(keys + off + i, (uint32_t)u, v);
        if (val_rep) val_rep[off + i] = val[i];
    }
}

template <typename KeyT>
__global__ void acc_kernel(const int32_t *lab_s, const KeyT *keys_s, const pad_u128 *term, mt_acc *acc, uint32_t *flags,
                           int64_t total) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int32_t r = lab_s[i];
        const pad_u128 t = term[r];
        mt_acc a;
        a.fp = r == 0 ? 1u : 0u;
        a.lo = t.lo;
        a.hi = t.hi;
        acc[i] = a;
        flags[i] = (i == total - 1 || keys_s[i] != keys_s[i + 1]) ? 1u : 0u;
    }
}

__global__ void ends_kernel(const uint32_t *flags, const uint32_t *gid, uint32_t *ends, int64_t total) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        if (flags[i]) ends[gid[i] - 1] = (uint32_t)i;
}

// One unit's view of the scanned arrays: its elements start at `off`, its groups at ends + g0, and its cumulative
// counts are the scan minus `base` (the scan's value before the unit).
struct mt_seg {
    const mt_acc *acc_s;
    const uint32_t *ends;
    int64_t off;
    mt_acc base;
    int G;
};

__device__ __forceinline__ mt_seg unit_seg(const mt_acc *acc_s, const uint32_t *gid, const uint32_t *ends, int u,
                                           int n) {
    mt_seg s;
    s.acc_s = acc_s;
    s.off = (int64_t)u * n;
    const uint32_t g0 = u ? gid[s.off - 1] : 0u;
    s.ends = ends + g0;
    s.G = (int)(gid[s.off + n - 1] - g0);
    if (u) {
        s.base = acc_s[s.off - 1];
    } else {
        s.base.fp = s.base.lo = s.base.hi = 0;
    }
    return s;
}

// Cumulative (fp, tp, P) of the unit after its tie group g (g = -1: nothing yet).
__device__ __forceinline__ void group_point(const mt_seg &s, int g, uint64_t *fp, uint64_t *tp, pad_u128 *P) {
    if (g < 0) {
        *fp = *tp = 0;
        P->lo = P->hi = 0;
        return;
    }
    const uint32_t e = s.ends[g];
    const mt_acc a = s.acc_s[e];
    *fp = a.fp - s.base.fp;
    *tp = (uint64_t)((int64_t)e - s.off) + 1 - *fp;
    pad_u128 v = {a.lo, a.hi}, b = {s.base.lo, s.base.hi};
    *P = pad_u128_sub(v, b);
}

// Block-reduces one mt_curve per thread (blockDim.x == MT_THREADS, a power of two) in a fixed order.
__device__ __forceinline__ mt_curve block_reduce(mt_curve v, mt_curve *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = MT_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = curve_add(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    return sh[0];
}

// grid (blocks, units): unit blockIdx.y's groups over its first curve_blocks(G) blocks, block sums to partials.
__global__ void curve_kernel(const mt_acc *acc_s, const uint32_t *gid, const uint32_t *ends, int n, int64_t n_ok,
                             int64_t K, pad_u128 cap, double limit, int do_pro, mt_curve *partials, uint32_t *cross) {
    __shared__ mt_curve sh[MT_THREADS];
    const int u = blockIdx.y;
    const mt_seg s = unit_seg(acc_s, gid, ends, u, n);
    const int nb = curve_blocks(s.G);
    if ((int)blockIdx.x >= nb) return; // the whole block
    mt_curve a = curve_zero();
    for (int64_t gg = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; gg < s.G; gg += (int64_t)nb * blockDim.x) {
        const int g = (int)gg;
        uint64_t fp, tp, fp0, tp0;
        pad_u128 P, P0;
        group_point(s, g, &fp, &tp, &P);
        group_point(s, g - 1, &fp0, &tp0, &P0);
        a.u2 += (fp - fp0) * (tp + tp0);
        if (tp != tp0) a.ap = pad_dd_add_d(a.ap, pad_mx_ap_term(tp, tp0, fp));
        if (do_pro) {
            if (pad_mx_fpr(fp, n_ok) <= limit) {
                if (fp != fp0)
                    a.trap = pad_u192_add(
                        a.trap, pad_u192_sum_mul(pad_mx_clip(P0, cap), pad_mx_clip(P, cap), (uint32_t)(fp - fp0)));
            } else if (pad_mx_fpr(fp0, n_ok) <= limit) {
                cross[u] = (uint32_t)g; // the FPR grows with g: exactly one group crosses the limit
            }
        }
    }
    mt_curve t = block_reduce(a, sh);
    if (threadIdx.x == 0) partials[(size_t)u * MT_MAX_BLOCKS + blockIdx.x] = t;
}

// One block per unit: the unit's block sums in order, then its record (the points around the FPR limit: the last
// point with FPR <= limit, (0, 0) when none, and the first above it, (n_ok, cap) = (1, 1) when none).
__global__ void curve_final_kernel(const mt_curve *partials, const mt_acc *acc_s, const uint32_t *gid,
                                   const uint32_t *ends, int n, int units, int64_t n_ok, pad_u128 cap, int do_pro,
                                   const uint32_t *scalars, mt_unit *res) {
    __shared__ mt_curve sh[MT_THREADS];
    const int u = blockIdx.x;
    const mt_seg s = unit_seg(acc_s, gid, ends, u, n);
    const int nb = curve_blocks(s.G);
    mt_curve a = curve_zero();
    for (int i = threadIdx.x; i < nb; i += blockDim.x)
        a = curve_add(a, partials[(size_t)u * MT_MAX_BLOCKS + i]);
    mt_curve t = block_reduce(a, sh);
    if (threadIdx.x != 0) return;
    mt_unit r;
    r.tot = t;
    r.G = (uint32_t)s.G;
    r.bad = scalars[u];
    r.left_fp = 0;
    r.left_P.lo = r.left_P.hi = 0;
    r.right_fp = (uint64_t)n_ok;
    r.right_P = cap;
    if (do_pro) {
        const uint32_t cross = scalars[units + u];
        uint64_t tp;
        if (cross == MT_NONE) { // every point is below the limit (limit 1): the last one is the left point
            group_point(s, s.G - 1, &r.left_fp, &tp, &r.left_P);
        } else {
            if (cross > 0) group_point(s, (int)cross - 1, &r.left_fp, &tp, &r.left_P);
            group_point(s, (int)cross, &r.right_fp, &tp, &r.right_P);
        }
    }
    res[u] = r;
}

// One thread per unit: pad_metrics_image's walk over the unit's n sorted (key, label) pairs.
__global__ void image_walk_kernel(const uint64_t *keys_s, const uint8_t *lab_s, int n, int units, const uint32_t *bad,
                                  mt_img *res) {
    const int u = blockIdx.x * blockDim.x + threadIdx.x;
    if (u >= units) return;
    const uint64_t *k = keys_s + (int64_t)u * n;
    const uint8_t *l = lab_s + (int64_t)u * n;
    uint64_t tp = 0, fp = 0, tp_prev = 0, fp_prev = 0, u2 = 0;
    pad_dd ap = {0.0, 0.0};
    for (int i = 0; i < n; i++) {
        if (l[i])
            tp++;
        else
            fp++;
        if (i == n - 1 || k[i + 1] != k[i]) {
            u2 += (fp - fp_prev) * (tp + tp_prev);
            if (tp != tp_prev) ap = pad_dd_add_d(ap, pad_mx_ap_term(tp, tp_prev, fp));
            tp_prev = tp;
            fp_prev = fp;
        }
    }
    mt_img r;
    r.u2 = u2;
    r.tp = tp;
    r.fp = fp;
    r.ap = ap;
    r.bad = bad[u];
    res[u] = r;
}

// ----------------------------------------------------------------------------
// Workspaces

static void ws_free(mt_ws *w) {
    void *bufs[] = {w->keys, w->keys_s,   w->lab_rep, w->lab_s,   w->acc, w->gid,
                    w->ends, w->partials, w->res,     w->scalars, w->temp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) cudaFree(bufs[i]);
    memset(w, 0, sizeof *w);
}

// Allocates the buffers of `units` units of N pixels with keys of key_bytes bytes (CUB's storage comes later, from
// ensure_temp). On failure the caller frees what was allocated (ws_free).
static cudaError_t ws_alloc(const pad_metrics_gpu *g, mt_ws *w, int units, size_t key_bytes) {
    memset(w, 0, sizeof *w);
    w->units = units;
    w->key_bytes = key_bytes;
    const size_t n = (size_t)units * (size_t)g->N;
    cudaError_t e = cudaMalloc(&w->keys, n * key_bytes);
    if (e == cudaSuccess) e = cudaMalloc(&w->keys_s, n * key_bytes);
    if (e == cudaSuccess && units > 1) e = cudaMalloc((void **)&w->lab_rep, n * sizeof *w->lab_rep);
    if (e == cudaSuccess) e = cudaMalloc((void **)&w->lab_s, n * sizeof *w->lab_s);
    if (e == cudaSuccess) e = cudaMalloc((void **)&w->acc, n * sizeof *w->acc);
    if (e == cudaSuccess) e = cudaMalloc((void **)&w->gid, n * sizeof *w->gid);
    if (e == cudaSuccess) e = cudaMalloc((void **)&w->ends, n * sizeof *w->ends);
    if (e == cudaSuccess) e = cudaMalloc((void **)&w->partials, (size_t)units * MT_MAX_BLOCKS * sizeof *w->partials);
    if (e == cudaSuccess) e = cudaMalloc((void **)&w->res, (size_t)units * sizeof *w->res);
    if (e == cudaSuccess) e = cudaMalloc((void **)&w->scalars, 2 * (size_t)units * sizeof *w->scalars);
    return e;
}

// Grows w's CUB storage to what a sort of `total` pairs on end_bit key bits and the two scans need.
template <typename KeyT>
static pad_status ensure_temp(pad_metrics_gpu *g, mt_ws *w, int total, int end_bit, const int32_t *lab_in) {
    size_t b_sort = 0, b_scan = 0, b_sum = 0;
    MT_TRY(g, cub::DeviceRadixSort::SortPairs((void *)NULL, b_sort, (KeyT *)w->keys, (KeyT *)w->keys_s, lab_in,
                                              w->lab_s, total, 0, end_bit, g->stream));
    MT_TRY(g, cub::DeviceScan::InclusiveScan((void *)NULL, b_scan, w->acc, w->acc, mt_acc_add(), total, g->stream));
    MT_TRY(g, cub::DeviceScan::InclusiveSum((void *)NULL, b_sum, (uint32_t *)w->keys, w->gid, total, g->stream));
    size_t need = b_sort > b_scan ? b_sort : b_scan;
    if (b_sum > need) need = b_sum;
    if (need < 16) need = 16;
    if (need <= w->temp_bytes) return PAD_OK;
    if (w->temp) MT_TRY(g, cudaFree(w->temp));
    w->temp = NULL;
    w->temp_bytes = 0;
    MT_TRY(g, cudaMalloc(&w->temp, need));
    w->temp_bytes = need;
    return PAD_OK;
}

// Device bytes of the batch workspace per unit (CUB's sort storage estimated as one more copy of the pairs).
static size_t unit_bytes(const pad_metrics_gpu *g) {
    const size_t per_pixel = 2 * 8 + 2 * sizeof(int32_t) + sizeof(mt_acc) + 2 * sizeof(uint32_t) + 8 + 4;
    return (size_t)g->N * per_pixel + MT_MAX_BLOCKS * sizeof(mt_curve) + sizeof(mt_unit) + 2 * sizeof(uint32_t);
}

// Units per chunk of a batch under the budget: at least 1, at most MT_MAX_CHUNK and 2^31 - 1 elements.
static int units_in_budget(const pad_metrics_gpu *g) {
    size_t c = g->budget / unit_bytes(g);
    if (c > MT_MAX_CHUNK) c = MT_MAX_CHUNK;
    if (c > (size_t)(INT_MAX / g->N)) c = (size_t)(INT_MAX / g->N);
    return c < 1 ? 1 : (int)c;
}

extern "C" size_t pad_metrics_gpu_batch_bytes(const pad_metrics_gpu *g, int n_units) {
    if (!g || n_units <= 1) return 0; // one unit: the single-unit workspace
    return (size_t)n_units * unit_bytes(g) + ((size_t)1 << 20);
}

extern "C" void pad_metrics_gpu_set_batch_budget(pad_metrics_gpu *g, size_t bytes) {
    if (!g) return;
    g->budget = bytes;
    if (g->many.units > units_in_budget(g) || units_in_budget(g) < 2) {
        cudaSetDevice(g->device);
        ws_free(&g->many);
    }
}

// The units of the next chunk of a batch of n_units: the batch workspace is (re)allocated for them; when that
// fails the batch goes on one unit at a time (a warning).
static int batch_chunk(pad_metrics_gpu *g, int n_units) {
    int c = units_in_budget(g);
    if (c > n_units) c = n_units;
    if (c <= 1 || g->many.units >= c) return c < 1 ? 1 : c;
    ws_free(&g->many);
    cudaError_t e = ws_alloc(g, &g->many, c, sizeof(uint64_t));
    if (e != cudaSuccess) {
        cudaGetLastError();
        ws_free(&g->many);
        PAD_LOG_WARN("GPU metrics: no device memory for a batch of %d units (%s): one unit at a time", c,
                     cudaGetErrorString(e));
        return 1;
    }
    return c;
}

// ----------------------------------------------------------------------------
// Host side

static pad_status setup(pad_metrics_gpu *g, const pad_metrics_gt *gt) {
    const size_t n = (size_t)g->N;
    MT_TRY(g, cudaMalloc((void **)&g->label, n * sizeof *g->label));
    MT_TRY(g, cudaMalloc((void **)&g->term, (size_t)(g->K + 1) * sizeof *g->term));
    MT_TRY(g, ws_alloc(g, &g->one, 1, sizeof(uint32_t)));
    // the host buffers may be freed right after init: synchronous copies
    MT_TRY(g, cudaMemcpy(g->label, pad_metrics_gt_labels(gt), n * sizeof *g->label, cudaMemcpyHostToDevice));
    MT_TRY(g,
           cudaMemcpy(g->term, pad_metrics_gt_terms(gt), (size_t)(g->K + 1) * sizeof *g->term, cudaMemcpyHostToDevice));
    return ensure_temp<uint32_t>(g, &g->one, g->N, 32, g->label);
}

extern "C" pad_status pad_metrics_gpu_init(pad_metrics_gpu **out, const pad_metrics_gt *gt, pad_backend *be) {
    *out = NULL;
    if (!be || pad_backend_get_kind(be) != PAD_BACKEND_CUDA) {
        PAD_LOG_ERROR("GPU metrics: need a CUDA backend");
        return PAD_ERR_UNSUPPORTED;
    }
    const int device = be->device;
    void *stream = pad_backend_stream(be);
    int nd = 0;
    if (cudaGetDeviceCount(&nd) != cudaSuccess || nd <= 0) {
        cudaGetLastError();
        PAD_LOG_ERROR("GPU metrics: no usable CUDA device");
        return PAD_ERR_UNSUPPORTED;
    }
    if (!gt || device < 0 || device >= nd) {
        PAD_LOG_ERROR("GPU metrics: %s", gt ? "no such device" : "NULL ground truth");
        return PAD_ERR_INVALID_ARG;
    }
    pad_metrics_gt_info info;
    pad_metrics_gt_get_info(gt, &info);
    if (info.n_pixels > INT_MAX) {
        PAD_LOG_ERROR("GPU metrics: %lld pixels exceed 2^31 - 1", (long long)info.n_pixels);
        return PAD_ERR_INVALID_ARG;
    }
    pad_metrics_gpu *g = (pad_metrics_gpu *)calloc(1, sizeof *g);
    if (!g) return PAD_ERR_OOM;
    g->device = device;
    g->stream = (cudaStream_t)stream;
    g->N = (int)info.n_pixels;
    g->K = info.n_regions;
    g->n_ok = info.n_normal;
    g->n_anom = info.n_anomalous;
    g->H = info.H;
    g->W = info.W;
    g->budget = MT_DEFAULT_BUDGET;
    pad_status st = PAD_ERR_CUDA;
    cudaError_t ce = cudaSetDevice(device);
    if (ce != cudaSuccess)
        PAD_LOG_ERROR("GPU metrics: cannot use device %d: %s", device, cudaGetErrorString(ce));
    else
        st = setup(g, gt);
    if (st != PAD_OK) {
        cudaGetLastError();
        pad_metrics_gpu_free(g);
        return st;
    }
    *out = g;
    return PAD_OK;
}

extern "C" void pad_metrics_gpu_free(pad_metrics_gpu *g) {
    if (!g) return;
    cudaSetDevice(g->device);
    ws_free(&g->one);
    ws_free(&g->many);
    void *bufs[] = {g->label, g->term, g->maps};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) cudaFree(bufs[i]);
    free(g);
}

static pad_status check_args(const pad_metrics_gpu *g, const float *maps, double fpr_limit, unsigned which,
                             pad_pixel_metrics *out) {
    if (!g || !maps || !out) {
        PAD_LOG_ERROR("GPU metrics: NULL argument");
        return PAD_ERR_INVALID_ARG;
    }
    out->auroc = out->aupr = out->pro = out->pro_200 = NAN;
    if (g->poisoned) {
        PAD_LOG_ERROR("GPU metrics: an earlier CUDA error left the context unusable");
        return PAD_ERR_CUDA;
    }
    if (!(fpr_limit > 0.0 && fpr_limit <= 1.0)) {
        PAD_LOG_ERROR("pixel metrics: FPR limit %g is not in (0, 1]", fpr_limit);
        return PAD_ERR_INVALID_ARG;
    }
    if (which & PAD_METRICS_PRO_200) {
        PAD_LOG_ERROR("GPU metrics: PRO-200 is computed on the CPU only (pad_metrics_pixel)");
        return PAD_ERR_UNSUPPORTED;
    }
    return PAD_OK;
}

// The error of a non-finite pixel `bad` of unit `unit` (named when the batch has more than one).
static pad_status report_bad(pad_metrics_gpu *g, const float *map, int unit, int n_units, uint32_t bad) {
    const int64_t HW = (int64_t)g->H * g->W;
    float v = 0.0f;
    MT_TRY(g, cudaMemcpyAsync(&v, map + bad, sizeof v, cudaMemcpyDeviceToHost, g->stream));
    MT_TRY(g, cudaStreamSynchronize(g->stream));
    char who[48] = "";
    if (n_units > 1) snprintf(who, sizeof who, "unit %d: ", unit);
    PAD_LOG_ERROR("pixel metrics: %smap %lld pixel (%lld, %lld) is not finite (%g)", who, (long long)(bad / HW),
                  (long long)(bad % HW / g->W), (long long)(bad % g->W), (double)v);
    return PAD_ERR_INVALID_ARG;
}

// The pixel pipeline (top of the file) for U units maps[0..U) of a batch of n_units whose first is unit `first`;
// w has room for U units with keys of KeyT (uint32_t for U == 1, else uint64_t).
template <typename KeyT>
static pad_status eval_units(pad_metrics_gpu *g, mt_ws *w, const float *const *maps, int U, int first, int n_units,
                             double limit, unsigned which, pad_pixel_metrics *out) {
    const double t0 = pad_now();
    const int n = g->N;
    const int64_t total = (int64_t)U * n;
    const int end_bit = 32 + unit_bits(U);
    const int do_pro = (which & PAD_METRICS_PRO) && g->K > 0 && g->n_ok > 0;
    const pad_u128 cap = {0, (uint64_t)g->K << 20}; // K * 2^84
    int32_t *rep = U > 1 ? w->lab_rep : (int32_t *)NULL;
    const int32_t *lab_in = U > 1 ? w->lab_rep : g->label;
    KeyT *keys = (KeyT *)w->keys, *keys_s = (KeyT *)w->keys_s;
    uint32_t *flags = (uint32_t *)w->keys; // the unsorted keys are no longer needed after the sort
    if (ensure_temp<KeyT>(g, w, (int)total, end_bit, lab_in) != PAD_OK) return PAD_ERR_CUDA;
    mt_ptrs src;
    memset(&src, 0, sizeof src);
    for (int u = 0; u < U; u++)
        src.p[u] = maps[u];
    const int grid = grid_for(total);
    size_t tb = w->temp_bytes;

    MT_TRY(g, cudaMemsetAsync(w->scalars, 0xff, 2 * (size_t)U * sizeof *w->scalars, g->stream));
    keys_kernel<KeyT, int32_t>
        <<<dim3(grid_for(n), U), MT_THREADS, 0, g->stream>>>(src, n, keys, g->label, rep, w->scalars);
    MT_TRY(g, cudaGetLastError());
    MT_TRY(g, cub::DeviceRadixSort::SortPairs(w->temp, tb, keys, keys_s, lab_in, w->lab_s, (int)total, 0, end_bit,
                                              g->stream));
    acc_kernel<KeyT><<<grid, MT_THREADS, 0, g->stream>>>(w->lab_s, keys_s, g->term, w->acc, flags, total);
    MT_TRY(g, cudaGetLastError());
    tb = w->temp_bytes;
    MT_TRY(g, cub::DeviceScan::InclusiveScan(w->temp, tb, w->acc, w->acc, mt_acc_add(), (int)total, g->stream));
    tb = w->temp_bytes;
    MT_TRY(g, cub::DeviceScan::InclusiveSum(w->temp, tb, flags, w->gid, (int)total, g->stream));
    ends_kernel<<<grid, MT_THREADS, 0, g->stream>>>(flags, w->gid, w->ends, total);
    MT_TRY(g, cudaGetLastError());
    curve_kernel<<<dim3(curve_blocks(n), U), MT_THREADS, 0, g->stream>>>(w->acc, w->gid, w->ends, n, g->n_ok, g->K, cap,
                                                                         limit, do_pro, w->partials, w->scalars + U);
    MT_TRY(g, cudaGetLastError());
    curve_final_kernel<<<U, MT_THREADS, 0, g->stream>>>(w->partials, w->acc, w->gid, w->ends, n, U, g->n_ok, cap,
                                                        do_pro, w->scalars, w->res);
    MT_TRY(g, cudaGetLastError());
    mt_unit res[MT_MAX_CHUNK];
    MT_TRY(g, cudaMemcpyAsync(res, w->res, (size_t)U * sizeof *res, cudaMemcpyDeviceToHost, g->stream));
    MT_TRY(g, cudaStreamSynchronize(g->stream));
    for (int u = 0; u < U; u++)
        if (res[u].bad != MT_NONE) return report_bad(g, maps[u], first + u, n_units, res[u].bad);
    for (int u = 0; u < U; u++) {
        pad_pixel_sums sums;
        memset(&sums, 0, sizeof sums);
        sums.u2 = res[u].tot.u2;
        sums.ap = res[u].tot.ap;
        sums.trap = res[u].tot.trap;
        sums.left_fp = res[u].left_fp;
        sums.left_P = res[u].left_P;
        sums.right_fp = res[u].right_fp;
        sums.right_P = res[u].right_P;
        pad_metrics_pixel_finish(&sums, g->n_anom, g->n_ok, g->K, limit, which, &out[u]);
    }
    PAD_LOG_DEBUG("GPU pixel metrics: %d unit%s x %d pixels (%u tie groups in the first), AUROC + AUPR%s: %.2f ms", U,
                  U == 1 ? "" : "s", n, res[0].G, do_pro ? " + PRO" : "", (pad_now() - t0) * 1e3);
    return PAD_OK;
}

extern "C" pad_status pad_metrics_gpu_pixel(pad_metrics_gpu *g, const float *maps_dev, double fpr_limit, unsigned which,
                                            pad_pixel_metrics *out) {
    pad_status st = check_args(g, maps_dev, fpr_limit, which, out);
    if (st != PAD_OK) return st;
    MT_TRY(g, cudaSetDevice(g->device));
    return eval_units<uint32_t>(g, &g->one, &maps_dev, 1, 0, 1, fpr_limit, which, out);
}

extern "C" pad_status pad_metrics_gpu_pixel_batch(pad_metrics_gpu *g, const float *const *maps_dev, int n_units,
                                                  double fpr_limit, unsigned which, pad_pixel_metrics *out) {
    if (n_units < 0 || (n_units > 0 && (!maps_dev || !out))) {
        PAD_LOG_ERROR("GPU metrics: bad batch (%d units)", n_units);
        return PAD_ERR_INVALID_ARG;
    }
    if (n_units == 0) return PAD_OK;
    pad_status st = PAD_OK;
    for (int u = 0; u < n_units && st == PAD_OK; u++)
        st = check_args(g, maps_dev[u], fpr_limit, which, &out[u]);
    if (st == PAD_OK && cudaSetDevice(g->device) != cudaSuccess) {
        cudaGetLastError();
        PAD_LOG_ERROR("GPU metrics: cannot use device %d", g->device);
        st = PAD_ERR_CUDA;
    }
    for (int u0 = 0; u0 < n_units && st == PAD_OK;) {
        const int c = batch_chunk(g, n_units - u0);
        if (c == 1)
            st = eval_units<uint32_t>(g, &g->one, maps_dev + u0, 1, u0, n_units, fpr_limit, which, out + u0);
        else
            st = eval_units<uint64_t>(g, &g->many, maps_dev + u0, c, u0, n_units, fpr_limit, which, out + u0);
        u0 += c;
    }
    if (st != PAD_OK)
        for (int u = 0; u < n_units; u++)
            out[u].auroc = out[u].aupr = out[u].pro = out[u].pro_200 = NAN;
    return st;
}

extern "C" pad_status pad_metrics_gpu_pixel_host(pad_metrics_gpu *g, const float *maps_host, double fpr_limit,
                                                 unsigned which, pad_pixel_metrics *out) {
    pad_status st = check_args(g, maps_host, fpr_limit, which, out);
    if (st != PAD_OK) return st;
    MT_TRY(g, cudaSetDevice(g->device));
    if (!g->maps) MT_TRY(g, cudaMalloc((void **)&g->maps, (size_t)g->N * sizeof *g->maps));
    MT_TRY(g, cudaMemcpyAsync(g->maps, maps_host, (size_t)g->N * sizeof *g->maps, cudaMemcpyHostToDevice, g->stream));
    return pad_metrics_gpu_pixel(g, g->maps, fpr_limit, which, out); // synchronises before returning
}

extern "C" pad_status pad_metrics_gpu_image(pad_metrics_gpu *g, const float *scores_dev, const uint8_t *labels,
                                            int64_t n, pad_image_metrics *out) {
    if (!scores_dev || !labels || !out || n < 1) {
        PAD_LOG_ERROR("GPU image metrics: need at least one score and label (n = %lld)", (long long)n);
        return PAD_ERR_INVALID_ARG;
    }
    cudaStream_t stream = g ? g->stream : (cudaStream_t)0;
    float *h = (float *)malloc((size_t)n * sizeof *h);
    if (!h) return PAD_ERR_OOM;
    cudaError_t ce = cudaMemcpyAsync(h, scores_dev, (size_t)n * sizeof *h, cudaMemcpyDeviceToHost, stream);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(stream);
    if (ce != cudaSuccess) {
        PAD_LOG_ERROR("GPU image metrics: copying %lld scores failed: %s", (long long)n, cudaGetErrorString(ce));
        free(h);
        return PAD_ERR_CUDA;
    }
    pad_status st = pad_metrics_image(h, labels, n, out);
    free(h);
    return st;
}

// ----------------------------------------------------------------------------
// Batched image metrics

// A CUDA error of the image batch: logged, and g (when given) poisoned as MT_TRY does.
static bool img_ok(pad_metrics_gpu *g, cudaError_t e, const char *what, int line) {
    if (e == cudaSuccess) return true;
    PAD_LOG_ERROR("%s:%d: %s failed: %s", __FILE__, line, what, cudaGetErrorString(e));
    if (g) g->poisoned = true;
    return false;
}
#define IMG_TRY(expr)                                                                                                  \
    do {                                                                                                               \
        if (!img_ok(g, (expr), #expr, __LINE__)) {                                                                     \
            st = PAD_ERR_CUDA;                                                                                         \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)

// The arguments of the image batch; sets every out[u] to NaN.
static pad_status image_batch_args(const pad_metrics_gpu *g, const float *const *scores, const uint8_t *labels,
                                   int64_t n, int n_units, pad_image_metrics *out) {
    if (n_units < 0 || n < 1 || n > INT_MAX || (n_units > 0 && (!scores || !labels || !out))) {
        PAD_LOG_ERROR("GPU image metrics: bad batch (%d units of %lld scores)", n_units, (long long)n);
        return PAD_ERR_INVALID_ARG;
    }
    for (int u = 0; u < n_units; u++)
        out[u].auroc = out[u].aupr = NAN;
    for (int u = 0; u < n_units; u++)
        if (!scores[u]) {
            PAD_LOG_ERROR("GPU image metrics: unit %d has no scores", u);
            return PAD_ERR_INVALID_ARG;
        }
    for (int64_t i = 0; i < n; i++)
        if (labels[i] > 1) {
            PAD_LOG_ERROR("image metrics: label %lld is %d, expected 0 or 1", (long long)i, (int)labels[i]);
            return PAD_ERR_INVALID_ARG;
        }
    if (g && g->poisoned) {
        PAD_LOG_ERROR("GPU metrics: an earlier CUDA error left the context unusable");
        return PAD_ERR_CUDA;
    }
    return PAD_OK;
}

static size_t align256(size_t b) {
    return (b + 255) & ~(size_t)255;
}

extern "C" pad_status pad_metrics_gpu_image_batch(pad_metrics_gpu *g, const float *const *scores_dev,
                                                  const uint8_t *labels, int64_t n64, int n_units,
                                                  pad_image_metrics *out) {
    pad_status st = image_batch_args(g, scores_dev, labels, n64, n_units, out);
    if (st != PAD_OK || n_units == 0) return st;
    const int n = (int)n64;
    int chunk = INT_MAX / n;
    if (chunk > MT_MAX_CHUNK) chunk = MT_MAX_CHUNK;
    if (chunk > n_units) chunk = n_units;
    const size_t cn = (size_t)chunk * (size_t)n;
    cudaStream_t stream = g ? g->stream : (cudaStream_t)0;
    char *base = NULL;
    uint8_t *lab = NULL, *lab_rep, *lab_s;
    uint64_t *keys, *keys_s;
    uint32_t *bad;
    mt_img *res;
    void *temp;
    size_t temp_bytes = 0, off[8];
    mt_img h[MT_MAX_CHUNK];
    if (g) IMG_TRY(cudaSetDevice(g->device));
    IMG_TRY(cub::DeviceRadixSort::SortPairs((void *)NULL, temp_bytes, (uint64_t *)NULL, (uint64_t *)NULL,
                                            (uint8_t *)NULL, (uint8_t *)NULL, (int)cn, 0, 32 + unit_bits(chunk),
                                            stream));
    // one allocation: labels, repeated labels, sorted labels, keys, sorted keys, bad, records, CUB storage
    off[0] = 0;
    off[1] = off[0] + align256((size_t)n);
    off[2] = off[1] + align256(cn);
    off[3] = off[2] + align256(cn);
    off[4] = off[3] + align256(cn * sizeof(uint64_t));
    off[5] = off[4] + align256(cn * sizeof(uint64_t));
    off[6] = off[5] + align256((size_t)chunk * sizeof(uint32_t));
    off[7] = off[6] + align256((size_t)chunk * sizeof(mt_img));
    IMG_TRY(cudaMallocAsync((void **)&base, off[7] + temp_bytes, stream));
    lab = (uint8_t *)base;
    lab_rep = (uint8_t *)(base + off[1]);
    lab_s = (uint8_t *)(base + off[2]);
    keys = (uint64_t *)(base + off[3]);
    keys_s = (uint64_t *)(base + off[4]);
    bad = (uint32_t *)(base + off[5]);
    res = (mt_img *)(base + off[6]);
    temp = base + off[7];
    IMG_TRY(cudaMemcpyAsync(lab, labels, (size_t)n, cudaMemcpyHostToDevice, stream));
    for (int u0 = 0; u0 < n_units; u0 += chunk) {
        const int c = n_units - u0 < chunk ? n_units - u0 : chunk;
        mt_ptrs src;
        memset(&src, 0, sizeof src);
        for (int u = 0; u < c; u++)
            src.p[u] = scores_dev[u0 + u];
        size_t tb = temp_bytes;
        IMG_TRY(cudaMemsetAsync(bad, 0xff, (size_t)c * sizeof *bad, stream));
        keys_kernel<uint64_t, uint8_t>
            <<<dim3(grid_for(n), c), MT_THREADS, 0, stream>>>(src, n, keys, lab, lab_rep, bad);
        IMG_TRY(cudaGetLastError());
        IMG_TRY(cub::DeviceRadixSort::SortPairs(temp, tb, keys, keys_s, lab_rep, lab_s, c * n, 0, 32 + unit_bits(c),
                                                stream));
        image_walk_kernel<<<(c + 31) / 32, 32, 0, stream>>>(keys_s, lab_s, n, c, bad, res);
        IMG_TRY(cudaGetLastError());
        IMG_TRY(cudaMemcpyAsync(h, res, (size_t)c * sizeof *h, cudaMemcpyDeviceToHost, stream));
        IMG_TRY(cudaStreamSynchronize(stream));
        for (int u = 0; u < c && st == PAD_OK; u++)
            if (h[u].bad != MT_NONE) {
                float v = 0.0f;
                IMG_TRY(cudaMemcpy(&v, scores_dev[u0 + u] + h[u].bad, sizeof v, cudaMemcpyDeviceToHost));
                PAD_LOG_ERROR("image metrics: unit %d score %u is not finite (%g)", u0 + u, h[u].bad, (double)v);
                st = PAD_ERR_INVALID_ARG;
            }
        for (int u = 0; u < c && st == PAD_OK; u++)
            pad_metrics_image_finish(h[u].u2, h[u].ap, h[u].tp, h[u].fp, n, &out[u0 + u]);
        if (st != PAD_OK) break;
    }
done:
    if (base) img_ok(g, cudaFreeAsync(base, stream), "cudaFreeAsync", __LINE__);
    if (st != PAD_OK)
        for (int u = 0; u < n_units; u++)
            out[u].auroc = out[u].aupr = NAN;
    return st;
}
