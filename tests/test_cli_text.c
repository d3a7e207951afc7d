/* test_cli_text.c - `promptad encode-text` end to end (cli_contract.md): the tiny 514-token model written by
 * `promptad make-model`, the byte-level vocabulary, and the raw features compared with the PyTorch reference
 * (text_features.safetensors, whose ids the reference tokenised independently); bad input gives a clear error and a
 * non-zero exit. */
#include "check.h"
#include "st_file.h"
#include "tiny_model.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The texts of tests/ref/ref_text.py (TEXTS), in order.
static const char *k_texts[] = {"N N N N bottle.", "a photo of a damaged metal nut.", "x",
                                "N N N N A printed circuit board.", "it's 2024, isn't it?"};
#define N_TEXTS 5

typedef struct cli_env {
    char *dir;
    char model[512], vocab[512];
} cli_env;

static cli_env make_env(void) {
    cli_env e;
    e.dir = pad_test_tmpdir("cli_text");
    pad_tiny514_cli_files(e.dir, e.model, e.vocab, sizeof e.model);
    return e;
}

Test(cli_text, encode_text_matches_reference, .timeout = 120) {
    cli_env e = make_env();
    char out[600];
    snprintf(out, sizeof out, "%s/feat.safetensors", e.dir);
    pad_cmd_result r = pad_cmd_run("%s encode-text --weights %s --vocab %s --device cpu --out %s \"%s\" \"%s\" \"%s\" "
                                   "\"%s\" \"%s\"",
                                   pad_test_binary(), e.model, e.vocab, out, k_texts[0], k_texts[1], k_texts[2],
                                   k_texts[3], k_texts[4]);
    cr_assert(r.exit_code == 0, "encode-text failed (%d): %s", r.exit_code, r.err);
    cr_assert(r.out[0] == '\0', "encode-text printed to stdout: %s", r.out);
    pad_cmd_free(&r);
    pad_st_file *fx = pad_fixture_open("text_features.safetensors"), *got = NULL;
    cr_assert(pad_st_open(&got, out) == PAD_OK);
    const int E = 64;
    float *want = pad_fixture_f32(fx, "features", 2, (int64_t[]){N_TEXTS, E});
    float *feat = pad_fixture_f32(got, "features", 2, (int64_t[]){N_TEXTS, E});
    PAD_ASSERT_REL("encode-text features", feat, want, (size_t)N_TEXTS * E, 1e-5);
    // our tokenizer with the byte vocabulary gives the reference's ids
    const pad_st_tensor *ig = pad_st_find(got, "ids"), *iw = pad_st_find(fx, "ids");
    cr_assert(ig && iw && ig->dtype == PAD_DTYPE_I32 && ig->nbytes == iw->nbytes);
    cr_assert(memcmp(ig->data, iw->data, ig->nbytes) == 0, "token ids differ from the reference's");
    free(want);
    free(feat);
    pad_st_close(got);
    pad_st_close(fx);
}

Test(cli_text, encode_text_bad_input, .timeout = 120) {
    cli_env e = make_env();
    char out[600];
    snprintf(out, sizeof out, "%s/x.safetensors", e.dir);
    struct {
        const char *args, *want;
        int code;
    } cases[] = {
        {"--weights /nonexistent.safetensors --vocab VOCAB --out OUT hello", "/nonexistent.safetensors", 1},
        {"--weights MODEL --vocab /nonexistent_vocab.txt.gz --out OUT hello", "/nonexistent_vocab.txt.gz", 1},
        {"--weights MODEL --vocab VOCAB --out OUT", "no TEXT", 2},
        {"--weights MODEL --vocab VOCAB hello", "--out", 2},
        {"--weights MODEL --vocab VOCAB --device tpu --out OUT hello", "tpu", 2},
        {"--weights MODEL --vocab VOCAB --out OUT --bogus 1 hello", "bogus", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2048] = "";
        // substitute MODEL, VOCAB, OUT
        for (const char *p = cases[i].args; *p;) {
            size_t used = strlen(args);
            if (strncmp(p, "MODEL", 5) == 0) {
                snprintf(args + used, sizeof args - used, "%s", e.model);
                p += 5;
            } else if (strncmp(p, "VOCAB", 5) == 0) {
                snprintf(args + used, sizeof args - used, "%s", e.vocab);
                p += 5;
            } else if (strncmp(p, "OUT", 3) == 0) {
                snprintf(args + used, sizeof args - used, "%s", out);
                p += 3;
            } else {
                args[used] = *p++;
                args[used + 1] = '\0';
            }
        }
        pad_cmd_result r = pad_cmd_run("%s encode-text %s", pad_test_binary(), args);
        cr_assert(r.exit_code == cases[i].code && strstr(r.err, cases[i].want), "case %zu (%s): exit %d, stderr: %s", i,
                  args, r.exit_code, r.err);
        pad_cmd_free(&r);
    }
}

// The real CLIP vocabulary (49408 tokens) does not fit the 514-token model: a clear error naming both sizes.
Test(cli_text, vocabulary_size_must_match_the_model, .timeout = 120) {
    PAD_REQUIRE_VOCAB();
    cli_env e = make_env();
    pad_cmd_result r = pad_cmd_run("%s encode-text --weights %s --vocab %s --out %s/x.safetensors hello",
                                   pad_test_binary(), e.model, pad_test_vocab_path(), e.dir);
    cr_assert(r.exit_code == 1 && strstr(r.err, "49408") && strstr(r.err, "514"), "exit %d, stderr: %s", r.exit_code,
              r.err);
    pad_cmd_free(&r);
}
