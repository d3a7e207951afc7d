/* report_html.c - report.html (report_html.h): the page skeleton, the summary tables (from each dataset's
 * summary.csv, so the page shows exactly the numbers of the tables), the data of the bar charts, the gallery and
 * the unit index with each unit's details as an inert JSON block. */
#include "report_html.h"

#include "fsutil.h"
#include "log.h"
#include "report_page.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_SUMMARY_BYTES (64 << 20)
#define MAX_LIST          256 // distinct classes, (protocol, k) groups or methods shown per dataset
#define THUMB_SIDE        96
#define THUMBS_PER_KIND   3 // per class in the dataset gallery: this many defects and as many good images

// One row of summary.csv (report.h); values are kept as written (fractions with 6 decimals, empty when undefined).
typedef struct rh_row {
    char method[32], protocol[48], cls[128], task[8], metric[24]; // protocol: "clean", or "official/patchcore", ...
    int k, n_seeds;
    char mean[24], std[24], pmean[24], pstd[24];
} rh_row;

typedef struct rh_summary {
    rh_row *v;
    int n;
    const char *cls[MAX_LIST]; // first-seen order, "mean" last
    int n_cls;
    int gk[MAX_LIST]; // (protocol, k) groups: gp[i] indexes a row holding the protocol
    const char *gp[MAX_LIST];
    int n_groups;
    const char *methods[MAX_LIST];
    int n_methods;
} rh_summary;

// The table columns: metric key, preferred task (image metrics from cls, pixel metrics from seg), header.
static const struct {
    const char *metric, *task, *header;
} k_cols[4] = {
    {"image_auroc", "cls", "I-AUROC"},
    {"pixel_auroc", "seg", "P-AUROC"},
    {"image_aupr", "cls", "I-AUPR"},
    {"pixel_pro", "seg", "PRO"},
};

static void field(char *dst, size_t cap, const char *const *f, int nf, int col) {
    snprintf(dst, cap, "%s", col >= 0 && col < nf ? f[col] : "");
}

static int add_name(const char **list, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0) return n;
    if (n < MAX_LIST) list[n++] = s;
    return n;
}

// Parses summary.csv by its header's column names (a "method" column is optional).
static pad_status load_summary(const char *path, rh_summary *s) {
    memset(s, 0, sizeof *s);
    struct stat sb;
    if (stat(path, &sb) != 0 || sb.st_size > MAX_SUMMARY_BYTES) {
        PAD_LOG_ERROR("%s: missing or over %d bytes", path, MAX_SUMMARY_BYTES);
        return PAD_ERR_IO;
    }
    char *text = NULL;
    PAD_TRY(pad_read_file(path, &text, NULL));
    static const char *const names[] = {"method", "protocol", "k",       "class",      "task",     "metric",
                                        "mean",   "std",      "n_seeds", "paper_mean", "paper_std"};
    enum { C_METHOD, C_PROTO, C_K, C_CLASS, C_TASK, C_METRIC, C_MEAN, C_STD, C_NSEEDS, C_PMEAN, C_PSTD, N_NAMES };
    int col[N_NAMES];
    for (int i = 0; i < N_NAMES; i++)
        col[i] = -1;
    int cap = 0;
    pad_status st = PAD_OK;
    char *save = NULL;
    bool header = true;
    for (char *line = strtok_r(text, "\n", &save); line && st == PAD_OK; line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[l - 1] = 0;
        const char *f[32];
        int nf = 0;
        for (char *p = line; nf < 32;) {
            f[nf++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = 0;
            p = c + 1;
        }
        if (header) {
            for (int i = 0; i < nf; i++)
                for (int j = 0; j < N_NAMES; j++)
                    if (strcmp(f[i], names[j]) == 0) col[j] = i;
            header = false;
            if (col[C_PROTO] < 0 || col[C_K] < 0 || col[C_CLASS] < 0 || col[C_METRIC] < 0 || col[C_MEAN] < 0) {
                PAD_LOG_ERROR("%s: not a promptad summary (header without protocol, k, class, metric, mean)", path);
                st = PAD_ERR_FORMAT;
            }
            continue;
        }
        if (s->n == cap) {
            cap = cap ? 2 * cap : 256;
            rh_row *v = realloc(s->v, (size_t)cap * sizeof *v);
            if (!v) {
                st = PAD_ERR_OOM;
                break;
            }
            s->v = v;
        }
        rh_row *r = &s->v[s->n];
        field(r->method, sizeof r->method, f, nf, col[C_METHOD]);
        if (!r->method[0]) snprintf(r->method, sizeof r->method, "promptad");
        field(r->protocol, sizeof r->protocol, f, nf, col[C_PROTO]);
        field(r->cls, sizeof r->cls, f, nf, col[C_CLASS]);
        field(r->task, sizeof r->task, f, nf, col[C_TASK]);
        field(r->metric, sizeof r->metric, f, nf, col[C_METRIC]);
        field(r->mean, sizeof r->mean, f, nf, col[C_MEAN]);
        field(r->std, sizeof r->std, f, nf, col[C_STD]);
        field(r->pmean, sizeof r->pmean, f, nf, col[C_PMEAN]);
        field(r->pstd, sizeof r->pstd, f, nf, col[C_PSTD]);
        char kbuf[16], nbuf[16];
        field(kbuf, sizeof kbuf, f, nf, col[C_K]);
        field(nbuf, sizeof nbuf, f, nf, col[C_NSEEDS]);
        char *end = NULL;
        long k = strtol(kbuf, &end, 10);
        if (end == kbuf || *end || k < 0 || k > 100000) {
            PAD_LOG_ERROR("%s: row %d: bad k '%s'", path, s->n + 2, kbuf);
            st = PAD_ERR_FORMAT;
            break;
        }
        r->k = (int)k;
        r->n_seeds = atoi(nbuf);
        s->n++;
    }
    free(text);
    if (st != PAD_OK) {
        free(s->v);
        memset(s, 0, sizeof *s);
        return st;
    }
    for (int i = 0; i < s->n; i++) {
        const rh_row *r = &s->v[i];
        if (strcmp(r->cls, "mean") != 0) s->n_cls = add_name(s->cls, s->n_cls, r->cls);
        s->n_methods = add_name(s->methods, s->n_methods, r->method);
        bool seen = false;
        for (int g = 0; g < s->n_groups && !seen; g++)
            seen = s->gk[g] == r->k && strcmp(s->gp[g], r->protocol) == 0;
        if (!seen && s->n_groups < MAX_LIST) {
            s->gk[s->n_groups] = r->k;
            s->gp[s->n_groups++] = r->protocol;
        }
    }
    s->n_cls = add_name(s->cls, s->n_cls, "mean");
    return PAD_OK;
}

static const rh_row *find_row(const rh_summary *s, const char *method, const char *proto, int k, const char *cls,
                              const char *task, const char *metric) {
    for (int i = 0; i < s->n; i++) {
        const rh_row *r = &s->v[i];
        if (r->k == k && strcmp(r->cls, cls) == 0 && strcmp(r->metric, metric) == 0 && strcmp(r->task, task) == 0 &&
            strcmp(r->protocol, proto) == 0 && strcmp(r->method, method) == 0)
            return r;
    }
    return NULL;
}

// The task a column reads for (protocol, k): the preferred one when any row has it, else the other.
static const char *col_task(const rh_summary *s, const char *proto, int k, int c) {
    for (int i = 0; i < s->n; i++)
        if (s->v[i].k == k && strcmp(s->v[i].protocol, proto) == 0 && strcmp(s->v[i].task, k_cols[c].task) == 0)
            return k_cols[c].task;
    return strcmp(k_cols[c].task, "cls") == 0 ? "seg" : "cls";
}

// "91.2 ± 1.0" (percent; the std only over more than one seed), "–" when undefined. Returns the mean in percent
// (NaN when undefined).
static double fmt_pct(char *buf, size_t cap, const char *mean, const char *std, bool with_std) {
    char *end = NULL;
    double m = mean[0] ? strtod(mean, &end) : NAN;
    double sd = std[0] ? strtod(std, NULL) : NAN;
    if (isnan(m))
        snprintf(buf, cap, "–");
    else if (!with_std || isnan(sd))
        snprintf(buf, cap, "%.1f", 100.0 * m);
    else
        snprintf(buf, cap, "%.1f ± %.1f", 100.0 * m, 100.0 * sd);
    return isnan(m) ? NAN : 100.0 * m;
}

static void cell(pad_sbuf *b, const rh_row *r, const char *key, bool paper, bool bold) {
    char txt[64];
    if (!r) {
        pad_sb_printf(b, "<td class=\"%s\">%s</td>", paper ? "p" : "v", paper ? "n/a" : "–");
        return;
    }
    const char *mean = paper ? r->pmean : r->mean, *std = paper ? r->pstd : r->std;
    fmt_pct(txt, sizeof txt, mean, std, paper || r->n_seeds > 1);
    if (paper && !mean[0]) snprintf(txt, sizeof txt, "n/a");
    pad_sb_printf(b, "<td class=\"%s\" data-key=\"", paper ? "p" : "v");
    pad_sb_html(b, key);
    pad_sb_printf(b, "\" data-mean=\"%s\" data-std=\"%s\">%s%s%s</td>", mean, std, bold ? "<b>" : "", txt,
                  bold ? "</b>" : "");
}

// One table per (protocol, k): a row per class and the mean; per metric column one cell per method, then the paper.
static void write_tables(pad_sbuf *b, const rh_summary *s) {
    bool any_paper = false;
    for (int i = 0; i < s->n && !any_paper; i++)
        any_paper = s->v[i].pmean[0] != 0;
    for (int g = 0; g < s->n_groups; g++) {
        const char *proto = s->gp[g];
        int k = s->gk[g];
        const char *task[4];
        for (int c = 0; c < 4; c++)
            task[c] = col_task(s, proto, k, c);
        pad_sb_printf(b, "<h3>%s protocol, %d-shot</h3>\n<div class=\"scroll\"><table class=\"sum\" data-protocol=\"",
                      proto, k);
        pad_sb_html(b, proto);
        pad_sb_printf(b, "\" data-k=\"%d\"><thead><tr><th rowspan=\"2\">class</th>", k);
        for (int c = 0; c < 4; c++) {
            pad_sb_printf(b, "<th colspan=\"%d\">%s%s%s%s</th>", s->n_methods + (any_paper ? 1 : 0), k_cols[c].header,
                          strcmp(task[c], k_cols[c].task) ? " (" : "", strcmp(task[c], k_cols[c].task) ? task[c] : "",
                          strcmp(task[c], k_cols[c].task) ? " task)" : "");
        }
        pad_sb_printf(b, "</tr><tr>");
        for (int c = 0; c < 4; c++) {
            for (int m = 0; m < s->n_methods; m++) {
                pad_sb_printf(b, "<th>");
                pad_sb_html(b, s->methods[m]);
                pad_sb_printf(b, "</th>");
            }
            if (any_paper) pad_sb_printf(b, "<th>paper</th>");
        }
        pad_sb_printf(b, "</tr></thead><tbody>\n");
        for (int ci = 0; ci < s->n_cls; ci++) {
            const char *cls = s->cls[ci];
            bool mean = ci == s->n_cls - 1;
            pad_sb_printf(b, "<tr%s><th>", mean ? " class=\"mean\"" : "");
            pad_sb_html(b, cls);
            pad_sb_printf(b, "</th>");
            for (int c = 0; c < 4; c++) {
                const rh_row *first = NULL;
                for (int m = 0; m < s->n_methods; m++) {
                    const rh_row *r = find_row(s, s->methods[m], proto, k, cls, task[c], k_cols[c].metric);
                    char key[512];
                    snprintf(key, sizeof key, "%s|%d|%s|%s|%s|%s", proto, k, cls, task[c], k_cols[c].metric,
                             s->methods[m]);
                    cell(b, r, key, false, mean);
                    if (!first) first = r;
                }
                if (any_paper) {
                    char key[512];
                    snprintf(key, sizeof key, "%s|%d|%s|%s|%s|paper", proto, k, cls, task[c], k_cols[c].metric);
                    cell(b, first, key, true, mean);
                }
            }
            pad_sb_printf(b, "</tr>\n");
        }
        pad_sb_printf(b, "</tbody></table></div>\n");
    }
}

// The methods side by side (as summary.md's table): when a baseline ran (a protocol "<protocol>/<method>"), one
// column pair (I-AUROC, P-AUROC) per (protocol, k) group, each cell "ours (paper)" without the std; rows the classes
// and the mean. Cells carry data-side="<protocol>|<k>|<class>|<metric>" (not data-key: the summary tables' cells).
static void write_side_by_side(pad_sbuf *b, const rh_summary *s) {
    bool baseline = false;
    for (int g = 0; g < s->n_groups; g++)
        baseline = baseline || strchr(s->gp[g], '/') != NULL;
    if (!baseline) return;
    pad_sb_printf(b, "<h3>Methods side by side</h3>\n<p class=\"note\">Mean over seeds in %%, <i>paper</i> in "
                     "parentheses where published (each method's own published numbers).</p>\n<div "
                     "class=\"scroll\"><table class=\"side\"><thead><tr><th rowspan=\"2\">class</th>");
    for (int g = 0; g < s->n_groups; g++) {
        const char *m = strchr(s->gp[g], '/');
        pad_sb_printf(b, "<th colspan=\"2\">");
        pad_sb_html(b, m ? m + 1 : "promptad");
        pad_sb_printf(b, " %d-shot%s</th>", s->gk[g], s->gk[g] == 0 ? " (zero-shot)" : "");
    }
    pad_sb_printf(b, "</tr><tr>");
    for (int g = 0; g < s->n_groups; g++)
        pad_sb_printf(b, "<th>I-AUROC</th><th>P-AUROC</th>");
    pad_sb_printf(b, "</tr></thead><tbody>\n");
    for (int ci = 0; ci < s->n_cls; ci++) {
        const char *cls = s->cls[ci];
        pad_sb_printf(b, "<tr%s><th>", ci == s->n_cls - 1 ? " class=\"mean\"" : "");
        pad_sb_html(b, cls);
        pad_sb_printf(b, "</th>");
        for (int g = 0; g < s->n_groups; g++)
            for (int c = 0; c < 2; c++) {
                const char *task = col_task(s, s->gp[g], s->gk[g], c);
                const rh_row *r = NULL;
                for (int m = 0; m < s->n_methods && !r; m++)
                    r = find_row(s, s->methods[m], s->gp[g], s->gk[g], cls, task, k_cols[c].metric);
                char ours[64] = "–", paper[64] = "";
                if (r) fmt_pct(ours, sizeof ours, r->mean, "", false);
                if (r && r->pmean[0]) fmt_pct(paper, sizeof paper, r->pmean, "", false);
                pad_sb_printf(b, "<td data-side=\"");
                pad_sb_html(b, s->gp[g]);
                pad_sb_printf(b, "|%d|", s->gk[g]);
                pad_sb_html(b, cls);
                pad_sb_printf(b, "|%s\">%s%s%s%s</td>", k_cols[c].metric, ours, paper[0] ? " (" : "", paper,
                              paper[0] ? ")" : "");
            }
        pad_sb_printf(b, "</tr>\n");
    }
    pad_sb_printf(b, "</tbody></table></div>\n");
}

// {"cols": [...], "classes": [...], "series": [{"name", "v": [[[mean, std, paper_mean, paper_std] | null per class]
// per column]}]} in percent, one series per (method, protocol, k).
static void write_bars_json(pad_sbuf *b, const rh_summary *s) {
    pad_sb_printf(b, "{\"cols\":[\"I-AUROC\",\"P-AUROC\",\"I-AUPR\",\"PRO\"],\"classes\":[");
    for (int ci = 0; ci < s->n_cls; ci++) {
        if (ci) pad_sb_put(b, ",", 1);
        pad_sb_json_str(b, s->cls[ci]);
    }
    pad_sb_printf(b, "],\"series\":[");
    int ns = 0;
    for (int m = 0; m < s->n_methods; m++)
        for (int g = 0; g < s->n_groups; g++) {
            char name[256];
            snprintf(name, sizeof name, "%s%s%s k=%d", s->n_methods > 1 ? s->methods[m] : "",
                     s->n_methods > 1 ? " " : "", s->gp[g], s->gk[g]);
            pad_sb_printf(b, "%s{\"name\":", ns++ ? "," : "");
            pad_sb_json_str(b, name);
            pad_sb_printf(b, ",\"v\":[");
            for (int c = 0; c < 4; c++) {
                const char *task = col_task(s, s->gp[g], s->gk[g], c);
                pad_sb_printf(b, "%s[", c ? "," : "");
                for (int ci = 0; ci < s->n_cls; ci++) {
                    const rh_row *r =
                        find_row(s, s->methods[m], s->gp[g], s->gk[g], s->cls[ci], task, k_cols[c].metric);
                    if (ci) pad_sb_put(b, ",", 1);
                    if (!r) {
                        pad_sb_printf(b, "null");
                        continue;
                    }
                    const char *v[4] = {r->mean, r->n_seeds > 1 ? r->std : "", r->pmean, r->pstd};
                    pad_sb_put(b, "[", 1);
                    for (int q = 0; q < 4; q++) {
                        if (q) pad_sb_put(b, ",", 1);
                        pad_sb_json_num(b, v[q][0] ? 100.0 * strtod(v[q], NULL) : NAN);
                    }
                    pad_sb_put(b, "]", 1);
                }
                pad_sb_put(b, "]", 1);
            }
            pad_sb_printf(b, "]}");
        }
    pad_sb_printf(b, "]}");
}

// The unit that stands for a class in the gallery: seg task first, then the most shots, then the lowest seed.
static int gallery_unit(const rh_unit *u, int n, const char *ds, const char *cls) {
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (strcmp(u[i].dataset, ds) != 0 || strcmp(u[i].cls, cls) != 0) continue;
        if (best < 0) {
            best = i;
            continue;
        }
        const rh_unit *a = &u[i], *o = &u[best];
        int ta = strcmp(a->task, "seg") == 0, to = strcmp(o->task, "seg") == 0;
        if (ta != to ? ta > to : a->k != o->k ? a->k > o->k : a->seed < o->seed) best = i;
    }
    return best;
}

static void thumb(pad_sbuf *b, const rh_unit *u, const rh_heat *h) {
    char p[4700];
    snprintf(p, sizeof p, "%s/heatmaps/%s", u->dir, h->name);
    pad_sbuf uri = {0};
    if (rh_thumb_data_uri(p, THUMB_SIDE, &uri) != PAD_OK || uri.oom) {
        pad_sb_free(&uri);
        return;
    }
    pad_sb_printf(b, "<a class=\"th %s\" href=\"%s\" title=\"", h->label == 1 ? "bad" : "good", u->href);
    pad_sb_html(b, h->name);
    pad_sb_printf(b, "\"><img alt=\"\" src=\"%s\"><span>", uri.s);
    pad_sb_html(b, h->name);
    pad_sb_printf(b, "<br>score %.4g</span></a>", h->score);
    pad_sb_free(&uri);
}

static void write_gallery(pad_sbuf *b, const rh_unit *u, int n, const char *ds, const rh_summary *s) {
    pad_sb_printf(b, "<h3>Heatmaps: the lowest-scored defects and the highest-scored good images</h3>\n"
                     "<p class=\"note\">Per class one unit (seg task, most shots, lowest seed); a thumbnail links to "
                     "its unit folder.</p>\n<div class=\"gallery\">");
    for (int ci = 0; ci + 1 < s->n_cls; ci++) {
        int gi = gallery_unit(u, n, ds, s->cls[ci]);
        if (gi < 0) continue;
        rh_heat *h = NULL;
        int nh = 0;
        if (rh_unit_heatmaps(&u[gi], &h, &nh) != PAD_OK || nh == 0) {
            free(h);
            continue;
        }
        pad_sb_printf(b, "<div class=\"gcls\"><div class=\"gname\">");
        pad_sb_html(b, s->cls[ci]);
        pad_sb_printf(b, " <small>k=%d seed %d %s</small></div>", u[gi].k, u[gi].seed, u[gi].task);
        int nb = 0, ng = 0;
        for (int i = 0; i < nh; i++) {
            if (h[i].label == 1 && nb < THUMBS_PER_KIND) {
                thumb(b, &u[gi], &h[i]);
                nb++;
            } else if (h[i].label == 0 && ng < THUMBS_PER_KIND) {
                thumb(b, &u[gi], &h[i]);
                ng++;
            }
        }
        pad_sb_printf(b, "</div>");
        free(h);
    }
    pad_sb_printf(b, "</div>\n");
}

static int cmp_unit(const void *pa, const void *pb) {
    const rh_unit *a = pa, *b = pb;
    int c = strcmp(a->dataset, b->dataset);
    if (!c) c = strcmp(a->cls, b->cls);
    if (!c) c = strcmp(a->method, b->method);
    if (!c) c = strcmp(a->protocol, b->protocol);
    if (!c) c = a->k - b->k;
    if (!c) c = a->seed - b->seed;
    if (!c) c = strcmp(a->task, b->task);
    return c;
}

static void num_cell(pad_sbuf *b, double v) {
    if (isnan(v))
        pad_sb_printf(b, "<td>–</td>");
    else
        pad_sb_printf(b, "<td>%.1f</td>", 100.0 * v);
}

static void write_unit_index(pad_sbuf *b, const rh_unit *u, int n, const char *ds) {
    int n_ds = 0;
    for (int i = 0; i < n; i++)
        n_ds += strcmp(u[i].dataset, ds) == 0;
    pad_sb_printf(
        b,
        "<details class=\"units\"><summary>Units (%d)</summary>\n<p class=\"note\">Open a unit for its loss and "
        "selection metric per epoch, its image ROC curve and its heatmaps. PRO curves are not drawn: they "
        "need the pixel maps and masks, which a unit does not keep (its AU-PRO is in the table).</p>\n"
        "<div class=\"scroll\"><table "
        "class=\"units\"><thead><tr><th>class</th><th>method</th><th>protocol</th><th>k</th><th>seed</th>"
        "<th>task</th><th>I-AUROC</th><th>P-AUROC</th><th>PRO</th><th>epoch</th><th></th></tr></thead>"
        "<tbody>\n",
        n_ds);
    for (int i = 0; i < n; i++) {
        if (strcmp(u[i].dataset, ds) != 0) continue;
        pad_sb_printf(b, "<tr data-u=\"%d\" data-href=\"%s\"><td>", i, u[i].href);
        pad_sb_html(b, u[i].cls);
        pad_sb_printf(b, "</td><td>");
        pad_sb_html(b, u[i].method);
        pad_sb_printf(b, "</td><td>");
        pad_sb_html(b, u[i].protocol);
        pad_sb_printf(b, "</td><td>%d</td><td>%d</td><td>", u[i].k, u[i].seed);
        pad_sb_html(b, u[i].task);
        pad_sb_printf(b, "</td>");
        num_cell(b, u[i].m[0]);
        num_cell(b, u[i].m[2]);
        num_cell(b, u[i].m[4]);
        pad_sb_printf(b,
                      "<td>%d</td><td><button type=\"button\">details</button> <a href=\"%s\">folder</a></td></tr>\n",
                      u[i].epoch, u[i].href);
    }
    pad_sb_printf(b, "</tbody></table></div></details>\n");
}

static pad_status write_dataset(pad_sbuf *b, const char *out_dir, const char *ds, const rh_unit *u, int n) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/summary.csv", out_dir, ds);
    rh_summary s;
    PAD_TRY(load_summary(path, &s));
    pad_sb_printf(b, "<section class=\"ds\" id=\"ds-");
    pad_sb_html(b, ds);
    pad_sb_printf(b, "\"><h2>");
    pad_sb_html(b, ds);
    pad_sb_printf(b, "</h2>\n<p class=\"note\">Mean ± std over seeds in %%, image metrics from the cls task and pixel "
                     "metrics from the seg task; <i>paper</i>: the published numbers of the table's method, "
                     "PromptAD's or a baseline's (n/a: not published). "
                     "Numbers from <a href=\"");
    pad_sb_html(b, ds);
    pad_sb_printf(b, "/summary.csv\">summary.csv</a>.</p>\n");
    write_tables(b, &s);
    write_side_by_side(b, &s);
    pad_sb_printf(b, "<h3>Mean ± std per class</h3>\n<div class=\"bars\"></div><script type=\"application/json\" "
                     "class=\"bars-data\">");
    write_bars_json(b, &s);
    pad_sb_printf(b, "</script>\n");
    write_gallery(b, u, n, ds, &s);
    write_unit_index(b, u, n, ds);
    pad_sb_printf(b, "</section>\n");
    free(s.v);
    return b->oom ? PAD_ERR_OOM : PAD_OK;
}

static pad_status read_units(const char *out_dir, const char *const *paths, int n, rh_unit **out) {
    *out = calloc((size_t)(n > 0 ? n : 1), sizeof **out);
    if (!*out) return PAD_ERR_OOM;
    for (int i = 0; i < n; i++) {
        PAD_TRY(rh_unit_read(paths[i], &(*out)[i]));
        rh_rel_href(out_dir, (*out)[i].dir, (*out)[i].href, sizeof(*out)[i].href);
    }
    qsort(*out, (size_t)n, sizeof **out, cmp_unit);
    return PAD_OK;
}

static void put_lines(pad_sbuf *b, const char *const *lines) {
    for (; *lines; lines++)
        pad_sb_put(b, *lines, strlen(*lines));
}

pad_status pad_report_html_write(const char *out_dir, const char *const *datasets, int n_datasets,
                                 const char *const *unit_metrics, int n_units) {
    rh_unit *u = NULL;
    pad_status st = read_units(out_dir, unit_metrics, n_units, &u);
    pad_sbuf b = {0};
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv)) strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);
    pad_sb_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" "
                      "content=\"width=device-width\"><title>promptad report</title>\n<script>\n");
    put_lines(&b, rh_page_js_head);
    pad_sb_printf(&b, "</script>\n<style>\n");
    put_lines(&b, rh_page_css);
    pad_sb_printf(&b,
                  "</style></head>\n<body>\n<header><h1>promptad report</h1><p>%d units, written %s by promptad %s.",
                  n_units, when, PAD_VERSION);
    for (int d = 0; d < n_datasets; d++) {
        pad_sb_printf(&b, " <a href=\"#ds-");
        pad_sb_html(&b, datasets[d]);
        pad_sb_printf(&b, "\">");
        pad_sb_html(&b, datasets[d]);
        pad_sb_printf(&b, "</a>");
    }
    pad_sb_printf(&b, "</p><div id=\"pad-errors\" hidden></div></header>\n");
    for (int d = 0; d < n_datasets && st == PAD_OK; d++)
        st = write_dataset(&b, out_dir, datasets[d], u, n_units);
    for (int i = 0; i < n_units && st == PAD_OK; i++) {
        pad_sb_printf(&b, "<script type=\"application/json\" id=\"u%d\">", i);
        st = rh_unit_detail_json(&u[i], &b);
        pad_sb_printf(&b, "</script>\n");
    }
    pad_sb_printf(&b, "<footer id=\"pad-status\">script not run</footer>\n<script>\n");
    put_lines(&b, rh_page_js);
    pad_sb_printf(&b, "</script>\n</body></html>\n");
    if (st == PAD_OK && b.oom) st = PAD_ERR_OOM;
    if (st == PAD_OK) {
        char path[4200];
        snprintf(path, sizeof path, "%s/report.html", out_dir);
        st = pad_write_file_atomic(path, b.s, b.n);
    }
    pad_sb_free(&b);
    free(u);
    return st;
}
