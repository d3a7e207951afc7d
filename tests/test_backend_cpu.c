/* test_backend_cpu.c - the CPU backend's GEMM and simple ops against naive double-precision loops (LayerNorm also on
 * rows where eps dominates), the independence of GEMM results from the OpenBLAS/OpenMP thread count, and the
 * backend table's handling of a missing op and of "auto" without a CUDA device. */
#include "backend.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void naive_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, float *C, int ldc) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
                double b = tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
                s += a * b;
            }
            C[(size_t)m * ldc + n] = (float)(alpha * s + (beta == 0 ? 0 : beta * C[(size_t)m * ldc + n]));
        }
}

Test(backend_cpu, gemm_all_transposes_batched) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_rng rng = {42};
    const int M = 7, N = 13, K = 29, batch = 3; // all different so a transposition cannot pass by symmetry
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        int lda = ta ? M : K, ldb = tb ? K : N;
        float *A = malloc(sizeof(float) * M * K * batch), *B = malloc(sizeof(float) * K * N * batch);
        float *C = malloc(sizeof(float) * M * N * batch), *R = malloc(sizeof(float) * M * N * batch);
        pad_rng_fill(&rng, A, (size_t)M * K * batch, -1, 1);
        pad_rng_fill(&rng, B, (size_t)K * N * batch, -1, 1);
        pad_rng_fill(&rng, C, (size_t)M * N * batch, -1, 1);
        memcpy(R, C, sizeof(float) * M * N * batch);
        cr_assert(pad_op_gemm(be, ta, tb, M, N, K, 0.5f, A, lda, M * K, B, ldb, K * N, 2.0f, C, N, M * N, batch) ==
                  PAD_OK);
        for (int b = 0; b < batch; b++)
            naive_gemm(ta, tb, M, N, K, 0.5f, A + b * M * K, lda, B + b * K * N, ldb, 2.0f, R + b * M * N, N);
        PAD_ASSERT_CLOSE("gemm", C, R, (size_t)M * N * batch, 1e-5, 1e-5);
        free(A);
        free(B);
        free(C);
        free(R);
    }
    pad_backend_free(be);
}

Test(backend_cpu, gemm_beta_zero_ignores_nan) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4] = {NAN, NAN, NAN, NAN};
    cr_assert(pad_op_gemm(be, false, false, 2, 2, 3, 1.0f, A, 3, 0, B, 2, 0, 0.0f, C, 2, 0, 1) == PAD_OK);
    float want[4] = {4, 5, 10, 11};
    PAD_ASSERT_CLOSE("gemm beta=0", C, want, 4, 0, 0);
    pad_backend_free(be);
}

Test(backend_cpu, gemm_independent_of_thread_count) {
    const int M = 300, N = 257, K = 511;
    pad_rng rng = {7};
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    pad_rng_fill(&rng, A, (size_t)M * K, -1, 1);
    pad_rng_fill(&rng, B, (size_t)N * K, -1, 1);
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 1) == PAD_OK);
    cr_assert(pad_op_linear(be, C1, A, B, NULL, M, K, N, false) == PAD_OK);
    pad_backend_free(be);
    cr_assert(pad_backend_cpu_init(&be, 2) == PAD_OK);
    cr_assert(pad_op_linear(be, C2, A, B, NULL, M, K, N, false) == PAD_OK);
    pad_backend_free(be);
    cr_assert(memcmp(C1, C2, sizeof(float) * M * N) == 0, "GEMM result depends on the thread count");
    free(A);
    free(B);
    free(C1);
    free(C2);
}

// LayerNorm of rows x(M,C) against a double-precision loop with the op's eps (1e-5f, widened exactly as the op does).
// The op normalises in double and rounds three times in float (the normalised value, the product with w, the sum
// with b), each at most 2^-24 relative: |error| <= 2^-24 (2 |n w| + |y|) with |n w| <= 3 here, under 4e-7 +
// 1e-7 |y|. The tolerance 4e-7 + 2e-7 |y| keeps that with room and still sees eps 1e-6 instead of 1e-5: on the
// random rows (variance about 2) that moves the outputs by up to 5e-6, on the low-variance rows by tens of percent.
// Returns the largest variance seen.
static double check_layernorm_rows(pad_backend *be, const char *what, const float *x, const float *w, const float *b,
                                   int M, int C) {
    float *y = malloc(sizeof(float) * M * C), *mean = malloc(sizeof(float) * M), *rstd = malloc(sizeof(float) * M);
    cr_assert(y && mean && rstd);
    const float eps = 1e-5f;
    cr_assert(pad_op_layernorm(be, y, mean, rstd, x, w, b, M, C, eps) == PAD_OK);
    double var_max = 0;
    for (int m = 0; m < M; m++) {
        double mu = 0, var = 0;
        for (int c = 0; c < C; c++)
            mu += x[m * C + c];
        mu /= C;
        for (int c = 0; c < C; c++)
            var += (x[m * C + c] - mu) * (x[m * C + c] - mu);
        var /= C;
        var_max = fmax(var_max, var);
        const double rs = 1.0 / sqrt(var + (double)eps);
        cr_assert(fabs(rstd[m] - rs) <= 1e-7 * rs, "%s: rstd of row %d: %.9g vs %.9g", what, m, rstd[m], rs);
        for (int c = 0; c < C; c++) {
            double want = (x[m * C + c] - mu) * rs * w[c] + b[c];
            cr_assert(fabs(y[m * C + c] - want) <= 4e-7 + 2e-7 * fabs(want), "%s (%d,%d): %.9g vs %.9g", what, m, c,
                      y[m * C + c], want);
        }
    }
    free(y);
    free(mean);
    free(rstd);
    return var_max;
}

Test(backend_cpu, layernorm_and_backward_match_naive) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    const int M = 5, C = 37;
    pad_rng rng = {3};
    float x[M * C], w[C], b[C], y[M * C], mean[M], rstd[M], dy[M * C], dx[M * C];
    pad_rng_fill(&rng, x, M * C, -2, 3);
    pad_rng_fill(&rng, w, C, 0.5f, 1.5f);
    pad_rng_fill(&rng, b, C, -0.5f, 0.5f);
    pad_rng_fill(&rng, dy, M * C, -1, 1);
    check_layernorm_rows(be, "layernorm", x, w, b, M, C);
    // rows whose variance (about 3e-6 and 3e-7) is below eps: there eps sets the scale of the output
    float flat[2 * C];
    pad_rng_fill(&rng, flat, C, 0.697f, 0.703f);
    pad_rng_fill(&rng, flat + C, C, -1.201f, -1.199f);
    double var = check_layernorm_rows(be, "layernorm, low-variance rows", flat, w, b, 2, C);
    cr_assert(var < 0.5e-5, "the low-variance rows have variance %g: eps would not dominate", var);
    cr_assert(pad_op_layernorm(be, y, mean, rstd, x, w, b, M, C, 1e-5f) == PAD_OK);
    // backward against central finite differences of L = sum(dy * layernorm(x))
    memset(dx, 0, sizeof dx);
    cr_assert(pad_op_layernorm_backward(be, dx, dy, x, w, mean, rstd, M, C) == PAD_OK);
    for (int i = 0; i < M * C; i += 7) {
        double eps = 1e-3, lp = 0, lm = 0;
        float xp[M * C], yp[M * C];
        memcpy(xp, x, sizeof x);
        xp[i] += (float)eps;
        pad_op_layernorm(be, yp, NULL, NULL, xp, w, b, M, C, 1e-5f);
        for (int j = 0; j < M * C; j++)
            lp += (double)dy[j] * yp[j];
        xp[i] = x[i] - (float)eps;
        pad_op_layernorm(be, yp, NULL, NULL, xp, w, b, M, C, 1e-5f);
        for (int j = 0; j < M * C; j++)
            lm += (double)dy[j] * yp[j];
        double fd = (lp - lm) / (2 * eps);
        cr_assert(fabs(fd - dx[i]) < 2e-3 * (1 + fabs(fd)), "layernorm backward %d: %g vs fd %g", i, dx[i], fd);
    }
    pad_backend_free(be);
}

Test(backend_cpu, gelu_and_backward) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    float x[9] = {-4, -2, -1, -0.5f, 0, 0.5f, 1, 2, 4}, y[9], d[9], one[9];
    for (int i = 0; i < 9; i++)
        one[i] = 1;
    cr_assert(pad_op_gelu(be, y, x, 9) == PAD_OK);
    cr_assert(pad_op_gelu_backward(be, d, one, x, 9) == PAD_OK);
    for (int i = 0; i < 9; i++) {
        double want = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
        cr_assert(fabs(y[i] - want) < 1e-6, "gelu(%g) = %g, want %g", x[i], y[i], want);
        double h = 1e-3;
        double fd = (0.5 * (x[i] + h) * (1 + erf((x[i] + h) / sqrt(2.0))) -
                     0.5 * (x[i] - h) * (1 + erf((x[i] - h) / sqrt(2.0)))) /
                    (2 * h);
        cr_assert(fabs(d[i] - fd) < 1e-4, "gelu'(%g) = %g, fd %g", x[i], d[i], fd);
    }
    pad_backend_free(be);
}

Test(backend_cpu, gather_scatter_rows) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    float table[3 * 2] = {1, 2, 3, 4, 5, 6}, out[4 * 2] = {9, 9, 9, 9, 9, 9, 9, 9};
    int32_t idx[4] = {2, -1, 0, 2};
    cr_assert(pad_op_gather_rows(be, out, table, idx, 4, 2) == PAD_OK);
    float want[8] = {5, 6, 9, 9, 1, 2, 5, 6};
    PAD_ASSERT_CLOSE("gather", out, want, 8, 0, 0);
    float dt[6] = {0};
    cr_assert(pad_op_scatter_add_rows(be, dt, out, idx, 4, 2, 3) == PAD_OK);
    float want2[6] = {1, 2, 0, 0, 10, 12};
    PAD_ASSERT_CLOSE("scatter", dt, want2, 6, 0, 0);
    pad_backend_free(be);
}

Test(backend_cpu, sgd_matches_torch_formula) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 0.25f}, buf[2];
    cr_assert(pad_op_sgd_step(be, p, g, buf, 2, 0.1f, 0.9f, 0.01f, true) == PAD_OK);
    // g' = g + wd p = {0.51, 0.23}; buf = g'; p -= 0.1 * buf
    cr_assert(fabsf(p[0] - (1.0f - 0.051f)) < 1e-7f && fabsf(p[1] - (-2.0f - 0.023f)) < 1e-7f);
    float p0 = p[0], b0 = buf[0];
    cr_assert(pad_op_sgd_step(be, p, g, buf, 2, 0.1f, 0.9f, 0.01f, false) == PAD_OK);
    float gg = 0.5f + 0.01f * p0, bb = 0.9f * b0 + gg;
    cr_assert(fabsf(buf[0] - bb) < 1e-7f && fabsf(p[0] - (p0 - 0.1f * bb)) < 1e-7f);
    pad_backend_free(be);
}

// An op whose slot is NULL in a backend's table is refused with PAD_ERR_UNSUPPORTED and a log line naming the op and
// the backend (a test table: the CPU one with knn_min and gelu removed); the other ops keep working. "auto" with no
// visible CUDA device (none in this build, or CUDA_VISIBLE_DEVICES emptied before CUDA starts in this test's
// process) falls back to the CPU backend, and asking for CUDA explicitly is an error, on any machine.
Test(backend_cpu, unimplemented_op_is_a_clear_error_and_auto_falls_back, .init = pad_test_log_start_all,
     .fini = pad_test_log_stop) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    const pad_backend_ops *cpu_ops = be->ops;
    pad_backend_ops partial = *cpu_ops;
    partial.name = "partial-test";
    partial.knn_min = NULL;
    partial.gelu = NULL;
    be->ops = &partial;
    float q[4] = {1, 0, 0, 1}, bank[4] = {0, 1, 1, 0}, dist[2] = {-7, -7}, y[4] = {-7, -7, -7, -7};
    int32_t idx[2] = {-7, -7};
    cr_assert(pad_op_knn_min(be, dist, idx, q, 2, bank, 2, 2, 1) == PAD_ERR_UNSUPPORTED);
    PAD_ASSERT_LOG_HAS("op 'knn_min' is not implemented on the partial-test backend");
    cr_assert(dist[0] == -7 && dist[1] == -7 && idx[0] == -7, "a refused op wrote its output");
    cr_assert(pad_op_gelu(be, y, q, 4) == PAD_ERR_UNSUPPORTED);
    PAD_ASSERT_LOG_HAS("op 'gelu' is not implemented on the partial-test backend");
    cr_assert(pad_op_scale(be, y, q, 2.0f, 4) == PAD_OK && y[0] == 2.0f && y[1] == 0.0f, "other ops still work");
    be->ops = cpu_ops;
    cr_assert(pad_op_knn_min(be, dist, idx, q, 2, bank, 2, 2, 1) == PAD_OK && idx[0] == 1 && dist[0] == 0.0f);
    pad_backend_free(be);

    cr_assert(setenv("CUDA_VISIBLE_DEVICES", "", 1) == 0); // hides every device before CUDA starts (GPU machines)
    cr_assert(pad_cuda_device_count() == 0);
    cr_assert(pad_backend_init(&be, PAD_BACKEND_AUTO, 0) == PAD_OK);
    cr_assert(pad_backend_get_kind(be) == PAD_BACKEND_CPU, "auto chose %s", pad_backend_kind_str(be->kind));
    PAD_ASSERT_LOG_HAS("device auto: no usable CUDA device, using the CPU backend");
    pad_backend_free(be);
    pad_backend *cu = (pad_backend *)1;
    cr_assert(pad_backend_init(&cu, PAD_BACKEND_CUDA, 0) == PAD_ERR_UNSUPPORTED);
    cr_assert(cu == NULL);
}
