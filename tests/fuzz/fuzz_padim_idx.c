/* fuzz_padim_idx.c - libFuzzer target: a PaDiM channel-subset file (`promptad score --method padim --padim-idx`) as
 * pad_padim_read_idx (host/model/padim.c) meets it: the input is written to a file and read against the channel
 * count of wide_resnet50_2's layer1..3 (1792). An accepted subset must hold 1..1792 distinct values in [0, 1792);
 * a refused one must leave nothing behind. */
#include "fuzz_common.h"
#include "padim.h"

#define TOTAL 1792

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[300];
    fuzz_path(path, sizeof path, "idx.safetensors");
    fuzz_write(path, data, size);
    int32_t *idx = NULL;
    int n = -1;
    if (pad_padim_read_idx(path, TOTAL, &idx, &n) != PAD_OK) {
        if (idx || n != 0) abort();
        return 0;
    }
    if (n < 1 || n > TOTAL) abort();
    static unsigned char seen[TOTAL];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= TOTAL || seen[idx[i]]) abort();
        seen[idx[i]] = 1;
    }
    free(idx);
    return 0;
}
