/*
 * shard.h — owns the on-disk token shard format (llm.c-compatible) and the small helpers every
 * "256 x int32 header + payload" data file uses (error formatting, header read, size checks).
 * Plain C11 / C++17, header-only. Functions return 0 on success and -1 with a message in err
 * (the message always names the file and what was expected); they never exit.
 *
 * Shard file (little endian):
 *   int32 header[256]: [0] = 20240520 (SHARD_MAGIC)
 *                      [1] = 1: uint16 tokens, 2: uint32 tokens (vocab > 65536)
 *                      [2] = number of tokens, low 32 bits (llm.c reads only this slot)
 *                      [3] = number of tokens, high 32 bits (0 below 2^32 tokens)
 *                      [4] = vocabulary size the ids belong to (0 = unknown)
 *                      [5] = fingerprint of the tokenizer that produced them (0 = unknown)
 *                      other slots 0
 *   then ntok token ids (uint16 or uint32). Documents are concatenated, each preceded by EOT.
 */
#ifndef COMMON_SHARD_H
#define COMMON_SHARD_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "atomic_file.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION_U16 1
#define SHARD_VERSION_U32 2
#define DATA_HEADER_INTS 256
#define DATA_HEADER_BYTES 1024

#if defined(__GNUC__)
#define DATA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DATA_PRINTF(a, b)
#endif

/* Formats a message into err (if given) and returns -1, so callers can `return data_error(...)`. */
static inline int data_error(char* err, size_t errlen, const char* fmt, ...) DATA_PRINTF(3, 4);
static inline int data_error(char* err, size_t errlen, const char* fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Opens path, checks it holds at least a header, reads the header. Returns the FILE positioned
   after the header (caller closes) or NULL. `what` names the expected kind of file in messages. */
static inline FILE* datafile_open(const char* path, const char* what, int32_t header[DATA_HEADER_INTS],
                                  uint64_t* file_bytes, char* err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) {
        data_error(err, errlen, "cannot open %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        data_error(err, errlen, "%s '%s' is not a regular file", what, path);
        return NULL;
    }
    *file_bytes = (uint64_t)st.st_size;
    if (*file_bytes < DATA_HEADER_BYTES) {
        data_error(err, errlen, "%s '%s' is truncated: %llu bytes, but it must start with a %d-byte header",
                   what, path, (unsigned long long)*file_bytes, DATA_HEADER_BYTES);
        return NULL;
    }
    FILE* f = fopen(path, "rb");
    if (!f) {
        data_error(err, errlen, "cannot open %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    if (fread(header, sizeof(int32_t), DATA_HEADER_INTS, f) != DATA_HEADER_INTS) {
        data_error(err, errlen, "cannot read the header of %s '%s'", what, path);
        fclose(f);
        return NULL;
    }
    return f;
}

/* What a validated shard header says. */
typedef struct {
    int version;       /* 1 or 2 */
    int tok_bytes;     /* 2 or 4 */
    uint64_t ntok;     /* tokens in the file */
    int vocab;         /* header slot 4 (0 = unknown) */
    uint32_t tok_hash; /* header slot 5 (0 = unknown) */
    uint64_t file_bytes;
} ShardInfo;

static inline uint64_t shard_header_ntok(const int32_t* h) {
    return (uint64_t)(uint32_t)h[2] | ((uint64_t)(uint32_t)h[3] << 32);
}

/* Validates a header against the file size. */
static inline int shard_check_header(const char* path, const int32_t* h, uint64_t file_bytes, ShardInfo* info,
                                     char* err, size_t errlen) {
    memset(info, 0, sizeof *info);
    if (h[0] != SHARD_MAGIC)
        return data_error(err, errlen, "'%s' is not a token shard: magic %d, expected %d", path, h[0], SHARD_MAGIC);
    if (h[1] != SHARD_VERSION_U16 && h[1] != SHARD_VERSION_U32)
        return data_error(err, errlen, "token shard '%s' has unsupported version %d (expected 1 = uint16 or 2 = uint32 tokens)",
                          path, h[1]);
    info->version = h[1];
    info->tok_bytes = h[1] == SHARD_VERSION_U16 ? 2 : 4;
    info->ntok = shard_header_ntok(h);
    info->vocab = h[4];
    info->tok_hash = (uint32_t)h[5];
    info->file_bytes = file_bytes;
    if (info->ntok == 0) return data_error(err, errlen, "token shard '%s' is empty: its header says 0 tokens", path);
    if (info->vocab < 0) return data_error(err, errlen, "token shard '%s' has a negative vocabulary size %d in its header", path, info->vocab);
    uint64_t payload = file_bytes - DATA_HEADER_BYTES;
    if (info->ntok > payload / (uint64_t)info->tok_bytes || payload != info->ntok * (uint64_t)info->tok_bytes) {
        /* compare in tokens first so a huge ntok cannot overflow the byte count */
        if (info->ntok > payload / (uint64_t)info->tok_bytes)
            return data_error(err, errlen,
                              "token shard '%s' is truncated: its header says %llu tokens (%llu bytes after the %d-byte header) "
                              "but the file has only %llu bytes after the header",
                              path, (unsigned long long)info->ntok, (unsigned long long)info->ntok * (unsigned long long)info->tok_bytes,
                              DATA_HEADER_BYTES, (unsigned long long)payload);
        return data_error(err, errlen, "token shard '%s' has %llu bytes after its %llu tokens: expected file size %llu, found %llu",
                          path, (unsigned long long)(payload - info->ntok * (uint64_t)info->tok_bytes),
                          (unsigned long long)info->ntok,
                          (unsigned long long)(DATA_HEADER_BYTES + info->ntok * (uint64_t)info->tok_bytes),
                          (unsigned long long)file_bytes);
    }
    return 0;
}

/* Reads and validates a shard's header and size (not its tokens). */
static inline int shard_open(const char* path, ShardInfo* info, char* err, size_t errlen) {
    int32_t h[DATA_HEADER_INTS];
    uint64_t bytes = 0;
    FILE* f = datafile_open(path, "token shard", h, &bytes, err, errlen);
    if (!f) return -1;
    fclose(f);
    return shard_check_header(path, h, bytes, info, err, errlen);
}

/* Checks that n ids (uint16 or uint32, as stored) are < vocab; reports the first bad one.
   first_pos is the position of data[0] in the file, so the reported position is absolute. */
static inline int shard_check_tokens(const void* data, int tok_bytes, uint64_t n, uint64_t first_pos, int vocab,
                                     const char* path, char* err, size_t errlen) {
    uint64_t bad = n;
    if (tok_bytes == 2) {
        const uint16_t* t = (const uint16_t*)data;
        if (vocab < 65536) {
            uint32_t any = 0; /* branch-free scan; find the position only on failure */
            for (uint64_t i = 0; i < n; i++) any |= (uint32_t)(t[i] >= (uint32_t)vocab);
            if (any)
                for (bad = 0; t[bad] < (uint32_t)vocab; bad++) {}
        }
        if (bad < n)
            return data_error(err, errlen, "token shard '%s': token id %u at position %llu is >= vocabulary size %d",
                              path, (unsigned)t[bad], (unsigned long long)(first_pos + bad), vocab);
    } else {
        const uint32_t* t = (const uint32_t*)data;
        uint32_t any = 0;
        for (uint64_t i = 0; i < n; i++) any |= (uint32_t)(t[i] >= (uint32_t)vocab);
        if (any) {
            for (bad = 0; t[bad] < (uint32_t)vocab; bad++) {}
            return data_error(err, errlen, "token shard '%s': token id %u at position %llu is >= vocabulary size %d",
                              path, (unsigned)t[bad], (unsigned long long)(first_pos + bad), vocab);
        }
    }
    return 0;
}

/* Writes n ids as one shard (uint16 when vocab <= 65536, else uint32). vocab <= 0 means unknown:
   the width is then chosen from the largest id. Every id must be in [0, vocab). Replaces path
   atomically (atomic_file.h): a crash or a full disk never leaves a half-written shard under its name. */
static inline int shard_write(const char* path, const int32_t* toks, uint64_t n, int vocab, uint32_t tok_hash,
                              char* err, size_t errlen) {
    if (n == 0) return data_error(err, errlen, "refusing to write empty token shard '%s'", path);
    int32_t maxid = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (toks[i] < 0 || (vocab > 0 && toks[i] >= vocab))
            return data_error(err, errlen, "cannot write token shard '%s': token id %d at position %llu is outside [0, %d)",
                              path, toks[i], (unsigned long long)i, vocab);
        if (toks[i] > maxid) maxid = toks[i];
    }
    int wide = vocab > 0 ? vocab > 65536 : maxid > 65535;
    int32_t h[DATA_HEADER_INTS];
    memset(h, 0, sizeof h);
    h[0] = SHARD_MAGIC;
    h[1] = wide ? SHARD_VERSION_U32 : SHARD_VERSION_U16;
    h[2] = (int32_t)(uint32_t)(n & 0xFFFFFFFFull);
    h[3] = (int32_t)(uint32_t)(n >> 32);
    h[4] = vocab > 0 ? vocab : 0;
    h[5] = (int32_t)tok_hash;
    char tmp[ATOMIC_PATH_MAX];
    FILE* f = atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) return -1;
    int ok = fwrite(h, sizeof h, 1, f) == 1;
    const size_t CHUNK = (size_t)1 << 16;
    uint16_t* buf16 = (uint16_t*)malloc(CHUNK * sizeof(uint16_t));
    ok = ok && buf16;
    for (uint64_t i = 0; ok && i < n; i += CHUNK) {
        size_t m = n - i < (uint64_t)CHUNK ? (size_t)(n - i) : CHUNK;
        if (wide) {
            ok = fwrite(toks + i, sizeof(int32_t), m, f) == m; /* ids are >= 0, same bits as uint32 */
        } else {
            for (size_t j = 0; j < m; j++) buf16[j] = (uint16_t)toks[i + j];
            ok = fwrite(buf16, sizeof(uint16_t), m, f) == m;
        }
    }
    int rc = atomic_commit(f, ok, tmp, path, err, errlen) ? -1 : 0;   /* before free(): errno names a failed write */
    free(buf16);
    return rc;
}

/* Reads a whole shard into a malloc'ed int32 array (*toks, caller frees). vocab > 0 also checks
   every id < vocab. info may be NULL. */
static inline int shard_read(const char* path, int vocab, int32_t** toks, ShardInfo* info_out, char* err, size_t errlen) {
    int32_t h[DATA_HEADER_INTS];
    uint64_t bytes = 0;
    ShardInfo info;
    *toks = NULL;
    FILE* f = datafile_open(path, "token shard", h, &bytes, err, errlen);
    if (!f) return -1;
    if (shard_check_header(path, h, bytes, &info, err, errlen) != 0) { fclose(f); return -1; }
    size_t n = (size_t)info.ntok;
    void* raw = malloc(n * (size_t)info.tok_bytes);
    int32_t* out = (int32_t*)malloc(n * sizeof(int32_t));
    if (!raw || !out) {
        free(raw); free(out); fclose(f);
        return data_error(err, errlen, "out of memory reading %llu tokens from '%s'", (unsigned long long)info.ntok, path);
    }
    if (fread(raw, (size_t)info.tok_bytes, n, f) != n) {
        free(raw); free(out); fclose(f);
        return data_error(err, errlen, "read error in token shard '%s' (file changed while reading?)", path);
    }
    fclose(f);
    if (vocab > 0 && shard_check_tokens(raw, info.tok_bytes, info.ntok, 0, vocab, path, err, errlen) != 0) {
        free(raw); free(out);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = info.tok_bytes == 2 ? (int32_t)((const uint16_t*)raw)[i] : (int32_t)((const uint32_t*)raw)[i];
    free(raw);
    /* uint32 ids >= 2^31 would read as negative: reject them even without a vocab */
    for (size_t i = 0; i < n; i++)
        if (out[i] < 0) {
            unsigned bad = (unsigned)out[i];
            free(out);
            return data_error(err, errlen, "token shard '%s': token id %u at position %llu does not fit in int32",
                              path, bad, (unsigned long long)i);
        }
    *toks = out;
    if (info_out) *info_out = info;
    return 0;
}

#endif /* COMMON_SHARD_H */
