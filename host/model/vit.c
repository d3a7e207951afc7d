/* vit.c - the dual-path CLIP vision tower of PromptAD (docs/method.md#vision-tower), see vit.h. All compute goes
 * through the checked pad_op_* wrappers, so the same control flow runs on every backend.
 *
 * Per block l (pre-LN, shared attention weights, h = ln_1(x_ori)):
 *     [q k v] = h W_in^T + b_in
 *     x_ori  += softmax(q k^T / sqrt(HS)) v W_out^T + b_out        (o_ori)
 *     x_vv   += softmax(v v^T / sqrt(HS)) v W_out^T + b_out        (o_vv; attention computed from x_ori's ln_1)
 *     [tap k = x_ori here, if l == k]
 *     x_ori  += c_proj(act(c_fc(ln_2(x_ori))))                     (no MLP on the v-v path; act = GELU, or
 *                                                                  QuickGELU for OpenAI's weights: w->cfg.act)
 * with x_ori = x_vv = x_0 = ln_pre(embeddings) before block 0, i.e. x_vv_final = x_0 + sum_l o_vv^(l).
 *
 * Work skipped because no output can see it (exact, not an approximation): the final block's MLP runs on the CLS
 * rows only (the original stream's patch rows after the last block feed nothing: tokens come from x_vv and the taps
 * are taken before their block's MLP, docs/method.md#vision-outputs); the v-v path is skipped when `tokens` is not
 * wanted; blocks after the last tap are skipped when only taps are wanted.
 *
 * Launch economy (GPU): the c_fc bias and the GELU are one fused op (bias_gelu, bit for bit the two ops it
 * replaces; cuBLASLt's GELU epilogue is not used: it is the tanh approximation, and this model uses the exact erf
 * GELU); the patch rows of the taps and the CLS rows of the last block are gathered by one op each (row
 * index tables built at creation) instead of one copy per image. With the backend's fast kernels the linear
 * layers run as one GEMM over all B*T rows instead of one per image (no padding of each image's 226 rows to the
 * GEMM tiles; results then depend on the batch size within float rounding). */
#include "vit.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f

struct pad_vit {
    pad_backend *be;
    const pad_clip_weights *w;
    pad_vision_cfg cfg;
    int E;         // embed dim
    int max_batch; // Bm
    int tap1, tap2;
    // Activations (backend memory), for Bm images; T = 1 + G*G tokens, D width, H mlp hidden.
    float *x_ori; // (Bm,T,D)  original residual stream (stock CLIP)
    float *x_vv;  // (Bm,T,D)  v-v residual stream: x_0 + sum of the v-v attention outputs
    float *ln;    // (Bm,T,D)  LayerNorm output (ln_1, ln_2, ln_post), reused
    float *qkv;   // (Bm,T,3D) packed q, k, v of the current block
    float *a_qk;  // (Bm,T,D)  q-k attention output before out_proj; its first Bm rows hold the CLS rows (Bm,D)
                  //           of x_ori for the final block's CLS-only MLP
    float *a_vv;  // (Bm,T,D)  v-v attention output before out_proj
    float *hid;   // (Bm,T,H)  MLP hidden activations
    // Staging for pad_vit_encode_host (backend memory).
    float *pix;    // (Bm,3,S,S) input pixels
    float *o_cls;  // (Bm,E)
    float *o_tok;  // (Bm,G*G,E)
    float *o_mid1; // (Bm,G*G,D)
    float *o_mid2; // (Bm,G*G,D)
    // Row index tables for gather_rows (backend int32)
    int32_t *idx_patch; // (Bm*G*G) b*T + 1 + p: the patch rows of each image
    int32_t *idx_cls;   // (Bm) b*T: the CLS row of each image
};

pad_vit_params pad_vit_default_params(void) {
    pad_vit_params p = {.max_batch = 8, .tap1 = 3, .tap2 = 8};
    return p;
}

void pad_vit_default_taps(int layers, int taps[2]) {
    static const int k12[2] = {3, 8};
    for (int i = 0; i < 2; i++) {
        int t = (2 * k12[i] * layers + 12) / 24; // round half up of k * layers / 12
        taps[i] = t < 0 ? 0 : t >= layers ? (layers > 0 ? layers - 1 : 0) : t;
    }
}

pad_vit_params pad_vit_depth_params(int layers) {
    pad_vit_params p = pad_vit_default_params();
    int t[2];
    pad_vit_default_taps(layers, t);
    p.tap1 = t[0];
    p.tap2 = t[1];
    return p;
}

const pad_vision_cfg *pad_vit_cfg(const pad_vit *vit) {
    return &vit->cfg;
}

int pad_vit_embed_dim(const pad_vit *vit) {
    return vit->E;
}

int pad_vit_max_batch(const pad_vit *vit) {
    return vit->max_batch;
}

void pad_vit_free(pad_vit *vit) {
    if (!vit) return;
    float **bufs[] = {&vit->x_ori, &vit->x_vv, &vit->ln,    &vit->qkv,   &vit->a_qk,   &vit->a_vv,
                      &vit->hid,   &vit->pix,  &vit->o_cls, &vit->o_tok, &vit->o_mid1, &vit->o_mid2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pad_buf_free(vit->be, *bufs[i]);
    pad_buf_free(vit->be, vit->idx_patch);
    pad_buf_free(vit->be, vit->idx_cls);
    free(vit);
}

pad_status pad_vit_create(pad_vit **out, pad_backend *be, const pad_clip_weights *w, const pad_vit_params *p) {
    *out = NULL;
    if (!be || !w || !p) {
        PAD_LOG_ERROR("vit: missing backend, weights or parameters");
        return PAD_ERR_INVALID_ARG;
    }
    if (!(w->parts & PAD_WEIGHTS_VISION) || !w->vis || !w->conv1_w) {
        PAD_LOG_ERROR("vit: the weights have no vision tower");
        return PAD_ERR_INVALID_ARG;
    }
    if (w->be != be && !(w->be == NULL && be->kind == PAD_BACKEND_CPU)) {
        PAD_LOG_ERROR("vit: the weights live on another backend than %s (use pad_weights_to_backend)", be->ops->name);
        return PAD_ERR_INVALID_ARG;
    }
    const pad_vision_cfg *c = &w->cfg.vision;
    if (p->max_batch < 1 || p->tap1 < 0 || p->tap1 >= c->layers || p->tap2 < 0 || p->tap2 >= c->layers) {
        PAD_LOG_ERROR("vit: bad parameters: max_batch %d (>= 1), taps %d and %d (each in [0, %d))", p->max_batch,
                      p->tap1, p->tap2, c->layers);
        return PAD_ERR_INVALID_ARG;
    }
    if (c->heads * c->head_dim != c->width || c->grid * c->patch != c->image_size ||
        c->tokens != 1 + c->grid * c->grid) {
        PAD_LOG_ERROR("vit: inconsistent vision configuration (width %d, heads %d x %d, image %d, patch %d)", c->width,
                      c->heads, c->head_dim, c->image_size, c->patch);
        return PAD_ERR_INVALID_ARG;
    }
    pad_vit *vit = (pad_vit *)calloc(1, sizeof *vit);
    if (!vit) return PAD_ERR_OOM;
    vit->be = be;
    vit->w = w;
    vit->cfg = *c;
    vit->E = w->cfg.embed_dim;
    vit->max_batch = p->max_batch;
    vit->tap1 = p->tap1;
    vit->tap2 = p->tap2;
    const size_t Bm = (size_t)p->max_batch, T = (size_t)c->tokens, D = (size_t)c->width, H = (size_t)c->mlp;
    const size_t GG = (size_t)c->grid * c->grid, S = (size_t)c->image_size, E = (size_t)vit->E, f = sizeof(float);
    struct {
        float **slot;
        size_t n;
    } plan[] = {
        {&vit->x_ori, Bm * T * D}, {&vit->x_vv, Bm * T * D},   {&vit->ln, Bm * T * D},      {&vit->qkv, Bm * T * 3 * D},
        {&vit->a_qk, Bm * T * D},  {&vit->a_vv, Bm * T * D},   {&vit->hid, Bm * T * H},     {&vit->pix, Bm * 3 * S * S},
        {&vit->o_cls, Bm * E},     {&vit->o_tok, Bm * GG * E}, {&vit->o_mid1, Bm * GG * D}, {&vit->o_mid2, Bm * GG * D},
    };
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
        if (!(*plan[i].slot = (float *)pad_buf_alloc(be, plan[i].n * f))) {
            pad_vit_free(vit);
            return be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
        }
    int32_t *h = (int32_t *)malloc(Bm * GG * sizeof(int32_t));
    vit->idx_patch = (int32_t *)pad_buf_alloc(be, Bm * GG * sizeof(int32_t));
    vit->idx_cls = (int32_t *)pad_buf_alloc(be, Bm * sizeof(int32_t));
    pad_status st = h && vit->idx_patch && vit->idx_cls ? PAD_OK : be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    if (st == PAD_OK) {
        for (size_t b = 0; b < Bm; b++)
            for (size_t j = 0; j < GG; j++)
                h[b * GG + j] = (int32_t)(b * T + 1 + j);
        st = pad_buf_upload(be, vit->idx_patch, h, Bm * GG * sizeof(int32_t));
    }
    if (st == PAD_OK) {
        for (size_t b = 0; b < Bm; b++)
            h[b] = (int32_t)(b * T);
        st = pad_buf_upload(be, vit->idx_cls, h, Bm * sizeof(int32_t));
    }
    free(h);
    if (st != PAD_OK) {
        pad_vit_free(vit);
        return st;
    }
    *out = vit;
    return PAD_OK;
}

// out(B,R,N) (+)= inp(B,R,K) @ w(N,K)^T + bias(N), as one GEMM per image (a strided batch): every image is
// computed with the same sizes whatever B is, so its results do not depend on the batch (a BLAS may round a row
// differently depending on the problem it is part of: the CUDA backend runs such a batch as one cuBLAS call per
// image by default, see PAD_CUDA_GEMM_* in backend.h).
// With the backend's fast kernels: one GEMM over the B*R rows with the bias fused (pad_op_linear_rows; on CUDA a
// cuBLASLt algorithm pinned independently of the row count, so that too is independent of the batch).
static pad_status linear_imgs(pad_vit *vit, float *out, const float *inp, const float *w, const float *bias, int B,
                              int R, int K, int N, bool accumulate) {
    if (vit->be->fast_kernels) return pad_op_linear_rows(vit->be, out, inp, w, bias, B * R, K, N, accumulate);
    PAD_TRY(pad_op_gemm(vit->be, false, true, R, N, K, 1.0f, inp, K, (long long)R * K, w, K, 0,
                        accumulate ? 1.0f : 0.0f, out, N, (long long)R * N, B));
    return bias ? pad_op_add_rows(vit->be, out, bias, B * R, N, 1) : PAD_OK;
}

// dst(B,G*G,D)[b] = x(B,T,D)[b, 1:, :] (the patch rows of each image).
static pad_status copy_patch_rows(pad_vit *vit, float *dst, const float *x, int B) {
    return pad_op_gather_rows(vit->be, dst, x, vit->idx_patch, B * (vit->cfg.tokens - 1), vit->cfg.width);
}

pad_status pad_vit_forward(pad_vit *vit, const float *pixels, int B, const pad_vit_out *out) {
    if (B == 0) return PAD_OK;
    if (B < 0 || B > vit->max_batch || !pixels || !out) {
        PAD_LOG_ERROR("vit: forward of %d images with a context for at most %d", B, vit->max_batch);
        return PAD_ERR_INVALID_ARG;
    }
    pad_backend *be = vit->be;
    const pad_clip_weights *w = vit->w;
    const pad_vision_cfg *c = &vit->cfg;
    const int T = c->tokens, D = c->width, H = c->mlp, NH = c->heads, HS = c->head_dim, GG = c->grid * c->grid;
    const int E = vit->E, L = c->layers, M = B * T;
    const bool want_final = out->cls || out->tokens, want_vv = out->tokens != NULL;
    // blocks to run: all of them for cls/tokens, else up to the last wanted tap
    int n_blocks = 0;
    if (want_final)
        n_blocks = L;
    else {
        if (out->mid1) n_blocks = vit->tap1 + 1;
        if (out->mid2 && vit->tap2 + 1 > n_blocks) n_blocks = vit->tap2 + 1;
    }
    if (n_blocks == 0) return PAD_OK; // nothing wanted

    // x_0 = ln_pre(class/patch embeddings + positions), the input of both streams
    PAD_TRY(pad_op_patch_embed(be, vit->x_ori, pixels, w->conv1_w, w->class_emb, w->vis_pos, B, c->image_size, c->patch,
                               D));
    PAD_TRY(pad_op_layernorm(be, vit->x_ori, NULL, NULL, vit->x_ori, w->ln_pre_w, w->ln_pre_b, M, D, LN_EPS));
    if (want_vv) PAD_TRY(pad_buf_copy(be, vit->x_vv, vit->x_ori, (size_t)M * D * sizeof(float)));

    float *xc = vit->a_qk; // (B,D) CLS rows of x_ori for the final block's MLP (a_qk is free by then)
    for (int l = 0; l < n_blocks; l++) {
        const pad_block_weights *k = &w->vis[l];
        // attention sub-layer, both paths from ln_1(x_ori)
        PAD_TRY(pad_op_layernorm(be, vit->ln, NULL, NULL, vit->x_ori, k->ln1_w, k->ln1_b, M, D, LN_EPS));
        PAD_TRY(linear_imgs(vit, vit->qkv, vit->ln, k->in_proj_w, k->in_proj_b, B, T, D, 3 * D, false));
        PAD_TRY(pad_op_attention_dual(be, vit->a_qk, want_vv ? vit->a_vv : NULL, vit->qkv, B, T, NH, HS));
        PAD_TRY(linear_imgs(vit, vit->x_ori, vit->a_qk, k->out_proj_w, k->out_proj_b, B, T, D, D, true));
        if (want_vv) PAD_TRY(linear_imgs(vit, vit->x_vv, vit->a_vv, k->out_proj_w, k->out_proj_b, B, T, D, D, true));
        // memory-bank taps: after the attention residual, before the MLP
        if (l == vit->tap1 && out->mid1) PAD_TRY(copy_patch_rows(vit, out->mid1, vit->x_ori, B));
        if (l == vit->tap2 && out->mid2) PAD_TRY(copy_patch_rows(vit, out->mid2, vit->x_ori, B));
        // MLP sub-layer on the original path
        if (l < n_blocks - 1) {
            PAD_TRY(pad_op_layernorm(be, vit->ln, NULL, NULL, vit->x_ori, k->ln2_w, k->ln2_b, M, D, LN_EPS));
            PAD_TRY(linear_imgs(vit, vit->hid, vit->ln, k->fc_w, NULL, B, T, D, H, false));
            PAD_TRY(pad_op_mlp_act(be, w->cfg.act, vit->hid, vit->hid, k->fc_b, M, H));
            PAD_TRY(linear_imgs(vit, vit->x_ori, vit->hid, k->proj_w, k->proj_b, B, T, H, D, true));
        } else if (want_final) { // last block: only the CLS rows of x_ori are used afterwards
            PAD_TRY(pad_op_gather_rows(be, xc, vit->x_ori, vit->idx_cls, B, D));
            PAD_TRY(pad_op_layernorm(be, vit->ln, NULL, NULL, xc, k->ln2_w, k->ln2_b, B, D, LN_EPS));
            PAD_TRY(linear_imgs(vit, vit->hid, vit->ln, k->fc_w, NULL, B, 1, D, H, false));
            PAD_TRY(pad_op_mlp_act(be, w->cfg.act, vit->hid, vit->hid, k->fc_b, B, H));
            PAD_TRY(linear_imgs(vit, xc, vit->hid, k->proj_w, k->proj_b, B, 1, H, D, true));
        }
    }
    if (!want_final) return PAD_OK;

    // cls = ln_post(x_ori[CLS]) @ proj (the official code first copies x_ori[CLS] into x_vv[CLS], then reads it there)
    if (out->cls) {
        PAD_TRY(pad_op_layernorm(be, vit->ln, NULL, NULL, xc, w->ln_post_w, w->ln_post_b, B, D, LN_EPS));
        PAD_TRY(
            pad_op_gemm(be, false, false, 1, E, D, 1.0f, vit->ln, D, D, w->vis_proj, E, 0, 0.0f, out->cls, E, E, B));
    }
    // tokens = ln_post(x_vv[patches]) @ proj, one strided GEMM over the images (skipping each CLS row)
    if (out->tokens) {
        PAD_TRY(pad_op_layernorm(be, vit->ln, NULL, NULL, vit->x_vv, w->ln_post_w, w->ln_post_b, M, D, LN_EPS));
        PAD_TRY(pad_op_gemm(be, false, false, GG, E, D, 1.0f, vit->ln + D, D, (long long)T * D, w->vis_proj, E, 0, 0.0f,
                            out->tokens, E, (long long)GG * E, B));
    }
    return PAD_OK;
}

static pad_vit_out out_offset(const pad_vit_out *o, const pad_vit *vit, size_t i0) {
    const size_t GG = (size_t)vit->cfg.grid * vit->cfg.grid, D = (size_t)vit->cfg.width, E = (size_t)vit->E;
    pad_vit_out r = {
        o->cls ? o->cls + i0 * E : NULL,
        o->tokens ? o->tokens + i0 * GG * E : NULL,
        o->mid1 ? o->mid1 + i0 * GG * D : NULL,
        o->mid2 ? o->mid2 + i0 * GG * D : NULL,
    };
    return r;
}

pad_status pad_vit_forward_chunked(pad_vit *vit, const float *pixels, int N, const pad_vit_out *out) {
    const size_t img = 3 * (size_t)vit->cfg.image_size * vit->cfg.image_size;
    for (int i0 = 0; i0 < N; i0 += vit->max_batch) {
        const int B = N - i0 < vit->max_batch ? N - i0 : vit->max_batch;
        pad_vit_out o = out_offset(out, vit, (size_t)i0);
        PAD_TRY(pad_vit_forward(vit, pixels + (size_t)i0 * img, B, &o));
    }
    return PAD_OK;
}

pad_status pad_vit_encode_host(pad_vit *vit, const float *pixels, int N, const pad_vit_out *out) {
    pad_backend *be = vit->be;
    const size_t img = 3 * (size_t)vit->cfg.image_size * vit->cfg.image_size, f = sizeof(float);
    const size_t GG = (size_t)vit->cfg.grid * vit->cfg.grid, D = (size_t)vit->cfg.width, E = (size_t)vit->E;
    const pad_vit_out dev = {
        out->cls ? vit->o_cls : NULL,
        out->tokens ? vit->o_tok : NULL,
        out->mid1 ? vit->o_mid1 : NULL,
        out->mid2 ? vit->o_mid2 : NULL,
    };
    for (int i0 = 0; i0 < N; i0 += vit->max_batch) {
        const size_t B = (size_t)(N - i0 < vit->max_batch ? N - i0 : vit->max_batch);
        PAD_TRY(pad_buf_upload(be, vit->pix, pixels + (size_t)i0 * img, B * img * f));
        PAD_TRY(pad_vit_forward(vit, vit->pix, (int)B, &dev));
        pad_vit_out h = out_offset(out, vit, (size_t)i0);
        if (h.cls) PAD_TRY(pad_buf_download(be, h.cls, dev.cls, B * E * f));
        if (h.tokens) PAD_TRY(pad_buf_download(be, h.tokens, dev.tokens, B * GG * E * f));
        if (h.mid1) PAD_TRY(pad_buf_download(be, h.mid1, dev.mid1, B * GG * D * f));
        if (h.mid2) PAD_TRY(pad_buf_download(be, h.mid2, dev.mid2, B * GG * D * f));
    }
    return PAD_OK;
}
