/* test_run_clip_resnet.c - PromptAD end to end on a CLIP ModifiedResNet (host/model/clip_resnet.h; the run loop picks
 * the tower from the weights, run_setup.c): a random clip-resnet-tiny model and a byte vocabulary, a tiny synthetic
 * dataset, the CPU backend. Every unit is written with finite metrics, the grids and maps have the ResNet's V-V grid,
 * a second run into another folder gives the same bytes, predict's detector scores the test images as the run did,
 * and model.taps outside the stages is refused. */
#include "check.h"
#include "clip_resnet.h"
#include "config.h"
#include "promptad.h"
#include "fsutil.h"
#include "run.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The model (random clip-resnet-tiny with the byte vocabulary's text tower) in dir/model, once.
static void make_model(const char *dir) {
    const char *vocab = pad_test_fmt("%s/model/vocab.txt.gz", dir);
    cr_assert(pad_mkdir_p(pad_test_fmt("%s/model", dir)) == PAD_OK);
    cr_assert(pad_tokenizer_write_byte_vocab(vocab) == PAD_OK);
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, vocab) == PAD_OK);
    const pad_clip_resnet_cfg vc = pad_clip_resnet_preset_cfg(PAD_CLIP_RESNET_TINY);
    pad_clip_cfg tc = pad_clip_resnet_text_cfg(PAD_CLIP_RESNET_TINY);
    tc.text.vocab = pad_tokenizer_vocab_size(tok);
    pad_tokenizer_free(tok);
    cr_assert(pad_clip_resnet_write_random(&vc, &tc, 0, pad_test_fmt("%s/model/rn.safetensors", dir)) == PAD_OK);
}

// extra: more settings (NULL-terminated, may be NULL).
static pad_run_config *make_cfg(const char *dir, const char *model_dir, const char *const *extra) {
    pad_run_config *c = malloc(sizeof *c);
    cr_assert(c);
    pad_run_config_default(c);
    const char *prompts = pad_test_fmt("%s/prompts.yaml", dir);
    const char *ptext = "name: test\ngeneric: [\"{} bad\"]\nclasses:\n  - key: weave\n    states: [\"{} cut\"]\n";
    pad_test_write_file(prompts, ptext, strlen(ptext));
    const char *sets[] = {pad_test_fmt("model.weights=%s/model/rn.safetensors", model_dir),
                          pad_test_fmt("model.vocab=%s/model/vocab.txt.gz", model_dir),
                          "data.format=synth",
                          pad_test_fmt("data.root=%s/data", dir),
                          "data.synth.classes=1",
                          "data.synth.size=96",
                          "data.synth.train=3",
                          "data.synth.test_good=3",
                          "data.synth.test_bad=3",
                          "run.shots=1,2",
                          "run.seeds=0",
                          "run.tasks=cls,seg",
                          "run.epochs=2",
                          "run.resolution=64",
                          "run.batch=4",
                          pad_test_fmt("run.prompts=%s", prompts),
                          pad_test_fmt("output.dir=%s/results", dir),
                          "cache.dir=none",
                          "output.maps=full",
                          "output.heatmaps=2"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        cr_assert_eq(pad_run_config_set(c, sets[i]), PAD_OK, "%s: %s", sets[i], pad_test_log_text());
    for (; extra && *extra; extra++)
        cr_assert_eq(pad_run_config_set(c, *extra), PAD_OK, "%s: %s", *extra, pad_test_log_text());
    cr_assert_eq(pad_run_config_finalize(c), PAD_OK, "%s", pad_test_log_text());
    return c;
}

static pad_status run_it(pad_run_config *c, pad_run_result *res) {
    pad_run_opts o = {0};
    pad_status st = pad_run(c, &o, res);
    free(res->summary_md);
    res->summary_md = NULL;
    return st;
}

static char *slurp(const char *path, size_t *n) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(path, &t, n), PAD_OK, "%s", path);
    return t;
}

static double jnum(const cJSON *j, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, k);
    cr_assert(cJSON_IsNumber(it), "missing number '%s'", k);
    return it->valuedouble;
}

// The predict model records the tower's shapes: the 3x3 V-V grid of a 96 px input, embed 64, the taps (stage
// numbers) and the tap width D (the wider tapped stage).
static void check_model_json(const char *path, int tap1, int tap2, int width) {
    char *t = slurp(path, NULL);
    cJSON *j = cJSON_Parse(t);
    cr_assert(j, "%s", path);
    cr_assert(jnum(j, "image_size") == 96 && jnum(j, "grid") == 3 && jnum(j, "embed_dim") == 64, "%s", path);
    cr_assert(jnum(j, "width") == width, "%s: width %g", path, jnum(j, "width"));
    const cJSON *taps = cJSON_GetObjectItemCaseSensitive(j, "taps");
    cr_assert(cJSON_GetArrayItem(taps, 0)->valueint == tap1 && cJSON_GetArrayItem(taps, 1)->valueint == tap2, "%s",
              path);
    cJSON_Delete(j);
    free(t);
}

// The score column of scores.csv (the paths differ between output folders).
static void score_column(const char *csv, double *out, int n) {
    const char *p = strchr(csv, '\n');
    for (int r = 0; r < n; r++) {
        cr_assert(p && p[1], "row %d", r);
        const char *end = strchr(p + 1, '\n');
        const char *comma = p + 1, *last = NULL;
        while ((comma = strchr(comma, ',')) && (!end || comma < end))
            last = comma++;
        cr_assert(last);
        out[r] = strtod(last + 1, NULL);
        p = end;
    }
}

// The predict model of (k2, seed0) loads with its CLIP ResNet (detector.c) and scores the test images as the run's
// cls unit did (same batches of 4 on the CPU).
static void check_detector(const char *dir) {
    const char *unit = pad_test_fmt("%s/results/synth/weave/k2/seed0", dir);
    char *csv = slurp(pad_test_fmt("%s/cls/scores.csv", unit), NULL);
    char *paths[6];
    double want[6];
    score_column(csv, want, 6);
    const char *p = strchr(csv, '\n') + 1;
    for (int i = 0; i < 6; i++) {
        const char *comma = strchr(p, ',');
        paths[i] = strndup(p, (size_t)(comma - p));
        p = strchr(p, '\n') + 1;
    }
    pad_detector_params dp = pad_detector_params_default();
    dp.device = PAD_BACKEND_CPU;
    dp.max_batch = 4;
    pad_detector *d = NULL;
    cr_assert_eq(pad_detector_load(&d, pad_test_fmt("%s/model", unit), &dp), PAD_OK, "%s", pad_test_log_text());
    float got[6];
    cr_assert_eq(pad_detector_score_files(d, (const char *const *)paths, 6, got, NULL, NULL), PAD_OK);
    for (int i = 0; i < 6; i++) {
        cr_assert(fabs(got[i] - want[i]) <= 1e-6 * fabs(want[i]) + 1e-9, "%s: %.9g vs the run's %.9g", paths[i], got[i],
                  want[i]);
        free(paths[i]);
    }
    pad_detector_free(d);
    free(csv);
}

Test(run_clip_resnet, promptad_units_and_rerun) {
    pad_test_log_start();
    char *dir = pad_test_tmpdir("run_clip_resnet");
    make_model(dir);
    pad_run_config *c = make_cfg(dir, dir, NULL);
    pad_run_result res;
    cr_assert_eq(run_it(c, &res), PAD_OK, "%s", pad_test_log_text());
    cr_assert_eq(res.n_units, 4);
    cr_assert_eq(res.n_computed, 4);
    check_model_json(pad_test_fmt("%s/results/synth/weave/k2/seed0/model/model.json", dir), 2, 3, 128);
    char *dir2 = pad_test_tmpdir("run_clip_resnet2");
    pad_run_config *c2 = make_cfg(dir2, dir, NULL);
    cr_assert_eq(run_it(c2, &res), PAD_OK, "%s", pad_test_log_text());
    static const char *const tasks[2] = {"cls", "seg"};
    for (int k = 1; k <= 2; k++)
        for (int t = 0; t < 2; t++) {
            const char *u1 = pad_test_fmt("%s/results/synth/weave/k%d/seed0/%s", dir, k, tasks[t]);
            const char *u2 = pad_test_fmt("%s/results/synth/weave/k%d/seed0/%s", dir2, k, tasks[t]);
            char *mj = slurp(pad_test_fmt("%s/metrics.json", u1), NULL);
            cJSON *j = cJSON_Parse(mj);
            cr_assert(j);
            const double a = jnum(j, "image_auroc");
            cr_assert(isfinite(a) && a >= 0 && a <= 1, "%s: image_auroc %g", u1, a);
            if (t == 1) {
                const double pa = jnum(j, "pixel_auroc"), pro = jnum(j, "pixel_pro");
                cr_assert(isfinite(pa) && pa >= 0 && pa <= 1 && isfinite(pro), "%s: pixel %g, pro %g", u1, pa, pro);
            }
            cJSON_Delete(j);
            free(mj);
            // the rerun: the same scores, and byte-identical maps and prompts
            char *s1 = slurp(pad_test_fmt("%s/scores.csv", u1), NULL),
                 *s2 = slurp(pad_test_fmt("%s/scores.csv", u2), NULL);
            double v1[6], v2[6];
            score_column(s1, v1, 6);
            score_column(s2, v2, 6);
            for (int i = 0; i < 6; i++)
                cr_assert(isfinite(v1[i]) && v1[i] == v2[i], "%s: score %d: %.9g vs %.9g", u1, i, v1[i], v2[i]);
            free(s1), free(s2);
            static const char *const same[2] = {"maps.safetensors", "prompts.safetensors"};
            for (int f = 0; f < 2; f++) {
                size_t n1 = 0, n2 = 0;
                char *b1 = slurp(pad_test_fmt("%s/%s", u1, same[f]), &n1);
                char *b2 = slurp(pad_test_fmt("%s/%s", u2, same[f]), &n2);
                cr_assert(n1 == n2 && memcmp(b1, b2, n1) == 0, "%s/%s differs on the rerun", u1, same[f]);
                free(b1), free(b2);
            }
        }
    // the seg maps at the metric resolution, from the 3x3 V-V grid
    pad_st_file *m = NULL;
    cr_assert(pad_st_open(&m, pad_test_fmt("%s/results/synth/weave/k2/seed0/seg/maps.safetensors", dir)) == PAD_OK);
    const pad_st_tensor *pm = pad_st_find(m, "pixel_map");
    cr_assert(pm && pm->shape[0] == 6 && pm->shape[1] == 64 && pm->shape[2] == 64);
    pad_st_close(m);
    check_detector(dir);
    free(c), free(c2);
    pad_test_log_stop();
}

Test(run_clip_resnet, taps_are_stages) {
    pad_test_log_start();
    char *dir = pad_test_tmpdir("run_clip_resnet_taps");
    make_model(dir);
    static const char *const bad[] = {"model.taps=1,5", NULL};
    pad_run_config *c = make_cfg(dir, dir, bad);
    pad_run_result res;
    cr_assert_eq(run_it(c, &res), PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("stage numbers 1..4");
    free(c);
    // other taps, through the feature cache: a second run into another folder reads the features from the cache
    // (the cache keys on the taps the tower reads) and scores as the first
    const char *cache = pad_test_fmt("cache.dir=%s/cache", dir);
    const char *const other[] = {"model.taps=4,1", "run.shots=1", "run.tasks=seg", cache, NULL};
    c = make_cfg(dir, dir, other);
    cr_assert_eq(run_it(c, &res), PAD_OK, "%s", pad_test_log_text());
    check_model_json(pad_test_fmt("%s/results/synth/weave/k1/seed0/model/model.json", dir), 4, 1, 256);
    free(c);
    char *dir2 = pad_test_tmpdir("run_clip_resnet_taps2");
    c = make_cfg(dir2, dir, other);
    cr_assert_eq(run_it(c, &res), PAD_OK, "%s", pad_test_log_text());
    char *s1 = slurp(pad_test_fmt("%s/results/synth/weave/k1/seed0/seg/scores.csv", dir), NULL);
    char *s2 = slurp(pad_test_fmt("%s/results/synth/weave/k1/seed0/seg/scores.csv", dir2), NULL);
    double v1[6], v2[6];
    score_column(s1, v1, 6);
    score_column(s2, v2, 6);
    for (int i = 0; i < 6; i++)
        cr_assert(v1[i] == v2[i], "score %d: %.9g, from the cache %.9g", i, v1[i], v2[i]);
    free(s1), free(s2), free(c);
    pad_test_log_stop();
}
