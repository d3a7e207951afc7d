/* tokenizer_internal.h - what the two files of the tokenizer share (not a public header: only tokenizer.c and
 * tokenizer_clean.c include it): the code-point buffers, the tokenizer struct, the Unicode category helpers, and the
 * text cleaning of tokenizer_clean.c. */
#ifndef PAD_IO_TOKENIZER_INTERNAL_H
#define PAD_IO_TOKENIZER_INTERNAL_H

#include "log.h"
#include "tokenizer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

// ----------------------------------------------------------------------------
// small growable buffers

typedef struct cpbuf {
    uint32_t *v; // code points
    size_t n, cap;
} cpbuf;

static inline bool cp_reserve(cpbuf *b, size_t need) {
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    uint32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) return false;
    b->v = v;
    b->cap = cap;
    return true;
}

// Appends one code point; the caller reserved room (see cp_room).
static inline void cp_put(cpbuf *b, uint32_t c) {
    b->v[b->n++] = c;
}

// Makes room for `extra` more code points.
static inline bool cp_room(cpbuf *b, size_t extra) {
    return cp_reserve(b, b->n + extra);
}

// Appends a UTF-8 string (valid, from our tables).
static inline bool cp_put_utf8(cpbuf *b, const char *s) {
    size_t len = strlen(s);
    if (!cp_room(b, len)) return false;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &c);
        PAD_ASSERT(k > 0);
        cp_put(b, (uint32_t)c);
        p += k;
    }
    return true;
}

// ----------------------------------------------------------------------------
// the tokenizer

typedef struct merge_slot {
    uint64_t key; // (a << 32 | b) + 1; 0 = empty
    int32_t rank;
    int32_t id; // id of the merged token
} merge_slot;

typedef struct cache_slot {
    uint64_t hash; // 0 = empty
    uint32_t key_off, key_len;
    uint32_t val_off, val_len;
} cache_slot;

#define CACHE_SLOTS     4096 // power of two
#define CACHE_MAX_ITEMS (CACHE_SLOTS / 2)
#define CACHE_MAX_BYTES (1u << 20)

struct pad_tokenizer {
    int n_merges;
    int vocab_size;
    int32_t sot, eot;
    int32_t byte_id[256];     // id of the symbol of byte b
    int32_t byte_id_end[256]; // id of the symbol of byte b followed by "</w>"
    merge_slot *merges;       // (merge_cap)
    size_t merge_cap;         // power of two

    // per-piece cache: piece bytes -> ids
    cache_slot *cache; // (CACHE_SLOTS)
    int cache_items;
    unsigned char *cache_keys;
    size_t cache_keys_n, cache_keys_cap;
    int32_t *cache_vals;
    size_t cache_vals_n, cache_vals_cap;

    // scratch
    cpbuf a, b, seg;
    unsigned char *bytes; // piece bytes / UTF-8 staging
    size_t bytes_cap;
    int32_t *word;    // BPE symbols of one piece
    int32_t *wrank;   // rank of pair (word[i], word[i+1])
    uint8_t *wmerged; // word[i] was produced by the last merge
    size_t word_cap;
};

// ----------------------------------------------------------------------------
// Unicode helpers

static inline bool is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static inline bool is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

// Python str.isspace().
static inline bool is_py_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

// Characters that no alternative of the pre-tokenisation regex matches: the regex module's \s (Unicode
// White_Space: isspace() without U+001C..U+001F), and U+0345 COMBINING GREEK YPOGEGRAMMENI, which under IGNORECASE
// case-folds to a letter (so [^\s\p{L}\p{N}] rejects it) but is no letter for [\p{L}] either.
static inline bool is_re_space(uint32_t c) {
    return (is_py_space(c) && !(c >= 0x1C && c <= 0x1F)) || c == 0x345;
}

// Python's cased / case-ignorable properties, as used by str.lower() for the Greek final sigma.
static inline bool is_cased(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_islower((utf8proc_int32_t)c) || utf8proc_isupper((utf8proc_int32_t)c);
}

static inline bool is_case_ignorable(uint32_t c) {
    // Word_Break MidLetter, MidNumLet and Single_Quote
    static const uint32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,  0x5F4,  0x2018, 0x2019,
                                   0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    for (size_t i = 0; i < sizeof mid / sizeof mid[0]; i++)
        if (c == mid[i]) return true;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

static inline bool is_ascii_alnum(uint32_t c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

// Decodes strict UTF-8 (no overlongs, surrogates or values above U+10FFFF) into out.
static inline pad_status decode_utf8(const char *text, cpbuf *out) {
    size_t len = strlen(text);
    out->n = 0;
    if (!cp_reserve(out, len + 1)) return PAD_ERR_OOM;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    size_t pos = 0;
    while (pos < len) {
        if (p[pos] < 0x80) {
            cp_put(out, p[pos++]);
            continue;
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + pos, (utf8proc_ssize_t)(len - pos), &c);
        if (k < 0) {
            PAD_LOG_ERROR("text is not valid UTF-8 (byte %zu)", pos);
            return PAD_ERR_INVALID_ARG;
        }
        cp_put(out, (uint32_t)c);
        pos += (size_t)k;
    }
    return PAD_OK;
}

// The cleaned, lower-cased code points of `text` in t->a (ftfy-lite, html.unescape twice, whitespace collapse,
// str.lower), as the CLIP tokenizer's basic_clean / whitespace_clean / lower do (tokenizer_clean.c).
pad_status tok_clean_text(pad_tokenizer *t, const char *text);

#endif // PAD_IO_TOKENIZER_INTERNAL_H
