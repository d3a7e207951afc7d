/* test_text.c - the CPU text tower against the PyTorch reference (tests/ref/ref_text.py, float64): raw features of
 * token ids (the reference runs all 77 positions, we cut after the last EOT), the backward pass to the input
 * embeddings, central finite differences, and the encoder's argument checks. */
#include "check.h"
#include "text.h"
#include "tiny_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *be;
static void setup(void) {
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
}
static void teardown(void) {
    pad_backend_free(be);
}
TestSuite(text, .init = setup, .fini = teardown, .timeout = 120);

Test(text, features_of_token_ids_match_reference) {
    pad_st_file *fx = pad_fixture_open("text_features.safetensors");
    pad_clip_weights *hw = pad_tiny514_weights(fx), *w = NULL;
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    const pad_st_tensor *ti = pad_st_find(fx, "ids");
    cr_assert(ti && ti->dtype == PAD_DTYPE_I32 && ti->ndim == 2 && ti->shape[1] == 77);
    const int n = (int)ti->shape[0], E = hw->cfg.embed_dim;
    int32_t *ids = malloc((size_t)ti->nbytes);
    memcpy(ids, ti->data, ti->nbytes);
    float *want = pad_fixture_f32(fx, "features", 2, (int64_t[]){n, E});
    float *got = malloc(sizeof(float) * n * E);
    cr_assert(pad_text_encode_ids(w, ids, n, 77, got) == PAD_OK);
    PAD_ASSERT_REL("text features", got, want, (size_t)n * E, 1e-5);
    for (int p = 0; p < n; p++) // per prompt too, so that a short prompt cannot hide behind a long one
        PAD_ASSERT_REL("text features (one prompt)", got + p * E, want + p * E, (size_t)E, 1e-5);
    // an id outside the vocabulary is an error naming the sequence, not a crash
    ids[77 + 3] = 514;
    cr_assert(pad_text_encode_ids(w, ids, n, 77, got) == PAD_ERR_INVALID_ARG);
    free(ids);
    free(want);
    free(got);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_st_close(fx);
}

typedef struct bwd_case {
    pad_st_file *fx;
    pad_clip_weights *hw, *w;
    pad_text_encoder *te;
    int P, L, W, E;
    float *emb, *dfeat, *feat_want, *demb_want;
    int32_t eot[16];
} bwd_case;

static void bwd_open(bwd_case *c) {
    c->fx = pad_fixture_open("text_backward.safetensors");
    c->hw = pad_tiny514_weights(c->fx);
    cr_assert(pad_weights_to_backend(c->hw, be, &c->w) == PAD_OK);
    const pad_st_tensor *te = pad_st_find(c->fx, "eot");
    cr_assert(te && te->dtype == PAD_DTYPE_I32 && te->numel <= 16);
    c->P = (int)te->numel;
    memcpy(c->eot, te->data, te->nbytes);
    c->L = 0;
    for (int p = 0; p < c->P; p++)
        c->L = c->eot[p] + 1 > c->L ? c->eot[p] + 1 : c->L;
    c->W = c->hw->cfg.text.width;
    c->E = c->hw->cfg.embed_dim;
    c->emb = pad_fixture_f32(c->fx, "emb", 3, (int64_t[]){c->P, c->L, c->W});
    c->dfeat = pad_fixture_f32(c->fx, "dfeat", 2, (int64_t[]){c->P, c->E});
    c->feat_want = pad_fixture_f32(c->fx, "feat", 2, (int64_t[]){c->P, c->E});
    c->demb_want = pad_fixture_f32(c->fx, "demb", 3, (int64_t[]){c->P, c->L, c->W});
    // capacity larger than the batch: the encoder must use the compact (P, L) layout of the current batch
    cr_assert(pad_text_encoder_create(&c->te, c->w, c->P + 2, 20) == PAD_OK);
    cr_assert(pad_text_encoder_set_batch(c->te, c->eot, c->P) == PAD_OK);
    cr_assert(pad_text_encoder_seq_len(c->te) == c->L && pad_text_encoder_batch(c->te) == c->P);
}

static void bwd_close(bwd_case *c) {
    pad_text_encoder_free(c->te);
    pad_weights_free(c->w);
    pad_weights_free(c->hw);
    free(c->emb);
    free(c->dfeat);
    free(c->feat_want);
    free(c->demb_want);
    pad_st_close(c->fx);
}

static double loss_of(bwd_case *c, const float *emb, float *feat) {
    cr_assert(pad_text_encoder_forward(c->te, feat, emb) == PAD_OK);
    double s = 0.0;
    for (int i = 0; i < c->P * c->E; i++)
        s += (double)feat[i] * c->dfeat[i];
    return s;
}

Test(text, backward_to_embeddings_matches_reference) {
    bwd_case c;
    bwd_open(&c);
    const size_t n_emb = (size_t)c.P * c.L * c.W;
    float *feat = malloc(sizeof(float) * c.P * c.E), *demb = malloc(sizeof(float) * n_emb);
    float *emb_copy = malloc(sizeof(float) * n_emb);
    memcpy(emb_copy, c.emb, sizeof(float) * n_emb);
    cr_assert(pad_text_encoder_forward(c.te, feat, c.emb) == PAD_OK);
    cr_assert(memcmp(emb_copy, c.emb, sizeof(float) * n_emb) == 0, "forward modified its input");
    PAD_ASSERT_REL("features", feat, c.feat_want, (size_t)c.P * c.E, 1e-5);
    cr_assert(pad_text_encoder_backward(c.te, demb, c.dfeat) == PAD_OK);
    PAD_ASSERT_REL("d emb", demb, c.demb_want, n_emb, 1e-4);
    // rows after each EOT get exactly zero gradient (causal mask)
    for (int p = 0; p < c.P; p++)
        for (int t = c.eot[p] + 1; t < c.L; t++)
            for (int i = 0; i < c.W; i++)
                cr_assert(demb[((size_t)p * c.L + t) * c.W + i] == 0.0f, "gradient after EOT (p %d t %d)", p, t);
    // backward is repeatable and does not depend on earlier calls
    float *demb2 = malloc(sizeof(float) * n_emb);
    cr_assert(pad_text_encoder_backward(c.te, demb2, c.dfeat) == PAD_OK);
    cr_assert(memcmp(demb, demb2, sizeof(float) * n_emb) == 0);
    free(demb2);
    free(emb_copy);
    free(feat);
    free(demb);
    bwd_close(&c);
}

Test(text, backward_matches_central_finite_differences) {
    bwd_case c;
    bwd_open(&c);
    const size_t n_emb = (size_t)c.P * c.L * c.W;
    float *feat = malloc(sizeof(float) * c.P * c.E), *demb = malloc(sizeof(float) * n_emb);
    loss_of(&c, c.emb, feat);
    cr_assert(pad_text_encoder_backward(c.te, demb, c.dfeat) == PAD_OK);
    double gmax = 0.0;
    for (size_t i = 0; i < n_emb; i++)
        gmax = fmax(gmax, fabs(demb[i]));
    // a few coordinates spread over prompts, positions (incl. EOT rows and the first token) and channels
    const int coords[][3] = {{0, 0, 0}, {0, 5, 7}, {1, 2, 100}, {1, 1, 3}, {2, 4, 127}, {2, 3, 64}, {0, 3, 31}};
    const float eps = 1e-3f;
    // a coordinate after its EOT would be left out (zero gradient, checked above); in this fixture all 7 are before it
    int n_checked = 0, n_eot = 0;
    for (size_t k = 0; k < sizeof coords / sizeof coords[0]; k++) {
        int p = coords[k][0], t = coords[k][1], i = coords[k][2];
        if (t > c.eot[p]) continue;
        n_checked++;
        n_eot += t == c.eot[p];
        size_t at = ((size_t)p * c.L + t) * c.W + i;
        float x0 = c.emb[at];
        c.emb[at] = x0 + eps;
        double lp = loss_of(&c, c.emb, feat);
        c.emb[at] = x0 - eps;
        double lm = loss_of(&c, c.emb, feat);
        c.emb[at] = x0;
        double fd = (lp - lm) / (2.0 * eps);
        cr_assert(fabs(fd - demb[at]) <= 1e-2 * fabs(demb[at]) + 2e-3 * gmax,
                  "finite differences at (p %d, t %d, i %d): fd %.6g, backward %.6g (max |grad| %.3g)", p, t, i, fd,
                  demb[at], gmax);
    }
    cr_assert(n_checked >= 7 && n_eot >= 1, "only %d coordinates checked (%d on an EOT row): the fixture changed?",
              n_checked, n_eot);
    free(feat);
    free(demb);
    bwd_close(&c);
}

Test(text, bad_arguments_are_errors) {
    pad_st_file *fx = pad_fixture_open("text_backward.safetensors");
    pad_clip_weights *hw = pad_tiny514_weights(fx), *w = NULL;
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    pad_text_encoder *te = NULL;
    cr_assert(pad_text_encoder_create(&te, w, 0, 10) == PAD_ERR_INVALID_ARG && !te);
    cr_assert(pad_text_encoder_create(&te, w, 2, 78) == PAD_ERR_INVALID_ARG && !te); // beyond the context
    cr_assert(pad_text_encoder_create(&te, w, 2, 10) == PAD_OK);
    float feat[64 * 2], emb[10 * 128 * 2];
    cr_assert(pad_text_encoder_forward(te, feat, emb) == PAD_ERR_INVALID_ARG); // no batch yet
    int32_t eot[3] = {3, 10, 2};
    cr_assert(pad_text_encoder_set_batch(te, eot, 3) == PAD_ERR_INVALID_ARG); // too many sequences
    cr_assert(pad_text_encoder_set_batch(te, eot, 2) == PAD_ERR_INVALID_ARG); // EOT beyond the capacity
    eot[1] = 9;
    cr_assert(pad_text_encoder_set_batch(te, eot, 2) == PAD_OK && pad_text_encoder_seq_len(te) == 10);
    int32_t ids[4] = {5, 513, 0, 7};
    cr_assert(pad_text_eot_index(ids, 4) == 1 && pad_text_eot_index(ids, 0) == -1);
    pad_text_encoder_free(te);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_st_close(fx);
}
