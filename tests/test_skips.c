/* test_skips.c - a CUDA test that cannot run says why and reads as a skip: pad_cuda_probe tells "built without
 * CUDA", "no CUDA device" and "CUDA driver error" apart; a CUDA test program whose tests all skipped exits 77
 * (ctest's SKIP_RETURN_CODE, tests/CMakeLists.txt) and names the reason; PROMPTAD_REQUIRE_CUDA=1 turns the skips
 * into failures. Devices are hidden with CUDA_VISIBLE_DEVICES= so that this runs the same on GPU machines. */
#include "backend.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

// Devices hidden before CUDA starts in this test's process: never ready, and the line matches the state.
Test(skips, probe_names_why_cuda_is_missing) {
    cr_assert(setenv("CUDA_VISIBLE_DEVICES", "", 1) == 0);
    char why[256] = "";
    pad_cuda_state s = pad_cuda_probe(why, sizeof why);
#ifdef PAD_HAVE_CUDA
    cr_assert(s == PAD_CUDA_NO_DEVICE || s == PAD_CUDA_DRIVER_ERROR, "state %d: %s", (int)s, why);
    if (s == PAD_CUDA_NO_DEVICE) cr_assert(strncmp(why, "no CUDA device", 14) == 0, "%s", why);
    if (s == PAD_CUDA_DRIVER_ERROR) cr_assert(strncmp(why, "CUDA driver error: cudaError", 28) == 0, "%s", why);
#else
    cr_assert(s == PAD_CUDA_NOT_BUILT && strncmp(why, "built without CUDA", 18) == 0, "state %d: %s", (int)s, why);
#endif
    cr_assert(pad_cuda_device_count() == 0);
    cr_assert(strcmp(pad_test_cuda_missing(), why) == 0, "%s vs %s", pad_test_cuda_missing(), why);
    // a tiny buffer gets a cut, terminated line; NULL is allowed
    char small[8];
    cr_assert(pad_cuda_probe(small, sizeof small) == s && strlen(small) == 7);
    cr_assert(pad_cuda_probe(NULL, 0) == s);
}

Test(skips, cuda_test_program_exits_77_or_fails_when_required) {
    cr_assert(setenv("CUDA_VISIBLE_DEVICES", "", 1) == 0);
    const char *why = pad_test_cuda_missing();
    cr_assert(why != NULL);
    const char *prog = pad_test_fmt("%s/test_metrics_cuda", PAD_TEST_BIN_DIR);
    // BXFI_MAP tells a Criterion program that it is a test worker (as this process is): the child must not see it
    pad_cmd_result r = pad_cmd_run("env -u BXFI_MAP CUDA_VISIBLE_DEVICES= PROMPTAD_REQUIRE_CUDA=0 %s --jobs 1", prog);
    cr_assert(r.exit_code == 77, "%s: exit %d (want 77, all skipped)\n%s%s", prog, r.exit_code, r.out, r.err);
    cr_assert(strstr(r.err, "tests skipped") && strstr(r.err, why), "the reason is not named:\n%s", r.err);
    pad_cmd_free(&r);
    r = pad_cmd_run("env -u BXFI_MAP CUDA_VISIBLE_DEVICES= PROMPTAD_REQUIRE_CUDA=1 %s --jobs 1", prog);
    cr_assert(r.exit_code == 1, "%s: exit %d under PROMPTAD_REQUIRE_CUDA=1 (want 1)\n%s%s", prog, r.exit_code, r.out,
              r.err);
    cr_assert(strstr(r.err, "PROMPTAD_REQUIRE_CUDA=1 forbids skipping") && strstr(r.err, why), "%s", r.err);
    pad_cmd_free(&r);
}
