/*
 * dev/classifier.cu — harness for common/classifier.cuh (lm_head + softmax cross-entropy, chunked over
 * rows): losses, dy and the dW increment checked against the double reference (ref_core.h) at small
 * shapes, including a vocabulary that is not a multiple of 8, ignored targets (-1), one row, and a batch
 * that spans two chunks; forward-only mode; bit-identical reruns. The CE pass alone is also checked bit for
 * bit against the kernel before its instruction cut (classifier_ce_old_kernel) on random bf16 logits.
 * Timed at M=32768, D=1024, Vc=32000 against the floor of its three matmuls at 790 TFLOP/s.
 *
 * classifier_argmax (recall accuracy for MQAR) is checked twice: the argmax pass alone on hand-made bf16
 * logits (random, never zero, with ties, NaN, -inf, +inf, one class) against a CPU argmax of the same bits,
 * and the whole chunked call against the double reference (the pick is the double argmax or within bf16
 * rounding of it) and, exactly, against a CPU argmax of the logits the GPU itself computed. Ties come from
 * duplicated rows of W; scratch and pred are poisoned with 0x7F bytes (a huge finite logit, an impossible
 * index), so a read of the padding columns or an unwritten pred shows up.
 *
 *   ./dev/classifier [--check] [-M 32768 -D 1024 -V 32000] [--reps 20]
 *   v1: production classifier_forward_backward from common/classifier.cuh. The timing run also times the CE
 *       pass alone (production, the kernel before the instruction cut, two register-resident experiments)
 *       and the three matmuls of one chunk.
 *   v2: classifier_argmax (matmul + argmax pass per chunk), timed with the argmax pass alone.
 */
#include "../common/classifier.cuh"
#include "harness.h"
#include "ref_core.h"

/* ---------------- CE-pass experiments (kept for the record; production is classifier_ce_kernel) ----------------
 * Measured on H200, 8192 rows x Vc=32000 (2026-11-29): the two-pass streaming kernel then in production
 * (classifier_ce_old_kernel below) 0.416 ms (2.52 TB/s); register-resident 4 x 1024 threads 0.492 ms; 8 x 512
 * threads 0.426 ms. Reading the row once did not pay: the pass is bounded by instructions (bf16 unpacking,
 * masking, 2 exps per element) as much as by bytes, which the production kernel now cuts instead.
 * The 4 x 1024 variant passed the --check shapes (Vc 12000, 32000) while it was the production dispatch. */
/* block-wide reductions over THREADS threads; every thread gets the result */
template <int THREADS>
__device__ inline float ce_block_max_(float x, float* s_red) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    if (threadIdx.x % 32 == 0) s_red[threadIdx.x / 32] = x;
    __syncthreads();
    x = s_red[0];
    for (int w = 1; w < THREADS / 32; w++) x = fmaxf(x, s_red[w]);
    __syncthreads(); /* s_red is reused by the next reduction */
    return x;
}
template <int THREADS>
__device__ inline float ce_block_sum_(float x, float* s_red) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    if (threadIdx.x % 32 == 0) s_red[threadIdx.x / 32] = x;
    __syncthreads();
    x = 0.0f;
    for (int w = 0; w < THREADS / 32; w++) x += s_red[w]; /* same order in every thread */
    return x;
}

/* Experiment (not production): same contract as classifier_ce_kernel, for rows of at most VPT * THREADS vectors:
 * the row is read from memory once into registers (VPT x128 per thread), so the pass moves the minimum
 * (read + write bf16 once) with VPT independent 16-byte loads in flight per thread; max, then sum of
 * exp, then dlogits from the registers. */
template <int VPT, int THREADS>
__global__ void __launch_bounds__(THREADS, 1024 / THREADS) /* >= 1024 threads per SM: one block reduces while another loads */
classifier_ce_reg_kernel(bf16* logits, int ld, float* losses, const int* targets, int Vc, float dloss, int write_grad) {
    __shared__ float s_red[THREADS / 32];
    bf16* l = logits + (size_t)blockIdx.x * (size_t)ld;
    const int t = targets[blockIdx.x];
    const int nvec = (Vc + 7) / 8;
    /* the target logit is read before the first barrier: after the last one, other threads overwrite the row */
    const float lt = (threadIdx.x == 0 && t >= 0 && t < Vc) ? bf2f(l[t]) : 0.0f;
    x128 buf[VPT];
    float mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = threadIdx.x + k * THREADS;
        if (i < nvec) buf[k] = load128cs(l + (size_t)i * 8);
    }
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = threadIdx.x + k * THREADS;
        if (i < nvec)
            for (int j = 0; j < 8; j++) mx = (i * 8 + j < Vc) ? fmaxf(mx, bf2f(buf[k][j])) : mx;
    }
    mx = ce_block_max_<THREADS>(mx, s_red);
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = threadIdx.x + k * THREADS;
        if (i < nvec)
            for (int j = 0; j < 8; j++) sum += (i * 8 + j < Vc) ? __expf(bf2f(buf[k][j]) - mx) : 0.0f;
    }
    sum = ce_block_sum_<THREADS>(sum, s_red);
    const float lse = mx + logf(sum);
    if (threadIdx.x == 0) losses[blockIdx.x] = t < 0 ? 0.0f : (t < Vc ? lse - lt : NAN);
    if (!write_grad) return;
    const float scale = t < 0 ? 0.0f : dloss;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        const int i = threadIdx.x + k * THREADS;
        if (i < nvec) {
            x128 d;
            for (int j = 0; j < 8; j++) {
                const int idx = i * 8 + j;
                float g = scale * (__expf(bf2f(buf[k][j]) - lse) - (idx == t ? 1.0f : 0.0f));
                d[j] = f2bf(idx < Vc ? g : 0.0f);
            }
            store128(l + (size_t)i * 8, d);
        }
    }
}

/* Experiment (the record): the production CE kernel before the instruction cut of 2026-11-30, verbatim. */
__global__ void __launch_bounds__(CLASSIFIER_CE_THREADS)
classifier_ce_old_kernel(bf16* logits, int ld, float* losses, const int* targets, int Vc, float dloss, int write_grad) {
    __shared__ float s_mx[CLASSIFIER_CE_THREADS / 32], s_sum[CLASSIFIER_CE_THREADS / 32];
    __shared__ float s_lse;
    bf16* l = logits + (size_t)blockIdx.x * (size_t)ld;
    const int t = targets[blockIdx.x];
    const int nvec = (Vc + 7) / 8;
    /* read the target logit before anything can overwrite it (llm.c once had exactly this race) */
    float lt = 0.0f;
    if (threadIdx.x == 0 && t >= 0 && t < Vc) lt = bf2f(l[t]);

    float mx = -INFINITY, sum = 0.0f;
    for (int i = threadIdx.x; i < nvec; i += blockDim.x) {
        x128 v = load128(l + (size_t)i * 8);
        float x[8], vm = -INFINITY;
        for (int k = 0; k < 8; k++) {
            x[k] = (i * 8 + k < Vc) ? bf2f(v[k]) : -INFINITY;
            vm = fmaxf(vm, x[k]);
        }
        float m = fmaxf(mx, vm);
        float s = (mx == -INFINITY) ? 0.0f : sum * __expf(mx - m);
        for (int k = 0; k < 8; k++) s += (x[k] == -INFINITY) ? 0.0f : __expf(x[k] - m);
        mx = m;
        sum = s;
    }
    if (ce_block_merge_(mx, sum, s_mx, s_sum)) {
        const float lse = mx + logf(sum);
        s_lse = lse;
        losses[blockIdx.x] = t < 0 ? 0.0f : (t < Vc ? lse - lt : NAN);
    }
    __syncthreads();
    if (!write_grad) return;
    const float lse = s_lse;
    const float scale = t < 0 ? 0.0f : dloss;
    for (int i = threadIdx.x; i < nvec; i += blockDim.x) {
        x128 v = load128(l + (size_t)i * 8);
        x128 d;
        for (int k = 0; k < 8; k++) {
            int idx = i * 8 + k;
            float p = __expf(bf2f(v[k]) - lse);
            float g = scale * (p - (idx == t ? 1.0f : 0.0f));
            d[k] = f2bf(idx < Vc ? g : 0.0f);
        }
        store128(l + (size_t)i * 8, d);
    }
}

static uint64_t g_seed = 777;

typedef struct {
    int M, D, Vc;
    float dloss;
    float *hy, *hW, *hdW0;
    int* ht;
    bf16 *y, *W, *dy, *scratch;
    float *losses, *dW;
    int *targets, *pred; /* pred [M]: classifier_argmax's output */
} Problem;

static Problem make_problem(int M, int D, int Vc, double ignore_frac) {
    Problem p;
    p.M = M; p.D = D; p.Vc = Vc;
    p.hy = (float*)malloc_check(sizeof(float) * (size_t)M * D);
    p.hW = (float*)malloc_check(sizeof(float) * (size_t)Vc * D);
    p.hdW0 = (float*)malloc_check(sizeof(float) * (size_t)Vc * D);
    p.ht = (int*)malloc_check(sizeof(int) * (size_t)M);
    /* logits = y W^T with entries of size ~ 3: a realistic spread for a softmax */
    float a = (float)(3.0 * sqrt(3.0 / D));
    fill_uniform(p.hy, (size_t)M * D, -1.0f, 1.0f, g_seed++);
    fill_uniform(p.hW, (size_t)Vc * D, -a, a, g_seed++);
    fill_uniform(p.hdW0, (size_t)Vc * D, -1e-4f, 1e-4f, g_seed++); /* small: fp32 rounding of dW0 + inc stays far below the increment */
    round_to_bf16(p.hy, (size_t)M * D);
    round_to_bf16(p.hW, (size_t)Vc * D);
    Rng r = rng_seed(g_seed++);
    int nvalid = 0;
    for (int m = 0; m < M; m++) {
        p.ht[m] = rng_uniform(&r) < ignore_frac ? -1 : (int)rng_below(&r, (uint32_t)Vc);
        nvalid += p.ht[m] >= 0;
    }
    p.dloss = 1.0f / (float)(nvalid ? nvalid : 1);
    p.y = upload_bf16(p.hy, (size_t)M * D);
    p.W = upload_bf16(p.hW, (size_t)Vc * D);
    p.dy = (bf16*)dmalloc(sizeof(bf16) * (size_t)M * D);
    p.dW = upload_f32(p.hdW0, (size_t)Vc * D);
    p.losses = (float*)dmalloc(sizeof(float) * (size_t)M);
    p.targets = (int*)dmalloc(sizeof(int) * (size_t)M);
    p.pred = (int*)dmalloc(sizeof(int) * (size_t)M);
    CUDA_CHECK(cudaMemcpy(p.targets, p.ht, sizeof(int) * (size_t)M, cudaMemcpyHostToDevice));
    p.scratch = (bf16*)dmalloc(sizeof(bf16) * classifier_scratch_elems(M, Vc));
    return p;
}
static void free_problem(Problem* p) {
    free(p->hy); free(p->hW); free(p->hdW0); free(p->ht);
    CUDA_CHECK(cudaFree(p->y)); CUDA_CHECK(cudaFree(p->W)); CUDA_CHECK(cudaFree(p->dy)); CUDA_CHECK(cudaFree(p->dW));
    CUDA_CHECK(cudaFree(p->losses)); CUDA_CHECK(cudaFree(p->targets)); CUDA_CHECK(cudaFree(p->scratch));
    CUDA_CHECK(cudaFree(p->pred));
}
/* dW back to its start, outputs and scratch poisoned, then one call */
static void run_problem(Problem* p, int grad) {
    CUDA_CHECK(cudaMemcpy(p->dW, p->hdW0, sizeof(float) * (size_t)p->Vc * p->D, cudaMemcpyHostToDevice));
    poison(p->dy, sizeof(bf16) * (size_t)p->M * p->D);
    poison(p->losses, sizeof(float) * (size_t)p->M);
    poison(p->scratch, sizeof(bf16) * classifier_scratch_elems(p->M, p->Vc));
    classifier_forward_backward(p->losses, grad ? p->dy : NULL, grad ? p->dW : NULL, p->y, p->W, p->targets, p->dloss,
                                p->M, p->D, p->Vc, p->scratch, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
}

static int check_shape(int M, int D, int Vc, double ignore_frac) {
    int fails = 0;
    char what[160];
    Problem p = make_problem(M, D, Vc, ignore_frac);
    size_t nl = (size_t)M * Vc, ny = (size_t)M * D, nw = (size_t)Vc * D;
    /* reference */
    double *y = to_double(p.hy, ny), *W = to_double(p.hW, nw);
    double* logits = (double*)malloc_check(sizeof(double) * nl);
    double* dlogits = (double*)malloc_check(sizeof(double) * nl);
    double* ref_losses = (double*)malloc_check(sizeof(double) * (size_t)M);
    double* ref_dy = (double*)calloc(ny, sizeof(double));
    double* ref_dW = (double*)calloc(nw, sizeof(double));
    ref_linear_forward(logits, y, W, NULL, M, Vc, D);
    ref_ce_forward(ref_losses, logits, p.ht, M, Vc);
    ref_ce_backward(dlogits, logits, p.ht, M, Vc, (double)p.dloss);
    ref_linear_backward(ref_dy, ref_dW, NULL, dlogits, y, W, M, Vc, D);

    float* losses = (float*)malloc_check(sizeof(float) * (size_t)M);
    float* dy = (float*)malloc_check(sizeof(float) * ny);
    float* dW = (float*)malloc_check(sizeof(float) * nw);
    float* inc = (float*)malloc_check(sizeof(float) * nw);
    int nchunks = (M + classifier_chunk_rows(M, Vc) - 1) / classifier_chunk_rows(M, Vc);

    /* forward only */
    run_problem(&p, 0);
    download_f32(losses, p.losses, (size_t)M);
    snprintf(what, sizeof what, "forward-only losses  M=%d D=%d Vc=%d ignore=%.0f%% chunks=%d", M, D, Vc, 100 * ignore_frac, nchunks);
    fails += check_report(what, ref_losses, losses, (size_t)M, 5e-3);

    /* forward + backward */
    run_problem(&p, 1);
    download_f32(losses, p.losses, (size_t)M);
    download_bf16(dy, p.dy, ny);
    download_f32(dW, p.dW, nw);
    for (size_t i = 0; i < nw; i++) inc[i] = (float)((double)dW[i] - (double)p.hdW0[i]);
    snprintf(what, sizeof what, "losses               M=%d D=%d Vc=%d ignore=%.0f%% chunks=%d", M, D, Vc, 100 * ignore_frac, nchunks);
    fails += check_report(what, ref_losses, losses, (size_t)M, 5e-3);
    snprintf(what, sizeof what, "dy                   M=%d D=%d Vc=%d", M, D, Vc);
    fails += check_report(what, ref_dy, dy, ny, 1e-2);
    snprintf(what, sizeof what, "dW increment (+=)    M=%d D=%d Vc=%d", M, D, Vc);
    fails += check_report(what, ref_dW, inc, nw, 1e-2);

    /* determinism: a second run gives the same bits everywhere */
    float* losses2 = (float*)malloc_check(sizeof(float) * (size_t)M);
    float* dy2 = (float*)malloc_check(sizeof(float) * ny);
    float* dW2 = (float*)malloc_check(sizeof(float) * nw);
    run_problem(&p, 1);
    download_f32(losses2, p.losses, (size_t)M);
    download_bf16(dy2, p.dy, ny);
    download_f32(dW2, p.dW, nw);
    int same = !memcmp(losses, losses2, sizeof(float) * M) && !memcmp(dy, dy2, sizeof(float) * ny) &&
               !memcmp(dW, dW2, sizeof(float) * nw);
    printf("%s deterministic        M=%d D=%d Vc=%d (bit-identical rerun)\n", same ? "PASS" : "FAIL", M, D, Vc);
    fails += !same;

    free(y); free(W); free(logits); free(dlogits); free(ref_losses); free(ref_dy); free(ref_dW);
    free(losses); free(dy); free(dW); free(inc); free(losses2); free(dy2); free(dW2);
    free_problem(&p);
    return fails;
}

/* ---------------- classifier_argmax ---------------- */
/* CPU argmax of n bf16 values: larger wins, lower index on a tie, NaN never; n when all are NaN */
static int ref_argmax_bf16(const uint16_t* x, int n) {
    int best = n;
    float bv = -INFINITY;
    for (int i = 0; i < n; i++) {
        float v = host_bf_bits2f(x[i]);
        if (v > bv || (v == bv && best == n)) { bv = v; best = i; }
    }
    return best;
}
/* 0x7F bytes: in pred an index no row can have, in bf16 scratch 3.4e38, which wins if a padding column is read */
static void poison_7f(void* d, size_t bytes) { CUDA_CHECK(cudaMemset(d, 0x7F, bytes)); }

static int* upload_ints(const int* h, int n) {
    int* d = (int*)dmalloc(sizeof(int) * (size_t)n);
    CUDA_CHECK(cudaMemcpy(d, h, sizeof(int) * (size_t)n, cudaMemcpyHostToDevice));
    return d;
}
static int* download_ints(const int* d, int n) {
    int* h = (int*)malloc_check(sizeof(int) * (size_t)n);
    CUDA_CHECK(cudaMemcpy(h, d, sizeof(int) * (size_t)n, cudaMemcpyDeviceToHost));
    return h;
}

/* rows of hand-made logits: random in +-[0.01, 4] (never zero) with the row's maximum copied to a second
 * column, and special rows: all equal, NaNs around a maximum, all NaN, all -inf, +inf twice, ignored */
static void make_argmax_logits(uint16_t* l, int* tg, int rows, int ld, int Vc, Rng* r) {
    const uint16_t NAN_B = 0x7FC0, NINF = 0xFF80, PINF = 0x7F80;
    for (int m = 0; m < rows; m++) {
        uint16_t* x = l + (size_t)m * ld;
        for (int i = 0; i < Vc; i++) {
            float v = (float)rng_uniform_in(r, 0.01, 4.0);
            x[i] = host_f2bf_bits(rng_below(r, 2) ? v : -v);
        }
        int a = (int)rng_below(r, (uint32_t)Vc), b = (int)rng_below(r, (uint32_t)Vc);
        int kind = m % 8;
        if (kind == 1) for (int i = 0; i < Vc; i++) x[i] = host_f2bf_bits(1.5f);
        if (kind == 2) { for (int i = 0; i < Vc; i += 2) x[i] = NAN_B; x[a] = host_f2bf_bits(9.0f); }
        if (kind == 3) for (int i = 0; i < Vc; i++) x[i] = NAN_B;
        if (kind == 4) for (int i = 0; i < Vc; i++) x[i] = NINF;
        if (kind == 5) { x[a] = PINF; x[b] = PINF; }
        if (kind == 0 || kind >= 6) x[b] = x[ref_argmax_bf16(x, Vc)]; /* a tie at the top (b may be before or after) */
        tg[m] = kind == 7 ? -1 : (int)rng_below(r, (uint32_t)Vc);
    }
}

/* the argmax pass alone against a CPU argmax of the same bf16 bits (exact, ties included) */
static int check_argmax_pass(int rows, int Vc) {
    int ld = classifier_padded_vocab(Vc);
    size_t n = (size_t)rows * ld;
    uint16_t* l = (uint16_t*)malloc_check(n * sizeof(uint16_t));
    int* tg = (int*)malloc_check(sizeof(int) * (size_t)rows);
    for (size_t i = 0; i < n; i++) l[i] = 0x7F7F; /* padding: would win if read */
    Rng r = rng_seed(g_seed++);
    make_argmax_logits(l, tg, rows, ld, Vc, &r);
    bf16* d_l = (bf16*)dmalloc(n * sizeof(uint16_t));
    CUDA_CHECK(cudaMemcpy(d_l, l, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    int* d_tg = upload_ints(tg, rows);
    int* d_pred = (int*)dmalloc(sizeof(int) * (size_t)rows);
    poison_7f(d_pred, sizeof(int) * (size_t)rows);
    classifier_argmax_rows(d_pred, d_l, ld, d_tg, rows, Vc, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    int* pred = download_ints(d_pred, rows);
    int bad = 0, first = -1, first_want = 0;
    for (int m = 0; m < rows; m++) {
        int want = tg[m] < 0 ? -1 : ref_argmax_bf16(l + (size_t)m * ld, Vc);
        if (pred[m] != want && first < 0) { first = m; first_want = want; }
        bad += pred[m] != want;
    }
    printf("%s argmax pass alone    rows=%d Vc=%d: %d wrong", bad ? "FAIL" : "PASS", rows, Vc, bad);
    if (first >= 0) printf(" (row %d: got %d, want %d)", first, pred[first], first_want);
    printf("\n");
    free(l); free(tg); free(pred);
    CUDA_CHECK(cudaFree(d_l)); CUDA_CHECK(cudaFree(d_tg)); CUDA_CHECK(cudaFree(d_pred));
    return bad != 0;
}

/* copies a fraction of W's rows over others (after rounding, so the copies are bit-equal): equal logits */
static void duplicate_w_rows(Problem* p, double frac) {
    Rng r = rng_seed(g_seed++);
    int ndup = (int)(frac * p->Vc);
    for (int k = 0; k < ndup && p->Vc > 1; k++) {
        int from = (int)rng_below(&r, (uint32_t)p->Vc), to = (int)rng_below(&r, (uint32_t)p->Vc);
        memcpy(p->hW + (size_t)to * p->D, p->hW + (size_t)from * p->D, sizeof(float) * (size_t)p->D);
    }
    CUDA_CHECK(cudaFree(p->W));
    p->W = upload_bf16(p->hW, (size_t)p->Vc * p->D);
}

/* pred and scratch poisoned, one call, pred downloaded (caller frees) */
static int* run_argmax(Problem* p) {
    poison_7f(p->pred, sizeof(int) * (size_t)p->M);
    poison_7f(p->scratch, sizeof(bf16) * classifier_scratch_elems(p->M, p->Vc));
    classifier_argmax(p->pred, p->y, p->W, p->targets, p->M, p->D, p->Vc, p->scratch, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    return download_ints(p->pred, p->M);
}

/* rows of the last chunk: pred is exactly the CPU argmax of the bf16 logits left in scratch */
static int argmax_vs_own_logits(const Problem* p, const int* pred) {
    int chunk = classifier_chunk_rows(p->M, p->Vc), ld = classifier_padded_vocab(p->Vc);
    int r0 = (p->M - 1) / chunk * chunk, rows = p->M - r0, bad = 0;
    uint16_t* l = (uint16_t*)malloc_check(sizeof(uint16_t) * (size_t)rows * ld);
    CUDA_CHECK(cudaMemcpy(l, p->scratch, sizeof(uint16_t) * (size_t)rows * ld, cudaMemcpyDeviceToHost));
    for (int m = 0; m < rows; m++)
        bad += pred[r0 + m] != (p->ht[r0 + m] < 0 ? -1 : ref_argmax_bf16(l + (size_t)m * ld, p->Vc));
    free(l);
    return bad;
}

/* every row against the double logits: -1 when ignored, else a class whose logit is the maximum or within
 * bf16 rounding of it (GPU and reference may round a near-tie apart). Counts exact matches and tie rows. */
static int argmax_vs_double(const Problem* p, const int* pred, const double* logits, int* exact, int* ties) {
    int bad = 0;
    *exact = *ties = 0;
    for (int m = 0; m < p->M; m++) {
        const double* x = logits + (size_t)m * p->Vc;
        int best = 0, nbest = 0;
        for (int i = 1; i < p->Vc; i++) if (x[i] > x[best]) best = i;
        for (int i = 0; i < p->Vc; i++) nbest += x[i] == x[best];
        if (p->ht[m] < 0) { bad += pred[m] != -1; continue; }
        if (pred[m] < 0 || pred[m] >= p->Vc || x[pred[m]] < x[best] - (8e-3 * fabs(x[best]) + 1e-5)) { bad++; continue; }
        *exact += pred[m] == best;
        *ties += nbest > 1;
    }
    return bad;
}

static int check_argmax_shape(int M, int D, int Vc, double ignore_frac, double dup_frac) {
    Problem p = make_problem(M, D, Vc, ignore_frac);
    duplicate_w_rows(&p, dup_frac);
    double *y = to_double(p.hy, (size_t)M * D), *W = to_double(p.hW, (size_t)Vc * D);
    double* logits = (double*)malloc_check(sizeof(double) * (size_t)M * Vc);
    ref_linear_forward(logits, y, W, NULL, M, Vc, D);
    int* pred = run_argmax(&p);
    int exact = 0, ties = 0, nvalid = 0;
    for (int m = 0; m < M; m++) nvalid += p.ht[m] >= 0;
    int own = argmax_vs_own_logits(&p, pred);
    int dbl = argmax_vs_double(&p, pred, logits, &exact, &ties);
    int* pred2 = run_argmax(&p);
    int same = !memcmp(pred, pred2, sizeof(int) * (size_t)M);
    int fails = (own != 0) + (dbl != 0) + !same;
    printf("%s argmax               M=%d D=%d Vc=%d chunks=%d: last chunk vs its own logits %d wrong; vs double %d wrong "
           "(%d/%d valid rows exact, %d with a tie at the top); rerun %s\n", fails ? "FAIL" : "PASS", M, D, Vc,
           (M + classifier_chunk_rows(M, Vc) - 1) / classifier_chunk_rows(M, Vc), own, dbl, exact, nvalid, ties,
           same ? "bit-identical" : "DIFFERS");
    free(y); free(W); free(logits); free(pred); free(pred2);
    free_problem(&p);
    return fails;
}

static int check_argmax(void) {
    int fails = 0;
    const int pass_vc[] = {1, 7, 8, 77, 1003, 8192, 40001};
    for (int i = 0; i < 7; i++) fails += check_argmax_pass(37, pass_vc[i]);
    fails += check_argmax_shape(64, 32, 128, 0.1, 0.25);
    fails += check_argmax_shape(37, 24, 77, 0.2, 0.25);   /* Vc not a multiple of 8, odd M */
    fails += check_argmax_shape(1, 16, 1, 0.0, 0.0);      /* one row, one class */
    fails += check_argmax_shape(5, 16, 7, 0.0, 0.5);      /* less than one 8-wide vector */
    fails += check_argmax_shape(16, 16, 40, 1.0, 0.0);    /* every target ignored */
    fails += check_argmax_shape(8200, 32, 72, 0.1, 0.25); /* two chunks (8192 + 8 rows) */
    fails += check_argmax_shape(300, 64, 8192, 0.9, 0.1); /* MQAR-like: vocab 8192, few rows scored */
    fails += check_argmax_shape(48, 32, 32000, 0.1, 0.1);
    fails += check_argmax_shape(40, 16, 40001, 0.1, 0.1);
    return fails;
}

/* ---------------- the CE pass against the kernel before the instruction cut, bit for bit ---------------- */
#define CE_CHECK_POISON 0x7F7Fu /* padding columns: bf16 3.4e38, which would dominate any row that read it */

/* bf16 logits U(-8, 8) (the spread of a trained model's logits), targets with ~10% ignored; a few rows
 * that reach the other paths: target Vc (NaN loss), target in the first and in the last column, a row a
 * quarter -inf (masked classes), a row all -inf (NaN loss and dlogits) */
static void make_ce_rows(uint16_t* l, int* tg, int rows, int ld, int Vc, Rng* r) {
    for (int m = 0; m < rows; m++) {
        uint16_t* x = l + (size_t)m * ld;
        for (int i = 0; i < ld; i++) x[i] = i < Vc ? host_f2bf_bits((float)rng_uniform_in(r, -8.0, 8.0)) : CE_CHECK_POISON;
        tg[m] = rng_uniform(r) < 0.1 ? -1 : (int)rng_below(r, (uint32_t)Vc);
        const int kind = m % 16; /* one row in 16 of each special kind */
        if (kind == 1) tg[m] = Vc;
        if (kind == 2) tg[m] = 0;
        if (kind == 3) tg[m] = Vc - 1;
        if (kind == 4) for (int i = 0; i < Vc; i++) if (rng_below(r, 4) == 0) x[i] = 0xFF80u; /* -inf */
        if (kind == 5) for (int i = 0; i < Vc; i++) x[i] = 0xFF80u;
    }
}

/* elements of a and b (n each, `size` bytes each) whose bits differ */
static size_t count_bit_diffs(const void* a, const void* b, size_t n, size_t size) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp((const char*)a + i * size, (const char*)b + i * size, size) != 0;
    return bad;
}

/* classifier_ce (production) and classifier_ce_old_kernel on the same rows: losses and the rows afterwards
 * (dlogits and padding when grad, the logits untouched otherwise) must be the same bits */
static int check_ce_vs_old(int rows, int Vc, int grad) {
    const int ld = classifier_padded_vocab(Vc);
    const size_t n = (size_t)rows * ld;
    uint16_t* l = (uint16_t*)malloc_check(n * sizeof(uint16_t));
    uint16_t* got_new = (uint16_t*)malloc_check(n * sizeof(uint16_t));
    uint16_t* got_old = (uint16_t*)malloc_check(n * sizeof(uint16_t));
    float* loss_new = (float*)malloc_check(sizeof(float) * (size_t)rows);
    float* loss_old = (float*)malloc_check(sizeof(float) * (size_t)rows);
    int* tg = (int*)malloc_check(sizeof(int) * (size_t)rows);
    Rng r = rng_seed(g_seed++);
    make_ce_rows(l, tg, rows, ld, Vc, &r);
    int nvalid = 0;
    for (int m = 0; m < rows; m++) nvalid += tg[m] >= 0 && tg[m] < Vc;
    const float dloss = 1.0f / (float)(nvalid ? nvalid : 1);
    bf16* d_new = (bf16*)dmalloc(n * sizeof(uint16_t));
    bf16* d_old = (bf16*)dmalloc(n * sizeof(uint16_t));
    float* d_loss_new = (float*)dmalloc(sizeof(float) * (size_t)rows);
    float* d_loss_old = (float*)dmalloc(sizeof(float) * (size_t)rows);
    int* d_tg = upload_ints(tg, rows);
    CUDA_CHECK(cudaMemcpy(d_new, l, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_old, l, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    poison(d_loss_new, sizeof(float) * (size_t)rows);
    poison(d_loss_old, sizeof(float) * (size_t)rows);
    classifier_ce(d_new, ld, d_loss_new, d_tg, rows, Vc, dloss, grad, 0);
    classifier_ce_old_kernel<<<rows, CLASSIFIER_CE_THREADS>>>(d_old, ld, d_loss_old, d_tg, Vc, dloss, grad);
    CUDA_KERNEL_CHECK();
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(got_new, d_new, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(got_old, d_old, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    download_f32(loss_new, d_loss_new, (size_t)rows);
    download_f32(loss_old, d_loss_old, (size_t)rows);
    const size_t bad_loss = count_bit_diffs(loss_new, loss_old, (size_t)rows, sizeof(float));
    const size_t bad_rows = count_bit_diffs(got_new, got_old, n, sizeof(uint16_t));
    const int fail = bad_loss != 0 || bad_rows != 0;
    printf("%s CE pass vs old kernel rows=%d Vc=%d %s: losses %zu/%d differ, %s %zu/%zu differ (bit for bit)\n",
           fail ? "FAIL" : "PASS", rows, Vc, grad ? "fwd+bwd" : "forward", bad_loss, rows, grad ? "dlogits" : "rows",
           bad_rows, n);
    free(l); free(got_new); free(got_old); free(loss_new); free(loss_old); free(tg);
    CUDA_CHECK(cudaFree(d_new)); CUDA_CHECK(cudaFree(d_old)); CUDA_CHECK(cudaFree(d_loss_new));
    CUDA_CHECK(cudaFree(d_loss_old)); CUDA_CHECK(cudaFree(d_tg));
    return fail;
}

static int check_ce_old(void) {
    int fails = 0;
    const int vc[] = {32000, 32003, 31999, 77, 5, 8, 40001}; /* the model's, tails of 3 and 7, tiny, one vector */
    const int nvc = (int)(sizeof vc / sizeof vc[0]);
    for (int i = 0; i < nvc; i++) fails += check_ce_vs_old(vc[i] > 1000 ? 1024 : 300, vc[i], 1);
    fails += check_ce_vs_old(1024, 32003, 0);
    return fails;
}

/* ---------------- timing ---------------- */
typedef struct { Problem* p; int grad; } TimeCtx;
static void run_timed(void* c_) {
    TimeCtx* c = (TimeCtx*)c_;
    Problem* p = c->p;
    classifier_forward_backward(p->losses, c->grad ? p->dy : NULL, c->grad ? p->dW : NULL, p->y, p->W, p->targets,
                                p->dloss, p->M, p->D, p->Vc, p->scratch, 0);
}
typedef struct { Problem* p; int rows, which; } CeCtx;
/* which = 2: production (two-pass streaming kernel); 4: the same before the instruction cut;
 * 1, 3: register-resident experiments (Vc <= 32768) */
static void run_ce(void* c_) {
    CeCtx* c = (CeCtx*)c_;
    Problem* p = c->p;
    int ld = classifier_padded_vocab(p->Vc);
    if (c->which == 4) {
        classifier_ce_old_kernel<<<c->rows, CLASSIFIER_CE_THREADS>>>(p->scratch, ld, p->losses, p->targets, p->Vc, p->dloss, 1);
        CUDA_KERNEL_CHECK();
    } else if (c->which == 1) { /* experiment: 1024 threads x 4 vectors */
        if ((p->Vc + 7) / 8 > 4 * 1024) die("register CE experiment needs Vc <= 32768");
        classifier_ce_reg_kernel<4, 1024><<<c->rows, 1024>>>(p->scratch, ld, p->losses, p->targets, p->Vc, p->dloss, 1);
        CUDA_KERNEL_CHECK();
    } else if (c->which == 3) { /* alternative shape of the register kernel: 512 threads x 8 vectors */
        if ((p->Vc + 7) / 8 > 8 * 512) die("alternative CE kernel needs Vc <= 32768");
        classifier_ce_reg_kernel<8, 512><<<c->rows, 512>>>(p->scratch, ld, p->losses, p->targets, p->Vc, p->dloss, 1);
        CUDA_KERNEL_CHECK();
    } else {
        classifier_ce(p->scratch, ld, p->losses, p->targets, c->rows, p->Vc, p->dloss, 1, 0);
    }
}
typedef struct { Problem* p; int rows, which; } MmCtx;
/* one chunk's matmuls alone: 0 logits = y W^T, 1 dy = dlogits W, 2 dW += dlogits^T y */
static void run_mm(void* c_) {
    MmCtx* c = (MmCtx*)c_;
    Problem* p = c->p;
    int ld = classifier_padded_vocab(p->Vc), D = p->D, Vc = p->Vc, r = c->rows;
    if (c->which == 0) matmul(p->scratch, 0, ld, p->y, D, 0, p->W, D, 1, r, Vc, D, 1.0f, 0.0f, 0);
    if (c->which == 1) matmul(p->dy, 0, D, p->scratch, ld, 0, p->W, D, 0, r, D, Vc, 1.0f, 0.0f, 0);
    if (c->which == 2) matmul(p->dW, 1, D, p->scratch, ld, 1, p->y, D, 0, Vc, D, r, 1.0f, 1.0f, 0);
}

/* v1: the loss and gradients, then the CE pass and the three matmuls of one chunk alone */
static void time_v1(Problem* p, int reps, int reps_parts) {
    const int M = p->M, D = p->D, Vc = p->Vc;
    double mm = 2.0 * M * (double)Vc * D;
    double lbytes = (double)M * classifier_padded_vocab(Vc) * 2.0;
    TimeCtx c = {p, 1};
    float ms = time_kernel(run_timed, &c, reps);
    time_report("v1 fwd+bwd (3 matmuls + CE)", ms, 0, 3 * mm);
    printf("   floor (3 matmuls at 790 TFLOP/s) %.3f ms -> %.0f%% of floor\n", floor_ms(0, 3 * mm), 100.0 * floor_ms(0, 3 * mm) / ms);
    c.grad = 0;
    ms = time_kernel(run_timed, &c, reps);
    time_report("v1 forward only (matmul + CE)", ms, 0, mm);
    printf("   floor (1 matmul at 790 TFLOP/s) %.3f ms -> %.0f%% of floor\n", floor_ms(0, mm), 100.0 * floor_ms(0, mm) / ms);
    /* the CE kernel alone on one chunk of logits: a memory-bound pass (read + write bf16). It works in place,
     * so every rep after the first sees the previous rep's output; each kernel starts from the same logits. */
    int rows = classifier_chunk_rows(M, Vc);
    char what[96];
    const char* cename[5] = {"", "experiment regs 4x1024", "production", "experiment regs 8x512", "old (before the instruction cut)"};
    const int order[4] = {2, 4, 1, 3}; /* production beside the old kernel, then the register-resident pair */
    for (int j = 0; j < (Vc <= 32768 ? 4 : 2); j++) {
        const int w = order[j];
        CeCtx ce = {p, rows, w};
        classifier_logits_(p->scratch, p->y, p->W, rows, D, Vc, 0);
        ms = time_kernel(run_ce, &ce, reps_parts);
        snprintf(what, sizeof what, "CE kernel alone, %s (%d rows)", cename[w], rows);
        time_report(what, ms, 2.0 * lbytes * rows / M, 0);
    }
    const char* mmname[3] = {"logits = y W^T", "dy = dlogits W", "dW += dlogits^T y"};
    for (int w = 0; w < 3; w++) {
        MmCtx mc = {p, rows, w};
        ms = time_kernel(run_mm, &mc, reps_parts);
        snprintf(what, sizeof what, "chunk matmul %s (%d rows)", mmname[w], rows);
        time_report(what, ms, 0, mm * rows / M);
    }
}

/* v2: classifier_argmax (one logits matmul + the argmax pass per chunk), then the argmax pass alone */
static void run_argmax_timed(void* p_) {
    Problem* p = (Problem*)p_;
    classifier_argmax(p->pred, p->y, p->W, p->targets, p->M, p->D, p->Vc, p->scratch, 0);
}
typedef struct { Problem* p; int rows; } ArgmaxCtx;
static void run_argmax_pass(void* c_) {
    ArgmaxCtx* c = (ArgmaxCtx*)c_;
    classifier_argmax_rows(c->p->pred, c->p->scratch, classifier_padded_vocab(c->p->Vc), c->p->targets, c->rows, c->p->Vc, 0);
}
static void time_v2(Problem* p, int reps, int reps_parts) {
    double mm = 2.0 * p->M * (double)p->Vc * p->D;
    float ms = time_kernel(run_argmax_timed, p, reps);
    time_report("v2 argmax (matmul + argmax pass)", ms, 0, mm);
    printf("   floor (1 matmul at 790 TFLOP/s) %.3f ms -> %.0f%% of floor\n", floor_ms(0, mm), 100.0 * floor_ms(0, mm) / ms);
    int rows = classifier_chunk_rows(p->M, p->Vc);
    classifier_logits_(p->scratch, p->y, p->W, rows, p->D, p->Vc, 0);
    ArgmaxCtx c = {p, rows};
    ms = time_kernel(run_argmax_pass, &c, reps_parts);
    char what[96];
    snprintf(what, sizeof what, "argmax pass alone (%d rows)", rows);
    time_report(what, ms, (double)rows * classifier_padded_vocab(p->Vc) * 2.0, 0); /* reads bf16 once */
}

int main(int argc, char** argv) {
    HarnessArgs a = harness_args(argc, argv);
    require_gpu_or_skip("classifier");
    matmul_init();
    if (a.check) {
        int fails = 0;
        fails += check_shape(64, 32, 128, 0.1);
        fails += check_shape(37, 24, 77, 0.2);      /* Vc not a multiple of 8, odd M */
        fails += check_shape(1, 16, 50, 0.0);       /* one row */
        fails += check_shape(16, 16, 40, 1.0);      /* every target ignored */
        fails += check_shape(300, 64, 1003, 0.05);
        fails += check_shape(8200, 32, 72, 0.1);    /* two chunks (8192 + 8 rows) */
        fails += check_shape(256, 128, 4099, 0.1);
        fails += check_shape(64, 16, 12000, 0.1);
        fails += check_shape(48, 32, 32000, 0.1);   /* the model vocabulary */
        fails += check_shape(40, 16, 40001, 0.1);
        fails += check_ce_old();
        fails += check_argmax();
        printf("%s classifier: %d failure(s)\n", fails ? "FAIL" : "PASS", fails);
        matmul_free();
        return fails ? 1 : 0;
    }
    int M = (int)harness_get(&a, 'M', 32768), D = (int)harness_get(&a, 'D', 1024), Vc = (int)harness_get(&a, 'V', 32000);
    int reps = a.reps < 20 ? a.reps : 20;
    Problem p = make_problem(M, D, Vc, 0.02);
    printf("classifier M=%d D=%d Vc=%d: chunk %d rows, scratch %.1f MiB\n", M, D, Vc, classifier_chunk_rows(M, Vc),
           classifier_scratch_elems(M, Vc) * 2.0 / (1 << 20));
    if (a.version == 0 || a.version == 1) time_v1(&p, reps, a.reps);
    if (a.version == 0 || a.version == 2) time_v2(&p, reps, a.reps);
    free_problem(&p);
    matmul_free();
    return 0;
}
