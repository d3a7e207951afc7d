/* cli.h - the subcommands of the `promptad` binary (docs/cli.md). Each takes the
 * subcommand's argv (argv[0] = the subcommand name) and returns the process exit code: 0 on success, 1 on a
 * runtime error (already reported on stderr), 2 on a usage error. Only host/main.c calls them. */
#ifndef PAD_HOST_CLI_H
#define PAD_HOST_CLI_H

#ifdef __cplusplus
extern "C" {
#endif

int pad_cli_tokenize(int argc, char **argv);      // host/cli_tokenize.c
int pad_cli_encode_image(int argc, char **argv);  // host/cli_encode_image.c
int pad_cli_encode_text(int argc, char **argv);   // host/cli_encode_text.c
int pad_cli_train_prompts(int argc, char **argv); // host/cli_train.c
int pad_cli_score(int argc, char **argv);         // host/cli_score.c
int pad_cli_score_clip(int argc, char **argv);    // host/cli/cli_score_clip.c: score --method cpe|winclip
int pad_cli_score_cnn(int argc, char **argv);     // host/cli/cli_score_cnn.c: score --method patchcore|padim|spade
int pad_cli_make_model(int argc, char **argv);    // host/cli_model.c
int pad_cli_metrics(int argc, char **argv);       // eval/cli_metrics.c
int pad_cli_synth(int argc, char **argv);         // eval/cli_synth.c
int pad_cli_run(int argc, char **argv);           // eval/cli_run.c
int pad_cli_predict(int argc, char **argv);       // eval/cli_run.c
int pad_cli_report(int argc, char **argv);        // eval/cli_run.c

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_CLI_H
