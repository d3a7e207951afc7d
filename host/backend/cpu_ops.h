/* cpu_ops.h - internal: the CPU backend's op implementations, one file per group (cpu_nn.c, cpu_attention.c,
 * cpu_grad.c, cpu_knn.c, cpu_loss.c, cpu_score.c, cpu_conv.c). Semantics are those of pad_backend_ops in backend.h.
 * Loops are parallelised with OpenMP over rows/heads/batches only, never over a reduction axis, so results do not
 * depend on the thread count. */
#ifndef PAD_HOST_CPU_OPS_H
#define PAD_HOST_CPU_OPS_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// cpu_nn.c
pad_status cpu_add_rows(pad_backend *be, float *x, const float *v, int M, int N, int R);
pad_status cpu_axpy(pad_backend *be, float *out, const float *a, float alpha, const float *b, size_t n);
pad_status cpu_scale(pad_backend *be, float *out, const float *inp, float alpha, size_t n);
pad_status cpu_layernorm(pad_backend *be, float *out, float *mean, float *rstd, const float *inp, const float *w,
                         const float *b, int M, int C, float eps);
pad_status cpu_gelu(pad_backend *be, float *out, const float *inp, size_t n);
pad_status cpu_bias_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N);
pad_status cpu_quick_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N);
pad_status cpu_quick_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n);
pad_status cpu_gather_rows(pad_backend *be, float *out, const float *inp, const int32_t *idx, int n, int C);
pad_status cpu_scatter_add_rows(pad_backend *be, float *dtable, const float *dout, const int32_t *idx, int n, int C,
                                int R);
pad_status cpu_patch_embed(pad_backend *be, float *x, const float *pixels, const float *conv_w, const float *cls,
                           const float *pos, int B, int S, int P, int D);
pad_status cpu_sgd_step(pad_backend *be, float *p, const float *grad, float *buf, size_t n, float lr, float momentum,
                        float weight_decay, bool first);

// cpu_attention.c
pad_status cpu_attention(pad_backend *be, float *out, float *att, const float *qkv, int B, int T, int NH, int HS,
                         bool causal);
pad_status cpu_attention_dual(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH,
                              int HS);

// cpu_grad.c
pad_status cpu_layernorm_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, const float *w,
                                  const float *mean, const float *rstd, int M, int C);
pad_status cpu_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n);
pad_status cpu_attention_backward(pad_backend *be, float *dqkv, const float *dout, const float *qkv, const float *att,
                                  int B, int T, int NH, int HS, bool causal);

// cpu_loss.c
pad_status cpu_l2norm_rows(pad_backend *be, float *out, float *norm, const float *inp, int M, int C);
pad_status cpu_l2norm_rows_backward(pad_backend *be, float *dinp, const float *dout, const float *out,
                                    const float *norm, int M, int C);
pad_status cpu_xent0(pad_backend *be, float *loss, float *dz, const float *z, int N, int K);
pad_status cpu_eam_loss(pad_backend *be, float *loss, float *dwn, float *dwa, const float *f, const float *wn,
                        const float *wa, int B, int T, int D, bool token_axis, float margin);
pad_status cpu_dot(pad_backend *be, float *out, const float *a, const float *b, size_t n, float alpha);

// cpu_knn.c
pad_status cpu_knn_min(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                       int Nb, int D, int nb);

// cpu_conv.c
pad_status cpu_conv2d(pad_backend *be, const pad_conv2d_desc *d, float *out, const float *inp, const float *w,
                      const float *bias, const float *res);
pad_status cpu_pool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int k, int s, int p,
                      pad_pool_mode mode);
pad_status cpu_adaptive_avgpool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int Ho,
                                  int Wo);
pad_status cpu_residual_add(pad_backend *be, float *out, const float *a, const float *b, size_t n, bool relu);
pad_status cpu_to_rows(pad_backend *be, float *out, int ldo, const float *inp, int B, int C, int HW);
pad_status cpu_knn_l2(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank, int Nb,
                      int D);

// cpu_score.c
pad_status cpu_text_score_multi(pad_backend *be, float *out, const float *feat, const float *tv, float tau, int M,
                                int E, int U);
pad_status cpu_text_score(pad_backend *be, float *out, const float *feat, const float *t_n, const float *t_a, float tau,
                          int M, int E);
pad_status cpu_harmonic_fuse(pad_backend *be, float *out, const float *a, const float *b, size_t n);
pad_status cpu_round_half(pad_backend *be, float *out, const float *inp, size_t n);
pad_status cpu_upsample_bilinear(pad_backend *be, float *out, const float *inp, int B, int Hi, int Wi, int Ho, int Wo);
pad_status cpu_gaussian_filter(pad_backend *be, float *out, float *tmp, const float *inp, int B, int H, int W,
                               const double *w, int r);
pad_status cpu_row_max(pad_backend *be, float *out, const float *inp, int B, long long n);
// Helpers shared with the tests: the bilinear source indices/weights of one axis (out entries each), and scipy's
// 'reflect' index of position i on a line of n samples.
void pad_bilinear_axis(int in, int out, int *i0, int *i1, float *l0, float *l1);
int pad_reflect_index(long long i, int n);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_CPU_OPS_H
