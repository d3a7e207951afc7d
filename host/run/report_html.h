/* report_html.h - report.html, the one-page view of a results tree that `promptad run` and `promptad report` write
 * beside the summary tables (report.h). The page is self-contained: no network, no external script, style or font;
 * its charts are inline SVG drawn by a small script embedded in the page, and the gallery thumbnails are embedded
 * as data URIs. Per dataset it shows
 *   - the summary tables of summary.csv (mean ± std over seeds, the paper's numbers beside ours; one column per
 *     method when the results hold several methods, the metrics.json "method" field, default "promptad"),
 *   - when a baseline ran beside PromptAD, the methods side by side (I-AUROC and P-AUROC per method and shot count,
 *     each method's published numbers in parentheses),
 *   - bars of mean ± std per class, shot count and method for I-AUROC, P-AUROC, I-AUPR and PRO (paper values as
 *     black ticks),
 *   - a gallery of heatmap overlays per class: the lowest-scored defects and the highest-scored good images of one
 *     unit (seg task, most shots, lowest seed), each linking to its unit folder,
 *   - an index of every unit; its details open on demand (the data of a unit stays an inert JSON block until then):
 *     loss terms and the selection metric per epoch (the reported epoch marked), the image ROC curve from
 *     scores.csv, and that unit's heatmaps in the same order as the gallery.
 * PRO curves need the pixel maps and the ground-truth masks, which a unit does not keep (only the AU-PRO value is
 * in metrics.json), so the page shows the AU-PRO numbers and says that its curve is not stored. */
#ifndef PAD_RUN_REPORT_HTML_H
#define PAD_RUN_REPORT_HTML_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

// Writes <out_dir>/report.html (atomically) for the datasets datasets[0..n_datasets) whose summary.csv was written
// into <out_dir>/<dataset>/, and the units whose metrics.json paths are unit_metrics[0..n_units) (units of any
// dataset; links to their folders are relative to out_dir). Errors: an unreadable summary.csv or metrics.json
// (PAD_ERR_IO / PAD_ERR_FORMAT naming it), a write failure, OOM. A missing train.csv, scores.csv or heatmap of a
// unit is not an error (that part of the page says so).
pad_status pad_report_html_write(const char *out_dir, const char *const *datasets, int n_datasets,
                                 const char *const *unit_metrics, int n_units);

#ifdef __cplusplus
}
#endif

#endif // PAD_RUN_REPORT_HTML_H
