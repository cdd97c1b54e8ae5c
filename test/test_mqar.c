/*
 * test_mqar.c — owns the CPU tests of the MQAR data source (common/mqar.h): the structure of every
 * row (pairs, distinct keys, ranges, each query's target is its key's value), determinism, resume
 * from a step counter, rank slicing, train/validation splits, the spread of the random choices,
 * config validation messages, the fingerprint and the recall counter.
 * Prints `PASS name` / `FAIL name: why` per test; exits 1 if any failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mqar.h"
#include "check.h"

static MqarConfig config(int vocab, int T, int P, int Q, uint64_t seed) {
    MqarConfig c;
    c.vocab = vocab; c.T = T; c.n_pairs = P; c.n_queries = Q; c.seed = seed;
    return c;
}

static int* ints(size_t n) {
    int* p = (int*)malloc(n * sizeof(int));
    if (!p) { printf("FAIL setup: out of memory\n"); exit(1); }
    return p;
}

/* ---- one row against the task's definition ------------------------------------------------------ */
/* Checks the prefix (ranges, distinct keys and values, no targets) and fills value_of[key] and
   asked[key] = 0 for the row's keys (-1 elsewhere). Returns 0, or 1 with the reason in why. */
static int check_prefix(const MqarTask* t, const int* in, const int* tg, int* value_of /*[vocab]*/, int* asked /*[vocab]*/,
                        char* why, size_t wl) {
    const int V = t->c.vocab, P = t->c.n_pairs;
    for (int k = 0; k < V; k++) value_of[k] = asked[k] = -1;
    for (int i = 0; i < P; i++) {
        int k = in[2 * i], v = in[2 * i + 1];
        if (k < t->key_lo || k >= t->key_lo + t->key_n || v < t->val_lo || v >= t->val_lo + t->val_n || v >= V)
            return snprintf(why, wl, "pair %d = (%d, %d) outside keys [%d, %d) / values [%d, %d)", i, k, v, t->key_lo,
                            t->key_lo + t->key_n, t->val_lo, V), 1;
        if (value_of[k] >= 0) return snprintf(why, wl, "key %d appears twice in the prefix", k), 1;
        for (int j = 0; j < i; j++)
            if (in[2 * j + 1] == v) return snprintf(why, wl, "value %d appears twice in the prefix", v), 1;
        if (tg[2 * i] != -1 || tg[2 * i + 1] != -1) return snprintf(why, wl, "a target inside the prefix (pair %d)", i), 1;
        value_of[k] = v;
        asked[k] = 0;
    }
    return 0;
}

/* Checks the rest of the row: every key token is a query of a row key, asked once, with its value as
   target; everything else is value-range noise without a target; Q queries in all. */
static int check_queries(const MqarTask* t, const int* in, const int* tg, const int* value_of, int* asked, char* why, size_t wl) {
    int nq = 0;
    for (int p = 2 * t->c.n_pairs; p < t->c.T; p++) {
        int x = in[p];
        if (x < 0 || x >= t->c.vocab) return snprintf(why, wl, "token %d at %d outside the vocabulary %d", x, p, t->c.vocab), 1;
        if (x >= t->val_lo) {
            if (tg[p] != -1) return snprintf(why, wl, "noise at %d has target %d", p, tg[p]), 1;
            continue;
        }
        if (value_of[x] < 0) return snprintf(why, wl, "key token %d at %d is not a key of the row", x, p), 1;
        if (asked[x]++) return snprintf(why, wl, "key %d asked twice", x), 1;
        if (tg[p] != value_of[x]) return snprintf(why, wl, "query %d at %d: target %d, paired value %d", x, p, tg[p], value_of[x]), 1;
        nq++;
    }
    if (nq != mqar_queries_per_row(t)) return snprintf(why, wl, "%d queries, expected %d", nq, mqar_queries_per_row(t)), 1;
    return 0;
}

/* rows [first, first+n) of a split; returns 0 or 1 with why prefixed by the row */
static int check_rows(const MqarTask* t, uint64_t split, uint64_t first, int n, char* why, size_t wl) {
    int *in = ints((size_t)t->c.T), *tg = ints((size_t)t->c.T);
    int *value_of = ints((size_t)t->c.vocab), *asked = ints((size_t)t->c.vocab);
    char sub[200];
    int bad = 0;
    for (int r = 0; r < n && !bad; r++) {
        mqar_sample(t, split, first + (uint64_t)r, in, tg);
        bad = check_prefix(t, in, tg, value_of, asked, sub, sizeof sub) || check_queries(t, in, tg, value_of, asked, sub, sizeof sub);
        if (bad) snprintf(why, wl, "split %llu row %llu: %s", (unsigned long long)split, (unsigned long long)(first + r), sub);
    }
    free(in); free(tg); free(value_of); free(asked);
    return bad;
}

static void test_structure(void) {
    /* default; small; smallest possible; every key used and no noise (2P + Q = T); odd vocab; long */
    MqarConfig cs[] = {mqar_default_config(256), config(64, 64, 16, 8, 1), config(2, 3, 1, 0, 2),
                       config(16, 24, 8, 0, 3), config(33, 100, 16, 5, 4), config(8192, 4096, 256, 0, 5)};
    char why[400] = "", err[300];
    int ok = 1;
    for (size_t i = 0; i < sizeof cs / sizeof cs[0] && ok; i++) {
        MqarTask t;
        if (mqar_init(&t, &cs[i], err, sizeof err) != 0) { snprintf(why, sizeof why, "config %zu refused: %s", i, err); ok = 0; break; }
        int rows = cs[i].T > 1000 ? 20 : 300;
        ok = !check_rows(&t, 0, 0, rows, why, sizeof why) && !check_rows(&t, 1, 1000000, rows, why, sizeof why);
    }
    check(ok, "mqar_row_structure", "%s", why);
}

static void test_defaults(void) {
    MqarTask t;
    char err[300] = "", why[400] = "";
    MqarConfig c = mqar_default_config(256);
    int ok = mqar_init(&t, &c, err, sizeof err) == 0 && t.c.vocab == 8192 && t.c.n_pairs == 16 && mqar_queries_per_row(&t) == 16;
    c = mqar_default_config(64);
    ok = ok && mqar_init(&t, &c, err, sizeof err) == 0 && t.c.n_pairs == 4;
    c = mqar_default_config(3); /* at least one pair */
    ok = ok && mqar_init(&t, &c, err, sizeof err) == 0 && t.c.n_pairs == 1 && mqar_queries_per_row(&t) == 1;
    snprintf(why, sizeof why, "defaults: vocab %d, %d pairs, %d queries (%s)", t.c.vocab, t.c.n_pairs, t.c.n_queries, err);
    check(ok, "mqar_defaults", "%s", why);
}

/* ---- batches: determinism, resume, ranks, splits ------------------------------------------------- */
static int same_batch(const MqarTask* a, const MqarTask* b, uint64_t split, uint64_t step, int rank, int world, int B) {
    size_t n = (size_t)B * (size_t)a->c.T;
    int *x1 = ints(n), *y1 = ints(n), *x2 = ints(n), *y2 = ints(n);
    mqar_batch(a, split, step, rank, world, B, x1, y1);
    mqar_batch(b, split, step, rank, world, B, x2, y2);
    int same = !memcmp(x1, x2, n * sizeof(int)) && !memcmp(y1, y2, n * sizeof(int));
    free(x1); free(y1); free(x2); free(y2);
    return same;
}

static void test_batches(void) {
    const int B = 4, T = 128, W = 3, STEPS = 10;
    char err[300] = "";
    MqarTask t, t2, other;
    MqarConfig c = config(512, T, 12, 0, 42);
    int ok = mqar_init(&t, &c, err, sizeof err) == 0 && mqar_init(&t2, &c, err, sizeof err) == 0;
    c.seed = 43;
    ok = ok && mqar_init(&other, &c, err, sizeof err) == 0;
    if (!ok) { check(0, "mqar_batches_setup", "%s", err); return; }
    int det = 1;
    for (int s = 0; s < STEPS; s++) det = det && same_batch(&t, &t2, 0, (uint64_t)s, 0, 1, B);
    check(det && !same_batch(&t, &other, 0, 0, 0, 1, B), "mqar_deterministic", "same seed differs, or another seed gives the same batch");

    /* resume: steps drawn in sequence, then step k alone from a fresh task, match */
    size_t n = (size_t)B * T;
    int *xs = ints(n * STEPS), *ys = ints(n * STEPS), *x = ints(n * W), *y = ints(n * W);
    for (int s = 0; s < STEPS; s++) mqar_batch(&t, 0, (uint64_t)s, 0, 1, B, xs + s * n, ys + s * n);
    mqar_batch(&t2, 0, 7, 0, 1, B, x, y);
    check(!memcmp(x, xs + 7 * n, n * sizeof(int)) && !memcmp(y, ys + 7 * n, n * sizeof(int)), "mqar_resume",
          "step 7 alone differs from step 7 after steps 0..6");

    /* rank slicing: W ranks of B rows, concatenated in rank order == 1 rank of W*B rows */
    int sliced = 1;
    for (int s = 0; s < 4 && sliced; s++) {
        int *xr = ints(n * W), *yr = ints(n * W);
        mqar_batch(&t, 0, (uint64_t)s, 0, 1, W * B, x, y);
        for (int r = 0; r < W; r++) mqar_batch(&t, 0, (uint64_t)s, r, W, B, xr + r * n, yr + r * n);
        sliced = !memcmp(x, xr, n * W * sizeof(int)) && !memcmp(y, yr, n * W * sizeof(int));
        free(xr); free(yr);
    }
    check(sliced, "mqar_rank_slicing", "rank batches differ from the 1-rank batch of W*B rows");

    /* validation: a fixed set (same twice), no row equal to the train row of the same number */
    int split_ok = same_batch(&t, &t2, 1, 3, 0, 1, B);
    for (int s = 0; s < STEPS && split_ok; s++) {
        mqar_batch(&t, 1, (uint64_t)s, 0, 1, B, x, y);
        for (int b = 0; b < B; b++) split_ok = split_ok && memcmp(x + b * T, xs + s * n + b * T, T * sizeof(int)) != 0;
    }
    check(split_ok, "mqar_val_split", "validation rows change between calls or repeat training rows");
    free(xs); free(ys); free(x); free(y);
}

/* ---- spread of the random choices -------------------------------------------------------------- */
/* over many rows every key, value and query place is used about equally often (no stuck bits in the
   keyed permutations); bounds are ~6 standard deviations, and the data is deterministic */
static int spread_ok(const long* count, int n, double expect, const char* what, char* why, size_t wl) {
    for (int i = 0; i < n; i++)
        if (count[i] < 0.8 * expect || count[i] > 1.2 * expect)
            return snprintf(why, wl, "%s %d drawn %ld times, expected about %.0f", what, i, count[i], expect), 0;
    return 1;
}

static void test_spread(void) {
    const int V = 64, T = 64, P = 8, Q = 6, ROWS = 8000, K = V / 2, R = T - 2 * P;
    MqarTask t;
    MqarConfig c = config(V, T, P, Q, 7);
    char err[300] = "", why[300] = "";
    if (mqar_init(&t, &c, err, sizeof err) != 0) { check(0, "mqar_spread", "%s", err); return; }
    long keys[32] = {0}, vals[32] = {0}, places[48] = {0}, first_pair[8] = {0};
    int *in = ints(T), *tg = ints(T);
    for (int r = 0; r < ROWS; r++) {
        mqar_sample(&t, 0, (uint64_t)r, in, tg);
        for (int i = 0; i < P; i++) { keys[in[2 * i]]++; vals[in[2 * i + 1] - K]++; }
        for (int p = 2 * P, first = 1; p < T; p++) {
            if (tg[p] < 0) continue;
            places[p - 2 * P]++;
            for (int i = 0; i < P && first; i++)
                if (in[2 * i] == in[p]) { first_pair[i]++; first = 0; } /* which pair the earliest query asks */
        }
    }
    int ok = spread_ok(keys, K, (double)ROWS * P / K, "key", why, sizeof why) &&
             spread_ok(vals, K, (double)ROWS * P / K, "value", why, sizeof why) &&
             spread_ok(places, R, (double)ROWS * Q / R, "query place", why, sizeof why) &&
             spread_ok(first_pair, P, (double)ROWS / P, "earliest query asks pair", why, sizeof why);
    check(ok, "mqar_spread", "%s", why);
    free(in); free(tg);
}

/* ---- config validation, fingerprint, recall counter ------------------------------------------- */
static void test_bad_configs(void) {
    struct { MqarConfig c; const char *a, *b; } cases[] = {
        {config(1, 64, 1, 0, 0), "vocabulary 1 is too small", NULL},
        {config(64, 64, 0, 0, 0), "n_pairs >= 1", NULL},
        {config(64, 64, 4, -1, 0), "n_queries >= 0", NULL},
        {config(64, 64, 4, 5, 0), "5 queries but only 4 pairs", NULL},
        {config(64, 256, 33, 0, 0), "33 pairs need 33 distinct keys", "only 32 key tokens"},
        {config(8192, 40, 16, 16, 0), "do not fit in T = 40", "2 * n_pairs + n_queries <= T"},
        {config(8192, 0, 1, 0, 0), "do not fit in T = 0", NULL},
        {mqar_default_config(2), "do not fit in T = 2", NULL},
    };
    char err[300], why[400] = "";
    int ok = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && ok; i++) {
        MqarTask t;
        err[0] = 0;
        ok = mqar_init(&t, &cases[i].c, err, sizeof err) != 0 && strstr(err, cases[i].a) && (!cases[i].b || strstr(err, cases[i].b));
        if (!ok) snprintf(why, sizeof why, "case %zu: expected \"%s\", got \"%s\"", i, cases[i].a, err);
    }
    check(ok, "mqar_bad_configs_rejected", "%s", why);
}

static void test_fingerprint(void) {
    MqarConfig base = config(512, 128, 8, 4, 9), cs[5];
    for (int i = 0; i < 5; i++) cs[i] = base;
    cs[0].vocab = 514; cs[1].T = 129; cs[2].n_pairs = 9; cs[3].n_queries = 3; cs[4].seed = 10;
    MqarTask a, b;
    char err[300] = "";
    int ok = mqar_init(&a, &base, err, sizeof err) == 0 && mqar_init(&b, &base, err, sizeof err) == 0 &&
             mqar_fingerprint(&a) == mqar_fingerprint(&b);
    for (int i = 0; i < 5 && ok; i++) ok = mqar_init(&b, &cs[i], err, sizeof err) == 0 && mqar_fingerprint(&a) != mqar_fingerprint(&b);
    check(ok, "mqar_fingerprint", "equal configs differ, or a changed field keeps the fingerprint");
}

static void test_count_correct(void) {
    int tg[6] = {-1, 5, 7, -1, 9, 0}, pred[6] = {-1, 5, 8, 3, 9, 1};
    check(mqar_count_correct(pred, tg, 6) == 2 && mqar_count_correct(tg, tg, 6) == 4, "mqar_count_correct",
          "wrong number of correct recalls");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_defaults();
    test_structure();
    test_batches();
    test_spread();
    test_bad_configs();
    test_fingerprint();
    test_count_correct();
    return check_summary("test_mqar");
}
