/* test_synth.c - the synthetic dataset (eval/synth.h, `promptad synth`): exact masks (the defect changes nothing
 * outside its mask), a pixel-hash regression guard, byte-identical reruns, the MVTec layout read back by
 * eval/dataset.h, CLI errors, and that the defects are findable: a memory bank of random-projection patch features
 * already separates defective from normal test images (image AUROC > 0.8 per class). */
#include "check.h"
#include "dataset.h"
#include "log.h"
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

static uint64_t fnv(const uint8_t *p, size_t n) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

// ----------------------------------------------------------------------------
// In-memory rendering

Test(synth, masks_are_exact) {
    pad_synth_opts o;
    pad_synth_opts_default(&o);
    o.n_classes = 4;
    size_t S = (size_t)o.size, n = S * S;
    uint8_t *rgb = malloc(n * 3), *clean = malloc(n * 3), *mask = malloc(n);
    for (int c = 0; c < 4; c++) {
        for (int i = 0; i < 9; i++) {
            int type = -2;
            cr_assert(pad_synth_render(&o, c, PAD_SYNTH_SPLIT_TEST_BAD, i, rgb, mask, clean, &type) == PAD_OK);
            cr_assert(type == i % 3);
            size_t area = 0, changed = 0;
            for (size_t p = 0; p < n; p++) {
                cr_assert(mask[p] == 0 || mask[p] == 255);
                int d = 0;
                for (int k = 0; k < 3; k++)
                    d += abs((int)rgb[3 * p + k] - (int)clean[3 * p + k]);
                if (!mask[p]) {
                    cr_assert(d == 0, "class %d image %d: pixel %zu changed outside the mask", c, i, p);
                } else {
                    area++;
                    changed += d > 24;
                }
            }
            // at 256 px a defect covers at least 40 pixels and visibly changes a good part of them
            cr_assert(area >= 40, "class %d image %d: mask area %zu", c, i, area);
            cr_assert(changed * 5 >= area, "class %d image %d (%s): only %zu of %zu mask pixels changed", c, i,
                      pad_synth_defect_type(c, type), changed, area);
        }
        for (int split = 0; split < 2; split++) {
            int type = 0;
            memset(mask, 7, n);
            cr_assert(pad_synth_render(&o, c, (pad_synth_split)split, 3, rgb, mask, clean, &type) == PAD_OK);
            cr_assert(type == -1);
            cr_assert(memcmp(rgb, clean, n * 3) == 0);
            for (size_t p = 0; p < n; p++)
                cr_assert(mask[p] == 0);
        }
    }
    free(rgb);
    free(clean);
    free(mask);
}

Test(synth, variation_and_regression_hash) {
    pad_synth_opts o;
    pad_synth_opts_default(&o);
    o.n_classes = 5;
    size_t S = (size_t)o.size, n = S * S * 3;
    uint8_t *a = malloc(n), *b = malloc(n);
    // Regression guard (not an independent reference): hashes of the pixels of train image 0 of each class at the
    // defaults. Integer-only rendering must give these on every machine; update them only for an intended change.
    // (Checked identical with gcc -O0, gcc -O3 -march=native -ffast-math and clang -O2.)
    const uint64_t want[5] = {0x058caa761d31e1d2ull, 0xae4daf06d427e2f2ull, 0x6d5ffcb4d381843dull,
                              0x909c82c83cd3f434ull, 0xf48970c79fda0498ull};
    for (int c = 0; c < 5; c++) {
        cr_assert(pad_synth_render(&o, c, PAD_SYNTH_SPLIT_TRAIN, 0, a, NULL, NULL, NULL) == PAD_OK);
        uint64_t h = fnv(a, n);
        cr_assert(h == want[c], "class %d: pixel hash 0x%016llx, want 0x%016llx", c, (unsigned long long)h,
                  (unsigned long long)want[c]);
        // same arguments -> same pixels; another index, split or seed -> different pixels
        cr_assert(pad_synth_render(&o, c, PAD_SYNTH_SPLIT_TRAIN, 0, b, NULL, NULL, NULL) == PAD_OK);
        cr_assert(memcmp(a, b, n) == 0);
        cr_assert(pad_synth_render(&o, c, PAD_SYNTH_SPLIT_TRAIN, 1, b, NULL, NULL, NULL) == PAD_OK);
        cr_assert(memcmp(a, b, n) != 0);
        cr_assert(pad_synth_render(&o, c, PAD_SYNTH_SPLIT_TEST_GOOD, 0, b, NULL, NULL, NULL) == PAD_OK);
        cr_assert(memcmp(a, b, n) != 0);
        pad_synth_opts o2 = o;
        o2.seed = 1;
        cr_assert(pad_synth_render(&o2, c, PAD_SYNTH_SPLIT_TRAIN, 0, b, NULL, NULL, NULL) == PAD_OK);
        cr_assert(memcmp(a, b, n) != 0);
    }
    // defective images 0..2 (one per type) of each kind: pixels then mask, hashed together
    const uint64_t want_bad[4] = {0x6e54bba5952f55e9ull, 0x5cdf94f7e0a5e29aull, 0x87914b3a50bab457ull,
                                  0x10f7d96d394ac992ull};
    uint8_t *m = malloc(S * S);
    for (int c = 0; c < 4; c++) {
        uint64_t h = 0xCBF29CE484222325ull;
        for (int i = 0; i < 3; i++) {
            cr_assert(pad_synth_render(&o, c, PAD_SYNTH_SPLIT_TEST_BAD, i, a, m, NULL, NULL) == PAD_OK);
            for (size_t k = 0; k < n; k++)
                h = (h ^ a[k]) * 0x100000001B3ull;
            for (size_t k = 0; k < S * S; k++)
                h = (h ^ m[k]) * 0x100000001B3ull;
        }
        cr_assert(h == want_bad[c], "class %d defective images: hash 0x%016llx, want 0x%016llx", c,
                  (unsigned long long)h, (unsigned long long)want_bad[c]);
    }
    free(m);
    char name[32];
    cr_assert_str_eq(pad_synth_class_name(0, name, sizeof name), "weave");
    cr_assert_str_eq(pad_synth_class_name(3, name, sizeof name), "screw");
    cr_assert_str_eq(pad_synth_class_name(4, name, sizeof name), "weave_2");
    cr_assert_str_eq(pad_synth_class_name(9, name, sizeof name), "grid_3");
    cr_assert_str_eq(pad_synth_defect_type(2, 1), "missing");
    cr_assert_str_eq(pad_synth_defect_type(6, 0), "crack");
    free(a);
    free(b);
}

Test(synth, option_errors) {
    const char *logged = pad_test_log_text();
    pad_synth_opts o;
    pad_synth_opts_default(&o);
    uint8_t px[3];
    pad_test_log_start_all();
    o.size = 32;
    cr_assert(pad_synth_opts_check(&o) == PAD_ERR_INVALID_ARG);
    cr_assert(pad_synth_render(&o, 0, PAD_SYNTH_SPLIT_TRAIN, 0, px, NULL, NULL, NULL) == PAD_ERR_INVALID_ARG);
    pad_synth_opts_default(&o);
    o.n_classes = 17;
    cr_assert(pad_synth_opts_check(&o) == PAD_ERR_INVALID_ARG);
    pad_synth_opts_default(&o);
    cr_assert(pad_synth_render(&o, 3, PAD_SYNTH_SPLIT_TRAIN, 0, px, NULL, NULL, NULL) == PAD_ERR_INVALID_ARG);
    pad_test_log_stop();
    cr_assert(strstr(logged, "synth: image size (64 .. 2048) out of range") != NULL, "%s", logged);
    cr_assert(strstr(logged, "synth: number of classes (1 .. 16) out of range") != NULL, "%s", logged);
    cr_assert(strstr(logged, "synth: no image (class 3, split 0, index 0)") != NULL, "%s", logged);
}

// ----------------------------------------------------------------------------
// The command and the files

Test(synth, cli_layout_and_determinism) {
    char *dir = pad_test_tmpdir("synth_cli");
    const char *bin = pad_test_binary();
    pad_cmd_result r = pad_cmd_run("%s synth --out %s/a --classes 2 --seed 5 --size 64 --train 3 --test-good 2 "
                                   "--test-bad 4",
                                   bin, dir);
    cr_assert(r.exit_code == 0, "synth failed: %s", r.err);
    cr_assert(strstr(r.err, "promptad synth: wrote 2 classes (weave, grid)") != NULL, "%s", r.err);
    cr_assert(strstr(r.err, "6 train + 12 test images (8 defective") != NULL, "%s", r.err);
    cr_assert(strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "summary is not one line: %s", r.err);
    cr_assert(r.out[0] == 0, "stdout not empty: %s", r.out);
    pad_cmd_free(&r);
    // the exact file list
    r = pad_cmd_run("cd %s/a && find . -type f | LC_ALL=C sort", dir);
    const char *want = "./grid/ground_truth/broken/000_mask.png\n"
                       "./grid/ground_truth/broken/001_mask.png\n"
                       "./grid/ground_truth/color/000_mask.png\n"
                       "./grid/ground_truth/scratch/000_mask.png\n"
                       "./grid/test/broken/000.png\n"
                       "./grid/test/broken/001.png\n"
                       "./grid/test/color/000.png\n"
                       "./grid/test/good/000.png\n"
                       "./grid/test/good/001.png\n"
                       "./grid/test/scratch/000.png\n"
                       "./grid/train/good/000.png\n"
                       "./grid/train/good/001.png\n"
                       "./grid/train/good/002.png\n"
                       "./weave/ground_truth/hole/000_mask.png\n"
                       "./weave/ground_truth/scratch/000_mask.png\n"
                       "./weave/ground_truth/scratch/001_mask.png\n"
                       "./weave/ground_truth/stain/000_mask.png\n"
                       "./weave/test/good/000.png\n"
                       "./weave/test/good/001.png\n"
                       "./weave/test/hole/000.png\n"
                       "./weave/test/scratch/000.png\n"
                       "./weave/test/scratch/001.png\n"
                       "./weave/test/stain/000.png\n"
                       "./weave/train/good/000.png\n"
                       "./weave/train/good/001.png\n"
                       "./weave/train/good/002.png\n";
    cr_assert_str_eq(r.out, want);
    pad_cmd_free(&r);
    // the PNGs decode to the rendered pixels, masks as 1-channel 0/255
    pad_synth_opts o;
    pad_synth_opts_default(&o);
    o.n_classes = 2;
    o.seed = 5;
    o.size = 64;
    uint8_t rgb[64 * 64 * 3], mask[64 * 64];
    cr_assert(pad_synth_render(&o, 1, PAD_SYNTH_SPLIT_TEST_BAD, 3, rgb, mask, NULL, NULL) == PAD_OK);
    char path[4096];
    snprintf(path, sizeof path, "%s/a/grid/test/broken/001.png", dir); // defective image 3 = broken #1
    int w, h, ch;
    uint8_t *img = stbi_load(path, &w, &h, &ch, 0);
    cr_assert(img && w == 64 && h == 64 && ch == 3, "%s: %dx%dx%d", path, w, h, ch);
    cr_assert(memcmp(img, rgb, sizeof rgb) == 0, "%s differs from the rendered pixels", path);
    stbi_image_free(img);
    snprintf(path, sizeof path, "%s/a/grid/ground_truth/broken/001_mask.png", dir);
    img = stbi_load(path, &w, &h, &ch, 0);
    cr_assert(img && w == 64 && h == 64 && ch == 1, "%s: %dx%dx%d", path, w, h, ch);
    cr_assert(memcmp(img, mask, sizeof mask) == 0, "%s differs from the rendered mask", path);
    stbi_image_free(img);

    // same arguments, another folder: byte-identical files; no temporary file left behind
    r = pad_cmd_run("%s synth --out %s/b --classes 2 --seed 5 --size 64 --train 3 --test-good 2 --test-bad 4", bin,
                    dir);
    cr_assert(r.exit_code == 0, "%s", r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("diff -r %s/a %s/b && find %s -name '*.tmp' | wc -l", dir, dir, dir);
    cr_assert(r.exit_code == 0, "reruns differ: %s%s", r.out, r.err);
    cr_assert_str_eq(r.out, "0\n");
    pad_cmd_free(&r);
    // another seed: different bytes
    r = pad_cmd_run("%s synth --out %s/c --classes 2 --seed 6 --size 64 --train 3 --test-good 2 --test-bad 4 && "
                    "cmp -s %s/a/weave/train/good/000.png %s/c/weave/train/good/000.png",
                    bin, dir, dir, dir);
    cr_assert(r.exit_code == 1, "seed 6 gave the same file as seed 5 (exit %d): %s", r.exit_code, r.err);
    pad_cmd_free(&r);

    // never overwrites: a second run into the same folder fails and names the class folder
    r = pad_cmd_run("%s synth --out %s/a --classes 2 --size 64", bin, dir);
    cr_assert(r.exit_code == 1);
    cr_assert(strstr(r.err, "/a/weave: already exists and is not empty") != NULL, "%s", r.err);
    pad_cmd_free(&r);
    // usage errors
    r = pad_cmd_run("%s synth --classes 2", bin);
    cr_assert(r.exit_code == 2 && strstr(r.err, "--out is required") != NULL, "%s", r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("%s synth --out %s/d --size 10", bin, dir);
    cr_assert(r.exit_code == 2 && strstr(r.err, "--size: 10 is out of range [64, 2048]") != NULL, "%s", r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("%s synth --out %s/d --classes x", bin, dir);
    cr_assert(r.exit_code == 2 && strstr(r.err, "--classes: 'x' is not an integer") != NULL, "%s", r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("%s synth --help", bin);
    cr_assert(r.exit_code == 0 && strstr(r.out, "usage: promptad synth --out DIR") != NULL, "%s", r.out);
    pad_cmd_free(&r);
}

// ----------------------------------------------------------------------------
// Read back by the dataset module, and defects findable by a plain memory bank

#define PATCH 16
#define FEAT  32

// Patch features of one image: non-overlapping PATCHxPATCH patches, pixels mapped to [-0.5, 0.5], a fixed random
// projection to FEAT dims, L2-normalised. Returns the number of patches written to out (n, FEAT).
static int patch_features(const char *path, const float *proj, float *out) {
    int w, h, ch;
    uint8_t *img = stbi_load(path, &w, &h, &ch, 3);
    cr_assert(img, "cannot decode %s", path);
    int n = 0, D = PATCH * PATCH * 3;
    for (int py = 0; py + PATCH <= h; py += PATCH)
        for (int px = 0; px + PATCH <= w; px += PATCH) {
            float *f = out + (size_t)n * FEAT;
            for (int j = 0; j < FEAT; j++)
                f[j] = 0;
            for (int y = 0; y < PATCH; y++)
                for (int x = 0; x < PATCH; x++)
                    for (int c = 0; c < 3; c++) {
                        float v = img[3 * ((py + y) * w + px + x) + c] / 255.0f - 0.5f;
                        const float *row = proj + (size_t)((y * PATCH + x) * 3 + c) * FEAT;
                        for (int j = 0; j < FEAT; j++)
                            f[j] += v * row[j];
                    }
            double nn = 0;
            for (int j = 0; j < FEAT; j++)
                nn += (double)f[j] * f[j];
            float inv = (float)(1.0 / sqrt(nn + 1e-12));
            for (int j = 0; j < FEAT; j++)
                f[j] *= inv;
            n++;
        }
    (void)D;
    stbi_image_free(img);
    return n;
}

// Mann-Whitney AUROC, ties counted half (O(n^2), small n).
static double auroc(const double *score, const int *label, int n) {
    double num = 0;
    int pos = 0, neg = 0;
    for (int i = 0; i < n; i++) {
        if (label[i])
            pos++;
        else
            neg++;
        if (!label[i]) continue;
        for (int j = 0; j < n; j++)
            if (!label[j]) num += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
    }
    return num / ((double)pos * neg);
}

Test(synth, defects_are_findable, .timeout = 300) {
    char *dir = pad_test_tmpdir("synth_knn");
    pad_synth_opts o;
    pad_synth_opts_default(&o);
    o.n_classes = 4;
    pad_synth_summary sum;
    cr_assert(pad_synth_write(dir, &o, &sum) == PAD_OK);
    cr_assert(sum.n_classes == 4 && sum.n_train == 48 && sum.n_test == 80 && sum.n_test_bad == 40);

    pad_dataset *ds = NULL;
    cr_assert(pad_dataset_open(&ds, PAD_DATASET_FORMAT_MVTEC, dir) == PAD_OK); // non-official classes, MVTec layout
    cr_assert(pad_dataset_n_classes(ds) == 4);
    pad_rng rng = {12345};
    float *proj = malloc(sizeof(float) * PATCH * PATCH * 3 * FEAT);
    pad_rng_fill(&rng, proj, (size_t)PATCH * PATCH * 3 * FEAT, -1.0f, 1.0f);
    int per = (o.size / PATCH) * (o.size / PATCH);
    for (int c = 0; c < 4; c++) {
        char name[32];
        pad_synth_class_name(c, name, sizeof name);

        pad_class_data cls;
        cr_assert(pad_dataset_class_load(ds, name, &cls) == PAD_OK);
        cr_assert(cls.n_train == 12 && cls.n_test == 20 && cls.n_test_anomalous == 10 && cls.has_masks);
        for (int i = 0; i < cls.n_test; i++)
            cr_assert((cls.test[i].n_masks == 1) == (cls.test[i].label == 1));
        float *bank = malloc(sizeof(float) * (size_t)cls.n_train * per * FEAT);
        int nb = 0;
        for (int i = 0; i < cls.n_train; i++)
            nb += patch_features(cls.train[i], proj, bank + (size_t)nb * FEAT);
        float *q = malloc(sizeof(float) * (size_t)per * FEAT);
        double score[64];
        int label[64];
        for (int i = 0; i < cls.n_test; i++) {
            int nq = patch_features(cls.test[i].path, proj, q);
            double worst = 0;
            for (int a = 0; a < nq; a++) {
                double best = -2;
                for (int b = 0; b < nb; b++) {
                    double dot = 0;
                    for (int j = 0; j < FEAT; j++)
                        dot += (double)q[(size_t)a * FEAT + j] * bank[(size_t)b * FEAT + j];
                    if (dot > best) best = dot;
                }
                if (1 - best > worst) worst = 1 - best;
            }
            score[i] = worst;
            label[i] = cls.test[i].label;
        }
        double auc = auroc(score, label, cls.n_test);
        cr_log_info("synth class %s: image AUROC of a random-feature memory bank = %.3f", name, auc);
        cr_assert(auc > 0.8, "class %s: image AUROC %.3f <= 0.8 (defects not findable)", name, auc);
        free(bank);
        free(q);
        pad_class_data_free(&cls);
    }
    free(proj);
    pad_dataset_free(ds);
}
