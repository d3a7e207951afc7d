/* report_units.c - what report.html shows of one unit folder (report_page.h): metrics.json, train.csv, scores.csv
 * and the heatmaps/ overlays, read with size limits, and links between folders. */
#include "report_page.h"

#include "fsutil.h"
#include "jsonutil.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_JSON_BYTES (1 << 20)
#define MAX_CSV_BYTES  (64 << 20)
#define MAX_ROWS       100000
#define MAX_COLS       16

static const char *const k_metric_keys[6] = {"image_auroc", "image_aupr", "pixel_auroc",
                                             "pixel_aupr",  "pixel_pro",  "pixel_pro_200"};

static void copy_str(char *dst, size_t cap, const cJSON *o, const char *key, const char *dflt) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(dst, cap, "%s", cJSON_IsString(it) && it->valuestring ? it->valuestring : dflt);
}

static bool file_size_ok(const char *path, long long cap) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size <= cap;
}

pad_status rh_unit_read(const char *metrics_path, rh_unit *u) {
    memset(u, 0, sizeof *u);
    if (!file_size_ok(metrics_path, MAX_JSON_BYTES)) {
        PAD_LOG_ERROR("%s: missing, not a file or over %d bytes", metrics_path, MAX_JSON_BYTES);
        return PAD_ERR_IO;
    }
    char *text = NULL;
    PAD_TRY(pad_read_file(metrics_path, &text, NULL));
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        PAD_LOG_ERROR("%s: not a JSON object", metrics_path);
        return PAD_ERR_FORMAT;
    }
    copy_str(u->dataset, sizeof u->dataset, j, "dataset", "?");
    copy_str(u->cls, sizeof u->cls, j, "class", "?");
    copy_str(u->task, sizeof u->task, j, "task", "?");
    copy_str(u->protocol, sizeof u->protocol, j, "protocol", "?");
    copy_str(u->method, sizeof u->method, j, "method", "promptad");
    u->k = u->seed = -1;
    pad_json_get_int(j, "k", 0, 100000, &u->k);
    pad_json_get_int(j, "seed", 0, INT_MAX, &u->seed);
    pad_json_get_int(j, "epoch", 0, INT_MAX, &u->epoch);
    pad_json_get_int(j, "n_test", 0, INT_MAX, &u->n_test);
    for (int m = 0; m < 6; m++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, k_metric_keys[m]);
        u->m[m] = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    }
    cJSON_Delete(j);
    if (u->k < 0 || u->k > 100000 || u->seed < 0) {
        PAD_LOG_ERROR("%s: missing or out-of-range k or seed", metrics_path);
        return PAD_ERR_FORMAT;
    }
    snprintf(u->dir, sizeof u->dir, "%s", metrics_path);
    char *slash = strrchr(u->dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(u->dir, sizeof u->dir, ".");
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// Links

static void url_escape(const char *s, char *out, size_t cap) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < cap; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     strchr("/._-~", *p) != NULL;
        if (plain)
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    out[n] = 0;
}

void rh_rel_href(const char *from, const char *to, char *out, size_t cap) {
    char a[PATH_MAX], b[PATH_MAX], rel[3 * PATH_MAX] = "";
    if (!realpath(from, a) || !realpath(to, b)) {
        url_escape(to, out, cap);
    } else {
        // the longest common folder prefix, then one ".." per remaining folder of `from`
        size_t i = 0, cut = 0;
        while (a[i] && a[i] == b[i]) {
            if (a[i] == '/') cut = i;
            i++;
        }
        if (!a[i] && (b[i] == '/' || !b[i])) cut = i;
        size_t n = 0;
        for (const char *p = a + cut; *p; p++)
            if (*p == '/' && n + 4 < sizeof rel) n += (size_t)snprintf(rel + n, sizeof rel - n, "../");
        const char *rest = b + cut + (b[cut] == '/' ? 1 : 0);
        snprintf(rel + n, sizeof rel - n, "%s", rest);
        url_escape(rel, out, cap);
    }
    size_t l = strlen(out);
    if ((l == 0 || out[l - 1] != '/') && l + 1 < cap) {
        out[l] = '/';
        out[l + 1] = 0;
    }
    if (strcmp(out, "/") == 0) snprintf(out, cap, "./");
}

// ----------------------------------------------------------------------------
// CSV files (the unit's own: plain fields, only scores.csv's path may be quoted)

// Splits one line into at most MAX_COLS fields in place; a field in double quotes loses them (inner "" -> ").
static int split_csv(char *line, char **f) {
    int n = 0;
    char *p = line;
    while (n < MAX_COLS) {
        if (*p == '"') {
            char *w = ++p, *start = p;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"') p++;
                *w++ = *p++;
            }
            if (*p == '"') p++;
            *w = 0;
            f[n++] = start;
            if (*p != ',') break;
            p++;
            continue;
        }
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

// Reads a CSV file of the unit (NULL when missing or too large); the caller frees.
static char *read_unit_csv(const rh_unit *u, const char *name) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", u->dir, name);
    if (!file_size_ok(p, MAX_CSV_BYTES)) return NULL;
    char *text = NULL;
    if (pad_read_file(p, &text, NULL) != PAD_OK) return NULL;
    return text;
}

static char *next_line(char **cursor) {
    char *s = *cursor;
    if (!s || !*s) return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = 0;
        *cursor = nl + 1;
    } else {
        *cursor = s + strlen(s);
    }
    size_t l = strlen(s);
    if (l && s[l - 1] == '\r') s[l - 1] = 0;
    return s;
}

// Appends n values as [lo, hi, "base64 of uint16 LE"] (report_page.h); NaN -> 65535.
static void quantized(pad_sbuf *b, const double *v, int n, unsigned char *tmp) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
        }
    if (lo > hi) lo = hi = 0;
    double span = hi > lo ? hi - lo : 1.0;
    for (int i = 0; i < n; i++) {
        unsigned q = isfinite(v[i]) ? (unsigned)lround((v[i] - lo) / span * 65534.0) : 65535u;
        tmp[2 * i] = (unsigned char)(q & 255u);
        tmp[2 * i + 1] = (unsigned char)(q >> 8);
    }
    pad_sb_printf(b, "[%.9g,%.9g,\"", lo, hi);
    rh_base64(b, tmp, 2 * (size_t)n);
    pad_sb_put(b, "\"]", 2);
}

// train.csv without its lr column, column by column, quantised (report_page.h).
static void train_json(const rh_unit *u, pad_sbuf *b) {
    char *text = read_unit_csv(u, "train.csv");
    char *cur = text, *line = next_line(&cur);
    if (!line) {
        pad_sb_printf(b, "null");
        free(text);
        return;
    }
    char *f[MAX_COLS];
    int nc = split_csv(line, f), col[MAX_COLS], nk = 0;
    pad_sb_printf(b, "{\"cols\":[");
    for (int i = 0; i < nc; i++) {
        if (strcmp(f[i], "lr") == 0) continue;
        if (nk) pad_sb_put(b, ",", 1);
        pad_sb_json_str(b, f[i]);
        col[nk++] = i;
    }
    double *v = malloc((size_t)MAX_ROWS * (size_t)nk * sizeof *v);
    unsigned char *tmp = malloc(2 * (size_t)MAX_ROWS);
    int nr = 0;
    while (v && tmp && (line = next_line(&cur)) != NULL && nr < MAX_ROWS) {
        if (!*line) continue;
        int n = split_csv(line, f);
        for (int k = 0; k < nk; k++) {
            char *end = NULL;
            int i = col[k];
            double x = i < n && *f[i] ? strtod(f[i], &end) : NAN;
            v[(size_t)k * MAX_ROWS + (size_t)nr] = end && *end ? NAN : x;
        }
        nr++;
    }
    pad_sb_printf(b, "],\"n\":%d,\"q\":[", nr);
    for (int k = 0; v && tmp && k < nk; k++) {
        if (k) pad_sb_put(b, ",", 1);
        quantized(b, v + (size_t)k * MAX_ROWS, nr, tmp);
    }
    pad_sb_printf(b, "]}");
    free(v);
    free(tmp);
    free(text);
}

// The heatmap name of a test image: "<parent folder>_<file name without extension>.png" (the run's naming).
// Returns the length of the parent folder's name (where "_<file name>.png" starts in out).
static int heat_name(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    const char *parent = "";
    int parent_len = 0;
    if (base) {
        const char *q = base;
        while (q > path && q[-1] != '/')
            q--;
        parent = q;
        parent_len = (int)(base - q);
        base++;
    } else {
        base = path;
    }
    const char *dot = strrchr(base, '.');
    snprintf(out, cap, "%.*s_%.*s.png", parent_len, parent, dot ? (int)(dot - base) : (int)strlen(base), base);
    return parent_len < (int)cap ? parent_len : 0;
}

typedef struct scored {
    char *path;
    int label;
    double score;
} scored;

// scores.csv rows (pointers into *text, which the caller frees). Returns the count, -1 when absent.
static int read_scores(const rh_unit *u, char **text, scored **out) {
    *out = NULL;
    *text = read_unit_csv(u, "scores.csv");
    char *cur = *text, *line = next_line(&cur);
    if (!line) return -1;
    int n = 0, cap = 0;
    while ((line = next_line(&cur)) != NULL && n < MAX_ROWS) {
        char *f[MAX_COLS];
        if (!*line || split_csv(line, f) < 3) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            scored *v = realloc(*out, (size_t)cap * sizeof *v);
            if (!v) break;
            *out = v;
        }
        char *end = NULL;
        double s = strtod(f[2], &end);
        (*out)[n].path = f[0];
        (*out)[n].label = atoi(f[1]) ? 1 : 0;
        (*out)[n].score = end && !*end ? s : NAN;
        n++;
    }
    return n;
}

static int heat_cmp(const void *pa, const void *pb) {
    const rh_heat *a = pa, *b = pb;
    int ga = a->label == 1 ? 0 : (a->label == 0 ? 1 : 2), gb = b->label == 1 ? 0 : (b->label == 0 ? 1 : 2);
    if (ga != gb) return ga - gb;
    if (ga == 0 && a->score != b->score) return a->score < b->score ? -1 : 1;
    if (ga == 1 && a->score != b->score) return a->score > b->score ? -1 : 1;
    return strcmp(a->name, b->name);
}

pad_status rh_unit_heatmaps(const rh_unit *u, rh_heat **out, int *n) {
    *out = NULL;
    *n = 0;
    char hd[4200];
    snprintf(hd, sizeof hd, "%s/heatmaps", u->dir);
    DIR *d = opendir(hd);
    if (!d) return PAD_OK;
    char *text = NULL;
    scored *sc = NULL;
    int ns = read_scores(u, &text, &sc);
    int cap = 0;
    pad_status st = PAD_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && *n < MAX_ROWS) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || l >= sizeof(*out)->name || strcmp(e->d_name + l - 4, ".png") != 0) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            rh_heat *v = realloc(*out, (size_t)cap * sizeof *v);
            if (!v) {
                st = PAD_ERR_OOM;
                break;
            }
            *out = v;
        }
        rh_heat *h = &(*out)[(*n)++];
        snprintf(h->name, sizeof h->name, "%s", e->d_name);
        h->label = -1;
        h->score = NAN;
        // the exact name, else the first image with the same file name (datasets whose defect type is not the
        // parent folder's name)
        int hit = -1;
        for (int i = 0; i < ns; i++) {
            char hn[1024];
            const char *us = hn + heat_name(sc[i].path, hn, sizeof hn);
            if (strcmp(hn, h->name) == 0) {
                hit = i;
                break;
            }
            size_t tl = strlen(us);
            if (hit < 0 && l > tl && strcmp(h->name + l - tl, us) == 0) hit = i;
        }
        if (hit >= 0) {
            h->label = sc[hit].label;
            h->score = sc[hit].score;
        }
    }
    closedir(d);
    free(sc);
    free(text);
    if (st != PAD_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
        return st;
    }
    if (*n > 1) qsort(*out, (size_t)*n, sizeof **out, heat_cmp);
    return PAD_OK;
}

pad_status rh_unit_detail_json(const rh_unit *u, pad_sbuf *b) {
    pad_sb_printf(b, "{\"epoch\":%d,\"train\":", u->epoch);
    train_json(u, b);
    pad_sb_printf(b, ",\"scores\":");
    char *text = NULL;
    scored *sc = NULL;
    int ns = read_scores(u, &text, &sc);
    unsigned char *bytes = ns > 0 ? malloc(4 * (size_t)ns) : NULL;
    if (ns < 0 || (ns > 0 && !bytes)) {
        pad_sb_printf(b, "null");
    } else {
        pad_sb_printf(b, "{\"l\":\"");
        for (int i = 0; i < ns; i++) {
            float x = (float)sc[i].score;
            uint32_t w;
            memcpy(&w, &x, 4);
            for (int q = 0; q < 4; q++)
                bytes[4 * i + q] = (unsigned char)(w >> (8 * q));
            pad_sb_put(b, sc[i].label ? "1" : "0", 1);
        }
        pad_sb_printf(b, "\",\"s\":\"");
        rh_base64(b, bytes, 4 * (size_t)ns);
        pad_sb_printf(b, "\"}");
    }
    free(bytes);
    free(sc);
    free(text);
    rh_heat *h = NULL;
    int nh = 0;
    PAD_TRY(rh_unit_heatmaps(u, &h, &nh));
    pad_sb_printf(b, ",\"hm\":[");
    for (int i = 0; i < nh; i++) {
        if (i) pad_sb_put(b, ",", 1);
        pad_sb_put(b, "[", 1);
        pad_sb_json_str(b, h[i].name);
        pad_sb_printf(b, ",%d,", h[i].label);
        pad_sb_json_num(b, h[i].score);
        pad_sb_put(b, "]", 1);
    }
    pad_sb_put(b, "]}", 2);
    free(h);
    return b->oom ? PAD_ERR_OOM : PAD_OK;
}
