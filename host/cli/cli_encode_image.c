/* cli_encode_image.c - `promptad encode-image --weights W --image IMG [--preprocess P] [--device D] --out O`:
 * preprocesses one image, runs the dual-path vision tower (host/vit.c) and writes the contract dump
 * (docs/cli.md): pixels [3,S,S] (the model input), cls [E], tokens [G*G,E], mid1 [G*G,D], mid2 [G*G,D], all raw
 * (not L2-normalised), batch dimension dropped. The taps are the official ones (blocks 3 and 8, vit.h) for a 12-block
 * tower, scaled to other depths as the run's default (pad_vit_default_taps: [6, 16] for ViT-L/14). */
#include "args.h"
#include "cli.h"
#include "image.h"
#include "log.h"
#include "st_file.h"
#include "vit.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Runs the tower on one preprocessed image and writes the dump. Returns the exit code.
static int encode_and_save(const pad_clip_weights *host, pad_backend_kind kind, const float *pixels,
                           const char *weights_path, const char *image_path, pad_preprocess_mode mode,
                           const char *out) {
    const pad_vision_cfg *c = &host->cfg.vision;
    const int S = c->image_size, GG = c->grid * c->grid, D = c->width, E = host->cfg.embed_dim;
    pad_backend *be = NULL;
    pad_clip_weights *w = NULL;
    pad_vit *vit = NULL;
    pad_st_writer *wr = NULL;
    float *cls = malloc((size_t)E * sizeof(float)), *tokens = malloc((size_t)GG * E * sizeof(float));
    float *mid1 = malloc((size_t)GG * D * sizeof(float)), *mid2 = malloc((size_t)GG * D * sizeof(float));
    int rc = 1;
    pad_vit_params p = pad_vit_depth_params(c->layers);
    p.max_batch = 1;
    if (!cls || !tokens || !mid1 || !mid2) goto done;
    if (pad_backend_init(&be, kind, 0) != PAD_OK) goto done;
    if (pad_weights_to_backend(host, be, &w) != PAD_OK) goto done;
    if (pad_vit_create(&vit, be, w, &p) != PAD_OK) goto done;
    pad_vit_out o = {cls, tokens, mid1, mid2};
    if (pad_vit_encode_host(vit, pixels, 1, &o) != PAD_OK) goto done;
    char taps[32];
    snprintf(taps, sizeof taps, "%d,%d", p.tap1, p.tap2);
    const int64_t s_pix[3] = {3, S, S}, s_cls[1] = {E}, s_tok[2] = {GG, E}, s_mid[2] = {GG, D};
    if (pad_st_writer_init(&wr) != PAD_OK || pad_st_writer_add_f32(wr, "pixels", 3, s_pix, pixels) != PAD_OK ||
        pad_st_writer_add_f32(wr, "cls", 1, s_cls, cls) != PAD_OK ||
        pad_st_writer_add_f32(wr, "tokens", 2, s_tok, tokens) != PAD_OK ||
        pad_st_writer_add_f32(wr, "mid1", 2, s_mid, mid1) != PAD_OK ||
        pad_st_writer_add_f32(wr, "mid2", 2, s_mid, mid2) != PAD_OK ||
        pad_st_writer_meta(wr, "image", image_path) != PAD_OK ||
        pad_st_writer_meta(wr, "weights", weights_path) != PAD_OK ||
        pad_st_writer_meta(wr, "preprocess", pad_preprocess_mode_str(mode)) != PAD_OK ||
        pad_st_writer_meta(wr, "taps", taps) != PAD_OK || pad_st_writer_meta(wr, "device", be->ops->name) != PAD_OK ||
        pad_st_writer_save(wr, out) != PAD_OK)
        goto done;
    rc = 0;
done:
    pad_st_writer_free(wr);
    pad_vit_free(vit);
    pad_weights_free(w);
    pad_backend_free(be);
    free(cls);
    free(tokens);
    free(mid1);
    free(mid2);
    return rc;
}

int pad_cli_encode_image(int argc, char **argv) {
    const char *weights = NULL, *image = NULL, *pre_s = "squash", *device_s = "auto", *out = NULL;
    const pad_opt opts[] = {
        {"weights", "W", "OpenCLIP checkpoint, .safetensors (required; see weights/README.md)", &weights, NULL, NULL,
         NULL},
        {"image", "IMG", "image file (PNG, JPEG, BMP, ...) (required)", &image, NULL, NULL, NULL},
        {"preprocess", "P", "squash (default), openclip or official (docs/cli.md)", &pre_s, NULL, NULL, NULL},
        {"device", "D", "auto (default: CUDA when usable), cpu or cuda", &device_s, NULL, NULL, NULL},
        {"out", "O", "output .safetensors file (required)", &out, NULL, NULL, NULL},
    };
    const char *pos[1];
    int n_pos = 0;
    pad_args_result r = pad_args_parse(
        argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 0, &n_pos,
        "promptad encode-image --weights W --image IMG [--preprocess P] [--device D] --out O.safetensors",
        "Encodes one image with the PromptAD vision tower and writes pixels [3,S,S] (the model input), cls [E], "
        "tokens [G*G,E] (v-v path, ln_post, proj), mid1 and mid2 [G*G,D] (the memory-bank taps: the original "
        "stream after the attention of blocks 3 and 8 of 12, scaled to other depths), all raw (not L2-normalised).");
    if (r != PAD_ARGS_OK) return r == PAD_ARGS_HELP ? 0 : 2;
    if (!weights) {
        pad_args_error(argv[0], "--weights is required (weights/README.md says how to get the OpenCLIP weights)");
        return 2;
    }
    if (!image) {
        pad_args_error(argv[0], "--image is required");
        return 2;
    }
    if (!out) {
        pad_args_error(argv[0], "--out is required");
        return 2;
    }
    pad_preprocess_mode mode;
    pad_backend_kind kind;
    if (pad_preprocess_mode_parse(pre_s, &mode) != PAD_OK || pad_backend_kind_parse(device_s, &kind) != PAD_OK)
        return 2;

    pad_clip_weights *host = NULL;
    if (pad_weights_load(&host, weights, PAD_WEIGHTS_VISION) != PAD_OK) return 1;
    const int S = host->cfg.vision.image_size;
    float *pixels = malloc((size_t)3 * S * S * sizeof(float));
    pad_image img = {0, 0, NULL};
    int rc = 1;
    if (!pixels) goto done;
    if (pad_image_load(&img, image) != PAD_OK) goto done;
    if (pad_preprocess(&img, mode, S, false, pixels) != PAD_OK) {
        PAD_LOG_ERROR("%s: cannot preprocess the image", image);
        goto done;
    }
    pad_image_free(&img);
    rc = encode_and_save(host, kind, pixels, weights, image, mode, out);
done:
    pad_image_free(&img);
    free(pixels);
    pad_weights_free(host);
    return rc;
}
