/* strbuf.h - a growable text buffer for the files promptad writes in one piece (summary tables, report.html):
 * printf-style appends, and appends escaped for HTML text and for JSON strings. An allocation failure sets `oom`
 * and turns every later append into a no-op, so a writer checks once at the end. */
#ifndef PAD_BASE_STRBUF_H
#define PAD_BASE_STRBUF_H

#include "log.h"
#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

// A zeroed struct is the empty buffer; s is NUL-terminated once anything was appended (NULL before). Free s.
typedef struct pad_sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} pad_sbuf;

void pad_sb_printf(pad_sbuf *b, const char *fmt, ...) PAD_PRINTF_LIKE(2, 3);
// Appends n bytes of s (n may be 0).
void pad_sb_put(pad_sbuf *b, const char *s, size_t n);
// Appends s with &, <, >, " and ' replaced by their HTML entities (text and attribute values).
void pad_sb_html(pad_sbuf *b, const char *s);
// Appends s as a JSON string literal with its quotes; '<', '>' and '&' are written as \u00XX so that the JSON can
// sit inside an HTML <script> element, and control characters as \u00XX or their short escapes.
void pad_sb_json_str(pad_sbuf *b, const char *s);
// Appends a JSON number with 6 significant digits, or null for NaN and infinities.
void pad_sb_json_num(pad_sbuf *b, double v);
void pad_sb_free(pad_sbuf *b); // frees s and zeroes *b

#ifdef __cplusplus
}
#endif

#endif // PAD_BASE_STRBUF_H
