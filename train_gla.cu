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

/* Activations. What backward needs is either kept per layer or recomputed from what is kept; the
 * recompute level (--recompute) chooses, trading memory for time:
 *   0: keep the projection proj, the GLA output o, the chunk states and the MLP input h; the backward
 *      kernels rebuild the norm outputs, the gated-norm output and the SwiGLU product, and the rank-16
 *      forget-gate product is redone; the GLA flag --keep-states N keeps the chunk states of layers 0..N-1 only
 *      and recomputes the others' (0: none);
 *   1: also recompute the chunk states and h = ln2 W_gateup^T (one extra matrix product per layer);
 *   2: also rerun the mixer up to o (projection, gate, chunked GLA forward) in backward.
 * Per-layer buffers have L slots when kept and 1 slot (reused) when recomputed. */
typedef struct {
    /* always kept, per layer: of the two norms' inputs only xhat = input * rstd in bf16 (their backward needs nothing
     * else of the fp32 stream, and ln = bf16(xhat) w is rebuilt from it), half the bytes of the stream itself */
    bf16* xhat_attn;    /* [L,M,D] */
    bf16* xhat_mlp;     /* [L,M,D] */
    float* rstd_attn;   /* [L,M] */
    float* rstd_mlp;    /* [L,M] */
    float* rstd_gate;   /* [L,M*H] rstd of the per-head output norm */
    /* kept per layer at low recompute levels, else one slot */
    bf16* proj;         /* [L|1,M,P] q | k | v | output gate | gate low-rank z1 */
    bf16* o;            /* [L|1,M,Dv] chunked GLA output */
    char* gla_saved;    /* [L|1, gla_saved_bytes] */
    bf16* h;            /* [L|1,M,2I] MLP gate | up */
    float* stream;      /* [M,D] fp32 residual stream: each norm adds the sublayer output before it in place; the final
                         * norm's too, which keeps xhat (in ln) like the block norms: the stream is dead after the
                         * forward, and its memory is the backward's dres */
    /* final norm */
    float* rstd_final;  /* [M] */
    bf16* lnf;          /* [M,D] */
    /* scratch shared by all layers */
    bf16* ln;           /* [M,D] normed input of the current sublayer; from the final norm to its backward, its xhat */
    bf16* y;            /* [M,Dv] gated-norm output, input of o_proj */
    float* g;           /* [M,Dk] fp32 log forget gate */
    float* dg;          /* [M,Dk] */
    bf16* delta;        /* [M,D] a sublayer's output before it joins the stream (the mixer's, then the MLP's) */
    bf16* act;          /* [M,I] SwiGLU output (in bwd_ws: the forward's is dead before the classifier) */
    bf16* dact;         /* [M,I] */
    bf16* dproj;        /* [M,P] */
    bf16* dgz;          /* [M,Dk] */
    bf16* d_o;          /* [M,Dv] */
    bf16* dy;           /* [M,Dv] */
    bf16* dln;          /* [M,D] */
    bf16* dres_bf;      /* [M,D] residual gradient rounded for matrix products (= delta: backward only, delta forward only) */
    float* dres;        /* [M,D] fp32 residual-stream gradient (= stream: forward only, dres backward only) */
    float* norm_scratch;
    char* gla_ws;
    void* emb_scratch;
    void* bwd_ws;       /* classifier scratch, act, dact, gla_ws, dproj: gla_layout_bwd_ws */
    bf16* cls_scratch;
} GLAActs;

typedef struct {
    GLAConfig c;
    int Dk, Dv, K, V, P, I;
    int B, T;                   /* allocated micro-batch shape */
    int recompute;              /* 0, 1, 2: see GLAActs */
    int keep_states;            /* level 0: layers 0..keep_states-1 keep their chunk states and intra-chunk matrices
                                 * for backward, the others recompute them (0..L) */
    ParamTable pt;
    ParamBuffers p;
    size_t embed, final_norm, lm_head;
    GLALayerParams* lp;
    ActTable at;
    GLAActs a;
    size_t gla_saved_per_layer;
    /* recurrent decoding (sampling): one token at a time with the state carried, O(1) per token */
    int decoding;
    float* dec_state;           /* [L,H,K,V] fp32, allocated on first use */
} GLAModel;

/* parameter accessors: bf16 copy for matrix products, fp32 master for small vectors, fp32 grads */
#define W_(m, off) ((m)->p.copy + (off))
#define F_(m, off) param_f32(&(m)->p, (off))   /* tensors kernels read in fp32 (param_keep_f32) */
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
    m->embed = param_keep_f32(pt, param_add(pt, "embed", 2, c->Vc, c->D, 0, 1, INIT_NORMAL, std));
    m->lp = (GLALayerParams*)malloc_check(sizeof(GLALayerParams) * (size_t)c->L);
    for (int l = 0; l < c->L; l++) {
        GLALayerParams* lp = &m->lp[l];
#define P_(field, ...) (snprintf(nm, sizeof nm, "layers.%d." #field, l), lp->field = param_add(pt, nm, __VA_ARGS__))
#define PF_(field, ...) (P_(field, __VA_ARGS__), param_keep_f32(pt, lp->field))   /* read in fp32 (F_) */
        PF_(attn_norm, 1, c->D, 0, 0, 0, INIT_ONE, 0);
        P_(w_in, 2, m->P, c->D, 0, 1, INIT_NORMAL, std);
        P_(gk1_w, 2, m->Dk, GLA_GATE_RANK, 0, 1, INIT_NORMAL, std);
        PF_(gk1_b, 1, m->Dk, 0, 0, 0, INIT_ZERO, 0);
        PF_(gnorm, 1, m->V, 0, 0, 0, INIT_ONE, 0);
        P_(w_o, 2, c->D, m->Dv, 0, 1, INIT_NORMAL, std);
        PF_(mlp_norm, 1, c->D, 0, 0, 0, INIT_ONE, 0);
        P_(w_gateup, 2, 2 * m->I, c->D, 0, 1, INIT_NORMAL, std);
        P_(w_down, 2, c->D, m->I, 0, 1, INIT_NORMAL, std);
#undef P_
#undef PF_
    }
    m->final_norm = param_keep_f32(pt, param_add(pt, "final_norm", 1, c->D, 0, 0, 0, INIT_ONE, 0));
    m->lm_head = c->tied ? m->embed : param_add(pt, "lm_head", 2, c->Vc, c->D, 0, 1, INIT_NORMAL, std);
}

/* Buffers whose lifetimes do not overlap share memory, carved from one table entry (base NULL: only measures;
 * returns the entry's bytes), bwd_ws: the classifier's scratch (used between the forward and the layers' backward)
 * over [act, dact (the MLP: act is the forward's SwiGLU output, then the backward's rebuilt one) | gla_ws, dproj
 * (the mixer's backward; gla_ws also the forward's when the chunk states are not kept)]. The MLP's dh needs no
 * buffer: it overwrites h, which the SwiGLU backward reads for the last time as it writes dh. */
static size_t gla_layout_bwd_ws(GLAModel* m, char* base) {
    GLAActs* a = &m->a;
    size_t M = (size_t)m->B * m->T;
    ActCarve mlp = {base, 0}, mix = {base, 0};
    CARVE(&mlp, a->act, M * m->I);
    CARVE(&mlp, a->dact, M * m->I);
    CARVE(&mix, a->gla_ws, gla_workspace_bytes(m->B, m->T, m->c.H, m->K, m->V));
    CARVE(&mix, a->dproj, M * m->P);
    a->cls_scratch = (bf16*)base;
    size_t cls = classifier_scratch_elems((int)M, m->c.Vc) * sizeof(bf16), off = mlp.off > mix.off ? mlp.off : mix.off;
    return off > cls ? off : cls;
}

/* slots of kept chunk states: level 0 keeps keep_states layers', level 1 none (recomputed in backward), level 2 one
 * (its rerun forward refills it) */
static size_t gla_state_slots(const GLAModel* m) {
    return m->recompute == 0 ? (size_t)m->keep_states : m->recompute == 1 ? 0 : 1;
}

static void gla_build_acts(GLAModel* m) {
    const GLAConfig* c = &m->c;
    ActTable* at = &m->at;
    GLAActs* a = &m->a;
    size_t M = (size_t)m->B * m->T, L = (size_t)c->L, D = (size_t)c->D;
    size_t Lmix = m->recompute >= 2 ? 1 : L, Lmlp = m->recompute >= 1 ? 1 : L;
    m->gla_saved_per_layer = gla_saved_bytes(m->B, m->T, c->H, m->K, m->V);
    ACT(at, a->xhat_attn, L * M * D);
    ACT(at, a->xhat_mlp, L * M * D);
    ACT(at, a->rstd_attn, L * M);
    ACT(at, a->rstd_mlp, L * M);
    ACT(at, a->rstd_gate, L * M * c->H);
    ACT(at, a->proj, Lmix * M * m->P);
    ACT(at, a->o, Lmix * M * m->Dv);
    ACT(at, a->gla_saved, gla_state_slots(m) * m->gla_saved_per_layer);
    ACT(at, a->h, Lmlp * M * 2 * m->I);
    ACT(at, a->stream, M * D);
    ACT(at, a->rstd_final, M);
    ACT(at, a->lnf, M * D);
    ACT(at, a->ln, M * D);
    ACT(at, a->y, M * m->Dv);
    ACT(at, a->g, M * m->Dk);
    ACT(at, a->dg, M * m->Dk);
    ACT(at, a->delta, M * D);
    act_add(at, "bwd_ws", (void**)&a->bwd_ws, gla_layout_bwd_ws(m, NULL));
    ACT(at, a->dgz, M * m->Dk);
    ACT(at, a->d_o, M * m->Dv);
    ACT(at, a->dy, M * m->Dv);
    ACT(at, a->dln, M * D);
    /* one scratch for the deterministic weight-gradient partials of the norms and the gate bias */
    size_t ns = rmsnorm_scratch_floats((int)M, (int)D);
    size_t ns2 = gated_rmsnorm_scratch_floats((int)M, c->H, m->V);
    size_t ns3 = gla_gate_lowrank_scratch_floats((int)M, m->Dk);
    ns = ns > ns2 ? ns : ns2;
    ACT(at, a->norm_scratch, ns > ns3 ? ns : ns3);
    act_add(at, "emb_scratch", (void**)&a->emb_scratch, embedding_scratch_bytes((int)M, c->Vc));
}

/* after act_alloc: the pointers into bwd_ws and the buffers that share memory */
static void gla_bind_acts(GLAModel* m) {
    gla_layout_bwd_ws(m, (char*)m->a.bwd_ws);
    m->a.dres_bf = m->a.delta;
    m->a.dres = m->a.stream;
}

/* ------------------------------------------------------------------ forward */
/* per-layer views: slot l when the tensor is kept, slot 0 when it is recomputed */
static bf16* proj_of(GLAModel* m, int l) { return m->a.proj + act_slot(m->recompute, 2, l, (size_t)m->B * m->T * m->P); }
static bf16* o_of(GLAModel* m, int l) { return m->a.o + act_slot(m->recompute, 2, l, (size_t)m->B * m->T * m->Dv); }
/* the chunked GLA op may keep its chunk states and intra-chunk matrix for backward (saved, ~150 MB per
 * gla-340m layer) or recompute them there (NULL): see gla_state_slots */
static char* saved_of(GLAModel* m, int l) {
    if (m->recompute == 1 || (m->recompute == 0 && l >= m->keep_states)) return NULL;
    return m->a.gla_saved + act_slot(m->recompute, 2, l, m->gla_saved_per_layer);
}
static bf16* h_of(GLAModel* m, int l) { return m->a.h + act_slot(m->recompute, 1, l, (size_t)m->B * m->T * 2 * m->I); }

/* forget gate from the kept low-rank z1: g = gate(z1 gk1_w^T), the rank-16 product inside the gate's kernel */
static void gla_gate_from_proj(GLAModel* m, int l, cudaStream_t s) {
    const GLALayerParams* lp = &m->lp[l];
    bf16* z1 = proj_of(m, l) + 2 * m->Dk + 2 * m->Dv;
    gla_gate_lowrank_forward(m->a.g, z1, m->P, W_(m, lp->gk1_w), F_(m, lp->gk1_b), m->B * m->T, m->Dk, GLA_GATE_RANK, s);
}

/* ln -> fused projection -> forget gate -> chunked GLA output o (what backward may recompute) */
static void gla_mixer_core_forward(GLAModel* m, int l, cudaStream_t s) {
    const GLALayerParams* lp = &m->lp[l];
    GLAActs* a = &m->a;
    int B = m->B, T = m->T, M = B * T, D = m->c.D, P = m->P, Dk = m->Dk;
    bf16* proj = proj_of(m, l);
    linear_forward(proj, a->ln, W_(m, lp->w_in), M, P, D, s);
    gla_gate_from_proj(m, l, s);
    if (m->decoding) /* B sequences of one new token each: the recurrent form on the carried state */
        gla_recurrent_step(o_of(m, l), m->dec_state + (size_t)l * m->c.H * m->K * m->V, proj, proj + Dk, P, proj + 2 * Dk, P,
                           a->g, B, m->c.H, m->K, m->V, s);
    else
        gla_chunk_forward(o_of(m, l), saved_of(m, l), proj, proj + Dk, P, proj + 2 * Dk, P, a->g, B, T, m->c.H, m->K, m->V,
                          a->gla_ws, s);
}

/* o -> per-head norm x swish(output gate) = y (into the y scratch) */
static void gla_gated_norm_forward(GLAModel* m, int l, cudaStream_t s) {
    int M = m->B * m->T, H = m->c.H;
    bf16* gt = proj_of(m, l) + 2 * m->Dk + m->Dv;
    gated_rmsnorm_forward(m->a.y, m->a.rstd_gate + (size_t)l * M * H, o_of(m, l), gt, m->P, F_(m, m->lp[l].gnorm), M, H,
                          m->V, m->c.eps, s);
}

/* A sublayer norm: in the forward (rerun = 0) stream += delta (the sublayer output before it; none for the first
 * layer's attention norm, whose stream holds the embedding), ln = RMSNorm(stream), keeping xhat and rstd; in a
 * backward's rerun (rerun = 1) ln rebuilt from the kept xhat. */
static void gla_norm(GLAModel* m, bf16* xhat, float* rstd, size_t w, int first, int rerun, cudaStream_t s) {
    int M = m->B * m->T, D = m->c.D;
    float* st = m->a.stream;
    if (rerun) rmsnorm_apply_weight(m->a.ln, xhat, F_(m, w), M, D, s);
    else rmsnorm_forward_xhat(m->a.ln, xhat, rstd, first ? NULL : st, st, first ? NULL : m->a.delta, F_(m, w), M, D,
                              m->c.eps, s);
}
static void gla_norm_attn(GLAModel* m, int l, int rerun, cudaStream_t s) {
    size_t M = (size_t)m->B * m->T;
    gla_norm(m, m->a.xhat_attn + l * M * m->c.D, m->a.rstd_attn + l * M, m->lp[l].attn_norm, l == 0, rerun, s);
}
static void gla_norm_mlp(GLAModel* m, int l, int rerun, cudaStream_t s) {
    size_t M = (size_t)m->B * m->T;
    gla_norm(m, m->a.xhat_mlp + l * M * m->c.D, m->a.rstd_mlp + l * M, m->lp[l].mlp_norm, 0, rerun, s);
}

/* Forward through the final norm. Each block adds its output into the fp32 residual stream inside the
 * next norm (fused residual add). Leaves lnf ready for the classifier. */
static void gla_forward_body(GLAModel* m, const int* d_ids, cudaStream_t s) {
    GLAActs* a = &m->a;
    int M = m->B * m->T, D = m->c.D, I = m->I;
    embedding_forward(a->stream, d_ids, F_(m, m->embed), M, D, s);
    for (int l = 0; l < m->c.L; l++) {
        const GLALayerParams* lp = &m->lp[l];
        gla_norm_attn(m, l, 0, s);
        gla_mixer_core_forward(m, l, s);
        gla_gated_norm_forward(m, l, s);
        linear_forward(a->delta, a->y, W_(m, lp->w_o), M, D, m->Dv, s);
        gla_norm_mlp(m, l, 0, s);
        linear_forward(h_of(m, l), a->ln, W_(m, lp->w_gateup), M, 2 * I, D, s);
        swiglu_forward(a->act, h_of(m, l), M, I, s);
        linear_forward(a->delta, a->act, W_(m, lp->w_down), M, D, I, s);
    }
    rmsnorm_forward_xhat(a->lnf, a->ln, a->rstd_final, a->stream, a->stream, a->delta, F_(m, m->final_norm), M, D,
                         m->c.eps, s);
}

/* ------------------------------------------------------------------ backward */
/* dres holds dL/d(stream after the MLP of layer l); leaves dL/d(stream after its mixer) */
static void gla_mlp_backward(GLAModel* m, int l, cudaStream_t s) {
    const GLALayerParams* lp = &m->lp[l];
    GLAActs* a = &m->a;
    int M = m->B * m->T, D = m->c.D, I = m->I;
    size_t MD = (size_t)M * D;
    bf16* h = h_of(m, l), *dh = h;   /* dh overwrites h (see gla_layout_bwd_ws) */
    if (m->recompute >= 1) {                    /* h is not kept: rerun the norm and the up projection */
        gla_norm_mlp(m, l, 1, s);
        linear_forward(h, a->ln, W_(m, lp->w_gateup), M, 2 * I, D, s);
    }
    linear_backward(a->dact, NULL, a->dres_bf, NULL, W_(m, lp->w_down), M, D, I, s);
    swiglu_backward_rebuild(dh, a->act, a->dact, h, M, I, s);   /* also rebuilds act for the next product */
    linear_backward(NULL, G_(m, lp->w_down), a->dres_bf, a->act, NULL, M, D, I, s);
    linear_backward(a->dln, NULL, dh, NULL, W_(m, lp->w_gateup), M, 2 * I, D, s);
    /* the norm backward rebuilds ln for the weight gradient after it */
    rmsnorm_backward_xhat(a->dres, a->dres_bf, G_(m, lp->mlp_norm), a->ln, a->dln, a->xhat_mlp + (size_t)l * MD,
                          a->rstd_mlp + (size_t)l * M, F_(m, lp->mlp_norm), M, D, a->norm_scratch, s);
    linear_backward(NULL, G_(m, lp->w_gateup), dh, a->ln, NULL, M, 2 * I, D, s);
}

/* dres holds dL/d(stream after the mixer of layer l); leaves dL/d(stream entering layer l) */
static void gla_mixer_backward(GLAModel* m, int l, cudaStream_t s) {
    const GLALayerParams* lp = &m->lp[l];
    GLAActs* a = &m->a;
    int B = m->B, T = m->T, M = B * T, D = m->c.D, H = m->c.H, P = m->P, Dk = m->Dk, Dv = m->Dv, R = GLA_GATE_RANK;
    if (m->recompute >= 2) {                    /* rerun the mixer from its norm (xhat_attn[l] is kept) */
        gla_norm_attn(m, l, 1, s);
        gla_mixer_core_forward(m, l, s);
    } else {
        gla_gate_from_proj(m, l, s);
    }
    bf16* proj = proj_of(m, l);
    bf16* q = proj, *k = proj + Dk, *v = proj + 2 * Dk, *gt = proj + 2 * Dk + Dv, *z1 = proj + 2 * Dk + 2 * Dv;
    bf16* dq = a->dproj, *dk = a->dproj + Dk, *dv = a->dproj + 2 * Dk, *dgt = a->dproj + 2 * Dk + Dv;
    bf16* dz1 = a->dproj + 2 * Dk + 2 * Dv;
    linear_backward(a->dy, NULL, a->dres_bf, NULL, W_(m, lp->w_o), M, D, Dv, s);
    /* the gated norm's backward rebuilds y for o_proj's weight gradient (no forward rerun of the norm) */
    gated_rmsnorm_backward_rebuild(a->d_o, dgt, P, G_(m, lp->gnorm), a->y, a->dy, o_of(m, l), gt, P,
                                   a->rstd_gate + (size_t)l * M * H, F_(m, lp->gnorm), M, H, m->V, a->norm_scratch, s);
    linear_backward(NULL, G_(m, lp->w_o), a->dres_bf, a->y, NULL, M, D, Dv, s);
    gla_chunk_backward(dq, dk, P, dv, P, a->dg, a->d_o, saved_of(m, l), q, k, P, v, P, a->g, B, T, H, m->K, m->V, a->gla_ws, s);
    gla_gate_lowrank_backward(a->dgz, G_(m, lp->gk1_b), a->dg, z1, P, W_(m, lp->gk1_w), F_(m, lp->gk1_b), M, Dk, R,
                              a->norm_scratch, s);
    /* gate low-rank pair: gz = z1 gk1_w^T -> dz1 = dgz gk1_w, d gk1_w += dgz^T z1 */
    matmul(dz1, 0, P, a->dgz, Dk, 0, W_(m, lp->gk1_w), R, 0, M, R, Dk, 1.0f, 0.0f, s);
    matmul(G_(m, lp->gk1_w), 1, R, a->dgz, Dk, 1, z1, P, 0, Dk, R, M, 1.0f, 1.0f, s);
    linear_backward(a->dln, NULL, a->dproj, NULL, W_(m, lp->w_in), M, P, D, s);
    /* the norm backward rebuilds ln for the weight gradient after it (no forward rerun of the norm) */
    rmsnorm_backward_xhat(a->dres, a->dres_bf, G_(m, lp->attn_norm), a->ln, a->dln, a->xhat_attn + (size_t)l * M * D,
                          a->rstd_attn + (size_t)l * M, F_(m, lp->attn_norm), M, D, a->norm_scratch, s);
    linear_backward(NULL, G_(m, lp->w_in), a->dproj, a->ln, NULL, M, P, D, s);
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
    CUDA_CHECK(cudaMemsetAsync(a->dres, 0, sizeof(float) * (size_t)M * D, s));   /* the stream's memory, now free */
    rmsnorm_backward_xhat(a->dres, a->dres_bf, G_(m, m->final_norm), NULL, a->dln, a->ln, a->rstd_final,
                          F_(m, m->final_norm), M, D, a->norm_scratch, s);
    /* from here on every norm backward leaves dres and its bf16 copy dres_bf for the next product */
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

/* ------------------------------------------------------------------ recurrent decoding */
/* Sampling runs the same forward as training on a batch of one token (B = T = 1), with the chunked op
 * replaced by its recurrent step on a state carried between calls: constant work per token. */
static void gla_decode_reset(void* model) {
    GLAModel* m = (GLAModel*)model;
    size_t n = (size_t)m->c.L * m->c.H * m->K * m->V;
    if (!m->dec_state) CUDA_CHECK(cudaMalloc((void**)&m->dec_state, n * sizeof(float)));
    CUDA_CHECK(cudaMemset(m->dec_state, 0, n * sizeof(float)));
}
/* the forward of one token per sequence (B = T = 1) on the carried state; leaves lnf row 0 */
static void gla_decode_forward(void* model, const int* d_token, cudaStream_t s) {
    GLAModel* m = (GLAModel*)model;
    int B = m->B, T = m->T;
    m->B = m->T = 1;
    m->decoding = 1;
    gla_forward_body(m, d_token, s);
    m->B = B;
    m->T = T;
    m->decoding = 0;
}

/* ------------------------------------------------------------------ lifetime */
/* Builds the tables and allocates everything for micro-batches of B x T; parameters are initialised
 * from seed (fla's init). */
static void gla_create(GLAModel* m, const GLAConfig* c, int B, int T, int recompute, int keep_states, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->c = *c;
    m->B = B;
    m->T = T;
    m->recompute = recompute;
    m->keep_states = keep_states < 0 || keep_states > c->L ? c->L : keep_states;
    gla_derive(m);
    gla_build_params(m);
    m->p = param_buffers_alloc(&m->pt);
    param_init_device(&m->pt, &m->p, seed);
    param_sync_copy(&m->p);
    gla_build_acts(m);
    act_alloc(&m->at, m->pt.total * param_bytes_per_element());
    gla_bind_acts(m);
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
    int keep_states;
} gla_opt;

/* the model flags' bounds, which also bound the sizes a file's config may give (gla_param_table) */
enum { GLA_MAX_D = RMSNORM_MAX_C, GLA_MAX_L = 4096, GLA_MAX_H = 1024, GLA_MAX_EXPAND = 16, GLA_MAX_MLP = 1 << 20, GLA_MAX_VOCAB = 1 << 24 };

static int gla_options(ArgSpec* out) {
    gla_opt.preset = "gla-tiny";
    gla_opt.D = 0; gla_opt.L = 0; gla_opt.H = 0; gla_opt.I = 0; gla_opt.vocab = 0; gla_opt.tied = -1;
    gla_opt.expand_k = 0; gla_opt.expand_v = 0; gla_opt.keep_states = -1;
    const ArgSpec rows[] = {
        {NULL, "--model", ARG_STR, &gla_opt.preset, "preset: gla-tiny (D=512 L=6 H=4), gla-125m, gla-340m, gla-1.3b", 0, 0, NULL},
        {"-D", "--dim", ARG_INT, &gla_opt.D, "model width D (0: preset)", 0, GLA_MAX_D, NULL},
        {"-L", "--layers", ARG_INT, &gla_opt.L, "layers (0: preset)", 0, GLA_MAX_L, NULL},
        {"-H", "--heads", ARG_INT, &gla_opt.H, "heads (0: preset)", 0, GLA_MAX_H, NULL},
        {NULL, "--expand-k", ARG_FLOAT, &gla_opt.expand_k, "key width / D (0: preset, 0.5)", 0, GLA_MAX_EXPAND, NULL},
        {NULL, "--expand-v", ARG_FLOAT, &gla_opt.expand_v, "value width / D (0: preset, 1)", 0, GLA_MAX_EXPAND, NULL},
        {NULL, "--mlp", ARG_INT, &gla_opt.I, "MLP width (0: fla's rule 256*ceil(8D/3/256))", 0, GLA_MAX_MLP, NULL},
        {NULL, "--keep-states", ARG_INT, &gla_opt.keep_states,
         "at --recompute 0: layers 0..N-1 keep their chunk states for backward, the others recompute them (-1: all; "
         "each layer not keeping them: -151 MB and ~0.2 ms a step at gla-340m)", -1, GLA_MAX_L, NULL},
        {NULL, "--vocab", ARG_INT, &gla_opt.vocab, "vocabulary (0: the data's, rounded up to 8; --bench: 32000)", 0, GLA_MAX_VOCAB, NULL},
        {NULL, "--tied", ARG_INT, &gla_opt.tied, "1: lm_head shares the embedding, 0: separate (-1: preset)", -1, 1, NULL},
    };
    memcpy(out, rows, sizeof rows);
    return (int)(sizeof rows / sizeof rows[0]);
}

static GLAConfig gla_cfg;

/* The kernels' own shape limits (head dims, width, grid sizes), asked before the GPU is touched */
static void gla_check_kernels(const GLAModel* m, int B, int T) {
    char why[200];
    if (rmsnorm_shape_error(m->c.D, why, sizeof why) || gla_chunk_shape_error(B, T, m->c.H, m->K, m->V, why, sizeof why) ||
        gated_rmsnorm_shape_error((long long)B * T, m->c.H, m->V, why, sizeof why))
        die("GLA D=%d H=%d (head dims K=%d V=%d) at -b %d -t %d: %s", m->c.D, m->c.H, m->K, m->V, B, T, why);
}

static void gla_configure(int data_vocab, int bench, int B, int T, CkptHeader* cfg) {
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
    c.Vc = resolve_vocab(gla_opt.vocab, data_vocab, bench);
    GLAModel probe;
    memset(&probe, 0, sizeof probe);
    probe.c = c;
    gla_derive(&probe); /* validates the head split before the GPU is touched */
    gla_check_kernels(&probe, B, T);
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

/* The parameter table of a config given as fields (HF export/import), on the CPU: same builder as
 * training, so the layouts cannot drift apart. */
static void gla_param_table(const CkptHeader* cfg, ParamTable* pt) {
    GLAModel* m = (GLAModel*)malloc_check(sizeof(GLAModel));
    memset(m, 0, sizeof *m);
    GLAConfig* c = &m->c;
    c->Vc = model_config_int(cfg, "GLA", "Vc", 1, GLA_MAX_VOCAB);
    c->D = model_config_int(cfg, "GLA", "D", 1, GLA_MAX_D);
    c->L = model_config_int(cfg, "GLA", "L", 1, GLA_MAX_L);
    c->H = model_config_int(cfg, "GLA", "H", 1, GLA_MAX_H);
    int Dk = model_config_int(cfg, "GLA", "key_dim", 1, GLA_MAX_EXPAND * c->D);
    int Dv = model_config_int(cfg, "GLA", "value_dim", 1, GLA_MAX_EXPAND * c->D);
    c->expand_k = (float)Dk / c->D;
    c->expand_v = (float)Dv / c->D;
    if ((int)(c->D * c->expand_k) != Dk) c->expand_k = nextafterf(c->expand_k, 2.0f * c->expand_k);   /* int() of a product */
    if ((int)(c->D * c->expand_v) != Dv) c->expand_v = nextafterf(c->expand_v, 2.0f * c->expand_v);
    c->I = model_config_int(cfg, "GLA", "I", 1, GLA_MAX_MLP);
    c->tied = model_config_int(cfg, "GLA", "tied", 0, 1);
    c->eps = model_config_eps(cfg, "GLA");
    gla_derive(m);
    if (m->Dk != Dk || m->Dv != Dv || m->I != c->I)
        die("GLA model config: key/value/MLP widths %d/%d/%d are not reproducible from D=%d", Dk, Dv, c->I, c->D);
    gla_build_params(m);
    *pt = m->pt;
    free(m->lp);
    free(m);
}

static GLAModel gla_model;

/* what the shared trainer (and the tests) need to know about a created model */
static void gla_fill_handle(ModelHandle* h, GLAModel* m) {
    h->name = "gla";
    h->ckpt_kind = CKPT_MODEL_GLA;
    h->model = m;
    h->pt = &m->pt;
    h->pb = &m->p;
    h->at = &m->at;
    h->step = gla_step;
    h->decode_reset = gla_decode_reset;
    h->decode_forward = gla_decode_forward;
    h->flops_per_token = gla_flops_per_token(m);
    h->Vc = m->c.Vc;
    h->lnf = m->a.lnf;
    h->lm_head = W_(m, m->lm_head);
    h->D = m->c.D;
    h->B = m->B;
    h->T = m->T;
    if (m->recompute == 0) snprintf(h->kept, sizeof h->kept, "level 0, chunk states in %d of %d layers", m->keep_states, m->c.L);
    else snprintf(h->kept, sizeof h->kept, "level %d (--recompute)", m->recompute);
}

static void gla_create_handle(ModelHandle* h, int B, int T, int recompute, uint64_t seed) {
    gla_create(&gla_model, &gla_cfg, B, T, recompute, gla_opt.keep_states, seed);
    gla_fill_handle(h, &gla_model);
}

#ifndef TESTING
int main(int argc, char** argv) {
    ModelDef def = {"gla", "Train a GLA (gated linear attention) language model (fla's GLAForCausalLM).", gla_options,
                    gla_configure, gla_create_handle, gla_param_table, &hf_gla_spec};
    int rc = trainer_main(argc, argv, &def);
    gla_destroy(&gla_model);
    return rc;
}
#endif
