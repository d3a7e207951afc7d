/* jsonutil.c - the cJSON helpers of jsonutil.h. */
#include "jsonutil.h"

#include <math.h>

bool pad_json_add_num(cJSON *o, const char *key, double v) {
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) != NULL;
}

bool pad_json_get_int(const cJSON *o, const char *key, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it)) return false;
    *out = (int)it->valuedouble;
    return true;
}
