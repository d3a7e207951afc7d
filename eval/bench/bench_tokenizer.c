/* bench_tokenizer.c - speed of the CLIP tokenizer (host/tokenizer.h): vocabulary load time and tokenize() throughput
 * on the full PromptAD prompt set (every MVTec AD and VisA prompt of tests/fixtures/tokenizer_cases.tsv) and on
 * the fixture's other texts (punctuation, HTML entities, non-ASCII). A benchmark, not a test: it prints numbers and
 * exits 0 unless something fails.
 *   build/bench_tokenizer [VOCAB] [CASES_TSV]     (defaults: ../shared/data/..., tests/fixtures/...) */
#include "fsutil.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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

// Texts of the fixture: prompts (mvtec/, visa/) and the others, pointers into buf.
static int read_cases(const char *path, char **buf_out, char ***prompts, int *n_prompts, char ***others,
                      int *n_others) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "bench_tokenizer: cannot open %s\n", path);
        return -1;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        free(buf);
        return -1;
    }
    fclose(fp);
    buf[n] = 0;
    int cap = 1024;
    *prompts = malloc((size_t)cap * sizeof **prompts);
    *others = malloc((size_t)cap * sizeof **others);
    *n_prompts = *n_others = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *t1 = strchr(line, '\t');
        char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        char *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
        if (!t3) continue;
        *t3 = 0;
        char *text = t2 + 1;
        unescape(text);
        bool prompt = strncmp(line, "mvtec/", 6) == 0 || strncmp(line, "visa/", 5) == 0;
        if (prompt && *n_prompts < cap) (*prompts)[(*n_prompts)++] = text;
        if (!prompt && *n_others < cap) (*others)[(*n_others)++] = text;
    }
    *buf_out = buf;
    return 0;
}

// Median seconds per pass of tokenizing all texts, over `reps` passes after one warm-up pass.
static double time_passes(pad_tokenizer *tok, char **texts, int n, int reps) {
    int32_t row[PAD_TOKENIZER_CONTEXT_LEN];
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = -1; r < reps; r++) {
        double t0 = pad_now();
        for (int i = 0; i < n; i++)
            if (pad_tokenizer_tokenize(tok, texts[i], PAD_TOKENIZER_CONTEXT_LEN, row, NULL) != PAD_OK) exit(1);
        if (r >= 0) t[r] = pad_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = t[reps / 2];
    free(t);
    return med;
}

int main(int argc, char **argv) {
    const char *vocab = argc > 1 ? argv[1] : "../shared/data/" PAD_TOKENIZER_VOCAB_NAME;
    const char *cases = argc > 2 ? argv[2] : "tests/fixtures/tokenizer_cases.tsv";

    // load time: median of 7 loads
    double lt[7];
    pad_tokenizer *tok = NULL;
    for (int r = 0; r < 7; r++) {
        pad_tokenizer_free(tok);
        double t0 = pad_now();
        if (pad_tokenizer_load(&tok, vocab) != PAD_OK) return 1;
        lt[r] = pad_now() - t0;
    }
    qsort(lt, 7, sizeof lt[0], cmp_double);
    printf("vocabulary load: %.1f ms (median of 7; min %.1f ms), %d merges\n", lt[3] * 1e3, lt[0] * 1e3,
           pad_tokenizer_n_merges(tok));

    char *buf = NULL, **prompts = NULL, **others = NULL;
    int n_prompts = 0, n_others = 0;
    if (read_cases(cases, &buf, &prompts, &n_prompts, &others, &n_others) != 0) return 1;

    // cold: a fresh tokenizer (empty piece cache) for one pass
    pad_tokenizer *fresh = NULL;
    if (pad_tokenizer_load(&fresh, vocab) != PAD_OK) return 1;
    int32_t row[PAD_TOKENIZER_CONTEXT_LEN];
    double t0 = pad_now();
    for (int i = 0; i < n_prompts; i++)
        if (pad_tokenizer_tokenize(fresh, prompts[i], PAD_TOKENIZER_CONTEXT_LEN, row, NULL) != PAD_OK) return 1;
    double cold = pad_now() - t0;
    pad_tokenizer_free(fresh);

    double warm = time_passes(tok, prompts, n_prompts, 51);
    double misc = time_passes(tok, others, n_others, 51);
    printf("PromptAD prompts (%d, MVTec AD + VisA): %.0f prompts/s warm (%.2f us each), first pass with an empty "
           "cache %.2f ms (%.0f prompts/s)\n",
           n_prompts, n_prompts / warm, 1e6 * warm / n_prompts, cold * 1e3, n_prompts / cold);
    printf("other fixture texts (%d: punctuation, HTML, non-ASCII, long): %.0f texts/s (%.2f us each)\n", n_others,
           n_others / misc, 1e6 * misc / n_others);
    free(prompts);
    free(others);
    free(buf);
    pad_tokenizer_free(tok);
    return 0;
}
