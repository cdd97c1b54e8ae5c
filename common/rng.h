/*
 * rng.h — the project's only random number generator: splitmix64 seeding + xorshift64*.
 * Deterministic across machines (integer arithmetic only), so "same seed, same bits" holds for
 * initialisation, data shuffling and sampling. Plain C.
 */
#ifndef COMMON_RNG_H
#define COMMON_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct { uint64_t s; } Rng;

static inline uint64_t splitmix64(uint64_t* x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline Rng rng_seed(uint64_t seed) {
    Rng r;
    uint64_t x = seed;
    r.s = splitmix64(&x);
    if (r.s == 0) r.s = 1;
    return r;
}
static inline uint64_t rng_u64(Rng* r) {
    r->s ^= r->s >> 12; r->s ^= r->s << 25; r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}
static inline uint32_t rng_u32(Rng* r) { return (uint32_t)(rng_u64(r) >> 32); }
/* uniform in [0,1) with 53 random bits */
static inline double rng_uniform(Rng* r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
static inline double rng_uniform_in(Rng* r, double lo, double hi) { return lo + (hi - lo) * rng_uniform(r); }
/* standard normal by Box-Muller (one value per call; simple and reproducible) */
static inline double rng_normal(Rng* r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
/* integer in [0, n) (n > 0), rejection-free multiply-shift (bias < 2^-32 for n < 2^32) */
static inline uint32_t rng_below(Rng* r, uint32_t n) { return (uint32_t)(((uint64_t)rng_u32(r) * n) >> 32); }

#endif /* COMMON_RNG_H */
