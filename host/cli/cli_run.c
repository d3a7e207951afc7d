/* cli_run.c - `promptad run` (the main job), `promptad predict` and `promptad report` (docs/cli.md): argument
 * parsing, the progress bar with ETA on stderr (one line per finished unit when stderr is not a terminal), Ctrl-C
 * handling (the unit in progress is discarded cleanly; a second Ctrl-C kills), and the summary on stdout.
 * `run --shard I/N` computes one deterministic slice of the units (run.h); `run --gpus LIST` starts one worker
 * process per entry (each `run --shard i/N` with CUDA_VISIBLE_DEVICES set to the entry), waits for all of them and
 * writes the merged summary, the same tables `promptad report` writes. */
#include "args.h"
#include "cli.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "predict.h"
#include "report.h"
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

// ----------------------------------------------------------------------------
// Progress display

typedef struct progress {
    bool tty, quiet;
    bool started;     // the run announced its units (PAD_RUN_EV_BEGIN)
    bool drawn;       // a bar line is on the terminal
    double t_compute; // when the first unit started (wall clock), 0 before
    int computed;     // units finished in this run
    int n_units, n_done;
    char unit[160]; // "bottle k2 seed1 seg"
    int epoch, n_epochs;
    char stage[256];
    double last_draw;
    char tag[48]; // "[shard 2/4] " in the per-unit lines of a shard, else ""
} progress;

static progress g_progress;

static void fmt_duration(char *buf, size_t cap, double s) {
    if (!(s >= 0) || isinf(s)) {
        snprintf(buf, cap, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, cap, "%lds", t);
}

// Seconds left: wall time per unit so far (the current unit counted by its epochs) times the units left.
static double eta(const progress *p) {
    if (p->t_compute <= 0) return NAN;
    double frac = p->n_epochs > 0 ? (double)p->epoch / p->n_epochs : 0.0;
    double done_eq = p->computed + frac;
    if (done_eq <= 0.02) return NAN;
    double per = (pad_now() - p->t_compute) / done_eq;
    double left = (double)(p->n_units - p->n_done) - frac;
    return per * (left > 0 ? left : 0);
}

static void clear_bar(progress *p) {
    if (p->tty && p->drawn) {
        fputs("\r\033[K", stderr);
        p->drawn = false;
    }
}

static void draw_bar(progress *p, bool force) {
    if (!p->tty || p->quiet || !p->started) return;
    double now = pad_now();
    if (!force && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    int width = 24;
    double frac = p->n_units ? (p->n_done + (p->n_epochs ? (double)p->epoch / p->n_epochs : 0)) / p->n_units : 1.0;
    int fill = (int)(frac * width);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    char e[32];
    fmt_duration(e, sizeof e, eta(p));
    char what[300];
    if (p->unit[0])
        snprintf(what, sizeof what, "%s epoch %d/%d", p->unit, p->epoch, p->n_epochs);
    else
        snprintf(what, sizeof what, "%s", p->stage);
    fprintf(stderr, "\r\033[K[%s] %d/%d units | %s | ETA %s", bar, p->n_done, p->n_units, what, e);
    fflush(stderr);
    p->drawn = true;
}

static void log_sink(pad_log_level level, const char *msg, void *ud) {
    progress *p = ud;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    clear_bar(p);
    if (!(p->quiet && level < PAD_LOG_LEVEL_WARN))
        fprintf(stderr, "promptad: %s: %s\n", names[level >= 0 && level <= 3 ? level : 3], msg);
    draw_bar(p, true);
}

static void on_event(const pad_run_event *ev, void *ud) {
    progress *p = ud;
    p->n_units = ev->n_units;
    p->n_done = ev->n_done;
    switch (ev->kind) {
    case PAD_RUN_EV_BEGIN:
        p->started = true;
        if (ev->n_skipped)
            fprintf(stderr, "promptad run: %d of %d units already finished (skipped)\n", ev->n_skipped, ev->n_units);
        break;
    case PAD_RUN_EV_STAGE:
        snprintf(p->stage, sizeof p->stage, "%s", ev->message);
        p->unit[0] = 0;
        if (!p->tty && !p->quiet) fprintf(stderr, "promptad run: %s%s\n", p->tag, ev->message);
        draw_bar(p, true);
        break;
    case PAD_RUN_EV_UNIT_BEGIN:
        if (p->t_compute <= 0) p->t_compute = pad_now();
        snprintf(p->unit, sizeof p->unit, "%s k%d seed%d %s", ev->cls, ev->k, ev->seed, ev->task);
        p->stage[0] = 0;
        p->epoch = 0;
        p->n_epochs = ev->n_epochs;
        draw_bar(p, true);
        break;
    case PAD_RUN_EV_EPOCH:
        p->epoch = ev->epoch;
        draw_bar(p, false);
        break;
    case PAD_RUN_EV_UNIT_END: {
        p->computed++;
        p->epoch = 0;
        p->unit[0] = 0;
        char e[32], line[512];
        fmt_duration(e, sizeof e, eta(p));
        int n = snprintf(line, sizeof line, "[%d/%d] %s k%d seed%d %s:", ev->n_done, ev->n_units, ev->cls, ev->k,
                         ev->seed, ev->task);
        if (!isnan(ev->image_auroc))
            n += snprintf(line + n, sizeof line - (size_t)n, " I-AUROC %.1f", 100 * ev->image_auroc);
        if (!isnan(ev->pixel_auroc))
            n += snprintf(line + n, sizeof line - (size_t)n, " P-AUROC %.1f", 100 * ev->pixel_auroc);
        if (!isnan(ev->pixel_pro)) n += snprintf(line + n, sizeof line - (size_t)n, " PRO %.1f", 100 * ev->pixel_pro);
        snprintf(line + n, sizeof line - (size_t)n, " (epoch %d, %.1f s; ETA %s)", ev->epoch, ev->unit_seconds, e);
        clear_bar(p);
        if (!p->quiet) fprintf(stderr, "promptad run: %s%s\n", p->tag, line);
        draw_bar(p, true);
        break;
    }
    case PAD_RUN_EV_END:
        clear_bar(p);
        p->started = false;
        break;
    }
}

// ----------------------------------------------------------------------------
// Ctrl-C

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
    g_stop = 1;
    static const char msg[] = "\npromptad run: stopping: the unit in progress is discarded, finished units are kept "
                              "(Ctrl-C again to kill)\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    signal(sig, SIG_DFL);
}

// ----------------------------------------------------------------------------
// promptad run

static void print_keys(void) {
    int n;
    const pad_config_key *k = pad_config_keys(&n);
    printf("Configuration keys of promptad run (YAML sections; --set key=value behaves like the line in the file;\n"
           "lists are comma-separated in --set):\n\n");
    for (int i = 0; i < n; i++)
        printf("  %-22s %s%s\n", k[i].key, k[i].help, k[i].list ? " [list]" : "");
}

// "I/N" with 0 <= I < N.
static bool parse_shard(const char *s, int *index, int *count) {
    char *end = NULL;
    errno = 0;
    long i = strtol(s, &end, 10);
    if (errno || end == s || *end != '/') return false;
    const char *t = end + 1;
    long n = strtol(t, &end, 10);
    if (errno || end == t || *end || n < 1 || n > 100000 || i < 0 || i >= n) return false;
    *index = (int)i;
    *count = (int)n;
    return true;
}

// Splits "0,1,2,3" into at most cap entries of at most 31 characters (digits, or a UUID / MIG name).
static int split_gpus(const char *s, char (*out)[32], int cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len > 31 || n >= cap) return -1;
        for (size_t k = 0; k < len; k++)
            if (!(p[k] == '-' || p[k] == '_' || p[k] == ':' || (p[k] >= '0' && p[k] <= '9') ||
                  (p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z')))
                return -1;
        memcpy(out[n], p, len);
        out[n][len] = 0;
        n++;
        p = e ? e + 1 : p + len;
        if (e && !*p) return -1; // trailing comma
    }
    return n;
}

// The environment of a worker: ours with CUDA_VISIBLE_DEVICES and PROMPTAD_NO_BAR replaced. Built before fork, so
// the child only calls execve. Returns a malloc'd array whose first entry is the one string it allocated (the
// others are environ's); the parent frees it with worker_env_free once the child is started.
static char **worker_env(const char *gpu) {
    int n = 0;
    while (environ[n])
        n++;
    char **env = calloc((size_t)n + 3, sizeof *env);
    char *cvd = malloc(strlen(gpu) + 32);
    if (!env || !cvd) {
        free(env);
        free(cvd);
        return NULL;
    }
    snprintf(cvd, strlen(gpu) + 32, "CUDA_VISIBLE_DEVICES=%s", gpu);
    int k = 0;
    env[k++] = cvd;
    for (int i = 0; i < n; i++)
        if (strncmp(environ[i], "CUDA_VISIBLE_DEVICES=", 21) != 0 && strncmp(environ[i], "PROMPTAD_NO_BAR=", 16) != 0)
            env[k++] = environ[i];
    env[k++] = (char *)"PROMPTAD_NO_BAR=1";
    env[k] = NULL;
    return env;
}

static void worker_env_free(char **env) {
    if (!env) return;
    free(env[0]);
    free(env);
}

static volatile sig_atomic_t g_parent_stop = 0;
static void on_parent_signal(int sig) {
    (void)sig;
    g_parent_stop = 1; // the workers got the same Ctrl-C (same process group) and stop by themselves
}

// `promptad run --gpus LIST`: one worker per entry, then the merged summary. Returns the exit code.
static int run_workers(const char *config, const char *const *sets, int n_sets, bool quiet, const char *gpus,
                       const pad_run_config *cfg) {
    char devs[256][32];
    const int n = split_gpus(gpus, devs, 256);
    if (n < 1) {
        pad_args_error("run", "--gpus: expected a comma-separated list of device numbers, e.g. 0,1,2,3 or 0,0");
        return 2;
    }
    // generate the demo model / synthetic data once, and check the finished units, before any worker starts
    pad_run_opts dro = {.dry_run = true};
    pad_run_result dres;
    if (pad_run(cfg, &dro, &dres) != PAD_OK) return 1;
    free(dres.summary_md);
    if (!quiet)
        fprintf(stderr, "promptad run: %d units in %d shards, one worker per entry of --gpus %s\n", dres.n_units, n,
                gpus);
    pid_t pids[256];
    int n_started = 0, rc = 0;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_parent_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_parent_stop = 0;
    for (int i = 0; i < n; i++) {
        char shard[64];
        snprintf(shard, sizeof shard, "%d/%d", i, n);
        const char *wargv[2 * PAD_ARGS_MAX_MULTI + 10];
        int k = 0;
        wargv[k++] = "promptad";
        wargv[k++] = "run";
        wargv[k++] = "--config";
        wargv[k++] = config;
        for (int j = 0; j < n_sets; j++) {
            wargv[k++] = "--set";
            wargv[k++] = sets[j];
        }
        if (quiet) wargv[k++] = "--quiet";
        wargv[k++] = "--shard";
        wargv[k++] = shard;
        wargv[k] = NULL;
        char **env = worker_env(devs[i]);
        if (!env) {
            rc = 1;
            break;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            // the parent prints the merged summary: the workers' own summaries go nowhere
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
            execve("/proc/self/exe", (char *const *)wargv, env);
            _exit(127);
        }
        worker_env_free(env);
        if (pid < 0) {
            fprintf(stderr, "promptad run: cannot start worker %d: %s\n", i, strerror(errno));
            rc = 1;
            break;
        }
        pids[n_started++] = pid;
        if (!quiet)
            fprintf(stderr, "promptad run: worker %d (pid %ld): --shard %s on GPU %s\n", i, (long)pid, shard, devs[i]);
    }
    bool interrupted = false;
    for (int i = 0; i < n_started; i++) {
        int status = 0;
        pid_t r;
        while ((r = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR) {
        }
        int code = r < 0               ? 1
                   : WIFEXITED(status) ? WEXITSTATUS(status)
                                       : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        if (code == 130) interrupted = true;
        if (code != 0) {
            fprintf(stderr, "promptad run: worker %d (--shard %d/%d, GPU %s) exited with status %d\n", i, i, n, devs[i],
                    code);
            if (rc == 0) rc = code == 130 ? 130 : 1;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    // the merged summary of everything finished, as promptad report writes it
    char paper[4096];
    pad_resolve_data_path("configs/paper_results.csv", paper, sizeof paper);
    const char *dirs[1] = {cfg->output.dir};
    char *md = NULL;
    int n_read = 0;
    pad_status st = pad_report_write(dirs, 1, cfg->output.dir, paper, &md, &n_read);
    if (md) fputs(md, stdout);
    free(md);
    if (st != PAD_OK && rc == 0) rc = 1;
    if (!quiet)
        fprintf(stderr, "promptad run: %d workers done%s; %d units in %s/%s %s\n", n_started,
                rc ? " (with errors)" : "", n_read, cfg->output.dir, pad_run_config_dataset(cfg),
                st == PAD_OK ? "(summary.md, summary.csv)" : "(no summary: see the error above)");
    if (interrupted || g_parent_stop) fprintf(stderr, "promptad run: interrupted; rerun the same command to resume\n");
    return rc;
}

// The last lines of promptad run: the counts, and where the results are only when the run succeeded (after an
// error or an interruption nothing is claimed: the message above says what happened).
static void print_outcome(const pad_run_config *cfg, const pad_run_result *res, pad_status st, bool dry) {
    if (dry) {
        fprintf(stderr, "promptad run: %d units, %d finished, %d to compute (dry run: nothing computed)\n",
                res->n_units, res->n_skipped, res->n_units - res->n_skipped);
    } else if (st != PAD_OK) { // no claim of results: the error above says what happened
        int left = res->n_units - res->n_computed - res->n_skipped - res->n_by_other;
        if (res->n_units > 0)
            fprintf(stderr,
                    "promptad run: %s: %d units computed, %d finished before, %d by another run, %d not done; the "
                    "finished units are kept in %s\n",
                    st == PAD_ERR_ABORTED ? "interrupted" : "stopped by the error above", res->n_computed,
                    res->n_skipped, res->n_by_other, left, res->results_dir);
    } else {
        if (res->summary_md) fputs(res->summary_md, stdout);
        fprintf(stderr,
                "promptad run: %d units computed, %d skipped (already finished), %d finished by another run, %d left; "
                "results in %s (summary.md, summary.csv)\n",
                res->n_computed, res->n_skipped, res->n_by_other,
                res->n_units - res->n_computed - res->n_skipped - res->n_by_other, res->results_dir);
        if (strcmp(cfg->model.generate, "none") != 0)
            fprintf(stderr,
                    "promptad run: NOTE: this run used a RANDOM generated model (%s) on %s data: the numbers only show "
                    "that the pipeline works. Real numbers need the real weights (bash weights/get_weights.sh) and a "
                    "real dataset (configs/mvtec.yaml, visa.yaml, ...).\n",
                    cfg->model.weights, strcmp(cfg->data.format, "synth") == 0 ? "synthetic" : "these");
    }
}

int pad_cli_run(int argc, char **argv) {
    const char *config = NULL, *shard_s = NULL, *gpus = NULL;
    const char *sets[PAD_ARGS_MAX_MULTI];
    int n_sets = 0;
    bool dry = false, keys = false, quiet = false;
    const pad_opt opts[] = {
        {"config", "CFG", "YAML configuration (configs/*.yaml)", &config, NULL, NULL, NULL},
        {"set", "KEY=VALUE", "override a key as if written in the file (repeatable), e.g. run.epochs=10", NULL, NULL,
         sets, &n_sets},
        {"dry-run", NULL, "prepare the inputs, print the resolved configuration and the work, compute nothing", NULL,
         &dry, NULL, NULL},
        {"keys", NULL, "list every configuration key", NULL, &keys, NULL, NULL},
        {"quiet", NULL, "no progress output (warnings and errors only)", NULL, &quiet, NULL, NULL},
        {"shard", "I/N", "compute only slice I (0-based) of N of the units (Slurm arrays, several machines)", &shard_s,
         NULL, NULL, NULL},
        {"gpus", "LIST", "one worker process per entry, e.g. 0,1,2,3 (or 0,0: two on GPU 0), then the summary", &gpus,
         NULL, NULL, NULL},
    };
    const char *pos[1];
    int n_pos = 0;
    pad_args_result r = pad_args_parse(
        argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 0, &n_pos,
        "promptad run --config CFG [--set key=value ...] [--dry-run] [--keys] [--quiet] [--shard I/N | --gpus LIST]",
        "Runs a whole benchmark: every class x shot x seed x task (cls, seg) of a dataset, with results in\n"
        "<output.dir>/<dataset>/<class>/k<k>/seed<s>/<task>/ (scores.csv, metrics.json, maps, heatmaps) and summary\n"
        "tables in <output.dir>/<dataset>/summary.{md,csv}. A rerun skips the finished units.\n"
        "--shard I/N computes a deterministic slice of the (class, shot, seed) groups (contiguous blocks in config\n"
        "order); N shards together give exactly the units and results of one run; `promptad report DIR...` merges\n"
        "the result folders. --gpus LIST runs the N shards as worker processes, worker i on GPU LIST[i].\n"
        "Start with the demo: promptad run --config configs/demo.yaml");
    if (r != PAD_ARGS_OK) return r == PAD_ARGS_HELP ? 0 : 2;
    if (keys) {
        print_keys();
        return 0;
    }
    if (!config) {
        pad_args_error(argv[0], "--config is required (e.g. --config configs/demo.yaml)");
        return 2;
    }
    int shard_index = 0, shard_count = 1;
    if (shard_s && !parse_shard(shard_s, &shard_index, &shard_count)) {
        pad_args_error(argv[0], "--shard: expected I/N with 0 <= I < N, e.g. --shard 0/4 (got '%s')", shard_s);
        return 2;
    }
    if (shard_s && gpus) {
        pad_args_error(argv[0], "--shard and --gpus cannot be combined (--gpus makes the shards itself)");
        return 2;
    }
    if (gpus && dry) {
        pad_args_error(argv[0], "--dry-run and --gpus cannot be combined");
        return 2;
    }
    pad_run_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return 1;
    pad_run_config_default(cfg);
    if (pad_run_config_load(cfg, config) != PAD_OK) {
        free(cfg);
        return 1;
    }
    for (int i = 0; i < n_sets; i++)
        if (pad_run_config_set(cfg, sets[i]) != PAD_OK) {
            free(cfg);
            return 1;
        }
    if (pad_run_config_finalize(cfg) != PAD_OK) {
        free(cfg);
        return 1;
    }
    if (gpus) {
        int code = run_workers(config, sets, n_sets, quiet, gpus, cfg);
        free(cfg);
        return code;
    }
    progress *p = &g_progress;
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO) && !getenv("PROMPTAD_NO_BAR");
    p->quiet = quiet;
    if (shard_count > 1) snprintf(p->tag, sizeof p->tag, "[shard %d/%d] ", shard_index, shard_count);
    pad_log_set(log_sink, p);
    if (!quiet) {
        int n_tasks = __builtin_popcount((unsigned)cfg->run.tasks);
        fprintf(stderr, "promptad run: %s (%s at %s), protocol %s, shots", pad_run_config_dataset(cfg),
                cfg->data.format, cfg->data.root, cfg->run.protocol == PAD_PROTOCOL_OFFICIAL ? "official" : "clean");
        for (int i = 0; i < cfg->run.n_shots; i++)
            fprintf(stderr, "%s%d", i ? "," : " ", cfg->run.shots[i]);
        fprintf(stderr, ", %d seed%s, %d task%s, %d epochs; results in %s", cfg->run.n_seeds,
                cfg->run.n_seeds == 1 ? "" : "s", n_tasks, n_tasks == 1 ? "" : "s", cfg->run.epochs, cfg->output.dir);
        if (shard_count > 1) fprintf(stderr, "; shard %d of %d (0-based)", shard_index, shard_count);
        fputc('\n', stderr);
    }
    if (dry) {
        (void)pad_run_config_resolve_model(cfg); // print the taps the run will use (an unreadable file: pad_run says)
        size_t n = pad_run_config_to_yaml(cfg, NULL, 0);
        char *y = malloc(n + 1);
        if (y) {
            pad_run_config_to_yaml(cfg, y, n + 1);
            fputs(y, stdout);
            free(y);
        }
    }
    g_stop = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pad_run_opts ro = {.progress = on_event,
                       .user_data = p,
                       .stop = &g_stop,
                       .dry_run = dry,
                       .shard_index = shard_index,
                       .shard_count = shard_count};
    pad_run_result res;
    pad_status st = pad_run(cfg, &ro, &res);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    clear_bar(p);
    pad_log_set(NULL, NULL);
    print_outcome(cfg, &res, st, dry);
    free(res.summary_md);
    free(cfg);
    if (st == PAD_ERR_ABORTED) {
        fprintf(stderr, "promptad run: interrupted; rerun the same command to resume\n");
        return 130;
    }
    return st == PAD_OK ? 0 : 1;
}

// ----------------------------------------------------------------------------
// promptad report

int pad_cli_report(int argc, char **argv) {
    const char *out = NULL, *paper = NULL;
    const pad_opt opts[] = {
        {"out", "DIR", "where the summaries go (default: the first DIR)", &out, NULL, NULL, NULL},
        {"paper", "FILE", "the paper's numbers (default configs/paper_results.csv)", &paper, NULL, NULL, NULL},
    };
    const char *pos[64];
    int n_pos = 0;
    pad_args_result r = pad_args_parse(argc, argv, opts, 2, pos, 64, &n_pos, "promptad report DIR... [--out DIR]",
                                       "Merges result folders (output.dir of one or more runs, e.g. shards on several "
                                       "GPUs) into\nsummary tables: <out>/<dataset>/summary.md and summary.csv; prints "
                                       "the Markdown on stdout.");
    if (r != PAD_ARGS_OK) return r == PAD_ARGS_HELP ? 0 : 2;
    if (n_pos < 1) {
        pad_args_error(argv[0], "give at least one results folder");
        return 2;
    }
    char pbuf[4096];
    if (!paper) {
        pad_resolve_data_path("configs/paper_results.csv", pbuf, sizeof pbuf);
        paper = pbuf;
    }
    char *md = NULL;
    int n = 0;
    pad_status st = pad_report_write(pos, n_pos, out ? out : pos[0], paper, &md, &n);
    if (md) fputs(md, stdout);
    free(md);
    if (st != PAD_OK) return 1;
    fprintf(stderr, "promptad report: %d units from %d folder%s; summaries in %s/<dataset>/\n", n, n_pos,
            n_pos == 1 ? "" : "s", out ? out : pos[0]);
    return 0;
}

// ----------------------------------------------------------------------------
// promptad predict

int pad_cli_predict(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *device = "auto", *weights = NULL, *batch_s = NULL, *threads_s = NULL;
    const char *inputs[PAD_ARGS_MAX_MULTI];
    int n_inputs = 0;
    bool no_heatmaps = false;
    const pad_opt opts[] = {
        {"model", "DIR", "a model folder written by promptad run (<results>/<ds>/<class>/k<k>/seed<s>/model)", &model,
         NULL, NULL, NULL},
        {"input", "IMG|DIR", "an image, or a folder of images (repeatable)", NULL, NULL, inputs, &n_inputs},
        {"out", "DIR", "output folder: predictions.csv and heatmaps/", &out, NULL, NULL, NULL},
        {"device", "D", "auto (default), cpu or cuda", &device, NULL, NULL, NULL},
        {"weights", "FILE", "the CLIP weights, when they moved (must be the file the model was trained with)", &weights,
         NULL, NULL, NULL},
        {"batch", "N", "images per forward (default 16)", &batch_s, NULL, NULL, NULL},
        {"threads", "N", "CPU threads (default: all cores)", &threads_s, NULL, NULL, NULL},
        {"no-heatmaps", NULL, "do not write overlay PNGs", NULL, &no_heatmaps, NULL, NULL},
    };
    const char *pos[1];
    int n_pos = 0;
    pad_args_result r = pad_args_parse(
        argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 0, &n_pos,
        "promptad predict --model DIR --input IMG|DIR [--input ...] --out DIR [--device D] [--weights FILE]",
        "Scores new images with a model saved by promptad run. Writes <out>/predictions.csv with the columns\n"
        "path,score,threshold,decision (anomalous when score >= threshold; the threshold is the one that\n"
        "maximised F1 on the run's test set, see the model's model.json) and a heatmap overlay per image.");
    if (r != PAD_ARGS_OK) return r == PAD_ARGS_HELP ? 0 : 2;
    if (!model || !out || n_inputs == 0) {
        pad_args_error(argv[0], "--model, --input and --out are required");
        return 2;
    }
    pad_backend_kind kind;
    if (pad_backend_kind_parse(device, &kind) != PAD_OK) return 2;
    long batch = 16, threads = 0;
    if (batch_s && !pad_args_int(argv[0], "batch", batch_s, 1, 1024, &batch)) return 2;
    if (threads_s && !pad_args_int(argv[0], "threads", threads_s, 0, 4096, &threads)) return 2;
    pad_predict_opts po = {.model_dir = model,
                           .inputs = inputs,
                           .n_inputs = n_inputs,
                           .out_dir = out,
                           .device = (int)kind,
                           .threads = (int)threads,
                           .weights = weights,
                           .batch = (int)batch,
                           .heatmaps = !no_heatmaps};
    int n = 0;
    pad_status st = pad_predict(&po, &n);
    if (n > 0)
        fprintf(stderr, "promptad predict: %d image%s scored; %s/predictions.csv%s\n", n, n == 1 ? "" : "s", out,
                no_heatmaps ? "" : ", overlays in heatmaps/");
    return st == PAD_OK ? 0 : 1;
}
