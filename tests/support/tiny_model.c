/* tiny_model.c - the helpers of tiny_model.h. */
#include "tiny_model.h"

#include <math.h>
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
