/* st_file.h - safetensors reader (mmap + cJSON) and writer: weights, CLI dumps and test fixtures.
 *
 * Format (the safetensors layout): u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data buffer.
 * Every malformed file is rejected with one logged line "<path>: <problem>" and PAD_ERR_FORMAT (PAD_ERR_IO when
 * the file cannot be opened): empty file, truncated header or data, header length beyond the file, bad JSON,
 * unknown dtype, shape/size mismatch, offsets out of range or overlapping, a name listed twice (found by sorting:
 * a header of 100k tensors opens in well under a second). Reading a missing tensor names it. */
#ifndef PAD_HOST_ST_FILE_H
#define PAD_HOST_ST_FILE_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_ST_MAX_DIMS 8

typedef enum pad_dtype {
    PAD_DTYPE_F32 = 0,
    PAD_DTYPE_F16,
    PAD_DTYPE_BF16,
    PAD_DTYPE_F64,
    PAD_DTYPE_U8,
    PAD_DTYPE_I8,
    PAD_DTYPE_I32,
    PAD_DTYPE_I64,
    PAD_DTYPE_BOOL,
} pad_dtype;

const char *pad_dtype_name(pad_dtype dt); // "F32", "F16", ...
size_t pad_dtype_size(pad_dtype dt);      // bytes per element

typedef struct pad_st_tensor {
    const char *name; // owned by the file
    pad_dtype dtype;
    int ndim; // 0 for a scalar
    int64_t shape[PAD_ST_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const unsigned char *data; // points into the mapping; NOT aligned in general
} pad_st_tensor;

typedef struct pad_st_file {
    char *path;
    int n_tensors;
    pad_st_tensor *tensors; // (n_tensors) in header order
    int *by_name;           // (n_tensors) indices into tensors sorted by name (pad_st_find's binary search)
    void *map;
    size_t map_size;
    void *meta; // the header's "__metadata__" object (a cJSON object), or NULL; read with pad_st_meta
} pad_st_file;

// Opens and validates a safetensors file. On success *out owns the mapping (close with pad_st_close).
pad_status pad_st_open(pad_st_file **out, const char *path);
void pad_st_close(pad_st_file *f); // NULL is a no-op

// The string value of "__metadata__" entry `key`, owned by the file; NULL when the file has no such entry or its
// value is not a string.
const char *pad_st_meta(const pad_st_file *f, const char *key);

// NULL when absent (no log). Use pad_st_read_* to get an error that names the tensor. O(log n_tensors).
const pad_st_tensor *pad_st_find(const pad_st_file *f, const char *name);

// The checks of pad_st_read_f32 without reading: tensor `name` exists with ndim dimensions of shape[0..ndim) (-1
// matches any size). Errors are logged as there.
pad_status pad_st_check_shape(const pad_st_file *f, const char *name, int ndim, const int64_t *shape);

// Formats a shape as "(896, 3, 16, 16)" into buf.
void pad_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

// Reads tensor `name` converted to F32 (from F32, F16, BF16, F64, U8, I8, I32, I64 or BOOL) into a new malloc'd
// buffer that the caller frees. When ndim >= 0 the shape must equal shape[0..ndim) (an entry of -1 matches any
// size); otherwise any shape is accepted. When out_t is not NULL it receives the tensor's header entry.
// Errors: missing tensor "<path>: missing tensor 'x'", shape mismatch "<path>: x: expected (..), got (..)".
pad_status pad_st_read_f32(const pad_st_file *f, const char *name, int ndim, const int64_t *shape, float **out,
                           const pad_st_tensor **out_t);

// Same as pad_st_read_f32 into a caller buffer of exactly `numel` floats (the tensor's element count must match).
pad_status pad_st_read_f32_into(const pad_st_file *f, const char *name, int ndim, const int64_t *shape, float *dst,
                                int64_t numel);

// Converts n elements of src (dtype dt, possibly unaligned) to F32.
void pad_convert_to_f32(float *dst, const void *src, pad_dtype dt, size_t n);

// float <-> IEEE half and bfloat16 (round to nearest even).
float pad_f16_to_f32(uint16_t h);
uint16_t pad_f32_to_f16(float f);
float pad_bf16_to_f32(uint16_t h);

// ----------------------------------------------------------------------------
// Writer: collects tensors (copies their data) and writes them in insertion order.

typedef struct pad_st_writer pad_st_writer;

pad_status pad_st_writer_init(pad_st_writer **out);
void pad_st_writer_free(pad_st_writer *w); // NULL is a no-op
// Copies `data` (numel(shape) elements of dt). Duplicate names are an error.
pad_status pad_st_writer_add(pad_st_writer *w, const char *name, pad_dtype dt, int ndim, const int64_t *shape,
                             const void *data);
static inline pad_status pad_st_writer_add_f32(pad_st_writer *w, const char *name, int ndim, const int64_t *shape,
                                               const float *data) {
    return pad_st_writer_add(w, name, PAD_DTYPE_F32, ndim, shape, data);
}
// Adds a "__metadata__" string entry.
pad_status pad_st_writer_meta(pad_st_writer *w, const char *key, const char *value);
// Writes the file atomically (a temporary file in the same folder, then rename). Logs "<path>: <reason>" on error.
pad_status pad_st_writer_save(pad_st_writer *w, const char *path);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_ST_FILE_H
