/* report_thumb.c - the gallery thumbnails of report.html (report_page.h): a heatmap overlay scaled down with a box
 * filter, encoded as a small JPEG (libjpeg) and written as a base64 data URI, so that the page needs no other file. */
#include "report_page.h"

#include "image.h"
#include "log.h"

#include <stdio.h> // before jpeglib.h, which uses FILE

#include <jpeglib.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

// Box filter: every destination pixel is the mean of the source pixels whose centres fall in its footprint.
static void box_down(const pad_image *src, uint8_t *dst, int dw, int dh) {
    for (int y = 0; y < dh; y++) {
        int y0 = (int)((long long)y * src->h / dh), y1 = (int)((long long)(y + 1) * src->h / dh);
        if (y1 <= y0) y1 = y0 + 1;
        for (int x = 0; x < dw; x++) {
            int x0 = (int)((long long)x * src->w / dw), x1 = (int)((long long)(x + 1) * src->w / dw);
            if (x1 <= x0) x1 = x0 + 1;
            unsigned long acc[3] = {0, 0, 0};
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++)
                    for (int c = 0; c < 3; c++)
                        acc[c] += src->rgb[((size_t)yy * (size_t)src->w + (size_t)xx) * 3 + (size_t)c];
            unsigned long cnt = (unsigned long)(y1 - y0) * (unsigned long)(x1 - x0);
            for (int c = 0; c < 3; c++)
                dst[((size_t)y * (size_t)dw + (size_t)x) * 3 + (size_t)c] = (uint8_t)((acc[c] + cnt / 2) / cnt);
        }
    }
}

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} jerr;

static void on_jpeg_error(j_common_ptr c) {
    longjmp(((jerr *)c->err)->jb, 1);
}

// JPEG quality 70 of w x h RGB into a malloc'd buffer.
static pad_status encode_jpeg(const uint8_t *rgb, int w, int h, unsigned char **out, unsigned long *n) {
    struct jpeg_compress_struct ci;
    jerr je;
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = on_jpeg_error;
    *out = NULL;
    *n = 0;
    if (setjmp(je.jb)) {
        jpeg_destroy_compress(&ci);
        free(*out);
        *out = NULL;
        return PAD_ERR_FORMAT;
    }
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, out, n);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 70, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)ci.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return PAD_OK;
}

void rh_base64(pad_sbuf *b, const unsigned char *d, size_t n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        q[0] = t[(v >> 18) & 63];
        q[1] = t[(v >> 12) & 63];
        q[2] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? t[v & 63] : '=';
        pad_sb_put(b, q, 4);
    }
}

pad_status rh_thumb_data_uri(const char *png_path, int max_side, pad_sbuf *b) {
    if (max_side < 1 || max_side > 4096) return PAD_ERR_INVALID_ARG;
    pad_image img = {0};
    PAD_TRY(pad_image_load(&img, png_path));
    int dw = img.w, dh = img.h;
    if (dw > max_side || dh > max_side) {
        if (dw >= dh) {
            dh = (int)((long long)dh * max_side / dw);
            dw = max_side;
        } else {
            dw = (int)((long long)dw * max_side / dh);
            dh = max_side;
        }
        dw = dw < 1 ? 1 : dw;
        dh = dh < 1 ? 1 : dh;
    }
    uint8_t *small = malloc((size_t)dw * (size_t)dh * 3);
    if (!small) {
        pad_image_free(&img);
        return PAD_ERR_OOM;
    }
    box_down(&img, small, dw, dh);
    pad_image_free(&img);
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    pad_status st = encode_jpeg(small, dw, dh, &jpg, &n);
    free(small);
    if (st != PAD_OK) {
        PAD_LOG_ERROR("%s: cannot encode a thumbnail", png_path);
        return st;
    }
    pad_sb_printf(b, "data:image/jpeg;base64,");
    rh_base64(b, jpg, n);
    free(jpg);
    return b->oom ? PAD_ERR_OOM : PAD_OK;
}
