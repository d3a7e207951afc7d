/* knn.cu - CUDA twin of host/cpu_knn.c: knn_min, the memory-bank nearest neighbour d = min_j (1 - q·g_j) / 2.
 *
 * One launch covers every problem of the batch: blockIdx.y = problem b (a bank and its queries), blockIdx.x = a
 * block of KNN_BM queries. The block walks the bank in tiles of KNN_BN rows; each tile's dot products come from a
 * shared-memory tiled product over the feature axis (slices of KNN_BK), each of the 256 threads owning a 4 x 4
 * (query, bank row) micro-tile whose sums run over k = 0..D-1 in order (fmaf), then it folds them into per-query
 * running minima. The 16 threads that share a query finish with a lexicographic (distance, index) reduction, which
 * is order-free: results are deterministic and ties go to the smallest index, as on the CPU. */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#define KNN_BM      64 // queries per block
#define KNN_BN      64 // bank rows per tile
#define KNN_BK      16 // feature slice per shared-memory stage
#define KNN_THREADS 256
static_assert(KNN_BM == KNN_BN && KNN_BM == 64 && KNN_THREADS == 256,
              "the tile loader and 4x4 micro-tiles assume these");
// thread t: ty = t / 16 owns queries ty + 16 i (i < 4), tx = t % 16 owns bank rows tx + 16 j (j < 4)

// (d, j) beats (bd, bj): smaller distance, or equal distance and smaller index; NaN never wins; bj < 0 = none yet.
__device__ __forceinline__ bool knn_better(float d, int j, float bd, int bj) {
    if (d != d) return false;
    return bj < 0 || d < bd || (d == bd && j < bj);
}

static __global__ void __launch_bounds__(KNN_THREADS)
    knn_min_kernel(float *dist, int32_t *idx, const float *query, int Nq, const float *bank, int Nb, int D) {
    __shared__ float Qs[KNN_BK][KNN_BM + 4]; // transposed tiles: Qs[k][query], Bs[k][bank row]
    __shared__ float Bs[KNN_BK][KNN_BN + 4];
    const int b = blockIdx.y, q0 = blockIdx.x * KNN_BM;
    const float *Q = query + (size_t)b * Nq * D;
    const float *G = bank + (size_t)b * Nb * D;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;

    float best_d[4];
    int best_j[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        best_d[i] = INFINITY;
        best_j[i] = -1;
    }
    for (int j0 = 0; j0 < Nb; j0 += KNN_BN) {
        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++)
                acc[i][j] = 0.0f;
        for (int k0 = 0; k0 < D; k0 += KNN_BK) {
            // 16 consecutive threads read 16 consecutive features of one row; out-of-range entries are zero
            for (int l = tid; l < KNN_BM * KNN_BK; l += KNN_THREADS) {
                const int r = l / KNN_BK, c = l % KNN_BK, k = k0 + c;
                const int qi = q0 + r, gj = j0 + r;
                Qs[c][r] = (qi < Nq && k < D) ? Q[(size_t)qi * D + k] : 0.0f;
                Bs[c][r] = (gj < Nb && k < D) ? G[(size_t)gj * D + k] : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < KNN_BK; kk++) {
                float a[4], g[4];
#pragma unroll
                for (int i = 0; i < 4; i++)
                    a[i] = Qs[kk][ty + 16 * i];
#pragma unroll
                for (int j = 0; j < 4; j++)
                    g[j] = Bs[kk][tx + 16 * j];
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        acc[i][j] = fmaf(a[i], g[j], acc[i][j]);
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int gj = j0 + tx + 16 * j;
                const float d = __fsub_rn(1.0f, acc[i][j]);
                if (gj < Nb && knn_better(d, gj, best_d[i], best_j[i])) {
                    best_d[i] = d;
                    best_j[i] = gj;
                }
            }
    }
    // reduce over the 16 lanes (tx) sharing ty: they are lanes 16*(ty%2) .. +15 of one warp
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float bd = best_d[i];
        int bj = best_j[i];
        for (int o = 8; o > 0; o >>= 1) {
            const float od = __shfl_xor_sync(0xffffffffu, bd, o);
            const int oj = __shfl_xor_sync(0xffffffffu, bj, o);
            if (oj >= 0 && knn_better(od, oj, bd, bj)) {
                bd = od;
                bj = oj;
            }
        }
        const int qi = q0 + ty + 16 * i;
        if (tx == 0 && qi < Nq) {
            dist[(size_t)b * Nq + qi] = bj < 0 ? __int_as_float(0x7fc00000) : bd * 0.5f;
            if (idx) idx[(size_t)b * Nq + qi] = bj;
        }
    }
}

extern "C" pad_status cuda_knn_min(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq,
                                   const float *bank, int Nb, int D, int nb) {
    if (Nq == 0 || nb == 0) return PAD_OK;
    if (nb > 65535) {
        PAD_LOG_ERROR("knn_min: %d problems in one call exceed the CUDA grid limit 65535", nb);
        return PAD_ERR_INVALID_ARG;
    }
    const dim3 grid((unsigned)CEIL_DIV(Nq, KNN_BM), (unsigned)nb);
    knn_min_kernel<<<grid, KNN_THREADS, 0, cuda_stream_of(be)>>>(dist, idx, query, Nq, bank, Nb, D);
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}
