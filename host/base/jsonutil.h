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

// The one checked reader of JSON integers: *out = the value v when it is a JSON number that is an exact integer
// (no fraction; |v| <= 2^53, where doubles hold every integer) in [lo, hi]. Returns 1 then, 0 when v is NULL (the
// key is absent), -1 for anything else: not a number, 2.5, 1e20, a value outside [lo, hi]. *out is untouched
// unless 1. Never converts an out-of-range double to an integer type (undefined behaviour in C).
int pad_json_int_value(const cJSON *v, long long lo, long long hi, long long *out);

// pad_json_int_value of o[key] into an int (lo and hi are ints, so the value fits).
int pad_json_get_int(const cJSON *o, const char *key, int lo, int hi, int *out);

// Writes j (indented, with a final newline) to path atomically (temporary file + rename). Logs "<path>: <reason>".
pad_status pad_json_write_file(const char *path, const cJSON *j);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_JSONUTIL_H
