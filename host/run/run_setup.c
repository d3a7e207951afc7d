/* run_setup.c - what the run needs before its first class: the demo's random tiny model and byte vocabulary
 * (model.generate), the synthetic dataset (data.format synth), the backend of run.device, the model on it (vision
 * tower, tokenizer, prompt set, official shot lists) and the config hash that identifies the run's results. */
#include "run_internal.h"

#include "fsutil.h"
#include "log.h"
#include "synth.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// run.cuda_graphs auto: whether CUDA graphs are used by default. Off until eval/device_check.sh has shown on a GPU
// that graph replays give the eager results (parity_main's graph checks) and are faster.
#define PAD_RUN_CUDA_GRAPHS_DEFAULT false

pad_status run_ensure_generated_model(const pad_run_config *cfg) {
    if (strcmp(cfg->model.generate, "tiny") != 0) return PAD_OK;
    char dir[PAD_CFG_PATH_MAX];
    if (!pad_path_is_file(cfg->model.vocab)) {
        snprintf(dir, sizeof dir, "%s", cfg->model.vocab);
        char *s = strrchr(dir, '/');
        if (s) {
            *s = 0;
            PAD_TRY(pad_mkdir_p(dir));
        }
        PAD_TRY(pad_tokenizer_write_byte_vocab(cfg->model.vocab));
        PAD_LOG_INFO("wrote a byte-level vocabulary (no merges) to %s", cfg->model.vocab);
    }
    if (pad_path_is_file(cfg->model.weights)) return PAD_OK;
    pad_tokenizer *tok = NULL;
    PAD_TRY(pad_tokenizer_load(&tok, cfg->model.vocab));
    int vocab = pad_tokenizer_vocab_size(tok);
    pad_tokenizer_free(tok);
    snprintf(dir, sizeof dir, "%s", cfg->model.weights);
    char *s = strrchr(dir, '/');
    if (s) {
        *s = 0;
        PAD_TRY(pad_mkdir_p(dir));
    }
    pad_clip_cfg mc = pad_model_preset_cfg(PAD_MODEL_TINY);
    mc.text.vocab = vocab;
    pad_clip_weights *w = NULL;
    PAD_TRY(pad_weights_make_random(&w, &mc, 0));
    pad_status st = pad_weights_save(w, cfg->model.weights);
    pad_weights_free(w);
    if (st == PAD_OK)
        PAD_LOG_WARN("wrote a RANDOM tiny model to %s: the numbers of this run mean nothing (real numbers need the "
                     "real weights: bash weights/get_weights.sh)",
                     cfg->model.weights);
    return st;
}

static bool dir_is_empty_or_missing(const char *path) {
    DIR *d = opendir(path);
    if (!d) return true;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = false;
    closedir(d);
    return empty;
}

pad_status run_ensure_synth(const pad_run_config *cfg) {
    if (strcmp(cfg->data.format, "synth") != 0) return PAD_OK;
    if (!dir_is_empty_or_missing(cfg->data.root)) return PAD_OK;
    pad_synth_opts o;
    pad_synth_opts_default(&o);
    o.n_classes = cfg->data.synth.classes;
    o.seed = (uint64_t)cfg->data.synth.seed;
    o.size = cfg->data.synth.size;
    o.n_train = cfg->data.synth.train;
    o.n_test_good = cfg->data.synth.test_good;
    o.n_test_bad = cfg->data.synth.test_bad;
    pad_synth_summary sum;
    PAD_TRY(pad_synth_write(cfg->data.root, &o, &sum));
    PAD_LOG_INFO("wrote a synthetic dataset to %s: %d classes, %d train and %d test images", cfg->data.root,
                 sum.n_classes, sum.n_train, sum.n_test);
    return PAD_OK;
}

static pad_status init_backend_kind(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    pad_backend_params p = pad_backend_params_default();
    p.kind = (pad_backend_kind)cfg->run.device;
    p.n_threads = cfg->run.threads;
    return pad_backend_create(&rc->be, &p);
}

pad_status run_init_backend(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    PAD_TRY(init_backend_kind(rc));
    const bool cuda = pad_backend_get_kind(rc->be) == PAD_BACKEND_CUDA;
    rc->graphs = cuda && (cfg->run.cuda_graphs == 1 || (cfg->run.cuda_graphs < 0 && PAD_RUN_CUDA_GRAPHS_DEFAULT));
    if (!cuda && cfg->run.cuda_graphs == 1) PAD_LOG_INFO("run.cuda_graphs on: no effect on the CPU backend");
    if (!cuda && cfg->run.fast_math != PAD_MATH_FP32)
        PAD_LOG_INFO("run.fast_math %s: no effect on the CPU backend (float32 everywhere)",
                     pad_math_mode_str((pad_math_mode)cfg->run.fast_math));
    if (rc->graphs) PAD_LOG_INFO("CUDA graphs on: each epoch's ops are replayed as graphs");
    return PAD_OK;
}

pad_status run_init_model(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    snprintf(rc->weights_path, sizeof rc->weights_path, "%s", cfg->model.weights);
    if (cfg->model.vocab[0])
        snprintf(rc->vocab_path, sizeof rc->vocab_path, "%s", cfg->model.vocab);
    else
        PAD_TRY(pad_tokenizer_find_vocab(rc->vocab_path, sizeof rc->vocab_path, NULL));
    if (!pad_path_is_file(rc->weights_path)) {
        PAD_LOG_ERROR(
            "%s: model weights not found (model.weights); get the real ones with 'bash weights/get_weights.sh' "
            "(see weights/README.md), or run the demo: promptad run --config configs/demo.yaml",
            rc->weights_path);
        return PAD_ERR_IO;
    }
    PAD_TRY(pad_file_fingerprint(rc->weights_path, &rc->weights_fp, &rc->weights_size));
    PAD_TRY(pad_file_fingerprint(rc->vocab_path, &rc->vocab_fp, NULL));
    pad_run_config_hash(cfg, rc->weights_fp, rc->vocab_fp, rc->hash);
    return PAD_OK;
}

pad_status run_load_model(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    PAD_TRY(pad_weights_load(&rc->w_host, rc->weights_path, PAD_WEIGHTS_ALL));
    PAD_TRY(pad_weights_to_backend(rc->w_host, rc->be, &rc->w_dev));
    const pad_clip_cfg *mc = &rc->w_host->cfg;
    rc->S = mc->vision.image_size;
    rc->G = mc->vision.grid;
    rc->P = rc->G * rc->G;
    rc->E = mc->embed_dim;
    rc->D = mc->vision.width;
    rc->W = mc->text.width;
    rc->R = cfg->run.resolution;
    if (cfg->model.taps[0] >= mc->vision.layers || cfg->model.taps[1] >= mc->vision.layers) {
        PAD_LOG_ERROR("model.taps [%d, %d]: %s has %d vision blocks (0-based taps below %d)", cfg->model.taps[0],
                      cfg->model.taps[1], rc->weights_path, mc->vision.layers, mc->vision.layers);
        return PAD_ERR_INVALID_ARG;
    }
    rc->tau = pad_score_tau(rc->w_host->logit_scale, cfg->run.tau_exp);
    rc->batch = cfg->run.batch;
    pad_vit_params vp = pad_vit_default_params();
    vp.max_batch = rc->batch;
    vp.tap1 = cfg->model.taps[0];
    vp.tap2 = cfg->model.taps[1];
    PAD_TRY(pad_vit_create(&rc->vit, rc->be, rc->w_dev, &vp));
    size_t npix = (size_t)rc->batch * 3 * (size_t)rc->S * (size_t)rc->S;
    rc->pix_host = malloc(npix * sizeof(float));
    rc->pix_dev = pad_buf_alloc(rc->be, npix * sizeof(float));
    if (!rc->pix_host || !rc->pix_dev) {
        PAD_LOG_ERROR("out of memory for the image batch (%zu floats)", npix);
        return PAD_ERR_OOM;
    }
    PAD_TRY(pad_tokenizer_load(&rc->tok, rc->vocab_path));
    PAD_TRY(pad_prompt_set_open(&rc->pset, cfg->run.prompts));
    if (cfg->run.shot_select != PAD_SHOT_SELECT_RANDOM) {
        char p[PAD_CFG_PATH_MAX];
        pad_resolve_data_path(cfg->run.shot_lists, p, sizeof p);
        PAD_TRY(pad_shot_lists_load(&rc->lists, p));
    }
    return PAD_OK;
}

pad_status run_open_cache(run_ctx *rc) {
    const char *dir = rc->cfg->cache.dir;
    char buf[PAD_CFG_PATH_MAX + 64];
    if (strcmp(dir, "auto") == 0) {
        // beside the results folder: <parent of output.dir>/.promptad-cache
        char out[PAD_CFG_PATH_MAX];
        snprintf(out, sizeof out, "%s", rc->cfg->output.dir);
        size_t n = strlen(out);
        while (n > 1 && out[n - 1] == '/')
            out[--n] = 0;
        char *slash = strrchr(out, '/');
        if (!slash)
            snprintf(buf, sizeof buf, ".promptad-cache");
        else if (slash == out)
            snprintf(buf, sizeof buf, "/.promptad-cache");
        else
            snprintf(buf, sizeof buf, "%.*s/.promptad-cache", (int)(slash - out), out);
        dir = buf;
    }
    PAD_TRY(pad_fcache_open(&rc->fcache, dir));
    if (!pad_fcache_enabled(rc->fcache)) return PAD_OK;
    const size_t B = (size_t)rc->batch, E = (size_t)rc->E, P = (size_t)rc->P, D = (size_t)rc->D;
    rc->enc_cls = pad_buf_alloc(rc->be, B * E * sizeof(float));
    rc->enc_tok = pad_buf_alloc(rc->be, B * P * E * sizeof(float));
    rc->enc_mid1 = pad_buf_alloc(rc->be, B * P * D * sizeof(float));
    rc->enc_mid2 = pad_buf_alloc(rc->be, B * P * D * sizeof(float));
    if (!rc->enc_cls || !rc->enc_tok || !rc->enc_mid1 || !rc->enc_mid2) return PAD_ERR_OOM;
    PAD_LOG_INFO("feature cache: %s", dir);
    return PAD_OK;
}

void run_free_model(run_ctx *rc) {
    pad_fcache_free(rc->fcache);
    rc->fcache = NULL;
    if (rc->be) {
        pad_buf_free(rc->be, rc->enc_cls);
        pad_buf_free(rc->be, rc->enc_tok);
        pad_buf_free(rc->be, rc->enc_mid1);
        pad_buf_free(rc->be, rc->enc_mid2);
    }
    rc->enc_cls = rc->enc_tok = rc->enc_mid1 = rc->enc_mid2 = NULL;
    pad_vit_free(rc->vit);
    rc->vit = NULL;
    if (rc->be) pad_buf_free(rc->be, rc->pix_dev);
    rc->pix_dev = NULL;
    free(rc->pix_host);
    rc->pix_host = NULL;
    pad_weights_free(rc->w_dev);
    pad_weights_free(rc->w_host);
    rc->w_dev = rc->w_host = NULL;
    pad_tokenizer_free(rc->tok);
    rc->tok = NULL;
    pad_prompt_set_free(rc->pset);
    rc->pset = NULL;
    pad_shot_lists_free(rc->lists);
    rc->lists = NULL;
    pad_backend_free(rc->be);
    rc->be = NULL;
}
