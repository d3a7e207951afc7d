/* score.h - PromptAD's anomaly scoring (docs/method.md#scores): the few-shot memory bank and its k-NN visual score
 * V, the text scores T (patch) and s_T (image), their fusion 1/(1/T + 1/V), bilinear upsampling to R x R, the
 * Gaussian smoothing (sigma 4, scipy semantics) and the image score 1/(1/max(up(V)) + 1/s_T).
 *
 * Built for the evaluation loop of `promptad run`: test-image features are encoded once per class and stay on the
 * backend; V depends only on the shots (pad_scorer_visual once per (class, shot, seed)); per epoch only the text
 * scores change (pad_scorer_text, then pad_scorer_pixel_maps or pad_scorer_image_scores). Every buffer lives in a
 * pad_scorer sized once for n_max test images, so nothing is allocated per epoch, and on CUDA the whole chain
 * (k-NN, text scores, fusion, upsampling, Gaussian) runs on the device.
 *
 *     pad_scorer *sc;  pad_score_cfg cfg = pad_score_cfg_default(n, 15, 400);
 *     pad_scorer_init(&sc, be, &cfg);
 *     pad_score_normalize(be, mid1, n * 225, 896);  pad_score_normalize(be, mid2, n * 225, 896);  // in place
 *     pad_bank *bank;  pad_bank_init(&bank, be, shot_mid1, shot_mid2, k, 225, 896);
 *     pad_scorer_visual(sc, bank, mid1, mid2, n);                        // V, vmax: once per (shot, seed)
 *     for each epoch:
 *         pad_scorer_text(sc, cls, tokens, t_n, t_a, tau, n, 640);      // s_T and T
 *         pad_scorer_image_scores(sc, n, host_scores);                   // CLS task
 *         pad_scorer_pixel_maps(sc, n);  -> sc->maps (n, R, R) on the backend   // SEG task
 *     pad_bank_free(bank);  pad_scorer_free(sc);
 */
#ifndef PAD_HOST_SCORE_H
#define PAD_HOST_SCORE_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// Helpers

// The temperature that multiplies the cosines: PromptAD uses CLIP's logit_scale AS STORED (the log value, about
// 4.6052; docs/protocols.md#raw-logit-scale). exp_scale = true gives the usual CLIP temperature exp(logit_scale)
// instead.
float pad_score_tau(float logit_scale, bool exp_scale);

// scipy.ndimage.gaussian_filter's kernel radius for (sigma, truncate): int(truncate * sigma + 0.5) (16 for 4, 4).
int pad_gaussian_radius(double sigma, double truncate);

// scipy's _gaussian_kernel1d(sigma, 0, r): w[r + k] = exp(-0.5 / sigma^2 * k^2) / sum, k = -r..r, in double with
// numpy's pairwise summation. Equal to scipy's weights bit for bit where numpy's exp is libm's (AVX2 machines);
// numpy's AVX512F exp differs by an ulp on some taps. w holds 2r+1 doubles.
void pad_gaussian_kernel1d(double *w, double sigma, int r);

// In-place F.normalize (eps 1e-12) of the rows of x(M, C) (backend memory): pad_op_l2norm_rows without norms.
pad_status pad_score_normalize(pad_backend *be, float *x, int M, int C);

// The image score of the official protocol (utils/metrics.py): 1 / (1/vmax + 1/s_T) in float32. With fp16, s_T
// is first rounded to half and 1/s_T is computed in half precision, as numpy does with the float16 text scores
// (the returned score stays float32).
float pad_score_image(float vmax, float s_t, bool fp16);

// ----------------------------------------------------------------------------
// Memory bank

typedef struct pad_bank {
    pad_backend *be;
    int n_shots, P, D; // P = G*G patches per image, D = feature width (896)
    float *g;          // (2, n_shots*P, D) backend memory: L2-normalised mid1 rows, then mid2 rows
} pad_bank;

// Builds the bank from the raw memory-bank taps of the shot images: mid1, mid2 (n_shots, P, D) in backend memory
// (left unchanged). Rows are L2-normalised (F.normalize, eps 1e-12). On success *out owns the bank.
pad_status pad_bank_init(pad_bank **out, pad_backend *be, const float *mid1, const float *mid2, int n_shots, int P,
                         int D);
void pad_bank_free(pad_bank *bank); // NULL is a no-op

// ----------------------------------------------------------------------------
// Scorer

typedef struct pad_score_cfg {
    int n_max;       // largest number of test images per call
    int grid;        // G: patch grid side (15); P = G*G
    int res;         // R: side of the output maps (400)
    double sigma;    // Gaussian sigma (4)
    double truncate; // Gaussian truncation in sigmas (4)
    bool fp16;       // official protocol: round V, T and s_T to half before fusing (docs/protocols.md#fp16-rounding)
    int chunk;       // images per Gaussian launch, bounds the scratch (chunk*R*R floats); <= 0: 16
    bool graphs;     // replay pad_scorer_text and pad_scorer_pixel_maps as CUDA graphs (pad_graph_run; same results)
    bool text_only;  // the "w/o VAD" ablation (paper Tables 1, 2): pixel maps from T alone, image scores = s_T; no
                     // visual score is needed
} pad_score_cfg;

// Defaults: sigma 4, truncate 4, fp16 off, chunk 16, graphs off.
pad_score_cfg pad_score_cfg_default(int n_max, int grid, int res);

// All pointers are backend memory owned by the scorer; each is valid until pad_scorer_free and is overwritten by
// the calls named. Shapes use n_max rows; a call with n images fills the first n.
typedef struct pad_scorer {
    pad_backend *be;
    pad_score_cfg cfg;
    int P;                      // G*G
    int radius;                 // Gaussian radius
    double *kernel;             // (2*radius+1) host: the Gaussian weights
    float *dist;                // (2, n_max*P) k-NN distances of both taps (pad_scorer_visual)
    float *V;                   // (n_max, P) visual patch score (pad_scorer_visual)
    float *vmax;                // (n_max) max over R x R of the unsmoothed bilinear upsample of V (pad_scorer_visual)
    float *T;                   // (n_max, P) patch text score (pad_scorer_text with tokens)
    float *sT;                  // (n_max) image text score (pad_scorer_text with cls)
    float *fused;               // (n_max, P) 1/(1/T + 1/V) (pad_scorer_pixel_maps)
    float *maps;                // (n_max, R, R) pixel maps (pad_scorer_pixel_maps / pad_scorer_visual_maps / visual)
    float *tmp;                 // (chunk, R, R) Gaussian scratch
    float *host;                // (2*n_max) host staging for the image scores
    pad_graph *g_text, *g_maps; // CUDA graphs of pad_scorer_text and pad_scorer_pixel_maps (cfg.graphs)
} pad_scorer;

// Allocates every buffer once: about 4 * n_max * (R*R + 6*P) + 4 * chunk * R*R bytes on the backend (133 MB for
// 200 images at R = 400). Errors: PAD_ERR_INVALID_ARG on bad sizes, PAD_ERR_OOM. *out is NULL on failure.
pad_status pad_scorer_init(pad_scorer **out, pad_backend *be, const pad_score_cfg *cfg);
void pad_scorer_free(pad_scorer *sc); // NULL is a no-op

// Visual score of n test images against the bank: q1, q2 (n, P, D) backend memory, L2-NORMALISED test taps
// (pad_score_normalize). Computes dist, V = (d_1 + d_2)/2 with d_L(p) = min_j (1 - q_L[p]·g_L[j]) / 2 (one k-NN
// launch when q2 == q1 + n*P*D, else two), V rounded to half when cfg.fp16, and vmax. Overwrites maps.
pad_status pad_scorer_visual(pad_scorer *sc, const pad_bank *bank, const float *q1, const float *q2, int n);

// Same from a precomputed visual score: V (n, P) backend memory is copied into sc->V (rounded to half when
// cfg.fp16) and vmax is computed. Overwrites maps.
pad_status pad_scorer_visual_from(pad_scorer *sc, const float *V, int n);

// Text scores of n test images with the inference text vectors t_n, t_a (E, backend memory, as given: the official
// text_features are normalised means) and temperature tau (pad_score_tau): sT[i] from cls (n, E) when cls is not
// NULL, T[i, p] from tokens (n, P, E) when tokens is not NULL; features are raw (normalised on the fly). Rounded
// to half when cfg.fp16.
pad_status pad_scorer_text(pad_scorer *sc, const float *cls, const float *tokens, const float *t_n, const float *t_a,
                           float tau, int n, int E);

// The text scores of n test images for U pairs of text vectors at once (pad_op_text_score_multi, one pass over the
// features): tv(U, 2, E) backend memory, pair u = (t_n, t_a); sT_out(U, n) from cls and T_out(U, n, P) from tokens,
// backend memory of the caller, each when not NULL. Pair u's scores are the bits pad_scorer_text computes for it
// before its fp16 rounding; pad_scorer_text_set then makes them the scorer's. The scorer's own buffers are unchanged.
pad_status pad_scorer_text_multi(pad_scorer *sc, const float *cls, const float *tokens, const float *tv, float tau,
                                 int n, int E, int U, float *sT_out, float *T_out);
// Text scores from pad_scorer_text_multi as if pad_scorer_text had computed them: sT(n) into sc->sT and T(n, P)
// into sc->T (each when not NULL; backend memory), rounded to half when cfg.fp16.
pad_status pad_scorer_text_set(pad_scorer *sc, const float *sT, const float *T, int n);

// SEG pixel maps: maps = Gaussian(bilinear_R(1/(1/T + 1/V))) for n images (needs visual and text with tokens);
// with cfg.text_only Gaussian(bilinear_R(T)).
pad_status pad_scorer_pixel_maps(pad_scorer *sc, int n);

// CLS-task pixel maps of the official code (am_pix): maps = bilinear_R(V), no text, no smoothing.
pad_status pad_scorer_visual_maps(pad_scorer *sc, int n);

// Image scores on the host: out[i] = pad_score_image(vmax[i], sT[i], cfg.fp16) (needs visual and text with cls);
// with cfg.text_only out[i] = sT[i].
pad_status pad_scorer_image_scores(pad_scorer *sc, int n, float *out);

// ----------------------------------------------------------------------------
// One-shot scoring (the `promptad score` command and small runs)

// Features of n test images in backend memory, raw as the vision tower returns them (not normalised).
typedef struct pad_score_feats {
    const float *cls;    // (n, E)
    const float *tokens; // (n, P, E)
    const float *mid1;   // (n, P, D)
    const float *mid2;   // (n, P, D)
} pad_score_feats;

// Host outputs of pad_score_all, caller-allocated; any pointer may be NULL to skip it. Names as in the
// `promptad score` dump (docs/cli.md#score).
typedef struct pad_score_outputs {
    float *image_score;      // (n)       1/(1/max(bilinear_R(V)) + 1/s_T)
    float *text_image_score; // (n)       s_T
    float *visual_map;       // (n, G, G) V
    float *text_map;         // (n, G, G) T
    float *pixel_map;        // (n, R, R) Gaussian(bilinear_R(1/(1/T + 1/V)))
} pad_score_outputs;

// Scores n <= cfg.n_max test images against the bank in one go: normalises copies of the taps (the inputs stay
// unchanged), then visual, text (tau, t_n, t_a as in pad_scorer_text), image scores and pixel maps, and downloads
// the requested outputs. E is the embedding width of cls/tokens; D must equal bank->D.
pad_status pad_score_all(pad_scorer *sc, const pad_bank *bank, const pad_score_feats *test, int n, int E,
                         const float *t_n, const float *t_a, float tau, const pad_score_outputs *out);

// The image score of a map: out[i] = the maximum of maps[i*RR .. (i+1)*RR) (host; the first of equal values, a NaN
// only where it comes first), for the n maps of RR pixels each.
void pad_score_map_max(const float *maps, int n, size_t RR, float *out);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_SCORE_H
