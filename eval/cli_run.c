/* cli_run.c - `promptad run` (the main job), `promptad predict` and `promptad report` (cli_contract.md): argument
 * parsing, the progress bar with ETA on stderr (one line per finished unit when stderr is not a terminal), Ctrl-C
 * handling (the unit in progress is discarded cleanly; a second Ctrl-C kills), and the summary on stdout. */
#include "args.h"
#include "cli.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "predict.h"
#include "report.h"
#include "run.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        if (!p->tty && !p->quiet) fprintf(stderr, "promptad run: %s\n", ev->message);
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
        if (!p->quiet) fprintf(stderr, "promptad run: %s\n", line);
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

int pad_cli_run(int argc, char **argv) {
    const char *config = NULL;
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
    };
    const char *pos[1];
    int n_pos = 0;
    pad_args_result r = pad_args_parse(
        argc, argv, opts, (int)(sizeof opts / sizeof opts[0]), pos, 0, &n_pos,
        "promptad run --config CFG [--set key=value ...] [--dry-run] [--keys] [--quiet]",
        "Runs a whole benchmark: every class x shot x seed x task (cls, seg) of a dataset, with results in\n"
        "<output.dir>/<dataset>/<class>/k<k>/seed<s>/<task>/ (scores.csv, metrics.json, maps, heatmaps) and summary\n"
        "tables in <output.dir>/<dataset>/summary.{md,csv}. A rerun skips the finished units.\n"
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
    progress *p = &g_progress;
    memset(p, 0, sizeof *p);
    p->tty = isatty(STDERR_FILENO) && !getenv("PROMPTAD_NO_BAR");
    p->quiet = quiet;
    pad_log_set(log_sink, p);
    if (!quiet) {
        int n_tasks = __builtin_popcount((unsigned)cfg->run.tasks);
        fprintf(stderr, "promptad run: %s (%s at %s), protocol %s, shots", pad_run_config_dataset(cfg),
                cfg->data.format, cfg->data.root, cfg->run.protocol == PAD_PROTOCOL_OFFICIAL ? "official" : "clean");
        for (int i = 0; i < cfg->run.n_shots; i++)
            fprintf(stderr, "%s%d", i ? "," : " ", cfg->run.shots[i]);
        fprintf(stderr, ", %d seed%s, %d task%s, %d epochs; results in %s\n", cfg->run.n_seeds,
                cfg->run.n_seeds == 1 ? "" : "s", n_tasks, n_tasks == 1 ? "" : "s", cfg->run.epochs, cfg->output.dir);
    }
    if (dry) {
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
    pad_run_opts ro = {.progress = on_event, .user_data = p, .stop = &g_stop, .dry_run = dry};
    pad_run_result res;
    pad_status st = pad_run(cfg, &ro, &res);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    clear_bar(p);
    pad_log_set(NULL, NULL);
    if (dry) {
        fprintf(stderr, "promptad run: %d units, %d finished, %d to compute (dry run: nothing computed)\n", res.n_units,
                res.n_skipped, res.n_units - res.n_skipped);
    } else {
        if (res.summary_md) fputs(res.summary_md, stdout);
        fprintf(stderr,
                "promptad run: %d units computed, %d skipped, %d left; results in %s (summary.md, summary.csv)\n",
                res.n_computed, res.n_skipped, res.n_units - res.n_computed - res.n_skipped, res.results_dir);
        if (strcmp(cfg->model.generate, "none") != 0)
            fprintf(stderr,
                    "promptad run: NOTE: this run used a RANDOM generated model (%s) on %s data: the numbers only show "
                    "that the pipeline works. Real numbers need the real weights (bash weights/get_weights.sh) and a "
                    "real dataset (configs/mvtec.yaml, visa.yaml, ...).\n",
                    cfg->model.weights, strcmp(cfg->data.format, "synth") == 0 ? "synthetic" : "these");
    }
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
