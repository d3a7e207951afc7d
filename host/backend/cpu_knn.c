/* cpu_knn.c - CPU reference for knn_min (backend.h): the memory-bank nearest neighbour of PromptAD
 * (promptad_spec.md §5.2, d(p) = min_j (1 - q_p·g_j) / 2). Similarities come from single-threaded OpenBLAS GEMMs
 * on fixed-size tiles (KNN_QROWS queries x KNN_BROWS bank rows, the full feature dimension at once); each task owns
 * a block of queries of one problem and scans the bank tiles in increasing j, so the result (ties -> smallest j)
 * depends neither on the thread count nor on the scheduling. */
#include "cpu_ops.h"
#include "log.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KNN_QROWS 128  // queries per task (rows of one GEMM tile)
#define KNN_BROWS 1024 // bank rows per GEMM tile (4 shots x 225 patches fit one)

// (d, j) is better than the current best (bd, bj): smaller distance, or equal distance and smaller index.
// NaN distances are never taken; bj < 0 means "no candidate yet".
static inline int knn_better(float d, int j, float bd, int bj) {
    if (isnan(d)) return 0;
    return bj < 0 || d < bd || (d == bd && j < bj);
}

pad_status cpu_knn_min(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                       int Nb, int D, int nb) {
    (void)be;
    const int q_tasks = (Nq + KNN_QROWS - 1) / KNN_QROWS;
    const long long n_tasks = (long long)nb * q_tasks;
    if (n_tasks == 0) return PAD_OK;
    int oom = 0;
#pragma omp parallel reduction(| : oom)
    {
        // per-thread similarity tile and running minima (one allocation per call and thread)
        float *sim = (float *)malloc(sizeof(float) * KNN_QROWS * KNN_BROWS);
        float *best_d = (float *)malloc(sizeof(float) * KNN_QROWS);
        int *best_j = (int *)malloc(sizeof(int) * KNN_QROWS);
        if (!sim || !best_d || !best_j) oom = 1;
#pragma omp for schedule(dynamic, 1)
        for (long long task = 0; task < n_tasks; task++) {
            if (!sim || !best_d || !best_j) continue;
            const int b = (int)(task / q_tasks), q0 = (int)(task % q_tasks) * KNN_QROWS;
            const int qn = Nq - q0 < KNN_QROWS ? Nq - q0 : KNN_QROWS;
            const float *Q = query + ((size_t)b * Nq + q0) * D;
            const float *G = bank + (size_t)b * Nb * D;
            for (int i = 0; i < qn; i++) {
                best_d[i] = INFINITY;
                best_j[i] = -1;
            }
            for (int j0 = 0; j0 < Nb; j0 += KNN_BROWS) {
                const int jn = Nb - j0 < KNN_BROWS ? Nb - j0 : KNN_BROWS;
                // sim(qn, jn) = Q(qn, D) @ G[j0:j0+jn](jn, D)^T (cleared first: BLAS may scale old NaNs by beta 0)
                memset(sim, 0, sizeof(float) * (size_t)qn * (size_t)jn);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, qn, jn, D, 1.0f, Q, D, G + (size_t)j0 * D, D, 0.0f,
                            sim, jn);
                for (int i = 0; i < qn; i++) {
                    const float *s = sim + (size_t)i * jn;
                    float bd = best_d[i];
                    int bj = best_j[i];
                    for (int j = 0; j < jn; j++) {
                        const float d = 1.0f - s[j];
                        if (knn_better(d, j0 + j, bd, bj)) {
                            bd = d;
                            bj = j0 + j;
                        }
                    }
                    best_d[i] = bd;
                    best_j[i] = bj;
                }
            }
            float *out = dist + (size_t)b * Nq + q0;
            int32_t *oidx = idx ? idx + (size_t)b * Nq + q0 : NULL;
            for (int i = 0; i < qn; i++) {
                out[i] = best_j[i] < 0 ? NAN : best_d[i] * 0.5f; // (1 - s) / 2: halving is exact
                if (oidx) oidx[i] = best_j[i];
            }
        }
        free(sim);
        free(best_d);
        free(best_j);
    }
    if (oom) {
        PAD_LOG_ERROR("knn_min: out of memory for the similarity tiles");
        return PAD_ERR_OOM;
    }
    return PAD_OK;
}
