/* prompt_cohort.h - several prompt learners (prompt.h) trained in lockstep: each epoch runs ONE text-tower forward
 * and ONE backward over the concatenated prompt rows of every member (classes, tasks, shots and seeds may differ),
 * then each member's own loss, gradients, SGD step (momentum, weight decay, cosine schedule) exactly as if it ran
 * alone.
 *
 * Members are grouped by their cut length L (all units of one class share it: the cls and seg templates are the same
 * texts), and each group is one text forward and one backward of all its rows. Rows are not padded to a longer L:
 * the causal mask hides the padding from the rows before it, but the CPU attention multiplies the probabilities by
 * V as one (T x T) @ (T x HS) GEMM whose inner length is T, and OpenBLAS does not keep its sums independent of that
 * length, so padded rows would differ in the last bits. Within a group the text tower treats rows independently
 * (frozen weights: input gradients only; the CPU GEMM keeps rows independent of M), so on the CPU every member's
 * losses, gradients, context vectors and text vectors are the same bits as a serial run of that learner
 * (tests/test_cohort.c checks it); the serial learner is the reference.
 *
 * Usage:
 *     pad_prompt_learner *m[3];   // created, initialised and given their images as usual (prompt.h)
 *     pad_prompt_cohort_create(&c, w, m, 3);
 *     for (e = 0; e < N; e++) {
 *         pad_prompt_cohort_text_vectors(c, tvecs);   // optional: tvecs[i] (2, E) backend memory per member
 *         pad_prompt_cohort_train_epoch(c, e, N, losses);
 *     }
 * The members stay the caller's (free them after the cohort); their single-unit API keeps working alongside.
 */
#ifndef PAD_HOST_PROMPT_COHORT_H
#define PAD_HOST_PROMPT_COHORT_H

#include "prompt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pad_prompt_cohort pad_prompt_cohort;

// Builds a cohort of n >= 1 learners, all on the backend of `w` (the weights they were created with, which must
// outlive the cohort). Allocates one text encoder per cut length and the shared embedding and feature buffers for
// all their prompt rows. Errors: n < 1, a learner on other weights, out of memory.
pad_status pad_prompt_cohort_create(pad_prompt_cohort **out, const pad_clip_weights *w,
                                    pad_prompt_learner *const *members, int n);
void pad_prompt_cohort_free(pad_prompt_cohort *c); // NULL is a no-op; the members are not freed

int pad_prompt_cohort_size(const pad_prompt_cohort *c);
// Prompt rows of all members, the longest cut length, and the number of text passes per forward (one per distinct
// cut length among the members).
int pad_prompt_cohort_rows(const pad_prompt_cohort *c);
int pad_prompt_cohort_seq_len(const pad_prompt_cohort *c);
int pad_prompt_cohort_passes(const pad_prompt_cohort *c);

// One loss evaluation of every member with its gradients (each member's pad_prompt_learner_loss / _get_grad read
// them). The text forward of a preceding pad_prompt_cohort_text_vectors at the same parameters is reused.
pad_status pad_prompt_cohort_loss_grad(pad_prompt_cohort *c);
// One epoch of every member: loss_grad, then each member's SGD step with pad_prompt_lr(its opts, epoch, n_epochs).
// losses (n entries) receives each member's loss terms before the step when not NULL.
pad_status pad_prompt_cohort_train_epoch(pad_prompt_cohort *c, int epoch, int n_epochs, pad_prompt_loss *losses);
// The inference text vectors of every member at the current parameters: out[i] (2, E) backend memory.
pad_status pad_prompt_cohort_text_vectors(pad_prompt_cohort *c, float *const *out);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_PROMPT_COHORT_H
