/* tokenizer_clean.c - the text cleaning of the CLIP tokenizer, before pre-tokenisation: the ftfy-lite repairs
 * (character references, width and quote maps, breaks, escapes and controls, NFC), Python's html.unescape twice,
 * whitespace collapse and str.lower, each a pass over code points (docs/clip.md describes the rules). */
#include "tokenizer_internal.h"

#include "tokenizer_tables.h"

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
    return x->n == y->n && (x->n == 0 || memcmp(x->v, y->v, x->n * sizeof *x->v) == 0); // v is NULL when empty
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
        if (cur.n) memcpy(dst->v + dst->n, cur.v, cur.n * sizeof *cur.v); // an empty segment: v may be NULL
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
pad_status tok_clean_text(pad_tokenizer *t, const char *text) {
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
