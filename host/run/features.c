/* features.c - the test-feature and shot cache of one class: its test images decoded and preprocessed on all
 * cores, encoded once by the vision tower (features stay on the backend), the ground truth labelled once at the
 * metric resolution; the shots' features encoded on first use and kept on the host for every (shot, seed) that
 * draws them. */
#include "run_internal.h"

#include "fsutil.h"
#include "log.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Decodes and preprocesses paths[0..n) into rc->pix_host (parallel over images). keep[i] (optional) receives the
// decoded image i (ownership passes to the caller). Errors name the class and the file.
static pad_status load_batch(run_ctx *rc, const char *cls, char *const *paths, int n, bool bgr, pad_image **keep) {
    pad_status first = PAD_OK;
    int bad = -1;
    size_t per = 3 * (size_t)rc->S * (size_t)rc->S;
    pad_preprocess_mode mode = (pad_preprocess_mode)rc->cfg->model.preprocess;
#pragma omp parallel
    {
        pad_resize_ws *ws = NULL;
        pad_status wst = pad_resize_ws_init(&ws);
#pragma omp for schedule(dynamic)
        for (int i = 0; i < n; i++) {
            pad_status st = wst;
            pad_image img = {0};
            if (st == PAD_OK) st = pad_image_load(&img, paths[i]);
            if (st == PAD_OK) st = pad_preprocess_ws(&img, mode, rc->S, bgr, rc->pix_host + (size_t)i * per, ws);
            if (st == PAD_OK && keep && keep[i]) {
                *keep[i] = img;
                img = (pad_image){0};
            }
            pad_image_free(&img);
            if (st != PAD_OK) {
#pragma omp critical
                {
                    if (bad < 0 || i < bad) {
                        bad = i;
                        first = st;
                    }
                }
            }
        }
        pad_resize_ws_free(ws);
    }
    if (bad >= 0) PAD_LOG_ERROR("class %s: cannot read image %s", cls, paths[bad]);
    return first;
}

static pad_status encode_images_in(run_ctx *rc, const char *cls, char *const *paths, int n, bool bgr, float *cls_out,
                                   float *tok_out, float *mid1_out, float *mid2_out, pad_image **keep);

// The feature space of the images of this run (what their features depend on besides their bytes).
static pad_fcache_space cache_space(const run_ctx *rc, bool bgr) {
    pad_fcache_space sp = {.weights_fp = rc->weights_fp,
                           .preprocess = rc->cfg->model.preprocess,
                           .bgr = bgr,
                           .taps = {rc->taps[0], rc->taps[1]},
                           .E = rc->E,
                           .P = rc->P,
                           .D = rc->D,
                           .quick_gelu = rc->w_host && rc->w_host->cfg.act == PAD_ACT_QUICK_GELU};
    return sp;
}

// Host rows of one image's features.
typedef struct feat_rows {
    float *cls, *tok, *mid1, *mid2; // (E), (P,E), (P,D), (P,D)
} feat_rows;

static pad_status rows_alloc(const run_ctx *rc, feat_rows *f) {
    const size_t E = (size_t)rc->E, PE = (size_t)rc->P * E, PD = (size_t)rc->P * (size_t)rc->D;
    f->cls = malloc(E * sizeof(float));
    f->tok = malloc(PE * sizeof(float));
    f->mid1 = malloc(PD * sizeof(float));
    f->mid2 = malloc(PD * sizeof(float));
    return f->cls && f->tok && f->mid1 && f->mid2 ? PAD_OK : PAD_ERR_OOM;
}

static void rows_free(feat_rows *f) {
    free(f->cls);
    free(f->tok);
    free(f->mid1);
    free(f->mid2);
}

// Copies image i's host rows into row `at` of the backend outputs (upload) or the other way (download).
static pad_status rows_move(run_ctx *rc, feat_rows *f, int at, float *cls_out, float *tok_out, float *mid1_out,
                            float *mid2_out, bool upload) {
    const size_t E = (size_t)rc->E, PE = (size_t)rc->P * E, PD = (size_t)rc->P * (size_t)rc->D;
    float *dev[4] = {cls_out + (size_t)at * E, tok_out + (size_t)at * PE, mid1_out + (size_t)at * PD,
                     mid2_out + (size_t)at * PD};
    float *host[4] = {f->cls, f->tok, f->mid1, f->mid2};
    const size_t len[4] = {E, PE, PD, PD};
    for (int t = 0; t < 4; t++) {
        if (upload)
            PAD_TRY(pad_buf_upload(rc->be, dev[t], host[t], len[t] * sizeof(float)));
        else
            PAD_TRY(pad_buf_download(rc->be, host[t], dev[t], len[t] * sizeof(float)));
    }
    return PAD_OK;
}

// The images not in the cache, encoded in batches into their rows, then stored in the cache.
static pad_status encode_misses(run_ctx *rc, const char *cls, char *const *paths, const int *miss, int n_miss,
                                const uint64_t *hash, bool bgr, float *outs[4], pad_image **keep, feat_rows *f) {
    const pad_fcache_space sp = cache_space(rc, bgr);
    char **mp = malloc((size_t)(n_miss > 0 ? n_miss : 1) * sizeof *mp);
    pad_image **mk = keep ? calloc((size_t)(n_miss > 0 ? n_miss : 1), sizeof *mk) : NULL;
    pad_status st = mp && (!keep || mk) ? PAD_OK : PAD_ERR_OOM;
    for (int j = 0; j < n_miss && st == PAD_OK; j++) {
        mp[j] = paths[miss[j]];
        if (mk) mk[j] = keep[miss[j]];
    }
    // each batch is encoded into the run's encoding buffers, then every row goes to its place and into the cache
    for (int c0 = 0; c0 < n_miss && st == PAD_OK; c0 += rc->batch) {
        const int b = n_miss - c0 < rc->batch ? n_miss - c0 : rc->batch;
        st = encode_images_in(rc, cls, mp + c0, b, bgr, rc->enc_cls, rc->enc_tok, rc->enc_mid1, rc->enc_mid2,
                              mk ? mk + c0 : NULL);
        for (int j = 0; j < b && st == PAD_OK; j++) {
            st = rows_move(rc, f, j, rc->enc_cls, rc->enc_tok, rc->enc_mid1, rc->enc_mid2, false);
            if (st == PAD_OK) st = rows_move(rc, f, miss[c0 + j], outs[0], outs[1], outs[2], outs[3], true);
            if (st == PAD_OK) pad_fcache_put(rc->fcache, &sp, hash[miss[c0 + j]], f->cls, f->tok, f->mid1, f->mid2);
        }
    }
    free(mp);
    free(mk);
    return st;
}

// run_encode_images through the feature cache: hits are uploaded into their rows (and decoded only when the
// caller keeps the image), misses encoded and stored.
static pad_status encode_cached(run_ctx *rc, const char *cls, char *const *paths, int n, bool bgr, float *outs[4],
                                pad_image **keep) {
    const pad_fcache_space sp = cache_space(rc, bgr);
    uint64_t *hash = malloc((size_t)n * sizeof *hash);
    int *miss = malloc((size_t)n * sizeof *miss);
    feat_rows f = {0};
    pad_status st = hash && miss ? rows_alloc(rc, &f) : PAD_ERR_OOM;
    int n_miss = 0;
    for (int i = 0; i < n && st == PAD_OK; i++) {
        st = pad_fcache_hash_file(paths[i], &hash[i]);
        if (st != PAD_OK) {
            PAD_LOG_ERROR("class %s: cannot read image %s", cls, paths[i]);
            break;
        }
        if (!pad_fcache_get(rc->fcache, &sp, hash[i], f.cls, f.tok, f.mid1, f.mid2)) {
            miss[n_miss++] = i;
            continue;
        }
        st = rows_move(rc, &f, i, outs[0], outs[1], outs[2], outs[3], true);
        if (st == PAD_OK && keep && keep[i]) st = pad_image_load(keep[i], paths[i]);
    }
    if (st == PAD_OK && n_miss) st = encode_misses(rc, cls, paths, miss, n_miss, hash, bgr, outs, keep, &f);
    if (st == PAD_OK && n - n_miss > 0) {
        run_emit_stage(rc, "class %s: %d of %d images from the feature cache", cls, n - n_miss, n);
        PAD_LOG_INFO("class %s: %d of %d images from the feature cache", cls, n - n_miss, n);
    }
    rows_free(&f);
    free(hash);
    free(miss);
    if (st != PAD_OK) return st;
    return pad_backend_sync(rc->be);
}

pad_status run_encode_images(run_ctx *rc, const char *cls, char *const *paths, int n, bool bgr, float *cls_out,
                             float *tok_out, float *mid1_out, float *mid2_out, pad_image **keep) {
    pad_backend_set_math(rc->be, (pad_math_mode)rc->cfg->run.fast_math);
    pad_status st;
    float *outs[4] = {cls_out, tok_out, mid1_out, mid2_out};
    if (pad_fcache_enabled(rc->fcache) && rc->enc_cls && cls_out && tok_out && mid1_out && mid2_out)
        st = encode_cached(rc, cls, paths, n, bgr, outs, keep);
    else
        st = encode_images_in(rc, cls, paths, n, bgr, cls_out, tok_out, mid1_out, mid2_out, keep);
    pad_backend_set_math(rc->be, PAD_MATH_FP32);
    return st;
}

static pad_status encode_images_in(run_ctx *rc, const char *cls, char *const *paths, int n, bool bgr, float *cls_out,
                                   float *tok_out, float *mid1_out, float *mid2_out, pad_image **keep) {
    size_t per = 3 * (size_t)rc->S * (size_t)rc->S;
    for (int c0 = 0; c0 < n; c0 += rc->batch) {
        int b = n - c0 < rc->batch ? n - c0 : rc->batch;
        PAD_TRY(load_batch(rc, cls, paths + c0, b, bgr, keep ? keep + c0 : NULL));
        PAD_TRY(pad_buf_upload(rc->be, rc->pix_dev, rc->pix_host, (size_t)b * per * sizeof(float)));
        pad_vit_out o = {
            cls_out ? cls_out + (size_t)c0 * (size_t)rc->E : NULL,
            tok_out ? tok_out + (size_t)c0 * (size_t)rc->P * (size_t)rc->E : NULL,
            mid1_out ? mid1_out + (size_t)c0 * (size_t)rc->P * (size_t)rc->D : NULL,
            mid2_out ? mid2_out + (size_t)c0 * (size_t)rc->P * (size_t)rc->D : NULL,
        };
        PAD_TRY(rc->crn ? pad_clip_resnet_forward(rc->crn, rc->pix_dev, b, &o)
                        : pad_vit_forward(rc->vit, rc->pix_dev, b, &o));
        if (run_stop_requested(rc)) return PAD_ERR_ABORTED;
    }
    return pad_backend_sync(rc->be);
}

// The union of test item it's mask files into *u. Errors name the file.
static pad_status mask_union(const pad_test_item *it, pad_mask *u, const char **at) {
    memset(u, 0, sizeof *u);
    pad_status st = PAD_OK;
    for (int m = 0; m < it->n_masks && st == PAD_OK; m++) {
        pad_mask mk = {0};
        *at = it->mask_paths[m];
        st = pad_mask_load(&mk, *at);
        if (st != PAD_OK) break;
        if (m == 0) {
            *u = mk;
            continue;
        }
        if (mk.w != u->w || mk.h != u->h) {
            PAD_LOG_ERROR("%s: mask is %dx%d, the first mask of %s is %dx%d", *at, mk.w, mk.h, it->path, u->w, u->h);
            st = PAD_ERR_FORMAT;
        } else {
            for (size_t p = 0; p < (size_t)u->w * (size_t)u->h; p++)
                u->m[p] = (uint8_t)(u->m[p] | mk.m[p]);
        }
        pad_mask_free(&mk);
    }
    if (st != PAD_OK) pad_mask_free(u);
    return st;
}

// Reads the ground truth of the class's test items at the metric resolution. Checks on the way (warnings, the run
// goes on; dataset.h): a mask whose size differs from its image's is resized like the others (the official code
// resizes image and mask independently) with one warning per class naming the first such file; a normal image
// (label 0) whose mask marks pixels keeps an empty ground truth, and an anomalous image with an empty mask is kept
// as it is, each with a warning naming the file.
pad_status run_load_masks(run_ctx *rc, class_ctx *cc) {
    const size_t RR = (size_t)rc->R * (size_t)rc->R;
    cc->masks = calloc((size_t)cc->n * RR, 1);
    if (!cc->masks) {
        PAD_LOG_ERROR("class %s: out of memory for %d masks", cc->name, cc->n);
        return PAD_ERR_OOM;
    }
    pad_preprocess_mode mode = (pad_preprocess_mode)rc->cfg->model.preprocess;
    pad_status first = PAD_OK;
    int bad = -1, n_size = 0, first_size = -1;
    char bad_path[PATH_CAP] = "", size_msg[2 * PATH_CAP] = "";
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < cc->n; i++) {
        const pad_test_item *it = &cc->data.test[cc->items[i]];
        if (it->n_masks == 0) continue;
        pad_mask u = {0};
        const char *at = it->mask_paths[0];
        pad_status st = mask_union(it, &u, &at);
        int iw = 0, ih = 0;
        if (st == PAD_OK && (st = pad_image_size(it->path, &iw, &ih)) != PAD_OK) at = it->path;
        if (st == PAD_OK) {
            size_t marked = 0;
            for (size_t p = 0; p < (size_t)u.w * (size_t)u.h; p++)
                marked += u.m[p];
            if (it->label == 0 && marked)
                PAD_LOG_WARN("%s: a normal test image whose mask %s marks %zu pixels; its ground truth is kept empty",
                             it->path, at, marked);
            if (it->label == 1 && !marked)
                PAD_LOG_WARN("%s: an anomalous test image whose mask %s is empty (no defect pixel)", it->path, at);
            if (iw != u.w || ih != u.h) {
#pragma omp critical
                {
                    n_size++;
                    if (first_size < 0 || i < first_size) {
                        first_size = i;
                        snprintf(size_msg, sizeof size_msg, "%s is %dx%d, its image %s is %dx%d", at, u.w, u.h,
                                 it->path, iw, ih);
                    }
                }
            }
        }
        pad_mask r = {0};
        if (st == PAD_OK && it->label == 1) st = pad_mask_preprocess(&u, mode, rc->R, &r);
        if (st == PAD_OK && it->label == 1) memcpy(cc->masks + (size_t)i * RR, r.m, RR);
        pad_mask_free(&r);
        pad_mask_free(&u);
        if (st != PAD_OK) {
#pragma omp critical
            {
                if (bad < 0 || i < bad) {
                    bad = i;
                    first = st;
                    snprintf(bad_path, sizeof bad_path, "%s", at);
                }
            }
        }
    }
    if (bad >= 0) PAD_LOG_ERROR("class %s: cannot read the ground truth %s", cc->name, bad_path);
    if (n_size)
        PAD_LOG_WARN("class %s: %d mask%s differ in size from their image (first: %s); each is resized to the metric "
                     "resolution on its own, as the official code does",
                     cc->name, n_size, n_size > 1 ? "s" : "", size_msg);
    return first;
}

// Lists the class, decodes + encodes its test set, labels the ground truth.
pad_status run_prepare_class_test(run_ctx *rc, class_ctx *cc) {
    const pad_run_config *cfg = rc->cfg;
    int n_all = cc->data.n_test;
    int n = cfg->data.max_test > 0 && cfg->data.max_test < n_all ? cfg->data.max_test : n_all;
    cc->n = n;
    cc->items = malloc((size_t)n * sizeof *cc->items);
    cc->labels = malloc((size_t)n);
    char **paths = malloc((size_t)n * sizeof *paths);
    if (!cc->items || !cc->labels || !paths) {
        free(paths);
        PAD_LOG_ERROR("class %s: out of memory", cc->name);
        return PAD_ERR_OOM;
    }
    cc->n_anom = 0;
    for (int i = 0; i < n; i++) {
        cc->items[i] = (int)((long long)i * n_all / n); // evenly spaced subset (all when n == n_all)
        const pad_test_item *it = &cc->data.test[cc->items[i]];
        cc->labels[i] = (uint8_t)it->label;
        cc->n_anom += it->label;
        paths[i] = it->path;
    }
    if (cc->n_anom == 0 || cc->n_anom == n)
        PAD_LOG_WARN("class %s: the test set has %s; AUROC is undefined", cc->name,
                     cc->n_anom ? "no normal image" : "no anomalous image");
    // heatmap samples: evenly spaced over the test list (sorted by defect type, so every type is visited)
    int ns = cfg->output.heatmaps < n ? cfg->output.heatmaps : n;
    cc->n_samples = ns;
    cc->samples = calloc((size_t)(ns > 0 ? ns : 1), sizeof *cc->samples);
    cc->sample_img = calloc((size_t)(ns > 0 ? ns : 1), sizeof *cc->sample_img);
    pad_image **keep = calloc((size_t)n, sizeof *keep);
    if (!cc->samples || !cc->sample_img || !keep) {
        free(paths);
        free(keep);
        return PAD_ERR_OOM;
    }
    for (int s = 0; s < ns; s++) {
        cc->samples[s] = (int)(((long long)2 * s + 1) * n / (2 * ns));
        keep[cc->samples[s]] = &cc->sample_img[s];
    }
    size_t nE = (size_t)n * (size_t)rc->E, nPE = nE * (size_t)rc->P, nPD = (size_t)n * (size_t)rc->P * (size_t)rc->D;
    cc->cls_dev = pad_buf_alloc(rc->be, nE * sizeof(float));
    cc->tok_dev = pad_buf_alloc(rc->be, nPE * sizeof(float));
    cc->mid_dev = pad_buf_alloc(rc->be, 2 * nPD * sizeof(float));
    cc->tvec_dev = pad_buf_alloc(rc->be, 2 * (size_t)rc->E * sizeof(float));
    cc->tmp_dev = pad_buf_alloc(rc->be, (size_t)n * sizeof(float));
    pad_status st = PAD_OK;
    if (!cc->cls_dev || !cc->tok_dev || !cc->mid_dev || !cc->tvec_dev || !cc->tmp_dev) st = PAD_ERR_OOM;
    if (st == PAD_OK) {
        run_emit_stage(rc, "class %s: encoding %d test images", cc->name, n);
        st = run_encode_images(rc, cc->name, paths, n, cfg->run.test_bgr != 0, cc->cls_dev, cc->tok_dev, cc->mid_dev,
                               cc->mid_dev + nPD, keep);
    }
    free(paths);
    free(keep);
    if (st != PAD_OK) return st;
    PAD_TRY(pad_score_normalize(rc->be, cc->mid_dev, 2 * n * rc->P, rc->D));
    cc->data.has_masks = cc->data.has_masks && cc->n_anom > 0;
    if (cc->data.has_masks) {
        PAD_TRY(run_load_masks(rc, cc));
        PAD_TRY(pad_metrics_gt_init(&cc->gt, cc->masks, n, rc->R, rc->R));
        if (pad_backend_get_kind(rc->be) == PAD_BACKEND_CUDA) {
            if (pad_metrics_gpu_init(&cc->gt_gpu, cc->gt, rc->be) != PAD_OK) {
                PAD_LOG_WARN("class %s: GPU metrics unavailable; pixel metrics on the CPU", cc->name);
                cc->gt_gpu = NULL;
            }
        }
    } else {
        PAD_LOG_WARN("class %s: no ground-truth masks; pixel metrics are skipped", cc->name);
    }
    pad_score_cfg scfg = pad_score_cfg_default(n, rc->G, rc->R);
    scfg.fp16 = cfg->run.fp16_scores != 0;
    scfg.graphs = rc->graphs;
    scfg.text_only = cfg->run.no_vad; // the "w/o VAD" ablation (evaluate.c)
    PAD_TRY(pad_scorer_init(&cc->sc, rc->be, &scfg));
    size_t RR = (size_t)rc->R * (size_t)rc->R;
    cc->maps_host = malloc((size_t)n * RR * sizeof(float));
    cc->vmaps_host = malloc((size_t)n * RR * sizeof(float));
    cc->V_host = malloc((size_t)n * (size_t)rc->P * sizeof(float));
    if (!cc->maps_host || !cc->vmaps_host || !cc->V_host) {
        PAD_LOG_ERROR("class %s: out of memory for the maps of %d images at %dx%d", cc->name, n, rc->R, rc->R);
        return PAD_ERR_OOM;
    }
    return PAD_OK;
}

// Host features of train image `index` (encoded on first use).
pad_status run_shot_features(run_ctx *rc, class_ctx *cc, const int *index, int k) {
    // encode the missing ones in one go
    char **paths = malloc((size_t)k * sizeof *paths);
    int *todo = malloc((size_t)k * sizeof *todo);
    if (!paths || !todo) {
        free(paths);
        free(todo);
        return PAD_ERR_OOM;
    }
    int n_todo = 0;
    for (int i = 0; i < k; i++) {
        bool have = false;
        for (int c = 0; c < cc->n_cache; c++)
            have = have || cc->cache[c].index == index[i];
        for (int j = 0; j < n_todo; j++)
            have = have || todo[j] == index[i];
        if (!have) {
            todo[n_todo] = index[i];
            paths[n_todo++] = cc->data.train[index[i]];
        }
    }
    pad_status st = PAD_OK;
    if (n_todo) {
        size_t E = (size_t)rc->E, PE = (size_t)rc->P * E, PD = (size_t)rc->P * (size_t)rc->D;
        float *dcls = pad_buf_alloc(rc->be, (size_t)n_todo * E * sizeof(float));
        float *dtok = pad_buf_alloc(rc->be, (size_t)n_todo * PE * sizeof(float));
        float *dm1 = pad_buf_alloc(rc->be, (size_t)n_todo * PD * sizeof(float));
        float *dm2 = pad_buf_alloc(rc->be, (size_t)n_todo * PD * sizeof(float));
        shot_feat *nc = realloc(cc->cache, (size_t)(cc->n_cache + n_todo) * sizeof *nc);
        if (!dcls || !dtok || !dm1 || !dm2 || !nc) st = PAD_ERR_OOM;
        if (nc) cc->cache = nc;
        // shots are always RGB (the official code converts train images BGR->RGB)
        if (st == PAD_OK) st = run_encode_images(rc, cc->name, paths, n_todo, false, dcls, dtok, dm1, dm2, NULL);
        for (int j = 0; j < n_todo && st == PAD_OK; j++) {
            shot_feat f = {todo[j], malloc(E * sizeof(float)), malloc(PE * sizeof(float)), malloc(PD * sizeof(float)),
                           malloc(PD * sizeof(float))};
            if (!f.cls || !f.tok || !f.mid1 || !f.mid2) st = PAD_ERR_OOM;
            if (st == PAD_OK) st = pad_buf_download(rc->be, f.cls, dcls + (size_t)j * E, E * sizeof(float));
            if (st == PAD_OK) st = pad_buf_download(rc->be, f.tok, dtok + (size_t)j * PE, PE * sizeof(float));
            if (st == PAD_OK) st = pad_buf_download(rc->be, f.mid1, dm1 + (size_t)j * PD, PD * sizeof(float));
            if (st == PAD_OK) st = pad_buf_download(rc->be, f.mid2, dm2 + (size_t)j * PD, PD * sizeof(float));
            if (st == PAD_OK) {
                cc->cache[cc->n_cache++] = f;
            } else {
                free(f.cls);
                free(f.tok);
                free(f.mid1);
                free(f.mid2);
            }
        }
        pad_buf_free(rc->be, dcls);
        pad_buf_free(rc->be, dtok);
        pad_buf_free(rc->be, dm1);
        pad_buf_free(rc->be, dm2);
    }
    free(paths);
    free(todo);
    return st;
}

const shot_feat *run_cached_shot(const class_ctx *cc, int index) {
    for (int c = 0; c < cc->n_cache; c++)
        if (cc->cache[c].index == index) return &cc->cache[c];
    return NULL;
}

// Uploads the k shots' features into the class's shot buffers.
pad_status run_upload_shots(run_ctx *rc, class_ctx *cc, const int *index, int k) {
    size_t E = (size_t)rc->E, PE = (size_t)rc->P * E, PD = (size_t)rc->P * (size_t)rc->D;
    if (k > cc->max_k) {
        pad_buf_free(rc->be, cc->shot_cls);
        pad_buf_free(rc->be, cc->shot_tok);
        pad_buf_free(rc->be, cc->shot_mid1);
        pad_buf_free(rc->be, cc->shot_mid2);
        cc->shot_cls = pad_buf_alloc(rc->be, (size_t)k * E * sizeof(float));
        cc->shot_tok = pad_buf_alloc(rc->be, (size_t)k * PE * sizeof(float));
        cc->shot_mid1 = pad_buf_alloc(rc->be, (size_t)k * PD * sizeof(float));
        cc->shot_mid2 = pad_buf_alloc(rc->be, (size_t)k * PD * sizeof(float));
        cc->max_k = k;
        if (!cc->shot_cls || !cc->shot_tok || !cc->shot_mid1 || !cc->shot_mid2) {
            cc->max_k = 0;
            return PAD_ERR_OOM;
        }
    }
    for (int i = 0; i < k; i++) {
        const shot_feat *f = run_cached_shot(cc, index[i]);
        PAD_ASSERT(f != NULL);
        PAD_TRY(pad_buf_upload(rc->be, cc->shot_cls + (size_t)i * E, f->cls, E * sizeof(float)));
        PAD_TRY(pad_buf_upload(rc->be, cc->shot_tok + (size_t)i * PE, f->tok, PE * sizeof(float)));
        PAD_TRY(pad_buf_upload(rc->be, cc->shot_mid1 + (size_t)i * PD, f->mid1, PD * sizeof(float)));
        PAD_TRY(pad_buf_upload(rc->be, cc->shot_mid2 + (size_t)i * PD, f->mid2, PD * sizeof(float)));
    }
    return PAD_OK;
}

void run_class_free(run_ctx *rc, class_ctx *cc) {
    pad_backend *be = rc->be;
    pad_buf_free(be, cc->cls_dev);
    pad_buf_free(be, cc->tok_dev);
    pad_buf_free(be, cc->mid_dev);
    pad_buf_free(be, cc->shot_cls);
    pad_buf_free(be, cc->shot_tok);
    pad_buf_free(be, cc->shot_mid1);
    pad_buf_free(be, cc->shot_mid2);
    pad_buf_free(be, cc->tvec_dev);
    pad_buf_free(be, cc->tmp_dev);
    pad_metrics_gt_free(cc->gt);
    pad_metrics_gpu_free(cc->gt_gpu);
    pad_scorer_free(cc->sc);
    for (int i = 0; i < cc->n_cache; i++) {
        free(cc->cache[i].cls);
        free(cc->cache[i].tok);
        free(cc->cache[i].mid1);
        free(cc->cache[i].mid2);
    }
    free(cc->cache);
    free(cc->base_pix);
    for (int i = 0; i < cc->n_samples; i++)
        pad_image_free(&cc->sample_img[i]);
    free(cc->sample_img);
    free(cc->samples);
    free(cc->items);
    free(cc->labels);
    free(cc->masks);
    free(cc->maps_host);
    free(cc->vmaps_host);
    free(cc->V_host);
    if (cc->loaded) pad_class_data_free(&cc->data);
    memset(cc, 0, sizeof *cc);
}
