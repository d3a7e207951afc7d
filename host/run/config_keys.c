/* config_keys.c - the keys of the `promptad run` configuration (config.h) with their one-line help, the name
 * table of run.method, and the defaults. */
#include "config_internal.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// Keys

// pad_run_method order
const char *const pad_cfg_method_names[PAD_RUN_N_METHODS] = {"promptad",  "cpe",   "winclip",
                                                             "patchcore", "padim", "spade"};

static const pad_config_key k_keys[] = {
    {"model.weights", "OpenCLIP checkpoint (safetensors); weights/get_weights.sh fetches the real one", false},
    {"model.vocab", "CLIP BPE vocabulary (.txt.gz); empty = $PROMPTAD_VOCAB or weights/", false},
    {"model.generate", "none | tiny: write a random tiny model + byte vocabulary at the paths above if missing", false},
    {"model.preprocess", "auto | squash | openclip | official (image to model input)", false},
    {"model.taps",
     "the two memory-bank blocks (0-based); default [3, 8] for 12 blocks, scaled to the depth; CLIP ResNet: stages "
     "1..4, default [2, 3]",
     true},
    {"model.activation", "auto (the checkpoint's metadata, else gelu) | gelu | quick_gelu (OpenAI's weights)", false},
    {"data.format", "mvtec | visa | mpdd | loco | folder | synth", false},
    {"data.root", "dataset root folder (synth: generated there if absent)", false},
    {"data.name", "name of the results folder of this dataset (default: the format)", false},
    {"data.classes", "classes to run (default: every class present, official order)", true},
    {"data.max_test", "0 = every test image; N = an evenly spaced subset of N (smoke tests)", false},
    {"data.synth.classes", "synth: number of classes (1..16)", false},
    {"data.synth.seed", "synth: dataset seed", false},
    {"data.synth.size", "synth: image side in pixels", false},
    {"data.synth.train", "synth: train/good images per class", false},
    {"data.synth.test_good", "synth: test/good images per class", false},
    {"data.synth.test_bad", "synth: defective test images per class", false},
    {"run.protocol", "clean (default) | official", false},
    {"run.method",
     "promptad (default) | cpe | winclip (CLIP baselines, docs/winclip.md) | patchcore | padim | spade (baselines on "
     "a ResNet in model.weights, docs/conv_methods.md)",
     false},
    {"run.shots", "numbers of normal shots, e.g. [1, 2, 4]", true},
    {"run.seeds", "seeds (shot draws and prompt initialisation), e.g. [0, 1, 2, 3, 4]", true},
    {"run.tasks", "cls and/or seg (two trainings, as the official code)", true},
    {"run.epochs", "prompt-training epochs (one SGD step each)", false},
    {"run.device", "auto | cpu | cuda", false},
    {"run.shot_select", "auto | random | sorted-index | basename | glob", false},
    {"run.shot_lists", "official shot list file (default configs/official_shots/<format>.yaml)", false},
    {"run.prompts", "auto | official | paper | mpdd | loco | synth | <file.yaml>", false},
    {"run.resolution", "side of the anomaly maps and ground truth (400)", false},
    {"run.batch", "images per vision-tower forward", false},
    {"run.tau", "raw (official: logit_scale as stored) | exp", false},
    {"run.fp16_scores", "auto | true | false: round V, T, s_T to half before the metrics", false},
    {"run.test_bgr", "auto | true | false: feed test images in BGR order (the official code's quirk)", false},
    {"run.select", "auto | last | best (best = evaluate every epoch, keep the best test epoch)", false},
    {"run.fpr_limit", "FPR limit of the PRO metrics (0.3)", false},
    {"run.threads", "CPU threads (0 = all cores)", false},
    {"run.cohort",
     "1 | N | auto: units of a class (its shots, seeds and tasks) trained in lockstep, one text pass per epoch: 1 one "
     "by one, N at most N units, auto as many as fit run.cohort_mem (same results)",
     false},
    {"run.cohort_mem",
     "memory budget of a run.cohort auto cohort: bytes, or 512MiB, 2GiB (default 1GiB on the CPU, "
     "half the free device memory on CUDA)",
     false},
    {"run.cuda_graphs", "auto | on | off: replay each epoch's ops as CUDA graphs (same results; auto = off for now)",
     false},
    {"run.fast_math", "fp32 | tf32 | bf16: tensor-core GEMMs in the CUDA vision tower (changes the numbers)", false},
    {"run.use_vad", "true | false: ablation; false = text scores only, no visual memory bank (paper: w/o VAD)", false},
    {"train.lr", "initial learning rate (0.002)", false},
    {"train.use_map", "true | false: ablation; false = no manual anomaly prompts (paper Table 2, row 2)", false},
    {"train.use_lap", "true | false: ablation; false = no learned anomaly prompts (paper Table 2, row 3)", false},
    {"train.lr_min", "final learning rate of the cosine schedule (1e-5)", false},
    {"train.momentum", "SGD momentum (0.9)", false},
    {"train.weight_decay", "SGD weight decay (5e-4)", false},
    {"train.lambda_align", "weight of the MAP/LAP alignment loss (0.001)", false},
    {"train.margin", "EAM margin (0)", false},
    {"train.n_ctx", "learned context vectors per normal prompt (4)", false},
    {"train.n_ctx_ab", "learned anomaly vectors per LAP (1)", false},
    {"train.n_pro_cls", "normal prompts of the cls task (3)", false},
    {"train.n_pro_seg", "normal prompts of the seg task (1)", false},
    {"train.n_pro_ab", "learned anomaly vector sets (4)", false},
    {"train.eam", "token-axis (official seg quirk) | per-token", false},
    {"train.lap", "before-name (official) | after-name (paper figure)", false},
    {"output.dir", "results folder: <dir>/<dataset>/<class>/k<k>/seed<s>/<task>/", false},
    {"output.maps", "none | grid | full (maps.safetensors per unit; full adds F16 R x R pixel maps)", false},
    {"output.heatmaps", "heatmap overlay PNGs per unit (0 = none)", false},
    {"output.models", "true | false: save a predict model per (class, shot, seed)", false},
    {"output.on_mismatch", "error | redo: a finished unit computed with another config hash", false},
    {"cache.dir", "feature cache of encoded images: auto (<output.dir>/../.promptad-cache) | none | <dir>", false},
};
#define N_KEYS (int)(sizeof k_keys / sizeof k_keys[0])

const pad_config_key *pad_config_keys(int *n) {
    *n = N_KEYS;
    return k_keys;
}

const pad_config_key *pad_cfg_find_key(const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(k_keys[i].key, key) == 0) return &k_keys[i];
    return NULL;
}

// ----------------------------------------------------------------------------
// Defaults

void pad_cfg_copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

void pad_run_config_default(pad_run_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    COPY(cfg->model.weights, "weights/vit_b_16_plus_240-laion400m_e32.safetensors");
    COPY(cfg->model.vocab, "");
    COPY(cfg->model.generate, "none");
    cfg->model.preprocess = -1;
    cfg->model.taps[0] = 3;
    cfg->model.taps[1] = 8;
    cfg->model.taps_auto = true;
    cfg->model.activation = -1;
    COPY(cfg->data.format, "mvtec");
    cfg->data.synth.classes = 2;
    cfg->data.synth.seed = 0;
    cfg->data.synth.size = 256;
    cfg->data.synth.train = 12;
    cfg->data.synth.test_good = 10;
    cfg->data.synth.test_bad = 10;
    cfg->run.protocol = PAD_PROTOCOL_CLEAN;
    cfg->run.n_shots = 3;
    cfg->run.shots[0] = 1;
    cfg->run.shots[1] = 2;
    cfg->run.shots[2] = 4;
    cfg->run.n_seeds = 5;
    for (int i = 0; i < 5; i++)
        cfg->run.seeds[i] = i;
    cfg->run.tasks = PAD_RUN_TASK_CLS | PAD_RUN_TASK_SEG;
    cfg->run.epochs = 100;
    cfg->run.device = PAD_BACKEND_AUTO;
    cfg->run.shot_select = -1;
    COPY(cfg->run.prompts, "auto");
    cfg->run.resolution = 400;
    cfg->run.batch = 16;
    cfg->run.tau_exp = false;
    cfg->run.fp16_scores = -1;
    cfg->run.test_bgr = -1;
    cfg->run.select = PAD_SELECT_AUTO;
    cfg->run.fpr_limit = 0.3;
    cfg->run.cuda_graphs = -1;
    cfg->run.fast_math = 0;
    cfg->run.cohort = 1;
    cfg->run.method = PAD_RUN_METHOD_PROMPTAD;
    cfg->train.lr = 0.002f;
    cfg->train.lr_min = 1e-5f;
    cfg->train.momentum = 0.9f;
    cfg->train.weight_decay = 5e-4f;
    cfg->train.lambda_align = 0.001f;
    cfg->train.margin = 0.0f;
    cfg->train.n_ctx = 4;
    cfg->train.n_ctx_ab = 1;
    cfg->train.n_pro_cls = 3;
    cfg->train.n_pro_seg = 1;
    cfg->train.n_pro_ab = 4;
    COPY(cfg->output.dir, "results");
    COPY(cfg->cache.dir, "auto");
    cfg->output.maps = PAD_MAPS_GRID;
    cfg->output.heatmaps = 8;
    cfg->output.models = true;
}

const char *pad_run_config_dataset(const pad_run_config *cfg) {
    return cfg->data.name[0] ? cfg->data.name : cfg->data.format;
}

const char *pad_run_method_str(int method) {
    return pad_enum_name(pad_cfg_method_names, PAD_RUN_N_METHODS, method);
}
