/* run_internal.h - what the files of the run loop share (not a public header: only host/run/run*.c,
 * features.c, evaluate.c, unit_*.c and model_writer.c include it). The run reads as a story across them:
 *   run.c           the job: classes, the survey of finished units, the loop over (class, shot, seed, task)
 *   run_setup.c     the demo model and synthetic data, the backend, the model and the prompt sets
 *   unit_dir.c      where a unit lives, whether it is finished, the temporary folder and its atomic commit
 *   features.c      the test-feature and shot cache of a class: decode, preprocess, encode, ground truth
 *   evaluate.c      the scores, maps and metrics of one epoch's text vectors
 *   unit_train.c    units: their prompts trained epoch by epoch (one by one, or a cohort of groups in lockstep),
 *                   the epoch selected, the final evaluation
 *   unit_writer.c   the files of a finished unit (scores, training log, prompts, maps, heatmaps, metrics)
 *   model_writer.c  the predict model of a (class, shot, seed) from its finished units
 *   unit_baseline.c run.method patchcore | padim | spade: the units of a memory-bank baseline on a ResNet
 * Every function here returns pad_status (errors logged) unless it says otherwise. */
#ifndef PAD_RUN_RUN_INTERNAL_H
#define PAD_RUN_RUN_INTERNAL_H

#include "claim.h"
#include "clip_resnet.h"
#include "dataset.h"
#include "feature_cache.h"
#include "image.h"
#include "log.h"
#include "metrics.h"
#include "prompt.h"
#include "prompt_cohort.h"
#include "resnet.h"
#include "run.h"
#include "score.h"
#include "shots.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"

#include <stdbool.h>
#include <stdint.h>

#define PATH_CAP 4096

// ----------------------------------------------------------------------------
// Contexts

typedef struct run_ctx {
    const pad_run_config *cfg;
    const pad_run_opts *opts;
    pad_run_result *res;
    pad_backend *be;
    pad_clip_weights *w_host, *w_dev;
    pad_vit *vit;         // the vision tower: a ViT, or
    pad_clip_resnet *crn; // a CLIP ModifiedResNet (the other is NULL; run_setup.c)
    int taps[2];          // the memory-bank taps as the tower reads them (ViT blocks, or ResNet stages 1..4)
    pad_tokenizer *tok;
    pad_prompt_set *pset;
    pad_shot_lists *lists;
    pad_dataset *ds;
    pad_dataset_format format;
    char dataset[PAD_CFG_NAME_MAX];
    char hash[17];
    uint64_t weights_fp, vocab_fp;
    int64_t weights_size;
    char weights_path[PAD_CFG_PATH_MAX], vocab_path[PAD_CFG_PATH_MAX];
    char ds_dir[PATH_CAP]; // <output.dir>/<dataset>, and /<method> for a ResNet baseline (run.method patchcore, ...)
    int S, G, P, E, D, R, W;
    float tau;
    int batch;
    float *pix_dev;  // (batch, 3, S, S) backend
    float *pix_host; // (batch, 3, S, S)
    char **classes;  // the classes of this run
    int n_classes;
    int n_units, n_done, n_skipped, n_computed;
    int n_by_other;     // units found finished by another process sharing output.dir after the survey
    uint8_t *groups;    // (n_classes * n_shots * n_seeds) GROUP_* flags of each (class, shot, seed), see run.c
    bool graphs;        // CUDA graphs for the per-epoch work (run.cuda_graphs resolved)
    pad_fcache *fcache; // the feature cache of encoded images (disabled with cache.dir none)
    float *enc_cls, *enc_tok, *enc_mid1, *enc_mid2; // (batch,E), (batch,P,E), (batch,P,D) x 2 backend: misses
    pad_resnet *resnet;   // run.method patchcore | padim: the backbone (unit_baseline.c); NULL for PromptAD
    double cohort_budget; // bytes a cohort of run.cohort auto may take (run.cohort_mem resolved on first use)
} run_ctx;

// Encoded features of one train image (host), cached per class.
typedef struct shot_feat {
    int index;                      // in cls->train
    float *cls, *tok, *mid1, *mid2; // (E), (P,E), (P,D), (P,D)
} shot_feat;

// What the predict model of a (class, k, seed) needs from one finished unit: kept in memory by the run that
// computed the unit, read back from the unit's files only for units finished by an earlier run.
typedef struct unit_summary {
    bool valid;
    float *tvec; // (2,E) host: t_n, t_a of the reported epoch
    double thr, f1, prec, rec;
    double map_lo, map_hi;
    int n_test, n_test_anomalous;
} unit_summary;

// One (k, seed) group of a class: its shots, the visual score V of its memory bank, and what the predict model
// needs from its units. The run loop holds one at a time (run.cohort 1) or the groups of a cohort (run.c).
typedef struct group_ctx {
    int a, b, k, seed;              // indices into run.shots / run.seeds, and their values
    bool todo[PAD_N_TASKS];         // units still to compute (group_refresh)
    uint8_t *flags;                 // its flags in run_ctx.groups (run.c)
    pad_claim claim;                // held from before its work until its predict model is written
    pad_shots shots;                // valid when has_shots
    bool has_shots;                 // shots drawn (run_group_begin)
    bool vis_ready;                 // V_dev, vmax_dev and V_host hold the group's V
    float *V_dev, *vmax_dev;        // (n,P), (n) backend: the group's V and vmax, restored into the scorer
    float *V_host;                  // (n,P) host
    unit_summary done[PAD_N_TASKS]; // the units of the group finished by this run, for its predict model
} group_ctx;

typedef struct class_ctx {
    const char *name;
    pad_class_data data;
    bool loaded;
    bool test_ready; // run_prepare_class_test done
    int n;           // test images used
    int *items;      // (n) indices into data.test
    uint8_t *labels; // (n)
    int n_anom;
    float *cls_dev, *tok_dev, *mid_dev; // (n,E), (n,P,E), (2,n,P,D) backend; mid rows L2-normalised
    uint8_t *masks;                     // (n,R,R) ground truth at the metric resolution (NULL without masks)
    pad_metrics_gt *gt;
    pad_metrics_gpu *gt_gpu;
    pad_scorer *sc;          // its V and vmax are those of the group `active`
    const group_ctx *active; // the group whose V is in sc and V_host (run_group_activate), or NULL
    float *maps_host;        // (n,R,R)
    float *vmaps_host;       // (n,R,R) the cls pixel maps bilinear(V) of the active group (run_group_vmaps)
    float *V_host;           // (n,P) V of the active group
    pad_pixel_metrics vmaps_metrics;
    bool vmaps_valid;
    int n_samples;
    int *samples;          // (n_samples) positions in 0..n-1 for the heatmaps
    pad_image *sample_img; // (n_samples) the decoded test images
    shot_feat *cache;
    int n_cache;
    int max_k;
    float *shot_cls, *shot_tok, *shot_mid1, *shot_mid2; // (max_k,E), (max_k,P,E), (max_k,P,D) x 2 backend
    pad_prompt_learner **pool[PAD_N_TASKS]; // the learners of each task, reused by the units (unit i of a cohort
    int n_pool[PAD_N_TASKS];                // of task t takes pool[t][i]; a serial unit pool[t][0])
    pad_prompt_cohort *cohort;              // the last cohort (run.cohort), reused while its members are the same
    pad_prompt_learner **cohort_members;    // (its size) the members of `cohort`
    pad_prompt_class pclass;
    bool pclass_valid;
    float *tvec_dev; // (2,E) backend
    float *tmp_dev;  // (n) backend
    float *base_pix; // baselines: (n,3,R,R) normalised test images (host)
} class_ctx;

typedef struct eval_out {
    pad_image_metrics img;
    pad_pixel_metrics pix;
    bool has_pix;
    float *scores; // (n) host, owned by the caller
} eval_out;

typedef struct epoch_log {
    float lr;
    pad_prompt_loss loss;
    double metric; // NaN where not evaluated
} epoch_log;

// Everything one unit produced, as written to its folder.
typedef struct unit_result {
    pad_prompt_task task;
    int k, seed;
    const pad_shots *shots;
    eval_out ev;
    int epoch_reported; // 1-based
    const char *selection;
    double select_best, select_last;
    epoch_log *log;
    int n_epochs;
    float *tvec; // (2,E) host
    float *normal_ctx, *abnormal_ctx;
    int n_pro;
    double t_train, t_eval, t_total;
    double thr, f1, prec, rec;
    float map_lo, map_hi;
    const char *baseline; // NULL for PromptAD; else the baseline's name (no training log, prompts nor grids)
} unit_result;

// TODO: no folder; DONE: finished with this config hash; MISMATCH: finished with another one; BROKEN: a file is
// missing, cut short or does not parse (the unit is recomputed).
typedef enum unit_state { UNIT_TODO = 0, UNIT_DONE = 1, UNIT_MISMATCH = 2, UNIT_BROKEN = 3 } unit_state;

// ----------------------------------------------------------------------------
// run.c: progress and stop

bool run_stop_requested(const run_ctx *rc);
void run_emit(const run_ctx *rc, pad_run_event *ev); // fills the counters of ev and calls the progress callback
void run_emit_stage(const run_ctx *rc, const char *fmt, ...) PAD_PRINTF_LIKE(2, 3);

// ----------------------------------------------------------------------------
// run_setup.c

pad_status run_ensure_generated_model(const pad_run_config *cfg); // model.generate tiny: vocabulary + random model
pad_status run_ensure_synth(const pad_run_config *cfg);           // data.format synth: the dataset, once
pad_status run_init_backend(run_ctx *rc);                         // the backend of run.device, graphs resolved
pad_status run_init_model(run_ctx *rc); // paths, fingerprints and the config hash (nothing loaded)
pad_status run_load_model(run_ctx *rc); // weights on the backend, vision tower, tokenizer, prompt set, lists
void run_free_model(run_ctx *rc);       // everything run_init_backend / run_load_model made (NULL-safe)
pad_status run_open_cache(run_ctx *rc); // the feature cache of cache.dir (auto: beside output.dir)

// ----------------------------------------------------------------------------
// unit_dir.c

// <ds_dir>/<class>/k<k>/seed<s>[/<leaf>]
void run_unit_path(const run_ctx *rc, char *out, size_t cap, const char *cls, int k, int seed, const char *leaf);
// The config hash recorded in <dir>/metrics.json into hash (empty when absent/unreadable); false without the file.
bool run_read_recorded_hash(const char *dir, char *hash, size_t cap);
// The state of a unit; for BROKEN, why (may be NULL) receives what is wrong ("scores.csv is missing").
unit_state run_unit_state(const run_ctx *rc, const char *cls, int k, int seed, pad_prompt_task task, char *why,
                          size_t cap);
// Whether <class>/k<k>/seed<s>/model holds a model of this config hash with every task of the run.
bool run_model_is_current(const run_ctx *rc, const char *cls, int k, int seed);
// Removes the temporary folders (".<name>.tmp-<pid>") in dir: all of them (all: the caller holds the claim of the
// folder, so nobody else is writing there), or those whose owner is gone (claim.h, pad_tmp_dir_is_orphan).
void run_remove_stale_tmp(const char *dir, bool all);
pad_status run_commit_dir(const char *tmp, const char *final);
void run_tmp_sibling(char *out, size_t cap, const char *final); // <parent>/.<name>.tmp-<pid>

// ----------------------------------------------------------------------------
// features.c

// Encodes n images (in chunks of the batch) into backend outputs (rows [0, n) of each; any may be NULL); keep[i]
// (optional) receives decoded image i. The vision tower runs in the GEMM precision of run.fast_math.
pad_status run_encode_images(run_ctx *rc, const char *cls, char *const *paths, int n, bool bgr, float *cls_out,
                             float *tok_out, float *mid1_out, float *mid2_out, pad_image **keep);
pad_status run_prepare_class_test(run_ctx *rc, class_ctx *cc); // the test set encoded, the ground truth labelled
pad_status run_load_masks(run_ctx *rc, class_ctx *cc);         // cc->masks at R x R for cc->items
pad_status run_shot_features(run_ctx *rc, class_ctx *cc, const int *index, int k); // encodes the uncached shots
const shot_feat *run_cached_shot(const class_ctx *cc, int index);                  // NULL when not cached
pad_status run_upload_shots(run_ctx *rc, class_ctx *cc, const int *index, int k);
void run_class_free(run_ctx *rc, class_ctx *cc);

// ----------------------------------------------------------------------------
// evaluate.c

// The selection metric of one epoch (image AUROC for cls, pixel AUROC for seg) with text vectors cc->tvec_dev, or
// with their text scores `text` when not NULL (a cohort's pad_scorer_text_multi: (n) for cls, (n,P) for seg).
pad_status run_eval_select(run_ctx *rc, class_ctx *cc, pad_prompt_task task, const float *text, float *scores,
                           double *metric);
// The full evaluation with cc->tvec_dev: scores (host, n), metrics, and for seg the maps in maps_host.
pad_status run_eval_final(run_ctx *rc, class_ctx *cc, pad_prompt_task task, eval_out *e);
// The selection metrics of a cohort's units of class cc at once (issue 11), metric[u] for unit u (NaN without
// ground truth): the pixel AUROC of seg units' maps maps[u] ((n, R, R) backend buffers, for instance u * n*R*R into
// one), with the GPU metrics as one batched evaluation (pad_metrics_gpu_pixel_batch), else one CPU evaluation per
// unit; the image AUROC of cls units' scores scores[u] (host, n each). Each metric[u] is what run_eval_select gives
// for that unit's maps or scores, bit for bit.
pad_status run_eval_select_pixel_batch(run_ctx *rc, class_ctx *cc, const float *const *maps, int n_units,
                                       double *metric);
pad_status run_eval_select_image_batch(run_ctx *rc, class_ctx *cc, const float *const *scores, int n_units,
                                       double *metric);
// The group's visual score V (and vmax) against its memory bank, kept in g (device and host) and made active.
pad_status run_group_visual(run_ctx *rc, class_ctx *cc, group_ctx *g, const pad_bank *bank);
// Makes g the active group of the class: its V and vmax restored into the scorer (a device copy), its V into
// cc->V_host; the cls pixel maps of the previous active group are dropped (vmaps_valid false).
pad_status run_group_activate(run_ctx *rc, class_ctx *cc, const group_ctx *g);
// The cls-task pixel maps bilinear(V) of the active group into cc->vmaps_host and their metrics (once per group;
// nothing with run.use_vad false). Overwrites the scorer's maps.
pad_status run_group_vmaps(run_ctx *rc, class_ctx *cc);

// ----------------------------------------------------------------------------
// unit_train.c

// The prompt states of the class: the prompt set's entry, or the generic states with the class name.
pad_status run_class_prompts(run_ctx *rc, class_ctx *cc, char *name_buf, size_t cap);
// One unit of group g: trains, selects, evaluates, writes and commits it; on success fills g->done[task].
pad_status run_train_unit(run_ctx *rc, class_ctx *cc, group_ctx *g, pad_prompt_task task);
// Called by run_train_cohort once the units of group g are closed (committed, or failed with st); returns the
// status to carry on with.
typedef pad_status (*run_group_done_fn)(run_ctx *rc, class_ctx *cc, group_ctx *g, pad_status st);
// The units still to do (todo[]) of the n groups trained as one cohort (run.cohort; prompt_cohort.h): one text
// pass per epoch for all of them, the same results as run_train_unit one by one. The units are committed one by
// one at the end, group after group, each group's done(rc, cc, g, st) called after its units.
pad_status run_train_cohort(run_ctx *rc, class_ctx *cc, group_ctx *const *g, int n, run_group_done_fn done);
// Units of the cohort of groups g[0..n): the sum of their todo[].
int run_cohort_units(group_ctx *const *g, int n);
// The memory a cohort of groups g[0..n) takes, estimated for run.cohort auto (what grows with its units and groups;
// the class's test features and scorer are there anyway): per unit, the text tower's activations of its prompt
// rows twice (its learner's own encoder and the cohort's; pad_text_encoder_bytes, about layers x rows x L x
// (5 width + mlp + heads x L) floats), the cohort's embeddings and their gradients (2 rows x L x width floats),
// features and gradients (2 rows x E), its learner's normalised shot features and logits (k x T x (E + 2 rows),
// T = 1 for cls, P for seg) and its text scores and vectors of an epoch (n T + 2 E); per group its V and vmax (backend
// and host: 2 n P + n floats) and, while V is made, its memory bank (2 k P D) and uploaded shot features (k (E + P E +
// 2 P D)).
pad_status run_cohort_bytes(run_ctx *rc, class_ctx *cc, group_ctx *const *g, int n, double *bytes);
void run_class_learners_free(class_ctx *cc); // the learner pool and the cohort of the class

// ----------------------------------------------------------------------------
// unit_baseline.c (run.method patchcore | padim | spade)

const char *run_baseline_name(const pad_run_config *cfg); // "patchcore", "padim" or "spade"
pad_status run_baseline_load(run_ctx *rc);                // the ResNet of model.weights on the backend, R and the batch
// The class's test images (normalised, host) and ground truth, in place of run_prepare_class_test.
pad_status run_baseline_prepare_class(run_ctx *rc, class_ctx *cc);
// The units of (k, seed) marked in todo[]: the baseline fitted on the shots, the test set scored, units written.
pad_status run_baseline_units(run_ctx *rc, class_ctx *cc, int k, int seed, const pad_shots *shots,
                              const bool todo[PAD_N_TASKS]);

// ----------------------------------------------------------------------------
// unit_writer.c

// Writes the unit's files into the (new) folder tmp; metrics.json last.
pad_status run_write_unit(run_ctx *rc, class_ctx *cc, const unit_result *u, const char *tmp);

// ----------------------------------------------------------------------------
// model_writer.c

// The predict model of group g from g->done[] (units of this run) or the unit folders (earlier runs).
pad_status run_write_model(run_ctx *rc, class_ctx *cc, const group_ctx *g);
void run_unit_summary_clear(unit_summary *s);

#endif // PAD_RUN_RUN_INTERNAL_H
