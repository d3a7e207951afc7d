/* jsonutil.h - small cJSON helpers shared by the eval code (model.json, metrics.json, the summaries): numbers that
 * may be NaN, integers read back, files written atomically. */
#ifndef PAD_EVAL_JSONUTIL_H
#define PAD_EVAL_JSONUTIL_H

#include "promptad.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

// Adds key: v to the object o, or key: null when v is NaN or infinite (JSON has no such numbers). False when out of
// memory.
bool pad_json_add_num(cJSON *o, const char *key, double v);

// *out = the number o[key] converted to int; false (and *out untouched) when o has no number under key.
bool pad_json_get_int(const cJSON *o, const char *key, int *out);

// Writes j (indented, with a final newline) to path atomically (temporary file + rename). Logs "<path>: <reason>".
pad_status pad_json_write_file(const char *path, const cJSON *j);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_JSONUTIL_H
