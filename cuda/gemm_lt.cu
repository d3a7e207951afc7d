/* gemm_lt.cu - GEMMs through cuBLASLt with a pinned algorithm (the CUDA backend's PAD_CUDA_GEMM_PINNED mode and
 * its linear_rows op; on trial until a GPU verifies them, see backend.h).
 *
 * Why: cuBLAS chooses an algorithm (tile shape, split-K or not) from the whole problem, so the same image can be
 * rounded differently when it comes with other images (another batch count, another number of rows). Here the
 * algorithm is chosen once per plan key and then used for every call with that key:
 *  - cuda_gemm_pinned(pin_rows = false): key = the sizes of ONE batch entry (transposes, M, N, K, leading
 *    dimensions, math mode, alignment class); the heuristic is asked for a batch count of 1 and the same algorithm
 *    then runs any batch count as one strided-batched call;
 *  - pin_rows = true (linear_rows): M is left out of the key (the heuristic is asked for PIN_ROWS_REF rows), so one
 *    GEMM over all the rows of a batch computes every row with the algorithm any other row count would use.
 * Split-K is excluded (reduction scheme NONE, SPLITK_NUM 1): without it each output element is one thread's sum
 * over K in a fixed order, whatever the grid. A plan that cannot be made (no algorithm, cuBLASLt refusing the
 * layout) answers PAD_ERR_UNSUPPORTED and the caller falls back (one cuBLAS call per entry; GEMM + add_rows).
 *
 * Row-major through column-major cuBLASLt, as backend_cuda.cu: C(M,N) = op(A) op(B) row-major is the column-major
 * C^T(N,M) = op(B)^T op(A)^T, so the "A" of cuBLASLt is our B and its "B" our A, with m = N, n = M. The bias
 * epilogue adds a vector over the m = N rows of the column-major result: bias[n] on every row of ours. */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#define LT_MAX_PLANS 64
#define PIN_ROWS_REF 4096 // rows the heuristic is asked about for linear_rows plans

typedef struct lt_key {
    int transA, transB, M, N, K, lda, ldb, ldc, math, aligned16, bias, pin_rows;
} lt_key;

typedef struct lt_plan {
    lt_key key;
    bool ok; // false: no algorithm for this key (do not ask again)
    cublasLtMatmulDesc_t desc;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

struct cuda_lt_cache {
    cublasLtHandle_t lt;
    int n;
    lt_plan plans[LT_MAX_PLANS];
};

void cuda_lt_destroy(cuda_impl *im) {
    if (!im->lt) return;
    for (int i = 0; i < im->lt->n; i++)
        if (im->lt->plans[i].desc) cublasLtMatmulDescDestroy(im->lt->plans[i].desc);
    if (im->lt->lt) cublasLtDestroy(im->lt->lt);
    free(im->lt);
    im->lt = NULL;
}

static bool aligned16(const void *p) {
    return ((size_t)p & 15) == 0;
}

// A column-major rows x cols layout with leading dimension ld, batch count and stride (floats).
static cublasStatus_t make_layout(cublasLtMatrixLayout_t *l, int rows, int cols, int ld, int batch, long long stride) {
    cublasStatus_t s = cublasLtMatrixLayoutCreate(l, CUDA_R_32F, (uint64_t)rows, (uint64_t)cols, ld);
    if (s != CUBLAS_STATUS_SUCCESS || batch == 1) return s;
    int32_t bc = batch;
    int64_t st = stride;
    s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &st, sizeof st);
    return s;
}

typedef struct lt_layouts {
    cublasLtMatrixLayout_t a, b, c; // cuBLASLt's A (our B), B (our A), C = D (ours)
} lt_layouts;

static void layouts_free(lt_layouts *L) {
    if (L->a) cublasLtMatrixLayoutDestroy(L->a);
    if (L->b) cublasLtMatrixLayoutDestroy(L->b);
    if (L->c) cublasLtMatrixLayoutDestroy(L->c);
}

static cublasStatus_t layouts_make(lt_layouts *L, const lt_key *k, int M, int batch, long long sA, long long sB,
                                   long long sC) {
    memset(L, 0, sizeof *L);
    cublasStatus_t s = make_layout(&L->a, k->transB ? k->K : k->N, k->transB ? k->N : k->K, k->ldb, batch, sB);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = make_layout(&L->b, k->transA ? M : k->K, k->transA ? k->K : M, k->lda, batch, sA);
    if (s == CUBLAS_STATUS_SUCCESS) s = make_layout(&L->c, k->N, M, k->ldc, batch, sC);
    return s;
}

// Chooses the algorithm of a new plan (p->key set); p->ok says whether one was found.
static void plan_make(pad_backend *be, cuda_lt_cache *c, lt_plan *p) {
    const lt_key *k = &p->key;
    cublasLtMatmulPreference_t pref = NULL;
    lt_layouts L;
    memset(&L, 0, sizeof L);
    cublasOperation_t opA = k->transB ? CUBLAS_OP_T : CUBLAS_OP_N, opB = k->transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t s = cublasLtMatmulDescCreate(&p->desc, cuda_compute_type(be), CUDA_R_32F);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB);
    if (s == CUBLAS_STATUS_SUCCESS && k->bias) {
        cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        s = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep);
    }
    if (s == CUBLAS_STATUS_SUCCESS) s = layouts_make(&L, k, k->pin_rows ? PIN_ROWS_REF : k->M, 1, 0, 0, 0);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulPreferenceCreate(&pref);
    const uint64_t ws = cuda_impl_of(be)->cublas_workspace_bytes;
    const uint32_t no_reduction = CUBLASLT_REDUCTION_SCHEME_NONE, align = k->aligned16 ? 16 : 4;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &no_reduction,
                                                 sizeof no_reduction);
    const cublasLtMatmulPreferenceAttributes_t al[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
        s = cublasLtMatmulPreferenceSetAttribute(pref, al[i], &align, sizeof align);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, L.a, L.b, L.c, L.c, pref, 1, &res, &found);
    if (s == CUBLAS_STATUS_SUCCESS && found > 0) {
        p->algo = res.algo;
        const int32_t one = 1;
        const uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
        s = cublasLtMatmulAlgoConfigSetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one, sizeof one);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasLtMatmulAlgoConfigSetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none,
                                                     sizeof none);
        p->ok = s == CUBLAS_STATUS_SUCCESS;
    }
    if (!p->ok)
        PAD_LOG_INFO("device cuda: no pinned cuBLASLt algorithm for %dx%dx%d (%s): one cuBLAS call per entry", k->M,
                     k->N, k->K, s == CUBLAS_STATUS_SUCCESS ? "none found" : cublasGetStatusString(s));
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    layouts_free(&L);
}

static lt_plan *plan_get(pad_backend *be, const lt_key *k) {
    cuda_impl *im = cuda_impl_of(be);
    if (!im->lt) {
        im->lt = (cuda_lt_cache *)calloc(1, sizeof *im->lt);
        if (!im->lt) return NULL;
        if (cublasLtCreate(&im->lt->lt) != CUBLAS_STATUS_SUCCESS) {
            PAD_LOG_WARN("device cuda: cuBLASLt is not available: one cuBLAS call per entry");
            im->lt->lt = NULL;
        }
    }
    cuda_lt_cache *c = im->lt;
    if (!c->lt) return NULL;
    for (int i = 0; i < c->n; i++)
        if (!memcmp(&c->plans[i].key, k, sizeof *k)) return c->plans[i].ok ? &c->plans[i] : NULL;
    if (c->n == LT_MAX_PLANS || be->capturing)
        return NULL; // no new plans inside a capture (host-side work only,
                     // but keep captures to what the warm-up did)
    lt_plan *p = &c->plans[c->n++];
    memset(p, 0, sizeof *p);
    p->key = *k;
    plan_make(be, c, p);
    return p->ok ? p : NULL;
}

pad_status cuda_gemm_pinned(pad_backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                            int lda, long long strideA, const float *B, int ldb, long long strideB, float beta,
                            float *C, int ldc, long long strideC, int batch, const float *bias, bool pin_rows) {
    const bool al16 = aligned16(A) && aligned16(B) && aligned16(C) && lda % 4 == 0 && ldb % 4 == 0 && ldc % 4 == 0 &&
                      (batch == 1 || (strideA % 4 == 0 && strideB % 4 == 0 && strideC % 4 == 0));
    lt_key k;
    memset(&k, 0, sizeof k); // the key is compared with memcmp
    k.transA = transA;
    k.transB = transB;
    k.M = pin_rows ? 0 : M;
    k.N = N;
    k.K = K;
    k.lda = lda;
    k.ldb = ldb;
    k.ldc = ldc;
    k.math = be->math;
    k.aligned16 = al16;
    k.bias = bias != NULL;
    k.pin_rows = pin_rows;
    lt_plan *p = plan_get(be, &k);
    if (!p) return PAD_ERR_UNSUPPORTED;
    if (bias && cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias) !=
                    CUBLAS_STATUS_SUCCESS)
        return PAD_ERR_UNSUPPORTED;
    lt_layouts L;
    cublasStatus_t s = layouts_make(&L, &k, M, batch, strideA, strideB, strideC);
    if (s == CUBLAS_STATUS_SUCCESS) {
        cuda_impl *im = cuda_impl_of(be);
        s = cublasLtMatmul(im->lt->lt, p->desc, &alpha, B, L.a, A, L.b, &beta, C, L.c, C, L.c, &p->algo,
                           im->cublas_workspace, im->cublas_workspace_bytes, im->stream);
    }
    layouts_free(&L);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE) {
        p->ok = false; // refused before anything ran: fall back, and for good for this key
        PAD_LOG_INFO("device cuda: the pinned cuBLASLt algorithm refused %dx%dx%d x%d: %s", M, N, K, batch,
                     cublasGetStatusString(s));
        return PAD_ERR_UNSUPPORTED;
    }
    PAD_CUBLAS_TRY(be, s);
    return PAD_OK;
}

extern "C" pad_status cuda_linear_rows(pad_backend *be, float *out, const float *inp, const float *w, const float *bias,
                                       int M, int K, int N, bool accumulate) {
    if (M == 0) return PAD_OK;
    if (K == 0) return PAD_ERR_UNSUPPORTED; // the caller's fallback defines it
    return cuda_gemm_pinned(be, false, true, M, N, K, 1.0f, inp, K, 0, w, K, 0, accumulate ? 1.0f : 0.0f, out, N, 0, 1,
                            bias, true);
}
