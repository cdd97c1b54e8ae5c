// test/ref_mamba.h -- double-precision CPU reference of the whole Mamba-1 LM (state-spaces/mamba MambaLMHeadModel:
// embedding -> L x [RMSNorm -> Mamba mixer, pre-norm residual] -> final RMSNorm -> classifier, mean CE loss)
// on the FLAT parameter layout of notes/design.md, with its full backward, the parameter table (names, offsets,
// weight-decay flags) and the exact upstream initialisation (shared/docs/mamba.md 1.4). The trainer's losses,
// gradients and init statistics are checked against this file. Mixer ops come from ref_mamba_op.h, generic layers
// from ref_core.h. Plain C (gcc -std=c11) and C++ (nvcc) compatible; slow and simple on purpose.
#ifndef TEST_REF_MAMBA_H
#define TEST_REF_MAMBA_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../common/rng.h"
#include "ref_core.h"
#include "ref_mamba_op.h"

// Vc classifier columns (padded vocab; padded rows are real parameters), D d_model, L layers, Di d_inner,
// N d_state, R dt_rank, W conv width; tied: classifier uses embed (no lm_head tensor); eps of all RMSNorms (1e-5)
typedef struct { int Vc, D, L, Di, N, R, W; int tied; double eps; } RefMambaConfig;

// per-layer tensors, in layout order
enum {
    REF_MAMBA_NORM,      // [D]
    REF_MAMBA_W_IN,      // [2Di, D]  rows: x Di | z Di
    REF_MAMBA_CONV_W,    // [Di, W]
    REF_MAMBA_CONV_B,    // [Di]
    REF_MAMBA_W_X,       // [R+2N, Di] rows: dt R | B N | C N
    REF_MAMBA_W_DT,      // [Di, R]
    REF_MAMBA_DT_BIAS,   // [Di]
    REF_MAMBA_A_LOG,     // [Di, N]
    REF_MAMBA_DSKIP,     // [Di]
    REF_MAMBA_W_OUT,     // [D, Di]
    REF_MAMBA_NUM_LAYER_TENSORS
};

static inline size_t ref_mamba_layer_tensor_numel(const RefMambaConfig* c, int k) {
    size_t D = (size_t)c->D, Di = (size_t)c->Di, N = (size_t)c->N, R = (size_t)c->R, W = (size_t)c->W;
    switch (k) {
        case REF_MAMBA_NORM: return D;
        case REF_MAMBA_W_IN: return 2 * Di * D;
        case REF_MAMBA_CONV_W: return Di * W;
        case REF_MAMBA_CONV_B: return Di;
        case REF_MAMBA_W_X: return (R + 2 * N) * Di;
        case REF_MAMBA_W_DT: return Di * R;
        case REF_MAMBA_DT_BIAS: return Di;
        case REF_MAMBA_A_LOG: return Di * N;
        case REF_MAMBA_DSKIP: return Di;
        case REF_MAMBA_W_OUT: return D * Di;
        default: return 0;
    }
}
static inline size_t ref_mamba_layer_numel(const RefMambaConfig* c) {
    size_t n = 0;
    for (int k = 0; k < REF_MAMBA_NUM_LAYER_TENSORS; k++) n += ref_mamba_layer_tensor_numel(c, k);
    return n;
}
static inline size_t ref_mamba_embed_offset(const RefMambaConfig* c) { (void)c; return 0; }
static inline size_t ref_mamba_layer_offset(const RefMambaConfig* c, int l, int k) {
    size_t o = (size_t)c->Vc * c->D + (size_t)l * ref_mamba_layer_numel(c);
    for (int j = 0; j < k; j++) o += ref_mamba_layer_tensor_numel(c, j);
    return o;
}
static inline size_t ref_mamba_final_norm_offset(const RefMambaConfig* c) {
    return (size_t)c->Vc * c->D + (size_t)c->L * ref_mamba_layer_numel(c);
}
// the classifier matrix [Vc, D]: embed when tied, else lm_head (last tensor)
static inline size_t ref_mamba_classifier_offset(const RefMambaConfig* c) {
    return c->tied ? ref_mamba_embed_offset(c) : ref_mamba_final_norm_offset(c) + (size_t)c->D;
}
static inline size_t ref_mamba_num_params(const RefMambaConfig* c) {
    return ref_mamba_final_norm_offset(c) + (size_t)c->D + (c->tied ? 0 : (size_t)c->Vc * c->D);
}

// ------------------------------------------------------------------------------------------------------------
// parameter table

typedef struct {
    char name[40];   // "embed", "layers.3.w_in", "final_norm", "lm_head"
    int layer;       // -1 for non-layer tensors
    int kind;        // REF_MAMBA_* for layer tensors, -1 otherwise
    size_t offset, numel;
    int decay;       // 1 = AdamW weight decay applies
} RefMambaTensor;

static inline int ref_mamba_num_tensors(const RefMambaConfig* c) {
    return 1 + c->L * REF_MAMBA_NUM_LAYER_TENSORS + 1 + (c->tied ? 0 : 1);
}

static inline const char* ref_mamba_layer_tensor_name(int k) {
    static const char* names[REF_MAMBA_NUM_LAYER_TENSORS] = {
        "norm", "w_in", "conv_w", "conv_b", "w_x", "w_dt", "dt_bias", "A_log", "Dskip", "w_out"};
    return (k >= 0 && k < REF_MAMBA_NUM_LAYER_TENSORS) ? names[k] : "?";
}

// Weight decay follows mamba.md 1.5's suggestion: the projection matrices and conv_w decay; embedding, norms,
// biases, A_log and D do not. An untied lm_head is an nn.Linear weight, so it decays (flash-attention grouping).
static inline int ref_mamba_layer_tensor_decay(int k) {
    return k == REF_MAMBA_W_IN || k == REF_MAMBA_CONV_W || k == REF_MAMBA_W_X || k == REF_MAMBA_W_DT ||
           k == REF_MAMBA_W_OUT;
}

// Fills out[0 .. ref_mamba_num_tensors(c)) in layout order (offsets strictly increasing, contiguous); returns the count.
static inline int ref_mamba_tensors(const RefMambaConfig* c, RefMambaTensor* out) {
    int n = 0;
    RefMambaTensor* t;
    t = &out[n++];
    snprintf(t->name, sizeof t->name, "embed");
    t->layer = -1; t->kind = -1; t->offset = ref_mamba_embed_offset(c); t->numel = (size_t)c->Vc * c->D; t->decay = 0;
    for (int l = 0; l < c->L; l++)
        for (int k = 0; k < REF_MAMBA_NUM_LAYER_TENSORS; k++) {
            t = &out[n++];
            snprintf(t->name, sizeof t->name, "layers.%d.%s", l, ref_mamba_layer_tensor_name(k));
            t->layer = l; t->kind = k; t->offset = ref_mamba_layer_offset(c, l, k);
            t->numel = ref_mamba_layer_tensor_numel(c, k); t->decay = ref_mamba_layer_tensor_decay(k);
        }
    t = &out[n++];
    snprintf(t->name, sizeof t->name, "final_norm");
    t->layer = -1; t->kind = -1; t->offset = ref_mamba_final_norm_offset(c); t->numel = (size_t)c->D; t->decay = 0;
    if (!c->tied) {
        t = &out[n++];
        snprintf(t->name, sizeof t->name, "lm_head");
        t->layer = -1; t->kind = -1; t->offset = ref_mamba_classifier_offset(c); t->numel = (size_t)c->Vc * c->D;
        t->decay = 1;
    }
    return n;
}

// ------------------------------------------------------------------------------------------------------------
// initialisation, exactly as mamba_ssm builds MambaLMHeadModel (mamba.md 1.4). Draw order: tensors in layout order,
// elements in row-major order. The values depend on the RNG, so the trainer's init is compared statistically
// (bounds, means, exact constants), not bit for bit.

static inline void ref_mamba_fill_uniform(double* p, size_t n, double bound, Rng* r) {
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform_in(r, -bound, bound);
}

static inline void ref_mamba_init_params(const RefMambaConfig* c, double* params, uint64_t seed) {
    Rng r = rng_seed(seed);
    size_t D = (size_t)c->D, Di = (size_t)c->Di, N = (size_t)c->N;
    double* e = params + ref_mamba_embed_offset(c);
    for (size_t i = 0; i < (size_t)c->Vc * D; i++) e[i] = 0.02 * rng_normal(&r);          // nn.Embedding re-init
    for (int l = 0; l < c->L; l++) {
        double* p[REF_MAMBA_NUM_LAYER_TENSORS];
        for (int k = 0; k < REF_MAMBA_NUM_LAYER_TENSORS; k++) p[k] = params + ref_mamba_layer_offset(c, l, k);
        for (size_t i = 0; i < D; i++) p[REF_MAMBA_NORM][i] = 1.0;
        // nn.Linear / nn.Conv1d default kaiming_uniform(a=sqrt 5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        ref_mamba_fill_uniform(p[REF_MAMBA_W_IN], 2 * Di * D, 1.0 / sqrt((double)D), &r);
        ref_mamba_fill_uniform(p[REF_MAMBA_CONV_W], Di * c->W, 1.0 / sqrt((double)c->W), &r);  // fan_in = 1*W
        ref_mamba_fill_uniform(p[REF_MAMBA_CONV_B], Di, 1.0 / sqrt((double)c->W), &r);         // conv bias not zeroed
        ref_mamba_fill_uniform(p[REF_MAMBA_W_X], ((size_t)c->R + 2 * N) * Di, 1.0 / sqrt((double)Di), &r);
        ref_mamba_fill_uniform(p[REF_MAMBA_W_DT], Di * c->R, 1.0 / sqrt((double)c->R), &r);    // dt_rank^-0.5 * dt_scale(1)
        for (size_t d = 0; d < Di; d++) {
            // softplus(dt_bias) log-uniform in [1e-3, 1e-1], floored at 1e-4; bias = inverse softplus of dt
            double dt = exp(rng_uniform(&r) * (log(0.1) - log(0.001)) + log(0.001));
            if (dt < 1e-4) dt = 1e-4;
            p[REF_MAMBA_DT_BIAS][d] = dt + log(-expm1(-dt));
        }
        for (size_t d = 0; d < Di; d++)
            for (size_t n = 0; n < N; n++) p[REF_MAMBA_A_LOG][d * N + n] = log((double)(n + 1));  // A = -(1..N)
        for (size_t d = 0; d < Di; d++) p[REF_MAMBA_DSKIP][d] = 1.0;
        // out_proj: default Linear init, then / sqrt(n_layer) (rescale_prenorm_residual, 1 residual per layer)
        ref_mamba_fill_uniform(p[REF_MAMBA_W_OUT], D * Di, 1.0 / sqrt((double)Di) / sqrt((double)c->L), &r);
    }
    double* fn = params + ref_mamba_final_norm_offset(c);
    for (size_t i = 0; i < D; i++) fn[i] = 1.0;
    // untied lm_head: nn.Linear(D, Vc) default init (mamba's _init_weights leaves Linear weights alone)
    if (!c->tied) ref_mamba_fill_uniform(params + ref_mamba_classifier_offset(c), (size_t)c->Vc * D, 1.0 / sqrt((double)D), &r);
}

// ------------------------------------------------------------------------------------------------------------
// forward + backward

typedef struct {
    double* s;       // [M, D]  residual stream entering this layer's norm
    double* rstd;    // [M]
    double* a;       // [M, D]  normed input of the mixer
    double* x;       // [M, Di] in_proj x half
    double* z;       // [M, Di] in_proj z half (gate)
    double* u;       // [M, Di] silu(conv(x))
    double* dtl;     // [M, R]  dt_low
    double* Bm;      // [M, N]
    double* Cm;      // [M, N]
    double* draw;    // [M, Di] W_dt dt_low (before bias/softplus)
    double* g;       // [M, Di] gated scan output
    double* out;     // [M, D]  mixer output
} RefMambaLayerActs;

static inline void ref_mamba_acts_alloc(RefMambaLayerActs* A, const RefMambaConfig* c, size_t M) {
    A->s = ref_mop_alloc(M * c->D); A->rstd = ref_mop_alloc(M); A->a = ref_mop_alloc(M * c->D);
    A->x = ref_mop_alloc(M * c->Di); A->z = ref_mop_alloc(M * c->Di); A->u = ref_mop_alloc(M * c->Di);
    A->dtl = ref_mop_alloc(M * c->R); A->Bm = ref_mop_alloc(M * c->N); A->Cm = ref_mop_alloc(M * c->N);
    A->draw = ref_mop_alloc(M * c->Di); A->g = ref_mop_alloc(M * c->Di); A->out = ref_mop_alloc(M * c->D);
}
static inline void ref_mamba_acts_free(RefMambaLayerActs* A) {
    free(A->s); free(A->rstd); free(A->a); free(A->x); free(A->z); free(A->u); free(A->dtl); free(A->Bm);
    free(A->Cm); free(A->draw); free(A->g); free(A->out);
}

// One mixer (mamba.md 1.2): A->a -> A->out. The row blocks of W_in / W_x are separate matrices, so the halves
// (x|z) and thirds (dt|B|C) come out contiguous without copies.
static inline void ref_mamba_mixer_forward(RefMambaLayerActs* A, const double* const* p, const RefMambaConfig* c, int B, int T) {
    int M = B * T, D = c->D, Di = c->Di, N = c->N, R = c->R;
    ref_linear_forward(A->x, A->a, p[REF_MAMBA_W_IN], NULL, M, Di, D);
    ref_linear_forward(A->z, A->a, p[REF_MAMBA_W_IN] + (size_t)Di * D, NULL, M, Di, D);
    ref_conv1d_silu_forward(A->u, A->x, p[REF_MAMBA_CONV_W], p[REF_MAMBA_CONV_B], B, T, Di, c->W);
    ref_linear_forward(A->dtl, A->u, p[REF_MAMBA_W_X], NULL, M, R, Di);
    ref_linear_forward(A->Bm, A->u, p[REF_MAMBA_W_X] + (size_t)R * Di, NULL, M, N, Di);
    ref_linear_forward(A->Cm, A->u, p[REF_MAMBA_W_X] + (size_t)(R + N) * Di, NULL, M, N, Di);
    ref_linear_forward(A->draw, A->dtl, p[REF_MAMBA_W_DT], NULL, M, Di, R);
    ref_selective_scan_forward(A->g, NULL, A->u, A->draw, A->z, A->Bm, A->Cm, p[REF_MAMBA_A_LOG],
                               p[REF_MAMBA_DSKIP], p[REF_MAMBA_DT_BIAS], B, T, Di, N);
    ref_linear_forward(A->out, A->g, p[REF_MAMBA_W_OUT], NULL, M, D, Di);
}

// Backward of one mixer (mamba.md 2.2): dout [M,D] -> da [M,D] (written); parameter grads gp[] accumulate.
static inline void ref_mamba_mixer_backward(double* da, double* const* gp, const double* dout, const RefMambaLayerActs* A,
                                            const double* const* p, const RefMambaConfig* c, int B, int T) {
    size_t M = (size_t)B * T;
    int D = c->D, Di = c->Di, N = c->N, R = c->R;
    double *dg = ref_mop_alloc(M * Di), *du = ref_mop_alloc(M * Di), *ddraw = ref_mop_alloc(M * Di);
    double *dz = ref_mop_alloc(M * Di), *dx = ref_mop_alloc(M * Di), *ddtl = ref_mop_alloc(M * R);
    double *dBm = ref_mop_alloc(M * N), *dCm = ref_mop_alloc(M * N);
    ref_linear_backward(dg, gp[REF_MAMBA_W_OUT], NULL, dout, A->g, p[REF_MAMBA_W_OUT], (int)M, D, Di);
    ref_selective_scan_backward(du, ddraw, dz, dBm, dCm, gp[REF_MAMBA_A_LOG], gp[REF_MAMBA_DSKIP], gp[REF_MAMBA_DT_BIAS],
                                dg, A->u, A->draw, A->z, A->Bm, A->Cm, p[REF_MAMBA_A_LOG], p[REF_MAMBA_DSKIP],
                                p[REF_MAMBA_DT_BIAS], B, T, Di, N);
    ref_linear_backward(ddtl, gp[REF_MAMBA_W_DT], NULL, ddraw, A->dtl, p[REF_MAMBA_W_DT], (int)M, Di, R);
    // x_proj: du (the scan's D-skip and state paths) += the three row blocks' input gradients
    ref_linear_backward(du, gp[REF_MAMBA_W_X], NULL, ddtl, A->u, p[REF_MAMBA_W_X], (int)M, R, Di);
    ref_linear_backward(du, gp[REF_MAMBA_W_X] + (size_t)R * Di, NULL, dBm, A->u, p[REF_MAMBA_W_X] + (size_t)R * Di,
                        (int)M, N, Di);
    ref_linear_backward(du, gp[REF_MAMBA_W_X] + (size_t)(R + N) * Di, NULL, dCm, A->u,
                        p[REF_MAMBA_W_X] + (size_t)(R + N) * Di, (int)M, N, Di);
    ref_conv1d_silu_backward(dx, gp[REF_MAMBA_CONV_W], gp[REF_MAMBA_CONV_B], du, A->x, p[REF_MAMBA_CONV_W],
                             p[REF_MAMBA_CONV_B], B, T, Di, c->W);
    memset(da, 0, M * D * sizeof(double));
    ref_linear_backward(da, gp[REF_MAMBA_W_IN], NULL, dx, A->a, p[REF_MAMBA_W_IN], (int)M, Di, D);
    ref_linear_backward(da, gp[REF_MAMBA_W_IN] + (size_t)Di * D, NULL, dz, A->a, p[REF_MAMBA_W_IN] + (size_t)Di * D,
                        (int)M, Di, D);
    free(dg); free(du); free(ddraw); free(dz); free(dx); free(ddtl); free(dBm); free(dCm);
}

// Returns the mean CE loss over targets != -1 (0 if there are none). ids, targets: [B*T]. grads (NULL = forward
// only) is WRITTEN, same layout as params. logits [B*T, Vc] written when non-NULL.
static inline double ref_mamba_forward_backward(const RefMambaConfig* c, const double* params, double* grads,
                                                const int* ids, const int* targets, int B, int T, double* logits) {
    size_t M = (size_t)B * T;
    int D = c->D, L = c->L, Vc = c->Vc;
    RefMambaLayerActs* acts = (RefMambaLayerActs*)calloc(L > 0 ? (size_t)L : 1, sizeof(RefMambaLayerActs));
    double* sf = ref_mop_alloc(M * D);      // residual stream after the last layer
    double* rstdf = ref_mop_alloc(M);
    double* hf = ref_mop_alloc(M * D);
    double* lg = ref_mop_alloc(M * Vc);
    const double* Wcls = params + ref_mamba_classifier_offset(c);

    ref_embedding_forward(sf, ids, params + ref_mamba_embed_offset(c), (int)M, D);
    for (int l = 0; l < L; l++) {
        RefMambaLayerActs* A = &acts[l];
        const double* p[REF_MAMBA_NUM_LAYER_TENSORS];
        for (int k = 0; k < REF_MAMBA_NUM_LAYER_TENSORS; k++) p[k] = params + ref_mamba_layer_offset(c, l, k);
        ref_mamba_acts_alloc(A, c, M);
        memcpy(A->s, sf, M * D * sizeof(double));
        ref_rmsnorm_forward(A->a, A->rstd, A->s, p[REF_MAMBA_NORM], (int)M, D, c->eps);
        ref_mamba_mixer_forward(A, p, c, B, T);
        for (size_t i = 0; i < M * D; i++) sf[i] = A->s[i] + A->out[i];
    }
    ref_rmsnorm_forward(hf, rstdf, sf, params + ref_mamba_final_norm_offset(c), (int)M, D, c->eps);
    ref_linear_forward(lg, hf, Wcls, NULL, (int)M, Vc, D);
    double loss = ref_ce_forward(NULL, lg, targets, (int)M, Vc);
    if (logits) memcpy(logits, lg, M * Vc * sizeof(double));

    if (grads) {
        memset(grads, 0, ref_mamba_num_params(c) * sizeof(double));
        int nvalid = ref_count_valid(targets, (int)M);
        double* dlg = ref_mop_alloc(M * Vc);
        double* dhf = ref_mop_alloc(M * D);
        double* ds = ref_mop_alloc(M * D);   // gradient of the residual stream at the current depth
        double* da = ref_mop_alloc(M * D);
        ref_ce_backward(dlg, lg, targets, (int)M, Vc, nvalid ? 1.0 / nvalid : 0.0);
        ref_linear_backward(dhf, grads + ref_mamba_classifier_offset(c), NULL, dlg, hf, Wcls, (int)M, Vc, D);
        ref_rmsnorm_backward(ds, grads + ref_mamba_final_norm_offset(c), dhf, sf, rstdf,
                             params + ref_mamba_final_norm_offset(c), (int)M, D);
        for (int l = L - 1; l >= 0; l--) {
            const double* p[REF_MAMBA_NUM_LAYER_TENSORS];
            double* gp[REF_MAMBA_NUM_LAYER_TENSORS];
            for (int k = 0; k < REF_MAMBA_NUM_LAYER_TENSORS; k++) {
                p[k] = params + ref_mamba_layer_offset(c, l, k);
                gp[k] = grads + ref_mamba_layer_offset(c, l, k);
            }
            // the add s_{l+1} = s_l + out_l passes ds to both the mixer output and s_l unchanged
            ref_mamba_mixer_backward(da, gp, ds, &acts[l], p, c, B, T);
            ref_rmsnorm_backward(ds, gp[REF_MAMBA_NORM], da, acts[l].s, acts[l].rstd, p[REF_MAMBA_NORM], (int)M, D);
        }
        ref_embedding_backward(grads + ref_mamba_embed_offset(c), ds, ids, (int)M, D);
        free(dlg); free(dhf); free(ds); free(da);
    }
    for (int l = 0; l < L; l++) ref_mamba_acts_free(&acts[l]);
    free(acts); free(sf); free(rstdf); free(hf); free(lg);
    return loss;
}

#endif // TEST_REF_MAMBA_H
