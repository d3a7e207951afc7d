/* test_clip_resnet.c - CLIP's ModifiedResNet with the V-V attention pool (host/model/clip_resnet.h) on the CPU against
 * our PyTorch reference (tests/ref/make_clip_resnet_fixtures.py: small widths, random weights and batch-norm
 * statistics): image embedding, V-V tokens and both taps within 1e-4; shape inference, the presets, the random
 * checkpoint (vision + text tower), and the errors naming a missing or misshapen tensor. */
#include "backend.h"
#include "check.h"
#include "clip_resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *cpu(int threads) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, threads) == PAD_OK);
    return be;
}

Test(clip_resnet, small_matches_torch) {
    pad_backend *be = cpu(0);
    pad_clip_resnet *r = NULL;
    const pad_clip_resnet_params p = pad_clip_resnet_default_params(); // taps layer2, layer3
    cr_assert(pad_clip_resnet_load(&r, be, pad_fixture_path("clip_resnet_small.safetensors"), &p) == PAD_OK);
    const pad_clip_resnet_cfg *c = pad_clip_resnet_config(r);
    const int blocks[4] = {1, 2, 1, 1};
    cr_assert(c->width == 4 && c->embed == 128 && c->heads == 2 && c->out_dim == 32 && c->grid == 3 &&
              c->image_size == 96);
    for (int s = 0; s < 4; s++)
        cr_assert(c->blocks[s] == blocks[s] && c->planes[s] == 4 << s && c->out[s] == 16 << s, "stage %d", s);
    cr_assert_eq(pad_clip_resnet_tap_width(r), 64);
    pad_st_file *io = pad_fixture_open("clip_resnet_small_io.safetensors");
    float *x = pad_fixture_f32(io, "x", -1, NULL);
    const size_t n_cls = 2 * 32, n_tok = 2 * 9 * 32, n_mid = 2 * 9 * 64;
    float *cls = malloc(n_cls * sizeof(float)), *tok = malloc(n_tok * sizeof(float));
    float *mid1 = malloc(n_mid * sizeof(float)), *mid2 = malloc(n_mid * sizeof(float));
    const pad_vit_out o = {cls, tok, mid1, mid2};
    cr_assert(pad_clip_resnet_forward(r, x, 2, &o) == PAD_OK);
    const char *names[4] = {"cls", "tokens", "mid1", "mid2"};
    const float *got[4] = {cls, tok, mid1, mid2};
    const size_t n[4] = {n_cls, n_tok, n_mid, n_mid};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pad_st_find(io, names[i])->numel, (int64_t)n[i]);
        float *ref = pad_fixture_f32(io, names[i], -1, NULL);
        PAD_ASSERT_CLOSE(names[i], got[i], ref, n[i], 1e-4, 1e-4);
        free(ref);
    }
    // one image alone gives its rows of the batch (the forward does not mix images)
    float cls1[32];
    const pad_vit_out o1 = {cls1, NULL, NULL, NULL};
    cr_assert(pad_clip_resnet_forward(r, x + 3 * 96 * 96, 1, &o1) == PAD_OK);
    PAD_ASSERT_CLOSE("cls of image 1 alone", cls1, cls + 32, 32, 1e-6, 1e-6);
    free(cls), free(tok), free(mid1), free(mid2), free(x);
    pad_st_close(io);
    pad_clip_resnet_free(r);
    pad_backend_free(be);
}

Test(clip_resnet, taps_are_configurable) {
    pad_backend *be = cpu(1);
    pad_clip_resnet *r = NULL;
    pad_clip_resnet_params p = pad_clip_resnet_default_params();
    p.tap1 = 4, p.tap2 = 1; // layer4 is on the grid already, layer1 (8x its side) is averaged down
    cr_assert(pad_clip_resnet_load(&r, be, pad_fixture_path("clip_resnet_small.safetensors"), &p) == PAD_OK);
    cr_assert_eq(pad_clip_resnet_tap_width(r), 128);
    pad_st_file *io = pad_fixture_open("clip_resnet_small_io.safetensors");
    float *x = pad_fixture_f32(io, "x", -1, NULL);
    float *m1 = malloc(9 * 128 * sizeof(float)), *m2 = malloc(9 * 128 * sizeof(float));
    const pad_vit_out o = {NULL, NULL, m1, m2};
    cr_assert(pad_clip_resnet_forward(r, x, 1, &o) == PAD_OK);
    for (int i = 0; i < 9; i++)
        for (int ch = 16; ch < 128; ch++)
            cr_assert(m2[i * 128 + ch] == 0.0f, "layer1 (16 channels) is zero-padded to 128");
    int nonzero = 0;
    for (int i = 0; i < 9 * 128; i++)
        nonzero += m1[i] != 0.0f;
    cr_assert(nonzero > 9 * 128 / 4, "layer4 after ReLU has many positive values");
    free(m1), free(m2), free(x);
    pad_st_close(io);
    pad_clip_resnet_free(r);
    p.tap1 = 5;
    pad_test_log_start();
    cr_assert(pad_clip_resnet_load(&r, be, pad_fixture_path("clip_resnet_small.safetensors"), &p) ==
              PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("stage numbers 1..4");
    pad_test_log_stop();
    pad_backend_free(be);
}

Test(clip_resnet, presets_and_random_checkpoint) {
    pad_clip_resnet_preset pr;
    cr_assert(pad_clip_resnet_preset_parse("rn101", &pr) == PAD_OK && pr == PAD_CLIP_RESNET_RN101);
    cr_assert(pad_clip_resnet_preset_parse("clip-resnet-tiny", &pr) == PAD_OK && pr == PAD_CLIP_RESNET_TINY);
    cr_assert(pad_clip_resnet_preset_parse("rn50", &pr) == PAD_ERR_INVALID_ARG);
    const pad_clip_resnet_cfg rn = pad_clip_resnet_preset_cfg(PAD_CLIP_RESNET_RN101);
    cr_assert(rn.width == 64 && rn.blocks[2] == 23 && rn.embed == 2048 && rn.heads == 32 && rn.out_dim == 512 &&
              rn.grid == 7 && rn.image_size == 224 && rn.out[1] == 512 && rn.out[2] == 1024);
    char *dir = pad_test_tmpdir("clip_resnet");
    char path[512], path2[512];
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/tiny2.safetensors", dir);
    const pad_clip_resnet_cfg cfg = pad_clip_resnet_preset_cfg(PAD_CLIP_RESNET_TINY);
    const pad_clip_cfg tc = pad_clip_resnet_text_cfg(PAD_CLIP_RESNET_TINY);
    cr_assert(pad_clip_resnet_write_random(&cfg, &tc, 3, path) == PAD_OK);
    cr_assert(pad_clip_resnet_write_random(&cfg, &tc, 3, path2) == PAD_OK);
    pad_st_file *a = NULL, *b = NULL;
    cr_assert(pad_st_open(&a, path) == PAD_OK && pad_st_open(&b, path2) == PAD_OK);
    cr_assert(a->map_size == b->map_size && memcmp(a->map, b->map, a->map_size) == 0, "same seed, same bytes");
    pad_st_close(a);
    pad_st_close(b);
    cr_assert(pad_clip_resnet_probe(path));
    cr_assert(!pad_clip_resnet_probe(pad_fixture_path("resnet_tiny.safetensors")));
    // the text tower loads alone; the vision tower infers the preset's shapes
    pad_clip_weights *w = NULL;
    cr_assert(pad_weights_load(&w, path, PAD_WEIGHTS_TEXT) == PAD_OK);
    cr_assert(w->cfg.embed_dim == 64 && w->cfg.text.width == tc.text.width);
    pad_weights_free(w);
    pad_backend *be = cpu(1);
    pad_clip_resnet *r = NULL;
    const pad_clip_resnet_params p = pad_clip_resnet_default_params();
    cr_assert(pad_clip_resnet_load(&r, be, path, &p) == PAD_OK);
    cr_assert(memcmp(pad_clip_resnet_config(r), &cfg, sizeof cfg) == 0);
    float *x = calloc(3 * 96 * 96, sizeof(float)), cls[64];
    for (int i = 0; i < 3 * 96 * 96; i++)
        x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    const pad_vit_out o = {cls, NULL, NULL, NULL};
    cr_assert(pad_clip_resnet_forward(r, x, 1, &o) == PAD_OK);
    for (int i = 0; i < 64; i++)
        cr_assert(isfinite(cls[i]));
    free(x);
    pad_clip_resnet_free(r);
    pad_backend_free(be);
}

static void write_damaged(const char *path, const char *skip, bool reshape) {
    pad_fixture_write_damaged("clip_resnet_small.safetensors", path, skip, reshape);
}

Test(clip_resnet, errors_name_the_tensor) {
    char *dir = pad_test_tmpdir("clip_resnet_err");
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    pad_backend *be = cpu(1);
    pad_clip_resnet *r = NULL;
    const pad_clip_resnet_params p = pad_clip_resnet_default_params();
    static const char *const missing[] = {"visual.layer2.1.bn2.running_var", "visual.layer3.0.downsample.0.weight",
                                          "visual.attnpool.k_proj.bias", "visual.attnpool.c_proj.weight",
                                          "visual.bn1.weight"};
    pad_test_log_start();
    for (size_t i = 0; i < sizeof missing / sizeof *missing; i++) {
        write_damaged(path, missing[i], false);
        cr_assert(pad_clip_resnet_load(&r, be, path, &p) == PAD_ERR_FORMAT && !r, "%s", missing[i]);
        char want[160];
        snprintf(want, sizeof want, "missing tensor '%s'", missing[i]);
        PAD_ASSERT_LOG_HAS(want);
    }
    write_damaged(path, "visual.layer4.0.conv2.weight", true);
    cr_assert(pad_clip_resnet_load(&r, be, path, &p) == PAD_ERR_FORMAT);
    PAD_ASSERT_LOG_HAS("'visual.layer4.0.conv2.weight': expected shape (32, 32, 3, 3), got (1)");
    pad_test_log_stop();
    pad_backend_free(be);
}
