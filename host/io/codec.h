/* codec.h - internal: the JPEG decoder (libjpeg-turbo) behind pad_image_load (image.c), with OpenCV's
 * imread(IMREAD_COLOR) settings. The rules are in codec.c and at the top of image.h. */
#ifndef PAD_HOST_CODEC_H
#define PAD_HOST_CODEC_H

#include "image.h"

#define PAD_CODEC_MAX_PIXELS ((size_t)1 << 28) // larger images are refused (decompression bombs)

bool pad_codec_is_jpeg(const unsigned char *d, size_t n); // JPEG SOI marker
// Decode n bytes into *img (8-bit RGB). On failure *img is zeroed and one line "<name>: <reason>" is logged;
// returns PAD_ERR_FORMAT (corrupt, unsupported) or PAD_ERR_OOM.
pad_status pad_codec_decode_jpeg(const unsigned char *d, size_t n, const char *name, pad_image *img);

#endif // PAD_HOST_CODEC_H
