/* shots.c - few-shot selection of shots.h: the seeded random draw, the official fixed lists (YAML via libcyaml)
 * and their three interpretations (promptad_spec.md §6.4; upstream datasets/{mvtec,visa}.py index a glob list). */
#include "shots.h"

#include "log.h"
#include "prng.h"
#include "yaml_log.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Mode names

static const char *const k_mode_names[] = {"random", "sorted-index", "basename", "glob"};
#define N_MODES 4

pad_status pad_shot_select_parse(const char *s, pad_shot_select *out) {
    int i;
    PAD_TRY(pad_enum_parse(k_mode_names, N_MODES, "shot selection", s, &i));
    *out = (pad_shot_select)i;
    return PAD_OK;
}

const char *pad_shot_select_str(pad_shot_select m) {
    if ((int)m >= 0 && (int)m < N_MODES) return k_mode_names[m];
    return "?";
}

// ----------------------------------------------------------------------------
// YAML schema of the official lists

#define MAX_K 8

typedef struct yaml_class {
    char *name;
    char **k1, **k2, **k3, **k4, **k5, **k6, **k7, **k8;
    unsigned k1_count, k2_count, k3_count, k4_count, k5_count, k6_count, k7_count, k8_count;
} yaml_class;

typedef struct yaml_lists {
    char *dataset;
    yaml_class *classes;
    unsigned classes_count;
} yaml_lists;

static const cyaml_schema_value_t k_entry_schema = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, 255),
};

#define KFIELD(n)                                                                                                      \
    CYAML_FIELD_SEQUENCE("k" #n, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL | CYAML_FLAG_FLOW, yaml_class, k##n,         \
                         &k_entry_schema, 0, 64)

static const cyaml_schema_field_t k_class_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, yaml_class, name, 1, 255),
    KFIELD(1),
    KFIELD(2),
    KFIELD(3),
    KFIELD(4),
    KFIELD(5),
    KFIELD(6),
    KFIELD(7),
    KFIELD(8),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t k_class_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, yaml_class, k_class_fields),
};

static const cyaml_schema_field_t k_top_fields[] = {
    CYAML_FIELD_STRING_PTR("dataset", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, yaml_lists, dataset, 0, 255),
    CYAML_FIELD_SEQUENCE("classes", CYAML_FLAG_POINTER, yaml_lists, classes, &k_class_schema, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t k_top_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, yaml_lists, k_top_fields),
};

// libcyaml places an unexpected key at the start of its mapping; find the key's own line (at or after that line).
static void locate_key(const char *path, pad_yaml_log *lg) {
    const char *pfx = "Unexpected key: ";
    if (strncmp(lg->msg, pfx, strlen(pfx)) != 0) return;
    const char *key = lg->msg + strlen(pfx);
    size_t kl = strlen(key);
    FILE *fp = fopen(path, "rb");
    if (!fp) return;
    char line[1024];
    int no = 0;
    while (fgets(line, sizeof line, fp)) {
        no++;
        if (no < lg->line) continue;
        const char *p = line;
        while (*p == ' ' || *p == '-' || *p == '\t')
            p++;
        if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
            lg->line = no;
            lg->col = (int)(p - line) + 1;
            break;
        }
    }
    fclose(fp);
}

struct pad_shot_lists {
    char *path;
    cyaml_config_t cfg;
    yaml_lists *data;
};

static void class_list(const yaml_class *c, int k, char ***v, unsigned *n) {
    switch (k) {
#define KCASE(i)                                                                                                       \
    case i:                                                                                                            \
        *v = c->k##i;                                                                                                  \
        *n = c->k##i##_count;                                                                                          \
        return;
        KCASE(1)
        KCASE(2)
        KCASE(3)
        KCASE(4)
        KCASE(5)
        KCASE(6)
        KCASE(7)
        KCASE(8)
#undef KCASE
    default:
        *v = NULL;
        *n = 0;
    }
}

void pad_shot_lists_free(pad_shot_lists *l) {
    if (!l) return;
    if (l->data) cyaml_free(&l->cfg, &k_top_schema, l->data, 0);
    free(l->path);
    free(l);
}

const char *pad_shot_lists_path(const pad_shot_lists *l) {
    return l->path;
}

pad_status pad_shot_lists_load(pad_shot_lists **out, const char *path) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot open shot list: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    fclose(fp);
    pad_shot_lists *l = calloc(1, sizeof *l);
    size_t pl = strlen(path) + 1;
    char *pcopy = malloc(pl);
    if (!l || !pcopy) {
        free(l);
        free(pcopy);
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    memcpy(pcopy, path, pl);
    l->path = pcopy;
    pad_yaml_log lg = {{0}, 0, 0, {0}};
    l->cfg = (cyaml_config_t){
        .log_fn = pad_yaml_log_fn,
        .log_ctx = &lg,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        .flags = CYAML_CFG_NO_ALIAS,
    };
    cyaml_err_t e = cyaml_load_file(path, &l->cfg, &k_top_schema, (cyaml_data_t **)&l->data, NULL);
    l->cfg.log_ctx = NULL;
    l->cfg.log_fn = NULL;
    if (e != CYAML_OK || !l->data) {
        locate_key(path, &lg);
        const char *m = lg.msg[0] ? lg.msg : (e != CYAML_OK ? cyaml_strerror(e) : "empty document");
        if (lg.line > 0)
            PAD_LOG_ERROR("%s:%d:%d: %s", path, lg.line, lg.col, m);
        else
            PAD_LOG_ERROR("%s: %s", path, m);
        pad_shot_lists_free(l);
        return PAD_ERR_FORMAT;
    }
    // validation: kN lists have N non-empty entries; class names unique
    for (unsigned c = 0; c < l->data->classes_count; c++) {
        const yaml_class *yc = &l->data->classes[c];
        for (unsigned d = 0; d < c; d++)
            if (strcmp(l->data->classes[d].name, yc->name) == 0) {
                PAD_LOG_ERROR("%s: class '%s' listed twice", path, yc->name);
                pad_shot_lists_free(l);
                return PAD_ERR_FORMAT;
            }
        for (int k = 1; k <= MAX_K; k++) {
            char **v;
            unsigned n;
            class_list(yc, k, &v, &n);
            if (!v) continue;
            if (n != (unsigned)k) {
                PAD_LOG_ERROR("%s: class '%s': k%d lists %u entries (expected %d)", path, yc->name, k, n, k);
                pad_shot_lists_free(l);
                return PAD_ERR_FORMAT;
            }
            for (unsigned i = 0; i < n; i++)
                if (!v[i][0]) {
                    PAD_LOG_ERROR("%s: class '%s': k%d entry %u is empty", path, yc->name, k, i + 1);
                    pad_shot_lists_free(l);
                    return PAD_ERR_FORMAT;
                }
        }
    }
    *out = l;
    return PAD_OK;
}

pad_status pad_shot_lists_get(const pad_shot_lists *l, const char *class_name, int k, const char *const **entries) {
    *entries = NULL;
    for (unsigned c = 0; c < l->data->classes_count; c++) {
        const yaml_class *yc = &l->data->classes[c];
        if (strcmp(yc->name, class_name) != 0) continue;
        char **v = NULL;
        unsigned n = 0;
        if (k >= 1 && k <= MAX_K) class_list(yc, k, &v, &n);
        if (!v) {
            PAD_LOG_ERROR("%s: class '%s' has no list for k=%d", l->path, class_name, k);
            return PAD_ERR_INVALID_ARG;
        }
        *entries = (const char *const *)v;
        return PAD_OK;
    }
    PAD_LOG_ERROR("%s: no shot list for class '%s'", l->path, class_name);
    return PAD_ERR_INVALID_ARG;
}

// ----------------------------------------------------------------------------
// Selection

pad_status pad_shots_draw(const char *class_name, int n_train, int k, uint64_t seed, int *index_out) {
    if (k < 1 || k > n_train) {
        PAD_LOG_ERROR("class '%s': cannot draw %d shots from %d train images", class_name, k, n_train);
        return PAD_ERR_INVALID_ARG;
    }
    int *perm = malloc((size_t)n_train * sizeof *perm);
    if (!perm) {
        PAD_LOG_ERROR("class '%s': out of memory", class_name);
        return PAD_ERR_OOM;
    }
    for (int i = 0; i < n_train; i++)
        perm[i] = i;
    uint64_t state = pad_prng_hash_str(class_name) ^ (seed * PAD_PRNG_GOLDEN);
    for (int i = 0; i < k; i++) {
        int j = i + (int)pad_prng_below(&state, (uint64_t)(n_train - i));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        index_out[i] = perm[i];
    }
    free(perm);
    return PAD_OK;
}

// Parses a non-negative decimal integer entry ("029" -> 29). False on anything else.
static bool parse_index(const char *s, long *out) {
    if (!s[0]) return false;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        if (v > 100000000L) return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

static const char *file_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void pad_shots_free(pad_shots *s) {
    if (!s) return;
    if (s->paths)
        for (int i = 0; i < s->k; i++)
            free(s->paths[i]);
    free(s->paths);
    free(s->index);
    memset(s, 0, sizeof *s);
}

// Parent folder of the train files for messages ("<dir>/train/good").
static void train_folder(const pad_class_data *cls, char *buf, size_t cap) {
    const char *p = cls->train[0];
    int dl = (int)(file_name(p) - p);
    if (dl > 0) dl--;
    snprintf(buf, cap, "%.*s", dl, p);
}

pad_status pad_shots_select(const pad_class_data *cls, int k, pad_shot_select mode, uint64_t seed,
                            const pad_shot_lists *lists, pad_shots *out) {
    memset(out, 0, sizeof *out);
    if (k < 1 || k > cls->n_train) {
        PAD_LOG_ERROR("class '%s': cannot select %d shots from %d train images", cls->name, k, cls->n_train);
        return PAD_ERR_INVALID_ARG;
    }
    out->mode = mode;
    out->k = k;
    out->index = malloc((size_t)k * sizeof *out->index);
    out->paths = calloc((size_t)k, sizeof *out->paths);
    if (!out->index || !out->paths) {
        pad_shots_free(out);
        PAD_LOG_ERROR("class '%s': out of memory", cls->name);
        return PAD_ERR_OOM;
    }
    pad_status st = PAD_OK;
    char tdir[1024];
    train_folder(cls, tdir, sizeof tdir);
    if (mode == PAD_SHOT_SELECT_RANDOM) {
        st = pad_shots_draw(cls->name, cls->n_train, k, seed, out->index);
    } else if ((int)mode < 0 || (int)mode >= N_MODES) {
        PAD_LOG_ERROR("class '%s': unknown shot selection mode %d", cls->name, (int)mode);
        st = PAD_ERR_INVALID_ARG;
    } else if (!lists) {
        PAD_LOG_ERROR("class '%s': shot selection '%s' needs an official shot list file", cls->name,
                      pad_shot_select_str(mode));
        st = PAD_ERR_INVALID_ARG;
    } else {
        const char *const *entries = NULL;
        st = pad_shot_lists_get(lists, cls->name, k, &entries);
        for (int i = 0; i < k && st == PAD_OK; i++) {
            const char *e = entries[i];
            if (mode == PAD_SHOT_SELECT_BASENAME) {
                int found = -1;
                size_t el = strlen(e);
                for (int t = 0; t < cls->n_train && found < 0; t++) {
                    const char *f = file_name(cls->train[t]);
                    const char *dot = strrchr(f, '.');
                    size_t sl = (dot && dot != f) ? (size_t)(dot - f) : strlen(f);
                    if (sl == el && strncmp(f, e, el) == 0) found = t;
                }
                if (found < 0) {
                    PAD_LOG_ERROR("%s: class '%s' k=%d: no train image named '%s.<ext>' in %s", lists->path, cls->name,
                                  k, e, tdir);
                    st = PAD_ERR_INVALID_ARG;
                    break;
                }
                out->index[i] = found;
                continue;
            }
            long pos;
            if (!parse_index(e, &pos)) {
                PAD_LOG_ERROR("%s: class '%s' k=%d: entry '%s' is not a non-negative integer (needed by '%s')",
                              lists->path, cls->name, k, e, pad_shot_select_str(mode));
                st = PAD_ERR_INVALID_ARG;
                break;
            }
            if (pos >= cls->n_train) {
                PAD_LOG_ERROR("%s: class '%s' k=%d: entry '%s' is out of range: %s holds %d train images", lists->path,
                              cls->name, k, e, tdir, cls->n_train);
                st = PAD_ERR_INVALID_ARG;
                break;
            }
            out->index[i] = mode == PAD_SHOT_SELECT_GLOB ? cls->train_dir_order[pos] : (int)pos;
        }
    }
    for (int i = 0; i < k && st == PAD_OK; i++)
        for (int j = 0; j < i; j++)
            if (out->index[i] == out->index[j]) {
                PAD_LOG_ERROR("class '%s': shot %s chosen twice", cls->name, cls->train[out->index[i]]);
                st = PAD_ERR_INVALID_ARG;
                break;
            }
    for (int i = 0; i < k && st == PAD_OK; i++) {
        size_t n = strlen(cls->train[out->index[i]]) + 1;
        out->paths[i] = malloc(n);
        if (!out->paths[i]) {
            PAD_LOG_ERROR("class '%s': out of memory", cls->name);
            st = PAD_ERR_OOM;
            break;
        }
        memcpy(out->paths[i], cls->train[out->index[i]], n);
    }
    if (st != PAD_OK) pad_shots_free(out);
    return st;
}
