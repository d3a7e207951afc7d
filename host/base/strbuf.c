/* strbuf.c - the growable text buffer of strbuf.h. */
#include "strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(pad_sbuf *b, size_t extra) {
    if (b->oom) return false;
    if (b->n + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (b->n + extra + 1 > cap)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void pad_sb_printf(pad_sbuf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need >= 0 && reserve(b, (size_t)need)) {
        vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap2);
        b->n += (size_t)need;
    }
    va_end(ap2);
}

void pad_sb_put(pad_sbuf *b, const char *s, size_t n) {
    if (!reserve(b, n)) return;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void pad_sb_html(pad_sbuf *b, const char *s) {
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&':
            pad_sb_put(b, "&amp;", 5);
            break;
        case '<':
            pad_sb_put(b, "&lt;", 4);
            break;
        case '>':
            pad_sb_put(b, "&gt;", 4);
            break;
        case '"':
            pad_sb_put(b, "&quot;", 6);
            break;
        case '\'':
            pad_sb_put(b, "&#39;", 5);
            break;
        default:
            pad_sb_put(b, p, 1);
        }
    }
}

void pad_sb_json_str(pad_sbuf *b, const char *s) {
    pad_sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            pad_sb_put(b, e, 2);
        } else if (*p == '\n') {
            pad_sb_put(b, "\\n", 2);
        } else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') {
            pad_sb_printf(b, "\\u%04x", *p);
        } else {
            pad_sb_put(b, (const char *)p, 1);
        }
    }
    pad_sb_put(b, "\"", 1);
}

void pad_sb_json_num(pad_sbuf *b, double v) {
    if (isnan(v) || isinf(v))
        pad_sb_put(b, "null", 4);
    else
        pad_sb_printf(b, "%.6g", v);
}

void pad_sb_free(pad_sbuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}
