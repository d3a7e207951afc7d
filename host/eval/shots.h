/* shots.h - few-shot selection: which k normal train images of a class form the memory bank and the prompt
 * training set (promptad_spec.md §6.4).
 *
 * Modes (the run config's shot selection; "random" is the default, run once per seed):
 *   random        a seeded draw of k distinct images from the SORTED train listing (pad_class_data.train):
 *                     state = pad_prng_hash_str(class name) XOR (seed * 0x9E3779B97F4A7C15)   (mod 2^64)
 *                     perm  = [0, 1, ..., n_train - 1]
 *                     for i in 0 .. k-1:  j = i + pad_prng_below(&state, n_train - i);  swap(perm[i], perm[j])
 *                     shots = perm[0 .. k-1]   (in draw order)
 *                 i.e. a partial Fisher-Yates shuffle driven by splitmix64 (eval/prng.h): portable, independent
 *                 of the file system, and nested (for one seed the k=1 draw is the first shot of the k=2 draw,
 *                 which is the start of the k=4 draw). tests/ref/shots_ref.py reproduces it.
 *   sorted-index  an official fixed list (configs/official_shots/<dataset>.yaml): entry "029" selects position
 *                 29 of the sorted listing. For MVTec AD (files 000.png ... N-1.png) this is also file 029.png.
 *   basename      the same lists read as file stems, as in the WinCLIP re-implementation the lists come from:
 *                 "131" -> 131.png, "0266" -> 0266.JPG (first file of the sorted listing whose name without its
 *                 extension equals the entry).
 *   glob          the same lists read as positions in DIRECTORY order (readdir, what Python's glob returns), as the
 *                 official PromptAD code does. FILE-ORDER CAVEAT: that order depends on the file system and on how
 *                 the files were copied, so the chosen images (and the results) are machine-dependent; this mode
 *                 only exists to reproduce a given machine's official runs. For the VisA csv layout it is the
 *                 directory order of the folder holding the train images (Data/Images/Normal), not of the
 *                 VisA_pytorch copy the official code globbed.
 * The official lists hold one selection per k (k = 1, 2, 4); with them the seed changes nothing (as upstream,
 * where --seed only seeds torch). */
#ifndef PAD_EVAL_SHOTS_H
#define PAD_EVAL_SHOTS_H

#include "dataset.h"
#include "promptad.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pad_shot_select {
    PAD_SHOT_SELECT_RANDOM = 0,       // seeded draw from the sorted listing (default)
    PAD_SHOT_SELECT_SORTED_INDEX = 1, // official list, entries = positions in the sorted listing
    PAD_SHOT_SELECT_BASENAME = 2,     // official list, entries = file stems
    PAD_SHOT_SELECT_GLOB = 3,         // official list, entries = positions in directory order (machine-dependent)
} pad_shot_select;

// Parses "random", "sorted-index", "basename" or "glob". Anything else: PAD_ERR_INVALID_ARG and one error line.
pad_status pad_shot_select_parse(const char *s, pad_shot_select *out);
const char *pad_shot_select_str(pad_shot_select m); // the parsed names; never NULL

// ----------------------------------------------------------------------------
// Official fixed lists (YAML, see configs/official_shots/mvtec.yaml for the schema:
//   dataset: <name>                      optional, informative
//   classes:
//     - name: <class>
//       k1: [<entry>]                    k1 .. k8 optional; a list under kN must hold exactly N entries
//       k2: [<entry>, <entry>]
//       k4: [...]
// Entries are kept as strings (leading zeros matter for `basename`).

typedef struct pad_shot_lists pad_shot_lists; // opaque

// Loads and validates a list file. Errors: unreadable file (PAD_ERR_IO), YAML or schema errors, a kN list with
// the wrong number of entries, an empty entry, a class listed twice (PAD_ERR_FORMAT); the one log line names the
// file (and the line when the YAML parser gives one). On success *out owns the lists (pad_shot_lists_free).
pad_status pad_shot_lists_load(pad_shot_lists **out, const char *path);
void pad_shot_lists_free(pad_shot_lists *l); // NULL is a no-op
const char *pad_shot_lists_path(const pad_shot_lists *l);

// The k entries listed for (class, k): *entries points into l (valid until pad_shot_lists_free).
// Errors: class absent, or no list for this k (PAD_ERR_INVALID_ARG; the log line names the file, class and k).
pad_status pad_shot_lists_get(const pad_shot_lists *l, const char *class_name, int k, const char *const **entries);

// ----------------------------------------------------------------------------
// Selection

// The random draw alone (algorithm above): writes k distinct indices in [0, n_train) to index_out, in draw order.
// Errors: k < 1 or k > n_train (PAD_ERR_INVALID_ARG, logged with the class name).
pad_status pad_shots_draw(const char *class_name, int n_train, int k, uint64_t seed, int *index_out);

typedef struct pad_shots {
    pad_shot_select mode;
    int k;
    int *index;   // (k) positions in cls->train (the sorted listing), in selection order
    char **paths; // (k) copies of cls->train[index[i]]: the chosen files, for the run's log and its saved outputs
} pad_shots;

// Chooses k shots of cls. `seed` is used by the random mode only; `lists` (NULL allowed for random) by the others.
// Errors (PAD_ERR_INVALID_ARG unless noted; one log line naming the list file, the class and the entry, or the
// train folder): k < 1 or k > n_train, no list for (class, k), an entry that is not a non-negative integer
// (sorted-index, glob), a position >= n_train, a basename with no matching file, the same file chosen twice.
// On success *out owns index and paths (pad_shots_free); on failure *out is zeroed.
pad_status pad_shots_select(const pad_class_data *cls, int k, pad_shot_select mode, uint64_t seed,
                            const pad_shot_lists *lists, pad_shots *out);
void pad_shots_free(pad_shots *s); // frees and zeroes; NULL and zeroed structs are no-ops

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_SHOTS_H
