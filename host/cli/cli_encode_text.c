/* cli_encode_text.c - `promptad encode-text --weights W --out O.safetensors TEXT...` (cli_contract.md): the raw text
 * features of each TEXT (CLIP tokenisation with 77 tokens, text tower, EOT row, ln_final, text_projection; not
 * normalised) as `features` [n, E], plus the token ids `ids` [n, 77] (I32). */
#include "args.h"
#include "backend.h"
#include "cli.h"
#include "log.h"
#include "st_file.h"
#include "text.h"
#include "tokenizer.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>

int pad_cli_encode_text(int argc, char **argv) {
    const char *weights = NULL, *out = NULL, *vocab = NULL, *device = "auto";
    const pad_opt opts[] = {
        {"weights", "W", "OpenCLIP checkpoint (.safetensors; F32, F16 or BF16)", &weights, NULL, NULL, NULL},
        {"out", "O", "output .safetensors: features [n,E] (raw), ids [n,77]", &out, NULL, NULL, NULL},
        {"vocab", "V",
         "CLIP BPE vocabulary (" PAD_TOKENIZER_VOCAB_NAME "); default: $PROMPTAD_VOCAB, ./weights/, then "
         "<binary>/../weights/",
         &vocab, NULL, NULL, NULL},
        {"device", "D", "auto (default), cpu or cuda", &device, NULL, NULL, NULL},
    };
    const char **pos = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
    if (!pos) return 1;
    int n_pos = 0;
    pad_args_result r = pad_args_parse(argc, argv, opts, 4, pos, argc, &n_pos,
                                       "promptad encode-text --weights W --out O.safetensors [--vocab V] [--device D] "
                                       "TEXT...",
                                       "Writes the raw text features (EOT row after ln_final, times text_projection; "
                                       "not normalised) of each TEXT. Use -- before a TEXT that starts with '--'.");
    if (r != PAD_ARGS_OK) {
        free(pos);
        return r == PAD_ARGS_HELP ? 0 : 2;
    }
    int rc = 2;
    pad_backend_kind kind;
    if (!weights || !out) {
        pad_args_error(argv[0], "--weights and --out are required");
        goto done_args;
    }
    if (n_pos == 0) {
        pad_args_error(argv[0], "no TEXT given");
        goto done_args;
    }
    if (pad_backend_kind_parse(device, &kind) != PAD_OK) goto done_args;
    rc = 1;
    char found[4096];
    if (!vocab) {
        if (pad_tokenizer_find_vocab(found, sizeof found, NULL) != PAD_OK) goto done_args;
        vocab = found;
    }
    pad_tokenizer *tok = NULL;
    pad_clip_weights *hw = NULL, *w = NULL;
    pad_backend *be = NULL;
    pad_st_writer *wr = NULL;
    int32_t *ids = NULL;
    float *feat = NULL;
    if (pad_tokenizer_load(&tok, vocab) != PAD_OK) goto done;
    if (pad_weights_load(&hw, weights, PAD_WEIGHTS_TEXT) != PAD_OK) goto done;
    if (pad_tokenizer_vocab_size(tok) != hw->cfg.text.vocab) {
        PAD_LOG_ERROR("%s: the vocabulary has %d tokens but the text tower of %s has %d (use the model's vocabulary "
                      "with --vocab)",
                      vocab, pad_tokenizer_vocab_size(tok), weights, hw->cfg.text.vocab);
        goto done;
    }
    const int n = n_pos, CTX = PAD_TOKENIZER_CONTEXT_LEN, E = hw->cfg.embed_dim;
    if (hw->cfg.text.context < CTX) {
        PAD_LOG_ERROR("%s: the text tower has a context of %d tokens (CLIP tokenisation needs %d)", weights,
                      hw->cfg.text.context, CTX);
        goto done;
    }
    ids = (int32_t *)malloc((size_t)n * CTX * sizeof *ids);
    feat = (float *)malloc((size_t)n * E * sizeof *feat);
    if (!ids || !feat) goto done;
    for (int i = 0; i < n; i++) {
        bool truncated = false;
        if (pad_tokenizer_tokenize(tok, pos[i], CTX, ids + (size_t)i * CTX, &truncated) != PAD_OK) {
            PAD_LOG_ERROR("cannot tokenize TEXT %d", i + 1);
            goto done;
        }
        if (truncated) PAD_LOG_WARN("TEXT %d is longer than %d tokens: truncated (EOT kept last)", i + 1, CTX);
    }
    if (pad_backend_init(&be, kind, 0) != PAD_OK) goto done;
    if (pad_weights_to_backend(hw, be, &w) != PAD_OK) goto done;
    if (pad_text_encode_ids(w, ids, n, CTX, feat) != PAD_OK) goto done;
    if (pad_st_writer_init(&wr) != PAD_OK ||
        pad_st_writer_add_f32(wr, "features", 2, (int64_t[]){n, E}, feat) != PAD_OK ||
        pad_st_writer_add(wr, "ids", PAD_DTYPE_I32, 2, (int64_t[]){n, CTX}, ids) != PAD_OK ||
        pad_st_writer_meta(wr, "weights", weights) != PAD_OK || pad_st_writer_save(wr, out) != PAD_OK)
        goto done;
    PAD_LOG_INFO("wrote %s: features [%d, %d] on %s", out, n, E, be->ops->name);
    rc = 0;
done:
    pad_st_writer_free(wr);
    free(ids);
    free(feat);
    pad_weights_free(w); // before hw: on the CPU backend it shares hw's data
    pad_weights_free(hw);
    pad_backend_free(be);
    pad_tokenizer_free(tok);
done_args:
    free(pos);
    return rc;
}
