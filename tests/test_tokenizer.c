/* test_tokenizer.c - the CLIP BPE tokenizer (host/tokenizer.h) and `promptad tokenize`.
 * Exact ids against tests/fixtures/tokenizer_cases.tsv (tests/ref/make_tokenizer_fixture.py, an independent Python
 * reference cross-checked with the regex module and open_clip + ftfy): every PromptAD prompt for MVTec AD and VisA,
 * the openclip_spec.md §7.5 vectors, punctuation, digits, contractions, whitespace, HTML entities, truncation and
 * non-ASCII text. Plus values typed in from the specs, hand-made vocabularies, the byte vocabulary, error messages
 * and the CLI. */
#include "check.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CTX PAD_TOKENIZER_CONTEXT_LEN

// ----------------------------------------------------------------------------
// helpers

typedef struct log_capture {
    char text[8192];
} log_capture;

static void capture_log(pad_log_level level, const char *msg, void *user) {
    log_capture *c = user;
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof c->text - n, "[%d] %s\n", (int)level, msg);
}

static pad_tokenizer *load_real(void) {
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, pad_test_vocab_path()) == PAD_OK, "cannot load %s", pad_test_vocab_path());
    return tok;
}

// Asserts that `text` tokenizes to want[0..n_want) followed by zeros.
static void expect_ids(pad_tokenizer *tok, const char *what, const char *text, const int32_t *want, int n_want) {
    int32_t got[CTX];
    cr_assert(pad_tokenizer_tokenize(tok, text, CTX, got, NULL) == PAD_OK, "%s: tokenize failed", what);
    for (int i = 0; i < CTX; i++) {
        int32_t w = i < n_want ? want[i] : 0;
        cr_assert(got[i] == w, "%s ('%s'): id %d: got %d, want %d", what, text, i, (int)got[i], (int)w);
    }
}

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    cr_assert(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert(fread(buf, 1, (size_t)n, fp) == (size_t)n);
    buf[n] = 0;
    fclose(fp);
    if (len) *len = (size_t)n;
    return buf;
}

// Undoes the fixture's escaping (\\ \t \n \r \xHH) in place.
static void unescape(char *s) {
    char *w = s;
    for (char *r = s; *r;) {
        if (*r != '\\') {
            *w++ = *r++;
            continue;
        }
        char c = r[1];
        if (c == 'x') {
            char hex[3] = {r[2], r[3], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 4;
            continue;
        }
        *w++ = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
        r += 2;
    }
    *w = 0;
}

static void write_gz(const char *path, const char *text) {
    gzFile gz = gzopen(path, "wb");
    cr_assert(gz != NULL);
    cr_assert(gzwrite(gz, text, (unsigned)strlen(text)) == (int)strlen(text));
    cr_assert(gzclose(gz) == Z_OK);
}

// ----------------------------------------------------------------------------
// the fixture

Test(tokenizer, fixture_cases) {
    PAD_REQUIRE_VOCAB();
    pad_tokenizer *tok = load_real();
    char *buf = slurp(pad_fixture_path("tokenizer_cases.tsv"), NULL);
    int n_cases = 0, n_spec = 0, n_prompts = 0, n_openclip = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[4];
        char *p = line;
        for (int k = 0; k < 4; k++) {
            f[k] = p;
            char *tab = k < 3 ? strchr(p, '\t') : NULL;
            cr_assert(k == 3 || tab != NULL, "fixture: bad line '%s'", line);
            if (tab) {
                *tab = 0;
                p = tab + 1;
            }
        }
        const char *name = f[0];
        unescape(f[2]);
        int32_t want[CTX];
        int n_want = 0;
        for (char *q = f[3]; *q;) {
            char *end;
            long v = strtol(q, &end, 10);
            cr_assert(end != q && n_want < CTX, "fixture %s: bad ids", name);
            want[n_want++] = (int32_t)v;
            q = end;
            while (*q == ' ')
                q++;
        }
        expect_ids(tok, name, f[2], want, n_want);
        // encode() gives the same ids without SOT/EOT when nothing was truncated
        if (want[n_want - 1] == pad_tokenizer_eot(tok) && n_want < CTX) {
            int32_t ids[CTX];
            int n = -1;
            cr_assert(pad_tokenizer_encode(tok, f[2], ids, CTX, &n) == PAD_OK);
            cr_assert(n == n_want - 2, "%s: encode gave %d ids, want %d", name, n, n_want - 2);
            for (int i = 0; i < n; i++)
                cr_assert(ids[i] == want[i + 1], "%s: encode id %d", name, i);
        }
        n_cases++;
        n_spec += strncmp(name, "spec/", 5) == 0;
        n_prompts += strncmp(name, "mvtec/", 6) == 0 || strncmp(name, "visa/", 5) == 0;
        n_openclip += f[1][0] == '1';
    }
    cr_assert(n_cases >= 430 && n_spec >= 27 && n_prompts >= 350, "fixture too small: %d cases, %d spec, %d prompts",
              n_cases, n_spec, n_prompts);
    cr_assert(n_openclip >= n_cases - 1, "fixture: only %d of %d cases agree with open_clip", n_openclip, n_cases);
    free(buf);
    pad_tokenizer_free(tok);
}

// ----------------------------------------------------------------------------
// values typed in from the specs (independent of the fixture)

Test(tokenizer, spec_values) {
    PAD_REQUIRE_VOCAB();
    pad_tokenizer *tok = load_real();
    cr_assert(pad_tokenizer_vocab_size(tok) == 49408);
    cr_assert(pad_tokenizer_n_merges(tok) == 48894);
    cr_assert(pad_tokenizer_sot(tok) == 49406 && pad_tokenizer_eot(tok) == 49407);
    // openclip_spec.md §7.5 (the first one is the output printed in OpenAI's notebook)
    expect_ids(tok, "hello", "Hello World!", (const int32_t[]){49406, 3306, 1002, 256, 49407}, 5);
    expect_ids(tok, "contractions", "it's 2024, isn't it?",
               (const int32_t[]){49406, 585, 568, 273, 271, 273, 275, 267, 2923, 713, 585, 286, 49407}, 13);
    expect_ids(tok, "html", "ok &amp;amp; done", (const int32_t[]){49406, 2481, 261, 1700, 49407}, 5);
    expect_ids(tok, "nfc", "cafe\xcc\x81 na\xc3\xafve", (const int32_t[]){49406, 15304, 1097, 35689, 563, 49407}, 6);
    // promptad_spec.md §3.2: class-name ids in the normal prompt "N N N N {name}."
    static const struct {
        const char *name;
        int32_t ids[3];
        int n;
    } names[] = {
        {"bottle", {5392}, 1},
        {"cable", {7925}, 1},
        {"candle", {12674}, 1},
        {"capsule", {20627}, 1},
        {"capsules", {32870}, 1},
        {"carpet", {6922}, 1},
        {"cashew", {39531}, 1},
        {"chewing gum", {31486, 11235}, 2},
        {"fryum", {936, 7259}, 2},
        {"grid", {9882}, 1},
        {"hazelnut", {35816}, 1},
        {"leather", {5862}, 1},
        {"macaroni", {41824}, 1},
        {"metal nut", {4044, 6491}, 2},
        {"pill", {19226}, 1},
        {"pipe fryum", {10459, 936, 7259}, 3},
        {"printed circuit board", {7978, 9801, 1972}, 3},
        {"screw", {14225}, 1},
        {"tile", {8227}, 1},
        {"toothbrush", {36841}, 1},
        {"transistor", {32236, 17740}, 2},
        {"wood", {1704}, 1},
        {"zipper", {33670}, 1},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "N N N N %s.", names[i].name);
        int32_t want[16] = {49406, 333, 333, 333, 333};
        int n = 5;
        for (int k = 0; k < names[i].n; k++)
            want[n++] = names[i].ids[k];
        want[n++] = 269;
        want[n++] = 49407;
        expect_ids(tok, names[i].name, text, want, n);
    }
    // generic states (promptad_spec.md §3.2) around "bottle"
    expect_ids(tok, "blemished", "N N N N blemished bottle.",
               (const int32_t[]){49406, 333, 333, 333, 333, 1447, 714, 1492, 5392, 269, 49407}, 11);
    expect_ids(tok, "with defect", "N N N N bottle with defect.",
               (const int32_t[]){49406, 333, 333, 333, 333, 5392, 593, 44013, 269, 49407}, 10);
    // the longest PromptAD prompt is 15 tokens (promptad_spec.md §3.5): EOT at index 14
    int32_t row[CTX];
    cr_assert(pad_tokenizer_tokenize(tok, "N N N N transistor with misplaced transistor.", CTX, row, NULL) == PAD_OK);
    cr_assert(pad_tokenizer_eot_index(tok, row, CTX) == 14);
    cr_assert(pad_tokenizer_tokenize(tok, "N N N N A metal nut.", CTX, row, NULL) == PAD_OK);
    cr_assert(pad_tokenizer_eot_index(tok, row, CTX) == 9);
    pad_tokenizer_free(tok);
}

Test(tokenizer, truncation) {
    PAD_REQUIRE_VOCAB();
    pad_tokenizer *tok = load_real();
    char text[600] = "";
    for (int i = 0; i < 100; i++)
        strcat(text, i ? " word" : "word");
    int32_t ids[8];
    int n = -1;
    cr_assert(pad_tokenizer_encode(tok, text, ids, 8, &n) == PAD_OK);
    cr_assert(n == 100, "encode counts every id (got %d)", n);
    int32_t row[CTX];
    bool truncated = false;
    cr_assert(pad_tokenizer_tokenize(tok, text, CTX, row, &truncated) == PAD_OK);
    cr_assert(truncated);
    cr_assert(row[0] == 49406 && row[CTX - 1] == 49407);
    for (int i = 1; i < CTX - 1; i++)
        cr_assert(row[i] == ids[0], "row[%d] = %d", i, (int)row[i]);
    // exactly 75 ids fit without truncation, 76 do not
    char fit[400] = "";
    for (int i = 0; i < 75; i++)
        strcat(fit, i ? " a" : "a");
    cr_assert(pad_tokenizer_tokenize(tok, fit, CTX, row, &truncated) == PAD_OK);
    cr_assert(!truncated && row[CTX - 1] == 49407 && row[CTX - 2] == 320);
    strcat(fit, " b");
    cr_assert(pad_tokenizer_tokenize(tok, fit, CTX, row, &truncated) == PAD_OK);
    cr_assert(truncated && row[CTX - 1] == 49407 && row[CTX - 2] == 320);
    // a shorter context
    cr_assert(pad_tokenizer_tokenize(tok, "Hello World!", 4, row, &truncated) == PAD_OK);
    cr_assert(truncated && row[0] == 49406 && row[1] == 3306 && row[2] == 1002 && row[3] == 49407);
    pad_tokenizer_free(tok);
}

Test(tokenizer, cache_survives_many_words) {
    PAD_REQUIRE_VOCAB();
    pad_tokenizer *tok = load_real();
    // > 4096 distinct pieces forces the per-piece cache to be cleared several times
    char text[64];
    int32_t row[CTX];
    for (int i = 0; i < 6000; i++) {
        snprintf(text, sizeof text, "%c%c%c%cx", 'a' + i % 26, 'a' + (i / 26) % 26, 'a' + (i / 676) % 26, 'q');
        cr_assert(pad_tokenizer_tokenize(tok, text, CTX, row, NULL) == PAD_OK);
        if (i % 1000 == 999)
            expect_ids(tok, "after many", "Hello World!", (const int32_t[]){49406, 3306, 1002, 256, 49407}, 5);
    }
    pad_tokenizer_free(tok);
}

Test(tokenizer, invalid_utf8) {
    PAD_REQUIRE_VOCAB();
    pad_tokenizer *tok = load_real();
    log_capture cap = {""};
    pad_log_set(capture_log, &cap);
    int32_t row[CTX];
    const char *bad[] = {"a\xff", "\xc0\xaf", "\xed\xa0\x80", "abc\xe2\x82", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(pad_tokenizer_tokenize(tok, bad[i], CTX, row, NULL) == PAD_ERR_INVALID_ARG, "case %zu", i);
    pad_log_set(NULL, NULL);
    cr_assert(strstr(cap.text, "not valid UTF-8") != NULL, "log: %s", cap.text);
    pad_tokenizer_free(tok);
}

// ----------------------------------------------------------------------------
// hand-made vocabularies (no shared data needed)

Test(tokenizer, byte_vocab) {
    char *dir = pad_test_tmpdir("tok_byte");
    char path[512];
    snprintf(path, sizeof path, "%s/byte.txt.gz", dir);
    cr_assert(pad_tokenizer_write_byte_vocab(path) == PAD_OK);
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, path) == PAD_OK);
    cr_assert(pad_tokenizer_vocab_size(tok) == 514 && pad_tokenizer_n_merges(tok) == 0);
    cr_assert(pad_tokenizer_sot(tok) == 512 && pad_tokenizer_eot(tok) == 513);
    // ids from tests/ref/make_tokenizer_fixture.py on the same file: byte symbols only, "</w>" on the last byte
    expect_ids(tok, "byte vocab", "N N N N bottle.",
               (const int32_t[]){512, 333, 333, 333, 333, 65, 78, 83, 83, 75, 324, 269, 513}, 13);
    expect_ids(tok, "byte vocab utf8", "Cr\xc3\xa8me, 42!",
               (const int32_t[]){512, 66, 81, 127, 101, 76, 324, 267, 275, 273, 256, 513}, 12);
    pad_tokenizer_free(tok);
    pad_cmd_result rm = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&rm);
}

Test(tokenizer, merge_rules) {
    // rank of a repeated pair = its last line, a repeated token string maps to its last id, a merge of unknown
    // strings never applies, CR LF line ends are accepted, a plain (not gzipped) file is accepted
    char *dir = pad_test_tmpdir("tok_merge");
    char path[512];
    snprintf(path, sizeof path, "%s/v.txt", dir);
    const char *text = "#version: test\nh e\nl o</w>\r\nzz q\nhe l\ne l</w>\nh e\n";
    pad_test_write_file(path, text, strlen(text));
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, path) == PAD_OK);
    cr_assert(pad_tokenizer_n_merges(tok) == 6 && pad_tokenizer_sot(tok) == 518 && pad_tokenizer_eot(tok) == 519);
    // checked with tests/ref/make_tokenizer_fixture.py's Bpe on the same merges. "hel": (h, e) has rank 5 (its
    // last line), so (e, l</w>) (rank 4) merges first and "h" "el</w>" remain; with rank 0 it would be "he" "l</w>".
    // "hehe": "he" is the string of merges 0 and 5, so it gets id 517 (512 + 5)
    expect_ids(tok, "merges", "Hello hel he hehe",
               (const int32_t[]){518, 515, 513, 71, 516, 71, 324, 517, 71, 324, 519}, 11);
    pad_tokenizer_free(tok);
    // the same as gzip
    snprintf(path, sizeof path, "%s/v.txt.gz", dir);
    write_gz(path, text);
    cr_assert(pad_tokenizer_load(&tok, path) == PAD_OK);
    expect_ids(tok, "merges gz", "Hello hel he hehe",
               (const int32_t[]){518, 515, 513, 71, 516, 71, 324, 517, 71, 324, 519}, 11);
    pad_tokenizer_free(tok);
    pad_cmd_result rm = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&rm);
}

// Loads `path` expecting failure `want_st` and a log line containing every string of `needles`.
static void expect_load_error(const char *path, pad_status want_st, const char *n1, const char *n2) {
    log_capture cap = {""};
    pad_log_set(capture_log, &cap);
    pad_tokenizer *tok = (pad_tokenizer *)1;
    pad_status st = pad_tokenizer_load(&tok, path);
    pad_log_set(NULL, NULL);
    cr_assert(st == want_st, "%s: status %s, want %s", path, pad_status_str(st), pad_status_str(want_st));
    cr_assert(tok == NULL);
    cr_assert(strstr(cap.text, path) != NULL, "error should name the file: %s", cap.text);
    cr_assert(strstr(cap.text, n1) != NULL, "error should say '%s': %s", n1, cap.text);
    if (n2) cr_assert(strstr(cap.text, n2) != NULL, "error should say '%s': %s", n2, cap.text);
}

Test(tokenizer, load_errors) {
    char *dir = pad_test_tmpdir("tok_err");
    char path[512];
    snprintf(path, sizeof path, "%s/missing.txt.gz", dir);
    expect_load_error(path, PAD_ERR_IO, "cannot open", "weights/README.md");

    // gzip header followed by garbage
    snprintf(path, sizeof path, "%s/garbage.txt.gz", dir);
    const unsigned char garbage[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5};
    pad_test_write_file(path, garbage, sizeof garbage);
    expect_load_error(path, PAD_ERR_FORMAT, "corrupt gzip", NULL);

    // a truncated gzip stream
    char big[20000];
    size_t off = (size_t)snprintf(big, sizeof big, "header\n");
    for (int i = 0; off + 16 < sizeof big; i++)
        off += (size_t)snprintf(big + off, sizeof big - off, "%c%c %c\n", 'a' + i % 26, 'a' + i / 26 % 26, 'b');
    char full[512];
    snprintf(full, sizeof full, "%s/full.txt.gz", dir);
    write_gz(full, big);
    size_t n = 0;
    char *gz = slurp(full, &n);
    snprintf(path, sizeof path, "%s/truncated.txt.gz", dir);
    pad_test_write_file(path, gz, n / 2);
    free(gz);
    expect_load_error(path, PAD_ERR_FORMAT, "corrupt gzip", NULL);

    snprintf(path, sizeof path, "%s/empty.txt.gz", dir);
    pad_test_write_file(path, "", 0);
    expect_load_error(path, PAD_ERR_FORMAT, "empty", NULL);

    snprintf(path, sizeof path, "%s/badline.txt", dir);
    const char *bad = "header\na b\nabc\n";
    pad_test_write_file(path, bad, strlen(bad));
    expect_load_error(path, PAD_ERR_FORMAT, ":3: bad merge line", NULL);

    snprintf(path, sizeof path, "%s/threeparts.txt", dir);
    bad = "header\na b c\n";
    pad_test_write_file(path, bad, strlen(bad));
    expect_load_error(path, PAD_ERR_FORMAT, ":2: bad merge line", NULL);

    snprintf(path, sizeof path, "%s/binary.bin", dir);
    const unsigned char bin[] = {'h', 0, 0xff, '\n', 'a', ' ', 'b'};
    pad_test_write_file(path, bin, sizeof bin);
    expect_load_error(path, PAD_ERR_FORMAT, "binary", NULL);

    snprintf(path, sizeof path, "%s/latin1.txt", dir);
    const char *l1 = "header\n\xe9 b\n";
    pad_test_write_file(path, l1, strlen(l1));
    expect_load_error(path, PAD_ERR_FORMAT, "UTF-8", NULL);
    pad_cmd_result rm = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&rm);
}

// Regression (issue 15): decompression stopped after the last merge line in use, so the gzip CRC was never checked
// (a flipped bit in the tail changed nothing visible, one in the kept part changed tokenisation silently), and a
// line of any length was read whole.
Test(tokenizer, gzip_crc_is_checked_and_lines_and_size_are_bounded) {
    char *dir = pad_test_tmpdir("tok_crc");
    // more lines than the merges in use: the tail is never parsed, only decompressed
    const size_t n_lines = PAD_TOKENIZER_MAX_MERGES + 5000;
    char *text = malloc(n_lines * 8 + 16);
    cr_assert(text);
    size_t off = (size_t)sprintf(text, "header\n");
    for (size_t i = 0; i < n_lines; i++)
        off += (size_t)sprintf(text + off, "%c%c %c\n", 'a' + (int)(i % 26), 'a' + (int)(i / 26 % 26), 'b');
    char path[512];
    snprintf(path, sizeof path, "%s/ok.txt.gz", dir);
    write_gz(path, text);
    pad_tokenizer *tok = NULL;
    cr_assert(pad_tokenizer_load(&tok, path) == PAD_OK);
    cr_assert(pad_tokenizer_n_merges(tok) == PAD_TOKENIZER_MAX_MERGES);
    pad_tokenizer_free(tok);
    size_t n = 0;
    char *gz = slurp(path, &n);
    // a flipped bit in the stored CRC-32 (the trailer's first 4 bytes), and one in the stored length
    const size_t flips[] = {n - 8, n - 2};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        gz[flips[i]] ^= 0x04;
        snprintf(path, sizeof path, "%s/flip%zu.txt.gz", dir, i);
        pad_test_write_file(path, gz, n);
        gz[flips[i]] ^= 0x04;
        expect_load_error(path, PAD_ERR_FORMAT, "corrupt gzip", "incorrect");
    }
    free(gz);
    // one long line (the merges before it are fine)
    memset(text + 100, 'x', PAD_TOKENIZER_MAX_LINE + 10);
    snprintf(path, sizeof path, "%s/longline.txt.gz", dir);
    write_gz(path, text);
    expect_load_error(path, PAD_ERR_FORMAT, "a line longer than 1024 bytes", NULL);
    free(text);
    // more text than any vocabulary (compresses to a few kB)
    const size_t big = (size_t)PAD_TOKENIZER_MAX_BYTES + 4096;
    text = malloc(big + 1);
    cr_assert(text);
    for (size_t i = 0; i < big; i += 4)
        memcpy(text + i, "a b\n", 4);
    text[big] = 0;
    snprintf(path, sizeof path, "%s/huge.txt.gz", dir);
    write_gz(path, text);
    free(text);
    expect_load_error(path, PAD_ERR_FORMAT, "more than 16777216 bytes", NULL);
    pad_cmd_result rm = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&rm);
}

// ----------------------------------------------------------------------------
// the CLI

Test(tokenizer, cli) {
    PAD_REQUIRE_VOCAB();
    const char *v = pad_test_vocab_path();
    pad_cmd_result r =
        pad_cmd_run("'%s' tokenize --vocab '%s' 'Hello World!' 'N N N N bottle.' -- '--x'", pad_test_binary(), v);
    cr_assert(r.exit_code == 0, "exit %d: %s", r.exit_code, r.err);
    int lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), lines++) {
        long ids[CTX + 1];
        int n = 0;
        for (char *p = line; *p && n <= CTX;) {
            char *end;
            ids[n++] = strtol(p, &end, 10);
            cr_assert(end != p && (*end == ' ' || *end == 0), "line %d: bad output '%s'", lines, line);
            p = *end ? end + 1 : end;
        }
        cr_assert(n == CTX, "line %d: %d ids, want %d", lines, n, CTX);
        cr_assert(ids[0] == 49406);
        if (lines == 0) cr_assert(ids[1] == 3306 && ids[2] == 1002 && ids[3] == 256 && ids[4] == 49407 && ids[5] == 0);
        if (lines == 1) cr_assert(ids[5] == 5392 && ids[7] == 49407);
        if (lines == 2) cr_assert(ids[1] == 2432 && ids[2] == 343 && ids[3] == 49407); // "--x": "--</w>" "x</w>"
    }
    cr_assert(lines == 3, "%d lines", lines);
    pad_cmd_free(&r);

    // usage errors: exit 2
    r = pad_cmd_run("'%s' tokenize --vocab '%s'", pad_test_binary(), v);
    cr_assert(r.exit_code == 2, "no TEXT: exit %d", r.exit_code);
    cr_assert(strstr(r.err, "TEXT") != NULL, "%s", r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("'%s' tokenize --nope x", pad_test_binary());
    cr_assert(r.exit_code == 2, "unknown option: exit %d", r.exit_code);
    pad_cmd_free(&r);

    // runtime errors: exit 1
    r = pad_cmd_run("'%s' tokenize --vocab /nonexistent/vocab.txt.gz hi", pad_test_binary());
    cr_assert(r.exit_code == 1, "missing vocab: exit %d", r.exit_code);
    cr_assert(strstr(r.err, "/nonexistent/vocab.txt.gz") && strstr(r.err, "weights/README.md"), "%s", r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("'%s' tokenize --vocab '%s' \"$(printf 'a\\377')\"", pad_test_binary(), v);
    cr_assert(r.exit_code == 1, "invalid UTF-8: exit %d", r.exit_code);
    cr_assert(strstr(r.err, "UTF-8"), "%s", r.err);
    pad_cmd_free(&r);
}

Test(tokenizer, cli_default_vocab) {
    PAD_REQUIRE_VOCAB();
    const char *v = pad_test_vocab_path();
    char *dir = pad_test_tmpdir("tok_cli");
    // a copy of the binary, so that <binary>/../weights is a folder we control
    pad_cmd_result r =
        pad_cmd_run("mkdir -p '%s/bin' '%s/run' && cp '%s' '%s/bin/promptad'", dir, dir, pad_test_binary(), dir);
    cr_assert(r.exit_code == 0, "%s", r.err);
    pad_cmd_free(&r);

    // nothing beside the binary or in the working directory: the copy shipped in the source tree's configs/vocab
    r = pad_cmd_run("cd '%s/run' && env -u PROMPTAD_VOCAB '%s/bin/promptad' tokenize 'Hello World!'", dir, dir);
    cr_assert(r.exit_code == 0 && strncmp(r.out, "49406 3306 1002 256 49407 0", 27) == 0, "%s%s", r.out, r.err);
    pad_cmd_free(&r);

    // $PROMPTAD_VOCAB
    r = pad_cmd_run("cd '%s/run' && PROMPTAD_VOCAB='%s' '%s/bin/promptad' tokenize 'Hello World!'", dir, v, dir);
    cr_assert(r.exit_code == 0 && strncmp(r.out, "49406 3306 1002 256 49407 0", 27) == 0, "%s%s", r.out, r.err);
    pad_cmd_free(&r);
    // a PROMPTAD_VOCAB that does not exist is an error (never a silent fallback), pointing to the READMEs
    r = pad_cmd_run("PROMPTAD_VOCAB=/nonexistent.gz '%s/bin/promptad' tokenize hi", dir);
    cr_assert(r.exit_code == 1 && strstr(r.err, "PROMPTAD_VOCAB=/nonexistent.gz") &&
                  strstr(r.err, "weights/README.md") && strstr(r.err, "configs/vocab/README.md"),
              "%s", r.err);
    pad_cmd_free(&r);

    // ./configs/vocab/ of the working directory (a Docker image's working directory holds configs/), ./weights/ of
    // the working directory, <binary>/../weights/: each found in turn (the vocabulary linked there)
    const struct {
        const char *folder, *workdir; // relative to dir
    } places[] = {{"run/configs/vocab", "run"}, {"run/weights", "run"}, {"weights", "bin"}};
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        r = pad_cmd_run("mkdir -p '%s/%s' && ln -sf '%s' '%s/%s/" PAD_TOKENIZER_VOCAB_NAME "' && cd '%s/%s' && env -u "
                        "PROMPTAD_VOCAB '%s/bin/promptad' tokenize 'Hello World!'",
                        dir, places[i].folder, v, dir, places[i].folder, dir, places[i].workdir, dir);
        cr_assert(r.exit_code == 0 && strncmp(r.out, "49406 3306 1002", 15) == 0, "%s: %s%s", places[i].folder, r.out,
                  r.err);
        pad_cmd_free(&r);
    }
    pad_cmd_result rm = pad_cmd_run("rm -rf '%s'", dir);
    pad_cmd_free(&rm);
}
