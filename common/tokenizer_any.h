/*
 * tokenizer_any.h — one interface over the two tokenizer files the project reads: our byte-level BPE
 * file (common/tokenizer.h) and a Hugging Face tokenizer.json of byte-level BPE type
 * (common/tokenizer_json.h), told apart by content. The data tool (data/bpe.c) and the trainers'
 * --tokenizer (samples, --sample prompts) go through it, so shards encoded with a published checkpoint's
 * tokenizer decode with the same file. Plain C11 / C++17, header-only; functions that can fail return
 * 0 / -1 with a message in err and never exit.
 */
#ifndef COMMON_TOKENIZER_ANY_H
#define COMMON_TOKENIZER_ANY_H

#include <stdint.h>
#include <string.h>
#include "tokenizer.h"
#include "tokenizer_json.h"

typedef struct {
    int json;             /* 1: hf (tokenizer_json.h), 0: tok (tokenizer.h) */
    Tokenizer tok;
    HfTokenizer hf;
    int vocab_size, eot;  /* eot -1: a tokenizer.json without an end-of-text token */
    uint32_t fingerprint; /* what shards record in their header */
} AnyTokenizer;

/* Loads path: a tokenizer.json when force_json or when the file looks like JSON, else our file.
 * eot_token names a tokenizer.json's end-of-text token (NULL: <|endoftext|>). */
static inline int anytok_load(AnyTokenizer* t, const char* path, int force_json, const char* eot_token, char* err,
                              size_t errlen) {
    memset(t, 0, sizeof *t);
    t->json = force_json || hftok_is_json_file(path);
    if (!t->json && eot_token) {
        snprintf(err, errlen, "--eot-token is for a tokenizer.json; '%s' is not one (the EOT of our tokenizer files is "
                 "their last id)", path);
        return -1;
    }
    if (t->json ? hftok_load(&t->hf, path, eot_token, err, errlen) : tokenizer_load(&t->tok, path, err, errlen)) return -1;
    t->vocab_size = t->json ? t->hf.vocab_size : t->tok.vocab_size;
    t->eot = t->json ? t->hf.eot : t->tok.eot;
    t->fingerprint = t->json ? t->hf.fingerprint : t->tok.fingerprint;
    return 0;
}
static inline void anytok_free(AnyTokenizer* t) {
    if (t->json) hftok_free(&t->hf);
    else tokenizer_free(&t->tok);
    memset(t, 0, sizeof *t);
}
/* room the ids of n bytes of text need */
static inline size_t anytok_max_ids(const AnyTokenizer* t, size_t n) { return t->json ? hftok_max_ids(&t->hf, n) : n; }
/* ids of p[0..n) into out (room: anytok_max_ids); returns their number, -1 when out of memory */
static inline long long anytok_encode(AnyTokenizer* t, const void* p, size_t n, int32_t* out) {
    return t->json ? hftok_encode(&t->hf, p, n, out) : tokenizer_encode(&t->tok, p, n, out);
}
static inline long long anytok_decode(const AnyTokenizer* t, const int32_t* ids, size_t n, char* out, size_t cap,
                                      const char* eot_text) {
    return t->json ? hftok_decode(&t->hf, ids, n, out, cap, eot_text) : tokenizer_decode(&t->tok, ids, n, out, cap, eot_text);
}
static inline const unsigned char* anytok_token_bytes(const AnyTokenizer* t, int id, size_t* len) {
    return t->json ? hftok_token_bytes(&t->hf, id, len) : tokenizer_token_bytes(&t->tok, id, len);
}
/* the longest token in bytes (decode buffers: n ids need at most n times this) */
static inline size_t anytok_max_token_bytes(const AnyTokenizer* t) {
    return t->json ? (size_t)t->hf.max_token_bytes : TOK_MAX_CHUNK;
}

#endif /* COMMON_TOKENIZER_ANY_H */
