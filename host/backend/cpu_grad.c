/* cpu_grad.c - CPU reference for the input-gradient ops of the text-tower backward pass (openclip_spec.md §4.1):
 * LayerNorm backward (accumulating into dinp), exact-GELU backward and multi-head attention backward (from the
 * saved probabilities). Parallel over rows or (batch, head); every reduction runs serially in a fixed order, so
 * results do not depend on the thread count. */
#include "cpu_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pad_status cpu_layernorm_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, const float *w,
                                  const float *mean, const float *rstd, int M, int C) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *dy = dout + (size_t)m * C;
        const float *x = inp + (size_t)m * C;
        float *dx = dinp + (size_t)m * C;
        const double mu = mean[m], rs = rstd[m];
        // g = dy * w; dx += (g - mean(g) - xhat * mean(g * xhat)) * rstd
        double sg = 0.0, sgx = 0.0;
        for (int c = 0; c < C; c++) {
            double g = (double)dy[c] * w[c];
            double xh = (x[c] - mu) * rs;
            sg += g;
            sgx += g * xh;
        }
        sg /= C;
        sgx /= C;
        for (int c = 0; c < C; c++) {
            double g = (double)dy[c] * w[c];
            double xh = (x[c] - mu) * rs;
            dx[c] += (float)((g - sg - xh * sgx) * rs);
        }
    }
    return PAD_OK;
}

pad_status cpu_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n) {
    (void)be;
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
        float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
        dinp[i] = dout[i] * (cdf + x * pdf);
    }
    return PAD_OK;
}

// Per (b, h), with P = att, dO = dout, s = 1/sqrt(HS) (openclip_spec.md §4.1):
//   dV = P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(dP * P));  dQ = s dS K;  dK = s dS^T Q.
// Masked entries have P = 0, hence dS = 0: the causal case only skips them.
pad_status cpu_attention_backward(pad_backend *be, float *dqkv, const float *dout, const float *qkv, const float *att,
                                  int B, int T, int NH, int HS, bool causal) {
    const int C = NH * HS, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)HS);
    float *rows = (float *)pad_backend_scratch(be, (size_t)B * NH * T * sizeof(float)); // one dS row per (b, h)
    if (!rows) return PAD_ERR_OOM;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        float *ds = rows + (size_t)bh * T;
        const int b = bh / NH, h = bh % NH;
        const float *base = qkv + (size_t)b * T * C3;
        float *dbase = dqkv + (size_t)b * T * C3;
        for (int t = 0; t < T; t++) // this head's columns of dq, dk, dv
            for (int j = 0; j < 3; j++)
                memset(dbase + (size_t)t * C3 + j * C + h * HS, 0, (size_t)HS * sizeof(float));
        for (int t = 0; t < T; t++) {
            const int n_keys = causal ? t + 1 : T;
            const float *p = att + (((size_t)b * NH + h) * T + t) * T;  // (T) probabilities of query t
            const float *d_o = dout + ((size_t)b * T + t) * C + h * HS; // (HS)
            const float *q = base + (size_t)t * C3 + h * HS;            // (HS)
            float *dq = dbase + (size_t)t * C3 + h * HS;                // (HS)
            double rowsum = 0.0;
            for (int s = 0; s < n_keys; s++) {
                const float *v = base + (size_t)s * C3 + 2 * C + h * HS;
                float dp = 0.0f;
                for (int i = 0; i < HS; i++)
                    dp += d_o[i] * v[i];
                ds[s] = dp;
                rowsum += (double)dp * p[s];
            }
            for (int s = 0; s < n_keys; s++) {
                const float dsc = p[s] * (ds[s] - (float)rowsum) * scale; // scaled dS[t,s]
                const float *k = base + (size_t)s * C3 + C + h * HS;
                float *dk = dbase + (size_t)s * C3 + C + h * HS;
                float *dv = dbase + (size_t)s * C3 + 2 * C + h * HS;
                for (int i = 0; i < HS; i++) {
                    dq[i] += dsc * k[i];
                    dk[i] += dsc * q[i];
                    dv[i] += p[s] * d_o[i];
                }
            }
        }
    }
    return PAD_OK;
}
