/* yaml_log.c - the libcyaml error collector of yaml_log.h. */
#include "yaml_log.h"

#include <stdio.h>
#include <string.h>

void pad_yaml_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args) {
    pad_yaml_log *lg = ctx;
    if (level < CYAML_LOG_ERROR) return;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, args);
    const char *at = strstr(buf, "(line: ");
    if (at) {
        if (lg->line == 0) sscanf(at, "(line: %d, column: %d)", &lg->line, &lg->col);
        const char *f = strstr(buf, "mapping field '");
        if (f && !lg->field[0]) sscanf(f, "mapping field '%127[^']'", lg->field);
        return;
    }
    if (lg->msg[0] || strstr(buf, "Backtrace")) return;
    const char *m = buf;
    if (strncmp(m, "Load: ", 6) == 0) m += 6;
    snprintf(lg->msg, sizeof lg->msg, "%s", m);
    size_t n = strlen(lg->msg);
    while (n && (lg->msg[n - 1] == '\n' || lg->msg[n - 1] == ' '))
        lg->msg[--n] = 0;
}

void pad_yaml_normalize_eol(char *text, size_t *n) {
    size_t w = 0;
    for (size_t r = 0; r < *n; r++) {
        if (text[r] == '\r') {
            text[w++] = '\n';
            if (r + 1 < *n && text[r + 1] == '\n') r++;
        } else {
            text[w++] = text[r];
        }
    }
    text[w] = 0;
    *n = w;
}

bool pad_yaml_blank(const char *text, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c == '#') {
            while (i < n && text[i] != '\n' && text[i] != '\r')
                i++;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return false;
        }
    }
    return true;
}

// True when line [p, p + len) is a document marker `m` ("---" or "...") alone or followed by a blank.
static bool is_marker(const char *p, size_t len, const char *m) {
    return len >= 3 && memcmp(p, m, 3) == 0 && (len == 3 || p[3] == ' ' || p[3] == '\t');
}

int pad_yaml_second_doc_line(const char *text, size_t n) {
    bool content = false, ended = false, started = false;
    int line = 0;
    for (size_t i = 0; i < n;) {
        line++;
        size_t e = i;
        while (e < n && text[e] != '\n')
            e++;
        const char *p = text + i;
        size_t len = e - i;
        if (is_marker(p, len, "---")) {
            if (content || ended || started) return line;
            started = true;
            // the rest of the line after "--- " may hold the document's first node
            if (!pad_yaml_blank(p + 3, len - 3)) content = true;
        } else if (len && p[0] == '%' && !started && !content) {
            // a directive (%YAML, %TAG) before the first "---"
        } else if (is_marker(p, len, "...")) {
            ended = true;
        } else if (!pad_yaml_blank(p, len)) {
            if (ended) return line;
            content = true;
        }
        i = e + 1;
    }
    return 0;
}
