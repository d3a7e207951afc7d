/* cpu_attention.c - CPU reference for multi-head softmax attention over a packed qkv buffer (openclip_spec.md §2):
 * standard attention with an optional causal mask (text tower; saves the probabilities for the backward pass) and
 * its backward (the input gradient from the saved probabilities, parallel over (batch, head)), and PromptAD's dual
 * path (promptad_spec.md §2.3): the q-k softmax and the v-v softmax from the same qkv buffer.
 *
 * Per (batch, head) task: scores S = scale * X Y^T and outputs P V are single-threaded OpenBLAS GEMMs reading the
 * head's columns of qkv in place (leading dimension 3C); the row softmax is a vectorised loop (pad_expf, fixed-order
 * partial sums). Tasks run in parallel over (batch, head) only, so results do not depend on the thread count. */
#include "cpu_math.h"
#include "cpu_ops.h"
#include "log.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// Row-wise softmax of S(T,T) in place. With `causal`, row t keeps entries 0..t and gets exact zeros after them.
PAD_CPU_CLONES static void softmax_rows(float *S, int T, bool causal) {
    for (int t = 0; t < T; t++) {
        float *row = S + (size_t)t * T;
        const int n = causal ? t + 1 : T;
        // max: order-independent, so the lane layout does not matter
        float mx[PAD_LANES];
        for (int j = 0; j < PAD_LANES; j++)
            mx[j] = -INFINITY;
        int i = 0;
        for (; i + PAD_LANES <= n; i += PAD_LANES)
            for (int j = 0; j < PAD_LANES; j++)
                mx[j] = row[i + j] > mx[j] ? row[i + j] : mx[j];
        for (int j = 0; i + j < n; j++)
            mx[j] = row[i + j] > mx[j] ? row[i + j] : mx[j];
        float m = mx[0];
        for (int j = 1; j < PAD_LANES; j++)
            m = mx[j] > m ? mx[j] : m;
        // exp and sum: lane j sums the entries i with i % PAD_LANES == j, lanes combined pairwise
        float acc[PAD_LANES];
        for (int j = 0; j < PAD_LANES; j++)
            acc[j] = 0.0f;
        i = 0;
        for (; i + PAD_LANES <= n; i += PAD_LANES)
            for (int j = 0; j < PAD_LANES; j++) {
                const float e = pad_expf(row[i + j] - m);
                row[i + j] = e;
                acc[j] += e;
            }
        for (int j = 0; i + j < n; j++) {
            const float e = pad_expf(row[i + j] - m);
            row[i + j] = e;
            acc[j] += e;
        }
        for (int w = PAD_LANES / 2; w > 0; w /= 2)
            for (int j = 0; j < w; j++)
                acc[j] += acc[j + w];
        const float inv = 1.0f / acc[0];
        for (i = 0; i < n; i++)
            row[i] *= inv;
        for (; i < T; i++)
            row[i] = 0.0f;
    }
}

// S(T,T) = scale * X Y^T, X and Y (T,HS) with row stride ld (columns of one head inside qkv).
static void scores(float *S, const float *X, const float *Y, int T, int HS, int ld, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, scale, X, ld, Y, ld, 0.0f, S, T);
}

// O(T,HS) (row stride ldo) = P(T,T) V(T,HS) (row stride ldv). BLAS stores C without reading it when beta == 0.
static void apply(float *O, int ldo, const float *P, const float *V, int ldv, int T, int HS) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, P, T, V, ldv, 0.0f, O, ldo);
}

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

pad_status cpu_attention(pad_backend *be, float *out, float *att, const float *qkv, int B, int T, int NH, int HS,
                         bool causal) {
    const int C = NH * HS, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)HS);
    const int n_thr = max_threads();
    float *scratch = NULL;
    if (!att) { // one (T,T) score matrix per thread; with att the scores are built in place there
        scratch = (float *)pad_backend_scratch(be, (size_t)n_thr * T * T * sizeof(float));
        if (!scratch) return PAD_ERR_OOM;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_thr)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const float *base = qkv + (size_t)b * T * C3 + (size_t)h * HS;
        float *S = att ? att + (size_t)bh * T * T : scratch + (size_t)thread_id() * T * T;
        scores(S, base, base + C, T, HS, C3, scale);
        softmax_rows(S, T, causal);
        apply(out + (size_t)b * T * C + (size_t)h * HS, C, S, base + 2 * C, C3, T, HS);
    }
    return PAD_OK;
}

pad_status cpu_attention_dual(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH,
                              int HS) {
    const int C = NH * HS, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)HS);
    const int n_thr = max_threads();
    // two (T,T) score matrices per thread: q-k and v-v
    float *scratch = (float *)pad_backend_scratch(be, (size_t)n_thr * 2 * T * T * sizeof(float));
    if (!scratch) return PAD_ERR_OOM;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_thr)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * HS, *k = q + C, *v = q + 2 * C;
        float *S = scratch + (size_t)thread_id() * 2 * T * T;
        const size_t o = (size_t)b * T * C + (size_t)h * HS;
        if (out_qk) {
            scores(S, q, k, T, HS, C3, scale);
            softmax_rows(S, T, false);
            apply(out_qk + o, C, S, v, C3, T, HS);
        }
        if (out_vv) {
            float *S2 = S + (size_t)T * T;
            scores(S2, v, v, T, HS, C3, scale);
            softmax_rows(S2, T, false);
            apply(out_vv + o, C, S2, v, C3, T, HS);
        }
    }
    return PAD_OK;
}

// Per (b, h), with P = att, dO = dout, s = 1/sqrt(HS) (openclip_spec.md §4.1):
//   dV = P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(dP * P));  dQ = s dS K;  dK = s dS^T Q.
// Masked entries have P = 0, hence dS = 0: the causal case only skips them.
pad_status cpu_attention_backward(pad_backend *be, float *dqkv, const float *dout, const float *qkv, const float *att,
                                  int B, int T, int NH, int HS, bool causal) {
    const int C = NH * HS, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)HS);
    float *rows = (float *)pad_backend_scratch(be, (size_t)B * NH * T * sizeof(float)); // one dS row per (b, h)
    if (!rows) return PAD_ERR_OOM;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        float *ds = rows + (size_t)bh * T;
        const int b = bh / NH, h = bh % NH;
        const float *base = qkv + (size_t)b * T * C3;
        float *dbase = dqkv + (size_t)b * T * C3;
        for (int t = 0; t < T; t++) // this head's columns of dq, dk, dv
            for (int j = 0; j < 3; j++)
                memset(dbase + (size_t)t * C3 + j * C + h * HS, 0, (size_t)HS * sizeof(float));
        for (int t = 0; t < T; t++) {
            const int n_keys = causal ? t + 1 : T;
            const float *p = att + (((size_t)b * NH + h) * T + t) * T;  // (T) probabilities of query t
            const float *d_o = dout + ((size_t)b * T + t) * C + h * HS; // (HS)
            const float *q = base + (size_t)t * C3 + h * HS;            // (HS)
            float *dq = dbase + (size_t)t * C3 + h * HS;                // (HS)
            double rowsum = 0.0;
            for (int s = 0; s < n_keys; s++) {
                const float *v = base + (size_t)s * C3 + 2 * C + h * HS;
                float dp = 0.0f;
                for (int i = 0; i < HS; i++)
                    dp += d_o[i] * v[i];
                ds[s] = dp;
                rowsum += (double)dp * p[s];
            }
            for (int s = 0; s < n_keys; s++) {
                const float dsc = p[s] * (ds[s] - (float)rowsum) * scale; // scaled dS[t,s]
                const float *k = base + (size_t)s * C3 + C + h * HS;
                float *dk = dbase + (size_t)s * C3 + C + h * HS;
                float *dv = dbase + (size_t)s * C3 + 2 * C + h * HS;
                for (int i = 0; i < HS; i++) {
                    dq[i] += dsc * k[i];
                    dk[i] += dsc * q[i];
                    dv[i] += p[s] * d_o[i];
                }
            }
        }
    }
    return PAD_OK;
}
