/* test_text_cuda.c - CUDA parity of the text-tower backward and prompt-learning code against the CPU backend (the
 * reference): the ops attention_backward (causal and full, awkward sizes), l2norm_rows and its backward, xent0,
 * eam_loss (both axes) and dot; the text encoder forward/backward; the prompt learner's loss, gradients and three
 * epochs (also against the PyTorch fixtures); bitwise run-to-run determinism on the GPU. Every test skips without a
 * CUDA device. */
#include "backend.h"
#include "check.h"
#include "devbuf.h"
#include "prompt.h"
#include "prompt_set.h"
#include "text.h"
#include "tiny_model.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *cpu, *gpu;
static void setup(void) {
    cpu = gpu = NULL;
    cr_assert(pad_backend_cpu_init(&cpu, 0) == PAD_OK);
    if (pad_cuda_device_count() > 0) cr_assert(pad_backend_cuda_init(&gpu, 0) == PAD_OK);
}
static void teardown(void) {
    pad_backend_free(gpu);
    pad_backend_free(cpu);
}
TestSuite(text_cuda, .init = setup, .fini = teardown, .timeout = 300);

// ----------------------------------------------------------------------------
// ops

static void attention_backward_case(int B, int T, int NH, int HS, bool causal) {
    pad_rng rng = {(uint64_t)(T * 131 + HS * 7 + causal)};
    const int C = NH * HS;
    const size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    float *qkv = pad_test_rand(&rng, nq, -1, 1), *dout = pad_test_rand(&rng, no, -1, 1);
    float *out = malloc(no * sizeof(float)), *att = malloc(na * sizeof(float)), *want = malloc(nq * sizeof(float));
    cr_assert(pad_op_attention(cpu, out, att, qkv, B, T, NH, HS, causal) == PAD_OK);
    cr_assert(pad_op_attention_backward(cpu, want, dout, qkv, att, B, T, NH, HS, causal) == PAD_OK);
    // the GPU backward gets the CPU probabilities, so only the backward itself is compared
    float *dq = pad_test_upload(gpu, qkv, nq), *dd = pad_test_upload(gpu, dout, no),
          *da = pad_test_upload(gpu, att, na), *dg = pad_test_alloc(gpu, nq);
    cr_assert(pad_op_attention_backward(gpu, dg, dd, dq, da, B, T, NH, HS, causal) == PAD_OK);
    float *got = pad_test_download(gpu, dg, nq);
    char what[96];
    snprintf(what, sizeof what, "attention_backward B%d T%d NH%d HS%d %s", B, T, NH, HS, causal ? "causal" : "full");
    PAD_ASSERT_CLOSE(what, got, want, nq, 1e-5, 1e-4);
    // deterministic: a second run is bitwise identical
    cr_assert(pad_op_attention_backward(gpu, dg, dd, dq, da, B, T, NH, HS, causal) == PAD_OK);
    float *again = pad_test_download(gpu, dg, nq);
    cr_assert(memcmp(got, again, nq * sizeof(float)) == 0, "%s is not deterministic", what);
    pad_buf_free(gpu, dq);
    pad_buf_free(gpu, dd);
    pad_buf_free(gpu, da);
    pad_buf_free(gpu, dg);
    free(qkv);
    free(dout);
    free(out);
    free(att);
    free(want);
    free(got);
    free(again);
}

Test(text_cuda, attention_backward_matches_cpu) {
    PAD_REQUIRE_CUDA();
    const int sizes[][4] = {{2, 1, 2, 64}, {3, 17, 10, 64}, {2, 77, 2, 64}, {1, 15, 3, 16}, {2, 40, 1, 200}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int causal = 0; causal < 2; causal++)
            attention_backward_case(sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3], causal);
}

Test(text_cuda, loss_ops_match_cpu) {
    PAD_REQUIRE_CUDA();
    pad_rng rng = {99};
    // l2norm_rows and backward, 37 rows of 640 (and in place)
    {
        const int M = 37, C = 640;
        const size_t n = (size_t)M * C;
        float *x = pad_test_rand(&rng, n, -1, 1), *dy = pad_test_rand(&rng, n, -1, 1);
        float *y = malloc(n * 4), *nrm = malloc(M * 4), *dx = calloc(n, 4);
        cr_assert(pad_op_l2norm_rows(cpu, y, nrm, x, M, C) == PAD_OK);
        cr_assert(pad_op_l2norm_rows_backward(cpu, dx, dy, y, nrm, M, C) == PAD_OK);
        float *gx = pad_test_upload(gpu, x, n), *gy = pad_test_alloc(gpu, n), *gn = pad_test_alloc(gpu, M),
              *gdy = pad_test_upload(gpu, dy, n), *gdx = pad_test_alloc(gpu, n);
        cr_assert(pad_buf_zero(gpu, gdx, n * 4) == PAD_OK);
        cr_assert(pad_op_l2norm_rows(gpu, gy, gn, gx, M, C) == PAD_OK);
        cr_assert(pad_op_l2norm_rows_backward(gpu, gdx, gdy, gy, gn, M, C) == PAD_OK);
        float *hy = pad_test_download(gpu, gy, n), *hn = pad_test_download(gpu, gn, M),
              *hdx = pad_test_download(gpu, gdx, n);
        PAD_ASSERT_CLOSE("l2norm_rows", hy, y, n, 1e-6, 1e-5);
        PAD_ASSERT_CLOSE("l2norm_rows norms", hn, nrm, (size_t)M, 0, 1e-5);
        PAD_ASSERT_CLOSE("l2norm_rows_backward", hdx, dx, n, 1e-6, 1e-4);
        cr_assert(pad_op_l2norm_rows(gpu, gx, NULL, gx, M, C) == PAD_OK); // in place
        float *hx = pad_test_download(gpu, gx, n);
        PAD_ASSERT_CLOSE("l2norm_rows in place", hx, y, n, 1e-6, 1e-5);
        float *bufs[] = {gx, gy, gn, gdy, gdx};
        for (int i = 0; i < 5; i++)
            pad_buf_free(gpu, bufs[i]);
        float *hs[] = {x, dy, y, nrm, dx, hy, hn, hdx, hx};
        for (int i = 0; i < 9; i++)
            free(hs[i]);
    }
    // xent0: 900 rows (seg, 4 shots x 225 tokens) of 21 classes, and one row of 1 class
    const int shapes[2][2] = {{900, 21}, {1, 1}};
    for (int s = 0; s < 2; s++) {
        const int N = shapes[s][0], K = shapes[s][1];
        const size_t n = (size_t)N * K;
        float *z = pad_test_rand(&rng, n, -5, 5), *dz = malloc(n * 4), loss;
        cr_assert(pad_op_xent0(cpu, &loss, dz, z, N, K) == PAD_OK);
        float *gz = pad_test_upload(gpu, z, n), *gdz = pad_test_alloc(gpu, n), *gl = pad_test_alloc(gpu, 1);
        cr_assert(pad_op_xent0(gpu, gl, gdz, gz, N, K) == PAD_OK);
        float *hdz = pad_test_download(gpu, gdz, n), *hl = pad_test_download(gpu, gl, 1);
        PAD_ASSERT_CLOSE("xent0 dz", hdz, dz, n, 1e-7, 1e-4);
        PAD_ASSERT_CLOSE("xent0 loss", hl, &loss, 1, 1e-7, 1e-5);
        pad_buf_free(gpu, gz);
        pad_buf_free(gpu, gdz);
        pad_buf_free(gpu, gl);
        free(z);
        free(dz);
        free(hdz);
        free(hl);
    }
    // eam_loss: cls (B 4, T 1), seg per token and token axis (B 2, T 225), D 640, margins 0 and 0.2
    const int eshape[3][2] = {{4, 1}, {2, 225}, {2, 225}};
    for (int s = 0; s < 3; s++)
        for (int mi = 0; mi < 2; mi++) {
            const int B = eshape[s][0], T = eshape[s][1], D = 640;
            const bool axis = s == 2;
            const float margin = mi ? 0.2f : 0.0f;
            const size_t n = (size_t)B * T * D;
            float *f = pad_test_rand(&rng, n, -1, 1), *wn = pad_test_rand(&rng, D, -1, 1),
                  *wa = pad_test_rand(&rng, D, -1, 1);
            cr_assert(pad_op_l2norm_rows(cpu, f, NULL, f, B * T, D) == PAD_OK);
            cr_assert(pad_op_l2norm_rows(cpu, wn, NULL, wn, 1, D) == PAD_OK);
            cr_assert(pad_op_l2norm_rows(cpu, wa, NULL, wa, 1, D) == PAD_OK);
            float loss, *dwn = calloc(D, 4), *dwa = calloc(D, 4);
            cr_assert(pad_op_eam_loss(cpu, &loss, dwn, dwa, f, wn, wa, B, T, D, axis, margin) == PAD_OK);
            float *gf = pad_test_upload(gpu, f, n), *gwn = pad_test_upload(gpu, wn, D),
                  *gwa = pad_test_upload(gpu, wa, D), *gl = pad_test_alloc(gpu, 1);
            float *gdwn = pad_test_alloc(gpu, D), *gdwa = pad_test_alloc(gpu, D);
            cr_assert(pad_buf_zero(gpu, gdwn, D * 4) == PAD_OK && pad_buf_zero(gpu, gdwa, D * 4) == PAD_OK);
            cr_assert(pad_op_eam_loss(gpu, gl, gdwn, gdwa, gf, gwn, gwa, B, T, D, axis, margin) == PAD_OK);
            float *hl = pad_test_download(gpu, gl, 1), *hdwn = pad_test_download(gpu, gdwn, D),
                  *hdwa = pad_test_download(gpu, gdwa, D);
            char what[64];
            snprintf(what, sizeof what, "eam_loss case %d margin %.1f", s, margin);
            PAD_ASSERT_CLOSE(what, hl, &loss, 1, 1e-6, 1e-4);
            PAD_ASSERT_CLOSE(what, hdwn, dwn, (size_t)D, 1e-6, 1e-4);
            PAD_ASSERT_CLOSE(what, hdwa, dwa, (size_t)D, 1e-6, 1e-4);
            float *bufs[] = {gf, gwn, gwa, gl, gdwn, gdwa};
            for (int i = 0; i < 6; i++)
                pad_buf_free(gpu, bufs[i]);
            float *hs[] = {f, wn, wa, dwn, dwa, hl, hdwn, hdwa};
            for (int i = 0; i < 8; i++)
                free(hs[i]);
        }
    // dot over 1000 values
    {
        float *a = pad_test_rand(&rng, 1000, -1, 1), *b = pad_test_rand(&rng, 1000, -1, 1), want;
        cr_assert(pad_op_dot(cpu, &want, a, b, 1000, 0.5f) == PAD_OK);
        float *ga = pad_test_upload(gpu, a, 1000), *gb = pad_test_upload(gpu, b, 1000), *go = pad_test_alloc(gpu, 1);
        cr_assert(pad_op_dot(gpu, go, ga, gb, 1000, 0.5f) == PAD_OK);
        float *got = pad_test_download(gpu, go, 1);
        PAD_ASSERT_CLOSE("dot", got, &want, 1, 1e-6, 1e-5);
        pad_buf_free(gpu, ga);
        pad_buf_free(gpu, gb);
        pad_buf_free(gpu, go);
        free(a);
        free(b);
        free(got);
    }
}

// ----------------------------------------------------------------------------
// text encoder

Test(text_cuda, text_encoder_matches_cpu) {
    PAD_REQUIRE_CUDA();
    pad_st_file *fx = pad_fixture_open("text_backward.safetensors");
    pad_clip_weights *hw = pad_tiny514_weights(fx), *wc = NULL, *wg = NULL;
    cr_assert(pad_weights_to_backend(hw, cpu, &wc) == PAD_OK);
    cr_assert(pad_weights_to_backend(hw, gpu, &wg) == PAD_OK);
    const int P = 5, W = hw->cfg.text.width, E = hw->cfg.embed_dim;
    const int32_t eot[5] = {6, 16, 1, 9, 12};
    const int L = 17;
    pad_rng rng = {17};
    const size_t ne = (size_t)P * L * W;
    float *emb = pad_test_rand(&rng, ne, -0.1f, 0.1f), *dfeat = pad_test_rand(&rng, (size_t)P * E, -1, 1);
    pad_text_encoder *tc = NULL, *tg = NULL;
    cr_assert(pad_text_encoder_create(&tc, wc, P, L) == PAD_OK && pad_text_encoder_set_batch(tc, eot, P) == PAD_OK);
    cr_assert(pad_text_encoder_create(&tg, wg, P, L) == PAD_OK && pad_text_encoder_set_batch(tg, eot, P) == PAD_OK);
    float *feat = malloc((size_t)P * E * 4), *demb = malloc(ne * 4);
    cr_assert(pad_text_encoder_forward(tc, feat, emb) == PAD_OK);
    cr_assert(pad_text_encoder_backward(tc, demb, dfeat) == PAD_OK);
    float *gemb = pad_test_upload(gpu, emb, ne), *gdf = pad_test_upload(gpu, dfeat, (size_t)P * E),
          *gfeat = pad_test_alloc(gpu, (size_t)P * E);
    float *gdemb = pad_test_alloc(gpu, ne);
    cr_assert(pad_text_encoder_forward(tg, gfeat, gemb) == PAD_OK);
    cr_assert(pad_text_encoder_backward(tg, gdemb, gdf) == PAD_OK);
    float *hf = pad_test_download(gpu, gfeat, (size_t)P * E), *hd = pad_test_download(gpu, gdemb, ne);
    PAD_ASSERT_REL("text features cuda vs cpu", hf, feat, (size_t)P * E, 1e-5);
    PAD_ASSERT_REL("d emb cuda vs cpu", hd, demb, ne, 1e-4);
    cr_assert(pad_text_encoder_backward(tg, gdemb, gdf) == PAD_OK);
    float *hd2 = pad_test_download(gpu, gdemb, ne);
    cr_assert(memcmp(hd, hd2, ne * 4) == 0, "text backward on CUDA is not deterministic");
    pad_buf_free(gpu, gemb);
    pad_buf_free(gpu, gdf);
    pad_buf_free(gpu, gfeat);
    pad_buf_free(gpu, gdemb);
    pad_text_encoder_free(tc);
    pad_text_encoder_free(tg);
    pad_weights_free(wg);
    pad_weights_free(wc);
    pad_weights_free(hw);
    pad_st_close(fx);
    free(emb);
    free(dfeat);
    free(feat);
    free(demb);
    free(hf);
    free(hd);
    free(hd2);
}

// ----------------------------------------------------------------------------
// prompt learner

typedef struct side {
    pad_backend *be;
    pad_clip_weights *w;
    pad_prompt_learner *pl;
    float *feats;
} side;

static void learner_parity(const char *file, const char *cls_key, pad_prompt_task task) {
    pad_st_file *fx = pad_fixture_open(file);
    pad_clip_weights *hw = pad_tiny514_weights(fx);
    char vpath[512];
    snprintf(vpath, sizeof vpath, "%s/bytes.txt.gz", pad_test_tmpdir("text_cuda"));
    cr_assert(pad_tokenizer_write_byte_vocab(vpath) == PAD_OK);
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, vpath) == PAD_OK);
    pad_prompt_set *set = NULL;
    cr_assert(pad_prompt_set_open(&set, "official") == PAD_OK);
    pad_prompt_class cls;
    cr_assert(pad_prompt_set_class(set, cls_key, &cls) == PAD_OK);
    pad_prompt_opts o = pad_prompt_opts_default(task);
    const pad_st_tensor *ti = pad_st_find(fx, "image_features");
    const int B = (int)ti->shape[0], T = ti->ndim == 3 ? (int)ti->shape[1] : 1, E = hw->cfg.embed_dim;
    const int W = hw->cfg.text.width;
    float *feats = pad_fixture_f32(fx, "image_features", -1, NULL);
    const size_t nn = (size_t)o.n_pro * o.n_ctx * W, na = (size_t)o.n_pro_ab * o.n_ctx_ab * W;
    float *n0 = pad_fixture_f32(fx, "normal_ctx_init", -1, NULL),
          *a0 = pad_fixture_f32(fx, "abnormal_ctx_init", -1, NULL);
    side s[2] = {{cpu, NULL, NULL, NULL}, {gpu, NULL, NULL, NULL}};
    for (int k = 0; k < 2; k++) {
        cr_assert(pad_weights_to_backend(hw, s[k].be, &s[k].w) == PAD_OK);
        cr_assert(pad_prompt_learner_create(&s[k].pl, s[k].w, tok, &cls, &o) == PAD_OK);
        cr_assert(pad_buf_from_host(s[k].be, &s[k].feats, feats, (size_t)B * T * E) == PAD_OK);
        cr_assert(pad_prompt_learner_set_images(s[k].pl, s[k].feats, B, T) == PAD_OK);
        cr_assert(pad_prompt_learner_set_ctx(s[k].pl, n0, a0) == PAD_OK);
    }
    float *g[2][2], *p[2][2];
    pad_prompt_loss L[2];
    for (int k = 0; k < 2; k++) {
        g[k][0] = malloc(nn * 4);
        g[k][1] = malloc(na * 4);
        p[k][0] = malloc(nn * 4);
        p[k][1] = malloc(na * 4);
        cr_assert(pad_prompt_learner_loss_grad(s[k].pl) == PAD_OK);
        cr_assert(pad_prompt_learner_loss(s[k].pl, &L[k]) == PAD_OK);
        cr_assert(pad_prompt_learner_get_grad(s[k].pl, g[k][0], g[k][1]) == PAD_OK);
    }
    cr_assert(fabsf(L[1].total - L[0].total) <= 1e-5f * fabsf(L[0].total), "loss cuda %.9g cpu %.9g", L[1].total,
              L[0].total);
    PAD_ASSERT_REL("grad normal_ctx cuda vs cpu", g[1][0], g[0][0], nn, 1e-4);
    PAD_ASSERT_REL("grad abnormal_ctx cuda vs cpu", g[1][1], g[0][1], na, 1e-4);
    // three epochs from the init on both, then against each other and the reference
    for (int k = 0; k < 2; k++) {
        cr_assert(pad_prompt_learner_set_ctx(s[k].pl, n0, a0) == PAD_OK);
        for (int e = 0; e < 3; e++)
            cr_assert(pad_prompt_learner_train_epoch(s[k].pl, e, 3, &L[k]) == PAD_OK);
        cr_assert(pad_prompt_learner_get_ctx(s[k].pl, p[k][0], p[k][1]) == PAD_OK);
    }
    float *nw = pad_fixture_f32(fx, "normal_ctx_trained", -1, NULL),
          *aw = pad_fixture_f32(fx, "abnormal_ctx_trained", -1, NULL);
    PAD_ASSERT_REL("trained normal_ctx cuda vs cpu", p[1][0], p[0][0], nn, 1e-5);
    PAD_ASSERT_REL("trained abnormal_ctx cuda vs cpu", p[1][1], p[0][1], na, 1e-5);
    PAD_ASSERT_REL("trained normal_ctx cuda vs reference", p[1][0], nw, nn, 1e-4);
    PAD_ASSERT_REL("trained abnormal_ctx cuda vs reference", p[1][1], aw, na, 1e-4);
    // GPU determinism: the same three epochs again give bitwise the same vectors
    float *again = malloc(nn * 4);
    cr_assert(pad_prompt_learner_set_ctx(s[1].pl, n0, a0) == PAD_OK);
    for (int e = 0; e < 3; e++)
        cr_assert(pad_prompt_learner_train_epoch(s[1].pl, e, 3, NULL) == PAD_OK);
    cr_assert(pad_prompt_learner_get_ctx(s[1].pl, again, NULL) == PAD_OK);
    cr_assert(memcmp(again, p[1][0], nn * 4) == 0, "prompt training on CUDA is not deterministic");
    // inference vectors
    float *tv[2];
    for (int k = 0; k < 2; k++) {
        float *d = (float *)pad_buf_alloc(s[k].be, (size_t)2 * E * 4);
        tv[k] = malloc((size_t)2 * E * 4);
        cr_assert(pad_prompt_learner_text_vectors(s[k].pl, d) == PAD_OK);
        cr_assert(pad_buf_download(s[k].be, tv[k], d, (size_t)2 * E * 4) == PAD_OK);
        pad_buf_free(s[k].be, d);
    }
    PAD_ASSERT_REL("text vectors cuda vs cpu", tv[1], tv[0], (size_t)2 * E, 1e-5);
    for (int k = 0; k < 2; k++) {
        pad_buf_free(s[k].be, s[k].feats);
        pad_prompt_learner_free(s[k].pl);
        pad_weights_free(s[k].w);
        for (int j = 0; j < 2; j++) {
            free(g[k][j]);
            free(p[k][j]);
        }
        free(tv[k]);
    }
    free(again);
    free(nw);
    free(aw);
    free(n0);
    free(a0);
    free(feats);
    pad_prompt_set_free(set);
    pad_tokenizer_free(tok);
    pad_weights_free(hw);
    pad_st_close(fx);
}

Test(text_cuda, prompt_learner_cls_matches_cpu) {
    PAD_REQUIRE_CUDA();
    learner_parity("prompt_cls.safetensors", "bottle", PAD_TASK_CLS);
}

Test(text_cuda, prompt_learner_seg_matches_cpu) {
    PAD_REQUIRE_CUDA();
    learner_parity("prompt_seg.safetensors", "metal_nut", PAD_TASK_SEG);
}
