/* test_metrics.c - eval/metrics.c against independent references (sklearn roc_auc_score / average_precision_score,
 * a re-implementation of the official MVTec AD PRO with scipy labels, PromptAD's cal_pro_metric with skimage:
 * tests/ref/make_metric_fixtures.py), hand-computed cases, degenerate inputs, thread-count independence, and
 * `promptad metrics` end to end with its errors. */
#include "check.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ----------------------------------------------------------------------------
// helpers

typedef struct log_capture {
    int n_warn, n_error;
    char last[1024];
} log_capture;

static log_capture g_cap;

static void capture(pad_log_level level, const char *msg, void *user) {
    log_capture *c = user;
    if (level == PAD_LOG_LEVEL_WARN) c->n_warn++;
    if (level == PAD_LOG_LEVEL_ERROR) c->n_error++;
    snprintf(c->last, sizeof c->last, "%s", msg);
}

static void capture_on(void) {
    memset(&g_cap, 0, sizeof g_cap);
    pad_log_set(capture, &g_cap);
}

static const pad_st_tensor *tensor(pad_st_file *f, const char *name, pad_dtype dt) {
    const pad_st_tensor *t = pad_st_find(f, name);
    cr_assert(t, "%s: missing %s", f->path, name);
    cr_assert(t->dtype == dt, "%s: %s has dtype %s", f->path, name, pad_dtype_name(t->dtype));
    return t;
}

// Copies of fixture tensors (safetensors data need not be aligned).
static double *fx_f64(pad_st_file *f, const char *name, int64_t *n) {
    const pad_st_tensor *t = tensor(f, name, PAD_DTYPE_F64);
    double *v = malloc(t->nbytes);
    memcpy(v, t->data, t->nbytes);
    *n = t->numel;
    return v;
}

static uint8_t *fx_u8(pad_st_file *f, const char *name, const pad_st_tensor **out_t) {
    const pad_st_tensor *t = tensor(f, name, PAD_DTYPE_U8);
    uint8_t *v = malloc(t->nbytes);
    memcpy(v, t->data, t->nbytes);
    if (out_t) *out_t = t;
    return v;
}

static float *fx_f32(pad_st_file *f, const char *name, int64_t *n) {
    const pad_st_tensor *t = tensor(f, name, PAD_DTYPE_F32);
    float *v = malloc(t->nbytes);
    memcpy(v, t->data, t->nbytes);
    *n = t->numel;
    return v;
}

static void assert_close_d(const char *what, double got, double want, double tol) {
    if (isnan(want)) {
        cr_assert(isnan(got), "%s: got %.17g, want NaN", what, got);
        return;
    }
    cr_assert(fabs(got - want) <= tol, "%s: got %.17g want %.17g (diff %.3e > %.1e)", what, got, want, fabs(got - want),
              tol);
}

// ----------------------------------------------------------------------------
// image level

Test(metrics, image_vs_sklearn) {
    pad_st_file *f = pad_fixture_open("metrics_image.safetensors");
    const char *kinds[] = {"random", "quant", "fp16", "zeros", "tiny"};
    for (int k = 0; k < 5; k++) {
        char name[64], what[96];
        int64_t n, nw;
        snprintf(name, sizeof name, "img_%s_scores", kinds[k]);
        float *s = fx_f32(f, name, &n);
        snprintf(name, sizeof name, "img_%s_labels", kinds[k]);
        uint8_t *l = fx_u8(f, name, NULL);
        snprintf(name, sizeof name, "img_%s_want", kinds[k]);
        double *want = fx_f64(f, name, &nw);
        pad_image_metrics m;
        cr_assert(pad_metrics_image(s, l, n, &m) == PAD_OK);
        snprintf(what, sizeof what, "%s AUROC", kinds[k]);
        assert_close_d(what, m.auroc, want[0], 1e-12);
        snprintf(what, sizeof what, "%s AUPR", kinds[k]);
        assert_close_d(what, m.aupr, want[1], 1e-12);
        free(s);
        free(l);
        free(want);
    }
    pad_st_close(f);
}

Test(metrics, image_hand_computed) {
    // sklearn's documented example: AUROC 0.75, AP 0.8333...
    const float s[4] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t l[4] = {0, 0, 1, 1};
    pad_image_metrics m;
    cr_assert(pad_metrics_image(s, l, 4, &m) == PAD_OK);
    cr_assert(m.auroc == 0.75, "auroc %.17g", m.auroc);
    assert_close_d("AP", m.aupr, 5.0 / 6.0, 1e-15);
    // one tie between a positive and a negative counts half; -0 == +0
    const float t[3] = {-0.0f, 0.0f, 1.0f};
    const uint8_t tl[3] = {1, 0, 0};
    cr_assert(pad_metrics_image(t, tl, 3, &m) == PAD_OK);
    cr_assert(m.auroc == 0.25, "auroc %.17g", m.auroc);
    cr_assert(m.aupr == 1.0 / 3.0, "aupr %.17g", m.aupr); // the group {-0, +0} brings recall 1 at precision 1/3
}

Test(metrics, image_degenerate) {
    const float s[3] = {0.1f, 0.2f, 0.3f};
    const uint8_t zeros[3] = {0, 0, 0}, ones[3] = {1, 1, 1}, bad[3] = {0, 2, 1};
    pad_image_metrics m;
    capture_on();
    cr_assert(pad_metrics_image(s, zeros, 3, &m) == PAD_OK);
    cr_assert(isnan(m.auroc) && isnan(m.aupr));
    cr_assert(g_cap.n_warn == 2, "warnings: %d", g_cap.n_warn);
    cr_assert(pad_metrics_image(s, ones, 3, &m) == PAD_OK);
    cr_assert(isnan(m.auroc) && m.aupr == 1.0, "all positive: auroc %g aupr %g", m.auroc, m.aupr);
    cr_assert(pad_metrics_image(s, bad, 3, &m) == PAD_ERR_INVALID_ARG);
    cr_assert(strstr(g_cap.last, "label 1 is 2"), "%s", g_cap.last);
    const float nan_s[3] = {0.1f, NAN, 0.3f};
    cr_assert(pad_metrics_image(nan_s, ones, 3, &m) == PAD_ERR_INVALID_ARG);
    cr_assert(strstr(g_cap.last, "score 1 is not finite"), "%s", g_cap.last);
    const float inf_s[3] = {0.1f, 0.2f, INFINITY};
    cr_assert(pad_metrics_image(inf_s, ones, 3, &m) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_metrics_image(s, ones, 0, &m) == PAD_ERR_INVALID_ARG);
    pad_log_set(NULL, NULL);
}

// ----------------------------------------------------------------------------
// pixel level

typedef struct pixel_set {
    pad_st_file *f;
    uint8_t *masks;
    int n, H, W;
} pixel_set;

static pixel_set open_set(const char *name) {
    pixel_set p;
    char file[128];
    snprintf(file, sizeof file, "metrics_pixel_%s.safetensors", name);
    p.f = pad_fixture_open(file);
    const pad_st_tensor *t;
    p.masks = fx_u8(p.f, "masks", &t);
    cr_assert(t->ndim == 3);
    p.n = (int)t->shape[0];
    p.H = (int)t->shape[1];
    p.W = (int)t->shape[2];
    return p;
}

static void close_set(pixel_set *p) {
    free(p->masks);
    pad_st_close(p->f);
}

Test(metrics, labels_match_scipy_8_connectivity) {
    const char *sets[] = {"hand", "blobs"};
    for (int s = 0; s < 2; s++) {
        pixel_set p = open_set(sets[s]);
        const pad_st_tensor *t = tensor(p.f, "labels", PAD_DTYPE_I32);
        int32_t *want = malloc(t->nbytes);
        memcpy(want, t->data, t->nbytes);
        pad_metrics_gt *gt;
        cr_assert(pad_metrics_gt_init(&gt, p.masks, p.n, p.H, p.W) == PAD_OK);
        pad_metrics_gt_info info;
        pad_metrics_gt_get_info(gt, &info);
        const int32_t *got = pad_metrics_gt_labels(gt);
        int64_t N = (int64_t)p.n * p.H * p.W, anom = 0;
        int32_t kmax = 0;
        for (int64_t i = 0; i < N; i++) {
            cr_assert(got[i] == want[i], "%s: pixel %lld: label %d, scipy %d", sets[s], (long long)i, got[i], want[i]);
            kmax = want[i] > kmax ? want[i] : kmax;
            anom += p.masks[i] > 0;
        }
        cr_assert(info.n_regions == kmax && info.n_anomalous == anom && info.n_normal == N - anom);
        if (s == 0) cr_assert(kmax == 20, "hand masks: %d regions", kmax); // the diagonal pairs are one region each
        pad_metrics_gt_free(gt);
        free(want);
        close_set(&p);
    }
}

// want: auroc, aupr, pro@0.3, pro@0.05, pro@1.0, pro(float32 FPR, official script)@0.3, pro200@0.3, pro200@0.05
Test(metrics, pixel_vs_references) {
    const char *sets[] = {"hand", "blobs"};
    const char *kinds[] = {"uniform", "signal", "quant", "fp16", "thr", "narrow"};
    for (int s = 0; s < 2; s++) {
        pixel_set p = open_set(sets[s]);
        pad_metrics_gt *gt;
        cr_assert(pad_metrics_gt_init(&gt, p.masks, p.n, p.H, p.W) == PAD_OK);
        for (int k = 0; k < 6; k++) {
            char name[64], what[128];
            int64_t nm, nw;
            snprintf(name, sizeof name, "maps_%s", kinds[k]);
            float *maps = fx_f32(p.f, name, &nm);
            cr_assert(nm == (int64_t)p.n * p.H * p.W);
            snprintf(name, sizeof name, "want_%s", kinds[k]);
            double *want = fx_f64(p.f, name, &nw);
            cr_assert(nw == 8);
            pad_pixel_metrics a, b, c;
            capture_on(); // pro200@0.05 of blobs/quant is undefined: one warning, NaN
            cr_assert(pad_metrics_pixel(gt, maps, 0.3, PAD_METRICS_ALL, &a) == PAD_OK);
            cr_assert(pad_metrics_pixel(gt, maps, 0.05, PAD_METRICS_ALL, &b) == PAD_OK);
            cr_assert(pad_metrics_pixel(gt, maps, 1.0, PAD_METRICS_PRO, &c) == PAD_OK);
            cr_assert(g_cap.n_warn == (isnan(want[7]) ? 1 : 0), "%s/%s: %d warnings", sets[s], kinds[k], g_cap.n_warn);
            pad_log_set(NULL, NULL);
            const double got[8] = {a.auroc, a.aupr, a.pro, b.pro, c.pro, a.pro, a.pro_200, b.pro_200};
            const char *names[8] = {"AUROC",      "AUPR",       "PRO@0.3",
                                    "PRO@0.05",   "PRO@1",      "PRO@0.3 vs float32-FPR official",
                                    "PRO200@0.3", "PRO200@0.05"};
            for (int j = 0; j < 8; j++) {
                snprintf(what, sizeof what, "%s/%s %s", sets[s], kinds[k], names[j]);
                assert_close_d(what, got[j], want[j], j == 5 ? 1e-6 : 1e-10);
            }
            cr_assert(a.auroc == b.auroc && a.aupr == b.aupr && a.auroc == c.auroc, "AUROC depends on the limit");
            cr_assert(isnan(c.pro_200), "PRO-200 computed although not requested");
            free(maps);
            free(want);
        }
        pad_metrics_gt_free(gt);
        close_set(&p);
    }
}

Test(metrics, pixel_hand_computed) {
    // one region of 2 pixels, 2 background pixels. Sorted: 0.9 (region) 0.4 (bg) 0.3 (region) 0.1 (bg):
    // points (0,0) (0,.5) (.5,.5) (.5,1) (1,1) (1,1). PRO@0.3 = (0.3 * 0.5) / 0.3 = 0.5 (interpolated piece);
    // PRO@1 = 0.5 * 0.5 + 0.5 * 1 = 0.75; AUROC = 3/4.
    const uint8_t mask[4] = {0, 1, 1, 0};
    const float map[4] = {0.1f, 0.9f, 0.3f, 0.4f};
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, 1, 1, 4) == PAD_OK);
    pad_pixel_metrics m;
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_PRO, &m) == PAD_OK);
    cr_assert(m.auroc == 0.75, "auroc %.17g", m.auroc);
    assert_close_d("PRO@0.3", m.pro, 0.5, 1e-15);
    assert_close_d("AUPR", m.aupr, 0.5 * 1.0 + 0.5 * (2.0 / 3.0), 1e-15);
    cr_assert(pad_metrics_pixel(gt, map, 1.0, PAD_METRICS_PRO, &m) == PAD_OK);
    assert_close_d("PRO@1", m.pro, 0.75, 1e-15);
    cr_assert(pad_metrics_pixel(gt, map, 0.5, PAD_METRICS_PRO, &m) == PAD_OK); // 0.5 is a sample: no interpolation
    assert_close_d("PRO@0.5", m.pro, 0.25 / 0.5, 1e-15);
    pad_metrics_gt_free(gt);
}

Test(metrics, pixel_constant_map) {
    // one tie group: curve (0,0) (1,1) (1,1); PRO@0.3 = 0.5 * 0.3 * 0.3 / 0.3 = 0.15; PRO-200 has no FPR range
    uint8_t mask[2 * 6 * 5] = {0};
    mask[7] = mask[8] = mask[40] = 1;
    float map[60];
    for (int i = 0; i < 60; i++)
        map[i] = 0.25f;
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, 2, 6, 5) == PAD_OK);
    pad_pixel_metrics m;
    capture_on();
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_ALL, &m) == PAD_OK);
    cr_assert(m.auroc == 0.5);
    assert_close_d("PRO", m.pro, 0.15, 1e-15);
    assert_close_d("AUPR", m.aupr, 3.0 / 60.0, 1e-16);
    cr_assert(isnan(m.pro_200) && g_cap.n_warn == 1, "pro_200 %g, %d warnings", m.pro_200, g_cap.n_warn);
    pad_log_set(NULL, NULL);
    pad_metrics_gt_free(gt);
}

Test(metrics, pixel_degenerate) {
    uint8_t none[2 * 4 * 4] = {0}, all[2 * 4 * 4];
    memset(all, 255, sizeof all);
    float map[32];
    pad_rng rng = {7};
    pad_rng_fill(&rng, map, 32, 0, 1);
    pad_metrics_gt *gt;
    pad_pixel_metrics m;
    capture_on();
    // no anomalous pixel: everything undefined, one warning each
    cr_assert(pad_metrics_gt_init(&gt, none, 2, 4, 4) == PAD_OK);
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_ALL, &m) == PAD_OK);
    cr_assert(isnan(m.auroc) && isnan(m.aupr) && isnan(m.pro) && isnan(m.pro_200));
    cr_assert(g_cap.n_warn == 4, "%d warnings", g_cap.n_warn);
    // non-finite score: an error naming image and pixel
    map[16 + 4 * 2 + 3] = NAN;
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_ALL, &m) == PAD_ERR_INVALID_ARG);
    cr_assert(strstr(g_cap.last, "map 1 pixel (2, 3) is not finite"), "%s", g_cap.last);
    map[16 + 4 * 2 + 3] = -INFINITY;
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_ALL, &m) == PAD_ERR_INVALID_ARG);
    map[16 + 4 * 2 + 3] = 0.5f;
    // bad limits
    cr_assert(pad_metrics_pixel(gt, map, 0.0, PAD_METRICS_PRO, &m) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_metrics_pixel(gt, map, 1.5, PAD_METRICS_PRO, &m) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_metrics_pixel(gt, map, NAN, PAD_METRICS_PRO, &m) == PAD_ERR_INVALID_ARG);
    pad_metrics_gt_free(gt);
    // only anomalous pixels: AUROC and PRO undefined, AUPR = 1
    g_cap.n_warn = 0;
    cr_assert(pad_metrics_gt_init(&gt, all, 2, 4, 4) == PAD_OK);
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_ALL, &m) == PAD_OK);
    cr_assert(isnan(m.auroc) && m.aupr == 1.0 && isnan(m.pro) && isnan(m.pro_200));
    cr_assert(g_cap.n_warn == 3, "%d warnings", g_cap.n_warn);
    pad_metrics_gt_free(gt);
    // bad sizes
    cr_assert(pad_metrics_gt_init(&gt, all, 0, 4, 4) == PAD_ERR_INVALID_ARG && gt == NULL);
    cr_assert(pad_metrics_gt_init(&gt, all, 70000, 70000, 1) == PAD_ERR_INVALID_ARG); // > 2^32 pixels
    pad_log_set(NULL, NULL);
}

// Random tie-heavy maps on random blobs: the same bits for every thread count and on a reused context.
Test(metrics, pixel_thread_count_independent) {
    const int n = 9, H = 61, W = 47;
    const int64_t N = (int64_t)n * H * W;
    uint8_t *mask = calloc((size_t)N, 1);
    float *map = malloc((size_t)N * sizeof *map);
    pad_rng rng = {99};
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 3; b++) {
            int cy = (int)pad_rng_uniform(&rng, 0, H), cx = (int)pad_rng_uniform(&rng, 0, W);
            int r = 2 + (int)pad_rng_uniform(&rng, 0, 8);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) mask[(int64_t)i * H * W + y * W + x] = 1;
        }
    for (int64_t i = 0; i < N; i++)
        map[i] = floorf(pad_rng_uniform(&rng, 0, 1) * 50.0f + (mask[i] ? 15.0f : 0.0f)) / 50.0f;
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, n, H, W) == PAD_OK);
    pad_pixel_metrics ref, m;
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_ALL, &ref) == PAD_OK);
    cr_assert(ref.auroc > 0.6 && ref.pro > 0.1 && ref.pro_200 > 0.1, "weak signal: %g %g %g", ref.auroc, ref.pro,
              ref.pro_200);
#ifdef _OPENMP
    const int threads[] = {1, 2, 3, 5};
    for (int t = 0; t < 4; t++) {
        omp_set_num_threads(threads[t]);
        pad_metrics_gt *g2;
        cr_assert(pad_metrics_gt_init(&g2, mask, n, H, W) == PAD_OK);
        cr_assert(pad_metrics_pixel(g2, map, 0.3, PAD_METRICS_ALL, &m) == PAD_OK);
        cr_assert(memcmp(&m, &ref, sizeof m) == 0, "%d threads: %.17g %.17g %.17g %.17g", threads[t], m.auroc, m.aupr,
                  m.pro, m.pro_200);
        cr_assert(memcmp(pad_metrics_gt_labels(g2), pad_metrics_gt_labels(gt), (size_t)N * 4) == 0);
        pad_metrics_gt_free(g2);
    }
#endif
    cr_assert(pad_metrics_pixel(gt, map, 0.3, PAD_METRICS_ALL, &m) == PAD_OK);
    cr_assert(memcmp(&m, &ref, sizeof m) == 0, "second evaluation on the same context differs");
    pad_metrics_gt_free(gt);
    free(mask);
    free(map);
}

#ifndef PAD_HAVE_CUDA
Test(metrics, gpu_unsupported_without_cuda) {
    uint8_t mask[4] = {0, 1, 0, 0};
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, mask, 1, 2, 2) == PAD_OK);
    pad_metrics_gpu *g = (pad_metrics_gpu *)gt; // must be overwritten with NULL
    capture_on();
    cr_assert(pad_metrics_gpu_init(&g, gt, NULL) == PAD_ERR_UNSUPPORTED && g == NULL);
    cr_assert(strstr(g_cap.last, "no CUDA support"), "%s", g_cap.last);
    pad_metrics_gpu_free(NULL);
    pad_log_set(NULL, NULL);
    pad_metrics_gt_free(gt);
}
#endif

// ----------------------------------------------------------------------------
// `promptad metrics`

typedef struct cli_input {
    const float *labels_f32; // or labels_u8
    const uint8_t *labels_u8;
    const float *scores;
    int64_t n;
    const uint8_t *masks;
    const float *maps;
    int64_t H, W;
    const char *skip; // a tensor name to leave out
} cli_input;

static void write_input(const char *path, const cli_input *in) {
    pad_st_writer *w;
    cr_assert(pad_st_writer_init(&w) == PAD_OK);
    const int64_t s1[1] = {in->n}, s3[3] = {in->n, in->H, in->W};
    if (!in->skip || strcmp(in->skip, "labels")) {
        if (in->labels_u8)
            cr_assert(pad_st_writer_add(w, "labels", PAD_DTYPE_U8, 1, s1, in->labels_u8) == PAD_OK);
        else
            cr_assert(pad_st_writer_add_f32(w, "labels", 1, s1, in->labels_f32) == PAD_OK);
    }
    if (!in->skip || strcmp(in->skip, "image_scores"))
        cr_assert(pad_st_writer_add_f32(w, "image_scores", 1, s1, in->scores) == PAD_OK);
    if (in->masks && (!in->skip || strcmp(in->skip, "masks")))
        cr_assert(pad_st_writer_add(w, "masks", PAD_DTYPE_U8, 3, s3, in->masks) == PAD_OK);
    if (in->maps && (!in->skip || strcmp(in->skip, "maps")))
        cr_assert(pad_st_writer_add_f32(w, "maps", 3, s3, in->maps) == PAD_OK);
    cr_assert(pad_st_writer_save(w, path) == PAD_OK);
    pad_st_writer_free(w);
}

static cJSON *read_json(const char *path) {
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "%s not written", path);
    char buf[4096];
    size_t k = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[k] = 0;
    cJSON *j = cJSON_Parse(buf);
    cr_assert(j, "%s: bad JSON: %s", path, buf);
    return j;
}

static double json_num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    cr_assert(v, "key %s missing", key);
    if (cJSON_IsNull(v)) return NAN;
    cr_assert(cJSON_IsNumber(v), "key %s is not a number", key);
    return v->valuedouble;
}

Test(metrics, cli_end_to_end) {
    pixel_set p = open_set("hand");
    int64_t nm, nw;
    float *maps = fx_f32(p.f, "maps_fp16", &nm);
    double *want = fx_f64(p.f, "want_fp16", &nw);
    // image scores = max of each map; labels = any anomalous pixel
    float scores[16];
    uint8_t labels[16];
    const int64_t HW = (int64_t)p.H * p.W;
    for (int i = 0; i < p.n; i++) {
        scores[i] = maps[i * HW];
        labels[i] = 0;
        for (int64_t j = 0; j < HW; j++) {
            scores[i] = fmaxf(scores[i], maps[i * HW + j]);
            labels[i] |= p.masks[i * HW + j] > 0;
        }
    }
    char *dir = pad_test_tmpdir("metrics_cli");
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/s.safetensors", dir);
    snprintf(out, sizeof out, "%s/o.json", dir);
    cli_input ci = {NULL, labels, scores, p.n, p.masks, maps, p.H, p.W, NULL};
    write_input(in, &ci);

    pad_cmd_result r = pad_cmd_run("%s metrics --in %s --out %s", pad_test_binary(), in, out);
    cr_assert(r.exit_code == 0, "exit %d: %s", r.exit_code, r.err);
    cr_assert(r.out[0] == 0, "stdout not empty: %s", r.out);
    cr_assert(strstr(r.err, "pixel AUROC"), "no summary line: %s", r.err);
    pad_cmd_free(&r);
    cJSON *j = read_json(out);
    cr_assert(cJSON_GetArraySize(j) == 6, "keys: %d", cJSON_GetArraySize(j));

    pad_image_metrics im;
    cr_assert(pad_metrics_image(scores, labels, p.n, &im) == PAD_OK);
    pad_metrics_gt *gt;
    cr_assert(pad_metrics_gt_init(&gt, p.masks, p.n, p.H, p.W) == PAD_OK);
    pad_pixel_metrics pm, pm5;
    cr_assert(pad_metrics_pixel(gt, maps, 0.3, PAD_METRICS_ALL, &pm) == PAD_OK);
    cr_assert(pad_metrics_pixel(gt, maps, 0.05, PAD_METRICS_ALL, &pm5) == PAD_OK);
    // JSON numbers round-trip exactly
    cr_assert(json_num(j, "image_auroc") == im.auroc && json_num(j, "image_aupr") == im.aupr);
    cr_assert(json_num(j, "pixel_auroc") == pm.auroc && json_num(j, "pixel_aupr") == pm.aupr);
    cr_assert(json_num(j, "pixel_pro") == pm.pro && json_num(j, "pixel_pro_200") == pm.pro_200);
    assert_close_d("cli pixel_auroc", json_num(j, "pixel_auroc"), want[0], 1e-10);
    assert_close_d("cli pixel_pro", json_num(j, "pixel_pro"), want[2], 1e-10);
    assert_close_d("cli pixel_pro_200", json_num(j, "pixel_pro_200"), want[6], 1e-10);
    cJSON_Delete(j);

    r = pad_cmd_run("%s metrics --in %s --fpr-limit 0.05 --out %s", pad_test_binary(), in, out);
    cr_assert(r.exit_code == 0, "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    j = read_json(out);
    cr_assert(json_num(j, "pixel_pro") == pm5.pro && json_num(j, "pixel_pro_200") == pm5.pro_200);
    assert_close_d("cli pixel_pro@0.05", json_num(j, "pixel_pro"), want[3], 1e-10);
    cJSON_Delete(j);

    // image-only input, float labels: two keys
    float lab_f[16];
    for (int i = 0; i < p.n; i++)
        lab_f[i] = labels[i];
    cli_input co = {lab_f, NULL, scores, p.n, NULL, NULL, 0, 0, NULL};
    write_input(in, &co);
    r = pad_cmd_run("%s metrics --in %s --out %s", pad_test_binary(), in, out);
    cr_assert(r.exit_code == 0, "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    j = read_json(out);
    cr_assert(cJSON_GetArraySize(j) == 2);
    cr_assert(json_num(j, "image_auroc") == im.auroc && json_num(j, "image_aupr") == im.aupr);
    cJSON_Delete(j);

    // one class only: exit 0, nulls, a warning
    const uint8_t zeros[16] = {0};
    cli_input cz = {NULL, zeros, scores, p.n, NULL, NULL, 0, 0, NULL};
    write_input(in, &cz);
    r = pad_cmd_run("%s metrics --in %s --out %s", pad_test_binary(), in, out);
    cr_assert(r.exit_code == 0 && strstr(r.err, "warning"), "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    j = read_json(out);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "image_auroc")));
    cJSON_Delete(j);

    pad_metrics_gt_free(gt);
    free(maps);
    free(want);
    close_set(&p);
}

// Runs the CLI on `in` expecting exit code `code` and every `needle` in stderr; the output must not appear.
static void expect_fail(const char *in, const char *extra, int code, const char *n1, const char *n2) {
    char out[600];
    snprintf(out, sizeof out, "%s.json", in);
    unlink(out);
    pad_cmd_result r = pad_cmd_run("%s metrics --in %s %s --out %s", pad_test_binary(), in, extra, out);
    cr_assert(r.exit_code == code, "%s %s: exit %d, want %d: %s", in, extra, r.exit_code, code, r.err);
    cr_assert(!n1 || strstr(r.err, n1), "stderr lacks '%s': %s", n1, r.err);
    cr_assert(!n2 || strstr(r.err, n2), "stderr lacks '%s': %s", n2, r.err);
    cr_assert(r.out[0] == 0, "stdout: %s", r.out);
    cr_assert(access(out, F_OK) != 0, "%s written despite the error", out);
    pad_cmd_free(&r);
}

Test(metrics, cli_errors) {
    char *dir = pad_test_tmpdir("metrics_err");
    char in[512];
    const uint8_t lab[3] = {0, 1, 1}, lab_bad[3] = {0, 2, 1};
    const float sc[3] = {0.1f, 0.7f, 0.5f}, sc_nan[3] = {0.1f, NAN, 0.5f};
    uint8_t masks[3 * 2 * 2] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0};
    float maps[12] = {0};

    snprintf(in, sizeof in, "%s/nolabels.safetensors", dir);
    cli_input c = {NULL, lab, sc, 3, masks, maps, 2, 2, "labels"};
    write_input(in, &c);
    expect_fail(in, "", 1, in, "missing tensor 'labels'");

    snprintf(in, sizeof in, "%s/noscores.safetensors", dir);
    c.skip = "image_scores";
    write_input(in, &c);
    expect_fail(in, "", 1, in, "missing tensor 'image_scores'");

    snprintf(in, sizeof in, "%s/nomaps.safetensors", dir);
    c.skip = "maps";
    write_input(in, &c);
    expect_fail(in, "", 1, in, "'masks' is present without 'maps'");

    snprintf(in, sizeof in, "%s/badlabel.safetensors", dir);
    cli_input cb = {NULL, lab_bad, sc, 3, NULL, NULL, 0, 0, NULL};
    write_input(in, &cb);
    expect_fail(in, "", 1, in, "labels: value 2 at index 1 is not 0 or 1");

    snprintf(in, sizeof in, "%s/nanscore.safetensors", dir);
    cli_input cn = {NULL, lab, sc_nan, 3, NULL, NULL, 0, 0, NULL};
    write_input(in, &cn);
    expect_fail(in, "", 1, in, "image_scores: value nan at index 1 is not finite");

    snprintf(in, sizeof in, "%s/nanmap.safetensors", dir);
    maps[7] = NAN;
    cli_input cm = {NULL, lab, sc, 3, masks, maps, 2, 2, NULL};
    write_input(in, &cm);
    expect_fail(in, "", 1, in, "map 1 pixel (1, 1) is not finite");
    maps[7] = 0;

    // maps (3,2,3) vs masks (3,2,2)
    snprintf(in, sizeof in, "%s/shape.safetensors", dir);
    {
        pad_st_writer *w;
        cr_assert(pad_st_writer_init(&w) == PAD_OK);
        float big[18] = {0};
        cr_assert(pad_st_writer_add(w, "labels", PAD_DTYPE_U8, 1, (int64_t[]){3}, lab) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "image_scores", 1, (int64_t[]){3}, sc) == PAD_OK);
        cr_assert(pad_st_writer_add(w, "masks", PAD_DTYPE_U8, 3, (int64_t[]){3, 2, 2}, masks) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "maps", 3, (int64_t[]){3, 2, 3}, big) == PAD_OK);
        cr_assert(pad_st_writer_save(w, in) == PAD_OK);
        pad_st_writer_free(w);
    }
    expect_fail(in, "", 1, in, "maps: expected shape (3, 2, 2) like masks, got (3, 2, 3)");

    // image_scores of another length, masks of another n, masks as F32
    snprintf(in, sizeof in, "%s/shape2.safetensors", dir);
    {
        pad_st_writer *w;
        cr_assert(pad_st_writer_init(&w) == PAD_OK);
        cr_assert(pad_st_writer_add(w, "labels", PAD_DTYPE_U8, 1, (int64_t[]){3}, lab) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "image_scores", 1, (int64_t[]){2}, sc) == PAD_OK);
        cr_assert(pad_st_writer_save(w, in) == PAD_OK);
        pad_st_writer_free(w);
    }
    expect_fail(in, "", 1, "image_scores: expected shape (3) like labels, got (2)", NULL);
    snprintf(in, sizeof in, "%s/masks_n.safetensors", dir);
    {
        pad_st_writer *w;
        cr_assert(pad_st_writer_init(&w) == PAD_OK);
        cr_assert(pad_st_writer_add(w, "labels", PAD_DTYPE_U8, 1, (int64_t[]){3}, lab) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "image_scores", 1, (int64_t[]){3}, sc) == PAD_OK);
        cr_assert(pad_st_writer_add(w, "masks", PAD_DTYPE_U8, 3, (int64_t[]){2, 2, 3}, masks) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "maps", 3, (int64_t[]){2, 2, 3}, maps) == PAD_OK);
        cr_assert(pad_st_writer_save(w, in) == PAD_OK);
        pad_st_writer_free(w);
    }
    expect_fail(in, "", 1, "masks: expected shape (3, H, W), got (2, 2, 3)", NULL);
    snprintf(in, sizeof in, "%s/masks_f32.safetensors", dir);
    {
        pad_st_writer *w;
        cr_assert(pad_st_writer_init(&w) == PAD_OK);
        cr_assert(pad_st_writer_add(w, "labels", PAD_DTYPE_U8, 1, (int64_t[]){3}, lab) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "image_scores", 1, (int64_t[]){3}, sc) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "masks", 3, (int64_t[]){3, 2, 2}, maps) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "maps", 3, (int64_t[]){3, 2, 2}, maps) == PAD_OK);
        cr_assert(pad_st_writer_save(w, in) == PAD_OK);
        pad_st_writer_free(w);
    }
    expect_fail(in, "", 1, "masks: dtype F32; expected U8", NULL);

    // files and usage
    snprintf(in, sizeof in, "%s/absent.safetensors", dir);
    expect_fail(in, "", 1, in, NULL);
    snprintf(in, sizeof in, "%s/good.safetensors", dir);
    cli_input cg = {NULL, lab, sc, 3, masks, maps, 2, 2, NULL};
    write_input(in, &cg);
    expect_fail(in, "--fpr-limit 0", 2, "--fpr-limit", NULL);
    expect_fail(in, "--fpr-limit 1.5", 2, "--fpr-limit", NULL);
    expect_fail(in, "--fpr-limit abc", 2, "not a number", NULL);
    expect_fail(in, "--bogus 1", 2, NULL, NULL);
    pad_cmd_result r = pad_cmd_run("%s metrics --in %s", pad_test_binary(), in);
    cr_assert(r.exit_code == 2 && strstr(r.err, "--out is required"), "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    // the good file passes (sanity check of the helper)
    char out[600];
    snprintf(out, sizeof out, "%s/good.json", dir);
    r = pad_cmd_run("%s metrics --in %s --out %s", pad_test_binary(), in, out);
    cr_assert(r.exit_code == 0, "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
}
