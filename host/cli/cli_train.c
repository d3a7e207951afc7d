/* cli_train.c - `promptad train-prompts` (docs/cli.md): learns PromptAD's prompts for one class from its normal
 * shots. The shots are preprocessed (--preprocess), encoded once by the vision tower (cls: the CLS features, seg:
 * the V-V patch tokens), then N epochs of one SGD step each run on all shots (docs/method.md#training), starting from
 * the context vectors of --init. Writes normal_ctx [n_pro,n_ctx,W], abnormal_ctx [n_pro_ab,n_ctx_ab,W] after the N
 * epochs and loss [N] (each epoch's total loss, computed before its step); extensions: loss_terms [N,4] (total, ce,
 * eam, align) and text_features [2,E] (the inference vectors t_n, t_a after training). */
#include "args.h"
#include "backend.h"
#include "cli.h"
#include "cli_common.h"
#include "image.h"
#include "log.h"
#include "prompt.h"
#include "prompt_set.h"
#include "st_file.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHOTS 64

// The options of the command, parsed and checked.
typedef struct train_args {
    const char *weights, *cls_key, *task_s, *shots_s, *epochs_s, *init, *out, *prep_s, *device, *vocab, *prompts;
    const char *n_pro_s, *lr_s, *lr_min_s, *mom_s, *wd_s, *lam_s, *margin_s, *scale_s, *eam_s, *lap_s;
    pad_prompt_opts po;
    long epochs, n_pro;
    pad_preprocess_mode prep;
    pad_backend_kind kind;
} train_args;

// Parses and checks argv into a; returns -1 to go on, else the exit code (0 after --help, 2 on a usage error).
static int parse_args(int argc, char **argv, train_args *a) {
    *a = (train_args){.prep_s = "squash",
                      .device = "auto",
                      .prompts = "official",
                      .scale_s = "raw",
                      .eam_s = "token-axis",
                      .lap_s = "before",
                      .n_pro = -1};
    const pad_opt opts[] = {
        {"weights", "W", "OpenCLIP checkpoint (.safetensors)", &a->weights, NULL, NULL, NULL},
        {"class", "C", "class key in the prompt set (e.g. bottle, metal_nut, pcb1)", &a->cls_key, NULL, NULL, NULL},
        {"task", "T", "cls (CLS-token loss) or seg (patch-token loss)", &a->task_s, NULL, NULL, NULL},
        {"shots", "A,B,...", "the normal training images, comma-separated", &a->shots_s, NULL, NULL, NULL},
        {"epochs", "N", "epochs (one SGD step each, on all shots)", &a->epochs_s, NULL, NULL, NULL},
        {"init", "I", ".safetensors with the initial normal_ctx and abnormal_ctx", &a->init, NULL, NULL, NULL},
        {"out", "O", "output .safetensors", &a->out, NULL, NULL, NULL},
        {"preprocess", "P", "squash (default), openclip or official", &a->prep_s, NULL, NULL, NULL},
        {"device", "D", "auto (default), cpu or cuda", &a->device, NULL, NULL, NULL},
        {"vocab", "V",
         "CLIP BPE vocabulary; default: $PROMPTAD_VOCAB, ./weights/, <binary>/../weights/, then the copy in "
         "configs/vocab",
         &a->vocab, NULL, NULL, NULL},
        {"prompts", "SET", "prompt set: official (default), paper, mpdd, loco, or a .yaml file", &a->prompts, NULL,
         NULL, NULL},
        {"n-pro", "K", "normal prompts (default: the first dimension of normal_ctx in --init)", &a->n_pro_s, NULL, NULL,
         NULL},
        {"lr", "X", "initial learning rate (default 0.002)", &a->lr_s, NULL, NULL, NULL},
        {"lr-min", "X", "final learning rate of the cosine schedule (default 1e-5)", &a->lr_min_s, NULL, NULL, NULL},
        {"momentum", "X", "SGD momentum (default 0.9)", &a->mom_s, NULL, NULL, NULL},
        {"weight-decay", "X", "SGD weight decay (default 5e-4)", &a->wd_s, NULL, NULL, NULL},
        {"lambda", "X", "weight of the MAP/LAP alignment loss (default 0.001)", &a->lam_s, NULL, NULL, NULL},
        {"margin", "X", "EAM margin (default 0)", &a->margin_s, NULL, NULL, NULL},
        {"logit-scale", "raw|exp", "multiply cosines by the stored logit_scale (raw, official) or its exp", &a->scale_s,
         NULL, NULL, NULL},
        {"eam", "token-axis|per-token", "seg EAM: the official sum over tokens (default) or one hinge per token",
         &a->eam_s, NULL, NULL, NULL},
        {"lap-position", "before|after", "learned anomaly vector before (official) or after the class name", &a->lap_s,
         NULL, NULL, NULL},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    const char *pos[1];
    int n_pos = 0;
    pad_args_result r =
        pad_args_parse(argc, argv, opts, n_opts, pos, 0, &n_pos,
                       "promptad train-prompts --weights W --class C --task cls|seg --shots a.png,b.png "
                       "--epochs N --init I.safetensors [--preprocess P] --out O.safetensors",
                       "Learns PromptAD prompts (normal_ctx, abnormal_ctx) from normal shots: N epochs "
                       "of one SGD step on all shots, lr cosine-annealed from 0.002 to 1e-5.");
    if (r != PAD_ARGS_OK) return r == PAD_ARGS_HELP ? 0 : 2;
    const char *cmd = argv[0];
    if (!a->weights || !a->cls_key || !a->task_s || !a->shots_s || !a->epochs_s || !a->init || !a->out) {
        pad_args_error(cmd, "--weights, --class, --task, --shots, --epochs, --init and --out are required");
        return 2;
    }
    int task_i, scale_i, eam_i, lap_i;
    if (!pad_args_choice(cmd, "task", a->task_s, "cls", "seg", &task_i) ||
        !pad_args_choice(cmd, "logit-scale", a->scale_s, "raw", "exp", &scale_i) ||
        !pad_args_choice(cmd, "eam", a->eam_s, "token-axis", "per-token", &eam_i) ||
        !pad_args_choice(cmd, "lap-position", a->lap_s, "before", "after", &lap_i) ||
        !pad_args_int(cmd, "epochs", a->epochs_s, 1, 1000000, &a->epochs) ||
        (a->n_pro_s && !pad_args_int(cmd, "n-pro", a->n_pro_s, 1, 64, &a->n_pro)))
        return 2;
    pad_prompt_opts *po = &a->po;
    *po = pad_prompt_opts_default(task_i ? PAD_TASK_SEG : PAD_TASK_CLS);
    if (a->n_pro > 0) po->n_pro = (int)a->n_pro;
    po->exp_logit_scale = scale_i == 1;
    po->eam = eam_i ? PAD_EAM_PER_TOKEN : PAD_EAM_TOKEN_AXIS;
    po->lap = lap_i ? PAD_LAP_AFTER_NAME : PAD_LAP_BEFORE_NAME;
    struct {
        const char *name, *s;
        float *dst;
    } floats[] = {{"lr", a->lr_s, &po->lr},
                  {"lr-min", a->lr_min_s, &po->lr_min},
                  {"momentum", a->mom_s, &po->momentum},
                  {"weight-decay", a->wd_s, &po->weight_decay},
                  {"lambda", a->lam_s, &po->lambda_align},
                  {"margin", a->margin_s, &po->margin}};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        double v;
        if (!floats[i].s) continue;
        if (!pad_args_float(cmd, floats[i].name, floats[i].s, &v)) return 2;
        *floats[i].dst = (float)v;
    }
    if (pad_preprocess_mode_parse(a->prep_s, &a->prep) != PAD_OK ||
        pad_backend_kind_parse(a->device, &a->kind) != PAD_OK)
        return 2;
    return -1;
}

// The image features of the k shots in feats_dev (k, T, E) on w's backend: the CLS features (cls) or the V-V patch
// tokens (seg), encoded once (the official code re-encodes them each epoch with the same result).
static pad_status encode_shots(pad_backend *be, const pad_clip_weights *w, const float *pixels, int k, int S,
                               pad_prompt_task task, float *feats_dev) {
    pad_vit *vit = NULL;
    float *pixels_dev = NULL;
    pad_vit_params vp = pad_vit_depth_params(w->cfg.vision.layers);
    vp.max_batch = k < vp.max_batch ? k : vp.max_batch;
    pad_status st = pad_vit_create(&vit, be, w, &vp);
    if (st == PAD_OK) st = pad_buf_from_host(be, &pixels_dev, pixels, (size_t)k * 3 * S * S);
    pad_vit_out vo = {NULL, NULL, NULL, NULL};
    if (task == PAD_TASK_SEG)
        vo.tokens = feats_dev;
    else
        vo.cls = feats_dev;
    if (st == PAD_OK) st = pad_vit_forward_chunked(vit, pixels_dev, k, &vo);
    pad_vit_free(vit);
    pad_buf_free(be, pixels_dev);
    return st;
}

// N epochs; losses[N] and terms[N,4] (total, ce, eam, align) receive each epoch's loss before its step.
static pad_status train(pad_prompt_learner *pl, const pad_prompt_opts *po, int N, float *losses, float *terms) {
    for (int e = 0; e < N; e++) {
        pad_prompt_loss L;
        PAD_TRY(pad_prompt_learner_train_epoch(pl, e, N, &L));
        if (!isfinite(L.total)) {
            PAD_LOG_ERROR("train-prompts: the loss of epoch %d is not finite (%g)", e + 1, L.total);
            return PAD_ERR_INVALID_ARG;
        }
        losses[e] = L.total;
        terms[4 * e] = L.total;
        terms[4 * e + 1] = L.ce;
        terms[4 * e + 2] = L.eam;
        terms[4 * e + 3] = L.align;
        PAD_LOG_DEBUG("epoch %d/%d: loss %.6f (ce %.6f, eam %.6f, align %.6f), lr %.6g", e + 1, N, L.total, L.ce, L.eam,
                      L.align, pad_prompt_lr(po, e, N));
    }
    return PAD_OK;
}

int pad_cli_train_prompts(int argc, char **argv) {
    train_args a;
    int prc = parse_args(argc, argv, &a);
    if (prc >= 0) return prc;
    const char *cmd = argv[0];
    pad_prompt_opts po = a.po;
    char *shots_buf = strdup(a.shots_s);
    const char *shots[MAX_SHOTS];
    if (!shots_buf) return 1;
    const int k = pad_args_split_list(shots_buf, shots, MAX_SHOTS);
    if (k < 1) {
        pad_args_error(cmd, "--shots: expected 1 to %d comma-separated image paths without empty entries", MAX_SHOTS);
        free(shots_buf);
        return 2;
    }

    int rc = 1;
    const int N = (int)a.epochs;
    pad_prompt_set *set = NULL;
    pad_tokenizer *tok = NULL;
    pad_clip_weights *hw = NULL, *w = NULL;
    pad_backend *be = NULL;
    pad_prompt_learner *pl = NULL;
    pad_st_file *fi = NULL;
    pad_st_writer *wr = NULL;
    float *pixels = NULL, *feats_dev = NULL, *nctx = NULL, *actx = NULL, *tvec_dev = NULL;
    float *tvec = NULL, *losses = NULL, *terms = NULL;
    uint8_t *shot_u8 = NULL;
    pad_prompt_class cls;
    // prompt set and class first: the cheapest checks
    if (pad_prompt_set_open(&set, a.prompts) != PAD_OK || pad_prompt_set_class(set, a.cls_key, &cls) != PAD_OK)
        goto done;
    if (pad_weights_load(&hw, a.weights, PAD_WEIGHTS_ALL) != PAD_OK) goto done;
    if (pad_cli_open_tokenizer(&tok, a.vocab, hw, a.weights) != PAD_OK) goto done;
    const int W = hw->cfg.text.width, E = hw->cfg.embed_dim, S = hw->cfg.vision.image_size;
    const int GG = hw->cfg.vision.grid * hw->cfg.vision.grid, T = po.task == PAD_TASK_SEG ? GG : 1;
    // initial context vectors. Without --n-pro, n_pro is read from the shape of normal_ctx (as `score` reads it
    // from CTX), so an init file for either task works; every other size is checked against the options.
    int64_t shn[3] = {a.n_pro > 0 ? po.n_pro : 0, po.n_ctx, W}, sha[3] = {po.n_pro_ab, po.n_ctx_ab, W};
    if (pad_st_open(&fi, a.init) != PAD_OK) goto done;
    if (pad_cli_read_ctx(fi, "normal_ctx", shn, "n_pro", "n_pro x n_ctx x text width; --n-pro sets n_pro", &nctx) !=
            PAD_OK ||
        pad_cli_read_ctx(fi, "abnormal_ctx", sha, NULL, "n_pro_ab x n_ctx_ab x text width", &actx) != PAD_OK)
        goto done;
    po.n_pro = (int)shn[0];
    // shots: load and preprocess (RGB, as the official code feeds training images)
    pixels = (float *)malloc((size_t)k * 3 * S * S * sizeof(float));
    shot_u8 = (uint8_t *)malloc((size_t)k * S * S * 3);
    if (!pixels || !shot_u8) goto done;
    if (pad_cli_load_images(shots, k, a.prep, S, "shot", shot_u8) != PAD_OK) goto done;
    pad_cli_images_to_pixels(shot_u8, k, S, pixels);
    if (pad_backend_init(&be, a.kind, 0) != PAD_OK) goto done;
    if (pad_weights_to_backend(hw, be, &w) != PAD_OK) goto done;
    if (!(feats_dev = (float *)pad_buf_alloc(be, (size_t)k * T * E * sizeof(float)))) goto done;
    if (encode_shots(be, w, pixels, k, S, po.task, feats_dev) != PAD_OK) goto done;
    if (pad_prompt_learner_create(&pl, w, tok, &cls, &po) != PAD_OK) goto done;
    if (pad_prompt_learner_set_ctx(pl, nctx, actx) != PAD_OK) goto done;
    if (pad_prompt_learner_set_images(pl, feats_dev, k, T) != PAD_OK) goto done;
    {
        int n_np, n_map, n_lap;
        int P = pad_prompt_learner_counts(pl, &n_np, &n_map, &n_lap);
        PAD_LOG_INFO(
            "train-prompts: class '%s' (\"%s\", set %s), task %s, %d shots, %d prompts (%d NP, %d MAP, %d LAP) "
            "of %d tokens, %d epochs on %s",
            cls.key, cls.name, pad_prompt_set_name(set), a.task_s, k, P, n_np, n_map, n_lap,
            pad_prompt_learner_seq_len(pl), N, be->ops->name);
    }
    losses = (float *)malloc((size_t)N * sizeof(float));
    terms = (float *)malloc((size_t)N * 4 * sizeof(float));
    tvec = (float *)malloc((size_t)2 * E * sizeof(float));
    if (!losses || !terms || !tvec) goto done;
    if (train(pl, &po, N, losses, terms) != PAD_OK) goto done;
    if (pad_prompt_learner_get_ctx(pl, nctx, actx) != PAD_OK) goto done;
    if (!(tvec_dev = (float *)pad_buf_alloc(be, (size_t)2 * E * sizeof(float)))) goto done;
    if (pad_prompt_learner_text_vectors(pl, tvec_dev) != PAD_OK ||
        pad_buf_download(be, tvec, tvec_dev, (size_t)2 * E * sizeof(float)) != PAD_OK)
        goto done;
    if (pad_st_writer_init(&wr) != PAD_OK || pad_st_writer_add_f32(wr, "normal_ctx", 3, shn, nctx) != PAD_OK ||
        pad_st_writer_add_f32(wr, "abnormal_ctx", 3, sha, actx) != PAD_OK ||
        pad_st_writer_add_f32(wr, "loss", 1, (int64_t[]){N}, losses) != PAD_OK ||
        pad_st_writer_add_f32(wr, "loss_terms", 2, (int64_t[]){N, 4}, terms) != PAD_OK ||
        pad_st_writer_add_f32(wr, "text_features", 2, (int64_t[]){2, E}, tvec) != PAD_OK ||
        pad_st_writer_meta(wr, "class", cls.key) != PAD_OK || pad_st_writer_meta(wr, "task", a.task_s) != PAD_OK ||
        pad_st_writer_meta(wr, "prompts", pad_prompt_set_name(set)) != PAD_OK ||
        pad_st_writer_save(wr, a.out) != PAD_OK)
        goto done;
    PAD_LOG_INFO("wrote %s: loss %.6f -> %.6f", a.out, losses[0], losses[N - 1]);
    rc = 0;
done:
    pad_st_writer_free(wr);
    pad_st_close(fi);
    pad_prompt_learner_free(pl);
    if (be) {
        pad_buf_free(be, feats_dev);
        pad_buf_free(be, tvec_dev);
    }
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_backend_free(be);
    pad_tokenizer_free(tok);
    pad_prompt_set_free(set);
    free(pixels);
    free(shot_u8);
    free(nctx);
    free(actx);
    free(tvec);
    free(losses);
    free(terms);
    free(shots_buf);
    return rc;
}
