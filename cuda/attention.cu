/* attention.cu - CUDA multi-head softmax attention over a packed qkv buffer (twins of host/cpu_attention.c):
 * standard attention (optional causal mask, optional saved probabilities) and PromptAD's dual q-k / v-v path
 * (promptad_spec.md §2.3), both by one fused kernel.
 *
 * Kernel layout: one block per (query tile of ATT_QT rows, head, image); one warp per query row. The block walks
 * the keys in chunks of ATT_KC (one key per lane): it stages the chunk's k and v rows in shared memory once, every
 * warp computes its row's scores for the chunk (q.k and, for the dual path, v.v) and folds them into an online
 * softmax (running max m, running sum l, rescaled accumulators), and the same staged v rows are the values of both
 * paths. So the dual path reads qkv once, in one pass, and v is loaded once for both outputs. Shared memory does
 * not depend on T (any T works). When the probabilities are requested (standard attention, for the backward
 * pass), a second sweep recomputes the scores and writes exp(s - m) / l with the final m and l.
 *
 * Deterministic: every sum runs in a fixed order (keys in chunk order, warp reductions by xor shuffles), no
 * atomics. Results match the CPU reference within float rounding (the CPU normalises with the final max directly).
 *
 * With be->fast_kernels, attention_dual instead runs through cuBLAS (attg_* below): per chunk of images the scores
 * of every (image, head) pair as batched GEMMs (pointer arrays built on the device), a warp-per-row softmax, and
 * the outputs as batched GEMMs; these GEMMs use the tensor cores in the fast math modes (be->math). With be->att_v2,
 * attention_dual runs the register-tiled kernel of attention_v2.cu (head sizes 32, 64, 128). */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#include <math.h>
#include <stdlib.h>

#define ATT_QT      16 // query rows per block, one warp each
#define ATT_KC      32 // keys per chunk, one per lane
#define ATT_MAX_DPL 4  // head dims per lane in the accumulators: HS <= 128

// Row stride of the staged chunks: odd, so lane j reading row j, column d hits bank (j*ld + d) % 32, all distinct.
__host__ __device__ static inline int att_ld(int HS) {
    return HS % 2 == 0 ? HS + 1 : HS;
}

static size_t att_smem_bytes(int HS) {
    return sizeof(float) * (2 * (size_t)ATT_QT * HS + 2 * (size_t)ATT_KC * att_ld(HS));
}

// Folds one chunk of scores (lane = key; -inf for masked keys) into the online softmax of a row and returns the
// unnormalised probability of this lane's key, exp(s - m_new). m, l and the accumulators are warp-uniform.
__device__ __forceinline__ float online_softmax_step(float s, float &m, float &l, float *acc) {
    const float m_new = fmaxf(m, warp_max(s)); // finite: key 0 of the first chunk is never masked
    const float alpha = expf(m - m_new);       // 0 on the first chunk (m = -inf)
    const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
    l = l * alpha + warp_sum(p);
#pragma unroll
    for (int k = 0; k < ATT_MAX_DPL; k++)
        acc[k] *= alpha;
    m = m_new;
    return p;
}

// QK: compute the q-k path (out_qk, optional att, optional causal mask). VV: compute the v-v path (out_vv).
// grid (ceil(T/ATT_QT), NH, B), block ATT_QT*32 threads, dynamic shared memory att_smem_bytes(HS).
template <bool QK, bool VV>
__global__ void __launch_bounds__(ATT_QT * 32)
    attention_fused_kernel(float *out_qk, float *out_vv, float *att, const float *qkv, int T, int NH, int HS,
                           int causal, float scale) {
    extern __shared__ float smem[];
    const int C = NH * HS, ld = att_ld(HS);
    const long long rs = 3LL * C; // row stride of qkv
    const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * ATT_QT;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *sQ = smem;             // (ATT_QT, HS) q rows of the tile (q-k queries)
    float *sW = sQ + ATT_QT * HS; // (ATT_QT, HS) v rows of the tile (v-v queries)
    float *sK = sW + ATT_QT * HS; // (ATT_KC, ld) k rows of the chunk
    float *sV = sK + ATT_KC * ld; // (ATT_KC, ld) v rows of the chunk: v-v keys and the values of both paths
    const float *base = qkv + (long long)b * T * rs + (long long)h * HS;
    const int nq = min(ATT_QT, T - t0);
    for (int i = threadIdx.x; i < ATT_QT * HS; i += blockDim.x) {
        const int r = i / HS, d = i - r * HS;
        const long long at = (long long)(t0 + r) * rs + d; // only read when r < nq
        if (QK) sQ[i] = r < nq ? base[at] : 0.0f;
        if (VV) sW[i] = r < nq ? base[at + 2 * C] : 0.0f;
    }
    const int t = t0 + warp; // this warp's query row
    const bool active = warp < nq;
    const int n_keys = (QK && causal) ? min(T, t0 + nq) : T; // keys any row of the tile can see (block-uniform)

    float m_qk = -INFINITY, l_qk = 0.0f, m_vv = -INFINITY, l_vv = 0.0f;
    float a_qk[ATT_MAX_DPL], a_vv[ATT_MAX_DPL];
#pragma unroll
    for (int k = 0; k < ATT_MAX_DPL; k++)
        a_qk[k] = a_vv[k] = 0.0f;

    for (int c0 = 0; c0 < n_keys; c0 += ATT_KC) {
        __syncthreads(); // the previous chunk is consumed (and, the first time, the query tiles are visible)
        for (int i = threadIdx.x; i < ATT_KC * HS; i += blockDim.x) {
            const int j = i / HS, d = i - j * HS, key = c0 + j;
            const long long at = (long long)key * rs + d; // only read when key < T
            const bool ok = key < T;
            if (QK) sK[j * ld + d] = ok ? base[at + C] : 0.0f;
            sV[j * ld + d] = ok ? base[at + 2 * C] : 0.0f;
        }
        __syncthreads();
        if (!active) continue; // warp-uniform; every thread still reaches the barriers above
        const int key = c0 + lane;
        float p_qk = 0.0f, p_vv = 0.0f;
        if (QK) {
            float s = 0.0f;
            for (int d = 0; d < HS; d++)
                s += sQ[warp * HS + d] * sK[lane * ld + d];
            const bool valid = key < T && !(causal && key > t);
            p_qk = online_softmax_step(valid ? s * scale : -INFINITY, m_qk, l_qk, a_qk);
        }
        if (VV) {
            float s = 0.0f;
            for (int d = 0; d < HS; d++)
                s += sW[warp * HS + d] * sV[lane * ld + d];
            p_vv = online_softmax_step(key < T ? s * scale : -INFINITY, m_vv, l_vv, a_vv);
        }
        // acc[d] += sum_j p_j v_j[d]: lane handles dims lane, lane+32, ...; each staged v row serves both paths
        for (int j = 0; j < ATT_KC; j++) {
            const float pq = QK ? __shfl_sync(0xffffffffu, p_qk, j) : 0.0f;
            const float pv = VV ? __shfl_sync(0xffffffffu, p_vv, j) : 0.0f;
            const float *vr = sV + j * ld;
#pragma unroll
            for (int k = 0; k < ATT_MAX_DPL; k++) {
                const int d = lane + 32 * k;
                if (d < HS) {
                    const float v = vr[d];
                    if (QK) a_qk[k] += pq * v;
                    if (VV) a_vv[k] += pv * v;
                }
            }
        }
    }
    if (active) {
        const long long o = ((long long)b * T + t) * C + (long long)h * HS;
        const float inv_qk = QK ? 1.0f / l_qk : 0.0f, inv_vv = VV ? 1.0f / l_vv : 0.0f;
#pragma unroll
        for (int k = 0; k < ATT_MAX_DPL; k++) {
            const int d = lane + 32 * k;
            if (d < HS) {
                if (QK) out_qk[o + d] = a_qk[k] * inv_qk;
                if (VV) out_vv[o + d] = a_vv[k] * inv_vv;
            }
        }
    }
    if (!QK || !att) return; // block-uniform
    // Probabilities: recompute the scores with the final m and l; masked and beyond-causal entries are 0.
    const float inv_l = 1.0f / l_qk;
    const long long arow = (((long long)b * NH + h) * T + t) * T; // this warp's row of att (when active)
    for (int c0 = 0; c0 < T; c0 += ATT_KC) {
        const bool staged = c0 < n_keys; // block-uniform
        if (staged) {
            __syncthreads();
            for (int i = threadIdx.x; i < ATT_KC * HS; i += blockDim.x) {
                const int j = i / HS, d = i - j * HS, key = c0 + j;
                sK[j * ld + d] = key < T ? base[(long long)key * rs + C + d] : 0.0f;
            }
            __syncthreads();
        }
        if (!active) continue;
        const int key = c0 + lane;
        float p = 0.0f;
        if (staged && key < T && !(causal && key > t)) {
            float s = 0.0f;
            for (int d = 0; d < HS; d++)
                s += sQ[warp * HS + d] * sK[lane * ld + d];
            p = expf(s * scale - m_qk) * inv_l;
        }
        if (key < T) att[arow + key] = p;
    }
}

template <bool QK, bool VV>
static pad_status launch(pad_backend *be, float *out_qk, float *out_vv, float *att, const float *qkv, int B, int T,
                         int NH, int HS, bool causal) {
    if (B == 0) return PAD_OK;
    if (HS > 32 * ATT_MAX_DPL) {
        PAD_LOG_ERROR("cuda attention: head size %d is not supported (at most %d)", HS, 32 * ATT_MAX_DPL);
        return PAD_ERR_UNSUPPORTED;
    }
    const size_t smem = att_smem_bytes(HS);
    if (smem > 48 * 1024)
        PAD_CUDA_TRY(be, cudaFuncSetAttribute(attention_fused_kernel<QK, VV>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const dim3 grid((unsigned)CEIL_DIV(T, ATT_QT), (unsigned)NH, (unsigned)B);
    const float scale = 1.0f / sqrtf((float)HS);
    attention_fused_kernel<QK, VV>
        <<<grid, ATT_QT * 32, smem, cuda_stream_of(be)>>>(out_qk, out_vv, att, qkv, T, NH, HS, causal ? 1 : 0, scale);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// attention_dual through batched cuBLAS GEMMs (be->fast_kernels)

#define ATTG_BUDGET (512ull << 20) // bytes of scores per chunk of images
#define ATTG_NPTR   12             // pointer arrays: 4 GEMMs x (A, B, C)

// Row stride of the (T, T) score matrices: a multiple of 4 floats, so that every row starts 16-byte aligned.
static inline int attg_ld(int T) {
    return (T + 3) & ~3;
}

// Pointer arrays for images [b0, b0 + n_img), entry i = b * NH + h of each array (n = n_img * NH entries):
// arrays 0-2: S_qk = Q K^T, 3-5: S_vv = V V^T, 6-8: O_qk = P_qk V, 9-11: O_vv = P_vv V (A, B, C of the row-major
// product); an output that is NULL gets NULL pointers (that path is not launched).
__global__ void attg_ptrs_kernel(void **p, int n, const float *qkv, float *s_qk, float *s_vv, float *o_qk, float *o_vv,
                                 int b0, int T, int NH, int HS, int ld) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int b = i / NH, h = i - b * NH, C = NH * HS;
    const float *q = qkv + (long long)(b0 + b) * T * 3 * C + (long long)h * HS;
    const float *k = q + C, *v = q + 2 * C;
    const long long so = (long long)i * T * ld;                           // this pair's score matrix
    const long long oo = (long long)(b0 + b) * T * C + (long long)h * HS; // this pair's output columns
    p[0 * n + i] = (void *)q;
    p[1 * n + i] = (void *)k;
    p[2 * n + i] = (void *)(s_qk + so);
    p[3 * n + i] = (void *)v;
    p[4 * n + i] = (void *)v;
    p[5 * n + i] = (void *)(s_vv + so);
    p[6 * n + i] = (void *)(s_qk + so);
    p[7 * n + i] = (void *)v;
    p[8 * n + i] = o_qk ? (void *)(o_qk + oo) : NULL;
    p[9 * n + i] = (void *)(s_vv + so);
    p[10 * n + i] = (void *)v;
    p[11 * n + i] = o_vv ? (void *)(o_vv + oo) : NULL;
}

// In-place softmax of `rows` rows of length T (row stride ld), one warp per row.
__global__ void __launch_bounds__(256) attg_softmax_kernel(float *S, long long rows, int T, int ld) {
    const long long r = (long long)blockIdx.x * 8 + threadIdx.x / 32;
    if (r >= rows) return; // warp-uniform
    const int lane = threadIdx.x % 32;
    float *x = S + r * ld;
    float m = -INFINITY;
    for (int j = lane; j < T; j += 32)
        m = fmaxf(m, x[j]);
    m = warp_max(m);
    float s = 0.0f;
    for (int j = lane; j < T; j += 32) {
        const float e = expf(x[j] - m);
        x[j] = e;
        s += e;
    }
    const float inv = 1.0f / warp_sum(s);
    for (int j = lane; j < T; j += 32)
        x[j] *= inv;
}

// Row-major C_i(M,N) = alpha op(A_i) op(B_i) for the n pointer triples (A, B, C) = p[0..n), p[n..2n), p[2n..3n),
// through column-major cuBLAS with the operands swapped (backend_cuda.cu's rule).
static pad_status attg_gemm(pad_backend *be, void **p, int n, bool transB, int M, int N, int K, float alpha, int lda,
                            int ldb, int ldc) {
    const float beta = 0.0f;
    PAD_CUBLAS_TRY(be, cublasGemmBatchedEx(cuda_impl_of(be)->cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, N,
                                           M, K, &alpha, (const void *const *)(p + n), CUDA_R_32F, ldb,
                                           (const void *const *)p, CUDA_R_32F, lda, &beta, p + 2 * n, CUDA_R_32F, ldc,
                                           n, cuda_compute_type(be), CUBLAS_GEMM_DEFAULT));
    return PAD_OK;
}

static pad_status attention_dual_gemm(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T,
                                      int NH, int HS) {
    if (B == 0) return PAD_OK;
    const int C = NH * HS, ld = attg_ld(T);
    const size_t per_img = 2 * (size_t)NH * T * ld * sizeof(float) + ATTG_NPTR * (size_t)NH * sizeof(void *);
    int chunk = (int)(ATTG_BUDGET / per_img);
    const char *cap = getenv("PROMPTAD_ATTG_CHUNK"); // images per chunk, for tests of the chunking
    if (cap && atoi(cap) > 0 && atoi(cap) < chunk) chunk = atoi(cap);
    if (chunk < 1) chunk = 1;
    if (chunk > B) chunk = B;
    const size_t ptr_bytes = ((size_t)ATTG_NPTR * chunk * NH * sizeof(void *) + 255) & ~(size_t)255;
    const size_t s_floats = (size_t)chunk * NH * T * ld;
    char *scr = (char *)pad_backend_scratch(be, ptr_bytes + 2 * s_floats * sizeof(float));
    if (!scr) return cuda_scratch_error(be);
    void **p = (void **)scr;
    float *s_qk = (float *)(scr + ptr_bytes);
    const float scale = 1.0f / sqrtf((float)HS);
    cudaStream_t st = cuda_stream_of(be);
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int nb = B - b0 < chunk ? B - b0 : chunk, n = nb * NH;
        // this chunk's v-v scores right after its q-k scores (so one softmax launch covers both)
        float *s_vv = s_qk + (size_t)n * T * ld;
        attg_ptrs_kernel<<<(unsigned)CEIL_DIV(n, 128), 128, 0, st>>>(p, n, qkv, s_qk, s_vv, out_qk, out_vv, b0, T, NH,
                                                                     HS, ld);
        PAD_CUDA_CHECK_LAUNCH(be);
        // scores: S = scale Q K^T and scale V V^T, (T, T) each with row stride ld
        if (out_qk) PAD_TRY(attg_gemm(be, p, n, true, T, T, HS, scale, 3 * C, 3 * C, ld));
        if (out_vv) PAD_TRY(attg_gemm(be, p + 3 * n, n, true, T, T, HS, scale, 3 * C, 3 * C, ld));
        // softmax of the rows in use (s_vv follows the chunk's s_qk, so both paths are one launch)
        float *s0 = out_qk ? s_qk : s_vv;
        const long long rows = (long long)(out_qk && out_vv ? 2 : 1) * n * T;
        attg_softmax_kernel<<<(unsigned)CEIL_DIV(rows, 8), 256, 0, st>>>(s0, rows, T, ld);
        PAD_CUDA_CHECK_LAUNCH(be);
        // outputs: O = P V, written into the head's columns of (B, T, C)
        if (out_qk) PAD_TRY(attg_gemm(be, p + 6 * n, n, false, T, HS, T, 1.0f, ld, 3 * C, C));
        if (out_vv) PAD_TRY(attg_gemm(be, p + 9 * n, n, false, T, HS, T, 1.0f, ld, 3 * C, C));
    }
    return PAD_OK;
}

extern "C" pad_status cuda_attention(pad_backend *be, float *out, float *att, const float *qkv, int B, int T, int NH,
                                     int HS, bool causal) {
    return launch<true, false>(be, out, NULL, att, qkv, B, T, NH, HS, causal);
}

extern "C" pad_status cuda_attention_dual(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T,
                                          int NH, int HS) {
    if (be->fast_kernels) return attention_dual_gemm(be, out_qk, out_vv, qkv, B, T, NH, HS);
    if (be->att_v2) {
        pad_status st = cuda_attention_dual_v2(be, out_qk, out_vv, qkv, B, T, NH, HS);
        if (st != PAD_ERR_UNSUPPORTED || be->capture_failed) return st; // else: a head size v2 does not have
    }
    if (out_qk && out_vv) return launch<true, true>(be, out_qk, out_vv, NULL, qkv, B, T, NH, HS, false);
    if (out_qk) return launch<true, false>(be, out_qk, NULL, NULL, qkv, B, T, NH, HS, false);
    return launch<false, true>(be, NULL, out_vv, NULL, qkv, B, T, NH, HS, false);
}
