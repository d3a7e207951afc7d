/* tokenizer.c - the CLIP byte-level BPE tokenizer (tokenizer.h; openclip_spec.md §7).
 *
 * Load: the first 48894 merge lines are kept; zlib decompresses the file to its end (so the gzip CRC is checked),
 * with bounded line length and size. Every vocabulary
 * string is interned in a string -> id hash table (last id wins, like Python's dict), and each merge whose parts
 * are tokens becomes an entry (id_a, id_b) -> (rank, id of the merged string) of an open-addressing hash table.
 * The strings are dropped after loading: encoding works on ids only.
 * Encode: UTF-8 -> code points -> cleaning passes (ftfy-lite, html.unescape x2, whitespace, lower) -> pieces ->
 * per piece BPE on ids (cached per piece). ASCII text without '&' or control characters skips the ftfy-lite and
 * unescape passes, which are no-ops for it. */
#include "tokenizer.h"

#include "log.h"
#include "tokenizer_tables.h"

#ifndef PAD_CONFIG_DIR
#define PAD_CONFIG_DIR "" // configs/ of the source tree (set by CMake)
#endif

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>
#include <zlib.h>

#define VOCAB_HINT "see configs/vocab/README.md and weights/README.md for the CLIP vocabulary " PAD_TOKENIZER_VOCAB_NAME

// ----------------------------------------------------------------------------
// small growable buffers

typedef struct cpbuf {
    uint32_t *v; // code points
    size_t n, cap;
} cpbuf;

static bool cp_reserve(cpbuf *b, size_t need) {
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
static bool cp_put_utf8(cpbuf *b, const char *s) {
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

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

// Rank and result of merging (a, b), or false when the pair is not a merge.
static inline bool merge_find(const pad_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->merge_cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        const merge_slot *s = &t->merges[i];
        if (s->key == key) {
            *rank = s->rank;
            *id = s->id;
            return true;
        }
        if (s->key == 0) return false;
    }
}

static void merge_put(pad_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->merge_cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        merge_slot *s = &t->merges[i];
        if (s->key == 0 || s->key == key) { // a repeated pair keeps its last rank, like Python's dict
            s->key = key;
            s->rank = rank;
            s->id = id;
            return;
        }
    }
}

// ----------------------------------------------------------------------------
// loading: string interning used only while building the tables

typedef struct str_table {
    const char **str; // (cap) pointers into the token pool
    uint32_t *len;
    int32_t *id;
    size_t cap; // power of two
} str_table;

static int32_t str_find(const str_table *st, const char *s, size_t n) {
    size_t mask = st->cap - 1;
    for (size_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        if (!st->str[i]) return -1;
        if (st->len[i] == n && memcmp(st->str[i], s, n) == 0) return st->id[i];
    }
}

static void str_put(str_table *st, const char *s, size_t n, int32_t id) {
    size_t mask = st->cap - 1;
    for (size_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        if (!st->str[i] || (st->len[i] == n && memcmp(st->str[i], s, n) == 0)) {
            st->str[i] = s;
            st->len[i] = (uint32_t)n;
            st->id[i] = id; // last id wins
            return;
        }
    }
}

// bytes_to_unicode(): the code point that stands for byte b.
static uint32_t byte_to_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (uint32_t)b;
    int k = 0; // rank of b among the remapped bytes 0..32, 127..160, 173
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
    return 256u + (uint32_t)k;
}

// Order of byte b in the id list (ids 0..255).
static int byte_order(int b) {
    if (b >= 33 && b <= 126) return b - 33;
    if (b >= 161 && b <= 172) return 94 + (b - 161);
    if (b >= 174 && b <= 255) return 106 + (b - 174);
    return (int)byte_to_cp(b) - 256 + 188;
}

static size_t utf8_put(char *dst, uint32_t c) {
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)c, (utf8proc_uint8_t *)dst);
}

// Logs "<path>: corrupt gzip data (<zlib's reason>)" for gz's error and returns PAD_ERR_FORMAT.
static pad_status gz_corrupt(gzFile gz, const char *path) {
    int err;
    const char *msg = gzerror(gz, &err);
    PAD_LOG_ERROR("%s: corrupt gzip data (%s)", path, msg && msg[0] ? msg : "read error");
    return PAD_ERR_FORMAT;
}

// Reads the header and up to PAD_TOKENIZER_MAX_MERGES merge lines into a malloc'd NUL-terminated buffer. The rest of
// the file is decompressed too and dropped: zlib checks the gzip CRC and length only at the end of the stream, so a
// flipped bit anywhere is an error. Lines longer than PAD_TOKENIZER_MAX_LINE and more than PAD_TOKENIZER_MAX_BYTES of
// text are refused as they arrive (a small gzip may expand to gigabytes).
static pad_status read_vocab_text(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        PAD_LOG_ERROR("%s: cannot open vocabulary (%s); " VOCAB_HINT, path, strerror(errno));
        return PAD_ERR_IO;
    }
    fclose(probe);
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        PAD_LOG_ERROR("%s: cannot open vocabulary (%s); " VOCAB_HINT, path, strerror(errno));
        return PAD_ERR_IO;
    }
    gzbuffer(gz, 1 << 17);
    size_t cap = 1 << 19, len = 0, lines = 0, total = 0, line_len = 0;
    bool keep = true; // still collecting: the header and the merge lines in use are not complete yet
    char *buf = malloc(cap + 1), *scratch = malloc(65536);
    pad_status st = PAD_OK;
    if (!buf || !scratch) {
        st = PAD_ERR_OOM;
        goto done;
    }
    for (;;) {
        if (keep && len + 65536 > cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                st = PAD_ERR_OOM;
                goto done;
            }
            buf = nb;
            cap *= 2;
        }
        char *dst = keep ? buf + len : scratch;
        int k = gzread(gz, dst, 65536);
        if (k < 0) {
            st = gz_corrupt(gz, path);
            goto done;
        }
        if (k == 0) {
            int err;
            gzerror(gz, &err);
            if (err != Z_OK && err != Z_STREAM_END) st = gz_corrupt(gz, path);
            break;
        }
        total += (size_t)k;
        if (total > PAD_TOKENIZER_MAX_BYTES) {
            PAD_LOG_ERROR("%s: not a vocabulary (more than %d bytes of text)", path, PAD_TOKENIZER_MAX_BYTES);
            st = PAD_ERR_FORMAT;
            goto done;
        }
        for (int i = 0; i < k; i++) {
            if (dst[i] != '\n') {
                if (++line_len > PAD_TOKENIZER_MAX_LINE) {
                    PAD_LOG_ERROR("%s:%zu: not a vocabulary (a line longer than %d bytes)", path, lines + 1,
                                  PAD_TOKENIZER_MAX_LINE);
                    st = PAD_ERR_FORMAT;
                    goto done;
                }
                continue;
            }
            line_len = 0;
            // stop collecting once the header and all the merge lines we use are complete
            if (++lines == PAD_TOKENIZER_MAX_MERGES + 1 && keep) {
                len += (size_t)i + 1;
                keep = false;
            }
        }
        if (keep) len += (size_t)k;
    }
done:
    gzclose(gz);
    free(scratch);
    if (st != PAD_OK) {
        free(buf);
        return st;
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return PAD_OK;
}

pad_status pad_tokenizer_load(pad_tokenizer **out, const char *path) {
    if (!out || !path) return PAD_ERR_INVALID_ARG;
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    PAD_TRY(read_vocab_text(path, &text, &len));
    if (len == 0) {
        PAD_LOG_ERROR("%s: empty vocabulary file; " VOCAB_HINT, path);
        free(text);
        return PAD_ERR_FORMAT;
    }
    if (memchr(text, 0, len) != NULL) {
        PAD_LOG_ERROR("%s: not a vocabulary (binary data)", path);
        free(text);
        return PAD_ERR_FORMAT;
    }
    {
        utf8proc_ssize_t pos = 0;
        while ((size_t)pos < len) {
            utf8proc_int32_t c;
            utf8proc_ssize_t k =
                utf8proc_iterate((const utf8proc_uint8_t *)text + pos, (utf8proc_ssize_t)len - pos, &c);
            if (k < 0) {
                PAD_LOG_ERROR("%s: not valid UTF-8 at byte %zd", path, pos);
                free(text);
                return PAD_ERR_FORMAT;
            }
            pos += k;
        }
    }

    // split lines: line 0 header, then merges
    char **ml = malloc(PAD_TOKENIZER_MAX_MERGES * sizeof *ml); // start of merge line i
    size_t *mlen = malloc(PAD_TOKENIZER_MAX_MERGES * sizeof *mlen);
    size_t *msp = malloc(PAD_TOKENIZER_MAX_MERGES * sizeof *msp); // offset of the separating space
    pad_tokenizer *t = calloc(1, sizeof *t);
    pad_status st = PAD_OK;
    str_table strs = {0};
    char *pool = NULL;
    if (!ml || !mlen || !msp || !t) {
        st = PAD_ERR_OOM;
        goto done;
    }
    int n_merges = 0;
    {
        char *p = text, *end = text + len;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end; // skip the header
        int line_no = 2;
        while (p < end && n_merges < PAD_TOKENIZER_MAX_MERGES) {
            nl = memchr(p, '\n', (size_t)(end - p));
            char *e = nl ? nl : end;
            size_t n = (size_t)(e - p);
            if (n > 0 && p[n - 1] == '\r') n--;
            char *sp = memchr(p, ' ', n);
            if (n == 0 || !sp || sp == p || sp == p + n - 1 || memchr(sp + 1, ' ', (size_t)(p + n - sp - 1)) ||
                memchr(p, '\t', n)) {
                PAD_LOG_ERROR("%s:%d: bad merge line (expected two symbols separated by one space)", path, line_no);
                st = PAD_ERR_FORMAT;
                goto done;
            }
            ml[n_merges] = p;
            mlen[n_merges] = n;
            msp[n_merges] = (size_t)(sp - p);
            n_merges++;
            line_no++;
            p = nl ? nl + 1 : end;
        }
    }
    t->n_merges = n_merges;
    t->vocab_size = 512 + n_merges + 2;
    t->sot = 512 + n_merges;
    t->eot = 513 + n_merges;

    // token pool: 256 symbols, 256 symbols + "</w>", merged strings, the two special tokens
    size_t pool_cap = 256 * 2 + 256 * 6 + 64;
    for (int i = 0; i < n_merges; i++)
        pool_cap += mlen[i] + 1;
    pool = malloc(pool_cap);
    const char **tok_str = malloc((size_t)t->vocab_size * sizeof *tok_str);
    uint32_t *tok_len = malloc((size_t)t->vocab_size * sizeof *tok_len);
    strs.cap = 1;
    while (strs.cap < (size_t)t->vocab_size * 2)
        strs.cap *= 2;
    strs.str = calloc(strs.cap, sizeof *strs.str);
    strs.len = calloc(strs.cap, sizeof *strs.len);
    strs.id = calloc(strs.cap, sizeof *strs.id);
    t->merge_cap = 1;
    while (t->merge_cap < (size_t)(n_merges + 1) * 2)
        t->merge_cap *= 2;
    t->merges = calloc(t->merge_cap, sizeof *t->merges);
    if (!pool || !tok_str || !tok_len || !strs.str || !strs.len || !strs.id || !t->merges) {
        free(tok_str);
        free(tok_len);
        st = PAD_ERR_OOM;
        goto done;
    }
    size_t pn = 0;
    for (int b = 0; b < 256; b++) {
        int id = byte_order(b);
        char *s = pool + pn;
        size_t n = utf8_put(s, byte_to_cp(b));
        tok_str[id] = s;
        tok_len[id] = (uint32_t)n;
        pn += n;
        s = pool + pn;
        n = utf8_put(s, byte_to_cp(b));
        memcpy(s + n, "</w>", 4);
        tok_str[256 + id] = s;
        tok_len[256 + id] = (uint32_t)(n + 4);
        pn += n + 4;
    }
    for (int i = 0; i < n_merges; i++) {
        char *s = pool + pn;
        memcpy(s, ml[i], msp[i]);
        memcpy(s + msp[i], ml[i] + msp[i] + 1, mlen[i] - msp[i] - 1);
        tok_str[512 + i] = s;
        tok_len[512 + i] = (uint32_t)(mlen[i] - 1);
        pn += mlen[i] - 1;
    }
    tok_str[t->sot] = "<start_of_text>";
    tok_len[t->sot] = 15;
    tok_str[t->eot] = "<end_of_text>";
    tok_len[t->eot] = 13;
    for (int id = 0; id < t->vocab_size; id++)
        str_put(&strs, tok_str[id], tok_len[id], id);
    for (int b = 0; b < 256; b++) {
        int id = byte_order(b);
        t->byte_id[b] = str_find(&strs, tok_str[id], tok_len[id]);
        t->byte_id_end[b] = str_find(&strs, tok_str[256 + id], tok_len[256 + id]);
    }
    for (int i = 0; i < n_merges; i++) {
        int32_t a = str_find(&strs, ml[i], msp[i]);
        int32_t b = str_find(&strs, ml[i] + msp[i] + 1, mlen[i] - msp[i] - 1);
        if (a < 0 || b < 0) continue; // a merge of strings that are no tokens can never apply
        merge_put(t, a, b, i, str_find(&strs, tok_str[512 + i], tok_len[512 + i]));
    }
    free(tok_str);
    free(tok_len);

    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    if (!t->cache) st = PAD_ERR_OOM;

done:
    free(strs.str);
    free(strs.len);
    free(strs.id);
    free(pool);
    free(ml);
    free(mlen);
    free(msp);
    free(text);
    if (st != PAD_OK) {
        if (st == PAD_ERR_OOM) PAD_LOG_ERROR("%s: out of memory while loading the vocabulary", path);
        pad_tokenizer_free(t);
        return st;
    }
    *out = t;
    return PAD_OK;
}

void pad_tokenizer_free(pad_tokenizer *tok) {
    if (!tok) return;
    free(tok->merges);
    free(tok->cache);
    free(tok->cache_keys);
    free(tok->cache_vals);
    free(tok->a.v);
    free(tok->b.v);
    free(tok->seg.v);
    free(tok->bytes);
    free(tok->word);
    free(tok->wrank);
    free(tok->wmerged);
    free(tok);
}

int pad_tokenizer_vocab_size(const pad_tokenizer *tok) {
    return tok->vocab_size;
}

int pad_tokenizer_n_merges(const pad_tokenizer *tok) {
    return tok->n_merges;
}

int32_t pad_tokenizer_sot(const pad_tokenizer *tok) {
    return tok->sot;
}

int32_t pad_tokenizer_eot(const pad_tokenizer *tok) {
    return tok->eot;
}

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
static bool is_cased(uint32_t c) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           utf8proc_islower((utf8proc_int32_t)c) || utf8proc_isupper((utf8proc_int32_t)c);
}

static bool is_case_ignorable(uint32_t c) {
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
static pad_status decode_utf8(const char *text, cpbuf *out) {
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

// ----------------------------------------------------------------------------
// cleaning passes: each reads in[0..n) and appends to out (out->n reset by the caller)

static int entity_cmp(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const tok_entity *)elem)->name);
}

// Looks up an entity name given as code points; NULL when absent (or not ASCII).
static const char *entity_lookup(const tok_entity *table, size_t n_table, const uint32_t *s, size_t n) {
    char name[40];
    if (n >= sizeof name) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 0x80 || s[i] == 0) return NULL;
        name[i] = (char)s[i];
    }
    name[n] = 0;
    const tok_entity *e = bsearch(name, table, n_table, sizeof *table, entity_cmp);
    return e ? e->value : NULL;
}

#define N_HTML5 (sizeof k_html5_entities / sizeof k_html5_entities[0])
#define N_UPPER (sizeof k_upper_entities / sizeof k_upper_entities[0])

// html.unescape's replacement for the numeric reference `num` (saturated above 0x10FFFF).
static bool put_charref(cpbuf *out, uint32_t num) {
    for (size_t i = 0; i < sizeof k_invalid_charrefs / sizeof k_invalid_charrefs[0]; i++)
        if (k_invalid_charrefs[i].cp == num) return cp_put_utf8(out, k_invalid_charrefs[i].value);
    if (!cp_room(out, 1)) return false;
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        cp_put(out, 0xFFFD);
        return true;
    }
    size_t lo = 0, hi = sizeof k_invalid_codepoints / sizeof k_invalid_codepoints[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (k_invalid_codepoints[mid] < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < sizeof k_invalid_codepoints / sizeof k_invalid_codepoints[0] && k_invalid_codepoints[lo] == num)
        return true; // dropped
    cp_put(out, num);
    return true;
}

static inline int hex_val(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (int)((c | 0x20) - 'a' + 10);
    return -1;
}

// Python's html.unescape: &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
static bool pass_html_unescape(const uint32_t *in, size_t n, cpbuf *out) {
    if (!cp_room(out, n)) return false;
    size_t i = 0;
    while (i < n) {
        if (in[i] != '&') {
            if (!cp_room(out, 1)) return false;
            cp_put(out, in[i++]);
            continue;
        }
        size_t j = i + 1;
        if (j < n && in[j] == '#') {
            size_t k = j + 1;
            uint32_t num = 0;
            bool ok = false;
            if (k < n && in[k] >= '0' && in[k] <= '9') {
                for (; k < n && in[k] >= '0' && in[k] <= '9'; k++)
                    num = num > 0x110000 ? 0x110001 : num * 10 + (in[k] - '0');
                ok = true;
            } else if (k + 1 < n && (in[k] == 'x' || in[k] == 'X') && hex_val(in[k + 1]) >= 0) {
                for (k++; k < n && hex_val(in[k]) >= 0; k++)
                    num = num > 0x110000 ? 0x110001 : num * 16 + (uint32_t)hex_val(in[k]);
                ok = true;
            }
            if (ok) {
                if (k < n && in[k] == ';') k++;
                if (!put_charref(out, num)) return false;
                i = k;
                continue;
            }
            // '#' cannot start a name: no match
            if (!cp_room(out, 1)) return false;
            cp_put(out, in[i++]);
            continue;
        }
        size_t k = j;
        while (k < n && k - j < 32) {
            uint32_t c = in[k];
            if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';') break;
            k++;
        }
        if (k == j) {
            if (!cp_room(out, 1)) return false;
            cp_put(out, in[i++]);
            continue;
        }
        if (k < n && in[k] == ';') k++;
        const uint32_t *s = in + j;
        size_t sl = k - j;
        const char *v = entity_lookup(k_html5_entities, N_HTML5, s, sl);
        if (v) {
            if (!cp_put_utf8(out, v)) return false;
        } else {
            size_t x = sl - 1;
            for (; x >= 2; x--) {
                v = entity_lookup(k_html5_entities, N_HTML5, s, x);
                if (v) break;
            }
            if (v) {
                if (!cp_put_utf8(out, v) || !cp_room(out, sl - x)) return false;
                for (size_t y = x; y < sl; y++)
                    cp_put(out, s[y]);
            } else {
                if (!cp_room(out, sl + 1)) return false;
                for (size_t y = i; y < k; y++)
                    cp_put(out, in[y]);
            }
        }
        i = k;
    }
    return true;
}

// ftfy's unescape_html: &#?[0-9A-Za-z]{1,24}; decoded when it names an HTML5 entity (or an all-caps variant), or is
// a numeric reference that html.unescape decodes completely.
static bool pass_ftfy_unescape(pad_tokenizer *t, const uint32_t *in, size_t n, cpbuf *out) {
    if (!cp_room(out, n)) return false;
    size_t i = 0;
    while (i < n) {
        if (in[i] == '&') {
            size_t j = i + 1;
            bool hash = j < n && in[j] == '#';
            size_t k = j + (hash ? 1 : 0), m = 0;
            while (k + m < n && is_ascii_alnum(in[k + m]))
                m++;
            if (m >= 1 && m <= 24 && k + m < n && in[k + m] == ';') {
                size_t end = k + m + 1; // past ';'
                if (!hash) {
                    const char *v = entity_lookup(k_html5_entities, N_HTML5, in + j, end - j);
                    if (!v) v = entity_lookup(k_upper_entities, N_UPPER, in + j, end - j);
                    if (v) {
                        if (!cp_put_utf8(out, v)) return false;
                        i = end;
                        continue;
                    }
                } else {
                    cpbuf *tmp = &t->seg; // free here: the caller works on t->a / t->b
                    tmp->n = 0;
                    if (!pass_html_unescape(in + i, end - i, tmp)) return false;
                    bool has_semi = false;
                    for (size_t y = 0; y < tmp->n; y++)
                        has_semi |= tmp->v[y] == ';';
                    if (!has_semi) {
                        if (!cp_room(out, tmp->n)) return false;
                        for (size_t y = 0; y < tmp->n; y++)
                            cp_put(out, tmp->v[y]);
                        i = end;
                        continue;
                    }
                }
                if (!cp_room(out, end - i)) return false;
                for (size_t y = i; y < end; y++)
                    cp_put(out, in[y]);
                i = end;
                continue;
            }
        }
        if (!cp_room(out, 1)) return false;
        cp_put(out, in[i++]);
    }
    return true;
}

static const struct {
    uint16_t cp;
    const char *s;
} k_ligatures[] = {
    {0x0132, "IJ"},        {0x0133, "ij"}, {0x0149, "\xca\xbcn"}, {0x01C4, "D\xc5\xbd"}, {0x01C5, "D\xc5\xbe"},
    {0x01C6, "d\xc5\xbe"}, {0x01C7, "LJ"}, {0x01C8, "Lj"},        {0x01C9, "lj"},        {0x01CA, "NJ"},
    {0x01CB, "Nj"},        {0x01CC, "nj"}, {0x01F1, "DZ"},        {0x01F2, "Dz"},        {0x01F3, "dz"},
    {0xFB00, "ff"},        {0xFB01, "fi"}, {0xFB02, "fl"},        {0xFB03, "ffi"},       {0xFB04, "ffl"},
    {0xFB05, "\xc5\xbft"}, {0xFB06, "st"},
};

static inline uint32_t uncurl(uint32_t c) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) return '\'';
    if (c >= 0x201C && c <= 0x201F) return '"';
    return c;
}

// Width fix then quote fix of one code point.
static bool put_width_quote(cpbuf *out, uint32_t c) {
    if (c == 0x3000 || (c >= 0xFF01 && c <= 0xFFEF)) {
        size_t lo = 0, hi = sizeof k_width_map / sizeof k_width_map[0];
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (k_width_map[mid].cp < c)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < sizeof k_width_map / sizeof k_width_map[0] && k_width_map[lo].cp == c) {
            size_t start = out->n;
            if (!cp_put_utf8(out, k_width_map[lo].value)) return false;
            for (size_t y = start; y < out->n; y++)
                out->v[y] = uncurl(out->v[y]);
            return true;
        }
    }
    if (!cp_room(out, 1)) return false;
    cp_put(out, uncurl(c));
    return true;
}

// fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes (in this order, per character).
static bool pass_charmap(const uint32_t *in, size_t n, cpbuf *out) {
    if (!cp_room(out, n)) return false;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c >= 0x80 && c <= 0x9F) c = k_c1_cp1252[c - 0x80];
        bool lig = false;
        if (c >= 0x0132 && c <= 0xFB06) {
            for (size_t k = 0; k < sizeof k_ligatures / sizeof k_ligatures[0]; k++) {
                if (k_ligatures[k].cp != c) continue;
                lig = true;
                const unsigned char *p = (const unsigned char *)k_ligatures[k].s;
                while (*p) {
                    utf8proc_int32_t d;
                    utf8proc_ssize_t adv = utf8proc_iterate(p, -1, &d);
                    if (!put_width_quote(out, (uint32_t)d)) return false;
                    p += adv;
                }
                break;
            }
        }
        if (!lig && !put_width_quote(out, c)) return false;
    }
    return true;
}

// fix_line_breaks, remove_terminal_escapes, remove_control_chars.
static bool pass_breaks_escapes_controls(const uint32_t *in, size_t n, cpbuf *out) {
    if (!cp_room(out, n)) return false;
    // line breaks first (into out), then the other two in place
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c == '\r') {
            if (i + 1 < n && in[i + 1] == '\n') continue;
            c = '\n';
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            c = '\n';
        }
        cp_put(out, c);
    }
    size_t w = 0;
    for (size_t i = 0; i < out->n;) {
        uint32_t c = out->v[i];
        if (c == 0x1B && i + 1 < out->n && out->v[i + 1] == '[') { // ESC [ (\d|;)* [a-zA-Z]
            size_t k = i + 2;
            while (k < out->n &&
                   (out->v[k] == ';' || utf8proc_category((utf8proc_int32_t)out->v[k]) == UTF8PROC_CATEGORY_ND))
                k++;
            if (k < out->n && out->v[k] < 0x80 && ((out->v[k] | 0x20) >= 'a' && (out->v[k] | 0x20) <= 'z')) {
                i = k + 1;
                continue;
            }
        }
        i++;
        bool control = c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
                       (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
        if (!control) out->v[w++] = c;
    }
    out->n = w;
    return true;
}

// NFC (utf8proc), only when some code point is >= U+0300 (nothing below composes or changes).
static pad_status pass_nfc(pad_tokenizer *t, cpbuf *buf) {
    bool need = false;
    for (size_t i = 0; i < buf->n && !need; i++)
        need = buf->v[i] >= 0x300;
    if (!need) return PAD_OK;
    size_t cap = buf->n * 4 + 1;
    if (cap > t->bytes_cap) {
        unsigned char *nb = realloc(t->bytes, cap);
        if (!nb) return PAD_ERR_OOM;
        t->bytes = nb;
        t->bytes_cap = cap;
    }
    size_t len = 0;
    for (size_t i = 0; i < buf->n; i++)
        len += (size_t)utf8proc_encode_char((utf8proc_int32_t)buf->v[i], t->bytes + len);
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t rl =
        utf8proc_map(t->bytes, (utf8proc_ssize_t)len, &res, (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (rl < 0) {
        PAD_LOG_ERROR("NFC normalisation failed: %s", utf8proc_errmsg(rl));
        return rl == UTF8PROC_ERROR_NOMEM ? PAD_ERR_OOM : PAD_ERR_INVALID_ARG;
    }
    buf->n = 0;
    if (!cp_reserve(buf, (size_t)rl + 1)) {
        free(res);
        return PAD_ERR_OOM;
    }
    for (utf8proc_ssize_t pos = 0; pos < rl;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(res + pos, rl - pos, &c);
        PAD_ASSERT(k > 0);
        cp_put(buf, (uint32_t)c);
        pos += k;
    }
    free(res);
    return PAD_OK;
}

static bool same(const cpbuf *x, const cpbuf *y) {
    return x->n == y->n && memcmp(x->v, y->v, x->n * sizeof *x->v) == 0;
}

// ftfy-lite on t->a (whole text) -> t->a. Segments end after each '\n'; unescaping stops from the first segment
// that contains '<' on; each segment is fixed until it no longer changes.
static pad_status ftfy_lite(pad_tokenizer *t) {
    cpbuf *src = &t->a, *dst = &t->b;
    cpbuf cur = {0}, nxt = {0};
    dst->n = 0;
    bool unescape = true;
    pad_status st = PAD_OK;
    for (size_t pos = 0; pos < src->n;) {
        size_t end = pos;
        while (end < src->n && src->v[end] != '\n')
            end++;
        if (end < src->n) end++; // keep the '\n' in the segment
        for (size_t i = pos; i < end && unescape; i++)
            if (src->v[i] == '<') unescape = false;
        cur.n = 0;
        if (!cp_reserve(&cur, end - pos + 1)) {
            st = PAD_ERR_OOM;
            goto done;
        }
        memcpy(cur.v, src->v + pos, (end - pos) * sizeof *cur.v);
        cur.n = end - pos;
        for (int iter = 0;; iter++) {
            PAD_ASSERT(iter < 1000); // every change shortens or normalises the text
            nxt.n = 0;
            cpbuf *in = &cur;
            cpbuf tmp = {0};
            if (unescape) {
                if (!pass_ftfy_unescape(t, cur.v, cur.n, &nxt)) {
                    st = PAD_ERR_OOM;
                    goto done;
                }
                tmp = nxt; // swap roles: tmp holds the unescaped text
                nxt = (cpbuf){0};
                in = &tmp;
            }
            cpbuf mapped = {0};
            bool ok = pass_charmap(in->v, in->n, &mapped);
            free(tmp.v);
            if (!ok) {
                free(mapped.v);
                st = PAD_ERR_OOM;
                goto done;
            }
            nxt.n = 0;
            ok = pass_breaks_escapes_controls(mapped.v, mapped.n, &nxt);
            free(mapped.v);
            if (!ok) {
                st = PAD_ERR_OOM;
                goto done;
            }
            if ((st = pass_nfc(t, &nxt)) != PAD_OK) goto done;
            bool unchanged = same(&cur, &nxt);
            cpbuf sw = cur;
            cur = nxt;
            nxt = sw;
            if (unchanged) break;
        }
        if (!cp_room(dst, cur.n)) {
            st = PAD_ERR_OOM;
            goto done;
        }
        memcpy(dst->v + dst->n, cur.v, cur.n * sizeof *cur.v);
        dst->n += cur.n;
        pos = end;
    }
    {
        cpbuf sw = t->a;
        t->a = t->b;
        t->b = sw;
    }
done:
    free(cur.v);
    free(nxt.v);
    return st;
}

// Whitespace collapse (str.split / " ".join) from in to out.
static bool pass_whitespace(const uint32_t *in, size_t n, cpbuf *out) {
    if (!cp_room(out, n)) return false;
    bool pending = false;
    for (size_t i = 0; i < n; i++) {
        if (is_py_space(in[i])) {
            pending = true;
            continue;
        }
        if (pending && out->n > 0) cp_put(out, ' ');
        pending = false;
        cp_put(out, in[i]);
    }
    return true;
}

// Python str.lower() from in to out.
static bool pass_lower(const uint32_t *in, size_t n, cpbuf *out) {
    if (!cp_room(out, n * 2)) return false;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c < 0x80) {
            cp_put(out, (c >= 'A' && c <= 'Z') ? c + 32 : c);
        } else if (c == 0x130) { // LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + COMBINING DOT ABOVE
            cp_put(out, 'i');
            cp_put(out, 0x307);
        } else if (c == 0x3A3) { // final sigma: cased (ignorable)* Σ !((ignorable)* cased)
            size_t j = i;
            while (j > 0 && is_case_ignorable(in[j - 1]))
                j--;
            bool final = j > 0 && is_cased(in[j - 1]);
            if (final) {
                size_t k = i + 1;
                while (k < n && is_case_ignorable(in[k]))
                    k++;
                final = k == n || !is_cased(in[k]);
            }
            cp_put(out, final ? 0x3C2 : 0x3C3);
        } else {
            cp_put(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        }
    }
    return true;
}

// The cleaned, lower-cased text of `text` in t->a.
static pad_status clean_text(pad_tokenizer *t, const char *text) {
    PAD_TRY(decode_utf8(text, &t->a));
    bool simple = true, amp = false;
    for (size_t i = 0; i < t->a.n; i++) {
        uint32_t c = t->a.v[i];
        if (c == '&') amp = true;
        if (!((c >= 0x20 && c < 0x7F) || c == '\t' || c == '\n')) simple = false;
    }
    if (!simple || amp) PAD_TRY(ftfy_lite(t));
    if (amp || !simple) {
        for (int k = 0; k < 2; k++) {
            t->b.n = 0;
            if (!pass_html_unescape(t->a.v, t->a.n, &t->b)) return PAD_ERR_OOM;
            cpbuf sw = t->a;
            t->a = t->b;
            t->b = sw;
        }
    }
    t->b.n = 0;
    if (!pass_whitespace(t->a.v, t->a.n, &t->b)) return PAD_ERR_OOM;
    t->a.n = 0;
    if (!pass_lower(t->b.v, t->b.n, &t->a)) return PAD_ERR_OOM;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// BPE

static bool word_reserve(pad_tokenizer *t, size_t n) {
    if (n <= t->word_cap) return true;
    size_t cap = t->word_cap ? t->word_cap : 64;
    while (cap < n)
        cap *= 2;
    int32_t *w = realloc(t->word, cap * sizeof *w);
    if (w) t->word = w;
    int32_t *r = realloc(t->wrank, cap * sizeof *r);
    if (r) t->wrank = r;
    uint8_t *m = realloc(t->wmerged, cap);
    if (m) t->wmerged = m;
    if (!w || !r || !m) return false;
    t->word_cap = cap;
    return true;
}

// BPE of one piece (bytes p[0..len), len >= 1) into t->word; returns the number of symbols.
static size_t bpe_piece(pad_tokenizer *t, const unsigned char *p, size_t len) {
    int32_t *w = t->word, *rank = t->wrank;
    uint8_t *merged = t->wmerged;
    size_t n = len;
    for (size_t i = 0; i + 1 < len; i++)
        w[i] = t->byte_id[p[i]];
    w[len - 1] = t->byte_id_end[p[len - 1]];
    int32_t res;
    for (size_t i = 0; i + 1 < n; i++)
        if (!merge_find(t, w[i], w[i + 1], &rank[i], &res)) rank[i] = INT32_MAX;
    while (n > 1) {
        size_t k = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[k]) k = i;
        if (rank[k] == INT32_MAX) break;
        int32_t a = w[k], b = w[k + 1], id = -1, r;
        bool found = merge_find(t, a, b, &r, &id);
        PAD_ASSERT(found);
        // merge every non-overlapping occurrence of (a, b), left to right, from k on
        size_t j = k;
        for (size_t i = k; i < n;) {
            if (i + 1 < n && w[i] == a && w[i + 1] == b) {
                w[j] = id;
                merged[j] = 1;
                i += 2;
            } else {
                w[j] = w[i];
                rank[j] = rank[i]; // still valid unless a neighbour was merged (fixed below)
                merged[j] = 0;
                i += 1;
            }
            j++;
        }
        n = j;
        for (size_t i = k > 0 ? k - 1 : 0; i + 1 < n; i++)
            if ((i >= k && merged[i]) || merged[i + 1])
                if (!merge_find(t, w[i], w[i + 1], &rank[i], &res)) rank[i] = INT32_MAX;
    }
    return n;
}

static void cache_clear(pad_tokenizer *t) {
    memset(t->cache, 0, CACHE_SLOTS * sizeof *t->cache);
    t->cache_items = 0;
    t->cache_keys_n = 0;
    t->cache_vals_n = 0;
}

// Ids of one piece (bytes p[0..len)): from the cache or by BPE. *ids points to storage valid until the next call.
static pad_status piece_ids(pad_tokenizer *t, const unsigned char *p, size_t len, const int32_t **ids, size_t *n) {
    uint64_t h = hash_bytes(p, len);
    size_t mask = CACHE_SLOTS - 1, slot;
    for (slot = h & mask;; slot = (slot + 1) & mask) {
        cache_slot *s = &t->cache[slot];
        if (s->hash == 0) break;
        if (s->hash == h && s->key_len == len && memcmp(t->cache_keys + s->key_off, p, len) == 0) {
            *ids = t->cache_vals + s->val_off;
            *n = s->val_len;
            return PAD_OK;
        }
    }
    if (!word_reserve(t, len)) return PAD_ERR_OOM;
    size_t m = bpe_piece(t, p, len);
    *ids = t->word;
    *n = m;
    // remember it
    if (t->cache_items >= CACHE_MAX_ITEMS || t->cache_keys_n + len > CACHE_MAX_BYTES ||
        t->cache_vals_n + m > CACHE_MAX_BYTES) {
        cache_clear(t);
        for (slot = h & mask; t->cache[slot].hash != 0; slot = (slot + 1) & mask) {
        }
    }
    if (t->cache_keys_n + len > t->cache_keys_cap) {
        size_t cap = t->cache_keys_cap ? t->cache_keys_cap : 16384;
        while (cap < t->cache_keys_n + len)
            cap *= 2;
        unsigned char *nk = realloc(t->cache_keys, cap);
        if (!nk) return PAD_OK; // caching is optional
        t->cache_keys = nk;
        t->cache_keys_cap = cap;
    }
    if (t->cache_vals_n + m > t->cache_vals_cap) {
        size_t cap = t->cache_vals_cap ? t->cache_vals_cap : 16384;
        while (cap < t->cache_vals_n + m)
            cap *= 2;
        int32_t *nv = realloc(t->cache_vals, cap * sizeof *nv);
        if (!nv) return PAD_OK;
        t->cache_vals = nv;
        t->cache_vals_cap = cap;
    }
    cache_slot *s = &t->cache[slot];
    s->hash = h;
    s->key_off = (uint32_t)t->cache_keys_n;
    s->key_len = (uint32_t)len;
    s->val_off = (uint32_t)t->cache_vals_n;
    s->val_len = (uint32_t)m;
    memcpy(t->cache_keys + t->cache_keys_n, p, len);
    memcpy(t->cache_vals + t->cache_vals_n, t->word, m * sizeof *t->word);
    t->cache_keys_n += len;
    t->cache_vals_n += m;
    t->cache_items++;
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// pre-tokenisation + encoding

static const uint32_t k_sot_cp[] = {'<', 's', 't', 'a', 'r', 't', '_', 'o', 'f', '_', 't', 'e', 'x', 't', '>'};
static const uint32_t k_eot_cp[] = {'<', 'e', 'n', 'd', '_', 'o', 'f', '_', 't', 'e', 'x', 't', '>'};

static bool starts_with(const uint32_t *s, size_t n, const uint32_t *lit, size_t ln) {
    return n >= ln && memcmp(s, lit, ln * sizeof *lit) == 0;
}

// Length of the contraction at s (0 if none): 's 't 're 've 'm 'll 'd (and 'ſ, which case-folds to 's).
static size_t contraction(const uint32_t *s, size_t n) {
    if (n < 2 || s[0] != '\'') return 0;
    uint32_t c = s[1];
    if (c == 's' || c == 0x17F || c == 't' || c == 'm' || c == 'd') return 2;
    if (n >= 3 && ((c == 'r' && s[2] == 'e') || (c == 'v' && s[2] == 'e') || (c == 'l' && s[2] == 'l'))) return 3;
    return 0;
}

// Encodes the cleaned text in t->a. Writes up to max_ids ids; stops early once the count exceeds stop_after.
static pad_status encode_clean(pad_tokenizer *t, int32_t *ids, int max_ids, int stop_after, int *count) {
    const uint32_t *s = t->a.v;
    size_t n = t->a.n;
    int cnt = 0;
    if (t->bytes_cap < n * 4 + 4) {
        unsigned char *nb = realloc(t->bytes, n * 4 + 4);
        if (!nb) return PAD_ERR_OOM;
        t->bytes = nb;
        t->bytes_cap = n * 4 + 4;
    }
    size_t i = 0;
    while (i < n && cnt <= stop_after) {
        size_t len = 0;
        int32_t special = -1;
        if (s[i] == '<' && starts_with(s + i, n - i, k_sot_cp, 15)) {
            special = t->sot;
            len = 15;
        } else if (s[i] == '<' && starts_with(s + i, n - i, k_eot_cp, 13)) {
            special = t->eot;
            len = 13;
        } else if ((len = contraction(s + i, n - i)) != 0) {
        } else if (is_letter(s[i])) {
            len = 1;
            while (i + len < n && is_letter(s[i + len]))
                len++;
        } else if (is_number(s[i])) {
            len = 1;
        } else if (!is_re_space(s[i])) {
            len = 1;
            while (i + len < n && !is_re_space(s[i + len]) && !is_letter(s[i + len]) && !is_number(s[i + len]))
                len++;
        } else {
            i++; // whitespace: matched by no alternative
            continue;
        }
        if (special >= 0) {
            if (cnt < max_ids) ids[cnt] = special;
            cnt++;
            i += len;
            continue;
        }
        size_t nb = 0;
        for (size_t k = 0; k < len; k++)
            nb += (size_t)utf8proc_encode_char((utf8proc_int32_t)s[i + k], t->bytes + nb);
        i += len;
        if (nb == 1) { // single byte: no merge possible
            if (cnt < max_ids) ids[cnt] = t->byte_id_end[t->bytes[0]];
            cnt++;
            continue;
        }
        const int32_t *pid;
        size_t m;
        PAD_TRY(piece_ids(t, t->bytes, nb, &pid, &m));
        for (size_t k = 0; k < m; k++, cnt++)
            if (cnt < max_ids) ids[cnt] = pid[k];
    }
    *count = cnt;
    return PAD_OK;
}

pad_status pad_tokenizer_encode(pad_tokenizer *tok, const char *text, int32_t *ids, int max_ids, int *n) {
    if (!tok || !text || !n || max_ids < 0 || (max_ids > 0 && !ids)) {
        PAD_LOG_ERROR("pad_tokenizer_encode: invalid arguments");
        return PAD_ERR_INVALID_ARG;
    }
    *n = 0;
    PAD_TRY(clean_text(tok, text));
    return encode_clean(tok, ids, max_ids, INT_MAX - 1, n);
}

pad_status pad_tokenizer_tokenize(pad_tokenizer *tok, const char *text, int context_len, int32_t *out,
                                  bool *truncated) {
    if (!tok || !text || !out || context_len < 2) {
        PAD_LOG_ERROR("pad_tokenizer_tokenize: invalid arguments");
        return PAD_ERR_INVALID_ARG;
    }
    memset(out, 0, (size_t)context_len * sizeof *out);
    if (truncated) *truncated = false;
    PAD_TRY(clean_text(tok, text));
    int room = context_len - 2, cnt = 0;
    out[0] = tok->sot;
    // stop as soon as we know the text does not fit (one id more than the room)
    PAD_TRY(encode_clean(tok, out + 1, room, room, &cnt));
    if (cnt > room) {
        if (truncated) *truncated = true;
        cnt = room;
    }
    out[1 + cnt] = tok->eot;
    return PAD_OK;
}

int pad_tokenizer_eot_index(const pad_tokenizer *tok, const int32_t *row, int context_len) {
    for (int i = 0; i < context_len; i++)
        if (row[i] == tok->eot) return i;
    return -1;
}

// ----------------------------------------------------------------------------
// files

pad_status pad_tokenizer_write_byte_vocab(const char *path) {
    gzFile gz = gzopen(path, "wb9");
    if (!gz) {
        PAD_LOG_ERROR("%s: cannot write vocabulary (%s)", path, strerror(errno));
        return PAD_ERR_IO;
    }
    static const char header[] = "\"bpe_simple_vocab_16e6.txt#version: 0.2 (promptad byte-level vocabulary, no merges)";
    int k = gzwrite(gz, header, (unsigned)(sizeof header - 1));
    int rc = gzclose(gz);
    if (k != (int)(sizeof header - 1) || rc != Z_OK) {
        PAD_LOG_ERROR("%s: cannot write vocabulary", path);
        return PAD_ERR_IO;
    }
    return PAD_OK;
}

pad_status pad_tokenizer_find_vocab(char *buf, size_t cap, const char *exe_path) {
    const char *env = getenv("PROMPTAD_VOCAB");
    if (env && env[0]) {
        if (access(env, R_OK) != 0) {
            PAD_LOG_ERROR("PROMPTAD_VOCAB=%s: cannot read the vocabulary (%s); " VOCAB_HINT, env, strerror(errno));
            return PAD_ERR_IO;
        }
        snprintf(buf, cap, "%s", env);
        return PAD_OK;
    }
    // ./weights, <exe>/../weights, ./configs/vocab, <exe>/../configs/vocab, <source tree>/configs/vocab
    enum { NCAND = 5 };
    char cand[NCAND][4096 + 64];
    char exe[4096] = "";
    if (exe_path) {
        snprintf(exe, sizeof exe, "%s", exe_path);
    } else {
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[k > 0 ? k : 0] = 0;
    }
    char *slash = strrchr(exe, '/');
    if (slash) {
        *slash = 0;
    } else {
        snprintf(exe, sizeof exe, ".");
    }
    snprintf(cand[0], sizeof cand[0], "weights/%s", PAD_TOKENIZER_VOCAB_NAME);
    snprintf(cand[1], sizeof cand[1], "%s/../weights/%s", exe, PAD_TOKENIZER_VOCAB_NAME);
    snprintf(cand[2], sizeof cand[2], "configs/vocab/%s", PAD_TOKENIZER_VOCAB_NAME);
    snprintf(cand[3], sizeof cand[3], "%s/../configs/vocab/%s", exe, PAD_TOKENIZER_VOCAB_NAME);
    snprintf(cand[4], sizeof cand[4], "%s/vocab/%s", PAD_CONFIG_DIR, PAD_TOKENIZER_VOCAB_NAME);
    for (int i = 0; i < NCAND; i++) {
        if ((i < 4 || PAD_CONFIG_DIR[0]) && access(cand[i], R_OK) == 0) {
            snprintf(buf, cap, "%s", cand[i]);
            return PAD_OK;
        }
    }
    PAD_LOG_ERROR("CLIP vocabulary not found: $PROMPTAD_VOCAB is not set, and none of %s, %s, %s, %s exists; pass "
                  "--vocab FILE or %s",
                  cand[0], cand[1], cand[2], cand[3], VOCAB_HINT);
    return PAD_ERR_IO;
}
