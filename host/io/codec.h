/* codec.h - internal: the JPEG decoder (libjpeg-turbo) behind pad_image_load (image.c), with OpenCV's
 * imread(IMREAD_COLOR) settings. The rules are in codec.c and at the top of image.h. */
#ifndef PAD_HOST_CODEC_H
#define PAD_HOST_CODEC_H

#include "image.h"

bool pad_codec_is_jpeg(const unsigned char *d, size_t n); // JPEG SOI marker FF D8 FF at byte 0
// Decode n bytes into *img (8-bit RGB). The size in the header is checked against PAD_IMAGE_MAX_DIM and
// PAD_IMAGE_MAX_PIXELS before anything is decoded; data that ends early is an error. On failure *img is zeroed and
// one line "<name>: <reason>" is logged; returns PAD_ERR_FORMAT (corrupt, truncated, unsupported) or PAD_ERR_OOM.
pad_status pad_codec_decode_jpeg(const unsigned char *d, size_t n, const char *name, pad_image *img);
// The size in the header of n bytes of JPEG (checked as above), without decoding the pixels.
pad_status pad_codec_jpeg_size(const unsigned char *d, size_t n, const char *name, int *w, int *h);

#endif // PAD_HOST_CODEC_H
