/*
 * dev/gla_chunk_fwd.cu — harness for the GLA chunk forward (common/gla_chunk.cuh): correctness against
 * the double-precision recurrence of test/ref_gla_op.h, and timing at the gla-340m shape.
 *
 *   ./dev/gla_chunk_fwd [version] [--check] [--reps N] [-B 16 -T 2048 -H 4 -K 128 -V 256]
 *
 * Versions:
 *   v1  gla_simple_forward: scalar fp32 kernels, one thread per output, gla.md 2.8 line by line.
 *   v2  gla_chunk_forward (production), saved = NULL: tensor-core state pass + one CTA per chunk
 *       computing A by 16x16 sub-chunks and o = Qg H_n + A v.
 *   v3  gla_chunk_forward (production) with a saved buffer: also keeps H_n and A for the backward.
 * q and k are column slices of one fused buffer (q at column 0, k at column H*K, row stride ld_qk), v is
 * a slice of a wider buffer too, as in the trainer. The backward harness includes this file (with
 * GLA_HARNESS_NO_MAIN) for the problem setup below, so that it lives in one place.
 */
#include "../common/gla_chunk.cuh"
#include "harness.h"
#include "../test/ref_gla_op.h"

/* ---------------- one problem: host inputs (bf16-rounded), device copies, reference ---------------- */
typedef struct {
    int B, T, H, K, V, ld_qk, ld_v;
    float *qk, *v, *g, *d_o;        /* host: qk [B*T][ld_qk], v [B*T][ld_v], g [B,T,H,K], d_o [B,T,H,V] */
    bf16 *qk_d, *v_d, *do_d;
    float* g_d;
} GlaProb;

static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

/* q, k, v, d_o ~ U(-1,1) rounded to bf16; g = logsigmoid(U(-4,2)) / norm: norm 1 decays strongly
 * (down to e^-4 per step), norm 16 weakly, as the model's /16 gate does. */
static GlaProb gla_prob_make(int B, int T, int H, int K, int V, double norm, uint64_t seed) {
    GlaProb p;
    p.B = B; p.T = T; p.H = H; p.K = K; p.V = V;
    p.ld_qk = 2 * H * K + 16;   /* extra columns: the rest of a fused projection */
    p.ld_v = H * V + 8;
    size_t M = (size_t)B * T;
    p.qk = (float*)malloc_check(M * p.ld_qk * sizeof(float));
    p.v = (float*)malloc_check(M * p.ld_v * sizeof(float));
    p.g = (float*)malloc_check(M * H * K * sizeof(float));
    p.d_o = (float*)malloc_check(M * H * V * sizeof(float));
    fill_uniform(p.qk, M * p.ld_qk, -1.f, 1.f, seed + 1);
    fill_uniform(p.v, M * p.ld_v, -1.f, 1.f, seed + 2);
    fill_uniform(p.d_o, M * H * V, -1.f, 1.f, seed + 3);
    round_to_bf16(p.qk, M * p.ld_qk);
    round_to_bf16(p.v, M * p.ld_v);
    round_to_bf16(p.d_o, M * H * V);
    fill_uniform(p.g, M * H * K, -4.f, 2.f, seed + 4);
    for (size_t i = 0; i < M * H * K; i++) p.g[i] = (float)(log_sigmoid(p.g[i]) / norm);
    p.qk_d = upload_bf16(p.qk, M * p.ld_qk);
    p.v_d = upload_bf16(p.v, M * p.ld_v);
    p.do_d = upload_bf16(p.d_o, M * H * V);
    p.g_d = upload_f32(p.g, M * H * K);
    return p;
}
static void gla_prob_free(GlaProb* p) {
    free(p->qk); free(p->v); free(p->g); free(p->d_o);
    CUDA_CHECK(cudaFree(p->qk_d)); CUDA_CHECK(cudaFree(p->v_d)); CUDA_CHECK(cudaFree(p->do_d)); CUDA_CHECK(cudaFree(p->g_d));
}
/* gather one (b,h) slice into [T][K] / [T][V] doubles */
static void gla_prob_slice(const GlaProb* p, int b, int h, double* q, double* k, double* v, double* g, double* d_o) {
    int T = p->T, H = p->H, K = p->K, V = p->V;
    for (int t = 0; t < T; t++) {
        size_t row = (size_t)b * T + t;
        for (int a = 0; a < K; a++) {
            q[(size_t)t * K + a] = p->qk[row * p->ld_qk + (size_t)h * K + a];
            k[(size_t)t * K + a] = p->qk[row * p->ld_qk + (size_t)H * K + (size_t)h * K + a];
            g[(size_t)t * K + a] = p->g[(row * H + h) * K + a];
        }
        for (int c = 0; c < V; c++) {
            v[(size_t)t * V + c] = p->v[row * p->ld_v + (size_t)h * V + c];
            if (d_o) d_o[(size_t)t * V + c] = p->d_o[(row * H + h) * V + c];
        }
    }
}
/* reference o [B,T,H,V] (inline: dev/gla_chunk_bwd.cu includes this file without using it) */
static inline double* gla_prob_ref_forward(const GlaProb* p) {
    int T = p->T, H = p->H, K = p->K, V = p->V;
    double* o = (double*)malloc_check((size_t)p->B * T * H * V * sizeof(double));
    double *q = (double*)malloc_check((size_t)T * K * sizeof(double)), *k = (double*)malloc_check((size_t)T * K * sizeof(double));
    double *g = (double*)malloc_check((size_t)T * K * sizeof(double)), *v = (double*)malloc_check((size_t)T * V * sizeof(double));
    double* os = (double*)malloc_check((size_t)T * V * sizeof(double));
    for (int b = 0; b < p->B; b++)
        for (int h = 0; h < H; h++) {
            gla_prob_slice(p, b, h, q, k, v, g, NULL);
            ref_gla_op_forward(os, q, k, v, g, T, K, V, 1.0 / sqrt((double)K));
            for (int t = 0; t < T; t++)
                for (int c = 0; c < V; c++) o[(((size_t)b * T + t) * H + h) * V + c] = os[(size_t)t * V + c];
        }
    free(q); free(k); free(g); free(v); free(os);
    return o;
}

/* ---------------- versions ---------------- */
/* saved: gla_saved_bytes, used by v3 only */
static void gla_fwd_run(int version, bf16* o, const GlaProb* p, void* ws, void* saved) {
    const bf16* q = p->qk_d;
    const bf16* k = p->qk_d + (size_t)p->H * p->K;
    if (version == 1) gla_simple_forward(o, q, k, p->ld_qk, p->v_d, p->ld_v, p->g_d, p->B, p->T, p->H, p->K, p->V, ws, 0);
    else gla_chunk_forward(o, version == 3 ? saved : NULL, q, k, p->ld_qk, p->v_d, p->ld_v, p->g_d, p->B, p->T, p->H, p->K,
                           p->V, ws, 0);
}
static size_t gla_ws_bytes(int version, int B, int T, int H, int K, int V) {
    return version == 1 ? gla_simple_workspace_bytes(B, T, H, K, V) : gla_workspace_bytes(B, T, H, K, V);
}
#define GLA_NVERSIONS 3

/* check shapes: B, T, H, K, V, gate normaliser (negative: multiplier, -4 gives gates down to -16 per step,
 * so 16-token sub-blocks span gate ranges past 80 and the kernels' exact-exponent fallbacks run).
 * T = 1, 17, 100, 130, 150, 200 leave a partial last chunk. */
static const int gla_check_shapes[][6] = {
    {1, 1, 1, 32, 64, 1},    {1, 17, 2, 64, 64, 16},  {2, 64, 1, 32, 128, 1},  {1, 100, 3, 64, 128, 1},
    {3, 200, 2, 128, 256, 16}, {2, 130, 4, 96, 192, 1}, {1, 77, 1, 256, 512, 16}, {2, 200, 1, 128, 256, 1},
    {1, 1000, 1, 64, 64, 16}, {1, 640, 1, 128, 256, 1}, {1, 150, 2, 64, 128, -4}, {2, 100, 1, 128, 256, -4},
};
static double gla_check_norm(int code) { return code > 0 ? (double)code : -1.0 / code; }
#define GLA_NCHECK ((int)(sizeof(gla_check_shapes) / sizeof(gla_check_shapes[0])))

/* per-token-head byte and FLOP counts (minimum traffic: each input read once, each output written once) */
static double gla_fwd_bytes(double BTH, int K, int V) { return BTH * (2.0 * K * 2 + 2.0 * V + 4.0 * K + 2.0 * V); }
static double gla_fwd_flops(double BTH, int K, int V) { return BTH * (4.0 * K * V + 64.0 * K + 64.0 * V); }

#ifndef GLA_HARNESS_NO_MAIN
/* gla_recurrent_step, token by token over a B=1 sequence (so a token's q/k/v/g rows are [1,H,*] slices),
 * against the same reference as the chunked forward */
static int gla_check_recurrent(void) {
    GlaProb p = gla_prob_make(1, 77, 2, 64, 128, 1, 4242);
    double* ref = gla_prob_ref_forward(&p);
    size_t no = (size_t)p.T * p.H * p.V;
    bf16* o = (bf16*)dmalloc(no * sizeof(bf16));
    float* S = (float*)dmalloc((size_t)p.H * p.K * p.V * sizeof(float));
    poison(o, no * sizeof(bf16));
    CUDA_CHECK(cudaMemset(S, 0, (size_t)p.H * p.K * p.V * sizeof(float)));
    for (int t = 0; t < p.T; t++) {
        const bf16* q = p.qk_d + (size_t)t * p.ld_qk;
        gla_recurrent_step(o + (size_t)t * p.H * p.V, S, q, q + (size_t)p.H * p.K, p.ld_qk, p.v_d + (size_t)t * p.ld_v, p.ld_v,
                           p.g_d + (size_t)t * p.H * p.K, 1, p.H, p.K, p.V, 0);
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    float* got = (float*)malloc_check(no * sizeof(float));
    download_bf16(got, o, no);
    int fail = check_report("gla_recurrent_step B=1 T=77 H=2 K=64 V=128 o", ref, got, no, 1e-2);
    free(got); free(ref);
    CUDA_CHECK(cudaFree(o)); CUDA_CHECK(cudaFree(S));
    gla_prob_free(&p);
    return fail;
}

typedef struct { int version; bf16* o; const GlaProb* p; void* ws; void* saved; } FwdCtx;
static void fwd_fn(void* c) { FwdCtx* x = (FwdCtx*)c; gla_fwd_run(x->version, x->o, x->p, x->ws, x->saved); }

int main(int argc, char** argv) {
    HarnessArgs args = harness_args(argc, argv);
    require_gpu_or_skip("gla_chunk_fwd");
    int v_lo = args.version ? args.version : 1, v_hi = args.version ? args.version : GLA_NVERSIONS;
    if (v_lo < 1 || v_hi > GLA_NVERSIONS) die("version must be 1..%d", GLA_NVERSIONS);
    if (args.check) {
        int fails = 0;
        for (int s = 0; s < GLA_NCHECK; s++) {
            const int* sh = gla_check_shapes[s];
            GlaProb p = gla_prob_make(sh[0], sh[1], sh[2], sh[3], sh[4], gla_check_norm(sh[5]), 1000 + 17 * s);
            double* ref = gla_prob_ref_forward(&p);
            size_t no = (size_t)p.B * p.T * p.H * p.V;
            float* got = (float*)malloc_check(no * sizeof(float));
            bf16* o = (bf16*)dmalloc(no * sizeof(bf16));
            for (int ver = v_lo; ver <= v_hi; ver++) {
                void* ws = dmalloc(gla_ws_bytes(ver, p.B, p.T, p.H, p.K, p.V));
                void* saved = dmalloc(gla_saved_bytes(p.B, p.T, p.H, p.K, p.V));
                poison(o, no * sizeof(bf16));
                gla_fwd_run(ver, o, &p, ws, saved);
                CUDA_CHECK(cudaDeviceSynchronize());
                download_bf16(got, o, no);
                char what[160];
                snprintf(what, sizeof what, "gla_fwd v%d B=%d T=%d H=%d K=%d V=%d gate/%d o", ver, p.B, p.T, p.H, p.K, p.V, sh[5]);
                fails += check_report(what, ref, got, no, 1e-2);
                CUDA_CHECK(cudaFree(ws));
                CUDA_CHECK(cudaFree(saved));
            }
            CUDA_CHECK(cudaFree(o));
            free(got); free(ref);
            gla_prob_free(&p);
        }
        fails += gla_check_recurrent();
        printf("gla_chunk_fwd --check: %s (%d failure%s)\n", fails ? "FAIL" : "PASS", fails, fails == 1 ? "" : "s");
        return fails ? 1 : 0;
    }
    int B = (int)harness_get(&args, 'B', 16), T = (int)harness_get(&args, 'T', 2048), H = (int)harness_get(&args, 'H', 4);
    int K = (int)harness_get(&args, 'K', 128), V = (int)harness_get(&args, 'V', 256);
    GlaProb p = gla_prob_make(B, T, H, K, V, 16, 7);
    bf16* o = (bf16*)dmalloc((size_t)B * T * H * V * sizeof(bf16));
    double BTH = (double)B * T * H, bytes = gla_fwd_bytes(BTH, K, V), flops = gla_fwd_flops(BTH, K, V);
    printf("gla_chunk_fwd B=%d T=%d H=%d K=%d V=%d: floor %.4f ms (%.1f MB min traffic, %.2f GFLOP); workspace %.1f MB, saved %.1f MB\n",
           B, T, H, K, V, floor_ms(bytes, flops), bytes / 1e6, flops / 1e9, gla_workspace_bytes(B, T, H, K, V) / 1e6,
           gla_saved_bytes(B, T, H, K, V) / 1e6);
    for (int ver = v_lo; ver <= v_hi; ver++) {
        void* ws = dmalloc(gla_ws_bytes(ver, B, T, H, K, V));
        void* saved = dmalloc(gla_saved_bytes(B, T, H, K, V));
        FwdCtx c = {ver, o, &p, ws, saved};
        float ms = time_kernel(fwd_fn, &c, ver == 1 ? 3 : args.reps);
        char what[64];
        snprintf(what, sizeof what, "gla_fwd v%d", ver);
        time_report(what, ms, bytes, flops);
        CUDA_CHECK(cudaFree(ws));
        CUDA_CHECK(cudaFree(saved));
    }
    CUDA_CHECK(cudaFree(o));
    gla_prob_free(&p);
    return 0;
}
#endif
