/* clip_resnet.h - CLIP's ModifiedResNet vision tower (OpenCLIP RN50 / RN101 / ..., `openai` weights) with PromptAD's
 * V-V path in its attention pool (docs/clip.md#clip-resnet), written against the backend op table like vit.h.
 *
 * The network: a 3-convolution stem (3x3 stride 2, 3x3, 3x3, each with batch norm and ReLU) and a 2x2 average pool;
 * four stages of bottlenecks whose stride is an average pool after the 3x3 convolution (the downsample branch is
 * AvgPool(stride), 1x1 convolution, batch norm); the attention pool: the stage-4 grid flattened to tokens, their
 * mean prepended, a positional embedding added, one multi-head attention (q/k/v projections, c_proj). Batch norms are
 * folded into the convolutions at load time (resnet.h).
 *
 * Per batch of B preprocessed images (B,3,S,S) it produces, in backend memory, the same four outputs as the ViT
 * (pad_vit_out, so the run loop treats both towers alike):
 *   cls    (B,E)     = c_proj(attention output of the mean token)              (the CLIP image embedding)
 *   tokens (B,G*G,E) = c_proj(V-V attention output of the grid tokens)          (per-patch features for the maps)
 *   mid1   (B,G*G,D) = stage tap1's output, area-averaged onto the G x G grid, channels-last, zero-padded to D
 *   mid2   (B,G*G,D) = stage tap2's, likewise
 * where G = S / 32 is the attention pool's grid and D the wider of the two tapped stages. Nothing is normalised.
 *
 * Tensor names are OpenCLIP's (`visual.` prefix, an optional `module.` before it): visual.conv{1,2,3}.weight,
 * visual.bn{1,2,3}.*, visual.layer<L>.<i>.conv{1,2,3}.weight, .bn{1,2,3}.*, .downsample.{0.weight,1.*},
 * visual.attnpool.positional_embedding, visual.attnpool.{q,k,v,c}_proj.{weight,bias}. */
#ifndef PAD_HOST_CLIP_RESNET_H
#define PAD_HOST_CLIP_RESNET_H

#include "backend.h"
#include "st_file.h"
#include "vit.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_CLIP_RESNET_STAGES     4
#define PAD_CLIP_RESNET_MAX_BLOCKS 64 // bottlenecks per stage accepted by the loader

typedef struct pad_clip_resnet_cfg {
    int width;                          // stem width (64): conv1, conv2 have width/2 channels, conv3 width
    int blocks[PAD_CLIP_RESNET_STAGES]; // bottlenecks per stage (RN101: 3, 4, 23, 3)
    int planes[PAD_CLIP_RESNET_STAGES]; // bottleneck widths (64, 128, 256, 512)
    int out[PAD_CLIP_RESNET_STAGES];    // stage outputs, 4 planes (256 .. 2048)
    int embed;                          // attention-pool width C = out[3] (2048)
    int heads;                          // C / 64 (32)
    int out_dim;                        // E, c_proj's output (512)
    int grid;                           // G, from the positional embedding's 1 + G*G rows (7)
    int image_size;                     // S = 32 G (224)
} pad_clip_resnet_cfg;

// Presets: OpenCLIP RN101 and a tiny one of the same structure for tests (width 8, one block per stage, C 256,
// 4 heads, E 64, image 96, grid 3). Text towers to pair with them: pad_clip_resnet_text_cfg.
typedef enum pad_clip_resnet_preset {
    PAD_CLIP_RESNET_RN101 = 0,
    PAD_CLIP_RESNET_TINY = 1,
} pad_clip_resnet_preset;
// Parses "rn101" / "clip-resnet-tiny"; PAD_ERR_INVALID_ARG (no log) otherwise.
pad_status pad_clip_resnet_preset_parse(const char *s, pad_clip_resnet_preset *out);
pad_clip_resnet_cfg pad_clip_resnet_preset_cfg(pad_clip_resnet_preset p);
// The text tower of the preset's CLIP model (RN101: width 512, 12 layers, MLP 2048, embed 512; tiny: the tiny ViT
// model's text tower, embed 64); the vision part of the returned configuration is a placeholder.
pad_clip_cfg pad_clip_resnet_text_cfg(pad_clip_resnet_preset p);

// Whether the checkpoint at path holds a CLIP ModifiedResNet vision tower (visual.attnpool.positional_embedding).
bool pad_clip_resnet_probe(const char *path);

// Infers the architecture from the shapes of an open checkpoint; errors name the missing or misshapen tensor.
pad_status pad_clip_resnet_infer_cfg(const pad_st_file *f, pad_clip_resnet_cfg *cfg);

typedef struct pad_clip_resnet_params {
    int max_batch;  // images per forward (>= 1); sizes every activation buffer
    int tap1, tap2; // memory-bank taps: stage numbers 1..4 (layer1..layer4); default 2 and 3
} pad_clip_resnet_params;

pad_clip_resnet_params pad_clip_resnet_default_params(void); // max_batch 8, taps 2 and 3

typedef struct pad_clip_resnet pad_clip_resnet;

// Loads the vision tower of `path` onto be (batch norms folded) and allocates every buffer for p->max_batch images.
pad_status pad_clip_resnet_load(pad_clip_resnet **out, pad_backend *be, const char *path,
                                const pad_clip_resnet_params *p);
void pad_clip_resnet_free(pad_clip_resnet *r); // NULL ok
const pad_clip_resnet_cfg *pad_clip_resnet_config(const pad_clip_resnet *r);
int pad_clip_resnet_tap_width(const pad_clip_resnet *r); // D: the wider of the two tapped stages

// One forward of B <= max_batch images: pixels (B,3,S,S) and the outputs in backend memory (any output may be NULL;
// they must not alias the context's buffers or pixels).
pad_status pad_clip_resnet_forward(pad_clip_resnet *r, const float *pixels, int B, const pad_vit_out *out);

// Writes a deterministic random checkpoint of cfg (OpenCLIP names, F32) with the text tower of text_cfg (random as
// pad_weights_make_random), so that it loads as a whole CLIP model. Convolutions and batch norms as
// pad_resnet_write_random; positional embedding uniform in +-1/sqrt(C); projections +-1/sqrt(in), biases +-0.02.
pad_status pad_clip_resnet_write_random(const pad_clip_resnet_cfg *cfg, const pad_clip_cfg *text_cfg, uint64_t seed,
                                        const char *path);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_CLIP_RESNET_H
