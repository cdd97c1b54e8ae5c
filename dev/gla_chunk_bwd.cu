/*
 * dev/gla_chunk_bwd.cu — harness for the GLA chunk backward (common/gla_chunk.cuh): dq, dk, dv, dg
 * against the double-precision reference test/ref_gla_op.h, determinism (two runs, identical bits), and
 * timing of backward and of forward+backward at the gla-340m shape.
 *
 *   ./dev/gla_chunk_bwd [version] [--check] [--reps N] [-B 16 -T 2048 -H 4 -K 128 -V 256]
 *
 * Versions:
 *   v1  gla_simple_backward: scalar fp32 kernels following gla.md 2.7/2.8 (states, reverse state
 *       gradients, A, dA, dv, dq/dk, reverse-cumsum gate gradient), one thread per output.
 *   v2  gla_chunk_backward (production), saved = NULL: tensor-core state passes (forward recompute +
 *       reverse), dv = Kd dHe + A^T do per chunk (A recomputed), and one kernel for dA, intra/inter
 *       dq/dk and dg per K-slab.
 *   v3  gla_chunk_backward (production) with what gla_chunk_forward saved (H_n, A): no forward state
 *       pass and no A recompute. Timed alone; its forward ran once before.
 * dq/dk are written as column slices of one fused buffer (like the gradient of the fused projection).
 */
#define GLA_HARNESS_NO_MAIN
#include "gla_chunk_fwd.cu"   /* problem setup, check shapes, forward versions (one source of truth) */

typedef struct { double *dq, *dk, *dv, *dg; } GlaRefGrads;   /* [B,T,H,K] / [B,T,H,V] */

static GlaRefGrads gla_prob_ref_backward(const GlaProb* p) {
    int T = p->T, H = p->H, K = p->K, V = p->V;
    size_t nk = (size_t)p->B * T * H * K, nv = (size_t)p->B * T * H * V;
    GlaRefGrads r;
    r.dq = (double*)malloc_check(nk * sizeof(double)); r.dk = (double*)malloc_check(nk * sizeof(double));
    r.dg = (double*)malloc_check(nk * sizeof(double)); r.dv = (double*)malloc_check(nv * sizeof(double));
    size_t tk = (size_t)T * K * sizeof(double), tv = (size_t)T * V * sizeof(double);
    double *q = (double*)malloc_check(tk), *k = (double*)malloc_check(tk), *g = (double*)malloc_check(tk);
    double *v = (double*)malloc_check(tv), *d_o = (double*)malloc_check(tv);
    double *dq = (double*)malloc_check(tk), *dk = (double*)malloc_check(tk), *dg = (double*)malloc_check(tk);
    double* dv = (double*)malloc_check(tv);
    for (int b = 0; b < p->B; b++)
        for (int h = 0; h < H; h++) {
            gla_prob_slice(p, b, h, q, k, v, g, d_o);
            ref_gla_op_backward(dq, dk, dv, dg, d_o, q, k, v, g, T, K, V, 1.0 / sqrt((double)K));
            for (int t = 0; t < T; t++) {
                size_t row = (size_t)b * T + t;
                for (int a = 0; a < K; a++) {
                    size_t i = (row * H + h) * K + a;
                    r.dq[i] = dq[(size_t)t * K + a]; r.dk[i] = dk[(size_t)t * K + a]; r.dg[i] = dg[(size_t)t * K + a];
                }
                for (int c = 0; c < V; c++) r.dv[(row * H + h) * V + c] = dv[(size_t)t * V + c];
            }
        }
    free(q); free(k); free(g); free(v); free(d_o); free(dq); free(dk); free(dg); free(dv);
    return r;
}

/* device gradients: dqk [B*T][ld_qk] (dq at column 0, dk at column H*K), dv [B*T][ld_v], dg [B,T,H,K] */
typedef struct { bf16 *dqk, *dv; float* dg; } GlaGrads;
static GlaGrads gla_grads_alloc(const GlaProb* p) {
    size_t M = (size_t)p->B * p->T;
    GlaGrads g;
    g.dqk = (bf16*)dmalloc(M * p->ld_qk * sizeof(bf16));
    g.dv = (bf16*)dmalloc(M * p->ld_v * sizeof(bf16));
    g.dg = (float*)dmalloc(M * p->H * p->K * sizeof(float));
    return g;
}
static void gla_grads_poison(const GlaProb* p, GlaGrads* g) {
    size_t M = (size_t)p->B * p->T;
    poison(g->dqk, M * p->ld_qk * sizeof(bf16));
    poison(g->dv, M * p->ld_v * sizeof(bf16));
    poison(g->dg, M * p->H * p->K * sizeof(float));
}
static void gla_grads_free(GlaGrads* g) { CUDA_CHECK(cudaFree(g->dqk)); CUDA_CHECK(cudaFree(g->dv)); CUDA_CHECK(cudaFree(g->dg)); }

static void gla_bwd_run(int version, GlaGrads* gr, const GlaProb* p, void* ws, void* saved) {
    const bf16* q = p->qk_d;
    const bf16* k = p->qk_d + (size_t)p->H * p->K;
    bf16* dq = gr->dqk;
    bf16* dk = gr->dqk + (size_t)p->H * p->K;
    if (version == 1)
        gla_simple_backward(dq, dk, p->ld_qk, gr->dv, p->ld_v, gr->dg, p->do_d, q, k, p->ld_qk, p->v_d, p->ld_v, p->g_d,
                            p->B, p->T, p->H, p->K, p->V, ws, 0);
    else
        gla_chunk_backward(dq, dk, p->ld_qk, gr->dv, p->ld_v, gr->dg, p->do_d, version == 3 ? saved : NULL, q, k, p->ld_qk, p->v_d, p->ld_v, p->g_d,
                           p->B, p->T, p->H, p->K, p->V, ws, 0);
}

/* compact the strided device gradients to [B,T,H,K] / [B,T,H,V] floats */
static void gla_grads_download(const GlaProb* p, const GlaGrads* gr, float* dq, float* dk, float* dv, float* dg) {
    size_t M = (size_t)p->B * p->T;
    int H = p->H, K = p->K, V = p->V;
    float* qk = (float*)malloc_check(M * p->ld_qk * sizeof(float));
    float* vv = (float*)malloc_check(M * p->ld_v * sizeof(float));
    download_bf16(qk, gr->dqk, M * p->ld_qk);
    download_bf16(vv, gr->dv, M * p->ld_v);
    download_f32(dg, gr->dg, M * H * K);
    for (size_t row = 0; row < M; row++) {
        for (int i = 0; i < H * K; i++) {
            dq[row * H * K + i] = qk[row * p->ld_qk + i];
            dk[row * H * K + i] = qk[row * p->ld_qk + (size_t)H * K + i];
        }
        for (int i = 0; i < H * V; i++) dv[row * H * V + i] = vv[row * p->ld_v + i];
    }
    free(qk); free(vv);
}
/* dg = revcumsum(q dq - k dk) is a difference of terms that cancel exactly where the state carries
 * nothing (e.g. T = 1: the exact dg is 0), so its error is measured against the size of those terms:
 * ||got - ref|| / max(||ref||, ||k dk_ref||). */
static int gla_check_dg(const char* what, const GlaProb* p, const GlaRefGrads* ref, const float* got, double tol) {
    double num = 0, den = 0, term = 0;
    for (size_t row = 0; row < (size_t)p->B * p->T; row++)
        for (int i = 0; i < p->H * p->K; i++) {
            size_t j = row * p->H * p->K + i;
            if (!isfinite(got[j])) { num = INFINITY; continue; }
            double d = (double)got[j] - ref->dg[j], kd = p->qk[row * p->ld_qk + (size_t)p->H * p->K + i] * ref->dk[j];
            num += d * d; den += ref->dg[j] * ref->dg[j]; term += kd * kd;
        }
    double e = sqrt(num) / fmax(sqrt(den), sqrt(term));
    int ok = e <= tol;
    printf("%s %s rel_err=%.3e tol=%.1e (vs max(|dg|,|k dk|))\n", ok ? "PASS" : "FAIL", what, e, tol);
    return !ok;
}
static int gla_bits_equal(const void* a, const void* b, size_t bytes) {
    void* ha = malloc_check(bytes);
    void* hb = malloc_check(bytes);
    CUDA_CHECK(cudaMemcpy(ha, a, bytes, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(hb, b, bytes, cudaMemcpyDeviceToHost));
    int eq = memcmp(ha, hb, bytes) == 0;
    free(ha); free(hb);
    return eq;
}

static double gla_bwd_bytes(double BTH, int K, int V) {   /* read q,k,v,g,d_o; write dq,dk,dv,dg */
    return BTH * (2.0 * K * 2 + 2.0 * V + 4.0 * K + 2.0 * V + 2.0 * K * 2 + 2.0 * V + 4.0 * K);
}
static double gla_bwd_flops(double BTH, int K, int V) {   /* states, dh, dv, dq/dk inter: 2KV each; intra terms */
    return BTH * (10.0 * K * V + 192.0 * K + 192.0 * V);
}

typedef struct { int version; GlaGrads* gr; const GlaProb* p; void* ws; bf16* o; void* saved; } BwdCtx;
static void bwd_fn(void* c) { BwdCtx* x = (BwdCtx*)c; gla_bwd_run(x->version, x->gr, x->p, x->ws, x->saved); }
static void fwdbwd_fn(void* c) {
    BwdCtx* x = (BwdCtx*)c;
    gla_fwd_run(x->version, x->o, x->p, x->ws, x->saved);
    gla_bwd_run(x->version, x->gr, x->p, x->ws, x->saved);
}

/* per-kernel breakdown of the production path (what each stage of gla_chunk_forward/backward costs) */
typedef struct { const GlaProb* p; GlaGrads* gr; bf16* o; void* ws; void* saved; int which; } StageCtx;
static void stage_fn(void* c) {
    StageCtx* x = (StageCtx*)c;
    const GlaProb* p = x->p;
    int B = p->B, T = p->T, H = p->H, K = p->K, V = p->V, NT = gla_num_chunks(T);
    const bf16* q = p->qk_d;
    const bf16* k = p->qk_d + (size_t)H * K;
    size_t nst = (size_t)B * H * NT * K * V;
    bf16* hs = (bf16*)x->saved;
    bf16* As = hs + nst;
    bf16* dhs = (bf16*)x->ws + nst;
    float scale = 1.0f / sqrtf((float)K);
    switch (x->which) {
    case 0: gla_state_pass(hs, false, k, p->ld_qk, p->v_d, p->ld_v, p->g_d, B, T, H, K, V, scale, 0); break;
    case 1: gla_state_pass(dhs, true, q, p->ld_qk, p->do_d, H * V, p->g_d, B, T, H, K, V, scale, 0); break;
    case 2: gla_chunk_out_launch<false, false>(x->o, H * V, q, k, p->ld_qk, p->v_d, p->ld_v, p->g_d, hs, As, B, T, H, K, V, scale, 0); break;
    case 3: gla_chunk_out_launch<true, false>(x->gr->dv, p->ld_v, q, k, p->ld_qk, p->do_d, H * V, p->g_d, dhs, NULL, B, T, H, K, V, scale, 0); break;
    case 4: gla_chunk_out_launch<true, true>(x->gr->dv, p->ld_v, q, k, p->ld_qk, p->do_d, H * V, p->g_d, dhs, As, B, T, H, K, V, scale, 0); break;
    default:
        gla_dqk_kernel<64><<<dim3(K / 64, NT, B * H), GLA_DQK_THREADS, sizeof(GlaDqkSmem<64>)>>>(
            x->gr->dqk, x->gr->dqk + (size_t)H * K, p->ld_qk, x->gr->dg, p->do_d, q, k, p->ld_qk, p->v_d, p->ld_v, p->g_d, hs,
            dhs, T, H, K, V, scale);
        CUDA_KERNEL_CHECK();
    }
}
static void gla_stage_breakdown(const GlaProb* p, GlaGrads* gr, bf16* o, void* ws, void* saved, int reps) {
    const char* names[6] = {"  state pass (H_n)", "  reverse state pass (dHe_n)", "  chunk out (o, saves A)",
                            "  chunk out (dv, recomputes A)", "  chunk out (dv, loads A)", "  dq/dk/dg"};
    if (p->K % 64) return;
    double BTH = (double)p->B * p->T * p->H, st = (double)p->B * p->H * gla_num_chunks(p->T) * p->K * p->V * 2;
    double K = p->K, V = p->V, io = BTH * (2 * K + 2 * V + 4 * K);
    double bytes[6] = {io + st, io + st, io + BTH * (2 * K + 2 * V + 128) + st, io + BTH * (2 * K + 2 * V) + st,
                       io + BTH * (2 * V + 128) + st, BTH * (4 * K + 4 * V + 4 * K + 4 * K + 4 * K) + 2 * st};
    for (int i = 0; i < 6; i++) {
        StageCtx c = {p, gr, o, ws, saved, i};
        float ms = time_kernel(stage_fn, &c, reps);
        time_report(names[i], ms, bytes[i], 0.0);
    }
}

/* The state passes' 64 x 256 tiles (taken in the model where the grid is large, which the check shapes are not) give
 * the 64 x 128 tiles' bits: v3's forward (its saved states) and backward under each, compared bit for bit */
static int gla_check_wide_tiles(const GlaProb* p, bf16* o, GlaGrads* gr, GlaGrads* gr2) {
    const size_t nsaved = gla_saved_bytes(p->B, p->T, p->H, p->K, p->V), M = (size_t)p->B * p->T;
    void* ws = dmalloc(gla_ws_bytes(3, p->B, p->T, p->H, p->K, p->V));
    void* saved[2] = {dmalloc(nsaved), dmalloc(nsaved)};
    GlaGrads* g[2] = {gr, gr2};
    for (int i = 0; i < 2; i++) {
        g_gla_sp_vc = i ? 256 : 128;
        poison(saved[i], nsaved);
        gla_grads_poison(p, g[i]);
        gla_fwd_run(3, o, p, ws, saved[i]);
        gla_bwd_run(3, g[i], p, ws, saved[i]);
    }
    g_gla_sp_vc = 0;
    CUDA_CHECK(cudaDeviceSynchronize());
    const int same = gla_bits_equal(saved[0], saved[1], nsaved) && gla_bits_equal(gr->dqk, gr2->dqk, M * p->ld_qk * 2) &&
                     gla_bits_equal(gr->dv, gr2->dv, M * p->ld_v * 2) &&
                     gla_bits_equal(gr->dg, gr2->dg, M * p->H * p->K * 4);
    printf("%s gla v3 B=%d T=%d K=%d V=%d: 64x256 state tiles give the 64x128 tiles' bits (saved states, dq, dk, dv, dg)\n",
           same ? "PASS" : "FAIL", p->B, p->T, p->K, p->V);
    CUDA_CHECK(cudaFree(ws)); CUDA_CHECK(cudaFree(saved[0])); CUDA_CHECK(cudaFree(saved[1]));
    return !same;
}

int main(int argc, char** argv) {
    HarnessArgs args = harness_args(argc, argv);
    require_gpu_or_skip("gla_chunk_bwd");
    int v_lo = args.version ? args.version : 1, v_hi = args.version ? args.version : GLA_NVERSIONS;
    if (v_lo < 1 || v_hi > GLA_NVERSIONS) die("version must be 1..%d", GLA_NVERSIONS);
    if (args.check) {
        int fails = 0;
        for (int s = 0; s < GLA_NCHECK; s++) {
            const int* sh = gla_check_shapes[s];
            GlaProb p = gla_prob_make(sh[0], sh[1], sh[2], sh[3], sh[4], gla_check_norm(sh[5]), 2000 + 31 * s);
            GlaRefGrads ref = gla_prob_ref_backward(&p);
            size_t nk = (size_t)p.B * p.T * p.H * p.K, nv = (size_t)p.B * p.T * p.H * p.V;
            float *dq = (float*)malloc_check(nk * 4), *dk = (float*)malloc_check(nk * 4), *dg = (float*)malloc_check(nk * 4);
            float* dv = (float*)malloc_check(nv * 4);
            GlaGrads gr = gla_grads_alloc(&p), gr2 = gla_grads_alloc(&p);
            bf16* o = (bf16*)dmalloc(nv * sizeof(bf16));
            for (int ver = v_lo; ver <= v_hi; ver++) {
                void* ws = dmalloc(gla_ws_bytes(ver, p.B, p.T, p.H, p.K, p.V));
                void* saved = dmalloc(gla_saved_bytes(p.B, p.T, p.H, p.K, p.V));
                gla_grads_poison(&p, &gr);
                if (ver == 3) { poison(saved, gla_saved_bytes(p.B, p.T, p.H, p.K, p.V)); gla_fwd_run(ver, o, &p, ws, saved); }
                gla_bwd_run(ver, &gr, &p, ws, saved);
                CUDA_CHECK(cudaDeviceSynchronize());
                gla_grads_download(&p, &gr, dq, dk, dv, dg);
                char what[160];
                const char* names[4] = {"dq", "dk", "dv", "dg"};
                const double* refs[4] = {ref.dq, ref.dk, ref.dv, ref.dg};
                const float* gots[4] = {dq, dk, dv, dg};
                for (int i = 0; i < 3; i++) {
                    snprintf(what, sizeof what, "gla_bwd v%d B=%d T=%d H=%d K=%d V=%d gate/%d %s", ver, p.B, p.T, p.H, p.K,
                             p.V, sh[5], names[i]);
                    fails += check_report(what, refs[i], gots[i], i == 2 ? nv : nk, 1e-2);
                }
                snprintf(what, sizeof what, "gla_bwd v%d B=%d T=%d H=%d K=%d V=%d gate/%d dg", ver, p.B, p.T, p.H, p.K, p.V, sh[5]);
                fails += gla_check_dg(what, &p, &ref, dg, 1e-2);
                if (ver >= 2) {   /* determinism: a second run gives identical bits */
                    gla_grads_poison(&p, &gr2);
                    gla_bwd_run(ver, &gr2, &p, ws, saved);
                    CUDA_CHECK(cudaDeviceSynchronize());
                    size_t M = (size_t)p.B * p.T;
                    int same = gla_bits_equal(gr.dqk, gr2.dqk, M * p.ld_qk * 2) && gla_bits_equal(gr.dv, gr2.dv, M * p.ld_v * 2) &&
                               gla_bits_equal(gr.dg, gr2.dg, nk * 4);
                    printf("%s gla_bwd v%d B=%d T=%d determinism (two runs bit-identical)\n", same ? "PASS" : "FAIL", ver, p.B, p.T);
                    fails += !same;
                }
                CUDA_CHECK(cudaFree(ws));
                CUDA_CHECK(cudaFree(saved));
            }
            if (v_hi >= 3 && p.K % 64 == 0 && p.V % 256 == 0) fails += gla_check_wide_tiles(&p, o, &gr, &gr2);
            CUDA_CHECK(cudaFree(o));
            gla_grads_free(&gr); gla_grads_free(&gr2);
            free(dq); free(dk); free(dv); free(dg);
            free(ref.dq); free(ref.dk); free(ref.dv); free(ref.dg);
            gla_prob_free(&p);
        }
        printf("gla_chunk_bwd --check: %s (%d failure%s)\n", fails ? "FAIL" : "PASS", fails, fails == 1 ? "" : "s");
        return fails ? 1 : 0;
    }
    int B = (int)harness_get(&args, 'B', 16), T = (int)harness_get(&args, 'T', 2048), H = (int)harness_get(&args, 'H', 4);
    int K = (int)harness_get(&args, 'K', 128), V = (int)harness_get(&args, 'V', 256);
    GlaProb p = gla_prob_make(B, T, H, K, V, 16, 7);
    GlaGrads gr = gla_grads_alloc(&p);
    bf16* o = (bf16*)dmalloc((size_t)B * T * H * V * sizeof(bf16));
    double BTH = (double)B * T * H, bytes = gla_bwd_bytes(BTH, K, V), flops = gla_bwd_flops(BTH, K, V);
    double fb_bytes = bytes + gla_fwd_bytes(BTH, K, V), fb_flops = flops + gla_fwd_flops(BTH, K, V);
    printf("gla_chunk_bwd B=%d T=%d H=%d K=%d V=%d: floor bwd %.4f ms, fwd+bwd %.4f ms; workspace %.1f MB, saved %.1f MB\n",
           B, T, H, K, V, floor_ms(bytes, flops), floor_ms(fb_bytes, fb_flops), gla_workspace_bytes(B, T, H, K, V) / 1e6,
           gla_saved_bytes(B, T, H, K, V) / 1e6);
    for (int ver = v_lo; ver <= v_hi; ver++) {
        void* ws = dmalloc(gla_ws_bytes(ver, B, T, H, K, V));
        void* saved = dmalloc(gla_saved_bytes(B, T, H, K, V));
        BwdCtx c = {ver, &gr, &p, ws, o, saved};
        int reps = ver == 1 ? 3 : args.reps;
        gla_fwd_run(ver, o, &p, ws, saved);   /* v3's backward reads what this forward saved */
        char what[64];
        float ms = time_kernel(bwd_fn, &c, reps);
        snprintf(what, sizeof what, "gla_bwd v%d", ver);
        time_report(what, ms, bytes, flops);
        ms = time_kernel(fwdbwd_fn, &c, reps);
        snprintf(what, sizeof what, "gla_fwd+bwd v%d", ver);
        time_report(what, ms, fb_bytes, fb_flops);
        if (ver == GLA_NVERSIONS) gla_stage_breakdown(&p, &gr, o, ws, saved, reps);
        CUDA_CHECK(cudaFree(ws));
        CUDA_CHECK(cudaFree(saved));
    }
    CUDA_CHECK(cudaFree(o));
    gla_grads_free(&gr);
    gla_prob_free(&p);
    return 0;
}
