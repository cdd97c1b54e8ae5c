// test/ref_mamba_op.h -- double-precision CPU references of the two Mamba-1 mixer ops that have CUDA kernels
// (common/conv1d.cuh, common/selective_scan.cuh): depthwise causal conv1d + bias + SiLU, and the selective scan
// (softplus dt with bias, ZOH for A, Euler for B, D skip, SiLU(z) gate). Math: shared/docs/mamba.md 1.2 and 2.2.
// Arrays are token-major and contiguous (no strides): row m = b*T + t. These are slow, obviously-correct loops;
// they exist so that kernels (dev/ harnesses) and the whole-model reference (test/ref_mamba.h) share one truth.
// Plain C (gcc -std=c11) and C++ (nvcc) compatible.
#ifndef TEST_REF_MAMBA_OP_H
#define TEST_REF_MAMBA_OP_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "ref_core.h"   // ref_sigmoid

static inline double ref_mop_silu(double v) { return v * ref_sigmoid(v); }
// d silu(v) / dv
static inline double ref_mop_dsilu(double v) { double s = ref_sigmoid(v); return s * (1.0 + v * (1.0 - s)); }
// softplus with the kernel's (and torch's) threshold: above 20 it is the identity (and its slope exactly 1)
static inline double ref_mop_softplus(double v) { return v <= 20.0 ? log1p(exp(v)) : v; }
static inline double ref_mop_dsoftplus(double v) { return v <= 20.0 ? ref_sigmoid(v) : 1.0; }

static inline double* ref_mop_alloc(size_t n) {
    double* p = (double*)calloc(n ? n : 1, sizeof(double));
    if (!p) { abort(); }
    return p;
}

// ------------------------------------------------------------------------------------------------------------
// depthwise causal conv1d + bias + SiLU.  xc[b,t,d] = b[d] + sum_k w[d,k] * x[b, t-(W-1)+k, d]  (x[t<0] = 0),
// u = silu(xc). The last tap k = W-1 multiplies x_t.

static inline double ref_mop_conv_pre(const double* x, const double* w, const double* b,
                                      int bi, int t, int d, int T, int Di, int W) {
    double s = b[d];
    for (int k = 0; k < W; k++) {
        int tt = t - (W - 1) + k;
        if (tt >= 0) s += w[(size_t)d * W + k] * x[((size_t)bi * T + tt) * Di + d];
    }
    return s;
}

static inline void ref_conv1d_silu_forward(double* u /*[B][T][Di]*/, const double* x /*[B][T][Di]*/,
                                           const double* w /*[Di][W]*/, const double* b /*[Di]*/,
                                           int B, int T, int Di, int W) {
    for (int bi = 0; bi < B; bi++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < Di; d++)
                u[((size_t)bi * T + t) * Di + d] = ref_mop_silu(ref_mop_conv_pre(x, w, b, bi, t, d, T, Di, W));
}

// dx is WRITTEN; dw [Di][W] and db [Di] are ACCUMULATED (+=), like the CUDA API. The pre-activation is recomputed.
static inline void ref_conv1d_silu_backward(double* dx /*[B][T][Di]*/, double* dw /*[Di][W]*/, double* db /*[Di]*/,
                                            const double* du /*[B][T][Di]*/, const double* x, const double* w,
                                            const double* b, int B, int T, int Di, int W) {
    memset(dx, 0, (size_t)B * T * Di * sizeof(double));
    for (int bi = 0; bi < B; bi++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < Di; d++) {
                size_t m = (size_t)bi * T + t;
                double dxc = du[m * Di + d] * ref_mop_dsilu(ref_mop_conv_pre(x, w, b, bi, t, d, T, Di, W));
                db[d] += dxc;
                for (int k = 0; k < W; k++) {
                    int tt = t - (W - 1) + k;
                    if (tt < 0) continue;
                    size_t src = ((size_t)bi * T + tt) * Di + d;
                    dw[(size_t)d * W + k] += dxc * x[src];
                    dx[src] += dxc * w[(size_t)d * W + k];
                }
            }
}

// ------------------------------------------------------------------------------------------------------------
// selective scan. Per (b, d, n):  delta_t = softplus(dt_raw + dt_bias[d]), A = -exp(A_log[d,n]),
// h_t = exp(delta_t A) h_{t-1} + delta_t B_t[n] u_t (h_{-1} = 0),  y_pre_t = sum_n C_t[n] h_t + D[d] u_t,
// y_t = y_pre_t * silu(z_t).  u, dt_raw, z, y: [B][T][Di]; Bm, Cm: [B][T][N]; A_log: [Di][N]; Dskip, dt_bias: [Di].
// The building blocks below work on one channel (b, d) over a time range [t0, t1), which is what both the plain
// and the chunked (kernel-style: keep only chunk-boundary states, recompute inside chunks) variants need.

// Advances h [N] (in: state at t0-1, out: state at t1-1) over [t0, t1). Stores every state in H [(t1-t0)][N]
// when H is non-NULL, and writes y_pre / y when non-NULL.
static inline void ref_mop_scan_fwd_range(double* h, double* H, double* y, double* y_pre,
                                          const double* u, const double* dt_raw, const double* z,
                                          const double* Bm, const double* Cm, const double* A_log,
                                          const double* Dskip, const double* dt_bias,
                                          int bi, int d, int t0, int t1, int T, int Di, int N) {
    for (int t = t0; t < t1; t++) {
        size_t m = (size_t)bi * T + t, i = m * Di + d;
        double delta = ref_mop_softplus(dt_raw[i] + dt_bias[d]);
        double ut = u[i], acc = Dskip[d] * ut;
        for (int n = 0; n < N; n++) {
            double A = -exp(A_log[(size_t)d * N + n]);
            h[n] = exp(delta * A) * h[n] + delta * Bm[m * N + n] * ut;
            acc += Cm[m * N + n] * h[n];
            if (H) H[(size_t)(t - t0) * N + n] = h[n];
        }
        if (y_pre) y_pre[i] = acc;
        if (y) y[i] = acc * ref_mop_silu(z[i]);
    }
}

// Reverse pass over [t0, t1) of one channel (mamba.md 2.2 step 4, which never divides by exp(delta A): the term
// exp(delta_t A) h_{t-1} is formed as h_t - delta_t B_t u_t). H holds the states of [t0, t1). dh [N]: in = gradient
// reaching h_{t1-1} from later times (0 at the end of the sequence), out = the same for h_{t0-1} (the carry into
// the previous chunk). Writes du, ddt_raw, dz at (b, t, d); adds into dB, dC (sums over d), dA [N] (this channel's
// d row of dL/dA), *dD and *dbias.
static inline void ref_mop_scan_bwd_range(double* dh, double* dA, double* dD, double* dbias,
                                          double* du, double* ddt_raw, double* dz, double* dB, double* dC,
                                          const double* H, const double* dy,
                                          const double* u, const double* dt_raw, const double* z,
                                          const double* Bm, const double* Cm, const double* A_log,
                                          const double* Dskip, const double* dt_bias,
                                          int bi, int d, int t0, int t1, int T, int Di, int N) {
    for (int t = t1 - 1; t >= t0; t--) {
        size_t m = (size_t)bi * T + t, i = m * Di + d;
        const double* ht = H + (size_t)(t - t0) * N;
        double v = dt_raw[i] + dt_bias[d], delta = ref_mop_softplus(v);
        double ut = u[i], zt = z[i];
        double y_pre = Dskip[d] * ut;
        for (int n = 0; n < N; n++) y_pre += Cm[m * N + n] * ht[n];
        double dyt = dy[i] * ref_mop_silu(zt);                 // gradient of y_pre
        dz[i] = dy[i] * y_pre * ref_mop_dsilu(zt);
        double dut = Dskip[d] * dyt, ddelta = 0.0;
        *dD += dyt * ut;
        for (int n = 0; n < N; n++) {
            double A = -exp(A_log[(size_t)d * N + n]);
            double Bn = Bm[m * N + n], Cn = Cm[m * N + n];
            dh[n] += dyt * Cn;                                   // now dL/dh_t (total)
            dC[m * N + n] += dyt * ht[n];
            dB[m * N + n] += dh[n] * delta * ut;
            dut += dh[n] * delta * Bn;
            double ah = ht[n] - delta * Bn * ut;                 // = exp(delta A) h_{t-1}
            ddelta += dh[n] * (Bn * ut + A * ah);
            dA[n] += dh[n] * delta * ah;
            dh[n] *= exp(delta * A);                             // -> dL/dh_{t-1} (partial)
        }
        du[i] = dut;
        double ddt = ddelta * ref_mop_dsoftplus(v);
        ddt_raw[i] = ddt;
        *dbias += ddt;
    }
}

// y (gated) is written; y_pre (ungated, "out" upstream) is written when non-NULL.
static inline void ref_selective_scan_forward(double* y /*[B][T][Di]*/, double* y_pre /*[B][T][Di] or NULL*/,
                                              const double* u /*[B][T][Di]*/, const double* dt_raw /*[B][T][Di]*/,
                                              const double* z /*[B][T][Di]*/, const double* Bm /*[B][T][N]*/,
                                              const double* Cm /*[B][T][N]*/, const double* A_log /*[Di][N]*/,
                                              const double* Dskip /*[Di]*/, const double* dt_bias /*[Di]*/,
                                              int B, int T, int Di, int N) {
    double* h = ref_mop_alloc((size_t)N);
    for (int bi = 0; bi < B; bi++)
        for (int d = 0; d < Di; d++) {
            memset(h, 0, (size_t)N * sizeof(double));
            ref_mop_scan_fwd_range(h, NULL, y, y_pre, u, dt_raw, z, Bm, Cm, A_log, Dskip, dt_bias,
                                   bi, d, 0, T, T, Di, N);
        }
    free(h);
}

// Turns the per-(d,n) dL/dA into dL/dA_log (A = -exp(A_log) => dA_log = dA * A) and accumulates.
static inline void ref_mop_add_dA_log(double* dA_log, const double* dA, const double* A_log, int Di, int N) {
    for (size_t i = 0; i < (size_t)Di * N; i++) dA_log[i] += dA[i] * -exp(A_log[i]);
}

// du, ddt_raw, dz, dB, dC are WRITTEN; dA_log, dDskip, ddt_bias are ACCUMULATED (+=). dy = gradient of the gated y.
// Recomputes and stores all T states of one channel at a time (the chunked variant below stores fewer).
static inline void ref_selective_scan_backward(double* du, double* ddt_raw, double* dz,
                                               double* dB /*[B][T][N]*/, double* dC /*[B][T][N]*/,
                                               double* dA_log /*[Di][N]*/, double* dDskip /*[Di]*/,
                                               double* ddt_bias /*[Di]*/, const double* dy /*[B][T][Di]*/,
                                               const double* u, const double* dt_raw, const double* z,
                                               const double* Bm, const double* Cm, const double* A_log,
                                               const double* Dskip, const double* dt_bias,
                                               int B, int T, int Di, int N) {
    double* h = ref_mop_alloc((size_t)N);
    double* dh = ref_mop_alloc((size_t)N);
    double* H = ref_mop_alloc((size_t)T * N);
    double* dA = ref_mop_alloc((size_t)Di * N);
    memset(dB, 0, (size_t)B * T * N * sizeof(double));
    memset(dC, 0, (size_t)B * T * N * sizeof(double));
    for (int bi = 0; bi < B; bi++)
        for (int d = 0; d < Di; d++) {
            memset(h, 0, (size_t)N * sizeof(double));
            memset(dh, 0, (size_t)N * sizeof(double));
            ref_mop_scan_fwd_range(h, H, NULL, NULL, u, dt_raw, z, Bm, Cm, A_log, Dskip, dt_bias, bi, d, 0, T, T, Di, N);
            ref_mop_scan_bwd_range(dh, dA + (size_t)d * N, dDskip + d, ddt_bias + d, du, ddt_raw, dz, dB, dC, H, dy,
                                   u, dt_raw, z, Bm, Cm, A_log, Dskip, dt_bias, bi, d, 0, T, T, Di, N);
        }
    ref_mop_add_dA_log(dA_log, dA, A_log, Di, N);
    free(h); free(dh); free(H); free(dA);
}

// ------------------------------------------------------------------------------------------------------------
// Chunked variant (the kernels' memory scheme): the forward keeps only the state at the END of every chunk,
// hchunk [B][Di][nchunks][N]; the backward walks chunks last-to-first, recomputes the states inside a chunk from
// the previous chunk's boundary state, and carries dh across the chunk boundary.

static inline int ref_scan_num_chunks(int T, int chunk) { return (T + chunk - 1) / chunk; }

static inline void ref_selective_scan_forward_chunked(double* y, double* y_pre /*or NULL*/,
                                                      double* hchunk /*[B][Di][nchunks][N]*/,
                                                      const double* u, const double* dt_raw, const double* z,
                                                      const double* Bm, const double* Cm, const double* A_log,
                                                      const double* Dskip, const double* dt_bias,
                                                      int B, int T, int Di, int N, int chunk) {
    int nch = ref_scan_num_chunks(T, chunk);
    double* h = ref_mop_alloc((size_t)N);
    for (int bi = 0; bi < B; bi++)
        for (int d = 0; d < Di; d++) {
            memset(h, 0, (size_t)N * sizeof(double));
            for (int c = 0; c < nch; c++) {
                int t0 = c * chunk, t1 = t0 + chunk < T ? t0 + chunk : T;
                ref_mop_scan_fwd_range(h, NULL, y, y_pre, u, dt_raw, z, Bm, Cm, A_log, Dskip, dt_bias,
                                       bi, d, t0, t1, T, Di, N);
                memcpy(hchunk + (((size_t)bi * Di + d) * nch + c) * N, h, (size_t)N * sizeof(double));
            }
        }
    free(h);
}

// Same outputs and accumulation semantics as ref_selective_scan_backward; hchunk from the chunked forward.
static inline void ref_selective_scan_backward_chunked(double* du, double* ddt_raw, double* dz, double* dB, double* dC,
                                                       double* dA_log, double* dDskip, double* ddt_bias,
                                                       const double* dy, const double* hchunk,
                                                       const double* u, const double* dt_raw, const double* z,
                                                       const double* Bm, const double* Cm, const double* A_log,
                                                       const double* Dskip, const double* dt_bias,
                                                       int B, int T, int Di, int N, int chunk) {
    int nch = ref_scan_num_chunks(T, chunk);
    double* h = ref_mop_alloc((size_t)N);
    double* dh = ref_mop_alloc((size_t)N);
    double* H = ref_mop_alloc((size_t)chunk * N);
    double* dA = ref_mop_alloc((size_t)Di * N);
    memset(dB, 0, (size_t)B * T * N * sizeof(double));
    memset(dC, 0, (size_t)B * T * N * sizeof(double));
    for (int bi = 0; bi < B; bi++)
        for (int d = 0; d < Di; d++) {
            memset(dh, 0, (size_t)N * sizeof(double));
            for (int c = nch - 1; c >= 0; c--) {
                int t0 = c * chunk, t1 = t0 + chunk < T ? t0 + chunk : T;
                if (c == 0) memset(h, 0, (size_t)N * sizeof(double));
                else memcpy(h, hchunk + (((size_t)bi * Di + d) * nch + c - 1) * N, (size_t)N * sizeof(double));
                ref_mop_scan_fwd_range(h, H, NULL, NULL, u, dt_raw, z, Bm, Cm, A_log, Dskip, dt_bias,
                                       bi, d, t0, t1, T, Di, N);
                ref_mop_scan_bwd_range(dh, dA + (size_t)d * N, dDskip + d, ddt_bias + d, du, ddt_raw, dz, dB, dC,
                                       H, dy, u, dt_raw, z, Bm, Cm, A_log, Dskip, dt_bias, bi, d, t0, t1, T, Di, N);
            }
        }
    ref_mop_add_dA_log(dA_log, dA, A_log, Di, N);
    free(h); free(dh); free(H); free(dA);
}

#endif // TEST_REF_MAMBA_OP_H
