/* fuzz_common.h - helpers shared by the libFuzzer targets of tests/fuzz: a silent log sink (messages are still
 * formatted, so every format string of an error path runs), one OpenMP thread, a private scratch folder, writing the
 * input to a file for the parsers that take a path, and the LLVMFuzzerInitialize of the targets that need nothing
 * more. Header-only: each target is one translation unit. */
#ifndef PAD_FUZZ_COMMON_H
#define PAD_FUZZ_COMMON_H

#include "promptad.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_fuzz_dir[256];

static inline void fuzz_quiet_sink(pad_log_level level, const char *msg, void *user_data) {
    (void)level;
    (void)user_data;
    volatile size_t n = strlen(msg); // touch the message: a bad format would show up here under ASan
    (void)n;
}

static inline void fuzz_remove_dir(void) {
    if (!g_fuzz_dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", g_fuzz_dir);
}

// Silences the log and creates the scratch folder (removed at exit). Call from LLVMFuzzerInitialize.
static inline void fuzz_setup(void) {
    pad_log_set(fuzz_quiet_sink, NULL);
    setenv("OMP_NUM_THREADS", "1", 0); // before the first parallel region: one input at a time, no thread pool
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0]) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(g_fuzz_dir, sizeof g_fuzz_dir, "%s/pad_fuzz_XXXXXX", tmp);
    if (!mkdtemp(g_fuzz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fuzz_remove_dir);
}

// The LLVMFuzzerInitialize of a target that needs nothing but fuzz_setup.
#define FUZZ_INITIALIZE_WITH_SETUP()                                                                                   \
    int LLVMFuzzerInitialize(int *argc, char ***argv) {                                                                \
        (void)argc;                                                                                                    \
        (void)argv;                                                                                                    \
        fuzz_setup();                                                                                                  \
        return 0;                                                                                                      \
    }

// Path of `name` inside the scratch folder (static buffer, one per call site is enough for the targets).
static inline const char *fuzz_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_fuzz_dir, name);
    return buf;
}

// Writes n bytes to path (replacing it); aborts on an I/O error (a broken harness, not a finding).
static inline void fuzz_write(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp || (n && fwrite(data, 1, n, fp) != n) || fclose(fp) != 0) {
        perror(path);
        abort();
    }
}

// Writes the input to the scratch file `name` and returns its path (a static buffer: one input file per target).
static inline const char *fuzz_input_file(const char *name, const uint8_t *data, size_t n) {
    static char path[300];
    fuzz_path(path, sizeof path, name);
    fuzz_write(path, data, n);
    return path;
}

// A NUL-terminated copy of the input (the text parsers take C strings). Free with free().
static inline char *fuzz_strdup(const uint8_t *data, size_t n) {
    char *s = (char *)malloc(n + 1);
    if (!s) abort();
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

#endif // PAD_FUZZ_COMMON_H
