/* image.c - image and mask decoding (stb_image from Debian's libstb), PNG writing, the --preprocess pipelines,
 * ground-truth masks at the metric resolution and heatmap overlays. The resizes themselves live in resize.c.
 * Rules and contracts: image.h. */
#include "image.h"
#include "codec.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

// Declarations only: libstb already contains the implementations (never define STB_IMAGE_IMPLEMENTATION here).
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

// resize.c: the workspace's buffers for intermediate images (slot 0 or 1; contents not preserved between calls).
void *pad_resize_ws_buffer(pad_resize_ws *ws, int slot, size_t bytes);

const float pad_clip_mean[3] = {(float)0.48145466, (float)0.4578275, (float)0.40821073};
const float pad_clip_std[3] = {(float)0.26862954, (float)0.26130258, (float)0.27577711};

// ----------------------------------------------------------------------------
// Images and masks

static bool dims_ok(int w, int h) {
    return w >= 1 && h >= 1 && w <= PAD_IMAGE_MAX_DIM && h <= PAD_IMAGE_MAX_DIM;
}

pad_status pad_image_alloc(pad_image *img, int w, int h) {
    memset(img, 0, sizeof *img);
    if (!dims_ok(w, h)) {
        PAD_LOG_ERROR("image: invalid size %dx%d (1..%d)", w, h, PAD_IMAGE_MAX_DIM);
        return PAD_ERR_INVALID_ARG;
    }
    img->rgb = (uint8_t *)malloc((size_t)w * (size_t)h * 3);
    if (!img->rgb) {
        PAD_LOG_ERROR("image: out of memory for %dx%d", w, h);
        return PAD_ERR_OOM;
    }
    img->w = w;
    img->h = h;
    return PAD_OK;
}

pad_status pad_image_from_rgb(pad_image *img, const uint8_t *rgb, int w, int h) {
    PAD_TRY(pad_image_alloc(img, w, h));
    memcpy(img->rgb, rgb, (size_t)w * (size_t)h * 3);
    return PAD_OK;
}

void pad_image_free(pad_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

pad_status pad_mask_alloc(pad_mask *m, int w, int h) {
    memset(m, 0, sizeof *m);
    if (!dims_ok(w, h)) {
        PAD_LOG_ERROR("mask: invalid size %dx%d (1..%d)", w, h, PAD_IMAGE_MAX_DIM);
        return PAD_ERR_INVALID_ARG;
    }
    m->m = (uint8_t *)calloc((size_t)w * (size_t)h, 1);
    if (!m->m) {
        PAD_LOG_ERROR("mask: out of memory for %dx%d", w, h);
        return PAD_ERR_OOM;
    }
    m->w = w;
    m->h = h;
    return PAD_OK;
}

void pad_mask_free(pad_mask *m) {
    if (!m) return;
    free(m->m);
    memset(m, 0, sizeof *m);
}

// Reads a whole file into a malloc'd buffer.
static pad_status read_file(const char *path, unsigned char **data, size_t *n) {
    *data = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        PAD_LOG_ERROR("%s: not a regular file", path);
        fclose(fp);
        return PAD_ERR_IO;
    }
    if ((unsigned long long)sb.st_size > (unsigned long long)INT_MAX) {
        PAD_LOG_ERROR("%s: file too large for an image (%lld bytes)", path, (long long)sb.st_size);
        fclose(fp);
        return PAD_ERR_FORMAT;
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = (unsigned char *)malloc(size ? size : 1);
    if (!buf) {
        PAD_LOG_ERROR("%s: out of memory (%zu bytes)", path, size);
        fclose(fp);
        return PAD_ERR_OOM;
    }
    size_t got = fread(buf, 1, size, fp);
    int err = ferror(fp);
    fclose(fp);
    if (got != size || err) {
        PAD_LOG_ERROR("%s: read failed: %s", path, err ? strerror(errno) : "file changed size while reading");
        free(buf);
        return PAD_ERR_IO;
    }
    *data = buf;
    *n = size;
    return PAD_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t le16(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

typedef enum img_format { FMT_PNG, FMT_JPEG, FMT_BMP } img_format;

// The size limits of image.h, checked on the sizes a header declares (before anything is decoded).
static pad_status size_ok(const char *name, const char *fmt, long long w, long long h) {
    if (w < 1 || h < 1 || w > PAD_IMAGE_MAX_DIM || h > PAD_IMAGE_MAX_DIM ||
        (unsigned long long)w * (unsigned long long)h > PAD_IMAGE_MAX_PIXELS) {
        PAD_LOG_ERROR("%s: %s image size %lldx%lld is not supported (at most %d per side and %d pixels)", name, fmt, w,
                      h, PAD_IMAGE_MAX_DIM, PAD_IMAGE_MAX_PIXELS);
        return PAD_ERR_FORMAT;
    }
    return PAD_OK;
}

// A BMP's header: the size limits, a layout stb_image decodes (uncompressed or bit fields; 1, 4, 8, 16, 24 or 32
// bits), and a file long enough for the rows it declares (stb_image would read a truncated file's missing rows as
// zeros).
static pad_status check_bmp(const unsigned char *d, size_t n, const char *name) {
    if (n < 26 || n < 14 + (size_t)le32(d + 14)) {
        PAD_LOG_ERROR("%s: truncated BMP (%zu bytes: the headers do not fit)", name, n);
        return PAD_ERR_FORMAT;
    }
    const uint32_t off = le32(d + 10), hsz = le32(d + 14);
    long long w, h;
    uint32_t planes, bpp, comp = 0;
    if (hsz == 12) { // BITMAPCOREHEADER
        w = le16(d + 18);
        h = le16(d + 20);
        planes = le16(d + 22);
        bpp = le16(d + 24);
    } else if (hsz == 40 || hsz == 56 || hsz == 108 || hsz == 124) {
        w = (int32_t)le32(d + 18);
        h = (int32_t)le32(d + 22);
        planes = le16(d + 26);
        bpp = le16(d + 28);
        comp = le32(d + 30);
    } else {
        PAD_LOG_ERROR("%s: not a readable image: unsupported BMP header size %u", name, (unsigned)hsz);
        return PAD_ERR_FORMAT;
    }
    if (h < 0) h = -h; // top-down rows
    PAD_TRY(size_ok(name, "BMP", w, h));
    if (planes != 1 || (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) ||
        (comp != 0 && comp != 3)) {
        PAD_LOG_ERROR("%s: not a readable image: unsupported BMP (%u bits, %u planes, compression %u)", name,
                      (unsigned)bpp, (unsigned)planes, (unsigned)comp);
        return PAD_ERR_FORMAT;
    }
    const unsigned long long stride = ((unsigned long long)w * bpp + 31) / 32 * 4;
    const unsigned long long need = (unsigned long long)off + stride * (unsigned long long)h;
    if (need > n) {
        PAD_LOG_ERROR("%s: truncated BMP (%lldx%lld at %u bits needs %llu bytes, the file has %zu)", name, w, h,
                      (unsigned)bpp, need, n);
        return PAD_ERR_FORMAT;
    }
    return PAD_OK;
}

// The file's format from its signature at byte 0 (only the formats image.h documents), with the size its header
// declares checked against the limits. Logs one line and returns PAD_ERR_FORMAT otherwise.
static pad_status sniff(const unsigned char *d, size_t n, const char *name, img_format *fmt) {
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (n == 0) {
        PAD_LOG_ERROR("%s: empty file", name);
        return PAD_ERR_FORMAT;
    }
    if (n > (size_t)INT_MAX) {
        PAD_LOG_ERROR("%s: file too large for an image (%zu bytes)", name, n);
        return PAD_ERR_FORMAT;
    }
    if (n >= 8 && memcmp(d, png_sig, 8) == 0) {
        *fmt = FMT_PNG;
        if (n < 24 || be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0) {
            PAD_LOG_ERROR("%s: %s PNG (no IHDR chunk first)", name, n < 24 ? "truncated" : "corrupt");
            return PAD_ERR_FORMAT;
        }
        return size_ok(name, "PNG", be32(d + 16), be32(d + 20));
    }
    if (pad_codec_is_jpeg(d, n)) {
        *fmt = FMT_JPEG; // libjpeg reads the header and checks the size (codec.c)
        return PAD_OK;
    }
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') {
        *fmt = FMT_BMP;
        return check_bmp(d, n, name);
    }
    char head[32] = "";
    for (size_t i = 0, len = 0; i < n && i < 4; i++)
        len += (size_t)snprintf(head + len, sizeof head - len, "%s%02x", i ? " " : "", d[i]);
    PAD_LOG_ERROR("%s: not a readable image: not a PNG, JPEG or BMP file (it starts with %s)", name, head);
    return PAD_ERR_FORMAT;
}

// Checks the header again with stbi_info (PNG and BMP only, after sniff and check_png).
static pad_status probe(const unsigned char *data, size_t n, const char *name, int *w, int *h, int *comp) {
    if (!stbi_info_from_memory(data, (int)n, w, h, comp)) {
        const char *why = stbi_failure_reason();
        PAD_LOG_ERROR("%s: not a readable image: %s", name, why && why[0] ? why : "unknown format");
        return PAD_ERR_FORMAT;
    }
    return size_ok(name, "the", *w, *h);
}

static pad_status decode_failed(const char *name) {
    const char *why = stbi_failure_reason();
    if (why && strcmp(why, "outofmem") == 0) {
        PAD_LOG_ERROR("%s: out of memory while decoding", name);
        return PAD_ERR_OOM;
    }
    PAD_LOG_ERROR("%s: cannot decode image: %s", name, why && why[0] ? why : "corrupt or truncated data");
    return PAD_ERR_FORMAT;
}

// stb_image skips PNG checksums and may not notice a file cut short; libpng (OpenCV, Pillow) rejects both. Walks
// the chunks: a truncated chunk, a missing IEND or a bad CRC on a critical chunk is an error, a bad CRC on an
// ancillary chunk a warning (libpng's defaults).
static pad_status check_png(const unsigned char *d, size_t n, const char *name) {
    size_t off = 8; // after the signature (sniff)
    for (;;) {
        if (n - off < 12) {
            PAD_LOG_ERROR("%s: truncated PNG (%s at byte %zu)", name,
                          off == n ? "file ends before IEND" : "partial chunk", off);
            return PAD_ERR_FORMAT;
        }
        uint32_t len = be32(d + off);
        const unsigned char *type = d + off + 4;
        char tname[5];
        for (int i = 0; i < 4; i++)
            tname[i] = (type[i] >= 0x20 && type[i] < 0x7f) ? (char)type[i] : '?';
        tname[4] = 0;
        if (len > 0x7fffffffu || (size_t)len > n - off - 12) {
            PAD_LOG_ERROR("%s: truncated PNG (chunk '%s' at byte %zu needs %u bytes, %zu left)", name, tname, off,
                          (unsigned)len + 12u, n - off);
            return PAD_ERR_FORMAT;
        }
        uint32_t want = be32(d + off + 8 + len);
        uint32_t got = (uint32_t)crc32(crc32(0L, Z_NULL, 0), type, (uInt)len + 4u);
        if (got != want) {
            if (!(type[0] & 0x20)) {
                PAD_LOG_ERROR("%s: corrupt PNG (CRC mismatch in chunk '%s' at byte %zu)", name, tname, off);
                return PAD_ERR_FORMAT;
            }
            PAD_LOG_WARN("%s: CRC mismatch in ancillary PNG chunk '%s' at byte %zu (ignored)", name, tname, off);
        }
        off += 12 + (size_t)len;
        if (memcmp(type, "IEND", 4) == 0) return PAD_OK;
    }
}

pad_status pad_image_load_memory(pad_image *img, const void *data, size_t n, const char *name) {
    memset(img, 0, sizeof *img);
    const unsigned char *d = (const unsigned char *)data;
    img_format fmt;
    PAD_TRY(sniff(d, n, name, &fmt));
    if (fmt == FMT_JPEG) return pad_codec_decode_jpeg(d, n, name, img);
    int w, h, comp;
    if (fmt == FMT_PNG) PAD_TRY(check_png(d, n, name));
    PAD_TRY(probe(d, n, name, &w, &h, &comp));
    int w2, h2, c2;
    unsigned char *px = stbi_load_from_memory(d, (int)n, &w2, &h2, &c2, 3);
    if (!px) return decode_failed(name);
    if (w2 != w || h2 != h) { // cannot happen with a consistent decoder; never trust it blindly
        stbi_image_free(px);
        PAD_LOG_ERROR("%s: inconsistent image size (%dx%d vs %dx%d)", name, w, h, w2, h2);
        return PAD_ERR_FORMAT;
    }
    // stb allocates with malloc (STBI_MALLOC default), so the buffer can be owned by the pad_image directly.
    img->w = w;
    img->h = h;
    img->rgb = px;
    return PAD_OK;
}

pad_status pad_image_load(pad_image *img, const char *path) {
    memset(img, 0, sizeof *img);
    unsigned char *data;
    size_t n;
    PAD_TRY(read_file(path, &data, &n));
    pad_status st = pad_image_load_memory(img, data, n, path);
    free(data);
    return st;
}

pad_status pad_image_size(const char *path, int *w, int *h) {
    unsigned char *data;
    size_t n;
    PAD_TRY(read_file(path, &data, &n));
    img_format fmt;
    pad_status st = sniff(data, n, path, &fmt);
    int comp;
    if (st == PAD_OK && fmt == FMT_JPEG)
        st = pad_codec_jpeg_size(data, n, path, w, h);
    else if (st == PAD_OK)
        st = probe(data, n, path, w, h, &comp);
    free(data);
    return st;
}

pad_status pad_mask_load(pad_mask *m, const char *path) {
    memset(m, 0, sizeof *m);
    unsigned char *data;
    size_t n;
    PAD_TRY(read_file(path, &data, &n));
    img_format fmt;
    pad_status st = sniff(data, n, path, &fmt);
    if (st != PAD_OK) {
        free(data);
        return st;
    }
    if (fmt == FMT_JPEG) { // 8-bit only: decode as an image, then any channel > 0
        pad_image img;
        st = pad_codec_decode_jpeg(data, n, path, &img);
        free(data);
        if (st == PAD_OK) st = pad_mask_alloc(m, img.w, img.h);
        if (st == PAD_OK)
            for (size_t i = 0; i < (size_t)img.w * (size_t)img.h; i++)
                m->m[i] = (img.rgb[3 * i] | img.rgb[3 * i + 1] | img.rgb[3 * i + 2]) != 0;
        pad_image_free(&img);
        return st;
    }
    int w, h, comp;
    if (fmt == FMT_PNG) st = check_png(data, n, path);
    if (st == PAD_OK) st = probe(data, n, path, &w, &h, &comp);
    if (st != PAD_OK) {
        free(data);
        return st;
    }
    const bool is16 = stbi_is_16_bit_from_memory(data, (int)n) != 0;
    int w2, h2, nc;
    void *px = is16 ? (void *)stbi_load_16_from_memory(data, (int)n, &w2, &h2, &nc, 0)
                    : (void *)stbi_load_from_memory(data, (int)n, &w2, &h2, &nc, 0);
    if (!px) {
        st = decode_failed(path);
        free(data);
        return st;
    }
    free(data);
    if (w2 != w || h2 != h || nc < 1 || nc > 4) {
        stbi_image_free(px);
        PAD_LOG_ERROR("%s: inconsistent image header", path);
        return PAD_ERR_FORMAT;
    }
    st = pad_mask_alloc(m, w, h);
    if (st != PAD_OK) {
        stbi_image_free(px);
        return st;
    }
    const int color = nc >= 3 ? 3 : 1; // gray+alpha and RGBA: the alpha channel is ignored
    const size_t np = (size_t)w * (size_t)h;
    for (size_t i = 0; i < np; i++) {
        unsigned any = 0;
        for (int c = 0; c < color; c++)
            any |= is16 ? ((const uint16_t *)px)[i * nc + c] : ((const uint8_t *)px)[i * nc + c];
        m->m[i] = any != 0;
    }
    stbi_image_free(px);
    return PAD_OK;
}

// ----------------------------------------------------------------------------
// PNG writing

typedef struct png_sink {
    FILE *fp;
    int err; // first errno seen, 0 = fine
} png_sink;

static void png_write_cb(void *ctx, void *data, int size) {
    png_sink *s = (png_sink *)ctx;
    if (s->err || size <= 0) return;
    if (fwrite(data, 1, (size_t)size, s->fp) != (size_t)size) s->err = errno ? errno : EIO;
}

static pad_status save_png(const char *path, int w, int h, int comp, const uint8_t *px) {
    size_t plen = strlen(path);
    char *tmp = (char *)malloc(plen + 8);
    if (!tmp) {
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    snprintf(tmp, plen + 8, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        PAD_LOG_ERROR("%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return PAD_ERR_IO;
    }
    (void)fchmod(fd, 0644); // mkstemp creates 0600; images are meant to be shared
    FILE *fp = fdopen(fd, "wb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot write: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return PAD_ERR_IO;
    }
    png_sink s = {fp, 0};
    int ok = stbi_write_png_to_func(png_write_cb, &s, w, h, comp, px, w * comp);
    if (fclose(fp) != 0 && !s.err) s.err = errno ? errno : EIO;
    if (!ok || s.err) {
        PAD_LOG_ERROR("%s: write failed: %s", path, !ok ? "PNG encoder failed (out of memory?)" : strerror(s.err));
        unlink(tmp);
        free(tmp);
        return PAD_ERR_IO;
    }
    if (rename(tmp, path) != 0) {
        PAD_LOG_ERROR("%s: cannot rename the temporary file into place: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return PAD_ERR_IO;
    }
    free(tmp);
    return PAD_OK;
}

pad_status pad_image_save_png(const char *path, const pad_image *img) {
    if (!img || !img->rgb || !dims_ok(img->w, img->h)) {
        PAD_LOG_ERROR("%s: cannot write an empty or invalid image", path);
        return PAD_ERR_INVALID_ARG;
    }
    return save_png(path, img->w, img->h, 3, img->rgb);
}

pad_status pad_mask_save_png(const char *path, const pad_mask *m) {
    if (!m || !m->m || !dims_ok(m->w, m->h)) {
        PAD_LOG_ERROR("%s: cannot write an empty or invalid mask", path);
        return PAD_ERR_INVALID_ARG;
    }
    size_t np = (size_t)m->w * (size_t)m->h;
    uint8_t *g = (uint8_t *)malloc(np);
    if (!g) {
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    for (size_t i = 0; i < np; i++)
        g[i] = m->m[i] ? 255 : 0;
    pad_status st = save_png(path, m->w, m->h, 1, g);
    free(g);
    return st;
}

// ----------------------------------------------------------------------------
// Preprocessing

pad_status pad_preprocess_mode_parse(const char *s, pad_preprocess_mode *out) {
    static const char *names[] = {"squash", "openclip", "official"};
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (pad_preprocess_mode)i;
            return PAD_OK;
        }
    PAD_LOG_ERROR("unknown --preprocess mode '%s' (expected squash, openclip or official)", s ? s : "(null)");
    return PAD_ERR_INVALID_ARG;
}

const char *pad_preprocess_mode_str(pad_preprocess_mode mode) {
    switch (mode) {
    case PAD_PREPROCESS_SQUASH:
        return "squash";
    case PAD_PREPROCESS_OPENCLIP:
        return "openclip";
    case PAD_PREPROCESS_OFFICIAL:
        return "official";
    }
    return "?";
}

// Python's round() of k / 2 for an integer k >= 0 (half to even).
static int round_half_even_div2(int k) {
    int q = k / 2;
    if (k % 2 == 0) return q;
    return (q % 2 == 0) ? q : q + 1; // k / 2 = q + 0.5
}

void pad_openclip_geometry(int w, int h, int S, int *rw, int *rh, int *left, int *top) {
    int shortside = w <= h ? w : h, longside = w <= h ? h : w;
    int new_long = (int)((double)((long long)S * longside) / (double)shortside); // int(S * long / short)
    *rw = w <= h ? S : new_long;
    *rh = w <= h ? new_long : S;
    *left = round_half_even_div2(*rw - S);
    *top = round_half_even_div2(*rh - S);
}

void pad_normalize_clip(const uint8_t *rgb, size_t n, bool bgr, float *out) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v / 255.0f - pad_clip_mean[c]) / pad_clip_std[c];
    for (int c = 0; c < 3; c++) {
        const int sc = bgr ? 2 - c : c;
        const float *l = lut[c];
        float *o = out + (size_t)c * n;
        for (size_t i = 0; i < n; i++)
            o[i] = l[rgb[3 * i + (size_t)sc]];
    }
}

static pad_status check_image(const pad_image *img, const char *what) {
    if (!img || !img->rgb || !dims_ok(img->w, img->h)) {
        PAD_LOG_ERROR("%s: empty or invalid image", what);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

static pad_status check_size(int S, const char *what) {
    if (S < 1 || S > PAD_IMAGE_MAX_DIM) {
        PAD_LOG_ERROR("%s: invalid output size %d", what, S);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

pad_status pad_preprocess_u8(const pad_image *img, pad_preprocess_mode mode, int S, uint8_t *out, pad_resize_ws *ws) {
    PAD_TRY(check_image(img, "preprocess"));
    PAD_TRY(check_size(S, "preprocess"));
    switch (mode) {
    case PAD_PREPROCESS_SQUASH:
        return pad_resize_pil_bicubic_u8(img->rgb, img->w, img->h, 3, out, S, S, ws);
    case PAD_PREPROCESS_OPENCLIP: {
        int rw, rh, left, top;
        pad_openclip_geometry(img->w, img->h, S, &rw, &rh, &left, &top);
        return pad_resize_pil_bicubic_crop_u8(img->rgb, img->w, img->h, 3, rw, rh, left, top, S, S, out, ws);
    }
    case PAD_PREPROCESS_OFFICIAL: {
        pad_resize_ws *own = NULL;
        if (!ws) {
            PAD_TRY(pad_resize_ws_init(&own));
            ws = own;
        }
        pad_status st = PAD_ERR_OOM;
        const int B = PAD_OFFICIAL_SIZE;
        uint8_t *mid = (uint8_t *)pad_resize_ws_buffer(ws, 0, (size_t)B * B * 3);
        if (mid) {
            st = pad_resize_cv_linear_u8(img->rgb, img->w, img->h, 3, mid, B, B, ws);
            if (st == PAD_OK) st = pad_resize_pil_bicubic_u8(mid, B, B, 3, out, S, S, ws);
        }
        pad_resize_ws_free(own);
        return st;
    }
    }
    PAD_LOG_ERROR("preprocess: invalid mode %d", (int)mode);
    return PAD_ERR_INVALID_ARG;
}

pad_status pad_preprocess_ws(const pad_image *img, pad_preprocess_mode mode, int S, bool bgr, float *out,
                             pad_resize_ws *ws) {
    PAD_TRY(check_size(S, "preprocess"));
    pad_resize_ws *own = NULL;
    if (!ws) {
        PAD_TRY(pad_resize_ws_init(&own));
        ws = own;
    }
    const size_t n = (size_t)S * (size_t)S;
    pad_status st = PAD_ERR_OOM;
    uint8_t *u8 = (uint8_t *)pad_resize_ws_buffer(ws, 1, 3 * n);
    if (u8) st = pad_preprocess_u8(img, mode, S, u8, ws);
    if (st == PAD_OK) pad_normalize_clip(u8, n, bgr, out);
    pad_resize_ws_free(own);
    return st;
}

pad_status pad_preprocess(const pad_image *img, pad_preprocess_mode mode, int S, bool bgr, float *out) {
    return pad_preprocess_ws(img, mode, S, bgr, out, NULL);
}

pad_status pad_mask_preprocess(const pad_mask *m, pad_preprocess_mode mode, int R, pad_mask *out) {
    memset(out, 0, sizeof *out);
    if (!m || !m->m || !dims_ok(m->w, m->h)) {
        PAD_LOG_ERROR("mask preprocess: empty or invalid mask");
        return PAD_ERR_INVALID_ARG;
    }
    PAD_TRY(check_size(R, "mask preprocess"));
    PAD_TRY(pad_mask_alloc(out, R, R));
    pad_status st = PAD_ERR_INVALID_ARG;
    pad_resize_ws *ws = NULL;
    uint8_t *tmp = NULL;
    PAD_TRY_GOTO(st, pad_resize_ws_init(&ws), done);
    switch (mode) {
    case PAD_PREPROCESS_OFFICIAL: {
        const int B = PAD_OFFICIAL_SIZE;
        st = PAD_ERR_OOM;
        if (!(tmp = (uint8_t *)malloc((size_t)B * B))) goto done;
        PAD_TRY_GOTO(st, pad_resize_nearest_cv_u8(m->m, m->w, m->h, 1, tmp, B, B, ws), done);
        PAD_TRY_GOTO(st, pad_resize_nearest_cv_u8(tmp, B, B, 1, out->m, R, R, ws), done);
        break;
    }
    case PAD_PREPROCESS_SQUASH:
        PAD_TRY_GOTO(st, pad_resize_nearest_pil_u8(m->m, m->w, m->h, 1, out->m, R, R, ws), done);
        break;
    case PAD_PREPROCESS_OPENCLIP: {
        int rw, rh, left, top;
        pad_openclip_geometry(m->w, m->h, R, &rw, &rh, &left, &top);
        st = PAD_ERR_OOM;
        if (!(tmp = (uint8_t *)malloc((size_t)rw * (size_t)rh))) goto done;
        PAD_TRY_GOTO(st, pad_resize_nearest_pil_u8(m->m, m->w, m->h, 1, tmp, rw, rh, ws), done);
        for (int y = 0; y < R; y++)
            memcpy(out->m + (size_t)y * R, tmp + (size_t)(top + y) * rw + left, (size_t)R);
        break;
    }
    default:
        PAD_LOG_ERROR("mask preprocess: invalid mode %d", (int)mode);
        goto done;
    }
    // Inputs are 0/1 already, but never trust a caller-filled mask: binarise.
    for (size_t i = 0; i < (size_t)R * R; i++)
        out->m[i] = out->m[i] != 0;
    st = PAD_OK;
done:
    free(tmp);
    pad_resize_ws_free(ws);
    if (st != PAD_OK) pad_mask_free(out);
    return st;
}

// ----------------------------------------------------------------------------
// Visualisation

static float clamp01(float v) {
    return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}

void pad_colormap_jet(float t, uint8_t rgb[3]) {
    if (!(t >= 0.0f)) t = 0.0f; // also NaN
    if (t > 1.0f) t = 1.0f;
    float r = clamp01(1.5f - fabsf(4.0f * t - 3.0f));
    float g = clamp01(1.5f - fabsf(4.0f * t - 2.0f));
    float b = clamp01(1.5f - fabsf(4.0f * t - 1.0f));
    rgb[0] = (uint8_t)lrintf(r * 255.0f);
    rgb[1] = (uint8_t)lrintf(g * 255.0f);
    rgb[2] = (uint8_t)lrintf(b * 255.0f);
}

// Source position and weight of output index d for a centre-aligned linear resize of n -> m, clamped at the edges.
static void lin_coord(int d, int n, int m, int *i0, int *i1, float *f) {
    float s = ((float)d + 0.5f) * (float)n / (float)m - 0.5f;
    if (s < 0.0f) s = 0.0f;
    if (s > (float)(n - 1)) s = (float)(n - 1);
    int i = (int)s;
    *i0 = i;
    *i1 = i + 1 < n ? i + 1 : n - 1;
    *f = s - (float)i;
}

pad_status pad_heatmap_overlay(const pad_image *img, const float *map, int mw, int mh, float lo, float hi,
                               pad_image *out) {
    memset(out, 0, sizeof *out);
    PAD_TRY(check_image(img, "heatmap overlay"));
    if (!map || !dims_ok(mw, mh)) {
        PAD_LOG_ERROR("heatmap overlay: invalid map %dx%d", mw, mh);
        return PAD_ERR_INVALID_ARG;
    }
    PAD_TRY(pad_image_alloc(out, img->w, img->h));
    const float range = hi - lo;
    const int W = img->w, H = img->h;
#pragma omp parallel for schedule(static) if ((long long)W * H > 65536)
    for (int y = 0; y < H; y++) {
        int y0, y1;
        float fy;
        lin_coord(y, mh, H, &y0, &y1, &fy);
        for (int x = 0; x < W; x++) {
            int x0, x1;
            float fx;
            lin_coord(x, mw, W, &x0, &x1, &fx);
            const float *r0 = map + (size_t)y0 * mw, *r1 = map + (size_t)y1 * mw;
            float v = (1.0f - fy) * ((1.0f - fx) * r0[x0] + fx * r0[x1]) + fy * ((1.0f - fx) * r1[x0] + fx * r1[x1]);
            float t = range > 0.0f ? (v - lo) / range : 0.0f;
            uint8_t col[3];
            pad_colormap_jet(t, col);
            const size_t o = ((size_t)y * W + x) * 3;
            for (int c = 0; c < 3; c++)
                out->rgb[o + c] = (uint8_t)((img->rgb[o + c] + col[c] + 1) >> 1);
        }
    }
    return PAD_OK;
}
