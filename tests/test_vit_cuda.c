/* test_vit_cuda.c - CUDA twins of the vision-tower ops against the CPU reference (attention standard/causal with
 * saved probabilities, attention_dual, patch_embed, layernorm, gelu, add_rows), and the whole dual-path tower on
 * CUDA against the CPU and the float64 fixture. Skips without a CUDA device. */
#include "backend.h"
#include "check.h"
#include "devbuf.h"
#include "vit.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// (B, T, NH, HS): awkward sizes, the ViT-B-16-plus-240 case, ViT-L/14@224 (T = 257), the text tower, HS = 128
static const int k_att_sizes[][4] = {{2, 1, 1, 8},     {1, 17, 3, 16},  {1, 33, 2, 5},  {2, 226, 14, 64},
                                     {1, 257, 16, 64}, {3, 77, 10, 64}, {1, 40, 2, 128}};
#define N_ATT_SIZES (int)(sizeof k_att_sizes / sizeof k_att_sizes[0])

Test(vit_cuda, attention_matches_cpu) {
    PAD_REQUIRE_CUDA();
    pad_test_pair p = pad_test_pair_open();
    pad_rng rng = {11};
    for (int i = 0; i < N_ATT_SIZES; i++)
        for (int causal = 0; causal < 2; causal++) {
            const int B = k_att_sizes[i][0], T = k_att_sizes[i][1], NH = k_att_sizes[i][2], HS = k_att_sizes[i][3];
            const size_t nqkv = (size_t)B * T * 3 * NH * HS, n = (size_t)B * T * NH * HS, na = (size_t)B * NH * T * T;
            float *qkv = pad_test_rand(&rng, nqkv, -2, 2);
            float *out = malloc(n * sizeof(float)), *att = malloc(na * sizeof(float));
            cr_assert(pad_op_attention(p.cpu, out, att, qkv, B, T, NH, HS, causal) == PAD_OK);
            float *d_qkv = pad_test_upload(p.gpu, qkv, nqkv), *d_out = pad_test_alloc(p.gpu, n),
                  *d_att = pad_test_alloc(p.gpu, na);
            cr_assert(pad_buf_zero(p.gpu, d_att, na * sizeof(float)) == PAD_OK);
            cr_assert(pad_op_attention(p.gpu, d_out, d_att, d_qkv, B, T, NH, HS, causal) == PAD_OK);
            float *g_out = pad_test_download(p.gpu, d_out, n), *g_att = pad_test_download(p.gpu, d_att, na);
            char what[128];
            snprintf(what, sizeof what, "attention B%d T%d NH%d HS%d causal %d: out", B, T, NH, HS, causal);
            PAD_ASSERT_CLOSE(what, g_out, out, n, 1e-5, 1e-4);
            snprintf(what, sizeof what, "attention B%d T%d NH%d HS%d causal %d: att", B, T, NH, HS, causal);
            PAD_ASSERT_CLOSE(what, g_att, att, na, 1e-6, 1e-4);
            // without att: same output bits (the probabilities sweep must not change the output)
            float *d_out2 = pad_test_alloc(p.gpu, n);
            cr_assert(pad_op_attention(p.gpu, d_out2, NULL, d_qkv, B, T, NH, HS, causal) == PAD_OK);
            float *g_out2 = pad_test_download(p.gpu, d_out2, n);
            cr_assert(memcmp(g_out, g_out2, n * sizeof(float)) == 0, "%s: output depends on att", what);
            pad_buf_free(p.gpu, d_qkv);
            pad_buf_free(p.gpu, d_out);
            pad_buf_free(p.gpu, d_out2);
            pad_buf_free(p.gpu, d_att);
            free(qkv);
            free(out);
            free(att);
            free(g_out);
            free(g_out2);
            free(g_att);
        }
    pad_test_pair_close(&p);
}

Test(vit_cuda, attention_dual_matches_cpu_and_is_deterministic) {
    PAD_REQUIRE_CUDA();
    pad_test_pair p = pad_test_pair_open();
    pad_rng rng = {12};
    for (int i = 0; i < N_ATT_SIZES; i++) {
        const int B = k_att_sizes[i][0], T = k_att_sizes[i][1], NH = k_att_sizes[i][2], HS = k_att_sizes[i][3];
        const size_t nqkv = (size_t)B * T * 3 * NH * HS, n = (size_t)B * T * NH * HS;
        float *qkv = pad_test_rand(&rng, nqkv, -2, 2);
        float *qk = malloc(n * sizeof(float)), *vv = malloc(n * sizeof(float));
        cr_assert(pad_op_attention_dual(p.cpu, qk, vv, qkv, B, T, NH, HS) == PAD_OK);
        float *d_qkv = pad_test_upload(p.gpu, qkv, nqkv), *d_qk = pad_test_alloc(p.gpu, n),
              *d_vv = pad_test_alloc(p.gpu, n);
        cr_assert(pad_op_attention_dual(p.gpu, d_qk, d_vv, d_qkv, B, T, NH, HS) == PAD_OK);
        float *g_qk = pad_test_download(p.gpu, d_qk, n), *g_vv = pad_test_download(p.gpu, d_vv, n);
        char what[128];
        snprintf(what, sizeof what, "attention_dual B%d T%d NH%d HS%d: qk", B, T, NH, HS);
        PAD_ASSERT_CLOSE(what, g_qk, qk, n, 1e-5, 1e-4);
        snprintf(what, sizeof what, "attention_dual B%d T%d NH%d HS%d: vv", B, T, NH, HS);
        PAD_ASSERT_CLOSE(what, g_vv, vv, n, 1e-5, 1e-4);
        // a rerun is bitwise identical (no atomics, fixed reduction order)
        float *d_qk2 = pad_test_alloc(p.gpu, n), *d_vv2 = pad_test_alloc(p.gpu, n);
        cr_assert(pad_op_attention_dual(p.gpu, d_qk2, d_vv2, d_qkv, B, T, NH, HS) == PAD_OK);
        float *g_rerun = pad_test_download(p.gpu, d_vv2, n);
        cr_assert(memcmp(g_vv, g_rerun, n * sizeof(float)) == 0, "%s: vv differs between runs", what);
        free(g_rerun);
        // each path alone (other kernel instantiations: equal up to the compiler's FMA choices)
        cr_assert(pad_op_attention_dual(p.gpu, d_qk2, NULL, d_qkv, B, T, NH, HS) == PAD_OK);
        cr_assert(pad_op_attention_dual(p.gpu, NULL, d_vv2, d_qkv, B, T, NH, HS) == PAD_OK);
        float *g_qk2 = pad_test_download(p.gpu, d_qk2, n), *g_vv2 = pad_test_download(p.gpu, d_vv2, n);
        PAD_ASSERT_CLOSE("attention_dual qk alone", g_qk2, g_qk, n, 1e-7, 1e-6);
        PAD_ASSERT_CLOSE("attention_dual vv alone", g_vv2, g_vv, n, 1e-7, 1e-6);
        // the q-k path of the dual kernel is standard attention
        cr_assert(pad_op_attention(p.gpu, d_qk2, NULL, d_qkv, B, T, NH, HS, false) == PAD_OK);
        float *g_std = pad_test_download(p.gpu, d_qk2, n);
        PAD_ASSERT_CLOSE("attention_dual qk vs attention", g_std, g_qk, n, 1e-7, 1e-6);
        pad_buf_free(p.gpu, d_qk2);
        pad_buf_free(p.gpu, d_vv2);
        pad_buf_free(p.gpu, d_qkv);
        pad_buf_free(p.gpu, d_qk);
        pad_buf_free(p.gpu, d_vv);
        free(qkv);
        free(qk);
        free(vv);
        free(g_qk);
        free(g_vv);
        free(g_qk2);
        free(g_vv2);
        free(g_std);
    }
    pad_test_pair_close(&p);
}

Test(vit_cuda, attention_matches_reference_fixture) {
    PAD_REQUIRE_CUDA();
    pad_test_pair p = pad_test_pair_open();
    pad_st_file *f = pad_fixture_open("attention_ops.safetensors");
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "c%d_dims", i);
        float *dims = pad_fixture_f32(f, name, 1, (int64_t[]){4});
        const int B = (int)dims[0], T = (int)dims[1], NH = (int)dims[2], HS = (int)dims[3];
        free(dims);
        const size_t n = (size_t)B * T * NH * HS;
        snprintf(name, sizeof name, "c%d_qkv", i);
        float *qkv = pad_fixture_f32(f, name, -1, NULL);
        snprintf(name, sizeof name, "c%d_dual_vv", i);
        float *want_vv = pad_fixture_f32(f, name, -1, NULL);
        snprintf(name, sizeof name, "c%d_causal_out", i);
        float *want_causal = pad_fixture_f32(f, name, -1, NULL);
        float *d_qkv = pad_test_upload(p.gpu, qkv, 3 * n), *d_a = pad_test_alloc(p.gpu, n),
              *d_b = pad_test_alloc(p.gpu, n);
        cr_assert(pad_op_attention_dual(p.gpu, NULL, d_a, d_qkv, B, T, NH, HS) == PAD_OK);
        cr_assert(pad_op_attention(p.gpu, d_b, NULL, d_qkv, B, T, NH, HS, true) == PAD_OK);
        float *g_a = pad_test_download(p.gpu, d_a, n), *g_b = pad_test_download(p.gpu, d_b, n);
        PAD_ASSERT_CLOSE("cuda dual vv vs fixture", g_a, want_vv, n, 1e-5, 1e-4);
        PAD_ASSERT_CLOSE("cuda causal vs fixture", g_b, want_causal, n, 1e-5, 1e-4);
        pad_buf_free(p.gpu, d_qkv);
        pad_buf_free(p.gpu, d_a);
        pad_buf_free(p.gpu, d_b);
        free(qkv);
        free(want_vv);
        free(want_causal);
        free(g_a);
        free(g_b);
    }
    pad_st_close(f);
    pad_test_pair_close(&p);
}

Test(vit_cuda, patch_embed_layernorm_gelu_add_rows_match_cpu) {
    PAD_REQUIRE_CUDA();
    pad_test_pair p = pad_test_pair_open();
    pad_rng rng = {13};
    // patch embedding: tiny geometry with B = 3, and ViT-B-16-plus-240 with B = 1
    static const int pe[2][4] = {{3, 64, 16, 128}, {1, 240, 16, 896}}; // B, S, P, D
    for (int k = 0; k < 2; k++) {
        const int B = pe[k][0], S = pe[k][1], P = pe[k][2], D = pe[k][3], G = S / P, T = 1 + G * G;
        const size_t npix = (size_t)B * 3 * S * S, nw = (size_t)D * 3 * P * P, nx = (size_t)B * T * D;
        float *pix = pad_test_rand(&rng, npix, -2, 2), *w = pad_test_rand(&rng, nw, -0.05f, 0.05f);
        float *cls = pad_test_rand(&rng, (size_t)D, -1, 1), *pos = pad_test_rand(&rng, (size_t)T * D, -1, 1);
        float *x = malloc(nx * sizeof(float));
        cr_assert(pad_op_patch_embed(p.cpu, x, pix, w, cls, pos, B, S, P, D) == PAD_OK);
        float *d_pix = pad_test_upload(p.gpu, pix, npix), *d_w = pad_test_upload(p.gpu, w, nw);
        float *d_cls = pad_test_upload(p.gpu, cls, (size_t)D), *d_pos = pad_test_upload(p.gpu, pos, (size_t)T * D);
        float *d_x = pad_test_alloc(p.gpu, nx);
        cr_assert(pad_op_patch_embed(p.gpu, d_x, d_pix, d_w, d_cls, d_pos, B, S, P, D) == PAD_OK);
        float *g_x = pad_test_download(p.gpu, d_x, nx);
        PAD_ASSERT_CLOSE("patch_embed", g_x, x, nx, 1e-5, 1e-4);
        pad_buf_free(p.gpu, d_pix);
        pad_buf_free(p.gpu, d_w);
        pad_buf_free(p.gpu, d_cls);
        pad_buf_free(p.gpu, d_pos);
        pad_buf_free(p.gpu, d_x);
        free(pix);
        free(w);
        free(cls);
        free(pos);
        free(x);
        free(g_x);
    }
    // layernorm (with saved statistics), gelu, add_rows on (2 x 226, 896) rows
    const int M = 452, C = 896;
    const size_t n = (size_t)M * C;
    float *x = pad_test_rand(&rng, n, -3, 3), *w = pad_test_rand(&rng, (size_t)C, 0.5f, 1.5f);
    float *b = pad_test_rand(&rng, (size_t)C, -0.5f, 0.5f), *v = pad_test_rand(&rng, (size_t)226 * C, -1, 1);
    float *y = malloc(n * sizeof(float)), *mean = malloc((size_t)M * sizeof(float)), *rstd = malloc(M * sizeof(float));
    float *d_x = pad_test_upload(p.gpu, x, n), *d_w = pad_test_upload(p.gpu, w, (size_t)C),
          *d_b = pad_test_upload(p.gpu, b, (size_t)C);
    float *d_v = pad_test_upload(p.gpu, v, (size_t)226 * C), *d_y = pad_test_alloc(p.gpu, n);
    float *d_mean = pad_test_alloc(p.gpu, (size_t)M), *d_rstd = pad_test_alloc(p.gpu, (size_t)M);
    cr_assert(pad_op_layernorm(p.cpu, y, mean, rstd, x, w, b, M, C, 1e-5f) == PAD_OK);
    cr_assert(pad_op_layernorm(p.gpu, d_y, d_mean, d_rstd, d_x, d_w, d_b, M, C, 1e-5f) == PAD_OK);
    float *g_y = pad_test_download(p.gpu, d_y, n), *g_mean = pad_test_download(p.gpu, d_mean, (size_t)M);
    float *g_rstd = pad_test_download(p.gpu, d_rstd, (size_t)M);
    PAD_ASSERT_CLOSE("layernorm", g_y, y, n, 1e-5, 1e-4);
    PAD_ASSERT_CLOSE("layernorm mean", g_mean, mean, (size_t)M, 1e-6, 1e-4);
    PAD_ASSERT_CLOSE("layernorm rstd", g_rstd, rstd, (size_t)M, 1e-6, 1e-4);
    free(g_y);
    cr_assert(pad_op_gelu(p.cpu, y, x, n) == PAD_OK);
    cr_assert(pad_op_gelu(p.gpu, d_y, d_x, n) == PAD_OK);
    g_y = pad_test_download(p.gpu, d_y, n);
    PAD_ASSERT_CLOSE("gelu", g_y, y, n, 1e-6, 1e-5);
    free(g_y);
    static const int R[2] = {1, 226};
    for (int k = 0; k < 2; k++) {
        memcpy(y, x, n * sizeof(float));
        cr_assert(pad_buf_copy(p.gpu, d_y, d_x, n * sizeof(float)) == PAD_OK);
        cr_assert(pad_op_add_rows(p.cpu, y, R[k] == 1 ? b : v, M, C, R[k]) == PAD_OK);
        cr_assert(pad_op_add_rows(p.gpu, d_y, R[k] == 1 ? d_b : d_v, M, C, R[k]) == PAD_OK);
        g_y = pad_test_download(p.gpu, d_y, n);
        PAD_ASSERT_CLOSE("add_rows", g_y, y, n, 0, 1e-6);
        free(g_y);
    }
    float *bufs[] = {d_x, d_w, d_b, d_v, d_y, d_mean, d_rstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pad_buf_free(p.gpu, bufs[i]);
    free(x);
    free(w);
    free(b);
    free(v);
    free(y);
    free(mean);
    free(rstd);
    free(g_mean);
    free(g_rstd);
    pad_test_pair_close(&p);
}

// ----------------------------------------------------------------------------
// whole tower

typedef struct feats {
    float *cls, *tokens, *mid1, *mid2;
    size_t n_cls, n_tok, n_mid;
} feats;

static feats run_tower(pad_backend *be, const pad_clip_weights *host, const float *pix, int n, int max_batch) {
    pad_clip_weights *w = NULL;
    cr_assert(pad_weights_to_backend(host, be, &w) == PAD_OK);
    pad_vit_params prm = pad_vit_default_params();
    prm.max_batch = max_batch;
    pad_vit *vit = NULL;
    cr_assert(pad_vit_create(&vit, be, w, &prm) == PAD_OK);
    const pad_vision_cfg *c = &host->cfg.vision;
    feats f;
    f.n_cls = (size_t)n * host->cfg.embed_dim;
    f.n_tok = f.n_cls * c->grid * c->grid;
    f.n_mid = (size_t)n * c->grid * c->grid * c->width;
    f.cls = malloc(f.n_cls * sizeof(float));
    f.tokens = malloc(f.n_tok * sizeof(float));
    f.mid1 = malloc(f.n_mid * sizeof(float));
    f.mid2 = malloc(f.n_mid * sizeof(float));
    pad_vit_out o = {f.cls, f.tokens, f.mid1, f.mid2};
    cr_assert(pad_vit_encode_host(vit, pix, n, &o) == PAD_OK);
    pad_vit_free(vit);
    pad_weights_free(w);
    return f;
}

static void feats_free(feats *f) {
    free(f->cls);
    free(f->tokens);
    free(f->mid1);
    free(f->mid2);
}

static void assert_feats_close(const char *tag, const feats *got, const feats *want, double atol, double rtol) {
    char what[96];
    snprintf(what, sizeof what, "%s cls", tag);
    PAD_ASSERT_CLOSE(what, got->cls, want->cls, want->n_cls, atol, rtol);
    snprintf(what, sizeof what, "%s tokens", tag);
    PAD_ASSERT_CLOSE(what, got->tokens, want->tokens, want->n_tok, atol, rtol);
    snprintf(what, sizeof what, "%s mid1", tag);
    PAD_ASSERT_CLOSE(what, got->mid1, want->mid1, want->n_mid, atol, rtol);
    snprintf(what, sizeof what, "%s mid2", tag);
    PAD_ASSERT_CLOSE(what, got->mid2, want->mid2, want->n_mid, atol, rtol);
}

Test(vit_cuda, tiny_tower_matches_cpu_and_fixture) {
    PAD_REQUIRE_CUDA();
    pad_test_pair p = pad_test_pair_open();
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
    pad_clip_weights *host = NULL;
    cr_assert(pad_weights_make_random(&host, &cfg, 0) == PAD_OK);
    pad_st_file *f = pad_fixture_open("vision_tiny.safetensors");
    const int S = cfg.vision.image_size;
    float *pix = pad_fixture_f32(f, "pixels", 4, (int64_t[]){3, 3, S, S});
    feats c = run_tower(p.cpu, host, pix, 3, 3);
    feats g = run_tower(p.gpu, host, pix, 3, 2); // chunks of 2 and 1 on the GPU
    assert_feats_close("tiny cuda vs cpu", &g, &c, 2e-5, 2e-4);
    feats fx = {pad_fixture_f32(f, "cls", -1, NULL),
                pad_fixture_f32(f, "tokens", -1, NULL),
                pad_fixture_f32(f, "mid1", -1, NULL),
                pad_fixture_f32(f, "mid2", -1, NULL),
                c.n_cls,
                c.n_tok,
                c.n_mid};
    assert_feats_close("tiny cuda vs fixture", &g, &fx, 2e-5, 2e-4);
    // deterministic run to run
    feats g2 = run_tower(p.gpu, host, pix, 3, 2);
    cr_assert(memcmp(g.tokens, g2.tokens, g.n_tok * sizeof(float)) == 0, "CUDA tokens differ between runs");
    cr_assert(memcmp(g.mid2, g2.mid2, g.n_mid * sizeof(float)) == 0, "CUDA mid2 differs between runs");
    feats_free(&c);
    feats_free(&g);
    feats_free(&g2);
    feats_free(&fx);
    free(pix);
    pad_st_close(f);
    pad_weights_free(host);
    pad_test_pair_close(&p);
}

// Random weights of a preset (*host) and n random images in [-2, 2] for them.
static float *random_tower(pad_model_preset preset, uint64_t seed, int n, pad_clip_weights **host) {
    pad_clip_cfg cfg = pad_model_preset_cfg(preset);
    cr_assert(pad_weights_make_random(host, &cfg, seed) == PAD_OK);
    const int S = cfg.vision.image_size;
    pad_rng rng = {seed + 11};
    return pad_test_rand(&rng, (size_t)n * 3 * S * S, -2, 2);
}

// An image's features do not depend on the images encoded with it (the default GEMM mode runs one cuBLAS call per
// image with the sizes of one image, host/backend/backend.h): a batch of 3 gives each image's bits alone. The run
// encodes a group's new shots as one batch, whichever shots a shard, a worker or a cohort draws first, so this is
// what lets --shard and --gpus reproduce an unsharded run on the GPU.
Test(vit_cuda, images_are_independent_of_the_batch) {
    PAD_REQUIRE_CUDA();
    pad_test_pair p = pad_test_pair_open();
    pad_clip_weights *host = NULL;
    const int n = 3;
    float *pix = random_tower(PAD_MODEL_TINY, 10, n, &host);
    const size_t per = (size_t)3 * host->cfg.vision.image_size * host->cfg.vision.image_size;
    feats all = run_tower(p.gpu, host, pix, n, n);
    for (int i = 0; i < n; i++) {
        feats one = run_tower(p.gpu, host, pix + (size_t)i * per, 1, 1);
        const float *got[4] = {one.cls, one.tokens, one.mid1, one.mid2};
        const float *in_batch[4] = {all.cls + (size_t)i * one.n_cls, all.tokens + (size_t)i * one.n_tok,
                                    all.mid1 + (size_t)i * one.n_mid, all.mid2 + (size_t)i * one.n_mid};
        const size_t len[4] = {one.n_cls, one.n_tok, one.n_mid, one.n_mid};
        static const char *const what[4] = {"cls", "tokens", "mid1", "mid2"};
        for (int o = 0; o < 4; o++)
            cr_assert(memcmp(got[o], in_batch[o], len[o] * sizeof(float)) == 0, "image %d: %s differs in a batch", i,
                      what[o]);
        feats_free(&one);
    }
    feats_free(&all);
    free(pix);
    pad_weights_free(host);
    pad_test_pair_close(&p);
}

Test(vit_cuda, full_size_tower_matches_cpu) {
    PAD_REQUIRE_CUDA();
    pad_test_pair p = pad_test_pair_open();
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_B16_PLUS_240);
    pad_clip_weights *host = NULL;
    cr_assert(pad_weights_make_random(&host, &cfg, 3) == PAD_OK);
    const int S = cfg.vision.image_size, n = 2;
    pad_rng rng = {14};
    float *pix = pad_test_rand(&rng, (size_t)n * 3 * S * S, -2, 2);
    feats c = run_tower(p.cpu, host, pix, n, n);
    feats g = run_tower(p.gpu, host, pix, n, n);
    assert_feats_close("B16+ cuda vs cpu", &g, &c, 1e-4, 1e-3);
    pad_check_result r = pad_check_close(g.tokens, c.tokens, c.n_tok, 0, 0);
    cr_assert(r.nmse < 1e-9, "B16+ tokens: nmse %.3e", r.nmse);
    feats_free(&c);
    feats_free(&g);
    free(pix);
    pad_weights_free(host);
    pad_test_pair_close(&p);
}
