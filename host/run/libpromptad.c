/* libpromptad.c - the one source of libpromptad.so (CMake target promptad_shared), the shared library of the public
 * C API (include/promptad.h): the layer libraries are linked into it whole and include/libpromptad.map exports only
 * the API's functions. Not part of the pad_run static library. */
#include "promptad.h"

const char *pad_version(void) {
    return PAD_VERSION;
}
