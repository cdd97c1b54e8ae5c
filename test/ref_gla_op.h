// ref_gla_op.h: double-precision CPU reference of the GLA operator (gla.md section 2), one (b,h) slice.
// Owns the ground truth that the CUDA chunk kernel (common/gla_chunk.cuh) and the whole-model reference
// (test/ref_gla.h) are checked against. Plain C11 / C++17, header-only, no globals.
//
// Slice layout (callers loop over b,h and gather/scatter the [B,T,H,d] tensors):
//   q, k, g, dq, dk, dg : [T][K] contiguous      v, o, d_o, dv : [T][V] contiguous
//   g is the natural-log forget gate (<= 0); scale is normally K^-0.5. Initial state is zero.
//
// Math: S_t = diag(exp g_t) S_{t-1} + k_t^T v_t  (S: [K][V]),  o_t = scale * q_t S_t.
//
// Entry points:
//   ref_gla_op_forward          naive recurrence, O(K*V) memory (THE reference)
//   ref_gla_op_backward         exact gradients of sum(o*d_o): forward sweep for dq, reverse dS sweep
//                               for dk, dv, and dg as a reverse cumsum of q*dq - k*dk (exact because no
//                               loss term reads the final state S_T). O(K*V) memory: usable at T = 2048.
//   ref_gla_op_forward_chunked  chunk form (gla.md 2.2/2.8), chunk REF_GLA_CHUNK = 64, direct A_ij
//   ref_gla_op_backward_chunked chunk backward (gla.md 2.7) with direct (unsub-chunked) A, dA; a second,
//                               independent route to the same gradients, and the per-chunk quantities
//                               (H_n, dHe_n) a CUDA port produces.
// All outputs are WRITTEN (never accumulated).
#ifndef REF_GLA_OP_H
#define REF_GLA_OP_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REF_GLA_CHUNK 64

static inline double* ref_gla_op_alloc_(size_t n) {
    double* p = (double*)calloc(n ? n : 1, sizeof(double));
    if (!p) { abort(); }
    return p;
}

// o [T][V] = scale * q_t S_t with the naive recurrence.
static inline void ref_gla_op_forward(double* o, const double* q, const double* k, const double* v,
                                      const double* g, int T, int K, int V, double scale) {
    double* S = ref_gla_op_alloc_((size_t)K * V);   // [K][V]
    for (int t = 0; t < T; t++) {
        const double* qt = q + (size_t)t * K;
        const double* kt = k + (size_t)t * K;
        const double* gt = g + (size_t)t * K;
        const double* vt = v + (size_t)t * V;
        double* ot = o + (size_t)t * V;
        for (int a = 0; a < K; a++) {
            double d = exp(gt[a]);
            double* Sa = S + (size_t)a * V;
            for (int b = 0; b < V; b++) Sa[b] = Sa[b] * d + kt[a] * vt[b];
        }
        for (int b = 0; b < V; b++) ot[b] = 0.0;
        for (int a = 0; a < K; a++) {
            const double* Sa = S + (size_t)a * V;
            double qa = scale * qt[a];
            for (int b = 0; b < V; b++) ot[b] += qa * Sa[b];
        }
    }
    free(S);
}

// Gradients of L = sum(o * d_o). dq_t = scale * S_t d_o_t^T needs the forward states, so it is taken
// on a forward sweep; dS_t = diag(exp g_{t+1}) dS_{t+1} + scale q_t^T d_o_t is carried backward and
// gives dk_t = dS_t v_t^T, dv_t = k_t dS_t. Because G_t = sum_{r<=t} g_r enters o only through
// q_t exp(G_t) and k_t exp(-G_t) (nothing reads S_T), dg_r = sum_{t>=r} (q_t dq_t - k_t dk_t).
static inline void ref_gla_op_backward(double* dq, double* dk, double* dv, double* dg, const double* d_o,
                                       const double* q, const double* k, const double* v, const double* g,
                                       int T, int K, int V, double scale) {
    double* S = ref_gla_op_alloc_((size_t)K * V);   // [K][V], state, then state gradient
    for (int t = 0; t < T; t++) {                   // forward sweep: dq
        const double* kt = k + (size_t)t * K;
        const double* gt = g + (size_t)t * K;
        const double* vt = v + (size_t)t * V;
        const double* dot = d_o + (size_t)t * V;
        for (int a = 0; a < K; a++) {
            double d = exp(gt[a]), acc = 0.0;
            double* Sa = S + (size_t)a * V;
            for (int b = 0; b < V; b++) { Sa[b] = Sa[b] * d + kt[a] * vt[b]; acc += Sa[b] * dot[b]; }
            dq[(size_t)t * K + a] = scale * acc;
        }
    }
    memset(S, 0, (size_t)K * V * sizeof(double));
    for (int t = T - 1; t >= 0; t--) {              // reverse sweep: dS, dk, dv
        const double* qt = q + (size_t)t * K;
        const double* kt = k + (size_t)t * K;
        const double* vt = v + (size_t)t * V;
        const double* dot = d_o + (size_t)t * V;
        double* dvt = dv + (size_t)t * V;
        if (t + 1 < T) {                             // decay applied at step t+1 flows back to S_t
            const double* gn = g + (size_t)(t + 1) * K;
            for (int a = 0; a < K; a++) {
                double d = exp(gn[a]);
                double* Sa = S + (size_t)a * V;
                for (int b = 0; b < V; b++) Sa[b] *= d;
            }
        }
        for (int b = 0; b < V; b++) dvt[b] = 0.0;
        for (int a = 0; a < K; a++) {
            double* Sa = S + (size_t)a * V;
            double qa = scale * qt[a], acc = 0.0;
            for (int b = 0; b < V; b++) {
                Sa[b] += qa * dot[b];
                acc += Sa[b] * vt[b];
                dvt[b] += kt[a] * Sa[b];
            }
            dk[(size_t)t * K + a] = acc;
        }
    }
    free(S);
    for (int a = 0; a < K; a++) {                   // reverse inclusive cumsum over the whole sequence
        double run = 0.0;
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t)t * K + a;
            run += q[i] * dq[i] - k[i] * dk[i];
            dg[i] = run;
        }
    }
}

// Chunk-local inclusive cumsum of g over rows [n0, e): Gc[(t-n0)*K + a].
static inline void ref_gla_op_chunk_cumsum_(double* Gc, const double* g, int n0, int e, int K) {
    for (int a = 0; a < K; a++) {
        double acc = 0.0;
        for (int t = n0; t < e; t++) { acc += g[(size_t)t * K + a]; Gc[(size_t)(t - n0) * K + a] = acc; }
    }
}

// A_ij = scale * sum_a q_i[a] k_j[a] exp(Gc_i[a] - Gc_j[a]) for n0 <= j <= i < e (exponent <= 0).
static inline double ref_gla_op_chunk_A_(const double* q, const double* k, const double* Gc, int n0,
                                         int i, int j, int K, double scale) {
    const double* qi = q + (size_t)i * K;
    const double* kj = k + (size_t)j * K;
    const double* Gi = Gc + (size_t)(i - n0) * K;
    const double* Gj = Gc + (size_t)(j - n0) * K;
    double acc = 0.0;
    for (int a = 0; a < K; a++) acc += qi[a] * kj[a] * exp(Gi[a] - Gj[a]);
    return scale * acc;
}

// S [K][V] <- diag(exp Gc_last) S + sum_{j in chunk} (k_j * exp(Gc_last - Gc_j))^T v_j  (H_n -> H_{n+1}).
static inline void ref_gla_op_chunk_state_step_(double* S, const double* k, const double* v,
                                                const double* Gc, int n0, int e, int K, int V) {
    const double* Gl = Gc + (size_t)(e - 1 - n0) * K;
    for (int a = 0; a < K; a++) {
        double d = exp(Gl[a]);
        double* Sa = S + (size_t)a * V;
        for (int b = 0; b < V; b++) Sa[b] *= d;
    }
    for (int j = n0; j < e; j++) {
        const double* Gj = Gc + (size_t)(j - n0) * K;
        const double* vj = v + (size_t)j * V;
        for (int a = 0; a < K; a++) {
            double kd = k[(size_t)j * K + a] * exp(Gl[a] - Gj[a]);
            double* Sa = S + (size_t)a * V;
            for (int b = 0; b < V; b++) Sa[b] += kd * vj[b];
        }
    }
}

// Chunk form (gla.md 2.2): o_i = scale (q_i * exp Gc_i) H_n + sum_{j<=i in chunk} A_ij v_j.
static inline void ref_gla_op_forward_chunked(double* o, const double* q, const double* k, const double* v,
                                              const double* g, int T, int K, int V, double scale) {
    const int C = REF_GLA_CHUNK;
    double* S = ref_gla_op_alloc_((size_t)K * V);
    double* Gc = ref_gla_op_alloc_((size_t)C * K);
    for (int n0 = 0; n0 < T; n0 += C) {
        int e = n0 + C < T ? n0 + C : T;
        ref_gla_op_chunk_cumsum_(Gc, g, n0, e, K);
        for (int i = n0; i < e; i++) {
            double* oi = o + (size_t)i * V;
            const double* Gi = Gc + (size_t)(i - n0) * K;
            for (int b = 0; b < V; b++) oi[b] = 0.0;
            for (int a = 0; a < K; a++) {
                double qa = scale * q[(size_t)i * K + a] * exp(Gi[a]);
                const double* Sa = S + (size_t)a * V;
                for (int b = 0; b < V; b++) oi[b] += qa * Sa[b];
            }
            for (int j = n0; j <= i; j++) {
                double A = ref_gla_op_chunk_A_(q, k, Gc, n0, i, j, K, scale);
                const double* vj = v + (size_t)j * V;
                for (int b = 0; b < V; b++) oi[b] += A * vj[b];
            }
        }
        ref_gla_op_chunk_state_step_(S, k, v, Gc, n0, e, K, V);
    }
    free(Gc);
    free(S);
}

// Chunk backward (gla.md 2.7), direct A and dA (no secondary chunking). Same outputs as
// ref_gla_op_backward. Memory: O(NT*K*V) for the chunk-start states H_n and end-of-chunk gradients dHe_n.
static inline void ref_gla_op_backward_chunked(double* dq, double* dk, double* dv, double* dg,
                                               const double* d_o, const double* q, const double* k,
                                               const double* v, const double* g, int T, int K, int V,
                                               double scale) {
    const int C = REF_GLA_CHUNK;
    const int NT = (T + C - 1) / C;
    const size_t KV = (size_t)K * V;
    double* H = ref_gla_op_alloc_((size_t)NT * KV);     // [NT][K][V] state at chunk start
    double* dHe = ref_gla_op_alloc_((size_t)NT * KV);   // [NT][K][V] dL/d(state at chunk end)
    double* Gc = ref_gla_op_alloc_((size_t)T * K);      // chunk-local cumsums, all chunks
    double* dgk = ref_gla_op_alloc_((size_t)K);
    for (int n = 0; n < NT; n++) {                      // recompute Gc and H_n
        int n0 = n * C, e = n0 + C < T ? n0 + C : T;
        ref_gla_op_chunk_cumsum_(Gc + (size_t)n0 * K, g, n0, e, K);
        if (n + 1 < NT) {
            memcpy(H + (size_t)(n + 1) * KV, H + (size_t)n * KV, KV * sizeof(double));
            ref_gla_op_chunk_state_step_(H + (size_t)(n + 1) * KV, k, v, Gc + (size_t)n0 * K, n0, e, K, V);
        }
    }
    for (int n = NT - 1; n > 0; n--) {                  // dHe_{n-1} = decayed dHe_n + chunk n's q^T d_o
        int n0 = n * C, e = n0 + C < T ? n0 + C : T;
        const double* Gl = Gc + (size_t)(e - 1) * K;
        double* cur = dHe + (size_t)(n - 1) * KV;
        memcpy(cur, dHe + (size_t)n * KV, KV * sizeof(double));
        for (int a = 0; a < K; a++) {
            double d = exp(Gl[a]);
            for (int b = 0; b < V; b++) cur[(size_t)a * V + b] *= d;
        }
        for (int t = n0; t < e; t++)
            for (int a = 0; a < K; a++) {
                double qa = scale * q[(size_t)t * K + a] * exp(Gc[(size_t)t * K + a]);
                for (int b = 0; b < V; b++) cur[(size_t)a * V + b] += qa * d_o[(size_t)t * V + b];
            }
    }
    for (int n = 0; n < NT; n++) {
        int n0 = n * C, e = n0 + C < T ? n0 + C : T;
        const double* Hn = H + (size_t)n * KV;
        const double* dHn = dHe + (size_t)n * KV;
        const double* Gl = Gc + (size_t)(e - 1) * K;
        for (int a = 0; a < K; a++) {                   // exp(Gc_last) * rowsum(H_n * dHe_n)
            double acc = 0.0;
            for (int b = 0; b < V; b++) acc += Hn[(size_t)a * V + b] * dHn[(size_t)a * V + b];
            dgk[a] = exp(Gl[a]) * acc;
        }
        for (int j = n0; j < e; j++) {
            const double* Gj = Gc + (size_t)j * K;
            const double* vj = v + (size_t)j * V;
            double* dvj = dv + (size_t)j * V;
            double* dqj = dq + (size_t)j * K;
            double* dkj = dk + (size_t)j * K;
            for (int b = 0; b < V; b++) dvj[b] = 0.0;
            for (int a = 0; a < K; a++) {               // inter-chunk terms
                double ed = exp(Gl[a] - Gj[a]), kd = k[(size_t)j * K + a] * ed, accq = 0.0, acck = 0.0;
                for (int b = 0; b < V; b++) {
                    dvj[b] += kd * dHn[(size_t)a * V + b];
                    accq += d_o[(size_t)j * V + b] * Hn[(size_t)a * V + b];
                    acck += vj[b] * dHn[(size_t)a * V + b];
                }
                dqj[a] = scale * exp(Gj[a]) * accq;
                dkj[a] = ed * acck;
                dgk[a] += k[(size_t)j * K + a] * ed * acck;
            }
        }
        for (int i = n0; i < e; i++)                    // intra-chunk terms through A and dA
            for (int j = n0; j <= i; j++) {
                double A = ref_gla_op_chunk_A_(q, k, Gc + (size_t)n0 * K, n0, i, j, K, scale);
                double dA = 0.0;
                for (int b = 0; b < V; b++) {
                    dv[(size_t)j * V + b] += A * d_o[(size_t)i * V + b];
                    dA += d_o[(size_t)i * V + b] * v[(size_t)j * V + b];
                }
                dA *= scale;
                for (int a = 0; a < K; a++) {
                    double ex = exp(Gc[(size_t)i * K + a] - Gc[(size_t)j * K + a]);
                    dq[(size_t)i * K + a] += dA * k[(size_t)j * K + a] * ex;
                    dk[(size_t)j * K + a] += dA * q[(size_t)i * K + a] * ex;
                }
            }
        for (int a = 0; a < K; a++) {                   // reverse inclusive cumsum inside the chunk + dgk
            double run = 0.0;
            for (int t = e - 1; t >= n0; t--) {
                size_t ix = (size_t)t * K + a;
                run += q[ix] * dq[ix] - k[ix] * dk[ix];
                dg[ix] = run + dgk[a];
            }
        }
    }
    free(dgk); free(Gc); free(dHe); free(H);
}

#endif // REF_GLA_OP_H
