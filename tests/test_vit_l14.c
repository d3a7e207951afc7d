/* test_vit_l14.c - the ViT-L-14 preset (host/model/weights.h): its derived shapes, and a model of ViT-L-14's widths
 * and patch (14 px, 224 px images, 16 x 16 grid) at reduced depth that saves, loads back by shape inference and runs
 * the dual-path vision tower end to end with configurable taps (CPU backend); the default taps by depth; `promptad
 * make-model --layers`; and `promptad run` (PromptAD, both tasks, clean and official preprocessing) on a synthetic
 * class with a 4-block ViT-L/14-shaped QuickGELU model. The tower's numerics are checked against the reference at the
 * tiny preset (test_vit.c, test_quick_gelu.c); here the new shape parameters are exercised. */
#include "backend.h"
#include "check.h"
#include "config.h"
#include "fsutil.h"
#include "run.h"
#include "vit.h"
#include "weights.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

Test(vit_l14, preset_shapes) {
    pad_model_preset p;
    cr_assert(pad_model_preset_parse("vit-l-14", &p) == PAD_OK && p == PAD_MODEL_L14);
    const pad_clip_cfg c = pad_model_preset_cfg(PAD_MODEL_L14);
    cr_assert(c.vision.width == 1024 && c.vision.layers == 24 && c.vision.heads == 16 && c.vision.patch == 14);
    cr_assert(c.vision.image_size == 224 && c.vision.grid == 16 && c.vision.tokens == 257 && c.vision.mlp == 4096);
    cr_assert(c.text.width == 768 && c.text.layers == 12 && c.text.heads == 12 && c.text.mlp == 3072);
    cr_assert_eq(c.embed_dim, 768);
}

Test(vit_l14, reduced_depth_loads_and_runs) {
    pad_clip_cfg c = pad_model_preset_cfg(PAD_MODEL_L14);
    c.vision.layers = 2;
    c.text.layers = 1;
    c.text.vocab = 500;
    pad_clip_weights *w = NULL, *r = NULL;
    cr_assert(pad_weights_make_random(&w, &c, 3) == PAD_OK);
    char *dir = pad_test_tmpdir("vit_l14");
    char path[512];
    snprintf(path, sizeof path, "%s/l14.safetensors", dir);
    cr_assert(pad_weights_save(w, path) == PAD_OK);
    pad_weights_free(w);
    cr_assert(pad_weights_load(&r, path, PAD_WEIGHTS_ALL) == PAD_OK);
    const pad_clip_cfg *g = &r->cfg;
    cr_assert(g->vision.width == 1024 && g->vision.layers == 2 && g->vision.patch == 14 && g->vision.grid == 16);
    cr_assert(g->vision.image_size == 224 && g->vision.mlp == 4096 && g->embed_dim == 768);
    cr_assert(g->text.width == 768 && g->text.layers == 1 && g->text.mlp == 3072 && g->text.vocab == 500);
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_clip_weights *dev = NULL;
    cr_assert(pad_weights_to_backend(r, be, &dev) == PAD_OK);
    pad_vit_params vp = pad_vit_default_params();
    vp.max_batch = 1;
    vp.tap1 = 0;
    vp.tap2 = 1;
    pad_vit *vit = NULL;
    cr_assert(pad_vit_create(&vit, be, dev, &vp) == PAD_OK);
    pad_rng rng = {7};
    float *pix = pad_test_rand(&rng, (size_t)3 * 224 * 224, -2, 2);
    float *cls = malloc(sizeof(float) * 768), *tok = malloc(sizeof(float) * 256 * 768);
    float *m1 = malloc(sizeof(float) * 256 * 1024), *m2 = malloc(sizeof(float) * 256 * 1024);
    const pad_vit_out o = {cls, tok, m1, m2};
    cr_assert(pad_vit_encode_host(vit, pix, 1, &o) == PAD_OK);
    double s = 0;
    for (int i = 0; i < 768; i++) {
        cr_assert(isfinite(cls[i]));
        s += fabs(cls[i]);
    }
    cr_assert(s > 0);
    for (int i = 0; i < 256 * 1024; i++)
        cr_assert(isfinite(m1[i]) && isfinite(m2[i]));
    cr_assert(memcmp(m1, m2, sizeof(float) * 256 * 1024) != 0, "taps 0 and 1 differ");
    free(pix), free(cls), free(tok), free(m1), free(m2);
    pad_vit_free(vit);
    pad_weights_free(dev);
    pad_weights_free(r);
    pad_backend_free(be);
}

Test(vit_l14, default_taps_scale_with_depth) {
    const int want[][3] = {{12, 3, 8}, {24, 6, 16}, {4, 1, 3}, {32, 8, 21}, {2, 1, 1}, {1, 0, 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int t[2];
        pad_vit_default_taps(want[i][0], t);
        cr_assert(t[0] == want[i][1] && t[1] == want[i][2], "%d blocks: taps [%d, %d], want [%d, %d]", want[i][0], t[0],
                  t[1], want[i][1], want[i][2]);
    }
}

Test(vit_l14, make_model_layers_and_activation) {
    char *dir = pad_test_tmpdir("vit_l14_cli");
    const char *path = pad_test_fmt("%s/m.safetensors", dir);
    pad_cmd_result r = pad_cmd_run("'%s' make-model --preset vit-l-14 --layers 3 --text-layers 1 --vocab-size 600 "
                                   "--activation quick_gelu --out '%s' 2>&1",
                                   pad_test_binary(), path);
    cr_assert_eq(r.exit_code, 0, "%s", r.out);
    pad_cmd_free(&r);
    pad_clip_cfg c;
    cr_assert(pad_weights_probe(path, &c) == PAD_OK);
    cr_assert(c.vision.layers == 3 && c.vision.width == 1024 && c.vision.patch == 14 && c.vision.grid == 16);
    cr_assert(c.text.layers == 1 && c.text.width == 768 && c.embed_dim == 768 && c.act == PAD_ACT_QUICK_GELU);
    r = pad_cmd_run("'%s' make-model --preset resnet-tiny --layers 3 --out '%s' 2>&1", pad_test_binary(), path);
    cr_assert_eq(r.exit_code, 2, "%s", r.out);
    pad_cmd_free(&r);
    r = pad_cmd_run("'%s' make-model --activation relu --out '%s' 2>&1", pad_test_binary(), path);
    cr_assert(r.exit_code == 2 && strstr(r.out, "gelu or quick_gelu"), "%s", r.out);
    pad_cmd_free(&r);
}

// The score of image `path` in the run's scores.csv (path,label,score) or predict's predictions.csv
// (path,score,threshold,decision).
static double csv_score(const char *csv_path, const char *path) {
    char *t = NULL;
    cr_assert_eq(pad_read_file(csv_path, &t, NULL), PAD_OK, "%s", csv_path);
    const bool pred = strstr(t, "path,score,threshold") == t;
    char *save = NULL;
    double s = NAN;
    for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const size_t n = strlen(path);
        if (strncmp(line, path, n) != 0 || line[n] != ',') continue;
        const char *f = line + n + 1;
        if (!pred) f = strchr(f, ',') + 1; // skip the label
        s = strtod(f, NULL);
    }
    free(t);
    cr_assert(!isnan(s), "%s: no row for %s", csv_path, path);
    return s;
}

// One unit of the run in `out`: the metrics in [0, 1], the V map on the 16 x 16 grid, the pixel maps at R and
// finite.
static void check_unit(const char *out, const char *task, int R) {
    const char *u = pad_test_fmt("%s/synth/weave/k1/seed0/%s", out, task);
    cJSON *j = pad_test_read_json(pad_test_fmt("%s/metrics.json", u));
    const char *keys[] = {"image_auroc", "image_aupr", "pixel_auroc", "pixel_pro"};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        cr_assert(cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1, "%s: %s", u, keys[i]);
    }
    cJSON_Delete(j);
    pad_st_file *f = NULL;
    cr_assert(pad_st_open(&f, pad_test_fmt("%s/maps.safetensors", u)) == PAD_OK);
    const pad_st_tensor *v = pad_st_find(f, "visual_map"), *m = pad_st_find(f, "pixel_map");
    cr_assert(v && v->ndim == 3 && v->shape[1] == 16 && v->shape[2] == 16, "%s: visual_map is not (n, 16, 16)", u);
    cr_assert(m && m->ndim == 3 && m->shape[1] == R && m->shape[2] == R, "%s: pixel_map is not (n, %d, %d)", u, R, R);
    float *px = NULL;
    cr_assert(pad_st_read_f32(f, "pixel_map", -1, NULL, &px, NULL) == PAD_OK);
    for (int64_t i = 0; i < m->numel; i++)
        cr_assert(isfinite(px[i]), "%s: pixel_map[%lld] = %g", u, (long long)i, px[i]);
    free(px);
    pad_st_close(f);
}

// `promptad run` with a ViT-L/14-shaped model of 4 vision blocks (1 text block, byte vocabulary), QuickGELU from the
// checkpoint's metadata, default taps (resolved by depth to [1, 3]), 64 px synthetic images resized to 224 and maps
// at 96 px, under both protocols (clean: squash; official: OpenCV bilinear to 1024, then bicubic).
Test(vit_l14, promptad_run_end_to_end, .timeout = 900) {
    char *dir = pad_test_tmpdir("vit_l14_run");
    pad_clip_cfg mc = pad_model_preset_cfg(PAD_MODEL_L14);
    mc.vision.layers = 4;
    mc.text.layers = 1;
    mc.text.vocab = 514;
    mc.act = PAD_ACT_QUICK_GELU;
    pad_clip_weights *w = NULL;
    cr_assert(pad_weights_make_random(&w, &mc, 5) == PAD_OK);
    cr_assert(pad_mkdir_p(pad_test_fmt("%s/model", dir)) == PAD_OK);
    cr_assert(pad_weights_save(w, pad_test_fmt("%s/model/l14.safetensors", dir)) == PAD_OK);
    pad_weights_free(w);
    char prompts[600], out[600]; // own copies: pad_test_fmt's buffers are reused
    snprintf(prompts, sizeof prompts, "%s/prompts.yaml", dir);
    const char *ptext = "name: test\ngeneric: [\"{} bad\"]\nclasses:\n  - key: weave\n    states: [\"{} cut\"]\n";
    pad_test_write_file(prompts, ptext, strlen(ptext));
    for (int v = 0; v < 3; v++) { // clean, official, clean with model.activation gelu (cls only)
        const bool official = v == 1, gelu = v == 2;
        pad_run_config *c = malloc(sizeof *c);
        pad_run_config_default(c);
        snprintf(out, sizeof out, "%s/results%d", dir, v);
        const char *sets[] = {pad_test_fmt("model.weights=%s/model/l14.safetensors", dir),
                              pad_test_fmt("model.vocab=%s/model/vocab.txt.gz", dir),
                              "model.generate=tiny", // writes the byte vocabulary (the model exists)
                              "data.format=synth",
                              pad_test_fmt("data.root=%s/data", dir),
                              "data.synth.classes=1",
                              "data.synth.size=64",
                              "data.synth.train=2",
                              "data.synth.test_good=2",
                              "data.synth.test_bad=2",
                              official ? "run.protocol=official" : "run.protocol=clean",
                              "run.shots=1",
                              "run.seeds=0",
                              gelu ? "run.tasks=cls" : "run.tasks=cls,seg",
                              gelu ? "model.activation=gelu" : "model.activation=auto",
                              "run.epochs=1",
                              "run.resolution=96",
                              "run.batch=2",
                              pad_test_fmt("run.prompts=%s", prompts),
                              pad_test_fmt("output.dir=%s", out),
                              pad_test_fmt("cache.dir=%s/cache", dir),
                              "output.maps=full",
                              "output.heatmaps=0"};
        for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
            cr_assert_eq(pad_run_config_set(c, sets[i]), PAD_OK, "%s", sets[i]);
        cr_assert_eq(pad_run_config_finalize(c), PAD_OK);
        pad_run_opts o = {0};
        pad_run_result res;
        cr_assert_eq(pad_run(c, &o, &res), PAD_OK);
        free(res.summary_md);
        cr_assert_eq(res.n_computed, gelu ? 1 : 2);
        check_unit(out, "cls", 96);
        if (!gelu) check_unit(out, "seg", 96);
        // the taps resolved by depth are what the run used and recorded
        char *y = NULL;
        cr_assert_eq(pad_read_file(pad_test_fmt("%s/synth/run_config.yaml", out), &y, NULL), PAD_OK);
        cr_assert(strstr(y, "taps: [1, 3]") && strstr(y, gelu ? "activation: gelu" : "activation: auto"), "%s", y);
        free(y);
        cJSON *j = pad_test_read_json(pad_test_fmt("%s/synth/weave/k1/seed0/model/model.json", out));
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "taps");
        cr_assert(cJSON_GetArraySize(t) == 2 && cJSON_GetArrayItem(t, 0)->valueint == 1 &&
                  cJSON_GetArrayItem(t, 1)->valueint == 3);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "activation"); // written only when overridden
        cr_assert(gelu ? cJSON_IsString(a) && strcmp(a->valuestring, "gelu") == 0 : a == NULL);
        cJSON_Delete(j);
        free(c);
    }
    // the feature cache keeps the QuickGELU encodings apart from GELU ones of the same file
    cr_assert(pad_path_is_dir(pad_test_fmt("%s/cache", dir)));
    pad_cmd_result r = pad_cmd_run("ls '%s/cache'", dir);
    cr_assert(strstr(r.out, "-t1_3-E768-P256-D1024-qgelu\n") && strstr(r.out, "-t1_3-E768-P256-D1024\n"), "%s", r.out);
    pad_cmd_free(&r);
    // predict with the GELU run's model scores like that run (the detector applies the model's activation)
    const char *good = pad_test_fmt("%s/data/weave/test/good/000.png", dir);
    r = pad_cmd_run("'%s' predict --model '%s/results2/synth/weave/k1/seed0/model' --input '%s' --out '%s/pred' "
                    "--device cpu 2>&1",
                    pad_test_binary(), dir, good, dir);
    cr_assert_eq(r.exit_code, 0, "%s", r.out);
    pad_cmd_free(&r);
    cr_assert_float_eq(csv_score(pad_test_fmt("%s/pred/predictions.csv", dir), good),
                       csv_score(pad_test_fmt("%s/results2/synth/weave/k1/seed0/cls/scores.csv", dir), good), 1e-6);
}
