/* claim.c - claims (fcntl record locks on lock files) and owner records; the rules are in claim.h. */
#include "claim.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool g_warned_nolock = false;

pad_status pad_claim_acquire(pad_claim *c, const char *path, bool wait, bool *got) {
    *got = false;
    c->fd = -1;
    c->unlocked = false;
    if (snprintf(c->path, sizeof c->path, "%s", path) >= (int)sizeof c->path) {
        PAD_LOG_ERROR("%s: path too long for a lock file", path);
        return PAD_ERR_INVALID_ARG;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        PAD_LOG_ERROR("%s: cannot open the lock file: %s", path, strerror(errno));
        return PAD_ERR_IO;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET; // l_start = l_len = 0: the whole file, however long it grows
    int r;
    do
        r = fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        int e = errno;
        if (e == EACCES || e == EAGAIN) { // held by another process
            close(fd);
            return PAD_OK;
        }
        if (e != ENOLCK && e != EOPNOTSUPP && e != ENOSYS && e != EINVAL) {
            PAD_LOG_ERROR("%s: cannot lock: %s", path, strerror(e));
            close(fd);
            return PAD_ERR_IO;
        }
        if (!g_warned_nolock)
            PAD_LOG_WARN("%s: this file system does not support locks (%s): runs sharing this folder may repeat each "
                         "other's work",
                         path, strerror(e));
        g_warned_nolock = true;
        c->unlocked = true;
    }
    char rec[512];
    pad_owner_self(rec, sizeof rec);
    size_t n = strlen(rec);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, rec, n, 0) != (ssize_t)n) // informative only: failures are harmless
        PAD_LOG_DEBUG("%s: cannot record the owner: %s", path, strerror(errno));
    c->fd = fd;
    *got = true;
    return PAD_OK;
}

void pad_claim_release(pad_claim *c) {
    if (!c || c->fd < 0) return;
    close(c->fd); // drops the lock (all of this process's locks on the file: it is opened once per claim)
    c->fd = -1;
    c->unlocked = false;
}

// ----------------------------------------------------------------------------
// Owner records

static void read_line(const char *path, char *buf, size_t cap) {
    buf[0] = 0;
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    if (!fgets(buf, (int)cap, fp)) buf[0] = 0;
    fclose(fp);
    buf[strcspn(buf, "\n")] = 0;
}

// Field 22 (starttime) of /proc/<pid>/stat, or 0 when the process does not exist. The command name (field 2) is
// in parentheses and may hold spaces and parentheses: fields are counted after its last ')'.
static unsigned long long start_time(long pid) {
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    FILE *fp = fopen(p, "r");
    if (!fp) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    const char *s = strrchr(buf, ')');
    if (!s) return 0;
    s++;
    for (int field = 3; field < 22; field++) { // s is before field 3
        s = strchr(s + 1, ' ');
        if (!s) return 0;
    }
    return strtoull(s + 1, NULL, 10);
}

static void host_name(char *buf, size_t cap) {
    if (gethostname(buf, cap) != 0) snprintf(buf, cap, "?");
    buf[cap - 1] = 0;
    for (char *p = buf; *p; p++) // one token in the record
        if (*p == ' ' || *p == '\n' || *p == '=') *p = '_';
}

void pad_owner_self(char *buf, size_t cap) {
    char host[256], boot[64];
    host_name(host, sizeof host);
    read_line("/proc/sys/kernel/random/boot_id", boot, sizeof boot);
    long pid = (long)getpid();
    snprintf(buf, cap, "host=%s boot=%s pid=%ld start=%llu\n", host, boot[0] ? boot : "?", pid, start_time(pid));
}

bool pad_owner_is_gone(const char *record) {
    char host[256] = "", boot[64] = "";
    long pid = 0;
    unsigned long long start = 0;
    if (sscanf(record, "host=%255s boot=%63s pid=%ld start=%llu", host, boot, &pid, &start) != 4 || pid <= 0)
        return false;
    char me[256], my_boot[64];
    host_name(me, sizeof me);
    if (strcmp(host, me) != 0) return false; // another machine: cannot tell
    read_line("/proc/sys/kernel/random/boot_id", my_boot, sizeof my_boot);
    if (!my_boot[0] || strcmp(boot, "?") == 0) return false;
    if (strcmp(boot, my_boot) != 0) return true; // written before a reboot
    unsigned long long now = start_time(pid);
    return now == 0 || now != start; // no such process, or the pid now belongs to another one
}

pad_status pad_owner_write(const char *dir) {
    char p[4200], rec[512];
    snprintf(p, sizeof p, "%s/.owner", dir);
    pad_owner_self(rec, sizeof rec);
    FILE *fp = fopen(p, "w");
    if (!fp || fputs(rec, fp) < 0 || fclose(fp) != 0) {
        PAD_LOG_ERROR("%s: cannot write: %s", p, strerror(errno));
        return PAD_ERR_IO;
    }
    return PAD_OK;
}

bool pad_tmp_dir_is_orphan(const char *dir) {
    char p[4200], rec[512];
    snprintf(p, sizeof p, "%s/.owner", dir);
    read_line(p, rec, sizeof rec);
    if (rec[0]) return pad_owner_is_gone(rec);
    const char *t = strstr(dir, ".tmp-");
    if (!t) return false;
    long pid = strtol(t + 5, NULL, 10);
    return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}
