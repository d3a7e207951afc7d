/* dataset.c - dataset listings for dataset.h: the mvtec, mpdd, loco, visa (csv and reorganised) and folder
 * layouts. Mirrors the path conventions of the official loaders (datasets/mvtec.py, datasets/visa.py,
 * datasets/prepare_visa_public.py; docs/protocols.md#datasets) with sorted listings instead of glob order. */
#include "dataset_internal.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// Format names and official classes

static const char *const k_mvtec_classes[] = {"carpet", "grid",  "leather",    "tile",       "wood",
                                              "bottle", "cable", "capsule",    "hazelnut",   "metal_nut",
                                              "pill",   "screw", "toothbrush", "transistor", "zipper"};
static const char *const k_visa_classes[] = {"candle",    "capsules", "cashew", "chewinggum", "fryum", "macaroni1",
                                             "macaroni2", "pcb1",     "pcb2",   "pcb3",       "pcb4",  "pipe_fryum"};
static const char *const k_mpdd_classes[] = {"bracket_black", "bracket_brown", "bracket_white",
                                             "connector",     "metal_plate",   "tubes"};
static const char *const k_loco_classes[] = {"breakfast_box", "juice_bottle", "pushpins", "screw_bag",
                                             "splicing_connectors"};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const k_format_names[] = {"mvtec", "visa", "mpdd", "loco", "folder"};

pad_status pad_dataset_format_parse(const char *s, pad_dataset_format *out) {
    for (int i = 0; i < N_OF(k_format_names); i++)
        if (s && strcmp(s, k_format_names[i]) == 0) {
            *out = (pad_dataset_format)i;
            return PAD_OK;
        }
    PAD_LOG_ERROR("unknown dataset format '%s' (expected mvtec, visa, mpdd, loco or folder)", s ? s : "(null)");
    return PAD_ERR_INVALID_ARG;
}

const char *pad_dataset_format_str(pad_dataset_format f) {
    if ((int)f >= 0 && (int)f < N_OF(k_format_names)) return k_format_names[f];
    return "?";
}

const char *const *pad_dataset_official_classes(pad_dataset_format f, int *n) {
    switch (f) {
    case PAD_DATASET_FORMAT_MVTEC:
        *n = N_OF(k_mvtec_classes);
        return k_mvtec_classes;
    case PAD_DATASET_FORMAT_VISA:
        *n = N_OF(k_visa_classes);
        return k_visa_classes;
    case PAD_DATASET_FORMAT_MPDD:
        *n = N_OF(k_mpdd_classes);
        return k_mpdd_classes;
    case PAD_DATASET_FORMAT_LOCO:
        *n = N_OF(k_loco_classes);
        return k_loco_classes;
    case PAD_DATASET_FORMAT_FOLDER:
        break;
    }
    *n = 0;
    return NULL;
}

const char *pad_anomaly_kind_str(pad_anomaly_kind k) {
    switch (k) {
    case PAD_ANOMALY_KIND_NONE:
        return "none";
    case PAD_ANOMALY_KIND_DEFECT:
        return "defect";
    case PAD_ANOMALY_KIND_LOGICAL:
        return "logical";
    case PAD_ANOMALY_KIND_STRUCTURAL:
        return "structural";
    }
    return "?";
}

void pad_dataset_free(pad_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n_rows; i++) {
        free(ds->rows[i].object);
        free(ds->rows[i].image);
        free(ds->rows[i].mask);
    }
    free(ds->rows);
    strlist_free(&ds->classes);
    free(ds->root);
    free(ds->base);
    free(ds->csv_path);
    free(ds);
}

pad_dataset_format pad_dataset_get_format(const pad_dataset *ds) {
    return ds->format;
}

const char *pad_dataset_root(const pad_dataset *ds) {
    return ds->root;
}

const char *pad_dataset_layout(const pad_dataset *ds) {
    return ds->layout;
}

int pad_dataset_n_classes(const pad_dataset *ds) {
    return ds->classes.n;
}

const char *pad_dataset_class_name(const pad_dataset *ds, int i) {
    if (i < 0 || i >= ds->classes.n) return NULL;
    return ds->classes.v[i];
}

int pad_dataset_find_class(const pad_dataset *ds, const char *name) {
    for (int i = 0; i < ds->classes.n; i++)
        if (strcmp(ds->classes.v[i], name) == 0) return i;
    return -1;
}

bool pad_dataset_class_name_ok(const char *s) {
    if (!s || !s[0] || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) >= PAD_DATASET_NAME_MAX) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '/' || *p == '\\' || *p < 32 || *p == 127) return false;
    return true;
}

static bool name_in(const char *name, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return true;
    return false;
}

// ----------------------------------------------------------------------------
// VisA split_csv/1cls.csv

// Splits a csv line in place on ',' (no quoting: VisA paths have no commas); trims blanks and '\r'.
static int split_csv_line(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r'))
            p[--len] = 0;
        if (n < max) fields[n] = p;
        n++;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

static pad_status read_visa_csv(pad_dataset *ds) {
    const char *path = ds->csv_path;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    pad_status st = PAD_OK;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, cap_rows = 0;
    bool header = false;
    for (;;) {
        // getline is POSIX (_DEFAULT_SOURCE); lines of any length
        ssize_t k = getline(&line, &cap, fp);
        if (k < 0) break;
        lineno++;
        char *fields[6];
        bool blank = true;
        for (char *q = line; *q; q++)
            if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') blank = false;
        if (blank) continue;
        if (k > 0 && line[k - 1] == '\n') line[k - 1] = 0;
        int nf = split_csv_line(line, fields, 6);
        if (!header) {
            // the official header; a UTF-8 byte-order mark is tolerated
            const char *f0 = fields[0];
            if (strncmp(f0, "\xEF\xBB\xBF", 3) == 0) f0 += 3;
            if (nf != 5 || strcmp(f0, "object") != 0 || strcmp(fields[1], "split") != 0 ||
                strcmp(fields[2], "label") != 0 || strcmp(fields[3], "image") != 0 || strcmp(fields[4], "mask") != 0) {
                PAD_LOG_ERROR("%s:%d: expected the header 'object,split,label,image,mask'", path, lineno);
                st = PAD_ERR_FORMAT;
                break;
            }
            header = true;
            continue;
        }
        if (nf != 5) {
            PAD_LOG_ERROR("%s:%d: expected 5 comma-separated fields (object,split,label,image,mask), got %d", path,
                          lineno, nf);
            st = PAD_ERR_FORMAT;
            break;
        }
        bool train = strcmp(fields[1], "train") == 0;
        if (!train && strcmp(fields[1], "test") != 0) {
            PAD_LOG_ERROR("%s:%d: split '%s' is neither 'train' nor 'test'", path, lineno, fields[1]);
            st = PAD_ERR_FORMAT;
            break;
        }
        if (!fields[0][0] || !fields[3][0]) {
            PAD_LOG_ERROR("%s:%d: empty object or image field", path, lineno);
            st = PAD_ERR_FORMAT;
            break;
        }
        if (!pad_dataset_class_name_ok(fields[0])) {
            PAD_LOG_ERROR("%s:%d: object '%s' is not a valid class name (one folder name: no '/', '\\', '.', '..' or "
                          "control character, at most %d bytes)",
                          path, lineno, fields[0], PAD_DATASET_NAME_MAX - 1);
            st = PAD_ERR_FORMAT;
            break;
        }
        bool normal = strcmp(fields[2], "normal") == 0;
        if (!train && !normal && !fields[4][0]) {
            PAD_LOG_ERROR("%s:%d: anomalous test image %s has no mask", path, lineno, fields[3]);
            st = PAD_ERR_FORMAT;
            break;
        }
        if (ds->n_rows == cap_rows) {
            cap_rows = cap_rows ? 2 * cap_rows : 256;
            csv_row *r = realloc(ds->rows, (size_t)cap_rows * sizeof *r);
            if (!r) {
                st = PAD_ERR_OOM;
                break;
            }
            ds->rows = r;
        }
        csv_row *r = &ds->rows[ds->n_rows];
        memset(r, 0, sizeof *r);
        r->object = xstrdup(fields[0]);
        r->train = train;
        r->normal = normal;
        r->image = path_join(ds->root, fields[3]);
        r->mask = fields[4][0] ? path_join(ds->root, fields[4]) : NULL;
        r->line = lineno;
        ds->n_rows++;
        if (!r->object || !r->image || (fields[4][0] && !r->mask)) {
            st = PAD_ERR_OOM;
            break;
        }
    }
    free(line);
    if (st == PAD_OK && ferror(fp)) {
        PAD_LOG_ERROR("%s: read error", path);
        st = PAD_ERR_IO;
    }
    fclose(fp);
    if (st == PAD_OK && !header) {
        PAD_LOG_ERROR("%s: empty file (expected the header 'object,split,label,image,mask')", path);
        st = PAD_ERR_FORMAT;
    }
    if (st == PAD_ERR_OOM) PAD_LOG_ERROR("%s: out of memory", path);
    return st;
}

// ----------------------------------------------------------------------------
// Class discovery

static pad_status add_class(pad_dataset *ds, const char *name) {
    if (!pad_dataset_class_name_ok(name)) { // the callers check first; never let an unsafe name through
        PAD_LOG_ERROR("%s: '%s' is not a valid class name", ds->root, name);
        return PAD_ERR_FORMAT;
    }
    if (!strlist_push_own(&ds->classes, xstrdup(name))) {
        PAD_LOG_ERROR("%s: out of memory", ds->root);
        return PAD_ERR_OOM;
    }
    return PAD_OK;
}

// Official classes present under ds->base (official order), then other sub-folders holding train/ (sorted).
static pad_status discover_folder_classes(pad_dataset *ds, const char *const *official, int n_official) {
    for (int i = 0; i < n_official; i++) {
        char *p = path_join(ds->base, official[i]);
        if (!p) return PAD_ERR_OOM;
        bool present = is_dir(p);
        free(p);
        if (present) PAD_TRY(add_class(ds, official[i]));
    }
    strlist subs;
    PAD_TRY(list_dir(ds->base, LIST_DIRS, &subs));
    strlist_sort(&subs);
    pad_status st = PAD_OK;
    for (int i = 0; i < subs.n && st == PAD_OK; i++) {
        if (name_in(subs.v[i], official, n_official)) continue;
        char *cdir = path_join(ds->base, subs.v[i]);
        char *tr = cdir ? path_join(cdir, "train") : NULL;
        if (!tr) {
            free(cdir);
            st = PAD_ERR_OOM;
            break;
        }
        if (is_dir(tr) && !pad_dataset_class_name_ok(subs.v[i])) {
            PAD_LOG_WARN("%s: class folder skipped: its name is not a valid class name (no '\\' or control "
                         "character, at most %d bytes)",
                         cdir, PAD_DATASET_NAME_MAX - 1);
        } else if (is_dir(tr)) {
            PAD_LOG_DEBUG("%s: not an official %s class; listed with the %s layout", cdir,
                          pad_dataset_format_str(ds->format), pad_dataset_format_str(ds->format));
            st = add_class(ds, subs.v[i]);
        }
        free(tr);
        free(cdir);
    }
    strlist_free(&subs);
    return st;
}

static pad_status discover_csv_classes(pad_dataset *ds) {
    for (int i = 0; i < N_OF(k_visa_classes); i++)
        for (int r = 0; r < ds->n_rows; r++)
            if (strcmp(ds->rows[r].object, k_visa_classes[i]) == 0) {
                PAD_TRY(add_class(ds, k_visa_classes[i]));
                break;
            }
    strlist extra = {0};
    for (int r = 0; r < ds->n_rows; r++) {
        const char *o = ds->rows[r].object;
        if (name_in(o, k_visa_classes, N_OF(k_visa_classes))) continue;
        bool seen = false;
        for (int j = 0; j < extra.n && !seen; j++)
            seen = strcmp(extra.v[j], o) == 0;
        if (!seen && !strlist_push_own(&extra, xstrdup(o))) {
            strlist_free(&extra);
            return PAD_ERR_OOM;
        }
    }
    strlist_sort(&extra);
    pad_status st = PAD_OK;
    for (int j = 0; j < extra.n && st == PAD_OK; j++)
        st = add_class(ds, extra.v[j]);
    strlist_free(&extra);
    return st;
}

// Last path component of the root, resolving "." and trailing slashes.
static char *root_class_name(const char *root) {
    char *real = realpath(root, NULL);
    const char *src = real ? real : root;
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && src[b - 1] != '/')
        b--;
    char *name = malloc(n - b + 1);
    if (name) {
        memcpy(name, src + b, n - b);
        name[n - b] = 0;
    }
    free(real);
    return name;
}

pad_status pad_dataset_open(pad_dataset **out, pad_dataset_format format, const char *root) {
    *out = NULL;
    if ((int)format < 0 || (int)format >= N_OF(k_format_names)) {
        PAD_LOG_ERROR("%s: unknown dataset format %d", root ? root : "(null)", (int)format);
        return PAD_ERR_INVALID_ARG;
    }
    if (!root || !root[0]) {
        PAD_LOG_ERROR("%s dataset: empty root path", pad_dataset_format_str(format));
        return PAD_ERR_INVALID_ARG;
    }
    struct stat sb;
    if (stat(root, &sb) != 0) {
        PAD_LOG_ERROR("%s: dataset root not found (%s)", root, strerror(errno));
        return PAD_ERR_IO;
    }
    if (!S_ISDIR(sb.st_mode)) {
        PAD_LOG_ERROR("%s: dataset root is not a folder", root);
        return PAD_ERR_IO;
    }
    pad_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        PAD_LOG_ERROR("%s: out of memory", root);
        return PAD_ERR_OOM;
    }
    ds->format = format;
    ds->root = xstrdup(root);
    ds->base = xstrdup(root);
    pad_status st = PAD_OK;
    if (!ds->root || !ds->base) {
        PAD_LOG_ERROR("%s: out of memory", root);
        st = PAD_ERR_OOM;
        goto fail;
    }
    int n_off = 0;
    const char *const *off = pad_dataset_official_classes(format, &n_off);
    const char *fname = pad_dataset_format_str(format);
    if (format == PAD_DATASET_FORMAT_VISA) {
        char *csv = path_join(root, "split_csv/1cls.csv");
        char *sub = path_join(root, "1cls");
        if (!csv || !sub) {
            free(csv);
            free(sub);
            st = PAD_ERR_OOM;
            goto fail;
        }
        if (is_file(csv)) {
            ds->csv_path = csv;
            free(sub);
            PAD_TRY_GOTO(st, read_visa_csv(ds), fail);
            PAD_TRY_GOTO(st, discover_csv_classes(ds), fail);
            snprintf(ds->layout, sizeof ds->layout, "visa (split_csv/1cls.csv)");
        } else {
            free(csv);
            // VisA_pytorch/1cls/<class> when the root is VisA_pytorch and holds no class folder itself
            bool any_class_here = false;
            for (int i = 0; i < n_off && !any_class_here; i++) {
                char *p = path_join(root, off[i]);
                any_class_here = p && is_dir(p);
                free(p);
            }
            if (!any_class_here && is_dir(sub)) {
                free(ds->base);
                ds->base = sub;
                snprintf(ds->layout, sizeof ds->layout, "visa (reorganised, 1cls/)");
            } else {
                free(sub);
                snprintf(ds->layout, sizeof ds->layout, "visa (reorganised)");
            }
            PAD_TRY_GOTO(st, discover_folder_classes(ds, off, n_off), fail);
        }
    } else if (format == PAD_DATASET_FORMAT_FOLDER) {
        char *tr = path_join(root, "train");
        if (!tr) {
            st = PAD_ERR_OOM;
            goto fail;
        }
        ds->single = is_dir(tr);
        free(tr);
        if (ds->single) {
            char *name = root_class_name(root);
            if (name && !pad_dataset_class_name_ok(name)) {
                PAD_LOG_ERROR("%s: the folder's name '%s' is not a valid class name (a single-class folder dataset is "
                              "named after its folder)",
                              root, name);
                free(name);
                st = PAD_ERR_INVALID_ARG;
                goto fail;
            }
            if (!name || !strlist_push_own(&ds->classes, name)) {
                st = PAD_ERR_OOM;
                goto fail;
            }
            snprintf(ds->layout, sizeof ds->layout, "folder (one class)");
        } else {
            PAD_TRY_GOTO(st, discover_folder_classes(ds, NULL, 0), fail);
            snprintf(ds->layout, sizeof ds->layout, "folder (one sub-folder per class)");
        }
    } else {
        PAD_TRY_GOTO(st, discover_folder_classes(ds, off, n_off), fail);
        snprintf(ds->layout, sizeof ds->layout, "%s", fname);
    }
    if (ds->classes.n == 0) {
        char names[1024] = "";
        join_names(names, sizeof names, off, n_off);
        if (format == PAD_DATASET_FORMAT_FOLDER)
            PAD_LOG_ERROR("%s: no class found (expected train/good and test/ in this folder or in its sub-folders)",
                          root);
        else if (ds->csv_path)
            PAD_LOG_ERROR("%s: no data rows", ds->csv_path);
        else
            PAD_LOG_ERROR("%s: no %s class folder found (expected some of: %s)", ds->base, fname, names);
        st = PAD_ERR_INVALID_ARG;
        goto fail;
    }
    if (n_off > 0) {
        int present = 0;
        for (int i = 0; i < n_off; i++)
            present += pad_dataset_find_class(ds, off[i]) >= 0;
        if (present > 0 && present < n_off)
            PAD_LOG_DEBUG("%s: %d of the %d %s classes present", root, present, n_off, fname);
    }
    *out = ds;
    return PAD_OK;
fail:
    if (st == PAD_ERR_OOM) PAD_LOG_ERROR("%s: out of memory", root);
    pad_dataset_free(ds);
    return st;
}
