/* fuzz_config.c - libFuzzer target: the run configuration (host/run/config.c). When the first line of the input holds
 * a '=' (and is no comment) it is applied as a `--set` override and the rest is the YAML file, otherwise all of it
 * is; a configuration that loads and finalizes is written back as YAML (pad_run_config_to_yaml), which must load
 * and finalize again to the same text (the run records its resolved configuration this way). */
#include "config.h"
#include "fuzz_common.h"

FUZZ_INITIALIZE_WITH_SETUP()

static char *dump(const pad_run_config *cfg) {
    size_t n = pad_run_config_to_yaml(cfg, NULL, 0);
    char *s = (char *)malloc(n + 1);
    if (!s) abort();
    pad_run_config_to_yaml(cfg, s, n + 1);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_strdup(data, size);
    char *nl = strchr(text, '\n');
    const char *set = "", *yaml = text;
    if (nl && memchr(text, '=', (size_t)(nl - text)) && text[0] != '#') { // "a.b=v" first line: the override
        *nl = 0;
        set = text;
        yaml = nl + 1;
    }
    static pad_run_config cfg, back; // large (data.classes): not on the stack
    pad_run_config_default(&cfg);
    pad_status st = pad_run_config_load_text(&cfg, yaml, "fuzz.yaml");
    if (st == PAD_OK && set[0]) st = pad_run_config_set(&cfg, set);
    if (st == PAD_OK) st = pad_run_config_finalize(&cfg);
    if (st == PAD_OK) {
        char *first = dump(&cfg);
        pad_run_config_default(&back);
        if (pad_run_config_load_text(&back, first, "dump.yaml") != PAD_OK || pad_run_config_finalize(&back) != PAD_OK) {
            fprintf(stderr, "fuzz_config: the written configuration does not load back:\n%s\n", first);
            abort();
        }
        char *second = dump(&back);
        if (strcmp(first, second) != 0) {
            fprintf(stderr, "fuzz_config: the configuration changes when written and read back:\n%s\n---\n%s\n", first,
                    second);
            abort();
        }
        char h1[17], h2[17];
        pad_run_config_hash(&cfg, 1, 2, h1);
        pad_run_config_hash(&back, 1, 2, h2);
        if (strcmp(h1, h2) != 0) abort();
        (void)pad_run_config_dataset(&cfg);
        free(first);
        free(second);
    }
    free(text);
    return 0;
}
