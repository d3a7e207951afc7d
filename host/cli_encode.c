/* cli_encode.c - placeholder for `promptad encode-text` until it is implemented (encode-image: cli_encode_image.c). */
#include "cli.h"

#include <stdio.h>

int pad_cli_encode_text(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "promptad %s: not implemented yet\n", argv[0]);
    return 1;
}
