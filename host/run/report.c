/* report.c - the summary tables of report.h: unit discovery, aggregation over seeds, the paper's numbers, CSV and
 * Markdown. */
#include "report.h"

#include "config.h"
#include "dataset.h"
#include "fsutil.h"
#include "jsonutil.h"
#include "log.h"
#include "report_html.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// Units

enum { M_IAUROC, M_IAUPR, M_PAUROC, M_PAUPR, M_PRO, M_PRO200, N_METRICS };
static const char *const k_metric_keys[N_METRICS] = {"image_auroc", "image_aupr", "pixel_auroc",
                                                     "pixel_aupr",  "pixel_pro",  "pixel_pro_200"};

typedef struct unit_rec {
    char dataset[128], format[16], cls[128], task[8], protocol[48], hash[24];
    char method[32]; // promptad, or a baseline of docs/winclip.md (then protocol reads "<protocol>/<method>")
    int k, seed;
    double m[N_METRICS];
    char src[1024];
} unit_rec;

typedef struct unit_list {
    unit_rec *v;
    int n, cap;
} unit_list;

static const char *json_str(const cJSON *o, const char *key, const char *dflt) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) && it->valuestring ? it->valuestring : dflt;
}

static pad_status read_unit(const char *path, const char *ds, const char *cls, int k, int seed, const char *task,
                            unit_rec *u) {
    char *text = NULL;
    PAD_TRY(pad_read_file(path, &text, NULL));
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        PAD_LOG_ERROR("%s: not a JSON object", path);
        return PAD_ERR_FORMAT;
    }
    memset(u, 0, sizeof *u);
    snprintf(u->dataset, sizeof u->dataset, "%s", json_str(j, "dataset", ds));
    snprintf(u->format, sizeof u->format, "%s", json_str(j, "format", ""));
    snprintf(u->cls, sizeof u->cls, "%s", json_str(j, "class", cls));
    snprintf(u->task, sizeof u->task, "%s", json_str(j, "task", task));
    snprintf(u->method, sizeof u->method, "%s", json_str(j, "method", "promptad"));
    if (strcmp(u->method, "promptad") == 0)
        snprintf(u->protocol, sizeof u->protocol, "%s", json_str(j, "protocol", "?"));
    else // the tables group units by this string: one group per (protocol, method)
        snprintf(u->protocol, sizeof u->protocol, "%.15s/%.31s", json_str(j, "protocol", "?"), u->method);
    snprintf(u->hash, sizeof u->hash, "%s", json_str(j, "config_hash", "?"));
    size_t pl = strlen(path);
    if (pl >= sizeof u->src) pl = sizeof u->src - 1;
    memcpy(u->src, path, pl);
    u->src[pl] = 0;
    u->k = k;
    u->seed = seed;
    // k 0: the zero-shot units of the baselines (docs/winclip.md)
    if (pad_json_get_int(j, "k", 0, PAD_CFG_MAX_SHOTS, &u->k) < 0 ||
        pad_json_get_int(j, "seed", 0, INT_MAX, &u->seed) < 0) {
        cJSON_Delete(j);
        PAD_LOG_ERROR("%s: 'k' and 'seed' must be integers in [0, %d] and [0, %d]", path, PAD_CFG_MAX_SHOTS, INT_MAX);
        return PAD_ERR_FORMAT;
    }
    bool any = false;
    for (int m = 0; m < N_METRICS; m++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, k_metric_keys[m]);
        u->m[m] = cJSON_IsNumber(it) ? it->valuedouble : NAN;
        // null: undefined for this test set (e.g. no anomalous image: no AUROC), shown as n/a; a unit may have only
        // undefined metrics, but not none of the keys
        any = any || cJSON_IsNumber(it) || cJSON_IsNull(it);
    }
    cJSON_Delete(j);
    if (!any) {
        PAD_LOG_ERROR("%s: no metric in the file (expected image_auroc, pixel_auroc, ...)", path);
        return PAD_ERR_FORMAT;
    }
    return PAD_OK;
}

static bool add_unit(unit_list *l, const unit_rec *u) {
    for (int i = 0; i < l->n; i++) {
        const unit_rec *o = &l->v[i];
        if (strcmp(o->dataset, u->dataset) == 0 && strcmp(o->cls, u->cls) == 0 && o->k == u->k && o->seed == u->seed &&
            strcmp(o->task, u->task) == 0 && strcmp(o->protocol, u->protocol) == 0) {
            PAD_LOG_WARN("%s: the same unit as %s; using the first", u->src, o->src);
            return true;
        }
    }
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 256;
        unit_rec *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *u;
    return true;
}

typedef struct name_list {
    char **v;
    int n;
} name_list;

static void names_free(name_list *nl) {
    for (int i = 0; i < nl->n; i++)
        free(nl->v[i]);
    free(nl->v);
    nl->v = NULL;
    nl->n = 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Sub-folders of dir (sorted), skipping hidden and temporary ones.
static pad_status list_dirs(const char *dir, name_list *out) {
    out->v = NULL;
    out->n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        PAD_LOG_ERROR("%s: cannot open folder: %s", dir, strerror(errno));
        return PAD_ERR_IO;
    }
    struct dirent *e;
    int cap = 0;
    pad_status st = PAD_OK;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp")) continue;
        char p[4096];
        pad_path_join(p, sizeof p, dir, e->d_name);
        if (!pad_path_is_dir(p)) continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(out->v, (size_t)cap * sizeof *v);
            if (!v) {
                st = PAD_ERR_OOM;
                break;
            }
            out->v = v;
        }
        out->v[out->n] = strdup(e->d_name);
        if (!out->v[out->n]) {
            st = PAD_ERR_OOM;
            break;
        }
        out->n++;
    }
    closedir(d);
    if (st != PAD_OK) {
        names_free(out);
        PAD_LOG_ERROR("%s: out of memory", dir);
        return st;
    }
    if (out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return PAD_OK;
}

static bool parse_prefixed(const char *name, const char *prefix, int *v) {
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || !name[pl]) return false;
    char *end;
    long x = strtol(name + pl, &end, 10);
    if (*end || x < 0 || x > 2147483647L) return false;
    *v = (int)x;
    return true;
}

// <pc> = .../<class>: its k<k>/seed<s>/<task>/metrics.json units.
static pad_status scan_class(const char *pc, const char *ds, const char *cls, unit_list *units) {
    name_list ks;
    PAD_TRY(list_dirs(pc, &ks));
    pad_status st = PAD_OK;
    for (int c = 0; c < ks.n && st == PAD_OK; c++) {
        int k;
        if (!parse_prefixed(ks.v[c], "k", &k)) continue;
        char pk[4096];
        pad_path_join(pk, sizeof pk, pc, ks.v[c]);
        name_list seeds;
        if ((st = list_dirs(pk, &seeds)) != PAD_OK) break;
        for (int e = 0; e < seeds.n && st == PAD_OK; e++) {
            int seed;
            if (!parse_prefixed(seeds.v[e], "seed", &seed)) continue;
            static const char *const tasks[] = {"cls", "seg"};
            for (int t = 0; t < 2 && st == PAD_OK; t++) {
                char pm[4096], ps[4096], pt2[4096];
                pad_path_join(ps, sizeof ps, pk, seeds.v[e]);
                pad_path_join(pt2, sizeof pt2, ps, tasks[t]);
                pad_path_join(pm, sizeof pm, pt2, "metrics.json");
                if (!pad_path_is_file(pm)) continue;
                unit_rec u;
                st = read_unit(pm, ds, cls, k, seed, tasks[t], &u);
                if (st == PAD_OK && !add_unit(units, &u)) st = PAD_ERR_OOM;
            }
        }
        names_free(&seeds);
    }
    names_free(&ks);
    return st;
}

// <root>/<dataset>/<class>/k<k>/seed<s>/<task>/metrics.json, and the units of other methods in
// <root>/<dataset>/<method>/<class>/... (a folder holding the marker file method.txt, docs/winclip.md).
static pad_status scan_root(const char *root, unit_list *units) {
    name_list dss;
    PAD_TRY(list_dirs(root, &dss));
    pad_status st = PAD_OK;
    for (int a = 0; a < dss.n && st == PAD_OK; a++) {
        char pd[4096];
        pad_path_join(pd, sizeof pd, root, dss.v[a]);
        name_list cls;
        if ((st = list_dirs(pd, &cls)) != PAD_OK) break;
        for (int b = 0; b < cls.n && st == PAD_OK; b++) {
            char pc[4096], marker[4200];
            pad_path_join(pc, sizeof pc, pd, cls.v[b]);
            snprintf(marker, sizeof marker, "%s/method.txt", pc);
            if (!pad_path_is_file(marker)) {
                st = scan_class(pc, dss.v[a], cls.v[b], units);
                continue;
            }
            name_list mc;
            if ((st = list_dirs(pc, &mc)) != PAD_OK) break;
            for (int c = 0; c < mc.n && st == PAD_OK; c++) {
                char pmc[4096];
                pad_path_join(pmc, sizeof pmc, pc, mc.v[c]);
                st = scan_class(pmc, dss.v[a], mc.v[c], units);
            }
            names_free(&mc);
        }
        names_free(&cls);
    }
    names_free(&dss);
    return st;
}

// ----------------------------------------------------------------------------
// The paper's numbers

typedef struct paper_row {
    char dataset[16], cls[64], metric[24], method[32]; // method: 7th column, promptad when absent
    int shots;
    double mean, std;
} paper_row;

typedef struct paper_table {
    paper_row *v;
    int n;
} paper_table;

static void paper_load(const char *path, paper_table *pt) {
    pt->v = NULL;
    pt->n = 0;
    if (!path) return;
    char *text = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        PAD_LOG_WARN("%s: the paper's numbers are not available (%s); tables without them", path, strerror(errno));
        return;
    }
    fclose(probe);
    if (pad_read_file(path, &text, NULL) != PAD_OK) return;
    int cap = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || strncmp(line, "dataset,", 8) == 0) continue;
        paper_row r;
        memset(&r, 0, sizeof r);
        char mean[32] = "", std[32] = "";
        // dataset,class,metric,shots,mean,std[,method] (std may be empty)
        char *f[7] = {0};
        int nf = 0;
        char *p = line;
        while (nf < 7) {
            f[nf++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = 0;
            p = c + 1;
        }
        if (nf < 5) continue;
        snprintf(r.dataset, sizeof r.dataset, "%s", f[0]);
        snprintf(r.cls, sizeof r.cls, "%s", f[1]);
        snprintf(r.metric, sizeof r.metric, "%s", f[2]);
        r.shots = atoi(f[3]);
        snprintf(mean, sizeof mean, "%s", f[4]);
        if (nf > 5) snprintf(std, sizeof std, "%s", f[5]);
        snprintf(r.method, sizeof r.method, "%s", nf > 6 ? f[6] : "promptad");
        r.method[strcspn(r.method, "\r ")] = 0;
        size_t sl = strlen(std);
        while (sl && (std[sl - 1] == '\r' || std[sl - 1] == ' '))
            std[--sl] = 0;
        r.mean = mean[0] ? strtod(mean, NULL) : NAN;
        r.std = std[0] ? strtod(std, NULL) : NAN;
        if (pt->n == cap) {
            cap = cap ? cap * 2 : 512;
            paper_row *v = realloc(pt->v, (size_t)cap * sizeof *v);
            if (!v) break;
            pt->v = v;
        }
        pt->v[pt->n++] = r;
    }
    free(text);
}

// The method whose published numbers paper_find and paper_mean look up (set per table by write_dataset).
static const char *g_paper_method = "promptad";

static const paper_row *paper_find(const paper_table *pt, const char *format, const char *cls, const char *metric,
                                   int shots) {
    for (int i = 0; i < pt->n; i++) {
        const paper_row *r = &pt->v[i];
        if (r->shots == shots && strcmp(r->dataset, format) == 0 && strcmp(r->cls, cls) == 0 &&
            strcmp(r->metric, metric) == 0 && strcmp(r->method, g_paper_method) == 0)
            return r;
    }
    return NULL;
}

// The paper's value for the dataset-mean row over `classes`: the published mean when they are all of the paper's
// classes for (format, metric, shots); else the mean of the published per-class means when each class has one
// (*subset = true); else NULL.
static const paper_row *paper_mean(const paper_table *pt, const char *format, char *const *classes, int n_classes,
                                   const char *metric, int shots, paper_row *tmp, bool *subset) {
    *subset = false;
    int n_paper = 0;
    for (int i = 0; i < pt->n; i++) {
        const paper_row *r = &pt->v[i];
        if (r->shots == shots && strcmp(r->dataset, format) == 0 && strcmp(r->metric, metric) == 0 &&
            strcmp(r->cls, "mean") != 0 && strcmp(r->method, g_paper_method) == 0)
            n_paper++;
    }
    double acc = 0;
    for (int c = 0; c < n_classes; c++) {
        const paper_row *r = paper_find(pt, format, classes[c], metric, shots);
        if (!r || isnan(r->mean)) return NULL;
        acc += r->mean;
    }
    if (n_classes == n_paper) {
        const paper_row *r = paper_find(pt, format, "mean", metric, shots);
        if (r) return r;
    }
    if (n_classes == 0) return NULL;
    *tmp = *paper_find(pt, format, classes[0], metric, shots);
    tmp->mean = acc / n_classes;
    tmp->std = NAN;
    *subset = n_classes != n_paper;
    return tmp;
}

static bool paper_has_dataset(const paper_table *pt, const char *format) {
    for (int i = 0; i < pt->n; i++)
        if (strcmp(pt->v[i].dataset, format) == 0) return true;
    return false;
}

// ----------------------------------------------------------------------------
// Aggregation and writing

typedef struct stat_ms {
    double mean, std;
    int n;
} stat_ms;

static stat_ms mean_std(const double *v, int n) {
    stat_ms r = {NAN, NAN, 0};
    double s = 0;
    int c = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) {
            s += v[i];
            c++;
        }
    if (!c) return r;
    r.mean = s / c;
    double q = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) q += (v[i] - r.mean) * (v[i] - r.mean);
    r.std = sqrt(q / c);
    r.n = c;
    return r;
}

static void fmt_ms(char *buf, size_t cap, stat_ms s) {
    if (s.n == 0 || isnan(s.mean))
        snprintf(buf, cap, "–");
    else if (s.n == 1 || isnan(s.std))
        snprintf(buf, cap, "%.1f", 100.0 * s.mean);
    else
        snprintf(buf, cap, "%.1f ± %.1f", 100.0 * s.mean, 100.0 * s.std);
}

static void fmt_paper(char *buf, size_t cap, const paper_row *r) {
    if (!r || isnan(r->mean))
        snprintf(buf, cap, "n/a");
    else if (isnan(r->std))
        snprintf(buf, cap, "%.1f", r->mean);
    else
        snprintf(buf, cap, "%.1f ± %.1f", r->mean, r->std);
}

static void csv_num(char *buf, size_t cap, double v) {
    if (isnan(v))
        buf[0] = 0;
    else
        snprintf(buf, cap, "%.6f", v);
}

// The table columns: metric, preferred task, header.
static const struct {
    int metric;
    const char *task;
    const char *header;
} k_cols[] = {
    {M_IAUROC, "cls", "I-AUROC"},
    {M_PAUROC, "seg", "P-AUROC"},
    {M_IAUPR, "cls", "I-AUPR"},
    {M_PRO, "seg", "PRO"},
};
#define N_COLS 4

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int add_unique_int(int *v, int n, int x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return n;
    v[n] = x;
    return n + 1;
}

// Class order: the format's official order first, then the others sorted.
static int class_rank(const char *format, const char *cls) {
    pad_dataset_format f;
    static const char *const fmts[] = {"mvtec", "visa", "mpdd", "loco"};
    for (int i = 0; i < 4; i++)
        if (strcmp(format, fmts[i]) == 0) {
            f = (pad_dataset_format)i;
            int n;
            const char *const *names = pad_dataset_official_classes(f, &n);
            for (int j = 0; j < n; j++)
                if (strcmp(names[j], cls) == 0) return j;
        }
    return 1000;
}

static const char *g_sort_format;
static int cmp_class(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int rx = class_rank(g_sort_format, x), ry = class_rank(g_sort_format, y);
    if (rx != ry) return rx - ry;
    return strcmp(x, y);
}

// Values of metric m of task `task` for (class, k) over `seeds` (NaN where missing).
static void gather(const unit_list *ul, const char *ds, const char *proto, const char *cls, int k, const char *task,
                   int m, const int *seeds, int n_seeds, double *out) {
    for (int s = 0; s < n_seeds; s++) {
        out[s] = NAN;
        for (int i = 0; i < ul->n; i++) {
            const unit_rec *u = &ul->v[i];
            if (u->k == k && u->seed == seeds[s] && strcmp(u->dataset, ds) == 0 && strcmp(u->protocol, proto) == 0 &&
                strcmp(u->cls, cls) == 0 && strcmp(u->task, task) == 0) {
                out[s] = u->m[m];
                break;
            }
        }
    }
}

// The mean row over classes of one metric. vals holds the per-seed values of every class (class c at
// vals[c * n_sd], n_sd <= 256 seeds, NaN where missing) and cls_means each class's mean over its seeds (NaN: a class
// without this metric, left out). The mean and std are those of the per-seed means over the classes, for the seeds
// present in every class that has the metric; when no seed is, the mean of the class means with std NaN.
static stat_ms class_mean(const double *vals, const double *cls_means, int n_classes, int n_sd) {
    double per_seed[256];
    int np = 0;
    for (int s2 = 0; s2 < n_sd; s2++) {
        double acc = 0;
        int nc = 0;
        bool all = true;
        for (int c2 = 0; c2 < n_classes; c2++) {
            if (isnan(cls_means[c2])) continue;
            double v = vals[(size_t)c2 * (size_t)n_sd + (size_t)s2];
            if (isnan(v)) all = false;
            acc += v;
            nc++;
        }
        if (all && nc) per_seed[np++] = acc / nc;
    }
    if (np) return mean_std(per_seed, np);
    stat_ms s = mean_std(cls_means, n_classes);
    s.std = NAN;
    return s;
}

static bool has_task(const unit_list *ul, const char *ds, const char *proto, int k, const char *task) {
    for (int i = 0; i < ul->n; i++) {
        const unit_rec *u = &ul->v[i];
        if (u->k == k && strcmp(u->dataset, ds) == 0 && strcmp(u->protocol, proto) == 0 && strcmp(u->task, task) == 0)
            return true;
    }
    return false;
}

// Mean over seeds of metric m (task preferred, else the other) of (group, class, k); NaN when absent.
static double group_value(const unit_list *ul, const char *ds, const char *group, const char *cls, int k, int m,
                          const char *task) {
    if (!has_task(ul, ds, group, k, task)) task = strcmp(task, "cls") ? "cls" : "seg";
    double acc = 0;
    int n = 0;
    for (int i = 0; i < ul->n; i++) {
        const unit_rec *u = &ul->v[i];
        if (u->k == k && !isnan(u->m[m]) && strcmp(u->dataset, ds) == 0 && strcmp(u->protocol, group) == 0 &&
            strcmp(u->cls, cls) == 0 && strcmp(u->task, task) == 0) {
            acc += u->m[m];
            n++;
        }
    }
    return n ? acc / n : NAN;
}

// The methods side by side (docs/winclip.md): one column pair (I-AUROC, P-AUROC) per (method group, k) present,
// each cell "ours (paper)", rows the classes and their plain mean. Written only when a baseline method ran.
static void side_by_side(const unit_list *ul, const char *ds, const char *format, char (*groups)[48], int n_groups,
                         const int *ks, int n_ks, char *const *classes, int n_classes, const paper_table *pt,
                         pad_sbuf *md) {
    bool baseline = false;
    for (int g = 0; g < n_groups; g++)
        baseline = baseline || strchr(groups[g], '/') != NULL;
    if (!baseline) return;
    struct col_t {
        int g, k;
    } col[64];
    int nc = 0;
    for (int g = 0; g < n_groups; g++)
        for (int ki = 0; ki < n_ks && nc < 64; ki++)
            if (has_task(ul, ds, groups[g], ks[ki], "cls") || has_task(ul, ds, groups[g], ks[ki], "seg"))
                col[nc++] = (struct col_t){g, ks[ki]};
    pad_sb_printf(md,
                  "\n## Methods side by side (mean over seeds; *paper* in parentheses where published)\n\n| class |");
    for (int c = 0; c < nc; c++) {
        const char *g = groups[col[c].g], *m = strchr(g, '/');
        pad_sb_printf(md, " %s %d-shot%s I-AUROC | P-AUROC |", m ? m + 1 : "promptad", col[c].k,
                      col[c].k == 0 ? " (zero-shot)" : "");
    }
    pad_sb_printf(md, "\n|---|");
    for (int c = 0; c < nc; c++)
        pad_sb_printf(md, "---:|---:|");
    pad_sb_printf(md, "\n");
    for (int r = 0; r <= n_classes; r++) {
        const char *cname = r < n_classes ? classes[r] : "mean";
        pad_sb_printf(md, r < n_classes ? "| %s |" : "| **%s** |", cname);
        for (int c = 0; c < nc; c++) {
            const char *g = groups[col[c].g], *m = strchr(g, '/');
            g_paper_method = m ? m + 1 : "promptad";
            for (int q = 0; q < 2; q++) {
                const int metric = q ? M_PAUROC : M_IAUROC;
                double v = 0;
                int n = 0;
                for (int c2 = r < n_classes ? r : 0; c2 < (r < n_classes ? r + 1 : n_classes); c2++) {
                    double x = group_value(ul, ds, g, classes[c2], col[c].k, metric, q ? "seg" : "cls");
                    if (!isnan(x)) v += x, n++;
                }
                const paper_row *pr = pt ? paper_find(pt, format, cname, k_metric_keys[metric], col[c].k) : NULL;
                char a[32] = "–", b[48] = "";
                if (n) snprintf(a, sizeof a, "%.1f", 100.0 * v / n);
                if (pr && !isnan(pr->mean)) snprintf(b, sizeof b, " (%.1f)", pr->mean);
                pad_sb_printf(md, " %s%s |", a, b);
            }
        }
        pad_sb_printf(md, "\n");
    }
}

static pad_status write_dataset(const unit_list *ul, const char *ds, const char *out_dir, const paper_table *pt,
                                pad_sbuf *md_all) {
    // what this dataset holds
    char format[16] = "";
    char protos[16][48];
    int n_protos = 0;
    int ks[64], n_ks = 0, seeds[256], n_seeds_all = 0;
    char **classes = NULL;
    int n_classes = 0;
    char hashes[8][24];
    int n_hashes = 0;
    for (int i = 0; i < ul->n; i++) {
        const unit_rec *u = &ul->v[i];
        if (strcmp(u->dataset, ds) != 0) continue;
        if (!format[0] && u->format[0]) snprintf(format, sizeof format, "%s", u->format);
        bool seen = false;
        for (int p = 0; p < n_protos; p++)
            seen = seen || strcmp(protos[p], u->protocol) == 0;
        if (!seen && n_protos < 16) snprintf(protos[n_protos++], 48, "%s", u->protocol);
        seen = false;
        for (int h = 0; h < n_hashes; h++)
            seen = seen || strcmp(hashes[h], u->hash) == 0;
        if (!seen && n_hashes < 8) snprintf(hashes[n_hashes++], 24, "%s", u->hash);
        if (n_ks < 64) n_ks = add_unique_int(ks, n_ks, u->k);
        if (n_seeds_all < 256) n_seeds_all = add_unique_int(seeds, n_seeds_all, u->seed);
        seen = false;
        for (int c = 0; c < n_classes; c++)
            seen = seen || strcmp(classes[c], u->cls) == 0;
        if (!seen) {
            char **v = realloc(classes, (size_t)(n_classes + 1) * sizeof *v);
            if (!v) {
                free(classes);
                return PAD_ERR_OOM;
            }
            classes = v;
            classes[n_classes++] = (char *)u->cls;
        }
    }
    qsort(ks, (size_t)n_ks, sizeof ks[0], cmp_int);
    qsort(seeds, (size_t)n_seeds_all, sizeof seeds[0], cmp_int);
    g_sort_format = format;
    qsort(classes, (size_t)n_classes, sizeof classes[0], cmp_class);
    if (n_hashes > 1)
        PAD_LOG_WARN("dataset %s: units computed with %d different configurations (config hashes %s, %s%s) are "
                     "summarised together",
                     ds, n_hashes, hashes[0], hashes[1], n_hashes > 2 ? ", ..." : "");
    bool paper = pt && format[0] && paper_has_dataset(pt, format);

    pad_sbuf csv = {0}, md = {0};
    pad_sb_printf(&csv, "dataset,protocol,k,class,task,metric,mean,std,n_seeds,seeds,paper_mean,paper_std\n");
    pad_sb_printf(&md, "# promptad results: %s\n\n", ds);
    pad_sb_printf(
        &md,
        "Mean ± std over seeds (population std) in %%; image metrics from the cls task, pixel metrics from "
        "the seg task (as in the paper). PRO = MVTec AU-PRO up to FPR 0.3. – = undefined for the class's "
        "test set (no anomalous image: no AUROC; no masks: no pixel metric) or not run.%s Config hash%s:",
        paper ? " *paper* = the published numbers of the table's method (PromptAD's, WinCLIP+'s, SPADE's, PaDiM's "
                "or PatchCore's; configs/paper_results.csv; n/a: not published)."
              : "",
        n_hashes > 1 ? "es" : "");
    for (int h = 0; h < n_hashes; h++)
        pad_sb_printf(&md, " `%s`", hashes[h]);
    pad_sb_printf(&md, ".\n");

    double *vals = malloc(sizeof(double) * (size_t)(n_seeds_all + 1) * (size_t)(n_classes + 1));
    double *cls_means = malloc(sizeof(double) * (size_t)(n_classes + 1));
    if (!vals || !cls_means) {
        free(vals);
        free(cls_means);
        free(classes);
        free(csv.s);
        free(md.s);
        return PAD_ERR_OOM;
    }
    for (int p = 0; p < n_protos; p++) {
        const char *proto = protos[p];
        g_paper_method = strchr(proto, '/') ? strchr(proto, '/') + 1 : "promptad";
        for (int ki = 0; ki < n_ks; ki++) {
            int k = ks[ki];
            if (!has_task(ul, ds, proto, k, "cls") && !has_task(ul, ds, proto, k, "seg")) continue;
            // seeds present for this (protocol, k)
            int sd[256], n_sd = 0;
            for (int i = 0; i < ul->n; i++) {
                const unit_rec *u = &ul->v[i];
                if (u->k == k && strcmp(u->dataset, ds) == 0 && strcmp(u->protocol, proto) == 0 && n_sd < 256)
                    n_sd = add_unique_int(sd, n_sd, u->seed);
            }
            qsort(sd, (size_t)n_sd, sizeof sd[0], cmp_int);
            // long CSV: every task and metric
            for (int t = 0; t < 2; t++) {
                const char *task = t ? "seg" : "cls";
                if (!has_task(ul, ds, proto, k, task)) continue;
                for (int m = 0; m < N_METRICS; m++) {
                    bool any = false;
                    for (int c = 0; c <= n_classes; c++) {
                        double *row = vals + (size_t)c * (size_t)n_sd;
                        if (c < n_classes) gather(ul, ds, proto, classes[c], k, task, m, sd, n_sd, row);
                        stat_ms s;
                        const char *cname;
                        if (c < n_classes) {
                            s = mean_std(row, n_sd);
                            cname = classes[c];
                            cls_means[c] = s.mean;
                            any = any || s.n > 0;
                        } else {
                            if (!any) break;
                            s = class_mean(vals, cls_means, n_classes, n_sd);
                            cname = "mean";
                        }
                        if (s.n == 0) continue;
                        const paper_row *pr = NULL;
                        bool paper_task = (m == M_IAUROC || m == M_IAUPR) ? t == 0 : t == 1;
                        paper_row tmp;
                        bool subset;
                        if (paper && paper_task)
                            pr = c < n_classes
                                     ? paper_find(pt, format, cname, k_metric_keys[m], k)
                                     : paper_mean(pt, format, classes, n_classes, k_metric_keys[m], k, &tmp, &subset);
                        char a[32], b2[32], pm[32], ps[32], seedlist[2048] = "";
                        csv_num(a, sizeof a, s.mean);
                        csv_num(b2, sizeof b2, s.std);
                        csv_num(pm, sizeof pm, pr ? pr->mean / 100.0 : NAN);
                        csv_num(ps, sizeof ps, pr ? pr->std / 100.0 : NAN);
                        if (c < n_classes) {
                            for (int s2 = 0; s2 < n_sd; s2++)
                                if (!isnan(row[s2])) {
                                    size_t l = strlen(seedlist);
                                    snprintf(seedlist + l, sizeof seedlist - l, "%s%d", l ? " " : "", sd[s2]);
                                }
                        }
                        pad_sb_printf(&csv, "%s,%s,%d,%s,%s,%s,%s,%s,%d,%s,%s,%s\n", ds, proto, k, cname, task,
                                      k_metric_keys[m], a, b2, s.n, seedlist, pm, ps);
                    }
                }
            }
            // Markdown: the paper's four columns
            const char *col_task[N_COLS];
            for (int ci = 0; ci < N_COLS; ci++) {
                col_task[ci] = k_cols[ci].task;
                if (!has_task(ul, ds, proto, k, col_task[ci]))
                    col_task[ci] = strcmp(col_task[ci], "cls") ? "cls" : "seg";
            }
            pad_sb_printf(&md, "\n## %s, %d-shot (%d seed%s: ", proto, k, n_sd, n_sd == 1 ? "" : "s");
            for (int s2 = 0; s2 < n_sd; s2++)
                pad_sb_printf(&md, "%s%d", s2 ? " " : "", sd[s2]);
            pad_sb_printf(&md, ")\n\n| class |");
            for (int ci = 0; ci < N_COLS; ci++) {
                bool other = strcmp(col_task[ci], k_cols[ci].task) != 0;
                pad_sb_printf(&md, " %s%s%s%s |", k_cols[ci].header, other ? " (" : "", other ? col_task[ci] : "",
                              other ? " task)" : "");
                if (paper) pad_sb_printf(&md, " paper |");
            }
            bool any_subset = false;
            pad_sb_printf(&md, "\n|---|");
            for (int ci = 0; ci < N_COLS; ci++)
                pad_sb_printf(&md, paper ? "---:|---:|" : "---:|");
            pad_sb_printf(&md, "\n");
            for (int c = 0; c <= n_classes; c++) {
                pad_sb_printf(&md, c < n_classes ? "| %s |" : "| **%s** |", c < n_classes ? classes[c] : "mean");
                for (int ci = 0; ci < N_COLS; ci++) {
                    int m = k_cols[ci].metric;
                    stat_ms s;
                    if (c < n_classes) {
                        gather(ul, ds, proto, classes[c], k, col_task[ci], m, sd, n_sd, vals);
                        s = mean_std(vals, n_sd);
                    } else {
                        for (int c2 = 0; c2 < n_classes; c2++) {
                            gather(ul, ds, proto, classes[c2], k, col_task[ci], m, sd, n_sd,
                                   vals + (size_t)c2 * (size_t)n_sd);
                            cls_means[c2] = mean_std(vals + (size_t)c2 * (size_t)n_sd, n_sd).mean;
                        }
                        s = class_mean(vals, cls_means, n_classes, n_sd);
                    }
                    char a[48], b2[48];
                    fmt_ms(a, sizeof a, s);
                    pad_sb_printf(&md, c < n_classes ? " %s |" : " **%s** |", a);
                    if (paper) {
                        paper_row tmp;
                        bool subset = false;
                        const paper_row *pr = c < n_classes ? paper_find(pt, format, classes[c], k_metric_keys[m], k)
                                                            : paper_mean(pt, format, classes, n_classes,
                                                                         k_metric_keys[m], k, &tmp, &subset);
                        fmt_paper(b2, sizeof b2, pr);
                        pad_sb_printf(&md, " %s%s |", b2, subset ? "*" : "");
                        any_subset = any_subset || subset;
                    }
                }
                pad_sb_printf(&md, "\n");
            }
            if (any_subset)
                pad_sb_printf(&md, "\n\\* the paper's per-class means averaged over the classes of this table (the "
                                   "published dataset mean covers every class).\n");
        }
    }
    side_by_side(ul, ds, format, protos, n_protos, ks, n_ks, classes, n_classes, pt, &md);
    g_paper_method = "promptad";
    free(vals);
    free(cls_means);
    free(classes);
    pad_status st = PAD_OK;
    if (csv.oom || md.oom) st = PAD_ERR_OOM;
    char dir[4096], path[4200];
    pad_path_join(dir, sizeof dir, out_dir, ds);
    if (st == PAD_OK) st = pad_mkdir_p(dir);
    if (st == PAD_OK) {
        snprintf(path, sizeof path, "%s/summary.csv", dir);
        st = pad_write_file_atomic(path, csv.s, csv.n);
    }
    if (st == PAD_OK) {
        snprintf(path, sizeof path, "%s/summary.md", dir);
        st = pad_write_file_atomic(path, md.s, md.n);
    }
    if (st == PAD_OK && md_all) pad_sb_printf(md_all, "%s%s", md_all->n ? "\n" : "", md.s);
    free(csv.s);
    free(md.s);
    return st;
}

pad_status pad_report_write(const char *const *dirs, int n_dirs, const char *out_dir, const char *paper_csv,
                            char **md_out, int *n_units) {
    if (md_out) *md_out = NULL;
    if (n_units) *n_units = 0;
    unit_list ul = {0};
    pad_status st = PAD_OK;
    for (int i = 0; i < n_dirs && st == PAD_OK; i++) {
        if (!pad_path_is_dir(dirs[i])) {
            PAD_LOG_ERROR("%s: not a results folder", dirs[i]);
            st = PAD_ERR_IO;
            break;
        }
        st = scan_root(dirs[i], &ul);
    }
    if (st != PAD_OK) {
        free(ul.v);
        return st == PAD_ERR_OOM ? st : (st == PAD_ERR_IO ? st : PAD_ERR_FORMAT);
    }
    if (n_units) *n_units = ul.n;
    if (ul.n == 0) {
        PAD_LOG_WARN("no finished unit (<dataset>/<class>/k<k>/seed<s>/<task>/metrics.json) under %s%s", dirs[0],
                     n_dirs > 1 ? " and the other folders" : "");
        free(ul.v);
        return PAD_OK;
    }
    paper_table pt;
    paper_load(paper_csv, &pt);
    pad_sbuf md = {0};
    // datasets in first-seen order
    const char **ds = malloc((size_t)ul.n * sizeof *ds), **srcs = malloc((size_t)ul.n * sizeof *srcs);
    int n_ds = 0;
    if (!ds || !srcs) st = PAD_ERR_OOM;
    for (int i = 0; i < ul.n && st == PAD_OK; i++) {
        bool done = false;
        for (int j = 0; j < i; j++)
            done = done || strcmp(ul.v[j].dataset, ul.v[i].dataset) == 0;
        if (!done) st = write_dataset(&ul, ul.v[i].dataset, out_dir, &pt, md_out ? &md : NULL);
        if (!done) ds[n_ds++] = ul.v[i].dataset;
        srcs[i] = ul.v[i].src;
    }
    if (st == PAD_OK) st = pad_report_html_write(out_dir, ds, n_ds, srcs, ul.n);
    free(ds);
    free(srcs);
    free(pt.v);
    free(ul.v);
    if (st == PAD_OK && md_out) {
        if (md.oom) {
            free(md.s);
            return PAD_ERR_OOM;
        }
        *md_out = md.s;
    } else {
        free(md.s);
    }
    return st;
}
