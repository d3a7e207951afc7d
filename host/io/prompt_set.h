/* prompt_set.h - PromptAD prompt sets: the manual anomaly states ("damaged {}", "{} with crack", ...) and the text
 * name of each class, read from YAML files (configs/prompts/<set>.yaml) with libcyaml.
 *
 * File format:
 *     name: official                      # the set's name (required)
 *     description: ...                    # optional
 *     generic: ["damaged {}", ...]        # states used for every class (may be empty)
 *     classes:                            # at least one
 *       - key: metal_nut                  # the dataset's class key (unique in the set)
 *         name: metal nut                 # optional: the text that replaces "{}" (default: the key)
 *         states: ["{} with scratch", ...]
 * Every state contains "{}" exactly once and no other brace. A class's states are the generic states followed by
 * its own (promptad_spec.md §3.3: state_anomaly + class_state_abnormal[key]); duplicates are kept.
 *
 * Limits (a set is a small hand-written file; anything beyond them is refused with an error naming the file):
 * PAD_PROMPT_SET_MAX_BYTES per file, PAD_PROMPT_SET_MAX_CLASSES classes, PAD_PROMPT_SET_MAX_STATES states in the
 * generic list and in each class's list, PAD_PROMPT_SET_MAX_STATE_LEN bytes per state, PAD_PROMPT_SET_MAX_NAME bytes
 * per set name, class key and class name. YAML aliases (&a / *a) are refused, as in the run configuration, and so
 * are an empty (blank or comment-only) file and a second YAML document. CR and CRLF line endings are read as LF.
 *
 * Sets shipped: official (the official code's lists, the default), paper (the supplementary Figure 1), mpdd, loco.
 */
#ifndef PAD_HOST_PROMPT_SET_H
#define PAD_HOST_PROMPT_SET_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_PROMPT_SET_MAX_BYTES     (1 << 20)
#define PAD_PROMPT_SET_MAX_CLASSES   1024
#define PAD_PROMPT_SET_MAX_STATES    256
#define PAD_PROMPT_SET_MAX_STATE_LEN 256
#define PAD_PROMPT_SET_MAX_NAME      128

typedef struct pad_prompt_set pad_prompt_set;

// One class of a set. Pointers are owned by the set.
typedef struct pad_prompt_class {
    const char *key;           // dataset class key ("metal_nut")
    const char *name;          // text for "{}" ("metal nut")
    const char *const *states; // (n_states) generic states, then the class's own
    int n_states;
} pad_prompt_class;

// Loads and validates a prompt-set file. Errors name the file and the problem (YAML error with libcyaml's
// location, missing field, a state without exactly one "{}", a duplicate class key). On success *out owns the set.
pad_status pad_prompt_set_load(pad_prompt_set **out, const char *path);

// Resolves a set name or path and loads it. `name_or_path` is a path when it contains '/' or ends in ".yaml" /
// ".yml"; otherwise <name>.yaml is searched in $PROMPTAD_PROMPTS_DIR, ./configs/prompts, <dir of the executable>/
// ../configs/prompts and the source tree's configs/prompts (in that order). An unknown name logs where it looked
// and the sets found there.
pad_status pad_prompt_set_open(pad_prompt_set **out, const char *name_or_path);

void pad_prompt_set_free(pad_prompt_set *s); // NULL is a no-op

const char *pad_prompt_set_name(const pad_prompt_set *s);
const char *pad_prompt_set_path(const pad_prompt_set *s); // the file it was loaded from
int pad_prompt_set_n_classes(const pad_prompt_set *s);
// Class i in file order (0 <= i < n_classes).
pad_prompt_class pad_prompt_set_class_at(const pad_prompt_set *s, int i);

// Looks up a class by key. An unknown key returns PAD_ERR_INVALID_ARG and logs one line naming the set and listing
// its classes (and the other shipped sets that contain the key, if any).
pad_status pad_prompt_set_class(const pad_prompt_set *s, const char *key, pad_prompt_class *out);

// Formats state `state` (with its one "{}") for class name `name` into buf. Returns false when it does not fit.
bool pad_prompt_format_state(char *buf, size_t cap, const char *state, const char *name);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_PROMPT_SET_H
