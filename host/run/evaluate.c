/* evaluate.c - the evaluation of one epoch's text vectors on a class's test set: the selection metric of the
 * official protocol (image AUROC for cls, pixel AUROC for seg, on the GPU when the backend is CUDA) and the final
 * scores, maps and metrics of a unit; the visual score V of a memory bank with its maps, once per (shot, seed); and
 * the selection metrics of many units of a class at once (a cohort, issue 11). */
#include "run_internal.h"

#include "log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void nan_metrics(eval_out *e) {
    e->img.auroc = e->img.aupr = NAN;
    e->pix.auroc = e->pix.aupr = e->pix.pro = e->pix.pro_200 = NAN;
    e->has_pix = false;
}

pad_status run_eval_select(run_ctx *rc, class_ctx *cc, pad_prompt_task task, float *scores, double *metric) {
    const float *tn = cc->tvec_dev, *ta = cc->tvec_dev + rc->E;
    *metric = NAN;
    if (task == PAD_TASK_CLS) {
        PAD_TRY(pad_scorer_text(cc->sc, cc->cls_dev, NULL, tn, ta, rc->tau, cc->n, rc->E));
        PAD_TRY(pad_scorer_image_scores(cc->sc, cc->n, scores));
        pad_image_metrics im;
        pad_log_level lvl = pad_log_get_level();
        pad_log_set_level(PAD_LOG_LEVEL_ERROR); // an undefined AUROC warns once, at the final evaluation
        pad_status st = pad_metrics_image(scores, cc->labels, cc->n, &im);
        pad_log_set_level(lvl);
        PAD_TRY(st);
        *metric = im.auroc;
        return PAD_OK;
    }
    PAD_TRY(pad_scorer_text(cc->sc, NULL, cc->tok_dev, tn, ta, rc->tau, cc->n, rc->E));
    PAD_TRY(pad_scorer_pixel_maps(cc->sc, cc->n));
    if (!cc->gt) return PAD_OK;
    pad_pixel_metrics pm;
    pad_log_level lvl = pad_log_get_level();
    pad_log_set_level(PAD_LOG_LEVEL_ERROR);
    pad_status st;
    if (cc->gt_gpu) {
        PAD_TRY(pad_backend_sync(rc->be));
        st = pad_metrics_gpu_pixel(cc->gt_gpu, cc->sc->maps, rc->cfg->run.fpr_limit, 0, &pm);
    } else {
        size_t RR = (size_t)rc->R * (size_t)rc->R;
        st = pad_buf_download(rc->be, cc->maps_host, cc->sc->maps, (size_t)cc->n * RR * sizeof(float));
        if (st == PAD_OK) st = pad_metrics_pixel(cc->gt, cc->maps_host, rc->cfg->run.fpr_limit, 0, &pm);
    }
    pad_log_set_level(lvl);
    PAD_TRY(st);
    *metric = pm.auroc;
    return PAD_OK;
}

pad_status run_eval_final(run_ctx *rc, class_ctx *cc, pad_prompt_task task, eval_out *e) {
    const float *tn = cc->tvec_dev, *ta = cc->tvec_dev + rc->E;
    nan_metrics(e);
    size_t RR = (size_t)rc->R * (size_t)rc->R;
    if (task == PAD_TASK_CLS) {
        PAD_TRY(pad_scorer_text(cc->sc, cc->cls_dev, NULL, tn, ta, rc->tau, cc->n, rc->E));
        PAD_TRY(pad_scorer_image_scores(cc->sc, cc->n, e->scores));
        if (cc->vmaps_valid) {
            e->pix = cc->vmaps_metrics;
            e->has_pix = cc->gt != NULL;
        }
    } else {
        PAD_TRY(pad_scorer_text(cc->sc, NULL, cc->tok_dev, tn, ta, rc->tau, cc->n, rc->E));
        PAD_TRY(pad_scorer_pixel_maps(cc->sc, cc->n));
        PAD_TRY(pad_buf_download(rc->be, cc->maps_host, cc->sc->maps, (size_t)cc->n * RR * sizeof(float)));
        pad_score_map_max(cc->maps_host, cc->n, RR, e->scores);
        if (cc->gt) {
            PAD_TRY(pad_metrics_pixel(cc->gt, cc->maps_host, rc->cfg->run.fpr_limit, PAD_METRICS_ALL, &e->pix));
            e->has_pix = true;
        }
    }
    return pad_metrics_image(e->scores, cc->labels, cc->n, &e->img);
}

// The "w/o VAD" ablation (run.use_vad false): the scorer is text-only (pad_score_cfg.text_only, set in
// features.c), there is no visual score (V recorded as NaN) and the cls task has no pixel map (its map is V).
static pad_status no_vad_scores(run_ctx *rc, class_ctx *cc) {
    const size_t nP = (size_t)cc->n * (size_t)rc->P;
    for (size_t i = 0; i < nP; i++)
        cc->V_host[i] = NAN;
    cc->vmaps_valid = false;
    return PAD_OK;
}

pad_status run_visual_scores(run_ctx *rc, class_ctx *cc, const pad_bank *bank, bool need_vmaps) {
    if (rc->cfg->run.no_vad) return no_vad_scores(rc, cc);
    size_t nPD = (size_t)cc->n * (size_t)rc->P * (size_t)rc->D;
    PAD_TRY(pad_scorer_visual(cc->sc, bank, cc->mid_dev, cc->mid_dev + nPD, cc->n));
    PAD_TRY(pad_buf_download(rc->be, cc->V_host, cc->sc->V, (size_t)cc->n * (size_t)rc->P * sizeof(float)));
    cc->vmaps_valid = false;
    if (!need_vmaps) return PAD_OK;
    size_t RR = (size_t)rc->R * (size_t)rc->R;
    PAD_TRY(pad_scorer_visual_maps(cc->sc, cc->n));
    PAD_TRY(pad_buf_download(rc->be, cc->vmaps_host, cc->sc->maps, (size_t)cc->n * RR * sizeof(float)));
    cc->vmaps_metrics.auroc = cc->vmaps_metrics.aupr = cc->vmaps_metrics.pro = cc->vmaps_metrics.pro_200 = NAN;
    if (cc->gt)
        PAD_TRY(pad_metrics_pixel(cc->gt, cc->vmaps_host, rc->cfg->run.fpr_limit, PAD_METRICS_ALL, &cc->vmaps_metrics));
    cc->vmaps_valid = true;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// Cohorts (issue 11): the selection metric of many units of one class at once

pad_status run_eval_select_pixel_batch(run_ctx *rc, class_ctx *cc, const float *const *maps, int n_units,
                                       double *metric) {
    for (int u = 0; u < n_units; u++)
        metric[u] = NAN;
    if (!cc->gt || n_units <= 0) return PAD_OK;
    pad_pixel_metrics *pm = malloc((size_t)n_units * sizeof *pm);
    if (!pm) return PAD_ERR_OOM;
    const double limit = rc->cfg->run.fpr_limit;
    pad_log_level lvl = pad_log_get_level();
    pad_log_set_level(PAD_LOG_LEVEL_ERROR); // an undefined AUROC warns once, at the final evaluation
    pad_status st = PAD_OK;
    if (cc->gt_gpu) {
        st = pad_backend_sync(rc->be);
        if (st == PAD_OK) st = pad_metrics_gpu_pixel_batch(cc->gt_gpu, maps, n_units, limit, 0, pm);
    } else {
        const size_t bytes = (size_t)cc->n * (size_t)rc->R * (size_t)rc->R * sizeof(float);
        for (int u = 0; u < n_units && st == PAD_OK; u++) {
            st = pad_buf_download(rc->be, cc->maps_host, maps[u], bytes);
            if (st == PAD_OK) st = pad_metrics_pixel(cc->gt, cc->maps_host, limit, 0, &pm[u]);
        }
    }
    pad_log_set_level(lvl);
    for (int u = 0; u < n_units && st == PAD_OK; u++)
        metric[u] = pm[u].auroc;
    free(pm);
    return st;
}

pad_status run_eval_select_image_batch(run_ctx *rc, class_ctx *cc, const float *const *scores, int n_units,
                                       double *metric) {
    (void)rc;
    for (int u = 0; u < n_units; u++)
        metric[u] = NAN;
    if (n_units <= 0) return PAD_OK;
    pad_image_metrics *im = malloc((size_t)n_units * sizeof *im);
    if (!im) return PAD_ERR_OOM;
    pad_log_level lvl = pad_log_get_level();
    pad_log_set_level(PAD_LOG_LEVEL_ERROR);
    pad_status st = pad_metrics_image_batch(scores, cc->labels, cc->n, n_units, im);
    pad_log_set_level(lvl);
    for (int u = 0; u < n_units && st == PAD_OK; u++)
        metric[u] = im[u].auroc;
    free(im);
    return st;
}
