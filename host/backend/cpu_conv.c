/* cpu_conv.c - CPU reference for the convolutional-network ops of backend.h: conv2d (im2col + the backend's GEMM,
 * with the bias, residual and ReLU epilogue), max/average pooling, adaptive average pooling and the residual add.
 * Every loop is OpenMP-parallel over output rows or channels and every sum runs serially in a fixed order, and the
 * GEMM's tiling does not depend on the thread count (backend_cpu.c), so results are independent of the threads. */
#include "cpu_ops.h"
#include "log.h"

#include <math.h>
#include <string.h>

// cols(C*kh*kw, Ho*Wo) of one image x(C,H,W): row (c*kh + ky)*kw + kx holds x[c, oy*s - p + ky, ox*s - p + kx]
// (0 outside the image), so that out(K, Ho*Wo) = w(K, C*kh*kw) @ cols.
static void im2col(float *cols, const float *x, const pad_conv2d_desc *d, int Ho, int Wo) {
    const int rows = d->C * d->kh * d->kw;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const int kx = r % d->kw, ky = (r / d->kw) % d->kh, c = r / (d->kw * d->kh);
        const float *xc = x + (size_t)c * d->H * d->W;
        float *dst = cols + (size_t)r * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            const int iy = oy * d->stride - d->pad + ky;
            float *drow = dst + (size_t)oy * Wo;
            if (iy < 0 || iy >= d->H) {
                memset(drow, 0, (size_t)Wo * sizeof(float));
                continue;
            }
            const float *xrow = xc + (size_t)iy * d->W;
            for (int ox = 0; ox < Wo; ox++) {
                const int ix = ox * d->stride - d->pad + kx;
                drow[ox] = ix >= 0 && ix < d->W ? xrow[ix] : 0.0f;
            }
        }
    }
}

// y(K, n) = act(y + bias + res), in that order of additions.
static void conv_epilogue(float *y, const float *bias, const float *res, int K, int n, bool relu) {
#pragma omp parallel for schedule(static)
    for (int k = 0; k < K; k++) {
        float *yr = y + (size_t)k * n;
        const float *rr = res ? res + (size_t)k * n : NULL;
        const float b = bias ? bias[k] : 0.0f;
        for (int i = 0; i < n; i++) {
            float v = yr[i] + b;
            if (rr) v += rr[i];
            yr[i] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

pad_status cpu_conv2d(pad_backend *be, const pad_conv2d_desc *d, float *out, const float *inp, const float *w,
                      const float *bias, const float *res) {
    const int Ho = pad_conv_out_size(d->H, d->kh, d->stride, d->pad);
    const int Wo = pad_conv_out_size(d->W, d->kw, d->stride, d->pad);
    const int n = Ho * Wo, KK = d->C * d->kh * d->kw;
    // a 1x1, stride 1, unpadded convolution is a plain GEMM on the input
    const bool direct = d->kh == 1 && d->kw == 1 && d->stride == 1 && d->pad == 0;
    float *cols = NULL;
    if (!direct) {
        cols = (float *)pad_backend_scratch(be, (size_t)KK * n * sizeof(float));
        if (!cols) return PAD_ERR_OOM;
    }
    for (int b = 0; b < d->B; b++) {
        const float *xb = inp + (size_t)b * d->C * d->H * d->W;
        float *yb = out + (size_t)b * d->K * n;
        if (!direct) im2col(cols, xb, d, Ho, Wo);
        // yb(K, n) = w(K, KK) @ cols(KK, n)
        PAD_TRY(
            be->ops->gemm(be, false, false, d->K, n, KK, 1.0f, w, KK, 0, direct ? xb : cols, n, 0, 0.0f, yb, n, 0, 1));
        conv_epilogue(yb, bias, res ? res + (size_t)b * d->K * n : NULL, d->K, n, d->relu);
    }
    return PAD_OK;
}

pad_status cpu_pool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int k, int s, int p,
                      pad_pool_mode mode) {
    (void)be;
    const int Ho = pad_conv_out_size(H, k, s, p), Wo = pad_conv_out_size(W, k, s, p);
    const float inv = 1.0f / (float)(k * k);
#pragma omp parallel for schedule(static)
    for (long long bc = 0; bc < (long long)B * C; bc++) {
        const float *x = inp + (size_t)bc * H * W;
        float *y = out + (size_t)bc * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                const int y0 = oy * s - p, x0 = ox * s - p;
                float acc = mode == PAD_POOL_MAX ? -INFINITY : 0.0f;
                for (int ky = 0; ky < k; ky++) {
                    const int iy = y0 + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < k; kx++) {
                        const int ix = x0 + kx;
                        if (ix < 0 || ix >= W) continue;
                        const float v = x[(size_t)iy * W + ix];
                        if (mode == PAD_POOL_AVG)
                            acc += v;
                        else if (v > acc || isnan(v))
                            acc = isnan(acc) ? acc : v;
                    }
                }
                y[(size_t)oy * Wo + ox] = mode == PAD_POOL_AVG ? acc * inv : acc;
            }
    }
    return PAD_OK;
}

pad_status cpu_adaptive_avgpool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int Ho,
                                  int Wo) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long bc = 0; bc < (long long)B * C; bc++) {
        const float *x = inp + (size_t)bc * H * W;
        float *y = out + (size_t)bc * Ho * Wo;
        for (int i = 0; i < Ho; i++) {
            const int y0 = (int)((long long)i * H / Ho), y1 = (int)(((long long)(i + 1) * H + Ho - 1) / Ho);
            for (int j = 0; j < Wo; j++) {
                const int x0 = (int)((long long)j * W / Wo), x1 = (int)(((long long)(j + 1) * W + Wo - 1) / Wo);
                double acc = 0.0;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        acc += x[(size_t)iy * W + ix];
                y[(size_t)i * Wo + j] = (float)(acc / ((double)(y1 - y0) * (x1 - x0)));
            }
        }
    }
    return PAD_OK;
}

pad_status cpu_residual_add(pad_backend *be, float *out, const float *a, const float *b, size_t n, bool relu) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)n; i++) {
        const float v = a[i] + b[i];
        out[i] = relu && v < 0.0f ? 0.0f : v;
    }
    return PAD_OK;
}

pad_status cpu_to_rows(pad_backend *be, float *out, int ldo, const float *inp, int B, int C, int HW) {
    (void)be;
#pragma omp parallel for schedule(static)
    for (long long r = 0; r < (long long)B * HW; r++) {
        const long long b = r / HW, p = r % HW;
        const float *src = inp + (size_t)b * C * HW + p;
        float *dst = out + (size_t)r * ldo;
        for (int c = 0; c < C; c++)
            dst[c] = src[(size_t)c * HW];
    }
    return PAD_OK;
}

// Squared norms of n rows of x(n, D), summed in double and rounded once.
static void sq_norms(float *out, const float *x, int n, int D) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * D;
        double s = 0.0;
        for (int d = 0; d < D; d++)
            s += (double)r[d] * r[d];
        out[i] = (float)s;
    }
}

#define KNN_L2_TILE 256 // queries per GEMM tile

pad_status cpu_knn_l2(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank, int Nb,
                      int D) {
    const int tile = Nq < KNN_L2_TILE ? Nq : KNN_L2_TILE;
    float *scr = (float *)pad_backend_scratch(be, ((size_t)tile * Nb + Nb + tile) * sizeof(float));
    if (!scr) return PAD_ERR_OOM;
    float *bn = scr, *qn = scr + Nb, *s = scr + Nb + tile;
    sq_norms(bn, bank, Nb, D);
    for (int q0 = 0; q0 < Nq; q0 += tile) {
        const int m = Nq - q0 < tile ? Nq - q0 : tile;
        sq_norms(qn, query + (size_t)q0 * D, m, D);
        // s(m, Nb) = query_tile(m, D) @ bank(Nb, D)^T
        PAD_TRY(be->ops->gemm(be, false, true, m, Nb, D, 1.0f, query + (size_t)q0 * D, D, 0, bank, D, 0, 0.0f, s, Nb, 0,
                              1));
#pragma omp parallel for schedule(static)
        for (int i = 0; i < m; i++) {
            const float *si = s + (size_t)i * Nb;
            float best = NAN;
            int32_t bi = -1;
            for (int j = 0; j < Nb; j++) {
                float v = -2.0f * si[j] + qn[i];
                v = v + bn[j];
                v = v < 0.0f ? 0.0f : v;
                if (v < best || (bi < 0 && !isnan(v))) best = v, bi = j;
            }
            dist[q0 + i] = bi < 0 ? NAN : sqrtf(best);
            if (idx) idx[q0 + i] = bi;
        }
    }
    return PAD_OK;
}
