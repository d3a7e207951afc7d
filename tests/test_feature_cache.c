/* test_feature_cache.c - the feature cache (host/run/feature_cache.h): entries round-trip exactly, a missing entry
 * misses, a damaged one is reported once and never used, a disabled cache does nothing; and end to end, a repeat
 * run with another learning rate encodes nothing (every test and shot image from the cache) and gives the same bits
 * as a run without the cache, and a changed image misses. */
#include "check.h"
#include "config.h"
#include "feature_cache.h"
#include "fsutil.h"
#include "run.h"
#include "run_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(feature_cache, .init = pad_test_log_start, .timeout = 600);

static const pad_fcache_space k_space = {.weights_fp = 0x1234, .preprocess = 0, .taps = {3, 8}, .E = 4, .P = 2, .D = 3};

static void fill(float *x, int n, float base) {
    for (int i = 0; i < n; i++)
        x[i] = base + 0.25f * (float)i;
}

Test(feature_cache, roundtrip_miss_corrupt_disabled) {
    char *dir = pad_test_tmpdir("fcache_unit");
    pad_fcache *c = NULL;
    cr_assert_eq(pad_fcache_open(&c, pad_test_fmt("%s/cache", dir)), PAD_OK);
    float cls[4], tok[8], m1[6], m2[6], g_cls[4], g_tok[8], g_m1[6], g_m2[6];
    fill(cls, 4, 1.0f), fill(tok, 8, -2.0f), fill(m1, 6, 0.5f), fill(m2, 6, 7.0f);
    cr_assert(!pad_fcache_get(c, &k_space, 42, g_cls, g_tok, g_m1, g_m2), "empty cache hit");
    pad_fcache_put(c, &k_space, 42, cls, tok, m1, m2);
    cr_assert(pad_fcache_get(c, &k_space, 42, g_cls, g_tok, g_m1, g_m2));
    cr_assert(memcmp(cls, g_cls, sizeof cls) == 0 && memcmp(tok, g_tok, sizeof tok) == 0 &&
              memcmp(m1, g_m1, sizeof m1) == 0 && memcmp(m2, g_m2, sizeof m2) == 0);
    // another space (other preprocessing) misses
    pad_fcache_space other = k_space;
    other.preprocess = 1;
    cr_assert(!pad_fcache_get(c, &other, 42, g_cls, g_tok, g_m1, g_m2));
    // a truncated entry: reported once, never used, then rewritten by a put
    pad_cmd_result r =
        pad_cmd_run("f=$(find '%s/cache' -name '*.safetensors' | head -1) && truncate -s 40 \"$f\"", dir);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    pad_cmd_free(&r);
    cr_assert(!pad_fcache_get(c, &k_space, 42, g_cls, g_tok, g_m1, g_m2), "a damaged entry was used");
    cr_assert(!pad_fcache_get(c, &k_space, 42, g_cls, g_tok, g_m1, g_m2));
    PAD_ASSERT_LOG_HAS("damaged feature-cache entry");
    const char *log = pad_test_log_text();
    cr_assert(strstr(strstr(log, "damaged") + 1, "damaged feature-cache entry") == NULL, "reported twice:\n%s", log);
    pad_fcache_put(c, &k_space, 42, cls, tok, m1, m2);
    cr_assert(pad_fcache_get(c, &k_space, 42, g_cls, g_tok, g_m1, g_m2));
    pad_fcache_stats s = pad_fcache_get_stats(c);
    cr_assert(s.hits == 2 && s.corrupt == 2 && s.written == 2 && s.misses == 4,
              "hits %ld corrupt %ld written %ld misses %ld", s.hits, s.corrupt, s.written, s.misses);
    pad_fcache_free(c);
    // disabled
    cr_assert_eq(pad_fcache_open(&c, "none"), PAD_OK);
    cr_assert(!pad_fcache_enabled(c));
    pad_fcache_put(c, &k_space, 42, cls, tok, m1, m2);
    cr_assert(!pad_fcache_get(c, &k_space, 42, g_cls, g_tok, g_m1, g_m2));
    pad_fcache_free(c);
    // the content hash is the file's
    uint64_t h1, h2;
    pad_test_write_file(pad_test_fmt("%s/a.bin", dir), "abc", 3);
    cr_assert_eq(pad_fcache_hash_file(pad_test_fmt("%s/a.bin", dir), &h1), PAD_OK);
    pad_test_write_file(pad_test_fmt("%s/a.bin", dir), "abd", 3);
    cr_assert_eq(pad_fcache_hash_file(pad_test_fmt("%s/a.bin", dir), &h2), PAD_OK);
    cr_assert(h1 == 0xe71fa2190541574bull && h1 != h2, "FNV-1a 64 of 'abc' is e71fa2190541574b, got %016llx",
              (unsigned long long)h1);
}

// A one-class tiny run into out (cache: cache_dir) with learning rate lr; returns the run's log.
static const char *tiny_run(const char *dir, const char *out, const char *cache_dir, const char *lr) {
    pad_run_config *c = pad_tiny_run_cfg(
        dir, "run.shots=1,2", "run.epochs=2", "run.batch=2", pad_test_fmt("train.lr=%s", lr), pad_tiny_run_prompts(dir),
        pad_test_fmt("output.dir=%s", out), pad_test_fmt("cache.dir=%s", cache_dir), "output.heatmaps=1", NULL);
    cr_assert_eq(pad_run_config_finalize(c), PAD_OK, "%s", pad_test_log_text());
    pad_test_log_start_all();
    pad_run_result res;
    cr_assert_eq(pad_tiny_run(c, NULL, &res), PAD_OK, "%s", pad_test_log_text());
    free(c);
    return pad_test_log_text();
}

static void assert_same_scores(const char *a, const char *b) {
    const char *units[] = {"cls", "seg"};
    for (int k = 1; k <= 2; k++)
        for (int t = 0; t < 2; t++) {
            const char *pa = pad_test_fmt("%s/synth/weave/k%d/seed0/%s/scores.csv", a, k, units[t]);
            const char *pb = pad_test_fmt("%s/synth/weave/k%d/seed0/%s/scores.csv", b, k, units[t]);
            pad_cmd_result r = pad_cmd_run("cmp '%s' '%s'", pa, pb);
            cr_assert_eq(r.exit_code, 0, "%s and %s differ: %s", pa, pb, r.out);
            pad_cmd_free(&r);
        }
}

Test(feature_cache, repeat_run_encodes_nothing_and_matches) {
    char *dir = pad_test_tmpdir("fcache_run");
    char cache[4096]; // pad_test_fmt's buffers rotate: keep a copy
    snprintf(cache, sizeof cache, "%s/cache", dir);
    tiny_run(dir, pad_test_fmt("%s/r_nocache", dir), "none", "0.004");
    tiny_run(dir, pad_test_fmt("%s/r_cold", dir), cache, "0.002");
    pad_cmd_result n0 = pad_cmd_run("find '%s' -name '*.safetensors' | wc -l", cache);
    const char *log = tiny_run(dir, pad_test_fmt("%s/r_warm", dir), cache, "0.004");
    pad_cmd_result n1 = pad_cmd_run("find '%s' -name '*.safetensors' | wc -l", cache);
    // every test image came from the cache, and nothing was encoded (no entry was added)
    cr_assert(strstr(log, "class weave: 6 of 6 images from the feature cache") != NULL, "%s", log);
    cr_assert(atoi(n0.out) >= 7 && atoi(n1.out) == atoi(n0.out), "entries after the cold run %s, warm %s", n0.out,
              n1.out);
    pad_cmd_free(&n0);
    pad_cmd_free(&n1);
    assert_same_scores(pad_test_fmt("%s/r_nocache", dir), pad_test_fmt("%s/r_warm", dir));
    // a changed test image misses (and only that one is encoded)
    // (an image of another synthetic dataset: content no run has seen)
    pad_cmd_result r = pad_cmd_run("'%s' synth --out '%s/other' --classes 1 --seed 7 --size 64 --train 1 --test-good 1 "
                                   "--test-bad 0 >/dev/null && f=$(ls '%s/data/weave/test/good/'*.png | head -1) && cp "
                                   "'%s/other/weave/train/good/'*.png \"$f\"",
                                   pad_test_binary(), dir, dir, dir);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    pad_cmd_free(&r);
    pad_cmd_result m0 = pad_cmd_run("find '%s' -name '*.safetensors' | wc -l", cache);
    tiny_run(dir, pad_test_fmt("%s/r_changed", dir), cache, "0.004");
    pad_cmd_result m1 = pad_cmd_run("find '%s' -name '*.safetensors' | wc -l", cache);
    cr_assert_eq(atoi(m1.out), atoi(m0.out) + 1, "entries before %s after %s", m0.out, m1.out);
    pad_cmd_free(&m0);
    pad_cmd_free(&m1);
}
