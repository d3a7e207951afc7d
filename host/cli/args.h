/* args.h - a small command-line option parser shared by the subcommands in cli_*.c.
 * Options are "--name value" or "--name=value"; flags take no value; an option marked `multi` may repeat and
 * collects every value in order (e.g. --set a=1 --set b=2). "--" ends the options. Unknown options, missing
 * values and repeated single options are errors naming the option. "--help"/"-h" prints the usage. */
#ifndef PAD_HOST_ARGS_H
#define PAD_HOST_ARGS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_ARGS_MAX_MULTI 64

typedef struct pad_opt {
    const char *name;    // without the leading "--"
    const char *metavar; // NULL for a flag
    const char *help;
    const char **value; // single-valued option: receives the value (unchanged when absent)
    bool *flag;         // flag: set to true when present
    const char **multi; // repeatable option: array of PAD_ARGS_MAX_MULTI entries
    int *n_multi;
} pad_opt;

typedef enum pad_args_result {
    PAD_ARGS_OK = 0,
    PAD_ARGS_HELP = 1,  // --help was given; the usage has been printed to stdout
    PAD_ARGS_ERROR = 2, // an error was printed to stderr
} pad_args_result;

// argv[0] is the subcommand name. Positional arguments are stored (not copied) in pos (capacity max_pos).
// usage_line is e.g. "promptad tokenize [--vocab V] TEXT..." and is printed with the option table on --help.
pad_args_result pad_args_parse(int argc, char **argv, const pad_opt *opts, int n_opts, const char **pos, int max_pos,
                               int *n_pos, const char *usage_line, const char *description);

// Prints "promptad <cmd>: <message>" to stderr and the hint "run 'promptad <cmd> --help'".
void pad_args_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// Parses a decimal int / float with range checks; on error prints "promptad <cmd>: --name: ..." and returns false.
bool pad_args_int(const char *cmd, const char *name, const char *s, long lo, long hi, long *out);
bool pad_args_float(const char *cmd, const char *name, const char *s, double *out);

// One of two words: *out = 0 for `a`, 1 for `b`; anything else prints "promptad <cmd>: --name: expected a or b, got
// 's'" and returns false.
bool pad_args_choice(const char *cmd, const char *name, const char *s, const char *a, const char *b, int *out);

// Splits a comma-separated list in place (commas become NULs) into at most max items pointing into s. Returns the
// number of items, or -1 on an empty item (",,", a leading or trailing comma, an empty string) or more than max.
int pad_args_split_list(char *s, const char **items, int max);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_ARGS_H
