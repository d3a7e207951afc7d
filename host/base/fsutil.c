/* fsutil.c - the file-system helpers of fsutil.h. */
#include "fsutil.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

pad_status pad_mkdir_p(const char *path) {
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) {
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            PAD_LOG_ERROR("%s: cannot create folder: %s", p, strerror(errno));
            free(p);
            return PAD_ERR_IO;
        }
        p[i] = c;
    }
    bool ok = pad_path_is_dir(path);
    if (!ok) PAD_LOG_ERROR("%s: exists and is not a folder", path);
    free(p);
    return ok ? PAD_OK : PAD_ERR_IO;
}

bool pad_path_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool pad_path_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

pad_status pad_read_file(const char *path, char **out, size_t *n) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            char *t = realloc(buf, cap * 2);
            if (!t) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = t;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - 1 - len, fp);
        len += r;
        if (r == 0) break;
    }
    bool err = ferror(fp) != 0;
    fclose(fp);
    if (!buf) {
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    if (err) {
        free(buf);
        PAD_LOG_ERROR("%s: read error", path);
        return PAD_ERR_IO;
    }
    buf[len] = 0;
    *out = buf;
    if (n) *n = len;
    return PAD_OK;
}

pad_status pad_write_file_atomic(const char *path, const void *data, size_t n) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp) {
        PAD_LOG_ERROR("%s: out of memory", path);
        return PAD_ERR_OOM;
    }
    snprintf(tmp, pl + 32, "%s.tmp%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        PAD_LOG_ERROR("%s: cannot write: %s", tmp, strerror(errno));
        free(tmp);
        return PAD_ERR_IO;
    }
    bool ok = fwrite(data, 1, n, fp) == n;
    ok = fflush(fp) == 0 && ok;
    ok = fclose(fp) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        PAD_LOG_ERROR("%s: cannot write: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return PAD_ERR_IO;
    }
    free(tmp);
    return PAD_OK;
}

pad_status pad_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? PAD_OK : PAD_ERR_IO;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            PAD_LOG_ERROR("%s: cannot open folder: %s", path, strerror(errno));
            return PAD_ERR_IO;
        }
        struct dirent *e;
        pad_status st = PAD_OK;
        size_t pl = strlen(path);
        while ((e = readdir(d)) != NULL && st == PAD_OK) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            size_t cap = pl + strlen(e->d_name) + 2;
            char *child = malloc(cap);
            if (!child) {
                st = PAD_ERR_OOM;
                break;
            }
            snprintf(child, cap, "%s/%s", path, e->d_name);
            st = pad_remove_tree(child);
            free(child);
        }
        closedir(d);
        if (st != PAD_OK) return st;
        if (rmdir(path) != 0) {
            PAD_LOG_ERROR("%s: cannot remove folder: %s", path, strerror(errno));
            return PAD_ERR_IO;
        }
        return PAD_OK;
    }
    if (unlink(path) != 0) {
        PAD_LOG_ERROR("%s: cannot remove: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    return PAD_OK;
}

double pad_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool pad_path_join(char *out, size_t cap, const char *a, const char *b) {
    if (!cap) return false;
    size_t la = strlen(a), lb = strlen(b);
    bool fits = la + 1 + lb < cap;
    if (la >= cap) la = cap - 1;
    memmove(out, a, la);
    size_t n = la;
    if (n + 1 < cap) out[n++] = '/';
    if (lb > cap - 1 - n) lb = cap - 1 - n;
    memmove(out + n, b, lb);
    out[n + lb] = 0;
    return fits;
}

void pad_csv_field(FILE *fp, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', fp);
        fputc(*p, fp);
    }
    fputc('"', fp);
}

bool pad_resolve_data_path(const char *rel, char *out, size_t cap) {
    if (access(rel, R_OK) == 0 || rel[0] == '/') {
        snprintf(out, cap, "%s", rel);
        return access(rel, R_OK) == 0;
    }
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[k > 0 ? k : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
        *slash = 0;
        char cand[8192];
        snprintf(cand, sizeof cand, "%s/../%s", exe, rel);
        if (access(cand, R_OK) == 0) {
            snprintf(out, cap, "%s", cand);
            return true;
        }
    }
    snprintf(out, cap, "%s", rel);
    return false;
}
