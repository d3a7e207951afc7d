/* unit_dir.c - where a unit of the run lives and whether it is finished: its folder
 * <output.dir>/<dataset>/<class>/k<k>/seed<s>/<task> is finished when its metrics.json (written last) parses, has
 * this run's config hash, and every file it lists is there with the size written (safetensors files open, scores.csv
 * holds every test image); the hidden temporary folder a unit is written into and the rename that commits it; and
 * the clean-up of temporary folders left by interrupted runs. */
#include "run_internal.h"

#include "claim.h"
#include "fsutil.h"
#include "log.h"
#include "st_file.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

// Lines after the header of a CSV file, or -1 when it cannot be read or has no header line.
static long csv_rows(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    long lines = 0;
    int c, last = '\n';
    while ((c = getc(fp)) != EOF) {
        if (c == '\n') lines++;
        last = c;
    }
    fclose(fp);
    if (last != '\n') return -1; // cut inside a line
    return lines - 1;
}

// Checks one file of a finished unit: present, of the recorded size (size < 0: not recorded), and readable as what
// it is (safetensors open, CSV rows). why receives "<name> is missing" etc.
static bool unit_file_ok(const char *dir, const char *name, double size, int n_test, char *why, size_t cap) {
    char p[PATH_CAP];
    pad_path_join(p, sizeof p, dir, name);
    struct stat sb;
    if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, cap, "%s is missing", name);
        return false;
    }
    if (size >= 0 && (double)sb.st_size != size) {
        snprintf(why, cap, "%s has %lld bytes, %.0f were written", name, (long long)sb.st_size, size);
        return false;
    }
    size_t len = strlen(name);
    if (len > 12 && strcmp(name + len - 12, ".safetensors") == 0) {
        pad_log_level lv = pad_log_get_level();
        pad_log_set_level(PAD_LOG_LEVEL_ERROR + 1); // the reason is reported by the caller, once
        pad_st_file *f = NULL;
        pad_status st = pad_st_open(&f, p);
        pad_st_close(f);
        pad_log_set_level(lv);
        if (st != PAD_OK) {
            snprintf(why, cap, "%s does not parse", name);
            return false;
        }
    }
    if (strcmp(name, "scores.csv") == 0 && n_test >= 0 && csv_rows(p) != n_test) {
        snprintf(why, cap, "scores.csv does not hold the %d test images", n_test);
        return false;
    }
    return true;
}

// Whether every file of the unit in dir is there and parses. metrics.json lists the files with their sizes
// ("files"); a unit written by a version without that list must have the three files every unit has.
static bool unit_files_ok(const char *dir, const cJSON *j, char *why, size_t cap) {
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(j, "n_test");
    int n_test = cJSON_IsNumber(nt) && nt->valuedouble >= 0 && nt->valuedouble < 1e9 ? (int)nt->valuedouble : -1;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(j, "files");
    if (!cJSON_IsObject(files)) {
        static const char *const legacy[] = {"scores.csv", "train.csv", "prompts.safetensors"};
        for (int i = 0; i < 3; i++)
            if (!unit_file_ok(dir, legacy[i], -1, n_test, why, cap)) return false;
        return true;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        if (!f->string || !cJSON_IsNumber(f) || strstr(f->string, "..") || f->string[0] == '/') {
            snprintf(why, cap, "metrics.json lists a bad file entry");
            return false;
        }
        if (!unit_file_ok(dir, f->string, f->valuedouble, n_test, why, cap)) return false;
    }
    return true;
}

unit_state run_unit_state(const run_ctx *rc, const char *cls, int k, int seed, pad_prompt_task task, char *why,
                          size_t cap) {
    char dir[PATH_CAP], p[PATH_CAP], scratch[256];
    if (!why) {
        why = scratch;
        cap = sizeof scratch;
    }
    why[0] = 0;
    run_unit_path(rc, dir, sizeof dir, cls, k, seed, pad_prompt_task_name(task));
    if (!pad_path_is_dir(dir)) return UNIT_TODO;
    pad_path_join(p, sizeof p, dir, "metrics.json");
    if (!pad_path_is_file(p)) {
        snprintf(why, cap, "metrics.json is missing");
        return UNIT_BROKEN;
    }
    char *text = NULL;
    cJSON *j = NULL;
    if (pad_read_file(p, &text, NULL) == PAD_OK) j = cJSON_Parse(text);
    free(text);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "config_hash");
    unit_state s = UNIT_DONE;
    if (!cJSON_IsString(h)) {
        snprintf(why, cap, "metrics.json does not parse (cut short?)");
        s = UNIT_BROKEN;
    } else if (strcmp(h->valuestring, rc->hash) != 0) {
        s = UNIT_MISMATCH;
    } else if (!unit_files_ok(dir, j, why, cap)) {
        s = UNIT_BROKEN;
    }
    cJSON_Delete(j);
    return s;
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

void run_remove_stale_tmp(const char *dir, bool all) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp-")) continue;
        char p[PATH_CAP];
        pad_path_join(p, sizeof p, dir, e->d_name);
        if (!all && !pad_tmp_dir_is_orphan(p)) continue; // may be another process's work in progress
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
