/* text.h - the CLIP text tower on input embeddings (docs/clip.md#text-tower, docs/method.md#text-tower): forward to the
 * raw text features and backward to the input embeddings (activation gradients only; the weights are frozen).
 *
 * A pad_text_encoder owns every activation the backward pass needs, allocated once for at most max_prompts
 * sequences of at most max_len tokens; forward and backward allocate nothing. Sequences are cut to
 * L = max EOT position + 1 tokens: with the causal mask, positions after EOT never influence the EOT row, so the cut
 * is exact (docs/clip.md#text-tower).
 *
 * Usage:
 *     pad_text_encoder_create(&te, w, P_max, L_max);       // w: weights on a backend (pad_weights_to_backend)
 *     pad_text_encoder_set_batch(te, eot, P);              // once per prompt layout; L = max(eot) + 1
 *     pad_text_encoder_forward(te, feat, emb);             // emb (P, L, W) -> feat (P, E)
 *     pad_text_encoder_backward(te, demb, dfeat);          // dfeat (P, E) -> demb (P, L, W)
 */
#ifndef PAD_HOST_TEXT_H
#define PAD_HOST_TEXT_H

#include "backend.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pad_text_encoder pad_text_encoder;

// Creates an encoder for the text tower of `w` (weights on a backend, from pad_weights_to_backend, with the text
// tower present) for batches of up to max_prompts sequences of up to max_len tokens (max_len <= context length).
// Allocates all activations on w's backend now. `w` must outlive the encoder. Errors: bad sizes, missing text
// tower, out of memory. On success *out owns the encoder (free with pad_text_encoder_free).
pad_status pad_text_encoder_create(pad_text_encoder **out, const pad_clip_weights *w, int max_prompts, int max_len);
void pad_text_encoder_free(pad_text_encoder *te); // NULL is a no-op

// Bytes of backend memory pad_text_encoder_create(w, max_prompts, max_len) allocates for its activations (the one
// block of every layer's saved activations and the scratch of forward and backward; 0 on bad sizes). Linear in
// max_prompts (up to 256-byte rounding of each buffer): what one prompt row of max_len tokens costs.
size_t pad_text_encoder_bytes(const pad_clip_weights *w, int max_prompts, int max_len);

// Sets the batch layout: P sequences whose EOT tokens sit at eot[p] (host array of P). The sequence length becomes
// L = max_p eot[p] + 1. Uploads the EOT row indices once (so forward/backward need no host transfer). Errors: P
// outside [1, max_prompts], an EOT position outside [0, max_len).
pad_status pad_text_encoder_set_batch(pad_text_encoder *te, const int32_t *eot, int P);

// Sizes of the current batch: number of sequences P and the cut length L (0 before set_batch).
int pad_text_encoder_batch(const pad_text_encoder *te);
int pad_text_encoder_seq_len(const pad_text_encoder *te);

// Forward: emb(P, L, W) backend memory, the token embeddings of the current batch WITHOUT the positional embedding
// (learned context rows included) -> feat(P, E) backend memory, the raw text features ln_final(x)[eot] @
// text_projection (not normalised). Saves the activations for pad_text_encoder_backward. emb is not modified.
pad_status pad_text_encoder_forward(pad_text_encoder *te, float *feat, const float *emb);

// Backward from the last forward: dfeat(P, E) -> demb(P, L, W) = d loss / d emb (overwritten; zero rows after each
// EOT). Input gradients only. dfeat and demb are backend memory and must not alias the encoder's buffers.
pad_status pad_text_encoder_backward(pad_text_encoder *te, float *demb, const float *dfeat);

// Position of the EOT token of one tokenised sequence ids(n): the first index of the largest id (torch argmax,
// docs/clip.md#text-tower step 3). Returns -1 when n <= 0.
int pad_text_eot_index(const int32_t *ids, int n);

// Encodes n tokenised sequences ids(n, ctx) (host, the tokenizer's output, ctx <= context length) with the text
// tower of `w` (weights on a backend) and writes the raw features to feat_host(n, E). Allocates its own encoder and
// buffers (not for hot loops). Errors: an id outside the vocabulary (names the sequence), bad sizes.
pad_status pad_text_encode_ids(const pad_clip_weights *w, const int32_t *ids, int n, int ctx, float *feat_host);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_TEXT_H
