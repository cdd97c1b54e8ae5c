/*
 * train_gla.cu — the GLA language model (fla's GLAForCausalLM) and its training program.
 * This file holds only the model: config and presets, the parameter and activation tables, the forward
 * and backward orchestration of one micro-batch, and recurrent decoding for sampling. Everything else
 * (kernels, loader, optimizer, checkpoints, logging, the training loop) comes from common/.
 * Math: ../shared/docs/gla.md sections 1-2. Shapes: B batch, T time, M = B*T tokens, D width, H heads,
 * Dk = H*K keys, Dv = H*V values, I MLP width, Vc vocabulary, P = 2Dk+2Dv+16 fused projection width.
 */
#include "common/trainer.cuh"
#include "common/gla_chunk.cuh"
#include "common/gla_gate.cuh"
#include "common/gated_rmsnorm.cuh"
#include "common/swiglu.cuh"

#define GLA_GATE_RANK 16   /* low rank of the forget-gate projection (fla's gate_low_rank_dim) */

/* ------------------------------------------------------------------ config */
typedef struct {
    int Vc, D, L, H;
    float expand_k, expand_v;
    int I;          /* MLP width; 0 = fla's rule */
    int tied;
    float eps;
} GLAConfig;

typedef struct { const char* name; GLAConfig c; } GLAPreset;
static const GLAPreset gla_presets[] = {
    /* name        Vc     D     L   H   ek   ev   I  tied  eps */
    {"gla-tiny",  {0,    512,   6,  4, 0.5f, 1.f, 0, 1, 1e-6f}},
    {"gla-125m",  {0,    768,  12,  4, 0.5f, 1.f, 0, 1, 1e-6f}},
    {"gla-340m",  {0,   1024,  24,  4, 0.5f, 1.f, 0, 0, 1e-6f}},
    {"gla-1.3b",  {0,   2048,  24,  4, 0.5f, 1.f, 0, 0, 1e-6f}},
};

/* fla's intermediate-size rule (gla.md 1.2): 256 * ceil(int(D*4*2/3) / 256) */
static inline int gla_mlp_width(int D) { int i = (int)(D * 4.0 * 2.0 / 3.0); return 256 * ((i + 255) / 256); }

/* ------------------------------------------------------------------ model */
typedef struct {
    size_t attn_norm, w_in, gk1_w, gk1_b, gnorm, w_o, mlp_norm, w_gateup, w_down;
} GLALayerParams;

typedef struct {
    /* per layer (L copies) */
    float* res_attn;    /* [L,M,D] fp32 residual stream entering the attention norm */
    float* res_mlp;     /* [L,M,D] fp32 residual stream entering the MLP norm */
    float* rstd_attn;   /* [L,M] */
    float* rstd_mlp;    /* [L,M] */
    float* rstd_gate;   /* [L,M*H] rstd of the per-head output norm */
    bf16* ln1;          /* [L,M,D] normed input of the mixer */
    bf16* ln2;          /* [L,M,D] normed input of the MLP */
    bf16* proj;         /* [L,M,P] q | k | v | output gate | gate low-rank z1 */
    bf16* gz;           /* [L,M,Dk] forget-gate pre-activation (before bias) */
    bf16* o;            /* [L,M,Dv] chunked GLA output */
    bf16* y;            /* [L,M,Dv] gated-norm output, input of o_proj */
    bf16* h;            /* [L,M,2I] MLP gate | up */
    char* gla_saved;    /* [L, gla_saved_bytes] */
    /* final norm */
    float* res_final;   /* [M,D] */
    float* rstd_final;  /* [M] */
    bf16* lnf;          /* [M,D] */
    /* scratch shared by all layers */
    float* g;           /* [M,Dk] fp32 log forget gate */
    float* dg;          /* [M,Dk] */
    bf16* delta;        /* [M,D] sublayer output before it joins the residual stream */
    bf16* act;          /* [M,I] SwiGLU output (recomputed in backward) */
    bf16* dact;         /* [M,I] */
    bf16* dh;           /* [M,2I] */
    bf16* dproj;        /* [M,P] */
    bf16* dgz;          /* [M,Dk] */
    bf16* d_o;          /* [M,Dv] */
    bf16* dy;           /* [M,Dv] */
    bf16* dln;          /* [M,D] */
    bf16* dres_bf;      /* [M,D] residual gradient rounded for matrix products */
    float* dres;        /* [M,D] fp32 residual-stream gradient */
    float* norm_scratch;
    char* gla_ws;
    void* emb_scratch;
    bf16* cls_scratch;
} GLAActs;

typedef struct {
    GLAConfig c;
    int Dk, Dv, K, V, P, I;
    int B, T;                   /* allocated micro-batch shape */
    ParamTable pt;
    ParamBuffers p;
    size_t embed, final_norm, lm_head;
    GLALayerParams* lp;
    ActTable at;
    GLAActs a;
    size_t gla_saved_per_layer;
    /* recurrent decoding state (allocated on first use) */
    float* dec_state;           /* [L,H,K,V] */
} GLAModel;

/* parameter accessors: bf16 copy for matrix products, fp32 master for small vectors, fp32 grads */
#define W_(m, off) ((m)->p.copy + (off))
#define F_(m, off) ((m)->p.master + (off))
#define G_(m, off) ((m)->p.grad + (off))

static void gla_derive(GLAModel* m) {
    const GLAConfig* c = &m->c;
    m->Dk = (int)(c->D * c->expand_k);
    m->Dv = (int)(c->D * c->expand_v);
    if (c->H <= 0 || m->Dk % c->H || m->Dv % c->H)
        die("GLA: key width %d and value width %d must divide evenly into %d heads", m->Dk, m->Dv, c->H);
    m->K = m->Dk / c->H;
    m->V = m->Dv / c->H;
    m->I = c->I > 0 ? c->I : gla_mlp_width(c->D);
    m->P = 2 * m->Dk + 2 * m->Dv + GLA_GATE_RANK;
    if (c->D % 8 || m->Dk % 8 || m->Dv % 8 || m->I % 8)
        die("GLA: D=%d, key width %d, value width %d and MLP width %d must be multiples of 8", c->D, m->Dk, m->Dv, m->I);
}

/* The parameter table, in the layout of design.md (and test/ref_gla.h). fla init: Linear and embedding
 * N(0, 0.02), gate bias 0, norm weights 1 (gla.md 1.7). */
static void gla_build_params(GLAModel* m) {
    const GLAConfig* c = &m->c;
    ParamTable* pt = &m->pt;
    char nm[64];
    const float std = 0.02f;
    m->embed = param_add(pt, "embed", 2, c->Vc, c->D, 0, 1, INIT_NORMAL, std);
    m->lp = (GLALayerParams*)malloc_check(sizeof(GLALayerParams) * (size_t)c->L);
    for (int l = 0; l < c->L; l++) {
        GLALayerParams* lp = &m->lp[l];
#define P_(field, ...) (snprintf(nm, sizeof nm, "layers.%d." #field, l), lp->field = param_add(pt, nm, __VA_ARGS__))
        P_(attn_norm, 1, c->D, 0, 0, 0, INIT_ONE, 0);
        P_(w_in, 2, m->P, c->D, 0, 1, INIT_NORMAL, std);
        P_(gk1_w, 2, m->Dk, GLA_GATE_RANK, 0, 1, INIT_NORMAL, std);
        P_(gk1_b, 1, m->Dk, 0, 0, 0, INIT_ZERO, 0);
        P_(gnorm, 1, m->V, 0, 0, 0, INIT_ONE, 0);
        P_(w_o, 2, c->D, m->Dv, 0, 1, INIT_NORMAL, std);
        P_(mlp_norm, 1, c->D, 0, 0, 0, INIT_ONE, 0);
        P_(w_gateup, 2, 2 * m->I, c->D, 0, 1, INIT_NORMAL, std);
        P_(w_down, 2, c->D, m->I, 0, 1, INIT_NORMAL, std);
#undef P_
    }
    m->final_norm = param_add(pt, "final_norm", 1, c->D, 0, 0, 0, INIT_ONE, 0);
    m->lm_head = c->tied ? m->embed : param_add(pt, "lm_head", 2, c->Vc, c->D, 0, 1, INIT_NORMAL, std);
}

static void gla_build_acts(GLAModel* m) {
    const GLAConfig* c = &m->c;
    ActTable* at = &m->at;
    GLAActs* a = &m->a;
    size_t M = (size_t)m->B * m->T, L = (size_t)c->L, D = (size_t)c->D;
    m->gla_saved_per_layer = gla_saved_bytes(m->B, m->T, c->H, m->K, m->V);
    ACT(at, a->res_attn, L * M * D);
    ACT(at, a->res_mlp, L * M * D);
    ACT(at, a->rstd_attn, L * M);
    ACT(at, a->rstd_mlp, L * M);
    ACT(at, a->rstd_gate, L * M * c->H);
    ACT(at, a->ln1, L * M * D);
    ACT(at, a->ln2, L * M * D);
    ACT(at, a->proj, L * M * m->P);
    ACT(at, a->gz, L * M * m->Dk);
    ACT(at, a->o, L * M * m->Dv);
    ACT(at, a->y, L * M * m->Dv);
    ACT(at, a->h, L * M * 2 * m->I);
    ACT(at, a->gla_saved, L * m->gla_saved_per_layer);
    ACT(at, a->res_final, M * D);
    ACT(at, a->rstd_final, M);
    ACT(at, a->lnf, M * D);
    ACT(at, a->g, M * m->Dk);
    ACT(at, a->dg, M * m->Dk);
    ACT(at, a->delta, M * D);
    ACT(at, a->act, M * m->I);
    ACT(at, a->dact, M * m->I);
    ACT(at, a->dh, M * 2 * m->I);
    ACT(at, a->dproj, M * m->P);
    ACT(at, a->dgz, M * m->Dk);
    ACT(at, a->d_o, M * m->Dv);
    ACT(at, a->dy, M * m->Dv);
    ACT(at, a->dln, M * D);
    ACT(at, a->dres_bf, M * D);
    ACT(at, a->dres, M * D);
    /* one scratch for the deterministic weight-gradient partials of the norms and the gate bias */
    size_t ns = rmsnorm_scratch_floats((int)M, (int)D);
    size_t ns2 = gated_rmsnorm_scratch_floats((int)M, c->H, m->V);
    size_t ns3 = gla_gate_scratch_floats((int)M, m->Dk);
    ns = ns > ns2 ? ns : ns2;
    ACT(at, a->norm_scratch, ns > ns3 ? ns : ns3);
    ACT(at, a->gla_ws, gla_workspace_bytes(m->B, m->T, c->H, m->K, m->V));
    act_add(at, "emb_scratch", (void**)&a->emb_scratch, embedding_scratch_bytes((int)M, c->Vc));
    ACT(at, a->cls_scratch, classifier_scratch_elems((int)M, c->Vc));
}

/* ------------------------------------------------------------------ forward */
/* Mixer of layer l: ln1 -> fused projection -> forget gate -> chunked GLA -> gated norm -> o_proj (into delta) */
static void gla_mixer_forward(GLAModel* m, int l, cudaStream_t s) {
    const GLALayerParams* lp = &m->lp[l];
    GLAActs* a = &m->a;
    int B = m->B, T = m->T, M = B * T, D = m->c.D, H = m->c.H, P = m->P, Dk = m->Dk, Dv = m->Dv;
    bf16* proj = a->proj + (size_t)l * M * P;
    bf16* q = proj, *k = proj + Dk, *v = proj + 2 * Dk, *gt = proj + 2 * Dk + Dv, *z1 = proj + 2 * Dk + 2 * Dv;
    bf16* gz = a->gz + (size_t)l * M * Dk;
    bf16* o = a->o + (size_t)l * M * Dv;
    bf16* y = a->y + (size_t)l * M * Dv;
    linear_forward(proj, a->ln1 + (size_t)l * M * D, W_(m, lp->w_in), M, P, D, s);
    matmul(gz, 0, Dk, z1, P, 0, W_(m, lp->gk1_w), GLA_GATE_RANK, 1, M, Dk, GLA_GATE_RANK, 1.0f, 0.0f, s);
    gla_gate_forward(a->g, gz, F_(m, lp->gk1_b), M, Dk, s);
    gla_chunk_forward(o, a->gla_saved + (size_t)l * m->gla_saved_per_layer, q, k, P, v, P, a->g, B, T, H, m->K, m->V,
                      a->gla_ws, s);
    gated_rmsnorm_forward(y, a->rstd_gate + (size_t)l * M * H, o, gt, P, F_(m, lp->gnorm), M, H, m->V, m->c.eps, s);
    linear_forward(a->delta, y, W_(m, lp->w_o), M, D, Dv, s);
}

/* MLP of layer l: ln2 -> gate|up -> SwiGLU -> down (into delta) */
static void gla_mlp_forward(GLAModel* m, int l, cudaStream_t s) {
    const GLALayerParams* lp = &m->lp[l];
    GLAActs* a = &m->a;
    int M = m->B * m->T, D = m->c.D, I = m->I;
    bf16* h = a->h + (size_t)l * M * 2 * I;
    linear_forward(h, a->ln2 + (size_t)l * M * D, W_(m, lp->w_gateup), M, 2 * I, D, s);
    swiglu_forward(a->act, h, M, I, s);
    linear_forward(a->delta, a->act, W_(m, lp->w_down), M, D, I, s);
}

/* Forward through the final norm: every block adds its output into the fp32 residual stream inside the
 * next norm (fused residual add). Leaves lnf ready for the classifier. */
static void gla_forward_body(GLAModel* m, const int* d_ids, cudaStream_t s) {
    GLAActs* a = &m->a;
    int M = m->B * m->T, D = m->c.D;
    float eps = m->c.eps;
    embedding_forward(a->res_attn, d_ids, F_(m, m->embed), M, D, s);
    for (int l = 0; l < m->c.L; l++) {
        float* ra = a->res_attn + (size_t)l * M * D;
        float* rm = a->res_mlp + (size_t)l * M * D;
        if (l == 0) rmsnorm_forward(a->ln1, a->rstd_attn, ra, ra, NULL, F_(m, m->lp[0].attn_norm), M, D, eps, s);
        else rmsnorm_forward(a->ln1 + (size_t)l * M * D, a->rstd_attn + (size_t)l * M, ra, a->res_mlp + (size_t)(l - 1) * M * D,
                             a->delta, F_(m, m->lp[l].attn_norm), M, D, eps, s);
        gla_mixer_forward(m, l, s);
        rmsnorm_forward(a->ln2 + (size_t)l * M * D, a->rstd_mlp + (size_t)l * M, rm, ra, a->delta, F_(m, m->lp[l].mlp_norm),
                        M, D, eps, s);
        gla_mlp_forward(m, l, s);
    }
    rmsnorm_forward(a->lnf, a->rstd_final, a->res_final, a->res_mlp + (size_t)(m->c.L - 1) * M * D, a->delta,
                    F_(m, m->final_norm), M, D, eps, s);
}

/* ------------------------------------------------------------------ backward */
static void gla_mlp_backward(GLAModel* m, int l, cudaStream_t s) {
    const GLALayerParams* lp = &m->lp[l];
    GLAActs* a = &m->a;
    int M = m->B * m->T, D = m->c.D, I = m->I;
    bf16* h = a->h + (size_t)l * M * 2 * I;
    bf16* ln2 = a->ln2 + (size_t)l * M * D;
    cast_f32_to_bf16(a->dres_bf, a->dres, (size_t)M * D, s);
    swiglu_forward(a->act, h, M, I, s); /* recomputed: cheaper than keeping [L,M,I] */
    linear_backward(a->dact, G_(m, lp->w_down), a->dres_bf, a->act, W_(m, lp->w_down), M, D, I, s);
    swiglu_backward(a->dh, a->dact, h, M, I, s);
    linear_backward(a->dln, G_(m, lp->w_gateup), a->dh, ln2, W_(m, lp->w_gateup), M, 2 * I, D, s);
    rmsnorm_backward(a->dres, G_(m, lp->mlp_norm), a->dln, a->res_mlp + (size_t)l * M * D, a->rstd_mlp + (size_t)l * M,
                     F_(m, lp->mlp_norm), M, D, a->norm_scratch, s);
}

static void gla_mixer_backward(GLAModel* m, int l, cudaStream_t s) {
    const GLALayerParams* lp = &m->lp[l];
    GLAActs* a = &m->a;
    int B = m->B, T = m->T, M = B * T, D = m->c.D, H = m->c.H, P = m->P, Dk = m->Dk, Dv = m->Dv, R = GLA_GATE_RANK;
    bf16* proj = a->proj + (size_t)l * M * P;
    bf16* q = proj, *k = proj + Dk, *v = proj + 2 * Dk, *gt = proj + 2 * Dk + Dv, *z1 = proj + 2 * Dk + 2 * Dv;
    bf16* dq = a->dproj, *dk = a->dproj + Dk, *dv = a->dproj + 2 * Dk, *dgt = a->dproj + 2 * Dk + Dv;
    bf16* dz1 = a->dproj + 2 * Dk + 2 * Dv;
    bf16* gz = a->gz + (size_t)l * M * Dk;
    bf16* o = a->o + (size_t)l * M * Dv;
    bf16* ln1 = a->ln1 + (size_t)l * M * D;
    cast_f32_to_bf16(a->dres_bf, a->dres, (size_t)M * D, s);
    linear_backward(a->dy, G_(m, lp->w_o), a->dres_bf, a->y + (size_t)l * M * Dv, W_(m, lp->w_o), M, D, Dv, s);
    gated_rmsnorm_backward(a->d_o, dgt, P, G_(m, lp->gnorm), a->dy, o, gt, P, a->rstd_gate + (size_t)l * M * H,
                           F_(m, lp->gnorm), M, H, m->V, a->norm_scratch, s);
    gla_gate_forward(a->g, gz, F_(m, lp->gk1_b), M, Dk, s); /* recomputed: fp32 [M,Dk] per layer is not worth keeping */
    gla_chunk_backward(dq, dk, P, dv, P, a->dg, a->d_o, a->gla_saved + (size_t)l * m->gla_saved_per_layer, q, k, P, v, P,
                       a->g, B, T, H, m->K, m->V, a->gla_ws, s);
    gla_gate_backward(a->dgz, G_(m, lp->gk1_b), a->dg, gz, F_(m, lp->gk1_b), M, Dk, a->norm_scratch, s);
    /* gate low-rank pair: gz = z1 gk1_w^T -> dz1 = dgz gk1_w, d gk1_w += dgz^T z1 */
    matmul(dz1, 0, P, a->dgz, Dk, 0, W_(m, lp->gk1_w), R, 0, M, R, Dk, 1.0f, 0.0f, s);
    matmul(G_(m, lp->gk1_w), 1, R, a->dgz, Dk, 1, z1, P, 0, Dk, R, M, 1.0f, 1.0f, s);
    linear_backward(a->dln, G_(m, lp->w_in), a->dproj, ln1, W_(m, lp->w_in), M, P, D, s);
    rmsnorm_backward(a->dres, G_(m, lp->attn_norm), a->dln, a->res_attn + (size_t)l * M * D, a->rstd_attn + (size_t)l * M,
                     F_(m, lp->attn_norm), M, D, a->norm_scratch, s);
}

/* ------------------------------------------------------------------ one micro-batch */
/* Forward (and with train, backward) of one micro-batch. losses[M] receives per-token losses; gradients
 * accumulate into p.grad scaled by dloss = d(step loss)/d(token loss). */
static void gla_step(void* model, const int* d_ids, const int* d_targets, float dloss, int train, float* d_losses,
                     cudaStream_t s) {
    GLAModel* m = (GLAModel*)model;
    GLAActs* a = &m->a;
    int M = m->B * m->T, D = m->c.D;
    gla_forward_body(m, d_ids, s);
    classifier_forward_backward(d_losses, train ? a->dln : NULL, train ? G_(m, m->lm_head) : NULL, a->lnf,
                                W_(m, m->lm_head), d_targets, dloss, M, D, m->c.Vc, a->cls_scratch, s);
    if (!train) return;
    CUDA_CHECK(cudaMemsetAsync(a->dres, 0, sizeof(float) * (size_t)M * D, s));
    rmsnorm_backward(a->dres, G_(m, m->final_norm), a->dln, a->res_final, a->rstd_final, F_(m, m->final_norm), M, D,
                     a->norm_scratch, s);
    for (int l = m->c.L - 1; l >= 0; l--) {
        gla_mlp_backward(m, l, s);
        gla_mixer_backward(m, l, s);
    }
    embedding_backward(G_(m, m->embed), a->dres, d_ids, M, D, m->c.Vc, a->emb_scratch, s);
}

/* training FLOPs per token: 6 x matrix parameters (lm_head included, embedding lookup excluded) plus the
 * chunked GLA work (gla.md 2.10: fwd ~4KV+65K+128V, bwd ~10KV+130K+256V per head per token, x2 for FMA) */
static double gla_flops_per_token(void* model) {
    GLAModel* m = (GLAModel*)model;
    double D = m->c.D, L = m->c.L;
    double per_layer = D * m->P + (double)m->Dk * GLA_GATE_RANK + D * m->Dv + 3.0 * D * m->I;
    double mat = 6.0 * (L * per_layer + (double)m->c.Vc * D);
    double K = m->K, V = m->V;
    double mixer = 2.0 * L * m->c.H * (14.0 * K * V + 195.0 * K + 384.0 * V);
    return mat + mixer;
}

/* ------------------------------------------------------------------ lifetime */
/* Builds the tables and allocates everything for micro-batches of B x T; parameters are initialised
 * from seed (fla's init). */
static void gla_create(GLAModel* m, const GLAConfig* c, int B, int T, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->c = *c;
    m->B = B;
    m->T = T;
    gla_derive(m);
    gla_build_params(m);
    m->p = param_buffers_alloc(&m->pt);
    param_init_device(&m->pt, &m->p, seed);
    param_sync_copy(&m->p);
    gla_build_acts(m);
    act_alloc(&m->at, m->pt.total * param_bytes_per_element());
}

static void gla_destroy(GLAModel* m) {
    act_free(&m->at);
    param_buffers_free(&m->p);
    free(m->pt.t);
    free(m->lp);
    if (m->dec_state) cudaFree(m->dec_state);
}

/* ------------------------------------------------------------------ program */
/* model flags: a preset, then overrides (-1 / 0 = keep the preset's value) */
static struct {
    const char* preset;
    int D, L, H, I, vocab, tied;
    float expand_k, expand_v;
} gla_opt;

static int gla_options(ArgSpec* out) {
    gla_opt.preset = "gla-tiny";
    gla_opt.D = 0; gla_opt.L = 0; gla_opt.H = 0; gla_opt.I = 0; gla_opt.vocab = 0; gla_opt.tied = -1;
    gla_opt.expand_k = 0; gla_opt.expand_v = 0;
    const ArgSpec rows[] = {
        {NULL, "--model", ARG_STR, &gla_opt.preset, "preset: gla-tiny (D=512 L=6 H=4), gla-125m, gla-340m, gla-1.3b", 0, 0, NULL},
        {"-D", "--dim", ARG_INT, &gla_opt.D, "model width D (0: preset)", 0, 65536, NULL},
        {"-L", "--layers", ARG_INT, &gla_opt.L, "layers (0: preset)", 0, 4096, NULL},
        {"-H", "--heads", ARG_INT, &gla_opt.H, "heads (0: preset)", 0, 1024, NULL},
        {NULL, "--expand-k", ARG_FLOAT, &gla_opt.expand_k, "key width / D (0: preset, 0.5)", 0, 16, NULL},
        {NULL, "--expand-v", ARG_FLOAT, &gla_opt.expand_v, "value width / D (0: preset, 1)", 0, 16, NULL},
        {NULL, "--mlp", ARG_INT, &gla_opt.I, "MLP width (0: fla's rule 256*ceil(8D/3/256))", 0, 1 << 20, NULL},
        {NULL, "--vocab", ARG_INT, &gla_opt.vocab, "vocabulary (0: the data's, rounded up to 8; --bench: 32000)", 0, 1 << 24, NULL},
        {NULL, "--tied", ARG_INT, &gla_opt.tied, "1: lm_head shares the embedding, 0: separate (-1: preset)", -1, 1, NULL},
    };
    memcpy(out, rows, sizeof rows);
    return (int)(sizeof rows / sizeof rows[0]);
}

static GLAConfig gla_cfg;

static void gla_configure(int data_vocab, int bench, CkptHeader* cfg) {
    const GLAPreset* p = NULL;
    for (size_t i = 0; i < sizeof gla_presets / sizeof gla_presets[0]; i++)
        if (!strcmp(gla_presets[i].name, gla_opt.preset)) p = &gla_presets[i];
    if (!p) die("--model %s: unknown preset (gla-tiny, gla-125m, gla-340m, gla-1.3b)", gla_opt.preset);
    GLAConfig c = p->c;
    if (gla_opt.D) c.D = gla_opt.D;
    if (gla_opt.L) c.L = gla_opt.L;
    if (gla_opt.H) c.H = gla_opt.H;
    if (gla_opt.expand_k > 0) c.expand_k = gla_opt.expand_k;
    if (gla_opt.expand_v > 0) c.expand_v = gla_opt.expand_v;
    if (gla_opt.I) c.I = gla_opt.I;
    if (gla_opt.tied >= 0) c.tied = gla_opt.tied;
    int need = bench ? 0 : data_vocab;
    c.Vc = gla_opt.vocab ? gla_opt.vocab : (bench ? 32000 : (need + 7) / 8 * 8);
    if (c.Vc < need) die("--vocab %d is smaller than the data's vocabulary %d", c.Vc, need);
    GLAModel probe;
    memset(&probe, 0, sizeof probe);
    probe.c = c;
    gla_derive(&probe); /* validates the head split before the GPU is touched */
    gla_cfg = c;
    ckpt_config_int(cfg, "Vc", c.Vc);
    ckpt_config_int(cfg, "D", c.D);
    ckpt_config_int(cfg, "L", c.L);
    ckpt_config_int(cfg, "H", c.H);
    ckpt_config_int(cfg, "key_dim", probe.Dk);
    ckpt_config_int(cfg, "value_dim", probe.Dv);
    ckpt_config_int(cfg, "I", probe.I);
    ckpt_config_int(cfg, "tied", c.tied);
    ckpt_config_float(cfg, "eps", c.eps);
}

static GLAModel gla_model;

static void gla_create_handle(ModelHandle* h, int B, int T, uint64_t seed) {
    gla_create(&gla_model, &gla_cfg, B, T, seed);
    GLAModel* m = &gla_model;
    h->name = "gla";
    h->ckpt_kind = CKPT_MODEL_GLA;
    h->model = m;
    h->pt = &m->pt;
    h->pb = &m->p;
    h->at = &m->at;
    h->step = gla_step;
    h->flops_per_token = gla_flops_per_token(m);
    h->Vc = m->c.Vc;
    h->lnf = m->a.lnf;
    h->lm_head = W_(m, m->lm_head);
    h->D = m->c.D;
    h->B = B;
    h->T = T;
}

#ifndef TESTING
int main(int argc, char** argv) {
    ModelDef def = {"gla", "Train a GLA (gated linear attention) language model (fla's GLAForCausalLM).", gla_options,
                    gla_configure, gla_create_handle};
    int rc = trainer_main(argc, argv, &def);
    gla_destroy(&gla_model);
    return rc;
}
#endif
