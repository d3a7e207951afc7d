/* synth.h - a deterministic synthetic anomaly-detection dataset in MVTec AD layout (`promptad synth`,
 * cli_contract.md): for demos, smoke tests and end-to-end checks without downloading a benchmark.
 *
 * Classes cycle through four kinds; the first four are named after them, later ones get a suffix ("weave_2"):
 *   weave  a woven texture (alternating horizontal / vertical thread blocks)  defects: scratch, stain, hole
 *   grid   dark grid lines on a light ground                                   defects: broken, color, scratch
 *   nut    a hexagonal nut with a round hole on a dark ground                  defects: crack, missing, spot
 *   screw  a threaded screw with a head on a light ground                      defects: cut, scratch, spot
 * Normal variation: a per-class colour jitter (from the seed), and per image a texture phase shift or an object
 * shift and rotation (15° steps), a global brightness offset and pixel noise. Defects are drawn shapes (thick line
 * segments, irregular blobs, rectangles) that tint, paint or erase (paint the background over) the image; the
 * ground-truth mask is exactly the set of pixels the defect drew (0 / 255), restricted to the object for objects.
 *
 * Determinism: only integer arithmetic (eval/prng.h splitmix64 streams keyed by seed, class, split and image
 * index; fixed-point Q12 rotations), so the pixels are identical on every machine and compiler; the PNG bytes
 * are stb's encoding of those pixels (libstb, default settings). */
#ifndef PAD_EVAL_SYNTH_H
#define PAD_EVAL_SYNTH_H

#include "promptad.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_SYNTH_MAX_CLASSES 16
#define PAD_SYNTH_N_TYPES     3 // defect types per class

typedef struct pad_synth_opts {
    int n_classes;   // 1 .. PAD_SYNTH_MAX_CLASSES (default 3: weave, grid, nut)
    uint64_t seed;   // default 0
    int size;        // image side in pixels, 64 .. 2048 (default 256)
    int n_train;     // train/good images per class, 1 .. 10000 (default 12)
    int n_test_good; // test/good images per class, 0 .. 10000 (default 10)
    int n_test_bad;  // defective test images per class, 0 .. 10000, spread round-robin over the 3 types (default 10)
} pad_synth_opts;

// Fills the defaults above.
void pad_synth_opts_default(pad_synth_opts *o);
// Checks the ranges above; logs one line naming the field and returns PAD_ERR_INVALID_ARG when one is off.
pad_status pad_synth_opts_check(const pad_synth_opts *o);

// The name of class `index` (0-based) into buf (e.g. "nut", "weave_2"). Returns buf.
const char *pad_synth_class_name(int index, char *buf, size_t cap);
// The name of defect type t (0 .. PAD_SYNTH_N_TYPES-1) of class `index` (static string).
const char *pad_synth_defect_type(int index, int t);

typedef enum pad_synth_split {
    PAD_SYNTH_SPLIT_TRAIN = 0,     // train/good/<i>.png
    PAD_SYNTH_SPLIT_TEST_GOOD = 1, // test/good/<i>.png
    PAD_SYNTH_SPLIT_TEST_BAD = 2,  // the i-th defective image: type i % 3, file test/<type>/<i / 3>.png
} pad_synth_split;

// Renders one image of class `cls` in memory (no file access). rgb: (size, size, 3) uint8 row-major RGB.
// mask (optional, may be NULL): (size, size) 0/255, all 0 unless split is TEST_BAD. clean (optional): the same
// image without its defect (equal to rgb for normal images). *defect_type (optional) receives the type index, or
// -1 for normal images. Errors: bad options or indices (PAD_ERR_INVALID_ARG, logged).
pad_status pad_synth_render(const pad_synth_opts *o, int cls, pad_synth_split split, int index, uint8_t *rgb,
                            uint8_t *mask, uint8_t *clean, int *defect_type);

typedef struct pad_synth_summary {
    int n_classes;
    int n_train;    // train images written, all classes
    int n_test;     // test images written (good + defective)
    int n_test_bad; // defective test images (= masks written)
} pad_synth_summary;

// Writes the dataset under out_dir (created if needed, parents included):
//   <class>/train/good/NNN.png, <class>/test/good/NNN.png, <class>/test/<type>/NNN.png,
//   <class>/ground_truth/<type>/NNN_mask.png   (NNN zero-padded to 3 digits, or to the width of the largest
//   number of that folder, so names sort like numbers)
// Each file is written under a temporary name in its folder and renamed into place, so no partial PNG is ever
// visible under its final name. A class folder that already exists and is not empty is an error (nothing is
// overwritten or deleted). Errors: PAD_ERR_INVALID_ARG (options, existing class folder), PAD_ERR_IO (cannot
// create a folder or write a file; the log line names it), PAD_ERR_OOM. sum (optional) receives the counts.
pad_status pad_synth_write(const char *out_dir, const pad_synth_opts *o, pad_synth_summary *sum);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_SYNTH_H
