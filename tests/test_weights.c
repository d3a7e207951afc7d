/* test_weights.c - OpenCLIP checkpoint loading: architecture inference for several shapes, F16/BF16 and "module."
 * checkpoints, the random generator's determinism, and errors that name the file and the tensor. */
#include "check.h"
#include "log.h"
#include "st_file.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_clip_cfg small_cfg(void) {
    pad_clip_cfg c;
    memset(&c, 0, sizeof c);
    c.vision = (pad_vision_cfg){.width = 192, .layers = 3, .patch = 8, .image_size = 40, .mlp = 96};
    c.text = (pad_text_cfg){.width = 64, .layers = 2, .context = 16, .vocab = 100, .mlp = 256};
    c.embed_dim = 48;
    return c;
}

static void cfg_eq(const pad_clip_cfg *a, const pad_clip_cfg *b) {
    cr_assert(a->vision.width == b->vision.width && a->vision.layers == b->vision.layers &&
              a->vision.patch == b->vision.patch && a->vision.image_size == b->vision.image_size &&
              a->vision.mlp == b->vision.mlp && a->vision.heads == b->vision.width / 64 &&
              a->vision.grid == b->vision.image_size / b->vision.patch);
    cr_assert(a->text.width == b->text.width && a->text.layers == b->text.layers &&
              a->text.context == b->text.context && a->text.vocab == b->text.vocab && a->text.mlp == b->text.mlp &&
              a->text.heads == b->text.width / 64);
    cr_assert(a->embed_dim == b->embed_dim);
}

Test(weights, generated_model_roundtrip_infers_architecture) {
    char *dir = pad_test_tmpdir("w");
    char path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    pad_clip_cfg cfgs[3] = {small_cfg(), pad_model_preset_cfg(PAD_MODEL_TINY), small_cfg()};
    cfgs[2].vision.layers = 1; // a 1-layer, 3-head vision tower
    for (int k = 0; k < 3; k++) {
        pad_clip_weights *w, *r;
        cr_assert(pad_weights_make_random(&w, &cfgs[k], 7) == PAD_OK);
        cr_assert(pad_weights_save(w, path) == PAD_OK);
        cr_assert(pad_weights_load(&r, path, PAD_WEIGHTS_ALL) == PAD_OK);
        cfg_eq(&r->cfg, &w->cfg);
        cr_assert(r->logit_scale == w->logit_scale && fabsf(r->logit_scale - 4.6051702f) < 1e-6f);
        cr_assert(r->n_floats == w->n_floats);
        cr_assert(memcmp(r->data, w->data, w->n_floats * sizeof(float)) == 0, "loaded weights differ");
        pad_clip_cfg probed;
        cr_assert(pad_weights_probe(path, &probed) == PAD_OK);
        cfg_eq(&probed, &w->cfg);
        pad_weights_free(w);
        pad_weights_free(r);
    }
}

Test(weights, generator_is_deterministic_and_seeded) {
    pad_clip_cfg c = small_cfg();
    pad_clip_weights *a, *b, *d;
    cr_assert(pad_weights_make_random(&a, &c, 1) == PAD_OK);
    cr_assert(pad_weights_make_random(&b, &c, 1) == PAD_OK);
    cr_assert(pad_weights_make_random(&d, &c, 2) == PAD_OK);
    cr_assert(memcmp(a->data, b->data, a->n_floats * 4) == 0);
    cr_assert(memcmp(a->data, d->data, a->n_floats * 4) != 0);
    // init ranges: LayerNorm weights near 1, linear weights within +-1/sqrt(fan_in)
    for (int i = 0; i < c.vision.width; i++)
        cr_assert(a->vis[0].ln1_w[i] >= 0.9f && a->vis[0].ln1_w[i] <= 1.1f);
    float lim = 1.0f / sqrtf((float)c.vision.width);
    for (int i = 0; i < 3 * c.vision.width * c.vision.width; i++)
        cr_assert(fabsf(a->vis[0].in_proj_w[i]) <= lim);
    pad_weights_free(a);
    pad_weights_free(b);
    pad_weights_free(d);
}

// Re-writes a checkpoint with every tensor in dtype dt (F16 or BF16 rounding) and an optional name prefix.
static void rewrite(const char *src, const char *dst, pad_dtype dt, const char *prefix) {
    pad_st_file *f;
    cr_assert(pad_st_open(&f, src) == PAD_OK);
    pad_st_writer *w;
    cr_assert(pad_st_writer_init(&w) == PAD_OK);
    for (int i = 0; i < f->n_tensors; i++) {
        const pad_st_tensor *t = &f->tensors[i];
        float *x;
        cr_assert(pad_st_read_f32(f, t->name, -1, NULL, &x, NULL) == PAD_OK);
        uint16_t *h = malloc((size_t)(t->numel + 1) * 2);
        for (int64_t k = 0; k < t->numel; k++) {
            uint32_t bits;
            memcpy(&bits, &x[k], 4);
            h[k] = dt == PAD_DTYPE_F16 ? pad_f32_to_f16(x[k]) : (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
        }
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        cr_assert(pad_st_writer_add(w, name, dt, t->ndim, t->shape, h) == PAD_OK);
        free(h);
        free(x);
    }
    cr_assert(pad_st_writer_save(w, dst) == PAD_OK);
    pad_st_writer_free(w);
    pad_st_close(f);
}

Test(weights, half_bfloat16_and_module_prefix_checkpoints_load) {
    char *dir = pad_test_tmpdir("wh");
    char p32[512], p16[512], pbf[512];
    snprintf(p32, sizeof p32, "%s/a.safetensors", dir);
    snprintf(p16, sizeof p16, "%s/b.safetensors", dir);
    snprintf(pbf, sizeof pbf, "%s/c.safetensors", dir);
    pad_clip_cfg c = small_cfg();
    pad_clip_weights *w, *h, *b;
    cr_assert(pad_weights_make_random(&w, &c, 3) == PAD_OK);
    cr_assert(pad_weights_save(w, p32) == PAD_OK);
    rewrite(p32, p16, PAD_DTYPE_F16, "module.");
    rewrite(p32, pbf, PAD_DTYPE_BF16, "");
    cr_assert(pad_weights_load(&h, p16, PAD_WEIGHTS_ALL) == PAD_OK);
    cr_assert(pad_weights_load(&b, pbf, PAD_WEIGHTS_ALL) == PAD_OK);
    for (size_t i = 0; i < w->n_floats; i++) {
        float x = w->data[i];
        cr_assert(fabsf(h->data[i] - x) <= fabsf(x) * 0x1p-11f + 0x1p-24f, "f16 %zu: %g vs %g", i, h->data[i], x);
        cr_assert(fabsf(b->data[i] - x) <= fabsf(x) * 0x1p-8f, "bf16 %zu: %g vs %g", i, b->data[i], x);
    }
    cr_assert(fabsf(h->logit_scale - w->logit_scale) < 4e-3f);
    pad_weights_free(w);
    pad_weights_free(h);
    pad_weights_free(b);
}

Test(weights, vision_only_load_and_missing_tensors_are_named) {
    const char *logged = pad_test_log_text();
    char *dir = pad_test_tmpdir("wm");
    char full[512], cut[512];
    snprintf(full, sizeof full, "%s/a.safetensors", dir);
    snprintf(cut, sizeof cut, "%s/cut.safetensors", dir);
    pad_clip_cfg c = small_cfg();
    pad_clip_weights *w, *v;
    cr_assert(pad_weights_make_random(&w, &c, 5) == PAD_OK);
    cr_assert(pad_weights_save(w, full) == PAD_OK);
    cr_assert(pad_weights_load(&v, full, PAD_WEIGHTS_VISION) == PAD_OK);
    cr_assert(v->tok_emb == NULL && v->txt == NULL && v->conv1_w != NULL);
    cr_assert(memcmp(v->vis[2].fc_w, w->vis[2].fc_w, sizeof(float) * 96 * 192) == 0);
    pad_weights_free(v);

    // drop one tensor: the error names the file and the tensor
    pad_st_file *f;
    cr_assert(pad_st_open(&f, full) == PAD_OK);
    pad_st_writer *wr;
    cr_assert(pad_st_writer_init(&wr) == PAD_OK);
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, "visual.transformer.resblocks.1.attn.out_proj.bias") != 0)
            cr_assert(pad_st_writer_add(wr, f->tensors[i].name, f->tensors[i].dtype, f->tensors[i].ndim,
                                        f->tensors[i].shape, f->tensors[i].data) == PAD_OK);
    cr_assert(pad_st_writer_save(wr, cut) == PAD_OK);
    pad_st_writer_free(wr);
    pad_st_close(f);
    pad_test_log_start_all();
    pad_clip_weights *bad = (pad_clip_weights *)1;
    cr_assert(pad_weights_load(&bad, cut, PAD_WEIGHTS_ALL) == PAD_ERR_FORMAT);
    cr_assert(bad == NULL);
    cr_assert(strstr(logged, "visual.transformer.resblocks.1.attn.out_proj.bias") && strstr(logged, cut), "log: %s",
              logged);
    pad_test_log_start_all();
    char nowhere[600];
    snprintf(nowhere, sizeof nowhere, "%s/none.safetensors", dir);
    cr_assert(pad_weights_load(&bad, nowhere, PAD_WEIGHTS_ALL) == PAD_ERR_IO);
    cr_assert(strstr(logged, "weights/README.md") && strstr(logged, nowhere), "log: %s", logged);
    pad_test_log_stop();
    pad_weights_free(w);
}

Test(weights, cli_make_model_writes_302_tensors) {
    char *dir = pad_test_tmpdir("wc");
    pad_cmd_result r =
        pad_cmd_run("%s make-model --preset tiny --seed 3 --out %s/t.safetensors", pad_test_binary(), dir);
    cr_assert(r.exit_code == 0, "make-model failed: %s", r.err);
    pad_cmd_free(&r);
    char path[512];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    pad_st_file *f;
    cr_assert(pad_st_open(&f, path) == PAD_OK);
    cr_assert(f->n_tensors == 302, "%d tensors", f->n_tensors);
    pad_st_close(f);
    r = pad_cmd_run("%s make-model --preset huge --out %s/x.safetensors", pad_test_binary(), dir);
    cr_assert(r.exit_code == 2 && strstr(r.err, "huge"), "bad preset: exit %d, %s", r.exit_code, r.err);
    pad_cmd_free(&r);
}

typedef struct raw_tensor {
    const char *name, *shape; // shape as JSON, e.g. "[64, 3, 16, 16]"
    size_t nbytes;            // U8 data (zeros)
} raw_tensor;

// Writes a safetensors file of U8 tensors with the given shapes (zero-size ones may declare any dimension).
static const char *write_tensors(const char *dir, const char *name, const raw_tensor *t, int n) {
    char hdr[4096];
    size_t len = 0, off = 0;
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, "{");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(hdr + len, sizeof hdr - len,
                                "%s\"%s\":{\"dtype\":\"U8\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}", i ? "," : "",
                                t[i].name, t[i].shape, off, off + t[i].nbytes);
        off += t[i].nbytes;
    }
    snprintf(hdr + len, sizeof hdr - len, "}");
    const char *path = pad_test_fmt("%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    cr_assert(fp);
    uint64_t hl = strlen(hdr);
    fwrite(&hl, 8, 1, fp);
    fwrite(hdr, 1, hl, fp);
    for (size_t i = 0; i < off; i++)
        fputc(0, fp);
    fclose(fp);
    return path;
}

// Regression (issue 15): shape inference cast 64-bit header dimensions to int and computed T - 1, G * G, G * patch
// and 3 * C with them (signed overflow); zero-size tensors can declare any dimension without data. Every inferred size
// is now range-checked first, and the error names the file, the tensor and the value.
Test(weights, huge_dimensions_of_zero_size_tensors_are_refused) {
    char *dir = pad_test_tmpdir("weights_huge");
    const raw_tensor conv = {"visual.conv1.weight", "[64, 3, 16, 16]", 64 * 3 * 16 * 16};
    const raw_tensor pos = {"visual.positional_embedding", "[17, 0]", 0}; // G = 4
    const raw_tensor proj = {"visual.proj", "[0, 64]", 0};
    const raw_tensor fc = {"visual.transformer.resblocks.0.mlp.c_fc.weight", "[256, 0]", 0};
    const raw_tensor ln = {"visual.transformer.resblocks.0.ln_1.weight", "[0]", 0};
    const struct {
        raw_tensor t;
        const char *want;
    } cases[] = {
        {{"visual.conv1.weight", "[1099511627776, 3, 0, 0]", 0}, "visual.conv1.weight gives width 1099511627776"},
        {{"visual.conv1.weight", "[64, 3, 0, 0]", 0}, "visual.conv1.weight gives patch 0"},
        {{"visual.positional_embedding", "[2147483649, 0]", 0}, "visual.positional_embedding gives rows 2147483649"},
        {{"visual.positional_embedding", "[1, 0]", 0}, "visual.positional_embedding gives rows 1"},
        {{"visual.positional_embedding", "[1048577, 0]", 0}, "image size 1024 x 1024 patches of 16"},
        {{"visual.proj", "[0, 4294967360]", 0}, "visual.proj gives embed dim 4294967360"},
        {{"visual.transformer.resblocks.0.mlp.c_fc.weight", "[34359738368, 0]", 0}, "gives MLP width 34359738368"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raw_tensor t[5] = {conv, pos, proj, fc, ln};
        for (int k = 0; k < 5; k++)
            if (strcmp(t[k].name, cases[i].t.name) == 0) t[k] = cases[i].t;
        const char *path = write_tensors(dir, pad_test_fmt("case%zu.safetensors", i), t, 5);
        pad_test_log_start_all();
        pad_clip_cfg cfg;
        cr_assert(pad_weights_probe(path, &cfg) == PAD_ERR_FORMAT, "case %zu accepted", i);
        cr_assert(strstr(pad_test_log_text(), path) && strstr(pad_test_log_text(), cases[i].want), "case %zu: %s", i,
                  pad_test_log_text());
        pad_clip_weights *w = NULL;
        cr_assert(pad_weights_load(&w, path, PAD_WEIGHTS_VISION) == PAD_ERR_FORMAT && !w, "case %zu loaded", i);
    }
    pad_test_log_stop();
    // the same file with sane shapes infers its architecture, and a load stops at the first tensor the file lacks
    // (before allocating anything for the declared sizes)
    raw_tensor t[5] = {conv, pos, proj, fc, ln};
    const char *path = write_tensors(dir, "sane.safetensors", t, 5);
    pad_clip_cfg cfg;
    cr_assert(pad_weights_probe(path, &cfg) == PAD_OK, "%s", pad_test_log_text());
    cr_assert(cfg.vision.width == 64 && cfg.vision.patch == 16 && cfg.vision.grid == 4 && cfg.vision.image_size == 64 &&
              cfg.vision.layers == 1 && cfg.vision.mlp == 256 && cfg.embed_dim == 64);
    pad_test_log_start_all();
    pad_clip_weights *w = NULL;
    cr_assert(pad_weights_load(&w, path, PAD_WEIGHTS_VISION) == PAD_ERR_FORMAT && !w);
    cr_assert(strstr(pad_test_log_text(), "visual.class_embedding"), "%s", pad_test_log_text());
    pad_test_log_stop();
}
