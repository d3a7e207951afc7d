/* fuzz_prompt_set.c - libFuzzer target: prompt-set files (host/io/prompt_set.c, configs/prompts/<set>.yaml). The input
 * is loaded as a set; every state of every class is formatted with its class name, and a class is looked up by key. */
#include "fuzz_common.h"
#include "prompt_set.h"

FUZZ_INITIALIZE_WITH_SETUP()

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("set.yaml", data, size);
    pad_prompt_set *s = NULL;
    if (pad_prompt_set_load(&s, path) == PAD_OK) {
        if (!pad_prompt_set_name(s) || !pad_prompt_set_path(s)) abort();
        int n = pad_prompt_set_n_classes(s);
        for (int i = 0; i < n; i++) {
            pad_prompt_class c = pad_prompt_set_class_at(s, i);
            if (!c.key || !c.name || c.n_states < 0) abort();
            for (int j = 0; j < c.n_states; j++) {
                char buf[512];
                (void)pad_prompt_format_state(buf, sizeof buf, c.states[j], c.name);
            }
            pad_prompt_class again;
            if (pad_prompt_set_class(s, c.key, &again) != PAD_OK) abort();
        }
        pad_prompt_class missing;
        (void)pad_prompt_set_class(s, "no_such_class_key", &missing);
        pad_prompt_set_free(s);
    }
    return 0;
}
