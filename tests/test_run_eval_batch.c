/* test_run_eval_batch.c - white-box test of the cohort's batched selection metrics (host/run/evaluate.c,
 * run_eval_select_pixel_batch / run_eval_select_image_batch) on the CPU backend: each unit's metric equals the
 * single evaluation's (pixel AUROC of its maps, image AUROC of its scores), NaN without ground truth. */
#include "check.h"
#include "run_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define U 4

Test(run_eval_batch, units_match_single_evaluations) {
    const int n = 6, R = 16;
    const size_t N = (size_t)n * R * R;
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    static pad_run_config cfg;
    cfg.run.fpr_limit = 0.3;
    run_ctx rc;
    memset(&rc, 0, sizeof rc);
    rc.cfg = &cfg;
    rc.be = be;
    rc.R = R;
    class_ctx cc;
    memset(&cc, 0, sizeof cc);
    cc.n = n;
    uint8_t *masks = calloc(N, 1), labels[6] = {0, 1, 0, 1, 1, 0};
    for (size_t p = 0; p < N; p++)
        masks[p] = labels[p / (R * R)] && (p % R) > 5 && (p % R) < 10 && (p / R) % R > 4;
    cr_assert(pad_metrics_gt_init(&cc.gt, masks, n, R, R) == PAD_OK);
    cc.labels = labels;
    cc.maps_host = malloc(N * sizeof(float));
    pad_rng rng = {31};
    float *host[U], *dev[U], score[U][6];
    for (int u = 0; u < U; u++) {
        host[u] = malloc(N * sizeof(float));
        for (size_t p = 0; p < N; p++)
            host[u][p] = floorf((pad_rng_uniform(&rng, 0, 1) + (masks[p] ? 0.2f * (float)u : 0.0f)) * 10.0f);
        cr_assert(pad_buf_from_host(be, &dev[u], host[u], N) == PAD_OK);
        for (int i = 0; i < n; i++)
            score[u][i] = pad_rng_uniform(&rng, 0, 1) + (float)u * 0.1f * labels[i];
    }
    double metric[U];
    cr_assert(run_eval_select_pixel_batch(&rc, &cc, (const float *const *)dev, U, metric) == PAD_OK);
    for (int u = 0; u < U; u++) {
        pad_pixel_metrics pm;
        cr_assert(pad_metrics_pixel(cc.gt, host[u], 0.3, 0, &pm) == PAD_OK);
        cr_assert(metric[u] == pm.auroc && metric[u] > 0.4, "unit %d: %.17g vs %.17g", u, metric[u], pm.auroc);
    }
    cr_assert(metric[0] < metric[U - 1]);
    const float *sp[U];
    for (int u = 0; u < U; u++)
        sp[u] = score[u];
    cr_assert(run_eval_select_image_batch(&rc, &cc, sp, U, metric) == PAD_OK);
    for (int u = 0; u < U; u++) {
        pad_image_metrics im;
        cr_assert(pad_metrics_image(score[u], labels, n, &im) == PAD_OK);
        cr_assert(metric[u] == im.auroc, "unit %d: %.17g vs %.17g", u, metric[u], im.auroc);
    }
    // without ground truth the pixel metric is NaN (and nothing is computed)
    pad_metrics_gt_free(cc.gt);
    cc.gt = NULL;
    cr_assert(run_eval_select_pixel_batch(&rc, &cc, (const float *const *)dev, U, metric) == PAD_OK);
    for (int u = 0; u < U; u++)
        cr_assert(isnan(metric[u]));
    for (int u = 0; u < U; u++) {
        pad_buf_free(be, dev[u]);
        free(host[u]);
    }
    free(cc.maps_host);
    free(masks);
    pad_backend_free(be);
}
