/* cuda_common.cuh - shared helpers for the CUDA backend: error macros that log the failing statement with
 * file:line and poison the backend (or, during a graph capture, fail the capture), CEIL_DIV, block reductions, and
 * the backend's private state. */
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
typedef struct cuda_lt_cache cuda_lt_cache; // gemm_lt.cu: pinned cuBLASLt algorithms

typedef struct cuda_impl {
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_workspace;
    size_t cublas_workspace_bytes;
    // Error flag of the ops that validate device-side data (scatter_add_rows indices): mapped pinned host memory,
    // written by kernels through err_dev, read by the host after a synchronisation (cu_sync, cu_download).
    int *err_host, *err_dev;
    cuda_lt_cache *lt; // NULL until the first pinned GEMM
} cuda_impl;

// gemm_lt.cu: a GEMM with a pinned cuBLASLt algorithm (PAD_ERR_UNSUPPORTED when there is none: fall back), and
// the release of its cache.
pad_status cuda_gemm_pinned(pad_backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                            int lda, long long strideA, const float *B, int ldb, long long strideB, float beta,
                            float *C, int ldc, long long strideC, int batch, const float *bias, bool pin_rows);
void cuda_lt_destroy(cuda_impl *im);
// attention_v2.cu: the register-tiled dual attention (PAD_ERR_UNSUPPORTED for a head size it lacks).
pad_status cuda_attention_dual_v2(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH,
                                  int HS);

// Error codes in cuda_impl.err_host (bits).
#define CUDA_ERRFLAG_SCATTER_RANGE 1

static inline cuda_impl *cuda_impl_of(pad_backend *be) {
    return (cuda_impl *)be->impl;
}
static inline cudaStream_t cuda_stream_of(pad_backend *be) {
    return ((cuda_impl *)be->impl)->stream;
}

// The status of an op whose pad_backend_scratch returned NULL: a CUDA error (the allocation met a sticky fault), "not
// capturable" (the scratch would have grown during a graph capture) or out of memory.
static inline pad_status cuda_scratch_error(const pad_backend *be) {
    return be->poisoned ? PAD_ERR_CUDA : be->capturing ? PAD_ERR_UNSUPPORTED : PAD_ERR_OOM;
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

// A failed CUDA or cuBLAS call: logs the statement with file:line. Outside a graph capture the backend is poisoned
// (every later call fails). During a capture nothing has run yet, so the error is an API error about the capture
// (an operation that cannot be captured, an invalidated capture): the capture is marked failed instead, and
// pad_graph_run (host/backend.c) discards it, checks that the device is still healthy and runs the ops eagerly.
pad_status cuda_fail(pad_backend *be, const char *file, int line, const char *expr, const char *what);

#define PAD_CUDA_TRY(be, expr)                                                                                         \
    do {                                                                                                               \
        cudaError_t err_ = (expr);                                                                                     \
        if (err_ != cudaSuccess) return cuda_fail(be, __FILE__, __LINE__, #expr, cudaGetErrorString(err_));            \
    } while (0)

#define PAD_CUBLAS_TRY(be, expr)                                                                                       \
    do {                                                                                                               \
        cublasStatus_t err_ = (expr);                                                                                  \
        if (err_ != CUBLAS_STATUS_SUCCESS)                                                                             \
            return cuda_fail(be, __FILE__, __LINE__, #expr, cublasGetStatusString(err_));                              \
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

// Same in double; `shared` must hold 32 doubles.
__device__ __forceinline__ double block_sum_d(double v, double *shared) {
    const int lane = threadIdx.x % 32, wid = threadIdx.x / 32, nw = blockDim.x / 32;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) shared[wid] = v;
    __syncthreads();
    v = lane < nw ? shared[lane] : 0.0;
    return warp_sum_d(v);
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
