/* test_report.c - summary tables (eval/report.h) from hand-written metrics.json files: mean ± population std over
 * seeds, the dataset mean over per-seed class averages, the cls/seg source of each column, the paper's numbers,
 * merging two result folders (sharded runs) and skipping temporary folders. */
#include "check.h"
#include "fsutil.h"
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void unit(const char *root, const char *ds, const char *cls, int k, int seed, const char *task, double iauroc,
                 double pauroc) {
    char dir[2048], path[2100], text[1024];
    snprintf(dir, sizeof dir, "%s/%s/%s/k%d/seed%d/%s", root, ds, cls, k, seed, task);
    cr_assert_eq(pad_mkdir_p(dir), PAD_OK);
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    snprintf(text, sizeof text,
             "{\"image_auroc\": %.17g, \"image_aupr\": 0.5, \"pixel_auroc\": %.17g, \"pixel_aupr\": null, "
             "\"pixel_pro\": 0.25, \"pixel_pro_200\": null, \"dataset\": \"%s\", \"format\": \"mvtec\", "
             "\"class\": \"%s\", \"k\": %d, \"seed\": %d, \"task\": \"%s\", \"protocol\": \"clean\", "
             "\"config_hash\": \"abc\"}",
             iauroc, pauroc, ds, cls, k, seed, task);
    pad_test_write_file(path, text, strlen(text));
}

static char *read_text(const char *path) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(path, &t, NULL), PAD_OK, "%s", path);
    return t;
}

TestSuite(report, .init = pad_test_log_start, .timeout = 30);

Test(report, tables_and_paper_numbers) {
    char *a = pad_test_tmpdir("report_a"), *b = pad_test_tmpdir("report_b"), *out = pad_test_tmpdir("report_out");
    // shard a: bottle seeds 0,1; shard b: bottle seed 2 and grid seeds 0..2 (grid sorts after bottle? no: the
    // official MVTec order puts grid (2nd) before bottle (6th))
    unit(a, "mvtec", "bottle", 1, 0, "cls", 0.90, 0.80);
    unit(a, "mvtec", "bottle", 1, 1, "cls", 0.80, 0.80);
    unit(b, "mvtec", "bottle", 1, 2, "cls", 0.70, 0.80);
    unit(a, "mvtec", "bottle", 1, 0, "seg", 0.50, 0.95);
    unit(a, "mvtec", "bottle", 1, 1, "seg", 0.50, 0.97);
    unit(b, "mvtec", "bottle", 1, 2, "seg", 0.50, 0.96);
    for (int s = 0; s < 3; s++) {
        unit(b, "mvtec", "grid", 1, s, "cls", 1.0, 0.5);
        unit(b, "mvtec", "grid", 1, s, "seg", 0.5, 0.90);
    }
    // a duplicate of shard a's unit in b is ignored with a warning; a temporary folder is skipped
    unit(b, "mvtec", "bottle", 1, 0, "cls", 0.10, 0.10);
    unit(a, "mvtec", "bottle", 1, 9, "cls.tmp-123", 0.0, 0.0);
    char paper[1024];
    snprintf(paper, sizeof paper, "%s/configs/paper_results.csv", PAD_SOURCE_DIR);
    const char *dirs[2] = {a, b};
    char *md = NULL;
    int n = 0;
    cr_assert_eq(pad_report_write(dirs, 2, out, paper, &md, &n), PAD_OK, "%s", pad_test_log_text());
    cr_assert_eq(n, 12, "units read: %d", n);
    cr_assert(strstr(pad_test_log_text(), "the same unit as") != NULL, "%s", pad_test_log_text());
    cr_assert(md);
    char path[2048];
    snprintf(path, sizeof path, "%s/mvtec/summary.md", out);
    char *file = read_text(path);
    cr_assert_str_eq(file, md);
    // bottle I-AUROC: seeds 0.9, 0.8, 0.7 -> 80.0 ± 8.2 (population std sqrt(2/3)*10); P-AUROC from seg: 96.0 ± 0.8
    // paper bottle 1-shot: I-AUROC 99.8 ± 0.3
    cr_assert(strstr(md, "| bottle | 80.0 ± 8.2 | 99.8 ± 0.3 | 96.0 ± 0.8 |") != NULL, "%s", md);
    // grid before bottle (official order); mean over classes per seed: (1.0+0.9)/2, (1.0+0.8)/2, (1.0+0.7)/2
    char *g = strstr(md, "| grid |"), *bo = strstr(md, "| bottle |");
    cr_assert(g && bo && g < bo, "class order:\n%s", md);
    cr_assert(strstr(md, "| **mean** | **90.0 ± 4.1** | 99.8* |") != NULL, "%s", md);
    cr_assert(strstr(md, "\\* the paper's per-class means averaged") != NULL, "%s", md);
    // PRO from seg (0.25 everywhere), AUPR from cls
    cr_assert(strstr(md, "| 25.0 ± 0.0 |") != NULL, "%s", md);
    snprintf(path, sizeof path, "%s/mvtec/summary.csv", out);
    char *csv = read_text(path);
    cr_assert(strstr(csv, "dataset,protocol,k,class,task,metric,mean,std,n_seeds,seeds,paper_mean,paper_std\n") == csv);
    cr_assert(strstr(csv, "mvtec,clean,1,bottle,cls,image_auroc,0.800000,0.081650,3,0 1 2,0.998000,0.003000\n"), "%s",
              csv);
    cr_assert(strstr(csv, "mvtec,clean,1,bottle,seg,pixel_auroc,0.960000,0.008165,3,0 1 2,") != NULL, "%s", csv);
    // a metric that is null everywhere has no row
    cr_assert(strstr(csv, "pixel_aupr") == NULL, "%s", csv);
    free(file);
    free(csv);
    free(md);
}

Test(report, one_task_only_and_no_paper) {
    char *a = pad_test_tmpdir("report_c"), *out = pad_test_tmpdir("report_out2");
    unit(a, "synth", "weave", 2, 0, "cls", 0.75, 0.60);
    const char *dirs[1] = {a};
    char *md = NULL;
    cr_assert_eq(pad_report_write(dirs, 1, out, NULL, &md, NULL), PAD_OK, "%s", pad_test_log_text());
    // pixel columns fall back to the cls task and say so; one seed: no std
    cr_assert(strstr(md, "P-AUROC (cls task)") != NULL, "%s", md);
    cr_assert(strstr(md, "| weave | 75.0 | 60.0 |") != NULL, "%s", md);
    // no paper numbers for synth: no paper columns, no paper legend or footnote ("as in the paper" stays: it is prose)
    cr_assert(strstr(md, "| class | I-AUROC | P-AUROC (cls task) | I-AUPR | PRO (cls task) |\n") != NULL, "%s", md);
    cr_assert(strstr(md, " paper |") == NULL && strstr(md, "*paper*") == NULL && strstr(md, "paper's") == NULL, "%s",
              md);
    free(md);
}

Test(report, errors) {
    char *a = pad_test_tmpdir("report_d"), *out = pad_test_tmpdir("report_out3");
    const char *dirs[1] = {"/nonexistent/results"};
    cr_assert_neq(pad_report_write(dirs, 1, out, NULL, NULL, NULL), PAD_OK);
    cr_assert(strstr(pad_test_log_text(), "/nonexistent/results") != NULL, "%s", pad_test_log_text());
    // a malformed metrics.json is named
    char dir[2048], path[2100];
    snprintf(dir, sizeof dir, "%s/mvtec/bottle/k1/seed0/cls", a);
    cr_assert_eq(pad_mkdir_p(dir), PAD_OK);
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    pad_test_write_file(path, "{\"image_auroc\": ", 16);
    pad_test_log_start();
    dirs[0] = a;
    cr_assert_eq(pad_report_write(dirs, 1, out, NULL, NULL, NULL), PAD_ERR_FORMAT);
    cr_assert(strstr(pad_test_log_text(), path) != NULL, "%s", pad_test_log_text());
    // an empty folder: a warning, nothing written
    char *e = pad_test_tmpdir("report_e");
    dirs[0] = e;
    int n = -1;
    cr_assert_eq(pad_report_write(dirs, 1, out, NULL, NULL, &n), PAD_OK);
    cr_assert_eq(n, 0);
}
