/* attention_v2.cu - the register-tiled variant of the fused dual attention (PromptAD's q-k and v-v paths, no mask;
 * be->att_v2, PROMPTAD_CUDA_ATTENTION=v2; on trial until a GPU verifies it, see tests/parity/ops.c).
 *
 * Same algorithm as attention.cu's attention_fused_kernel (one block per tile of queries, keys staged in shared
 * memory in chunks of 32, one key per lane, online softmax), with three changes against its shared-memory bound
 * inner loops (two shared loads per FMA there):
 *  - the head size HS is a template parameter (32, 64 or 128), so every loop over d is unrolled and the
 *    accumulators (HS/32 per lane and path) live in registers;
 *  - the score loop reads float4: the key and value rows are staged with a row stride of HS + 4 floats (16-byte
 *    aligned rows; the 8 lanes of a quarter-warp then start 4 banks apart, so a float4 phase is conflict-free), the
 *    query rows are broadcast float4 reads;
 *  - each warp owns R = 2 query rows, so every staged key or value element loaded from shared memory feeds two
 *    rows' FMAs.
 * Deterministic (fixed orders, no atomics); equal to the CPU within float rounding (another summation order). */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#include <math.h>

#define AT2_WARPS 8  // warps per block
#define AT2_R     2  // query rows per warp
#define AT2_KC    32 // keys per chunk, one per lane

template <int HS> struct at2_dims {
    static constexpr int LDK = HS + 4;  // row stride of the staged keys (floats)
    static constexpr int NPL = HS / 32; // accumulator dims per lane
    static constexpr int ROWS = AT2_WARPS * AT2_R;
    static constexpr int QV = 2; // query tiles (q, and v for the v-v path)
    static constexpr size_t smem = sizeof(float) * ((size_t)QV * ROWS * HS + 2 * (size_t)AT2_KC * LDK);
};

// Folds the chunk's score of this lane's key into one row's online softmax; returns exp(s - m_new) for the key.
template <int NPL> __device__ __forceinline__ float at2_softmax_step(float s, float &m, float &l, float *acc) {
    const float m_new = fmaxf(m, warp_max(s)); // s is finite for every key of a chunk that exists (no mask)
    const float alpha = expf(m - m_new);
    const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
    l = l * alpha + warp_sum(p);
#pragma unroll
    for (int k = 0; k < NPL; k++)
        acc[k] *= alpha;
    m = m_new;
    return p;
}

// Scores of this lane's staged key (row `lane` of sKV, stride LDK) against the warp's R query rows of sQ.
template <int HS>
__device__ __forceinline__ void at2_scores(float *s, const float *sQ, const float *sKV, int warp, int lane) {
    constexpr int LDK = at2_dims<HS>::LDK;
#pragma unroll
    for (int r = 0; r < AT2_R; r++)
        s[r] = 0.0f;
    const float4 *k4 = reinterpret_cast<const float4 *>(sKV + lane * LDK);
#pragma unroll
    for (int d4 = 0; d4 < HS / 4; d4++) {
        const float4 kv = k4[d4];
#pragma unroll
        for (int r = 0; r < AT2_R; r++) {
            const float4 qv = reinterpret_cast<const float4 *>(sQ + (warp * AT2_R + r) * HS)[d4];
            s[r] += qv.x * kv.x;
            s[r] += qv.y * kv.y;
            s[r] += qv.z * kv.z;
            s[r] += qv.w * kv.w;
        }
    }
}

// grid (ceil(T / (AT2_WARPS * AT2_R)), NH, B), block AT2_WARPS * 32, dynamic shared memory at2_dims<HS>::smem.
template <int HS, bool QK, bool VV>
__global__ void __launch_bounds__(AT2_WARPS * 32)
    attention_v2_kernel(float *out_qk, float *out_vv, const float *qkv, int T, int NH, float scale) {
    using dims = at2_dims<HS>;
    constexpr int ROWS = dims::ROWS, LDK = dims::LDK, NPL = dims::NPL;
    extern __shared__ float4 smem4[];
    float *smem = reinterpret_cast<float *>(smem4);
    float *sQ = smem;              // (ROWS, HS) q rows of the tile
    float *sW = sQ + ROWS * HS;    // (ROWS, HS) v rows of the tile (v-v queries)
    float *sK = sW + ROWS * HS;    // (AT2_KC, LDK) k rows of the chunk (q-k keys)
    float *sV = sK + AT2_KC * LDK; // (AT2_KC, LDK) v rows of the chunk: the v-v keys and the values of both paths
    const int C = NH * HS;
    const long long rs = 3LL * C;
    const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * ROWS;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const float *base = qkv + (long long)b * T * rs + (long long)h * HS;
    const int nq = min(ROWS, T - t0);
    for (int i = threadIdx.x; i < ROWS * HS; i += blockDim.x) {
        const int r = i / HS, d = i - r * HS;
        const long long at = (long long)(t0 + r) * rs + d;
        if (QK) sQ[i] = r < nq ? base[at] : 0.0f;
        if (VV) sW[i] = r < nq ? base[at + 2 * C] : 0.0f;
    }
    float m_qk[AT2_R], l_qk[AT2_R], a_qk[AT2_R][NPL], m_vv[AT2_R], l_vv[AT2_R], a_vv[AT2_R][NPL];
#pragma unroll
    for (int r = 0; r < AT2_R; r++) {
        m_qk[r] = m_vv[r] = -INFINITY;
        l_qk[r] = l_vv[r] = 0.0f;
#pragma unroll
        for (int k = 0; k < NPL; k++)
            a_qk[r][k] = a_vv[r][k] = 0.0f;
    }
    const bool active = warp * AT2_R < nq; // warp-uniform
    for (int c0 = 0; c0 < T; c0 += AT2_KC) {
        __syncthreads();
        for (int i = threadIdx.x; i < AT2_KC * HS; i += blockDim.x) {
            const int j = i / HS, d = i - j * HS, key = c0 + j;
            const long long at = (long long)key * rs + d;
            sV[j * LDK + d] = key < T ? base[at + 2 * C] : 0.0f;
            if (QK) sK[j * LDK + d] = key < T ? base[at + C] : 0.0f;
        }
        __syncthreads();
        const bool valid = c0 + lane < T;
        float p_qk[AT2_R] = {}, p_vv[AT2_R] = {};
        if (active && QK) {
            float s[AT2_R];
            at2_scores<HS>(s, sQ, sK, warp, lane);
#pragma unroll
            for (int r = 0; r < AT2_R; r++)
                p_qk[r] = at2_softmax_step<NPL>(valid ? s[r] * scale : -INFINITY, m_qk[r], l_qk[r], a_qk[r]);
        }
        if (active && VV) { // the v-v keys are the staged v rows
            float s[AT2_R];
            at2_scores<HS>(s, sW, sV, warp, lane);
#pragma unroll
            for (int r = 0; r < AT2_R; r++)
                p_vv[r] = at2_softmax_step<NPL>(valid ? s[r] * scale : -INFINITY, m_vv[r], l_vv[r], a_vv[r]);
        }
        if (!active) continue;
        // acc[r][k] += sum_j p_j[r] v_j[lane + 32k]: each staged value feeds every row of the warp and both paths
        for (int j = 0; j < AT2_KC; j++) {
            float pq[AT2_R], pv[AT2_R];
#pragma unroll
            for (int r = 0; r < AT2_R; r++) {
                pq[r] = QK ? __shfl_sync(0xffffffffu, p_qk[r], j) : 0.0f;
                pv[r] = VV ? __shfl_sync(0xffffffffu, p_vv[r], j) : 0.0f;
            }
#pragma unroll
            for (int k = 0; k < NPL; k++) {
                const float v = sV[j * LDK + lane + 32 * k];
#pragma unroll
                for (int r = 0; r < AT2_R; r++) {
                    if (QK) a_qk[r][k] += pq[r] * v;
                    if (VV) a_vv[r][k] += pv[r] * v;
                }
            }
        }
    }
    if (!active) return;
#pragma unroll
    for (int r = 0; r < AT2_R; r++) {
        const int t = t0 + warp * AT2_R + r;
        if (t >= T) break;
        const long long o = ((long long)b * T + t) * C + (long long)h * HS;
#pragma unroll
        for (int k = 0; k < NPL; k++) {
            if (QK) out_qk[o + lane + 32 * k] = a_qk[r][k] / l_qk[r];
            if (VV) out_vv[o + lane + 32 * k] = a_vv[r][k] / l_vv[r];
        }
    }
}

template <int HS, bool QK, bool VV>
static pad_status at2_launch(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH) {
    const size_t smem = at2_dims<HS>::smem;
    if (smem > 48 * 1024)
        PAD_CUDA_TRY(be, cudaFuncSetAttribute(attention_v2_kernel<HS, QK, VV>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const dim3 grid((unsigned)CEIL_DIV(T, at2_dims<HS>::ROWS), (unsigned)NH, (unsigned)B);
    attention_v2_kernel<HS, QK, VV>
        <<<grid, AT2_WARPS * 32, smem, cuda_stream_of(be)>>>(out_qk, out_vv, qkv, T, NH, 1.0f / sqrtf((float)HS));
    PAD_CUDA_CHECK_LAUNCH(be);
    return PAD_OK;
}

template <int HS>
static pad_status at2_paths(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH) {
    if (out_qk && out_vv) return at2_launch<HS, true, true>(be, out_qk, out_vv, qkv, B, T, NH);
    if (out_qk) return at2_launch<HS, true, false>(be, out_qk, NULL, qkv, B, T, NH);
    return at2_launch<HS, false, true>(be, NULL, out_vv, qkv, B, T, NH);
}

pad_status cuda_attention_dual_v2(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH,
                                  int HS) {
    if (B == 0) return PAD_OK;
    switch (HS) {
    case 32:
        return at2_paths<32>(be, out_qk, out_vv, qkv, B, T, NH);
    case 64:
        return at2_paths<64>(be, out_qk, out_vv, qkv, B, T, NH);
    case 128:
        return at2_paths<128>(be, out_qk, out_vv, qkv, B, T, NH);
    default:
        return PAD_ERR_UNSUPPORTED; // the caller runs the general kernel
    }
}
