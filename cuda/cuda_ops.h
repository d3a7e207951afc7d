/* cuda_ops.h - internal: the CUDA backend's op launchers, one file per group (nn.cu, attention.cu, grad.cu,
 * knn.cu, score.cu, loss.cu, gemm_lt.cu, conv.cu). Semantics are those of pad_backend_ops in backend.h; every launcher
 * checks the launch and poisons the backend on failure. */
#ifndef PAD_CUDA_OPS_H
#define PAD_CUDA_OPS_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// nn.cu
pad_status cuda_add_rows(pad_backend *be, float *x, const float *v, int M, int N, int R);
pad_status cuda_axpy(pad_backend *be, float *out, const float *a, float alpha, const float *b, size_t n);
pad_status cuda_scale(pad_backend *be, float *out, const float *inp, float alpha, size_t n);
pad_status cuda_layernorm(pad_backend *be, float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int M, int C, float eps);
pad_status cuda_gelu(pad_backend *be, float *out, const float *inp, size_t n);
pad_status cuda_bias_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N);
pad_status cuda_quick_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N);
pad_status cuda_quick_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n);
pad_status cuda_gather_rows(pad_backend *be, float *out, const float *inp, const int32_t *idx, int n, int C);
pad_status cuda_scatter_add_rows(pad_backend *be, float *dtable, const float *dout, const int32_t *idx, int n, int C,
                                 int R);
pad_status cuda_patch_embed(pad_backend *be, float *x, const float *pixels, const float *conv_w, const float *cls,
                            const float *pos, int B, int S, int P, int D);
pad_status cuda_sgd_step(pad_backend *be, float *p, const float *grad, float *buf, size_t n, float lr, float momentum,
                         float weight_decay, bool first);

// gemm_lt.cu
pad_status cuda_linear_rows(pad_backend *be, float *out, const float *inp, const float *w, const float *bias, int M,
                            int K, int N, bool accumulate);

// attention.cu
pad_status cuda_attention(pad_backend *be, float *out, float *att, const float *qkv, int B, int T, int NH, int HS,
                          bool causal);
pad_status cuda_attention_dual(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH,
                               int HS);

// grad.cu
pad_status cuda_layernorm_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, const float *w,
                                   const float *mean, const float *rstd, int M, int C);
pad_status cuda_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n);
pad_status cuda_attention_backward(pad_backend *be, float *dqkv, const float *dout, const float *qkv, const float *att,
                                   int B, int T, int NH, int HS, bool causal);

// loss.cu
pad_status cuda_l2norm_rows(pad_backend *be, float *out, float *norm, const float *inp, int M, int C);
pad_status cuda_l2norm_rows_backward(pad_backend *be, float *dinp, const float *dout, const float *out,
                                     const float *norm, int M, int C);
pad_status cuda_xent0(pad_backend *be, float *loss, float *dz, const float *z, int N, int K);
pad_status cuda_eam_loss(pad_backend *be, float *loss, float *dwn, float *dwa, const float *f, const float *wn,
                         const float *wa, int B, int T, int D, bool token_axis, float margin);
pad_status cuda_dot(pad_backend *be, float *out, const float *a, const float *b, size_t n, float alpha);

// knn.cu
pad_status cuda_knn_min(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                        int Nb, int D, int nb);

// score.cu
pad_status cuda_text_score_multi(pad_backend *be, float *out, const float *feat, const float *tv, float tau, int M,
                                 int E, int U);
pad_status cuda_text_score(pad_backend *be, float *out, const float *feat, const float *t_n, const float *t_a,
                           float tau, int M, int E);
pad_status cuda_harmonic_fuse(pad_backend *be, float *out, const float *a, const float *b, size_t n);
pad_status cuda_round_half(pad_backend *be, float *out, const float *inp, size_t n);
pad_status cuda_upsample_bilinear(pad_backend *be, float *out, const float *inp, int B, int Hi, int Wi, int Ho, int Wo);
pad_status cuda_gaussian_filter(pad_backend *be, float *out, float *tmp, const float *inp, int B, int H, int W,
                                const double *w, int r);
pad_status cuda_row_max(pad_backend *be, float *out, const float *inp, int B, long long n);

// conv.cu
pad_status cuda_conv2d(pad_backend *be, const pad_conv2d_desc *d, float *out, const float *inp, const float *w,
                       const float *bias, const float *res);
pad_status cuda_pool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int k, int s, int p,
                       pad_pool_mode mode);
pad_status cuda_adaptive_avgpool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int Ho,
                                   int Wo);
pad_status cuda_residual_add(pad_backend *be, float *out, const float *a, const float *b, size_t n, bool relu);
pad_status cuda_to_rows(pad_backend *be, float *out, int ldo, const float *inp, int B, int C, int HW);
pad_status cuda_knn_l2(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                       int Nb, int D);
// Frees conv.cu's cuDNN state (cuda_impl.dnn); called by the backend's destroy before the stream goes.
void cuda_conv_release(pad_backend *be);

#ifdef __cplusplus
}
#endif

#endif // PAD_CUDA_OPS_H
