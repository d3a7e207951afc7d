/* config.h - the configuration of `promptad run` (docs/cli.md#configuration-keys): one pad_run_config with
 * its defaults in one function, loaded from a YAML file (libcyaml) and from `--set key=value` overrides parsed
 * through the SAME schema, so an override behaves exactly like the same line in the file.
 *
 * File layout (every section and key optional; unknown keys are errors with file:line):
 *   model:  weights, vocab, generate (none|tiny), preprocess (auto|squash|openclip|official), taps [3, 8],
 *           activation (auto|gelu|quick_gelu)
 *   data:   format (mvtec|visa|mpdd|loco|folder|synth), root, name, classes [..], max_test,
 *           synth: {classes, seed, size, train, test_good, test_bad}
 *   run:    protocol (clean|official), shots, seeds, tasks (cls|seg), epochs, device (auto|cpu|cuda),
 *           shot_select (auto|random|sorted-index|basename|glob), shot_lists, prompts (auto|<set>|<file>),
 *           resolution, batch, tau (raw|exp), fp16_scores (auto|true|false), test_bgr (auto|true|false),
 *           select (auto|last|best), fpr_limit, threads, cuda_graphs (auto|on|off), fast_math (fp32|tf32|bf16),
 *           method (promptad|cpe|winclip|patchcore|padim|spade), use_vad (ablation), cohort (1|auto|N), cohort_mem
 *   train:  lr, lr_min, momentum, weight_decay, lambda_align, margin, n_ctx, n_ctx_ab, n_pro_cls, n_pro_seg,
 *           n_pro_ab, eam (token-axis|per-token), lap (before-name|after-name), use_map, use_lap (ablations)
 *   output: dir, maps (none|grid|full), heatmaps, models (true|false), on_mismatch (error|redo)
 *   cache:  dir (auto|none|<dir>: the feature cache of encoded images, feature_cache.h)
 * `--set a.b=v` is parsed as the YAML document "a:\n  b: v"; for a list key a value with commas and no brackets
 * becomes the flow sequence [x, y]. Errors name the file and line ("cfg.yaml:12: run.protocol: ...") or the
 * override ("--set run.epochs=x: ...").
 * Values are strict (scalar.h): an integer is digits only ("10.5", "1e3", "12abc" and "010" are errors), a number is
 * a plain decimal ("0.01abc", "nan" are errors), a boolean is true/false/yes/no/on/off. CR and CRLF line endings
 * read as LF; a second YAML document ("---" after the first) is an error, and so are aliases.
 *
 * "auto" values are resolved by pad_run_config_finalize from the protocol (docs/protocols.md):
 *                  official                                  clean
 *   preprocess     official (cv2 linear 1024, PIL bicubic)   squash
 *   test_bgr       true (the published test-image quirk)     false
 *   fp16_scores    true (V, T, s_T rounded to half)          false
 *   select         best (best test epoch, evaluated each)    last
 *   shot_select    sorted-index with configs/official_shots/<format>.yaml (mvtec, visa; random elsewhere)  random
 *   prompts        official (the code's lists)               paper (supplementary Fig. 1) for mvtec/visa;
 *                  mpdd / loco / synth sets for those formats; a folder dataset uses the generic states. */
#ifndef PAD_EVAL_CONFIG_H
#define PAD_EVAL_CONFIG_H

#include "promptad.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_CFG_PATH_MAX  1024
#define PAD_CFG_NAME_MAX  128
#define PAD_CFG_MAX_LIST  64   // shots, seeds
#define PAD_CFG_MAX_SHOTS 1024 // largest number of shots (run.shots)
#define PAD_CFG_MAX_CLASS 256  // data.classes

typedef enum pad_protocol {
    PAD_PROTOCOL_CLEAN = 0,    // fixed epochs, last epoch reported, RGB, seeded draws (the default)
    PAD_PROTOCOL_OFFICIAL = 1, // the published code: best test epoch, BGR test images, fixed lists, fp16 scores
} pad_protocol;

typedef enum pad_epoch_select {
    PAD_SELECT_AUTO = -1,
    PAD_SELECT_LAST = 0, // train `epochs` epochs, evaluate once, report the last
    PAD_SELECT_BEST = 1, // evaluate every epoch, keep the first epoch with the strictly best selection metric
} pad_epoch_select;

typedef enum pad_maps_mode {
    PAD_MAPS_NONE = 0, // no maps.safetensors
    PAD_MAPS_GRID = 1, // image scores and the G x G score grids (V, T): ~1 KB per test image
    PAD_MAPS_FULL = 2, // plus the R x R pixel maps as F16: 2 R^2 bytes per test image (320 KB at R = 400)
} pad_maps_mode;

// The method of a run (run.method): PromptAD itself or one of the CLIP baselines of docs/winclip.md.
typedef enum pad_run_method {
    PAD_RUN_METHOD_PROMPTAD = 0,
    PAD_RUN_METHOD_CPE = 1,       // zero-shot CPE + V-V CLIP
    PAD_RUN_METHOD_WINCLIP = 2,   // WinCLIP (0 shots) and WinCLIP+ (run.shots)
    PAD_RUN_METHOD_PATCHCORE = 3, // the memory-bank baselines on a ResNet (docs/conv_methods.md)
    PAD_RUN_METHOD_PADIM = 4,
    PAD_RUN_METHOD_SPADE = 5,
} pad_run_method;
#define PAD_RUN_N_METHODS 6
// "promptad", "cpe", "winclip", "patchcore", "padim", "spade"; "?" otherwise
const char *pad_run_method_str(int method);

// Tasks (bit mask order = cls first).
#define PAD_RUN_TASK_CLS 1
#define PAD_RUN_TASK_SEG 2

typedef struct pad_run_config {
    struct {
        char weights[PAD_CFG_PATH_MAX]; // OpenCLIP safetensors
        char vocab[PAD_CFG_PATH_MAX];   // BPE vocabulary; "" = the default search (tokenizer.h)
        char generate[16];              // "none" or "tiny": write a random model + byte vocabulary if missing
        int preprocess;                 // pad_preprocess_mode, or -1 = auto
        int taps[2];                    // memory-bank taps (0-based blocks), default 3, 8
        bool taps_auto;                 // taps not given: pad_run scales [3, 8] to the tower's depth (run_setup.c)
        int activation;                 // pad_activation of both towers' MLPs, or -1 = auto (the checkpoint's)
    } model;
    struct {
        char format[16];                                   // mvtec, visa, mpdd, loco, folder, synth
        char root[PAD_CFG_PATH_MAX];                       // dataset root (synth: where it is generated if absent)
        char name[PAD_CFG_NAME_MAX];                       // results folder name; "" = the format name
        char classes[PAD_CFG_MAX_CLASS][PAD_CFG_NAME_MAX]; // empty = every class present
        int n_classes;
        int max_test; // 0 = every test image; else an evenly spaced subset of that many
        struct {
            int classes, seed, size, train, test_good, test_bad; // promptad synth options
        } synth;
    } data;
    struct {
        pad_protocol protocol;
        int shots[PAD_CFG_MAX_LIST];
        int n_shots;
        int seeds[PAD_CFG_MAX_LIST];
        int n_seeds;
        int tasks; // PAD_RUN_TASK_* mask
        int epochs;
        int device;                        // pad_backend_kind
        int shot_select;                   // pad_shot_select, or -1 = auto
        char shot_lists[PAD_CFG_PATH_MAX]; // official list file; "" = auto
        char prompts[PAD_CFG_PATH_MAX];    // prompt set name or file; "auto"
        int resolution;                    // R
        int batch;                         // images per vision forward
        bool tau_exp;                      // false: raw logit_scale (official); true: exp(logit_scale)
        int fp16_scores;                   // -1 auto, 0, 1
        int test_bgr;                      // -1 auto, 0, 1
        int select;                        // pad_epoch_select
        double fpr_limit;                  // PRO integration limit (0.3)
        int threads;                       // CPU threads, 0 = all
        int cuda_graphs;                   // -1 auto, 0 off, 1 on (CUDA graphs per epoch; not in the hash)
        int fast_math;                     // pad_math_mode of the vision tower on CUDA (in the hash when not fp32)
        int cohort; // units trained in lockstep: 1 one by one (default), N at most, -1 auto (cohort_mem); no hash
        long long cohort_mem; // bytes a cohort of run.cohort auto may take; 0: the default (docs/cli.md); no hash
        int method;           // pad_run_method (docs/winclip.md; in the hash when not promptad)
        bool no_vad;          // ablation (run.use_vad false): text scores only, no memory bank ("w/o VAD", Tables 1, 2)
    } run;
    struct {
        float lr, lr_min, momentum, weight_decay, lambda_align, margin;
        int n_ctx, n_ctx_ab, n_pro_cls, n_pro_seg, n_pro_ab;
        int eam;     // pad_eam_mode (prompt.h): 0 token-axis, 1 per-token
        int lap;     // pad_lap_position: 0 before-name, 1 after-name
        bool no_map; // ablation (train.use_map false): no manual anomaly prompts (paper Table 2, row 2)
        bool no_lap; // ablation (train.use_lap false): no learned anomaly prompts (Table 2, row 3)
    } train;
    struct {
        char dir[PAD_CFG_PATH_MAX];
        int maps;              // pad_maps_mode
        int heatmaps;          // overlay PNGs per unit (evenly spaced over the test list)
        bool models;           // save a predict model per (class, shot, seed)
        bool redo_on_mismatch; // false: a finished unit with another config hash is an error; true: recomputed
    } output;
    struct {
        char dir[PAD_CFG_PATH_MAX]; // feature cache (feature_cache.h): "auto", "none" or a folder; not in the hash
    } cache;
} pad_run_config;

// The defaults (the contract's config keys and the official hyper-parameters): weights
// weights/vit_b_16_plus_240-laion400m_e32.safetensors, default vocabulary, format mvtec, root "", shots 1,2,4,
// seeds 0..4, tasks cls,seg, epochs 100, protocol clean, device auto, resolution 400, batch 16, raw tau, autos,
// fpr_limit 0.3, lr 0.002 -> 1e-5, momentum 0.9, weight decay 5e-4, lambda 0.001, margin 0, n_ctx 4, n_ctx_ab 1,
// n_pro 3/1, n_pro_ab 4, token-axis EAM, LAP before the name, output results, maps grid, 8 heatmaps, models on.
void pad_run_config_default(pad_run_config *cfg);

// Applies the YAML file at `path` on top of *cfg. Errors (one log line "path:line: key: message"): unreadable file
// (PAD_ERR_IO), YAML syntax, unknown key, wrong type or bad value (PAD_ERR_INVALID_ARG).
pad_status pad_run_config_load(pad_run_config *cfg, const char *path);
// Applies one override "a.b=value" exactly as the line "b: value" under "a:" in a file. Errors name the override.
pad_status pad_run_config_set(pad_run_config *cfg, const char *assignment);
// Same from YAML text (a whole document); `name` is used in messages in place of a file name.
pad_status pad_run_config_load_text(pad_run_config *cfg, const char *text, const char *name);

// Resolves the "auto" values from the protocol and the format (table at the top), and checks the cross-field
// constraints. Must be called once after the last load/set. Errors: PAD_ERR_INVALID_ARG with one line.
pad_status pad_run_config_finalize(pad_run_config *cfg);

// The name of PromptAD's variant under cfg's ablation switches, as the units' metrics.json and the report name it:
// "promptad", then "-nomap", "-nolap", "-novad" for each switch off and "-taps<a>-<b>" for other memory-bank taps
// than 3 and 8 (e.g. "promptad-nomap-novad", paper Table 2 row 2). Written into buf (cap >= 64 recommended).
void pad_run_variant_name(const pad_run_config *cfg, char *buf, size_t cap);

// The dataset name used under output.dir (data.name, else the format).
const char *pad_run_config_dataset(const pad_run_config *cfg);

// Writes the resolved configuration as a YAML document (loadable by pad_run_config_load) into buf (NUL-terminated,
// truncated at cap). Returns the length it needed.
size_t pad_run_config_to_yaml(const pad_run_config *cfg, char *buf, size_t cap);

// FNV-1a 64 of the settings that change a unit's numbers (everything but data.classes, run.shots, run.seeds,
// run.tasks, run.device, run.batch, run.threads, data.root and the output section) plus the two fingerprints
// given (weights and vocabulary contents, see pad_file_fingerprint), as 16 hex digits into hex[17].
void pad_run_config_hash(const pad_run_config *cfg, uint64_t weights_fp, uint64_t vocab_fp, char hex[17]);

// A content fingerprint of a file that is cheap for large files: FNV-1a 64 over its size, its first 64 KiB and 16
// evenly spaced 4 KiB blocks. Errors: PAD_ERR_IO naming the file.
pad_status pad_file_fingerprint(const char *path, uint64_t *fp, int64_t *size);

// Every key ("run.epochs", ...) with a one-line description, for --help and the README.
typedef struct pad_config_key {
    const char *key;
    const char *help;
    bool list; // a sequence (comma-separated in --set)
} pad_config_key;
const pad_config_key *pad_config_keys(int *n);

// Whether run.method is one of the ResNet baselines (patchcore, padim, spade).
static inline bool run_is_baseline(const pad_run_config *cfg) {
    return cfg->run.method >= PAD_RUN_METHOD_PATCHCORE;
}

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_CONFIG_H
