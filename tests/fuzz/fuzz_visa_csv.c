/* fuzz_visa_csv.c - libFuzzer target: the VisA split file <root>/split_csv/1cls.csv (host/eval/dataset.c). The input is
 * that file in a scratch dataset root that holds a few image and mask files (the ones the seed corpus names); the
 * dataset is opened and every class it lists is loaded. Every class name must be safe to use as a folder name under
 * the results folder (the check data.classes gets): no path traversal through a dataset file. */
#include "dataset.h"
#include "fuzz_common.h"

#include <sys/stat.h>

static char g_root[300];

static void touch(const char *rel) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    for (char *s = p + strlen(g_root) + 1; *s; s++) // mkdir -p of the parents
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0777);
            *s = '/';
        }
    fuzz_write(p, "x", 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup();
    fuzz_path(g_root, sizeof g_root, "visa");
    if (mkdir(g_root, 0777) != 0) abort();
    static const char *const files[] = {"candle/Data/Images/Normal/0000.JPG",  "candle/Data/Images/Normal/0001.JPG",
                                        "candle/Data/Images/Anomaly/0000.JPG", "candle/Data/Masks/Anomaly/0000.png",
                                        "pcb1/Data/Images/Normal/0000.JPG",    "pcb1/Data/Images/Anomaly/0000.JPG",
                                        "pcb1/Data/Masks/Anomaly/0000.png",    "other/a.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        touch(files[i]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char p[600];
    snprintf(p, sizeof p, "%s/split_csv", g_root);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/split_csv/1cls.csv", g_root);
    fuzz_write(p, data, size);
    pad_dataset *ds = NULL;
    if (pad_dataset_open(&ds, PAD_DATASET_FORMAT_VISA, g_root) != PAD_OK) return 0;
    for (int i = 0; i < pad_dataset_n_classes(ds); i++) {
        const char *name = pad_dataset_class_name(ds, i);
        if (!pad_dataset_class_name_ok(name)) {
            fprintf(stderr, "fuzz_visa_csv: unsafe class name '%s' accepted\n", name);
            abort();
        }
        pad_class_data cls;
        if (pad_dataset_class_load(ds, name, &cls) == PAD_OK) {
            if (cls.n_train < 1 || cls.n_test < 1 || cls.n_test_anomalous > cls.n_test) abort();
            for (int t = 0; t < cls.n_test; t++)
                if ((cls.test[t].label != 0) != (cls.test[t].kind != PAD_ANOMALY_KIND_NONE)) abort();
            pad_class_data_free(&cls);
        }
    }
    pad_dataset_free(ds);
    return 0;
}
