/* test_run_baseline.c - run.method patchcore | padim | spade (host/run/unit_baseline.c) end to end on a tiny synthetic
 * dataset with a generated random resnet-tiny backbone (CPU backend): the unit layout (scores.csv, maps, heatmaps,
 * metrics.json naming the method, no training log nor prompts), both tasks from one fit, resumption, determinism,
 * and the config key. */
#include "check.h"
#include "config.h"
#include "fsutil.h"
#include "run.h"
#include "run_fixture.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_run_config *make_cfg(const char *dir, const char *method) {
    pad_run_config *c = pad_tiny_run_cfg(
        dir, pad_test_fmt("run.method=%s", method), pad_test_fmt("model.weights=%s/model/resnet.safetensors", dir),
        "run.shots=1,2", "run.tasks=cls,seg", "output.maps=full", "output.heatmaps=2", NULL);
    cr_assert_eq(pad_run_config_finalize(c), PAD_OK, "%s", pad_test_log_text());
    return c;
}

static pad_run_result run_ok(pad_run_config *c) {
    pad_run_result res;
    cr_assert_eq(pad_tiny_run(c, NULL, &res), PAD_OK, "%s", pad_test_log_text());
    return res;
}

static void check_method(const char *method) {
    pad_test_log_start();
    char *dir = pad_test_tmpdir("run_baseline");
    pad_run_config *c = make_cfg(dir, method);
    pad_run_result res = run_ok(c);
    cr_assert_eq(res.n_units, 4);
    cr_assert_eq(res.n_computed, 4);
    const char *unit = pad_test_fmt("%s/results/synth/weave/k2/seed0", dir);
    char *cls = pad_test_read_text(pad_test_fmt("%s/cls/scores.csv", unit), NULL),
         *seg = pad_test_read_text(pad_test_fmt("%s/seg/scores.csv", unit), NULL);
    cr_assert_str_eq(cls, seg, "one fit serves both tasks");
    int rows = 0;
    for (const char *p = cls; *p; p++)
        rows += *p == '\n';
    cr_assert_eq(rows, 7, "header + 6 test images");
    cr_assert(pad_path_is_file(pad_test_fmt("%s/seg/maps.safetensors", unit)));
    cr_assert(!pad_path_is_file(pad_test_fmt("%s/seg/train.csv", unit)));
    cr_assert(!pad_path_is_file(pad_test_fmt("%s/seg/prompts.safetensors", unit)));
    cr_assert(pad_path_is_dir(pad_test_fmt("%s/seg/heatmaps", unit)));
    char *mj = pad_test_read_text(pad_test_fmt("%s/seg/metrics.json", unit), NULL);
    cJSON *j = cJSON_Parse(mj);
    cr_assert(j);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, method);
    const double auroc = cJSON_GetObjectItem(j, "image_auroc")->valuedouble;
    const double pix = cJSON_GetObjectItem(j, "pixel_auroc")->valuedouble;
    cr_assert(auroc >= 0 && auroc <= 1 && pix >= 0 && pix <= 1, "auroc %g, pixel %g", auroc, pix);
    cJSON_Delete(j);
    pad_st_file *m = NULL;
    cr_assert(pad_st_open(&m, pad_test_fmt("%s/seg/maps.safetensors", unit)) == PAD_OK);
    const pad_st_tensor *pm = pad_st_find(m, "pixel_map");
    cr_assert(pm && pm->shape[0] == 6 && pm->shape[1] == 64 && pm->shape[2] == 64);
    pad_st_close(m);
    // resumption: nothing left to do
    res = run_ok(c);
    cr_assert_eq(res.n_computed, 0);
    cr_assert_eq(res.n_skipped, 4);
    // determinism: a second output folder gets the same scores
    char *dir2 = pad_test_tmpdir("run_baseline2");
    pad_run_config *c2 = make_cfg(dir2, method);
    run_ok(c2);
    char *cls2 = pad_test_read_text(pad_test_fmt("%s/results/synth/weave/k2/seed0/cls/scores.csv", dir2), NULL);
    const char *a = strchr(cls, '\n'), *b = strchr(cls2, '\n');
    int diff = 0; // compare the score column (the paths differ by the folder)
    for (int r = 0; r < 6; r++) {
        a = strchr(a + 1, ','), b = strchr(b + 1, ',');
        a = strchr(a + 1, ','), b = strchr(b + 1, ',');
        diff += strtod(a + 1, NULL) != strtod(b + 1, NULL);
        a = strchr(a, '\n'), b = strchr(b, '\n');
    }
    cr_assert_eq(diff, 0);
    free(cls), free(seg), free(mj), free(cls2), free(c), free(c2);
    pad_test_log_stop();
}

Test(run_baseline, patchcore_units) {
    check_method("patchcore");
}

Test(run_baseline, padim_units) {
    check_method("padim");
}

Test(run_baseline, spade_units) {
    check_method("spade");
}

Test(run_baseline, method_key) {
    pad_run_config c;
    pad_run_config_default(&c);
    cr_assert_eq(c.run.method, PAD_RUN_METHOD_PROMPTAD);
    pad_test_log_start();
    cr_assert_eq(pad_run_config_set(&c, "run.method=winclip-"), PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("run.method");
    pad_test_log_stop();
    char h1[17], h2[17];
    pad_run_config_hash(&c, 1, 2, h1);
    cr_assert_eq(pad_run_config_set(&c, "run.method=patchcore"), PAD_OK);
    pad_run_config_hash(&c, 1, 2, h2);
    cr_assert(strcmp(h1, h2) != 0, "the method changes the hash");
    char buf[8192];
    pad_run_config_to_yaml(&c, buf, sizeof buf);
    cr_assert(strstr(buf, "method: patchcore"));
}
