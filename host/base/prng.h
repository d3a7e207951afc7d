/* prng.h - the portable integer pseudo-random generator of the eval code (few-shot draws in shots.c, the
 * synthetic dataset in synth.c). Everything here is exact 64-bit integer arithmetic, so the same seed gives the
 * same numbers on every machine and compiler; libc rand() is never used.
 *
 *   splitmix64 (Steele, Lea & Flood 2014, the reference constants):
 *       state += 0x9E3779B97F4A7C15
 *       z = state
 *       z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *       z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *       return z ^ (z >> 31)
 *   pad_prng_below(s, n), n >= 1: unbiased integer in [0, n) by rejection: draw r = next(s) until
 *       r >= (2^64 - n) mod n, then return r mod n.
 *   pad_prng_hash_str(text): 64-bit FNV-1a over the bytes of text (offset 0xCBF29CE484222325, prime
 *       0x100000001B3).
 *   pad_prng_mix(a): the splitmix64 output function applied to a (a stateless 64-bit hash).
 * tests/ref/shots_ref.py re-implements these in Python for the golden values of tests/test_dataset.c. */
#ifndef PAD_EVAL_PRNG_H
#define PAD_EVAL_PRNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAD_PRNG_GOLDEN 0x9E3779B97F4A7C15ull

// The splitmix64 finaliser: a bijective 64-bit hash.
static inline uint64_t pad_prng_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Advances the splitmix64 state and returns the next 64-bit value.
static inline uint64_t pad_prng_next(uint64_t *state) {
    *state += PAD_PRNG_GOLDEN;
    return pad_prng_mix(*state);
}

// Unbiased uniform integer in [0, n) (n >= 1), by rejection of the low 2^64 mod n values.
static inline uint64_t pad_prng_below(uint64_t *state, uint64_t n) {
    uint64_t threshold = (0 - n) % n; // (2^64 - n) mod n == 2^64 mod n
    for (;;) {
        uint64_t r = pad_prng_next(state);
        if (r >= threshold) return r % n;
    }
}

// Uniform integer in [lo, hi] (lo <= hi).
static inline int pad_prng_range(uint64_t *state, int lo, int hi) {
    return lo + (int)pad_prng_below(state, (uint64_t)((int64_t)hi - lo + 1));
}

// 64-bit FNV-1a hash of a NUL-terminated string.
static inline uint64_t pad_prng_hash_str(const char *text) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        h ^= *p;
        h *= 0x100000001B3ull;
    }
    return h;
}

#ifdef __cplusplus
}
#endif

#endif // PAD_EVAL_PRNG_H
