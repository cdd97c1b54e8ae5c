/*
 * trainer.cuh — the training program both models share: command line, data, the optimizer step,
 * validation, sampling, checkpoints, logging, the benchmark mode and the start-up report. A model
 * plugs in through ModelHandle (its tables and a step function); train_gla.cu and train_mamba.cu hold
 * only their models. Every shared kernel header is included from here.
 * Data parallel (--gpus N, or one process per GPU under torchrun-style variables, mpirun or srun): each
 * rank trains on its own rows of every global batch, ZeRO-1 shards the optimizer (common/nccl.cuh), and
 * rank 0 alone logs, samples and writes checkpoints; the other ranks print nothing but errors.
 */
#ifndef COMMON_TRAINER_CUH
#define COMMON_TRAINER_CUH

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <cublasLt.h>
#include "errors.h"
#include "bf16.cuh"
#include "rng.h"
#include "args.h"
#include "schedule.h"
#include "checkpoint.h"
#include "hf.h"
#include "logger.h"
#include "mfu.h"
#include "sampler.h"
#include "tokenizer_any.h"
#include "shard.h"
#include "dataloader.h"
#include "mqar.h"
#include "tensors.cuh"
#include "cast.cuh"
#include "matmul.cuh"
#include "rmsnorm.cuh"
#include "embedding.cuh"
#include "classifier.cuh"
#include "adamw.cuh"
#include "profile.cuh"
#include "nccl.cuh"

/* one micro-batch: forward (and with train, backward accumulating gradients scaled by dloss) */
typedef void (*ModelStepFn)(void* model, const int* d_ids, const int* d_targets, float dloss, int train, float* d_losses,
                            cudaStream_t s);

/* What the shared loop needs to know about a model. */
typedef struct {
    const char* name;        /* "gla" / "mamba" */
    int ckpt_kind;           /* CKPT_MODEL_* */
    void* model;
    ParamTable* pt;
    ParamBuffers* pb;
    ActTable* at;
    ModelStepFn step;
    double flops_per_token;
    int Vc;
    CkptHeader cfg;          /* model config fields (checkpoint compatibility + start-up table) */
    char kept[96];           /* the start-up table's line on what the backward keeps (recompute level, memory flags) */
    /* recurrent decoding for sampling (NULL: fall back to re-running the window): reset the state, then
     * run the forward on one token per call with the state carried, leaving the final-norm output in lnf */
    void (*decode_reset)(void* model);
    void (*decode_forward)(void* model, const int* d_token, cudaStream_t s);
    /* the final-norm output [B*T, D] and the classifier weight [Vc, D] */
    bf16* lnf;
    const bf16* lm_head;
    int D, B, T;
    int* dec_token;          /* [1] device, allocated on first use */
    bf16* dec_logits;        /* [Vc] device */
    Dist* dist;              /* the data-parallel group (one rank: world 1) */
} ModelHandle;

/* Feeds one token to the recurrent decoder; returns the next-token logits (host, [Vc] bf16 bits). */
static void decode_step(ModelHandle* h, int token, uint16_t* logits, cudaStream_t s) {
    if (!h->dec_token) {
        CUDA_CHECK(cudaMalloc((void**)&h->dec_token, sizeof(int)));
        CUDA_CHECK(cudaMalloc((void**)&h->dec_logits, (size_t)h->Vc * sizeof(bf16)));
    }
    CUDA_CHECK(cudaMemcpyAsync(h->dec_token, &token, sizeof(int), cudaMemcpyHostToDevice, s));
    h->decode_forward(h->model, h->dec_token, s);
    linear_forward(h->dec_logits, h->lnf, h->lm_head, 1, h->Vc, h->D, s);
    CUDA_CHECK(cudaMemcpyAsync(logits, h->dec_logits, (size_t)h->Vc * sizeof(bf16), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
}
static void handle_free(ModelHandle* h) {
    if (h->dec_token) { cudaFree(h->dec_token); cudaFree(h->dec_logits); }
    h->dec_token = NULL;
    h->dec_logits = NULL;
}

static inline double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* ------------------------------------------------------------------ command line */
/* Parses the common table plus the model's own table; --help prints both (no GPU needed) and exits 0;
 * any bad flag exits 1 with one line naming it. */
static void trainer_parse_args(int argc, char** argv, TrainOptions* o, const ArgSpec* model_rows, int n_model,
                               const char* summary) {
    static ArgSpec common_rows[TRAIN_OPTIONS_MAX];
    int n_common = train_options_table(o, common_rows);
    const ArgSpec* tables[2] = {common_rows, model_rows};
    int counts[2] = {n_common, n_model};
    char err[512];
    int rc = args_parse_multi(tables, counts, 2, argc, argv, err, sizeof err);
    if (rc == ARGS_HELP) {
        args_print_help(stdout, argv[0], summary, tables, counts, 2);
        exit(0);
    }
    if (rc != 0) die("%s", err);
}

/* ------------------------------------------------------------------ optimizer */
typedef struct {
    float* norm2;       /* device scalar: squared global grad norm */
    float* scale;       /* device scalar: clip factor (NaN when the norm is not finite) */
    float* scratch;     /* global-norm partials */
    AdamWRun* runs;     /* device [nruns]: the runs of opt_runs, built at the first step */
    int nruns;
} OptState;

static void opt_state_alloc(OptState* os) {
    CUDA_CHECK(cudaMalloc((void**)&os->norm2, sizeof(float)));
    CUDA_CHECK(cudaMalloc((void**)&os->scale, sizeof(float)));
    CUDA_CHECK(cudaMalloc((void**)&os->scratch, sizeof(float) * global_norm_scratch_floats()));
    os->runs = NULL;
    os->nruns = 0;
}

/* The runs AdamW updates: maximal sequences of consecutive tensors that share a weight-decay setting (padding
 * between tensors is zero and stays zero), those that reach into this rank's slice [lo, hi), each with its own
 * noise seed. Built once (the table and the seed do not change), kept on the device. */
static void opt_runs(OptState* os, const ParamTable* pt, size_t lo, size_t hi, unsigned seed) {
    AdamWRun* h = (AdamWRun*)malloc_check(sizeof(AdamWRun) * (size_t)(pt->n + 1));
    int n = 0;
    for (int i = 0; i < pt->n;) {
        int j = i;
        while (j + 1 < pt->n && pt->t[j + 1].decay == pt->t[i].decay) j++;
        const size_t begin = pt->t[i].offset, end = pt->t[j].offset + pt->t[j].numel;
        if (begin < hi && end > lo) h[n++] = (AdamWRun){begin, end, seed * 7919u + (unsigned)begin, pt->t[i].decay};
        i = j + 1;
    }
    CUDA_CHECK(cudaMalloc((void**)&os->runs, sizeof(AdamWRun) * (size_t)(n ? n : 1)));
    CUDA_CHECK(cudaMemcpy(os->runs, h, sizeof(AdamWRun) * (size_t)n, cudaMemcpyHostToDevice));
    os->nruns = n;
    free(h);
}

/* Global-norm clipping, then AdamW over the runs of opt_runs in one launch. With several ranks (ZeRO-1, common/nccl.cuh) the
 * gradients are first reduce-scattered, each rank updates the parts of the runs inside its slice (with
 * the noise indices the whole run would use, so rounding matches one GPU), and the updated master and
 * bf16 copy are all-gathered (the master into the spent gradient buffer, from which the tensors kernels
 * read in fp32 are refreshed). Returns the grad norm (one host sync, for the log). */
static float optimizer_step(ModelHandle* h, OptState* os, const TrainOptions* o, float lr, int t, cudaStream_t s) {
    ParamBuffers* pb = h->pb;
    const ParamTable* pt = h->pt;
    Dist* d = h->dist;
    const size_t lo = pb->shard_begin, hi = pb->shard_begin + pb->shard;
    if (dist_multi(d)) dist_reduce_scatter_f32(d, pb->grad, pb->shard, s);
    global_norm_squared(os->norm2, pb->grad + lo, pb->shard, os->scratch, s);
    if (dist_multi(d)) dist_allreduce_f32(d, os->norm2, 1, s);
    clip_factor(os->scale, os->norm2, o->clip, s);
    if (!os->runs) opt_runs(os, pt, lo, hi, (unsigned)o->seed);
    adamw_update_runs(pb->master, pb->copy, pb->grad, pb->m, pb->v, lo, hi, os->runs, os->nruns, lr, o->beta1, o->beta2,
                      o->adam_eps, o->wd, os->scale, t, s);
    if (dist_multi(d)) {   /* the gradients are spent: their buffer receives the whole master */
        dist_all_gather_into_f32(d, pb->master, pb->grad, pb->shard, s);
        param_refresh_f32(pb, pb->grad, s);
        dist_all_gather_bf16(d, pb->copy, pb->shard, s);
    }
    float n2;
    CUDA_CHECK(cudaMemcpyAsync(&n2, os->norm2, sizeof(float), cudaMemcpyDeviceToHost, s));
    dist_sync(d, s, "the optimizer step");
    return sqrtf(n2);
}

/* ------------------------------------------------------------------ start-up report */
static void print_startup(const ModelHandle* h, const TrainOptions* o, int B, int T) {
    printf("+-----------------------+----------------------------------------------+\n");
    printf("| model                 | %-44s |\n", h->name);
    for (int i = 0; i < h->cfg.ncfg; i++) {
        const CkptConfigField* f = &h->cfg.cfg[i];
        if (f->is_float) printf("| %-21s | %-44g |\n", f->name, f->f);
        else printf("| %-21s | %-44lld |\n", f->name, f->i);
    }
    printf("| parameters            | %-44zu |\n", param_count(h->pt));
    printf("| micro-batch B x T     | %-6d x %-37d |\n", B, T);
    printf("| grad accumulation     | %-44d |\n", o->grad_accum);
    printf("| data-parallel ranks   | %-44d |\n", h->dist->world);
    printf("| FLOPs/token (train)   | %-44.4g |\n", h->flops_per_token);
    double GiB = 1073741824.0;
    const ParamBuffers* pb = h->pb;
    int sharded = h->dist->world > 1;
    double fp32 = pb->shard * 4.0 + (sharded ? pb->f32_total * 4.0 : 0.0);
    char v[4][64];
    snprintf(v[0], sizeof v[0], "%8.3f GiB fp32 master%s, bf16 copy", (fp32 + pb->padded * 2.0) / GiB,
             sharded ? " (1/world + fp32-read)" : "");
    snprintf(v[1], sizeof v[1], "%8.3f GiB fp32", pb->padded * 4.0 / GiB);
    snprintf(v[2], sizeof v[2], "%8.3f GiB AdamW m, v fp32%s", pb->shard * 8.0 / GiB, sharded ? " (1/world)" : "");
    snprintf(v[3], sizeof v[3], "%8.3f GiB, %d buffers, one allocation", h->at->total / GiB, h->at->n);
    const char* names[4] = {"memory: parameters", "memory: gradients", "memory: optimizer", "memory: activations"};
    for (int i = 0; i < 4; i++) printf("| %-21s | %-44s |\n", names[i], v[i]);
    if (h->kept[0]) printf("| %-21s | %-44s |\n", "activations kept", h->kept);
    printf("+-----------------------+----------------------------------------------+\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------ data */
typedef struct {
    DataLoader train, val;
    int has_val;
    int synthetic;           /* no text: the built-in synthetic copy task */
    int mqar;                /* --task mqar: rows from common/mqar.h instead of loaders */
    MqarTask mq;
    uint64_t mq_step;        /* the next global training step of the MQAR stream */
    int rank, world;
    int *d_pred, *h_pred;    /* [B*T] MQAR evaluation: argmax per query position */
    bf16* argmax_scratch;    /* classifier_scratch_elems(B*T, Vc) */
    AnyTokenizer tok;        /* ours or a Hugging Face tokenizer.json (--tokenizer) */
    int has_tok;
    int vocab;               /* token ids in the data are < vocab */
} TrainData;

static int glob_count(const char* pattern) {
    glob_t g;
    memset(&g, 0, sizeof g);
    int rc = glob(pattern, 0, NULL, &g);
    int n = rc == 0 ? (int)g.gl_pathc : 0;
    if (rc == 0 || rc == GLOB_NOSPACE || rc == GLOB_ABORTED) globfree(&g);
    return n;
}
static int file_exists(const char* p) { struct stat st; return stat(p, &st) == 0; }

#define DEFAULT_TRAIN_PATTERN "data/tinyshakespeare/train_*.bin"
#define SYNTHETIC_VOCAB 64

/* The first run must work on a fresh machine: when the default tinyshakespeare shards are missing they
 * are prepared (data/prepare.sh downloads them, or uses $TINYSHAKESPEARE); without any text the run
 * falls back to the synthetic copy task and says so. Shards named by the user must exist. */
static void data_resolve(TrainData* d, TrainOptions* o) {
    memset(d, 0, sizeof *d);
    if (o->task == TASK_SYNTHETIC) { d->synthetic = 1; d->vocab = SYNTHETIC_VOCAB; return; }
    if (o->task == TASK_MQAR) { d->mqar = 1; d->vocab = o->mqar_vocab; return; }
    if (glob_count(o->train_pattern) == 0) {
        if (strcmp(o->train_pattern, DEFAULT_TRAIN_PATTERN) != 0)
            die("no training shards match '%s' (prepare data with: bash data/prepare.sh)", o->train_pattern);
        printf("no tinyshakespeare shards under data/tinyshakespeare: preparing them with `bash data/prepare.sh`\n");
        fflush(stdout);
        int rc = file_exists("data/prepare.sh") ? system("bash data/prepare.sh") : -1;
        if (rc != 0 || glob_count(o->train_pattern) == 0) {
            printf("no text available (offline and $TINYSHAKESPEARE not set): training on the built-in synthetic copy "
                   "task instead (vocab %d). To train on text: TINYSHAKESPEARE=/path/input.txt bash data/prepare.sh\n",
                   SYNTHETIC_VOCAB);
            d->synthetic = 1;
            d->vocab = SYNTHETIC_VOCAB;
            return;
        }
    }
    /* The vocabulary: the shards' header when it records one, else the tokenizer's. The tokenizer is used
     * for samples only when it is the one the shards were encoded with (shards made with a Hugging Face
     * tokenizer.json by data/bpe, next to a default tokenizer.bin, must not be decoded with the latter). */
    char err[512];
    glob_t g;
    glob(o->train_pattern, 0, NULL, &g);
    ShardInfo si;
    int rc = shard_open(g.gl_pathv[0], &si, err, sizeof err);
    globfree(&g);
    if (rc != 0) die("%s", err);
    if (o->tokenizer_path && file_exists(o->tokenizer_path)) {
        if (anytok_load(&d->tok, o->tokenizer_path, 0, NULL, err, sizeof err) != 0) die("%s", err);
        d->has_tok = 1;
        if ((si.vocab > 0 && si.vocab != d->tok.vocab_size) || (si.tok_hash && si.tok_hash != d->tok.fingerprint)) {
            printf("note: the shards were not encoded with %s (vocab %d, theirs %d): samples print token ids; "
                   "--tokenizer names the right one\n", o->tokenizer_path, d->tok.vocab_size, si.vocab);
            anytok_free(&d->tok);
            d->has_tok = 0;
        }
    }
    if (si.vocab > 0) d->vocab = si.vocab;
    else if (d->has_tok) d->vocab = d->tok.vocab_size;
    else die("shard %s does not record its vocabulary and no tokenizer was found at %s (pass --tokenizer)",
             o->train_pattern, o->tokenizer_path ? o->tokenizer_path : "(none)");
}

/* Opens the loaders for rank r of W (CPU only: every shard is validated here, before the GPU is touched). */
static void data_open(TrainData* d, const TrainOptions* o, int B, int T, int r, int W) {
    int rc;
    d->rank = r;
    d->world = W;
    if (d->mqar) {
        MqarConfig c = mqar_default_config(T);
        if (o->mqar_pairs) c.n_pairs = o->mqar_pairs;
        c.vocab = o->mqar_vocab;
        char err[512];
        if (mqar_init(&d->mq, &c, err, sizeof err) != 0) die("--task mqar: %s", err);
        d->has_val = 1;
        printf("MQAR recall task: vocab %d, T %d, %d key-value pairs and %d queries per row (common/mqar.h)\n",
               d->mq.c.vocab, T, d->mq.c.n_pairs, d->mq.c.n_queries);
        return;
    }
    if (d->synthetic) {
        rc = dataloader_init_synthetic(&d->train, B, T, r, W, d->vocab, 0, (uint64_t)o->seed, 1);
        if (rc != 0) die("%s", d->train.err);
        rc = dataloader_init_synthetic(&d->val, B, T, r, W, d->vocab, 1, 0, 0);
        if (rc != 0) die("%s", d->val.err);
        d->has_val = 1;
        printf("synthetic copy task: loss floor %.3f nats/token (ln vocab = %.3f)\n", dataloader_synthetic_floor(d->vocab),
               log((double)d->vocab));
        return;
    }
    if (dataloader_init(&d->train, o->train_pattern, B, T, r, W, d->vocab, 1, (uint64_t)o->seed, 1) != 0)
        die("%s", d->train.err);
    if (o->val_pattern && glob_count(o->val_pattern) > 0) {
        if (evalloader_init(&d->val, o->val_pattern, B, T, r, W, d->vocab, 0) != 0) die("%s", d->val.err);
        d->has_val = 1;
    } else {
        printf("no validation shards match '%s': validation is off\n", o->val_pattern ? o->val_pattern : "");
    }
}

/* ------------------------------------------------------------------ one step's batches */
typedef struct {
    int *h_in, *h_tg;        /* host [M] */
    int *d_in, *d_tg;        /* device [M] */
    float* d_losses;         /* device [M] */
    float* h_losses;         /* host [M] */
    int M;
} Batch;

static void batch_alloc(Batch* b, int M) {
    b->M = M;
    b->h_in = (int*)malloc_check(sizeof(int) * (size_t)M);
    b->h_tg = (int*)malloc_check(sizeof(int) * (size_t)M);
    b->h_losses = (float*)malloc_check(sizeof(float) * (size_t)M);
    CUDA_CHECK(cudaMalloc((void**)&b->d_in, sizeof(int) * (size_t)M));
    CUDA_CHECK(cudaMalloc((void**)&b->d_tg, sizeof(int) * (size_t)M));
    CUDA_CHECK(cudaMalloc((void**)&b->d_losses, sizeof(float) * (size_t)M));
}
static void batch_upload(Batch* b, cudaStream_t s) {
    CUDA_CHECK(cudaMemcpyAsync(b->d_in, b->h_in, sizeof(int) * (size_t)b->M, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(b->d_tg, b->h_tg, sizeof(int) * (size_t)b->M, cudaMemcpyHostToDevice, s));
}
/* sum of the per-token losses over valid targets (host, double, fixed order: deterministic) */
static double batch_loss_sum(Batch* b, int* nvalid, cudaStream_t s) {
    CUDA_CHECK(cudaMemcpyAsync(b->h_losses, b->d_losses, sizeof(float) * (size_t)b->M, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    double sum = 0;
    int n = 0;
    for (int i = 0; i < b->M; i++)
        if (b->h_tg[i] >= 0) { sum += b->h_losses[i]; n++; }
    *nvalid = n;
    return sum;
}
static int count_valid(const int* tg, int M) {
    int n = 0;
    for (int i = 0; i < M; i++) n += tg[i] >= 0;
    return n;
}
static void next_batch(TrainData* d, Batch* b) {
    if (d->mqar) {
        mqar_batch(&d->mq, 0, d->mq_step++, d->rank, d->world, b->M / d->mq.c.T, b->h_in, b->h_tg);
        return;
    }
    int rc = dataloader_next(&d->train, b->h_in, b->h_tg);
    if (rc < 0) die("%s", d->train.err);
    if (rc == 0) die("training data ended unexpectedly");
}
/* validation batch i (1) or the end of the validation data (0) */
static int next_val_batch(TrainData* d, Batch* b, int i) {
    if (d->mqar) {
        mqar_batch(&d->mq, 1, (uint64_t)i, d->rank, d->world, b->M / d->mq.c.T, b->h_in, b->h_tg);
        return 1;
    }
    if (i == 0) dataloader_reset(&d->val);
    int rc = dataloader_next(&d->val, b->h_in, b->h_tg);
    if (rc < 0) die("%s", d->val.err);
    return rc;
}
/* the training position for a checkpoint, and back (MQAR: the step counter, in the loader's format) */
static DataLoaderState data_state(TrainData* d) {
    if (!d->mqar) return dataloader_state(&d->train);
    DataLoaderState st;
    memset(&st, 0, sizeof st);
    st.pos = d->mq_step;
    st.seed = d->mq.c.seed;
    st.data_id = mqar_fingerprint(&d->mq);
    return st;
}
static void data_restore(TrainData* d, const DataLoaderState* st, const char* path) {
    if (!d->mqar) {
        if (dataloader_restore(&d->train, st) != 0) die("%s: %s", path, d->train.err);
        return;
    }
    if (st->data_id != mqar_fingerprint(&d->mq))
        die("%s: the checkpoint was trained on other data (not this MQAR configuration)", path);
    d->mq_step = st->pos;
}

/* MQAR: of the query positions of the batch just run forward, how many the argmax answers */
static long long mqar_correct(ModelHandle* h, TrainData* d, Batch* b, cudaStream_t s) {
    if (!d->d_pred) {
        CUDA_CHECK(cudaMalloc((void**)&d->d_pred, sizeof(int) * (size_t)b->M));
        CUDA_CHECK(cudaMalloc((void**)&d->argmax_scratch, sizeof(bf16) * classifier_scratch_elems(b->M, h->Vc)));
        d->h_pred = (int*)malloc_check(sizeof(int) * (size_t)b->M);
    }
    classifier_argmax(d->d_pred, h->lnf, h->lm_head, b->d_tg, b->M, h->D, h->Vc, d->argmax_scratch, s);
    CUDA_CHECK(cudaMemcpyAsync(d->h_pred, d->d_pred, sizeof(int) * (size_t)b->M, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    return mqar_count_correct(d->h_pred, b->h_tg, (size_t)b->M);
}

/* ------------------------------------------------------------------ validation and sampling */
/* Mean validation loss over max_batches (<= 0: all; MQAR: at least 1); with MQAR, *accuracy is the
 * fraction of queries answered by the argmax (else NAN). */
static double validate(ModelHandle* h, TrainData* d, Batch* b, int max_batches, double* accuracy, cudaStream_t s) {
    if (d->mqar && max_batches <= 0) max_batches = 1;
    double sum = 0, correct = 0;
    long n = 0;
    for (int i = 0; max_batches <= 0 || i < max_batches; i++) {
        if (!next_val_batch(d, b, i)) break;
        batch_upload(b, s);
        h->step(h->model, b->d_in, b->d_tg, 0.0f, 0, b->d_losses, s);
        int nv;
        sum += batch_loss_sum(b, &nv, s);
        n += nv;
        if (d->mqar) correct += (double)mqar_correct(h, d, b, s);
    }
    double red[3] = {sum, (double)n, correct};   /* every rank saw its rows of the same global batches */
    dist_allreduce_host(h->dist, red, 3, s, "the validation all-reduce");
    *accuracy = d->mqar && red[1] > 0 ? red[2] / red[1] : NAN;
    return red[1] > 0 ? red[0] / red[1] : NAN;
}

/* Next-token logits (host [Vc]) for the context tokens[0..n): the last min(n, T) tokens run through the
 * model's forward as row 0 of a batch, and the classifier is applied to that row's last position. One
 * forward of the whole window per token: simple, and the same code path as training. */
static void window_next_logits(ModelHandle* h, Batch* b, bf16* d_logits, uint16_t* h_logits, const int* tokens, int n,
                               float* logits, cudaStream_t s) {
    int w = n < h->T ? n : h->T;
    for (int i = 0; i < b->M; i++) { b->h_in[i] = 0; b->h_tg[i] = -1; }
    for (int i = 0; i < w; i++) b->h_in[i] = tokens[n - w + i];
    batch_upload(b, s);
    h->step(h->model, b->d_in, b->d_tg, 0.0f, 0, b->d_losses, s);
    linear_forward(d_logits, h->lnf + (size_t)(w - 1) * h->D, h->lm_head, 1, h->Vc, h->D, s);
    CUDA_CHECK(cudaMemcpyAsync(h_logits, d_logits, sizeof(uint16_t) * (size_t)h->Vc, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
    for (int i = 0; i < h->Vc; i++) logits[i] = host_bf_bits2f(h_logits[i]);
}

/* Generates n tokens after prompt[0..np) (np >= 1) into out[0..n): recurrent decoding, O(1) per
 * token, when the model has it; otherwise re-runs the last T tokens per token. Returns tokens/s. */
static double generate(ModelHandle* h, Batch* b, const int* prompt, int np, int* out, int n, int vocab, float temperature,
                       int top_k, Rng* rng, cudaStream_t s) {
    float* logits = (float*)malloc_check(sizeof(float) * (size_t)h->Vc);
    float* scratch = (float*)malloc_check(sizeof(float) * (size_t)h->Vc);
    uint16_t* hl = (uint16_t*)malloc_check(sizeof(uint16_t) * (size_t)h->Vc);
    int* ctx = (int*)malloc_check(sizeof(int) * (size_t)(np + n));
    memcpy(ctx, prompt, sizeof(int) * (size_t)np);
    bf16* dl = NULL;
    if (!h->decode_forward) CUDA_CHECK(cudaMalloc((void**)&dl, sizeof(bf16) * (size_t)h->Vc));
    double t0 = wall_seconds();
    if (h->decode_forward) {
        h->decode_reset(h->model);
        for (int i = 0; i < np - 1; i++) decode_step(h, prompt[i], hl, s);  /* prefill, one token at a time */
    }
    for (int i = 0; i < n; i++) {
        int len = np + i;
        if (h->decode_forward) {
            decode_step(h, ctx[len - 1], hl, s);
            for (int v = 0; v < h->Vc; v++) logits[v] = host_bf_bits2f(hl[v]);
        } else {
            window_next_logits(h, b, dl, hl, ctx, len, logits, s);
        }
        ctx[len] = sample_logits(logits, vocab, temperature, top_k, (float)rng_uniform(rng), scratch);
        out[i] = ctx[len];
    }
    double dt = wall_seconds() - t0;
    if (dl) cudaFree(dl);
    free(logits); free(scratch); free(hl); free(ctx);
    return n / dt;
}

/* Prints gen_tokens tokens sampled after an end-of-text prompt (temperature 1, top-k 40). */
static void sample_text(ModelHandle* h, TrainData* d, Batch* b, int gen_tokens, Rng* rng, cudaStream_t s) {
    if (gen_tokens <= 0) return;
    int eot = d->has_tok && d->tok.eot >= 0 ? d->tok.eot : d->vocab - 1;
    int* toks = (int*)malloc_check(sizeof(int) * (size_t)gen_tokens);
    double tps = generate(h, b, &eot, 1, toks, gen_tokens, d->vocab, 1.0f, 40, rng, s);
    printf("---- sample (%d tokens, %.0f tokens/s, %s) ----\n", gen_tokens, tps,
           h->decode_forward ? "recurrent decoding" : "window re-run");
    if (d->has_tok) {
        size_t cap = (size_t)gen_tokens * (anytok_max_token_bytes(&d->tok) + 8) + 16;
        char* text = (char*)malloc_check(cap);
        long long nb = anytok_decode(&d->tok, (const int32_t*)toks, (size_t)gen_tokens, text, cap, "<|eot|>");
        if (nb > 0) fwrite(text, 1, (size_t)nb, stdout);
        free(text);
    } else {
        for (int i = 0; i < gen_tokens; i++) printf("%d ", toks[i]);
    }
    printf("\n----------------\n");
    fflush(stdout);
    free(toks);
}

/* ------------------------------------------------------------------ checkpoints */
/* A sharded fp32 buffer (master, m or v: [shard] on each rank) -> host [total] on rank 0. Several ranks:
 * the slices are all-gathered into the gradient buffer, free between an optimizer step and the next
 * micro-step. */
static void shard_to_host(ModelHandle* h, const float* mom, float* host, cudaStream_t s) {
    ParamBuffers* pb = h->pb;
    const float* src = mom;
    if (dist_multi(h->dist)) {
        CUDA_CHECK(cudaMemcpyAsync(pb->grad + pb->shard_begin, mom, pb->shard * sizeof(float), cudaMemcpyDeviceToDevice, s));
        dist_all_gather_f32(h->dist, pb->grad, pb->shard, s);
        dist_sync(h->dist, s, "the checkpoint gather");
        src = pb->grad;
    }
    if (host) CUDA_CHECK(cudaMemcpy(host, src, pb->total * sizeof(float), cudaMemcpyDeviceToHost));
}

/* One file per checkpoint: model config, step, data position, sampling RNG, and the fp32 master weights,
 * AdamW moments and bf16 copy, whole (whatever the number of ranks that wrote it, so it resumes on any
 * number). Every rank takes part (the moments are gathered); rank 0 writes. */
static void checkpoint_save(ModelHandle* h, const TrainOptions* o, long long step, const DataLoaderState* ds, const Rng* rng,
                            cudaStream_t s) {
    int lead = h->dist->rank == 0;
    size_t n = h->pb->total;
    /* the bf16 copy is saved too: it came from stochastic rounding, so rebuilding it from the master
     * would change the next step's arithmetic and break bit-identical resume */
    float* host = lead ? (float*)malloc_check(n * sizeof(float) * 3 + n * sizeof(bf16)) : NULL;
    shard_to_host(h, h->pb->master, lead ? host : NULL, s);
    shard_to_host(h, h->pb->m, lead ? host + n : NULL, s);
    shard_to_host(h, h->pb->v, lead ? host + 2 * n : NULL, s);
    if (!lead) return;
    CkptHeader hd = h->cfg;
    hd.kind = h->ckpt_kind;
    hd.num_params = (int64_t)n;
    hd.step = step;
    hd.rng[0] = rng->s;
    memset(hd.loader, 0, sizeof hd.loader);
    memcpy(hd.loader, ds, sizeof *ds);
    bf16* hcopy = (bf16*)(host + 3 * n);
    CUDA_CHECK(cudaMemcpy(hcopy, h->pb->copy, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    CkptSection sec[4] = {{"master", host, n * 4}, {"adam_m", host + n, n * 4}, {"adam_v", host + 2 * n, n * 4},
                          {"copy_bf16", hcopy, n * 2}};
    char path[4200], err[512];
    if (mkdir_p(o->out_dir) != 0) die("cannot create output dir %s: %s", o->out_dir, strerror(errno));
    ckpt_path(o->out_dir, step, path, sizeof path);
    if (ckpt_write(path, &hd, sec, 4, err, sizeof err) != 0) die("%s", err);
    if (o->keep > 0) ckpt_prune(o->out_dir, o->keep);
    free(host);
    printf("checkpoint: %s\n", path);
}

/* Validates a checkpoint against this run's model without touching the GPU; returns its header. */
static CkptHeader checkpoint_check(const ModelHandle* h, const char* path) {
    CkptHeader file, want = h->cfg;
    char err[512];
    want.kind = h->ckpt_kind;
    if (ckpt_read_header(path, &file, err, sizeof err) != 0) die("%s", err);
    if (ckpt_config_compare(&file, &want, "this run", err, sizeof err) != 0) die("%s: %s", path, err);
    if (file.num_params != (int64_t)h->pb->total)
        die("%s holds %lld parameters, this model has %zu", path, (long long)file.num_params, h->pb->total);
    return file;
}

/* Loads weights (and with optimizer, this rank's slice of the AdamW moments: a checkpoint written by
 * any number of ranks loads on any number). */
static void checkpoint_load(ModelHandle* h, const char* path, const CkptHeader* hd, int optimizer) {
    ParamBuffers* pb = h->pb;
    size_t n = pb->total;
    char err[512];
    float* host = (float*)malloc_check(n * sizeof(float));
    if (ckpt_read_section(path, hd, "master", host, n * sizeof(float), err, sizeof err) != 0) die("%s", err);
    CUDA_CHECK(cudaMemcpy(param_staging(pb), host, n * sizeof(float), cudaMemcpyHostToDevice));
    const char* names[2] = {"adam_m", "adam_v"};
    float* dst[2] = {pb->m, pb->v};
    size_t mine = pb->shard_begin >= n ? 0 : (n - pb->shard_begin < pb->shard ? n - pb->shard_begin : pb->shard);
    for (int i = 0; i < (optimizer ? 2 : 0); i++) {
        if (ckpt_read_section(path, hd, names[i], host, n * sizeof(float), err, sizeof err) != 0) die("%s", err);
        CUDA_CHECK(cudaMemcpy(dst[i], host + pb->shard_begin, mine * sizeof(float), cudaMemcpyHostToDevice));
    }
    int has_copy = ckpt_section_bytes(hd, "copy_bf16") == (long long)(n * sizeof(bf16));
    if (has_copy) {
        if (ckpt_read_section(path, hd, "copy_bf16", host, n * sizeof(bf16), err, sizeof err) != 0) die("%s", err);
        CUDA_CHECK(cudaMemcpy(pb->copy, host, n * sizeof(bf16), cudaMemcpyHostToDevice));
    }
    param_commit(pb, !has_copy);   /* master slice, kept fp32 tensors; the copy by rounding if not saved */
    free(host);
}

/* ------------------------------------------------------------------ signals */
static volatile sig_atomic_t g_stop_requested = 0;
static void on_stop_signal(int sig) { (void)sig; g_stop_requested = 1; }

/* ------------------------------------------------------------------ memory */
static size_t g_mem_baseline = 0;
static void mem_mark_baseline(void) {
    size_t f, t;
    CUDA_CHECK(cudaMemGetInfo(&f, &t));
    g_mem_baseline = t - f;
}
/* device memory in use beyond what was in use before this process allocated anything (cudaMemGetInfo),
 * GiB: this process's memory when it has the GPU to itself, as in every figure we report; processes
 * sharing the GPU move it (clamped at 0 when others free memory) */
static double mem_used_gib(void) {
    size_t f, t;
    CUDA_CHECK(cudaMemGetInfo(&f, &t));
    size_t used = t - f;
    return used > g_mem_baseline ? (double)(used - g_mem_baseline) / 1073741824.0 : 0.0;
}

/* ------------------------------------------------------------------ benchmark */
/* Random tokens, like fla's benchmark: tokens/s over timed steps (forward, backward, optimizer), MFU,
 * peak device memory, time from launch to the end of the first optimizer step. */
static void run_bench(ModelHandle* h, const TrainOptions* o, int B, int T, double t_launch, cudaStream_t s) {
    int M = B * T;
    Batch b;
    batch_alloc(&b, M);
    OptState os;
    opt_state_alloc(&os);
    const int W = h->dist->world;
    Rng r = rng_seed((uint64_t)o->seed + 7777u * (uint64_t)h->dist->rank);   /* each rank its own tokens */
    double first_step_s = 0, t0 = 0;
    int total = o->warmup_bench + o->bench_steps;
    for (int it = 0; it < total; it++) {
        if (it == o->warmup_bench) { CUDA_CHECK(cudaStreamSynchronize(s)); t0 = wall_seconds(); }
        for (int i = 0; i < M; i++) b.h_in[i] = (int)rng_below(&r, (uint32_t)h->Vc);
        for (int i = 0; i < M; i++) b.h_tg[i] = (i % T == T - 1) ? -1 : b.h_in[i + 1];
        batch_upload(&b, s);
        CUDA_CHECK(cudaMemsetAsync(h->pb->grad, 0, h->pb->padded * sizeof(float), s));
        for (int a = 0; a < o->grad_accum; a++)
            h->step(h->model, b.d_in, b.d_tg, 1.0f / ((float)count_valid(b.h_tg, M) * o->grad_accum * W), 1, b.d_losses, s);
        optimizer_step(h, &os, o, o->lr, it + 1, s);
        if (it == 0) first_step_s = wall_seconds() - t_launch;
    }
    CUDA_CHECK(cudaStreamSynchronize(s));
    double dt = wall_seconds() - t0;
    if (o->profile && profile_begin()) { /* one more step, recorded kernel by kernel */
        double p0 = wall_seconds();
        CUDA_CHECK(cudaMemsetAsync(h->pb->grad, 0, h->pb->padded * sizeof(float), s));
        for (int a = 0; a < o->grad_accum; a++)
            h->step(h->model, b.d_in, b.d_tg, 1.0f / ((float)count_valid(b.h_tg, M) * o->grad_accum * W), 1, b.d_losses, s);
        optimizer_step(h, &os, o, o->lr, total + 1, s);
        CUDA_CHECK(cudaStreamSynchronize(s));
        profile_end_print(1e3 * (wall_seconds() - p0));
    }
    double tokens = (double)o->bench_steps * M * o->grad_accum * W;
    double tps = tokens / dt;
    double peak = peak_bf16_tflops_device(0);
    int nv;
    double loss_sum = batch_loss_sum(&b, &nv, s);
    double loss = loss_sum / (nv ? nv : 1);
    printf("bench %s: B=%d T=%d accum=%d gpus=%d | %.1f ms/step | %.0f tokens/s | MFU %.1f%% | peak mem %.2f GiB | first step %.2f s "
           "after launch | loss %.4f\n",
           h->name, B, T, o->grad_accum, W, 1e3 * dt / o->bench_steps, tps, 100.0 * mfu(h->flops_per_token, tps / W, peak),
           mem_used_gib(), first_step_s, loss);
    printf("BENCH_JSON {\"model\":\"%s\",\"B\":%d,\"T\":%d,\"gpus\":%d,\"ms_per_step\":%.3f,\"tokens_per_s\":%.1f,"
           "\"mfu\":%.4f,\"peak_mem_gib\":%.3f,\"first_step_s\":%.3f}\n",
           h->name, B, T, W, 1e3 * dt / o->bench_steps, tps, mfu(h->flops_per_token, tps / W, peak), mem_used_gib(), first_step_s);
}

/* ------------------------------------------------------------------ the training loop */
static void train_loop(ModelHandle* h, TrainOptions* o, TrainData* d, int B, int T, double t_launch, cudaStream_t s) {
    int M = B * T;
    Batch b;
    batch_alloc(&b, M);
    OptState os;
    opt_state_alloc(&os);
    Rng rng = rng_seed((uint64_t)o->seed ^ 0x5A3D1Eull);
    long long start = 0;
    char err[512], path[4200];
    if (o->resume) {
        if (ckpt_find_latest(o->out_dir, path, sizeof path) >= 0) {
            CkptHeader hd = checkpoint_check(h, path);
            checkpoint_load(h, path, &hd, 1);
            start = hd.step;
            rng.s = hd.rng[0];
            DataLoaderState ds;
            memcpy(&ds, hd.loader, sizeof ds);
            data_restore(d, &ds, path);
            printf("resumed from %s at step %lld\n", path, start);
        } else {
            printf("--resume 1: no checkpoint in %s yet, starting fresh\n", o->out_dir);
        }
    } else if (o->load_path) {
        CkptHeader hd = checkpoint_check(h, o->load_path);
        checkpoint_load(h, o->load_path, &hd, 0);
        printf("loaded weights from %s\n", o->load_path);
    }
    const int lead = h->dist->rank == 0, W = h->dist->world;
    Logger lg;   /* rank 0 logs; on the others it stays closed and its calls do nothing */
    memset(&lg, 0, sizeof lg);
    if (mkdir_p(o->out_dir) != 0) die("cannot create output dir %s: %s", o->out_dir, strerror(errno));
    if (lead && logger_open(&lg, o->out_dir, o->resume ? start : -1, err, sizeof err) != 0) die("%s", err);
    signal(SIGINT, on_stop_signal);
    signal(SIGTERM, on_stop_signal);
    double peak = peak_bf16_tflops_device(0);
    long long steps = o->steps;
    SpikeDetector spike_loss, spike_norm;
    const double t_loop = wall_seconds();
    spike_init(&spike_loss, 50);
    spike_init(&spike_norm, 50);
    for (long long step = start; step < steps; step++) {
        int last = step == steps - 1;
        if (d->has_val && o->val_every > 0 && (step % o->val_every == 0 || last)) {
            double acc;
            double vl = validate(h, d, &b, o->val_steps, &acc, s);
            logger_val(&lg, step, vl);
            if (d->mqar) {
                logger_event(&lg, step, "mqar_accuracy", "%.6f", acc);
                printf("step %5lld/%lld | val loss %.4f | MQAR recall accuracy %.2f%%\n", step + 1, steps, vl, 100.0 * acc);
            } else {
                printf("step %5lld/%lld | val loss %.4f\n", step + 1, steps, vl);
            }
        }
        if (lead && o->sample_every > 0 && step > start && step % o->sample_every == 0)
            sample_text(h, d, &b, o->gen_tokens, &rng, s);
        double t0 = wall_seconds();
        CUDA_CHECK(cudaMemsetAsync(h->pb->grad, 0, h->pb->padded * sizeof(float), s));
        double loss_sum = 0;
        long nvalid = 0;
        for (int a = 0; a < o->grad_accum; a++) {
            next_batch(d, &b);
            int nv = count_valid(b.h_tg, M);
            batch_upload(&b, s);
            /* every rank's micro-batch holds the same number of targets in every data source here (language
             * modelling: all, MQAR: a fixed number per row), so nv * W is the global count */
            h->step(h->model, b.d_in, b.d_tg, nv ? 1.0f / ((float)nv * o->grad_accum * W) : 0.0f, 1, b.d_losses, s);
            int nv2;
            loss_sum += batch_loss_sum(&b, &nv2, s);
            nvalid += nv2;
        }
        float lr = lr_at((long)step, (long)steps, o->warmup, o->lr, o->lr_min_frac, o->schedule, o->decay_frac);
        float norm = optimizer_step(h, &os, o, lr, (int)step + 1, s);
        /* the loss over all ranks, and one stop decision for all (a signal may reach ranks at different steps) */
        double red[3] = {loss_sum, (double)nvalid, g_stop_requested ? 1.0 : 0.0};
        dist_allreduce_host(h->dist, red, 3, s, "the loss all-reduce");
        int stop = red[2] > 0;
        double loss = red[1] > 0 ? red[0] / red[1] : NAN;
        double dt = wall_seconds() - t0;
        if (!isfinite(loss) || !isfinite(norm)) {
            logger_event(&lg, step, "skip_nan", "loss %g grad norm %g: update skipped", loss, (double)norm);
            printf("step %lld: non-finite loss (%g) or grad norm (%g): the update was skipped\n", step + 1, loss, (double)norm);
            if (o->nan_policy == NAN_STOP) die("stopping at step %lld on a non-finite loss/grad norm (--nan-policy stop)", step + 1);
        }
        if (o->spike_z > 0) {
            double zl = spike_update(&spike_loss, loss), zn = spike_update(&spike_norm, norm);
            if (zl > o->spike_z || zn > o->spike_z) {
                logger_event(&lg, step, "spike", "loss %g (z %.1f), grad norm %g (z %.1f) against the last 50 steps", loss, zl,
                             (double)norm, zn);
                printf("step %lld: spike: loss %.4f (z %.1f), grad norm %.4f (z %.1f)\n", step + 1, loss, zl, (double)norm, zn);
            }
        }
        LogStep ls = logstep_empty(step);
        ls.loss = loss; ls.lr = lr; ls.grad_norm = norm; ls.ms = 1e3 * dt;
        ls.tokens_per_s = (double)M * o->grad_accum * W / dt;
        ls.mfu = mfu(h->flops_per_token, ls.tokens_per_s / W, peak);
        ls.mem_gib = mem_used_gib();
        ls.host_mib = logger_host_mib();
        /* from the wall time of this run's steps so far, validation and checkpoints included */
        ls.eta_s = (wall_seconds() - t_loop) / (double)(step + 1 - start) * (double)(steps - step - 1);
        logger_step(&lg, &ls);
        if (step % o->log_every == 0 || last) progress_print(stdout, &ls, steps);
        int ckpt_now = (o->ckpt_every > 0 && (step + 1) % o->ckpt_every == 0) || last || stop;
        if (ckpt_now) {
            DataLoaderState ds = data_state(d);
            checkpoint_save(h, o, step + 1, &ds, &rng, s);
        }
        if (stop) {
            printf("stopped by signal after step %lld; resume with --resume 1 -o %s\n", step + 1, o->out_dir);
            break;
        }
    }
    if (lead && o->sample_every > 0 && !g_stop_requested) sample_text(h, d, &b, o->gen_tokens, &rng, s);
    logger_close(&lg);
}

/* ------------------------------------------------------------------ main */
/* A run that does not resume never writes into an output directory that holds an earlier run's
 * checkpoints: its own would overwrite or interleave with them (a later --resume would pick the newest of
 * either run) and --keep would prune them. Checked before the GPU is touched. */
static void refuse_earlier_run(const TrainOptions* o) {
    if (o->resume) return;
    long long* steps = NULL;
    int n = ckpt_list_(o->out_dir, &steps);
    if (n > 0) {
        char newest[4200];
        ckpt_path(o->out_dir, steps[n - 1], newest, sizeof newest);
        free(steps);
        die("%s already holds %d checkpoint(s) of an earlier run (newest %s): continue that run with --resume 1, "
            "or give this one another -o (or remove them yourself)", o->out_dir, n, newest);
    }
    free(steps);
}

/* Checks the checkpoint a run would start from (--sample, --load, or the newest under --out with --resume)
 * against the configured model before the GPU is touched: wrong model kind or config -> one clear line. */
static void precheck_checkpoint(const TrainOptions* o, const char* model, const CkptHeader* cfg) {
    char path[4200], err[512];
    const char* p = NULL;
    if (o->sample_path) p = o->sample_path;
    else if (o->load_path) p = o->load_path;
    else if (o->resume && ckpt_find_latest(o->out_dir, path, sizeof path) >= 0) p = path;
    if (!p) return;
    CkptHeader file, want = *cfg;
    want.kind = !strcmp(model, "gla") ? CKPT_MODEL_GLA : CKPT_MODEL_MAMBA;
    if (ckpt_read_header(p, &file, err, sizeof err) != 0) die("%s", err);
    if (ckpt_config_compare(&file, &want, "this run", err, sizeof err) != 0) die("%s: %s", p, err);
}

/* The model's vocabulary: --vocab when given (it must cover the data's ids), else the data's vocabulary
 * rounded up to a multiple of 8 (aligned classifier rows, as mamba_ssm pads), or 32000 in --bench. */
static int resolve_vocab(int opt_vocab, int data_vocab, int bench) {
    int need = bench ? 0 : data_vocab;
    int Vc = opt_vocab ? opt_vocab : (bench ? 32000 : (need + 7) / 8 * 8);
    if (Vc < need) die("--vocab %d is smaller than the data's vocabulary %d", Vc, need);
    return Vc;
}

/* Fields of a model config read from a file (a checkpoint's header, config.json) for a trainer's
 * param_table: a missing field, a fraction, or a size outside [lo, hi] (the model flags' bounds) ends the
 * run with a message, so a crafted file's sizes never reach int arithmetic out of range. */
static double model_config_field_(const CkptHeader* cfg, const char* model, const char* name) {
    const CkptConfigField* f = ckpt_config_get(cfg, name);
    if (!f) die("%s model config has no field %s", model, name);
    return f->is_float ? f->f : (double)f->i;
}
static int model_config_int(const CkptHeader* cfg, const char* model, const char* name, long long lo, long long hi) {
    double v = model_config_field_(cfg, model, name);
    if (!(v >= (double)lo && v <= (double)hi) || v != floor(v))
        die("%s model config: %s = %.17g is not an integer in [%lld, %lld]", model, name, v, lo, hi);
    return (int)v;
}
static float model_config_eps(const CkptHeader* cfg, const char* model) {
    double v = model_config_field_(cfg, model, "eps");
    if (!(v > 0.0 && v < 1.0)) die("%s model config: eps = %g is not in (0, 1)", model, v);
    return (float)v;
}

/* A model's entry points for the shared main. */
typedef struct {
    const char* name;
    const char* summary;
    int (*options)(ArgSpec* out);                       /* model flags (defaults filled), returns count */
    /* presets + overrides, checked against what the kernels take at micro-batch B x T; CPU only */
    void (*configure)(int data_vocab, int bench, int B, int T, CkptHeader* cfg);
    void (*create)(ModelHandle* h, int B, int T, int recompute, uint64_t seed); /* allocate, initialise on the GPU */
    /* Hugging Face interchange (--export-hf, --init-hf): the parameter table of a config given as config
     * fields (a checkpoint's, or config.json's), built on the CPU; and the HF names (common/hf.h) */
    void (*param_table)(const CkptHeader* cfg, ParamTable* pt);
    const HfModelSpec* hf;
} ModelDef;

/* ------------------------------------------------------------------ Hugging Face export / import */
/* the table as common/hf.h sees it; points into pt */
static HfParam* hf_params_of(const ParamTable* pt) {
    HfParam* p = (HfParam*)malloc_check(sizeof(HfParam) * (size_t)(pt->n ? pt->n : 1));
    for (int i = 0; i < pt->n; i++) {
        const ParamInfo* t = &pt->t[i];
        p[i].name = t->name;
        p[i].offset = t->offset;
        p[i].numel = t->numel;
        p[i].ndim = t->ndim;
        memcpy(p[i].shape, t->shape, sizeof p[i].shape);
    }
    return p;
}

/* --export-hf DIR -e CKPT: the checkpoint's fp32 master weights as DIR/model.safetensors (F32) and
 * DIR/config.json. The model is configured by the checkpoint itself; nothing touches the GPU. */
static int trainer_export_hf(const ModelDef* def, const TrainOptions* o) {
    char err[512];
    CkptHeader hd;
    if (!def->param_table || !def->hf) die("--export-hf: this trainer has no Hugging Face mapping");
    if (ckpt_read_header(o->load_path, &hd, err, sizeof err) != 0) die("%s", err);
    if (hd.kind != def->hf->ckpt_kind)
        die("%s holds a %s model; export it with the %s trainer", o->load_path, ckpt_kind_name(hd.kind), ckpt_kind_name(hd.kind));
    ParamTable pt;
    memset(&pt, 0, sizeof pt);
    def->param_table(&hd, &pt);
    if ((int64_t)pt.total != hd.num_params)
        die("%s holds %lld parameters but its config gives %zu", o->load_path, (long long)hd.num_params, pt.total);
    float* master = (float*)malloc_check(pt.total * sizeof(float));
    if (ckpt_read_section(o->load_path, &hd, "master", master, pt.total * sizeof(float), err, sizeof err) != 0) die("%s", err);
    HfParam* hp = hf_params_of(&pt);
    if (mkdir_p(o->export_hf) != 0) die("cannot create %s: %s", o->export_hf, strerror(errno));
    if (hf_export(o->export_hf, def->hf, &hd, hp, pt.n, master, pt.total, HF_F32, err, sizeof err) != 0) die("%s", err);
    printf("exported %s (step %lld, %zu parameters) to %s/model.safetensors + config.json (%s, F32)\n", o->load_path,
           (long long)hd.step, param_count(&pt), o->export_hf, def->hf->arch);
    free(hp);
    free(master);
    free(pt.t);
    return 0;
}

/* --init-hf DIR, before the GPU is touched: config.json must describe the model the flags configure
 * (cfg; like --load, a mismatch names the field), then the weights are read into a host buffer laid
 * out like the master. Returns it ([*total] floats) for trainer_upload_hf. */
static float* trainer_read_hf(const ModelDef* def, const char* dir, const CkptHeader* cfg, size_t* total) {
    char err[512];
    CkptHeader file, want = *cfg;
    if (!def->param_table || !def->hf) die("--init-hf: this trainer has no Hugging Face mapping");
    if (hf_read_config(dir, def->hf, &file, err, sizeof err) != 0) die("--init-hf: %s", err);
    want.kind = def->hf->ckpt_kind;
    if (ckpt_config_compare(&file, &want, "this run", err, sizeof err) != 0)
        die("--init-hf %s/config.json %s (set the model flags to match)", dir,
            strncmp(err, "checkpoint ", 11) ? err : err + 11);   /* "checkpoint is L=2 ..." -> "config.json is L=2 ..." */
    ParamTable pt;
    memset(&pt, 0, sizeof pt);
    def->param_table(cfg, &pt);
    float* host = (float*)malloc_check(pt.total * sizeof(float));
    HfParam* hp = hf_params_of(&pt);
    if (hf_import(dir, def->hf, cfg, hp, pt.n, host, pt.total, err, sizeof err) != 0) die("--init-hf: %s", err);
    *total = pt.total;
    free(hp);
    free(pt.t);
    return host;
}

/* the weights read by trainer_read_hf into the created model's master, and its bf16 copy from them */
static void trainer_upload_hf(ModelHandle* h, float* host, size_t total, const char* dir) {
    if (h->pb->total != total) die("internal: --init-hf read %zu parameters, the model has %zu", total, h->pb->total);
    param_upload(h->pb, host);
    free(host);
    printf("initialised the weights from %s\n", dir);
}

/* --sample CKPT: load the weights, encode --prompt, generate -g tokens with recurrent decoding, print them. */
static void run_sample(ModelHandle* h, const TrainOptions* o, TrainData* d, const CkptHeader* hd, cudaStream_t s) {
    checkpoint_load(h, o->sample_path, hd, 0);
    const char* text = o->prompt ? o->prompt : "";
    size_t len = strlen(text);
    int32_t* ids = (int32_t*)malloc_check(sizeof(int32_t) * (anytok_max_ids(&d->tok, len) + 1));
    int lead = d->tok.eot >= 0;   /* documents start after an end-of-text token, as in the shards */
    if (lead) ids[0] = d->tok.eot;
    long long n = anytok_encode(&d->tok, text, len, ids + lead);
    if (n < 0) die("out of memory encoding the prompt");
    if (n + lead == 0) die("--sample: give a --prompt (%s has no end-of-text token to start from)", o->tokenizer_path);
    int* prompt = (int*)malloc_check(sizeof(int) * (size_t)(n + lead));
    for (long long i = 0; i < n + lead; i++) prompt[i] = ids[i];
    int* out = (int*)malloc_check(sizeof(int) * (size_t)(o->gen_tokens > 0 ? o->gen_tokens : 1));
    Rng rng = rng_seed((uint64_t)o->seed);
    double tps = generate(h, NULL, prompt, (int)(n + lead), out, o->gen_tokens, d->vocab, o->temperature, o->top_k, &rng, s);
    size_t cap = (size_t)o->gen_tokens * (anytok_max_token_bytes(&d->tok) + 8) + 16;
    char* gen = (char*)malloc_check(cap);
    long long nb = anytok_decode(&d->tok, (const int32_t*)out, (size_t)o->gen_tokens, gen, cap, "<|eot|>");
    fwrite(text, 1, len, stdout);
    if (nb > 0) fwrite(gen, 1, (size_t)nb, stdout);
    printf("\n---- %d tokens after a %lld-token prompt, %.0f tokens/s (recurrent decoding) ----\n", o->gen_tokens, n, tps);
    free(ids); free(prompt); free(out); free(gen);
}

static int trainer_main(int argc, char** argv, const ModelDef* def) {
    double t_launch = wall_seconds();
    TrainOptions o;
    ArgSpec model_rows[64];
    int n_model = def->options(model_rows);
    trainer_parse_args(argc, argv, &o, model_rows, n_model, def->summary);
    char err[512];
    DistEnv env;
    if (dist_env_read(&env, err, sizeof err) != 0) die("%s", err);
    if (o.gpus > 1 && env.world == 1 && !o.export_hf && !o.sample_path) {   /* the launcher: N copies of this program */
        if (train_options_check(&o, def->name, o.gpus, err, sizeof err) != 0) die("%s", err);
        TrainData d0;
        if (!o.bench) data_resolve(&d0, &o);   /* prepares missing data once, before the ranks start */
        int ndev = 0;   /* the ranks exec a fresh image, so asking the driver here is harmless */
        if (cudaGetDeviceCount(&ndev) != cudaSuccess) ndev = 0;
        if (ndev < o.gpus) die("--gpus %d, but this machine shows %d CUDA device(s)", o.gpus, ndev);
        return dist_launch_local(o.gpus, "/proc/self/exe", argv, 10.0);
    }
    if (o.gpus > 1 && env.world != o.gpus)
        die("--gpus %d, but the launcher's environment (%s) says %d ranks", o.gpus, env.source, env.world);
    if (env.world > 1 && (o.sample_path || o.export_hf)) die("--sample and --export-hf run as one process, not %d ranks", env.world);
    if (env.rank > 0 && !getenv("DIST_VERBOSE") && !freopen("/dev/null", "w", stdout))   /* rank 0 speaks for all */
        die("rank %d: cannot silence stdout", env.rank);
    if (train_options_check(&o, def->name, env.world, err, sizeof err) != 0) die("%s", err);
    int B = o.batch, T = o.seq;
    /* everything that can be checked without the GPU is checked first */
    if (o.load_path && !file_exists(o.load_path)) die("--load %s: no such file", o.load_path);
    if (o.export_hf) return trainer_export_hf(def, &o);
    TrainData d;
    memset(&d, 0, sizeof d);
    CkptHeader cfg, sample_hd;
    memset(&cfg, 0, sizeof cfg);
    if (o.sample_path) { /* generation only: the tokenizer gives the vocabulary, the checkpoint must match */
        if (!file_exists(o.sample_path)) die("--sample %s: no such file", o.sample_path);
        if (anytok_load(&d.tok, o.tokenizer_path, 0, NULL, err, sizeof err) != 0) die("--sample needs the tokenizer: %s", err);
        d.has_tok = 1;
        d.vocab = d.tok.vocab_size;
        B = T = 1;   /* recurrent decoding, one sequence */
        def->configure(d.vocab, 0, B, T, &cfg);
        precheck_checkpoint(&o, def->name, &cfg);
    } else {
        if (!o.bench) data_resolve(&d, &o);
        def->configure(o.bench ? 0 : d.vocab, o.bench, B, T, &cfg);
        if (!o.bench) {
            data_open(&d, &o, B, T, env.rank, env.world);
            refuse_earlier_run(&o);
        }
        precheck_checkpoint(&o, def->name, &cfg);
    }
    size_t hf_total = 0;
    float* hf_init = o.init_hf ? trainer_read_hf(def, o.init_hf, &cfg, &hf_total) : NULL;

    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0)
        die("no CUDA device found (nvidia-smi shows what the driver sees); --help works without one");
    int dev = env.local_rank >= 0 ? env.local_rank : env.rank % ndev;
    if (dev >= ndev) die("rank %d wants GPU %d (local rank) but this machine shows %d", env.rank, dev, ndev);
    CUDA_CHECK(cudaSetDevice(dev));
    CUDA_CHECK(cudaFree(0));
    mem_mark_baseline();
    Dist dist;
    dist_setup(&dist, &env, o.dist_timeout);
    if (env.world > 1) printf("data parallel: %d ranks (%s), ZeRO-1 optimizer sharding\n", env.world, env.source);
    matmul_init();
    ModelHandle h;
    memset(&h, 0, sizeof h);
    h.cfg = cfg;
    h.dist = &dist;
    param_set_sharding(env.rank, env.world);
    def->create(&h, B, T, o.recompute, (uint64_t)o.seed);
    if (hf_init) trainer_upload_hf(&h, hf_init, hf_total, o.init_hf);
    cudaStream_t s = 0;
    if (o.sample_path) {
        sample_hd = checkpoint_check(&h, o.sample_path);
        run_sample(&h, &o, &d, &sample_hd, s);
        handle_free(&h);
        dist_shutdown(&dist);
        matmul_free();
        return 0;
    }
    print_startup(&h, &o, B, T);
    if (o.bench) run_bench(&h, &o, B, T, t_launch, s);
    else train_loop(&h, &o, &d, B, T, t_launch, s);
    handle_free(&h);
    matmul_free();
    dist_shutdown(&dist);
    return 0;
}

#endif /* COMMON_TRAINER_CUH */
