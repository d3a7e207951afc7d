/* unit_dir.c - where a unit of the run lives and whether it is finished: its folder
 * <output.dir>/<dataset>/<class>/k<k>/seed<s>/<task>, the config hash recorded in its metrics.json (written last,
 * so a unit either exists completely or not at all), the hidden temporary folder a unit is written into and the
 * rename that commits it, and the clean-up of temporary folders left by interrupted runs. */
#include "run_internal.h"

#include "fsutil.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void run_unit_path(const run_ctx *rc, char *out, size_t cap, const char *cls, int k, int seed, const char *leaf) {
    char ks[64];
    snprintf(ks, sizeof ks, "k%d/seed%d", k, seed);
    char a[PATH_CAP], b[PATH_CAP];
    pad_path_join(a, sizeof a, rc->ds_dir, cls);
    pad_path_join(b, sizeof b, a, ks);
    if (leaf)
        pad_path_join(out, cap, b, leaf);
    else
        snprintf(out, cap, "%s", b);
}

bool run_read_recorded_hash(const char *dir, char *hash, size_t cap) {
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, dir, "metrics.json");
    hash[0] = 0;
    if (!pad_path_is_file(p)) return false;
    char *text = NULL;
    if (pad_read_file(p, &text, NULL) != PAD_OK) return true;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "config_hash");
    if (cJSON_IsString(h) && h->valuestring) snprintf(hash, cap, "%s", h->valuestring);
    cJSON_Delete(j);
    return true;
}

unit_state run_unit_state(const run_ctx *rc, const char *cls, int k, int seed, pad_prompt_task task) {
    char dir[PATH_CAP], hash[64];
    run_unit_path(rc, dir, sizeof dir, cls, k, seed, pad_prompt_task_name(task));
    if (!run_read_recorded_hash(dir, hash, sizeof hash)) return UNIT_TODO;
    return strcmp(hash, rc->hash) == 0 ? UNIT_DONE : UNIT_MISMATCH;
}

bool run_model_is_current(const run_ctx *rc, const char *cls, int k, int seed) {
    char dir[PATH_CAP], p[PATH_CAP];
    run_unit_path(rc, dir, sizeof dir, cls, k, seed, "model");
    pad_path_join(p, sizeof p, dir, "model.json");
    if (!pad_path_is_file(p)) return false;
    char *text = NULL;
    if (pad_read_file(p, &text, NULL) != PAD_OK) return false;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "config_hash");
    bool ok = cJSON_IsString(h) && strcmp(h->valuestring, rc->hash) == 0;
    // the model must hold every task that has a finished unit
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
    for (int t = 0; t < PAD_N_TASKS && ok; t++) {
        if (!(rc->cfg->run.tasks & (1 << t))) continue;
        bool has = false;
        const cJSON *it;
        cJSON_ArrayForEach(it, tasks) has =
            has || (cJSON_IsString(it) && strcmp(it->valuestring, pad_prompt_task_name(t)) == 0);
        ok = has;
    }
    cJSON_Delete(j);
    return ok;
}

// Removes temporary folders ".<leaf>.tmp-<pid>" of processes that no longer exist under dir.
void run_remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *t = strstr(e->d_name, ".tmp-");
        if (e->d_name[0] != '.' || !t) continue;
        long pid = strtol(t + 5, NULL, 10);
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) continue; // alive
        char p[PATH_CAP];
        pad_path_join(p, sizeof p, dir, e->d_name);
        PAD_LOG_INFO("%s: removing the partial results of an interrupted run", p);
        pad_remove_tree(p);
    }
    closedir(d);
}

// Renames the finished temporary folder tmp onto final (replacing an older one).
pad_status run_commit_dir(const char *tmp, const char *final) {
    if (pad_path_is_dir(final)) {
        // moved aside under a hidden temporary name (".<name>.tmp-<pid>.old"), removed once the new one is in place
        char old[PATH_CAP + 160];
        snprintf(old, sizeof old, "%s.old", tmp);
        if (rename(final, old) != 0) {
            PAD_LOG_ERROR("%s: cannot move the previous results aside: %s", final, strerror(errno));
            return PAD_ERR_IO;
        }
        if (rename(tmp, final) != 0) {
            PAD_LOG_ERROR("%s: cannot move the new results into place: %s", final, strerror(errno));
            rename(old, final);
            return PAD_ERR_IO;
        }
        pad_remove_tree(old);
        return PAD_OK;
    }
    if (rename(tmp, final) != 0) {
        PAD_LOG_ERROR("%s: cannot move the results into place: %s", final, strerror(errno));
        return PAD_ERR_IO;
    }
    return PAD_OK;
}

// The temporary sibling of final: <parent>/.<name>.tmp-<pid>
void run_tmp_sibling(char *out, size_t cap, const char *final) {
    const char *slash = strrchr(final, '/');
    if (slash)
        snprintf(out, cap, "%.*s/.%s.tmp-%ld", (int)(slash - final), final, slash + 1, (long)getpid());
    else
        snprintf(out, cap, ".%s.tmp-%ld", final, (long)getpid());
}
