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

bool pad_json_get_int(const cJSON *o, const char *key, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it)) return false;
    *out = (int)it->valuedouble;
    return true;
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
