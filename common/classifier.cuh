/*
 * classifier.cuh — the language-model head fused with softmax cross-entropy, forward and backward.
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

/* losses[M] fp32 written; dy[M,D] bf16 written and dW[Vc,D] fp32 += (both NULL: forward only, e.g. validation).
 * y [M,D] bf16 (final-norm output), W [Vc,D] bf16 (lm_head or tied embedding), targets [M] (-1 = ignore).
 * dloss = d(total loss)/d(losses[i]), e.g. 1/(n_valid * grad_accum). scratch: classifier_scratch_elems(M,Vc) bf16. */
static inline void classifier_forward_backward(float* losses, bf16* dy, float* dW, const bf16* y, const bf16* W,
                                               const int* targets, float dloss, int M, int D, int Vc, bf16* scratch,
                                               cudaStream_t s) {
    if (M <= 0 || D <= 0 || Vc <= 0) die("classifier: bad shape M=%d D=%d Vc=%d", M, D, Vc);
    if (((uintptr_t)scratch & 15) != 0) die("classifier: scratch must be 16-byte aligned");
    const int ld = classifier_padded_vocab(Vc);
    const int chunk = classifier_chunk_rows(M, Vc);
    const int grad = dy != NULL || dW != NULL;
    for (int r0 = 0; r0 < M; r0 += chunk) {
        const int rows = M - r0 < chunk ? M - r0 : chunk;
        const bf16* yc = y + (size_t)r0 * D;
        matmul(scratch, 0, ld, yc, D, 0, W, D, 1, rows, Vc, D, 1.0f, 0.0f, s);           /* logits = y W^T */
        classifier_ce(scratch, ld, losses + r0, targets + r0, rows, Vc, dloss, grad, s);
        if (dy) matmul(dy + (size_t)r0 * D, 0, D, scratch, ld, 0, W, D, 0, rows, D, Vc, 1.0f, 0.0f, s); /* dlogits W */
        if (dW) matmul(dW, 1, D, scratch, ld, 1, yc, D, 0, Vc, D, rows, 1.0f, 1.0f, s);                /* += dlogits^T y */
    }
}

#endif /* COMMON_CLASSIFIER_CUH */
