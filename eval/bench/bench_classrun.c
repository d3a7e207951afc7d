/* bench_classrun.c - the cost of one class of `promptad run` under the official protocol, stage by stage, on a
 * class-sized synthetic problem: a full-size ViT-B-16-plus-240 with random weights, n_test random test images (half
 * of them anomalous, with elliptic ground-truth regions at R x R), k random shots, and per task (cls, seg) 100
 * epochs of prompt training with the per-epoch evaluation that selects the best epoch (text vectors, text scores,
 * for seg the fused, upsampled and smoothed maps and the pixel AUROC on the GPU; for cls the image scores and the
 * image AUROC), then the final evaluation as eval/run.c does it (CPU reference metrics). The work per stage is
 * the work eval/run.c queues (same library calls, same order); image decoding and file writing are not included.
 * Not a test: eval/bench_gpu.sh runs it and projects the full sweep from its figures.
 *
 *   build/bench_classrun [--device cuda|cpu] [--n-test 200] [--res 400] [--shots 4] [--epochs 100] [--batch 64]
 *                        [--tasks cls,seg] [--class bottle] [--vocab FILE] [--graphs] [--math fp32|tf32|bf16]
 *                        [--kernels safe|fast] [--fp16 0|1] [--tag WORD]
 *
 * --vocab: the CLIP BPE vocabulary (default: $PROMPTAD_VOCAB, then weights/); without it a byte-level vocabulary
 * is used and the prompts are several times longer than with the real one (the line says vocab=bytes).
 * Prints "stage <name> <seconds>" lines, then one summary line "classrun key=value ..." with every figure
 * (seconds; *_epoch_ms per epoch), which eval/bench_gpu.sh parses. */
#include "backend.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "predict.h"
#include "prompt.h"
#include "prompt_set.h"
#include "score.h"
#include "tokenizer.h"
#include "vit.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t g_rng = 88172645463325252ull;
static float frand(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((double)(g_rng >> 11) / 9007199254740992.0);
}

static int usage(void) {
    fprintf(stderr, "usage: bench_classrun [--device cuda|cpu] [--n-test N] [--res R] [--shots K] [--epochs E] "
                    "[--batch B] [--tasks cls,seg] [--class NAME] [--vocab FILE] [--graphs] [--math fp32|tf32|bf16] "
                    "[--kernels safe|fast] [--fp16 0|1] [--tag WORD]\n");
    return 2;
}

#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        pad_status st_ = (expr);                                                                                       \
        if (st_ != PAD_OK) {                                                                                           \
            fprintf(stderr, "bench_classrun: %s failed: %s\n", #expr, pad_status_str(st_));                            \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

static void stage(const char *name, double s) {
    printf("stage %-28s %9.4f s\n", name, s);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *device = "cuda", *tasks_s = "cls,seg", *cls_name = "bottle", *vocab = NULL, *tag = "classrun";
    const char *math_s = "fp32", *kernels_s = "safe";
    int n_test = 200, R = 400, k = 4, epochs = 100, batch = 64, fp16 = 1;
    bool graphs = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--graphs")) {
            graphs = true;
            continue;
        }
        if (i + 1 >= argc) return usage();
        const char *o = argv[i], *v = argv[++i];
        if (!strcmp(o, "--device"))
            device = v;
        else if (!strcmp(o, "--n-test"))
            n_test = atoi(v);
        else if (!strcmp(o, "--res"))
            R = atoi(v);
        else if (!strcmp(o, "--shots"))
            k = atoi(v);
        else if (!strcmp(o, "--epochs"))
            epochs = atoi(v);
        else if (!strcmp(o, "--batch"))
            batch = atoi(v);
        else if (!strcmp(o, "--tasks"))
            tasks_s = v;
        else if (!strcmp(o, "--class"))
            cls_name = v;
        else if (!strcmp(o, "--vocab"))
            vocab = v;
        else if (!strcmp(o, "--math"))
            math_s = v;
        else if (!strcmp(o, "--kernels"))
            kernels_s = v;
        else if (!strcmp(o, "--fp16"))
            fp16 = atoi(v);
        else if (!strcmp(o, "--tag"))
            tag = v;
        else
            return usage();
    }
    pad_backend_kind kind;
    pad_math_mode math;
    if (n_test < 2 || R < 16 || k < 1 || epochs < 1 || batch < k || pad_backend_kind_parse(device, &kind) != PAD_OK ||
        pad_math_mode_parse(math_s, &math) != PAD_OK || (strcmp(kernels_s, "safe") && strcmp(kernels_s, "fast")))
        return usage();
    const bool do_cls = strstr(tasks_s, "cls") != NULL, do_seg = strstr(tasks_s, "seg") != NULL;
    pad_log_set_level(PAD_LOG_LEVEL_WARN);

    const double t_all = pad_now();
    double t0 = pad_now();
    pad_backend *be = NULL;
    CHECK(pad_backend_init(&be, kind, 0));
    pad_backend_set_fast_kernels(be, !strcmp(kernels_s, "fast"));
    const bool cuda = pad_backend_get_kind(be) == PAD_BACKEND_CUDA;
    // tokenizer: the real vocabulary when found, else bytes
    char vpath[4096] = "";
    bool bytes = false;
    if (vocab)
        snprintf(vpath, sizeof vpath, "%s", vocab);
    else if (pad_tokenizer_find_vocab(vpath, sizeof vpath, NULL) != PAD_OK) {
        snprintf(vpath, sizeof vpath, "/tmp/bench_classrun_vocab_%ld.txt.gz", (long)getpid());
        CHECK(pad_tokenizer_write_byte_vocab(vpath));
        bytes = true;
    }
    pad_tokenizer *tok = NULL;
    CHECK(pad_tokenizer_load(&tok, vpath));
    if (bytes) remove(vpath);
    pad_prompt_set *set = NULL;
    pad_prompt_class pcls;
    CHECK(pad_prompt_set_open(&set, "official"));
    CHECK(pad_prompt_set_class(set, cls_name, &pcls));
    pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_B16_PLUS_240);
    cfg.text.vocab = pad_tokenizer_vocab_size(tok);
    pad_clip_weights *hw = NULL, *w = NULL;
    CHECK(pad_weights_make_random(&hw, &cfg, 11));
    CHECK(pad_weights_to_backend(hw, be, &w));
    const int S = cfg.vision.image_size, G = cfg.vision.grid, P = G * G, E = cfg.embed_dim, D = cfg.vision.width;
    pad_vit_params vp = pad_vit_default_params();
    vp.max_batch = batch;
    pad_vit *vit = NULL;
    CHECK(pad_vit_create(&vit, be, w, &vp));
    // the ground truth: labels (every other image anomalous) and elliptic regions at R x R
    uint8_t *labels = malloc((size_t)n_test), *masks = calloc((size_t)n_test * R * R, 1);
    for (int i = 0; i < n_test; i++) {
        labels[i] = (uint8_t)(i % 2);
        if (!labels[i]) continue;
        const float cy = frand(0, (float)R), cx = frand(0, (float)R), ry = frand(4, R / 5.0f), rx = frand(4, R / 5.0f);
        for (int y = 0; y < R; y++)
            for (int x = 0; x < R; x++) {
                const float dy = (y - cy) / ry, dx = (x - cx) / rx;
                if (dy * dy + dx * dx <= 1.0f) masks[((size_t)i * R + y) * R + x] = 1;
            }
    }
    pad_metrics_gt *gt = NULL;
    pad_metrics_gpu *gt_gpu = NULL;
    CHECK(pad_metrics_gt_init(&gt, masks, n_test, R, R));
    if (cuda) CHECK(pad_metrics_gpu_init(&gt_gpu, gt, be));
    CHECK(pad_backend_sync(be));
    const double t_setup = pad_now() - t0;
    stage("setup (model, gt labelling)", t_setup);

    // stage: encode the test set (upload per batch + forward), as encode_images
    const size_t per = 3 * (size_t)S * S;
    float *pix_h = malloc((size_t)batch * per * sizeof(float)), *pix = NULL;
    for (size_t i = 0; i < (size_t)batch * per; i++)
        pix_h[i] = frand(-2, 2);
    CHECK(pad_buf_from_host(be, &pix, pix_h, (size_t)batch * per));
    float *cls_d = pad_buf_alloc(be, (size_t)n_test * E * 4), *tok_d = pad_buf_alloc(be, (size_t)n_test * P * E * 4);
    float *mid_d = pad_buf_alloc(be, (size_t)2 * n_test * P * D * 4);
    if (!cls_d || !tok_d || !mid_d) return 1;
    const size_t nPD = (size_t)n_test * P * D;
    pad_backend_set_math(be, math);
    { // warm-up forward (cuBLAS heuristics, module loading), not timed
        pad_vit_out o = {cls_d, tok_d, mid_d, mid_d + nPD};
        CHECK(pad_vit_forward(vit, pix, 1, &o));
        CHECK(pad_backend_sync(be));
    }
    t0 = pad_now();
    for (int c0 = 0; c0 < n_test; c0 += batch) {
        const int b = n_test - c0 < batch ? n_test - c0 : batch;
        CHECK(pad_buf_upload(be, pix, pix_h, (size_t)b * per * sizeof(float)));
        pad_vit_out o = {cls_d + (size_t)c0 * E, tok_d + (size_t)c0 * P * E, mid_d + (size_t)c0 * P * D,
                         mid_d + nPD + (size_t)c0 * P * D};
        CHECK(pad_vit_forward(vit, pix, b, &o));
    }
    CHECK(pad_backend_sync(be));
    const double t_enc = pad_now() - t0;
    stage("encode test set", t_enc);
    // stage: the shots (encoded, downloaded to the host cache and uploaded again, as shot_features/upload_shots)
    t0 = pad_now();
    float *sh_cls = pad_buf_alloc(be, (size_t)k * E * 4), *sh_tok = pad_buf_alloc(be, (size_t)k * P * E * 4);
    float *sh_mid = pad_buf_alloc(be, (size_t)2 * k * P * D * 4);
    float *host_cache = malloc((size_t)k * P * (E + 2 * D) * 4);
    {
        CHECK(pad_buf_upload(be, pix, pix_h, (size_t)k * per * sizeof(float)));
        pad_vit_out o = {sh_cls, sh_tok, sh_mid, sh_mid + (size_t)k * P * D};
        CHECK(pad_vit_forward(vit, pix, k, &o)); // k <= batch
        CHECK(pad_buf_download(be, host_cache, sh_mid, (size_t)2 * k * P * D * 4));
        CHECK(pad_buf_upload(be, sh_mid, host_cache, (size_t)2 * k * P * D * 4));
    }
    pad_backend_set_math(be, PAD_MATH_FP32);
    CHECK(pad_backend_sync(be));
    const double t_shots = pad_now() - t0;
    stage("encode shots", t_shots);
    // stage: memory bank, V, the cls pixel maps bilinear(V) and their CPU metrics (visual_scores)
    t0 = pad_now();
    CHECK(pad_score_normalize(be, mid_d, 2 * n_test * P, D));
    pad_bank *bank = NULL;
    CHECK(pad_bank_init(&bank, be, sh_mid, sh_mid + (size_t)k * P * D, k, P, D));
    pad_score_cfg scfg = pad_score_cfg_default(n_test, G, R);
    scfg.fp16 = fp16 != 0;
    scfg.graphs = graphs;
    pad_scorer *sc = NULL;
    CHECK(pad_scorer_init(&sc, be, &scfg));
    float *V_host = malloc((size_t)n_test * P * 4), *maps_host = malloc((size_t)n_test * R * R * 4);
    CHECK(pad_scorer_visual(sc, bank, mid_d, mid_d + nPD, n_test));
    CHECK(pad_buf_download(be, V_host, sc->V, (size_t)n_test * P * 4));
    const double t_v = pad_now() - t0;
    double t_vmaps = 0;
    if (do_cls) {
        t0 = pad_now();
        pad_pixel_metrics vm;
        CHECK(pad_scorer_visual_maps(sc, n_test));
        CHECK(pad_buf_download(be, maps_host, sc->maps, (size_t)n_test * R * R * 4));
        CHECK(pad_metrics_pixel(gt, maps_host, 0.3, PAD_METRICS_ALL, &vm));
        t_vmaps = pad_now() - t0;
    }
    stage("bank + V", t_v);
    stage("cls pixel maps + CPU metrics", t_vmaps);

    // per task: 100 epochs of training with the per-epoch evaluation, then the final evaluation
    double t_train[2] = {0, 0}, t_tvec[2] = {0, 0}, t_eval[2] = {0, 0}, t_final[2] = {0, 0}, t_unit[2] = {0, 0};
    long replays[2] = {0, 0};
    int n_prompts[2] = {0, 0}, seq_len[2] = {0, 0};
    float *tvec = pad_buf_alloc(be, (size_t)2 * E * 4), *scores = malloc((size_t)n_test * 4);
    float *tvec_host = malloc((size_t)2 * E * 4);
    for (int task = 0; task < 2; task++) {
        if (!(task ? do_seg : do_cls)) continue;
        const double tu = pad_now();
        pad_prompt_opts po = pad_prompt_opts_default(task ? PAD_TASK_SEG : PAD_TASK_CLS);
        pad_prompt_learner *pl = NULL;
        CHECK(pad_prompt_learner_create(&pl, w, tok, &pcls, &po));
        pad_prompt_learner_set_graphs(pl, graphs);
        n_prompts[task] = pad_prompt_learner_counts(pl, NULL, NULL, NULL);
        seq_len[task] = pad_prompt_learner_seq_len(pl);
        if (task == 0)
            CHECK(pad_prompt_learner_set_images(pl, sh_cls, k, 1));
        else
            CHECK(pad_prompt_learner_set_images(pl, sh_tok, k, P));
        CHECK(pad_prompt_learner_init_random(pl, 1234 + (uint64_t)task));
        double best = -INFINITY;
        for (int e = 0; e < epochs; e++) {
            double ta = pad_now();
            pad_prompt_loss loss;
            CHECK(pad_prompt_learner_train_epoch(pl, e, epochs, &loss)); // ends with the loss download (a sync)
            double tb = pad_now();
            CHECK(pad_prompt_learner_text_vectors(pl, tvec));
            CHECK(pad_backend_sync(be));
            double tc = pad_now();
            double metric = NAN;
            if (task == 0) { // eval_select, cls
                CHECK(pad_scorer_text(sc, cls_d, NULL, tvec, tvec + E, 4.6051702f, n_test, E));
                CHECK(pad_scorer_image_scores(sc, n_test, scores));
                pad_image_metrics im;
                CHECK(pad_metrics_image(scores, labels, n_test, &im));
                metric = im.auroc;
            } else { // eval_select, seg
                CHECK(pad_scorer_text(sc, NULL, tok_d, tvec, tvec + E, 4.6051702f, n_test, E));
                CHECK(pad_scorer_pixel_maps(sc, n_test));
                pad_pixel_metrics pm;
                CHECK(pad_backend_sync(be));
                if (gt_gpu) {
                    CHECK(pad_metrics_gpu_pixel(gt_gpu, sc->maps, 0.3, 0, &pm));
                } else {
                    CHECK(pad_buf_download(be, maps_host, sc->maps, (size_t)n_test * R * R * 4));
                    CHECK(pad_metrics_pixel(gt, maps_host, 0.3, 0, &pm));
                }
                metric = pm.auroc;
            }
            if (metric > best) { // the kept epoch's vectors come to the host (as run_unit)
                best = metric;
                CHECK(pad_buf_download(be, tvec_host, tvec, (size_t)2 * E * 4));
            }
            double td = pad_now();
            t_train[task] += tb - ta;
            t_tvec[task] += tc - tb;
            t_eval[task] += td - tc;
        }
        replays[task] = pad_prompt_learner_graph_replays(pl);
        // final evaluation (eval_final): the CPU reference metrics
        double tf = pad_now();
        if (task == 0) {
            CHECK(pad_scorer_text(sc, cls_d, NULL, tvec, tvec + E, 4.6051702f, n_test, E));
            CHECK(pad_scorer_image_scores(sc, n_test, scores));
        } else {
            CHECK(pad_scorer_text(sc, NULL, tok_d, tvec, tvec + E, 4.6051702f, n_test, E));
            CHECK(pad_scorer_pixel_maps(sc, n_test));
            CHECK(pad_buf_download(be, maps_host, sc->maps, (size_t)n_test * R * R * 4));
            const size_t RR = (size_t)R * R;
            for (int i = 0; i < n_test; i++) {
                float mx = maps_host[i * RR];
                for (size_t p = 1; p < RR; p++)
                    mx = maps_host[i * RR + p] > mx ? maps_host[i * RR + p] : mx;
                scores[i] = mx;
            }
            pad_pixel_metrics pm;
            CHECK(pad_metrics_pixel(gt, maps_host, 0.3, PAD_METRICS_ALL, &pm));
        }
        pad_image_metrics im;
        CHECK(pad_metrics_image(scores, labels, n_test, &im));
        double thr, f1, pr, rc;
        pad_threshold_max_f1(scores, labels, n_test, &thr, &f1, &pr, &rc);
        t_final[task] = pad_now() - tf;
        t_unit[task] = pad_now() - tu;
        pad_prompt_learner_free(pl);
        char nm[64];
        snprintf(nm, sizeof nm, "%s: %d epochs train", task ? "seg" : "cls", epochs);
        stage(nm, t_train[task]);
        snprintf(nm, sizeof nm, "%s: text vectors", task ? "seg" : "cls");
        stage(nm, t_tvec[task]);
        snprintf(nm, sizeof nm, "%s: per-epoch scoring+AUROC", task ? "seg" : "cls");
        stage(nm, t_eval[task]);
        snprintf(nm, sizeof nm, "%s: final evaluation (CPU)", task ? "seg" : "cls");
        stage(nm, t_final[task]);
        snprintf(nm, sizeof nm, "%s: unit total", task ? "seg" : "cls");
        stage(nm, t_unit[task]);
    }
    const double total = pad_now() - t_all;
    stage("total", total);
    printf("%s device=%s graphs=%d math=%s kernels=%s vocab=%s n_test=%d res=%d shots=%d epochs=%d batch=%d "
           "cls_prompts=%d cls_len=%d seg_prompts=%d seg_len=%d setup_s=%.4f encode_test_s=%.4f "
           "encode_img_per_s=%.1f shots_s=%.4f visual_s=%.4f cls_vmaps_s=%.4f "
           "cls_train_s=%.4f cls_tvec_s=%.4f cls_eval_s=%.4f cls_final_s=%.4f cls_unit_s=%.4f "
           "seg_train_s=%.4f seg_tvec_s=%.4f seg_eval_s=%.4f seg_final_s=%.4f seg_unit_s=%.4f "
           "cls_epoch_ms=%.3f seg_epoch_ms=%.3f replays_cls=%ld replays_seg=%ld total_s=%.4f\n",
           tag, be->ops->name, graphs, pad_math_mode_str(math), be->fast_kernels ? "fast" : "safe",
           bytes ? "bytes" : "bpe", n_test, R, k, epochs, batch, n_prompts[0], seq_len[0], n_prompts[1], seq_len[1],
           t_setup, t_enc, n_test / t_enc, t_shots, t_v, t_vmaps, t_train[0], t_tvec[0], t_eval[0], t_final[0],
           t_unit[0], t_train[1], t_tvec[1], t_eval[1], t_final[1], t_unit[1],
           1e3 * (t_train[0] + t_tvec[0] + t_eval[0]) / epochs, 1e3 * (t_train[1] + t_tvec[1] + t_eval[1]) / epochs,
           replays[0], replays[1], total);
    fflush(stdout);
    free(scores);
    free(tvec_host);
    pad_buf_free(be, tvec);
    free(V_host);
    free(maps_host);
    free(host_cache);
    free(pix_h);
    free(labels);
    free(masks);
    pad_scorer_free(sc);
    pad_bank_free(bank);
    pad_buf_free(be, pix);
    pad_buf_free(be, cls_d);
    pad_buf_free(be, tok_d);
    pad_buf_free(be, mid_d);
    pad_buf_free(be, sh_cls);
    pad_buf_free(be, sh_tok);
    pad_buf_free(be, sh_mid);
    pad_metrics_gpu_free(gt_gpu);
    pad_metrics_gt_free(gt);
    pad_vit_free(vit);
    pad_weights_free(w);
    pad_weights_free(hw);
    pad_prompt_set_free(set);
    pad_tokenizer_free(tok);
    pad_backend_free(be);
    return 0;
}
