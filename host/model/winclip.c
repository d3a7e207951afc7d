/* winclip.c - WinCLIP / WinCLIP+ scoring and the window forwards (see winclip.h and docs/winclip.md).
 *
 * Window forward: the class/patch/positional embeddings of each image go through ln_pre once (a per-row op, so this
 * equals anomalib's ln_pre of each masked token set); each window's token set (CLS, then its k*k patches) is
 * gathered from those rows by a precomputed index table, and the windows of all images of the batch run through the
 * stock transformer blocks together, at most max_rows token rows per launch: every linear layer is one GEMM over
 * all rows, the attention one launch over all windows. In the last block only the CLS rows go through the MLP
 * (nothing else is read afterwards). The full-image forward uses the same code with T = 1 + G*G and all rows kept
 * (the patch embeddings are its ln_post rows).
 *
 * Scoring: text scores with pad_op_text_score (the sigmoid of tau (cos_a - cos_n) with tau = 1/temperature, equal
 * to the two-way softmax of the cosines over the temperature), few-shot distances with pad_op_knn_min (min over the
 * references of (1 - cos) / 2 on L2-normalised rows); both on the backend, the small per-window results are then
 * aggregated on the host in double. */
#include "winclip.h"

#include "log.h"
#include "score.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5f

struct pad_winclip {
    pad_backend *be;
    const pad_clip_weights *w;
    pad_winclip_params p;
    int G, P, T, D, E, H, S, NH, HS;
    int n_win[PAD_WINCLIP_MAX_SCALES];      // windows per image
    int32_t *masks[PAD_WINCLIP_MAX_SCALES]; // host (n_win, k*k)
    int rows;                               // rows of the activation buffers: max(max_batch*T, max_rows)
    // activations (backend), `rows` rows each
    float *emb, *x, *ln, *qkv, *att, *hid, *xc;
    float *pix; // (Bm,3,S,S)
    // index tables (backend int32)
    int32_t *idx_win[PAD_WINCLIP_MAX_SCALES]; // (Bm*n_win*Tw): row of emb for token t of window w of image b
    int32_t *idx_cls;                         // (rows): i * T' for the CLS rows, rebuilt per sequence length
    int idx_cls_T;                            // the T' idx_cls holds (0: none)
    int32_t *idx_patch;                       // (Bm*P): b*T + 1 + p
    // features of the current batch (backend)
    pad_winclip_feats f;
    float *scores; // (Bm * max(P, n_win)) per-row scores of one scale
    // text (backend, normalised): t_n, t_a
    float *text;
    bool have_text;
    // few-shot memory (backend, normalised)
    int k_shot;
    float *ref_patches;                         // (K*P, D)
    float *ref_windows[PAD_WINCLIP_MAX_SCALES]; // (K*n_win, E)
    float *host;                                // host staging: Bm * max(P, n_win) floats
};

// ----------------------------------------------------------------------------
// windows

int pad_winclip_n_windows(int G, int k) {
    if (k < 1 || k > G) return 0;
    return (G - k + 1) * (G - k + 1);
}

void pad_winclip_window_masks(int G, int k, int32_t *idx) {
    const int m = G - k + 1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++)
                    idx[((size_t)(i * m + j) * k + a) * k + b] = (int32_t)((i + a) * G + j + b);
}

void pad_winclip_harmonic(const float *ws, const int32_t *idx, int n, int kk, int G, double *out) {
    const int P = G * G;
    double *rec = (double *)out; // accumulate reciprocal sums in out, counts below
    int cnt[64 * 64];
    int *count = P <= 64 * 64 ? cnt : (int *)calloc((size_t)P, sizeof(int));
    if (!count) { // cannot happen for real grids; degrade to NaN rather than crash
        for (int p = 0; p < P; p++)
            out[p] = 0.0;
        return;
    }
    for (int p = 0; p < P; p++) {
        rec[p] = 0.0;
        count[p] = 0;
    }
    for (int w = 0; w < n; w++)
        for (int t = 0; t < kk; t++) {
            const int p = idx[(size_t)w * kk + t];
            rec[p] += 1.0 / (double)ws[w];
            count[p]++;
        }
    for (int p = 0; p < P; p++) {
        double r = (double)count[p] / rec[p];
        if (isnan(r) || (isinf(r) && r > 0))
            r = 0.0;
        else if (isinf(r))
            r = -FLT_MAX;
        out[p] = r;
    }
    if (count != cnt) free(count);
}

// ----------------------------------------------------------------------------
// context

pad_winclip_params pad_winclip_default_params(void) {
    pad_winclip_params p = {.max_batch = 4, .n_scales = 2, .scales = {2, 3}, .temperature = 0.07f, .max_rows = 4096};
    return p;
}

int pad_winclip_grid(const pad_winclip *wc) {
    return wc->G;
}

int pad_winclip_scale_windows(const pad_winclip *wc, int s) {
    return s >= 0 && s < wc->p.n_scales ? wc->n_win[s] : 0;
}

const int32_t *pad_winclip_masks(const pad_winclip *wc, int s) {
    return s >= 0 && s < wc->p.n_scales ? wc->masks[s] : NULL;
}

int pad_winclip_k_shot(const pad_winclip *wc) {
    return wc->k_shot;
}

static void free_refs(pad_winclip *wc) {
    pad_buf_free(wc->be, wc->ref_patches);
    wc->ref_patches = NULL;
    for (int s = 0; s < PAD_WINCLIP_MAX_SCALES; s++) {
        pad_buf_free(wc->be, wc->ref_windows[s]);
        wc->ref_windows[s] = NULL;
    }
    wc->k_shot = 0;
}

void pad_winclip_free(pad_winclip *wc) {
    if (!wc) return;
    pad_backend *be = wc->be;
    free_refs(wc);
    float *bufs[] = {wc->emb, wc->x,   wc->ln,      wc->qkv,       wc->att,    wc->hid,
                     wc->xc,  wc->pix, wc->f.image, wc->f.patches, wc->scores, wc->text};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pad_buf_free(be, bufs[i]);
    for (int s = 0; s < PAD_WINCLIP_MAX_SCALES; s++) {
        pad_buf_free(be, wc->f.windows[s]);
        pad_buf_free(be, wc->idx_win[s]);
        free(wc->masks[s]);
    }
    pad_buf_free(be, wc->idx_cls);
    pad_buf_free(be, wc->idx_patch);
    free(wc->host);
    free(wc);
}

static pad_status check_params(const pad_clip_weights *w, pad_backend *be, const pad_winclip_params *p) {
    if (!be || !w || !p) return PAD_ERR_INVALID_ARG;
    if (!(w->parts & PAD_WEIGHTS_VISION) || !w->vis) {
        PAD_LOG_ERROR("winclip: the weights have no vision tower");
        return PAD_ERR_INVALID_ARG;
    }
    if (w->be != be && !(w->be == NULL && be->kind == PAD_BACKEND_CPU)) {
        PAD_LOG_ERROR("winclip: the weights live on another backend than %s", be->ops->name);
        return PAD_ERR_INVALID_ARG;
    }
    const int G = w->cfg.vision.grid;
    bool ok = G <= 64 && p->max_batch >= 1 && p->max_batch <= 4096 && p->n_scales >= 1 &&
              p->n_scales <= PAD_WINCLIP_MAX_SCALES && p->temperature > 0.0f && isfinite(p->temperature);
    for (int s = 0; ok && s < p->n_scales; s++)
        ok = p->scales[s] >= 1 && p->scales[s] <= G;
    if (!ok) {
        PAD_LOG_ERROR("winclip: bad parameters (max_batch %d, %d scales each in [1, %d], temperature %g)", p->max_batch,
                      p->n_scales, G, (double)p->temperature);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

// Allocates n floats (backend) into *slot; false on failure.
static bool alloc_f(pad_backend *be, float **slot, size_t n) {
    return (*slot = (float *)pad_buf_alloc(be, n * sizeof(float))) != NULL;
}

// Builds and uploads the index tables (window rows per scale and patch rows).
static pad_status build_tables(pad_winclip *wc) {
    const size_t Bm = (size_t)wc->p.max_batch, T = (size_t)wc->T, P = (size_t)wc->P;
    size_t most = Bm * P;
    for (int s = 0; s < wc->p.n_scales; s++) {
        const size_t n = (size_t)wc->n_win[s], kk = (size_t)wc->p.scales[s] * wc->p.scales[s];
        if (Bm * n * (kk + 1) > most) most = Bm * n * (kk + 1);
    }
    int32_t *h = (int32_t *)malloc(most * sizeof(int32_t));
    if (!h) return PAD_ERR_OOM;
    pad_status st = PAD_OK;
    for (int s = 0; s < wc->p.n_scales && st == PAD_OK; s++) {
        const size_t n = (size_t)wc->n_win[s], kk = (size_t)wc->p.scales[s] * wc->p.scales[s], Tw = kk + 1;
        for (size_t b = 0; b < Bm; b++)
            for (size_t i = 0; i < n; i++) {
                int32_t *r = h + (b * n + i) * Tw;
                r[0] = (int32_t)(b * T);
                for (size_t t = 0; t < kk; t++)
                    r[1 + t] = (int32_t)(b * T + 1 + (size_t)wc->masks[s][i * kk + t]);
            }
        wc->idx_win[s] = (int32_t *)pad_buf_alloc(wc->be, Bm * n * Tw * sizeof(int32_t));
        st = wc->idx_win[s] ? pad_buf_upload(wc->be, wc->idx_win[s], h, Bm * n * Tw * sizeof(int32_t)) : PAD_ERR_OOM;
    }
    if (st == PAD_OK) {
        for (size_t b = 0; b < Bm; b++)
            for (size_t j = 0; j < P; j++)
                h[b * P + j] = (int32_t)(b * T + 1 + j);
        wc->idx_patch = (int32_t *)pad_buf_alloc(wc->be, Bm * P * sizeof(int32_t));
        st = wc->idx_patch ? pad_buf_upload(wc->be, wc->idx_patch, h, Bm * P * sizeof(int32_t)) : PAD_ERR_OOM;
    }
    free(h);
    if (st == PAD_OK && !(wc->idx_cls = (int32_t *)pad_buf_alloc(wc->be, (size_t)wc->rows * sizeof(int32_t))))
        st = PAD_ERR_OOM;
    return st;
}

pad_status pad_winclip_create(pad_winclip **out, pad_backend *be, const pad_clip_weights *w,
                              const pad_winclip_params *p) {
    *out = NULL;
    PAD_TRY(check_params(w, be, p));
    pad_winclip *wc = (pad_winclip *)calloc(1, sizeof *wc);
    if (!wc) return PAD_ERR_OOM;
    const pad_vision_cfg *c = &w->cfg.vision;
    wc->be = be;
    wc->w = w;
    wc->p = *p;
    if (wc->p.max_rows <= 0) wc->p.max_rows = 4096;
    wc->G = c->grid;
    wc->P = c->grid * c->grid;
    wc->T = c->tokens;
    wc->D = c->width;
    wc->H = c->mlp;
    wc->S = c->image_size;
    wc->NH = c->heads;
    wc->HS = c->head_dim;
    wc->E = w->cfg.embed_dim;
    const size_t Bm = (size_t)p->max_batch, D = (size_t)wc->D, E = (size_t)wc->E, P = (size_t)wc->P;
    size_t rows = Bm * (size_t)wc->T, most_win = P;
    for (int s = 0; s < p->n_scales; s++) {
        const int k = p->scales[s], Tw = 1 + k * k;
        wc->n_win[s] = pad_winclip_n_windows(wc->G, k);
        if ((size_t)wc->n_win[s] > most_win) most_win = (size_t)wc->n_win[s];
        // at least one window per launch
        if ((size_t)Tw > rows) rows = (size_t)Tw;
        wc->masks[s] = (int32_t *)malloc((size_t)wc->n_win[s] * k * k * sizeof(int32_t));
        if (!wc->masks[s]) {
            pad_winclip_free(wc);
            return PAD_ERR_OOM;
        }
        pad_winclip_window_masks(wc->G, k, wc->masks[s]);
    }
    if ((size_t)wc->p.max_rows > rows) rows = (size_t)wc->p.max_rows;
    wc->rows = (int)rows;
    bool ok = alloc_f(be, &wc->emb, Bm * wc->T * D) && alloc_f(be, &wc->x, rows * D) &&
              alloc_f(be, &wc->ln, rows * D) && alloc_f(be, &wc->qkv, rows * 3 * D) &&
              alloc_f(be, &wc->att, rows * D) && alloc_f(be, &wc->hid, rows * (size_t)wc->H) &&
              alloc_f(be, &wc->xc, rows * D) && alloc_f(be, &wc->pix, Bm * 3 * wc->S * wc->S) &&
              alloc_f(be, &wc->f.image, Bm * E) && alloc_f(be, &wc->f.patches, Bm * P * D) &&
              alloc_f(be, &wc->scores, Bm * most_win) && alloc_f(be, &wc->text, 2 * E);
    for (int s = 0; ok && s < p->n_scales; s++)
        ok = alloc_f(be, &wc->f.windows[s], Bm * wc->n_win[s] * E);
    wc->host = (float *)malloc(Bm * most_win * sizeof(float));
    pad_status st = ok && wc->host ? build_tables(wc) : be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    if (st != PAD_OK) {
        pad_winclip_free(wc);
        return st;
    }
    *out = wc;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// the stock transformer on token sets

// idx_cls = i * T for i < rows / T (rebuilt when T changes; an upload, outside any graph capture).
static pad_status cls_table(pad_winclip *wc, int T) {
    if (wc->idx_cls_T == T) return PAD_OK;
    const int n = wc->rows / T;
    int32_t *h = (int32_t *)malloc((size_t)n * sizeof(int32_t));
    if (!h) return PAD_ERR_OOM;
    for (int i = 0; i < n; i++)
        h[i] = (int32_t)i * T;
    pad_status st = pad_buf_upload(wc->be, wc->idx_cls, h, (size_t)n * sizeof(int32_t));
    free(h);
    if (st == PAD_OK) wc->idx_cls_T = T;
    return st;
}

// N sequences of T tokens in wc->x (after ln_pre) through all blocks, then ln_post. all_rows: every row is kept
// (result in wc->ln, (N*T, D)); otherwise only the CLS rows (result in wc->ln, (N, D)). Then, when cls_out is not
// NULL, cls_out(N,E) = ln_post(CLS) @ proj.
static pad_status blocks(pad_winclip *wc, int N, int T, bool all_rows, float *cls_out) {
    pad_backend *be = wc->be;
    const pad_clip_weights *w = wc->w;
    const int D = wc->D, H = wc->H, M = N * T, L = wc->w->cfg.vision.layers;
    if (!all_rows) PAD_TRY(cls_table(wc, T));
    for (int l = 0; l < L; l++) {
        const pad_block_weights *k = &w->vis[l];
        PAD_TRY(pad_op_layernorm(be, wc->ln, NULL, NULL, wc->x, k->ln1_w, k->ln1_b, M, D, LN_EPS));
        PAD_TRY(pad_op_linear(be, wc->qkv, wc->ln, k->in_proj_w, k->in_proj_b, M, D, 3 * D, false));
        PAD_TRY(pad_op_attention(be, wc->att, NULL, wc->qkv, N, T, wc->NH, wc->HS, false));
        PAD_TRY(pad_op_linear(be, wc->x, wc->att, k->out_proj_w, k->out_proj_b, M, D, D, true));
        float *xm = wc->x;
        int Mm = M;
        if (l == L - 1 && !all_rows) { // last block: the MLP of the CLS rows only
            PAD_TRY(pad_op_gather_rows(be, wc->xc, wc->x, wc->idx_cls, N, D));
            xm = wc->xc;
            Mm = N;
        }
        PAD_TRY(pad_op_layernorm(be, wc->ln, NULL, NULL, xm, k->ln2_w, k->ln2_b, Mm, D, LN_EPS));
        PAD_TRY(pad_op_linear(be, wc->hid, wc->ln, k->fc_w, NULL, Mm, D, H, false));
        PAD_TRY(pad_op_mlp_act(be, w->cfg.act, wc->hid, wc->hid, k->fc_b, Mm, H));
        PAD_TRY(pad_op_linear(be, xm, wc->hid, k->proj_w, k->proj_b, Mm, H, D, true));
    }
    const float *xf = all_rows ? wc->x : wc->xc;
    const int Mf = all_rows ? M : N;
    PAD_TRY(pad_op_layernorm(be, wc->ln, NULL, NULL, xf, w->ln_post_w, w->ln_post_b, Mf, D, LN_EPS));
    if (!cls_out) return PAD_OK;
    // CLS rows: every T-th row when all rows were kept, else consecutive
    return pad_op_gemm(be, false, false, N, wc->E, D, 1.0f, wc->ln, all_rows ? T * D : D, 0, w->vis_proj, wc->E, 0,
                       0.0f, cls_out, wc->E, 0, 1);
}

pad_status pad_winclip_encode(pad_winclip *wc, const float *pixels, int B, const pad_winclip_feats *out) {
    if (B == 0) return PAD_OK;
    if (B < 0 || B > wc->p.max_batch || !pixels || !out) {
        PAD_LOG_ERROR("winclip: encode of %d images with a context for at most %d", B, wc->p.max_batch);
        return PAD_ERR_INVALID_ARG;
    }
    pad_backend *be = wc->be;
    const pad_clip_weights *w = wc->w;
    const int T = wc->T, D = wc->D, P = wc->P;
    // embeddings + ln_pre: the input of the full forward and of every window
    PAD_TRY(pad_op_patch_embed(be, wc->emb, pixels, w->conv1_w, w->class_emb, w->vis_pos, B, wc->S, w->cfg.vision.patch,
                               D));
    PAD_TRY(pad_op_layernorm(be, wc->emb, NULL, NULL, wc->emb, w->ln_pre_w, w->ln_pre_b, B * T, D, LN_EPS));
    if (out->image || out->patches) {
        PAD_TRY(pad_buf_copy(be, wc->x, wc->emb, (size_t)B * T * D * sizeof(float)));
        PAD_TRY(blocks(wc, B, T, true, out->image));
        if (out->patches) PAD_TRY(pad_op_gather_rows(be, out->patches, wc->ln, wc->idx_patch, B * P, D));
    }
    for (int s = 0; s < wc->p.n_scales; s++) {
        if (!out->windows[s]) continue;
        const int k = wc->p.scales[s], Tw = 1 + k * k, nseq = B * wc->n_win[s], per = wc->rows / Tw;
        for (int i0 = 0; i0 < nseq; i0 += per) {
            const int ns = nseq - i0 < per ? nseq - i0 : per;
            PAD_TRY(pad_op_gather_rows(be, wc->x, wc->emb, wc->idx_win[s] + (size_t)i0 * Tw, ns * Tw, D));
            PAD_TRY(blocks(wc, ns, Tw, false, out->windows[s] + (size_t)i0 * wc->E));
        }
    }
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// text and references

pad_status pad_winclip_set_text(pad_winclip *wc, const float *text_raw) {
    if (!text_raw) return PAD_ERR_INVALID_ARG;
    PAD_TRY(pad_buf_upload(wc->be, wc->text, text_raw, (size_t)2 * wc->E * sizeof(float)));
    PAD_TRY(pad_score_normalize(wc->be, wc->text, 2, wc->E));
    wc->have_text = true;
    return PAD_OK;
}

// Encodes n host images in batches into the internal feature buffers, calling fn(ctx, i0, b) after each batch.
typedef pad_status (*batch_fn)(pad_winclip *wc, void *ctx, int i0, int b);
static pad_status encode_batches(pad_winclip *wc, const float *pixels, int n, bool want_image, batch_fn fn, void *ctx) {
    const size_t img = (size_t)3 * wc->S * wc->S;
    for (int i0 = 0; i0 < n; i0 += wc->p.max_batch) {
        const int b = n - i0 < wc->p.max_batch ? n - i0 : wc->p.max_batch;
        PAD_TRY(pad_buf_upload(wc->be, wc->pix, pixels + (size_t)i0 * img, (size_t)b * img * sizeof(float)));
        pad_winclip_feats f = wc->f;
        if (!want_image) f.image = NULL;
        PAD_TRY(pad_winclip_encode(wc, wc->pix, b, &f));
        PAD_TRY(fn(wc, ctx, i0, b));
    }
    return PAD_OK;
}

// Copies the normalised features of a batch of references into the memory.
static pad_status store_refs(pad_winclip *wc, void *ctx, int i0, int b) {
    (void)ctx;
    const size_t P = (size_t)wc->P, D = (size_t)wc->D, E = (size_t)wc->E, f = sizeof(float);
    PAD_TRY(pad_score_normalize(wc->be, wc->f.patches, b * wc->P, wc->D));
    PAD_TRY(pad_buf_copy(wc->be, wc->ref_patches + (size_t)i0 * P * D, wc->f.patches, (size_t)b * P * D * f));
    for (int s = 0; s < wc->p.n_scales; s++) {
        const size_t n = (size_t)wc->n_win[s];
        PAD_TRY(pad_score_normalize(wc->be, wc->f.windows[s], b * wc->n_win[s], wc->E));
        PAD_TRY(pad_buf_copy(wc->be, wc->ref_windows[s] + (size_t)i0 * n * E, wc->f.windows[s], (size_t)b * n * E * f));
    }
    return PAD_OK;
}

pad_status pad_winclip_set_refs(pad_winclip *wc, const float *pixels, int K) {
    free_refs(wc);
    if (K == 0) return PAD_OK;
    if (K < 0 || K > 1 << 16 || !pixels) return PAD_ERR_INVALID_ARG;
    bool ok = alloc_f(wc->be, &wc->ref_patches, (size_t)K * wc->P * wc->D);
    for (int s = 0; ok && s < wc->p.n_scales; s++)
        ok = alloc_f(wc->be, &wc->ref_windows[s], (size_t)K * wc->n_win[s] * wc->E);
    pad_status st = ok ? encode_batches(wc, pixels, K, false, store_refs, NULL) : PAD_ERR_OOM;
    if (st != PAD_OK) {
        free_refs(wc);
        return st;
    }
    wc->k_shot = K;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// scoring

// Downloads the first m scores of wc->scores into wc->host.
static pad_status scores_to_host(pad_winclip *wc, size_t m) {
    return pad_buf_download(wc->be, wc->host, wc->scores, m * sizeof(float));
}

// Zero-shot part of a batch of b encoded images (wc->f, raw): img (b) the class scores of the image embeddings and
// zrec (b, P) the sum over the 1 + n_scales maps of the reciprocals of the zero-shot scores.
static pad_status zero_shot_part(pad_winclip *wc, int b, float *img, double *zrec) {
    pad_backend *be = wc->be;
    const int P = wc->P;
    const float tau = 1.0f / wc->p.temperature, *tn = wc->text, *ta = wc->text + wc->E;
    double agg[64 * 64];
    PAD_TRY(pad_op_text_score(be, wc->scores, wc->f.image, tn, ta, tau, b, wc->E));
    PAD_TRY(scores_to_host(wc, (size_t)b));
    memcpy(img, wc->host, (size_t)b * sizeof(float));
    for (int i = 0; i < b; i++)
        for (int p = 0; p < P; p++)
            zrec[(size_t)i * P + p] = 1.0 / (double)img[i];
    for (int s = 0; s < wc->p.n_scales; s++) {
        const int n = wc->n_win[s], kk = wc->p.scales[s] * wc->p.scales[s];
        PAD_TRY(pad_op_text_score(be, wc->scores, wc->f.windows[s], tn, ta, tau, b * n, wc->E));
        PAD_TRY(scores_to_host(wc, (size_t)b * n));
        for (int i = 0; i < b; i++) {
            pad_winclip_harmonic(wc->host + (size_t)i * n, wc->masks[s], n, kk, wc->G, agg);
            for (int p = 0; p < P; p++)
                zrec[(size_t)i * P + p] += 1.0 / agg[p];
        }
    }
    return PAD_OK;
}

// Few-shot part of b images from their NORMALISED patch (b*P, D) and window (b*n_s, E) embeddings (backend):
// fsum (b, P) the sum of the 1 + n_scales few-shot maps.
static pad_status few_shot_part(pad_winclip *wc, int b, const float *patches, float *const *windows, double *fsum) {
    pad_backend *be = wc->be;
    const int P = wc->P, K = wc->k_shot;
    double agg[64 * 64];
    PAD_TRY(pad_op_knn_min(be, wc->scores, NULL, patches, b * P, wc->ref_patches, K * P, wc->D, 1));
    PAD_TRY(scores_to_host(wc, (size_t)b * P));
    for (size_t j = 0; j < (size_t)b * P; j++)
        fsum[j] = (double)wc->host[j];
    for (int s = 0; s < wc->p.n_scales; s++) {
        const int n = wc->n_win[s], kk = wc->p.scales[s] * wc->p.scales[s];
        PAD_TRY(pad_op_knn_min(be, wc->scores, NULL, windows[s], b * n, wc->ref_windows[s], K * n, wc->E, 1));
        PAD_TRY(scores_to_host(wc, (size_t)b * n));
        for (int i = 0; i < b; i++) {
            pad_winclip_harmonic(wc->host + (size_t)i * n, wc->masks[s], n, kk, wc->G, agg);
            for (int p = 0; p < P; p++)
                fsum[(size_t)i * P + p] += agg[p];
        }
    }
    return PAD_OK;
}

// The final scores of b images (rows o0 .. o0+b of the outputs) from the two parts (fsum NULL: zero-shot).
static void combine(const pad_winclip *wc, int b, const float *img, const double *zrec, const double *fsum, size_t o0,
                    float *image_score, float *grid, const pad_winclip_parts *parts) {
    const int P = wc->P, S = wc->p.n_scales;
    for (int i = 0; i < b; i++) {
        const size_t o = o0 + (size_t)i;
        double fmax = -INFINITY;
        for (int p = 0; p < P; p++) {
            const double zs = (double)(S + 1) / zrec[(size_t)i * P + p];
            const double fs = fsum ? fsum[(size_t)i * P + p] / (double)(S + 1) : 0.0;
            if (fs > fmax) fmax = fs;
            grid[o * P + p] = (float)(fsum ? (zs + fs) / 2 : zs);
            if (parts && parts->zs_grid) parts->zs_grid[o * P + p] = (float)zs;
            if (parts && parts->fs_grid && fsum) parts->fs_grid[o * P + p] = (float)fs;
        }
        image_score[o] = (float)(fsum ? ((double)img[i] + fmax) / 2 : (double)img[i]);
    }
}

// Normalises the patch and window embeddings of the current batch in place (F.normalize, for the few-shot part).
static pad_status normalize_batch(pad_winclip *wc, int b) {
    PAD_TRY(pad_score_normalize(wc->be, wc->f.patches, b * wc->P, wc->D));
    for (int s = 0; s < wc->p.n_scales; s++)
        PAD_TRY(pad_score_normalize(wc->be, wc->f.windows[s], b * wc->n_win[s], wc->E));
    return PAD_OK;
}

typedef struct score_ctx {
    float *image_score, *grid;
    const pad_winclip_parts *parts;
} score_ctx;

static pad_status score_batch(pad_winclip *wc, void *vctx, int i0, int b) {
    score_ctx *c = (score_ctx *)vctx;
    const size_t bP = (size_t)b * wc->P;
    float *img = (float *)malloc((size_t)b * sizeof(float));
    double *zrec = (double *)malloc(bP * sizeof(double)),
           *fsum = wc->k_shot ? (double *)malloc(bP * sizeof(double)) : NULL;
    pad_status st = img && zrec && (fsum || !wc->k_shot) ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) st = zero_shot_part(wc, b, img, zrec);
    if (st == PAD_OK && wc->k_shot) st = normalize_batch(wc, b);
    if (st == PAD_OK && wc->k_shot) st = few_shot_part(wc, b, wc->f.patches, wc->f.windows, fsum);
    if (st == PAD_OK) combine(wc, b, img, zrec, fsum, (size_t)i0, c->image_score, c->grid, c->parts);
    free(img);
    free(zrec);
    free(fsum);
    return st;
}

pad_status pad_winclip_score(pad_winclip *wc, const float *pixels, int n, float *image_score, float *grid,
                             const pad_winclip_parts *parts) {
    if (!wc->have_text) {
        PAD_LOG_ERROR("winclip: score before the text vectors were set");
        return PAD_ERR_INVALID_ARG;
    }
    if (n < 0 || (n > 0 && (!pixels || !image_score || !grid))) return PAD_ERR_INVALID_ARG;
    score_ctx c = {image_score, grid, parts};
    return encode_batches(wc, pixels, n, true, score_batch, &c);
}

// ----------------------------------------------------------------------------
// test features kept for several reference sets

struct pad_winclip_cache {
    pad_backend *be;
    int n;
    float *img;                             // (n) host: zero-shot image scores
    double *zrec;                           // (n, P) host: zero-shot reciprocal sums
    float *patches;                         // (n*P, D) backend, normalised
    float *windows[PAD_WINCLIP_MAX_SCALES]; // (n*n_s, E) backend, normalised
};

void pad_winclip_cache_free(pad_winclip_cache *c) {
    if (!c) return;
    pad_buf_free(c->be, c->patches);
    for (int s = 0; s < PAD_WINCLIP_MAX_SCALES; s++)
        pad_buf_free(c->be, c->windows[s]);
    free(c->img);
    free(c->zrec);
    free(c);
}

static pad_status cache_batch(pad_winclip *wc, void *vctx, int i0, int b) {
    pad_winclip_cache *c = (pad_winclip_cache *)vctx;
    const size_t P = (size_t)wc->P, f = sizeof(float);
    PAD_TRY(zero_shot_part(wc, b, c->img + i0, c->zrec + (size_t)i0 * P));
    PAD_TRY(normalize_batch(wc, b));
    PAD_TRY(pad_buf_copy(wc->be, c->patches + (size_t)i0 * P * wc->D, wc->f.patches, (size_t)b * P * wc->D * f));
    for (int s = 0; s < wc->p.n_scales; s++) {
        const size_t n = (size_t)wc->n_win[s];
        PAD_TRY(
            pad_buf_copy(wc->be, c->windows[s] + (size_t)i0 * n * wc->E, wc->f.windows[s], (size_t)b * n * wc->E * f));
    }
    return PAD_OK;
}

pad_status pad_winclip_cache_create(pad_winclip_cache **out, pad_winclip *wc, const float *pixels, int n) {
    *out = NULL;
    if (!wc->have_text) {
        PAD_LOG_ERROR("winclip: cache before the text vectors were set");
        return PAD_ERR_INVALID_ARG;
    }
    if (n < 1 || n > 1 << 20 || !pixels) return PAD_ERR_INVALID_ARG;
    pad_winclip_cache *c = (pad_winclip_cache *)calloc(1, sizeof *c);
    if (!c) return PAD_ERR_OOM;
    c->be = wc->be;
    c->n = n;
    c->img = (float *)malloc((size_t)n * sizeof(float));
    c->zrec = (double *)malloc((size_t)n * wc->P * sizeof(double));
    bool ok = c->img && c->zrec && alloc_f(wc->be, &c->patches, (size_t)n * wc->P * wc->D);
    for (int s = 0; ok && s < wc->p.n_scales; s++)
        ok = alloc_f(wc->be, &c->windows[s], (size_t)n * wc->n_win[s] * wc->E);
    pad_status st = ok ? encode_batches(wc, pixels, n, true, cache_batch, c) : PAD_ERR_OOM;
    if (st != PAD_OK) {
        pad_winclip_cache_free(c);
        return st;
    }
    *out = c;
    return PAD_OK;
}

pad_status pad_winclip_score_cached(pad_winclip *wc, const pad_winclip_cache *c, float *image_score, float *grid,
                                    const pad_winclip_parts *parts) {
    if (!c || !image_score || !grid) return PAD_ERR_INVALID_ARG;
    const int Bm = wc->p.max_batch, P = wc->P;
    double *fsum = wc->k_shot ? (double *)malloc((size_t)Bm * P * sizeof(double)) : NULL;
    if (wc->k_shot && !fsum) return PAD_ERR_OOM;
    pad_status st = PAD_OK;
    for (int i0 = 0; i0 < c->n && st == PAD_OK; i0 += Bm) {
        const int b = c->n - i0 < Bm ? c->n - i0 : Bm;
        float *win[PAD_WINCLIP_MAX_SCALES] = {NULL};
        for (int s = 0; s < wc->p.n_scales; s++)
            win[s] = c->windows[s] + (size_t)i0 * wc->n_win[s] * wc->E;
        if (wc->k_shot) st = few_shot_part(wc, b, c->patches + (size_t)i0 * P * wc->D, win, fsum);
        if (st == PAD_OK)
            combine(wc, b, c->img + i0, c->zrec + (size_t)i0 * P, fsum, (size_t)i0, image_score, grid, parts);
    }
    free(fsum);
    return st;
}
