/* run_method.h - `promptad run` for the CLIP baselines of docs/winclip.md (run.method cpe or winclip): same
 * dataset, shots and metrics as PromptAD's units, results under <output.dir>/<dataset>/<method>/ (docs/winclip.md
 * "Runs"). pad_run (run.h) calls it after resolving the model files and the config hash. */
#ifndef PAD_RUN_METHOD_H
#define PAD_RUN_METHOD_H

#include "config.h"
#include "run.h"

#ifdef __cplusplus
extern "C" {
#endif

// The marker file that names a method folder under <output.dir>/<dataset>/ (it holds the method's name).
#define PAD_METHOD_MARKER "method.txt"

// Runs every unit of method cfg->run.method (not promptad) over the classes of the dataset: cpe one zero-shot unit
// per class (k0/seed0/seg); winclip that unit (WinCLIP) and one per (shot, seed) of run.shots x run.seeds
// (WinCLIP+, the shots chosen as for PromptAD). Finished units with this config hash are skipped. `hash` is the
// run's config hash, `vocab` the resolved vocabulary. Fills res->n_units, n_computed, n_skipped.
pad_status pad_run_baseline(const pad_run_config *cfg, const pad_run_opts *opts, pad_run_result *res, const char *hash,
                            const char *vocab);

#ifdef __cplusplus
}
#endif

#endif // PAD_RUN_METHOD_H
