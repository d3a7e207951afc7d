/* weights.c - OpenCLIP checkpoint loading with architecture inference, saving, upload to a backend, and the
 * deterministic random-weight generator (see weights.h). Every function walks one table of (OpenCLIP name, slot,
 * shape) built by tensor_table(), so the names and shapes live in one place. */
#include "weights.h"

#include "log.h"
#include "st_file.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define WEIGHTS_HINT "download and convert the real weights with weights/get_weights.sh (see weights/README.md)"

// ----------------------------------------------------------------------------
// the tensor table

typedef enum init_kind {
    INIT_LINEAR, // +-1/sqrt(fan_in) with fan_in = last dim (or the product of the trailing dims for conv)
    INIT_PROJ,   // +-1/sqrt(rows) for x @ P
    INIT_BIAS,   // +-0.02
    INIT_LN_W,   // 1 +- 0.1
    INIT_LN_B,   // +-0.05
    INIT_EMB,    // +-0.05
    INIT_TOKEN,  // +-0.1
} init_kind;

typedef struct tensor_entry {
    char name[96];
    float **slot;
    int ndim;
    int64_t shape[4];
    init_kind init;
} tensor_entry;

typedef struct tensor_table {
    tensor_entry *e;
    int n, cap;
} tensor_table;

static int table_add(tensor_table *t, float **slot, init_kind init, int ndim, int64_t d0, int64_t d1, int64_t d2,
                     int64_t d3, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

static int table_add(tensor_table *t, float **slot, init_kind init, int ndim, int64_t d0, int64_t d1, int64_t d2,
                     int64_t d3, const char *fmt, ...) {
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        tensor_entry *e = (tensor_entry *)realloc(t->e, (size_t)cap * sizeof *e);
        if (!e) return 0;
        t->e = e;
        t->cap = cap;
    }
    tensor_entry *e = &t->e[t->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    e->slot = slot;
    e->init = init;
    e->ndim = ndim;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->shape[2] = d2;
    e->shape[3] = d3;
    return 1;
}

static size_t entry_numel(const tensor_entry *e) {
    size_t n = 1;
    for (int i = 0; i < e->ndim; i++)
        n *= (size_t)e->shape[i];
    return n;
}

static int add_blocks(tensor_table *t, pad_block_weights *blk, int layers, int C, int H, const char *prefix) {
    int ok = 1;
    for (int l = 0; l < layers; l++) {
        pad_block_weights *b = &blk[l];
        ok &= table_add(t, &b->ln1_w, INIT_LN_W, 1, C, 0, 0, 0, "%sresblocks.%d.ln_1.weight", prefix, l);
        ok &= table_add(t, &b->ln1_b, INIT_LN_B, 1, C, 0, 0, 0, "%sresblocks.%d.ln_1.bias", prefix, l);
        ok &= table_add(t, &b->in_proj_w, INIT_LINEAR, 2, 3 * C, C, 0, 0, "%sresblocks.%d.attn.in_proj_weight", prefix,
                        l);
        ok &= table_add(t, &b->in_proj_b, INIT_BIAS, 1, 3 * C, 0, 0, 0, "%sresblocks.%d.attn.in_proj_bias", prefix, l);
        ok &=
            table_add(t, &b->out_proj_w, INIT_LINEAR, 2, C, C, 0, 0, "%sresblocks.%d.attn.out_proj.weight", prefix, l);
        ok &= table_add(t, &b->out_proj_b, INIT_BIAS, 1, C, 0, 0, 0, "%sresblocks.%d.attn.out_proj.bias", prefix, l);
        ok &= table_add(t, &b->ln2_w, INIT_LN_W, 1, C, 0, 0, 0, "%sresblocks.%d.ln_2.weight", prefix, l);
        ok &= table_add(t, &b->ln2_b, INIT_LN_B, 1, C, 0, 0, 0, "%sresblocks.%d.ln_2.bias", prefix, l);
        ok &= table_add(t, &b->fc_w, INIT_LINEAR, 2, H, C, 0, 0, "%sresblocks.%d.mlp.c_fc.weight", prefix, l);
        ok &= table_add(t, &b->fc_b, INIT_BIAS, 1, H, 0, 0, 0, "%sresblocks.%d.mlp.c_fc.bias", prefix, l);
        ok &= table_add(t, &b->proj_w, INIT_LINEAR, 2, C, H, 0, 0, "%sresblocks.%d.mlp.c_proj.weight", prefix, l);
        ok &= table_add(t, &b->proj_b, INIT_BIAS, 1, C, 0, 0, 0, "%sresblocks.%d.mlp.c_proj.bias", prefix, l);
    }
    return ok;
}

// Builds the table of every tensor of w's towers (w->cfg and w->parts must be set, w->vis / w->txt allocated).
static pad_status tensor_table_build(pad_clip_weights *w, tensor_table *t) {
    const pad_vision_cfg *v = &w->cfg.vision;
    const pad_text_cfg *x = &w->cfg.text;
    const int E = w->cfg.embed_dim;
    int ok = 1;
    if (w->parts & PAD_WEIGHTS_VISION) {
        const int D = v->width;
        ok &= table_add(t, &w->conv1_w, INIT_LINEAR, 4, D, 3, v->patch, v->patch, "visual.conv1.weight");
        ok &= table_add(t, &w->class_emb, INIT_EMB, 1, D, 0, 0, 0, "visual.class_embedding");
        ok &= table_add(t, &w->vis_pos, INIT_EMB, 2, v->tokens, D, 0, 0, "visual.positional_embedding");
        ok &= table_add(t, &w->ln_pre_w, INIT_LN_W, 1, D, 0, 0, 0, "visual.ln_pre.weight");
        ok &= table_add(t, &w->ln_pre_b, INIT_LN_B, 1, D, 0, 0, 0, "visual.ln_pre.bias");
        ok &= add_blocks(t, w->vis, v->layers, D, v->mlp, "visual.transformer.");
        ok &= table_add(t, &w->ln_post_w, INIT_LN_W, 1, D, 0, 0, 0, "visual.ln_post.weight");
        ok &= table_add(t, &w->ln_post_b, INIT_LN_B, 1, D, 0, 0, 0, "visual.ln_post.bias");
        ok &= table_add(t, &w->vis_proj, INIT_PROJ, 2, D, E, 0, 0, "visual.proj");
    }
    if (w->parts & PAD_WEIGHTS_TEXT) {
        const int W = x->width;
        ok &= table_add(t, &w->tok_emb, INIT_TOKEN, 2, x->vocab, W, 0, 0, "token_embedding.weight");
        ok &= table_add(t, &w->txt_pos, INIT_EMB, 2, x->context, W, 0, 0, "positional_embedding");
        ok &= add_blocks(t, w->txt, x->layers, W, x->mlp, "transformer.");
        ok &= table_add(t, &w->ln_final_w, INIT_LN_W, 1, W, 0, 0, 0, "ln_final.weight");
        ok &= table_add(t, &w->ln_final_b, INIT_LN_B, 1, W, 0, 0, 0, "ln_final.bias");
        ok &= table_add(t, &w->txt_proj, INIT_PROJ, 2, W, E, 0, 0, "text_projection");
    }
    return ok ? PAD_OK : PAD_ERR_OOM;
}

// Allocates the block arrays and the single data block, and points every slot into it. With a checkpoint f, every
// tensor of the table must first be in f (under prefix) with the table's shape: the data block is then no larger
// than what the file holds (as F32), whatever sizes its header declares.
static pad_status weights_alloc(pad_clip_weights *w, tensor_table *t, const pad_st_file *f, const char *prefix) {
    if (w->parts & PAD_WEIGHTS_VISION)
        w->vis = (pad_block_weights *)calloc((size_t)w->cfg.vision.layers, sizeof *w->vis);
    if (w->parts & PAD_WEIGHTS_TEXT) w->txt = (pad_block_weights *)calloc((size_t)w->cfg.text.layers, sizeof *w->txt);
    if (((w->parts & PAD_WEIGHTS_VISION) && !w->vis) || ((w->parts & PAD_WEIGHTS_TEXT) && !w->txt)) return PAD_ERR_OOM;
    PAD_TRY(tensor_table_build(w, t));
    for (int i = 0; f && i < t->n; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s%s", prefix, t->e[i].name);
        PAD_TRY(pad_st_check_shape(f, full, t->e[i].ndim, t->e[i].shape));
    }
    size_t n = 0;
    for (int i = 0; i < t->n; i++)
        n += (entry_numel(&t->e[i]) + 15) & ~(size_t)15; // keep every tensor 64-byte aligned
    w->n_floats = n;
    w->data = (float *)aligned_alloc(64, (n ? n : 16) * sizeof(float));
    if (!w->data) {
        PAD_LOG_ERROR("out of memory for %zu MB of weights", n * 4 >> 20);
        return PAD_ERR_OOM;
    }
    w->owns_data = true;
    size_t off = 0;
    for (int i = 0; i < t->n; i++) {
        *t->e[i].slot = w->data + off;
        off += (entry_numel(&t->e[i]) + 15) & ~(size_t)15;
    }
    return PAD_OK;
}

void pad_weights_free(pad_clip_weights *w) {
    if (!w) return;
    if (w->owns_data) {
        if (w->be)
            pad_buf_free(w->be, w->data);
        else
            free(w->data);
    }
    free(w->vis);
    free(w->txt);
    free(w);
}

pad_status pad_clip_cfg_check(const pad_clip_cfg *c) {
    const pad_vision_cfg *v = &c->vision;
    const pad_text_cfg *x = &c->text;
    if (c->embed_dim <= 0 || v->width <= 0 || v->width % 64 || v->layers <= 0 || v->patch <= 0 || v->image_size <= 0 ||
        v->image_size % v->patch || v->mlp <= 0 || x->width <= 0 || x->width % 64 || x->layers <= 0 ||
        x->context <= 0 || x->vocab <= 0 || x->mlp <= 0 || (c->act != PAD_ACT_GELU && c->act != PAD_ACT_QUICK_GELU)) {
        PAD_LOG_ERROR("invalid model configuration: widths must be positive multiples of 64 (head width 64), the "
                      "image size a multiple of the patch size and the activation GELU or QuickGELU");
        return PAD_ERR_INVALID_ARG;
    }
    if (c->embed_dim > PAD_WEIGHTS_MAX_WIDTH || v->width > PAD_WEIGHTS_MAX_WIDTH || x->width > PAD_WEIGHTS_MAX_WIDTH ||
        v->mlp > PAD_WEIGHTS_MAX_MLP || x->mlp > PAD_WEIGHTS_MAX_MLP || v->layers > PAD_WEIGHTS_MAX_LAYERS ||
        x->layers > PAD_WEIGHTS_MAX_LAYERS || v->image_size > PAD_WEIGHTS_MAX_IMAGE ||
        v->image_size / v->patch > PAD_WEIGHTS_MAX_GRID || x->context > PAD_WEIGHTS_MAX_CONTEXT ||
        x->vocab > PAD_WEIGHTS_MAX_VOCAB) {
        PAD_LOG_ERROR("invalid model configuration: a size is beyond the limits of weights.h (width %d, %d, embed %d, "
                      "mlp %d, %d, layers %d, %d, image %d, context %d, vocab %d)",
                      v->width, x->width, c->embed_dim, v->mlp, x->mlp, v->layers, x->layers, v->image_size, x->context,
                      x->vocab);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

static void cfg_derive(pad_clip_cfg *c) {
    c->vision.head_dim = 64;
    c->vision.heads = c->vision.width / 64;
    c->vision.grid = c->vision.image_size / c->vision.patch;
    c->vision.tokens = 1 + c->vision.grid * c->vision.grid;
    c->text.head_dim = 64;
    c->text.heads = c->text.width / 64;
}

// ----------------------------------------------------------------------------
// loading

// Returns the tensor `name` (with the file's prefix), or NULL.
static const pad_st_tensor *find(const pad_st_file *f, const char *prefix, const char *name) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return pad_st_find(f, full);
}

// Looks up names[0..n) under prefix into t[0..n). A missing one: logs "<file>: missing tensor '<name>' (<hint>)" for
// the first and returns false.
static bool find_all(const pad_st_file *f, const char *prefix, const char *const *names, int n, const pad_st_tensor **t,
                     const char *hint) {
    for (int i = 0; i < n; i++)
        if (!(t[i] = find(f, prefix, names[i]))) {
            PAD_LOG_ERROR("%s: missing tensor '%s' (%s)", f->path, names[i], hint);
            return false;
        }
    return true;
}

// The number of blocks resblocks.0.. of a tower (stops one past PAD_WEIGHTS_MAX_LAYERS; the caller refuses that).
static int count_layers(const pad_st_file *f, const char *prefix, const char *tower) {
    int n = 0;
    char name[160];
    while (n <= PAD_WEIGHTS_MAX_LAYERS) {
        snprintf(name, sizeof name, "%sresblocks.%d.ln_1.weight", tower, n);
        if (!find(f, prefix, name)) return n;
        n++;
    }
    return n;
}

// *out = shape entry `v` of tensor `name` when it is in [lo, hi]; else one error naming the file, the tensor and the
// value, and false. Every size read from a header goes through here before any arithmetic (a zero-size tensor may
// declare any dimension: its data does not bound it).
static bool dim_in(const char *path, const char *name, const char *what, int64_t v, int64_t lo, int64_t hi, int *out) {
    if (v < lo || v > hi) {
        PAD_LOG_ERROR("%s: %s gives %s %lld (supported: %lld to %lld)", path, name, what, (long long)v, (long long)lo,
                      (long long)hi);
        return false;
    }
    *out = (int)v;
    return true;
}

static bool layers_ok(const char *path, const char *tower, int n) {
    if (n <= PAD_WEIGHTS_MAX_LAYERS) return true;
    PAD_LOG_ERROR("%s: more than %d %sresblocks (supported: at most %d)", path, PAD_WEIGHTS_MAX_LAYERS, tower,
                  PAD_WEIGHTS_MAX_LAYERS);
    return false;
}

static pad_status infer_cfg(const pad_st_file *f, const char *prefix, pad_weights_parts parts, pad_clip_cfg *c) {
    memset(c, 0, sizeof *c);
    const char *path = f->path;
    const pad_st_tensor *t;
    if (parts & PAD_WEIGHTS_VISION) {
        static const char *const names[4] = {"visual.conv1.weight", "visual.positional_embedding", "visual.proj",
                                             "visual.transformer.resblocks.0.mlp.c_fc.weight"};
        const pad_st_tensor *req[4];
        if (!find_all(f, prefix, names, 4, req, "not an OpenCLIP ViT checkpoint?")) return PAD_ERR_FORMAT;
        const pad_st_tensor *conv = req[0], *pos = req[1], *proj = req[2], *fc = req[3];
        if (conv->ndim != 4 || conv->shape[1] != 3 || conv->shape[2] != conv->shape[3] || pos->ndim != 2 ||
            proj->ndim != 2 || fc->ndim != 2) {
            PAD_LOG_ERROR("%s: unexpected shapes for the vision tower (visual.conv1.weight must be (D, 3, P, P))",
                          path);
            return PAD_ERR_FORMAT;
        }
        int T = 0;
        if (!dim_in(path, names[0], "width", conv->shape[0], 64, PAD_WEIGHTS_MAX_WIDTH, &c->vision.width) ||
            !dim_in(path, names[0], "patch", conv->shape[2], 1, PAD_WEIGHTS_MAX_IMAGE, &c->vision.patch) ||
            !dim_in(path, names[1], "rows", pos->shape[0], 2, 1 + (int64_t)PAD_WEIGHTS_MAX_GRID * PAD_WEIGHTS_MAX_GRID,
                    &T) ||
            !dim_in(path, names[3], "MLP width", fc->shape[0], 1, PAD_WEIGHTS_MAX_MLP, &c->vision.mlp) ||
            !dim_in(path, names[2], "embed dim", proj->shape[1], 1, PAD_WEIGHTS_MAX_WIDTH, &c->embed_dim))
            return PAD_ERR_FORMAT;
        int G = (int)lround(sqrt((double)(T - 1)));
        if (G * G != T - 1) {
            PAD_LOG_ERROR("%s: visual.positional_embedding has %d rows, not 1 + G*G", path, T);
            return PAD_ERR_FORMAT;
        }
        if ((int64_t)G * c->vision.patch > PAD_WEIGHTS_MAX_IMAGE) {
            PAD_LOG_ERROR("%s: image size %d x %d patches of %d is beyond %d", path, G, G, c->vision.patch,
                          PAD_WEIGHTS_MAX_IMAGE);
            return PAD_ERR_FORMAT;
        }
        c->vision.image_size = G * c->vision.patch;
        c->vision.layers = count_layers(f, prefix, "visual.transformer.");
        if (!layers_ok(path, "visual.transformer.", c->vision.layers)) return PAD_ERR_FORMAT;
    }
    if (parts & PAD_WEIGHTS_TEXT) {
        static const char *const names[4] = {"token_embedding.weight", "positional_embedding", "text_projection",
                                             "transformer.resblocks.0.mlp.c_fc.weight"};
        const pad_st_tensor *req[4];
        if (!find_all(f, prefix, names, 4, req, "not an OpenCLIP checkpoint with a text tower?")) return PAD_ERR_FORMAT;
        const pad_st_tensor *tok = req[0], *pos = req[1], *proj = req[2], *fc = req[3];
        if (tok->ndim != 2 || pos->ndim != 2 || proj->ndim != 2 || fc->ndim != 2) {
            PAD_LOG_ERROR("%s: unexpected shapes for the text tower", path);
            return PAD_ERR_FORMAT;
        }
        if (!dim_in(path, names[0], "vocabulary size", tok->shape[0], 1, PAD_WEIGHTS_MAX_VOCAB, &c->text.vocab) ||
            !dim_in(path, names[0], "width", tok->shape[1], 64, PAD_WEIGHTS_MAX_WIDTH, &c->text.width) ||
            !dim_in(path, names[1], "context", pos->shape[0], 1, PAD_WEIGHTS_MAX_CONTEXT, &c->text.context) ||
            !dim_in(path, names[3], "MLP width", fc->shape[0], 1, PAD_WEIGHTS_MAX_MLP, &c->text.mlp) ||
            !dim_in(path, names[2], "embed dim", proj->shape[1], 1, PAD_WEIGHTS_MAX_WIDTH, &(int){0}))
            return PAD_ERR_FORMAT;
        c->text.layers = count_layers(f, prefix, "transformer.");
        if (!layers_ok(path, "transformer.", c->text.layers)) return PAD_ERR_FORMAT;
        if ((parts & PAD_WEIGHTS_VISION) && c->embed_dim != (int)proj->shape[1]) {
            PAD_LOG_ERROR("%s: text_projection gives embed dim %lld but visual.proj gives %d", path,
                          (long long)proj->shape[1], c->embed_dim);
            return PAD_ERR_FORMAT;
        }
        c->embed_dim = (int)proj->shape[1];
    } else {
        // defaults that keep pad_clip_cfg_check happy for vision-only configurations
        c->text = (pad_text_cfg){64, 1, 1, 64, 1, 1, 64};
    }
    if (!(parts & PAD_WEIGHTS_VISION)) c->vision = (pad_vision_cfg){64, 1, 1, 64, 1, 1, 1, 2, 64};
    if ((parts & PAD_WEIGHTS_VISION) && c->vision.width % 64) {
        PAD_LOG_ERROR("%s: vision width %d is not a multiple of the head width 64", path, c->vision.width);
        return PAD_ERR_FORMAT;
    }
    if ((parts & PAD_WEIGHTS_TEXT) && c->text.width % 64) {
        PAD_LOG_ERROR("%s: text width %d is not a multiple of the head width 64", path, c->text.width);
        return PAD_ERR_FORMAT;
    }
    (void)t;
    cfg_derive(c);
    // the MLP activation is not in the shapes: converted checkpoints carry it in the metadata (GELU when absent)
    const char *act = pad_st_meta(f, "activation");
    if (act && pad_activation_parse(act, &c->act) != PAD_OK) {
        PAD_LOG_ERROR("%s: metadata activation '%.40s' is neither gelu nor quick_gelu", path, act);
        return PAD_ERR_FORMAT;
    }
    return pad_clip_cfg_check(c);
}

static const char *detect_prefix(const pad_st_file *f) {
    if (pad_st_find(f, "module.visual.conv1.weight") || pad_st_find(f, "module.token_embedding.weight"))
        return "module.";
    return "";
}

static pad_status open_checkpoint(pad_st_file **f, const char *path) {
    if (access(path, F_OK) != 0) {
        PAD_LOG_ERROR("%s: weights not found; %s", path, WEIGHTS_HINT);
        return PAD_ERR_IO;
    }
    return pad_st_open(f, path);
}

pad_status pad_weights_probe(const char *path, pad_clip_cfg *cfg) {
    pad_st_file *f = NULL;
    PAD_TRY(open_checkpoint(&f, path));
    pad_weights_parts parts = 0;
    const char *prefix = detect_prefix(f);
    if (find(f, prefix, "visual.conv1.weight")) parts |= PAD_WEIGHTS_VISION;
    if (find(f, prefix, "token_embedding.weight")) parts |= PAD_WEIGHTS_TEXT;
    pad_status st = parts ? infer_cfg(f, prefix, parts, cfg) : PAD_ERR_FORMAT;
    if (!parts)
        PAD_LOG_ERROR("%s: no OpenCLIP tower found (expected visual.conv1.weight or token_embedding.weight)", path);
    pad_st_close(f);
    return st;
}

pad_status pad_weights_load(pad_clip_weights **out, const char *path, pad_weights_parts parts) {
    *out = NULL;
    pad_st_file *f = NULL;
    tensor_table t = {0};
    pad_status st;
    pad_clip_weights *w = (pad_clip_weights *)calloc(1, sizeof *w);
    if (!w) return PAD_ERR_OOM;
    PAD_TRY_GOTO(st, open_checkpoint(&f, path), fail);
    const char *prefix = detect_prefix(f);
    w->parts = parts;
    PAD_TRY_GOTO(st, infer_cfg(f, prefix, parts, &w->cfg), fail);
    PAD_TRY_GOTO(st, weights_alloc(w, &t, f, prefix), fail);
    for (int i = 0; i < t.n; i++) {
        char full[160];
        snprintf(full, sizeof full, "%s%s", prefix, t.e[i].name);
        PAD_TRY_GOTO(
            st, pad_st_read_f32_into(f, full, t.e[i].ndim, t.e[i].shape, *t.e[i].slot, (int64_t)entry_numel(&t.e[i])),
            fail);
    }
    const pad_st_tensor *ls = find(f, prefix, "logit_scale");
    if (ls && ls->numel == 1) {
        pad_convert_to_f32(&w->logit_scale, ls->data, ls->dtype, 1);
    } else if (parts & PAD_WEIGHTS_TEXT) {
        PAD_LOG_ERROR("%s: missing tensor 'logit_scale' (a scalar)", path);
        st = PAD_ERR_FORMAT;
        goto fail;
    }
    // tensors the file has but we did not read: usually a naming bug or another architecture
    int unused = 0;
    st = PAD_ERR_OOM;
    bool *read = (bool *)calloc((size_t)f->n_tensors + 1, sizeof *read); // by index in f->tensors
    if (!read) goto fail;
    for (int j = 0; j < t.n; j++)
        read[find(f, prefix, t.e[j].name) - f->tensors] = true; // all found above
    for (int i = 0; i < f->n_tensors; i++) {
        const char *nm = f->tensors[i].name + strlen(prefix);
        if (strncmp(f->tensors[i].name, prefix, strlen(prefix)) != 0) nm = f->tensors[i].name;
        int used = read[i] || strcmp(nm, "logit_scale") == 0;
        bool other_tower = (!(parts & PAD_WEIGHTS_VISION) && strncmp(nm, "visual.", 7) == 0) ||
                           (!(parts & PAD_WEIGHTS_TEXT) && strncmp(nm, "visual.", 7) != 0);
        if (!used && !other_tower) {
            if (unused++ < 5) PAD_LOG_WARN("%s: unused tensor '%s'", path, f->tensors[i].name);
        }
    }
    free(read);
    if (unused > 5) PAD_LOG_WARN("%s: %d unused tensors in all", path, unused);
    PAD_LOG_DEBUG("%s: loaded %d tensors (%.1f MB as F32)", path, t.n, (double)w->n_floats * 4 / 1e6);
    free(t.e);
    pad_st_close(f);
    *out = w;
    return PAD_OK;
fail:
    free(t.e);
    pad_st_close(f);
    pad_weights_free(w);
    return st;
}

pad_status pad_weights_add_to_writer(const pad_clip_weights *w, pad_st_writer *wr) {
    if (w->be) {
        PAD_LOG_ERROR("cannot save device weights; save the host copy");
        return PAD_ERR_INVALID_ARG;
    }
    pad_clip_weights tmp = *w; // the table writes slots: build it on a copy so w stays const
    tensor_table t = {0};
    pad_status st;
    PAD_TRY_GOTO(st, tensor_table_build(&tmp, &t), done);
    for (int i = 0; i < t.n; i++)
        PAD_TRY_GOTO(st, pad_st_writer_add_f32(wr, t.e[i].name, t.e[i].ndim, t.e[i].shape, *t.e[i].slot), done);
    if (w->parts & PAD_WEIGHTS_TEXT)
        PAD_TRY_GOTO(st, pad_st_writer_add_f32(wr, "logit_scale", 0, NULL, &w->logit_scale), done);
done:
    free(t.e);
    return st;
}

pad_status pad_weights_save(const pad_clip_weights *w, const char *path) {
    pad_st_writer *wr = NULL;
    pad_status st;
    PAD_TRY_GOTO(st, pad_st_writer_init(&wr), done);
    PAD_TRY_GOTO(st, pad_weights_add_to_writer(w, wr), done);
    PAD_TRY_GOTO(st, pad_st_writer_meta(wr, "format", "pt"), done);
    if (w->cfg.act != PAD_ACT_GELU) // GELU files stay as they were (no entry means GELU)
        PAD_TRY_GOTO(st, pad_st_writer_meta(wr, "activation", pad_activation_name(w->cfg.act)), done);
    PAD_TRY_GOTO(st, pad_st_writer_save(wr, path), done);
done:
    if (st != PAD_OK && w->be) PAD_LOG_ERROR("%s: not written", path);
    pad_st_writer_free(wr);
    return st;
}

pad_status pad_weights_to_backend(const pad_clip_weights *host, pad_backend *be, pad_clip_weights **out) {
    *out = NULL;
    pad_clip_weights *w = (pad_clip_weights *)calloc(1, sizeof *w);
    if (!w) return PAD_ERR_OOM;
    *w = *host;
    w->vis = NULL;
    w->txt = NULL;
    w->be = be;
    w->owns_data = false;
    if (host->vis && !(w->vis = (pad_block_weights *)malloc((size_t)host->cfg.vision.layers * sizeof *w->vis)))
        goto oom;
    if (host->txt && !(w->txt = (pad_block_weights *)malloc((size_t)host->cfg.text.layers * sizeof *w->txt))) goto oom;
    if (host->vis) memcpy(w->vis, host->vis, (size_t)host->cfg.vision.layers * sizeof *w->vis);
    if (host->txt) memcpy(w->txt, host->txt, (size_t)host->cfg.text.layers * sizeof *w->txt);
    if (be->kind == PAD_BACKEND_CPU) { // host memory is backend memory: share it
        *out = w;
        return PAD_OK;
    }
    float *dev = (float *)pad_buf_alloc(be, host->n_floats * sizeof(float));
    if (!dev) goto oom;
    pad_status st = pad_buf_upload(be, dev, host->data, host->n_floats * sizeof(float));
    if (st != PAD_OK) {
        pad_buf_free(be, dev);
        pad_weights_free(w);
        return st;
    }
    w->data = dev;
    w->owns_data = true;
    // rebase every pointer from the host block to the device block
    pad_clip_weights tmp = *w;
    tensor_table t = {0};
    if (tensor_table_build(&tmp, &t) != PAD_OK) {
        free(t.e);
        pad_weights_free(w);
        return PAD_ERR_OOM;
    }
    for (int i = 0; i < t.n; i++) {
        float **slot = t.e[i].slot;
        *slot = dev + (*slot - host->data);
    }
    free(t.e);
    *out = w;
    return PAD_OK;
oom:
    pad_weights_free(w);
    return PAD_ERR_OOM;
}

// ----------------------------------------------------------------------------
// generated models

pad_status pad_activation_parse(const char *s, pad_activation *out) {
    if (strcmp(s, "gelu") == 0)
        *out = PAD_ACT_GELU;
    else if (strcmp(s, "quick_gelu") == 0)
        *out = PAD_ACT_QUICK_GELU;
    else
        return PAD_ERR_INVALID_ARG;
    return PAD_OK;
}

const char *pad_activation_name(pad_activation a) {
    return a == PAD_ACT_QUICK_GELU ? "quick_gelu" : "gelu";
}

pad_status pad_model_preset_parse(const char *s, pad_model_preset *out) {
    if (strcasecmp(s, "tiny") == 0)
        *out = PAD_MODEL_TINY;
    else if (strcasecmp(s, "vit-b-16-plus-240") == 0 || strcasecmp(s, "ViT-B-16-plus-240") == 0)
        *out = PAD_MODEL_B16_PLUS_240;
    else if (strcasecmp(s, "vit-l-14") == 0)
        *out = PAD_MODEL_L14;
    else {
        PAD_LOG_ERROR("unknown model preset '%s' (expected tiny, vit-b-16-plus-240, vit-l-14, rn101, clip-resnet-tiny, "
                      "wide-resnet50-2 or resnet-tiny)",
                      s);
        return PAD_ERR_INVALID_ARG;
    }
    return PAD_OK;
}

pad_clip_cfg pad_model_preset_cfg(pad_model_preset p) {
    pad_clip_cfg c;
    memset(&c, 0, sizeof c);
    if (p == PAD_MODEL_L14) {
        c.vision = (pad_vision_cfg){.width = 1024, .layers = 24, .patch = 14, .image_size = 224, .mlp = 4096};
        c.text = (pad_text_cfg){.width = 768, .layers = 12, .context = 77, .vocab = 49408, .mlp = 3072};
        c.embed_dim = 768;
    } else if (p == PAD_MODEL_B16_PLUS_240) {
        c.vision = (pad_vision_cfg){.width = 896, .layers = 12, .patch = 16, .image_size = 240, .mlp = 3584};
        c.text = (pad_text_cfg){.width = 640, .layers = 12, .context = 77, .vocab = 49408, .mlp = 2560};
        c.embed_dim = 640;
    } else {
        c.vision = (pad_vision_cfg){.width = 128, .layers = 12, .patch = 16, .image_size = 64, .mlp = 512};
        c.text = (pad_text_cfg){.width = 128, .layers = 12, .context = 77, .vocab = 49408, .mlp = 512};
        c.embed_dim = 64;
    }
    cfg_derive(&c);
    return c;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

pad_status pad_weights_make_random(pad_clip_weights **out, const pad_clip_cfg *cfg, uint64_t seed) {
    *out = NULL;
    PAD_TRY(pad_clip_cfg_check(cfg));
    pad_clip_weights *w = (pad_clip_weights *)calloc(1, sizeof *w);
    if (!w) return PAD_ERR_OOM;
    w->cfg = *cfg;
    cfg_derive(&w->cfg);
    w->parts = PAD_WEIGHTS_ALL;
    w->logit_scale = logf(100.0f);
    tensor_table t = {0};
    pad_status st = weights_alloc(w, &t, NULL, NULL);
    if (st != PAD_OK) {
        free(t.e);
        pad_weights_free(w);
        return st;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < t.n; i++) {
        const tensor_entry *e = &t.e[i];
        size_t n = entry_numel(e);
        size_t fan_in = e->ndim >= 2 ? n / (size_t)e->shape[0] : n;
        float lo = 0.0f, hi = 0.0f;
        switch (e->init) {
        case INIT_LINEAR:
            hi = (float)(1.0 / sqrt((double)fan_in));
            lo = -hi;
            break;
        case INIT_PROJ:
            hi = (float)(1.0 / sqrt((double)e->shape[0]));
            lo = -hi;
            break;
        case INIT_BIAS:
            lo = -0.02f, hi = 0.02f;
            break;
        case INIT_LN_W:
            lo = 0.9f, hi = 1.1f;
            break;
        case INIT_LN_B:
            lo = -0.05f, hi = 0.05f;
            break;
        case INIT_EMB:
            lo = -0.05f, hi = 0.05f;
            break;
        case INIT_TOKEN:
            lo = -0.1f, hi = 0.1f;
            break;
        }
        uint64_t s = seed * 0x2545F4914F6CDD1Dull ^ fnv1a(e->name);
        float *dst = *e->slot;
        for (size_t k = 0; k < n; k++) {
            double u = (double)(splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
            dst[k] = (float)(lo + (hi - lo) * u);
        }
    }
    free(t.e);
    *out = w;
    return PAD_OK;
}
