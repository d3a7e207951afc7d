/* test_image.c - image.h against Pillow 9.4 / OpenCV 4.6 / torch goldens (tests/ref/make_image_fixtures.py):
 * bit-exact resizes (Pillow bicubic and nearest, OpenCV linear and nearest) on many sizes, the three --preprocess
 * pipelines (uint8 exact, floats within 1e-6), ground-truth masks, decoding of PNG/JPEG variants, mask loading,
 * error messages, PNG writing and heatmap overlays. Source pictures are regenerated here from the generator's
 * formula (synth / synth_mask), so only the expected outputs are committed. */
#include "check.h"
#include "image.h"
#include "log.h"
#include "st_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define FIXTURE "image_ref.safetensors"
#define SUB     16 // the generator's subsampling stride

// ----------------------------------------------------------------------------
// Sources: the generator's synth() and synth_mask()

static uint32_t mix(uint32_t x, uint32_t y, uint32_t c, uint32_t seed) {
    uint32_t h = (x * 0x9E3779B1u) ^ (y * 0x85EBCA77u) ^ (c * 0xC2B2AE3Du) ^ (seed * 0x27D4EB2Fu);
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    return h;
}

static uint8_t *synth(int w, int h, int cn, int seed) {
    uint8_t *p = malloc((size_t)w * h * cn);
    cr_assert(p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < cn; c++) {
                int region = ((x >> 4) + (y >> 4) * 3 + c + seed) % 4, v;
                if (region == 0)
                    v = (int)(mix((uint32_t)x, (uint32_t)y, (uint32_t)c, (uint32_t)seed) >> 24);
                else if (region == 1)
                    v = (x * 3 + y * 2 + c * 40) & 255;
                else if (region == 2)
                    v = ((x ^ y) & 1) ? 255 : 0;
                else
                    v = 128 + c * 30;
                p[((size_t)y * w + x) * cn + c] = (uint8_t)v;
            }
    return p;
}

static pad_mask synth_mask(int w, int h, int seed) {
    pad_mask m;
    cr_assert(pad_mask_alloc(&m, w, h) == PAD_OK);
    long long cx = w * 2 / 5, cy = h / 2, a = w / 4 > 1 ? w / 4 : 1, b = h / 5 > 1 ? h / 5 : 1;
    int rx = w * 3 / 4, rw = w / 10 > 1 ? w / 10 : 1, ry = h / 8, rh = h / 6 > 1 ? h / 6 : 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            bool ell = (x - cx) * (x - cx) * b * b + (y - cy) * (y - cy) * a * a < a * a * b * b;
            bool rect = x >= rx && x < rx + rw && y >= ry && y < ry + rh;
            bool dot = (mix((uint32_t)x, (uint32_t)y, 7, (uint32_t)seed) >> 20) < 40;
            m.m[(size_t)y * w + x] = ell || rect || dot;
        }
    return m;
}

// ----------------------------------------------------------------------------
// Fixture access

static const pad_st_tensor *tensor(pad_st_file *f, const char *name, pad_dtype dt) {
    const pad_st_tensor *t = pad_st_find(f, name);
    if (t) cr_assert(t->dtype == dt, "%s: dtype %s", name, pad_dtype_name(t->dtype));
    return t;
}

static bool params(pad_st_file *f, const char *key, int *p, int n) {
    char name[128];
    snprintf(name, sizeof name, "%s.params", key);
    const pad_st_tensor *t = tensor(f, name, PAD_DTYPE_I32);
    if (!t) return false;
    cr_assert(t->numel == n, "%s: %lld params", name, (long long)t->numel);
    for (int i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, t->data + 4 * i, 4);
        p[i] = v;
    }
    return true;
}

static uint32_t crc_of(const void *p, size_t n) {
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)p, (uInt)n);
}

static int64_t fixture_crc(pad_st_file *f, const char *name) {
    const pad_st_tensor *t = tensor(f, name, PAD_DTYPE_I64);
    cr_assert(t && t->numel == 1, "missing %s", name);
    int64_t v;
    memcpy(&v, t->data, 8);
    return v;
}

// Compares an 8-bit (h, w, cn) result with "<key>.out", or with "<key>.sub" and "<key>.crc".
static void expect_u8(pad_st_file *f, const char *key, const uint8_t *got, int w, int h, int cn) {
    char name[128];
    snprintf(name, sizeof name, "%s.out", key);
    const pad_st_tensor *t = tensor(f, name, PAD_DTYPE_U8);
    if (t) {
        cr_assert(t->numel == (int64_t)w * h * cn, "%s: %lld values, got %dx%dx%d", key, (long long)t->numel, w, h, cn);
        size_t bad = 0, first = 0;
        int maxd = 0;
        for (size_t i = 0; i < (size_t)t->numel; i++) {
            int d = abs((int)got[i] - (int)t->data[i]);
            if (d && !bad++) first = i;
            if (d > maxd) maxd = d;
        }
        cr_assert(bad == 0, "%s: %zu of %lld values differ (max %d); first at y=%zu x=%zu c=%zu: got %d want %d", key,
                  bad, (long long)t->numel, maxd, first / cn / w, first / cn % w, first % cn, got[first],
                  t->data[first]);
        return;
    }
    snprintf(name, sizeof name, "%s.sub", key);
    t = tensor(f, name, PAD_DTYPE_U8);
    cr_assert(t, "%s: no .out or .sub", key);
    int sh = (h + SUB - 1) / SUB, sw = (w + SUB - 1) / SUB;
    cr_assert(t->numel == (int64_t)sh * sw * cn, "%s: subsample size", key);
    for (int y = 0; y < sh; y++)
        for (int x = 0; x < sw; x++)
            for (int c = 0; c < cn; c++) {
                uint8_t g = got[((size_t)y * SUB * w + (size_t)x * SUB) * cn + c];
                uint8_t e = t->data[((size_t)y * sw + x) * cn + c];
                cr_assert(g == e, "%s: y=%d x=%d c=%d: got %d want %d", key, y * SUB, x * SUB, c, g, e);
            }
    snprintf(name, sizeof name, "%s.crc", key);
    uint32_t want = (uint32_t)fixture_crc(f, name);
    cr_assert(crc_of(got, (size_t)w * h * cn) == want,
              "%s: subsample matches but the CRC-32 of the %dx%dx%d output "
              "differs (some pixel off the subsampling grid)",
              key, w, h, cn);
}

typedef pad_status (*resize_fn)(const uint8_t *, int, int, int, uint8_t *, int, int, pad_resize_ws *);

// Runs every "<group>.<i>" case with one shared workspace (exercises the table cache and its eviction).
static int run_resize_group(const char *group, resize_fn fn) {
    pad_st_file *f = pad_fixture_open(FIXTURE);
    pad_resize_ws *ws;
    cr_assert(pad_resize_ws_init(&ws) == PAD_OK);
    int i = 0;
    for (;; i++) {
        char key[64];
        int p[6];
        snprintf(key, sizeof key, "%s.%d", group, i);
        if (!params(f, key, p, 6)) break;
        int sw = p[0], sh = p[1], cn = p[2], dw = p[3], dh = p[4], seed = p[5];
        uint8_t *src = synth(sw, sh, cn, seed);
        uint8_t *dst = malloc((size_t)dw * dh * cn);
        cr_assert(fn(src, sw, sh, cn, dst, dw, dh, ws) == PAD_OK, "%s failed", key);
        char what[160];
        snprintf(what, sizeof what, "%s (%dx%dx%d -> %dx%d)", key, sw, sh, cn, dw, dh);
        expect_u8(f, key, dst, dw, dh, cn);
        // and once more without a workspace (fresh tables)
        memset(dst, 0xAB, (size_t)dw * dh * cn);
        cr_assert(fn(src, sw, sh, cn, dst, dw, dh, NULL) == PAD_OK);
        expect_u8(f, key, dst, dw, dh, cn);
        free(src);
        free(dst);
    }
    pad_resize_ws_free(ws);
    pad_st_close(f);
    return i;
}

// ----------------------------------------------------------------------------
// Resizes

Test(image, pil_bicubic_matches_pillow) {
    cr_assert(run_resize_group("pil_bicubic", pad_resize_pil_bicubic_u8) >= 20);
}

Test(image, cv_linear_matches_opencv) {
    cr_assert(run_resize_group("cv_linear", pad_resize_cv_linear_u8) >= 16);
}

Test(image, nearest_matches_pillow_and_opencv) {
    cr_assert(run_resize_group("pil_nearest", pad_resize_nearest_pil_u8) >= 9);
    cr_assert(run_resize_group("cv_nearest", pad_resize_nearest_cv_u8) >= 9);
}

Test(image, crop_equals_resize_then_crop) {
    uint8_t *src = synth(333, 250, 3, 17);
    uint8_t *full = malloc(319 * 240 * 3), *win = malloc(100 * 50 * 3);
    cr_assert(pad_resize_pil_bicubic_u8(src, 333, 250, 3, full, 319, 240, NULL) == PAD_OK);
    const int x0s[] = {0, 219, 40, 7}, y0s[] = {0, 190, 100, 3};
    for (int k = 0; k < 4; k++) {
        cr_assert(pad_resize_pil_bicubic_crop_u8(src, 333, 250, 3, 319, 240, x0s[k], y0s[k], 100, 50, win, NULL) ==
                  PAD_OK);
        for (int y = 0; y < 50; y++)
            cr_assert(memcmp(win + y * 300, full + ((size_t)(y0s[k] + y) * 319 + x0s[k]) * 3, 300) == 0,
                      "window %d row %d differs", k, y);
    }
    pad_log_set_level(PAD_LOG_LEVEL_ERROR + 1); // the expected error below
    cr_assert(pad_resize_pil_bicubic_crop_u8(src, 333, 250, 3, 319, 240, 220, 0, 100, 50, win, NULL) ==
              PAD_ERR_INVALID_ARG);
    free(src);
    free(full);
    free(win);
}

Test(image, resizes_do_not_depend_on_thread_count) {
#ifdef _OPENMP
    uint8_t *src = synth(1500, 1000, 3, 3);
    uint8_t *a = malloc(1024 * 1024 * 3), *b = malloc(1024 * 1024 * 3);
    omp_set_num_threads(1);
    cr_assert(pad_resize_cv_linear_u8(src, 1500, 1000, 3, a, 1024, 1024, NULL) == PAD_OK);
    omp_set_num_threads(5);
    cr_assert(pad_resize_cv_linear_u8(src, 1500, 1000, 3, b, 1024, 1024, NULL) == PAD_OK);
    cr_assert(memcmp(a, b, 1024 * 1024 * 3) == 0);
    omp_set_num_threads(1);
    cr_assert(pad_resize_pil_bicubic_u8(src, 1500, 1000, 3, a, 240, 240, NULL) == PAD_OK);
    omp_set_num_threads(5);
    cr_assert(pad_resize_pil_bicubic_u8(src, 1500, 1000, 3, b, 240, 240, NULL) == PAD_OK);
    cr_assert(memcmp(a, b, 240 * 240 * 3) == 0);
    free(src);
    free(a);
    free(b);
#else
    cr_skip_test("built without OpenMP");
#endif
}

Test(image, resize_rejects_bad_arguments) {
    pad_log_set_level(PAD_LOG_LEVEL_ERROR + 1); // silence the expected errors
    uint8_t px[12] = {0}, out[12];
    cr_assert(pad_resize_pil_bicubic_u8(px, 2, 2, 3, out, 0, 2, NULL) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_resize_cv_linear_u8(px, 2, 2, 5, out, 2, 2, NULL) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_resize_nearest_cv_u8(NULL, 2, 2, 1, out, 2, 2, NULL) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_resize_nearest_pil_u8(px, -1, 2, 1, out, 2, 2, NULL) == PAD_ERR_INVALID_ARG);
    pad_image img = {0}, o;
    cr_assert(pad_resize_pil_bicubic(&img, 4, 4, &o) == PAD_ERR_INVALID_ARG);
    cr_assert(o.rgb == NULL);
}

Test(image, convenience_forms_allocate) {
    pad_image img, o;
    uint8_t *src = synth(37, 23, 3, 1);
    cr_assert(pad_image_from_rgb(&img, src, 37, 23) == PAD_OK);
    cr_assert(pad_resize_pil_bicubic(&img, 40, 30, &o) == PAD_OK);
    pad_st_file *f = pad_fixture_open(FIXTURE);
    expect_u8(f, "pil_bicubic.0", o.rgb, 40, 30, 3);
    pad_image_free(&o);
    cr_assert(o.rgb == NULL && o.w == 0);
    pad_image_free(&img);
    free(src);
    src = synth(13, 9, 3, 1);
    cr_assert(pad_image_from_rgb(&img, src, 13, 9) == PAD_OK);
    cr_assert(pad_resize_cv_linear(&img, 31, 17, &o) == PAD_OK);
    expect_u8(f, "cv_linear.0", o.rgb, 31, 17, 3);
    pad_image_free(&o);
    pad_image_free(&img);
    free(src);
    src = synth(37, 23, 1, 1);
    pad_mask m = {37, 23, src}, mo;
    cr_assert(pad_resize_nearest_pil(&m, 100, 100, &mo) == PAD_OK);
    expect_u8(f, "pil_nearest.0", mo.m, 100, 100, 1);
    pad_mask_free(&mo);
    cr_assert(pad_resize_nearest_cv(&m, 100, 100, &mo) == PAD_OK);
    expect_u8(f, "cv_nearest.0", mo.m, 100, 100, 1);
    pad_mask_free(&mo);
    free(src);
    pad_st_close(f);
}

// ----------------------------------------------------------------------------
// Preprocessing

Test(image, normalisation_matches_torch) {
    pad_st_file *f = pad_fixture_open(FIXTURE);
    float *lut = pad_fixture_f32(f, "normalize_lut", 2, (int64_t[]){3, 256});
    uint8_t px[256 * 3];
    for (int v = 0; v < 256; v++)
        px[3 * v] = px[3 * v + 1] = px[3 * v + 2] = (uint8_t)v;
    float out[3 * 256];
    pad_normalize_clip(px, 256, false, out);
    PAD_ASSERT_CLOSE("ToTensor+Normalize", out, lut, 3 * 256, 0, 0); // bit-identical float32 arithmetic
    // bgr: channel 0 holds blue, normalised with the red statistics
    for (int v = 0; v < 256; v++)
        px[3 * v] = 0, px[3 * v + 1] = 7, px[3 * v + 2] = (uint8_t)v;
    pad_normalize_clip(px, 256, true, out);
    for (int v = 0; v < 256; v++) {
        cr_assert(out[v] == lut[v], "bgr channel 0, value %d", v);
        cr_assert(out[256 + v] == lut[256 + 7]);
        cr_assert(out[512 + v] == lut[512 + 0]);
    }
    free(lut);
    pad_st_close(f);
}

Test(image, preprocess_matches_python_for_every_mode) {
    pad_st_file *f = pad_fixture_open(FIXTURE);
    float *lut = pad_fixture_f32(f, "normalize_lut", 2, (int64_t[]){3, 256});
    pad_resize_ws *ws;
    cr_assert(pad_resize_ws_init(&ws) == PAD_OK);
    int i = 0, seen[3] = {0, 0, 0};
    for (;; i++) {
        char key[64], name[96];
        int p[6];
        snprintf(key, sizeof key, "preprocess.%d", i);
        if (!params(f, key, p, 6)) break;
        int sw = p[0], sh = p[1], S = p[3], bgr = p[4], seed = p[5];
        pad_preprocess_mode mode = (pad_preprocess_mode)p[2];
        seen[mode]++;
        uint8_t *src = synth(sw, sh, 3, seed);
        pad_image img;
        cr_assert(pad_image_from_rgb(&img, src, sw, sh) == PAD_OK);
        const size_t n = (size_t)S * S;
        uint8_t *u8 = malloc(3 * n);
        float *x = malloc(3 * n * sizeof(float)), *y = malloc(3 * n * sizeof(float));
        cr_assert(pad_preprocess_u8(&img, mode, S, u8, ws) == PAD_OK);
        snprintf(name, sizeof name, "%s.u8_crc", key);
        cr_assert(crc_of(u8, 3 * n) == (uint32_t)fixture_crc(f, name), "%s (%s %dx%d -> %d): 8-bit image differs", key,
                  pad_preprocess_mode_str(mode), sw, sh, S);
        cr_assert(pad_preprocess_ws(&img, mode, S, bgr != 0, x, ws) == PAD_OK);
        cr_assert(pad_preprocess(&img, mode, S, bgr != 0, y) == PAD_OK);
        cr_assert(memcmp(x, y, 3 * n * sizeof(float)) == 0, "%s: workspace and one-shot forms differ", key);
        snprintf(name, sizeof name, "%s.out", key);
        if (pad_st_find(f, name)) {
            float *want = pad_fixture_f32(f, name, 3, (int64_t[]){3, S, S});
            PAD_ASSERT_CLOSE(key, x, want, 3 * n, 1e-6, 0);
            free(want);
        } else {
            snprintf(name, sizeof name, "%s.sub", key);
            int s = (S + SUB - 1) / SUB;
            float *want = pad_fixture_f32(f, name, 3, (int64_t[]){3, s, s});
            for (int c = 0; c < 3; c++)
                for (int yy = 0; yy < s; yy++)
                    for (int xx = 0; xx < s; xx++) {
                        float g = x[(size_t)c * n + (size_t)yy * SUB * S + (size_t)xx * SUB];
                        float e = want[((size_t)c * s + yy) * s + xx];
                        cr_assert(fabsf(g - e) <= 1e-6f, "%s: c=%d y=%d x=%d: got %.9g want %.9g", key, c, yy * SUB,
                                  xx * SUB, g, e);
                    }
            free(want);
            // every pixel: torch's normalisation of the (CRC-checked) 8-bit image
            for (int c = 0; c < 3; c++)
                for (size_t k = 0; k < n; k++) {
                    float e = lut[c * 256 + u8[3 * k + (size_t)(bgr ? 2 - c : c)]];
                    cr_assert(fabsf(x[(size_t)c * n + k] - e) <= 1e-6f, "%s: c=%d pixel %zu", key, c, k);
                }
        }
        pad_image_free(&img);
        free(src);
        free(u8);
        free(x);
        free(y);
    }
    cr_assert(i >= 25 && seen[0] && seen[1] && seen[2]);
    pad_resize_ws_free(ws);
    free(lut);
    pad_st_close(f);
}

Test(image, openclip_geometry_follows_torchvision) {
    int rw, rh, l, t;
    pad_openclip_geometry(320, 240, 240, &rw, &rh, &l, &t);
    cr_assert(rw == 320 && rh == 240 && l == 40 && t == 0);
    pad_openclip_geometry(240, 320, 240, &rw, &rh, &l, &t);
    cr_assert(rw == 240 && rh == 320 && l == 0 && t == 40);
    pad_openclip_geometry(333, 250, 240, &rw, &rh, &l, &t); // int(319.68) = 319, round(39.5) = 40
    cr_assert(rw == 319 && rh == 240 && l == 40 && t == 0);
    pad_openclip_geometry(245, 240, 240, &rw, &rh, &l, &t); // round(2.5) = 2 (half to even)
    cr_assert(rw == 245 && l == 2);
    pad_openclip_geometry(47, 33, 32, &rw, &rh, &l, &t); // int(45.57) = 45, round(6.5) = 6
    cr_assert(rw == 45 && rh == 32 && l == 6 && t == 0);
    pad_openclip_geometry(241, 300, 240, &rw, &rh, &l, &t); // int(298.75) = 298, round(29) = 29
    cr_assert(rw == 240 && rh == 298 && t == 29);
}

Test(image, preprocess_mode_names) {
    pad_preprocess_mode m;
    cr_assert(pad_preprocess_mode_parse("squash", &m) == PAD_OK && m == PAD_PREPROCESS_SQUASH);
    cr_assert(pad_preprocess_mode_parse("openclip", &m) == PAD_OK && m == PAD_PREPROCESS_OPENCLIP);
    cr_assert(pad_preprocess_mode_parse("official", &m) == PAD_OK && m == PAD_PREPROCESS_OFFICIAL);
    pad_log_set_level(PAD_LOG_LEVEL_ERROR + 1);
    cr_assert(pad_preprocess_mode_parse("Squash", &m) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_preprocess_mode_parse("", &m) == PAD_ERR_INVALID_ARG);
    cr_assert_str_eq(pad_preprocess_mode_str(PAD_PREPROCESS_OFFICIAL), "official");
}

Test(image, masks_at_metric_resolution_match_python) {
    pad_st_file *f = pad_fixture_open(FIXTURE);
    int i = 0;
    for (;; i++) {
        char key[64];
        int p[5];
        snprintf(key, sizeof key, "mask.%d", i);
        if (!params(f, key, p, 5)) break;
        pad_mask m = synth_mask(p[0], p[1], p[4]), out;
        cr_assert(pad_mask_preprocess(&m, (pad_preprocess_mode)p[2], p[3], &out) == PAD_OK);
        cr_assert(out.w == p[3] && out.h == p[3]);
        expect_u8(f, key, out.m, p[3], p[3], 1);
        pad_mask_free(&m);
        pad_mask_free(&out);
    }
    cr_assert(i >= 10);
    // a good image's all-zero mask of any size stays zero
    pad_mask z, out;
    cr_assert(pad_mask_alloc(&z, 17, 17) == PAD_OK);
    cr_assert(pad_mask_preprocess(&z, PAD_PREPROCESS_OFFICIAL, 400, &out) == PAD_OK);
    for (int k = 0; k < 400 * 400; k++)
        cr_assert(out.m[k] == 0);
    pad_mask_free(&z);
    pad_mask_free(&out);
    pad_st_close(f);
}

// ----------------------------------------------------------------------------
// Decoding

static void expect_decoded(pad_st_file *f, const char *file, int max_abs, double max_mean) {
    char path[600], name[96];
    snprintf(path, sizeof path, "%s/images/%s", PAD_FIXTURE_DIR, file);
    snprintf(name, sizeof name, "decode.%s", file);
    pad_image img;
    cr_assert(pad_image_load(&img, path) == PAD_OK, "%s does not decode", file);
    const pad_st_tensor *t = tensor(f, name, PAD_DTYPE_U8);
    cr_assert(t && t->ndim == 3 && t->shape[2] == 3, "%s: no reference", file);
    cr_assert(img.h == t->shape[0] && img.w == t->shape[1], "%s: size %dx%d, want %lldx%lld", file, img.w, img.h,
              (long long)t->shape[1], (long long)t->shape[0]);
    int maxd = 0;
    double sum = 0;
    for (int64_t k = 0; k < t->numel; k++) {
        int d = abs((int)img.rgb[k] - (int)t->data[k]);
        sum += d;
        if (d > maxd) maxd = d;
    }
    double mean = sum / (double)t->numel;
    cr_log_info("%s: max |ours - reference| = %d, mean %.3f", file, maxd, mean);
    cr_assert(maxd <= max_abs && mean <= max_mean, "%s: max diff %d (limit %d), mean %.3f (limit %.3f)", file, maxd,
              max_abs, mean, max_mean);
    pad_image_free(&img);
}

Test(image, decodes_png_and_other_formats_like_opencv) {
    pad_st_file *f = pad_fixture_open(FIXTURE);
    const char *files[] = {"rgb8.png",    "rgb16.png",    "gray8.png", "gray16.png", "gray_alpha.png", "rgba.png",
                           "palette.png", "palette4.png", "bits1.png", "adam7.png",  "rgb_trns.png",   "rgb.bmp"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++)
        expect_decoded(f, files[k], 0, 0);
    pad_st_close(f);
}

Test(image, decodes_jpeg_exactly_like_opencv) {
    // libjpeg-turbo with the library defaults, as Pillow and OpenCV use it: the same pixels
    pad_st_file *f = pad_fixture_open(FIXTURE);
    const char *files[] = {"q95_444.jpg", "q75_420.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++)
        expect_decoded(f, files[k], 0, 0);
    pad_st_close(f);
}

Test(image, masks_binarise_at_full_bit_depth) {
    pad_st_file *f = pad_fixture_open(FIXTURE);
    const char *files[] = {"mask8.png", "mask16.png", "mask_rgb.png"};
    for (int k = 0; k < 3; k++) {
        char path[600], name[96];
        snprintf(path, sizeof path, "%s/images/%s", PAD_FIXTURE_DIR, files[k]);
        snprintf(name, sizeof name, "mask.%s", files[k]);
        pad_mask m;
        cr_assert(pad_mask_load(&m, path) == PAD_OK, "%s", files[k]);
        const pad_st_tensor *t = tensor(f, name, PAD_DTYPE_U8);
        cr_assert(t && m.h == t->shape[0] && m.w == t->shape[1], "%s: size", files[k]);
        cr_assert(memcmp(m.m, t->data, (size_t)t->numel) == 0, "%s: values differ", files[k]);
        pad_mask_free(&m);
    }
    // an image file read as a mask: any nonzero colour channel
    char path[600];
    snprintf(path, sizeof path, "%s/images/rgba.png", PAD_FIXTURE_DIR);
    pad_mask m;
    pad_image img;
    cr_assert(pad_mask_load(&m, path) == PAD_OK && pad_image_load(&img, path) == PAD_OK);
    for (int k = 0; k < m.w * m.h; k++)
        cr_assert(m.m[k] == (img.rgb[3 * k] || img.rgb[3 * k + 1] || img.rgb[3 * k + 2]));
    pad_mask_free(&m);
    pad_image_free(&img);
    pad_st_close(f);
}

// ----------------------------------------------------------------------------
// Errors

static void expect_load_error(const char *path, pad_status want, const char *needle) {
    const char *logged = pad_test_log_text();
    pad_test_log_start_all();
    pad_image img = {5, 5, (uint8_t *)1};
    pad_status st = pad_image_load(&img, path);
    pad_test_log_stop();
    cr_assert(st == want, "%s: status %s, want %s (log: %s)", path, pad_status_str(st), pad_status_str(want), logged);
    cr_assert(img.rgb == NULL && img.w == 0, "%s: image not zeroed on failure", path);
    cr_assert(strstr(logged, path), "message does not name the file: %s", logged);
    cr_assert(strstr(logged, needle), "message lacks '%s': %s", needle, logged);
    cr_assert(strchr(logged, '\n') == logged + strlen(logged) - 1, "more than one line: %s", logged);
    pad_mask m;
    pad_test_log_start_all();
    st = pad_mask_load(&m, path);
    pad_test_log_stop();
    cr_assert(st == want && m.m == NULL && strstr(logged, path), "mask load of %s: %s", path, logged);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "%s", path);
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz);
    cr_assert(fread(b, 1, (size_t)sz, fp) == (size_t)sz);
    fclose(fp);
    *n = (size_t)sz;
    return b;
}

Test(image, unreadable_files_give_one_clear_line) {
    const char *logged = pad_test_log_text();
    char *dir = pad_test_tmpdir("img");
    char path[600];
    snprintf(path, sizeof path, "%s/missing.png", dir);
    expect_load_error(path, PAD_ERR_IO, "No such file");
    snprintf(path, sizeof path, "%s/notes.png", dir);
    pad_test_write_file(path, "this is not an image\n", 21);
    expect_load_error(path, PAD_ERR_FORMAT, "not a readable image");
    snprintf(path, sizeof path, "%s/empty.jpg", dir);
    pad_test_write_file(path, "", 0);
    expect_load_error(path, PAD_ERR_FORMAT, "empty file");
    expect_load_error(dir, PAD_ERR_IO, "not a regular file");

    // a real PNG, then cut at many points: always an error, never a crash
    pad_image img;
    uint8_t *src = synth(64, 48, 3, 2);
    cr_assert(pad_image_from_rgb(&img, src, 64, 48) == PAD_OK);
    char good[600];
    snprintf(good, sizeof good, "%s/good.png", dir);
    cr_assert(pad_image_save_png(good, &img) == PAD_OK);
    size_t n;
    unsigned char *bytes = slurp(good, &n);
    const size_t cuts[] = {1, 7, 8, 20, 33, 40, n / 2, n - 13, n - 12, n - 4, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        snprintf(path, sizeof path, "%s/cut%zu.png", dir, cuts[k]);
        pad_test_write_file(path, bytes, cuts[k]);
        pad_test_log_start_all();
        pad_image out;
        pad_status st = pad_image_load(&out, path);
        pad_test_log_stop();
        cr_assert(st == PAD_ERR_FORMAT, "PNG cut at %zu of %zu bytes: status %s", cuts[k], n, pad_status_str(st));
        cr_assert(strstr(logged, path) && out.rgb == NULL, "cut at %zu: %s", cuts[k], logged);
    }
    // a flipped bit inside the image data: the CRC catches it
    bytes[n / 2] ^= 0x10;
    snprintf(path, sizeof path, "%s/flipped.png", dir);
    pad_test_write_file(path, bytes, n);
    expect_load_error(path, PAD_ERR_FORMAT, "CRC mismatch");
    free(bytes);

    // a JPEG cut short
    char jpg[600];
    snprintf(jpg, sizeof jpg, "%s/images/q95_444.jpg", PAD_FIXTURE_DIR);
    bytes = slurp(jpg, &n);
    snprintf(path, sizeof path, "%s/cut.jpg", dir);
    pad_test_write_file(path, bytes, n - 200);
    pad_test_log_start_all();
    pad_image out;
    pad_status st = pad_image_load(&out, path);
    pad_test_log_stop();
    // refused since issue 15 (libjpeg alone would fill the missing rows with gray, as OpenCV does)
    cr_assert(st == PAD_ERR_FORMAT && strstr(logged, "truncated JPEG") &&
                  strstr(logged, "Premature end of JPEG file") && strstr(logged, path),
              "%s", logged);
    // JPEG headers only
    pad_test_write_file(path, bytes, 100);
    pad_test_log_start_all();
    st = pad_image_load(&out, path);
    pad_test_log_stop();
    cr_assert(st != PAD_OK && strstr(logged, path), "%s", logged);
    free(bytes);
    pad_image_free(&img);
    free(src);
}

// A w x h 24-bit BMP (bottom-up rows padded to 4 bytes), pixel (x, y) = (x, y, x + y); *n = its size.
static unsigned char *make_bmp(int w, int h, size_t *n) {
    const size_t stride = ((size_t)w * 3 + 3) / 4 * 4, size = 54 + stride * (size_t)h;
    unsigned char *b = calloc(1, size);
    cr_assert(b);
    const uint32_t le[][2] = {{2, (uint32_t)size}, {10, 54}, {14, 40}, {18, (uint32_t)w}, {22, (uint32_t)h}};
    b[0] = 'B';
    b[1] = 'M';
    for (size_t i = 0; i < sizeof le / sizeof le[0]; i++)
        for (int k = 0; k < 4; k++)
            b[le[i][0] + (uint32_t)k] = (unsigned char)(le[i][1] >> (8 * k));
    b[26] = 1;  // planes
    b[28] = 24; // bits
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = b + 54 + (size_t)(h - 1 - y) * stride + 3 * (size_t)x;
            p[0] = (unsigned char)(x + y); // B, G, R
            p[1] = (unsigned char)y;
            p[2] = (unsigned char)x;
        }
    *n = size;
    return b;
}

// Regression (issue 15): formats were guessed by stb_image (GIF, PNM, TGA, PSD, HDR accepted whatever the name; a
// JPEG after fill bytes went to stb), sizes were checked against 256 Mpixel only, and a BMP shorter than its rows
// decoded with zeros (a 70-byte BMP declaring 16384^2 took seconds, a 16384^2 PNG 2.5 GB).
Test(image, only_documented_formats_within_the_pixel_limit_and_never_truncated) {
    char *dir = pad_test_tmpdir("img_hostile");
    char path[600];
    size_t n;
    // the BMP itself is fine, and decodes to its pixels
    unsigned char *bmp = make_bmp(5, 3, &n);
    snprintf(path, sizeof path, "%s/ok.bmp", dir);
    pad_test_write_file(path, bmp, n);
    pad_image img;
    cr_assert(pad_image_load(&img, path) == PAD_OK && img.w == 5 && img.h == 3);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 5; x++) {
            const uint8_t *p = img.rgb + 3 * (y * 5 + x);
            cr_assert(p[0] == x && p[1] == y && p[2] == x + y, "pixel (%d, %d)", x, y);
        }
    pad_image_free(&img);
    int w = 0, h = 0;
    cr_assert(pad_image_size(path, &w, &h) == PAD_OK && w == 5 && h == 3, "header size of ok.bmp: %dx%d", w, h);
    // a BMP shorter than its rows (even by one byte)
    snprintf(path, sizeof path, "%s/cut.bmp", dir);
    pad_test_write_file(path, bmp, n - 1);
    expect_load_error(path, PAD_ERR_FORMAT, "truncated BMP");
    // 70 bytes declaring 16384 x 16384
    bmp[18] = bmp[22] = 0;
    bmp[19] = bmp[23] = 0x40;
    snprintf(path, sizeof path, "%s/big.bmp", dir);
    pad_test_write_file(path, bmp, 70);
    expect_load_error(path, PAD_ERR_FORMAT, "16384x16384 is not supported");
    free(bmp);
    // a PNG declaring 16384 x 16384 (refused from the IHDR, before any data is read)
    const unsigned char big_png[] = {0x89, 'P',  'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0,
                                     0,    0x40, 0,   0,   0,    0x40, 0,    8,    0, 0, 0, 0,  0,   0,   0,   0};
    snprintf(path, sizeof path, "%s/big.png", dir);
    pad_test_write_file(path, big_png, sizeof big_png);
    expect_load_error(path, PAD_ERR_FORMAT, "16384x16384 is not supported");
    pad_test_log_start_all();
    cr_assert(pad_image_size(path, &w, &h) == PAD_ERR_FORMAT);
    pad_test_log_stop();
    // formats stb_image knows but we do not document, named .png
    const struct {
        const char *name, *data;
        size_t n;
    } other[] = {
        {"gif.png",
         "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,"
         "\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
         43},
        {"pgm.png", "P5\n2 2\n255\n\x01\x02\x03\x04", 15},
        {"ppm.png", "P6\n1 1\n255\n\x01\x02\x03", 14},
        {"tga.png", "\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01\x00\x18\x00\x01\x02\x03", 21},
        {"psd.png", "8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x01\x00\x08\x00\x03", 26},
        {"hdr.png", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x80\x80\x80\x80", 49},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, other[i].name);
        pad_test_write_file(path, other[i].data, other[i].n);
        expect_load_error(path, PAD_ERR_FORMAT, "not a PNG, JPEG or BMP file");
    }
    // a real JPEG after two fill bytes: not at byte 0, so not a JPEG (never handed to another decoder)
    char jpg[600];
    snprintf(jpg, sizeof jpg, "%s/images/q95_444.jpg", PAD_FIXTURE_DIR);
    unsigned char *bytes = slurp(jpg, &n);
    unsigned char *filled = malloc(n + 2);
    cr_assert(filled);
    filled[0] = filled[1] = 0xFF;
    memcpy(filled + 2, bytes, n);
    snprintf(path, sizeof path, "%s/filled.jpg", dir);
    pad_test_write_file(path, filled, n + 2);
    expect_load_error(path, PAD_ERR_FORMAT, "it starts with ff ff ff d8");
    cr_assert(pad_image_size(jpg, &w, &h) == PAD_OK && pad_image_load(&img, jpg) == PAD_OK && w == img.w && h == img.h);
    pad_image_free(&img);
    free(filled);
    free(bytes);
}

// ----------------------------------------------------------------------------
// Writing and visualisation

Test(image, png_roundtrip_is_atomic_and_exact) {
    char *dir = pad_test_tmpdir("png");
    char path[600];
    snprintf(path, sizeof path, "%s/a.png", dir);
    uint8_t *src = synth(37, 23, 3, 4);
    pad_image img, back;
    cr_assert(pad_image_from_rgb(&img, src, 37, 23) == PAD_OK);
    cr_assert(pad_image_save_png(path, &img) == PAD_OK);
    cr_assert(pad_image_save_png(path, &img) == PAD_OK); // overwrite
    cr_assert(pad_image_load(&back, path) == PAD_OK);
    cr_assert(back.w == 37 && back.h == 23 && memcmp(back.rgb, src, 37 * 23 * 3) == 0);
    struct stat sb;
    cr_assert(stat(path, &sb) == 0 && (sb.st_mode & 0644) == 0644);
    pad_mask m = synth_mask(30, 20, 1), mb;
    snprintf(path, sizeof path, "%s/m.png", dir);
    cr_assert(pad_mask_save_png(path, &m) == PAD_OK);
    cr_assert(pad_mask_load(&mb, path) == PAD_OK);
    cr_assert(mb.w == 30 && mb.h == 20 && memcmp(mb.m, m.m, 600) == 0);
    pad_cmd_result r = pad_cmd_run("ls -A '%s'", dir); // no temporary files left behind
    cr_assert_str_eq(r.out, "a.png\nm.png\n");
    pad_cmd_free(&r);
    // an unwritable destination names the path
    snprintf(path, sizeof path, "%s/no/such/dir/x.png", dir);
    pad_test_log_start_all();
    cr_assert(pad_image_save_png(path, &img) == PAD_ERR_IO);
    pad_test_log_stop();
    cr_assert(strstr(pad_test_log_text(), path), "%s", pad_test_log_text());
    pad_image_free(&img);
    pad_image_free(&back);
    pad_mask_free(&m);
    pad_mask_free(&mb);
    free(src);
}

Test(image, jet_colormap_and_overlay) {
    uint8_t c[3];
    pad_colormap_jet(0.0f, c);
    cr_assert(c[0] == 0 && c[1] == 0 && c[2] == 128, "%d %d %d", c[0], c[1], c[2]);
    pad_colormap_jet(0.5f, c);
    cr_assert(c[0] == 128 && c[1] == 255 && c[2] == 128);
    pad_colormap_jet(1.0f, c);
    cr_assert(c[0] == 128 && c[1] == 0 && c[2] == 0);
    pad_colormap_jet(NAN, c);
    cr_assert(c[0] == 0 && c[1] == 0 && c[2] == 128);
    pad_colormap_jet(7.0f, c);
    cr_assert(c[0] == 128 && c[1] == 0 && c[2] == 0);

    // 2x1 map [0, 1] over a 4x2 gray image: bilinear with centres aligned -> t = 0, 0.25, 0.75, 1 per column
    pad_image img, out;
    cr_assert(pad_image_alloc(&img, 4, 2) == PAD_OK);
    memset(img.rgb, 100, 4 * 2 * 3);
    const float map[2] = {2.0f, 4.0f};
    cr_assert(pad_heatmap_overlay(&img, map, 2, 1, 2.0f, 4.0f, &out) == PAD_OK);
    cr_assert(out.w == 4 && out.h == 2);
    const float ts[4] = {0.0f, 0.25f, 0.75f, 1.0f};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) {
            pad_colormap_jet(ts[x], c);
            for (int k = 0; k < 3; k++)
                cr_assert(out.rgb[(y * 4 + x) * 3 + k] == (100 + c[k] + 1) / 2, "x=%d y=%d c=%d: %d", x, y, k,
                          out.rgb[(y * 4 + x) * 3 + k]);
        }
    pad_image_free(&out);
    // hi <= lo: everything at t = 0
    cr_assert(pad_heatmap_overlay(&img, map, 2, 1, 1.0f, 1.0f, &out) == PAD_OK);
    cr_assert(out.rgb[2] == (100 + 128 + 1) / 2 && out.rgb[9 + 2] == (100 + 128 + 1) / 2);
    pad_image_free(&out);
    pad_image_free(&img);
}
