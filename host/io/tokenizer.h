/* tokenizer.h - the CLIP byte-level BPE tokenizer (openclip_spec.md §7; open_clip `SimpleTokenizer`, whose
 * vocabulary and merge loop are those of OpenAI's `clip/simple_tokenizer.py`).
 *
 * Vocabulary file: bpe_simple_vocab_16e6.txt.gz (gzip, or the same text uncompressed). Line 0 is a header; each
 * following line is a merge "A B" (two non-empty parts separated by one space; a trailing '\r' is ignored). Only the
 * first 48894 merges are used (`merges[1:49152-256-2+1]`); a file with fewer uses all of them. A final newline
 * ends the last line (it does not add an empty merge). Ids: 0..255 the 256 byte symbols in bytes_to_unicode order,
 * 256..511 the same with "</w>", 512+i merge i, then SOT = 512+n_merges and EOT = SOT+1 (49406 / 49407 for the
 * real file). As in Python's dict, a token string that occurs twice maps to its last id, and a repeated merge pair
 * has the rank of its last line.
 *
 * Text cleaning, in this order (what open_clip's `_clean_lower` does, except where marked):
 *   1. The text must be valid UTF-8 (otherwise PAD_ERR_INVALID_ARG).
 *   2. ftfy-lite: the character-level fixers of ftfy 6's `fix_text` with its defaults, applied per line until
 *      nothing changes: HTML entities that end in ';' (plus ftfy's all-caps names such as &EACUTE;), disabled from
 *      the first line that contains '<' on; C1 controls read as Windows-1252; Latin ligatures (ﬁ -> fi, ĳ -> ij,
 *      ...); fullwidth/halfwidth forms (Ａ -> A, U+3000 -> space); curly quotes (’ -> ', “ -> "); line breaks;
 *      ANSI terminal escapes removed; control characters removed (U+0000-0008, 000B, 000E-001F, 007F, 206A-206F,
 *      FEFF, FFF9-FFFC); NFC. NOT done: ftfy's mojibake repair (fix_encoding and its sub-steps), e.g. "cafÃ©" stays
 *      as it is where ftfy would give "café".
 *   3. Python's html.unescape applied twice (HTML5 entity table, numeric references, legacy names without ';').
 *   4. Whitespace (Python str.isspace) collapsed to single spaces, leading/trailing removed.
 *   5. Python str.lower(): full lower-casing (U+0130 -> "i̇", Greek final sigma by context).
 *   6. Pre-tokenisation with the semantics of the regex
 *      <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+  (IGNORECASE),
 *      first alternative wins at each position, unmatched characters (whitespace) skipped; "'ſ" also counts as 's
 *      (U+017F case-folds to s). The literals "<start_of_text>" / "<end_of_text>" map to SOT / EOT (open_clip's;
 *      OpenAI's "<|startoftext|>" is ordinary text here).
 *   7. Each piece: UTF-8 bytes -> byte symbols, "</w>" on the last, lowest-rank merge first until none applies.
 * Unicode data (categories, NFC, case mapping) come from utf8proc (Unicode 15 in Debian 12's 2.8.0); Python 3.11
 * uses Unicode 14, so only characters added in Unicode 15 may be classified differently. For ASCII text the result
 * is exactly open_clip's; tests/fixtures/tokenizer_cases.tsv records which non-ASCII cases match open_clip + ftfy.
 *
 * A pad_tokenizer is not thread-safe (encode uses scratch buffers and a piece cache inside it): use one per thread.
 */
#ifndef PAD_HOST_TOKENIZER_H
#define PAD_HOST_TOKENIZER_H

#include "promptad.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_TOKENIZER_CONTEXT_LEN 77    // CLIP's context length
#define PAD_TOKENIZER_MAX_MERGES  48894 // 49152 - 256 - 2
#define PAD_TOKENIZER_VOCAB_NAME  "bpe_simple_vocab_16e6.txt.gz"
#define PAD_TOKENIZER_MAX_LINE    1024      // bytes per line of a vocabulary file (the real one: 129)
#define PAD_TOKENIZER_MAX_BYTES   (1 << 24) // bytes of text in a vocabulary file (the real one: 3.2 MB)

typedef struct pad_tokenizer pad_tokenizer;

// Loads a vocabulary file (see above). On success *out owns the tokenizer (free with pad_tokenizer_free); on
// failure *out is NULL and one line naming the file was logged: missing/unreadable (PAD_ERR_IO, pointing to
// weights/README.md), corrupt gzip data (the whole file is decompressed, so a CRC mismatch anywhere is caught), a line
// longer than PAD_TOKENIZER_MAX_LINE or more than PAD_TOKENIZER_MAX_BYTES of text, invalid UTF-8, empty file, or
// "<path>:<line>: bad merge line" (PAD_ERR_FORMAT).
pad_status pad_tokenizer_load(pad_tokenizer **out, const char *path);
void pad_tokenizer_free(pad_tokenizer *tok); // NULL is a no-op

int pad_tokenizer_vocab_size(const pad_tokenizer *tok); // 512 + n_merges + 2 (49408 for the real file)
int pad_tokenizer_n_merges(const pad_tokenizer *tok);   // merges in use (48894 for the real file)
int32_t pad_tokenizer_sot(const pad_tokenizer *tok);    // 512 + n_merges
int32_t pad_tokenizer_eot(const pad_tokenizer *tok);    // 513 + n_merges

// Token ids of `text` (NUL-terminated UTF-8) without SOT/EOT. Writes the first min(total, max_ids) ids to ids
// (ids may be NULL when max_ids is 0) and the total count to *n (like snprintf, *n may exceed max_ids).
// Errors: NULL arguments or text that is not valid UTF-8 -> PAD_ERR_INVALID_ARG (logged); PAD_ERR_OOM.
pad_status pad_tokenizer_encode(pad_tokenizer *tok, const char *text, int32_t *ids, int max_ids, int *n);

// open_clip's tokenize() for one text: out[0..context_len) = SOT, ids, EOT, then 0 padding. When the ids do not
// fit, the first context_len tokens are kept and out[context_len-1] = EOT (encoding stops there). context_len must
// be >= 2. When truncated is not NULL it tells whether the text was cut. Errors as pad_tokenizer_encode.
pad_status pad_tokenizer_tokenize(pad_tokenizer *tok, const char *text, int context_len, int32_t *out, bool *truncated);

// Index of the EOT token in a tokenized row (the argmax that CLIP's text tower pools at), or -1 if absent.
int pad_tokenizer_eot_index(const pad_tokenizer *tok, const int32_t *row, int context_len);

// Writes a valid gzip vocabulary with the header line and zero merges (no final newline, so Python's loader reads
// it the same way): vocabulary size 514, SOT 512, EOT 513. For tiny demo and test models. PAD_ERR_IO (logged) when
// the file cannot be written.
pad_status pad_tokenizer_write_byte_vocab(const char *path);

// Finds the default vocabulary: $PROMPTAD_VOCAB if set (it must exist), else the first readable of ./weights/<name>,
// <dir of exe_path>/../weights/<name>, ./configs/vocab/<name>, <dir of exe_path>/../configs/vocab/<name> and the
// copy shipped in the source tree's configs/vocab/ (exe_path may be NULL; it is resolved via /proc/self/exe then). On
// success copies the path into buf and returns PAD_OK; otherwise logs where it looked (and that weights/README.md says
// how to get the file) and returns PAD_ERR_IO.
pad_status pad_tokenizer_find_vocab(char *buf, size_t cap, const char *exe_path);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_TOKENIZER_H
