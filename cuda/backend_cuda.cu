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
 * CUDA graphs (pad_graph_run in host/backend.c): graph_begin/end capture the backend's stream in thread-local mode,
 * so an accidental sync or allocation in the captured code fails the capture instead of corrupting it. */
#include "cuda_common.cuh"
#include "cuda_ops.h"

#include <stdlib.h>
#include <string.h>

extern "C" int pad_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no driver" error
        return 0;
    }
    return n;
}

static void *cu_alloc(pad_backend *be, size_t nbytes) {
    void *p = NULL;
    if (be->poisoned) return NULL;
    if (cudaMalloc(&p, nbytes ? nbytes : 4) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
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

static pad_status cu_download(pad_backend *be, void *dst, const void *src, size_t nbytes) {
    PAD_CUDA_TRY(be, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, cuda_stream_of(be)));
    PAD_CUDA_TRY(be, cudaStreamSynchronize(cuda_stream_of(be)));
    return PAD_OK;
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
    return PAD_OK;
}

static void cu_destroy(pad_backend *be) {
    cuda_impl *im = cuda_impl_of(be);
    if (im) {
        if (im->stream) cudaStreamSynchronize(im->stream);
        if (im->cublas) cublasDestroy(im->cublas);
        if (im->cublas_workspace) cudaFree(im->cublas_workspace);
        if (im->stream) cudaStreamDestroy(im->stream);
        free(im);
    }
    free(be);
}

static pad_status cu_gemm(pad_backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                          int lda, long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                          int ldc, long long strideC, int batch) {
    cublasHandle_t h = cuda_impl_of(be)->cublas;
    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (be->math != PAD_MATH_FP32) {
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

static pad_status cu_graph_begin(pad_backend *be) {
    PAD_CUDA_TRY(be, cudaStreamBeginCapture(cuda_stream_of(be), cudaStreamCaptureModeThreadLocal));
    return PAD_OK;
}

static pad_status cu_graph_end(pad_backend *be, void **exec) {
    *exec = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cuda_stream_of(be), &graph);
    if (e != cudaSuccess || !graph) {
        PAD_LOG_WARN("device cuda: graph capture failed: %s", cudaGetErrorString(e));
        cudaGetLastError(); // a failed capture is not sticky: clear it, the stream is usable again
        if (graph) cudaGraphDestroy(graph);
        return PAD_ERR_UNSUPPORTED;
    }
    cudaGraphExec_t ge = NULL;
    e = cudaGraphInstantiate(&ge, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        PAD_LOG_WARN("device cuda: graph instantiation failed: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return PAD_ERR_UNSUPPORTED;
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
    /* graph_begin */ cu_graph_begin,
    /* graph_end */ cu_graph_end,
    /* graph_launch */ cu_graph_launch,
    /* graph_destroy */ cu_graph_destroy,
};

extern "C" void *pad_backend_cuda_stream(pad_backend *be) {
    return (void *)cuda_stream_of(be);
}

extern "C" pad_status pad_backend_cuda_open(pad_backend **out, int device) {
    *out = NULL;
    int n = pad_cuda_device_count();
    if (n <= 0) {
        PAD_LOG_ERROR("device cuda: no usable CUDA device (driver missing or no GPU); use --device cpu");
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
    {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, device) == cudaSuccess)
            PAD_LOG_INFO("device cuda:%d: %s (sm_%d%d, %.1f GiB)%s", device, prop.name, prop.major, prop.minor,
                         (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
                         be->fast_kernels ? ", fast kernels (PROMPTAD_CUDA_KERNELS=fast)" : "");
    }
    *out = be;
    return PAD_OK;
fail:
    cudaGetLastError();
    cu_destroy(be);
    return st;
}
