/*
 * tokenizer.h — owns the byte-level BPE tokenizer: text pre-splitting, training, the tokenizer
 * file (save / validated load), encoding (with a chunk cache) and decoding.
 * Plain C11 / C++17, header-only. Functions that can fail return 0 / -1 with a message in err
 * naming the file and what was expected; they never exit.
 *
 * Ids: 0..255 are the raw bytes, 256+i is merge i, and the last id (vocab_size-1) is the
 * end-of-text token EOT, which encoding never produces and which decodes to no bytes (callers
 * that want a visible marker pass eot_text to tokenizer_decode). So vocab_size = 256 + merges + 1,
 * and any byte string (invalid UTF-8, NULs) encodes and decodes back to itself exactly.
 *
 * Pre-split (same for training and encoding, BPE never merges across chunks): a chunk is
 *   an optional single ' ' followed by a run of letters (A-Z a-z and every byte >= 0x80),
 *   or digits, or other symbols; or a run of whitespace (minus a final ' ' that starts the next
 *   word). Chunks are cut at TOK_MAX_CHUNK bytes, so tokens are at most that long.
 *
 * Tokenizer file (little endian): int32 header[256]: [0] 20240601 (TOK_MAGIC), [1] version 1,
 *   [2] vocab_size, [3] eot id (= vocab_size-1), [4] number of merges (= vocab_size-257),
 *   [5] TOK_MAX_CHUNK used by the pre-split, [6] fingerprint (FNV-1a of vocab and merges),
 *   then merges as int32 pairs (left, right), merge i producing id 256+i.
 */
#ifndef COMMON_TOKENIZER_H
#define COMMON_TOKENIZER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "shard.h" /* data_error, datafile_open, header constants */

#define TOK_MAGIC 20240601
#define TOK_VERSION 1
#define TOK_MIN_VOCAB 257
#define TOK_MAX_VOCAB (1 << 20)
#define TOK_MAX_CHUNK 64
#define TOK_CACHE_MAX_ENTRIES (1u << 19) /* the encode cache is cleared when it reaches this size */

/* ---------------------------------------------------------------------------------------------
 * Pre-split
 * ------------------------------------------------------------------------------------------- */
enum { TOK_LETTER = 0, TOK_DIGIT = 1, TOK_SPACE = 2, TOK_OTHER = 3 };

static inline int tok_class(unsigned c) {
    if (c >= 0x80u || (unsigned)((c | 32u) - 'a') < 26u) return TOK_LETTER;
    if ((unsigned)(c - '0') < 10u) return TOK_DIGIT;
    if (c == ' ' || (unsigned)(c - 9u) < 5u) return TOK_SPACE; /* \t \n \v \f \r */
    return TOK_OTHER;
}

/* Length of the chunk that starts at p (n > 0 bytes left). */
static inline size_t tok_next_chunk(const unsigned char* p, size_t n) {
    size_t max = n < TOK_MAX_CHUNK ? n : TOK_MAX_CHUNK;
    size_t i = 0;
    int c = tok_class(p[0]);
    if (p[0] == ' ' && max > 1 && tok_class(p[1]) != TOK_SPACE) { i = 1; c = tok_class(p[1]); }
    while (i < max && tok_class(p[i]) == c) i++;
    /* a whitespace run gives its last ' ' to the word that follows, like GPT-2 */
    if (c == TOK_SPACE && i > 1 && i < n && p[i - 1] == ' ' && tok_class(p[i]) != TOK_SPACE) i--;
    return i;
}

static inline uint64_t tok_hash_bytes(const unsigned char* p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

/* ---------------------------------------------------------------------------------------------
 * Byte-string -> uint64 hash map (open addressing). Used for chunk counts (training) and the
 * chunk -> tokens cache (encoding). Keys live in one byte arena; key field = off << 8 | len.
 * ------------------------------------------------------------------------------------------- */
typedef struct { uint64_t hash, key, val; } TokStrEntry;
typedef struct {
    TokStrEntry* e;
    size_t cap, n; /* cap is a power of 2; n entries used */
    unsigned char* bytes;
    size_t nbytes, capbytes;
} TokStrMap;

static inline void tok_strmap_free(TokStrMap* m) {
    free(m->e);
    free(m->bytes);
    memset(m, 0, sizeof *m);
}
static inline void tok_strmap_clear(TokStrMap* m) {
    if (m->e) memset(m->e, 0, m->cap * sizeof(TokStrEntry));
    m->n = 0;
    m->nbytes = 0;
}
static inline int tok_strmap_grow(TokStrMap* m) {
    size_t ncap = m->cap ? m->cap * 2 : 4096;
    TokStrEntry* ne = (TokStrEntry*)calloc(ncap, sizeof(TokStrEntry));
    if (!ne) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].key) continue;
        size_t j = (size_t)m->e[i].hash & (ncap - 1);
        while (ne[j].key) j = (j + 1) & (ncap - 1);
        ne[j] = m->e[i];
    }
    free(m->e);
    m->e = ne;
    m->cap = ncap;
    return 0;
}
/* Finds key p[0..n) (n in 1..255); inserts it with val 0 if absent (*inserted = 1). NULL on OOM. */
static inline TokStrEntry* tok_strmap_get(TokStrMap* m, const unsigned char* p, size_t n, uint64_t h, int* inserted) {
    *inserted = 0;
    if (m->cap) {
        size_t j = (size_t)h & (m->cap - 1);
        for (; m->e[j].key; j = (j + 1) & (m->cap - 1)) {
            TokStrEntry* e = m->e + j;
            if (e->hash == h && (e->key & 255) == n && memcmp(m->bytes + (e->key >> 8), p, n) == 0) return e;
        }
    }
    if (2 * (m->n + 1) > m->cap && tok_strmap_grow(m) != 0) return NULL;
    if (m->nbytes + n > m->capbytes) {
        size_t nc = m->capbytes ? m->capbytes * 2 : 65536;
        while (nc < m->nbytes + n) nc *= 2;
        unsigned char* nb = (unsigned char*)realloc(m->bytes, nc);
        if (!nb) return NULL;
        m->bytes = nb;
        m->capbytes = nc;
    }
    memcpy(m->bytes + m->nbytes, p, n);
    size_t j = (size_t)h & (m->cap - 1);
    while (m->e[j].key) j = (j + 1) & (m->cap - 1);
    m->e[j].hash = h;
    m->e[j].key = ((uint64_t)m->nbytes << 8) | n;
    m->e[j].val = 0;
    m->nbytes += n;
    m->n++;
    *inserted = 1;
    return m->e + j;
}

/* ---------------------------------------------------------------------------------------------
 * Chunk -> ids cache of the encoders (this file's and tokenizer_json.h's): the ids of each chunk in
 * one array, the map's value = offset << 8 | count. Cleared when it reaches TOK_CACHE_MAX_ENTRIES.
 * ------------------------------------------------------------------------------------------- */
typedef struct { TokStrMap map; int32_t* toks; size_t ntoks, captoks; } TokCache;

static inline void tok_cache_free(TokCache* c) {
    tok_strmap_free(&c->map);
    free(c->toks);
    memset(c, 0, sizeof *c);
}
/* Finds chunk p[0..n) (n in 1..255). A new one has *fresh = 1 and *room = space for `max` ids, which
   the caller fills and then passes the count to tok_cache_commit. NULL when out of memory. */
static inline TokStrEntry* tok_cache_find(TokCache* c, const unsigned char* p, size_t n, size_t max, int32_t** room,
                                          int* fresh) {
    if (c->map.n >= TOK_CACHE_MAX_ENTRIES) { tok_strmap_clear(&c->map); c->ntoks = 0; }
    if (c->ntoks + max > c->captoks) { /* before inserting, so that a new entry always has its room */
        size_t nc = c->captoks ? c->captoks * 2 : 65536;
        while (nc < c->ntoks + max) nc *= 2;
        int32_t* nt = (int32_t*)realloc(c->toks, nc * sizeof(int32_t));
        if (!nt) return NULL;
        c->toks = nt;
        c->captoks = nc;
    }
    *room = c->toks + c->ntoks;
    return tok_strmap_get(&c->map, p, n, tok_hash_bytes(p, n), fresh);
}
static inline void tok_cache_commit(TokCache* c, TokStrEntry* e, size_t k) {
    e->val = ((uint64_t)c->ntoks << 8) | (uint64_t)k;
    c->ntoks += k;
}
/* Copies the ids of a cached chunk to out; returns their count. */
static inline size_t tok_cache_copy(const TokCache* c, const TokStrEntry* e, int32_t* out) {
    size_t k = (size_t)(e->val & 255);
    memcpy(out, c->toks + (e->val >> 8), k * sizeof(int32_t));
    return k;
}

/* ---------------------------------------------------------------------------------------------
 * Pair (a, b) -> int32 map (open addressing), key a << 32 | b, empty = ~0.
 * ------------------------------------------------------------------------------------------- */
#define TOK_PAIR_EMPTY (~(uint64_t)0)
typedef struct { uint64_t* keys; int32_t* vals; size_t cap, n; } TokPairMap;

static inline uint64_t tok_pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
static inline size_t tok_pair_slot(uint64_t k, size_t cap) {
    k *= 0x9E3779B97F4A7C15ull;
    return (size_t)(k ^ (k >> 32)) & (cap - 1);
}
static inline void tok_pairmap_free(TokPairMap* m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}
static inline int tok_pairmap_grow(TokPairMap* m) {
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    uint64_t* nk = (uint64_t*)malloc(ncap * sizeof(uint64_t));
    int32_t* nv = (int32_t*)malloc(ncap * sizeof(int32_t));
    if (!nk || !nv) { free(nk); free(nv); return -1; }
    memset(nk, 0xFF, ncap * sizeof(uint64_t));
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == TOK_PAIR_EMPTY) continue;
        size_t j = tok_pair_slot(m->keys[i], ncap);
        while (nk[j] != TOK_PAIR_EMPTY) j = (j + 1) & (ncap - 1);
        nk[j] = m->keys[i];
        nv[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    return 0;
}
/* Value of (a, b) or -1 if absent. */
static inline int32_t tok_pairmap_find(const TokPairMap* m, int32_t a, int32_t b) {
    uint64_t k = tok_pair_key(a, b);
    for (size_t j = tok_pair_slot(k, m->cap);; j = (j + 1) & (m->cap - 1)) {
        if (m->keys[j] == k) return m->vals[j];
        if (m->keys[j] == TOK_PAIR_EMPTY) return -1;
    }
}
/* Inserts (a, b) -> v if absent; returns the stored value (the old one if present), -2 on OOM. */
static inline int32_t tok_pairmap_put(TokPairMap* m, int32_t a, int32_t b, int32_t v) {
    if (2 * (m->n + 1) > m->cap && tok_pairmap_grow(m) != 0) return -2;
    uint64_t k = tok_pair_key(a, b);
    size_t j = tok_pair_slot(k, m->cap);
    for (; m->keys[j] != TOK_PAIR_EMPTY; j = (j + 1) & (m->cap - 1))
        if (m->keys[j] == k) return m->vals[j];
    m->keys[j] = k;
    m->vals[j] = v;
    m->n++;
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * Tokenizer
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    int vocab_size;       /* 256 + n_merges + 1 */
    int eot;              /* vocab_size - 1 */
    int n_merges;
    int32_t* merges;      /* [n_merges][2]: merge i joins (left, right) into id 256+i */
    uint32_t fingerprint; /* FNV-1a of vocab_size and merges; shards store it */
    uint32_t* tok_off;    /* [vocab_size] decode table: bytes of id t are bytes[tok_off[t] .. +tok_len[t]) */
    uint8_t* tok_len;
    unsigned char* bytes;
    TokPairMap rank;      /* (left, right) -> merge index */
    TokCache cache;       /* encode cache: chunk -> its ids */
} Tokenizer;

static inline void tokenizer_free(Tokenizer* t) {
    free(t->merges);
    free(t->tok_off);
    free(t->tok_len);
    free(t->bytes);
    tok_pairmap_free(&t->rank);
    tok_cache_free(&t->cache);
    memset(t, 0, sizeof *t);
}

static inline uint32_t tok_fingerprint(const int32_t* merges, int n_merges, int vocab) {
    uint32_t h = 2166136261u;
    int32_t v = vocab;
    const unsigned char* p = (const unsigned char*)&v;
    for (int i = 0; i < 4; i++) h = (h ^ p[i]) * 16777619u;
    p = (const unsigned char*)merges;
    for (size_t i = 0; i < (size_t)n_merges * 8; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Builds a tokenizer from merges (copied), validating them: `source` names where they came from. */
static inline int tokenizer_init_from_merges(Tokenizer* t, const int32_t* merges, int n_merges, const char* source,
                                             char* err, size_t errlen) {
    memset(t, 0, sizeof *t);
    if (n_merges < 0 || n_merges > TOK_MAX_VOCAB - TOK_MIN_VOCAB)
        return data_error(err, errlen, "%s: %d merges, expected 0..%d", source, n_merges, TOK_MAX_VOCAB - TOK_MIN_VOCAB);
    int V = 256 + n_merges + 1;
    t->vocab_size = V;
    t->eot = V - 1;
    t->n_merges = n_merges;
    t->merges = (int32_t*)malloc((size_t)n_merges * 2 * sizeof(int32_t) + 8);
    t->tok_off = (uint32_t*)malloc((size_t)V * sizeof(uint32_t));
    t->tok_len = (uint8_t*)malloc((size_t)V);
    t->bytes = (unsigned char*)malloc((size_t)V * TOK_MAX_CHUNK);
    if (!t->merges || !t->tok_off || !t->tok_len || !t->bytes) {
        tokenizer_free(t);
        return data_error(err, errlen, "%s: out of memory for a vocabulary of %d", source, V);
    }
    if (n_merges) memcpy(t->merges, merges, (size_t)n_merges * 2 * sizeof(int32_t));
    size_t nb = 0;
    for (int i = 0; i < 256; i++) {
        t->tok_off[i] = (uint32_t)nb;
        t->tok_len[i] = 1;
        t->bytes[nb++] = (unsigned char)i;
    }
    for (int i = 0; i < n_merges; i++) {
        int32_t a = merges[2 * i], b = merges[2 * i + 1], id = 256 + i;
        if (a < 0 || b < 0 || a >= id || b >= id) {
            tokenizer_free(t);
            return data_error(err, errlen, "%s: merge %d joins (%d, %d), but only ids 0..%d exist before it", source, i, a, b, id - 1);
        }
        int la = t->tok_len[a], lb = t->tok_len[b];
        if (la + lb > TOK_MAX_CHUNK) {
            tokenizer_free(t);
            return data_error(err, errlen, "%s: merge %d makes a %d-byte token, longer than the %d-byte pre-split chunks",
                              source, i, la + lb, TOK_MAX_CHUNK);
        }
        int32_t prev = tok_pairmap_put(&t->rank, a, b, i);
        if (prev == -2) { tokenizer_free(t); return data_error(err, errlen, "%s: out of memory", source); }
        if (prev != i) {
            tokenizer_free(t);
            return data_error(err, errlen, "%s: merge %d repeats the pair (%d, %d) of merge %d", source, i, a, b, prev);
        }
        t->tok_off[id] = (uint32_t)nb;
        t->tok_len[id] = (uint8_t)(la + lb);
        memcpy(t->bytes + nb, t->bytes + t->tok_off[a], (size_t)la);
        memcpy(t->bytes + nb + la, t->bytes + t->tok_off[b], (size_t)lb);
        nb += (size_t)(la + lb);
    }
    if (!t->rank.cap && tok_pairmap_grow(&t->rank) != 0) {
        tokenizer_free(t);
        return data_error(err, errlen, "%s: out of memory", source);
    }
    t->tok_off[V - 1] = (uint32_t)nb; /* EOT: no bytes */
    t->tok_len[V - 1] = 0;
    t->fingerprint = tok_fingerprint(t->merges, n_merges, V);
    return 0;
}

static inline int tokenizer_save(const Tokenizer* t, const char* path, char* err, size_t errlen) {
    int32_t h[DATA_HEADER_INTS];
    memset(h, 0, sizeof h);
    h[0] = TOK_MAGIC;
    h[1] = TOK_VERSION;
    h[2] = t->vocab_size;
    h[3] = t->eot;
    h[4] = t->n_merges;
    h[5] = TOK_MAX_CHUNK;
    h[6] = (int32_t)t->fingerprint;
    char tmp[ATOMIC_PATH_MAX];   /* replaced atomically (atomic_file.h): a failed save keeps the old file */
    FILE* f = atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) return -1;
    int ok = fwrite(h, sizeof h, 1, f) == 1;
    if (ok && t->n_merges) ok = fwrite(t->merges, sizeof(int32_t) * 2, (size_t)t->n_merges, f) == (size_t)t->n_merges;
    return atomic_commit(f, ok, tmp, path, err, errlen) ? -1 : 0;
}

static inline int tokenizer_load(Tokenizer* t, const char* path, char* err, size_t errlen) {
    int32_t h[DATA_HEADER_INTS];
    uint64_t bytes = 0;
    memset(t, 0, sizeof *t);
    FILE* f = datafile_open(path, "tokenizer file", h, &bytes, err, errlen);
    if (!f) return -1;
    int rc = -1;
    int32_t* merges = NULL;
    if (h[0] != TOK_MAGIC) {
        data_error(err, errlen, "'%s' is not a tokenizer file: magic %d, expected %d%s", path, h[0], TOK_MAGIC,
                   h[0] == SHARD_MAGIC ? " (it is a token shard)" : "");
    } else if (h[1] != TOK_VERSION) {
        data_error(err, errlen, "tokenizer file '%s' has version %d, this build reads version %d", path, h[1], TOK_VERSION);
    } else if (h[2] < TOK_MIN_VOCAB || h[2] > TOK_MAX_VOCAB || h[3] != h[2] - 1 || h[4] != h[2] - TOK_MIN_VOCAB) {
        data_error(err, errlen, "tokenizer file '%s' has an inconsistent header: vocab %d, eot %d, merges %d "
                   "(expected vocab in %d..%d, eot = vocab-1, merges = vocab-257)", path, h[2], h[3], h[4],
                   TOK_MIN_VOCAB, TOK_MAX_VOCAB);
    } else if (h[5] != TOK_MAX_CHUNK) {
        data_error(err, errlen, "tokenizer file '%s' was made with %d-byte chunks, this build splits at %d", path, h[5], TOK_MAX_CHUNK);
    } else if (bytes != DATA_HEADER_BYTES + (uint64_t)h[4] * 8) {
        data_error(err, errlen, "tokenizer file '%s' is %s: expected %llu bytes (%d-byte header + %d merges x 8 bytes), found %llu",
                   path, bytes < DATA_HEADER_BYTES + (uint64_t)h[4] * 8 ? "truncated" : "too long",
                   (unsigned long long)(DATA_HEADER_BYTES + (uint64_t)h[4] * 8), DATA_HEADER_BYTES, h[4], (unsigned long long)bytes);
    } else if (!(merges = (int32_t*)malloc((size_t)h[4] * 8 + 8))) {
        data_error(err, errlen, "out of memory loading tokenizer file '%s'", path);
    } else if (fread(merges, 8, (size_t)h[4], f) != (size_t)h[4]) {
        data_error(err, errlen, "read error in tokenizer file '%s'", path);
    } else if (tok_fingerprint(merges, h[4], h[2]) != (uint32_t)h[6]) {
        data_error(err, errlen, "tokenizer file '%s' is corrupted: its merges do not match the fingerprint in its header", path);
    } else {
        rc = tokenizer_init_from_merges(t, merges, h[4], path, err, errlen);
    }
    free(merges);
    fclose(f);
    return rc;
}

/* Bytes of one id (EOT: length 0); NULL for ids outside the vocabulary. */
static inline const unsigned char* tokenizer_token_bytes(const Tokenizer* t, int id, size_t* len) {
    if (id < 0 || id >= t->vocab_size) { *len = 0; return NULL; }
    *len = t->tok_len[id];
    return t->bytes + t->tok_off[id];
}

/* Writes the bytes of ids[0..n) into out (at most cap bytes; EOT writes eot_text, or nothing if
   NULL). Returns the total length the full text needs, or -1 if an id is outside the vocabulary. */
static inline long long tokenizer_decode(const Tokenizer* t, const int32_t* ids, size_t n, char* out, size_t cap,
                                         const char* eot_text) {
    size_t total = 0, elen = eot_text ? strlen(eot_text) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char* p = tokenizer_token_bytes(t, ids[i], &len);
        if (!p) return -1;
        if (ids[i] == t->eot) { p = (const unsigned char*)eot_text; len = elen; }
        if (total < cap && len) memcpy(out + total, p, len <= cap - total ? len : cap - total);
        total += len;
    }
    return (long long)total;
}

/* BPE of one chunk (n <= TOK_MAX_CHUNK bytes) into out; returns the count. Applies the
   lowest-ranked mergeable pair first, all its occurrences left to right, like training did. */
static inline int tok_bpe_chunk(const Tokenizer* t, const unsigned char* p, int n, int32_t* out) {
    for (int i = 0; i < n; i++) out[i] = p[i];
    while (n >= 2) {
        int32_t best = INT32_MAX;
        int at = -1;
        for (int i = 0; i + 1 < n; i++) {
            int32_t r = tok_pairmap_find(&t->rank, out[i], out[i + 1]);
            if (r >= 0 && r < best) { best = r; at = i; }
        }
        if (at < 0) break;
        int32_t a = out[at], b = out[at + 1], id = 256 + best;
        int j = at;
        for (int i = at; i < n;) {
            if (i + 1 < n && out[i] == a && out[i + 1] == b) { out[j++] = id; i += 2; }
            else out[j++] = out[i++];
        }
        n = j;
    }
    return n;
}

/* Encodes n bytes into out, which must have room for n ids (never more ids than bytes).
   Returns the number of ids, or -1 if out of memory for the cache. Not thread-safe (the cache). */
static inline long long tokenizer_encode(Tokenizer* t, const void* text, size_t n, int32_t* out) {
    const unsigned char* p = (const unsigned char*)text;
    size_t nout = 0;
    for (size_t i = 0; i < n;) {
        size_t len = tok_next_chunk(p + i, n - i);
        if (len == 1) { out[nout++] = p[i++]; continue; }
        int fresh;
        int32_t* room;
        TokStrEntry* e = tok_cache_find(&t->cache, p + i, len, TOK_MAX_CHUNK, &room, &fresh);
        if (!e) return -1;
        if (fresh) tok_cache_commit(&t->cache, e, (size_t)tok_bpe_chunk(t, p + i, (int)len, room));
        nout += tok_cache_copy(&t->cache, e, out + nout);
        i += len;
    }
    return (long long)nout;
}

/* ---------------------------------------------------------------------------------------------
 * Training: count the distinct chunks of the texts, then merge the most frequent adjacent pair
 * repeatedly. Pair counts are kept up to date incrementally: each pair remembers the words it
 * occurs in, a merge rewrites only those words, and a max-heap with lazy deletion (stale entries
 * are skipped when popped) finds the next pair. Ties go to the smallest (left, right).
 * ------------------------------------------------------------------------------------------- */
typedef struct { int32_t a, b; int64_t count, saved; int32_t dirty, nw, capw; int32_t* words; } TokTrainPair;
typedef struct { int64_t count; uint64_t key; int32_t idx; } TokHeapItem;
typedef struct {
    int32_t* syms; size_t* woff; int32_t* wlen; int64_t* wfreq; size_t nwords;
    TokTrainPair* pairs; size_t npairs, cappairs;
    TokPairMap index;                 /* (a, b) -> index in pairs */
    TokHeapItem* heap; size_t nheap, capheap;
    int32_t* dirty; size_t ndirty, capdirty;
} TokTrainer;

static inline int tok_heap_before(const TokHeapItem* x, const TokHeapItem* y) {
    return x->count > y->count || (x->count == y->count && x->key < y->key);
}
static inline int tok_heap_push(TokTrainer* tr, int32_t idx) {
    if (tr->nheap == tr->capheap) {
        size_t nc = tr->capheap ? tr->capheap * 2 : 4096;
        TokHeapItem* nh = (TokHeapItem*)realloc(tr->heap, nc * sizeof(TokHeapItem));
        if (!nh) return -1;
        tr->heap = nh;
        tr->capheap = nc;
    }
    TokHeapItem it;
    it.count = tr->pairs[idx].count;
    it.key = tok_pair_key(tr->pairs[idx].a, tr->pairs[idx].b);
    it.idx = idx;
    size_t i = tr->nheap++;
    while (i > 0 && tok_heap_before(&it, &tr->heap[(i - 1) / 2])) { tr->heap[i] = tr->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    tr->heap[i] = it;
    return 0;
}
static inline TokHeapItem tok_heap_pop(TokTrainer* tr) {
    TokHeapItem top = tr->heap[0], last = tr->heap[--tr->nheap];
    size_t i = 0, n = tr->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && tok_heap_before(&tr->heap[c + 1], &tr->heap[c])) c++;
        if (!tok_heap_before(&tr->heap[c], &last)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n) tr->heap[i] = last;
    return top;
}

/* Adds delta to the count of (a, b) (creating it), marks it dirty, and records word w in its
   list when add_word. Returns -1 on OOM. */
static inline int tok_train_bump(TokTrainer* tr, int32_t a, int32_t b, int64_t delta, int32_t w, int add_word) {
    int32_t idx = tok_pairmap_put(&tr->index, a, b, (int32_t)tr->npairs);
    if (idx == -2) return -1;
    if ((size_t)idx == tr->npairs) {
        if (tr->npairs == tr->cappairs) {
            size_t nc = tr->cappairs ? tr->cappairs * 2 : 4096;
            TokTrainPair* np = (TokTrainPair*)realloc(tr->pairs, nc * sizeof(TokTrainPair));
            if (!np) return -1;
            tr->pairs = np;
            tr->cappairs = nc;
        }
        memset(&tr->pairs[idx], 0, sizeof(TokTrainPair));
        tr->pairs[idx].a = a;
        tr->pairs[idx].b = b;
        tr->npairs++;
    }
    TokTrainPair* pr = &tr->pairs[idx];
    if (!pr->dirty) {
        if (tr->ndirty == tr->capdirty) {
            size_t nc = tr->capdirty ? tr->capdirty * 2 : 1024;
            int32_t* nd = (int32_t*)realloc(tr->dirty, nc * sizeof(int32_t));
            if (!nd) return -1;
            tr->dirty = nd;
            tr->capdirty = nc;
        }
        tr->dirty[tr->ndirty++] = idx;
        pr->dirty = 1;
        pr->saved = pr->count;
    }
    pr->count += delta;
    if (add_word && (pr->nw == 0 || pr->words[pr->nw - 1] != w)) {
        if (pr->nw == pr->capw) {
            int32_t nc = pr->capw ? pr->capw * 2 : 4;
            int32_t* nw = (int32_t*)realloc(pr->words, (size_t)nc * sizeof(int32_t));
            if (!nw) return -1;
            pr->words = nw;
            pr->capw = nc;
        }
        pr->words[pr->nw++] = w;
    }
    return 0;
}

/* Pushes every pair whose count changed since it was marked dirty. */
static inline int tok_train_flush_dirty(TokTrainer* tr) {
    for (size_t i = 0; i < tr->ndirty; i++) {
        TokTrainPair* pr = &tr->pairs[tr->dirty[i]];
        pr->dirty = 0;
        if (pr->count != pr->saved && pr->count > 0 && tok_heap_push(tr, tr->dirty[i]) != 0) return -1;
    }
    tr->ndirty = 0;
    return 0;
}

/* Rewrites word w with (a, b) -> id and updates the pair counts. */
static inline int tok_train_merge_word(TokTrainer* tr, int32_t w, int32_t a, int32_t b, int32_t id) {
    int32_t* s = tr->syms + tr->woff[w];
    int n = tr->wlen[w];
    int found = 0;
    for (int i = 0; i + 1 < n && !found; i++) found = s[i] == a && s[i + 1] == b;
    if (!found) return 0; /* stale list entry: an earlier merge already rewrote this pair away */
    int64_t f = tr->wfreq[w];
    for (int i = 0; i + 1 < n; i++)
        if (tok_train_bump(tr, s[i], s[i + 1], -f, w, 0) != 0) return -1;
    int j = 0;
    for (int i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[j++] = id; i += 2; }
        else s[j++] = s[i++];
    }
    tr->wlen[w] = j;
    /* pairs with the new id are new to this word; the others were already listed */
    for (int i = 0; i + 1 < j; i++)
        if (tok_train_bump(tr, s[i], s[i + 1], f, w, s[i] == id || s[i + 1] == id) != 0) return -1;
    return 0;
}

static inline void tok_trainer_free(TokTrainer* tr) {
    free(tr->syms); free(tr->woff); free(tr->wlen); free(tr->wfreq);
    for (size_t i = 0; i < tr->npairs; i++) free(tr->pairs[i].words);
    free(tr->pairs);
    tok_pairmap_free(&tr->index);
    free(tr->heap);
    free(tr->dirty);
    memset(tr, 0, sizeof *tr);
}

/* Trains a tokenizer of (at most) vocab_size ids on ntexts byte buffers (chunks never cross
   buffers). If the texts run out of pairs first, the vocabulary is smaller (check t->vocab_size).
   verbose: print progress to stderr. */
static inline int tokenizer_train(Tokenizer* t, const unsigned char* const* texts, const size_t* lens, int ntexts,
                                  int vocab_size, int verbose, char* err, size_t errlen) {
    memset(t, 0, sizeof *t);
    if (vocab_size < TOK_MIN_VOCAB || vocab_size > TOK_MAX_VOCAB)
        return data_error(err, errlen, "vocabulary size %d is out of range: expected %d..%d (256 bytes + merges + EOT)",
                          vocab_size, TOK_MIN_VOCAB, TOK_MAX_VOCAB);
    TokStrMap counts;
    TokTrainer tr;
    memset(&counts, 0, sizeof counts);
    memset(&tr, 0, sizeof tr);
    int want = vocab_size - TOK_MIN_VOCAB, done = 0, rc = -1;
    int32_t* merges = (int32_t*)malloc((size_t)want * 8 + 8);
    if (!merges) goto oom;
    /* 1. distinct chunks and their counts (single-byte chunks can never take part in a merge) */
    for (int d = 0; d < ntexts; d++) {
        const unsigned char* p = texts[d];
        for (size_t i = 0; i < lens[d];) {
            size_t len = tok_next_chunk(p + i, lens[d] - i);
            if (len > 1) {
                int ins;
                TokStrEntry* e = tok_strmap_get(&counts, p + i, len, tok_hash_bytes(p + i, len), &ins);
                if (!e) goto oom;
                e->val++;
            }
            i += len;
        }
    }
    /* 2. one word per distinct chunk (word order cannot change the result: counts are sums and
          heap ties are broken by pair ids) */
    if (counts.n > (size_t)INT32_MAX) {
        data_error(err, errlen, "the training text has %zu distinct chunks, more than this trainer handles (2^31)", counts.n);
        goto out;
    }
    tr.nwords = counts.n;
    tr.syms = (int32_t*)malloc(counts.nbytes * sizeof(int32_t) + 4);
    tr.woff = (size_t*)malloc(tr.nwords * sizeof(size_t) + 8);
    tr.wlen = (int32_t*)malloc(tr.nwords * sizeof(int32_t) + 4);
    tr.wfreq = (int64_t*)malloc(tr.nwords * sizeof(int64_t) + 8);
    if (!tr.syms || !tr.woff || !tr.wlen || !tr.wfreq) goto oom;
    {
        size_t w = 0;
        for (size_t i = 0; i < counts.cap; i++) {
            if (!counts.e[i].key) continue;
            size_t off = (size_t)(counts.e[i].key >> 8), len = (size_t)(counts.e[i].key & 255);
            for (size_t k = 0; k < len; k++) tr.syms[off + k] = counts.bytes[off + k];
            tr.woff[w] = off;
            tr.wlen[w] = (int32_t)len;
            tr.wfreq[w] = (int64_t)counts.e[i].val;
            w++;
        }
    }
    tok_strmap_free(&counts);
    /* 3. initial pair counts */
    for (size_t w = 0; w < tr.nwords; w++) {
        const int32_t* s = tr.syms + tr.woff[w];
        for (int i = 0; i + 1 < tr.wlen[w]; i++)
            if (tok_train_bump(&tr, s[i], s[i + 1], tr.wfreq[w], (int32_t)w, 1) != 0) goto oom;
    }
    if (tok_train_flush_dirty(&tr) != 0) goto oom;
    /* 4. merges */
    while (done < want && tr.nheap > 0) {
        TokHeapItem top = tok_heap_pop(&tr);
        TokTrainPair* pr = &tr.pairs[top.idx];
        if (top.count != pr->count || pr->count <= 0) continue; /* stale entry */
        int32_t a = pr->a, b = pr->b, id = 256 + done;
        merges[2 * done] = a;
        merges[2 * done + 1] = b;
        int32_t* words = pr->words; /* detach: the list is consumed by this merge */
        int32_t nw = pr->nw;
        pr->words = NULL;
        pr->nw = pr->capw = 0;
        int bad = 0;
        for (int32_t k = 0; k < nw && !bad; k++) bad = tok_train_merge_word(&tr, words[k], a, b, id) != 0;
        free(words);
        if (bad || tok_train_flush_dirty(&tr) != 0) goto oom;
        done++;
        if (verbose && (done % 1000 == 0 || done == want))
            fprintf(stderr, "  merge %d/%d: (%d, %d) -> %d, count %lld\n", done, want, a, b, id, (long long)top.count);
    }
    if (verbose && done < want)
        fprintf(stderr, "  the text has no more pairs to merge: vocabulary is %d instead of %d\n", 257 + done, vocab_size);
    rc = tokenizer_init_from_merges(t, merges, done, "trained tokenizer", err, errlen);
    goto out;
oom:
    data_error(err, errlen, "out of memory while training the tokenizer");
out:
    free(merges);
    tok_strmap_free(&counts);
    tok_trainer_free(&tr);
    return rc;
}

#endif /* COMMON_TOKENIZER_H */
