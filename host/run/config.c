/* config.c - the `promptad run` configuration of config.h: the YAML schema (libcyaml), where a message points, the
 * overlay of a document onto the configuration with its value checks, loading files and --set overrides, and the
 * protocol-dependent "auto" values. The keys and defaults are in config_keys.c, the dump and hash in
 * config_dump.c. */
#include "config_internal.h"

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
// The YAML schema: every value is a pointer (NULL = not given), so a document only overrides what it names.

// Numbers and booleans are read as text and converted by the strict parsers of scalar.h (see set_int).
typedef struct y_model {
    char *weights, *vocab, *generate, *preprocess, *activation;
    char **taps;
    unsigned taps_count;
} y_model;

typedef struct y_synth {
    char *classes, *seed, *size, *train, *test_good, *test_bad;
} y_synth;

typedef struct y_data {
    char *format, *root, *name;
    char **classes;
    unsigned classes_count;
    char *max_test;
    y_synth *synth;
} y_data;

typedef struct y_run {
    char *protocol;
    char **shots;
    unsigned shots_count;
    char **seeds;
    unsigned seeds_count;
    char **tasks;
    unsigned tasks_count;
    char *epochs;
    char *device, *shot_select, *shot_lists, *prompts;
    char *resolution, *batch;
    char *tau, *fp16_scores, *test_bgr, *select;
    char *fpr_limit;
    char *threads;
    char *cuda_graphs, *fast_math, *method, *use_vad;
    char *cohort, *cohort_mem;
} y_run;

typedef struct y_train {
    char *lr, *lr_min, *momentum, *weight_decay, *lambda_align, *margin;
    char *n_ctx, *n_ctx_ab, *n_pro_cls, *n_pro_seg, *n_pro_ab;
    char *eam, *lap, *use_map, *use_lap;
} y_train;

typedef struct y_output {
    char *dir, *maps;
    char *heatmaps;
    char *models;
    char *on_mismatch;
} y_output;

typedef struct y_cache {
    char *dir;
} y_cache;

typedef struct y_top {
    y_model *model;
    y_data *data;
    y_run *run;
    y_train *train;
    y_output *output;
    y_cache *cache;
} y_top;

#define OPT     (CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL)
#define SECTION (CYAML_FLAG_POINTER_NULL | CYAML_FLAG_OPTIONAL)

static const cyaml_schema_value_t k_str_entry = {CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, 4096)};

#define STR(key, st, m)      CYAML_FIELD_STRING_PTR(key, OPT, st, m, 0, 4096)
#define INT(key, st, m)      STR(key, st, m)
#define FLT(key, st, m)      STR(key, st, m)
#define INTS(key, st, m, lo) CYAML_FIELD_SEQUENCE(key, OPT | CYAML_FLAG_FLOW, st, m, &k_str_entry, lo, CYAML_UNLIMITED)
#define STRS(key, st, m, lo) CYAML_FIELD_SEQUENCE(key, OPT | CYAML_FLAG_FLOW, st, m, &k_str_entry, lo, CYAML_UNLIMITED)

// clang-format off
static const cyaml_schema_field_t k_model_fields[] = {
    STR("weights", y_model, weights), STR("vocab", y_model, vocab), STR("generate", y_model, generate),
    STR("preprocess", y_model, preprocess), INTS("taps", y_model, taps, 2), STR("activation", y_model, activation),
    CYAML_FIELD_END};
// clang-format on

static const cyaml_schema_field_t k_synth_fields[] = {
    INT("classes", y_synth, classes),
    INT("seed", y_synth, seed),
    INT("size", y_synth, size),
    INT("train", y_synth, train),
    INT("test_good", y_synth, test_good),
    INT("test_bad", y_synth, test_bad),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t k_data_fields[] = {
    STR("format", y_data, format),
    STR("root", y_data, root),
    STR("name", y_data, name),
    STRS("classes", y_data, classes, 0),
    INT("max_test", y_data, max_test),
    CYAML_FIELD_MAPPING_PTR("synth", SECTION, y_data, synth, k_synth_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t k_run_fields[] = {
    STR("protocol", y_run, protocol),
    INTS("shots", y_run, shots, 1),
    INTS("seeds", y_run, seeds, 1),
    STRS("tasks", y_run, tasks, 1),
    INT("epochs", y_run, epochs),
    STR("device", y_run, device),
    STR("shot_select", y_run, shot_select),
    STR("shot_lists", y_run, shot_lists),
    STR("prompts", y_run, prompts),
    INT("resolution", y_run, resolution),
    INT("batch", y_run, batch),
    STR("tau", y_run, tau),
    STR("fp16_scores", y_run, fp16_scores),
    STR("test_bgr", y_run, test_bgr),
    STR("select", y_run, select),
    FLT("fpr_limit", y_run, fpr_limit),
    INT("threads", y_run, threads),
    STR("cuda_graphs", y_run, cuda_graphs),
    STR("fast_math", y_run, fast_math),
    STR("cohort", y_run, cohort),
    STR("cohort_mem", y_run, cohort_mem),
    STR("method", y_run, method),
    STR("use_vad", y_run, use_vad),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t k_train_fields[] = {
    FLT("lr", y_train, lr),
    FLT("lr_min", y_train, lr_min),
    FLT("momentum", y_train, momentum),
    FLT("weight_decay", y_train, weight_decay),
    FLT("lambda_align", y_train, lambda_align),
    FLT("margin", y_train, margin),
    INT("n_ctx", y_train, n_ctx),
    INT("n_ctx_ab", y_train, n_ctx_ab),
    INT("n_pro_cls", y_train, n_pro_cls),
    INT("n_pro_seg", y_train, n_pro_seg),
    INT("n_pro_ab", y_train, n_pro_ab),
    STR("eam", y_train, eam),
    STR("lap", y_train, lap),
    STR("use_map", y_train, use_map),
    STR("use_lap", y_train, use_lap),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t k_output_fields[] = {
    STR("dir", y_output, dir),
    STR("maps", y_output, maps),
    INT("heatmaps", y_output, heatmaps),
    STR("models", y_output, models),
    STR("on_mismatch", y_output, on_mismatch),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t k_cache_fields[] = {
    STR("dir", y_cache, dir),
    CYAML_FIELD_END,
};

static const cyaml_schema_field_t k_top_fields[] = {
    CYAML_FIELD_MAPPING_PTR("model", SECTION, y_top, model, k_model_fields),
    CYAML_FIELD_MAPPING_PTR("data", SECTION, y_top, data, k_data_fields),
    CYAML_FIELD_MAPPING_PTR("run", SECTION, y_top, run, k_run_fields),
    CYAML_FIELD_MAPPING_PTR("train", SECTION, y_top, train, k_train_fields),
    CYAML_FIELD_MAPPING_PTR("output", SECTION, y_top, output, k_output_fields),
    CYAML_FIELD_MAPPING_PTR("cache", SECTION, y_top, cache, k_cache_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t k_top_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER_NULL, y_top, k_top_fields),
};

// ----------------------------------------------------------------------------
// Where a message points: a file (with the text, to find a key's line) or a --set override.

typedef struct src_ctx {
    const char *name;  // file path, or the --set argument
    bool is_set;       // messages read "--set X: ..." instead of "file:line: ..."
    const char *text;  // the document text (for line lookups)
    char set_key[256]; // the key of a --set override
} src_ctx;

// The chain of mapping keys down to a line of a block-style YAML text (keys[0] outermost).
typedef struct yaml_chain {
    char keys[8][128];
    int depth;
} yaml_chain;

// Walks a block-style YAML text line by line, keeping the chain of mapping keys by indentation. A key is the text
// before a ':' at the start of a line, after its indentation: 1 to 127 letters, digits, '_' and '-' when `strict`,
// else characters other than ':', ' ' and '#'. On each key line the keys indented as deep or deeper are dropped, the
// key is appended (up to 8 levels) and visit(line, chain, ctx) is called with the 1-based line. Returns the line of
// the first visit that returns true, or 0.
static int walk_keys(const char *text, bool strict, bool (*visit)(int line, const yaml_chain *ch, void *ctx),
                     void *ctx) {
    if (!text) return 0;
    yaml_chain ch;
    int ind[8], line = 0;
    ch.depth = 0;
    const char *p = text;
    while (*p) {
        line++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        int col = 0;
        while ((size_t)col < len && (p[col] == ' ' || p[col] == '\t'))
            col++;
        const char *s = p + col;
        size_t rest = len - (size_t)col, kl = 0;
        while (kl < rest && kl < 127 &&
               (strict ? s[kl] == '_' || s[kl] == '-' || (s[kl] >= 'a' && s[kl] <= 'z') ||
                             (s[kl] >= 'A' && s[kl] <= 'Z') || (s[kl] >= '0' && s[kl] <= '9')
                       : s[kl] != ':' && s[kl] != ' ' && s[kl] != '#'))
            kl++;
        if (kl && kl < rest && s[kl] == ':') {
            while (ch.depth > 0 && ind[ch.depth - 1] >= col)
                ch.depth--;
            if (ch.depth < 8) {
                memcpy(ch.keys[ch.depth], s, kl);
                ch.keys[ch.depth][kl] = 0;
                ind[ch.depth] = col;
                ch.depth++;
                if (visit(line, &ch, ctx)) return line;
            }
        }
        if (!eol) break;
        p = eol + 1;
    }
    return 0;
}

// The chain joined with dots ("run.shots") into out (cap bytes).
static void chain_path(const yaml_chain *ch, char *out, size_t cap) {
    out[0] = 0;
    for (int i = 0; i < ch->depth; i++) {
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? "." : "", ch->keys[i]);
    }
}

static bool is_dotted_key(int line, const yaml_chain *ch, void *key) {
    (void)line;
    char joined[1024];
    chain_path(ch, joined, sizeof joined);
    return strcmp(joined, (const char *)key) == 0;
}

// The line (1-based) of dotted key `key` in a block-style YAML text, or 0.
static int key_line(const char *text, const char *key) {
    return walk_keys(text, true, is_dotted_key, (void *)key);
}

static void src_error(const src_ctx *c, const char *key, const char *fmt, ...) PAD_PRINTF_LIKE(3, 4);
static void src_error(const src_ctx *c, const char *key, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->is_set) {
        PAD_LOG_ERROR("--set %s: %s%s%s", c->name, key ? key : "", key ? ": " : "", msg);
        return;
    }
    int line = key ? key_line(c->text, key) : 0;
    if (line > 0)
        PAD_LOG_ERROR("%s:%d: %s%s%s", c->name, line, key ? key : "", key ? ": " : "", msg);
    else
        PAD_LOG_ERROR("%s: %s%s%s", c->name, key ? key : "", key ? ": " : "", msg);
}

// ----------------------------------------------------------------------------
// Overlay of a parsed document onto the configuration, with value checks.

static bool parse_choice(const src_ctx *c, const char *key, const char *v, const char *const *names, int n, int *out) {
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return true;
        }
    char list[512] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", names[i]);
    }
    src_error(c, key, "'%s' is not one of %s", v, list);
    return false;
}

// auto | true | false (also yes/no/on/off) -> -1 / 1 / 0
static bool parse_tri(const src_ctx *c, const char *key, const char *v, int *out) {
    static const char *const names[] = {"auto", "true", "false", "yes", "no", "on", "off"};
    static const int vals[] = {-1, 1, 0, 1, 0, 1, 0};
    for (int i = 0; i < 7; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = vals[i];
            return true;
        }
    src_error(c, key, "'%s' is not one of auto, true, false", v);
    return false;
}

// The text s as an integer in [lo, hi] (scalar.h: digits only, no fraction, exponent, suffix or leading zero).
// False with one error naming the key, the value and where it came from.
static bool parse_int(const src_ctx *c, const char *key, const char *s, int lo, int hi, int *out) {
    long long v = 0;
    int r = pad_scalar_int(s, lo, hi, &v);
    if (r == 0)
        src_error(c, key, "'%s' is not an integer", s);
    else if (r < 0)
        src_error(c, key, "%s is out of range [%d, %d]", s, lo, hi);
    else
        *out = (int)v;
    return r > 0;
}

// The text s as a decimal number in [lo, hi]; false with one error otherwise.
static bool parse_flt(const src_ctx *c, const char *key, const char *s, double lo, double hi, double *out) {
    double v = 0;
    if (!pad_scalar_double(s, &v)) {
        src_error(c, key, "'%s' is not a number", s);
        return false;
    }
    if (!(v >= lo && v <= hi)) {
        src_error(c, key, "%s is out of range [%g, %g]", s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

// dst = the integer of s when it is one in [lo, hi]; else false (one error naming key) and dst untouched.
static bool set_int(const src_ctx *c, const char *key, const char *s, int lo, int hi, int *dst) {
    return parse_int(c, key, s, lo, hi, dst);
}

// A list of n distinct integers in [lo, hi], at most PAD_CFG_MAX_LIST of them: copied to dst, *n_dst = n. False
// (one error naming key, dst untouched) for a list too long, an entry that is not such an integer or one listed
// twice.
static bool set_int_list(const src_ctx *c, const char *key, char *const *s, unsigned n, int lo, int hi, int *dst,
                         int *n_dst) {
    if (n > PAD_CFG_MAX_LIST) {
        src_error(c, key, "at most %d entries", PAD_CFG_MAX_LIST);
        return false;
    }
    int v[PAD_CFG_MAX_LIST];
    for (unsigned i = 0; i < n; i++) {
        if (!parse_int(c, key, s[i], lo, hi, &v[i])) return false;
        for (unsigned j = 0; j < i; j++)
            if (v[i] == v[j]) {
                src_error(c, key, "%d listed twice", v[i]);
                return false;
            }
    }
    for (unsigned i = 0; i < n; i++)
        dst[i] = v[i];
    *n_dst = (int)n;
    return true;
}

static bool set_path(const src_ctx *c, const char *key, const char *v, char *dst, size_t cap, bool allow_empty) {
    if (!allow_empty && !v[0]) {
        src_error(c, key, "must not be empty");
        return false;
    }
    if (strlen(v) >= cap) {
        src_error(c, key, "value too long (at most %zu characters)", cap - 1);
        return false;
    }
    snprintf(dst, cap, "%s", v);
    return true;
}

// The one rule for names that become folders under output.dir (dataset.h), for data.classes and data.name.
static bool valid_class_name(const char *s) {
    return pad_dataset_class_name_ok(s);
}

// The model section of a document onto cfg (false after one error naming the key).
static bool overlay_model(pad_run_config *cfg, const y_model *m, const src_ctx *c) {
    int iv = 0;
    if (m->weights && !set_path(c, "model.weights", m->weights, cfg->model.weights, PAD_CFG_PATH_MAX, false))
        return false;
    if (m->vocab && !set_path(c, "model.vocab", m->vocab, cfg->model.vocab, PAD_CFG_PATH_MAX, true)) return false;
    if (m->generate) {
        static const char *const g[] = {"none", "tiny"};
        if (!parse_choice(c, "model.generate", m->generate, g, 2, &iv)) return false;
        COPY(cfg->model.generate, g[iv]);
    }
    if (m->preprocess) {
        static const char *const p[] = {"squash", "openclip", "official", "auto"};
        if (!parse_choice(c, "model.preprocess", m->preprocess, p, 4, &iv)) return false;
        cfg->model.preprocess = iv == 3 ? -1 : iv;
    }
    if (m->taps) {
        if (m->taps_count != 2) {
            src_error(c, "model.taps", "expected two block indices, got %u", m->taps_count);
            return false;
        }
        int taps[2];
        for (int i = 0; i < 2; i++)
            if (!parse_int(c, "model.taps", m->taps[i], 0, 255, &taps[i])) return false;
        cfg->model.taps[0] = taps[0];
        cfg->model.taps[1] = taps[1], cfg->model.taps_auto = false; // given: not scaled by depth
    }
    static const char *const acts[] = {"auto", "gelu", "quick_gelu"}; // auto (-1), then pad_activation order
    if (m->activation && !parse_choice(c, "model.activation", m->activation, acts, 3, &iv)) return false;
    if (m->activation) cfg->model.activation = iv - 1;
    return true;
}

// The data section of a document onto cfg (false after one error naming the key).
static bool overlay_data(pad_run_config *cfg, const y_data *d, const src_ctx *c) {
    int iv = 0;
    if (d->format) {
        static const char *const f[] = {"mvtec", "visa", "mpdd", "loco", "folder", "synth"};
        if (!parse_choice(c, "data.format", d->format, f, 6, &iv)) return false;
        COPY(cfg->data.format, f[iv]);
    }
    if (d->root && !set_path(c, "data.root", d->root, cfg->data.root, PAD_CFG_PATH_MAX, true)) return false;
    if (d->name) {
        if (d->name[0] && !valid_class_name(d->name)) {
            src_error(c, "data.name", "'%s' is not a valid folder name", d->name);
            return false;
        }
        if (!set_path(c, "data.name", d->name, cfg->data.name, PAD_CFG_NAME_MAX, true)) return false;
    }
    if (d->classes) {
        if (d->classes_count > PAD_CFG_MAX_CLASS) {
            src_error(c, "data.classes", "at most %d classes", PAD_CFG_MAX_CLASS);
            return false;
        }
        for (unsigned i = 0; i < d->classes_count; i++) {
            if (!valid_class_name(d->classes[i]) || strlen(d->classes[i]) >= PAD_CFG_NAME_MAX) {
                src_error(c, "data.classes", "'%s' is not a valid class name", d->classes[i]);
                return false;
            }
            for (unsigned j = 0; j < i; j++)
                if (strcmp(d->classes[i], d->classes[j]) == 0) {
                    src_error(c, "data.classes", "'%s' listed twice", d->classes[i]);
                    return false;
                }
        }
        for (unsigned i = 0; i < d->classes_count; i++)
            COPY(cfg->data.classes[i], d->classes[i]);
        cfg->data.n_classes = (int)d->classes_count;
    }
    if (d->max_test && !set_int(c, "data.max_test", d->max_test, 0, 1000000, &cfg->data.max_test)) return false;
    if (d->synth) {
        const y_synth *s = d->synth;
        if (s->classes && !set_int(c, "data.synth.classes", s->classes, 1, 16, &cfg->data.synth.classes)) return false;
        if (s->seed && !set_int(c, "data.synth.seed", s->seed, 0, 2147483647, &cfg->data.synth.seed)) return false;
        if (s->size && !set_int(c, "data.synth.size", s->size, 64, 2048, &cfg->data.synth.size)) return false;
        if (s->train && !set_int(c, "data.synth.train", s->train, 1, 10000, &cfg->data.synth.train)) return false;
        if (s->test_good && !set_int(c, "data.synth.test_good", s->test_good, 0, 10000, &cfg->data.synth.test_good))
            return false;
        if (s->test_bad && !set_int(c, "data.synth.test_bad", s->test_bad, 0, 10000, &cfg->data.synth.test_bad))
            return false;
    }
    return true;
}

// The run section of a document onto cfg (false after one error naming the key).
static bool overlay_run(pad_run_config *cfg, const y_run *r, const src_ctx *c) {
    int iv = 0;
    if (r->protocol) {
        static const char *const p[] = {"clean", "official"};
        if (!parse_choice(c, "run.protocol", r->protocol, p, 2, &iv)) return false;
        cfg->run.protocol = (pad_protocol)iv;
    }
    if (r->shots && !set_int_list(c, "run.shots", r->shots, r->shots_count, 1, PAD_CFG_MAX_SHOTS, cfg->run.shots,
                                  &cfg->run.n_shots))
        return false;
    if (r->seeds &&
        !set_int_list(c, "run.seeds", r->seeds, r->seeds_count, 0, 2147483647, cfg->run.seeds, &cfg->run.n_seeds))
        return false;
    if (r->tasks) {
        int mask = 0;
        for (unsigned i = 0; i < r->tasks_count; i++) {
            static const char *const tn[] = {"cls", "seg"};
            if (!parse_choice(c, "run.tasks", r->tasks[i], tn, 2, &iv)) return false;
            if (mask & (1 << iv)) {
                src_error(c, "run.tasks", "'%s' listed twice", r->tasks[i]);
                return false;
            }
            mask |= 1 << iv;
        }
        cfg->run.tasks = mask;
    }
    if (r->epochs && !set_int(c, "run.epochs", r->epochs, 1, 100000, &cfg->run.epochs)) return false;
    if (r->device) {
        static const char *const d[] = {"auto", "cpu", "cuda"};
        if (!parse_choice(c, "run.device", r->device, d, 3, &iv)) return false;
        cfg->run.device = iv; // PAD_BACKEND_AUTO, CPU, CUDA in this order
    }
    if (r->shot_select) {
        static const char *const s[] = {"random", "sorted-index", "basename", "glob", "auto"};
        if (!parse_choice(c, "run.shot_select", r->shot_select, s, 5, &iv)) return false;
        cfg->run.shot_select = iv == 4 ? -1 : iv;
    }
    if (r->shot_lists && !set_path(c, "run.shot_lists", r->shot_lists, cfg->run.shot_lists, PAD_CFG_PATH_MAX, true))
        return false;
    if (r->prompts && !set_path(c, "run.prompts", r->prompts, cfg->run.prompts, PAD_CFG_PATH_MAX, false)) return false;
    if (r->resolution && !set_int(c, "run.resolution", r->resolution, 8, 4096, &cfg->run.resolution)) return false;
    if (r->batch && !set_int(c, "run.batch", r->batch, 1, 4096, &cfg->run.batch)) return false;
    if (r->tau) {
        static const char *const s[] = {"raw", "exp"};
        if (!parse_choice(c, "run.tau", r->tau, s, 2, &iv)) return false;
        cfg->run.tau_exp = iv == 1;
    }
    if (r->fp16_scores && !parse_tri(c, "run.fp16_scores", r->fp16_scores, &cfg->run.fp16_scores)) return false;
    if (r->test_bgr && !parse_tri(c, "run.test_bgr", r->test_bgr, &cfg->run.test_bgr)) return false;
    if (r->select) {
        static const char *const s[] = {"last", "best", "auto"};
        if (!parse_choice(c, "run.select", r->select, s, 3, &iv)) return false;
        cfg->run.select = iv == 2 ? PAD_SELECT_AUTO : iv;
    }
    if (r->fpr_limit && !parse_flt(c, "run.fpr_limit", r->fpr_limit, 1e-6, 1.0, &cfg->run.fpr_limit)) return false;
    if (r->threads && !set_int(c, "run.threads", r->threads, 0, 4096, &cfg->run.threads)) return false;
    if (r->cohort) {
        if (strcmp(r->cohort, "auto") == 0)
            cfg->run.cohort = -1;
        else if (!set_int(c, "run.cohort", r->cohort, 1, 1024, &cfg->run.cohort))
            return false;
    }
    if (r->cohort_mem && (iv = pad_scalar_bytes(r->cohort_mem, 1LL << 20, 1LL << 50, &cfg->run.cohort_mem)) <= 0) {
        src_error(c, "run.cohort_mem",
                  iv ? "%s is out of range [1MiB, 1024TiB]" : "'%s' is not a size (512MiB, 2GiB, 1.5GiB or bytes)",
                  r->cohort_mem);
        return false;
    }
    if (r->cuda_graphs) {
        static const char *const s[] = {"off", "on", "auto"};
        if (!parse_choice(c, "run.cuda_graphs", r->cuda_graphs, s, 3, &iv)) return false;
        cfg->run.cuda_graphs = iv == 2 ? -1 : iv;
    }
    if (r->fast_math) {
        static const char *const s[] = {"fp32", "tf32", "bf16"};
        if (!parse_choice(c, "run.fast_math", r->fast_math, s, 3, &iv)) return false;
        cfg->run.fast_math = iv; // pad_math_mode order
    }
    if (r->method) {
        if (!parse_choice(c, "run.method", r->method, pad_cfg_method_names, PAD_RUN_N_METHODS, &iv)) return false;
        cfg->run.method = iv; // pad_run_method order
    }
    bool vad = true;
    if (r->use_vad && !pad_scalar_bool(r->use_vad, &vad)) {
        src_error(c, "run.use_vad", "'%s' is not one of true, false", r->use_vad);
        return false;
    }
    if (r->use_vad) cfg->run.no_vad = !vad;
    return true;
}

// The train section of a document onto cfg (false after one error naming the key).
static bool overlay_train(pad_run_config *cfg, const y_train *tr, const src_ctx *c) {
    struct {
        const char *key;
        const char *v;
        float *dst;
        double lo, hi;
    } fl[] = {
        {"train.lr", tr->lr, &cfg->train.lr, 0.0, 100.0},
        {"train.lr_min", tr->lr_min, &cfg->train.lr_min, 0.0, 100.0},
        {"train.momentum", tr->momentum, &cfg->train.momentum, 0.0, 1.0},
        {"train.weight_decay", tr->weight_decay, &cfg->train.weight_decay, 0.0, 10.0},
        {"train.lambda_align", tr->lambda_align, &cfg->train.lambda_align, 0.0, 1e6},
        {"train.margin", tr->margin, &cfg->train.margin, -100.0, 100.0},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
        if (fl[i].v) {
            double v;
            if (!parse_flt(c, fl[i].key, fl[i].v, fl[i].lo, fl[i].hi, &v)) return false;
            *fl[i].dst = (float)v;
        }
    struct {
        const char *key;
        const char *v;
        int *dst;
    } in[] = {
        {"train.n_ctx", tr->n_ctx, &cfg->train.n_ctx},
        {"train.n_ctx_ab", tr->n_ctx_ab, &cfg->train.n_ctx_ab},
        {"train.n_pro_cls", tr->n_pro_cls, &cfg->train.n_pro_cls},
        {"train.n_pro_seg", tr->n_pro_seg, &cfg->train.n_pro_seg},
        {"train.n_pro_ab", tr->n_pro_ab, &cfg->train.n_pro_ab},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        if (in[i].v && !set_int(c, in[i].key, in[i].v, 1, 64, in[i].dst)) return false;
    if (tr->eam) {
        static const char *const s[] = {"token-axis", "per-token"};
        if (!parse_choice(c, "train.eam", tr->eam, s, 2, &cfg->train.eam)) return false;
    }
    if (tr->lap) {
        static const char *const s[] = {"before-name", "after-name"};
        if (!parse_choice(c, "train.lap", tr->lap, s, 2, &cfg->train.lap)) return false;
    }
    const char *sw[2] = {tr->use_map, tr->use_lap}, *names[2] = {"train.use_map", "train.use_lap"};
    bool *no[2] = {&cfg->train.no_map, &cfg->train.no_lap};
    for (int i = 0; i < 2; i++) {
        bool on = true;
        if (sw[i] && !pad_scalar_bool(sw[i], &on)) {
            src_error(c, names[i], "'%s' is not one of true, false", sw[i]);
            return false;
        }
        if (sw[i]) *no[i] = !on;
    }
    return true;
}

// The output section of a document onto cfg (false after one error naming the key).
static bool overlay_output(pad_run_config *cfg, const y_output *o, const src_ctx *c) {
    int iv = 0;
    if (o->dir && !set_path(c, "output.dir", o->dir, cfg->output.dir, PAD_CFG_PATH_MAX, false)) return false;
    if (o->maps) {
        static const char *const s[] = {"none", "grid", "full"};
        if (!parse_choice(c, "output.maps", o->maps, s, 3, &cfg->output.maps)) return false;
    }
    if (o->heatmaps && !set_int(c, "output.heatmaps", o->heatmaps, 0, 100000, &cfg->output.heatmaps)) return false;
    if (o->models && !pad_scalar_bool(o->models, &cfg->output.models)) {
        src_error(c, "output.models", "'%s' is not one of true, false", o->models);
        return false;
    }
    if (o->on_mismatch) {
        static const char *const s[] = {"error", "redo"};
        if (!parse_choice(c, "output.on_mismatch", o->on_mismatch, s, 2, &iv)) return false;
        cfg->output.redo_on_mismatch = iv == 1;
    }
    return true;
}

static bool overlay(pad_run_config *cfg, const y_top *t, const src_ctx *c) {
    if (!t) return true;
    return (!t->model || overlay_model(cfg, t->model, c)) && (!t->data || overlay_data(cfg, t->data, c)) &&
           (!t->run || overlay_run(cfg, t->run, c)) && (!t->train || overlay_train(cfg, t->train, c)) &&
           (!t->output || overlay_output(cfg, t->output, c)) &&
           (!t->cache || !t->cache->dir ||
            set_path(c, "cache.dir", t->cache->dir, cfg->cache.dir, PAD_CFG_PATH_MAX, false));
}

// ----------------------------------------------------------------------------
// Parsing a document

// Levenshtein distance (short strings) for "did you mean".
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

typedef struct unknown_key {
    const char *key;
    int from;
    char *path;
    size_t cap;
} unknown_key;

static bool is_unknown_key(int line, const yaml_chain *ch, void *ctx) {
    unknown_key *u = ctx;
    if (line < u->from || strcmp(ch->keys[ch->depth - 1], u->key) != 0) return false;
    chain_path(ch, u->path, u->cap);
    return true;
}

// For an unknown key `key` found at or after line `from`: its line and dotted path (by indentation).
static int find_unknown_key(const char *text, const char *key, int from, char *path, size_t cap) {
    unknown_key u = {key, from, path, cap};
    return walk_keys(text, false, is_unknown_key, &u);
}

// The closest known key with the same section prefix as `path` ("run.epoch" -> "run.epochs"), or NULL.
static const char *suggest_key(const char *path) {
    const char *best = NULL;
    int bd = 3, n_keys = 0;
    const pad_config_key *keys = pad_config_keys(&n_keys);
    for (int i = 0; i < n_keys; i++) {
        int d = edit_distance(path, keys[i].key);
        if (d < bd) {
            bd = d;
            best = keys[i].key;
        }
    }
    return best;
}

static pad_status parse_text(pad_run_config *cfg, const char *text, size_t n, const src_ctx *c);

// Parses text[0..n) after rewriting its line endings to LF (a CR-only file is read line by line, not as one comment
// line) and refusing a second YAML document (libcyaml would silently read the first only).
static pad_status parse_doc(pad_run_config *cfg, const char *text, size_t n, src_ctx *c) {
    char *norm = malloc(n + 1);
    if (!norm) {
        PAD_LOG_ERROR("%s: out of memory", c->name);
        return PAD_ERR_OOM;
    }
    memcpy(norm, text, n);
    pad_yaml_normalize_eol(norm, &n);
    pad_status st = PAD_ERR_INVALID_ARG;
    int second = pad_yaml_second_doc_line(norm, n);
    if (second && c->is_set) {
        PAD_LOG_ERROR("--set %s: the value must be a single YAML value (no document marker)", c->name);
    } else if (second) {
        PAD_LOG_ERROR("%s:%d: a second YAML document is not allowed (one configuration per file)", c->name, second);
    } else {
        c->text = norm;
        st = parse_text(cfg, norm, n, c);
    }
    free(norm);
    return st;
}

static pad_status parse_text(pad_run_config *cfg, const char *text, size_t n, const src_ctx *c) {
    pad_yaml_log lg;
    memset(&lg, 0, sizeof lg);
    cyaml_config_t ycfg = {
        .log_fn = pad_yaml_log_fn,
        .log_ctx = &lg,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        .flags = CYAML_CFG_NO_ALIAS,
    };
    // libcyaml 1.3 crashes on a document without any node: treat blank/comment-only text as empty.
    if (pad_yaml_blank(text, n)) return PAD_OK;
    y_top *t = NULL;
    cyaml_err_t e = cyaml_load_data((const uint8_t *)text, n, &ycfg, &k_top_schema, (cyaml_data_t **)&t, NULL);
    if (e != CYAML_OK) {
        const char *m = lg.msg[0] ? lg.msg : cyaml_strerror(e);
        if (strncmp(m, "libyaml: ", 9) == 0) m += 9; // a syntax error of libyaml itself: its message alone
        const char *pfx = "Unexpected key: ";
        if (strncmp(m, pfx, strlen(pfx)) == 0) {
            const char *key = m + strlen(pfx);
            char path[512] = "";
            int line = find_unknown_key(text, key, lg.line, path, sizeof path);
            if (!path[0]) snprintf(path, sizeof path, "%s", key);
            const char *sug = suggest_key(path);
            char hint[256] = "";
            if (sug) snprintf(hint, sizeof hint, " (did you mean '%s'?)", sug);
            if (c->is_set)
                PAD_LOG_ERROR("--set %s: unknown key '%s'%s", c->name, c->set_key, hint);
            else if (line > 0)
                PAD_LOG_ERROR("%s:%d: unknown key '%s'%s", c->name, line, path, hint);
            else
                PAD_LOG_ERROR("%s: unknown key '%s'%s", c->name, path, hint);
        } else if (c->is_set) {
            PAD_LOG_ERROR("--set %s: %s", c->name, m);
        } else {
            // the innermost field of the backtrace names the key; its own line beats the mapping's
            if (lg.line > 0)
                PAD_LOG_ERROR("%s:%d: %s%s%s", c->name, lg.line, lg.field[0] ? lg.field : "", lg.field[0] ? ": " : "",
                              m);
            else
                PAD_LOG_ERROR("%s: %s", c->name, m);
        }
        return PAD_ERR_INVALID_ARG;
    }
    bool ok = overlay(cfg, t, c);
    if (t) cyaml_free(&ycfg, &k_top_schema, t, 0);
    return ok ? PAD_OK : PAD_ERR_INVALID_ARG;
}

pad_status pad_run_config_load_text(pad_run_config *cfg, const char *text, const char *name) {
    src_ctx c = {.name = name, .is_set = false, .text = text};
    return parse_doc(cfg, text, strlen(text), &c);
}

pad_status pad_run_config_load(pad_run_config *cfg, const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot open config: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    if (!text) {
        fclose(fp);
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= (1u << 24)) {
                free(text);
                fclose(fp);
                PAD_LOG_ERROR("%s: config file too large", path);
                return PAD_ERR_INVALID_ARG;
            }
            char *t = realloc(text, cap * 2);
            if (!t) {
                free(text);
                fclose(fp);
                PAD_LOG_ERROR("%s: out of memory", path);
                return PAD_ERR_OOM;
            }
            text = t;
            cap *= 2;
        }
        size_t r = fread(text + n, 1, cap - 1 - n, fp);
        n += r;
        if (r == 0) break;
    }
    bool err = ferror(fp) != 0;
    fclose(fp);
    if (err) {
        free(text);
        PAD_LOG_ERROR("%s: read error", path);
        return PAD_ERR_IO;
    }
    text[n] = 0;
    src_ctx c = {.name = path, .is_set = false, .text = text};
    pad_status st = parse_doc(cfg, text, n, &c);
    free(text);
    return st;
}

pad_status pad_run_config_set(pad_run_config *cfg, const char *assignment) {
    src_ctx c = {.name = assignment, .is_set = true, .text = NULL};
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        PAD_LOG_ERROR("--set %s: expected key=value (e.g. --set run.epochs=10)", assignment);
        return PAD_ERR_INVALID_ARG;
    }
    size_t kl = (size_t)(eq - assignment);
    if (kl >= sizeof c.set_key) {
        PAD_LOG_ERROR("--set %s: key too long", assignment);
        return PAD_ERR_INVALID_ARG;
    }
    memcpy(c.set_key, assignment, kl);
    c.set_key[kl] = 0;
    // the key: dot-separated identifiers
    int parts = 1;
    for (size_t i = 0; i < kl; i++) {
        char ch = c.set_key[i];
        if (ch == '.') {
            if (i == 0 || i + 1 == kl || c.set_key[i + 1] == '.') parts = 0;
            if (parts) parts++;
        } else if (!(ch == '_' || ch == '-' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9'))) {
            parts = 0;
        }
        if (!parts) break;
    }
    if (!parts || parts > 6) {
        PAD_LOG_ERROR("--set %s: '%s' is not a dotted key such as run.epochs", assignment, c.set_key);
        return PAD_ERR_INVALID_ARG;
    }
    const char *value = eq + 1;
    if (strchr(value, '\n')) {
        PAD_LOG_ERROR("--set %s: the value must be a single line", assignment);
        return PAD_ERR_INVALID_ARG;
    }
    const pad_config_key *ki = pad_cfg_find_key(c.set_key);
    if (!ki) {
        const char *sug = suggest_key(c.set_key);
        if (sug)
            PAD_LOG_ERROR("--set %s: unknown key '%s' (did you mean '%s'?)", assignment, c.set_key, sug);
        else
            PAD_LOG_ERROR("--set %s: unknown key '%s' (see 'promptad run --keys')", assignment, c.set_key);
        return PAD_ERR_INVALID_ARG;
    }
    // value as it would be written on the line: lists without brackets become a flow sequence
    const char *v = value;
    while (*v == ' ')
        v++;
    if (ki->list && (v[0] == 0 || strcmp(v, "[]") == 0)) {
        if (strcmp(c.set_key, "data.classes") == 0) { // the empty list = every class (the default)
            cfg->data.n_classes = 0;
            return PAD_OK;
        }
        PAD_LOG_ERROR("--set %s: %s: the list must not be empty", assignment, c.set_key);
        return PAD_ERR_INVALID_ARG;
    }
    bool wrap = ki->list && v[0] != '[';
    size_t cap = strlen(assignment) * 2 + 256;
    char *doc = malloc(cap);
    if (!doc) {
        PAD_LOG_ERROR("--set %s: out of memory", assignment);
        return PAD_ERR_OOM;
    }
    size_t n = 0;
    const char *k = c.set_key;
    int depth = 0;
    for (;;) {
        const char *dot = strchr(k, '.');
        size_t l = dot ? (size_t)(dot - k) : strlen(k);
        n += (size_t)snprintf(doc + n, cap - n, "%*s%.*s:", depth * 2, "", (int)l, k);
        if (!dot) break;
        n += (size_t)snprintf(doc + n, cap - n, "\n");
        k = dot + 1;
        depth++;
    }
    n += (size_t)snprintf(doc + n, cap - n, wrap ? " [%s]\n" : " %s\n", value);
    pad_status st = parse_doc(cfg, doc, n, &c);
    free(doc);
    return st;
}

// ----------------------------------------------------------------------------
// Resolution of the "auto" values

pad_status pad_run_config_finalize(pad_run_config *cfg) {
    bool official = cfg->run.protocol == PAD_PROTOCOL_OFFICIAL;
    const char *fmt = cfg->data.format;
    if (cfg->model.preprocess < 0) cfg->model.preprocess = official ? PAD_PREPROCESS_OFFICIAL : PAD_PREPROCESS_SQUASH;
    if (cfg->run.test_bgr < 0) cfg->run.test_bgr = official ? 1 : 0;
    if (cfg->run.fp16_scores < 0) cfg->run.fp16_scores = official ? 1 : 0;
    if (cfg->run.select == PAD_SELECT_AUTO) cfg->run.select = official ? PAD_SELECT_BEST : PAD_SELECT_LAST;
    bool has_lists = strcmp(fmt, "mvtec") == 0 || strcmp(fmt, "visa") == 0;
    if (cfg->run.shot_select < 0) {
        if (official && (has_lists || cfg->run.shot_lists[0])) {
            cfg->run.shot_select = PAD_SHOT_SELECT_SORTED_INDEX;
        } else {
            if (official)
                PAD_LOG_WARN("run.shot_select: the official code has no fixed shot lists for '%s'; using seeded "
                             "random draws",
                             fmt);
            cfg->run.shot_select = PAD_SHOT_SELECT_RANDOM;
        }
    }
    if (cfg->run.shot_select != PAD_SHOT_SELECT_RANDOM && !cfg->run.shot_lists[0]) {
        if (!has_lists) {
            PAD_LOG_ERROR("run.shot_select %s needs run.shot_lists (official lists exist for mvtec and visa only)",
                          pad_shot_select_str((pad_shot_select)cfg->run.shot_select));
            return PAD_ERR_INVALID_ARG;
        }
        snprintf(cfg->run.shot_lists, sizeof cfg->run.shot_lists, "configs/official_shots/%s.yaml", fmt);
    }
    if (cfg->run.shot_select == PAD_SHOT_SELECT_RANDOM) cfg->run.shot_lists[0] = 0;
    if (strcmp(cfg->run.prompts, "auto") == 0) {
        const char *p = "official";
        if (strcmp(fmt, "mvtec") == 0 || strcmp(fmt, "visa") == 0)
            p = official ? "official" : "paper";
        else if (strcmp(fmt, "mpdd") == 0 || strcmp(fmt, "loco") == 0 || strcmp(fmt, "synth") == 0)
            p = fmt;
        else
            p = "official"; // folder: classes absent from the set get the generic states
        COPY(cfg->run.prompts, p);
    }
    if (!cfg->data.root[0]) {
        PAD_LOG_ERROR("data.root is not set (the dataset folder; e.g. --set data.root=/data/mvtec_anomaly_detection)");
        return PAD_ERR_INVALID_ARG;
    }
    if (cfg->model.taps[0] == cfg->model.taps[1])
        PAD_LOG_WARN("model.taps: both memory-bank taps are block %d", cfg->model.taps[0]);
    if (cfg->train.lr_min > cfg->train.lr) {
        PAD_LOG_ERROR("train.lr_min (%g) is larger than train.lr (%g)", cfg->train.lr_min, cfg->train.lr);
        return PAD_ERR_INVALID_ARG;
    }
    if (strcmp(cfg->model.generate, "none") != 0 && !cfg->model.vocab[0] &&
        cfg->run.method == PAD_RUN_METHOD_PROMPTAD) {
        PAD_LOG_ERROR("model.generate %s needs model.vocab (where the byte-level vocabulary is written)",
                      cfg->model.generate);
        return PAD_ERR_INVALID_ARG;
    }
    if (cfg->run.no_vad && cfg->output.models) {
        PAD_LOG_INFO("run.use_vad false: no predict models are written (they score with the memory bank)");
        cfg->output.models = false;
    }
    if (cfg->train.no_map && cfg->train.no_lap) {
        PAD_LOG_ERROR("train.use_map and train.use_lap are both false: PromptAD needs anomaly prompts of one kind");
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}
