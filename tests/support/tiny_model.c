/* tiny_model.c - the helpers of tiny_model.h. */
#include "tiny_model.h"

#include "image.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The tensors whose float64 sums tests/ref/ref_text.py records, in its order (CHECKSUM_TENSORS).
static void checksum(const pad_clip_weights *w, double out[6]) {
    const pad_text_cfg *t = &w->cfg.text;
    const struct {
        const float *p;
        size_t n;
    } k[6] = {
        {w->tok_emb, (size_t)t->vocab * t->width},
        {w->txt_pos, (size_t)t->context * t->width},
        {w->txt[0].in_proj_w, (size_t)3 * t->width * t->width},
        {w->txt[t->layers - 1].proj_w, (size_t)t->width * t->mlp},
        {w->ln_final_w, (size_t)t->width},
        {w->txt_proj, (size_t)t->width * w->cfg.embed_dim},
    };
    for (int i = 0; i < 6; i++) {
        double s = 0.0;
        for (size_t j = 0; j < k[i].n; j++)
            s += k[i].p[j];
        out[i] = s;
    }
}

pad_clip_weights *pad_tiny514_weights(pad_st_file *fixture) {
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
    cfg.text.vocab = 514;
    pad_clip_weights *w = NULL;
    cr_assert(pad_weights_make_random(&w, &cfg, 0) == PAD_OK);
    cr_assert(w->cfg.text.layers == 12, "tiny preset changed: %d text layers", w->cfg.text.layers);
    const pad_st_tensor *t = pad_st_find(fixture, "weights_checksum");
    cr_assert(t && t->dtype == PAD_DTYPE_F64 && t->numel == 6, "%s: no F64 weights_checksum[6]", fixture->path);
    double want[6], got[6];
    memcpy(want, t->data, sizeof want);
    checksum(w, got);
    for (int i = 0; i < 6; i++)
        cr_assert(fabs(got[i] - want[i]) <= 1e-9 * fmax(1.0, fabs(want[i])),
                  "the random weight generator changed (checksum %d: got %.12g, fixture %.12g): regenerate the "
                  "fixtures with tests/ref/ref_text.py",
                  i, got[i], want[i]);
    return w;
}

double pad_rel_err(const float *got, const float *want, size_t n) {
    double md = 0.0, mw = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (isnan(d)) return INFINITY;
        md = d > md ? d : md;
        mw = fabs(want[i]) > mw ? fabs(want[i]) : mw;
    }
    return mw > 0 ? md / mw : md;
}

void pad_tiny514_cli_files(const char *dir, char *model, char *vocab, size_t cap) {
    snprintf(model, cap, "%s/tiny514.safetensors", dir);
    snprintf(vocab, cap, "%s/bytes.txt.gz", dir);
    pad_cmd_result r =
        pad_cmd_run("%s make-model --preset tiny --vocab-size 514 --seed 0 --out %s", pad_test_binary(), model);
    cr_assert(r.exit_code == 0, "make-model failed: %s", r.err);
    pad_cmd_free(&r);
    cr_assert(pad_tokenizer_write_byte_vocab(vocab) == PAD_OK);
}

void pad_test_write_pattern_png(const char *path, int w, int h, int variant) {
    pad_image img;
    cr_assert(pad_image_alloc(&img, w, h) == PAD_OK);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                img.rgb[(y * w + x) * 3 + c] =
                    (uint8_t)((x * (3 + c) + y * (2 + variant) + 40 * c + 17 * variant + (x * y * variant) / 7) % 256);
    cr_assert(pad_image_save_png(path, &img) == PAD_OK);
    pad_image_free(&img);
}

void pad_test_write_ctx(const char *path, int n_pro, int n_ctx, int w, int n_ab, int n_ctx_ab, int w_ab,
                        uint64_t seed) {
    pad_rng rng = {seed};
    const size_t nn = (size_t)n_pro * n_ctx * w, na = (size_t)n_ab * n_ctx_ab * w_ab;
    float *n = malloc(sizeof(float) * (nn + 1)), *a = malloc(sizeof(float) * (na + 1));
    pad_rng_fill(&rng, n, nn, -0.03f, 0.03f);
    pad_rng_fill(&rng, a, na, -0.03f, 0.03f);
    pad_st_writer *wr = NULL;
    cr_assert(pad_st_writer_init(&wr) == PAD_OK);
    if (n_pro) cr_assert(pad_st_writer_add_f32(wr, "normal_ctx", 3, (int64_t[]){n_pro, n_ctx, w}, n) == PAD_OK);
    if (n_ab) cr_assert(pad_st_writer_add_f32(wr, "abnormal_ctx", 3, (int64_t[]){n_ab, n_ctx_ab, w_ab}, a) == PAD_OK);
    cr_assert(pad_st_writer_save(wr, path) == PAD_OK);
    pad_st_writer_free(wr);
    free(n);
    free(a);
}
