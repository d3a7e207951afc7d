/* check.h - test helpers shared by tests/test_*.c: array comparison with diagnostics, fixtures (safetensors under
 * PAD_FIXTURE_DIR), paths of the shared data and the promptad binary, running the CLI, temp dirs, seeded RNG, log
 * capture. */
#ifndef PAD_TESTS_CHECK_H
#define PAD_TESTS_CHECK_H

#include "promptad.h"
#include "st_file.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct pad_check_result {
    bool ok;
    double max_abs;   // max |got - want|
    double max_rel;   // max |got - want| / max(|want|, tiny)
    double nmse;      // sum (got-want)^2 / sum want^2
    size_t worst;     // index of the element that failed first (or of max_abs when ok)
    double got, want; // values at `worst`
} pad_check_result;

// Element-wise |got - want| <= atol + rtol * |want| (NaN anywhere fails).
pad_check_result pad_check_close(const float *got, const float *want, size_t n, double atol, double rtol);
pad_check_result pad_check_close_d(const double *got, const double *want, size_t n, double atol, double rtol);

// Asserts pad_check_close with a message naming `what`.
#define PAD_ASSERT_CLOSE(what, got_, want_, n, atol, rtol)                                                             \
    do {                                                                                                               \
        pad_check_result r_ = pad_check_close((got_), (want_), (n), (atol), (rtol));                                   \
        cr_assert(r_.ok, "%s: mismatch at %zu: got %.9g want %.9g (max_abs %.3e, max_rel %.3e, n %zu)", (what),        \
                  r_.worst, r_.got, r_.want, r_.max_abs, r_.max_rel, (size_t)(n));                                     \
    } while (0)

// Fixture path "PAD_FIXTURE_DIR/name" in a static buffer.
const char *pad_fixture_path(const char *name);
// Opens a fixture safetensors file (asserts on failure).
pad_st_file *pad_fixture_open(const char *name);
// Reads a fixture tensor as F32 with the given shape (asserts on failure); caller frees.
float *pad_fixture_f32(pad_st_file *f, const char *name, int ndim, const int64_t *shape);
// Writes a copy of fixture `name` (F32 tensors) to path without tensor `skip`, or with it reshaped to (1) when
// reshape is true: a damaged checkpoint for the loaders' error messages.
void pad_fixture_write_damaged(const char *name, const char *path, const char *skip, bool reshape);

// Path of the BPE vocabulary for tests: $PROMPTAD_TEST_VOCAB when set, else the copy the repository ships in
// configs/vocab. NULL when that file is unreadable (PAD_REQUIRE_VOCAB then fails the test).
const char *pad_test_vocab_path(void);
// Fails the test with a clear message when the vocabulary is not readable (the repository ships it: never a skip).
#define PAD_REQUIRE_VOCAB()                                                                                            \
    do {                                                                                                               \
        if (!pad_test_vocab_path())                                                                                    \
            cr_assert_fail("CLIP BPE vocabulary not readable: configs/vocab/bpe_simple_vocab_16e6.txt.gz");            \
    } while (0)
// NULL when a CUDA device is usable, otherwise why not: a line starting with "built without CUDA", "no CUDA device"
// or "CUDA driver error" (pad_cuda_probe). Static storage.
const char *pad_test_cuda_missing(void);
// True when PROMPTAD_REQUIRE_CUDA=1 is in the environment: a CUDA test that would skip fails instead (GPU machines).
bool pad_test_cuda_required(void);
// First statement of every CUDA test: skips it, saying why, when no device is usable; fails it instead under
// PROMPTAD_REQUIRE_CUDA=1. A program whose tests all skipped exits 77, which ctest reports as skipped (main.c).
#define PAD_REQUIRE_CUDA()                                                                                             \
    do {                                                                                                               \
        const char *why_ = pad_test_cuda_missing();                                                                    \
        if (why_) {                                                                                                    \
            cr_assert(!pad_test_cuda_required(), "%s, and PROMPTAD_REQUIRE_CUDA=1 forbids skipping this CUDA test",    \
                      why_);                                                                                           \
            cr_skip_test("%s: CUDA test skipped", why_);                                                               \
        }                                                                                                              \
    } while (0)

// Path of the built promptad binary.
const char *pad_test_binary(void);

typedef struct pad_cmd_result {
    int exit_code; // -1 when the process did not exit normally (crash)
    char *out;     // captured stdout (malloc'd, NUL-terminated)
    char *err;     // captured stderr
} pad_cmd_result;
// Runs a shell command line (through /bin/sh) and captures its output. Free with pad_cmd_free.
pad_cmd_result pad_cmd_run(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void pad_cmd_free(pad_cmd_result *r);

// printf into one of 16 static buffers used in turn: the result stays valid for the next 15 calls (paths and
// messages built inline in a test). Longer results are cut at 4095 bytes.
char *pad_test_fmt(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

// Creates a fresh temporary directory (asserts); returns its path in static storage (do not free; at most 64 per
// test process).
char *pad_test_tmpdir(const char *tag);
// Writes bytes to a file (asserts).
void pad_test_write_file(const char *path, const void *data, size_t n);
// Reads and parses a JSON file (asserts on a missing file or bad JSON); free with cJSON_Delete.
struct cJSON;
struct cJSON *pad_test_read_json(const char *path);

// Deterministic xorshift RNG for test inputs.
typedef struct pad_rng {
    uint64_t s;
} pad_rng;
uint64_t pad_rng_next(pad_rng *r);
float pad_rng_uniform(pad_rng *r, float lo, float hi);
void pad_rng_fill(pad_rng *r, float *x, size_t n, float lo, float hi);
// A malloc'd array of n floats filled by pad_rng_fill (asserts); caller frees.
float *pad_test_rand(pad_rng *r, size_t n, float lo, float hi);

// Log capture for tests that assert on what the library logs. pad_test_log_start() empties the captured text and
// installs a sink (pad_log_set) that appends every message of level WARN or above as one line; pad_test_log_start_all()
// does the same for every level (those that pad_log_set_level lets through). Both also serve as a TestSuite .init.
// The text keeps the first 64 KiB. pad_test_log_text() returns it (a static buffer, valid until the next start);
// pad_test_log_stop() restores the default sink (stderr).
void pad_test_log_start(void);
void pad_test_log_start_all(void);
const char *pad_test_log_text(void);
void pad_test_log_stop(void);

// Asserts that the captured log contains the string s (and prints the log when it does not).
#define PAD_ASSERT_LOG_HAS(s)                                                                                          \
    cr_assert(strstr(pad_test_log_text(), (s)) != NULL, "log does not mention '%s':\n%s", (s), pad_test_log_text())

#endif // PAD_TESTS_CHECK_H
