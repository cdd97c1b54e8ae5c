/*
 * tokenizer_json.h — owns Hugging Face `tokenizer.json` files of the byte-level BPE kind (GPT-2,
 * GPT-NeoX, RoBERTa): the validated load (common/json.h reads the JSON itself), and encoding /
 * decoding with the ids and the rules of the `tokenizers` library, so shards match what a published
 * checkpoint (e.g. state-spaces/mamba-130m-hf, GPT-NeoX's 50277 tokens) was trained on.
 * Plain C11 / C++17, header-only, no libraries. Functions that can fail return -1 with a message
 * in err naming the file and what was expected; they never exit. Built on tokenizer.h's hash maps.
 *
 * Why a file of its own and not an import into our tokenizer file: our ids are 0..255 = bytes,
 * 256+i = merge i; HF ids are arbitrary (GPT-2's byte 'a' is 64), its pre-split is GPT-2's regex
 * with no 64-byte cut, it applies one merge at a time (lowest rank, then leftmost, re-checking new
 * pairs) where ours applies a merge everywhere at once, and it has added tokens matched in the raw
 * text. Remapping ids would not make the other three agree, so this is a second encoder that
 * keeps HF's ids; shards record its vocabulary size (max id + 1) and a fingerprint.
 *
 * What encoding does, in HF's order (tokenizers 0.23, checked by dev/tokjson_check.py):
 *   1. added tokens with normalized=false are split off the text (leftmost-longest match), then
 *      those with normalized=true off the remaining pieces; single_word / lstrip / rstrip apply;
 *   2. ByteLevel pre-tokenizer on each remaining piece: a ' ' is prepended when add_prefix_space
 *      and the piece does not start with one; then GPT-2's regex (use_regex, default true)
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      cuts it into words (the whole piece is one word without the regex);
 *   3. each word's bytes start as the ids of GPT-2's byte characters (vocab keys spell byte b as
 *      one visible character: printable Latin-1 as itself, the other 68 bytes as U+0100..U+0143);
 *      with ignore_merges a word that is itself a vocab entry is that id; otherwise the pair of
 *      lowest merge rank is merged, leftmost first, one occurrence at a time, until none is left.
 * Decoding: a token whose characters are all byte characters gives those bytes, any other (added
 * tokens such as NeoX's runs of spaces, <|endoftext|>) its UTF-8 text, like HF's ByteLevel decoder.
 *
 * Accepted: model.type "BPE" (or no type), merges as ["a b", ...] or [["a","b"], ...] (one style),
 * dropout null/0, byte_fallback false, no subword prefix/suffix; pre_tokenizer ByteLevel;
 * decoder ByteLevel or none; normalizer none or NFC; post_processor anything (ignored: the data
 * tool puts EOT before each document itself). Anything else is refused with a message.
 * Where this differs from the HF library:
 *   - the NFC normalizer is not applied: text is taken as already NFC (ASCII and nearly all text
 *     is; a decomposed accent would be split differently);
 *   - \p{L}, \p{N}, \s come from a table generated from tokenizers 0.23.3 itself (Oniguruma,
 *     Unicode 16, \s = White_Space; `python3 dev/tokjson_check.py --gen-tables`); characters
 *     assigned by later Unicode versions count as symbols;
 *   - text that is not valid UTF-8 (HF refuses it) is encoded anyway: each invalid byte is a letter;
 *   - single_word's "word character" is a letter, digit or '_' (Rust's \w also has marks);
 *   - after an rstrip token the search resumes after the stripped spaces (HF's resumes inside them);
 *   - decoding returns the raw bytes where HF would replace invalid UTF-8 with U+FFFD.
 * A pair listed twice in merges keeps its last rank (HF builds a map, the last entry wins).
 * EOT: the id of the added token <|endoftext|> (or of the content the caller names), -1 if none.
 *
 * Names: HfTokenizer / hftok_* are the API, tj_* the rest; json_* come from common/json.h, whose
 * strict reader decodes every string exactly (vocab strings must be).
 */
#ifndef COMMON_TOKENIZER_JSON_H
#define COMMON_TOKENIZER_JSON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "json.h"      /* the JSON reader, UTF-8; data_error (shard.h) */
#include "tokenizer.h" /* TokPairMap, TokCache, tok_hash_bytes, TOK_MAX_VOCAB */

#define HFTOK_DEFAULT_EOT "<|endoftext|>"

/* ---------------------------------------------------------------------------------------------
 * GPT-2's byte characters
 * ------------------------------------------------------------------------------------------- */
/* GPT-2's byte <-> character mapping: printable Latin-1 bytes stand for themselves, the other 68
   (controls, space, 0x7F..0xA0, the soft hyphen) for U+0100.. in byte order, so that every vocab
   string is visible text ('Ġ' = U+0120 is the space). */
static inline uint32_t tj_byte_char(unsigned b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    return 0x100u + (b <= 0x20 ? b : b <= 0xA0 ? b - 0x7Fu + 0x21u : 0x43u);
}
/* The byte a character stands for, -1 if it is not one of the 256 byte characters. */
static inline int tj_char_byte(uint32_t cp) {
    if (cp < 0x100) return tj_byte_char(cp) == cp ? (int)cp : -1;
    if (cp <= 0x120) return (int)(cp - 0x100);
    if (cp <= 0x142) return (int)(cp - 0x121 + 0x7F);
    return cp == 0x143 ? 0xAD : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Character classes of the pre-tokenizer regex: \p{L}, \p{N}, \s and the rest
 * ------------------------------------------------------------------------------------------- */
enum { TJ_L = 0, TJ_N = 1, TJ_S = 2, TJ_O = 3 };
static inline int tj_uclass(uint32_t cp); /* code points >= 0x80: the table at the end of this file */

static inline int tj_ascii_class(unsigned c) {
    if ((unsigned)((c | 32u) - 'a') < 26u) return TJ_L;
    if ((unsigned)(c - '0') < 10u) return TJ_N;
    if (c == ' ' || (unsigned)(c - 9u) < 5u) return TJ_S; /* \t \n \v \f \r */
    return TJ_O;
}

/* Class and byte length of the character at p (n > 0); a byte that does not start valid UTF-8 is
   a one-byte letter (HF cannot take such text at all; this keeps every byte string encodable). */
static inline int tj_char_at(const unsigned char* p, size_t n, int* len) {
    uint32_t cp;
    if (p[0] < 0x80) { *len = 1; return tj_ascii_class(p[0]); }
    int l = json_utf8_decode(p, n, &cp);
    if (!l) { *len = 1; return TJ_L; }
    *len = l;
    return tj_uclass(cp);
}

/* Class and length of the character that ends at p[b-1] (b > 0), consistent with tj_char_at. */
static inline int tj_char_before(const unsigned char* p, size_t b, int* len) {
    size_t s = b - 1;
    while (s > 0 && b - s < 4 && (p[s] & 0xC0) == 0x80) s--;
    int l, c = tj_char_at(p + s, b - s, &l);
    if ((size_t)l == b - s) { *len = l; return c; }
    *len = 1;
    return TJ_L;
}

/* Bytes of the run of class-c characters at p. */
static inline size_t tj_run(const unsigned char* p, size_t n, int c) {
    size_t i = 0;
    int l;
    while (i < n && tj_char_at(p + i, n - i, &l) == c) i += (size_t)l;
    return i;
}

/* Length of the word GPT-2's regex matches at p (n > 0): the alternatives in their order. */
static inline size_t tj_next_word(const unsigned char* p, size_t n) {
    if (p[0] == '\'' && n >= 2) { /* 's 't 'm 'd 're 've 'll (lower case only, as in the regex) */
        unsigned a = p[1], b = n >= 3 ? p[2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    int l, c;
    if (p[0] == ' ' && n > 1 && (c = tj_char_at(p + 1, n - 1, &l)) != TJ_S) return 1 + tj_run(p + 1, n - 1, c);
    c = tj_char_at(p, n, &l);
    if (c != TJ_S) return tj_run(p, n, c);
    /* whitespace: \s+(?!\S) takes a run that ends the text, or all but the last character of a
       longer run before a non-space (that character then starts the next word); else \s+ */
    size_t i = 0, last = 0;
    while (i < n && tj_char_at(p + i, n - i, &l) == TJ_S) { last = i; i += (size_t)l; }
    return i == n || last == 0 ? i : last;
}

/* ---------------------------------------------------------------------------------------------
 * The tokenizer
 * ------------------------------------------------------------------------------------------- */
typedef struct {
    int32_t id;
    uint32_t off, len; /* content (UTF-8, matched in the raw text) in HfTokenizer.added_text */
    uint8_t special, normalized, single_word, lstrip, rstrip;
} TjAdded;

typedef struct { uint32_t rank; int32_t pos, id; } TjCand; /* a possible merge in a word */

enum { TJ_ABSENT = 0, TJ_MODEL = 1, TJ_ADDED = 2 }; /* what an id is */

typedef struct {
    int vocab_size;       /* max id + 1 over model.vocab and added_tokens */
    int eot;              /* the end-of-text id, -1 if the file has none */
    int n_model, n_merges, n_added;
    int add_prefix_space, use_regex, ignore_merges, nfc;
    uint32_t fingerprint; /* FNV-1a of everything that decides ids; shards store it */
    int max_token_bytes;  /* longest decoded token */
    uint8_t* kind;        /* [vocab_size] TJ_ABSENT / TJ_MODEL / TJ_ADDED */
    uint32_t *tok_off, *tok_len; /* [vocab_size] decoded bytes of each id in bytes[] */
    unsigned char* bytes;
    uint32_t *name_off, *name_len; /* [vocab_size] model.vocab keys in names[] */
    char* names;
    int32_t* name_map;    /* open addressing, key -> id of model.vocab (-1 empty) */
    size_t name_cap;
    int32_t byte_id[256]; /* id of each byte's character */
    TokPairMap rank;      /* (left id, right id) -> merge rank */
    int32_t* merges;      /* [n_merges][3]: merge r joins left, right into new */
    TjAdded* added;
    char* added_text;
    int32_t* added_order[2];      /* per set (0: normalized=false, 1: true): indices by first byte, longest first */
    int32_t added_first[2][257];  /* per set and first byte: range in added_order */
    /* encoding scratch and cache (so encoding is not thread-safe) */
    TokCache cache;
    int32_t *sym, *sprev, *snext;
    TjCand* heap;
    size_t cap_sym;
    unsigned char *piece, *word; /* a piece with its prefix space; a word spelled in byte characters */
    size_t cap_piece, cap_word;
} HfTokenizer;

static inline void hftok_free(HfTokenizer* t) {
    free(t->kind); free(t->tok_off); free(t->tok_len); free(t->bytes);
    free(t->name_off); free(t->name_len); free(t->names); free(t->name_map);
    tok_pairmap_free(&t->rank);
    free(t->merges);
    free(t->added); free(t->added_text); free(t->added_order[0]); free(t->added_order[1]);
    tok_cache_free(&t->cache);
    free(t->sym); free(t->sprev); free(t->snext); free(t->heap);
    free(t->piece);
    free(t->word);
    memset(t, 0, sizeof *t);
}

/* ---- name (model.vocab key) -> id ---------------------------------------------------------- */
static inline int32_t tj_name_find(const HfTokenizer* t, const char* s, size_t n) {
    size_t mask = t->name_cap - 1;
    for (size_t i = (size_t)tok_hash_bytes((const unsigned char*)s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = t->name_map[i];
        if (id < 0) return -1;
        if (t->name_len[id] == n && memcmp(t->names + t->name_off[id], s, n) == 0) return id;
    }
}
/* Inserts id under its name; returns the id that already has that name, or -1. */
static inline int32_t tj_name_insert(HfTokenizer* t, int32_t id) {
    const char* s = t->names + t->name_off[id];
    size_t n = t->name_len[id], mask = t->name_cap - 1, i;
    int32_t old = tj_name_find(t, s, n);
    if (old >= 0) return old;
    for (i = (size_t)tok_hash_bytes((const unsigned char*)s, n) & mask; t->name_map[i] >= 0; i = (i + 1) & mask) {}
    t->name_map[i] = id;
    return -1;
}

/* ---- reading the file's sections --------------------------------------------------------------- */
/* Member `key` of object obj (`where` names obj in messages), of one of the JSON types in the mask;
   *out = -1 when it is absent (an error if required). A key given twice is an error. */
static inline int tj_member(Json* j, int32_t obj, const char* where, const char* key, unsigned types, int required,
                            int32_t* out) {
    int count;
    int32_t k = json_find(j, obj, key, &count);
    char full[128], want[96] = "";
    snprintf(full, sizeof full, "%s%s%s", where, *where ? "." : "", key);
    *out = -1;
    if (count > 1) return data_error(j->err, j->errlen, "tokenizer '%s': \"%s\" is given %d times", j->name, full, count);
    if (k < 0)
        return required ? data_error(j->err, j->errlen, "tokenizer '%s': \"%s\" is missing", j->name, full) : 0;
    if (types & JSON_MASK(j->nodes[k].type)) { *out = k; return 0; }
    for (int ty = 0; ty <= JSON_OBJECT; ty++) {
        if (!(types & JSON_MASK(ty)) || ty == JSON_TRUE) continue;
        size_t w = strlen(want);
        snprintf(want + w, sizeof want - w, "%s%s", w ? " or " : "", ty == JSON_FALSE ? "a boolean" : json_type_name(ty));
    }
    int type = j->nodes[k].type;
    return data_error(j->err, j->errlen, "tokenizer '%s': \"%s\" is %s, expected %s", j->name, full,
                      type == JSON_TRUE || type == JSON_FALSE ? "a boolean" : json_type_name(type), want);
}

/* A boolean member; def when absent. */
static inline int tj_bool(Json* j, int32_t obj, const char* where, const char* key, int def, int* v) {
    int32_t k;
    if (tj_member(j, obj, where, key, JSON_MASK(JSON_TRUE) | JSON_MASK(JSON_FALSE), 0, &k) != 0) return -1;
    *v = k < 0 ? def : j->nodes[k].type == JSON_TRUE;
    return 0;
}

/* The "type" string of a section object, for messages ("?" if it has none). */
static inline const char* tj_type_of(const Json* j, int32_t obj) {
    int count;
    int32_t k = json_find(j, obj, "type", &count);
    return k >= 0 && j->nodes[k].type == JSON_STRING ? j->strings + j->nodes[k].str : "?";
}

/* model: type BPE and the options that would change ids in ways this reader does not do. */
static inline int tj_read_model_options(HfTokenizer* t, Json* j, int32_t model) {
    int32_t k;
    int flag;
    if (tj_member(j, model, "model", "type", JSON_MASK(JSON_STRING), 0, &k) != 0) return -1;
    if (k >= 0 && !json_is_string(j, k, "BPE"))
        return data_error(j->err, j->errlen, "tokenizer '%s': \"model.type\" is \"%.40s\", expected \"BPE\" (this reader "
                          "handles byte-level BPE tokenizers: GPT-2, GPT-NeoX, RoBERTa)", j->name, j->strings + j->nodes[k].str);
    if (tj_member(j, model, "model", "dropout", JSON_MASK(JSON_NULL) | JSON_MASK(JSON_NUMBER), 0, &k) != 0) return -1;
    if (k >= 0 && j->nodes[k].type == JSON_NUMBER && !json_is_zero(j, k))
        return data_error(j->err, j->errlen, "tokenizer '%s': \"model.dropout\" is %.*s, expected null: BPE dropout makes "
                          "encoding random (it is for training a tokenizer)", j->name, (int)j->nodes[k].str_len,
                          j->src + j->nodes[k].str);
    if (tj_bool(j, model, "model", "byte_fallback", 0, &flag) != 0) return -1;
    if (flag)
        return data_error(j->err, j->errlen, "tokenizer '%s': \"model.byte_fallback\" is true, expected false: byte fallback "
                          "(<0xNN> tokens) belongs to SentencePiece-style BPE, not byte-level BPE", j->name);
    const char* affixes[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        if (tj_member(j, model, "model", affixes[i], JSON_MASK(JSON_NULL) | JSON_MASK(JSON_STRING), 0, &k) != 0) return -1;
        if (k >= 0 && j->nodes[k].type == JSON_STRING && j->nodes[k].str_len)
            return data_error(j->err, j->errlen, "tokenizer '%s': \"model.%s\" is \"%.20s\", expected null (byte-level BPE "
                              "has no subword markers)", j->name, affixes[i], j->strings + j->nodes[k].str);
    }
    return tj_bool(j, model, "model", "ignore_merges", 0, &t->ignore_merges);
}

/* normalizer (none or NFC), pre_tokenizer (ByteLevel), decoder (none or ByteLevel). */
static inline int tj_read_pipeline(HfTokenizer* t, Json* j, int32_t root) {
    const unsigned obj_or_null = JSON_MASK(JSON_OBJECT) | JSON_MASK(JSON_NULL);
    int32_t k;
    if (tj_member(j, root, "", "normalizer", obj_or_null, 0, &k) != 0) return -1;
    if (k >= 0 && j->nodes[k].type == JSON_OBJECT) {
        if (strcmp(tj_type_of(j, k), "NFC") != 0)
            return data_error(j->err, j->errlen, "tokenizer '%s': normalizer \"%.40s\" is not supported (expected none or "
                              "NFC)", j->name, tj_type_of(j, k));
        t->nfc = 1;
    }
    if (tj_member(j, root, "", "pre_tokenizer", obj_or_null, 1, &k) != 0) return -1;
    if (j->nodes[k].type == JSON_NULL || strcmp(tj_type_of(j, k), "ByteLevel") != 0)
        return data_error(j->err, j->errlen, "tokenizer '%s': pre_tokenizer \"%.40s\" is not supported (expected ByteLevel: "
                          "this reader implements the byte-level pre-tokenizer with GPT-2's regex)", j->name,
                          j->nodes[k].type == JSON_NULL ? "null" : tj_type_of(j, k));
    int32_t flag;
    if (tj_member(j, k, "pre_tokenizer", "add_prefix_space", JSON_MASK(JSON_TRUE) | JSON_MASK(JSON_FALSE), 1, &flag) != 0)
        return -1;
    t->add_prefix_space = j->nodes[flag].type == JSON_TRUE;
    if (tj_bool(j, k, "pre_tokenizer", "use_regex", 1, &t->use_regex) != 0) return -1;
    if (tj_member(j, root, "", "decoder", obj_or_null, 0, &k) != 0) return -1;
    if (k >= 0 && j->nodes[k].type == JSON_OBJECT && strcmp(tj_type_of(j, k), "ByteLevel") != 0)
        return data_error(j->err, j->errlen, "tokenizer '%s': decoder \"%.40s\" is not supported (expected ByteLevel or none)",
                          j->name, tj_type_of(j, k));
    return 0;
}

/* An id in 0..TOK_MAX_VOCAB-1, from node k; `what` says whose id it is in the message. */
static inline int tj_id(Json* j, int32_t k, const char* what, const char* token, int32_t* id) {
    long long v;
    const JsonNode* d = &j->nodes[k];
    *id = -1;
    if (json_integer(j, k, 0, TOK_MAX_VOCAB - 1, &v) == 0) { *id = (int32_t)v; return 0; }
    if (d->type != JSON_NUMBER)
        return data_error(j->err, j->errlen, "tokenizer '%s': the id of %s \"%.60s\" is %s, expected an integer in 0..%d",
                          j->name, what, token, json_type_name(d->type), TOK_MAX_VOCAB - 1);
    return data_error(j->err, j->errlen, "tokenizer '%s': %s \"%.60s\" has id %.*s, expected an integer in 0..%d", j->name,
                      what, token, (int)(d->str_len < 30 ? d->str_len : 30), j->src + d->str, TOK_MAX_VOCAB - 1);
}

/* Reads one added_tokens entry into a (content copied to *text at *used). */
static inline int tj_read_added_entry(Json* j, int32_t e, int i, TjAdded* a, char* text, size_t* used) {
    char where[48];
    int32_t kid, kc;
    int flag[5];
    const char* keys[5] = {"special", "normalized", "single_word", "lstrip", "rstrip"};
    snprintf(where, sizeof where, "added_tokens[%d]", i);
    if (j->nodes[e].type != JSON_OBJECT)
        return data_error(j->err, j->errlen, "tokenizer '%s': %s is %s, expected an object", j->name, where, json_type_name(j->nodes[e].type));
    if (tj_member(j, e, where, "content", JSON_MASK(JSON_STRING), 1, &kc) != 0) return -1;
    if (tj_member(j, e, where, "id", JSON_MASK(JSON_NUMBER), 1, &kid) != 0) return -1;
    if (!j->nodes[kc].str_len) return data_error(j->err, j->errlen, "tokenizer '%s': %s has an empty content", j->name, where);
    if (tj_id(j, kid, "added token", j->strings + j->nodes[kc].str, &a->id) != 0) return -1;
    for (int f = 0; f < 5; f++)
        if (tj_bool(j, e, where, keys[f], f == 1 ? !flag[0] : 0, &flag[f]) != 0) return -1; /* normalized: default !special */
    a->special = (uint8_t)flag[0];
    a->normalized = (uint8_t)flag[1];
    a->single_word = (uint8_t)flag[2];
    a->lstrip = (uint8_t)flag[3];
    a->rstrip = (uint8_t)flag[4];
    a->off = (uint32_t)*used;
    a->len = j->nodes[kc].str_len;
    memcpy(text + *used, j->strings + j->nodes[kc].str, a->len);
    *used += a->len;
    return 0;
}

/* added_tokens (optional; list -1 when absent or null). */
static inline int tj_read_added(HfTokenizer* t, Json* j, int32_t list) {
    size_t used = 0;
    int i = 0;
    t->n_added = list >= 0 ? j->nodes[list].count : 0;
    t->added = (TjAdded*)calloc((size_t)t->n_added + 1, sizeof(TjAdded));
    t->added_text = (char*)malloc(j->nstr + 1);
    if (!t->added || !t->added_text) return data_error(j->err, j->errlen, "tokenizer '%s': out of memory", j->name);
    for (int32_t c = list >= 0 ? j->nodes[list].child : -1; c >= 0; c = j->nodes[c].next, i++)
        if (tj_read_added_entry(j, c, i, &t->added[i], t->added_text, &used) != 0) return -1;
    return 0;
}

/* Checks model.vocab's ids; the vocabulary size is the largest id (there and in added_tokens) + 1. */
static inline int tj_vocab_size(HfTokenizer* t, Json* j, int32_t vocab) {
    int32_t id = -1, v = -1;
    for (int32_t c = j->nodes[vocab].child; c >= 0; c = j->nodes[c].next) {
        if (tj_id(j, c, "model.vocab token", j->strings + j->nodes[c].key, &id) != 0) return -1;
        if (id > v) v = id;
    }
    if (v < 0) return data_error(j->err, j->errlen, "tokenizer '%s': \"model.vocab\" is empty", j->name);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id > v) v = t->added[i].id;
    t->n_model = j->nodes[vocab].count;
    t->vocab_size = v + 1;
    return 0;
}

/* Per-id tables, and model.vocab into them: names, the name map, duplicate ids and names refused. */
static inline int tj_read_vocab(HfTokenizer* t, Json* j, int32_t vocab) {
    size_t V = (size_t)t->vocab_size, used = 0;
    t->kind = (uint8_t*)calloc(V, 1);
    t->name_off = (uint32_t*)calloc(V, sizeof(uint32_t));
    t->name_len = (uint32_t*)calloc(V, sizeof(uint32_t));
    t->names = (char*)malloc(j->nstr + 1);
    for (t->name_cap = 1024; t->name_cap < 2 * (size_t)t->n_model;) t->name_cap *= 2;
    t->name_map = (int32_t*)malloc(t->name_cap * sizeof(int32_t));
    if (!t->kind || !t->name_off || !t->name_len || !t->names || !t->name_map)
        return data_error(j->err, j->errlen, "tokenizer '%s': out of memory for a vocabulary of %zu", j->name, V);
    memset(t->name_map, 0xFF, t->name_cap * sizeof(int32_t));
    for (int32_t c = j->nodes[vocab].child; c >= 0; c = j->nodes[c].next) {
        int32_t id = -1, old;
        const char* s = j->strings + j->nodes[c].key;
        tj_id(j, c, "model.vocab token", s, &id); /* checked by tj_vocab_size */
        if (t->kind[id])
            return data_error(j->err, j->errlen, "tokenizer '%s': model.vocab gives id %d to both \"%.60s\" and \"%.60s\"",
                              j->name, id, t->names + t->name_off[id], s);
        t->kind[id] = TJ_MODEL;
        t->name_off[id] = (uint32_t)used;
        t->name_len[id] = j->nodes[c].key_len;
        memcpy(t->names + used, s, (size_t)j->nodes[c].key_len + 1);
        used += (size_t)j->nodes[c].key_len + 1;
        if ((old = tj_name_insert(t, id)) >= 0)
            return data_error(j->err, j->errlen, "tokenizer '%s': \"%.60s\" is in model.vocab twice (ids %d and %d)", j->name, s,
                              old, id);
    }
    return 0;
}

/* Added tokens against model.vocab: HF gives an added token the id model.vocab has for its content
   (else a new one), so a file where the two disagree would not encode as written: refused. */
static inline int tj_check_added(HfTokenizer* t, Json* j) {
    for (int i = 0; i < t->n_added; i++) {
        const TjAdded* a = &t->added[i];
        const char* s = t->added_text + a->off;
        int32_t m = tj_name_find(t, s, a->len);
        if (m >= 0 && m != a->id)
            return data_error(j->err, j->errlen, "tokenizer '%s': added token \"%.*s\" has id %d, but model.vocab gives it id %d",
                              j->name, (int)(a->len < 60 ? a->len : 60), s, a->id, m);
        if (m < 0 && t->kind[a->id] == TJ_MODEL)
            return data_error(j->err, j->errlen, "tokenizer '%s': added token \"%.*s\" has id %d, which model.vocab gives to "
                              "\"%.60s\"", j->name, (int)(a->len < 60 ? a->len : 60), s, a->id, t->names + t->name_off[a->id]);
        for (int k = 0; k < i; k++) /* quadratic, but added tokens are few */
            if (t->added[k].id == a->id || (t->added[k].len == a->len && !memcmp(t->added_text + t->added[k].off, s, a->len)))
                return data_error(j->err, j->errlen, "tokenizer '%s': added_tokens[%d] and added_tokens[%d] have the same %s",
                                  j->name, k, i, t->added[k].id == a->id ? "id" : "content");
        t->kind[a->id] = TJ_ADDED;
    }
    return 0;
}

/* The bytes a token string decodes to: its byte characters' bytes when it has only those, else its
   UTF-8 text (HF's ByteLevel decoder). out needs room for n bytes. */
static inline size_t tj_string_bytes(const char* s, size_t n, unsigned char* out) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = json_utf8_decode((const unsigned char*)s + i, n - i, &cp), b = l ? tj_char_byte(cp) : -1;
        if (b < 0) { memcpy(out, s, n); return n; }
        out[k++] = (unsigned char)b;
        i += (size_t)l;
    }
    return k;
}

/* Decode table of every id, and the ids of the 256 byte characters (all must be in model.vocab). */
static inline int tj_build_tables(HfTokenizer* t, Json* j) {
    size_t V = (size_t)t->vocab_size, total = 0, nb = 0;
    for (size_t id = 0; id < V; id++) total += t->name_len[id];
    for (int i = 0; i < t->n_added; i++) total += t->added[i].len;
    t->tok_off = (uint32_t*)calloc(V, sizeof(uint32_t));
    t->tok_len = (uint32_t*)calloc(V, sizeof(uint32_t));
    t->bytes = (unsigned char*)malloc(total + 1);
    if (!t->tok_off || !t->tok_len || !t->bytes) return data_error(j->err, j->errlen, "tokenizer '%s': out of memory", j->name);
    for (size_t id = 0; id < V; id++) {
        if (t->kind[id] != TJ_MODEL) continue;
        t->tok_off[id] = (uint32_t)nb;
        t->tok_len[id] = (uint32_t)tj_string_bytes(t->names + t->name_off[id], t->name_len[id], t->bytes + nb);
        nb += t->tok_len[id];
    }
    for (int i = 0; i < t->n_added; i++) { /* an added token's own content wins, as in HF's id_to_token */
        int32_t id = t->added[i].id;
        t->tok_off[id] = (uint32_t)nb;
        t->tok_len[id] = (uint32_t)tj_string_bytes(t->added_text + t->added[i].off, t->added[i].len, t->bytes + nb);
        nb += t->tok_len[id];
    }
    for (size_t id = 0; id < V; id++)
        if ((int)t->tok_len[id] > t->max_token_bytes) t->max_token_bytes = (int)t->tok_len[id];
    for (int b = 0; b < 256; b++) {
        unsigned char s[4];
        int l = json_utf8_encode(tj_byte_char((unsigned)b), s);
        t->byte_id[b] = tj_name_find(t, (const char*)s, (size_t)l);
        if (t->byte_id[b] < 0)
            return data_error(j->err, j->errlen, "tokenizer '%s': model.vocab has no token \"%.*s\" for byte 0x%02X: a byte-level "
                              "BPE vocabulary has all 256 byte characters", j->name, l, (const char*)s, b);
    }
    return 0;
}

/* The two token strings of merge entry e (number i): "a b" (exactly one space, as HF splits it) or
   ["a", "b"]. *style: 1 string, 2 pair; every entry must have the first entry's style. */
static inline int tj_merge_parts(Json* j, int32_t e, int i, int* style, const char** a, size_t* la, const char** b, size_t* lb) {
    const JsonNode* d = &j->nodes[e];
    int s = d->type == JSON_STRING ? 1 : d->type == JSON_ARRAY ? 2 : 0;
    if (!s) return data_error(j->err, j->errlen, "tokenizer '%s': model.merges[%d] is %s, expected \"a b\" or [\"a\", \"b\"]",
                              j->name, i, json_type_name(d->type));
    if (*style && s != *style)
        return data_error(j->err, j->errlen, "tokenizer '%s': model.merges[%d] is %s but model.merges[0] is %s: one style "
                          "for the whole list", j->name, i, s == 1 ? "a string" : "a pair", s == 1 ? "a pair" : "a string");
    *style = s;
    if (s == 1) {
        const char* str = j->strings + d->str;
        const char* sp = (const char*)memchr(str, ' ', d->str_len);
        if (!sp || memchr(sp + 1, ' ', d->str_len - (size_t)(sp + 1 - str)))
            return data_error(j->err, j->errlen, "tokenizer '%s': model.merges[%d] \"%.60s\" is not two tokens separated by "
                              "one space", j->name, i, str);
        *a = str; *la = (size_t)(sp - str); *b = sp + 1; *lb = d->str_len - *la - 1;
        return 0;
    }
    int32_t x = d->child, y = x >= 0 ? j->nodes[x].next : -1;
    if (d->count != 2 || j->nodes[x].type != JSON_STRING || j->nodes[y].type != JSON_STRING)
        return data_error(j->err, j->errlen, "tokenizer '%s': model.merges[%d] is not a pair of two strings", j->name, i);
    *a = j->strings + j->nodes[x].str; *la = j->nodes[x].str_len;
    *b = j->strings + j->nodes[y].str; *lb = j->nodes[y].str_len;
    return 0;
}

/* model.merges: rank r joins (left, right) into the id of the concatenated string; all three must
   be in model.vocab. Inserted last to first so that a pair listed twice keeps its last rank. */
static inline int tj_read_merges(HfTokenizer* t, Json* j, int32_t list) {
    int n = j->nodes[list].count, style = 0, i = 0;
    char* cat = (char*)malloc(j->nstr + 1);
    int32_t* m = t->merges = (int32_t*)malloc((size_t)n * 3 * sizeof(int32_t) + 12);
    t->n_merges = n;
    int rc = m && cat ? 0 : data_error(j->err, j->errlen, "tokenizer '%s': out of memory", j->name);
    for (int32_t e = j->nodes[list].child; rc == 0 && e >= 0; e = j->nodes[e].next, i++) {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if ((rc = tj_merge_parts(j, e, i, &style, &a, &la, &b, &lb)) != 0) break;
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb);
        int32_t ia = tj_name_find(t, a, la), ib = tj_name_find(t, b, lb), in = tj_name_find(t, cat, la + lb);
        const char* missing = ia < 0 ? a : ib < 0 ? b : in < 0 ? cat : NULL;
        int lmiss = ia < 0 ? (int)la : ib < 0 ? (int)lb : (int)(la + lb);
        if (missing)
            rc = data_error(j->err, j->errlen, "tokenizer '%s': model.merges[%d] (\"%.*s\" + \"%.*s\"): \"%.*s\" is not in "
                            "model.vocab", j->name, i, (int)(la < 40 ? la : 40), a, (int)(lb < 40 ? lb : 40), b,
                            lmiss < 80 ? lmiss : 80, missing);
        else { m[3 * i] = ia; m[3 * i + 1] = ib; m[3 * i + 2] = in; }
    }
    if (rc == 0 && tok_pairmap_grow(&t->rank) != 0) rc = data_error(j->err, j->errlen, "tokenizer '%s': out of memory", j->name);
    for (i = n - 1; rc == 0 && i >= 0; i--)
        if (tok_pairmap_put(&t->rank, m[3 * i], m[3 * i + 1], i) == -2)
            rc = data_error(j->err, j->errlen, "tokenizer '%s': out of memory", j->name);
    free(cat);
    return rc;
}

/* Per set (normalized false / true), the added tokens ordered by first byte then longest first, so
   that the first hit at a position is HF's leftmost-longest match. */
typedef struct { int set, first, len, idx; } TjAddedKey;
static inline int tj_added_key_cmp(const void* x, const void* y) {
    const TjAddedKey* a = (const TjAddedKey*)x;
    const TjAddedKey* b = (const TjAddedKey*)y;
    if (a->set != b->set) return a->set - b->set;
    if (a->first != b->first) return a->first - b->first;
    return a->len != b->len ? b->len - a->len : a->idx - b->idx;
}
static inline int tj_index_added(HfTokenizer* t) {
    TjAddedKey* k = (TjAddedKey*)malloc(((size_t)t->n_added + 1) * sizeof(TjAddedKey));
    t->added_order[0] = (int32_t*)malloc(((size_t)t->n_added + 1) * sizeof(int32_t));
    t->added_order[1] = (int32_t*)malloc(((size_t)t->n_added + 1) * sizeof(int32_t));
    if (!k || !t->added_order[0] || !t->added_order[1]) { free(k); return -1; }
    for (int i = 0; i < t->n_added; i++) {
        k[i].set = t->added[i].normalized;
        k[i].first = (unsigned char)t->added_text[t->added[i].off];
        k[i].len = (int)t->added[i].len;
        k[i].idx = i;
    }
    qsort(k, (size_t)t->n_added, sizeof *k, tj_added_key_cmp);
    int n[2] = {0, 0};
    memset(t->added_first, 0, sizeof t->added_first);
    for (int i = 0; i < t->n_added; i++) {
        t->added_order[k[i].set][n[k[i].set]++] = k[i].idx;
        t->added_first[k[i].set][k[i].first + 1]++;
    }
    for (int s = 0; s < 2; s++) /* counts -> start of each first byte's range */
        for (int c = 1; c <= 256; c++) t->added_first[s][c] += t->added_first[s][c - 1];
    free(k);
    return 0;
}

static inline uint32_t tj_fnv(uint32_t h, const void* p, size_t n) {
    const unsigned char* b = (const unsigned char*)p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

/* FNV-1a of what decides ids: each id's kind and bytes, the merges, added-token flags, options. */
static inline uint32_t tj_fingerprint(const HfTokenizer* t) {
    uint32_t h = tj_fnv(2166136261u, &t->vocab_size, sizeof t->vocab_size);
    for (int id = 0; id < t->vocab_size; id++) {
        h = tj_fnv(h, &t->kind[id], 1);
        h = tj_fnv(h, &t->tok_len[id], sizeof t->tok_len[id]);
        h = tj_fnv(h, t->bytes + t->tok_off[id], t->tok_len[id]);
    }
    h = tj_fnv(h, t->merges, (size_t)t->n_merges * 3 * sizeof(int32_t));
    for (int i = 0; i < t->n_added; i++) {
        const TjAdded* a = &t->added[i];
        uint8_t f[5] = {a->special, a->normalized, a->single_word, a->lstrip, a->rstrip};
        h = tj_fnv(tj_fnv(h, &a->id, sizeof a->id), f, sizeof f);
    }
    int opt[3] = {t->add_prefix_space, t->use_regex, t->ignore_merges};
    return tj_fnv(h, opt, sizeof opt);
}

/* The EOT id: the added token (else model.vocab token) whose text is eot_content. */
static inline int tj_find_eot(const HfTokenizer* t, const char* eot_content) {
    size_t n = strlen(eot_content);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added_text + t->added[i].off, eot_content, n) == 0) return t->added[i].id;
    return tj_name_find(t, eot_content, n);
}

/* Loads a tokenizer.json from memory (name: for messages). eot_content: the end-of-text token's text,
   NULL for <|endoftext|>; t->eot is -1 when there is none (a caller that needs one says so). */
static inline int hftok_parse(HfTokenizer* t, const char* text, size_t len, const char* name, const char* eot_content,
                              char* err, size_t errlen) {
    Json j;
    int32_t root = 0, model, vocab, merges, added;
    memset(t, 0, sizeof *t);
    if (json_parse_as(&j, text, len, "tokenizer", name, err, errlen) != 0) return -1;
    int rc = -1;
    if (j.nodes[root].type != JSON_OBJECT)
        data_error(err, errlen, "tokenizer '%s': the JSON value is %s, expected an object (a Hugging Face tokenizer.json)",
                   name, json_type_name(j.nodes[root].type));
    else if (tj_member(&j, root, "", "model", JSON_MASK(JSON_OBJECT), 1, &model) == 0 &&
             tj_read_model_options(t, &j, model) == 0 && tj_read_pipeline(t, &j, root) == 0 &&
             tj_member(&j, model, "model", "vocab", JSON_MASK(JSON_OBJECT), 1, &vocab) == 0 &&
             tj_member(&j, model, "model", "merges", JSON_MASK(JSON_ARRAY), 1, &merges) == 0 &&
             tj_member(&j, root, "", "added_tokens", JSON_MASK(JSON_ARRAY) | JSON_MASK(JSON_NULL), 0, &added) == 0 &&
             tj_read_added(t, &j, added >= 0 && j.nodes[added].type == JSON_ARRAY ? added : -1) == 0 &&
             tj_vocab_size(t, &j, vocab) == 0 && tj_read_vocab(t, &j, vocab) == 0 && tj_check_added(t, &j) == 0 && tj_build_tables(t, &j) == 0 &&
             tj_read_merges(t, &j, merges) == 0) {
        if (tj_index_added(t) != 0) data_error(err, errlen, "tokenizer '%s': out of memory", name);
        else rc = 0;
    }
    json_free(&j);
    if (rc != 0) { hftok_free(t); return -1; }
    t->eot = tj_find_eot(t, eot_content ? eot_content : HFTOK_DEFAULT_EOT);
    t->fingerprint = tj_fingerprint(t);
    return 0;
}

/* Loads the tokenizer.json at path (see hftok_parse). */
static inline int hftok_load(HfTokenizer* t, const char* path, const char* eot_content, char* err, size_t errlen) {
    struct stat st;
    memset(t, 0, sizeof *t);
    if (stat(path, &st) != 0) return data_error(err, errlen, "cannot open tokenizer '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return data_error(err, errlen, "tokenizer '%s' is not a regular file", path);
    if ((uint64_t)st.st_size > JSON_MAX_BYTES)
        return data_error(err, errlen, "tokenizer '%s' is %llu bytes, more than the %zu this reader takes", path,
                          (unsigned long long)st.st_size, JSON_MAX_BYTES);
    size_t n = (size_t)st.st_size;
    char* buf = (char*)malloc(n + 1);
    FILE* f = fopen(path, "rb");
    int ok = buf && f && fread(buf, 1, n, f) == n;
    if (f) fclose(f);
    int rc = ok ? hftok_parse(t, buf, n, path, eot_content, err, errlen)
                : data_error(err, errlen, "cannot read tokenizer '%s': %s", path, buf ? strerror(errno) : "out of memory");
    free(buf);
    return rc;
}

/* 1 if the file at path looks like JSON (first non-blank byte '{', or a byte order mark). */
static inline int hftok_is_json_file(const char* path) {
    unsigned char b[64];
    FILE* f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, sizeof b, f), i = 0;
    fclose(f);
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
    return (i < n && b[i] == '{') || (n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF);
}

/* ---------------------------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------------------------- */
/* Grows the scratch arrays to words of n bytes (a merge pushes at most 2 candidates: 3n in all). */
static inline int tj_scratch(HfTokenizer* t, size_t n) {
    if (n <= t->cap_sym) return 0;
    size_t c = n > 2 * t->cap_sym ? n : 2 * t->cap_sym;
    int32_t* s = (int32_t*)realloc(t->sym, c * sizeof(int32_t));
    if (s) t->sym = s;
    int32_t* p = (int32_t*)realloc(t->sprev, c * sizeof(int32_t));
    if (p) t->sprev = p;
    int32_t* q = (int32_t*)realloc(t->snext, c * sizeof(int32_t));
    if (q) t->snext = q;
    TjCand* h = (TjCand*)realloc(t->heap, 3 * c * sizeof(TjCand));
    if (h) t->heap = h;
    if (!s || !p || !q || !h) return -1;
    t->cap_sym = c;
    return 0;
}

static inline int tj_cand_before(const TjCand* a, const TjCand* b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

/* Pushes the merge of symbol i with the next one, if that pair has a merge (min-heap). */
static inline void tj_push_pair(HfTokenizer* t, int32_t i, size_t* nh) {
    int32_t j = t->snext[i], r = j >= 0 ? tok_pairmap_find(&t->rank, t->sym[i], t->sym[j]) : -1;
    if (r < 0) return;
    TjCand c;
    c.rank = (uint32_t)r;
    c.pos = i;
    c.id = t->merges[3 * r + 2];
    size_t k = (*nh)++;
    while (k > 0 && tj_cand_before(&c, &t->heap[(k - 1) / 2])) { t->heap[k] = t->heap[(k - 1) / 2]; k = (k - 1) / 2; }
    t->heap[k] = c;
}

static inline TjCand tj_pop(HfTokenizer* t, size_t* nh) {
    TjCand top = t->heap[0], last = t->heap[--*nh];
    size_t k = 0, n = *nh;
    for (size_t c; (c = 2 * k + 1) < n; k = c) {
        if (c + 1 < n && tj_cand_before(&t->heap[c + 1], &t->heap[c])) c++;
        if (!tj_cand_before(&t->heap[c], &last)) break;
        t->heap[k] = t->heap[c];
    }
    if (n) t->heap[k] = last;
    return top;
}

/* BPE of one word (n >= 1 bytes, tj_scratch(t, n) done) the way HF's Word::merge_all does it:
   candidates ordered by (rank, position); a candidate whose pair has changed since it was pushed is
   dropped; a merge pushes the new pairs with its neighbours. Returns the number of ids (<= n). */
static inline size_t tj_bpe(HfTokenizer* t, const unsigned char* p, size_t n, int32_t* out) {
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        t->sym[i] = t->byte_id[p[i]];
        t->sprev[i] = (int32_t)i - 1;
        t->snext[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) tj_push_pair(t, (int32_t)i, &nh);
    while (nh) {
        TjCand c = tj_pop(t, &nh);
        int32_t i = c.pos, j = t->sym[i] >= 0 ? t->snext[i] : -1;
        int32_t r = j >= 0 ? tok_pairmap_find(&t->rank, t->sym[i], t->sym[j]) : -1;
        if (r < 0 || t->merges[3 * r + 2] != c.id) continue; /* stale */
        t->sym[i] = c.id;
        t->sym[j] = -1;
        t->snext[i] = t->snext[j];
        if (t->snext[i] >= 0) t->sprev[t->snext[i]] = i;
        if (t->sprev[i] >= 0) tj_push_pair(t, t->sprev[i], &nh);
        tj_push_pair(t, i, &nh);
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = t->snext[i]) out[k++] = t->sym[i]; /* symbol 0 always survives */
    return k;
}

/* Room for n bytes in a scratch buffer. */
static inline int tj_grow_bytes(unsigned char** b, size_t* cap, size_t n) {
    if (n <= *cap) return 0;
    unsigned char* nb = (unsigned char*)realloc(*b, n);
    if (!nb) return -1;
    *b = nb;
    *cap = n;
    return 0;
}

/* With ignore_merges: the model.vocab id spelled by the word's byte characters, -1 if none, -2 OOM. */
static inline int32_t tj_whole_word(HfTokenizer* t, const unsigned char* p, size_t n) {
    if (tj_grow_bytes(&t->word, &t->cap_word, 2 * n) != 0) return -2;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)json_utf8_encode(tj_byte_char(p[i]), t->word + k);
    return tj_name_find(t, (const char*)t->word, k);
}

/* The ids of one pre-tokenized word; words up to 255 bytes go through the cache. -1: out of memory. */
static inline long long tj_encode_word(HfTokenizer* t, const unsigned char* p, size_t n, int32_t* out) {
    if (n == 1) { out[0] = t->byte_id[p[0]]; return 1; }
    if (t->ignore_merges) {
        int32_t id = tj_whole_word(t, p, n);
        if (id == -2) return -1;
        if (id >= 0) { out[0] = id; return 1; }
    }
    if (tj_scratch(t, n) != 0) return -1;
    if (n > 255) return (long long)tj_bpe(t, p, n, out);
    int fresh;
    int32_t* room;
    TokStrEntry* e = tok_cache_find(&t->cache, p, n, n, &room, &fresh);
    if (!e) return -1;
    if (fresh) tok_cache_commit(&t->cache, e, tj_bpe(t, p, n, room));
    return (long long)tok_cache_copy(&t->cache, e, out);
}

/* A piece of text between added tokens: prefix space, pre-tokenizer, BPE of each word. */
static inline long long tj_encode_piece(HfTokenizer* t, const unsigned char* p, size_t n, int32_t* out) {
    if (t->add_prefix_space && p[0] != ' ') {
        if (tj_grow_bytes(&t->piece, &t->cap_piece, n + 1) != 0) return -1;
        t->piece[0] = ' ';
        memcpy(t->piece + 1, p, n);
        p = t->piece;
        n++;
    }
    if (!t->use_regex) return tj_encode_word(t, p, n, out);
    long long nout = 0;
    for (size_t i = 0; i < n;) {
        size_t w = tj_next_word(p + i, n - i);
        long long m = tj_encode_word(t, p + i, w, out + nout);
        if (m < 0) return -1;
        nout += m;
        i += w;
    }
    return nout;
}

/* Is the character before b / at e a word character (for single_word)? */
static inline int tj_word_char_before(const unsigned char* p, size_t b) {
    int l, c = tj_char_before(p, b, &l);
    return c == TJ_L || c == TJ_N || p[b - 1] == '_';
}
static inline int tj_word_char_at(const unsigned char* p, size_t n) {
    int l, c = tj_char_at(p, n, &l);
    return c == TJ_L || c == TJ_N || p[0] == '_';
}

/* The next match of set s at or after `from`: HF's leftmost-longest. Returns the added index or -1. */
static inline int tj_find_added(const HfTokenizer* t, int s, const unsigned char* p, size_t n, size_t from, size_t* at) {
    if (t->added_first[s][256] == 0) return -1;
    for (size_t i = from; i < n; i++)
        for (int32_t k = t->added_first[s][p[i]]; k < t->added_first[s][p[i] + 1]; k++) {
            const TjAdded* a = &t->added[t->added_order[s][k]];
            const unsigned char* c = (const unsigned char*)t->added_text + a->off;
            if (a->len > n - i || (a->len > 1 && c[1] != p[i + 1])) continue; /* most candidates fail at byte 2 */
            if (memcmp(p + i, c, a->len) == 0) { *at = i; return t->added_order[s][k]; }
        }
    return -1;
}

/* Encodes p[0..n) from stage `pass`: 0 splits off the added tokens matched in the raw text
   (normalized=false), 1 those matched in the normalized text (normalized=true; the normalizer is
   the identity here), 2 is a piece for the pre-tokenizer. */
static inline long long tj_encode_pass(HfTokenizer* t, int pass, const unsigned char* p, size_t n, int32_t* out) {
    if (n == 0) return 0;
    if (pass == 2) return tj_encode_piece(t, p, n, out);
    long long nout = 0, m;
    size_t done = 0, from = 0, b;
    int k;
    while ((k = tj_find_added(t, pass, p, n, from, &b)) >= 0) {
        const TjAdded* a = &t->added[k];
        size_t e = b + a->len;
        from = e;
        if (a->single_word && ((b > 0 && tj_word_char_before(p, b)) || (e < n && tj_word_char_at(p + e, n - e)))) continue;
        int l;
        if (a->lstrip) /* the spaces before it, but not into the previous match */
            while (b > done && tj_char_before(p, b, &l) == TJ_S) b -= (size_t)l;
        if (a->rstrip)
            while (e < n && tj_char_at(p + e, n - e, &l) == TJ_S) e += (size_t)l;
        if ((m = tj_encode_pass(t, pass + 1, p + done, b - done, out + nout)) < 0) return -1;
        nout += m;
        out[nout++] = a->id;
        done = from = e;
    }
    if ((m = tj_encode_pass(t, pass + 1, p + done, n - done, out + nout)) < 0) return -1;
    return nout + m;
}

/* Room the ids of n bytes need: one id per byte at most, plus one per piece for the prefix space. */
static inline size_t hftok_max_ids(const HfTokenizer* t, size_t n) { return t->add_prefix_space ? 2 * n + 1 : n + 1; }

/* Encodes n bytes into out (room for hftok_max_ids(t, n) ids). Returns the number of ids, -1 when
   out of memory. Not thread-safe (cache and scratch live in t). */
static inline long long hftok_encode(HfTokenizer* t, const void* text, size_t n, int32_t* out) {
    return tj_encode_pass(t, 0, (const unsigned char*)text, n, out);
}

/* ---------------------------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------------------------- */
/* Bytes of one id; NULL for an id outside the vocabulary or one no token has. */
static inline const unsigned char* hftok_token_bytes(const HfTokenizer* t, int id, size_t* len) {
    if (id < 0 || id >= t->vocab_size || t->kind[id] == TJ_ABSENT) { *len = 0; return NULL; }
    *len = t->tok_len[id];
    return t->bytes + t->tok_off[id];
}

/* Writes the bytes of ids[0..n) into out (at most cap bytes; the EOT id writes eot_text instead
   when it is not NULL). Returns the total length the full text needs, -1 for an unknown id. */
static inline long long hftok_decode(const HfTokenizer* t, const int32_t* ids, size_t n, char* out, size_t cap,
                                     const char* eot_text) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char* p = hftok_token_bytes(t, ids[i], &len);
        if (!p) return -1;
        if (ids[i] == t->eot && eot_text) { p = (const unsigned char*)eot_text; len = strlen(eot_text); }
        if (total < cap && len) memcpy(out + total, p, len <= cap - total ? len : cap - total);
        total += len;
    }
    return (long long)total;
}

/* ---------------------------------------------------------------------------------------------
 * Unicode classes for code points >= 0x80: entry = first code point << 2 | class (TJ_L, TJ_N,
 * TJ_S, TJ_O), valid up to the next entry. The regex's classes as tokenizers' Oniguruma sees them.
 * ------------------------------------------------------------------------------------------- */
/* generated by `python3 dev/tokjson_check.py --gen-tables` with tokenizers 0.23.3 */
#define TJ_UCLASS_SPANS 1600
static const uint32_t tj_uclass_table[TJ_UCLASS_SPANS] = {
    0x000203, 0x000216, 0x00021B, 0x000282, 0x000287, 0x0002A8, 0x0002AF, 0x0002C9, 0x0002D3, 0x0002D4, 0x0002DB, 0x0002E5,
    0x0002E8, 0x0002EF, 0x0002F1, 0x0002FF, 0x000300, 0x00035F, 0x000360, 0x0003DF, 0x0003E0, 0x000B0B, 0x000B18, 0x000B4B,
    0x000B80, 0x000B97, 0x000BB0, 0x000BB7, 0x000BB8, 0x000BBF, 0x000DC0, 0x000DD7, 0x000DD8, 0x000DE3, 0x000DE8, 0x000DFB,
    0x000DFC, 0x000E03, 0x000E18, 0x000E1F, 0x000E20, 0x000E2F, 0x000E30, 0x000E37, 0x000E38, 0x000E8B, 0x000E8C, 0x000FDB,
    0x000FDC, 0x00120B, 0x001228, 0x0014C3, 0x0014C4, 0x00155F, 0x001564, 0x00156B, 0x001580, 0x001627, 0x001740, 0x0017AF,
    0x0017BC, 0x0017CF, 0x001880, 0x00192F, 0x001981, 0x0019AB, 0x0019B8, 0x0019C3, 0x0019C4, 0x001B53, 0x001B54, 0x001B5B,
    0x001B94, 0x001B9F, 0x001BB8, 0x001BC1, 0x001BE8, 0x001BF7, 0x001BFC, 0x001C03, 0x001C40, 0x001C47, 0x001C48, 0x001CC3,
    0x001D34, 0x001E9B, 0x001EC4, 0x001ECB, 0x001F01, 0x001F28, 0x001FAF, 0x001FD0, 0x001FDB, 0x001FE8, 0x001FEF, 0x002000,
    0x00205B, 0x002068, 0x00206F, 0x002090, 0x002097, 0x0020A0, 0x0020A7, 0x002100, 0x002167, 0x002180, 0x0021AF, 0x0021C0,
    0x002223, 0x002224, 0x00223F, 0x002280, 0x00232B, 0x002410, 0x0024EB, 0x0024F4, 0x0024FB, 0x002540, 0x002547, 0x002560,
    0x00258B, 0x002599, 0x0025C3, 0x0025C4, 0x002607, 0x002614, 0x002637, 0x00263C, 0x002647, 0x00264C, 0x0026A7, 0x0026A8,
    0x0026C7, 0x0026C8, 0x0026CF, 0x0026D8, 0x0026EB, 0x0026F4, 0x0026FB, 0x002738, 0x00273F, 0x002770, 0x00277B, 0x00277C,
    0x00278B, 0x002799, 0x0027C0, 0x0027CB, 0x0027D1, 0x0027EB, 0x0027F0, 0x0027F7, 0x002814, 0x00282F, 0x00283C, 0x002847,
    0x00284C, 0x0028A7, 0x0028A8, 0x0028C7, 0x0028C8, 0x0028D3, 0x0028D4, 0x0028DF, 0x0028E0, 0x0028EB, 0x002964, 0x002977,
    0x002978, 0x00297F, 0x002999, 0x0029C3, 0x0029C8, 0x0029D7, 0x002A14, 0x002A3B, 0x002A3C, 0x002A4B, 0x002A4C, 0x002AA7,
    0x002AA8, 0x002AC7, 0x002AC8, 0x002AD3, 0x002AD4, 0x002AEB, 0x002AF4, 0x002AFB, 0x002B40, 0x002B47, 0x002B80, 0x002B8B,
    0x002B99, 0x002BC3, 0x002BE4, 0x002BEB, 0x002C14, 0x002C37, 0x002C3C, 0x002C47, 0x002C4C, 0x002CA7, 0x002CA8, 0x002CC7,
    0x002CC8, 0x002CD3, 0x002CD4, 0x002CEB, 0x002CF4, 0x002CFB, 0x002D70, 0x002D7B, 0x002D7C, 0x002D8B, 0x002D99, 0x002DC3,
    0x002DC4, 0x002DC9, 0x002DE3, 0x002E0C, 0x002E13, 0x002E14, 0x002E2F, 0x002E38, 0x002E47, 0x002E48, 0x002E5B, 0x002E64,
    0x002E6F, 0x002E70, 0x002E77, 0x002E78, 0x002E83, 0x002E8C, 0x002E97, 0x002EA0, 0x002EAF, 0x002EB8, 0x002EEB, 0x002F40,
    0x002F47, 0x002F99, 0x002FCF, 0x003014, 0x003037, 0x003038, 0x003047, 0x003048, 0x0030A7, 0x0030A8, 0x0030EB, 0x0030F4,
    0x0030FB, 0x003160, 0x00316F, 0x003174, 0x00317B, 0x003180, 0x00318B, 0x003199, 0x0031C3, 0x0031E1, 0x0031FF, 0x003200,
    0x003207, 0x003214, 0x003237, 0x003238, 0x003247, 0x003248, 0x0032A7, 0x0032A8, 0x0032D3, 0x0032D4, 0x0032EB, 0x0032F4,
    0x0032FB, 0x003374, 0x00337F, 0x003380, 0x00338B, 0x003399, 0x0033C3, 0x0033C4, 0x0033CF, 0x003410, 0x003437, 0x003438,
    0x003447, 0x003448, 0x0034EF, 0x0034F4, 0x0034FB, 0x003538, 0x00353F, 0x003550, 0x00355F, 0x003561, 0x00357C, 0x00358B,
    0x003599, 0x0035E7, 0x0035E8, 0x003603, 0x003614, 0x00365F, 0x003668, 0x0036CB, 0x0036CC, 0x0036F3, 0x0036F4, 0x0036FB,
    0x003700, 0x00371F, 0x003799, 0x0037C3, 0x003804, 0x0038C7, 0x0038C8, 0x0038D3, 0x003900, 0x00391F, 0x003941, 0x00396B,
    0x003A04, 0x003A0F, 0x003A10, 0x003A17, 0x003A18, 0x003A2F, 0x003A30, 0x003A93, 0x003A94, 0x003A9B, 0x003A9C, 0x003AC7,
    0x003AC8, 0x003AD3, 0x003AF4, 0x003AFB, 0x003B00, 0x003B17, 0x003B18, 0x003B1F, 0x003B41, 0x003B6B, 0x003B70, 0x003B83,
    0x003C00, 0x003C07, 0x003C81, 0x003CD3, 0x003D00, 0x003D23, 0x003D24, 0x003DB7, 0x003E20, 0x003E37, 0x004000, 0x0040AF,
    0x0040FC, 0x004101, 0x00412B, 0x004140, 0x00415B, 0x004168, 0x00417B, 0x004184, 0x00418B, 0x004194, 0x00419F, 0x0041B8,
    0x0041C7, 0x0041D4, 0x00420B, 0x004238, 0x00423F, 0x004241, 0x00426B, 0x004280, 0x00431B, 0x00431C, 0x004323, 0x004334,
    0x00433B, 0x004340, 0x0043EF, 0x0043F0, 0x004927, 0x004928, 0x00493B, 0x004940, 0x00495F, 0x004960, 0x004967, 0x004968,
    0x00497B, 0x004980, 0x004A27, 0x004A28, 0x004A3B, 0x004A40, 0x004AC7, 0x004AC8, 0x004ADB, 0x004AE0, 0x004AFF, 0x004B00,
    0x004B07, 0x004B08, 0x004B1B, 0x004B20, 0x004B5F, 0x004B60, 0x004C47, 0x004C48, 0x004C5B, 0x004C60, 0x004D6F, 0x004DA5,
    0x004DF7, 0x004E00, 0x004E43, 0x004E80, 0x004FDB, 0x004FE0, 0x004FFB, 0x005004, 0x0059B7, 0x0059BC, 0x005A02, 0x005A04,
    0x005A6F, 0x005A80, 0x005BAF, 0x005BB9, 0x005BC4, 0x005BE7, 0x005C00, 0x005C4B, 0x005C7C, 0x005CCB, 0x005D00, 0x005D4B,
    0x005D80, 0x005DB7, 0x005DB8, 0x005DC7, 0x005E00, 0x005ED3, 0x005F5C, 0x005F63, 0x005F70, 0x005F77, 0x005F81, 0x005FAB,
    0x005FC1, 0x005FEB, 0x006041, 0x00606B, 0x006080, 0x0061E7, 0x006200, 0x006217, 0x00621C, 0x0062A7, 0x0062A8, 0x0062AF,
    0x0062C0, 0x0063DB, 0x006400, 0x00647F, 0x006519, 0x006540, 0x0065BB, 0x0065C0, 0x0065D7, 0x006600, 0x0066B3, 0x0066C0,
    0x00672B, 0x006741, 0x00676F, 0x006800, 0x00685F, 0x006880, 0x006957, 0x006A01, 0x006A2B, 0x006A41, 0x006A6B, 0x006A9C,
    0x006AA3, 0x006C14, 0x006CD3, 0x006D14, 0x006D37, 0x006D41, 0x006D6B, 0x006E0C, 0x006E87, 0x006EB8, 0x006EC1, 0x006EE8,
    0x006F9B, 0x007000, 0x007093, 0x007101, 0x00712B, 0x007134, 0x007141, 0x007168, 0x0071FB, 0x007200, 0x00722F, 0x007240,
    0x0072EF, 0x0072F4, 0x007303, 0x0073A4, 0x0073B7, 0x0073B8, 0x0073D3, 0x0073D4, 0x0073DF, 0x0073E8, 0x0073EF, 0x007400,
    0x007703, 0x007800, 0x007C5B, 0x007C60, 0x007C7B, 0x007C80, 0x007D1B, 0x007D20, 0x007D3B, 0x007D40, 0x007D63, 0x007D64,
    0x007D6B, 0x007D6C, 0x007D73, 0x007D74, 0x007D7B, 0x007D7C, 0x007DFB, 0x007E00, 0x007ED7, 0x007ED8, 0x007EF7, 0x007EF8,
    0x007EFF, 0x007F08, 0x007F17, 0x007F18, 0x007F37, 0x007F40, 0x007F53, 0x007F58, 0x007F73, 0x007F80, 0x007FB7, 0x007FC8,
    0x007FD7, 0x007FD8, 0x007FF7, 0x008002, 0x00802F, 0x0080A2, 0x0080AB, 0x0080BE, 0x0080C3, 0x00817E, 0x008183, 0x0081C1,
    0x0081C4, 0x0081CB, 0x0081D1, 0x0081EB, 0x0081FC, 0x008201, 0x00822B, 0x008240, 0x008277, 0x008408, 0x00840F, 0x00841C,
    0x008423, 0x008428, 0x008453, 0x008454, 0x00845B, 0x008464, 0x00847B, 0x008490, 0x008497, 0x008498, 0x00849F, 0x0084A0,
    0x0084A7, 0x0084A8, 0x0084BB, 0x0084BC, 0x0084EB, 0x0084F0, 0x008503, 0x008514, 0x00852B, 0x008538, 0x00853F, 0x008541,
    0x00860C, 0x008615, 0x00862B, 0x009181, 0x009273, 0x0093A9, 0x009403, 0x009DD9, 0x009E53, 0x00B000, 0x00B397, 0x00B3AC,
    0x00B3BF, 0x00B3C8, 0x00B3D3, 0x00B3F5, 0x00B3FB, 0x00B400, 0x00B49B, 0x00B49C, 0x00B4A3, 0x00B4B4, 0x00B4BB, 0x00B4C0,
    0x00B5A3, 0x00B5BC, 0x00B5C3, 0x00B600, 0x00B65F, 0x00B680, 0x00B69F, 0x00B6A0, 0x00B6BF, 0x00B6C0, 0x00B6DF, 0x00B6E0,
    0x00B6FF, 0x00B700, 0x00B71F, 0x00B720, 0x00B73F, 0x00B740, 0x00B75F, 0x00B760, 0x00B77F, 0x00B8BC, 0x00B8C3, 0x00C002,
    0x00C007, 0x00C014, 0x00C01D, 0x00C023, 0x00C085, 0x00C0AB, 0x00C0C4, 0x00C0DB, 0x00C0E1, 0x00C0EC, 0x00C0F7, 0x00C104,
    0x00C25F, 0x00C274, 0x00C283, 0x00C284, 0x00C3EF, 0x00C3F0, 0x00C403, 0x00C414, 0x00C4C3, 0x00C4C4, 0x00C63F, 0x00C649,
    0x00C65B, 0x00C680, 0x00C703, 0x00C7C0, 0x00C803, 0x00C881, 0x00C8AB, 0x00C921, 0x00C943, 0x00C945, 0x00C983, 0x00CA01,
    0x00CA2B, 0x00CAC5, 0x00CB03, 0x00D000, 0x013703, 0x013800, 0x029237, 0x029340, 0x0293FB, 0x029400, 0x029837, 0x029840,
    0x029881, 0x0298A8, 0x0298B3, 0x029900, 0x0299BF, 0x0299FC, 0x029A7B, 0x029A80, 0x029B99, 0x029BC3, 0x029C5C, 0x029C83,
    0x029C88, 0x029E27, 0x029E2C, 0x029F3B, 0x029F40, 0x029F4B, 0x029F4C, 0x029F53, 0x029F54, 0x029F77, 0x029FC8, 0x02A00B,
    0x02A00C, 0x02A01B, 0x02A01C, 0x02A02F, 0x02A030, 0x02A08F, 0x02A0C1, 0x02A0DB, 0x02A100, 0x02A1D3, 0x02A208, 0x02A2D3,
    0x02A341, 0x02A36B, 0x02A3C8, 0x02A3E3, 0x02A3EC, 0x02A3F3, 0x02A3F4, 0x02A3FF, 0x02A401, 0x02A428, 0x02A49B, 0x02A4C0,
    0x02A51F, 0x02A580, 0x02A5F7, 0x02A610, 0x02A6CF, 0x02A73C, 0x02A741, 0x02A76B, 0x02A780, 0x02A797, 0x02A798, 0x02A7C1,
    0x02A7E8, 0x02A7FF, 0x02A800, 0x02A8A7, 0x02A900, 0x02A90F, 0x02A910, 0x02A933, 0x02A941, 0x02A96B, 0x02A980, 0x02A9DF,
    0x02A9E8, 0x02A9EF, 0x02A9F8, 0x02AAC3, 0x02AAC4, 0x02AACB, 0x02AAD4, 0x02AADF, 0x02AAE4, 0x02AAFB, 0x02AB00, 0x02AB07,
    0x02AB08, 0x02AB0F, 0x02AB6C, 0x02AB7B, 0x02AB80, 0x02ABAF, 0x02ABC8, 0x02ABD7, 0x02AC04, 0x02AC1F, 0x02AC24, 0x02AC3F,
    0x02AC44, 0x02AC5F, 0x02AC80, 0x02AC9F, 0x02ACA0, 0x02ACBF, 0x02ACC0, 0x02AD6F, 0x02AD70, 0x02ADAB, 0x02ADC0, 0x02AF8F,
    0x02AFC1, 0x02AFEB, 0x02B000, 0x035E93, 0x035EC0, 0x035F1F, 0x035F2C, 0x035FF3, 0x03E400, 0x03E9BB, 0x03E9C0, 0x03EB6B,
    0x03EC00, 0x03EC1F, 0x03EC4C, 0x03EC63, 0x03EC74, 0x03EC7B, 0x03EC7C, 0x03ECA7, 0x03ECA8, 0x03ECDF, 0x03ECE0, 0x03ECF7,
    0x03ECF8, 0x03ECFF, 0x03ED00, 0x03ED0B, 0x03ED0C, 0x03ED17, 0x03ED18, 0x03EECB, 0x03EF4C, 0x03F4FB, 0x03F540, 0x03F643,
    0x03F648, 0x03F723, 0x03F7C0, 0x03F7F3, 0x03F9C0, 0x03F9D7, 0x03F9D8, 0x03FBF7, 0x03FC41, 0x03FC6B, 0x03FC84, 0x03FCEF,
    0x03FD04, 0x03FD6F, 0x03FD98, 0x03FEFF, 0x03FF08, 0x03FF23, 0x03FF28, 0x03FF43, 0x03FF48, 0x03FF63, 0x03FF68, 0x03FF77,
    0x040000, 0x040033, 0x040034, 0x04009F, 0x0400A0, 0x0400EF, 0x0400F0, 0x0400FB, 0x0400FC, 0x04013B, 0x040140, 0x04017B,
    0x040200, 0x0403EF, 0x04041D, 0x0404D3, 0x040501, 0x0405E7, 0x040629, 0x040633, 0x040A00, 0x040A77, 0x040A80, 0x040B47,
    0x040B85, 0x040BF3, 0x040C00, 0x040C81, 0x040C93, 0x040CB4, 0x040D05, 0x040D08, 0x040D29, 0x040D2F, 0x040D40, 0x040DDB,
    0x040E00, 0x040E7B, 0x040E80, 0x040F13, 0x040F20, 0x040F43, 0x040F45, 0x040F5B, 0x041000, 0x04127B, 0x041281, 0x0412AB,
    0x0412C0, 0x041353, 0x041360, 0x0413F3, 0x041400, 0x0414A3, 0x0414C0, 0x041593, 0x0415C0, 0x0415EF, 0x0415F0, 0x04162F,
    0x041630, 0x04164F, 0x041650, 0x04165B, 0x04165C, 0x04168B, 0x04168C, 0x0416CB, 0x0416CC, 0x0416EB, 0x0416EC, 0x0416F7,
    0x041700, 0x0417D3, 0x041800, 0x041CDF, 0x041D00, 0x041D5B, 0x041D80, 0x041DA3, 0x041E00, 0x041E1B, 0x041E1C, 0x041EC7,
    0x041EC8, 0x041EEF, 0x042000, 0x04201B, 0x042020, 0x042027, 0x042028, 0x0420DB, 0x0420DC, 0x0420E7, 0x0420F0, 0x0420F7,
    0x0420FC, 0x04215B, 0x042161, 0x042180, 0x0421DF, 0x0421E5, 0x042200, 0x04227F, 0x04229D, 0x0422C3, 0x042380, 0x0423CF,
    0x0423D0, 0x0423DB, 0x0423ED, 0x042400, 0x042459, 0x042473, 0x042480, 0x0424EB, 0x042600, 0x0426E3, 0x0426F1, 0x0426F8,
    0x042701, 0x042743, 0x042749, 0x042800, 0x042807, 0x042840, 0x042853, 0x042854, 0x042863, 0x042864, 0x0428DB, 0x042901,
    0x042927, 0x042980, 0x0429F5, 0x0429FF, 0x042A00, 0x042A75, 0x042A83, 0x042B00, 0x042B23, 0x042B24, 0x042B97, 0x042BAD,
    0x042BC3, 0x042C00, 0x042CDB, 0x042D00, 0x042D5B, 0x042D61, 0x042D80, 0x042DCF, 0x042DE1, 0x042E00, 0x042E4B, 0x042EA5,
    0x042EC3, 0x043000, 0x043127, 0x043200, 0x0432CF, 0x043300, 0x0433CF, 0x0433E9, 0x043400, 0x043493, 0x0434C1, 0x0434EB,
    0x043501, 0x043528, 0x04359B, 0x0435BC, 0x04361B, 0x043981, 0x0439FF, 0x043A00, 0x043AAB, 0x043AC0, 0x043ACB, 0x043B08,
    0x043B17, 0x043C00, 0x043C75, 0x043C9C, 0x043CA3, 0x043CC0, 0x043D1B, 0x043D45, 0x043D57, 0x043DC0, 0x043E0B, 0x043EC0,
    0x043F15, 0x043F33, 0x043F80, 0x043FDF, 0x04400C, 0x0440E3, 0x044149, 0x0441C3, 0x0441C4, 0x0441CF, 0x0441D4, 0x0441DB,
    0x04420C, 0x0442C3, 0x044340, 0x0443A7, 0x0443C1, 0x0443EB, 0x04440C, 0x04449F, 0x0444D9, 0x044503, 0x044510, 0x044517,
    0x04451C, 0x044523, 0x044540, 0x0445CF, 0x0445D8, 0x0445DF, 0x04460C, 0x0446CF, 0x044704, 0x044717, 0x044741, 0x044768,
    0x04476F, 0x044770, 0x044777, 0x044785, 0x0447D7, 0x044800, 0x04484B, 0x04484C, 0x0448B3, 0x0448FC, 0x044907, 0x044A00,
    0x044A1F, 0x044A20, 0x044A27, 0x044A28, 0x044A3B, 0x044A3C, 0x044A7B, 0x044A7C, 0x044AA7, 0x044AC0, 0x044B7F, 0x044BC1,
    0x044BEB, 0x044C14, 0x044C37, 0x044C3C, 0x044C47, 0x044C4C, 0x044CA7, 0x044CA8, 0x044CC7, 0x044CC8, 0x044CD3, 0x044CD4,
    0x044CEB, 0x044CF4, 0x044CFB, 0x044D40, 0x044D47, 0x044D74, 0x044D8B, 0x044E00, 0x044E2B, 0x044E2C, 0x044E33, 0x044E38,
    0x044E3F, 0x044E40, 0x044EDB, 0x044EDC, 0x044EE3, 0x044F44, 0x044F4B, 0x044F4C, 0x044F53, 0x045000, 0x0450D7, 0x04511C,
    0x04512F, 0x045141, 0x04516B, 0x04517C, 0x04518B, 0x045200, 0x0452C3, 0x045310, 0x04531B, 0x04531C, 0x045323, 0x045341,
    0x04536B, 0x045600, 0x0456BF, 0x045760, 0x045773, 0x045800, 0x0458C3, 0x045910, 0x045917, 0x045941, 0x04596B, 0x045A00,
    0x045AAF, 0x045AE0, 0x045AE7, 0x045B01, 0x045B2B, 0x045B41, 0x045B93, 0x045C00, 0x045C6F, 0x045CC1, 0x045CF3, 0x045D00,
    0x045D1F, 0x046000, 0x0460B3, 0x046280, 0x046381, 0x0463CF, 0x0463FC, 0x04641F, 0x046424, 0x04642B, 0x046430, 0x046453,
    0x046454, 0x04645F, 0x046460, 0x0464C3, 0x0464FC, 0x046503, 0x046504, 0x04650B, 0x046541, 0x04656B, 0x046680, 0x0466A3,
    0x0466A8, 0x046747, 0x046784, 0x04678B, 0x04678C, 0x046793, 0x046800, 0x046807, 0x04682C, 0x0468CF, 0x0468E8, 0x0468EF,
    0x046940, 0x046947, 0x046970, 0x046A2B, 0x046A74, 0x046A7B, 0x046AC0, 0x046BE7, 0x046F00, 0x046F87, 0x046FC1, 0x046FEB,
    0x047000, 0x047027, 0x047028, 0x0470BF, 0x047100, 0x047107, 0x047141, 0x0471B7, 0x0471C8, 0x047243, 0x047400, 0x04741F,
    0x047420, 0x04742B, 0x04742C, 0x0474C7, 0x047518, 0x04751F, 0x047541, 0x04756B, 0x047580, 0x04759B, 0x04759C, 0x0475A7,
    0x0475A8, 0x04762B, 0x047660, 0x047667, 0x047681, 0x0476AB, 0x047B80, 0x047BCF, 0x047C08, 0x047C0F, 0x047C10, 0x047C47,
    0x047C48, 0x047CD3, 0x047D41, 0x047D6B, 0x047EC0, 0x047EC7, 0x047F01, 0x047F57, 0x048000, 0x048E6B, 0x049001, 0x0491BF,
    0x049200, 0x049513, 0x04BE40, 0x04BFC7, 0x04C000, 0x04D0C3, 0x04D104, 0x04D11F, 0x04D180, 0x050FEF, 0x051000, 0x05191F,
    0x058400, 0x05847B, 0x0584C1, 0x0584EB, 0x05A000, 0x05A8E7, 0x05A900, 0x05A97F, 0x05A981, 0x05A9AB, 0x05A9C0, 0x05AAFF,
    0x05AB01, 0x05AB2B, 0x05AB40, 0x05ABBB, 0x05AC00, 0x05ACC3, 0x05AD00, 0x05AD13, 0x05AD41, 0x05AD6B, 0x05AD6D, 0x05AD8B,
    0x05AD8C, 0x05ADE3, 0x05ADF4, 0x05AE43, 0x05B500, 0x05B5B7, 0x05B5C1, 0x05B5EB, 0x05B900, 0x05BA01, 0x05BA5F, 0x05BC00,
    0x05BD2F, 0x05BD40, 0x05BD47, 0x05BE4C, 0x05BE83, 0x05BF80, 0x05BF8B, 0x05BF8C, 0x05BF93, 0x05C000, 0x061FE3, 0x062000,
    0x06335B, 0x0633FC, 0x063427, 0x06BFC0, 0x06BFD3, 0x06BFD4, 0x06BFF3, 0x06BFF4, 0x06BFFF, 0x06C000, 0x06C48F, 0x06C4C8,
    0x06C4CF, 0x06C540, 0x06C54F, 0x06C554, 0x06C55B, 0x06C590, 0x06C5A3, 0x06C5C0, 0x06CBF3, 0x06F000, 0x06F1AF, 0x06F1C0,
    0x06F1F7, 0x06F200, 0x06F227, 0x06F240, 0x06F26B, 0x0733C1, 0x0733EB, 0x074B01, 0x074B53, 0x074B81, 0x074BD3, 0x074D81,
    0x074DE7, 0x075000, 0x075157, 0x075158, 0x075277, 0x075278, 0x075283, 0x075288, 0x07528F, 0x075294, 0x07529F, 0x0752A4,
    0x0752B7, 0x0752B8, 0x0752EB, 0x0752EC, 0x0752F3, 0x0752F4, 0x075313, 0x075314, 0x07541B, 0x07541C, 0x07542F, 0x075434,
    0x075457, 0x075458, 0x075477, 0x075478, 0x0754EB, 0x0754EC, 0x0754FF, 0x075500, 0x075517, 0x075518, 0x07551F, 0x075528,
    0x075547, 0x075548, 0x075A9B, 0x075AA0, 0x075B07, 0x075B08, 0x075B6F, 0x075B70, 0x075BEF, 0x075BF0, 0x075C57, 0x075C58,
    0x075CD7, 0x075CD8, 0x075D3F, 0x075D40, 0x075DBF, 0x075DC0, 0x075E27, 0x075E28, 0x075EA7, 0x075EA8, 0x075F0F, 0x075F10,
    0x075F33, 0x075F39, 0x076003, 0x077C00, 0x077C7F, 0x077C94, 0x077CAF, 0x0780C0, 0x0781BB, 0x078400, 0x0784B7, 0x0784DC,
    0x0784FB, 0x078501, 0x07852B, 0x078538, 0x07853F, 0x078A40, 0x078ABB, 0x078B00, 0x078BB3, 0x078BC1, 0x078BEB, 0x079340,
    0x0793B3, 0x0793C1, 0x0793EB, 0x079740, 0x0797BB, 0x0797C0, 0x0797C5, 0x0797EF, 0x079F80, 0x079F9F, 0x079FA0, 0x079FB3,
    0x079FB4, 0x079FBF, 0x079FC0, 0x079FFF, 0x07A000, 0x07A317, 0x07A31D, 0x07A343, 0x07A400, 0x07A513, 0x07A52C, 0x07A533,
    0x07A541, 0x07A56B, 0x07B1C5, 0x07B2B3, 0x07B2B5, 0x07B2C3, 0x07B2C5, 0x07B2D7, 0x07B405, 0x07B4BB, 0x07B4BD, 0x07B4FB,
    0x07B800, 0x07B813, 0x07B814, 0x07B883, 0x07B884, 0x07B88F, 0x07B890, 0x07B897, 0x07B89C, 0x07B8A3, 0x07B8A4, 0x07B8CF,
    0x07B8D0, 0x07B8E3, 0x07B8E4, 0x07B8EB, 0x07B8EC, 0x07B8F3, 0x07B908, 0x07B90F, 0x07B91C, 0x07B923, 0x07B924, 0x07B92B,
    0x07B92C, 0x07B933, 0x07B934, 0x07B943, 0x07B944, 0x07B94F, 0x07B950, 0x07B957, 0x07B95C, 0x07B963, 0x07B964, 0x07B96B,
    0x07B96C, 0x07B973, 0x07B974, 0x07B97B, 0x07B97C, 0x07B983, 0x07B984, 0x07B98F, 0x07B990, 0x07B997, 0x07B99C, 0x07B9AF,
    0x07B9B0, 0x07B9CF, 0x07B9D0, 0x07B9E3, 0x07B9E4, 0x07B9F7, 0x07B9F8, 0x07B9FF, 0x07BA00, 0x07BA2B, 0x07BA2C, 0x07BA73,
    0x07BA84, 0x07BA93, 0x07BA94, 0x07BAAB, 0x07BAAC, 0x07BAF3, 0x07C401, 0x07C437, 0x07EFC1, 0x07EFEB, 0x080000, 0x0A9B83,
    0x0A9C00, 0x0ADCEB, 0x0ADD00, 0x0AE07B, 0x0AE080, 0x0B3A8B, 0x0B3AC0, 0x0BAF87, 0x0BAFC0, 0x0BB97B, 0x0BE000, 0x0BE87B,
    0x0C0000, 0x0C4D2F, 0x0C4D40, 0x0C8EC3,
};

static inline int tj_uclass(uint32_t cp) {
    size_t lo = 0, hi = TJ_UCLASS_SPANS; /* the last entry that starts at or before cp */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((tj_uclass_table[mid] >> 2) <= cp) lo = mid;
        else hi = mid;
    }
    return (int)(tj_uclass_table[lo] & 3);
}

#endif /* COMMON_TOKENIZER_JSON_H */
