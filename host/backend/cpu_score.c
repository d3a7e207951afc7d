/* cpu_score.c - CPU reference for the anomaly-scoring ops of backend.h (docs/method.md#scores): the text score
 * sigmoid(tau (f·t_a - f·t_n)), the harmonic fusion 1/(1/T + 1/V), fp16 rounding, torch's bilinear upsampling
 * (align_corners=False), scipy's reflect-mode Gaussian filter and per-row maxima. Every output element is computed by
 * one fixed sequence of operations (loops are OpenMP-parallel over rows or images only), so results do not depend on
 * the thread count; cuda/score.cu performs the same operations in the same order with the rounding intrinsics, so the
 * two backends agree bit for bit on everything but the dot products of text_score (summation order). Row L2
 * normalisation is l2norm_rows (cpu_loss.c), shared with the prompt learner. */
#include "cpu_ops.h"
#include "log.h"
#include "st_file.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// sigmoid(z) without overflow, in double
static inline double stable_sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    const double e = exp(z);
    return e / (1.0 + e);
}

// The text score of one feature row: one function (never inlined, so one machine code) for text_score and
// text_score_multi, which therefore give the same bits.
static __attribute__((noinline)) float text_score_row(const float *f, const float *t_n, const float *t_a, float tau,
                                                      int E) {
    double ss = 0.0, dn = 0.0, da = 0.0;
    for (int e = 0; e < E; e++) {
        ss += (double)f[e] * f[e];
        dn += (double)f[e] * t_n[e];
        da += (double)f[e] * t_a[e];
    }
    double nrm = sqrt(ss);
    if (nrm < 1e-12) nrm = 1e-12;
    return (float)stable_sigmoid((double)tau * ((da - dn) / nrm));
}

pad_status cpu_text_score(pad_backend *be, float *out, const float *feat, const float *t_n, const float *t_a, float tau,
                          int M, int E) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++)
        out[m] = text_score_row(feat + (size_t)m * E, t_n, t_a, tau, E);
    return PAD_OK;
}

pad_status cpu_text_score_multi(pad_backend *be, float *out, const float *feat, const float *tv, float tau, int M,
                                int E, int U) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) // a row stays in cache while every pair scores it
        for (int u = 0; u < U; u++) {
            const float *t = tv + (size_t)u * 2 * E;
            out[(size_t)u * M + m] = text_score_row(feat + (size_t)m * E, t, t + E, tau, E);
        }
    return PAD_OK;
}

pad_status cpu_harmonic_fuse(pad_backend *be, float *out, const float *a, const float *b, size_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)n; i++) {
        const float ia = 1.0f / a[i], ib = 1.0f / b[i];
        out[i] = 1.0f / (ia + ib);
    }
    return PAD_OK;
}

pad_status cpu_round_half(pad_backend *be, float *out, const float *inp, size_t n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)n; i++)
        out[i] = pad_f16_to_f32(pad_f32_to_f16(inp[i]));
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// bilinear upsampling

// Source indices and weights of one axis (torch's compute_source_index_and_lambda, align_corners=False).
void pad_bilinear_axis(int in, int out, int *i0, int *i1, float *l0, float *l1) {
    const float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        if (in == out) { // torch copies an axis whose size does not change
            i0[d] = i1[d] = d;
            l0[d] = 1.0f;
            l1[d] = 0.0f;
            continue;
        }
        double src = (double)scale * (d + 0.5) - 0.5;
        if (src < 0) src = 0;
        int a = (int)src;
        if (a > in - 1) a = in - 1;
        i0[d] = a;
        i1[d] = a + (a < in - 1 ? 1 : 0);
        l1[d] = (float)(src - a);
        l0[d] = 1.0f - l1[d];
    }
}

pad_status cpu_upsample_bilinear(pad_backend *be, float *out, const float *inp, int B, int Hi, int Wi, int Ho, int Wo) {
    (void)be;
    int *iy = (int *)malloc(sizeof(int) * 2 * ((size_t)Ho + Wo));
    float *wy = (float *)malloc(sizeof(float) * 2 * ((size_t)Ho + Wo));
    if (!iy || !wy) {
        free(iy);
        free(wy);
        PAD_LOG_ERROR("upsample_bilinear: out of memory");
        return PAD_ERR_OOM;
    }
    int *iy0 = iy, *iy1 = iy + Ho, *ix0 = iy + 2 * Ho, *ix1 = ix0 + Wo;
    float *hy0 = wy, *hy1 = wy + Ho, *wx0 = wy + 2 * Ho, *wx1 = wx0 + Wo;
    pad_bilinear_axis(Hi, Ho, iy0, iy1, hy0, hy1);
    pad_bilinear_axis(Wi, Wo, ix0, ix1, wx0, wx1);
#pragma omp parallel for schedule(static)
    for (long long row = 0; row < (long long)B * Ho; row++) {
        const int b = (int)(row / Ho), y = (int)(row % Ho);
        const float *r0 = inp + ((size_t)b * Hi + iy0[y]) * Wi;
        const float *r1 = inp + ((size_t)b * Hi + iy1[y]) * Wi;
        const double h0 = hy0[y], h1 = hy1[y];
        float *o = out + (size_t)row * Wo;
        for (int x = 0; x < Wo; x++) {
            const double w0 = wx0[x], w1 = wx1[x];
            const double top = (double)r0[ix0[x]] * w0 + (double)r0[ix1[x]] * w1;
            const double bot = (double)r1[ix0[x]] * w0 + (double)r1[ix1[x]] * w1;
            o[x] = (float)(top * h0 + bot * h1);
        }
    }
    free(iy);
    free(wy);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// Gaussian filter (scipy.ndimage.correlate1d, symmetric kernel, mode 'reflect')

// scipy's 'reflect' extension (ni_support.c NI_ExtendLine): half-sample symmetric and periodic with period 2n.
int pad_reflect_index(long long i, int n) {
    const long long p = 2LL * n;
    long long m = i % p;
    if (m < 0) m += p;
    return (int)(m < n ? m : p - 1 - m);
}

pad_status cpu_gaussian_filter(pad_backend *be, float *out, float *tmp, const float *inp, int B, int H, int W,
                               const double *w, int r) {
    (void)be;
    const double *wc = w + r; // wc[k] = weight at offset k (symmetric)
    // reflected index tables of both axes: ry[i + r] = reflect(i) for i in [-r, H + r)
    int *ry = (int *)malloc(sizeof(int) * ((size_t)H + 2 * r));
    int *rx = (int *)malloc(sizeof(int) * ((size_t)W + 2 * r));
    if (!ry || !rx) {
        free(ry);
        free(rx);
        PAD_LOG_ERROR("gaussian_filter: out of memory");
        return PAD_ERR_OOM;
    }
    for (int i = -r; i < H + r; i++)
        ry[i + r] = pad_reflect_index(i, H);
    for (int i = -r; i < W + r; i++)
        rx[i + r] = pad_reflect_index(i, W);
    int oom = 0;
#pragma omp parallel reduction(| : oom)
    {
        // per-thread accumulators: one output row (W doubles) and one extended input row (W + 2r doubles)
        double *acc = (double *)malloc(sizeof(double) * (size_t)W);
        double *ext = (double *)malloc(sizeof(double) * ((size_t)W + 2 * r));
        if (!acc || !ext) oom = 1;
            // pass 1, axis 0: tmp[b, i, :] = sum over k of inp[b, reflect(i +- k), :] * w
#pragma omp for schedule(static)
        for (long long row = 0; row < (long long)B * H; row++) {
            if (!acc || !ext) continue;
            const int b = (int)(row / H), i = (int)(row % H);
            const float *img = inp + (size_t)b * H * W;
            const float *c = img + (size_t)i * W;
            for (int x = 0; x < W; x++)
                acc[x] = (double)c[x] * wc[0];
            for (int k = r; k >= 1; k--) {
                const float *lo = img + (size_t)ry[i - k + r] * W, *hi = img + (size_t)ry[i + k + r] * W;
                const double wk = wc[k];
                for (int x = 0; x < W; x++)
                    acc[x] += ((double)lo[x] + (double)hi[x]) * wk;
            }
            float *o = tmp + (size_t)row * W;
            for (int x = 0; x < W; x++)
                o[x] = (float)acc[x];
        }
        // pass 2, axis 1: out[b, i, x] = sum over k of tmp[b, i, reflect(x +- k)] * w
#pragma omp for schedule(static)
        for (long long row = 0; row < (long long)B * H; row++) {
            if (!acc || !ext) continue;
            const float *t = tmp + (size_t)row * W;
            for (int x = 0; x < W + 2 * r; x++)
                ext[x] = (double)t[rx[x]];
            const double *e = ext + r; // e[x] = extended line at x, x in [-r, W + r)
            for (int x = 0; x < W; x++)
                acc[x] = e[x] * wc[0];
            for (int k = r; k >= 1; k--) {
                const double wk = wc[k];
                for (int x = 0; x < W; x++)
                    acc[x] += (e[x - k] + e[x + k]) * wk;
            }
            float *o = out + (size_t)row * W;
            for (int x = 0; x < W; x++)
                o[x] = (float)acc[x];
        }
        free(acc);
        free(ext);
    }
    free(ry);
    free(rx);
    if (oom) {
        PAD_LOG_ERROR("gaussian_filter: out of memory");
        return PAD_ERR_OOM;
    }
    return PAD_OK;
}

pad_status cpu_row_max(pad_backend *be, float *out, const float *inp, int B, long long n) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *x = inp + (size_t)b * (size_t)n;
        float m = x[0];
        for (long long i = 1; i < n && m == m; i++)
            if (x[i] > m || x[i] != x[i]) m = x[i];
        out[b] = m;
    }
    return PAD_OK;
}
