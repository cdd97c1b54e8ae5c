// ref_gla.h: double-precision CPU reference of the whole GLA language model (fla GLAForCausalLM, gla.md 1.3-1.7)
// on the flat parameter layout of notes/design.md: config, parameter table, fla's init, and the loss with its
// gradient w.r.t. every parameter. The trainer's forward/backward is checked against this at tiny sizes.
// Building blocks come from test/ref_core.h (linear, norms, SwiGLU, CE, embedding, gated norm, gate) and
// test/ref_gla_op.h (the GLA operator). Plain C11 / C++17, header-only.
//
// Model (M = B*T token rows, Dk = D*expand_k, Dv = D*expand_v, K = Dk/H, V = Dv/H, I MLP width):
//   h = E[ids]
//   per layer: a = RMSNorm(h; attn_norm)
//              [q|k|v|gt|z1] = a w_in^T                      (w_in [2Dk+2Dv+16, D])
//              g = logsigmoid(z1 gk1_w^T + gk1_b) / 16       (per key channel, <= 0)
//              o = GLA(q, k, v, g) per (b,h), scale K^-0.5   (ref_gla_op.h)
//              h += (RMSNorm_per_head(o; gnorm) * silu(gt)) w_o^T
//              m = RMSNorm(h; mlp_norm);  h += (silu(m Wg^T) * (m Wu^T)) w_down^T   (w_gateup rows: gate | up)
//   y = RMSNorm(h; final_norm);  logits = y W^T  (W = embed when tied, else lm_head)
//   loss = mean over rows with target >= 0 of softmax cross-entropy (target -1 = ignore)
#ifndef REF_GLA_H
#define REF_GLA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "ref_core.h"
#include "ref_gla_op.h"

#define REF_GLA_GATE_RANK 16   // fla's gate_low_rank_dim (not configurable in GLABlock)

typedef struct {
    int Vc, D, L, H;          // vocabulary, model width, layers, heads
    double expand_k, expand_v;
    int I;                    // MLP width; 0 = fla's rule (ref_gla_default_mlp_width)
    int tied;                 // 1: the classifier uses embed and there is no lm_head tensor
    double eps;               // all RMSNorms (fla: norm_eps = 1e-6)
} RefGLAConfig;

typedef struct {
    char name[32];            // "embed", "l3.w_in", "final_norm", ...
    size_t offset, numel;     // in elements of the flat buffer
    int rows, cols;           // row-major shape; vectors have rows = 1
    int decay;                // 1: AdamW weight decay applies (matrices, embedding); 0: norms, biases
} RefGLATensor;

// fla GatedMLP with intermediate_size=None: 256 * ceil(int(D*4*2/3) / 256).
static inline int ref_gla_default_mlp_width(int D) {
    int raw = (8 * D) / 3;
    return 256 * ((raw + 255) / 256);
}
static inline int ref_gla_mlp_width(const RefGLAConfig* c) { return c->I > 0 ? c->I : ref_gla_default_mlp_width(c->D); }
static inline int ref_gla_key_dim(const RefGLAConfig* c) { return (int)(c->D * c->expand_k); }
static inline int ref_gla_value_dim(const RefGLAConfig* c) { return (int)(c->D * c->expand_v); }
static inline int ref_gla_in_rows(const RefGLAConfig* c) {   // rows of w_in: q Dk | k Dk | v Dv | gate Dv | gk0 16
    return 2 * ref_gla_key_dim(c) + 2 * ref_gla_value_dim(c) + REF_GLA_GATE_RANK;
}

enum { REF_GLA_TENSORS_PER_LAYER = 9 };   // attn_norm w_in gk1_w gk1_b gnorm w_o mlp_norm w_gateup w_down
static inline int ref_gla_num_tensors(const RefGLAConfig* c) {
    return 1 + REF_GLA_TENSORS_PER_LAYER * c->L + 1 + (c->tied ? 0 : 1);
}

static inline void ref_gla_tensor_add_(RefGLATensor* t, int* n, size_t* off, const char* name, int l,
                                       int rows, int cols, int decay) {
    RefGLATensor* e = &t[(*n)++];
    if (l >= 0) snprintf(e->name, sizeof e->name, "l%d.%s", l, name);
    else snprintf(e->name, sizeof e->name, "%s", name);
    e->offset = *off; e->rows = rows; e->cols = cols;
    e->numel = (size_t)rows * cols; e->decay = decay;
    *off += e->numel;
}

// Fills t[ref_gla_num_tensors(c)] in layout order (the one definition of the flat layout); returns the count.
static inline int ref_gla_tensors(const RefGLAConfig* c, RefGLATensor* t) {
    const int D = c->D, Dk = ref_gla_key_dim(c), Dv = ref_gla_value_dim(c), I = ref_gla_mlp_width(c);
    const int V = Dv / c->H;
    int n = 0;
    size_t off = 0;
    ref_gla_tensor_add_(t, &n, &off, "embed", -1, c->Vc, D, 1);
    for (int l = 0; l < c->L; l++) {
        ref_gla_tensor_add_(t, &n, &off, "attn_norm", l, 1, D, 0);
        ref_gla_tensor_add_(t, &n, &off, "w_in", l, ref_gla_in_rows(c), D, 1);
        ref_gla_tensor_add_(t, &n, &off, "gk1_w", l, Dk, REF_GLA_GATE_RANK, 1);
        ref_gla_tensor_add_(t, &n, &off, "gk1_b", l, 1, Dk, 0);
        ref_gla_tensor_add_(t, &n, &off, "gnorm", l, 1, V, 0);
        ref_gla_tensor_add_(t, &n, &off, "w_o", l, D, Dv, 1);
        ref_gla_tensor_add_(t, &n, &off, "mlp_norm", l, 1, D, 0);
        ref_gla_tensor_add_(t, &n, &off, "w_gateup", l, 2 * I, D, 1);
        ref_gla_tensor_add_(t, &n, &off, "w_down", l, D, I, 1);
    }
    ref_gla_tensor_add_(t, &n, &off, "final_norm", -1, 1, D, 0);
    if (!c->tied) ref_gla_tensor_add_(t, &n, &off, "lm_head", -1, c->Vc, D, 1);
    return n;
}

static inline RefGLATensor* ref_gla_tensor_table_(const RefGLAConfig* c) {
    RefGLATensor* t = (RefGLATensor*)malloc(sizeof(RefGLATensor) * (size_t)ref_gla_num_tensors(c));
    if (!t) { fprintf(stderr, "error: ref_gla: out of memory\n"); exit(1); }
    ref_gla_tensors(c, t);
    return t;
}

static inline size_t ref_gla_num_params(const RefGLAConfig* c) {
    RefGLATensor* t = ref_gla_tensor_table_(c);
    int n = ref_gla_num_tensors(c);
    size_t total = t[n - 1].offset + t[n - 1].numel;
    free(t);
    return total;
}

// fla's current init (gla.md 1.7): every Linear weight and the embedding ~ N(0, 0.02^2), gk1 bias 0, norm
// weights 1, no residual rescaling. Normals are drawn from ONE rng_seed(seed) stream, tensor by tensor in
// layout order (only decayed tensors draw), so a trainer that follows the same order gets the same bits.
static inline void ref_gla_init_params(const RefGLAConfig* c, double* params, uint64_t seed) {
    RefGLATensor* t = ref_gla_tensor_table_(c);
    int n = ref_gla_num_tensors(c);
    Rng r = rng_seed(seed);
    for (int i = 0; i < n; i++) {
        double* p = params + t[i].offset;
        int is_bias = strstr(t[i].name, "gk1_b") != NULL;
        for (size_t e = 0; e < t[i].numel; e++)
            p[e] = t[i].decay ? 0.02 * rng_normal(&r) : (is_bias ? 0.0 : 1.0);
    }
    free(t);
}

// ------------------------------------------------------------------------------------ internals
static inline double* ref_gla_zalloc_(size_t n) {
    double* p = (double*)calloc(n ? n : 1, sizeof(double));
    if (!p) { fprintf(stderr, "error: ref_gla: out of memory\n"); exit(1); }
    return p;
}

// dst[M, n] = src[M, ld] columns [col0, col0+n)  (split a fused projection into its blocks)
static inline void ref_gla_get_cols_(double* dst, const double* src, int M, int ld, int col0, int n) {
    for (int m = 0; m < M; m++) memcpy(dst + (size_t)m * n, src + (size_t)m * ld + col0, sizeof(double) * (size_t)n);
}
static inline void ref_gla_put_cols_(double* dst, int ld, int col0, const double* src, int M, int n) {
    for (int m = 0; m < M; m++) memcpy(dst + (size_t)m * ld + col0, src + (size_t)m * n, sizeof(double) * (size_t)n);
}
// [B,T,H,d] token-major <-> one (b,h) slice [T][d]
static inline void ref_gla_get_head_(double* dst, const double* src, int b, int h, int T, int H, int d) {
    for (int t = 0; t < T; t++)
        memcpy(dst + (size_t)t * d, src + (((size_t)b * T + t) * H + h) * d, sizeof(double) * (size_t)d);
}
static inline void ref_gla_put_head_(double* dst, const double* src, int b, int h, int T, int H, int d) {
    for (int t = 0; t < T; t++)
        memcpy(dst + (((size_t)b * T + t) * H + h) * d, src + (size_t)t * d, sizeof(double) * (size_t)d);
}

typedef struct {   // per-layer parameter pointers into the flat buffer (params or grads)
    double *attn_norm, *w_in, *gk1_w, *gk1_b, *gnorm, *w_o, *mlp_norm, *w_gateup, *w_down;
} RefGLALayer_;
static inline RefGLALayer_ ref_gla_layer_(const RefGLATensor* t, double* base, int l) {
    const RefGLATensor* e = t + 1 + REF_GLA_TENSORS_PER_LAYER * l;
    RefGLALayer_ p;
    p.attn_norm = base + e[0].offset; p.w_in = base + e[1].offset; p.gk1_w = base + e[2].offset;
    p.gk1_b = base + e[3].offset; p.gnorm = base + e[4].offset; p.w_o = base + e[5].offset;
    p.mlp_norm = base + e[6].offset; p.w_gateup = base + e[7].offset; p.w_down = base + e[8].offset;
    return p;
}

typedef struct {   // activations of one layer kept for the backward pass
    double *h_in, *a, *rstd_a;            // [M,D] residual in, [M,D] normed, [M]
    double *q, *k, *v, *gt, *z1;          // [M,Dk] [M,Dk] [M,Dv] [M,Dv] [M,16]
    double *z, *g, *o, *rstd_o, *y;       // [M,Dk] (z1 gk1_w^T, no bias), [M,Dk], [M,Dv], [M*H], [M,Dv]
    double *h_mid, *m, *rstd_m, *hu, *zz; // [M,D], [M,D], [M], [M,2I], [M,I]
} RefGLAActs_;

// o[M,H*V] = GLA op per (b,h) slice of q,k,g [M,H*K] and v [M,H*V].
static inline void ref_gla_mixer_op_forward_(double* o, const double* q, const double* k, const double* v,
                                             const double* g, int B, int T, int H, int K, int V) {
    double *qs = ref_gla_zalloc_((size_t)T * K), *ks = ref_gla_zalloc_((size_t)T * K), *gs = ref_gla_zalloc_((size_t)T * K);
    double *vs = ref_gla_zalloc_((size_t)T * V), *os = ref_gla_zalloc_((size_t)T * V);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            ref_gla_get_head_(qs, q, b, h, T, H, K); ref_gla_get_head_(ks, k, b, h, T, H, K);
            ref_gla_get_head_(gs, g, b, h, T, H, K); ref_gla_get_head_(vs, v, b, h, T, H, V);
            ref_gla_op_forward(os, qs, ks, vs, gs, T, K, V, 1.0 / sqrt((double)K));
            ref_gla_put_head_(o, os, b, h, T, H, V);
        }
    free(qs); free(ks); free(gs); free(vs); free(os);
}
static inline void ref_gla_mixer_op_backward_(double* dq, double* dk, double* dv, double* dg, const double* d_o,
                                              const double* q, const double* k, const double* v, const double* g,
                                              int B, int T, int H, int K, int V) {
    size_t nk = (size_t)T * K, nv = (size_t)T * V;
    double *qs = ref_gla_zalloc_(nk), *ks = ref_gla_zalloc_(nk), *gs = ref_gla_zalloc_(nk), *vs = ref_gla_zalloc_(nv);
    double *dos = ref_gla_zalloc_(nv), *dqs = ref_gla_zalloc_(nk), *dks = ref_gla_zalloc_(nk), *dgs = ref_gla_zalloc_(nk);
    double *dvs = ref_gla_zalloc_(nv);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            ref_gla_get_head_(qs, q, b, h, T, H, K); ref_gla_get_head_(ks, k, b, h, T, H, K);
            ref_gla_get_head_(gs, g, b, h, T, H, K); ref_gla_get_head_(vs, v, b, h, T, H, V);
            ref_gla_get_head_(dos, d_o, b, h, T, H, V);
            ref_gla_op_backward(dqs, dks, dvs, dgs, dos, qs, ks, vs, gs, T, K, V, 1.0 / sqrt((double)K));
            ref_gla_put_head_(dq, dqs, b, h, T, H, K); ref_gla_put_head_(dk, dks, b, h, T, H, K);
            ref_gla_put_head_(dv, dvs, b, h, T, H, V); ref_gla_put_head_(dg, dgs, b, h, T, H, K);
        }
    free(qs); free(ks); free(gs); free(vs); free(dos); free(dqs); free(dks); free(dgs); free(dvs);
}

// ------------------------------------------------------------------------------------ forward + backward
// Returns the mean loss over rows with targets >= 0. ids, targets: [B*T]. grads (NULL = forward only) is
// WRITTEN over the whole flat layout. logits (NULL = not wanted): [B*T, Vc].
static inline double ref_gla_forward_backward(const RefGLAConfig* c, const double* params, double* grads,
                                              const int* ids, const int* targets, int B, int T, double* logits) {
    const int M = B * T, D = c->D, L = c->L, H = c->H, Vc = c->Vc, R = REF_GLA_GATE_RANK;
    const int Dk = ref_gla_key_dim(c), Dv = ref_gla_value_dim(c), K = Dk / H, V = Dv / H;
    const int I = ref_gla_mlp_width(c), NP = ref_gla_in_rows(c);
    const size_t MD = (size_t)M * D;
    if (Dk % H || Dv % H) { fprintf(stderr, "error: ref_gla: key/value dims %d/%d not divisible by H=%d\n", Dk, Dv, H); exit(1); }
    RefGLATensor* tt = ref_gla_tensor_table_(c);
    const int nt = ref_gla_num_tensors(c);
    double* P = (double*)params;   // read only; non-const so ref_gla_layer_ serves params and grads alike
    const double* E = P + tt[0].offset;
    const double* final_norm = P + tt[1 + REF_GLA_TENSORS_PER_LAYER * L].offset;
    const double* W_cls = c->tied ? E : P + tt[nt - 1].offset;

    RefGLAActs_* acts = (RefGLAActs_*)calloc((size_t)L, sizeof(RefGLAActs_));
    double* h = ref_gla_zalloc_(MD);                 // residual stream
    double* proj = ref_gla_zalloc_((size_t)M * NP);  // fused input projection, split right away
    double* tmp = ref_gla_zalloc_(MD);
    if (!acts) { fprintf(stderr, "error: ref_gla: out of memory\n"); exit(1); }
    ref_embedding_forward(h, ids, E, M, D);
    for (int l = 0; l < L; l++) {
        RefGLALayer_ p = ref_gla_layer_(tt, P, l);
        RefGLAActs_* s = &acts[l];
        s->h_in = ref_gla_zalloc_(MD); s->a = ref_gla_zalloc_(MD); s->rstd_a = ref_gla_zalloc_((size_t)M);
        s->q = ref_gla_zalloc_((size_t)M * Dk); s->k = ref_gla_zalloc_((size_t)M * Dk);
        s->v = ref_gla_zalloc_((size_t)M * Dv); s->gt = ref_gla_zalloc_((size_t)M * Dv); s->z1 = ref_gla_zalloc_((size_t)M * R);
        s->z = ref_gla_zalloc_((size_t)M * Dk); s->g = ref_gla_zalloc_((size_t)M * Dk); s->o = ref_gla_zalloc_((size_t)M * Dv);
        s->rstd_o = ref_gla_zalloc_((size_t)M * H); s->y = ref_gla_zalloc_((size_t)M * Dv);
        s->h_mid = ref_gla_zalloc_(MD); s->m = ref_gla_zalloc_(MD); s->rstd_m = ref_gla_zalloc_((size_t)M);
        s->hu = ref_gla_zalloc_((size_t)M * 2 * I); s->zz = ref_gla_zalloc_((size_t)M * I);

        memcpy(s->h_in, h, MD * sizeof(double));
        ref_rmsnorm_forward(s->a, s->rstd_a, h, p.attn_norm, M, D, c->eps);
        ref_linear_forward(proj, s->a, p.w_in, NULL, M, NP, D);
        ref_gla_get_cols_(s->q, proj, M, NP, 0, Dk);
        ref_gla_get_cols_(s->k, proj, M, NP, Dk, Dk);
        ref_gla_get_cols_(s->v, proj, M, NP, 2 * Dk, Dv);
        ref_gla_get_cols_(s->gt, proj, M, NP, 2 * Dk + Dv, Dv);
        ref_gla_get_cols_(s->z1, proj, M, NP, 2 * Dk + 2 * Dv, R);
        ref_linear_forward(s->z, s->z1, p.gk1_w, NULL, M, Dk, R);
        ref_gla_gate_forward(s->g, s->z, p.gk1_b, M, Dk);
        ref_gla_mixer_op_forward_(s->o, s->q, s->k, s->v, s->g, B, T, H, K, V);
        ref_gated_rmsnorm_forward(s->y, s->rstd_o, s->o, s->gt, p.gnorm, M, H, V, c->eps);
        ref_linear_forward(tmp, s->y, p.w_o, NULL, M, D, Dv);
        for (size_t i = 0; i < MD; i++) h[i] += tmp[i];

        memcpy(s->h_mid, h, MD * sizeof(double));
        ref_rmsnorm_forward(s->m, s->rstd_m, h, p.mlp_norm, M, D, c->eps);
        ref_linear_forward(s->hu, s->m, p.w_gateup, NULL, M, 2 * I, D);
        ref_swiglu_forward(s->zz, s->hu, M, I);
        ref_linear_forward(tmp, s->zz, p.w_down, NULL, M, D, I);
        for (size_t i = 0; i < MD; i++) h[i] += tmp[i];
    }
    double* yf = ref_gla_zalloc_(MD);
    double* rstd_f = ref_gla_zalloc_((size_t)M);
    double* lg = ref_gla_zalloc_((size_t)M * Vc);
    ref_rmsnorm_forward(yf, rstd_f, h, final_norm, M, D, c->eps);
    ref_linear_forward(lg, yf, W_cls, NULL, M, Vc, D);
    double loss = ref_ce_forward(NULL, lg, targets, M, Vc);
    if (logits) memcpy(logits, lg, (size_t)M * Vc * sizeof(double));

    if (grads) {
        size_t np = tt[nt - 1].offset + tt[nt - 1].numel;
        memset(grads, 0, np * sizeof(double));
        double* dE = grads + tt[0].offset;
        double* dfinal_norm = grads + tt[1 + REF_GLA_TENSORS_PER_LAYER * L].offset;
        double* dW_cls = c->tied ? dE : grads + tt[nt - 1].offset;
        int nvalid = ref_count_valid(targets, M);
        double* dlg = lg;   // logits are dead after this point: take their gradient in place
        double* dh = ref_gla_zalloc_(MD);   // gradient of the residual stream
        double* dx = ref_gla_zalloc_(MD);   // gradient of a normed input (a, m, y_final)
        double* dproj = ref_gla_zalloc_((size_t)M * NP);
        double* dq = ref_gla_zalloc_((size_t)M * Dk); double* dk = ref_gla_zalloc_((size_t)M * Dk);
        double* dg = ref_gla_zalloc_((size_t)M * Dk); double* dz = ref_gla_zalloc_((size_t)M * Dk);
        double* dv = ref_gla_zalloc_((size_t)M * Dv); double* dgt = ref_gla_zalloc_((size_t)M * Dv);
        double* d_o = ref_gla_zalloc_((size_t)M * Dv); double* dy = ref_gla_zalloc_((size_t)M * Dv);
        double* dz1 = ref_gla_zalloc_((size_t)M * R);
        double* dzz = ref_gla_zalloc_((size_t)M * I); double* dhu = ref_gla_zalloc_((size_t)M * 2 * I);

        ref_ce_backward(dlg, lg, targets, M, Vc, nvalid ? 1.0 / nvalid : 0.0);
        ref_linear_backward(dx, dW_cls, NULL, dlg, yf, W_cls, M, Vc, D);
        ref_rmsnorm_backward(dh, dfinal_norm, dx, h, rstd_f, final_norm, M, D);
        for (int l = L - 1; l >= 0; l--) {
            RefGLALayer_ p = ref_gla_layer_(tt, P, l);
            RefGLALayer_ gp = ref_gla_layer_(tt, grads, l);
            RefGLAActs_* s = &acts[l];
            // MLP branch: h_out = h_mid + mlp(RMSNorm(h_mid)); dh passes through the residual unchanged.
            memset(dzz, 0, (size_t)M * I * sizeof(double));
            ref_linear_backward(dzz, gp.w_down, NULL, dh, s->zz, p.w_down, M, D, I);
            ref_swiglu_backward(dhu, dzz, s->hu, M, I);
            memset(dx, 0, MD * sizeof(double));
            ref_linear_backward(dx, gp.w_gateup, NULL, dhu, s->m, p.w_gateup, M, 2 * I, D);
            ref_rmsnorm_backward(dh, gp.mlp_norm, dx, s->h_mid, s->rstd_m, p.mlp_norm, M, D);
            // attention branch
            memset(dy, 0, (size_t)M * Dv * sizeof(double));
            ref_linear_backward(dy, gp.w_o, NULL, dh, s->y, p.w_o, M, D, Dv);
            ref_gated_rmsnorm_backward(d_o, dgt, gp.gnorm, dy, s->o, s->gt, s->rstd_o, p.gnorm, M, H, V);
            ref_gla_mixer_op_backward_(dq, dk, dv, dg, d_o, s->q, s->k, s->v, s->g, B, T, H, K, V);
            ref_gla_gate_backward(dz, gp.gk1_b, dg, s->z, p.gk1_b, M, Dk);
            memset(dz1, 0, (size_t)M * R * sizeof(double));
            ref_linear_backward(dz1, gp.gk1_w, NULL, dz, s->z1, p.gk1_w, M, Dk, R);
            ref_gla_put_cols_(dproj, NP, 0, dq, M, Dk);
            ref_gla_put_cols_(dproj, NP, Dk, dk, M, Dk);
            ref_gla_put_cols_(dproj, NP, 2 * Dk, dv, M, Dv);
            ref_gla_put_cols_(dproj, NP, 2 * Dk + Dv, dgt, M, Dv);
            ref_gla_put_cols_(dproj, NP, 2 * Dk + 2 * Dv, dz1, M, R);
            memset(dx, 0, MD * sizeof(double));
            ref_linear_backward(dx, gp.w_in, NULL, dproj, s->a, p.w_in, M, NP, D);
            ref_rmsnorm_backward(dh, gp.attn_norm, dx, s->h_in, s->rstd_a, p.attn_norm, M, D);
        }
        ref_embedding_backward(dE, dh, ids, M, D);
        free(dh); free(dx); free(dproj); free(dq); free(dk); free(dg); free(dz); free(dv); free(dgt);
        free(d_o); free(dy); free(dz1); free(dzz); free(dhu);
    }
    for (int l = 0; l < L; l++) {
        RefGLAActs_* s = &acts[l];
        double* bufs[] = {s->h_in, s->a, s->rstd_a, s->q, s->k, s->v, s->gt, s->z1, s->z, s->g, s->o,
                          s->rstd_o, s->y, s->h_mid, s->m, s->rstd_m, s->hu, s->zz};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    }
    free(acts); free(h); free(proj); free(tmp); free(yf); free(rstd_f); free(lg); free(tt);
    return loss;
}

#endif // REF_GLA_H
