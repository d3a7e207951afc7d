/* test_winclip.c - WinCLIP / WinCLIP+ and CPE + V-V CLIP (host/model/winclip.h) against the golden
 * tests/fixtures/winclip_tiny.safetensors of tests/ref/ref_winclip.py (anomalib's WinClipModel semantics, float64) on
 * the tiny 514-token model: window masks, the harmonic aggregation (anomalib's documented example), the CPE prompts
 * and text features, the image / patch / window embeddings, zero-shot and few-shot scores and maps, the CPE scores,
 * and the independence of the results from the batch size and the rows per window launch. */
#include "check.h"
#include "score.h"
#include "tiny_model.h"
#include "tokenizer.h"
#include "winclip.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_TEST 3
#define N_SHOT 2
#define RES    30 // the fixture's map side

typedef struct fx {
    pad_st_file *f;
    pad_backend *be;
    pad_clip_weights *hw, *w;
    int S, G, P, D, E;
    float *test, *shots, *text;
} fx;

static fx open_fx(void) {
    fx x;
    x.f = pad_fixture_open("winclip_tiny.safetensors");
    x.hw = pad_tiny514_weights(x.f);
    cr_assert(pad_backend_cpu_init(&x.be, 0) == PAD_OK);
    cr_assert(pad_weights_to_backend(x.hw, x.be, &x.w) == PAD_OK);
    x.S = x.hw->cfg.vision.image_size;
    x.G = x.hw->cfg.vision.grid;
    x.P = x.G * x.G;
    x.D = x.hw->cfg.vision.width;
    x.E = x.hw->cfg.embed_dim;
    x.test = pad_fixture_f32(x.f, "test_pixels", 4, (int64_t[]){N_TEST, 3, x.S, x.S});
    x.shots = pad_fixture_f32(x.f, "shot_pixels", 4, (int64_t[]){N_SHOT, 3, x.S, x.S});
    x.text = pad_fixture_f32(x.f, "text_raw", 2, (int64_t[]){2, x.E});
    return x;
}

static void close_fx(fx *x) {
    free(x->test);
    free(x->shots);
    free(x->text);
    pad_weights_free(x->w);
    pad_weights_free(x->hw);
    pad_backend_free(x->be);
    pad_st_close(x->f);
}

static float *want(fx *x, const char *name, int ndim, const int64_t *shape) {
    return pad_fixture_f32(x->f, name, ndim, shape);
}

Test(winclip, window_masks) {
    // anomalib's make_masks((3, 3), 2) docstring, transposed: one row per window
    const int32_t doc[4][4] = {{0, 1, 3, 4}, {1, 2, 4, 5}, {3, 4, 6, 7}, {4, 5, 7, 8}};
    int32_t m[16];
    cr_assert_eq(pad_winclip_n_windows(3, 2), 4);
    pad_winclip_window_masks(3, 2, m);
    cr_assert(memcmp(m, doc, sizeof doc) == 0);
    cr_assert_eq(pad_winclip_n_windows(15, 2), 196);
    cr_assert_eq(pad_winclip_n_windows(15, 3), 169);
    cr_assert_eq(pad_winclip_n_windows(4, 5), 0);
    cr_assert_eq(pad_winclip_n_windows(4, 0), 0);
    // the fixture's masks of the tiny model's 4 x 4 grid
    fx x = open_fx();
    for (int k = 2; k <= 3; k++) {
        const int n = pad_winclip_n_windows(x.G, k);
        const pad_st_tensor *t = pad_st_find(x.f, k == 2 ? "masks2" : "masks3");
        cr_assert(t && t->dtype == PAD_DTYPE_I32 && t->numel == (int64_t)n * k * k);
        int32_t *got = malloc(sizeof(int32_t) * (size_t)n * k * k);
        pad_winclip_window_masks(x.G, k, got);
        cr_assert(memcmp(got, t->data, sizeof(int32_t) * (size_t)n * k * k) == 0, "masks of scale %d differ", k);
        free(got);
    }
    close_fx(&x);
}

Test(winclip, harmonic_aggregation) {
    // anomalib's harmonic_aggregation docstring: 3 x 3 grid, 4 windows of 2 x 2
    const float ws[4] = {1.0f, 0.75f, 0.5f, 0.25f};
    const double doc[9] = {1.0, 6.0 / 7.0, 0.75, 2.0 / 3.0, 0.48, 0.375, 0.5, 1.0 / 3.0, 0.25};
    int32_t m[16];
    double got[9];
    pad_winclip_window_masks(3, 2, m);
    pad_winclip_harmonic(ws, m, 4, 4, 3, got);
    for (int i = 0; i < 9; i++)
        cr_assert(fabs(got[i] - doc[i]) < 1e-12, "patch %d: %.17g vs %.17g", i, got[i], doc[i]);
    // a zero score makes its patches 0 (1/0 = inf in the sum), as torch's arithmetic does
    const float wz[4] = {0.0f, 0.75f, 0.5f, 0.25f};
    pad_winclip_harmonic(wz, m, 4, 4, 3, got);
    cr_assert(got[0] == 0.0 && got[4] == 0.0 && fabs(got[8] - 0.25) < 1e-12);
}

Test(winclip, cpe_prompts_and_text) {
    char buf[256];
    cr_assert_eq(pad_cpe_n_normal(), 147);
    cr_assert_eq(pad_cpe_n_anomalous(), 84);
    cr_assert(pad_cpe_prompt(buf, sizeof buf, false, 0, "bottle"));
    cr_assert_str_eq(buf, "a cropped photo of the bottle.");
    cr_assert(pad_cpe_prompt(buf, sizeof buf, true, 0, "bottle"));
    cr_assert_str_eq(buf, "a cropped photo of the damaged bottle.");
    cr_assert(pad_cpe_prompt(buf, sizeof buf, false, 6 * 21 + 20, "metal nut"));
    cr_assert_str_eq(buf, "a photo of a metal nut without damage for anomaly detection.");
    cr_assert(!pad_cpe_prompt(buf, sizeof buf, true, 84, "bottle"));
    cr_assert(!pad_cpe_prompt(buf, 10, true, 0, "bottle"));
    // the averaged raw text features with the byte-level vocabulary
    fx x = open_fx();
    char *dir = pad_test_tmpdir("winclip_text"), *vocab = pad_test_fmt("%s/bytes.txt.gz", dir);
    cr_assert(pad_tokenizer_write_byte_vocab(vocab) == PAD_OK);
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, vocab) == PAD_OK);
    float got[2 * 64];
    cr_assert(x.E <= 64);
    cr_assert(pad_cpe_text(x.w, tok, "bottle", got) == PAD_OK);
    PAD_ASSERT_REL("cpe text", got, x.text, (size_t)2 * x.E, 1e-4);
    pad_tokenizer_free(tok);
    pad_cmd_result r = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&r);
    close_fx(&x);
}

Test(winclip, embeddings) {
    fx x = open_fx();
    pad_winclip_params p = pad_winclip_default_params();
    p.max_batch = N_TEST;
    pad_winclip *wc = NULL;
    cr_assert(pad_winclip_create(&wc, x.be, x.w, &p) == PAD_OK);
    const int n2 = pad_winclip_scale_windows(wc, 0), n3 = pad_winclip_scale_windows(wc, 1);
    cr_assert(n2 == 9 && n3 == 4);
    float *img = malloc(sizeof(float) * N_TEST * x.E), *pat = malloc(sizeof(float) * N_TEST * x.P * x.D);
    float *w2 = malloc(sizeof(float) * N_TEST * n2 * x.E), *w3 = malloc(sizeof(float) * N_TEST * n3 * x.E);
    const pad_winclip_feats f = {img, pat, {w2, w3}};
    cr_assert(pad_winclip_encode(wc, x.test, N_TEST, &f) == PAD_OK);
    float *ri = want(&x, "zs_image_embed", 2, (int64_t[]){N_TEST, x.E});
    float *rp = want(&x, "zs_patch_embed", 3, (int64_t[]){N_TEST, x.P, x.D});
    float *r2 = want(&x, "zs_win2_embed", 3, (int64_t[]){N_TEST, n2, x.E});
    float *r3 = want(&x, "zs_win3_embed", 3, (int64_t[]){N_TEST, n3, x.E});
    PAD_ASSERT_REL("image embeddings", img, ri, (size_t)N_TEST * x.E, 1e-4);
    PAD_ASSERT_REL("patch embeddings", pat, rp, (size_t)N_TEST * x.P * x.D, 1e-4);
    PAD_ASSERT_REL("windows 2x2", w2, r2, (size_t)N_TEST * n2 * x.E, 1e-4);
    PAD_ASSERT_REL("windows 3x3", w3, r3, (size_t)N_TEST * n3 * x.E, 1e-4);
    // one window per launch (max_rows below two windows) and one image per batch: the same values
    pad_winclip_free(wc);
    p.max_batch = 1;
    p.max_rows = 11;
    cr_assert(pad_winclip_create(&wc, x.be, x.w, &p) == PAD_OK);
    for (int i = 0; i < N_TEST; i++) {
        const pad_winclip_feats fi = {
            img + (size_t)i * x.E, NULL, {w2 + (size_t)i * n2 * x.E, w3 + (size_t)i * n3 * x.E}};
        cr_assert(pad_winclip_encode(wc, x.test + (size_t)i * 3 * x.S * x.S, 1, &fi) == PAD_OK);
    }
    PAD_ASSERT_REL("image embeddings, batch 1", img, ri, (size_t)N_TEST * x.E, 1e-4);
    PAD_ASSERT_REL("windows 2x2, one per launch", w2, r2, (size_t)N_TEST * n2 * x.E, 1e-4);
    PAD_ASSERT_REL("windows 3x3, one per launch", w3, r3, (size_t)N_TEST * n3 * x.E, 1e-4);
    free(ri), free(rp), free(r2), free(r3), free(img), free(pat), free(w2), free(w3);
    pad_winclip_free(wc);
    close_fx(&x);
}

// Scores the test images (zero-shot, or few-shot with the shots) and compares with the fixture's `pre`_* values.
static void check_scores(bool few, int max_batch) {
    fx x = open_fx();
    pad_winclip_params p = pad_winclip_default_params();
    p.max_batch = max_batch;
    pad_winclip *wc = NULL;
    cr_assert(pad_winclip_create(&wc, x.be, x.w, &p) == PAD_OK);
    float img[N_TEST], *grid = malloc(sizeof(float) * N_TEST * x.P);
    pad_test_log_start();
    cr_assert(pad_winclip_score(wc, x.test, N_TEST, img, grid, NULL) == PAD_ERR_INVALID_ARG); // no text yet
    cr_assert(strstr(pad_test_log_text(), "before the text vectors"));
    pad_test_log_stop();
    cr_assert(pad_winclip_set_text(wc, x.text) == PAD_OK);
    if (few) cr_assert(pad_winclip_set_refs(wc, x.shots, N_SHOT) == PAD_OK);
    cr_assert_eq(pad_winclip_k_shot(wc), few ? N_SHOT : 0);
    float *zs = malloc(sizeof(float) * N_TEST * x.P), *fs = malloc(sizeof(float) * N_TEST * x.P);
    const pad_winclip_parts parts = {zs, fs};
    cr_assert(pad_winclip_score(wc, x.test, N_TEST, img, grid, &parts) == PAD_OK);
    const char *pre = few ? "fs" : "zs";
    float *wi = want(&x, pad_test_fmt("%s_image_score", pre), 1, (int64_t[]){N_TEST});
    float *wg = want(&x, pad_test_fmt("%s_grid", pre), 3, (int64_t[]){N_TEST, x.G, x.G});
    float *wz = want(&x, "zs_grid", 3, (int64_t[]){N_TEST, x.G, x.G});
    PAD_ASSERT_CLOSE("image scores", img, wi, N_TEST, 1e-4, 0);
    PAD_ASSERT_CLOSE("score grid", grid, wg, (size_t)N_TEST * x.P, 1e-4, 0);
    PAD_ASSERT_CLOSE("zero-shot grid", zs, wz, (size_t)N_TEST * x.P, 1e-4, 0);
    if (few) {
        float *wf = want(&x, "fs_visual_grid", 3, (int64_t[]){N_TEST, x.G, x.G});
        PAD_ASSERT_CLOSE("few-shot grid", fs, wf, (size_t)N_TEST * x.P, 1e-5, 0);
        free(wf);
    }
    // the pixel map: bilinear upsample of the grid, no Gaussian
    float *maps = malloc(sizeof(float) * N_TEST * RES * RES);
    float *wm = want(&x, pad_test_fmt("%s_pixel_map", pre), 3, (int64_t[]){N_TEST, RES, RES});
    cr_assert(pad_grid_maps(x.be, grid, N_TEST, x.G, RES, 0.0, maps, NULL) == PAD_OK);
    PAD_ASSERT_CLOSE("pixel map", maps, wm, (size_t)N_TEST * RES * RES, 1e-4, 0);
    // back to zero-shot: the zero-shot results again
    if (few) {
        cr_assert(pad_winclip_set_refs(wc, NULL, 0) == PAD_OK);
        cr_assert(pad_winclip_score(wc, x.test, N_TEST, img, grid, NULL) == PAD_OK);
        PAD_ASSERT_CLOSE("zero-shot grid after clearing the references", grid, wz, (size_t)N_TEST * x.P, 1e-4, 0);
    }
    free(wi), free(wg), free(wz), free(wm), free(maps), free(grid), free(zs), free(fs);
    pad_winclip_free(wc);
    close_fx(&x);
}

Test(winclip, zero_shot) {
    check_scores(false, 4);
}

Test(winclip, few_shot) {
    check_scores(true, 4);
}

Test(winclip, few_shot_batch1) {
    check_scores(true, 1);
}

// The test-feature cache: zero-shot and few-shot scores from one encoding of the test images, equal to
// pad_winclip_score's bit for bit and to the goldens.
Test(winclip, cached_scores) {
    fx x = open_fx();
    pad_winclip_params p = pad_winclip_default_params();
    p.max_batch = 2; // two batches for three images
    pad_winclip *wc = NULL;
    cr_assert(pad_winclip_create(&wc, x.be, x.w, &p) == PAD_OK);
    cr_assert(pad_winclip_set_text(wc, x.text) == PAD_OK);
    pad_winclip_cache *c = NULL;
    cr_assert(pad_winclip_cache_create(&c, wc, x.test, N_TEST) == PAD_OK);
    float img[N_TEST], ref_img[N_TEST], *grid = malloc(sizeof(float) * N_TEST * x.P);
    float *ref_grid = malloc(sizeof(float) * N_TEST * x.P);
    for (int few = 0; few <= 1; few++) {
        cr_assert(pad_winclip_set_refs(wc, x.shots, few ? N_SHOT : 0) == PAD_OK);
        cr_assert(pad_winclip_score_cached(wc, c, img, grid, NULL) == PAD_OK);
        cr_assert(pad_winclip_score(wc, x.test, N_TEST, ref_img, ref_grid, NULL) == PAD_OK);
        cr_assert(memcmp(img, ref_img, sizeof img) == 0, "cached image scores differ (few-shot %d)", few);
        cr_assert(memcmp(grid, ref_grid, sizeof(float) * N_TEST * x.P) == 0, "cached grids differ (few-shot %d)", few);
        float *wg = want(&x, few ? "fs_grid" : "zs_grid", 3, (int64_t[]){N_TEST, x.G, x.G});
        PAD_ASSERT_CLOSE("cached grid vs golden", grid, wg, (size_t)N_TEST * x.P, 1e-4, 0);
        free(wg);
    }
    free(grid);
    free(ref_grid);
    pad_winclip_cache_free(c);
    pad_winclip_free(wc);
    close_fx(&x);
}

Test(winclip, cpe) {
    fx x = open_fx();
    pad_vit_params vp = pad_vit_default_params();
    vp.max_batch = 2; // two batches for three images
    pad_vit *vit = NULL;
    cr_assert(pad_vit_create(&vit, x.be, x.w, &vp) == PAD_OK);
    float img[N_TEST], *grid = malloc(sizeof(float) * N_TEST * x.P);
    cr_assert(pad_cpe_score(x.be, vit, x.text, PAD_WINCLIP_TEMPERATURE, x.test, N_TEST, img, grid) == PAD_OK);
    float *wi = want(&x, "cpe_image_score", 1, (int64_t[]){N_TEST});
    float *wg = want(&x, "cpe_grid", 3, (int64_t[]){N_TEST, x.G, x.G});
    PAD_ASSERT_CLOSE("cpe image scores", img, wi, N_TEST, 1e-4, 0);
    PAD_ASSERT_CLOSE("cpe grid", grid, wg, (size_t)N_TEST * x.P, 1e-4, 0);
    float *maps = malloc(sizeof(float) * N_TEST * RES * RES), *sm = malloc(sizeof(float) * N_TEST * RES * RES);
    float *wm = want(&x, "cpe_pixel_map", 3, (int64_t[]){N_TEST, RES, RES});
    float *ws = want(&x, "cpe_pixel_map_smoothed", 3, (int64_t[]){N_TEST, RES, RES});
    cr_assert(pad_grid_maps(x.be, grid, N_TEST, x.G, RES, 4.0, maps, sm) == PAD_OK);
    PAD_ASSERT_CLOSE("cpe pixel map", maps, wm, (size_t)N_TEST * RES * RES, 1e-4, 0);
    PAD_ASSERT_CLOSE("cpe smoothed map", sm, ws, (size_t)N_TEST * RES * RES, 1e-4, 0);
    free(wi), free(wg), free(wm), free(ws), free(maps), free(sm), free(grid);
    pad_vit_free(vit);
    close_fx(&x);
}

Test(winclip, bad_params) {
    fx x = open_fx();
    pad_winclip *wc = NULL;
    pad_winclip_params p = pad_winclip_default_params();
    p.scales[1] = x.G + 1;
    pad_test_log_start();
    cr_assert(pad_winclip_create(&wc, x.be, x.w, &p) == PAD_ERR_INVALID_ARG && !wc);
    p = pad_winclip_default_params();
    p.temperature = 0.0f;
    cr_assert(pad_winclip_create(&wc, x.be, x.w, &p) == PAD_ERR_INVALID_ARG && !wc);
    p = pad_winclip_default_params();
    p.n_scales = PAD_WINCLIP_MAX_SCALES + 1;
    cr_assert(pad_winclip_create(&wc, x.be, x.w, &p) == PAD_ERR_INVALID_ARG && !wc);
    pad_test_log_stop();
    close_fx(&x);
}
