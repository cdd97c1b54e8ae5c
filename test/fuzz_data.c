/*
 * fuzz_data.c — owns the libFuzzer harness of the data pipeline's parsers. The first input byte
 * picks the target (mod 5), the rest is its input:
 *   0  shard_open + shard_read on arbitrary file bytes (half the inputs get a shard header built
 *      from their first bytes, so size and id checks are reached)
 *   1  tokenizer_load on arbitrary file bytes (half get a consistent header + fingerprint, so the
 *      merge checks are reached), then encode/decode with what loaded
 *   2  encode -> decode round trip of arbitrary bytes with a small trained tokenizer
 *   3  hftok_parse (Hugging Face tokenizer.json) on arbitrary bytes; when it loads, the input
 *      itself is encoded and decoded with it (ids in range, every id decodes)
 *   4  encode -> decode round trip of arbitrary bytes with a small fixed tokenizer.json
 * Seeds: LLVMFuzzerInitialize writes that tokenizer.json (for targets 3 and 4) into the first corpus
 * directory when it is empty, so the JSON mutations start from a file that loads.
 * Build and run (clang; `make fuzz` does the same):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Itest test/fuzz_data.c -o /tmp/fz -lpthread
 *   /tmp/fz -max_total_time=60 CORPUS_DIR
 * A bad input must give an error (never a crash, leak or sanitizer report); the round trip must hold.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fuzz_seed.h"
#include "shard.h"
#include "tokenizer.h"
#include "tokenizer_json.h"

/* Writes the input to fuzz_seed.h's per-process scratch file and returns its path. */
static const char* fuzz_file(const uint8_t* data, size_t size) {
    fuzz_scratch_path("data", ".bin");
    return fuzz_scratch_write(data, size, NULL, 0);
}

static int fuzz_shard(const uint8_t* data, size_t size) {
    /* half of the inputs get a shard header built from their first bytes (version, token count,
       vocab), the rest of the input being the payload, so the size and id checks are exercised */
    uint8_t* buf = (uint8_t*)malloc(size + DATA_HEADER_BYTES);
    size_t n = size;
    memcpy(buf, data, size);
    if (size >= 16 && (data[0] & 1)) {
        int32_t h[DATA_HEADER_INTS];
        memset(h, 0, sizeof h);
        h[0] = SHARD_MAGIC;
        h[1] = data[1] % 3;
        memcpy(&h[2], data + 2, 4);
        h[3] = data[6] & 1;
        memcpy(&h[4], data + 8, 4);
        memcpy(buf, h, sizeof h);
        memcpy(buf + DATA_HEADER_BYTES, data + 16, size - 16);
        n = DATA_HEADER_BYTES + size - 16;
    }
    const char* p = fuzz_file(buf, n);
    free(buf);
    char err[512];
    ShardInfo in;
    int32_t* toks = NULL;
    if (shard_open(p, &in, err, sizeof err) == 0 && in.ntok < (1u << 24)) {
        if (shard_read(p, 1000, &toks, &in, err, sizeof err) == 0) {
            for (uint64_t i = 0; i < in.ntok; i++)
                if (toks[i] < 0 || toks[i] >= 1000) abort();
            free(toks);
        }
    }
    return 0;
}

static int fuzz_tokenizer(const uint8_t* data, size_t size) {
    /* half of the inputs get a consistent header, so the merge validation is exercised */
    uint8_t* buf = (uint8_t*)malloc(size + DATA_HEADER_BYTES);
    size_t n = size;
    memcpy(buf, data, size);
    if (size >= 1 && (data[0] & 1)) {
        int32_t h[DATA_HEADER_INTS];
        memset(h, 0, sizeof h);
        int nm = (int)((size - 1) / 8);
        h[0] = TOK_MAGIC; h[1] = TOK_VERSION; h[2] = 257 + nm; h[3] = 256 + nm; h[4] = nm; h[5] = TOK_MAX_CHUNK;
        memcpy(buf + DATA_HEADER_BYTES, data + 1, (size_t)nm * 8);
        h[6] = (int32_t)tok_fingerprint((const int32_t*)(buf + DATA_HEADER_BYTES), nm, 257 + nm);
        memcpy(buf, h, sizeof h);
        n = DATA_HEADER_BYTES + (size_t)nm * 8;
    }
    const char* p = fuzz_file(buf, n);
    free(buf);
    Tokenizer t;
    char err[512];
    if (tokenizer_load(&t, p, err, sizeof err) == 0) {
        const char* text = "Hello, world! 12345 \xff\x00 tokens";
        int32_t ids[64];
        char back[64];
        long long m = tokenizer_encode(&t, text, 30, ids);
        if (m < 0 || tokenizer_decode(&t, ids, (size_t)m, back, sizeof back, NULL) != 30 || memcmp(back, text, 30)) abort();
        tokenizer_free(&t);
    }
    return 0;
}

static Tokenizer g_tok;
static int fuzz_encode(const uint8_t* data, size_t size) {
    if (!g_tok.vocab_size) {
        static const char* corpus = "the quick brown fox jumps over the lazy dog 0123456789 !!! ... \n\n  the end\xc3\xa9\xc3\xa9";
        const unsigned char* texts[1] = {(const unsigned char*)corpus};
        size_t lens[1] = {strlen(corpus)};
        char err[256];
        if (tokenizer_train(&g_tok, texts, lens, 1, 400, 0, err, sizeof err) != 0) abort();
    }
    int32_t* ids = (int32_t*)malloc((size + 1) * sizeof(int32_t));
    char* back = (char*)malloc(size + 1);
    long long m = tokenizer_encode(&g_tok, data, size, ids);
    if (m < 0 || tokenizer_decode(&g_tok, ids, (size_t)m, back, size + 1, NULL) != (long long)size ||
        memcmp(back, data, size) != 0)
        abort();
    free(ids);
    free(back);
    return 0;
}

/* A small valid tokenizer.json: the 256 byte characters (byte b has id b), a few merges, and
   <|endoftext|> and a run of two spaces as added tokens. Returns its length (< cap). */
static size_t fuzz_tokjson(char* out, size_t cap) {
    static const char* merges[][3] = {{"t", "h", "th"}, {"th", "e", "the"}, {"\xc4\xa0", "t", "\xc4\xa0t"},
                                      {"\xc4\xa0t", "he", "\xc4\xa0the"}, {"h", "e", "he"}, {"i", "n", "in"}};
    size_t n = (size_t)snprintf(out, cap, "{\"added_tokens\":[{\"id\":300,\"content\":\"<|endoftext|>\",\"special\":true},"
                                "{\"id\":301,\"content\":\"  \"}],\"pre_tokenizer\":{\"type\":\"ByteLevel\","
                                "\"add_prefix_space\":false},\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        unsigned char u[4];
        int l = json_utf8_encode(tj_byte_char((unsigned)b), u);
        const char* esc = b == '"' ? "\\\"" : b == '\\' ? "\\\\" : NULL; /* the two byte characters JSON escapes */
        n += (size_t)snprintf(out + n, cap - n, "\"%.*s\":%d,", esc ? 2 : l, esc ? esc : (const char*)u, b);
    }
    for (int i = 0; i < 6; i++) n += (size_t)snprintf(out + n, cap - n, "%s\"%s\":%d", i ? "," : "", merges[i][2], 256 + i);
    n += (size_t)snprintf(out + n, cap - n, "},\"merges\":[");
    for (int i = 0; i < 6; i++) n += (size_t)snprintf(out + n, cap - n, "%s[\"%s\",\"%s\"]", i ? "," : "", merges[i][0], merges[i][1]);
    n += (size_t)snprintf(out + n, cap - n, "]}}");
    return n;
}

/* Encodes text with t, checks the ids, decodes; returns the decoded length (-1: an id failed). */
static long long fuzz_hf_encode_decode(HfTokenizer* t, const uint8_t* text, size_t size, char** back) {
    int32_t* ids = (int32_t*)malloc(hftok_max_ids(t, size) * sizeof(int32_t));
    long long m = hftok_encode(t, text, size, ids);
    if (m < 0 || (size_t)m > hftok_max_ids(t, size)) abort();
    for (long long i = 0; i < m; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size) abort();
    long long need = hftok_decode(t, ids, (size_t)m, NULL, 0, NULL);
    *back = (char*)malloc(need > 0 ? (size_t)need : 1);
    long long d = need < 0 ? -1 : hftok_decode(t, ids, (size_t)m, *back, (size_t)need, NULL);
    free(ids);
    return d;
}

static int fuzz_tokjson_parse(const uint8_t* data, size_t size) {
    HfTokenizer t;
    char err[512], *back = NULL;
    if (hftok_parse(&t, (const char*)data, size, "fuzz.json", NULL, err, sizeof err) != 0) return 0;
    if (fuzz_hf_encode_decode(&t, data, size < 4096 ? size : 4096, &back) < 0) abort(); /* encoding gives only ids that exist */
    free(back);
    hftok_free(&t);
    return 0;
}

static HfTokenizer g_hf;
static int fuzz_tokjson_roundtrip(const uint8_t* data, size_t size) {
    char* back = NULL;
    if (!g_hf.vocab_size) {
        char js[8192], err[512];
        size_t n = fuzz_tokjson(js, sizeof js);
        if (hftok_parse(&g_hf, js, n, "seed.json", NULL, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); abort(); }
    }
    if (fuzz_hf_encode_decode(&g_hf, data, size, &back) != (long long)size || memcmp(back, data, size) != 0) abort();
    free(back);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    switch (data[0] % 5) {
    case 0: return fuzz_shard(data + 1, size - 1);
    case 1: return fuzz_tokenizer(data + 1, size - 1);
    case 2: return fuzz_encode(data + 1, size - 1);
    case 3: return fuzz_tokjson_parse(data + 1, size - 1);
    default: return fuzz_tokjson_roundtrip(data + 1, size - 1);
    }
}

/* Seeds an empty corpus directory with the tokenizer.json (target 3) and a text for target 4. */
int LLVMFuzzerInitialize(int* argc, char*** argv) {
    const char* dir = fuzz_empty_corpus_dir(*argc, *argv);
    if (!dir) return 0;
    char js[8192];
    size_t n = fuzz_tokjson(js, sizeof js);
    fuzz_write_mode_seed(dir, "seed_tokjson", 3, js, n);
    const char* text = "the theme of <|endoftext|> in  the  thin\xc3\xa9 \xff text";
    fuzz_write_mode_seed(dir, "seed_tokjson_text", 4, text, strlen(text));
    return 0;
}
