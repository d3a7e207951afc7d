/* test_cli_score_cnn.c - `promptad score --method patchcore|padim|spade` (host/cli/cli_score_cnn.c) follows the
 * contract's conventions: image_score [n] and pixel_map [n,R,R], finite, the same bytes on a rerun; bad input is a
 * clear error with exit code 2; --padim-idx: the seeded draw given as a file gives the draw's bytes, a subset gives
 * the same bytes from I64, I32 and F32 files and differs from the draw, and a bad file is exit 2 naming it. The numbers
 * themselves are the library's, checked against our PyTorch references by test_patchcore, test_padim and test_spade. */
#include "check.h"
#include "st_file.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(cli_score_cnn, .timeout = 900);

static void check_dump(const char *path, int n, int R) {
    pad_st_file *f = NULL;
    cr_assert_eq(pad_st_open(&f, path), PAD_OK, "%s", path);
    float *s = NULL, *m = NULL;
    cr_assert_eq(pad_st_read_f32(f, "image_score", 1, (int64_t[]){n}, &s, NULL), PAD_OK);
    cr_assert_eq(pad_st_read_f32(f, "pixel_map", 3, (int64_t[]){n, R, R}, &m, NULL), PAD_OK);
    for (int i = 0; i < n; i++)
        cr_assert(isfinite(s[i]), "%s: image_score[%d] = %g", path, i, (double)s[i]);
    for (int i = 0; i < n * R * R; i++)
        cr_assert(isfinite(m[i]), "%s: pixel_map[%d] = %g", path, i, (double)m[i]);
    free(s);
    free(m);
    pad_st_close(f);
}

// A fresh folder holding r.safetensors (resnet-tiny) and a synthetic class data/weave (64 px, 2 train images,
// n_test good and as many defective test images).
static char *setup(const char *tag, int n_test) {
    char *dir = pad_test_tmpdir(tag);
    const char *bin = pad_test_binary();
    pad_cmd_result r = pad_cmd_run("cd '%s' && '%s' make-model --preset resnet-tiny --out r.safetensors && '%s' synth "
                                   "--out data --classes 1 --size 64 --train 2 --test-good %d --test-bad %d",
                                   dir, bin, bin, n_test, n_test);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    pad_cmd_free(&r);
    return dir;
}

Test(cli_score_cnn, methods_write_the_contract_tensors) {
    char *dir = setup("cli_score_cnn", 2);
    const char *bin = pad_test_binary();
    pad_cmd_result r;
    const char *methods[] = {"patchcore", "padim", "spade"};
    for (int i = 0; i < 3; i++) {
        for (int rep = 0; rep < 2; rep++) {
            r = pad_cmd_run("cd '%s' && '%s' score --method %s --weights r.safetensors --shots "
                            "data/weave/train/good/000.png,data/weave/train/good/001.png --resolution 64 --device cpu "
                            "--out %s_%d.safetensors data/weave/test/good/000.png data/weave/test/good/001.png "
                            "data/weave/test/good/000.png",
                            dir, bin, methods[i], methods[i], rep);
            cr_assert_eq(r.exit_code, 0, "%s: %s", methods[i], r.err);
            pad_cmd_free(&r);
            check_dump(pad_test_fmt("%s/%s_%d.safetensors", dir, methods[i], rep), 3, 64);
        }
        r = pad_cmd_run("cmp '%s/%s_0.safetensors' '%s/%s_1.safetensors'", dir, methods[i], dir, methods[i]);
        cr_assert_eq(r.exit_code, 0, "%s: a rerun differs", methods[i]);
        pad_cmd_free(&r);
    }
    // bad input: exit 2 with a message naming the problem
    r = pad_cmd_run(
        "cd '%s' && '%s' score --method patchcore --weights r.safetensors --resolution 64 --out x.safetensors "
        "data/weave/test/good/000.png",
        dir, bin);
    cr_assert(r.exit_code == 2 && strstr(r.err, "--shots"), "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("'%s' score --method nope --out x.safetensors a.png", bin);
    cr_assert(r.exit_code == 2 && strstr(r.err, "patchcore"), "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
}

static void write_idx(const char *path, pad_dtype dt, int ndim, const int64_t *shape, const void *data) {
    pad_st_writer *w = NULL;
    cr_assert(pad_st_writer_init(&w) == PAD_OK);
    cr_assert(pad_st_writer_add(w, "idx", dt, ndim, shape, data) == PAD_OK);
    cr_assert(pad_st_writer_save(w, path) == PAD_OK);
    pad_st_writer_free(w);
}

// Runs PaDiM into out.safetensors with `extra` options; returns the exit code, err (optional) the stderr.
static int run_padim(const char *dir, const char *extra, const char *out, char **err) {
    pad_cmd_result r =
        pad_cmd_run("cd '%s' && '%s' score --method padim --weights r.safetensors --shots "
                    "data/weave/train/good/000.png,data/weave/train/good/001.png --resolution 64 "
                    "--device cpu %s --out %s data/weave/test/good/000.png data/weave/test/scratch/000.png",
                    dir, pad_test_binary(), extra, out);
    const int rc = r.exit_code;
    if (err) *err = strdup(r.err ? r.err : "");
    pad_cmd_free(&r);
    return rc;
}

static bool same_file(const char *dir, const char *a, const char *b) {
    pad_cmd_result r = pad_cmd_run("cmp '%s/%s' '%s/%s'", dir, a, dir, b);
    const bool same = r.exit_code == 0;
    pad_cmd_free(&r);
    return same;
}

Test(cli_score_cnn, padim_idx) {
    char *dir = setup("cli_score_cnn_idx", 1);
    const char *bin = pad_test_binary();
    // resnet-tiny has 16 + 32 + 64 = 112 channels, fewer than n_features (550): the draw keeps them all, sorted
    int64_t all[112];
    for (int i = 0; i < 112; i++)
        all[i] = i;
    write_idx(pad_test_fmt("%s/all.safetensors", dir), PAD_DTYPE_I64, 1, (int64_t[]){112}, all);
    cr_assert_eq(run_padim(dir, "", "drawn.safetensors", NULL), 0);
    cr_assert_eq(run_padim(dir, "--padim-idx all.safetensors", "all.out.safetensors", NULL), 0);
    cr_assert(same_file(dir, "drawn.safetensors", "all.out.safetensors"), "the draw given as a file differs");
    // a subset in anomalib's unsorted order: the same values from I64, I32 and F32 files give the same bytes
    const int64_t s64[6] = {90, 3, 17, 64, 111, 40};
    int32_t s32[6];
    float sf[6];
    for (int i = 0; i < 6; i++)
        s32[i] = (int32_t)s64[i], sf[i] = (float)s64[i];
    write_idx(pad_test_fmt("%s/s64.safetensors", dir), PAD_DTYPE_I64, 1, (int64_t[]){6}, s64);
    write_idx(pad_test_fmt("%s/s32.safetensors", dir), PAD_DTYPE_I32, 1, (int64_t[]){6}, s32);
    write_idx(pad_test_fmt("%s/sf.safetensors", dir), PAD_DTYPE_F32, 1, (int64_t[]){6}, sf);
    const char *sub[3] = {"s64", "s32", "sf"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(run_padim(dir, pad_test_fmt("--padim-idx %s.safetensors", sub[i]),
                               pad_test_fmt("%s.out.safetensors", sub[i]), NULL),
                     0, "%s", sub[i]);
    check_dump(pad_test_fmt("%s/s64.out.safetensors", dir), 2, 64);
    cr_assert(same_file(dir, "s64.out.safetensors", "s32.out.safetensors"));
    cr_assert(same_file(dir, "s64.out.safetensors", "sf.out.safetensors"));
    cr_assert(!same_file(dir, "s64.out.safetensors", "drawn.safetensors"), "the subset is not used");
    // bad files: exit 2, the message names the file and the problem
    const int64_t dup[3] = {5, 9, 5}, range[2] = {0, 112}, sq[4] = {0, 1, 2, 3};
    write_idx(pad_test_fmt("%s/dup.safetensors", dir), PAD_DTYPE_I64, 1, (int64_t[]){3}, dup);
    write_idx(pad_test_fmt("%s/range.safetensors", dir), PAD_DTYPE_I64, 1, (int64_t[]){2}, range);
    write_idx(pad_test_fmt("%s/sq.safetensors", dir), PAD_DTYPE_I64, 2, (int64_t[]){2, 2}, sq);
    pad_test_write_file(pad_test_fmt("%s/cut.safetensors", dir), "\x40\0\0\0\0\0\0\0{\"idx\"", 14);
    const struct {
        const char *file, *msg;
    } bad[] = {{"dup", "idx[2] = 5 repeats idx[0]"},
               {"range", "idx[1] = 112 is out of range [0, 112)"},
               {"sq", "expected a 1-D tensor"},
               {"cut", "cut.safetensors"},
               {"absent", "absent.safetensors"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err = NULL;
        const int rc = run_padim(dir, pad_test_fmt("--padim-idx %s.safetensors", bad[i].file), "x.safetensors", &err);
        cr_assert(rc == 2 && strstr(err, bad[i].msg) && strstr(err, bad[i].file), "%s: exit %d: %s", bad[i].file, rc,
                  err);
        free(err);
    }
    pad_cmd_result r = pad_cmd_run(
        "cd '%s' && '%s' score --method spade --weights r.safetensors --shots data/weave/train/good/000.png "
        "--resolution 64 --padim-idx s64.safetensors --out x.safetensors data/weave/test/good/000.png",
        dir, bin);
    cr_assert(r.exit_code == 2 && strstr(r.err, "--padim-idx"), "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
}
