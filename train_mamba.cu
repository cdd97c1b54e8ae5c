/*
 * train_mamba.cu — the Mamba-1 language model (state-spaces/mamba MambaLMHeadModel) and its training
 * program. This file holds only the model: config and presets, the parameter and activation tables, the
 * forward and backward orchestration of one micro-batch, and recurrent decoding for sampling. Everything
 * else comes from common/. Math: ../shared/docs/mamba.md sections 1-2.
 * Shapes: B batch, T time, M = B*T tokens, D d_model, Di d_inner, N d_state, R dt_rank, W conv width,
 * Vc vocabulary, X = row stride of the x_proj output (R+2N rounded up to 8 for 16-byte alignment).
 */
#include "common/trainer.cuh"
#include "common/conv1d.cuh"
#include "common/selective_scan.cuh"
#include "common/lowrank.cuh"

/* ------------------------------------------------------------------ config */
typedef struct {
    int Vc, D, L, Di, N, R, W;
    int tied;
    float eps;
} MambaConfig;

typedef struct { const char* name; MambaConfig c; } MambaPreset;
/* Di = 2D (expand 2), R = ceil(D/16), N = 16, W = 4 (mamba.md 1.1); tied embeddings like MambaLMHeadModel */
static const MambaPreset mamba_presets[] = {
    {"mamba-tiny", {0, 256, 4, 512, 16, 16, 4, 1, 1e-5f}},
    {"mamba-130m", {0, 768, 24, 1536, 16, 48, 4, 1, 1e-5f}},
    {"mamba-370m", {0, 1024, 48, 2048, 16, 64, 4, 1, 1e-5f}},
    {"mamba-790m", {0, 1536, 48, 3072, 16, 96, 4, 1, 1e-5f}},
    {"mamba-1.4b", {0, 2048, 48, 4096, 16, 128, 4, 1, 1e-5f}},
};

/* ------------------------------------------------------------------ model */
typedef struct {
    size_t norm, w_in, conv_w, conv_b, w_x, w_dt, dt_bias, A_log, Dskip, w_out;
} MambaLayerParams;

/* Activations. The backward of a layer needs its norm's xhat and rstd, ln, xz, u, xdbl, dt and the scan's saved
 * y_pre and chunk states (the scan backward rebuilds y, out_proj's input, from y_pre); what is not kept per layer
 * is recomputed there from what is, and the recompute level (--recompute) chooses. The fp32 residual stream lives
 * in one buffer, updated in place by each block norm; per layer the norm keeps xhat = stream * rstd in bf16 (its
 * backward needs nothing else of the stream, and ln = bf16(xhat) w is rebuilt from it), half the bytes of keeping
 * the stream itself. Bytes per token per layer kept (mamba-370m: D=1024, Di=2048, X=96, N=16; scan states are
 * 4*Di*N per 128-token chunk):
 *   0: xhat and rstd (2D+4), xdbl (2X), the scan's saved y_pre (2Di) and states (Di*N/32): 2052+192+4096+1024 =
 *      7364 B; and xz (4Di) for layers 0..L*D/(2*Di)-1, which is what keeping ln (2D) in every layer would take:
 *      on average 9412 B. Recomputed: ln (from xhat), xz (in_proj) in the other layers, u (conv1d), dt
 *      (dt_proj). in_proj is the largest product but per byte kept the cheapest thing to redo after ln (0.37 ms
 *      frees 4Di B; the scan forward, 0.55 ms, frees 2Di+Di*N/32 B); keeping xz in every layer would be 17604 B
 *      (26 GiB of activations in all at B=16, T=2048; --keep-xz chooses how many layers). Keeping ln instead
 *      (--keep-ln 1) spares the backward a pass over xhat (2D B; 0.04 ms a layer at mamba-370m for 64 MiB), the
 *      dearest per byte: its bytes in xz save 2.7 ms a mamba-370m step (1%), 11 ms at mamba-1.4b (2.7%).
 *   1: also rebuild ln from xhat (one slot) and rerun the selective scan forward (y_pre and the chunk states into
 *      one slot): 2D+4+2X = 2244 B.
 *   2: also rerun x_proj: only xhat and rstd are kept, 2D+4 = 2052 B.
 * At any level, --keep-xz N keeps xz for layers 0..N-1 (4Di B per token each: 0.25 GiB a layer at mamba-370m,
 * B=16, T=2048; the default is the count above at level 0 and none at 1 and 2), and their backward skips in_proj:
 * memory for time, layer by layer, with the same bits.
 * (Keeping everything, as before levels existed, was 27844 B.)
 * Recomputed buffers and the backward's scratch live in one workspace `ws`, which also serves as the classifier's
 * logits scratch: the classifier runs after the last layer's forward and before the first layer's backward, when
 * nothing in ws is live but the final norm's xhat, which lies beyond the classifier's part. */
typedef struct {
    /* kept per layer; ln, xdbl, scan_saved have one slot (in ws) at the levels that recompute them */
    bf16* xhat;         /* [L,M,D] each block norm's input times its rstd, rounded to bf16 */
    float* rstd;        /* [L,M] */
    bf16* ln;           /* [L|1,M,D] normed block input, bf16(xhat) * norm weight (one slot unless level 0 keeps it) */
    bf16* xdbl;         /* [L|1,M,X] x_proj output: dt_low | B | C */
    char* scan_saved;   /* [L|1, scan_saved_bytes] the scan's chunk-boundary states and y_pre */
    float* stream;      /* [M,D] fp32 residual stream: each block norm adds the previous block's output in place; the
                         * final norm's too, which keeps xhat_final like the block norms: the stream is dead after
                         * the forward, and its memory is the backward's dres */
    /* final norm */
    float* rstd_final;  /* [M] */
    bf16* lnf;          /* [M,D] */
    bf16* xhat_final;   /* [M,D] (in ws, after the classifier's scratch: live from the final norm to its backward) */
    /* delta (forward: block output before it joins the stream) and dres_bf (backward: dres rounded to bf16 by
     * each norm backward for the next out_proj products) are one [M,D] buffer: their lifetimes do not overlap.
     * dln (gradient of a norm output, also the classifier's) is read by the norm backward that writes dres_bf. */
    bf16* delta;
    bf16* dres_bf;
    bf16* dln;          /* [M,D] */
    float* dres;        /* [M,D] fp32 residual-stream gradient (= stream) */
    bf16* xz_kept;      /* [keep_xz,M,2Di] in_proj output of the layers that keep it (--keep-xz) */
    /* recomputed, one slot (in ws) */
    bf16* xz;           /* [M,2Di] in_proj output: x | z (the layers that do not keep it; absent when all do) */
    bf16* u;            /* [M,Di] conv1d + SiLU output */
    bf16* dt;           /* [M,Di] dt_proj output (before bias and softplus) */
    /* backward scratch (in ws) */
    bf16* dy;           /* [M,Di] */
    bf16* du;           /* [M,Di] */
    bf16* ddt;          /* [M,Di] gradient of dt */
    bf16* dxdbl;        /* [M,X] */
    bf16* dxz;          /* [M,2Di]; its first half (row stride 2Di) also holds y, the gated scan output that out_proj
                         * reads: written by the scan forward, and in the backward rebuilt from y_pre by the scan
                         * backward for out_proj's weight gradient, before the conv1d backward writes dx there */
    char* ws;           /* the workspace holding the buffers marked "in ws" */
    bf16* cls_scratch;  /* = ws */
    float* norm_scratch;
    float* conv_scratch;
    char* scan_ws;
    void* emb_scratch;
} MambaActs;

typedef struct {
    MambaConfig c;
    int X;
    int B, T;
    int recompute;      /* 0, 1, 2: see MambaActs */
    int keep_xz;        /* layers 0..keep_xz-1 keep in_proj's output for the backward (0..L) */
    int keep_ln;        /* level 0 keeps ln per layer (1) or rebuilds it from xhat (0); see MambaActs */
    ParamTable pt;
    ParamBuffers p;
    size_t embed, final_norm, lm_head;
    MambaLayerParams* lp;
    ActTable at;
    MambaActs a;
    size_t scan_saved_per_layer;
    /* recurrent decoding (sampling): one token at a time, conv window and scan state carried, O(1) per token */
    int decoding;
    float* dec_conv;    /* [L,Di,W-1] fp32 last inputs of the causal conv */
    float* dec_h;       /* [L,Di,N] fp32 scan state */
} MambaModel;

#define W_(m, off) ((m)->p.copy + (off))
#define F_(m, off) param_f32(&(m)->p, (off))   /* tensors kernels read in fp32 (param_keep_f32) */
#define G_(m, off) ((m)->p.grad + (off))

static void mamba_derive(MambaModel* m) {
    const MambaConfig* c = &m->c;
    m->X = (c->R + 2 * c->N + 7) / 8 * 8;
    if (c->D % 8 || c->Di % 8) die("Mamba: D=%d and d_inner=%d must be multiples of 8", c->D, c->Di);
    if (c->W < 2 || c->W > 4) die("Mamba: conv width %d not supported (2..4)", c->W);
    if (c->N < 1 || c->R < 1) die("Mamba: d_state and dt_rank must be >= 1");
}

/* The parameter table in the layout of design.md (and test/ref_mamba.h). Init per mamba.md 1.4; tensors
 * whose rule is not a plain distribution are INIT_CUSTOM and filled by mamba_init_custom. */
static void mamba_build_params(MambaModel* m) {
    const MambaConfig* c = &m->c;
    ParamTable* pt = &m->pt;
    char nm[64];
    m->embed = param_keep_f32(pt, param_add(pt, "embed", 2, c->Vc, c->D, 0, 0, INIT_NORMAL, 0.02f));
    m->lp = (MambaLayerParams*)malloc_check(sizeof(MambaLayerParams) * (size_t)c->L);
    for (int l = 0; l < c->L; l++) {
        MambaLayerParams* lp = &m->lp[l];
#define P_(field, ...) (snprintf(nm, sizeof nm, "layers.%d." #field, l), lp->field = param_add(pt, nm, __VA_ARGS__))
#define PF_(field, ...) (P_(field, __VA_ARGS__), param_keep_f32(pt, lp->field))   /* read in fp32 (F_) */
        PF_(norm, 1, c->D, 0, 0, 0, INIT_ONE, 0);
        P_(w_in, 2, 2 * c->Di, c->D, 0, 1, INIT_UNIFORM, 1.0f / sqrtf((float)c->D));
        PF_(conv_w, 2, c->Di, c->W, 0, 1, INIT_UNIFORM, 1.0f / sqrtf((float)c->W));
        PF_(conv_b, 1, c->Di, 0, 0, 0, INIT_UNIFORM, 1.0f / sqrtf((float)c->W));
        P_(w_x, 2, c->R + 2 * c->N, c->Di, 0, 1, INIT_UNIFORM, 1.0f / sqrtf((float)c->Di));
        P_(w_dt, 2, c->Di, c->R, 0, 1, INIT_UNIFORM, 1.0f / sqrtf((float)c->R));
        PF_(dt_bias, 1, c->Di, 0, 0, 0, INIT_CUSTOM, 0);
        PF_(A_log, 2, c->Di, c->N, 0, 0, INIT_CUSTOM, 0);
        PF_(Dskip, 1, c->Di, 0, 0, 0, INIT_ONE, 0);
        P_(w_out, 2, c->D, c->Di, 0, 1, INIT_UNIFORM, 1.0f / sqrtf((float)c->Di) / sqrtf((float)c->L));
#undef P_
#undef PF_
    }
    m->final_norm = param_keep_f32(pt, param_add(pt, "final_norm", 1, c->D, 0, 0, 0, INIT_ONE, 0));
    m->lm_head = c->tied ? m->embed : param_add(pt, "lm_head", 2, c->Vc, c->D, 0, 1, INIT_NORMAL, 0.02f);
}

/* dt bias = inverse softplus of dt ~ log-uniform in [1e-3, 1e-1] floored at 1e-4; A_log = log(n+1)
 * (mamba.md 1.4). Small tensors: computed on the host and copied in. */
static void mamba_init_custom(MambaModel* m, uint64_t seed) {
    const MambaConfig* c = &m->c;
    Rng r = rng_seed(seed ^ 0xD7B1A5ull);
    float* bias = (float*)malloc_check(sizeof(float) * (size_t)c->Di);
    float* alog = (float*)malloc_check(sizeof(float) * (size_t)c->Di * c->N);
    for (int l = 0; l < c->L; l++) {
        for (int d = 0; d < c->Di; d++) {
            double dt = exp(rng_uniform(&r) * (log(0.1) - log(0.001)) + log(0.001));
            if (dt < 1e-4) dt = 1e-4;
            bias[d] = (float)(dt + log(-expm1(-dt)));
            for (int n = 0; n < c->N; n++) alog[(size_t)d * c->N + n] = (float)log((double)n + 1.0);
        }
        char nm[64];
        snprintf(nm, sizeof nm, "layers.%d.dt_bias", l);
        param_set_host(&m->p, param_find(&m->pt, nm), bias);
        snprintf(nm, sizeof nm, "layers.%d.A_log", l);
        param_set_host(&m->p, param_find(&m->pt, nm), alog);
    }
    free(bias);
    free(alog);
}

static int mamba_ln_kept(const MambaModel* m) { return m->recompute == 0 && m->keep_ln; }

/* Lays out the workspace ws from base (NULL: only measures; pointers are left NULL) and returns its bytes: the
 * recomputed one-slot buffers and the backward scratch, at least the classifier's scratch. */
static size_t mamba_layout_ws(MambaModel* m, char* base) {
    MambaActs* a = &m->a;
    size_t M = (size_t)m->B * m->T, D = (size_t)m->c.D, Di = (size_t)m->c.Di, X = (size_t)m->X;
    ActCarve cv = {base, 0};
    if (!mamba_ln_kept(m)) CARVE(&cv, a->ln, M * D);
    if (m->keep_xz < m->c.L) CARVE(&cv, a->xz, M * 2 * Di);
    CARVE(&cv, a->u, M * Di);
    CARVE(&cv, a->dt, M * Di);
    if (m->recompute >= 1) CARVE(&cv, a->scan_saved, m->scan_saved_per_layer);
    if (m->recompute >= 2) CARVE(&cv, a->xdbl, M * X);
    CARVE(&cv, a->dy, M * Di);
    CARVE(&cv, a->du, M * Di);
    CARVE(&cv, a->ddt, M * Di);
    CARVE(&cv, a->dxdbl, M * X);
    CARVE(&cv, a->dxz, M * 2 * Di);
    ActCarve fin = {base, classifier_scratch_elems((int)M, m->c.Vc) * sizeof(bf16)};
    CARVE(&fin, a->xhat_final, M * D);
    return cv.off > fin.off ? cv.off : fin.off;
}

static void mamba_build_acts(MambaModel* m) {
    const MambaConfig* c = &m->c;
    ActTable* at = &m->at;
    MambaActs* a = &m->a;
    size_t M = (size_t)m->B * m->T, L = (size_t)c->L, D = (size_t)c->D, Di = (size_t)c->Di;
    m->scan_saved_per_layer = scan_saved_bytes(m->B, m->T, c->Di, c->N);
    ACT(at, a->xhat, L * M * D);
    ACT(at, a->rstd, L * M);
    if (mamba_ln_kept(m)) ACT(at, a->ln, L * M * D);
    if (m->recompute < 1) ACT(at, a->scan_saved, L * m->scan_saved_per_layer);
    if (m->recompute < 2) ACT(at, a->xdbl, L * M * m->X);
    if (m->keep_xz) ACT(at, a->xz_kept, (size_t)m->keep_xz * M * 2 * Di);
    ACT(at, a->stream, M * D);
    ACT(at, a->rstd_final, M);
    ACT(at, a->lnf, M * D);
    ACT(at, a->delta, M * D);
    ACT(at, a->dln, M * D);
    ACT(at, a->norm_scratch, rmsnorm_scratch_floats((int)M, (int)D));
    ACT(at, a->conv_scratch, conv1d_scratch_floats(m->B, m->T, c->Di, c->W));
    ACT(at, a->scan_ws, scan_workspace_bytes(m->B, m->T, c->Di, c->N));
    act_add(at, "emb_scratch", (void**)&a->emb_scratch, embedding_scratch_bytes((int)M, c->Vc));
    act_add(at, "ws", (void**)&a->ws, mamba_layout_ws(m, NULL));
}

/* after act_alloc: pointers into ws and the buffers that share memory */
static void mamba_bind_acts(MambaModel* m) {
    MambaActs* a = &m->a;
    mamba_layout_ws(m, a->ws);
    a->cls_scratch = (bf16*)a->ws;
    a->dres_bf = a->delta;
    a->dres = a->stream;
}

/* ------------------------------------------------------------------ forward */
/* per-layer views: slot l when the tensor is kept, slot 0 when it is recomputed */
static bf16* xdbl_of(MambaModel* m, int l) { return m->a.xdbl + act_slot(m->recompute, 2, l, (size_t)m->B * m->T * m->X); }
static char* saved_of(MambaModel* m, int l) { return m->a.scan_saved + act_slot(m->recompute, 1, l, m->scan_saved_per_layer); }
static bf16* ln_of(MambaModel* m, int l) { return m->a.ln + (mamba_ln_kept(m) ? (size_t)l * m->B * m->T * m->c.D : 0); }
static int xz_kept(const MambaModel* m, int l) { return l < m->keep_xz; }
static bf16* xz_of(MambaModel* m, int l) {
    return xz_kept(m, l) ? m->a.xz_kept + (size_t)l * m->B * m->T * 2 * m->c.Di : m->a.xz;
}

static bf16* xhat_of(MambaModel* m, int l) { return m->a.xhat + (size_t)l * m->B * m->T * m->c.D; }
static float* rstd_of(MambaModel* m, int l) { return m->a.rstd + (size_t)l * m->B * m->T; }

/* the block norm: stream += in_delta (the previous block's output; NULL at l = 0, where the stream holds the
 * embedding), then ln = RMSNorm(stream), keeping xhat[l] and rstd[l] for the backward */
static void mamba_norm(MambaModel* m, int l, const bf16* in_delta, cudaStream_t s) {
    float* st = m->a.stream;
    rmsnorm_forward_xhat(ln_of(m, l), xhat_of(m, l), rstd_of(m, l), in_delta ? st : NULL, st, in_delta,
                         F_(m, m->lp[l].norm), m->B * m->T, m->c.D, m->c.eps, s);
}

/* Mixer of layer l up to y (mamba.md 1.2): ln -> in_proj -> conv1d+SiLU -> x_proj -> dt_proj -> selective scan
 * (softplus, D skip, silu(z) gate). The forward runs all of it; the backward reruns what its level did not keep:
 * in_proj (in_proj = 0: xz is kept), x_proj (x_proj = 0: xdbl is kept) and the scan (scan = 0: y_pre and the
 * chunk states are kept). */
static void mamba_mixer_core_forward(MambaModel* m, int l, int in_proj, int x_proj, int scan, cudaStream_t s) {
    const MambaConfig* c = &m->c;
    const MambaLayerParams* lp = &m->lp[l];
    MambaActs* a = &m->a;
    int B = m->B, T = m->T, M = B * T, D = c->D, Di = c->Di, N = c->N, R = c->R, X = m->X;
    bf16* xdbl = xdbl_of(m, l);
    bf16* xz = xz_of(m, l);
    if (in_proj) linear_forward(xz, ln_of(m, l), W_(m, lp->w_in), M, 2 * Di, D, s);
    if (m->decoding) /* one new token per sequence: the conv's recurrent form on the carried window */
        conv1d_silu_step(a->u, m->dec_conv + (size_t)l * Di * (c->W - 1), xz, 2 * Di, F_(m, lp->conv_w),
                         F_(m, lp->conv_b), B, Di, c->W, s);
    else
        conv1d_silu_forward(a->u, xz, 2 * Di, F_(m, lp->conv_w), F_(m, lp->conv_b), B, T, Di, c->W, s);
    if (x_proj) matmul(xdbl, 0, X, a->u, Di, 0, W_(m, lp->w_x), Di, 1, M, R + 2 * N, Di, 1.0f, 0.0f, s);
    matmul(a->dt, 0, Di, xdbl, X, 0, W_(m, lp->w_dt), R, 1, M, Di, R, 1.0f, 0.0f, s);
    if (scan && m->decoding) /* ... and the scan's, on the carried state */
        selective_scan_step(a->dxz /* B = 1: one row, its stride does not matter */, m->dec_h + (size_t)l * Di * N,
                            a->u, Di, a->dt, xz + Di, 2 * Di, xdbl + R, xdbl + R + N, X, F_(m, lp->A_log),
                            F_(m, lp->Dskip), F_(m, lp->dt_bias), B, Di, N, s);
    else if (scan)
        selective_scan_forward(a->dxz, 2 * Di, saved_of(m, l), a->u, Di, a->dt, xz + Di, 2 * Di, xdbl + R, xdbl + R + N,
                               X, F_(m, lp->A_log), F_(m, lp->Dskip), F_(m, lp->dt_bias), B, T, Di, N, a->scan_ws, s);
}

/* Forward through the final norm. Each block's out_proj output (delta) joins the fp32 residual stream inside the
 * next norm. Leaves lnf ready for the classifier. */
static void mamba_forward_body(MambaModel* m, const int* d_ids, cudaStream_t s) {
    MambaActs* a = &m->a;
    int M = m->B * m->T, D = m->c.D;
    embedding_forward(a->stream, d_ids, F_(m, m->embed), M, D, s);
    for (int l = 0; l < m->c.L; l++) {
        mamba_norm(m, l, l == 0 ? NULL : a->delta, s);
        mamba_mixer_core_forward(m, l, 1, 1, 1, s);
        linear_forward_ld(a->delta, D, a->dxz, 2 * m->c.Di, W_(m, m->lp[l].w_out), M, D, m->c.Di, s);
    }
    rmsnorm_forward_xhat(a->lnf, a->xhat_final, a->rstd_final, a->stream, a->stream, a->delta, F_(m, m->final_norm), M, D,
                         m->c.eps, s);
}

/* ------------------------------------------------------------------ backward */
/* dres holds dL/d(stream after layer l); leaves dL/d(stream entering layer l). First recomputes what the level did
 * not keep (into one-slot buffers: the previous layer's backward is done with them), then runs the reverse of the
 * mixer (mamba.md 2.2) and of the block norm. */
static void mamba_layer_backward(MambaModel* m, int l, cudaStream_t s) {
    const MambaConfig* c = &m->c;
    const MambaLayerParams* lp = &m->lp[l];
    MambaActs* a = &m->a;
    int B = m->B, T = m->T, M = B * T, D = c->D, Di = c->Di, N = c->N, R = c->R, X = m->X;
    if (!mamba_ln_kept(m)) rmsnorm_apply_weight(ln_of(m, l), xhat_of(m, l), F_(m, lp->norm), M, D, s);
    mamba_mixer_core_forward(m, l, !xz_kept(m, l), m->recompute >= 2, m->recompute >= 1, s);
    bf16* xdbl = xdbl_of(m, l);
    bf16* xz = xz_of(m, l);
    bf16* ddt = a->ddt;
    /* dres_bf: dres rounded to bf16 by the norm backward that last updated dres (the final norm's, or layer l+1's).
     * out_proj's weight gradient waits for the scan backward, which rebuilds its input y from the saved y_pre. */
    linear_backward(a->dy, NULL, a->dres_bf, NULL, W_(m, lp->w_out), M, D, Di, s);
    selective_scan_backward(a->du, Di, ddt, a->dxz + Di, 2 * Di, a->dxz, 2 * Di, a->dxdbl + R, a->dxdbl + R + N, X, G_(m, lp->A_log),
                            G_(m, lp->Dskip), G_(m, lp->dt_bias), a->dy, saved_of(m, l), a->u, Di, a->dt, xz + Di,
                            2 * Di, xdbl + R, xdbl + R + N, X, F_(m, lp->A_log), F_(m, lp->Dskip), F_(m, lp->dt_bias),
                            B, T, Di, N, a->scan_ws, s);
    linear_backward_ld(NULL, 0, G_(m, lp->w_out), a->dres_bf, D, a->dxz, 2 * Di, NULL, M, D, Di, s);   /* y */
    /* dt_proj: dt = dt_low w_dt^T */
    matmul(a->dxdbl, 0, X, ddt, Di, 0, W_(m, lp->w_dt), R, 0, M, R, Di, 1.0f, 0.0f, s);
    matmul(G_(m, lp->w_dt), 1, R, ddt, Di, 1, xdbl, X, 0, Di, R, M, 1.0f, 1.0f, s);
    /* x_proj: xdbl = u w_x^T; du gets the second path added in place (lowrank.cuh: cuBLASLt's beta = 1 is slow here) */
    lowrank_add(a->du, Di, a->dxdbl, X, W_(m, lp->w_x), Di, M, Di, R + 2 * N, s);
    matmul(G_(m, lp->w_x), 1, Di, a->dxdbl, X, 1, a->u, Di, 0, R + 2 * N, Di, M, 1.0f, 1.0f, s);
    conv1d_silu_backward(a->dxz, 2 * Di, G_(m, lp->conv_w), G_(m, lp->conv_b), a->du, xz, 2 * Di, F_(m, lp->conv_w),
                         F_(m, lp->conv_b), B, T, Di, c->W, a->conv_scratch, s);
    linear_backward(a->dln, G_(m, lp->w_in), a->dxz, ln_of(m, l), W_(m, lp->w_in), M, 2 * Di, D, s);
    rmsnorm_backward_xhat(a->dres, a->dres_bf, G_(m, lp->norm), NULL, a->dln, xhat_of(m, l), rstd_of(m, l), F_(m, lp->norm),
                          M, D, a->norm_scratch, s);
}

/* ------------------------------------------------------------------ one micro-batch */
/* Forward (and with train, backward) of one micro-batch. losses[M] receives per-token losses; gradients
 * accumulate into p.grad scaled by dloss = d(step loss)/d(token loss). */
static void mamba_step(void* model, const int* d_ids, const int* d_targets, float dloss, int train, float* d_losses,
                       cudaStream_t s) {
    MambaModel* m = (MambaModel*)model;
    MambaActs* a = &m->a;
    int M = m->B * m->T, D = m->c.D;
    mamba_forward_body(m, d_ids, s);
    classifier_forward_backward(d_losses, train ? a->dln : NULL, train ? G_(m, m->lm_head) : NULL, a->lnf,
                                W_(m, m->lm_head), d_targets, dloss, M, D, m->c.Vc, a->cls_scratch, s);
    if (!train) return;
    CUDA_CHECK(cudaMemsetAsync(a->dres, 0, sizeof(float) * (size_t)M * D, s));   /* the stream's memory, now free */
    rmsnorm_backward_xhat(a->dres, a->dres_bf, G_(m, m->final_norm), NULL, a->dln, a->xhat_final, a->rstd_final,
                          F_(m, m->final_norm), M, D, a->norm_scratch, s);
    for (int l = m->c.L - 1; l >= 0; l--) mamba_layer_backward(m, l, s);
    embedding_backward(G_(m, m->embed), a->dres, d_ids, M, D, m->c.Vc, a->emb_scratch, s);
}

/* training FLOPs per token: 6 x matrix parameters (mamba.md 1.1) + the scan (~10 Di N per layer fwd, ~3x total) */
static double mamba_flops_per_token(void* model) {
    MambaModel* m = (MambaModel*)model;
    const MambaConfig* c = &m->c;
    double per_layer = 3.0 * c->D * c->Di + (double)c->Di * (2 * c->R + 2 * c->N);
    return 6.0 * (c->L * per_layer + (double)c->Vc * c->D) + 30.0 * c->L * c->Di * c->N;
}

/* ------------------------------------------------------------------ recurrent decoding */
/* Sampling runs the same forward as training on a batch of one token (B = T = 1), with the conv and the
 * scan replaced by their recurrent steps on state carried between calls (mamba.md 1.7). */
static void mamba_decode_reset(void* model) {
    MambaModel* m = (MambaModel*)model;
    const MambaConfig* c = &m->c;
    size_t nc = (size_t)c->L * c->Di * (c->W - 1), nh = (size_t)c->L * c->Di * c->N;
    if (!m->dec_h) {
        CUDA_CHECK(cudaMalloc((void**)&m->dec_conv, (nc ? nc : 1) * sizeof(float)));
        CUDA_CHECK(cudaMalloc((void**)&m->dec_h, nh * sizeof(float)));
    }
    CUDA_CHECK(cudaMemset(m->dec_conv, 0, (nc ? nc : 1) * sizeof(float)));
    CUDA_CHECK(cudaMemset(m->dec_h, 0, nh * sizeof(float)));
}
/* the forward of one token per sequence (B = T = 1) on the carried state; leaves lnf row 0 */
static void mamba_decode_forward(void* model, const int* d_token, cudaStream_t s) {
    MambaModel* m = (MambaModel*)model;
    int B = m->B, T = m->T;
    m->B = m->T = 1;
    m->decoding = 1;
    mamba_forward_body(m, d_token, s);
    m->B = B;
    m->T = T;
    m->decoding = 0;
}

/* ------------------------------------------------------------------ lifetime */
#define MAMBA_KEEP_XZ_AUTO (-2)
/* --keep-xz's default: at level 0 without kept ln, xz for as many layers as the bytes ln would take in every layer
 * (L*D/(2*Di): 12 of 48 at mamba-370m), where they save more time (see MambaActs); otherwise none */
static int mamba_auto_keep_xz(const MambaConfig* c, int recompute, int keep_ln) {
    return recompute == 0 && !keep_ln ? (int)((long long)c->L * c->D / (2LL * c->Di)) : 0;
}

/* Builds the tables and allocates everything for micro-batches of B x T at recompute level 0..2 with the first
 * keep_xz layers keeping xz (see MambaActs; MAMBA_KEEP_XZ_AUTO: mamba_auto_keep_xz, other values < 0 or above L:
 * all) and level 0 keeping ln or not (keep_ln); parameters are initialised from seed (mamba.md 1.4). */
static void mamba_create(MambaModel* m, const MambaConfig* c, int B, int T, int recompute, int keep_xz, int keep_ln,
                         uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->c = *c;
    m->B = B;
    m->T = T;
    if (recompute < 0 || recompute > 2) die("Mamba: recompute level %d (0, 1 or 2)", recompute);
    m->recompute = recompute;
    m->keep_ln = keep_ln != 0;
    if (keep_xz == MAMBA_KEEP_XZ_AUTO) keep_xz = mamba_auto_keep_xz(c, recompute, m->keep_ln);
    m->keep_xz = keep_xz < 0 || keep_xz > c->L ? c->L : keep_xz;
    mamba_derive(m);
    mamba_build_params(m);
    m->p = param_buffers_alloc(&m->pt);
    param_init_device(&m->pt, &m->p, seed);
    mamba_init_custom(m, seed);
    param_sync_copy(&m->p);
    mamba_build_acts(m);
    act_alloc(&m->at, m->pt.total * param_bytes_per_element());
    mamba_bind_acts(m);
}

static void mamba_destroy(MambaModel* m) {
    act_free(&m->at);
    param_buffers_free(&m->p);
    free(m->pt.t);
    free(m->lp);
    if (m->dec_h) { cudaFree(m->dec_conv); cudaFree(m->dec_h); }
}

/* ------------------------------------------------------------------ program */
static struct {
    const char* preset;
    int D, L, Di, N, R, W, vocab, tied;
    float expand;
    int keep_xz, keep_ln;
} mamba_opt;

/* the model flags' bounds, which also bound the sizes a file's config may give (mamba_param_table) */
enum { MAMBA_MAX_D = RMSNORM_MAX_C, MAMBA_MAX_L = 4096, MAMBA_MAX_INNER = 1 << 20, MAMBA_MAX_STATE = 32, MAMBA_MAX_CONV = 4,
       MAMBA_MAX_VOCAB = 1 << 24 };

static int mamba_options(ArgSpec* out) {
    memset(&mamba_opt, 0, sizeof mamba_opt);
    mamba_opt.preset = "mamba-tiny";
    mamba_opt.tied = -1;
    mamba_opt.keep_xz = MAMBA_KEEP_XZ_AUTO;
    const ArgSpec rows[] = {
        {NULL, "--model", ARG_STR, &mamba_opt.preset,
         "preset: mamba-tiny (D=256 L=4), mamba-130m, mamba-370m, mamba-790m, mamba-1.4b", 0, 0, NULL},
        {"-D", "--dim", ARG_INT, &mamba_opt.D, "d_model (0: preset; d_inner and dt_rank follow unless given)", 0, MAMBA_MAX_D, NULL},
        {"-L", "--layers", ARG_INT, &mamba_opt.L, "layers (0: preset)", 0, MAMBA_MAX_L, NULL},
        {NULL, "--expand", ARG_FLOAT, &mamba_opt.expand, "d_inner / d_model (0: 2)", 0, 64, NULL},
        {NULL, "--d-inner", ARG_INT, &mamba_opt.Di, "d_inner (0: expand * D)", 0, MAMBA_MAX_INNER, NULL},
        {NULL, "--d-state", ARG_INT, &mamba_opt.N, "d_state N: 4, 8, 16 or 32 (0: 16)", 0, MAMBA_MAX_STATE, NULL},
        {NULL, "--dt-rank", ARG_INT, &mamba_opt.R, "dt_rank (0: ceil(D/16))", 0, MAMBA_MAX_D, NULL},
        {NULL, "--conv", ARG_INT, &mamba_opt.W, "causal conv width: 2, 3 or 4 (0: 4)", 0, MAMBA_MAX_CONV, NULL},
        {NULL, "--vocab", ARG_INT, &mamba_opt.vocab, "vocabulary (0: the data's, rounded up to 8; --bench: 32000)", 0, MAMBA_MAX_VOCAB, NULL},
        {NULL, "--tied", ARG_INT, &mamba_opt.tied, "1: lm_head shares the embedding, 0: separate (-1: preset, tied)", -1, 1, NULL},
        {NULL, "--keep-xz", ARG_INT, &mamba_opt.keep_xz,
         "layers that keep in_proj's output for the backward instead of rerunning in_proj (0.25 GiB each at mamba-370m -b 16 -t 2048; "
         "-1: all; -2: at --recompute 0 with --keep-ln 0 the layers that kept ln would take the memory of, L*D/(2*d_inner), else none)",
         -2, MAMBA_MAX_L, NULL},
        {NULL, "--keep-ln", ARG_INT, &mamba_opt.keep_ln,
         "1: --recompute 0 keeps each block norm's output ln for the backward (0.0625 GiB a layer at mamba-370m -b 16 -t 2048, "
         "and --keep-xz -2 keeps none); 0: rebuilds it from the kept xhat, one pass a layer",
         0, 1, NULL},
    };
    memcpy(out, rows, sizeof rows);
    return (int)(sizeof rows / sizeof rows[0]);
}

static MambaConfig mamba_cfg;

/* The kernels' own shape limits (d_state, conv width, widths, grid sizes), asked before the GPU is touched */
static void mamba_check_kernels(const MambaConfig* c, int B, int T) {
    char why[200];
    if (rmsnorm_shape_error(c->D, why, sizeof why) || scan_shape_error(B, T, c->Di, c->N, why, sizeof why) ||
        conv1d_shape_error(B, T, c->Di, c->W, why, sizeof why))
        die("Mamba D=%d d_inner=%d d_state=%d conv=%d at -b %d -t %d: %s", c->D, c->Di, c->N, c->W, B, T, why);
}

static void mamba_configure(int data_vocab, int bench, int B, int T, CkptHeader* cfg) {
    const MambaPreset* p = NULL;
    for (size_t i = 0; i < sizeof mamba_presets / sizeof mamba_presets[0]; i++)
        if (!strcmp(mamba_presets[i].name, mamba_opt.preset)) p = &mamba_presets[i];
    if (!p) die("--model %s: unknown preset (mamba-tiny, mamba-130m, mamba-370m, mamba-790m, mamba-1.4b)", mamba_opt.preset);
    MambaConfig c = p->c;
    if (mamba_opt.D) { c.D = mamba_opt.D; c.Di = 2 * c.D; c.R = (c.D + 15) / 16; }
    if (mamba_opt.L) c.L = mamba_opt.L;
    if (mamba_opt.expand > 0) c.Di = (int)(mamba_opt.expand * c.D);
    if (mamba_opt.Di) c.Di = mamba_opt.Di;
    if (mamba_opt.N) c.N = mamba_opt.N;
    if (mamba_opt.R) c.R = mamba_opt.R;
    if (mamba_opt.W) c.W = mamba_opt.W;
    if (mamba_opt.tied >= 0) c.tied = mamba_opt.tied;
    c.Vc = resolve_vocab(mamba_opt.vocab, data_vocab, bench);
    MambaModel probe;
    memset(&probe, 0, sizeof probe);
    probe.c = c;
    mamba_derive(&probe);
    mamba_check_kernels(&c, B, T);
    mamba_cfg = c;
    ckpt_config_int(cfg, "Vc", c.Vc);
    ckpt_config_int(cfg, "D", c.D);
    ckpt_config_int(cfg, "L", c.L);
    ckpt_config_int(cfg, "d_inner", c.Di);
    ckpt_config_int(cfg, "d_state", c.N);
    ckpt_config_int(cfg, "dt_rank", c.R);
    ckpt_config_int(cfg, "conv", c.W);
    ckpt_config_int(cfg, "tied", c.tied);
    ckpt_config_float(cfg, "eps", c.eps);
}

/* The parameter table of a config given as fields (HF export/import), on the CPU: same builder as
 * training, so the layouts cannot drift apart. */
static void mamba_param_table(const CkptHeader* cfg, ParamTable* pt) {
    MambaModel* m = (MambaModel*)malloc_check(sizeof(MambaModel));
    memset(m, 0, sizeof *m);
    MambaConfig* c = &m->c;
    c->Vc = model_config_int(cfg, "Mamba", "Vc", 1, MAMBA_MAX_VOCAB);
    c->D = model_config_int(cfg, "Mamba", "D", 1, MAMBA_MAX_D);
    c->L = model_config_int(cfg, "Mamba", "L", 1, MAMBA_MAX_L);
    c->Di = model_config_int(cfg, "Mamba", "d_inner", 1, MAMBA_MAX_INNER);
    c->N = model_config_int(cfg, "Mamba", "d_state", 1, MAMBA_MAX_STATE);
    c->R = model_config_int(cfg, "Mamba", "dt_rank", 1, MAMBA_MAX_D);
    c->W = model_config_int(cfg, "Mamba", "conv", 1, MAMBA_MAX_CONV);
    c->tied = model_config_int(cfg, "Mamba", "tied", 0, 1);
    c->eps = model_config_eps(cfg, "Mamba");
    mamba_derive(m);
    mamba_build_params(m);
    *pt = m->pt;
    free(m->lp);
    free(m);
}

static MambaModel mamba_model;

/* what the shared trainer (and the tests) need to know about a created model */
static void mamba_fill_handle(ModelHandle* h, MambaModel* m) {
    h->name = "mamba";
    h->ckpt_kind = CKPT_MODEL_MAMBA;
    h->model = m;
    h->pt = &m->pt;
    h->pb = &m->p;
    h->at = &m->at;
    h->step = mamba_step;
    h->decode_reset = mamba_decode_reset;
    h->decode_forward = mamba_decode_forward;
    h->flops_per_token = mamba_flops_per_token(m);
    h->Vc = m->c.Vc;
    h->lnf = m->a.lnf;
    h->lm_head = W_(m, m->lm_head);
    h->D = m->c.D;
    h->B = m->B;
    h->T = m->T;
    snprintf(h->kept, sizeof h->kept, "level %d, xz in %d of %d layers%s", m->recompute, m->keep_xz, m->c.L,
             m->recompute ? "" : mamba_ln_kept(m) ? ", ln kept" : ", ln rebuilt");
}

static void mamba_create_handle(ModelHandle* h, int B, int T, int recompute, uint64_t seed) {
    mamba_create(&mamba_model, &mamba_cfg, B, T, recompute, mamba_opt.keep_xz, mamba_opt.keep_ln, seed);
    mamba_fill_handle(h, &mamba_model);
}

#ifndef TESTING
int main(int argc, char** argv) {
    ModelDef def = {"mamba", "Train a Mamba-1 language model (state-spaces/mamba MambaLMHeadModel).", mamba_options,
                    mamba_configure, mamba_create_handle, mamba_param_table, &hf_mamba_spec};
    int rc = trainer_main(argc, argv, &def);
    mamba_destroy(&mamba_model);
    return rc;
}
#endif
