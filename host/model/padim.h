/* padim.h - PaDiM (Defard et al. 2020) with anomalib's semantics (docs/conv_methods.md): the ResNet's layer1,
 * layer2 and layer3 outputs, the deeper ones resized to layer1's grid by nearest neighbour and concatenated, a
 * random subset of n_features channels (seeded; anomalib draws with random.sample) or a given one (anomalib's `idx`
 * buffer, read from a safetensors file by pad_padim_read_idx), a Gaussian per patch position fitted
 * on the normal shots (mean, covariance with ddof 1 + 0.01 I + 1e-5 I), the Mahalanobis distance of every test patch
 * (sqrt of the clamped quadratic form), the distance grid resized bilinearly to the image and blurred (sigma 4, as
 * PatchCore), and the image score = the map's maximum.
 *
 * Few-shot arithmetic: with N shots the covariance is a I + U U^T (a = 0.01 + 1e-5, U the N centred embeddings over
 * sqrt(N - 1)), so the inverse is applied through the Woodbury identity with an N x N system per position, in double:
 * the same quantity as anomalib's (float32, 550 x 550) inverse, computed exactly and without its memory. With one
 * shot anomalib's covariance is 0/0 (NaN); here the divisor is max(N - 1, 1), so the covariance is a I. */
#ifndef PAD_HOST_PADIM_H
#define PAD_HOST_PADIM_H

#include "backend.h"
#include "promptad.h"
#include "resnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_PADIM_MAX_SHOTS 64

typedef struct pad_padim_cfg {
    int n_features; // channels kept (550 for wide_resnet50_2; clamped to the available channels)
    uint64_t seed;  // the channel subset
    double sigma;   // the map's Gaussian (4)
    // A given channel subset instead of the seeded draw (NULL: draw): n_channels indices into the concatenated
    // layer1..3 channels, used in this order as anomalib's index_select does; copied by pad_padim_create, which
    // refuses an index out of range or repeated. n_features and seed are then unused.
    const int32_t *channels;
    int n_channels;
} pad_padim_cfg;

typedef struct pad_padim pad_padim;

pad_padim_cfg pad_padim_default_cfg(void);
// Borrows net (3 stages at least) and runs it on be.
pad_status pad_padim_create(pad_padim **out, pad_resnet *net, pad_backend *be, const pad_padim_cfg *cfg);
void pad_padim_free(pad_padim *p); // NULL ok
// The selected channel indices, n of them, into the concatenated layer1..3 channels: the seeded draw sorted, or
// cfg.channels in their order.
const int32_t *pad_padim_channels(const pad_padim *p, int *n);
// The concatenated channel count of net's layer1..3 (the range of a channel index); 0 with fewer than 3 stages.
int pad_padim_channel_count(const pad_resnet *net);
// Reads a channel subset from tensor "idx" of the safetensors file at path (anomalib's PadimModel.idx, e.g. saved
// from another implementation): 1-D with 1..total entries, an integer dtype (I64, I32, I8, U8) or a float dtype
// (F32, F64, F16, BF16) holding integers, every value in [0, total) and none repeated. *out (malloc'd, caller frees)
// receives the n values in the file's order. Errors name the file and the problem: PAD_ERR_FORMAT (PAD_ERR_IO when
// the file cannot be opened).
pad_status pad_padim_read_idx(const char *path, int total, int32_t **out, int *n);
// Fits the Gaussians on N normal images (N <= PAD_PADIM_MAX_SHOTS), pixels (N, 3, H, W) on the backend.
pad_status pad_padim_fit(pad_padim *p, const float *pixels, int N, int H, int W);
// Scores B images (same H, W as the fit): scores(B); maps (B, H, W) and dist (B, h1, w1) on the host when not NULL.
pad_status pad_padim_predict(pad_padim *p, const float *pixels, int B, int H, int W, float *scores, float *maps,
                             float *dist);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_PADIM_H
