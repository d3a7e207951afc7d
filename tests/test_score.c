/* test_score.c - the anomaly-scoring ops and the scorer (host/score.h) on the CPU backend against independent
 * references (tests/ref/make_score_fixtures.py: numpy k-NN and fusion, torch F.interpolate, scipy
 * gaussian_filter, numpy float16), plus exact constructions for k-NN ties and thread-count independence. */
#include "backend.h"
#include "check.h"
#include "cpu_ops.h"
#include "score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_backend *cpu(int threads) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, threads) == PAD_OK);
    return be;
}

static float *fx(pad_st_file *f, const char *name) {
    return pad_fixture_f32(f, name, -1, NULL);
}

static const pad_st_tensor *fx_t(pad_st_file *f, const char *name) {
    const pad_st_tensor *t = pad_st_find(f, name);
    cr_assert(t, "fixture %s: missing tensor %s", f->path, name);
    return t;
}

// ----------------------------------------------------------------------------
// k-NN

static void check_knn_case(pad_backend *be, pad_st_file *f, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "%s_query", name);
    const pad_st_tensor *tq = fx_t(f, key);
    const int nb = (int)tq->shape[0], Nq = (int)tq->shape[1], D = (int)tq->shape[2];
    float *q = fx(f, key);
    snprintf(key, sizeof key, "%s_bank", name);
    const int Nb = (int)fx_t(f, key)->shape[1];
    float *g = fx(f, key);
    snprintf(key, sizeof key, "%s_dist", name);
    float *want_d = fx(f, key);
    snprintf(key, sizeof key, "%s_idx", name);
    float *want_i = fx(f, key);
    float *dist = malloc(sizeof(float) * nb * Nq);
    int32_t *idx = malloc(sizeof(int32_t) * nb * Nq);
    cr_assert(pad_op_knn_min(be, dist, idx, q, Nq, g, Nb, D, nb) == PAD_OK);
    PAD_ASSERT_CLOSE("knn dist", dist, want_d, (size_t)nb * Nq, 1e-7, 1e-6);
    for (int i = 0; i < nb * Nq; i++)
        cr_assert_eq(idx[i], (int32_t)want_i[i], "knn %s: idx[%d] = %d, want %d", name, i, idx[i], (int)want_i[i]);
    // idx may be NULL: same distances
    float *dist2 = malloc(sizeof(float) * nb * Nq);
    cr_assert(pad_op_knn_min(be, dist2, NULL, q, Nq, g, Nb, D, nb) == PAD_OK);
    cr_assert(memcmp(dist, dist2, sizeof(float) * nb * Nq) == 0);
    free(q);
    free(g);
    free(want_d);
    free(want_i);
    free(dist);
    free(dist2);
    free(idx);
}

Test(score, knn_min_vs_numpy) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("score_knn.safetensors");
    check_knn_case(be, f, "a");
    check_knn_case(be, f, "b");
    pad_st_close(f);
    pad_backend_free(be);
}

// Exact ties: small dyadic entries make every dot product exact, whatever the summation order. Bank b holds the
// best row at two positions (and a crowd of worse rows); the smallest position must win, across tile boundaries
// too (KNN_BROWS = 1024), in one call over several banks.
Test(score, knn_min_ties_smallest_index) {
    pad_backend *be = cpu(0);
    const int nb = 3, Nq = 5, Nb = 1100, D = 8;
    const int first[3] = {3, 0, 100}, second[3] = {10, 1099, 1050};
    float *q = calloc((size_t)nb * Nq * D, sizeof(float)), *g = calloc((size_t)nb * Nb * D, sizeof(float));
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < Nq; i++)
            for (int d = 0; d < D; d++)
                q[((size_t)b * Nq + i) * D + d] = (float)(((i + d + b) % 4) - 1) * 0.25f;
        for (int j = 0; j < Nb; j++)
            for (int d = 0; d < D; d++)
                g[((size_t)b * Nb + j) * D + d] = (float)(((j * 7 + d * 3) % 5) - 2) * 0.03125f; // |dot| small
    }
    // query i of bank b: the best row equals 0.5 * the query (dot = 0.5 |q|^2, larger than any crowd row)
    // placed at first[b] and second[b]
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < Nq; i++) {
            // only query 0 gets a planted neighbour; other queries see the crowd and must match a naive scan
            if (i != 0) continue;
            for (int d = 0; d < D; d++) {
                const float v = q[((size_t)b * Nq) * D + d] * 0.5f;
                g[((size_t)b * Nb + first[b]) * D + d] = v;
                g[((size_t)b * Nb + second[b]) * D + d] = v;
            }
        }
    float dist[15];
    int32_t idx[15];
    cr_assert(pad_op_knn_min(be, dist, idx, q, Nq, g, Nb, D, nb) == PAD_OK);
    for (int b = 0; b < nb; b++) {
        cr_assert_eq(idx[b * Nq], first[b], "bank %d: tie resolved to %d, want %d", b, idx[b * Nq], first[b]);
        // every query: naive scan in exact arithmetic (first minimum wins)
        for (int i = 0; i < Nq; i++) {
            double bd = INFINITY;
            int bj = -1;
            for (int j = 0; j < Nb; j++) {
                double s = 0;
                for (int d = 0; d < D; d++)
                    s += (double)q[((size_t)b * Nq + i) * D + d] * g[((size_t)b * Nb + j) * D + d];
                const double dd = 1.0 - s;
                if (dd < bd) {
                    bd = dd;
                    bj = j;
                }
            }
            cr_assert_eq(idx[b * Nq + i], bj, "bank %d query %d: idx %d want %d", b, i, idx[b * Nq + i], bj);
            cr_assert_float_eq(dist[b * Nq + i], (float)(bd / 2), 0, "bank %d query %d: dist", b, i);
        }
    }
    free(q);
    free(g);
    pad_backend_free(be);
}

Test(score, knn_min_independent_of_thread_count) {
    const int nb = 2, Nq = 300, Nb = 1100, D = 40; // several query tasks and bank tiles
    pad_rng rng = {11};
    float *q = malloc(sizeof(float) * nb * Nq * D), *g = malloc(sizeof(float) * nb * Nb * D);
    pad_rng_fill(&rng, q, (size_t)nb * Nq * D, -1, 1);
    pad_rng_fill(&rng, g, (size_t)nb * Nb * D, -1, 1);
    float *d1 = malloc(sizeof(float) * nb * Nq), *d2 = malloc(sizeof(float) * nb * Nq);
    int32_t *i1 = malloc(sizeof(int32_t) * nb * Nq), *i2 = malloc(sizeof(int32_t) * nb * Nq);
    pad_backend *be = cpu(1);
    cr_assert(pad_op_l2norm_rows(be, q, NULL, q, nb * Nq, D) == PAD_OK);
    cr_assert(pad_op_l2norm_rows(be, g, NULL, g, nb * Nb, D) == PAD_OK);
    cr_assert(pad_op_knn_min(be, d1, i1, q, Nq, g, Nb, D, nb) == PAD_OK);
    pad_backend_free(be);
    be = cpu(2);
    cr_assert(pad_op_knn_min(be, d2, i2, q, Nq, g, Nb, D, nb) == PAD_OK);
    pad_backend_free(be);
    cr_assert(memcmp(d1, d2, sizeof(float) * nb * Nq) == 0, "knn distances depend on the thread count");
    cr_assert(memcmp(i1, i2, sizeof(int32_t) * nb * Nq) == 0, "knn indices depend on the thread count");
    free(q);
    free(g);
    free(d1);
    free(d2);
    free(i1);
    free(i2);
}

// ----------------------------------------------------------------------------
// elementwise ops

// torch F.normalize(x, dim=1) (eps 1e-12, the scorer's and the prompt learner's normalisation): rows of any norm,
// a zero row (stays 0), a row below eps (divided by eps, not by its norm), a NaN row (all NaN, as torch's
// clamp_min keeps NaN), an infinite entry; norms when asked, none with NULL, in place or not.
Test(score, l2norm_rows_is_f_normalize) {
    pad_backend *be = cpu(0);
    const float nan = NAN, inf = INFINITY;
    float x[6 * 4] = {3, 4, 0, 0, 0, 0, 0, 0, 1e-20f, 0, 0, 0, -1, 2, -2, 4, 1, nan, 2, 3, 0, inf, 1, 0};
    const float want[6 * 4] = {0.6f, 0.8f, 0,   0,   0, 0,   0, 0, 1e-20f / 1e-12f, 0, 0, 0, -0.2f, 0.4f, -0.4f, 0.8f,
                               nan,  nan,  nan, nan, 0, nan, 0, 0};
    const float want_norm[6] = {5, 1e-12f, 1e-12f, 5, nan, inf};
    float y[24], nrm[6];
    cr_assert(pad_op_l2norm_rows(be, y, nrm, x, 6, 4) == PAD_OK);
    for (int i = 0; i < 24; i++) {
        if (isnan(want[i]))
            cr_assert(isnan(y[i]), "element %d: %g, want NaN", i, y[i]);
        else
            cr_assert(y[i] == want[i] || fabsf(y[i] - want[i]) <= 1e-7f * fabsf(want[i]), "element %d: %.9g want %.9g",
                      i, y[i], want[i]);
    }
    for (int m = 0; m < 6; m++)
        cr_assert(isnan(want_norm[m]) ? isnan(nrm[m]) : nrm[m] == want_norm[m], "norm %d: %g want %g", m, nrm[m],
                  want_norm[m]);
    cr_assert(pad_op_l2norm_rows(be, x, NULL, x, 6, 4) == PAD_OK); // in place, no norms: the same values
    for (int i = 0; i < 24; i++)
        cr_assert(isnan(y[i]) ? isnan(x[i]) : x[i] == y[i], "in place: element %d", i);
    pad_backend_free(be);
}

Test(score, text_score_vs_torch_softmax) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("score_text.safetensors");
    const pad_st_tensor *tf = fx_t(f, "feat");
    const int M = (int)tf->shape[0], E = (int)tf->shape[1];
    float *feat = fx(f, "feat"), *t_n = fx(f, "t_n"), *t_a = fx(f, "t_a"), *tau = fx(f, "tau");
    const char *names[2] = {"score_raw", "score_exp"};
    float *out = malloc(sizeof(float) * M);
    for (int k = 0; k < 2; k++) {
        float *want = fx(f, names[k]);
        cr_assert(pad_op_text_score(be, out, feat, t_n, t_a, tau[k], M, E) == PAD_OK);
        PAD_ASSERT_CLOSE(names[k], out, want, (size_t)M, 1e-12, 1e-6);
        free(want);
    }
    cr_assert_float_eq(out[5], 0.5f, 0); // zero feature
    free(out);
    free(feat);
    free(t_n);
    free(t_a);
    free(tau);
    pad_st_close(f);
    pad_backend_free(be);
}

// text_score_multi gives every pair of text vectors the bits text_score gives it alone, and the scorer's multi path
// (pad_scorer_text_multi, then pad_scorer_text_set) the bits of pad_scorer_text, fp16 rounding included: what makes a
// cohort's batched evaluation equal the serial run's.
Test(score, text_score_multi_gives_each_pair_the_bits_of_text_score) {
    pad_backend *be = cpu(0);
    const int n = 3, G = 2, P = G * G, E = 24, U = 3, M = n * P;
    const float tau = 4.6051702f;
    pad_rng rng = {31};
    float *tok = pad_test_rand(&rng, (size_t)M * E, -2, 2), *cls = pad_test_rand(&rng, (size_t)n * E, -2, 2);
    float *tv = pad_test_rand(&rng, (size_t)U * 2 * E, -1, 1);
    float *multi = malloc(sizeof(float) * U * M), *one = malloc(sizeof(float) * M);
    cr_assert(pad_op_text_score_multi(be, multi, tok, tv, tau, M, E, U) == PAD_OK);
    for (int u = 0; u < U; u++) {
        cr_assert(pad_op_text_score(be, one, tok, tv + (size_t)u * 2 * E, tv + (size_t)u * 2 * E + E, tau, M, E) ==
                  PAD_OK);
        cr_assert(memcmp(one, multi + (size_t)u * M, sizeof(float) * M) == 0, "pair %d differs", u);
    }
    cr_assert(multi[0] != multi[M] && multi[M] != multi[2 * M], "the pairs must give different scores");
    cr_assert(pad_op_text_score_multi(be, multi, tok, tv, tau, M, E, 0) == PAD_ERR_INVALID_ARG);
    pad_score_cfg cfg = pad_score_cfg_default(n, G, 8);
    cfg.fp16 = true;
    pad_scorer *sc = NULL;
    cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_OK);
    float *sT = malloc(sizeof(float) * U * n), *T = malloc(sizeof(float) * U * M);
    float *want_sT = malloc(sizeof(float) * n), *want_T = malloc(sizeof(float) * M);
    cr_assert(pad_scorer_text_multi(sc, cls, tok, tv, tau, n, E, U, sT, T) == PAD_OK);
    for (int u = 0; u < U; u++) {
        cr_assert(pad_scorer_text(sc, cls, tok, tv + (size_t)u * 2 * E, tv + (size_t)u * 2 * E + E, tau, n, E) ==
                  PAD_OK);
        memcpy(want_sT, sc->sT, sizeof(float) * n);
        memcpy(want_T, sc->T, sizeof(float) * M);
        cr_assert(pad_scorer_text_set(sc, sT + (size_t)u * n, T + (size_t)u * M, n) == PAD_OK);
        cr_assert(memcmp(sc->sT, want_sT, sizeof(float) * n) == 0, "pair %d: s_T differs", u);
        cr_assert(memcmp(sc->T, want_T, sizeof(float) * M) == 0, "pair %d: T differs", u);
        cr_assert(sc->T[0] == pad_f16_to_f32(pad_f32_to_f16(T[(size_t)u * M])), "pair %d: T is rounded to half", u);
    }
    pad_scorer_free(sc);
    free(want_sT);
    free(want_T);
    free(sT);
    free(T);
    free(multi);
    free(one);
    free(tok);
    free(cls);
    free(tv);
    pad_backend_free(be);
}

Test(score, fuse_round_half_row_max_vs_numpy) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("score_elem.safetensors");
    const size_t n = (size_t)fx_t(f, "T")->numel, nh = (size_t)fx_t(f, "h_in")->numel;
    float *T = fx(f, "T"), *V = fx(f, "V"), *want = fx(f, "fused");
    float *out = malloc(sizeof(float) * n);
    cr_assert(pad_op_harmonic_fuse(be, out, T, V, n) == PAD_OK);
    PAD_ASSERT_CLOSE("harmonic_fuse", out, want, n, 0, 0); // IEEE float32 ops: bit-exact
    float *h = fx(f, "h_in"), *hw = fx(f, "h_out");
    cr_assert(pad_op_round_half(be, h, h, nh) == PAD_OK);
    PAD_ASSERT_CLOSE("round_half", h, hw, nh, 0, 0);
    const pad_st_tensor *tr = fx_t(f, "rows");
    const int B = (int)tr->shape[0];
    float *rows = fx(f, "rows"), *rm = fx(f, "row_max"), got[16];
    cr_assert(pad_op_row_max(be, got, rows, B, tr->shape[1]) == PAD_OK);
    PAD_ASSERT_CLOSE("row_max", got, rm, (size_t)B, 0, 0);
    rows[tr->shape[1] + 5] = NAN; // NaN propagates like numpy max
    cr_assert(pad_op_row_max(be, got, rows, B, tr->shape[1]) == PAD_OK);
    cr_assert(isnan(got[1]) && !isnan(got[0]) && !isnan(got[2]));
    free(T);
    free(V);
    free(want);
    free(out);
    free(h);
    free(hw);
    free(rows);
    free(rm);
    pad_st_close(f);
    pad_backend_free(be);
}

// ----------------------------------------------------------------------------
// upsampling and Gaussian

Test(score, upsample_bilinear_vs_torch) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("score_upsample.safetensors");
    const char *cases[] = {"g15", "g4", "g7", "rect", "same"};
    for (int c = 0; c < 5; c++) {
        char key[64];
        snprintf(key, sizeof key, "%s_in", cases[c]);
        const pad_st_tensor *ti = fx_t(f, key);
        const int B = (int)ti->shape[0], Hi = (int)ti->shape[1], Wi = (int)ti->shape[2];
        float *in = fx(f, key);
        snprintf(key, sizeof key, "%s_out", cases[c]);
        const pad_st_tensor *to = fx_t(f, key);
        const int nr = (int)to->shape[1], Wo = (int)to->shape[2];
        float *want = fx(f, key);
        snprintf(key, sizeof key, "%s_rows", cases[c]);
        float *rows = fx(f, key);
        const int Ho = !strcmp(cases[c], "g15") ? 400 : (int)rows[nr - 1] + 1;
        float *out = malloc(sizeof(float) * B * Ho * Wo), *sel = malloc(sizeof(float) * B * nr * Wo);
        cr_assert(pad_op_upsample_bilinear(be, out, in, B, Hi, Wi, Ho, Wo) == PAD_OK);
        for (int b = 0; b < B; b++)
            for (int r = 0; r < nr; r++)
                memcpy(sel + ((size_t)b * nr + r) * Wo, out + ((size_t)b * Ho + (int)rows[r]) * Wo, sizeof(float) * Wo);
        PAD_ASSERT_CLOSE(cases[c], sel, want, (size_t)B * nr * Wo, 1e-7, 1e-6);
        free(in);
        free(want);
        free(rows);
        free(out);
        free(sel);
    }
    pad_st_close(f);
    pad_backend_free(be);
}

Test(score, gaussian_kernel_matches_scipy) {
    pad_st_file *f = pad_fixture_open("score_gauss.safetensors");
    const char *names[3] = {"kernel_s4", "kernel_s1_5", "kernel_s16"};
    const double sigmas[3] = {4, 1.5, 16};
    for (int k = 0; k < 3; k++) {
        const pad_st_tensor *t = fx_t(f, names[k]);
        cr_assert(t->dtype == PAD_DTYPE_F64);
        const int r = pad_gaussian_radius(sigmas[k], 4.0);
        cr_assert_eq(t->numel, 2 * r + 1, "%s: radius %d", names[k], r);
        double *want = malloc(t->nbytes), *w = malloc(t->nbytes);
        memcpy(want, t->data, t->nbytes);
        pad_gaussian_kernel1d(w, sigmas[k], r);
        // exp is correctly rounded in glibc; numpy's AVX512F float64 exp (used by scipy on such CPUs, like the
        // one that wrote the fixture) is within an ulp or two, so the weights agree to a few ulp, not bit for bit
        pad_check_result res = pad_check_close_d(w, want, (size_t)t->numel, 0, 1e-15);
        cr_assert(res.ok, "%s: weight %zu = %.17g, scipy %.17g", names[k], res.worst, res.got, res.want);
        free(want);
        free(w);
    }
    cr_assert_eq(pad_gaussian_radius(4, 4), 16);
    pad_st_close(f);
}

static void check_gauss(pad_backend *be, pad_st_file *f, const char *name, double sigma) {
    char key[64];
    snprintf(key, sizeof key, "%s_in", name);
    const pad_st_tensor *t = fx_t(f, key);
    const int B = (int)t->shape[0], H = (int)t->shape[1], W = (int)t->shape[2];
    float *in = fx(f, key);
    snprintf(key, sizeof key, "%s_out", name);
    float *want = fx(f, key);
    const int r = pad_gaussian_radius(sigma, 4.0);
    double w[2 * PAD_GAUSS_MAX_RADIUS + 1];
    pad_gaussian_kernel1d(w, sigma, r);
    const size_t n = (size_t)B * H * W;
    float *tmp = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    cr_assert(pad_op_gaussian_filter(be, out, tmp, in, B, H, W, w, r) == PAD_OK);
    PAD_ASSERT_CLOSE(name, out, want, n, 1e-7, 1e-6);
    // in place (out aliases inp) gives the same bits
    cr_assert(pad_op_gaussian_filter(be, in, tmp, in, B, H, W, w, r) == PAD_OK);
    cr_assert(memcmp(in, out, sizeof(float) * n) == 0, "%s: in-place result differs", name);
    free(in);
    free(want);
    free(tmp);
    free(out);
}

Test(score, gaussian_filter_vs_scipy) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("score_gauss.safetensors");
    const char *names[] = {"a", "b", "c", "d", "e", "f"}; // 48x64 down to 1x4 and 17x1 (reflect wraps)
    for (int i = 0; i < 6; i++)
        check_gauss(be, f, names[i], 4.0);
    check_gauss(be, f, "s1_5", 1.5);
    pad_st_close(f);
    pad_backend_free(be);
}

Test(score, reflect_index_is_periodic_half_sample_symmetric) {
    // n = 4: ... d c b a | a b c d | d c b a | a b c d ... (period 8); n = 1: everything maps to 0
    for (int i = -20; i < 20; i++) {
        const int m = ((i % 8) + 8) % 8;
        cr_assert_eq(pad_reflect_index(i, 4), m < 4 ? m : 7 - m, "reflect(%d, 4)", i);
        cr_assert_eq(pad_reflect_index(i, 1), 0);
    }
    cr_assert_eq(pad_reflect_index(-1, 4), 0);
    cr_assert_eq(pad_reflect_index(-5, 4), 3);
    cr_assert_eq(pad_reflect_index(4, 4), 3);
    cr_assert_eq(pad_reflect_index(8, 4), 0);
}

// ----------------------------------------------------------------------------
// scorer: fusion, maps, image score (official and fp16 protocol)

static void run_pipeline(bool fp16) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("score_pipeline.safetensors");
    const int n = 2, G = 15, R = 400, P = G * G;
    float *V = fx(f, "V"), *T = fx(f, "T"), *sT = fx(f, "sT"), *rows = fx(f, "rows");
    const int nr = (int)fx_t(f, "rows")->numel;
    const char *tag = fp16 ? "_fp16" : "";
    char key[64];
    pad_score_cfg cfg = pad_score_cfg_default(n, G, R);
    cfg.fp16 = fp16;
    cfg.chunk = 1; // exercise the chunked Gaussian
    pad_scorer *sc;
    cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_OK);
    cr_assert(pad_scorer_visual_from(sc, V, n) == PAD_OK);
    snprintf(key, sizeof key, "vmax%s", tag);
    float *want_vmax = fx(f, key);
    PAD_ASSERT_CLOSE("vmax", sc->vmax, want_vmax, 2, 0, 1e-6);
    // the text scores as pad_scorer_text leaves them
    memcpy(sc->T, T, sizeof(float) * n * P);
    memcpy(sc->sT, sT, sizeof(float) * n);
    if (fp16) {
        cr_assert(pad_op_round_half(be, sc->T, sc->T, (size_t)n * P) == PAD_OK);
        cr_assert(pad_op_round_half(be, sc->sT, sc->sT, (size_t)n) == PAD_OK);
    }
    float img[2];
    cr_assert(pad_scorer_image_scores(sc, n, img) == PAD_OK);
    snprintf(key, sizeof key, "image%s", tag);
    float *want_img = fx(f, key);
    PAD_ASSERT_CLOSE("image score", img, want_img, 2, 0, 1e-6);
    cr_assert(pad_scorer_pixel_maps(sc, n) == PAD_OK);
    snprintf(key, sizeof key, "fused%s", tag);
    float *want_fused = fx(f, key);
    PAD_ASSERT_CLOSE("fused", sc->fused, want_fused, (size_t)n * P, 0, 0);
    snprintf(key, sizeof key, "pixel%s", tag);
    float *want_pix = fx(f, key), *sel = malloc(sizeof(float) * n * nr * R);
    for (int b = 0; b < n; b++)
        for (int r = 0; r < nr; r++)
            memcpy(sel + ((size_t)b * nr + r) * R, sc->maps + ((size_t)b * R + (int)rows[r]) * R, sizeof(float) * R);
    PAD_ASSERT_CLOSE("pixel map", sel, want_pix, (size_t)n * nr * R, 1e-7, 1e-6);
    if (!fp16) {
        cr_assert(pad_scorer_visual_maps(sc, n) == PAD_OK);
        float *want_vup = fx(f, "visual_up");
        for (int b = 0; b < n; b++)
            for (int r = 0; r < nr; r++)
                memcpy(sel + ((size_t)b * nr + r) * R, sc->maps + ((size_t)b * R + (int)rows[r]) * R,
                       sizeof(float) * R);
        PAD_ASSERT_CLOSE("visual map", sel, want_vup, (size_t)n * nr * R, 1e-7, 1e-6);
        free(want_vup);
        // the max of the upsample sits below the grid max of an interior peak
        cr_assert(sc->vmax[0] < V[7 * G + 7]);
    }
    free(V);
    free(T);
    free(sT);
    free(rows);
    free(want_vmax);
    free(want_img);
    free(want_fused);
    free(want_pix);
    free(sel);
    pad_scorer_free(sc);
    pad_st_close(f);
    pad_backend_free(be);
}

Test(score, pipeline_official) {
    run_pipeline(false);
}

Test(score, pipeline_fp16_protocol) {
    run_pipeline(true);
}

Test(score, image_score_formula) {
    cr_assert_float_eq(pad_score_image(0.2f, 0.5f, false), 1.0f / (5.0f + 2.0f), 0);
    cr_assert_float_eq(pad_score_image(0.0f, 0.5f, false), 0.0f, 0); // exact match in the bank
    // fp16: 1/s_T is rounded to half: 1/0.3 = 3.3333 -> 3.332031 in half
    cr_assert_float_eq(pad_score_image(0.25f, 0.3f, true), 1.0f / (4.0f + 3.33203125f), 0);
    cr_assert_float_eq(pad_score_tau(4.6051702f, false), 4.6051702f, 0);
    cr_assert_float_eq(pad_score_tau(4.6051702f, true), expf(4.6051702f), 0);
}

// End to end on random features: bank from raw shot taps, normalised test taps, V against a naive double
// reference; the single-launch (contiguous taps) and two-launch paths agree bit for bit.
Test(score, scorer_visual_vs_naive) {
    pad_backend *be = cpu(0);
    const int k = 2, n = 3, G = 4, P = G * G, D = 12, R = 9;
    pad_rng rng = {5};
    float *shots = malloc(sizeof(float) * 2 * k * P * D), *test = malloc(sizeof(float) * 2 * n * P * D);
    pad_rng_fill(&rng, shots, (size_t)2 * k * P * D, -1, 1);
    pad_rng_fill(&rng, test, (size_t)2 * n * P * D, -1, 1);
    float *raw = malloc(sizeof(float) * 2 * n * P * D);
    memcpy(raw, test, sizeof(float) * 2 * n * P * D);
    pad_bank *bank;
    cr_assert(pad_bank_init(&bank, be, shots, shots + (size_t)k * P * D, k, P, D) == PAD_OK);
    cr_assert(pad_score_normalize(be, test, 2 * n * P, D) == PAD_OK);
    pad_score_cfg cfg = pad_score_cfg_default(n, G, R);
    pad_scorer *sc;
    cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_OK);
    cr_assert(pad_scorer_visual(sc, bank, test, test + (size_t)n * P * D, n) == PAD_OK);
    float *V1 = malloc(sizeof(float) * n * P), want[3 * 16];
    memcpy(V1, sc->V, sizeof(float) * n * P);
    for (int i = 0; i < n * P; i++) {
        double v = 0;
        for (int L = 0; L < 2; L++) {
            const float *q = raw + ((size_t)L * n * P + i) * D;
            double qn = 0;
            for (int d = 0; d < D; d++)
                qn += (double)q[d] * q[d];
            double best = INFINITY;
            for (int j = 0; j < k * P; j++) {
                const float *g = shots + ((size_t)L * k * P + j) * D;
                double gn = 0, s = 0;
                for (int d = 0; d < D; d++) {
                    gn += (double)g[d] * g[d];
                    s += (double)q[d] * g[d];
                }
                best = fmin(best, (1.0 - s / sqrt(qn * gn)) / 2);
            }
            v += 0.5 * best;
        }
        want[i] = (float)v;
    }
    PAD_ASSERT_CLOSE("V", V1, want, (size_t)n * P, 1e-6, 1e-5);
    // separate tap buffers: two launches, same bits
    float *q2 = malloc(sizeof(float) * n * P * D);
    memcpy(q2, test + (size_t)n * P * D, sizeof(float) * n * P * D);
    cr_assert(pad_scorer_visual(sc, bank, test, q2, n) == PAD_OK);
    cr_assert(memcmp(V1, sc->V, sizeof(float) * n * P) == 0);
    // vmax = max of the upsample of V
    float up[3 * 81], m[3];
    cr_assert(pad_op_upsample_bilinear(be, up, V1, n, G, G, R, R) == PAD_OK);
    cr_assert(pad_op_row_max(be, m, up, n, R * R) == PAD_OK);
    PAD_ASSERT_CLOSE("vmax", sc->vmax, m, 3, 0, 0);
    free(shots);
    free(test);
    free(raw);
    free(V1);
    free(q2);
    pad_bank_free(bank);
    pad_scorer_free(sc);
    pad_backend_free(be);
}

Test(score, scorer_rejects_bad_sizes) {
    pad_backend *be = cpu(0);
    pad_scorer *sc = NULL;
    pad_score_cfg cfg = pad_score_cfg_default(0, 15, 400);
    cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_ERR_INVALID_ARG && sc == NULL);
    cfg = pad_score_cfg_default(2, 15, 400);
    cfg.sigma = 40; // radius 160 > PAD_GAUSS_MAX_RADIUS
    cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_ERR_INVALID_ARG);
    cfg = pad_score_cfg_default(2, 3, 8);
    cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_OK);
    cr_assert(pad_scorer_pixel_maps(sc, 3) == PAD_ERR_INVALID_ARG);
    pad_scorer_free(sc);
    pad_backend_free(be);
}

// The whole chain from raw features against the official formulation in torch/scipy (score_all fixture).
Test(score, score_all_vs_official_torch) {
    pad_backend *be = cpu(0);
    pad_st_file *f = pad_fixture_open("score_all.safetensors");
    const int k = 2, n = 3, G = 4, P = G * G, D = 12, E = 10, R = 20;
    float *s1 = fx(f, "shot_mid1"), *s2 = fx(f, "shot_mid2"), *m1 = fx(f, "mid1"), *m2 = fx(f, "mid2");
    float *cls = fx(f, "cls"), *tok = fx(f, "tokens"), *tn = fx(f, "t_n"), *ta = fx(f, "t_a"), *tau = fx(f, "tau");
    float *m1_copy = malloc(sizeof(float) * n * P * D);
    memcpy(m1_copy, m1, sizeof(float) * n * P * D);
    pad_bank *bank;
    cr_assert(pad_bank_init(&bank, be, s1, s2, k, P, D) == PAD_OK);
    pad_score_cfg cfg = pad_score_cfg_default(n, G, R);
    pad_scorer *sc;
    cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_OK);
    float img[3], simg[3], vmap[3 * 16], tmap[3 * 16], *pix = malloc(sizeof(float) * n * R * R);
    const pad_score_feats feats = {cls, tok, m1, m2};
    const pad_score_outputs out = {img, simg, vmap, tmap, pix};
    cr_assert(pad_score_all(sc, bank, &feats, n, E, tn, ta, tau[0], &out) == PAD_OK);
    cr_assert(memcmp(m1, m1_copy, sizeof(float) * n * P * D) == 0, "pad_score_all modified its input features");
    // float32 torch vs our double-accumulated norms and text dots: a few ulp
    const char *names[5] = {"image_score", "text_image_score", "visual_map", "text_map", "pixel_map"};
    float *got[5] = {img, simg, vmap, tmap, pix};
    const size_t sizes[5] = {(size_t)n, (size_t)n, (size_t)n * P, (size_t)n * P, (size_t)n * R * R};
    for (int i = 0; i < 5; i++) {
        float *want = fx(f, names[i]);
        PAD_ASSERT_CLOSE(names[i], got[i], want, sizes[i], 1e-7, 2e-6);
        free(want);
    }
    float *all[] = {s1, s2, m1, m2, cls, tok, tn, ta, tau, m1_copy, pix};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    pad_scorer_free(sc);
    pad_bank_free(bank);
    pad_st_close(f);
    pad_backend_free(be);
}
