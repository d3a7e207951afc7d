/* metrics_exact.h - internal: the arithmetic that eval/metrics.c and cuda/metrics.cu share so that the CPU and the
 * GPU produce the same bits: the float -> sort key map, 128/192-bit fixed-point sums of the per-region overlap
 * increments, the (FPR, PRO) curve point of a cumulative count, and double-double sums. Every function is
 * static inline and, under nvcc, __host__ __device__; device code uses the _rn intrinsics so that nothing is
 * contracted into an FMA.
 *
 * Fixed point: a region of `a` pixels adds round(2^84 / a) per covered pixel (a u128). Summing these is exact and
 * order-free, so the PRO of a prefix of the sorted pixels is the same integer on every device. The trapezoid
 * over the (FPR, PRO) points below the FPR limit is also an exact integer (u192):
 *     2 * nok * K * 2^84 * area = sum_g dfp_g * (P'_{g-1} + P'_g),   P' = min(P, K * 2^84)  (the clip to 1). */
#ifndef PAD_EVAL_METRICS_EXACT_H
#define PAD_EVAL_METRICS_EXACT_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define PAD_MX_FN static inline __host__ __device__
#else
#define PAD_MX_FN static inline
#endif

#if defined(__CUDA_ARCH__)
#define PAD_MX_ADD(a, b) __dadd_rn((a), (b))
#define PAD_MX_SUB(a, b) __dsub_rn((a), (b))
#define PAD_MX_MUL(a, b) __dmul_rn((a), (b))
#define PAD_MX_DIV(a, b) __ddiv_rn((a), (b))
#else
#define PAD_MX_ADD(a, b) ((a) + (b))
#define PAD_MX_SUB(a, b) ((a) - (b))
#define PAD_MX_MUL(a, b) ((a) * (b))
#define PAD_MX_DIV(a, b) ((a) / (b))
#endif

#define PAD_MX_FRAC_BITS 84

// ----------------------------------------------------------------------------
// Sort keys: an order-preserving map float -> uint32 (larger float, larger key); -0.0 and +0.0 map to one key.
// Only finite floats reach it.

PAD_MX_FN uint32_t pad_mx_key(float f) {
    uint32_t u;
#if defined(__CUDA_ARCH__)
    u = __float_as_uint(f);
#else
    memcpy(&u, &f, sizeof u);
#endif
    if ((u & 0x7fffffffu) == 0) u = 0; // -0.0 -> +0.0
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// ----------------------------------------------------------------------------
// Unsigned 128-bit and 192-bit integers (little-endian limbs).

typedef struct pad_u128 {
    uint64_t lo, hi;
} pad_u128;

typedef struct pad_u192 {
    uint64_t w[3];
} pad_u192;

PAD_MX_FN pad_u128 pad_u128_add(pad_u128 a, pad_u128 b) {
    pad_u128 r;
    r.lo = a.lo + b.lo;
    r.hi = a.hi + b.hi + (r.lo < a.lo ? 1u : 0u);
    return r;
}

// a - b modulo 2^128: exact whenever the true difference is non-negative, even after a sum wrapped around.
PAD_MX_FN pad_u128 pad_u128_sub(pad_u128 a, pad_u128 b) {
    pad_u128 r;
    r.lo = a.lo - b.lo;
    r.hi = a.hi - b.hi - (a.lo < b.lo ? 1u : 0u);
    return r;
}

PAD_MX_FN int pad_u128_less(pad_u128 a, pad_u128 b) {
    return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}

PAD_MX_FN pad_u192 pad_u192_add(pad_u192 a, pad_u192 b) {
    pad_u192 r;
    uint64_t c = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t s = a.w[i] + b.w[i];
        uint64_t c1 = s < a.w[i] ? 1u : 0u;
        r.w[i] = s + c;
        uint64_t c2 = r.w[i] < s ? 1u : 0u;
        c = c1 + c2;
    }
    return r;
}

// (a + b) * m for a, b < 2^126 and m < 2^32: at most 2^159, exact.
PAD_MX_FN pad_u192 pad_u192_sum_mul(pad_u128 a, pad_u128 b, uint32_t m) {
    pad_u128 s = pad_u128_add(a, b);
    uint32_t limb[4] = {(uint32_t)s.lo, (uint32_t)(s.lo >> 32), (uint32_t)s.hi, (uint32_t)(s.hi >> 32)};
    uint32_t out[6] = {0, 0, 0, 0, 0, 0};
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t t = (uint64_t)limb[i] * m + carry;
        out[i] = (uint32_t)t;
        carry = t >> 32;
    }
    out[4] = (uint32_t)carry;
    pad_u192 r;
    r.w[0] = (uint64_t)out[0] | ((uint64_t)out[1] << 32);
    r.w[1] = (uint64_t)out[2] | ((uint64_t)out[3] << 32);
    r.w[2] = (uint64_t)out[4];
    return r;
}

// A double close to a u128 (deterministic; exact high part while hi < 2^53, which holds for every P here;
// relative error < 2^-52).
PAD_MX_FN double pad_u128_to_double(pad_u128 a) {
    return PAD_MX_ADD(PAD_MX_MUL((double)a.hi, 18446744073709551616.0), (double)a.lo);
}

// A double close to a u192 (deterministic; relative error < 2^-51).
PAD_MX_FN double pad_u192_to_double(pad_u192 a) {
    const double two64 = 18446744073709551616.0;
    double v = (double)a.w[2];
    v = PAD_MX_ADD(PAD_MX_MUL(v, two64), (double)a.w[1]);
    v = PAD_MX_ADD(PAD_MX_MUL(v, two64), (double)a.w[0]);
    return v;
}

// ----------------------------------------------------------------------------
// Curve points

// PRO of the cumulative fixed-point overlap P over K regions, clipped to 1: min(P * 2^-84 / K, 1).
PAD_MX_FN double pad_mx_pro_y(pad_u128 P, int64_t K) {
    double v = PAD_MX_DIV(PAD_MX_MUL(pad_u128_to_double(P), 0x1p-84), (double)K);
    return v > 1.0 ? 1.0 : v;
}

// FPR of a cumulative false-positive count.
PAD_MX_FN double pad_mx_fpr(uint64_t fp, int64_t n_ok) {
    return PAD_MX_DIV((double)fp, (double)n_ok);
}

// Clip of P to K regions (PRO <= 1) for the exact trapezoid.
PAD_MX_FN pad_u128 pad_mx_clip(pad_u128 P, pad_u128 cap) {
    return pad_u128_less(cap, P) ? cap : P;
}

// The AUPR term of a tie group: (tp - tp_prev) * tp / (tp + fp).
PAD_MX_FN double pad_mx_ap_term(uint64_t tp, uint64_t tp_prev, uint64_t fp) {
    return PAD_MX_MUL((double)(tp - tp_prev), PAD_MX_DIV((double)tp, (double)(tp + fp)));
}

// ----------------------------------------------------------------------------
// Double-double accumulation (TwoSum + FastTwoSum): error ~2^-104 relative per addition, so the order of a sum
// of up to 2^32 non-negative terms changes the final double by at most one ulp (and almost never).

typedef struct pad_dd {
    double hi, lo;
} pad_dd;

PAD_MX_FN pad_dd pad_dd_add(pad_dd a, pad_dd b) {
    double s = PAD_MX_ADD(a.hi, b.hi);
    double bb = PAD_MX_SUB(s, a.hi);
    double e = PAD_MX_ADD(PAD_MX_SUB(a.hi, PAD_MX_SUB(s, bb)), PAD_MX_SUB(b.hi, bb));
    e = PAD_MX_ADD(e, PAD_MX_ADD(a.lo, b.lo));
    pad_dd r;
    r.hi = PAD_MX_ADD(s, e);
    r.lo = PAD_MX_SUB(e, PAD_MX_SUB(r.hi, s));
    return r;
}

PAD_MX_FN pad_dd pad_dd_add_d(pad_dd a, double t) {
    pad_dd b;
    b.hi = t;
    b.lo = 0.0;
    return pad_dd_add(a, b);
}

// AU-PRO / limit from the exact trapezoid `trap` over the points with FPR <= limit and the points (x_left,
// y_left) <= limit < (x_right, y_right) around the limit: the official trapezoid adds the piece up to the limit,
// interpolated linearly, unless the limit is itself a point (x_left == limit).
PAD_MX_FN double pad_mx_pro_finish(pad_u192 trap, int64_t n_ok, int64_t K, double x_left, double y_left, double x_right,
                                   double y_right, double limit) {
    double area = PAD_MX_MUL(PAD_MX_DIV(pad_u192_to_double(trap), PAD_MX_MUL(2.0 * (double)n_ok, (double)K)), 0x1p-84);
    if (x_left < limit) {
        double yi = PAD_MX_ADD(y_left, PAD_MX_DIV(PAD_MX_MUL(PAD_MX_SUB(y_right, y_left), PAD_MX_SUB(limit, x_left)),
                                                  PAD_MX_SUB(x_right, x_left)));
        area = PAD_MX_ADD(area, PAD_MX_MUL(PAD_MX_MUL(0.5, PAD_MX_ADD(yi, y_left)), PAD_MX_SUB(limit, x_left)));
    }
    return PAD_MX_DIV(area, limit);
}

// ----------------------------------------------------------------------------
// Shared by metrics.c and cuda/metrics.cu (defined in metrics.c)

// What a scan over the tie groups of all pixels (descending score) produces.
typedef struct pad_pixel_sums {
    uint64_t u2;       // sum over groups of fp_g * (tp_before + tp_after) = 2 * (AUROC numerator)
    pad_dd ap;         // sum over groups of the AUPR terms
    pad_u192 trap;     // exact trapezoid below the FPR limit (see the top of this file)
    uint64_t left_fp;  // cumulative (false positives, overlap) of the last curve point with FPR <= limit:
    pad_u128 left_P;   //   (0, 0) when there is none
    uint64_t right_fp; // ... and of the first point above the limit: (n_ok, K * 2^84), i.e. the appended
    pad_u128 right_P;  //   point (1, 1), when there is none
} pad_pixel_sums;

#ifdef __cplusplus
extern "C" {
#endif
struct pad_metrics_gt;
struct pad_pixel_metrics;
// The (K + 1) fixed-point overlap increments of gt's regions; entry 0 (background) is 0.
const pad_u128 *pad_metrics_gt_terms(const struct pad_metrics_gt *gt);
struct pad_image_metrics;
// Turns the integer counts of a walk over n image scores (u2 as in pad_pixel_sums, tp anomalous and fp normal
// images) and the AUPR sum into AUROC and AUPR, with the warnings of undefined metrics (CPU and GPU alike).
void pad_metrics_image_finish(uint64_t u2, pad_dd ap, uint64_t tp, uint64_t fp, int64_t n,
                              struct pad_image_metrics *out);
// Turns the sums into AUROC, AUPR and (when `which` has PAD_METRICS_PRO) PRO, with the warnings of undefined
// metrics; leaves pro_200 alone. The one place where CPU and GPU results are finalised.
void pad_metrics_pixel_finish(const pad_pixel_sums *s, int64_t n_anom, int64_t n_ok, int64_t K, double fpr_limit,
                              unsigned which, struct pad_pixel_metrics *out);
#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_METRICS_EXACT_H
