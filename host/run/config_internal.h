/* config_internal.h - what the files of the run configuration share (not a public header: only config.c,
 * config_keys.c and config_dump.c include it). */
#ifndef PAD_RUN_CONFIG_INTERNAL_H
#define PAD_RUN_CONFIG_INTERNAL_H

#include "config.h"

#include <stddef.h>

// run.method's names in pad_run_method order.
extern const char *const pad_cfg_method_names[PAD_RUN_N_METHODS];
// The key's entry of pad_config_keys, or NULL.
const pad_config_key *pad_cfg_find_key(const char *key);
// snprintf("%s") into dst of cap bytes; COPY(array, s) for a char array.
void pad_cfg_copy_str(char *dst, size_t cap, const char *src);
#define COPY(dst, src) pad_cfg_copy_str((dst), sizeof(dst), (src))

#endif // PAD_RUN_CONFIG_INTERNAL_H
