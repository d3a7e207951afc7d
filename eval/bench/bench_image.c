/* bench_image.c - wall-clock cost of the image path per picture: decoding (PNG, JPEG), the resizes, and the whole
 * squash / openclip / official preprocessing (8-bit resize + normalisation), for 1024x1024 (MVTec-like) and
 * 1500x1000 (VisA-like) RGB inputs. Not a test: prints a table.
 *
 *     build/bench_image [--reps N] [--threads T] [FILE...]     (T = 0: OpenMP's default)
 *
 * The synthetic pictures are written with stb_image_write, whose PNGs are larger and slower to inflate than those
 * of Pillow / OpenCV / libpng; pass real dataset files as FILE to time those.
 */
#include "image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Process CPU time (all threads): on a busy machine the best CPU time of a single-threaded run is the stable number.
static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// A photo-like test picture: smooth shading, texture and a little noise (so PNG/JPEG sizes are realistic).
static void make_picture(pad_image *img, int w, int h) {
    if (pad_image_alloc(img, w, h) != PAD_OK) exit(1);
    uint32_t s = 12345;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            s = s * 1664525u + 1013904223u;
            int noise = (int)(s >> 28) - 8;
            double base = 120 + 60 * sin(x / 37.0) * cos(y / 23.0) + 30 * sin((x + 2 * y) / 5.0);
            for (int c = 0; c < 3; c++) {
                int v = (int)(base + 25 * c * sin((x - y) / 50.0)) + noise;
                img->rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

static void report(const char *what, const char *name, double best, double mean, double cpu) {
    printf("%-10s %-40s wall best %7.2f ms, mean %7.2f ms | cpu best %7.2f ms\n", what, name, best, mean, cpu);
}

#define TIME(what, name, reps, stmt)                                                                                   \
    do {                                                                                                               \
        double best_ = 1e30, tot_ = 0, cbest_ = 1e30;                                                                  \
        for (int r_ = 0; r_ < (reps); r_++) {                                                                          \
            double t0_ = now_ms(), c0_ = cpu_ms();                                                                     \
            stmt;                                                                                                      \
            double dt_ = now_ms() - t0_, dc_ = cpu_ms() - c0_;                                                         \
            tot_ += dt_;                                                                                               \
            if (dt_ < best_) best_ = dt_;                                                                              \
            if (dc_ < cbest_) cbest_ = dc_;                                                                            \
        }                                                                                                              \
        report(what, name, best_, tot_ / (reps), cbest_);                                                              \
    } while (0)

#define CHECK(x)                                                                                                       \
    do {                                                                                                               \
        if ((x) != PAD_OK) {                                                                                           \
            fprintf(stderr, "bench_image: %s failed\n", #x);                                                           \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

int main(int argc, char **argv) {
    int reps = 20, threads = 0, nfiles = 0;
    const char **files = calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--reps N] [--threads T] [FILE...]\n", argv[0]);
            return 2;
        } else
            files[nfiles++] = argv[i];
    }
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
    printf("OpenMP threads: %d, reps: %d\n", omp_get_max_threads(), reps);
#else
    printf("no OpenMP, reps: %d\n", reps);
#endif
    char dir[] = "/tmp/bench_image.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    const int sizes[2][2] = {{1024, 1024}, {1500, 1000}};
    const int S = 240;
    pad_resize_ws *ws;
    CHECK(pad_resize_ws_init(&ws));
    float *x = malloc(sizeof(float) * 3 * S * S);
    uint8_t *mid = malloc(1024 * 1024 * 3), *small = malloc(S * S * 3);
    for (int k = 0; k < 2; k++) {
        const int w = sizes[k][0], h = sizes[k][1];
        char tag[32], name[96], png[256], jpg[256];
        snprintf(tag, sizeof tag, "%dx%d", w, h);
        pad_image img, dec;
        make_picture(&img, w, h);
        snprintf(png, sizeof png, "%s/%s.png", dir, tag);
        snprintf(jpg, sizeof jpg, "%s/%s.jpg", dir, tag);
        CHECK(pad_image_save_png(png, &img));
        if (!stbi_write_jpg(jpg, w, h, 3, img.rgb, 95)) return 1;

        TIME(tag, "decode PNG", reps, CHECK(pad_image_load(&dec, png)); pad_image_free(&dec));
        TIME(tag, "decode JPEG (q95)", reps, CHECK(pad_image_load(&dec, jpg)); pad_image_free(&dec));
        snprintf(name, sizeof name, "Pillow bicubic -> %dx%d", S, S);
        TIME(tag, name, reps, CHECK(pad_resize_pil_bicubic_u8(img.rgb, w, h, 3, small, S, S, ws)));
        TIME(tag, "OpenCV linear -> 1024x1024", reps,
             CHECK(pad_resize_cv_linear_u8(img.rgb, w, h, 3, mid, 1024, 1024, ws)));
        static const pad_preprocess_mode modes[3] = {PAD_PREPROCESS_SQUASH, PAD_PREPROCESS_OPENCLIP,
                                                     PAD_PREPROCESS_OFFICIAL};
        for (int m = 0; m < 3; m++) {
            snprintf(name, sizeof name, "preprocess %s (-> 3x%dx%d floats)", pad_preprocess_mode_str(modes[m]), S, S);
            TIME(tag, name, reps, CHECK(pad_preprocess_ws(&img, modes[m], S, false, x, ws)));
        }
        snprintf(name, sizeof name, "load PNG + preprocess official");
        TIME(tag, name, reps, CHECK(pad_image_load(&dec, png));
             CHECK(pad_preprocess_ws(&dec, PAD_PREPROCESS_OFFICIAL, S, false, x, ws)); pad_image_free(&dec));
        pad_image_free(&img);
        unlink(png);
        unlink(jpg);
    }
    rmdir(dir);
    for (int k = 0; k < nfiles; k++) {
        pad_image dec;
        CHECK(pad_image_load(&dec, files[k]));
        char tag[32], name[96];
        snprintf(tag, sizeof tag, "%dx%d", dec.w, dec.h);
        pad_image_free(&dec);
        printf("%s:\n", files[k]);
        TIME(tag, "decode", reps, CHECK(pad_image_load(&dec, files[k])); pad_image_free(&dec));
        static const pad_preprocess_mode modes[3] = {PAD_PREPROCESS_SQUASH, PAD_PREPROCESS_OPENCLIP,
                                                     PAD_PREPROCESS_OFFICIAL};
        for (int m = 0; m < 3; m++) {
            snprintf(name, sizeof name, "decode + preprocess %s", pad_preprocess_mode_str(modes[m]));
            TIME(tag, name, reps, CHECK(pad_image_load(&dec, files[k]));
                 CHECK(pad_preprocess_ws(&dec, modes[m], S, false, x, ws)); pad_image_free(&dec));
        }
    }
    free(files);
    pad_resize_ws_free(ws);
    free(x);
    free(mid);
    free(small);
    return 0;
}
