/* test_vit_l14.c - the ViT-L-14 preset (host/model/weights.h): its derived shapes, and a model of ViT-L-14's widths
 * and patch (14 px, 224 px images, 16 x 16 grid) at reduced depth that saves, loads back by shape inference and runs
 * the dual-path vision tower end to end with configurable taps (CPU backend). The tower's numerics are checked against
 * the reference at the tiny preset (test_vit.c); here the new shape parameters are exercised. */
#include "backend.h"
#include "check.h"
#include "vit.h"
#include "weights.h"

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
