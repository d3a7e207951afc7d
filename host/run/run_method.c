/* run_method.c - the units of run.method cpe and winclip (run_method.h, docs/winclip.md "Runs").
 *
 * Per class: the test images (the same evenly spaced subset as PromptAD's units when data.max_test is set) are
 * decoded and preprocessed once, in RGB (the BGR test-image quirk belongs to the published PromptAD code), with the
 * run's preprocessing; the ground truth is resized to R x R as for PromptAD. Each unit scores every test image,
 * upsamples the score grids to R x R (CPE: then the Gaussian of sigma 4, as PromptAD's evaluation; WinCLIP: none, as
 * anomalib), computes the metrics of `promptad metrics`, and writes scores.csv, maps.safetensors (output.maps grid
 * or full) and metrics.json last, so that a unit exists completely or not at all. */
#include "run_method.h"

#include "dataset.h"
#include "fsutil.h"
#include "image.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "prompt_set.h"
#include "report.h"
#include "shots.h"
#include "st_file.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"
#include "winclip.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP  4096
#define CPE_SIGMA 4.0

typedef struct mrun {
    const pad_run_config *cfg;
    const pad_run_opts *opts;
    pad_run_result *res;
    const char *method, *hash;
    bool winclip;
    char dir[PATH_CAP]; // <output.dir>/<dataset>/<method>
    pad_backend *be;
    pad_clip_weights *hw, *w;
    pad_tokenizer *tok;
    pad_prompt_set *pset;
    pad_shot_lists *lists;
    pad_dataset *ds;
    pad_winclip *wc;
    pad_vit *vit;
    int S, G, R;
    pad_preprocess_mode prep;
} mrun;

// One class's test data.
typedef struct mclass {
    const char *name;
    char text[256];           // the class text of the prompts
    float *text_raw;          // (2,E) the averaged raw CPE text features
    pad_winclip_cache *cache; // WinCLIP: the test features, scored against each unit's references
    pad_class_data data;
    int n, n_anom;
    int *items;
    uint8_t *labels;
    float *pixels;  // (n,3,S,S)
    uint8_t *masks; // (n,R,R) or NULL
    pad_metrics_gt *gt;
} mclass;

static void unit_dir(const mrun *m, char *out, size_t cap, const char *cls, int k, int seed) {
    int n = snprintf(out, cap, "%s/%s/k%d/seed%d/seg", m->dir, cls, k, seed);
    if (n < 0 || (size_t)n >= cap) out[0] = 0; // cannot happen with the configuration's path limits
}

// Whether the unit's metrics.json exists and carries this run's config hash.
static bool unit_done(const mrun *m, const char *cls, int k, int seed) {
    char d[PATH_CAP], p[PATH_CAP + 16];
    unit_dir(m, d, sizeof d, cls, k, seed);
    snprintf(p, sizeof p, "%s/metrics.json", d);
    char *text = NULL;
    if (!pad_path_is_file(p) || pad_read_file(p, &text, NULL) != PAD_OK) return false;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "config_hash");
    bool same = cJSON_IsString(h) && h->valuestring && strcmp(h->valuestring, m->hash) == 0;
    cJSON_Delete(j);
    return same;
}

static void emit(const mrun *m, pad_run_event *ev) {
    if (m->opts && m->opts->progress) m->opts->progress(ev, m->opts->user_data);
}

static bool stop_requested(const mrun *m) {
    return m->opts && m->opts->stop && *m->opts->stop;
}

// Decodes and preprocesses n image files into pixels (n,3,S,S) (RGB).
static pad_status load_pixels(const mrun *m, char *const *paths, int n, float *pixels) {
    const size_t px = (size_t)3 * m->S * m->S;
    for (int i = 0; i < n; i++) {
        pad_image img;
        pad_status st = pad_image_load(&img, paths[i]);
        if (st == PAD_OK) {
            st = pad_preprocess(&img, m->prep, m->S, false, pixels + (size_t)i * px);
            pad_image_free(&img);
        }
        if (st != PAD_OK) {
            PAD_LOG_ERROR("%s: cannot read or preprocess the image", paths[i]);
            return st;
        }
    }
    return PAD_OK;
}

// The union of an item's masks resized to R x R into out (R*R).
static pad_status load_mask(const mrun *m, const pad_test_item *it, uint8_t *out) {
    pad_mask u = {0};
    pad_status st = PAD_OK;
    for (int j = 0; j < it->n_masks && st == PAD_OK; j++) {
        pad_mask mk = {0};
        if ((st = pad_mask_load(&mk, it->mask_paths[j])) != PAD_OK) break;
        if (j == 0) {
            u = mk;
            continue;
        }
        if (mk.w != u.w || mk.h != u.h) {
            PAD_LOG_ERROR("%s: mask is %dx%d, the first mask of %s is %dx%d", it->mask_paths[j], mk.w, mk.h, it->path,
                          u.w, u.h);
            st = PAD_ERR_FORMAT;
        } else
            for (size_t p = 0; p < (size_t)u.w * u.h; p++)
                u.m[p] = (uint8_t)(u.m[p] | mk.m[p]);
        pad_mask_free(&mk);
    }
    pad_mask r = {0};
    if (st == PAD_OK) st = pad_mask_preprocess(&u, m->prep, m->R, &r);
    if (st == PAD_OK) memcpy(out, r.m, (size_t)m->R * m->R);
    pad_mask_free(&r);
    pad_mask_free(&u);
    return st;
}

static void class_free(mclass *c) {
    free(c->text_raw);
    pad_winclip_cache_free(c->cache);
    free(c->items);
    free(c->labels);
    free(c->pixels);
    free(c->masks);
    pad_metrics_gt_free(c->gt);
    pad_class_data_free(&c->data);
}

static pad_status class_prepare(mrun *m, mclass *c) {
    const int n_all = c->data.n_test, mt = m->cfg->data.max_test;
    const int n = mt > 0 && mt < n_all ? mt : n_all;
    const size_t RR = (size_t)m->R * m->R;
    c->n = n;
    c->items = (int *)malloc((size_t)n * sizeof(int));
    c->labels = (uint8_t *)malloc((size_t)n);
    c->pixels = (float *)malloc((size_t)n * 3 * m->S * m->S * sizeof(float));
    char **paths = (char **)malloc((size_t)n * sizeof(char *));
    if (!c->items || !c->labels || !c->pixels || !paths) {
        free(paths);
        return PAD_ERR_OOM;
    }
    for (int i = 0; i < n; i++) {
        c->items[i] = (int)((long long)i * n_all / n);
        const pad_test_item *it = &c->data.test[c->items[i]];
        c->labels[i] = (uint8_t)it->label;
        c->n_anom += it->label;
        paths[i] = it->path;
    }
    pad_status st = load_pixels(m, paths, n, c->pixels);
    free(paths);
    if (st != PAD_OK || !c->data.has_masks || c->n_anom == 0) return st;
    if (!(c->masks = (uint8_t *)calloc((size_t)n * RR, 1))) return PAD_ERR_OOM;
    for (int i = 0; i < n && st == PAD_OK; i++) {
        const pad_test_item *it = &c->data.test[c->items[i]];
        if (it->label && it->n_masks) st = load_mask(m, it, c->masks + (size_t)i * RR);
    }
    if (st == PAD_OK) st = pad_metrics_gt_init(&c->gt, c->masks, n, m->R, m->R);
    return st;
}

// The class text of the prompts: the prompt set's name, else the key with underscores as spaces.
static void class_text(const mrun *m, mclass *c) {
    for (int i = 0; i < pad_prompt_set_n_classes(m->pset); i++) {
        pad_prompt_class pc = pad_prompt_set_class_at(m->pset, i);
        if (strcmp(pc.key, c->name) == 0) {
            snprintf(c->text, sizeof c->text, "%s", pc.name);
            return;
        }
    }
    snprintf(c->text, sizeof c->text, "%s", c->name);
    for (char *p = c->text; *p; p++)
        if (*p == '_') *p = ' ';
}

typedef struct unit_out {
    float *image_score, *grid, *maps, *smoothed; // (n), (n,G,G), (n,R,R), (n,R,R) or NULL
    pad_image_metrics img;
    pad_pixel_metrics pix;
    bool has_pix;
} unit_out;

static pad_status write_unit(const mrun *m, const mclass *c, int k, int seed, const pad_shots *shots,
                             const unit_out *u) {
    char d[PATH_CAP], p[PATH_CAP + 32];
    unit_dir(m, d, sizeof d, c->name, k, seed);
    PAD_TRY(pad_mkdir_p(d));
    snprintf(p, sizeof p, "%s/metrics.json", d);
    remove(p); // an older unit stops counting as finished before its files are replaced
    snprintf(p, sizeof p, "%s/scores.csv", d);
    FILE *fp = fopen(p, "w");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot write", p);
        return PAD_ERR_IO;
    }
    fprintf(fp, "path,label,score\n");
    for (int i = 0; i < c->n; i++) {
        const char *path = c->data.test[c->items[i]].path;
        fputc('"', fp);
        for (const char *q = path; *q; q++) {
            if (*q == '"') fputc('"', fp);
            fputc(*q, fp);
        }
        fprintf(fp, "\",%d,%.9g\n", c->labels[i], (double)u->image_score[i]);
    }
    if (fclose(fp) != 0) return PAD_ERR_IO;
    if (m->cfg->output.maps != PAD_MAPS_NONE) {
        pad_st_writer *wr = NULL;
        const int64_t n = c->n, G = m->G, R = m->R;
        float *lab = (float *)malloc((size_t)n * sizeof(float));
        pad_status st = lab ? pad_st_writer_init(&wr) : PAD_ERR_OOM;
        for (int i = 0; lab && i < c->n; i++)
            lab[i] = c->labels[i];
        if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "image_score", 1, (int64_t[]){n}, u->image_score);
        if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "labels", 1, (int64_t[]){n}, lab);
        if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "score_grid", 3, (int64_t[]){n, G, G}, u->grid);
        if (st == PAD_OK && m->cfg->output.maps == PAD_MAPS_FULL)
            st = pad_st_writer_add_f32(wr, "pixel_map", 3, (int64_t[]){n, R, R}, u->smoothed ? u->smoothed : u->maps);
        if (st == PAD_OK) st = pad_st_writer_meta(wr, "method", m->method);
        snprintf(p, sizeof p, "%s/maps.safetensors", d);
        if (st == PAD_OK) st = pad_st_writer_save(wr, p);
        pad_st_writer_free(wr);
        free(lab);
        PAD_TRY(st);
    }
    const pad_run_config *cfg = m->cfg;
    cJSON *j = cJSON_CreateObject();
    if (!j) return PAD_ERR_OOM;
    pad_json_add_num(j, "image_auroc", u->img.auroc);
    pad_json_add_num(j, "image_aupr", u->img.aupr);
    pad_json_add_num(j, "pixel_auroc", u->has_pix ? u->pix.auroc : NAN);
    pad_json_add_num(j, "pixel_aupr", u->has_pix ? u->pix.aupr : NAN);
    pad_json_add_num(j, "pixel_pro", u->has_pix ? u->pix.pro : NAN);
    pad_json_add_num(j, "pixel_pro_200", u->has_pix ? u->pix.pro_200 : NAN);
    cJSON_AddStringToObject(j, "method", m->method);
    cJSON_AddStringToObject(j, "variant", !m->winclip ? "CPE + V-V CLIP" : k ? "WinCLIP+" : "WinCLIP");
    cJSON_AddStringToObject(j, "dataset", pad_run_config_dataset(cfg));
    cJSON_AddStringToObject(j, "format", cfg->data.format);
    cJSON_AddStringToObject(j, "class", c->name);
    cJSON_AddStringToObject(j, "class_text", c->text);
    cJSON_AddNumberToObject(j, "k", k);
    cJSON_AddNumberToObject(j, "seed", seed);
    cJSON_AddStringToObject(j, "task", "seg");
    cJSON_AddBoolToObject(j, "zero_shot", k == 0);
    cJSON_AddStringToObject(j, "protocol", cfg->run.protocol == PAD_PROTOCOL_OFFICIAL ? "official" : "clean");
    cJSON_AddStringToObject(j, "config_hash", m->hash);
    cJSON_AddStringToObject(
        j, "image_score",
        m->winclip ? (k ? "(class score of the CLS + max few-shot map) / 2" : "class score of the CLS embedding")
                   : "class score of the CLS embedding");
    cJSON_AddStringToObject(j, "pixel_map",
                            m->winclip ? "bilinear(score grid), no Gaussian"
                                       : "Gaussian_4(bilinear(V-V patch class scores))");
    cJSON_AddNumberToObject(j, "n_test", c->n);
    cJSON_AddNumberToObject(j, "n_test_anomalous", c->n_anom);
    cJSON *sh = cJSON_AddArrayToObject(j, "shots");
    for (int i = 0; shots && i < shots->k; i++)
        cJSON_AddItemToArray(sh, cJSON_CreateString(shots->paths[i]));
    if (shots) cJSON_AddStringToObject(j, "shot_select", pad_shot_select_str(shots->mode));
    cJSON_AddStringToObject(j, "preprocess", pad_preprocess_mode_str(m->prep));
    cJSON_AddStringToObject(j, "prompts", pad_prompt_set_name(m->pset));
    cJSON_AddNumberToObject(j, "resolution", m->R);
    cJSON_AddNumberToObject(j, "fpr_limit", cfg->run.fpr_limit);
    cJSON_AddStringToObject(j, "weights", cfg->model.weights);
    cJSON_AddStringToObject(j, "device", pad_backend_kind_str(pad_backend_get_kind(m->be)));
    cJSON_AddStringToObject(j, "promptad_version", PAD_VERSION);
    snprintf(p, sizeof p, "%s/metrics.json", d);
    pad_status st = pad_json_write_file(p, j);
    cJSON_Delete(j);
    return st;
}

// Scores the class's test images (the references already set for WinCLIP+) and evaluates them.
static pad_status score_unit(mrun *m, mclass *c, unit_out *u) {
    const size_t n = (size_t)c->n;
    pad_status st;
    if (m->winclip)
        st = pad_winclip_score_cached(m->wc, c->cache, u->image_score, u->grid, NULL);
    else
        st = pad_cpe_score(m->be, m->vit, c->text_raw, PAD_WINCLIP_TEMPERATURE, c->pixels, c->n, u->image_score,
                           u->grid);
    if (st == PAD_OK)
        st = pad_grid_maps(m->be, u->grid, c->n, m->G, m->R, m->winclip ? 0.0 : CPE_SIGMA, u->maps, u->smoothed);
    if (st == PAD_OK) st = pad_metrics_image(u->image_score, c->labels, (int64_t)n, &u->img);
    u->has_pix = c->gt != NULL;
    if (st == PAD_OK && u->has_pix)
        st = pad_metrics_pixel(c->gt, u->smoothed ? u->smoothed : u->maps, m->cfg->run.fpr_limit, PAD_METRICS_ALL,
                               &u->pix);
    return st;
}

// Runs the units of one class (those not finished yet).
static pad_status run_class(mrun *m, const char *name) {
    const pad_run_config *cfg = m->cfg;
    // units: (0, 0), and for WinCLIP+ every (shot, seed)
    enum { MAX_UNITS = 1 + PAD_CFG_MAX_LIST * PAD_CFG_MAX_LIST };
    int ks[MAX_UNITS], seeds[MAX_UNITS], nu = 0;
    ks[nu] = 0;
    seeds[nu++] = 0;
    for (int a = 0; m->winclip && a < cfg->run.n_shots; a++)
        for (int b = 0; b < cfg->run.n_seeds; b++)
            if (cfg->run.shots[a] > 0) {
                ks[nu] = cfg->run.shots[a];
                seeds[nu++] = cfg->run.seeds[b];
            }
    bool todo[MAX_UNITS], any = false;
    for (int i = 0; i < nu; i++) {
        todo[i] = !unit_done(m, name, ks[i], seeds[i]);
        any = any || todo[i];
    }
    if (!any) return PAD_OK;
    mclass c;
    memset(&c, 0, sizeof c);
    c.name = name;
    pad_status st = pad_dataset_class_load(m->ds, name, &c.data);
    if (st != PAD_OK) {
        PAD_LOG_ERROR("class %s: cannot list the dataset (data.root %s)", name, cfg->data.root);
        return st;
    }
    class_text(m, &c);
    PAD_LOG_INFO("%s, class %s (\"%s\"): preparing %d test images", m->method, name, c.text, c.data.n_test);
    st = class_prepare(m, &c);
    if (st == PAD_OK && !(c.text_raw = (float *)malloc((size_t)2 * m->hw->cfg.embed_dim * sizeof(float))))
        st = PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_cpe_text(m->w, m->tok, c.text, c.text_raw);
    if (st == PAD_OK && m->winclip) st = pad_winclip_set_text(m->wc, c.text_raw);
    if (st == PAD_OK && m->winclip) st = pad_winclip_cache_create(&c.cache, m->wc, c.pixels, c.n);
    const size_t n = (size_t)c.n, RR = (size_t)m->R * m->R;
    unit_out u;
    memset(&u, 0, sizeof u);
    u.image_score = (float *)malloc(n * sizeof(float));
    u.grid = (float *)malloc(n * (size_t)m->G * m->G * sizeof(float));
    u.maps = (float *)malloc(n * RR * sizeof(float));
    if (!m->winclip) u.smoothed = (float *)malloc(n * RR * sizeof(float));
    if (st == PAD_OK && (!u.image_score || !u.grid || !u.maps || (!m->winclip && !u.smoothed))) st = PAD_ERR_OOM;
    for (int i = 0; i < nu && st == PAD_OK; i++) {
        if (!todo[i]) continue;
        if (stop_requested(m)) {
            st = PAD_ERR_ABORTED;
            break;
        }
        const int k = ks[i], seed = seeds[i];
        pad_run_event ev = {.kind = PAD_RUN_EV_UNIT_BEGIN,
                            .n_units = m->res->n_units,
                            .n_done = m->res->n_skipped + m->res->n_computed,
                            .n_skipped = m->res->n_skipped,
                            .cls = name,
                            .task = "seg",
                            .k = k,
                            .seed = seed};
        emit(m, &ev);
        pad_shots shots;
        memset(&shots, 0, sizeof shots);
        float *spx = NULL;
        if (m->winclip && k > c.data.n_train) {
            PAD_LOG_ERROR("class %s: %d shots requested but %s has %d train images", name, k, cfg->data.root,
                          c.data.n_train);
            st = PAD_ERR_INVALID_ARG;
        }
        if (st == PAD_OK && m->winclip && k > 0) {
            st = pad_shots_select(&c.data, k, (pad_shot_select)cfg->run.shot_select, (uint64_t)seed, m->lists, &shots);
            char **paths = (char **)malloc((size_t)k * sizeof(char *));
            spx = (float *)malloc((size_t)k * 3 * m->S * m->S * sizeof(float));
            if (st == PAD_OK && (!paths || !spx)) st = PAD_ERR_OOM;
            for (int j = 0; st == PAD_OK && j < k; j++)
                paths[j] = c.data.train[shots.index[j]];
            if (st == PAD_OK) st = load_pixels(m, paths, k, spx);
            free(paths);
        }
        if (st == PAD_OK && m->winclip) st = pad_winclip_set_refs(m->wc, spx, k > 0 ? k : 0);
        free(spx);
        if (st == PAD_OK) st = score_unit(m, &c, &u);
        if (st == PAD_OK) st = write_unit(m, &c, k, seed, k > 0 ? &shots : NULL, &u);
        pad_shots_free(&shots);
        if (st == PAD_OK) {
            m->res->n_computed++;
            pad_run_event e2 = {.kind = PAD_RUN_EV_UNIT_END,
                                .n_units = m->res->n_units,
                                .n_done = m->res->n_skipped + m->res->n_computed,
                                .n_skipped = m->res->n_skipped,
                                .cls = name,
                                .task = "seg",
                                .k = k,
                                .seed = seed,
                                .image_auroc = u.img.auroc,
                                .pixel_auroc = u.has_pix ? u.pix.auroc : NAN,
                                .pixel_pro = u.has_pix ? u.pix.pro : NAN};
            emit(m, &e2);
            PAD_LOG_INFO("%s %s k%d seed%d: image AUROC %.4f, pixel AUROC %.4f", m->method, name, k, seed, u.img.auroc,
                         u.has_pix ? u.pix.auroc : NAN);
        }
    }
    free(u.image_score);
    free(u.grid);
    free(u.maps);
    free(u.smoothed);
    class_free(&c);
    return st;
}

static pad_status open_model(mrun *m, const char *vocab) {
    const pad_run_config *cfg = m->cfg;
    pad_backend_kind kind = (pad_backend_kind)cfg->run.device;
    if (kind == PAD_BACKEND_AUTO) kind = pad_cuda_device_count() > 0 ? PAD_BACKEND_CUDA : PAD_BACKEND_CPU;
    pad_status st =
        kind == PAD_BACKEND_CPU ? pad_backend_cpu_init(&m->be, cfg->run.threads) : pad_backend_init(&m->be, kind, 0);
    if (st != PAD_OK && cfg->run.device == PAD_BACKEND_AUTO) {
        PAD_LOG_WARN("CUDA is not usable; running on the CPU");
        st = pad_backend_cpu_init(&m->be, cfg->run.threads);
    }
    PAD_TRY(st);
    PAD_TRY(pad_weights_load(&m->hw, cfg->model.weights, PAD_WEIGHTS_ALL));
    if (cfg->model.activation >= 0) m->hw->cfg.act = (pad_activation)cfg->model.activation;
    PAD_TRY(pad_weights_to_backend(m->hw, m->be, &m->w));
    PAD_TRY(pad_tokenizer_load(&m->tok, vocab));
    PAD_TRY(pad_prompt_set_open(&m->pset, cfg->run.prompts));
    m->S = m->hw->cfg.vision.image_size;
    m->G = m->hw->cfg.vision.grid;
    m->R = cfg->run.resolution;
    m->prep = (pad_preprocess_mode)cfg->model.preprocess;
    if (m->winclip) {
        pad_winclip_params p = pad_winclip_default_params();
        p.max_batch = cfg->run.batch < 8 ? cfg->run.batch : 8;
        PAD_TRY(pad_winclip_create(&m->wc, m->be, m->w, &p));
        if (cfg->run.n_shots > 0 && cfg->run.shot_select != PAD_SHOT_SELECT_RANDOM) {
            char path[PAD_CFG_PATH_MAX];
            pad_resolve_data_path(cfg->run.shot_lists, path, sizeof path);
            PAD_TRY(pad_shot_lists_load(&m->lists, path));
        }
    } else {
        pad_vit_params vp = pad_vit_depth_params(m->w->cfg.vision.layers);
        vp.max_batch = cfg->run.batch;
        PAD_TRY(pad_vit_create(&m->vit, m->be, m->w, &vp));
    }
    return PAD_OK;
}

pad_status pad_run_baseline(const pad_run_config *cfg, const pad_run_opts *opts, pad_run_result *res, const char *hash,
                            const char *vocab) {
    mrun m;
    memset(&m, 0, sizeof m);
    m.cfg = cfg;
    m.opts = opts;
    m.res = res;
    m.hash = hash;
    m.method = pad_run_method_str(cfg->run.method);
    m.winclip = cfg->run.method == PAD_RUN_METHOD_WINCLIP;
    if (cfg->run.method != PAD_RUN_METHOD_CPE && !m.winclip) return PAD_ERR_INVALID_ARG;
    snprintf(m.dir, sizeof m.dir, "%s/%s/%s", cfg->output.dir, pad_run_config_dataset(cfg), m.method);
    const char *fmt = strcmp(cfg->data.format, "synth") == 0 ? "mvtec" : cfg->data.format;
    pad_dataset_format format;
    pad_status st = pad_dataset_format_parse(fmt, &format);
    if (st == PAD_OK) st = pad_dataset_open(&m.ds, format, cfg->data.root);
    // the classes, and the units left
    const int n_classes = st == PAD_OK ? (cfg->data.n_classes ? cfg->data.n_classes : pad_dataset_n_classes(m.ds)) : 0;
    const int per_class = 1 + (m.winclip ? cfg->run.n_shots * cfg->run.n_seeds : 0);
    for (int c = 0; c < n_classes && st == PAD_OK; c++) {
        const char *name = cfg->data.n_classes ? cfg->data.classes[c] : pad_dataset_class_name(m.ds, c);
        if (pad_dataset_find_class(m.ds, name) < 0) {
            PAD_LOG_ERROR("data.classes: '%s' is not a class of %s", name, cfg->data.root);
            st = PAD_ERR_INVALID_ARG;
        }
    }
    res->n_units = n_classes * per_class;
    for (int c = 0; c < n_classes && st == PAD_OK; c++) {
        const char *name = cfg->data.n_classes ? cfg->data.classes[c] : pad_dataset_class_name(m.ds, c);
        res->n_skipped += unit_done(&m, name, 0, 0);
        for (int a = 0; m.winclip && a < cfg->run.n_shots; a++)
            for (int b = 0; b < cfg->run.n_seeds; b++)
                res->n_skipped += unit_done(&m, name, cfg->run.shots[a], cfg->run.seeds[b]);
    }
    pad_run_event ev = {.kind = PAD_RUN_EV_BEGIN, .n_units = res->n_units, .n_skipped = res->n_skipped};
    emit(&m, &ev);
    if (st == PAD_OK && !(opts && opts->dry_run)) {
        char marker[PATH_CAP + 16];
        st = pad_mkdir_p(m.dir);
        snprintf(marker, sizeof marker, "%s/%s", m.dir, PAD_METHOD_MARKER);
        if (st == PAD_OK) st = pad_write_file_atomic(marker, m.method, strlen(m.method));
        if (st == PAD_OK) st = open_model(&m, vocab);
        if (st == PAD_OK)
            PAD_LOG_INFO("run.method %s on %s, %d classes, results in %s", m.method,
                         pad_backend_kind_str(pad_backend_get_kind(m.be)), n_classes, m.dir);
        for (int c = 0; c < n_classes && st == PAD_OK; c++)
            st = run_class(&m, cfg->data.n_classes ? cfg->data.classes[c] : pad_dataset_class_name(m.ds, c));
    }
    pad_winclip_free(m.wc);
    pad_vit_free(m.vit);
    pad_weights_free(m.w);
    pad_weights_free(m.hw);
    pad_tokenizer_free(m.tok);
    pad_prompt_set_free(m.pset);
    pad_shot_lists_free(m.lists);
    pad_dataset_free(m.ds);
    pad_backend_free(m.be);
    return st;
}
