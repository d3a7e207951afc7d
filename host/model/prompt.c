/* prompt.c - PromptAD's prompt learner (prompt.h): template tokenisation and assembly (PromptAD/model.py
 * PromptLearner), the training loss (train_cls.py / train_seg.py, promptad_spec.md §4.2) with its gradient written
 * out by hand down to the text features, the text tower backward (text.c) down to the context vectors, SGD, and the
 * inference vectors (build_text_feature_gallery). Every step is a sequence of backend ops on buffers allocated at
 * creation (or at set_images), so loss_grad and text_vectors can be replayed as CUDA graphs (pad_graph_run). */
#include "prompt.h"

#include "log.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEMPLATE 1024

struct pad_prompt_learner {
    pad_backend *be;
    const pad_clip_weights *w;
    pad_prompt_opts o;
    int W, E;
    int n_np, n_map, n_lap, P, Pa; // prompts: NP, MAP, LAP, all, anomaly (MAP + LAP)
    int L;                         // tokens per sequence after the cut
    float tau;                     // multiplier of the cosines (raw logit_scale, or its exp)
    pad_text_encoder *te;
    // parameters and optimizer state (backend)
    float *normal_ctx, *abnormal_ctx; // (n_pro, n_ctx, W), (n_pro_ab, n_ctx_ab, W)
    float *dnormal, *dabnormal;       // gradients, same shapes
    float *mom_normal, *mom_abnormal; // momentum buffers
    long n_steps;                     // steps since the parameters were set (0: the next is a "first" step)
    // prompt assembly (backend)
    float *emb;     // (P, L, W) template embeddings; learned rows overwritten before each forward
    int32_t *idx_n; // (P*L) row of normal_ctx viewed as (n_pro*n_ctx, W) for each embedding row, or -1
    int32_t *idx_a; // (P*L) row of abnormal_ctx viewed as (n_pro_ab*n_ctx_ab, W), or -1
    float *demb;    // (P, L, W)
    // loss (backend)
    float *feat, *dfeat; // (P, E) raw text features and their gradient
    float *ones;         // (P) all ones, for means as GEMMs
    float *means;        // (2, E) mean of the NP features, mean of the MAP+LAP features
    float *Z;            // (1+Pa, E) row 0 w_n = normalize(means[0]), rows 1.. normalised anomaly features
    float *znorm;        // (1+Pa) norms of the rows normalised into Z
    float *wa, *wa_norm; // (E), (1) w_a = normalize(means[1])
    float *dZ, *dwa;     // gradients of Z and w_a
    float *dmeans;       // (2, E)
    float *align_diff;   // (E) mean normalised MAP - mean normalised LAP
    float *tmp;          // (2, E)
    float *loss;         // (4) total, ce, eam, align
    // images (backend, sized by set_images)
    int B, T, N;             // shots, features per shot, samples N = B*T
    float *img;              // (B, T, E) L2-normalised
    float *logits, *dlogits; // (N, 1+Pa)
    // Reuse of the text forward: after text_vectors at parameters p, the next loss_grad at the same p skips its own
    // forward (the same ops on the same inputs, so the same bits); cleared whenever the parameters change.
    bool fwd_valid;
    // CUDA graphs (pad_prompt_learner_set_graphs): loss_grad without / with its text forward, and text_vectors
    bool use_graphs;
    pad_graph *g_loss[2], *g_tvec;
};

static const char *const k_task_names[PAD_N_TASKS] = {"cls", "seg"};

const char *pad_prompt_task_name(pad_prompt_task task) {
    return pad_enum_name(k_task_names, PAD_N_TASKS, (int)task);
}

pad_status pad_prompt_task_parse(const char *s, pad_prompt_task *out) {
    int i;
    PAD_TRY(pad_enum_parse(k_task_names, PAD_N_TASKS, "task", s, &i));
    *out = (pad_prompt_task)i;
    return PAD_OK;
}

pad_prompt_opts pad_prompt_opts_default(pad_prompt_task task) {
    pad_prompt_opts o;
    memset(&o, 0, sizeof o);
    o.task = task;
    o.n_ctx = 4;
    o.n_ctx_ab = 1;
    o.n_pro = task == PAD_TASK_SEG ? 1 : 3;
    o.n_pro_ab = 4;
    o.lr = 0.002f;
    o.lr_min = 1e-5f;
    o.momentum = 0.9f;
    o.weight_decay = 5e-4f;
    o.lambda_align = 0.001f;
    o.margin = 0.0f;
    o.exp_logit_scale = false;
    o.eam = PAD_EAM_TOKEN_AXIS;
    o.lap = PAD_LAP_BEFORE_NAME;
    return o;
}

float pad_prompt_lr(const pad_prompt_opts *o, int epoch, int n_epochs) {
    if (n_epochs <= 0) return o->lr;
    const double pi = 3.14159265358979323846;
    return (float)(o->lr_min + ((double)o->lr - o->lr_min) * (1.0 + cos(pi * epoch / n_epochs)) / 2.0);
}

// ----------------------------------------------------------------------------
// creation

void pad_prompt_learner_free(pad_prompt_learner *pl) {
    if (!pl) return;
    pad_backend *be = pl->be;
    float *bufs[] = {pl->normal_ctx,   pl->abnormal_ctx, pl->dnormal, pl->dabnormal, pl->mom_normal,
                     pl->mom_abnormal, pl->emb,          pl->demb,    pl->feat,      pl->dfeat,
                     pl->ones,         pl->means,        pl->Z,       pl->znorm,     pl->wa,
                     pl->wa_norm,      pl->dZ,           pl->dwa,     pl->dmeans,    pl->align_diff,
                     pl->tmp,          pl->loss,         pl->img,     pl->logits,    pl->dlogits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pad_buf_free(be, bufs[i]);
    pad_buf_free(be, pl->idx_n);
    pad_buf_free(be, pl->idx_a);
    pad_graph_free(be, &pl->g_loss[0]);
    pad_graph_free(be, &pl->g_loss[1]);
    pad_graph_free(be, &pl->g_tvec);
    pad_text_encoder_free(pl->te);
    free(pl);
}

static pad_status check_opts(const pad_prompt_opts *o) {
    if (o->n_ctx < 1 || o->n_ctx_ab < 1 || o->n_pro < 1 || o->n_pro_ab < 1 || o->n_ctx + o->n_ctx_ab > 60) {
        PAD_LOG_ERROR("prompt learner: bad sizes n_ctx %d, n_ctx_ab %d, n_pro %d, n_pro_ab %d", o->n_ctx, o->n_ctx_ab,
                      o->n_pro, o->n_pro_ab);
        return PAD_ERR_INVALID_ARG;
    }
    if (!(o->lr >= 0.0f) || !(o->lr_min >= 0.0f) || !(o->momentum >= 0.0f) || !(o->weight_decay >= 0.0f) ||
        !isfinite(o->lambda_align) || !isfinite(o->margin)) {
        PAD_LOG_ERROR("prompt learner: bad optimizer or loss settings (lr %g, lr_min %g, momentum %g, weight decay "
                      "%g, lambda %g, margin %g)",
                      o->lr, o->lr_min, o->momentum, o->weight_decay, o->lambda_align, o->margin);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

// "X X ... X" (n copies of the letter) into buf.
static void placeholders(char *buf, int n, char letter) {
    for (int i = 0; i < n; i++) {
        buf[2 * i] = letter;
        buf[2 * i + 1] = i + 1 < n ? ' ' : '\0';
    }
}

// The single token id of a placeholder letter ("N" -> n</w>), or -1 (logged) when it is not one token.
static int32_t placeholder_id(pad_tokenizer *tok, const char *letter) {
    int32_t id[4];
    int n = 0;
    if (pad_tokenizer_encode(tok, letter, id, 4, &n) != PAD_OK || n != 1) {
        PAD_LOG_ERROR("prompt learner: the placeholder \"%s\" is not a single token with this vocabulary", letter);
        return -1;
    }
    return id[0];
}

// Number of tokens of `text` without SOT/EOT, or -1.
static int count_tokens(pad_tokenizer *tok, const char *text) {
    int n = 0;
    return pad_tokenizer_encode(tok, text, NULL, 0, &n) == PAD_OK ? n : -1;
}

static bool fits(int n, size_t cap) {
    return n >= 0 && (size_t)n < cap;
}

static pad_status too_long(const pad_prompt_class *cls) {
    PAD_LOG_ERROR("prompt learner: class '%s': a prompt text is longer than %d bytes", cls->key, MAX_TEMPLATE - 1);
    return PAD_ERR_INVALID_ARG;
}

// Tokenises the P templates into ids (P, 77) and fills the learned-row maps: for each template, the positions of
// its normal (n_ctx) and abnormal (n_ctx_ab, LAP only) placeholders and which parameter rows go there.
typedef struct template_rows {
    int32_t *ids;  // (P, 77)
    int *ab_first; // (P) first position of the abnormal placeholders (LAP rows), else -1
} template_rows;

static pad_status tokenize_templates(pad_prompt_learner *pl, pad_tokenizer *tok, const pad_prompt_class *cls,
                                     template_rows *tr) {
    const pad_prompt_opts *o = &pl->o;
    const int CTX = PAD_TOKENIZER_CONTEXT_LEN;
    char pre[128], pre_ab[128], text[MAX_TEMPLATE], state[MAX_TEMPLATE];
    placeholders(pre, o->n_ctx, 'N');
    placeholders(pre_ab, o->n_ctx_ab, 'A');
    const int32_t id_n = placeholder_id(tok, "N"), id_a = placeholder_id(tok, "A");
    if (id_n < 0 || id_a < 0) return PAD_ERR_INVALID_ARG;
    int ab_first_after = -1;
    if (o->lap == PAD_LAP_AFTER_NAME) { // SOT + "N N N N {name}" tokens, then the A's
        if (!fits(snprintf(text, sizeof text, "%s %s", pre, cls->name), sizeof text)) return too_long(cls);
        int k = count_tokens(tok, text);
        if (k < 0) return PAD_ERR_INVALID_ARG;
        ab_first_after = 1 + k;
    }
    for (int p = 0; p < pl->P; p++) {
        const char *kind;
        int ab_first = -1;
        if (p < pl->n_np) {
            kind = "normal prompt";
            if (!fits(snprintf(text, sizeof text, "%s %s.", pre, cls->name), sizeof text)) return too_long(cls);
        } else if (p < pl->n_np + pl->n_map) {
            kind = "manual anomaly prompt";
            const int s = (p - pl->n_np) / o->n_pro;
            if (!pad_prompt_format_state(state, sizeof state, cls->states[s], cls->name)) {
                PAD_LOG_ERROR("prompt learner: class '%s': state %d is too long", cls->key, s + 1);
                return PAD_ERR_INVALID_ARG;
            }
            if (!fits(snprintf(text, sizeof text, "%s %s.", pre, state), sizeof text)) return too_long(cls);
        } else {
            kind = "learned anomaly prompt";
            if (o->lap == PAD_LAP_BEFORE_NAME) {
                if (!fits(snprintf(text, sizeof text, "%s %s %s.", pre, pre_ab, cls->name), sizeof text))
                    return too_long(cls);
                ab_first = 1 + o->n_ctx;
            } else {
                if (!fits(snprintf(text, sizeof text, "%s %s %s.", pre, cls->name, pre_ab), sizeof text))
                    return too_long(cls);
                ab_first = ab_first_after;
            }
        }
        int32_t *row = tr->ids + (size_t)p * CTX;
        bool truncated = false;
        PAD_TRY(pad_tokenizer_tokenize(tok, text, CTX, row, &truncated));
        if (truncated) {
            PAD_LOG_ERROR("prompt learner: class '%s': the %s \"%s\" has %d tokens (at most %d)", cls->key, kind, text,
                          count_tokens(tok, text) + 2, CTX);
            return PAD_ERR_INVALID_ARG;
        }
        for (int j = 0; j < o->n_ctx; j++)
            if (row[1 + j] != id_n) {
                PAD_LOG_ERROR("prompt learner: \"%s\": token %d is not the placeholder N", text, 1 + j);
                return PAD_ERR_INVALID_ARG;
            }
        for (int j = 0; ab_first >= 0 && j < o->n_ctx_ab; j++)
            if (row[ab_first + j] != id_a) {
                PAD_LOG_ERROR("prompt learner: \"%s\": token %d is not the placeholder A", text, ab_first + j);
                return PAD_ERR_INVALID_ARG;
            }
        tr->ab_first[p] = ab_first;
    }
    return PAD_OK;
}

#define ALLOC_F(ptr, n)                                                                                                \
    do {                                                                                                               \
        if (!((ptr) = (float *)pad_buf_alloc(be, (size_t)(n) * sizeof(float)))) goto oom;                              \
    } while (0)

pad_status pad_prompt_learner_create(pad_prompt_learner **out, const pad_clip_weights *w, pad_tokenizer *tok,
                                     const pad_prompt_class *cls, const pad_prompt_opts *opts) {
    *out = NULL;
    if (!w || !w->be || !w->txt) {
        PAD_LOG_ERROR("prompt learner: the weights have no text tower on a backend");
        return PAD_ERR_INVALID_ARG;
    }
    if (!cls || cls->n_states < 1) {
        PAD_LOG_ERROR("prompt learner: class without anomaly states");
        return PAD_ERR_INVALID_ARG;
    }
    PAD_TRY(check_opts(opts));
    if (pad_tokenizer_vocab_size(tok) != w->cfg.text.vocab) {
        PAD_LOG_ERROR("prompt learner: the tokenizer has %d tokens but the model's text vocabulary has %d",
                      pad_tokenizer_vocab_size(tok), w->cfg.text.vocab);
        return PAD_ERR_INVALID_ARG;
    }
    pad_prompt_learner *pl = (pad_prompt_learner *)calloc(1, sizeof *pl);
    if (!pl) return PAD_ERR_OOM;
    pad_backend *be = w->be;
    const pad_prompt_opts *o = opts;
    pl->be = be;
    pl->w = w;
    pl->o = *opts;
    pl->W = w->cfg.text.width;
    pl->E = w->cfg.embed_dim;
    pl->n_np = o->n_pro;
    pl->n_map = cls->n_states * o->n_pro;
    pl->n_lap = o->n_pro * o->n_pro_ab;
    pl->P = pl->n_np + pl->n_map + pl->n_lap;
    pl->Pa = pl->n_map + pl->n_lap;
    pl->tau = o->exp_logit_scale ? expf(w->logit_scale) : w->logit_scale;
    const int P = pl->P, W = pl->W, E = pl->E, CTX = PAD_TOKENIZER_CONTEXT_LEN;
    pad_status st = PAD_OK;
    template_rows tr = {(int32_t *)malloc((size_t)P * CTX * sizeof(int32_t)), (int *)malloc((size_t)P * sizeof(int))};
    int32_t *eot = (int32_t *)malloc((size_t)P * sizeof *eot);
    int32_t *rows = NULL, *in = NULL, *ia = NULL, *rows_dev = NULL;
    if (!tr.ids || !tr.ab_first || !eot) goto oom;
    PAD_TRY_GOTO(st, tokenize_templates(pl, tok, cls, &tr), fail);
    pl->L = 0;
    for (int p = 0; p < P; p++) {
        eot[p] = pad_text_eot_index(tr.ids + (size_t)p * CTX, CTX);
        if (eot[p] + 1 > pl->L) pl->L = eot[p] + 1;
    }
    const int L = pl->L;
    const size_t PL = (size_t)P * L;
    PAD_TRY_GOTO(st, pad_text_encoder_create(&pl->te, w, P, L), fail);
    PAD_TRY_GOTO(st, pad_text_encoder_set_batch(pl->te, eot, P), fail);
    // embedding-row maps: token ids (cut at L) for the template embeddings, parameter rows for the learned slots
    rows = (int32_t *)malloc(PL * sizeof *rows);
    in = (int32_t *)malloc(PL * sizeof *in);
    ia = (int32_t *)malloc(PL * sizeof *ia);
    if (!rows || !in || !ia) goto oom;
    for (int p = 0; p < P; p++) {
        const int pn = p < pl->n_np               ? p
                       : p < pl->n_np + pl->n_map ? (p - pl->n_np) % o->n_pro
                                                  : (p - pl->n_np - pl->n_map) % o->n_pro;
        const int pa = p >= pl->n_np + pl->n_map ? (p - pl->n_np - pl->n_map) % o->n_pro_ab : -1;
        for (int t = 0; t < L; t++) {
            const size_t r = (size_t)p * L + t;
            rows[r] = tr.ids[(size_t)p * CTX + t];
            in[r] = t >= 1 && t <= o->n_ctx ? pn * o->n_ctx + (t - 1) : -1;
            ia[r] = pa >= 0 && t >= tr.ab_first[p] && t < tr.ab_first[p] + o->n_ctx_ab
                        ? pa * o->n_ctx_ab + (t - tr.ab_first[p])
                        : -1;
        }
    }
    if (!(pl->idx_n = (int32_t *)pad_buf_alloc(be, PL * sizeof(int32_t))) ||
        !(pl->idx_a = (int32_t *)pad_buf_alloc(be, PL * sizeof(int32_t))) ||
        !(rows_dev = (int32_t *)pad_buf_alloc(be, PL * sizeof(int32_t))))
        goto oom;
    PAD_TRY_GOTO(st, pad_buf_upload(be, pl->idx_n, in, PL * sizeof(int32_t)), fail);
    PAD_TRY_GOTO(st, pad_buf_upload(be, pl->idx_a, ia, PL * sizeof(int32_t)), fail);
    PAD_TRY_GOTO(st, pad_buf_upload(be, rows_dev, rows, PL * sizeof(int32_t)), fail);
    ALLOC_F(pl->emb, PL * W);
    ALLOC_F(pl->demb, PL * W);
    PAD_TRY_GOTO(st, pad_op_gather_rows(be, pl->emb, w->tok_emb, rows_dev, (int)PL, W), fail); // (P, L, W)
    // parameters and optimizer state
    const size_t nn = (size_t)o->n_pro * o->n_ctx * W, na = (size_t)o->n_pro_ab * o->n_ctx_ab * W;
    ALLOC_F(pl->normal_ctx, nn);
    ALLOC_F(pl->abnormal_ctx, na);
    ALLOC_F(pl->dnormal, nn);
    ALLOC_F(pl->dabnormal, na);
    ALLOC_F(pl->mom_normal, nn);
    ALLOC_F(pl->mom_abnormal, na);
    PAD_TRY_GOTO(st, pad_buf_zero(be, pl->normal_ctx, nn * sizeof(float)), fail);
    PAD_TRY_GOTO(st, pad_buf_zero(be, pl->abnormal_ctx, na * sizeof(float)), fail);
    PAD_TRY_GOTO(st, pad_buf_zero(be, pl->dnormal, nn * sizeof(float)), fail);
    PAD_TRY_GOTO(st, pad_buf_zero(be, pl->dabnormal, na * sizeof(float)), fail);
    // loss buffers that do not depend on the images
    ALLOC_F(pl->feat, (size_t)P * E);
    ALLOC_F(pl->dfeat, (size_t)P * E);
    ALLOC_F(pl->ones, P);
    ALLOC_F(pl->means, 2 * E);
    ALLOC_F(pl->Z, (size_t)(1 + pl->Pa) * E);
    ALLOC_F(pl->znorm, 1 + pl->Pa);
    ALLOC_F(pl->wa, E);
    ALLOC_F(pl->wa_norm, 1);
    ALLOC_F(pl->dZ, (size_t)(1 + pl->Pa) * E);
    ALLOC_F(pl->dwa, E);
    ALLOC_F(pl->dmeans, 2 * E);
    ALLOC_F(pl->align_diff, E);
    ALLOC_F(pl->tmp, 2 * E);
    ALLOC_F(pl->loss, 4);
    PAD_TRY_GOTO(st, pad_buf_zero(be, pl->loss, 4 * sizeof(float)), fail);
    {
        float *h1 = (float *)malloc((size_t)P * sizeof(float));
        if (!h1) goto oom;
        for (int p = 0; p < P; p++)
            h1[p] = 1.0f;
        st = pad_buf_upload(be, pl->ones, h1, (size_t)P * sizeof(float));
        free(h1);
        if (st != PAD_OK) goto fail;
    }
    PAD_LOG_DEBUG("prompt learner: class '%s' (\"%s\"): %d prompts (%d NP, %d MAP, %d LAP) of %d tokens", cls->key,
                  cls->name, P, pl->n_np, pl->n_map, pl->n_lap, L);
    *out = pl;
    pl = NULL; // the caller's now: below, only the temporaries are freed
    goto done;
oom:
    st = be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    if (st == PAD_ERR_OOM) PAD_LOG_ERROR("prompt learner: out of memory");
fail:
done:
    pad_buf_free(be, rows_dev);
    free(rows);
    free(in);
    free(ia);
    free(tr.ids);
    free(tr.ab_first);
    free(eot);
    pad_prompt_learner_free(pl);
    return st;
}

int pad_prompt_learner_counts(const pad_prompt_learner *pl, int *n_np, int *n_map, int *n_lap) {
    if (n_np) *n_np = pl->n_np;
    if (n_map) *n_map = pl->n_map;
    if (n_lap) *n_lap = pl->n_lap;
    return pl->P;
}

int pad_prompt_learner_seq_len(const pad_prompt_learner *pl) {
    return pl->L;
}

const pad_prompt_opts *pad_prompt_learner_opts(const pad_prompt_learner *pl) {
    return &pl->o;
}

int pad_prompt_learner_width(const pad_prompt_learner *pl) {
    return pl->W;
}

// ----------------------------------------------------------------------------
// parameters

static size_t n_normal(const pad_prompt_learner *pl) {
    return (size_t)pl->o.n_pro * pl->o.n_ctx * pl->W;
}
static size_t n_abnormal(const pad_prompt_learner *pl) {
    return (size_t)pl->o.n_pro_ab * pl->o.n_ctx_ab * pl->W;
}

pad_status pad_prompt_learner_set_ctx(pad_prompt_learner *pl, const float *normal_ctx, const float *abnormal_ctx) {
    PAD_TRY(pad_buf_upload(pl->be, pl->normal_ctx, normal_ctx, n_normal(pl) * sizeof(float)));
    PAD_TRY(pad_buf_upload(pl->be, pl->abnormal_ctx, abnormal_ctx, n_abnormal(pl) * sizeof(float)));
    pl->n_steps = 0;
    pl->fwd_valid = false;
    return PAD_OK;
}

void pad_prompt_learner_set_graphs(pad_prompt_learner *pl, bool on) {
    pl->use_graphs = on;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// N(0, std^2) by Box-Muller from 53-bit uniforms in (0, 1].
static void fill_normal(float *x, size_t n, uint64_t *s, double std) {
    const double two_pi = 6.28318530717958647692;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(splitmix64(s) >> 11) + 1.0) / 9007199254740992.0;
        double u2 = (double)(splitmix64(s) >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1)) * std;
        x[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

pad_status pad_prompt_learner_init_random(pad_prompt_learner *pl, uint64_t seed) {
    const size_t nn = n_normal(pl), na = n_abnormal(pl);
    float *h = (float *)malloc((nn + na) * sizeof(float));
    if (!h) return PAD_ERR_OOM;
    uint64_t s = seed ^ 0x50524F4D50544144ull; // "PROMPTAD"
    fill_normal(h, nn, &s, 0.02);
    fill_normal(h + nn, na, &s, 0.02);
    pad_status st = pad_prompt_learner_set_ctx(pl, h, h + nn);
    free(h);
    return st;
}

pad_status pad_prompt_learner_get_ctx(pad_prompt_learner *pl, float *normal_ctx, float *abnormal_ctx) {
    if (normal_ctx) PAD_TRY(pad_buf_download(pl->be, normal_ctx, pl->normal_ctx, n_normal(pl) * sizeof(float)));
    if (abnormal_ctx) PAD_TRY(pad_buf_download(pl->be, abnormal_ctx, pl->abnormal_ctx, n_abnormal(pl) * sizeof(float)));
    return PAD_OK;
}

pad_status pad_prompt_learner_get_grad(pad_prompt_learner *pl, float *dnormal_ctx, float *dabnormal_ctx) {
    if (dnormal_ctx) PAD_TRY(pad_buf_download(pl->be, dnormal_ctx, pl->dnormal, n_normal(pl) * sizeof(float)));
    if (dabnormal_ctx) PAD_TRY(pad_buf_download(pl->be, dabnormal_ctx, pl->dabnormal, n_abnormal(pl) * sizeof(float)));
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// images

pad_status pad_prompt_learner_set_images(pad_prompt_learner *pl, const float *feats, int B, int T) {
    if (B < 1 || T < 1 || (pl->o.task == PAD_TASK_CLS && T != 1)) {
        PAD_LOG_ERROR("prompt learner: image features (%d, %d, E) for task %s (cls takes (B, 1, E))", B, T,
                      pl->o.task == PAD_TASK_CLS ? "cls" : "seg");
        return PAD_ERR_INVALID_ARG;
    }
    pad_backend *be = pl->be;
    pad_buf_free(be, pl->img);
    pad_buf_free(be, pl->logits);
    pad_buf_free(be, pl->dlogits);
    pl->img = pl->logits = pl->dlogits = NULL;
    pl->B = pl->T = pl->N = 0;
    const size_t N = (size_t)B * T, K = (size_t)(1 + pl->Pa);
    if (!(pl->img = (float *)pad_buf_alloc(be, N * pl->E * sizeof(float))) ||
        !(pl->logits = (float *)pad_buf_alloc(be, N * K * sizeof(float))) ||
        !(pl->dlogits = (float *)pad_buf_alloc(be, N * K * sizeof(float))))
        return be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    PAD_TRY(pad_op_l2norm_rows(be, pl->img, NULL, feats, (int)N, pl->E)); // (B, T, E) unit rows
    pl->B = B;
    pl->T = T;
    pl->N = (int)N;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// forward pieces

// Writes the learned rows into the template embeddings and runs the text tower: feat(P, E).
static pad_status text_forward(pad_prompt_learner *pl) {
    pad_backend *be = pl->be;
    const int PL = pl->P * pl->L;
    PAD_TRY(pad_op_gather_rows(be, pl->emb, pl->normal_ctx, pl->idx_n, PL, pl->W));
    PAD_TRY(pad_op_gather_rows(be, pl->emb, pl->abnormal_ctx, pl->idx_a, PL, pl->W));
    return pad_text_encoder_forward(pl->te, pl->feat, pl->emb);
}

// From feat: means(2, E), Z(1+Pa, E) = [w_n; normalised anomaly features], wa(E) = w_a (promptad_spec.md §4.2).
static pad_status anchors(pad_prompt_learner *pl) {
    pad_backend *be = pl->be;
    const int E = pl->E, n_np = pl->n_np, Pa = pl->Pa;
    // means as (1, K) @ (K, E) GEMMs with a ones row
    PAD_TRY(pad_op_gemm(be, false, false, 1, E, n_np, 1.0f / (float)n_np, pl->ones, n_np, 0, pl->feat, E, 0, 0.0f,
                        pl->means, E, 0, 1));
    PAD_TRY(pad_op_gemm(be, false, false, 1, E, Pa, 1.0f / (float)Pa, pl->ones, Pa, 0, pl->feat + (size_t)n_np * E, E,
                        0, 0.0f, pl->means + E, E, 0, 1));
    PAD_TRY(pad_op_l2norm_rows(be, pl->Z, pl->znorm, pl->means, 1, E));                            // w_n
    PAD_TRY(pad_op_l2norm_rows(be, pl->Z + E, pl->znorm + 1, pl->feat + (size_t)n_np * E, Pa, E)); // a_m hat
    return pad_op_l2norm_rows(be, pl->wa, pl->wa_norm, pl->means + E, 1, E);                       // w_a
}

// The ops of one loss_grad (with the text forward and the anchors first when `forward`): only queues ops, so that
// it can be captured into a CUDA graph (pad_graph_run).
typedef struct loss_job {
    pad_prompt_learner *pl;
    bool forward;
} loss_job;

static pad_status loss_grad_ops(void *ctx) {
    const loss_job *job = (const loss_job *)ctx;
    pad_prompt_learner *pl = job->pl;
    pad_backend *be = pl->be;
    const pad_prompt_opts *o = &pl->o;
    const int E = pl->E, N = pl->N, K = 1 + pl->Pa, n_np = pl->n_np, Pa = pl->Pa;
    const int Ph = pl->n_map, Pl = pl->n_lap;
    const float lam = o->lambda_align;
    float *loss_total = pl->loss, *loss_ce = pl->loss + 1, *loss_eam = pl->loss + 2, *loss_align = pl->loss + 3;
    if (job->forward) {
        PAD_TRY(text_forward(pl));
        PAD_TRY(anchors(pl));
    }
    // (a) contrastive CE: logits(N, K) = tau f @ Z^T, target 0
    PAD_TRY(pad_op_gemm(be, false, true, N, K, E, pl->tau, pl->img, E, 0, pl->Z, E, 0, 0.0f, pl->logits, K, 0, 1));
    PAD_TRY(pad_op_xent0(be, loss_ce, pl->dlogits, pl->logits, N, K));
    // dZ(K, E) = tau dlogits^T @ f
    PAD_TRY(pad_op_gemm(be, true, false, K, E, N, pl->tau, pl->dlogits, K, 0, pl->img, E, 0, 0.0f, pl->dZ, E, 0, 1));
    // (b) EAM on the anchors w_n (Z row 0) and w_a; accumulates into dZ row 0 and dwa
    PAD_TRY(pad_buf_zero(be, pl->dwa, (size_t)E * sizeof(float)));
    const bool token_axis = o->task == PAD_TASK_SEG && o->eam == PAD_EAM_TOKEN_AXIS;
    PAD_TRY(
        pad_op_eam_loss(be, loss_eam, pl->dZ, pl->dwa, pl->img, pl->Z, pl->wa, pl->B, pl->T, E, token_axis, o->margin));
    // (c) alignment || mean_j MAP_j hat - mean_k LAP_k hat ||^2 on the normalised rows Z[1 .. Ph], Z[1+Ph .. Pa]
    const float *zh = pl->Z + E, *zl = pl->Z + (size_t)(1 + Ph) * E;
    PAD_TRY(
        pad_op_gemm(be, false, false, 1, E, Ph, 1.0f / (float)Ph, pl->ones, Ph, 0, zh, E, 0, 0.0f, pl->tmp, E, 0, 1));
    PAD_TRY(pad_op_gemm(be, false, false, 1, E, Pl, 1.0f / (float)Pl, pl->ones, Pl, 0, zl, E, 0, 0.0f, pl->tmp + E, E,
                        0, 1));
    PAD_TRY(pad_op_axpy(be, pl->align_diff, pl->tmp, -1.0f, pl->tmp + E, (size_t)E));
    PAD_TRY(pad_op_dot(be, loss_align, pl->align_diff, pl->align_diff, (size_t)E, 1.0f));
    PAD_TRY(pad_op_scale(be, pl->tmp, pl->align_diff, 2.0f * lam / (float)Ph, (size_t)E));
    PAD_TRY(pad_op_scale(be, pl->tmp + E, pl->align_diff, -2.0f * lam / (float)Pl, (size_t)E));
    PAD_TRY(pad_op_add_rows(be, pl->dZ + E, pl->tmp, Ph, E, 1));
    PAD_TRY(pad_op_add_rows(be, pl->dZ + (size_t)(1 + Ph) * E, pl->tmp + E, Pl, E, 1));
    // total = ce + eam + lambda align
    PAD_TRY(pad_op_axpy(be, loss_total, loss_ce, 1.0f, loss_eam, 1));
    PAD_TRY(pad_op_axpy(be, loss_total, loss_total, lam, loss_align, 1));
    // back through the normalisations and means to the raw text features dfeat(P, E)
    PAD_TRY(pad_buf_zero(be, pl->dfeat, (size_t)pl->P * E * sizeof(float)));
    PAD_TRY(pad_buf_zero(be, pl->dmeans, (size_t)2 * E * sizeof(float)));
    PAD_TRY(pad_op_l2norm_rows_backward(be, pl->dfeat + (size_t)n_np * E, pl->dZ + E, pl->Z + E, pl->znorm + 1, Pa, E));
    PAD_TRY(pad_op_l2norm_rows_backward(be, pl->dmeans, pl->dZ, pl->Z, pl->znorm, 1, E));
    PAD_TRY(pad_op_l2norm_rows_backward(be, pl->dmeans + E, pl->dwa, pl->wa, pl->wa_norm, 1, E));
    PAD_TRY(pad_op_scale(be, pl->dmeans, pl->dmeans, 1.0f / (float)n_np, (size_t)E));
    PAD_TRY(pad_op_scale(be, pl->dmeans + E, pl->dmeans + E, 1.0f / (float)Pa, (size_t)E));
    PAD_TRY(pad_op_add_rows(be, pl->dfeat, pl->dmeans, n_np, E, 1));
    PAD_TRY(pad_op_add_rows(be, pl->dfeat + (size_t)n_np * E, pl->dmeans + E, Pa, E, 1));
    // text tower backward to the embeddings, then the learned rows into the parameter gradients
    PAD_TRY(pad_text_encoder_backward(pl->te, pl->demb, pl->dfeat));
    const int PL = pl->P * pl->L;
    PAD_TRY(pad_buf_zero(be, pl->dnormal, n_normal(pl) * sizeof(float)));
    PAD_TRY(pad_buf_zero(be, pl->dabnormal, n_abnormal(pl) * sizeof(float)));
    PAD_TRY(pad_op_scatter_add_rows(be, pl->dnormal, pl->demb, pl->idx_n, PL, pl->W, o->n_pro * o->n_ctx));
    return pad_op_scatter_add_rows(be, pl->dabnormal, pl->demb, pl->idx_a, PL, pl->W, o->n_pro_ab * o->n_ctx_ab);
}

pad_status pad_prompt_learner_loss_grad(pad_prompt_learner *pl) {
    if (!pl->img) {
        PAD_LOG_ERROR("prompt learner: no image features (call pad_prompt_learner_set_images first)");
        return PAD_ERR_INVALID_ARG;
    }
    loss_job job = {pl, !pl->fwd_valid};
    if (pl->use_graphs) {
        // everything the captured ops depend on that can change between calls
        const uintptr_t key[6] = {(uintptr_t)pl->img, (uintptr_t)pl->logits, (uintptr_t)pl->dlogits,
                                  (uintptr_t)pl->B,   (uintptr_t)pl->T,      (uintptr_t)job.forward};
        PAD_TRY(pad_graph_run(pl->be, &pl->g_loss[job.forward], &key, sizeof key, loss_grad_ops, &job));
    } else {
        PAD_TRY(loss_grad_ops(&job));
    }
    pl->fwd_valid = true;
    return PAD_OK;
}

pad_status pad_prompt_learner_loss(pad_prompt_learner *pl, pad_prompt_loss *out) {
    float h[4];
    PAD_TRY(pad_buf_download(pl->be, h, pl->loss, sizeof h));
    out->total = h[0];
    out->ce = h[1];
    out->eam = h[2];
    out->align = h[3];
    return PAD_OK;
}

pad_status pad_prompt_learner_step(pad_prompt_learner *pl, float lr) {
    const pad_prompt_opts *o = &pl->o;
    const bool first = pl->n_steps == 0;
    PAD_TRY(pad_op_sgd_step(pl->be, pl->normal_ctx, pl->dnormal, pl->mom_normal, n_normal(pl), lr, o->momentum,
                            o->weight_decay, first));
    PAD_TRY(pad_op_sgd_step(pl->be, pl->abnormal_ctx, pl->dabnormal, pl->mom_abnormal, n_abnormal(pl), lr, o->momentum,
                            o->weight_decay, first));
    pl->n_steps++;
    pl->fwd_valid = false;
    return PAD_OK;
}

pad_status pad_prompt_learner_train_epoch(pad_prompt_learner *pl, int epoch, int n_epochs, pad_prompt_loss *loss) {
    if (epoch < 0 || n_epochs < 1 || epoch >= n_epochs) {
        PAD_LOG_ERROR("prompt learner: epoch %d of %d", epoch, n_epochs);
        return PAD_ERR_INVALID_ARG;
    }
    PAD_TRY(pad_prompt_learner_loss_grad(pl));
    if (loss) PAD_TRY(pad_prompt_learner_loss(pl, loss));
    return pad_prompt_learner_step(pl, pad_prompt_lr(&pl->o, epoch, n_epochs));
}

typedef struct tvec_job {
    pad_prompt_learner *pl;
    float *out;
} tvec_job;

static pad_status text_vectors_ops(void *ctx) {
    const tvec_job *job = (const tvec_job *)ctx;
    pad_prompt_learner *pl = job->pl;
    PAD_TRY(text_forward(pl));
    PAD_TRY(anchors(pl));
    const size_t row = (size_t)pl->E * sizeof(float);
    PAD_TRY(pad_buf_copy(pl->be, job->out, pl->Z, row));
    return pad_buf_copy(pl->be, job->out + pl->E, pl->wa, row);
}

pad_status pad_prompt_learner_text_vectors(pad_prompt_learner *pl, float *out) {
    tvec_job job = {pl, out};
    if (pl->use_graphs)
        PAD_TRY(pad_graph_run(pl->be, &pl->g_tvec, &out, sizeof out, text_vectors_ops, &job));
    else
        PAD_TRY(text_vectors_ops(&job));
    pl->fwd_valid = true; // the next loss_grad at these parameters reuses this forward
    return PAD_OK;
}

long pad_prompt_learner_graph_replays(const pad_prompt_learner *pl) {
    return pad_graph_replays(pl->g_loss[0]) + pad_graph_replays(pl->g_loss[1]) + pad_graph_replays(pl->g_tvec);
}
