/* dataset.h - anomaly-detection datasets on disk: the class list of a root folder and, per class, the sorted
 * train (normal) files and the test items with their labels, defect types and ground-truth mask files
 * (promptad_spec.md §6.2, anchors.md §3.1 and §5.5). Only file listings: decoding images is host/image.c's job.
 *
 * Formats (data.format in the run config):
 *   mvtec   <root>/<class>/{train/good, test/<type>, ground_truth/<type>/<stem>_mask.png}; "good" is normal.
 *           Classes in the official order: carpet grid leather tile wood bottle cable capsule hazelnut metal_nut
 *           pill screw toothbrush transistor zipper.
 *   mpdd    the MVTec layout; classes bracket_black bracket_brown bracket_white connector metal_plate tubes.
 *   visa    two layouts, detected from the root:
 *           - the official download: <root>/split_csv/1cls.csv with the header "object,split,label,image,mask",
 *             image and mask paths relative to <root>; label "normal" -> good (label 0), anything else -> bad
 *             (label 1, defect type "bad"); split "train" rows with label normal are the train images.
 *           - the reorganised VisA_pytorch layout (datasets/prepare_visa_public.py): <root>/<class>/{train/good,
 *             test/{good,bad}, ground_truth/bad/<stem>.png}, or the same under <root>/1cls/.
 *           Classes: candle capsules cashew chewinggum fryum macaroni1 macaroni2 pcb1 pcb2 pcb3 pcb4 pipe_fryum.
 *   loco    MVTec LOCO AD: <root>/<class>/{train/good, validation/good, test/{good, logical_anomalies,
 *           structural_anomalies}, ground_truth/<type>/<stem>/<k>.png}: an anomalous image has a folder of one or
 *           more mask files and its mask is their union. The anomaly kind (logical / structural) is kept per item.
 *           Classes: breakfast_box juice_bottle pushpins screw_bag splicing_connectors.
 *   folder  a generic layout: <class>/{train/good, test/<type>} ("good" = normal) with an optional
 *           <class>/ground_truth/<type>/ holding <stem>_mask.<ext> or <stem>.<ext>. The root is either one class
 *           (it holds train/ itself; the class is named after the root folder) or a folder of class folders.
 *
 * For the named formats, the classes are the official ones present under the root, in the official order, followed
 * by any other sub-folder that has a train/ folder (sorted), loaded with the same layout (e.g. `promptad synth`
 * output opened as mvtec). Listings are sorted by the byte order of the file names (strcmp) everywhere; test items
 * are sorted by defect type, then by file name. Image files are those ending in .png, .jpg, .jpeg or .bmp (any
 * case: VisA uses .JPG); names starting with '.' are ignored; other files are skipped. When masks are required
 * (every format but folder without a ground_truth/ folder), an anomalous test image without its mask is an error.
 * The run checks the masks it reads (host/run/features.c): a mask whose size differs from its image's is resized
 * like any other, with one warning per class naming the first such file; a normal image whose mask marks pixels
 * and an anomalous image with an empty mask get a warning naming the file.
 *
 * Every function that fails logs one line naming the path at fault (PAD_LOG_ERROR) and returns a pad_status. */
#ifndef PAD_EVAL_DATASET_H
#define PAD_EVAL_DATASET_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pad_dataset_format {
    PAD_DATASET_FORMAT_MVTEC = 0,
    PAD_DATASET_FORMAT_VISA = 1,
    PAD_DATASET_FORMAT_MPDD = 2,
    PAD_DATASET_FORMAT_LOCO = 3,
    PAD_DATASET_FORMAT_FOLDER = 4,
} pad_dataset_format;

// Parses "mvtec", "visa", "mpdd", "loco" or "folder" (exact, lower case). Anything else: PAD_ERR_INVALID_ARG and
// one error line naming the string and the accepted names.
pad_status pad_dataset_format_parse(const char *s, pad_dataset_format *out);
// The name parsed by pad_dataset_format_parse ("mvtec", ...). Never NULL.
const char *pad_dataset_format_str(pad_dataset_format f);
// The official class names of a format in the official order (static storage); *n receives the count. The folder
// format has none (returns NULL, *n = 0).
const char *const *pad_dataset_official_classes(pad_dataset_format f, int *n);

typedef enum pad_anomaly_kind {
    PAD_ANOMALY_KIND_NONE = 0,       // a normal image (test/good)
    PAD_ANOMALY_KIND_DEFECT = 1,     // anomalous, no finer split (mvtec, visa, mpdd, folder; LOCO's other types)
    PAD_ANOMALY_KIND_LOGICAL = 2,    // MVTec LOCO test/logical_anomalies
    PAD_ANOMALY_KIND_STRUCTURAL = 3, // MVTec LOCO test/structural_anomalies
} pad_anomaly_kind;

// "none", "defect", "logical", "structural".
const char *pad_anomaly_kind_str(pad_anomaly_kind k);

typedef struct pad_test_item {
    char *path;            // the image file (root-joined path)
    int label;             // 0 normal, 1 anomalous
    char *defect_type;     // the test/<type> folder name: "good" for normal images ("bad" for VisA anomalies)
    pad_anomaly_kind kind; // NONE iff label == 0
    char **mask_paths;     // (n_masks) ground-truth files, sorted; the mask is their union (pixels > 0 anomalous)
    int n_masks;           // 0 for anomalous images of a folder dataset without ground_truth/, and for normal
                           // images unless the dataset has a mask for them (then kept: the run warns when it marks
                           // pixels, and their ground truth stays empty)
} pad_test_item;

typedef struct pad_class_data {
    char *name;           // the class name
    char *dir;            // the class folder (the dataset root for the VisA csv layout)
    char **train;         // (n_train) train/good image paths, sorted by file name
    int n_train;          // >= 1
    int *train_dir_order; // (n_train) train[train_dir_order[i]] is the i-th file in directory (readdir) order:
                          // machine-dependent, used only by the `glob` shot interpretation (shots.h)
    char **validation;    // (n_validation) LOCO validation/good images, sorted; NULL for the other formats
    int n_validation;     // 0 when absent
    pad_test_item *test;  // (n_test) sorted by defect type, then by file name
    int n_test;           // >= 1
    int n_test_anomalous; // items with label 1
    bool has_masks;       // every anomalous item has n_masks >= 1 (pixel metrics are possible)
} pad_class_data;

typedef struct pad_dataset pad_dataset; // opaque: format, root, detected layout, class list

// Opens the dataset at `root` in `format`: checks the root, detects the layout (VisA: csv or reorganised; folder:
// single class or a folder of classes) and lists the classes present (see the top of this file).
// Errors (one log line naming the path): root missing or not a folder (PAD_ERR_IO), a malformed VisA csv
// (PAD_ERR_FORMAT, with the line number), no class at all under the root (PAD_ERR_INVALID_ARG).
// On success *out owns the dataset (free with pad_dataset_free); on failure *out is NULL.
pad_status pad_dataset_open(pad_dataset **out, pad_dataset_format format, const char *root);
void pad_dataset_free(pad_dataset *ds); // NULL is a no-op

pad_dataset_format pad_dataset_get_format(const pad_dataset *ds);
const char *pad_dataset_root(const pad_dataset *ds); // the root as given to pad_dataset_open
// A short description of the detected layout for logs, e.g. "visa (split_csv/1cls.csv)", "folder (one class)".
const char *pad_dataset_layout(const pad_dataset *ds);

// Number of classes present and their names (index 0..n-1, order described at the top). Valid until the dataset
// is freed.
int pad_dataset_n_classes(const pad_dataset *ds);
const char *pad_dataset_class_name(const pad_dataset *ds, int i);
// Index of a class by name, or -1.
int pad_dataset_find_class(const pad_dataset *ds, const char *name);

// Lists one class: its train files, test items and masks. Checks that every listed file exists (VisA csv rows
// included) and that required masks exist.
// Errors (one log line naming the path): unknown class (the message lists the classes present), missing class
// folder / train/good / test folder, no train image, no test image, an anomalous test image without its mask
// (the message names the image and the expected mask path), unreadable folders (PAD_ERR_IO).
// On success *out owns everything it points to (free with pad_class_data_free); on failure *out is zeroed.
pad_status pad_dataset_class_load(const pad_dataset *ds, const char *name, pad_class_data *out);
// Frees what pad_dataset_class_load allocated and zeroes *cls. NULL and zeroed structs are no-ops.
void pad_class_data_free(pad_class_data *cls);

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_DATASET_H
