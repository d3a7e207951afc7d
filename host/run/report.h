/* report.h - summary tables of `promptad run` results (`promptad report`, and the end of every run): reads the
 * metrics.json of every finished unit under one or more result folders (<dir>/<dataset>/<class>/k<k>/seed<s>/<task>/,
 * e.g. the folders of sharded runs), and writes per dataset
 *   <out>/<dataset>/summary.csv  one row per (protocol, k, class, task, metric): mean, std, seeds, paper mean/std
 *   <out>/<dataset>/summary.md   per k a table of I-AUROC, P-AUROC, I-AUPR and PRO per class and the dataset mean,
 *                                the paper's numbers (configs/paper_results.csv) beside ours
 *   <out>/report.html                one page over every dataset: the tables, charts, a heatmap gallery and the
 *                                details of every unit (report_html.h)
 * Conventions: numbers in %, mean ± std over seeds with the population std (numpy's np.std); image metrics come
 * from the cls task and pixel metrics from the seg task, as in the paper (the other task when only one ran, marked
 * in the header); the dataset mean is, per seed, the mean over classes, then mean ± std over the seeds that every
 * class has (the mean of the class means without std when no seed is common). */
#ifndef PAD_EVAL_REPORT_H
#define PAD_EVAL_REPORT_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

// Reads every unit under dirs[0..n_dirs) and writes the summary files of each dataset found into out_dir (created
// if needed). A unit present in two folders is taken from the first (warning). paper_csv may be NULL (no paper
// columns) or a path that does not exist (warning, no paper columns). When md_out is not NULL it receives the
// concatenated Markdown of all datasets (malloc'd; caller frees). *n_units (optional) receives the units read.
// Errors: an unreadable folder or a malformed metrics.json (PAD_ERR_FORMAT naming the file), a write failure.
// No unit at all is not an error (a warning; nothing is written).
pad_status pad_report_write(const char *const *dirs, int n_dirs, const char *out_dir, const char *paper_csv,
                            char **md_out, int *n_units);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_REPORT_H
