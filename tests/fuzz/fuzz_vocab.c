/* fuzz_vocab.c - libFuzzer target: BPE vocabulary files (host/io/tokenizer.c: gzip or plain text, a header line and
 * "A B" merge lines). A vocabulary that loads encodes a fixed sentence. */
#include "fuzz_common.h"
#include "tokenizer.h"

FUZZ_INITIALIZE_WITH_SETUP()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("vocab.txt.gz", data, size);
    pad_tokenizer *tok = NULL;
    if (pad_tokenizer_load(&tok, path) == PAD_OK) {
        int32_t row[PAD_TOKENIZER_CONTEXT_LEN];
        bool cut = false;
        if (pad_tokenizer_tokenize(tok, "a photo of a damaged metal nut.", PAD_TOKENIZER_CONTEXT_LEN, row, &cut) !=
            PAD_OK)
            abort();
        int vs = pad_tokenizer_vocab_size(tok);
        for (int i = 0; i < PAD_TOKENIZER_CONTEXT_LEN; i++)
            if (row[i] < 0 || row[i] >= vs) abort();
        if (pad_tokenizer_eot_index(tok, row, PAD_TOKENIZER_CONTEXT_LEN) < 1) abort();
        pad_tokenizer_free(tok);
    }
    return 0;
}
