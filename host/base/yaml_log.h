/* yaml_log.h - collects what libcyaml logs while it loads a YAML document into one error. libcyaml reports an error
 * as a message followed by a backtrace whose first "(line: L, column: C)" is the innermost position; we keep the
 * message, that position and the innermost field, so that the run configuration (config.c) and the official shot
 * lists (shots.c) can log one line "file:line: message". Also the checks every YAML text gets before libcyaml sees
 * it (line endings, blank documents, a second document), shared by config.c and prompt_set.c. */
#ifndef PAD_EVAL_YAML_LOG_H
#define PAD_EVAL_YAML_LOG_H

#include <cyaml/cyaml.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pad_yaml_log {
    char msg[512];   // the first error message, without libcyaml's "Load: " prefix and trailing blanks; "" when none
    int line, col;   // the first (innermost) "(line: L, column: C)" of the backtrace; 0 when none
    char field[128]; // the innermost "mapping field 'x'" of the backtrace; "" when none
} pad_yaml_log;

// The log_fn of a cyaml_config_t whose log_ctx is a zeroed pad_yaml_log. Messages below CYAML_LOG_ERROR are ignored.
void pad_yaml_log_fn(cyaml_log_t level, void *ctx, const char *fmt, va_list args);

// Rewrites CRLF and lone CR line endings of text[0..*n) to LF in place (*n shrinks by one per CRLF) and terminates
// the text with a NUL (text must have room for *n + 1 bytes). libyaml accepts all three, but our key-line lookups
// count '\n' only, and a CR-only file must not read as one long comment.
void pad_yaml_normalize_eol(char *text, size_t *n);

// True when text[0..n) holds no YAML node: only blanks, line breaks and comments. libcyaml 1.3 crashes (or returns
// a NULL document) on such text, so callers handle it first.
bool pad_yaml_blank(const char *text, size_t n);

// The 1-based line of a marker that starts a second YAML document in text[0..n) (LF line endings), or 0. A document
// marker is "---" or "..." at the start of a line, followed by a blank, a line break or the end. One leading "---"
// (and comments or blank lines before it) is the first document's start; any "---" after content, and any content
// after "...", opens a second document, which libcyaml would silently ignore.
int pad_yaml_second_doc_line(const char *text, size_t n);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_YAML_LOG_H
