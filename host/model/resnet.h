/* resnet.h - torchvision-style bottleneck ResNets (ResNet-50 family, wide_resnet50_2 for PatchCore, PaDiM and SPADE):
 * safetensors loading with the architecture inferred from the shapes, batch norm folded into the convolutions at
 * load time, a forward pass that returns the residual stages' outputs (layer1..layer4), and a deterministic random
 * checkpoint writer for tests and benchmarks (`promptad make-model --preset wide-resnet50-2 | resnet-tiny`).
 *
 * Tensor names are torchvision's (timm's resnets use the same): conv1.weight, bn1.{weight,bias,running_mean,
 * running_var}, layer<L>.<i>.conv{1,2,3}.weight, layer<L>.<i>.bn{1,2,3}.*, layer<L>.0.downsample.{0.weight,1.*}.
 * The bottleneck is torchvision's v1.5: 1x1 conv, 3x3 conv carrying the stage's stride (2 for layer2..4), 1x1 conv,
 * the residual (through the 1x1 strided downsample in the first block of a stage whose shape changes), ReLU.
 * docs/conv_methods.md describes the choices. */
#ifndef PAD_HOST_RESNET_H
#define PAD_HOST_RESNET_H

#include "backend.h"
#include "promptad.h"
#include "st_file.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_RESNET_MAX_STAGES 4
#define PAD_RESNET_MAX_BLOCKS 64 // bottlenecks per stage accepted by the loader
#define PAD_RESNET_BN_EPS     1e-5

typedef struct pad_resnet_cfg {
    int stem;                          // conv1 output channels (64)
    int n_stages;                      // residual stages present, 1..4 (layer1..layer<n>)
    int blocks[PAD_RESNET_MAX_STAGES]; // bottlenecks per stage (3, 4, 6, 3)
    int width[PAD_RESNET_MAX_STAGES];  // bottleneck width: conv1/conv2 channels (wide_resnet50_2: 128 .. 1024)
    int out[PAD_RESNET_MAX_STAGES];    // stage output channels: conv3 channels (256 .. 2048)
} pad_resnet_cfg;

// One convolution with its batch norm folded in: y = conv(x, w) + b.
typedef struct pad_resnet_conv {
    int K, C, k, stride, pad;
    float *w; // (K, C, k, k)
    float *b; // (K)
} pad_resnet_conv;

typedef struct pad_resnet pad_resnet;

// Stage outputs of one forward pass: data[s] (B, C[s], H[s], W[s]) in backend memory, owned by the model and valid
// until its next forward; NULL for stages not computed.
typedef struct pad_resnet_feats {
    const float *data[PAD_RESNET_MAX_STAGES];
    int C[PAD_RESNET_MAX_STAGES], H[PAD_RESNET_MAX_STAGES], W[PAD_RESNET_MAX_STAGES];
} pad_resnet_feats;

// Presets: the torchvision wide_resnet50_2 architecture, and a tiny one of the same structure for tests.
typedef enum pad_resnet_preset {
    PAD_RESNET_WIDE50_2 = 0,
    PAD_RESNET_TINY = 1,
} pad_resnet_preset;
// Parses "wide-resnet50-2" / "resnet-tiny"; PAD_ERR_INVALID_ARG (no log) otherwise.
pad_status pad_resnet_preset_parse(const char *s, pad_resnet_preset *out);
pad_resnet_cfg pad_resnet_preset_cfg(pad_resnet_preset p);

// Infers the architecture from the tensor shapes of an open checkpoint. Errors name the missing or misshapen tensor.
// Stages after the first missing layer<L> are absent (a checkpoint cut after layer3 loads with n_stages 3).
pad_status pad_resnet_infer_cfg(const pad_st_file *f, pad_resnet_cfg *cfg);

// Loads `path` (safetensors) onto be, up to stage max_stages (1..4, fewer when the file has fewer): shapes
// inferred, batch norms folded (eps 1e-5, in double), every tensor uploaded as one block.
pad_status pad_resnet_load(pad_resnet **out, pad_backend *be, const char *path, int max_stages);
void pad_resnet_free(pad_resnet *r); // NULL ok
const pad_resnet_cfg *pad_resnet_config(const pad_resnet *r);

// Runs the stem and stages 1..last_stage on pixels (B, 3, H, W) (backend memory, already normalised).
pad_status pad_resnet_forward(pad_resnet *r, const float *pixels, int B, int H, int W, int last_stage,
                              pad_resnet_feats *out);

// Writes a deterministic random checkpoint of cfg (torchvision names, F32, batch-norm statistics included; the same
// seed gives the same bytes everywhere). Convolutions are uniform in +-sqrt(3 / fan_in); bn weight in [0.5, 1.5],
// bias and running_mean in [-0.1, 0.1], running_var in [0.5, 1.5].
pad_status pad_resnet_write_random(const pad_resnet_cfg *cfg, uint64_t seed, const char *path);

// Building blocks shared with the CLIP ModifiedResNet (clip_resnet.h), whose convolutions carry batch norms too.
// Reads `<conv>.weight` (K, C, k, k) and the batch norm `<bn>.{weight,bias,running_mean,running_var}` (K) of f and
// folds them (eps 1e-5, in double) into w (K*C*k*k) and b (K). Errors name the missing or misshapen tensor.
pad_status pad_resnet_read_folded(const pad_st_file *f, const char *conv, const char *bn, int K, int C, int k, float *w,
                                  float *b);
// out (B, c->K, Ho, Wo) = act(conv c of in (B, c->C, *H, *W) + res) (res may be NULL; ReLU when relu); *H and *W
// become the output size.
pad_status pad_resnet_conv_run(pad_backend *be, const pad_resnet_conv *c, float *out, const float *in, int B, int *H,
                               int *W, const float *res, bool relu);
// Adds a random convolution `<conv>.weight` and its batch norm `<bn>.*` to w, drawn from the stream st as
// pad_resnet_write_random does.
pad_status pad_resnet_add_conv_bn(pad_st_writer *w, uint64_t *st, const char *conv, const char *bn, int K, int C,
                                  int k);
// Adds tensor `name` of the given shape, uniform in [lo, hi) from the stream st.
pad_status pad_resnet_add_uniform(pad_st_writer *w, uint64_t *st, const char *name, int ndim, const int64_t *shape,
                                  float lo, float hi);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_RESNET_H
