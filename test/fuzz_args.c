/*
 * fuzz_args.c — owns the libFuzzer harness of the command-line parser (common/args.h): args_parse_multi
 * over the shared TrainOptions table plus a small model table, then train_options_check, the help text
 * and the config print. The command line is where every run starts, so any argv must end in ARGS_OK,
 * ARGS_HELP or a one-line error, never a crash or a value outside its row's range.
 * Input: bytes 0..1 pick the world size (1..8) and whether a third table with a duplicated name is
 * added (the parser must report it as an internal error); the rest splits at NUL bytes into argv[1..].
 * A piece whose first byte is 0x01..0x03 is a short form that names a row directly (byte 1 picks the
 * row) as --long, -s or --long=<rest>, so every row is reached without the fuzzer guessing its name;
 * any other piece is used as it is.
 * After ARGS_OK every row must hold a value its own checks allow (range, finite float, valid choice,
 * flag 0/1), and a successful train_options_check must give grad_accum * B*T*world == total batch.
 * Seeds: LLVMFuzzerInitialize writes a few command lines (and regression inputs) into the first corpus
 * directory when it is empty.
 * Build and run (clang; `make fuzz` does the same):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon test/fuzz_args.c -o /tmp/fz -lm
 *   /tmp/fz -max_total_time=60 CORPUS_DIR
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fuzz_seed.h"
#include "args.h"

#define MAX_ARGS 64

/* a model table in the style of the trainers' (own destinations, every row type, unbounded rows too) */
static struct {
    const char* preset;
    int D, L, tied, fused, act;
    long long budget;
    float expand, scale;
} m;

static int model_table(ArgSpec* out) {
    memset(&m, 0, sizeof m);
    m.preset = "tiny"; m.tied = -1; m.scale = 1.0f;
    const ArgSpec rows[] = {
        {NULL, "--model", ARG_STR, &m.preset, "preset", 0, 0, NULL},
        {"-D", "--dim", ARG_INT, &m.D, "width (0: preset)", 0, 65536, NULL},
        {"-L", "--layers", ARG_INT, &m.L, "layers, unbounded", 0, 0, NULL},
        {NULL, "--tied", ARG_INT, &m.tied, "-1 preset, 0, 1", -1, 1, NULL},
        {NULL, "--budget", ARG_LONG, &m.budget, "unbounded long", 0, 0, NULL},
        {NULL, "--expand", ARG_FLOAT, &m.expand, "ranged float", 0, 64, NULL},
        {NULL, "--scale", ARG_FLOAT, &m.scale, "unbounded float", 0, 0, NULL},
        {NULL, "--fused", ARG_FLAG, &m.fused, "a flag", 0, 0, NULL},
        {NULL, "--act", ARG_CHOICE, &m.act, "a choice", 0, 0, "silu|gelu|relu"},
    };
    memcpy(out, rows, sizeof rows);
    return (int)(sizeof rows / sizeof rows[0]);
}

static int count_choices(const char* c) {
    int n = 1;
    for (; *c; c++) n += *c == '|';
    return n;
}

/* every row holds a value that its own row accepts */
static void check_row(const ArgSpec* s) {
    int ranged = !(s->min == 0.0 && s->max == 0.0);
    switch (s->type) {
    case ARG_INT:
    case ARG_LONG: {
        double v = s->type == ARG_INT ? (double)*(const int*)s->dst : (double)*(const long long*)s->dst;
        if (ranged && (v < s->min || v > s->max)) abort();
        break;
    }
    case ARG_FLOAT: {
        double v = (double)*(const float*)s->dst;
        if (!isfinite(v)) abort();
        /* float rounding may move a value at the very edge of the range by one float ulp */
        double slack = 1e-6 * (fabs(s->min) + fabs(s->max));
        if (ranged && (v < s->min - slack || v > s->max + slack)) abort();
        break;
    }
    case ARG_STR: break;
    case ARG_FLAG: {
        int v = *(const int*)s->dst;
        if (v != 0 && v != 1) abort();
        break;
    }
    case ARG_CHOICE: {
        int v = *(const int*)s->dst;
        if (v < 0 || v >= count_choices(s->choices)) abort();
        break;
    }
    }
}

static FILE* g_null;

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    if (!g_null) g_null = fopen("/dev/null", "w");
    if (!g_null) abort();
    int world = 1 + data[0] % 8, dup = data[1] & 1;
    data += 2; size -= 2;

    TrainOptions* o = (TrainOptions*)malloc(sizeof(TrainOptions));
    ArgSpec common[TRAIN_OPTIONS_MAX], model[16];
    int nc = train_options_table(o, common), nm = model_table(model);
    int dupv = 0;
    ArgSpec third[1] = {{"-q", "--dim", ARG_INT, &dupv, "a name the model table has", 0, 0, NULL}};
    const ArgSpec* tables[3] = {common, model, third};
    int counts[3] = {nc, nm, 1};
    int ntables = dup ? 3 : 2;
    const ArgSpec* all[TRAIN_OPTIONS_MAX + 16];
    int nall = 0;
    for (int i = 0; i < nc; i++) all[nall++] = &common[i];
    for (int i = 0; i < nm; i++) all[nall++] = &model[i];

    /* argv: pieces between NUL bytes, short forms expanded */
    char* argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = strdup("fuzz_args");
    size_t i = 0;
    while (i < size && argc < MAX_ARGS) {
        const uint8_t* p = data + i;
        const uint8_t* nul = (const uint8_t*)memchr(p, 0, size - i);
        size_t len = nul ? (size_t)(nul - p) : size - i;
        i += len + 1;
        char* a;
        if (len >= 2 && p[0] >= 1 && p[0] <= 3) {
            const ArgSpec* s = all[p[1] % nall];
            const char* name = (p[0] == 2 && s->shortname) ? s->shortname : s->longname;
            size_t n = strlen(name), rest = len - 2;
            a = (char*)malloc(n + rest + 2);
            memcpy(a, name, n);
            if (p[0] == 3) {
                a[n] = '=';
                memcpy(a + n + 1, p + 2, rest);
                a[n + 1 + rest] = '\0';
            } else {
                a[n] = '\0';
            }
        } else {
            a = (char*)malloc(len + 1);
            memcpy(a, p, len);
            a[len] = '\0';
        }
        argv[argc++] = a;
    }
    argv[argc] = NULL;

    char err[512];
    err[0] = 'x';
    int rc = args_parse_multi(tables, counts, ntables, argc, argv, err, sizeof err);
    if (rc != ARGS_OK && rc != ARGS_HELP && rc != ARGS_ERROR) abort();
    if (dup && rc != ARGS_ERROR) abort();   /* a duplicated name is refused before any argument */
    if (rc == ARGS_ERROR && (!memchr(err, 0, sizeof err) || !err[0])) abort();
    if (rc == ARGS_HELP) args_print_help(g_null, argv[0], "fuzz", tables, counts, 2);
    if (rc == ARGS_OK) {
        for (int k = 0; k < nall; k++) check_row(all[k]);
        args_print_values(g_null, tables, counts, 2);
        if (train_options_check(o, "fuzz", world, err, sizeof err) == 0) {
            long long per_micro = (long long)o->batch * o->seq * world;
            if (!o->out_dir || o->grad_accum < 1 || (long long)o->grad_accum * per_micro != o->total_batch) abort();
        } else if (!err[0]) {
            abort();
        }
    }
    /* a message cut short by a small buffer must still be terminated */
    char small[16];
    rc = args_parse_multi(tables, counts, 2, argc, argv, small, sizeof small);
    if (rc == ARGS_ERROR && !memchr(small, 0, sizeof small)) abort();

    for (int k = 0; k < argc; k++) free(argv[k]);
    free(o);
    return 0;
}

static void write_seed(const char* dir, const char* name, const char* data, size_t n) {
    fuzz_write_seed(dir, name, NULL, 0, data, n);
}

/* Seeds the first corpus directory on the command line when it is empty: realistic command lines. */
int LLVMFuzzerInitialize(int* argc, char*** argv) {
    const char* dir = fuzz_empty_corpus_dir(*argc, *argv);
    if (!dir) return 0;
    /* sizeof - 1: the literal's own terminating NUL is not part of the input */
    static const char s1[] = "\x00\x00-b\0" "4\0-t\0" "128\0--lr=1e-3\0--schedule\0wsd\0--bench\0"
                             "--model\0small\0-D=256";
    static const char s2[] = "\x03\x00--total-batch\0" "4096\0-b\0" "8\0-t\0" "64\0--nan-policy=stop\0"
                             "--scale\0" "2.5\0--act=gelu";
    static const char s3[] = "\x01\x00--resume\0" "1\0-e\0x.bin\0--fused=1\0--budget\0-5\0--layers=7\0--seed\0" "9";
    static const char s4[] = "\x00\x01--bach\0" "4";
    static const char s5[] = "\x00\x00\x01\x05\0\x02\x10\0\x03\x20" "0.5\0--help";
    /* regressions: a float that overflows to inf (and an int that does not fit); more micro-steps
     * than an int holds */
    static const char s6[] = "\x00\x00--scale\0" "1e39\0--expand=-1e300\0--layers=3000000000";
    static const char s7[] = "\x00\x00-d\0" "100000000000000\0-b\0" "1\0-t\0" "1";
    write_seed(dir, "seed_train", s1, sizeof s1 - 1);
    write_seed(dir, "seed_accum", s2, sizeof s2 - 1);
    write_seed(dir, "seed_resume", s3, sizeof s3 - 1);
    write_seed(dir, "seed_typo", s4, sizeof s4 - 1);
    write_seed(dir, "seed_short", s5, sizeof s5 - 1);
    write_seed(dir, "seed_float_overflow", s6, sizeof s6 - 1);
    write_seed(dir, "seed_accum_overflow", s7, sizeof s7 - 1);
    return 0;
}
