/* test_patchcore.c - PatchCore (host/model/patchcore.h) and its ops (to_rows, knn_l2) against our reference of
 * anomalib's semantics (tests/ref/patchcore_ref.py via make_patchcore_fixtures.py, on the torchvision tiny wide
 * ResNet): memory bank, patch scores and nearest rows, image scores with and without the reweighting, maps, and the
 * seeded k-center-greedy coreset. */
#include "backend.h"
#include "check.h"
#include "patchcore.h"
#include "resnet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *cpu(int threads) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, threads) == PAD_OK);
    return be;
}

typedef struct fixture {
    pad_backend *be;
    pad_resnet *net;
    pad_patchcore *pc;
    pad_st_file *f;
} fixture;

static fixture setup(int neighbors, double coreset) {
    fixture x;
    x.be = cpu(0);
    cr_assert(pad_resnet_load(&x.net, x.be, pad_fixture_path("resnet_tiny.safetensors"), 0) == PAD_OK);
    pad_patchcore_cfg cfg = pad_patchcore_default_cfg();
    cfg.num_neighbors = neighbors;
    cfg.coreset_ratio = coreset;
    x.f = pad_fixture_open("patchcore_tiny.safetensors");
    float *seed = pad_fixture_f32(x.f, "coreset_seed", -1, NULL);
    cfg.seed = (uint64_t)seed[0];
    free(seed);
    cr_assert(pad_patchcore_create(&x.pc, x.net, x.be, &cfg) == PAD_OK);
    float *train = pad_fixture_f32(x.f, "train", -1, NULL);
    // two calls: the bank appends
    cr_assert(pad_patchcore_add(x.pc, train, 2, 64, 64) == PAD_OK);
    cr_assert(pad_patchcore_add(x.pc, train + 2 * 3 * 64 * 64, 1, 64, 64) == PAD_OK);
    free(train);
    return x;
}

static void teardown(fixture *x) {
    pad_patchcore_free(x->pc);
    pad_resnet_free(x->net);
    pad_st_close(x->f);
    pad_backend_free(x->be);
}

Test(patchcore, bank_scores_maps_match_reference) {
    fixture x = setup(9, 1.0);
    cr_assert_eq(pad_patchcore_bank_rows(x.pc), 192);
    cr_assert_eq(pad_patchcore_dim(x.pc), 96);
    float *bank = pad_fixture_f32(x.f, "bank", -1, NULL);
    PAD_ASSERT_CLOSE("bank", pad_patchcore_bank(x.pc), bank, 192 * 96, 1e-5, 1e-4);
    cr_assert(pad_patchcore_build(x.pc) == PAD_OK);
    float *test = pad_fixture_f32(x.f, "test", -1, NULL);
    float scores[2], *maps = malloc(sizeof(float) * 2 * 64 * 64), patch[2 * 64];
    cr_assert(pad_patchcore_predict(x.pc, test, 2, 64, 64, scores, maps, patch) == PAD_OK);
    float *want_patch = pad_fixture_f32(x.f, "patch", -1, NULL), *want_s = pad_fixture_f32(x.f, "score9", -1, NULL);
    float *want_maps = pad_fixture_f32(x.f, "maps", -1, NULL);
    PAD_ASSERT_CLOSE("patch scores", patch, want_patch, 2 * 64, 1e-4, 1e-4);
    PAD_ASSERT_CLOSE("image scores (reweighted)", scores, want_s, 2, 1e-4, 1e-4);
    PAD_ASSERT_CLOSE("maps", maps, want_maps, 2 * 64 * 64, 1e-4, 1e-4);
    // nearest bank rows through the op itself
    float *rows = pad_fixture_f32(x.f, "test_rows", -1, NULL), *loc = pad_fixture_f32(x.f, "loc", -1, NULL);
    float dist[128];
    int32_t idx[128];
    cr_assert(pad_op_knn_l2(x.be, dist, idx, rows, 128, bank, 192, 96) == PAD_OK);
    PAD_ASSERT_CLOSE("knn_l2 dist", dist, want_patch, 128, 1e-4, 1e-4);
    for (int i = 0; i < 128; i++)
        cr_assert_eq(idx[i], (int32_t)loc[i], "knn_l2 idx[%d] = %d, want %d", i, idx[i], (int)loc[i]);
    free(rows), free(loc), free(bank), free(test), free(maps), free(want_patch), free(want_s), free(want_maps);
    teardown(&x);
}

Test(patchcore, single_neighbour_is_the_max) {
    fixture x = setup(1, 1.0);
    cr_assert(pad_patchcore_build(x.pc) == PAD_OK);
    float *test = pad_fixture_f32(x.f, "test", -1, NULL), *want = pad_fixture_f32(x.f, "score1", -1, NULL);
    float scores[2];
    cr_assert(pad_patchcore_predict(x.pc, test, 2, 64, 64, scores, NULL, NULL) == PAD_OK);
    PAD_ASSERT_CLOSE("image scores (max)", scores, want, 2, 1e-4, 1e-4);
    free(test), free(want);
    teardown(&x);
}

Test(patchcore, coreset_is_kcenter_greedy) {
    fixture x = setup(9, 0.25);
    float *bank = pad_fixture_f32(x.f, "bank", -1, NULL), *sel = pad_fixture_f32(x.f, "coreset_sel", -1, NULL);
    cr_assert(pad_patchcore_build(x.pc) == PAD_OK);
    cr_assert_eq(pad_patchcore_bank_rows(x.pc), 48);
    const float *cb = pad_patchcore_bank(x.pc);
    for (int i = 0; i < 48; i++) {
        const int j = (int)sel[i];
        PAD_ASSERT_CLOSE("coreset row", cb + (size_t)i * 96, bank + (size_t)j * 96, 96, 1e-5, 1e-4);
    }
    free(bank), free(sel);
    teardown(&x);
}

Test(patchcore, to_rows_concatenates_channels) {
    pad_backend *be = cpu(2);
    // inp (B 2, C 3, HW 4) -> out rows of width 5 at column 1
    float in[24], out[2 * 4 * 5];
    for (int i = 0; i < 24; i++)
        in[i] = (float)i;
    for (int i = 0; i < 40; i++)
        out[i] = -1.0f;
    cr_assert(pad_op_to_rows(be, out + 1, 5, in, 2, 3, 4) == PAD_OK);
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < 4; p++) {
            const float *r = out + (b * 4 + p) * 5;
            cr_assert(r[0] == -1.0f && r[4] == -1.0f, "untouched columns");
            for (int c = 0; c < 3; c++)
                cr_assert_eq(r[1 + c], in[(b * 3 + c) * 4 + p]);
        }
    pad_backend_free(be);
}

Test(patchcore, blur_of_constant_is_constant_and_errors) {
    float m[20 * 24];
    for (int i = 0; i < 20 * 24; i++)
        m[i] = 3.5f;
    cr_assert(pad_patchcore_blur(m, 20, 24, 4.0) == PAD_OK); // the window (33) exceeds the map: repeated mirroring
    for (int i = 0; i < 20 * 24; i++)
        cr_assert_float_eq(m[i], 3.5f, 1e-5);
    fixture x = setup(9, 1.0);
    float s[1];
    pad_test_log_start();
    float *test = pad_fixture_f32(x.f, "test", -1, NULL);
    cr_assert(pad_patchcore_predict(x.pc, test, 1, 64, 64, s, NULL, NULL) == PAD_ERR_INVALID_ARG);
    PAD_ASSERT_LOG_HAS("before the memory bank was built");
    pad_test_log_stop();
    free(test);
    teardown(&x);
}
