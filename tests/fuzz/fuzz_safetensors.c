/* fuzz_safetensors.c - libFuzzer target: a safetensors file (host/io/st_file.c) as the weights loader meets it. The
 * input is written to a file and opened (header JSON, dtypes, shapes, offsets), every small tensor is read and
 * converted to F32, then the OpenCLIP architecture is inferred from the shapes (pad_weights_probe,
 * host/model/weights.c). */
#include "fuzz_common.h"
#include "st_file.h"
#include "weights.h"

FUZZ_INITIALIZE_WITH_SETUP()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("input.safetensors", data, size);
    pad_st_file *f = NULL;
    if (pad_st_open(&f, path) == PAD_OK) {
        for (int i = 0; i < f->n_tensors; i++) {
            const pad_st_tensor *t = &f->tensors[i];
            if (pad_st_find(f, t->name) == NULL) abort(); // every listed tensor can be found by its name
            if (t->nbytes > ((size_t)1 << 20)) continue;
            float *v = NULL;
            if (pad_st_read_f32(f, t->name, -1, NULL, &v, NULL) == PAD_OK) {
                volatile float sink = t->numel > 0 ? v[t->numel - 1] : 0.0f;
                (void)sink;
            }
            free(v);
            char shape[256];
            pad_st_shape_str(shape, sizeof shape, t->ndim, t->shape);
        }
        pad_st_close(f);
    }
    pad_clip_cfg cfg;
    (void)pad_weights_probe(path, &cfg);
    return 0;
}
