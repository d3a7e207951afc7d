/* check.c - the test helpers of check.h. */
#include "check.h"

#include "backend.h"
#include "fsutil.h"
#include "promptad.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static pad_check_result check_generic(const void *gp, const void *wp, size_t n, double atol, double rtol,
                                      bool is_double) {
    pad_check_result r = {true, 0, 0, 0, 0, 0, 0};
    double se = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        double g = is_double ? ((const double *)gp)[i] : ((const float *)gp)[i];
        double w = is_double ? ((const double *)wp)[i] : ((const float *)wp)[i];
        double d = fabs(g - w);
        bool bad = isnan(g) != isnan(w) || (!isnan(g) && d > atol + rtol * fabs(w));
        if (isnan(g) && isnan(w)) d = 0;
        se += (g - w) * (g - w);
        sw += w * w;
        double rel = d / fmax(fabs(w), 1e-30);
        if (d > r.max_abs || isnan(d)) {
            r.max_abs = d;
            if (r.ok) {
                r.worst = i;
                r.got = g;
                r.want = w;
            }
        }
        if (rel > r.max_rel) r.max_rel = rel;
        if (bad && r.ok) {
            r.ok = false;
            r.worst = i;
            r.got = g;
            r.want = w;
        }
    }
    r.nmse = sw > 0 ? se / sw : se;
    return r;
}

pad_check_result pad_check_close(const float *got, const float *want, size_t n, double atol, double rtol) {
    return check_generic(got, want, n, atol, rtol, false);
}

pad_check_result pad_check_close_d(const double *got, const double *want, size_t n, double atol, double rtol) {
    return check_generic(got, want, n, atol, rtol, true);
}

const char *pad_fixture_path(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", PAD_FIXTURE_DIR, name);
    return buf;
}

pad_st_file *pad_fixture_open(const char *name) {
    pad_st_file *f = NULL;
    pad_status st = pad_st_open(&f, pad_fixture_path(name));
    cr_assert(st == PAD_OK, "cannot open fixture %s: %s", name, pad_status_str(st));
    return f;
}

float *pad_fixture_f32(pad_st_file *f, const char *name, int ndim, const int64_t *shape) {
    float *out = NULL;
    pad_status st = pad_st_read_f32(f, name, ndim, shape, &out, NULL);
    cr_assert(st == PAD_OK, "fixture %s: cannot read tensor %s", f->path, name);
    return out;
}

void pad_fixture_write_damaged(const char *name, const char *path, const char *skip, bool reshape) {
    pad_st_file *f = pad_fixture_open(name);
    pad_st_writer *w = NULL;
    cr_assert(pad_st_writer_init(&w) == PAD_OK);
    for (int i = 0; i < f->n_tensors; i++) {
        const pad_st_tensor *t = &f->tensors[i];
        float *d = pad_fixture_f32(f, t->name, -1, NULL);
        if (strcmp(t->name, skip) != 0)
            cr_assert(pad_st_writer_add_f32(w, t->name, t->ndim, t->shape, d) == PAD_OK);
        else if (reshape)
            cr_assert(pad_st_writer_add_f32(w, t->name, 1, (const int64_t[]){1}, d) == PAD_OK);
        free(d);
    }
    cr_assert(pad_st_writer_save(w, path) == PAD_OK);
    pad_st_writer_free(w);
    pad_st_close(f);
}

const char *pad_test_vocab_path(void) {
    const char *env = getenv("PROMPTAD_TEST_VOCAB");
    if (env && env[0]) return access(env, R_OK) == 0 ? env : NULL;
    return access(PAD_VOCAB_PATH, R_OK) == 0 ? PAD_VOCAB_PATH : NULL;
}

const char *pad_test_cuda_missing(void) {
    static char why[256];
    return pad_cuda_probe(why, sizeof why) == PAD_CUDA_READY ? NULL : why;
}

bool pad_test_cuda_required(void) {
    const char *v = getenv("PROMPTAD_REQUIRE_CUDA");
    return v && strcmp(v, "1") == 0;
}

const char *pad_test_binary(void) {
    return PAD_BINARY;
}

static char *slurp_fd(int fd) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t k = read(fd, buf + len, cap - len - 1);
        if (k <= 0) break;
        len += (size_t)k;
    }
    buf[len] = 0;
    return buf;
}

pad_cmd_result pad_cmd_run(const char *fmt, ...) {
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char outp[] = "/tmp/pad_cmd_out_XXXXXX", errp[] = "/tmp/pad_cmd_err_XXXXXX";
    int fo = mkstemp(outp), fe = mkstemp(errp);
    cr_assert(fo >= 0 && fe >= 0, "mkstemp failed");
    char full[17000];
    snprintf(full, sizeof full, "(%s) >%s 2>%s", cmd, outp, errp);
    int rc = system(full);
    pad_cmd_result r;
    r.exit_code = (rc != -1 && WIFEXITED(rc)) ? WEXITSTATUS(rc) : -1;
    lseek(fo, 0, SEEK_SET);
    lseek(fe, 0, SEEK_SET);
    r.out = slurp_fd(fo);
    r.err = slurp_fd(fe);
    close(fo);
    close(fe);
    unlink(outp);
    unlink(errp);
    // the shell reports a crashed child as 128+signal
    if (r.exit_code > 128) r.exit_code = -1;
    return r;
}

void pad_cmd_free(pad_cmd_result *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

char *pad_test_fmt(const char *fmt, ...) {
    static char bufs[16][4096];
    static int next = 0;
    char *b = bufs[next++ & 15];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    return b;
}

struct cJSON *pad_test_read_json(const char *path) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(path, &t, NULL), PAD_OK, "%s: cannot read", path);
    cJSON *j = cJSON_Parse(t);
    free(t);
    cr_assert(j, "%s: bad JSON", path);
    return j;
}

char *pad_test_tmpdir(const char *tag) {
    static char dirs[64][256]; // static storage: nothing to free, nothing leaked (the sanitizer stage checks leaks)
    static int used = 0;
    cr_assert(used < 64, "more than 64 temporary folders in one test process");
    char *d = dirs[used++];
    snprintf(d, sizeof dirs[0], "/tmp/promptad_test_%.64s_XXXXXX", tag);
    cr_assert(mkdtemp(d) != NULL, "mkdtemp failed");
    return d;
}

void pad_test_write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    cr_assert(fp != NULL, "cannot write %s", path);
    cr_assert(fwrite(data, 1, n, fp) == n);
    fclose(fp);
}

uint64_t pad_rng_next(pad_rng *r) {
    uint64_t x = r->s ? r->s : 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return x;
}

float pad_rng_uniform(pad_rng *r, float lo, float hi) {
    double u = (double)(pad_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

void pad_rng_fill(pad_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = pad_rng_uniform(r, lo, hi);
}

float *pad_test_rand(pad_rng *r, size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof(float));
    cr_assert(x || !n);
    pad_rng_fill(r, x, n, lo, hi);
    return x;
}

static char g_test_log[65536];
static pad_log_level g_test_log_min;

static void test_log_sink(pad_log_level level, const char *msg, void *ud) {
    (void)ud;
    if (level < g_test_log_min) return;
    size_t n = strlen(g_test_log);
    snprintf(g_test_log + n, sizeof g_test_log - n, "%s\n", msg);
}

static void test_log_start(pad_log_level min_level) {
    g_test_log[0] = 0;
    g_test_log_min = min_level;
    pad_log_set(test_log_sink, NULL);
}

void pad_test_log_start(void) {
    test_log_start(PAD_LOG_LEVEL_WARN);
}

void pad_test_log_start_all(void) {
    test_log_start(PAD_LOG_LEVEL_DEBUG);
}

const char *pad_test_log_text(void) {
    return g_test_log;
}

void pad_test_log_stop(void) {
    pad_log_set(NULL, NULL);
}
