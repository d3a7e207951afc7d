/* test_shard.c - `promptad run --shard I/N` and `--gpus LIST` on the CPU backend (tiny generated model, synthetic
 * data, per-epoch evaluation): N shards in separate result folders merged by `promptad report`, and two workers
 * started by --gpus into one folder (also with run.cohort auto: cohorts of the groups each worker claims), give exactly
 * the units of one unsharded run with the same bytes (metrics.json apart from its timings, scores.csv, train.csv,
 * prompts.safetensors), the same summary table, and every unit is computed by exactly one shard. Bad --shard / --gpus
 * values are refused. */
#include "check.h"
#include "fsutil.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_classes[] = {"weave", "grid"};
static const int k_shots[] = {1, 2}, k_seeds[] = {0, 1};
static const char *const k_tasks[] = {"cls", "seg"};

// A demo-like config in dir/cfg.yaml; the model and the data are shared by every run of the test.
static const char *write_cfg(const char *dir) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/cfg.yaml", dir);
    char text[2048];
    snprintf(text, sizeof text,
             "model:\n  weights: %s/model/tiny.safetensors\n  vocab: %s/model/vocab.txt.gz\n  generate: tiny\n"
             "data:\n  format: synth\n  root: %s/data\n  synth: {classes: 2, size: 64, train: 3, test_good: 3, "
             "test_bad: 3}\n"
             "run:\n  shots: [1, 2]\n  seeds: [0, 1]\n  tasks: [cls, seg]\n  epochs: 2\n  select: best\n"
             "  resolution: 64\n  batch: 4\n  device: cpu\n  threads: 1\n"
             "output:\n  maps: grid\n  heatmaps: 0\n  models: false\n",
             dir, dir, dir);
    pad_test_write_file(path, text, strlen(text));
    return path;
}

static void run_ok(const char *what, const char *fmt, ...) PAD_PRINTF_LIKE(2, 3);
static void run_ok(const char *what, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    pad_cmd_result r = pad_cmd_run("%s", cmd);
    cr_assert_eq(r.exit_code, 0, "%s: exit %d\n%s", what, r.exit_code, r.err);
    pad_cmd_free(&r);
}

static char *read_text(const char *path) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(path, &t, NULL), PAD_OK, "%s is missing", path);
    return t;
}

static char *read_bytes(const char *path, size_t *n) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(path, &t, n), PAD_OK, "%s is missing", path);
    return t;
}

// metrics.json without its timings, printed canonically
static char *metrics_without_timing(const char *path) {
    char *t = read_text(path);
    cJSON *j = cJSON_Parse(t);
    free(t);
    cr_assert(j, "%s: bad JSON", path);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "timing_s");
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void assert_same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = read_bytes(a, &na), *y = read_bytes(b, &nb);
    cr_assert(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

// Every unit of the run in `got_dir` (one of the folders got[0..n_got)) equals the unit of `want`.
static void assert_units_equal(const char *want, const char *const *got, int n_got) {
    for (int c = 0; c < 2; c++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int t = 0; t < 2; t++) {
                    char rel[256], w[2048], g[2048];
                    snprintf(rel, sizeof rel, "synth/%s/k%d/seed%d/%s", k_classes[c], k_shots[a], k_seeds[b],
                             k_tasks[t]);
                    snprintf(w, sizeof w, "%s/%s", want, rel);
                    int found = 0;
                    for (int i = 0; i < n_got; i++) {
                        snprintf(g, sizeof g, "%s/%s/metrics.json", got[i], rel);
                        if (!pad_path_is_file(g)) continue;
                        found++;
                        snprintf(g, sizeof g, "%s/%s", got[i], rel);
                        char p1[2300], p2[2300];
                        snprintf(p1, sizeof p1, "%s/metrics.json", w);
                        snprintf(p2, sizeof p2, "%s/metrics.json", g);
                        char *m1 = metrics_without_timing(p1), *m2 = metrics_without_timing(p2);
                        cr_assert_str_eq(m2, m1, "%s: metrics.json differs from the unsharded run", rel);
                        free(m1);
                        free(m2);
                        static const char *const files[] = {"scores.csv", "train.csv", "prompts.safetensors",
                                                            "maps.safetensors"};
                        for (int f = 0; f < 4; f++) {
                            snprintf(p1, sizeof p1, "%s/%s", w, files[f]);
                            snprintf(p2, sizeof p2, "%s/%s", g, files[f]);
                            assert_same_file(p1, p2);
                        }
                    }
                    cr_assert_eq(found, 1, "%s: computed by %d shards (expected exactly one)", rel, found);
                }
}

Test(shard, shards_and_workers_equal_one_run, .timeout = 600) {
    const char *dir = pad_test_tmpdir("shard");
    const char *cfg = write_cfg(dir);
    const char *bin = pad_test_binary();
    run_ok("single run", "%s run --config %s --quiet --set output.dir=%s/single", bin, cfg, dir);
    // three shards of 8 (class, shot, seed) groups, each in its own folder (as on three machines)
    for (int i = 0; i < 3; i++)
        run_ok("shard", "%s run --config %s --quiet --shard %d/3 --set output.dir=%s/shard%d", bin, cfg, i, dir, i);
    char want[1024], s0[1024], s1[1024], s2[1024], gp[1024];
    snprintf(want, sizeof want, "%s/single", dir);
    snprintf(s0, sizeof s0, "%s/shard0", dir);
    snprintf(s1, sizeof s1, "%s/shard1", dir);
    snprintf(s2, sizeof s2, "%s/shard2", dir);
    const char *shards[3] = {s0, s1, s2};
    assert_units_equal(want, shards, 3);
    // a shard holds a contiguous block: shard 0 has groups 0-1 (the first class, k1, seeds 0 and 1) and so
    // encodes one class only
    int n_cls = 0;
    for (int c = 0; c < 2; c++) {
        char p[2048];
        snprintf(p, sizeof p, "%s/synth/%s", s0, k_classes[c]);
        if (!pad_path_is_dir(p)) continue;
        n_cls++;
        snprintf(p, sizeof p, "%s/synth/%s/k1/seed1/seg/metrics.json", s0, k_classes[c]);
        cr_assert(pad_path_is_file(p), "shard 0 should hold k1 seed1 of its class");
    }
    cr_assert_eq(n_cls, 1, "shard 0 should touch one class only");
    // merged by promptad report: the same summary table as the single run
    run_ok("report", "%s report %s %s %s --out %s/merged > /dev/null", bin, s0, s1, s2, dir);
    char a[2048], b[2048];
    snprintf(a, sizeof a, "%s/synth/summary.csv", want);
    snprintf(b, sizeof b, "%s/merged/synth/summary.csv", dir);
    assert_same_file(a, b);
    // two workers through --gpus (CPU backend: the device list only names the workers) into one folder
    snprintf(gp, sizeof gp, "%s/gpus", dir);
    run_ok("--gpus", "%s run --config %s --quiet --gpus 0,0 --set output.dir=%s > %s/gpus.md", bin, cfg, gp, dir);
    const char *g1[1] = {gp};
    assert_units_equal(want, g1, 1);
    snprintf(b, sizeof b, "%s/synth/summary.csv", gp);
    assert_same_file(a, b);
    snprintf(b, sizeof b, "%s/gpus.md", dir);
    char *md = read_text(b);
    cr_assert(strstr(md, "weave") && strstr(md, "grid"), "--gpus prints the merged summary:\n%s", md);
    free(md);
    // the same with cohorts (run.cohort auto: each worker trains the groups of a class it claims in lockstep)
    snprintf(gp, sizeof gp, "%s/gpus_cohort", dir);
    run_ok("--gpus cohort",
           "%s run --config %s --quiet --gpus 0,0 --set run.cohort=auto --set output.dir=%s > /dev/null", bin, cfg, gp);
    assert_units_equal(want, g1, 1); // (g1[0] is gp)
    // a rerun of a shard finds its units done
    pad_cmd_result r = pad_cmd_run("%s run --config %s --shard 1/3 --set output.dir=%s 2>&1", bin, cfg, s1);
    cr_assert_eq(r.exit_code, 0, "%s", r.out);
    cr_assert(strstr(r.out, "0 units computed"), "rerun of a finished shard:\n%s", r.out);
    pad_cmd_free(&r);
}

Test(shard, bad_arguments_are_refused) {
    const char *dir = pad_test_tmpdir("shard_args");
    const char *cfg = write_cfg(dir);
    const char *bin = pad_test_binary();
    static const char *const bad[] = {"--shard 3/3", "--shard 1",           "--shard -1/2",
                                      "--shard a/b", "--shard 0/0",         "--gpus ''",
                                      "--gpus 0,,1", "--gpus 0, --dry-run", "--gpus 0 --shard 0/2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pad_cmd_result r = pad_cmd_run("%s run --config %s %s --set output.dir=%s/out", bin, cfg, bad[i], dir);
        cr_assert_eq(r.exit_code, 2, "'%s' should be a usage error (exit %d)\n%s", bad[i], r.exit_code, r.err);
        cr_assert(strstr(r.err, "--shard") || strstr(r.err, "--gpus"), "'%s': message names the option:\n%s", bad[i],
                  r.err);
        pad_cmd_free(&r);
    }
}
