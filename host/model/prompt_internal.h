/* prompt_internal.h - the hooks of a prompt learner (prompt.c) that a cohort (prompt_cohort.c) drives: the cohort
 * runs ONE text-tower forward and backward over the prompt rows of all its learners, and each learner does the rest
 * of its step (template assembly, anchors, loss, gradient of the context vectors) with the same ops as alone. Not
 * for other callers: use prompt.h or prompt_cohort.h. */
#ifndef PAD_HOST_PROMPT_INTERNAL_H
#define PAD_HOST_PROMPT_INTERNAL_H

#include "prompt.h"

#ifdef __cplusplus
extern "C" {
#endif

// Changes whenever the parameters change (set_ctx, init_random, step).
unsigned long pad_prompt_learner_cohort_gen(const pad_prompt_learner *pl);
// The EOT position of every prompt row (host array of pad_prompt_learner_counts entries).
const int32_t *pad_prompt_learner_cohort_eot(const pad_prompt_learner *pl);
bool pad_prompt_learner_cohort_has_images(const pad_prompt_learner *pl);
// Writes the learned rows into the template embeddings and copies them into dst(P, Lc, W) (backend memory), prompt
// p at row p * Lc; rows L .. Lc-1 of each prompt are left as they are. Lc >= the learner's seq_len.
pad_status pad_prompt_learner_cohort_assemble(pad_prompt_learner *pl, float *dst, int Lc);
// From the raw text features feat(P, E) of its prompts: anchors, the loss terms (pad_prompt_learner_loss reads them)
// and their gradient w.r.t. feat into dfeat(P, E) (both backend memory).
pad_status pad_prompt_learner_cohort_head_grad(pad_prompt_learner *pl, const float *feat, float *dfeat);
// From demb(P, Lc, W), the gradient w.r.t. the assembled embeddings: the gradients of the context vectors
// (pad_prompt_learner_get_grad, pad_prompt_learner_step use them).
pad_status pad_prompt_learner_cohort_ctx_grad(pad_prompt_learner *pl, const float *demb, int Lc);
// The two inference text vectors out(2, E) from the raw text features feat(P, E) at the current parameters.
pad_status pad_prompt_learner_cohort_text_vectors(pad_prompt_learner *pl, const float *feat, float *out);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_PROMPT_INTERNAL_H
