/* test_run_damage.c - the run loop against damaged or hostile results and datasets (host/run/run.c, unit_dir.c,
 * run_setup.c, report.c, host/eval/dataset.c): a unit with a deleted scores.csv or a truncated metrics.json is
 * recomputed with a message naming the file; a class whose test set has only normal images gets n/a for its
 * undefined metrics while the run succeeds; a VisA split file whose object column climbs out of the dataset is
 * refused; a failed run never claims results; the partial dataset of an interrupted generation is never used. */
#include "check.h"
#include "config.h"
#include "dataset.h"
#include "fsutil.h"
#include "run.h"
#include "run_fixture.h"
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

TestSuite(damage, .init = pad_test_log_start, .timeout = 900);

// A tiny synthetic run in dir (one class, shots 1, one seed, both tasks: 2 units).
static pad_run_config *tiny_cfg(const char *dir) {
    // the caller finalizes it after its own settings
    return pad_tiny_run_cfg(dir, "data.synth.train=2", "data.synth.test_good=2", "data.synth.test_bad=2",
                            "run.epochs=1", "run.resolution=32", "run.device=cpu", "run.threads=1", "output.heatmaps=1",
                            NULL);
}

static void finalize(pad_run_config *c) {
    cr_assert_eq(pad_run_config_finalize(c), PAD_OK, "%s", pad_test_log_text());
}

Test(damage, a_missing_or_cut_file_makes_the_unit_redone) {
    const char *dir = pad_test_tmpdir("damage_units");
    pad_run_config *c = tiny_cfg(dir);
    finalize(c);
    pad_run_result res;
    cr_assert_eq(pad_tiny_run(c, NULL, &res), PAD_OK, "%s", pad_test_log_text());
    cr_assert_eq(res.n_computed, 2);
    const char *cls = pad_test_fmt("%s/results/synth/weave/k1/seed0/cls", dir);
    const char *seg = pad_test_fmt("%s/results/synth/weave/k1/seed0/seg", dir);
    cr_assert_eq(remove(pad_test_fmt("%s/scores.csv", cls)), 0);
    char *text = NULL;
    size_t n = 0;
    cr_assert_eq(pad_read_file(pad_test_fmt("%s/metrics.json", seg), &text, &n), PAD_OK);
    pad_test_write_file(pad_test_fmt("%s/metrics.json", seg), text, n / 2); // cut short
    free(text);
    pad_test_log_start();
    cr_assert_eq(pad_tiny_run(c, NULL, &res), PAD_OK, "%s", pad_test_log_text());
    cr_assert_eq(res.n_computed, 2, "both damaged units are recomputed");
    cr_assert_eq(res.n_skipped, 0);
    PAD_ASSERT_LOG_HAS("scores.csv is missing");
    PAD_ASSERT_LOG_HAS("metrics.json does not parse");
    cr_assert(strstr(pad_test_log_text(), "other settings") == NULL, "%s", pad_test_log_text());
    cr_assert(pad_path_is_file(pad_test_fmt("%s/scores.csv", cls)));
    // a heatmap counts too (metrics.json lists every file with its size); a complete unit is left alone
    const char *hm = pad_test_fmt("%s/heatmaps", cls);
    pad_cmd_result r = pad_cmd_run("f=$(ls %s | head -n 1); printf x >> %s/$f; echo $f", hm, hm);
    pad_cmd_free(&r);
    pad_test_log_start();
    cr_assert_eq(pad_tiny_run(c, NULL, &res), PAD_OK, "%s", pad_test_log_text());
    cr_assert(res.n_computed == 1 && res.n_skipped == 1, "%d computed, %d skipped", res.n_computed, res.n_skipped);
    PAD_ASSERT_LOG_HAS("were written");
    free(c);
}

Test(damage, only_normal_test_images_give_na_not_a_failure) {
    const char *dir = pad_test_tmpdir("damage_normal");
    pad_synth_opts o;
    pad_synth_opts_default(&o);
    o.n_classes = 2;
    o.size = 64;
    o.n_train = 2;
    o.n_test_good = 2;
    o.n_test_bad = 2;
    const char *syn = pad_test_fmt("%s/syn", dir);
    cr_assert_eq(pad_synth_write(syn, &o, NULL), PAD_OK, "%s", pad_test_log_text());
    // a folder dataset: weave as generated, grid with its normal test images only
    pad_cmd_result r =
        pad_cmd_run("mkdir -p %s/ds/grid/test && cp -r %s/weave %s/ds/ && cp -r %s/grid/train %s/ds/grid/ "
                    "&& cp -r %s/grid/test/good %s/ds/grid/test/",
                    dir, syn, dir, syn, dir, syn, dir);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    pad_cmd_free(&r);
    pad_run_config *c = tiny_cfg(dir);
    cr_assert_eq(pad_run_config_set(c, "data.format=folder"), PAD_OK);
    cr_assert_eq(pad_run_config_set(c, pad_test_fmt("data.root=%s/ds", dir)), PAD_OK);
    finalize(c);
    pad_run_result res;
    pad_run_opts ro = {0};
    cr_assert_eq(pad_run(c, &ro, &res), PAD_OK, "%s", pad_test_log_text());
    cr_assert_eq(res.n_computed, 4);
    cr_assert(res.summary_md != NULL);
    char *md = NULL;
    cr_assert_eq(pad_read_file(pad_test_fmt("%s/results/folder/summary.md", dir), &md, NULL), PAD_OK);
    // grid's metrics are all undefined (no anomalous test image): marked, and weave keeps its numbers
    cr_assert(strstr(md, "| grid | – | – | – | – |") != NULL, "undefined metrics are not marked:\n%s", md);
    cr_assert(strstr(md, "– = undefined") != NULL, "the mark is not explained:\n%s", md);
    const char *weave = strstr(md, "| weave | ");
    cr_assert(weave && weave[10] >= '0' && weave[10] <= '9', "%s", md);
    free(md);
    free(res.summary_md);
    free(c);
}

Test(damage, visa_csv_object_cannot_leave_the_dataset) {
    const char *dir = pad_test_tmpdir("damage_visa");
    cr_assert_eq(pad_mkdir_p(pad_test_fmt("%s/split_csv", dir)), PAD_OK);
    cr_assert_eq(pad_mkdir_p(pad_test_fmt("%s/x", dir)), PAD_OK);
    pad_test_write_file(pad_test_fmt("%s/x/a.JPG", dir), "x", 1);
    const char *csv = "object,split,label,image,mask\n../../..,train,normal,x/a.JPG,\n../../..,test,normal,x/a.JPG,\n";
    pad_test_write_file(pad_test_fmt("%s/split_csv/1cls.csv", dir), csv, strlen(csv));
    pad_dataset *ds = NULL;
    cr_assert_eq(pad_dataset_open(&ds, PAD_DATASET_FORMAT_VISA, dir), PAD_ERR_FORMAT);
    cr_assert_null(ds);
    PAD_ASSERT_LOG_HAS("1cls.csv:2: object '../../..' is not a valid class name");
    // the same rule as data.classes
    static const char *const bad[] = {"", ".", "..", "a/b", "a\\b", "a\nb", "tab\there"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(!pad_dataset_class_name_ok(bad[i]), "'%s' accepted", bad[i]);
    cr_assert(pad_dataset_class_name_ok("metal_nut") && pad_dataset_class_name_ok("a b.c"));
    char longname[PAD_DATASET_NAME_MAX + 1];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    cr_assert(!pad_dataset_class_name_ok(longname));
    pad_run_config *c = malloc(sizeof *c);
    pad_run_config_default(c);
    cr_assert_eq(pad_run_config_set(c, "data.classes=.."), PAD_ERR_INVALID_ARG);
    free(c);
}

Test(damage, a_failed_run_claims_no_results) {
    const char *dir = pad_test_tmpdir("damage_fail");
    // the dataset is generated, then the class list names a class that is not there
    pad_cmd_result r = pad_cmd_run(
        "%s run --config %s/configs/demo.yaml --set model.weights=%s/m/t.safetensors --set model.vocab=%s/m/v.txt.gz "
        "--set data.root=%s/data --set data.synth.size=64 --set data.synth.train=2 --set data.synth.test_good=1 "
        "--set data.synth.test_bad=1 --set output.dir=%s/out --set data.classes=weave,nope",
        pad_test_binary(), PAD_SOURCE_DIR, dir, dir, dir, dir);
    cr_assert_eq(r.exit_code, 1, "%s", r.err);
    cr_assert(strstr(r.err, "nope") != NULL, "%s", r.err);
    cr_assert(strstr(r.err, "summary.md") == NULL && strstr(r.err, "units computed") == NULL,
              "a failed run claims results:\n%s", r.err);
    pad_cmd_free(&r);
}

Test(damage, an_interrupted_generation_is_never_used) {
    const char *dir = pad_test_tmpdir("damage_synth");
    // what a killed generation leaves: a hidden partial dataset beside data.root and a partial class inside it
    cr_assert_eq(pad_mkdir_p(pad_test_fmt("%s/.data.tmp-999999999/weave/train/good", dir)), PAD_OK);
    pad_run_config *c = tiny_cfg(dir);
    cr_assert_eq(pad_run_config_set(c, "output.models=false"), PAD_OK);
    cr_assert_eq(pad_run_config_set(c, "run.tasks=cls"), PAD_OK);
    finalize(c);
    pad_run_result res;
    cr_assert_eq(pad_tiny_run(c, NULL, &res), PAD_OK, "%s", pad_test_log_text());
    cr_assert(!pad_path_is_dir(pad_test_fmt("%s/.data.tmp-999999999", dir)), "the partial dataset is left");
    cr_assert(pad_path_is_dir(pad_test_fmt("%s/data/weave/test/good", dir)));
    cr_assert(!pad_path_is_file(pad_test_fmt("%s/data/.owner", dir)));
    // promptad synth: a partial class of a killed synth is removed, and classes appear only when complete
    const char *out = pad_test_fmt("%s/syn", dir);
    cr_assert_eq(pad_mkdir_p(pad_test_fmt("%s/.grid.tmp-999999999/train", out)), PAD_OK);
    pad_cmd_result r =
        pad_cmd_run("%s synth --out %s --classes 2 --size 64 --train 1 --test-good 1 --test-bad 1 && ls -A %s",
                    pad_test_binary(), out, out);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "grid\nweave\n", "%s", r.out);
    pad_cmd_free(&r);
    free(c);
}
