/* train.c - parity of the prompt-training step over a few epochs (tiny fixtures and full size) and of the scorer,
 * each also replayed through CUDA graphs (bit for bit against the eager runs). */
#include "parity.h"

#include "fsutil.h"
#include "metrics.h"
#include "prompt.h"
#include "prompt_set.h"
#include "score.h"
#include "st_file.h"
#include "text.h"
#include "tokenizer.h"
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// prompt learning

typedef struct side {
    pad_backend *be;
    pad_clip_weights *w;
    pad_prompt_learner *pl;
    float *img_feats;
} side;

static pad_tokenizer *byte_tokenizer(void) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/parity_main_vocab_%ld.txt.gz", (long)getpid());
    pad_tokenizer *tok = NULL;
    if (pad_tokenizer_write_byte_vocab(path) != PAD_OK || pad_tokenizer_load(&tok, path) != PAD_OK) tok = NULL;
    remove(path);
    return tok;
}

static void side_free(side *s) {
    pad_buf_free(s->be, s->img_feats);
    pad_prompt_learner_free(s->pl);
    pad_weights_free(s->w);
    memset(s, 0, sizeof *s);
}

// CPU and GPU learners from the same host weights, image features (B, T, E) and initial context.
static pad_status sides_init(side s[2], const pad_clip_weights *hw, pad_tokenizer *tok, const pad_prompt_class *cls,
                             const pad_prompt_opts *o, const float *img_feats, int B, int T, const float *n0,
                             const float *a0) {
    pad_backend *bes[2] = {pg.cpu, pg.gpu};
    const int E = hw->cfg.embed_dim;
    for (int k = 0; k < 2; k++) {
        s[k].be = bes[k];
        PAD_TRY(pad_weights_to_backend(hw, s[k].be, &s[k].w));
        PAD_TRY(pad_prompt_learner_create(&s[k].pl, s[k].w, tok, cls, o));
        PAD_TRY(pad_buf_from_host(s[k].be, &s[k].img_feats, img_feats, (size_t)B * T * E));
        PAD_TRY(pad_prompt_learner_set_images(s[k].pl, s[k].img_feats, B, T));
        PAD_TRY(pad_prompt_learner_set_ctx(s[k].pl, n0, a0));
    }
    return PAD_OK;
}

// loss + gradients, then `epochs` epochs, then the text vectors: GPU against CPU (and the fixture when given).
static void learner_parity(const char *name, const pad_clip_weights *hw, pad_tokenizer *tok,
                           const pad_prompt_class *cls, pad_prompt_task task, const float *img_feats, int B, int T,
                           const float *n0, const float *a0, int epochs, const float *nw, const float *aw) {
    pad_prompt_opts o = pad_prompt_opts_default(task);
    const int W = hw->cfg.text.width, E = hw->cfg.embed_dim;
    const size_t nn = (size_t)o.n_pro * o.n_ctx * W, na = (size_t)o.n_pro_ab * o.n_ctx_ab * W;
    side s[2];
    memset(s, 0, sizeof s);
    float *gr[2][2] = {{0}}, *p[2][2] = {{0}}, *tv[2] = {0};
    float *dtv[2] = {0};
    pad_prompt_loss L[2];
    char n2[200];
    TRY_OR_FAIL(name, sides_init(s, hw, tok, cls, &o, img_feats, B, T, n0, a0));
    double ms = 0;
    for (int k = 0; k < 2; k++) {
        gr[k][0] = malloc(nn * 4);
        gr[k][1] = malloc(na * 4);
        p[k][0] = malloc(nn * 4);
        p[k][1] = malloc(na * 4);
        tv[k] = malloc((size_t)2 * E * 4);
        double t0 = pad_now();
        TRY_OR_FAIL(name, pad_prompt_learner_loss_grad(s[k].pl));
        TRY_OR_FAIL(name, pad_prompt_learner_loss(s[k].pl, &L[k]));
        if (k == 1) ms = (pad_now() - t0) * 1e3;
        TRY_OR_FAIL(name, pad_prompt_learner_get_grad(s[k].pl, gr[k][0], gr[k][1]));
    }
    snprintf(n2, sizeof n2, "%s loss", name);
    check_rel(n2, &L[1].total, &L[0].total, 1, 1e-5, ms);
    snprintf(n2, sizeof n2, "%s grad normal_ctx", name);
    check_rel(n2, gr[1][0], gr[0][0], nn, 1e-4, ms);
    snprintf(n2, sizeof n2, "%s grad abnormal_ctx", name);
    check_rel(n2, gr[1][1], gr[0][1], na, 1e-4, ms);
    for (int k = 0; k < 2; k++) {
        TRY_OR_FAIL(name, pad_prompt_learner_set_ctx(s[k].pl, n0, a0));
        double t0 = pad_now();
        for (int e = 0; e < epochs; e++)
            TRY_OR_FAIL(name, pad_prompt_learner_train_epoch(s[k].pl, e, epochs, &L[k]));
        if (k == 1) ms = (pad_now() - t0) * 1e3;
        TRY_OR_FAIL(name, pad_prompt_learner_get_ctx(s[k].pl, p[k][0], p[k][1]));
        dtv[k] = (float *)pad_buf_alloc(s[k].be, (size_t)2 * E * 4);
        TRY_OR_FAIL(name, pad_prompt_learner_text_vectors(s[k].pl, dtv[k]));
        TRY_OR_FAIL(name, pad_buf_download(s[k].be, tv[k], dtv[k], (size_t)2 * E * 4));
    }
    snprintf(n2, sizeof n2, "%s %d epochs normal_ctx", name, epochs);
    check_rel(n2, p[1][0], p[0][0], nn, 1e-5, ms);
    snprintf(n2, sizeof n2, "%s %d epochs abnormal_ctx", name, epochs);
    check_rel(n2, p[1][1], p[0][1], na, 1e-5, ms);
    if (nw && aw) {
        snprintf(n2, sizeof n2, "%s %d epochs vs PyTorch fixture", name, epochs);
        check_rel(n2, p[1][0], nw, nn, 1e-4, ms);
        snprintf(n2, sizeof n2, "%s %d epochs vs PyTorch fixture (ab)", name, epochs);
        check_rel(n2, p[1][1], aw, na, 1e-4, ms);
    }
    snprintf(n2, sizeof n2, "%s text vectors", name);
    check_rel(n2, tv[1], tv[0], (size_t)2 * E, 1e-5, 0);
done:
    for (int k = 0; k < 2; k++) {
        if (dtv[k]) pad_buf_free(s[k].be, dtv[k]);
        side_free(&s[k]);
        for (int j = 0; j < 2; j++) {
            free(gr[k][j]);
            free(p[k][j]);
        }
        free(tv[k]);
    }
}

// The official protocol's epoch on the GPU with graphs against the same epochs eagerly: loss, step, text vectors,
// every epoch; the parameters, the losses and the vectors must be the same bits, and the graphs must have replayed.
static void learner_graphs(const char *name, const pad_clip_weights *hw, pad_tokenizer *tok,
                           const pad_prompt_class *cls, pad_prompt_task task, const float *img_feats, int B, int T,
                           const float *n0, const float *a0, int epochs) {
    pad_prompt_opts o = pad_prompt_opts_default(task);
    const int W = hw->cfg.text.width, E = hw->cfg.embed_dim;
    const size_t nn = (size_t)o.n_pro * o.n_ctx * W;
    pad_clip_weights *w = NULL;
    pad_prompt_learner *pl[2] = {NULL, NULL};
    float *img = NULL, *dtv = NULL;
    float *p[2] = {malloc(nn * 4), malloc(nn * 4)}, *tv[2] = {malloc((size_t)2 * E * 4), malloc((size_t)2 * E * 4)};
    float *loss[2] = {malloc((size_t)epochs * 4 * sizeof(float)), malloc((size_t)epochs * 4 * sizeof(float))};
    double ms[2] = {0, 0};
    long replays = 0;
    TRY_OR_FAIL(name, pad_weights_to_backend(hw, pg.gpu, &w));
    TRY_OR_FAIL(name, pad_buf_from_host(pg.gpu, &img, img_feats, (size_t)B * T * E));
    dtv = (float *)pad_buf_alloc(pg.gpu, (size_t)2 * E * 4);
    for (int k = 0; k < 2; k++) { // 0: eager, 1: graphs
        TRY_OR_FAIL(name, pad_prompt_learner_create(&pl[k], w, tok, cls, &o));
        pad_prompt_learner_set_graphs(pl[k], k == 1);
        TRY_OR_FAIL(name, pad_prompt_learner_set_images(pl[k], img, B, T));
        TRY_OR_FAIL(name, pad_prompt_learner_set_ctx(pl[k], n0, a0));
        double t0 = t_begin();
        for (int e = 0; e < epochs; e++) {
            pad_prompt_loss l;
            TRY_OR_FAIL(name, pad_prompt_learner_train_epoch(pl[k], e, epochs, &l));
            TRY_OR_FAIL(name, pad_prompt_learner_text_vectors(pl[k], dtv));
            memcpy(loss[k] + 4 * e, &l, sizeof(float) * 4);
        }
        ms[k] = t_end(t0);
        TRY_OR_FAIL(name, pad_prompt_learner_get_ctx(pl[k], p[k], NULL));
        TRY_OR_FAIL(name, pad_buf_download(pg.gpu, tv[k], dtv, (size_t)2 * E * 4));
    }
    replays = pad_prompt_learner_graph_replays(pl[1]);
    char n2[200];
    snprintf(n2, sizeof n2, "%s: %d epochs params", name, epochs);
    check_bits(n2, p[1], p[0], nn * 4, ms[1]);
    snprintf(n2, sizeof n2, "%s: losses", name);
    check_bits(n2, loss[1], loss[0], (size_t)epochs * 4 * sizeof(float), 0);
    snprintf(n2, sizeof n2, "%s: text vectors", name);
    check_bits(n2, tv[1], tv[0], (size_t)2 * E * 4, 0);
    snprintf(n2, sizeof n2, "%s: replays", name);
    if (pg.twin)
        line("SKIP", n2, "CPU twin: no graphs");
    else
        line(replays >= epochs ? "PASS" : "FAIL", n2, "%ld graph launches in %d epochs; eager %.2f ms, graphs %.2f ms",
             replays, epochs, ms[0], ms[1]);
done:
    for (int k = 0; k < 2; k++) {
        pad_prompt_learner_free(pl[k]);
        free(p[k]);
        free(tv[k]);
        free(loss[k]);
    }
    pad_buf_free(pg.gpu, img);
    pad_buf_free(pg.gpu, dtv);
    pad_weights_free(w);
}

void prompt_checks(void) {
    pad_tokenizer *tok = byte_tokenizer();
    pad_prompt_set *set = NULL;
    if (!tok || pad_prompt_set_open(&set, "official") != PAD_OK) {
        fail("prompt", "cannot load the byte vocabulary or the official prompt set");
        pad_tokenizer_free(tok);
        return;
    }
    // the tiny fixtures of the Criterion tests (cls on bottle, seg on metal_nut)
    static const char *const files[2] = {"prompt_cls.safetensors", "prompt_seg.safetensors"};
    static const char *const keys[2] = {"bottle", "metal_nut"};
    for (int t = 0; t < 2; t++) {
        char name[96];
        snprintf(name, sizeof name, "prompt/tiny %s", t ? "seg" : "cls");
        char gname[96];
        snprintf(gname, sizeof gname, "graphs/prompt tiny %s", t ? "seg" : "cls");
        if (!(selected(name) && path_on(false)) && !(selected(gname) && path_on(true))) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", PAD_FIXTURE_DIR, files[t]);
        pad_st_file *fx = NULL;
        pad_clip_weights *hw = NULL;
        float *img_feats = NULL, *n0 = NULL, *a0 = NULL, *nw = NULL, *aw = NULL;
        pad_prompt_class cls;
        TRY_OR_FAIL(name, pad_st_open(&fx, path));
        TRY_OR_FAIL(name, tiny514(&hw));
        TRY_OR_FAIL(name, pad_prompt_set_class(set, keys[t], &cls));
        const pad_st_tensor *ti = pad_st_find(fx, "image_features");
        if (!ti) {
            fail(name, "fixture without image_features");
            goto done;
        }
        const int B = (int)ti->shape[0], T = ti->ndim == 3 ? (int)ti->shape[1] : 1;
        TRY_OR_FAIL(name, pad_st_read_f32(fx, "image_features", -1, NULL, &img_feats, NULL));
        TRY_OR_FAIL(name, pad_st_read_f32(fx, "normal_ctx_init", -1, NULL, &n0, NULL));
        TRY_OR_FAIL(name, pad_st_read_f32(fx, "abnormal_ctx_init", -1, NULL, &a0, NULL));
        TRY_OR_FAIL(name, pad_st_read_f32(fx, "normal_ctx_trained", -1, NULL, &nw, NULL));
        TRY_OR_FAIL(name, pad_st_read_f32(fx, "abnormal_ctx_trained", -1, NULL, &aw, NULL));
        if (selected(name) && path_on(false))
            learner_parity(name, hw, tok, &cls, t ? PAD_TASK_SEG : PAD_TASK_CLS, img_feats, B, T, n0, a0, 3, nw, aw);
        if (selected(gname) && path_on(true))
            learner_graphs(gname, hw, tok, &cls, t ? PAD_TASK_SEG : PAD_TASK_CLS, img_feats, B, T, n0, a0, 6);
    done:
        free(img_feats);
        free(n0);
        free(a0);
        free(nw);
        free(aw);
        pad_weights_free(hw);
        pad_st_close(fx);
    }
    // full size: random ViT-B-16-plus-240, cls with 4 shots, seg with 2 shots x 225 tokens
    if (!pg.quick) {
        pad_clip_cfg cfg = pad_model_preset_cfg(PAD_MODEL_B16_PLUS_240);
        cfg.text.vocab = pad_tokenizer_vocab_size(tok); // the byte vocabulary (the architecture is unchanged)
        pad_clip_weights *hw = NULL;
        pad_prompt_class cls;
        if (pad_weights_make_random(&hw, &cfg, 7) == PAD_OK && pad_prompt_set_class(set, "bottle", &cls) == PAD_OK) {
            const int E = cfg.embed_dim, W = cfg.text.width;
            for (int t = 0; t < 2; t++) {
                char name[96], gname[96];
                snprintf(name, sizeof name, "prompt/B16+ %s", t ? "seg k2" : "cls k4");
                snprintf(gname, sizeof gname, "graphs/prompt B16+ %s", t ? "seg k2" : "cls k4");
                if (!(selected(name) && path_on(false)) && !(selected(gname) && path_on(true))) continue;
                const pad_prompt_opts o = pad_prompt_opts_default(t ? PAD_TASK_SEG : PAD_TASK_CLS);
                const int B = t ? 2 : 4, T = t ? 225 : 1;
                float *img_feats = rand_host((size_t)B * T * E, -1, 1);
                float *n0 = rand_host((size_t)o.n_pro * o.n_ctx * W, -0.04f, 0.04f);
                float *a0 = rand_host((size_t)o.n_pro_ab * o.n_ctx_ab * W, -0.04f, 0.04f);
                if (selected(name)) learner_parity(name, hw, tok, &cls, o.task, img_feats, B, T, n0, a0, 3, NULL, NULL);
                if (selected(gname)) learner_graphs(gname, hw, tok, &cls, o.task, img_feats, B, T, n0, a0, 8);
                free(img_feats);
                free(n0);
                free(a0);
            }
        } else {
            fail("prompt/B16+", "cannot make the model or find the class");
        }
        pad_weights_free(hw);
    }
    pad_prompt_set_free(set);
    pad_tokenizer_free(tok);
}

// ----------------------------------------------------------------------------
// scorer

typedef struct score_run {
    float *V, *maps, img[8], sT[8];
} score_run;

static pad_status score_side(pad_backend *be, bool fp16, bool graphs, int calls, const float *shots, const float *mid,
                             const float *cls, const float *tok, const float *tv, int k, int n, int E, int D, int R,
                             score_run *out, double *ms, long *replays) {
    const int G = 15, P = G * G;
    float *bshots = NULL, *bmid = NULL, *bcls = NULL, *btok = NULL, *btv = NULL;
    pad_bank *bank = NULL;
    pad_scorer *sc = NULL;
    pad_status st = PAD_OK;
    PAD_TRY_GOTO(st, pad_buf_from_host(be, &bshots, shots, (size_t)2 * k * P * D), end);
    PAD_TRY_GOTO(st, pad_buf_from_host(be, &bmid, mid, (size_t)2 * n * P * D), end);
    PAD_TRY_GOTO(st, pad_buf_from_host(be, &bcls, cls, (size_t)n * E), end);
    PAD_TRY_GOTO(st, pad_buf_from_host(be, &btok, tok, (size_t)n * P * E), end);
    PAD_TRY_GOTO(st, pad_buf_from_host(be, &btv, tv, (size_t)2 * E), end);
    PAD_TRY_GOTO(st, pad_score_normalize(be, btv, 2, E), end);
    PAD_TRY_GOTO(st, pad_score_normalize(be, bmid, 2 * n * P, D), end);
    PAD_TRY_GOTO(st, pad_bank_init(&bank, be, bshots, bshots + (size_t)k * P * D, k, P, D), end);
    pad_score_cfg cfg = pad_score_cfg_default(n, G, R);
    cfg.fp16 = fp16;
    cfg.chunk = 3;
    cfg.graphs = graphs;
    PAD_TRY_GOTO(st, pad_scorer_init(&sc, be, &cfg), end);
    PAD_TRY_GOTO(st, pad_scorer_visual(sc, bank, bmid, bmid + (size_t)n * P * D, n), end);
    pad_backend_sync(be);
    double t0 = pad_now();
    for (int c = 0; c < calls; c++) { // an epoch's evaluation, `calls` times (graphs: eager, capture, replays)
        PAD_TRY_GOTO(st, pad_scorer_text(sc, bcls, btok, btv, btv + E, 4.6051702f, n, E), end);
        PAD_TRY_GOTO(st, pad_scorer_pixel_maps(sc, n), end);
    }
    PAD_TRY_GOTO(st, pad_backend_sync(be), end);
    if (ms) *ms = (pad_now() - t0) * 1e3 / calls;
    if (replays) *replays = pad_graph_replays(sc->g_text) + pad_graph_replays(sc->g_maps);
    PAD_TRY_GOTO(st, pad_scorer_image_scores(sc, n, out->img), end);
    out->maps = malloc(sizeof(float) * n * R * R);
    out->V = malloc(sizeof(float) * n * P);
    PAD_TRY_GOTO(st, pad_buf_download(be, out->maps, sc->maps, sizeof(float) * n * R * R), end);
    PAD_TRY_GOTO(st, pad_buf_download(be, out->V, sc->V, sizeof(float) * n * P), end);
    PAD_TRY_GOTO(st, pad_buf_download(be, out->sT, sc->sT, sizeof(float) * n), end);
end:
    pad_scorer_free(sc);
    pad_bank_free(bank);
    pad_buf_free(be, bshots);
    pad_buf_free(be, bmid);
    pad_buf_free(be, bcls);
    pad_buf_free(be, btok);
    pad_buf_free(be, btv);
    return st;
}

void scorer_checks(void) {
    const int k = 2, n = 8, P = 225, D = 896, E = 640, R = 400;
    float *shots = rand_host((size_t)2 * k * P * D, -1, 1), *mid = rand_host((size_t)2 * n * P * D, -1, 1);
    float *cls = rand_host((size_t)n * E, -1, 1), *tok = rand_host((size_t)n * P * E, -1, 1);
    float *tv = rand_host((size_t)2 * E, -1, 1);
    for (int fp16 = 0; fp16 < 2; fp16++) {
        char name[96];
        snprintf(name, sizeof name, "score/pipeline n%d R%d%s", n, R, fp16 ? " fp16" : "");
        if (selected(name) && path_on(false)) {
            score_run c = {0}, d = {0};
            double ms = 0;
            if (score_side(pg.cpu, fp16, false, 1, shots, mid, cls, tok, tv, k, n, E, D, R, &c, NULL, NULL) != PAD_OK ||
                score_side(pg.gpu, fp16, false, 1, shots, mid, cls, tok, tv, k, n, E, D, R, &d, &ms, NULL) != PAD_OK) {
                fail(name, "scorer failed");
            } else {
                const double rtol = fp16 ? 1e-3 : 1e-5;
                char n2[160];
                snprintf(n2, sizeof n2, "%s V", name);
                check(n2, d.V, c.V, (size_t)n * P, 1e-7, rtol, -1, ms);
                snprintf(n2, sizeof n2, "%s text image score", name);
                check(n2, d.sT, c.sT, (size_t)n, 1e-7, rtol, -1, ms);
                snprintf(n2, sizeof n2, "%s image score", name);
                check(n2, d.img, c.img, (size_t)n, 1e-7, rtol, -1, ms);
                snprintf(n2, sizeof n2, "%s pixel maps", name);
                check(n2, d.maps, c.maps, (size_t)n * R * R, 1e-7, rtol, -1, ms);
            }
            free(c.V);
            free(c.maps);
            free(d.V);
            free(d.maps);
        }
        snprintf(name, sizeof name, "graphs/score n%d R%d%s", n, R, fp16 ? " fp16" : "");
        if (selected(name) && path_on(true)) {
            score_run e = {0}, gr = {0};
            double ms[2] = {0, 0};
            long replays = 0;
            if (score_side(pg.gpu, fp16, false, 4, shots, mid, cls, tok, tv, k, n, E, D, R, &e, &ms[0], NULL) !=
                    PAD_OK ||
                score_side(pg.gpu, fp16, true, 4, shots, mid, cls, tok, tv, k, n, E, D, R, &gr, &ms[1], &replays) !=
                    PAD_OK) {
                fail(name, "scorer failed");
            } else {
                char n2[160];
                snprintf(n2, sizeof n2, "%s maps", name);
                check_bits(n2, gr.maps, e.maps, sizeof(float) * n * R * R, ms[1]);
                snprintf(n2, sizeof n2, "%s image scores", name);
                check_bits(n2, gr.img, e.img, sizeof(float) * n, 0);
                snprintf(n2, sizeof n2, "%s replays", name);
                if (pg.twin)
                    line("SKIP", n2, "CPU twin: no graphs");
                else // 4 calls of text + maps: eager, capture + launch, 2 replays -> 3 launches each
                    line(replays >= 6 ? "PASS" : "FAIL", n2, "%ld launches; eager %.3f ms, graphs %.3f ms per call",
                         replays, ms[0], ms[1]);
            }
            free(e.V);
            free(e.maps);
            free(gr.V);
            free(gr.maps);
        }
    }
    free(shots);
    free(mid);
    free(cls);
    free(tok);
    free(tv);
}
