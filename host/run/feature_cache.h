/* feature_cache.h - the on-disk cache of encoded test and shot images, so that a repeat experiment (another learning
 * rate, prompt set, epoch count or protocol) decodes and encodes nothing.
 *
 * Layout: <dir>/<space>/<hh>/<hash>.safetensors, one file per image content, where <space> names everything the
 * features depend on besides the image (the weights' fingerprint, the preprocessing, the colour order, the taps and
 * the tensor sizes) and <hash> is a 64-bit FNV-1a of the whole image file. Each file holds cls [E], tok [P,E],
 * mid1 [P,D], mid2 [P,D] (F32) and is written atomically (temporary file + rename), so concurrent runs may share a
 * cache. A changed image, weights file or preprocessing misses; a truncated or corrupt entry is reported once,
 * recomputed and overwritten, never used. */
#ifndef PAD_RUN_FEATURE_CACHE_H
#define PAD_RUN_FEATURE_CACHE_H

#include "promptad.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct pad_fcache pad_fcache;

// What the features of an image depend on besides its bytes.
typedef struct pad_fcache_space {
    uint64_t weights_fp; // fingerprint of the weights file
    int preprocess;      // pad_preprocess_mode
    bool bgr;            // channels swapped before preprocessing
    int taps[2];         // memory-bank taps
    int E, P, D;         // feature sizes: cls [E], tok [P,E], mid [P,D]
    bool quick_gelu;     // the towers ran QuickGELU (model.activation may override the checkpoint's)
} pad_fcache_space;

typedef struct pad_fcache_stats {
    long hits, misses, corrupt, written;
} pad_fcache_stats;

// Opens the cache rooted at dir (created on the first write). dir NULL, "" or "none" gives a disabled cache: every
// get misses and every put does nothing. *out is NULL on failure (out of memory only).
pad_status pad_fcache_open(pad_fcache **out, const char *dir);
void pad_fcache_free(pad_fcache *c); // NULL ok
bool pad_fcache_enabled(const pad_fcache *c);

// 64-bit FNV-1a of the whole file at path (PAD_ERR_IO, logged, when it cannot be read).
pad_status pad_fcache_hash_file(const char *path, uint64_t *hash);

// Looks the image of content hash `hash` up in space `sp`. On a hit fills cls [E], tok [P,E], mid1 [P,D],
// mid2 [P,D] (host) and returns true; a missing entry or a bad one (reported once per cache) returns false.
bool pad_fcache_get(pad_fcache *c, const pad_fcache_space *sp, uint64_t hash, float *cls, float *tok, float *mid1,
                    float *mid2);
// Stores the features of the image of content hash `hash` (atomically). A write error is reported once and the
// cache is disabled for the rest of the run (the run goes on without it).
void pad_fcache_put(pad_fcache *c, const pad_fcache_space *sp, uint64_t hash, const float *cls, const float *tok,
                    const float *mid1, const float *mid2);

pad_fcache_stats pad_fcache_get_stats(const pad_fcache *c);

#endif // PAD_RUN_FEATURE_CACHE_H
