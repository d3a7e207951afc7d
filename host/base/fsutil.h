/* fsutil.h - small file-system helpers of the eval code (results folders of `promptad run`): mkdir -p, whole-file
 * reads, atomic writes (temporary file + rename), recursive removal, CSV fields. Every failure logs one line naming the
 * path. */
#ifndef PAD_EVAL_FSUTIL_H
#define PAD_EVAL_FSUTIL_H

#include "promptad.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// Creates `path` and its missing parents (mode 0777 & ~umask). PAD_ERR_IO when a component cannot be created or
// exists and is not a folder.
pad_status pad_mkdir_p(const char *path);

bool pad_path_is_dir(const char *path);
bool pad_path_is_file(const char *path);

// Reads a whole file into a malloc'd NUL-terminated buffer (*n excludes the NUL; n may be NULL).
pad_status pad_read_file(const char *path, char **out, size_t *n);

// Writes n bytes to `path` atomically: a temporary file in the same folder is written, flushed and renamed onto
// path, so readers see the old file or the new one, never a part.
pad_status pad_write_file_atomic(const char *path, const void *data, size_t n);

// Removes a file or a folder tree (no error when it does not exist). Symbolic links are removed, not followed.
pad_status pad_remove_tree(const char *path);

// out = a + "/" + b (b may contain further slashes). Returns false (out truncated, still NUL-terminated) when it does
// not fit in cap.
bool pad_path_join(char *out, size_t cap, const char *a, const char *b);

// Writes s to fp as one CSV field: as is, or quoted (inner quotes doubled) when it holds a comma, quote or newline.
void pad_csv_field(FILE *fp, const char *s);

// Seconds on a monotonic clock.
double pad_now(void);

// Resolves a file that ships with promptad (e.g. "configs/paper_results.csv"): `rel` itself when it exists
// (relative to the working directory, or absolute), else <dir of the executable>/../<rel>. Writes the chosen path
// (rel itself when neither exists, so the caller's error names it) and returns whether it exists.
bool pad_resolve_data_path(const char *rel, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_FSUTIL_H
