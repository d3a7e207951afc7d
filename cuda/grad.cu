/* grad.cu - CUDA kernels for the input-gradient ops of the text-tower backward pass (twins of host/cpu_grad.c):
 * LayerNorm backward (one block per row, accumulating into dinp), exact-GELU backward and multi-head attention
 * backward (two kernels through a dS scratch; no atomics, every output is one serial sum: deterministic). */
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

// Attention backward, step 1: one block per query row (b, h, t); threads over the keys s.
// dS(B,NH,T,T)[b,h,t,s] = P[t,s] * (dP[t,s] - sum_s' dP[t,s'] P[t,s']) with dP[t,s] = dO[t] . V[s]; 0 where masked.
__global__ void attention_backward_ds_kernel(float *dS, const float *dout, const float *qkv, const float *att, int T,
                                             int NH, int HS, int causal) {
    __shared__ float shared[32];
    const long long row = blockIdx.x; // ((b * NH) + h) * T + t
    const int t = (int)(row % T);
    const long long bh = row / T;
    const int h = (int)(bh % NH);
    const long long b = bh / NH;
    const int C = NH * HS, C3 = 3 * C;
    const int n_keys = causal ? t + 1 : T;
    const float *p = att + row * T;
    const float *d_o = dout + (b * T + t) * C + h * HS;
    const float *vbase = qkv + b * T * C3 + 2 * C + h * HS;
    float *ds = dS + row * T;
    float part = 0.0f;
    for (int s = threadIdx.x; s < T; s += blockDim.x) {
        float dp = 0.0f;
        if (s < n_keys) {
            const float *v = vbase + (long long)s * C3;
            for (int i = 0; i < HS; i++)
                dp += d_o[i] * v[i];
        }
        ds[s] = dp; // each thread re-reads only the entries it wrote
        part += dp * p[s];
    }
    const float rowsum = block_sum(part, shared);
    for (int s = threadIdx.x; s < T; s += blockDim.x)
        ds[s] = s < n_keys ? p[s] * (ds[s] - rowsum) : 0.0f;
}

// Attention backward, step 2: block (b*NH + h, t), threads over the head dimension i. Every element of dqkv is
// written exactly once, each as a serial sum in increasing s (deterministic):
//   dQ[t,i] = scale sum_s dS[t,s] K[s,i];  dK[t,i] = scale sum_s dS[s,t] Q[s,i];  dV[t,i] = sum_s P[s,t] dO[s,i].
__global__ void attention_backward_dqkv_kernel(float *dqkv, const float *dS, const float *dout, const float *qkv,
                                               const float *att, int T, int NH, int HS, int causal, float scale) {
    const long long bh = blockIdx.x;
    const int t = blockIdx.y;
    const int h = (int)(bh % NH);
    const long long b = bh / NH;
    const int C = NH * HS, C3 = 3 * C;
    const float *base = qkv + b * T * C3;
    const float *dsb = dS + bh * T * T;
    const float *pb = att + bh * T * T;
    const float *dob = dout + b * T * C;
    float *drow = dqkv + (b * T + t) * C3;
    const int n_keys = causal ? t + 1 : T; // keys s seen by query t
    const int q_first = causal ? t : 0;    // queries s that see key t
    for (int i = threadIdx.x; i < HS; i += blockDim.x) {
        const int col = h * HS + i;
        float dq = 0.0f, dk = 0.0f, dv = 0.0f;
        for (int s = 0; s < n_keys; s++)
            dq += dsb[(long long)t * T + s] * base[(long long)s * C3 + C + col];
        for (int s = q_first; s < T; s++) {
            dk += dsb[(long long)s * T + t] * base[(long long)s * C3 + col];
            dv += pb[(long long)s * T + t] * dob[(long long)s * C + col];
        }
        drow[col] = scale * dq;
        drow[C + col] = scale * dk;
        drow[2 * C + col] = dv;
    }
}

extern "C" pad_status cuda_attention_backward(pad_backend *be, float *dqkv, const float *dout, const float *qkv,
                                              const float *att, int B, int T, int NH, int HS, bool causal) {
    if (B == 0) return PAD_OK;
    float *dS = (float *)pad_backend_scratch(be, (size_t)B * NH * T * T * sizeof(float));
    if (!dS) return cuda_scratch_error(be);
    const long long rows = (long long)B * NH * T;
    cudaStream_t st = cuda_stream_of(be);
    attention_backward_ds_kernel<<<(unsigned)rows, 64, 0, st>>>(dS, dout, qkv, att, T, NH, HS, causal ? 1 : 0);
    PAD_CUDA_CHECK_LAUNCH(be);
    dim3 grid((unsigned)(B * NH), (unsigned)T);
    const int threads = HS < 128 ? 64 : 128;
    attention_backward_dqkv_kernel<<<grid, threads, 0, st>>>(dqkv, dS, dout, qkv, att, T, NH, HS, causal ? 1 : 0,
                                                             1.0f / sqrtf((float)HS));
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}
