/* prompt_cohort.c - lockstep training of several prompt learners (prompt_cohort.h): one shared text encoder over the
 * concatenated prompt rows, padded to the longest cut length; the members' own hooks (prompt_internal.h) assemble
 * their rows, compute their losses and gradients and take their SGD steps. */
#include "prompt_cohort.h"

#include "log.h"
#include "prompt_internal.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

// Members of one cut length: their rows are contiguous in the shared buffers and go through one encoder.
typedef struct cohort_group {
    int L, row0, P;       // cut length, first row, rows
    size_t emb0;          // first float of the group in emb / demb
    pad_text_encoder *te; // (P, L)
} cohort_group;

struct pad_prompt_cohort {
    pad_backend *be;
    int n;                  // members
    pad_prompt_learner **m; // (n) the members (not owned), in the caller's order
    int *row0, *grp;        // (n) first prompt row of each member, its group
    int n_groups;
    cohort_group *g;     // (n_groups) by increasing L
    int P, L, W, E;      // rows, longest cut length, text width, embedding dim
    float *emb, *demb;   // sum over groups of (P_g, L_g, W)
    float *feat, *dfeat; // (P, E)
    unsigned long *gen;  // (n) each member's parameter generation at the last shared forward
    bool fwd_valid;      // emb/feat/te hold a forward (at the generations in gen)
};

void pad_prompt_cohort_free(pad_prompt_cohort *c) {
    if (!c) return;
    pad_buf_free(c->be, c->emb);
    pad_buf_free(c->be, c->demb);
    pad_buf_free(c->be, c->feat);
    pad_buf_free(c->be, c->dfeat);
    for (int g = 0; c->g && g < c->n_groups; g++)
        pad_text_encoder_free(c->g[g].te);
    free(c->g);
    free(c->m);
    free(c->row0);
    free(c->grp);
    free(c->gen);
    free(c);
}

static int rows_of(const pad_prompt_learner *pl) {
    return pad_prompt_learner_counts(pl, NULL, NULL, NULL);
}

// Puts the members into groups by cut length (increasing) and lays out their rows: a group's rows are contiguous.
static pad_status plan(pad_prompt_cohort *c, pad_prompt_learner *const *members) {
    int n = c->n;
    for (int done = 0; done < n;) { // next group: the shortest cut length not yet placed
        int L = 0;
        for (int i = 0; i < n; i++) {
            const int Li = pad_prompt_learner_seq_len(members[i]);
            bool placed = false;
            for (int g = 0; g < c->n_groups; g++)
                placed = placed || c->g[g].L == Li;
            if (!placed && (L == 0 || Li < L)) L = Li;
        }
        cohort_group *g = &c->g[c->n_groups];
        g->L = L;
        g->row0 = c->P;
        g->emb0 = c->n_groups
                      ? c->g[c->n_groups - 1].emb0 + (size_t)c->g[c->n_groups - 1].P * c->g[c->n_groups - 1].L * c->W
                      : 0;
        for (int i = 0; i < n; i++)
            if (pad_prompt_learner_seq_len(members[i]) == L) {
                c->m[i] = members[i];
                c->row0[i] = c->P;
                c->grp[i] = c->n_groups;
                c->P += rows_of(members[i]);
                g->P += rows_of(members[i]);
                done++;
            }
        if (L > c->L) c->L = L;
        c->n_groups++;
    }
    return PAD_OK;
}

pad_status pad_prompt_cohort_create(pad_prompt_cohort **out, const pad_clip_weights *w,
                                    pad_prompt_learner *const *members, int n) {
    *out = NULL;
    if (n < 1 || !members || !w || !w->be || !w->txt) {
        PAD_LOG_ERROR("prompt cohort: %d members, weights %s", n, w && w->be && w->txt ? "ok" : "without a text tower");
        return PAD_ERR_INVALID_ARG;
    }
    for (int i = 0; i < n; i++)
        if (!members[i] || pad_prompt_learner_width(members[i]) != w->cfg.text.width) {
            PAD_LOG_ERROR("prompt cohort: member %d is missing or has another text width", i);
            return PAD_ERR_INVALID_ARG;
        }
    pad_prompt_cohort *c = (pad_prompt_cohort *)calloc(1, sizeof *c);
    if (!c) return PAD_ERR_OOM;
    pad_status st = PAD_OK;
    int32_t *eot = NULL;
    c->be = w->be;
    c->n = n;
    c->W = w->cfg.text.width;
    c->E = w->cfg.embed_dim;
    c->m = (pad_prompt_learner **)malloc((size_t)n * sizeof *c->m);
    c->row0 = (int *)malloc((size_t)n * sizeof *c->row0);
    c->grp = (int *)malloc((size_t)n * sizeof *c->grp);
    c->g = (cohort_group *)calloc((size_t)n, sizeof *c->g);
    c->gen = (unsigned long *)calloc((size_t)n, sizeof *c->gen);
    if (!c->m || !c->row0 || !c->grp || !c->g || !c->gen) goto oom;
    PAD_TRY_GOTO(st, plan(c, members), fail);
    if (!(eot = (int32_t *)malloc((size_t)c->P * sizeof *eot))) goto oom;
    for (int i = 0; i < n; i++)
        memcpy(eot + c->row0[i], pad_prompt_learner_cohort_eot(c->m[i]), (size_t)rows_of(c->m[i]) * sizeof *eot);
    for (int g = 0; g < c->n_groups; g++) {
        cohort_group *cg = &c->g[g];
        PAD_TRY_GOTO(st, pad_text_encoder_create(&cg->te, w, cg->P, cg->L), fail);
        PAD_TRY_GOTO(st, pad_text_encoder_set_batch(cg->te, eot + cg->row0, cg->P), fail);
        if (pad_text_encoder_seq_len(cg->te) != cg->L) { // every member's L is its own longest EOT + 1
            PAD_LOG_ERROR("prompt cohort: cut length %d, want %d", pad_text_encoder_seq_len(cg->te), cg->L);
            st = PAD_ERR_INVALID_ARG;
            goto fail;
        }
    }
    const cohort_group *last = &c->g[c->n_groups - 1];
    const size_t n_emb = last->emb0 + (size_t)last->P * last->L * c->W, PE = (size_t)c->P * c->E;
    if (!(c->emb = (float *)pad_buf_alloc(c->be, n_emb * sizeof(float))) ||
        !(c->demb = (float *)pad_buf_alloc(c->be, n_emb * sizeof(float))) ||
        !(c->feat = (float *)pad_buf_alloc(c->be, PE * sizeof(float))) ||
        !(c->dfeat = (float *)pad_buf_alloc(c->be, PE * sizeof(float))))
        goto oom;
    PAD_LOG_DEBUG("prompt cohort: %d learners, %d prompt rows in %d group(s) of one cut length (longest %d)", n, c->P,
                  c->n_groups, c->L);
    free(eot);
    *out = c;
    return PAD_OK;
oom:
    st = c->be->poisoned ? PAD_ERR_CUDA : PAD_ERR_OOM;
    if (st == PAD_ERR_OOM) PAD_LOG_ERROR("prompt cohort: out of memory");
fail:
    free(eot);
    pad_prompt_cohort_free(c);
    return st;
}

// Where member i's assembled rows (P_i, L_g, W) start in emb / demb.
static size_t emb_off(const pad_prompt_cohort *c, int i) {
    const cohort_group *g = &c->g[c->grp[i]];
    return g->emb0 + (size_t)(c->row0[i] - g->row0) * g->L * c->W;
}

int pad_prompt_cohort_size(const pad_prompt_cohort *c) {
    return c->n;
}

int pad_prompt_cohort_rows(const pad_prompt_cohort *c) {
    return c->P;
}

int pad_prompt_cohort_seq_len(const pad_prompt_cohort *c) {
    return c->L;
}

int pad_prompt_cohort_passes(const pad_prompt_cohort *c) {
    return c->n_groups;
}

// The shared forward at the members' current parameters, unless the last one is still valid.
static pad_status forward(pad_prompt_cohort *c) {
    bool valid = c->fwd_valid;
    for (int i = 0; i < c->n && valid; i++)
        valid = c->gen[i] == pad_prompt_learner_cohort_gen(c->m[i]);
    if (valid) return PAD_OK;
    c->fwd_valid = false;
    for (int i = 0; i < c->n; i++)
        PAD_TRY(pad_prompt_learner_cohort_assemble(c->m[i], c->emb + emb_off(c, i), c->g[c->grp[i]].L));
    for (int g = 0; g < c->n_groups; g++)
        PAD_TRY(pad_text_encoder_forward(c->g[g].te, c->feat + (size_t)c->g[g].row0 * c->E, c->emb + c->g[g].emb0));
    for (int i = 0; i < c->n; i++)
        c->gen[i] = pad_prompt_learner_cohort_gen(c->m[i]);
    c->fwd_valid = true;
    return PAD_OK;
}

pad_status pad_prompt_cohort_loss_grad(pad_prompt_cohort *c) {
    for (int i = 0; i < c->n; i++)
        if (!pad_prompt_learner_cohort_has_images(c->m[i])) {
            PAD_LOG_ERROR("prompt cohort: member %d has no image features (pad_prompt_learner_set_images)", i);
            return PAD_ERR_INVALID_ARG;
        }
    PAD_TRY(forward(c));
    for (int i = 0; i < c->n; i++) {
        const size_t off = (size_t)c->row0[i] * c->E;
        PAD_TRY(pad_prompt_learner_cohort_head_grad(c->m[i], c->feat + off, c->dfeat + off));
    }
    for (int g = 0; g < c->n_groups; g++)
        PAD_TRY(pad_text_encoder_backward(c->g[g].te, c->demb + c->g[g].emb0, c->dfeat + (size_t)c->g[g].row0 * c->E));
    for (int i = 0; i < c->n; i++)
        PAD_TRY(pad_prompt_learner_cohort_ctx_grad(c->m[i], c->demb + emb_off(c, i), c->g[c->grp[i]].L));
    return PAD_OK;
}

pad_status pad_prompt_cohort_train_epoch(pad_prompt_cohort *c, int epoch, int n_epochs, pad_prompt_loss *losses) {
    if (epoch < 0 || n_epochs < 1 || epoch >= n_epochs) {
        PAD_LOG_ERROR("prompt cohort: epoch %d of %d", epoch, n_epochs);
        return PAD_ERR_INVALID_ARG;
    }
    PAD_TRY(pad_prompt_cohort_loss_grad(c));
    for (int i = 0; i < c->n; i++) {
        if (losses) PAD_TRY(pad_prompt_learner_loss(c->m[i], &losses[i]));
        const float lr = pad_prompt_lr(pad_prompt_learner_opts(c->m[i]), epoch, n_epochs);
        PAD_TRY(pad_prompt_learner_step(c->m[i], lr));
    }
    return PAD_OK;
}

pad_status pad_prompt_cohort_text_vectors(pad_prompt_cohort *c, float *const *out) {
    PAD_TRY(forward(c));
    for (int i = 0; i < c->n; i++)
        PAD_TRY(pad_prompt_learner_cohort_text_vectors(c->m[i], c->feat + (size_t)c->row0[i] * c->E, out[i]));
    return PAD_OK;
}
