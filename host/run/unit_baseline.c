/* unit_baseline.c - run.method patchcore | padim | spade: the memory-bank baselines (host/model/patchcore.h, padim.h,
 * spade.h;
 * docs/conv_methods.md) inside the run loop. The backbone is the ResNet of model.weights; images go in at
 * run.resolution (R x R, the metric resolution, so the maps need no resize; 256 is anomalib's default) through the
 * resize of model.preprocess and ImageNet's normalisation. One fit per (class, k, seed) serves both tasks: the cls unit
 * and the seg unit report the same image scores and maps (a baseline has no task-specific training), written in the
 * unit layout of PromptAD's units without the training log, the prompts and the V / T grids. */
#include "run_internal.h"

#include "fsutil.h"
#include "log.h"
#include "padim.h"
#include "patchcore.h"
#include "spade.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *run_baseline_name(const pad_run_config *cfg) {
    return cfg->run.method == PAD_RUN_METHOD_SPADE   ? "spade"
           : cfg->run.method == PAD_RUN_METHOD_PADIM ? "padim"
                                                     : "patchcore";
}

static const float k_imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, k_imagenet_std[3] = {0.229f, 0.224f, 0.225f};

pad_status run_baseline_load(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    // PatchCore taps layer2 + layer3, PaDiM layer1..3: layer4 is loaded for SPADE's global feature only
    PAD_TRY(pad_resnet_load(&rc->resnet, rc->be, rc->weights_path, cfg->run.method == PAD_RUN_METHOD_SPADE ? 0 : 3));
    if (pad_resnet_config(rc->resnet)->n_stages < 3) {
        PAD_LOG_ERROR("%s: run.method %s needs layer1..layer3", rc->weights_path, run_baseline_name(cfg));
        return PAD_ERR_FORMAT;
    }
    rc->R = rc->S = cfg->run.resolution;
    rc->batch = cfg->run.batch;
    return PAD_OK;
}

// Decodes paths[0..n) into normalised (3, R, R) images at out (host); keep[i] (optional) receives image i.
static pad_status load_pixels(run_ctx *rc, char *const *paths, int n, float *out, pad_image **keep) {
    const int R = rc->R;
    const pad_preprocess_mode mode = (pad_preprocess_mode)rc->cfg->model.preprocess;
    pad_status first = PAD_OK;
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) {
        pad_image img = {0};
        uint8_t *u8 = (uint8_t *)malloc((size_t)R * R * 3);
        pad_status st = u8 ? pad_image_load(&img, paths[i]) : PAD_ERR_OOM;
        if (st == PAD_OK) st = pad_preprocess_u8(&img, mode, R, u8, NULL);
        if (st == PAD_OK) {
            float *o = out + (size_t)i * 3 * R * R;
            for (size_t p = 0; p < (size_t)R * R; p++)
                for (int c = 0; c < 3; c++)
                    o[(size_t)c * R * R + p] = ((float)u8[p * 3 + c] / 255.0f - k_imagenet_mean[c]) / k_imagenet_std[c];
        }
        if (st == PAD_OK && keep && keep[i]) {
            *keep[i] = img;
            img = (pad_image){0};
        }
        pad_image_free(&img);
        free(u8);
        if (st != PAD_OK) {
#pragma omp critical
            if (first == PAD_OK) {
                first = st;
                PAD_LOG_ERROR("%s: cannot load the image", paths[i]);
            }
        }
    }
    return first;
}

pad_status run_baseline_prepare_class(run_ctx *rc, class_ctx *cc) {
    const pad_run_config *cfg = rc->cfg;
    const int n_all = cc->data.n_test, R = rc->R;
    const int n = cfg->data.max_test > 0 && cfg->data.max_test < n_all ? cfg->data.max_test : n_all;
    cc->n = n;
    cc->items = malloc((size_t)n * sizeof *cc->items);
    cc->labels = malloc((size_t)n);
    char **paths = malloc((size_t)n * sizeof *paths);
    const int ns = cfg->output.heatmaps < n ? cfg->output.heatmaps : n;
    cc->samples = calloc((size_t)(ns > 0 ? ns : 1), sizeof *cc->samples);
    cc->sample_img = calloc((size_t)(ns > 0 ? ns : 1), sizeof *cc->sample_img);
    pad_image **keep = calloc((size_t)n, sizeof *keep);
    cc->base_pix = malloc((size_t)n * 3 * R * R * sizeof(float));
    cc->maps_host = malloc((size_t)n * R * R * sizeof(float));
    pad_status st = PAD_OK;
    if (!cc->items || !cc->labels || !paths || !cc->samples || !cc->sample_img || !keep || !cc->base_pix ||
        !cc->maps_host)
        st = PAD_ERR_OOM;
    for (int i = 0; i < n && st == PAD_OK; i++) { // the same evenly spaced subset and samples as PromptAD's
        cc->items[i] = (int)((long long)i * n_all / n);
        cc->labels[i] = (uint8_t)cc->data.test[cc->items[i]].label;
        cc->n_anom += cc->labels[i];
        paths[i] = cc->data.test[cc->items[i]].path;
    }
    if (st == PAD_OK) {
        cc->n_samples = ns;
        for (int s = 0; s < ns; s++) {
            cc->samples[s] = (int)(((long long)2 * s + 1) * n / (2 * ns));
            keep[cc->samples[s]] = &cc->sample_img[s];
        }
        run_emit_stage(rc, "class %s: loading %d test images", cc->name, n);
        st = load_pixels(rc, paths, n, cc->base_pix, keep);
    }
    free(paths);
    free(keep);
    if (st != PAD_OK) return st;
    if (cc->n_anom == 0 || cc->n_anom == n)
        PAD_LOG_WARN("class %s: the test set has %s; AUROC is undefined", cc->name,
                     cc->n_anom ? "no normal image" : "no anomalous image");
    cc->data.has_masks = cc->data.has_masks && cc->n_anom > 0;
    if (cc->data.has_masks) {
        PAD_TRY(run_load_masks(rc, cc));
        PAD_TRY(pad_metrics_gt_init(&cc->gt, cc->masks, n, R, R));
    }
    return PAD_OK;
}

// Fits the baseline on the k shots and fills scores (n) and cc->maps_host (n, R, R).
static pad_status fit_and_score(run_ctx *rc, class_ctx *cc, int seed, const pad_shots *shots, float *scores) {
    const int R = rc->R, k = shots->k, n = cc->n, B = rc->batch;
    const size_t img = (size_t)3 * R * R;
    const bool padim = rc->cfg->run.method == PAD_RUN_METHOD_PADIM, spade = rc->cfg->run.method == PAD_RUN_METHOD_SPADE;
    char **paths = malloc((size_t)k * sizeof *paths);
    float *host = malloc((size_t)k * img * sizeof(float)), *dev = NULL;
    pad_patchcore *pc = NULL;
    pad_padim *pd = NULL;
    pad_spade *sp = NULL;
    pad_status st = paths && host ? PAD_OK : PAD_ERR_OOM;
    for (int i = 0; i < k && st == PAD_OK; i++)
        paths[i] = cc->data.train[shots->index[i]];
    if (st == PAD_OK) st = load_pixels(rc, paths, k, host, NULL);
    if (st == PAD_OK) st = pad_buf_from_host(rc->be, &dev, host, (size_t)k * img);
    if (st == PAD_OK && spade) {
        const pad_spade_cfg c = pad_spade_default_cfg();
        st = pad_spade_create(&sp, rc->resnet, rc->be, &c);
        if (st == PAD_OK) st = pad_spade_fit(sp, dev, k, R, R);
    } else if (st == PAD_OK && padim) {
        pad_padim_cfg c = pad_padim_default_cfg();
        c.seed = (uint64_t)seed;
        st = pad_padim_create(&pd, rc->resnet, rc->be, &c);
        if (st == PAD_OK) st = pad_padim_fit(pd, dev, k, R, R);
    } else if (st == PAD_OK) {
        pad_patchcore_cfg c = pad_patchcore_default_cfg();
        c.seed = (uint64_t)seed;
        st = pad_patchcore_create(&pc, rc->resnet, rc->be, &c);
        for (int i = 0; i < k && st == PAD_OK; i += B)
            st = pad_patchcore_add(pc, dev + (size_t)i * img, k - i < B ? k - i : B, R, R);
        if (st == PAD_OK) st = pad_patchcore_build(pc);
    }
    pad_buf_free(rc->be, dev);
    dev = NULL;
    if (st == PAD_OK) st = (dev = pad_buf_alloc(rc->be, (size_t)B * img * sizeof(float))) ? PAD_OK : PAD_ERR_OOM;
    for (int i = 0; i < n && st == PAD_OK; i += B) {
        const int m = n - i < B ? n - i : B;
        float *maps = cc->maps_host + (size_t)i * R * R;
        st = pad_buf_upload(rc->be, dev, cc->base_pix + (size_t)i * img, (size_t)m * img * sizeof(float));
        if (st == PAD_OK)
            st = spade   ? pad_spade_predict(sp, dev, m, R, R, scores + i, maps)
                 : padim ? pad_padim_predict(pd, dev, m, R, R, scores + i, maps, NULL)
                         : pad_patchcore_predict(pc, dev, m, R, R, scores + i, maps, NULL);
        if (st == PAD_OK && run_stop_requested(rc)) st = PAD_ERR_ABORTED;
    }
    pad_buf_free(rc->be, dev);
    pad_patchcore_free(pc);
    pad_padim_free(pd);
    pad_spade_free(sp);
    free(paths);
    free(host);
    return st;
}

// Writes and commits the unit of task t from the shared scores and maps.
static pad_status write_task_unit(run_ctx *rc, class_ctx *cc, pad_prompt_task t, int k, int seed,
                                  const pad_shots *shots, float *scores, const eval_out *ev, double secs) {
    const pad_run_config *cfg = rc->cfg;
    unit_result u;
    memset(&u, 0, sizeof u);
    u.task = t, u.k = k, u.seed = seed, u.shots = shots, u.ev = *ev, u.ev.scores = scores;
    u.baseline = run_baseline_name(cfg);
    u.selection = "none (no training)";
    u.select_best = u.select_last = NAN;
    u.t_eval = u.t_total = secs;
    pad_threshold_max_f1(scores, cc->labels, cc->n, &u.thr, &u.f1, &u.prec, &u.rec);
    const size_t N = (size_t)cc->n * rc->R * rc->R;
    u.map_lo = INFINITY, u.map_hi = -INFINITY;
    for (size_t i = 0; i < N; i++) {
        u.map_lo = cc->maps_host[i] < u.map_lo ? cc->maps_host[i] : u.map_lo;
        u.map_hi = cc->maps_host[i] > u.map_hi ? cc->maps_host[i] : u.map_hi;
    }
    if (!(u.map_lo <= u.map_hi)) u.map_lo = u.map_hi = 0;
    char final[PATH_CAP], tmp[PATH_CAP + 64];
    run_unit_path(rc, final, sizeof final, cc->name, k, seed, pad_prompt_task_name(t));
    run_tmp_sibling(tmp, sizeof tmp, final);
    pad_remove_tree(tmp);
    pad_status st = run_write_unit(rc, cc, &u, tmp);
    if (st == PAD_OK) st = run_commit_dir(tmp, final);
    if (st != PAD_OK) {
        pad_remove_tree(tmp);
        return st;
    }
    rc->n_done++;
    rc->n_computed++;
    pad_run_event ev_end = {.kind = PAD_RUN_EV_UNIT_END,
                            .cls = cc->name,
                            .task = pad_prompt_task_name(t),
                            .k = k,
                            .seed = seed,
                            .unit_seconds = secs,
                            .image_auroc = ev->img.auroc,
                            .pixel_auroc = ev->has_pix ? ev->pix.auroc : NAN,
                            .pixel_pro = ev->has_pix ? ev->pix.pro : NAN};
    run_emit(rc, &ev_end);
    return PAD_OK;
}

pad_status run_baseline_units(run_ctx *rc, class_ctx *cc, int k, int seed, const pad_shots *shots,
                              const bool todo[PAD_N_TASKS]) {
    const double t0 = pad_now();
    for (int t = 0; t < PAD_N_TASKS; t++) {
        if (!todo[t]) continue;
        pad_run_event ev = {
            .kind = PAD_RUN_EV_UNIT_BEGIN, .cls = cc->name, .task = pad_prompt_task_name(t), .k = k, .seed = seed};
        run_emit(rc, &ev);
    }
    float *scores = malloc((size_t)cc->n * sizeof(float));
    if (!scores) return PAD_ERR_OOM;
    eval_out e;
    memset(&e, 0, sizeof e);
    e.pix.auroc = e.pix.aupr = e.pix.pro = e.pix.pro_200 = NAN;
    pad_status st = fit_and_score(rc, cc, seed, shots, scores);
    if (st == PAD_OK) st = pad_metrics_image(scores, cc->labels, cc->n, &e.img);
    if (st == PAD_OK && cc->gt) {
        st = pad_metrics_pixel(cc->gt, cc->maps_host, rc->cfg->run.fpr_limit, PAD_METRICS_ALL, &e.pix);
        e.has_pix = true;
    }
    const double secs = pad_now() - t0;
    for (int t = 0; t < PAD_N_TASKS && st == PAD_OK; t++)
        if (todo[t]) st = write_task_unit(rc, cc, (pad_prompt_task)t, k, seed, shots, scores, &e, secs);
    if (st != PAD_OK && st != PAD_ERR_ABORTED)
        PAD_LOG_ERROR("class %s, k=%d, seed %d: the baseline failed (%s); the finished units are kept", cc->name, k,
                      seed, pad_status_str(st));
    free(scores);
    return st;
}
