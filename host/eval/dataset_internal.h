/* dataset_internal.h - what the two files of the dataset listings share (not a public header: only dataset.c and
 * dataset_class.c include it): string, path and directory-listing helpers, and the dataset struct. */
#ifndef PAD_EVAL_DATASET_INTERNAL_H
#define PAD_EVAL_DATASET_INTERNAL_H

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
// Small helpers: strings, paths, growable string lists, directory listings

static inline char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

// "a/b" (no doubled '/'); malloc'd, NULL on OOM.
static inline char *path_join(const char *a, const char *b) {
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

static inline bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static inline bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static inline bool has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return false;
    return strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
           strcasecmp(dot, ".bmp") == 0;
}

// Length of the file stem (the name without its last extension).
static inline size_t stem_len(const char *name) {
    const char *dot = strrchr(name, '.');
    return (dot && dot != name) ? (size_t)(dot - name) : strlen(name);
}

static inline const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static inline bool strlist_push_own(strlist *l, char *s) {
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

static inline void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static inline int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static inline void strlist_sort(strlist *l) {
    if (l->n > 1) qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_str);
}

// Sorted list lookup; -1 when absent.
static inline int strlist_find_sorted(const strlist *l, const char *s) {
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
static inline pad_status list_dir(const char *dir, list_kind kind, strlist *out) {
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
static inline void join_names(char *buf, size_t cap, const char *const *names, int n) {
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

#endif // PAD_EVAL_DATASET_INTERNAL_H
