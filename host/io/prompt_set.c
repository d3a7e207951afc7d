/* prompt_set.c - prompt-set YAML files (prompt_set.h) parsed with libcyaml into a schema-checked structure, then
 * validated (one "{}" per state, unique keys) and flattened into per-class state lists (generic + own). */
#include "prompt_set.h"

#include "log.h"
#include "yaml_log.h"

#include <cyaml/cyaml.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PAD_CONFIG_DIR
#define PAD_CONFIG_DIR ""
#endif

// ----------------------------------------------------------------------------
// YAML schema

typedef struct yaml_class {
    char *key;
    char *name; // optional
    char **states;
    unsigned states_count;
} yaml_class;

typedef struct yaml_set {
    char *name;
    char *description; // optional
    char **generic;
    unsigned generic_count;
    yaml_class *classes;
    unsigned classes_count;
} yaml_set;

static const cyaml_schema_value_t k_string_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t k_class_fields[] = {
    CYAML_FIELD_STRING_PTR("key", CYAML_FLAG_POINTER, yaml_class, key, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, yaml_class, name, 1, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("states", CYAML_FLAG_POINTER, yaml_class, states, &k_string_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t k_class_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, yaml_class, k_class_fields),
};

static const cyaml_schema_field_t k_set_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, yaml_set, name, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("description", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, yaml_set, description, 0,
                           CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("generic", CYAML_FLAG_POINTER, yaml_set, generic, &k_string_entry, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("classes", CYAML_FLAG_POINTER, yaml_set, classes, &k_class_entry, 1, CYAML_UNLIMITED),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t k_set_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, yaml_set, k_set_fields),
};

// libcyaml logs in pieces; collect its error lines into one buffer and report them with the file name.
typedef struct yaml_log {
    char text[1024];
} yaml_log;

static void yaml_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args) {
    (void)level;
    yaml_log *lg = (yaml_log *)ctx;
    size_t n = strlen(lg->text);
    if (n + 2 >= sizeof lg->text) return;
    vsnprintf(lg->text + n, sizeof lg->text - n, fmt, args);
    for (char *p = lg->text + n; *p; p++) // one line: newlines become "; "
        if (*p == '\n') *p = ' ';
}

// ----------------------------------------------------------------------------
// the set

struct pad_prompt_set {
    char *path;
    yaml_set *y;
    cyaml_config_t cfg;
    const char **all_states; // every class's (generic + own) list, back to back
    int *first;              // (classes_count) offset of a class's list in all_states
};

void pad_prompt_set_free(pad_prompt_set *s) {
    if (!s) return;
    if (s->y) cyaml_free(&s->cfg, &k_set_schema, s->y, 0);
    free(s->all_states);
    free(s->first);
    free(s->path);
    free(s);
}

// A state must contain "{}" exactly once and no other brace.
static bool state_ok(const char *st) {
    const char *p = strstr(st, "{}");
    if (!p) return false;
    for (const char *q = st; *q; q++)
        if ((*q == '{' || *q == '}') && q != p && q != p + 1) return false;
    return true;
}

// Logs only when !quiet (a neighbour file probed for the unknown-class message must not add noise).
#define LOAD_ERR(...)                                                                                                  \
    do {                                                                                                               \
        if (!quiet) PAD_LOG_ERROR(__VA_ARGS__);                                                                        \
    } while (0)

// Reads the whole file (at most PAD_PROMPT_SET_MAX_BYTES) into a NUL-terminated malloc'd buffer.
static pad_status read_text(const char *path, bool quiet, char **text, size_t *n) {
    *text = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        LOAD_ERR("%s: cannot open the prompt set: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    char *buf = (char *)malloc(PAD_PROMPT_SET_MAX_BYTES + 2);
    if (!buf) {
        fclose(fp);
        return PAD_ERR_OOM;
    }
    size_t got = fread(buf, 1, PAD_PROMPT_SET_MAX_BYTES + 1, fp);
    bool bad = ferror(fp) != 0;
    fclose(fp);
    if (bad || got > PAD_PROMPT_SET_MAX_BYTES) {
        if (bad)
            LOAD_ERR("%s: cannot read the prompt set", path);
        else
            LOAD_ERR("%s: invalid prompt set: larger than %d bytes", path, PAD_PROMPT_SET_MAX_BYTES);
        free(buf);
        return bad ? PAD_ERR_IO : PAD_ERR_FORMAT;
    }
    buf[got] = 0;
    *text = buf;
    *n = got;
    return PAD_OK;
}

// A list of states: at most PAD_PROMPT_SET_MAX_STATES, each at most PAD_PROMPT_SET_MAX_STATE_LEN bytes.
static bool states_within_limits(char *const *st, unsigned n, const char *path, const char *what, bool quiet) {
    if (n > PAD_PROMPT_SET_MAX_STATES) {
        LOAD_ERR("%s: %s: %u states (at most %d)", path, what, n, PAD_PROMPT_SET_MAX_STATES);
        return false;
    }
    for (unsigned i = 0; i < n; i++)
        if (strlen(st[i]) > PAD_PROMPT_SET_MAX_STATE_LEN) {
            LOAD_ERR("%s: %s: state %u is %zu bytes long (at most %d)", path, what, i + 1, strlen(st[i]),
                     PAD_PROMPT_SET_MAX_STATE_LEN);
            return false;
        }
    return true;
}

// The documented bounds of prompt_set.h on the number of classes and states and on their lengths.
static bool within_limits(const yaml_set *y, const char *path, bool quiet) {
    if (y->classes_count > PAD_PROMPT_SET_MAX_CLASSES) {
        LOAD_ERR("%s: %u classes (at most %d)", path, y->classes_count, PAD_PROMPT_SET_MAX_CLASSES);
        return false;
    }
    if (strlen(y->name) > PAD_PROMPT_SET_MAX_NAME) {
        LOAD_ERR("%s: the set's name is longer than %d bytes", path, PAD_PROMPT_SET_MAX_NAME);
        return false;
    }
    if (!states_within_limits(y->generic, y->generic_count, path, "generic", quiet)) return false;
    for (unsigned c = 0; c < y->classes_count; c++) {
        const yaml_class *yc = &y->classes[c];
        if (strlen(yc->key) > PAD_PROMPT_SET_MAX_NAME || (yc->name && strlen(yc->name) > PAD_PROMPT_SET_MAX_NAME)) {
            LOAD_ERR("%s: class %u: key or name longer than %d bytes", path, c + 1, PAD_PROMPT_SET_MAX_NAME);
            return false;
        }
        char what[PAD_PROMPT_SET_MAX_NAME + 16];
        snprintf(what, sizeof what, "class '%s'", yc->key);
        if (!states_within_limits(yc->states, yc->states_count, path, what, quiet)) return false;
    }
    return true;
}

static pad_status load_impl(pad_prompt_set **out, const char *path, bool quiet) {
    *out = NULL;
    pad_prompt_set *s = (pad_prompt_set *)calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return PAD_ERR_OOM;
    }
    char *text = NULL;
    size_t n = 0;
    pad_status st = read_text(path, quiet, &text, &n);
    if (st != PAD_OK) {
        pad_prompt_set_free(s);
        return st;
    }
    pad_yaml_normalize_eol(text, &n);
    int second = pad_yaml_second_doc_line(text, n);
    if (pad_yaml_blank(text, n) || second) {
        if (second)
            LOAD_ERR("%s:%d: invalid prompt set: a second YAML document (one set per file)", path, second);
        else
            LOAD_ERR("%s: invalid prompt set: the file is empty (only blanks or comments)", path);
        free(text);
        pad_prompt_set_free(s);
        return PAD_ERR_FORMAT;
    }
    yaml_log lg = {{0}};
    s->cfg = (cyaml_config_t){
        .log_fn = yaml_log_fn,
        .log_ctx = &lg,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        .flags = CYAML_CFG_NO_ALIAS, // aliases would let a small file expand without bound
    };
    cyaml_err_t err = cyaml_load_data((const uint8_t *)text, n, &s->cfg, &k_set_schema, (cyaml_data_t **)&s->y, NULL);
    free(text);
    s->cfg.log_ctx = NULL;
    s->cfg.log_fn = NULL;
    if (err != CYAML_OK || !s->y) {
        if (err == CYAML_OK)
            LOAD_ERR("%s: invalid prompt set: the document is empty", path);
        else
            LOAD_ERR("%s: invalid prompt set: %s%s%s", path, cyaml_strerror(err), lg.text[0] ? ": " : "", lg.text);
        if (err != CYAML_OK) s->y = NULL;
        pad_prompt_set_free(s);
        return PAD_ERR_FORMAT;
    }
    if (!within_limits(s->y, path, quiet)) {
        pad_prompt_set_free(s);
        return PAD_ERR_FORMAT;
    }
    const yaml_set *y = s->y;
    for (unsigned i = 0; i < y->generic_count; i++)
        if (!state_ok(y->generic[i])) {
            LOAD_ERR("%s: generic state %u \"%s\" must contain \"{}\" exactly once", path, i + 1, y->generic[i]);
            pad_prompt_set_free(s);
            return PAD_ERR_FORMAT;
        }
    size_t total = 0;
    for (unsigned c = 0; c < y->classes_count; c++) {
        const yaml_class *yc = &y->classes[c];
        for (unsigned j = 0; j < c; j++)
            if (strcmp(y->classes[j].key, yc->key) == 0) {
                LOAD_ERR("%s: class '%s' is listed twice", path, yc->key);
                pad_prompt_set_free(s);
                return PAD_ERR_FORMAT;
            }
        for (unsigned i = 0; i < yc->states_count; i++)
            if (!state_ok(yc->states[i])) {
                LOAD_ERR("%s: class '%s': state %u \"%s\" must contain \"{}\" exactly once", path, yc->key, i + 1,
                         yc->states[i]);
                pad_prompt_set_free(s);
                return PAD_ERR_FORMAT;
            }
        if (y->generic_count + yc->states_count == 0) {
            LOAD_ERR("%s: class '%s' has no anomaly state (and the set no generic state)", path, yc->key);
            pad_prompt_set_free(s);
            return PAD_ERR_FORMAT;
        }
        total += y->generic_count + yc->states_count;
    }
    s->all_states = (const char **)malloc((total ? total : 1) * sizeof *s->all_states);
    s->first = (int *)malloc(y->classes_count * sizeof *s->first);
    if (!s->all_states || !s->first) {
        pad_prompt_set_free(s);
        return PAD_ERR_OOM;
    }
    size_t k = 0;
    for (unsigned c = 0; c < y->classes_count; c++) {
        s->first[c] = (int)k;
        for (unsigned i = 0; i < y->generic_count; i++)
            s->all_states[k++] = y->generic[i];
        for (unsigned i = 0; i < y->classes[c].states_count; i++)
            s->all_states[k++] = y->classes[c].states[i];
    }
    *out = s;
    return PAD_OK;
}

#undef LOAD_ERR

pad_status pad_prompt_set_load(pad_prompt_set **out, const char *path) {
    return load_impl(out, path, false);
}

const char *pad_prompt_set_name(const pad_prompt_set *s) {
    return s->y->name;
}

const char *pad_prompt_set_path(const pad_prompt_set *s) {
    return s->path;
}

int pad_prompt_set_n_classes(const pad_prompt_set *s) {
    return (int)s->y->classes_count;
}

pad_prompt_class pad_prompt_set_class_at(const pad_prompt_set *s, int i) {
    const yaml_class *yc = &s->y->classes[i];
    pad_prompt_class c = {yc->key, yc->name ? yc->name : yc->key, s->all_states + s->first[i],
                          (int)(s->y->generic_count + yc->states_count)};
    return c;
}

// ----------------------------------------------------------------------------
// lookup and search

static bool is_path(const char *s) {
    size_t n = strlen(s);
    return strchr(s, '/') || (n > 5 && strcmp(s + n - 5, ".yaml") == 0) || (n > 4 && strcmp(s + n - 4, ".yml") == 0);
}

// The folders searched for <name>.yaml, in order (see pad_prompt_set_open). Returns the number written.
static int search_dirs(char dirs[4][PATH_MAX]) {
    int n = 0;
    const char *env = getenv("PROMPTAD_PROMPTS_DIR");
    if (env && env[0]) snprintf(dirs[n++], PATH_MAX, "%s", env);
    snprintf(dirs[n++], PATH_MAX, "configs/prompts");
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(dirs[n++], PATH_MAX, "%.*s/../configs/prompts", PATH_MAX - 32, exe);
        }
    }
    if (PAD_CONFIG_DIR[0]) snprintf(dirs[n++], PATH_MAX, "%s/prompts", PAD_CONFIG_DIR);
    return n;
}

// Appends the names of the *.yaml files of `dir` to buf (", "-separated). Returns the number found.
static int list_sets(const char *dir, char *buf, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".yaml") == 0) {
            size_t used = strlen(buf);
            snprintf(buf + used, cap - used, "%s%.*s", n ? ", " : "", (int)(len - 5), e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

pad_status pad_prompt_set_open(pad_prompt_set **out, const char *name_or_path) {
    *out = NULL;
    if (is_path(name_or_path)) return pad_prompt_set_load(out, name_or_path);
    char dirs[4][PATH_MAX], path[PATH_MAX + 64];
    int nd = search_dirs(dirs);
    for (int i = 0; i < nd; i++) {
        snprintf(path, sizeof path, "%.*s/%.*s.yaml", 2048, dirs[i], 1024, name_or_path);
        if (access(path, R_OK) == 0) return pad_prompt_set_load(out, path);
    }
    char where[2048] = "", sets[1024] = "";
    for (int i = 0; i < nd; i++) {
        size_t used = strlen(where);
        snprintf(where + used, sizeof where - used, "%s%s", i ? ", " : "", dirs[i]);
        if (!sets[0]) list_sets(dirs[i], sets, sizeof sets);
    }
    PAD_LOG_ERROR("unknown prompt set '%s' (looked for %s.yaml in %s; sets found: %s)", name_or_path, name_or_path,
                  where, sets[0] ? sets : "none");
    return PAD_ERR_INVALID_ARG;
}

// Names of the other sets beside s's file that contain class `key` (for the unknown-class message).
static void sets_with_class(const pad_prompt_set *s, const char *key, char *buf, size_t cap) {
    buf[0] = '\0';
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", s->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        char p[PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        pad_prompt_set *o = NULL;
        if (load_impl(&o, p, true) != PAD_OK) continue;
        if (strcmp(o->y->name, s->y->name) != 0)
            for (unsigned c = 0; c < o->y->classes_count; c++)
                if (strcmp(o->y->classes[c].key, key) == 0) {
                    size_t used = strlen(buf);
                    snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", o->y->name);
                    break;
                }
        pad_prompt_set_free(o);
    }
    closedir(d);
}

pad_status pad_prompt_set_class(const pad_prompt_set *s, const char *key, pad_prompt_class *out) {
    for (unsigned c = 0; c < s->y->classes_count; c++)
        if (strcmp(s->y->classes[c].key, key) == 0) {
            *out = pad_prompt_set_class_at(s, (int)c);
            return PAD_OK;
        }
    char list[4096] = "", others[512];
    for (unsigned c = 0; c < s->y->classes_count; c++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", c ? ", " : "", s->y->classes[c].key);
    }
    sets_with_class(s, key, others, sizeof others);
    if (others[0])
        PAD_LOG_ERROR("class '%s' is not in prompt set '%s' (%s; its classes: %s); prompt sets with this class: %s",
                      key, s->y->name, s->path, list, others);
    else
        PAD_LOG_ERROR("class '%s' is not in prompt set '%s' (%s; its classes: %s)", key, s->y->name, s->path, list);
    return PAD_ERR_INVALID_ARG;
}

bool pad_prompt_format_state(char *buf, size_t cap, const char *state, const char *name) {
    const char *p = strstr(state, "{}");
    if (!p) return (size_t)snprintf(buf, cap, "%s", state) < cap;
    int n = snprintf(buf, cap, "%.*s%s%s", (int)(p - state), state, name, p + 2);
    return n >= 0 && (size_t)n < cap;
}
