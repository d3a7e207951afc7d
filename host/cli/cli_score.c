/* cli_score.c - `promptad score` (docs/cli.md): PromptAD's anomaly scores and maps of test images for one
 * class (docs/method.md#scores). The shots and the test images are preprocessed alike (--preprocess, RGB) and encoded
 * by the vision tower; the shots' memory-bank taps form the bank; the prompts of --ctx (normal_ctx [n_pro,n_ctx,W],
 * abnormal_ctx [n_pro_ab,n_ctx_ab,W], n_pro and n_pro_ab read from the shapes) give the text vectors t_n, t_a
 * through the prompt learner; host/score.c does the rest. Writes, for the n test images in order: image_score [n],
 * text_image_score [n], visual_map [n,G,G], text_map [n,G,G], pixel_map [n,R,R]; extension: text_features [2,E]
 * (t_n, t_a). Test images are decoded and resized before any model work (a bad file fails fast) and then encoded
 * and scored in chunks, so memory does not grow with n beyond the outputs and the 8-bit resized images. */
#include "args.h"
#include "backend.h"
#include "cli.h"
#include "cli_common.h"
#include "image.h"
#include "log.h"
#include "prompt.h"
#include "prompt_set.h"
#include "score.h"
#include "st_file.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHOTS      64
#define MAX_RESOLUTION 8192
#define SCORE_CHUNK    16 // test images encoded and scored per round

// Text vectors t_n, t_a (2, E) on the backend from the context vectors; the learner is freed again.
static pad_status text_vectors(const pad_clip_weights *w, pad_tokenizer *tok, const pad_prompt_class *cls,
                               const pad_prompt_opts *po, const float *nctx, const float *actx, float *tvec_dev) {
    pad_prompt_learner *pl = NULL;
    pad_status st = pad_prompt_learner_create(&pl, w, tok, cls, po);
    if (st == PAD_OK) st = pad_prompt_learner_set_ctx(pl, nctx, actx);
    if (st == PAD_OK) st = pad_prompt_learner_text_vectors(pl, tvec_dev);
    pad_prompt_learner_free(pl);
    return st;
}

// The memory bank of k preprocessed shots (host pixels (k,3,S,S)).
static pad_status build_bank(pad_vit *vit, pad_backend *be, const float *pixels, int k, int P, int D, pad_bank **bank) {
    const int S = pad_vit_cfg(vit)->image_size;
    const size_t nmid = (size_t)k * P * D;
    float *pix = NULL, *mid = (float *)pad_buf_alloc(be, 2 * nmid * sizeof(float));
    pad_status st = mid ? pad_buf_from_host(be, &pix, pixels, (size_t)k * 3 * S * S) : PAD_ERR_OOM;
    if (st == PAD_OK) {
        const pad_vit_out vo = {NULL, NULL, mid, mid + nmid};
        st = pad_vit_forward_chunked(vit, pix, k, &vo);
    }
    if (st == PAD_OK) st = pad_bank_init(bank, be, mid, mid + nmid, k, P, D);
    pad_buf_free(be, pix);
    pad_buf_free(be, mid);
    return st;
}

// Host outputs of the whole run (docs/cli.md#score names).
typedef struct score_dump {
    float *image_score, *text_image_score, *visual_map, *text_map, *pixel_map;
} score_dump;

// Encodes and scores the n test images (u8 (n,S,S,3) from pad_cli_load_images) in chunks into d.
static pad_status score_images(pad_vit *vit, pad_backend *be, const pad_bank *bank, const uint8_t *u8, int n, int R,
                               const float *tvec_dev, float tau, const score_dump *d) {
    const pad_vision_cfg *vc = pad_vit_cfg(vit);
    const int S = vc->image_size, G = vc->grid, P = G * G, D = vc->width, E = pad_vit_embed_dim(vit);
    const int chunk = n < SCORE_CHUNK ? n : SCORE_CHUNK;
    const size_t c = (size_t)chunk, px = (size_t)3 * S * S;
    pad_scorer *sc = NULL;
    const pad_score_cfg cfg = pad_score_cfg_default(chunk, G, R);
    float *pixels = (float *)malloc(c * px * sizeof(float));
    float *pix = (float *)pad_buf_alloc(be, c * px * sizeof(float));
    float *cls = (float *)pad_buf_alloc(be, c * E * sizeof(float));
    float *tok = (float *)pad_buf_alloc(be, c * P * E * sizeof(float));
    float *mid = (float *)pad_buf_alloc(be, 2 * c * P * D * sizeof(float));
    pad_status st = pixels && pix && cls && tok && mid ? PAD_OK : PAD_ERR_OOM;
    if (st == PAD_OK) st = pad_scorer_init(&sc, be, &cfg);
    for (int i0 = 0; i0 < n && st == PAD_OK; i0 += chunk) {
        const int b = n - i0 < chunk ? n - i0 : chunk;
        const size_t o = (size_t)i0;
        pad_cli_images_to_pixels(u8 + o * px, b, S, pixels);
        st = pad_buf_upload(be, pix, pixels, (size_t)b * px * sizeof(float));
        const pad_vit_out vo = {cls, tok, mid, mid + (size_t)b * P * D};
        if (st == PAD_OK) st = pad_vit_forward_chunked(vit, pix, b, &vo);
        const pad_score_feats f = {cls, tok, vo.mid1, vo.mid2};
        const pad_score_outputs out = {d->image_score + o, d->text_image_score + o, d->visual_map + o * P,
                                       d->text_map + o * P, d->pixel_map + o * R * R};
        if (st == PAD_OK) st = pad_score_all(sc, bank, &f, b, E, tvec_dev, tvec_dev + E, tau, &out);
        PAD_LOG_DEBUG("score: images %d-%d of %d", i0 + 1, i0 + b, n);
    }
    pad_scorer_free(sc);
    pad_buf_free(be, pix);
    pad_buf_free(be, cls);
    pad_buf_free(be, tok);
    pad_buf_free(be, mid);
    free(pixels);
    return st;
}

// The value of --method (NULL when absent) among the options of argv (before a "--").
static const char *method_arg(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--method") == 0) return i + 1 < argc ? argv[i + 1] : NULL;
        if (strncmp(argv[i], "--method=", 9) == 0) return argv[i] + 9;
    }
    return NULL;
}

// Writes the dump of `score` (the contract's tensors, then the metadata pairs and the resolution) to out.
static pad_status write_dump(const char *out, const score_dump *d, int n, int G, int R, int E, const float *tvec,
                             const char *meta[][2], int n_meta) {
    pad_st_writer *wr = NULL;
    char res_str[16];
    snprintf(res_str, sizeof res_str, "%d", R);
    pad_status st = pad_st_writer_init(&wr);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "image_score", 1, (int64_t[]){n}, d->image_score);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "text_image_score", 1, (int64_t[]){n}, d->text_image_score);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "visual_map", 3, (int64_t[]){n, G, G}, d->visual_map);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "text_map", 3, (int64_t[]){n, G, G}, d->text_map);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "pixel_map", 3, (int64_t[]){n, R, R}, d->pixel_map);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "text_features", 2, (int64_t[]){2, E}, tvec);
    for (int i = 0; i < n_meta && st == PAD_OK; i++)
        st = pad_st_writer_meta(wr, meta[i][0], meta[i][1]);
    if (st == PAD_OK) st = pad_st_writer_meta(wr, "resolution", res_str);
    if (st == PAD_OK) st = pad_st_writer_save(wr, out);
    pad_st_writer_free(wr);
    return st;
}

// The options of `score --method promptad` (the contract's score command).
typedef struct score_opts {
    const char *weights, *cls_key, *ctx, *shots_s, *res_s, *out, *prep_s, *device, *vocab, *prompts, *scale_s, *lap_s,
        *method_s;
} score_opts;

// Parses argv into o and the test images into imgs[0..*n).
static pad_args_result parse_score_opts(int argc, char **argv, score_opts *o, const char **imgs, int *n) {
    *o = (score_opts){.prep_s = "squash",
                      .device = "auto",
                      .prompts = "official",
                      .scale_s = "raw",
                      .lap_s = "before",
                      .method_s = "promptad"};
    const pad_opt opts[] = {
        {"method", "M", "promptad (default); cpe and winclip take other options (see --method cpe --help)",
         &o->method_s, NULL, NULL, NULL},
        {"weights", "W", "OpenCLIP checkpoint (.safetensors; weights/README.md)", &o->weights, NULL, NULL, NULL},
        {"class", "C", "class key in the prompt set (e.g. bottle, metal_nut, pcb1)", &o->cls_key, NULL, NULL, NULL},
        {"ctx", "CTX", ".safetensors with the learned normal_ctx and abnormal_ctx (train-prompts --out)", &o->ctx, NULL,
         NULL, NULL},
        {"shots", "A,B,...", "the normal images of the memory bank, comma-separated", &o->shots_s, NULL, NULL, NULL},
        {"resolution", "R", "side of pixel_map (the official code uses 400)", &o->res_s, NULL, NULL, NULL},
        {"out", "O", "output .safetensors", &o->out, NULL, NULL, NULL},
        {"preprocess", "P", "squash (default), openclip or official, for shots and test images", &o->prep_s, NULL, NULL,
         NULL},
        {"device", "D", "auto (default), cpu or cuda", &o->device, NULL, NULL, NULL},
        {"vocab", "V",
         "CLIP BPE vocabulary; default: $PROMPTAD_VOCAB, ./weights/, then <binary>/../weights/ "
         "(weights/README.md)",
         &o->vocab, NULL, NULL, NULL},
        {"prompts", "SET", "prompt set: official (default), paper, mpdd, loco, or a .yaml file (as for training)",
         &o->prompts, NULL, NULL, NULL},
        {"logit-scale", "raw|exp", "multiply cosines by the stored logit_scale (raw, official) or its exp", &o->scale_s,
         NULL, NULL, NULL},
        {"lap-position", "before|after",
         "learned anomaly vector before (official) or after the class name (as for "
         "training)",
         &o->lap_s, NULL, NULL, NULL},
    };
    return pad_args_parse(
        argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), imgs, argc, n,
        "promptad score --weights W --class C --ctx CTX.safetensors --shots a.png,b.png --resolution R "
        "[--preprocess P] --out O.safetensors IMG...",
        "Anomaly scores and maps of the test images IMG... (docs/method.md#scores): image_score [n], text_image_score "
        "[n], visual_map [n,G,G] (memory bank of the shots), text_map [n,G,G], pixel_map [n,R,R] (fused, "
        "bilinear-upsampled, Gaussian sigma 4), with the prompts of CTX; also text_features [2,E] (t_n, t_a).");
}

static int score_promptad(int argc, char **argv) {
    score_opts so;
    const char **imgs = (const char **)malloc((size_t)(argc > 0 ? argc : 1) * sizeof *imgs);
    if (!imgs) return 1;
    int n = 0;
    pad_args_result r = parse_score_opts(argc, argv, &so, imgs, &n);
    if (r != PAD_ARGS_OK) {
        free(imgs);
        return r == PAD_ARGS_HELP ? 0 : 2;
    }
    const char *weights = so.weights, *cls_key = so.cls_key, *ctx = so.ctx, *shots_s = so.shots_s, *res_s = so.res_s,
               *out = so.out, *prep_s = so.prep_s, *device = so.device, *vocab = so.vocab, *prompts = so.prompts,
               *scale_s = so.scale_s, *lap_s = so.lap_s;
    const char *cmd = argv[0];
    int rc = 2, scale_i, lap_i;
    long res;
    char *shots_buf = NULL;
    const char *shots[MAX_SHOTS];
    int k = 0;
    pad_preprocess_mode prep;
    pad_backend_kind kind;
    if (!weights || !cls_key || !ctx || !shots_s || !res_s || !out) {
        pad_args_error(cmd, "--weights, --class, --ctx, --shots, --resolution and --out are required%s",
                       weights ? "" : " (weights/README.md says how to get the OpenCLIP weights)");
        goto usage;
    }
    if (n < 1) {
        pad_args_error(cmd, "no test images: give one or more IMG after the options");
        goto usage;
    }
    if (!pad_args_int(cmd, "resolution", res_s, 1, MAX_RESOLUTION, &res) ||
        !pad_args_choice(cmd, "logit-scale", scale_s, "raw", "exp", &scale_i) ||
        !pad_args_choice(cmd, "lap-position", lap_s, "before", "after", &lap_i))
        goto usage;
    if (pad_preprocess_mode_parse(prep_s, &prep) != PAD_OK || pad_backend_kind_parse(device, &kind) != PAD_OK)
        goto usage;
    if (!(shots_buf = strdup(shots_s))) goto usage;
    if ((k = pad_args_split_list(shots_buf, shots, MAX_SHOTS)) < 1) {
        pad_args_error(cmd, "--shots: expected 1 to %d comma-separated image paths without empty entries", MAX_SHOTS);
        goto usage;
    }

    rc = 1;
    const int R = (int)res;
    pad_prompt_set *set = NULL;
    pad_tokenizer *tokz = NULL;
    pad_clip_weights *hw = NULL, *w = NULL;
    pad_backend *be = NULL;
    pad_vit *vit = NULL;
    pad_bank *bank = NULL;
    pad_st_file *fc = NULL;
    float *nctx = NULL, *actx = NULL, *shot_px = NULL, *tvec_dev = NULL, *tvec = NULL;
    uint8_t *shot_u8 = NULL, *test_u8 = NULL;
    score_dump d = {NULL, NULL, NULL, NULL, NULL};
    pad_prompt_class cls;
    // prompt set and class first: the cheapest checks
    if (pad_prompt_set_open(&set, prompts) != PAD_OK || pad_prompt_set_class(set, cls_key, &cls) != PAD_OK) goto done;
    if (pad_weights_load(&hw, weights, PAD_WEIGHTS_ALL) != PAD_OK) goto done;
    if (pad_cli_open_tokenizer(&tokz, vocab, hw, weights) != PAD_OK) goto done;
    const pad_vision_cfg *vc = &hw->cfg.vision;
    const int W = hw->cfg.text.width, E = hw->cfg.embed_dim, S = vc->image_size, G = vc->grid, P = G * G;
    // the prompts: n_pro and n_pro_ab from the shapes, n_ctx, n_ctx_ab and the width from the model and PromptAD
    pad_prompt_opts po = pad_prompt_opts_default(PAD_TASK_CLS); // the task plays no part in the text vectors
    po.exp_logit_scale = scale_i == 1;
    po.lap = lap_i ? PAD_LAP_AFTER_NAME : PAD_LAP_BEFORE_NAME;
    int64_t shn[3] = {0, po.n_ctx, W}, sha[3] = {0, po.n_ctx_ab, W};
    if (pad_st_open(&fc, ctx) != PAD_OK) goto done;
    if (pad_cli_read_ctx(fc, "normal_ctx", shn, "n_pro", "n_pro x n_ctx x text width of the model", &nctx) != PAD_OK ||
        pad_cli_read_ctx(fc, "abnormal_ctx", sha, "n_pro_ab", "n_pro_ab x n_ctx_ab x text width of the model", &actx) !=
            PAD_OK)
        goto done;
    po.n_pro = (int)shn[0];
    po.n_pro_ab = (int)sha[0];
    // every image decoded and resized before the model work: a bad file fails fast
    shot_u8 = (uint8_t *)malloc((size_t)k * S * S * 3);
    test_u8 = (uint8_t *)malloc((size_t)n * S * S * 3);
    shot_px = (float *)malloc((size_t)k * 3 * S * S * sizeof(float));
    d.image_score = (float *)malloc((size_t)n * sizeof(float));
    d.text_image_score = (float *)malloc((size_t)n * sizeof(float));
    d.visual_map = (float *)malloc((size_t)n * P * sizeof(float));
    d.text_map = (float *)malloc((size_t)n * P * sizeof(float));
    d.pixel_map = (float *)malloc((size_t)n * R * R * sizeof(float));
    tvec = (float *)malloc((size_t)2 * E * sizeof(float));
    if (!shot_u8 || !test_u8 || !shot_px || !d.image_score || !d.text_image_score || !d.visual_map || !d.text_map ||
        !d.pixel_map || !tvec) {
        PAD_LOG_ERROR("score: out of memory for %d test images at resolution %d", n, R);
        goto done;
    }
    if (pad_cli_load_images(shots, k, prep, S, "shot", shot_u8) != PAD_OK ||
        pad_cli_load_images(imgs, n, prep, S, "test image", test_u8) != PAD_OK)
        goto done;
    pad_cli_images_to_pixels(shot_u8, k, S, shot_px);

    if (pad_backend_init(&be, kind, 0) != PAD_OK) goto done;
    if (pad_weights_to_backend(hw, be, &w) != PAD_OK) goto done;
    const float tau = pad_score_tau(hw->logit_scale, po.exp_logit_scale);
    if (!(tvec_dev = (float *)pad_buf_alloc(be, (size_t)2 * E * sizeof(float)))) goto done;
    if (text_vectors(w, tokz, &cls, &po, nctx, actx, tvec_dev) != PAD_OK) goto done;
    if (pad_buf_download(be, tvec, tvec_dev, (size_t)2 * E * sizeof(float)) != PAD_OK) goto done;
    pad_vit_params vp = pad_vit_depth_params(w->cfg.vision.layers);
    if (pad_vit_create(&vit, be, w, &vp) != PAD_OK) goto done;
    if (build_bank(vit, be, shot_px, k, P, vc->width, &bank) != PAD_OK) goto done;
    PAD_LOG_INFO("score: class '%s' (\"%s\", set %s), n_pro %d, n_pro_ab %d, %d shots, %d test images, %dx%d maps, "
                 "tau %g, on %s",
                 cls.key, cls.name, pad_prompt_set_name(set), po.n_pro, po.n_pro_ab, k, n, R, R, (double)tau,
                 be->ops->name);
    if (score_images(vit, be, bank, test_u8, n, R, tvec_dev, tau, &d) != PAD_OK) goto done;

    const char *meta[][2] = {{"class", cls.key},
                             {"prompts", pad_prompt_set_name(set)},
                             {"preprocess", pad_preprocess_mode_str(prep)},
                             {"logit_scale", scale_s},
                             {"lap_position", lap_s},
                             {"device", be->ops->name}};
    if (write_dump(out, &d, n, G, R, E, tvec, meta, (int)(sizeof meta / sizeof meta[0])) != PAD_OK) goto done;
    PAD_LOG_INFO("wrote %s", out);
    rc = 0;
done:
    pad_st_close(fc);
    pad_bank_free(bank);
    pad_vit_free(vit);
    if (be) pad_buf_free(be, tvec_dev);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_backend_free(be);
    pad_tokenizer_free(tokz);
    pad_prompt_set_free(set);
    free(nctx);
    free(actx);
    free(shot_u8);
    free(test_u8);
    free(shot_px);
    free(tvec);
    free(d.image_score);
    free(d.text_image_score);
    free(d.visual_map);
    free(d.text_map);
    free(d.pixel_map);
usage:
    free(shots_buf);
    free(imgs);
    return rc;
}

int pad_cli_score(int argc, char **argv) {
    // other methods have their own command line (docs/cli.md, docs/winclip.md)
    const char *method = method_arg(argc, argv);
    if (method && (strcmp(method, "cpe") == 0 || strcmp(method, "winclip") == 0)) return pad_cli_score_clip(argc, argv);
    if (method && (!strcmp(method, "patchcore") || !strcmp(method, "padim") || !strcmp(method, "spade")))
        return pad_cli_score_cnn(argc, argv);
    if (method && strcmp(method, "promptad") != 0) {
        pad_args_error(argv[0], "--method: expected promptad, cpe, winclip, patchcore, padim or spade, got '%s'",
                       method);
        return 2;
    }
    return score_promptad(argc, argv);
}
