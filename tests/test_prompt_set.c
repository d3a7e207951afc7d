/* test_prompt_set.c - prompt-set YAML files: every shipped set loads; the official set is the official code's
 * lists (generic states, per-class states with their quirks, the class-name mapping; promptad_spec.md §3.3-§3.4);
 * the paper set is the supplementary's Figure 1; unknown classes and sets are errors that list what exists; bad
 * files are rejected with messages naming the file and the problem. */
#include "check.h"
#include "log.h"
#include "prompt_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pad_prompt_class get_class(pad_prompt_set *s, const char *key) {
    pad_prompt_class c;
    cr_assert(pad_prompt_set_class(s, key, &c) == PAD_OK, "class %s", key);
    return c;
}

Test(prompt_set, official_matches_the_official_code) {
    pad_prompt_set *s = NULL;
    cr_assert(pad_prompt_set_open(&s, "official") == PAD_OK);
    cr_assert(strcmp(pad_prompt_set_name(s), "official") == 0);
    cr_assert(pad_prompt_set_n_classes(s) == 27); // 15 MVTec AD + 12 VisA
    const char *generic[8] = {"damaged {}",   "flawed {}",    "abnormal {}",    "imperfect {}",
                              "blemished {}", "{} with flaw", "{} with defect", "{} with damage"};
    pad_prompt_class bottle = get_class(s, "bottle");
    cr_assert(bottle.n_states == 11 && strcmp(bottle.name, "bottle") == 0);
    for (int i = 0; i < 8; i++)
        cr_assert(strcmp(bottle.states[i], generic[i]) == 0, "generic state %d: %s", i, bottle.states[i]);
    cr_assert(strcmp(bottle.states[8], "{} with large breakage") == 0);
    // class-name mapping
    const char *map[][2] = {
        {"macaroni1", "macaroni"},         {"macaroni2", "macaroni"},    {"pcb1", "printed circuit board"},
        {"pcb4", "printed circuit board"}, {"pipe_fryum", "pipe fryum"}, {"chewinggum", "chewing gum"},
        {"metal_nut", "metal nut"},        {"fryum", "fryum"},           {"capsules", "capsules"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        cr_assert(strcmp(get_class(s, map[i][0]).name, map[i][1]) == 0, "name of %s", map[i][0]);
    // quirks kept: trailing space, typo, duplicates
    pad_prompt_class mn = get_class(s, "metal_nut");
    cr_assert(strcmp(mn.states[8], "{} with a bent shape ") == 0);
    pad_prompt_class candle = get_class(s, "candle");
    cr_assert(candle.n_states == 15 && strcmp(candle.states[9], "{} with foreign particals") == 0);
    pad_prompt_class fryum = get_class(s, "fryum");
    cr_assert(fryum.n_states == 14 && strcmp(fryum.states[11], fryum.states[13]) == 0);
    pad_prompt_class tb = get_class(s, "toothbrush");
    cr_assert(tb.n_states == 10 && strcmp(tb.states[8], "{} with defect") == 0);
    cr_assert(strcmp(get_class(s, "capsule").states[12], "{} squeezed with compression") == 0);
    pad_prompt_set_free(s);
}

Test(prompt_set, shipped_sets_load) {
    const struct {
        const char *name;
        int n_classes, n_generic;
        const char *some_class;
    } sets[] = {{"official", 27, 8, "pcb3"},
                {"paper", 27, 5, "zipper"},
                {"mpdd", 6, 8, "bracket_brown"},
                {"loco", 5, 8, "splicing_connectors"}};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        pad_prompt_set *s = NULL;
        cr_assert(pad_prompt_set_open(&s, sets[i].name) == PAD_OK, "set %s", sets[i].name);
        cr_assert(pad_prompt_set_n_classes(s) == sets[i].n_classes, "%s: %d classes", sets[i].name,
                  pad_prompt_set_n_classes(s));
        pad_prompt_class c = get_class(s, sets[i].some_class);
        cr_assert(c.n_states > sets[i].n_generic);
        for (int k = 0; k < pad_prompt_set_n_classes(s); k++) {
            pad_prompt_class ck = pad_prompt_set_class_at(s, k);
            cr_assert(ck.n_states > sets[i].n_generic, "%s/%s has no own state", sets[i].name, ck.key);
        }
        pad_prompt_set_free(s);
    }
    pad_prompt_set *p = NULL;
    cr_assert(pad_prompt_set_open(&p, "paper") == PAD_OK);
    pad_prompt_class b = get_class(p, "bottle");
    cr_assert(strcmp(b.states[1], "broken {}") == 0 &&
              strcmp(get_class(p, "metal_nut").states[5], "{} with a bent shape") == 0);
    pad_prompt_set_free(p);
    // MPDD names are readable text
    cr_assert(pad_prompt_set_open(&p, "mpdd") == PAD_OK);
    cr_assert(strcmp(get_class(p, "bracket_black").name, "black bracket") == 0);
    cr_assert(strcmp(get_class(p, "metal_plate").name, "metal plate") == 0);
    pad_prompt_set_free(p);
}

Test(prompt_set, unknown_class_and_set_list_what_exists) {
    const char *logged = pad_test_log_text();
    pad_prompt_set *s = NULL;
    cr_assert(pad_prompt_set_open(&s, "official") == PAD_OK);
    pad_test_log_start_all();
    pad_prompt_class c;
    cr_assert(pad_prompt_set_class(s, "bracket_black", &c) == PAD_ERR_INVALID_ARG);
    cr_assert(strstr(logged, "'bracket_black'") && strstr(logged, "official") && strstr(logged, "pipe_fryum") &&
                  strstr(logged, "mpdd"),
              "message: %s", logged);
    pad_test_log_start_all();
    pad_prompt_set *x = NULL;
    cr_assert(pad_prompt_set_open(&x, "nosuchset") == PAD_ERR_INVALID_ARG && !x);
    cr_assert(strstr(logged, "nosuchset") && strstr(logged, "official") && strstr(logged, "loco"), "message: %s",
              logged);
    pad_test_log_stop();
    pad_prompt_set_free(s);
}

static pad_status load_text(const char *dir, const char *name, const char *text, pad_prompt_set **out) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    pad_test_write_file(path, text, strlen(text));
    return pad_prompt_set_load(out, path);
}

Test(prompt_set, bad_files_are_rejected_with_a_reason) {
    const char *logged = pad_test_log_text();
    char *dir = pad_test_tmpdir("pset");
    const struct {
        const char *file, *text, *want;
    } cases[] = {
        {"nobrace.yaml", "name: x\ngeneric: [\"damaged\"]\nclasses:\n  - key: a\n    states: []\n", "exactly once"},
        {"twobrace.yaml", "name: x\ngeneric: []\nclasses:\n  - key: a\n    states: [\"{} and {}\"]\n", "exactly once"},
        {"dup.yaml",
         "name: x\ngeneric: [\"{} bad\"]\nclasses:\n  - key: a\n    states: []\n  - key: a\n    states: []\n", "twice"},
        {"empty.yaml", "name: x\ngeneric: []\nclasses:\n  - key: a\n    states: []\n", "no anomaly state"},
        {"noclasses.yaml", "name: x\ngeneric: [\"{} bad\"]\n", "classes"},
        {"badkey.yaml", "name: x\ngeneric: []\nclases: []\n", "clases"},
        {"notyaml.yaml", "name: [unclosed\n", "notyaml.yaml"},
    };
    pad_test_log_start_all();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pad_test_log_start_all();
        pad_prompt_set *s = NULL;
        pad_status st = load_text(dir, cases[i].file, cases[i].text, &s);
        cr_assert(st == PAD_ERR_FORMAT && !s, "%s: status %d", cases[i].file, st);
        cr_assert(strstr(logged, cases[i].file) && strstr(logged, cases[i].want), "%s: message: %s", cases[i].file,
                  logged);
    }
    pad_test_log_start_all();
    pad_prompt_set *s = NULL;
    cr_assert(pad_prompt_set_load(&s, "/nonexistent/x.yaml") == PAD_ERR_IO && strstr(logged, "/nonexistent/x.yaml"));
    pad_test_log_stop();
    // a good file by path, a class without own states but with generic ones is fine
    cr_assert(load_text(dir, "ok.yaml", "name: mine\ngeneric: [\"odd {}\"]\nclasses:\n  - key: a b\n    states: []\n",
                        &s) == PAD_OK);
    pad_prompt_class c = pad_prompt_set_class_at(s, 0);
    cr_assert(c.n_states == 1 && strcmp(c.name, "a b") == 0);
    pad_prompt_set_free(s);
}

// Regression (issue 15): an empty or comment-only file made the loader return success with no document (a crash in
// `run` and `train-prompts`); aliases expanded without bound; a second document was ignored; CR-only line endings.
Test(prompt_set, empty_aliased_oversized_and_multi_document_files_are_refused) {
    const char *logged = pad_test_log_text();
    char *dir = pad_test_tmpdir("pset_hostile");
    char many[64 * 1024] = "name: x\ngeneric: [";
    for (int i = 0; i <= PAD_PROMPT_SET_MAX_STATES; i++)
        strcat(many, i ? ", \"{} a\"" : "\"{} a\"");
    strcat(many, "]\nclasses:\n  - key: a\n    states: []\n");
    char longst[1024] = "name: x\ngeneric: [\"{} ";
    for (int i = 0; i < PAD_PROMPT_SET_MAX_STATE_LEN; i++)
        strcat(longst, "a");
    strcat(longst, "\"]\nclasses:\n  - key: a\n    states: []\n");
    const struct {
        const char *file, *text, *want;
    } cases[] = {
        {"zero.yaml", "", "empty"},
        {"blank.yaml", "\n  \n\t\n", "empty"},
        {"comments.yaml", "# a comment\n   # another\n", "empty"},
        {"cr_comments.yaml", "# a comment\rname: x\r", "generic"}, // not one comment line: the real error
        {"null.yaml", "~\n", "invalid prompt set"},
        {"marker.yaml", "---\n", "invalid prompt set"},
        {"alias.yaml", "name: x\ngeneric: &g [\"{} bad\"]\nclasses:\n  - key: a\n    states: *g\n", "alias"},
        {"twodocs.yaml", "name: x\ngeneric: [\"{} bad\"]\nclasses:\n  - key: a\n    states: []\n---\nname: y\n",
         "twodocs.yaml:6: invalid prompt set: a second YAML document"},
        {"many.yaml", many, "at most 256"},
        {"long.yaml", longst, "at most 256"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pad_test_log_start_all();
        pad_prompt_set *s = NULL;
        pad_status st = load_text(dir, cases[i].file, cases[i].text, &s);
        cr_assert(st == PAD_ERR_FORMAT && !s, "%s: status %d", cases[i].file, st);
        cr_assert(strstr(logged, cases[i].file) && strstr(logged, cases[i].want), "%s: message: %s", cases[i].file,
                  logged);
    }
    pad_test_log_stop();
    // CR-only and CRLF line endings read as LF; "---" before the one document is fine
    const char *ok[] = {
        "name: x\rgeneric: [\"{} bad\"]\rclasses:\r  - key: a\r    states: [\"{} odd\"]\r",
        "name: x\r\ngeneric: [\"{} bad\"]\r\nclasses:\r\n  - key: a\r\n    states: [\"{} odd\"]\r\n",
        "# set\n---\nname: x\ngeneric: [\"{} bad\"]\nclasses:\n  - key: a\n    states: [\"{} odd\"]\n...\n"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        pad_prompt_set *s = NULL;
        cr_assert(load_text(dir, "ok.yaml", ok[i], &s) == PAD_OK, "ok case %zu", i);
        pad_prompt_class c = pad_prompt_set_class_at(s, 0);
        cr_assert(c.n_states == 2 && strcmp(c.states[1], "{} odd") == 0, "ok case %zu", i);
        pad_prompt_set_free(s);
    }
}

Test(prompt_set, format_state) {
    char buf[64];
    cr_assert(pad_prompt_format_state(buf, sizeof buf, "{} with a bent shape ", "metal nut") &&
              strcmp(buf, "metal nut with a bent shape ") == 0);
    cr_assert(pad_prompt_format_state(buf, sizeof buf, "damaged {}", "bottle") && strcmp(buf, "damaged bottle") == 0);
    cr_assert(!pad_prompt_format_state(buf, 8, "damaged {}", "bottle"));
}
