/* synth.c - the deterministic synthetic dataset of synth.h: integer-only rendering of textures and objects, drawn
 * defects with exact masks, and the MVTec AD layout on disk (PNG via libstb's stbi_write_png). */
#include "synth.h"

#include "log.h"
#include "prng.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

// ----------------------------------------------------------------------------
// Names and options

enum { KIND_WEAVE = 0, KIND_GRID = 1, KIND_NUT = 2, KIND_SCREW = 3, N_KINDS = 4 };

static const char *const k_kind_names[N_KINDS] = {"weave", "grid", "nut", "screw"};
static const char *const k_types[N_KINDS][PAD_SYNTH_N_TYPES] = {
    {"scratch", "stain", "hole"},
    {"broken", "color", "scratch"},
    {"crack", "missing", "spot"},
    {"cut", "scratch", "spot"},
};

void pad_synth_opts_default(pad_synth_opts *o) {
    o->n_classes = 3;
    o->seed = 0;
    o->size = 256;
    o->n_train = 12;
    o->n_test_good = 10;
    o->n_test_bad = 10;
}

pad_status pad_synth_opts_check(const pad_synth_opts *o) {
    const char *bad = NULL;
    if (o->n_classes < 1 || o->n_classes > PAD_SYNTH_MAX_CLASSES)
        bad = "number of classes (1 .. 16)";
    else if (o->size < 64 || o->size > 2048)
        bad = "image size (64 .. 2048)";
    else if (o->n_train < 1 || o->n_train > 10000)
        bad = "train images per class (1 .. 10000)";
    else if (o->n_test_good < 0 || o->n_test_good > 10000)
        bad = "good test images per class (0 .. 10000)";
    else if (o->n_test_bad < 0 || o->n_test_bad > 10000)
        bad = "defective test images per class (0 .. 10000)";
    if (bad) {
        PAD_LOG_ERROR("synth: %s out of range", bad);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

const char *pad_synth_class_name(int index, char *buf, size_t cap) {
    if (index < N_KINDS)
        snprintf(buf, cap, "%s", k_kind_names[index % N_KINDS]);
    else
        snprintf(buf, cap, "%s_%d", k_kind_names[index % N_KINDS], index / N_KINDS + 1);
    return buf;
}

const char *pad_synth_defect_type(int index, int t) {
    if (index < 0 || t < 0 || t >= PAD_SYNTH_N_TYPES) return "?";
    return k_types[index % N_KINDS][t];
}

// ----------------------------------------------------------------------------
// Integer geometry

// cos and sin of 0, 15, ..., 75 degrees in Q12 (round(4096 * cos)); other angles by quarter turns.
static const int k_cos6[6] = {4096, 3956, 3547, 2896, 2048, 1060};
static const int k_sin6[6] = {0, 1060, 2048, 2896, 3547, 3956};

// cos / sin (Q12) of angle index k (k * 15 degrees, any integer k).
static void angle_q12(int k, int *c, int *s) {
    k = ((k % 24) + 24) % 24;
    int c0 = k_cos6[k % 6], s0 = k_sin6[k % 6];
    for (int q = 0; q < k / 6; q++) { // rotate by 90 degrees: (cos, sin) -> (-sin, cos)
        int t = c0;
        c0 = -s0;
        s0 = t;
    }
    *c = c0;
    *s = s0;
}

// floor(a / b) for b > 0.
static int64_t fdiv(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int umod(int a, int m) {
    int r = a % m;
    return r < 0 ? r + m : r;
}

static uint8_t clamp8(int v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// ----------------------------------------------------------------------------
// Scenes: the normal image

typedef struct scene {
    int kind, S;
    uint64_t key;               // pixel-noise key of this image
    int bright;                 // global brightness offset
    int col[3];                 // main colour (weave thread, grid ground, nut metal, screw steel)
    int col2[3];                // second colour (grid lines; object background)
    int ox, oy;                 // texture phase
    int cx, cy;                 // object centre
    int rot;                    // object rotation (angle index)
    int P, T, W;                // weave cell and thread period; grid period and line width
    int apo, rhole;             // nut apothem and hole radius
    int L, bw, hl, hw, tip, tp; // screw length, body width, head length / width, tip length, thread period
} scene;

// v * S / 256, rounded, at least 1.
static int sc(int S, int v) {
    int r = (int)(((int64_t)v * S + 128) / 256);
    return r < 1 ? 1 : r;
}

// Pixel noise in [-amp, amp) from the image key and the position.
static int noise(uint64_t key, int x, int y, int amp) {
    uint64_t h = pad_prng_mix(key ^ (((uint64_t)(uint32_t)y << 32) | (uint32_t)x));
    return ((int)(h >> 59) - 16) * amp / 16;
}

// Whether the point (X8 / 8, Y8 / 8) (coordinates in eighths of a pixel; pixel x spans [8x, 8x + 8)) is on the
// object. Textures cover the whole image.
static bool on_object_q(const scene *g, int X8, int Y8) {
    int64_t dx = X8 - 8 * g->cx - 4, dy = Y8 - 8 * g->cy - 4; // the centre is the middle of pixel (cx, cy)
    if (g->kind == KIND_NUT) {
        if (dx * dx + dy * dy <= (int64_t)64 * g->rhole * g->rhole) return false;
        for (int j = 0; j < 6; j++) {
            int c, s;
            angle_q12(g->rot + 4 * j, &c, &s);
            if (dx * c + dy * s > (int64_t)g->apo * 8 * 4096) return false;
        }
        return true;
    }
    if (g->kind == KIND_SCREW) {
        int c, s;
        angle_q12(g->rot, &c, &s);
        int64_t u = fdiv(dx * c + dy * s, 4096), v = fdiv(-dx * s + dy * c, 4096);
        int64_t av = v < 0 ? -v : v, half = 4 * (int64_t)g->L;
        if (u > half || u < -half) return false;
        if (u > half - 8 * g->hl) return 2 * av <= 8 * (int64_t)g->hw;                     // head
        if (u < -half + 8 * g->tip) return 2 * av * g->tip <= (int64_t)g->bw * (u + half); // tapered tip
        return 2 * av <= 8 * (int64_t)g->bw;
    }
    return true;
}

// The pixel centre is on the object (defects on objects are restricted to these pixels).
static bool on_object(const scene *g, int x, int y) {
    return on_object_q(g, 8 * x + 4, 8 * y + 4);
}

// Object coverage of pixel (x, y) in sixteenths (4x4 sub-samples): anti-aliased edges, so that a one-pixel shift
// of the object changes its outline smoothly.
static int coverage(const scene *g, int x, int y) {
    int n = 0;
    for (int sy = 0; sy < 4; sy++)
        for (int sx = 0; sx < 4; sx++)
            n += on_object_q(g, 8 * x + 2 * sx + 1, 8 * y + 2 * sy + 1);
    return n;
}

// The background colour at (x, y): texture ground (grid), object background, or the texture itself (weave).
static void background_px(const scene *g, int x, int y, int out[3]) {
    int n = noise(g->key, x, y, 5);
    for (int c = 0; c < 3; c++)
        out[c] = (g->kind == KIND_GRID ? g->col[c] : g->col2[c]) + g->bright + n;
}

static void object_px(const scene *g, int x, int y, int out[3]);

static void normal_px(const scene *g, int x, int y, int out[3]) {
    if (g->kind == KIND_NUT || g->kind == KIND_SCREW) {
        int cov = coverage(g, x, y);
        int bg[3];
        background_px(g, x, y, bg);
        if (cov == 0) {
            for (int c = 0; c < 3; c++)
                out[c] = bg[c];
            return;
        }
        object_px(g, x, y, out);
        for (int c = 0; c < 3; c++)
            out[c] = (out[c] * cov + bg[c] * (16 - cov)) / 16;
        return;
    }
    object_px(g, x, y, out);
}

// The texture, or the object's colour at (x, y) regardless of its outline.
static void object_px(const scene *g, int x, int y, int out[3]) {
    int v = 0;
    switch (g->kind) {
    case KIND_WEAVE: {
        int X = x + g->ox, Y = y + g->oy;
        int cell = ((X / g->P) + (Y / g->P)) & 1;
        int t = cell ? Y % g->T : X % g->T;
        int tri = t < g->T - t ? t : g->T - t; // 0 .. T/2
        v = tri * 60 / g->T - 15 - (t == 0 ? 20 : 0);
        int n = noise(g->key, x, y, 6);
        for (int c = 0; c < 3; c++)
            out[c] = g->col[c] + v + g->bright + n;
        return;
    }
    case KIND_GRID: {
        int X = x + g->ox, Y = y + g->oy;
        bool line = X % g->P < g->W || Y % g->P < g->W;
        int n = noise(g->key, x, y, 5);
        for (int c = 0; c < 3; c++)
            out[c] = (line ? g->col2[c] : g->col[c]) + g->bright + n;
        return;
    }
    case KIND_NUT: {
        int dx = x - g->cx, dy = y - g->cy;
        v = (int)fdiv((int64_t)(dx - dy) * 24, g->apo);
        int64_t r2 = (int64_t)dx * dx + (int64_t)dy * dy, ring = (int64_t)g->apo * 88 / 100;
        if (r2 > ring * ring) v -= 18; // chamfered rim
        int n = noise(g->key, x, y, 5);
        for (int c = 0; c < 3; c++)
            out[c] = g->col[c] + v + g->bright + n;
        return;
    }
    case KIND_SCREW: {
        int c, s;
        angle_q12(g->rot, &c, &s);
        int64_t dx = x - g->cx, dy = y - g->cy;
        int u = (int)fdiv(dx * c + dy * s, 4096), w = (int)fdiv(-dx * s + dy * c, 4096);
        int aw = w < 0 ? -w : w;
        v = 15 - aw * 60 / (g->hw > 0 ? g->hw : 1); // cylinder shading
        if (u <= g->L / 2 - g->hl) {                // threads on the body
            int t = umod(u, g->tp), tri = t < g->tp - t ? t : g->tp - t;
            v += tri * 40 / g->tp - 10;
        }
        int n = noise(g->key, x, y, 5);
        for (int k = 0; k < 3; k++)
            out[k] = g->col[k] + v + g->bright + n;
        return;
    }
    }
    background_px(g, x, y, out);
}

// Class-level colours (jittered by the seed) and sizes, then the per-image variation from `st`.
static void scene_init(scene *g, const pad_synth_opts *o, int cls, uint64_t *st) {
    memset(g, 0, sizeof *g);
    int S = o->size;
    g->kind = cls % N_KINDS;
    g->S = S;
    uint64_t cs = pad_prng_mix(o->seed * PAD_PRNG_GOLDEN + 0xC1A55ull) ^ pad_prng_mix((uint64_t)cls + 1);
    static const int base[N_KINDS][3] = {{150, 118, 86}, {205, 202, 192}, {184, 186, 194}, {160, 160, 168}};
    static const int base2[N_KINDS][3] = {{0, 0, 0}, {62, 72, 92}, {42, 46, 52}, {212, 206, 198}};
    for (int c = 0; c < 3; c++) {
        g->col[c] = base[g->kind][c] + pad_prng_range(&cs, -12, 12);
        g->col2[c] = base2[g->kind][c] + pad_prng_range(&cs, -8, 8);
    }
    // per image
    g->key = pad_prng_next(st);
    g->bright = pad_prng_range(st, -6, 6);
    switch (g->kind) {
    case KIND_WEAVE:
        g->P = sc(S, 12) & ~1;
        if (g->P < 6) g->P = 6;
        g->T = g->P / 2;
        g->ox = 2 * pad_prng_range(st, 0, g->P / 2 - 1);
        g->oy = 2 * pad_prng_range(st, 0, g->P / 2 - 1);
        break;
    case KIND_GRID:
        g->P = sc(S, 20) & ~1;
        if (g->P < 8) g->P = 8;
        g->W = sc(S, 3);
        g->ox = 2 * pad_prng_range(st, 0, g->P / 2 - 1);
        g->oy = 2 * pad_prng_range(st, 0, g->P / 2 - 1);
        break;
    case KIND_NUT:
        g->apo = sc(S, 68);
        g->rhole = sc(S, 26);
        g->cx = S / 2 + pad_prng_range(st, -sc(S, 1), sc(S, 1));
        g->cy = S / 2 + pad_prng_range(st, -sc(S, 1), sc(S, 1));
        g->rot = pad_prng_range(st, 0, 3); // the hexagon repeats every 4 steps (60 degrees)
        break;
    case KIND_SCREW:
        g->L = sc(S, 176);
        g->bw = sc(S, 26);
        g->hl = sc(S, 22);
        g->hw = sc(S, 46);
        g->tip = sc(S, 24);
        g->tp = sc(S, 8);
        if (g->tp < 4) g->tp = 4;
        g->cx = S / 2 + pad_prng_range(st, -sc(S, 1), sc(S, 1));
        g->cy = S / 2 + pad_prng_range(st, -sc(S, 1), sc(S, 1));
        g->rot = pad_prng_range(st, 2, 4); // 30, 45 or 60 degrees
        break;
    }
}

// ----------------------------------------------------------------------------
// Defects

enum { SH_LINE, SH_BLOB, SH_RECT };
enum { FX_PAINT, FX_TINT, FX_BACKGROUND };

typedef struct defect {
    int shape;
    int x0, y0, x1, y1, r; // line: segment and half-thickness
    int cx, cy, rx, ry;    // blob: centre and radii; rect: centre and half sizes along / across `rot`
    int rot;               // rect rotation (angle index)
    uint64_t bump;         // blob edge-noise key
    int fx;
    int color[3];
    int weight; // tint weight in eighths
} defect;

static bool in_shape(const defect *d, int x, int y) {
    switch (d->shape) {
    case SH_LINE: {
        int64_t ex = d->x1 - d->x0, ey = d->y1 - d->y0, wx = x - d->x0, wy = y - d->y0;
        int64_t L2 = ex * ex + ey * ey, t = wx * ex + wy * ey, r2 = (int64_t)d->r * d->r;
        if (L2 == 0 || t <= 0) return wx * wx + wy * wy <= r2;
        if (t >= L2) {
            int64_t px = x - d->x1, py = y - d->y1;
            return px * px + py * py <= r2;
        }
        int64_t cross = wx * ey - wy * ex;
        return cross * cross <= r2 * L2;
    }
    case SH_BLOB: {
        int64_t dx = x - d->cx, dy = y - d->cy, rx = d->rx, ry = d->ry;
        int64_t lhs = dx * dx * ry * ry + dy * dy * rx * rx;
        int64_t bump =
            48 + (int64_t)(pad_prng_mix(d->bump ^ (((uint64_t)(uint32_t)(y >> 2) << 32) | (uint32_t)(x >> 2))) >>
                           59); // 48 .. 79: a ragged edge
        return lhs * 64 <= rx * rx * ry * ry * bump;
    }
    case SH_RECT: {
        int c, s;
        angle_q12(d->rot, &c, &s);
        int64_t dx = x - d->cx, dy = y - d->cy;
        int64_t u = fdiv(dx * c + dy * s, 4096), v = fdiv(-dx * s + dy * c, 4096);
        return (u < 0 ? -u : u) <= d->rx && (v < 0 ? -v : v) <= d->ry;
    }
    }
    return false;
}

static void set_line(defect *d, int x0, int y0, int angle, int len, int r) {
    int c, s;
    angle_q12(angle, &c, &s);
    d->shape = SH_LINE;
    d->x0 = x0;
    d->y0 = y0;
    d->x1 = x0 + (int)fdiv((int64_t)len * c, 4096);
    d->y1 = y0 + (int)fdiv((int64_t)len * s, 4096);
    d->r = r;
}

static void set_blob(defect *d, int cx, int cy, int rx, int ry, uint64_t key) {
    d->shape = SH_BLOB;
    d->cx = cx;
    d->cy = cy;
    d->rx = rx;
    d->ry = ry;
    d->bump = key;
}

static void set_color(defect *d, int fx, int r, int g, int b, int weight) {
    d->fx = fx;
    d->color[0] = r;
    d->color[1] = g;
    d->color[2] = b;
    d->weight = weight;
}

// Point at distance `dist` from the object centre in direction `angle`.
static void polar(const scene *g, int angle, int dist, int *x, int *y) {
    int c, s;
    angle_q12(angle, &c, &s);
    *x = g->cx + (int)fdiv((int64_t)dist * c, 4096);
    *y = g->cy + (int)fdiv((int64_t)dist * s, 4096);
}

// Draws the defect's parameters. Every random draw is its own statement: the order of evaluation of function
// arguments is unspecified in C (gcc and clang differ), and it must not decide the pixels.
static void defect_pick(const scene *g, int type, uint64_t *st, defect *d) {
    memset(d, 0, sizeof *d);
    int S = g->S;
    uint64_t key = pad_prng_next(st);
    switch (g->kind) {
    case KIND_WEAVE: {
        int x = pad_prng_range(st, S / 6, 5 * S / 6);
        int y = pad_prng_range(st, S / 6, 5 * S / 6);
        if (type == 0) { // scratch: a bright thread-like line
            int a = pad_prng_range(st, 0, 23);
            int len = pad_prng_range(st, sc(S, 50), sc(S, 110));
            set_line(d, x, y, a, len, sc(S, 2));
            set_color(d, FX_PAINT, 236, 230, 216, 0);
        } else if (type == 1) { // stain: a dark brown tint
            int rx = pad_prng_range(st, sc(S, 12), sc(S, 24));
            int ry = pad_prng_range(st, sc(S, 12), sc(S, 24));
            set_blob(d, x, y, rx, ry, key);
            set_color(d, FX_TINT, 62, 38, 18, 5);
        } else { // hole
            int rx = pad_prng_range(st, sc(S, 9), sc(S, 16));
            int ry = pad_prng_range(st, sc(S, 9), sc(S, 16));
            set_blob(d, x, y, rx, ry, key);
            set_color(d, FX_PAINT, 22, 18, 15, 0);
        }
        return;
    }
    case KIND_GRID: {
        int x = pad_prng_range(st, S / 6, 5 * S / 6);
        int y = pad_prng_range(st, S / 6, 5 * S / 6);
        if (type == 0) { // broken: the lines erased around an intersection
            d->shape = SH_RECT;
            d->cx = (int)(fdiv(x + g->ox + g->P / 2, g->P) * g->P - g->ox) + g->W / 2;
            d->cy = (int)(fdiv(y + g->oy + g->P / 2, g->P) * g->P - g->oy) + g->W / 2;
            d->rx = pad_prng_range(st, sc(S, 7), sc(S, 11));
            d->ry = pad_prng_range(st, sc(S, 7), sc(S, 11));
            d->rot = 0;
            set_color(d, FX_BACKGROUND, 0, 0, 0, 0);
        } else if (type == 1) { // color: a red spot
            int rx = pad_prng_range(st, sc(S, 10), sc(S, 18));
            int ry = pad_prng_range(st, sc(S, 10), sc(S, 18));
            set_blob(d, x, y, rx, ry, key);
            set_color(d, FX_TINT, 210, 40, 40, 6);
        } else { // scratch: a dark line at an angle the grid never has (not a multiple of 90 degrees)
            int a = pad_prng_range(st, 1, 10);
            int len = pad_prng_range(st, sc(S, 50), sc(S, 110));
            set_line(d, x, y, a < 6 ? a : a + 1, len, sc(S, 2));
            set_color(d, FX_PAINT, 24, 24, 30, 0);
        }
        return;
    }
    case KIND_NUT: {
        int a = pad_prng_range(st, 0, 23);
        if (type == 0) { // crack: from the rim inwards
            int da = pad_prng_range(st, -1, 1);
            d->shape = SH_LINE;
            polar(g, a, g->apo * 96 / 100, &d->x0, &d->y0);
            polar(g, a + da, g->rhole + sc(S, 10), &d->x1, &d->y1);
            d->r = sc(S, 2);
            set_color(d, FX_PAINT, 18, 18, 20, 0);
        } else if (type == 1) { // missing: a bite out of the rim
            int x, y, rr = pad_prng_range(st, sc(S, 18), sc(S, 26));
            polar(g, a, g->apo, &x, &y);
            set_blob(d, x, y, rr, rr, key);
            set_color(d, FX_BACKGROUND, 0, 0, 0, 0);
        } else { // spot: rust on the face
            int x, y, dist = pad_prng_range(st, g->rhole + sc(S, 14), g->apo - sc(S, 12));
            int rx = pad_prng_range(st, sc(S, 8), sc(S, 14));
            int ry = pad_prng_range(st, sc(S, 8), sc(S, 14));
            polar(g, a, dist, &x, &y);
            set_blob(d, x, y, rx, ry, key);
            set_color(d, FX_TINT, 180, 84, 28, 6);
        }
        return;
    }
    case KIND_SCREW: {
        int x, y, u0 = pad_prng_range(st, -g->L / 2 + g->tip + sc(S, 6), g->L / 2 - g->hl - sc(S, 8));
        polar(g, g->rot, u0, &x, &y);
        if (type == 0) { // cut: a dark saw cut across the body
            d->shape = SH_RECT;
            d->cx = x;
            d->cy = y;
            d->rot = g->rot;
            d->rx = pad_prng_range(st, sc(S, 2), sc(S, 4));
            d->ry = g->bw;
            set_color(d, FX_PAINT, 34, 32, 30, 0);
        } else if (type == 1) { // scratch: a bright line across the body
            int len = g->bw * 2, a = g->rot + 6 + pad_prng_range(st, -1, 1);
            int cc, ss;
            angle_q12(a, &cc, &ss);
            set_line(d, x - (int)fdiv((int64_t)(len / 2) * cc, 4096), y - (int)fdiv((int64_t)(len / 2) * ss, 4096), a,
                     len, sc(S, 2));
            set_color(d, FX_PAINT, 242, 242, 248, 0);
        } else { // spot: rust on the body
            int rx = pad_prng_range(st, sc(S, 7), sc(S, 11));
            int ry = pad_prng_range(st, sc(S, 7), sc(S, 11));
            set_blob(d, x, y, rx, ry, key);
            set_color(d, FX_TINT, 170, 80, 30, 6);
        }
        return;
    }
    }
}

// Applies the defect to rgb (which holds the clean image); writes mask (0/255); returns the mask area.
static int64_t defect_apply(const scene *g, const defect *d, uint8_t *rgb, uint8_t *mask, bool apply) {
    int S = g->S;
    bool object = g->kind == KIND_NUT || g->kind == KIND_SCREW;
    int64_t area = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            size_t p = (size_t)y * (size_t)S + (size_t)x;
            if (!in_shape(d, x, y) || (object && !on_object(g, x, y))) {
                if (mask) mask[p] = 0;
                continue;
            }
            area++;
            if (mask) mask[p] = 255;
            if (!apply) continue;
            uint8_t *px = rgb + 3 * p;
            int out[3];
            if (d->fx == FX_BACKGROUND) {
                background_px(g, x, y, out);
            } else {
                int n = noise(g->key ^ 0xD3F3C7ull, x, y, 6);
                for (int c = 0; c < 3; c++)
                    out[c] = d->fx == FX_PAINT ? d->color[c] + n
                                               : (px[c] * (8 - d->weight) + d->color[c] * d->weight) / 8 + n;
            }
            for (int c = 0; c < 3; c++)
                px[c] = clamp8(out[c]);
        }
    return area;
}

// ----------------------------------------------------------------------------
// Rendering one image

pad_status pad_synth_render(const pad_synth_opts *o, int cls, pad_synth_split split, int index, uint8_t *rgb,
                            uint8_t *mask, uint8_t *clean, int *defect_type) {
    PAD_TRY(pad_synth_opts_check(o));
    if (cls < 0 || cls >= o->n_classes || index < 0 || index >= (1 << 24) || (int)split < 0 || (int)split > 2) {
        PAD_LOG_ERROR("synth: no image (class %d, split %d, index %d)", cls, (int)split, index);
        return PAD_ERR_INVALID_ARG;
    }
    int S = o->size;
    // one independent stream per image: the order of generation never matters
    uint64_t st = pad_prng_mix(o->seed * PAD_PRNG_GOLDEN + 1) ^
                  pad_prng_mix(((uint64_t)cls << 32) | ((uint64_t)split << 24) | (uint64_t)index);
    scene g;
    scene_init(&g, o, cls, &st);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int px[3];
            normal_px(&g, x, y, px);
            uint8_t *q = rgb + 3 * ((size_t)y * (size_t)S + (size_t)x);
            for (int c = 0; c < 3; c++)
                q[c] = clamp8(px[c]);
        }
    if (clean) memcpy(clean, rgb, (size_t)S * (size_t)S * 3);
    if (split != PAD_SYNTH_SPLIT_TEST_BAD) {
        if (mask) memset(mask, 0, (size_t)S * (size_t)S);
        if (defect_type) *defect_type = -1;
        return PAD_OK;
    }
    int type = index % PAD_SYNTH_N_TYPES;
    // re-draw until the defect covers enough pixels (at 256 px: 40); the last try is kept regardless
    int64_t min_area = (int64_t)S * S / 1600;
    defect d;
    for (int attempt = 0; attempt < 32; attempt++) {
        defect_pick(&g, type, &st, &d);
        if (defect_apply(&g, &d, rgb, NULL, false) >= min_area) break;
    }
    defect_apply(&g, &d, rgb, mask, true);
    if (defect_type) *defect_type = type;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// Files

// mkdir -p
static pad_status make_dirs(const char *path) {
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return PAD_ERR_OOM;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char save = p[i];
        p[i] = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            PAD_LOG_ERROR("%s: cannot create folder: %s", p, strerror(errno));
            free(p);
            return PAD_ERR_IO;
        }
        p[i] = save;
    }
    struct stat sb;
    bool ok = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (!ok) PAD_LOG_ERROR("%s: not a folder", path);
    free(p);
    return ok ? PAD_OK : PAD_ERR_IO;
}

static bool dir_nonempty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return false;
    bool any = false;
    struct dirent *e;
    while (!any && (e = readdir(d)) != NULL)
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

// Zero-padded width of file numbers up to max_index: at least 3 ("000"), so that names sort like numbers.
static int digits(int max_index) {
    int w = 1;
    for (int v = max_index; v >= 10; v /= 10)
        w++;
    return w < 3 ? 3 : w;
}

// i zero-padded to `width` digits (width <= 10) into buf[12].
static const char *padded(char *buf, int width, int i) {
    char tmp[12];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i > 0 && n < 11);
    int k = 0;
    for (int z = n; z < width && k < 10; z++)
        buf[k++] = '0';
    while (n > 0)
        buf[k++] = tmp[--n];
    buf[k] = 0;
    return buf;
}

// Writes a PNG under a temporary name in the same folder, then renames it into place.
static pad_status write_png_atomic(const char *path, int S, int comp, const uint8_t *px) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (!stbi_write_png(tmp, S, S, comp, px, S * comp)) {
        PAD_LOG_ERROR("%s: cannot write PNG", tmp);
        unlink(tmp);
        return PAD_ERR_IO;
    }
    if (rename(tmp, path) != 0) {
        PAD_LOG_ERROR("%s: cannot rename from %s: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return PAD_ERR_IO;
    }
    return PAD_OK;
}

pad_status pad_synth_write(const char *out_dir, const pad_synth_opts *o, pad_synth_summary *sum) {
    PAD_TRY(pad_synth_opts_check(o));
    if (!out_dir || !out_dir[0]) {
        PAD_LOG_ERROR("synth: empty output folder");
        return PAD_ERR_INVALID_ARG;
    }
    if (strlen(out_dir) > 3000) {
        PAD_LOG_ERROR("%.64s...: output path too long", out_dir);
        return PAD_ERR_INVALID_ARG;
    }
    pad_synth_summary s = {0, 0, 0, 0};
    int wtrain = digits(o->n_train - 1), wgood = digits(o->n_test_good - 1),
        wbad = digits((o->n_test_bad - 1) / PAD_SYNTH_N_TYPES);
    char path[4096], name[64], num[12];
    for (int c = 0; c < o->n_classes; c++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, pad_synth_class_name(c, name, sizeof name));
        if (dir_nonempty(path)) {
            PAD_LOG_ERROR("%s: already exists and is not empty (remove it or choose another output folder)", path);
            return PAD_ERR_INVALID_ARG;
        }
    }
    size_t S = (size_t)o->size;
    uint8_t *rgb = malloc(S * S * 3), *mask = malloc(S * S);
    if (!rgb || !mask) {
        free(rgb);
        free(mask);
        PAD_LOG_ERROR("synth: out of memory (%zux%zu images)", S, S);
        return PAD_ERR_OOM;
    }
    pad_status st = PAD_OK;
    for (int c = 0; c < o->n_classes && st == PAD_OK; c++) {
        pad_synth_class_name(c, name, sizeof name);
        snprintf(path, sizeof path, "%s/%s/train/good", out_dir, name);
        PAD_TRY_GOTO(st, make_dirs(path), done);
        snprintf(path, sizeof path, "%s/%s/test/good", out_dir, name);
        PAD_TRY_GOTO(st, make_dirs(path), done);
        for (int t = 0; t < PAD_SYNTH_N_TYPES && o->n_test_bad > t; t++) {
            snprintf(path, sizeof path, "%s/%s/test/%s", out_dir, name, pad_synth_defect_type(c, t));
            PAD_TRY_GOTO(st, make_dirs(path), done);
            snprintf(path, sizeof path, "%s/%s/ground_truth/%s", out_dir, name, pad_synth_defect_type(c, t));
            PAD_TRY_GOTO(st, make_dirs(path), done);
        }
        for (int i = 0; i < o->n_train; i++) {
            PAD_TRY_GOTO(st, pad_synth_render(o, c, PAD_SYNTH_SPLIT_TRAIN, i, rgb, NULL, NULL, NULL), done);
            snprintf(path, sizeof path, "%s/%s/train/good/%s.png", out_dir, name, padded(num, wtrain, i));
            PAD_TRY_GOTO(st, write_png_atomic(path, o->size, 3, rgb), done);
            s.n_train++;
        }
        for (int i = 0; i < o->n_test_good; i++) {
            PAD_TRY_GOTO(st, pad_synth_render(o, c, PAD_SYNTH_SPLIT_TEST_GOOD, i, rgb, NULL, NULL, NULL), done);
            snprintf(path, sizeof path, "%s/%s/test/good/%s.png", out_dir, name, padded(num, wgood, i));
            PAD_TRY_GOTO(st, write_png_atomic(path, o->size, 3, rgb), done);
            s.n_test++;
        }
        for (int i = 0; i < o->n_test_bad; i++) {
            int type = -1;
            PAD_TRY_GOTO(st, pad_synth_render(o, c, PAD_SYNTH_SPLIT_TEST_BAD, i, rgb, mask, NULL, &type), done);
            const char *tn = pad_synth_defect_type(c, type);
            int k = i / PAD_SYNTH_N_TYPES;
            snprintf(path, sizeof path, "%s/%s/test/%s/%s.png", out_dir, name, tn, padded(num, wbad, k));
            PAD_TRY_GOTO(st, write_png_atomic(path, o->size, 3, rgb), done);
            snprintf(path, sizeof path, "%s/%s/ground_truth/%s/%s_mask.png", out_dir, name, tn, padded(num, wbad, k));
            PAD_TRY_GOTO(st, write_png_atomic(path, o->size, 1, mask), done);
            s.n_test++;
            s.n_test_bad++;
        }
        s.n_classes++;
    }
done:
    free(rgb);
    free(mask);
    if (sum) *sum = s;
    return st;
}
