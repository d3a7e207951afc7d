/* feature_cache.c - the on-disk feature cache of feature_cache.h. */
#include "feature_cache.h"

#include "fsutil.h"
#include "log.h"
#include "st_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FC_PATH_CAP 4096

struct pad_fcache {
    char dir[FC_PATH_CAP];
    bool enabled;
    bool warned_corrupt, warned_write;
    pad_fcache_stats stats;
};

pad_status pad_fcache_open(pad_fcache **out, const char *dir) {
    *out = calloc(1, sizeof **out);
    if (!*out) return PAD_ERR_OOM;
    if (dir && dir[0] && strcmp(dir, "none") != 0 && strlen(dir) < FC_PATH_CAP - 128) {
        snprintf((*out)->dir, sizeof(*out)->dir, "%s", dir);
        (*out)->enabled = true;
    }
    return PAD_OK;
}

void pad_fcache_free(pad_fcache *c) {
    free(c);
}

bool pad_fcache_enabled(const pad_fcache *c) {
    return c && c->enabled;
}

pad_fcache_stats pad_fcache_get_stats(const pad_fcache *c) {
    pad_fcache_stats z = {0};
    return c ? c->stats : z;
}

pad_status pad_fcache_hash_file(const char *path, uint64_t *hash) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot read: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    uint64_t h = 0xCBF29CE484222325ull;
    unsigned char buf[1 << 16];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, fp)) > 0)
        for (size_t i = 0; i < k; i++) {
            h ^= buf[i];
            h *= 0x100000001B3ull;
        }
    bool err = ferror(fp) != 0;
    fclose(fp);
    if (err) {
        PAD_LOG_ERROR("%s: read error", path);
        return PAD_ERR_IO;
    }
    *hash = h;
    return PAD_OK;
}

// <dir>/<space>/<hh>/<hash>.safetensors; with folder, the folder only.
static void entry_path(const pad_fcache *c, const pad_fcache_space *sp, uint64_t hash, char *out, size_t cap,
                       bool folder) {
    static const char *const prep[] = {"squash", "openclip", "official"};
    const char *pm = sp->preprocess >= 0 && sp->preprocess < 3 ? prep[sp->preprocess] : "p";
    char space[256];
    snprintf(space, sizeof space, "w%016llx-%s-%s-t%d_%d-E%d-P%d-D%d%s", (unsigned long long)sp->weights_fp, pm,
             sp->bgr ? "bgr" : "rgb", sp->taps[0], sp->taps[1], sp->E, sp->P, sp->D, sp->quick_gelu ? "-qgelu" : "");
    int k = folder ? snprintf(out, cap, "%s/%s/%02x", c->dir, space, (unsigned)(hash >> 56))
                   : snprintf(out, cap, "%s/%s/%02x/%016llx.safetensors", c->dir, space, (unsigned)(hash >> 56),
                              (unsigned long long)hash);
    if (k < 0 || (size_t)k >= cap) out[0] = 0; // cannot happen: dir is shorter than cap - 128 (pad_fcache_open)
}

bool pad_fcache_get(pad_fcache *c, const pad_fcache_space *sp, uint64_t hash, float *cls, float *tok, float *mid1,
                    float *mid2) {
    if (!pad_fcache_enabled(c)) return false;
    char p[FC_PATH_CAP];
    entry_path(c, sp, hash, p, sizeof p, false);
    if (!pad_path_is_file(p)) {
        c->stats.misses++;
        return false;
    }
    // a bad entry must not stop the run: its errors are collected quietly and reported once below
    pad_log_level lvl = pad_log_get_level();
    pad_log_set_level((pad_log_level)(PAD_LOG_LEVEL_ERROR + 1));
    pad_st_file *f = NULL;
    pad_status st = pad_st_open(&f, p);
    const int64_t E = sp->E, P = sp->P, D = sp->D;
    if (st == PAD_OK) st = pad_st_read_f32_into(f, "cls", 1, (int64_t[]){E}, cls, E);
    if (st == PAD_OK) st = pad_st_read_f32_into(f, "tok", 2, (int64_t[]){P, E}, tok, P * E);
    if (st == PAD_OK) st = pad_st_read_f32_into(f, "mid1", 2, (int64_t[]){P, D}, mid1, P * D);
    if (st == PAD_OK) st = pad_st_read_f32_into(f, "mid2", 2, (int64_t[]){P, D}, mid2, P * D);
    pad_st_close(f);
    pad_log_set_level(lvl);
    if (st != PAD_OK) {
        c->stats.corrupt++;
        c->stats.misses++;
        if (!c->warned_corrupt)
            PAD_LOG_WARN("%s: a damaged feature-cache entry (%s); recomputing it (further damaged entries are "
                         "recomputed silently)",
                         p, pad_status_str(st));
        c->warned_corrupt = true;
        return false;
    }
    c->stats.hits++;
    return true;
}

void pad_fcache_put(pad_fcache *c, const pad_fcache_space *sp, uint64_t hash, const float *cls, const float *tok,
                    const float *mid1, const float *mid2) {
    if (!pad_fcache_enabled(c)) return;
    char dir[FC_PATH_CAP], p[FC_PATH_CAP];
    entry_path(c, sp, hash, dir, sizeof dir, true);
    entry_path(c, sp, hash, p, sizeof p, false);
    const int64_t E = sp->E, P = sp->P, D = sp->D;
    pad_st_writer *w = NULL;
    pad_status st = pad_mkdir_p(dir);
    if (st == PAD_OK) st = pad_st_writer_init(&w);
    if (st == PAD_OK) st = pad_st_writer_add_f32(w, "cls", 1, (int64_t[]){E}, cls);
    if (st == PAD_OK) st = pad_st_writer_add_f32(w, "tok", 2, (int64_t[]){P, E}, tok);
    if (st == PAD_OK) st = pad_st_writer_add_f32(w, "mid1", 2, (int64_t[]){P, D}, mid1);
    if (st == PAD_OK) st = pad_st_writer_add_f32(w, "mid2", 2, (int64_t[]){P, D}, mid2);
    if (st == PAD_OK) st = pad_st_writer_save(w, p);
    pad_st_writer_free(w);
    if (st == PAD_OK) {
        c->stats.written++;
        return;
    }
    if (!c->warned_write)
        PAD_LOG_WARN("feature cache %s: cannot write (%s); going on without the cache", c->dir, pad_status_str(st));
    c->warned_write = true;
    c->enabled = false;
}
