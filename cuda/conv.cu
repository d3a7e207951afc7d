/* conv.cu - CUDA twins of host/backend/cpu_conv.c: conv2d on cuDNN; pooling, adaptive average pooling, the residual
 * add, the NCHW-to-rows transpose and PatchCore's Euclidean nearest neighbour (cuBLAS GEMM + one warp per row) as
 * our own kernels.
 *
 * conv2d runs cudnnConvolutionBiasActivationForward, which fuses the bias, the residual input (z, alpha2 = 1) and the
 * ReLU into the convolution. Each distinct shape gets a plan, made once and cached for the backend's lifetime: the
 * tensor/filter/convolution descriptors and an algorithm picked from cuDNN's heuristics
 * (cudnnGetConvolutionForwardAlgorithm_v7, no benchmarking, so no allocation): the first deterministic one whose
 * math type is allowed (FMA only for PAD_MATH_FP32, tensor cores otherwise). Without ReLU cuDNN fuses only with
 * IMPLICIT_PRECOMP_GEMM, so that algorithm is used then. One workspace serves every plan: it grows (outside graph
 * captures) to the largest plan's need, so in steady state it is allocated once. A missing bias is a zero vector
 * kept for the purpose. The pooling kernels follow the CPU's operation order with _rn intrinsics, one thread per
 * output, so they agree with the CPU bit for bit; the convolution agrees to rounding. */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#include <cudnn.h>
#include <stdlib.h>
#include <string.h>

#define PAD_CUDNN_TRY(be, expr)                                                                                        \
    do {                                                                                                               \
        cudnnStatus_t err_ = (expr);                                                                                   \
        if (err_ != CUDNN_STATUS_SUCCESS) {                                                                            \
            pad_log(PAD_LOG_LEVEL_ERROR, "%s:%d: %s failed: %s", __FILE__, __LINE__, #expr,                            \
                    cudnnGetErrorString(err_));                                                                        \
            (be)->poisoned = true;                                                                                     \
            return PAD_ERR_CUDA;                                                                                       \
        }                                                                                                              \
    } while (0)

#define CONV_MAX_PLANS 256 // distinct convolution shapes per backend (a wide ResNet-50 at one batch size has ~20)

typedef struct conv_plan {
    pad_conv2d_desc d;
    int math; // be->math when the plan was made
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws_bytes;
} conv_plan;

typedef struct cuda_dnn {
    cudnnHandle_t h;
    cudnnActivationDescriptor_t relu, identity;
    conv_plan plans[CONV_MAX_PLANS];
    int n_plans;
    void *ws; // shared workspace (grow-only)
    size_t ws_bytes;
    float *zero_bias; // zeros for convolutions without a bias (grow-only)
    int zero_bias_n;
} cuda_dnn;

static void plan_release(conv_plan *p) {
    if (p->x) cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cudnnDestroyTensorDescriptor(p->y);
    if (p->bias) cudnnDestroyTensorDescriptor(p->bias);
    if (p->w) cudnnDestroyFilterDescriptor(p->w);
    if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
}

extern "C" void cuda_conv_release(pad_backend *be) {
    cuda_impl *im = cuda_impl_of(be);
    cuda_dnn *dn = im ? (cuda_dnn *)im->dnn : NULL;
    if (!dn) return;
    for (int i = 0; i < dn->n_plans; i++)
        plan_release(&dn->plans[i]);
    if (dn->relu) cudnnDestroyActivationDescriptor(dn->relu);
    if (dn->identity) cudnnDestroyActivationDescriptor(dn->identity);
    if (dn->h) cudnnDestroy(dn->h);
    cudaFree(dn->ws);
    cudaFree(dn->zero_bias);
    free(dn);
    im->dnn = NULL;
}

// The backend's cuDNN state, created on first use (not during a graph capture: the first call of a captured
// sequence runs eagerly, see pad_graph_run).
static pad_status dnn_of(pad_backend *be, cuda_dnn **out) {
    cuda_impl *im = cuda_impl_of(be);
    if (!im->dnn) {
        if (be->capturing) {
            PAD_LOG_ERROR("conv2d: cuDNN cannot be initialised during a graph capture");
            return PAD_ERR_UNSUPPORTED;
        }
        cuda_dnn *dn = (cuda_dnn *)calloc(1, sizeof *dn);
        if (!dn) return PAD_ERR_OOM;
        im->dnn = dn;
        PAD_CUDNN_TRY(be, cudnnCreate(&dn->h));
        PAD_CUDNN_TRY(be, cudnnSetStream(dn->h, im->stream));
        PAD_CUDNN_TRY(be, cudnnCreateActivationDescriptor(&dn->relu));
        PAD_CUDNN_TRY(be, cudnnSetActivationDescriptor(dn->relu, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
        PAD_CUDNN_TRY(be, cudnnCreateActivationDescriptor(&dn->identity));
        PAD_CUDNN_TRY(be,
                      cudnnSetActivationDescriptor(dn->identity, CUDNN_ACTIVATION_IDENTITY, CUDNN_PROPAGATE_NAN, 0.0));
    }
    *out = (cuda_dnn *)im->dnn;
    return PAD_OK;
}

static bool same_desc(const pad_conv2d_desc *a, const pad_conv2d_desc *b) {
    return a->B == b->B && a->C == b->C && a->H == b->H && a->W == b->W && a->K == b->K && a->kh == b->kh &&
           a->kw == b->kw && a->stride == b->stride && a->pad == b->pad && a->relu == b->relu;
}

// Picks the algorithm of plan p (descriptors set): IMPLICIT_PRECOMP_GEMM without ReLU (the only one cuDNN fuses
// with an identity activation), else the heuristics' first deterministic choice with an allowed math type.
static pad_status plan_pick_algo(pad_backend *be, cuda_dnn *dn, conv_plan *p) {
    const cudnnMathType_t want = be->math == PAD_MATH_FP32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
    PAD_CUDNN_TRY(be, cudnnSetConvolutionMathType(p->conv, want));
    p->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    if (p->d.relu) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int n = 0;
        PAD_CUDNN_TRY(be, cudnnGetConvolutionForwardAlgorithm_v7(dn->h, p->x, p->w, p->conv, p->y,
                                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
        for (int i = 0; i < n; i++) {
            if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].determinism != CUDNN_DETERMINISTIC) continue;
            if (want == CUDNN_FMA_MATH && perf[i].mathType != CUDNN_FMA_MATH && perf[i].mathType != CUDNN_DEFAULT_MATH)
                continue;
            p->algo = perf[i].algo;
            PAD_CUDNN_TRY(be, cudnnSetConvolutionMathType(p->conv, want == CUDNN_FMA_MATH ? want : perf[i].mathType));
            break;
        }
    }
    PAD_CUDNN_TRY(be, cudnnGetConvolutionForwardWorkspaceSize(dn->h, p->x, p->w, p->conv, p->y, p->algo, &p->ws_bytes));
    return PAD_OK;
}

// The cached plan of d (made on first sight).
static pad_status plan_of(pad_backend *be, cuda_dnn *dn, const pad_conv2d_desc *d, conv_plan **out) {
    for (int i = 0; i < dn->n_plans; i++)
        if (same_desc(&dn->plans[i].d, d) && dn->plans[i].math == be->math) {
            *out = &dn->plans[i];
            return PAD_OK;
        }
    if (be->capturing) {
        PAD_LOG_ERROR("conv2d: a new convolution shape during a graph capture");
        return PAD_ERR_UNSUPPORTED;
    }
    if (dn->n_plans == CONV_MAX_PLANS) {
        PAD_LOG_ERROR("conv2d: more than %d distinct convolution shapes", CONV_MAX_PLANS);
        return PAD_ERR_UNSUPPORTED;
    }
    conv_plan *p = &dn->plans[dn->n_plans];
    memset(p, 0, sizeof *p);
    p->d = *d;
    p->math = be->math;
    const int Ho = pad_conv_out_size(d->H, d->kh, d->stride, d->pad);
    const int Wo = pad_conv_out_size(d->W, d->kw, d->stride, d->pad);
    dn->n_plans++; // counted now so that a failure below still releases the descriptors
    PAD_CUDNN_TRY(be, cudnnCreateTensorDescriptor(&p->x));
    PAD_CUDNN_TRY(be, cudnnCreateTensorDescriptor(&p->y));
    PAD_CUDNN_TRY(be, cudnnCreateTensorDescriptor(&p->bias));
    PAD_CUDNN_TRY(be, cudnnCreateFilterDescriptor(&p->w));
    PAD_CUDNN_TRY(be, cudnnCreateConvolutionDescriptor(&p->conv));
    PAD_CUDNN_TRY(be, cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->B, d->C, d->H, d->W));
    PAD_CUDNN_TRY(be, cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->B, d->K, Ho, Wo));
    PAD_CUDNN_TRY(be, cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, d->K, 1, 1));
    PAD_CUDNN_TRY(be, cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->K, d->C, d->kh, d->kw));
    PAD_CUDNN_TRY(be, cudnnSetConvolution2dDescriptor(p->conv, d->pad, d->pad, d->stride, d->stride, 1, 1,
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    PAD_TRY(plan_pick_algo(be, dn, p));
    *out = p;
    return PAD_OK;
}

// Grows the shared workspace and the zero bias to what plan p needs (never during a capture).
static pad_status ensure_buffers(pad_backend *be, cuda_dnn *dn, const conv_plan *p, bool need_zero_bias) {
    if (p->ws_bytes > dn->ws_bytes) {
        if (be->capturing) {
            PAD_LOG_ERROR("conv2d: the cuDNN workspace would grow during a graph capture");
            return PAD_ERR_UNSUPPORTED;
        }
        PAD_CUDA_TRY(be, cudaStreamSynchronize(cuda_stream_of(be)));
        cudaFree(dn->ws);
        dn->ws = NULL;
        dn->ws_bytes = 0;
        PAD_CUDA_TRY(be, cudaMalloc(&dn->ws, p->ws_bytes));
        dn->ws_bytes = p->ws_bytes;
    }
    if (need_zero_bias && p->d.K > dn->zero_bias_n) {
        if (be->capturing) {
            PAD_LOG_ERROR("conv2d: the zero bias would grow during a graph capture");
            return PAD_ERR_UNSUPPORTED;
        }
        PAD_CUDA_TRY(be, cudaStreamSynchronize(cuda_stream_of(be)));
        cudaFree(dn->zero_bias);
        dn->zero_bias = NULL;
        dn->zero_bias_n = 0;
        PAD_CUDA_TRY(be, cudaMalloc(&dn->zero_bias, (size_t)p->d.K * sizeof(float)));
        PAD_CUDA_TRY(be, cudaMemsetAsync(dn->zero_bias, 0, (size_t)p->d.K * sizeof(float), cuda_stream_of(be)));
        dn->zero_bias_n = p->d.K;
    }
    return PAD_OK;
}

extern "C" pad_status cuda_conv2d(pad_backend *be, const pad_conv2d_desc *d, float *out, const float *inp,
                                  const float *w, const float *bias, const float *res) {
    cuda_dnn *dn = NULL;
    conv_plan *p = NULL;
    PAD_TRY(dnn_of(be, &dn));
    PAD_TRY(plan_of(be, dn, d, &p));
    PAD_TRY(ensure_buffers(be, dn, p, bias == NULL));
    const float alpha1 = 1.0f, alpha2 = res ? 1.0f : 0.0f;
    // z = res (alpha2 1) or, without a residual, y itself with alpha2 0 (cuDNN allows z to alias y)
    PAD_CUDNN_TRY(be, cudnnConvolutionBiasActivationForward(dn->h, &alpha1, p->x, inp, p->w, w, p->conv, p->algo,
                                                            dn->ws, p->ws_bytes, &alpha2, p->y, res ? res : out,
                                                            p->bias, bias ? bias : dn->zero_bias,
                                                            d->relu ? dn->relu : dn->identity, p->y, out));
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// pooling and residual add (one thread per output, the CPU's operation order)

static __global__ void pool2d_kernel(float *out, const float *inp, long long total, int H, int W, int Ho, int Wo, int k,
                                     int s, int p, int avg) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int ox = (int)(i % Wo), oy = (int)((i / Wo) % Ho);
    const long long bc = i / ((long long)Wo * Ho);
    const float *x = inp + bc * H * W;
    const int y0 = oy * s - p, x0 = ox * s - p;
    float acc = avg ? 0.0f : -INFINITY;
    for (int ky = 0; ky < k; ky++) {
        const int iy = y0 + ky;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < k; kx++) {
            const int ix = x0 + kx;
            if (ix < 0 || ix >= W) continue;
            const float v = x[(size_t)iy * W + ix];
            if (avg)
                acc = __fadd_rn(acc, v);
            else if (v > acc || isnan(v))
                acc = isnan(acc) ? acc : v;
        }
    }
    out[i] = avg ? __fmul_rn(acc, 1.0f / (float)(k * k)) : acc;
}

extern "C" pad_status cuda_pool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int k,
                                  int s, int p, pad_pool_mode mode) {
    const int Ho = pad_conv_out_size(H, k, s, p), Wo = pad_conv_out_size(W, k, s, p);
    const long long total = (long long)B * C * Ho * Wo;
    pool2d_kernel<<<(unsigned)CEIL_DIV(total, 256), 256, 0, cuda_stream_of(be)>>>(out, inp, total, H, W, Ho, Wo, k, s,
                                                                                  p, mode == PAD_POOL_AVG);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

static __global__ void adaptive_avgpool2d_kernel(float *out, const float *inp, long long total, int H, int W, int Ho,
                                                 int Wo) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    const int j = (int)(t % Wo), i = (int)((t / Wo) % Ho);
    const float *x = inp + (t / ((long long)Wo * Ho)) * H * W;
    const int y0 = (int)((long long)i * H / Ho), y1 = (int)(((long long)(i + 1) * H + Ho - 1) / Ho);
    const int x0 = (int)((long long)j * W / Wo), x1 = (int)(((long long)(j + 1) * W + Wo - 1) / Wo);
    double acc = 0.0;
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++)
            acc = __dadd_rn(acc, (double)x[(size_t)iy * W + ix]);
    out[t] = (float)__ddiv_rn(acc, __dmul_rn((double)(y1 - y0), (double)(x1 - x0)));
}

extern "C" pad_status cuda_adaptive_avgpool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W,
                                              int Ho, int Wo) {
    const long long total = (long long)B * C * Ho * Wo;
    adaptive_avgpool2d_kernel<<<(unsigned)CEIL_DIV(total, 256), 256, 0, cuda_stream_of(be)>>>(out, inp, total, H, W, Ho,
                                                                                              Wo);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

static __global__ void residual_add_kernel(float *out, const float *a, const float *b, long long n, int relu) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = __fadd_rn(a[i], b[i]);
    out[i] = relu && v < 0.0f ? 0.0f : v;
}

extern "C" pad_status cuda_residual_add(pad_backend *be, float *out, const float *a, const float *b, size_t n,
                                        bool relu) {
    residual_add_kernel<<<(unsigned)CEIL_DIV((long long)n, 256), 256, 0, cuda_stream_of(be)>>>(out, a, b, (long long)n,
                                                                                               relu);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// to_rows and knn_l2 (PatchCore's embedding layout and nearest neighbours)

static __global__ void to_rows_kernel(float *out, int ldo, const float *inp, int C, int HW, long long total) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= total) return;
    // t runs over (b, c, p) with p fastest: coalesced reads
    const long long p = t % HW, c = (t / HW) % C, b = t / ((long long)HW * C);
    out[(b * HW + p) * ldo + c] = inp[t];
}

extern "C" pad_status cuda_to_rows(pad_backend *be, float *out, int ldo, const float *inp, int B, int C, int HW) {
    const long long total = (long long)B * C * HW;
    to_rows_kernel<<<(unsigned)CEIL_DIV(total, 256), 256, 0, cuda_stream_of(be)>>>(out, ldo, inp, C, HW, total);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

#define KNN_ROWS_PER_BLOCK 8 // warps per block of the one-warp-per-row kernels
#define KNN_L2_TILE        1024

// out(n) = squared norms of the rows of x(n, D), summed in double (one warp per row), rounded once.
static __global__ void sq_norms_kernel(float *out, const float *x, int n, int D) {
    const int row = blockIdx.x * KNN_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n) return;
    const float *r = x + (size_t)row * D;
    double s = 0.0;
    for (int d = lane; d < D; d += 32)
        s += (double)r[d] * r[d];
    s = warp_sum_d(s);
    if (lane == 0) out[row] = (float)s;
}

// One warp per query row of s(m, Nb): the CPU's d2 in the same float operations, first minimum.
static __global__ void l2_min_kernel(float *dist, int32_t *idx, const float *s, const float *qn, const float *bn, int m,
                                     int Nb) {
    const int row = blockIdx.x * KNN_ROWS_PER_BLOCK + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= m) return;
    const float *si = s + (size_t)row * Nb;
    float best = NAN;
    int bi = -1;
    for (int j = lane; j < Nb; j += 32) {
        float v = __fadd_rn(__fmul_rn(-2.0f, si[j]), qn[row]);
        v = __fadd_rn(v, bn[j]);
        v = v < 0.0f ? 0.0f : v;
        if (v < best || (bi < 0 && !isnan(v))) best = v, bi = j;
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && (bi < 0 || ob < best || (ob == best && oi < bi))) best = ob, bi = oi;
    }
    if (lane == 0) {
        dist[row] = bi < 0 ? NAN : sqrtf(best);
        if (idx) idx[row] = bi;
    }
}

extern "C" pad_status cuda_knn_l2(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq,
                                  const float *bank, int Nb, int D) {
    const int tile = Nq < KNN_L2_TILE ? Nq : KNN_L2_TILE;
    float *scr = (float *)pad_backend_scratch(be, ((size_t)tile * Nb + Nb + tile) * sizeof(float));
    if (!scr) return PAD_ERR_OOM;
    float *bn = scr, *qn = scr + Nb, *s = scr + Nb + tile;
    cudaStream_t st = cuda_stream_of(be);
    sq_norms_kernel<<<CEIL_DIV(Nb, KNN_ROWS_PER_BLOCK), 32 * KNN_ROWS_PER_BLOCK, 0, st>>>(bn, bank, Nb, D);
    PAD_CUDA_CHECK_LAUNCH(be);
    for (int q0 = 0; q0 < Nq; q0 += tile) {
        const int m = Nq - q0 < tile ? Nq - q0 : tile;
        const float *q = query + (size_t)q0 * D;
        sq_norms_kernel<<<CEIL_DIV(m, KNN_ROWS_PER_BLOCK), 32 * KNN_ROWS_PER_BLOCK, 0, st>>>(qn, q, m, D);
        PAD_CUDA_CHECK_LAUNCH(be);
        PAD_TRY(be->ops->gemm(be, false, true, m, Nb, D, 1.0f, q, D, 0, bank, D, 0, 0.0f, s, Nb, 0, 1));
        l2_min_kernel<<<CEIL_DIV(m, KNN_ROWS_PER_BLOCK), 32 * KNN_ROWS_PER_BLOCK, 0, st>>>(
            dist + q0, idx ? idx + q0 : NULL, s, qn, bn, m, Nb);
        PAD_CUDA_CHECK_LAUNCH(be);
    }
    return PAD_OK;
}
