/* detect.c - the public detector API (include/promptad.h) in a few lines: loads a model folder written by
 * `promptad run`, scores the images given on the command line in one call (batches of max_batch images, as
 * `promptad predict` does) and prints per image its score, the decision at the model's threshold and the share of
 * the anomaly map above the mask threshold. Built with the project (build/examples/detect) against libpromptad.so.
 *
 *     build/examples/detect results/mvtec/bottle/k4/seed0/model photo1.png photo2.jpg
 */
#include <promptad.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGE...\n", argv[0]);
        return 2;
    }
    pad_log_set_level(PAD_LOG_LEVEL_WARN);
    pad_detector_params params = pad_detector_params_default();
    params.device = PAD_BACKEND_CPU;
    pad_detector *det = NULL;
    if (pad_detector_load(&det, argv[1], &params) != PAD_OK) {
        fprintf(stderr, "detect: %s\n", pad_last_error());
        return 1;
    }
    pad_detector_info info;
    pad_detector_get_info(det, &info);
    printf("# model %s/%s k=%d seed %d, %d x %d maps, threshold %.9g\n", info.dataset, info.cls, info.k, info.seed,
           info.map_size, info.map_size, info.threshold);
    const int n = argc - 2;
    const size_t px = (size_t)info.map_size * (size_t)info.map_size;
    float *scores = malloc((size_t)n * sizeof *scores);
    unsigned char *masks = malloc((size_t)n * px);
    int rc = 0;
    if (!scores || !masks) {
        rc = 1;
    } else if (pad_detector_score_files(det, (const char *const *)argv + 2, n, scores, NULL, masks) != PAD_OK) {
        fprintf(stderr, "detect: %s\n", pad_last_error());
        rc = 1;
    } else {
        printf("path,score,decision,mask_fraction\n");
        for (int i = 0; i < n; i++) {
            size_t on = 0;
            for (size_t q = 0; q < px; q++)
                on += masks[(size_t)i * px + q];
            printf("%s,%.9g,%s,%.4f\n", argv[i + 2], (double)scores[i],
                   (double)scores[i] >= info.threshold ? "anomalous" : "normal", (double)on / (double)px);
        }
    }
    free(scores);
    free(masks);
    pad_detector_free(det);
    return rc;
}
