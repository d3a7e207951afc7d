/* cuda_common.cuh - shared helpers for the CUDA backend: error macros that log the failing statement with
 * file:line and poison the backend, CEIL_DIV, block reductions, and the backend's private state. */
#ifndef PAD_CUDA_COMMON_CUH
#define PAD_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "backend.h"
#include "log.h"
}

#define CEIL_DIV(a, b) (((a) + (b)-1) / (b))

// Backend-private state (pad_backend.impl).
typedef struct cuda_impl {
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_workspace;
    size_t cublas_workspace_bytes;
    void *dnn; // cuDNN state of conv.cu (handle, cached convolution plans, workspace); NULL until first used
} cuda_impl;

static inline cuda_impl *cuda_impl_of(pad_backend *be) {
    return (cuda_impl *)be->impl;
}
static inline cudaStream_t cuda_stream_of(pad_backend *be) {
    return ((cuda_impl *)be->impl)->stream;
}

// The cuBLAS compute type of be->math: CUBLAS_COMPUTE_32F (exact float32) for PAD_MATH_FP32, the tensor-core
// types with fp32 accumulation for the fast modes.
static inline cublasComputeType_t cuda_compute_type(const pad_backend *be) {
    switch (be->math) {
    case PAD_MATH_TF32:
        return CUBLAS_COMPUTE_32F_FAST_TF32;
    case PAD_MATH_BF16:
        return CUBLAS_COMPUTE_32F_FAST_16BF;
    default:
        return CUBLAS_COMPUTE_32F;
    }
}

#define PAD_CUDA_TRY(be, expr)                                                                                         \
    do {                                                                                                               \
        cudaError_t err_ = (expr);                                                                                     \
        if (err_ != cudaSuccess) {                                                                                     \
            pad_log(PAD_LOG_LEVEL_ERROR, "%s:%d: %s failed: %s", __FILE__, __LINE__, #expr, cudaGetErrorString(err_)); \
            (be)->poisoned = true;                                                                                     \
            return PAD_ERR_CUDA;                                                                                       \
        }                                                                                                              \
    } while (0)

#define PAD_CUBLAS_TRY(be, expr)                                                                                       \
    do {                                                                                                               \
        cublasStatus_t err_ = (expr);                                                                                  \
        if (err_ != CUBLAS_STATUS_SUCCESS) {                                                                           \
            pad_log(PAD_LOG_LEVEL_ERROR, "%s:%d: %s failed: %s", __FILE__, __LINE__, #expr,                            \
                    cublasGetStatusString(err_));                                                                      \
            (be)->poisoned = true;                                                                                     \
            return PAD_ERR_CUDA;                                                                                       \
        }                                                                                                              \
    } while (0)

// After every kernel launch.
#define PAD_CUDA_CHECK_LAUNCH(be) PAD_CUDA_TRY(be, cudaGetLastError())

// Sum over a warp (all 32 lanes active).
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
// Same in double (the one-warp-per-row kernels that accumulate dot products in double, as the CPU twins do).
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block whose size is a multiple of 32 (at most 1024). Every thread gets the result.
// `shared` must hold 32 floats. The summation order is fixed by the block size, so results are deterministic.
__device__ __forceinline__ float block_sum(float v, float *shared) {
    const int lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) shared[wid] = v;
    __syncthreads();
    v = lane < nw ? shared[lane] : 0.0f;
    return warp_sum(v);
}

#endif // PAD_CUDA_COMMON_CUH
