/* backend_cpu.c - the CPU reference backend: host memory, GEMM through OpenBLAS (cblas_sgemm), and the op table
 * that points at the implementations in cpu_*.c. OpenBLAS splits GEMMs over M and N, never over K, so a GEMM's
 * result does not depend on the thread count (tests/test_backend_cpu.c checks this). */
#include "backend.h"
#include "cpu_ops.h"
#include "log.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// OpenBLAS extensions (declared in its cblas.h on Debian, repeated here for other BLAS headers)
void openblas_set_num_threads(int num_threads);
char *openblas_get_corename(void);

// OpenBLAS picks its kernels from the CPU model at load time. A version older than the CPU (Debian 12's 0.3.21 on
// Sapphire/Emerald Rapids or Zen 4, for instance) falls back to its generic SSE3 "Prescott" kernels, 3-4x slower
// than its AVX2/AVX-512 ones. OPENBLAS_CORETYPE, read when the library loads, overrides the choice; say so once
// (the promptad binary sets it and re-executes itself, host/main.c; this is for other programs using the library).
static void warn_generic_openblas(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    static bool warned = false; // only silences repeats of the message
    const char *core = openblas_get_corename();
    if (warned || getenv("OPENBLAS_CORETYPE") || !core ||
        (strcasecmp(core, "Prescott") != 0 && strcasecmp(core, "Core2") != 0 && strcasecmp(core, "generic") != 0))
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) return;
    warned = true;
    PAD_LOG_WARN("OpenBLAS does not recognise this CPU and uses its generic '%s' kernels: matrix products run 3-4x "
                 "slower than they could; set OPENBLAS_CORETYPE=%s in the environment",
                 core, __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell");
#endif
}

static void *cpu_alloc(pad_backend *be, size_t nbytes) {
    (void)be;
    size_t n = (nbytes + 63) & ~(size_t)63;
    return aligned_alloc(64, n ? n : 64);
}

static void cpu_free(pad_backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static pad_status cpu_memcpy(pad_backend *be, void *dst, const void *src, size_t nbytes) {
    (void)be;
    if (dst != src) memmove(dst, src, nbytes);
    return PAD_OK;
}

static pad_status cpu_zero(pad_backend *be, void *dst, size_t nbytes) {
    (void)be;
    memset(dst, 0, nbytes);
    return PAD_OK;
}

static pad_status cpu_sync(pad_backend *be) {
    (void)be;
    return PAD_OK;
}

static void cpu_destroy(pad_backend *be) {
    free(be);
}

// A GEMM is cut into tasks of at most CPU_GEMM_MB rows x CPU_GEMM_NB columns of C, per batch entry, with equal-sized
// chunks rounded to 16. The decomposition depends only on the problem size, never on the thread count, and
// OpenBLAS runs single-threaded inside each task, so results are bitwise independent of the number of threads
// (OpenBLAS's own threading is not: it changes the blocking with the thread count), and a batch entry is computed
// the same way whatever the batch size. Column chunks keep the parallelism of small-M GEMMs (one image of a ViT:
// M = 226) without repacking the whole weight matrix in every task, which row chunks would do.
#define CPU_GEMM_MB           512
#define CPU_GEMM_NB           512
#define CPU_GEMM_SERIAL_FLOPS (1 << 20)

// Chunk size for cutting n into pieces of at most max_chunk: an even number of pieces (so that 2, 4, 8... threads
// get equal shares), ceil(n / pieces) rounded up to 16.
static int gemm_chunk(int n, int max_chunk) {
    if (n <= max_chunk) return n > 0 ? n : 1;
    int pieces = (n + max_chunk - 1) / max_chunk;
    pieces += pieces % 2;
    const int c = (n + pieces - 1) / pieces;
    return (c + 15) / 16 * 16;
}

static void gemm_one(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    if (K == 0) { // BLAS leaves C untouched when K == 0; make the beta semantics explicit
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                C[(size_t)m * ldc + n] = beta == 0.0f ? 0.0f : beta * C[(size_t)m * ldc + n];
        return;
    }
    // beta == 0: BLAS sets C without reading it ("when BETA is zero, C need not be set on input"; OpenBLAS clears
    // C first), so NaNs in the old contents do not leak (test_backend_cpu.c checks it).
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
}

static pad_status cpu_gemm(pad_backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                           int lda, long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                           int ldc, long long strideC, int batch) {
    (void)be;
    const double flops = 2.0 * M * N * (double)K * batch;
    const int mb = gemm_chunk(M, CPU_GEMM_MB), nb = gemm_chunk(N, CPU_GEMM_NB);
    const int m_tasks = (M + mb - 1) / mb, n_tasks = (N + nb - 1) / nb, per_entry = m_tasks * n_tasks;
    const long long tasks = (long long)batch * per_entry;
#pragma omp parallel for schedule(dynamic, 1) if (flops > CPU_GEMM_SERIAL_FLOPS && tasks > 1)
    for (long long task = 0; task < tasks; task++) {
        const int b = (int)(task / per_entry), r = (int)(task % per_entry);
        const int m0 = (r / n_tasks) * mb, n0 = (r % n_tasks) * nb;
        const int mc = M - m0 < mb ? M - m0 : mb, nc = N - n0 < nb ? N - n0 : nb;
        const float *Ab = A + (long long)b * strideA, *Bb = B + (long long)b * strideB;
        const float *Am = transA ? Ab + m0 : Ab + (size_t)m0 * lda; // rows m0.. of op(A)
        const float *Bn = transB ? Bb + (size_t)n0 * ldb : Bb + n0; // columns n0.. of op(B)
        gemm_one(transA, transB, mc, nc, K, alpha, Am, lda, Bn, ldb, beta,
                 C + (long long)b * strideC + (size_t)m0 * ldc + n0, ldc);
    }
    return PAD_OK;
}

static const pad_backend_ops k_cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .destroy = cpu_destroy,
    .gemm = cpu_gemm,
    .add_rows = cpu_add_rows,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .layernorm = cpu_layernorm,
    .gelu = cpu_gelu,
    .gather_rows = cpu_gather_rows,
    .scatter_add_rows = cpu_scatter_add_rows,
    .attention = cpu_attention,
    .attention_dual = cpu_attention_dual,
    .patch_embed = cpu_patch_embed,
    .layernorm_backward = cpu_layernorm_backward,
    .gelu_backward = cpu_gelu_backward,
    .attention_backward = cpu_attention_backward,
    .sgd_step = cpu_sgd_step,
    .knn_min = cpu_knn_min,
    .text_score = cpu_text_score,
    .text_score_multi = cpu_text_score_multi,
    .harmonic_fuse = cpu_harmonic_fuse,
    .round_half = cpu_round_half,
    .upsample_bilinear = cpu_upsample_bilinear,
    .gaussian_filter = cpu_gaussian_filter,
    .row_max = cpu_row_max,
    .l2norm_rows = cpu_l2norm_rows,
    .l2norm_rows_backward = cpu_l2norm_rows_backward,
    .xent0 = cpu_xent0,
    .eam_loss = cpu_eam_loss,
    .dot = cpu_dot,
    .bias_gelu = cpu_bias_gelu,
    .conv2d = cpu_conv2d,
    .pool2d = cpu_pool2d,
    .adaptive_avgpool2d = cpu_adaptive_avgpool2d,
    .residual_add = cpu_residual_add,
    .to_rows = cpu_to_rows,
    .knn_l2 = cpu_knn_l2,
    .quick_gelu = cpu_quick_gelu,
    .quick_gelu_backward = cpu_quick_gelu_backward,
};

pad_status pad_backend_cpu_open(pad_backend **out, int n_threads) {
    *out = NULL;
    pad_backend *be = (pad_backend *)calloc(1, sizeof *be);
    if (!be) return PAD_ERR_OOM;
    be->kind = PAD_BACKEND_CPU;
    be->ops = &k_cpu_ops;
    be->device = -1;
    openblas_set_num_threads(1); // we parallelise GEMMs ourselves (see cpu_gemm)
    warn_generic_openblas();
#ifdef _OPENMP
    if (n_threads > 0) omp_set_num_threads(n_threads);
#endif
    *out = be;
    return PAD_OK;
}
