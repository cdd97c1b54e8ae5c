/*
 * test_data.c — owns the CPU tests of the data pipeline: tokenizer (train, round trip, file
 * validation), token shards (round trip, every bad-file case) and the data loader (order,
 * coverage, rank slicing, resume, eval pass, vocab check, synthetic source).
 * Prints `PASS name` / `FAIL name: why` per test; exits 1 if any failed. Temporary files live in
 * a mkdtemp directory that is removed at the end.
 * Text: $TINYSHAKESPEARE, else ../shared/data/tinyshakespeare/input.txt (from the repo root),
 * else a generated text (said so on stdout).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, truncate */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tokenizer.h"
#include "shard.h"
#include "dataloader.h"
#include "check.h"

static char g_dir[256];
static const char* tmp_path(const char* name) { return check_path(g_dir, name); }

static unsigned char* read_file(const char* path, size_t* n) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char* buf = (unsigned char*)malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}
static void write_bytes(const char* path, const void* p, size_t n) {
    FILE* f = fopen(path, "wb");
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

/* Text for the tokenizer tests; a generated pseudo-English one when tinyshakespeare is absent. */
static unsigned char* get_text(size_t* n) {
    const char* env = getenv("TINYSHAKESPEARE");
    const char* path = env && *env ? env : "../shared/data/tinyshakespeare/input.txt";
    unsigned char* t = read_file(path, n);
    if (t) { printf("note: tokenizer tests use %s (%zu bytes)\n", path, *n); return t; }
    printf("note: %s not found; tokenizer tests use a generated text\n", path);
    /* words of 1-3 random syllables: enough distinct pairs for a vocabulary of 512 */
    static const char* syl[] = {"the", "ki", "ng", "and", "qu", "een", "of", "ro", "me", "sha", "ll", "spe",
                                "ak", "to", "th", "ee", "my", "lo", "rd", "wha", "is", "lov", "de", "ath"};
    size_t cap = 600000, len = 0;
    t = (unsigned char*)malloc(cap + 64);
    Rng r = rng_seed(7);
    while (len < cap) {
        int k = 1 + (int)rng_below(&r, 3);
        for (int j = 0; j < k; j++) len += (size_t)sprintf((char*)t + len, "%s", syl[rng_below(&r, 24)]);
        uint32_t p = rng_below(&r, 20);
        len += (size_t)sprintf((char*)t + len, "%s", p == 0 ? ".\n" : p == 1 ? ", " : p == 2 ? " 42 " : " ");
    }
    *n = len;
    return t;
}

static int roundtrip(Tokenizer* tok, const unsigned char* p, size_t n, long long* ntok_out) {
    int32_t* ids = (int32_t*)malloc((n + 1) * sizeof(int32_t));
    char* back = (char*)malloc(n + 1);
    long long m = tokenizer_encode(tok, p, n, ids);
    int ok = m >= 0;
    for (long long i = 0; ok && i < m; i++) ok = ids[i] >= 0 && ids[i] < tok->eot;
    long long d = ok ? tokenizer_decode(tok, ids, (size_t)m, back, n + 1, NULL) : -1;
    ok = ok && d == (long long)n && memcmp(back, p, n) == 0;
    if (ntok_out) *ntok_out = m;
    free(ids);
    free(back);
    return ok;
}

static int contains(const char* s, const char* a, const char* b) { return strstr(s, a) && (!b || strstr(s, b)); }

/* ------------------------------------------------------------------------------------------- */
static Tokenizer g_tok; /* trained once on the text, used by several tests */

static void test_tokenizer(void) {
    char err[1024];
    size_t n;
    unsigned char* text = get_text(&n);
    const unsigned char* texts[1] = {text};
    size_t lens[1] = {n};
    int rc = tokenizer_train(&g_tok, texts, lens, 1, 512, 0, err, sizeof err);
    check(rc == 0 && g_tok.vocab_size == 512 && g_tok.eot == 511, "tok_train", "%s (vocab %d)", rc ? err : "", g_tok.vocab_size);
    long long m = 0;
    int ok = rc == 0 && roundtrip(&g_tok, text, n, &m);
    check(ok && (double)n / (double)m > 1.5, "tok_roundtrip_text", "round trip %s, %.2f bytes/token", ok ? "ok" : "FAILED",
          m ? (double)n / (double)m : 0.0);

    Tokenizer t2;
    rc = tokenizer_train(&t2, texts, lens, 1, 512, 0, err, sizeof err);
    check(rc == 0 && t2.fingerprint == g_tok.fingerprint &&
          memcmp(t2.merges, g_tok.merges, (size_t)g_tok.n_merges * 8) == 0, "tok_train_deterministic", "two trainings differ");
    tokenizer_free(&t2);

    /* random bytes (NULs, invalid UTF-8) and awkward runs */
    size_t rn = 1 << 20;
    unsigned char* rb = (unsigned char*)malloc(rn);
    Rng r = rng_seed(3);
    for (size_t i = 0; i < rn; i++) rb[i] = (unsigned char)rng_u32(&r);
    ok = roundtrip(&g_tok, rb, rn, NULL);
    for (size_t i = 0; i < rn; i++) rb[i] = (unsigned char)" \n\tab\0\xff\xc3"[rng_below(&r, 8)];
    ok = ok && roundtrip(&g_tok, rb, rn, NULL);
    memset(rb, 'e', 10000);
    ok = ok && roundtrip(&g_tok, rb, 10000, NULL);
    memset(rb, ' ', 1000);
    ok = ok && roundtrip(&g_tok, rb, 1000, NULL) && roundtrip(&g_tok, rb, 0, NULL) && roundtrip(&g_tok, text, 1, NULL);
    check(ok, "tok_roundtrip_bytes", "random / awkward bytes do not round trip");
    free(rb);

    /* decode details */
    int32_t ids[3] = {'a', g_tok.eot, 'b'};
    char out[64];
    long long d = tokenizer_decode(&g_tok, ids, 3, out, sizeof out, "<|eot|>");
    ok = d == 9 && memcmp(out, "a<|eot|>b", 9) == 0;
    ids[1] = g_tok.vocab_size;
    ok = ok && tokenizer_decode(&g_tok, ids, 3, out, sizeof out, NULL) == -1;
    check(ok, "tok_decode_eot_invalid", "EOT text or invalid-id handling wrong");

    /* a text too small for the requested vocabulary gives a smaller one */
    const unsigned char* small[1] = {(const unsigned char*)"abcabc abc"};
    size_t slen[1] = {10};
    rc = tokenizer_train(&t2, small, slen, 1, 1000, 0, err, sizeof err);
    ok = rc == 0 && t2.vocab_size < 1000 && roundtrip(&t2, small[0], 10, NULL);
    tokenizer_free(&t2);
    rc = tokenizer_train(&t2, small, slen, 1, 256, 0, err, sizeof err);
    check(ok && rc != 0 && strstr(err, "257"), "tok_vocab_limits", "small text or vocab 256 handled wrong: %s", err);

    /* save / load */
    const char* tp = tmp_path("tok.bin");
    rc = tokenizer_save(&g_tok, tp, err, sizeof err);
    rc = rc ? rc : tokenizer_load(&t2, tp, err, sizeof err);
    ok = rc == 0 && t2.fingerprint == g_tok.fingerprint && t2.vocab_size == g_tok.vocab_size;
    if (ok) {
        int32_t* a = (int32_t*)malloc(n * sizeof(int32_t));
        int32_t* b = (int32_t*)malloc(n * sizeof(int32_t));
        long long ma = tokenizer_encode(&g_tok, text, n, a), mb = tokenizer_encode(&t2, text, n, b);
        ok = ma == mb && memcmp(a, b, (size_t)ma * sizeof(int32_t)) == 0;
        free(a);
        free(b);
        tokenizer_free(&t2);
    }
    check(ok, "tok_save_load", "%s", rc ? err : "loaded tokenizer encodes differently");
    free(text);
}

/* A disk that fills up while a shard or a tokenizer file is rewritten (check_full_disk): the error says
 * so, the previous file survives bit for bit and no .tmp is left. */
typedef struct { const char* path; int32_t toks[1000]; char err[1024]; } FullDiskData;
static int full_disk_shard_(void* ctx) {
    FullDiskData* c = (FullDiskData*)ctx;
    return shard_write(c->path, c->toks, 1000, 4096, 0, c->err, sizeof c->err);
}
static int full_disk_tok_(void* ctx) {
    FullDiskData* c = (FullDiskData*)ctx;
    return tokenizer_save(&g_tok, c->path, c->err, sizeof c->err);
}
static void test_full_disk(void) {
    static FullDiskData c;
    char tmp[1100];
    for (int i = 0; i < 1000; i++) c.toks[i] = (i * 13) % 4096;
    struct { const char* name; const char* file; int (*fn)(void*); } cases[] = {
        {"shard_write_disk_full_keeps_previous", "s16.bin", full_disk_shard_},
        {"tokenizer_save_disk_full_keeps_previous", "tok.bin", full_disk_tok_},
    };
    for (int k = 0; k < 2; k++) {
        c.path = tmp_path(cases[k].file);   /* written by test_shards / test_tokenizer before */
        snprintf(tmp, sizeof tmp, "%s.tmp", c.path);
        size_t n0 = 0, n1 = 0;
        unsigned char* before = read_file(c.path, &n0);
        c.err[0] = 0;
        int rc = check_full_disk(1500, cases[k].fn, &c);   /* past the 1024-byte header, short of the payload */
        unsigned char* after = read_file(c.path, &n1);
        check(rc == -1 && strstr(c.err, "disk full?") && access(tmp, F_OK) != 0 && before && after && n0 == n1 &&
                  memcmp(before, after, n0) == 0,
              cases[k].name, "rc %d, %zu -> %zu bytes, err %s", rc, n0, n1, c.err);
        free(before);
        free(after);
    }
}

/* Writes a variant of the saved tokenizer file and expects load to fail with both keywords. */
static int bad_tok(const char* name, const unsigned char* bytes, size_t n, const char* k1, const char* k2) {
    const char* p = tmp_path(name);
    write_bytes(p, bytes, n);
    Tokenizer t;
    char err[1024] = "";
    int rc = tokenizer_load(&t, p, err, sizeof err);
    if (rc == 0) { tokenizer_free(&t); printf("  %s: loaded without error\n", name); return 0; }
    if (!contains(err, p, k1) || (k2 && !strstr(err, k2))) { printf("  %s: unexpected message: %s\n", name, err); return 0; }
    return 1;
}

static void test_tokenizer_corrupt(void) {
    size_t n;
    unsigned char* f = read_file(tmp_path("tok.bin"), &n);
    if (!f) { check(0, "tok_corrupt_rejected", "no saved tokenizer"); return; }
    unsigned char* c = (unsigned char*)malloc(n);
    int32_t* h = (int32_t*)c;
    int ok = 1;
    Tokenizer t;
    char err[1024] = "";
    ok &= tokenizer_load(&t, tmp_path("missing.bin"), err, sizeof err) != 0 && contains(err, "missing.bin", "No such file");
    ok &= bad_tok("t_empty.bin", f, 0, "truncated", "header");
    ok &= bad_tok("t_short.bin", f, 100, "truncated", NULL);
    ok &= bad_tok("t_trunc.bin", f, n - 5, "truncated", "expected");
    memcpy(c, f, n); h[0] = 123;
    ok &= bad_tok("t_magic.bin", c, n, "not a tokenizer", "20240601");
    memcpy(c, f, n); h[0] = SHARD_MAGIC;
    ok &= bad_tok("t_shard.bin", c, n, "token shard", NULL);
    memcpy(c, f, n); h[1] = 9;
    ok &= bad_tok("t_version.bin", c, n, "version 9", NULL);
    memcpy(c, f, n); h[2] = 600;
    ok &= bad_tok("t_vocab.bin", c, n, "inconsistent", NULL);
    memcpy(c, f, n); c[DATA_HEADER_BYTES + 40] ^= 1;
    ok &= bad_tok("t_flip.bin", c, n, "corrupted", "fingerprint");
    /* structurally bad merges with a matching fingerprint */
    memcpy(c, f, n);
    int32_t* mg = (int32_t*)(c + DATA_HEADER_BYTES);
    mg[2 * 5] = 256 + 7; /* merge 5 uses the id of merge 7 */
    h[6] = (int32_t)tok_fingerprint(mg, h[4], h[2]);
    ok &= bad_tok("t_future.bin", c, n, "merge 5", "only ids");
    memcpy(c, f, n);
    mg[2 * 9] = mg[2 * 3]; mg[2 * 9 + 1] = mg[2 * 3 + 1];
    h[6] = (int32_t)tok_fingerprint(mg, h[4], h[2]);
    ok &= bad_tok("t_dup.bin", c, n, "merge 9 repeats", "merge 3");
    check(ok, "tok_corrupt_rejected", "see lines above");
    free(c);
    free(f);
}

/* ------------------------------------------------------------------------------------------- */
static int bad_shard(const char* name, const void* bytes, size_t n, const char* k1, const char* k2) {
    const char* p = tmp_path(name);
    write_bytes(p, bytes, n);
    ShardInfo in;
    char err[1024] = "";
    int rc = shard_open(p, &in, err, sizeof err);
    if (rc == 0) { printf("  %s: accepted\n", name); return 0; }
    if (!contains(err, p, k1) || (k2 && !strstr(err, k2))) { printf("  %s: unexpected message: %s\n", name, err); return 0; }
    return 1;
}

static void test_shards(void) {
    char err[1024] = "";
    int32_t toks[1000];
    for (int i = 0; i < 1000; i++) toks[i] = (i * 37) % 4096;
    const char* p16 = tmp_path("s16.bin");
    int32_t* back = NULL;
    ShardInfo in;
    int rc = shard_write(p16, toks, 1000, 4096, 0xABCD, err, sizeof err);
    rc = rc ? rc : shard_read(p16, 4096, &back, &in, err, sizeof err);
    int ok = rc == 0 && in.version == 1 && in.ntok == 1000 && in.vocab == 4096 && in.tok_hash == 0xABCD &&
             in.file_bytes == 1024 + 2000 && memcmp(back, toks, sizeof toks) == 0;
    free(back);
    check(ok, "shard_roundtrip_u16", "%s", rc ? err : "content or header differs");

    for (int i = 0; i < 1000; i++) toks[i] = (i * 7919) % 100000;
    const char* p32 = tmp_path("s32.bin");
    rc = shard_write(p32, toks, 1000, 100000, 0, err, sizeof err);
    rc = rc ? rc : shard_read(p32, 100000, &back, &in, err, sizeof err);
    ok = rc == 0 && in.version == 2 && in.tok_bytes == 4 && in.file_bytes == 1024 + 4000 && memcmp(back, toks, sizeof toks) == 0;
    free(back);
    check(ok, "shard_roundtrip_u32", "%s", rc ? err : "content or header differs");

    /* bad files */
    size_t n;
    unsigned char* f = read_file(p16, &n);
    unsigned char* c = (unsigned char*)malloc(n + 16);
    int32_t* h = (int32_t*)c;
    ShardInfo si;
    ok = shard_open(tmp_path("nope.bin"), &si, err, sizeof err) != 0 && contains(err, "nope.bin", "No such file");
    ok &= bad_shard("b_empty.bin", f, 0, "truncated", "1024-byte header");
    memcpy(c, f, n); h[2] = 0;
    ok &= bad_shard("b_zero.bin", c, 1024, "empty", "0 tokens");
    ok &= bad_shard("b_trunc.bin", f, n - 2, "truncated", "1000 tokens");
    memcpy(c, f, n); h[2] = 5000;
    ok &= bad_shard("b_over.bin", c, n, "truncated", "5000 tokens");
    memcpy(c, f, n); h[3] = 1; /* ntok >= 2^32: must not overflow */
    ok &= bad_shard("b_huge.bin", c, n, "truncated", "4294968296");
    memcpy(c, f, n); memset(c + n, 0, 16);
    ok &= bad_shard("b_long.bin", c, n + 16, "16 bytes after", NULL);
    memcpy(c, f, n); h[0] = 20240326;
    ok &= bad_shard("b_magic.bin", c, n, "not a token shard", "20240520");
    memcpy(c, f, n); h[1] = 7;
    ok &= bad_shard("b_version.bin", c, n, "unsupported version 7", NULL);
    check(ok, "shard_bad_files_rejected", "see lines above");

    /* token >= vocab: first bad id, its position and the file */
    memcpy(c, f, n);
    ((uint16_t*)(c + 1024))[500] = 9999;
    ((uint16_t*)(c + 1024))[700] = 9998;
    write_bytes(tmp_path("b_tok.bin"), c, n);
    rc = shard_read(tmp_path("b_tok.bin"), 4096, &back, NULL, err, sizeof err);
    ok = rc != 0 && contains(err, "b_tok.bin", "9999 at position 500") && back == NULL;
    rc = shard_write(tmp_path("w_bad.bin"), toks, 10, 50, 0, err, sizeof err);
    ok = ok && rc != 0 && strstr(err, "outside [0, 50)");
    /* a uint32 id >= 2^31 is rejected even without a vocabulary */
    memset(c, 0, 1024 + 16);
    h[0] = SHARD_MAGIC; h[1] = 2; h[2] = 4;
    ((uint32_t*)(c + 1024))[2] = 0x80000000u;
    write_bytes(tmp_path("b_neg.bin"), c, 1024 + 16);
    rc = shard_read(tmp_path("b_neg.bin"), 0, &back, NULL, err, sizeof err);
    ok = ok && rc != 0 && contains(err, "b_neg.bin", "2147483648 at position 2");
    check(ok, "shard_token_range", "%s", err);

    /* 64-bit sizes: header math for > 2^32 tokens without writing 8 GB */
    int32_t hh[DATA_HEADER_INTS];
    memset(hh, 0, sizeof hh);
    uint64_t big = 5000000000ull;
    hh[0] = SHARD_MAGIC; hh[1] = 1; hh[2] = (int32_t)(uint32_t)big; hh[3] = (int32_t)(big >> 32);
    rc = shard_check_header("big.bin", hh, 1024 + 2 * big, &si, err, sizeof err);
    ok = rc == 0 && si.ntok == big;
    rc = shard_check_header("big.bin", hh, 1024 + 2 * big - 2, &si, err, sizeof err);
    check(ok && rc != 0, "shard_64bit_sizes", "5e9-token header misread: %s", err);
    free(c);
    free(f);
}

/* ------------------------------------------------------------------------------------------- */
/* Test shards for the loader: token value = shard * 100000 + position, so a row tells exactly
   which sample it is. Sizes differ so that samples per shard differ. */
#define DLV (1 << 20)
static const int g_sizes[3] = {333, 170, 257};
static void make_loader_shards(void) {
    char err[512];
    int32_t buf[400];
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < g_sizes[s]; i++) buf[i] = s * 100000 + i;
        char name[64];
        snprintf(name, sizeof name, "ld_%d.bin", s);
        if (shard_write(tmp_path(name), buf, (uint64_t)g_sizes[s], DLV, 0, err, sizeof err) != 0) printf("  %s\n", err);
    }
}

static int read_batches(DataLoader* dl, int nb, int* xs, int* ys) {
    size_t n = (size_t)dl->B * dl->T;
    for (int i = 0; i < nb; i++)
        if (dataloader_next(dl, xs + i * n, ys + i * n) != 1) return 0;
    return 1;
}

/* a row is valid if inputs are consecutive positions of one shard and targets are inputs + 1 */
static int row_ok(const int* x, const int* y, int T) {
    for (int i = 0; i < T; i++) {
        if (x[i] != x[0] + i || y[i] != x[i] + 1) return 0;
    }
    return (x[0] % 100000) % T == 0;
}

static void test_loader(void) {
    make_loader_shards();
    const char* pat = tmp_path("ld_*.bin");
    const int B = 4, T = 8, NB = 75;
    int total = 0;
    for (int s = 0; s < 3; s++) total += (g_sizes[s] - 1) / T;
    int* xa = (int*)malloc(sizeof(int) * NB * B * T * 4);
    int* ya = (int*)malloc(sizeof(int) * NB * B * T * 4);
    int* xb = (int*)malloc(sizeof(int) * NB * B * T * 4);
    int* yb = (int*)malloc(sizeof(int) * NB * B * T * 4);
    size_t bytes = sizeof(int) * NB * B * T;
    DataLoader a, b;
    int ok;

    /* same seed -> same batches, with and without prefetch; other seed -> different */
    ok = dataloader_init(&a, pat, B, T, 0, 1, DLV, 1, 42, 1) == 0 && dataloader_init(&b, pat, B, T, 0, 1, DLV, 1, 42, 0) == 0;
    ok = ok && read_batches(&a, NB, xa, ya) && read_batches(&b, NB, xb, yb) && !memcmp(xa, xb, bytes) && !memcmp(ya, yb, bytes);
    dataloader_free(&b);
    int valid = ok;
    for (int r = 0; valid && r < NB * B; r++) valid = row_ok(xa + r * T, ya + r * T, T);
    check(ok && valid, "dl_same_seed_same_batches", "%s", ok ? "rows are not consecutive tokens" : a.err);
    ok = dataloader_init(&b, pat, B, T, 0, 1, DLV, 1, 43, 1) == 0 && read_batches(&b, NB, xb, yb);
    check(ok && memcmp(xa, xb, bytes) != 0, "dl_other_seed_other_batches", "%s", ok ? "identical" : b.err);
    dataloader_free(&b);
    dataloader_free(&a);

    /* coverage: each epoch visits every sample exactly once (the stream is epoch after epoch) */
    int* seen = (int*)calloc(3 * 100000, sizeof(int));
    int epochs_ok = 1, shuffled = 0;
    for (int e = 0; e < 3; e++) {
        memset(seen, 0, 3 * 100000 * sizeof(int));
        for (int k = 0; k < total; k++) {
            int id = xa[(size_t)(e * total + k) * T];
            if (seen[id]++) epochs_ok = 0;
            if (k > 0 && id != xa[(size_t)(e * total + k - 1) * T] + T) shuffled = 1;
        }
    }
    check(NB * B >= 3 * total && epochs_ok && shuffled, "dl_epoch_coverage", "samples repeat within an epoch or are not shuffled");
    free(seen);

    /* rank slicing: W ranks of B rows == one rank of W*B rows, row for row */
    const int W = 3;
    DataLoader big, rk[3];
    ok = dataloader_init(&big, pat, W * B, T, 0, 1, DLV, 1, 5, 1) == 0;
    for (int r = 0; r < W; r++) ok = ok && dataloader_init(&rk[r], pat, B, T, r, W, DLV, 1, 5, r % 2) == 0;
    int steps = 12;
    for (int s = 0; ok && s < steps; s++) {
        ok = read_batches(&big, 1, xa, ya);
        for (int r = 0; ok && r < W; r++)
            ok = read_batches(&rk[r], 1, xb + r * B * T, yb + r * B * T);
        ok = ok && !memcmp(xa, xb, sizeof(int) * W * B * T) && !memcmp(ya, yb, sizeof(int) * W * B * T);
    }
    check(ok, "dl_rank_slicing", "rank batches differ from the 1-rank batch");
    dataloader_free(&big);
    for (int r = 0; r < W; r++) dataloader_free(&rk[r]);

    /* resume: save mid-epoch, restore in a fresh loader, the next batches are identical */
    DataLoader c, d;
    memset(&d, 0, sizeof d);
    ok = dataloader_init(&c, pat, B, T, 0, 1, DLV, 1, 9, 1) == 0 && read_batches(&c, 7, xa, ya);
    DataLoaderState st = dataloader_state(&c);
    ok = ok && read_batches(&c, 30, xa, ya);
    ok = ok && dataloader_init(&d, pat, B, T, 0, 1, DLV, 1, 1234, 1) == 0 && read_batches(&d, 3, xb, yb);
    ok = ok && dataloader_restore(&d, &st) == 0 && read_batches(&d, 30, xb, yb) && !memcmp(xa, xb, sizeof(int) * 30 * B * T);
    /* and rewinding the same loader (prefetch thread restarted mid-flight) */
    ok = ok && dataloader_restore(&c, &st) == 0 && read_batches(&c, 30, xb, yb) && !memcmp(xa, xb, sizeof(int) * 30 * B * T);
    check(ok, "dl_resume", "%s", "batches after restore differ");
    dataloader_free(&d);
    /* a state from other data is refused */
    ok = dataloader_init(&d, pat, B, T + 1, 0, 1, DLV, 1, 9, 0) == 0;
    check(ok && dataloader_restore(&d, &st) != 0 && strstr(d.err, "other shards"), "dl_resume_other_data_refused", "%s", d.err);
    dataloader_free(&d);
    dataloader_free(&c);

    /* eval: file order, one pass of floor(samples / B) batches, then 0, reset repeats it */
    DataLoader ev;
    ok = evalloader_init(&ev, pat, B, T, 0, 1, DLV, 1) == 0;
    int nb = ok ? (int)dataloader_num_batches(&ev) : 0;
    ok = ok && nb == total / B && read_batches(&ev, nb, xa, ya);
    int expect_shard = 0, expect_pos = 0;
    for (int r = 0; ok && r < nb * B; r++) {
        ok = xa[r * T] == expect_shard * 100000 + expect_pos * T && row_ok(xa + r * T, ya + r * T, T);
        if (++expect_pos == (g_sizes[expect_shard] - 1) / T) { expect_shard++; expect_pos = 0; }
    }
    ok = ok && dataloader_next(&ev, xb, yb) == 0 && dataloader_next(&ev, xb, yb) == 0;
    dataloader_reset(&ev);
    ok = ok && dataloader_next(&ev, xb, yb) == 1 && !memcmp(xa, xb, sizeof(int) * B * T);
    check(ok, "dl_eval_pass", "%s", ev.err);
    dataloader_free(&ev);
    /* eval over 2 ranks: the union of both ranks' rows is the 1-rank pass */
    DataLoader e0, e1;
    ok = evalloader_init(&e0, pat, B, T, 0, 2, DLV, 0) == 0 && evalloader_init(&e1, pat, B, T, 1, 2, DLV, 1) == 0;
    int nb2 = ok ? (int)dataloader_num_batches(&e0) : 0;
    for (int s = 0; ok && s < nb2; s++)
        ok = dataloader_next(&e0, xb, yb) == 1 && dataloader_next(&e1, xb + B * T, yb + B * T) == 1 &&
             !memcmp(xb, xa + s * 2 * B * T, sizeof(int) * 2 * B * T);
    ok = ok && dataloader_next(&e0, xb, yb) == 0 && dataloader_next(&e1, xb, yb) == 0;
    check(ok && nb2 == total / (2 * B), "dl_eval_ranks", "2-rank eval differs from 1-rank eval");
    dataloader_free(&e0);
    dataloader_free(&e1);

    /* token >= vocab: the error names the file, the id and its position */
    char err[512];
    int32_t small[100];
    for (int i = 0; i < 100; i++) small[i] = i;
    small[50] = 5000;
    shard_write(tmp_path("ov_0.bin"), small, 100, 0, 0, err, sizeof err); /* header vocab unknown */
    small[50] = 50;
    ok = dataloader_init(&c, tmp_path("ov_*.bin"), 2, 8, 0, 1, 1000, 0, 0, 1) == 0;
    ok = ok && dataloader_next(&c, xb, yb) < 0 && contains(c.err, "ov_0.bin", "token id 5000 at position 50 is >= vocabulary size 1000");
    check(ok, "dl_token_over_vocab_rejected", "%s", c.err);
    dataloader_free(&c);
    /* the header says the shard's vocab is larger than the model's */
    shard_write(tmp_path("hv_0.bin"), small, 20, 70000, 0, err, sizeof err);
    ok = dataloader_init(&c, tmp_path("hv_*.bin"), 1, 8, 0, 1, 4096, 0, 0, 0) != 0 && contains(c.err, "hv_0.bin", "70000");
    check(ok, "dl_header_vocab_rejected", "%s", c.err);

    /* a shard shorter than T+1 tokens, and a pattern with no match */
    shard_write(tmp_path("sh_0.bin"), small, 8, 100, 0, err, sizeof err);
    ok = dataloader_init(&c, tmp_path("sh_*.bin"), 1, 8, 0, 1, 100, 0, 0, 1) != 0 && contains(c.err, "sh_0.bin", "T+1 = 9");
    ok = ok && dataloader_init(&c, tmp_path("zz_*.bin"), 1, 8, 0, 1, 100, 0, 0, 1) != 0 && contains(c.err, "zz_*.bin", "no token shards");
    ok = ok && evalloader_init(&c, tmp_path("sh_*.bin"), 2, 7, 0, 1, 100, 1) != 0 && strstr(c.err, "fewer than one batch");
    ok = ok && dataloader_init(&c, pat, 0, 8, 0, 1, DLV, 0, 0, 1) != 0 && strstr(c.err, "B=0");
    /* a shard that breaks after init (truncated on disk) is reported when first used */
    write_bytes(tmp_path("cut_0.bin"), "", 0);
    shard_write(tmp_path("cut_0.bin"), small, 20, 100, 0, err, sizeof err);
    ok = ok && dataloader_init(&c, tmp_path("cut_*.bin"), 1, 8, 0, 1, 100, 0, 0, 0) == 0;
    if (ok) {
        truncate(tmp_path("cut_0.bin"), 1030);
        ok = dataloader_next(&c, xb, yb) < 0 && contains(c.err, "cut_0.bin", "changed size");
        dataloader_free(&c);
    }
    /* ... and a shard cut while open gives a read error, not SIGBUS */
    shard_write(tmp_path("cut_0.bin"), small, 100, 100, 0, err, sizeof err);
    ok = ok && dataloader_init(&c, tmp_path("cut_*.bin"), 1, 8, 0, 1, 100, 0, 0, 0) == 0 && dataloader_next(&c, xb, yb) == 1;
    if (ok) {
        truncate(tmp_path("cut_0.bin"), 1040);
        int st3 = 1;
        for (int i = 0; i < 20 && st3 == 1; i++) st3 = dataloader_next(&c, xb, yb);
        ok = st3 < 0 && contains(c.err, "cut_0.bin", "truncated after");
    }
    dataloader_free(&c);
    check(ok, "dl_bad_inputs_rejected", "%s", c.err);

    free(xa); free(ya); free(xb); free(yb);
}

static void test_synthetic(void) {
    const int B = 8, T = 64, V = 512, NB = 20;
    DataLoader s1, s2, sv;
    int* x = (int*)malloc(sizeof(int) * B * T * NB);
    int* y = (int*)malloc(sizeof(int) * B * T * NB);
    int* x2 = (int*)malloc(sizeof(int) * B * T * NB);
    int* y2 = (int*)malloc(sizeof(int) * B * T * NB);
    int ok = dataloader_init_synthetic(&s1, B, T, 0, 1, V, 0, 1, 1) == 0 && dataloader_init_synthetic(&s2, B, T, 0, 1, V, 0, 1, 0) == 0;
    ok = ok && read_batches(&s1, NB, x, y) && read_batches(&s2, NB, x2, y2) && !memcmp(x, x2, sizeof(int) * B * T * NB);
    /* ids in range; after a separator the model can copy: the token after "sep" equals the one
       that followed the preceding EOT */
    int copies = 0, copy_ok = 1;
    for (int r = 0; ok && r < NB * B; r++) {
        const int* xr = x + r * T;
        for (int i = 0; i < T; i++) {
            ok = ok && xr[i] >= 0 && xr[i] < V && y[r * T + i] >= 0 && y[r * T + i] < V;
            if (i + 1 < T) ok = ok && y[r * T + i] == xr[i + 1];
        }
        for (int i = 0; i < T; i++) {
            if (xr[i] != V - 1) continue;
            int L = 0;
            while (i + 1 + L < T && xr[i + 1 + L] != 0) L++;
            if (i + 2 + 2 * L > T) break;
            for (int j = 0; j < L; j++) copy_ok &= xr[i + 2 + L + j] == xr[i + 1 + j];
            copies++;
        }
    }
    /* validation split: other documents, one pass */
    int nv = 0, st = 1;
    int vok = dataloader_init_synthetic(&sv, B, T, 0, 1, V, 1, 1, 1) == 0;
    while (vok && (st = dataloader_next(&sv, x2, y2)) == 1) nv++;
    vok = vok && st == 0 && (uint64_t)nv == dataloader_num_batches(&sv) && nv > 0 && memcmp(x2, x, sizeof(int) * B * T) != 0;
    if (!vok) printf("  synthetic val: %d batches, status %d: %s\n", nv, st, sv.err);
    ok = ok && vok;
    dataloader_free(&sv);
    double fl = dataloader_synthetic_floor(V);
    check(ok && copies > 50 && copy_ok && fl > 0.5 && fl < 3.0, "dl_synthetic", "synthetic batches wrong (copies %d, floor %.3f): %s",
          copies, fl, s1.err);
    dataloader_free(&s1);
    dataloader_free(&s2);
    free(x); free(y); free(x2); free(y2);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (check_tmpdir(g_dir, sizeof g_dir, "test_data")) return 1;
    test_tokenizer();
    test_tokenizer_corrupt();
    test_shards();
    test_full_disk();
    test_loader();
    test_synthetic();
    tokenizer_free(&g_tok);
    check_rmdir(g_dir);
    return check_summary("test_data");
}
