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
