/*
 * ref_core.h — double-precision CPU references of the model-independent pieces: linear layers,
 * RMSNorm, SwiGLU, softmax cross-entropy, token embedding, and two small GLA pieces (the gated output
 * RMSNorm and the logsigmoid forget gate). Written from the formulas in ../shared/docs (gla.md 1.3-1.6,
 * 2.7; mamba.md 2.1). Used by test/ (model references, finite-difference tests) and dev/ (kernel checks).
 * Conventions: row-major, M rows (tokens); W[out][in] as nn.Linear; "+=" outputs accumulate, others are
 * written. Plain C.
 */
#ifndef TEST_REF_CORE_H
#define TEST_REF_CORE_H

#include <math.h>
#include <stddef.h>
#include <string.h>

/* y[M,N] = x[M,K] W[N,K]^T (+ b[N]) */
static inline void ref_linear_forward(double* y, const double* x, const double* W, const double* b, int M, int N, int K) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = b ? b[n] : 0.0;
            const double* xr = x + (size_t)m * K;
            const double* wr = W + (size_t)n * K;
            for (int k = 0; k < K; k++) s += xr[k] * wr[k];
            y[(size_t)m * N + n] = s;
        }
}
/* dx[M,K] += dy W ; dW[N,K] += dy^T x ; db[N] += sum_m dy  (any output may be NULL) */
static inline void ref_linear_backward(double* dx, double* dW, double* db, const double* dy, const double* x,
                                       const double* W, int M, int N, int K) {
    for (int m = 0; m < M; m++) {
        const double* dyr = dy + (size_t)m * N;
        for (int n = 0; n < N; n++) {
            double g = dyr[n];
            if (g == 0.0) continue;
            if (dx) for (int k = 0; k < K; k++) dx[(size_t)m * K + k] += g * W[(size_t)n * K + k];
            if (dW) for (int k = 0; k < K; k++) dW[(size_t)n * K + k] += g * x[(size_t)m * K + k];
            if (db) db[n] += g;
        }
    }
}

/* y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps), per row of C */
static inline void ref_rmsnorm_forward(double* y, double* rstd, const double* x, const double* w, int M, int C, double eps) {
    for (int m = 0; m < M; m++) {
        const double* xr = x + (size_t)m * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
        double r = 1.0 / sqrt(ss / C + eps);
        if (rstd) rstd[m] = r;
        for (int c = 0; c < C; c++) y[(size_t)m * C + c] = xr[c] * r * w[c];
    }
}
/* dx += r*(w*dy - xhat*mean(xhat*w*dy)) ; dw += sum_rows dy*xhat */
static inline void ref_rmsnorm_backward(double* dx, double* dw, const double* dy, const double* x, const double* rstd,
                                        const double* w, int M, int C) {
    for (int m = 0; m < M; m++) {
        const double* xr = x + (size_t)m * C;
        const double* dyr = dy + (size_t)m * C;
        double r = rstd[m], c1 = 0;
        for (int c = 0; c < C; c++) c1 += xr[c] * r * w[c] * dyr[c];
        c1 /= C;
        for (int c = 0; c < C; c++) {
            double xhat = xr[c] * r;
            if (dx) dx[(size_t)m * C + c] += r * (w[c] * dyr[c] - xhat * c1);
            if (dw) dw[c] += dyr[c] * xhat;
        }
    }
}

static inline double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* out[M,I] = silu(h[:, :I]) * h[:, I:]   with h [M, 2I] (gate columns first, then up) */
static inline void ref_swiglu_forward(double* out, const double* h, int M, int I) {
    for (int m = 0; m < M; m++)
        for (int i = 0; i < I; i++) {
            double a = h[(size_t)m * 2 * I + i], b = h[(size_t)m * 2 * I + I + i];
            out[(size_t)m * I + i] = a * ref_sigmoid(a) * b;
        }
}
/* dh[M,2I] written */
static inline void ref_swiglu_backward(double* dh, const double* dout, const double* h, int M, int I) {
    for (int m = 0; m < M; m++)
        for (int i = 0; i < I; i++) {
            double a = h[(size_t)m * 2 * I + i], b = h[(size_t)m * 2 * I + I + i];
            double s = ref_sigmoid(a), g = dout[(size_t)m * I + i];
            dh[(size_t)m * 2 * I + i] = g * b * s * (1.0 + a * (1.0 - s));
            dh[(size_t)m * 2 * I + I + i] = g * a * s;
        }
}

/* losses[M] = logsumexp(logits_m) - logits_m[t_m] (0 where t_m < 0); returns the mean over valid rows */
static inline double ref_ce_forward(double* losses, const double* logits, const int* targets, int M, int Vc) {
    double sum = 0;
    int nvalid = 0;
    for (int m = 0; m < M; m++) {
        const double* l = logits + (size_t)m * Vc;
        double mx = l[0];
        for (int v = 1; v < Vc; v++) mx = l[v] > mx ? l[v] : mx;
        double se = 0;
        for (int v = 0; v < Vc; v++) se += exp(l[v] - mx);
        double loss = targets[m] < 0 ? 0.0 : (log(se) + mx - l[targets[m]]);
        if (losses) losses[m] = loss;
        if (targets[m] >= 0) { sum += loss; nvalid++; }
    }
    return nvalid ? sum / nvalid : 0.0;
}
/* dlogits[M,Vc] written = dloss * (softmax - onehot) on valid rows, 0 on ignored rows */
static inline void ref_ce_backward(double* dlogits, const double* logits, const int* targets, int M, int Vc, double dloss) {
    for (int m = 0; m < M; m++) {
        const double* l = logits + (size_t)m * Vc;
        double* d = dlogits + (size_t)m * Vc;
        if (targets[m] < 0) { memset(d, 0, sizeof(double) * (size_t)Vc); continue; }
        double mx = l[0];
        for (int v = 1; v < Vc; v++) mx = l[v] > mx ? l[v] : mx;
        double se = 0;
        for (int v = 0; v < Vc; v++) se += exp(l[v] - mx);
        for (int v = 0; v < Vc; v++) d[v] = dloss * (exp(l[v] - mx) / se - (v == targets[m] ? 1.0 : 0.0));
    }
}
static inline int ref_count_valid(const int* targets, int M) {
    int n = 0;
    for (int m = 0; m < M; m++) n += targets[m] >= 0;
    return n;
}

/* out[M,D] = E[ids] ; dE[Vc,D] += scatter of dout rows */
static inline void ref_embedding_forward(double* out, const int* ids, const double* E, int M, int D) {
    for (int m = 0; m < M; m++) memcpy(out + (size_t)m * D, E + (size_t)ids[m] * D, sizeof(double) * (size_t)D);
}
static inline void ref_embedding_backward(double* dE, const double* dout, const int* ids, int M, int D) {
    for (int m = 0; m < M; m++)
        for (int d = 0; d < D; d++) dE[(size_t)ids[m] * D + d] += dout[(size_t)m * D + d];
}

/* GLA output path (gla.md 1.4): for each (row m, head h), x = o[m, h*V : h*V+V],
 * y = x*rstd*w * gt*sigmoid(gt), rstd = 1/sqrt(mean(x^2)+eps); w[V] shared by all heads.
 * o, gt, y: [M, H*V]; rstd: [M*H] */
static inline void ref_gated_rmsnorm_forward(double* y, double* rstd, const double* o, const double* gt, const double* w,
                                             int M, int H, int V, double eps) {
    for (size_t r = 0; r < (size_t)M * H; r++) {
        const double* x = o + r * V;
        double ss = 0;
        for (int d = 0; d < V; d++) ss += x[d] * x[d];
        double rs = 1.0 / sqrt(ss / V + eps);
        if (rstd) rstd[r] = rs;
        for (int d = 0; d < V; d++) {
            double g = gt[r * V + d];
            y[r * V + d] = x[d] * rs * w[d] * g * ref_sigmoid(g);
        }
    }
}
/* d_o, dgt written; dw[V] += (gla.md 2.7 step 8) */
static inline void ref_gated_rmsnorm_backward(double* d_o, double* dgt, double* dw, const double* dy, const double* o,
                                              const double* gt, const double* rstd, const double* w, int M, int H, int V) {
    for (size_t r = 0; r < (size_t)M * H; r++) {
        const double* x = o + r * V;
        double rs = rstd[r], c1 = 0;
        for (int d = 0; d < V; d++) {
            double g = gt[r * V + d], s = ref_sigmoid(g);
            double xhat = x[d] * rs, yn = xhat * w[d];
            double dyv = dy[r * V + d];
            dgt[r * V + d] = dyv * yn * (s + g * s * (1.0 - s));
            double dyp = dyv * g * s;
            if (dw) dw[d] += dyp * xhat;
            c1 += xhat * dyp * w[d];
        }
        c1 /= V;
        for (int d = 0; d < V; d++) {
            double g = gt[r * V + d], s = ref_sigmoid(g);
            double dyp = dy[r * V + d] * g * s;
            d_o[r * V + d] = (dyp * w[d] - x[d] * rs * c1) * rs;
        }
    }
}

/* GLA forget gate (gla.md 1.4): g[M,Dk] = logsigmoid(z + b) / 16 */
static inline double ref_logsigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static inline void ref_gla_gate_forward(double* g, const double* z, const double* b, int M, int Dk) {
    for (int m = 0; m < M; m++)
        for (int k = 0; k < Dk; k++) g[(size_t)m * Dk + k] = ref_logsigmoid(z[(size_t)m * Dk + k] + b[k]) / 16.0;
}
/* dz written; db[Dk] += ; d logsigmoid(x)/dx = sigmoid(-x) */
static inline void ref_gla_gate_backward(double* dz, double* db, const double* dg, const double* z, const double* b, int M, int Dk) {
    for (int m = 0; m < M; m++)
        for (int k = 0; k < Dk; k++) {
            double x = z[(size_t)m * Dk + k] + b[k];
            double d = dg[(size_t)m * Dk + k] * ref_sigmoid(-x) / 16.0;
            dz[(size_t)m * Dk + k] = d;
            if (db) db[k] += d;
        }
}

#endif /* TEST_REF_CORE_H */
