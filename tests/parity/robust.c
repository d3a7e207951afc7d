/* robust.c - parity checks of the CUDA backend's contracts beyond plain numbers: per-image results independent of
 * the batch, bit for bit (the per-entry GEMM loop by default; the pinned cuBLASLt GEMMs and the one-GEMM-over-rows
 * path of the fast kernels on trial), GEMMs with K = 0, out-of-range scatter indices (an error, the backend still
 * usable), the row max's first-wins rule for signed zeros and NaN payloads, the EAM loss near its hinge, and CUDA
 * graphs: a capture that fails falls back to eager launches, and a change of math mode captures again. */
#include "parity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// batch independence

// The ViT's per-image linear layer: out(B,R,N) = inp(B,R,K) @ w(N,K)^T, as a batch of B, and image by image from
// buffers of their own (as an image encoded alone); both must give the same bits on the backend under test, and
// the batch must match the CPU. rows: one GEMM over the B*R rows (pad_op_linear_rows, with a bias) instead.
static void batch_case(const char *tag, int mode, bool rows, int B, int R, int K, int N) {
    char name[160];
    snprintf(name, sizeof name, "robust/batch %s B%d R%d K%d N%d", tag, B, R, K, N);
    if (!selected(name) || !path_on(mode != PAD_CUDA_GEMM_LOOP || rows)) return;
    if (rows && !pg.gpu->ops->linear_rows) return; // the CPU's GEMM over many rows rounds by row count: CUDA only
    const size_t ni = (size_t)R * K, no = (size_t)R * N;
    twin inp = tw_rand(ni * B, -1, 1), w = tw_rand((size_t)N * K, -0.1f, 0.1f), bias = tw_rand((size_t)N, -1, 1);
    twin out = tw_nan(no * B);
    float *one_in = NULL, *one_out = NULL, *alone = malloc(no * B * sizeof(float));
    pad_backend *be = pg.gpu;
    const int mode0 = be->gemm_mode;
    be->gemm_mode = mode;
    if (!alone) abort();
    double ms = 0;
    if (rows) {
        TRY_OR_FAIL(name, pad_op_linear_rows(pg.cpu, out.c, inp.c, w.c, bias.c, B * R, K, N, false));
        const double t0 = t_begin();
        TRY_OR_FAIL(name, pad_op_linear_rows(be, out.d, inp.d, w.d, bias.d, B * R, K, N, false));
        ms = t_end(t0);
    } else {
        TRY_OR_FAIL(name, pad_op_gemm(pg.cpu, false, true, R, N, K, 1.0f, inp.c, K, (long long)ni, w.c, K, 0, 0.0f,
                                      out.c, N, (long long)no, B));
        const double t0 = t_begin();
        TRY_OR_FAIL(name, pad_op_gemm(be, false, true, R, N, K, 1.0f, inp.d, K, (long long)ni, w.d, K, 0, 0.0f, out.d,
                                      N, (long long)no, B));
        ms = t_end(t0);
    }
    one_in = pad_buf_alloc(be, ni * sizeof(float));
    one_out = pad_buf_alloc(be, no * sizeof(float));
    if (!one_in || !one_out) {
        fail(name, "out of memory");
        goto done;
    }
    for (int b = 0; b < B; b++) {
        TRY_OR_FAIL(name, pad_buf_copy(be, one_in, inp.d + (size_t)b * ni, ni * sizeof(float)));
        if (rows)
            TRY_OR_FAIL(name, pad_op_linear_rows(be, one_out, one_in, w.d, bias.d, R, K, N, false));
        else
            TRY_OR_FAIL(name,
                        pad_op_gemm(be, false, true, R, N, K, 1.0f, one_in, K, 0, w.d, K, 0, 0.0f, one_out, N, 0, 1));
        TRY_OR_FAIL(name, pad_buf_download(be, alone + (size_t)b * no, one_out, no * sizeof(float)));
    }
    {
        float *batched = gpu_get(out.d, no * B);
        char n2[200];
        snprintf(n2, sizeof n2, "%s == one by one", name);
        check_bits(n2, batched, alone, no * B * sizeof(float), ms);
        free(batched);
    }
    tw_check(name, &out, 1e-6 * K + 1e-6, 1e-4, 1e-10, ms);
done:
    be->gemm_mode = mode0;
    pad_buf_free(be, one_in);
    pad_buf_free(be, one_out);
    free(alone);
    tw_free(&inp);
    tw_free(&w);
    tw_free(&bias);
    tw_free(&out);
}

static void batch_checks(void) {
    static const int sizes[][4] = {{5, 50, 128, 384}, {3, 17, 64, 100}, {8, 226, 896, 2688}, {4, 226, 3584, 896}};
    for (int s = 0; s < 4; s++) {
        if (s >= 2 && pg.quick) break;
        const int B = sizes[s][0], R = sizes[s][1], K = sizes[s][2], N = sizes[s][3];
        batch_case("loop", PAD_CUDA_GEMM_LOOP, false, B, R, K, N);
        batch_case("pinned", PAD_CUDA_GEMM_PINNED, false, B, R, K, N);
        batch_case("rows+bias", PAD_CUDA_GEMM_LOOP, true, B, R, K, N);
    }
}

// ----------------------------------------------------------------------------
// K = 0, scatter indices, row max, EAM near the hinge

// C = beta C without any product (beta 0: zeros, whatever C held), as the CPU defines it; the backend stays usable.
static void gemm_k0(void) {
    for (int k = 0; k < 2; k++) {
        const float beta = k ? 0.5f : 0.0f;
        char name[96];
        snprintf(name, sizeof name, "robust/gemm K0 beta%g batch2", beta);
        if (!selected(name) || !path_on(false)) continue;
        const int M = 3, N = 5, ldc = 7;
        const size_t sc = (size_t)M * ldc;
        twin A = tw_rand(4, -1, 1), B = tw_rand(4, -1, 1), C = k ? tw_rand(2 * sc, -1, 1) : tw_nan(2 * sc);
        pad_status s1 =
            pad_op_gemm(pg.cpu, false, false, M, N, 0, 1.0f, A.c, 0, 0, B.c, N, 0, beta, C.c, ldc, (long long)sc, 2);
        pad_status s2 =
            pad_op_gemm(pg.gpu, false, false, M, N, 0, 1.0f, A.d, 0, 0, B.d, N, 0, beta, C.d, ldc, (long long)sc, 2);
        pad_status s3 = pad_backend_sync(pg.gpu);
        if (s1 != PAD_OK || s2 != PAD_OK || s3 != PAD_OK || pg.gpu->poisoned)
            fail(name, "a GEMM with K = 0 failed or poisoned the backend");
        else {
            float *h = gpu_get(C.d, 2 * sc);
            check_bits(name, h, C.c, 2 * sc * sizeof(float), 0);
            free(h);
        }
        tw_free(&A);
        tw_free(&B);
        tw_free(&C);
    }
}

// An index >= R is an error (reported by the call on the CPU, by the next sync on CUDA) that leaves the backend
// usable: a valid scatter right after must work and match the CPU.
static void scatter_range(void) {
    const char *name = "robust/scatter_add_rows index out of range";
    if (!selected(name) || !path_on(false)) return;
    const int n = 6, C = 40, R = 4;
    const int32_t bad[6] = {0, 3, -1, 4, 1, 1}, good[6] = {0, 3, -1, 2, 1, 1};
    int32_t *ib = pad_buf_alloc(pg.gpu, sizeof bad), *ig = pad_buf_alloc(pg.gpu, sizeof good);
    twin dout = tw_rand((size_t)n * C, -1, 1), t = tw_rand((size_t)R * C, -1, 1);
    if (!ib || !ig || pad_buf_upload(pg.gpu, ib, bad, sizeof bad) != PAD_OK ||
        pad_buf_upload(pg.gpu, ig, good, sizeof good) != PAD_OK) {
        fail(name, "setup failed");
        goto done;
    }
    {
        pad_status s1 = pad_op_scatter_add_rows(pg.gpu, t.d, dout.d, ib, n, C, R);
        pad_status s2 = pad_backend_sync(pg.gpu);
        pad_status s3 = pad_backend_sync(pg.gpu); // the error is reported once
        const bool reported = s1 == PAD_ERR_INVALID_ARG || (s1 == PAD_OK && s2 == PAD_ERR_INVALID_ARG);
        if (!reported || s3 != PAD_OK || pg.gpu->poisoned) {
            char why[160];
            snprintf(why, sizeof why, "call %s, sync %s, next sync %s%s", pad_status_str(s1), pad_status_str(s2),
                     pad_status_str(s3), pg.gpu->poisoned ? ", backend poisoned" : "");
            fail(name, why);
            goto done;
        }
        line("PASS", name, "error %s, then the backend is usable", pad_status_str(s1 != PAD_OK ? s1 : s2));
    }
    {
        twin t2 = tw_rand((size_t)R * C, -1, 1);
        int32_t *ic = NULL;
        if (pad_buf_from_host(pg.cpu, (float **)&ic, (const float *)good, (size_t)n) != PAD_OK) abort();
        pad_op_scatter_add_rows(pg.cpu, t2.c, dout.c, ic, n, C, R);
        pad_op_scatter_add_rows(pg.gpu, t2.d, dout.d, ig, n, C, R);
        tw_check("robust/scatter_add_rows after the error", &t2, 0, 0, -1, 0);
        pad_buf_free(pg.cpu, ic);
        tw_free(&t2);
    }
done:
    pad_buf_free(pg.gpu, ib);
    pad_buf_free(pg.gpu, ig);
    tw_free(&dout);
    tw_free(&t);
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// The CPU's row max keeps the first of equal values (+0 / -0) and the first NaN with its payload: bit for bit.
static void row_max_zeros(void) {
    const char *name = "robust/row_max signed zeros and NaN payloads";
    if (!selected(name) || !path_on(false)) return;
    enum { B = 6, N = 1000 };
    float *h = malloc((size_t)B * N * sizeof(float));
    if (!h) abort();
    for (int i = 0; i < B * N; i++)
        h[i] = -1.0f - (float)(i % 7);
    h[0 * N + 0] = 0.0f, h[0 * N + 500] = -0.0f;                     // +0 first
    h[1 * N + 3] = -0.0f, h[1 * N + 999] = 0.0f;                     // -0 first
    h[2 * N + 700] = -0.0f, h[2 * N + 701] = 0.0f;                   // neighbours (two threads)
    h[3 * N + 256] = -0.0f, h[3 * N + 0] = -0.0f;                    // -0 twice, in one thread's stride
    h[4 * N + 10] = bits_float(0x7fc00001u);                         // NaN payload 1 first
    h[4 * N + 20] = bits_float(0xffc00002u);                         // then another NaN
    h[5 * N + 999] = 3.0f, h[5 * N + 998] = bits_float(0x7fc12345u); // NaN before the largest value
    twin x = tw_from(h, (size_t)B * N), m = tw_nan(B);
    pad_op_row_max(pg.cpu, m.c, x.c, B, N);
    const double t0 = t_begin();
    pad_status st = pad_op_row_max(pg.gpu, m.d, x.d, B, N);
    const double ms = t_end(t0);
    if (st != PAD_OK)
        fail(name, "row_max failed");
    else {
        float *g = gpu_get(m.d, B);
        check_bits(name, g, m.c, B * sizeof(float), ms);
        free(g);
    }
    free(h);
    tw_free(&x);
    tw_free(&m);
}

// Samples whose two distances differ by ~1e-9 of their size (float cancellation would decide the hinge by noise):
// the loss and the anchor gradients (which count the active hinges) must match the CPU's double arithmetic.
static void eam_hinge(void) {
    for (int ta = 0; ta < 2; ta++) {
        char name[96];
        snprintf(name, sizeof name, "robust/eam_loss near the hinge%s", ta ? " token_axis" : "");
        if (!selected(name) || !path_on(false)) continue;
        const int B = 4, T = 50, D = 640;
        float *wn = rand_host(D, -1, 1), *wa = malloc(D * sizeof(float)), *f = rand_host((size_t)B * T * D, -1, 1);
        if (!wa) abort();
        for (int d = 0; d < D; d++) // wa a few ulps from wn: pos - neg is tiny against pos
            wa[d] = nextafterf(nextafterf(wn[d], 2.0f), d % 2 ? 2.0f : -2.0f);
        twin tf = tw_from(f, (size_t)B * T * D), twn = tw_from(wn, D), twa = tw_from(wa, D);
        twin loss = tw_nan(1), dwn = tw_rand(D, 0, 0), dwa = tw_rand(D, 0, 0);
        pad_op_eam_loss(pg.cpu, loss.c, dwn.c, dwa.c, tf.c, twn.c, twa.c, B, T, D, ta, 0.0f);
        const double t0 = t_begin();
        pad_status st = pad_op_eam_loss(pg.gpu, loss.d, dwn.d, dwa.d, tf.d, twn.d, twa.d, B, T, D, ta, 0.0f);
        const double ms = t_end(t0);
        if (st != PAD_OK)
            fail(name, "eam_loss failed");
        else {
            char n2[128];
            snprintf(n2, sizeof n2, "%s (loss)", name);
            tw_check(n2, &loss, 0, 1e-6, -1, ms);
            snprintf(n2, sizeof n2, "%s (dwn)", name);
            tw_check(n2, &dwn, 1e-7, 1e-5, -1, ms);
            snprintf(n2, sizeof n2, "%s (dwa)", name);
            tw_check(n2, &dwa, 1e-7, 1e-5, -1, ms);
        }
        free(wn);
        free(wa);
        free(f);
        tw_free(&tf);
        tw_free(&twn);
        tw_free(&twa);
        tw_free(&loss);
        tw_free(&dwn);
        tw_free(&dwa);
    }
}

// ----------------------------------------------------------------------------
// graphs

typedef struct gjob {
    pad_backend *be;
    const float *A, *B;
    float *C;
    int M, N, K;
    bool upload_in_capture; // a transfer inside the work: not capturable (the capture must fall back)
    float *scratch;
} gjob;

static pad_status gjob_ops(void *ctx) {
    gjob *j = ctx;
    PAD_TRY(
        pad_op_gemm(j->be, false, true, j->M, j->N, j->K, 1.0f, j->A, j->K, 0, j->B, j->K, 0, 0.0f, j->C, j->N, 0, 1));
    PAD_TRY(pad_op_scale(j->be, j->C, j->C, 0.5f, (size_t)j->M * j->N));
    if (j->upload_in_capture) {
        const float one = 1.0f;
        PAD_TRY(pad_buf_upload(j->be, j->scratch, &one, sizeof one));
    }
    return PAD_OK;
}

// Runs the job `calls` times through one graph; *out gets C (host, malloc'ed).
static pad_status graph_calls(gjob *j, pad_graph **g, int calls, float **out) {
    for (int i = 0; i < calls; i++)
        PAD_TRY(pad_graph_run(j->be, g, NULL, 0, gjob_ops, j));
    *out = gpu_get(j->C, (size_t)j->M * j->N);
    return PAD_OK;
}

static void graph_checks(void) {
    const char *n1 = "graphs/robust capture failure falls back to eager", *n2 = "graphs/robust math change recaptures";
    if ((!selected(n1) && !selected(n2)) || !path_on(true) || pg.twin) return;
    const int M = 33, N = 64, K = 96;
    twin A = tw_rand((size_t)M * K, -1, 1), B = tw_rand((size_t)N * K, -1, 1), C = tw_nan((size_t)M * N);
    gjob j = {pg.gpu, A.d, B.d, C.d, M, N, K, true, NULL};
    pad_graph *g = NULL;
    float *eager = NULL, *viag = NULL;
    j.scratch = pad_buf_alloc(pg.gpu, 16);
    if (!j.scratch) {
        fail(n1, "out of memory");
        goto done;
    }
    TRY_OR_FAIL(n1, gjob_ops(&j));
    eager = gpu_get(C.d, (size_t)M * N);
    {
        pad_status st = graph_calls(&j, &g, 4, &viag);
        if (st != PAD_OK || pg.gpu->poisoned)
            fail(n1, "the failed capture broke the backend");
        else if (pad_graph_replays(g) != 0)
            fail(n1, "a graph with a transfer inside was replayed");
        else
            check_bits(n1, viag, eager, (size_t)M * N * sizeof(float), 0);
    }
    pad_graph_free(pg.gpu, &g);
    free(viag);
    viag = NULL;
    free(eager);
    eager = NULL;
    // a capturable job: fp32 replays, then TF32 calls must not replay the fp32 graph
    j.upload_in_capture = false;
    TRY_OR_FAIL(n2, graph_calls(&j, &g, 3, &viag));
    {
        const long r_fp32 = pad_graph_replays(g);
        free(viag);
        viag = NULL;
        pad_backend_set_math(pg.gpu, PAD_MATH_TF32);
        TRY_OR_FAIL(n2, gjob_ops(&j));
        eager = gpu_get(C.d, (size_t)M * N);
        TRY_OR_FAIL(n2, graph_calls(&j, &g, 3, &viag));
        pad_backend_set_math(pg.gpu, PAD_MATH_FP32);
        if (r_fp32 < 1)
            fail(n2, "no replay in float32");
        else if (pad_graph_replays(g) < r_fp32 + 1)
            fail(n2, "no replay after the math change");
        else
            check_bits(n2, viag, eager, (size_t)M * N * sizeof(float), 0);
    }
done:
    pad_backend_set_math(pg.gpu, PAD_MATH_FP32);
    pad_graph_free(pg.gpu, &g);
    pad_buf_free(pg.gpu, j.scratch);
    free(eager);
    free(viag);
    tw_free(&A);
    tw_free(&B);
    tw_free(&C);
}

void robust_checks(void) {
    batch_checks();
    gemm_k0();
    scatter_range();
    row_max_zeros();
    eam_hinge();
    graph_checks();
}
