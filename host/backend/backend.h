/* backend.h - internal compute-backend interface: one table of function pointers per backend (ggml's *_i pattern).
 *
 * Two implementations fill pad_backend_ops: the CPU reference (host/backend_cpu.c + host/cpu_<group>.c: OpenBLAS for
 * GEMM, OpenMP over rows, never over a reduction axis, so results do not depend on the thread count) and CUDA
 * (cuda/backend_cuda.cu + cuda/<group>.cu: cuBLAS + our kernels, one stream per backend, no float atomics in
 * reductions). Model code (vit.c, text.c, prompt.c, score.c) is written once against the checked pad_op_*
 * wrappers in backend.c, never against the table directly.
 *
 * Conventions for every op:
 * - float32, row-major, contiguous unless a leading dimension / stride is given; shapes in comments use the
 *   dimension letters B batch, T tokens, C channels, NH heads, HS head size, D features, M/N/K GEMM sizes.
 * - Pointers are device memory for CUDA and host memory for CPU; only the owning backend dereferences them.
 *   Get them from pad_buf_alloc(); move data with pad_buf_upload()/pad_buf_download().
 * - Ops are asynchronous on CUDA (ordered on the backend's stream); pad_backend_sync() waits. download is
 *   synchronous.
 * - An op returns PAD_OK or an error; after PAD_ERR_CUDA the backend is poisoned and every later call fails.
 * - "accumulate" means out += result; otherwise out = result. In-place use is allowed only where stated.
 */
#ifndef PAD_HOST_BACKEND_H
#define PAD_HOST_BACKEND_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pad_backend_ops pad_backend_ops;

// One 2-D convolution (see conv2d below): input (B,C,H,W), K output channels, a kh x kw kernel, stride, zero
// padding on every side, dilation 1, groups 1; relu fuses max(x, 0) after the bias and residual adds.
typedef struct pad_conv2d_desc {
    int B, C, H, W, K, kh, kw, stride, pad;
    bool relu;
} pad_conv2d_desc;

typedef enum pad_pool_mode { PAD_POOL_MAX = 0, PAD_POOL_AVG = 1 } pad_pool_mode;

// Output height/width of a convolution or pooling window: (n + 2 pad - k) / stride + 1 (0 or less when invalid).
static inline int pad_conv_out_size(int n, int k, int stride, int pad) {
    return stride > 0 && n + 2 * pad >= k ? (n + 2 * pad - k) / stride + 1 : 0;
}

struct pad_backend {
    pad_backend_kind kind;
    const pad_backend_ops *ops;
    void *impl;             // backend-private state (cuBLAS handle, stream, scratch, ...)
    bool poisoned;          // set after a CUDA error: every later call returns PAD_ERR_CUDA
    int math;               // pad_math_mode of the GEMMs: PAD_MATH_FP32 unless set (CUDA only; never in parity tests)
    bool fast_kernels;      // CUDA only: the fast-path kernels (warp-per-row LayerNorm, attention_dual through
                            // batched cuBLAS GEMMs); off by default until verified on a GPU (PROMPTAD_CUDA_KERNELS)
    bool debug_ops;         // PROMPTAD_DEBUG_OPS=1: sync after each op and scan outputs for NaN/Inf
    bool capturing;         // a CUDA graph capture is in progress: no sync, transfer, allocation or free is allowed
    bool capture_failed;    // an error was met during the current capture: the graph is discarded (not poisoned)
    int gemm_mode;          // CUDA only: how batched GEMMs run (PAD_CUDA_GEMM_*; PROMPTAD_CUDA_GEMM)
    bool att_v2;            // CUDA only: the register-tiled attention kernel (PROMPTAD_CUDA_ATTENTION=v2); off until
                            // verified on a GPU
    void *deferred_free[8]; // buffers freed during a capture: released after it (pad_graph_run)
    int n_deferred_free;
    int device;    // CUDA device ordinal
    void *scratch; // grow-only scratch buffer for ops that need temporary memory (im2col, GEMM chunks)
    size_t scratch_bytes;
    unsigned scratch_gen; // incremented whenever the scratch buffer moves (a captured graph that used it is stale)
};

struct pad_backend_ops {
    const char *name;

    // ---- memory ---------------------------------------------------------------------------------------------
    void *(*alloc)(pad_backend *be, size_t nbytes); // NULL on OOM; memory is NOT zeroed
    void (*free)(pad_backend *be, void *ptr);       // NULL ok
    pad_status (*upload)(pad_backend *be, void *dst, const void *host_src, size_t nbytes);
    pad_status (*download)(pad_backend *be, void *host_dst, const void *src, size_t nbytes); // synchronous
    pad_status (*copy)(pad_backend *be, void *dst, const void *src, size_t nbytes);          // device to device
    pad_status (*zero)(pad_backend *be, void *dst, size_t nbytes);
    pad_status (*sync)(pad_backend *be);
    void (*destroy)(pad_backend *be); // frees impl and the struct itself (scratch is freed before by the caller)

    // ---- dense linear algebra (backend_cpu.c / cuda/backend_cuda.cu) ------------------------------------------
    // For b in [0, batch): C_b(M,N) = alpha * op(A_b) @ op(B_b) + beta * C_b, row-major.
    // op(A) is (M,K): A stored (M,K) with leading dimension lda, or (K,M) when transA.
    // op(B) is (K,N): B stored (K,N) with leading dimension ldb, or (N,K) when transB.
    // X_b = X + b * strideX (in floats). beta == 0 ignores the old contents of C (NaNs included).
    pad_status (*gemm)(pad_backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                       int lda, long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                       int ldc, long long strideC, int batch);

    // ---- elementwise and row ops (cpu_nn.c / cuda/nn.cu) -----------------------------------------------------
    // x(M,N)[m,:] += v(R,N)[m % R,:]   (bias when R == 1, positional embedding when R == T)
    pad_status (*add_rows)(pad_backend *be, float *x, const float *v, int M, int N, int R);
    // out(n) = a(n) + alpha * b(n); out may alias a or b.
    pad_status (*axpy)(pad_backend *be, float *out, const float *a, float alpha, const float *b, size_t n);
    // out(n) = alpha * inp(n); out may alias inp.
    pad_status (*scale)(pad_backend *be, float *out, const float *inp, float alpha, size_t n);
    // out(M,C) = (inp - mean) * rstd * w + b per row, biased variance; mean(M), rstd(M) saved when not NULL.
    // out may alias inp.
    pad_status (*layernorm)(pad_backend *be, float *out, float *mean, float *rstd, const float *inp, const float *w,
                            const float *b, int M, int C, float eps);
    // exact erf GELU: out(n) = 0.5 x (1 + erf(x / sqrt 2)); out may alias inp.
    pad_status (*gelu)(pad_backend *be, float *out, const float *inp, size_t n);
    // out(n,C)[i,:] = inp[idx[i],:] for idx[i] >= 0; rows with idx[i] < 0 are left untouched. idx is a device
    // int32 array (n). out must not alias inp.
    pad_status (*gather_rows)(pad_backend *be, float *out, const float *inp, const int32_t *idx, int n, int C);
    // dtable(R,C)[r,:] += sum over i with idx[i] == r of dout[i,:], summed in increasing i (deterministic).
    // idx entries < 0 are skipped; an entry >= R is an error (PAD_ERR_INVALID_ARG, dtable then undefined): the CPU
    // returns it from the call, CUDA (which reads idx in the kernel) from the next sync or download.
    pad_status (*scatter_add_rows)(pad_backend *be, float *dtable, const float *dout, const int32_t *idx, int n, int C,
                                   int R);

    // ---- attention (cpu_attention.c / cuda/attention.cu) -----------------------------------------------------
    // qkv(B,T,3C) with C = NH*HS: columns [0,C) q, [C,2C) k, [2C,3C) v; head h uses columns h*HS..h*HS+HS-1.
    // Standard attention: out(B,T,C) = concat_h softmax(q k^T / sqrt(HS) + mask) v, mask = causal or none.
    // att(B,NH,T,T), when not NULL, receives the probabilities (for attention_backward); masked entries are 0.
    pad_status (*attention)(pad_backend *be, float *out, float *att, const float *qkv, int B, int T, int NH, int HS,
                            bool causal);
    // PromptAD's dual path in one pass over qkv (docs/method.md#dual-path), no mask:
    // out_qk(B,T,C) = softmax(q k^T / sqrt(HS)) v, out_vv(B,T,C) = softmax(v v^T / sqrt(HS)) v. Either may be NULL.
    pad_status (*attention_dual)(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH,
                                 int HS);

    // ---- vision input (cpu_nn.c / cuda/patch_embed.cu) -------------------------------------------------------
    // Patch embedding + class token + positional embedding (docs/clip.md#vision-tower steps 1-2):
    // pixels(B,3,S,S), conv_w(D,3,P,P) (no bias), cls(D), pos(1+G*G, D), G = S/P
    // -> x(B,1+G*G,D): row 0 = cls + pos[0]; row 1+i*G+j = conv(patch i,j) + pos[1+i*G+j].
    pad_status (*patch_embed)(pad_backend *be, float *x, const float *pixels, const float *conv_w, const float *cls,
                              const float *pos, int B, int S, int P, int D);

    // ---- backward through the text tower, input gradients only (cpu_grad.c / cuda/grad.cu) -------------------
    // dinp(M,C) += LayerNorm backward given dout(M,C), inp(M,C), w(C) and the saved mean/rstd (M).
    pad_status (*layernorm_backward)(pad_backend *be, float *dinp, const float *dout, const float *inp, const float *w,
                                     const float *mean, const float *rstd, int M, int C);
    // dinp(n) = dout(n) * GELU'(inp(n)); dinp may alias dout.
    pad_status (*gelu_backward)(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n);
    // dqkv(B,T,3C) = gradient of `attention` w.r.t. qkv, given dout(B,T,C) and the saved att(B,NH,T,T).
    pad_status (*attention_backward)(pad_backend *be, float *dqkv, const float *dout, const float *qkv,
                                     const float *att, int B, int T, int NH, int HS, bool causal);
    // SGD with momentum and weight decay as torch.optim.SGD: g = grad + wd*p; buf = first ? g : momentum*buf + g;
    // p -= lr * buf. p, grad, buf (n).
    pad_status (*sgd_step)(pad_backend *be, float *p, const float *grad, float *buf, size_t n, float lr, float momentum,
                           float weight_decay, bool first);

    // ---- memory bank (cpu_knn.c / cuda/knn.cu) ---------------------------------------------------------------
    // For each of nb problems b: dist(nb,Nq)[b,i] = min_j (1 - query_b[i]·bank_b[j]) / 2 and, when idx is not
    // NULL, idx(nb,Nq)[b,i] = the smallest j attaining that minimum (ties broken by index).
    // query(nb,Nq,D) and bank(nb,Nb,D) rows are L2-normalised by the caller; query_b = query + b*Nq*D, likewise.
    // NaN distances never win; a query whose distances are all NaN gets dist NaN and idx -1.
    pad_status (*knn_min)(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                          int Nb, int D, int nb);

    // ---- ops added by later modules go below, each with its contract comment ---------------------------------

    // ---- anomaly scoring (cpu_score.c / cuda/score.cu; docs/method.md#scores) ---------------------------------------
    // Text anomaly score of each row of feat(M,E): with f = feat[m] / max(||feat[m]||, 1e-12) (dots in double),
    // out(M)[m] = softmax(tau * [f·t_n, f·t_a])[1] = sigmoid(tau * (f·t_a - f·t_n)), evaluated in double in the
    // overflow-free form (1/(1+e^-z) for z >= 0, e^z/(1+e^z) otherwise) and rounded once to float.
    // t_n(E), t_a(E) are device vectors used as given (the caller normalises them).
    pad_status (*text_score)(pad_backend *be, float *out, const float *feat, const float *t_n, const float *t_a,
                             float tau, int M, int E);
    // out(n) = 1 / (1/a + 1/b) in float32 IEEE arithmetic (each operation rounded, no FMA): half the harmonic
    // mean, 0 when a or b is 0. out may alias a or b.
    pad_status (*harmonic_fuse)(pad_backend *be, float *out, const float *a, const float *b, size_t n);
    // out(n) = (float)(half)inp: IEEE binary16 round to nearest even (overflow to inf, subnormals kept), as
    // torch .half() / numpy float16. out may alias inp.
    pad_status (*round_half)(pad_backend *be, float *out, const float *inp, size_t n);
    // out(B,Ho,Wo) = bilinear resize of inp(B,Hi,Wi) with torch F.interpolate(mode='bilinear',
    // align_corners=False) semantics, per axis: scale = (float)in/(float)out; src = scale*(dst+0.5)-0.5 in double,
    // clamped at 0; i0 = (int)src, i1 = i0 + (i0 < in-1); l1 = (float)(src - i0), l0 = 1 - l1 (float); an axis with
    // in == out is copied. Value = (x00 l0w + x01 l1w) l0h + (x10 l0w + x11 l1w) l1h evaluated in double, rounded
    // once. out must not alias inp.
    pad_status (*upsample_bilinear)(pad_backend *be, float *out, const float *inp, int B, int Hi, int Wi, int Ho,
                                    int Wo);
    // scipy.ndimage.gaussian_filter of each image inp(B,H,W) with the symmetric 1-D kernel w (2r+1 doubles in
    // HOST memory, w[r+k] = weight at offset k, r <= PAD_GAUSS_MAX_RADIUS): correlate along axis 0 into tmp, then
    // along axis 1 into out, mode 'reflect' (half-sample symmetric, periodic with period 2n, so lines shorter than
    // r reflect several times). Each output is accumulated in double exactly as scipy's symmetric path,
    // s = x[i] w[r]; for k = r..1: s += (x[i-k] + x[i+k]) w[r+k], and rounded to float after each pass.
    // tmp(B,H,W) is scratch; out may alias inp but not tmp.
    pad_status (*gaussian_filter)(pad_backend *be, float *out, float *tmp, const float *inp, int B, int H, int W,
                                  const double *w, int r);
    // out(B)[b] = max of inp(B,n)[b,:] (NaN if the row holds a NaN).
    pad_status (*row_max)(pad_backend *be, float *out, const float *inp, int B, long long n);

    // ---- prompt-learning losses (cpu_loss.c / cuda/loss.cu), docs/method.md#losses ----------------------------------
    // out(M,C)[m,:] = inp[m,:] / max(||inp[m,:]||_2, 1e-12) (torch F.normalize, eps 1e-12): the squared norm is
    // accumulated in double and rounded once to float, the clamp keeps a NaN norm (a row with a NaN stays NaN),
    // the quotient is a float division. norm(M), when not NULL, receives the divisor. out may alias inp.
    // Used by the prompt learner (with norms, for l2norm_rows_backward) and by the scorer (without).
    pad_status (*l2norm_rows)(pad_backend *be, float *out, float *norm, const float *inp, int M, int C);
    // dinp(M,C)[m,:] += (dout[m,:] - out[m,:] * (out[m,:] . dout[m,:])) / norm[m]: the input gradient of l2norm_rows
    // given its output `out` and saved `norm` (accumulating; dinp must not alias dout or out).
    pad_status (*l2norm_rows_backward)(pad_backend *be, float *dinp, const float *dout, const float *out,
                                       const float *norm, int M, int C);
    // Cross-entropy with target class 0 on every row of z(N,K), averaged over the rows:
    // loss[0] = (1/N) sum_n (logsumexp(z[n,:]) - z[n,0]);  dz(N,K) = (softmax(z[n,:]) - onehot(0)) / N.
    // loss is one device float; the row sum runs in a fixed order (deterministic).
    pad_status (*xent0)(pad_backend *be, float *loss, float *dz, const float *z, int N, int K);
    // PromptAD's EAM ("triplet", margin m) loss on image features f(B,T,D) with anchors wn(D), wa(D):
    //  token_axis false: one sample per row of f (B*T samples): h = sum_d (f-wn)^2 - sum_d (f-wa)^2 + m,
    //                    loss[0] = mean over samples of relu(h);
    //  token_axis true:  the official SEG code's sum over dim 1 (the tokens): h[b,d] = sum_t (f[b,t,d]-wn[d])^2 -
    //                    sum_t (f[b,t,d]-wa[d])^2 + m, loss[0] = mean over the B*D entries of relu(h).
    // dwn(D) += d loss / d wn and dwa(D) += d loss / d wa (relu'(0) = 0 as in torch). Deterministic.
    pad_status (*eam_loss)(pad_backend *be, float *loss, float *dwn, float *dwa, const float *f, const float *wn,
                           const float *wa, int B, int T, int D, bool token_axis, float margin);
    // out[0] = alpha * sum_i a[i] * b[i], summed in a fixed order (deterministic); b may alias a.
    pad_status (*dot)(pad_backend *be, float *out, const float *a, const float *b, size_t n, float alpha);

    // ---- fused elementwise (cpu_nn.c / cuda/nn.cu) -------------------------------------------------------------
    // out(M,N)[m,n] = GELU(inp[m,n] + bias[n]) with the exact erf GELU of `gelu`: bit for bit the result of
    // add_rows(inp, bias, M, N, 1) followed by gelu, in one pass. out may alias inp.
    pad_status (*bias_gelu)(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N);

    // ---- convolutional networks (cpu_conv.c / cuda/conv.cu; docs/conv_methods.md) -------------------------------
    // Tensors are NCHW, contiguous. d describes one convolution (dilation 1, groups 1, zero padding):
    // out(B,K,Ho,Wo) = act(conv(inp(B,C,H,W), w(K,C,kh,kw)) + bias(K) + res(B,K,Ho,Wo)) with
    // Ho = (H + 2 pad - kh) / stride + 1 (likewise Wo), act = ReLU (max(x, 0), NaN kept) when d->relu, else identity.
    // bias and res may be NULL (then 0). Batch norm is folded into w and bias by the caller. out must not alias inp,
    // w or res. Accumulation order is unspecified (GEMM), so backends agree to rounding, not bit for bit.
    pad_status (*conv2d)(pad_backend *be, const pad_conv2d_desc *d, float *out, const float *inp, const float *w,
                         const float *bias, const float *res);
    // out(B,C,Ho,Wo) = pooling of inp(B,C,H,W) with a k x k window, stride s and padding p (Ho = (H + 2p - k)/s + 1,
    // torch's floor mode). PAD_POOL_MAX: max over the window's in-image samples (padding never wins; NaN wins);
    // PAD_POOL_AVG: sum of the in-image samples divided by k*k (padding counts as zeros: torch's AvgPool2d default
    // count_include_pad=True), summed in row-major window order. Requires p <= k/2. out must not alias inp.
    pad_status (*pool2d)(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int k, int s, int p,
                         pad_pool_mode mode);
    // torch AdaptiveAvgPool2d: out(B,C,Ho,Wo)[i,j] = mean of inp rows [floor(i H/Ho), ceil((i+1) H/Ho)) and columns
    // likewise, summed in row-major order in double, rounded once. out must not alias inp.
    pad_status (*adaptive_avgpool2d)(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int Ho,
                                     int Wo);
    // out(n) = a(n) + b(n), then max(., 0) when relu (NaN kept). out may alias a or b.
    pad_status (*residual_add)(pad_backend *be, float *out, const float *a, const float *b, size_t n, bool relu);
    // NCHW to channels-last rows: out[(b*HW + p)*ldo + c] = inp[(b*C + c)*HW + p] for b < B, c < C, p < HW; the other
    // columns of out (ldo >= C) are left untouched, so two calls with offset outputs concatenate channels.
    pad_status (*to_rows)(pad_backend *be, float *out, int ldo, const float *inp, int B, int C, int HW);
    // Euclidean nearest neighbour as anomalib's PatchCore computes it: with qn = |q_i|^2 and bn = |b_j|^2 (each summed
    // in double, rounded once to float) and s = q_i . b_j (the backend's float GEMM), d2 = max((-2 s + qn) + bn, 0) in
    // float; dist(Nq)[i] = sqrt(min_j d2), idx(Nq)[i] = the smallest j attaining min_j d2 (NaN never wins; all NaN:
    // dist NaN, idx -1). query(Nq,D) and bank(Nb,D) are rows; idx may be NULL. Uses the backend's scratch.
    pad_status (*knn_l2)(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                         int Nb, int D);

    // ---- CUDA graphs (cuda/backend_cuda.cu; NULL on the CPU backend) --------------------------------------------
    // Not ops: the machinery of pad_graph_run (below). graph_begin starts capturing the backend's stream;
    // graph_end stops it and instantiates what was captured into *exec (NULL with PAD_ERR_UNSUPPORTED when the
    // capture or the instantiation failed: the capture is discarded and the backend stays usable); graph_launch
    // queues an instantiated graph on the stream; graph_destroy frees it (NULL ok).
    pad_status (*graph_begin)(pad_backend *be);
    pad_status (*graph_end)(pad_backend *be, void **exec);
    pad_status (*graph_launch)(pad_backend *be, void *exec);
    void (*graph_destroy)(pad_backend *be, void *exec);

    // ---- one GEMM over many rows, bias fused (cuda/gemm_lt.cu; NULL on the CPU backend) ----------------------
    // out(M,N) = inp(M,K) @ w(N,K)^T + bias(N) (+ out when accumulate) as one GEMM whose algorithm does not depend
    // on M, so a row's result does not depend on how many rows come with it. PAD_ERR_UNSUPPORTED (nothing done)
    // when no such algorithm exists: pad_op_linear_rows then runs gemm + add_rows.
    pad_status (*linear_rows)(pad_backend *be, float *out, const float *inp, const float *w, const float *bias, int M,
                              int K, int N, bool accumulate);

    // ---- the text scores of many text-vector pairs (cpu_score.c / cuda/score.cu) ------------------------------
    // out(U,M): out[u*M + m] = text_score of row m of feat(M,E) with the pair u of tv(U,2,E) (t_n = tv[u,0],
    // t_a = tv[u,1]): for every u the bits of text_score(out + u*M, feat, tv[u,0], tv[u,1], tau, M, E), the same
    // operations in the same order. One pass over the features for all pairs (the units of a cohort).
    pad_status (*text_score_multi)(pad_backend *be, float *out, const float *feat, const float *tv, float tau, int M,
                                   int E, int U);

    // ---- QuickGELU, the MLP activation of OpenAI's CLIP weights (cpu_nn.c / cuda/nn.cu; docs/clip.md) ----------
    // out(M,N)[m,n] = x * s with s = 1 / (1 + exp(-1.702 x)) (x sigmoid(1.702 x)), x = inp[m,n] + bias[n] rounded to
    // float first, or x = inp[m,n] when bias is NULL; float arithmetic. out may alias inp.
    pad_status (*quick_gelu)(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N);
    // dinp(n) = dout(n) * (s + 1.702 x s (1 - s)) with x = inp(n), s = sigmoid(1.702 x); dinp may alias dout.
    pad_status (*quick_gelu_backward)(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n);
};

// The MLP activation of a CLIP tower: the exact erf GELU (OpenCLIP's default, LAION weights) or QuickGELU (OpenAI's
// weights). Dispatched by pad_op_mlp_act / pad_op_mlp_act_backward below.
typedef enum pad_activation { PAD_ACT_GELU = 0, PAD_ACT_QUICK_GELU = 1 } pad_activation;

// How the CUDA backend runs a GEMM with batch > 1 (be->gemm_mode). Every image of a batch must give the bits it
// gives alone (the CPU does: OpenBLAS never splits K), but cuBLAS picks its algorithm (split-K or not, tile shape)
// from the whole problem, batch count included, so a batched call may round an image differently from a call with
// that image alone.
//  LOOP (default): one cuBLAS call per batch entry, each with the sizes of one image: the same algorithm for that
//                  image whatever the batch (every stride of our models is a multiple of 16 bytes, so alignment
//                  does not change the choice either).
//  PINNED: every GEMM (batch 1 too) as one cuBLASLt call with an algorithm chosen once per (sizes of one entry,
//          math mode) without split-K and pinned for every batch count; faster, on trial until a GPU verifies it.
//  BATCHED: one strided-batched cuBLAS call (the old way; results may depend on the batch): for comparisons.
enum { PAD_CUDA_GEMM_LOOP = 0, PAD_CUDA_GEMM_PINNED = 1, PAD_CUDA_GEMM_BATCHED = 2 };

// Largest radius accepted by gaussian_filter (sigma 4 with truncate 4 gives 16).
#define PAD_GAUSS_MAX_RADIUS 64

// ----------------------------------------------------------------------------
// Backend construction. pad_backend_create (promptad.h) is the one constructor; pad_backend_init,
// pad_backend_cpu_init and pad_backend_cuda_init are shorthands for it. The two functions below make the bare
// backend of one kind and are called only by pad_backend_create (backend.c).

// CPU backend. n_threads <= 0 uses all cores. Results do not depend on n_threads.
pad_status pad_backend_cpu_open(pad_backend **out, int n_threads);
// CUDA backend on `device`. Returns PAD_ERR_UNSUPPORTED (and logs why) in CPU-only builds or without a device.
pad_status pad_backend_cuda_open(pad_backend **out, int device);
// The stream of a CUDA backend (backend_cuda.cu); use pad_backend_stream, which checks the kind.
void *pad_backend_cuda_stream(pad_backend *be);

// The CUDA stream (a cudaStream_t) every op of a CUDA backend runs on; NULL for other backends. Code outside the
// backend that launches its own CUDA work (the GPU metrics) queues it on this stream.
void *pad_backend_stream(pad_backend *be);

// The free and total memory of the backend's device in bytes (cudaMemGetInfo); PAD_ERR_UNSUPPORTED (not logged)
// for a backend without device memory of its own (the CPU).
pad_status pad_backend_device_memory(pad_backend *be, size_t *free_bytes, size_t *total_bytes);
// The CUDA implementation (backend_cuda.cu); use pad_backend_device_memory, which checks the kind.
pad_status pad_backend_cuda_device_memory(pad_backend *be, size_t *free_bytes, size_t *total_bytes);

// Why CUDA can or cannot be used here. pad_cuda_device_count() is 0 in each of the three "cannot" states, which
// tests and error messages tell apart.
typedef enum pad_cuda_state {
    PAD_CUDA_READY = 0,    // at least one device
    PAD_CUDA_NOT_BUILT,    // this build has no CUDA backend
    PAD_CUDA_NO_DEVICE,    // the driver answers and sees no device (none installed, or CUDA_VISIBLE_DEVICES hides all)
    PAD_CUDA_DRIVER_ERROR, // the device count failed: no driver, a driver older than the runtime, a broken install
} pad_cuda_state;
// Asks the CUDA runtime now (cudaGetDeviceCount and its error code). When why is not NULL it receives one line
// (cap bytes, cut to fit) that starts with "built without CUDA", "no CUDA device" or "CUDA driver error" and, for
// the last, names the runtime's error; for PAD_CUDA_READY it gives the device count.
pad_cuda_state pad_cuda_probe(char *why, size_t cap);

// Returns a scratch buffer of at least nbytes owned by the backend (grow-only; valid until the next call that
// grows it, so an op may use one scratch region at a time). NULL on OOM, and NULL (logged) when it would have to
// grow during a graph capture.
void *pad_backend_scratch(pad_backend *be, size_t nbytes);

// ----------------------------------------------------------------------------
// CUDA graphs: a fixed sequence of ops, captured once and replayed as one launch (no per-op launch cost).
//
// pad_graph_run(be, &g, key, key_bytes, fn, ctx) runs the work that fn(ctx) queues:
//  - eagerly (fn called) on backends without graphs, with PROMPTAD_DEBUG_OPS, the first time a key is seen (the
//    warm-up: scratch memory grows outside any capture), and for good after a capture failed (one warning);
//  - otherwise by capturing fn(ctx) into a graph on the second call with that key, and replaying the graph
//    (fn NOT called) on every later call with the same key, as long as the backend's scratch buffer has not moved.
// A different key (e.g. other buffers or sizes) discards the graph and starts over. key may be NULL (key_bytes 0).
// Contract for fn: it only queues ops (no sync, transfer, allocation or host-side state change: the state updates
// belong to the caller, after pad_graph_run returned PAD_OK), and the same key always queues the same ops on the
// same buffers with the same scalar arguments; the buffers must stay allocated while the graph lives.
// Replays compute exactly what the eager calls compute (the same kernels with the same arguments).
typedef struct pad_graph pad_graph;
typedef pad_status (*pad_graph_fn)(void *ctx);
pad_status pad_graph_run(pad_backend *be, pad_graph **g, const void *key, size_t key_bytes, pad_graph_fn fn, void *ctx);
// Frees the graph and sets *g to NULL (NULL ok).
void pad_graph_free(pad_backend *be, pad_graph **g);
// Replays so far (for tests and benchmarks).
long pad_graph_replays(const pad_graph *g);

// ----------------------------------------------------------------------------
// Checked wrappers: validate arguments, refuse a poisoned backend, and with PROMPTAD_DEBUG_OPS=1 synchronise and
// scan the output for NaN/Inf, logging the op name. Same semantics as the table entries above.

void *pad_buf_alloc(pad_backend *be, size_t nbytes); // logs on OOM
void pad_buf_free(pad_backend *be, void *p);
pad_status pad_buf_upload(pad_backend *be, void *dst, const void *host_src, size_t nbytes);
pad_status pad_buf_download(pad_backend *be, void *host_dst, const void *src, size_t nbytes);
pad_status pad_buf_copy(pad_backend *be, void *dst, const void *src, size_t nbytes);
pad_status pad_buf_zero(pad_backend *be, void *dst, size_t nbytes);
pad_status pad_backend_sync(pad_backend *be);
// Allocates n floats and uploads host data; *out is NULL on failure.
pad_status pad_buf_from_host(pad_backend *be, float **out, const float *host, size_t n);

pad_status pad_op_gemm(pad_backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                       int lda, long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                       int ldc, long long strideC, int batch);
// out(M,N) = inp(M,K) @ w(N,K)^T + bias(N) [torch.nn.Linear layout]; bias may be NULL; accumulate: out += ...
pad_status pad_op_linear(pad_backend *be, float *out, const float *inp, const float *w, const float *bias, int M, int K,
                         int N, bool accumulate);
// Same as pad_op_linear, as one GEMM with the bias fused where the backend has linear_rows (CUDA: a cuBLASLt
// algorithm pinned independently of M), else exactly pad_op_linear. Within float rounding of pad_op_linear.
pad_status pad_op_linear_rows(pad_backend *be, float *out, const float *inp, const float *w, const float *bias, int M,
                              int K, int N, bool accumulate);
// dinp(M,K) (+)= dout(M,N) @ w(N,K)   [input gradient of pad_op_linear]
pad_status pad_op_linear_backward(pad_backend *be, float *dinp, const float *dout, const float *w, int M, int K, int N,
                                  bool accumulate);
// out(M,N) = inp(M,K) @ P(K,N)   [CLIP's free projections visual.proj / text_projection]
pad_status pad_op_matmul(pad_backend *be, float *out, const float *inp, const float *P, int M, int K, int N);
pad_status pad_op_add_rows(pad_backend *be, float *x, const float *v, int M, int N, int R);
pad_status pad_op_axpy(pad_backend *be, float *out, const float *a, float alpha, const float *b, size_t n);
pad_status pad_op_scale(pad_backend *be, float *out, const float *inp, float alpha, size_t n);
pad_status pad_op_layernorm(pad_backend *be, float *out, float *mean, float *rstd, const float *inp, const float *w,
                            const float *b, int M, int C, float eps);
pad_status pad_op_gelu(pad_backend *be, float *out, const float *inp, size_t n);
pad_status pad_op_gather_rows(pad_backend *be, float *out, const float *inp, const int32_t *idx, int n, int C);
pad_status pad_op_scatter_add_rows(pad_backend *be, float *dtable, const float *dout, const int32_t *idx, int n, int C,
                                   int R);
pad_status pad_op_attention(pad_backend *be, float *out, float *att, const float *qkv, int B, int T, int NH, int HS,
                            bool causal);
pad_status pad_op_attention_dual(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH,
                                 int HS);
pad_status pad_op_patch_embed(pad_backend *be, float *x, const float *pixels, const float *conv_w, const float *cls,
                              const float *pos, int B, int S, int P, int D);
pad_status pad_op_layernorm_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, const float *w,
                                     const float *mean, const float *rstd, int M, int C);
pad_status pad_op_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n);
pad_status pad_op_attention_backward(pad_backend *be, float *dqkv, const float *dout, const float *qkv,
                                     const float *att, int B, int T, int NH, int HS, bool causal);
pad_status pad_op_sgd_step(pad_backend *be, float *p, const float *grad, float *buf, size_t n, float lr, float momentum,
                           float weight_decay, bool first);
pad_status pad_op_knn_min(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                          int Nb, int D, int nb);
pad_status pad_op_text_score_multi(pad_backend *be, float *out, const float *feat, const float *tv, float tau, int M,
                                   int E, int U);
pad_status pad_op_text_score(pad_backend *be, float *out, const float *feat, const float *t_n, const float *t_a,
                             float tau, int M, int E);
pad_status pad_op_harmonic_fuse(pad_backend *be, float *out, const float *a, const float *b, size_t n);
pad_status pad_op_round_half(pad_backend *be, float *out, const float *inp, size_t n);
pad_status pad_op_upsample_bilinear(pad_backend *be, float *out, const float *inp, int B, int Hi, int Wi, int Ho,
                                    int Wo);
pad_status pad_op_gaussian_filter(pad_backend *be, float *out, float *tmp, const float *inp, int B, int H, int W,
                                  const double *w, int r);
pad_status pad_op_row_max(pad_backend *be, float *out, const float *inp, int B, long long n);
pad_status pad_op_l2norm_rows(pad_backend *be, float *out, float *norm, const float *inp, int M, int C);
pad_status pad_op_l2norm_rows_backward(pad_backend *be, float *dinp, const float *dout, const float *out,
                                       const float *norm, int M, int C);
pad_status pad_op_xent0(pad_backend *be, float *loss, float *dz, const float *z, int N, int K);
pad_status pad_op_eam_loss(pad_backend *be, float *loss, float *dwn, float *dwa, const float *f, const float *wn,
                           const float *wa, int B, int T, int D, bool token_axis, float margin);
pad_status pad_op_dot(pad_backend *be, float *out, const float *a, const float *b, size_t n, float alpha);
pad_status pad_op_bias_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N);
pad_status pad_op_conv2d(pad_backend *be, const pad_conv2d_desc *d, float *out, const float *inp, const float *w,
                         const float *bias, const float *res);
pad_status pad_op_pool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int k, int s, int p,
                         pad_pool_mode mode);
pad_status pad_op_adaptive_avgpool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int Ho,
                                     int Wo);
pad_status pad_op_residual_add(pad_backend *be, float *out, const float *a, const float *b, size_t n, bool relu);
pad_status pad_op_to_rows(pad_backend *be, float *out, int ldo, const float *inp, int B, int C, int HW);
pad_status pad_op_knn_l2(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                         int Nb, int D);
pad_status pad_op_quick_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N);
pad_status pad_op_quick_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n);
// The tower MLP's activation `act` of inp(M,N) + bias(N) (bias may be NULL): GELU runs bias_gelu (or gelu without a
// bias), QuickGELU runs quick_gelu, so the GELU path gives the bits it always gave. out may alias inp.
pad_status pad_op_mlp_act(pad_backend *be, pad_activation act, float *out, const float *inp, const float *bias, int M,
                          int N);
// Its backward: dinp(n) = dout(n) * act'(inp(n)) (gelu_backward or quick_gelu_backward); dinp may alias dout.
pad_status pad_op_mlp_act_backward(pad_backend *be, pad_activation act, float *dinp, const float *dout,
                                   const float *inp, size_t n);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_BACKEND_H
