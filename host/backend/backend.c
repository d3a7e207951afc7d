/* backend.c - backend selection (auto/cpu/cuda), scratch memory, and the checked pad_op_* wrappers that model code
 * calls. The wrappers validate arguments, refuse a poisoned backend, report ops a backend lacks, and with
 * PROMPTAD_DEBUG_OPS=1 synchronise after each op and scan its output for NaN/Inf. */
#include "backend.h"

#include "log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// ----------------------------------------------------------------------------
// selection

pad_status pad_backend_kind_parse(const char *s, pad_backend_kind *out) {
    if (s && strcasecmp(s, "auto") == 0)
        *out = PAD_BACKEND_AUTO;
    else if (s && strcasecmp(s, "cpu") == 0)
        *out = PAD_BACKEND_CPU;
    else if (s && (strcasecmp(s, "cuda") == 0 || strcasecmp(s, "gpu") == 0))
        *out = PAD_BACKEND_CUDA;
    else {
        PAD_LOG_ERROR("unknown device '%s' (expected auto, cpu or cuda)", s ? s : "(null)");
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

const char *pad_backend_kind_str(pad_backend_kind k) {
    switch (k) {
    case PAD_BACKEND_AUTO:
        return "auto";
    case PAD_BACKEND_CPU:
        return "cpu";
    case PAD_BACKEND_CUDA:
        return "cuda";
    }
    return "?";
}

pad_backend_params pad_backend_params_default(void) {
    pad_backend_params p = {
        .kind = PAD_BACKEND_AUTO,
        .device = 0,
        .n_threads = 0,
        .math = PAD_MATH_FP32,
        .fast_kernels = -1,
        .debug_ops = -1,
    };
    return p;
}

// The one constructor: every backend of the program is made here, so the settings that apply to all of them
// (PROMPTAD_DEBUG_OPS, the math mode, the kernel variant) are applied in one place.
pad_status pad_backend_create(pad_backend **out, const pad_backend_params *params) {
    *out = NULL;
    pad_backend_params p = params ? *params : pad_backend_params_default();
    pad_status st;
    if (p.kind == PAD_BACKEND_CPU)
        st = pad_backend_cpu_open(out, p.n_threads);
    else if (p.kind == PAD_BACKEND_CUDA)
        st = pad_backend_cuda_open(out, p.device);
    else if (pad_cuda_device_count() > 0 && (st = pad_backend_cuda_open(out, p.device)) == PAD_OK)
        st = PAD_OK;
    else {
        PAD_LOG_INFO("device auto: no usable CUDA device, using the CPU backend");
        st = pad_backend_cpu_open(out, p.n_threads);
    }
    if (st != PAD_OK) return st;
    if (p.debug_ops < 0) {
        const char *dbg = getenv("PROMPTAD_DEBUG_OPS");
        (*out)->debug_ops = dbg && strcmp(dbg, "0") != 0;
    } else {
        (*out)->debug_ops = p.debug_ops != 0;
    }
    pad_backend_set_math(*out, p.math);
    if (p.fast_kernels >= 0) pad_backend_set_fast_kernels(*out, p.fast_kernels != 0);
    return PAD_OK;
}

pad_status pad_backend_init(pad_backend **out, pad_backend_kind kind, int device) {
    pad_backend_params p = pad_backend_params_default();
    p.kind = kind;
    p.device = device;
    return pad_backend_create(out, &p);
}

pad_status pad_backend_cpu_init(pad_backend **out, int n_threads) {
    pad_backend_params p = pad_backend_params_default();
    p.kind = PAD_BACKEND_CPU;
    p.n_threads = n_threads;
    return pad_backend_create(out, &p);
}

pad_status pad_backend_cuda_init(pad_backend **out, int device) {
    pad_backend_params p = pad_backend_params_default();
    p.kind = PAD_BACKEND_CUDA;
    p.device = device;
    return pad_backend_create(out, &p);
}

void pad_backend_free(pad_backend *be) {
    if (!be) return;
    if (be->scratch) {
        be->ops->sync(be);
        be->ops->free(be, be->scratch);
        be->scratch = NULL;
    }
    be->ops->destroy(be);
}

pad_backend_kind pad_backend_get_kind(const pad_backend *be) {
    return be->kind;
}

pad_status pad_math_mode_parse(const char *s, pad_math_mode *out) {
    if (s && (strcasecmp(s, "fp32") == 0 || strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0))
        *out = PAD_MATH_FP32;
    else if (s && (strcasecmp(s, "tf32") == 0 || strcasecmp(s, "on") == 0 || strcasecmp(s, "true") == 0))
        *out = PAD_MATH_TF32;
    else if (s && strcasecmp(s, "bf16") == 0)
        *out = PAD_MATH_BF16;
    else {
        PAD_LOG_ERROR("unknown math mode '%s' (expected fp32, tf32 or bf16)", s ? s : "(null)");
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

const char *pad_math_mode_str(pad_math_mode m) {
    switch (m) {
    case PAD_MATH_FP32:
        return "fp32";
    case PAD_MATH_TF32:
        return "tf32";
    case PAD_MATH_BF16:
        return "bf16";
    }
    return "?";
}

void pad_backend_set_math(pad_backend *be, pad_math_mode m) {
    if (be) be->math = be->kind == PAD_BACKEND_CUDA ? (int)m : (int)PAD_MATH_FP32;
}

void pad_backend_set_fast_math(pad_backend *be, bool on) {
    pad_backend_set_math(be, on ? PAD_MATH_TF32 : PAD_MATH_FP32);
}

void pad_backend_set_fast_kernels(pad_backend *be, bool on) {
    if (be) be->fast_kernels = on && be->kind == PAD_BACKEND_CUDA;
}

void *pad_backend_scratch(pad_backend *be, size_t nbytes) {
    if (nbytes <= be->scratch_bytes && be->scratch) return be->scratch;
    if (be->capturing) {
        PAD_LOG_WARN("%s backend: scratch memory would grow during a graph capture", be->ops->name);
        return NULL;
    }
    if (be->scratch) {
        be->ops->sync(be);
        be->ops->free(be, be->scratch);
    }
    size_t want = nbytes + nbytes / 4 + 256;
    be->scratch = be->ops->alloc(be, want);
    be->scratch_bytes = be->scratch ? want : 0;
    be->scratch_gen++;
    if (!be->scratch && !be->poisoned)
        PAD_LOG_ERROR("%s backend: out of memory for %zu bytes of scratch", be->ops->name, want);
    return be->scratch;
}

// ----------------------------------------------------------------------------
// CUDA graphs

struct pad_graph {
    void *exec;           // instantiated graph (NULL before the capture)
    unsigned variant;     // graph_variant(be) of the calls: the math mode and the kernel variants
    unsigned scratch_gen; // be->scratch_gen when captured
    unsigned char *key;   // the key of the calls (copied)
    size_t key_bytes;
    long calls;   // calls with this key
    long replays; // launches of the graph
    bool broken;  // a capture failed: always eager
};

static void graph_reset(pad_backend *be, pad_graph *g) {
    if (g->exec) be->ops->graph_destroy(be, g->exec);
    g->exec = NULL;
    g->calls = 0;
}

static bool graph_key_is(const pad_graph *g, const void *key, size_t key_bytes) {
    return g->key_bytes == key_bytes && (key_bytes == 0 || memcmp(g->key, key, key_bytes) == 0);
}

// Everything of the backend that changes which kernels a call queues: part of every graph's key, so that switching
// the math mode or a kernel variant between calls captures again instead of replaying the old kernels.
static unsigned graph_variant(const pad_backend *be) {
    return (unsigned)be->math | (be->fast_kernels ? 1u << 4 : 0u) | (unsigned)be->gemm_mode << 5 |
           (be->att_v2 ? 1u << 8 : 0u);
}

// Releases the buffers that were freed during a capture (pad_buf_free defers them).
static void flush_deferred_frees(pad_backend *be) {
    for (int i = 0; i < be->n_deferred_free; i++)
        be->ops->free(be, be->deferred_free[i]);
    be->n_deferred_free = 0;
}

// Captures fn(ctx) into g->exec. PAD_OK with g->exec set; PAD_ERR_UNSUPPORTED when this work cannot be captured
// (an op failed during the capture without breaking the device: the caller runs it eagerly); any other error from
// a poisoned backend.
static pad_status graph_capture(pad_backend *be, pad_graph *g, pad_graph_fn fn, void *ctx) {
    be->capture_failed = false;
    pad_status st = be->ops->graph_begin(be);
    if (st != PAD_OK) return be->poisoned ? PAD_ERR_CUDA : PAD_ERR_UNSUPPORTED;
    be->capturing = true;
    pad_status fst = fn(ctx);
    be->capturing = false;
    void *exec = NULL;
    pad_status est = be->ops->graph_end(be, &exec);
    flush_deferred_frees(be);
    if (be->poisoned) {
        if (exec) be->ops->graph_destroy(be, exec);
        return PAD_ERR_CUDA;
    }
    if (fst != PAD_OK || est != PAD_OK || !exec || be->capture_failed) {
        if (exec) be->ops->graph_destroy(be, exec);
        PAD_LOG_WARN("%s backend: CUDA graph capture failed (%s); running these ops eagerly from now on", be->ops->name,
                     pad_status_str(fst != PAD_OK   ? fst
                                    : est != PAD_OK ? est
                                                    : PAD_ERR_UNSUPPORTED));
        be->capture_failed = false;
        return PAD_ERR_UNSUPPORTED;
    }
    g->exec = exec;
    g->scratch_gen = be->scratch_gen;
    return PAD_OK;
}

pad_status pad_graph_run(pad_backend *be, pad_graph **gp, const void *key, size_t key_bytes, pad_graph_fn fn,
                         void *ctx) {
    if (be->poisoned) {
        PAD_LOG_ERROR("%s backend is unusable after an earlier CUDA error", be->ops->name);
        return PAD_ERR_CUDA;
    }
    if (!be->ops->graph_begin || be->debug_ops || be->capturing) return fn(ctx);
    pad_graph *g = *gp;
    if (!g) {
        if (!(g = (pad_graph *)calloc(1, sizeof *g))) return fn(ctx);
        *gp = g;
    }
    if (g->broken) return fn(ctx);
    if (!graph_key_is(g, key, key_bytes) || g->variant != graph_variant(be)) {
        graph_reset(be, g);
        free(g->key);
        g->key = NULL;
        g->key_bytes = 0;
        if (key_bytes) {
            if (!(g->key = (unsigned char *)malloc(key_bytes))) return fn(ctx);
            memcpy(g->key, key, key_bytes);
        }
        g->key_bytes = key_bytes;
        g->variant = graph_variant(be);
    }
    if (g->exec && g->scratch_gen != be->scratch_gen) graph_reset(be, g); // scratch moved: capture again
    if (!g->exec) {
        if (g->calls++ == 0) return fn(ctx); // warm-up, eager
        pad_status st = graph_capture(be, g, fn, ctx);
        if (st == PAD_ERR_UNSUPPORTED) {
            g->broken = true;
            return fn(ctx);
        }
        if (st != PAD_OK) return st;
    }
    PAD_TRY(be->ops->graph_launch(be, g->exec));
    g->replays++;
    return PAD_OK;
}

void pad_graph_free(pad_backend *be, pad_graph **gp) {
    if (!gp || !*gp) return;
    pad_graph *g = *gp;
    if (g->exec && be && be->ops->graph_destroy) be->ops->graph_destroy(be, g->exec);
    free(g->key);
    free(g);
    *gp = NULL;
}

long pad_graph_replays(const pad_graph *g) {
    return g ? g->replays : 0;
}

// ----------------------------------------------------------------------------
// memory

void *pad_buf_alloc(pad_backend *be, size_t nbytes) {
    if (be->poisoned) return NULL;
    if (be->capturing) {
        PAD_LOG_WARN("%s backend: allocation of %zu bytes during a graph capture", be->ops->name, nbytes);
        return NULL;
    }
    void *p = be->ops->alloc(be, nbytes ? nbytes : 4);
    if (!p && be->poisoned)
        PAD_LOG_ERROR("%s backend: allocation of %zu bytes failed on a CUDA error (not out of memory)", be->ops->name,
                      nbytes);
    else if (!p)
        PAD_LOG_ERROR("%s backend: out of memory allocating %zu bytes", be->ops->name, nbytes);
    return p;
}

// During a capture a free would synchronise (and the graph being captured may use the buffer): it is deferred to
// the end of the capture, which is then abandoned (its buffers would be gone before a replay).
void pad_buf_free(pad_backend *be, void *p) {
    if (!be || !p) return;
    if (be->capturing) {
        be->capture_failed = true;
        if (be->n_deferred_free < (int)(sizeof be->deferred_free / sizeof be->deferred_free[0])) {
            be->deferred_free[be->n_deferred_free++] = p;
            PAD_LOG_WARN("%s backend: a buffer freed during a graph capture (freed after it)", be->ops->name);
        } else {
            PAD_LOG_ERROR("%s backend: too many buffers freed during a graph capture: one is leaked", be->ops->name);
        }
        return;
    }
    be->ops->free(be, p);
}

// Transfers and syncs wait for the stream: not allowed while it is being captured into a graph.
#define CHECK_NOT_CAPTURING(be, what)                                                                                  \
    do {                                                                                                               \
        if ((be)->capturing) {                                                                                         \
            PAD_LOG_WARN("%s backend: %s during a graph capture", (be)->ops->name, what);                              \
            return PAD_ERR_UNSUPPORTED;                                                                                \
        }                                                                                                              \
    } while (0)

#define CHECK_BE(be)                                                                                                   \
    do {                                                                                                               \
        if ((be)->poisoned) {                                                                                          \
            PAD_LOG_ERROR("%s backend is unusable after an earlier CUDA error", (be)->ops->name);                      \
            return PAD_ERR_CUDA;                                                                                       \
        }                                                                                                              \
    } while (0)

#define CHECK_OP(be, op)                                                                                               \
    do {                                                                                                               \
        CHECK_BE(be);                                                                                                  \
        if (!(be)->ops->op) {                                                                                          \
            PAD_LOG_ERROR("op '%s' is not implemented on the %s backend", #op, (be)->ops->name);                       \
            return PAD_ERR_UNSUPPORTED;                                                                                \
        }                                                                                                              \
    } while (0)

#define CHECK_ARG(cond)                                                                                                \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            PAD_LOG_ERROR("%s: bad argument: %s", __func__, #cond);                                                    \
            return PAD_ERR_INVALID_ARG;                                                                                \
        }                                                                                                              \
    } while (0)

pad_status pad_buf_upload(pad_backend *be, void *dst, const void *host_src, size_t nbytes) {
    CHECK_BE(be);
    CHECK_NOT_CAPTURING(be, "upload");
    CHECK_ARG(nbytes == 0 || (dst && host_src));
    return nbytes ? be->ops->upload(be, dst, host_src, nbytes) : PAD_OK;
}

pad_status pad_buf_download(pad_backend *be, void *host_dst, const void *src, size_t nbytes) {
    CHECK_BE(be);
    CHECK_NOT_CAPTURING(be, "download");
    CHECK_ARG(nbytes == 0 || (host_dst && src));
    return nbytes ? be->ops->download(be, host_dst, src, nbytes) : PAD_OK;
}

pad_status pad_buf_copy(pad_backend *be, void *dst, const void *src, size_t nbytes) {
    CHECK_BE(be);
    CHECK_ARG(nbytes == 0 || (dst && src));
    return nbytes ? be->ops->copy(be, dst, src, nbytes) : PAD_OK;
}

pad_status pad_buf_zero(pad_backend *be, void *dst, size_t nbytes) {
    CHECK_BE(be);
    CHECK_ARG(nbytes == 0 || dst);
    return nbytes ? be->ops->zero(be, dst, nbytes) : PAD_OK;
}

pad_status pad_backend_sync(pad_backend *be) {
    CHECK_BE(be);
    CHECK_NOT_CAPTURING(be, "synchronisation");
    return be->ops->sync(be);
}

pad_status pad_buf_from_host(pad_backend *be, float **out, const float *host, size_t n) {
    *out = (float *)pad_buf_alloc(be, n * sizeof(float));
    if (!*out) return be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    pad_status st = pad_buf_upload(be, *out, host, n * sizeof(float));
    if (st != PAD_OK) {
        pad_buf_free(be, *out);
        *out = NULL;
    }
    return st;
}

// With PROMPTAD_DEBUG_OPS=1: synchronise and scan an op's output for NaN/Inf.
static pad_status debug_check(pad_backend *be, pad_status st, const char *op, const float *out, size_t n) {
    if (st != PAD_OK || !be->debug_ops || be->capturing || !out || n == 0) return st;
    PAD_TRY(be->ops->sync(be));
    float *h = (float *)malloc(n * sizeof(float));
    if (!h) return PAD_ERR_OOM;
    st = be->ops->download(be, h, out, n * sizeof(float));
    if (st == PAD_OK) {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(h[i])) {
                PAD_LOG_ERROR("debug ops: %s on %s produced a non-finite value at index %zu of %zu", op, be->ops->name,
                              i, n);
                st = PAD_ERR_INVALID_ARG;
                break;
            }
        if (st == PAD_OK) PAD_LOG_DEBUG("debug ops: %s ok (%zu values)", op, n);
    }
    free(h);
    return st;
}

// ----------------------------------------------------------------------------
// op wrappers

pad_status pad_op_gemm(pad_backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                       int lda, long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                       int ldc, long long strideC, int batch) {
    CHECK_OP(be, gemm);
    CHECK_ARG(M >= 0 && N >= 0 && K >= 0 && batch >= 0);
    CHECK_ARG(lda >= (transA ? M : K) && ldb >= (transB ? K : N) && ldc >= N);
    if (M == 0 || N == 0 || batch == 0) return PAD_OK;
    CHECK_ARG(A && B && C);
    pad_status st = be->ops->gemm(be, transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                                  strideC, batch);
    return debug_check(be, st, "gemm", C, (size_t)M * (size_t)ldc);
}

pad_status pad_op_linear(pad_backend *be, float *out, const float *inp, const float *w, const float *bias, int M, int K,
                         int N, bool accumulate) {
    // row-major out(M,N) = inp(M,K) @ w(N,K)^T: w is stored (N,K), i.e. op(B) = transpose
    PAD_TRY(pad_op_gemm(be, false, true, M, N, K, 1.0f, inp, K, 0, w, K, 0, accumulate ? 1.0f : 0.0f, out, N, 0, 1));
    if (bias) PAD_TRY(pad_op_add_rows(be, out, bias, M, N, 1));
    return PAD_OK;
}

pad_status pad_op_linear_rows(pad_backend *be, float *out, const float *inp, const float *w, const float *bias, int M,
                              int K, int N, bool accumulate) {
    CHECK_BE(be);
    if (be->ops->linear_rows && !be->debug_ops && M > 0 && K > 0 && N > 0 && out && inp && w) {
        pad_status st = be->ops->linear_rows(be, out, inp, w, bias, M, K, N, accumulate);
        if (st != PAD_ERR_UNSUPPORTED || be->capture_failed) return st;
    }
    return pad_op_linear(be, out, inp, w, bias, M, K, N, accumulate);
}

pad_status pad_op_linear_backward(pad_backend *be, float *dinp, const float *dout, const float *w, int M, int K, int N,
                                  bool accumulate) {
    // dinp(M,K) = dout(M,N) @ w(N,K)
    return pad_op_gemm(be, false, false, M, K, N, 1.0f, dout, N, 0, w, K, 0, accumulate ? 1.0f : 0.0f, dinp, K, 0, 1);
}

pad_status pad_op_matmul(pad_backend *be, float *out, const float *inp, const float *P, int M, int K, int N) {
    return pad_op_gemm(be, false, false, M, N, K, 1.0f, inp, K, 0, P, N, 0, 0.0f, out, N, 0, 1);
}

pad_status pad_op_add_rows(pad_backend *be, float *x, const float *v, int M, int N, int R) {
    CHECK_OP(be, add_rows);
    CHECK_ARG(x && v && M >= 0 && N > 0 && R > 0);
    return debug_check(be, be->ops->add_rows(be, x, v, M, N, R), "add_rows", x, (size_t)M * (size_t)N);
}

pad_status pad_op_axpy(pad_backend *be, float *out, const float *a, float alpha, const float *b, size_t n) {
    CHECK_OP(be, axpy);
    CHECK_ARG(out && a && b);
    return debug_check(be, be->ops->axpy(be, out, a, alpha, b, n), "axpy", out, n);
}

pad_status pad_op_scale(pad_backend *be, float *out, const float *inp, float alpha, size_t n) {
    CHECK_OP(be, scale);
    CHECK_ARG(out && inp);
    return debug_check(be, be->ops->scale(be, out, inp, alpha, n), "scale", out, n);
}

pad_status pad_op_layernorm(pad_backend *be, float *out, float *mean, float *rstd, const float *inp, const float *w,
                            const float *b, int M, int C, float eps) {
    CHECK_OP(be, layernorm);
    CHECK_ARG(out && inp && w && b && M >= 0 && C > 0 && eps > 0);
    return debug_check(be, be->ops->layernorm(be, out, mean, rstd, inp, w, b, M, C, eps), "layernorm", out,
                       (size_t)M * (size_t)C);
}

pad_status pad_op_gelu(pad_backend *be, float *out, const float *inp, size_t n) {
    CHECK_OP(be, gelu);
    CHECK_ARG(out && inp);
    return debug_check(be, be->ops->gelu(be, out, inp, n), "gelu", out, n);
}

pad_status pad_op_gather_rows(pad_backend *be, float *out, const float *inp, const int32_t *idx, int n, int C) {
    CHECK_OP(be, gather_rows);
    CHECK_ARG(out && inp && idx && n >= 0 && C > 0 && out != inp);
    return be->ops->gather_rows(be, out, inp, idx, n, C);
}

pad_status pad_op_scatter_add_rows(pad_backend *be, float *dtable, const float *dout, const int32_t *idx, int n, int C,
                                   int R) {
    CHECK_OP(be, scatter_add_rows);
    CHECK_ARG(dtable && dout && idx && n >= 0 && C > 0 && R > 0);
    return debug_check(be, be->ops->scatter_add_rows(be, dtable, dout, idx, n, C, R), "scatter_add_rows", dtable,
                       (size_t)R * (size_t)C);
}

pad_status pad_op_attention(pad_backend *be, float *out, float *att, const float *qkv, int B, int T, int NH, int HS,
                            bool causal) {
    CHECK_OP(be, attention);
    CHECK_ARG(out && qkv && B >= 0 && T > 0 && NH > 0 && HS > 0);
    return debug_check(be, be->ops->attention(be, out, att, qkv, B, T, NH, HS, causal), "attention", out,
                       (size_t)B * (size_t)T * (size_t)(NH * HS));
}

pad_status pad_op_attention_dual(pad_backend *be, float *out_qk, float *out_vv, const float *qkv, int B, int T, int NH,
                                 int HS) {
    CHECK_OP(be, attention_dual);
    CHECK_ARG((out_qk || out_vv) && qkv && B >= 0 && T > 0 && NH > 0 && HS > 0);
    size_t n = (size_t)B * (size_t)T * (size_t)(NH * HS);
    pad_status st = be->ops->attention_dual(be, out_qk, out_vv, qkv, B, T, NH, HS);
    st = debug_check(be, st, "attention_dual(qk)", out_qk, out_qk ? n : 0);
    return debug_check(be, st, "attention_dual(vv)", out_vv, out_vv ? n : 0);
}

pad_status pad_op_patch_embed(pad_backend *be, float *x, const float *pixels, const float *conv_w, const float *cls,
                              const float *pos, int B, int S, int P, int D) {
    CHECK_OP(be, patch_embed);
    CHECK_ARG(x && pixels && conv_w && cls && pos && B >= 0 && P > 0 && S % P == 0 && D > 0);
    int G = S / P;
    return debug_check(be, be->ops->patch_embed(be, x, pixels, conv_w, cls, pos, B, S, P, D), "patch_embed", x,
                       (size_t)B * (size_t)(1 + G * G) * (size_t)D);
}

pad_status pad_op_layernorm_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, const float *w,
                                     const float *mean, const float *rstd, int M, int C) {
    CHECK_OP(be, layernorm_backward);
    CHECK_ARG(dinp && dout && inp && w && mean && rstd && M >= 0 && C > 0);
    return debug_check(be, be->ops->layernorm_backward(be, dinp, dout, inp, w, mean, rstd, M, C), "layernorm_backward",
                       dinp, (size_t)M * (size_t)C);
}

pad_status pad_op_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n) {
    CHECK_OP(be, gelu_backward);
    CHECK_ARG(dinp && dout && inp);
    return debug_check(be, be->ops->gelu_backward(be, dinp, dout, inp, n), "gelu_backward", dinp, n);
}

pad_status pad_op_attention_backward(pad_backend *be, float *dqkv, const float *dout, const float *qkv,
                                     const float *att, int B, int T, int NH, int HS, bool causal) {
    CHECK_OP(be, attention_backward);
    CHECK_ARG(dqkv && dout && qkv && att && B >= 0 && T > 0 && NH > 0 && HS > 0);
    return debug_check(be, be->ops->attention_backward(be, dqkv, dout, qkv, att, B, T, NH, HS, causal),
                       "attention_backward", dqkv, (size_t)B * (size_t)T * (size_t)(3 * NH * HS));
}

pad_status pad_op_sgd_step(pad_backend *be, float *p, const float *grad, float *buf, size_t n, float lr, float momentum,
                           float weight_decay, bool first) {
    CHECK_OP(be, sgd_step);
    CHECK_ARG(p && grad && buf);
    return debug_check(be, be->ops->sgd_step(be, p, grad, buf, n, lr, momentum, weight_decay, first), "sgd_step", p, n);
}

pad_status pad_op_knn_min(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                          int Nb, int D, int nb) {
    CHECK_OP(be, knn_min);
    CHECK_ARG(dist && query && bank && Nq >= 0 && Nb > 0 && D > 0 && nb >= 0);
    return debug_check(be, be->ops->knn_min(be, dist, idx, query, Nq, bank, Nb, D, nb), "knn_min", dist,
                       (size_t)nb * (size_t)Nq);
}

pad_status pad_op_text_score_multi(pad_backend *be, float *out, const float *feat, const float *tv, float tau, int M,
                                   int E, int U) {
    CHECK_OP(be, text_score_multi);
    CHECK_ARG(out && feat && tv && M >= 0 && E > 0 && U >= 1 && U <= 65535 && isfinite(tau));
    return debug_check(be, be->ops->text_score_multi(be, out, feat, tv, tau, M, E, U), "text_score_multi", out,
                       (size_t)M * (size_t)U);
}

pad_status pad_op_text_score(pad_backend *be, float *out, const float *feat, const float *t_n, const float *t_a,
                             float tau, int M, int E) {
    CHECK_OP(be, text_score);
    CHECK_ARG(out && feat && t_n && t_a && M >= 0 && E > 0 && isfinite(tau));
    return debug_check(be, be->ops->text_score(be, out, feat, t_n, t_a, tau, M, E), "text_score", out, (size_t)M);
}

pad_status pad_op_harmonic_fuse(pad_backend *be, float *out, const float *a, const float *b, size_t n) {
    CHECK_OP(be, harmonic_fuse);
    CHECK_ARG(out && a && b);
    return debug_check(be, be->ops->harmonic_fuse(be, out, a, b, n), "harmonic_fuse", out, n);
}

pad_status pad_op_round_half(pad_backend *be, float *out, const float *inp, size_t n) {
    CHECK_OP(be, round_half);
    CHECK_ARG(out && inp);
    return be->ops->round_half(be, out, inp, n); // inf after rounding is a legitimate result: no debug scan
}

pad_status pad_op_upsample_bilinear(pad_backend *be, float *out, const float *inp, int B, int Hi, int Wi, int Ho,
                                    int Wo) {
    CHECK_OP(be, upsample_bilinear);
    CHECK_ARG(out && inp && out != inp && B >= 0 && Hi > 0 && Wi > 0 && Ho > 0 && Wo > 0);
    return debug_check(be, be->ops->upsample_bilinear(be, out, inp, B, Hi, Wi, Ho, Wo), "upsample_bilinear", out,
                       (size_t)B * (size_t)Ho * (size_t)Wo);
}

pad_status pad_op_gaussian_filter(pad_backend *be, float *out, float *tmp, const float *inp, int B, int H, int W,
                                  const double *w, int r) {
    CHECK_OP(be, gaussian_filter);
    CHECK_ARG(out && tmp && inp && w && tmp != out && tmp != inp && B >= 0 && H > 0 && W > 0);
    CHECK_ARG(r >= 0 && r <= PAD_GAUSS_MAX_RADIUS);
    for (int k = 1; k <= r; k++)
        CHECK_ARG(w[r + k] == w[r - k]); // scipy's symmetric path; asymmetric kernels are not supported
    return debug_check(be, be->ops->gaussian_filter(be, out, tmp, inp, B, H, W, w, r), "gaussian_filter", out,
                       (size_t)B * (size_t)H * (size_t)W);
}

pad_status pad_op_row_max(pad_backend *be, float *out, const float *inp, int B, long long n) {
    CHECK_OP(be, row_max);
    CHECK_ARG(out && inp && B >= 0 && n > 0);
    return debug_check(be, be->ops->row_max(be, out, inp, B, n), "row_max", out, (size_t)B);
}

pad_status pad_op_l2norm_rows(pad_backend *be, float *out, float *norm, const float *inp, int M, int C) {
    CHECK_OP(be, l2norm_rows);
    CHECK_ARG(out && inp && M >= 0 && C > 0);
    return debug_check(be, be->ops->l2norm_rows(be, out, norm, inp, M, C), "l2norm_rows", out, (size_t)M * (size_t)C);
}

pad_status pad_op_l2norm_rows_backward(pad_backend *be, float *dinp, const float *dout, const float *out,
                                       const float *norm, int M, int C) {
    CHECK_OP(be, l2norm_rows_backward);
    CHECK_ARG(dinp && dout && out && norm && M >= 0 && C > 0 && dinp != dout && dinp != out);
    return debug_check(be, be->ops->l2norm_rows_backward(be, dinp, dout, out, norm, M, C), "l2norm_rows_backward", dinp,
                       (size_t)M * (size_t)C);
}

pad_status pad_op_xent0(pad_backend *be, float *loss, float *dz, const float *z, int N, int K) {
    CHECK_OP(be, xent0);
    CHECK_ARG(loss && dz && z && N > 0 && K > 0 && dz != z);
    pad_status st = debug_check(be, be->ops->xent0(be, loss, dz, z, N, K), "xent0", dz, (size_t)N * (size_t)K);
    return debug_check(be, st, "xent0(loss)", loss, 1);
}

pad_status pad_op_eam_loss(pad_backend *be, float *loss, float *dwn, float *dwa, const float *f, const float *wn,
                           const float *wa, int B, int T, int D, bool token_axis, float margin) {
    CHECK_OP(be, eam_loss);
    CHECK_ARG(loss && dwn && dwa && f && wn && wa && B > 0 && T > 0 && D > 0 && dwn != dwa);
    pad_status st = be->ops->eam_loss(be, loss, dwn, dwa, f, wn, wa, B, T, D, token_axis, margin);
    st = debug_check(be, st, "eam_loss(dwn)", dwn, (size_t)D);
    st = debug_check(be, st, "eam_loss(dwa)", dwa, (size_t)D);
    return debug_check(be, st, "eam_loss(loss)", loss, 1);
}

pad_status pad_op_dot(pad_backend *be, float *out, const float *a, const float *b, size_t n, float alpha) {
    CHECK_OP(be, dot);
    CHECK_ARG(out && a && b && n > 0);
    return debug_check(be, be->ops->dot(be, out, a, b, n, alpha), "dot", out, 1);
}

pad_status pad_op_bias_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N) {
    CHECK_OP(be, bias_gelu);
    CHECK_ARG(out && inp && bias && M >= 0 && N > 0);
    return debug_check(be, be->ops->bias_gelu(be, out, inp, bias, M, N), "bias_gelu", out, (size_t)M * (size_t)N);
}

pad_status pad_op_quick_gelu(pad_backend *be, float *out, const float *inp, const float *bias, int M, int N) {
    CHECK_OP(be, quick_gelu);
    CHECK_ARG(out && inp && M >= 0 && N > 0);
    return debug_check(be, be->ops->quick_gelu(be, out, inp, bias, M, N), "quick_gelu", out, (size_t)M * (size_t)N);
}

pad_status pad_op_quick_gelu_backward(pad_backend *be, float *dinp, const float *dout, const float *inp, size_t n) {
    CHECK_OP(be, quick_gelu_backward);
    CHECK_ARG(dinp && dout && inp);
    return debug_check(be, be->ops->quick_gelu_backward(be, dinp, dout, inp, n), "quick_gelu_backward", dinp, n);
}

pad_status pad_op_mlp_act(pad_backend *be, pad_activation act, float *out, const float *inp, const float *bias, int M,
                          int N) {
    if (act == PAD_ACT_QUICK_GELU) return pad_op_quick_gelu(be, out, inp, bias, M, N);
    CHECK_ARG(act == PAD_ACT_GELU && M >= 0 && N > 0);
    return bias ? pad_op_bias_gelu(be, out, inp, bias, M, N) : pad_op_gelu(be, out, inp, (size_t)M * (size_t)N);
}

pad_status pad_op_mlp_act_backward(pad_backend *be, pad_activation act, float *dinp, const float *dout,
                                   const float *inp, size_t n) {
    if (act == PAD_ACT_QUICK_GELU) return pad_op_quick_gelu_backward(be, dinp, dout, inp, n);
    CHECK_ARG(act == PAD_ACT_GELU);
    return pad_op_gelu_backward(be, dinp, dout, inp, n);
}

// Sizes of a convolution: every field positive where it must be, the window fitting the padded input, and every
// tensor's element count within a 32-bit int (the backends index with ints inside one image).
static bool conv_desc_ok(const pad_conv2d_desc *d) {
    if (!d || d->B <= 0 || d->C <= 0 || d->H <= 0 || d->W <= 0 || d->K <= 0 || d->kh <= 0 || d->kw <= 0 ||
        d->stride <= 0 || d->pad < 0 || d->pad > 65536)
        return false;
    const int Ho = pad_conv_out_size(d->H, d->kh, d->stride, d->pad),
              Wo = pad_conv_out_size(d->W, d->kw, d->stride, d->pad);
    if (Ho <= 0 || Wo <= 0) return false;
    const long long lim = 1LL << 31;
    return (long long)d->C * d->H * d->W < lim && (long long)d->K * Ho * Wo < lim &&
           (long long)d->C * d->kh * d->kw * Ho * Wo < lim && (long long)d->K * d->C * d->kh * d->kw < lim;
}

pad_status pad_op_conv2d(pad_backend *be, const pad_conv2d_desc *d, float *out, const float *inp, const float *w,
                         const float *bias, const float *res) {
    CHECK_OP(be, conv2d);
    CHECK_ARG(conv_desc_ok(d) && out && inp && w && out != inp && out != res);
    const size_t n = (size_t)d->B * d->K * pad_conv_out_size(d->H, d->kh, d->stride, d->pad) *
                     pad_conv_out_size(d->W, d->kw, d->stride, d->pad);
    return debug_check(be, be->ops->conv2d(be, d, out, inp, w, bias, res), "conv2d", out, n);
}

pad_status pad_op_pool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int k, int s, int p,
                         pad_pool_mode mode) {
    CHECK_OP(be, pool2d);
    CHECK_ARG(out && inp && out != inp && B > 0 && C > 0 && H > 0 && W > 0 && k > 0 && s > 0 && p >= 0 && p <= k / 2);
    CHECK_ARG(mode == PAD_POOL_MAX || mode == PAD_POOL_AVG);
    const int Ho = pad_conv_out_size(H, k, s, p), Wo = pad_conv_out_size(W, k, s, p);
    CHECK_ARG(Ho > 0 && Wo > 0 && (long long)C * H * W < (1LL << 31));
    return debug_check(be, be->ops->pool2d(be, out, inp, B, C, H, W, k, s, p, mode), "pool2d", out,
                       (size_t)B * C * Ho * Wo);
}

pad_status pad_op_adaptive_avgpool2d(pad_backend *be, float *out, const float *inp, int B, int C, int H, int W, int Ho,
                                     int Wo) {
    CHECK_OP(be, adaptive_avgpool2d);
    CHECK_ARG(out && inp && out != inp && B > 0 && C > 0 && H > 0 && W > 0 && Ho > 0 && Wo > 0);
    CHECK_ARG((long long)C * H * W < (1LL << 31) && (long long)C * Ho * Wo < (1LL << 31));
    return debug_check(be, be->ops->adaptive_avgpool2d(be, out, inp, B, C, H, W, Ho, Wo), "adaptive_avgpool2d", out,
                       (size_t)B * C * Ho * Wo);
}

pad_status pad_op_residual_add(pad_backend *be, float *out, const float *a, const float *b, size_t n, bool relu) {
    CHECK_OP(be, residual_add);
    CHECK_ARG(out && a && b);
    if (n == 0) return PAD_OK;
    return debug_check(be, be->ops->residual_add(be, out, a, b, n, relu), "residual_add", out, n);
}

pad_status pad_op_to_rows(pad_backend *be, float *out, int ldo, const float *inp, int B, int C, int HW) {
    CHECK_OP(be, to_rows);
    CHECK_ARG(out && inp && out != inp && B > 0 && C > 0 && HW > 0 && ldo >= C);
    CHECK_ARG((long long)B * HW * ldo < (1LL << 40));
    return debug_check(be, be->ops->to_rows(be, out, ldo, inp, B, C, HW), "to_rows", NULL, 0);
}

pad_status pad_op_knn_l2(pad_backend *be, float *dist, int32_t *idx, const float *query, int Nq, const float *bank,
                         int Nb, int D) {
    CHECK_OP(be, knn_l2);
    CHECK_ARG(dist && query && bank && Nq > 0 && Nb > 0 && D > 0);
    return debug_check(be, be->ops->knn_l2(be, dist, idx, query, Nq, bank, Nb, D), "knn_l2", dist, (size_t)Nq);
}

void *pad_backend_stream(pad_backend *be) {
    return be && be->kind == PAD_BACKEND_CUDA ? pad_backend_cuda_stream(be) : NULL;
}

pad_status pad_backend_device_memory(pad_backend *be, size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    if (!be || be->kind != PAD_BACKEND_CUDA) return PAD_ERR_UNSUPPORTED;
    return pad_backend_cuda_device_memory(be, free_bytes, total_bytes);
}

#ifndef PAD_HAVE_CUDA
// CPU-only build: the CUDA entry points exist and say why they cannot work.
void *pad_backend_cuda_stream(pad_backend *be) {
    (void)be;
    return NULL;
}

pad_status pad_backend_cuda_device_memory(pad_backend *be, size_t *free_bytes, size_t *total_bytes) {
    (void)be;
    *free_bytes = *total_bytes = 0;
    return PAD_ERR_UNSUPPORTED;
}

pad_status pad_backend_cuda_open(pad_backend **out, int device) {
    (void)device;
    *out = NULL;
    PAD_LOG_ERROR("device cuda: this build of promptad has no CUDA support (rebuild with nvcc installed, "
                  "-DPROMPTAD_CUDA=ON)");
    return PAD_ERR_UNSUPPORTED;
}

int pad_cuda_device_count(void) {
    return 0;
}

pad_cuda_state pad_cuda_probe(char *why, size_t cap) {
    if (why && cap) snprintf(why, cap, "built without CUDA (configure with nvcc installed, -DPROMPTAD_CUDA=ON)");
    return PAD_CUDA_NOT_BUILT;
}
#endif
