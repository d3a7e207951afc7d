/* towers.c - parity of the two towers: the vision tower on the tiny fixture model and on a full-size random
 * ViT-B-16-plus-240 (float32 default kernels, fast kernels, TF32, BF16), and the text tower forward/backward. */
#include "parity.h"

#include "fsutil.h"
#include "metrics.h"
#include "prompt.h"
#include "prompt_set.h"
#include "score.h"
#include "st_file.h"
#include "text.h"
#include "tokenizer.h"
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// towers

typedef struct tower_out {
    float *cls, *tok, *mid1, *mid2; // host
    size_t n_cls, n_tok, n_mid;
} tower_out;

static void feats_free(tower_out *f) {
    free(f->cls);
    free(f->tok);
    free(f->mid1);
    free(f->mid2);
    memset(f, 0, sizeof *f);
}

static pad_status run_tower(pad_backend *be, const pad_clip_weights *host, const float *pix, int n, int max_batch,
                            tower_out *f, double *ms) {
    pad_clip_weights *w = NULL;
    pad_vit *vit = NULL;
    memset(f, 0, sizeof *f);
    PAD_TRY(pad_weights_to_backend(host, be, &w));
    const pad_vision_cfg *c = &host->cfg.vision;
    pad_vit_params prm = pad_vit_depth_params(c->layers); // [3, 8] for the 12-block towers
    prm.max_batch = max_batch;
    pad_status st = pad_vit_create(&vit, be, w, &prm);
    f->n_cls = (size_t)n * host->cfg.embed_dim;
    f->n_tok = f->n_cls * c->grid * c->grid;
    f->n_mid = (size_t)n * c->grid * c->grid * c->width;
    f->cls = malloc(f->n_cls * sizeof(float));
    f->tok = malloc(f->n_tok * sizeof(float));
    f->mid1 = malloc(f->n_mid * sizeof(float));
    f->mid2 = malloc(f->n_mid * sizeof(float));
    pad_vit_out o = {f->cls, f->tok, f->mid1, f->mid2};
    if (st == PAD_OK) st = pad_vit_encode_host(vit, pix, n, &o); // warm-up and result
    if (st == PAD_OK && ms) {
        double t0 = pad_now();
        st = pad_vit_encode_host(vit, pix, n, &o);
        *ms = (pad_now() - t0) * 1e3;
    }
    pad_vit_free(vit);
    pad_weights_free(w);
    return st;
}

static void check_feats(const char *tag, const tower_out *got, const tower_out *want, double atol, double rtol,
                        double nmse_max, double ms) {
    char name[200];
    snprintf(name, sizeof name, "%s cls", tag);
    check(name, got->cls, want->cls, want->n_cls, atol, rtol, nmse_max, ms);
    snprintf(name, sizeof name, "%s tokens", tag);
    check(name, got->tok, want->tok, want->n_tok, atol, rtol, nmse_max, ms);
    snprintf(name, sizeof name, "%s mid1", tag);
    check(name, got->mid1, want->mid1, want->n_mid, atol, rtol, nmse_max, ms);
    snprintf(name, sizeof name, "%s mid2", tag);
    check(name, got->mid2, want->mid2, want->n_mid, atol, rtol, nmse_max, ms);
}

void vision_tiny(void) {
    if (!path_on(false)) return;
    // tiny: CPU, GPU in chunks of 2, and the float64 fixture
    if (selected("tower/vision tiny")) {
        pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
        pad_clip_weights *host = NULL;
        pad_st_file *f = NULL;
        float *pix = NULL;
        tower_out c = {0}, d = {0}, fx = {0};
        TRY_OR_FAIL("tower/vision tiny", pad_weights_make_random(&host, &cfg, 0));
        TRY_OR_FAIL("tower/vision tiny", pad_st_open(&f, PAD_FIXTURE_DIR "/vision_tiny.safetensors"));
        const int S = cfg.vision.image_size;
        TRY_OR_FAIL("tower/vision tiny", pad_st_read_f32(f, "pixels", 4, (int64_t[]){3, 3, S, S}, &pix, NULL));
        TRY_OR_FAIL("tower/vision tiny", run_tower(pg.cpu, host, pix, 3, 3, &c, NULL));
        double ms = 0;
        TRY_OR_FAIL("tower/vision tiny", run_tower(pg.gpu, host, pix, 3, 2, &d, &ms));
        check_feats("tower/vision tiny gpu vs cpu", &d, &c, 2e-5, 2e-4, -1, ms);
        fx.n_cls = c.n_cls;
        fx.n_tok = c.n_tok;
        fx.n_mid = c.n_mid;
        TRY_OR_FAIL("tower/vision tiny", pad_st_read_f32(f, "cls", -1, NULL, &fx.cls, NULL));
        TRY_OR_FAIL("tower/vision tiny", pad_st_read_f32(f, "tokens", -1, NULL, &fx.tok, NULL));
        TRY_OR_FAIL("tower/vision tiny", pad_st_read_f32(f, "mid1", -1, NULL, &fx.mid1, NULL));
        TRY_OR_FAIL("tower/vision tiny", pad_st_read_f32(f, "mid2", -1, NULL, &fx.mid2, NULL));
        check_feats("tower/vision tiny gpu vs float64 fixture", &d, &fx, 2e-5, 2e-4, -1, ms);
    done:
        feats_free(&c);
        feats_free(&d);
        feats_free(&fx);
        free(pix);
        pad_st_close(f);
        pad_weights_free(host);
    }
}

void vision_full(void) {
    if (pg.quick) return;
    // full-size ViT-B-16-plus-240 with random weights: exact mode, fast kernels, TF32, BF16
    const char *base = "tower/vision B16+";
    bool any = false;
    static const char *const tags[] = {"", " fast", " fast tf32", " fast bf16", " tf32"};
    for (int m = 0; m < 5; m++) {
        char nm[96];
        snprintf(nm, sizeof nm, "%s%s", base, tags[m]);
        any = any || (selected(nm) && path_on(m > 0));
    }
    if (!any) return;
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_B16_PLUS_240);
    pad_clip_weights *host = NULL;
    tower_out c = {0};
    float *pix = NULL;
    TRY_OR_FAIL(base, pad_weights_make_random(&host, &cfg, 3));
    const int S = cfg.vision.image_size, n = 2;
    pix = rand_host((size_t)n * 3 * S * S, -2, 2);
    TRY_OR_FAIL(base, run_tower(pg.cpu, host, pix, n, n, &c, NULL));
    for (int m = 0; m < 5; m++) {
        char nm[96];
        snprintf(nm, sizeof nm, "%s%s", base, tags[m]);
        if (!selected(nm) || !path_on(m > 0) || (m > 0 && pg.twin)) continue;
        const bool fast = m >= 1 && m <= 3;
        const pad_math_mode mm = m == 2 || m == 4 ? PAD_MATH_TF32 : m == 3 ? PAD_MATH_BF16 : PAD_MATH_FP32;
        pad_backend_set_fast_kernels(pg.gpu, fast);
        pad_backend_set_math(pg.gpu, mm);
        tower_out d = {0};
        double ms = 0;
        pad_status st = run_tower(pg.gpu, host, pix, n, n, &d, &ms);
        pad_backend_set_fast_kernels(pg.gpu, false);
        pad_backend_set_math(pg.gpu, PAD_MATH_FP32);
        if (st != PAD_OK) {
            fail(nm, "forward failed");
        } else if (mm == PAD_MATH_FP32) {
            check_feats(nm, &d, &c, 1e-4, 1e-3, 1e-9, ms);
        } else { // tensor cores through 12 blocks: loose bounds that still catch a wrong kernel (NMSE ~1)
            check_feats(nm, &d, &c, INFINITY, INFINITY, mm == PAD_MATH_TF32 ? 1e-3 : 3e-2, ms);
        }
        feats_free(&d);
    }
done:
    feats_free(&c);
    free(pix);
    pad_weights_free(host);
}

// The tiny model of the text/prompt fixtures (tests/support/tiny_model.c without Criterion).
pad_status tiny514(pad_clip_weights **w) {
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
    cfg.text.vocab = 514;
    return pad_weights_make_random(w, &cfg, 0);
}

static void text_encoder_case(const char *name, const pad_clip_weights *hw, int P, int L, const int32_t *eot) {
    pad_clip_weights *wc = NULL, *wg = NULL;
    pad_text_encoder *tc = NULL, *tg = NULL;
    const int W = hw->cfg.text.width, E = hw->cfg.embed_dim;
    const size_t ne = (size_t)P * L * W;
    twin emb = tw_rand(ne, -0.1f, 0.1f), dfeat = tw_rand((size_t)P * E, -1, 1);
    twin feat = tw_nan((size_t)P * E), demb = tw_nan(ne);
    TRY_OR_FAIL(name, pad_weights_to_backend(hw, pg.cpu, &wc));
    TRY_OR_FAIL(name, pad_weights_to_backend(hw, pg.gpu, &wg));
    TRY_OR_FAIL(name, pad_text_encoder_create(&tc, wc, P, L));
    TRY_OR_FAIL(name, pad_text_encoder_create(&tg, wg, P, L));
    TRY_OR_FAIL(name, pad_text_encoder_set_batch(tc, eot, P));
    TRY_OR_FAIL(name, pad_text_encoder_set_batch(tg, eot, P));
    TRY_OR_FAIL(name, pad_text_encoder_forward(tc, feat.c, emb.c));
    TRY_OR_FAIL(name, pad_text_encoder_backward(tc, demb.c, dfeat.c));
    double t0 = t_begin();
    TRY_OR_FAIL(name, pad_text_encoder_forward(tg, feat.d, emb.d));
    TRY_OR_FAIL(name, pad_text_encoder_backward(tg, demb.d, dfeat.d));
    double ms = t_end(t0);
    char n2[200];
    float *hf = gpu_get(feat.d, feat.n), *hd = gpu_get(demb.d, demb.n);
    snprintf(n2, sizeof n2, "%s features", name);
    check_rel(n2, hf, feat.c, feat.n, 1e-5, ms);
    snprintf(n2, sizeof n2, "%s d emb", name);
    check_rel(n2, hd, demb.c, demb.n, 1e-4, ms);
    free(hf);
    free(hd);
done:
    pad_text_encoder_free(tc);
    pad_text_encoder_free(tg);
    pad_weights_free(wc);
    pad_weights_free(wg);
    tw_free(&emb);
    tw_free(&dfeat);
    tw_free(&feat);
    tw_free(&demb);
}

// A ViT-L/14-shaped model (2 vision and 2 text blocks) with QuickGELU: both towers, GPU against CPU.
void towers_quick_gelu(void) {
    const char *name = "tower/quick_gelu L14x2";
    if (!path_on(false) || !selected(name)) return;
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_L14);
    cfg.vision.layers = cfg.text.layers = 2;
    cfg.text.vocab = 1000;
    cfg.act = PAD_ACT_QUICK_GELU;
    pad_clip_weights *hw = NULL;
    if (pad_weights_make_random(&hw, &cfg, 13) != PAD_OK) {
        fail(name, "cannot make the model");
        return;
    }
    const int S = cfg.vision.image_size;
    twin pix = tw_rand((size_t)2 * 3 * S * S, -2, 2);
    tower_out c, d;
    double ms = 0;
    if (run_tower(pg.cpu, hw, pix.c, 2, 2, &c, NULL) == PAD_OK && run_tower(pg.gpu, hw, pix.c, 2, 1, &d, &ms) == PAD_OK)
        check_feats("tower/quick_gelu L14x2 vision gpu vs cpu", &d, &c, 2e-5, 2e-4, -1, ms);
    else
        fail(name, "vision tower failed");
    feats_free(&c);
    feats_free(&d);
    tw_free(&pix);
    const int32_t eot[3] = {4, 11, 7};
    text_encoder_case("tower/quick_gelu L14x2 text", hw, 3, 12, eot);
    pad_weights_free(hw);
}

void towers_text(void) {
    if (!path_on(false)) return;
    if (selected("tower/text tiny")) {
        pad_clip_weights *hw = NULL;
        if (tiny514(&hw) == PAD_OK) {
            const int32_t eot[5] = {6, 16, 1, 9, 12};
            text_encoder_case("tower/text tiny", hw, 5, 17, eot);
        } else {
            fail("tower/text tiny", "cannot make the tiny model");
        }
        pad_weights_free(hw);
    }
    if (pg.quick || !selected("tower/text B16+")) return;
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_B16_PLUS_240);
    pad_clip_weights *hw = NULL;
    if (pad_weights_make_random(&hw, &cfg, 5) != PAD_OK) {
        fail("tower/text B16+", "cannot make the model");
        return;
    }
    int32_t eot[48];
    for (int p = 0; p < 48; p++)
        eot[p] = 8 + (p * 7) % 13; // 8..20: L = 21
    text_encoder_case("tower/text B16+ P48 L21", hw, 48, 21, eot);
    pad_weights_free(hw);
}
