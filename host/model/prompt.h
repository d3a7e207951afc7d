/* prompt.h - PromptAD's prompt learner (promptad_spec.md §3-§5.1; PromptAD/model.py PromptLearner, train_cls.py /
 * train_seg.py): learnable normal and abnormal context vectors, the NP / MAP / LAP prompts built around them, the
 * three losses (contrastive CE with the raw logit_scale, EAM, MAP/LAP alignment), SGD with momentum and weight decay
 * under a cosine learning-rate schedule, and the two inference text vectors t_n, t_a.
 *
 * Prompts (rows of one text batch, in this order):
 *   NP  row p              "N N N N {name}."                       [SOT] normal_ctx[p] suffix          p < n_pro
 *   MAP row s*n_pro + p    "N N N N " + state_s.format(name) + "." [SOT] normal_ctx[p] suffix          s < n_MAP
 *   LAP row i              "N N N N A {name}."                     [SOT] normal_ctx[i % n_pro]
 *                                                                  abnormal_ctx[i % n_pro_ab] suffix   i <
 * n_pro*n_pro_ab
 * ("A" after the name, "N N N N {name} A.", with PAD_LAP_AFTER_NAME.) Prefix and suffix rows are the token
 * embeddings of the tokenised templates; the placeholder rows are replaced by the learned vectors.
 *
 * Everything of a training step runs on the backend (text forward, loss, backward, SGD); nothing is allocated per
 * step and, on CUDA, nothing is copied to the host unless asked (pad_prompt_learner_loss, _get_*). Deterministic.
 *
 * Usage:
 *     pad_prompt_opts o = pad_prompt_opts_default(PAD_TASK_CLS);
 *     pad_prompt_learner_create(&pl, w, tok, &cls, &o);          // w on a backend; cls from prompt_set.h
 *     pad_prompt_learner_set_ctx(pl, normal_ctx, abnormal_ctx);  // or pad_prompt_learner_init_random
 *     pad_prompt_learner_set_images(pl, feats, B, T);            // cls: (B,1,E); seg: (B,G*G,E), raw
 *     for (e = 0; e < N; e++) pad_prompt_learner_train_epoch(pl, e, N, &loss);
 *     pad_prompt_learner_text_vectors(pl, tvec);                 // (2,E): t_n, t_a
 */
#ifndef PAD_HOST_PROMPT_H
#define PAD_HOST_PROMPT_H

#include "backend.h"
#include "prompt_set.h"
#include "tokenizer.h"
#include "weights.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pad_prompt_task {
    PAD_TASK_CLS = 0, // one image feature per shot (the CLS token), train_cls.py
    PAD_TASK_SEG = 1, // one feature per patch token (V-V tokens), train_seg.py
} pad_prompt_task;

#define PAD_N_TASKS 2

// The one name table of the tasks: "cls" and "seg" (used for parsing, folder names, files and messages).
const char *pad_prompt_task_name(pad_prompt_task task);
// Parses "cls" or "seg". PAD_ERR_INVALID_ARG (logged, naming the value) otherwise.
pad_status pad_prompt_task_parse(const char *s, pad_prompt_task *out);

typedef enum pad_eam_mode {
    PAD_EAM_TOKEN_AXIS = 0, // SEG as in the official code: distances summed over the token axis (dim 1) (default)
    PAD_EAM_PER_TOKEN = 1,  // SEG, the evident intent: one hinge per patch token, distances over channels
} pad_eam_mode;

typedef enum pad_lap_position {
    PAD_LAP_BEFORE_NAME = 0, // "N N N N A {name}." as in the official code (default)
    PAD_LAP_AFTER_NAME = 1,  // "N N N N {name} A." as the paper's figure shows
} pad_lap_position;

typedef struct pad_prompt_opts {
    pad_prompt_task task;
    int n_ctx;            // learned normal context vectors per prompt (4)
    int n_ctx_ab;         // learned anomaly vectors per LAP (1)
    int n_pro;            // normal prompts (3 for cls, 1 for seg)
    int n_pro_ab;         // learned anomaly vector sets (4)
    float lr;             // initial learning rate (0.002)
    float lr_min;         // eta_min of the cosine schedule (1e-5)
    float momentum;       // 0.9
    float weight_decay;   // 5e-4
    float lambda_align;   // weight of the MAP/LAP alignment loss (0.001)
    float margin;         // EAM margin (0)
    bool exp_logit_scale; // false (official): multiply cosines by the stored logit_scale; true: by exp(logit_scale)
    pad_eam_mode eam;     // SEG only
    pad_lap_position lap; // where the learned anomaly vectors sit in the LAP template
} pad_prompt_opts;

// The official defaults for a task (promptad_spec.md §1.1): n_ctx 4, n_ctx_ab 1, n_pro 3 (cls) / 1 (seg),
// n_pro_ab 4, lr 0.002 -> 1e-5, momentum 0.9, weight decay 5e-4, lambda 0.001, margin 0, raw logit_scale,
// token-axis EAM, LAP vector before the class name.
pad_prompt_opts pad_prompt_opts_default(pad_prompt_task task);

// Learning rate of epoch e (0-based) of n_epochs: lr_min + (lr - lr_min) (1 + cos(pi e / n_epochs)) / 2
// (torch CosineAnnealingLR with T_max = n_epochs, stepped once per epoch).
float pad_prompt_lr(const pad_prompt_opts *o, int epoch, int n_epochs);

// Loss terms of one evaluation: total = ce + eam + lambda_align * align.
typedef struct pad_prompt_loss {
    float total, ce, eam, align;
} pad_prompt_loss;

typedef struct pad_prompt_learner pad_prompt_learner;

// Builds the learner for class `cls`: tokenises the NP/MAP/LAP templates with `tok` (context 77), checks that every
// placeholder is one token at the expected position, embeds the templates once (cut after the longest EOT) and
// allocates the text encoder, the parameters (zero until set), their gradients and momentum buffers on w's
// backend. `w` (weights on a backend, text tower present) must outlive the learner; `tok` and `cls` are only used
// during the call. Errors: bad options, a template longer than 77 tokens (names it), out of memory.
pad_status pad_prompt_learner_create(pad_prompt_learner **out, const pad_clip_weights *w, pad_tokenizer *tok,
                                     const pad_prompt_class *cls, const pad_prompt_opts *opts);
void pad_prompt_learner_free(pad_prompt_learner *pl); // NULL is a no-op

// Number of prompts of each kind: n_np = n_pro, n_map = n_MAP * n_pro, n_lap = n_pro * n_pro_ab; returns the total.
// Any pointer may be NULL.
int pad_prompt_learner_counts(const pad_prompt_learner *pl, int *n_np, int *n_map, int *n_lap);
// Tokens per sequence after the cut (longest EOT + 1) and the shapes of the parameters.
int pad_prompt_learner_seq_len(const pad_prompt_learner *pl);
const pad_prompt_opts *pad_prompt_learner_opts(const pad_prompt_learner *pl);
int pad_prompt_learner_width(const pad_prompt_learner *pl); // W, the text width (the last dim of both parameters)

// Sets the parameters from host arrays normal_ctx(n_pro, n_ctx, W) and abnormal_ctx(n_pro_ab, n_ctx_ab, W) and
// restarts the optimizer (momentum cleared; the next step is a "first" step).
pad_status pad_prompt_learner_set_ctx(pad_prompt_learner *pl, const float *normal_ctx, const float *abnormal_ctx);
// Same with N(0, 0.02^2) values from a deterministic generator (splitmix64 + Box-Muller) seeded by `seed`.
pad_status pad_prompt_learner_init_random(pad_prompt_learner *pl, uint64_t seed);
// Downloads the parameters into host arrays of the shapes above (either may be NULL).
pad_status pad_prompt_learner_get_ctx(pad_prompt_learner *pl, float *normal_ctx, float *abnormal_ctx);

// Sets the image features of the shots: feats(B, T, E) backend memory, raw; they are copied and each row is
// L2-normalised (PromptAD encode_image). cls: T must be 1 (one CLS feature per shot); seg: T = G*G patch tokens.
// Allocates the loss buffers for this size (call once per shot set, not per step).
pad_status pad_prompt_learner_set_images(pad_prompt_learner *pl, const float *feats, int B, int T);

// One evaluation of the loss at the current parameters and its gradients w.r.t. both parameters (kept inside).
// When pad_prompt_learner_text_vectors ran at the same parameters (no set_ctx or step since), its text forward is
// reused instead of being recomputed: the same ops on the same inputs, so the results are the same bits.
pad_status pad_prompt_learner_loss_grad(pad_prompt_learner *pl);
// Downloads the loss terms of the last pad_prompt_learner_loss_grad.
pad_status pad_prompt_learner_loss(pad_prompt_learner *pl, pad_prompt_loss *out);
// Downloads the gradients of the last pad_prompt_learner_loss_grad into host arrays (either may be NULL).
pad_status pad_prompt_learner_get_grad(pad_prompt_learner *pl, float *dnormal_ctx, float *dabnormal_ctx);
// One SGD step (torch.optim.SGD: g = grad + wd p; buf = first ? g : momentum buf + g; p -= lr buf) with the
// gradients of the last pad_prompt_learner_loss_grad.
pad_status pad_prompt_learner_step(pad_prompt_learner *pl, float lr);
// One training epoch as the official code runs it: loss_grad, then one step with lr = pad_prompt_lr(e, n_epochs).
// When loss is not NULL it receives the loss terms computed before the step (one small download).
pad_status pad_prompt_learner_train_epoch(pad_prompt_learner *pl, int epoch, int n_epochs, pad_prompt_loss *loss);

// The two inference text vectors at the current parameters (promptad_spec.md §5.1): out(2, E) backend memory,
// row 0 t_n = normalize(mean of the NP features), row 1 t_a = normalize(mean of the MAP and LAP features).
// Runs one text forward (reused by the next loss_grad); does not disturb the gradients of the last loss_grad.
pad_status pad_prompt_learner_text_vectors(pad_prompt_learner *pl, float *out);

// On: loss_grad and text_vectors queue their ops through CUDA graphs (pad_graph_run: eager the first time, captured
// the second, replayed after; any capture failure falls back to eager with one warning). Same results as eager.
// No effect on backends without graphs (CPU). Off by default.
void pad_prompt_learner_set_graphs(pad_prompt_learner *pl, bool on);
// Graph replays so far (0 when graphs are off or unavailable).
long pad_prompt_learner_graph_replays(const pad_prompt_learner *pl);

#ifdef __cplusplus
}
#endif

#endif // PAD_HOST_PROMPT_H
