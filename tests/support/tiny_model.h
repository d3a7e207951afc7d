/* tiny_model.h - the tiny random model that the text/prompt fixtures were generated from (tests/ref/ref_text.py):
 * pad_model_preset_cfg(PAD_MODEL_TINY) with a 514-entry byte-level text vocabulary, pad_weights_make_random seed 0;
 * plus helpers shared by the text-tower and prompt-learning tests. */
#ifndef PAD_TESTS_TINY_MODEL_H
#define PAD_TESTS_TINY_MODEL_H

#include "check.h"
#include "weights.h"

// Makes the host weights and asserts that their checksum equals the fixture's `weights_checksum` (F64), so that a
// change of the random generator fails with a clear message instead of a numerical mismatch.
pad_clip_weights *pad_tiny514_weights(pad_st_file *fixture);

// The same model for the CLI tests: writes <dir>/tiny514.safetensors with `promptad make-model --preset tiny
// --vocab-size 514 --seed 0` and the byte-level vocabulary <dir>/bytes.txt.gz, and stores their paths in model and
// vocab (cap bytes each). Asserts on failure.
void pad_tiny514_cli_files(const char *dir, char *model, char *vocab, size_t cap);

// Writes prompt context vectors as train-prompts reads and writes them: normal_ctx (n_pro, n_ctx, w) and
// abnormal_ctx (n_ab, n_ctx_ab, w_ab), uniform in +-0.03 from pad_rng seeded with `seed` (normal first); a tensor
// whose count (n_pro or n_ab) is 0 is left out. Asserts on failure.
void pad_test_write_ctx(const char *path, int n_pro, int n_ctx, int w, int n_ab, int n_ctx_ab, int w_ab, uint64_t seed);

// Writes a w x h RGB PNG with a smooth pattern chosen by `variant` (test images of any size; asserts).
void pad_test_write_pattern_png(const char *path, int w, int h, int variant);

// Relative error max|got - want| / max|want| over n values.
double pad_rel_err(const float *got, const float *want, size_t n);

// Asserts pad_rel_err(got, want, n) <= tol, naming `what`.
#define PAD_ASSERT_REL(what, got_, want_, n, tol)                                                                      \
    do {                                                                                                               \
        double e_ = pad_rel_err((got_), (want_), (n));                                                                 \
        cr_assert(e_ <= (tol), "%s: relative error %.3e > %.1e", (what), e_, (double)(tol));                           \
    } while (0)

#endif // PAD_TESTS_TINY_MODEL_H
