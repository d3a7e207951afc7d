/* test_cli_score_cnn.c - `promptad score --method patchcore|padim|spade` (host/cli/cli_score_cnn.c) follows the
 * contract's conventions: image_score [n] and pixel_map [n,R,R], finite, the same bytes on a rerun; a PaDiM with
 * another seed differs; bad input is a clear error with exit code 2. The numbers themselves are the library's,
 * checked against our PyTorch references by test_patchcore, test_padim and test_spade. */
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

Test(cli_score_cnn, methods_write_the_contract_tensors) {
    char *dir = pad_test_tmpdir("cli_score_cnn");
    const char *bin = pad_test_binary();
    pad_cmd_result r = pad_cmd_run("cd '%s' && '%s' make-model --preset resnet-tiny --out r.safetensors && '%s' synth "
                                   "--out data --classes 1 --size 64 --train 2 --test-good 2 --test-bad 2",
                                   dir, bin, bin);
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    pad_cmd_free(&r);
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
        "cd '%s' && '%s' score --method padim --weights r.safetensors --shots data/weave/train/good/000.png "
        "--resolution 64 --padim-idx i.safetensors --out x.safetensors data/weave/test/good/000.png",
        dir, bin);
    cr_assert(r.exit_code == 2 && strstr(r.err, "--padim-idx"), "exit %d: %s", r.exit_code, r.err);
    pad_cmd_free(&r);
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
