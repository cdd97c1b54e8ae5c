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
#include "matmul.cuh"

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

/* Two passes over the row in memory (the second mostly from L2); any Vc.
 * One block per row of the chunk. logits [rows, ld] bf16 in; loss[row] out; when write_grad the row is
 * overwritten with dloss * (softmax - onehot(target)) (zeros for target < 0; padding columns zeroed).
 * losses: 0 for ignored rows, NaN for a target >= Vc (a data bug should not pass silently). */
__global__ void __launch_bounds__(CLASSIFIER_CE_THREADS)
classifier_ce_kernel(bf16* logits, int ld, float* losses, const int* targets, int Vc, float dloss, int write_grad) {
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
    for (int o = 16; o > 0; o >>= 1) ce_merge_(mx, sum, __shfl_xor_sync(0xffffffffu, mx, o), __shfl_xor_sync(0xffffffffu, sum, o));
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) { s_mx[warp] = mx; s_sum[warp] = sum; }
    __syncthreads();
    if (warp == 0) {
        const int nw = blockDim.x / 32;
        mx = lane < nw ? s_mx[lane] : -INFINITY;
        sum = lane < nw ? s_sum[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) ce_merge_(mx, sum, __shfl_xor_sync(0xffffffffu, mx, o), __shfl_xor_sync(0xffffffffu, sum, o));
        if (lane == 0) {
            float lse = mx + logf(sum);
            s_lse = lse;
            losses[blockIdx.x] = t < 0 ? 0.0f : (t < Vc ? lse - lt : NAN);
        }
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

/* the CE pass over one chunk. (Register-resident variants were measured slower: dev/classifier.cu.) */
static inline void classifier_ce(bf16* logits, int ld, float* losses, const int* targets, int rows, int Vc, float dloss,
                                 int write_grad, cudaStream_t s) {
    classifier_ce_kernel<<<rows, CLASSIFIER_CE_THREADS, 0, s>>>(logits, ld, losses, targets, Vc, dloss, write_grad);
    CUDA_KERNEL_CHECK();
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
    classifier_argmax_kernel<<<rows, CLASSIFIER_ARGMAX_THREADS, 0, s>>>(pred, logits, ld, targets, Vc);
    CUDA_KERNEL_CHECK();
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
