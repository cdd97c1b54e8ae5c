/*
 * hf.h — Hugging Face interchange: safetensors files, config.json, and the name maps between our flat
 * parameter tables and the two HF models we mirror (fla's GLAForCausalLM, model_type "gla";
 * transformers' MambaForCausalLM, model_type "mamba"). Plain C, CPU only (gcc -std=c11 and nvcc).
 * JSON is read by common/json.h's strict reader (names and strings exact, \u escapes included) and
 * written here.
 *
 * safetensors: 8-byte little-endian header length N, then N bytes of JSON
 *   {"<name>": {"dtype": "F32"|"BF16"|..., "shape": [...], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"format": "pt"}}
 * (padded with spaces to a multiple of 8), then the raw data; offsets are relative to the data start.
 * The reader trusts nothing: header length, JSON, dtypes, offsets inside the file, sizes that match the
 * shapes, no two tensors overlapping, no name twice. Every message names the file (and the tensor).
 * transformers refuses a file whose metadata lacks "format": "pt", so the writer always adds it.
 *
 * Name maps are data (HfNameRow tables below), one per model. A fused tensor of ours is several
 * consecutive rows with the same `ours`, each taking the next block of its rows: GLA's w_in rows
 * q | k | v | gate | gk0 become q_proj, k_proj, v_proj, g_proj, gk_proj.0. Row counts name a field of
 * the model config (the checkpoint's config fields: "key_dim", "I", ...) or are a number ("16").
 * The model config travels as CkptHeader config fields, the same ones the checkpoint stores, so an
 * export is configured by its checkpoint and an import is compared with the run's flags like --load.
 * Not supported (clear errors): sharded files (model.safetensors.index.json), fla options that add or
 * remove tensors (short conv, no output gate, GQA, hybrid attention), Mamba with in/out_proj biases.
 */
#ifndef COMMON_HF_H
#define COMMON_HF_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "json.h" /* reads config.json and the safetensors header */

#define HF_MAX_DIMS 4
#define HF_NAME_LEN 160
#define HF_MAX_HEADER ((uint64_t)100 << 20)   /* safetensors' own limit on the JSON header */
#define HF_CFG_MAX 256

typedef enum { HF_F32 = 0, HF_BF16 = 1, HF_F16 = 2 } HfDtype;

static inline const char* hf_dtype_name(HfDtype d) { return d == HF_F32 ? "F32" : (d == HF_BF16 ? "BF16" : "F16"); }
static inline size_t hf_dtype_size(HfDtype d) { return d == HF_F32 ? 4 : 2; }

/* ---- element conversions ---------------------------------------------------------------------- */

static inline uint16_t hf_f32_to_bf16(float f) {   /* round to nearest even; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
static inline float hf_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float hf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31u, m = h & 1023u, u;
    if (e == 31) u = sign | 0x7F800000u | (m << 13);               /* inf / NaN */
    else if (e != 0) u = sign | ((e + 112u) << 23) | (m << 13);    /* normal: rebias 15 -> 127 */
    else if (m == 0) u = sign;                                      /* +-0 */
    else {                                                          /* subnormal: normalise */
        e = 113;
        while (!(m & 1024u)) { m <<= 1; e--; }
        u = sign | (e << 23) | ((m & 1023u) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- a growing text buffer (JSON output) ------------------------------------------------------ */

typedef struct {
    char* s;
    size_t len, cap;
    int oom;
} HfBuf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline void hf_buf_printf(HfBuf* b, const char* fmt, ...) {
    for (int pass = 0; pass < 2 && !b->oom; pass++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)n + 1;
        char* s = (char*)realloc(b->s, cap);
        if (!s) { b->oom = 1; return; }
        b->s = s;
        b->cap = cap;
    }
}
static inline void hf_buf_json_string(HfBuf* b, const char* s) {
    hf_buf_printf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') hf_buf_printf(b, "\\%c", c);
        else if (c < 0x20) hf_buf_printf(b, "\\u%04x", c);
        else hf_buf_printf(b, "%c", c);
    }
    hf_buf_printf(b, "\"");
}
/* shortest decimal that reads back as the same float (config.json then says 1e-06, not 9.99999997e-07) */
static inline void hf_buf_float(HfBuf* b, float v) {
    char t[48];
    for (int p = 1; p <= 9; p++) {
        snprintf(t, sizeof t, "%.*g", p, (double)v);
        if ((float)strtod(t, NULL) == v) break;
    }
    hf_buf_printf(b, "%s", t);
}
static inline void hf_buf_double(HfBuf* b, double v) {
    char t[48];
    for (int p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*g", p, v);
        if (strtod(t, NULL) == v) break;
    }
    if (!strpbrk(t, ".eEn")) hf_buf_printf(b, "%s.0", t);   /* keep it a float in Python */
    else hf_buf_printf(b, "%s", t);
}

/* ---- config.json: the top-level keys ---------------------------------------------------------- */

enum { HF_JNULL, HF_JBOOL, HF_JNUM, HF_JSTR, HF_JOTHER };

typedef struct {
    char key[64];
    int type;           /* HF_J* */
    double num;         /* HF_JNUM; HF_JBOOL: 0/1 */
    char str[64];       /* HF_JSTR (a longer string is HF_JOTHER) */
} HfCfgItem;

typedef struct {
    char path[4200];
    int n;
    HfCfgItem item[HF_CFG_MAX];
} HfConfig;

/* Reads a whole file into a NUL-terminated malloc'ed buffer (at most max bytes). */
static inline char* hf_slurp(const char* path, size_t max, size_t* len, char* err, size_t errlen) {
    FILE* f = fopen(path, "rb");
    if (!f) { ckpt_errf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (uint64_t)st.st_size > max) {
        ckpt_errf(err, errlen, "%s: unreadable or larger than %zu bytes", path, max);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char* s = (char*)malloc(n + 1);
    if (!s || fread(s, 1, n, f) != n) {
        ckpt_errf(err, errlen, "cannot read %s", path);
        free(s);
        fclose(f);
        return NULL;
    }
    fclose(f);
    s[n] = '\0';
    if (len) *len = n;
    return s;
}

/* The members of the JSON object text[0..len) into c (path: for messages): null, booleans, numbers and
 * strings of up to 63 bytes as themselves; a longer string, an array or an object as HF_JOTHER; a key
 * of 64 bytes or more (or holding a NUL) is skipped, as no key we read is one. */
static inline int hf_config_parse_n(HfConfig* c, const char* text, size_t len, const char* path, char* err, size_t errlen) {
    Json j;
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    if (json_parse(&j, text, len, path, err, errlen) != 0) return 1;
    int rc = 1;
    if (j.nodes[0].type != JSON_OBJECT) {
        ckpt_errf(err, errlen, "%s: the JSON value is %s, expected an object", path, json_type_name(j.nodes[0].type));
        goto done;
    }
    for (int32_t k = j.nodes[0].child; k >= 0; k = j.nodes[k].next) {
        const JsonNode* d = &j.nodes[k];
        const char *key = j.strings + d->key, *str = j.strings + d->str;
        HfCfgItem it;
        memset(&it, 0, sizeof it);
        if (d->key_len >= sizeof it.key || strlen(key) != d->key_len) continue;
        memcpy(it.key, key, d->key_len + 1);
        it.type = d->type == JSON_NULL ? HF_JNULL : d->type == JSON_TRUE || d->type == JSON_FALSE ? HF_JBOOL
                : d->type == JSON_NUMBER ? HF_JNUM : HF_JOTHER;
        it.num = d->type == JSON_TRUE;
        if (d->type == JSON_STRING && d->str_len < sizeof it.str && strlen(str) == d->str_len) {
            it.type = HF_JSTR;
            memcpy(it.str, str, d->str_len + 1);
        }
        if (d->type == JSON_NUMBER && json_double(&j, k, &it.num) != 0) { ckpt_errf(err, errlen, "out of host memory"); goto done; }
        for (int i = 0; i < c->n; i++)
            if (!strcmp(c->item[i].key, it.key)) {
                ckpt_errf(err, errlen, "%s: key \"%s\" appears twice", path, it.key);
                goto done;
            }
        if (c->n == HF_CFG_MAX) { ckpt_errf(err, errlen, "%s: more than %d keys", path, HF_CFG_MAX); goto done; }
        c->item[c->n++] = it;
    }
    rc = 0;
done:
    json_free(&j);
    return rc;
}

/* hf_config_parse_n of a NUL-terminated text. */
static inline int hf_config_parse(HfConfig* c, const char* text, const char* path, char* err, size_t errlen) {
    return hf_config_parse_n(c, text, strlen(text), path, err, errlen);
}

static inline int hf_config_load(HfConfig* c, const char* path, char* err, size_t errlen) {
    size_t len;
    char* text = hf_slurp(path, (size_t)16 << 20, &len, err, errlen);
    if (!text) return 1;
    int rc = hf_config_parse_n(c, text, len, path, err, errlen);
    free(text);
    return rc;
}

static inline const HfCfgItem* hf_cfg_get(const HfConfig* c, const char* key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->item[i].key, key)) return &c->item[i];
    return NULL;
}
/* An integer key. Absent or null: def (required: an error). */
static inline int hf_cfg_int(const HfConfig* c, const char* key, long long def, int required, long long* out, char* err,
                             size_t errlen) {
    const HfCfgItem* it = hf_cfg_get(c, key);
    if (!it || it->type == HF_JNULL) {
        if (required) { ckpt_errf(err, errlen, "%s has no \"%s\"", c->path, key); return 1; }
        *out = def;
        return 0;
    }
    if (it->type != HF_JNUM || it->num != floor(it->num) || fabs(it->num) > 9e15) {
        ckpt_errf(err, errlen, "%s: \"%s\" must be an integer", c->path, key);
        return 1;
    }
    *out = (long long)it->num;
    return 0;
}
static inline int hf_cfg_num(const HfConfig* c, const char* key, double def, double* out, char* err, size_t errlen) {
    const HfCfgItem* it = hf_cfg_get(c, key);
    if (!it || it->type == HF_JNULL) { *out = def; return 0; }
    if (it->type != HF_JNUM || !isfinite(it->num)) {   /* a literal beyond the double range reads as inf */
        ckpt_errf(err, errlen, "%s: \"%s\" must be a finite number", c->path, key);
        return 1;
    }
    *out = it->num;
    return 0;
}
static inline int hf_cfg_bool(const HfConfig* c, const char* key, int def, int* out, char* err, size_t errlen) {
    const HfCfgItem* it = hf_cfg_get(c, key);
    if (!it || it->type == HF_JNULL) { *out = def; return 0; }
    if (it->type != HF_JBOOL) { ckpt_errf(err, errlen, "%s: \"%s\" must be true or false", c->path, key); return 1; }
    *out = it->num != 0;
    return 0;
}
/* Fails unless key is absent, null, or a string among `allowed` ("a|b"; NULL: no string allowed). */
static inline int hf_cfg_str_is(const HfConfig* c, const char* key, const char* allowed, const char* why, char* err,
                                size_t errlen) {
    const HfCfgItem* it = hf_cfg_get(c, key);
    if (!it || it->type == HF_JNULL) return 0;
    if (allowed && it->type == HF_JSTR) {
        char want[128];
        snprintf(want, sizeof want, "|%s|", allowed);
        char got[72];
        snprintf(got, sizeof got, "|%s|", it->str);
        if (strstr(want, got)) return 0;
    }
    ckpt_errf(err, errlen, "%s: \"%s\" is %s%s%s; %s", c->path, key, it->type == HF_JSTR ? "\"" : "",
              it->type == HF_JSTR ? it->str : "set", it->type == HF_JSTR ? "\"" : "", why);
    return 1;
}
/* Fails when a boolean key differs from what we support (absent counts as def). */
static inline int hf_cfg_bool_is(const HfConfig* c, const char* key, int def, int want, const char* why, char* err,
                                 size_t errlen) {
    int v;
    if (hf_cfg_bool(c, key, def, &v, err, errlen)) return 1;
    if (v != want) {
        ckpt_errf(err, errlen, "%s: \"%s\" is %s%s; %s", c->path, key, v ? "true" : "false",
                  hf_cfg_get(c, key) ? "" : " (the default)", why);
        return 1;
    }
    return 0;
}

/* ---- our side: a view of the parameter table -------------------------------------------------- */

typedef struct {
    const char* name;      /* "layers.3.w_in" */
    size_t offset, numel;  /* elements, into the flat fp32 buffer */
    int ndim;
    int shape[3];
} HfParam;

/* an integer config field (the checkpoint's: "D", "key_dim", ...); -1 when absent */
static inline long long hf_field(const CkptHeader* cfg, const char* name) {
    const CkptConfigField* f = ckpt_config_get(cfg, name);
    return f && !f->is_float ? f->i : -1;
}

/* ---- name maps -------------------------------------------------------------------------------- */

enum { HF_OPTIONAL = 1,     /* our table may lack the tensor (lm_head with tied embeddings) */
       HF_UNSQUEEZE1 = 2 }; /* HF shape inserts a 1 at dim 1: our conv_w [Di,W] is conv1d.weight [Di,1,W] */

typedef struct {
    const char* ours;     /* our tensor; "%d" = layer index (such rows repeat for every layer) */
    const char* hf;       /* HF tensor name, same "%d" */
    const char* rows;     /* NULL: all rows; else this block's row count: a config field name or a number */
    int flags;            /* HF_OPTIONAL | HF_UNSQUEEZE1 */
    const char* hf_alt;   /* another name accepted on import, or NULL */
} HfNameRow;

struct HfModelSpec;
typedef struct HfModelSpec {
    const char* model_type;   /* config.json "model_type" */
    const char* arch;         /* config.json "architectures"[0] */
    int ckpt_kind;            /* CKPT_MODEL_* */
    const HfNameRow* names;
    int nnames;
    /* tied embeddings: the file may still hold the head (save_pretrained drops it, others keep it);
     * on import it must then equal the embedding */
    const char* tied_hf;
    const char* tied_ours;
    int (*config_write)(const CkptHeader* cfg, HfBuf* out, char* err, size_t errlen);
    int (*config_read)(const HfConfig* c, CkptHeader* out, char* err, size_t errlen);
} HfModelSpec;

/* fla GLAForCausalLM (fla/models/gla/modeling_gla.py, fla/layers/gla.py; gla.md 1.3-1.8). The output
 * norm is g_norm_swish_gate when fla fuses norm and gate (fuse_norm, the default), g_norm otherwise. */
static const HfNameRow hf_gla_names[] = {
    {"embed", "model.embeddings.weight", NULL, 0, NULL},
    {"layers.%d.attn_norm", "model.layers.%d.attn_norm.weight", NULL, 0, NULL},
    {"layers.%d.w_in", "model.layers.%d.attn.q_proj.weight", "key_dim", 0, NULL},
    {"layers.%d.w_in", "model.layers.%d.attn.k_proj.weight", "key_dim", 0, NULL},
    {"layers.%d.w_in", "model.layers.%d.attn.v_proj.weight", "value_dim", 0, NULL},
    {"layers.%d.w_in", "model.layers.%d.attn.g_proj.weight", "value_dim", 0, NULL},
    {"layers.%d.w_in", "model.layers.%d.attn.gk_proj.0.weight", "16", 0, NULL},
    {"layers.%d.gk1_w", "model.layers.%d.attn.gk_proj.1.weight", NULL, 0, NULL},
    {"layers.%d.gk1_b", "model.layers.%d.attn.gk_proj.1.bias", NULL, 0, NULL},
    {"layers.%d.gnorm", "model.layers.%d.attn.g_norm_swish_gate.weight", NULL, 0, "model.layers.%d.attn.g_norm.weight"},
    {"layers.%d.w_o", "model.layers.%d.attn.o_proj.weight", NULL, 0, NULL},
    {"layers.%d.mlp_norm", "model.layers.%d.mlp_norm.weight", NULL, 0, NULL},
    {"layers.%d.w_gateup", "model.layers.%d.mlp.gate_proj.weight", "I", 0, NULL},
    {"layers.%d.w_gateup", "model.layers.%d.mlp.up_proj.weight", "I", 0, NULL},
    {"layers.%d.w_down", "model.layers.%d.mlp.down_proj.weight", NULL, 0, NULL},
    {"final_norm", "model.norm.weight", NULL, 0, NULL},
    {"lm_head", "lm_head.weight", NULL, HF_OPTIONAL, NULL},
};

/* transformers MambaForCausalLM (models/mamba/modeling_mamba.py; mamba.md 1.1, 1.3). Our fused rows
 * (w_in x | z, w_x dt | B | C) are fused in HF too. */
static const HfNameRow hf_mamba_names[] = {
    {"embed", "backbone.embeddings.weight", NULL, 0, NULL},
    {"layers.%d.norm", "backbone.layers.%d.norm.weight", NULL, 0, NULL},
    {"layers.%d.w_in", "backbone.layers.%d.mixer.in_proj.weight", NULL, 0, NULL},
    {"layers.%d.conv_w", "backbone.layers.%d.mixer.conv1d.weight", NULL, HF_UNSQUEEZE1, NULL},
    {"layers.%d.conv_b", "backbone.layers.%d.mixer.conv1d.bias", NULL, 0, NULL},
    {"layers.%d.w_x", "backbone.layers.%d.mixer.x_proj.weight", NULL, 0, NULL},
    {"layers.%d.w_dt", "backbone.layers.%d.mixer.dt_proj.weight", NULL, 0, NULL},
    {"layers.%d.dt_bias", "backbone.layers.%d.mixer.dt_proj.bias", NULL, 0, NULL},
    {"layers.%d.A_log", "backbone.layers.%d.mixer.A_log", NULL, 0, NULL},
    {"layers.%d.Dskip", "backbone.layers.%d.mixer.D", NULL, 0, NULL},
    {"layers.%d.w_out", "backbone.layers.%d.mixer.out_proj.weight", NULL, 0, NULL},
    {"final_norm", "backbone.norm_f.weight", NULL, 0, NULL},
    {"lm_head", "lm_head.weight", NULL, HF_OPTIONAL, NULL},
};

/* One HF tensor of a model: where its elements lie in our flat buffer (always a contiguous run:
 * a row block of a row-major tensor) and its HF shape. */
typedef struct {
    char hf[HF_NAME_LEN];
    char hf_alt[HF_NAME_LEN];   /* "" when none */
    char ours[64];
    size_t offset, numel;
    int ndim;
    int64_t shape[HF_MAX_DIMS];
} HfPlanItem;

static inline const HfParam* hf_param_find(const HfParam* p, int np, const char* name) {
    for (int i = 0; i < np; i++)
        if (!strcmp(p[i].name, name)) return &p[i];
    return NULL;
}

/* Expands a model's name map over its layers against our table: every tensor of ours must be covered
 * exactly (a map that drifted from the table is an error, not a silent partial export).
 * *out is malloc'ed (n items). Returns 0, or 1 with err. */
static inline int hf_plan(const HfModelSpec* s, const CkptHeader* cfg, const HfParam* p, int np, HfPlanItem** out,
                          int* nout, char* err, size_t errlen) {
    long long L = hf_field(cfg, "L");
    *out = NULL;
    *nout = 0;
    if (L < 0) { ckpt_errf(err, errlen, "model config has no layer count L"); return 1; }
    int cap = (int)(s->nnames * (L + 1)), n = 0;
    HfPlanItem* items = (HfPlanItem*)calloc((size_t)cap, sizeof(HfPlanItem));
    char* covered = (char*)calloc((size_t)(np ? np : 1), 1);
    if (!items || !covered) { ckpt_errf(err, errlen, "out of host memory"); goto fail; }
    for (int i = 0; i < s->nnames;) {
        int layered = strstr(s->names[i].ours, "%d") != NULL, j = i;
        while (j < s->nnames && (strstr(s->names[j].ours, "%d") != NULL) == layered) j++;
        for (long long l = 0; l < (layered ? L : 1); l++) {
            for (int g = i; g < j;) {   /* a group: consecutive rows of the same tensor of ours */
                int e = g;
                while (e < j && !strcmp(s->names[e].ours, s->names[g].ours)) e++;
                char ours[64];
                snprintf(ours, sizeof ours, s->names[g].ours, (int)l);
                const HfParam* q = hf_param_find(p, np, ours);
                if (!q) {
                    if (s->names[g].flags & HF_OPTIONAL) { g = e; continue; }
                    ckpt_errf(err, errlen, "internal: the %s name map names '%s', which the parameter table lacks",
                              s->model_type, ours);
                    goto fail;
                }
                covered[q - p] = 1;
                size_t rowsz = q->shape[0] ? q->numel / (size_t)q->shape[0] : 0;
                long long r0 = 0;
                for (int r = g; r < e; r++) {
                    const HfNameRow* row = &s->names[r];
                    long long cnt = q->shape[0] - r0;
                    if (row->rows)
                        cnt = (row->rows[0] >= '0' && row->rows[0] <= '9') ? atoll(row->rows) : hf_field(cfg, row->rows);
                    if (cnt < 0 || r0 + cnt > q->shape[0]) {
                        ckpt_errf(err, errlen, "internal: '%s' has %d rows; the %s name map wants %lld more from row %lld "
                                  "(config field %s)", ours, q->shape[0], s->model_type, cnt, r0, row->rows ? row->rows : "-");
                        goto fail;
                    }
                    HfPlanItem* it = &items[n++];
                    snprintf(it->hf, sizeof it->hf, row->hf, (int)l);
                    if (row->hf_alt) snprintf(it->hf_alt, sizeof it->hf_alt, row->hf_alt, (int)l);
                    snprintf(it->ours, sizeof it->ours, "%s", ours);
                    it->offset = q->offset + (size_t)r0 * rowsz;
                    it->numel = (size_t)cnt * rowsz;
                    it->ndim = q->ndim;
                    it->shape[0] = cnt;
                    for (int d = 1; d < q->ndim; d++) it->shape[d] = q->shape[d];
                    if (row->flags & HF_UNSQUEEZE1) {
                        for (int d = q->ndim; d > 1; d--) it->shape[d] = it->shape[d - 1];
                        it->shape[1] = 1;
                        it->ndim++;
                    }
                    r0 += cnt;
                }
                if (r0 != q->shape[0]) {
                    ckpt_errf(err, errlen, "internal: the %s name map covers %lld of the %d rows of '%s'", s->model_type,
                              r0, q->shape[0], ours);
                    goto fail;
                }
                g = e;
            }
        }
        i = j;
    }
    for (int i = 0; i < np; i++)
        if (!covered[i]) {
            ckpt_errf(err, errlen, "internal: '%s' has no name in the %s name map (common/hf.h)", p[i].name, s->model_type);
            goto fail;
        }
    free(covered);
    *out = items;
    *nout = n;
    return 0;
fail:
    free(items);
    free(covered);
    return 1;
}

/* ---- safetensors: write ----------------------------------------------------------------------- */

typedef struct {
    const char* name;
    int ndim;
    const int64_t* shape;
    const float* data;      /* numel fp32 values */
    size_t numel;
} HfWriteTensor;

static inline void hf_buf_shape(HfBuf* b, int ndim, const int64_t* shape) {
    hf_buf_printf(b, "[");
    for (int d = 0; d < ndim; d++) hf_buf_printf(b, "%s%lld", d ? ", " : "", (long long)shape[d]);
    hf_buf_printf(b, "]");
}

/* Writes n tensors as one safetensors file in `dtype` (F32 or BF16, converted from fp32), in order,
 * atomically (path.tmp, fsync, rename). meta: extra "key": "value" pairs for __metadata__ (NULL-ended
 * list of pairs), "format": "pt" always. Returns 0, or 1 with err. */
static inline int hf_st_write(const char* path, const HfWriteTensor* t, int n, HfDtype dtype, const char* const* meta,
                              char* err, size_t errlen) {
    HfBuf h = {NULL, 0, 0, 0};
    size_t es = hf_dtype_size(dtype);
    uint64_t off = 0;
    hf_buf_printf(&h, "{\"__metadata__\": {\"format\": \"pt\"");
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2) {
        hf_buf_printf(&h, ", ");
        hf_buf_json_string(&h, meta[i]);
        hf_buf_printf(&h, ": ");
        hf_buf_json_string(&h, meta[i + 1]);
    }
    hf_buf_printf(&h, "}");
    for (int i = 0; i < n; i++) {
        hf_buf_printf(&h, ", ");
        hf_buf_json_string(&h, t[i].name);
        hf_buf_printf(&h, ": {\"dtype\": \"%s\", \"shape\": ", hf_dtype_name(dtype));
        hf_buf_shape(&h, t[i].ndim, t[i].shape);
        hf_buf_printf(&h, ", \"data_offsets\": [%llu, %llu]}", (unsigned long long)off,
                      (unsigned long long)(off + t[i].numel * es));
        off += t[i].numel * es;
    }
    hf_buf_printf(&h, "}");
    while (!h.oom && h.len % 8) hf_buf_printf(&h, " ");   /* data starts 8-byte aligned */
    char tmp[ATOMIC_PATH_MAX];
    FILE* f = NULL;
    const size_t chunk = (size_t)1 << 20;
    uint16_t* conv = dtype != HF_F32 ? (uint16_t*)malloc(chunk * 2) : NULL;
    int rc = 1;
    if (h.oom || (dtype != HF_F32 && !conv)) { ckpt_errf(err, errlen, "%s: out of host memory", path); goto done; }
    f = atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) goto done;
    {
        uint64_t hl = (uint64_t)h.len;
        unsigned char le[8];
        for (int k = 0; k < 8; k++) le[k] = (unsigned char)(hl >> (8 * k));
        int ok = !ckpt_fwrite_all_(f, le, 8) && !ckpt_fwrite_all_(f, h.s, h.len);
        for (int i = 0; ok && i < n; i++) {
            if (dtype == HF_F32) {   /* little-endian host: fp32 bytes are already the file's */
                ok = !ckpt_fwrite_all_(f, t[i].data, t[i].numel * 4);
                continue;
            }
            for (size_t b = 0; ok && b < t[i].numel; b += chunk) {
                size_t m = t[i].numel - b < chunk ? t[i].numel - b : chunk;
                for (size_t k = 0; k < m; k++) conv[k] = hf_f32_to_bf16(t[i].data[b + k]);
                ok = !ckpt_fwrite_all_(f, conv, m * 2);
            }
        }
        rc = atomic_commit(f, ok, tmp, path, err, errlen);
    }
done:
    free(conv);
    free(h.s);
    return rc;
}

/* ---- safetensors: read ------------------------------------------------------------------------ */

typedef struct {
    char name[HF_NAME_LEN];
    HfDtype dtype;
    int ndim;
    int64_t shape[HF_MAX_DIMS];
    uint64_t begin, end;   /* bytes, relative to the data start */
    int used;              /* set by hf_import */
} HfTensorInfo;

typedef struct {
    char path[4200];
    uint64_t data_start, data_bytes;
    int n;
    HfTensorInfo* t;
} HfSafetensors;

static inline void hf_st_close(HfSafetensors* st) {
    free(st->t);
    st->t = NULL;
    st->n = 0;
}

/* Array element or member k of a tensor entry as an integer in [0, max] (max < 10^18); else an error
 * naming the tensor and `what` (the key). */
static inline int hf_st_uint_(const Json* j, int32_t k, long long max, uint64_t* v, const HfTensorInfo* t, const char* what,
                              const char* path, char* err, size_t errlen) {
    const JsonNode* d = &j->nodes[k];
    long long x;
    if (json_integer(j, k, 0, max, &x) == 0) { *v = (uint64_t)x; return 0; }
    if (json_integer(j, k, 0, 999999999999999999LL, &x) == 0) return 2;   /* an integer above max: the caller says why */
    int num = d->type == JSON_NUMBER, shown = num ? (int)(d->str_len < 24 ? d->str_len : 24) : 0;
    ckpt_errf(err, errlen, "%s: bad safetensors header: tensor '%s': \"%s\" holds %s%.*s%s, expected a non-negative integer"
              " below 10^18", path, t->name, what, num ? "" : json_type_name(d->type), shown, num ? j->src + d->str : "",
              num && d->str_len > 24 ? "..." : "");
    return 1;
}

/* Tensor entry e of the header, {"dtype": ..., "shape": [...], "data_offsets": [b, e]} (other keys are
 * skipped; a key given twice: the last counts), into t (t->name set). Returns 0, or 1 with err. */
static inline int hf_st_entry_(const Json* j, int32_t e, HfTensorInfo* t, const char* path, char* err, size_t errlen) {
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (j->nodes[e].type != JSON_OBJECT) {
        ckpt_errf(err, errlen, "%s: bad safetensors header: tensor '%s' is %s, expected an object", path, t->name,
                  json_type_name(j->nodes[e].type));
        return 1;
    }
    for (int32_t m = j->nodes[e].child; m >= 0; m = j->nodes[m].next) {
        const JsonNode* d = &j->nodes[m];
        int dtype = json_key_is(j, m, "dtype"), shape = json_key_is(j, m, "shape"), off = json_key_is(j, m, "data_offsets");
        int want = dtype ? JSON_STRING : JSON_ARRAY;
        if ((dtype || shape || off) && (d->type != want || (off && d->count != 2))) {
            char is[48];
            if (d->type == JSON_ARRAY) snprintf(is, sizeof is, "an array of %d", (int)d->count);
            else snprintf(is, sizeof is, "%s", json_type_name(d->type));
            ckpt_errf(err, errlen, "%s: bad safetensors header: tensor '%s': \"%s\" is %s, expected %s", path, t->name,
                      j->strings + d->key, is, dtype ? "a string" : shape ? "an array" : "an array of 2 integers [begin, end]");
            return 1;
        }
        if (dtype) {
            const char* dt = j->strings + d->str;
            if (json_is_string(j, m, "F32")) t->dtype = HF_F32;
            else if (json_is_string(j, m, "BF16")) t->dtype = HF_BF16;
            else if (json_is_string(j, m, "F16")) t->dtype = HF_F16;
            else {
                ckpt_errf(err, errlen, "%s: tensor '%s' has dtype %.15s%s; this reader takes F32, BF16 and F16", path, t->name,
                          dt, d->str_len > 15 ? "..." : "");
                return 1;
            }
            have_dtype = 1;
        } else if (shape) {
            t->ndim = 0;
            for (int32_t x = d->child; x >= 0; x = j->nodes[x].next) {
                uint64_t v;
                int r = t->ndim == HF_MAX_DIMS ? 2 : hf_st_uint_(j, x, (long long)1 << 40, &v, t, "shape", path, err, errlen);
                if (r == 2)
                    ckpt_errf(err, errlen, "%s: tensor '%s' has more than %d dimensions or a dimension over 2^40", path,
                              t->name, HF_MAX_DIMS);
                if (r != 0) return 1;
                t->shape[t->ndim++] = (int64_t)v;
            }
            have_shape = 1;
        } else if (off) {
            int32_t b = d->child, x = j->nodes[b].next;
            if (hf_st_uint_(j, b, LLONG_MAX, &t->begin, t, "data_offsets", path, err, errlen) != 0 ||
                hf_st_uint_(j, x, LLONG_MAX, &t->end, t, "data_offsets", path, err, errlen) != 0)
                return 1;
            have_off = 1;
        }
    }
    if (!have_dtype || !have_shape || !have_off) {
        ckpt_errf(err, errlen, "%s: tensor '%s' lacks %s", path, t->name,
                  !have_dtype ? "a dtype" : (!have_shape ? "a shape" : "data_offsets"));
        return 1;
    }
    return 0;
}

/* The header's JSON text[0..len) into st->t: every member but "__metadata__" (skipped, whatever it
 * holds) is a tensor. Returns 0, or 1 with err. */
static inline int hf_st_parse_header_(HfSafetensors* st, const char* text, size_t len, char* err, size_t errlen) {
    char jerr[512];
    Json j;
    if (json_parse(&j, text, len, "the header", jerr, sizeof jerr) != 0) {
        ckpt_errf(err, errlen, "%s: bad safetensors header: %s", st->path, jerr);
        return 1;
    }
    int rc = 1;
    if (j.nodes[0].type != JSON_OBJECT) {
        ckpt_errf(err, errlen, "%s: bad safetensors header: the JSON value is %s, expected an object", st->path,
                  json_type_name(j.nodes[0].type));
        goto done;
    }
    if (!(st->t = (HfTensorInfo*)calloc((size_t)j.nodes[0].count + 1, sizeof(HfTensorInfo)))) {
        ckpt_errf(err, errlen, "out of host memory");
        goto done;
    }
    for (int32_t k = j.nodes[0].child; k >= 0; k = j.nodes[k].next) {
        const char* key = j.strings + j.nodes[k].key;
        if (j.nodes[k].key_len >= HF_NAME_LEN) {
            ckpt_errf(err, errlen, "%s: a tensor name is longer than %d bytes", st->path, HF_NAME_LEN - 1);
            goto done;
        }
        if (strlen(key) != j.nodes[k].key_len) {
            ckpt_errf(err, errlen, "%s: bad safetensors header: the tensor name \"%s\\u0000...\" holds a NUL character",
                      st->path, key);
            goto done;
        }
        if (json_key_is(&j, k, "__metadata__")) continue;
        HfTensorInfo* t = &st->t[st->n++];
        memcpy(t->name, key, j.nodes[k].key_len + 1);
        if (hf_st_entry_(&j, k, t, st->path, err, errlen) != 0) goto done;
    }
    rc = 0;
done:
    json_free(&j);
    return rc;
}

static inline int hf_st_cmp_begin_(const void* a, const void* b) {
    const HfTensorInfo* x = *(const HfTensorInfo* const*)a;
    const HfTensorInfo* y = *(const HfTensorInfo* const*)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Opens and validates a safetensors file (header only; data is read by hf_st_read). 0, or 1 with err. */
static inline int hf_st_open(HfSafetensors* st, const char* path, char* err, size_t errlen) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    FILE* f = fopen(path, "rb");
    if (!f) { ckpt_errf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return 1; }
    char* text = NULL;
    int rc = 1;
    struct stat sb;
    unsigned char le[8];
    uint64_t size, hl = 0;
    if (fstat(fileno(f), &sb) != 0) { ckpt_errf(err, errlen, "cannot stat %s: %s", path, strerror(errno)); goto done; }
    size = (uint64_t)sb.st_size;
    if (size < 8 || fread(le, 1, 8, f) != 8) {
        ckpt_errf(err, errlen, "%s is not a safetensors file: %llu bytes, shorter than the 8-byte header length", path,
                  (unsigned long long)size);
        goto done;
    }
    for (int k = 0; k < 8; k++) hl |= (uint64_t)le[k] << (8 * k);
    if (hl < 2 || hl > HF_MAX_HEADER || hl > size - 8) {
        ckpt_errf(err, errlen, "%s: header length %llu is impossible for a %llu-byte file (truncated, or not safetensors)",
                  path, (unsigned long long)hl, (unsigned long long)size);
        goto done;
    }
    text = (char*)malloc((size_t)hl + 1);
    if (!text) { ckpt_errf(err, errlen, "out of host memory"); goto done; }
    if (fread(text, 1, (size_t)hl, f) != (size_t)hl) { ckpt_errf(err, errlen, "%s: header is truncated", path); goto done; }
    text[hl] = '\0';
    if (strlen(text) != (size_t)hl) { ckpt_errf(err, errlen, "%s: header holds a NUL byte (not safetensors)", path); goto done; }
    st->data_start = 8 + hl;
    st->data_bytes = size - st->data_start;
    if (hf_st_parse_header_(st, text, (size_t)hl, err, errlen)) goto done;
    {
        HfTensorInfo** order = (HfTensorInfo**)malloc(sizeof(HfTensorInfo*) * (size_t)(st->n ? st->n : 1));
        if (!order) { ckpt_errf(err, errlen, "out of host memory"); goto done; }
        for (int i = 0; i < st->n; i++) {
            HfTensorInfo* t = &st->t[i];
            uint64_t numel = 1;
            int wrapped = 0;
            for (int d = 0; d < t->ndim; d++) {
                uint64_t dim = (uint64_t)t->shape[d];
                if (dim && numel > ((uint64_t)1 << 61) / dim) wrapped = 1;
                else numel *= dim;
            }
            if (t->end < t->begin || t->end > st->data_bytes) {
                ckpt_errf(err, errlen, "%s: tensor '%s' has data_offsets [%llu, %llu] outside the %llu data bytes of the file "
                          "(truncated?)", path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                          (unsigned long long)st->data_bytes);
                free(order);
                goto done;
            }
            if (wrapped || numel * hf_dtype_size(t->dtype) != t->end - t->begin) {
                ckpt_errf(err, errlen, "%s: tensor '%s' spans %llu bytes but its shape and dtype %s need %llu", path, t->name,
                          (unsigned long long)(t->end - t->begin), hf_dtype_name(t->dtype),
                          (unsigned long long)(numel * hf_dtype_size(t->dtype)));
                free(order);
                goto done;
            }
            for (int k = 0; k < i; k++)
                if (!strcmp(st->t[k].name, t->name)) {
                    ckpt_errf(err, errlen, "%s: tensor '%s' appears twice", path, t->name);
                    free(order);
                    goto done;
                }
            order[i] = t;
        }
        qsort(order, (size_t)st->n, sizeof *order, hf_st_cmp_begin_);
        int last = -1;   /* the tensor reaching furthest so far (empty tensors overlap nothing) */
        for (int i = 0; i < st->n; i++) {
            if (order[i]->begin == order[i]->end) continue;
            if (last >= 0 && order[i]->begin < order[last]->end) {
                ckpt_errf(err, errlen, "%s: tensors '%s' and '%s' overlap in the file", path, order[last]->name, order[i]->name);
                free(order);
                goto done;
            }
            if (last < 0 || order[i]->end > order[last]->end) last = i;
        }
        free(order);
    }
    rc = 0;
done:
    free(text);
    fclose(f);
    if (rc != 0) hf_st_close(st);
    return rc;
}

static inline const HfTensorInfo* hf_st_find(const HfSafetensors* st, const char* name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

/* Reads one tensor as fp32 into dst (numel values). 0, or 1 with err. */
static inline int hf_st_read(const HfSafetensors* st, const HfTensorInfo* t, float* dst, char* err, size_t errlen) {
    FILE* f = fopen(st->path, "rb");
    if (!f) { ckpt_errf(err, errlen, "cannot open %s: %s", st->path, strerror(errno)); return 1; }
    size_t es = hf_dtype_size(t->dtype), numel = (size_t)((t->end - t->begin) / es);
    int rc = 1;
    uint16_t* buf = NULL;
    const size_t chunk = (size_t)1 << 20;
    if (fseeko(f, (off_t)(st->data_start + t->begin), SEEK_SET) != 0) goto io;
    if (t->dtype == HF_F32) {
        size_t left = numel;
        float* p = dst;
        while (left) {
            size_t m = left < chunk ? left : chunk;
            if (fread(p, 4, m, f) != m) goto io;
            p += m;
            left -= m;
        }
    } else {
        if (!(buf = (uint16_t*)malloc(chunk * 2))) { ckpt_errf(err, errlen, "out of host memory"); goto done; }
        for (size_t b = 0; b < numel; b += chunk) {
            size_t m = numel - b < chunk ? numel - b : chunk;
            if (fread(buf, 2, m, f) != m) goto io;
            for (size_t k = 0; k < m; k++) dst[b + k] = t->dtype == HF_BF16 ? hf_bf16_to_f32(buf[k]) : hf_f16_to_f32(buf[k]);
        }
    }
    rc = 0;
    goto done;
io:
    ckpt_errf(err, errlen, "%s: cannot read tensor '%s' (file truncated?)", st->path, t->name);
done:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- model configs: our config fields <-> config.json ----------------------------------------- */

static inline int hf_need_(const CkptHeader* cfg, const char* const* names, int n, char* err, size_t errlen) {
    for (int i = 0; i < n; i++)
        if (!ckpt_config_get(cfg, names[i])) {
            ckpt_errf(err, errlen, "model config has no field %s", names[i]);
            return 1;
        }
    return 0;
}
static inline double hf_eps_(const CkptHeader* cfg) {
    const CkptConfigField* f = ckpt_config_get(cfg, "eps");
    return f ? (f->is_float ? f->f : (double)f->i) : 0.0;
}
/* expand = width / D, checked to give width back through Python's int(D * expand) */
static inline int hf_expand_(HfBuf* b, const char* key, long long width, long long D, char* err, size_t errlen) {
    double e = (double)width / (double)D;
    if ((long long)((double)D * e) != width) e = nextafter(e, INFINITY);
    if ((long long)((double)D * e) != width) {
        ckpt_errf(err, errlen, "%s: no float gives int(%lld * %s) = %lld", key, D, key, width);
        return 1;
    }
    hf_buf_printf(b, "  \"%s\": ", key);
    hf_buf_double(b, e);
    hf_buf_printf(b, ",\n");
    return 0;
}

static inline int hf_gla_config_write(const CkptHeader* cfg, HfBuf* b, char* err, size_t errlen) {
    static const char* const need[] = {"Vc", "D", "L", "H", "key_dim", "value_dim", "I", "tied", "eps"};
    if (hf_need_(cfg, need, 9, err, errlen)) return 1;
    long long D = hf_field(cfg, "D");
    hf_buf_printf(b, "{\n  \"architectures\": [\"GLAForCausalLM\"],\n  \"model_type\": \"gla\",\n");
    hf_buf_printf(b, "  \"hidden_size\": %lld,\n  \"num_hidden_layers\": %lld,\n  \"num_heads\": %lld,\n", D,
                  hf_field(cfg, "L"), hf_field(cfg, "H"));
    hf_buf_printf(b, "  \"num_kv_heads\": null,\n");
    if (hf_expand_(b, "expand_k", hf_field(cfg, "key_dim"), D, err, errlen)) return 1;
    if (hf_expand_(b, "expand_v", hf_field(cfg, "value_dim"), D, err, errlen)) return 1;
    hf_buf_printf(b, "  \"hidden_ratio\": 4,\n  \"intermediate_size\": %lld,\n  \"vocab_size\": %lld,\n", hf_field(cfg, "I"),
                  hf_field(cfg, "Vc"));
    hf_buf_printf(b, "  \"tie_word_embeddings\": %s,\n  \"norm_eps\": ", hf_field(cfg, "tied") ? "true" : "false");
    hf_buf_float(b, (float)hf_eps_(cfg));
    hf_buf_printf(b, ",\n  \"attn_mode\": \"chunk\",\n  \"use_short_conv\": false,\n  \"use_output_gate\": true,\n"
                     "  \"feature_map\": null,\n  \"clamp_min\": null,\n  \"attn\": null,\n  \"hidden_act\": \"swish\",\n"
                     "  \"elementwise_affine\": true,\n  \"fuse_norm\": true,\n  \"fuse_swiglu\": true,\n"
                     "  \"initializer_range\": 0.02,\n  \"torch_dtype\": \"float32\"\n}\n");
    return 0;
}

/* A norm epsilon: the trainers keep it as a float, which must be positive and below 1 */
static inline int hf_cfg_eps_(const HfConfig* c, const char* key, double def, double* out, char* err, size_t errlen) {
    if (hf_cfg_num(c, key, def, out, err, errlen)) return 1;
    if (!((float)*out > 0.0f && *out < 1.0)) {
        ckpt_errf(err, errlen, "%s: \"%s\" %g is not in (0, 1) as a float", c->path, key, *out);
        return 1;
    }
    return 0;
}

/* A width given as a ratio of hidden_size (expand, expand_k, hidden_ratio ...): D * f truncated toward zero, as
 * Python's int() does. A ratio that puts it outside [0, 2^53) is refused here: converting such a double to an
 * integer is undefined behaviour in C, not merely a wrong size. */
static inline int hf_ratio_width_(const HfConfig* c, const char* key, long long D, double f, long long* out, char* err,
                                  size_t errlen) {
    double v = (double)D * f;
    if (!(v >= 0.0 && v < 9e15)) {
        ckpt_errf(err, errlen, "%s: \"%s\" %g times hidden_size %lld is not a usable width", c->path, key, f, D);
        return 1;
    }
    *out = (long long)v;
    return 0;
}

static inline int hf_gla_config_read(const HfConfig* c, CkptHeader* out, char* err, size_t errlen) {
    long long D, L, H, Vc, I, kv;
    double ek, ev, ratio, eps;
    int tied;
    const char* nosupp = "this trainer builds fla's default GLA layer only";
    if (hf_cfg_str_is(c, "model_type", "gla", "this is the GLA trainer", err, errlen)) return 1;
    if (hf_cfg_int(c, "hidden_size", 0, 1, &D, err, errlen) || hf_cfg_int(c, "num_hidden_layers", 0, 1, &L, err, errlen) ||
        hf_cfg_int(c, "num_heads", 4, 0, &H, err, errlen) || hf_cfg_int(c, "vocab_size", 0, 1, &Vc, err, errlen) ||
        hf_cfg_num(c, "expand_k", 0.5, &ek, err, errlen) || hf_cfg_num(c, "expand_v", 1.0, &ev, err, errlen) ||
        hf_cfg_num(c, "hidden_ratio", 4.0, &ratio, err, errlen) || hf_cfg_eps_(c, "norm_eps", 1e-6, &eps, err, errlen) ||
        hf_cfg_bool(c, "tie_word_embeddings", 0, &tied, err, errlen) || hf_cfg_int(c, "num_kv_heads", H, 0, &kv, err, errlen))
        return 1;
    if (kv != H) { ckpt_errf(err, errlen, "%s: num_kv_heads %lld != num_heads %lld (GQA); %s", c->path, kv, H, nosupp); return 1; }
    if (hf_cfg_bool_is(c, "use_short_conv", 0, 0, nosupp, err, errlen) ||
        hf_cfg_bool_is(c, "use_output_gate", 1, 1, nosupp, err, errlen) ||
        hf_cfg_bool_is(c, "elementwise_affine", 1, 1, nosupp, err, errlen) ||
        hf_cfg_str_is(c, "feature_map", NULL, nosupp, err, errlen) || hf_cfg_str_is(c, "clamp_min", NULL, nosupp, err, errlen) ||
        hf_cfg_str_is(c, "attn", NULL, "hybrid attention layers are not supported", err, errlen) ||
        hf_cfg_str_is(c, "hidden_act", "swish|silu", nosupp, err, errlen))
        return 1;
    /* fla's GatedMLP: intermediate_size, else 256 * ceil(int(D * hidden_ratio * 2 / 3) / 256) */
    if (hf_cfg_int(c, "intermediate_size", -1, 0, &I, err, errlen)) return 1;
    if (D <= 0 || L <= 0 || H <= 0 || Vc <= 0) { ckpt_errf(err, errlen, "%s: sizes must be positive", c->path); return 1; }
    long long Kd, Vd;
    if (hf_ratio_width_(c, "expand_k", D, ek, &Kd, err, errlen) || hf_ratio_width_(c, "expand_v", D, ev, &Vd, err, errlen))
        return 1;
    if (I < 0) {
        if (hf_ratio_width_(c, "hidden_ratio", D, ratio * 2.0 / 3.0, &I, err, errlen)) return 1;
        I = 256 * ((I + 255) / 256);
    }
    if (I <= 0) { ckpt_errf(err, errlen, "%s: sizes must be positive", c->path); return 1; }
    ckpt_header_init(out, CKPT_MODEL_GLA);
    ckpt_config_int(out, "Vc", Vc);
    ckpt_config_int(out, "D", D);
    ckpt_config_int(out, "L", L);
    ckpt_config_int(out, "H", H);
    ckpt_config_int(out, "key_dim", Kd);
    ckpt_config_int(out, "value_dim", Vd);
    ckpt_config_int(out, "I", I);
    ckpt_config_int(out, "tied", tied);
    ckpt_config_float(out, "eps", (double)(float)eps);   /* the trainers keep eps as a float */
    return 0;
}

static inline int hf_mamba_config_write(const CkptHeader* cfg, HfBuf* b, char* err, size_t errlen) {
    static const char* const need[] = {"Vc", "D", "L", "d_inner", "d_state", "dt_rank", "conv", "tied", "eps"};
    if (hf_need_(cfg, need, 9, err, errlen)) return 1;
    long long D = hf_field(cfg, "D"), Di = hf_field(cfg, "d_inner");
    hf_buf_printf(b, "{\n  \"architectures\": [\"MambaForCausalLM\"],\n  \"model_type\": \"mamba\",\n");
    hf_buf_printf(b, "  \"hidden_size\": %lld,\n  \"num_hidden_layers\": %lld,\n  \"state_size\": %lld,\n", D,
                  hf_field(cfg, "L"), hf_field(cfg, "d_state"));
    if (Di % D == 0) hf_buf_printf(b, "  \"expand\": %lld,\n", Di / D);
    else if (hf_expand_(b, "expand", Di, D, err, errlen)) return 1;
    hf_buf_printf(b, "  \"intermediate_size\": %lld,\n  \"time_step_rank\": %lld,\n  \"conv_kernel\": %lld,\n", Di,
                  hf_field(cfg, "dt_rank"), hf_field(cfg, "conv"));
    hf_buf_printf(b, "  \"vocab_size\": %lld,\n  \"tie_word_embeddings\": %s,\n  \"layer_norm_epsilon\": ", hf_field(cfg, "Vc"),
                  hf_field(cfg, "tied") ? "true" : "false");
    hf_buf_float(b, (float)hf_eps_(cfg));
    hf_buf_printf(b, ",\n  \"use_bias\": false,\n  \"use_conv_bias\": true,\n  \"hidden_act\": \"silu\",\n"
                     "  \"residual_in_fp32\": true,\n  \"rescale_prenorm_residual\": false,\n"
                     "  \"torch_dtype\": \"float32\"\n}\n");
    return 0;
}

static inline int hf_mamba_config_read(const HfConfig* c, CkptHeader* out, char* err, size_t errlen) {
    long long D, L, N, Di, R, W, Vc;
    double expand, eps;
    int tied;
    if (hf_cfg_str_is(c, "model_type", "mamba", "this is the Mamba(-1) trainer", err, errlen)) return 1;
    if (hf_cfg_int(c, "hidden_size", 0, 1, &D, err, errlen) || hf_cfg_int(c, "num_hidden_layers", 0, 1, &L, err, errlen) ||
        hf_cfg_int(c, "state_size", 16, 0, &N, err, errlen) || hf_cfg_num(c, "expand", 2.0, &expand, err, errlen) ||
        hf_cfg_int(c, "conv_kernel", 4, 0, &W, err, errlen) || hf_cfg_int(c, "vocab_size", 0, 1, &Vc, err, errlen) ||
        hf_cfg_bool(c, "tie_word_embeddings", 1, &tied, err, errlen) ||
        hf_cfg_eps_(c, "layer_norm_epsilon", 1e-5, &eps, err, errlen))
        return 1;
    if (D <= 0) { ckpt_errf(err, errlen, "%s: sizes must be positive", c->path); return 1; }
    const HfCfgItem* is = hf_cfg_get(c, "intermediate_size");
    if (!is || is->type == HF_JNULL) { if (hf_ratio_width_(c, "expand", D, expand, &Di, err, errlen)) return 1; }
    else if (hf_cfg_int(c, "intermediate_size", 0, 1, &Di, err, errlen)) return 1;
    const HfCfgItem* r = hf_cfg_get(c, "time_step_rank");
    if (!r || r->type == HF_JNULL || (r->type == HF_JSTR && !strcmp(r->str, "auto"))) R = (D + 15) / 16;
    else if (hf_cfg_int(c, "time_step_rank", 0, 1, &R, err, errlen)) return 1;
    if (hf_cfg_bool_is(c, "use_bias", 1, 0, "in_proj/out_proj biases are not supported", err, errlen) ||
        hf_cfg_bool_is(c, "use_conv_bias", 1, 1, "the conv1d bias is required", err, errlen) ||
        hf_cfg_str_is(c, "hidden_act", "silu", "only silu is supported", err, errlen))
        return 1;
    if (D <= 0 || L <= 0 || N <= 0 || Di <= 0 || R <= 0 || W <= 0 || Vc <= 0) {
        ckpt_errf(err, errlen, "%s: sizes must be positive", c->path);
        return 1;
    }
    ckpt_header_init(out, CKPT_MODEL_MAMBA);
    ckpt_config_int(out, "Vc", Vc);
    ckpt_config_int(out, "D", D);
    ckpt_config_int(out, "L", L);
    ckpt_config_int(out, "d_inner", Di);
    ckpt_config_int(out, "d_state", N);
    ckpt_config_int(out, "dt_rank", R);
    ckpt_config_int(out, "conv", W);
    ckpt_config_int(out, "tied", tied);
    ckpt_config_float(out, "eps", (double)(float)eps);
    return 0;
}

static const HfModelSpec hf_gla_spec = {
    "gla", "GLAForCausalLM", CKPT_MODEL_GLA, hf_gla_names, (int)(sizeof hf_gla_names / sizeof hf_gla_names[0]),
    "lm_head.weight", "embed", hf_gla_config_write, hf_gla_config_read};
static const HfModelSpec hf_mamba_spec = {
    "mamba", "MambaForCausalLM", CKPT_MODEL_MAMBA, hf_mamba_names, (int)(sizeof hf_mamba_names / sizeof hf_mamba_names[0]),
    "lm_head.weight", "embed", hf_mamba_config_write, hf_mamba_config_read};

/* ---- whole directories ------------------------------------------------------------------------ */

static inline int hf_write_text_(const char* path, const char* text, size_t n, char* err, size_t errlen) {
    char tmp[ATOMIC_PATH_MAX];
    FILE* f = atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!f) return 1;
    return atomic_commit(f, !ckpt_fwrite_all_(f, text, n), tmp, path, err, errlen);
}

/* Writes dir/model.safetensors and dir/config.json (dir must exist) from the flat fp32 buffer
 * `master` ([total]) laid out as `p`. Returns 0, or 1 with err. */
static inline int hf_export(const char* dir, const HfModelSpec* s, const CkptHeader* cfg, const HfParam* p, int np,
                            const float* master, size_t total, HfDtype dtype, char* err, size_t errlen) {
    HfPlanItem* plan = NULL;
    HfWriteTensor* wt = NULL;
    HfBuf cj = {NULL, 0, 0, 0};
    char path[4200];
    int n = 0, rc = 1;
    if (hf_plan(s, cfg, p, np, &plan, &n, err, errlen)) return 1;
    if (!(wt = (HfWriteTensor*)calloc((size_t)(n ? n : 1), sizeof *wt))) { ckpt_errf(err, errlen, "out of host memory"); goto done; }
    for (int i = 0; i < n; i++) {
        if (plan[i].offset + plan[i].numel > total) {
            ckpt_errf(err, errlen, "internal: '%s' lies outside the %zu-element buffer", plan[i].hf, total);
            goto done;
        }
        wt[i].name = plan[i].hf;
        wt[i].ndim = plan[i].ndim;
        wt[i].shape = plan[i].shape;
        wt[i].data = master + plan[i].offset;
        wt[i].numel = plan[i].numel;
    }
    if (s->config_write(cfg, &cj, err, errlen)) goto done;
    if (cj.oom) { ckpt_errf(err, errlen, "out of host memory"); goto done; }
    {
        const char* meta[] = {"producer", "llm.c-style GLA/Mamba trainer (common/hf.h)", NULL, NULL};
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (hf_st_write(path, wt, n, dtype, meta, err, errlen)) goto done;
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (hf_write_text_(path, cj.s, cj.len, err, errlen)) goto done;
    }
    rc = 0;
done:
    free(plan);
    free(wt);
    free(cj.s);
    return rc;
}

/* Reads dir/config.json into our config fields (kind set). Returns 0, or 1 with err. */
static inline int hf_read_config(const char* dir, const HfModelSpec* s, CkptHeader* out, char* err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    HfConfig* c = (HfConfig*)malloc(sizeof(HfConfig));
    if (!c) { ckpt_errf(err, errlen, "out of host memory"); return 1; }
    int rc = hf_config_load(c, path, err, errlen) || s->config_read(c, out, err, errlen);
    free(c);
    return rc;
}

/* Fills the flat buffer master[total] (padding zeroed) from dir/model.safetensors: every tensor of the
 * map must be there with the exact HF shape (F32, BF16 or F16), and nothing else may be (a tensor we
 * would drop means a model we do not build). Returns 0, or 1 with err naming file and tensor. */
static inline int hf_import(const char* dir, const HfModelSpec* s, const CkptHeader* cfg, const HfParam* p, int np,
                            float* master, size_t total, char* err, size_t errlen) {
    HfPlanItem* plan = NULL;
    HfSafetensors st;
    char path[4200];
    int n = 0, rc = 1;
    float* tmp = NULL;
    memset(&st, 0, sizeof st);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        char idx[4200];
        snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
        if (stat(idx, &sb) == 0)
            ckpt_errf(err, errlen, "%s holds a sharded checkpoint (model.safetensors.index.json); only a single "
                      "model.safetensors is supported (re-save it with save_pretrained(..., max_shard_size=\"100GB\"))", dir);
        else
            ckpt_errf(err, errlen, "%s has no model.safetensors", dir);
        return 1;
    }
    if (hf_plan(s, cfg, p, np, &plan, &n, err, errlen)) return 1;
    if (hf_st_open(&st, path, err, errlen)) goto done;
    memset(master, 0, total * sizeof(float));
    for (int i = 0; i < n; i++) {
        const HfPlanItem* it = &plan[i];
        HfTensorInfo* t = (HfTensorInfo*)hf_st_find(&st, it->hf);
        if (!t && it->hf_alt[0]) t = (HfTensorInfo*)hf_st_find(&st, it->hf_alt);
        if (!t) {
            ckpt_errf(err, errlen, "%s has no tensor '%s' (our '%s')", path, it->hf, it->ours);
            goto done;
        }
        int same = t->ndim == it->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == it->shape[d];
        if (!same || it->offset + it->numel > total) {
            HfBuf a = {NULL, 0, 0, 0}, b = {NULL, 0, 0, 0};
            hf_buf_shape(&a, t->ndim, t->shape);
            hf_buf_shape(&b, it->ndim, it->shape);
            ckpt_errf(err, errlen, "%s: tensor '%s' has shape %s, this model needs %s (does config.json match the weights?)",
                      path, t->name, a.s ? a.s : "?", b.s ? b.s : "?");
            free(a.s);
            free(b.s);
            goto done;
        }
        if (t->used) { ckpt_errf(err, errlen, "%s: tensor '%s' is mapped twice", path, t->name); goto done; }
        t->used = 1;
        if (hf_st_read(&st, t, master + it->offset, err, errlen)) goto done;
    }
    if (hf_field(cfg, "tied") == 1 && s->tied_hf) {
        HfTensorInfo* t = (HfTensorInfo*)hf_st_find(&st, s->tied_hf);
        const HfParam* e = hf_param_find(p, np, s->tied_ours);
        if (t && !t->used && e) {
            int same = (uint64_t)(t->end - t->begin) == e->numel * hf_dtype_size(t->dtype);
            if (same && !(tmp = (float*)malloc(e->numel * sizeof(float)))) { ckpt_errf(err, errlen, "out of host memory"); goto done; }
            if (same && hf_st_read(&st, t, tmp, err, errlen)) goto done;
            if (!same || memcmp(tmp, master + e->offset, e->numel * sizeof(float)) != 0) {
                ckpt_errf(err, errlen, "%s: config.json ties the embeddings but '%s' differs from the embedding", path, t->name);
                goto done;
            }
            t->used = 1;
        }
    }
    for (int i = 0; i < st.n; i++)
        if (!st.t[i].used) {
            ckpt_errf(err, errlen, "%s: unexpected tensor '%s' (not part of the model config.json describes here; "
                      "an option this trainer does not build?)", path, st.t[i].name);
            goto done;
        }
    rc = 0;
done:
    free(tmp);
    free(plan);
    hf_st_close(&st);
    return rc;
}

#endif /* COMMON_HF_H */
