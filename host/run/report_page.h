/* report_page.h - internal pieces of report.html (report_html.h): what the page knows of a unit folder
 * (report_units.c), the gallery thumbnails (report_thumb.c) and the page's style and script (report_assets.c). */
#ifndef PAD_RUN_REPORT_PAGE_H
#define PAD_RUN_REPORT_PAGE_H

#include "promptad.h"
#include "strbuf.h"

// One unit folder <dir>/<dataset>/<class>/k<k>/seed<s>/<task>/ as read from its metrics.json.
typedef struct rh_unit {
    char dataset[128], cls[128], task[8], protocol[16], method[32];
    int k, seed, epoch, n_test;
    double m[6];     // image_auroc, image_aupr, pixel_auroc, pixel_aupr, pixel_pro, pixel_pro_200 (NaN: null)
    char dir[4096];  // the folder, as found
    char href[4096]; // the folder relative to the report's folder, URL-escaped, ending in '/'
} rh_unit;

// A heatmap overlay of a unit (heatmaps/<name>) with its test image's label and score (scores.csv; NaN and label
// -1 when the image is not found there).
typedef struct rh_heat {
    char name[512];
    int label;
    double score;
} rh_heat;

// Reads metrics_path (at most 1 MiB) into *u; dir is its folder. Errors: unreadable (PAD_ERR_IO), not a JSON
// object or k / seed out of range (PAD_ERR_FORMAT), all logged with the path.
pad_status rh_unit_read(const char *metrics_path, rh_unit *u);

// The unit's heatmaps in gallery order: anomalous images by ascending score (the worst-detected defects first), then
// normal images by descending score (the worst false alarms first), then those without a score. *out is malloc'd
// (NULL and 0 when there is no heatmaps/ folder).
pad_status rh_unit_heatmaps(const rh_unit *u, rh_heat **out, int *n);

// Appends the unit's detail as one compact JSON object (the page decodes it when the unit is opened):
//   "epoch": the reported epoch,
//   "train": null or {"cols": [train.csv's columns but lr], "n": rows, "q": [[lo, hi, B] per column]} where B is
//            the base64 of n little-endian uint16 q, value = lo + (hi - lo) * q / 65534, 65535 = undefined (plots
//            need no more than 16 bits),
//   "scores": null or {"l": "0110..." (labels), "s": base64 of the float32 scores, little-endian, exact},
//   "hm": [[name, label, score], ...] (rh_unit_heatmaps' order).
// Files larger than 64 MiB and rows beyond 100000 are left out (null / cut there).
pad_status rh_unit_detail_json(const rh_unit *u, pad_sbuf *b);

// Appends "data:image/jpeg;base64,..." of the image at png_path scaled to fit max_side x max_side (box filter).
// Errors: the image cannot be read (logged by the decoder), the encoder fails.
pad_status rh_thumb_data_uri(const char *png_path, int max_side, pad_sbuf *b);

// Appends the base64 encoding of n bytes (RFC 4648, with padding).
void rh_base64(pad_sbuf *b, const unsigned char *d, size_t n);

// Writes into out (cap bytes) the relative, URL-escaped path from folder `from` to folder `to` (both existing),
// ending in '/'; falls back to the absolute path of `to` when a real path cannot be resolved.
void rh_rel_href(const char *from, const char *to, char *out, size_t cap);

// NULL-terminated lists of lines.
extern const char *const rh_page_css[];
extern const char *const rh_page_js_head[]; // runs first: records script errors and console.error calls in the page
extern const char *const rh_page_js[];      // the charts and the unit details

#endif // PAD_RUN_REPORT_PAGE_H
