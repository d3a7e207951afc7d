/* fuzz_tokenizer.c - libFuzzer target: text through the CLIP tokenizer (host/io/tokenizer.c: UTF-8 check, ftfy-lite,
 * HTML unescaping, whitespace, lower-casing, pre-tokenisation, BPE). The vocabulary is generated at start-up (the
 * 256 byte symbols plus every pair of lower-case letters, inside and at the end of a word, and a few longer merges),
 * so the target needs no downloaded file. The input is the text; ids must lie inside the vocabulary. */
#include "fuzz_common.h"
#include "tokenizer.h"

static pad_tokenizer *g_tok;

static void write_vocab(const char *path) {
    FILE *fp = fopen(path, "w");
    if (!fp) abort();
    fputs("\"bpe_simple_vocab_fuzz\" version 0.1", fp);
    for (int end = 0; end < 2; end++)
        for (char a = 'a'; a <= 'z'; a++)
            for (char b = 'a'; b <= 'z'; b++)
                fprintf(fp, "\n%c %c%s", a, b, end ? "</w>" : "");
    static const char *const extra[] = {"th e</w>",     "an d</w>",   "in g</w>",   "ma g",
                                        "mag e</w>",    "ph oto</w>", "da ma",      "dama ge",
                                        "damage d</w>", "me ta",      "meta l</w>", "<start_of_text> x"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        fprintf(fp, "\n%s", extra[i]);
    if (fclose(fp) != 0) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_setup();
    char path[300];
    fuzz_path(path, sizeof path, "vocab.txt");
    write_vocab(path);
    if (pad_tokenizer_load(&g_tok, path) != PAD_OK) {
        fprintf(stderr, "fuzz_tokenizer: the generated vocabulary does not load\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0; // prompts are short; longer inputs only slow the search down
    char *text = fuzz_strdup(data, size);
    int vs = pad_tokenizer_vocab_size(g_tok);
    int32_t ids[16];
    int n = -1;
    if (pad_tokenizer_encode(g_tok, text, ids, 16, &n) == PAD_OK) {
        if (n < 0) abort();
        for (int i = 0; i < n && i < 16; i++)
            if (ids[i] < 0 || ids[i] >= vs) abort();
        int32_t row[PAD_TOKENIZER_CONTEXT_LEN];
        bool cut = false;
        if (pad_tokenizer_tokenize(g_tok, text, PAD_TOKENIZER_CONTEXT_LEN, row, &cut) != PAD_OK) abort();
        if (row[0] != pad_tokenizer_sot(g_tok)) abort();
        int eot = pad_tokenizer_eot_index(g_tok, row, PAD_TOKENIZER_CONTEXT_LEN);
        int32_t e = pad_tokenizer_eot(g_tok);
        if (eot < 1 || row[eot] != e) abort();
        if (cut && row[PAD_TOKENIZER_CONTEXT_LEN - 1] != e) abort();
        if (!cut && (n + 1 >= PAD_TOKENIZER_CONTEXT_LEN || row[n + 1] != e)) abort(); // the text's EOT follows its ids
        for (int i = 0; i < PAD_TOKENIZER_CONTEXT_LEN; i++)
            if (row[i] < 0 || row[i] >= vs) abort();
    }
    free(text);
    return 0;
}
