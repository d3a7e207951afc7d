/* log.h - internal logging macros over the sink set with pad_log_set() (include/promptad.h).
 * PAD_LOG_ERROR("%s: truncated header", path) -> "promptad: error: <path>: truncated header" on stderr by default.
 * Messages are single lines; the sink adds no prefix of its own beyond the level. */
#ifndef PAD_HOST_LOG_H
#define PAD_HOST_LOG_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PAD_PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define PAD_PRINTF_LIKE(a, b)
#endif

// Sets the calling thread's last error (pad_last_error) without logging: for a message logged by a worker thread
// (OpenMP) on behalf of the caller.
void pad_set_last_error(const char *msg);
void pad_log(pad_log_level level, const char *fmt, ...) PAD_PRINTF_LIKE(2, 3);
void pad_logv(pad_log_level level, const char *fmt, va_list ap);

#define PAD_LOG_DEBUG(...) pad_log(PAD_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define PAD_LOG_INFO(...)  pad_log(PAD_LOG_LEVEL_INFO, __VA_ARGS__)
#define PAD_LOG_WARN(...)  pad_log(PAD_LOG_LEVEL_WARN, __VA_ARGS__)
#define PAD_LOG_ERROR(...) pad_log(PAD_LOG_LEVEL_ERROR, __VA_ARGS__)

// Always-on invariant check for our own bugs (never for user input): prints file:line and aborts.
#define PAD_ASSERT(cond)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) pad_assert_fail(__FILE__, __LINE__, #cond);                                                       \
    } while (0)
void pad_assert_fail(const char *file, int line, const char *cond);

// Evaluates a pad_status expression and returns it from the enclosing function when it is not PAD_OK.
#define PAD_TRY(expr)                                                                                                  \
    do {                                                                                                               \
        pad_status st_ = (expr);                                                                                       \
        if (st_ != PAD_OK) return st_;                                                                                 \
    } while (0)

// Same, but stores the status in `st` and jumps to `label` (single cleanup path).
#define PAD_TRY_GOTO(st, expr, label)                                                                                  \
    do {                                                                                                               \
        (st) = (expr);                                                                                                 \
        if ((st) != PAD_OK) goto label;                                                                                \
    } while (0)

// Name tables of enums: names[i] is the name of value i. pad_enum_parse finds s among the n names and stores its
// index in *out; otherwise it logs "unknown <what> '<s>' (expected a, b or c)" and returns PAD_ERR_INVALID_ARG.
pad_status pad_enum_parse(const char *const *names, int n, const char *what, const char *s, int *out);
// names[i], or "?" when i is out of range.
const char *pad_enum_name(const char *const *names, int n, int i);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_LOG_H
