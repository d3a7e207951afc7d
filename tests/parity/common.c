/* common.c - the parity runner's state, comparisons and report lines, the seeded random data and the buffers held
 * on both backends (twins). */
#include "parity.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// runner state and reporting

parity_state pg;

// Whether the checks of a default path (fast = false) or of an opt-in speed path (fast = true) run.
bool path_on(bool fast) {
    return fast ? pg.paths != 1 : pg.paths != 2;
}

bool selected(const char *name) {
    return !pg.filter || strstr(name, pg.filter) != NULL;
}

// |got - want| <= atol + rtol |want| everywhere (NaN fails unless both are NaN), plus ggml's NMSE.
cmp compare(const float *got, const float *want, size_t n, double atol, double rtol) {
    cmp r = {true, 0, 0, 0, 0, 0, 0};
    double se = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        const double gv = got[i], wv = want[i];
        if (isnan(gv) && isnan(wv)) continue;
        const double d = fabs(gv - wv);
        const bool bad = isnan(gv) != isnan(wv) || isinf(gv) != isinf(wv) || !(d <= atol + rtol * fabs(wv));
        if (!isinf(wv) || !isinf(gv)) {
            se += (gv - wv) * (gv - wv);
            sw += wv * wv;
        }
        const double rel = d / fmax(fabs(wv), 1e-30);
        if (!(d <= r.max_abs)) r.max_abs = d;
        if (!(rel <= r.max_rel)) r.max_rel = rel;
        if (bad && r.ok) {
            r.ok = false;
            r.worst = i;
            r.got = gv;
            r.want = wv;
        }
    }
    r.nmse = sw > 0 ? se / sw : se;
    if (isnan(r.nmse)) r.ok = false;
    return r;
}

void line(const char *verdict, const char *name, const char *fmt, ...) {
    char detail[512] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    printf("%-4s  %-58s %s\n", verdict, name, detail);
    fflush(stdout);
    if (!strcmp(verdict, "PASS"))
        pg.passed++;
    else if (!strcmp(verdict, "FAIL"))
        pg.failed++;
    else
        pg.skipped++;
}

// Element-wise check with an optional NMSE bound (nmse_max < 0: none). ms: the GPU time of the check.
bool check(const char *name, const float *got, const float *want, size_t n, double atol, double rtol, double nmse_max,
           double ms) {
    cmp r = compare(got, want, n, atol, rtol);
    const bool ok = r.ok && (nmse_max < 0 || r.nmse <= nmse_max);
    char worst[160] = "";
    if (!r.ok) snprintf(worst, sizeof worst, "  first bad [%zu]: got %.9g want %.9g", r.worst, r.got, r.want);
    char tol[96];
    if (nmse_max >= 0)
        snprintf(tol, sizeof tol, "(%.0e,%.0e,nmse<%.0e)", atol, rtol, nmse_max);
    else
        snprintf(tol, sizeof tol, "(%.0e,%.0e)", atol, rtol);
    line(ok ? "PASS" : "FAIL", name, "n=%zu nmse=%.2e max_abs=%.2e max_rel=%.2e tol=%s %.3f ms%s", n, r.nmse, r.max_abs,
         r.max_rel, tol, ms, worst);
    return ok;
}

// Relative error max|got - want| / max|want| <= tol (the prompt tests' measure).
bool check_rel(const char *name, const float *got, const float *want, size_t n, double tol, double ms) {
    double md = 0, mw = 0;
    bool nan = false;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (isnan(d)) nan = true;
        md = d > md ? d : md;
        mw = fabs(want[i]) > mw ? fabs(want[i]) : mw;
    }
    const double e = nan ? INFINITY : mw > 0 ? md / mw : md;
    const bool ok = e <= tol;
    line(ok ? "PASS" : "FAIL", name, "n=%zu rel_err=%.2e tol=%.0e %.3f ms", n, e, tol, ms);
    return ok;
}

bool check_bits(const char *name, const void *got, const void *want, size_t nbytes, double ms) {
    const bool ok = memcmp(got, want, nbytes) == 0;
    size_t first = 0;
    if (!ok)
        while (((const unsigned char *)got)[first] == ((const unsigned char *)want)[first])
            first++;
    line(ok ? "PASS" : "FAIL", name, "%zu bytes bit-identical%s %.3f ms", nbytes, ok ? "" : ": NO (first byte diff)",
         ms);
    if (!ok) printf("      first differing byte at %zu\n", first);
    return ok;
}

void fail(const char *name, const char *why) {
    line("FAIL", name, "%s", why);
}

// ----------------------------------------------------------------------------
// data on both backends

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
float frand(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((double)(g_rng >> 11) / 9007199254740992.0);
}

float *rand_host(size_t n, float lo, float hi) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    if (!h) abort();
    for (size_t i = 0; i < n; i++)
        h[i] = frand(lo, hi);
    return h;
}

twin tw_from(const float *h, size_t n) {
    twin t = {NULL, NULL, n};
    if (pad_buf_from_host(pg.cpu, &t.c, h, n) != PAD_OK || pad_buf_from_host(pg.gpu, &t.d, h, n) != PAD_OK) abort();
    return t;
}

twin tw_rand(size_t n, float lo, float hi) {
    float *h = rand_host(n, lo, hi);
    twin t = tw_from(h, n);
    free(h);
    return t;
}

// Output buffers poisoned with NaN: an element the op does not write fails the check.
twin tw_nan(size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    if (!h) abort();
    for (size_t i = 0; i < n; i++)
        h[i] = NAN;
    twin t = tw_from(h, n);
    free(h);
    return t;
}

float *gpu_get(const float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    if (!h || pad_buf_download(pg.gpu, h, d, n * sizeof(float)) != PAD_OK) abort();
    return h;
}

void tw_free(twin *t) {
    pad_buf_free(pg.cpu, t->c);
    pad_buf_free(pg.gpu, t->d);
    t->c = t->d = NULL;
}

// Compares a twin's GPU contents with its CPU contents.
bool tw_check(const char *name, const twin *t, double atol, double rtol, double nmse_max, double ms) {
    float *h = gpu_get(t->d, t->n);
    bool ok = check(name, h, t->c, t->n, atol, rtol, nmse_max, ms);
    free(h);
    return ok;
}

double t_begin(void) {
    pad_backend_sync(pg.gpu);
    return pad_now();
}
double t_end(double t0) {
    pad_backend_sync(pg.gpu);
    return (pad_now() - t0) * 1e3;
}