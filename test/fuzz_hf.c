/*
 * fuzz_hf.c — owns the libFuzzer harness of the Hugging Face readers (common/hf.h): the safetensors
 * reader and config.json, the two files a user hands to --init-hf from anywhere. A corrupt, truncated or
 * hostile file must give an error naming it, never a crash, a leak or an out-of-bounds read. The first
 * input byte picks the target (mod 4), the rest is its input:
 *   0  raw: the bytes are model.safetensors. hf_st_open, then every tensor it lists is read into a heap
 *      buffer of exactly its element count (ASan flags any overrun).
 *   1  framed: the bytes up to the first NUL are the JSON header and the rest the data; the 8-byte length
 *      in front is made right, so the header parser and the per-tensor checks (dtype, shape, offsets
 *      inside the data, sizes that match, overlaps, duplicate names) are reached on every input. Then as 0.
 *   2  config.json: hf_config_parse_n, then both models' config readers; a config that reads is written
 *      by the model's writer and read back, twice: the second cycle must not change a field.
 *   3  round trip: tensors built from the bytes go through hf_st_write (F32 and BF16) and must read back
 *      exactly (F32) or as their round-to-nearest-even bf16 values.
 * Seeds: LLVMFuzzerInitialize writes a valid safetensors file (made by hf_st_write, as it is and framed)
 * and a valid config.json of each model into the first corpus directory when it is empty.
 * Build and run (clang; `make fuzz` does the same):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Itest test/fuzz_hf.c -o /tmp/fz -lm
 *   /tmp/fz -max_total_time=60 CORPUS_DIR
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz_seed.h"
#include "hf.h"

/* ---- the input as a file (fuzz_seed.h's scratch file) ----------------------------------------- */

static const char* fuzz_path(void) { return fuzz_scratch_path("hf", ".safetensors"); }
static const char* fuzz_file(const void* a, size_t na, const void* b, size_t nb) {
    fuzz_path();
    return fuzz_scratch_write(a, na, b, nb);
}

/* ---- safetensors: open, then read every tensor ------------------------------------------------ */

static void fuzz_st(const char* path) {
    HfSafetensors st;
    char err[512];
    if (hf_st_open(&st, path, err, sizeof err) != 0) {
        if (!err[0]) abort();   /* a refusal always says why */
        return;
    }
    for (int i = 0; i < st.n; i++) {
        const HfTensorInfo* t = &st.t[i];
        if (t->end < t->begin || t->end > st.data_bytes || t->ndim < 0 || t->ndim > HF_MAX_DIMS) abort();
        if (hf_st_find(&st, t->name) != t) abort();   /* names are unique */
        size_t numel = (size_t)((t->end - t->begin) / hf_dtype_size(t->dtype));
        if (numel > ((size_t)64 << 20)) continue;     /* a valid but huge tensor: not worth the memory */
        float* dst = (float*)malloc(numel ? numel * sizeof(float) : 1);
        if (!dst) abort();
        if (hf_st_read(&st, t, dst, err, sizeof err) != 0) abort();   /* the file is there and long enough */
        free(dst);
    }
    hf_st_close(&st);
}

/* framed: [8-byte length][header = bytes before the first NUL][data = bytes after it] */
static void fuzz_framed(const uint8_t* data, size_t size) {
    const uint8_t* nul = (const uint8_t*)memchr(data, 0, size);
    size_t hl = nul ? (size_t)(nul - data) : size;
    const uint8_t* rest = nul ? nul + 1 : data + size;
    size_t nrest = size - hl - (nul ? 1 : 0);
    uint8_t* file = (uint8_t*)malloc(8 + hl + 1);
    if (!file) abort();
    for (int k = 0; k < 8; k++) file[k] = (uint8_t)((uint64_t)hl >> (8 * k));
    memcpy(file + 8, data, hl);
    fuzz_st(fuzz_file(file, 8 + hl, rest, nrest));
    free(file);
}

/* ---- config.json ------------------------------------------------------------------------------ */

static void fuzz_config(const uint8_t* data, size_t size) {
    static HfConfig c, c2;   /* large: not on the stack */
    char err[512];
    if (hf_config_parse_n(&c, (const char*)data, size, "config.json", err, sizeof err) != 0) {
        if (!err[0]) abort();
        return;
    }
    const HfModelSpec* specs[2] = {&hf_gla_spec, &hf_mamba_spec};
    for (int i = 0; i < 2; i++) {
        CkptHeader h, h2;
        memset(&h, 0, sizeof h);
        memset(&h2, 0, sizeof h2);
        if (specs[i]->config_read(&c, &h, err, sizeof err) != 0) {
            if (!err[0]) abort();
            continue;
        }
        /* what reads must write and read back; after one such cycle (the writer normalises, e.g. eps to
         * the nearest float) the fields must come back unchanged */
        CkptHeader* from = &h;
        CkptHeader h3;
        memset(&h3, 0, sizeof h3);
        for (int cycle = 0; cycle < 2; cycle++) {
            CkptHeader* to = cycle ? &h3 : &h2;
            HfBuf b = {NULL, 0, 0, 0};
            if (specs[i]->config_write(from, &b, err, sizeof err) != 0 || b.oom) abort();
            if (hf_config_parse_n(&c2, b.s, b.len, "written config.json", err, sizeof err) != 0) abort();
            if (specs[i]->config_read(&c2, to, err, sizeof err) != 0) abort();
            free(b.s);
            to->kind = h.kind;
            from = to;
        }
        if (ckpt_config_compare(&h3, &h2, "the config written once", err, sizeof err) != 0) abort();
    }
}

/* ---- write -> read round trip ----------------------------------------------------------------- */

static void fuzz_round_trip(const uint8_t* data, size_t size) {
    enum { MAXT = 4 };
    HfWriteTensor t[MAXT];
    int64_t shapes[MAXT][2];
    char names[MAXT][24];
    size_t nval = size / 4 > 4096 ? 4096 : size / 4;
    float* vals = (float*)malloc((nval ? nval : 1) * sizeof(float));
    if (!vals) abort();
    memcpy(vals, data, nval * 4);
    int n = size ? 1 + data[0] % MAXT : 1;
    size_t at = 0;
    for (int i = 0; i < n; i++) {   /* split the values into n tensors of shape [rows, cols] */
        size_t left = nval - at, take = i == n - 1 ? left : left / (size_t)(n - i);
        int64_t cols = size > (size_t)i + 1 ? 1 + data[i + 1] % 7 : 1;
        while (cols > 1 && take % (size_t)cols) cols--;
        shapes[i][0] = (int64_t)take / cols;
        shapes[i][1] = cols;
        snprintf(names[i], sizeof names[i], "t.%d\"\\/", i);   /* names that need JSON escapes */
        t[i] = (HfWriteTensor){names[i], 2, shapes[i], vals + at, take};
        at += take;
    }
    char err[512];
    for (int d = 0; d < 2; d++) {
        HfDtype dt = d ? HF_BF16 : HF_F32;
        const char* meta[] = {"source", "fuzz_hf", NULL};
        if (hf_st_write(fuzz_path(), t, n, dt, meta, err, sizeof err) != 0) abort();
        HfSafetensors st;
        if (hf_st_open(&st, fuzz_path(), err, sizeof err) != 0 || st.n != n) abort();
        for (int i = 0; i < n; i++) {
            const HfTensorInfo* ti = hf_st_find(&st, names[i]);
            if (!ti || ti->dtype != dt || ti->shape[0] != shapes[i][0] || ti->shape[1] != shapes[i][1]) abort();
            float* back = (float*)malloc((t[i].numel ? t[i].numel : 1) * sizeof(float));
            if (!back || hf_st_read(&st, ti, back, err, sizeof err) != 0) abort();
            for (size_t k = 0; k < t[i].numel; k++) {
                float want = dt == HF_F32 ? t[i].data[k] : hf_bf16_to_f32(hf_f32_to_bf16(t[i].data[k]));
                if (memcmp(&want, &back[k], 4) != 0 && !(want != want && back[k] != back[k])) abort();   /* NaN stays NaN */
            }
            free(back);
        }
        hf_st_close(&st);
    }
    free(vals);
}

/* ---- entry points ----------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    unsigned mode = data[0] % 4;
    data++; size--;
    switch (mode) {
    case 0: fuzz_st(fuzz_file(data, size, NULL, 0)); break;
    case 1: fuzz_framed(data, size); break;
    case 2: fuzz_config(data, size); break;
    default: fuzz_round_trip(data, size); break;
    }
    return 0;
}

/* Seeds the first corpus directory on the command line when it is empty: a safetensors file as
 * hf_st_write makes it (raw and framed), both models' config.json, and a round-trip input. */
int LLVMFuzzerInitialize(int* argc, char*** argv) {
    const char* dir = fuzz_empty_corpus_dir(*argc, *argv);
    if (!dir) return 0;
    char err[512];
    float a[12], b[5];
    for (int i = 0; i < 12; i++) a[i] = 0.25f * (float)i - 1.0f;
    for (int i = 0; i < 5; i++) b[i] = (float)i;
    int64_t sa[2] = {3, 4}, sb[1] = {5};
    HfWriteTensor t[2] = {{"model.embeddings.weight", 2, sa, a, 12}, {"model.norm.weight", 1, sb, b, 5}};
    for (int d = 0; d < 2; d++) {
        if (hf_st_write(fuzz_path(), t, 2, d ? HF_BF16 : HF_F32, NULL, err, sizeof err) != 0) abort();
        size_t n;
        char* file = hf_slurp(fuzz_path(), (size_t)1 << 20, &n, err, sizeof err);
        if (!file || n < 8) abort();
        fuzz_write_mode_seed(dir, d ? "seed_st_bf16" : "seed_st_f32", 0, file, n);
        /* framed: header, NUL, data */
        uint64_t hl = 0;
        for (int k = 0; k < 8; k++) hl |= (uint64_t)(unsigned char)file[k] << (8 * k);
        char* framed = (char*)malloc(n);
        if (!framed || hl > n - 8) abort();
        memcpy(framed, file + 8, hl);
        framed[hl] = 0;
        memcpy(framed + hl + 1, file + 8 + hl, n - 8 - hl);
        fuzz_write_mode_seed(dir, d ? "seed_framed_bf16" : "seed_framed_f32", 1, framed, n - 7);
        free(framed);
        free(file);
    }
    /* configs: from our own config fields, written by each model's writer */
    const HfModelSpec* specs[2] = {&hf_gla_spec, &hf_mamba_spec};
    for (int i = 0; i < 2; i++) {
        CkptHeader h;
        memset(&h, 0, sizeof h);
        h.kind = specs[i]->ckpt_kind;
        if (i == 0) {
            ckpt_config_int(&h, "Vc", 64); ckpt_config_int(&h, "D", 64); ckpt_config_int(&h, "L", 2);
            ckpt_config_int(&h, "H", 2); ckpt_config_int(&h, "key_dim", 32); ckpt_config_int(&h, "value_dim", 64);
            ckpt_config_int(&h, "I", 192); ckpt_config_int(&h, "tied", 0); ckpt_config_float(&h, "eps", 1e-6);
        } else {
            ckpt_config_int(&h, "Vc", 64); ckpt_config_int(&h, "D", 32); ckpt_config_int(&h, "L", 2);
            ckpt_config_int(&h, "d_inner", 64); ckpt_config_int(&h, "d_state", 8); ckpt_config_int(&h, "dt_rank", 2);
            ckpt_config_int(&h, "conv", 4); ckpt_config_int(&h, "tied", 1); ckpt_config_float(&h, "eps", 1e-5);
        }
        HfBuf out = {NULL, 0, 0, 0};
        if (specs[i]->config_write(&h, &out, err, sizeof err) == 0 && !out.oom)
            fuzz_write_mode_seed(dir, i ? "seed_config_mamba" : "seed_config_gla", 2, out.s, out.len);
        free(out.s);
    }
    unsigned char rt[64];
    for (int i = 0; i < 64; i++) rt[i] = (unsigned char)(i * 37 + 11);
    fuzz_write_mode_seed(dir, "seed_round_trip", 3, rt, sizeof rt);
    return 0;
}
