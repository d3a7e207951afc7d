/* cli_synth.c - `promptad synth --out DIR [--classes N] [--seed S] [--size PX]` (cli_contract.md): writes the
 * deterministic synthetic dataset of eval/synth.h in MVTec AD layout and prints a one-line summary on stderr. */
#include "args.h"
#include "cli.h"
#include "synth.h"

#include <stdio.h>
#include <string.h>

int pad_cli_synth(int argc, char **argv) {
    const char *out = NULL, *classes_s = NULL, *seed_s = NULL, *size_s = NULL, *train_s = NULL, *good_s = NULL,
               *bad_s = NULL;
    const pad_opt opts[] = {
        {"out", "DIR", "output folder (required; created if needed)", &out, NULL, NULL, NULL},
        {"classes", "N", "number of classes, 1..16 (default 3: weave, grid, nut; then screw, weave_2, ...)", &classes_s,
         NULL, NULL, NULL},
        {"seed", "S", "random seed (default 0): the same arguments give the same files", &seed_s, NULL, NULL, NULL},
        {"size", "PX", "image side in pixels, 64..2048 (default 256)", &size_s, NULL, NULL, NULL},
        {"train", "N", "train/good images per class (default 12)", &train_s, NULL, NULL, NULL},
        {"test-good", "N", "test/good images per class (default 10)", &good_s, NULL, NULL, NULL},
        {"test-bad", "N", "defective test images per class, over 3 defect types (default 10)", &bad_s, NULL, NULL,
         NULL},
    };
    const char *pos[1];
    int n_pos = 0;
    pad_args_result r =
        pad_args_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 0, &n_pos,
                       "promptad synth --out DIR [--classes N] [--seed S] [--size PX] [--train N] [--test-good N] "
                       "[--test-bad N]",
                       "Writes a deterministic synthetic anomaly-detection dataset in MVTec AD layout:\n"
                       "<class>/train/good, <class>/test/<type>, <class>/ground_truth/<type>/<name>_mask.png.\n"
                       "Textures (weave, grid) and objects (nut, screw) with normal variation and drawn defects\n"
                       "with exact masks. Existing non-empty class folders are never overwritten.");
    if (r != PAD_ARGS_OK) return r == PAD_ARGS_HELP ? 0 : 2;
    if (!out) {
        pad_args_error(argv[0], "--out is required");
        return 2;
    }
    pad_synth_opts o;
    pad_synth_opts_default(&o);
    long v;
    if (classes_s) {
        if (!pad_args_int(argv[0], "classes", classes_s, 1, PAD_SYNTH_MAX_CLASSES, &v)) return 2;
        o.n_classes = (int)v;
    }
    if (seed_s) {
        if (!pad_args_int(argv[0], "seed", seed_s, 0, 2147483647L, &v)) return 2;
        o.seed = (uint64_t)v;
    }
    if (size_s) {
        if (!pad_args_int(argv[0], "size", size_s, 64, 2048, &v)) return 2;
        o.size = (int)v;
    }
    if (train_s) {
        if (!pad_args_int(argv[0], "train", train_s, 1, 10000, &v)) return 2;
        o.n_train = (int)v;
    }
    if (good_s) {
        if (!pad_args_int(argv[0], "test-good", good_s, 0, 10000, &v)) return 2;
        o.n_test_good = (int)v;
    }
    if (bad_s) {
        if (!pad_args_int(argv[0], "test-bad", bad_s, 0, 10000, &v)) return 2;
        o.n_test_bad = (int)v;
    }
    pad_synth_summary sum;
    if (pad_synth_write(out, &o, &sum) != PAD_OK) return 1;
    char names[256] = "", name[64];
    for (int c = 0; c < o.n_classes; c++) {
        size_t len = strlen(names);
        if (len + 70 >= sizeof names) {
            snprintf(names + len, sizeof names - len, ", ...");
            break;
        }
        snprintf(names + len, sizeof names - len, "%s%s", c ? ", " : "", pad_synth_class_name(c, name, sizeof name));
    }
    fprintf(stderr,
            "promptad synth: wrote %d class%s (%s) to %s: %d train + %d test images (%d defective, with masks), "
            "%dx%d px, seed %llu\n",
            sum.n_classes, sum.n_classes == 1 ? "" : "es", names, out, sum.n_train, sum.n_test, sum.n_test_bad, o.size,
            o.size, (unsigned long long)o.seed);
    return 0;
}
