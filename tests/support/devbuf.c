/* devbuf.c - the backend buffer helpers of devbuf.h. */
#include "devbuf.h"

#include <stdlib.h>

pad_test_pair pad_test_pair_open(void) {
    pad_test_pair p = {NULL, NULL};
    cr_assert(pad_backend_cpu_init(&p.cpu, 0) == PAD_OK);
    cr_assert(pad_backend_cuda_init(&p.gpu, 0) == PAD_OK);
    return p;
}

void pad_test_pair_close(pad_test_pair *p) {
    pad_backend_free(p->gpu);
    pad_backend_free(p->cpu);
}

float *pad_test_upload(pad_backend *be, const float *h, size_t n) {
    float *d = NULL;
    cr_assert(pad_buf_from_host(be, &d, h, n) == PAD_OK);
    return d;
}

float *pad_test_alloc(pad_backend *be, size_t n) {
    float *d = pad_buf_alloc(be, n * sizeof(float));
    cr_assert(d != NULL);
    return d;
}

void *pad_test_download_bytes(pad_backend *be, const void *d, size_t nbytes) {
    void *h = malloc(nbytes);
    cr_assert(h || !nbytes);
    cr_assert(pad_buf_download(be, h, d, nbytes) == PAD_OK);
    return h;
}

float *pad_test_download(pad_backend *be, const float *d, size_t n) {
    return pad_test_download_bytes(be, d, n * sizeof(float));
}
