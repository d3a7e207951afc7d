/* cli_run.c - placeholder until the subcommand is implemented. */
#include "cli.h"

#include <stdio.h>

int pad_cli_run(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "promptad %s: not implemented yet\n", argv[0]);
    return 1;
}

int pad_cli_predict(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "promptad %s: not implemented yet\n", argv[0]);
    return 1;
}

int pad_cli_report(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "promptad %s: not implemented yet\n", argv[0]);
    return 1;
}
