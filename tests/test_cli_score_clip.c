/* test_cli_score_clip.c - `promptad score --method cpe|winclip` end to end with the tiny 514-token model and the
 * byte-level vocabulary: the dump's names and shapes; equality with the library path (host/model/winclip.h on the
 * same preprocessed images, the numbers themselves being checked against the Python goldens by test_winclip.c);
 * pixel_map as the bilinear upsample of score_grid; WinCLIP+ differing from WinCLIP; and bad input (shots for cpe,
 * an unknown method, an unknown class, an unreadable image): the right exit code and no dump. */
#include "check.h"
#include "image.h"
#include "prompt_set.h"
#include "st_file.h"
#include "tiny_model.h"
#include "tokenizer.h"
#include "winclip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_TEST 2
#define RES    30

typedef struct env {
    char *dir;
    char model[512], vocab[512], shot[2][512], shots[1100], test[N_TEST][512], tests[1100];
} env;

static env make_env(void) {
    env e;
    e.dir = pad_test_tmpdir("cli_score_clip");
    pad_tiny514_cli_files(e.dir, e.model, e.vocab, sizeof e.model);
    for (int i = 0; i < 2; i++) {
        snprintf(e.shot[i], sizeof e.shot[i], "%s/shot%d.png", e.dir, i);
        pad_test_write_pattern_png(e.shot[i], 80, 70, i);
    }
    snprintf(e.shots, sizeof e.shots, "%s,%s", e.shot[0], e.shot[1]);
    const int sizes[N_TEST][3] = {{90, 50, 2}, {41, 67, 3}};
    size_t len = 0;
    for (int i = 0; i < N_TEST; i++) {
        snprintf(e.test[i], sizeof e.test[i], "%s/test%d.png", e.dir, i);
        pad_test_write_pattern_png(e.test[i], sizes[i][0], sizes[i][1], sizes[i][2]);
        len += (size_t)snprintf(e.tests + len, sizeof e.tests - len, "%s%s", i ? " " : "", e.test[i]);
    }
    return e;
}

static void free_env(env *e) {
    pad_cmd_result r = pad_cmd_run("rm -rf '%s'", e->dir);
    pad_cmd_free(&r);
}

static pad_cmd_result score(const env *e, const char *method, const char *extra, const char *out, const char *imgs) {
    return pad_cmd_run("PROMPTAD_NO_REEXEC=1 %s score --method %s --weights %s --vocab %s --device cpu --class bottle "
                       "--resolution %d --out %s %s %s",
                       pad_test_binary(), method, e->model, e->vocab, RES, out, extra, imgs);
}

static float *preprocess(const char (*paths)[512], int n, int S) {
    float *pix = malloc(sizeof(float) * (size_t)n * 3 * S * S);
    for (int i = 0; i < n; i++) {
        pad_image img;
        cr_assert(pad_image_load(&img, paths[i]) == PAD_OK);
        cr_assert(pad_preprocess(&img, PAD_PREPROCESS_SQUASH, S, false, pix + (size_t)i * 3 * S * S) == PAD_OK);
        pad_image_free(&img);
    }
    return pix;
}

// The library path: image scores (N_TEST) and grids (N_TEST, G, G) of the method on the env's test images.
static void library(const env *e, int method, float *image_score, float *grid, int *G) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_clip_weights *hw = NULL, *w = NULL;
    cr_assert(pad_weights_load(&hw, e->model, PAD_WEIGHTS_ALL) == PAD_OK);
    cr_assert(pad_weights_to_backend(hw, be, &w) == PAD_OK);
    const int S = hw->cfg.vision.image_size;
    *G = hw->cfg.vision.grid;
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, e->vocab) == PAD_OK);
    float text[2 * 64];
    cr_assert(hw->cfg.embed_dim <= 64);
    cr_assert(pad_cpe_text(w, tok, "bottle", text) == PAD_OK);
    float *pix = preprocess(e->test, N_TEST, S);
    if (method == 0) { // cpe
        pad_vit *vit = NULL;
        pad_vit_params vp = pad_vit_default_params();
        cr_assert(pad_vit_create(&vit, be, w, &vp) == PAD_OK);
        cr_assert(pad_cpe_score(be, vit, text, PAD_WINCLIP_TEMPERATURE, pix, N_TEST, image_score, grid) == PAD_OK);
        pad_vit_free(vit);
    } else {
        pad_winclip_params p = pad_winclip_default_params();
        pad_winclip *wc = NULL;
        cr_assert(pad_winclip_create(&wc, be, w, &p) == PAD_OK);
        cr_assert(pad_winclip_set_text(wc, text) == PAD_OK);
        if (method == 2) {
            float *spix = preprocess(e->shot, 2, S);
            cr_assert(pad_winclip_set_refs(wc, spix, 2) == PAD_OK);
            free(spix);
        }
        cr_assert(pad_winclip_score(wc, pix, N_TEST, image_score, grid, NULL) == PAD_OK);
        pad_winclip_free(wc);
    }
    free(pix);
    pad_tokenizer_free(tok);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_backend_free(be);
}

static const float *tensor(pad_st_file *f, const char *name, int ndim, const int64_t *shape) {
    const pad_st_tensor *t = pad_st_find(f, name);
    cr_assert(t, "dump has no '%s'", name);
    cr_assert(t->dtype == PAD_DTYPE_F32 && t->ndim == ndim, "'%s': dtype or rank", name);
    for (int i = 0; i < ndim; i++)
        cr_assert_eq(t->shape[i], shape[i], "'%s': dim %d is %lld, expected %lld", name, i, (long long)t->shape[i],
                     (long long)shape[i]);
    return (const float *)t->data;
}

// Runs the command for method 0 cpe, 1 winclip, 2 winclip with shots and compares its dump with the library.
static void check_method(int method) {
    env e = make_env();
    const char *out = pad_test_fmt("%s/out.safetensors", e.dir);
    const char *names[] = {"cpe", "winclip", "winclip"};
    pad_cmd_result r = score(&e, names[method], method == 2 ? pad_test_fmt("--shots %s", e.shots) : "", out, e.tests);
    cr_assert_eq(r.exit_code, 0, "score failed: %s", r.err);
    pad_cmd_free(&r);
    float img[N_TEST], grid[N_TEST * 64];
    int G;
    library(&e, method, img, grid, &G);
    cr_assert(G * G <= 64);
    pad_st_file *f = NULL;
    cr_assert(pad_st_open(&f, out) == PAD_OK);
    const float *di = tensor(f, "image_score", 1, (int64_t[]){N_TEST});
    const float *dg = tensor(f, "score_grid", 3, (int64_t[]){N_TEST, G, G});
    const float *dm = tensor(f, "pixel_map", 3, (int64_t[]){N_TEST, RES, RES});
    tensor(f, "text_features", 2, (int64_t[]){2, 64});
    PAD_ASSERT_CLOSE("image_score", di, img, N_TEST, 1e-6, 1e-6);
    PAD_ASSERT_CLOSE("score_grid", dg, grid, (size_t)N_TEST * G * G, 1e-6, 1e-6);
    // pixel_map: the bilinear upsample of the grid (a corner pixel samples the corner patch only)
    for (int i = 0; i < N_TEST; i++)
        cr_assert(fabsf(dm[(size_t)i * RES * RES] - dg[(size_t)i * G * G]) < 1e-6f);
    cr_assert_eq(pad_st_find(f, "pixel_map_smoothed") != NULL, method == 0);
    if (method == 0) {
        const float *ds = tensor(f, "pixel_map_smoothed", 3, (int64_t[]){N_TEST, RES, RES});
        double dmax = 0;
        for (size_t j = 0; j < (size_t)N_TEST * RES * RES; j++)
            dmax = fmax(dmax, fabs((double)ds[j] - dm[j]));
        cr_assert(dmax > 0 && dmax < 0.5, "smoothing changed the map by %g", dmax);
    }
    pad_st_close(f);
    free_env(&e);
}

Test(cli_score_clip, cpe) {
    check_method(0);
}

Test(cli_score_clip, winclip) {
    check_method(1);
}

Test(cli_score_clip, winclip_plus) {
    check_method(2);
}

Test(cli_score_clip, bad_input) {
    env e = make_env();
    const char *out = pad_test_fmt("%s/bad.safetensors", e.dir);
    struct {
        const char *method, *extra, *imgs, *msg;
        int code;
    } cases[] = {
        {"cpe", pad_test_fmt("--shots %s", e.shots), e.tests, "cpe is zero-shot", 2},
        {"patchwork", "", e.tests, "expected promptad, cpe, winclip, patchcore, padim or spade", 2},
        {"winclip", "--shots ,", e.tests, "--shots", 2},
        {"winclip", "", pad_test_fmt("%s/missing.png", e.dir), "missing.png", 1},
        {"cpe", "--prompts official", pad_test_fmt("%s %s/missing.png", e.tests, e.dir), "missing.png", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pad_cmd_result r = score(&e, cases[i].method, cases[i].extra, out, cases[i].imgs);
        cr_assert_eq(r.exit_code, cases[i].code, "case %zu: exit %d: %s", i, r.exit_code, r.err);
        cr_assert(strstr(r.err, cases[i].msg), "case %zu: stderr lacks '%s': %s", i, cases[i].msg, r.err);
        cr_assert(access(out, F_OK) != 0, "case %zu wrote a dump", i);
        pad_cmd_free(&r);
    }
    // an unknown class
    pad_cmd_result r = pad_cmd_run("%s score --method cpe --weights %s --vocab %s --device cpu --class nosuch "
                                   "--resolution 8 --out %s %s",
                                   pad_test_binary(), e.model, e.vocab, out, e.tests);
    cr_assert_eq(r.exit_code, 1, "%s", r.err);
    cr_assert(strstr(r.err, "nosuch"));
    cr_assert(access(out, F_OK) != 0);
    pad_cmd_free(&r);
    free_env(&e);
}
