/* scalar.h - strict parsing of the scalars people type into configuration files and `--set` overrides: integers,
 * decimal numbers, sizes in bytes and booleans. The whole text must be the value: "12abc", "10.5" or "1e3" is not an
 * integer, "010" is not ambiguous octal but an error, "0.01abc" is not a number, "nope" is not a boolean. libcyaml 1.3
 * reads numbers with strtoll/strtod and ignores what follows, and reads any unknown word as true, so the configuration
 * (config.c) reads its values as text and converts them here. */
#ifndef PAD_BASE_SCALAR_H
#define PAD_BASE_SCALAR_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

// A decimal integer: an optional '-', then digits without a leading zero ("0" itself is fine), nothing else, in
// [lo, hi]. Returns 1 on success, 0 when s is not such an integer, -1 when it is one but outside [lo, hi].
int pad_scalar_int(const char *s, long long lo, long long hi, long long *out);

// A decimal number: optional sign, digits with an optional fraction (or a fraction alone: ".5"), an optional
// exponent ("1e-5"); no hex, no inf/nan, nothing after it; finite as a double. Returns true on success.
bool pad_scalar_double(const char *s, double *out);

// A size in bytes: a decimal integer ("1073741824"), or a decimal number with a binary unit KiB, MiB, GiB or TiB
// ("512MiB", "1.5 GiB"; one optional space), rounded down to whole bytes, in [lo, hi]. Returns 1 on success, 0 when
// s is not such a size, -1 when it is one but outside [lo, hi].
int pad_scalar_bytes(const char *s, long long lo, long long hi, long long *out);

// true | false | yes | no | on | off (lower case, as written in our configs). Returns true on success.
bool pad_scalar_bool(const char *s, bool *out);

#ifdef __cplusplus
}
#endif

#endif // PAD_BASE_SCALAR_H
