/* vit.h - the CLIP vision tower with PromptAD's dual q-k / v-v attention path (docs/method.md#vision-tower,
 * docs/clip.md#vision-tower), written once against the backend op table so the CPU and CUDA backends share the
 * control flow.
 *
 * One pad_vit context is created per (backend, weights, maximum batch) and owns every activation buffer, so a
 * forward allocates nothing. Per batch of B preprocessed images (B,3,S,S) it produces, on the backend:
 *   cls    (B,E)      = ln_post(x_ori[CLS] after the last block) @ visual.proj   (the standard CLIP image embedding)
 *   tokens (B,G*G,E)  = ln_post(x_vv[patches]) @ visual.proj                    (V-V path patch features)
 *   mid1   (B,G*G,D)  = tap 1 of the original stream, patch rows, raw (no ln_post, no projection)
 *   mid2   (B,G*G,D)  = tap 2, likewise
 * None of them is L2-normalised (PromptAD.encode_image normalises all four; callers do it where needed).
 *
 * Usage:
 *     pad_vit_params p = pad_vit_default_params();         // max_batch 8, taps 3 and 8 (the official code)
 *     pad_vit *vit = NULL;
 *     PAD_TRY(pad_vit_create(&vit, be, wdev, &p));          // wdev from pad_weights_to_backend(host, be, &wdev)
 *     pad_vit_out o = {cls_host, tokens_host, NULL, NULL};  // NULL: output not wanted
 *     PAD_TRY(pad_vit_encode_host(vit, pixels_host, n_images, &o));
 *     pad_vit_free(vit);
 */
#ifndef PAD_HOST_VIT_H
#define PAD_HOST_VIT_H

#include "backend.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pad_vit pad_vit;

typedef struct pad_vit_params {
    int max_batch; // images per forward (>= 1); sizes every activation buffer
    // Memory-bank taps, 0-based block indices in [0, layers). "tap k" = the original stream x_ori after block k's
    // attention residual and before block k's MLP: x_ori^(k-1) + o_ori^(k). This is what the official forward hooks
    // on resblocks[k-1] end up holding, because they keep a view of block k-1's output and block k adds its
    // attention output into that tensor in place (docs/method.md#memory-bank-taps). The official code uses 3 and 8 (its
    // "layers 3 and 8"); the paper's Table 5 compares other pairs, e.g. 6 and 9.
    int tap1, tap2;
} pad_vit_params;

// max_batch 8, tap1 3, tap2 8.
pad_vit_params pad_vit_default_params(void);

// The default taps of a tower of `layers` blocks: the official [3, 8] of a 12-block tower scaled by the depth,
// tap = floor(k * layers / 12 + 1/2) clamped to [0, layers): [3, 8] for 12 blocks, [6, 16] for 24 (ViT-L/14), [1, 3]
// for 4 (docs/method.md#memory-bank-taps).
void pad_vit_default_taps(int layers, int taps[2]);

// pad_vit_default_params with the default taps of a tower of `layers` blocks (pad_vit_default_taps): what the
// commands use when no taps are given, so that any depth works.
pad_vit_params pad_vit_depth_params(int layers);

// Outputs of one forward, in backend memory for pad_vit_forward and host memory for pad_vit_encode_host.
// Any pointer may be NULL to skip that output (the work that only it needs is skipped too).
typedef struct pad_vit_out {
    float *cls;    // (B, E)
    float *tokens; // (B, G*G, E)
    float *mid1;   // (B, G*G, D)
    float *mid2;   // (B, G*G, D)
} pad_vit_out;

// Creates a vision encoder for backend `be` and vision weights `w` living on that backend (w->be == be, e.g. from
// pad_weights_to_backend; for the CPU backend host weights with w->be == NULL are accepted too). Allocates every
// buffer for p->max_batch images. `be` and `w` must outlive the context. Errors: PAD_ERR_INVALID_ARG (no vision
// tower, weights on another backend, bad params), PAD_ERR_OOM.
pad_status pad_vit_create(pad_vit **out, pad_backend *be, const pad_clip_weights *w, const pad_vit_params *p);
void pad_vit_free(pad_vit *vit); // NULL is a no-op

// The configuration the context was built for.
const pad_vision_cfg *pad_vit_cfg(const pad_vit *vit);
int pad_vit_embed_dim(const pad_vit *vit); // E
int pad_vit_max_batch(const pad_vit *vit);

// One forward of B <= max_batch images. pixels (B,3,S,S) and the outputs are backend memory; the outputs must not
// alias the context's buffers or `pixels`. Ops are queued on the backend's stream (pad_backend_sync waits).
pad_status pad_vit_forward(pad_vit *vit, const float *pixels, int B, const pad_vit_out *out);

// Any number of images in chunks of max_batch: pixels (N,3,S,S) and outputs (N,...) in backend memory; chunk c
// reads and writes the rows of images [c*max_batch, ...). Results do not depend on the chunking on the CPU backend.
pad_status pad_vit_forward_chunked(pad_vit *vit, const float *pixels, int N, const pad_vit_out *out);

// Same from host memory: uploads each chunk of pixels (N,3,S,S) into the context's input buffer, runs the
// forward into the context's output buffers and downloads them into the host arrays of `out` (N,...).
pad_status pad_vit_encode_host(pad_vit *vit, const float *pixels, int N, const pad_vit_out *out);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_VIT_H
