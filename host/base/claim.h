/* claim.h - exclusive claims on a piece of work shared through a folder (several `promptad run` processes, possibly
 * on several machines, writing into one results folder), and owner records that tell whether the process that left
 * a temporary file behind is gone.
 *
 * A claim is a POSIX record lock (fcntl F_SETLK, write lock on the whole file) on a small lock file that is never
 * deleted (deleting lock files opens races). The kernel drops the lock when the process exits in any way, a crash or
 * SIGKILL included, so a claim can never go stale on a local file system. On NFS the lock goes through the NFS lock
 * protocol (NLM for NFSv3, built into NFSv4): it works across clients and is recovered by the server when a client
 * dies (after its lease, about 90 s on NFSv4). It does NOT protect anything when the share is mounted with `nolock`
 * or `local_lock=all|posix` (locks are then local to each client), nor on file systems without locks: where the lock
 * call fails with ENOLCK / EOPNOTSUPP the claim is taken anyway with one warning (work may then be duplicated, never
 * corrupted: every result is still written into a temporary folder and renamed into place). flock() is not used: on
 * some NFS setups it is emulated locally.
 *
 * The lock file holds the owner record of the holder (for people looking at a stuck run). */
#ifndef PAD_BASE_CLAIM_H
#define PAD_BASE_CLAIM_H

#include "promptad.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pad_claim {
    int fd;         // -1 when not held
    bool unlocked;  // held without a lock (the file system has none; see above)
    char path[512]; // the lock file
} pad_claim;

#define PAD_CLAIM_INIT                                                                                                 \
    { -1, false, "" }

// Takes the claim of lock file `path` (created, mode 0666 & ~umask, when missing). wait = false: *got is false and
// PAD_OK is returned at once when another process holds it; wait = true: blocks until it is free. On success with
// *got, the claim must be released with pad_claim_release. Errors (the folder or file cannot be created or opened):
// PAD_ERR_IO, logged with the path.
pad_status pad_claim_acquire(pad_claim *c, const char *path, bool wait, bool *got);
// Releases a held claim (closes the lock file; the file stays). A claim not held is a no-op.
void pad_claim_release(pad_claim *c);

// This process's owner record: "host=<hostname> boot=<boot id> pid=<pid> start=<start time>\n", where the boot id
// comes from /proc/sys/kernel/random/boot_id and the start time is field 22 of /proc/<pid>/stat (clock ticks after
// boot). Together they name one process of one boot of one machine, whatever PIDs are reused (a container's main
// process is PID 1 in every container).
void pad_owner_self(char *buf, size_t cap);
// Whether the process named by an owner record no longer exists: the record is of this machine and either of
// another boot, or no process with its pid has its start time now. A record of another machine, or one that does
// not parse, is never called stale (we cannot tell); PID 1 is not special.
bool pad_owner_is_gone(const char *record);
// Writes this process's owner record to <dir>/.owner (a temporary folder says who is writing it).
pad_status pad_owner_write(const char *dir);
// Whether the temporary folder dir was left by a process that is gone: its .owner record says so, or, for a folder
// without one (older versions), the pid at the end of its name ("...tmp-<pid>") is not a live process.
bool pad_tmp_dir_is_orphan(const char *dir);

#ifdef __cplusplus
}
#endif

#endif // PAD_BASE_CLAIM_H
