/* test_st_file.c - safetensors writer/reader round trip, dtype conversion, and every malformed-file error. */
#include "check.h"
#include "st_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(st_file, roundtrip_f32_u8_and_metadata) {
    char *dir = pad_test_tmpdir("st");
    char path[512];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    pad_st_writer *w;
    cr_assert(pad_st_writer_init(&w) == PAD_OK);
    float x[6] = {1, -2, 3.5f, 0, 1e-8f, 65504};
    uint8_t m[3] = {0, 1, 255};
    float s = 4.6052f;
    cr_assert(pad_st_writer_add_f32(w, "x", 2, (int64_t[]){2, 3}, x) == PAD_OK);
    cr_assert(pad_st_writer_add(w, "m", PAD_DTYPE_U8, 1, (int64_t[]){3}, m) == PAD_OK);
    cr_assert(pad_st_writer_add_f32(w, "logit_scale", 0, NULL, &s) == PAD_OK);
    cr_assert(pad_st_writer_add_f32(w, "x", 1, (int64_t[]){1}, x) == PAD_ERR_INVALID_ARG, "duplicate accepted");
    cr_assert(pad_st_writer_meta(w, "format", "pt") == PAD_OK);
    cr_assert(pad_st_writer_save(w, path) == PAD_OK);
    pad_st_writer_free(w);

    pad_st_file *f;
    cr_assert(pad_st_open(&f, path) == PAD_OK);
    cr_assert(f->n_tensors == 3);
    float *rx = pad_fixture_f32(f, "x", 2, (int64_t[]){2, 3});
    PAD_ASSERT_CLOSE("x", rx, x, 6, 0, 0);
    float *rm = pad_fixture_f32(f, "m", 1, (int64_t[]){-1});
    cr_assert(rm[0] == 0 && rm[1] == 1 && rm[2] == 255);
    float *rs = pad_fixture_f32(f, "logit_scale", 0, NULL);
    cr_assert(rs[0] == s);
    float *bad = NULL;
    cr_assert(pad_st_read_f32(f, "x", 2, (int64_t[]){3, 2}, &bad, NULL) == PAD_ERR_FORMAT);
    cr_assert(pad_st_read_f32(f, "nope", -1, NULL, &bad, NULL) == PAD_ERR_FORMAT);
    // the metadata is readable after the header is gone: string values only
    cr_assert_str_eq(pad_st_meta(f, "format"), "pt");
    cr_assert_null(pad_st_meta(f, "activation"));
    free(rx);
    free(rm);
    free(rs);
    pad_st_close(f);
    // a non-string value (the format wants strings; we keep the file, the entry reads as absent)
    static const char hdr[] = "{\"__metadata__\":{\"n\":3,\"s\":\"v\"},\"t\":{\"dtype\":\"F32\",\"shape\":[1],"
                              "\"data_offsets\":[0,4]}}";
    unsigned char buf[8 + sizeof hdr - 1 + 4] = {0};
    buf[0] = (unsigned char)(sizeof hdr - 1);
    memcpy(buf + 8, hdr, sizeof hdr - 1);
    snprintf(path, sizeof path, "%s/meta.safetensors", dir);
    pad_test_write_file(path, buf, sizeof buf);
    cr_assert(pad_st_open(&f, path) == PAD_OK);
    cr_assert_null(pad_st_meta(f, "n"));
    cr_assert_str_eq(pad_st_meta(f, "s"), "v");
    pad_st_close(f);
}

Test(st_file, half_and_bfloat16_conversion) {
    cr_assert(pad_f16_to_f32(0x3c00) == 1.0f);
    cr_assert(pad_f16_to_f32(0xc000) == -2.0f);
    cr_assert(pad_f16_to_f32(0x7bff) == 65504.0f);
    cr_assert(pad_f16_to_f32(0x0001) == ldexpf(1.0f, -24)); // smallest subnormal
    cr_assert(isinf(pad_f16_to_f32(0x7c00)));
    cr_assert(pad_bf16_to_f32(0x3f80) == 1.0f);
    cr_assert(pad_bf16_to_f32(0x4049) == 3.140625f);
    // f32 -> f16 rounds to nearest even, and round-trips every half value
    for (uint32_t h = 0; h < 0x7c00; h++)
        cr_assert(pad_f32_to_f16(pad_f16_to_f32((uint16_t)h)) == h, "half %04x does not round-trip", h);
    cr_assert(pad_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00); // tie -> even
    cr_assert(pad_f32_to_f16(1e6f) == 0x7c00);
}

// Writes raw bytes: u64 header length + header + data.
static char *write_raw(const char *dir, const char *name, uint64_t hlen, const char *hdr, const void *data,
                       size_t ndata) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    cr_assert(fp);
    fwrite(&hlen, 8, 1, fp);
    fwrite(hdr, 1, strlen(hdr), fp);
    if (ndata) fwrite(data, 1, ndata, fp);
    fclose(fp);
    return path;
}

static void expect_bad(const char *path, pad_status want) {
    pad_st_file *f = (pad_st_file *)1;
    pad_status st = pad_st_open(&f, path);
    cr_assert(st == want, "%s: got status %s, want %s", path, pad_status_str(st), pad_status_str(want));
    cr_assert(f == NULL);
}

Test(st_file, malformed_files_are_rejected) {
    char *dir = pad_test_tmpdir("stbad");
    char path[512];
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    pad_test_write_file(path, "", 0);
    expect_bad(path, PAD_ERR_FORMAT);
    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    pad_test_write_file(path, "\x10\0\0", 3);
    expect_bad(path, PAD_ERR_FORMAT);
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    expect_bad(path, PAD_ERR_IO);

    float data[4] = {1, 2, 3, 4};
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    // header length larger than the file
    expect_bad(write_raw(dir, "hlen.st", 1000000, ok, data, 16), PAD_ERR_FORMAT);
    // truncated data
    expect_bad(write_raw(dir, "trunc.st", strlen(ok), ok, data, 8), PAD_ERR_FORMAT);
    // truncated JSON (header length within the file but the JSON is cut)
    expect_bad(write_raw(dir, "json.st", strlen(ok) - 5, ok, NULL, 0), PAD_ERR_FORMAT);
    // unknown dtype
    const char *h1 = "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    expect_bad(write_raw(dir, "dtype.st", strlen(h1), h1, data, 16), PAD_ERR_FORMAT);
    // shape / size mismatch
    const char *h2 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}";
    expect_bad(write_raw(dir, "shape.st", strlen(h2), h2, data, 16), PAD_ERR_FORMAT);
    // offsets out of range
    const char *h3 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]}}";
    expect_bad(write_raw(dir, "range.st", strlen(h3), h3, data, 16), PAD_ERR_FORMAT);
    // overlapping tensors
    const char *h4 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    expect_bad(write_raw(dir, "overlap.st", strlen(h4), h4, data, 16), PAD_ERR_FORMAT);
    // negative / fractional offsets
    const char *h5 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}";
    expect_bad(write_raw(dir, "neg.st", strlen(h5), h5, data, 16), PAD_ERR_FORMAT);
    // a valid file passes
    pad_st_file *f;
    cr_assert(pad_st_open(&f, write_raw(dir, "good.st", strlen(ok), ok, data, 16)) == PAD_OK);
    pad_st_close(f);
}

// Opens a bad file with the log captured: the status is PAD_ERR_FORMAT and the error names the file and the problem.
static void expect_message(const char *path, const char *problem) {
    pad_test_log_start();
    pad_st_file *f = (pad_st_file *)1;
    cr_assert(pad_st_open(&f, path) == PAD_ERR_FORMAT && f == NULL, "%s opened", path);
    PAD_ASSERT_LOG_HAS(path);
    PAD_ASSERT_LOG_HAS(problem);
    pad_test_log_stop();
}

Test(st_file, error_messages_name_file_and_problem) {
    char *dir = pad_test_tmpdir("stmsg");
    float data[4] = {1, 2, 3, 4};
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    const char *h1 = "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    const char *h2 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}";
    const char *h3 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]}}";
    const char *h4 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    expect_message(write_raw(dir, "hlen.st", 1000000, ok, data, 16), "header length 1000000 is larger than the file");
    expect_message(write_raw(dir, "json.st", strlen(ok) - 5, ok, NULL, 0), "header is not a JSON object");
    expect_message(write_raw(dir, "dtype.st", strlen(h1), h1, data, 16), "tensor 'a': unknown dtype 'Q4'");
    expect_message(write_raw(dir, "shape.st", strlen(h2), h2, data, 16),
                   "tensor 'a': shape (3, 2) of F32 needs 24 bytes but data_offsets span 16");
    expect_message(write_raw(dir, "range.st", strlen(h3), h3, data, 16),
                   "tensor 'a': data_offsets [8, 24] are out of range (data is 16 bytes");
    expect_message(write_raw(dir, "overlap.st", strlen(h4), h4, data, 16),
                   "tensors 'a' and 'b' have overlapping data_offsets");
    // reading a tensor with the wrong shape names the file, the tensor and both shapes
    pad_st_file *f = NULL;
    cr_assert(pad_st_open(&f, write_raw(dir, "good.st", strlen(ok), ok, data, 16)) == PAD_OK);
    float *x = NULL;
    pad_test_log_start();
    cr_assert(pad_st_read_f32(f, "a", 2, (int64_t[]){4, 1}, &x, NULL) == PAD_ERR_FORMAT && x == NULL);
    PAD_ASSERT_LOG_HAS(f->path);
    PAD_ASSERT_LOG_HAS("tensor 'a': expected shape (4, 1), got (2, 2)");
    cr_assert(pad_st_read_f32(f, "b", -1, NULL, &x, NULL) == PAD_ERR_FORMAT && x == NULL);
    PAD_ASSERT_LOG_HAS("missing tensor 'b'");
    pad_test_log_stop();
    pad_st_close(f);
    // through the CLI: a non-zero exit, no crash, and the same message on stderr
    char *p = write_raw(dir, "dtype.st", strlen(h1), h1, data, 16);
    pad_cmd_result r = pad_cmd_run("%s metrics --in %s --out %s/o.json", pad_test_binary(), p, dir);
    cr_assert(r.exit_code > 0, "exit code %d", r.exit_code);
    cr_assert(strstr(r.err, p) && strstr(r.err, "unknown dtype 'Q4'"), "stderr does not name the file and dtype:\n%s",
              r.err);
    pad_cmd_free(&r);
}

// Writes a header of n zero-size tensors "t0".."t<n-1>" (plus a copy of "t<dup>" at the end when dup >= 0).
static char *write_many_empty(const char *dir, const char *name, int n, int dup) {
    size_t cap = (size_t)n * 64 + 128, len = 0;
    char *hdr = malloc(cap);
    cr_assert(hdr);
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    for (int i = 0; i < n + (dup >= 0); i++)
        len +=
            (size_t)snprintf(hdr + len, cap - len, "%s\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",
                             i ? "," : "", i < n ? i : dup);
    snprintf(hdr + len, cap - len, "}");
    char *p = write_raw(dir, name, strlen(hdr), hdr, NULL, 0);
    free(hdr);
    return p;
}

// Regression (issue 15): the duplicate-name check compared every pair of names (100k empty tensors: over a minute)
// and every lookup scanned the whole list. Names are now sorted once; the test's timeout is the guard.
Test(st_file, many_tensors_open_and_duplicates_are_found_by_sorting, .timeout = 30) {
    char *dir = pad_test_tmpdir("stmany");
    pad_st_file *f = NULL;
    cr_assert(pad_st_open(&f, write_many_empty(dir, "many.st", 100000, -1)) == PAD_OK);
    cr_assert(f->n_tensors == 100000);
    for (int i = 0; i < 100000; i += 997) {
        char nm[32];
        snprintf(nm, sizeof nm, "t%d", i);
        const pad_st_tensor *t = pad_st_find(f, nm);
        cr_assert(t && strcmp(t->name, nm) == 0 && t->numel == 0, "lookup of %s", nm);
    }
    cr_assert(pad_st_find(f, "t100000") == NULL && pad_st_find(f, "") == NULL && pad_st_find(f, "t") == NULL);
    pad_st_close(f);
    pad_test_log_start_all();
    expect_bad(write_many_empty(dir, "dup.st", 100000, 4242), PAD_ERR_FORMAT);
    cr_assert(strstr(pad_test_log_text(), "dup.st: tensor 't4242' appears twice"), "message: %s", pad_test_log_text());
    pad_test_log_stop();
}
