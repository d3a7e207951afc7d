/* winclip.h - WinCLIP / WinCLIP+ (zero- and few-shot) and the zero-shot CPE method on the CLIP towers, with the
 * semantics of anomalib's WinClipModel (docs/winclip.md says what it computes and where that differs from the
 * WinCLIP paper).
 *
 * A pad_winclip context owns, for one (backend, weights, maximum batch): the stock (q-k) vision forward on token
 * sets, run once on each image's full token sequence and once on every sliding window's masked token set (the
 * windows of all images of a batch go through the blocks together, many short sequences per launch), the
 * normalised compositional-prompt-ensemble text vectors, and the few-shot memory of the reference images' patch and
 * window embeddings. Scores are computed on the backend (text scores, nearest-reference distances); the harmonic
 * aggregation over the small G x G grid and the combination of the scales run on the host in double.
 *
 *     pad_winclip_params p = pad_winclip_default_params();            // scales 2 and 3, temperature 0.07
 *     pad_winclip *wc;  pad_winclip_create(&wc, be, wdev, &p);
 *     float text[2 * E];  pad_cpe_text(wdev, tok, "bottle", text);      // averaged raw CPE text features
 *     pad_winclip_set_text(wc, text);
 *     pad_winclip_set_refs(wc, shot_pixels, k);                        // WinCLIP+; k = 0: zero-shot WinCLIP
 *     pad_winclip_score(wc, pixels, n, image_score, grid);              // host in, host out: (n) and (n, G, G)
 *     pad_grid_maps(be, grid, n, G, R, 0, maps, NULL);                  // bilinear to R x R (no Gaussian)
 */
#ifndef PAD_MODEL_WINCLIP_H
#define PAD_MODEL_WINCLIP_H

#include "backend.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_WINCLIP_MAX_SCALES  4
#define PAD_WINCLIP_TEMPERATURE 0.07f // the CLIP paper's temperature, used by WinCLIP's class scores

// ----------------------------------------------------------------------------
// Sliding windows

// Number of windows of side k (in patches, stride 1) on a G x G grid: (G-k+1)^2, 0 when k < 1 or k > G.
int pad_winclip_n_windows(int G, int k);

// The patches of each window: idx (n, k*k), row w = window w (windows in row-major order of their top-left patch),
// its patches in row-major order (anomalib's make_masks, transposed). n = pad_winclip_n_windows(G, k) >= 1.
void pad_winclip_window_masks(int G, int k, int32_t *idx);

// Harmonic aggregation of window scores into a patch map: for each patch p of the G x G grid, the number of windows
// covering it divided by the sum of the reciprocals of their scores, in double; NaN and +inf become 0 and -inf the
// most negative float (torch's nan_to_num(posinf=0)). ws (n), idx (n, k*k) from pad_winclip_window_masks, out (G*G).
void pad_winclip_harmonic(const float *ws, const int32_t *idx, int n, int kk, int G, double *out);

// ----------------------------------------------------------------------------
// Compositional prompt ensemble

// The prompts of the ensemble for class text `name`: state s of the normal (anomalous) states with template t is
// prompt s * n_templates + t. Returns the counts; texts are formatted into buf (cap bytes each).
int pad_cpe_n_normal(void);    // 7 states x 21 templates
int pad_cpe_n_anomalous(void); // 4 states x 21 templates
// Prompt i of the normal (anomalous = false) or anomalous ensemble; false when it does not fit in cap.
bool pad_cpe_prompt(char *buf, size_t cap, bool anomalous, int i, const char *name);

// The averaged RAW text features of the normal and anomalous ensembles for class text `name` (text_raw (2,E) host:
// row 0 normal, row 1 anomalous; not normalised, as anomalib averages them). `w` has the text tower on a backend.
pad_status pad_cpe_text(const pad_clip_weights *w, pad_tokenizer *tok, const char *name, float *text_raw);

// ----------------------------------------------------------------------------
// WinCLIP context

typedef struct pad_winclip_params {
    int max_batch;                      // images per forward (>= 1)
    int n_scales;                       // window scales (1..PAD_WINCLIP_MAX_SCALES)
    int scales[PAD_WINCLIP_MAX_SCALES]; // window sides in patches, each in [1, G]
    float temperature;                  // class-score temperature (0.07)
    int max_rows;                       // token rows per window launch (bounds the activations); <= 0: 4096
} pad_winclip_params;

// max_batch 4, scales 2 and 3, temperature 0.07, max_rows 4096.
pad_winclip_params pad_winclip_default_params(void);

typedef struct pad_winclip pad_winclip;

// Creates a context for weights `w` on backend `be` (as pad_vit_create). Errors: PAD_ERR_INVALID_ARG (bad params,
// no vision tower, weights elsewhere), PAD_ERR_OOM.
pad_status pad_winclip_create(pad_winclip **out, pad_backend *be, const pad_clip_weights *w,
                              const pad_winclip_params *p);
void pad_winclip_free(pad_winclip *wc); // NULL is a no-op

int pad_winclip_grid(const pad_winclip *wc);                    // G
int pad_winclip_scale_windows(const pad_winclip *wc, int s);    // windows of scale s
const int32_t *pad_winclip_masks(const pad_winclip *wc, int s); // host (n_s, k_s*k_s)

// Features of B images, backend memory, raw (not normalised): image (B,E) = ln_post(CLS) @ proj of the stock
// forward; patches (B,G*G,D) = ln_post of its patch rows, not projected; windows[s] (B,n_s,E) = ln_post(CLS) @ proj
// of each window's forward. Any pointer may be NULL (not wanted).
typedef struct pad_winclip_feats {
    float *image;
    float *patches;
    float *windows[PAD_WINCLIP_MAX_SCALES];
} pad_winclip_feats;

// Encodes B <= max_batch preprocessed images pixels (B,3,S,S) (backend memory) into `out` (backend memory).
pad_status pad_winclip_encode(pad_winclip *wc, const float *pixels, int B, const pad_winclip_feats *out);

// Sets the text vectors from the raw averaged features text_raw (2,E) host (pad_cpe_text); they are normalised.
pad_status pad_winclip_set_text(pad_winclip *wc, const float *text_raw);

// Few-shot memory (WinCLIP+) from K preprocessed reference images pixels (K,3,S,S) host; K = 0 clears it (zero-shot).
pad_status pad_winclip_set_refs(pad_winclip *wc, const float *pixels, int K);
int pad_winclip_k_shot(const pad_winclip *wc);

// Optional parts of pad_winclip_score's result, host arrays (any may be NULL): zs_grid (B,G,G) the zero-shot map,
// fs_grid (B,G,G) the few-shot map (only with references).
typedef struct pad_winclip_parts {
    float *zs_grid;
    float *fs_grid;
} pad_winclip_parts;

// Scores n preprocessed images pixels (n,3,S,S) host (any n, in batches): image_score (n) and grid (n,G,G) host,
// anomalib's WinClipModel.forward before the upsampling. Needs pad_winclip_set_text.
pad_status pad_winclip_score(pad_winclip *wc, const float *pixels, int n, float *image_score, float *grid,
                             const pad_winclip_parts *parts);

// Test features kept on the backend for scoring against several reference sets (one per (shot, seed) of a run):
// the zero-shot part is computed once at creation, each pad_winclip_score_cached runs only the few-shot part
// against the current references. Same results as pad_winclip_score on the same images (the same ops in the same
// order). The cache needs n * (G*G*D + sum_s n_s*E) floats on the backend (1.7 MB per image for ViT-B-16+).
typedef struct pad_winclip_cache pad_winclip_cache;
pad_status pad_winclip_cache_create(pad_winclip_cache **out, pad_winclip *wc, const float *pixels, int n);
void pad_winclip_cache_free(pad_winclip_cache *c); // NULL is a no-op
// Scores the cached images with wc's current references (none: zero-shot); outputs as pad_winclip_score. The text
// vectors must be those the cache was created with.
pad_status pad_winclip_score_cached(pad_winclip *wc, const pad_winclip_cache *c, float *image_score, float *grid,
                                    const pad_winclip_parts *parts);

// ----------------------------------------------------------------------------
// CPE + V-V CLIP (zero-shot): text scores of PromptAD's dual-path features with the CPE text vectors.

// Scores n preprocessed images pixels (n,3,S,S) host with the vision tower `vit` on backend `be`: image_score (n) =
// softmax(cos(cls, [t_n, t_a]) / temperature)[1], grid (n,G,G) the same of each V-V patch token. text_raw (2,E) host
// as pad_cpe_text gives it (normalised here).
pad_status pad_cpe_score(pad_backend *be, pad_vit *vit, const float *text_raw, float temperature, const float *pixels,
                         int n, float *image_score, float *grid);

// ----------------------------------------------------------------------------
// Maps

// Pixel maps of n G x G grids (host): maps (n,R,R) = bilinear upsample (align_corners false) and, when smoothed is
// not NULL and sigma > 0, smoothed (n,R,R) = scipy's gaussian_filter(maps, sigma, truncate 4). Runs on `be`.
pad_status pad_grid_maps(pad_backend *be, const float *grid, int n, int G, int R, double sigma, float *maps,
                         float *smoothed);

#ifdef __cplusplus
}
#endif

#endif // PAD_MODEL_WINCLIP_H
