/* patchcore.h - PatchCore (Roth et al. 2022) with anomalib's semantics (docs/conv_methods.md): a ResNet's layer2 and
 * layer3 outputs, each averaged over 3x3 neighbourhoods (AvgPool2d(3, 1, 1), padding counted), layer3 resized
 * bilinearly (align_corners False) to layer2's grid and concatenated along the channels; one embedding row per patch.
 * The memory bank holds every patch of the normal shots (optionally a k-center-greedy coreset, seeded). A test
 * patch's score is its Euclidean distance to the nearest bank row (anomalib's |x|^2 + |y|^2 - 2 x.y formula); the
 * image score is the largest patch score times anomalib's reweighting 1 - softmax(distances of that patch to the
 * num_neighbors nearest bank rows of its nearest neighbour)[0]; the map is the patch-score grid resized to the image
 * (nearest neighbour) and blurred by a Gaussian (sigma 4, kernel 2*int(4 sigma + 0.5) + 1, reflect padding). */
#ifndef PAD_HOST_PATCHCORE_H
#define PAD_HOST_PATCHCORE_H

#include "backend.h"
#include "promptad.h"
#include "resnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pad_patchcore_cfg {
    int layers[2];        // tapped stages, 1-based (2, 3)
    int num_neighbors;    // 9 (1: the image score is the plain maximum)
    double coreset_ratio; // fraction of the patches kept; >= 1 keeps all (default), (0, 1): k-center greedy
    uint64_t seed;        // the coreset's first centre
    double sigma;         // the map's Gaussian (4)
} pad_patchcore_cfg;

typedef struct pad_patchcore pad_patchcore;

pad_patchcore_cfg pad_patchcore_default_cfg(void);
// The model borrows net (which must outlive it) and runs on net's backend.
pad_status pad_patchcore_create(pad_patchcore **out, pad_resnet *net, pad_backend *be, const pad_patchcore_cfg *cfg);
void pad_patchcore_free(pad_patchcore *pc); // NULL ok

// Embedding rows (B*h*w, D) of pixels (B, 3, H, W) in backend memory (owned by pc, valid until the next call);
// row (b*h + y)*w + x is patch (y, x) of image b.
pad_status pad_patchcore_embed(pad_patchcore *pc, const float *pixels, int B, int H, int W, const float **rows, int *h,
                               int *w, int *D);
// Appends every patch of normal images to the bank (host side; call pad_patchcore_build after the last one).
pad_status pad_patchcore_add(pad_patchcore *pc, const float *pixels, int B, int H, int W);
// Subsamples (coreset) and uploads the bank.
pad_status pad_patchcore_build(pad_patchcore *pc);
int pad_patchcore_bank_rows(const pad_patchcore *pc);
int pad_patchcore_dim(const pad_patchcore *pc);
const float *pad_patchcore_bank(const pad_patchcore *pc); // host copy (rows, D)

// Scores B images: scores(B) on the host; maps (B, H, W) and patch (B, h, w) on the host when not NULL.
pad_status pad_patchcore_predict(pad_patchcore *pc, const float *pixels, int B, int H, int W, float *scores,
                                 float *maps, float *patch);

// k-center greedy on rows x(n, D) (host): first centre pad_prng_below(seed state, n), then repeatedly the row
// farthest (Euclidean, in double) from the chosen centres (first index on ties); sel(k) receives the indices.
pad_status pad_kcenter_greedy(const float *x, int n, int D, int k, uint64_t seed, int32_t *sel);
// The anomaly-map smoothing: in-place Gaussian blur of map(H, W) with kornia's kernel (exp(-x^2 / (2 sigma^2)) on
// the integer offsets of a 2*int(4 sigma + 0.5) + 1 window, normalised) and torch's 'reflect' padding (mirrored
// without repeating the edge sample), separable, in double.
pad_status pad_patchcore_blur(float *map, int H, int W, double sigma);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_PATCHCORE_H
