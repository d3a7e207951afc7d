/* parity_main.c - the plain-C CUDA-vs-CPU parity runner for GPU machines (no Criterion needed; eval/device_check.sh
 * runs it). Every CUDA op against its CPU twin on seeded random inputs at awkward and real sizes, both towers (the
 * tiny fixture model and a full-size random ViT-B-16-plus-240), the text tower forward/backward, the prompt-training
 * step over a few epochs (tiny fixtures and full size), the scorer, the pixel and image metrics, the robustness
 * checks (per-image results independent of the batch, bit for bit; K = 0 GEMMs; out-of-range scatter indices;
 * signed zeros of the row max; a graph capture that fails falls back to eager launches), and the speed paths:
 * CUDA graph replays against eager runs (bit for bit), the fast kernels (warp LayerNorm, attention through cuBLAS,
 * one GEMM over the rows with a cuBLASLt bias epilogue), the pinned cuBLASLt GEMMs, the v2 attention kernel, and
 * the tensor-core math modes (TF32, BF16) with loose bounds. Tolerances are those of the Criterion CUDA tests
 * (tests/test_*_cuda.c). The checks live in tests/parity/ (one file per family of groups).
 *
 *   build/tests/parity_main [--filter SUBSTR] [--paths all|safe|fast] [--quick] [--list] [--cpu-twin]
 *
 * One line per check: "PASS|FAIL|SKIP  <name>  n=... nmse=... max_abs=... max_rel=... tol=(atol, rtol)  <ms> ms"
 * (the milliseconds are the GPU side's, synchronised), then "N passed, M failed, K skipped"; exit status 1 when a
 * check failed or when no check passed (a filter that matches nothing is an error, not a success). Without a CUDA
 * device it says why (a build without CUDA, no device) and exits 0, or 1 when PROMPTAD_REQUIRE_CUDA=1 (the device
 * check sets it). --cpu-twin compares the CPU backend with a second CPU backend instead (every check must pass bit
 * for bit): a self-test of this runner on machines without a GPU. --quick skips the full-size model checks.
 * --paths safe runs only the checks of what promptad uses by default (float32 GEMMs, the default kernels, no
 * graphs), --paths fast only those of the opt-in speed paths: eval/device_check.sh runs them as two processes, so
 * that a fault in an unverified fast path (a sticky CUDA error) cannot hide the results of the default paths.
 * NMSE is ggml's: sum (got-want)^2 / sum want^2. */
#include "parity.h"

#include <stdlib.h>
#include <string.h>
static const struct {
    const char *name;
    void (*fn)(void);
} k_groups[] = {
    {"op/gemm", ops_gemm},
    {"op/elementwise (add_rows, axpy, scale, layernorm, gelu, bias_gelu)", ops_elementwise},
    {"op/rows (gather, scatter)", ops_rows},
    {"op/attention (standard, backward, dual)", ops_attention},
    {"op/misc (patch_embed, backward ops, sgd, losses)", ops_misc},
    {"op/score (knn, text score, fuse, half, max, upsample, gaussian)", ops_score},
    {"robust (batch independence, K = 0, index errors, signed zeros, graph fallback)", robust_checks},
    {"tower/vision tiny", vision_tiny},
    {"tower/vision B16+ (fp32, fast kernels, tf32, bf16)", vision_full},
    {"tower/text", towers_text},
    {"op/quick_gelu (forward with and without bias, backward)", ops_quick_gelu},
    {"tower/quick_gelu (ViT-L/14-shaped, 2 + 2 blocks)", towers_quick_gelu},
    {"prompt + graphs/prompt", prompt_checks},
    {"score + graphs/score", scorer_checks},
    {"metrics", metrics_checks},
    {"op/conv (conv2d on cuDNN, pools, residual add)", ops_conv},
    {"op/patchcore (to_rows, knn_l2)", ops_patchcore},
    {"tower/resnet (tiny fixture, wide_resnet50_2 random)", resnet_checks},
    {"tower/clip_resnet (small fixture, RN101 random)", clip_resnet_checks},
    {"method/patchcore, padim, spade (tiny fixture network)", methods_checks},
};

static void quiet_log(pad_log_level level, const char *msg, void *ud) {
    (void)ud;
    if (level >= PAD_LOG_LEVEL_WARN) fprintf(stderr, "promptad: %s\n", msg);
}

// Parses the arguments into pg; returns -1 to go on, else the exit status.
static int parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            pg.filter = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            pg.quick = true;
        else if (!strcmp(argv[i], "--list"))
            pg.list = true;
        else if (!strcmp(argv[i], "--cpu-twin"))
            pg.twin = true;
        else if (!strcmp(argv[i], "--paths") && i + 1 < argc) {
            const char *v = argv[++i];
            pg.paths = !strcmp(v, "safe") ? 1 : !strcmp(v, "fast") ? 2 : !strcmp(v, "all") ? 0 : -1;
            if (pg.paths < 0) {
                fprintf(stderr, "parity_main: --paths all|safe|fast\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: parity_main [--filter SUBSTR] [--paths all|safe|fast] [--quick] [--list] "
                            "[--cpu-twin]\n");
            return 2;
        }
    }
    return -1;
}

// Without a CUDA device: says why; a failure when PROMPTAD_REQUIRE_CUDA=1 (the device check), else a skip.
static int no_device(void) {
    const char *req = getenv("PROMPTAD_REQUIRE_CUDA");
    const bool required = req && strcmp(req, "0") != 0;
#ifdef PAD_HAVE_CUDA
    const char *why = "no usable CUDA device (no GPU, or the driver failed: see the log line above)";
#else
    const char *why = "this build has no CUDA (configure with -DPROMPTAD_CUDA=ON)";
#endif
    printf("parity_main: %s: nothing to compare; run with --cpu-twin to self-test\n", why);
    if (required) {
        printf("FAIL  PROMPTAD_REQUIRE_CUDA=1 and %s\n0 passed, 1 failed, 0 skipped\n", why);
        return 1;
    }
    printf("0 passed, 0 failed, 0 skipped (no CUDA device)\n");
    return 0;
}

int main(int argc, char **argv) {
    const int rc = parse_args(argc, argv);
    if (rc >= 0) return rc;
    if (pg.list) {
        for (size_t i = 0; i < sizeof k_groups / sizeof k_groups[0]; i++)
            printf("%s\n", k_groups[i].name);
        return 0;
    }
    pad_log_set(quiet_log, NULL);
    setenv("PROMPTAD_ATTG_CHUNK", "2", 1); // the fast dual attention in chunks of 2 images: B = 3, 5 span chunks
    if (!pg.twin && pad_cuda_device_count() <= 0) return no_device();
    if (pad_backend_cpu_init(&pg.cpu, 0) != PAD_OK) return 1;
    pad_status st = pg.twin ? pad_backend_cpu_init(&pg.gpu, 0) : pad_backend_cuda_init(&pg.gpu, 0);
    if (st != PAD_OK) {
        printf("parity_main: cannot initialise the %s backend\n0 passed, 1 failed, 0 skipped\n",
               pg.twin ? "second CPU" : "CUDA");
        return 1;
    }
    // every check sets what it tests: the default paths unless it says otherwise
    pad_backend_set_fast_kernels(pg.gpu, false);
    pg.gpu->gemm_mode = PAD_CUDA_GEMM_LOOP;
    pg.gpu->att_v2 = false;
    static const char *const pn[3] = {"", ", default paths only", ", fast paths only"};
    printf("parity_main: %s vs cpu%s%s%s\n", pg.twin ? "cpu (twin)" : "cuda", pg.quick ? ", quick" : "",
           pg.filter ? ", filtered" : "", pn[pg.paths]);
    const double t0 = pad_now();
    for (size_t i = 0; i < sizeof k_groups / sizeof k_groups[0]; i++) {
        const double tg = pad_now();
        const int f0 = pg.failed;
        k_groups[i].fn();
        printf("# %s: %.1f s%s\n", k_groups[i].name, pad_now() - tg, pg.failed > f0 ? " (failures)" : "");
        if (pg.gpu->poisoned) {
            printf("FAIL  the CUDA backend is poisoned after an error: stopping\n");
            pg.failed++;
            break;
        }
    }
    if (pg.passed == 0 && pg.failed == 0) {
        printf("FAIL  no check passed%s\n", pg.filter ? " (the filter matches no check)" : "");
        pg.failed++;
    }
    printf("%d passed, %d failed, %d skipped (%.1f s)\n", pg.passed, pg.failed, pg.skipped, pad_now() - t0);
    pad_backend_free(pg.gpu);
    pad_backend_free(pg.cpu);
    return pg.failed ? 1 : 0;
}
