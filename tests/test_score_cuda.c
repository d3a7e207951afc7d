/* test_score_cuda.c - CUDA vs CPU parity of the anomaly-scoring ops and the scorer (host/score.h). Skips without
 * a CUDA device. Fusion, fp16 rounding, upsampling, Gaussian and row max must agree bit for bit (same operations
 * in the same order); k-NN, l2norm_rows and text scores within float tolerance (summation order), with k-NN
 * ties and near-ties checked for index consistency; every CUDA op is deterministic run to run. */
#include "backend.h"
#include "check.h"
#include "devbuf.h"
#include "score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT_SAME_BITS(what, a, b, n)                                                                                \
    do {                                                                                                               \
        for (size_t i_ = 0; i_ < (size_t)(n); i_++)                                                                    \
            cr_assert(memcmp(&(a)[i_], &(b)[i_], sizeof(float)) == 0, "%s: element %zu: cuda %.9g cpu %.9g", (what),   \
                      i_, (double)(a)[i_], (double)(b)[i_]);                                                           \
    } while (0)

// ----------------------------------------------------------------------------
// k-NN

// Random problems at the real sizes (G = 15, D = 896, 4 shots), several banks in one launch: distances within
// float tolerance; where the indices differ, the CUDA pick must be a near-tie of the CPU pick.
Test(score_cuda, knn_min_parity_real_sizes) {
    PAD_REQUIRE_CUDA();
    pad_test_pair d = pad_test_pair_open();
    const int nb = 2, Nq = 3 * 225, Nb = 4 * 225, D = 896;
    pad_rng rng = {17};
    float *q = pad_test_rand(&rng, (size_t)nb * Nq * D, -1, 1), *g = pad_test_rand(&rng, (size_t)nb * Nb * D, -1, 1);
    cr_assert(pad_op_l2norm_rows(d.cpu, q, NULL, q, nb * Nq, D) == PAD_OK);
    cr_assert(pad_op_l2norm_rows(d.cpu, g, NULL, g, nb * Nb, D) == PAD_OK);
    float *cd = malloc(sizeof(float) * nb * Nq);
    int32_t *ci = malloc(sizeof(int32_t) * nb * Nq);
    cr_assert(pad_op_knn_min(d.cpu, cd, ci, q, Nq, g, Nb, D, nb) == PAD_OK);
    float *gq = pad_test_upload(d.gpu, q, (size_t)nb * Nq * D), *gg = pad_test_upload(d.gpu, g, (size_t)nb * Nb * D);
    float *gd = pad_buf_alloc(d.gpu, sizeof(float) * nb * Nq);
    int32_t *gi = pad_buf_alloc(d.gpu, sizeof(int32_t) * nb * Nq);
    cr_assert(pad_op_knn_min(d.gpu, gd, gi, gq, Nq, gg, Nb, D, nb) == PAD_OK);
    float *hd = pad_test_download(d.gpu, gd, (size_t)nb * Nq);
    int32_t *hi = pad_test_download_bytes(d.gpu, gi, sizeof(int32_t) * nb * Nq);
    PAD_ASSERT_CLOSE("knn dist", hd, cd, (size_t)nb * Nq, 1e-6, 1e-5);
    int differ = 0;
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < Nq; i++) {
            const int k = b * Nq + i;
            if (hi[k] == ci[k]) continue;
            differ++;
            double s1 = 0, s2 = 0; // exact-ish distances of both picks
            const float *qq = q + (size_t)k * D;
            for (int c = 0; c < D; c++) {
                s1 += (double)qq[c] * g[((size_t)b * Nb + hi[k]) * D + c];
                s2 += (double)qq[c] * g[((size_t)b * Nb + ci[k]) * D + c];
            }
            cr_assert(fabs(s1 - s2) < 2e-6, "query %d of bank %d: cuda picks %d, cpu %d, not a near tie", i, b, hi[k],
                      ci[k]);
        }
    cr_assert(differ <= nb * Nq / 100, "%d of %d nearest indices differ", differ, nb * Nq);
    // deterministic: a second launch gives the same bits
    cr_assert(pad_op_knn_min(d.gpu, gd, gi, gq, Nq, gg, Nb, D, nb) == PAD_OK);
    float *hd2 = pad_test_download(d.gpu, gd, (size_t)nb * Nq);
    int32_t *hi2 = pad_test_download_bytes(d.gpu, gi, sizeof(int32_t) * nb * Nq);
    cr_assert(memcmp(hd, hd2, sizeof(float) * nb * Nq) == 0 && memcmp(hi, hi2, sizeof(int32_t) * nb * Nq) == 0,
              "knn_min is not deterministic on CUDA");
    pad_buf_free(d.gpu, gq);
    pad_buf_free(d.gpu, gg);
    pad_buf_free(d.gpu, gd);
    pad_buf_free(d.gpu, gi);
    free(q);
    free(g);
    free(cd);
    free(ci);
    free(hd);
    free(hi);
    free(hd2);
    free(hi2);
    pad_test_pair_close(&d);
}

// Exact ties (dyadic entries: every dot product is exact in any order): both backends pick the smallest index,
// for several banks in one launch, with duplicates in different bank tiles and odd sizes (partial tiles).
Test(score_cuda, knn_min_ties_parity) {
    PAD_REQUIRE_CUDA();
    pad_test_pair d = pad_test_pair_open();
    const int nb = 3, Nq = 70, Nb = 130, D = 20;
    float *q = malloc(sizeof(float) * nb * Nq * D), *g = malloc(sizeof(float) * nb * Nb * D);
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < Nq; i++)
            for (int c = 0; c < D; c++)
                q[((size_t)b * Nq + i) * D + c] = (float)(((i * 3 + c + b) % 5) - 2) * 0.25f;
        for (int j = 0; j < Nb; j++)
            for (int c = 0; c < D; c++) // 5 distinct rows repeated: many exact ties
                g[((size_t)b * Nb + j) * D + c] = (float)((((j % 7) + c * 3 + b) % 5) - 2) * 0.125f;
    }
    float cd[3 * 70], *hd;
    int32_t ci[3 * 70], *hi;
    cr_assert(pad_op_knn_min(d.cpu, cd, ci, q, Nq, g, Nb, D, nb) == PAD_OK);
    float *gq = pad_test_upload(d.gpu, q, (size_t)nb * Nq * D), *gg = pad_test_upload(d.gpu, g, (size_t)nb * Nb * D);
    float *gd = pad_buf_alloc(d.gpu, sizeof(cd));
    int32_t *gi = pad_buf_alloc(d.gpu, sizeof(ci));
    cr_assert(pad_op_knn_min(d.gpu, gd, gi, gq, Nq, gg, Nb, D, nb) == PAD_OK);
    hd = pad_test_download(d.gpu, gd, sizeof cd / sizeof *cd);
    hi = pad_test_download_bytes(d.gpu, gi, sizeof(ci));
    ASSERT_SAME_BITS("knn dist (exact ties)", hd, cd, nb * Nq);
    for (int k = 0; k < nb * Nq; k++) {
        cr_assert_eq(hi[k], ci[k], "tie at %d: cuda %d cpu %d", k, hi[k], ci[k]);
        cr_assert(ci[k] < 5, "tie at %d not resolved to the first copy: %d", k,
                  ci[k]); // rows 0..4 are all distinct rows
    }
    pad_buf_free(d.gpu, gq);
    pad_buf_free(d.gpu, gg);
    pad_buf_free(d.gpu, gd);
    pad_buf_free(d.gpu, gi);
    free(q);
    free(g);
    free(hd);
    free(hi);
    pad_test_pair_close(&d);
}

// ----------------------------------------------------------------------------
// elementwise ops

Test(score_cuda, normalize_and_text_score_parity) {
    PAD_REQUIRE_CUDA();
    pad_test_pair d = pad_test_pair_open();
    const int M = 1000, E = 640;
    pad_rng rng = {23};
    float *x = pad_test_rand(&rng, (size_t)M * E, -2, 2), *tn = pad_test_rand(&rng, E, -1, 1),
          *ta = pad_test_rand(&rng, E, -1, 1);
    cr_assert(pad_op_l2norm_rows(d.cpu, tn, NULL, tn, 1, E) == PAD_OK);
    cr_assert(pad_op_l2norm_rows(d.cpu, ta, NULL, ta, 1, E) == PAD_OK);
    float *gx = pad_test_upload(d.gpu, x, (size_t)M * E), *gtn = pad_test_upload(d.gpu, tn, (size_t)E),
          *gta = pad_test_upload(d.gpu, ta, (size_t)E);
    float *cs = malloc(sizeof(float) * M), *gs = pad_buf_alloc(d.gpu, sizeof(float) * M);
    const float taus[2] = {4.6051702f, 100.0f};
    for (int t = 0; t < 2; t++) {
        cr_assert(pad_op_text_score(d.cpu, cs, x, tn, ta, taus[t], M, E) == PAD_OK);
        cr_assert(pad_op_text_score(d.gpu, gs, gx, gtn, gta, taus[t], M, E) == PAD_OK);
        float *hs = pad_test_download(d.gpu, gs, (size_t)M);
        PAD_ASSERT_CLOSE("text_score", hs, cs, (size_t)M, 1e-7, 1e-6);
        free(hs);
    }
    // l2norm_rows (the scorer's F.normalize): out of place with norms, and in place without, as score.c calls it
    float *gy = pad_buf_alloc(d.gpu, sizeof(float) * M * E), *gn = pad_buf_alloc(d.gpu, sizeof(float) * M);
    float *cn = malloc(sizeof(float) * M);
    cr_assert(pad_op_l2norm_rows(d.gpu, gy, gn, gx, M, E) == PAD_OK);
    cr_assert(pad_op_l2norm_rows(d.cpu, x, cn, x, M, E) == PAD_OK);
    float *hy = pad_test_download(d.gpu, gy, (size_t)M * E), *hn = pad_test_download(d.gpu, gn, (size_t)M);
    PAD_ASSERT_CLOSE("l2norm_rows", hy, x, (size_t)M * E, 1e-8, 1e-6);
    PAD_ASSERT_CLOSE("l2norm_rows norms", hn, cn, (size_t)M, 0, 1e-6);
    cr_assert(pad_op_l2norm_rows(d.gpu, gx, NULL, gx, M, E) == PAD_OK);
    float *hx = pad_test_download(d.gpu, gx, (size_t)M * E);
    cr_assert(memcmp(hx, hy, sizeof(float) * M * E) == 0, "l2norm_rows in place differs from out of place");
    // F.normalize's edge rows on the device: zero, below eps, NaN, infinite entry (CPU semantics: test_score.c)
    {
        const float nan = NAN, inf = INFINITY;
        float ex[4 * 3] = {0, 0, 0, 1e-20f, 0, 0, 1, nan, 2, 0, inf, 1}, ey[12], en[4];
        float *gex = pad_test_upload(d.gpu, ex, sizeof ex / sizeof *ex), *gen = pad_buf_alloc(d.gpu, sizeof en);
        cr_assert(pad_op_l2norm_rows(d.gpu, gex, gen, gex, 4, 3) == PAD_OK);
        cr_assert(pad_buf_download(d.gpu, ey, gex, sizeof ey) == PAD_OK);
        cr_assert(pad_buf_download(d.gpu, en, gen, sizeof en) == PAD_OK);
        cr_assert(ey[0] == 0 && ey[1] == 0 && ey[2] == 0 && en[0] == 1e-12f, "zero row: %g %g", ey[0], en[0]);
        cr_assert(ey[3] == 1e-20f / 1e-12f && en[1] == 1e-12f, "row below eps: %g", ey[3]);
        cr_assert(isnan(ey[6]) && isnan(ey[7]) && isnan(ey[8]) && isnan(en[2]), "NaN row: %g %g %g", ey[6], ey[7],
                  ey[8]);
        cr_assert(ey[9] == 0 && isnan(ey[10]) && ey[11] == 0 && isinf(en[3]), "inf row: %g %g %g", ey[9], ey[10],
                  ey[11]);
        pad_buf_free(d.gpu, gex);
        pad_buf_free(d.gpu, gen);
    }
    pad_buf_free(d.gpu, gx);
    pad_buf_free(d.gpu, gtn);
    pad_buf_free(d.gpu, gta);
    pad_buf_free(d.gpu, gs);
    pad_buf_free(d.gpu, gy);
    pad_buf_free(d.gpu, gn);
    free(cn);
    free(hn);
    free(hx);
    free(x);
    free(tn);
    free(ta);
    free(cs);
    free(hy);
    pad_test_pair_close(&d);
}

// On the GPU too, text_score_multi gives every pair the bits text_score gives it alone (one kernel for both).
Test(score_cuda, text_score_multi_gives_each_pair_the_bits_of_text_score) {
    PAD_REQUIRE_CUDA();
    pad_test_pair d = pad_test_pair_open();
    const int M = 1000, E = 640, U = 3;
    pad_rng rng = {29};
    float *x = pad_test_rand(&rng, (size_t)M * E, -2, 2), *tv = pad_test_rand(&rng, (size_t)U * 2 * E, -1, 1);
    float *gx = pad_test_upload(d.gpu, x, (size_t)M * E), *gtv = pad_test_upload(d.gpu, tv, (size_t)U * 2 * E);
    float *gm = pad_buf_alloc(d.gpu, sizeof(float) * U * M), *gs = pad_buf_alloc(d.gpu, sizeof(float) * M);
    cr_assert(pad_op_text_score_multi(d.gpu, gm, gx, gtv, 4.6051702f, M, E, U) == PAD_OK);
    float *hm = pad_test_download(d.gpu, gm, (size_t)U * M);
    for (int u = 0; u < U; u++) {
        const float *t = gtv + (size_t)u * 2 * E;
        cr_assert(pad_op_text_score(d.gpu, gs, gx, t, t + E, 4.6051702f, M, E) == PAD_OK);
        float *hs = pad_test_download(d.gpu, gs, (size_t)M);
        cr_assert(memcmp(hs, hm + (size_t)u * M, sizeof(float) * M) == 0, "pair %d differs", u);
        free(hs);
    }
    float *dev[4] = {gx, gtv, gm, gs}, *host[3] = {hm, x, tv};
    for (int i = 0; i < 4; i++)
        pad_buf_free(d.gpu, dev[i]);
    for (int i = 0; i < 3; i++)
        free(host[i]);
    pad_test_pair_close(&d);
}

Test(score_cuda, fuse_half_rowmax_bit_parity) {
    PAD_REQUIRE_CUDA();
    pad_test_pair d = pad_test_pair_open();
    const size_t n = 100003;
    pad_rng rng = {29};
    float *a = pad_test_rand(&rng, n, 0, 1), *b = pad_test_rand(&rng, n, 0, 0.5f);
    a[0] = 0;
    b[1] = 0;
    a[2] = 70000.0f; // half overflow
    b[3] = 3e-7f;    // half subnormal
    float *ga = pad_test_upload(d.gpu, a, (size_t)n), *gb = pad_test_upload(d.gpu, b, (size_t)n);
    float *go = pad_buf_alloc(d.gpu, sizeof(float) * n), *co = malloc(sizeof(float) * n);
    cr_assert(pad_op_harmonic_fuse(d.cpu, co, a, b, n) == PAD_OK);
    cr_assert(pad_op_harmonic_fuse(d.gpu, go, ga, gb, n) == PAD_OK);
    float *ho = pad_test_download(d.gpu, go, (size_t)n);
    ASSERT_SAME_BITS("harmonic_fuse", ho, co, n);
    free(ho);
    cr_assert(pad_op_round_half(d.cpu, co, b, n) == PAD_OK);
    cr_assert(pad_op_round_half(d.gpu, go, gb, n) == PAD_OK);
    ho = pad_test_download(d.gpu, go, (size_t)n);
    ASSERT_SAME_BITS("round_half", ho, co, n);
    free(ho);
    cr_assert(pad_op_round_half(d.cpu, co, a, 3) == PAD_OK);
    cr_assert(isinf(co[2]));
    float cm[7], *hm;
    cr_assert(pad_op_row_max(d.cpu, cm, a, 7, 14000) == PAD_OK);
    cr_assert(pad_op_row_max(d.gpu, go, ga, 7, 14000) == PAD_OK);
    hm = pad_test_download(d.gpu, go, sizeof cm / sizeof *cm);
    ASSERT_SAME_BITS("row_max", hm, cm, 7);
    free(hm);
    pad_buf_free(d.gpu, ga);
    pad_buf_free(d.gpu, gb);
    pad_buf_free(d.gpu, go);
    free(a);
    free(b);
    free(co);
    pad_test_pair_close(&d);
}

Test(score_cuda, upsample_gaussian_bit_parity) {
    PAD_REQUIRE_CUDA();
    pad_test_pair d = pad_test_pair_open();
    // (B, Hi, Wi, Ho, Wo): the real 15 -> 400, non-square factors, tiny images (reflect wraps several times)
    const int cases[5][5] = {
        {3, 15, 15, 400, 400}, {2, 4, 4, 64, 64}, {2, 7, 7, 10, 10}, {1, 5, 9, 13, 20}, {4, 3, 2, 5, 3}};
    double w[33];
    pad_gaussian_kernel1d(w, 4.0, 16);
    pad_rng rng = {31};
    for (int c = 0; c < 5; c++) {
        const int B = cases[c][0], Hi = cases[c][1], Wi = cases[c][2], Ho = cases[c][3], Wo = cases[c][4];
        const size_t ni = (size_t)B * Hi * Wi, no = (size_t)B * Ho * Wo;
        float *x = pad_test_rand(&rng, ni, 0, 1), *cu = malloc(sizeof(float) * no), *ct = malloc(sizeof(float) * no);
        float *gx = pad_test_upload(d.gpu, x, (size_t)ni), *gu = pad_buf_alloc(d.gpu, sizeof(float) * no),
              *gt = pad_buf_alloc(d.gpu, sizeof(float) * no);
        cr_assert(pad_op_upsample_bilinear(d.cpu, cu, x, B, Hi, Wi, Ho, Wo) == PAD_OK);
        cr_assert(pad_op_upsample_bilinear(d.gpu, gu, gx, B, Hi, Wi, Ho, Wo) == PAD_OK);
        float *hu = pad_test_download(d.gpu, gu, (size_t)no);
        ASSERT_SAME_BITS("upsample_bilinear", hu, cu, no);
        cr_assert(pad_op_gaussian_filter(d.cpu, cu, ct, cu, B, Ho, Wo, w, 16) == PAD_OK);
        cr_assert(pad_op_gaussian_filter(d.gpu, gu, gt, gu, B, Ho, Wo, w, 16) == PAD_OK);
        free(hu);
        hu = pad_test_download(d.gpu, gu, (size_t)no);
        ASSERT_SAME_BITS("gaussian_filter", hu, cu, no);
        free(hu);
        free(x);
        free(cu);
        free(ct);
        pad_buf_free(d.gpu, gx);
        pad_buf_free(d.gpu, gu);
        pad_buf_free(d.gpu, gt);
    }
    pad_test_pair_close(&d);
}

// ----------------------------------------------------------------------------
// the whole scorer, official and fp16 protocol

static void scorer_parity(bool fp16) {
    pad_test_pair d = pad_test_pair_open();
    const int k = 2, n = 5, G = 15, P = G * G, D = 96, E = 64, R = 400;
    pad_rng rng = {37};
    float *shots = pad_test_rand(&rng, (size_t)2 * k * P * D, -1, 1),
          *mid = pad_test_rand(&rng, (size_t)2 * n * P * D, -1, 1);
    float *cls = pad_test_rand(&rng, (size_t)n * E, -1, 1), *tok = pad_test_rand(&rng, (size_t)n * P * E, -1, 1);
    float *tv = pad_test_rand(&rng, (size_t)2 * E, -1, 1);
    pad_backend *bes[2] = {d.cpu, d.gpu};
    float *maps[2], *V[2], img[2][5];
    for (int s = 0; s < 2; s++) {
        pad_backend *be = bes[s];
        float *bshots, *bmid, *bcls, *btok, *btv;
        cr_assert(pad_buf_from_host(be, &bshots, shots, (size_t)2 * k * P * D) == PAD_OK);
        cr_assert(pad_buf_from_host(be, &bmid, mid, (size_t)2 * n * P * D) == PAD_OK);
        cr_assert(pad_buf_from_host(be, &bcls, cls, (size_t)n * E) == PAD_OK);
        cr_assert(pad_buf_from_host(be, &btok, tok, (size_t)n * P * E) == PAD_OK);
        cr_assert(pad_buf_from_host(be, &btv, tv, (size_t)2 * E) == PAD_OK);
        cr_assert(pad_score_normalize(be, btv, 2, E) == PAD_OK);
        cr_assert(pad_score_normalize(be, bmid, 2 * n * P, D) == PAD_OK);
        pad_bank *bank;
        cr_assert(pad_bank_init(&bank, be, bshots, bshots + (size_t)k * P * D, k, P, D) == PAD_OK);
        pad_score_cfg cfg = pad_score_cfg_default(n, G, R);
        cfg.fp16 = fp16;
        cfg.chunk = 2;
        pad_scorer *sc;
        cr_assert(pad_scorer_init(&sc, be, &cfg) == PAD_OK);
        cr_assert(pad_scorer_visual(sc, bank, bmid, bmid + (size_t)n * P * D, n) == PAD_OK);
        cr_assert(pad_scorer_text(sc, bcls, btok, btv, btv + E, 4.6051702f, n, E) == PAD_OK);
        cr_assert(pad_scorer_image_scores(sc, n, img[s]) == PAD_OK);
        cr_assert(pad_scorer_pixel_maps(sc, n) == PAD_OK);
        maps[s] = malloc(sizeof(float) * n * R * R);
        V[s] = malloc(sizeof(float) * n * P);
        cr_assert(pad_buf_download(be, maps[s], sc->maps, sizeof(float) * n * R * R) == PAD_OK);
        cr_assert(pad_buf_download(be, V[s], sc->V, sizeof(float) * n * P) == PAD_OK);
        pad_scorer_free(sc);
        pad_bank_free(bank);
        pad_buf_free(be, bshots);
        pad_buf_free(be, bmid);
        pad_buf_free(be, bcls);
        pad_buf_free(be, btok);
        pad_buf_free(be, btv);
    }
    // fp16 rounding can move a value by one half-ulp step when the float inputs differ in the last bit
    const double rtol = fp16 ? 1e-3 : 1e-5;
    PAD_ASSERT_CLOSE("V", V[1], V[0], (size_t)n * P, 1e-7, rtol);
    PAD_ASSERT_CLOSE("image score", img[1], img[0], (size_t)n, 1e-7, rtol);
    PAD_ASSERT_CLOSE("pixel maps", maps[1], maps[0], (size_t)n * R * R, 1e-7, rtol);
    for (int s = 0; s < 2; s++) {
        free(maps[s]);
        free(V[s]);
    }
    free(shots);
    free(mid);
    free(cls);
    free(tok);
    free(tv);
    pad_test_pair_close(&d);
}

Test(score_cuda, scorer_parity_official) {
    PAD_REQUIRE_CUDA();
    scorer_parity(false);
}

Test(score_cuda, scorer_parity_fp16) {
    PAD_REQUIRE_CUDA();
    scorer_parity(true);
}
