/* test_padim.c - PaDiM (host/model/padim.h) against our float64 reference of anomalib's semantics
 * (tests/ref/patchcore_ref.py padim_*, goldens from make_patchcore_fixtures.py on the torchvision tiny wide ResNet):
 * the seeded channel subset, the Mahalanobis grids, maps and image scores with 3 shots and with 1. */
#include "backend.h"
#include "check.h"
#include "padim.h"
#include "resnet.h"

#include <stdio.h>
#include <stdlib.h>

static void check_shots(int n_shots, const char *tag) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_resnet *net = NULL;
    cr_assert(pad_resnet_load(&net, be, pad_fixture_path("resnet_tiny.safetensors"), 0) == PAD_OK);
    pad_padim_cfg cfg = pad_padim_default_cfg();
    cfg.n_features = 40;
    cfg.seed = 3;
    pad_padim *p = NULL;
    cr_assert(pad_padim_create(&p, net, be, &cfg) == PAD_OK);
    pad_st_file *img = pad_fixture_open("patchcore_tiny.safetensors"), *f = pad_fixture_open("padim_tiny.safetensors");
    int n = 0;
    const int32_t *ch = pad_padim_channels(p, &n);
    float *want_ch = pad_fixture_f32(f, "channels", -1, NULL);
    cr_assert_eq(n, 40);
    for (int i = 0; i < n; i++)
        cr_assert_eq(ch[i], (int32_t)want_ch[i], "channel %d: %d, want %d", i, ch[i], (int)want_ch[i]);
    float *train = pad_fixture_f32(img, "train", -1, NULL), *test = pad_fixture_f32(img, "test", -1, NULL);
    cr_assert(pad_padim_fit(p, train, n_shots, 64, 64) == PAD_OK);
    float scores[2], dist[2 * 16 * 16], *maps = malloc(sizeof(float) * 2 * 64 * 64);
    cr_assert(pad_padim_predict(p, test, 2, 64, 64, scores, maps, dist) == PAD_OK);
    char key[32];
    snprintf(key, sizeof key, "dist%s", tag);
    float *wd = pad_fixture_f32(f, key, -1, NULL);
    snprintf(key, sizeof key, "maps%s", tag);
    float *wm = pad_fixture_f32(f, key, -1, NULL);
    snprintf(key, sizeof key, "score%s", tag);
    float *ws = pad_fixture_f32(f, key, -1, NULL);
    PAD_ASSERT_CLOSE("mahalanobis grid", dist, wd, 2 * 16 * 16, 1e-4, 1e-4);
    PAD_ASSERT_CLOSE("maps", maps, wm, 2 * 64 * 64, 1e-4, 1e-4);
    PAD_ASSERT_CLOSE("scores", scores, ws, 2, 1e-4, 1e-4);
    free(wd), free(wm), free(ws), free(maps), free(train), free(test), free(want_ch);
    pad_st_close(f);
    pad_st_close(img);
    pad_padim_free(p);
    pad_resnet_free(net);
    pad_backend_free(be);
}

Test(padim, three_shots_match_reference) {
    check_shots(3, "3");
}

Test(padim, one_shot_uses_the_regulariser_alone) {
    check_shots(1, "1");
}
