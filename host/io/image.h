/* image.h - images in and out: decoding (libjpeg, stb_image), the bit-exact resizes of Pillow 9.4 and
 * OpenCV 4.x, the three
 * --preprocess pipelines of cli_contract.md, ground-truth masks at the metric resolution, PNG writing and heatmap
 * overlays.
 *
 * Decoding rules (pad_image_load): the pixels of OpenCV's cv2.imread(path, IMREAD_COLOR) - what the published
 * PromptAD code reads images with - in RGB order; Pillow's Image.open(path).convert('RGB') agrees except where noted.
 *   - JPEG through libjpeg(-turbo) with OpenCV's settings (codec.c): bit-identical to OpenCV and Pillow built on
 *     the same library (checked against cv2 4.6 / Pillow 9.4 on Debian 12, also on natural photos at qualities
 *     75-95, 4:2:0 and 4:4:4). PNG (1/2/4/8/16-bit, gray, gray+alpha, RGB, RGBA, palette, tRNS, Adam7;
 *     pixel-identical to OpenCV on all of these) and BMP (uncompressed or bit fields, 1 to 32 bits) through
 *     stb_image. The result is always 8-bit RGB.
 *   - Only these three formats are read, recognised by their signature at byte 0 whatever the file is named: PNG
 *     (89 50 4E 47 0D 0A 1A 0A), JPEG (FF D8 FF, always decoded by libjpeg) and BMP ("BM"). Anything else (GIF,
 *     PNM, TGA, PSD, HDR, a JPEG after leading fill bytes, ...) is refused, although stb_image could guess at some.
 *   - The size the header declares is checked before anything is decoded: at most PAD_IMAGE_MAX_DIM per side and
 *     PAD_IMAGE_MAX_PIXELS pixels (64 Mpixel, e.g. 8192 x 8192; the datasets we know stay below 2 Mpixel).
 *   - 16-bit samples keep their high byte (v >> 8): OpenCV (png_set_strip_16) for every PNG, Pillow for 16-bit
 *     RGB/RGBA; Pillow differs on 16-bit grayscale, which it clips to 255 (mode I -> RGB).
 *   - Alpha (and PNG tRNS transparency) is dropped without compositing, as both libraries do. Note: OpenCLIP's own
 *     transform resizes RGBA in premultiplied form before dropping alpha; we drop it at load.
 *   - Gray (any bit depth) is scaled to 8 bits and replicated to R = G = B; palettes are expanded.
 *   - CMYK / YCCK JPEGs use OpenCV's conversion v = k - ((255 - v) * k >> 8) (Pillow's differs).
 *   - EXIF orientation is ignored, like Pillow (cv2.imread would rotate a JPEG that carries an orientation tag).
 *   - Truncated files are errors: a PNG that ends early (and a bad chunk checksum; libpng does the same in OpenCV
 *     and Pillow, stb_image alone checks neither), a JPEG whose data ends early (OpenCV would fill the rest with
 *     gray), a BMP shorter than the rows its header declares (stb_image would read zeros). Other corrupt JPEG data
 *     decodes as far as libjpeg can, with a warning naming the file (OpenCV's behaviour).
 *   - Any failure (missing file, empty file, not an image, truncated or corrupt data) returns an error and logs one
 *     line "<path>: <problem>" with the decoder's reason. Never a crash.
 *
 * Resizes are bit-exact re-implementations (integer arithmetic, same rounding) and do not depend on the OpenMP
 * thread count. Buffers are interleaved 8-bit with cn channels (1..4), rows of w*cn bytes, no padding.
 */
#ifndef PAD_HOST_IMAGE_H
#define PAD_HOST_IMAGE_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

// An 8-bit RGB image, HWC (pixel (x, y) channel c at rgb[(y * w + x) * 3 + c]). The struct owns rgb (malloc'd);
// release with pad_image_free. A zeroed struct is the empty image.
typedef struct pad_image {
    int w, h;
    uint8_t *rgb;
} pad_image;

// A binary mask, row-major, one byte per pixel, values 0 or 1. Owns m; release with pad_mask_free.
typedef struct pad_mask {
    int w, h;
    uint8_t *m;
} pad_mask;

// Largest accepted width or height (any image, mask, resize target).
#define PAD_IMAGE_MAX_DIM (1 << 16)
// Largest number of pixels of a decoded image or mask (64 Mpixel = 8192 x 8192), checked from the file's header.
#define PAD_IMAGE_MAX_PIXELS (1 << 26)

// ----------------------------------------------------------------------------
// Images and masks

// Allocates a w x h image with uninitialised pixels. *img is overwritten (not freed). Errors: bad size, OOM.
pad_status pad_image_alloc(pad_image *img, int w, int h);
// Allocates *img and copies w*h*3 bytes of HWC RGB from rgb.
pad_status pad_image_from_rgb(pad_image *img, const uint8_t *rgb, int w, int h);
// Decodes the file at path into *img (8-bit RGB, rules at the top of this file). On failure *img is zeroed and one
// line "<path>: <reason>" is logged: PAD_ERR_IO when the file cannot be opened or read, PAD_ERR_FORMAT when it is
// not a decodable image, PAD_ERR_OOM.
pad_status pad_image_load(pad_image *img, const char *path);
// Same, from n bytes in memory; `name` is used in messages.
pad_status pad_image_load_memory(pad_image *img, const void *data, size_t n, const char *name);
void pad_image_free(pad_image *img); // frees rgb and zeroes *img; NULL and empty images are no-ops
// The width and height the header of the image file at path declares (format and size rules of pad_image_load; the
// pixels are not decoded, a PNG's checksums not verified). Errors as pad_image_load.
pad_status pad_image_size(const char *path, int *w, int *h);

// Allocates a w x h mask of zeros (e.g. the ground truth of a good image).
pad_status pad_mask_alloc(pad_mask *m, int w, int h);
// Reads a ground-truth mask: PNG (checksums verified as above) and BMP at their full bit depth, JPEG through
// libjpeg; the format and size rules of pad_image_load. A pixel is 1 when its value is > 0 at the file's full bit depth
// (for colour files: when any of R, G, B is > 0; alpha is ignored). This is the official code's `mask > 0` except in
// corner cases: cv2.imread(IMREAD_GRAYSCALE) keeps the high byte of 16-bit files (so a 16-bit value 1..255 would read
// as 0 there) and converts colour to luma (a colour whose luma rounds to 0 would read as 0 there). Errors as
// pad_image_load.
pad_status pad_mask_load(pad_mask *m, const char *path);
void pad_mask_free(pad_mask *m); // frees m->m and zeroes *m; NULL is a no-op

// Writes img as an 8-bit RGB PNG. Atomic: the data goes to a temporary file in the same folder that is renamed
// onto path, so a reader never sees a partial file. Logs "<path>: <reason>" and returns PAD_ERR_IO on failure.
pad_status pad_image_save_png(const char *path, const pad_image *img);
// Writes a mask as an 8-bit gray PNG (0 -> 0, nonzero -> 255), atomically as above.
pad_status pad_mask_save_png(const char *path, const pad_mask *m);

// ----------------------------------------------------------------------------
// Resizes

// Scratch memory and cached coefficient tables that make repeated resizes of the same sizes allocation-free.
// One per thread (not thread-safe). Every function below that takes a ws accepts NULL (then it allocates and
// frees a temporary one).
typedef struct pad_resize_ws pad_resize_ws;
pad_status pad_resize_ws_init(pad_resize_ws **out);
void pad_resize_ws_free(pad_resize_ws *ws); // NULL is a no-op

// Pillow 9.4 Image.resize((dw, dh), Image.BICUBIC) on 8-bit data ("L" for cn=1, "RGB" for cn=3), bit-exact:
// per-axis coefficients of the a=-0.5 cubic stretched by max(in/out, 1) (antialiasing), normalised, converted to
// 22-bit fixed point with round-half-away; horizontal pass first (only when the width changes) into an 8-bit
// temporary that covers the source rows the vertical pass uses, then the vertical pass (only when the height
// changes); accumulators start at 1 << 21, results are clipped to [0, 255]. Same size = copy.
// src: (sh, sw, cn); dst: (dh, dw, cn), must not overlap src. Errors: bad sizes or cn, OOM.
pad_status pad_resize_pil_bicubic_u8(const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw, int dh,
                                     pad_resize_ws *ws);
// The window [x0, x0+cw) x [y0, y0+ch) of the dw x dh Pillow bicubic resize, computed without the rest (same values
// as resizing and then cropping). dst: (ch, cw, cn). The window must lie inside dw x dh.
pad_status pad_resize_pil_bicubic_crop_u8(const uint8_t *src, int sw, int sh, int cn, int dw, int dh, int x0, int y0,
                                          int cw, int ch, uint8_t *dst, pad_resize_ws *ws);
// OpenCV 4.x cv2.resize(src, (dw, dh)) with INTER_LINEAR on CV_8U, bit-exact: source coordinate
// (d + 0.5) * (1 / (dw / sw)) - 0.5 in float, 11-bit coefficients rounded half-to-even, horizontal values kept as
// int (scale 2048), vertical pass ((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2; columns beyond
// the border clamp with weight (1, 0), rows clamp their index but keep their weights. (OpenCV switches to
// INTER_AREA when both scales are exactly 2; that gives the same numbers, and so does this function.)
pad_status pad_resize_cv_linear_u8(const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw, int dh,
                                   pad_resize_ws *ws);
// Pillow Image.resize(..., Image.NEAREST): output x reads source floor(sw/dw * 0.5 + x * sw/dw), the position
// accumulated in double by repeated addition as Pillow does (ImagingScaleAffine); same for rows.
pad_status pad_resize_nearest_pil_u8(const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw, int dh,
                                     pad_resize_ws *ws);
// OpenCV cv2.resize(..., INTER_NEAREST): output x reads source min(floor(x * (1 / (dw / sw))), sw - 1).
pad_status pad_resize_nearest_cv_u8(const uint8_t *src, int sw, int sh, int cn, uint8_t *dst, int dw, int dh,
                                    pad_resize_ws *ws);

// Convenience forms: allocate *out (not freed first) and resize src into it.
pad_status pad_resize_pil_bicubic(const pad_image *src, int dw, int dh, pad_image *out);
pad_status pad_resize_cv_linear(const pad_image *src, int dw, int dh, pad_image *out);
pad_status pad_resize_nearest_pil(const pad_mask *src, int dw, int dh, pad_mask *out);
pad_status pad_resize_nearest_cv(const pad_mask *src, int dw, int dh, pad_mask *out);

// ----------------------------------------------------------------------------
// Model input (--preprocess)

typedef enum pad_preprocess_mode {
    PAD_PREPROCESS_SQUASH = 0,   // Pillow bicubic of the whole image to S x S (default)
    PAD_PREPROCESS_OPENCLIP = 1, // Pillow bicubic of the shorter side to S (torchvision rule), centre crop S x S
    PAD_PREPROCESS_OFFICIAL = 2, // OpenCV INTER_LINEAR to 1024 x 1024, then Pillow bicubic to S x S
} pad_preprocess_mode;

// Parses "squash", "openclip" or "official"; anything else logs "unknown --preprocess mode '<s>'..." and returns
// PAD_ERR_INVALID_ARG.
pad_status pad_preprocess_mode_parse(const char *s, pad_preprocess_mode *out);
const char *pad_preprocess_mode_str(pad_preprocess_mode mode); // "squash", ...; "?" for an invalid value

#define PAD_OFFICIAL_SIZE 1024 // the official code's intermediate cv2.resize size

// The OpenCLIP geometry for a w x h image and output size S: torchvision's Resize(S) size rule (shorter side -> S,
// longer -> int(S * long / short), truncated) giving rw x rh, then CenterCrop(S) offsets
// left = round((rw - S) / 2), top = round((rh - S) / 2) with Python's round (half to even).
void pad_openclip_geometry(int w, int h, int S, int *rw, int *rh, int *left, int *top);

// CLIP normalisation constants (OPENAI_DATASET_MEAN / STD), as float32 the way torch.as_tensor rounds them.
extern const float pad_clip_mean[3];
extern const float pad_clip_std[3];

// The S x S 8-bit RGB image that `mode` feeds to ToTensor (the resize and crop steps). out: (S, S, 3).
pad_status pad_preprocess_u8(const pad_image *img, pad_preprocess_mode mode, int S, uint8_t *out, pad_resize_ws *ws);
// ToTensor + Normalize of n HWC RGB pixels into CHW floats out (3, n): out[c][i] = (v / 255 - mean[c]) / std[c]
// in float32 (bit-identical to torch's div, sub, div). With bgr, channel c takes the value of source channel 2 - c
// but keeps the statistics of c (the official protocol's test-image quirk, promptad_spec.md §7.1.1).
void pad_normalize_clip(const uint8_t *rgb, size_t n, bool bgr, float *out);
// The whole model input: pad_preprocess_u8 then pad_normalize_clip. out: (3, S, S) floats.
pad_status pad_preprocess(const pad_image *img, pad_preprocess_mode mode, int S, bool bgr, float *out);
// Same with a workspace (no allocation once the workspace has seen these sizes).
pad_status pad_preprocess_ws(const pad_image *img, pad_preprocess_mode mode, int S, bool bgr, float *out,
                             pad_resize_ws *ws);

// The ground truth at the metric resolution R (R x R), allocated into *out:
//   OFFICIAL: the published code: cv2 INTER_NEAREST to 1024 x 1024, then cv2 INTER_NEAREST to R x R.
//   SQUASH:   Pillow NEAREST of the whole mask to R x R (pixel-centre sampling, the same geometry as the squashed
//             image; cv2's floor(x * scale) would shift the mask by half a source pixel).
//   OPENCLIP: Pillow NEAREST with the OpenCLIP geometry at size R (shorter side -> R, centre crop R x R), i.e. the
//             region the model sees (up to the rounding of the crop offsets at R rather than S).
pad_status pad_mask_preprocess(const pad_mask *m, pad_preprocess_mode mode, int R, pad_mask *out);

// ----------------------------------------------------------------------------
// Visualisation

// The jet colour map (MATLAB-style piecewise linear: r = clamp(1.5 - |4t - 3|), g = clamp(1.5 - |4t - 2|),
// b = clamp(1.5 - |4t - 1|)) of t in [0, 1] (clamped; NaN -> 0) as 8-bit RGB.
void pad_colormap_jet(float t, uint8_t rgb[3]);
// Blends the jet colour map of `map` (mh rows x mw columns, row-major) over img with alpha 0.5 into a newly
// allocated *out of img's size: the map is resized to the image with bilinear interpolation (pixel centres
// aligned, edges clamped), normalised as (v - lo) / (hi - lo) and clamped to [0, 1] (0 when hi <= lo or v is NaN);
// out = (img + colour + 1) / 2 per channel.
pad_status pad_heatmap_overlay(const pad_image *img, const float *map, int mw, int mh, float lo, float hi,
                               pad_image *out);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_IMAGE_H
