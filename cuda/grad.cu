/* grad.cu - CUDA kernels for the input-gradient ops of the text-tower backward pass (twins of host/cpu_grad.c):
 * LayerNorm backward (one block per row, accumulating into dinp) and exact-GELU backward. */
#include "cuda_common.cuh"
#include "cuda_ops.h"

__global__ void layernorm_backward_kernel(float *dinp, const float *dout, const float *inp, const float *w,
                                          const float *mean, const float *rstd, int C) {
    __shared__ float shared[32];
    const long long row = blockIdx.x;
    const float *dy = dout + row * C;
    const float *x = inp + row * C;
    float *dx = dinp + row * C;
    const float mu = mean[row], rs = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = dy[c] * w[c];
        sg += g;
        sgx += g * (x[c] - mu) * rs;
    }
    sg = block_sum(sg, shared) / (float)C;
    sgx = block_sum(sgx, shared) / (float)C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = dy[c] * w[c];
        float xh = (x[c] - mu) * rs;
        dx[c] += (g - sg - xh * sgx) * rs;
    }
}

extern "C" pad_status cuda_layernorm_backward(pad_backend *be, float *dinp, const float *dout, const float *inp,
                                              const float *w, const float *mean, const float *rstd, int M, int C) {
    if (M == 0) return PAD_OK;
    layernorm_backward_kernel<<<(unsigned)M, 256, 0, cuda_stream_of(be)>>>(dinp, dout, inp, w, mean, rstd, C);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

__global__ void gelu_backward_kernel(float *dinp, const float *dout, const float *inp, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = inp[i];
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.3989422804014327f * expf(-0.5f * x * x);
    dinp[i] = dout[i] * (cdf + x * pdf);
}

extern "C" pad_status cuda_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n) {
    if (n == 0) return PAD_OK;
    gelu_backward_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(dinp, dout, inp,
                                                                                                (long long)n);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}
