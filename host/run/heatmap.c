/* heatmap.c - heatmap overlays (heatmap.h): the model's view of a test image, the coloured map over it and the
 * ground-truth contour at full resolution. */
#include "heatmap.h"

#include "log.h"

#include <stdbool.h>
#include <string.h>

// Draws the 1-pixel contour of mask m (w x h, same size as img) in white.
static void draw_contour(pad_image *img, const pad_mask *m) {
    for (int y = 0; y < m->h; y++)
        for (int x = 0; x < m->w; x++) {
            if (!m->m[(size_t)y * m->w + x]) continue;
            bool edge = x == 0 || y == 0 || x == m->w - 1 || y == m->h - 1 || !m->m[(size_t)y * m->w + x - 1] ||
                        !m->m[(size_t)y * m->w + x + 1] || !m->m[(size_t)(y - 1) * m->w + x] ||
                        !m->m[(size_t)(y + 1) * m->w + x];
            if (edge) memset(img->rgb + ((size_t)y * img->w + x) * 3, 255, 3);
        }
}

pad_status pad_heatmap_view(const pad_image *img, pad_preprocess_mode mode, pad_image *out, int *x0, int *y0) {
    *x0 = *y0 = 0;
    if (mode != PAD_PREPROCESS_OPENCLIP || img->w == img->h) return pad_image_from_rgb(out, img->rgb, img->w, img->h);
    int s = img->w < img->h ? img->w : img->h;
    *x0 = (img->w - s) / 2;
    *y0 = (img->h - s) / 2;
    PAD_TRY(pad_image_alloc(out, s, s));
    for (int y = 0; y < s; y++)
        memcpy(out->rgb + (size_t)y * s * 3, img->rgb + ((size_t)(y + *y0) * img->w + *x0) * 3, (size_t)s * 3);
    return PAD_OK;
}

pad_status pad_heatmap_render(const pad_image *img, pad_preprocess_mode mode, const float *map, int mw, int mh,
                              float lo, float hi, char *const *mask_paths, int n_masks, pad_image *out) {
    *out = (pad_image){0};
    pad_image view = {0};
    int x0, y0;
    PAD_TRY(pad_heatmap_view(img, mode, &view, &x0, &y0));
    pad_status st = pad_heatmap_overlay(&view, map, mw, mh, lo, hi, out);
    pad_image_free(&view);
    PAD_TRY(st);
    for (int m = 0; m < n_masks; m++) {
        pad_mask mk = {0};
        if (pad_mask_load(&mk, mask_paths[m]) != PAD_OK) continue;
        if (mk.w == img->w && mk.h == img->h) {
            pad_mask crop = {0};
            if (pad_mask_alloc(&crop, out->w, out->h) == PAD_OK) {
                for (int y = 0; y < out->h; y++)
                    memcpy(crop.m + (size_t)y * out->w, mk.m + (size_t)(y + y0) * mk.w + x0, (size_t)out->w);
                draw_contour(out, &crop);
            }
            pad_mask_free(&crop);
        }
        pad_mask_free(&mk);
    }
    return PAD_OK;
}
