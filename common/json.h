/*
 * json.h — owns reading JSON: one strict reader (RFC 8259) that turns a whole text into a tree of
 * nodes, the few accessors its users need (member lookup, integer and floating-point values, string
 * compare), and the UTF-8 decode / encode it is built on. Its users: common/tokenizer_json.h
 * (Hugging Face tokenizer.json) and common/hf.h (config.json, safetensors headers). Writing JSON
 * stays with each writer.
 * Plain C11 / C++17, header-only, no libraries.
 *
 * Strict: no comments, no trailing commas, no leading zeros, no byte order mark, every escape and
 * all UTF-8 checked, lone surrogates refused, nesting limited to JSON_MAX_DEPTH so that no input can
 * exhaust the stack. Strings are decoded exactly (\uXXXX and surrogate pairs become UTF-8) into one
 * arena, each NUL-terminated (a string may still hold a NUL from \u0000: compare with its length).
 * Numbers keep their literal; json_integer / json_double read it.
 * Functions that can fail return -1 with a message in err and never exit. A syntax error reads
 *   "<subject> is not valid JSON: line L, column C: <what was expected, and what was found>"
 * where the subject is the name given to json_parse ("config.json"), or "<what> '<name>'" with
 * json_parse_as ("tokenizer 'tok.json'"). Built on shard.h's data_error.
 */
#ifndef COMMON_JSON_H
#define COMMON_JSON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "shard.h" /* data_error, DATA_PRINTF */

#define JSON_MAX_DEPTH 128                 /* serde_json's limit too */
#define JSON_MAX_BYTES ((size_t)1 << 30)   /* tokenizer.json files are a few MB, safetensors headers at most 100 MB */

/* ---------------------------------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------------------------------- */
/* Length of the valid UTF-8 character at p (n > 0 bytes left) and its code point; 0 if invalid
   (bad lead or continuation byte, truncated, overlong, surrogate, above U+10FFFF). */
static inline int json_utf8_decode(const unsigned char* p, size_t n, uint32_t* cp) {
    unsigned c = p[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (p[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) return 0;
    *cp = v;
    return len;
}

/* Writes code point cp (<= U+10FFFF) as UTF-8; returns its length. */
static inline int json_utf8_encode(uint32_t cp, unsigned char* out) {
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { out[0] = (unsigned char)(0xC0 | cp >> 6); out[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---------------------------------------------------------------------------------------------
 * The reader: the whole text into a tree of nodes (node 0 is the root); a container's children
 * are linked in the order of the text
 * ------------------------------------------------------------------------------------------- */
enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };
#define JSON_MASK(t) (1u << (t))

typedef struct {
    int type;
    int32_t next, child, count; /* next sibling, first child, number of children (-1: none) */
    uint32_t key, key_len;      /* object members: the name, in Json.strings */
    uint32_t str, str_len;      /* strings: the text in Json.strings; numbers: the literal in Json.src */
} JsonNode;

typedef struct {
    JsonNode* nodes;
    int32_t n, cap;
    char* strings;
    size_t nstr;
    const char* src;
    size_t len, pos;
    const char* name; /* the file, for messages */
    const char* what; /* its kind ("tokenizer"), NULL for none: messages then name the file alone */
    char* err;
    size_t errlen;
} Json;

static inline void json_free(Json* j) {
    free(j->nodes);
    free(j->strings);
    j->nodes = NULL;
    j->strings = NULL;
    j->n = j->cap = 0;
}

/* Every message of the reader: the subject ("<what> '<name>'", or "<name>") followed by tail; -1. */
static inline int json_error(const Json* j, const char* fmt, ...) DATA_PRINTF(2, 3);
static inline int json_error(const Json* j, const char* fmt, ...) {
    char tail[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    if (j->what) return data_error(j->err, j->errlen, "%s '%s'%s", j->what, j->name, tail);
    return data_error(j->err, j->errlen, "%s%s", j->name, tail);
}

/* "<subject> is not valid JSON: line L, column C: what" for source offset at; returns -1. */
static inline int json_fail(Json* j, size_t at, const char* fmt, ...) DATA_PRINTF(3, 4);
static inline int json_fail(Json* j, size_t at, const char* fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < j->len; i++) {
        if (j->src[i] == '\n') { line++; col = 1; }
        else col++;
    }
    return json_error(j, " is not valid JSON: line %zu, column %zu: %s", line, col, what);
}

/* How the byte at pos reads in a message. */
static inline const char* json_found(const Json* j, size_t pos, char* buf, size_t cap) {
    if (pos >= j->len) return "the end of the file";
    unsigned char c = (unsigned char)j->src[pos];
    if (c >= 0x20 && c < 0x7F) snprintf(buf, cap, "'%c'", c);
    else snprintf(buf, cap, "byte 0x%02X", c);
    return buf;
}

static inline void json_skip_ws(Json* j) {
    while (j->pos < j->len) {
        char c = j->src[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->pos++;
    }
}

/* Appends a node; returns its index, -1 when out of memory (message set). */
static inline int32_t json_new(Json* j, int type) {
    if (j->n == j->cap) {
        int32_t nc = j->cap ? j->cap * 2 : 1024;
        JsonNode* nn = (JsonNode*)realloc(j->nodes, (size_t)nc * sizeof(JsonNode));
        if (!nn) return json_error(j, ": out of memory reading the JSON");
        j->nodes = nn;
        j->cap = nc;
    }
    JsonNode* d = &j->nodes[j->n];
    memset(d, 0, sizeof *d);
    d->type = type;
    d->next = d->child = -1;
    return j->n++;
}

/* Links node v as the last child of parent (whose current last child is *last). */
static inline void json_link(Json* j, int32_t parent, int32_t* last, int32_t v) {
    if (*last < 0) j->nodes[parent].child = v;
    else j->nodes[*last].next = v;
    *last = v;
    j->nodes[parent].count++;
}

static inline int json_hex4(Json* j, size_t at, uint32_t* v) {
    *v = 0;
    for (size_t i = at; i < at + 4; i++) {
        char c = i < j->len ? j->src[i] : 0;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) return json_fail(j, at - 2, "\\u must be followed by 4 hex digits");
        *v = *v << 4 | d;
    }
    return 0;
}

/* The \uXXXX escape at pos (a surrogate pair takes two); appends the character to the arena. */
static inline int json_unicode_escape(Json* j) {
    size_t at = j->pos;
    uint32_t u, lo;
    if (json_hex4(j, at + 2, &u) != 0) return -1;
    j->pos += 6;
    if (u >= 0xDC00 && u <= 0xDFFF) return json_fail(j, at, "lone low surrogate \\u%04X", (unsigned)u);
    if (u >= 0xD800 && u <= 0xDBFF) {
        if (j->pos + 1 >= j->len || j->src[j->pos] != '\\' || j->src[j->pos + 1] != 'u')
            return json_fail(j, at, "high surrogate \\u%04X is not followed by a low surrogate", (unsigned)u);
        if (json_hex4(j, j->pos + 2, &lo) != 0) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return json_fail(j, j->pos, "high surrogate \\u%04X is followed by \\u%04X, not a low surrogate", (unsigned)u, (unsigned)lo);
        j->pos += 6;
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
    }
    j->nstr += (size_t)json_utf8_encode(u, (unsigned char*)j->strings + j->nstr);
    return 0;
}

/* The escape sequence at pos (a backslash). */
static inline int json_escape(Json* j) {
    char c = j->pos + 1 < j->len ? j->src[j->pos + 1] : 0;
    const char* from = "\"\\/bfnrt";
    const char* to = "\"\\/\b\f\n\r\t";
    const char* hit = c ? strchr(from, c) : NULL;
    if (c == 'u') return json_unicode_escape(j);
    if (!hit) return json_fail(j, j->pos, "unknown escape sequence in a string (expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
    j->strings[j->nstr++] = to[hit - from];
    j->pos += 2;
    return 0;
}

/* The string at pos (a quote), decoded into the arena: *off, *len. */
static inline int json_string(Json* j, uint32_t* off, uint32_t* len) {
    size_t start = j->pos++;
    *off = (uint32_t)j->nstr;
    for (;;) {
        if (j->pos >= j->len) return json_fail(j, start, "unterminated string");
        unsigned char c = (unsigned char)j->src[j->pos];
        uint32_t cp;
        int l;
        if (c == '"') break;
        if (c < 0x20) return json_fail(j, j->pos, "control character 0x%02X inside a string (it must be escaped)", c);
        if (c == '\\') {
            if (json_escape(j) != 0) return -1;
        } else if (c < 0x80) {
            j->strings[j->nstr++] = (char)c;
            j->pos++;
        } else if ((l = json_utf8_decode((const unsigned char*)j->src + j->pos, j->len - j->pos, &cp)) > 0) {
            memcpy(j->strings + j->nstr, j->src + j->pos, (size_t)l);
            j->nstr += (size_t)l;
            j->pos += (size_t)l;
        } else {
            return json_fail(j, j->pos, "invalid UTF-8 inside a string");
        }
    }
    j->pos++;
    *len = (uint32_t)(j->nstr - *off);
    j->strings[j->nstr++] = 0;
    return 0;
}

static inline int json_digits(Json* j, const char* what) {
    size_t s = j->pos;
    while (j->pos < j->len && j->src[j->pos] >= '0' && j->src[j->pos] <= '9') j->pos++;
    return j->pos > s ? 0 : json_fail(j, j->pos, "expected a digit %s", what);
}

/* The number at pos: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? ; node k keeps the literal. */
static inline int json_number(Json* j, int32_t k) {
    size_t s = j->pos;
    if (j->src[j->pos] == '-') j->pos++;
    if (j->pos < j->len && j->src[j->pos] == '0') {
        j->pos++;
        if (j->pos < j->len && j->src[j->pos] >= '0' && j->src[j->pos] <= '9')
            return json_fail(j, s, "a number must not start with 0 (leading zeros are not JSON)");
    } else if (json_digits(j, "in the number") != 0) {
        return -1;
    }
    if (j->pos < j->len && j->src[j->pos] == '.') {
        j->pos++;
        if (json_digits(j, "after the decimal point") != 0) return -1;
    }
    if (j->pos < j->len && (j->src[j->pos] == 'e' || j->src[j->pos] == 'E')) {
        j->pos++;
        if (j->pos < j->len && (j->src[j->pos] == '+' || j->src[j->pos] == '-')) j->pos++;
        if (json_digits(j, "in the exponent") != 0) return -1;
    }
    j->nodes[k].str = (uint32_t)s;
    j->nodes[k].str_len = (uint32_t)(j->pos - s);
    return 0;
}

static inline int json_literal(Json* j, const char* word) {
    size_t n = strlen(word);
    if (j->len - j->pos < n || memcmp(j->src + j->pos, word, n) != 0)
        return json_fail(j, j->pos, "expected a value (did you mean %s?)", word);
    j->pos += n;
    return 0;
}

static inline int json_value(Json* j, int depth, int32_t* out);

/* The name and ':' of an object member at pos (after whitespace). */
static inline int json_member_name(Json* j, uint32_t* ko, uint32_t* kl) {
    char buf[32];
    json_skip_ws(j);
    if (j->pos >= j->len || j->src[j->pos] != '"')
        return json_fail(j, j->pos, "expected a member name (a string), found %s", json_found(j, j->pos, buf, sizeof buf));
    if (json_string(j, ko, kl) != 0) return -1;
    json_skip_ws(j);
    if (j->pos >= j->len || j->src[j->pos] != ':')
        return json_fail(j, j->pos, "expected ':' after the member name \"%.60s\", found %s", j->strings + *ko,
                         json_found(j, j->pos, buf, sizeof buf));
    j->pos++;
    return 0;
}

/* The array or object at pos ('[' or '{'): its elements or members become children of node self
   (a member's name in key / key_len). */
static inline int json_container(Json* j, int depth, int32_t self, int object) {
    char buf[32], close = object ? '}' : ']';
    int32_t last = -1, v;
    j->pos++;
    json_skip_ws(j);
    if (j->pos < j->len && j->src[j->pos] == close) { j->pos++; return 0; }
    for (;;) {
        uint32_t ko = 0, kl = 0;
        if (object && json_member_name(j, &ko, &kl) != 0) return -1;
        if (json_value(j, depth + 1, &v) != 0) return -1;
        j->nodes[v].key = ko;
        j->nodes[v].key_len = kl;
        json_link(j, self, &last, v);
        json_skip_ws(j);
        char c = j->pos < j->len ? j->src[j->pos] : 0;
        if (c != ',' && c != close)
            return json_fail(j, j->pos, "expected ',' or '%c' after %s, found %s", close,
                             object ? "an object member" : "an array element", json_found(j, j->pos, buf, sizeof buf));
        j->pos++;
        if (c == close) return 0;
    }
}

static inline int json_value(Json* j, int depth, int32_t* out) {
    char buf[32];
    json_skip_ws(j);
    char c = j->pos < j->len ? j->src[j->pos] : 0;
    int type = c == '{' ? JSON_OBJECT : c == '[' ? JSON_ARRAY : c == '"' ? JSON_STRING
             : (c == '-' || (c >= '0' && c <= '9')) ? JSON_NUMBER : c == 't' ? JSON_TRUE : c == 'f' ? JSON_FALSE
             : c == 'n' ? JSON_NULL : -1;
    if (type < 0) return json_fail(j, j->pos, "expected a value, found %s", json_found(j, j->pos, buf, sizeof buf));
    if ((type == JSON_OBJECT || type == JSON_ARRAY) && depth >= JSON_MAX_DEPTH)
        return json_fail(j, j->pos, "arrays and objects nested deeper than %d levels", JSON_MAX_DEPTH);
    int32_t k = json_new(j, type);
    if (k < 0) return -1;
    *out = k;
    switch (type) {
    case JSON_OBJECT: return json_container(j, depth, k, 1);
    case JSON_ARRAY: return json_container(j, depth, k, 0);
    case JSON_STRING: return json_string(j, &j->nodes[k].str, &j->nodes[k].str_len);
    case JSON_NUMBER: return json_number(j, k);
    case JSON_TRUE: return json_literal(j, "true");
    case JSON_FALSE: return json_literal(j, "false");
    default: return json_literal(j, "null");
    }
}

/* Parses src[0..len) (not copied: it must outlive j). The root is node 0. name: the file, and
   what: its kind or NULL, for messages (both must outlive j). On failure j holds nothing to free. */
static inline int json_parse_as(Json* j, const char* src, size_t len, const char* what, const char* name, char* err,
                                size_t errlen) {
    char buf[32];
    memset(j, 0, sizeof *j);
    j->src = src;
    j->len = len;
    j->name = name;
    j->what = what;
    j->err = err;
    j->errlen = errlen;
    if (len > JSON_MAX_BYTES) return json_error(j, " is %zu bytes, more than the %zu this reader takes", len, JSON_MAX_BYTES);
    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0)
        return json_fail(j, 0, "the file starts with a UTF-8 byte order mark, which JSON does not allow");
    j->strings = (char*)malloc(len + 1); /* decoded strings never outgrow their source (the quotes pay for the NULs) */
    int32_t root;
    if (!j->strings) return json_error(j, ": out of memory reading the JSON");
    if (json_value(j, 0, &root) != 0) { json_free(j); return -1; }
    json_skip_ws(j);
    if (j->pos < j->len) {
        json_fail(j, j->pos, "unexpected %s after the end of the JSON value", json_found(j, j->pos, buf, sizeof buf));
        json_free(j);
        return -1;
    }
    return 0;
}

/* json_parse_as without a kind: messages name the file alone ("config.json is not valid JSON: ..."). */
static inline int json_parse(Json* j, const char* src, size_t len, const char* name, char* err, size_t errlen) {
    return json_parse_as(j, src, len, NULL, name, err, errlen);
}

/* Whether object member k is named key (exactly: a name holding a NUL from \u0000 is never equal). */
static inline int json_key_is(const Json* j, int32_t k, const char* key) {
    return j->nodes[k].key_len == strlen(key) && memcmp(j->strings + j->nodes[k].key, key, j->nodes[k].key_len) == 0;
}

/* Member `key` of object node obj: its node, or -1 if absent; *count = how often the key occurs. */
static inline int32_t json_find(const Json* j, int32_t obj, const char* key, int* count) {
    int32_t found = -1;
    *count = 0;
    for (int32_t c = j->nodes[obj].child; c >= 0; c = j->nodes[c].next)
        if (json_key_is(j, c, key)) {
            if (found < 0) found = c;
            (*count)++;
        }
    return found;
}

static inline const char* json_type_name(int type) {
    static const char* names[] = {"null", "false", "true", "a number", "a string", "an array", "an object"};
    return names[type];
}

/* Whether node k is the string s (exactly: a string holding a NUL from \u0000 is never equal). */
static inline int json_is_string(const Json* j, int32_t k, const char* s) {
    return k >= 0 && j->nodes[k].type == JSON_STRING && j->nodes[k].str_len == strlen(s) &&
           memcmp(j->strings + j->nodes[k].str, s, j->nodes[k].str_len) == 0;
}

/* The value of an integer literal (no fraction or exponent, at most 18 digits) in [lo, hi]; -1 if
   node k is not one. */
static inline int json_integer(const Json* j, int32_t k, long long lo, long long hi, long long* v) {
    const JsonNode* d = &j->nodes[k];
    if (d->type != JSON_NUMBER) return -1;
    const char* s = j->src + d->str;
    size_t n = d->str_len, neg = s[0] == '-';
    long long x = 0;
    if (n - neg > 18) return -1;
    for (size_t i = neg; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    x = neg ? -x : x;
    if (x < lo || x > hi) return -1;
    *v = x;
    return 0;
}

/* Whether number node k is zero (every digit before the exponent is 0). */
static inline int json_is_zero(const Json* j, int32_t k) {
    const char* s = j->src + j->nodes[k].str;
    for (size_t i = 0; i < j->nodes[k].str_len && s[i] != 'e' && s[i] != 'E'; i++)
        if (s[i] >= '1' && s[i] <= '9') return 0;
    return 1;
}

/* The value of number node k as the nearest double (strtod of its literal: beyond the double range
   +-inf or 0); -1 if node k is not a number, or out of memory for a literal over 63 characters. */
static inline int json_double(const Json* j, int32_t k, double* v) {
    const JsonNode* d = &j->nodes[k];
    char small[64], *s = small;
    if (d->type != JSON_NUMBER) return -1;
    if (d->str_len >= sizeof small && !(s = (char*)malloc(d->str_len + 1))) return -1;
    memcpy(s, j->src + d->str, d->str_len); /* the literal is not NUL-terminated in the source */
    s[d->str_len] = 0;
    *v = strtod(s, NULL);
    if (s != small) free(s);
    return 0;
}

#endif /* COMMON_JSON_H */
