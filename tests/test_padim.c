/* test_padim.c - PaDiM (host/model/padim.h) against our float64 reference of anomalib's semantics
 * (tests/ref/patchcore_ref.py padim_*, goldens from make_patchcore_fixtures.py on the torchvision tiny wide ResNet):
 * the seeded channel subset, the Mahalanobis grids, maps and image scores with 3 shots and with 1; a given subset
 * (anomalib's unsorted `idx`, read by pad_padim_read_idx from the golden file itself) against the reference, the
 * seeded draw given explicitly reproducing the draw bit for bit, and the checks of an idx file. */
#include "backend.h"
#include "check.h"
#include "padim.h"
#include "resnet.h"
#include "st_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_shots(int n_shots, const char *tag) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_resnet *net = NULL;
    cr_assert(pad_resnet_load(&net, be, pad_fixture_path("resnet_tiny.safetensors"), 0) == PAD_OK);
    pad_padim_cfg cfg = pad_padim_default_cfg();
    cfg.n_features = 40;
    cfg.seed = 3;
    pad_padim *p = NULL;
    cr_assert(pad_padim_create(&p, net, be, &cfg) == PAD_OK);
    pad_st_file *img = pad_fixture_open("patchcore_tiny.safetensors"), *f = pad_fixture_open("padim_tiny.safetensors");
    int n = 0;
    const int32_t *ch = pad_padim_channels(p, &n);
    float *want_ch = pad_fixture_f32(f, "channels", -1, NULL);
    cr_assert_eq(n, 40);
    for (int i = 0; i < n; i++)
        cr_assert_eq(ch[i], (int32_t)want_ch[i], "channel %d: %d, want %d", i, ch[i], (int)want_ch[i]);
    float *train = pad_fixture_f32(img, "train", -1, NULL), *test = pad_fixture_f32(img, "test", -1, NULL);
    cr_assert(pad_padim_fit(p, train, n_shots, 64, 64) == PAD_OK);
    float scores[2], dist[2 * 16 * 16], *maps = malloc(sizeof(float) * 2 * 64 * 64);
    cr_assert(pad_padim_predict(p, test, 2, 64, 64, scores, maps, dist) == PAD_OK);
    char key[32];
    snprintf(key, sizeof key, "dist%s", tag);
    float *wd = pad_fixture_f32(f, key, -1, NULL);
    snprintf(key, sizeof key, "maps%s", tag);
    float *wm = pad_fixture_f32(f, key, -1, NULL);
    snprintf(key, sizeof key, "score%s", tag);
    float *ws = pad_fixture_f32(f, key, -1, NULL);
    PAD_ASSERT_CLOSE("mahalanobis grid", dist, wd, 2 * 16 * 16, 1e-4, 1e-4);
    PAD_ASSERT_CLOSE("maps", maps, wm, 2 * 64 * 64, 1e-4, 1e-4);
    PAD_ASSERT_CLOSE("scores", scores, ws, 2, 1e-4, 1e-4);
    free(wd), free(wm), free(ws), free(maps), free(train), free(test), free(want_ch);
    pad_st_close(f);
    pad_st_close(img);
    pad_padim_free(p);
    pad_resnet_free(net);
    pad_backend_free(be);
}

Test(padim, three_shots_match_reference) {
    check_shots(3, "3");
}

Test(padim, one_shot_uses_the_regulariser_alone) {
    check_shots(1, "1");
}

// Fits on the 3 golden shots with cfg and predicts the 2 golden test images.
static void fit_predict(const pad_padim_cfg *cfg, float *scores, float *maps, float *dist) {
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_resnet *net = NULL;
    cr_assert(pad_resnet_load(&net, be, pad_fixture_path("resnet_tiny.safetensors"), 0) == PAD_OK);
    pad_padim *p = NULL;
    cr_assert(pad_padim_create(&p, net, be, cfg) == PAD_OK);
    pad_st_file *img = pad_fixture_open("patchcore_tiny.safetensors");
    float *train = pad_fixture_f32(img, "train", -1, NULL), *test = pad_fixture_f32(img, "test", -1, NULL);
    cr_assert(pad_padim_fit(p, train, 3, 64, 64) == PAD_OK);
    cr_assert(pad_padim_predict(p, test, 2, 64, 64, scores, maps, dist) == PAD_OK);
    free(train), free(test);
    pad_st_close(img);
    pad_padim_free(p);
    pad_resnet_free(net);
    pad_backend_free(be);
}

Test(padim, given_idx_matches_reference) {
    int32_t *idx = NULL;
    int n = 0;
    cr_assert_eq(pad_padim_read_idx(pad_fixture_path("padim_tiny.safetensors"), 112, &idx, &n), PAD_OK);
    pad_st_file *f = pad_fixture_open("padim_tiny.safetensors");
    float *want_idx = pad_fixture_f32(f, "idx", 1, (int64_t[]){30});
    cr_assert_eq(n, 30);
    bool sorted = true;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(idx[i], (int32_t)want_idx[i], "idx[%d]: %d, want %d (the file's order)", i, idx[i],
                     (int)want_idx[i]);
        sorted = sorted && (i == 0 || idx[i] > idx[i - 1]);
    }
    cr_assert(!sorted, "the golden subset is in random.sample's order, as anomalib's");
    pad_padim_cfg cfg = pad_padim_default_cfg();
    cfg.channels = idx, cfg.n_channels = n;
    float scores[2], dist[2 * 16 * 16], *maps = malloc(sizeof(float) * 2 * 64 * 64);
    fit_predict(&cfg, scores, maps, dist);
    float *wd = pad_fixture_f32(f, "dist_idx", -1, NULL), *wm = pad_fixture_f32(f, "maps_idx", -1, NULL),
          *ws = pad_fixture_f32(f, "score_idx", -1, NULL);
    PAD_ASSERT_CLOSE("mahalanobis grid", dist, wd, 2 * 16 * 16, 1e-4, 1e-4);
    PAD_ASSERT_CLOSE("maps", maps, wm, 2 * 64 * 64, 1e-4, 1e-4);
    PAD_ASSERT_CLOSE("scores", scores, ws, 2, 1e-4, 1e-4);
    free(wd), free(wm), free(ws), free(maps), free(want_idx), free(idx);
    pad_st_close(f);
}

Test(padim, seeded_draw_given_explicitly_is_bitwise_the_draw) {
    pad_padim_cfg cfg = pad_padim_default_cfg();
    cfg.n_features = 40, cfg.seed = 3;
    float s0[2], s1[2], d0[2 * 16 * 16], d1[2 * 16 * 16];
    float *m0 = malloc(sizeof(float) * 2 * 64 * 64), *m1 = malloc(sizeof(float) * 2 * 64 * 64);
    fit_predict(&cfg, s0, m0, d0);
    pad_st_file *f = pad_fixture_open("padim_tiny.safetensors");
    float *ch = pad_fixture_f32(f, "channels", 1, (int64_t[]){40}); // the seeded draw of seed 3 (sorted)
    int32_t given[40];
    for (int i = 0; i < 40; i++)
        given[i] = (int32_t)ch[i];
    pad_padim_cfg g = pad_padim_default_cfg();
    g.channels = given, g.n_channels = 40;
    g.seed = 99; // unused with a given subset
    fit_predict(&g, s1, m1, d1);
    cr_assert(memcmp(s0, s1, sizeof s0) == 0 && memcmp(d0, d1, sizeof d0) == 0 &&
              memcmp(m0, m1, sizeof(float) * 2 * 64 * 64) == 0);
    free(m0), free(m1), free(ch);
    pad_st_close(f);
}

// Writes tensor `name` (dtype dt, shape) into dir/file and returns the path.
static const char *idx_file(const char *dir, const char *file, const char *name, pad_dtype dt, int ndim,
                            const int64_t *shape, const void *data) {
    pad_st_writer *w = NULL;
    cr_assert(pad_st_writer_init(&w) == PAD_OK);
    cr_assert(pad_st_writer_add(w, name, dt, ndim, shape, data) == PAD_OK);
    const char *path = pad_test_fmt("%s/%s", dir, file);
    cr_assert(pad_st_writer_save(w, path) == PAD_OK);
    pad_st_writer_free(w);
    return path;
}

// pad_padim_read_idx on path against 112 channels fails, naming the file and `problem`.
static void expect_bad(const char *path, const char *problem) {
    pad_test_log_start();
    int32_t *v = NULL;
    int n = -1;
    const pad_status st = pad_padim_read_idx(path, 112, &v, &n);
    cr_assert(st == PAD_ERR_FORMAT || st == PAD_ERR_IO, "%s: %s", path, pad_status_str(st));
    cr_assert(v == NULL && n == 0);
    PAD_ASSERT_LOG_HAS(path);
    PAD_ASSERT_LOG_HAS(problem);
    pad_test_log_stop();
}

Test(padim, idx_files_are_checked) {
    const char *dir = pad_test_tmpdir("padim_idx");
    // the same 4 channels in every accepted dtype read the same, in the file's order
    const int64_t i64[4] = {7, 0, 111, 30};
    const int32_t i32[4] = {7, 0, 111, 30};
    const float f32[4] = {7, 0, 111, 30};
    const double f64[4] = {7, 0, 111, 30};
    const uint16_t f16[4] = {pad_f32_to_f16(7), pad_f32_to_f16(0), pad_f32_to_f16(111), pad_f32_to_f16(30)};
    const uint8_t u8[4] = {7, 0, 111, 30};
    const struct {
        pad_dtype dt;
        const void *data;
    } good[] = {{PAD_DTYPE_I64, i64}, {PAD_DTYPE_I32, i32}, {PAD_DTYPE_F32, f32},
                {PAD_DTYPE_F64, f64}, {PAD_DTYPE_F16, f16}, {PAD_DTYPE_U8, u8}};
    for (size_t g = 0; g < sizeof good / sizeof good[0]; g++) {
        const char *p =
            idx_file(dir, pad_test_fmt("good%zu.safetensors", g), "idx", good[g].dt, 1, (int64_t[]){4}, good[g].data);
        int32_t *v = NULL;
        int n = 0;
        cr_assert_eq(pad_padim_read_idx(p, 112, &v, &n), PAD_OK, "%s", pad_dtype_name(good[g].dt));
        cr_assert(n == 4 && v[0] == 7 && v[1] == 0 && v[2] == 111 && v[3] == 30, "%s", pad_dtype_name(good[g].dt));
        free(v);
    }
    const int64_t range[3] = {1, 112, 2}, neg[2] = {3, -1}, dup[4] = {5, 9, 2, 9}, two_d[4] = {0, 1, 2, 3};
    const float frac[2] = {1.0f, 2.5f}, fnan[1] = {NAN};
    const double huge[1] = {1e300};
    const uint8_t bools[2] = {1, 0};
    expect_bad(idx_file(dir, "range.safetensors", "idx", PAD_DTYPE_I64, 1, (int64_t[]){3}, range),
               "idx[1] = 112 is out of range [0, 112)");
    expect_bad(idx_file(dir, "neg.safetensors", "idx", PAD_DTYPE_I64, 1, (int64_t[]){2}, neg),
               "idx[1] = -1 is out of range");
    expect_bad(idx_file(dir, "dup.safetensors", "idx", PAD_DTYPE_I64, 1, (int64_t[]){4}, dup),
               "idx[3] = 9 repeats idx[1]");
    expect_bad(idx_file(dir, "two_d.safetensors", "idx", PAD_DTYPE_I64, 2, (int64_t[]){2, 2}, two_d),
               "expected a 1-D tensor, got shape (2, 2)");
    expect_bad(idx_file(dir, "frac.safetensors", "idx", PAD_DTYPE_F32, 1, (int64_t[]){2}, frac),
               "idx[1] = 2.5 is not an integer");
    expect_bad(idx_file(dir, "nan.safetensors", "idx", PAD_DTYPE_F32, 1, (int64_t[]){1}, fnan), "out of range");
    expect_bad(idx_file(dir, "huge.safetensors", "idx", PAD_DTYPE_F64, 1, (int64_t[]){1}, huge), "out of range");
    expect_bad(idx_file(dir, "bool.safetensors", "idx", PAD_DTYPE_BOOL, 1, (int64_t[]){2}, bools),
               "dtype BOOL; expected an integer dtype");
    expect_bad(idx_file(dir, "empty.safetensors", "idx", PAD_DTYPE_I64, 1, (int64_t[]){0}, range),
               "idx has 0 channels; expected 1 to 112");
    expect_bad(idx_file(dir, "other.safetensors", "channels", PAD_DTYPE_I64, 1, (int64_t[]){2}, range),
               "missing tensor 'idx'");
    int64_t many[113];
    for (int i = 0; i < 113; i++)
        many[i] = i;
    expect_bad(idx_file(dir, "many.safetensors", "idx", PAD_DTYPE_I64, 1, (int64_t[]){113}, many),
               "idx has 113 channels; expected 1 to 112");
    // a truncated file: the safetensors reader's own check, naming the file
    const char *full = idx_file(dir, "full.safetensors", "idx", PAD_DTYPE_I64, 1, (int64_t[]){4}, dup);
    char *bytes = NULL;
    size_t len = 0;
    FILE *fp = fopen(full, "rb");
    cr_assert(fp);
    bytes = malloc(4096);
    len = fread(bytes, 1, 4096, fp);
    fclose(fp);
    const char *cut = pad_test_fmt("%s/cut.safetensors", dir);
    pad_test_write_file(cut, bytes, len - 5);
    free(bytes);
    expect_bad(cut, "cut.safetensors");
    expect_bad(pad_test_fmt("%s/absent.safetensors", dir), "absent.safetensors");
    // pad_padim_create checks a given subset too
    pad_backend *be = NULL;
    cr_assert(pad_backend_cpu_init(&be, 0) == PAD_OK);
    pad_resnet *net = NULL;
    cr_assert(pad_resnet_load(&net, be, pad_fixture_path("resnet_tiny.safetensors"), 0) == PAD_OK);
    cr_assert_eq(pad_padim_channel_count(net), 112);
    pad_padim_cfg cfg = pad_padim_default_cfg();
    const int32_t bad[2] = {4, 4};
    cfg.channels = bad, cfg.n_channels = 2;
    pad_padim *p = NULL;
    pad_test_log_start();
    cr_assert_eq(pad_padim_create(&p, net, be, &cfg), PAD_ERR_INVALID_ARG);
    cr_assert_null(p);
    PAD_ASSERT_LOG_HAS("idx[1] = 4 repeats idx[0]");
    pad_test_log_stop();
    pad_resnet_free(net);
    pad_backend_free(be);
}
