/* main.c - the `promptad` binary: dispatches to the subcommands of cli.h. The only place that exits.
 * Contract: ../shared/reference/cli_contract.md. */
#include "cli.h"
#include "promptad.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// OpenBLAS extension: the name of the kernel set it chose at load time.
char *openblas_get_corename(void);

// OpenBLAS 0.3.21 falls back to its slowest kernels ("Prescott") on CPUs it does not recognise (common in VMs
// that report a generic model), which makes every GEMM ~5x slower. The kernel set is chosen when the library is
// loaded, so when that happened on a CPU with AVX2/AVX-512 we re-execute ourselves once with OPENBLAS_CORETYPE set.
// A user's own OPENBLAS_CORETYPE is always respected.
static void fix_openblas_coretype(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("PROMPTAD_NO_REEXEC")) return;
    const char *core = openblas_get_corename();
    if (!core || (strcmp(core, "Prescott") != 0 && strcmp(core, "Core2") != 0 && strcmp(core, "generic") != 0)) return;
    __builtin_cpu_init();
    const char *want = __builtin_cpu_supports("avx512f") ? "SkylakeX" : __builtin_cpu_supports("avx2") ? "Haswell" : 0;
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("PROMPTAD_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv); // returns only on failure: carry on with the slow kernels
}

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command k_commands[] = {
    {"run", pad_cli_run, "run a whole benchmark from a YAML config (the main job)"},
    {"predict", pad_cli_predict, "score new images with a model saved by 'run'"},
    {"report", pad_cli_report, "merge result folders into summary tables"},
    {"synth", pad_cli_synth, "write a deterministic synthetic dataset in MVTec AD layout"},
    {"tokenize", pad_cli_tokenize, "print the 77 CLIP token ids of each text"},
    {"encode-image", pad_cli_encode_image, "dump the vision tower outputs of one image"},
    {"encode-text", pad_cli_encode_text, "dump raw text features"},
    {"train-prompts", pad_cli_train_prompts, "learn PromptAD prompts from normal shots"},
    {"score", pad_cli_score, "anomaly scores and maps for test images"},
    {"make-model", pad_cli_make_model, "write a deterministic random OpenCLIP-shaped model (tests, demo)"},
    {"metrics", pad_cli_metrics, "exact AUROC / AUPR / PRO of any method's scores and maps"},
};
#define N_COMMANDS (int)(sizeof k_commands / sizeof k_commands[0])

static void usage(FILE *fp) {
    fprintf(fp, "promptad %s - PromptAD few-shot anomaly detection (C11 + CUDA)\n\n", PAD_VERSION);
    fprintf(fp, "usage: promptad <command> [options]   (promptad <command> --help for details)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(fp, "  %-14s %s\n", k_commands[i].name, k_commands[i].help);
    fprintf(fp, "  %-14s %s\n", "version", "print the version and the CUDA devices");
}

int main(int argc, char **argv) {
    fix_openblas_coretype(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("promptad %s (CUDA devices: %d)\n", PAD_VERSION, pad_cuda_device_count());
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, k_commands[i].name) == 0) return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "promptad: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
