/* cpu_attention.c - CPU reference for multi-head softmax attention over a packed qkv buffer (openclip_spec.md §2):
 * standard attention with an optional causal mask (text tower), saving the probabilities for the backward pass.
 * Parallel over (batch, head); each softmax row is reduced serially, so results do not depend on the thread count. */
#include "cpu_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pad_status cpu_attention(pad_backend *be, float *out, float *att, const float *qkv, int B, int T, int NH, int HS,
                         bool causal) {
    (void)be;
    const int C = NH * HS, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel
    {
        float *row = (float *)malloc((size_t)T * sizeof(float));
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            const int b = bh / NH, h = bh % NH;
            const float *base = qkv + (size_t)b * T * C3;
            for (int t = 0; t < T; t++) {
                const float *q = base + (size_t)t * C3 + h * HS;
                const int n_keys = causal ? t + 1 : T;
                float mx = -INFINITY;
                for (int s = 0; s < n_keys; s++) {
                    const float *k = base + (size_t)s * C3 + C + h * HS;
                    float dot = 0.0f;
                    for (int i = 0; i < HS; i++)
                        dot += q[i] * k[i];
                    row[s] = dot * scale;
                    mx = row[s] > mx ? row[s] : mx;
                }
                double sum = 0.0;
                for (int s = 0; s < n_keys; s++) {
                    row[s] = expf(row[s] - mx);
                    sum += row[s];
                }
                const float inv = (float)(1.0 / sum);
                for (int s = 0; s < n_keys; s++)
                    row[s] *= inv;
                float *o = out + ((size_t)b * T + t) * C + h * HS;
                for (int i = 0; i < HS; i++)
                    o[i] = 0.0f;
                for (int s = 0; s < n_keys; s++) {
                    const float *v = base + (size_t)s * C3 + 2 * C + h * HS;
                    const float p = row[s];
                    for (int i = 0; i < HS; i++)
                        o[i] += p * v[i];
                }
                if (att) {
                    float *a = att + (((size_t)b * NH + h) * T + t) * T;
                    memcpy(a, row, (size_t)n_keys * sizeof(float));
                    for (int s = n_keys; s < T; s++)
                        a[s] = 0.0f;
                }
            }
        }
        free(row);
    }
    return PAD_OK;
}
