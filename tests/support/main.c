/* main.c - the main() of every Criterion test program (it replaces libcriterion's): Criterion's own sequence
 * (initialise, parse the arguments, run, finalise), then one rule of ours on the exit status. A program that ran
 * tests and skipped every one of them (a CUDA test program without a usable device, see PAD_REQUIRE_CUDA in
 * check.h) exits 77, which tests/CMakeLists.txt declares as ctest's SKIP_RETURN_CODE: ctest then lists the program
 * as skipped instead of passed. A program where anything failed exits 1, otherwise 0, as before. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdio.h>

#define PAD_EXIT_SKIPPED 77

static size_t g_ran, g_skipped;
static char g_first_skip[512]; // the reason the first skipped test gave

// Runs in the runner process after each test.
ReportHook(POST_TEST)(struct criterion_test_stats *stats) {
    if (stats->test_status == CR_STATUS_SKIPPED && stats->message && !g_first_skip[0])
        snprintf(g_first_skip, sizeof g_first_skip, "%s", stats->message);
}

// Runs in the runner process once all tests are done, with the totals.
ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
    g_ran = stats->nb_tests;
    g_skipped = stats->tests_skipped;
}

int main(int argc, char *argv[]) {
    struct criterion_test_set *tests = criterion_initialize();
    if (!criterion_handle_args(argc, argv, true)) { // --help, --version, --list
        criterion_finalize(tests);
        return 0;
    }
    int failed = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    if (!failed && g_ran > 0 && g_skipped == g_ran) {
        fprintf(stderr, "%s: all %zu tests skipped (the first said: %s); exit status %d reports a skip\n", argv[0],
                g_ran, g_first_skip[0] ? g_first_skip : "nothing, a --filter that matches no test?", PAD_EXIT_SKIPPED);
        return PAD_EXIT_SKIPPED;
    }
    return failed;
}
