/* metrics_batch.c - the CPU reference of the batched metrics (metrics.h): many units' score sets against one
 * ground truth, as a loop of the single-unit calls, so that every unit's result is the single call's bit for bit.
 * The GPU twins (cuda/metrics.cu) are held to these results. */
#include "metrics.h"

#include "log.h"

#include <math.h>

static void nan_pixel(pad_pixel_metrics *out, int n_units) {
    for (int u = 0; u < n_units; u++)
        out[u].auroc = out[u].aupr = out[u].pro = out[u].pro_200 = NAN;
}

pad_status pad_metrics_pixel_batch(pad_metrics_gt *gt, const float *const *maps, int n_units, double fpr_limit,
                                   unsigned which, pad_pixel_metrics *out) {
    if (n_units < 0 || (n_units > 0 && (!gt || !maps || !out))) {
        PAD_LOG_ERROR("pixel metrics: bad batch (%d units)", n_units);
        return PAD_ERR_INVALID_ARG;
    }
    for (int u = 0; u < n_units; u++) {
        pad_status st = pad_metrics_pixel(gt, maps[u], fpr_limit, which, &out[u]);
        if (st != PAD_OK) {
            PAD_LOG_ERROR("pixel metrics: unit %d of %d failed", u, n_units);
            nan_pixel(out, n_units);
            return st;
        }
    }
    return PAD_OK;
}

pad_status pad_metrics_image_batch(const float *const *scores, const uint8_t *labels, int64_t n, int n_units,
                                   pad_image_metrics *out) {
    if (n_units < 0 || (n_units > 0 && (!scores || !out))) {
        PAD_LOG_ERROR("image metrics: bad batch (%d units)", n_units);
        return PAD_ERR_INVALID_ARG;
    }
    for (int u = 0; u < n_units; u++) {
        pad_status st = pad_metrics_image(scores[u], labels, n, &out[u]);
        if (st != PAD_OK) {
            PAD_LOG_ERROR("image metrics: unit %d of %d failed", u, n_units);
            for (int v = 0; v < n_units; v++)
                out[v].auroc = out[v].aupr = NAN;
            return st;
        }
    }
    return PAD_OK;
}
