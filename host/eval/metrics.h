/* metrics.h - exact anomaly-detection metrics: image AUROC / AUPR, pooled pixel AUROC / AUPR, the official MVTec AD
 * AU-PRO and PromptAD's 200-threshold PRO (docs/metrics.md). CPU reference in metrics.c, CUDA
 * twin of the pixel metrics in cuda/metrics.cu (the pad_metrics_gpu_* calls; stubs in CPU-only builds).
 *
 * Definitions (each equal to the named reference to ~1e-15, see tests/ref/make_metric_fixtures.py):
 * - AUROC: sklearn roc_auc_score, ties counted half (Mann-Whitney U). Computed from exact integer counts:
 *   U2 = sum over tie groups of fp_g * (tp_before + tp_after), AUROC = U2 / (2 P N), one rounding.
 * - AUPR: sklearn average_precision_score (step-wise, one point per distinct score): sum over tie groups of
 *   (recall_g - recall_g-1) * precision_g.
 * - PRO (`pro`): the official MVTec AD compute_pro + trapezoid: 8-connected GT regions, all pixel scores sorted
 *   descending, FPR = false positives / all background pixels, PRO = mean over all regions of all images of the
 *   covered fraction; one point per tie group (its last), clipped to 1, (0,0) prepended and (1,1) appended;
 *   trapezoid up to fpr_limit with linear interpolation at the limit when it is not a sample, divided by the limit.
 *   Deviation: the official script rounds the FPR to float32; we keep it exact (double). The difference is the
 *   float32 rounding (< 1e-7; measured 3e-9 on the test fixtures, 3e-10 on 50 M pixels). Per-pixel overlap increments
 * 1/|region| are summed exactly in 128-bit fixed point (2^-84 units), so the curve does not depend on the summation
 * order (CPU == GPU bit for bit).
 * - PRO-200 (`pro_200`): PromptAD's cal_pro_metric: thresholds t_s = float32((double)max - s * delta) with
 *   delta = (double)float32(max - min) / 200, s = 0..199 (NumPy 1.x semantics with float32 maps), prediction
 *   score > t_s; per region overlap |pred ∩ filled region| / |region| (holes filled with an 8-connected background
 *   flood inside the bounding box, as skimage's image_filled), mean over all regions; FPR over all background
 *   pixels; keep the points with FPR <= fpr_limit, min-max rescale their FPRs to [0,1], trapezoid (sklearn auc).
 *
 * Degenerate inputs. A NaN or infinite score is an error (PAD_ERR_INVALID_ARG naming the index): sklearn refuses
 * them too. A metric that is undefined for the data (AUROC with one class only, AUPR without positives, PRO
 * without regions or without background pixels, PRO-200 with fewer than two kept points or a zero FPR range) is
 * NaN and one warning line says why; the call still returns PAD_OK so the other metrics are usable.
 *
 * Sizes: at most 2^32 - 1 pixels per evaluation (the official script asserts the same). Scores are float32;
 * -0.0 and +0.0 are one tie group. Masks are uint8, > 0 = anomalous. */
#ifndef PAD_EVAL_METRICS_H
#define PAD_EVAL_METRICS_H

#include "backend.h"
#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// Image level

typedef struct pad_image_metrics {
    double auroc; // NaN when all labels are equal
    double aupr;  // NaN when there is no positive label
} pad_image_metrics;

// scores (n) finite float32, labels (n) 0 = normal, 1 = anomalous. O(n log n), allocates O(n) temporarily.
// Errors: n < 1, NULL pointers, a label other than 0/1, a non-finite score -> PAD_ERR_INVALID_ARG (logged).
pad_status pad_metrics_image(const float *scores, const uint8_t *labels, int64_t n, pad_image_metrics *out);

// ----------------------------------------------------------------------------
// Pixel level: a ground-truth context labels the masks once; it then evaluates any number of score maps.

typedef struct pad_metrics_gt pad_metrics_gt;

// Labels the 8-connected components of masks (n, H, W) (> 0 = anomalous), their sizes, and the hole-filled
// pixel lists that PRO-200 needs. The masks are not kept. On success *out owns the context (free with
// pad_metrics_gt_free); on failure *out is NULL. Errors: bad sizes or more than 2^32 - 1 pixels
// (PAD_ERR_INVALID_ARG), allocation failure (PAD_ERR_OOM).
pad_status pad_metrics_gt_init(pad_metrics_gt **out, const uint8_t *masks, int n, int H, int W);
void pad_metrics_gt_free(pad_metrics_gt *gt); // NULL is a no-op

typedef struct pad_metrics_gt_info {
    int n, H, W;
    int64_t n_pixels;    // n * H * W
    int64_t n_regions;   // 8-connected components over all images
    int64_t n_anomalous; // pixels inside a region
    int64_t n_normal;    // background pixels
} pad_metrics_gt_info;

void pad_metrics_gt_get_info(const pad_metrics_gt *gt, pad_metrics_gt_info *info);

// The region of each pixel, (n, H, W): 0 = background, 1..n_regions numbered image by image in raster order of
// each region's first pixel (the numbering of scipy.ndimage.label). Owned by gt.
const int32_t *pad_metrics_gt_labels(const pad_metrics_gt *gt);

// What pad_metrics_pixel computes. AUROC and AUPR come with every call (they share the sort).
enum {
    PAD_METRICS_PRO = 1u << 0,     // official AU-PRO
    PAD_METRICS_PRO_200 = 1u << 1, // PromptAD's 200-threshold PRO (CPU only)
    PAD_METRICS_ALL = PAD_METRICS_PRO | PAD_METRICS_PRO_200,
};

typedef struct pad_pixel_metrics {
    double auroc;   // pooled over all pixels; NaN without anomalous or without normal pixels
    double aupr;    // pooled average precision; NaN without anomalous pixels
    double pro;     // official AU-PRO up to fpr_limit / fpr_limit; NaN when not requested or undefined
    double pro_200; // PromptAD cal_pro_metric; NaN when not requested or undefined
} pad_pixel_metrics;

// Evaluates maps (n, H, W) float32 against gt. fpr_limit must be in (0, 1] (0.3 in the protocols). `which` is
// a mask of PAD_METRICS_*. The first call allocates a workspace of 2 bytes per pixel and 16 per anomalous pixel
// kept in gt, so gt must not be used by two calls at once; later calls allocate only 256 KiB per thread. The result
// does not depend on the OpenMP thread count. Errors: a non-finite score (PAD_ERR_INVALID_ARG naming image and pixel),
// bad fpr_limit, OOM.
pad_status pad_metrics_pixel(pad_metrics_gt *gt, const float *maps, double fpr_limit, unsigned which,
                             pad_pixel_metrics *out);

// Batches: n_units score sets against the same ground truth (the units of a cohort, issue 11), maps[u] (or
// scores[u]) being unit u's. The CPU versions are the reference: exactly a loop of the single calls, so out[u] equals
// the single call's result bit for bit. n_units == 0 does nothing. On an error (the first unit that fails stops the
// loop, its error is returned) every out[u] is NaN.
pad_status pad_metrics_pixel_batch(pad_metrics_gt *gt, const float *const *maps, int n_units, double fpr_limit,
                                   unsigned which, pad_pixel_metrics *out);
pad_status pad_metrics_image_batch(const float *const *scores, const uint8_t *labels, int64_t n, int n_units,
                                   pad_image_metrics *out);

// Writes the metrics as JSON to `path` atomically (a temporary file in the same folder, then rename):
// {"image_auroc", "image_aupr"} and, when pix is not NULL, "pixel_auroc", "pixel_aupr", "pixel_pro",
// "pixel_pro_200" (the keys of `promptad metrics`, docs/cli.md#metrics), fractions printed to round-trip exactly; a
// NaN metric is written as null. Errors: PAD_ERR_IO naming the path.
pad_status pad_metrics_write_json(const char *path, const pad_image_metrics *img, const pad_pixel_metrics *pix);

// Image threshold with the best F1 (ties: the highest such threshold) over n scores with 0/1 labels: predictions
// are score >= thr. Without anomalous labels thr is just above the largest score (f1 NaN); without normal ones it
// is the smallest score.
void pad_threshold_max_f1(const float *scores, const uint8_t *labels, int n, double *thr, double *f1, double *precision,
                          double *recall);

// ----------------------------------------------------------------------------
// GPU twin (cuda/metrics.cu). In builds without CUDA every call returns PAD_ERR_UNSUPPORTED (logged once per
// call); pad_metrics_gpu_free accepts NULL everywhere.

typedef struct pad_metrics_gpu pad_metrics_gpu;

// Uploads gt's region labels and per-region overlap increments to the device of the CUDA backend `be` and sizes
// the workspace (about 56 bytes per pixel: 2.8 GB for 50 M pixels). Every later call runs on the backend's stream
// and synchronises it before returning, so maps written by the backend's ops are read in order. gt may be freed
// afterwards; be must outlive g. PAD_ERR_UNSUPPORTED for a CPU backend or a CPU-only build. On failure *out is
// NULL.
pad_status pad_metrics_gpu_init(pad_metrics_gpu **out, const pad_metrics_gt *gt, pad_backend *be);
void pad_metrics_gpu_free(pad_metrics_gpu *g); // NULL is a no-op

// As pad_metrics_pixel for device-resident maps (n*H*W floats in device memory, not modified). `which` may
// contain PAD_METRICS_PRO; PAD_METRICS_PRO_200 gives PAD_ERR_UNSUPPORTED. Results equal the CPU's (AUROC bit
// for bit; AUPR and PRO to the last bit or within 1 ulp, see cuda/metrics.cu).
pad_status pad_metrics_gpu_pixel(pad_metrics_gpu *g, const float *maps_dev, double fpr_limit, unsigned which,
                                 pad_pixel_metrics *out);
// Same for host maps: copies them into a device buffer owned by g (allocated on first use), then evaluates.
pad_status pad_metrics_gpu_pixel_host(pad_metrics_gpu *g, const float *maps_host, double fpr_limit, unsigned which,
                                      pad_pixel_metrics *out);
// Image metrics of device-resident scores (n floats): copied to the host (n is small) and evaluated with
// pad_metrics_image, so the result is the CPU's exactly. labels are host memory; g only gives the stream (NULL:
// the legacy default stream).
pad_status pad_metrics_gpu_image(pad_metrics_gpu *g, const float *scores_dev, const uint8_t *labels, int64_t n,
                                 pad_image_metrics *out);

// Batched GPU twins of pad_metrics_pixel_batch / pad_metrics_image_batch (docs/metrics.md#batches). maps_dev
// (scores_dev) is a host array of n_units device pointers, each to one unit's n*H*W maps (n scores); contiguous
// units are maps + u * n*H*W. All units of a chunk are keyed together, sorted by ONE radix sort over (unit, score)
// composite keys, scanned once, and reduced per unit in the same order as pad_metrics_gpu_pixel, so out[u] equals
// pad_metrics_gpu_pixel's result for maps_dev[u] bit for bit (every integer sum and the AUPR double-double alike);
// the image batch equals pad_metrics_image (and so pad_metrics_gpu_image) bit for bit. The pixel batch keeps a
// workspace of about 68 bytes per pixel and unit of a chunk (pad_metrics_gpu_batch_bytes); units beyond the budget
// go in further chunks (the results do not depend on the chunking). Errors as the CPU batch, and as
// pad_metrics_gpu_pixel (PAD_METRICS_PRO_200 unsupported); a non-finite score is reported with its unit.
pad_status pad_metrics_gpu_pixel_batch(pad_metrics_gpu *g, const float *const *maps_dev, int n_units, double fpr_limit,
                                       unsigned which, pad_pixel_metrics *out);
// g may be NULL (the legacy default stream); labels are host memory, shared by all units.
pad_status pad_metrics_gpu_image_batch(pad_metrics_gpu *g, const float *const *scores_dev, const uint8_t *labels,
                                       int64_t n, int n_units, pad_image_metrics *out);
// The device memory budget of the pixel batch's workspace (default 4 GiB): a chunk holds as many units as fit, at
// least one (a chunk of one unit reuses the single-unit workspace and needs nothing more), at most 64.
void pad_metrics_gpu_set_batch_budget(pad_metrics_gpu *g, size_t bytes);
// The device bytes the pixel batch's workspace takes for a chunk of n_units units: 0 for one unit (it uses the
// single-unit workspace) and in CPU-only builds.
size_t pad_metrics_gpu_batch_bytes(const pad_metrics_gpu *g, int n_units);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_METRICS_H
