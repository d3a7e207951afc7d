/* test_resnet.c - the bottleneck ResNet (host/model/resnet.h) against torchvision (tests/ref/make_resnet_fixtures.py:
 * torchvision's Bottleneck blocks at the resnet-tiny widths, random weights and batch-norm statistics), shape
 * inference, the random checkpoint writer, and the errors for missing or misshapen tensors. */
#include "backend.h"
#include "check.h"
#include "resnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *cpu(int threads) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, threads) == PAD_OK);
    return be;
}

Test(resnet, tiny_matches_torchvision) {
    pad_backend *be = cpu(0);
    pad_resnet *r = NULL;
    cr_assert(pad_resnet_load(&r, be, pad_fixture_path("resnet_tiny.safetensors"), 0) == PAD_OK);
    const pad_resnet_cfg *c = pad_resnet_config(r);
    const pad_resnet_cfg want = pad_resnet_preset_cfg(PAD_RESNET_TINY);
    cr_assert_eq(c->stem, want.stem);
    cr_assert_eq(c->n_stages, 3);
    for (int s = 0; s < 3; s++)
        cr_assert(c->blocks[s] == want.blocks[s] && c->width[s] == want.width[s] && c->out[s] == want.out[s],
                  "stage %d inferred wrong", s);
    pad_st_file *io = pad_fixture_open("resnet_tiny_io.safetensors");
    float *x = pad_fixture_f32(io, "x", -1, NULL);
    pad_resnet_feats feats;
    cr_assert(pad_resnet_forward(r, x, 2, 64, 48, 3, &feats) == PAD_OK);
    const int eh[3] = {16, 8, 4}, ew[3] = {12, 6, 3};
    for (int s = 0; s < 3; s++) {
        char name[16];
        snprintf(name, sizeof name, "layer%d", s + 1);
        cr_assert(feats.C[s] == want.out[s] && feats.H[s] == eh[s] && feats.W[s] == ew[s], "%s shape", name);
        const size_t n = (size_t)2 * feats.C[s] * feats.H[s] * feats.W[s];
        cr_assert_eq(pad_st_find(io, name)->numel, (int64_t)n);
        float *ref = pad_fixture_f32(io, name, -1, NULL);
        PAD_ASSERT_CLOSE(name, feats.data[s], ref, n, 1e-4, 1e-4);
        free(ref);
    }
    // a second forward at another size reallocates the activations; stopping after layer2 leaves layer3 NULL
    cr_assert(pad_resnet_forward(r, x, 1, 32, 32, 2, &feats) == PAD_OK);
    cr_assert(feats.data[1] && !feats.data[2] && feats.H[1] == 4 && feats.W[1] == 4);
    free(x);
    pad_st_close(io);
    pad_resnet_free(r);
    pad_backend_free(be);
}

Test(resnet, random_checkpoint_round_trip) {
    char *dir = pad_test_tmpdir("resnet");
    char path[512];
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    const pad_resnet_cfg cfg = pad_resnet_preset_cfg(PAD_RESNET_TINY);
    cr_assert(pad_resnet_write_random(&cfg, 7, path) == PAD_OK);
    pad_backend *be = cpu(1);
    pad_resnet *r = NULL;
    cr_assert(pad_resnet_load(&r, be, path, 2) == PAD_OK); // cut after layer2
    cr_assert_eq(pad_resnet_config(r)->n_stages, 2);
    cr_assert(memcmp(pad_resnet_config(r)->width, cfg.width, 2 * sizeof(int)) == 0);
    pad_resnet_free(r);
    // same seed, same bytes
    char path2[512];
    snprintf(path2, sizeof path2, "%s/tiny2.safetensors", dir);
    cr_assert(pad_resnet_write_random(&cfg, 7, path2) == PAD_OK);
    pad_st_file *a = NULL, *b = NULL;
    cr_assert(pad_st_open(&a, path) == PAD_OK && pad_st_open(&b, path2) == PAD_OK);
    cr_assert(a->map_size == b->map_size && memcmp(a->map, b->map, a->map_size) == 0);
    pad_st_close(a);
    pad_st_close(b);
    pad_backend_free(be);
}

static void write_damaged(const char *path, const char *skip, bool reshape) {
    pad_fixture_write_damaged("resnet_tiny.safetensors", path, skip, reshape);
}

Test(resnet, errors_name_the_tensor) {
    char *dir = pad_test_tmpdir("resnet_err");
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    pad_backend *be = cpu(1);
    pad_resnet *r = NULL;
    pad_test_log_start();
    write_damaged(path, "layer2.1.bn2.running_var", false);
    cr_assert(pad_resnet_load(&r, be, path, 0) == PAD_ERR_FORMAT && !r);
    PAD_ASSERT_LOG_HAS("missing tensor 'layer2.1.bn2.running_var'");
    write_damaged(path, "layer1.0.downsample.0.weight", false);
    cr_assert(pad_resnet_load(&r, be, path, 0) == PAD_ERR_FORMAT);
    PAD_ASSERT_LOG_HAS("missing tensor 'layer1.0.downsample.0.weight'");
    write_damaged(path, "conv1.weight", false);
    cr_assert(pad_resnet_load(&r, be, path, 0) == PAD_ERR_FORMAT);
    PAD_ASSERT_LOG_HAS("missing tensor 'conv1.weight'");
    write_damaged(path, "layer3.0.conv2.weight", true);
    cr_assert(pad_resnet_load(&r, be, path, 0) == PAD_ERR_FORMAT);
    PAD_ASSERT_LOG_HAS("'layer3.0.conv2.weight': expected shape (32, 32, 3, 3), got (1)");
    pad_test_log_stop();
    pad_backend_free(be);
}
