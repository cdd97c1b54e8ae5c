/*
 * test_tokjson.c — owns the CPU tests of common/tokenizer_json.h (Hugging Face tokenizer.json): the
 * JSON reader, the pre-tokenizer's splits (ASCII and Unicode, as HF's regex makes them: the expected
 * splits were checked with the tokenizers library), BPE in HF's merge order against a naive
 * reference, added tokens, encode/decode round trips, and every kind of bad file giving a clear
 * message. The tokenizer.json files are generated here, in HF's form (GPT-2's byte characters,
 * merges in both list styles, raw UTF-8 or \u escapes): from a tokenizer our own code trains on a
 * built-in text, and from small hand-made merge lists whose encodings are known. With data/bpe
 * built (run from the repo root), the data tool's encode/decode/info on a tokenizer.json too.
 * Prints `PASS name` / `FAIL name: why` per test, then `test_tokjson: N passed, M failed`.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tokenizer.h"
#include "tokenizer_json.h"
#include "rng.h"
#include "check.h"
#include <sys/wait.h>

/* ---- growable text ------------------------------------------------------------------------- */
typedef struct { char* p; size_t n, cap; } Buf;

static void buf_add(Buf* b, const void* s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = (char*)realloc(b->p, b->cap);
        if (!b->p) { printf("FAIL setup: out of memory\n"); exit(1); }
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void buf_str(Buf* b, const char* s) { buf_add(b, s, strlen(s)); }
static void buf_printf(Buf* b, const char* fmt, ...) DATA_PRINTF(2, 3);
static void buf_printf(Buf* b, const char* fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_add(b, tmp, (size_t)n);
}

/* s[0..n) (valid UTF-8) as a JSON string; ascii: non-ASCII as \uXXXX, surrogate pairs above U+FFFF. */
static void buf_json_str(Buf* b, const char* s, size_t n, int ascii) {
    buf_str(b, "\"");
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        int l = json_utf8_decode((const unsigned char*)s + i, n - i, &cp);
        if (cp == '"' || cp == '\\') buf_printf(b, "\\%c", (char)cp);
        else if (cp < 0x20 || (ascii && cp >= 0x80 && cp < 0x10000)) buf_printf(b, "\\u%04x", (unsigned)cp);
        else if (ascii && cp >= 0x10000)
            buf_printf(b, "\\u%04X\\u%04X", (unsigned)(0xD800 + ((cp - 0x10000) >> 10)), (unsigned)(0xDC00 + (cp & 0x3FF)));
        else buf_add(b, s + i, (size_t)l);
        i += (size_t)l;
    }
    buf_str(b, "\"");
}

/* Bytes spelled in GPT-2's byte characters (a vocab key). */
static void buf_byte_chars(Buf* b, const unsigned char* p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char u[4];
        buf_add(b, u, (size_t)json_utf8_encode(tj_byte_char(p[i]), u));
    }
}

/* base with the first `from` replaced by `to`. */
static char* replace1(const char* base, const char* from, const char* to) {
    const char* at = strstr(base, from);
    if (!at) return NULL;
    Buf b = {0};
    buf_add(&b, base, (size_t)(at - base));
    buf_add(&b, to, strlen(to));
    buf_add(&b, at + strlen(from), strlen(at + strlen(from)));
    return b.p;
}

/* ---- a BPE model in HF's terms (ids, byte strings, merges), and its tokenizer.json ------------ */
#define MAXTOK 2048
typedef struct {
    int n, nm;
    unsigned char* tok[MAXTOK]; /* bytes of each id */
    int len[MAXTOK];
    int m[MAXTOK][3];           /* merge r: left, right -> new */
    int byte_id[256];
    short* rank;                /* [MAXTOK * MAXTOK] for the reference encoder, -1 = no merge */
} Model;

static int model_find(const Model* M, const char* s, int n) {
    for (int i = 0; i < M->n; i++)
        if (M->len[i] == n && memcmp(M->tok[i], s, (size_t)n) == 0) return i;
    return -1;
}
static int model_token(Model* M, const char* s, int n) {
    int id = model_find(M, s, n);
    if (id >= 0) return id;
    M->tok[M->n] = (unsigned char*)malloc((size_t)n + 1);
    memcpy(M->tok[M->n], s, (size_t)n);
    M->len[M->n] = n;
    return M->n++;
}
static void model_merge(Model* M, int a, int b) {
    char cat[1024];
    memcpy(cat, M->tok[a], (size_t)M->len[a]);
    memcpy(cat + M->len[a], M->tok[b], (size_t)M->len[b]);
    M->m[M->nm][0] = a;
    M->m[M->nm][1] = b;
    M->m[M->nm][2] = model_token(M, cat, M->len[a] + M->len[b]);
    M->rank[a * MAXTOK + b] = (short)M->nm++;
}
/* The 256 byte tokens, in GPT-2's id order (ordered by their characters). */
static void model_init(Model* M) {
    memset(M, 0, sizeof *M);
    M->rank = (short*)malloc((size_t)MAXTOK * MAXTOK * sizeof(short));
    memset(M->rank, 0xFF, (size_t)MAXTOK * MAXTOK * sizeof(short));
    for (uint32_t c = 0; c < 0x144; c++) {
        int b = tj_char_byte(c);
        if (b < 0) continue;
        char s = (char)b;
        M->byte_id[b] = model_token(M, &s, 1);
    }
}
static void model_free(Model* M) {
    for (int i = 0; i < M->n; i++) free(M->tok[i]);
    free(M->rank);
}
/* Merges given as strings: each string's tokens are created as needed (so a merge may use a token
   that a later merge makes, as HF allows). */
static void model_merge_str(Model* M, const char* a, const char* b) {
    model_merge(M, model_token(M, a, (int)strlen(a)), model_token(M, b, (int)strlen(b)));
}
static int tid(const Model* M, const char* s) { return model_find(M, s, (int)strlen(s)); }

/* Our trained tokenizer's merges, renumbered into HF ids. */
static void model_from_ours(Model* M, const Tokenizer* t) {
    int map[MAXTOK];
    model_init(M);
    for (int b = 0; b < 256; b++) map[b] = M->byte_id[b];
    for (int i = 0; i < t->n_merges; i++) {
        model_merge(M, map[t->merges[2 * i]], map[t->merges[2 * i + 1]]);
        map[256 + i] = M->m[i][2];
    }
}

typedef struct {
    int style;            /* merges as 1: "a b", 2: ["a", "b"] */
    int ascii;            /* \u escapes for non-ASCII */
    int add_prefix_space, ignore_merges, nfc;
    int neox_spaces;      /* added "  " and "    " (normalized, not special), as GPT-NeoX has runs of spaces */
    int strip_tokens;     /* added "<mask>" (lstrip) and "ony" (single_word) */
} GenOpts;

/* Added tokens: EOT at id n (also in model.vocab, as in GPT-2), then the optional ones. */
static void gen_added(Buf* b, const Model* M, const GenOpts* o) {
    const char* flags = "\"single_word\":false,\"lstrip\":false,\"rstrip\":false";
    buf_printf(b, "\"added_tokens\":[{\"id\":%d,\"content\":\"<|endoftext|>\",%s,\"normalized\":false,\"special\":true}", M->n, flags);
    if (o->neox_spaces)
        buf_printf(b, ",{\"id\":%d,\"content\":\"  \",%s,\"normalized\":true,\"special\":false}"
                      ",{\"id\":%d,\"content\":\"    \",%s,\"normalized\":true,\"special\":false}", M->n + 1, flags, M->n + 2, flags);
    if (o->strip_tokens)
        buf_printf(b, ",{\"id\":%d,\"content\":\"<mask>\",\"lstrip\":true,\"special\":true}"
                      ",{\"id\":%d,\"content\":\"ony\",\"single_word\":true}", M->n + 3, M->n + 4);
    buf_str(b, "],");
}

static void gen_name(Buf* b, const Model* M, int id, int ascii) {
    Buf s = {0};
    buf_byte_chars(&s, M->tok[id], (size_t)M->len[id]);
    buf_json_str(b, s.p, s.n, ascii);
    free(s.p);
}

static void gen_merges(Buf* b, const Model* M, const GenOpts* o) {
    buf_str(b, "\"merges\":[");
    for (int r = 0; r < M->nm; r++) {
        Buf s = {0};
        buf_add(b, r ? "," : "", r ? 1 : 0);
        if (o->style == 2) {
            buf_str(b, "[");
            gen_name(b, M, M->m[r][0], o->ascii);
            buf_str(b, ",");
            gen_name(b, M, M->m[r][1], o->ascii);
            buf_str(b, "]");
            continue;
        }
        buf_byte_chars(&s, M->tok[M->m[r][0]], (size_t)M->len[M->m[r][0]]);
        buf_str(&s, " ");
        buf_byte_chars(&s, M->tok[M->m[r][1]], (size_t)M->len[M->m[r][1]]);
        buf_json_str(b, s.p, s.n, o->ascii);
        free(s.p);
    }
    buf_str(b, "]");
}

/* The model as a tokenizer.json (compact, members in the order HF writes them). */
static char* gen_json(const Model* M, const GenOpts* o, size_t* len) {
    Buf b = {0};
    buf_str(&b, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,");
    gen_added(&b, M, o);
    buf_printf(&b, "\"normalizer\":%s,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":%s,\"trim_offsets\":true,"
               "\"use_regex\":true},", o->nfc ? "{\"type\":\"NFC\"}" : "null", o->add_prefix_space ? "true" : "false");
    buf_str(&b, "\"post_processor\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,\"use_regex\":true},");
    buf_str(&b, "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},");
    buf_printf(&b, "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
               "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":%s,\"vocab\":{",
               o->ignore_merges ? "true" : "false");
    for (int id = 0; id < M->n; id++) {
        gen_name(&b, M, id, o->ascii);
        buf_printf(&b, ":%d,", id);
    }
    buf_printf(&b, "\"<|endoftext|>\":%d},", M->n);
    gen_merges(&b, M, o);
    buf_str(&b, "}}");
    *len = b.n;
    return b.p;
}

/* Loads M with options o; prints the error and returns -1 when it does not load. */
static int load_gen(HfTokenizer* t, const Model* M, const GenOpts* o, const char* eot) {
    size_t n;
    char err[1024], *js = gen_json(M, o, &n);
    int rc = hftok_parse(t, js, n, "generated.json", eot, err, sizeof err);
    if (rc) printf("  generated tokenizer.json does not load: %s\n", err);
    free(js);
    return rc;
}

/* ---- the reference encoder: GPT-2 regex words, then the naive form of HF's merge order -------- */
/* Merges the lowest-ranked pair, leftmost first, one occurrence at a time, until none is left. */
static int ref_bpe(const Model* M, const unsigned char* p, int n, int32_t* out) {
    for (int i = 0; i < n; i++) out[i] = M->byte_id[p[i]];
    for (;;) {
        int best = -1, at = -1;
        for (int i = 0; i + 1 < n; i++) {
            int r = M->rank[out[i] * MAXTOK + out[i + 1]];
            if (r >= 0 && (best < 0 || r < best)) { best = r; at = i; }
        }
        if (at < 0) return n;
        out[at] = M->m[best][2];
        memmove(out + at + 1, out + at + 2, (size_t)(n - at - 2) * sizeof(int32_t));
        n--;
    }
}
/* Text without added tokens; prefix: the add_prefix_space rule. */
static long long ref_encode(const Model* M, const char* text, size_t n, int prefix, int32_t* out) {
    Buf b = {0};
    if (prefix && n && text[0] != ' ') buf_str(&b, " ");
    buf_add(&b, text, n);
    long long k = 0;
    for (size_t i = 0; i < b.n;) {
        size_t w = tj_next_word((const unsigned char*)b.p + i, b.n - i);
        k += ref_bpe(M, (const unsigned char*)b.p + i, (int)w, out + k);
        i += w;
    }
    free(b.p);
    return k;
}

static int same_ids(const int32_t* a, long long na, const int32_t* b, long long nb) {
    return na == nb && (na <= 0 || memcmp(a, b, (size_t)na * sizeof(int32_t)) == 0);
}

/* Encodes with t and compares with the expected ids; prints both on a mismatch. */
static int expect_ids(HfTokenizer* t, const char* text, size_t n, const int32_t* want, long long nwant) {
    int32_t* got = (int32_t*)malloc(hftok_max_ids(t, n) * sizeof(int32_t));
    long long m = hftok_encode(t, text, n, got);
    int ok = same_ids(got, m, want, nwant);
    if (!ok) {
        printf("  \"%.40s\": got", text);
        for (long long i = 0; i < m && i < 16; i++) printf(" %d", got[i]);
        printf(", expected");
        for (long long i = 0; i < nwant && i < 16; i++) printf(" %d", want[i]);
        printf("\n");
    }
    free(got);
    return ok;
}

/* Encodes then decodes; the bytes must come back exactly. */
static int roundtrip(HfTokenizer* t, const void* p, size_t n) {
    int32_t* ids = (int32_t*)malloc(hftok_max_ids(t, n) * sizeof(int32_t));
    char* back = (char*)malloc(n + 1);
    long long m = hftok_encode(t, p, n, ids), d = -1;
    int ok = m >= 0;
    for (long long i = 0; ok && i < m; i++) ok = ids[i] >= 0 && ids[i] < t->vocab_size;
    if (ok) d = hftok_decode(t, ids, (size_t)m, back, n + 1, NULL);
    ok = ok && d == (long long)n && memcmp(back, p, n) == 0;
    free(ids);
    free(back);
    return ok;
}

/* ------------------------------------------------------------------------------------------- */
static const char* g_text =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
    "It's 2024 and they're saying we'll see; I'd've thought 1234567 tokens... “quotes” — dashes — café, naïve, "
    "Ærøskøbing, Москва, 東京都, ١٢٣, ½, 🙂 and\ttabs\r\n   indented   lines    with     spaces\n"
    "def f(x):\n    return x ** 2  # the square of x, again and again and again\n";

static void test_json_reader(void) {
    const char* doc = " {\"a\": [1, -0, 2.5e-3, true, false, null, {}, []],\n \"s\": \"x\\n\\u00e9\\ud83d\\ude00\\\"\\/\" } ";
    Json j;
    char err[512] = "";
    int ok = json_parse(&j, doc, strlen(doc), "doc", err, sizeof err) == 0;
    int count = 0;
    int32_t a = ok ? json_find(&j, 0, "a", &count) : -1, s = ok ? json_find(&j, 0, "s", &count) : -1;
    long long v = 0;
    ok = ok && a >= 0 && j.nodes[a].count == 8 && j.nodes[j.nodes[a].child].type == JSON_NUMBER &&
         json_integer(&j, j.nodes[a].child, 0, 10, &v) == 0 && v == 1 && s >= 0 &&
         j.nodes[s].str_len == 10 && memcmp(j.strings + j.nodes[s].str, "x\n\xc3\xa9\xf0\x9f\x98\x80\"/", 10) == 0;
    int32_t frac = ok ? j.nodes[j.nodes[a].child].next : -1;
    ok = ok && json_is_zero(&j, frac) && json_integer(&j, j.nodes[frac].next, -10, 10, &v) != 0;
    if (j.nodes) json_free(&j);
    check(ok, "json_valid", "parse, escapes or numbers wrong: %s", err);

    static const struct { const char *text, *want; } bad[] = {
        {"", "found the end of the file"}, {"{\"a\":1,}", "expected a member name"}, {"[1,]", "expected a value"},
        {"{\"a\" 1}", "expected ':'"}, {"{\"a\":01}", "leading zeros"}, {"{\"a\":1.}", "after the decimal point"},
        {"{\"a\":\"\\x\"}", "unknown escape"}, {"{\"a\":\"\\ud800\"}", "not followed by a low surrogate"},
        {"{\"a\":\"\\udc00\"}", "lone low surrogate"}, {"{\"a\":\"\\u12G4\"}", "4 hex digits"},
        {"{\"a\":\"x\ty\"}", "control character 0x09"}, {"{\"a\":\"\xff\"}", "invalid UTF-8"},
        {"{\"a\":\"\xc0\xaf\"}", "invalid UTF-8"}, {"{\"a\":\"abc", "unterminated string"}, {"{\"a\":tru}", "did you mean true"},
        {"{} x", "after the end of the JSON value"}, {"\xEF\xBB\xBF{}", "byte order mark"}, {"{\"a\":[1 2]}", "expected ',' or ']'"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}'"}, {"'a'", "expected a value, found '''"}, {"{\"a\":-}", "expected a digit"},
    };
    int all = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        if (json_parse(&j, bad[i].text, strlen(bad[i].text), "bad.json", err, sizeof err) == 0) {
            json_free(&j);
            printf("  %s: parsed without error\n", bad[i].text);
            all = 0;
        } else if (!strstr(err, bad[i].want) || !strstr(err, "bad.json") || !strstr(err, "not valid JSON")) {
            printf("  %s: unexpected message: %s\n", bad[i].text, err);
            all = 0;
        }
    }
    check(all, "json_invalid_rejected", "see lines above");

    /* the position in messages, and depth: 100000 '[' must give an error, not exhaust the stack */
    ok = json_parse(&j, "{\n  \"a\": [1,\n   2 3]}", 20, "p.json", err, sizeof err) != 0 && strstr(err, "line 3, column 6");
    size_t deep = 100000;
    char* d = (char*)malloc(deep);
    memset(d, '[', deep);
    ok = ok && json_parse(&j, d, deep, "deep.json", err, sizeof err) != 0 && strstr(err, "deeper than 128");
    free(d);
    check(ok, "json_position_depth", "%s", err);
}

/* Splits of GPT-2's regex (checked against tokenizers' ByteLevel pre-tokenizer). */
static void test_splits(void) {
    static const struct { const char *text, *want; } cases[] = {
        {"Hello world", "Hello| world"}, {"it's", "it|'s"}, {"I'M", "I|'|M"}, {"you're 'll 'x", "you|'re| '|ll| '|x"},
        {"x  y", "x| | y"}, {"x\n\ny", "x|\n|\n|y"}, {"x \n y", "x| \n| y"}, {"end   ", "end|   "}, {"a1b2", "a|1|b|2"},
        {" 123abc", " 123|abc"}, {"!!!?", "!!!?"}, {" !!", " !!"}, {"don't!'s", "don|'t|!'|s"}, {"\t\tx", "\t|\t|x"},
        {"  \n", "  \n"}, {"x__y", "x|__|y"}, {"café", "café"}, {"naïve—really", "naïve|—|really"},
        {"“quoted”", "“|quoted|”"}, {"x\xc2\xa0y", "x|\xc2\xa0|y"}, {"٣٤ ٣", "٣٤| ٣"}, {"東京", "東京"},
        {"a\xe3\x80\x80 b", "a|\xe3\x80\x80| b"}, {"½²", "½²"}, {"\xff\xfe" "ab \xc3", "\xff\xfe" "ab| \xc3"},
    };
    int all = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unsigned char* p = (const unsigned char*)cases[i].text;
        size_t n = strlen(cases[i].text);
        Buf got = {0};
        for (size_t k = 0; k < n;) {
            size_t w = tj_next_word(p + k, n - k);
            if (k) buf_str(&got, "|");
            buf_add(&got, p + k, w);
            k += w;
        }
        if (strcmp(got.p, cases[i].want) != 0) {
            printf("  \"%s\" splits as \"%s\", expected \"%s\"\n", cases[i].text, got.p, cases[i].want);
            all = 0;
        }
        free(got.p);
    }
    check(all, "pretokenizer_splits", "see lines above");
}

/* A tokenizer trained by our code, written as tokenizer.json in every style. */
static void test_generated(Model* M) {
    HfTokenizer t[4];
    GenOpts o[4] = {{1, 0, 0, 0, 0, 0, 0}, {2, 0, 0, 0, 0, 0, 0}, {1, 1, 0, 0, 1, 0, 0}, {2, 1, 0, 0, 0, 0, 0}};
    int ok = 1;
    for (int i = 0; i < 4; i++) ok = ok && load_gen(&t[i], M, &o[i], NULL) == 0;
    if (!ok) { check(0, "gen_load", "see the line above"); return; }
    ok = t[0].vocab_size == M->n + 1 && t[0].eot == M->n && t[0].n_merges == M->nm && t[0].n_added == 1;
    for (int i = 1; i < 4; i++) ok = ok && t[i].fingerprint == t[0].fingerprint && t[i].vocab_size == t[0].vocab_size;
    check(ok, "gen_load_styles", "vocab %d (expected %d), eot %d, merges %d (expected %d); the four styles agree: fingerprints %08x %08x %08x %08x",
          t[0].vocab_size, M->n + 1, t[0].eot, t[0].n_merges, M->nm, t[0].fingerprint, t[1].fingerprint, t[2].fingerprint, t[3].fingerprint);

    size_t n = strlen(g_text);
    int32_t* want = (int32_t*)malloc((n + 1) * sizeof(int32_t));
    long long nw = ref_encode(M, g_text, n, 0, want);
    ok = 1;
    for (int i = 0; i < 4; i++) ok = ok && expect_ids(&t[i], g_text, n, want, nw);
    check(ok && nw < (long long)n * 2 / 3, "gen_encode_matches_reference", "%lld ids for %zu bytes", nw, n);

    /* a long word (no cache, many candidates), random bytes, random valid UTF-8 */
    Buf big = {0};
    static const char letters[] = "theandtheof";
    for (int i = 0; i < 3000; i++) buf_add(&big, &letters[i % 11], 1);
    int32_t* w2 = (int32_t*)malloc((big.n + 1) * sizeof(int32_t));
    long long n2 = ref_encode(M, big.p, big.n, 0, w2);
    check(expect_ids(&t[0], big.p, big.n, w2, n2), "gen_long_word", "a 3000-byte word differs from the reference");
    free(w2);
    Rng r = rng_seed(7);
    unsigned char* rb = (unsigned char*)malloc(1 << 16);
    for (int i = 0; i < 1 << 16; i++) rb[i] = (unsigned char)rng_u32(&r);
    ok = roundtrip(&t[0], rb, 1 << 16) && roundtrip(&t[1], g_text, n) && roundtrip(&t[0], "", 0);
    Buf u = {0};
    for (int i = 0; i < 20000; i++) {
        unsigned char c[4];
        uint32_t cp = rng_below(&r, 4) ? rng_below(&r, 0x3000) : 0x10000 + rng_below(&r, 0x20000);
        if (cp >= 0xD800 && cp < 0xE000) cp = ' ';
        buf_add(&u, c, (size_t)json_utf8_encode(cp, c));
    }
    ok = ok && roundtrip(&t[0], u.p, u.n);
    check(ok, "gen_roundtrip", "random bytes, the text or random UTF-8 do not round trip");
    free(rb); free(u.p); free(big.p); free(want);

    int32_t ids[3] = {tid(M, "a"), t[0].eot, tid(M, "b")};
    char out[64];
    ok = hftok_decode(&t[0], ids, 3, out, sizeof out, NULL) == 15 && memcmp(out, "a<|endoftext|>b", 15) == 0 &&
         hftok_decode(&t[0], ids, 3, out, sizeof out, "") == 2 && memcmp(out, "ab", 2) == 0;
    ids[1] = t[0].vocab_size;
    ok = ok && hftok_decode(&t[0], ids, 3, out, sizeof out, NULL) == -1;
    check(ok, "gen_decode_eot_invalid", "EOT text or an unknown id handled wrong");
    for (int i = 0; i < 4; i++) hftok_free(&t[i]);
}

/* Hand-made merges whose encodings are known. */
static void make_known(Model* M) {
    static const char* merges[][2] = {
        {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}, {"o", "r"}, {" w", "or"}, {"l", "d"}, {" wor", "ld"},
        {"'", "s"}, {"ab", "a"}, {"a", "b"}, {"a", "a"}, {"x", "y"}, {"x", "1"},
    };
    model_init(M);
    for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++) model_merge_str(M, merges[i][0], merges[i][1]);
    model_token(M, "xyz", 3); /* reachable only as a whole word (ignore_merges) */
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (long long)(sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))
static int expect_str(HfTokenizer* t, const char* s, const int32_t* want, long long n) {
    return expect_ids(t, s, strlen(s), want, n);
}

static void test_known(Model* M) {
    HfTokenizer t, ti;
    GenOpts o = {1, 0, 0, 0, 0, 0, 0}, oi = {2, 0, 0, 1, 0, 0, 0};
    if (load_gen(&t, M, &o, NULL) != 0 || load_gen(&ti, M, &oi, NULL) != 0) { check(0, "known_load", "see above"); return; }
    int sp = tid(M, " "), hello = tid(M, "hello"), world = tid(M, " world");
    int ok = expect_str(&t, "hello world", IDS(hello, world)) && expect_str(&t, "hello  world", IDS(hello, sp, world)) &&
             expect_str(&t, "it's", IDS(tid(M, "i"), tid(M, "t"), tid(M, "'s")));
    check(ok, "known_words", "see lines above");
    /* one merge at a time: "abab" -> ab, a, b -> (ab, a) ranks before (a, b) -> aba, b; all-at-once BPE gives ab, ab */
    ok = expect_str(&t, "abab", IDS(tid(M, "aba"), tid(M, "b"))) && expect_str(&t, "aaa", IDS(tid(M, "aa"), tid(M, "a")));
    check(ok, "known_merge_order", "HF merges one pair at a time, lowest rank then leftmost");
    ok = expect_str(&t, "xyz", IDS(tid(M, "xy"), tid(M, "z"))) && expect_str(&ti, "xyz", IDS(tid(M, "xyz"))) &&
         expect_str(&ti, " xyz", IDS(sp, tid(M, "xy"), tid(M, "z")));
    check(ok, "known_ignore_merges", "ignore_merges: a word in the vocabulary is one id");
    /* use_regex false: the whole text is one word, so merges cross what the regex would split */
    size_t n;
    char* js = gen_json(M, &o, &n);
    char* nore = replace1(js, "\"use_regex\":true", "\"use_regex\":false");
    HfTokenizer tr;
    char err[1024] = "";
    ok = nore && hftok_parse(&tr, nore, strlen(nore), "noregex.json", NULL, err, sizeof err) == 0;
    ok = ok && expect_str(&t, "x1", IDS(tid(M, "x"), tid(M, "1"))) && expect_str(&tr, "x1", IDS(tid(M, "x1")));
    if (ok) hftok_free(&tr);
    check(ok, "known_no_regex", "%s", err);
    free(js);
    free(nore);
    hftok_free(&t);
    hftok_free(&ti);
}

/* Concatenation of reference encodings and added-token ids: pieces as strings, ids as "#N". */
static long long want_of(const Model* M, const char* const* parts, int n, int prefix, int32_t* out) {
    long long k = 0;
    for (int i = 0; i < n; i++)
        if (parts[i][0] == '#') out[k++] = atoi(parts[i] + 1);
        else k += ref_encode(M, parts[i], strlen(parts[i]), prefix, out + k);
    return k;
}
static int expect_parts(HfTokenizer* t, const Model* M, const char* text, const char* const* parts, int n, int prefix) {
    int32_t want[256];
    return expect_ids(t, text, strlen(text), want, want_of(M, parts, n, prefix, want));
}

/* Added tokens: EOT in the text, GPT-NeoX's runs of spaces, prefix space per piece, lstrip, single_word. */
static void test_added(Model* M) {
    HfTokenizer t, tp;
    GenOpts o = {1, 0, 0, 0, 0, 1, 1}, op = {1, 0, 1, 0, 1, 1, 1};
    if (load_gen(&t, M, &o, NULL) != 0 || load_gen(&tp, M, &op, NULL) != 0) { check(0, "added_load", "see above"); return; }
    char eot[16], sp2[16], sp4[16], mask[16], ony[16];
    snprintf(eot, sizeof eot, "#%d", M->n);
    snprintf(sp2, sizeof sp2, "#%d", M->n + 1);
    snprintf(sp4, sizeof sp4, "#%d", M->n + 2);
    snprintf(mask, sizeof mask, "#%d", M->n + 3);
    snprintf(ony, sizeof ony, "#%d", M->n + 4);
    const char* p1[] = {"a", eot, "b"};
    const char* p2[] = {"x", sp4, "y"};
    const char* p3[] = {"x", sp4, " y"};
    const char* p4[] = {"x", sp2, " y"};
    int ok = t.eot == M->n && t.vocab_size == M->n + 5 && t.n_added == 5 && expect_parts(&t, M, "a<|endoftext|>b", p1, 3, 0) &&
             expect_parts(&t, M, "x    y", p2, 3, 0) && expect_parts(&t, M, "x     y", p3, 3, 0) &&
             expect_parts(&t, M, "x   y", p4, 3, 0);
    check(ok, "added_leftmost_longest", "EOT in the text or runs of spaces split wrong (vocab %d, eot %d)", t.vocab_size, t.eot);
    /* add_prefix_space: every piece between added tokens that does not start with ' ' gets one */
    const char* p5[] = {" a", eot, " b"};
    const char* p6[] = {" a", eot, eot, " b", sp2, "\n"};
    ok = expect_parts(&tp, M, "a<|endoftext|>b", p5, 3, 0) && expect_parts(&tp, M, " a<|endoftext|><|endoftext|>b  \n", p6, 6, 1) &&
         tp.fingerprint != t.fingerprint;
    check(ok, "added_prefix_space", "see lines above");
    /* lstrip takes the spaces before <mask>; single_word "ony" only between non-word characters */
    const char* p7[] = {"Hi", mask, " there"};
    const char* p8[] = {"tony ", ony, ",", ony};
    ok = expect_parts(&t, M, "Hi  <mask> there", p7, 3, 0) && expect_parts(&t, M, "tony ony,ony", p8, 4, 0);
    check(ok, "added_lstrip_single_word", "see lines above");
    HfTokenizer te;
    ok = load_gen(&te, M, &o, "<mask>") == 0 && te.eot == M->n + 3;
    if (ok) hftok_free(&te);
    ok = ok && load_gen(&te, M, &o, "he") == 0 && te.eot == tid(M, "he");
    if (ok) hftok_free(&te);
    ok = ok && load_gen(&te, M, &o, "<none>") == 0 && te.eot == -1;
    if (ok) hftok_free(&te);
    check(ok, "added_eot_content", "the EOT named by the caller: an added token, a vocab token, none");
    hftok_free(&t);
    hftok_free(&tp);
}

/* Loading must fail, naming the file and saying both keywords. */
static int bad_text(const char* what, const char* text, size_t n, const char* k1, const char* k2) {
    HfTokenizer t;
    char err[1024] = "";
    if (hftok_parse(&t, text, n, "bad.json", NULL, err, sizeof err) == 0) {
        hftok_free(&t);
        printf("  %s: loaded without error\n", what);
        return 0;
    }
    if (!strstr(err, "bad.json") || !strstr(err, k1) || (k2 && !strstr(err, k2))) {
        printf("  %s: unexpected message: %s\n", what, err);
        return 0;
    }
    return 1;
}

typedef struct { const char *from, *to, *k1, *k2; } Edit;

/* Each edit of a valid file must be refused with a message that says what was expected. */
static void test_bad(const Model* M) {
    static const Edit edits[] = {
        {"\"type\":\"BPE\"", "\"type\":\"WordPiece\"", "\"model.type\" is \"WordPiece\"", "expected \"BPE\""},
        {",\"merges\":[", ",\"nomerges\":[", "\"model.merges\" is missing", NULL},
        {"\"vocab\":{", "\"vocab\":[],\"x\":{", "\"model.vocab\" is an array, expected an object", NULL},
        {"\"<|endoftext|>\":", "\"zzz\":2000000,\"<|endoftext|>\":", "\"zzz\" has id 2000000", "expected an integer in 0..1048575"},
        {"\"<|endoftext|>\":", "\"zzz\":-1,\"<|endoftext|>\":", "\"zzz\" has id -1", NULL},
        {"\"<|endoftext|>\":", "\"zzz\":1.5,\"<|endoftext|>\":", "\"zzz\" has id 1.5", NULL},
        {"\"<|endoftext|>\":", "\"zzz\":\"7\",\"<|endoftext|>\":", "\"zzz\" is a string, expected an integer", NULL},
        {"\"<|endoftext|>\":", "\"zzz\":0,\"<|endoftext|>\":", "gives id 0 to both \"!\" and \"zzz\"", NULL},
        {"\"<|endoftext|>\":", "\"!\":9999,\"<|endoftext|>\":", "\"!\" is in model.vocab twice (ids 0 and 9999)", NULL},
        {"\"merges\":[", "\"merges\":[\"q zz\",", "model.merges[0]", "\"zz\" is not in model.vocab"},
        {"\"merges\":[", "\"merges\":[\"q r\",", "\"qr\" is not in model.vocab", NULL},
        {"\"merges\":[", "\"merges\":[\"a b c\",", "not two tokens separated by one space", NULL},
        {"\"merges\":[", "\"merges\":[[\"h\",\"e\"],", "model.merges[1] is a string but model.merges[0] is a pair", NULL},
        {"\"merges\":[", "\"merges\":[[\"h\"],", "model.merges[0] is not a pair of two strings", NULL},
        {"\"merges\":[", "\"merges\":[7,", "model.merges[0] is a number", NULL},
        {"\"\xc4\xa0\":", "\"\xc4\xa0\xc4\xa0\xc4\xa0\":", "no token \"\xc4\xa0\" for byte 0x20", NULL},
        {"\"type\":\"ByteLevel\",\"add_prefix_space\":false", "\"type\":\"Metaspace\",\"add_prefix_space\":false",
         "pre_tokenizer \"Metaspace\" is not supported", NULL},
        {"\"pre_tokenizer\":{", "\"pre_tokenizer\":null,\"x\":{", "pre_tokenizer \"null\" is not supported", NULL},
        {"\"add_prefix_space\":false,", "", "\"pre_tokenizer.add_prefix_space\" is missing", NULL},
        {"\"add_prefix_space\":false", "\"add_prefix_space\":0", "\"pre_tokenizer.add_prefix_space\" is a number, expected a boolean", NULL},
        {"\"normalizer\":null", "\"normalizer\":{\"type\":\"Lowercase\"}", "normalizer \"Lowercase\" is not supported", NULL},
        {"\"decoder\":{\"type\":\"ByteLevel\"", "\"decoder\":{\"type\":\"WordPiece\"", "decoder \"WordPiece\" is not supported", NULL},
        {"\"dropout\":null", "\"dropout\":0.1", "\"model.dropout\" is 0.1", NULL},
        {"\"byte_fallback\":false", "\"byte_fallback\":true", "\"model.byte_fallback\" is true", NULL},
        {"\"continuing_subword_prefix\":null", "\"continuing_subword_prefix\":\"##\"", "continuing_subword_prefix\" is \"##\"", NULL},
        {"\"added_tokens\":[", "\"added_tokens\":[{\"id\":5,\"content\":\"<zz>\"},", "has id 5, which model.vocab gives to \"&\"", NULL},
        {"\"added_tokens\":[", "\"added_tokens\":[{\"id\":9999,\"content\":\"he\"},", "has id 9999, but model.vocab gives it id", NULL},
        {"\"added_tokens\":[", "\"added_tokens\":[{\"id\":9999,\"content\":\"<a>\"},{\"id\":9999,\"content\":\"<b>\"},", "same id", NULL},
        {"\"added_tokens\":[", "\"added_tokens\":[{\"id\":9999,\"content\":\"\"},", "added_tokens[0] has an empty content", NULL},
        {"\"added_tokens\":[", "\"added_tokens\":[{\"content\":\"<a>\"},", "\"added_tokens[0].id\" is missing", NULL},
        {"\"added_tokens\":[", "\"added_tokens\":[{\"id\":1,\"content\":\"<a>\",\"lstrip\":1},", "\"added_tokens[0].lstrip\" is a number", NULL},
        {"\"version\":\"1.0\"", "\"model\":1,\"version\":\"1.0\"", "\"model\" is given 2 times", NULL},
    };
    GenOpts o = {1, 0, 0, 0, 0, 0, 0};
    size_t n;
    char* base = gen_json(M, &o, &n);
    int all = 1;
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char* bad = replace1(base, edits[i].from, edits[i].to);
        if (!bad) { printf("  edit %zu: '%s' is not in the generated file\n", i, edits[i].from); all = 0; continue; }
        all &= bad_text(edits[i].to, bad, strlen(bad), edits[i].k1, edits[i].k2);
        free(bad);
    }
    all &= bad_text("truncated", base, n / 2, "not valid JSON", "line 1");
    all &= bad_text("empty", base, 0, "not valid JSON", "found the end of the file");
    all &= bad_text("array", "[]", 2, "the JSON value is an array, expected an object", NULL);
    all &= bad_text("no model", "{}", 2, "\"model\" is missing", NULL);
    check(all, "bad_files_rejected", "see lines above");

    all = 1;
    /* variations HF accepts must load: no model type, dropout 0, no added tokens, NFC, no decoder */
    static const Edit fine[] = {
        {"\"type\":\"BPE\",", "", NULL, NULL}, {"\"dropout\":null", "\"dropout\":0.0", NULL, NULL},
        {"\"added_tokens\":[", "\"added_tokens\":null,\"x\":[", NULL, NULL}, {"\"normalizer\":null", "\"normalizer\":{\"type\":\"NFC\"}", NULL, NULL},
        {"\"decoder\":{", "\"decoder\":null,\"x\":{", NULL, NULL}, {"\"continuing_subword_prefix\":null", "\"continuing_subword_prefix\":\"\"", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        char* v = replace1(base, fine[i].from, fine[i].to);
        HfTokenizer t;
        char err[1024] = "";
        int rc = v ? hftok_parse(&t, v, strlen(v), "fine.json", NULL, err, sizeof err) : -1;
        if (rc == 0) hftok_free(&t);
        else { printf("  '%s' -> '%s' should load: %s\n", fine[i].from, fine[i].to, err); all = 0; }
        free(v);
    }
    check(all, "accepted_variations", "see lines above");
    free(base);
}

/* ---- files and the data tool ---------------------------------------------------------------- */
static char g_dir[256];
static const char* tmp_path(const char* name) { return check_path(g_dir, name); }
static void write_file(const char* name, const char* s, size_t n) {
    FILE* f = fopen(tmp_path(name), "wb");
    if (f) { fwrite(s, 1, n, f); fclose(f); }
}
/* Runs a shell command; its stdout+stderr go to DIR/log. Returns the exit status. */
static int run(const char* fmt, ...) DATA_PRINTF(1, 2);
static int run(const char* fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " > %s/log 2>&1", g_dir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}
static int log_has(const char* s) {
    char buf[4096] = "";
    FILE* f = fopen(tmp_path("log"), "rb");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return strstr(buf, s) != NULL;
}

static void test_files(const Model* M) {
    GenOpts o = {2, 1, 0, 0, 0, 1, 0};
    size_t n;
    char* js = gen_json(M, &o, &n);
    write_file("tok.json", js, n);
    HfTokenizer a, b;
    char err[1024] = "";
    int ok = hftok_parse(&a, js, n, "mem", NULL, err, sizeof err) == 0 && hftok_load(&b, tmp_path("tok.json"), NULL, err, sizeof err) == 0;
    ok = ok && a.fingerprint == b.fingerprint && hftok_is_json_file(tmp_path("tok.json"));
    if (ok) { hftok_free(&a); hftok_free(&b); }
    ok = ok && hftok_load(&a, tmp_path("none.json"), NULL, err, sizeof err) != 0 && strstr(err, "none.json") &&
         strstr(err, "No such file") && hftok_load(&a, g_dir, NULL, err, sizeof err) != 0 && strstr(err, "not a regular file");
    check(ok, "file_load", "%s", err);
    free(js);
}

/* The data tool with a tokenizer.json: encode (EOT before the document, HF ids, vocab and
   fingerprint in the header), decode back to the bytes, info, and its one-line errors. */
static void test_cli(const Model* M) {
    if (access("data/bpe", X_OK) != 0) { printf("note: data/bpe is not built (run make data/bpe): CLI checks skipped\n"); return; }
    HfTokenizer t;
    char err[1024] = "";
    if (hftok_load(&t, tmp_path("tok.json"), NULL, err, sizeof err) != 0) { check(0, "cli_encode", "%s", err); return; }
    size_t n = strlen(g_text);
    write_file("in.txt", g_text, n);
    int rc = run("data/bpe encode -t %s -o %s --val-fraction 0 %s", tmp_path("tok.json"), g_dir, tmp_path("in.txt"));
    int32_t *ids = NULL, *want = (int32_t*)malloc((n + 2) * sizeof(int32_t));
    ShardInfo in;
    want[0] = t.eot;
    long long m = hftok_encode(&t, g_text, n, want + 1) + 1;
    int ok = rc == 0 && shard_read(tmp_path("train_000000.bin"), 0, &ids, &in, err, sizeof err) == 0;
    ok = ok && in.vocab == t.vocab_size && in.tok_hash == t.fingerprint && same_ids(ids, (long long)in.ntok, want, m);
    check(ok, "cli_encode", "exit %d; %s (vocab %d, fingerprint %08x)", rc, err, ok ? in.vocab : 0, ok ? in.tok_hash : 0);
    rc = run("data/bpe decode --tokenizer-json %s --eot-text '' %s > %s && cmp %s %s", tmp_path("tok.json"),
             tmp_path("train_000000.bin"), tmp_path("out.txt"), tmp_path("in.txt"), tmp_path("out.txt"));
    check(rc == 0, "cli_decode", "decoding the shard does not give the text back");
    rc = run("data/bpe info -t %s %s %s", tmp_path("tok.json"), tmp_path("tok.json"), tmp_path("train_000000.bin"));
    check(rc == 0 && log_has("Hugging Face tokenizer.json") && log_has("1 EOT (documents)"), "cli_info", "exit %d", rc);
    rc = run("data/bpe encode --tokenizer-json %s -o %s %s", tmp_path("in.txt"), g_dir, tmp_path("in.txt"));
    ok = rc == 1 && log_has("error: tokenizer") && log_has("in.txt' is not valid JSON");
    rc = run("data/bpe encode -t %s --eot-token '<none>' -o %s %s", tmp_path("tok.json"), g_dir, tmp_path("in.txt"));
    ok = ok && rc == 1 && log_has("no end-of-text token \"<none>\"");
    rc = run("data/bpe encode -t %s --eot-token xy -o %s --val-fraction 0 %s", tmp_path("tok.json"), g_dir, tmp_path("in.txt"));
    free(ids);
    ok = ok && rc == 0 && shard_read(tmp_path("train_000000.bin"), 0, &ids, &in, err, sizeof err) == 0 && ids[0] == tid(M, "xy");
    check(ok, "cli_errors_eot_token", "a bad tokenizer.json, a missing EOT or --eot-token handled wrong");
    free(ids);
    free(want);
    hftok_free(&t);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (check_tmpdir(g_dir, sizeof g_dir, "test_tokjson")) return 1;
    test_json_reader();
    test_splits();
    Tokenizer ours;
    char err[512];
    const unsigned char* texts[1] = {(const unsigned char*)g_text};
    size_t lens[1] = {strlen(g_text)};
    Model trained, known;
    if (tokenizer_train(&ours, texts, lens, 1, 600, 0, err, sizeof err) != 0) { printf("FAIL setup: %s\n", err); return 1; }
    model_from_ours(&trained, &ours);
    tokenizer_free(&ours);
    make_known(&known);
    test_generated(&trained);
    test_known(&known);
    test_added(&known);
    test_bad(&known);
    test_files(&known);
    test_cli(&known);
    model_free(&trained);
    model_free(&known);
    check_rmdir(g_dir);
    return check_summary("test_tokjson");
}
