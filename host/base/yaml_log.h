/* yaml_log.h - collects what libcyaml logs while it loads a YAML document into one error. libcyaml reports an error
 * as a message followed by a backtrace whose first "(line: L, column: C)" is the innermost position; we keep the
 * message, that position and the innermost field, so that the run configuration (config.c) and the official shot
 * lists (shots.c) can log one line "file:line: message". */
#ifndef PAD_EVAL_YAML_LOG_H
#define PAD_EVAL_YAML_LOG_H

#include <cyaml/cyaml.h>
#include <stdarg.h>

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

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_YAML_LOG_H
