/* run_api.c - pad_run_config_file of the public API (promptad.h): `promptad run --config FILE --set ...` as one call,
 * for programs and the Python package. */
#include "promptad.h"

#include "config.h"
#include "log.h"
#include "run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pad_status pad_run_config_file(const char *config_path, const char *const *overrides, int n_overrides,
                               char *results_dir, size_t cap) {
    if (results_dir && cap) results_dir[0] = 0;
    if (!config_path || n_overrides < 0 || (n_overrides > 0 && !overrides)) {
        PAD_LOG_ERROR("pad_run_config_file: bad arguments (a config path and n_overrides >= 0 overrides)");
        return PAD_ERR_INVALID_ARG;
    }
    pad_run_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return PAD_ERR_OOM;
    pad_run_config_default(cfg);
    pad_status st = pad_run_config_load(cfg, config_path);
    for (int i = 0; i < n_overrides && st == PAD_OK; i++) {
        if (!overrides[i]) {
            PAD_LOG_ERROR("pad_run_config_file: override %d is NULL", i);
            st = PAD_ERR_INVALID_ARG;
        } else {
            st = pad_run_config_set(cfg, overrides[i]);
        }
    }
    if (st == PAD_OK) st = pad_run_config_finalize(cfg);
    if (st == PAD_OK) {
        pad_run_opts ro;
        memset(&ro, 0, sizeof ro);
        pad_run_result res;
        memset(&res, 0, sizeof res);
        st = pad_run(cfg, &ro, &res);
        if (results_dir && cap) snprintf(results_dir, cap, "%s", res.results_dir);
        free(res.summary_md);
    }
    free(cfg);
    return st;
}
