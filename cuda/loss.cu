/* loss.cu - CUDA kernels for the small ops of PromptAD's prompt-learning loss (twins of host/cpu_loss.c): row L2
 * normalisation (one warp per row, double accumulation) and its backward (one block per row), cross-entropy with
 * target 0 (one warp per row, then one block sums the row losses), the EAM loss (one warp per sample or one thread
 * per channel, then one thread per channel walks the samples in order for the anchor gradients) and a dot product
 * (one block). Cross-entropy, EAM and dot accumulate in double like their CPU twins. No atomics: every sum has a
 * fixed order, so results are deterministic run to run. */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#define LOSS_THREADS 256

// out[0] = (float)(relu ? sum_i max(h[i], 0) : sum_i h[i]) * scale, or / div when div > 0, summed in double in a
// fixed order (the CPU twins sum in double too); one block of LOSS_THREADS.
__global__ void sum_d_kernel(float *out, const double *h, long long n, double scale, double div, int relu) {
    __shared__ double shared[32];
    double part = 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x)
        part += relu ? (h[i] > 0.0 ? h[i] : 0.0) : h[i];
    const double total = block_sum_d(part, shared);
    if (threadIdx.x == 0) out[0] = (float)(div > 0.0 ? total / div : total * scale);
}

// ----------------------------------------------------------------------------
// row L2 normalisation

#define L2N_ROWS_PER_BLOCK 8 // warps per block: one warp per row

// One warp per row, the squared norm accumulated in double as on the CPU (cpu_loss.c), so the two backends differ
// only by the summation order of that norm.
__global__ void l2norm_rows_kernel(float *out, float *norm, const float *inp, int M, int C) {
    const int row = blockIdx.x * L2N_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return; // whole warps exit together
    const float *x = inp + (size_t)row * C;
    float *y = out + (size_t)row * C;
    double ss = 0.0;
    for (int c = lane; c < C; c += 32)
        ss += (double)x[c] * (double)x[c];
    ss = warp_sum_d(ss); // every read of x happens before the shuffles
    float n = __double2float_rn(sqrt(ss));
    if (n < 1e-12f) n = 1e-12f; // clamp_min(1e-12); a NaN norm stays NaN
    for (int c = lane; c < C; c += 32)
        y[c] = __fdiv_rn(x[c], n); // out may alias inp: each lane rewrites only the elements it read
    if (norm && lane == 0) norm[row] = n;
}

extern "C" pad_status cuda_l2norm_rows(pad_backend *be, float *out, float *norm, const float *inp, int M, int C) {
    if (M == 0) return PAD_OK;
    l2norm_rows_kernel<<<(unsigned)CEIL_DIV(M, L2N_ROWS_PER_BLOCK), 32 * L2N_ROWS_PER_BLOCK, 0, cuda_stream_of(be)>>>(
        out, norm, inp, M, C);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

__global__ void l2norm_rows_backward_kernel(float *dinp, const float *dout, const float *out, const float *norm,
                                            int C) {
    __shared__ float shared[32];
    const long long row = blockIdx.x;
    const float *dy = dout + row * C;
    const float *y = out + row * C;
    float *dx = dinp + row * C;
    float part = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        part += y[c] * dy[c];
    const float yd = block_sum(part, shared);
    const float inv = 1.0f / norm[row];
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        dx[c] += (dy[c] - y[c] * yd) * inv;
}

extern "C" pad_status cuda_l2norm_rows_backward(pad_backend *be, float *dinp, const float *dout, const float *out,
                                                const float *norm, int M, int C) {
    if (M == 0) return PAD_OK;
    l2norm_rows_backward_kernel<<<(unsigned)M, 128, 0, cuda_stream_of(be)>>>(dinp, dout, out, norm, C);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// cross-entropy with target 0

// One warp per row, in double like cpu_loss.c: rowloss[n] = log(sum_k exp(z[n,k] - mx)) + mx - z[n,0] with mx the
// row's max; dz[n,k] = ((float)(exp(z[n,k] - mx) / s) - [k == 0]) / N.
__global__ void xent0_rows_kernel(double *rowloss, float *dz, const float *z, int N, int K) {
    const int lane = threadIdx.x % 32;
    const long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (n >= N) return; // whole warps exit together
    const float *zr = z + n * K;
    float *g = dz + n * K;
    float mx = -INFINITY;
    for (int k = lane; k < K; k += 32)
        mx = fmaxf(mx, zr[k]); // the sign of a zero maximum does not matter below
    mx = warp_max(mx);
    double s = 0.0;
    for (int k = lane; k < K; k += 32)
        s += exp((double)zr[k] - mx);
    s = warp_sum_d(s);
    const float invN = 1.0f / (float)N;
    for (int k = lane; k < K; k += 32)
        g[k] = ((float)(exp((double)zr[k] - mx) / s) - (k == 0 ? 1.0f : 0.0f)) * invN;
    if (lane == 0) rowloss[n] = log(s) + mx - zr[0];
}

extern "C" pad_status cuda_xent0(pad_backend *be, float *loss, float *dz, const float *z, int N, int K) {
    double *rowloss = (double *)pad_backend_scratch(be, (size_t)N * sizeof(double));
    if (!rowloss) return cuda_scratch_error(be);
    cudaStream_t st = cuda_stream_of(be);
    const int rows_per_block = 4; // 128 threads
    xent0_rows_kernel<<<(unsigned)CEIL_DIV(N, rows_per_block), 32 * rows_per_block, 0, st>>>(rowloss, dz, z, N, K);
    PAD_CUDA_CHECK_LAUNCH(be);
    sum_d_kernel<<<1, LOSS_THREADS, 0, st>>>(loss, rowloss, N, 0.0, (double)N, 0);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// EAM ("triplet") loss

// The EAM loss runs in double like its CPU twin (cpu_loss.c): pos - neg cancels when a sample is near the hinge,
// and a float difference there could flip the hinge's sign against the CPU's.

// Per-sample hinge arguments: one warp per row n of f(NS, D): h[n] = sum_d (f-wn)^2 - sum_d (f-wa)^2 + margin.
__global__ void eam_rows_kernel(double *h, const float *f, const float *wn, const float *wa, int NS, int D,
                                float margin) {
    const int lane = threadIdx.x % 32;
    const long long n = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (n >= NS) return;
    const float *x = f + n * D;
    double pos = 0.0, neg = 0.0;
    for (int d = lane; d < D; d += 32) {
        const double a = (double)x[d] - wn[d], c = (double)x[d] - wa[d];
        pos = __dadd_rn(pos, __dmul_rn(a, a));
        neg = __dadd_rn(neg, __dmul_rn(c, c));
    }
    pos = warp_sum_d(pos);
    neg = warp_sum_d(neg);
    if (lane == 0) h[n] = pos - neg + (double)margin;
}

// One thread per channel d, walking the samples in order: dwn[d] += inv * sum_{h[n]>0} -2 (f[n,d] - wn[d]),
// dwa[d] += inv * sum_{h[n]>0} 2 (f[n,d] - wa[d]).
__global__ void eam_rows_grad_kernel(float *dwn, float *dwa, const double *h, const float *f, const float *wn,
                                     const float *wa, int NS, int D, double inv) {
    const int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    double gn = 0.0, ga = 0.0;
    for (long long n = 0; n < NS; n++)
        if (h[n] > 0.0) {
            const double x = f[n * D + d];
            gn = __dadd_rn(gn, -2.0 * (x - wn[d]));
            ga = __dadd_rn(ga, 2.0 * (x - wa[d]));
        }
    dwn[d] += (float)(gn * inv);
    dwa[d] += (float)(ga * inv);
}

// Token-axis variant: one thread per channel d loops over b and t: h[b*D+d] and the anchor gradients.
__global__ void eam_token_axis_kernel(double *h, float *dwn, float *dwa, const float *f, const float *wn,
                                      const float *wa, int B, int T, int D, float margin, double inv) {
    const int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    double gn = 0.0, ga = 0.0;
    for (int b = 0; b < B; b++) {
        double pos = 0.0, neg = 0.0, sn = 0.0, sa = 0.0;
        for (int t = 0; t < T; t++) {
            const double x = f[((long long)b * T + t) * D + d];
            const double a = x - wn[d], c = x - wa[d];
            pos = __dadd_rn(pos, __dmul_rn(a, a));
            neg = __dadd_rn(neg, __dmul_rn(c, c));
            sn += a;
            sa += c;
        }
        const double hv = pos - neg + (double)margin;
        h[(long long)b * D + d] = hv;
        if (hv > 0.0) {
            gn += -2.0 * sn;
            ga += 2.0 * sa;
        }
    }
    dwn[d] += (float)(gn * inv);
    dwa[d] += (float)(ga * inv);
}

extern "C" pad_status cuda_eam_loss(pad_backend *be, float *loss, float *dwn, float *dwa, const float *f,
                                    const float *wn, const float *wa, int B, int T, int D, bool token_axis,
                                    float margin) {
    const long long n_h = token_axis ? (long long)B * D : (long long)B * T;
    double *h = (double *)pad_backend_scratch(be, (size_t)n_h * sizeof(double));
    if (!h) return cuda_scratch_error(be);
    const double inv = 1.0 / (double)n_h;
    cudaStream_t st = cuda_stream_of(be);
    if (token_axis) {
        eam_token_axis_kernel<<<(unsigned)CEIL_DIV(D, 64), 64, 0, st>>>(h, dwn, dwa, f, wn, wa, B, T, D, margin, inv);
        PAD_CUDA_CHECK_LAUNCH(be);
    } else {
        const int NS = B * T, rows_per_block = 4;
        eam_rows_kernel<<<(unsigned)CEIL_DIV(NS, rows_per_block), 32 * rows_per_block, 0, st>>>(h, f, wn, wa, NS, D,
                                                                                                margin);
        PAD_CUDA_CHECK_LAUNCH(be);
        eam_rows_grad_kernel<<<(unsigned)CEIL_DIV(D, 64), 64, 0, st>>>(dwn, dwa, h, f, wn, wa, NS, D, inv);
        PAD_CUDA_CHECK_LAUNCH(be);
    }
    sum_d_kernel<<<1, LOSS_THREADS, 0, st>>>(loss, h, n_h, inv, 0.0, 1);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// dot product

// out[0] = (float)(alpha * sum_i a[i] b[i]) with the sum in double, as cpu_dot; one block.
__global__ void dot_kernel(float *out, const float *a, const float *b, long long n, float alpha) {
    __shared__ double shared[32];
    double part = 0.0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x)
        part += (double)a[i] * (double)b[i];
    const double total = block_sum_d(part, shared);
    if (threadIdx.x == 0) out[0] = (float)((double)alpha * total);
}

extern "C" pad_status cuda_dot(pad_backend *be, float *out, const float *a, const float *b, size_t n, float alpha) {
    dot_kernel<<<1, LOSS_THREADS, 0, cuda_stream_of(be)>>>(out, a, b, (long long)n, alpha);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}
