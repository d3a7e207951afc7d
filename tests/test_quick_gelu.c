/* test_quick_gelu.c - QuickGELU, the MLP activation of OpenAI's CLIP weights (docs/clip.md#activation), on the CPU
 * backend against the PyTorch reference of tests/ref/ref_quick_gelu.py (fixture quick_gelu.safetensors, float64):
 * the op with and without a bias and its backward, finite differences of the op and of the text tower, a checkpoint
 * whose metadata says quick_gelu (written by make-model's generator) loading with that activation, and both towers
 * of that model matching the reference. Files without the metadata load as GELU; a bad value is refused. */
#include "check.h"
#include "text.h"
#include "vit.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static pad_backend *be;
static void setup(void) {
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
}
static void teardown(void) {
    pad_backend_free(be);
}
TestSuite(quick_gelu, .init = setup, .fini = teardown, .timeout = 300);

Test(quick_gelu, op_and_backward_match_reference) {
    pad_st_file *fx = pad_fixture_open("quick_gelu.safetensors");
    const int M = 8, N = 125;
    const int64_t sh[2] = {M, N};
    float *x = pad_fixture_f32(fx, "op_x", 2, sh), *bias = pad_fixture_f32(fx, "op_bias", 1, (int64_t[]){N});
    float *dout = pad_fixture_f32(fx, "op_dout", 2, sh), *y_want = pad_fixture_f32(fx, "op_y", 2, sh);
    float *yb_want = pad_fixture_f32(fx, "op_y_bias", 2, sh), *dx_want = pad_fixture_f32(fx, "op_dx", 2, sh);
    float *y = malloc(sizeof(float) * M * N), *dx = malloc(sizeof(float) * M * N);
    cr_assert(pad_op_quick_gelu(be, y, x, NULL, M, N) == PAD_OK);
    PAD_ASSERT_CLOSE("quick_gelu", y, y_want, (size_t)M * N, 1e-7, 1e-6);
    cr_assert(pad_op_mlp_act(be, PAD_ACT_QUICK_GELU, y, x, bias, M, N) == PAD_OK);
    PAD_ASSERT_CLOSE("quick_gelu with bias", y, yb_want, (size_t)M * N, 1e-7, 1e-6);
    cr_assert(pad_op_quick_gelu_backward(be, dx, dout, x, (size_t)M * N) == PAD_OK);
    PAD_ASSERT_CLOSE("quick_gelu backward", dx, dx_want, (size_t)M * N, 1e-7, 1e-5);
    // in place (out aliases inp; dinp aliases dout) gives the same
    memcpy(y, x, sizeof(float) * M * N);
    cr_assert(pad_op_quick_gelu(be, y, y, NULL, M, N) == PAD_OK);
    PAD_ASSERT_CLOSE("quick_gelu in place", y, y_want, (size_t)M * N, 1e-7, 1e-6);
    memcpy(dx, dout, sizeof(float) * M * N);
    cr_assert(pad_op_mlp_act_backward(be, PAD_ACT_QUICK_GELU, dx, dx, x, (size_t)M * N) == PAD_OK);
    PAD_ASSERT_CLOSE("quick_gelu backward in place", dx, dx_want, (size_t)M * N, 1e-7, 1e-5);
    // the exact values at 0 and +-30 (the sigmoid saturates: x and -0)
    cr_assert(y_want[0] == 0.0f && y_want[4] == 30.0f && fabsf(y_want[5]) < 1e-20f);
    free(x), free(bias), free(dout), free(y_want), free(yb_want), free(dx_want), free(y), free(dx);
    pad_st_close(fx);
}

Test(quick_gelu, backward_finite_differences) {
    float x[11] = {-6, -3, -1.5f, -1, -0.5f, 0, 0.25f, 0.5f, 1, 2, 5}, d[11], one[11];
    for (int i = 0; i < 11; i++)
        one[i] = 1;
    cr_assert(pad_op_quick_gelu_backward(be, d, one, x, 11) == PAD_OK);
    for (int i = 0; i < 11; i++) {
        const float h = 1e-2f;
        float xp[1] = {x[i] + h}, xm[1] = {x[i] - h}, yp, ym;
        cr_assert(pad_op_quick_gelu(be, &yp, xp, NULL, 1, 1) == PAD_OK);
        cr_assert(pad_op_quick_gelu(be, &ym, xm, NULL, 1, 1) == PAD_OK);
        double fd = ((double)yp - ym) / ((double)xp[0] - xm[0]);
        cr_assert(fabs(d[i] - fd) < 2e-4, "quick_gelu'(%g) = %g, fd %g", x[i], d[i], fd);
    }
    // the GELU choice still runs the exact GELU (pad_op_mlp_act is only a dispatch)
    float g[11], g2[11];
    cr_assert(pad_op_mlp_act(be, PAD_ACT_GELU, g, x, NULL, 1, 11) == PAD_OK);
    cr_assert(pad_op_gelu(be, g2, x, 11) == PAD_OK);
    cr_assert(memcmp(g, g2, sizeof g) == 0);
}

// The reference's model: make-model --preset tiny --layers 2 --text-layers 2 --vocab-size 64 --activation
// quick_gelu --seed 11, saved and loaded back (the activation travels in the metadata).
static pad_clip_weights *load_model(pad_st_file *fx, const char *tag) {
    pad_clip_cfg c = pad_model_preset_cfg(PAD_MODEL_TINY);
    c.vision.layers = c.text.layers = 2;
    c.text.vocab = 64;
    c.act = PAD_ACT_QUICK_GELU;
    pad_clip_weights *w = NULL, *r = NULL;
    cr_assert(pad_weights_make_random(&w, &c, 11) == PAD_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", pad_test_tmpdir("quick_gelu"), tag);
    cr_assert(pad_weights_save(w, path) == PAD_OK);
    pad_weights_free(w);
    cr_assert(pad_weights_load(&r, path, PAD_WEIGHTS_ALL) == PAD_OK);
    cr_assert(r->cfg.act == PAD_ACT_QUICK_GELU, "the metadata's activation was not read");
    const pad_text_cfg *t = &r->cfg.text;
    const float *ps[3] = {r->conv1_w, r->tok_emb, r->txt[1].fc_w};
    const size_t ns[3] = {(size_t)r->cfg.vision.width * 3 * 16 * 16, (size_t)t->vocab * t->width,
                          (size_t)t->mlp * t->width};
    double want[3];
    const pad_st_tensor *ck = pad_st_find(fx, "weights_checksum");
    cr_assert(ck && ck->dtype == PAD_DTYPE_F64 && ck->numel == 3);
    memcpy(want, ck->data, sizeof want);
    for (int i = 0; i < 3; i++) {
        double s = 0;
        for (size_t j = 0; j < ns[i]; j++)
            s += ps[i][j];
        cr_assert(fabs(s - want[i]) <= 1e-9 * fmax(1.0, fabs(want[i])),
                  "the random weight generator changed (checksum %d): regenerate with tests/ref/ref_quick_gelu.py", i);
    }
    return r;
}

Test(quick_gelu, vision_tower_matches_reference) {
    pad_st_file *fx = pad_fixture_open("quick_gelu.safetensors");
    pad_clip_weights *hw = load_model(fx, "vision"), *w = NULL;
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    const int E = hw->cfg.embed_dim, D = hw->cfg.vision.width, GG = hw->cfg.vision.grid * hw->cfg.vision.grid;
    float *pix = pad_fixture_f32(fx, "pixels", 4, (int64_t[]){1, 3, 64, 64});
    float *cls_want = pad_fixture_f32(fx, "cls", 2, (int64_t[]){1, E});
    float *mid_want = pad_fixture_f32(fx, "mid2", 3, (int64_t[]){1, GG, D});
    float *cls = malloc(sizeof(float) * E), *mid = malloc(sizeof(float) * GG * D);
    pad_vit_params vp = pad_vit_default_params();
    vp.max_batch = 1;
    vp.tap1 = 0;
    vp.tap2 = 1;
    pad_vit *vit = NULL;
    cr_assert(pad_vit_create(&vit, be, w, &vp) == PAD_OK);
    const pad_vit_out o = {cls, NULL, NULL, mid};
    cr_assert(pad_vit_encode_host(vit, pix, 1, &o) == PAD_OK);
    PAD_ASSERT_CLOSE("cls (QuickGELU)", cls, cls_want, (size_t)E, 1e-5, 1e-4);
    PAD_ASSERT_CLOSE("tap 1 (QuickGELU)", mid, mid_want, (size_t)GG * D, 1e-5, 1e-4);
    // the same weights with GELU (model.activation gelu) give another embedding: the activation is really used
    w->cfg.act = PAD_ACT_GELU;
    pad_vit_free(vit);
    cr_assert(pad_vit_create(&vit, be, w, &vp) == PAD_OK);
    cr_assert(pad_vit_encode_host(vit, pix, 1, &o) == PAD_OK);
    cr_assert(!pad_check_close(cls, cls_want, (size_t)E, 1e-5, 1e-4).ok, "GELU gave QuickGELU's embedding");
    pad_vit_free(vit);
    free(pix), free(cls_want), free(mid_want), free(cls), free(mid);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_st_close(fx);
}

// sum(feat * dfeat) of the text tower at emb.
static double text_loss(pad_text_encoder *te, float *feat, const float *emb, const float *dfeat, int n) {
    cr_assert(pad_text_encoder_forward(te, feat, emb) == PAD_OK);
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)feat[i] * dfeat[i];
    return s;
}

Test(quick_gelu, text_tower_and_backward_match_reference) {
    pad_st_file *fx = pad_fixture_open("quick_gelu.safetensors");
    pad_clip_weights *hw = load_model(fx, "text"), *w = NULL;
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    const int P = 2, L = 6, W = hw->cfg.text.width, E = hw->cfg.embed_dim;
    const int32_t eot[2] = {5, 3};
    float *emb = pad_fixture_f32(fx, "emb", 3, (int64_t[]){P, L, W});
    float *dfeat = pad_fixture_f32(fx, "dfeat", 2, (int64_t[]){P, E});
    float *feat_want = pad_fixture_f32(fx, "feat", 2, (int64_t[]){P, E});
    float *demb_want = pad_fixture_f32(fx, "demb", 3, (int64_t[]){P, L, W});
    float *feat = malloc(sizeof(float) * P * E), *demb = malloc(sizeof(float) * P * L * W);
    pad_text_encoder *te = NULL;
    cr_assert(pad_text_encoder_create(&te, w, P, L) == PAD_OK);
    cr_assert(pad_text_encoder_set_batch(te, eot, P) == PAD_OK);
    cr_assert(pad_text_encoder_forward(te, feat, emb) == PAD_OK);
    PAD_ASSERT_CLOSE("text features (QuickGELU)", feat, feat_want, (size_t)P * E, 1e-5, 1e-4);
    cr_assert(pad_text_encoder_backward(te, demb, dfeat) == PAD_OK);
    PAD_ASSERT_CLOSE("text input gradient (QuickGELU)", demb, demb_want, (size_t)P * L * W, 1e-5, 1e-3);
    // central finite differences of sum(feat * dfeat) on a few inputs (rows before and at each EOT)
    const int probe[6] = {0, 5 * W + 7, 2 * W + 100, L * W + 3, L * W + 3 * W + 64, L * W + 1 * W + 127};
    for (int i = 0; i < 6; i++) {
        const int k = probe[i];
        const float v = emb[k], h = 1e-2f;
        emb[k] = v + h;
        double lp = text_loss(te, feat, emb, dfeat, P * E);
        emb[k] = v - h;
        double lm = text_loss(te, feat, emb, dfeat, P * E);
        emb[k] = v;
        double fd = (lp - lm) / (2.0 * h);
        cr_assert(fabs(fd - demb[k]) < 2e-3 * (1 + fabs(fd)), "demb[%d] = %g, finite difference %g", k, demb[k], fd);
    }
    pad_text_encoder_free(te);
    free(emb), free(dfeat), free(feat_want), free(demb_want), free(feat), free(demb);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_st_close(fx);
}

// Replaces the first occurrence of `from` in the file by `to` (same length).
static void patch_file(const char *path, const char *from, const char *to) {
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    const size_t k = strlen(from);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(buf + i, from, k) == 0) {
            cr_assert(fseek(f, (long)i, SEEK_SET) == 0 && fwrite(to, 1, k, f) == k);
            fclose(f);
            return;
        }
    fclose(f);
    cr_assert_fail("%s: '%s' not found in the header", path, from);
}

Test(quick_gelu, metadata_default_and_bad_value) {
    pad_clip_cfg c = pad_model_preset_cfg(PAD_MODEL_TINY);
    c.vision.layers = c.text.layers = 1;
    c.text.vocab = 64;
    pad_clip_weights *w = NULL, *r = NULL;
    cr_assert(pad_weights_make_random(&w, &c, 1) == PAD_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/meta.safetensors", pad_test_tmpdir("quick_gelu_meta"));
    cr_assert(pad_weights_save(w, path) == PAD_OK); // GELU: no activation entry, as before
    pad_clip_cfg probe;
    cr_assert(pad_weights_probe(path, &probe) == PAD_OK && probe.act == PAD_ACT_GELU);
    w->cfg.act = PAD_ACT_QUICK_GELU;
    cr_assert(pad_weights_save(w, path) == PAD_OK);
    cr_assert(pad_weights_probe(path, &probe) == PAD_OK && probe.act == PAD_ACT_QUICK_GELU);
    patch_file(path, "quick_gelu", "quack_gelu");
    pad_test_log_start();
    cr_assert(pad_weights_load(&r, path, PAD_WEIGHTS_ALL) == PAD_ERR_FORMAT && !r);
    PAD_ASSERT_LOG_HAS("metadata activation 'quack_gelu' is neither gelu nor quick_gelu");
    pad_test_log_stop();
    pad_activation a;
    cr_assert(pad_activation_parse("gelu", &a) == PAD_OK && a == PAD_ACT_GELU);
    cr_assert(pad_activation_parse("QuickGELU", &a) == PAD_ERR_INVALID_ARG);
    cr_assert_str_eq(pad_activation_name(PAD_ACT_QUICK_GELU), "quick_gelu");
    pad_weights_free(w);
}
