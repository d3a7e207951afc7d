/* cli_encode.c - placeholder until the subcommand is implemented. */
#include "cli.h"

#include <stdio.h>

int pad_cli_encode_image(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "promptad %s: not implemented yet\n", argv[0]);
    return 1;
}
