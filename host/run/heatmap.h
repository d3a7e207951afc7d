/* heatmap.h - heatmap overlays of anomaly maps on test images, shared by the run's units and `promptad predict`. */
#ifndef PAD_RUN_HEATMAP_H
#define PAD_RUN_HEATMAP_H

#include "image.h"
#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

// The part of img the model sees, as a new image in *out: the whole image (squash, official preprocessing) or the
// centre square (openclip); *x0, *y0 receive its offset in img.
pad_status pad_heatmap_view(const pad_image *img, pad_preprocess_mode mode, pad_image *out, int *x0, int *y0);

// The overlay (pad_heatmap_overlay) of map (mw x mh, colour range [lo, hi]) on the model's view of img, with the
// white 1-pixel contour of the ground truth: the union of the masks in mask_paths[0..n_masks) that have img's
// size (others, and unreadable ones, are skipped; n_masks may be 0). *out is allocated; free with pad_image_free.
pad_status pad_heatmap_render(const pad_image *img, pad_preprocess_mode mode, const float *map, int mw, int mh,
                              float lo, float hi, char *const *mask_paths, int n_masks, pad_image *out);

#ifdef __cplusplus
}
#endif

#endif // PAD_RUN_HEATMAP_H
