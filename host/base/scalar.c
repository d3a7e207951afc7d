/* scalar.c - the strict integer, number, byte-size and boolean parsers of scalar.h. */
#include "scalar.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

int pad_scalar_int(const char *s, long long lo, long long hi, long long *out) {
    const char *p = s;
    if (*p == '-') p++;
    if (!is_digit(*p) || (p[0] == '0' && p[1] != 0)) return 0;
    for (const char *q = p; *q; q++)
        if (!is_digit(*q)) return 0;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < lo || v > hi) return -1;
    *out = v;
    return 1;
}

bool pad_scalar_double(const char *s, double *out) {
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    size_t ints = 0, frac = 0;
    while (is_digit(*p)) {
        p++;
        ints++;
    }
    if (*p == '.') {
        p++;
        while (is_digit(*p)) {
            p++;
            frac++;
        }
    }
    if (ints + frac == 0) return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        if (!is_digit(*p)) return false;
        while (is_digit(*p))
            p++;
    }
    if (*p) return false;
    double v = strtod(s, NULL);
    if (!isfinite(v)) return false;
    *out = v;
    return true;
}

int pad_scalar_bytes(const char *s, long long lo, long long hi, long long *out) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    const char *p = s;
    while (is_digit(*p))
        p++;
    const size_t ints = (size_t)(p - s);
    size_t frac = 0;
    if (*p == '.')
        for (p++; is_digit(*p); p++)
            frac++;
    if (ints == 0 || (s[0] == '0' && ints > 1)) return 0;
    const char *unit = *p == ' ' ? p + 1 : p;
    if (!*unit) return frac || *p ? 0 : pad_scalar_int(s, lo, hi, out);
    double scale = 0;
    for (int u = 0; u < 4; u++)
        if (strcmp(unit, units[u]) == 0) scale = ldexp(1.0, 10 * (u + 1));
    if (scale == 0) return 0;
    const double v = floor(strtod(s, NULL) * scale);
    if (!(v >= (double)lo && v <= (double)hi)) return -1;
    *out = (long long)v;
    return 1;
}

bool pad_scalar_bool(const char *s, bool *out) {
    static const char *const names[] = {"true", "false", "yes", "no", "on", "off"};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i % 2 == 0;
            return true;
        }
    return false;
}
