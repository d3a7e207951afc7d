/* fuzz_image.c - libFuzzer target: image and mask decoding (host/io/image.c, host/io/codec.c). The input is decoded
 * from memory as a test image (JPEG through libjpeg, the rest through stb_image) and, written to a file, as a
 * ground-truth mask; a decoded image also goes through two --preprocess pipelines at a small size.
 * stb_image itself is compiled into this program by fuzz_stb_image.c, so the decoder is instrumented too (the
 * product links Debian's libstb instead). */
#include "fuzz_common.h"
#include "image.h"

FUZZ_INITIALIZE_WITH_SETUP()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pad_image img;
    if (pad_image_load_memory(&img, data, size, "input") == PAD_OK) {
        if (img.w < 1 || img.h < 1 || !img.rgb) abort();
        volatile uint8_t last = img.rgb[(size_t)img.w * (size_t)img.h * 3 - 1];
        (void)last;
        if ((size_t)img.w * (size_t)img.h <= ((size_t)1 << 20)) {
            float out[3 * 8 * 8];
            // squash and openclip only: official always resizes to 1024 x 1024 first, which costs ~100x more per
            // input than decoding these small files and is no parser. openclip may refuse an extreme aspect ratio
            // (its resize target would exceed PAD_IMAGE_MAX_DIM): an error, not a finding.
            if (pad_preprocess(&img, PAD_PREPROCESS_SQUASH, 8, false, out) != PAD_OK) abort();
            (void)pad_preprocess(&img, PAD_PREPROCESS_OPENCLIP, 8, true, out);
        }
        pad_image_free(&img);
    }
    const char *path = fuzz_input_file("mask.png", data, size);
    pad_mask m;
    if (pad_mask_load(&m, path) == PAD_OK) {
        if (m.w < 1 || m.h < 1 || !m.m) abort();
        for (size_t i = 0; i < (size_t)m.w * (size_t)m.h; i++)
            if (m.m[i] > 1) abort(); // masks are 0/1
        pad_mask_free(&m);
    }
    return 0;
}
