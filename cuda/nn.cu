/* nn.cu - CUDA kernels for the elementwise, row and embedding ops (twins of host/cpu_nn.c): add_rows, axpy, scale,
 * layernorm (one block per row, two-pass mean/variance; with be->fast_kernels one warp per row holding the row in
 * registers), exact erf GELU (alone, and fused after the bias add: bias_gelu), QuickGELU and its backward (OpenAI
 * CLIP's MLP activation), gather/scatter of rows (scatter is
 * deterministic: one thread per (table row, column) walks the index list in order; an index >= R raises the
 * backend's error flag, reported at the next sync), the patch embedding
 * (im2col kernel + one cuBLAS GEMM per launch) and the SGD step. */
#include "cuda_common.cuh"
#include "cuda_ops.h"

__global__ void add_rows_kernel(float *x, const float *v, long long MN, int N, int R) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= MN) return;
    long long m = i / N;
    int n = (int)(i % N);
    x[i] += v[(m % R) * N + n];
}

extern "C" pad_status cuda_add_rows(pad_backend *be, float *x, const float *v, int M, int N, int R) {
    long long MN = (long long)M * N;
    if (MN == 0) return PAD_OK;
    add_rows_kernel<<<(unsigned)CEIL_DIV(MN, 256), 256, 0, cuda_stream_of(be)>>>(x, v, MN, N, R);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

__global__ void axpy_kernel(float *out, const float *a, float alpha, const float *b, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + alpha * b[i];
}

extern "C" pad_status cuda_axpy(pad_backend *be, float *out, const float *a, float alpha, const float *b, size_t n) {
    if (n == 0) return PAD_OK;
    axpy_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(out, a, alpha, b, (long long)n);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

__global__ void scale_kernel(float *out, const float *inp, float alpha, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = alpha * inp[i];
}

extern "C" pad_status cuda_scale(pad_backend *be, float *out, const float *inp, float alpha, size_t n) {
    if (n == 0) return PAD_OK;
    scale_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(out, inp, alpha, (long long)n);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// One block (256 threads) per row. Two passes (mean, then centred variance) like the CPU reference.
__global__ void layernorm_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                                 int C, float eps) {
    __shared__ float shared[32];
    const long long row = blockIdx.x;
    const float *x = inp + row * C;
    float *y = out + row * C;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        s += x[c];
    const float mu = block_sum(s, shared) / (float)C;
    float v = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float d = x[c] - mu;
        v += d * d;
    }
    const float rs = rsqrtf(block_sum(v, shared) / (float)C + eps);
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        y[c] = (x[c] - mu) * rs * w[c] + b[c];
    if (threadIdx.x == 0) {
        if (mean) mean[row] = mu;
        if (rstd) rstd[row] = rs;
    }
}

// One warp per row, the row read once into registers (C <= 32 * NPL): the same two-pass mean / centred variance as
// layernorm_kernel, summed in another order (equal within float rounding). A warp reads its whole row before it
// writes, and each lane writes only the elements it read, so out may alias inp.
#define LN_WARPS 8 // rows per block
template <int NPL>
__global__ void __launch_bounds__(LN_WARPS * 32)
    layernorm_warp_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int M,
                          int C, float eps) {
    const int lane = threadIdx.x % 32;
    const long long row = (long long)blockIdx.x * LN_WARPS + threadIdx.x / 32;
    if (row >= M) return; // warp-uniform: the whole warp leaves
    const float *x = inp + row * C;
    float v[NPL];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < NPL; k++) {
        const int c = lane + 32 * k;
        v[k] = c < C ? x[c] : 0.0f;
        s += v[k];
    }
    const float mu = warp_sum(s) / (float)C;
    float q = 0.0f;
#pragma unroll
    for (int k = 0; k < NPL; k++) {
        const int c = lane + 32 * k;
        const float d = c < C ? v[k] - mu : 0.0f;
        q += d * d;
    }
    const float rs = rsqrtf(warp_sum(q) / (float)C + eps);
    float *y = out + row * C;
#pragma unroll
    for (int k = 0; k < NPL; k++) {
        const int c = lane + 32 * k;
        if (c < C) y[c] = (v[k] - mu) * rs * w[c] + b[c];
    }
    if (lane == 0) {
        if (mean) mean[row] = mu;
        if (rstd) rstd[row] = rs;
    }
}

template <int NPL>
static void launch_layernorm_warp(cudaStream_t s, float *out, float *mean, float *rstd, const float *inp,
                                  const float *w, const float *b, int M, int C, float eps) {
    layernorm_warp_kernel<NPL>
        <<<(unsigned)CEIL_DIV(M, LN_WARPS), LN_WARPS * 32, 0, s>>>(out, mean, rstd, inp, w, b, M, C, eps);
}

extern "C" pad_status cuda_layernorm(pad_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                     const float *w, const float *b, int M, int C, float eps) {
    if (M == 0) return PAD_OK;
    cudaStream_t s = cuda_stream_of(be);
    if (be->fast_kernels && C <= 32 * 32) {
        if (C <= 32 * 4)
            launch_layernorm_warp<4>(s, out, mean, rstd, inp, w, b, M, C, eps);
        else if (C <= 32 * 8)
            launch_layernorm_warp<8>(s, out, mean, rstd, inp, w, b, M, C, eps);
        else if (C <= 32 * 16)
            launch_layernorm_warp<16>(s, out, mean, rstd, inp, w, b, M, C, eps);
        else
            launch_layernorm_warp<32>(s, out, mean, rstd, inp, w, b, M, C, eps);
    } else {
        layernorm_kernel<<<(unsigned)M, 256, 0, s>>>(out, mean, rstd, inp, w, b, C, eps);
    }
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

__global__ void gelu_kernel(float *out, const float *inp, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
}

extern "C" pad_status cuda_gelu(pad_backend *be, float *out, const float *inp, size_t n) {
    if (n == 0) return PAD_OK;
    gelu_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(out, inp, (long long)n);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// The same arithmetic as add_rows_kernel then gelu_kernel (the sum is rounded to float first), in one pass.
__global__ void bias_gelu_kernel(float *out, const float *inp, const float *bias, long long MN, int N) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < MN) {
        float x = inp[i] + bias[i % N];
        out[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
}

extern "C" pad_status cuda_bias_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N) {
    long long MN = (long long)M * N;
    if (MN == 0) return PAD_OK;
    bias_gelu_kernel<<<(unsigned)CEIL_DIV(MN, 256), 256, 0, cuda_stream_of(be)>>>(out, inp, bias, MN, N);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// QuickGELU (x sigmoid(1.702 x)), the same float expression as cpu_quick_gelu; bias may be NULL.
__device__ __forceinline__ float quick_gelu_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-1.702f * x));
}

__global__ void quick_gelu_kernel(float *out, const float *inp, const float *bias, long long MN, int N) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < MN) {
        float x = bias ? inp[i] + bias[i % N] : inp[i];
        out[i] = x * quick_gelu_sigmoid(x);
    }
}

extern "C" pad_status cuda_quick_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N) {
    long long MN = (long long)M * N;
    if (MN == 0) return PAD_OK;
    quick_gelu_kernel<<<(unsigned)CEIL_DIV(MN, 256), 256, 0, cuda_stream_of(be)>>>(out, inp, bias, MN, N);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

__global__ void quick_gelu_backward_kernel(float *dinp, const float *dout, const float *inp, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float x = inp[i], s = quick_gelu_sigmoid(x);
        dinp[i] = dout[i] * (s + 1.702f * x * s * (1.0f - s));
    }
}

extern "C" pad_status cuda_quick_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp,
                                               size_t n) {
    if (n == 0) return PAD_OK;
    quick_gelu_backward_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(dinp, dout, inp,
                                                                                                      (long long)n);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

__global__ void gather_rows_kernel(float *out, const float *inp, const int32_t *idx, int n, int C) {
    const int i = blockIdx.x;
    const int r = idx[i];
    if (r < 0) return;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        out[(long long)i * C + c] = inp[(long long)r * C + c];
}

extern "C" pad_status cuda_gather_rows(pad_backend *be, float *out, const float *inp, const int32_t *idx, int n,
                                       int C) {
    if (n == 0) return PAD_OK;
    gather_rows_kernel<<<(unsigned)n, 128, 0, cuda_stream_of(be)>>>(out, inp, idx, n, C);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// grid (R, ceil(C/128)): thread (r, c) sums dout[i, c] over i with idx[i] == r, in increasing i.
__global__ void scatter_add_rows_kernel(float *dtable, const float *dout, const int32_t *idx, int n, int C) {
    const int r = blockIdx.x;
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = dtable[(long long)r * C + c];
    for (int i = 0; i < n; i++)
        if (idx[i] == r) acc += dout[(long long)i * C + c];
    dtable[(long long)r * C + c] = acc;
}

// Raises CUDA_ERRFLAG_SCATTER_RANGE in the backend's error flag (mapped host memory) for an index >= R; every
// thread that finds one writes the same value, so no atomic is needed.
__global__ void scatter_check_kernel(int *err, const int32_t *idx, int n, int R) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && idx[i] >= R) *(volatile int *)err = CUDA_ERRFLAG_SCATTER_RANGE;
}

extern "C" pad_status cuda_scatter_add_rows(pad_backend *be, float *dtable, const float *dout, const int32_t *idx,
                                            int n, int C, int R) {
    if (n == 0 || R == 0) return PAD_OK;
    cudaStream_t s = cuda_stream_of(be);
    scatter_check_kernel<<<(unsigned)CEIL_DIV(n, 256), 256, 0, s>>>(cuda_impl_of(be)->err_dev, idx, n, R);
    PAD_CUDA_CHECK_LAUNCH(be);
    dim3 grid((unsigned)R, (unsigned)CEIL_DIV(C, 128));
    scatter_add_rows_kernel<<<grid, 128, 0, s>>>(dtable, dout, idx, n, C);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// im2col: cols(B*G*G, 3*P*P), patch vector ordered [c][ky][kx] like conv_w(D,3,P,P).
__global__ void im2col_kernel(float *cols, const float *pixels, int B, int S, int P, int G) {
    const long long KP = 3LL * P * P;
    const long long total = (long long)B * G * G * KP;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    long long bp = i / KP;
    int k = (int)(i % KP);
    int b = (int)(bp / (G * G)), p = (int)(bp % (G * G));
    int pi = p / G, pj = p % G;
    int c = k / (P * P), ky = (k / P) % P, kx = k % P;
    cols[i] = pixels[(((long long)b * 3 + c) * S + (long long)pi * P + ky) * S + (long long)pj * P + kx];
}

// x(B,T,D) rows: row 0 = cls + pos[0]; rows 1.. = pos[t] (the GEMM then accumulates the patch projections).
__global__ void embed_init_kernel(float *x, const float *cls, const float *pos, int T, int D, long long total) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    long long td = i % ((long long)T * D);
    int t = (int)(td / D), d = (int)(td % D);
    x[i] = pos[td] + (t == 0 ? cls[d] : 0.0f);
}

extern "C" pad_status cuda_patch_embed(pad_backend *be, float *x, const float *pixels, const float *conv_w,
                                       const float *cls, const float *pos, int B, int S, int P, int D) {
    if (B == 0) return PAD_OK;
    const int G = S / P, GG = G * G, T = 1 + GG, KP = 3 * P * P;
    float *cols = (float *)pad_backend_scratch(be, (size_t)B * GG * KP * sizeof(float));
    if (!cols) return cuda_scratch_error(be);
    const long long ncols = (long long)B * GG * KP;
    im2col_kernel<<<(unsigned)CEIL_DIV(ncols, 256), 256, 0, cuda_stream_of(be)>>>(cols, pixels, B, S, P, G);
    PAD_CUDA_CHECK_LAUNCH(be);
    const long long nx = (long long)B * T * D;
    embed_init_kernel<<<(unsigned)CEIL_DIV(nx, 256), 256, 0, cuda_stream_of(be)>>>(x, cls, pos, T, D, nx);
    PAD_CUDA_CHECK_LAUNCH(be);
    // x_b[1:] (GG, D) += cols_b(GG, KP) @ conv_w(D, KP)^T, batched over images with stride T*D in x
    return be->ops->gemm(be, false, true, GG, D, KP, 1.0f, cols, KP, (long long)GG * KP, conv_w, KP, 0, 1.0f, x + D, D,
                         (long long)T * D, B);
}

__global__ void sgd_kernel(float *p, const float *grad, float *buf, long long n, float lr, float momentum, float wd,
                           int first) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grad[i] + wd * p[i];
    float m = first ? g : momentum * buf[i] + g;
    buf[i] = m;
    p[i] -= lr * m;
}

extern "C" pad_status cuda_sgd_step(pad_backend *be, float *p, const float *grad, float *buf, size_t n, float lr,
                                    float momentum, float weight_decay, bool first) {
    if (n == 0) return PAD_OK;
    sgd_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(
        p, grad, buf, (long long)n, lr, momentum, weight_decay, first ? 1 : 0);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}
