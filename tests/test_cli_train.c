/* test_cli_train.c - `promptad train-prompts` end to end (cli_contract.md) with the tiny 514-token model and the
 * byte-level vocabulary: the dump's names and shapes for cls and seg, equality with the library path (shots
 * preprocessed and encoded by the vision tower, then the prompt learner), and bad input (unknown class or prompt
 * set, a shot that does not load, init tensors of the wrong shape or missing, bad options): a clear error naming
 * the culprit and a non-zero exit. */
#include "check.h"
#include "image.h"
#include "prompt.h"
#include "prompt_set.h"
#include "st_file.h"
#include "tiny_model.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct env {
    char *dir;
    char model[512], vocab[512], shots[1100], shot[2][512], init_cls[512], init_seg[512];
} env;

static env make_env(void) {
    env e;
    e.dir = pad_test_tmpdir("cli_train");
    pad_tiny514_cli_files(e.dir, e.model, e.vocab, sizeof e.model);
    // two 80x70 shots (not the model's 64x64 input: the resize matters)
    for (int i = 0; i < 2; i++) {
        snprintf(e.shot[i], sizeof e.shot[i], "%s/shot%d.png", e.dir, i);
        pad_test_write_pattern_png(e.shot[i], 80, 70, i);
    }
    snprintf(e.shots, sizeof e.shots, "%s,%s", e.shot[0], e.shot[1]);
    snprintf(e.init_cls, sizeof e.init_cls, "%s/init_cls.safetensors", e.dir);
    snprintf(e.init_seg, sizeof e.init_seg, "%s/init_seg.safetensors", e.dir);
    pad_test_write_ctx(e.init_cls, 3, 4, 128, 4, 1, 128, 1);
    pad_test_write_ctx(e.init_seg, 1, 4, 128, 4, 1, 128, 2);
    return e;
}

static pad_cmd_result train(const env *e, const char *cls, const char *task, const char *init, const char *shots,
                            int epochs, const char *out, const char *extra) {
    // PROMPTAD_NO_REEXEC: the binary keeps the OpenBLAS kernels this test process has, so the library path below
    // gives bitwise the same numbers (promptad otherwise re-executes itself with faster kernels on some CPUs)
    return pad_cmd_run("PROMPTAD_NO_REEXEC=1 %s train-prompts --weights %s --vocab %s --device cpu --class %s --task "
                       "%s --shots %s --epochs "
                       "%d --init %s --out %s %s",
                       pad_test_binary(), e->model, e->vocab, cls, task, shots, epochs, init, out, extra);
}

// The library path for the same inputs: preprocess (squash), vision tower, prompt learner.
static void library_train(const env *e, const char *cls_key, pad_prompt_task task, const char *init, int N,
                          float *losses, float *nctx, float *actx) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_clip_weights *hw = NULL, *w = NULL;
    cr_assert(pad_weights_load(&hw, e->model, PAD_WEIGHTS_ALL) == PAD_OK);
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    const int S = hw->cfg.vision.image_size, E = hw->cfg.embed_dim, GG = hw->cfg.vision.grid * hw->cfg.vision.grid;
    const int T = task == PAD_TASK_SEG ? GG : 1;
    float *pix = malloc(sizeof(float) * 2 * 3 * S * S);
    for (int i = 0; i < 2; i++) {
        pad_image img;
        cr_assert(pad_image_load(&img, e->shot[i]) == PAD_OK);
        cr_assert(pad_preprocess(&img, PAD_PREPROCESS_SQUASH, S, false, pix + (size_t)i * 3 * S * S) == PAD_OK);
        pad_image_free(&img);
    }
    pad_vit *vit = NULL;
    pad_vit_params vp = pad_vit_default_params();
    cr_assert(pad_vit_create(&vit, be, w, &vp) == PAD_OK);
    float *feats = malloc(sizeof(float) * 2 * T * E);
    pad_vit_out vo = {task == PAD_TASK_CLS ? feats : NULL, task == PAD_TASK_SEG ? feats : NULL, NULL, NULL};
    cr_assert(pad_vit_encode_host(vit, pix, 2, &vo) == PAD_OK);
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, e->vocab) == PAD_OK);
    pad_prompt_set *set = NULL;
    pad_prompt_class cls;
    cr_assert(pad_prompt_set_open(&set, "official") == PAD_OK && pad_prompt_set_class(set, cls_key, &cls) == PAD_OK);
    pad_prompt_opts o = pad_prompt_opts_default(task);
    pad_prompt_learner *pl = NULL;
    cr_assert(pad_prompt_learner_create(&pl, w, tok, &cls, &o) == PAD_OK);
    pad_st_file *fi = NULL;
    cr_assert(pad_st_open(&fi, init) == PAD_OK);
    float *n0 = NULL, *a0 = NULL;
    cr_assert(pad_st_read_f32(fi, "normal_ctx", -1, NULL, &n0, NULL) == PAD_OK);
    cr_assert(pad_st_read_f32(fi, "abnormal_ctx", -1, NULL, &a0, NULL) == PAD_OK);
    cr_assert(pad_prompt_learner_set_ctx(pl, n0, a0) == PAD_OK);
    cr_assert(pad_prompt_learner_set_images(pl, feats, 2, T) == PAD_OK); // CPU: host memory is backend memory
    for (int ep = 0; ep < N; ep++) {
        pad_prompt_loss L;
        cr_assert(pad_prompt_learner_train_epoch(pl, ep, N, &L) == PAD_OK);
        losses[ep] = L.total;
    }
    cr_assert(pad_prompt_learner_get_ctx(pl, nctx, actx) == PAD_OK);
    pad_st_close(fi);
    free(n0);
    free(a0);
    pad_prompt_learner_free(pl);
    pad_prompt_set_free(set);
    pad_tokenizer_free(tok);
    pad_vit_free(vit);
    free(feats);
    free(pix);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_backend_free(be);
}

static void contract_case(const char *cls_key, const char *task_s, pad_prompt_task task, int n_pro) {
    env e = make_env();
    char out[600];
    snprintf(out, sizeof out, "%s/ctx_%s.safetensors", e.dir, task_s);
    const int N = 2, W = 128;
    pad_cmd_result r = train(&e, cls_key, task_s, task == PAD_TASK_SEG ? e.init_seg : e.init_cls, e.shots, N, out, "");
    cr_assert(r.exit_code == 0, "train-prompts failed (%d): %s", r.exit_code, r.err);
    cr_assert(r.out[0] == '\0', "train-prompts printed to stdout: %s", r.out);
    pad_cmd_free(&r);
    pad_st_file *f = NULL;
    cr_assert(pad_st_open(&f, out) == PAD_OK);
    float *nctx = pad_fixture_f32(f, "normal_ctx", 3, (int64_t[]){n_pro, 4, W});
    float *actx = pad_fixture_f32(f, "abnormal_ctx", 3, (int64_t[]){4, 1, W});
    float *loss = pad_fixture_f32(f, "loss", 1, (int64_t[]){N});
    float *terms = pad_fixture_f32(f, "loss_terms", 2, (int64_t[]){N, 4});
    float *tv = pad_fixture_f32(f, "text_features", 2, (int64_t[]){2, 64});
    for (int i = 0; i < N; i++)
        cr_assert(isfinite(loss[i]) && loss[i] > 0 && loss[i] == terms[4 * i], "loss[%d] = %g", i, loss[i]);
    // the same numbers through the library
    float want_loss[2], *wn = malloc(sizeof(float) * n_pro * 4 * W), *wa = malloc(sizeof(float) * 4 * W);
    library_train(&e, cls_key, task, task == PAD_TASK_SEG ? e.init_seg : e.init_cls, N, want_loss, wn, wa);
    PAD_ASSERT_CLOSE("loss", loss, want_loss, (size_t)N, 0, 0);
    PAD_ASSERT_CLOSE("normal_ctx", nctx, wn, (size_t)n_pro * 4 * W, 0, 0);
    PAD_ASSERT_CLOSE("abnormal_ctx", actx, wa, (size_t)4 * W, 0, 0);
    free(nctx);
    free(actx);
    free(loss);
    free(terms);
    free(tv);
    free(wn);
    free(wa);
    pad_st_close(f);
}

Test(cli_train, cls_contract_and_library_equality, .timeout = 300) {
    contract_case("bottle", "cls", PAD_TASK_CLS, 3);
}

Test(cli_train, seg_contract_and_library_equality, .timeout = 300) {
    contract_case("pcb1", "seg", PAD_TASK_SEG, 1);
}

// Without --n-pro, n_pro follows the init file (as `score` reads it from CTX): a seg run from a 3-prompt init and a
// cls run from a 1-prompt init both work and keep the prompt count.
Test(cli_train, n_pro_follows_the_init_file, .timeout = 300) {
    env e = make_env();
    const struct {
        const char *task, *init;
        int n_pro;
    } cases[] = {{"seg", e.init_cls, 3}, {"cls", e.init_seg, 1}};
    for (int i = 0; i < 2; i++) {
        char out[600];
        snprintf(out, sizeof out, "%s/np_%d.safetensors", e.dir, i);
        pad_cmd_result r = train(&e, "bottle", cases[i].task, cases[i].init, e.shots, 1, out, "");
        cr_assert(r.exit_code == 0, "case %d failed (%d): %s", i, r.exit_code, r.err);
        pad_cmd_free(&r);
        pad_st_file *f = NULL;
        cr_assert(pad_st_open(&f, out) == PAD_OK);
        float *nctx = pad_fixture_f32(f, "normal_ctx", 3, (int64_t[]){cases[i].n_pro, 4, 128});
        float *loss = pad_fixture_f32(f, "loss", 1, (int64_t[]){1});
        cr_assert(isfinite(loss[0]) && loss[0] > 0, "case %d: loss %g", i, loss[0]);
        free(nctx);
        free(loss);
        pad_st_close(f);
    }
}

Test(cli_train, bad_input_is_a_clear_error, .timeout = 300) {
    env e = make_env();
    char out[600], bad_init[600], missing_init[600], notimg[600], shots_bad[1300];
    snprintf(out, sizeof out, "%s/x.safetensors", e.dir);
    snprintf(bad_init, sizeof bad_init, "%s/bad_init.safetensors", e.dir);
    pad_test_write_ctx(bad_init, 2, 4, 128, 4, 1, 128, 3); // n_pro 2 where cls expects 3
    snprintf(missing_init, sizeof missing_init, "%s/missing_init.safetensors", e.dir);
    {
        pad_st_writer *w = NULL;
        float z[4 * 128] = {0};
        cr_assert(pad_st_writer_init(&w) == PAD_OK);
        cr_assert(pad_st_writer_add_f32(w, "abnormal_ctx", 3, (int64_t[]){4, 1, 128}, z) == PAD_OK);
        cr_assert(pad_st_writer_save(w, missing_init) == PAD_OK);
        pad_st_writer_free(w);
    }
    snprintf(notimg, sizeof notimg, "%s/not_an_image.png", e.dir);
    pad_test_write_file(notimg, "hello", 5);
    snprintf(shots_bad, sizeof shots_bad, "%s,%s", e.shot[0], notimg);
    // an empty (comment-only) prompt set: a clean error naming the file, never a crash
    char empty_set[600], empty_opt[700];
    snprintf(empty_set, sizeof empty_set, "%s/empty_set.yaml", e.dir);
    pad_test_write_file(empty_set, "# nothing here\n", 15);
    snprintf(empty_opt, sizeof empty_opt, "--prompts %s", empty_set);
    struct {
        const char *cls, *task, *init, *shots, *extra;
        int epochs, code;
        const char *want[3];
    } cases[] = {
        {"tubes", "cls", e.init_cls, e.shots, "", 1, 1, {"'tubes'", "pipe_fryum", "mpdd"}},
        {"bottle", "cls", e.init_cls, e.shots, "--prompts nosuchset", 1, 1, {"nosuchset", "official", NULL}},
        {"bottle", "cls", e.init_cls, shots_bad, "", 1, 1, {"not_an_image.png", NULL, NULL}},
        {"bottle", "cls", e.init_cls, "/nonexistent/shot.png", "", 1, 1, {"/nonexistent/shot.png", NULL, NULL}},
        {"bottle", "cls", bad_init, e.shots, "--n-pro 3", 1, 1, {"normal_ctx", "(3, 4, 128)", "(2, 4, 128)"}},
        {"bottle", "seg", e.init_cls, e.shots, "--n-pro 1", 1, 1, {"normal_ctx", "(1, 4, 128)", "(3, 4, 128)"}},
        {"bottle", "cls", missing_init, e.shots, "", 1, 1, {"normal_ctx", "missing", NULL}},
        {"bottle",
         "cls",
         "/nonexistent/init.safetensors",
         e.shots,
         "",
         1,
         1,
         {"/nonexistent/init.safetensors", NULL, NULL}},
        {"bottle", "det", e.init_cls, e.shots, "", 1, 2, {"--task", "det", NULL}},
        {"bottle", "cls", e.init_cls, e.shots, "", 0, 2, {"--epochs", NULL, NULL}},
        {"bottle", "cls", e.init_cls, e.shots, "--preprocess stretch", 1, 2, {"stretch", NULL, NULL}},
        {"bottle", "cls", e.init_cls, e.shots, "--eam sideways", 1, 2, {"--eam", NULL, NULL}},
        {"bottle", "cls", e.init_cls, e.shots, empty_opt, 1, 1, {"empty_set.yaml", "empty", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pad_cmd_result r =
            train(&e, cases[i].cls, cases[i].task, cases[i].init, cases[i].shots, cases[i].epochs, out, cases[i].extra);
        cr_assert(r.exit_code == cases[i].code, "case %zu: exit %d (want %d), stderr: %s", i, r.exit_code,
                  cases[i].code, r.err);
        for (int k = 0; k < 3 && cases[i].want[k]; k++)
            cr_assert(strstr(r.err, cases[i].want[k]), "case %zu: '%s' not in stderr: %s", i, cases[i].want[k], r.err);
        cr_assert(!strstr(r.err, "Segmentation") && !strstr(r.err, "Assert"), "case %zu crashed: %s", i, r.err);
        pad_cmd_free(&r);
    }
    // a missing required option
    pad_cmd_result r =
        pad_cmd_run("%s train-prompts --weights %s --class bottle --task cls", pad_test_binary(), e.model);
    cr_assert(r.exit_code == 2 && strstr(r.err, "required"), "stderr: %s", r.err);
    pad_cmd_free(&r);
}
