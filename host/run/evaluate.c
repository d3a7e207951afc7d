/* evaluate.c - the evaluation of one epoch's text vectors on a class's test set: the selection metric of the
 * official protocol (image AUROC for cls, pixel AUROC for seg, on the GPU when the backend is CUDA) and the final
 * scores, maps and metrics of a unit; the visual score V of a group's memory bank (once per (shot, seed)), kept per
 * group and restored into the class's scorer when a group's units are scored, with the cls maps bilinear(V); and
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

pad_status run_eval_select(run_ctx *rc, class_ctx *cc, pad_prompt_task task, const float *text, float *scores,
                           double *metric) {
    const float *tn = cc->tvec_dev, *ta = cc->tvec_dev + rc->E;
    const bool cls = task == PAD_TASK_CLS;
    *metric = NAN;
    if (text)
        PAD_TRY(pad_scorer_text_set(cc->sc, cls ? text : NULL, cls ? NULL : text, cc->n));
    else
        PAD_TRY(
            pad_scorer_text(cc->sc, cls ? cc->cls_dev : NULL, cls ? NULL : cc->tok_dev, tn, ta, rc->tau, cc->n, rc->E));
    if (cls) {
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

// Makes g the active group (restore: copy its V and vmax into the scorer).
static pad_status activate(run_ctx *rc, class_ctx *cc, const group_ctx *g, bool restore) {
    PAD_ASSERT(g->vis_ready);
    const size_t nP = (size_t)cc->n * (size_t)rc->P;
    if (restore) {
        PAD_TRY(pad_buf_copy(rc->be, cc->sc->V, g->V_dev, nP * sizeof(float)));
        PAD_TRY(pad_buf_copy(rc->be, cc->sc->vmax, g->vmax_dev, (size_t)cc->n * sizeof(float)));
    }
    memcpy(cc->V_host, g->V_host, nP * sizeof(float));
    cc->vmaps_valid = false;
    cc->active = g;
    return PAD_OK;
}

// The "w/o VAD" ablation (run.use_vad false): the scorer is text-only (pad_score_cfg.text_only, set in
// features.c), there is no visual score (V recorded as NaN) and the cls task has no pixel map (its map is V).
pad_status run_group_visual(run_ctx *rc, class_ctx *cc, group_ctx *g, const pad_bank *bank) {
    const size_t nP = (size_t)cc->n * (size_t)rc->P;
    if (!g->V_host && !(g->V_host = malloc(nP * sizeof(float)))) return PAD_ERR_OOM;
    if (rc->cfg->run.no_vad) {
        for (size_t i = 0; i < nP; i++)
            g->V_host[i] = NAN;
    } else {
        if (!g->V_dev && !(g->V_dev = pad_buf_alloc(rc->be, nP * sizeof(float)))) return PAD_ERR_OOM;
        if (!g->vmax_dev && !(g->vmax_dev = pad_buf_alloc(rc->be, (size_t)cc->n * sizeof(float)))) return PAD_ERR_OOM;
        size_t nPD = nP * (size_t)rc->D;
        PAD_TRY(pad_scorer_visual(cc->sc, bank, cc->mid_dev, cc->mid_dev + nPD, cc->n));
        PAD_TRY(pad_buf_copy(rc->be, g->V_dev, cc->sc->V, nP * sizeof(float)));
        PAD_TRY(pad_buf_copy(rc->be, g->vmax_dev, cc->sc->vmax, (size_t)cc->n * sizeof(float)));
        PAD_TRY(pad_buf_download(rc->be, g->V_host, cc->sc->V, nP * sizeof(float)));
    }
    g->vis_ready = true;
    return activate(rc, cc, g, false); // the scorer holds g's V already
}

pad_status run_group_activate(run_ctx *rc, class_ctx *cc, const group_ctx *g) {
    return cc->active == g ? PAD_OK : activate(rc, cc, g, !rc->cfg->run.no_vad);
}

pad_status run_group_vmaps(run_ctx *rc, class_ctx *cc) {
    if (rc->cfg->run.no_vad || cc->vmaps_valid) return PAD_OK;
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
