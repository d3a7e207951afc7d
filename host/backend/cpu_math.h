/* cpu_math.h - internal: a branch-free expf that the compiler can vectorise, fixed-order reductions, and
 * PAD_CPU_CLONES, which compiles a hot loop for AVX-512, AVX2 and baseline x86-64 and picks one at
 * load time (GCC/Clang target_clones).
 *
 * Results never depend on the chosen clone: the build uses ISO C mode (-std=c11 implies -ffp-contract=off, so no
 * FMA contraction), every operation below is an IEEE single operation in source order, and reductions use
 * PAD_LANES explicit partial sums combined in a fixed order, so the vector width changes the speed, not the bits.
 * Nor do they depend on the thread count: callers parallelise over rows only. */
#ifndef PAD_HOST_CPU_MATH_H
#define PAD_HOST_CPU_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(PAD_NO_CLONES)
#define PAD_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PAD_CPU_CLONES
#endif

// Number of independent partial sums in reductions (one AVX-512 register of floats).
#define PAD_LANES 16

static inline float pad_bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t pad_float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

// exp(x) within 2 ulp for -87.3 <= x <= 88.3; returns 0 below -87.3 (where exp(x) < FLT_MIN) and saturates at
// exp(88.3) above. NaN is not propagated (callers never pass it).
// Method: n = round(x / ln 2) by the 1.5*2^23 trick, r = x - n ln 2 in two steps (Cody-Waite, ln2_hi has few
// mantissa bits so n*ln2_hi is exact), exp(r) by its Taylor polynomial of degree 7 on |r| <= ln(2)/2 (truncation
// < 6e-9 relative), times 2^n built in the exponent bits.
static inline float pad_expf(float x) {
    const float lo = -87.3f, hi = 88.3f;
    const float xc = x < lo ? lo : (x > hi ? hi : x);
    const float shifter = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
    const float t = xc * 1.44269504088896341f + shifter;
    const float n = t - shifter;
    const int32_t ni = (int32_t)(pad_float_to_bits(t) - pad_float_to_bits(shifter));
    float r = xc - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const float scale = pad_bits_to_float((uint32_t)(ni + 127) << 23);
    const float y = p * scale;
    return x < lo ? 0.0f : y;
}

#endif // PAD_HOST_CPU_MATH_H
