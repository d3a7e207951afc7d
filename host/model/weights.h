/* weights.h - OpenCLIP checkpoints (safetensors, OpenCLIP state_dict names, docs/clip.md#weight-names): architecture
 * inferred from the shapes, tensors converted to F32 into one allocation, uploaded to a backend as one block; plus a
 * deterministic random-weight generator for tests, demos and benchmarks (tiny and full-size presets).
 *
 * Tensor layouts are PyTorch's: nn.Linear weights (out, in) used as x @ W^T + b; the free projections visual.proj
 * (D, E) and text_projection (W, E) used as x @ P. */
#ifndef PAD_HOST_WEIGHTS_H
#define PAD_HOST_WEIGHTS_H

#include "backend.h"
#include "promptad.h"
#include "st_file.h"

#ifdef __cplusplus
extern "C" {
#endif

// Which towers to load.
typedef enum pad_weights_parts {
    PAD_WEIGHTS_VISION = 1,
    PAD_WEIGHTS_TEXT = 2,
    PAD_WEIGHTS_ALL = 3,
} pad_weights_parts;

typedef struct pad_vision_cfg {
    int width;      // D (896 for ViT-B-16-plus-240)
    int layers;     // 12
    int heads;      // D / 64
    int head_dim;   // 64
    int patch;      // P (16)
    int image_size; // S = G * P (240)
    int grid;       // G (15)
    int tokens;     // T = 1 + G*G (226)
    int mlp;        // hidden width of the MLP (3584)
} pad_vision_cfg;

typedef struct pad_text_cfg {
    int width;    // W (640)
    int layers;   // 12
    int heads;    // W / 64
    int head_dim; // 64
    int context;  // 77
    int vocab;    // 49408
    int mlp;      // 2560
} pad_text_cfg;

typedef struct pad_clip_cfg {
    pad_vision_cfg vision;
    pad_text_cfg text;
    int embed_dim;      // E (640)
    pad_activation act; // MLP activation of both towers: GELU (default) or QuickGELU (OpenAI's weights), read from
                        // the file's metadata "activation" (docs/clip.md#activation)
} pad_clip_cfg;

// One residual block (pre-LN). C = width, H = mlp hidden.
typedef struct pad_block_weights {
    float *ln1_w, *ln1_b;           // (C)
    float *in_proj_w, *in_proj_b;   // (3C, C), (3C): rows [0,C) q, [C,2C) k, [2C,3C) v
    float *out_proj_w, *out_proj_b; // (C, C), (C)
    float *ln2_w, *ln2_b;           // (C)
    float *fc_w, *fc_b;             // mlp.c_fc: (H, C), (H)
    float *proj_w, *proj_b;         // mlp.c_proj: (C, H), (C)
} pad_block_weights;

typedef struct pad_clip_weights {
    pad_clip_cfg cfg;
    pad_weights_parts parts; // which towers are present (pointers of absent towers are NULL)
    float logit_scale;       // as stored (log space; PromptAD uses it raw)
    // vision tower
    float *conv1_w;               // (D, 3, P, P), no bias
    float *class_emb;             // (D)
    float *vis_pos;               // (T, D)
    float *ln_pre_w, *ln_pre_b;   // (D)
    pad_block_weights *vis;       // (vision.layers)
    float *ln_post_w, *ln_post_b; // (D)
    float *vis_proj;              // (D, E)
    // text tower
    float *tok_emb;                 // (vocab, W)
    float *txt_pos;                 // (context, W)
    pad_block_weights *txt;         // (text.layers)
    float *ln_final_w, *ln_final_b; // (W)
    float *txt_proj;                // (W, E)
    // storage: every float above lives in one block `data` of n_floats floats (host memory, or device memory of
    // `be` for weights made by pad_weights_to_backend)
    float *data;
    size_t n_floats;
    pad_backend *be; // NULL for host weights
    bool owns_data;
} pad_clip_weights;

// Architecture limits: far above any OpenCLIP ViT (ViT-bigG: width 1664, 48 layers, MLP 8192), low enough that
// every size computed from them (3 * width, grid * grid, grid * patch, tensor sizes) fits an int. A checkpoint whose
// shapes infer anything outside them is refused before anything is allocated, with the tensor named.
#define PAD_WEIGHTS_MAX_WIDTH   16384   // vision width, text width, embed dim
#define PAD_WEIGHTS_MAX_MLP     65536   // MLP hidden width
#define PAD_WEIGHTS_MAX_LAYERS  256     // blocks per tower
#define PAD_WEIGHTS_MAX_GRID    1024    // patches per side (positional embedding rows = 1 + grid^2)
#define PAD_WEIGHTS_MAX_IMAGE   8192    // image side = grid * patch
#define PAD_WEIGHTS_MAX_CONTEXT 4096    // text context length
#define PAD_WEIGHTS_MAX_VOCAB   1048576 // token embedding rows

// Loads an OpenCLIP checkpoint (F32, F16 or BF16 safetensors; a "module." prefix is accepted). The architecture is
// inferred from the shapes (widths, layers, heads = width/64, patch size, image size, context length, vocab, embed
// dim), so any OpenCLIP ViT loads. Errors name the file and the tensor; a missing file points to weights/README.md.
// On success *out owns the weights (free with pad_weights_free).
pad_status pad_weights_load(pad_clip_weights **out, const char *path, pad_weights_parts parts);

// Infers the architecture of a checkpoint without loading the tensors.
pad_status pad_weights_probe(const char *path, pad_clip_cfg *cfg);

// Saves host weights with OpenCLIP names (F32), e.g. for generated models.
pad_status pad_weights_save(const pad_clip_weights *w, const char *path);

// Adds the tensors of host weights' towers (OpenCLIP names, F32; logit_scale with the text tower) to an open writer,
// e.g. to write the text tower beside another vision tower (clip_resnet.h).
pad_status pad_weights_add_to_writer(const pad_clip_weights *w, pad_st_writer *wr);

// Copies host weights into one device block of backend `be` (for the CPU backend the data is shared, not copied).
// *out has the same layout with pointers into backend memory; it must be freed before `host` when shared.
pad_status pad_weights_to_backend(const pad_clip_weights *host, pad_backend *be, pad_clip_weights **out);

void pad_weights_free(pad_clip_weights *w); // NULL is a no-op

// ----------------------------------------------------------------------------
// Generated models

typedef enum pad_model_preset {
    PAD_MODEL_TINY = 0,         // vision 128 wide, 2 heads, 12 layers, patch 16, image 64; text 128 wide, 2 heads,
                                // 12 layers, context 77, vocab 49408; embed 64
    PAD_MODEL_B16_PLUS_240 = 1, // the ViT-B-16-plus-240 architecture (random weights, for speed measurements)
    PAD_MODEL_L14 = 2,          // OpenCLIP ViT-L-14: vision 1024 wide, 24 layers, patch 14, image 224 (grid 16), MLP
                                // 4096; text 768 wide, 12 layers, MLP 3072; embed 768. Exact-GELU towers (laion2b);
                                // the openai weights use QuickGELU (cfg.act = PAD_ACT_QUICK_GELU)
} pad_model_preset;

// The MLP activation's name in checkpoint metadata and configs: "gelu" or "quick_gelu". parse returns
// PAD_ERR_INVALID_ARG (no log) for anything else.
pad_status pad_activation_parse(const char *s, pad_activation *out);
const char *pad_activation_name(pad_activation a);

// Parses "tiny", "vit-b-16-plus-240" or "vit-l-14".
pad_status pad_model_preset_parse(const char *s, pad_model_preset *out);
pad_clip_cfg pad_model_preset_cfg(pad_model_preset p);

// Deterministic random weights for `cfg` (same seed -> bitwise identical weights on every machine): linear
// weights uniform in +-1/sqrt(fan_in), biases +-0.02, LayerNorm weights 1 +- 0.1 and biases +-0.05, embeddings
// +-0.05 (token embedding +-0.1), projections +-1/sqrt(in), logit_scale = ln(100). Each tensor draws from its
// own splitmix64 stream keyed by (seed, OpenCLIP name), so the values do not depend on the tensor order.
pad_status pad_weights_make_random(pad_clip_weights **out, const pad_clip_cfg *cfg, uint64_t seed);

// Validates a configuration (positive sizes, width divisible by 64, image size divisible by the patch size, every
// size within the limits below).
pad_status pad_clip_cfg_check(const pad_clip_cfg *cfg);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_WEIGHTS_H
