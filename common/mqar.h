/*
 * mqar.h — owns the multi-query associative recall (MQAR) task of Zoology (Arora et al. 2023) and
 * the GLA paper as a built-in data source: the config and its validation, the deterministic
 * generator of rows and batches, and the count of correct recalls. Plain C11 / C++17,
 * header-only; functions return 0 or -1 with a message in err, and never exit.
 *
 * A row of T tokens (P = n_pairs, Q = n_queries, K = vocab / 2):
 *   positions [0, 2P)  k1 v1 k2 v2 ... kP vP   keys distinct from [0, K), values distinct from [K, vocab)
 *   positions [2P, T)  Q of the P keys again, each key at most once, at distinct uniformly random
 *                      positions; every other position is a noise token from the value range
 *   targets            -1 everywhere except at a query position, whose target is the value that
 *                      followed that key in the prefix (the model predicts it right after reading
 *                      the key; the value itself never follows the query in the input)
 * As Zoology: keys and values from disjoint halves of the vocabulary, both drawn without
 * replacement, every pair queried by default (Q = P), the value not shown after the query, and
 * noise instead of a pad token so position alone does not tell a query from filler. Unlike Zoology,
 * noise never comes from the key range (Zoology's noise is any token, so a noise token can repeat a
 * key of the row without being scored): here every key token after the prefix is a query, which
 * makes "recall accuracy" mean exactly "fraction of key re-occurrences answered".
 * Zoology places queries with a power law biased towards the prefix; ours are uniform over the rest
 * of the row, so the average key-to-query distance grows with T (the harder, state-limited case).
 *
 * Determinism: row n of split s is a pure function of (seed, s, n) (counter-based: a hash of the
 * three seeds every generator the row uses), so training resumes from a sample counter alone, ranks
 * take disjoint rows, and the validation split (s = 1) is a fixed set that does not depend on how
 * far training went. Batch convention of dataloader.h: global step k covers samples
 * [k*W*B, (k+1)*W*B); rank r of W takes samples k*W*B + r*B + [0, B).
 *
 * Defaults (mqar_default_config): vocab 8192 as Zoology and the GLA paper, so accuracies compare
 * with their figures; n_pairs = T/16 (T = 64, 128, 256, 512 -> 4, 8, 16, 32 pairs: Zoology's
 * ratio at its shorter lengths), every pair queried. A smaller vocabulary (e.g. 512) shows each
 * key 16x more often, so a tiny model's embeddings train faster, but the results no longer
 * compare with the papers; the recall difficulty itself is set by P and T, not by the vocabulary.
 *
 * Usage:  MqarConfig c = mqar_default_config(T);   c.n_pairs = 32; ...
 *         MqarTask t;  if (mqar_init(&t, &c, err, sizeof err) != 0) die("%s", err);
 *         mqar_batch(&t, 0, step, rank, world, B, inputs, targets);   // int [B*T] each
 *         valid targets per batch: B * mqar_queries_per_row(&t)
 */
#ifndef COMMON_MQAR_H
#define COMMON_MQAR_H

#include <stdint.h>
#include <stddef.h>
#include "dataloader.h" /* dl_key, dl_permute (O(1)-memory bijections), data_error, rng */

#define MQAR_DEFAULT_VOCAB 8192
#define MQAR_DEFAULT_SEED 0x4D514152ull /* "MQAR": the data need not change with the init seed */
#define MQAR_GENERATOR_VERSION 1        /* part of the fingerprint: a changed generator is other data */

typedef struct {
    int vocab;      /* token ids are < vocab: keys [0, vocab/2), values [vocab/2, vocab) */
    int T;          /* tokens per row */
    int n_pairs;    /* key-value pairs at the start of every row */
    int n_queries;  /* keys asked again per row (distinct, <= n_pairs); 0 = every pair */
    uint64_t seed;  /* the data's seed */
} MqarConfig;

typedef struct {
    MqarConfig c;         /* validated, n_queries resolved */
    int key_lo, key_n;    /* keys are key_lo + [0, key_n) */
    int val_lo, val_n;    /* values and noise are val_lo + [0, val_n) */
} MqarTask;

static inline MqarConfig mqar_default_config(int T) {
    MqarConfig c;
    c.vocab = MQAR_DEFAULT_VOCAB;
    c.T = T;
    c.n_pairs = T / 16 > 1 ? T / 16 : 1;
    c.n_queries = 0;
    c.seed = MQAR_DEFAULT_SEED;
    return c;
}

static inline int mqar_init(MqarTask* t, const MqarConfig* c, char* err, size_t errlen) {
    memset(t, 0, sizeof *t);
    int P = c->n_pairs, Q = c->n_queries == 0 ? c->n_pairs : c->n_queries;
    if (c->vocab < 2)
        return data_error(err, errlen, "MQAR: vocabulary %d is too small (keys take [0, vocab/2), values [vocab/2, vocab))", c->vocab);
    if (P < 1 || c->n_queries < 0)
        return data_error(err, errlen, "MQAR: need n_pairs >= 1 and n_queries >= 0 (0 = one query per pair), got %d and %d",
                          P, c->n_queries);
    if (Q > P)
        return data_error(err, errlen, "MQAR: %d queries but only %d pairs (each query asks a different key of the row)", Q, P);
    if (P > c->vocab / 2)
        return data_error(err, errlen, "MQAR: %d pairs need %d distinct keys, but vocabulary %d has only %d key tokens "
                          "[0, %d) (raise the vocabulary or lower the pairs)", P, P, c->vocab, c->vocab / 2, c->vocab / 2);
    if (c->T < 1 || (long long)2 * P + Q > (long long)c->T)
        return data_error(err, errlen, "MQAR: %d pairs (%d tokens) and %d queries do not fit in T = %d "
                          "(need 2 * n_pairs + n_queries <= T)", P, 2 * P, Q, c->T);
    t->c = *c;
    t->c.n_queries = Q;
    t->key_lo = 0;
    t->key_n = c->vocab / 2;
    t->val_lo = t->key_n;
    t->val_n = c->vocab - t->key_n;
    return 0;
}

static inline int mqar_queries_per_row(const MqarTask* t) { return t->c.n_queries; }

/* Identifies the data (config and generator version): store it with a saved sample counter so a
   resume with another task is refused, as dataloader.h does with data_id. */
static inline uint64_t mqar_fingerprint(const MqarTask* t) {
    const MqarConfig* c = &t->c;
    uint64_t h = dl_key(c->seed, MQAR_GENERATOR_VERSION, (uint64_t)c->vocab);
    h = dl_key(h, (uint64_t)c->T, (uint64_t)c->n_pairs);
    return dl_key(h, (uint64_t)c->n_queries, 0);
}

/* ---- one row ---------------------------------------------------------------------------------- */
/* Every random choice of a row derives from this hash (the salt keeps it apart from dataloader.h's
   keys of the same seed). Sub-generators are told apart by their first argument to dl_key. */
static inline uint64_t mqar_row_key_(const MqarTask* t, uint64_t split, uint64_t n) {
    return dl_key(t->c.seed ^ 0x6D71617200000000ull, split, n);
}
enum { MQAR_KEYS_ = 1, MQAR_VALUES_, MQAR_NOISE_, MQAR_ORDER_, MQAR_PLACES_ };

/* The prefix: pair i is the i-th element of a keyed permutation of the key range and of the value
   range, so keys (and values) are distinct without any memory or rejection. */
static inline void mqar_pairs_(const MqarTask* t, uint64_t row, int* in /*[2P]*/, int* tg /*[2P]*/) {
    uint64_t kk = dl_key(row, MQAR_KEYS_, 0), vk = dl_key(row, MQAR_VALUES_, 0);
    for (int i = 0; i < t->c.n_pairs; i++) {
        in[2 * i] = t->key_lo + (int)dl_permute((uint64_t)i, (uint64_t)t->key_n, kk);
        in[2 * i + 1] = t->val_lo + (int)dl_permute((uint64_t)i, (uint64_t)t->val_n, vk);
        tg[2 * i] = tg[2 * i + 1] = -1;
    }
}

/* The rest of the row: noise from the value range, then the queries written over it. Query j asks
   pair order(j) at place places(j); both are keyed permutations, so pairs and places are distinct. */
static inline void mqar_queries_(const MqarTask* t, uint64_t row, int* in /*[T]*/, int* tg /*[T]*/) {
    const int P = t->c.n_pairs, R = t->c.T - 2 * P;
    Rng r = rng_seed(dl_key(row, MQAR_NOISE_, 0));
    for (int p = 2 * P; p < t->c.T; p++) {
        in[p] = t->val_lo + (int)rng_below(&r, (uint32_t)t->val_n);
        tg[p] = -1;
    }
    uint64_t qk = dl_key(row, MQAR_ORDER_, 0), pk = dl_key(row, MQAR_PLACES_, 0);
    for (int j = 0; j < t->c.n_queries; j++) {
        int pair = (int)dl_permute((uint64_t)j, (uint64_t)P, qk);
        int pos = 2 * P + (int)dl_permute((uint64_t)j, (uint64_t)R, pk);
        in[pos] = in[2 * pair];
        tg[pos] = in[2 * pair + 1];
    }
}

/* Sample n of split s (0 = train, 1 = validation, any other value = another disjoint set). */
static inline void mqar_sample(const MqarTask* t, uint64_t split, uint64_t n, int* in /*[T]*/, int* tg /*[T]*/) {
    uint64_t row = mqar_row_key_(t, split, n);
    mqar_pairs_(t, row, in, tg);
    mqar_queries_(t, row, in, tg);
}

/* This rank's rows of global step `step`: row b is sample step*world*B + rank*B + b. inputs and
   targets are [B*T] with T = the config's T. */
static inline void mqar_batch(const MqarTask* t, uint64_t split, uint64_t step, int rank, int world, int B,
                              int* inputs /*[B*T]*/, int* targets /*[B*T]*/) {
    uint64_t first = step * (uint64_t)world * (uint64_t)B + (uint64_t)rank * (uint64_t)B;
    size_t T = (size_t)t->c.T;
    for (int b = 0; b < B; b++) mqar_sample(t, split, first + (uint64_t)b, inputs + (size_t)b * T, targets + (size_t)b * T);
}

/* Recalls answered right: positions with a target (>= 0) where the prediction equals it. pred
   comes from classifier_argmax (-1 where the target is -1). */
static inline long long mqar_count_correct(const int* pred /*[n]*/, const int* targets /*[n]*/, size_t n) {
    long long hits = 0;
    for (size_t i = 0; i < n; i++) hits += targets[i] >= 0 && pred[i] == targets[i];
    return hits;
}

#endif /* COMMON_MQAR_H */
