/* cli_score_cnn.c - `promptad score --method patchcore|padim|spade --weights CNN.safetensors --shots a.png,...
 * --resolution R [--preprocess P] [--seed S] --out O.safetensors IMG...` (docs/cli.md): the memory-bank baselines
 * of docs/conv_methods.md on the ResNet of --weights, fitted on the shots and scoring the test images as the run's
 * units do (host/run/unit_baseline.c): images at R x R through the resize of --preprocess and ImageNet's
 * normalisation. Writes image_score [n] and pixel_map [n,R,R] (PatchCore and PaDiM: after their Gaussian blur).
 * PaDiM's channel subset is drawn from --seed, or read from --padim-idx (tensor `idx`, pad_padim_read_idx). */
#include "args.h"
#include "cli.h"
#include "cli_common.h"
#include "log.h"
#include "padim.h"
#include "patchcore.h"
#include "resnet.h"
#include "spade.h"
#include "st_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHOTS      64
#define MAX_RESOLUTION 2048

static const float k_mean[3] = {0.485f, 0.456f, 0.406f}, k_std[3] = {0.229f, 0.224f, 0.225f};

// Decodes and resizes n images to (n, 3, R, R) with ImageNet's normalisation (host).
static pad_status load_pixels(const char *const *paths, int n, pad_preprocess_mode prep, int R, const char *role,
                              float *out) {
    uint8_t *u8 = malloc((size_t)n * R * R * 3);
    if (!u8) return PAD_ERR_OOM;
    pad_status st = pad_cli_load_images(paths, n, prep, R, role, u8);
    for (int i = 0; i < n && st == PAD_OK; i++)
        for (size_t p = 0; p < (size_t)R * R; p++)
            for (int c = 0; c < 3; c++)
                out[((size_t)i * 3 + c) * R * R + p] =
                    ((float)u8[((size_t)i * R * R + p) * 3 + c] / 255.0f - k_mean[c]) / k_std[c];
    free(u8);
    return st;
}

typedef struct cnn_job {
    int method; // 0 patchcore, 1 padim, 2 spade
    pad_backend *be;
    pad_resnet *net;
    int R;
    uint64_t seed;
    const int32_t *idx; // PaDiM's given channel subset (NULL: the seeded draw)
    int n_idx;
} cnn_job;

// Fits the method on the k shots (device pixels) and scores the n test images (host pixels) in batches of 8.
static pad_status fit_and_score(const cnn_job *j, const float *shots_dev, int k, const float *test, int n,
                                float *scores, float *maps) {
    const int R = j->R, B = 8;
    const size_t img = (size_t)3 * R * R;
    pad_patchcore *pc = NULL;
    pad_padim *pd = NULL;
    pad_spade *sp = NULL;
    pad_status st = PAD_OK;
    if (j->method == 2) {
        const pad_spade_cfg c = pad_spade_default_cfg();
        st = pad_spade_create(&sp, j->net, j->be, &c);
        if (st == PAD_OK) st = pad_spade_fit(sp, shots_dev, k, R, R);
    } else if (j->method == 1) {
        pad_padim_cfg c = pad_padim_default_cfg();
        c.seed = j->seed;
        c.channels = j->idx, c.n_channels = j->n_idx;
        st = pad_padim_create(&pd, j->net, j->be, &c);
        if (st == PAD_OK) st = pad_padim_fit(pd, shots_dev, k, R, R);
    } else {
        pad_patchcore_cfg c = pad_patchcore_default_cfg();
        c.seed = j->seed;
        st = pad_patchcore_create(&pc, j->net, j->be, &c);
        for (int i = 0; i < k && st == PAD_OK; i += B)
            st = pad_patchcore_add(pc, shots_dev + (size_t)i * img, k - i < B ? k - i : B, R, R);
        if (st == PAD_OK) st = pad_patchcore_build(pc);
    }
    float *dev = NULL;
    if (st == PAD_OK) st = (dev = pad_buf_alloc(j->be, (size_t)B * img * sizeof(float))) ? PAD_OK : PAD_ERR_OOM;
    for (int i = 0; i < n && st == PAD_OK; i += B) {
        const int m = n - i < B ? n - i : B;
        float *mp = maps + (size_t)i * R * R;
        st = pad_buf_upload(j->be, dev, test + (size_t)i * img, (size_t)m * img * sizeof(float));
        if (st == PAD_OK)
            st = j->method == 2   ? pad_spade_predict(sp, dev, m, R, R, scores + i, mp)
                 : j->method == 1 ? pad_padim_predict(pd, dev, m, R, R, scores + i, mp, NULL)
                                  : pad_patchcore_predict(pc, dev, m, R, R, scores + i, mp, NULL);
    }
    if (j->be) pad_buf_free(j->be, dev);
    pad_patchcore_free(pc);
    pad_padim_free(pd);
    pad_spade_free(sp);
    return st;
}

static pad_status write_out(const char *out, const char *method, int n, int R, const float *scores, const float *maps) {
    pad_st_writer *wr = NULL;
    PAD_TRY(pad_st_writer_init(&wr));
    pad_status st = pad_st_writer_add_f32(wr, "image_score", 1, (int64_t[]){n}, scores);
    if (st == PAD_OK) st = pad_st_writer_add_f32(wr, "pixel_map", 3, (int64_t[]){n, R, R}, maps);
    if (st == PAD_OK) st = pad_st_writer_meta(wr, "method", method);
    if (st == PAD_OK) st = pad_st_writer_save(wr, out);
    pad_st_writer_free(wr);
    return st;
}

int pad_cli_score_cnn(int argc, char **argv) {
    const char *method_s = NULL, *weights = NULL, *shots_s = NULL, *res_s = NULL, *out = NULL, *prep_s = "squash";
    const char *device = "auto", *seed_s = "0", *idx = NULL;
    const pad_opt opts[] = {
        {"method", "M", "patchcore, padim or spade", &method_s, NULL, NULL, NULL},
        {"weights", "W", "ResNet checkpoint (.safetensors; weights/get_weights.sh --resnet)", &weights, NULL, NULL,
         NULL},
        {"shots", "A,B,...", "the normal images the method is fitted on, comma-separated", &shots_s, NULL, NULL, NULL},
        {"resolution", "R", "side of the input images and of pixel_map (anomalib: 256)", &res_s, NULL, NULL, NULL},
        {"preprocess", "P", "squash (default), openclip or official", &prep_s, NULL, NULL, NULL},
        {"seed", "S", "seed of PaDiM's channel subset and PatchCore's coreset (default 0)", &seed_s, NULL, NULL, NULL},
        {"padim-idx", "I",
         "PaDiM's channel subset: tensor idx (1-D, integer-valued) of a .safetensors file, instead of the draw of "
         "--seed",
         &idx, NULL, NULL, NULL},
        {"device", "D", "auto (default), cpu or cuda", &device, NULL, NULL, NULL},
        {"out", "O", "output .safetensors", &out, NULL, NULL, NULL},
    };
    const char **imgs = (const char **)malloc((size_t)(argc > 0 ? argc : 1) * sizeof *imgs);
    if (!imgs) return 1;
    int n = 0;
    pad_args_result r = pad_args_parse(argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), imgs, argc, &n,
                                       "promptad score --method patchcore|padim|spade --weights CNN.safetensors "
                                       "--shots a.png,b.png --resolution R [--preprocess P] --out O.safetensors IMG...",
                                       "Image scores and anomaly maps of the test images IMG... by a memory-bank "
                                       "baseline fitted on the shots (docs/conv_methods.md): image_score [n], "
                                       "pixel_map [n,R,R].");
    if (r != PAD_ARGS_OK) {
        free(imgs);
        return r == PAD_ARGS_HELP ? 0 : 2;
    }
    const char *cmd = argv[0];
    int rc = 2, m;
    long res, seed;
    char *shots_buf = NULL;
    const char *shots[MAX_SHOTS];
    int k = 0;
    pad_preprocess_mode prep;
    pad_backend_kind kind;
    if (!weights || !shots_s || !res_s || !out || n < 1) {
        pad_args_error(cmd, "--weights, --shots, --resolution, --out and one or more IMG are required");
        goto usage;
    }
    static const char *const methods[] = {"patchcore", "padim", "spade"};
    for (m = 0; m < 3 && strcmp(method_s ? method_s : "", methods[m]) != 0; m++)
        ;
    if (m == 3) {
        pad_args_error(cmd, "--method: expected patchcore, padim or spade");
        goto usage;
    }
    if (idx && m != 1) {
        pad_args_error(cmd, "--padim-idx applies to --method padim only");
        goto usage;
    }
    if (!pad_args_int(cmd, "resolution", res_s, 32, MAX_RESOLUTION, &res) ||
        !pad_args_int(cmd, "seed", seed_s, 0, 2147483647L, &seed))
        goto usage;
    if (pad_preprocess_mode_parse(prep_s, &prep) != PAD_OK || pad_backend_kind_parse(device, &kind) != PAD_OK)
        goto usage;
    if (!(shots_buf = strdup(shots_s)) || (k = pad_args_split_list(shots_buf, shots, MAX_SHOTS)) < 1) {
        pad_args_error(cmd, "--shots: expected 1 to %d comma-separated image paths without empty entries", MAX_SHOTS);
        goto usage;
    }
    rc = 1;
    const int R = (int)res;
    cnn_job j = {m, NULL, NULL, R, (uint64_t)seed, NULL, 0};
    int32_t *idx_v = NULL;
    float *shot_px = malloc((size_t)k * 3 * R * R * sizeof(float)), *test_px = malloc((size_t)n * 3 * R * R * 4);
    float *scores = malloc((size_t)n * sizeof(float)), *maps = malloc((size_t)n * R * R * sizeof(float));
    float *shots_dev = NULL;
    if (!shot_px || !test_px || !scores || !maps) goto done;
    if (load_pixels(shots, k, prep, R, "shot", shot_px) != PAD_OK ||
        load_pixels(imgs, n, prep, R, "test image", test_px) != PAD_OK)
        goto done;
    if (pad_backend_init(&j.be, kind, 0) != PAD_OK) goto done;
    if (pad_resnet_load(&j.net, j.be, weights, m == 2 ? 0 : 3) != PAD_OK) goto done;
    if (idx) { // a bad file is the caller's error (exit 2), its message names the file and the problem
        if (pad_padim_read_idx(idx, pad_padim_channel_count(j.net), &idx_v, &j.n_idx) != PAD_OK) {
            rc = 2;
            goto done;
        }
        j.idx = idx_v;
    }
    if (pad_buf_from_host(j.be, &shots_dev, shot_px, (size_t)k * 3 * R * R) != PAD_OK) goto done;
    if (fit_and_score(&j, shots_dev, k, test_px, n, scores, maps) != PAD_OK) goto done;
    if (write_out(out, method_s, n, R, scores, maps) != PAD_OK) goto done;
    PAD_LOG_INFO("wrote %s", out);
    rc = 0;
done:
    if (j.be) pad_buf_free(j.be, shots_dev);
    pad_resnet_free(j.net);
    pad_backend_free(j.be);
    free(idx_v);
    free(shot_px);
    free(test_px);
    free(scores);
    free(maps);
usage:
    free(shots_buf);
    free(imgs);
    return rc;
}
