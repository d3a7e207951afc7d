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

// Relative error max|got - want| / max|want| over n values.
double pad_rel_err(const float *got, const float *want, size_t n);

// Asserts pad_rel_err(got, want, n) <= tol, naming `what`.
#define PAD_ASSERT_REL(what, got_, want_, n, tol)                                                                      \
    do {                                                                                                               \
        double e_ = pad_rel_err((got_), (want_), (n));                                                                 \
        cr_assert(e_ <= (tol), "%s: relative error %.3e > %.1e", (what), e_, (double)(tol));                           \
    } while (0)

#endif // PAD_TESTS_TINY_MODEL_H
