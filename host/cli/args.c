/* args.c - the command-line option parser of args.h. */
#include "args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pad_args_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "promptad %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run 'promptad %s --help' for usage)\n", cmd);
}

static void print_usage(const pad_opt *opts, int n_opts, const char *usage_line, const char *description) {
    printf("usage: %s\n", usage_line);
    if (description) printf("\n%s\n", description);
    if (n_opts) printf("\noptions:\n");
    for (int i = 0; i < n_opts; i++) {
        char left[96];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name, opts[i].metavar ? " " : "",
                 opts[i].metavar ? opts[i].metavar : "");
        printf("  %-28s %s\n", left, opts[i].help ? opts[i].help : "");
    }
}

pad_args_result pad_args_parse(int argc, char **argv, const pad_opt *opts, int n_opts, const char **pos, int max_pos,
                               int *n_pos, const char *usage_line, const char *description) {
    const char *cmd = argc > 0 ? argv[0] : "?";
    bool seen[128] = {false};
    *n_pos = 0;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            print_usage(opts, n_opts, usage_line, description);
            return PAD_ARGS_HELP;
        }
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (only_pos || a[0] != '-' || a[1] != '-' || a[2] == 0) {
            if (*n_pos >= max_pos) {
                pad_args_error(cmd, "too many arguments (at most %d): '%s'", max_pos, a);
                return PAD_ARGS_ERROR;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int k = -1;
        for (int j = 0; j < n_opts; j++)
            if (strlen(opts[j].name) == nlen && strncmp(opts[j].name, name, nlen) == 0) {
                k = j;
                break;
            }
        if (k < 0) {
            pad_args_error(cmd, "unknown option '--%.*s'", (int)nlen, name);
            return PAD_ARGS_ERROR;
        }
        const pad_opt *o = &opts[k];
        if (!o->metavar) { // flag
            if (eq) {
                pad_args_error(cmd, "option '--%s' takes no value", o->name);
                return PAD_ARGS_ERROR;
            }
            if (o->flag) *o->flag = true;
            continue;
        }
        const char *val;
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            pad_args_error(cmd, "option '--%s' needs a value (%s)", o->name, o->metavar);
            return PAD_ARGS_ERROR;
        }
        if (o->multi) {
            if (*o->n_multi >= PAD_ARGS_MAX_MULTI) {
                pad_args_error(cmd, "option '--%s' given more than %d times", o->name, PAD_ARGS_MAX_MULTI);
                return PAD_ARGS_ERROR;
            }
            o->multi[(*o->n_multi)++] = val;
        } else {
            if (k < 128 && seen[k]) {
                pad_args_error(cmd, "option '--%s' given twice", o->name);
                return PAD_ARGS_ERROR;
            }
            if (k < 128) seen[k] = true;
            if (o->value) *o->value = val;
        }
    }
    return PAD_ARGS_OK;
}

bool pad_args_int(const char *cmd, const char *name, const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || end == s || *end != 0) {
        pad_args_error(cmd, "--%s: '%s' is not an integer", name, s);
        return false;
    }
    if (v < lo || v > hi) {
        pad_args_error(cmd, "--%s: %ld is out of range [%ld, %ld]", name, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool pad_args_float(const char *cmd, const char *name, const char *s, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || end == s || *end != 0) {
        pad_args_error(cmd, "--%s: '%s' is not a number", name, s);
        return false;
    }
    *out = v;
    return true;
}

bool pad_args_choice(const char *cmd, const char *name, const char *s, const char *a, const char *b, int *out) {
    if (strcmp(s, a) == 0)
        *out = 0;
    else if (strcmp(s, b) == 0)
        *out = 1;
    else {
        pad_args_error(cmd, "--%s: expected %s or %s, got '%s'", name, a, b, s);
        return false;
    }
    return true;
}

int pad_args_split_list(char *s, const char **items, int max) {
    int n = 0;
    for (char *p = s;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (!*p || n == max) return -1;
        items[n++] = p;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}
