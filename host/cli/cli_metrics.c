/* cli_metrics.c - `promptad metrics --in S.safetensors [--fpr-limit 0.3] --out O.json` (cli_contract.md): the
 * metrics of any method's outputs. S holds `labels` [n] (0/1), `image_scores` [n] and optionally `masks` [n,H,W]
 * (U8, > 0 = anomalous) with `maps` [n,H,W] (float pixel scores). O gets the keys of pad_metrics_write_json.
 * Exit 0 on success, 1 on bad input (the message names the file and the tensor), 2 on a usage error. Nothing
 * goes to stdout; one summary line goes to stderr. */
#include "args.h"
#include "cli.h"
#include "log.h"
#include "metrics.h"
#include "st_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Float tensors whose widening to float32 is exact (F64 is refused: rounding it could merge distinct scores).
static int is_float_exact(pad_dtype dt) {
    return dt == PAD_DTYPE_F32 || dt == PAD_DTYPE_F16 || dt == PAD_DTYPE_BF16;
}

static const pad_st_tensor *require(const pad_st_file *f, const char *name) {
    const pad_st_tensor *t = pad_st_find(f, name);
    if (!t) PAD_LOG_ERROR("%s: missing tensor '%s'", f->path, name);
    return t;
}

static int check_shape(const pad_st_file *f, const pad_st_tensor *t, int ndim, const int64_t *shape, const char *what) {
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = t->shape[d] == shape[d];
    if (!ok) {
        char want[128], got[128];
        pad_st_shape_str(want, sizeof want, ndim, shape);
        pad_st_shape_str(got, sizeof got, t->ndim, t->shape);
        PAD_LOG_ERROR("%s: %s: expected shape %s%s, got %s", f->path, t->name, want, what, got);
    }
    return ok;
}

static int check_float(const pad_st_file *f, const pad_st_tensor *t) {
    if (is_float_exact(t->dtype)) return 1;
    PAD_LOG_ERROR("%s: %s: dtype %s; expected F32 (or F16/BF16)", f->path, t->name, pad_dtype_name(t->dtype));
    return 0;
}

int pad_cli_metrics(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *lim_s = NULL;
    const pad_opt opts[] = {
        {"in", "S.safetensors", "labels [n], image_scores [n], optional masks [n,H,W] (U8) and maps [n,H,W]", &in, NULL,
         NULL, NULL},
        {"fpr-limit", "F", "FPR integration limit of the PRO metrics, in (0, 1] (default 0.3)", &lim_s, NULL, NULL,
         NULL},
        {"out", "O.json", "output JSON (written atomically)", &out, NULL, NULL, NULL},
    };
    const char *pos[1];
    int n_pos = 0;
    pad_args_result r = pad_args_parse(
        argc, argv, opts, 3, pos, 0, &n_pos, "promptad metrics --in S.safetensors [--fpr-limit F] --out O.json",
        "Image AUROC / AUPR and, with masks and maps, pixel AUROC / AUPR, the official MVTec AD AU-PRO "
        "and PromptAD's 200-threshold PRO. Undefined metrics (one class only) are null.");
    if (r != PAD_ARGS_OK) return r == PAD_ARGS_HELP ? 0 : 2;
    if (!in || !out) {
        pad_args_error(argv[0], "%s is required", in ? "--out" : "--in");
        return 2;
    }
    double limit = 0.3;
    if (lim_s && !pad_args_float(argv[0], "fpr-limit", lim_s, &limit)) return 2;
    if (!(limit > 0.0 && limit <= 1.0)) {
        pad_args_error(argv[0], "--fpr-limit: %s is not in (0, 1]", lim_s);
        return 2;
    }

    int rc = 1;
    pad_st_file *f = NULL;
    float *lab_f = NULL, *scores = NULL, *maps = NULL;
    uint8_t *labels = NULL;
    pad_metrics_gt *gt = NULL;
    if (pad_st_open(&f, in) != PAD_OK) goto done;

    const pad_st_tensor *tl = require(f, "labels"), *ts = require(f, "image_scores");
    if (!tl || !ts) goto done;
    if (tl->ndim != 1 || tl->shape[0] < 1) {
        char got[128];
        pad_st_shape_str(got, sizeof got, tl->ndim, tl->shape);
        PAD_LOG_ERROR("%s: labels: expected shape (n) with n >= 1, got %s", f->path, got);
        goto done;
    }
    const int64_t n = tl->shape[0];
    if (tl->dtype == PAD_DTYPE_F64) { // its conversion to float32 could turn 1 + 1e-12 into 1
        PAD_LOG_ERROR("%s: labels: dtype F64; expected U8 or F32 (or another integer type)", f->path);
        goto done;
    }
    if (!check_shape(f, ts, 1, &n, " like labels") || !check_float(f, ts)) goto done;
    if (pad_st_read_f32(f, "labels", 1, &n, &lab_f, NULL) != PAD_OK ||
        pad_st_read_f32(f, "image_scores", 1, &n, &scores, NULL) != PAD_OK)
        goto done;
    labels = malloc((size_t)n);
    if (!labels) goto done;
    for (int64_t i = 0; i < n; i++) {
        if (lab_f[i] != 0.0f && lab_f[i] != 1.0f) {
            PAD_LOG_ERROR("%s: labels: value %g at index %lld is not 0 or 1", f->path, (double)lab_f[i], (long long)i);
            goto done;
        }
        labels[i] = lab_f[i] != 0.0f;
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(scores[i])) {
            PAD_LOG_ERROR("%s: image_scores: value %g at index %lld is not finite", f->path, (double)scores[i],
                          (long long)i);
            goto done;
        }

    const pad_st_tensor *tm = pad_st_find(f, "masks"), *tp = pad_st_find(f, "maps");
    if ((tm != NULL) != (tp != NULL)) {
        PAD_LOG_ERROR("%s: '%s' is present without '%s'", f->path, tm ? "masks" : "maps", tm ? "maps" : "masks");
        goto done;
    }
    pad_image_metrics im;
    if (pad_metrics_image(scores, labels, n, &im) != PAD_OK) goto done;
    pad_pixel_metrics pm;
    pad_metrics_gt_info info = {0};
    if (tm) {
        if (tm->ndim != 3 || tm->shape[0] != n || tm->shape[1] < 1 || tm->shape[2] < 1 || n > INT32_MAX ||
            tm->shape[1] > INT32_MAX || tm->shape[2] > INT32_MAX) {
            char got[128];
            pad_st_shape_str(got, sizeof got, tm->ndim, tm->shape);
            PAD_LOG_ERROR("%s: masks: expected shape (%lld, H, W), got %s", f->path, (long long)n, got);
            goto done;
        }
        if (tm->dtype != PAD_DTYPE_U8 && tm->dtype != PAD_DTYPE_BOOL) {
            PAD_LOG_ERROR("%s: masks: dtype %s; expected U8 (> 0 = anomalous)", f->path, pad_dtype_name(tm->dtype));
            goto done;
        }
        if (!check_shape(f, tp, 3, tm->shape, " like masks") || !check_float(f, tp)) goto done;
        if (pad_st_read_f32(f, "maps", 3, tm->shape, &maps, NULL) != PAD_OK) goto done;
        if (pad_metrics_gt_init(&gt, tm->data, (int)n, (int)tm->shape[1], (int)tm->shape[2]) != PAD_OK) goto done;
        if (pad_metrics_pixel(gt, maps, limit, PAD_METRICS_ALL, &pm) != PAD_OK) {
            PAD_LOG_ERROR("%s: maps: cannot evaluate (see above)", f->path);
            goto done;
        }
        pad_metrics_gt_get_info(gt, &info);
    }
    if (pad_metrics_write_json(out, &im, tm ? &pm : NULL) != PAD_OK) goto done;
    if (tm)
        PAD_LOG_INFO("%s: %lld images %dx%d, %lld regions | image AUROC %.4f AUPR %.4f | pixel AUROC %.4f AUPR "
                     "%.4f PRO@%g %.4f PRO-200 %.4f -> %s",
                     in, (long long)n, info.H, info.W, (long long)info.n_regions, im.auroc, im.aupr, pm.auroc, pm.aupr,
                     limit, pm.pro, pm.pro_200, out);
    else
        PAD_LOG_INFO("%s: %lld images | image AUROC %.4f AUPR %.4f -> %s", in, (long long)n, im.auroc, im.aupr, out);
    rc = 0;
done:
    pad_metrics_gt_free(gt);
    free(maps);
    free(labels);
    free(lab_f);
    free(scores);
    pad_st_close(f);
    return rc;
}
