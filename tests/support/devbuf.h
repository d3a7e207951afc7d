/* devbuf.h - test helpers for buffers on a backend, shared by the CUDA parity tests (tests/test_*_cuda.c): the CPU
 * and CUDA backends side by side, uploads, allocations and downloads. Every helper asserts (Criterion) on failure;
 * tests/parity_main.c, which runs without Criterion, has its own that abort. */
#ifndef PAD_TESTS_DEVBUF_H
#define PAD_TESTS_DEVBUF_H

#include "backend.h"
#include "check.h"

#include <stddef.h>

// The CPU backend (all threads) and CUDA device 0.
typedef struct pad_test_pair {
    pad_backend *cpu, *gpu;
} pad_test_pair;
pad_test_pair pad_test_pair_open(void);
void pad_test_pair_close(pad_test_pair *p);

// A buffer of n floats on be holding h[0..n); free with pad_buf_free.
float *pad_test_upload(pad_backend *be, const float *h, size_t n);
// An uninitialised buffer of n floats on be; free with pad_buf_free.
float *pad_test_alloc(pad_backend *be, size_t n);
// A malloc'd host copy of n floats (or of nbytes bytes) of the buffer d on be; caller frees.
float *pad_test_download(pad_backend *be, const float *d, size_t n);
void *pad_test_download_bytes(pad_backend *be, const void *d, size_t nbytes);

#endif // PAD_TESTS_DEVBUF_H
