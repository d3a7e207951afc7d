/* log.c - the process-wide log sink (pad_log_set), the per-thread last error (pad_last_error) and status names
 * (pad_status_str). */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct log_state {
    pad_log_fn fn;
    void *user_data;
    int min_level; // -1 = not yet read from the environment
} log_state;

static log_state g_log = {NULL, NULL, -1};

static const char *level_name(pad_log_level level) {
    switch (level) {
    case PAD_LOG_LEVEL_DEBUG:
        return "debug";
    case PAD_LOG_LEVEL_INFO:
        return "info";
    case PAD_LOG_LEVEL_WARN:
        return "warning";
    case PAD_LOG_LEVEL_ERROR:
        return "error";
    }
    return "?";
}

void pad_log_set(pad_log_fn fn, void *user_data) {
    g_log.fn = fn;
    g_log.user_data = user_data;
}

void pad_log_set_level(pad_log_level min_level) {
    g_log.min_level = (int)min_level;
}

pad_log_level pad_log_get_level(void) {
    if (g_log.min_level < 0) {
        const char *env = getenv("PROMPTAD_LOG");
        g_log.min_level = (env && strcasecmp(env, "debug") == 0) ? PAD_LOG_LEVEL_DEBUG : PAD_LOG_LEVEL_INFO;
    }
    return (pad_log_level)g_log.min_level;
}

// The last error message of each thread (pad_last_error).
static _Thread_local char g_last_error[2048];

const char *pad_last_error(void) {
    return g_last_error;
}

void pad_clear_last_error(void) {
    g_last_error[0] = 0;
}

void pad_set_last_error(const char *msg) {
    snprintf(g_last_error, sizeof g_last_error, "%s", msg ? msg : "");
}

void pad_logv(pad_log_level level, const char *fmt, va_list ap) {
    bool shown = (int)level >= (int)pad_log_get_level();
    if (!shown && level != PAD_LOG_LEVEL_ERROR) return;
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    // keep messages single-line
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    if (level == PAD_LOG_LEVEL_ERROR) memcpy(g_last_error, buf, sizeof buf);
    if (!shown) return;
    if (g_log.fn) {
        g_log.fn(level, buf, g_log.user_data);
    } else {
        fprintf(stderr, "promptad: %s: %s\n", level_name(level), buf);
    }
}

void pad_log(pad_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pad_logv(level, fmt, ap);
    va_end(ap);
}

void pad_assert_fail(const char *file, int line, const char *cond) {
    fprintf(stderr, "promptad: internal error: %s:%d: assertion failed: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}

const char *pad_status_str(pad_status s) {
    switch (s) {
    case PAD_OK:
        return "ok";
    case PAD_ERR_INVALID_ARG:
        return "invalid argument";
    case PAD_ERR_IO:
        return "i/o error";
    case PAD_ERR_FORMAT:
        return "bad file format";
    case PAD_ERR_OOM:
        return "out of memory";
    case PAD_ERR_CUDA:
        return "CUDA error";
    case PAD_ERR_UNSUPPORTED:
        return "unsupported";
    case PAD_ERR_ABORTED:
        return "aborted";
    }
    return "unknown status";
}

pad_status pad_enum_parse(const char *const *names, int n, const char *what, const char *s, int *out) {
    for (int i = 0; i < n; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = i;
            return PAD_OK;
        }
    char list[512] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                i == 0       ? ""
                                : i == n - 1 ? " or "
                                             : ", ",
                                names[i]);
    PAD_LOG_ERROR("unknown %s '%s' (expected %s)", what, s ? s : "(null)", list);
    return PAD_ERR_INVALID_ARG;
}

const char *pad_enum_name(const char *const *names, int n, int i) {
    return i >= 0 && i < n ? names[i] : "?";
}
