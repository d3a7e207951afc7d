/* test_dataset.c - dataset listings (eval/dataset.h) on small fake trees for every format (mvtec, mpdd, loco with
 * multi-mask folders, visa csv and reorganised, folder), the error messages (each names the path at fault), and
 * few-shot selection (eval/shots.h): golden seeded draws from tests/ref/shots_ref.py, the official YAML lists
 * under the three interpretations, and their errors. */
#include "check.h"
#include "dataset.h"
#include "log.h"
#include "prng.h"
#include "shots.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

// ----------------------------------------------------------------------------
// Helpers: log capture, tree building

static void mkdirs(const char *path) {
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0777);
            *s = '/';
        }
    mkdir(p, 0777);
}

// A 1x1 PNG (parents created).
static void touch_png(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    mkdirs(dir);
    unsigned char px[3] = {10, 20, 30};
    cr_assert(stbi_write_png(path, 1, 1, 3, px, 3), "cannot write %s", path);
}

static void touch_text(const char *path, const char *text) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    mkdirs(dir);
    pad_test_write_file(path, text, strlen(text));
}

static pad_dataset *open_ok(pad_dataset_format f, const char *root) {
    pad_dataset *ds = NULL;
    pad_status st = pad_dataset_open(&ds, f, root);
    cr_assert(st == PAD_OK && ds, "cannot open %s as %s: %s", root, pad_dataset_format_str(f), pad_status_str(st));
    return ds;
}

static void load_ok(pad_dataset *ds, const char *cls, pad_class_data *c) {
    pad_status st = pad_dataset_class_load(ds, cls, c);
    cr_assert(st == PAD_OK, "cannot load class %s: %s", cls, pad_status_str(st));
}

static void assert_path_end(const char *path, const char *suffix) {
    size_t a = strlen(path), b = strlen(suffix);
    cr_assert(a >= b && strcmp(path + a - b, suffix) == 0, "path '%s' does not end with '%s'", path, suffix);
}

// An MVTec-style class: train/good files, test items and masks.
static void make_mvtec_bottle(const char *root) {
    const char *train[] = {"002.png", "000.png", "010.png", "001.PNG", "003.jpg"};
    for (int i = 0; i < 5; i++)
        touch_png(pad_test_fmt("%s/bottle/train/good/%s", root, train[i]));
    touch_png(pad_test_fmt("%s/bottle/train/good/.hidden.png", root));
    touch_text(pad_test_fmt("%s/bottle/train/good/notes.txt", root), "not an image");
    touch_png(pad_test_fmt("%s/bottle/test/good/001.png", root));
    touch_png(pad_test_fmt("%s/bottle/test/good/000.png", root));
    touch_png(pad_test_fmt("%s/bottle/test/crack/001.png", root));
    touch_png(pad_test_fmt("%s/bottle/test/crack/000.png", root));
    touch_png(pad_test_fmt("%s/bottle/test/broken_large/000.png", root));
    touch_png(pad_test_fmt("%s/bottle/ground_truth/crack/000_mask.png", root));
    touch_png(pad_test_fmt("%s/bottle/ground_truth/crack/001_mask.png", root));
    touch_png(pad_test_fmt("%s/bottle/ground_truth/broken_large/000_mask.png", root));
}

// ----------------------------------------------------------------------------
// Formats

Test(dataset, format_names) {
    pad_dataset_format f;
    const char *names[] = {"mvtec", "visa", "mpdd", "loco", "folder"};
    for (int i = 0; i < 5; i++) {
        cr_assert(pad_dataset_format_parse(names[i], &f) == PAD_OK);
        cr_assert(f == (pad_dataset_format)i);
        cr_assert_str_eq(pad_dataset_format_str(f), names[i]);
    }
    pad_test_log_start();
    cr_assert(pad_dataset_format_parse("MVTec-AD", &f) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS("unknown dataset format 'MVTec-AD'");
    PAD_ASSERT_LOG_HAS("mvtec, visa, mpdd, loco or folder");
    int n;
    const char *const *c = pad_dataset_official_classes(PAD_DATASET_FORMAT_MVTEC, &n);
    cr_assert(n == 15);
    cr_assert_str_eq(c[0], "carpet");
    cr_assert_str_eq(c[5], "bottle");
    cr_assert_str_eq(c[14], "zipper");
    c = pad_dataset_official_classes(PAD_DATASET_FORMAT_VISA, &n);
    cr_assert(n == 12);
    cr_assert_str_eq(c[11], "pipe_fryum");
    c = pad_dataset_official_classes(PAD_DATASET_FORMAT_MPDD, &n);
    cr_assert(n == 6);
    cr_assert_str_eq(c[3], "connector");
    c = pad_dataset_official_classes(PAD_DATASET_FORMAT_LOCO, &n);
    cr_assert(n == 5);
    cr_assert_str_eq(c[4], "splicing_connectors");
    c = pad_dataset_official_classes(PAD_DATASET_FORMAT_FOLDER, &n);
    cr_assert(n == 0 && c == NULL);
}

Test(dataset, mvtec_listing) {
    char *root = pad_test_tmpdir("mvtec");
    make_mvtec_bottle(root);
    touch_png(pad_test_fmt("%s/carpet/train/good/000.png", root));
    touch_png(pad_test_fmt("%s/carpet/test/good/000.png", root));
    touch_png(pad_test_fmt("%s/my_part/train/good/000.png", root)); // not official: listed after the official ones
    touch_png(pad_test_fmt("%s/my_part/test/good/000.png", root));
    mkdirs(pad_test_fmt("%s/docs", root)); // no train/: not a class
    touch_text(pad_test_fmt("%s/readme.txt", root), "MVTec AD");

    pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_MVTEC, root);
    cr_assert(pad_dataset_n_classes(ds) == 3);
    cr_assert_str_eq(pad_dataset_class_name(ds, 0), "carpet"); // official order: carpet before bottle
    cr_assert_str_eq(pad_dataset_class_name(ds, 1), "bottle");
    cr_assert_str_eq(pad_dataset_class_name(ds, 2), "my_part");
    cr_assert(pad_dataset_find_class(ds, "bottle") == 1);
    cr_assert(pad_dataset_find_class(ds, "docs") == -1);
    cr_assert(pad_dataset_class_name(ds, 3) == NULL);
    cr_assert_str_eq(pad_dataset_root(ds), root);

    pad_class_data c;
    load_ok(ds, "bottle", &c);
    cr_assert_str_eq(c.name, "bottle");
    cr_assert_str_eq(c.dir, pad_test_fmt("%s/bottle", root));
    // sorted by byte order; hidden file and non-image skipped; extension case-insensitive
    const char *want_train[] = {"000.png", "001.PNG", "002.png", "003.jpg", "010.png"};
    cr_assert(c.n_train == 5, "n_train %d", c.n_train);
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(c.train[i], pad_test_fmt("%s/bottle/train/good/%s", root, want_train[i]));
    // directory order is a permutation of the sorted listing
    int seen = 0;
    for (int i = 0; i < 5; i++)
        seen |= 1 << c.train_dir_order[i];
    cr_assert(seen == 31);
    cr_assert(c.validation == NULL && c.n_validation == 0);
    // test items: by type, then name
    struct {
        const char *rel, *type;
        int label;
        const char *mask;
    } want[] = {
        {"test/broken_large/000.png", "broken_large", 1, "ground_truth/broken_large/000_mask.png"},
        {"test/crack/000.png", "crack", 1, "ground_truth/crack/000_mask.png"},
        {"test/crack/001.png", "crack", 1, "ground_truth/crack/001_mask.png"},
        {"test/good/000.png", "good", 0, NULL},
        {"test/good/001.png", "good", 0, NULL},
    };
    cr_assert(c.n_test == 5, "n_test %d", c.n_test);
    cr_assert(c.n_test_anomalous == 3);
    cr_assert(c.has_masks);
    for (int i = 0; i < 5; i++) {
        const pad_test_item *it = &c.test[i];
        cr_assert_str_eq(it->path, pad_test_fmt("%s/bottle/%s", root, want[i].rel));
        cr_assert_str_eq(it->defect_type, want[i].type);
        cr_assert(it->label == want[i].label);
        cr_assert(it->kind == (want[i].label ? PAD_ANOMALY_KIND_DEFECT : PAD_ANOMALY_KIND_NONE));
        if (want[i].mask) {
            cr_assert(it->n_masks == 1);
            cr_assert_str_eq(it->mask_paths[0], pad_test_fmt("%s/bottle/%s", root, want[i].mask));
        } else {
            cr_assert(it->n_masks == 0 && it->mask_paths == NULL);
        }
    }
    pad_class_data_free(&c);
    cr_assert(c.train == NULL && c.n_train == 0 && c.test == NULL);
    pad_class_data_free(&c); // zeroed: no-op
    pad_class_data_free(NULL);

    load_ok(ds, "my_part", &c);
    cr_assert(c.n_train == 1 && c.n_test == 1 && c.n_test_anomalous == 0 && c.has_masks);
    pad_class_data_free(&c);
    pad_dataset_free(ds);
    pad_dataset_free(NULL);
}

Test(dataset, mvtec_errors) {
    char *root = pad_test_tmpdir("mvtec_err");
    pad_dataset *ds = NULL;
    pad_class_data c;

    // missing root
    pad_test_log_start();
    cr_assert(pad_dataset_open(&ds, PAD_DATASET_FORMAT_MVTEC, pad_test_fmt("%s/nope", root)) == PAD_ERR_IO);
    cr_assert(ds == NULL);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/nope: dataset root not found", root));

    // root is a file
    touch_text(pad_test_fmt("%s/file", root), "x");
    pad_test_log_start();
    cr_assert(pad_dataset_open(&ds, PAD_DATASET_FORMAT_MVTEC, pad_test_fmt("%s/file", root)) == PAD_ERR_IO);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/file: dataset root is not a folder", root));

    // no class at all
    mkdirs(pad_test_fmt("%s/empty", root));
    pad_test_log_start();
    cr_assert(pad_dataset_open(&ds, PAD_DATASET_FORMAT_MVTEC, pad_test_fmt("%s/empty", root)) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/empty: no mvtec class folder found (expected some of: carpet, grid", root));

    make_mvtec_bottle(root);
    ds = open_ok(PAD_DATASET_FORMAT_MVTEC, root);

    // unknown class: lists the classes present
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "bottel", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s: unknown mvtec class 'bottel' (classes present: bottle)", root));
    cr_assert(c.train == NULL && c.test == NULL);

    // anomalous image without its mask
    unlink(pad_test_fmt("%s/bottle/ground_truth/crack/001_mask.png", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "bottle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/bottle/test/crack/001.png: anomalous test image without its ground-truth mask "
                                    "(expected %s/bottle/ground_truth/crack/001_mask.png)",
                                    root, root));
    touch_png(pad_test_fmt("%s/bottle/ground_truth/crack/001_mask.png", root));

    // the whole ground_truth/<type> folder missing
    touch_png(pad_test_fmt("%s/bottle/test/hole/000.png", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "bottle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(
        pad_test_fmt("%s/bottle/test/hole/000.png: anomalous test image without its ground-truth mask", root));
    unlink(pad_test_fmt("%s/bottle/test/hole/000.png", root));
    rmdir(pad_test_fmt("%s/bottle/test/hole", root));

    // no train images
    const char *train[] = {"002.png", "000.png", "010.png", "001.PNG", "003.jpg"};
    for (int i = 0; i < 5; i++)
        unlink(pad_test_fmt("%s/bottle/train/good/%s", root, train[i]));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "bottle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/bottle/train/good: no train images", root));

    // missing train/good
    touch_png(pad_test_fmt("%s/bottle/train/good/000.png", root));
    rename(pad_test_fmt("%s/bottle/train/good", root), pad_test_fmt("%s/bottle/train/ok", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "bottle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/bottle/train/good: missing train/good folder", root));
    rename(pad_test_fmt("%s/bottle/train/ok", root), pad_test_fmt("%s/bottle/train/good", root));

    // no test images (sub-folders empty)
    rename(pad_test_fmt("%s/bottle/test", root), pad_test_fmt("%s/bottle/test_old", root));
    mkdirs(pad_test_fmt("%s/bottle/test/good", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "bottle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/bottle/test: no test images", root));

    // missing test folder
    rmdir(pad_test_fmt("%s/bottle/test/good", root));
    rmdir(pad_test_fmt("%s/bottle/test", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "bottle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/bottle/test: missing test folder", root));

    // class folder removed after opening
    rename(pad_test_fmt("%s/bottle", root), pad_test_fmt("%s/bottle_moved", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "bottle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/bottle: class folder missing", root));
    pad_dataset_free(ds);
}

Test(dataset, mpdd_order) {
    char *root = pad_test_tmpdir("mpdd");
    const char *cls[] = {"tubes", "connector", "bracket_white"};
    for (int i = 0; i < 3; i++) {
        touch_png(pad_test_fmt("%s/%s/train/good/000.png", root, cls[i]));
        touch_png(pad_test_fmt("%s/%s/test/good/000.png", root, cls[i]));
        touch_png(pad_test_fmt("%s/%s/test/defective/000.png", root, cls[i]));
        touch_png(pad_test_fmt("%s/%s/ground_truth/defective/000_mask.png", root, cls[i]));
    }
    pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_MPDD, root);
    cr_assert(pad_dataset_n_classes(ds) == 3);
    cr_assert_str_eq(pad_dataset_class_name(ds, 0), "bracket_white");
    cr_assert_str_eq(pad_dataset_class_name(ds, 1), "connector");
    cr_assert_str_eq(pad_dataset_class_name(ds, 2), "tubes");
    pad_class_data c;
    load_ok(ds, "connector", &c);
    cr_assert(c.n_test == 2 && c.n_test_anomalous == 1);
    cr_assert_str_eq(c.test[0].defect_type, "defective");
    assert_path_end(c.test[0].mask_paths[0], "connector/ground_truth/defective/000_mask.png");
    pad_class_data_free(&c);
    pad_dataset_free(ds);
}

static void make_loco(const char *root) {
    const char *c = "pushpins";
    touch_png(pad_test_fmt("%s/%s/train/good/001.png", root, c));
    touch_png(pad_test_fmt("%s/%s/train/good/000.png", root, c));
    touch_png(pad_test_fmt("%s/%s/validation/good/000.png", root, c));
    touch_png(pad_test_fmt("%s/%s/test/good/000.png", root, c));
    touch_png(pad_test_fmt("%s/%s/test/logical_anomalies/000.png", root, c));
    touch_png(pad_test_fmt("%s/%s/test/logical_anomalies/001.png", root, c));
    touch_png(pad_test_fmt("%s/%s/test/structural_anomalies/000.png", root, c));
    touch_png(pad_test_fmt("%s/%s/ground_truth/logical_anomalies/000/001.png", root, c));
    touch_png(pad_test_fmt("%s/%s/ground_truth/logical_anomalies/000/000.png", root, c));
    touch_png(pad_test_fmt("%s/%s/ground_truth/logical_anomalies/001/000.png", root, c));
    touch_png(pad_test_fmt("%s/%s/ground_truth/structural_anomalies/000/000.png", root, c));
}

Test(dataset, loco_multi_masks) {
    char *root = pad_test_tmpdir("loco");
    make_loco(root);
    touch_png(pad_test_fmt("%s/juice_bottle/train/good/000.png", root));
    pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_LOCO, root);
    cr_assert(pad_dataset_n_classes(ds) == 2);
    cr_assert_str_eq(pad_dataset_class_name(ds, 0), "juice_bottle");
    cr_assert_str_eq(pad_dataset_class_name(ds, 1), "pushpins");
    pad_class_data c;
    load_ok(ds, "pushpins", &c);
    cr_assert(c.n_train == 2);
    assert_path_end(c.train[0], "pushpins/train/good/000.png");
    cr_assert(c.n_validation == 1);
    assert_path_end(c.validation[0], "pushpins/validation/good/000.png");
    cr_assert(c.n_test == 4 && c.n_test_anomalous == 3 && c.has_masks);
    // good < logical_anomalies < structural_anomalies
    cr_assert_str_eq(c.test[0].defect_type, "good");
    cr_assert(c.test[0].kind == PAD_ANOMALY_KIND_NONE && c.test[0].label == 0);
    const pad_test_item *a = &c.test[1];
    cr_assert_str_eq(a->defect_type, "logical_anomalies");
    cr_assert(a->kind == PAD_ANOMALY_KIND_LOGICAL && a->label == 1);
    cr_assert(a->n_masks == 2, "n_masks %d", a->n_masks);
    assert_path_end(a->mask_paths[0], "pushpins/ground_truth/logical_anomalies/000/000.png");
    assert_path_end(a->mask_paths[1], "pushpins/ground_truth/logical_anomalies/000/001.png");
    cr_assert(c.test[2].n_masks == 1);
    assert_path_end(c.test[2].path, "logical_anomalies/001.png");
    cr_assert(c.test[3].kind == PAD_ANOMALY_KIND_STRUCTURAL);
    assert_path_end(c.test[3].mask_paths[0], "pushpins/ground_truth/structural_anomalies/000/000.png");
    cr_assert_str_eq(pad_anomaly_kind_str(c.test[3].kind), "structural");
    cr_assert_str_eq(pad_anomaly_kind_str(PAD_ANOMALY_KIND_LOGICAL), "logical");
    pad_class_data_free(&c);

    // a test image whose mask folder is empty
    unlink(pad_test_fmt("%s/pushpins/ground_truth/logical_anomalies/001/000.png", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "pushpins", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(
        pad_test_fmt("%s/pushpins/test/logical_anomalies/001.png: anomalous test image without its ground-truth "
                     "mask (expected a folder %s/pushpins/ground_truth/logical_anomalies/001/",
                     root, root));
    pad_dataset_free(ds);
}

Test(dataset, visa_reorganised) {
    char *root = pad_test_tmpdir("visa_pt");
    const char *base = strdup(pad_test_fmt("%s/1cls", root));
    touch_png(pad_test_fmt("%s/candle/train/good/0266.JPG", base));
    touch_png(pad_test_fmt("%s/candle/train/good/0003.JPG", base));
    touch_png(pad_test_fmt("%s/candle/test/good/1000.JPG", base));
    touch_png(pad_test_fmt("%s/candle/test/bad/000.JPG", base));
    touch_png(pad_test_fmt("%s/candle/ground_truth/bad/000.png", base));
    touch_png(pad_test_fmt("%s/pcb1/train/good/0000.JPG", base));
    touch_png(pad_test_fmt("%s/pcb1/test/good/0001.JPG", base));
    // root = VisA_pytorch (holding 1cls/) or root = 1cls itself
    for (int pass = 0; pass < 2; pass++) {
        pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_VISA, pass ? base : root);
        cr_assert(pad_dataset_n_classes(ds) == 2);
        cr_assert_str_eq(pad_dataset_class_name(ds, 0), "candle");
        cr_assert_str_eq(pad_dataset_class_name(ds, 1), "pcb1");
        cr_assert(strstr(pad_dataset_layout(ds), "reorganised") != NULL);
        pad_class_data c;
        load_ok(ds, "candle", &c);
        cr_assert(c.n_train == 2);
        cr_assert_str_eq(c.train[0], pad_test_fmt("%s/candle/train/good/0003.JPG", base));
        cr_assert_str_eq(c.train[1], pad_test_fmt("%s/candle/train/good/0266.JPG", base));
        cr_assert(c.n_test == 2);
        cr_assert_str_eq(c.test[0].defect_type, "bad");
        cr_assert_str_eq(c.test[0].mask_paths[0], pad_test_fmt("%s/candle/ground_truth/bad/000.png", base));
        cr_assert_str_eq(c.test[1].defect_type, "good");
        pad_class_data_free(&c);
        pad_dataset_free(ds);
    }
    // the VisA mask is <stem>.png, not <stem>_mask.png
    unlink(pad_test_fmt("%s/candle/ground_truth/bad/000.png", base));
    touch_png(pad_test_fmt("%s/candle/ground_truth/bad/000_mask.png", base));
    pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_VISA, root);
    pad_class_data c;
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "candle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(
        pad_test_fmt("%s/candle/test/bad/000.JPG: anomalous test image without its ground-truth mask (expected "
                     "%s/candle/ground_truth/bad/000.png)",
                     base, base));
    pad_dataset_free(ds);
}

static void make_visa_csv(const char *root, const char *csv) {
    touch_text(pad_test_fmt("%s/split_csv/1cls.csv", root), csv);
    touch_png(pad_test_fmt("%s/candle/Data/Images/Normal/0266.JPG", root));
    touch_png(pad_test_fmt("%s/candle/Data/Images/Normal/0003.JPG", root));
    touch_png(pad_test_fmt("%s/candle/Data/Images/Normal/0100.JPG", root));
    touch_png(pad_test_fmt("%s/candle/Data/Images/Normal/1000.JPG", root));
    touch_png(pad_test_fmt("%s/candle/Data/Images/Anomaly/000.JPG", root));
    touch_png(pad_test_fmt("%s/candle/Data/Masks/Anomaly/000.png", root));
    touch_png(pad_test_fmt("%s/pcb1/Data/Images/Normal/0000.JPG", root));
    touch_png(pad_test_fmt("%s/pcb1/Data/Images/Normal/0001.JPG", root));
}

static const char *k_csv =
    "object,split,label,image,mask\r\n"
    "pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,\r\n"
    "candle,train,normal,candle/Data/Images/Normal/0266.JPG,\r\n"
    "candle,train,normal,candle/Data/Images/Normal/0003.JPG,\r\n"
    "candle,train,normal,candle/Data/Images/Normal/0100.JPG,\r\n"
    "candle,test,normal,candle/Data/Images/Normal/1000.JPG,\r\n"
    "candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png\r\n"
    "\r\n"
    "pcb1,test,normal,pcb1/Data/Images/Normal/0001.JPG,\r\n";

Test(dataset, visa_csv) {
    char *root = pad_test_tmpdir("visa_csv");
    make_visa_csv(root, k_csv);
    pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_VISA, root);
    cr_assert_str_eq(pad_dataset_layout(ds), "visa (split_csv/1cls.csv)");
    cr_assert(pad_dataset_n_classes(ds) == 2);
    cr_assert_str_eq(pad_dataset_class_name(ds, 0), "candle"); // official order, not csv order
    cr_assert_str_eq(pad_dataset_class_name(ds, 1), "pcb1");
    pad_class_data c;
    load_ok(ds, "candle", &c);
    cr_assert_str_eq(c.dir, root);
    cr_assert(c.n_train == 3);
    cr_assert_str_eq(c.train[0], pad_test_fmt("%s/candle/Data/Images/Normal/0003.JPG", root));
    cr_assert_str_eq(c.train[1], pad_test_fmt("%s/candle/Data/Images/Normal/0100.JPG", root));
    cr_assert_str_eq(c.train[2], pad_test_fmt("%s/candle/Data/Images/Normal/0266.JPG", root));
    // directory order: the train files as they appear in the folder listing (1000.JPG is a test file: skipped)
    DIR *d = opendir(pad_test_fmt("%s/candle/Data/Images/Normal", root));
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "1000.JPG") == 0) continue;
        cr_assert(k < 3);
        cr_assert_str_eq(c.train[c.train_dir_order[k]],
                         pad_test_fmt("%s/candle/Data/Images/Normal/%s", root, e->d_name));
        k++;
    }
    closedir(d);
    cr_assert(k == 3);
    cr_assert(c.n_test == 2 && c.n_test_anomalous == 1 && c.has_masks);
    cr_assert_str_eq(c.test[0].defect_type, "bad");
    cr_assert(c.test[0].label == 1 && c.test[0].kind == PAD_ANOMALY_KIND_DEFECT);
    cr_assert_str_eq(c.test[0].path, pad_test_fmt("%s/candle/Data/Images/Anomaly/000.JPG", root));
    cr_assert_str_eq(c.test[0].mask_paths[0], pad_test_fmt("%s/candle/Data/Masks/Anomaly/000.png", root));
    cr_assert_str_eq(c.test[1].defect_type, "good");
    cr_assert(c.test[1].label == 0 && c.test[1].n_masks == 0);
    pad_class_data_free(&c);

    // a listed mask that does not exist
    unlink(pad_test_fmt("%s/candle/Data/Masks/Anomaly/000.png", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "candle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(
        pad_test_fmt("%s/candle/Data/Images/Anomaly/000.JPG: anomalous test image without its ground-truth mask "
                     "(expected %s/candle/Data/Masks/Anomaly/000.png, from %s/split_csv/1cls.csv:7)",
                     root, root, root));
    // a listed image that does not exist
    unlink(pad_test_fmt("%s/candle/Data/Images/Normal/0100.JPG", root));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "candle", &c) == PAD_ERR_IO);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt(
        "%s/candle/Data/Images/Normal/0100.JPG: image listed in %s/split_csv/1cls.csv:5 not found", root, root));
    pad_dataset_free(ds);
}

Test(dataset, visa_csv_errors) {
    struct {
        const char *csv, *msg;
    } cases[] = {
        {"obj,split,label,image,mask\n", "1cls.csv:1: expected the header 'object,split,label,image,mask'"},
        {"", "1cls.csv: empty file"},
        {"object,split,label,image,mask\ncandle,train,normal\n", "1cls.csv:2: expected 5 comma-separated fields"},
        {"object,split,label,image,mask\ncandle,val,normal,a.JPG,\n", "1cls.csv:2: split 'val' is neither"},
        {"object,split,label,image,mask\n\ncandle,test,anomaly,a.JPG,\n",
         "1cls.csv:3: anomalous test image a.JPG has no mask"},
    };
    for (int i = 0; i < 5; i++) {
        char *root = pad_test_tmpdir("visa_bad");
        touch_text(pad_test_fmt("%s/split_csv/1cls.csv", root), cases[i].csv);
        pad_dataset *ds = NULL;
        pad_test_log_start();
        cr_assert(pad_dataset_open(&ds, PAD_DATASET_FORMAT_VISA, root) == PAD_ERR_FORMAT, "case %d", i);
        pad_test_log_stop();
        cr_assert(ds == NULL);
        PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/split_csv/%s", root, cases[i].msg));
    }
    // header only: no classes
    char *root = pad_test_tmpdir("visa_hdr");
    touch_text(pad_test_fmt("%s/split_csv/1cls.csv", root), "object,split,label,image,mask\n");
    pad_dataset *ds = NULL;
    pad_test_log_start();
    cr_assert(pad_dataset_open(&ds, PAD_DATASET_FORMAT_VISA, root) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/split_csv/1cls.csv: no data rows", root));
    // a class without train rows
    root = pad_test_tmpdir("visa_notrain");
    touch_text(pad_test_fmt("%s/split_csv/1cls.csv", root),
               "object,split,label,image,mask\ncandle,test,normal,a.JPG,\n");
    touch_png(pad_test_fmt("%s/a.JPG", root));
    ds = open_ok(PAD_DATASET_FORMAT_VISA, root);
    pad_class_data c;
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "candle", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/split_csv/1cls.csv: no train images for class 'candle'", root));
    pad_dataset_free(ds);
}

Test(dataset, folder_layouts) {
    // one class: the root holds train/ and test/; no ground_truth/ -> masks optional
    char *root = pad_test_tmpdir("folder1");
    char *cdir = strdup(pad_test_fmt("%s/widgets", root));
    touch_png(pad_test_fmt("%s/train/good/b.png", cdir));
    touch_png(pad_test_fmt("%s/train/good/a.bmp", cdir));
    touch_png(pad_test_fmt("%s/test/good/x.jpeg", cdir));
    touch_png(pad_test_fmt("%s/test/dent/y.png", cdir));
    char single[4096];
    snprintf(single, sizeof single, "%s/", cdir); // trailing slash
    pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_FOLDER, single);
    cr_assert(pad_dataset_n_classes(ds) == 1);
    cr_assert_str_eq(pad_dataset_class_name(ds, 0), "widgets");
    cr_assert_str_eq(pad_dataset_layout(ds), "folder (one class)");
    pad_class_data c;
    load_ok(ds, "widgets", &c);
    cr_assert(c.n_train == 2);
    assert_path_end(c.train[0], "widgets/train/good/a.bmp");
    cr_assert(c.n_test == 2 && c.n_test_anomalous == 1);
    cr_assert_str_eq(c.test[0].defect_type, "dent");
    cr_assert(c.test[0].n_masks == 0 && !c.has_masks);
    pad_class_data_free(&c);
    pad_dataset_free(ds);

    // with ground_truth/: both <stem>_mask.<ext> and <stem>.<ext> accepted, and then required
    touch_png(pad_test_fmt("%s/test/dent/z.png", cdir));
    touch_png(pad_test_fmt("%s/ground_truth/dent/y_mask.png", cdir));
    touch_png(pad_test_fmt("%s/ground_truth/dent/z.png", cdir));
    // several classes under one root
    touch_png(pad_test_fmt("%s/gears/train/good/0.png", root));
    touch_png(pad_test_fmt("%s/gears/test/good/0.png", root));
    mkdirs(pad_test_fmt("%s/notes", root));
    ds = open_ok(PAD_DATASET_FORMAT_FOLDER, root);
    cr_assert(pad_dataset_n_classes(ds) == 2);
    cr_assert_str_eq(pad_dataset_class_name(ds, 0), "gears");
    cr_assert_str_eq(pad_dataset_class_name(ds, 1), "widgets");
    load_ok(ds, "widgets", &c);
    cr_assert(c.has_masks && c.n_test_anomalous == 2);
    cr_assert_str_eq(c.test[0].mask_paths[0], pad_test_fmt("%s/ground_truth/dent/y_mask.png", cdir));
    cr_assert_str_eq(c.test[1].mask_paths[0], pad_test_fmt("%s/ground_truth/dent/z.png", cdir));
    pad_class_data_free(&c);
    unlink(pad_test_fmt("%s/ground_truth/dent/z.png", cdir));
    pad_test_log_start();
    cr_assert(pad_dataset_class_load(ds, "widgets", &c) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/test/dent/z.png: anomalous test image without its ground-truth mask (expected "
                                    "%s/ground_truth/dent/z_mask.png or z.png)",
                                    cdir, cdir));
    pad_dataset_free(ds);

    // nothing class-like
    char *empty = pad_test_tmpdir("folder_empty");
    mkdirs(pad_test_fmt("%s/a/b", empty));
    ds = NULL;
    pad_test_log_start();
    cr_assert(pad_dataset_open(&ds, PAD_DATASET_FORMAT_FOLDER, empty) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s: no class found", empty));
}

// ----------------------------------------------------------------------------
// Few-shot selection

Test(shots, prng_reference_values) {
    // splitmix64 seeded with 0 (the published reference sequence) and FNV-1a
    uint64_t s = 0;
    cr_assert(pad_prng_next(&s) == 0xe220a8397b1dcdafull);
    cr_assert(pad_prng_next(&s) == 0x6e789e6aa1b965f4ull);
    cr_assert(pad_prng_next(&s) == 0x06c45d188009454full);
    cr_assert(pad_prng_hash_str("bottle") == 0xe11aca4625d26fa9ull);
    cr_assert(pad_prng_hash_str("") == 0xCBF29CE484222325ull);
}

Test(shots, random_draw_golden) {
    // from tests/ref/shots_ref.py
    struct {
        const char *cls;
        int n, k;
        uint64_t seed;
        int want[5];
    } g[] = {
        {"bottle", 209, 4, 0ull, {202, 40, 94, 181}},   {"bottle", 209, 4, 1ull, {141, 17, 86, 118}},
        {"bottle", 209, 4, 2ull, {204, 26, 93, 100}},   {"bottle", 209, 4, 3ull, {159, 129, 135, 132}},
        {"bottle", 209, 4, 4ull, {156, 205, 151, 186}}, {"candle", 900, 4, 0ull, {97, 75, 856, 85}},
        {"pcb1", 904, 4, 111ull, {328, 425, 378, 126}}, {"x", 5, 5, 3ull, {2, 1, 0, 3, 4}},
        {"screw", 320, 1, 1099511627783ull, {291}},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        int got[5];
        cr_assert(pad_shots_draw(g[i].cls, g[i].n, g[i].k, g[i].seed, got) == PAD_OK);
        for (int j = 0; j < g[i].k; j++)
            cr_assert(got[j] == g[i].want[j], "%s seed %llu shot %d: got %d want %d", g[i].cls,
                      (unsigned long long)g[i].seed, j, got[j], g[i].want[j]);
    }
    // nested: k=1 and k=2 are prefixes of k=4 for the same seed; different seeds and classes differ
    int a1[1], a2[2], a4[4], b4[4], c4[4];
    pad_shots_draw("bottle", 209, 1, 7, a1);
    pad_shots_draw("bottle", 209, 2, 7, a2);
    pad_shots_draw("bottle", 209, 4, 7, a4);
    pad_shots_draw("bottle", 209, 4, 8, b4);
    pad_shots_draw("cable", 209, 4, 7, c4);
    cr_assert(a1[0] == a4[0] && a2[0] == a4[0] && a2[1] == a4[1]);
    cr_assert(memcmp(a4, b4, sizeof a4) != 0);
    cr_assert(memcmp(a4, c4, sizeof a4) != 0);
    // distinct seeds 0..4 give 5 different draws (checked above for bottle: all different first shots)
    pad_test_log_start();
    cr_assert(pad_shots_draw("bottle", 3, 4, 0, a4) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_shots_draw("bottle", 3, 0, 0, a4) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS("class 'bottle': cannot draw 4 shots from 3 train images");
}

Test(shots, select_modes_parse) {
    pad_shot_select m;
    const char *names[] = {"random", "sorted-index", "basename", "glob"};
    for (int i = 0; i < 4; i++) {
        cr_assert(pad_shot_select_parse(names[i], &m) == PAD_OK);
        cr_assert(m == (pad_shot_select)i);
        cr_assert_str_eq(pad_shot_select_str(m), names[i]);
    }
    pad_test_log_start();
    cr_assert(pad_shot_select_parse("sorted", &m) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS("unknown shot selection 'sorted' (expected random, sorted-index, basename or glob)");
}

static const char *official_path(const char *ds) {
    return pad_test_fmt("%s/configs/official_shots/%s.yaml", PAD_SOURCE_DIR, ds);
}

Test(shots, official_lists_files) {
    pad_shot_lists *l = NULL;
    cr_assert(pad_shot_lists_load(&l, official_path("mvtec")) == PAD_OK);
    // every official class has k = 1, 2, 4 (values: docs/protocols.md#fixed-shot-lists)
    int n;
    const char *const *cls = pad_dataset_official_classes(PAD_DATASET_FORMAT_MVTEC, &n);
    const char *const *e;
    for (int i = 0; i < n; i++)
        for (int k = 1; k <= 4; k *= 2)
            cr_assert(pad_shot_lists_get(l, cls[i], k, &e) == PAD_OK, "%s k=%d", cls[i], k);
    struct {
        const char *cls;
        int k;
        const char *want[4];
    } mv[] = {
        {"bottle", 4, {"029", "045", "192", "127"}},
        {"transistor", 4, {"029", "045", "192", "127"}},
        {"zipper", 4, {"029", "045", "192", "218"}},
        {"carpet", 1, {"263"}},
        {"hazelnut", 4, {"058", "090", "384", "255"}},
        {"screw", 4, {"058", "090", "255", "154"}},
        {"toothbrush", 2, {"025", "012"}},
        {"toothbrush", 4, {"007", "011", "048", "054"}},
        {"cable", 2, {"101", "048"}},
    };
    for (size_t i = 0; i < sizeof mv / sizeof mv[0]; i++) {
        cr_assert(pad_shot_lists_get(l, mv[i].cls, mv[i].k, &e) == PAD_OK);
        for (int j = 0; j < mv[i].k; j++)
            cr_assert_str_eq(e[j], mv[i].want[j], "%s k=%d entry %d", mv[i].cls, mv[i].k, j);
    }
    pad_test_log_start();
    cr_assert(pad_shot_lists_get(l, "bottle", 3, &e) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_shot_lists_get(l, "candle", 1, &e) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s: class 'bottle' has no list for k=3", official_path("mvtec")));
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s: no shot list for class 'candle'", official_path("mvtec")));
    pad_shot_lists_free(l);

    cr_assert(pad_shot_lists_load(&l, official_path("visa")) == PAD_OK);
    cls = pad_dataset_official_classes(PAD_DATASET_FORMAT_VISA, &n);
    for (int i = 0; i < n; i++)
        for (int k = 1; k <= 4; k *= 2)
            cr_assert(pad_shot_lists_get(l, cls[i], k, &e) == PAD_OK, "%s k=%d", cls[i], k);
    cr_assert(pad_shot_lists_get(l, "capsules", 2, &e) == PAD_OK);
    cr_assert_str_eq(e[0], "0195");
    cr_assert_str_eq(e[1], "0388");
    cr_assert(pad_shot_lists_get(l, "pcb4", 4, &e) == PAD_OK);
    cr_assert_str_eq(e[2], "0591");
    cr_assert(pad_shot_lists_get(l, "pipe_fryum", 1, &e) == PAD_OK);
    cr_assert_str_eq(e[0], "0133");
    pad_shot_lists_free(l);
    pad_shot_lists_free(NULL);
}

// A class whose train files are named 000.png .. N-1.png (MVTec style), written in a scrambled order.
static char *make_numbered_class(const char *tag, const char *cls, int n, const char *ext, int width) {
    char *root = pad_test_tmpdir(tag);
    for (int i = 0; i < n; i++) {
        int j = (i * 7919) % n; // a permutation when gcd(7919, n) == 1
        touch_png(pad_test_fmt("%s/%s/train/good/%0*d.%s", root, cls, width, j, ext));
    }
    touch_png(pad_test_fmt("%s/%s/test/good/000.png", root, cls));
    return root;
}

Test(shots, official_mvtec_interpretations) {
    // hazelnut k=4 needs index 384: 391 files as in MVTec AD; sorted-index and basename agree for 000..N-1 names
    char *root = make_numbered_class("hazel", "hazelnut", 391, "png", 3);
    pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_MVTEC, root);
    pad_class_data c;
    load_ok(ds, "hazelnut", &c);
    pad_shot_lists *l = NULL;
    cr_assert(pad_shot_lists_load(&l, official_path("mvtec")) == PAD_OK);
    const char *want[] = {"058.png", "090.png", "384.png", "255.png"};
    for (int mode = PAD_SHOT_SELECT_SORTED_INDEX; mode <= PAD_SHOT_SELECT_BASENAME; mode++) {
        pad_shots s;
        cr_assert(pad_shots_select(&c, 4, (pad_shot_select)mode, 123, l, &s) == PAD_OK);
        cr_assert(s.k == 4 && s.mode == (pad_shot_select)mode);
        for (int i = 0; i < 4; i++) {
            cr_assert_str_eq(s.paths[i], pad_test_fmt("%s/hazelnut/train/good/%s", root, want[i]));
            cr_assert_str_eq(s.paths[i], c.train[s.index[i]]);
        }
        pad_shots_free(&s);
        cr_assert(s.paths == NULL && s.index == NULL);
    }
    // glob: position in directory order
    pad_shots s;
    cr_assert(pad_shots_select(&c, 2, PAD_SHOT_SELECT_GLOB, 0, l, &s) == PAD_OK);
    DIR *d = opendir(pad_test_fmt("%s/hazelnut/train/good", root));
    char *order[391];
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') order[k++] = strdup(e->d_name);
    closedir(d);
    cr_assert(k == 391);
    assert_path_end(s.paths[0], order[203]);
    assert_path_end(s.paths[1], order[97]);
    for (int i = 0; i < k; i++)
        free(order[i]);
    pad_shots_free(&s);
    // random: the golden draw of shots_ref.py applies to any class listing
    cr_assert(pad_shots_select(&c, 4, PAD_SHOT_SELECT_RANDOM, 0, NULL, &s) == PAD_OK);
    int g[4];
    pad_shots_draw("hazelnut", 391, 4, 0, g);
    for (int i = 0; i < 4; i++)
        cr_assert(s.index[i] == g[i]);
    pad_shots_free(&s);
    pad_shot_lists_free(l);
    pad_class_data_free(&c);
    pad_dataset_free(ds);
}

Test(shots, official_visa_interpretations) {
    // VisA-like: non-contiguous 4-digit names, so sorted-index and basename differ
    char *root = pad_test_tmpdir("visa_shots");
    const char *names[] = {"0001", "0002", "0005", "0010", "0200", "0300"};
    for (int i = 5; i >= 0; i--)
        touch_png(pad_test_fmt("%s/1cls/candle/train/good/%s.JPG", root, names[i]));
    touch_png(pad_test_fmt("%s/1cls/candle/test/good/0003.JPG", root));
    const char *yaml = "# test lists\n"
                       "dataset: visa\n"
                       "classes:\n"
                       "  - name: candle\n"
                       "    k1: [\"2\"]\n"
                       "    k2: [\"0005\", \"0001\"]\n"
                       "    k4: [x1, \"0300\", \"0002\", \"0010\"]\n"
                       "  - name: pcb1\n"
                       "    k1: [\"9\"]\n";
    char *lp = pad_test_fmt("%s/lists.yaml", root);
    touch_text(lp, yaml);
    char lpath[4096];
    snprintf(lpath, sizeof lpath, "%s", lp);
    pad_shot_lists *l = NULL;
    cr_assert(pad_shot_lists_load(&l, lpath) == PAD_OK);
    cr_assert_str_eq(pad_shot_lists_path(l), lpath);
    pad_dataset *ds = open_ok(PAD_DATASET_FORMAT_VISA, root);
    pad_class_data c;
    load_ok(ds, "candle", &c);
    const char *tdir = pad_test_fmt("%s/1cls/candle/train/good", root);
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s", tdir);
    pad_shots s;
    // sorted-index "2" -> third sorted file
    cr_assert(pad_shots_select(&c, 1, PAD_SHOT_SELECT_SORTED_INDEX, 0, l, &s) == PAD_OK);
    cr_assert(s.index[0] == 2);
    cr_assert_str_eq(s.paths[0], pad_test_fmt("%s/0005.JPG", tpath));
    pad_shots_free(&s);
    // basename "0005" "0001"
    cr_assert(pad_shots_select(&c, 2, PAD_SHOT_SELECT_BASENAME, 0, l, &s) == PAD_OK);
    cr_assert_str_eq(s.paths[0], pad_test_fmt("%s/0005.JPG", tpath));
    cr_assert_str_eq(s.paths[1], pad_test_fmt("%s/0001.JPG", tpath));
    cr_assert(s.index[0] == 2 && s.index[1] == 0);
    pad_shots_free(&s);
    // sorted-index of "0005" "0001": positions 5 and 1
    cr_assert(pad_shots_select(&c, 2, PAD_SHOT_SELECT_SORTED_INDEX, 0, l, &s) == PAD_OK);
    cr_assert_str_eq(s.paths[0], pad_test_fmt("%s/0300.JPG", tpath));
    cr_assert_str_eq(s.paths[1], pad_test_fmt("%s/0002.JPG", tpath));
    pad_shots_free(&s);

    // errors, each naming the list file, the class and the entry
    pad_test_log_start();
    cr_assert(pad_shots_select(&c, 4, PAD_SHOT_SELECT_SORTED_INDEX, 0, l, &s) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt(
        "%s: class 'candle' k=4: entry 'x1' is not a non-negative integer (needed by 'sorted-index')", lpath));
    cr_assert(s.paths == NULL && s.index == NULL);
    pad_test_log_start();
    cr_assert(pad_shots_select(&c, 4, PAD_SHOT_SELECT_BASENAME, 0, l, &s) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s: class 'candle' k=4: no train image named 'x1.<ext>' in %s", lpath, tpath));
    pad_test_log_start();
    cr_assert(pad_shots_select(&c, 2, PAD_SHOT_SELECT_GLOB, 0, l, &s) == PAD_OK); // 5 and 1 are in range
    pad_shots_free(&s);
    cr_assert(pad_shots_select(&c, 3, PAD_SHOT_SELECT_BASENAME, 0, l, &s) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_shots_select(&c, 7, PAD_SHOT_SELECT_RANDOM, 0, NULL, &s) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_shots_select(&c, 1, PAD_SHOT_SELECT_BASENAME, 0, NULL, &s) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s: class 'candle' has no list for k=3", lpath));
    PAD_ASSERT_LOG_HAS("class 'candle': cannot select 7 shots from 6 train images");
    PAD_ASSERT_LOG_HAS("class 'candle': shot selection 'basename' needs an official shot list file");
    pad_class_data_free(&c);
    pad_dataset_free(ds);

    // out-of-range position
    char *root2 = pad_test_tmpdir("visa_shots2");
    touch_png(pad_test_fmt("%s/pcb1/train/good/0000.JPG", root2));
    touch_png(pad_test_fmt("%s/pcb1/test/good/0001.JPG", root2));
    ds = open_ok(PAD_DATASET_FORMAT_VISA, root2);
    load_ok(ds, "pcb1", &c);
    pad_test_log_start();
    cr_assert(pad_shots_select(&c, 1, PAD_SHOT_SELECT_GLOB, 0, l, &s) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt(
        "%s: class 'pcb1' k=1: entry '9' is out of range: %s/pcb1/train/good holds 1 train images", lpath, root2));
    pad_class_data_free(&c);
    pad_dataset_free(ds);
    pad_shot_lists_free(l);
}

Test(shots, list_file_errors) {
    char *dir = pad_test_tmpdir("lists_bad");
    struct {
        const char *yaml, *msg;
    } cases[] = {
        {"classes:\n  - name: a\n    k2: [\"1\"]\n", "class 'a': k2 lists 1 entries (expected 2)"},
        {"classes:\n  - name: a\n    k1: [\"1\"]\n  - name: a\n    k1: [\"2\"]\n", "class 'a' listed twice"},
        {"classes:\n  - name: a\n    k1: [\"\"]\n", "class 'a': k1 entry 1 is empty"},
        {"classes:\n  - name: a\n    shots: [\"1\"]\n", ":3:"},    // unknown key, with the line
        {"classes:\n  - name: a\n    k1: [\"1\"\n", "lists.yaml"}, // YAML syntax error
        {"dataset: mvtec\n", "lists.yaml"},                        // missing classes
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = pad_test_fmt("%s/%zu_lists.yaml", dir, i);
        touch_text(p, cases[i].yaml);
        pad_shot_lists *l = NULL;
        pad_test_log_start();
        cr_assert(pad_shot_lists_load(&l, p) == PAD_ERR_FORMAT, "case %zu", i);
        pad_test_log_stop();
        cr_assert(l == NULL);
        PAD_ASSERT_LOG_HAS(p);
        PAD_ASSERT_LOG_HAS(cases[i].msg);
        cr_assert(strchr(pad_test_log_text(), '\n') == pad_test_log_text() + strlen(pad_test_log_text()) - 1,
                  "case %zu: more than one line:\n%s", i, pad_test_log_text());
    }
    pad_shot_lists *l = NULL;
    pad_test_log_start();
    cr_assert(pad_shot_lists_load(&l, pad_test_fmt("%s/missing.yaml", dir)) == PAD_ERR_IO);
    pad_test_log_stop();
    PAD_ASSERT_LOG_HAS(pad_test_fmt("%s/missing.yaml: cannot open shot list", dir));
}
