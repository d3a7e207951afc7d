/* codec.c - JPEG decoding through libjpeg(-turbo) with OpenCV's cv2.imread(IMREAD_COLOR) settings
 * (imgcodecs/src/grfmt_jpeg.cpp): the library defaults (JDCT_ISLOW, fancy upsampling) decoded to RGB, gray
 * replicated, CMYK / YCCK (Adobe) through OpenCV's formula v = k - ((255 - v) * k >> 8). So JPEG datasets (VisA)
 * decode to exactly the pixels the published code sees, about 2x faster than stb_image (whose IDCT and upsampling
 * differ from libjpeg's by up to 3 levels). Data that ends early is an error (OpenCV would decode the missing part as
 * gray); other corrupt data is decoded as far as libjpeg can (as OpenCV does) with one warning naming the file.
 * Declared in codec.h (internal); other formats: image.c. */
#include "codec.h"
#include "log.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

bool pad_codec_is_jpeg(const unsigned char *d, size_t n) {
    return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF;
}

static pad_status check_size(const char *name, unsigned long w, unsigned long h) {
    if (w < 1 || h < 1 || w > PAD_IMAGE_MAX_DIM || h > PAD_IMAGE_MAX_DIM ||
        (unsigned long long)w * h > PAD_IMAGE_MAX_PIXELS) {
        PAD_LOG_ERROR("%s: JPEG image size %lux%lu is not supported (at most %d per side and %d pixels)", name, w, h,
                      PAD_IMAGE_MAX_DIM, PAD_IMAGE_MAX_PIXELS);
        return PAD_ERR_FORMAT;
    }
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// JPEG

typedef struct jpg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    const char *name;
    bool warned;
} jpg_err;

static void jpg_error_exit(j_common_ptr c) {
    jpg_err *e = (jpg_err *)c->err;
    char msg[JMSG_LENGTH_MAX];
    (*c->err->format_message)(c, msg);
    PAD_LOG_ERROR("%s: cannot decode JPEG: %s", e->name, msg);
    longjmp(e->jb, 1);
}

static void jpg_emit_message(j_common_ptr c, int level) {
    jpg_err *e = (jpg_err *)c->err;
    if (level >= 0) return;                  // trace messages
    if (c->err->msg_code == JWRN_JPEG_EOF) { // the data ends early: refused (libjpeg would pad it with gray)
        char msg[JMSG_LENGTH_MAX];
        (*c->err->format_message)(c, msg);
        PAD_LOG_ERROR("%s: truncated JPEG: %s", e->name, msg);
        longjmp(e->jb, 1);
    }
    if (!e->warned) {
        char msg[JMSG_LENGTH_MAX];
        (*c->err->format_message)(c, msg);
        PAD_LOG_WARN("%s: JPEG warning: %s (decoded anyway, as OpenCV does)", e->name, msg);
    }
    e->warned = true;
    c->err->num_warnings++;
}

pad_status pad_codec_jpeg_size(const unsigned char *d, size_t n, const char *name, int *w, int *h) {
    struct jpeg_decompress_struct cinfo;
    jpg_err je;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpg_error_exit;
    je.pub.emit_message = jpg_emit_message;
    je.name = name;
    je.warned = false;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&cinfo);
        return PAD_ERR_FORMAT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, d, (unsigned long)n);
    (void)jpeg_read_header(&cinfo, TRUE);
    pad_status st = check_size(name, cinfo.image_width, cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    if (st == PAD_OK) {
        *w = (int)cinfo.image_width;
        *h = (int)cinfo.image_height;
    }
    return st;
}

pad_status pad_codec_decode_jpeg(const unsigned char *d, size_t n, const char *name, pad_image *img) {
    memset(img, 0, sizeof *img);
    struct jpeg_decompress_struct cinfo;
    jpg_err je;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpg_error_exit;
    je.pub.emit_message = jpg_emit_message;
    je.name = name;
    je.warned = false;
    uint8_t *volatile out = NULL;
    uint8_t *volatile cmyk_row = NULL;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&cinfo);
        free(out);
        free(cmyk_row);
        return PAD_ERR_FORMAT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, d, (unsigned long)n);
    (void)jpeg_read_header(&cinfo, TRUE);
    const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    if (check_size(name, cinfo.image_width, cinfo.image_height) != PAD_OK) {
        jpeg_destroy_decompress(&cinfo);
        return PAD_ERR_FORMAT;
    }
    (void)jpeg_start_decompress(&cinfo);
    const unsigned w = cinfo.output_width, h = cinfo.output_height;
    if (cinfo.output_components != (cmyk ? 4 : 3)) {
        PAD_LOG_ERROR("%s: cannot decode JPEG: %d output components", name, cinfo.output_components);
        jpeg_destroy_decompress(&cinfo);
        return PAD_ERR_FORMAT;
    }
    out = (uint8_t *)malloc((size_t)w * h * 3);
    if (cmyk) cmyk_row = (uint8_t *)malloc((size_t)w * 4);
    if (!out || (cmyk && !cmyk_row)) {
        PAD_LOG_ERROR("%s: out of memory for a %ux%u image", name, w, h);
        jpeg_destroy_decompress(&cinfo);
        free(out);
        free(cmyk_row);
        return PAD_ERR_OOM;
    }
    while (cinfo.output_scanline < h) {
        uint8_t *row = out + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW rp = cmyk ? cmyk_row : row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1) { // cannot happen with a memory source
            PAD_LOG_ERROR("%s: cannot decode JPEG: the decoder stopped at row %u of %u", name, cinfo.output_scanline,
                          h);
            jpeg_destroy_decompress(&cinfo);
            free(out);
            free(cmyk_row);
            return PAD_ERR_FORMAT;
        }
        if (cmyk)
            for (unsigned x = 0; x < w; x++) { // OpenCV icvCvt_CMYK2BGR_8u_C4C3R, written in RGB order
                const uint8_t *p = cmyk_row + 4 * (size_t)x;
                int k = p[3];
                for (int c = 0; c < 3; c++)
                    row[3 * (size_t)x + c] = (uint8_t)(k - ((255 - p[c]) * k >> 8));
            }
    }
    (void)jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);
    img->w = (int)w;
    img->h = (int)h;
    img->rgb = out;
    return PAD_OK;
}
