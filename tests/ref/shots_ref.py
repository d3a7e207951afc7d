#!/usr/bin/env python3
"""shots_ref.py - independent Python reference of the seeded few-shot draw of eval/shots.h (splitmix64 keyed by the
FNV-1a hash of the class name and the seed, partial Fisher-Yates over the sorted train listing). Prints the golden
indices used by tests/test_dataset.c:

    /usr/bin/python3 tests/ref/shots_ref.py
"""

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class SplitMix64:
    def __init__(self, state):
        self.state = state & M64

    def next(self):
        self.state = (self.state + GOLDEN) & M64
        return mix(self.state)

    def below(self, n):
        threshold = ((1 << 64) - n) % n
        while True:
            r = self.next()
            if r >= threshold:
                return r % n


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def draw(class_name, n_train, k, seed):
    rng = SplitMix64(fnv1a64(class_name) ^ ((seed * GOLDEN) & M64))
    perm = list(range(n_train))
    for i in range(k):
        j = i + rng.below(n_train - i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm[:k]


if __name__ == "__main__":
    cases = [("bottle", 209, 4, s) for s in range(5)] + [("candle", 900, 4, 0), ("pcb1", 904, 4, 111),
                                                         ("x", 5, 5, 3), ("screw", 320, 1, 2**40 + 7)]
    for name, n, k, seed in cases:
        print(f'{{"{name}", {n}, {k}, {seed}ull, {{{", ".join(str(i) for i in draw(name, n, k, seed))}}}}},')
    print("fnv1a64('bottle') = 0x%016x" % fnv1a64("bottle"))
    r = SplitMix64(0)
    print("splitmix64(0) first three:", ", ".join("0x%016xull" % r.next() for _ in range(3)))
