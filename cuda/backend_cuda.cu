/* backend_cuda.cu - the CUDA backend: device memory, one stream and one cuBLAS handle per backend, GEMM through
 * cuBLAS, and the op table pointing at the launchers in cuda/<group>.cu.
 *
 * Row-major GEMM through column-major cuBLAS (the cuda-samples matrixMulCUBLAS rule, written once here): a
 * row-major (M,N) matrix is the column-major (N,M) matrix of its transpose, so C = op(A) op(B) in row-major is
 * C^T = op(B)^T op(A)^T in column-major: call cuBLAS with the operands swapped, (N, M, K), B first, A second.
 * Math mode is CUBLAS_DEFAULT_MATH (pure fp32, no TF32) unless be->math asks for a tensor-core mode (TF32 or BF16
 * compute types with fp32 inputs, outputs and accumulation); each backend has its own workspace so results are
 * reproducible run to run (cuBLAS "Results reproducibility"), and the workspace is set explicitly so that cuBLAS
 * allocates nothing during a CUDA graph capture.
 *
 * GEMMs with batch > 1 run as be->gemm_mode says (backend.h, PAD_CUDA_GEMM_*): by default one cuBLAS call per
 * batch entry, so that an image's result does not depend on the other images of its batch; a GEMM with K == 0 is
 * C = beta C (0 when beta is 0), as on the CPU, without calling cuBLAS (which refuses lda = 0).
 *
 * CUDA graphs (pad_graph_run in host/backend.c): graph_begin/end capture the backend's stream in thread-local mode,
 * so an accidental sync or allocation in the captured code fails the capture instead of corrupting it. An error
 * during a capture fails the capture, not the backend (cuda_fail); graph_end then checks the device's health.
 *
 * Ops that validate device-side data (scatter_add_rows' indices) cannot return the error from the call (the data
 * is read by the kernel, later): they raise a flag in mapped host memory that cu_sync and cu_download check after
 * synchronising, and return PAD_ERR_INVALID_ARG from there (the backend stays usable). */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pad_status cuda_fail(pad_backend *be, const char *file, int line, const char *expr, const char *what) {
    if (be->capturing) {
        PAD_LOG_WARN("%s:%d: %s failed during a CUDA graph capture: %s (the capture is abandoned)", file, line, expr,
                     what);
        cudaGetLastError(); // an API error of the capture is not sticky: clear it (graph_end checks the device)
        be->capture_failed = true;
        return PAD_ERR_UNSUPPORTED;
    }
    pad_log(PAD_LOG_LEVEL_ERROR, "%s:%d: %s failed: %s", file, line, expr, what);
    be->poisoned = true;
    return PAD_ERR_CUDA;
}

extern "C" int pad_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no driver" error
        return 0;
    }
    return n;
}

// cudaErrorNoDevice is the driver saying "no device"; any other failure is the driver's (or the install's) fault.
extern "C" pad_cuda_state pad_cuda_probe(char *why, size_t cap) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    cudaGetLastError();
    pad_cuda_state s = e == cudaSuccess ? (n > 0 ? PAD_CUDA_READY : PAD_CUDA_NO_DEVICE)
                                        : (e == cudaErrorNoDevice ? PAD_CUDA_NO_DEVICE : PAD_CUDA_DRIVER_ERROR);
    if (!why || !cap) return s;
    if (s == PAD_CUDA_READY)
        snprintf(why, cap, "%d CUDA device%s", n, n == 1 ? "" : "s");
    else if (s == PAD_CUDA_NO_DEVICE)
        snprintf(why, cap, "no CUDA device (the driver sees none%s)",
                 getenv("CUDA_VISIBLE_DEVICES") ? "; CUDA_VISIBLE_DEVICES is set" : "");
    else
        snprintf(why, cap, "CUDA driver error: %s (%s)%s", cudaGetErrorName(e), cudaGetErrorString(e),
                 e == cudaErrorInsufficientDriver ? "; is the NVIDIA driver installed?" : "");
    return s;
}

// NULL when out of memory (not sticky: the backend stays usable) and NULL with the backend poisoned when the
// failure is another error (a sticky fault of an earlier kernel surfaces here too): pad_buf_alloc then reports a
// CUDA error, not an out-of-memory one.
static void *cu_alloc(pad_backend *be, size_t nbytes) {
    void *p = NULL;
    if (be->poisoned) return NULL;
    cudaError_t e = cudaMalloc(&p, nbytes ? nbytes : 4);
    if (e == cudaSuccess) return p;
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        return NULL;
    }
    PAD_LOG_ERROR("device cuda: cudaMalloc of %zu bytes failed: %s (not out of memory: the device is unusable)", nbytes,
                  cudaGetErrorString(e));
    be->poisoned = true;
    return NULL;
}

static void cu_free(pad_backend *be, void *ptr) {
    (void)be;
    if (ptr) cudaFree(ptr);
}

static pad_status cu_upload(pad_backend *be, void *dst, const void *src, size_t nbytes) {
    PAD_CUDA_TRY(be, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, cuda_stream_of(be)));
    // the host buffer may be freed right after the call: wait for the copy
    PAD_CUDA_TRY(be, cudaStreamSynchronize(cuda_stream_of(be)));
    return PAD_OK;
}

// After a synchronisation: the errors that kernels raised in the flag (cuda_impl.err_host), cleared.
static pad_status check_err_flag(pad_backend *be) {
    cuda_impl *im = cuda_impl_of(be);
    const int f = im->err_host ? *(volatile int *)im->err_host : 0;
    if (f == 0) return PAD_OK;
    *(volatile int *)im->err_host = 0;
    if (f & CUDA_ERRFLAG_SCATTER_RANGE)
        PAD_LOG_ERROR("scatter_add_rows: an index out of range (cuda: reported at the synchronisation after the op)");
    return PAD_ERR_INVALID_ARG;
}

static pad_status cu_download(pad_backend *be, void *dst, const void *src, size_t nbytes) {
    PAD_CUDA_TRY(be, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, cuda_stream_of(be)));
    PAD_CUDA_TRY(be, cudaStreamSynchronize(cuda_stream_of(be)));
    return check_err_flag(be);
}

static pad_status cu_copy(pad_backend *be, void *dst, const void *src, size_t nbytes) {
    PAD_CUDA_TRY(be, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, cuda_stream_of(be)));
    return PAD_OK;
}

static pad_status cu_zero(pad_backend *be, void *dst, size_t nbytes) {
    PAD_CUDA_TRY(be, cudaMemsetAsync(dst, 0, nbytes, cuda_stream_of(be)));
    return PAD_OK;
}

static pad_status cu_sync(pad_backend *be) {
    PAD_CUDA_TRY(be, cudaStreamSynchronize(cuda_stream_of(be)));
    return check_err_flag(be);
}

static void cu_destroy(pad_backend *be) {
    cuda_impl *im = cuda_impl_of(be);
    if (im) {
        if (im->stream) cudaStreamSynchronize(im->stream);
        cuda_conv_release(be);
        if (im->cublas) cublasDestroy(im->cublas);
        if (im->cublas_workspace) cudaFree(im->cublas_workspace);
        if (im->err_host) cudaFreeHost(im->err_host);
        cuda_lt_destroy(im);
        if (im->stream) cudaStreamDestroy(im->stream);
        free(im);
    }
    free(be);
}

// C_b = beta C_b for the batch entries of a GEMM with K == 0 (the empty sum is 0; beta == 0 ignores C's NaNs).
__global__ void gemm_k0_kernel(float *C, int M, int N, int ldc, long long strideC, float beta, long long total) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const long long mn = (long long)M * N, b = i / mn, r = i - b * mn;
    float *p = C + b * strideC + (r / N) * ldc + r % N;
    *p = beta == 0.0f ? 0.0f : beta * *p;
}

// One cuBLAS call for `batch` entries (batch 1: the plain GEMM, as every call of the per-entry loop makes).
static pad_status gemm_call(pad_backend *be, cublasOperation_t opA, cublasOperation_t opB, int M, int N, int K,
                            float alpha, const float *A, int lda, long long strideA, const float *B, int ldb,
                            long long strideB, float beta, float *C, int ldc, long long strideC, int batch) {
    cublasHandle_t h = cuda_impl_of(be)->cublas;
    if (be->math != PAD_MATH_FP32 && batch == 1) {
        PAD_CUBLAS_TRY(be, cublasGemmEx(h, opB, opA, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C,
                                        CUDA_R_32F, ldc, cuda_compute_type(be), CUBLAS_GEMM_DEFAULT));
    } else if (be->math != PAD_MATH_FP32) {
        PAD_CUBLAS_TRY(be, cublasGemmStridedBatchedEx(h, opB, opA, N, M, K, &alpha, B, CUDA_R_32F, ldb, strideB, A,
                                                      CUDA_R_32F, lda, strideA, &beta, C, CUDA_R_32F, ldc, strideC,
                                                      batch, cuda_compute_type(be), CUBLAS_GEMM_DEFAULT));
    } else if (batch == 1) {
        PAD_CUBLAS_TRY(be, cublasSgemm(h, opB, opA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
    } else {
        PAD_CUBLAS_TRY(be, cublasSgemmStridedBatched(h, opB, opA, N, M, K, &alpha, B, ldb, strideB, A, lda, strideA,
                                                     &beta, C, ldc, strideC, batch));
    }
    return PAD_OK;
}

static pad_status cu_gemm(pad_backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                          int lda, long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                          int ldc, long long strideC, int batch) {
    if (K == 0) {
        const long long total = (long long)batch * M * N;
        gemm_k0_kernel<<<(unsigned)CEIL_DIV(total, 256), 256, 0, cuda_stream_of(be)>>>(C, M, N, ldc, strideC, beta,
                                                                                       total);
        PAD_CUDA_CHECK_LAUNCH(be);
        return PAD_OK;
    }
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (be->gemm_mode == PAD_CUDA_GEMM_PINNED) { // batch 1 too: an image alone must meet the same algorithm
        pad_status st = cuda_gemm_pinned(be, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C,
                                         ldc, strideC, batch, NULL, false);
        if (st != PAD_ERR_UNSUPPORTED || be->capture_failed) return st; // else: no pinned algorithm, loop
    }
    if (batch > 1 && be->gemm_mode != PAD_CUDA_GEMM_BATCHED) {
        for (int b = 0; b < batch; b++)
            PAD_TRY(gemm_call(be, opA, opB, M, N, K, alpha, A + b * strideA, lda, 0, B + b * strideB, ldb, 0, beta,
                              C + b * strideC, ldc, 0, 1));
        return PAD_OK;
    }
    return gemm_call(be, opA, opB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch);
}

// A capture that cannot start is "not capturable" (PAD_ERR_UNSUPPORTED), not a broken device.
static pad_status cu_graph_begin(pad_backend *be) {
    cudaError_t e = cudaStreamBeginCapture(cuda_stream_of(be), cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        PAD_LOG_WARN("device cuda: cannot start a graph capture: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return PAD_ERR_UNSUPPORTED;
    }
    return PAD_OK;
}

// After a failed capture: the stream must still work (a sticky fault poisons the backend here).
static pad_status check_health(pad_backend *be) {
    cudaGetLastError();
    cudaError_t e = cudaStreamSynchronize(cuda_stream_of(be));
    if (e == cudaSuccess) return PAD_ERR_UNSUPPORTED;
    PAD_LOG_ERROR("device cuda: the device is unusable after a failed graph capture: %s", cudaGetErrorString(e));
    be->poisoned = true;
    return PAD_ERR_CUDA;
}

static pad_status cu_graph_end(pad_backend *be, void **exec) {
    *exec = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cuda_stream_of(be), &graph);
    if (e != cudaSuccess || !graph || be->capture_failed) {
        PAD_LOG_WARN("device cuda: graph capture failed: %s",
                     e != cudaSuccess ? cudaGetErrorString(e) : "an op failed during the capture");
        if (graph) cudaGraphDestroy(graph);
        return check_health(be); // a failed capture is not sticky: clear it, the stream is usable again
    }
    cudaGraphExec_t ge = NULL;
    e = cudaGraphInstantiate(&ge, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        PAD_LOG_WARN("device cuda: graph instantiation failed: %s", cudaGetErrorString(e));
        return check_health(be);
    }
    *exec = (void *)ge;
    return PAD_OK;
}

static pad_status cu_graph_launch(pad_backend *be, void *exec) {
    PAD_CUDA_TRY(be, cudaGraphLaunch((cudaGraphExec_t)exec, cuda_stream_of(be)));
    return PAD_OK;
}

static void cu_graph_destroy(pad_backend *be, void *exec) {
    (void)be;
    if (exec) cudaGraphExecDestroy((cudaGraphExec_t)exec);
}

static const pad_backend_ops k_cuda_ops = {
    /* name */ "cuda",
    /* alloc */ cu_alloc,
    /* free */ cu_free,
    /* upload */ cu_upload,
    /* download */ cu_download,
    /* copy */ cu_copy,
    /* zero */ cu_zero,
    /* sync */ cu_sync,
    /* destroy */ cu_destroy,
    /* gemm */ cu_gemm,
    /* add_rows */ cuda_add_rows,
    /* axpy */ cuda_axpy,
    /* scale */ cuda_scale,
    /* layernorm */ cuda_layernorm,
    /* gelu */ cuda_gelu,
    /* gather_rows */ cuda_gather_rows,
    /* scatter_add_rows */ cuda_scatter_add_rows,
    /* attention */ cuda_attention,
    /* attention_dual */ cuda_attention_dual,
    /* patch_embed */ cuda_patch_embed,
    /* layernorm_backward */ cuda_layernorm_backward,
    /* gelu_backward */ cuda_gelu_backward,
    /* attention_backward */ cuda_attention_backward,
    /* sgd_step */ cuda_sgd_step,
    /* knn_min */ cuda_knn_min,
    /* text_score */ cuda_text_score,
    /* harmonic_fuse */ cuda_harmonic_fuse,
    /* round_half */ cuda_round_half,
    /* upsample_bilinear */ cuda_upsample_bilinear,
    /* gaussian_filter */ cuda_gaussian_filter,
    /* row_max */ cuda_row_max,
    /* l2norm_rows */ cuda_l2norm_rows,
    /* l2norm_rows_backward */ cuda_l2norm_rows_backward,
    /* xent0 */ cuda_xent0,
    /* eam_loss */ cuda_eam_loss,
    /* dot */ cuda_dot,
    /* bias_gelu */ cuda_bias_gelu,
    /* conv2d */ cuda_conv2d,
    /* pool2d */ cuda_pool2d,
    /* adaptive_avgpool2d */ cuda_adaptive_avgpool2d,
    /* residual_add */ cuda_residual_add,
    /* to_rows */ cuda_to_rows,
    /* knn_l2 */ cuda_knn_l2,
    /* graph_begin */ cu_graph_begin,
    /* graph_end */ cu_graph_end,
    /* graph_launch */ cu_graph_launch,
    /* graph_destroy */ cu_graph_destroy,
    /* linear_rows */ cuda_linear_rows,
    /* text_score_multi */ cuda_text_score_multi,
    /* quick_gelu */ cuda_quick_gelu,
    /* quick_gelu_backward */ cuda_quick_gelu_backward,
};

extern "C" void *pad_backend_cuda_stream(pad_backend *be) {
    return (void *)cuda_stream_of(be);
}

extern "C" pad_status pad_backend_cuda_device_memory(pad_backend *be, size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    cudaError_t ce = cudaSetDevice(be->device);
    if (ce == cudaSuccess) ce = cudaMemGetInfo(free_bytes, total_bytes);
    if (ce != cudaSuccess) {
        PAD_LOG_ERROR("device cuda:%d: cannot read the free memory: %s", be->device, cudaGetErrorString(ce));
        return PAD_ERR_CUDA;
    }
    return PAD_OK;
}

extern "C" pad_status pad_backend_cuda_open(pad_backend **out, int device) {
    *out = NULL;
    int n = pad_cuda_device_count();
    if (n <= 0) {
        char why[256];
        pad_cuda_probe(why, sizeof why);
        PAD_LOG_ERROR("device cuda: %s; use --device cpu", why);
        return PAD_ERR_UNSUPPORTED;
    }
    if (device < 0 || device >= n) {
        PAD_LOG_ERROR("device cuda: device %d does not exist (%d visible)", device, n);
        return PAD_ERR_INVALID_ARG;
    }
    pad_backend *be = (pad_backend *)calloc(1, sizeof *be);
    cuda_impl *im = (cuda_impl *)calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        return PAD_ERR_OOM;
    }
    be->kind = PAD_BACKEND_CUDA;
    be->ops = &k_cuda_ops;
    be->impl = im;
    be->device = device;
    {
        const char *k = getenv("PROMPTAD_CUDA_KERNELS");
        be->fast_kernels = k && strcmp(k, "fast") == 0;
        const char *gm = getenv("PROMPTAD_CUDA_GEMM"); // loop (default), pinned, batched
        be->gemm_mode = gm && !strcmp(gm, "pinned")    ? PAD_CUDA_GEMM_PINNED
                        : gm && !strcmp(gm, "batched") ? PAD_CUDA_GEMM_BATCHED
                                                       : PAD_CUDA_GEMM_LOOP;
        const char *at = getenv("PROMPTAD_CUDA_ATTENTION"); // v1 (default), v2
        be->att_v2 = at && !strcmp(at, "v2");
    }
    pad_status st = PAD_ERR_CUDA;
    cudaError_t ce;
    cublasStatus_t cs;
    if ((ce = cudaSetDevice(device)) != cudaSuccess || (ce = cudaStreamCreate(&im->stream)) != cudaSuccess) {
        PAD_LOG_ERROR("device cuda: cannot initialise device %d: %s", device, cudaGetErrorString(ce));
        goto fail;
    }
    if ((cs = cublasCreate(&im->cublas)) != CUBLAS_STATUS_SUCCESS ||
        (cs = cublasSetStream(im->cublas, im->stream)) != CUBLAS_STATUS_SUCCESS ||
        (cs = cublasSetMathMode(im->cublas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) {
        PAD_LOG_ERROR("device cuda: cuBLAS initialisation failed: %s", cublasGetStatusString(cs));
        goto fail;
    }
    im->cublas_workspace_bytes = 32u << 20;
    if ((ce = cudaMalloc(&im->cublas_workspace, im->cublas_workspace_bytes)) != cudaSuccess ||
        (cs = cublasSetWorkspace(im->cublas, im->cublas_workspace, im->cublas_workspace_bytes)) !=
            CUBLAS_STATUS_SUCCESS) {
        PAD_LOG_ERROR("device cuda: cannot set up the cuBLAS workspace");
        goto fail;
    }
    if ((ce = cudaHostAlloc((void **)&im->err_host, sizeof(int), cudaHostAllocMapped)) != cudaSuccess ||
        (ce = cudaHostGetDevicePointer((void **)&im->err_dev, im->err_host, 0)) != cudaSuccess) {
        PAD_LOG_ERROR("device cuda: cannot allocate the error flag: %s", cudaGetErrorString(ce));
        goto fail;
    }
    *im->err_host = 0;
    {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, device) == cudaSuccess)
            PAD_LOG_INFO("device cuda:%d: %s (sm_%d%d, %.1f GiB)%s%s%s", device, prop.name, prop.major, prop.minor,
                         (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
                         be->fast_kernels ? ", fast kernels (PROMPTAD_CUDA_KERNELS=fast)" : "",
                         be->gemm_mode == PAD_CUDA_GEMM_PINNED    ? ", pinned cuBLASLt GEMMs (PROMPTAD_CUDA_GEMM)"
                         : be->gemm_mode == PAD_CUDA_GEMM_BATCHED ? ", batched GEMMs (PROMPTAD_CUDA_GEMM)"
                                                                  : "",
                         be->att_v2 ? ", attention v2 (PROMPTAD_CUDA_ATTENTION)" : "");
    }
    *out = be;
    return PAD_OK;
fail:
    cudaGetLastError();
    cu_destroy(be);
    return st;
}
