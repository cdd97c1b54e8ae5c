/*
 * test_hf.c — CPU tests of common/hf.h: safetensors write/read, config.json read/write, the GLA and Mamba
 * name maps (fused rows split, conv1d reshaped, tied heads), and that bad files are refused with a message
 * naming the file and the tensor. Also the two helpers test/test_hf.sh uses to check the trainers'
 * --export-hf end to end:
 *   test/test_hf                             unit tests (PASS/FAIL lines)
 *   test/test_hf mkckpt gla|mamba CKPT       a checkpoint of a tiny model with distinct weights
 *   test/test_hf verify gla|mamba CKPT DIR   DIR (an export of CKPT) imports back bit-exactly
 * The parameter tables here mimic gla_build_params / mamba_build_params (design.md layout, offsets rounded
 * up to 8 elements); the trainers cannot be linked into a C test, so test_hf.sh closes the loop: an
 * export by the real trainer must import back through this table, so the two layouts cannot drift.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "hf.h"
#include "check.h"

/* ---- tiny models: config fields and a table in the trainers' layout ---------------------------- */

typedef struct {
    HfParam p[256];
    char names[256][64];
    int n;
    size_t total;
} Table;

static void tadd(Table* t, const char* name, int ndim, int d0, int d1) {
    HfParam* p = &t->p[t->n];
    snprintf(t->names[t->n], 64, "%s", name);
    p->name = t->names[t->n];
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim > 1 ? d1 : 1;
    p->shape[2] = 1;
    p->numel = (size_t)d0 * (ndim > 1 ? d1 : 1);
    p->offset = (t->total + 7) & ~(size_t)7;
    t->total = p->offset + p->numel;
    t->n++;
}

static int field(const CkptHeader* c, const char* name) { return (int)hf_field(c, name); }

static void gla_cfg(CkptHeader* c, int tied) {
    ckpt_header_init(c, CKPT_MODEL_GLA);
    ckpt_config_int(c, "Vc", 61);
    ckpt_config_int(c, "D", 32);
    ckpt_config_int(c, "L", 2);
    ckpt_config_int(c, "H", 2);
    ckpt_config_int(c, "key_dim", 16);
    ckpt_config_int(c, "value_dim", 32);
    ckpt_config_int(c, "I", 48);
    ckpt_config_int(c, "tied", tied);
    ckpt_config_float(c, "eps", (double)1e-6f);
}
static void mamba_cfg(CkptHeader* c, int tied) {
    ckpt_header_init(c, CKPT_MODEL_MAMBA);
    ckpt_config_int(c, "Vc", 53);
    ckpt_config_int(c, "D", 16);
    ckpt_config_int(c, "L", 2);
    ckpt_config_int(c, "d_inner", 32);
    ckpt_config_int(c, "d_state", 4);
    ckpt_config_int(c, "dt_rank", 3);
    ckpt_config_int(c, "conv", 4);
    ckpt_config_int(c, "tied", tied);
    ckpt_config_float(c, "eps", (double)1e-5f);
}

/* train_gla.cu gla_build_params */
static void gla_table(Table* t, const CkptHeader* c) {
    memset(t, 0, sizeof *t);
    int Vc = field(c, "Vc"), D = field(c, "D"), L = field(c, "L"), H = field(c, "H"), Dk = field(c, "key_dim"),
        Dv = field(c, "value_dim"), I = field(c, "I");
    char nm[64];
    tadd(t, "embed", 2, Vc, D);
    for (int l = 0; l < L; l++) {
#define A_(n, ...) (snprintf(nm, sizeof nm, "layers.%d." n, l), tadd(t, nm, __VA_ARGS__))
        A_("attn_norm", 1, D, 0);
        A_("w_in", 2, 2 * Dk + 2 * Dv + 16, D);
        A_("gk1_w", 2, Dk, 16);
        A_("gk1_b", 1, Dk, 0);
        A_("gnorm", 1, Dv / H, 0);
        A_("w_o", 2, D, Dv);
        A_("mlp_norm", 1, D, 0);
        A_("w_gateup", 2, 2 * I, D);
        A_("w_down", 2, D, I);
    }
    tadd(t, "final_norm", 1, D, 0);
    if (!field(c, "tied")) tadd(t, "lm_head", 2, Vc, D);
}
/* train_mamba.cu mamba_build_params */
static void mamba_table(Table* t, const CkptHeader* c) {
    memset(t, 0, sizeof *t);
    int Vc = field(c, "Vc"), D = field(c, "D"), L = field(c, "L"), Di = field(c, "d_inner"), N = field(c, "d_state"),
        R = field(c, "dt_rank"), W = field(c, "conv");
    char nm[64];
    tadd(t, "embed", 2, Vc, D);
    for (int l = 0; l < L; l++) {
        A_("norm", 1, D, 0);
        A_("w_in", 2, 2 * Di, D);
        A_("conv_w", 2, Di, W);
        A_("conv_b", 1, Di, 0);
        A_("w_x", 2, R + 2 * N, Di);
        A_("w_dt", 2, Di, R);
        A_("dt_bias", 1, Di, 0);
        A_("A_log", 2, Di, N);
        A_("Dskip", 1, Di, 0);
        A_("w_out", 2, D, Di);
#undef A_
    }
    tadd(t, "final_norm", 1, D, 0);
    if (!field(c, "tied")) tadd(t, "lm_head", 2, Vc, D);
}

static const HfModelSpec* spec_of(int kind) { return kind == CKPT_MODEL_GLA ? &hf_gla_spec : &hf_mamba_spec; }
static void table_of(Table* t, const CkptHeader* c) {
    if (c->kind == CKPT_MODEL_GLA) gla_table(t, c);
    else mamba_table(t, c);
}

/* distinct values in every tensor element (with a -0 and a subnormal: bit-exactness, not just ==), zero padding */
static float* fill_master(const Table* t, unsigned seed) {
    float* m = (float*)calloc(t->total, sizeof(float));
    uint32_t s = seed * 2654435761u + 12345u;
    for (int i = 0; i < t->n; i++)
        for (size_t k = 0; k < t->p[i].numel; k++) {
            s = s * 1664525u + 1013904223u;
            m[t->p[i].offset + k] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.1f;
        }
    m[t->p[0].offset] = -0.0f;
    m[t->p[0].offset + 1] = 1e-40f;
    return m;
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static char g_tmp[256];

static void path_in(char* out, size_t cap, const char* dir, const char* name) { snprintf(out, cap, "%s/%s", dir, name); }

static void write_raw(const char* path, const void* data, size_t n) {
    FILE* f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    if (n && fwrite(data, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

/* a safetensors file from a header text and `data` bytes of data */
static void write_st(const char* path, const char* header, size_t data) {
    size_t hl = strlen(header);
    unsigned char* buf = (unsigned char*)calloc(8 + hl + data + 1, 1);
    for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(buf + 8, header, hl);
    write_raw(path, buf, 8 + hl + data);
    free(buf);
}

static int contains(const char* s, const char* sub) { return strstr(s, sub) != NULL; }

/* hf_st_open must fail with all of the substrings (NULL-ended) in its message */
static void expect_open_fails(const char* what, const char* path, const char* const* subs) {
    HfSafetensors st;
    char err[1024] = "";
    int rc = hf_st_open(&st, path, err, sizeof err);
    int ok = rc != 0 && contains(err, path);
    for (int i = 0; subs[i]; i++) ok = ok && contains(err, subs[i]);
    check(ok, what, "rc %d, message: %s", rc, err);
    if (ok) printf("     (%s)\n", err);
    if (rc == 0) hf_st_close(&st);
}

static int export_dir(const char* dir, const CkptHeader* c, const Table* t, const float* m, HfDtype dt, char* err, size_t n) {
    mkdir(dir, 0755);
    return hf_export(dir, spec_of((int)c->kind), c, t->p, t->n, m, t->total, dt, err, n);
}

/* ---- unit tests ------------------------------------------------------------------------------- */

static void test_conversions(void) {
    int ok = hf_f32_to_bf16(1.0f) == 0x3F80 && hf_f32_to_bf16(1.0f + 1.0f / 256) == 0x3F80 /* tie -> even */ &&
             hf_f32_to_bf16(1.0f + 3.0f / 256) == 0x3F82 /* tie -> even, up */ && hf_f32_to_bf16(-2.0f) == 0xC000 &&
             hf_bf16_to_f32(0x3F80) == 1.0f && (hf_f32_to_bf16(NAN) & 0x7FFF) > 0x7F80;
    check(ok, "bf16 conversion rounds to nearest even, keeps NaN", "");
    ok = hf_f16_to_f32(0x3C00) == 1.0f && hf_f16_to_f32(0xC000) == -2.0f && hf_f16_to_f32(0x0001) == ldexpf(1.0f, -24) &&
         hf_f16_to_f32(0x7BFF) == 65504.0f && isinf(hf_f16_to_f32(0x7C00)) && hf_f16_to_f32(0x0400) == ldexpf(1.0f, -14);
    check(ok, "f16 -> f32 conversion (normal, subnormal, max, inf)", "");
}

/* export -> config + import, bit-exact, for one model */
static void test_round_trip(int kind, int tied) {
    CkptHeader c, back;
    Table t;
    char dir[300], err[1024] = "", what[160];
    if (kind == CKPT_MODEL_GLA) gla_cfg(&c, tied);
    else mamba_cfg(&c, tied);
    table_of(&t, &c);
    float* m = fill_master(&t, 7u + (unsigned)tied);
    float* got = (float*)malloc(t.total * sizeof(float));
    const char* name = kind == CKPT_MODEL_GLA ? "gla" : "mamba";
    snprintf(dir, sizeof dir, "%s/rt_%s_%d", g_tmp, name, tied);
    int rc = export_dir(dir, &c, &t, m, HF_F32, err, sizeof err);
    snprintf(what, sizeof what, "%s %s: export writes model.safetensors + config.json", name, tied ? "tied" : "untied");
    check(rc == 0, what, "%s", err);
    rc = hf_read_config(dir, spec_of(kind), &back, err, sizeof err);
    if (rc == 0) rc = ckpt_config_compare(&back, &c, "the exported model", err, sizeof err);
    snprintf(what, sizeof what, "%s %s: config.json reads back to the same model config", name, tied ? "tied" : "untied");
    check(rc == 0, what, "%s", err);
    for (size_t i = 0; i < t.total; i++) got[i] = 12345.0f;   /* the import must zero the padding */
    rc = hf_import(dir, spec_of(kind), &c, t.p, t.n, got, t.total, err, sizeof err);
    snprintf(what, sizeof what, "%s %s: import is bit-exact (incl. -0, subnormal, zero padding)", name, tied ? "tied" : "untied");
    check(rc == 0 && memcmp(got, m, t.total * sizeof(float)) == 0, what, "%s", err);
    /* bf16 export: every value rounded once, to nearest even */
    snprintf(dir, sizeof dir, "%s/rt_%s_%d_bf16", g_tmp, name, tied);
    rc = export_dir(dir, &c, &t, m, HF_BF16, err, sizeof err);
    if (rc == 0) rc = hf_import(dir, spec_of(kind), &c, t.p, t.n, got, t.total, err, sizeof err);
    int same = rc == 0;
    for (size_t i = 0; same && i < t.total; i++) {
        float want = hf_bf16_to_f32(hf_f32_to_bf16(m[i]));
        same = memcmp(&want, &got[i], 4) == 0;
    }
    snprintf(what, sizeof what, "%s %s: BF16 export imports as the bf16 rounding of the weights", name, tied ? "tied" : "untied");
    check(same, what, "%s", err);
    free(m);
    free(got);
}

/* names, shapes and the row split of the fused tensors, against the reference layouts */
static void test_layout(void) {
    CkptHeader c;
    Table t;
    char dir[300], path[400], err[1024] = "";
    gla_cfg(&c, 0);
    gla_table(&t, &c);
    float* m = fill_master(&t, 3);
    snprintf(dir, sizeof dir, "%s/layout_gla", g_tmp);
    export_dir(dir, &c, &t, m, HF_F32, err, sizeof err);
    path_in(path, sizeof path, dir, "model.safetensors");
    HfSafetensors st;
    int ok = hf_st_open(&st, path, err, sizeof err) == 0;
    check(ok && st.n == 1 + 2 * 14 + 1 + 1, "gla: 31 tensors (embeddings, 2 x 14 per layer, norm, lm_head)", "%s", err);
    if (!ok) { free(m); return; }
    struct { const char* name; int ndim; int64_t s0, s1; const char* ours; int row0; } want[] = {
        {"model.embeddings.weight", 2, 61, 32, "embed", 0},
        {"model.layers.1.attn.q_proj.weight", 2, 16, 32, "layers.1.w_in", 0},
        {"model.layers.1.attn.k_proj.weight", 2, 16, 32, "layers.1.w_in", 16},
        {"model.layers.1.attn.v_proj.weight", 2, 32, 32, "layers.1.w_in", 32},
        {"model.layers.1.attn.g_proj.weight", 2, 32, 32, "layers.1.w_in", 64},
        {"model.layers.1.attn.gk_proj.0.weight", 2, 16, 32, "layers.1.w_in", 96},
        {"model.layers.1.attn.gk_proj.1.weight", 2, 16, 16, "layers.1.gk1_w", 0},
        {"model.layers.1.attn.gk_proj.1.bias", 1, 16, 0, "layers.1.gk1_b", 0},
        {"model.layers.1.attn.g_norm_swish_gate.weight", 1, 16, 0, "layers.1.gnorm", 0},
        {"model.layers.1.attn.o_proj.weight", 2, 32, 32, "layers.1.w_o", 0},
        {"model.layers.1.mlp.gate_proj.weight", 2, 48, 32, "layers.1.w_gateup", 0},
        {"model.layers.1.mlp.up_proj.weight", 2, 48, 32, "layers.1.w_gateup", 48},
        {"model.layers.1.mlp.down_proj.weight", 2, 32, 48, "layers.1.w_down", 0},
        {"model.norm.weight", 1, 32, 0, "final_norm", 0},
        {"lm_head.weight", 2, 61, 32, "lm_head", 0},
    };
    int all = 1;
    char detail[512] = "";
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const HfTensorInfo* ti = hf_st_find(&st, want[i].name);
        const HfParam* p = hf_param_find(t.p, t.n, want[i].ours);
        int good = ti && p && ti->dtype == HF_F32 && ti->ndim == want[i].ndim && ti->shape[0] == want[i].s0 &&
                   (want[i].ndim == 1 || ti->shape[1] == want[i].s1);
        if (good) {   /* its values are rows row0.. of our tensor */
            size_t n = (size_t)(ti->end - ti->begin) / 4, cols = p->ndim > 1 ? (size_t)p->shape[1] : 1;
            float* v = (float*)malloc(n * sizeof(float));
            good = hf_st_read(&st, ti, v, err, sizeof err) == 0 &&
                   memcmp(v, m + p->offset + (size_t)want[i].row0 * cols, n * sizeof(float)) == 0;
            free(v);
        }
        if (!good && all) snprintf(detail, sizeof detail, "%s: missing, wrong shape or wrong rows", want[i].name);
        all &= good;
    }
    check(all, "gla: fla names, shapes, and w_in / w_gateup split into their row blocks", "%s", detail);
    hf_st_close(&st);
    free(m);

    mamba_cfg(&c, 1);
    mamba_table(&t, &c);
    m = fill_master(&t, 4);
    snprintf(dir, sizeof dir, "%s/layout_mamba", g_tmp);
    export_dir(dir, &c, &t, m, HF_F32, err, sizeof err);
    path_in(path, sizeof path, dir, "model.safetensors");
    ok = hf_st_open(&st, path, err, sizeof err) == 0;
    const HfTensorInfo* cw = ok ? hf_st_find(&st, "backbone.layers.1.mixer.conv1d.weight") : NULL;
    const HfTensorInfo* xp = ok ? hf_st_find(&st, "backbone.layers.0.mixer.x_proj.weight") : NULL;
    const HfTensorInfo* al = ok ? hf_st_find(&st, "backbone.layers.0.mixer.A_log") : NULL;
    ok = ok && st.n == 1 + 2 * 10 + 1 && !hf_st_find(&st, "lm_head.weight") && hf_st_find(&st, "backbone.norm_f.weight") &&
         hf_st_find(&st, "backbone.layers.1.mixer.D") && hf_st_find(&st, "backbone.layers.1.mixer.dt_proj.bias") && cw &&
         cw->ndim == 3 && cw->shape[0] == 32 && cw->shape[1] == 1 && cw->shape[2] == 4 && xp && xp->shape[0] == 3 + 8 &&
         xp->shape[1] == 32 && al && al->shape[0] == 32 && al->shape[1] == 4;
    check(ok, "mamba: transformers names, conv1d.weight [Di,1,W], no lm_head when tied", "%s", err);
    if (ok) hf_st_close(&st);
    char* cj;
    path_in(path, sizeof path, dir, "config.json");
    cj = hf_slurp(path, 1 << 20, NULL, err, sizeof err);
    check(cj && contains(cj, "\"model_type\": \"mamba\"") && contains(cj, "\"use_bias\": false") &&
          contains(cj, "\"layer_norm_epsilon\": 1e-05") && contains(cj, "\"expand\": 2,") && contains(cj, "\"tie_word_embeddings\": true"),
          "mamba: config.json has model_type, use_bias false, eps 1e-05 (not 9.99999975e-06), expand 2", "%s", cj ? cj : err);
    free(cj);
    free(m);
}

/* files that must be refused, with the file and the problem named */
static void test_bad_files(void) {
    char p[400];
    path_in(p, sizeof p, g_tmp, "bad.safetensors");
    write_raw(p, "abc", 3);
    expect_open_fails("bad: 3-byte file", p, (const char* const[]){"shorter than the 8-byte", NULL});
    write_st(p, "{}", 0);
    {   /* a header length far beyond the file */
        unsigned char b[16] = {0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
        write_raw(p, b, sizeof b);
        expect_open_fails("bad: header length beyond the file", p, (const char* const[]){"header length", NULL});
    }
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", 8);
    expect_open_fails("bad: unterminated JSON header", p, (const char* const[]){"bad safetensors header", NULL});
    write_st(p, "not json at all", 8);
    expect_open_fails("bad: header that is not JSON", p, (const char* const[]){"bad safetensors header", NULL});
    write_st(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8);
    expect_open_fails("bad: data offsets beyond the file (truncated)", p, (const char* const[]){"'w'", "outside", NULL});
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, "
                "\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", 24);
    expect_open_fails("bad: overlapping tensors", p, (const char* const[]){"'a'", "'b'", "overlap", NULL});
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                "\"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [4, 20]}, "
                "\"c\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", 20);
    expect_open_fails("bad: a tensor inside another", p, (const char* const[]){"'b'", "'c'", "overlap", NULL});
    write_st(p, "{\"i\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8);
    expect_open_fails("bad: unsupported dtype", p, (const char* const[]){"'i'", "dtype I64", NULL});
    write_st(p, "{\"s\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8);
    expect_open_fails("bad: size does not match shape x dtype", p, (const char* const[]){"'s'", "spans 8 bytes", "need 12", NULL});
    write_st(p, "{\"s\": {\"dtype\": \"F32\", \"shape\": [-3], \"data_offsets\": [0, 8]}}", 8);
    expect_open_fails("bad: negative dimension", p, (const char* const[]){"non-negative integer", NULL});
    write_st(p, "{\"d\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                "\"d\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8);
    expect_open_fails("bad: a name twice", p, (const char* const[]){"'d'", "twice", NULL});
    write_st(p, "{\"m\": {\"dtype\": \"F32\", \"shape\": [1]}}", 8);
    expect_open_fails("bad: missing data_offsets", p, (const char* const[]){"'m'", "data_offsets", NULL});
    write_st(p, "{\"__metadata__\": {\"format\": \"pt\"}, \"z\": {\"dtype\": \"BF16\", \"shape\": [0, 5], \"data_offsets\": [0, 0]},"
                " \"x\": {\"dtype\": \"F16\", \"shape\": [2, 1], \"data_offsets\": [0, 4]}}   ", 4);
    {
        HfSafetensors st;
        char err[512] = "";
        int rc = hf_st_open(&st, p, err, sizeof err);
        check(rc == 0 && st.n == 2, "good: metadata, an empty tensor, F16, trailing spaces", "%s", err);
        if (rc == 0) hf_st_close(&st);
    }

    /* model-level: a truncated export, a missing / extra / misshapen tensor, a tied head that differs */
    CkptHeader c, c2;
    Table t, t2;
    char dir[300], err[1024] = "";
    gla_cfg(&c, 1);
    gla_table(&t, &c);
    float* m = fill_master(&t, 5);
    float* got = (float*)malloc(t.total * sizeof(float));
    snprintf(dir, sizeof dir, "%s/trunc", g_tmp);
    export_dir(dir, &c, &t, m, HF_F32, err, sizeof err);
    path_in(p, sizeof p, dir, "model.safetensors");
    if (truncate(p, 8 + 3000) != 0) perror("truncate");
    int rc = hf_import(dir, &hf_gla_spec, &c, t.p, t.n, got, t.total, err, sizeof err);
    check(rc != 0 && contains(err, p), "bad: truncated export is refused on import", "rc %d: %s", rc, err);

    HfPlanItem* plan;
    int n;
    hf_plan(&hf_gla_spec, &c, t.p, t.n, &plan, &n, err, sizeof err);
    HfWriteTensor* wt = (HfWriteTensor*)calloc((size_t)n + 2, sizeof *wt);
    for (int i = 0; i < n; i++) {
        wt[i].name = plan[i].hf;
        wt[i].ndim = plan[i].ndim;
        wt[i].shape = plan[i].shape;
        wt[i].data = m + plan[i].offset;
        wt[i].numel = plan[i].numel;
    }
    snprintf(dir, sizeof dir, "%s/missing", g_tmp);
    mkdir(dir, 0755);
    path_in(p, sizeof p, dir, "model.safetensors");
    hf_st_write(p, wt, n - 2, HF_F32, NULL, err, sizeof err);   /* the last layer's down_proj and the norm are gone */
    rc = hf_import(dir, &hf_gla_spec, &c, t.p, t.n, got, t.total, err, sizeof err);
    check(rc != 0 && contains(err, "no tensor 'model.layers.1.mlp.down_proj.weight'") && contains(err, p),
          "bad: a missing tensor is named", "rc %d: %s", rc, err);
    if (rc) printf("     (%s)\n", err);

    int64_t qshape[2] = {16, 32};
    wt[n].name = "model.layers.0.attn.q_conv1d.weight";
    wt[n].ndim = 2;
    wt[n].shape = qshape;
    wt[n].data = m;
    wt[n].numel = 16 * 32;
    snprintf(dir, sizeof dir, "%s/extra", g_tmp);
    mkdir(dir, 0755);
    path_in(p, sizeof p, dir, "model.safetensors");
    hf_st_write(p, wt, n + 1, HF_F32, NULL, err, sizeof err);
    rc = hf_import(dir, &hf_gla_spec, &c, t.p, t.n, got, t.total, err, sizeof err);
    check(rc != 0 && contains(err, "unexpected tensor 'model.layers.0.attn.q_conv1d.weight'"), "bad: an extra tensor is named",
          "rc %d: %s", rc, err);

    /* tied head present: accepted when equal to the embedding, refused otherwise */
    const HfParam* e = hf_param_find(t.p, t.n, "embed");
    int64_t eshape[2] = {61, 32};
    wt[n].name = "lm_head.weight";
    wt[n].shape = eshape;
    wt[n].data = m + e->offset;
    wt[n].numel = e->numel;
    snprintf(dir, sizeof dir, "%s/tiedhead", g_tmp);
    mkdir(dir, 0755);
    path_in(p, sizeof p, dir, "model.safetensors");
    hf_st_write(p, wt, n + 1, HF_F32, NULL, err, sizeof err);
    rc = hf_import(dir, &hf_gla_spec, &c, t.p, t.n, got, t.total, err, sizeof err);
    check(rc == 0 && memcmp(got, m, t.total * 4) == 0, "tied: an lm_head.weight equal to the embedding is accepted", "%s", err);
    float* other = (float*)malloc(e->numel * sizeof(float));
    memcpy(other, m + e->offset, e->numel * sizeof(float));
    other[5] += 1.0f;
    wt[n].data = other;
    hf_st_write(p, wt, n + 1, HF_F32, NULL, err, sizeof err);
    rc = hf_import(dir, &hf_gla_spec, &c, t.p, t.n, got, t.total, err, sizeof err);
    check(rc != 0 && contains(err, "ties the embeddings"), "bad: tied config but a different lm_head.weight",
          "rc %d: %s", rc, err);
    free(other);

    /* weights of another size than config.json says */
    gla_cfg(&c2, 1);
    ckpt_config_int(&c2, "D", 40);
    ckpt_config_int(&c2, "value_dim", 40);
    gla_table(&t2, &c2);
    float* m2 = fill_master(&t2, 6);
    snprintf(dir, sizeof dir, "%s/shape", g_tmp);
    export_dir(dir, &c2, &t2, m2, HF_F32, err, sizeof err);
    rc = hf_import(dir, &hf_gla_spec, &c, t.p, t.n, got, t.total, err, sizeof err);
    check(rc != 0 && contains(err, "'model.embeddings.weight' has shape [61, 40], this model needs [61, 32]"),
          "bad: a tensor of the wrong shape is named with both shapes", "rc %d: %s", rc, err);
    if (rc) printf("     (%s)\n", err);

    snprintf(dir, sizeof dir, "%s/empty", g_tmp);
    mkdir(dir, 0755);
    rc = hf_import(dir, &hf_gla_spec, &c, t.p, t.n, got, t.total, err, sizeof err);
    check(rc != 0 && contains(err, "no model.safetensors"), "bad: a directory without model.safetensors", "%s", err);
    path_in(p, sizeof p, dir, "model.safetensors.index.json");
    write_raw(p, "{}", 2);
    rc = hf_import(dir, &hf_gla_spec, &c, t.p, t.n, got, t.total, err, sizeof err);
    check(rc != 0 && contains(err, "sharded"), "bad: a sharded checkpoint says so", "%s", err);
    free(plan);
    free(wt);
    free(m);
    free(m2);
    free(got);
}

/* config.json as fla and transformers write them */
static void test_configs(void) {
    /* legacy/training/configs/gla_340M.json style (fla), with nesting and escapes to skip */
    const char* gla340 =
        "{\n  \"attn_mode\": \"chunk\", \"bos_token_id\": 1, \"clamp_min\": null, \"eos_token_id\": 2,\n"
        "  \"expand_k\": 0.5, \"expand_v\": 1, \"fuse_cross_entropy\": true, \"fuse_norm\": true, \"hidden_act\": \"swish\",\n"
        "  \"hidden_ratio\": 4, \"hidden_size\": 1024, \"initializer_range\": 0.02, \"intermediate_size\": null,\n"
        "  \"max_position_embeddings\": 2048, \"model_type\": \"gla\", \"num_heads\": 4, \"num_hidden_layers\": 24,\n"
        "  \"norm_eps\": 1e-06, \"tie_word_embeddings\": true, \"use_cache\": true, \"use_gk\": true, \"use_gv\": false,\n"
        "  \"use_output_gate\": true, \"use_short_conv\": false, \"vocab_size\": 32000, \"architectures\": [\"GLAForCausalLM\"],\n"
        "  \"auto_map\": {\"AutoConfig\": \"x\", \"k\": [1, 2.5e3, {\"a\": \"\\\"q\\\\\\u00e9\"}]}, \"transformers_version\": \"4.45.0\"\n}\n";
    HfConfig* hc = (HfConfig*)malloc(sizeof(HfConfig));
    CkptHeader out, want;
    char err[1024] = "";
    int rc = hf_config_parse(hc, gla340, "gla_340M.json", err, sizeof err) || hf_gla_config_read(hc, &out, err, sizeof err);
    ckpt_header_init(&want, CKPT_MODEL_GLA);
    ckpt_config_int(&want, "Vc", 32000);
    ckpt_config_int(&want, "D", 1024);
    ckpt_config_int(&want, "L", 24);
    ckpt_config_int(&want, "H", 4);
    ckpt_config_int(&want, "key_dim", 512);
    ckpt_config_int(&want, "value_dim", 1024);
    ckpt_config_int(&want, "I", 2816);
    ckpt_config_int(&want, "tied", 1);
    ckpt_config_float(&want, "eps", (double)1e-6f);
    if (rc == 0) rc = ckpt_config_compare(&out, &want, "gla_340M.json", err, sizeof err);
    check(rc == 0, "config: fla gla_340M.json -> D=1024 L=24 H=4 Dk=512 Dv=1024 I=2816 (fla's rule) tied", "%s", err);

    /* state-spaces/mamba-130m-hf config.json style (transformers) */
    const char* m130 =
        "{\"architectures\": [\"MambaForCausalLM\"], \"bos_token_id\": 0, \"conv_kernel\": 4, \"eos_token_id\": 0,"
        " \"expand\": 2, \"fused_add_norm\": true, \"hidden_act\": \"silu\", \"hidden_size\": 768,"
        " \"initializer_range\": 0.1, \"intermediate_size\": 1536, \"layer_norm_epsilon\": 1e-05, \"model_type\": \"mamba\","
        " \"n_layer\": 24, \"num_hidden_layers\": 24, \"pad_token_id\": 0, \"pad_vocab_size_multiple\": 8,"
        " \"rescale_prenorm_residual\": false, \"residual_in_fp32\": true, \"rms_norm\": true, \"state_size\": 16,"
        " \"time_step_floor\": 0.0001, \"time_step_init_scheme\": \"random\", \"time_step_max\": 0.1, \"time_step_min\": 0.001,"
        " \"time_step_rank\": 48, \"time_step_scale\": 1.0, \"torch_dtype\": \"float32\", \"use_bias\": false,"
        " \"use_cache\": true, \"use_conv_bias\": true, \"vocab_size\": 50280}";
    rc = hf_config_parse(hc, m130, "mamba-130m-hf/config.json", err, sizeof err) || hf_mamba_config_read(hc, &out, err, sizeof err);
    ckpt_header_init(&want, CKPT_MODEL_MAMBA);
    ckpt_config_int(&want, "Vc", 50280);
    ckpt_config_int(&want, "D", 768);
    ckpt_config_int(&want, "L", 24);
    ckpt_config_int(&want, "d_inner", 1536);
    ckpt_config_int(&want, "d_state", 16);
    ckpt_config_int(&want, "dt_rank", 48);
    ckpt_config_int(&want, "conv", 4);
    ckpt_config_int(&want, "tied", 1);
    ckpt_config_float(&want, "eps", (double)1e-5f);
    if (rc == 0) rc = ckpt_config_compare(&out, &want, "mamba-130m-hf", err, sizeof err);
    check(rc == 0, "config: mamba-130m-hf -> D=768 L=24 Di=1536 N=16 R=48 W=4 Vc=50280 tied (default)", "%s", err);

    rc = hf_config_parse(hc, "{\"model_type\": \"mamba\", \"hidden_size\": 1000, \"num_hidden_layers\": 2, \"vocab_size\": 8,"
                             " \"time_step_rank\": \"auto\", \"expand\": 1.5, \"use_bias\": false}", "auto.json", err, sizeof err) ||
         hf_mamba_config_read(hc, &out, err, sizeof err);
    check(rc == 0 && hf_field(&out, "dt_rank") == 63 && hf_field(&out, "d_inner") == 1500 && hf_field(&out, "d_state") == 16,
          "config: time_step_rank \"auto\" = ceil(D/16), intermediate_size from expand", "%s", err);

    struct { const char* what; const char* text; int gla; const char* sub; } bad[] = {
        {"GLA short conv", "{\"model_type\": \"gla\", \"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8,"
                           " \"use_short_conv\": true}", 1, "\"use_short_conv\" is true"},
        {"GLA hybrid attention", "{\"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8, \"attn\": {\"layers\": [1]}}", 1,
         "hybrid"},
        {"GLA GQA", "{\"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8, \"num_kv_heads\": 2}", 1, "num_kv_heads"},
        {"GLA read as Mamba", "{\"model_type\": \"gla\", \"hidden_size\": 64}", 0, "\"model_type\" is \"gla\""},
        {"Mamba use_bias default", "{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8}", 0,
         "\"use_bias\" is true (the default)"},
        {"missing hidden_size", "{\"model_type\": \"gla\", \"num_hidden_layers\": 1}", 1, "no \"hidden_size\""},
        {"fractional size", "{\"hidden_size\": 64.5, \"num_hidden_layers\": 1, \"vocab_size\": 8}", 1, "must be an integer"},
        {"bool as string", "{\"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8, \"tie_word_embeddings\": \"yes\"}", 1,
         "true or false"},
        {"invalid JSON", "{\"hidden_size\": 64,, }", 1, "not valid JSON"},
        {"trailing garbage", "{\"hidden_size\": 64} x", 1, "not valid JSON"},
        {"duplicate key", "{\"hidden_size\": 64, \"hidden_size\": 65}", 1, "twice"},
        {"Mamba huge expand", "{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8,"
                              " \"use_bias\": false, \"expand\": 1e100}", 0, "\"expand\" 1e+100 times hidden_size 64"},
        {"Mamba negative expand", "{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8,"
                                  " \"use_bias\": false, \"expand\": -2}", 0, "not a usable width"},
        {"GLA huge expand_k", "{\"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8, \"expand_k\": 1e300}", 1,
         "\"expand_k\""},
        {"GLA eps beyond the double range", "{\"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8,"
                                            " \"norm_eps\": 1e706}", 1, "\"norm_eps\" must be a finite number"},
        {"Mamba eps 0 as a float", "{\"model_type\": \"mamba\", \"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8,"
                                   " \"use_bias\": false, \"layer_norm_epsilon\": 1e-60}", 0, "not in (0, 1)"},
        {"GLA huge hidden_ratio", "{\"hidden_size\": 64, \"num_hidden_layers\": 1, \"vocab_size\": 8, \"hidden_ratio\": -1e300}", 1,
         "\"hidden_ratio\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char what[128];
        err[0] = '\0';
        rc = hf_config_parse(hc, bad[i].text, "cfg.json", err, sizeof err) ||
             (bad[i].gla ? hf_gla_config_read(hc, &out, err, sizeof err) : hf_mamba_config_read(hc, &out, err, sizeof err));
        snprintf(what, sizeof what, "config refused: %s", bad[i].what);
        check(rc != 0 && contains(err, bad[i].sub) && contains(err, "cfg.json"), what, "rc %d: %s", rc, err);
    }
    free(hc);
}

/* a map that drifted from the table is an error, not a partial export */
static void test_map_drift(void) {
    CkptHeader c;
    Table t;
    HfPlanItem* plan;
    int n;
    char err[512] = "";
    gla_cfg(&c, 1);
    gla_table(&t, &c);
    snprintf(t.names[3], 64, "layers.0.gk1_weight");   /* a renamed tensor of ours */
    int rc = hf_plan(&hf_gla_spec, &c, t.p, t.n, &plan, &n, err, sizeof err);
    check(rc != 0 && contains(err, "layers.0.gk1_w"), "map: a tensor the map names but the table lacks is an error", "%s", err);
    gla_table(&t, &c);
    ckpt_config_int(&c, "I", 40);   /* rows of w_gateup no longer add up */
    rc = hf_plan(&hf_gla_spec, &c, t.p, t.n, &plan, &n, err, sizeof err);
    check(rc != 0 && contains(err, "w_gateup"), "map: row blocks that do not cover a fused tensor are an error", "%s", err);
}

/* ---- helpers for test_hf.sh ------------------------------------------------------------------- */

static int kind_of(const char* s) {
    if (!strcmp(s, "gla")) return CKPT_MODEL_GLA;
    if (!strcmp(s, "mamba")) return CKPT_MODEL_MAMBA;
    fprintf(stderr, "model must be gla or mamba, not %s\n", s);
    exit(2);
}

/* mkckpt [FIELD=VALUE]: after the master is laid out, one config field is overwritten (an integer, or a
 * double when VALUE has a '.' or an 'e'): a checkpoint whose config the trainers must refuse */
static int cmd_mkckpt(int kind, const char* path, const char* override) {
    CkptHeader c;
    Table t;
    char err[512];
    if (kind == CKPT_MODEL_GLA) {
        gla_cfg(&c, 0);
        /* head dims the chunk kernels take (K=32, V=64): the trainer checks them before --init-hf reads */
        ckpt_config_int(&c, "D", 64);
        ckpt_config_int(&c, "H", 1);
        ckpt_config_int(&c, "key_dim", 32);
        ckpt_config_int(&c, "value_dim", 64);
    } else {
        mamba_cfg(&c, 1);
    }
    table_of(&t, &c);
    if (override) {
        char name[32];
        const char* eq = strchr(override, '=');
        if (!eq || eq == override || (size_t)(eq - override) >= sizeof name) { fprintf(stderr, "FIELD=VALUE, not %s\n", override); return 2; }
        memcpy(name, override, (size_t)(eq - override));
        name[eq - override] = 0;
        if (strpbrk(eq + 1, ".eE")) ckpt_config_float(&c, name, strtod(eq + 1, NULL));
        else ckpt_config_int(&c, name, strtoll(eq + 1, NULL, 10));
    }
    float* m = fill_master(&t, 11);
    c.num_params = (int64_t)t.total;
    c.step = 42;
    CkptSection sec[1] = {{"master", m, t.total * sizeof(float)}};
    int rc = ckpt_write(path, &c, sec, 1, err, sizeof err);
    if (rc) fprintf(stderr, "error: %s\n", err);
    free(m);
    return rc;
}

static int cmd_verify(int kind, const char* ckpt, const char* dir) {
    CkptHeader h, back;
    Table t;
    char err[1024] = "";
    if (ckpt_read_header(ckpt, &h, err, sizeof err)) { check(0, "verify: read the checkpoint", "%s", err); return 1; }
    check(h.kind == kind, "verify: checkpoint kind", "");
    table_of(&t, &h);
    check((int64_t)t.total == h.num_params, "verify: the reference layout matches the checkpoint's size", "");
    float* m = (float*)malloc(t.total * sizeof(float));
    float* got = (float*)malloc(t.total * sizeof(float));
    int rc = ckpt_read_section(ckpt, &h, "master", m, t.total * sizeof(float), err, sizeof err);
    check(rc == 0, "verify: read master", "%s", err);
    rc = hf_read_config(dir, spec_of(kind), &back, err, sizeof err);
    if (rc == 0) rc = ckpt_config_compare(&back, &h, "the checkpoint", err, sizeof err);
    check(rc == 0, "verify: the trainer's config.json reads back to the checkpoint's config", "%s", err);
    rc = hf_import(dir, spec_of(kind), &h, t.p, t.n, got, t.total, err, sizeof err);
    check(rc == 0 && memcmp(got, m, t.total * sizeof(float)) == 0,
          "verify: the trainer's export imports back bit-exactly (names, shapes, row splits)", "%s", err);
    free(m);
    free(got);
    return g_failures != 0;
}

int main(int argc, char** argv) {
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "mkckpt")) return cmd_mkckpt(kind_of(argv[2]), argv[3], argc == 5 ? argv[4] : NULL);
    if (argc == 5 && !strcmp(argv[1], "verify")) return cmd_verify(kind_of(argv[2]), argv[3], argv[4]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s | mkckpt gla|mamba CKPT [FIELD=VALUE] | verify gla|mamba CKPT DIR\n", argv[0]);
        return 2;
    }
    if (check_tmpdir(g_tmp, sizeof g_tmp, "test_hf")) return 1;
    test_conversions();
    for (int kind = CKPT_MODEL_GLA; kind <= CKPT_MODEL_MAMBA; kind++)
        for (int tied = 0; tied <= 1; tied++) test_round_trip(kind, tied);
    test_layout();
    test_bad_files();
    test_configs();
    test_map_drift();
    check_rmdir(g_tmp);
    return check_summary(NULL);
}
