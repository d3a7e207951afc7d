/* cli_common.h - helpers shared by the model subcommands (cli_train.c, cli_score.c): the text vocabulary of a model,
 * the input images and the learned context vectors, each reporting a failure the CLI way: one logged line naming the
 * file and the problem, and a status (the caller exits 1). */
#ifndef PAD_HOST_CLI_COMMON_H
#define PAD_HOST_CLI_COMMON_H

#include "image.h"
#include "st_file.h"
#include "tokenizer.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

// Loads the BPE vocabulary `vocab` (NULL: pad_tokenizer_find_vocab's default places) and checks that it has the
// model's text vocabulary size (hw loaded from weights_path, which the message names). On success *out owns it.
pad_status pad_cli_open_tokenizer(pad_tokenizer **out, const char *vocab, const pad_clip_weights *hw,
                                  const char *weights_path);

// Decodes n image files and resizes them for the model: out (n, S, S, 3) 8-bit RGB, pad_preprocess_u8 with `mode`.
// Stops at the first failure, which logs "<path>: <reason>" (or "<path>: cannot preprocess the <role>").
pad_status pad_cli_load_images(const char *const *paths, int n, pad_preprocess_mode mode, int S, const char *role,
                               uint8_t *out);

// ToTensor + Normalize (RGB) of n images from pad_cli_load_images: pixels (n, 3, S, S), the model input.
void pad_cli_images_to_pixels(const uint8_t *u8, int n, int S, float *pixels);

// Reads the 3-D context tensor `name` of f (normal_ctx, abnormal_ctx) as F32 into a new malloc'd *out (the caller
// frees it). shape[1] and shape[2] must match; shape[0] too when it is > 0, otherwise any count >= 1 is accepted and
// stored into shape[0]. Errors: "<path>: missing tensor '<name>' (expected shape ...)" and
// "<path>: <name>: expected shape (d0, d1, d2), got (...) (<hint>)" with dim0_name for an open shape[0].
pad_status pad_cli_read_ctx(const pad_st_file *f, const char *name, int64_t shape[3], const char *dim0_name,
                            const char *hint, float **out);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_CLI_COMMON_H
