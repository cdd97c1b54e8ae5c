/*
 * bf16.cuh — the bf16 type the project computes with, and 128-bit packed loads/stores.
 * Packed128<T> moves 16 bytes per thread per instruction, which is what memory-bound kernels need to
 * approach the card's bandwidth. Also: stochastic rounding of fp32 to bf16 (used by AdamW so that tiny
 * updates are not systematically lost when the bf16 working copy is refreshed). And the exponentials every kernel
 * uses: exp2_ftz (one MUFU.EX2), exp_ftz and sigmoid_ftz on top of it, log_ftz (one MUFU.LG2).
 */
#ifndef COMMON_BF16_CUH
#define COMMON_BF16_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

typedef __nv_bfloat16 bf16;

template <class T>
struct alignas(16) Packed128 {
    static constexpr int size = 16 / sizeof(T);
    T v[size];
    __device__ __host__ Packed128() {}
    __device__ static Packed128 zeros() {
        Packed128 p;
        for (int i = 0; i < size; i++) p.v[i] = (T)0.0f;
        return p;
    }
    __device__ T& operator[](int i) { return v[i]; }
    __device__ const T& operator[](int i) const { return v[i]; }
};
typedef Packed128<bf16> x128;   // 8 bf16
typedef Packed128<float> f128;  // 4 floats

/* plain 16-byte load/store (address must be 16-byte aligned) */
template <class T> __device__ inline Packed128<T> load128(const T* p) { return *reinterpret_cast<const Packed128<T>*>(p); }
template <class T> __device__ inline void store128(T* p, const Packed128<T>& x) { *reinterpret_cast<Packed128<T>*>(p) = x; }
/* streaming ("cache-streaming") variants for data touched once: keep it from evicting reused data in L2 */
template <class T> __device__ inline Packed128<T> load128cs(const T* p) {
    Packed128<T> x;
    int4 r = __ldcs(reinterpret_cast<const int4*>(p));
    *reinterpret_cast<int4*>(&x) = r;
    return x;
}
template <class T> __device__ inline void store128cs(T* p, const Packed128<T>& x) {
    __stcs(reinterpret_cast<int4*>(p), *reinterpret_cast<const int4*>(&x));
}

__device__ __host__ inline float bf2f(bf16 x) { return __bfloat162float(x); }
__device__ __host__ inline bf16 f2bf(float x) { return __float2bfloat16(x); }

/* Host-side conversions without needing device intrinsics (round to nearest even), for tests and I/O. */
static inline uint16_t host_f2bf_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}
static inline float host_bf_bits2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Counter-based hash -> stochastic rounding: deterministic for a given (seed, index). */
__device__ inline uint32_t hash_u32(uint32_t x, uint32_t seed) {
    x ^= seed * 0x9E3779B9u;
    x ^= x >> 16; x *= 0x7feb352du;
    x ^= x >> 15; x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}
__device__ inline bf16 stochastic_round_bf16(float f, uint32_t rnd) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(f); /* inf/nan: no dithering */
    u += (rnd & 0xffffu);
    u &= 0xffff0000u;
    return __float2bfloat16_rn(__uint_as_float(u));
}

/* C bf16 values (C = 1, 2, 4, 8) held raw in one plain type, for loads that stay in flight while the thread computes:
 * a Packed128<bf16> is unpacked into eight registers as soon as it arrives, so the thread waits for it right there
 * (the selective scan's prefetch, conv1d's loads ahead); bf16_raw_el converts element c where it is used. */
template <int C> struct Bf16Raw;
template <> struct Bf16Raw<1> { typedef unsigned short T; };
template <> struct Bf16Raw<2> { typedef unsigned int T; };
template <> struct Bf16Raw<4> { typedef uint2 T; };
template <> struct Bf16Raw<8> { typedef uint4 T; };
template <int C>
__device__ __forceinline__ float bf16_raw_el(const typename Bf16Raw<C>::T& v, int c) {
    return bf2f(reinterpret_cast<const bf16*>(&v)[c]);
}

/* the inverse: C floats rounded to bf16 into one raw value, for a single C*2-byte store */
template <int C>
__device__ __forceinline__ typename Bf16Raw<C>::T bf16_raw_pack(const float* f) {
    typename Bf16Raw<C>::T v;
#pragma unroll
    for (int c = 0; c < C; c++) reinterpret_cast<bf16*>(&v)[c] = __float2bfloat16(f[c]);
    return v;
}

/* 2^x by MUFU.EX2 (relative error ~2^-22), flushing results below 2^-126 to zero: expf-style calls keep such
 * results denormal with three more instructions each, which the exponential-heavy scan and chunk kernels feel */
__device__ __forceinline__ float exp2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
/* e^x as __expf computes it (one FMUL by log2(e) as a float, then MUFU.EX2) but flushing results below 2^-126
 * to zero: the same bits as __expf for every result above 2^-126, two instructions instead of five */
__device__ __forceinline__ float exp_ftz(float x) { return exp2_ftz(x * 1.44269504f); }
/* ln x as __logf computes it (MUFU.LG2, then one FMUL by ln 2 as a float) but with denormal inputs taken as 0:
 * the same bits as __logf for every x >= 2^-126, two instructions instead of five */
__device__ __forceinline__ float log_ftz(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y * 0.693147182f;
}
/* 1 / (1 + e^-v) in 2 special-function ops instead of an IEEE divide (~2 ulp; v -> -inf gives e = inf and
 * 1/inf = 0, v -> +inf gives 1, no NaN). Bit for bit the __expf form's: an e below 2^-126 cannot move 1 + e. */
__device__ __forceinline__ float sigmoid_ftz(float v) { return __fdividef(1.0f, 1.0f + exp_ftz(-v)); }

/* One tensor-core product c[16x8] += a[16x16] b[16x8], bf16 operands, fp32 accumulation (mma.sync m16n8k16, row.col).
 * Fragments, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4: a[0] holds A(g, 2q..2q+1), a[1] A(g+8, 2q..),
 * a[2] A(g, 8+2q..), a[3] A(g+8, 8+2q..); b0 holds B(2q..2q+1, g), b1 B(8+2q.., g) (pairs along k: B stored [n][k]
 * row-major reads as 32-bit words); c[0], c[1] are C(g, 2q..2q+1) and c[2], c[3] C(g+8, 2q..2q+1). */
__device__ __forceinline__ void mma_bf16_16816(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#endif /* COMMON_BF16_CUH */
