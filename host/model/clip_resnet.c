/* clip_resnet.c - CLIP's ModifiedResNet with the V-V attention pool (clip_resnet.h): shape inference, loading with
 * batch norms folded into the convolutions, and the forward pass on the backend's conv, pool, GEMM and attention
 * ops. The presets and the random checkpoint writer are in clip_resnet_random.c. */
#include "clip_resnet.h"

#include "log.h"
#include "resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS        PAD_CLIP_RESNET_STAGES
#define MAX_CONVS (3 + NS * PAD_CLIP_RESNET_MAX_BLOCKS * 4)

typedef struct conv_spec {
    char conv[96], bn[96]; // tensor name prefixes (with the file's prefix)
    int K, C, k, stride, pad;
} conv_spec;

struct pad_clip_resnet {
    pad_clip_resnet_cfg cfg;
    pad_backend *be;
    int max_batch, tap[2], D;
    int n_convs;
    pad_resnet_conv conv[MAX_CONVS];                // stem conv1..3, then per block conv1, conv2, conv3 [, downsample]
    int block_conv[NS][PAD_CLIP_RESNET_MAX_BLOCKS]; // index of a block's conv1 in conv[]
    float *data;                                    // every weight, one backend block
    float *pos, *in_w, *in_b, *c_w, *c_b;           // attention pool: (T,C), (3C,C) rows q, k, v, (3C), (E,C), (E)
    // activations for max_batch images (backend memory)
    float *sa, *sb, *pool, *t1, *t2, *t2p, *dsp, *ds, *pp[2], *stage[NS];
    float *x, *qkv, *a_qk, *a_vv, *mean, *rows, *tap_tmp; // attention pool and taps
    int32_t *idx_cls, *idx_patch;                         // gather tables: b*T, and b*T + 1 + p
};

// The stride of a stage's first block.
static int stage_stride(int s) {
    return s == 0 ? 1 : 2;
}

static void spec_set(conv_spec *s, const char *prefix, const char *conv, const char *bn, int K, int C, int k,
                     int stride) {
    snprintf(s->conv, sizeof s->conv, "%s%s", prefix, conv);
    snprintf(s->bn, sizeof s->bn, "%s%s", prefix, bn);
    s->K = K, s->C = C, s->k = k, s->stride = stride, s->pad = k / 2;
}

static bool has_downsample(const pad_clip_resnet_cfg *c, int s, int i) {
    const int in = s == 0 ? c->width : c->out[s - 1];
    return i == 0 && (stage_stride(s) > 1 || in != c->out[s]);
}

// Fills specs (MAX_CONVS) in model order, names under prefix ("visual." or "module.visual."); block_conv may be NULL.
static int conv_specs(const pad_clip_resnet_cfg *c, const char *prefix, conv_spec *specs,
                      int (*block_conv)[PAD_CLIP_RESNET_MAX_BLOCKS]) {
    int n = 0, in = c->width;
    spec_set(&specs[n++], prefix, "conv1", "bn1", c->width / 2, 3, 3, 2);
    spec_set(&specs[n++], prefix, "conv2", "bn2", c->width / 2, c->width / 2, 3, 1);
    spec_set(&specs[n++], prefix, "conv3", "bn3", c->width, c->width / 2, 3, 1);
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < c->blocks[s]; i++) {
            char cv[64], bn[64];
            if (block_conv) block_conv[s][i] = n;
            const int K[3] = {c->planes[s], c->planes[s], c->out[s]}, C[3] = {in, c->planes[s], c->planes[s]};
            for (int j = 0; j < 3; j++) {
                snprintf(cv, sizeof cv, "layer%d.%d.conv%d", s + 1, i, j + 1);
                snprintf(bn, sizeof bn, "layer%d.%d.bn%d", s + 1, i, j + 1);
                spec_set(&specs[n++], prefix, cv, bn, K[j], C[j], j == 1 ? 3 : 1, 1);
            }
            if (has_downsample(c, s, i)) { // AvgPool(stride) then this 1x1 convolution, stride 1
                snprintf(cv, sizeof cv, "layer%d.%d.downsample.0", s + 1, i);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", s + 1, i);
                spec_set(&specs[n++], prefix, cv, bn, c->out[s], in, 1, 1);
            }
            in = c->out[s];
        }
    return n;
}

// ----------------------------------------------------------------------------
// shape inference

static const char *visual_prefix(const pad_st_file *f) {
    return pad_st_find(f, "module.visual.attnpool.positional_embedding") ? "module.visual." : "visual.";
}

// *out = dimension `d` of tensor prefix+name, which must have ndim dimensions, when in [lo, hi]; else an error naming
// the tensor.
static pad_status dim_of(const pad_st_file *f, const char *prefix, const char *name, int ndim, int d, int lo, int hi,
                         int *out) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const pad_st_tensor *t = pad_st_find(f, full);
    if (!t) {
        PAD_LOG_ERROR("%s: missing tensor '%s' (not an OpenCLIP ModifiedResNet checkpoint?)", f->path, full);
        return PAD_ERR_FORMAT;
    }
    if (t->ndim != ndim || t->shape[d] < lo || t->shape[d] > hi) {
        char sh[96];
        pad_st_shape_str(sh, sizeof sh, t->ndim, t->shape);
        PAD_LOG_ERROR("%s: %s has shape %s (expected %d dimensions, dimension %d in [%d, %d])", f->path, full, sh, ndim,
                      d, lo, hi);
        return PAD_ERR_FORMAT;
    }
    *out = (int)t->shape[d];
    return PAD_OK;
}

pad_status pad_clip_resnet_infer_cfg(const pad_st_file *f, pad_clip_resnet_cfg *c) {
    memset(c, 0, sizeof *c);
    const char *pre = visual_prefix(f);
    char name[96];
    PAD_TRY(dim_of(f, pre, "conv3.weight", 4, 0, 2, PAD_WEIGHTS_MAX_WIDTH, &c->width));
    for (int s = 0; s < NS; s++) {
        int n = 0;
        for (; n <= PAD_CLIP_RESNET_MAX_BLOCKS; n++) {
            snprintf(name, sizeof name, "%slayer%d.%d.conv1.weight", pre, s + 1, n);
            if (!pad_st_find(f, name)) break;
        }
        if (n > PAD_CLIP_RESNET_MAX_BLOCKS) {
            PAD_LOG_ERROR("%s: %slayer%d has more than %d blocks", f->path, pre, s + 1, PAD_CLIP_RESNET_MAX_BLOCKS);
            return PAD_ERR_FORMAT;
        }
        c->blocks[s] = n;
        snprintf(name, sizeof name, "layer%d.0.conv1.weight", s + 1); // names it when missing
        PAD_TRY(dim_of(f, pre, name, 4, 0, 1, PAD_WEIGHTS_MAX_WIDTH, &c->planes[s]));
        snprintf(name, sizeof name, "layer%d.0.conv3.weight", s + 1);
        PAD_TRY(dim_of(f, pre, name, 4, 0, 1, PAD_WEIGHTS_MAX_WIDTH, &c->out[s]));
    }
    int rows = 0;
    PAD_TRY(dim_of(f, pre, "attnpool.positional_embedding", 2, 1, 64, PAD_WEIGHTS_MAX_WIDTH, &c->embed));
    PAD_TRY(dim_of(f, pre, "attnpool.positional_embedding", 2, 0, 2, 1 + 256 * 256, &rows));
    PAD_TRY(dim_of(f, pre, "attnpool.c_proj.weight", 2, 0, 1, PAD_WEIGHTS_MAX_WIDTH, &c->out_dim));
    c->grid = (int)lround(sqrt((double)(rows - 1)));
    if (c->grid * c->grid != rows - 1 || c->embed != c->out[NS - 1] || c->embed % 64 || c->width % 2) {
        PAD_LOG_ERROR("%s: %sattnpool.positional_embedding is (%d, %d): expected (1 + G*G, %d) with a width that is a "
                      "multiple of 64 (stem width %d must be even)",
                      f->path, pre, rows, c->embed, c->out[NS - 1], c->width);
        return PAD_ERR_FORMAT;
    }
    c->heads = c->embed / 64;
    c->image_size = 32 * c->grid;
    return PAD_OK;
}

bool pad_clip_resnet_probe(const char *path) {
    pad_st_file *f = NULL;
    if (pad_st_open(&f, path) != PAD_OK) return false;
    const char *pre = visual_prefix(f);
    char name[96];
    snprintf(name, sizeof name, "%sattnpool.positional_embedding", pre);
    const bool yes = pad_st_find(f, name) != NULL;
    pad_st_close(f);
    return yes;
}

// ----------------------------------------------------------------------------
// loading

void pad_clip_resnet_free(pad_clip_resnet *r) {
    if (!r) return;
    if (r->be) {
        float **bufs[] = {&r->sa,       &r->sb,       &r->pool,    &r->t1,    &r->t2,       &r->t2p,
                          &r->dsp,      &r->ds,       &r->pp[0],   &r->pp[1], &r->stage[0], &r->stage[1],
                          &r->stage[2], &r->stage[3], &r->x,       &r->qkv,   &r->a_qk,     &r->a_vv,
                          &r->mean,     &r->rows,     &r->tap_tmp, &r->data};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
            pad_buf_free(r->be, *bufs[i]);
        pad_buf_free(r->be, r->idx_cls);
        pad_buf_free(r->be, r->idx_patch);
    }
    free(r);
}

const pad_clip_resnet_cfg *pad_clip_resnet_config(const pad_clip_resnet *r) {
    return &r->cfg;
}

int pad_clip_resnet_tap_width(const pad_clip_resnet *r) {
    return r->D;
}

pad_clip_resnet_params pad_clip_resnet_default_params(void) {
    return (pad_clip_resnet_params){.max_batch = 8, .tap1 = 2, .tap2 = 3};
}

// Reads the attention pool's tensors into host (laid out as r's pointers will be, from offset `at`).
static pad_status read_attnpool(const pad_st_file *f, const char *pre, const pad_clip_resnet_cfg *c, float *at) {
    const int C = c->embed, T = 1 + c->grid * c->grid, E = c->out_dim;
    char name[160];
    snprintf(name, sizeof name, "%sattnpool.positional_embedding", pre);
    PAD_TRY(pad_st_read_f32_into(f, name, 2, (const int64_t[]){T, C}, at, (int64_t)T * C));
    at += (size_t)T * C;
    static const char qkv[3] = {'q', 'k', 'v'};
    for (int j = 0; j < 3; j++) { // in_w rows [jC, (j+1)C), in_b [jC, (j+1)C): torch's packed in_proj layout
        snprintf(name, sizeof name, "%sattnpool.%c_proj.weight", pre, qkv[j]);
        PAD_TRY(pad_st_read_f32_into(f, name, 2, (const int64_t[]){C, C}, at + (size_t)j * C * C, (int64_t)C * C));
        snprintf(name, sizeof name, "%sattnpool.%c_proj.bias", pre, qkv[j]);
        PAD_TRY(pad_st_read_f32_into(f, name, 1, (const int64_t[]){C}, at + (size_t)3 * C * C + (size_t)j * C, C));
    }
    at += (size_t)3 * C * C + 3 * (size_t)C;
    snprintf(name, sizeof name, "%sattnpool.c_proj.weight", pre);
    PAD_TRY(pad_st_read_f32_into(f, name, 2, (const int64_t[]){E, C}, at, (int64_t)E * C));
    snprintf(name, sizeof name, "%sattnpool.c_proj.bias", pre);
    return pad_st_read_f32_into(f, name, 1, (const int64_t[]){E}, at + (size_t)E * C, E);
}

// The attention pool's weights have their shapes in f (q, k, v and c projections; the positional embedding was
// read by infer_cfg).
static pad_status check_attnpool_shapes(const pad_st_file *f, const char *pre, const pad_clip_resnet_cfg *c) {
    static const char proj[4] = {'q', 'k', 'v', 'c'};
    char name[160];
    for (int j = 0; j < 4; j++) {
        const int64_t out = j == 3 ? c->out_dim : c->embed;
        snprintf(name, sizeof name, "%sattnpool.%c_proj.weight", pre, proj[j]);
        PAD_TRY(pad_st_check_shape(f, name, 2, (const int64_t[]){out, c->embed}));
    }
    return PAD_OK;
}

static size_t attnpool_floats(const pad_clip_resnet_cfg *c) {
    const size_t C = (size_t)c->embed, T = 1 + (size_t)c->grid * c->grid, E = (size_t)c->out_dim;
    return T * C + 3 * C * C + 3 * C + E * C + E;
}

// Reads every weight of f into one host block, uploads it and points r's convolutions and tensors into it.
static pad_status load_weights(pad_clip_resnet *r, const pad_st_file *f) {
    conv_spec *specs = (conv_spec *)calloc(MAX_CONVS, sizeof *specs);
    size_t *woff = (size_t *)calloc(MAX_CONVS, sizeof *woff);
    float *host = NULL;
    pad_status st = specs && woff ? PAD_OK : PAD_ERR_OOM;
    const char *pre = visual_prefix(f);
    if (st == PAD_OK) r->n_convs = conv_specs(&r->cfg, pre, specs, r->block_conv);
    // every convolution and projection weight has its shape in the file before anything is allocated: the block is
    // then no larger than what the file holds
    for (int i = 0; st == PAD_OK && i < r->n_convs; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s.weight", specs[i].conv);
        st = pad_st_check_shape(f, name, 4, (const int64_t[]){specs[i].K, specs[i].C, specs[i].k, specs[i].k});
    }
    if (st == PAD_OK) st = check_attnpool_shapes(f, pre, &r->cfg);
    size_t total = 0;
    for (int i = 0; st == PAD_OK && i < r->n_convs; i++) {
        woff[i] = total;
        total += (size_t)specs[i].K * specs[i].C * specs[i].k * specs[i].k + (size_t)specs[i].K;
    }
    const size_t ap = total;
    total += attnpool_floats(&r->cfg);
    if (st == PAD_OK && !(host = (float *)malloc(total * sizeof(float)))) st = PAD_ERR_OOM;
    for (int i = 0; i < r->n_convs && st == PAD_OK; i++) {
        const conv_spec *s = &specs[i];
        float *w = host + woff[i];
        st = pad_resnet_read_folded(f, s->conv, s->bn, s->K, s->C, s->k, w, w + (size_t)s->K * s->C * s->k * s->k);
    }
    if (st == PAD_OK) st = read_attnpool(f, pre, &r->cfg, host + ap);
    if (st == PAD_OK) st = pad_buf_from_host(r->be, &r->data, host, total);
    for (int i = 0; i < r->n_convs && st == PAD_OK; i++) {
        pad_resnet_conv *c = &r->conv[i];
        c->K = specs[i].K, c->C = specs[i].C, c->k = specs[i].k, c->stride = specs[i].stride, c->pad = specs[i].pad;
        c->w = r->data + woff[i];
        c->b = c->w + (size_t)c->K * c->C * c->k * c->k;
    }
    if (st == PAD_OK) {
        const size_t C = (size_t)r->cfg.embed, T = 1 + (size_t)r->cfg.grid * r->cfg.grid, E = (size_t)r->cfg.out_dim;
        r->pos = r->data + ap;
        r->in_w = r->pos + T * C;
        r->in_b = r->in_w + 3 * C * C;
        r->c_w = r->in_b + 3 * C;
        r->c_b = r->c_w + E * C;
    }
    free(host);
    free(specs);
    free(woff);
    return st;
}

static pad_status alloc_f(pad_clip_resnet *r, float **p, size_t n) {
    *p = (float *)pad_buf_alloc(r->be, (n ? n : 1) * sizeof(float));
    return *p ? PAD_OK : r->be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
}

static size_t max_z(size_t a, size_t b) {
    return a > b ? a : b;
}

// Allocates the activations for max_batch images of S x S and the gather tables.
static pad_status alloc_acts(pad_clip_resnet *r) {
    const pad_clip_resnet_cfg *c = &r->cfg;
    const size_t Bm = (size_t)r->max_batch, C = (size_t)c->embed, GG = (size_t)c->grid * c->grid, T = 1 + GG;
    const int H1 = pad_conv_out_size(c->image_size, 3, 2, 1);
    int h = H1 / 2;
    PAD_TRY(alloc_f(r, &r->sa, Bm * c->width * H1 * H1));
    PAD_TRY(alloc_f(r, &r->sb, Bm * c->width * H1 * H1));
    PAD_TRY(alloc_f(r, &r->pool, Bm * c->width * h * h));
    size_t t1 = 1, t2p = 1, dsp = 1, big = 1, ctap = 1;
    for (int s = 0; s < NS; s++) {
        const int in = s == 0 ? c->width : c->out[s - 1], h2 = h / stage_stride(s);
        t1 = max_z(t1, Bm * c->planes[s] * h * h);
        t2p = max_z(t2p, Bm * c->planes[s] * h2 * h2);
        dsp = max_z(dsp, Bm * in * h2 * h2);
        big = max_z(big, Bm * c->out[s] * h2 * h2);
        h = h2;
        PAD_TRY(alloc_f(r, &r->stage[s], Bm * c->out[s] * h * h));
        if (s + 1 == r->tap[0] || s + 1 == r->tap[1]) ctap = max_z(ctap, Bm * c->out[s] * GG);
    }
    if (h != c->grid) {
        PAD_LOG_ERROR("clip resnet: a %d px input ends on a %dx%d grid, the attention pool expects %dx%d",
                      c->image_size, h, h, c->grid, c->grid);
        return PAD_ERR_FORMAT;
    }
    float **bufs[] = {&r->t1, &r->t2, &r->t2p, &r->dsp, &r->ds, &r->pp[0], &r->pp[1], &r->tap_tmp};
    const size_t sizes[] = {t1, t1, t2p, dsp, big, big, big, ctap};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        PAD_TRY(alloc_f(r, bufs[i], sizes[i]));
    PAD_TRY(alloc_f(r, &r->x, Bm * T * C));
    PAD_TRY(alloc_f(r, &r->qkv, Bm * T * 3 * C));
    PAD_TRY(alloc_f(r, &r->a_qk, Bm * T * C));
    PAD_TRY(alloc_f(r, &r->a_vv, Bm * T * C));
    PAD_TRY(alloc_f(r, &r->mean, Bm * C));
    PAD_TRY(alloc_f(r, &r->rows, Bm * GG * C));
    int32_t *h_idx = (int32_t *)malloc(Bm * GG * sizeof(int32_t));
    r->idx_cls = (int32_t *)pad_buf_alloc(r->be, Bm * sizeof(int32_t));
    r->idx_patch = (int32_t *)pad_buf_alloc(r->be, Bm * GG * sizeof(int32_t));
    pad_status st = h_idx && r->idx_cls && r->idx_patch ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) {
        for (size_t b = 0; b < Bm; b++)
            h_idx[b] = (int32_t)(b * T);
        st = pad_buf_upload(r->be, r->idx_cls, h_idx, Bm * sizeof(int32_t));
    }
    if (st == PAD_OK) {
        for (size_t i = 0; i < Bm * GG; i++)
            h_idx[i] = (int32_t)(i / GG * T + 1 + i % GG);
        st = pad_buf_upload(r->be, r->idx_patch, h_idx, Bm * GG * sizeof(int32_t));
    }
    free(h_idx);
    return st;
}

pad_status pad_clip_resnet_load(pad_clip_resnet **out, pad_backend *be, const char *path,
                                const pad_clip_resnet_params *p) {
    *out = NULL;
    if (!be || !path || !p || p->max_batch < 1 || p->tap1 < 1 || p->tap1 > NS || p->tap2 < 1 || p->tap2 > NS) {
        PAD_LOG_ERROR("clip resnet: bad parameters (max_batch %d >= 1, taps %d and %d: stage numbers 1..%d)",
                      p ? p->max_batch : 0, p ? p->tap1 : 0, p ? p->tap2 : 0, NS);
        return PAD_ERR_INVALID_ARG;
    }
    pad_st_file *f = NULL;
    PAD_TRY(pad_st_open(&f, path));
    pad_clip_resnet *r = (pad_clip_resnet *)calloc(1, sizeof *r);
    pad_status st = r ? pad_clip_resnet_infer_cfg(f, &r->cfg) : PAD_ERR_OOM;
    if (st == PAD_OK) {
        r->be = be;
        r->max_batch = p->max_batch;
        r->tap[0] = p->tap1, r->tap[1] = p->tap2;
        const int c1 = r->cfg.out[p->tap1 - 1], c2 = r->cfg.out[p->tap2 - 1];
        r->D = c1 > c2 ? c1 : c2;
        st = load_weights(r, f);
    }
    pad_st_close(f);
    if (st == PAD_OK) st = alloc_acts(r);
    if (st != PAD_OK) {
        pad_clip_resnet_free(r);
        return st;
    }
    PAD_LOG_DEBUG("%s: CLIP ModifiedResNet, width %d, blocks %d/%d/%d/%d, attention pool %d (%d heads) -> %d, %d px",
                  path, r->cfg.width, r->cfg.blocks[0], r->cfg.blocks[1], r->cfg.blocks[2], r->cfg.blocks[3],
                  r->cfg.embed, r->cfg.heads, r->cfg.out_dim, r->cfg.image_size);
    *out = r;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// forward

// out = act(conv c of in (B, c->C, h, h) + res); *h becomes the output size (square maps only).
static pad_status run_conv(pad_clip_resnet *r, const pad_resnet_conv *c, float *out, const float *in, int B, int *h,
                           const float *res, bool relu) {
    int w = *h;
    return pad_resnet_conv_run(r->be, c, out, in, B, h, &w, res, relu);
}

// The stem and the four stages: r->stage[s] (B, out[s], h, h).
static pad_status run_trunk(pad_clip_resnet *r, const float *pixels, int B) {
    const pad_clip_resnet_cfg *c = &r->cfg;
    int h = c->image_size;
    PAD_TRY(run_conv(r, &r->conv[0], r->sa, pixels, B, &h, NULL, true));
    PAD_TRY(run_conv(r, &r->conv[1], r->sb, r->sa, B, &h, NULL, true));
    PAD_TRY(run_conv(r, &r->conv[2], r->sa, r->sb, B, &h, NULL, true));
    PAD_TRY(pad_op_pool2d(r->be, r->pool, r->sa, B, c->width, h, h, 2, 2, 0, PAD_POOL_AVG));
    h /= 2;
    const float *x = r->pool;
    int in = c->width;
    for (int s = 0; s < NS; s++)
        for (int i = 0; i < c->blocks[s]; i++) {
            const pad_resnet_conv *cv = &r->conv[r->block_conv[s][i]];
            const int stride = i == 0 ? stage_stride(s) : 1, h2 = h / stride;
            float *y = i == c->blocks[s] - 1 ? r->stage[s] : r->pp[i % 2];
            int hh = h;
            PAD_TRY(run_conv(r, &cv[0], r->t1, x, B, &hh, NULL, true));
            PAD_TRY(run_conv(r, &cv[1], r->t2, r->t1, B, &hh, NULL, true));
            const float *t2 = r->t2;
            if (stride > 1) { // the anti-aliasing average pool after the 3x3 convolution
                PAD_TRY(pad_op_pool2d(r->be, r->t2p, r->t2, B, c->planes[s], h, h, stride, stride, 0, PAD_POOL_AVG));
                t2 = r->t2p;
            }
            const float *res = x;
            if (has_downsample(c, s, i)) { // AvgPool(stride), 1x1 convolution + batch norm
                const float *xin = x;
                if (stride > 1) {
                    PAD_TRY(pad_op_pool2d(r->be, r->dsp, x, B, in, h, h, stride, stride, 0, PAD_POOL_AVG));
                    xin = r->dsp;
                }
                int hd = h2;
                PAD_TRY(run_conv(r, &cv[3], r->ds, xin, B, &hd, NULL, false));
                res = r->ds;
            }
            int h3 = h2;
            PAD_TRY(run_conv(r, &cv[2], y, t2, B, &h3, res, true));
            h = h2;
            in = c->out[s];
            x = y;
        }
    return PAD_OK;
}

// dst (B, G*G, D) = stage s's output area-averaged onto the G x G grid, channels-last, zero beyond its channels.
static pad_status tap_rows(pad_clip_resnet *r, float *dst, int s, int B) {
    const pad_clip_resnet_cfg *c = &r->cfg;
    const int G = c->grid, C = c->out[s], h = G << (NS - 1 - s); // each stage after s halves the grid
    const float *src = r->stage[s];
    if (h != G) {
        PAD_TRY(pad_op_adaptive_avgpool2d(r->be, r->tap_tmp, src, B, C, h, h, G, G));
        src = r->tap_tmp;
    }
    if (C < r->D) PAD_TRY(pad_buf_zero(r->be, dst, (size_t)B * G * G * r->D * sizeof(float)));
    return pad_op_to_rows(r->be, dst, r->D, src, B, C, G * G);
}

// The attention pool: tokens [mean, grid] + positions, packed q k v, standard and V-V attention, c_proj.
static pad_status attention_pool(pad_clip_resnet *r, int B, const pad_vit_out *out) {
    pad_backend *be = r->be;
    const pad_clip_resnet_cfg *c = &r->cfg;
    const int C = c->embed, GG = c->grid * c->grid, T = 1 + GG, E = c->out_dim;
    const float *x4 = r->stage[NS - 1];
    PAD_TRY(pad_op_adaptive_avgpool2d(be, r->mean, x4, B, C, c->grid, c->grid, 1, 1));
    for (int b = 0; b < B; b++) {
        float *xb = r->x + (size_t)b * T * C;
        PAD_TRY(pad_buf_copy(be, xb, r->mean + (size_t)b * C, (size_t)C * sizeof(float)));
        PAD_TRY(pad_op_to_rows(be, xb + C, C, x4 + (size_t)b * C * GG, 1, C, GG));
    }
    PAD_TRY(pad_op_add_rows(be, r->x, r->pos, B * T, C, T));
    PAD_TRY(pad_op_linear(be, r->qkv, r->x, r->in_w, r->in_b, B * T, C, 3 * C, false));
    PAD_TRY(pad_op_attention_dual(be, out->cls ? r->a_qk : NULL, out->tokens ? r->a_vv : NULL, r->qkv, B, T, c->heads,
                                  C / c->heads));
    if (out->cls) {
        PAD_TRY(pad_op_gather_rows(be, r->rows, r->a_qk, r->idx_cls, B, C));
        PAD_TRY(pad_op_linear(be, out->cls, r->rows, r->c_w, r->c_b, B, C, E, false));
    }
    if (out->tokens) {
        PAD_TRY(pad_op_gather_rows(be, r->rows, r->a_vv, r->idx_patch, B * GG, C));
        PAD_TRY(pad_op_linear(be, out->tokens, r->rows, r->c_w, r->c_b, B * GG, C, E, false));
    }
    return PAD_OK;
}

pad_status pad_clip_resnet_forward(pad_clip_resnet *r, const float *pixels, int B, const pad_vit_out *out) {
    if (B == 0) return PAD_OK;
    if (B < 0 || B > r->max_batch || !pixels || !out) {
        PAD_LOG_ERROR("clip resnet: forward of %d images with a context for at most %d", B, r->max_batch);
        return PAD_ERR_INVALID_ARG;
    }
    if (!out->cls && !out->tokens && !out->mid1 && !out->mid2) return PAD_OK;
    PAD_TRY(run_trunk(r, pixels, B));
    if (out->mid1) PAD_TRY(tap_rows(r, out->mid1, r->tap[0] - 1, B));
    if (out->mid2) PAD_TRY(tap_rows(r, out->mid2, r->tap[1] - 1, B));
    if (out->cls || out->tokens) PAD_TRY(attention_pool(r, B, out));
    return PAD_OK;
}
