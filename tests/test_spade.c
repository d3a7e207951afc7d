/* test_spade.c - SPADE (host/model/spade.h) against our reference of SPADE-pytorch's evaluation
 * (tests/ref/patchcore_ref.py spade_predict; goldens from make_patchcore_fixtures.py on the torchvision tiny wide
 * ResNet, top_k 2 of 3 normal images): image scores and smoothed maps. */
#include "backend.h"
#include "check.h"
#include "resnet.h"
#include "spade.h"

#include <stdlib.h>

Test(spade, matches_reference) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_resnet *net = NULL;
    cr_assert(pad_resnet_load(&net, be, pad_fixture_path("resnet_tiny.safetensors"), 0) == PAD_OK);
    pad_spade_cfg cfg = pad_spade_default_cfg();
    cfg.top_k = 2;
    pad_spade *s = NULL;
    cr_assert(pad_spade_create(&s, net, be, &cfg) == PAD_OK);
    pad_st_file *img = pad_fixture_open("patchcore_tiny.safetensors"), *f = pad_fixture_open("spade_tiny.safetensors");
    float *train = pad_fixture_f32(img, "train", -1, NULL), *test = pad_fixture_f32(img, "test", -1, NULL);
    cr_assert(pad_spade_fit(s, train, 3, 64, 64) == PAD_OK);
    float scores[2], *maps = malloc(sizeof(float) * 2 * 64 * 64);
    cr_assert(pad_spade_predict(s, test, 2, 64, 64, scores, maps) == PAD_OK);
    float *ws = pad_fixture_f32(f, "score", -1, NULL), *wm = pad_fixture_f32(f, "maps", -1, NULL);
    PAD_ASSERT_CLOSE("image scores", scores, ws, 2, 1e-5, 1e-5);
    PAD_ASSERT_CLOSE("maps", maps, wm, 2 * 64 * 64, 1e-4, 1e-4);
    // scores alone (no maps)
    float s2[2];
    cr_assert(pad_spade_predict(s, test, 2, 64, 64, s2, NULL) == PAD_OK);
    cr_assert(s2[0] == scores[0] && s2[1] == scores[1]);
    pad_test_log_start();
    cr_assert(pad_spade_predict(s, test, 1, 32, 32, s2, NULL) == PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("same image size");
    pad_test_log_stop();
    free(train), free(test), free(maps), free(ws), free(wm);
    pad_st_close(f);
    pad_st_close(img);
    pad_spade_free(s);
    pad_resnet_free(net);
    pad_backend_free(be);
}
