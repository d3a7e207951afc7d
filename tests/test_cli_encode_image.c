/* test_cli_encode_image.c - `promptad encode-image` end to end on the tiny random model: dump names, shapes and
 * dtypes of the contract, the dumped pixels equal the library's preprocessing of the image, the features match an
 * in-process run of the tower on those pixels, and usage / input errors give a clear message and exit code. */
#include "backend.h"
#include "check.h"
#include "image.h"
#include "vit.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void remove_dir(const char *dir) {
    pad_cmd_result r = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&r);
}

static const char *tiny_model(const char *dir) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    pad_cmd_result r = pad_cmd_run("%s make-model --preset tiny --seed 0 --out %s", pad_test_binary(), path);
    cr_assert(r.exit_code == 0, "make-model failed: %s", r.err);
    pad_cmd_free(&r);
    return path;
}

Test(cli_encode_image, usage_errors) {
    pad_cmd_result r = pad_cmd_run("%s encode-image --image x.png --out o.safetensors", pad_test_binary());
    cr_assert(r.exit_code == 2, "missing --weights: exit %d", r.exit_code);
    cr_assert(strstr(r.err, "--weights") && strstr(r.err, "weights/README.md"), "stderr: %s", r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("%s encode-image --weights w.safetensors --image x.png", pad_test_binary());
    cr_assert(r.exit_code == 2 && strstr(r.err, "--out"), "missing --out: exit %d, %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("%s encode-image --weights w.safetensors --image x.png --preprocess bilinear --out o.safetensors",
                    pad_test_binary());
    cr_assert(r.exit_code == 2 && strstr(r.err, "bilinear"), "bad --preprocess: exit %d, %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("%s encode-image --weights w.safetensors --image x.png --device tpu --out o.safetensors",
                    pad_test_binary());
    cr_assert(r.exit_code == 2 && strstr(r.err, "tpu"), "bad --device: exit %d, %s", r.exit_code, r.err);
    pad_cmd_free(&r);
}

Test(cli_encode_image, missing_weights_and_image_files) {
    char *dir = pad_test_tmpdir("encimg");
    pad_cmd_result r = pad_cmd_run("%s encode-image --weights %s/none.safetensors --image x.png --out %s/o.safetensors",
                                   pad_test_binary(), dir, dir);
    cr_assert(r.exit_code == 1 && strstr(r.err, "none.safetensors") && strstr(r.err, "weights/README.md"),
              "missing weights file: exit %d, %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    const char *model = tiny_model(dir);
    r = pad_cmd_run("%s encode-image --weights %s --image %s/none.png --device cpu --out %s/o.safetensors",
                    pad_test_binary(), model, dir, dir);
    cr_assert(r.exit_code == 1 && strstr(r.err, "none.png"), "missing image: exit %d, %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    remove_dir(dir);
}

Test(cli_encode_image, dump_matches_the_library) {
    char *dir = pad_test_tmpdir("encimg");
    const char *model = tiny_model(dir);
    // a 50 x 38 gradient image (not square, not the model size: the squash resize has work to do)
    pad_image img;
    cr_assert(pad_image_alloc(&img, 50, 38) == PAD_OK);
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < img.w; x++) {
            uint8_t *p = img.rgb + ((size_t)y * img.w + x) * 3;
            p[0] = (uint8_t)(5 * x), p[1] = (uint8_t)(6 * y), p[2] = (uint8_t)((x * y) % 251);
        }
    char png[4200], out[4200];
    snprintf(png, sizeof png, "%s/img.png", dir);
    snprintf(out, sizeof out, "%s/o.safetensors", dir);
    cr_assert(pad_image_save_png(png, &img) == PAD_OK);
    pad_cmd_result r = pad_cmd_run("%s encode-image --weights %s --image %s --device cpu --out %s", pad_test_binary(),
                                   model, png, out);
    cr_assert(r.exit_code == 0, "encode-image failed (%d): %s", r.exit_code, r.err);
    pad_cmd_free(&r);

    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
    const int S = cfg.vision.image_size, GG = cfg.vision.grid * cfg.vision.grid, D = cfg.vision.width;
    const int E = cfg.embed_dim;
    pad_st_file *f = NULL;
    cr_assert(pad_st_open(&f, out) == PAD_OK);
    static const char *names[5] = {"pixels", "cls", "tokens", "mid1", "mid2"};
    const int64_t shapes[5][3] = {{3, S, S}, {E}, {GG, E}, {GG, D}, {GG, D}};
    const int ndims[5] = {3, 1, 2, 2, 2};
    float *got[5];
    for (int i = 0; i < 5; i++) {
        const pad_st_tensor *t = pad_st_find(f, names[i]);
        cr_assert(t != NULL, "dump lacks '%s'", names[i]);
        cr_assert(t->dtype == PAD_DTYPE_F32, "%s is %s, not F32", names[i], pad_dtype_name(t->dtype));
        cr_assert(pad_st_read_f32(f, names[i], ndims[i], shapes[i], &got[i], NULL) == PAD_OK, "%s: bad shape",
                  names[i]);
    }
    pad_st_close(f);

    // pixels: the library's squash preprocessing of the decoded PNG
    pad_image back;
    cr_assert(pad_image_load(&back, png) == PAD_OK);
    float *want_pix = malloc((size_t)3 * S * S * sizeof(float));
    cr_assert(pad_preprocess(&back, PAD_PREPROCESS_SQUASH, S, false, want_pix) == PAD_OK);
    cr_assert(memcmp(got[0], want_pix, (size_t)3 * S * S * sizeof(float)) == 0, "pixels differ from pad_preprocess");

    // features: the tower on those pixels, in process (the binary may have re-executed itself with another OpenBLAS
    // kernel set, see host/main.c, so equal up to float rounding rather than bitwise)
    pad_backend *be;
    pad_clip_weights *host, *w;
    pad_vit *vit;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    cr_assert(pad_weights_make_random(&host, &cfg, 0) == PAD_OK);
    cr_assert(pad_weights_to_backend(host, be, &w) == PAD_OK);
    pad_vit_params p = pad_vit_default_params();
    p.max_batch = 1;
    cr_assert(pad_vit_create(&vit, be, w, &p) == PAD_OK);
    float *want[4] = {malloc((size_t)E * 4), malloc((size_t)GG * E * 4), malloc((size_t)GG * D * 4),
                      malloc((size_t)GG * D * 4)};
    pad_vit_out o = {want[0], want[1], want[2], want[3]};
    cr_assert(pad_vit_encode_host(vit, want_pix, 1, &o) == PAD_OK);
    const size_t n[4] = {(size_t)E, (size_t)GG * E, (size_t)GG * D, (size_t)GG * D};
    for (int i = 0; i < 4; i++)
        PAD_ASSERT_CLOSE(names[i + 1], got[i + 1], want[i], n[i], 1e-5, 1e-4);

    for (int i = 0; i < 4; i++)
        free(want[i]);
    for (int i = 0; i < 5; i++)
        free(got[i]);
    free(want_pix);
    pad_vit_free(vit);
    pad_weights_free(w);
    pad_weights_free(host);
    pad_backend_free(be);
    pad_image_free(&back);
    pad_image_free(&img);
    remove_dir(dir);
}
