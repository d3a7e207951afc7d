/* st_file.c - safetensors reader (mmap + cJSON) and atomic writer. See st_file.h for the format and the errors. */
#include "st_file.h"

#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// dtypes

static const struct {
    const char *name;
    pad_dtype dt;
    size_t size;
} k_dtypes[] = {
    {"F32", PAD_DTYPE_F32, 4}, {"F16", PAD_DTYPE_F16, 2}, {"BF16", PAD_DTYPE_BF16, 2},
    {"F64", PAD_DTYPE_F64, 8}, {"U8", PAD_DTYPE_U8, 1},   {"I8", PAD_DTYPE_I8, 1},
    {"I32", PAD_DTYPE_I32, 4}, {"I64", PAD_DTYPE_I64, 8}, {"BOOL", PAD_DTYPE_BOOL, 1},
};
#define N_DTYPES (sizeof k_dtypes / sizeof k_dtypes[0])

const char *pad_dtype_name(pad_dtype dt) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (k_dtypes[i].dt == dt) return k_dtypes[i].name;
    return "?";
}

size_t pad_dtype_size(pad_dtype dt) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (k_dtypes[i].dt == dt) return k_dtypes[i].size;
    return 0;
}

static int dtype_parse(const char *s, pad_dtype *dt) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(k_dtypes[i].name, s) == 0) {
            *dt = k_dtypes[i].dt;
            return 1;
        }
    return 0;
}

float pad_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { // subnormal: normalise
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t pad_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) // inf or nan
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) // rounds to >= 65520: overflow to inf
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { // below the smallest normal half: subnormal or zero
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t mant = (absx & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(absx >> 23); // 14..24
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((absx >> 13) - (112u << 10)); // rebias exponent 127 -> 15
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float pad_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void pad_convert_to_f32(float *dst, const void *src, pad_dtype dt, size_t n) {
    const unsigned char *s = (const unsigned char *)src;
    switch (dt) {
    case PAD_DTYPE_F32:
        memcpy(dst, s, n * 4);
        break;
    case PAD_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = pad_f16_to_f32(h);
        }
        break;
    case PAD_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = pad_bf16_to_f32(h);
        }
        break;
    case PAD_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case PAD_DTYPE_U8:
    case PAD_DTYPE_BOOL:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)s[i];
        break;
    case PAD_DTYPE_I8:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(signed char)s[i];
        break;
    case PAD_DTYPE_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case PAD_DTYPE_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    }
}

void pad_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t pos = 0;
    pos += (size_t)snprintf(buf + pos, cap - pos, "(");
    for (int i = 0; i < ndim && pos < cap; i++)
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (pos < cap) snprintf(buf + pos, cap - pos, ")");
}

// ----------------------------------------------------------------------------
// reader

void pad_st_close(pad_st_file *f) {
    if (!f) return;
    if (f->tensors) {
        for (int i = 0; i < f->n_tensors; i++)
            free((char *)f->tensors[i].name);
        free(f->tensors);
    }
    free(f->by_name);
    cJSON_Delete((cJSON *)f->meta);
    if (f->map && f->map_size) munmap(f->map, f->map_size);
    free(f->path);
    free(f);
}

typedef struct span {
    uint64_t begin, end;
    int idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = (const span *)a, *y = (const span *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

// qsort_r is not C11: the tensors being sorted by name are reached through this file-scope pointer, set only
// around the one qsort call of sort_names (pad_st_open is not called concurrently on one thread).
static _Thread_local const pad_st_tensor *t_sort_tensors;

static int name_cmp(const void *a, const void *b) {
    return strcmp(t_sort_tensors[*(const int *)a].name, t_sort_tensors[*(const int *)b].name);
}

// Fills f->by_name with the tensor indices sorted by name. Returns the index of a name listed twice, or -1.
static int sort_names(pad_st_file *f) {
    for (int i = 0; i < f->n_tensors; i++)
        f->by_name[i] = i;
    t_sort_tensors = f->tensors;
    qsort(f->by_name, (size_t)f->n_tensors, sizeof *f->by_name, name_cmp);
    t_sort_tensors = NULL;
    for (int i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[f->by_name[i - 1]].name, f->tensors[f->by_name[i]].name) == 0) return f->by_name[i];
    return -1;
}

// Reads a JSON number that must be a non-negative integer representable exactly.
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

// Parses header entry `it` (tensor `it->string`) into *t: dtype, shape, element count, byte count; *b and *e are its
// data offsets, checked against the shape and the data size. Logs one line and returns PAD_ERR_FORMAT otherwise.
static pad_status parse_entry(const char *path, const cJSON *it, uint64_t data_size, pad_st_tensor *t, uint64_t *b,
                              uint64_t *e) {
    const char *name = it->string;
    if (!cJSON_IsObject(it)) {
        PAD_LOG_ERROR("%s: tensor '%s': entry is not an object", path, name);
        return PAD_ERR_FORMAT;
    }
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo)) {
        PAD_LOG_ERROR("%s: tensor '%s': needs string 'dtype', array 'shape' and array 'data_offsets'", path, name);
        return PAD_ERR_FORMAT;
    }
    if (!dtype_parse(jd->valuestring, &t->dtype)) {
        PAD_LOG_ERROR("%s: tensor '%s': unknown dtype '%s'", path, name, jd->valuestring);
        return PAD_ERR_FORMAT;
    }
    int nd = cJSON_GetArraySize(js);
    if (nd > PAD_ST_MAX_DIMS) {
        PAD_LOG_ERROR("%s: tensor '%s': %d dimensions (at most %d supported)", path, name, nd, PAD_ST_MAX_DIMS);
        return PAD_ERR_FORMAT;
    }
    t->ndim = nd;
    uint64_t numel = 1;
    int d = 0;
    for (const cJSON *dim = js->child; dim; dim = dim->next, d++) {
        uint64_t v;
        if (!json_u64(dim, &v)) {
            PAD_LOG_ERROR("%s: tensor '%s': shape entries must be non-negative integers", path, name);
            return PAD_ERR_FORMAT;
        }
        t->shape[d] = (int64_t)v;
        if (v && numel > UINT64_MAX / v) {
            PAD_LOG_ERROR("%s: tensor '%s': shape overflows", path, name);
            return PAD_ERR_FORMAT;
        }
        numel *= v;
    }
    t->numel = (int64_t)numel;
    if (cJSON_GetArraySize(jo) != 2 || !json_u64(jo->child, b) || !json_u64(jo->child->next, e) || *e < *b) {
        PAD_LOG_ERROR("%s: tensor '%s': data_offsets must be [begin, end] with begin <= end", path, name);
        return PAD_ERR_FORMAT;
    }
    size_t es = pad_dtype_size(t->dtype);
    if (numel > UINT64_MAX / es || *e - *b != numel * es) {
        char sh[128];
        pad_st_shape_str(sh, sizeof sh, t->ndim, t->shape);
        PAD_LOG_ERROR("%s: tensor '%s': shape %s of %s needs %llu bytes but data_offsets span %llu", path, name, sh,
                      jd->valuestring, (unsigned long long)(numel * es), (unsigned long long)(*e - *b));
        return PAD_ERR_FORMAT;
    }
    if (*e > data_size) {
        PAD_LOG_ERROR("%s: tensor '%s': data_offsets [%llu, %llu] are out of range (data is %llu bytes; "
                      "truncated file?)",
                      path, name, (unsigned long long)*b, (unsigned long long)*e, (unsigned long long)data_size);
        return PAD_ERR_FORMAT;
    }
    t->nbytes = (size_t)(*e - *b);
    return PAD_OK;
}

pad_status pad_st_open(pad_st_file **out, const char *path) {
    *out = NULL;
    pad_status st = PAD_ERR_FORMAT;
    cJSON *root = NULL;
    span *spans = NULL;
    char *json = NULL;
    pad_st_file *f = (pad_st_file *)calloc(1, sizeof *f);
    if (!f) return PAD_ERR_OOM;
    f->path = strdup(path);

    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        PAD_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        st = PAD_ERR_IO;
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        PAD_LOG_ERROR("%s: not a regular file", path);
        close(fd);
        st = PAD_ERR_IO;
        goto fail;
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        PAD_LOG_ERROR("%s: empty file (not a safetensors file)", path);
        close(fd);
        goto fail;
    }
    if (size < 8) {
        PAD_LOG_ERROR("%s: truncated header: file has %zu bytes, the 8-byte header length does not fit", path, size);
        close(fd);
        goto fail;
    }
    f->map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        PAD_LOG_ERROR("%s: cannot map: %s", path, strerror(errno));
        st = PAD_ERR_IO;
        goto fail;
    }
    f->map_size = size;
    const unsigned char *base = (const unsigned char *)f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | base[i];
    if (hlen > size - 8) {
        PAD_LOG_ERROR("%s: header length %llu is larger than the file (%zu bytes)", path, (unsigned long long)hlen,
                      size);
        goto fail;
    }
    if (hlen < 2) {
        PAD_LOG_ERROR("%s: truncated header (%llu bytes)", path, (unsigned long long)hlen);
        goto fail;
    }
    json = (char *)malloc(hlen + 1);
    if (!json) {
        st = PAD_ERR_OOM;
        goto fail;
    }
    memcpy(json, base + 8, hlen);
    json[hlen] = 0;
    if (strlen(json) != hlen) {
        // NUL bytes inside the header; trailing spaces are allowed padding but NULs are not
        PAD_LOG_ERROR("%s: header contains NUL bytes (not a safetensors file?)", path);
        goto fail;
    }
    root = cJSON_ParseWithLength(json, hlen);
    if (!root || !cJSON_IsObject(root)) {
        PAD_LOG_ERROR("%s: header is not a JSON object (truncated or not a safetensors file)", path);
        goto fail;
    }
    const unsigned char *data = base + 8 + hlen;
    uint64_t data_size = size - 8 - hlen;

    int n = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        if (strcmp(it->string, "__metadata__") != 0) n++;
    f->tensors = (pad_st_tensor *)calloc((size_t)(n ? n : 1), sizeof *f->tensors);
    f->by_name = (int *)calloc((size_t)(n ? n : 1), sizeof *f->by_name);
    spans = (span *)calloc((size_t)(n ? n : 1), sizeof *spans);
    if (!f->tensors || !f->by_name || !spans) {
        st = PAD_ERR_OOM;
        goto fail;
    }
    int k = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string;
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                PAD_LOG_ERROR("%s: __metadata__ is not an object", path);
                goto fail;
            }
            if (!f->meta && !(f->meta = cJSON_Duplicate(it, true))) { // kept for pad_st_meta (the header goes)
                st = PAD_ERR_OOM;
                goto fail;
            }
            continue;
        }
        pad_st_tensor *t = &f->tensors[k];
        t->name = strdup(name);
        f->n_tensors = k + 1;
        if (!t->name) {
            st = PAD_ERR_OOM;
            goto fail;
        }
        uint64_t b, e;
        if (parse_entry(path, it, data_size, t, &b, &e) != PAD_OK) goto fail;
        t->data = data + b;
        spans[k].begin = b;
        spans[k].end = e;
        spans[k].idx = k;
        k++;
    }
    // overlap and duplicate checks
    qsort(spans, (size_t)k, sizeof *spans, span_cmp);
    for (int i = 1; i < k; i++) {
        if (spans[i].begin < spans[i - 1].end) {
            PAD_LOG_ERROR("%s: tensors '%s' and '%s' have overlapping data_offsets", path,
                          f->tensors[spans[i - 1].idx].name, f->tensors[spans[i].idx].name);
            goto fail;
        }
    }
    int dup = sort_names(f);
    if (dup >= 0) {
        PAD_LOG_ERROR("%s: tensor '%s' appears twice in the header", path, f->tensors[dup].name);
        goto fail;
    }
    free(spans);
    free(json);
    cJSON_Delete(root);
    *out = f;
    return PAD_OK;

fail:
    free(spans);
    free(json);
    cJSON_Delete(root);
    pad_st_close(f);
    return st;
}

const char *pad_st_meta(const pad_st_file *f, const char *key) {
    const cJSON *v = f->meta ? cJSON_GetObjectItemCaseSensitive((const cJSON *)f->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const pad_st_tensor *pad_st_find(const pad_st_file *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const pad_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static pad_status check_tensor(const pad_st_file *f, const char *name, int ndim, const int64_t *shape,
                               const pad_st_tensor **out);

pad_status pad_st_check_shape(const pad_st_file *f, const char *name, int ndim, const int64_t *shape) {
    const pad_st_tensor *t;
    return check_tensor(f, name, ndim, shape, &t);
}

static pad_status check_tensor(const pad_st_file *f, const char *name, int ndim, const int64_t *shape,
                               const pad_st_tensor **out) {
    const pad_st_tensor *t = pad_st_find(f, name);
    if (!t) {
        PAD_LOG_ERROR("%s: missing tensor '%s'", f->path, name);
        return PAD_ERR_FORMAT;
    }
    if (ndim >= 0) {
        int ok = t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++)
            ok = shape[i] < 0 || shape[i] == t->shape[i];
        if (!ok) {
            char want[160], got[160];
            pad_st_shape_str(want, sizeof want, ndim, shape);
            pad_st_shape_str(got, sizeof got, t->ndim, t->shape);
            PAD_LOG_ERROR("%s: tensor '%s': expected shape %s, got %s", f->path, name, want, got);
            return PAD_ERR_FORMAT;
        }
    }
    *out = t;
    return PAD_OK;
}

pad_status pad_st_read_f32(const pad_st_file *f, const char *name, int ndim, const int64_t *shape, float **out,
                           const pad_st_tensor **out_t) {
    *out = NULL;
    const pad_st_tensor *t;
    PAD_TRY(check_tensor(f, name, ndim, shape, &t));
    float *buf = (float *)malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (!buf) {
        PAD_LOG_ERROR("%s: out of memory reading '%s'", f->path, name);
        return PAD_ERR_OOM;
    }
    pad_convert_to_f32(buf, t->data, t->dtype, (size_t)t->numel);
    *out = buf;
    if (out_t) *out_t = t;
    return PAD_OK;
}

pad_status pad_st_read_f32_into(const pad_st_file *f, const char *name, int ndim, const int64_t *shape, float *dst,
                                int64_t numel) {
    const pad_st_tensor *t;
    PAD_TRY(check_tensor(f, name, ndim, shape, &t));
    if (t->numel != numel) {
        PAD_LOG_ERROR("%s: tensor '%s': expected %lld elements, got %lld", f->path, name, (long long)numel,
                      (long long)t->numel);
        return PAD_ERR_FORMAT;
    }
    pad_convert_to_f32(dst, t->data, t->dtype, (size_t)numel);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// writer

typedef struct st_entry {
    char *name;
    pad_dtype dtype;
    int ndim;
    int64_t shape[PAD_ST_MAX_DIMS];
    size_t nbytes;
    void *data;
} st_entry;

struct pad_st_writer {
    st_entry *entries;
    int n, cap;
    cJSON *meta;
};

pad_status pad_st_writer_init(pad_st_writer **out) {
    *out = (pad_st_writer *)calloc(1, sizeof **out);
    return *out ? PAD_OK : PAD_ERR_OOM;
}

void pad_st_writer_free(pad_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->entries[i].name);
        free(w->entries[i].data);
    }
    free(w->entries);
    cJSON_Delete(w->meta);
    free(w);
}

pad_status pad_st_writer_add(pad_st_writer *w, const char *name, pad_dtype dt, int ndim, const int64_t *shape,
                             const void *data) {
    if (ndim < 0 || ndim > PAD_ST_MAX_DIMS || strcmp(name, "__metadata__") == 0) {
        PAD_LOG_ERROR("safetensors writer: bad tensor '%s'", name);
        return PAD_ERR_INVALID_ARG;
    }
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->entries[i].name, name) == 0) {
            PAD_LOG_ERROR("safetensors writer: duplicate tensor '%s'", name);
            return PAD_ERR_INVALID_ARG;
        }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        st_entry *e = (st_entry *)realloc(w->entries, (size_t)cap * sizeof *e);
        if (!e) return PAD_ERR_OOM;
        w->entries = e;
        w->cap = cap;
    }
    st_entry *e = &w->entries[w->n];
    memset(e, 0, sizeof *e);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return PAD_ERR_INVALID_ARG;
        e->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    e->ndim = ndim;
    e->dtype = dt;
    e->nbytes = numel * pad_dtype_size(dt);
    e->name = strdup(name);
    e->data = malloc(e->nbytes ? e->nbytes : 1);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return PAD_ERR_OOM;
    }
    if (e->nbytes) memcpy(e->data, data, e->nbytes);
    w->n++;
    return PAD_OK;
}

pad_status pad_st_writer_meta(pad_st_writer *w, const char *key, const char *value) {
    if (!w->meta && !(w->meta = cJSON_CreateObject())) return PAD_ERR_OOM;
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (!cJSON_AddStringToObject(w->meta, key, value)) return PAD_ERR_OOM;
    return PAD_OK;
}

pad_status pad_st_writer_save(pad_st_writer *w, const char *path) {
    pad_status st = PAD_ERR_OOM;
    char *hdr = NULL, *tmp = NULL;
    FILE *fp = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return PAD_ERR_OOM;
    if (w->meta) {
        cJSON *m = cJSON_Duplicate(w->meta, 1);
        if (!m) goto done;
        cJSON_AddItemToObject(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        st_entry *e = &w->entries[i];
        cJSON *t = cJSON_CreateObject();
        if (!t) goto done;
        cJSON_AddItemToObject(root, e->name, t);
        cJSON_AddStringToObject(t, "dtype", pad_dtype_name(e->dtype));
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + e->nbytes)));
        off += e->nbytes;
    }
    hdr = cJSON_PrintUnformatted(root);
    if (!hdr) goto done;
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) & ~(size_t)7; // pad with spaces so the data starts 8-byte aligned
    size_t plen = strlen(path);
    tmp = (char *)malloc(plen + 32);
    if (!tmp) goto done;
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    fp = fopen(tmp, "wb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot write: %s", path, strerror(errno));
        st = PAD_ERR_IO;
        goto done;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xff);
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(hdr, 1, hlen, fp) == hlen;
    for (size_t i = hlen; ok && i < padded; i++)
        ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < w->n; i++)
        ok = w->entries[i].nbytes == 0 ||
             fwrite(w->entries[i].data, 1, w->entries[i].nbytes, fp) == w->entries[i].nbytes;
    if (fclose(fp) != 0) ok = 0;
    fp = NULL;
    if (!ok) {
        PAD_LOG_ERROR("%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        st = PAD_ERR_IO;
        goto done;
    }
    if (rename(tmp, path) != 0) {
        PAD_LOG_ERROR("%s: cannot rename the temporary file into place: %s", path, strerror(errno));
        remove(tmp);
        st = PAD_ERR_IO;
        goto done;
    }
    st = PAD_OK;
done:
    if (fp) fclose(fp);
    free(tmp);
    free(hdr);
    cJSON_Delete(root);
    return st;
}
