/*
 * dataloader.h — owns batching of token shards for training and evaluation: shard discovery
 * (glob), validation, deterministic shuffling, rank slicing, background prefetch, resumable
 * position, and the built-in synthetic data source. Plain C11 / C++17, header-only, pthreads.
 *
 * Samples: a shard of n tokens holds (n-1)/T samples; sample i is tokens [i*T, i*T+T+1)
 * (consecutive samples share one token, as in llm.c): inputs = its first T, targets = its last T.
 *
 * Order: the loader is an infinite stream of samples. Epoch e visits the shards in a permuted
 * order and, inside each shard, the samples in a permuted order; both permutations are pure
 * functions of (seed, e, shard), so nothing but the position has to be saved to resume.
 * Global step k covers stream samples [k*W*B, (k+1)*W*B) for W ranks of B rows; rank r takes
 * rows [k*W*B + r*B, k*W*B + (r+1)*B). So ranks are disjoint and their union, concatenated in
 * rank order, is exactly the batch a 1-rank loader with batch W*B returns. A batch may straddle
 * two shards or two epochs; nothing is dropped.
 * Eval loaders: no shuffle, one pass over floor(samples / (W*B)) batches, then next() returns 0
 * until dataloader_reset().
 *
 * Usage:  DataLoader dl;
 *         if (dataloader_init(&dl, "data/x/train_*.bin", B, T, rank, W, vocab, 1, seed, 1) != 0) die("%s", dl.err);
 *         if (dataloader_next(&dl, inputs, targets) < 0) die("%s", dl.err);     // int [B*T] each
 *         DataLoaderState st = dataloader_state(&dl);   // save in the checkpoint
 *         dataloader_restore(&dl, &st);                 // same subsequent batches (same T and shards)
 *         dataloader_free(&dl);
 * A DataLoader must not be copied or moved while open (its prefetch thread holds its address).
 */
#ifndef COMMON_DATALOADER_H
#define COMMON_DATALOADER_H

#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rng.h"
#include "shard.h"

/* The position of the next global step. Same on every rank; save it in checkpoints. */
typedef struct {
    uint64_t epoch;   /* completed passes over the data */
    uint64_t shard;   /* index into this epoch's shard order */
    uint64_t pos;     /* index into that shard's sample order */
    uint64_t seed;    /* every permutation derives from it (there is no other RNG state) */
    uint64_t data_id; /* identifies shard sizes and T, to refuse a state from other data */
} DataLoaderState;

typedef struct {
    /* configuration (read-only after init) */
    int B, T, rank, world, vocab, shuffle, single_pass, prefetch;
    int nshards;
    char** paths;
    ShardInfo* info;
    uint64_t* nsamples; /* [nshards] */
    uint64_t total_samples, data_id;
    int32_t* synthetic; /* owned token buffer of the synthetic source (NULL for files) */
    /* producer-owned: the open shard, which shards were checked, the cached shard order */
    int fd1, fd_shard;      /* fd of the open shard + 1 (0 = none, so a zeroed loader owns no fd) */
    unsigned char* checked; /* [nshards] ids verified < vocab */
    unsigned char* rowbuf;  /* (T+1) ids as stored */
    int* order;
    uint64_t order_epoch, order_seed;
    int order_valid;
    int *stage_in, *stage_tg;
    /* shared between consumer and the prefetch thread, under mu */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int thread_started, stop, halted, head, count;
    uint64_t gen;
    int* slot_in[2];
    int* slot_tg[2];
    int slot_status[2];
    DataLoaderState slot_after[2];
    DataLoaderState prod_state, cons_state;
    char prod_err[512];
    char err[512]; /* message of the last failure */
} DataLoader;

/* ---- permutations ---------------------------------------------------------------------------- */
static inline uint64_t dl_key(uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t x = seed ^ 0x5851F42D4C957F2Dull;
    x = splitmix64(&x) ^ a;
    x = splitmix64(&x) ^ b;
    return splitmix64(&x);
}

/* Bijection of [0, n): a 4-round Feistel network on the smallest even-bit power of two >= n,
   with cycle walking back into range. O(1) memory, so shards of any size can be shuffled. */
static inline uint64_t dl_permute(uint64_t i, uint64_t n, uint64_t key) {
    if (n <= 1) return 0;
    int bits = 2;
    while (bits < 64 && ((uint64_t)1 << bits) < n) bits += 2;
    int half = bits / 2;
    uint64_t mask = ((uint64_t)1 << half) - 1, x = i;
    do {
        uint64_t L = x >> half, R = x & mask;
        for (uint64_t r = 0; r < 4; r++) {
            uint64_t s = key + r * 0x9E3779B97F4A7C15ull + R;
            uint64_t F = splitmix64(&s) & mask;
            uint64_t nr = L ^ F;
            L = R;
            R = nr;
        }
        x = (L << half) | R;
    } while (x >= n);
    return x;
}

/* Shard visiting order of an epoch (identity without shuffle). */
static inline void dl_shard_order(int nshards, int shuffle, uint64_t seed, uint64_t epoch, int* order) {
    for (int i = 0; i < nshards; i++) order[i] = i;
    if (!shuffle) return;
    Rng r = rng_seed(dl_key(seed, epoch, 0xA11));
    for (int i = nshards - 1; i > 0; i--) {
        int j = (int)rng_below(&r, (uint32_t)(i + 1));
        int t = order[i]; order[i] = order[j]; order[j] = t;
    }
}

static inline const int* dl_order(DataLoader* dl, uint64_t seed, uint64_t epoch) {
    if (!dl->order_valid || dl->order_epoch != epoch || dl->order_seed != seed) {
        dl_shard_order(dl->nshards, dl->shuffle, seed, epoch, dl->order);
        dl->order_epoch = epoch;
        dl->order_seed = seed;
        dl->order_valid = 1;
    }
    return dl->order;
}

/* Moves a position k samples forward in the stream. */
static inline void dl_advance(DataLoader* dl, DataLoaderState* s, uint64_t k) {
    s->pos += k;
    for (;;) {
        const int* order = dl_order(dl, s->seed, s->epoch);
        uint64_t ns = dl->nsamples[order[s->shard]];
        if (s->pos < ns) return;
        s->pos -= ns;
        if (++s->shard == (uint64_t)dl->nshards) { s->shard = 0; s->epoch++; }
    }
}

/* ---- shard access (producer side) ------------------------------------------------------------ */
/* Reads exactly n bytes at byte offset off (64-bit). Plain read() instead of mmap, so a file that
   shrinks under the loader gives an error instead of SIGBUS. */
static inline int dl_read_at(int fd, void* buf, size_t n, uint64_t off) {
    if (lseek(fd, (off_t)off, SEEK_SET) != (off_t)off) return -1;
    unsigned char* p = (unsigned char*)buf;
    while (n > 0) {
        ssize_t got = read(fd, p, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Makes shard sid the open one. The first time a shard is used every id is checked < vocab: a
   bad id is a clear error naming the file, never a silent out-of-bounds embedding read. */
static inline int dl_open_shard(DataLoader* dl, int sid, char* err, size_t errlen) {
    if (dl->fd1 && dl->fd_shard == sid) return 0;
    if (dl->fd1) close(dl->fd1 - 1);
    dl->fd1 = 0;
    const char* path = dl->paths[sid];
    const ShardInfo* in = &dl->info[sid];
    int fd = open(path, O_RDONLY);
    if (fd < 0) return data_error(err, errlen, "cannot open token shard '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != in->file_bytes) {
        close(fd);
        return data_error(err, errlen, "token shard '%s' changed size since the loader opened it (expected %llu bytes)",
                          path, (unsigned long long)in->file_bytes);
    }
    if (!dl->checked[sid]) {
        const uint64_t chunk = (uint64_t)1 << 20; /* tokens per read */
        unsigned char* buf = (unsigned char*)malloc((size_t)chunk * (size_t)in->tok_bytes);
        int rc = buf ? 0 : data_error(err, errlen, "out of memory checking '%s'", path);
        for (uint64_t i = 0; rc == 0 && i < in->ntok; i += chunk) {
            uint64_t m = in->ntok - i < chunk ? in->ntok - i : chunk;
            if (dl_read_at(fd, buf, (size_t)(m * (uint64_t)in->tok_bytes), DATA_HEADER_BYTES + i * (uint64_t)in->tok_bytes) != 0)
                rc = data_error(err, errlen, "cannot read token shard '%s' at token %llu", path, (unsigned long long)i);
            else
                rc = shard_check_tokens(buf, in->tok_bytes, m, i, dl->vocab, path, err, errlen);
        }
        free(buf);
        if (rc != 0) { close(fd); return -1; }
        dl->checked[sid] = 1;
    }
    dl->fd1 = fd + 1;
    dl->fd_shard = sid;
    return 0;
}

/* Tokens [idx*T, idx*T+T+1) of shard sid as inputs x[T] and targets y[T]. */
static inline int dl_read_sample(DataLoader* dl, int sid, uint64_t idx, int* x, int* y, char* err, size_t errlen) {
    size_t T = (size_t)dl->T;
    int tb = dl->info[sid].tok_bytes;
    const unsigned char* src = NULL;
    if (dl->synthetic) {
        src = (const unsigned char*)(dl->synthetic + idx * T);
    } else {
        if (dl_open_shard(dl, sid, err, errlen) != 0) return -1;
        uint64_t off = DATA_HEADER_BYTES + idx * (uint64_t)T * (uint64_t)tb;
        if (dl_read_at(dl->fd1 - 1, dl->rowbuf, (T + 1) * (size_t)tb, off) != 0)
            return data_error(err, errlen, "cannot read token shard '%s' at byte %llu (file truncated after the loader opened it?)",
                              dl->paths[sid], (unsigned long long)off);
        src = dl->rowbuf;
    }
    if (tb == 2) {
        const uint16_t* t = (const uint16_t*)src;
        for (size_t i = 0; i < T; i++) { x[i] = t[i]; y[i] = t[i + 1]; }
    } else {
        const uint32_t* t = (const uint32_t*)src;
        for (size_t i = 0; i < T; i++) { x[i] = (int)t[i]; y[i] = (int)t[i + 1]; }
    }
    return 0;
}

static inline uint64_t dl_global_index(DataLoader* dl, const DataLoaderState* s) {
    const int* order = dl_order(dl, s->seed, s->epoch);
    uint64_t g = s->pos;
    for (uint64_t k = 0; k < s->shard; k++) g += dl->nsamples[order[k]];
    return g;
}

/* Fills this rank's rows of the global step at *s and advances *s to the next step.
   Returns 1, 0 at the end of an eval pass, -1 on error (message in err). */
static inline int dl_produce(DataLoader* dl, DataLoaderState* s, int* in, int* tg, char* err, size_t errlen) {
    uint64_t step = (uint64_t)dl->world * (uint64_t)dl->B;
    if (dl->single_pass && (s->epoch > 0 || dl_global_index(dl, s) + step > dl->total_samples)) return 0;
    DataLoaderState p = *s;
    dl_advance(dl, &p, (uint64_t)dl->rank * (uint64_t)dl->B);
    size_t T = (size_t)dl->T;
    for (int row = 0; row < dl->B; row++) {
        if (row > 0) dl_advance(dl, &p, 1);
        int sid = dl_order(dl, p.seed, p.epoch)[p.shard];
        uint64_t ns = dl->nsamples[sid];
        uint64_t idx = dl->shuffle ? dl_permute(p.pos, ns, dl_key(p.seed, p.epoch, (uint64_t)sid + 1)) : p.pos;
        if (dl_read_sample(dl, sid, idx, in + (size_t)row * T, tg + (size_t)row * T, err, errlen) != 0) return -1;
    }
    dl_advance(dl, s, step);
    return 1;
}

/* ---- prefetch thread ------------------------------------------------------------------------- */
static inline void* dl_thread_main(void* arg) {
    DataLoader* dl = (DataLoader*)arg;
    size_t n = (size_t)dl->B * (size_t)dl->T;
    char err[512];
    pthread_mutex_lock(&dl->mu);
    for (;;) {
        while (!dl->stop && (dl->count == 2 || dl->halted)) pthread_cond_wait(&dl->cv, &dl->mu);
        if (dl->stop) break;
        DataLoaderState s = dl->prod_state;
        uint64_t gen = dl->gen;
        pthread_mutex_unlock(&dl->mu);
        err[0] = 0;
        int status = dl_produce(dl, &s, dl->stage_in, dl->stage_tg, err, sizeof err);
        pthread_mutex_lock(&dl->mu);
        if (gen != dl->gen) continue; /* the consumer restored another position meanwhile */
        int slot = (dl->head + dl->count) % 2;
        if (status == 1) {
            memcpy(dl->slot_in[slot], dl->stage_in, n * sizeof(int));
            memcpy(dl->slot_tg[slot], dl->stage_tg, n * sizeof(int));
            dl->prod_state = s;
        } else {
            dl->halted = 1; /* end of pass or error: wait for a reset */
            if (status < 0) memcpy(dl->prod_err, err, sizeof err);
        }
        dl->slot_status[slot] = status;
        dl->slot_after[slot] = s;
        dl->count++;
        pthread_cond_broadcast(&dl->cv);
    }
    pthread_mutex_unlock(&dl->mu);
    return NULL;
}

/* ---- public API ------------------------------------------------------------------------------ */
static inline void dataloader_free(DataLoader* dl) {
    if (dl->thread_started) {
        pthread_mutex_lock(&dl->mu);
        dl->stop = 1;
        pthread_cond_broadcast(&dl->cv);
        pthread_mutex_unlock(&dl->mu);
        pthread_join(dl->thread, NULL);
        pthread_mutex_destroy(&dl->mu);
        pthread_cond_destroy(&dl->cv);
    }
    for (int i = 0; i < dl->nshards; i++) {
        if (dl->paths) free(dl->paths[i]);
    }
    free(dl->paths); free(dl->info); free(dl->nsamples); free(dl->synthetic);
    if (dl->fd1) close(dl->fd1 - 1);
    free(dl->checked); free(dl->rowbuf); free(dl->order);
    free(dl->stage_in); free(dl->stage_tg);
    for (int i = 0; i < 2; i++) { free(dl->slot_in[i]); free(dl->slot_tg[i]); }
    char keep[sizeof dl->err];
    memcpy(keep, dl->err, sizeof keep);
    memset(dl, 0, sizeof *dl);
    memcpy(dl->err, keep, sizeof keep); /* so `init failed -> free -> print dl.err` works */
}

/* Common part of the inits once the shards are known: checks sizes, allocates, starts the thread. */
static inline int dl_setup(DataLoader* dl, const char* what, uint64_t seed) {
    uint64_t step = (uint64_t)dl->world * (uint64_t)dl->B;
    dl->total_samples = 0;
    for (int i = 0; i < dl->nshards; i++) {
        const ShardInfo* in = &dl->info[i];
        if (in->ntok < (uint64_t)dl->T + 1)
            return data_error(dl->err, sizeof dl->err, "token shard '%s' has %llu tokens, fewer than one sequence of T+1 = %d",
                              dl->paths[i], (unsigned long long)in->ntok, dl->T + 1);
        if (in->vocab > dl->vocab)
            return data_error(dl->err, sizeof dl->err, "token shard '%s' was made for a vocabulary of %d, larger than the model's %d",
                              dl->paths[i], in->vocab, dl->vocab);
        dl->nsamples[i] = (in->ntok - 1) / (uint64_t)dl->T;
        dl->total_samples += dl->nsamples[i];
        dl->data_id = dl_key(dl->data_id, dl->nsamples[i], (uint64_t)dl->T);
    }
    if (dl->single_pass && dl->total_samples < step)
        return data_error(dl->err, sizeof dl->err, "%s holds %llu sequences of T+1 = %d tokens, fewer than one batch of %d ranks x B = %d",
                          what, (unsigned long long)dl->total_samples, dl->T + 1, dl->world, dl->B);
    size_t n = (size_t)dl->B * (size_t)dl->T;
    int ok = 1;
    dl->rowbuf = (unsigned char*)malloc(((size_t)dl->T + 1) * 4);
    dl->stage_in = (int*)malloc(n * sizeof(int));
    dl->stage_tg = (int*)malloc(n * sizeof(int));
    ok = ok && dl->rowbuf && dl->stage_in && dl->stage_tg;
    for (int i = 0; i < 2 && dl->prefetch; i++) {
        dl->slot_in[i] = (int*)malloc(n * sizeof(int));
        dl->slot_tg[i] = (int*)malloc(n * sizeof(int));
        ok = ok && dl->slot_in[i] && dl->slot_tg[i];
    }
    if (!ok) return data_error(dl->err, sizeof dl->err, "out of memory for batches of %d x %d tokens", dl->B, dl->T);
    memset(&dl->cons_state, 0, sizeof dl->cons_state);
    dl->cons_state.data_id = dl->data_id;
    dl->cons_state.seed = seed;
    dl->prod_state = dl->cons_state;
    if (dl->prefetch) {
        pthread_mutex_init(&dl->mu, NULL);
        pthread_cond_init(&dl->cv, NULL);
        if (pthread_create(&dl->thread, NULL, dl_thread_main, dl) != 0) {
            pthread_mutex_destroy(&dl->mu);
            pthread_cond_destroy(&dl->cv);
            return data_error(dl->err, sizeof dl->err, "cannot start the data prefetch thread");
        }
        dl->thread_started = 1;
    }
    return 0;
}

static inline int dl_check_args(DataLoader* dl, int B, int T, int rank, int world, int vocab) {
    if (B < 1 || T < 1 || world < 1 || rank < 0 || rank >= world || vocab < 2)
        return data_error(dl->err, sizeof dl->err, "bad data loader arguments: B=%d T=%d rank=%d world=%d vocab=%d "
                          "(expected B, T >= 1, 0 <= rank < world, vocab >= 2)", B, T, rank, world, vocab);
    return 0;
}

static inline char* dl_strdup(const char* s) {
    size_t n = strlen(s) + 1;
    char* d = (char*)malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static inline int dl_alloc_shards(DataLoader* dl, int n) {
    dl->nshards = n;
    dl->paths = (char**)calloc((size_t)n, sizeof(char*));
    dl->info = (ShardInfo*)calloc((size_t)n, sizeof(ShardInfo));
    dl->nsamples = (uint64_t*)calloc((size_t)n, sizeof(uint64_t));
    dl->checked = (unsigned char*)calloc((size_t)n, 1);
    dl->order = (int*)calloc((size_t)n, sizeof(int));
    if (!dl->paths || !dl->info || !dl->nsamples || !dl->checked || !dl->order)
        return data_error(dl->err, sizeof dl->err, "out of memory for %d shards", n);
    return 0;
}

/* Loader over the shards matching a glob pattern. shuffle = 0 keeps file order. prefetch = 1
   prepares the next batches on a background thread. single_pass = 1 makes an eval loader.
   Returns 0, or -1 with the reason in dl->err (the loader is then already freed). */
static inline int dataloader_open(DataLoader* dl, const char* pattern, int B, int T, int rank, int world, int vocab,
                                  int shuffle, int single_pass, uint64_t seed, int prefetch) {
    memset(dl, 0, sizeof *dl);
    if (dl_check_args(dl, B, T, rank, world, vocab) != 0) return -1;
    dl->B = B; dl->T = T; dl->rank = rank; dl->world = world; dl->vocab = vocab;
    dl->shuffle = shuffle; dl->single_pass = single_pass; dl->prefetch = prefetch;
    glob_t g;
    memset(&g, 0, sizeof g);
    int grc = glob(pattern, 0, NULL, &g);
    if (grc != 0 || g.gl_pathc == 0) {
        globfree(&g);
        return data_error(dl->err, sizeof dl->err, "no token shards match '%s' (run data/prepare.sh first?)", pattern);
    }
    int rc = dl_alloc_shards(dl, (int)g.gl_pathc);
    for (int i = 0; rc == 0 && i < dl->nshards; i++) {
        dl->paths[i] = dl_strdup(g.gl_pathv[i]);
        if (!dl->paths[i]) rc = data_error(dl->err, sizeof dl->err, "out of memory");
        else rc = shard_open(dl->paths[i], &dl->info[i], dl->err, sizeof dl->err);
    }
    globfree(&g);
    if (rc == 0) rc = dl_setup(dl, pattern, seed);
    if (rc != 0) { dataloader_free(dl); return -1; }
    return 0;
}

/* Training loader: shuffled (if shuffle), endless. */
static inline int dataloader_init(DataLoader* dl, const char* pattern, int B, int T, int rank, int world, int vocab,
                                  int shuffle, uint64_t seed, int prefetch) {
    return dataloader_open(dl, pattern, B, T, rank, world, vocab, shuffle, 0, seed, prefetch);
}
/* Eval loader: file order, one pass, then next() returns 0 until dataloader_reset(). */
static inline int evalloader_init(DataLoader* dl, const char* pattern, int B, int T, int rank, int world, int vocab,
                                  int prefetch) {
    return dataloader_open(dl, pattern, B, T, rank, world, vocab, 0, 1, 0, prefetch);
}

/* Built-in synthetic copy task, for when there is no text at all. Each document is
   EOT, L random symbols from [1, A], separator 0, the same L symbols again (L in 4..16,
   A = min(32, vocab-2), EOT = vocab-1). The copy half is learnable, so the loss falls from
   ln(vocab) towards dataloader_synthetic_floor(vocab). split 0 = train (shuffle by seed,
   endless), split 1 = validation (different documents, one pass). */
#define DL_SYN_MIN_L 4
#define DL_SYN_MAX_L 16
static inline int dl_syn_alphabet(int vocab) { return vocab - 2 < 32 ? vocab - 2 : 32; }
static inline double dataloader_synthetic_floor(int vocab) {
    /* mean over tokens of the entropy of the next token: L*ln(A) for the random symbols plus
       ln(13) for where the separator falls, over 2L+2 predictions per document (E[L] = 10) */
    double EL = 0.5 * (DL_SYN_MIN_L + DL_SYN_MAX_L);
    return (EL * log((double)dl_syn_alphabet(vocab)) + log((double)(DL_SYN_MAX_L - DL_SYN_MIN_L + 1))) / (2.0 * EL + 2.0);
}
static inline int dataloader_init_synthetic(DataLoader* dl, int B, int T, int rank, int world, int vocab, int split,
                                            uint64_t seed, int prefetch) {
    memset(dl, 0, sizeof *dl);
    if (dl_check_args(dl, B, T, rank, world, vocab) != 0) return -1;
    if (vocab < 4) return data_error(dl->err, sizeof dl->err, "the synthetic task needs a vocabulary of at least 4, got %d", vocab);
    dl->B = B; dl->T = T; dl->rank = rank; dl->world = world; dl->vocab = vocab;
    dl->shuffle = split == 0; dl->single_pass = split != 0; dl->prefetch = prefetch;
    uint64_t want = (uint64_t)4 * (uint64_t)world * (uint64_t)B * (uint64_t)T + 1;
    size_t n = (size_t)(want > (1u << 20) ? want : (1u << 20));
    if (dl_alloc_shards(dl, 1) != 0) { dataloader_free(dl); return -1; }
    dl->synthetic = (int32_t*)malloc(n * sizeof(int32_t));
    dl->paths[0] = dl_strdup(split == 0 ? "<synthetic train>" : "<synthetic val>");
    if (!dl->synthetic || !dl->paths[0]) {
        data_error(dl->err, sizeof dl->err, "out of memory for %zu synthetic tokens", n);
        dataloader_free(dl);
        return -1;
    }
    Rng r = rng_seed(0x5EED0000ull + (uint64_t)split); /* the data itself does not depend on seed */
    int A = dl_syn_alphabet(vocab);
    int32_t doc[2 * DL_SYN_MAX_L + 2];
    for (size_t i = 0; i < n;) {
        int L = DL_SYN_MIN_L + (int)rng_below(&r, DL_SYN_MAX_L - DL_SYN_MIN_L + 1), k = 0;
        doc[k++] = vocab - 1;
        for (int j = 0; j < L; j++) doc[k++] = 1 + (int32_t)rng_below(&r, (uint32_t)A);
        doc[k++] = 0;
        for (int j = 0; j < L; j++) doc[k++] = doc[1 + j];
        for (int j = 0; j < k && i < n; j++) dl->synthetic[i++] = doc[j];
    }
    dl->info[0].version = SHARD_VERSION_U32;
    dl->info[0].tok_bytes = 4;
    dl->info[0].ntok = n;
    dl->info[0].vocab = vocab;
    dl->checked[0] = 1;
    if (dl_setup(dl, "the synthetic source", seed) != 0) { dataloader_free(dl); return -1; }
    return 0;
}

/* Next batch of this rank: inputs and targets are [B*T] (row b = sample b, T tokens each).
   Returns 1, 0 when an eval pass is over, -1 on error (message in dl->err). */
static inline int dataloader_next(DataLoader* dl, int* inputs, int* targets) {
    if (!dl->prefetch) {
        DataLoaderState s = dl->cons_state;
        int st = dl_produce(dl, &s, inputs, targets, dl->err, sizeof dl->err);
        if (st == 1) dl->cons_state = s;
        return st;
    }
    size_t n = (size_t)dl->B * (size_t)dl->T;
    pthread_mutex_lock(&dl->mu);
    while (dl->count == 0) pthread_cond_wait(&dl->cv, &dl->mu);
    int h = dl->head, st = dl->slot_status[h];
    if (st == 1) {
        memcpy(inputs, dl->slot_in[h], n * sizeof(int));
        memcpy(targets, dl->slot_tg[h], n * sizeof(int));
        dl->cons_state = dl->slot_after[h];
        dl->head = (h + 1) % 2;
        dl->count--;
        pthread_cond_broadcast(&dl->cv);
    } else if (st < 0) {
        memcpy(dl->err, dl->prod_err, sizeof dl->err);
    } /* end / error slots stay at the head until a reset */
    pthread_mutex_unlock(&dl->mu);
    return st;
}

/* Position of the next batch (save it in a checkpoint). */
static inline DataLoaderState dataloader_state(const DataLoader* dl) { return dl->cons_state; }

/* Continues from a saved position: the following batches are those that followed it. */
static inline int dataloader_restore(DataLoader* dl, const DataLoaderState* s) {
    if (s->data_id != dl->data_id)
        return data_error(dl->err, sizeof dl->err, "the saved data position belongs to other shards or another sequence length T "
                          "(it only resumes with the same shards and T)");
    int* order = (int*)malloc((size_t)dl->nshards * sizeof(int));
    if (!order) return data_error(dl->err, sizeof dl->err, "out of memory");
    dl_shard_order(dl->nshards, dl->shuffle, s->seed, s->epoch, order);
    int ok = s->shard < (uint64_t)dl->nshards && s->pos < dl->nsamples[order[s->shard]];
    free(order);
    if (!ok)
        return data_error(dl->err, sizeof dl->err, "the saved data position (epoch %llu, shard %llu, sample %llu) is outside the data",
                          (unsigned long long)s->epoch, (unsigned long long)s->shard, (unsigned long long)s->pos);
    if (!dl->prefetch) { dl->cons_state = *s; return 0; }
    pthread_mutex_lock(&dl->mu);
    dl->gen++;
    dl->head = dl->count = dl->halted = 0;
    dl->prod_state = dl->cons_state = *s;
    pthread_cond_broadcast(&dl->cv);
    pthread_mutex_unlock(&dl->mu);
    return 0;
}

/* Back to the first batch (eval loaders call it before every pass). */
static inline void dataloader_reset(DataLoader* dl) {
    DataLoaderState s;
    memset(&s, 0, sizeof s);
    s.seed = dl->cons_state.seed;
    s.data_id = dl->data_id;
    dataloader_restore(dl, &s);
}

/* Global steps per epoch (eval: batches per pass). */
static inline uint64_t dataloader_num_batches(const DataLoader* dl) {
    return dl->total_samples / ((uint64_t)dl->world * (uint64_t)dl->B);
}

#endif /* COMMON_DATALOADER_H */
