/* jsonutil.c - the cJSON helpers of jsonutil.h. */
#include "jsonutil.h"

#include "fsutil.h"
#include "log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool pad_json_add_num(cJSON *o, const char *key, double v) {
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) != NULL;
}

int pad_json_int_value(const cJSON *v, long long lo, long long hi, long long *out) {
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return -1;
    const double d = v->valuedouble;
    // exact integers only, and only where a double holds every integer (|d| <= 2^53): no fraction, no 1e20
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || floor(d) != d) return -1;
    const long long x = (long long)d;
    if (x < lo || x > hi) return -1;
    *out = x;
    return 1;
}

int pad_json_get_int(const cJSON *o, const char *key, int lo, int hi, int *out) {
    long long x = 0;
    int r = pad_json_int_value(cJSON_GetObjectItemCaseSensitive(o, key), lo, hi, &x);
    if (r == 1) *out = (int)x;
    return r;
}

pad_status pad_json_write_file(const char *path, const cJSON *j) {
    char *text = cJSON_Print(j);
    size_t n = text ? strlen(text) : 0;
    char *t2 = text ? (char *)realloc(text, n + 2) : NULL;
    if (!t2) {
        cJSON_free(text);
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    t2[n++] = '\n';
    t2[n] = 0;
    pad_status st = pad_write_file_atomic(path, t2, n);
    free(t2);
    return st;
}
