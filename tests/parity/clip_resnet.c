/* clip_resnet.c - parity of the CLIP ModifiedResNet tower with the V-V attention pool (host/model/clip_resnet.h):
 * the small fixture network of tests/test_clip_resnet.c and a random RN101 at 224 px, CUDA (cuDNN convolutions, the
 * dual attention) against the CPU: image embedding, V-V tokens and both taps. */
#include "clip_resnet.h"
#include "parity.h"

#include <stdlib.h>
#include <unistd.h>

static void clip_resnet_case(const char *tag, const char *path, int B, double tol) {
    char name[160];
    snprintf(name, sizeof name, "clip resnet %s B%d", tag, B);
    if (!selected(name)) return;
    pad_clip_resnet *rc = NULL, *rg = NULL;
    twin x = {0};
    pad_clip_resnet_params p = pad_clip_resnet_default_params();
    p.max_batch = B;
    TRY_OR_FAIL(name, pad_clip_resnet_load(&rc, pg.cpu, path, &p));
    TRY_OR_FAIL(name, pad_clip_resnet_load(&rg, pg.gpu, path, &p));
    const pad_clip_resnet_cfg *c = pad_clip_resnet_config(rc);
    const size_t S = (size_t)c->image_size, GG = (size_t)c->grid * c->grid, E = (size_t)c->out_dim;
    const size_t D = (size_t)pad_clip_resnet_tap_width(rc);
    x = tw_rand((size_t)B * 3 * S * S, -2, 2);
    const size_t n[4] = {B * E, B * GG * E, B * GG * D, B * GG * D};
    static const char *const what[4] = {"cls", "tokens", "mid1", "mid2"};
    twin out[4];
    for (int i = 0; i < 4; i++)
        out[i] = tw_nan(n[i]);
    const pad_vit_out oc = {out[0].c, out[1].c, out[2].c, out[3].c}, og = {out[0].d, out[1].d, out[2].d, out[3].d};
    TRY_OR_FAIL(name, pad_clip_resnet_forward(rc, x.c, B, &oc));
    const double t0 = t_begin();
    TRY_OR_FAIL(name, pad_clip_resnet_forward(rg, x.d, B, &og));
    const double ms = t_end(t0);
    for (int i = 0; i < 4; i++) {
        char nm[200];
        snprintf(nm, sizeof nm, "%s %s", name, what[i]);
        float *h = gpu_get(out[i].d, n[i]);
        check_rel(nm, h, out[i].c, n[i], tol, ms);
        free(h);
    }
    for (int i = 0; i < 4; i++)
        tw_free(&out[i]);
done:
    pad_clip_resnet_free(rc);
    pad_clip_resnet_free(rg);
    tw_free(&x);
}

void clip_resnet_checks(void) {
    if (!path_on(false)) return;
    clip_resnet_case("small fixture", PAD_FIXTURE_DIR "/clip_resnet_small.safetensors", 2, 1e-5);
    if (pg.quick) return;
    char path[] = "/tmp/parity_rn101_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) {
        fail("clip resnet rn101", "mkstemp failed");
        return;
    }
    close(fd);
    const pad_clip_resnet_cfg cfg = pad_clip_resnet_preset_cfg(PAD_CLIP_RESNET_RN101);
    pad_clip_cfg tc = pad_clip_resnet_text_cfg(PAD_CLIP_RESNET_RN101);
    tc.text.vocab = 64; // the text tower is not compared: a small vocabulary keeps the file small
    if (pad_clip_resnet_write_random(&cfg, &tc, 1, path) == PAD_OK)
        clip_resnet_case("rn101 (random) 224", path, 2, 1e-4);
    else
        fail("clip resnet rn101", "cannot write the random checkpoint");
    unlink(path);
}
