/* run_fixture.c - the tiny run of the run-loop tests and the readers of its unit files (run_fixture.h). */
#include "run_fixture.h"

#include "fsutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_one(pad_run_config *c, const char *assignment) {
    cr_assert_eq(pad_run_config_set(c, assignment), PAD_OK, "%s: %s", assignment, pad_test_log_text());
}

// The base settings of run_fixture.h, then the overrides of `ap` up to a NULL. The paths are formatted here into
// local buffers (not pad_test_fmt's, which may hold the caller's overrides).
static pad_run_config *make_cfg(const char *dir, va_list ap) {
    pad_run_config *c = malloc(sizeof *c);
    cr_assert(c);
    pad_run_config_default(c);
    char path[4096 + 64];
    snprintf(path, sizeof path, "model.weights=%s/model/tiny.safetensors", dir);
    set_one(c, path);
    snprintf(path, sizeof path, "model.vocab=%s/model/vocab.txt.gz", dir);
    set_one(c, path);
    snprintf(path, sizeof path, "data.root=%s/data", dir);
    set_one(c, path);
    snprintf(path, sizeof path, "output.dir=%s/results", dir);
    set_one(c, path);
    static const char *const base[] = {"model.generate=tiny",   "data.format=synth",  "data.synth.classes=1",
                                       "data.synth.size=64",    "data.synth.train=3", "data.synth.test_good=3",
                                       "data.synth.test_bad=3", "run.shots=1",        "run.seeds=0",
                                       "run.resolution=64",     "run.batch=4"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        set_one(c, base[i]);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        set_one(c, s);
    return c;
}

pad_run_config *pad_tiny_run_cfg(const char *dir, ...) {
    va_list ap;
    va_start(ap, dir);
    pad_run_config *c = make_cfg(dir, ap);
    va_end(ap);
    return c;
}

const char *pad_tiny_run_yaml(const char *dir, const char *name, ...) {
    static char path[4096 + 256];
    va_list ap;
    va_start(ap, name);
    pad_run_config *c = make_cfg(dir, ap);
    va_end(ap);
    const size_t need = pad_run_config_to_yaml(c, NULL, 0);
    char *text = malloc(need + 1);
    cr_assert(text);
    cr_assert_eq(pad_run_config_to_yaml(c, text, need + 1), need);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    pad_test_write_file(path, text, need);
    free(text);
    free(c);
    return path;
}

const char *pad_tiny_run_prompts(const char *dir) {
    char path[4096 + 64];
    snprintf(path, sizeof path, "%s/prompts.yaml", dir);
    const char *text = "name: test\ngeneric: [\"{} bad\"]\nclasses:\n  - key: weave\n    states: [\"{} cut\"]\n";
    pad_test_write_file(path, text, strlen(text));
    return pad_test_fmt("run.prompts=%s", path);
}

pad_status pad_tiny_run(const pad_run_config *c, const pad_run_opts *o, pad_run_result *res) {
    const pad_run_opts none = {0};
    pad_status st = pad_run(c, o ? o : &none, res);
    free(res->summary_md);
    res->summary_md = NULL;
    return st;
}

char *pad_test_read_text(const char *path, size_t *n) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(path, &t, n), PAD_OK, "%s is missing", path);
    return t;
}

char *pad_test_metrics_without_timing(const char *path) {
    cJSON *j = pad_test_read_json(path);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "timing_s");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    cr_assert(s);
    return s;
}

void pad_test_assert_same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = pad_test_read_text(a, &na), *y = pad_test_read_text(b, &nb);
    cr_assert(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

void pad_test_assert_unit_equal(const char *want, const char *got, const char *rel) {
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/%s/metrics.json", want, rel);
    snprintf(p2, sizeof p2, "%s/%s/metrics.json", got, rel);
    char *m1 = pad_test_metrics_without_timing(p1), *m2 = pad_test_metrics_without_timing(p2);
    cr_assert_str_eq(m2, m1, "%s: metrics.json differs (%s against %s)", rel, got, want);
    free(m1);
    free(m2);
    static const char *const files[] = {"scores.csv", "train.csv", "prompts.safetensors", "maps.safetensors"};
    for (int f = 0; f < 4; f++) {
        snprintf(p1, sizeof p1, "%s/%s/%s", want, rel, files[f]);
        snprintf(p2, sizeof p2, "%s/%s/%s", got, rel, files[f]);
        pad_test_assert_same_file(p1, p2);
    }
}
