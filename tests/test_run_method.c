/* test_run_method.c - `promptad run` with run.method cpe and winclip (host/run/run_method.h, docs/winclip.md) and
 * PromptAD's ablation switches, on a tiny synthetic dataset with a generated tiny model: the config keys (parse,
 * YAML, hash), the results layout under <output.dir>/<dataset>/<method>/ with its marker, the unit files, the image
 * scores against the library path (host/model/winclip.h on the same preprocessed test images), the metrics against
 * pad_metrics_image of those scores, resumption, the report's side-by-side table, and a run without the visual
 * memory bank (image scores = text scores). */
#include "check.h"
#include "config.h"
#include "fsutil.h"
#include "image.h"
#include "metrics.h"
#include "run.h"
#include "st_file.h"
#include "tokenizer.h"
#include "weights.h"
#include "winclip.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TEST 6

static pad_run_config *make_cfg(const char *dir, const char *method) {
    pad_run_config *c = malloc(sizeof *c);
    cr_assert(c);
    pad_run_config_default(c);
    const char *sets[] = {pad_test_fmt("model.weights=%s/model/tiny.safetensors", dir),
                          pad_test_fmt("model.vocab=%s/model/vocab.txt.gz", dir),
                          "model.generate=tiny",
                          "data.format=synth",
                          pad_test_fmt("data.root=%s/data", dir),
                          "data.synth.classes=1",
                          "data.synth.size=64",
                          "data.synth.train=3",
                          "data.synth.test_good=3",
                          "data.synth.test_bad=3",
                          "run.shots=1",
                          "run.seeds=0",
                          "run.resolution=32",
                          "run.batch=4",
                          pad_test_fmt("run.method=%s", method),
                          pad_test_fmt("output.dir=%s/results", dir),
                          "output.maps=full"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        cr_assert_eq(pad_run_config_set(c, sets[i]), PAD_OK, "%s", sets[i]);
    if (strcmp(method, "promptad") != 0) cr_assert_eq(pad_run_config_finalize(c), PAD_OK);
    return c;
}

static pad_run_result run(pad_run_config *c) {
    pad_run_result res;
    pad_run_opts o = {0};
    cr_assert_eq(pad_run(c, &o, &res), PAD_OK);
    free(res.summary_md); // the counts are what the tests read
    res.summary_md = NULL;
    return res;
}

// scores.csv: paths (quoted or not), labels, scores; returns the rows.
static int read_scores(const char *path, char paths[][512], uint8_t *labels, float *scores) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s", path);
    char line[2048];
    cr_assert(fgets(line, sizeof line, f) && strcmp(line, "path,label,score\n") == 0);
    int n = 0;
    while (fgets(line, sizeof line, f) && n < N_TEST) {
        char *c2 = strrchr(line, ',');
        cr_assert(c2);
        *c2 = 0;
        char *c1 = strrchr(line, ',');
        cr_assert(c1);
        *c1 = 0;
        scores[n] = strtof(c2 + 1, NULL);
        labels[n] = (uint8_t)atoi(c1 + 1);
        char *p = line;
        size_t l = strlen(p);
        if (p[0] == '"' && l >= 2 && p[l - 1] == '"') p[l - 1] = 0, p++;
        cr_assert(strlen(p) < 512);
        memcpy(paths[n], p, strlen(p) + 1);
        n++;
    }
    fclose(f);
    return n;
}

Test(run_method, config_key) {
    pad_run_config c;
    pad_run_config_default(&c);
    cr_assert_eq(c.run.method, PAD_RUN_METHOD_PROMPTAD);
    char h0[17], h1[17];
    pad_run_config_hash(&c, 1, 2, h0);
    cr_assert_eq(pad_run_config_set(&c, "run.method=winclip"), PAD_OK);
    cr_assert_eq(c.run.method, PAD_RUN_METHOD_WINCLIP);
    pad_run_config_hash(&c, 1, 2, h1);
    cr_assert(strcmp(h0, h1) != 0, "the method is part of the hash");
    char y[16384];
    pad_run_config_to_yaml(&c, y, sizeof y);
    cr_assert(strstr(y, "  method: winclip\n"));
    cr_assert_eq(pad_run_config_set(&c, "run.method=cpe"), PAD_OK);
    cr_assert_eq(c.run.method, PAD_RUN_METHOD_CPE);
    pad_test_log_start();
    cr_assert_neq(pad_run_config_set(&c, "run.method=patchwork"), PAD_OK);
    cr_assert(strstr(pad_test_log_text(), "run.method"));
    pad_test_log_stop();
    cr_assert_str_eq(pad_run_method_str(PAD_RUN_METHOD_CPE), "cpe");
}

// The library's zero-shot WinCLIP image scores of the test images named in paths (squash preprocessing).
static void library_scores(const pad_run_config *c, char paths[][512], int n, float *out) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_clip_weights *hw = NULL, *w = NULL;
    cr_assert(pad_weights_load(&hw, c->model.weights, PAD_WEIGHTS_ALL) == PAD_OK);
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    const int S = hw->cfg.vision.image_size;
    float *pix = malloc(sizeof(float) * (size_t)n * 3 * S * S), *grid = malloc(sizeof(float) * (size_t)n * 64);
    for (int i = 0; i < n; i++) {
        pad_image img;
        cr_assert(pad_image_load(&img, paths[i]) == PAD_OK);
        cr_assert(pad_preprocess(&img, PAD_PREPROCESS_SQUASH, S, false, pix + (size_t)i * 3 * S * S) == PAD_OK);
        pad_image_free(&img);
    }
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, c->model.vocab) == PAD_OK);
    float text[2 * 64];
    cr_assert(pad_cpe_text(w, tok, "weave", text) == PAD_OK);
    pad_winclip_params p = pad_winclip_default_params();
    pad_winclip *wc = NULL;
    cr_assert(pad_winclip_create(&wc, be, w, &p) == PAD_OK);
    cr_assert(pad_winclip_set_text(wc, text) == PAD_OK);
    cr_assert(pad_winclip_score(wc, pix, n, out, grid, NULL) == PAD_OK);
    pad_winclip_free(wc);
    pad_tokenizer_free(tok);
    free(pix);
    free(grid);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_backend_free(be);
}

Test(run_method, winclip) {
    char *dir = pad_test_tmpdir("run_winclip");
    pad_run_config *c = make_cfg(dir, "winclip");
    pad_run_result r = run(c);
    cr_assert_eq(r.n_units, 2); // WinCLIP (k0) and WinCLIP+ (k1, seed 0)
    cr_assert_eq(r.n_computed, 2);
    const char *mdir = pad_test_fmt("%s/results/synth/winclip", dir);
    cr_assert(pad_path_is_file(pad_test_fmt("%s/method.txt", mdir)));
    const char *cls = "weave";
    for (int k = 0; k <= 1; k++) {
        const char *u = pad_test_fmt("%s/%s/k%d/seed0/seg", mdir, cls, k);
        cJSON *j = pad_test_read_json(pad_test_fmt("%s/metrics.json", u));
        cr_assert_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "winclip");
        cr_assert_str_eq(cJSON_GetObjectItem(j, "variant")->valuestring, k ? "WinCLIP+" : "WinCLIP");
        cr_assert_eq(cJSON_GetObjectItem(j, "k")->valueint, k);
        cr_assert(cJSON_IsBool(cJSON_GetObjectItem(j, "zero_shot")));
        cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "shots")), k);
        // the scores: the library's (zero-shot) and the metrics of the written scores
        char paths[N_TEST][512];
        uint8_t labels[N_TEST];
        float scores[N_TEST], lib[N_TEST];
        cr_assert_eq(read_scores(pad_test_fmt("%s/scores.csv", u), paths, labels, scores), N_TEST);
        if (k == 0) {
            library_scores(c, paths, N_TEST, lib);
            PAD_ASSERT_CLOSE("zero-shot image scores", scores, lib, N_TEST, 1e-6, 1e-6);
        }
        pad_image_metrics im;
        cr_assert(pad_metrics_image(scores, labels, N_TEST, &im) == PAD_OK);
        cr_assert(fabs(cJSON_GetObjectItem(j, "image_auroc")->valuedouble - im.auroc) < 1e-6);
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "pixel_auroc")));
        cJSON_Delete(j);
        pad_st_file *f = NULL;
        cr_assert(pad_st_open(&f, pad_test_fmt("%s/maps.safetensors", u)) == PAD_OK);
        const pad_st_tensor *g = pad_st_find(f, "score_grid"), *pm = pad_st_find(f, "pixel_map");
        cr_assert(g && g->ndim == 3 && g->shape[0] == N_TEST && g->shape[1] == 4);
        cr_assert(pm && pm->shape[1] == 32 && pm->shape[2] == 32);
        pad_st_close(f);
    }
    // a second run finds everything done
    pad_run_result r2 = run(c);
    cr_assert_eq(r2.n_computed, 0);
    cr_assert_eq(r2.n_skipped, 2);
    // the report lists the method's tables and the side-by-side table
    char *md = NULL;
    cr_assert(pad_read_file(pad_test_fmt("%s/results/synth/summary.md", dir), &md, NULL) == PAD_OK);
    cr_assert(strstr(md, "## clean/winclip, 0-shot"), "%s", md);
    cr_assert(strstr(md, "Methods side by side"), "%s", md);
    cr_assert(strstr(md, "winclip 0-shot (zero-shot) I-AUROC"), "%s", md);
    free(md);
    free(c);
    pad_cmd_result rm = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&rm);
}

Test(run_method, cpe) {
    char *dir = pad_test_tmpdir("run_cpe");
    pad_run_config *c = make_cfg(dir, "cpe");
    pad_run_result r = run(c);
    cr_assert_eq(r.n_units, 1); // zero-shot: one unit per class whatever run.shots and run.seeds say
    cr_assert_eq(r.n_computed, 1);
    const char *u = pad_test_fmt("%s/results/synth/cpe/weave/k0/seed0/seg", dir);
    cJSON *j = pad_test_read_json(pad_test_fmt("%s/metrics.json", u));
    cr_assert_str_eq(cJSON_GetObjectItem(j, "variant")->valuestring, "CPE + V-V CLIP");
    cr_assert(strstr(cJSON_GetObjectItem(j, "pixel_map")->valuestring, "Gaussian"));
    cJSON_Delete(j);
    // PromptAD's own layout is untouched
    cr_assert(!pad_path_is_dir(pad_test_fmt("%s/results/synth/weave", dir)));
    free(c);
    pad_cmd_result rm = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&rm);
}

// The "w/o VAD" ablation (run.use_vad false) with another (no MAPs): the cls unit's image scores are its text
// scores s_T, no pixel metrics come from the cls task, no predict model is written, and the
// hash differs from the full method's.
Test(run_method, promptad_without_vad) {
    char *dir = pad_test_tmpdir("run_novad");
    pad_run_config *c = make_cfg(dir, "promptad");
    cr_assert_eq(pad_run_config_set(c, "run.use_vad=false"), PAD_OK);
    cr_assert_eq(pad_run_config_set(c, "train.use_map=false"), PAD_OK);
    cr_assert_eq(pad_run_config_set(c, "run.epochs=1"), PAD_OK);
    cr_assert_eq(pad_run_config_set(c, "output.maps=grid"), PAD_OK);
    cr_assert_eq(pad_run_config_finalize(c), PAD_OK);
    cr_assert(!c->output.models);
    char h1[17], h2[17];
    pad_run_config_hash(c, 1, 2, h1);
    c->run.no_vad = false;
    pad_run_config_hash(c, 1, 2, h2);
    c->run.no_vad = true;
    cr_assert(strcmp(h1, h2) != 0);
    pad_run_result r = run(c);
    cr_assert_eq(r.n_computed, 2); // cls and seg of (k1, seed0)
    const char *u = pad_test_fmt("%s/results/synth/weave/k1/seed0/cls", dir);
    char paths[N_TEST][512];
    uint8_t labels[N_TEST];
    float scores[N_TEST];
    cr_assert_eq(read_scores(pad_test_fmt("%s/scores.csv", u), paths, labels, scores), N_TEST);
    pad_st_file *f = NULL;
    cr_assert(pad_st_open(&f, pad_test_fmt("%s/maps.safetensors", u)) == PAD_OK);
    float *sT = NULL; // read into an aligned copy: a tensor's data need not be 4-byte aligned in the file
    cr_assert(pad_st_read_f32(f, "text_image_score", 1, (int64_t[]){N_TEST}, &sT, NULL) == PAD_OK);
    PAD_ASSERT_CLOSE("image score = s_T", scores, sT, N_TEST, 0, 1e-7);
    free(sT);
    pad_st_close(f);
    cJSON *j = pad_test_read_json(pad_test_fmt("%s/metrics.json", u));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "pixel_auroc")));
    cr_assert_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "promptad-nomap-novad");
    cJSON_Delete(j);
    j = pad_test_read_json(pad_test_fmt("%s/results/synth/weave/k1/seed0/seg/metrics.json", dir));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "pixel_auroc")));
    cJSON_Delete(j);
    cr_assert(!pad_path_is_dir(pad_test_fmt("%s/results/synth/weave/k1/seed0/model", dir)));
    char *md = NULL; // the report names the variant
    cr_assert(pad_read_file(pad_test_fmt("%s/results/synth/summary.md", dir), &md, NULL) == PAD_OK);
    cr_assert(strstr(md, "## clean/promptad-nomap-novad, 1-shot"), "%s", md);
    free(md);
    char name[96];
    pad_run_variant_name(c, name, sizeof name);
    cr_assert_str_eq(name, "promptad-nomap-novad");
    c->model.taps[0] = 6;
    c->model.taps[1] = 9;
    c->run.no_vad = c->train.no_map = false;
    pad_run_variant_name(c, name, sizeof name);
    cr_assert_str_eq(name, "promptad-taps6-9");
    free(c);
    pad_cmd_result rm = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&rm);
}
