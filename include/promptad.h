/* promptad.h - the public C API of promptad, a C11 + CUDA implementation of PromptAD (CVPR 2024).
 *
 * The `promptad` binary (host/cli/main.c) is a thin layer over this API and the internal modules in host/. The
 * detector below is the API for using a trained model from a program (C, C++, or Python through ctypes:
 * python/promptad); libpromptad.so exports exactly the functions of this header.
 * Everything that can fail returns a pad_status and logs one line that names the object at fault (a file, a
 * tensor, a config key) through the log callback; the library never exits and never prints to stdout.
 *
 * Basic usage:
 *     pad_log_set(NULL, NULL);                    // default: stderr, INFO and above
 *     pad_backend *be = NULL;
 *     if (pad_backend_init(&be, PAD_BACKEND_AUTO, 0) != PAD_OK) return 1;   // CUDA if usable, else CPU
 *     ...
 *     pad_backend_free(be);
 */
#ifndef PAD_PROMPTAD_H
#define PAD_PROMPTAD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_VERSION "0.1.0"

// ----------------------------------------------------------------------------
// Status codes

typedef enum pad_status {
    PAD_OK = 0,
    PAD_ERR_INVALID_ARG = -1, // bad argument or bad user input
    PAD_ERR_IO = -2,          // a file could not be opened, read or written
    PAD_ERR_FORMAT = -3,      // a file is malformed: bad header, dtype, shape, missing tensor
    PAD_ERR_OOM = -4,         // host or device allocation failed
    PAD_ERR_CUDA = -5,        // a CUDA or cuBLAS call failed; the backend is poisoned afterwards
    PAD_ERR_UNSUPPORTED = -6, // e.g. CUDA requested in a CPU-only build or on a machine without a GPU
    PAD_ERR_ABORTED = -7,     // a progress callback asked to stop, or a signal arrived
} pad_status;

// The library's version, PAD_VERSION of the build ("0.1.0").
const char *pad_version(void);

// A static, human-readable name for a status ("ok", "invalid argument", ...). Never NULL.
const char *pad_status_str(pad_status s);

// ----------------------------------------------------------------------------
// Logging. One process-wide sink (the only global state besides OpenMP's thread count).

typedef enum pad_log_level {
    PAD_LOG_LEVEL_DEBUG = 0,
    PAD_LOG_LEVEL_INFO = 1,
    PAD_LOG_LEVEL_WARN = 2,
    PAD_LOG_LEVEL_ERROR = 3,
} pad_log_level;

// msg is one line without a trailing newline; it is only valid during the call.
typedef void (*pad_log_fn)(pad_log_level level, const char *msg, void *user_data);

// Sets the log sink. NULL restores the default: "promptad: <level>: msg" on stderr.
void pad_log_set(pad_log_fn fn, void *user_data);
// Messages below this level are dropped (default INFO; PROMPTAD_LOG=debug in the environment sets DEBUG).
void pad_log_set_level(pad_log_level min_level);
pad_log_level pad_log_get_level(void);

// ----------------------------------------------------------------------------
// Compute backends

typedef enum pad_backend_kind {
    PAD_BACKEND_AUTO = 0, // CUDA when built with it and a device is usable, else CPU (one INFO line says so)
    PAD_BACKEND_CPU = 1,  // OpenBLAS + OpenMP; the reference
    PAD_BACKEND_CUDA = 2, // cuBLAS + our kernels
} pad_backend_kind;

// Parses "auto", "cpu" or "cuda". Returns PAD_ERR_INVALID_ARG (and logs) on anything else.
pad_status pad_backend_kind_parse(const char *s, pad_backend_kind *out);
const char *pad_backend_kind_str(pad_backend_kind k);

typedef struct pad_backend pad_backend; // defined in host/backend.h

// Creates a backend with default parameters of the given kind: pad_backend_create with kind and device set.
// kind AUTO resolves as described above; CUDA fails with PAD_ERR_UNSUPPORTED when the build has no CUDA or no
// device is usable. device is the CUDA device ordinal (ignored on CPU).
// On success *out owns the backend (free with pad_backend_free); on failure *out is NULL.
pad_status pad_backend_init(pad_backend **out, pad_backend_kind kind, int device);
// Shorthands: a CPU backend with n_threads (<= 0: all cores), a CUDA backend on device.
pad_status pad_backend_cpu_init(pad_backend **out, int n_threads);
pad_status pad_backend_cuda_init(pad_backend **out, int device);
void pad_backend_free(pad_backend *be); // NULL is a no-op
pad_backend_kind pad_backend_get_kind(const pad_backend *be);

// Precision of the GEMMs on CUDA. Opt-in fast modes use the tensor cores with fp32 accumulation and change the
// numbers (never used by parity tests); the CPU backend always computes in float32.
typedef enum pad_math_mode {
    PAD_MATH_FP32 = 0, // exact float32 GEMMs (the default)
    PAD_MATH_TF32 = 1, // TF32 tensor cores (10-bit mantissa inputs): relative error ~1e-3
    PAD_MATH_BF16 = 2, // bf16 tensor cores (8-bit mantissa inputs): relative error ~1e-2
} pad_math_mode;

// Parses "fp32" (or "off", "false"), "tf32" (or "on", "true") and "bf16". PAD_ERR_INVALID_ARG (logged) otherwise.
pad_status pad_math_mode_parse(const char *s, pad_math_mode *out);
const char *pad_math_mode_str(pad_math_mode m); // "fp32", "tf32", "bf16"

// Sets the GEMM precision of a CUDA backend (no-op on CPU).
void pad_backend_set_math(pad_backend *be, pad_math_mode m);
// Same as pad_backend_set_math(be, on ? PAD_MATH_TF32 : PAD_MATH_FP32).
void pad_backend_set_fast_math(pad_backend *be, bool on);
// CUDA only: use the fast-path kernels (a warp-per-row LayerNorm, the dual attention through batched cuBLAS GEMMs).
// Same function within float rounding; off by default until verified on a GPU. PROMPTAD_CUDA_KERNELS=fast in the
// environment turns them on for every CUDA backend. No-op on CPU.
void pad_backend_set_fast_kernels(pad_backend *be, bool on);

// Everything a backend is made with. Get the defaults from pad_backend_params_default() and change fields.
typedef struct pad_backend_params {
    pad_backend_kind kind; // AUTO (default), CPU or CUDA
    int device;            // CUDA device ordinal (default 0; ignored on CPU)
    int n_threads;         // CPU threads, <= 0 = all cores (default 0); results do not depend on it
    pad_math_mode math;    // GEMM precision on CUDA (default FP32)
    int fast_kernels;      // CUDA fast-path kernels: 1 on, 0 off, -1 (default) = $PROMPTAD_CUDA_KERNELS
    int debug_ops;         // sync + NaN/Inf scan after every op: 1 on, 0 off, -1 (default) = $PROMPTAD_DEBUG_OPS
} pad_backend_params;

pad_backend_params pad_backend_params_default(void);
// The one backend constructor (every other constructor calls it). On success *out owns the backend (free with
// pad_backend_free); on failure *out is NULL and the reason is logged. params NULL = the defaults.
pad_status pad_backend_create(pad_backend **out, const pad_backend_params *params);

// Number of usable CUDA devices (0 in CPU-only builds or without a driver).
int pad_cuda_device_count(void);

// ----------------------------------------------------------------------------
// Errors as text. Every error the library logs is also kept, per thread, as the "last error": the message of the
// most recent PAD_LOG_LEVEL_ERROR line logged by this thread (even when the log level or sink drops it).

// The last error message of the calling thread ("" when none); valid until the thread's next library call.
const char *pad_last_error(void);
void pad_clear_last_error(void);

// ----------------------------------------------------------------------------
// Detector: a saved model scoring new images, without the command line (examples/detect.c).
//
// A model is the folder that `promptad run` writes per (class, shot count, seed):
// <output.dir>/<dataset>/<class>/k<k>/seed<s>/model/ (model.json + model.safetensors, see host/run/predict.h). It
// needs the CLIP weights it was trained with (the path in model.json, or params.weights). Scores are those of the
// run: the image score of the cls task and the anomaly map of the seg task (with one task only, the run's
// replacements, see predict.h). The anomaly map has map_size x map_size pixels (the run's run.resolution) and covers
// the part of the image the model sees: the whole image squashed to a square (the clean and official protocols), or
// the centre square (model.preprocess openclip). A detector is not thread-safe: one call at a time (several
// detectors may work in parallel). On the CPU the bits of a score depend on the OpenBLAS kernels and on how the
// images are batched (OpenBLAS chooses its code paths by matrix size): the same images in the same batches give the
// command line's bits when OPENBLAS_CORETYPE selects the kernels promptad selects (README, performance notes).
//
//     pad_detector_params p = pad_detector_params_default();
//     pad_detector *d = NULL;
//     if (pad_detector_load(&d, "results/mvtec/bottle/k4/seed0/model", &p) != PAD_OK) {
//         fprintf(stderr, "%s\n", pad_last_error());
//         return 1;
//     }
//     pad_detection r;
//     pad_detector_score_file(d, "photo.png", &r);     // r.score, r.anomalous, r.map, r.mask
//     pad_detection_free(&r);
//     pad_detector_free(d);

typedef struct pad_detector pad_detector;

typedef struct pad_detector_params {
    pad_backend_kind device; // AUTO (default): CUDA when usable, else CPU
    int n_threads;           // CPU threads, <= 0 = all cores (default); results do not depend on it
    const char *weights;     // NULL (default): the weights path recorded in the model; else this file (same content)
    int max_batch;           // images per forward pass (default 16, as promptad predict; 1..1024)
    double mask_threshold;   // pixel threshold of the masks; NaN (default) = the model's image threshold
} pad_detector_params;

pad_detector_params pad_detector_params_default(void);

// Loads a model folder, checks that the weights are the model's (size and content fingerprint) and builds the
// vision tower on the chosen backend. On failure *out is NULL and the reason is logged (pad_last_error()):
// PAD_ERR_IO (missing folder or weights), PAD_ERR_FORMAT (not a model), PAD_ERR_INVALID_ARG (other weights or bad
// params), PAD_ERR_UNSUPPORTED (CUDA requested without a GPU).
pad_status pad_detector_load(pad_detector **out, const char *model_dir, const pad_detector_params *params);
void pad_detector_free(pad_detector *d); // NULL is a no-op

typedef struct pad_detector_info {
    int map_size;          // side of the anomaly maps and masks (pixels)
    int image_size;        // side of the model's input (the image is resized to it)
    double threshold;      // image threshold: anomalous when score >= threshold (max F1 on the run's test set)
    double mask_threshold; // pixel threshold of the masks
    double map_lo, map_hi; // the run's colour range of the maps (min and max over its test set)
    bool has_cls, has_seg; // which task's text features the model holds
    int k, seed;
    const char *dataset, *cls, *protocol; // owned by the detector
    const char *preprocess;               // how images are fitted to image_size: "squash", "official", "openclip"
} pad_detector_info;

void pad_detector_get_info(const pad_detector *d, pad_detector_info *info);

// The result for one image. map and mask are malloc'd by the detector (map_size^2 each, row-major); free them with
// pad_detection_free.
typedef struct pad_detection {
    float score;    // image score
    bool anomalous; // score >= the model's threshold
    int map_size;
    float *map;    // anomaly map (map_size x map_size)
    uint8_t *mask; // 1 where map >= mask_threshold, else 0
} pad_detection;

void pad_detection_free(pad_detection *r); // frees map and mask and zeroes *r; NULL is a no-op

// Scores n images of 8-bit RGB pixels (HWC: pixel (x, y) channel c at rgb[i][(y * w[i] + x) * 3 + c], any size up
// to 65536 per side). Each of scores, maps (n * map_size^2 floats) and masks (n * map_size^2 bytes) may be NULL
// when not wanted; the caller owns them. Errors: bad arguments (PAD_ERR_INVALID_ARG), a backend failure.
pad_status pad_detector_score_rgb(pad_detector *d, const uint8_t *const *rgb, const int *w, const int *h, int n,
                                  float *scores, float *maps, uint8_t *masks);
// The same for image files (PNG, JPEG, BMP, ...), decoded max_batch at a time. An unreadable file fails the call
// (PAD_ERR_IO / PAD_ERR_FORMAT naming it); the results of the batches before its batch are already written.
pad_status pad_detector_score_files(pad_detector *d, const char *const *paths, int n, float *scores, float *maps,
                                    uint8_t *masks);
// One image file into *out (allocated maps; pad_detection_free). On failure *out is zeroed.
pad_status pad_detector_score_file(pad_detector *d, const char *path, pad_detection *out);

// ----------------------------------------------------------------------------
// Runs

// Runs `promptad run --config config_path --set overrides[0] ...` (quietly: warnings and errors are logged) and
// writes into results_dir (cap bytes, may be NULL) the folder of its summary: <output.dir>/<dataset>, holding
// summary.csv, summary.md and report.html. Finished units are skipped as on the command line. Errors: a bad config
// or override (PAD_ERR_INVALID_ARG naming the key), any error of the run.
pad_status pad_run_config_file(const char *config_path, const char *const *overrides, int n_overrides,
                               char *results_dir, size_t cap);

#ifdef __cplusplus
}
#endif

#endif // PAD_PROMPTAD_H
