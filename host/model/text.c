/* text.c - the CLIP text tower on input embeddings and its input-gradient backward (docs/clip.md#text-tower,
 * #attention-backward; OpenCLIP CLIP.encode_text, PromptAD CLIPAD/model.py encode_text_embeddings). Pre-LN residual
 * blocks with a causal mask, exact GELU (QuickGELU for OpenAI's weights, w->cfg.act), LayerNorm eps 1e-5, EOT pooling,
 * ln_final, text_projection. All activations live in one allocation made at creation; forward and backward only run
 * backend ops. */
#include "text.h"

#include "log.h"

#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f

typedef struct text_layer_acts {
    float *x;             // (P, L, C) input of the block (residual stream)
    float *mean1, *rstd1; // (P*L) ln_1 statistics
    float *qkv;           // (P, L, 3C)
    float *att;           // (P, NH, L, L) attention probabilities
    float *xmid;          // (P, L, C) x + attention branch
    float *mean2, *rstd2; // (P*L) ln_2 statistics
    float *fc;            // (P, L, H) c_fc output before GELU
} text_layer_acts;

struct pad_text_encoder {
    pad_backend *be;
    const pad_clip_weights *w;
    int C, H, NH, HS, E, n_layers;
    int max_prompts, max_len;
    int P, L;               // current batch
    float *block;           // the single allocation holding everything below
    text_layer_acts *layer; // (n_layers)
    float *x_final;         // (P, L, C) output of the last block
    int32_t *eot_rows;      // (P) device: p * L + eot[p]
    float *x_eot;           // (P, C) EOT rows of x_final
    float *meanf, *rstdf;   // (P) ln_final statistics
    float *lnf;             // (P, C) ln_final output at EOT
    // scratch shared by forward and backward
    float *ln_out;  // (P, L, C) LayerNorm output / backward: d(LN output)
    float *att_out; // (P, L, C) attention output before out_proj / backward: d(attention output)
    float *hidden;  // (P, L, H) GELU output / backward: d(c_fc output)
    float *dqkv;    // (P, L, 3C)
    float *dlnf;    // (P, C)
    float *dxe;     // (P, C)
};

// ----------------------------------------------------------------------------
// creation

// Carves n floats from a bump allocator; offsets are rounded to 64 floats (256 bytes).
static float *carve(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += (n + 63) & ~(size_t)63;
    return p;
}

// Lays out every buffer; with base == NULL only computes the size.
static size_t layout(pad_text_encoder *te, float *base) {
    const size_t Pm = (size_t)te->max_prompts, Mm = Pm * (size_t)te->max_len, C = (size_t)te->C, H = (size_t)te->H;
    const size_t att = Pm * (size_t)te->NH * (size_t)te->max_len * (size_t)te->max_len;
    size_t off = 0;
    for (int l = 0; l < te->n_layers; l++) {
        text_layer_acts a;
        a.x = carve(base, &off, Mm * C);
        a.mean1 = carve(base, &off, Mm);
        a.rstd1 = carve(base, &off, Mm);
        a.qkv = carve(base, &off, Mm * 3 * C);
        a.att = carve(base, &off, att);
        a.xmid = carve(base, &off, Mm * C);
        a.mean2 = carve(base, &off, Mm);
        a.rstd2 = carve(base, &off, Mm);
        a.fc = carve(base, &off, Mm * H);
        if (base) te->layer[l] = a;
    }
    float *x_final = carve(base, &off, Mm * C);
    float *eot = carve(base, &off, Pm); // int32 and float have the same size
    float *x_eot = carve(base, &off, Pm * C);
    float *meanf = carve(base, &off, Pm);
    float *rstdf = carve(base, &off, Pm);
    float *lnf = carve(base, &off, Pm * C);
    float *ln_out = carve(base, &off, Mm * C);
    float *att_out = carve(base, &off, Mm * C);
    float *hidden = carve(base, &off, Mm * H);
    float *dqkv = carve(base, &off, Mm * 3 * C);
    float *dlnf = carve(base, &off, Pm * C);
    float *dxe = carve(base, &off, Pm * C);
    if (base) {
        te->x_final = x_final;
        te->eot_rows = (int32_t *)(void *)eot;
        te->x_eot = x_eot;
        te->meanf = meanf;
        te->rstdf = rstdf;
        te->lnf = lnf;
        te->ln_out = ln_out;
        te->att_out = att_out;
        te->hidden = hidden;
        te->dqkv = dqkv;
        te->dlnf = dlnf;
        te->dxe = dxe;
    }
    return off;
}

size_t pad_text_encoder_bytes(const pad_clip_weights *w, int max_prompts, int max_len) {
    if (!w || max_prompts <= 0 || max_len <= 0) return 0;
    const pad_text_cfg *tc = &w->cfg.text;
    pad_text_encoder te = {.C = tc->width,
                           .H = tc->mlp,
                           .NH = tc->heads,
                           .HS = tc->head_dim,
                           .E = w->cfg.embed_dim,
                           .n_layers = tc->layers,
                           .max_prompts = max_prompts,
                           .max_len = max_len};
    return layout(&te, NULL) * sizeof(float);
}

pad_status pad_text_encoder_create(pad_text_encoder **out, const pad_clip_weights *w, int max_prompts, int max_len) {
    *out = NULL;
    if (!w || !w->be || !w->txt || !w->tok_emb) {
        PAD_LOG_ERROR("text encoder: the weights have no text tower on a backend (load with PAD_WEIGHTS_TEXT and "
                      "pad_weights_to_backend)");
        return PAD_ERR_INVALID_ARG;
    }
    const pad_text_cfg *tc = &w->cfg.text;
    if (max_prompts <= 0 || max_len <= 0 || max_len > tc->context) {
        PAD_LOG_ERROR("text encoder: bad sizes: %d prompts of up to %d tokens (context length %d)", max_prompts,
                      max_len, tc->context);
        return PAD_ERR_INVALID_ARG;
    }
    pad_text_encoder *te = (pad_text_encoder *)calloc(1, sizeof *te);
    if (!te) return PAD_ERR_OOM;
    te->be = w->be;
    te->w = w;
    te->C = tc->width;
    te->H = tc->mlp;
    te->NH = tc->heads;
    te->HS = tc->head_dim;
    te->E = w->cfg.embed_dim;
    te->n_layers = tc->layers;
    te->max_prompts = max_prompts;
    te->max_len = max_len;
    te->layer = (text_layer_acts *)calloc((size_t)tc->layers, sizeof *te->layer);
    if (!te->layer) {
        free(te);
        return PAD_ERR_OOM;
    }
    const size_t n = layout(te, NULL);
    te->block = (float *)pad_buf_alloc(te->be, n * sizeof(float));
    if (!te->block) {
        PAD_LOG_ERROR("text encoder: cannot allocate %.1f MiB of activations for %d prompts x %d tokens",
                      (double)n * 4.0 / (1024.0 * 1024.0), max_prompts, max_len);
        pad_text_encoder_free(te);
        return PAD_ERR_OOM;
    }
    layout(te, te->block);
    *out = te;
    return PAD_OK;
}

void pad_text_encoder_free(pad_text_encoder *te) {
    if (!te) return;
    pad_buf_free(te->be, te->block);
    free(te->layer);
    free(te);
}

pad_status pad_text_encoder_set_batch(pad_text_encoder *te, const int32_t *eot, int P) {
    if (P <= 0 || P > te->max_prompts) {
        PAD_LOG_ERROR("text encoder: batch of %d sequences (capacity %d)", P, te->max_prompts);
        return PAD_ERR_INVALID_ARG;
    }
    int L = 0;
    for (int p = 0; p < P; p++) {
        if (eot[p] < 0 || eot[p] >= te->max_len) {
            PAD_LOG_ERROR("text encoder: sequence %d has its EOT at position %d (capacity %d tokens)", p, eot[p],
                          te->max_len);
            return PAD_ERR_INVALID_ARG;
        }
        if (eot[p] + 1 > L) L = eot[p] + 1;
    }
    int32_t *rows = (int32_t *)malloc((size_t)P * sizeof *rows);
    if (!rows) return PAD_ERR_OOM;
    for (int p = 0; p < P; p++)
        rows[p] = p * L + eot[p];
    pad_status st = pad_buf_upload(te->be, te->eot_rows, rows, (size_t)P * sizeof *rows);
    free(rows);
    if (st != PAD_OK) return st;
    te->P = P;
    te->L = L;
    return PAD_OK;
}

int pad_text_encoder_batch(const pad_text_encoder *te) {
    return te->P;
}

int pad_text_encoder_seq_len(const pad_text_encoder *te) {
    return te->L;
}

// ----------------------------------------------------------------------------
// forward / backward

pad_status pad_text_encoder_forward(pad_text_encoder *te, float *feat, const float *emb) {
    if (te->P <= 0) {
        PAD_LOG_ERROR("text encoder: forward before set_batch");
        return PAD_ERR_INVALID_ARG;
    }
    pad_backend *be = te->be;
    const pad_clip_weights *w = te->w;
    const int P = te->P, L = te->L, M = P * L, C = te->C, H = te->H;
    const size_t MC = (size_t)M * C;
    PAD_TRY(pad_buf_copy(be, te->layer[0].x, emb, MC * sizeof(float))); // (P, L, C) token embeddings
    PAD_TRY(pad_op_add_rows(be, te->layer[0].x, w->txt_pos, M, C, L));  // + positional embedding rows 0..L-1
    for (int l = 0; l < te->n_layers; l++) {
        const pad_block_weights *bw = &w->txt[l];
        text_layer_acts *a = &te->layer[l];
        float *x_next = l + 1 < te->n_layers ? te->layer[l + 1].x : te->x_final;
        PAD_TRY(pad_op_layernorm(be, te->ln_out, a->mean1, a->rstd1, a->x, bw->ln1_w, bw->ln1_b, M, C, LN_EPS));
        PAD_TRY(pad_op_linear(be, a->qkv, te->ln_out, bw->in_proj_w, bw->in_proj_b, M, C, 3 * C, false)); // (M, 3C)
        PAD_TRY(pad_op_attention(be, te->att_out, a->att, a->qkv, P, L, te->NH, te->HS, true));           // (M, C)
        PAD_TRY(pad_buf_copy(be, a->xmid, a->x, MC * sizeof(float)));
        PAD_TRY(pad_op_linear(be, a->xmid, te->att_out, bw->out_proj_w, bw->out_proj_b, M, C, C, true)); // residual
        PAD_TRY(pad_op_layernorm(be, te->ln_out, a->mean2, a->rstd2, a->xmid, bw->ln2_w, bw->ln2_b, M, C, LN_EPS));
        PAD_TRY(pad_op_linear(be, a->fc, te->ln_out, bw->fc_w, bw->fc_b, M, C, H, false)); // (M, H) c_fc
        PAD_TRY(pad_op_mlp_act(be, w->cfg.act, te->hidden, a->fc, NULL, M, H));
        PAD_TRY(pad_buf_copy(be, x_next, a->xmid, MC * sizeof(float)));
        PAD_TRY(pad_op_linear(be, x_next, te->hidden, bw->proj_w, bw->proj_b, M, H, C, true)); // residual + c_proj
    }
    PAD_TRY(pad_op_gather_rows(be, te->x_eot, te->x_final, te->eot_rows, P, C)); // (P, C) EOT rows
    PAD_TRY(pad_op_layernorm(be, te->lnf, te->meanf, te->rstdf, te->x_eot, w->ln_final_w, w->ln_final_b, P, C, LN_EPS));
    return pad_op_matmul(be, feat, te->lnf, w->txt_proj, P, C, te->E); // (P, E)
}

pad_status pad_text_encoder_backward(pad_text_encoder *te, float *demb, const float *dfeat) {
    if (te->P <= 0) {
        PAD_LOG_ERROR("text encoder: backward before set_batch and forward");
        return PAD_ERR_INVALID_ARG;
    }
    pad_backend *be = te->be;
    const pad_clip_weights *w = te->w;
    const int P = te->P, L = te->L, M = P * L, C = te->C, H = te->H;
    // feat = lnf @ P_text: dlnf(P, C) = dfeat(P, E) @ P_text(C, E)^T
    PAD_TRY(pad_op_gemm(be, false, true, P, C, te->E, 1.0f, dfeat, te->E, 0, w->txt_proj, te->E, 0, 0.0f, te->dlnf, C,
                        0, 1));
    PAD_TRY(pad_buf_zero(be, te->dxe, (size_t)P * C * sizeof(float)));
    PAD_TRY(pad_op_layernorm_backward(be, te->dxe, te->dlnf, te->x_eot, w->ln_final_w, te->meanf, te->rstdf, P, C));
    // EOT gather: the gradient lands in row p*L + eot[p] only; demb carries dx through the blocks
    PAD_TRY(pad_buf_zero(be, demb, (size_t)M * C * sizeof(float)));
    PAD_TRY(pad_op_scatter_add_rows(be, demb, te->dxe, te->eot_rows, P, C, M));
    for (int l = te->n_layers - 1; l >= 0; l--) {
        const pad_block_weights *bw = &w->txt[l];
        text_layer_acts *a = &te->layer[l];
        // x_next = xmid + c_proj(act(c_fc(ln_2(xmid))))
        PAD_TRY(pad_op_linear_backward(be, te->hidden, demb, bw->proj_w, M, H, C, false)); // (M, H)
        PAD_TRY(pad_op_mlp_act_backward(be, w->cfg.act, te->hidden, te->hidden, a->fc, (size_t)M * H));
        PAD_TRY(pad_op_linear_backward(be, te->ln_out, te->hidden, bw->fc_w, M, C, H, false)); // (M, C)
        PAD_TRY(pad_op_layernorm_backward(be, demb, te->ln_out, a->xmid, bw->ln2_w, a->mean2, a->rstd2, M, C));
        // xmid = x + out_proj(attention(in_proj(ln_1(x))))
        PAD_TRY(pad_op_linear_backward(be, te->att_out, demb, bw->out_proj_w, M, C, C, false)); // (M, C)
        PAD_TRY(pad_op_attention_backward(be, te->dqkv, te->att_out, a->qkv, a->att, P, L, te->NH, te->HS, true));
        PAD_TRY(pad_op_linear_backward(be, te->ln_out, te->dqkv, bw->in_proj_w, M, C, 3 * C, false)); // (M, C)
        PAD_TRY(pad_op_layernorm_backward(be, demb, te->ln_out, a->x, bw->ln1_w, a->mean1, a->rstd1, M, C));
    }
    return PAD_OK; // the positional embedding add passes the gradient through unchanged
}

// ----------------------------------------------------------------------------
// token ids

int pad_text_eot_index(const int32_t *ids, int n) {
    if (n <= 0) return -1;
    int best = 0;
    for (int i = 1; i < n; i++)
        if (ids[i] > ids[best]) best = i;
    return best;
}

pad_status pad_text_encode_ids(const pad_clip_weights *w, const int32_t *ids, int n, int ctx, float *feat_host) {
    if (!w || !w->be || !w->txt) {
        PAD_LOG_ERROR("encode text: the weights have no text tower on a backend");
        return PAD_ERR_INVALID_ARG;
    }
    if (n <= 0 || ctx <= 0 || ctx > w->cfg.text.context) {
        PAD_LOG_ERROR("encode text: bad sizes: %d sequences of %d tokens (context length %d)", n, ctx,
                      w->cfg.text.context);
        return PAD_ERR_INVALID_ARG;
    }
    const int vocab = w->cfg.text.vocab, C = w->cfg.text.width, E = w->cfg.embed_dim;
    int32_t *eot = (int32_t *)malloc((size_t)n * sizeof *eot);
    if (!eot) return PAD_ERR_OOM;
    int L = 0;
    for (int p = 0; p < n; p++) {
        for (int t = 0; t < ctx; t++)
            if (ids[(size_t)p * ctx + t] < 0 || ids[(size_t)p * ctx + t] >= vocab) {
                PAD_LOG_ERROR("encode text: sequence %d: token id %d at position %d is outside the vocabulary "
                              "(size %d)",
                              p, ids[(size_t)p * ctx + t], t, vocab);
                free(eot);
                return PAD_ERR_INVALID_ARG;
            }
        eot[p] = pad_text_eot_index(ids + (size_t)p * ctx, ctx);
        if (eot[p] + 1 > L) L = eot[p] + 1;
    }
    pad_backend *be = w->be;
    pad_text_encoder *te = NULL;
    int32_t *rows = NULL, *rows_dev = NULL;
    float *emb = NULL, *feat = NULL;
    pad_status st;
    PAD_TRY_GOTO(st, pad_text_encoder_create(&te, w, n, L), done);
    PAD_TRY_GOTO(st, pad_text_encoder_set_batch(te, eot, n), done);
    // emb(n, L, C) = tok_emb[ids[p, t]] for t < L
    st = PAD_ERR_OOM;
    rows = (int32_t *)malloc((size_t)n * L * sizeof *rows);
    rows_dev = (int32_t *)pad_buf_alloc(be, (size_t)n * L * sizeof *rows);
    emb = (float *)pad_buf_alloc(be, (size_t)n * L * C * sizeof(float));
    feat = (float *)pad_buf_alloc(be, (size_t)n * E * sizeof(float));
    if (!rows || !rows_dev || !emb || !feat) goto done;
    for (int p = 0; p < n; p++)
        for (int t = 0; t < L; t++)
            rows[(size_t)p * L + t] = ids[(size_t)p * ctx + t];
    PAD_TRY_GOTO(st, pad_buf_upload(be, rows_dev, rows, (size_t)n * L * sizeof *rows), done);
    PAD_TRY_GOTO(st, pad_op_gather_rows(be, emb, w->tok_emb, rows_dev, n * L, C), done);
    PAD_TRY_GOTO(st, pad_text_encoder_forward(te, feat, emb), done);
    st = pad_buf_download(be, feat_host, feat, (size_t)n * E * sizeof(float));
done:
    pad_buf_free(be, feat);
    pad_buf_free(be, emb);
    pad_buf_free(be, rows_dev);
    free(rows);
    free(eot);
    pad_text_encoder_free(te);
    return st;
}
