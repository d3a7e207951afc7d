/* run.c - the main job of run.h: per class, the test set is decoded, preprocessed and encoded once (features stay
 * on the backend), the ground truth is labelled once; per (shot, seed) the shots are encoded (cached by file), the
 * memory bank and its visual score V are computed once and shared by both tasks; per task the prompts are trained
 * (promptad_spec.md §4.1) and only the text scores, maps and metrics are recomputed per evaluated epoch (§8.3). */
#include "run.h"
#include "run_method.h"

#include "dataset.h"
#include "fsutil.h"
#include "image.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "predict.h"
#include "prng.h"
#include "prompt.h"
#include "report.h"
#include "score.h"
#include "shots.h"
#include "st_file.h"
#include "synth.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_CAP 4096

static const char *const k_task_names[2] = {"cls", "seg"};

// The official code's 8 generic anomaly states: the prompts of a class that the prompt set does not know.
static const char *const k_generic_states[] = {"damaged {}",   "flawed {}",    "abnormal {}",    "imperfect {}",
                                               "blemished {}", "{} with flaw", "{} with defect", "{} with damage"};

// ----------------------------------------------------------------------------
// Contexts

typedef struct run_ctx {
    const pad_run_config *cfg;
    const pad_run_opts *opts;
    pad_run_result *res;
    pad_backend *be;
    pad_clip_weights *w_host, *w_dev;
    pad_vit *vit;
    pad_tokenizer *tok;
    pad_prompt_set *pset;
    pad_shot_lists *lists;
    pad_dataset *ds;
    pad_dataset_format format;
    char dataset[PAD_CFG_NAME_MAX];
    char hash[17];
    uint64_t weights_fp, vocab_fp;
    int64_t weights_size;
    char weights_path[PAD_CFG_PATH_MAX], vocab_path[PAD_CFG_PATH_MAX];
    char ds_dir[PATH_CAP]; // <output.dir>/<dataset>
    int S, G, P, E, D, R, W;
    float tau;
    int batch;
    float *pix_dev;  // (batch, 3, S, S) backend
    float *pix_host; // (batch, 3, S, S)
    char **classes;  // the classes of this run
    int n_classes;
    int n_units, n_done, n_skipped, n_computed;
    bool graphs; // CUDA graphs for the per-epoch work (run.cuda_graphs resolved)
} run_ctx;

// run.cuda_graphs auto: whether CUDA graphs are used by default. Off until eval/device_check.sh has shown on a GPU
// that graph replays give the eager results (parity_main's graph checks) and are faster.
#define PAD_RUN_CUDA_GRAPHS_DEFAULT false

// Encoded features of one train image (host), cached per class.
typedef struct shot_feat {
    int index;                      // in cls->train
    float *cls, *tok, *mid1, *mid2; // (E), (P,E), (P,D), (P,D)
} shot_feat;

typedef struct class_ctx {
    const char *name;
    pad_class_data data;
    bool loaded;
    int n;           // test images used
    int *items;      // (n) indices into data.test
    uint8_t *labels; // (n)
    int n_anom;
    float *cls_dev, *tok_dev, *mid_dev; // (n,E), (n,P,E), (2,n,P,D) backend; mid rows L2-normalised
    uint8_t *masks;                     // (n,R,R) ground truth at the metric resolution (NULL without masks)
    pad_metrics_gt *gt;
    pad_metrics_gpu *gt_gpu;
    pad_scorer *sc;
    float *maps_host;  // (n,R,R)
    float *vmaps_host; // (n,R,R) the cls pixel maps bilinear(V) of the current (k, seed)
    float *V_host;     // (n,P) V of the current (k, seed)
    pad_pixel_metrics vmaps_metrics;
    bool vmaps_valid;
    int n_samples;
    int *samples;          // (n_samples) positions in 0..n-1 for the heatmaps
    pad_image *sample_img; // (n_samples) the decoded test images
    shot_feat *cache;
    int n_cache;
    int max_k;
    float *shot_cls, *shot_tok, *shot_mid1, *shot_mid2; // (max_k,E), (max_k,P,E), (max_k,P,D) x 2 backend
    pad_prompt_learner *pl[2];
    pad_prompt_class pclass;
    bool pclass_valid;
    float *tvec_dev; // (2,E) backend
    float *tmp_dev;  // (n) backend
} class_ctx;

static bool stop_requested(const run_ctx *rc) {
    return rc->opts && rc->opts->stop && *rc->opts->stop;
}

static void emit(const run_ctx *rc, pad_run_event *ev) {
    if (!rc->opts || !rc->opts->progress) return;
    ev->n_units = rc->n_units;
    ev->n_done = rc->n_done;
    ev->n_skipped = rc->n_skipped;
    rc->opts->progress(ev, rc->opts->user_data);
}

static void emit_stage(const run_ctx *rc, const char *fmt, ...) PAD_PRINTF_LIKE(2, 3);
static void emit_stage(const run_ctx *rc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pad_run_event ev = {.kind = PAD_RUN_EV_STAGE, .message = msg};
    emit(rc, &ev);
}

// Sharding (pad_run_opts.shard_*): the (class, shot, seed) groups of the run, numbered j = (c * n_shots + a) *
// n_seeds + b in the order of data.classes / run.shots / run.seeds, are cut into shard_count contiguous blocks of
// (almost) equal size, block i = [floor(i M / N), floor((i+1) M / N)) of the M groups. Both tasks of a group stay
// together (they share the memory bank and V, and the group's predict model needs both), and contiguous blocks
// keep the classes whose test set a shard must encode few (a class's groups are consecutive).
static bool owns_group(const run_ctx *rc, int c, int a, int b) {
    const pad_run_opts *o = rc->opts;
    if (!o || o->shard_count <= 1) return true;
    const pad_run_config *cfg = rc->cfg;
    const long long M = (long long)rc->n_classes * cfg->run.n_shots * cfg->run.n_seeds;
    const long long j = ((long long)c * cfg->run.n_shots + a) * cfg->run.n_seeds + b;
    const long long i = o->shard_index, N = o->shard_count;
    return j >= M * i / N && j < M * (i + 1) / N;
}

// <ds_dir>/<class>/k<k>/seed<s>[/<leaf>]
static void unit_path(const run_ctx *rc, char *out, size_t cap, const char *cls, int k, int seed, const char *leaf) {
    char ks[64];
    snprintf(ks, sizeof ks, "k%d/seed%d", k, seed);
    char a[PATH_CAP], b[PATH_CAP];
    pad_path_join(a, sizeof a, rc->ds_dir, cls);
    pad_path_join(b, sizeof b, a, ks);
    if (leaf)
        pad_path_join(out, cap, b, leaf);
    else
        snprintf(out, cap, "%s", b);
}

// ----------------------------------------------------------------------------
// Unit states

typedef enum unit_state { UNIT_TODO = 0, UNIT_DONE = 1, UNIT_MISMATCH = 2 } unit_state;

// The config hash recorded in <dir>/metrics.json into hash (empty when absent/unreadable); false without the file.
static bool read_recorded_hash(const char *dir, char *hash, size_t cap) {
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, dir, "metrics.json");
    hash[0] = 0;
    if (!pad_path_is_file(p)) return false;
    char *text = NULL;
    if (pad_read_file(p, &text, NULL) != PAD_OK) return true;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "config_hash");
    if (cJSON_IsString(h) && h->valuestring) snprintf(hash, cap, "%s", h->valuestring);
    cJSON_Delete(j);
    return true;
}

static unit_state get_unit_state(const run_ctx *rc, const char *cls, int k, int seed, int task) {
    char dir[PATH_CAP], hash[64];
    unit_path(rc, dir, sizeof dir, cls, k, seed, k_task_names[task]);
    if (!read_recorded_hash(dir, hash, sizeof hash)) return UNIT_TODO;
    return strcmp(hash, rc->hash) == 0 ? UNIT_DONE : UNIT_MISMATCH;
}

static bool model_is_current(const run_ctx *rc, const char *cls, int k, int seed) {
    char dir[PATH_CAP], p[PATH_CAP];
    unit_path(rc, dir, sizeof dir, cls, k, seed, "model");
    pad_path_join(p, sizeof p, dir, "model.json");
    if (!pad_path_is_file(p)) return false;
    char *text = NULL;
    if (pad_read_file(p, &text, NULL) != PAD_OK) return false;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "config_hash");
    bool ok = cJSON_IsString(h) && strcmp(h->valuestring, rc->hash) == 0;
    // the model must hold every task that has a finished unit
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
    for (int t = 0; t < 2 && ok; t++) {
        if (!(rc->cfg->run.tasks & (1 << t))) continue;
        bool has = false;
        const cJSON *it;
        cJSON_ArrayForEach(it, tasks) has =
            has || (cJSON_IsString(it) && strcmp(it->valuestring, k_task_names[t]) == 0);
        ok = has;
    }
    cJSON_Delete(j);
    return ok;
}

// Removes temporary folders ".<leaf>.tmp-<pid>" of processes that no longer exist under dir.
static void remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *t = strstr(e->d_name, ".tmp-");
        if (e->d_name[0] != '.' || !t) continue;
        long pid = strtol(t + 5, NULL, 10);
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) continue; // alive
        char p[PATH_CAP];
        pad_path_join(p, sizeof p, dir, e->d_name);
        PAD_LOG_INFO("%s: removing the partial results of an interrupted run", p);
        pad_remove_tree(p);
    }
    closedir(d);
}

// Renames the finished temporary folder tmp onto final (replacing an older one).
static pad_status commit_dir(const char *tmp, const char *final) {
    if (pad_path_is_dir(final)) {
        // moved aside under a hidden temporary name (".<name>.tmp-<pid>.old"), removed once the new one is in place
        char old[PATH_CAP + 160];
        snprintf(old, sizeof old, "%s.old", tmp);
        if (rename(final, old) != 0) {
            PAD_LOG_ERROR("%s: cannot move the previous results aside: %s", final, strerror(errno));
            return PAD_ERR_IO;
        }
        if (rename(tmp, final) != 0) {
            PAD_LOG_ERROR("%s: cannot move the new results into place: %s", final, strerror(errno));
            rename(old, final);
            return PAD_ERR_IO;
        }
        pad_remove_tree(old);
        return PAD_OK;
    }
    if (rename(tmp, final) != 0) {
        PAD_LOG_ERROR("%s: cannot move the results into place: %s", final, strerror(errno));
        return PAD_ERR_IO;
    }
    return PAD_OK;
}

// The temporary sibling of final: <parent>/.<name>.tmp-<pid>
static void tmp_sibling(char *out, size_t cap, const char *final) {
    const char *slash = strrchr(final, '/');
    if (slash)
        snprintf(out, cap, "%.*s/.%s.tmp-%ld", (int)(slash - final), final, slash + 1, (long)getpid());
    else
        snprintf(out, cap, ".%s.tmp-%ld", final, (long)getpid());
}

// ----------------------------------------------------------------------------
// Setup: demo model, synthetic dataset, backend, model, prompts

static pad_status ensure_generated_model(const pad_run_config *cfg) {
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

static pad_status ensure_synth(const pad_run_config *cfg) {
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
    pad_backend_kind kind = (pad_backend_kind)cfg->run.device;
    if (kind == PAD_BACKEND_AUTO) kind = pad_cuda_device_count() > 0 ? PAD_BACKEND_CUDA : PAD_BACKEND_CPU;
    if (kind == PAD_BACKEND_CPU) return pad_backend_cpu_init(&rc->be, cfg->run.threads);
    pad_status st = pad_backend_init(&rc->be, kind, 0);
    if (st != PAD_OK && cfg->run.device == PAD_BACKEND_AUTO) {
        PAD_LOG_WARN("CUDA is not usable; running on the CPU");
        return pad_backend_cpu_init(&rc->be, cfg->run.threads);
    }
    return st;
}

static pad_status init_backend(run_ctx *rc) {
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

static pad_status init_model(run_ctx *rc) {
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

static pad_status load_model(run_ctx *rc) {
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

// ----------------------------------------------------------------------------
// Images -> features

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

// Encodes n images (in chunks of the batch) into backend outputs (rows [0, n) of each; any may be NULL).
// The vision tower runs in the GEMM precision of run.fast_math; everything else in float32.
static pad_status encode_images_in(run_ctx *rc, const char *cls, char *const *paths, int n, bool bgr, float *cls_out,
                                   float *tok_out, float *mid1_out, float *mid2_out, pad_image **keep);

static pad_status encode_images(run_ctx *rc, const char *cls, char *const *paths, int n, bool bgr, float *cls_out,
                                float *tok_out, float *mid1_out, float *mid2_out, pad_image **keep) {
    pad_backend_set_math(rc->be, (pad_math_mode)rc->cfg->run.fast_math);
    pad_status st = encode_images_in(rc, cls, paths, n, bgr, cls_out, tok_out, mid1_out, mid2_out, keep);
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
        PAD_TRY(pad_vit_forward(rc->vit, rc->pix_dev, b, &o));
        if (stop_requested(rc)) return PAD_ERR_ABORTED;
    }
    return pad_backend_sync(rc->be);
}

// ----------------------------------------------------------------------------
// Class preparation

static void class_free(run_ctx *rc, class_ctx *cc) {
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
    for (int t = 0; t < 2; t++)
        pad_prompt_learner_free(cc->pl[t]);
    for (int i = 0; i < cc->n_cache; i++) {
        free(cc->cache[i].cls);
        free(cc->cache[i].tok);
        free(cc->cache[i].mid1);
        free(cc->cache[i].mid2);
    }
    free(cc->cache);
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

// The prompt states of the class: the prompt set's entry, or the generic states with the class name.
static pad_status class_prompts(run_ctx *rc, class_ctx *cc, char *name_buf, size_t cap) {
    for (int i = 0; i < pad_prompt_set_n_classes(rc->pset); i++)
        if (strcmp(pad_prompt_set_class_at(rc->pset, i).key, cc->name) == 0) {
            PAD_TRY(pad_prompt_set_class(rc->pset, cc->name, &cc->pclass));
            cc->pclass_valid = true;
            return PAD_OK;
        }
    snprintf(name_buf, cap, "%s", cc->name);
    for (char *p = name_buf; *p; p++)
        if (*p == '_') *p = ' ';
    cc->pclass.key = cc->name;
    cc->pclass.name = name_buf;
    cc->pclass.states = k_generic_states;
    cc->pclass.n_states = (int)(sizeof k_generic_states / sizeof k_generic_states[0]);
    cc->pclass_valid = true;
    PAD_LOG_WARN("class %s: not in the prompt set '%s' (%s); using the 8 generic anomaly states with the name '%s'",
                 cc->name, pad_prompt_set_name(rc->pset), pad_prompt_set_path(rc->pset), name_buf);
    return PAD_OK;
}

static pad_status load_masks(run_ctx *rc, class_ctx *cc) {
    const size_t RR = (size_t)rc->R * (size_t)rc->R;
    cc->masks = calloc((size_t)cc->n * RR, 1);
    if (!cc->masks) {
        PAD_LOG_ERROR("class %s: out of memory for %d masks", cc->name, cc->n);
        return PAD_ERR_OOM;
    }
    pad_preprocess_mode mode = (pad_preprocess_mode)rc->cfg->model.preprocess;
    pad_status first = PAD_OK;
    int bad = -1;
    char bad_path[PATH_CAP] = "";
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < cc->n; i++) {
        const pad_test_item *it = &cc->data.test[cc->items[i]];
        if (it->label == 0 || it->n_masks == 0) continue;
        pad_mask u = {0};
        pad_status st = PAD_OK;
        const char *at = it->mask_paths[0];
        for (int m = 0; m < it->n_masks && st == PAD_OK; m++) {
            pad_mask mk = {0};
            at = it->mask_paths[m];
            st = pad_mask_load(&mk, at);
            if (st != PAD_OK) break;
            if (m == 0) {
                u = mk;
                continue;
            }
            if (mk.w != u.w || mk.h != u.h) {
                PAD_LOG_ERROR("%s: mask is %dx%d, the first mask of %s is %dx%d", at, mk.w, mk.h, it->path, u.w, u.h);
                st = PAD_ERR_FORMAT;
            } else {
                for (size_t p = 0; p < (size_t)u.w * (size_t)u.h; p++)
                    u.m[p] = (uint8_t)(u.m[p] | mk.m[p]);
            }
            pad_mask_free(&mk);
        }
        pad_mask r = {0};
        if (st == PAD_OK) st = pad_mask_preprocess(&u, mode, rc->R, &r);
        if (st == PAD_OK) memcpy(cc->masks + (size_t)i * RR, r.m, RR);
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
    return first;
}

// Lists the class, decodes + encodes its test set, labels the ground truth.
static pad_status prepare_class_test(run_ctx *rc, class_ctx *cc) {
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
        emit_stage(rc, "class %s: encoding %d test images", cc->name, n);
        st = encode_images(rc, cc->name, paths, n, cfg->run.test_bgr != 0, cc->cls_dev, cc->tok_dev, cc->mid_dev,
                           cc->mid_dev + nPD, keep);
    }
    free(paths);
    free(keep);
    if (st != PAD_OK) return st;
    PAD_TRY(pad_score_normalize(rc->be, cc->mid_dev, 2 * n * rc->P, rc->D));
    cc->data.has_masks = cc->data.has_masks && cc->n_anom > 0;
    if (cc->data.has_masks) {
        PAD_TRY(load_masks(rc, cc));
        PAD_TRY(pad_metrics_gt_init(&cc->gt, cc->masks, n, rc->R, rc->R));
        if (pad_backend_get_kind(rc->be) == PAD_BACKEND_CUDA) {
            if (pad_metrics_gpu_init(&cc->gt_gpu, cc->gt, rc->be->device, NULL) != PAD_OK) {
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
static pad_status shot_features(run_ctx *rc, class_ctx *cc, const int *index, int k) {
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
        if (st == PAD_OK) st = encode_images(rc, cc->name, paths, n_todo, false, dcls, dtok, dm1, dm2, NULL);
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

static const shot_feat *cached(const class_ctx *cc, int index) {
    for (int c = 0; c < cc->n_cache; c++)
        if (cc->cache[c].index == index) return &cc->cache[c];
    return NULL;
}

// Uploads the k shots' features into the class's shot buffers.
static pad_status upload_shots(run_ctx *rc, class_ctx *cc, const int *index, int k) {
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
        const shot_feat *f = cached(cc, index[i]);
        PAD_ASSERT(f != NULL);
        PAD_TRY(pad_buf_upload(rc->be, cc->shot_cls + (size_t)i * E, f->cls, E * sizeof(float)));
        PAD_TRY(pad_buf_upload(rc->be, cc->shot_tok + (size_t)i * PE, f->tok, PE * sizeof(float)));
        PAD_TRY(pad_buf_upload(rc->be, cc->shot_mid1 + (size_t)i * PD, f->mid1, PD * sizeof(float)));
        PAD_TRY(pad_buf_upload(rc->be, cc->shot_mid2 + (size_t)i * PD, f->mid2, PD * sizeof(float)));
    }
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// Evaluation

typedef struct eval_out {
    pad_image_metrics img;
    pad_pixel_metrics pix;
    bool has_pix;
    float *scores; // (n) host, owned by the caller
} eval_out;

static void nan_metrics(eval_out *e) {
    e->img.auroc = e->img.aupr = NAN;
    e->pix.auroc = e->pix.aupr = e->pix.pro = e->pix.pro_200 = NAN;
    e->has_pix = false;
}

// The selection metric of one epoch (image AUROC for cls, pixel AUROC for seg) with text vectors cc->tvec_dev.
static pad_status eval_select(run_ctx *rc, class_ctx *cc, int task, float *scores, double *metric) {
    const float *tn = cc->tvec_dev, *ta = cc->tvec_dev + rc->E;
    *metric = NAN;
    if (task == 0) {
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

// The full evaluation of a unit with cc->tvec_dev: scores (host, n), metrics, and for seg the maps in maps_host.
static pad_status eval_final(run_ctx *rc, class_ctx *cc, int task, eval_out *e) {
    const float *tn = cc->tvec_dev, *ta = cc->tvec_dev + rc->E;
    nan_metrics(e);
    size_t RR = (size_t)rc->R * (size_t)rc->R;
    if (task == 0) {
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
        for (int i = 0; i < cc->n; i++) {
            const float *m = cc->maps_host + (size_t)i * RR;
            float mx = m[0];
            for (size_t p = 1; p < RR; p++)
                mx = m[p] > mx ? m[p] : mx;
            e->scores[i] = mx;
        }
        if (cc->gt) {
            PAD_TRY(pad_metrics_pixel(cc->gt, cc->maps_host, rc->cfg->run.fpr_limit, PAD_METRICS_ALL, &e->pix));
            e->has_pix = true;
        }
    }
    return pad_metrics_image(e->scores, cc->labels, cc->n, &e->img);
}

// V and the cls-task pixel maps bilinear(V) for the current bank (once per (class, k, seed)).
static pad_status visual_scores(run_ctx *rc, class_ctx *cc, const pad_bank *bank, bool need_vmaps) {
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
// Writing a unit

typedef struct epoch_log {
    float lr;
    pad_prompt_loss loss;
    double metric; // NaN where not evaluated
} epoch_log;

// Draws the 1-pixel contour of mask m (w x h, same size as img) in white.
static void draw_contour(pad_image *img, const pad_mask *m) {
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w; x++) {
            if (!m->m[(size_t)y * m->w + x]) continue;
            bool edge = x == 0 || y == 0 || x == m->w - 1 || y == m->h - 1 || !m->m[(size_t)y * m->w + x - 1] ||
                        !m->m[(size_t)y * m->w + x + 1] || !m->m[(size_t)(y - 1) * m->w + x] ||
                        !m->m[(size_t)(y + 1) * m->w + x];
            if (edge) memset(img->rgb + ((size_t)y * img->w + x) * 3, 255, 3);
        }
}

// The part of an image the model sees: the whole image (squash, official) or the centre square (openclip).
static pad_status view_of(const pad_image *img, pad_preprocess_mode mode, pad_image *out, int *x0, int *y0) {
    *x0 = *y0 = 0;
    if (mode != PAD_PREPROCESS_OPENCLIP || img->w == img->h) return pad_image_from_rgb(out, img->rgb, img->w, img->h);
    int s = img->w < img->h ? img->w : img->h;
    *x0 = (img->w - s) / 2;
    *y0 = (img->h - s) / 2;
    PAD_TRY(pad_image_alloc(out, s, s));
    for (int y = 0; y < s; y++)
        memcpy(out->rgb + (size_t)y * s * 3, img->rgb + ((size_t)(y + *y0) * img->w + *x0) * 3, (size_t)s * 3);
    return PAD_OK;
}

static pad_status write_heatmaps(run_ctx *rc, class_ctx *cc, const char *dir, const float *maps, float lo, float hi) {
    if (cc->n_samples == 0) return PAD_OK;
    char hdir[PATH_CAP];
    pad_path_join(hdir, sizeof hdir, dir, "heatmaps");
    PAD_TRY(pad_mkdir_p(hdir));
    size_t RR = (size_t)rc->R * (size_t)rc->R;
    pad_preprocess_mode mode = (pad_preprocess_mode)rc->cfg->model.preprocess;
    for (int s = 0; s < cc->n_samples; s++) {
        int i = cc->samples[s];
        const pad_test_item *it = &cc->data.test[cc->items[i]];
        pad_image view = {0}, ov = {0};
        int x0, y0;
        PAD_TRY(view_of(&cc->sample_img[s], mode, &view, &x0, &y0));
        pad_status st = pad_heatmap_overlay(&view, maps + (size_t)i * RR, rc->R, rc->R, lo, hi, &ov);
        pad_image_free(&view);
        PAD_TRY(st);
        // the ground-truth contour at full resolution
        for (int m = 0; m < it->n_masks && st == PAD_OK; m++) {
            pad_mask mk = {0};
            if (pad_mask_load(&mk, it->mask_paths[m]) != PAD_OK) continue;
            if (mk.w == cc->sample_img[s].w && mk.h == cc->sample_img[s].h) {
                pad_mask crop = {0};
                if (pad_mask_alloc(&crop, ov.w, ov.h) == PAD_OK) {
                    for (int y = 0; y < ov.h; y++)
                        memcpy(crop.m + (size_t)y * ov.w, mk.m + (size_t)(y + y0) * mk.w + x0, (size_t)ov.w);
                    draw_contour(&ov, &crop);
                }
                pad_mask_free(&crop);
            }
            pad_mask_free(&mk);
        }
        const char *base = strrchr(it->path, '/');
        base = base ? base + 1 : it->path;
        char name[600], path[PATH_CAP];
        const char *dot = strrchr(base, '.');
        snprintf(name, sizeof name, "%s_%.*s.png", it->defect_type, dot ? (int)(dot - base) : (int)strlen(base), base);
        pad_path_join(path, sizeof path, hdir, name);
        st = pad_image_save_png(path, &ov);
        pad_image_free(&ov);
        PAD_TRY(st);
    }
    return PAD_OK;
}

typedef struct unit_result {
    int task, k, seed;
    const pad_shots *shots;
    eval_out ev;
    int epoch_reported; // 1-based
    const char *selection;
    double select_best, select_last;
    epoch_log *log;
    int n_epochs;
    float *tvec; // (2,E) host
    float *normal_ctx, *abnormal_ctx;
    int n_pro;
    double t_train, t_eval, t_total;
    double thr, f1, prec, rec;
    float map_lo, map_hi;
} unit_result;

static pad_status write_unit(run_ctx *rc, class_ctx *cc, const unit_result *u, const char *tmp) {
    const pad_run_config *cfg = rc->cfg;
    const int n = cc->n, P = rc->P, G = rc->G, E = rc->E, R = rc->R;
    size_t RR = (size_t)R * (size_t)R;
    char p[PATH_CAP];
    PAD_TRY(pad_mkdir_p(tmp));
    // scores.csv
    pad_path_join(p, sizeof p, tmp, "scores.csv");
    FILE *fp = fopen(p, "wb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot write: %s", p, strerror(errno));
        return PAD_ERR_IO;
    }
    fprintf(fp, "path,label,score\n");
    for (int i = 0; i < n; i++) {
        pad_csv_field(fp, cc->data.test[cc->items[i]].path);
        fprintf(fp, ",%d,%.9g\n", cc->labels[i], (double)u->ev.scores[i]);
    }
    if (fclose(fp) != 0) {
        PAD_LOG_ERROR("%s: write error", p);
        return PAD_ERR_IO;
    }
    // train.csv
    pad_path_join(p, sizeof p, tmp, "train.csv");
    fp = fopen(p, "wb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot write: %s", p, strerror(errno));
        return PAD_ERR_IO;
    }
    fprintf(fp, "epoch,lr,loss,ce,eam,align,%s\n", u->task == 0 ? "image_auroc" : "pixel_auroc");
    for (int e = 0; e < u->n_epochs; e++) {
        const epoch_log *l = &u->log[e];
        fprintf(fp, "%d,%.9g,%.9g,%.9g,%.9g,%.9g,", e + 1, (double)l->lr, (double)l->loss.total, (double)l->loss.ce,
                (double)l->loss.eam, (double)l->loss.align);
        if (!isnan(l->metric)) fprintf(fp, "%.9g", l->metric);
        fputc('\n', fp);
    }
    if (fclose(fp) != 0) {
        PAD_LOG_ERROR("%s: write error", p);
        return PAD_ERR_IO;
    }
    // prompts.safetensors
    pad_st_writer *w = NULL;
    PAD_TRY(pad_st_writer_init(&w));
    pad_status st = PAD_OK;
    int n_ctx = cfg->train.n_ctx, n_ctx_ab = cfg->train.n_ctx_ab, n_pro_ab = cfg->train.n_pro_ab;
    st = pad_st_writer_add_f32(w, "text_features", 2, (int64_t[]){2, E}, u->tvec);
    if (st == PAD_OK)
        st = pad_st_writer_add_f32(w, "normal_ctx", 3, (int64_t[]){u->n_pro, n_ctx, rc->W}, u->normal_ctx);
    if (st == PAD_OK)
        st = pad_st_writer_add_f32(w, "abnormal_ctx", 3, (int64_t[]){n_pro_ab, n_ctx_ab, rc->W}, u->abnormal_ctx);
    char ebuf[32];
    snprintf(ebuf, sizeof ebuf, "%d", u->epoch_reported);
    if (st == PAD_OK) st = pad_st_writer_meta(w, "epoch", ebuf);
    if (st == PAD_OK) st = pad_st_writer_meta(w, "task", k_task_names[u->task]);
    pad_path_join(p, sizeof p, tmp, "prompts.safetensors");
    if (st == PAD_OK) st = pad_st_writer_save(w, p);
    pad_st_writer_free(w);
    PAD_TRY(st);
    // maps.safetensors
    if (cfg->output.maps != PAD_MAPS_NONE) {
        PAD_TRY(pad_st_writer_init(&w));
        st = pad_st_writer_add_f32(w, "image_score", 1, (int64_t[]){n}, u->ev.scores);
        if (st == PAD_OK) st = pad_st_writer_add(w, "labels", PAD_DTYPE_U8, 1, (int64_t[]){n}, cc->labels);
        if (st == PAD_OK) st = pad_st_writer_add_f32(w, "visual_map", 3, (int64_t[]){n, G, G}, cc->V_host);
        float *grid = malloc((size_t)n * (size_t)P * sizeof(float));
        if (!grid) st = PAD_ERR_OOM;
        if (st == PAD_OK && u->task == 1) {
            st = pad_buf_download(rc->be, grid, cc->sc->T, (size_t)n * (size_t)P * sizeof(float));
            if (st == PAD_OK) st = pad_st_writer_add_f32(w, "text_map", 3, (int64_t[]){n, G, G}, grid);
        } else if (st == PAD_OK) {
            st = pad_buf_download(rc->be, grid, cc->sc->sT, (size_t)n * sizeof(float));
            if (st == PAD_OK) st = pad_st_writer_add_f32(w, "text_image_score", 1, (int64_t[]){n}, grid);
        }
        free(grid);
        if (st == PAD_OK && cfg->output.maps == PAD_MAPS_FULL) {
            const float *maps = u->task == 0 ? cc->vmaps_host : cc->maps_host;
            uint16_t *h = malloc((size_t)n * RR * sizeof(uint16_t));
            if (!h) st = PAD_ERR_OOM;
            for (size_t i = 0; h && i < (size_t)n * RR; i++)
                h[i] = pad_f32_to_f16(maps[i]);
            if (st == PAD_OK) st = pad_st_writer_add(w, "pixel_map", PAD_DTYPE_F16, 3, (int64_t[]){n, R, R}, h);
            free(h);
        }
        pad_path_join(p, sizeof p, tmp, "maps.safetensors");
        if (st == PAD_OK) st = pad_st_writer_save(w, p);
        pad_st_writer_free(w);
        PAD_TRY(st);
    }
    // heatmaps
    if (u->task == 0 ? cc->vmaps_valid : true)
        PAD_TRY(write_heatmaps(rc, cc, tmp, u->task == 0 ? cc->vmaps_host : cc->maps_host, u->map_lo, u->map_hi));
    // metrics.json, last
    cJSON *j = cJSON_CreateObject();
    if (!j) return PAD_ERR_OOM;
    pad_json_add_num(j, "image_auroc", u->ev.img.auroc);
    pad_json_add_num(j, "image_aupr", u->ev.img.aupr);
    pad_json_add_num(j, "pixel_auroc", u->ev.has_pix ? u->ev.pix.auroc : NAN);
    pad_json_add_num(j, "pixel_aupr", u->ev.has_pix ? u->ev.pix.aupr : NAN);
    pad_json_add_num(j, "pixel_pro", u->ev.has_pix ? u->ev.pix.pro : NAN);
    pad_json_add_num(j, "pixel_pro_200", u->ev.has_pix ? u->ev.pix.pro_200 : NAN);
    cJSON_AddStringToObject(j, "dataset", rc->dataset);
    cJSON_AddStringToObject(j, "format", cfg->data.format);
    cJSON_AddStringToObject(j, "class", cc->name);
    cJSON_AddNumberToObject(j, "k", u->k);
    cJSON_AddNumberToObject(j, "seed", u->seed);
    cJSON_AddStringToObject(j, "task", k_task_names[u->task]);
    cJSON_AddStringToObject(j, "protocol", cfg->run.protocol == PAD_PROTOCOL_OFFICIAL ? "official" : "clean");
    cJSON_AddStringToObject(j, "config_hash", rc->hash);
    cJSON_AddNumberToObject(j, "epochs", cfg->run.epochs);
    cJSON_AddNumberToObject(j, "epoch", u->epoch_reported);
    cJSON_AddStringToObject(j, "selection", u->selection);
    if (cfg->run.select == PAD_SELECT_BEST) {
        pad_json_add_num(j, "selection_best", u->select_best);
        pad_json_add_num(j, "selection_last_epoch", u->select_last);
    }
    cJSON_AddStringToObject(j, "image_score", u->task == 0 ? "1/(1/max(bilinear(V)) + 1/s_T)" : "max of the pixel map");
    cJSON_AddStringToObject(j, "pixel_map",
                            u->task == 0 ? "bilinear(V), unsmoothed (official cls am_pix)"
                                         : "gaussian_4(bilinear(1/(1/T + 1/V)))");
    cJSON_AddNumberToObject(j, "n_test", n);
    cJSON_AddNumberToObject(j, "n_test_anomalous", cc->n_anom);
    cJSON_AddStringToObject(j, "shot_select", pad_shot_select_str(u->shots->mode));
    if (cfg->run.shot_lists[0]) cJSON_AddStringToObject(j, "shot_lists", cfg->run.shot_lists);
    cJSON *sh = cJSON_AddArrayToObject(j, "shots");
    for (int i = 0; i < u->shots->k; i++)
        cJSON_AddItemToArray(sh, cJSON_CreateString(u->shots->paths[i]));
    cJSON_AddStringToObject(j, "preprocess", pad_preprocess_mode_str((pad_preprocess_mode)cfg->model.preprocess));
    cJSON_AddBoolToObject(j, "test_bgr", cfg->run.test_bgr != 0);
    cJSON_AddBoolToObject(j, "fp16_scores", cfg->run.fp16_scores != 0);
    cJSON_AddStringToObject(j, "prompts", pad_prompt_set_name(rc->pset));
    cJSON_AddNumberToObject(j, "resolution", R);
    cJSON_AddNumberToObject(j, "fpr_limit", cfg->run.fpr_limit);
    cJSON_AddStringToObject(j, "weights", rc->weights_path);
    cJSON_AddStringToObject(j, "device", pad_backend_kind_str(pad_backend_get_kind(rc->be)));
    if (cfg->run.fast_math != PAD_MATH_FP32 && pad_backend_get_kind(rc->be) == PAD_BACKEND_CUDA)
        cJSON_AddStringToObject(j, "fast_math", pad_math_mode_str((pad_math_mode)cfg->run.fast_math));
    cJSON *th = cJSON_AddObjectToObject(j, "threshold");
    pad_json_add_num(th, "value", u->thr);
    cJSON_AddStringToObject(th, "rule", "max F1 of the image scores on this test set (score >= value: anomalous)");
    pad_json_add_num(th, "f1", u->f1);
    pad_json_add_num(th, "precision", u->prec);
    pad_json_add_num(th, "recall", u->rec);
    cJSON *mr = cJSON_AddArrayToObject(j, "map_range");
    cJSON_AddItemToArray(mr, cJSON_CreateNumber(u->map_lo));
    cJSON_AddItemToArray(mr, cJSON_CreateNumber(u->map_hi));
    cJSON *tm = cJSON_AddObjectToObject(j, "timing_s");
    cJSON_AddNumberToObject(tm, "train", u->t_train);
    cJSON_AddNumberToObject(tm, "eval", u->t_eval);
    cJSON_AddNumberToObject(tm, "total", u->t_total);
    cJSON_AddStringToObject(j, "promptad_version", PAD_VERSION);
    pad_path_join(p, sizeof p, tmp, "metrics.json");
    st = pad_json_write_file(p, j);
    cJSON_Delete(j);
    return st;
}

// ----------------------------------------------------------------------------
// One unit: train, select, evaluate, write

static pad_status run_unit(run_ctx *rc, class_ctx *cc, int task, int k, int seed, const pad_shots *shots) {
    const pad_run_config *cfg = rc->cfg;
    double t0 = pad_now();
    pad_run_event ev = {.kind = PAD_RUN_EV_UNIT_BEGIN,
                        .cls = cc->name,
                        .task = k_task_names[task],
                        .k = k,
                        .seed = seed,
                        .n_epochs = cfg->run.epochs};
    emit(rc, &ev);
    char final[PATH_CAP], tmp[PATH_CAP + 64];
    unit_path(rc, final, sizeof final, cc->name, k, seed, k_task_names[task]);
    tmp_sibling(tmp, sizeof tmp, final);
    pad_remove_tree(tmp);

    if (!cc->pl[task]) {
        pad_prompt_opts po = pad_prompt_opts_default(task == 0 ? PAD_TASK_CLS : PAD_TASK_SEG);
        po.n_ctx = cfg->train.n_ctx;
        po.n_ctx_ab = cfg->train.n_ctx_ab;
        po.n_pro = task == 0 ? cfg->train.n_pro_cls : cfg->train.n_pro_seg;
        po.n_pro_ab = cfg->train.n_pro_ab;
        po.lr = cfg->train.lr;
        po.lr_min = cfg->train.lr_min;
        po.momentum = cfg->train.momentum;
        po.weight_decay = cfg->train.weight_decay;
        po.lambda_align = cfg->train.lambda_align;
        po.margin = cfg->train.margin;
        po.exp_logit_scale = cfg->run.tau_exp;
        po.eam = cfg->train.eam ? PAD_EAM_PER_TOKEN : PAD_EAM_TOKEN_AXIS;
        po.lap = cfg->train.lap ? PAD_LAP_AFTER_NAME : PAD_LAP_BEFORE_NAME;
        pad_status st = pad_prompt_learner_create(&cc->pl[task], rc->w_dev, rc->tok, &cc->pclass, &po);
        if (st != PAD_OK) {
            PAD_LOG_ERROR("class %s: cannot build the %s prompts (prompt set %s)", cc->name, k_task_names[task],
                          pad_prompt_set_path(rc->pset));
            return st;
        }
        pad_prompt_learner_set_graphs(cc->pl[task], rc->graphs);
    }
    pad_prompt_learner *pl = cc->pl[task];
    const int n_pro = task == 0 ? cfg->train.n_pro_cls : cfg->train.n_pro_seg;
    const int E = rc->E, n_epochs = cfg->run.epochs;
    if (task == 0)
        PAD_TRY(pad_prompt_learner_set_images(pl, cc->shot_cls, k, 1));
    else
        PAD_TRY(pad_prompt_learner_set_images(pl, cc->shot_tok, k, rc->P));
    // the prompt initialisation of (seed, class, k, task): independent draws per unit, reproducible
    uint64_t init_seed = pad_prng_mix(((uint64_t)seed * PAD_PRNG_GOLDEN) ^ pad_prng_hash_str(cc->name) ^
                                      ((uint64_t)k << 32) ^ (uint64_t)task);
    PAD_TRY(pad_prompt_learner_init_random(pl, init_seed));

    unit_result u;
    memset(&u, 0, sizeof u);
    u.task = task;
    u.k = k;
    u.seed = seed;
    u.shots = shots;
    u.n_epochs = n_epochs;
    u.n_pro = n_pro;
    size_t nctx = (size_t)n_pro * (size_t)cfg->train.n_ctx * (size_t)rc->W;
    size_t nab = (size_t)cfg->train.n_pro_ab * (size_t)cfg->train.n_ctx_ab * (size_t)rc->W;
    u.log = calloc((size_t)n_epochs, sizeof *u.log);
    u.tvec = malloc(2 * (size_t)E * sizeof(float));
    u.normal_ctx = malloc(nctx * sizeof(float));
    u.abnormal_ctx = malloc(nab * sizeof(float));
    u.ev.scores = malloc((size_t)cc->n * sizeof(float));
    pad_status st = PAD_OK;
    if (!u.log || !u.tvec || !u.normal_ctx || !u.abnormal_ctx || !u.ev.scores) st = PAD_ERR_OOM;
    bool best_mode = cfg->run.select == PAD_SELECT_BEST;
    double best = -INFINITY, t_eval = 0;
    int best_epoch = -1;
    u.select_best = u.select_last = NAN;
    for (int e = 0; e < n_epochs && st == PAD_OK; e++) {
        if (stop_requested(rc)) {
            st = PAD_ERR_ABORTED;
            break;
        }
        epoch_log *l = &u.log[e];
        l->metric = NAN;
        l->lr = pad_prompt_lr(pad_prompt_learner_opts(pl), e, n_epochs);
        st = pad_prompt_learner_train_epoch(pl, e, n_epochs, &l->loss);
        if (st != PAD_OK) break;
        if (best_mode || e == n_epochs - 1) {
            double te = pad_now();
            st = pad_prompt_learner_text_vectors(pl, cc->tvec_dev);
            if (st == PAD_OK && best_mode) st = eval_select(rc, cc, task, u.ev.scores, &l->metric);
            t_eval += pad_now() - te;
            if (st != PAD_OK) break;
            // the first epoch is always kept; later ones when strictly better (a NaN metric never wins)
            bool take = !best_mode || best_epoch < 0 || l->metric > best;
            if (take) {
                best = l->metric;
                best_epoch = e;
                st = pad_buf_download(rc->be, u.tvec, cc->tvec_dev, 2 * (size_t)E * sizeof(float));
                if (st == PAD_OK) st = pad_prompt_learner_get_ctx(pl, u.normal_ctx, u.abnormal_ctx);
            }
            if (best_mode && e == n_epochs - 1) u.select_last = l->metric;
        }
        pad_run_event eev = {.kind = PAD_RUN_EV_EPOCH,
                             .cls = cc->name,
                             .task = k_task_names[task],
                             .k = k,
                             .seed = seed,
                             .epoch = e + 1,
                             .n_epochs = n_epochs};
        emit(rc, &eev);
    }
    if (st == PAD_OK) {
        u.epoch_reported = best_epoch + 1;
        u.select_best = best_mode ? best : NAN;
        u.selection = best_mode ? (task == 0 ? "best epoch by test image_auroc (official)"
                                             : "best epoch by test pixel_auroc (official)")
                                : "last epoch";
        double te = pad_now();
        st = pad_buf_upload(rc->be, cc->tvec_dev, u.tvec, 2 * (size_t)E * sizeof(float));
        if (st == PAD_OK) st = eval_final(rc, cc, task, &u.ev);
        t_eval += pad_now() - te;
    }
    if (st == PAD_OK) {
        pad_threshold_max_f1(u.ev.scores, cc->labels, cc->n, &u.thr, &u.f1, &u.prec, &u.rec);
        const float *maps = task == 0 ? cc->vmaps_host : cc->maps_host;
        size_t N = (size_t)cc->n * (size_t)rc->R * (size_t)rc->R;
        u.map_lo = INFINITY;
        u.map_hi = -INFINITY;
        if (task == 1 || cc->vmaps_valid)
            for (size_t i = 0; i < N; i++) {
                u.map_lo = maps[i] < u.map_lo ? maps[i] : u.map_lo;
                u.map_hi = maps[i] > u.map_hi ? maps[i] : u.map_hi;
            }
        if (!(u.map_lo <= u.map_hi)) u.map_lo = u.map_hi = 0;
        u.t_total = pad_now() - t0;
        u.t_eval = t_eval;
        u.t_train = u.t_total - t_eval;
        if (stop_requested(rc)) st = PAD_ERR_ABORTED;
    }
    if (st == PAD_OK) st = write_unit(rc, cc, &u, tmp);
    if (st == PAD_OK) {
        char parent[PATH_CAP];
        unit_path(rc, parent, sizeof parent, cc->name, k, seed, NULL);
        st = commit_dir(tmp, final);
        (void)parent;
    }
    if (st != PAD_OK) {
        pad_remove_tree(tmp);
        if (st != PAD_ERR_ABORTED)
            PAD_LOG_ERROR("class %s, k=%d, seed %d, task %s: failed (%s); the finished units are kept", cc->name, k,
                          seed, k_task_names[task], pad_status_str(st));
    } else {
        rc->n_done++;
        rc->n_computed++;
        pad_run_event dev = {.kind = PAD_RUN_EV_UNIT_END,
                             .cls = cc->name,
                             .task = k_task_names[task],
                             .k = k,
                             .seed = seed,
                             .epoch = u.epoch_reported,
                             .n_epochs = n_epochs,
                             .unit_seconds = u.t_total,
                             .image_auroc = u.ev.img.auroc,
                             .pixel_auroc = u.ev.has_pix ? u.ev.pix.auroc : NAN,
                             .pixel_pro = u.ev.has_pix ? u.ev.pix.pro : NAN};
        emit(rc, &dev);
    }
    free(u.log);
    free(u.tvec);
    free(u.normal_ctx);
    free(u.abnormal_ctx);
    free(u.ev.scores);
    return st;
}

// ----------------------------------------------------------------------------
// The predict model of (class, k, seed), from the finished units

static pad_status read_unit_json(const char *unit_dir, cJSON **out) {
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, unit_dir, "metrics.json");
    char *text = NULL;
    PAD_TRY(pad_read_file(p, &text, NULL));
    *out = cJSON_Parse(text);
    free(text);
    if (!*out) {
        PAD_LOG_ERROR("%s: malformed JSON", p);
        return PAD_ERR_FORMAT;
    }
    return PAD_OK;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? it->valuedouble : NAN;
}

static pad_status write_model(run_ctx *rc, class_ctx *cc, int k, int seed, const pad_shots *shots) {
    const pad_run_config *cfg = rc->cfg;
    size_t E = (size_t)rc->E, PD = (size_t)rc->P * (size_t)rc->D;
    float *text[2] = {NULL, NULL};
    float *m1 = malloc((size_t)k * PD * sizeof(float)), *m2 = malloc((size_t)k * PD * sizeof(float));
    cJSON *uj[2] = {NULL, NULL};
    pad_status st = (m1 && m2) ? PAD_OK : PAD_ERR_OOM;
    for (int i = 0; i < k && st == PAD_OK; i++) {
        const shot_feat *f = cached(cc, shots->index[i]);
        PAD_ASSERT(f != NULL);
        memcpy(m1 + (size_t)i * PD, f->mid1, PD * sizeof(float));
        memcpy(m2 + (size_t)i * PD, f->mid2, PD * sizeof(float));
    }
    for (int t = 0; t < 2 && st == PAD_OK; t++) {
        if (!(cfg->run.tasks & (1 << t))) continue;
        char dir[PATH_CAP], p[PATH_CAP];
        unit_path(rc, dir, sizeof dir, cc->name, k, seed, k_task_names[t]);
        pad_path_join(p, sizeof p, dir, "prompts.safetensors");
        pad_st_file *f = NULL;
        st = pad_st_open(&f, p);
        if (st == PAD_OK) st = pad_st_read_f32(f, "text_features", 2, (int64_t[]){2, rc->E}, &text[t], NULL);
        pad_st_close(f);
        if (st == PAD_OK) st = read_unit_json(dir, &uj[t]);
    }
    // the absolute path, so that predict finds the weights from any working directory
    char abs_weights[PATH_MAX] = "";
    if (!realpath(rc->weights_path, abs_weights)) abs_weights[0] = 0;
    if (st == PAD_OK) {
        // the threshold and the score range come from the unit that gives the image score (cls, else seg)
        const cJSON *img = uj[0] ? uj[0] : uj[1];
        const cJSON *pix = uj[1] ? uj[1] : uj[0];
        const cJSON *th = cJSON_GetObjectItemCaseSensitive(img, "threshold");
        const cJSON *mr = cJSON_GetObjectItemCaseSensitive(pix, "map_range");
        char rule[256];
        snprintf(rule, sizeof rule,
                 "max F1 of the image scores on the test set of %s (%d images, %d anomalous), %s task", cc->name,
                 (int)jnum(img, "n_test"), (int)jnum(img, "n_test_anomalous"), uj[0] ? "cls" : "seg");
        pad_model_info mi = {
            .dataset = rc->dataset,
            .cls = cc->name,
            .protocol = cfg->run.protocol == PAD_PROTOCOL_OFFICIAL ? "official" : "clean",
            .config_hash = rc->hash,
            .k = k,
            .seed = seed,
            .weights_path = abs_weights[0] ? abs_weights : rc->weights_path,
            .weights_size = rc->weights_size,
            .weights_fp = rc->weights_fp,
            .image_size = rc->S,
            .grid = rc->G,
            .embed_dim = rc->E,
            .width = rc->D,
            .taps = {cfg->model.taps[0], cfg->model.taps[1]},
            .preprocess = pad_preprocess_mode_str((pad_preprocess_mode)cfg->model.preprocess),
            .input_bgr = cfg->run.test_bgr != 0,
            .resolution = rc->R,
            .sigma = 4.0,
            .truncate = 4.0,
            .fp16_scores = cfg->run.fp16_scores != 0,
            .logit_scale = rc->w_host->logit_scale,
            .tau_exp = cfg->run.tau_exp,
            .shots = shots->paths,
            .shot_mid1 = m1,
            .shot_mid2 = m2,
            .cls_text = text[0],
            .seg_text = text[1],
            .threshold = jnum(th, "value"),
            .threshold_rule = rule,
            .threshold_f1 = jnum(th, "f1"),
            .threshold_precision = jnum(th, "precision"),
            .threshold_recall = jnum(th, "recall"),
            .map_lo = cJSON_GetArraySize(mr) == 2 ? cJSON_GetArrayItem(mr, 0)->valuedouble : 0.0,
            .map_hi = cJSON_GetArraySize(mr) == 2 ? cJSON_GetArrayItem(mr, 1)->valuedouble : 1.0,
        };
        char dir[PATH_CAP];
        unit_path(rc, dir, sizeof dir, cc->name, k, seed, "model");
        st = pad_model_save(dir, &mi);
    }
    (void)E;
    for (int t = 0; t < 2; t++) {
        free(text[t]);
        cJSON_Delete(uj[t]);
    }
    free(m1);
    free(m2);
    return st;
}

// ----------------------------------------------------------------------------
// One class

static pad_status run_class(run_ctx *rc, int ci) {
    const pad_run_config *cfg = rc->cfg;
    const char *name = rc->classes[ci];
    class_ctx cc;
    memset(&cc, 0, sizeof cc);
    cc.name = name;
    // what is left to do (in this shard)
    int todo_units = 0, todo_models = 0;
    for (int a = 0; a < cfg->run.n_shots; a++)
        for (int b = 0; b < cfg->run.n_seeds; b++) {
            if (!owns_group(rc, ci, a, b)) continue;
            bool all_done = true;
            for (int t = 0; t < 2; t++) {
                if (!(cfg->run.tasks & (1 << t))) continue;
                if (get_unit_state(rc, name, cfg->run.shots[a], cfg->run.seeds[b], t) != UNIT_DONE) {
                    todo_units++;
                    all_done = false;
                }
            }
            if (cfg->output.models && (!all_done || !model_is_current(rc, name, cfg->run.shots[a], cfg->run.seeds[b])))
                todo_models++;
        }
    if (!todo_units && !todo_models) return PAD_OK;
    pad_status st = PAD_OK;
    char name_buf[PAD_CFG_NAME_MAX];
    st = pad_dataset_class_load(rc->ds, name, &cc.data);
    if (st != PAD_OK) {
        PAD_LOG_ERROR("class %s: cannot list the dataset (data.root %s)", name, cfg->data.root);
        return st;
    }
    cc.loaded = true;
    st = class_prompts(rc, &cc, name_buf, sizeof name_buf);
    if (st == PAD_OK && todo_units) st = prepare_class_test(rc, &cc);
    for (int a = 0; a < cfg->run.n_shots && st == PAD_OK; a++) {
        int k = cfg->run.shots[a];
        for (int b = 0; b < cfg->run.n_seeds && st == PAD_OK; b++) {
            if (!owns_group(rc, ci, a, b)) continue;
            int seed = cfg->run.seeds[b];
            bool todo[2] = {false, false};
            for (int t = 0; t < 2; t++)
                todo[t] = (cfg->run.tasks & (1 << t)) && get_unit_state(rc, name, k, seed, t) != UNIT_DONE;
            bool need_model = cfg->output.models && (todo[0] || todo[1] || !model_is_current(rc, name, k, seed));
            if (!todo[0] && !todo[1] && !need_model) continue;
            char seed_dir[PATH_CAP];
            unit_path(rc, seed_dir, sizeof seed_dir, name, k, seed, NULL);
            if ((st = pad_mkdir_p(seed_dir)) != PAD_OK) break;
            remove_stale_tmp(seed_dir);
            if (k > cc.data.n_train) {
                PAD_LOG_ERROR("class %s: %d shots requested but %s has %d train images", name, k, cfg->data.root,
                              cc.data.n_train);
                st = PAD_ERR_INVALID_ARG;
                break;
            }
            pad_shots shots;
            st =
                pad_shots_select(&cc.data, k, (pad_shot_select)cfg->run.shot_select, (uint64_t)seed, rc->lists, &shots);
            if (st != PAD_OK) break;
            st = shot_features(rc, &cc, shots.index, k);
            if (st == PAD_OK && (todo[0] || todo[1])) {
                pad_bank *bank = NULL;
                st = upload_shots(rc, &cc, shots.index, k);
                if (st == PAD_OK) st = pad_bank_init(&bank, rc->be, cc.shot_mid1, cc.shot_mid2, k, rc->P, rc->D);
                if (st == PAD_OK) st = visual_scores(rc, &cc, bank, todo[0]);
                for (int t = 0; t < 2 && st == PAD_OK; t++) {
                    if (!todo[t]) continue;
                    if (stop_requested(rc)) {
                        st = PAD_ERR_ABORTED;
                        break;
                    }
                    st = run_unit(rc, &cc, t, k, seed, &shots);
                }
                pad_bank_free(bank);
            }
            if (st == PAD_OK && need_model) st = write_model(rc, &cc, k, seed, &shots);
            pad_shots_free(&shots);
            if (st == PAD_OK && stop_requested(rc)) st = PAD_ERR_ABORTED;
        }
    }
    class_free(rc, &cc);
    return st;
}

// ----------------------------------------------------------------------------
// The job

static pad_status pick_classes(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    int n_present = pad_dataset_n_classes(rc->ds);
    int n = cfg->data.n_classes ? cfg->data.n_classes : n_present;
    rc->classes = calloc((size_t)n, sizeof *rc->classes);
    if (!rc->classes) return PAD_ERR_OOM;
    for (int i = 0; i < n; i++) {
        const char *c = cfg->data.n_classes ? cfg->data.classes[i] : pad_dataset_class_name(rc->ds, i);
        if (pad_dataset_find_class(rc->ds, c) < 0) {
            char list[1024] = "";
            for (int j = 0; j < n_present; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", pad_dataset_class_name(rc->ds, j));
            }
            PAD_LOG_ERROR("data.classes: '%s' is not a class of %s (classes present: %s)", c, cfg->data.root, list);
            return PAD_ERR_INVALID_ARG;
        }
        rc->classes[i] = (char *)c;
    }
    rc->n_classes = n;
    return PAD_OK;
}

// Counts units and checks the finished ones before any work.
static pad_status survey(run_ctx *rc) {
    const pad_run_config *cfg = rc->cfg;
    rc->n_units = 0;
    int mismatched = 0;
    char first[PATH_CAP] = "", fhash[64] = "";
    for (int c = 0; c < rc->n_classes; c++)
        for (int a = 0; a < cfg->run.n_shots; a++)
            for (int b = 0; b < cfg->run.n_seeds; b++)
                for (int t = 0; t < 2; t++) {
                    if (!(cfg->run.tasks & (1 << t)) || !owns_group(rc, c, a, b)) continue;
                    rc->n_units++;
                    unit_state s = get_unit_state(rc, rc->classes[c], cfg->run.shots[a], cfg->run.seeds[b], t);
                    if (s == UNIT_DONE) rc->n_skipped++;
                    if (s == UNIT_MISMATCH && mismatched++ == 0) {
                        unit_path(rc, first, sizeof first, rc->classes[c], cfg->run.shots[a], cfg->run.seeds[b],
                                  k_task_names[t]);
                        read_recorded_hash(first, fhash, sizeof fhash);
                    }
                }
    rc->n_done = rc->n_skipped;
    if (mismatched && !cfg->output.redo_on_mismatch) {
        PAD_LOG_ERROR("%s (and %d other unit%s) was computed with other settings (config hash %s, this run has %s); "
                      "choose another output.dir, or recompute with --set output.on_mismatch=redo",
                      first, mismatched - 1, mismatched == 2 ? "" : "s", fhash[0] ? fhash : "?", rc->hash);
        return PAD_ERR_INVALID_ARG;
    }
    if (mismatched)
        PAD_LOG_WARN("%d finished unit%s with other settings will be recomputed", mismatched,
                     mismatched == 1 ? "" : "s");
    return PAD_OK;
}

pad_status pad_run(const pad_run_config *cfg, const pad_run_opts *opts, pad_run_result *res) {
    memset(res, 0, sizeof *res);
    run_ctx rc;
    memset(&rc, 0, sizeof rc);
    rc.cfg = cfg;
    rc.opts = opts;
    rc.res = res;
    snprintf(rc.dataset, sizeof rc.dataset, "%s", pad_run_config_dataset(cfg));
    pad_path_join(rc.ds_dir, sizeof rc.ds_dir, cfg->output.dir, rc.dataset);
    pad_path_join(res->results_dir, sizeof res->results_dir, cfg->output.dir, rc.dataset);
    pad_status st = PAD_OK;
    bool dry = opts && opts->dry_run;

    PAD_TRY_GOTO(st, ensure_generated_model(cfg), done);
    PAD_TRY_GOTO(st, ensure_synth(cfg), done);
    PAD_TRY_GOTO(st, init_model(&rc), done);
    if (cfg->run.method != PAD_RUN_METHOD_PROMPTAD) { // the CLIP baselines have their own units (run_method.h)
        st = pad_run_baseline(cfg, opts, res, rc.hash, rc.vocab_path);
        rc.n_computed = res->n_computed;
        goto done;
    }
    const char *fmt = strcmp(cfg->data.format, "synth") == 0 ? "mvtec" : cfg->data.format;
    PAD_TRY_GOTO(st, pad_dataset_format_parse(fmt, &rc.format), done);
    PAD_TRY_GOTO(st, pad_dataset_open(&rc.ds, rc.format, cfg->data.root), done);
    PAD_TRY_GOTO(st, pick_classes(&rc), done);
    PAD_TRY_GOTO(st, survey(&rc), done);
    res->n_units = rc.n_units;
    res->n_skipped = rc.n_skipped;
    {
        pad_run_event ev = {.kind = PAD_RUN_EV_BEGIN};
        emit(&rc, &ev);
    }
    if (dry) goto done;
    PAD_TRY_GOTO(st, pad_mkdir_p(rc.ds_dir), done);
    {
        size_t n = pad_run_config_to_yaml(cfg, NULL, 0);
        char *y = malloc(n + 256);
        if (y) {
            int h = snprintf(y, 256, "# promptad %s, config hash %s\n", PAD_VERSION, rc.hash);
            pad_run_config_to_yaml(cfg, y + h, n + 1);
            char p[PATH_CAP];
            pad_path_join(p, sizeof p, rc.ds_dir, "run_config.yaml");
            pad_write_file_atomic(p, y, strlen(y));
            free(y);
        }
    }
    if (rc.n_skipped < rc.n_units || cfg->output.models) {
        PAD_TRY_GOTO(st, init_backend(&rc), done);
        PAD_TRY_GOTO(st, load_model(&rc), done);
        PAD_LOG_INFO("backend %s; model %s (S %d, grid %d, E %d, D %d); config hash %s",
                     pad_backend_kind_str(pad_backend_get_kind(rc.be)), rc.weights_path, rc.S, rc.G, rc.E, rc.D,
                     rc.hash);
        for (int c = 0; c < rc.n_classes && st == PAD_OK; c++) {
            if (stop_requested(&rc)) {
                st = PAD_ERR_ABORTED;
                break;
            }
            st = run_class(&rc, c);
        }
    }
done:
    res->n_computed = rc.n_computed;
    if (!dry && rc.ds_dir[0] && pad_path_is_dir(rc.ds_dir)) {
        char paper[PAD_CFG_PATH_MAX];
        pad_resolve_data_path("configs/paper_results.csv", paper, sizeof paper);
        const char *dirs[1] = {cfg->output.dir};
        pad_status rs = pad_report_write(dirs, 1, cfg->output.dir, paper, &res->summary_md, NULL);
        if (st == PAD_OK) st = rs;
    }
    {
        pad_run_event ev = {.kind = PAD_RUN_EV_END};
        emit(&rc, &ev);
    }
    pad_vit_free(rc.vit);
    if (rc.be) {
        pad_buf_free(rc.be, rc.pix_dev);
    }
    free(rc.pix_host);
    pad_weights_free(rc.w_dev);
    pad_weights_free(rc.w_host);
    pad_tokenizer_free(rc.tok);
    pad_prompt_set_free(rc.pset);
    pad_shot_lists_free(rc.lists);
    pad_dataset_free(rc.ds);
    free(rc.classes);
    pad_backend_free(rc.be);
    return st;
}
