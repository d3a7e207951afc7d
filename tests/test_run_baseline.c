/* test_run_baseline.c - run.method patchcore | padim | spade (host/run/unit_baseline.c) end to end on a tiny synthetic
 * dataset with a generated random resnet-tiny backbone (CPU backend): the unit layout (scores.csv, maps, heatmaps,
 * metrics.json naming the method, no training log nor prompts) under <output.dir>/<dataset>/<method>/, both tasks from
 * one fit, resumption, determinism, and the config key; and the three baselines run with PromptAD into one output
 * folder, whose report puts them side by side with the paper's numbers. */
#include "check.h"
#include "config.h"
#include "fsutil.h"
#include "report.h"
#include "run.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_run_config *make_cfg(const char *dir, const char *method) {
    pad_run_config *c = malloc(sizeof *c);
    cr_assert(c);
    pad_run_config_default(c);
    const char *sets[] = {pad_test_fmt("run.method=%s", method),
                          pad_test_fmt("model.weights=%s/model/resnet.safetensors", dir),
                          "model.generate=tiny",
                          "data.format=synth",
                          pad_test_fmt("data.root=%s/data", dir),
                          "data.synth.classes=1",
                          "data.synth.size=64",
                          "data.synth.train=3",
                          "data.synth.test_good=3",
                          "data.synth.test_bad=3",
                          "run.shots=1,2",
                          "run.seeds=0",
                          "run.tasks=cls,seg",
                          "run.resolution=64",
                          "run.batch=4",
                          pad_test_fmt("output.dir=%s/results", dir),
                          "output.maps=full",
                          "output.heatmaps=2"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        cr_assert_eq(pad_run_config_set(c, sets[i]), PAD_OK, "%s: %s", sets[i], pad_test_log_text());
    cr_assert_eq(pad_run_config_finalize(c), PAD_OK, "%s", pad_test_log_text());
    return c;
}

static pad_run_result run_ok(pad_run_config *c) {
    pad_run_opts o = {0};
    pad_run_result res;
    cr_assert_eq(pad_run(c, &o, &res), PAD_OK, "%s", pad_test_log_text());
    free(res.summary_md);
    return res;
}

static char *slurp(const char *path) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(path, &t, NULL), PAD_OK, "%s", path);
    return t;
}

static void check_method(const char *method) {
    pad_test_log_start();
    char *dir = pad_test_tmpdir("run_baseline");
    pad_run_config *c = make_cfg(dir, method);
    pad_run_result res = run_ok(c);
    cr_assert_eq(res.n_units, 4);
    cr_assert_eq(res.n_computed, 4);
    cr_assert(pad_path_is_file(pad_test_fmt("%s/results/synth/%s/method.txt", dir, method)));
    const char *unit = pad_test_fmt("%s/results/synth/%s/weave/k2/seed0", dir, method);
    char *cls = slurp(pad_test_fmt("%s/cls/scores.csv", unit)), *seg = slurp(pad_test_fmt("%s/seg/scores.csv", unit));
    cr_assert_str_eq(cls, seg, "one fit serves both tasks");
    int rows = 0;
    for (const char *p = cls; *p; p++)
        rows += *p == '\n';
    cr_assert_eq(rows, 7, "header + 6 test images");
    cr_assert(pad_path_is_file(pad_test_fmt("%s/seg/maps.safetensors", unit)));
    cr_assert(!pad_path_is_file(pad_test_fmt("%s/seg/train.csv", unit)));
    cr_assert(!pad_path_is_file(pad_test_fmt("%s/seg/prompts.safetensors", unit)));
    cr_assert(pad_path_is_dir(pad_test_fmt("%s/seg/heatmaps", unit)));
    char *mj = slurp(pad_test_fmt("%s/seg/metrics.json", unit));
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
    char *cls2 = slurp(pad_test_fmt("%s/results/synth/%s/weave/k2/seed0/cls/scores.csv", dir2, method));
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

// The cell of `method`'s column pair for k in the side-by-side table's row `row` ("| **mean** |"): I-AUROC and
// P-AUROC as written ("61.1 (83.4)").
static void side_cells(const char *md, const char *method, int k, const char *row, char *img, char *pix, size_t cap) {
    const char *table = strstr(md, "## Methods side by side");
    cr_assert(table, "no side-by-side table:\n%s", md);
    const char *head_end = strchr(table, '\n');
    head_end = strchr(head_end + 1, '\n');
    head_end = strchr(head_end + 1, '\n'); // the header row
    const char *col = strstr(table, pad_test_fmt(" %s %d-shot I-AUROC |", method, k));
    cr_assert(col && col < head_end, "no column for %s %d-shot:\n%s", method, k, table);
    int pipes = 0; // the '|' before the column in the header row: the cell starts after as many in the table row
    for (const char *p = strchr(table, '|'); p && p < col; p = strchr(p + 1, '|'))
        pipes++;
    const char *r = strstr(table, row);
    cr_assert(r, "no row %s:\n%s", row, table);
    const char *p = r;
    for (int i = 1; i < pipes; i++)
        p = strchr(p + 1, '|');
    const char *q = strchr(p + 1, '|'), *e = strchr(q + 1, '|');
    snprintf(img, cap, "%.*s", (int)(q - p - 3), p + 2);
    snprintf(pix, cap, "%.*s", (int)(e - q - 3), q + 2);
}

// image_auroc and pixel_auroc (percent, "%.1f") of the unit in folder u (cls for the image, seg for the pixel).
static void unit_numbers(const char *u, char *img, char *pix, size_t cap) {
    const char *tasks[2] = {"cls", "seg"}, *keys[2] = {"image_auroc", "pixel_auroc"};
    char *out[2] = {img, pix};
    for (int t = 0; t < 2; t++) {
        char *text = slurp(pad_test_fmt("%s/%s/metrics.json", u, tasks[t]));
        cJSON *j = cJSON_Parse(text);
        cr_assert(j);
        snprintf(out[t], cap, "%.1f", 100.0 * cJSON_GetObjectItem(j, keys[t])->valuedouble);
        cJSON_Delete(j);
        free(text);
    }
}

// A run of method into <dir>/results on the MVTec-layout folder <dir>/data (one class, bottle): PromptAD on a
// generated tiny CLIP (one epoch), a baseline on a generated resnet-tiny.
static pad_run_config *report_cfg(const char *dir, const char *method) {
    pad_run_config *c = malloc(sizeof *c);
    cr_assert(c);
    pad_run_config_default(c);
    const bool promptad = strcmp(method, "promptad") == 0;
    const char *sets[] = {pad_test_fmt("run.method=%s", method),
                          promptad ? pad_test_fmt("model.weights=%s/model/clip.safetensors", dir)
                                   : pad_test_fmt("model.weights=%s/model/resnet.safetensors", dir),
                          pad_test_fmt("model.vocab=%s/model/vocab.txt.gz", dir),
                          "model.generate=tiny",
                          "data.format=mvtec",
                          pad_test_fmt("data.root=%s/data", dir),
                          "run.shots=1,2",
                          "run.seeds=0",
                          "run.epochs=1",
                          promptad ? "run.resolution=32" : "run.resolution=64",
                          "run.batch=4",
                          pad_test_fmt("output.dir=%s/results", dir)};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        cr_assert_eq(pad_run_config_set(c, sets[i]), PAD_OK, "%s: %s", sets[i], pad_test_log_text());
    cr_assert_eq(pad_run_config_finalize(c), PAD_OK, "%s", pad_test_log_text());
    return c;
}

Test(run_baseline, report_puts_methods_side_by_side, .timeout = 1200) {
    pad_test_log_start();
    char *dir = pad_test_tmpdir("run_baseline_report");
    // a synthetic class in MVTec's layout, named as an MVTec class so that the paper has per-class numbers for it
    pad_cmd_result r = pad_cmd_run("cd '%s' && '%s' synth --out data --classes 1 --size 64 --train 3 --test-good 3 "
                                   "--test-bad 3 && mv data/weave data/bottle",
                                   dir, pad_test_binary());
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    pad_cmd_free(&r);
    pad_run_config *p = report_cfg(dir, "promptad");
    run_ok(p);
    const char *methods[3] = {"patchcore", "padim", "spade"};
    for (int m = 0; m < 3; m++) {
        pad_run_config *c = report_cfg(dir, methods[m]);
        pad_run_result res = run_ok(c);
        cr_assert_eq(res.n_computed, 4, "%s: the units of the other methods are not in its way", methods[m]);
        free(c);
    }
    // the report over the folder (a run writes it too, with the paper's numbers it finds from its working folder)
    const char *dirs[1] = {pad_test_fmt("%s/results", dir)};
    char *md_all = NULL;
    int n_units = 0;
    cr_assert_eq(pad_report_write(dirs, 1, dirs[0], PAD_SOURCE_DIR "/configs/paper_results.csv", &md_all, &n_units),
                 PAD_OK, "%s", pad_test_log_text());
    cr_assert_eq(n_units, 16, "2 tasks x 2 shot counts x 4 methods");
    free(md_all);
    char *md = slurp(pad_test_fmt("%s/results/mvtec/summary.md", dir));
    // the paper's numbers for bottle and the MVTec mean, PromptAD's and the baselines' (supplementary Tables 6 and
    // 7: 1-shot and 2-shot I-AUROC, P-AUROC)
    const struct {
        const char *method, *dir;
        const char *paper[2][2][2]; // [k - 1][bottle, mean][I, P]
    } want[4] = {
        {"promptad", "", {{{"99.8", "99.6"}, {"94.6", "95.9"}}, {{"100.0", "99.5"}, {"95.7", "96.2"}}}},
        {"patchcore", "patchcore/", {{{"99.4", "97.9"}, {"83.4", "92.0"}}, {{"99.2", "98.1"}, {"86.3", "93.3"}}}},
        {"padim", "padim/", {{{"97.4", "96.1"}, {"76.6", "89.3"}}, {{"98.5", "96.9"}, {"78.9", "91.3"}}}},
        {"spade", "spade/", {{{"98.7", "95.3"}, {"81.0", "91.2"}}, {{"99.5", "95.7"}, {"82.9", "92.0"}}}}};
    for (int m = 0; m < 4; m++)
        for (int k = 1; k <= 2; k++) {
            char ours_i[32], ours_p[32], img[64], pix[64];
            unit_numbers(pad_test_fmt("%s/results/mvtec/%sbottle/k%d/seed0", dir, want[m].dir, k), ours_i, ours_p,
                         sizeof ours_i);
            for (int row = 0; row < 2; row++) { // one class: its mean is its value
                side_cells(md, want[m].method, k, row ? "| **mean** |" : "| bottle |", img, pix, sizeof img);
                const char *wi = pad_test_fmt("%s (%s)", ours_i, want[m].paper[k - 1][row][0]);
                const char *wp = pad_test_fmt("%s (%s)", ours_p, want[m].paper[k - 1][row][1]);
                cr_assert_str_eq(img, wi, "%s %d-shot row %d I-AUROC: [%s], want [%s]\n%s", want[m].method, k, row, img,
                                 wi, md);
                cr_assert_str_eq(pix, wp, "%s %d-shot row %d P-AUROC: [%s], want [%s]\n%s", want[m].method, k, row, pix,
                                 wp, md);
            }
        }
    // report.html: the same table, cells "ours (paper)" keyed by data-side
    char *html = slurp(pad_test_fmt("%s/results/report.html", dir));
    cr_assert(strstr(html, "<h3>Methods side by side</h3>"));
    for (int m = 0; m < 4; m++)
        for (int k = 1; k <= 2; k++) {
            cr_assert(strstr(html, pad_test_fmt("<th colspan=\"2\">%s %d-shot</th>", want[m].method, k)), "%s %d",
                      want[m].method, k);
            char ours_i[32], ours_p[32];
            unit_numbers(pad_test_fmt("%s/results/mvtec/%sbottle/k%d/seed0", dir, want[m].dir, k), ours_i, ours_p,
                         sizeof ours_i);
            const char *proto = m ? pad_test_fmt("clean/%s", want[m].method) : "clean";
            const char *ci = pad_test_fmt("data-side=\"%s|%d|bottle|image_auroc\">%s (%s)</td>", proto, k, ours_i,
                                          want[m].paper[k - 1][0][0]);
            const char *cp = pad_test_fmt("data-side=\"%s|%d|bottle|pixel_auroc\">%s (%s)</td>", proto, k, ours_p,
                                          want[m].paper[k - 1][0][1]);
            cr_assert(strstr(html, ci), "report.html has no cell %s", ci);
            cr_assert(strstr(html, cp), "report.html has no cell %s", cp);
        }
    free(html);
    free(md);
    free(p);
    pad_test_log_stop();
}
