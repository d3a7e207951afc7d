/* score.cu - CUDA twins of host/cpu_score.c, the anomaly-scoring ops: the text score (one warp per row, double
 * accumulation), the harmonic fusion, fp16 rounding, torch's bilinear upsampling, scipy's reflect-mode Gaussian (one
 * kernel per axis, weights passed by value) and per-row maxima. Elementwise results use the _rn intrinsics in the
 * CPU's operation order (no FMA contraction), so fusion, rounding, upsampling, Gaussian and row max agree with the CPU
 * bit for bit; the text score differs from the CPU only by its summation order. Nothing uses atomics: every result is
 * deterministic. */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#include <cuda_fp16.h>
#include <limits.h>

#define ROWS_PER_BLOCK 8 // warps per block in the one-warp-per-row kernels

// ----------------------------------------------------------------------------
// text_score

// Pair blockIdx.y: its vectors at t_n, t_a + blockIdx.y * tstride, its scores at out + blockIdx.y * M (one kernel
// for text_score and text_score_multi: the same bits for a pair scored alone or with others).
static __global__ void text_score_kernel(float *out, const float *feat, const float *t_n, const float *t_a, float tau,
                                         int M, int E, size_t tstride) {
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return;
    t_n += blockIdx.y * tstride;
    t_a += blockIdx.y * tstride;
    out += (size_t)blockIdx.y * (size_t)M;
    const float *f = feat + (size_t)row * E;
    double ss = 0.0, dn = 0.0, da = 0.0;
    for (int e = lane; e < E; e += 32) {
        const double v = f[e];
        ss += v * v;
        dn += v * (double)t_n[e];
        da += v * (double)t_a[e];
    }
    ss = warp_sum_d(ss);
    dn = warp_sum_d(dn);
    da = warp_sum_d(da);
    if (lane == 0) {
        double nrm = sqrt(ss);
        if (nrm < 1e-12) nrm = 1e-12;
        const double z = (double)tau * ((da - dn) / nrm);
        double s;
        if (z >= 0) {
            s = 1.0 / (1.0 + exp(-z));
        } else {
            const double e = exp(z);
            s = e / (1.0 + e);
        }
        out[row] = __double2float_rn(s);
    }
}

extern "C" pad_status cuda_text_score(pad_backend *be, float *out, const float *feat, const float *t_n,
                                      const float *t_a, float tau, int M, int E) {
    if (M == 0) return PAD_OK;
    text_score_kernel<<<(unsigned)CEIL_DIV(M, ROWS_PER_BLOCK), 32 * ROWS_PER_BLOCK, 0, cuda_stream_of(be)>>>(
        out, feat, t_n, t_a, tau, M, E, 0);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

extern "C" pad_status cuda_text_score_multi(pad_backend *be, float *out, const float *feat, const float *tv, float tau,
                                            int M, int E, int U) {
    if (M == 0) return PAD_OK;
    const dim3 grid((unsigned)CEIL_DIV(M, ROWS_PER_BLOCK), (unsigned)U);
    text_score_kernel<<<grid, 32 * ROWS_PER_BLOCK, 0, cuda_stream_of(be)>>>(out, feat, tv, tv + E, tau, M, E,
                                                                            (size_t)2 * (size_t)E);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// harmonic_fuse, round_half

static __global__ void harmonic_fuse_kernel(float *out, const float *a, const float *b, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __frcp_rn(__fadd_rn(__frcp_rn(a[i]), __frcp_rn(b[i])));
}

extern "C" pad_status cuda_harmonic_fuse(pad_backend *be, float *out, const float *a, const float *b, size_t n) {
    if (n == 0) return PAD_OK;
    harmonic_fuse_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(out, a, b,
                                                                                                (long long)n);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

static __global__ void round_half_kernel(float *out, const float *inp, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __half2float(__float2half_rn(inp[i]));
}

extern "C" pad_status cuda_round_half(pad_backend *be, float *out, const float *inp, size_t n) {
    if (n == 0) return PAD_OK;
    round_half_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(out, inp, (long long)n);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// upsample_bilinear (pad_bilinear_axis in cpu_score.c, operation for operation)

__device__ __forceinline__ void bilinear_src(int in, int out, int d, int *i0, int *i1, float *l0, float *l1) {
    if (in == out) {
        *i0 = *i1 = d;
        *l0 = 1.0f;
        *l1 = 0.0f;
        return;
    }
    const float scale = __fdiv_rn((float)in, (float)out);
    double src = __dsub_rn(__dmul_rn((double)scale, __dadd_rn((double)d, 0.5)), 0.5);
    if (src < 0) src = 0;
    int a = (int)src;
    if (a > in - 1) a = in - 1;
    *i0 = a;
    *i1 = a + (a < in - 1 ? 1 : 0);
    *l1 = __double2float_rn(__dsub_rn(src, (double)a));
    *l0 = __fsub_rn(1.0f, *l1);
}

static __global__ void upsample_bilinear_kernel(float *out, const float *inp, int B, int Hi, int Wi, int Ho, int Wo) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)B * Ho * Wo) return;
    const int x = (int)(i % Wo), y = (int)((i / Wo) % Ho), b = (int)(i / ((long long)Wo * Ho));
    int y0, y1, x0, x1;
    float hy0, hy1, wx0, wx1;
    bilinear_src(Hi, Ho, y, &y0, &y1, &hy0, &hy1);
    bilinear_src(Wi, Wo, x, &x0, &x1, &wx0, &wx1);
    const float *r0 = inp + ((size_t)b * Hi + y0) * Wi, *r1 = inp + ((size_t)b * Hi + y1) * Wi;
    const double w0 = wx0, w1 = wx1;
    const double top = __dadd_rn(__dmul_rn((double)r0[x0], w0), __dmul_rn((double)r0[x1], w1));
    const double bot = __dadd_rn(__dmul_rn((double)r1[x0], w0), __dmul_rn((double)r1[x1], w1));
    out[i] = __double2float_rn(__dadd_rn(__dmul_rn(top, (double)hy0), __dmul_rn(bot, (double)hy1)));
}

extern "C" pad_status cuda_upsample_bilinear(pad_backend *be, float *out, const float *inp, int B, int Hi, int Wi,
                                             int Ho, int Wo) {
    const long long n = (long long)B * Ho * Wo;
    if (n == 0) return PAD_OK;
    upsample_bilinear_kernel<<<(unsigned)CEIL_DIV(n, 256), 256, 0, cuda_stream_of(be)>>>(out, inp, B, Hi, Wi, Ho, Wo);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// gaussian_filter (cpu_gaussian_filter, operation for operation)

typedef struct gauss_weights {
    double w[PAD_GAUSS_MAX_RADIUS + 1]; // w[k] = weight at offset +-k
} gauss_weights;

// scipy's 'reflect' (pad_reflect_index): half-sample symmetric, period 2n
__device__ __forceinline__ int reflect_index(int i, int n) {
    if (i >= 0 && i < n) return i;
    const int p = 2 * n;
    int m = i % p;
    if (m < 0) m += p;
    return m < n ? m : p - 1 - m;
}

// axis 0: tmp[b, i, x] from inp[b, reflect(i +- k), x]
static __global__ void gaussian_axis0_kernel(float *tmp, const float *inp, int B, int H, int W, gauss_weights gw,
                                             int r) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)B * H * W) return;
    const int x = (int)(t % W), i = (int)((t / W) % H), b = (int)(t / ((long long)W * H));
    const float *img = inp + (size_t)b * H * W;
    double s = __dmul_rn((double)img[(size_t)i * W + x], gw.w[0]);
    for (int k = r; k >= 1; k--) {
        const double lo = img[(size_t)reflect_index(i - k, H) * W + x];
        const double hi = img[(size_t)reflect_index(i + k, H) * W + x];
        s = __dadd_rn(s, __dmul_rn(__dadd_rn(lo, hi), gw.w[k]));
    }
    tmp[t] = __double2float_rn(s);
}

// axis 1: out[b, i, x] from tmp[b, i, reflect(x +- k)]
static __global__ void gaussian_axis1_kernel(float *out, const float *tmp, int B, int H, int W, gauss_weights gw,
                                             int r) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)B * H * W) return;
    const int x = (int)(t % W);
    const float *row = tmp + (t - x);
    double s = __dmul_rn((double)row[x], gw.w[0]);
    for (int k = r; k >= 1; k--) {
        const double lo = row[reflect_index(x - k, W)];
        const double hi = row[reflect_index(x + k, W)];
        s = __dadd_rn(s, __dmul_rn(__dadd_rn(lo, hi), gw.w[k]));
    }
    out[t] = __double2float_rn(s);
}

extern "C" pad_status cuda_gaussian_filter(pad_backend *be, float *out, float *tmp, const float *inp, int B, int H,
                                           int W, const double *w, int r) {
    const long long n = (long long)B * H * W;
    if (n == 0) return PAD_OK;
    gauss_weights gw;
    for (int k = 0; k <= PAD_GAUSS_MAX_RADIUS; k++)
        gw.w[k] = k <= r ? w[r + k] : 0.0;
    const unsigned blocks = (unsigned)CEIL_DIV(n, 256);
    gaussian_axis0_kernel<<<blocks, 256, 0, cuda_stream_of(be)>>>(tmp, inp, B, H, W, gw, r);
    PAD_CUDA_CHECK_LAUNCH(be);
    gaussian_axis1_kernel<<<blocks, 256, 0, cuda_stream_of(be)>>>(out, tmp, B, H, W, gw, r);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// row_max

// The CPU's row max (cpu_score.c) scans in order and replaces its maximum only by a strictly larger value or by
// the first NaN: among equal values (+0 and -0) the first wins, and a NaN row gives its first NaN, payload and all.
// The tree reduction below reproduces that exactly by reducing (value, index) pairs: a NaN beats a number, and among
// NaNs or equal numbers the smaller index wins (fmaxf would pick +0 over -0, and a canonical NaN).
__device__ __forceinline__ bool max_first_beats(float a, long long ia, float b, long long ib) {
    const bool an = a != a, bn = b != b;
    if (an || bn) return an && (!bn || ia < ib);
    return a > b || (a == b && ia < ib);
}

__device__ __forceinline__ void max_first_warp(float &v, long long &i) {
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const long long oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (max_first_beats(ov, oi, v, i)) {
            v = ov;
            i = oi;
        }
    }
}

static __global__ void row_max_kernel(float *out, const float *inp, long long n) {
    __shared__ float sv[32];
    __shared__ long long si[32];
    const float *x = inp + (size_t)blockIdx.x * (size_t)n;
    float m = -INFINITY;
    long long mi = LLONG_MAX; // "no element": any element of the row beats or ties it with a smaller index
    for (long long i = threadIdx.x; i < n; i += blockDim.x)
        if (max_first_beats(x[i], i, m, mi)) {
            m = x[i];
            mi = i;
        }
    max_first_warp(m, mi);
    const int lane = threadIdx.x % 32, wid = threadIdx.x / 32;
    if (lane == 0) {
        sv[wid] = m;
        si[wid] = mi;
    }
    __syncthreads();
    if (wid == 0) {
        const bool have = lane < (int)(blockDim.x / 32);
        m = have ? sv[lane] : -INFINITY;
        mi = have ? si[lane] : LLONG_MAX;
        max_first_warp(m, mi);
        if (lane == 0) out[blockIdx.x] = mi < n ? x[mi] : m; // the element itself: its sign and NaN payload
    }
}

extern "C" pad_status cuda_row_max(pad_backend *be, float *out, const float *inp, int B, long long n) {
    if (B == 0) return PAD_OK;
    row_max_kernel<<<(unsigned)B, 256, 0, cuda_stream_of(be)>>>(out, inp, n);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}
