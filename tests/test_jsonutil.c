/* test_jsonutil.c - the checked JSON integer reader of host/base/jsonutil.h: exact integers in range only; absent,
 * fractional, huge (beyond 2^53 or the range) and non-numeric values are told apart from valid ones. */
#include "check.h"
#include "jsonutil.h"

#include <limits.h>

// Regression (issue 15): pad_json_get_int converted any double to int ((int)1e20 is undefined; it gave INT_MIN).
Test(jsonutil, integers_are_exact_and_in_range) {
    cJSON *j = cJSON_Parse("{\"a\": 7, \"neg\": -3, \"frac\": 2.5, \"big\": 1e20, \"edge\": 9007199254740993, "
                           "\"s\": \"7\", \"n\": null, \"t\": true, \"max\": 2147483647, \"exp\": 1e3}");
    cr_assert(j);
    int v = 42;
    cr_assert(pad_json_get_int(j, "a", 0, 10, &v) == 1 && v == 7);
    cr_assert(pad_json_get_int(j, "exp", 0, 1000, &v) == 1 && v == 1000, "1e3 is the integer 1000 in JSON");
    cr_assert(pad_json_get_int(j, "max", 0, INT_MAX, &v) == 1 && v == INT_MAX);
    v = 42;
    cr_assert(pad_json_get_int(j, "missing", 0, 10, &v) == 0 && v == 42);
    const char *bad[] = {"neg", "frac", "big", "edge", "s", "n", "t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert(pad_json_get_int(j, bad[i], 0, INT_MAX, &v) == -1, "%s accepted", bad[i]);
        cr_assert(v == 42, "%s changed the output", bad[i]);
    }
    cr_assert(pad_json_get_int(j, "neg", -5, 0, &v) == 1 && v == -3);
    cr_assert(pad_json_get_int(j, "a", 8, 10, &v) == -1 && v == -3, "7 is outside [8, 10]");
    long long x = 0;
    cr_assert(pad_json_int_value(cJSON_GetObjectItemCaseSensitive(j, "big"), 0, LLONG_MAX, &x) == -1);
    cr_assert(pad_json_int_value(NULL, 0, 1, &x) == 0);
    cJSON_Delete(j);
}
