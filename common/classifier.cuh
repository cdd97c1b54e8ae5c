/*
 * classifier.cuh — the language-model head fused with softmax cross-entropy, forward and backward; and
 * the head's argmax per scored row (classifier_argmax: recall accuracy of the MQAR task, same chunking).
 *
 * Why chunked: fp32 logits for a whole batch (M = 32768 tokens x Vc = 32000) would be 4 GiB. We walk the
 * rows in chunks; per chunk the bf16 logits [rows, Vc] live in one scratch buffer, which a single
 * kernel turns, row by row, into the loss and then (in place) into dlogits. Two matmuls then consume
 * dlogits: dy = dlogits @ W and dW += dlogits^T @ y. The scratch buffer is reused by every chunk, so
 * memory stays at classifier_scratch_elems(M, Vc) bf16 (<= 512 MiB) whatever M is.
 * Why bf16 logits: they are the matmul output and the next matmuls' input anyway; softmax statistics
 * are computed in fp32 from them (as llm.c does). Rows of the scratch are padded to a multiple of 8
 * elements so every row starts 16-byte aligned (vector loads; fast cuBLASLt kernels) for any Vc.
 * Deterministic: fixed-order block reductions and fixed-algorithm matmuls; dW accumulates chunk after
 * chunk in a fixed order.
 */
#ifndef COMMON_CLASSIFIER_CUH
#define COMMON_CLASSIFIER_CUH

#include <limits.h>
#include <math.h>
#include "bf16.cuh"
#include "matmul.cuh"
#include "launch.cuh"

#define CLASSIFIER_MAX_CHUNK_ROWS 8192
#define CLASSIFIER_MAX_SCRATCH_ELEMS ((size_t)1 << 28) /* 512 MiB of bf16 */
#define CLASSIFIER_CE_THREADS 512

static inline int classifier_padded_vocab(int Vc) { return (Vc + 7) & ~7; }

/* rows per chunk: at most 8192, fewer when the vocabulary is so large that the chunk would pass 512 MiB */
static inline int classifier_chunk_rows(int M, int Vc) {
    size_t Vcp = (size_t)classifier_padded_vocab(Vc);
    int rows = M < CLASSIFIER_MAX_CHUNK_ROWS ? M : CLASSIFIER_MAX_CHUNK_ROWS;
    while (rows > 64 && (size_t)rows * Vcp > CLASSIFIER_MAX_SCRATCH_ELEMS) rows = (rows + 1) / 2;
    return rows;
}

/* bf16 elements of scratch that classifier_forward_backward needs */
static inline size_t classifier_scratch_elems(int M, int Vc) {
    return (size_t)classifier_chunk_rows(M, Vc) * (size_t)classifier_padded_vocab(Vc);
}

/* (max, sum of exp(x - max)) pairs merge associatively; an empty side has max = -inf and sum = 0 */
__device__ inline void ce_merge_(float& mx, float& sum, float mx2, float sum2) {
    float m = fmaxf(mx, mx2);
    float a = (mx == -INFINITY) ? 0.0f : sum * __expf(mx - m);
    float b = (mx2 == -INFINITY) ? 0.0f : sum2 * __expf(mx2 - m);
    mx = m;
    sum = a + b;
}

/* Every thread's (mx, sum) merged over the block in a fixed order (butterfly within each warp, then warp 0 over
 * the warps' results): true for the one thread (warp 0, lane 0) that then holds the row's (max, sum). Contains a
 * barrier, so every thread of the block must call it. s_mx, s_sum: shared, one slot per warp. */
__device__ __forceinline__ bool ce_block_merge_(float& mx, float& sum, float* s_mx, float* s_sum) {
    for (int o = 16; o > 0; o >>= 1) ce_merge_(mx, sum, __shfl_xor_sync(0xffffffffu, mx, o), __shfl_xor_sync(0xffffffffu, sum, o));
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) { s_mx[warp] = mx; s_sum[warp] = sum; }
    __syncthreads();
    if (warp != 0) return false;
    const int nw = blockDim.x / 32;
    mx = lane < nw ? s_mx[lane] : -INFINITY;
    sum = lane < nw ? s_sum[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) ce_merge_(mx, sum, __shfl_xor_sync(0xffffffffu, mx, o), __shfl_xor_sync(0xffffffffu, sum, o));
    return lane == 0;
}

/* ---- the CE pass: instruction-lean pieces ----
 * Each 16-byte vector of 8 logits is read twice (the second time mostly from L2) and written once, yet the
 * pass was bound by instructions, not bytes: the kernel before this one (kept as classifier_ce_old_kernel in
 * dev/classifier.cu) compiled to about 163 + 129 SASS instructions per vector for its two passes (sm_90,
 * nvcc 13.0), spent on masking every element against Vc, testing it for -inf and for being the target, and
 * 5 instructions per __expf. These pieces bring that to about 61 + 52: only the row's last vector can be
 * partial and only it is masked, the vector maximum is taken on packed bf16 pairs, each exponential is one
 * FMUL and one MUFU.EX2, the one-hot touches one element per row. What is left is mostly the 2 MUFU.EX2 per
 * element, which run at a quarter of the issue rate and are needed by the two-pass form. Each piece rounds
 * as the old kernel did; dev/classifier.cu --check compares the two bit for bit. */
#define CE_VEC 8                /* bf16 logits per 16-byte x128 */

/* The exponentials are exp_ftz (bf16.cuh): __expf's bits except that results below 2^-126 become 0. The row
 * sums cannot tell: each thread's sum also holds its own maximum's exp(0) = 1, next to which such a term is far
 * below rounding; only dlogits dloss * p with p below 2^-126 become exactly 0. */

/* bf16 -> fp32 of the two halves of a packed pair: a bf16 is the upper half of its float, so one shift or one
 * AND each (exact, NaNs and infinities included), where the conversion intrinsic spends a PRMT and a shift
 * on every upper half */
__device__ __forceinline__ float ce_bf16_lo_(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float ce_bf16_hi_(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }
/* logit k of a vector (k a compile-time constant in every caller, so this is one instruction) */
__device__ __forceinline__ float ce_el_(const x128& v, int k) {
    const uint32_t w = reinterpret_cast<const uint32_t*>(&v)[k / 2];
    return k % 2 ? ce_bf16_hi_(w) : ce_bf16_lo_(w);
}

/* The largest of 8 logits as fp32; NaNs are skipped as fmaxf skips them (an all-NaN vector gives NaN, which
 * the caller's fmaxf then skips too). max.bf16x2 is exact: 3 packed maxima instead of 8 conversions + 8 FMNMX. */
__device__ __forceinline__ float ce_vec_max_(const x128& v) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    const __nv_bfloat162 a = __hmax2(__hmax2(h[0], h[1]), __hmax2(h[2], h[3]));
    const uint32_t w = *reinterpret_cast<const uint32_t*>(&a);
    return fmaxf(ce_bf16_lo_(w), ce_bf16_hi_(w));
}

/* One vector into the thread's running (mx, sum of exp(x - mx)), in the order the sum always had: rescaled
 * old sum first, then the 8 terms. While every logit so far is -inf, the max is -inf and x - max would be
 * -inf - -inf = NaN: subtracting 0 instead gives exp(-inf) = 0 for those terms with one select per vector
 * rather than one per element. The rescale keeps its select on mx == -inf: NaN logits among -infs leave a
 * NaN sum with mx = -inf, which the old kernel reset to 0 there, and the results stay the old ones. */
__device__ __forceinline__ void ce_vec_stats_(const x128& v, float& mx, float& sum) {
    const float m = fmaxf(mx, ce_vec_max_(v));
    const float shift = m == -INFINITY ? 0.0f : m;
    float s = mx == -INFINITY ? 0.0f : sum * exp_ftz(mx - m);
#pragma unroll
    for (int k = 0; k < CE_VEC; k++) s += exp_ftz(ce_el_(v, k) - shift);
    mx = m;
    sum = s;
}

/* The row's last vector when Vc % 8 != 0 (n real columns): the padding columns, whatever their bits, read
 * as -inf, which moves neither the maximum nor the sum. */
__device__ __forceinline__ x128 ce_tail_load_(const bf16* p, int n) {
    x128 v = load128(p);
#pragma unroll
    for (int k = 0; k < CE_VEC; k++)
        if (k >= n) v[k] = f2bf(-INFINITY);
    return v;
}

/* dloss * softmax of one vector, converted two by two (one cvt.rn.bf16x2 per pair, same rounding as f2bf).
 * The one-hot is not here: classifier_ce_kernel rewrites the target's element afterwards. */
__device__ __forceinline__ x128 ce_vec_grad_(const x128& v, float lse, float scale) {
    x128 d;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&d);
#pragma unroll
    for (int k = 0; k < CE_VEC / 2; k++)
        h[k] = __floats2bfloat162_rn(scale * exp_ftz(ce_el_(v, 2 * k) - lse), scale * exp_ftz(ce_el_(v, 2 * k + 1) - lse));
    return d;
}

/* the same for the partial last vector (n real columns): the padding columns become zeros, which the
 * dy and dW matmuls read */
__device__ __forceinline__ x128 ce_tail_grad_(const x128& v, int n, float lse, float scale) {
    x128 d = ce_vec_grad_(v, lse, scale);
#pragma unroll
    for (int k = 0; k < CE_VEC; k++)
        if (k >= n) d[k] = f2bf(0.0f);
    return d;
}

/* Two passes over the row in memory (the second mostly from L2); any Vc.
 * One block per row of the chunk. logits [rows, ld] bf16 in; loss[row] out; when write_grad the row is
 * overwritten with dloss * (softmax - onehot(target)) (zeros for target < 0; padding columns zeroed).
 * losses: 0 for ignored rows, NaN for a target >= Vc (a data bug should not pass silently).
 * Thread j walks vectors j, j + blockDim.x, ... of the Vc / 8 full ones; the partial last vector, if any,
 * goes to the thread whose walk would reach it next, so each thread's sum is in the same order as when
 * every vector was masked. */
__global__ void __launch_bounds__(CLASSIFIER_CE_THREADS)
classifier_ce_kernel(bf16* logits, int ld, float* losses, const int* targets, int Vc, float dloss, int write_grad) {
    pdl_wait_prior();
    __shared__ float s_mx[CLASSIFIER_CE_THREADS / 32], s_sum[CLASSIFIER_CE_THREADS / 32];
    __shared__ float s_lse, s_lt;
    bf16* l = logits + (size_t)blockIdx.x * (size_t)ld;
    const int t = targets[blockIdx.x];
    const int nfull = Vc / CE_VEC, ntail = Vc % CE_VEC;
    const int has_target = t >= 0 && t < Vc;
    /* read the target logit before anything can overwrite it (llm.c once had exactly this race); shared
     * because the thread that writes the target's dlogit is in general not thread 0 */
    float lt = 0.0f;
    if (threadIdx.x == 0 && has_target) {
        lt = bf2f(l[t]);
        s_lt = lt;
    }

    /* p walks with i (p = vector i of the row): one 64-bit add per vector instead of an index product */
    const size_t step = (size_t)blockDim.x * CE_VEC;
    float mx = -INFINITY, sum = 0.0f;
    int i = threadIdx.x;
    bf16* p = l + (size_t)i * CE_VEC;
    for (; i < nfull; i += blockDim.x, p += step) ce_vec_stats_(load128(p), mx, sum);
    if (ntail && i == nfull) ce_vec_stats_(ce_tail_load_(p, ntail), mx, sum);
    if (ce_block_merge_(mx, sum, s_mx, s_sum)) {
        const float lse = mx + logf(sum);
        s_lse = lse;
        losses[blockIdx.x] = t < 0 ? 0.0f : (t < Vc ? lse - lt : NAN);
    }
    __syncthreads();
    if (!write_grad) return;
    const float lse = s_lse;
    const float scale = t < 0 ? 0.0f : dloss;
    i = threadIdx.x;
    p = l + (size_t)i * CE_VEC;
    for (; i < nfull; i += blockDim.x, p += step) store128(p, ce_vec_grad_(load128(p), lse, scale));
    if (ntail && i == nfull) store128(p, ce_tail_grad_(load128(p), ntail, lse, scale));
    /* the one-hot: the thread that wrote the target's vector (so no other thread races this store)
     * rewrites that element as dloss * (softmax - 1), in the operation order of the other elements */
    if (has_target && (t / CE_VEC) % (int)blockDim.x == (int)threadIdx.x) l[t] = f2bf(scale * (exp_ftz(s_lt - lse) - 1.0f));
}

/* the CE pass over one chunk. (Register-resident variants were measured slower: dev/classifier.cu.) */
static inline void classifier_ce(bf16* logits, int ld, float* losses, const int* targets, int rows, int Vc, float dloss,
                                 int write_grad, cudaStream_t s) {
    launch_kernel(classifier_ce_kernel, rows, CLASSIFIER_CE_THREADS, 0, s, logits, ld, losses, targets, Vc, dloss,
                  write_grad);
}

/* What every entry point refuses: an empty shape, and a scratch buffer the 16-byte row loads cannot use. */
static inline void classifier_check_args_(int M, int D, int Vc, const bf16* scratch) {
    if (M <= 0 || D <= 0 || Vc <= 0) die("classifier: bad shape M=%d D=%d Vc=%d", M, D, Vc);
    if (((uintptr_t)scratch & 15) != 0) die("classifier: scratch must be 16-byte aligned");
}

/* logits [rows, ld] bf16 = y [rows, D] W^T, W [Vc, D]; ld = classifier_padded_vocab(Vc) */
static inline void classifier_logits_(bf16* logits, const bf16* y, const bf16* W, int rows, int D, int Vc, cudaStream_t s) {
    matmul(logits, 0, classifier_padded_vocab(Vc), y, D, 0, W, D, 1, rows, Vc, D, 1.0f, 0.0f, s);
}

/* losses[M] fp32 written; dy[M,D] bf16 written and dW[Vc,D] fp32 += (both NULL: forward only, e.g. validation).
 * y [M,D] bf16 (final-norm output), W [Vc,D] bf16 (lm_head or tied embedding), targets [M] (-1 = ignore).
 * dloss = d(total loss)/d(losses[i]), e.g. 1/(n_valid * grad_accum). scratch: classifier_scratch_elems(M,Vc) bf16. */
static inline void classifier_forward_backward(float* losses, bf16* dy, float* dW, const bf16* y, const bf16* W,
                                               const int* targets, float dloss, int M, int D, int Vc, bf16* scratch,
                                               cudaStream_t s) {
    classifier_check_args_(M, D, Vc, scratch);
    const int ld = classifier_padded_vocab(Vc);
    const int chunk = classifier_chunk_rows(M, Vc);
    const int grad = dy != NULL || dW != NULL;
    for (int r0 = 0; r0 < M; r0 += chunk) {
        const int rows = M - r0 < chunk ? M - r0 : chunk;
        const bf16* yc = y + (size_t)r0 * D;
        classifier_logits_(scratch, yc, W, rows, D, Vc, s);
        classifier_ce(scratch, ld, losses + r0, targets + r0, rows, Vc, dloss, grad, s);
        if (dy) matmul(dy + (size_t)r0 * D, 0, D, scratch, ld, 0, W, D, 0, rows, D, Vc, 1.0f, 0.0f, s); /* dlogits W */
        if (dW) matmul(dW, 1, D, scratch, ld, 1, yc, D, 0, Vc, D, rows, 1.0f, 1.0f, s);                /* += dlogits^T y */
    }
}

/* ---- argmax (recall accuracy: MQAR) ---------------------------------------------------------- */
#define CLASSIFIER_ARGMAX_THREADS 256

/* (value, index) candidates: the larger value wins, the lower index on a tie, NaN never. This is a
 * total order on the non-NaN candidates, so any reduction tree gives the same winner: deterministic
 * without fixing the order. idx = INT_MAX marks "no candidate yet". */
__device__ inline void argmax_merge_(float& v, int& idx, float v2, int idx2) {
    if (v2 > v || (v2 == v && idx2 < idx)) { v = v2; idx = idx2; }
}
__device__ inline void argmax_warp_(float& v, int& idx) {
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        argmax_merge_(v, idx, v2, i2);
    }
}

/* One block per row of the chunk: pred[row] = argmax over the Vc logits of logits [rows, ld] bf16
 * (the padding columns are skipped); -1 for target < 0 (the row is not read); Vc when every logit is
 * NaN, an index that can match no target. */
__global__ void __launch_bounds__(CLASSIFIER_ARGMAX_THREADS)
classifier_argmax_kernel(int* pred, const bf16* logits, int ld, const int* targets, int Vc) {
    pdl_wait_prior();
    __shared__ float s_v[CLASSIFIER_ARGMAX_THREADS / 32];
    __shared__ int s_i[CLASSIFIER_ARGMAX_THREADS / 32];
    if (targets[blockIdx.x] < 0) {
        if (threadIdx.x == 0) pred[blockIdx.x] = -1;
        return;
    }
    const bf16* l = logits + (size_t)blockIdx.x * (size_t)ld;
    float v = -INFINITY;
    int idx = INT_MAX;
    for (int i = threadIdx.x; i < (Vc + 7) / 8; i += blockDim.x) {
        x128 x = load128(l + (size_t)i * 8);
        for (int k = 0; k < 8 && i * 8 + k < Vc; k++) argmax_merge_(v, idx, bf2f(x[k]), i * 8 + k);
    }
    argmax_warp_(v, idx);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) { s_v[warp] = v; s_i[warp] = idx; }
    __syncthreads();
    if (warp != 0) return;
    const int nw = blockDim.x / 32;
    v = lane < nw ? s_v[lane] : -INFINITY;
    idx = lane < nw ? s_i[lane] : INT_MAX;
    argmax_warp_(v, idx);
    if (lane == 0) pred[blockIdx.x] = idx == INT_MAX ? Vc : idx;
}

/* the argmax pass over one chunk of logits [rows, ld] */
static inline void classifier_argmax_rows(int* pred, const bf16* logits, int ld, const int* targets, int rows, int Vc,
                                          cudaStream_t s) {
    launch_kernel(classifier_argmax_kernel, rows, CLASSIFIER_ARGMAX_THREADS, 0, s, pred, logits, ld, targets, Vc);
}

/* pred[M] int written: for rows with targets[m] >= 0 the index of the largest of the Vc logits y W^T
 * (ties -> lowest index), -1 elsewhere; the host counts pred == target (mqar_count_correct). Same
 * shapes, chunking and scratch (classifier_scratch_elems(M, Vc) bf16) as classifier_forward_backward,
 * so the fp32 logits never exist either. The argmax is over the bf16 logits the loss also sees.
 * y [M,D] bf16, W [Vc,D] bf16, targets [M] (device). Every chunk's matmul runs even when its rows are
 * all ignored: skipping would need the targets on the host. */
static inline void classifier_argmax(int* pred, const bf16* y, const bf16* W, const int* targets, int M, int D, int Vc,
                                     bf16* scratch, cudaStream_t s) {
    classifier_check_args_(M, D, Vc, scratch);
    const int ld = classifier_padded_vocab(Vc);
    const int chunk = classifier_chunk_rows(M, Vc);
    for (int r0 = 0; r0 < M; r0 += chunk) {
        const int rows = M - r0 < chunk ? M - r0 : chunk;
        classifier_logits_(scratch, y + (size_t)r0 * D, W, rows, D, Vc, s);
        classifier_argmax_rows(pred + r0, scratch, ld, targets + r0, rows, Vc, s);
    }
}

#endif /* COMMON_CLASSIFIER_CUH */
