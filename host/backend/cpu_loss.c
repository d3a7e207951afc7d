/* cpu_loss.c - CPU reference for the small ops of PromptAD's prompt-learning loss (promptad_spec.md §4.2): row
 * L2 normalisation and its backward (torch F.normalize, eps 1e-12), cross-entropy with target 0 (nn.CrossEntropyLoss
 * with zero targets, mean reduction), the EAM "triplet" loss with its anchor gradients (PromptAD/__init__.py
 * TripletLoss, including the SEG token-axis variant) and a dot product. Sums over samples run serially in index
 * order and accumulate in double, so the result does not depend on the thread count. */
#include "cpu_ops.h"

#include <math.h>

pad_status cpu_l2norm_rows(pad_backend *be, float *out, float *norm, const float *inp, int M, int C) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C;
        float *y = out + (size_t)m * C;
        double s = 0.0;
        for (int c = 0; c < C; c++)
            s += (double)x[c] * x[c];
        float n = (float)sqrt(s);
        if (n < 1e-12f) n = 1e-12f;
        for (int c = 0; c < C; c++)
            y[c] = x[c] / n;
        if (norm) norm[m] = n;
    }
    return PAD_OK;
}

pad_status cpu_l2norm_rows_backward(pad_backend *be, float *dinp, const float *dout, const float *out,
                                    const float *norm, int M, int C) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *dy = dout + (size_t)m * C;
        const float *y = out + (size_t)m * C;
        float *dx = dinp + (size_t)m * C;
        double yd = 0.0;
        for (int c = 0; c < C; c++)
            yd += (double)y[c] * dy[c];
        const float inv = 1.0f / norm[m], ydf = (float)yd;
        for (int c = 0; c < C; c++)
            dx[c] += (dy[c] - y[c] * ydf) * inv;
    }
    return PAD_OK;
}

pad_status cpu_xent0(pad_backend *be, float *loss, float *dz, const float *z, int N, int K) {
    double *row = (double *)pad_backend_scratch(be, (size_t)N * sizeof(double)); // per-row losses
    if (!row) return PAD_ERR_OOM;
    const float invN = 1.0f / (float)N;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *zr = z + (size_t)n * K;
        float *g = dz + (size_t)n * K;
        float mx = zr[0];
        for (int k = 1; k < K; k++)
            mx = zr[k] > mx ? zr[k] : mx;
        double s = 0.0;
        for (int k = 0; k < K; k++)
            s += exp((double)zr[k] - mx);
        row[n] = log(s) + mx - zr[0];
        for (int k = 0; k < K; k++)
            g[k] = ((float)(exp((double)zr[k] - mx) / s) - (k == 0 ? 1.0f : 0.0f)) * invN;
    }
    double total = 0.0;
    for (int n = 0; n < N; n++)
        total += row[n];
    loss[0] = (float)(total / N);
    return PAD_OK;
}

pad_status cpu_eam_loss(pad_backend *be, float *loss, float *dwn, float *dwa, const float *f, const float *wn,
                        const float *wa, int B, int T, int D, bool token_axis, float margin) {
    // h: one hinge argument per sample (B*T samples) or per (b, d) entry (token axis)
    const int n_h = token_axis ? B * D : B * T;
    double *h = (double *)pad_backend_scratch(be, (size_t)n_h * sizeof(double));
    if (!h) return PAD_ERR_OOM;
    const double inv = 1.0 / n_h;
    if (!token_axis) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < n_h; n++) {
            const float *x = f + (size_t)n * D;
            double pos = 0.0, neg = 0.0;
            for (int d = 0; d < D; d++) {
                double a = (double)x[d] - wn[d], c = (double)x[d] - wa[d];
                pos += a * a;
                neg += c * c;
            }
            h[n] = pos - neg + margin;
        }
        // d/dwn of (f-wn)^2 summed = -2 (f - wn); d/dwa of -(f-wa)^2 = 2 (f - wa); over active samples, / n_h
#pragma omp parallel for schedule(static)
        for (int d = 0; d < D; d++) {
            double gn = 0.0, ga = 0.0;
            for (int n = 0; n < n_h; n++)
                if (h[n] > 0.0) {
                    double x = f[(size_t)n * D + d];
                    gn += -2.0 * (x - wn[d]);
                    ga += 2.0 * (x - wa[d]);
                }
            dwn[d] += (float)(gn * inv);
            dwa[d] += (float)(ga * inv);
        }
    } else {
#pragma omp parallel for schedule(static)
        for (int d = 0; d < D; d++) {
            double gn = 0.0, ga = 0.0;
            for (int b = 0; b < B; b++) {
                double pos = 0.0, neg = 0.0, sn = 0.0, sa = 0.0;
                for (int t = 0; t < T; t++) {
                    double x = f[((size_t)b * T + t) * D + d];
                    double a = x - wn[d], c = x - wa[d];
                    pos += a * a;
                    neg += c * c;
                    sn += a;
                    sa += c;
                }
                double hv = pos - neg + margin;
                h[(size_t)b * D + d] = hv;
                if (hv > 0.0) {
                    gn += -2.0 * sn;
                    ga += 2.0 * sa;
                }
            }
            dwn[d] += (float)(gn * inv);
            dwa[d] += (float)(ga * inv);
        }
    }
    double total = 0.0;
    for (int i = 0; i < n_h; i++)
        total += h[i] > 0.0 ? h[i] : 0.0;
    loss[0] = (float)(total * inv);
    return PAD_OK;
}

pad_status cpu_dot(pad_backend *be, float *out, const float *a, const float *b, size_t n, float alpha) {
    (void)be;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    out[0] = (float)(alpha * s);
    return PAD_OK;
}
