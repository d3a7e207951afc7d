/* cpu_grad.c - CPU reference for the input-gradient ops of the text-tower backward pass (openclip_spec.md §4.1):
 * LayerNorm backward (accumulating into dinp) and exact-GELU backward. Attention backward lives here too. */
#include "cpu_ops.h"

#include <math.h>

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
