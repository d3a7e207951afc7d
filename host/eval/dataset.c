/* dataset.c - dataset listings for dataset.h: the mvtec, mpdd, loco, visa (csv and reorganised) and folder
 * layouts. Mirrors the path conventions of the official loaders (datasets/mvtec.py, datasets/visa.py,
 * datasets/prepare_visa_public.py; promptad_spec.md §6.2) with sorted listings instead of glob order. */
#include "dataset.h"

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

// ----------------------------------------------------------------------------
// Small helpers: strings, paths, growable string lists, directory listings

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

// "a/b" (no doubled '/'); malloc'd, NULL on OOM.
static char *path_join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    while (na > 1 && a[na - 1] == '/')
        na--;
    char *p = malloc(na + nb + 2);
    if (!p) return NULL;
    memcpy(p, a, na);
    size_t o = na;
    if (!(na == 1 && a[0] == '/')) p[o++] = '/';
    memcpy(p + o, b, nb + 1);
    return p;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return false;
    return strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
           strcasecmp(dot, ".bmp") == 0;
}

// Length of the file stem (the name without its last extension).
static size_t stem_len(const char *name) {
    const char *dot = strrchr(name, '.');
    return (dot && dot != name) ? (size_t)(dot - name) : strlen(name);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static bool strlist_push_own(strlist *l, char *s) {
    if (!s) return false;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(s);
            return false;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return true;
}

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void strlist_sort(strlist *l) {
    if (l->n > 1) qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_str);
}

// Sorted list lookup; -1 when absent.
static int strlist_find_sorted(const strlist *l, const char *s) {
    int lo = 0, hi = l->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(l->v[mid], s);
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

typedef enum list_kind {
    LIST_IMAGES, // regular files with an image extension
    LIST_DIRS,   // sub-folders
} list_kind;

// Names (not paths) of the entries of `dir` of the given kind, in readdir order; hidden names skipped.
static pad_status list_dir(const char *dir, list_kind kind, strlist *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) {
        PAD_LOG_ERROR("%s: cannot open folder: %s", dir, strerror(errno));
        return PAD_ERR_IO;
    }
    pad_status st = PAD_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (name[0] == '.') continue;
        if (kind == LIST_IMAGES && !has_image_ext(name)) continue;
        char *full = path_join(dir, name);
        if (!full) {
            st = PAD_ERR_OOM;
            break;
        }
        bool keep = kind == LIST_IMAGES ? is_file(full) : is_dir(full);
        free(full);
        if (keep && !strlist_push_own(out, xstrdup(name))) {
            st = PAD_ERR_OOM;
            break;
        }
    }
    closedir(d);
    if (st != PAD_OK) {
        PAD_LOG_ERROR("%s: out of memory while listing", dir);
        strlist_free(out);
    }
    return st;
}

// Appends "s1, s2, ..." to buf (bounded, "..." when cut).
static void join_names(char *buf, size_t cap, const char *const *names, int n) {
    size_t len = strlen(buf);
    for (int i = 0; i < n; i++) {
        size_t need = strlen(names[i]) + 2;
        if (len + need + 4 >= cap) {
            snprintf(buf + len, cap - len, "...");
            return;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", names[i]);
    }
}

// ----------------------------------------------------------------------------
// The dataset object

typedef struct csv_row {
    char *object;
    bool train;  // split == "train"
    bool normal; // label == "normal"
    char *image; // root-joined
    char *mask;  // root-joined, NULL when the column is empty
    int line;    // 1-based line in the csv
} csv_row;

struct pad_dataset {
    pad_dataset_format format;
    char *root;     // as given
    char *base;     // the folder holding the class folders (root, or root/1cls for VisA_pytorch)
    char *csv_path; // VisA official layout: <root>/split_csv/1cls.csv; NULL otherwise
    csv_row *rows;
    int n_rows;
    bool single;     // folder format: the root itself is the class
    strlist classes; // in listing order
    char layout[160];
};

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
        if (is_dir(tr)) {
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

// ----------------------------------------------------------------------------
// Class loading

typedef enum mask_style {
    MASK_SUFFIX,    // <stem>_mask.<ext> (mvtec, mpdd)
    MASK_PLAIN,     // <stem>.<ext> (visa reorganised)
    MASK_EITHER,    // <stem>_mask.<ext>, else <stem>.<ext> (folder)
    MASK_LOCO_DIRS, // <stem>/ holding one or more image files (loco)
} mask_style;

typedef struct item_vec {
    pad_test_item *v;
    int n, cap;
} item_vec;

static pad_test_item *item_push(item_vec *iv) {
    if (iv->n == iv->cap) {
        int cap = iv->cap ? 2 * iv->cap : 64;
        pad_test_item *v = realloc(iv->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        iv->v = v;
        iv->cap = cap;
    }
    pad_test_item *it = &iv->v[iv->n++];
    memset(it, 0, sizeof *it);
    return it;
}

static void item_free(pad_test_item *it) {
    free(it->path);
    free(it->defect_type);
    for (int m = 0; m < it->n_masks; m++)
        free(it->mask_paths[m]);
    free(it->mask_paths);
}

void pad_class_data_free(pad_class_data *cls) {
    if (!cls) return;
    free(cls->name);
    free(cls->dir);
    for (int i = 0; i < cls->n_train; i++)
        free(cls->train[i]);
    free(cls->train);
    free(cls->train_dir_order);
    for (int i = 0; i < cls->n_validation; i++)
        free(cls->validation[i]);
    free(cls->validation);
    for (int i = 0; i < cls->n_test; i++)
        item_free(&cls->test[i]);
    free(cls->test);
    memset(cls, 0, sizeof *cls);
}

static int cmp_item(const void *a, const void *b) {
    const pad_test_item *x = a, *y = b;
    int c = strcmp(x->defect_type, y->defect_type);
    if (c) return c;
    c = strcmp(base_name(x->path), base_name(y->path));
    return c ? c : strcmp(x->path, y->path);
}

static pad_anomaly_kind kind_of(const char *type) {
    if (strcmp(type, "good") == 0) return PAD_ANOMALY_KIND_NONE;
    if (strcmp(type, "logical_anomalies") == 0) return PAD_ANOMALY_KIND_LOGICAL;
    if (strcmp(type, "structural_anomalies") == 0) return PAD_ANOMALY_KIND_STRUCTURAL;
    return PAD_ANOMALY_KIND_DEFECT;
}

// Moves a sorted name list into an array of paths dir/name. Frees `names`.
static pad_status names_to_paths(const char *dir, strlist *names, char ***paths, int *n) {
    *paths = NULL;
    *n = 0;
    if (names->n == 0) {
        strlist_free(names);
        return PAD_OK;
    }
    char **p = calloc((size_t)names->n, sizeof *p);
    if (!p) {
        strlist_free(names);
        return PAD_ERR_OOM;
    }
    for (int i = 0; i < names->n; i++) {
        p[i] = path_join(dir, names->v[i]);
        if (!p[i]) {
            for (int j = 0; j < i; j++)
                free(p[j]);
            free(p);
            strlist_free(names);
            return PAD_ERR_OOM;
        }
    }
    *paths = p;
    *n = names->n;
    strlist_free(names);
    return PAD_OK;
}

// Sorted image list of `dir` into cls-style arrays; optionally the readdir-order permutation.
static pad_status list_images_sorted(const char *dir, char ***paths, int *n, int **dir_order) {
    strlist names;
    PAD_TRY(list_dir(dir, LIST_IMAGES, &names));
    if (dir_order) {
        *dir_order = NULL;
        if (names.n > 0) {
            // readdir order -> sorted positions: sort a copy and look each name up
            strlist sorted = {0};
            int *ord = malloc((size_t)names.n * sizeof *ord);
            bool ok = ord != NULL;
            for (int i = 0; i < names.n && ok; i++)
                ok = strlist_push_own(&sorted, xstrdup(names.v[i]));
            if (ok) {
                strlist_sort(&sorted);
                for (int i = 0; i < names.n; i++)
                    ord[i] = strlist_find_sorted(&sorted, names.v[i]);
            }
            strlist_free(&sorted);
            if (!ok) {
                free(ord);
                strlist_free(&names);
                PAD_LOG_ERROR("%s: out of memory", dir);
                return PAD_ERR_OOM;
            }
            *dir_order = ord;
        }
    }
    strlist_sort(&names);
    pad_status st = names_to_paths(dir, &names, paths, n);
    if (st != PAD_OK) {
        if (dir_order) {
            free(*dir_order);
            *dir_order = NULL;
        }
        PAD_LOG_ERROR("%s: out of memory", dir);
    }
    return st;
}

// Finds the mask file(s) of test image `name` of type `type` under gt_dir (the class's ground_truth/<type>).
// gt_names: the sorted image names of gt_dir (NULL when the folder is missing). Fills it->mask_paths.
// Returns PAD_OK with n_masks == 0 when nothing matches (the caller decides whether that is an error).
static pad_status find_masks(const char *gt_dir, const strlist *gt_names, const char *name, mask_style style,
                             pad_test_item *it) {
    size_t sl = stem_len(name);
    if (style == MASK_LOCO_DIRS) {
        char stem[1024];
        if (sl >= sizeof stem) return PAD_OK;
        memcpy(stem, name, sl);
        stem[sl] = 0;
        char *mdir = path_join(gt_dir, stem);
        if (!mdir) return PAD_ERR_OOM;
        if (!is_dir(mdir)) {
            free(mdir);
            return PAD_OK;
        }
        strlist names;
        pad_status st = list_dir(mdir, LIST_IMAGES, &names);
        if (st == PAD_OK) {
            strlist_sort(&names);
            st = names_to_paths(mdir, &names, &it->mask_paths, &it->n_masks);
        }
        free(mdir);
        return st;
    }
    if (!gt_names) return PAD_OK;
    // candidates in preference order: "<stem>_mask", then "<stem>"
    for (int pass = 0; pass < 2; pass++) {
        bool suffix = pass == 0;
        if (suffix && style == MASK_PLAIN) continue;
        if (!suffix && style == MASK_SUFFIX) continue;
        for (int i = 0; i < gt_names->n; i++) {
            const char *g = gt_names->v[i];
            size_t gl = stem_len(g);
            bool match = suffix ? (gl == sl + 5 && strncmp(g, name, sl) == 0 && strncmp(g + sl, "_mask", 5) == 0)
                                : (gl == sl && strncmp(g, name, sl) == 0);
            if (!match) continue;
            it->mask_paths = malloc(sizeof *it->mask_paths);
            if (!it->mask_paths) return PAD_ERR_OOM;
            it->mask_paths[0] = path_join(gt_dir, g);
            if (!it->mask_paths[0]) return PAD_ERR_OOM;
            it->n_masks = 1;
            return PAD_OK;
        }
    }
    return PAD_OK;
}

// The mask path we expected, for error messages.
static void expected_mask(char *buf, size_t cap, const char *gt_dir, const char *name, mask_style style) {
    int sl = (int)stem_len(name);
    switch (style) {
    case MASK_SUFFIX:
        snprintf(buf, cap, "%s/%.*s_mask.png", gt_dir, sl, name);
        break;
    case MASK_PLAIN:
        snprintf(buf, cap, "%s/%.*s.png", gt_dir, sl, name);
        break;
    case MASK_EITHER:
        snprintf(buf, cap, "%s/%.*s_mask.png or %.*s.png", gt_dir, sl, name, sl, name);
        break;
    case MASK_LOCO_DIRS:
        snprintf(buf, cap, "a folder %s/%.*s/ with at least one mask image", gt_dir, sl, name);
        break;
    }
}

static pad_status fail_oom(const char *path) {
    PAD_LOG_ERROR("%s: out of memory", path);
    return PAD_ERR_OOM;
}

// Lists the test/<type> folders of a class folder (mvtec, mpdd, loco, visa reorganised, folder).
static pad_status load_test_folders(const char *cdir, mask_style style, bool masks_required, item_vec *items) {
    char *tdir = path_join(cdir, "test");
    char *gdir = path_join(cdir, "ground_truth");
    if (!tdir || !gdir) {
        free(tdir);
        free(gdir);
        return fail_oom(cdir);
    }
    pad_status st = PAD_OK;
    strlist types = {0};
    if (!is_dir(tdir)) {
        PAD_LOG_ERROR("%s: missing test folder", tdir);
        st = PAD_ERR_INVALID_ARG;
        goto done;
    }
    PAD_TRY_GOTO(st, list_dir(tdir, LIST_DIRS, &types), done);
    strlist_sort(&types);
    for (int t = 0; t < types.n && st == PAD_OK; t++) {
        const char *type = types.v[t];
        char *idir = path_join(tdir, type);
        char *tgt = path_join(gdir, type);
        strlist imgs = {0}, gt_names = {0};
        bool have_gt = false;
        if (!idir || !tgt) {
            st = fail_oom(cdir);
            goto type_done;
        }
        PAD_TRY_GOTO(st, list_dir(idir, LIST_IMAGES, &imgs), type_done);
        strlist_sort(&imgs);
        pad_anomaly_kind kind = kind_of(type);
        if (style != MASK_LOCO_DIRS && is_dir(tgt)) { // normal types too (ground_truth/good is unusual)
            PAD_TRY_GOTO(st, list_dir(tgt, LIST_IMAGES, &gt_names), type_done);
            strlist_sort(&gt_names);
            have_gt = true;
        }
        for (int i = 0; i < imgs.n; i++) {
            pad_test_item *it = item_push(items);
            if (!it) {
                st = fail_oom(idir);
                goto type_done;
            }
            it->path = path_join(idir, imgs.v[i]);
            it->defect_type = xstrdup(type);
            it->kind = kind;
            it->label = kind != PAD_ANOMALY_KIND_NONE;
            if (!it->path || !it->defect_type) {
                st = fail_oom(idir);
                goto type_done;
            }
            // normal images too: a mask of one is kept, and the run reports it when it marks pixels
            st = find_masks(tgt, have_gt ? &gt_names : NULL, imgs.v[i], style, it);
            if (st != PAD_OK) {
                fail_oom(tgt);
                goto type_done;
            }
            if (!it->label) continue;
            if (it->n_masks == 0 && masks_required) {
                char want[2048];
                expected_mask(want, sizeof want, tgt, imgs.v[i], style);
                PAD_LOG_ERROR("%s: anomalous test image without its ground-truth mask (expected %s)", it->path, want);
                st = PAD_ERR_INVALID_ARG;
                goto type_done;
            }
        }
    type_done:
        strlist_free(&imgs);
        strlist_free(&gt_names);
        free(idir);
        free(tgt);
    }
done:
    strlist_free(&types);
    free(tdir);
    free(gdir);
    return st;
}

static pad_status load_class_folder(const pad_dataset *ds, const char *name, pad_class_data *cls) {
    char *cdir = ds->single ? xstrdup(ds->root) : path_join(ds->base, name);
    if (!cdir) return fail_oom(ds->root);
    cls->dir = cdir;
    if (!is_dir(cdir)) {
        PAD_LOG_ERROR("%s: class folder missing", cdir);
        return PAD_ERR_INVALID_ARG;
    }
    // train/good
    char *tr = path_join(cdir, "train/good");
    if (!tr) return fail_oom(cdir);
    pad_status st = PAD_OK;
    if (!is_dir(tr)) {
        PAD_LOG_ERROR("%s: missing train/good folder", tr);
        st = PAD_ERR_INVALID_ARG;
    } else {
        st = list_images_sorted(tr, &cls->train, &cls->n_train, &cls->train_dir_order);
        if (st == PAD_OK && cls->n_train == 0) {
            PAD_LOG_ERROR("%s: no train images (.png, .jpg, .jpeg or .bmp)", tr);
            st = PAD_ERR_INVALID_ARG;
        }
    }
    free(tr);
    if (st != PAD_OK) return st;
    // validation/good (LOCO)
    if (ds->format == PAD_DATASET_FORMAT_LOCO) {
        char *vd = path_join(cdir, "validation/good");
        if (!vd) return fail_oom(cdir);
        if (is_dir(vd)) st = list_images_sorted(vd, &cls->validation, &cls->n_validation, NULL);
        free(vd);
        if (st != PAD_OK) return st;
    }
    // test/<type> with masks
    mask_style style = MASK_SUFFIX;
    bool required = true;
    switch (ds->format) {
    case PAD_DATASET_FORMAT_MVTEC:
    case PAD_DATASET_FORMAT_MPDD:
        style = MASK_SUFFIX;
        break;
    case PAD_DATASET_FORMAT_VISA:
        style = MASK_PLAIN;
        break;
    case PAD_DATASET_FORMAT_LOCO:
        style = MASK_LOCO_DIRS;
        break;
    case PAD_DATASET_FORMAT_FOLDER: {
        style = MASK_EITHER;
        char *gd = path_join(cdir, "ground_truth");
        if (!gd) return fail_oom(cdir);
        required = is_dir(gd);
        free(gd);
        break;
    }
    }
    item_vec items = {0};
    st = load_test_folders(cdir, style, required, &items);
    cls->test = items.v;
    cls->n_test = items.n;
    if (st != PAD_OK) return st;
    if (cls->n_test == 0) {
        PAD_LOG_ERROR("%s/test: no test images (.png, .jpg, .jpeg or .bmp) in its sub-folders", cdir);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

// VisA official layout: rows of the csv for one class.
static pad_status load_class_csv(const pad_dataset *ds, const char *name, pad_class_data *cls) {
    cls->dir = xstrdup(ds->root);
    if (!cls->dir) return fail_oom(ds->root);
    strlist train = {0};
    item_vec items = {0};
    pad_status st = PAD_OK;
    for (int r = 0; r < ds->n_rows; r++) {
        const csv_row *row = &ds->rows[r];
        if (strcmp(row->object, name) != 0) continue;
        if (!is_file(row->image)) {
            PAD_LOG_ERROR("%s: image listed in %s:%d not found", row->image, ds->csv_path, row->line);
            st = PAD_ERR_IO;
            goto done;
        }
        if (row->train) {
            if (!row->normal) {
                PAD_LOG_WARN("%s:%d: anomalous train image %s skipped (train images must be normal)", ds->csv_path,
                             row->line, row->image);
                continue;
            }
            if (!strlist_push_own(&train, xstrdup(row->image))) {
                st = fail_oom(ds->csv_path);
                goto done;
            }
            continue;
        }
        pad_test_item *it = item_push(&items);
        if (!it) {
            st = fail_oom(ds->csv_path);
            goto done;
        }
        it->path = xstrdup(row->image);
        it->label = !row->normal;
        it->defect_type = xstrdup(row->normal ? "good" : "bad");
        it->kind = row->normal ? PAD_ANOMALY_KIND_NONE : PAD_ANOMALY_KIND_DEFECT;
        if (!it->path || !it->defect_type) {
            st = fail_oom(ds->csv_path);
            goto done;
        }
        if (row->normal && row->mask && is_file(row->mask)) { // kept: the run reports it when it marks pixels
            it->mask_paths = malloc(sizeof *it->mask_paths);
            if (!it->mask_paths || !(it->mask_paths[0] = xstrdup(row->mask))) {
                st = fail_oom(ds->csv_path);
                goto done;
            }
            it->n_masks = 1;
        } else if (!row->normal) {
            if (!is_file(row->mask)) {
                PAD_LOG_ERROR("%s: anomalous test image without its ground-truth mask (expected %s, from %s:%d)",
                              row->image, row->mask, ds->csv_path, row->line);
                st = PAD_ERR_INVALID_ARG;
                goto done;
            }
            it->mask_paths = malloc(sizeof *it->mask_paths);
            if (!it->mask_paths || !(it->mask_paths[0] = xstrdup(row->mask))) {
                st = fail_oom(ds->csv_path);
                goto done;
            }
            it->n_masks = 1;
        }
    }
    if (train.n == 0) {
        PAD_LOG_ERROR("%s: no train images for class '%s' (rows with split 'train' and label 'normal')", ds->csv_path,
                      name);
        st = PAD_ERR_INVALID_ARG;
        goto done;
    }
    if (items.n == 0) {
        PAD_LOG_ERROR("%s: no test images for class '%s' (rows with split 'test')", ds->csv_path, name);
        st = PAD_ERR_INVALID_ARG;
        goto done;
    }
    strlist_sort(&train);
    // directory order of the train files, folder by folder (folders in sorted order): the `glob` interpretation
    cls->train_dir_order = malloc((size_t)train.n * sizeof *cls->train_dir_order);
    bool *used = calloc((size_t)train.n, sizeof *used);
    if (!cls->train_dir_order || !used) {
        free(used);
        st = fail_oom(ds->csv_path);
        goto done;
    }
    int k = 0;
    char *prev_dir = NULL;
    for (int i = 0; i < train.n && st == PAD_OK; i++) {
        const char *p = train.v[i];
        size_t dl = (size_t)(base_name(p) - p);
        if (prev_dir && strlen(prev_dir) == dl && strncmp(prev_dir, p, dl) == 0) continue;
        free(prev_dir);
        prev_dir = malloc(dl + 1);
        if (!prev_dir) {
            st = fail_oom(ds->csv_path);
            break;
        }
        memcpy(prev_dir, p, dl);
        prev_dir[dl] = 0;
        strlist names;
        st = list_dir(dl ? prev_dir : ".", LIST_IMAGES, &names);
        for (int j = 0; j < names.n && st == PAD_OK; j++) {
            char *full = dl ? path_join(prev_dir, names.v[j]) : xstrdup(names.v[j]);
            if (!full) {
                st = fail_oom(ds->csv_path);
                break;
            }
            // path_join of "dir/" + name == the csv path when the csv path has no "//" or "./" oddities
            int idx = strlist_find_sorted(&train, full);
            free(full);
            if (idx >= 0 && !used[idx]) {
                used[idx] = true;
                cls->train_dir_order[k++] = idx;
            }
        }
        strlist_free(&names);
    }
    free(prev_dir);
    for (int i = 0; i < train.n && st == PAD_OK; i++) // paths the listings did not reproduce byte for byte
        if (!used[i]) cls->train_dir_order[k++] = i;
    free(used);
    if (st != PAD_OK) goto done;
    cls->train = train.v;
    cls->n_train = train.n;
    train.v = NULL;
    train.n = train.cap = 0;
done:
    strlist_free(&train);
    cls->test = items.v;
    cls->n_test = items.n;
    return st;
}

pad_status pad_dataset_class_load(const pad_dataset *ds, const char *name, pad_class_data *out) {
    memset(out, 0, sizeof *out);
    if (!name || pad_dataset_find_class(ds, name) < 0) {
        char names[1200] = "";
        join_names(names, sizeof names, (const char *const *)ds->classes.v, ds->classes.n);
        PAD_LOG_ERROR("%s: unknown %s class '%s' (classes present: %s)", ds->root, pad_dataset_format_str(ds->format),
                      name ? name : "(null)", names);
        return PAD_ERR_INVALID_ARG;
    }
    out->name = xstrdup(name);
    if (!out->name) return fail_oom(ds->root);
    pad_status st = ds->csv_path ? load_class_csv(ds, name, out) : load_class_folder(ds, name, out);
    if (st != PAD_OK) {
        pad_class_data_free(out);
        return st;
    }
    qsort(out->test, (size_t)out->n_test, sizeof *out->test, cmp_item);
    out->has_masks = true;
    for (int i = 0; i < out->n_test; i++) {
        out->n_test_anomalous += out->test[i].label;
        if (out->test[i].label && out->test[i].n_masks == 0) out->has_masks = false;
    }
    return PAD_OK;
}
