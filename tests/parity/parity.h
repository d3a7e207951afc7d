/* parity.h - internal to the parity runner (tests/parity_main.c and the files of tests/parity/): its state, the
 * report helpers, the buffers held on both backends, and the check groups. */
#ifndef PAD_TESTS_PARITY_H
#define PAD_TESTS_PARITY_H

#include "backend.h"
#include "fsutil.h"
#include "log.h"
#include "weights.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef PAD_FIXTURE_DIR
#define PAD_FIXTURE_DIR "tests/fixtures"
#endif

typedef struct parity_state {
    pad_backend *cpu, *gpu; // the reference (CPU) and the backend under test (CUDA, or a second CPU with --cpu-twin)
    int passed, failed, skipped;
    const char *filter;
    bool quick, twin, list;
    int paths;         // 0 all, 1 safe (default paths) only, 2 fast (opt-in speed paths) only
    const char *group; // current check group
} parity_state;
extern parity_state pg;

// Whether the checks of a default path (fast = false) or of an opt-in speed path (fast = true) run.
bool path_on(bool fast);
bool selected(const char *name);

typedef struct cmp {
    bool ok;
    double nmse, max_abs, max_rel;
    size_t worst;
    double got, want;
} cmp;

// |got - want| <= atol + rtol |want| everywhere (NaN fails unless both are NaN), plus ggml's NMSE.
cmp compare(const float *got, const float *want, size_t n, double atol, double rtol);
// One report line; verdict PASS, FAIL or SKIP (counted).
void line(const char *verdict, const char *name, const char *fmt, ...) PAD_PRINTF_LIKE(3, 4);
// Element-wise check with an optional NMSE bound (nmse_max < 0: none). ms: the GPU time of the check.
bool check(const char *name, const float *got, const float *want, size_t n, double atol, double rtol, double nmse_max,
           double ms);
// Relative error max|got - want| / max|want| <= tol (the prompt tests' measure).
bool check_rel(const char *name, const float *got, const float *want, size_t n, double tol, double ms);
bool check_bits(const char *name, const void *got, const void *want, size_t nbytes, double ms);
void fail(const char *name, const char *why);

#define TRY_OR_FAIL(name, expr)                                                                                        \
    do {                                                                                                               \
        pad_status st_ = (expr);                                                                                       \
        if (st_ != PAD_OK) {                                                                                           \
            char why_[256];                                                                                            \
            snprintf(why_, sizeof why_, "%s returned %s", #expr, pad_status_str(st_));                                 \
            fail(name, why_);                                                                                          \
            goto done;                                                                                                 \
        }                                                                                                              \
    } while (0)

// Seeded random data (xorshift; the same sequence on every run).
float frand(float lo, float hi);
float *rand_host(size_t n, float lo, float hi); // malloc'ed

// A buffer on both backends with the same contents.
typedef struct twin {
    float *c, *d; // CPU backend, GPU backend
    size_t n;
} twin;
twin tw_from(const float *h, size_t n);
twin tw_rand(size_t n, float lo, float hi);
twin tw_nan(size_t n);                    // NaN-filled outputs: an element the op does not write fails the check
float *gpu_get(const float *d, size_t n); // malloc'ed copy of a GPU buffer
void tw_free(twin *t);
// Compares a twin's GPU contents with its CPU contents.
bool tw_check(const char *name, const twin *t, double atol, double rtol, double nmse_max, double ms);
double t_begin(void);
double t_end(double t0);

// The tiny fixture model (tests/fixtures), loaded on the host (towers.c).
pad_status tiny514(pad_clip_weights **w);

// Check groups: ops.c, robust.c, towers.c, train.c, metrics.c, conv.c
void ops_gemm(void);
void ops_elementwise(void);
void ops_rows(void);
void ops_attention(void);
void ops_misc(void);
void ops_score(void);
void robust_checks(void);
void vision_tiny(void);
void vision_full(void);
void towers_text(void);
void ops_quick_gelu(void);    // QuickGELU op and backward (issue 13, OpenAI CLIP weights)
void towers_quick_gelu(void); // a ViT-L/14-shaped QuickGELU model, both towers
void prompt_checks(void);
void scorer_checks(void);
void metrics_checks(void);
// conv.c (issue 13): conv ops, PatchCore ops, the ResNet, the baselines end to end
void ops_conv(void);
void ops_patchcore(void);
void resnet_checks(void);
void clip_resnet_checks(void); // clip_resnet.c
void methods_checks(void);

#endif // PAD_TESTS_PARITY_H
