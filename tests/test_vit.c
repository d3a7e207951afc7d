/* test_vit.c - the dual-path vision tower (host/vit.c) and the CPU attention ops against the float64 PyTorch
 * reference of tests/ref/ref_vision.py (fixtures vision_tiny.safetensors and attention_ops.safetensors), plus the
 * properties the reference cannot show: taps, skipped outputs, batch, chunk and thread-count independence. */
#include "backend.h"
#include "check.h"
#include "vit.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// attention ops

#define N_ATT_CASES 5

typedef struct att_case {
    int B, T, NH, HS;
    float *qkv, *out, *att, *causal_out, *causal_att, *dual_qk, *dual_vv;
} att_case;

static att_case load_case(pad_st_file *f, int i) {
    att_case c;
    char name[64];
    snprintf(name, sizeof name, "c%d_dims", i);
    float *dims = pad_fixture_f32(f, name, 1, (int64_t[]){4});
    c.B = (int)dims[0], c.T = (int)dims[1], c.NH = (int)dims[2], c.HS = (int)dims[3];
    free(dims);
    const int64_t C = (int64_t)c.NH * c.HS;
    const int64_t sqkv[3] = {c.B, c.T, 3 * C}, sout[3] = {c.B, c.T, C}, satt[4] = {c.B, c.NH, c.T, c.T};
#define RD(field, suffix, nd, shape)                                                                                   \
    snprintf(name, sizeof name, "c%d_%s", i, suffix);                                                                  \
    c.field = pad_fixture_f32(f, name, nd, shape)
    RD(qkv, "qkv", 3, sqkv);
    RD(out, "out", 3, sout);
    RD(att, "att", 4, satt);
    RD(causal_out, "causal_out", 3, sout);
    RD(causal_att, "causal_att", 4, satt);
    RD(dual_qk, "dual_qk", 3, sout);
    RD(dual_vv, "dual_vv", 3, sout);
#undef RD
    return c;
}

static void free_case(att_case *c) {
    free(c->qkv);
    free(c->out);
    free(c->att);
    free(c->causal_out);
    free(c->causal_att);
    free(c->dual_qk);
    free(c->dual_vv);
}

Test(vit_ops, attention_and_dual_match_reference) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_st_file *f = pad_fixture_open("attention_ops.safetensors");
    for (int i = 0; i < N_ATT_CASES; i++) {
        att_case c = load_case(f, i);
        const size_t n = (size_t)c.B * c.T * c.NH * c.HS, na = (size_t)c.B * c.NH * c.T * c.T;
        float *out = malloc(n * sizeof(float)), *out2 = malloc(n * sizeof(float)), *att = malloc(na * sizeof(float));
        char what[96];
        // standard, with and without saved probabilities
        cr_assert(pad_op_attention(be, out, att, c.qkv, c.B, c.T, c.NH, c.HS, false) == PAD_OK);
        snprintf(what, sizeof what, "case %d (B%d T%d NH%d HS%d) attention out", i, c.B, c.T, c.NH, c.HS);
        PAD_ASSERT_CLOSE(what, out, c.out, n, 1e-5, 1e-4);
        PAD_ASSERT_CLOSE("attention att", att, c.att, na, 1e-6, 1e-4);
        cr_assert(pad_op_attention(be, out2, NULL, c.qkv, c.B, c.T, c.NH, c.HS, false) == PAD_OK);
        cr_assert(memcmp(out, out2, n * sizeof(float)) == 0, "case %d: saving att changes the output", i);
        // causal: masked probabilities must be exact zeros
        for (size_t j = 0; j < na; j++)
            att[j] = NAN;
        cr_assert(pad_op_attention(be, out, att, c.qkv, c.B, c.T, c.NH, c.HS, true) == PAD_OK);
        snprintf(what, sizeof what, "case %d causal out", i);
        PAD_ASSERT_CLOSE(what, out, c.causal_out, n, 1e-5, 1e-4);
        PAD_ASSERT_CLOSE("causal att", att, c.causal_att, na, 0, 1e-4);
        // dual: both outputs, then each alone (must be identical to the pair)
        cr_assert(pad_op_attention_dual(be, out, out2, c.qkv, c.B, c.T, c.NH, c.HS) == PAD_OK);
        snprintf(what, sizeof what, "case %d dual qk", i);
        PAD_ASSERT_CLOSE(what, out, c.dual_qk, n, 1e-5, 1e-4);
        snprintf(what, sizeof what, "case %d dual vv", i);
        PAD_ASSERT_CLOSE(what, out2, c.dual_vv, n, 1e-5, 1e-4);
        float *solo = malloc(n * sizeof(float));
        cr_assert(pad_op_attention_dual(be, solo, NULL, c.qkv, c.B, c.T, c.NH, c.HS) == PAD_OK);
        cr_assert(memcmp(solo, out, n * sizeof(float)) == 0, "case %d: dual qk alone differs", i);
        cr_assert(pad_op_attention_dual(be, NULL, solo, c.qkv, c.B, c.T, c.NH, c.HS) == PAD_OK);
        cr_assert(memcmp(solo, out2, n * sizeof(float)) == 0, "case %d: dual vv alone differs", i);
        free(solo);
        free(out);
        free(out2);
        free(att);
        free_case(&c);
    }
    pad_st_close(f);
    pad_backend_free(be);
}

Test(vit_ops, attention_dual_requires_an_output) {
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    float qkv[6] = {0};
    cr_assert(pad_op_attention_dual(be, NULL, NULL, qkv, 1, 1, 1, 2) == PAD_ERR_INVALID_ARG);
    pad_backend_free(be);
}

Test(vit_ops, attention_large_T_rows_sum_to_one) {
    // T = 257 (ViT-L/14@224) with HS = 64: probabilities are normalised, the qk output of identical keys is v's mean
    pad_backend *be;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    const int B = 1, T = 257, NH = 2, HS = 64, C = NH * HS;
    float *qkv = malloc(sizeof(float) * T * 3 * C), *out = malloc(sizeof(float) * T * C);
    float *att = malloc(sizeof(float) * NH * T * T);
    pad_rng rng = {5};
    pad_rng_fill(&rng, qkv, (size_t)T * 3 * C, -2, 2);
    for (int t = 0; t < T; t++) // every key of head 0 equal -> uniform attention for head 0
        for (int i = 0; i < HS; i++)
            qkv[(size_t)t * 3 * C + C + i] = 0.25f;
    cr_assert(pad_op_attention(be, out, att, qkv, B, T, NH, HS, false) == PAD_OK);
    for (int r = 0; r < NH * T; r++) {
        double s = 0;
        for (int j = 0; j < T; j++)
            s += att[(size_t)r * T + j];
        cr_assert(fabs(s - 1.0) < 1e-5, "row %d sums to %g", r, s);
    }
    for (int i = 0; i < HS; i++) {
        double mean = 0;
        for (int t = 0; t < T; t++)
            mean += qkv[(size_t)t * 3 * C + 2 * C + i];
        mean /= T;
        for (int t = 0; t < T; t += 64)
            cr_assert(fabs(out[(size_t)t * C + i] - mean) < 1e-5, "uniform attention: %g vs mean %g",
                      out[(size_t)t * C + i], mean);
    }
    free(qkv);
    free(out);
    free(att);
    pad_backend_free(be);
}

// ----------------------------------------------------------------------------
// vision tower

#define N_IMG 3

typedef struct tiny_model {
    pad_backend *be;
    pad_clip_weights *host, *dev;
    int D, E, GG, S;
} tiny_model;

static tiny_model tiny_open(int n_threads) {
    tiny_model m;
    cr_assert(pad_backend_cpu_init(&m.be, n_threads) == PAD_OK);
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_TINY);
    cr_assert(pad_weights_make_random(&m.host, &cfg, 0) == PAD_OK);
    cr_assert(pad_weights_to_backend(m.host, m.be, &m.dev) == PAD_OK);
    m.D = cfg.vision.width;
    m.E = cfg.embed_dim;
    m.GG = cfg.vision.grid * cfg.vision.grid;
    m.S = cfg.vision.image_size;
    return m;
}

static void tiny_close(tiny_model *m) {
    pad_weights_free(m->dev);
    pad_weights_free(m->host);
    pad_backend_free(m->be);
}

typedef struct feats {
    float *cls, *tokens, *mid1, *mid2;
} feats;

static feats feats_alloc(const tiny_model *m, int n) {
    feats f = {
        calloc((size_t)n * m->E, sizeof(float)),
        calloc((size_t)n * m->GG * m->E, sizeof(float)),
        calloc((size_t)n * m->GG * m->D, sizeof(float)),
        calloc((size_t)n * m->GG * m->D, sizeof(float)),
    };
    return f;
}

static void feats_free(feats *f) {
    free(f->cls);
    free(f->tokens);
    free(f->mid1);
    free(f->mid2);
}

// Encodes n images from host memory with a context of max_batch, taps (t1, t2).
static feats encode(const tiny_model *m, const float *pixels, int n, int max_batch, int t1, int t2) {
    pad_vit_params p = pad_vit_default_params();
    p.max_batch = max_batch;
    p.tap1 = t1;
    p.tap2 = t2;
    pad_vit *vit = NULL;
    cr_assert(pad_vit_create(&vit, m->be, m->dev, &p) == PAD_OK);
    feats f = feats_alloc(m, n);
    pad_vit_out o = {f.cls, f.tokens, f.mid1, f.mid2};
    cr_assert(pad_vit_encode_host(vit, pixels, n, &o) == PAD_OK);
    pad_vit_free(vit);
    return f;
}

static float *fixture_pixels(pad_st_file *f, const tiny_model *m) {
    return pad_fixture_f32(f, "pixels", 4, (int64_t[]){N_IMG, 3, m->S, m->S});
}

Test(vit, random_weights_match_the_fixture_checksum) {
    tiny_model m = tiny_open(0);
    pad_st_file *f = pad_fixture_open("vision_tiny.safetensors");
    const pad_clip_weights *w = m.host;
    const pad_vision_cfg *c = &w->cfg.vision;
    const int D = c->width, T = c->tokens, P = c->patch, E = w->cfg.embed_dim, H = c->mlp;
    // the order of tests/ref/ref_vision.py CHECKSUM_TENSORS
    struct {
        const char *name;
        const float *p;
        size_t n;
    } t[] = {
        {"conv1", w->conv1_w, (size_t)D * 3 * P * P},
        {"class_embedding", w->class_emb, (size_t)D},
        {"positional_embedding", w->vis_pos, (size_t)T * D},
        {"block 0 in_proj_weight", w->vis[0].in_proj_w, (size_t)3 * D * D},
        {"block 5 out_proj.bias", w->vis[5].out_proj_b, (size_t)D},
        {"block 11 c_fc.weight", w->vis[11].fc_w, (size_t)H * D},
        {"block 11 ln_2.weight", w->vis[11].ln2_w, (size_t)D},
        {"ln_post.bias", w->ln_post_b, (size_t)D},
        {"proj", w->vis_proj, (size_t)D * E},
    };
    const int n = (int)(sizeof t / sizeof t[0]);
    float *want = pad_fixture_f32(f, "weights_checksum", 2, (int64_t[]){n, 2});
    for (int i = 0; i < n; i++) {
        double s = 0, s2 = 0;
        for (size_t j = 0; j < t[i].n; j++) {
            s += t[i].p[j];
            s2 += (double)t[i].p[j] * t[i].p[j];
        }
        cr_assert(fabs(s - want[2 * i]) <= 1e-6 * (1 + fabs(s)) && fabs(s2 - want[2 * i + 1]) <= 1e-6 * s2,
                  "%s: sum %.9g / sum of squares %.9g, fixture %.9g / %.9g: pad_weights_make_random changed; "
                  "regenerate the fixtures with tests/ref/ref_vision.py (see its header)",
                  t[i].name, s, s2, want[2 * i], want[2 * i + 1]);
    }
    free(want);
    pad_st_close(f);
    tiny_close(&m);
}

static void assert_matches(const char *what, const float *got, pad_st_file *f, const char *name, int ndim,
                           const int64_t *shape, size_t n) {
    float *want = pad_fixture_f32(f, name, ndim, shape);
    PAD_ASSERT_CLOSE(what, got, want, n, 1e-5, 1e-4);
    free(want);
}

Test(vit, cpu_forward_matches_reference) {
    tiny_model m = tiny_open(0);
    pad_st_file *f = pad_fixture_open("vision_tiny.safetensors");
    float *pix = fixture_pixels(f, &m);
    const int64_t s_cls[2] = {N_IMG, m.E}, s_tok[3] = {N_IMG, m.GG, m.E}, s_mid[3] = {N_IMG, m.GG, m.D};
    const size_t n_cls = (size_t)N_IMG * m.E, n_tok = n_cls * m.GG, n_mid = (size_t)N_IMG * m.GG * m.D;
    feats a = encode(&m, pix, N_IMG, N_IMG, 3, 8);
    assert_matches("cls", a.cls, f, "cls", 2, s_cls, n_cls);
    assert_matches("tokens", a.tokens, f, "tokens", 3, s_tok, n_tok);
    assert_matches("mid1 (tap 3)", a.mid1, f, "mid1", 3, s_mid, n_mid);
    assert_matches("mid2 (tap 8)", a.mid2, f, "mid2", 3, s_mid, n_mid);
    // other taps change the mids only
    static const int taps[2][2] = {{6, 9}, {0, 11}};
    for (int k = 0; k < 2; k++) {
        feats b = encode(&m, pix, N_IMG, 2, taps[k][0], taps[k][1]);
        char n1[64], n2[64];
        snprintf(n1, sizeof n1, "mid1_taps%d_%d", taps[k][0], taps[k][1]);
        snprintf(n2, sizeof n2, "mid2_taps%d_%d", taps[k][0], taps[k][1]);
        assert_matches(n1, b.mid1, f, n1, 3, s_mid, n_mid);
        assert_matches(n2, b.mid2, f, n2, 3, s_mid, n_mid);
        cr_assert(memcmp(b.cls, a.cls, n_cls * sizeof(float)) == 0, "taps change cls");
        cr_assert(memcmp(b.tokens, a.tokens, n_tok * sizeof(float)) == 0, "taps change tokens");
        feats_free(&b);
    }
    feats_free(&a);
    free(pix);
    pad_st_close(f);
    tiny_close(&m);
}

Test(vit, images_are_independent_of_batch_and_chunking) {
    tiny_model m = tiny_open(0);
    pad_st_file *f = pad_fixture_open("vision_tiny.safetensors");
    float *pix = fixture_pixels(f, &m);
    const size_t n_cls = (size_t)m.E, n_tok = n_cls * m.GG, n_mid = (size_t)m.GG * m.D;
    feats all = encode(&m, pix, N_IMG, N_IMG, 3, 8); // one batch of 3
    feats chunked = encode(&m, pix, N_IMG, 2, 3, 8); // chunks of 2 and 1
    feats single = encode(&m, pix, N_IMG, 1, 3, 8);  // one by one
    const feats *runs[2] = {&chunked, &single};
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < N_IMG; i++) {
            cr_assert(memcmp(runs[r]->cls + i * n_cls, all.cls + i * n_cls, n_cls * sizeof(float)) == 0,
                      "run %d image %d: cls depends on the batch", r, i);
            cr_assert(memcmp(runs[r]->tokens + i * n_tok, all.tokens + i * n_tok, n_tok * sizeof(float)) == 0,
                      "run %d image %d: tokens depend on the batch", r, i);
            cr_assert(memcmp(runs[r]->mid1 + i * n_mid, all.mid1 + i * n_mid, n_mid * sizeof(float)) == 0,
                      "run %d image %d: mid1 depends on the batch", r, i);
            cr_assert(memcmp(runs[r]->mid2 + i * n_mid, all.mid2 + i * n_mid, n_mid * sizeof(float)) == 0,
                      "run %d image %d: mid2 depends on the batch", r, i);
        }
    feats_free(&all);
    feats_free(&chunked);
    feats_free(&single);
    free(pix);
    pad_st_close(f);
    tiny_close(&m);
}

Test(vit, results_do_not_depend_on_the_thread_count) {
    pad_st_file *f = pad_fixture_open("vision_tiny.safetensors");
    feats r[2];
    size_t n_cls = 0, n_tok = 0, n_mid = 0;
    for (int k = 0; k < 2; k++) {
        tiny_model m = tiny_open(1 + 2 * k); // 1 and 3 threads
        float *pix = fixture_pixels(f, &m);
        r[k] = encode(&m, pix, N_IMG, N_IMG, 3, 8);
        n_cls = (size_t)N_IMG * m.E, n_tok = n_cls * m.GG, n_mid = (size_t)N_IMG * m.GG * m.D;
        free(pix);
        tiny_close(&m);
    }
    cr_assert(memcmp(r[0].cls, r[1].cls, n_cls * sizeof(float)) == 0, "cls depends on the thread count");
    cr_assert(memcmp(r[0].tokens, r[1].tokens, n_tok * sizeof(float)) == 0, "tokens depend on the thread count");
    cr_assert(memcmp(r[0].mid1, r[1].mid1, n_mid * sizeof(float)) == 0, "mid1 depends on the thread count");
    cr_assert(memcmp(r[0].mid2, r[1].mid2, n_mid * sizeof(float)) == 0, "mid2 depends on the thread count");
    feats_free(&r[0]);
    feats_free(&r[1]);
    pad_st_close(f);
}

Test(vit, skipped_outputs_do_not_change_the_others) {
    tiny_model m = tiny_open(0);
    pad_st_file *f = pad_fixture_open("vision_tiny.safetensors");
    float *pix = fixture_pixels(f, &m);
    const size_t n_cls = (size_t)N_IMG * m.E, n_tok = n_cls * m.GG, n_mid = (size_t)N_IMG * m.GG * m.D;
    feats full = encode(&m, pix, N_IMG, N_IMG, 3, 8);
    pad_vit_params p = pad_vit_default_params();
    p.max_batch = N_IMG;
    pad_vit *vit = NULL;
    cr_assert(pad_vit_create(&vit, m.be, m.dev, &p) == PAD_OK);
    feats part = feats_alloc(&m, N_IMG);
    pad_vit_out only_mids = {NULL, NULL, part.mid1, part.mid2}; // runs blocks 0..8 only
    cr_assert(pad_vit_encode_host(vit, pix, N_IMG, &only_mids) == PAD_OK);
    cr_assert(memcmp(part.mid1, full.mid1, n_mid * sizeof(float)) == 0);
    cr_assert(memcmp(part.mid2, full.mid2, n_mid * sizeof(float)) == 0);
    pad_vit_out only_cls = {part.cls, NULL, NULL, NULL}; // no v-v path at all
    cr_assert(pad_vit_encode_host(vit, pix, N_IMG, &only_cls) == PAD_OK);
    cr_assert(memcmp(part.cls, full.cls, n_cls * sizeof(float)) == 0);
    pad_vit_out only_tok = {NULL, part.tokens, NULL, NULL};
    cr_assert(pad_vit_encode_host(vit, pix, N_IMG, &only_tok) == PAD_OK);
    cr_assert(memcmp(part.tokens, full.tokens, n_tok * sizeof(float)) == 0);
    pad_vit_out none = {NULL, NULL, NULL, NULL};
    cr_assert(pad_vit_encode_host(vit, pix, N_IMG, &none) == PAD_OK);
    pad_vit_free(vit);
    feats_free(&part);
    feats_free(&full);
    free(pix);
    pad_st_close(f);
    tiny_close(&m);
}

Test(vit, tap_semantics_differ_from_block_outputs) {
    // tap k+1 (post-attention of block k+1) is not the output of block k: the official hook aliasing matters
    tiny_model m = tiny_open(0);
    pad_st_file *f = pad_fixture_open("vision_tiny.safetensors");
    float *pix = fixture_pixels(f, &m);
    const size_t n_mid = (size_t)N_IMG * m.GG * m.D;
    feats a = encode(&m, pix, N_IMG, N_IMG, 3, 8);
    feats b = encode(&m, pix, N_IMG, N_IMG, 2, 7);
    pad_check_result r = pad_check_close(a.mid1, b.mid1, n_mid, 1e-3, 0);
    cr_assert(!r.ok, "taps 2 and 3 give the same features");
    feats_free(&a);
    feats_free(&b);
    free(pix);
    pad_st_close(f);
    tiny_close(&m);
}

Test(vit, bad_arguments_are_rejected) {
    tiny_model m = tiny_open(0);
    pad_vit *vit = NULL;
    pad_vit_params p = pad_vit_default_params();
    p.tap2 = 12; // tiny has 12 blocks: 0..11
    cr_assert(pad_vit_create(&vit, m.be, m.dev, &p) == PAD_ERR_INVALID_ARG);
    cr_assert(vit == NULL);
    p = pad_vit_default_params();
    p.max_batch = 0;
    cr_assert(pad_vit_create(&vit, m.be, m.dev, &p) == PAD_ERR_INVALID_ARG);
    p = pad_vit_default_params();
    p.max_batch = 2;
    cr_assert(pad_vit_create(&vit, m.be, m.dev, &p) == PAD_OK);
    float *pix = calloc((size_t)3 * 3 * m.S * m.S, sizeof(float)), cls[3 * 64];
    pad_vit_out o = {cls, NULL, NULL, NULL};
    cr_assert(pad_vit_forward(vit, pix, 3, &o) == PAD_ERR_INVALID_ARG, "3 images with max_batch 2");
    cr_assert(pad_vit_forward(vit, pix, 0, &o) == PAD_OK);
    pad_vit_free(vit);
    free(pix);
    tiny_close(&m);
}
