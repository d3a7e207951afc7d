/* metrics.cu - the GPU twin of eval/metrics.c's pixel metrics (pad_metrics_gpu_*, declared in eval/metrics.h):
 * pooled pixel AUROC, AUPR and the official AU-PRO of device-resident maps against ground truth labelled once on
 * the CPU (pad_metrics_gt) and uploaded.
 *
 * Per evaluation (N pixels, all on the context's stream):
 *   1. keys_kernel: key = pad_mx_key(score) (order-preserving, -0 == +0), first non-finite index;
 *   2. cub::DeviceRadixSort::SortPairsDescending (key, region) -> descending scores;
 *   3. acc_kernel: per pixel (is_background, fixed-point overlap increment of its region) and the tie-group end flag
 *      (key differs from the next); cub::DeviceScan::InclusiveScan of the former (exact integer sums), InclusiveSum
 *      of the flags; ends_kernel: ends[g] = index of the last pixel of tie group g;
 *   4. curve_kernel + curve_final_kernel: per group the AUROC count fp_g * (tp_before + tp_after) (uint64), the
 *      AUPR term (double-double) and the exact trapezoid term below the FPR limit (u192), reduced in a fixed tree;
 *      the group that crosses the FPR limit is recorded;
 *   5. the host reads the sums and the two curve points around the limit and finishes with
 *      pad_metrics_pixel_finish, the function the CPU path uses.
 * Every quantity is an exact integer except the AUPR sum, a double-double whose rounding to double may differ from
 * the CPU's sequential sum in the last bit in rare cases. The arithmetic shared with the CPU lives in
 * eval/metrics_exact.h (device code uses _rn intrinsics: no FMA contraction). PRO-200 is CPU only. */
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda_runtime.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "backend.h"
#include "log.h"
#include "metrics.h"
}
#include "metrics_exact.h"

#define MT_THREADS    256
#define MT_MAX_BLOCKS 1024
#define MT_NONE       0xffffffffu

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

struct pad_metrics_gpu {
    int device;
    cudaStream_t stream;
    bool poisoned;
    int N;                   // pixels (< 2^31)
    int64_t K, n_ok, n_anom; // regions, background and anomalous pixels
    int H, W;
    int32_t *label;     // (N) region of each pixel, uploaded once
    pad_u128 *term;     // (K + 1) fixed-point overlap increments
    uint32_t *keys;     // (N) keys, then the tie-group end flags
    uint32_t *keys_s;   // (N) sorted keys
    int32_t *lab_s;     // (N) regions in sorted order
    mt_acc *acc;        // (N) per-pixel increments
    mt_acc *acc_s;      // (N) their inclusive scan
    uint32_t *gid;      // (N) inclusive scan of the end flags
    uint32_t *ends;     // (N) last pixel of each tie group
    mt_curve *partials; // (MT_MAX_BLOCKS + 1) block sums, the total at [MT_MAX_BLOCKS]
    uint32_t *scalars;  // [0] first non-finite pixel, [1] the group that crosses the FPR limit
    void *temp;         // CUB temporary storage
    size_t temp_bytes;
    float *maps; // (N) host maps copied here by pad_metrics_gpu_pixel_host, on first use
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

// ----------------------------------------------------------------------------
// Kernels

__global__ void keys_kernel(const float *maps, uint32_t *keys, uint32_t *bad, int N) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x) {
        float v = maps[i];
        if (!isfinite(v)) {
            atomicMin(bad, (uint32_t)i);
            v = 0.0f;
        }
        keys[i] = pad_mx_key(v);
    }
}

__global__ void acc_kernel(const int32_t *lab_s, const uint32_t *keys_s, const pad_u128 *term, mt_acc *acc,
                           uint32_t *flags, int N) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x) {
        const int32_t r = lab_s[i];
        const pad_u128 t = term[r];
        mt_acc a;
        a.fp = r == 0 ? 1u : 0u;
        a.lo = t.lo;
        a.hi = t.hi;
        acc[i] = a;
        flags[i] = (i == N - 1 || keys_s[i] != keys_s[i + 1]) ? 1u : 0u;
    }
}

__global__ void ends_kernel(const uint32_t *flags, const uint32_t *gid, uint32_t *ends, int N) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x)
        if (flags[i]) ends[gid[i] - 1] = (uint32_t)i;
}

// Cumulative (fp, tp, P) after tie group g (g = -1: nothing yet).
__device__ __forceinline__ void group_point(const mt_acc *acc_s, const uint32_t *ends, int g, uint64_t *fp,
                                            uint64_t *tp, pad_u128 *P) {
    if (g < 0) {
        *fp = *tp = 0;
        P->lo = P->hi = 0;
        return;
    }
    const uint32_t e = ends[g];
    const mt_acc a = acc_s[e];
    *fp = a.fp;
    *tp = (uint64_t)e + 1 - a.fp;
    P->lo = a.lo;
    P->hi = a.hi;
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

__global__ void curve_kernel(const mt_acc *acc_s, const uint32_t *ends, int G, int64_t n_ok, int64_t K, pad_u128 cap,
                             double limit, int do_pro, mt_curve *partials, uint32_t *cross) {
    __shared__ mt_curve sh[MT_THREADS];
    mt_curve a = curve_zero();
    for (int64_t gg = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; gg < G; gg += (int64_t)gridDim.x * blockDim.x) {
        const int g = (int)gg;
        uint64_t fp, tp, fp0, tp0;
        pad_u128 P, P0;
        group_point(acc_s, ends, g, &fp, &tp, &P);
        group_point(acc_s, ends, g - 1, &fp0, &tp0, &P0);
        a.u2 += (fp - fp0) * (tp + tp0);
        if (tp != tp0) a.ap = pad_dd_add_d(a.ap, pad_mx_ap_term(tp, tp0, fp));
        if (do_pro) {
            if (pad_mx_fpr(fp, n_ok) <= limit) {
                if (fp != fp0)
                    a.trap = pad_u192_add(
                        a.trap, pad_u192_sum_mul(pad_mx_clip(P0, cap), pad_mx_clip(P, cap), (uint32_t)(fp - fp0)));
            } else if (pad_mx_fpr(fp0, n_ok) <= limit) {
                *cross = (uint32_t)g; // the FPR grows with g: exactly one group crosses the limit
            }
        }
    }
    mt_curve t = block_reduce(a, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = t;
}

__global__ void curve_final_kernel(mt_curve *partials, int nb) {
    __shared__ mt_curve sh[MT_THREADS];
    mt_curve a = curve_zero();
    for (int i = threadIdx.x; i < nb; i += blockDim.x)
        a = curve_add(a, partials[i]);
    mt_curve t = block_reduce(a, sh);
    if (threadIdx.x == 0) partials[MT_MAX_BLOCKS] = t;
}

// ----------------------------------------------------------------------------
// Host side

static pad_status setup(pad_metrics_gpu *g, const pad_metrics_gt *gt) {
    const size_t n = (size_t)g->N;
    MT_TRY(g, cudaMalloc((void **)&g->label, n * sizeof *g->label));
    MT_TRY(g, cudaMalloc((void **)&g->term, (size_t)(g->K + 1) * sizeof *g->term));
    MT_TRY(g, cudaMalloc((void **)&g->keys, n * sizeof *g->keys));
    MT_TRY(g, cudaMalloc((void **)&g->keys_s, n * sizeof *g->keys_s));
    MT_TRY(g, cudaMalloc((void **)&g->lab_s, n * sizeof *g->lab_s));
    MT_TRY(g, cudaMalloc((void **)&g->acc, n * sizeof *g->acc));
    MT_TRY(g, cudaMalloc((void **)&g->acc_s, n * sizeof *g->acc_s));
    MT_TRY(g, cudaMalloc((void **)&g->gid, n * sizeof *g->gid));
    MT_TRY(g, cudaMalloc((void **)&g->ends, n * sizeof *g->ends));
    MT_TRY(g, cudaMalloc((void **)&g->partials, (MT_MAX_BLOCKS + 1) * sizeof *g->partials));
    MT_TRY(g, cudaMalloc((void **)&g->scalars, 2 * sizeof *g->scalars));
    // the host buffers may be freed right after init: synchronous copies
    MT_TRY(g, cudaMemcpy(g->label, pad_metrics_gt_labels(gt), n * sizeof *g->label, cudaMemcpyHostToDevice));
    MT_TRY(g,
           cudaMemcpy(g->term, pad_metrics_gt_terms(gt), (size_t)(g->K + 1) * sizeof *g->term, cudaMemcpyHostToDevice));
    size_t b_sort = 0, b_scan = 0, b_sum = 0;
    MT_TRY(g, cub::DeviceRadixSort::SortPairsDescending((void *)NULL, b_sort, g->keys, g->keys_s, g->label, g->lab_s,
                                                        g->N, 0, 32, g->stream));
    MT_TRY(g, cub::DeviceScan::InclusiveScan((void *)NULL, b_scan, g->acc, g->acc_s, mt_acc_add(), g->N, g->stream));
    MT_TRY(g, cub::DeviceScan::InclusiveSum((void *)NULL, b_sum, g->keys, g->gid, g->N, g->stream));
    g->temp_bytes = b_sort > b_scan ? b_sort : b_scan;
    if (b_sum > g->temp_bytes) g->temp_bytes = b_sum;
    MT_TRY(g, cudaMalloc(&g->temp, g->temp_bytes ? g->temp_bytes : 16));
    return PAD_OK;
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
    void *bufs[] = {g->label, g->term, g->keys,     g->keys_s,  g->lab_s, g->acc, g->acc_s,
                    g->gid,   g->ends, g->partials, g->scalars, g->temp,  g->maps};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) cudaFree(bufs[i]);
    free(g);
}

// Copies the cumulative counts after tie group `grp` to the host.
static pad_status fetch_point(pad_metrics_gpu *g, uint32_t grp, uint64_t *fp, pad_u128 *P) {
    uint32_t e = 0;
    mt_acc a;
    MT_TRY(g, cudaMemcpyAsync(&e, g->ends + grp, sizeof e, cudaMemcpyDeviceToHost, g->stream));
    MT_TRY(g, cudaStreamSynchronize(g->stream));
    MT_TRY(g, cudaMemcpyAsync(&a, g->acc_s + e, sizeof a, cudaMemcpyDeviceToHost, g->stream));
    MT_TRY(g, cudaStreamSynchronize(g->stream));
    *fp = a.fp;
    P->lo = a.lo;
    P->hi = a.hi;
    return PAD_OK;
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

extern "C" pad_status pad_metrics_gpu_pixel(pad_metrics_gpu *g, const float *maps_dev, double fpr_limit, unsigned which,
                                            pad_pixel_metrics *out) {
    pad_status st = check_args(g, maps_dev, fpr_limit, which, out);
    if (st != PAD_OK) return st;
    MT_TRY(g, cudaSetDevice(g->device));
    struct timespec ts0;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    const int N = g->N, grid = grid_for(N);
    const int do_pro = (which & PAD_METRICS_PRO) && g->K > 0 && g->n_ok > 0;
    const pad_u128 cap = {0, (uint64_t)g->K << 20}; // K * 2^84
    size_t tb = g->temp_bytes;

    MT_TRY(g, cudaMemsetAsync(g->scalars, 0xff, 2 * sizeof *g->scalars, g->stream));
    keys_kernel<<<grid, MT_THREADS, 0, g->stream>>>(maps_dev, g->keys, g->scalars, N);
    MT_TRY(g, cudaGetLastError());
    MT_TRY(g, cub::DeviceRadixSort::SortPairsDescending(g->temp, tb, g->keys, g->keys_s, g->label, g->lab_s, N, 0, 32,
                                                        g->stream));
    uint32_t *flags = g->keys; // the unsorted keys are no longer needed
    acc_kernel<<<grid, MT_THREADS, 0, g->stream>>>(g->lab_s, g->keys_s, g->term, g->acc, flags, N);
    MT_TRY(g, cudaGetLastError());
    tb = g->temp_bytes;
    MT_TRY(g, cub::DeviceScan::InclusiveScan(g->temp, tb, g->acc, g->acc_s, mt_acc_add(), N, g->stream));
    tb = g->temp_bytes;
    MT_TRY(g, cub::DeviceScan::InclusiveSum(g->temp, tb, flags, g->gid, N, g->stream));
    ends_kernel<<<grid, MT_THREADS, 0, g->stream>>>(flags, g->gid, g->ends, N);
    MT_TRY(g, cudaGetLastError());
    uint32_t G = 0;
    MT_TRY(g, cudaMemcpyAsync(&G, g->gid + (N - 1), sizeof G, cudaMemcpyDeviceToHost, g->stream));
    MT_TRY(g, cudaStreamSynchronize(g->stream));

    int nb = (int)(((int64_t)G + MT_THREADS - 1) / MT_THREADS);
    nb = nb < 1 ? 1 : nb > MT_MAX_BLOCKS ? MT_MAX_BLOCKS : nb;
    curve_kernel<<<nb, MT_THREADS, 0, g->stream>>>(g->acc_s, g->ends, (int)G, g->n_ok, g->K, cap, fpr_limit, do_pro,
                                                   g->partials, g->scalars + 1);
    MT_TRY(g, cudaGetLastError());
    curve_final_kernel<<<1, MT_THREADS, 0, g->stream>>>(g->partials, nb);
    MT_TRY(g, cudaGetLastError());
    mt_curve tot;
    uint32_t sc[2];
    MT_TRY(g, cudaMemcpyAsync(&tot, g->partials + MT_MAX_BLOCKS, sizeof tot, cudaMemcpyDeviceToHost, g->stream));
    MT_TRY(g, cudaMemcpyAsync(sc, g->scalars, sizeof sc, cudaMemcpyDeviceToHost, g->stream));
    MT_TRY(g, cudaStreamSynchronize(g->stream));
    if (sc[0] != MT_NONE) {
        const int64_t HW = (int64_t)g->H * g->W, bad = sc[0];
        float v = 0.0f;
        MT_TRY(g, cudaMemcpyAsync(&v, maps_dev + bad, sizeof v, cudaMemcpyDeviceToHost, g->stream));
        MT_TRY(g, cudaStreamSynchronize(g->stream));
        PAD_LOG_ERROR("pixel metrics: map %lld pixel (%lld, %lld) is not finite (%g)", (long long)(bad / HW),
                      (long long)(bad % HW / g->W), (long long)(bad % g->W), (double)v);
        return PAD_ERR_INVALID_ARG;
    }

    pad_pixel_sums sums;
    memset(&sums, 0, sizeof sums);
    sums.u2 = tot.u2;
    sums.ap = tot.ap;
    sums.trap = tot.trap;
    sums.right_fp = (uint64_t)g->n_ok; // (1, 1)
    sums.right_P = cap;
    if (do_pro) {
        const uint32_t cross = sc[1];
        if (cross == MT_NONE) { // every point is below the limit (limit 1): the last one is the left point
            if (fetch_point(g, G - 1, &sums.left_fp, &sums.left_P) != PAD_OK) return PAD_ERR_CUDA;
        } else {
            if (cross > 0 && fetch_point(g, cross - 1, &sums.left_fp, &sums.left_P) != PAD_OK) return PAD_ERR_CUDA;
            if (fetch_point(g, cross, &sums.right_fp, &sums.right_P) != PAD_OK) return PAD_ERR_CUDA;
        }
    }
    pad_metrics_pixel_finish(&sums, g->n_anom, g->n_ok, g->K, fpr_limit, which, out);
    struct timespec ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    PAD_LOG_DEBUG("GPU pixel metrics: %d pixels, %u tie groups, AUROC + AUPR%s: %.2f ms", N, G, do_pro ? " + PRO" : "",
                  (double)(ts1.tv_sec - ts0.tv_sec) * 1e3 + (double)(ts1.tv_nsec - ts0.tv_nsec) * 1e-6);
    return PAD_OK;
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
