/* resnet.c - bottleneck ResNets (resnet.h): shape inference, loading with batch norm folded into the convolutions,
 * the forward pass on the backend's conv ops, and the random checkpoint writer. */
#include "resnet.h"
#include "log.h"
#include "prng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONVS (1 + PAD_RESNET_MAX_STAGES * PAD_RESNET_MAX_BLOCKS * 4)

struct pad_resnet {
    pad_resnet_cfg cfg;
    pad_backend *be;
    int n_convs;
    pad_resnet_conv conv[MAX_CONVS]; // stem, then per block conv1, conv2, conv3 [, downsample]
    int block_conv[PAD_RESNET_MAX_STAGES][PAD_RESNET_MAX_BLOCKS]; // index of a block's conv1 in conv[]
    float *data;                                                  // every weight, one backend block
    // activations for the last (B, H, W) seen
    int act_B, act_H, act_W;
    float *stage[PAD_RESNET_MAX_STAGES], *stem, *pool, *t1, *t2, *ds, *pp[2];
};

static const int k_stage_stride[PAD_RESNET_MAX_STAGES] = {1, 2, 2, 2};

pad_status pad_resnet_preset_parse(const char *s, pad_resnet_preset *out) {
    if (strcmp(s, "wide-resnet50-2") == 0)
        *out = PAD_RESNET_WIDE50_2;
    else if (strcmp(s, "resnet-tiny") == 0)
        *out = PAD_RESNET_TINY;
    else
        return PAD_ERR_INVALID_ARG;
    return PAD_OK;
}

pad_resnet_cfg pad_resnet_preset_cfg(pad_resnet_preset p) {
    if (p == PAD_RESNET_TINY)
        return (pad_resnet_cfg){
            .stem = 8, .n_stages = 3, .blocks = {1, 2, 2}, .width = {8, 16, 32}, .out = {16, 32, 64}};
    return (pad_resnet_cfg){.stem = 64,
                            .n_stages = 4,
                            .blocks = {3, 4, 6, 3},
                            .width = {128, 256, 512, 1024},
                            .out = {256, 512, 1024, 2048}};
}

// ----------------------------------------------------------------------------
// the convolution list of a configuration

typedef struct conv_spec {
    char conv[64], bn[64]; // tensor name prefixes
    int K, C, k, stride, pad;
} conv_spec;

static void spec_set(conv_spec *s, const char *conv, const char *bn, int K, int C, int k, int stride, int pad) {
    snprintf(s->conv, sizeof s->conv, "%s", conv);
    snprintf(s->bn, sizeof s->bn, "%s", bn);
    s->K = K, s->C = C, s->k = k, s->stride = stride, s->pad = pad;
}

// Fills specs (MAX_CONVS) in model order; block_conv (may be NULL) receives each block's first index.
static int conv_specs(const pad_resnet_cfg *cfg, conv_spec *specs, int (*block_conv)[PAD_RESNET_MAX_BLOCKS]) {
    int n = 0, in = cfg->stem;
    spec_set(&specs[n++], "conv1", "bn1", cfg->stem, 3, 7, 2, 3);
    for (int s = 0; s < cfg->n_stages; s++)
        for (int i = 0; i < cfg->blocks[s]; i++) {
            char c[64], b[64];
            const int stride = i == 0 ? k_stage_stride[s] : 1;
            if (block_conv) block_conv[s][i] = n;
            for (int j = 1; j <= 3; j++) {
                snprintf(c, sizeof c, "layer%d.%d.conv%d", s + 1, i, j);
                snprintf(b, sizeof b, "layer%d.%d.bn%d", s + 1, i, j);
                if (j == 1) spec_set(&specs[n++], c, b, cfg->width[s], in, 1, 1, 0);
                if (j == 2) spec_set(&specs[n++], c, b, cfg->width[s], cfg->width[s], 3, stride, 1);
                if (j == 3) spec_set(&specs[n++], c, b, cfg->out[s], cfg->width[s], 1, 1, 0);
            }
            if (i == 0 && (stride != 1 || in != cfg->out[s])) {
                snprintf(c, sizeof c, "layer%d.%d.downsample.0", s + 1, i);
                snprintf(b, sizeof b, "layer%d.%d.downsample.1", s + 1, i);
                spec_set(&specs[n++], c, b, cfg->out[s], in, 1, stride, 0);
            }
            in = cfg->out[s];
        }
    return n;
}

static bool has_downsample(const pad_resnet_cfg *cfg, int s, int i) {
    const int in = s == 0 ? cfg->stem : cfg->out[s - 1];
    return i == 0 && (k_stage_stride[s] != 1 || in != cfg->out[s]);
}

// ----------------------------------------------------------------------------
// shape inference

// The first dimension of a 4-D tensor `name`, or an error naming it.
static pad_status dim0_of(const pad_st_file *f, const char *name, int *out) {
    const pad_st_tensor *t = pad_st_find(f, name);
    if (!t) {
        PAD_LOG_ERROR("%s: missing tensor '%s' (not a torchvision ResNet checkpoint?)", f->path, name);
        return PAD_ERR_FORMAT;
    }
    if (t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > 65536) {
        char sh[96];
        pad_st_shape_str(sh, sizeof sh, t->ndim, t->shape);
        PAD_LOG_ERROR("%s: %s: expected a convolution weight (K, C, kh, kw), got %s", f->path, name, sh);
        return PAD_ERR_FORMAT;
    }
    *out = (int)t->shape[0];
    return PAD_OK;
}

pad_status pad_resnet_infer_cfg(const pad_st_file *f, pad_resnet_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    PAD_TRY(dim0_of(f, "conv1.weight", &cfg->stem));
    char name[64];
    for (int s = 0; s < PAD_RESNET_MAX_STAGES; s++) {
        snprintf(name, sizeof name, "layer%d.0.conv1.weight", s + 1);
        if (!pad_st_find(f, name)) break;
        int n = 0;
        for (; n <= PAD_RESNET_MAX_BLOCKS; n++) {
            snprintf(name, sizeof name, "layer%d.%d.conv1.weight", s + 1, n);
            if (!pad_st_find(f, name)) break;
        }
        if (n > PAD_RESNET_MAX_BLOCKS) {
            PAD_LOG_ERROR("%s: layer%d has more than %d blocks", f->path, s + 1, PAD_RESNET_MAX_BLOCKS);
            return PAD_ERR_FORMAT;
        }
        cfg->blocks[s] = n;
        snprintf(name, sizeof name, "layer%d.0.conv1.weight", s + 1);
        PAD_TRY(dim0_of(f, name, &cfg->width[s]));
        snprintf(name, sizeof name, "layer%d.0.conv3.weight", s + 1);
        PAD_TRY(dim0_of(f, name, &cfg->out[s]));
        cfg->n_stages = s + 1;
    }
    if (cfg->n_stages == 0) {
        PAD_LOG_ERROR("%s: missing tensor 'layer1.0.conv1.weight' (not a torchvision ResNet checkpoint?)", f->path);
        return PAD_ERR_FORMAT;
    }
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// loading

pad_status pad_resnet_read_folded(const pad_st_file *f, const char *conv, const char *bn, int K, int C, int k, float *w,
                                  float *b) {
    char name[160];
    const int64_t wshape[4] = {K, C, k, k}, vshape[1] = {K};
    const int64_t nw = (int64_t)K * C * k * k;
    snprintf(name, sizeof name, "%s.weight", conv);
    PAD_TRY(pad_st_read_f32_into(f, name, 4, wshape, w, nw));
    static const char *const bn_parts[4] = {"weight", "bias", "running_mean", "running_var"};
    float *v[4] = {NULL, NULL, NULL, NULL};
    pad_status st = PAD_OK;
    for (int j = 0; j < 4 && st == PAD_OK; j++) {
        snprintf(name, sizeof name, "%s.%s", bn, bn_parts[j]);
        st = pad_st_read_f32(f, name, 1, vshape, &v[j], NULL);
    }
    if (st == PAD_OK) {
        const int64_t per = nw / K;
        for (int o = 0; o < K; o++) {
            // y = gamma (conv - mean) / sqrt(var + eps) + beta = conv * a + (beta - mean * a)
            const double a = (double)v[0][o] / sqrt((double)v[3][o] + PAD_RESNET_BN_EPS);
            for (int64_t i = 0; i < per; i++)
                w[o * per + i] = (float)(w[o * per + i] * a);
            b[o] = (float)((double)v[1][o] - (double)v[2][o] * a);
        }
    }
    for (int j = 0; j < 4; j++)
        free(v[j]);
    return st;
}

pad_status pad_resnet_load(pad_resnet **out, pad_backend *be, const char *path, int max_stages) {
    *out = NULL;
    pad_st_file *f = NULL;
    PAD_TRY(pad_st_open(&f, path));
    pad_resnet *r = (pad_resnet *)calloc(1, sizeof *r);
    conv_spec *specs = (conv_spec *)calloc(MAX_CONVS, sizeof *specs);
    size_t *woff = (size_t *)calloc(MAX_CONVS, sizeof *woff);
    float *host = NULL;
    pad_status st = r && specs && woff ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_resnet_infer_cfg(f, &r->cfg);
    if (st != PAD_OK) goto done;
    if (max_stages >= 1 && max_stages < r->cfg.n_stages) r->cfg.n_stages = max_stages;
    r->be = be;
    r->n_convs = conv_specs(&r->cfg, specs, r->block_conv);
    size_t total = 0;
    for (int i = 0; i < r->n_convs; i++) {
        woff[i] = total;
        total += (size_t)specs[i].K * specs[i].C * specs[i].k * specs[i].k + (size_t)specs[i].K;
    }
    host = (float *)malloc(total * sizeof(float));
    if (!host) st = PAD_ERR_OOM;
    for (int i = 0; i < r->n_convs && st == PAD_OK; i++) {
        const size_t nw = (size_t)specs[i].K * specs[i].C * specs[i].k * specs[i].k;
        st = pad_resnet_read_folded(f, specs[i].conv, specs[i].bn, specs[i].K, specs[i].C, specs[i].k, host + woff[i],
                                    host + woff[i] + nw);
    }
    if (st == PAD_OK) st = pad_buf_from_host(be, &r->data, host, total);
    for (int i = 0; i < r->n_convs && st == PAD_OK; i++) {
        pad_resnet_conv *c = &r->conv[i];
        c->K = specs[i].K, c->C = specs[i].C, c->k = specs[i].k, c->stride = specs[i].stride, c->pad = specs[i].pad;
        c->w = r->data + woff[i];
        c->b = c->w + (size_t)c->K * c->C * c->k * c->k;
    }
done:
    free(host);
    free(specs);
    free(woff);
    pad_st_close(f);
    if (st != PAD_OK) {
        pad_resnet_free(r);
        return st;
    }
    PAD_LOG_DEBUG("%s: ResNet, stem %d, %d stages, %d convolutions", path, r->cfg.stem, r->cfg.n_stages, r->n_convs);
    *out = r;
    return PAD_OK;
}

static void free_acts(pad_resnet *r) {
    float **bufs[] = {&r->stem,  &r->pool,     &r->t1,       &r->t2,       &r->ds,      &r->pp[0],
                      &r->pp[1], &r->stage[0], &r->stage[1], &r->stage[2], &r->stage[3]};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        pad_buf_free(r->be, *bufs[i]);
        *bufs[i] = NULL;
    }
    r->act_B = r->act_H = r->act_W = 0;
}

void pad_resnet_free(pad_resnet *r) {
    if (!r) return;
    if (r->be) {
        free_acts(r);
        pad_buf_free(r->be, r->data);
    }
    free(r);
}

const pad_resnet_cfg *pad_resnet_config(const pad_resnet *r) {
    return &r->cfg;
}

// ----------------------------------------------------------------------------
// forward

static pad_status alloc_act(pad_resnet *r, float **p, size_t n) {
    *p = (float *)pad_buf_alloc(r->be, n * sizeof(float));
    return *p ? PAD_OK : PAD_ERR_OOM;
}

// (Re)allocates the activations for input (B, 3, H, W).
static pad_status ensure_acts(pad_resnet *r, int B, int H, int W) {
    if (r->act_B == B && r->act_H == H && r->act_W == W) return PAD_OK;
    free_acts(r);
    const pad_resnet_cfg *c = &r->cfg;
    const int H1 = pad_conv_out_size(H, 7, 2, 3), W1 = pad_conv_out_size(W, 7, 2, 3);
    int h = pad_conv_out_size(H1, 3, 2, 1), w = pad_conv_out_size(W1, 3, 2, 1);
    if (h <= 0 || w <= 0) {
        PAD_LOG_ERROR("resnet: input %dx%d is too small", H, W);
        return PAD_ERR_INVALID_ARG;
    }
    PAD_TRY(alloc_act(r, &r->stem, (size_t)B * c->stem * H1 * W1));
    PAD_TRY(alloc_act(r, &r->pool, (size_t)B * c->stem * h * w));
    size_t t1 = 1, t2 = 1, big = 1;
    for (int s = 0; s < c->n_stages; s++) {
        const size_t in_px = (size_t)h * w;
        h = pad_conv_out_size(h, 3, k_stage_stride[s], 1), w = pad_conv_out_size(w, 3, k_stage_stride[s], 1);
        const size_t n_t1 = (size_t)B * c->width[s] * in_px, n_t2 = (size_t)B * c->width[s] * h * w;
        const size_t n_out = (size_t)B * c->out[s] * h * w;
        t1 = n_t1 > t1 ? n_t1 : t1;
        t2 = n_t2 > t2 ? n_t2 : t2;
        big = n_out > big ? n_out : big;
        PAD_TRY(alloc_act(r, &r->stage[s], n_out));
    }
    PAD_TRY(alloc_act(r, &r->t1, t1));
    PAD_TRY(alloc_act(r, &r->t2, t2));
    PAD_TRY(alloc_act(r, &r->ds, big));
    PAD_TRY(alloc_act(r, &r->pp[0], big));
    PAD_TRY(alloc_act(r, &r->pp[1], big));
    r->act_B = B, r->act_H = H, r->act_W = W;
    return PAD_OK;
}

pad_status pad_resnet_conv_run(pad_backend *be, const pad_resnet_conv *c, float *out, const float *in, int B, int *H,
                               int *W, const float *res, bool relu) {
    const pad_conv2d_desc d = {.B = B,
                               .C = c->C,
                               .H = *H,
                               .W = *W,
                               .K = c->K,
                               .kh = c->k,
                               .kw = c->k,
                               .stride = c->stride,
                               .pad = c->pad,
                               .relu = relu};
    PAD_TRY(pad_op_conv2d(be, &d, out, in, c->w, c->b, res));
    *H = pad_conv_out_size(*H, c->k, c->stride, c->pad);
    *W = pad_conv_out_size(*W, c->k, c->stride, c->pad);
    return PAD_OK;
}

// out = act(conv c of in (B, c->C, *H, *W) + res) on r's backend; *H, *W become the output size.
static pad_status run_conv(pad_resnet *r, const pad_resnet_conv *c, float *out, const float *in, int B, int *H, int *W,
                           const float *res, bool relu) {
    return pad_resnet_conv_run(r->be, c, out, in, B, H, W, res, relu);
}

pad_status pad_resnet_forward(pad_resnet *r, const float *pixels, int B, int H, int W, int last_stage,
                              pad_resnet_feats *out) {
    memset(out, 0, sizeof *out);
    if (!pixels || B <= 0 || H <= 0 || W <= 0 || last_stage < 1 || last_stage > r->cfg.n_stages) {
        PAD_LOG_ERROR("resnet forward: bad arguments (B %d, %dx%d, last stage %d of %d)", B, H, W, last_stage,
                      r->cfg.n_stages);
        return PAD_ERR_INVALID_ARG;
    }
    PAD_TRY(ensure_acts(r, B, H, W));
    int h = H, w = W;
    PAD_TRY(run_conv(r, &r->conv[0], r->stem, pixels, B, &h, &w, NULL, true));
    PAD_TRY(pad_op_pool2d(r->be, r->pool, r->stem, B, r->cfg.stem, h, w, 3, 2, 1, PAD_POOL_MAX));
    h = pad_conv_out_size(h, 3, 2, 1), w = pad_conv_out_size(w, 3, 2, 1);
    const float *x = r->pool;
    for (int s = 0; s < last_stage; s++) {
        for (int i = 0; i < r->cfg.blocks[s]; i++) {
            const pad_resnet_conv *c = &r->conv[r->block_conv[s][i]];
            float *y = i == r->cfg.blocks[s] - 1 ? r->stage[s] : r->pp[i % 2];
            int h1 = h, w1 = w, hd = h, wd = w;
            PAD_TRY(run_conv(r, &c[0], r->t1, x, B, &h1, &w1, NULL, true));
            PAD_TRY(run_conv(r, &c[1], r->t2, r->t1, B, &h1, &w1, NULL, true));
            const float *res = x;
            if (has_downsample(&r->cfg, s, i)) {
                PAD_TRY(run_conv(r, &c[3], r->ds, x, B, &hd, &wd, NULL, false));
                res = r->ds;
            }
            PAD_TRY(run_conv(r, &c[2], y, r->t2, B, &h1, &w1, res, true));
            h = h1, w = w1;
            x = y;
        }
        out->data[s] = r->stage[s];
        out->C[s] = r->cfg.out[s], out->H[s] = h, out->W[s] = w;
    }
    return PAD_OK;
}
