/* config_dump.c - the resolved configuration as YAML (run_config.yaml, --dry-run), the config hash that
 * identifies a run's results, and the file fingerprints that enter it (config.h). */
#include "config_internal.h"

#include "config.h"

#include "dataset.h"
#include "image.h"
#include "log.h"
#include "scalar.h"
#include "shots.h"
#include "yaml_log.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ----------------------------------------------------------------------------
// Dump and hash

static const char *tri_str(int v) {
    return v < 0 ? "auto" : v ? "true" : "false";
}

// YAML double-quoted scalar of s into out.
static void yq(char *out, size_t cap, const char *s) {
    size_t n = 0;
    if (cap < 3) return;
    out[n++] = '"';
    for (const char *p = s; *p && n + 3 < cap; p++) {
        if (*p == '"' || *p == '\\') out[n++] = '\\';
        out[n++] = *p;
    }
    out[n++] = '"';
    out[n] = 0;
}

typedef struct sbuf {
    char *buf;
    size_t cap, len;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) PAD_PRINTF_LIKE(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[8192];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->buf && b->len < b->cap) snprintf(b->buf + b->len, b->cap - b->len, "%s", tmp);
    b->len += (size_t)n;
}

static const char *preprocess_name(int p) {
    return p < 0 ? "auto" : pad_preprocess_mode_str((pad_preprocess_mode)p);
}

static const char *shot_select_name(int s) {
    return s < 0 ? "auto" : pad_shot_select_str((pad_shot_select)s);
}

static const char *select_name(int s) {
    return s < 0 ? "auto" : s == PAD_SELECT_BEST ? "best" : "last";
}

static void dump(const pad_run_config *cfg, sbuf *b, bool for_hash) {
    char q[2 * PAD_CFG_PATH_MAX + 4];
    sb_printf(b, "model:\n");
    if (!for_hash) {
        yq(q, sizeof q, cfg->model.weights);
        sb_printf(b, "  weights: %s\n", q);
        yq(q, sizeof q, cfg->model.vocab);
        sb_printf(b, "  vocab: %s\n", q);
        sb_printf(b, "  generate: %s\n", cfg->model.generate);
    }
    sb_printf(b, "  preprocess: %s\n", preprocess_name(cfg->model.preprocess));
    sb_printf(b, "  taps: [%d, %d]\n", cfg->model.taps[0], cfg->model.taps[1]);
    if (!for_hash || cfg->model.activation >= 0) // auto is the checkpoint's: its fingerprint is in the hash already
        sb_printf(b, "  activation: %s\n",
                  cfg->model.activation < 0    ? "auto"
                  : cfg->model.activation == 1 ? "quick_gelu"
                                               : "gelu");
    sb_printf(b, "data:\n  format: %s\n", cfg->data.format);
    if (!for_hash) {
        yq(q, sizeof q, cfg->data.root);
        sb_printf(b, "  root: %s\n", q);
        yq(q, sizeof q, cfg->data.name);
        sb_printf(b, "  name: %s\n", q);
        sb_printf(b, "  classes: [");
        for (int i = 0; i < cfg->data.n_classes; i++) {
            yq(q, sizeof q, cfg->data.classes[i]);
            sb_printf(b, "%s%s", i ? ", " : "", q);
        }
        sb_printf(b, "]\n");
    }
    sb_printf(b, "  max_test: %d\n", cfg->data.max_test);
    if (!for_hash || strcmp(cfg->data.format, "synth") == 0)
        sb_printf(b,
                  "  synth:\n    classes: %d\n    seed: %d\n    size: %d\n    train: %d\n    test_good: %d\n"
                  "    test_bad: %d\n",
                  for_hash ? 0 : cfg->data.synth.classes, cfg->data.synth.seed, cfg->data.synth.size,
                  cfg->data.synth.train, cfg->data.synth.test_good, cfg->data.synth.test_bad);
    sb_printf(b, "run:\n  protocol: %s\n", cfg->run.protocol == PAD_PROTOCOL_OFFICIAL ? "official" : "clean");
    if (!for_hash) {
        sb_printf(b, "  shots: [");
        for (int i = 0; i < cfg->run.n_shots; i++)
            sb_printf(b, "%s%d", i ? ", " : "", cfg->run.shots[i]);
        sb_printf(b, "]\n  seeds: [");
        for (int i = 0; i < cfg->run.n_seeds; i++)
            sb_printf(b, "%s%d", i ? ", " : "", cfg->run.seeds[i]);
        sb_printf(b, "]\n  tasks: [%s%s%s]\n", (cfg->run.tasks & PAD_RUN_TASK_CLS) ? "cls" : "",
                  (cfg->run.tasks & PAD_RUN_TASK_CLS) && (cfg->run.tasks & PAD_RUN_TASK_SEG) ? ", " : "",
                  (cfg->run.tasks & PAD_RUN_TASK_SEG) ? "seg" : "");
    }
    sb_printf(b, "  epochs: %d\n", cfg->run.epochs);
    if (!for_hash) sb_printf(b, "  device: %s\n", pad_backend_kind_str((pad_backend_kind)cfg->run.device));
    sb_printf(b, "  shot_select: %s\n", shot_select_name(cfg->run.shot_select));
    yq(q, sizeof q, cfg->run.shot_lists);
    sb_printf(b, "  shot_lists: %s\n", q);
    yq(q, sizeof q, cfg->run.prompts);
    sb_printf(b, "  prompts: %s\n", q);
    sb_printf(b, "  resolution: %d\n", cfg->run.resolution);
    if (!for_hash) sb_printf(b, "  batch: %d\n", cfg->run.batch);
    sb_printf(b, "  tau: %s\n", cfg->run.tau_exp ? "exp" : "raw");
    sb_printf(b, "  fp16_scores: %s\n", tri_str(cfg->run.fp16_scores));
    sb_printf(b, "  test_bgr: %s\n", tri_str(cfg->run.test_bgr));
    sb_printf(b, "  select: %s\n", select_name(cfg->run.select));
    sb_printf(b, "  fpr_limit: %.17g\n", cfg->run.fpr_limit);
    if (!for_hash) sb_printf(b, "  threads: %d\n", cfg->run.threads);
    if (!for_hash && cfg->run.cohort < 0) sb_printf(b, "  cohort: auto\n");
    if (!for_hash && cfg->run.cohort > 0) sb_printf(b, "  cohort: %d\n", cfg->run.cohort);
    if (!for_hash && cfg->run.cohort_mem > 0) sb_printf(b, "  cohort_mem: %lld\n", cfg->run.cohort_mem);
    if (!for_hash)
        sb_printf(b, "  cuda_graphs: %s\n", cfg->run.cuda_graphs < 0 ? "auto" : cfg->run.cuda_graphs ? "on" : "off");
    // the GEMM precision changes the numbers: part of the hash, but only when not the default (so that the hashes
    // of earlier fp32 results stay valid)
    if (!for_hash || cfg->run.fast_math != 0)
        sb_printf(b, "  fast_math: %s\n", pad_math_mode_str((pad_math_mode)cfg->run.fast_math));
    // likewise the method and the ablation switches (docs/winclip.md): in the hash only when not the default
    if (!for_hash || cfg->run.method != PAD_RUN_METHOD_PROMPTAD)
        sb_printf(b, "  method: %s\n", pad_run_method_str(cfg->run.method));
    if (!for_hash || cfg->run.no_vad) sb_printf(b, "  use_vad: %s\n", cfg->run.no_vad ? "false" : "true");
    sb_printf(b,
              "train:\n  lr: %.9g\n  lr_min: %.9g\n  momentum: %.9g\n  weight_decay: %.9g\n  lambda_align: %.9g\n"
              "  margin: %.9g\n  n_ctx: %d\n  n_ctx_ab: %d\n  n_pro_cls: %d\n  n_pro_seg: %d\n  n_pro_ab: %d\n"
              "  eam: %s\n  lap: %s\n",
              (double)cfg->train.lr, (double)cfg->train.lr_min, (double)cfg->train.momentum,
              (double)cfg->train.weight_decay, (double)cfg->train.lambda_align, (double)cfg->train.margin,
              cfg->train.n_ctx, cfg->train.n_ctx_ab, cfg->train.n_pro_cls, cfg->train.n_pro_seg, cfg->train.n_pro_ab,
              cfg->train.eam ? "per-token" : "token-axis", cfg->train.lap ? "after-name" : "before-name");
    if (!for_hash || cfg->train.no_map) sb_printf(b, "  use_map: %s\n", cfg->train.no_map ? "false" : "true");
    if (!for_hash || cfg->train.no_lap) sb_printf(b, "  use_lap: %s\n", cfg->train.no_lap ? "false" : "true");
    if (!for_hash) {
        yq(q, sizeof q, cfg->output.dir);
        static const char *const maps[] = {"none", "grid", "full"};
        sb_printf(b, "output:\n  dir: %s\n  maps: %s\n  heatmaps: %d\n  models: %s\n  on_mismatch: %s\n", q,
                  maps[cfg->output.maps], cfg->output.heatmaps, cfg->output.models ? "true" : "false",
                  cfg->output.redo_on_mismatch ? "redo" : "error");
        yq(q, sizeof q, cfg->cache.dir);
        sb_printf(b, "cache:\n  dir: %s\n", q);
    }
}

void pad_run_variant_name(const pad_run_config *cfg, char *buf, size_t cap) {
    const bool taps = cfg->model.taps[0] != 3 || cfg->model.taps[1] != 8;
    char t[40] = "";
    if (taps) snprintf(t, sizeof t, "-taps%d-%d", cfg->model.taps[0], cfg->model.taps[1]);
    snprintf(buf, cap, "promptad%s%s%s%s", cfg->train.no_map ? "-nomap" : "", cfg->train.no_lap ? "-nolap" : "",
             cfg->run.no_vad ? "-novad" : "", t);
}

size_t pad_run_config_to_yaml(const pad_run_config *cfg, char *buf, size_t cap) {
    sbuf b = {buf, cap, 0};
    if (buf && cap) buf[0] = 0;
    dump(cfg, &b, false);
    return b.len;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

void pad_run_config_hash(const pad_run_config *cfg, uint64_t weights_fp, uint64_t vocab_fp, char hex[17]) {
    sbuf b = {NULL, 0, 0};
    dump(cfg, &b, true);
    char *text = malloc(b.len + 1);
    uint64_t h = 0xCBF29CE484222325ull;
    if (text) {
        sbuf b2 = {text, b.len + 1, 0};
        dump(cfg, &b2, true);
        h = fnv1a(h, text, b2.len);
        free(text);
    }
    h = fnv1a(h, &weights_fp, sizeof weights_fp);
    h = fnv1a(h, &vocab_fp, sizeof vocab_fp);
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
}

pad_status pad_file_fingerprint(const char *path, uint64_t *fp, int64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        PAD_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        PAD_LOG_ERROR("%s: cannot stat: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    int64_t n = (int64_t)sb.st_size;
    uint64_t h = fnv1a(0xCBF29CE484222325ull, &n, sizeof n);
    enum { HEAD = 65536 };
    unsigned char *buf = malloc(HEAD);
    if (!buf) {
        fclose(f);
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    size_t r = fread(buf, 1, HEAD, f);
    h = fnv1a(h, buf, r);
    if (n > HEAD)
        for (int i = 0; i < 16; i++) {
            int64_t off = HEAD + (n - HEAD - 4096) * i / 15;
            if (off < 0) off = 0;
            if (fseeko(f, (off_t)off, SEEK_SET) != 0) break;
            r = fread(buf, 1, 4096, f);
            h = fnv1a(h, buf, r);
        }
    bool err = ferror(f) != 0;
    fclose(f);
    free(buf);
    if (err) {
        PAD_LOG_ERROR("%s: read error", path);
        return PAD_ERR_IO;
    }
    *fp = h;
    if (size) *size = n;
    return PAD_OK;
}
