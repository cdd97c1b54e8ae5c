/*
 * nccl.cuh — data-parallel communication over NCCL: the communicator of a run (its unique id handed out
 * by common/dist.h's rendezvous), the collectives of a ZeRO-1 step, the small all-reduces of the loop
 * (loss, valid-token count, stop flag, grad norm), and a watchdog that turns a collective that never
 * completes into a clear error instead of a hang.
 *
 * ZeRO-1 here: the flat parameter layout [P] is padded to W*S elements and rank r owns the slice
 * [r*S, (r+1)*S) of the fp32 master and of AdamW's m, v (12 of the 18 bytes per parameter exist only
 * for the slice). Each step: the fp32 gradients are summed with a reduce-scatter (rank r receives its
 * slice), r updates its slice, the master slices are all-gathered into the spent gradient buffer (from
 * which the few tensors that kernels read in fp32 — norm weights, biases, conv taps, A, D, the
 * embedding — are copied to a compact whole copy, common/tensors.cuh), and the bf16 copy slices are
 * all-gathered in place.
 *
 * Determinism: NCCL's reductions run in an order fixed by the communicator (same ranks, same GPUs, same
 * algorithm), so a run is bit-identical to itself; against one GPU the sums are grouped differently
 * (per-rank partial gradients, per-rank partial norms), a rounding-level difference.
 * Built without NCCL (no USE_NCCL) the same API serves one rank and refuses more.
 */
#ifndef COMMON_NCCL_CUH
#define COMMON_NCCL_CUH

#include <stdio.h>
#include <unistd.h>
#ifdef USE_NCCL
#include <nccl.h>
#endif
#include "errors.h"
#include "bf16.cuh"
#include "dist.h"

#define DIST_HOST_MAX 8   /* doubles of one host all-reduce */

typedef struct {
    int rank, world, local_rank;
    double timeout_s;        /* a collective wait longer than this is an error */
    DistLink link;
#ifdef USE_NCCL
    ncclComm_t comm;
#endif
    double* d_host;          /* [DIST_HOST_MAX] device staging for dist_allreduce_host */
} Dist;

static inline int dist_multi(const Dist* d) { return d && d->world > 1; }

/* Joins the run described by e (after cudaSetDevice): rendezvous, communicator, liveness watch. */
static void dist_setup(Dist* d, const DistEnv* e, double timeout_s) {
    memset(d, 0, sizeof *d);
    d->rank = e->rank;
    d->world = e->world;
    d->local_rank = e->local_rank;
    d->timeout_s = timeout_s;
    CUDA_CHECK(cudaMalloc((void**)&d->d_host, DIST_HOST_MAX * sizeof(double)));
    if (d->world == 1) return;
#ifdef USE_NCCL
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (d->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    uint32_t len = sizeof id;
    char blob[DIST_BLOB_MAX], err[512];
    memcpy(blob, &id, sizeof id);
    if (dist_rendezvous(e, blob, &len, timeout_s, &d->link, err, sizeof err) != 0) die("%s", err);
    if (len != sizeof id) die("rank %d: rank 0 sent a %u-byte id, NCCL expects %zu (different NCCL versions?)", d->rank, len,
                              sizeof id);
    memcpy(&id, blob, sizeof id);
    if (dist_watch_start(&d->link, NULL) != 0) die("rank %d: cannot start the liveness watch thread", d->rank);
    NCCL_CHECK(ncclCommInitRank(&d->comm, d->world, id, d->rank));
    if (d->rank == 0 && getenv("DIST_INIT_FILE")) unlink(getenv("DIST_INIT_FILE"));   /* every rank has joined */
#else
    die("this run has %d ranks (%s) but the program was built without NCCL: rebuild with USE_NCCL=1", e->world, e->source);
#endif
}

static void dist_shutdown(Dist* d) {
#ifdef USE_NCCL
    if (d->world > 1) {
        NCCL_CHECK(ncclCommDestroy(d->comm));
        dist_link_close(&d->link);
    }
#endif
    cudaFree(d->d_host);
    d->d_host = NULL;
}

/* Waits for stream s like cudaStreamSynchronize, but gives up after timeout_s with a message (a peer is
 * gone or stuck) and reports NCCL's asynchronous errors (e.g. a network failure) as they happen. */
static void dist_sync(Dist* d, cudaStream_t s, const char* what) {
    if (!dist_multi(d)) { CUDA_CHECK(cudaStreamSynchronize(s)); return; }
    double t0 = dist_now_();
    for (;;) {
        cudaError_t e = cudaStreamQuery(s);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady) CUDA_CHECK(e);
#ifdef USE_NCCL
        ncclResult_t ae;
        NCCL_CHECK(ncclCommGetAsyncError(d->comm, &ae));
        if (ae != ncclSuccess && ae != ncclInProgress) {
            fprintf(stderr, "error: rank %d: NCCL failed during %s: %s\n", d->rank, what, ncclGetErrorString(ae));
            ncclCommAbort(d->comm);
            _exit(3);
        }
#endif
        if (dist_now_() - t0 > d->timeout_s) {
            fprintf(stderr, "error: rank %d: %s did not complete within %.0f s (--dist-timeout): another rank is stuck "
                    "or gone; stopping\n", d->rank, what, d->timeout_s);
            fflush(stderr);
            _exit(3);   /* the GPU may be spinning in a collective: no clean teardown is possible */
        }
        usleep(200);
    }
}

#ifdef USE_NCCL
/* in place: x [W*S] summed over ranks; rank r's slice x[r*S, (r+1)*S) receives the sum */
static void dist_reduce_scatter_f32(Dist* d, float* x, size_t S, cudaStream_t s) {
    NCCL_CHECK(ncclReduceScatter(x, x + (size_t)d->rank * S, S, ncclFloat, ncclSum, d->comm, s));
}
/* in place: every rank's slice x[r*S, (r+1)*S) goes to every rank */
static void dist_all_gather_f32(Dist* d, float* x, size_t S, cudaStream_t s) {
    NCCL_CHECK(ncclAllGather(x + (size_t)d->rank * S, x, S, ncclFloat, d->comm, s));
}
static void dist_all_gather_bf16(Dist* d, bf16* x, size_t S, cudaStream_t s) {
    NCCL_CHECK(ncclAllGather(x + (size_t)d->rank * S, x, S, ncclBfloat16, d->comm, s));
}
/* every rank's send [S] -> recv [W*S] on every rank */
static void dist_all_gather_into_f32(Dist* d, const float* send, float* recv, size_t S, cudaStream_t s) {
    NCCL_CHECK(ncclAllGather(send, recv, S, ncclFloat, d->comm, s));
}
/* in place sum of n device floats */
static void dist_allreduce_f32(Dist* d, float* x, size_t n, cudaStream_t s) {
    NCCL_CHECK(ncclAllReduce(x, x, n, ncclFloat, ncclSum, d->comm, s));
}
#else
static void dist_reduce_scatter_f32(Dist*, float*, size_t, cudaStream_t) {}
static void dist_all_gather_f32(Dist*, float*, size_t, cudaStream_t) {}
static void dist_all_gather_bf16(Dist*, bf16*, size_t, cudaStream_t) {}
static void dist_all_gather_into_f32(Dist*, const float*, float*, size_t, cudaStream_t) {}
static void dist_allreduce_f32(Dist*, float*, size_t, cudaStream_t) {}
#endif

/* Sums h[0..n) (host doubles) over ranks; every rank gets the sums. Blocks (through dist_sync). */
static void dist_allreduce_host(Dist* d, double* h, int n, cudaStream_t s, const char* what) {
    if (!dist_multi(d)) return;
    if (n > DIST_HOST_MAX) die("internal: dist_allreduce_host of %d values (max %d)", n, DIST_HOST_MAX);
    CUDA_CHECK(cudaMemcpyAsync(d->d_host, h, (size_t)n * sizeof(double), cudaMemcpyHostToDevice, s));
#ifdef USE_NCCL
    NCCL_CHECK(ncclAllReduce(d->d_host, d->d_host, (size_t)n, ncclDouble, ncclSum, d->comm, s));
#endif
    CUDA_CHECK(cudaMemcpyAsync(h, d->d_host, (size_t)n * sizeof(double), cudaMemcpyDeviceToHost, s));
    dist_sync(d, s, what);
}

#endif /* COMMON_NCCL_CUH */
