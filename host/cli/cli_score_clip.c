/* cli_score_clip.c - `promptad score --method cpe|winclip` (docs/cli.md conventions, docs/winclip.md): the
 * zero-shot CPE + V-V CLIP scores, or WinCLIP (no --shots) / WinCLIP+ (with --shots) as anomalib's WinClipModel
 * computes them, for the test images IMG... of one class. Writes image_score [n] and pixel_map [n,R,R] (the bilinear
 * upsample of the score grid, no Gaussian); extensions: score_grid [n,G,G] and text_features [2,E] (the averaged raw
 * CPE text features, normal then anomalous), and for cpe pixel_map_smoothed [n,R,R] (Gaussian sigma 4 as PromptAD's
 * evaluation smooths). Images are decoded and resized before any model work, then scored in chunks. */
#include "args.h"
#include "backend.h"
#include "cli.h"
#include "cli_common.h"
#include "image.h"
#include "log.h"
#include "prompt_set.h"
#include "st_file.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"
#include "winclip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHOTS      64
#define MAX_RESOLUTION 8192
#define SCORE_CHUNK    16 // test images converted and scored per round
#define CPE_SIGMA      4.0

typedef struct clip_job {
    bool winclip;
    pad_backend *be;
    const pad_clip_weights *w;
    const float *text; // (2,E) host, raw
    int S, G, n, R;
    const uint8_t *u8; // (n,S,S,3)
    float *image_score, *grid, *maps, *smoothed;
} clip_job;

// Scores every test image of the job in chunks (the references, for WinCLIP+, are already set in wc).
static pad_status score_all(clip_job *j, pad_winclip *wc, pad_vit *vit) {
    const int chunk = j->n < SCORE_CHUNK ? j->n : SCORE_CHUNK, P = j->G * j->G;
    const size_t px = (size_t)3 * j->S * j->S, RR = (size_t)j->R * j->R;
    float *pixels = (float *)malloc((size_t)chunk * px * sizeof(float));
    if (!pixels) return PAD_ERR_OOM;
    pad_status st = PAD_OK;
    for (int i0 = 0; i0 < j->n && st == PAD_OK; i0 += chunk) {
        const int b = j->n - i0 < chunk ? j->n - i0 : chunk;
        const size_t o = (size_t)i0;
        pad_cli_images_to_pixels(j->u8 + o * px, b, j->S, pixels);
        if (j->winclip)
            st = pad_winclip_score(wc, pixels, b, j->image_score + o, j->grid + o * P, NULL);
        else
            st = pad_cpe_score(j->be, vit, j->text, PAD_WINCLIP_TEMPERATURE, pixels, b, j->image_score + o,
                               j->grid + o * P);
        if (st == PAD_OK)
            st = pad_grid_maps(j->be, j->grid + o * P, b, j->G, j->R, j->smoothed ? CPE_SIGMA : 0.0, j->maps + o * RR,
                               j->smoothed ? j->smoothed + o * RR : NULL);
        PAD_LOG_DEBUG("score: images %d-%d of %d", i0 + 1, i0 + b, j->n);
    }
    free(pixels);
    return st;
}

// Builds the model of the job (and, for WinCLIP+, its few-shot memory from k preprocessed shots) and scores.
static pad_status run_job(clip_job *j, const float *shot_px, int k) {
    pad_winclip *wc = NULL;
    pad_vit *vit = NULL;
    pad_status st;
    if (j->winclip) {
        pad_winclip_params p = pad_winclip_default_params();
        st = pad_winclip_create(&wc, j->be, j->w, &p);
        if (st == PAD_OK) st = pad_winclip_set_text(wc, j->text);
        if (st == PAD_OK && k > 0) st = pad_winclip_set_refs(wc, shot_px, k);
    } else {
        pad_vit_params vp = pad_vit_depth_params(j->w->cfg.vision.layers);
        st = pad_vit_create(&vit, j->be, j->w, &vp);
    }
    if (st == PAD_OK) st = score_all(j, wc, vit);
    pad_winclip_free(wc);
    pad_vit_free(vit);
    return st;
}

static pad_status write_dump(const clip_job *j, const char *method, const char *cls, const char *set, int k,
                             pad_preprocess_mode prep, const char *out) {
    char res_str[16], k_str[16];
    snprintf(res_str, sizeof res_str, "%d", j->R);
    snprintf(k_str, sizeof k_str, "%d", k);
    const int n = j->n, R = j->R, G = j->G, E = j->w->cfg.embed_dim;
    pad_st_writer *wr = NULL;
    pad_status st = pad_st_writer_init(&wr);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "image_score", 1, (int64_t[]){n}, j->image_score);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "pixel_map", 3, (int64_t[]){n, R, R}, j->maps);
    if (st == PAD_OK && j->smoothed)
        st = pad_st_writer_add_f32(wr, "pixel_map_smoothed", 3, (int64_t[]){n, R, R}, j->smoothed);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "score_grid", 3, (int64_t[]){n, G, G}, j->grid);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "text_features", 2, (int64_t[]){2, E}, j->text);
    const char *meta[][2] = {{"method", method},
                             {"class", cls},
                             {"prompts", set},
                             {"shots", k_str},
                             {"resolution", res_str},
                             {"preprocess", pad_preprocess_mode_str(prep)},
                             {"device", j->be->ops->name}};
    for (size_t i = 0; i < sizeof meta / sizeof meta[0] && st == PAD_OK; i++)
        st = pad_st_writer_meta(wr, meta[i][0], meta[i][1]);
    if (st == PAD_OK) st = pad_st_writer_save(wr, out);
    pad_st_writer_free(wr);
    return st;
}

// The parsed command line.
typedef struct clip_args {
    const char *method, *weights, *cls_key, *shots_s, *res_s, *out, *prep_s, *device, *vocab, *prompts;
    const char **imgs;
    int n;
} clip_args;

// Loads everything, scores and writes the dump; returns the exit code (1 on a runtime error).
static int score_clip(const clip_args *a, bool winclip, const char *const *shots, int k, int R,
                      pad_preprocess_mode prep, pad_backend_kind kind) {
    int rc = 1;
    pad_prompt_set *set = NULL;
    pad_tokenizer *tokz = NULL;
    pad_clip_weights *hw = NULL, *w = NULL;
    pad_backend *be = NULL;
    uint8_t *shot_u8 = NULL, *test_u8 = NULL;
    float *shot_px = NULL, *text = NULL;
    clip_job j = {.winclip = winclip, .n = a->n, .R = R};
    pad_prompt_class cls;
    if (pad_prompt_set_open(&set, a->prompts) != PAD_OK || pad_prompt_set_class(set, a->cls_key, &cls) != PAD_OK)
        goto done;
    if (pad_weights_load(&hw, a->weights, PAD_WEIGHTS_ALL) != PAD_OK) goto done;
    if (pad_cli_open_tokenizer(&tokz, a->vocab, hw, a->weights) != PAD_OK) goto done;
    j.S = hw->cfg.vision.image_size;
    j.G = hw->cfg.vision.grid;
    const size_t n = (size_t)a->n, S = (size_t)j.S, RR = (size_t)R * R, E = (size_t)hw->cfg.embed_dim;
    shot_u8 = (uint8_t *)malloc((size_t)(k > 0 ? k : 1) * S * S * 3);
    shot_px = (float *)malloc((size_t)(k > 0 ? k : 1) * 3 * S * S * sizeof(float));
    test_u8 = (uint8_t *)malloc(n * S * S * 3);
    text = (float *)malloc(2 * E * sizeof(float));
    j.image_score = (float *)malloc(n * sizeof(float));
    j.grid = (float *)malloc(n * (size_t)j.G * j.G * sizeof(float));
    j.maps = (float *)malloc(n * RR * sizeof(float));
    if (!winclip) j.smoothed = (float *)malloc(n * RR * sizeof(float));
    if (!shot_u8 || !shot_px || !test_u8 || !text || !j.image_score || !j.grid || !j.maps ||
        (!winclip && !j.smoothed)) {
        PAD_LOG_ERROR("score: out of memory for %d test images at resolution %d", a->n, R);
        goto done;
    }
    if ((k > 0 && pad_cli_load_images(shots, k, prep, j.S, "shot", shot_u8) != PAD_OK) ||
        pad_cli_load_images(a->imgs, a->n, prep, j.S, "test image", test_u8) != PAD_OK)
        goto done;
    if (k > 0) pad_cli_images_to_pixels(shot_u8, k, j.S, shot_px);
    j.u8 = test_u8;
    if (pad_backend_init(&be, kind, 0) != PAD_OK) goto done;
    if (pad_weights_to_backend(hw, be, &w) != PAD_OK) goto done;
    j.be = be;
    j.w = w;
    if (pad_cpe_text(w, tokz, cls.name, text) != PAD_OK) goto done;
    j.text = text;
    PAD_LOG_INFO("score: %s%s, class '%s' (\"%s\"), %d shots, %d test images, %dx%d maps, on %s", a->method,
                 winclip && k > 0 ? "+" : "", cls.key, cls.name, k, a->n, R, R, be->ops->name);
    if (run_job(&j, shot_px, k) != PAD_OK) goto done;
    if (write_dump(&j, a->method, cls.key, pad_prompt_set_name(set), k, prep, a->out) != PAD_OK) goto done;
    PAD_LOG_INFO("wrote %s", a->out);
    rc = 0;
done:
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_backend_free(be);
    pad_tokenizer_free(tokz);
    pad_prompt_set_free(set);
    free(shot_u8);
    free(shot_px);
    free(test_u8);
    free(text);
    free(j.image_score);
    free(j.grid);
    free(j.maps);
    free(j.smoothed);
    return rc;
}

int pad_cli_score_clip(int argc, char **argv) {
    clip_args a = {.prep_s = "squash", .device = "auto", .prompts = "official"};
    const pad_opt opts[] = {
        {"method", "M", "cpe (zero-shot CPE + V-V CLIP) or winclip (WinCLIP; WinCLIP+ with --shots)", &a.method, NULL,
         NULL, NULL},
        {"weights", "W", "OpenCLIP checkpoint (.safetensors; weights/README.md)", &a.weights, NULL, NULL, NULL},
        {"class", "C", "class key in the prompt set: its text name fills the prompts", &a.cls_key, NULL, NULL, NULL},
        {"shots", "A,B,...", "winclip only: normal reference images (WinCLIP+), comma-separated", &a.shots_s, NULL,
         NULL, NULL},
        {"resolution", "R", "side of pixel_map", &a.res_s, NULL, NULL, NULL},
        {"out", "O", "output .safetensors", &a.out, NULL, NULL, NULL},
        {"preprocess", "P", "squash (default), openclip or official, for shots and test images", &a.prep_s, NULL, NULL,
         NULL},
        {"device", "D", "auto (default), cpu or cuda", &a.device, NULL, NULL, NULL},
        {"vocab", "V", "CLIP BPE vocabulary; default: $PROMPTAD_VOCAB, ./weights/, then <binary>/../weights/", &a.vocab,
         NULL, NULL, NULL},
        {"prompts", "SET", "prompt set that names the class: official (default), paper, mpdd, loco, or a .yaml file",
         &a.prompts, NULL, NULL, NULL},
    };
    a.imgs = (const char **)malloc((size_t)(argc > 0 ? argc : 1) * sizeof *a.imgs);
    if (!a.imgs) return 1;
    pad_args_result r = pad_args_parse(
        argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), a.imgs, argc, &a.n,
        "promptad score --method cpe|winclip --weights W --class C [--shots a.png,...] --resolution R "
        "[--preprocess P] --out O.safetensors IMG...",
        "Zero-/few-shot CLIP baselines (docs/winclip.md): image_score [n] and pixel_map [n,R,R] of CPE + V-V CLIP "
        "(also pixel_map_smoothed, Gaussian sigma 4) or of WinCLIP / WinCLIP+ (anomalib's WinClipModel); also "
        "score_grid [n,G,G] and text_features [2,E].");
    if (r != PAD_ARGS_OK) {
        free(a.imgs);
        return r == PAD_ARGS_HELP ? 0 : 2;
    }
    const char *cmd = argv[0];
    int rc = 2, method_i, k = 0;
    long res;
    char *shots_buf = NULL;
    const char *shots[MAX_SHOTS];
    pad_preprocess_mode prep;
    pad_backend_kind kind;
    if (!a.method || !a.weights || !a.cls_key || !a.res_s || !a.out) {
        pad_args_error(cmd, "--method, --weights, --class, --resolution and --out are required");
        goto usage;
    }
    if (!pad_args_choice(cmd, "method", a.method, "cpe", "winclip", &method_i) ||
        !pad_args_int(cmd, "resolution", a.res_s, 1, MAX_RESOLUTION, &res))
        goto usage;
    if (a.n < 1) {
        pad_args_error(cmd, "no test images: give one or more IMG after the options");
        goto usage;
    }
    if (a.shots_s && method_i == 0) {
        pad_args_error(cmd, "--shots: cpe is zero-shot and takes no shots (winclip with --shots is WinCLIP+)");
        goto usage;
    }
    if (pad_preprocess_mode_parse(a.prep_s, &prep) != PAD_OK || pad_backend_kind_parse(a.device, &kind) != PAD_OK)
        goto usage;
    if (a.shots_s) {
        if (!(shots_buf = strdup(a.shots_s))) goto usage;
        if ((k = pad_args_split_list(shots_buf, shots, MAX_SHOTS)) < 1) {
            pad_args_error(cmd, "--shots: expected 1 to %d comma-separated image paths without empty entries",
                           MAX_SHOTS);
            goto usage;
        }
    }
    rc = score_clip(&a, method_i == 1, shots, k, (int)res, prep, kind);
usage:
    free(shots_buf);
    free(a.imgs);
    return rc;
}
