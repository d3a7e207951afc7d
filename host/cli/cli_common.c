/* cli_common.c - the helpers of cli_common.h shared by the model subcommands. */
#include "cli_common.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>

pad_status pad_cli_open_tokenizer(pad_tokenizer **out, const char *vocab, const pad_clip_weights *hw,
                                  const char *weights_path) {
    *out = NULL;
    char found[4096];
    if (!vocab) {
        PAD_TRY(pad_tokenizer_find_vocab(found, sizeof found, NULL));
        vocab = found;
    }
    pad_tokenizer *tok = NULL;
    PAD_TRY(pad_tokenizer_load(&tok, vocab));
    if (pad_tokenizer_vocab_size(tok) != hw->cfg.text.vocab) {
        PAD_LOG_ERROR("%s: the vocabulary has %d tokens but the text tower of %s has %d (use the model's vocabulary "
                      "with --vocab)",
                      vocab, pad_tokenizer_vocab_size(tok), weights_path, hw->cfg.text.vocab);
        pad_tokenizer_free(tok);
        return PAD_ERR_INVALID_ARG;
    }
    *out = tok;
    return PAD_OK;
}

pad_status pad_cli_load_images(const char *const *paths, int n, pad_preprocess_mode mode, int S, const char *role,
                               uint8_t *out) {
    pad_resize_ws *ws = NULL;
    PAD_TRY(pad_resize_ws_init(&ws));
    pad_status st = PAD_OK;
    for (int i = 0; i < n && st == PAD_OK; i++) {
        pad_image img = {0, 0, NULL};
        st = pad_image_load(&img, paths[i]); // logs "<path>: <reason>"
        if (st == PAD_OK) {
            st = pad_preprocess_u8(&img, mode, S, out + (size_t)i * S * S * 3, ws);
            if (st != PAD_OK) PAD_LOG_ERROR("%s: cannot preprocess the %s", paths[i], role);
        }
        pad_image_free(&img);
    }
    pad_resize_ws_free(ws);
    return st;
}

void pad_cli_images_to_pixels(const uint8_t *u8, int n, int S, float *pixels) {
    const size_t px = (size_t)S * S;
    for (int i = 0; i < n; i++)
        pad_normalize_clip(u8 + (size_t)i * px * 3, px, false, pixels + (size_t)i * px * 3);
}

pad_status pad_cli_read_ctx(const pad_st_file *f, const char *name, int64_t shape[3], const char *dim0_name,
                            const char *hint, float **out) {
    *out = NULL;
    char want[128], got[128];
    if (shape[0] > 0)
        pad_st_shape_str(want, sizeof want, 3, shape);
    else
        snprintf(want, sizeof want, "(%s, %lld, %lld)", dim0_name, (long long)shape[1], (long long)shape[2]);
    const pad_st_tensor *t = pad_st_find(f, name);
    if (!t) {
        PAD_LOG_ERROR("%s: missing tensor '%s' (expected shape %s)", f->path, name, want);
        return PAD_ERR_FORMAT;
    }
    const bool ok = t->ndim == 3 && (shape[0] > 0 ? t->shape[0] == shape[0] : t->shape[0] >= 1) &&
                    t->shape[1] == shape[1] && t->shape[2] == shape[2];
    if (!ok) {
        pad_st_shape_str(got, sizeof got, t->ndim, t->shape);
        PAD_LOG_ERROR("%s: %s: expected shape %s, got %s (%s)", f->path, name, want, got, hint);
        return PAD_ERR_FORMAT;
    }
    shape[0] = t->shape[0];
    return pad_st_read_f32(f, name, 3, shape, out, NULL);
}
