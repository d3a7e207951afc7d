/* cpu_nn.c - CPU reference for the elementwise, row and embedding ops of backend.h: add_rows, axpy, scale,
 * layernorm (docs/clip.md#building-blocks, eps from the caller, biased variance) and its backward, exact erf GELU
 * (alone and after a bias add, bias_gelu) and its backward, QuickGELU (OpenAI CLIP's MLP activation, bias optional)
 * and its backward, gather/scatter of rows, the patch embedding (im2col + one
 * GEMM) and the SGD step (torch.optim.SGD semantics). Row loops are OpenMP parallel; every reduction runs serially
 * inside one row, so the result does not depend on the thread count. */
#include "cpu_ops.h"
#include "log.h"

#include <math.h>
#include <string.h>

pad_status cpu_add_rows(pad_backend *be, float *x, const float *v, int M, int N, int R) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        float *xr = x + (size_t)m * N;
        const float *vr = v + (size_t)(m % R) * N;
        for (int n = 0; n < N; n++)
            xr[n] += vr[n];
    }
    return PAD_OK;
}

pad_status cpu_axpy(pad_backend *be, float *out, const float *a, float alpha, const float *b, size_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)n; i++)
        out[i] = a[i] + alpha * b[i];
    return PAD_OK;
}

pad_status cpu_scale(pad_backend *be, float *out, const float *inp, float alpha, size_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)n; i++)
        out[i] = alpha * inp[i];
    return PAD_OK;
}

pad_status cpu_layernorm(pad_backend *be, float *out, float *mean, float *rstd, const float *inp, const float *w,
                         const float *b, int M, int C, float eps) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C;
        float *y = out + (size_t)m * C;
        double s = 0.0;
        for (int c = 0; c < C; c++)
            s += x[c];
        double mu = s / C;
        double v = 0.0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - mu;
            v += d * d;
        }
        double rs = 1.0 / sqrt(v / C + (double)eps);
        for (int c = 0; c < C; c++)
            y[c] = (float)((x[c] - mu) * rs) * w[c] + b[c];
        if (mean) mean[m] = (float)mu;
        if (rstd) rstd[m] = (float)rs;
    }
    return PAD_OK;
}

// Its backward (accumulates into dinp): g = dy w; dx += (g - mean(g) - xhat mean(g xhat)) rstd, in double.
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

pad_status cpu_gelu(pad_backend *be, float *out, const float *inp, size_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
    }
    return PAD_OK;
}

// Its backward: dx = dy (Phi(x) + x phi(x)).
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

pad_status cpu_bias_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = inp + (size_t)m * N;
        float *yr = out + (size_t)m * N;
        for (int n = 0; n < N; n++) {
            float x = xr[n] + bias[n]; // rounded to float, as add_rows stores it
            yr[n] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
        }
    }
    return PAD_OK;
}

// QuickGELU's sigmoid factor s = sigmoid(1.702 x), in float as CUDA's twin (cuda/nn.cu) computes it.
static inline float quick_gelu_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-1.702f * x));
}

pad_status cpu_quick_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N) {
    (void)be;
    const long long MN = (long long)M * N;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < MN; i++) {
        float x = bias ? inp[i] + bias[i % N] : inp[i]; // the sum rounded to float, as add_rows stores it
        out[i] = x * quick_gelu_sigmoid(x);
    }
    return PAD_OK;
}

// Its backward: d/dx [x s(1.702 x)] = s + 1.702 x s (1 - s).
pad_status cpu_quick_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)n; i++) {
        float x = inp[i], s = quick_gelu_sigmoid(x);
        dinp[i] = dout[i] * (s + 1.702f * x * s * (1.0f - s));
    }
    return PAD_OK;
}

pad_status cpu_gather_rows(pad_backend *be, float *out, const float *inp, const int32_t *idx, int n, int C) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        if (idx[i] >= 0) memcpy(out + (size_t)i * C, inp + (size_t)idx[i] * C, (size_t)C * sizeof(float));
    return PAD_OK;
}

pad_status cpu_scatter_add_rows(pad_backend *be, float *dtable, const float *dout, const int32_t *idx, int n, int C,
                                int R) {
    (void)be;
    // serial over i so every row is summed in increasing i (the CUDA kernel follows the same order)
    for (int i = 0; i < n; i++) {
        int r = idx[i];
        if (r < 0) continue;
        if (r >= R) {
            PAD_LOG_ERROR("scatter_add_rows: index %d out of range [0, %d)", r, R);
            return PAD_ERR_INVALID_ARG;
        }
        float *d = dtable + (size_t)r * C;
        const float *s = dout + (size_t)i * C;
        for (int c = 0; c < C; c++)
            d[c] += s[c];
    }
    return PAD_OK;
}

pad_status cpu_patch_embed(pad_backend *be, float *x, const float *pixels, const float *conv_w, const float *cls,
                           const float *pos, int B, int S, int P, int D) {
    const int G = S / P, GG = G * G, T = 1 + GG, KP = 3 * P * P;
    // im2col: cols(B*GG, KP) with the patch vector ordered [c][ky][kx] like conv_w(D, 3, P, P)
    float *cols = (float *)pad_backend_scratch(be, (size_t)B * GG * KP * sizeof(float));
    if (!cols) return PAD_ERR_OOM;
#pragma omp parallel for schedule(static)
    for (int bp = 0; bp < B * GG; bp++) {
        int b = bp / GG, p = bp % GG, i = p / G, j = p % G;
        float *dst = cols + (size_t)bp * KP;
        for (int c = 0; c < 3; c++)
            for (int ky = 0; ky < P; ky++)
                memcpy(dst + (c * P + ky) * P, pixels + (((size_t)b * 3 + c) * S + (size_t)i * P + ky) * S + j * P,
                       (size_t)P * sizeof(float));
    }
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * T * D;
        memcpy(xb, pos, (size_t)T * D * sizeof(float)); // positional embedding for every row
        for (int d = 0; d < D; d++)
            xb[d] += cls[d];
        // rows 1..GG: += cols_b(GG, KP) @ conv_w(D, KP)^T
        PAD_TRY(be->ops->gemm(be, false, true, GG, D, KP, 1.0f, cols + (size_t)b * GG * KP, KP, 0, conv_w, KP, 0, 1.0f,
                              xb + D, D, 0, 1));
    }
    return PAD_OK;
}

pad_status cpu_sgd_step(pad_backend *be, float *p, const float *grad, float *buf, size_t n, float lr, float momentum,
                        float weight_decay, bool first) {
    (void)be;
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + weight_decay * p[i];
        buf[i] = first ? g : momentum * buf[i] + g;
        p[i] -= lr * buf[i];
    }
    return PAD_OK;
}
