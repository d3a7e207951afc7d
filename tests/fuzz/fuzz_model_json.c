/* fuzz_model_json.c - libFuzzer target: model.json of a saved predict model (host/run/predict.c). The input is the
 * model.json of a scratch model folder whose model.safetensors is a valid small model (k 1, grid 2, D 64, E 8);
 * `promptad predict` is called on it with no input image, so the description is parsed and checked against the
 * tensors and the weights it names, and the call must fail cleanly. */
#include "fuzz_common.h"
#include "predict.h"
#include "st_file.h"

#include <sys/stat.h>

static char g_model[300], g_out[300];

static void write_tensors(void) {
    static float mid[1 * 4 * 64], text[2 * 8];
    for (size_t i = 0; i < sizeof mid / sizeof mid[0]; i++)
        mid[i] = (float)i / 256.0f;
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        text[i] = (float)i;
    pad_st_writer *w = NULL;
    char p[400];
    snprintf(p, sizeof p, "%s/model.safetensors", g_model);
    if (pad_st_writer_init(&w) != PAD_OK ||
        pad_st_writer_add_f32(w, "shot_mid1", 3, (int64_t[]){1, 4, 64}, mid) != PAD_OK ||
        pad_st_writer_add_f32(w, "shot_mid2", 3, (int64_t[]){1, 4, 64}, mid) != PAD_OK ||
        pad_st_writer_add_f32(w, "cls_text_features", 2, (int64_t[]){2, 8}, text) != PAD_OK ||
        pad_st_writer_save(w, p) != PAD_OK)
        abort();
    pad_st_writer_free(w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup();
    fuzz_path(g_model, sizeof g_model, "model");
    fuzz_path(g_out, sizeof g_out, "out");
    if (mkdir(g_model, 0777) != 0) abort();
    write_tensors();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char p[400];
    snprintf(p, sizeof p, "%s/model.json", g_model);
    fuzz_write(p, data, size);
    pad_predict_opts o;
    memset(&o, 0, sizeof o);
    o.model_dir = g_model;
    o.out_dir = g_out;
    o.device = PAD_BACKEND_CPU;
    o.threads = 1;
    o.heatmaps = false;
    int n = -1;
    if (pad_predict(&o, &n) == PAD_OK || n != 0) abort(); // no input image: never a success
    return 0;
}
