/* cli_tokenize.c - `promptad tokenize [--vocab V] TEXT...`: prints, for each TEXT, one line with the 77 CLIP token
 * ids (SOT ... EOT, then 0 padding; a long text is truncated keeping EOT last), as open_clip's tokenize() gives
 * them (cli_contract.md). The vocabulary defaults to pad_tokenizer_find_vocab()'s search. */
#include "args.h"
#include "cli.h"
#include "log.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

int pad_cli_tokenize(int argc, char **argv) {
    const char *vocab = NULL;
    const pad_opt opts[] = {
        {"vocab", "V",
         "CLIP BPE vocabulary (" PAD_TOKENIZER_VOCAB_NAME "); default: $PROMPTAD_VOCAB, ./weights/, then "
         "<binary>/../weights/",
         &vocab, NULL, NULL, NULL},
    };
    const char **pos = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
    if (!pos) return 1;
    int n_pos = 0;
    pad_args_result r = pad_args_parse(argc, argv, opts, 1, pos, argc, &n_pos, "promptad tokenize [--vocab V] TEXT...",
                                       "Prints one line per TEXT: its 77 CLIP token ids (start token, BPE ids, end "
                                       "token, then 0 padding), exactly as open_clip's tokenize() gives them. Use -- "
                                       "before a TEXT that starts with '--'.");
    if (r != PAD_ARGS_OK) {
        free(pos);
        return r == PAD_ARGS_HELP ? 0 : 2;
    }
    if (n_pos == 0) {
        pad_args_error(argv[0], "no TEXT given");
        free(pos);
        return 2;
    }
    char found[4096];
    if (!vocab) {
        if (pad_tokenizer_find_vocab(found, sizeof found, NULL) != PAD_OK) {
            free(pos);
            return 1;
        }
        vocab = found;
    }
    pad_tokenizer *tok = NULL;
    if (pad_tokenizer_load(&tok, vocab) != PAD_OK) {
        free(pos);
        return 1;
    }
    int rc = 0;
    int32_t ids[PAD_TOKENIZER_CONTEXT_LEN];
    for (int i = 0; i < n_pos; i++) {
        if (pad_tokenizer_tokenize(tok, pos[i], PAD_TOKENIZER_CONTEXT_LEN, ids, NULL) != PAD_OK) {
            PAD_LOG_ERROR("cannot tokenize TEXT %d", i + 1);
            rc = 1;
            break;
        }
        for (int k = 0; k < PAD_TOKENIZER_CONTEXT_LEN; k++)
            printf(k ? " %d" : "%d", (int)ids[k]);
        putchar('\n');
    }
    if (fflush(stdout) != 0) rc = 1;
    pad_tokenizer_free(tok);
    free(pos);
    return rc;
}
