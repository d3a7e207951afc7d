/* run.h - the main job, `promptad run` (docs/cli.md#run): every class x shot x seed x task of a dataset, with the
 * results layout of anomalib-style tools and resumption after an interruption.
 *
 * Results (<dir> = output.dir, <ds> = data.name or the format):
 *   <dir>/<ds>/run_config.yaml                the resolved configuration of the last run
 *   <dir>/<ds>/summary.csv, summary.md        tables over every finished unit (report.h)
 *   <dir>/<ds>/<class>/k<k>/seed<s>/<task>/   one UNIT (task = cls or seg):
 *       scores.csv         path,label,score of every test image (the unit's image score)
 *       metrics.json       image_auroc, image_aupr, pixel_auroc, pixel_aupr, pixel_pro, pixel_pro_200 (fractions;
 *                          null when undefined), the protocol, the config hash, the shots, the chosen epoch,
 *                          timings, the max-F1 threshold of the image scores
 *       maps.safetensors   output.maps grid: image_score [n], labels [n] (U8), visual_map [n,G,G] and
 *                          text_map [n,G,G] (seg) or text_image_score [n] (cls); full adds pixel_map [n,R,R] (F16)
 *       prompts.safetensors text_features [2,E] (t_n, t_a), normal_ctx, abnormal_ctx of the reported epoch
 *       train.csv          epoch, lr, loss terms, and the selection metric where it was evaluated
 *       heatmaps/<name>.png output.heatmaps overlays of the unit's pixel map on test images (white: GT contour)
 *   <dir>/<ds>/<class>/k<k>/seed<s>/model/    the predict model (model.safetensors + model.json)
 *
 * What each task reports (docs/method.md#task-outputs):
 *   cls  image score 1/(1/max(bilinear_R(V)) + 1/s_T); pixel map bilinear_R(V) unsmoothed (the official code's
 *        am_pix of the cls run), so its pixel metrics do not depend on the prompts.
 *   seg  pixel map Gaussian_4(bilinear_R(1/(1/T + 1/V))); image score = the max of that map (the official seg run
 *        reports pixel metrics only; this is the usual max-of-map convention).
 * Epoch selection: `last` trains run.epochs epochs and evaluates once; `best` (the official protocol) evaluates
 * after every epoch's step and keeps the first epoch with the strictly best image AUROC (cls) or pixel AUROC (seg).
 *
 * Resumption: a unit is written into a hidden temporary folder and renamed into place when complete (metrics.json
 * is written last), so a unit either exists completely or not at all. On restart a unit whose metrics.json carries
 * this run's config hash is skipped; one with another hash stops the run before any work (output.on_mismatch
 * error) or is recomputed (redo). Temporary folders of dead processes are removed. Test images are decoded and
 * encoded once per class; a class whose units are all done is not even decoded. */
#ifndef PAD_EVAL_RUN_H
#define PAD_EVAL_RUN_H

#include "config.h"
#include "promptad.h"

#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pad_run_event_kind {
    PAD_RUN_EV_BEGIN = 0,      // n_units and n_skipped (already finished) are known
    PAD_RUN_EV_STAGE = 1,      // message says what is being prepared (decoding / encoding a class)
    PAD_RUN_EV_UNIT_BEGIN = 2, // a unit starts (cls, k, seed, task)
    PAD_RUN_EV_EPOCH = 3,      // epoch `epoch` (1-based) of n_epochs finished
    PAD_RUN_EV_UNIT_END = 4,   // a unit was written; metrics filled, unit_seconds its wall time
    PAD_RUN_EV_END = 5,
} pad_run_event_kind;

typedef struct pad_run_event {
    pad_run_event_kind kind;
    int n_units;   // units of this run (classes x shots x seeds x tasks)
    int n_done;    // finished so far, skipped ones included
    int n_skipped; // finished before this run started
    const char *cls, *task;
    int k, seed;
    int epoch, n_epochs;
    double unit_seconds;
    double image_auroc, pixel_auroc, pixel_pro; // UNIT_END (NaN when undefined)
    const char *message;                        // STAGE
} pad_run_event;

typedef void (*pad_run_progress_fn)(const pad_run_event *ev, void *user_data);

typedef struct pad_run_opts {
    pad_run_progress_fn progress; // may be NULL
    void *user_data;
    // Polled between epochs and between units; when it becomes non-zero the unit in progress is discarded (its
    // temporary folder removed), the summary is rewritten from the finished units and pad_run returns
    // PAD_ERR_ABORTED. May be NULL.
    volatile sig_atomic_t *stop;
    bool dry_run; // resolve everything, count the units, compute nothing
    // Sharding: with shard_count > 1 only shard shard_index (0-based) of the run's units is computed, counted and
    // checked: the (class, shot, seed) groups in config order are cut into shard_count contiguous blocks of equal
    // size (+-1), both tasks of a group in the same shard; the assignment depends only on the configuration, so
    // N shards (processes, GPUs, machines, a Slurm array) together compute exactly the units of the unsharded run,
    // with the same results. shard_count 0 or 1: everything.
    int shard_index, shard_count;
} pad_run_opts;

typedef struct pad_run_result {
    int n_units, n_computed, n_skipped; // of this run (shard); skipped: finished before it started
    int n_by_other;                     // finished meanwhile by another run sharing output.dir (run.c)
    char *summary_md;                   // the Markdown tables (malloc'd, may be NULL); caller frees
    char results_dir[4096];             // <output.dir>/<dataset>
} pad_run_result;

// Runs the job described by cfg (pad_run_config_finalize must have been called). Generates the demo model and the
// synthetic dataset when the config asks for it (model.generate, data.format synth) and they are missing.
// Errors: one log line naming the class and the file at fault; every finished unit stays valid.
pad_status pad_run(const pad_run_config *cfg, const pad_run_opts *opts, pad_run_result *res);

// What depends on the checkpoint (pad_run does it on its copy; `run --dry-run` before printing): model.taps when not
// given (taps_auto) become pad_vit_default_taps of the vision tower's depth, read from the file's header ([3, 8] for
// 12 blocks, [6, 16] for 24), and taps_auto is cleared. PromptAD runs only; nothing is done when the file is missing
// (the run reports it later).
pad_status pad_run_config_resolve_model(pad_run_config *cfg);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_RUN_H
