/* predict.h - the models that `promptad run` saves per (class, shot, seed), and `promptad predict`, which scores new
 * images with one (single-image / folder inference).
 *
 * A model folder (<results>/<ds>/<class>/k<k>/seed<s>/model/) holds
 *   model.safetensors  shot_mid1, shot_mid2 [k, G*G, D]: the raw memory-bank taps of the k shots (the bank is rebuilt
 *                      from them exactly as during the run); cls_text_features, seg_text_features [2, E]: t_n, t_a of
 *                      each task that ran (at the reported epoch)
 *   model.json         everything else: the weights file it needs (path, size, content fingerprint), the
 *                      preprocessing, test-image channel order, image size, grid, taps, temperature, fp16 rounding,
 *                      map resolution, the decision threshold and how it was chosen, the colour range of the
 *                      heatmaps, the shots and the run's configuration hash.
 * Scores are those of the run: the image score of the cls task (1/(1/max(bilinear(V)) + 1/s_T)) and the pixel map of
 * the seg task (Gaussian(bilinear(1/(1/T + 1/V)))); with only one task the other is replaced as in the run (pixel map
 * bilinear(V) without seg, image score max of the seg map without cls).
 * Threshold: the score that maximises F1 on the run's test set for the image scores above (a test image is anomalous
 * when its score >= the threshold). It is chosen on the labelled test set, so it is optimistic for that set; use it
 * as a starting point and re-tune it on held-out data where possible.
 * Reading model.json is strict: every integer must be an exact JSON integer within its range (k up to
 * PAD_CFG_MAX_SHOTS, sizes within the limits of weights.h and image.h), and a model without a numeric threshold is
 * refused (it could not decide anything); each error names the file and the key. */
#ifndef PAD_EVAL_PREDICT_H
#define PAD_EVAL_PREDICT_H

#include "promptad.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_MODEL_FORMAT  "promptad-model"
#define PAD_MODEL_VERSION 1

// What the run knows about one (class, shot, seed) when it saves the model.
typedef struct pad_model_info {
    const char *dataset, *cls, *protocol, *config_hash;
    int k, seed;
    const char *weights_path;
    int64_t weights_size;
    uint64_t weights_fp;
    int image_size, grid, embed_dim, width; // S, G, E, D
    int taps[2];
    const char *preprocess; // pad_preprocess_mode_str
    const char *activation; // model.activation when set ("gelu" | "quick_gelu"); NULL: the checkpoint's (not written)
    bool input_bgr;         // feed images in BGR order (the official protocol's test images)
    int resolution;         // R
    double sigma, truncate;
    bool fp16_scores;
    float logit_scale;
    bool tau_exp;
    char *const *shots;                 // (k) files
    const float *shot_mid1, *shot_mid2; // (k, G*G, D) raw, host
    const float *cls_text;              // (2, E) or NULL
    const float *seg_text;              // (2, E) or NULL
    double threshold;                   // on the image scores
    const char *threshold_rule;         // how it was chosen (one sentence)
    double threshold_f1, threshold_precision, threshold_recall;
    double map_lo, map_hi; // colour range of the heatmaps (the test maps' min and max)
} pad_model_info;

// Writes model.safetensors and model.json into dir (created; replaced atomically: the files are written into a
// temporary folder that is renamed onto dir).
pad_status pad_model_save(const char *dir, const pad_model_info *m);

typedef struct pad_predict_opts {
    const char *model_dir;
    const char *const *inputs; // image files or folders (their images, sorted, not recursive)
    int n_inputs;
    const char *out_dir;
    int device;          // pad_backend_kind
    int threads;         // CPU threads, 0 = all
    const char *weights; // NULL: the path recorded in the model; otherwise this file (it must be the same content)
    int batch;           // images per forward (<= 0: 16)
    bool heatmaps;       // an overlay PNG per image (default on)
} pad_predict_opts;

// Scores the images and writes <out_dir>/predictions.csv (path,score,threshold,decision with decision "anomalous"
// when score >= threshold, else "normal") and <out_dir>/heatmaps/<name>.png. Errors: a model folder that is not
// one (names the file), weights whose size or fingerprint differ from the model's (names both), an unreadable image
// (names it; the other images are still scored and the call returns PAD_ERR_FORMAT at the end). *n_scored
// (optional) receives the number of images scored.
pad_status pad_predict(const pad_predict_opts *o, int *n_scored);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_PREDICT_H
