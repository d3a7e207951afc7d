/* run_fixture.h - the tiny run shared by the run-loop tests (test_run, test_run_method, test_run_baseline,
 * test_run_damage, test_feature_cache, test_cohort, test_shard): one base configuration (the tiny model that the run
 * generates itself, a one-class synthetic dataset, everything below a test folder) with per-test overrides, as a
 * config struct for pad_run or as a YAML file for `promptad run --config`; running it; reading the unit files back
 * and comparing two runs' units. */
#ifndef PAD_TESTS_RUN_FIXTURE_H
#define PAD_TESTS_RUN_FIXTURE_H

#include "check.h"
#include "config.h"
#include "run.h"

#include <cjson/cJSON.h>

#if defined(__GNUC__)
#define PAD_TEST_SENTINEL __attribute__((sentinel))
#else
#define PAD_TEST_SENTINEL
#endif

// A malloc'd configuration (caller frees; not finalized) of the base tiny run in `dir`, then the overrides, each
// "section.key=value" as for `--set`, in order, up to a NULL:
//   model.weights=<dir>/model/tiny.safetensors  model.vocab=<dir>/model/vocab.txt.gz  model.generate=tiny
//   data.format=synth  data.root=<dir>/data  data.synth.classes=1  data.synth.size=64  data.synth.train=3
//   data.synth.test_good=3  data.synth.test_bad=3  run.shots=1  run.seeds=0  run.resolution=64  run.batch=4
//   output.dir=<dir>/results
// One class (weave), 6 test images (3 good, 3 anomalous), one unit per task. Asserts on a bad override.
pad_run_config *pad_tiny_run_cfg(const char *dir, ...) PAD_TEST_SENTINEL;

// The overrides of the sweeps that compare whole runs through the command line (test_cohort, test_shard): two
// classes (weave, grid), shots 1 and 2, both tasks, best-epoch selection, the CPU with one thread, grid maps, no
// heatmaps and no models.
#define PAD_TINY_RUN_SWEEP                                                                                             \
    "data.synth.classes=2", "run.shots=1,2", "run.tasks=cls,seg", "run.select=best", "run.device=cpu",                 \
        "run.threads=1", "output.maps=grid", "output.heatmaps=0", "output.models=false"

// The same settings written as YAML into <dir>/<name> (for `promptad run --config`); returns the path (static
// storage, valid until the next call).
const char *pad_tiny_run_yaml(const char *dir, const char *name, ...) PAD_TEST_SENTINEL;

// Writes the one-class prompt set <dir>/prompts.yaml (weave: the generic state "{} bad" and "{} cut") and returns
// the override "run.prompts=<that path>" (a pad_test_fmt buffer).
const char *pad_tiny_run_prompts(const char *dir);

// pad_run(c) with the given options (NULL: none), the summary text freed; returns pad_run's status.
pad_status pad_tiny_run(const pad_run_config *c, const pad_run_opts *o, pad_run_result *res);

// A file's bytes, NUL-terminated (asserts that it is readable); the size in *n when n is not NULL. Caller frees.
char *pad_test_read_text(const char *path, size_t *n);
// (pad_test_read_json, a JSON file parsed, is in check.h)
// metrics.json without its timings ("timing_s"), printed canonically (asserts); caller frees.
char *pad_test_metrics_without_timing(const char *path);
// Asserts that the two files have the same bytes.
void pad_test_assert_same_file(const char *a, const char *b);
// Asserts that unit `rel` (e.g. "synth/weave/k1/seed0/cls") of the results in `got` equals the one in `want`:
// metrics.json apart from its timings, and the bytes of scores.csv, train.csv, prompts.safetensors and
// maps.safetensors.
void pad_test_assert_unit_equal(const char *want, const char *got, const char *rel);

#endif // PAD_TESTS_RUN_FIXTURE_H
