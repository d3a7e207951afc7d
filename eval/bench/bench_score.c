/* bench_score.c - times the anomaly scoring of one class (host/score.h) on random features of the real sizes:
 * N test images, k shots, G = 15, D = 896, E = 640, R x R maps. Phases: bank + test-tap normalisation (once per
 * class), the k-NN visual score with vmax (once per shot set), and the per-epoch work (text scores, image scores,
 * fused + upsampled + smoothed pixel maps). Not a test: prints one line per phase (seconds, best of --reps).
 *
 *     cmake --build build --target bench_score && ./build/bench_score [--n 200] [--shots 4]
 *         [--res 400] [--device cpu|cuda] [--threads T] [--reps 3]
 */
#include "backend.h"
#include "fsutil.h"
#include "score.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long rng_state = 88172645463325252ull;
static float urand(void) { // xorshift64, uniform in [-1, 1)
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static float *upload_random(pad_backend *be, size_t n) {
    float *h = (float *)malloc(sizeof(float) * n), *d = NULL;
    if (!h) return NULL;
    for (size_t i = 0; i < n; i++)
        h[i] = urand();
    if (pad_buf_from_host(be, &d, h, n) != PAD_OK) d = NULL;
    free(h);
    return d;
}

#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        if ((expr) != PAD_OK) {                                                                                        \
            fprintf(stderr, "bench_score: %s failed\n", #expr);                                                        \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

int main(int argc, char **argv) {
    int n = 200, k = 4, R = 400, threads = 0, reps = 3;
    const int G = 15, P = G * G, D = 896, E = 640;
    const char *device = "cpu";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--shots"))
            k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--res"))
            R = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else {
            fprintf(stderr, "bench_score: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (n <= 0 || k <= 0 || R <= 0 || reps <= 0) return 2;
    pad_backend *be = NULL;
    if (!strcmp(device, "cuda"))
        CHECK(pad_backend_cuda_init(&be, 0));
    else
        CHECK(pad_backend_cpu_init(&be, threads));

    float *shots = upload_random(be, (size_t)2 * k * P * D), *mid = upload_random(be, (size_t)2 * n * P * D);
    float *raw = upload_random(be, (size_t)2 * n * P * D);
    float *cls = upload_random(be, (size_t)n * E), *tok = upload_random(be, (size_t)n * P * E);
    float *tv = upload_random(be, (size_t)2 * E);
    float *scores = (float *)malloc(sizeof(float) * n);
    if (!shots || !mid || !raw || !cls || !tok || !tv || !scores) {
        fprintf(stderr, "bench_score: out of memory\n");
        return 1;
    }
    CHECK(pad_score_normalize(be, tv, 2, E));
    pad_score_cfg cfg = pad_score_cfg_default(n, G, R);
    pad_scorer *sc = NULL;
    CHECK(pad_scorer_init(&sc, be, &cfg));

    double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
    const char *names[6] = {"normalise bank + test taps (once per class)",
                            "k-NN visual score + vmax (per shot set)",
                            "text scores, cls + tokens (per epoch)",
                            "image scores (per epoch)",
                            "pixel maps: fuse + upsample + Gaussian (per epoch)",
                            "per-epoch total"};
    for (int r = 0; r < reps; r++) {
        double t0 = pad_now();
        pad_bank *bank = NULL;
        CHECK(pad_buf_copy(be, mid, raw, sizeof(float) * 2 * n * P * D));
        CHECK(pad_backend_sync(be));
        t0 = pad_now();
        CHECK(pad_bank_init(&bank, be, shots, shots + (size_t)k * P * D, k, P, D));
        CHECK(pad_score_normalize(be, mid, 2 * n * P, D));
        CHECK(pad_backend_sync(be));
        double t1 = pad_now();
        CHECK(pad_scorer_visual(sc, bank, mid, mid + (size_t)n * P * D, n));
        CHECK(pad_backend_sync(be));
        double t2 = pad_now();
        CHECK(pad_scorer_text(sc, cls, tok, tv, tv + E, 4.6051702f, n, E));
        CHECK(pad_backend_sync(be));
        double t3 = pad_now();
        CHECK(pad_scorer_image_scores(sc, n, scores));
        double t4 = pad_now();
        CHECK(pad_scorer_pixel_maps(sc, n));
        CHECK(pad_backend_sync(be));
        double t5 = pad_now();
        const double t[6] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t2};
        for (int i = 0; i < 6; i++)
            if (t[i] < best[i]) best[i] = t[i];
        pad_bank_free(bank);
    }
    printf("bench_score: device %s, %d test images, %d shots, G %d, D %d, E %d, R %d, best of %d\n", device, n, k, G, D,
           E, R, reps);
    for (int i = 0; i < 6; i++)
        printf("  %-52s %8.3f s\n", names[i], best[i]);
    const double gflop = 2.0 * 2.0 * n * P * (double)k * P * D * 1e-9;
    printf("  k-NN: %.1f GFLOP, %.1f GFLOP/s\n", gflop, gflop / best[1]);
    pad_scorer_free(sc);
    pad_buf_free(be, shots);
    pad_buf_free(be, mid);
    pad_buf_free(be, raw);
    pad_buf_free(be, cls);
    pad_buf_free(be, tok);
    pad_buf_free(be, tv);
    free(scores);
    pad_backend_free(be);
    return 0;
}
