/* fuzz_shots.c - libFuzzer target: official shot-list files (host/eval/shots.c, configs/official_shots/<dataset>.yaml).
 * The input is loaded as a list file; the lists of two classes are looked up for k = 1..8 and used to select shots from
 * a fake listing of ten train files in each of the three list modes. */
#include "fuzz_common.h"
#include "shots.h"

FUZZ_INITIALIZE_WITH_SETUP()

enum { N_TRAIN = 10 };

static void select_all(const pad_shot_lists *l, const char *cls_name) {
    static char names[N_TRAIN][32];
    char *train[N_TRAIN];
    int order[N_TRAIN];
    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(names[i], sizeof names[i], "root/%04d.JPG", i * 3);
        train[i] = names[i];
        order[i] = N_TRAIN - 1 - i;
    }
    pad_class_data cls;
    memset(&cls, 0, sizeof cls);
    cls.name = (char *)cls_name;
    cls.train = train;
    cls.n_train = N_TRAIN;
    cls.train_dir_order = order;
    for (int k = 1; k <= 8; k++) {
        const char *const *entries = NULL;
        if (pad_shot_lists_get(l, cls_name, k, &entries) != PAD_OK) continue;
        for (int i = 0; i < k; i++)
            if (!entries[i]) abort();
        for (int mode = PAD_SHOT_SELECT_SORTED_INDEX; mode <= PAD_SHOT_SELECT_GLOB; mode++) {
            pad_shots s;
            if (pad_shots_select(&cls, k, (pad_shot_select)mode, 0, l, &s) != PAD_OK) continue;
            for (int i = 0; i < k; i++)
                if (s.index[i] < 0 || s.index[i] >= N_TRAIN || strcmp(s.paths[i], train[s.index[i]]) != 0) abort();
            pad_shots_free(&s);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("shots.yaml", data, size);
    pad_shot_lists *l = NULL;
    if (pad_shot_lists_load(&l, path) == PAD_OK) {
        select_all(l, "candle");
        select_all(l, "bottle");
        pad_shot_lists_free(l);
    }
    return 0;
}
