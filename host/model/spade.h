/* spade.h - SPADE (Cohen & Hoshen 2020) with the semantics of its reference implementation (SPADE-pytorch,
 * docs/conv_methods.md): the image score is the mean Euclidean distance of the test image's global feature (average
 * pool of the deepest stage loaded: layer4 for wide_resnet50_2, as SPADE's avgpool) to its top_k nearest normal
 * images; the map averages, over layer1, layer2 and layer3, each test pixel's distance to the nearest pixel of those
 * top_k images at that stage, each grid resized bilinearly (align_corners False) to the image, then smoothed by
 * scipy.ndimage.gaussian_filter(sigma 4). Pixel distances use the |x|^2 + |y|^2 - 2 x.y form of knn_l2 (SPADE's
 * torch.pairwise_distance adds 1e-6 to the difference: a relative change below 1e-6). */
#ifndef PAD_HOST_SPADE_H
#define PAD_HOST_SPADE_H

#include "backend.h"
#include "promptad.h"
#include "resnet.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pad_spade_cfg {
    int top_k;    // nearest normal images (5; fewer when there are fewer shots)
    double sigma; // the map's Gaussian (4)
} pad_spade_cfg;

typedef struct pad_spade pad_spade;

pad_spade_cfg pad_spade_default_cfg(void);
// Borrows net (at least 3 stages) and runs it on be.
pad_status pad_spade_create(pad_spade **out, pad_resnet *net, pad_backend *be, const pad_spade_cfg *cfg);
void pad_spade_free(pad_spade *s); // NULL ok
// Stores the features of N normal images, pixels (N, 3, H, W) on the backend (one call).
pad_status pad_spade_fit(pad_spade *s, const float *pixels, int N, int H, int W);
// Scores B images (same H, W as the fit): scores(B) on the host; maps (B, H, W) on the host when not NULL.
pad_status pad_spade_predict(pad_spade *s, const float *pixels, int B, int H, int W, float *scores, float *maps);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_SPADE_H
