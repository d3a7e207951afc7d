/* clip_resnet_random.c - the presets of the CLIP ModifiedResNet (rn101, clip-resnet-tiny) and its deterministic
 * random checkpoint (clip_resnet.h): the vision tower under OpenCLIP's names beside a random CLIP text tower, so
 * that `promptad make-model --preset rn101 | clip-resnet-tiny` writes a whole CLIP model. */
#include "clip_resnet.h"

#include "log.h"
#include "prng.h"
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

pad_status pad_clip_resnet_preset_parse(const char *s, pad_clip_resnet_preset *out) {
    if (strcmp(s, "rn101") == 0 || strcmp(s, "RN101") == 0)
        *out = PAD_CLIP_RESNET_RN101;
    else if (strcmp(s, "clip-resnet-tiny") == 0)
        *out = PAD_CLIP_RESNET_TINY;
    else
        return PAD_ERR_INVALID_ARG;
    return PAD_OK;
}

// Stage widths of OpenCLIP's ModifiedResNet for a stem width w: planes w, 2w, 4w, 8w; outputs 4 planes.
static pad_clip_resnet_cfg make_cfg(int width, const int blocks[4], int out_dim, int grid) {
    pad_clip_resnet_cfg c = {.width = width, .out_dim = out_dim, .grid = grid, .image_size = 32 * grid};
    for (int s = 0; s < PAD_CLIP_RESNET_STAGES; s++) {
        c.blocks[s] = blocks[s];
        c.planes[s] = width << s;
        c.out[s] = 4 * c.planes[s];
    }
    c.embed = c.out[PAD_CLIP_RESNET_STAGES - 1]; // width * 32
    c.heads = c.embed / 64;
    return c;
}

pad_clip_resnet_cfg pad_clip_resnet_preset_cfg(pad_clip_resnet_preset p) {
    if (p == PAD_CLIP_RESNET_TINY) return make_cfg(8, (const int[]){1, 1, 1, 1}, 64, 3);
    return make_cfg(64, (const int[]){3, 4, 23, 3}, 512, 7);
}

pad_clip_cfg pad_clip_resnet_text_cfg(pad_clip_resnet_preset p) {
    pad_clip_cfg c = pad_model_preset_cfg(PAD_MODEL_TINY); // the tiny text tower, embed 64
    if (p == PAD_CLIP_RESNET_RN101) {
        c.text = (pad_text_cfg){.width = 512, .layers = 12, .context = 77, .vocab = 49408, .mlp = 2048};
        c.text.head_dim = 64;
        c.text.heads = 512 / 64;
        c.embed_dim = 512;
    }
    // a placeholder ViT (pad_weights_make_random needs one; only the text tower is written)
    c.vision = (pad_vision_cfg){.width = 64,
                                .layers = 1,
                                .heads = 1,
                                .head_dim = 64,
                                .patch = 16,
                                .image_size = 16,
                                .grid = 1,
                                .tokens = 2,
                                .mlp = 64};
    return c;
}

static pad_status add_vision(pad_st_writer *w, const pad_clip_resnet_cfg *c, uint64_t *st) {
    static const char *const stem[3][2] = {
        {"visual.conv1", "visual.bn1"}, {"visual.conv2", "visual.bn2"}, {"visual.conv3", "visual.bn3"}};
    const int sK[3] = {c->width / 2, c->width / 2, c->width}, sC[3] = {3, c->width / 2, c->width / 2};
    for (int j = 0; j < 3; j++)
        PAD_TRY(pad_resnet_add_conv_bn(w, st, stem[j][0], stem[j][1], sK[j], sC[j], 3));
    int in = c->width;
    for (int s = 0; s < PAD_CLIP_RESNET_STAGES; s++)
        for (int i = 0; i < c->blocks[s]; i++) {
            char cv[96], bn[96];
            const int K[3] = {c->planes[s], c->planes[s], c->out[s]}, C[3] = {in, c->planes[s], c->planes[s]};
            for (int j = 0; j < 3; j++) {
                snprintf(cv, sizeof cv, "visual.layer%d.%d.conv%d", s + 1, i, j + 1);
                snprintf(bn, sizeof bn, "visual.layer%d.%d.bn%d", s + 1, i, j + 1);
                PAD_TRY(pad_resnet_add_conv_bn(w, st, cv, bn, K[j], C[j], j == 1 ? 3 : 1));
            }
            if (i == 0 && (s > 0 || in != c->out[s])) { // stride 2 from layer2 on, or a new width
                snprintf(cv, sizeof cv, "visual.layer%d.%d.downsample.0", s + 1, i);
                snprintf(bn, sizeof bn, "visual.layer%d.%d.downsample.1", s + 1, i);
                PAD_TRY(pad_resnet_add_conv_bn(w, st, cv, bn, c->out[s], in, 1));
            }
            in = c->out[s];
        }
    const int64_t C = c->embed, T = 1 + (int64_t)c->grid * c->grid, E = c->out_dim;
    const float a = 1.0f / sqrtf((float)C);
    PAD_TRY(pad_resnet_add_uniform(w, st, "visual.attnpool.positional_embedding", 2, (const int64_t[]){T, C}, -a, a));
    static const char *const proj[4] = {"q", "k", "v", "c"};
    for (int j = 0; j < 4; j++) {
        char name[96];
        const int64_t out = j == 3 ? E : C;
        snprintf(name, sizeof name, "visual.attnpool.%s_proj.weight", proj[j]);
        PAD_TRY(pad_resnet_add_uniform(w, st, name, 2, (const int64_t[]){out, C}, -a, a));
        snprintf(name, sizeof name, "visual.attnpool.%s_proj.bias", proj[j]);
        PAD_TRY(pad_resnet_add_uniform(w, st, name, 1, (const int64_t[]){out}, -0.02f, 0.02f));
    }
    return PAD_OK;
}

pad_status pad_clip_resnet_write_random(const pad_clip_resnet_cfg *cfg, const pad_clip_cfg *text_cfg, uint64_t seed,
                                        const char *path) {
    if (cfg->width < 2 || cfg->width % 2 || cfg->embed % 64 || cfg->grid < 1 || cfg->out_dim < 1 ||
        text_cfg->embed_dim != cfg->out_dim) {
        PAD_LOG_ERROR("clip resnet: invalid configuration (width %d, attention pool %d, embed %d vs text %d)",
                      cfg->width, cfg->embed, cfg->out_dim, text_cfg->embed_dim);
        return PAD_ERR_INVALID_ARG;
    }
    pad_clip_weights *text = NULL;
    PAD_TRY(pad_weights_make_random(&text, text_cfg, seed));
    text->parts = PAD_WEIGHTS_TEXT; // the placeholder ViT is not written
    pad_st_writer *w = NULL;
    pad_status s = pad_st_writer_init(&w);
    uint64_t st = pad_prng_mix(seed ^ 0x434C49505253ull); // "CLIPRS": a stream apart from the other generators
    if (s == PAD_OK) s = add_vision(w, cfg, &st);
    if (s == PAD_OK) s = pad_weights_add_to_writer(text, w);
    if (s == PAD_OK) s = pad_st_writer_meta(w, "format", "pt");
    if (s == PAD_OK) s = pad_st_writer_save(w, path);
    pad_st_writer_free(w);
    pad_weights_free(text);
    return s;
}
