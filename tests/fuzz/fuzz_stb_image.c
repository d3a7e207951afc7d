/* fuzz_stb_image.c - stb_image's implementation, from the same Debian libstb-dev header the product uses, compiled
 * into the image fuzz target with the fuzzer's instrumentation. Its definitions take precedence over those of the
 * shared libstb the library links, so host/io/image.c decodes through this copy inside fuzz_image only. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
