/* resnet_random.c - the deterministic random ResNet checkpoint of pad_resnet_write_random (resnet.h): torchvision
 * names and shapes for a configuration, values from splitmix64 (prng.h), so the same seed writes the same file on
 * every machine. Used by `promptad make-model --preset wide-resnet50-2 | resnet-tiny`, the tests and benchmarks. */
#include "log.h"
#include "prng.h"
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

// Uniform float in [lo, hi) from the top 24 bits of the next draw.
static float uniform(uint64_t *st, float lo, float hi) {
    const float u = (float)(pad_prng_next(st) >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

pad_status pad_resnet_add_uniform(pad_st_writer *w, uint64_t *st, const char *name, int ndim, const int64_t *shape,
                                  float lo, float hi) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    float *buf = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!buf) return PAD_ERR_OOM;
    for (size_t i = 0; i < n; i++)
        buf[i] = uniform(st, lo, hi);
    pad_status s = pad_st_writer_add_f32(w, name, ndim, shape, buf);
    free(buf);
    return s;
}

pad_status pad_resnet_add_conv_bn(pad_st_writer *w, uint64_t *st, const char *conv, const char *bn, int K, int C,
                                  int k) {
    const size_t nw = (size_t)K * C * k * k;
    float *buf = (float *)malloc((nw > (size_t)K ? nw : (size_t)K) * sizeof(float));
    if (!buf) return PAD_ERR_OOM;
    char name[96];
    const float a = sqrtf(3.0f / (float)(C * k * k));
    for (size_t i = 0; i < nw; i++)
        buf[i] = uniform(st, -a, a);
    const int64_t wshape[4] = {K, C, k, k}, vshape[1] = {K};
    snprintf(name, sizeof name, "%s.weight", conv);
    pad_status s = pad_st_writer_add_f32(w, name, 4, wshape, buf);
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    static const float lo[4] = {0.5f, -0.1f, -0.1f, 0.5f}, hi[4] = {1.5f, 0.1f, 0.1f, 1.5f};
    for (int j = 0; j < 4 && s == PAD_OK; j++) {
        for (int i = 0; i < K; i++)
            buf[i] = uniform(st, lo[j], hi[j]);
        snprintf(name, sizeof name, "%s.%s", bn, parts[j]);
        s = pad_st_writer_add_f32(w, name, 1, vshape, buf);
    }
    free(buf);
    return s;
}

static pad_status add_all(pad_st_writer *w, const pad_resnet_cfg *cfg, uint64_t *st) {
    PAD_TRY(pad_resnet_add_conv_bn(w, st, "conv1", "bn1", cfg->stem, 3, 7));
    int in = cfg->stem;
    for (int s = 0; s < cfg->n_stages; s++)
        for (int i = 0; i < cfg->blocks[s]; i++) {
            char c[64], b[64];
            const int widths[3][3] = {
                {cfg->width[s], in, 1}, {cfg->width[s], cfg->width[s], 3}, {cfg->out[s], cfg->width[s], 1}};
            for (int j = 0; j < 3; j++) {
                snprintf(c, sizeof c, "layer%d.%d.conv%d", s + 1, i, j + 1);
                snprintf(b, sizeof b, "layer%d.%d.bn%d", s + 1, i, j + 1);
                PAD_TRY(pad_resnet_add_conv_bn(w, st, c, b, widths[j][0], widths[j][1], widths[j][2]));
            }
            if (i == 0 && (s > 0 || in != cfg->out[s])) { // torchvision: stride 2 from layer2 on, or a new width
                snprintf(c, sizeof c, "layer%d.%d.downsample.0", s + 1, i);
                snprintf(b, sizeof b, "layer%d.%d.downsample.1", s + 1, i);
                PAD_TRY(pad_resnet_add_conv_bn(w, st, c, b, cfg->out[s], in, 1));
            }
            in = cfg->out[s];
        }
    return PAD_OK;
}

pad_status pad_resnet_write_random(const pad_resnet_cfg *cfg, uint64_t seed, const char *path) {
    if (cfg->n_stages < 1 || cfg->n_stages > PAD_RESNET_MAX_STAGES || cfg->stem < 1) return PAD_ERR_INVALID_ARG;
    for (int s = 0; s < cfg->n_stages; s++)
        if (cfg->blocks[s] < 1 || cfg->blocks[s] > PAD_RESNET_MAX_BLOCKS || cfg->width[s] < 1 || cfg->out[s] < 1)
            return PAD_ERR_INVALID_ARG;
    pad_st_writer *w = NULL;
    PAD_TRY(pad_st_writer_init(&w));
    uint64_t st = pad_prng_mix(seed ^ 0x5245534E4554ull); // "RESNET": a stream apart from the CLIP generator's
    pad_status s = add_all(w, cfg, &st);
    if (s == PAD_OK) s = pad_st_writer_meta(w, "format", "torchvision-resnet");
    if (s == PAD_OK) s = pad_st_writer_save(w, path);
    pad_st_writer_free(w);
    return s;
}
