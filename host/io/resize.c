/* resize.c - the bit-exact 8-bit resizes of image.h: Pillow 9.4 BICUBIC (src/libImaging/Resample.c) and NEAREST
 * (Geometry.c ImagingScaleAffine), OpenCV 4.x INTER_LINEAR (imgproc/src/resize.cpp, HResizeLinear /
 * VResizeLinear<uchar, int, short>) and INTER_NEAREST (resizeNN), plus the workspace that caches their coefficient
 * tables and scratch buffers.
 *
 * Everything after the coefficient tables is integer arithmetic, so the results do not depend on the evaluation
 * order; OpenMP splits output rows only. The coefficient tables use the same double/float expressions, in the same
 * order, as the originals (this file must be compiled without floating-point contraction, see CMakeLists.txt). */
#include "image.h"
#include "log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

// Below this many output values a pass runs on one thread (fork/join costs more than it saves).
#define PAR_MIN_WORK 65536

// ----------------------------------------------------------------------------
// Workspace

enum { PLAN_PIL = 1, PLAN_CV = 2, PLAN_PIL_NN = 3, PLAN_CV_NN = 4 }; // 0 marks an empty slot
#define N_PLANS 8

// One axis of a resize: how output index i reads the input.
typedef struct axis_plan {
    int kind, in, out; // key; kind 0 = empty slot
    int ksize;         // PLAN_PIL: taps per output
    int *idx;          // PLAN_PIL: (out, 2) first tap, tap count; PLAN_CV: (out, 2) the two source indices;
                       // NN: (out) source index, -1 = outside (Pillow fills 0)
    int32_t *k;        // PLAN_PIL: (out, ksize) 22-bit weights; PLAN_CV: (out, 2) 11-bit weights
    unsigned stamp;    // for least-recently-used replacement
} axis_plan;

enum { BUF_TMP = 0, BUF_EXT = 1, N_BUFS = 3 }; // BUF_EXT, BUF_EXT + 1: pad_resize_ws_buffer's slots

struct pad_resize_ws {
    axis_plan plans[N_PLANS];
    unsigned clock;
    void *buf[N_BUFS];
    size_t cap[N_BUFS];
};

pad_status pad_resize_ws_init(pad_resize_ws **out) {
    *out = (pad_resize_ws *)calloc(1, sizeof(pad_resize_ws));
    if (!*out) {
        PAD_LOG_ERROR("resize workspace: out of memory");
        return PAD_ERR_OOM;
    }
    return PAD_OK;
}

static void plan_clear(axis_plan *p) {
    free(p->idx);
    free(p->k);
    memset(p, 0, sizeof *p);
}

void pad_resize_ws_free(pad_resize_ws *ws) {
    if (!ws) return;
    for (int i = 0; i < N_PLANS; i++)
        plan_clear(&ws->plans[i]);
    for (int i = 0; i < N_BUFS; i++)
        free(ws->buf[i]);
    free(ws);
}

// Returns scratch buffer `slot` with at least `bytes` bytes (contents not preserved when it grows).
static void *ws_buf(pad_resize_ws *ws, int slot, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (ws->cap[slot] < bytes) {
        free(ws->buf[slot]);
        ws->buf[slot] = malloc(bytes);
        ws->cap[slot] = ws->buf[slot] ? bytes : 0;
        if (!ws->buf[slot]) PAD_LOG_ERROR("resize workspace: out of memory (%zu bytes)", bytes);
    }
    return ws->buf[slot];
}

// image.c's intermediate images (not in image.h): slot 0 or 1, contents not preserved between calls.
void *pad_resize_ws_buffer(pad_resize_ws *ws, int slot, size_t bytes);
void *pad_resize_ws_buffer(pad_resize_ws *ws, int slot, size_t bytes) {
    return ws_buf(ws, BUF_EXT + (slot != 0), bytes);
}

// ----------------------------------------------------------------------------
// Coefficient tables

// Pillow's bicubic_filter (a = -0.5).
static double pil_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

#define PIL_PRECISION_BITS (32 - 8 - 2)
#define LANES              24 // accumulator lanes of the RGB horizontal pass: a multiple of 3 (channels) and of 8 (SIMD width)

// precompute_coeffs(inSize, 0, inSize, outSize, &BICUBIC) followed by normalize_coeffs_8bpc.
static pad_status build_pil(axis_plan *p) {
    int in = p->in, out = p->out;
    double scale = (double)((float)in - 0.0f) / out; // (double)(in1 - in0) / outSize with float box edges
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = (double *)malloc(sizeof(double) * (size_t)ksize);
    p->idx = (int *)malloc(sizeof(int) * 2 * (size_t)out);
    p->k = (int32_t *)calloc((size_t)out * (size_t)ksize, sizeof(int32_t));
    if (!w || !p->idx || !p->k) {
        free(w);
        PAD_LOG_ERROR("resize: out of memory for the coefficients of %d -> %d", in, out);
        return PAD_ERR_OOM;
    }
    p->ksize = ksize;
    for (int xx = 0; xx < out; xx++) {
        double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double v = pil_bicubic((x + xmin - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        int32_t *k = p->k + (size_t)xx * (size_t)ksize;
        for (int x = 0; x < xmax; x++) {
            double v = w[x];
            if (ww != 0.0) v /= ww;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PIL_PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PIL_PRECISION_BITS));
        }
        p->idx[2 * xx] = xmin;
        p->idx[2 * xx + 1] = xmax;
    }
    free(w);
    return PAD_OK;
}

// OpenCV's saturate_cast<short>(float): round to nearest, ties to even, then saturate.
static int32_t cv_round_short(float v) {
    float r = nearbyintf(v);
    if (r > 32767.0f) return 32767;
    if (r < -32768.0f) return -32768;
    return (int32_t)r;
}

// The INTER_LINEAR table of one axis (the dx loop of cv::hal::resize, also used for rows). For columns OpenCV sets
// (sx, fx) = (0, 0) left of the image and (in - 1, 0) right of it; for rows it keeps sy and fy and clamps the two
// row indices when reading. Both reduce to: indices clamped into [0, in), weights from the (possibly reset) fx.
static pad_status build_cv(axis_plan *p, bool columns) {
    int in = p->in, out = p->out;
    double inv_scale = (double)out / in;
    double scale = 1. / inv_scale;
    p->idx = (int *)malloc(sizeof(int) * 2 * (size_t)out);
    p->k = (int32_t *)malloc(sizeof(int32_t) * 2 * (size_t)out);
    if (!p->idx || !p->k) {
        PAD_LOG_ERROR("resize: out of memory for the coefficients of %d -> %d", in, out);
        return PAD_ERR_OOM;
    }
    for (int d = 0; d < out; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (columns) {
            if (s < 0) f = 0, s = 0;
            if (s >= in - 1) f = 0, s = in - 1;
        }
        int s0 = s < 0 ? 0 : (s >= in ? in - 1 : s);
        int s1 = s + 1 < 0 ? 0 : (s + 1 >= in ? in - 1 : s + 1);
        p->idx[2 * d] = s0;
        p->idx[2 * d + 1] = s1;
        p->k[2 * d] = cv_round_short((1.f - f) * 2048);
        p->k[2 * d + 1] = cv_round_short(f * 2048);
    }
    return PAD_OK;
}

// Pillow ImagingScaleAffine: xo = a[2] + a[0] * 0.5, then xo += a[0] per output pixel; COORD() truncates.
static pad_status build_pil_nn(axis_plan *p) {
    p->idx = (int *)malloc(sizeof(int) * (size_t)p->out);
    if (!p->idx) {
        PAD_LOG_ERROR("resize: out of memory for the nearest table of %d -> %d", p->in, p->out);
        return PAD_ERR_OOM;
    }
    double a0 = (double)((float)p->in - 0.0f) / p->out;
    double xo = 0.0 + a0 * 0.5;
    for (int x = 0; x < p->out; x++) {
        int xin = xo < 0.0 ? -1 : (int)xo;
        p->idx[x] = (xin >= 0 && xin < p->in) ? xin : -1;
        xo += a0;
    }
    return PAD_OK;
}

// OpenCV resizeNN: sx = min(cvFloor(x * ifx), in - 1) with ifx = 1. / (out / in).
static pad_status build_cv_nn(axis_plan *p) {
    p->idx = (int *)malloc(sizeof(int) * (size_t)p->out);
    if (!p->idx) {
        PAD_LOG_ERROR("resize: out of memory for the nearest table of %d -> %d", p->in, p->out);
        return PAD_ERR_OOM;
    }
    double fx = (double)p->out / p->in;
    double ifx = 1. / fx;
    for (int x = 0; x < p->out; x++) {
        int sx = (int)floor(x * ifx);
        p->idx[x] = sx < p->in - 1 ? sx : p->in - 1;
    }
    return PAD_OK;
}

// kind | 0x100 marks row tables of PLAN_CV (rows and columns clamp differently).
static pad_status get_plan(pad_resize_ws *ws, int kind, int in, int out, const axis_plan **res) {
    axis_plan *victim = &ws->plans[0];
    ws->clock++;
    for (int i = 0; i < N_PLANS; i++) {
        axis_plan *p = &ws->plans[i];
        if (p->kind == kind && p->in == in && p->out == out) {
            p->stamp = ws->clock;
            *res = p;
            return PAD_OK;
        }
        if (p->kind == 0 || (victim->kind != 0 && p->stamp < victim->stamp)) victim = p;
    }
    plan_clear(victim);
    victim->kind = kind;
    victim->in = in;
    victim->out = out;
    pad_status st;
    switch (kind & 0xff) {
    case PLAN_PIL:
        st = build_pil(victim);
        break;
    case PLAN_CV:
        st = build_cv(victim, (kind & 0x100) == 0);
        break;
    case PLAN_PIL_NN:
        st = build_pil_nn(victim);
        break;
    default:
        st = build_cv_nn(victim);
        break;
    }
    if (st != PAD_OK) {
        plan_clear(victim);
        return st;
    }
    victim->stamp = ws->clock;
    *res = victim;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// Argument checks and the temporary workspace for ws == NULL

static pad_status check_dims(const char *what, const void *src, int sw, int sh, int cn, const void *dst, int dw,
                             int dh) {
    if (!src || !dst || cn < 1 || cn > 4 || sw < 1 || sh < 1 || dw < 1 || dh < 1 || sw > PAD_IMAGE_MAX_DIM ||
        sh > PAD_IMAGE_MAX_DIM || dw > PAD_IMAGE_MAX_DIM || dh > PAD_IMAGE_MAX_DIM) {
        PAD_LOG_ERROR("%s: invalid resize %dx%dx%d -> %dx%d (sizes must be 1..%d, 1 to 4 channels)", what, sw, sh, cn,
                      dw, dh, PAD_IMAGE_MAX_DIM);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

typedef struct ws_guard {
    pad_resize_ws *ws, *owned;
} ws_guard;

static pad_status ws_acquire(ws_guard *g, pad_resize_ws *ws) {
    g->ws = ws;
    g->owned = NULL;
    if (ws) return PAD_OK;
    PAD_TRY(pad_resize_ws_init(&g->owned));
    g->ws = g->owned;
    return PAD_OK;
}

static void ws_release(ws_guard *g) {
    pad_resize_ws_free(g->owned);
}

// ----------------------------------------------------------------------------
// Pillow BICUBIC

static inline uint8_t pil_clip8(int32_t v) {
    if (v <= 0) return 0;
    v >>= PIL_PRECISION_BITS;
    return v > 255 ? 255 : (uint8_t)v;
}

// Horizontal pass: rows [r0, r1) of src, output columns [x0, x0 + cw) -> tmp (r1 - r0, cw, cn).
static void pil_hpass(const uint8_t *src, int sw, int cn, int r0, int r1, const axis_plan *px, int x0, int cw,
                      uint8_t *tmp) {
    const int ksize = px->ksize;
    const size_t sstride = (size_t)sw * (size_t)cn, tstride = (size_t)cw * (size_t)cn;
    const long long work = (long long)(r1 - r0) * cw * cn;
#pragma omp parallel for schedule(static) if (work > PAR_MIN_WORK)
    for (int y = r0; y < r1; y++) {
        const uint8_t *s = src + (size_t)y * sstride;
        uint8_t *t = tmp + (size_t)(y - r0) * tstride;
        for (int xx = 0; xx < cw; xx++) {
            const int xmin = px->idx[2 * (x0 + xx)], n = px->idx[2 * (x0 + xx) + 1];
            const int32_t *k = px->k + (size_t)(x0 + xx) * (size_t)ksize;
            const uint8_t *p = s + (size_t)xmin * (size_t)cn;
            if (cn == 3) {
                int32_t a0 = 1 << (PIL_PRECISION_BITS - 1), a1 = a0, a2 = a0;
                for (int x = 0; x < n; x++) {
                    a0 += p[3 * x] * k[x];
                    a1 += p[3 * x + 1] * k[x];
                    a2 += p[3 * x + 2] * k[x];
                }
                t[3 * xx] = pil_clip8(a0);
                t[3 * xx + 1] = pil_clip8(a1);
                t[3 * xx + 2] = pil_clip8(a2);
            } else {
                for (int c = 0; c < cn; c++) {
                    int32_t a = 1 << (PIL_PRECISION_BITS - 1);
                    for (int x = 0; x < n; x++)
                        a += p[cn * x + c] * k[x];
                    t[(size_t)cn * xx + c] = pil_clip8(a);
                }
            }
        }
    }
}

// Vertical pass: output rows [y0, y0 + ch) from vsrc, whose row 0 is source row `row0`; each output row takes
// `len` values starting at column offset `col0` (in values) of a vsrc row of `vstride` values.
static void pil_vpass(const uint8_t *vsrc, size_t vstride, int row0, size_t col0, size_t len, const axis_plan *py,
                      int y0, int ch, uint8_t *dst) {
    enum { CHUNK = 512 };
    const int ksize = py->ksize;
    const long long work = (long long)ch * (long long)len;
#pragma omp parallel for schedule(static) if (work > PAR_MIN_WORK)
    for (int yy = 0; yy < ch; yy++) {
        const int ymin = py->idx[2 * (y0 + yy)] - row0, n = py->idx[2 * (y0 + yy) + 1];
        const int32_t *k = py->k + (size_t)(y0 + yy) * (size_t)ksize;
        uint8_t *d = dst + (size_t)yy * len;
        int32_t acc[CHUNK];
        for (size_t c0 = 0; c0 < len; c0 += CHUNK) {
            const size_t m = len - c0 < CHUNK ? len - c0 : CHUNK;
            for (size_t i = 0; i < m; i++)
                acc[i] = 1 << (PIL_PRECISION_BITS - 1);
            for (int y = 0; y < n; y++) {
                const uint8_t *s = vsrc + (size_t)(ymin + y) * vstride + col0 + c0;
                const int32_t ky = k[y];
                for (size_t i = 0; i < m; i++)
                    acc[i] += s[i] * ky;
            }
            for (size_t i = 0; i < m; i++)
                d[c0 + i] = pil_clip8(acc[i]);
        }
    }
}

pad_status pad_resize_pil_bicubic_crop_u8(const uint8_t *src, int sw, int sh, int cn, int dw, int dh, int x0, int y0,
                                          int cw, int ch, uint8_t *dst, pad_resize_ws *ws) {
    PAD_TRY(check_dims("bicubic resize", src, sw, sh, cn, dst, dw, dh));
    if (x0 < 0 || y0 < 0 || cw < 1 || ch < 1 || x0 + cw > dw || y0 + ch > dh) {
        PAD_LOG_ERROR("bicubic resize: window %dx%d at (%d, %d) is not inside %dx%d", cw, ch, x0, y0, dw, dh);
        return PAD_ERR_INVALID_ARG;
    }
    const bool need_h = dw != sw, need_v = dh != sh;
    ws_guard g;
    PAD_TRY(ws_acquire(&g, ws));
    pad_status st = PAD_OK;
    const axis_plan *px = NULL, *py = NULL;
    if (need_h) PAD_TRY_GOTO(st, get_plan(g.ws, PLAN_PIL, sw, dw, &px), done);
    if (need_v) PAD_TRY_GOTO(st, get_plan(g.ws, PLAN_PIL, sh, dh, &py), done);

    // Source rows the window needs: all of [y0, y0 + ch) when the height does not change.
    int r0 = y0, r1 = y0 + ch;
    if (need_v) {
        r0 = py->idx[2 * y0];
        r1 = r0;
        for (int y = y0; y < y0 + ch; y++) {
            int e = py->idx[2 * y] + py->idx[2 * y + 1];
            if (e > r1) r1 = e;
        }
    }
    const size_t len = (size_t)cw * (size_t)cn;
    if (need_h) {
        uint8_t *tmp = need_v ? (uint8_t *)ws_buf(g.ws, BUF_TMP, (size_t)(r1 - r0) * len) : dst;
        if (!tmp) {
            st = PAD_ERR_OOM;
            goto done;
        }
        pil_hpass(src, sw, cn, r0, r1, px, x0, cw, tmp);
        if (need_v) pil_vpass(tmp, len, r0, 0, len, py, y0, ch, dst);
    } else if (need_v) {
        pil_vpass(src, (size_t)sw * (size_t)cn, 0, (size_t)x0 * (size_t)cn, len, py, y0, ch, dst);
    } else {
        for (int y = 0; y < ch; y++)
            memcpy(dst + (size_t)y * len, src + ((size_t)(y0 + y) * (size_t)sw + (size_t)x0) * (size_t)cn, len);
    }
done:
    ws_release(&g);
    return st;
}

pad_status pad_resize_pil_bicubic_u8(const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw, int dh,
                                     pad_resize_ws *ws) {
    return pad_resize_pil_bicubic_crop_u8(src, sw, sh, cn, dw, dh, 0, 0, dw, dh, dst, ws);
}

// ----------------------------------------------------------------------------
// OpenCV INTER_LINEAR

// Horizontal values of source row s for all dw * cn outputs (value index dx * cn + c), stored already shifted:
// OpenCV computes h = p0 * a0 + p1 * a1 (scale 2048, at most 255 * 2048) and the vertical pass only uses h >> 4,
// which fits int16 (this also lets the vertical pass use 16-bit multiply-high, as OpenCV's SIMD path does).
static void cv_hrow(const uint8_t *s, int cn, int dw, const axis_plan *px, int16_t *h) {
    const int *idx = px->idx;
    const int32_t *k = px->k;
    if (cn == 3) {
        for (int dx = 0; dx < dw; dx++) {
            const uint8_t *p0 = s + 3 * idx[2 * dx], *p1 = s + 3 * idx[2 * dx + 1];
            const int32_t a0 = k[2 * dx], a1 = k[2 * dx + 1];
            h[3 * dx] = (int16_t)((p0[0] * a0 + p1[0] * a1) >> 4);
            h[3 * dx + 1] = (int16_t)((p0[1] * a0 + p1[1] * a1) >> 4);
            h[3 * dx + 2] = (int16_t)((p0[2] * a0 + p1[2] * a1) >> 4);
        }
    } else {
        for (int dx = 0; dx < dw; dx++) {
            const uint8_t *p0 = s + cn * idx[2 * dx], *p1 = s + cn * idx[2 * dx + 1];
            const int32_t a0 = k[2 * dx], a1 = k[2 * dx + 1];
            for (int c = 0; c < cn; c++)
                h[cn * dx + c] = (int16_t)((p0[c] * a0 + p1[c] * a1) >> 4);
        }
    }
}

// Per-thread cache of two horizontal rows (OpenCV keeps the same ring of rows): consecutive output rows mostly
// share source rows.
typedef struct cv_rows {
    int16_t *buf[2];
    int row[2]; // source row held by each slot, -1 = none
} cv_rows;

static const int16_t *cv_get_row(cv_rows *c, int r, int keep, const uint8_t *src, size_t sstride, int cn, int dw,
                                 const axis_plan *px) {
    for (int i = 0; i < 2; i++)
        if (c->row[i] == r) return c->buf[i];
    int slot = c->row[0] == keep ? 1 : 0;
    cv_hrow(src + (size_t)r * sstride, cn, dw, px, c->buf[slot]);
    c->row[slot] = r;
    return c->buf[slot];
}

pad_status pad_resize_cv_linear_u8(const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw, int dh,
                                   pad_resize_ws *ws) {
    PAD_TRY(check_dims("linear resize", src, sw, sh, cn, dst, dw, dh));
    const size_t len = (size_t)dw * (size_t)cn;
    if (sw == dw && sh == dh) { // cv::resize copies
        memcpy(dst, src, len * (size_t)dh);
        return PAD_OK;
    }
    ws_guard g;
    PAD_TRY(ws_acquire(&g, ws));
    pad_status st = PAD_OK;
    const axis_plan *px = NULL, *py = NULL;
    PAD_TRY_GOTO(st, get_plan(g.ws, PLAN_CV, sw, dw, &px), done);
    PAD_TRY_GOTO(st, get_plan(g.ws, PLAN_CV | 0x100, sh, dh, &py), done);
    {
        const long long work = (long long)dh * (long long)len;
        int nt = 1;
#ifdef _OPENMP
        if (work > PAR_MIN_WORK) nt = omp_get_max_threads();
#endif
        int16_t *hbuf = (int16_t *)ws_buf(g.ws, BUF_TMP, sizeof(int16_t) * 2 * len * (size_t)nt);
        if (!hbuf) {
            st = PAD_ERR_OOM;
            goto done;
        }
        const size_t sstride = (size_t)sw * (size_t)cn;
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int tid = 0, nth = 1;
#ifdef _OPENMP
            tid = omp_get_thread_num();
            nth = omp_get_num_threads();
#endif
            cv_rows c = {{hbuf + 2 * len * (size_t)tid, hbuf + 2 * len * (size_t)tid + len}, {-1, -1}};
            const int y_begin = (int)((long long)dh * tid / nth), y_end = (int)((long long)dh * (tid + 1) / nth);
            for (int dy = y_begin; dy < y_end; dy++) {
                const int r0 = py->idx[2 * dy], r1 = py->idx[2 * dy + 1];
                const int16_t b0 = (int16_t)py->k[2 * dy], b1 = (int16_t)py->k[2 * dy + 1];
                const int16_t *h0 = cv_get_row(&c, r0, r1, src, sstride, cn, dw, px);
                const int16_t *h1 = cv_get_row(&c, r1, r0, src, sstride, cn, dw, px);
                uint8_t *d = dst + (size_t)dy * len;
                // ((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2, all terms non-negative
                for (size_t i = 0; i < len; i++) {
                    int16_t t0 = (int16_t)(((int32_t)b0 * h0[i]) >> 16), t1 = (int16_t)(((int32_t)b1 * h1[i]) >> 16);
                    d[i] = (uint8_t)((int16_t)(t0 + t1 + 2) >> 2);
                }
            }
        }
    }
done:
    ws_release(&g);
    return st;
}

// ----------------------------------------------------------------------------
// Nearest

static pad_status nearest(int kind, const char *what, const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw,
                          int dh, pad_resize_ws *ws) {
    PAD_TRY(check_dims(what, src, sw, sh, cn, dst, dw, dh));
    const size_t len = (size_t)dw * (size_t)cn;
    if (sw == dw && sh == dh) { // both libraries copy
        memcpy(dst, src, len * (size_t)dh);
        return PAD_OK;
    }
    ws_guard g;
    PAD_TRY(ws_acquire(&g, ws));
    pad_status st = PAD_OK;
    const axis_plan *px = NULL, *py = NULL;
    PAD_TRY_GOTO(st, get_plan(g.ws, kind, sw, dw, &px), done);
    PAD_TRY_GOTO(st, get_plan(g.ws, kind, sh, dh, &py), done);
    {
        const size_t sstride = (size_t)sw * (size_t)cn;
        const long long work = (long long)dh * (long long)len;
#pragma omp parallel for schedule(static) if (work > PAR_MIN_WORK)
        for (int y = 0; y < dh; y++) {
            uint8_t *d = dst + (size_t)y * len;
            const int sy = py->idx[y];
            if (sy < 0) {
                memset(d, 0, len);
                continue;
            }
            const uint8_t *s = src + (size_t)sy * sstride;
            for (int x = 0; x < dw; x++) {
                const int sx = px->idx[x];
                for (int c = 0; c < cn; c++)
                    d[(size_t)x * cn + c] = sx < 0 ? 0 : s[(size_t)sx * cn + c];
            }
        }
    }
done:
    ws_release(&g);
    return st;
}

pad_status pad_resize_nearest_pil_u8(const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw, int dh,
                                     pad_resize_ws *ws) {
    return nearest(PLAN_PIL_NN, "nearest resize (Pillow)", src, sw, sh, cn, dst, dw, dh, ws);
}

pad_status pad_resize_nearest_cv_u8(const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw, int dh,
                                    pad_resize_ws *ws) {
    return nearest(PLAN_CV_NN, "nearest resize (OpenCV)", src, sw, sh, cn, dst, dw, dh, ws);
}

// ----------------------------------------------------------------------------
// Image / mask convenience forms

pad_status pad_resize_pil_bicubic(const pad_image *src, int dw, int dh, pad_image *out) {
    memset(out, 0, sizeof *out);
    PAD_TRY(check_dims("bicubic resize", src ? src->rgb : NULL, src ? src->w : 0, src ? src->h : 0, 3, out, dw, dh));
    PAD_TRY(pad_image_alloc(out, dw, dh));
    pad_status st = pad_resize_pil_bicubic_u8(src->rgb, src->w, src->h, 3, out->rgb, dw, dh, NULL);
    if (st != PAD_OK) pad_image_free(out);
    return st;
}

pad_status pad_resize_cv_linear(const pad_image *src, int dw, int dh, pad_image *out) {
    memset(out, 0, sizeof *out);
    PAD_TRY(check_dims("linear resize", src ? src->rgb : NULL, src ? src->w : 0, src ? src->h : 0, 3, out, dw, dh));
    PAD_TRY(pad_image_alloc(out, dw, dh));
    pad_status st = pad_resize_cv_linear_u8(src->rgb, src->w, src->h, 3, out->rgb, dw, dh, NULL);
    if (st != PAD_OK) pad_image_free(out);
    return st;
}

pad_status pad_resize_nearest_pil(const pad_mask *src, int dw, int dh, pad_mask *out) {
    memset(out, 0, sizeof *out);
    PAD_TRY(
        check_dims("nearest resize (Pillow)", src ? src->m : NULL, src ? src->w : 0, src ? src->h : 0, 1, out, dw, dh));
    PAD_TRY(pad_mask_alloc(out, dw, dh));
    pad_status st = pad_resize_nearest_pil_u8(src->m, src->w, src->h, 1, out->m, dw, dh, NULL);
    if (st != PAD_OK) pad_mask_free(out);
    return st;
}

pad_status pad_resize_nearest_cv(const pad_mask *src, int dw, int dh, pad_mask *out) {
    memset(out, 0, sizeof *out);
    PAD_TRY(
        check_dims("nearest resize (OpenCV)", src ? src->m : NULL, src ? src->w : 0, src ? src->h : 0, 1, out, dw, dh));
    PAD_TRY(pad_mask_alloc(out, dw, dh));
    pad_status st = pad_resize_nearest_cv_u8(src->m, src->w, src->h, 1, out->m, dw, dh, NULL);
    if (st != PAD_OK) pad_mask_free(out);
    return st;
}
