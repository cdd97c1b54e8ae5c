/*
 * args.h — command-line options from ONE table per option group: the same ArgSpec rows drive the
 * parser, the range/choice checks, `--help` and the startup config print, so help can never drift
 * from the parser (llm.c's hand-written `argv[i][1]=='p'` parser and its help text did).
 * Also owns TrainOptions: the options both trainers share, their defaults and cross-field checks.
 * Plain C (gcc -std=c11 and nvcc).
 *
 * Table row: {shortname or NULL, longname, type, dst, help, min, max, choices}
 *   ARG_INT -> int*, ARG_LONG -> long long*, ARG_FLOAT -> float*, ARG_STR -> const char** (points
 *   into argv or at the default literal), ARG_FLAG -> int* (set to 1; `--flag=0/1` also accepted),
 *   ARG_CHOICE -> int* index into choices "a|b|c".
 *   min/max: inclusive range for numbers; min == max == 0 means unbounded.
 * Accepted forms: `--name value`, `--name=value`, `-s value`, `-s=value`.
 */
#ifndef COMMON_ARGS_H
#define COMMON_ARGS_H

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

typedef enum { ARG_INT, ARG_LONG, ARG_FLOAT, ARG_STR, ARG_FLAG, ARG_CHOICE } ArgType;

typedef struct {
    const char* shortname;   /* "-b" or NULL */
    const char* longname;    /* "--batch" */
    ArgType type;
    void* dst;
    const char* help;
    double min, max;         /* inclusive; both 0 = unbounded */
    const char* choices;     /* ARG_CHOICE only: "cosine|wsd|constant" */
} ArgSpec;

enum { ARGS_OK = 0, ARGS_ERROR = 1, ARGS_HELP = 2 };

/* ---- small helpers ---------------------------------------------------------------------------- */

static inline const char* args_type_name(ArgType t) {
    switch (t) {
    case ARG_INT: return "INT";
    case ARG_LONG: return "INT";
    case ARG_FLOAT: return "FLOAT";
    case ARG_STR: return "STR";
    case ARG_FLAG: return "";
    case ARG_CHOICE: return "CHOICE";
    }
    return "?";
}

/* index of `word` in "a|b|c", or -1 */
static inline int args_choice_index(const char* choices, const char* word) {
    int idx = 0;
    size_t n = strlen(word);
    const char* p = choices;
    while (p && *p) {
        const char* bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0) return idx;
        idx++;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* writes choice number idx of "a|b|c" into out ("?" when out of range) */
static inline void args_choice_name(const char* choices, int idx, char* out, size_t cap) {
    const char* p = choices;
    for (int i = 0; p && *p; i++) {
        const char* bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (i == idx) {
            if (len >= cap) len = cap - 1;
            memcpy(out, p, len);
            out[len] = '\0';
            return;
        }
        p = bar ? bar + 1 : NULL;
    }
    snprintf(out, cap, "?");
}

/* Levenshtein distance (names are short: O(n*m) with two rows of 64) */
static inline int args_edit_distance(const char* a, const char* b) {
    int prev[64], cur[64];
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 63 || m > 63) return 99;
    for (int j = 0; j <= m; j++) prev[j] = j;
    for (int i = 1; i <= n; i++) {
        cur[0] = i;
        for (int j = 1; j <= m; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (size_t)(m + 1));
    }
    return prev[m];
}

/* the current value of a row, as text (for help defaults and the config print) */
static inline void args_value_str(const ArgSpec* s, char* out, size_t cap) {
    switch (s->type) {
    case ARG_INT: snprintf(out, cap, "%d", *(const int*)s->dst); break;
    case ARG_LONG: snprintf(out, cap, "%lld", *(const long long*)s->dst); break;
    case ARG_FLOAT: snprintf(out, cap, "%g", (double)*(const float*)s->dst); break;
    case ARG_STR: {
        const char* v = *(const char* const*)s->dst;
        snprintf(out, cap, "%s", v ? v : "(none)");
        break;
    }
    case ARG_FLAG: snprintf(out, cap, "%s", *(const int*)s->dst ? "on" : "off"); break;
    case ARG_CHOICE: args_choice_name(s->choices, *(const int*)s->dst, out, cap); break;
    }
}

/* ---- parsing ---------------------------------------------------------------------------------- */

/* stores `val` into row s; on a bad value writes a one-line message to err and returns ARGS_ERROR */
static inline int args_set_value(const ArgSpec* s, const char* name, const char* val, char* err, size_t errlen) {
    int ranged = !(s->min == 0.0 && s->max == 0.0);
    char* end = NULL;
    errno = 0;
    switch (s->type) {
    case ARG_INT:
    case ARG_LONG: {
        long long v = strtoll(val, &end, 10);
        if (end == val || *end != '\0' || errno == ERANGE) {
            snprintf(err, errlen, "option %s expects an integer, got '%s'", name, val);
            return ARGS_ERROR;
        }
        if (ranged && ((double)v < s->min || (double)v > s->max)) {
            snprintf(err, errlen, "option %s = %lld is out of range [%.15g, %.15g]", name, v, s->min, s->max);
            return ARGS_ERROR;
        }
        if (s->type == ARG_INT) {
            if (v < -2147483647LL - 1 || v > 2147483647LL) {
                snprintf(err, errlen, "option %s = %lld does not fit in an int", name, v);
                return ARGS_ERROR;
            }
            *(int*)s->dst = (int)v;
        } else {
            *(long long*)s->dst = v;
        }
        return ARGS_OK;
    }
    case ARG_FLOAT: {
        double v = strtod(val, &end);
        if (end == val || *end != '\0' || !isfinite(v)) {
            snprintf(err, errlen, "option %s expects a number, got '%s'", name, val);
            return ARGS_ERROR;
        }
        if (fabs(v) > FLT_MAX) {   /* would become inf in the float destination */
            snprintf(err, errlen, "option %s = %g does not fit in a float", name, v);
            return ARGS_ERROR;
        }
        if (ranged && (v < s->min || v > s->max)) {
            snprintf(err, errlen, "option %s = %g is out of range [%.15g, %.15g]", name, v, s->min, s->max);
            return ARGS_ERROR;
        }
        *(float*)s->dst = (float)v;
        return ARGS_OK;
    }
    case ARG_STR: *(const char**)s->dst = val; return ARGS_OK;
    case ARG_FLAG:
        if (strcmp(val, "1") == 0) { *(int*)s->dst = 1; return ARGS_OK; }
        if (strcmp(val, "0") == 0) { *(int*)s->dst = 0; return ARGS_OK; }
        snprintf(err, errlen, "option %s is a flag: give no value, or =0 / =1 (got '%s')", name, val);
        return ARGS_ERROR;
    case ARG_CHOICE: {
        int idx = args_choice_index(s->choices, val);
        if (idx < 0) {
            snprintf(err, errlen, "option %s got '%s'; choices: %s", name, val, s->choices);
            return ARGS_ERROR;
        }
        *(int*)s->dst = idx;
        return ARGS_OK;
    }
    }
    snprintf(err, errlen, "option %s has an unknown type", name);
    return ARGS_ERROR;
}

/* the row named `name` (short or long) across all tables, or NULL */
static inline const ArgSpec* args_find(const ArgSpec* const* tables, const int* counts, int ntables,
                                       const char* name, size_t namelen) {
    for (int t = 0; t < ntables; t++)
        for (int i = 0; i < counts[t]; i++) {
            const ArgSpec* s = &tables[t][i];
            if (s->longname && strlen(s->longname) == namelen && strncmp(s->longname, name, namelen) == 0) return s;
            if (s->shortname && strlen(s->shortname) == namelen && strncmp(s->shortname, name, namelen) == 0) return s;
        }
    return NULL;
}

/* Parses argv[1..argc) against several tables (e.g. common + model). Returns ARGS_OK, ARGS_HELP for
 * -h/--help, or ARGS_ERROR with a one-line message in err. */
static inline int args_parse_multi(const ArgSpec* const* tables, const int* counts, int ntables, int argc,
                                   char** argv, char* err, size_t errlen) {
    if (errlen) err[0] = '\0';
    /* a duplicated name would silently shadow a row: a programming error, reported as one */
    for (int t = 0; t < ntables; t++)
        for (int i = 0; i < counts[t]; i++) {
            const ArgSpec* s = &tables[t][i];
            if (!s->longname || !s->dst) { snprintf(err, errlen, "internal: option row %d of table %d lacks a name or dst", i, t); return ARGS_ERROR; }
            if (args_find(tables, counts, ntables, s->longname, strlen(s->longname)) != s ||
                (s->shortname && args_find(tables, counts, ntables, s->shortname, strlen(s->shortname)) != s)) {
                snprintf(err, errlen, "internal: option %s is defined twice", s->longname);
                return ARGS_ERROR;
            }
        }
    for (int a = 1; a < argc; a++) {
        const char* arg = argv[a];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return ARGS_HELP;
        if (arg[0] != '-' || arg[1] == '\0') {
            snprintf(err, errlen, "unexpected argument '%s' (options start with - or --; see --help)", arg);
            return ARGS_ERROR;
        }
        const char* eq = strchr(arg, '=');
        size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        const ArgSpec* s = args_find(tables, counts, ntables, arg, namelen);
        if (!s) {
            /* suggest the closest long name: typos are the common case */
            char given[64];
            size_t gl = namelen < sizeof given - 1 ? namelen : sizeof given - 1;
            memcpy(given, arg, gl);
            given[gl] = '\0';
            const char* best = NULL;
            int bestd = 1 << 30;
            for (int t = 0; t < ntables; t++)
                for (int i = 0; i < counts[t]; i++) {
                    int d = args_edit_distance(given, tables[t][i].longname);
                    if (d < bestd) { bestd = d; best = tables[t][i].longname; }
                }
            int limit = (int)gl / 3 > 2 ? (int)gl / 3 : 2;
            if (best && bestd <= limit)
                snprintf(err, errlen, "unknown option '%s' (did you mean %s?)", given, best);
            else
                snprintf(err, errlen, "unknown option '%s' (see --help)", given);
            return ARGS_ERROR;
        }
        const char* val;
        if (eq) {
            val = eq + 1;
        } else if (s->type == ARG_FLAG) {
            *(int*)s->dst = 1;
            continue;
        } else {
            if (a + 1 >= argc) {
                snprintf(err, errlen, "option %s expects a value (%s)", s->longname,
                         s->type == ARG_CHOICE ? s->choices : args_type_name(s->type));
                return ARGS_ERROR;
            }
            val = argv[++a];
        }
        if (args_set_value(s, s->longname, val, err, errlen) != ARGS_OK) return ARGS_ERROR;
    }
    return ARGS_OK;
}

static inline int args_parse(const ArgSpec* specs, int n, int argc, char** argv, char* err, size_t errlen) {
    const ArgSpec* tables[1] = {specs};
    int counts[1] = {n};
    return args_parse_multi(tables, counts, 1, argc, argv, err, errlen);
}

/* ---- help and config print -------------------------------------------------------------------- */

/* Prints usage, then every row of every table: short and long name, type, help and the default (the
 * value currently in dst, so call this before parsing). Table 0 is titled "common options", table 1
 * "model options", later ones "more options". */
static inline void args_print_help(FILE* f, const char* prog, const char* summary, const ArgSpec* const* tables,
                                   const int* counts, int ntables) {
    fprintf(f, "usage: %s [options]\n", prog);
    if (summary && *summary) fprintf(f, "%s\n", summary);
    for (int t = 0; t < ntables; t++) {
        fprintf(f, "\n%s:\n", t == 0 ? "common options" : (t == 1 ? "model options" : "more options"));
        for (int i = 0; i < counts[t]; i++) {
            const ArgSpec* s = &tables[t][i];
            char names[96], def[256];
            const char* tn = s->type == ARG_CHOICE ? s->choices : args_type_name(s->type);
            snprintf(names, sizeof names, "%s%s%s %s", s->shortname ? s->shortname : "   ",
                     s->shortname ? ", " : " ", s->longname, tn);
            args_value_str(s, def, sizeof def);
            fprintf(f, "  %-30s %s (default: %s", names, s->help ? s->help : "", def);
            if (!(s->min == 0.0 && s->max == 0.0) && s->type != ARG_CHOICE && s->type != ARG_STR && s->type != ARG_FLAG)
                fprintf(f, "; range %.15g..%.15g", s->min, s->max);
            fprintf(f, ")\n");
        }
    }
    fprintf(f, "\n  -h, --help                     this text\n");
}

/* Prints every option's current value as a `| option | value |` table (the run's configuration). */
static inline void args_print_values(FILE* f, const ArgSpec* const* tables, const int* counts, int ntables) {
    char v[256];
    fprintf(f, "+--------------------------+--------------------------------------------------+\n");
    for (int t = 0; t < ntables; t++)
        for (int i = 0; i < counts[t]; i++) {
            args_value_str(&tables[t][i], v, sizeof v);
            fprintf(f, "| %-24s | %-48s |\n", tables[t][i].longname, v);
        }
    fprintf(f, "+--------------------------+--------------------------------------------------+\n");
}

/* ---- the options both trainers share ---------------------------------------------------------- */

enum { NAN_SKIP = 0, NAN_STOP = 1 };
#define NAN_POLICY_CHOICES "skip|stop"
enum { TASK_LM = 0, TASK_MQAR = 1, TASK_SYNTHETIC = 2 };
#define TASK_CHOICES "lm|mqar|synthetic"

typedef struct {
    /* data and output */
    const char* train_pattern;   /* shard glob */
    const char* val_pattern;
    const char* tokenizer_path;
    const char* out_dir;         /* NULL until train_options_check fills "log_<model>" */
    /* batch */
    int batch;                   /* B: sequences per micro-step per GPU */
    int seq;                     /* T */
    long long total_batch;       /* tokens per optimizer step; 0 = B*T*world */
    /* optimizer and schedule */
    float lr, lr_min_frac;
    int warmup;
    int schedule;                /* LrSchedule */
    float decay_frac;
    float wd, beta1, beta2, adam_eps, clip;
    long long steps;             /* optimizer steps; -1 = one epoch of the training shards */
    /* evaluation, sampling, checkpoints, logging */
    int val_every, val_steps, sample_every, gen_tokens;
    int ckpt_every, keep;
    const char* load_path;       /* model checkpoint to start from */
    int resume;                  /* 1: continue from the newest checkpoint in out_dir */
    const char* export_hf;       /* write --load's weights as a Hugging Face directory, then exit (no GPU) */
    const char* init_hf;         /* start from the weights of a Hugging Face directory */
    const char* sample_path;     /* generate text from this checkpoint, then exit */
    const char* prompt;          /* text the generation continues */
    float temperature;
    int top_k;
    int log_every;
    /* reproducibility, performance, diagnostics */
    long long seed;
    int deterministic;
    int bench, bench_steps, warmup_bench;
    int recompute;               /* 0 none, 1 cheap activations, 2 everything recomputable */
    int profile;
    int nan_policy;              /* NAN_SKIP / NAN_STOP */
    float spike_z;               /* spike detector threshold (0 = off) */
    int task;                    /* TASK_* */
    int mqar_pairs;              /* --task mqar: key-value pairs per row (0: T/16) */
    int mqar_vocab;              /* --task mqar: token ids (keys below half, values above) */
    /* data parallel (common/dist.h, common/nccl.cuh) */
    int gpus;                    /* --gpus N: launch N ranks on this machine (0/1: no launcher) */
    float dist_timeout;          /* seconds a rendezvous or collective may wait before it is an error */
    /* filled by train_options_check */
    int grad_accum;              /* micro-steps per optimizer step */
    char out_dir_buf[256];
} TrainOptions;

#define TRAIN_OPTIONS_MAX 64

/* Fills o with the defaults and out[] (capacity TRAIN_OPTIONS_MAX) with the common table; returns the
 * number of rows. The table points into o, so o must outlive it. */
static inline int train_options_table(TrainOptions* o, ArgSpec* out) {
    memset(o, 0, sizeof *o);
    o->train_pattern = "data/tinyshakespeare/train_*.bin";
    o->val_pattern = "data/tinyshakespeare/val_*.bin";
    o->tokenizer_path = "data/tinyshakespeare/tokenizer.bin";
    o->out_dir = NULL;
    o->batch = 8; o->seq = 256; o->total_batch = 0;
    o->lr = 3e-4f; o->lr_min_frac = 0.1f; o->warmup = 100; o->schedule = LR_COSINE; o->decay_frac = 0.2f;
    o->wd = 0.1f; o->beta1 = 0.9f; o->beta2 = 0.95f; o->adam_eps = 1e-8f; o->clip = 1.0f;
    o->steps = 1000;
    o->val_every = 100; o->val_steps = 20; o->sample_every = 200; o->gen_tokens = 64;
    o->ckpt_every = 500; o->keep = 3; o->load_path = NULL; o->resume = 0; o->log_every = 1;
    o->seed = 1337; o->deterministic = 1;
    o->bench = 0; o->bench_steps = 20; o->warmup_bench = 5;
    o->recompute = 0; o->profile = 0; o->nan_policy = NAN_SKIP; o->spike_z = 6.0f; o->temperature = 1.0f; o->top_k = 40; o->task = TASK_LM;
    o->gpus = 0; o->dist_timeout = 300.0f; o->mqar_pairs = 0; o->mqar_vocab = 8192;
    o->grad_accum = 1;
    const ArgSpec rows[] = {
        {"-i", "--train", ARG_STR, &o->train_pattern, "training token shards (glob)", 0, 0, NULL},
        {"-j", "--val", ARG_STR, &o->val_pattern, "validation token shards (glob)", 0, 0, NULL},
        {NULL, "--tokenizer", ARG_STR, &o->tokenizer_path, "tokenizer for samples: ours, or a Hugging Face tokenizer.json", 0, 0, NULL},
        {"-o", "--out", ARG_STR, &o->out_dir, "output dir for log.jsonl and checkpoints (none: log_<model>)", 0, 0, NULL},
        {"-b", "--batch", ARG_INT, &o->batch, "micro-batch B: sequences per GPU per micro-step", 1, 65536, NULL},
        {"-t", "--seq", ARG_INT, &o->seq, "sequence length T", 1, 1048576, NULL},
        {"-d", "--total-batch", ARG_LONG, &o->total_batch,
         "tokens per optimizer step, a multiple of B*T*world (0: B*T*world; larger: grad accumulation)", 0, 1e15, NULL},
        {"-l", "--lr", ARG_FLOAT, &o->lr, "peak learning rate", 0, 10, NULL},
        {NULL, "--lr-min-frac", ARG_FLOAT, &o->lr_min_frac, "final lr as a fraction of the peak", 0, 1, NULL},
        {NULL, "--warmup", ARG_INT, &o->warmup, "linear warm-up steps", 0, 1e9, NULL},
        {NULL, "--schedule", ARG_CHOICE, &o->schedule, "lr schedule after warm-up", 0, 0, LR_SCHEDULE_CHOICES},
        {NULL, "--decay-frac", ARG_FLOAT, &o->decay_frac, "WSD: fraction of the steps spent decaying", 0, 1, NULL},
        {"-c", "--wd", ARG_FLOAT, &o->wd, "AdamW weight decay (matrices and embeddings only)", 0, 10, NULL},
        {NULL, "--beta1", ARG_FLOAT, &o->beta1, "AdamW beta1", 0, 0.999999, NULL},
        {NULL, "--beta2", ARG_FLOAT, &o->beta2, "AdamW beta2", 0, 0.999999, NULL},
        {NULL, "--adam-eps", ARG_FLOAT, &o->adam_eps, "AdamW epsilon", 1e-30, 1, NULL},
        {NULL, "--clip", ARG_FLOAT, &o->clip, "clip the global grad norm to this (0: off)", 0, 1e9, NULL},
        {"-x", "--steps", ARG_LONG, &o->steps, "optimizer steps to run (-1: one epoch of the training shards)", -1, 1e15, NULL},
        {"-v", "--val-every", ARG_INT, &o->val_every, "validate every N steps (0: never)", 0, 1e9, NULL},
        {NULL, "--val-steps", ARG_INT, &o->val_steps, "micro-batches per validation", 0, 1e9, NULL},
        {"-s", "--sample-every", ARG_INT, &o->sample_every, "print a sample every N steps (0: never)", 0, 1e9, NULL},
        {"-g", "--gen-tokens", ARG_INT, &o->gen_tokens, "tokens per sample", 0, 1e6, NULL},
        {"-n", "--ckpt-every", ARG_INT, &o->ckpt_every, "write a checkpoint every N steps (0: only at the end)", 0, 1e9, NULL},
        {NULL, "--keep", ARG_INT, &o->keep, "checkpoints kept in the output dir (0: all)", 0, 1e6, NULL},
        {"-e", "--load", ARG_STR, &o->load_path, "initialise the model from this checkpoint", 0, 0, NULL},
        {"-y", "--resume", ARG_INT, &o->resume, "1: resume from the newest checkpoint in --out", 0, 1, NULL},
        {NULL, "--export-hf", ARG_STR, &o->export_hf,
         "write the --load checkpoint as DIR/model.safetensors + config.json (Hugging Face), then exit; no GPU", 0, 0, NULL},
        {NULL, "--init-hf", ARG_STR, &o->init_hf,
         "initialise the model from a Hugging Face DIR (config.json must match the model flags)", 0, 0, NULL},
        {NULL, "--log-every", ARG_INT, &o->log_every, "print a progress line every N steps", 1, 1e9, NULL},
        {NULL, "--seed", ARG_LONG, &o->seed, "seed for init, data order and sampling", 0, 9.2e18, NULL},
        {NULL, "--deterministic", ARG_INT, &o->deterministic, "1: bitwise reproducible kernels only", 0, 1, NULL},
        {NULL, "--bench", ARG_FLAG, &o->bench, "benchmark: time steps on synthetic data, no logging", 0, 0, NULL},
        {NULL, "--bench-steps", ARG_INT, &o->bench_steps, "timed steps in --bench", 1, 1e6, NULL},
        {NULL, "--warmup-bench", ARG_INT, &o->warmup_bench, "untimed warm-up steps in --bench", 0, 1e6, NULL},
        {NULL, "--recompute", ARG_INT, &o->recompute, "activation recomputation: 0 none, 1 cheap, 2 max", 0, 2, NULL},
        {NULL, "--profile", ARG_FLAG, &o->profile, "with --bench: per-kernel time shares of one more step and the device's idle gaps in it (CUPTI)", 0, 0, NULL},
        {NULL, "--sample", ARG_STR, &o->sample_path, "generate -g tokens from this checkpoint after --prompt, then exit", 0, 0, NULL},
        {NULL, "--prompt", ARG_STR, &o->prompt, "text that --sample continues (default: an end-of-text token)", 0, 0, NULL},
        {NULL, "--temperature", ARG_FLOAT, &o->temperature, "sampling temperature (0: greedy)", 0, 100, NULL},
        {NULL, "--top-k", ARG_INT, &o->top_k, "sample among the k most likely tokens (0: all)", 0, 1 << 24, NULL},
        {NULL, "--spike-z", ARG_FLOAT, &o->spike_z, "log a spike event when loss or grad norm is this many std above the last 50 steps (0: off)", 0, 1e9, NULL},
        {NULL, "--nan-policy", ARG_CHOICE, &o->nan_policy, "non-finite loss/grad: skip the step or stop", 0, 0, NAN_POLICY_CHOICES},
        {NULL, "--task", ARG_CHOICE, &o->task, "training data: token shards, MQAR recall, synthetic", 0, 0, TASK_CHOICES},
        {NULL, "--mqar-pairs", ARG_INT, &o->mqar_pairs, "--task mqar: key-value pairs per row (0: T/16)", 0, 1 << 20, NULL},
        {NULL, "--mqar-vocab", ARG_INT, &o->mqar_vocab, "--task mqar: vocabulary (keys in the lower half, values in the upper)", 2, 1 << 24, NULL},
        {NULL, "--gpus", ARG_INT, &o->gpus, "start N data-parallel ranks on this machine (one per GPU; 0: one process)", 0, 4096, NULL},
        {NULL, "--dist-timeout", ARG_FLOAT, &o->dist_timeout, "seconds a rank waits for the others before it is an error", 1, 1e6, NULL},
    };
    int n = (int)(sizeof rows / sizeof rows[0]);
    memcpy(out, rows, sizeof rows);
    return n;
}

/* Cross-field checks after parsing; fills out_dir ("log_<model>" when not given) and grad_accum.
 * world = number of GPUs. Returns 0, or 1 with a one-line message in err. */
static inline int train_options_check(TrainOptions* o, const char* model, int world, char* err, size_t errlen) {
    if (!o->out_dir || !*o->out_dir) {
        snprintf(o->out_dir_buf, sizeof o->out_dir_buf, "log_%s", model);
        o->out_dir = o->out_dir_buf;
    }
    /* the kernels index a micro-batch's tokens with an int, and grid-stride loops step past the last row */
    if ((long long)o->batch * o->seq > 2147483647LL - (1LL << 24)) {
        snprintf(err, errlen, "-b %d x -t %d = %lld tokens per micro-batch is more than 2^31 - 2^24; lower --batch or --seq",
                 o->batch, o->seq, (long long)o->batch * o->seq);
        return 1;
    }
    long long per_micro = (long long)o->batch * o->seq * (world > 0 ? world : 1);
    if (o->total_batch == 0) o->total_batch = per_micro;
    if (o->total_batch % per_micro != 0) {
        snprintf(err, errlen,
                 "--total-batch %lld is not a multiple of B*T*world = %d*%d*%d = %lld (try %lld)",
                 o->total_batch, o->batch, o->seq, world, per_micro,
                 (o->total_batch / per_micro + 1) * per_micro);
        return 1;
    }
    if (o->total_batch / per_micro > 2147483647LL) {   /* grad_accum is an int */
        snprintf(err, errlen, "--total-batch %lld is %lld micro-steps of B*T*world = %lld (max 2147483647)",
                 o->total_batch, o->total_batch / per_micro, per_micro);
        return 1;
    }
    o->grad_accum = (int)(o->total_batch / per_micro);
    if (o->resume && o->load_path) {
        snprintf(err, errlen, "--resume 1 and --load are exclusive (resume restores the model and optimizer)");
        return 1;
    }
    if (o->init_hf && (o->load_path || o->resume || o->export_hf)) {
        snprintf(err, errlen, "--init-hf excludes --load, --resume 1 and --export-hf (one source of initial weights)");
        return 1;
    }
    if (o->export_hf && !o->load_path) {
        snprintf(err, errlen, "--export-hf needs the checkpoint to convert: --export-hf DIR -e CKPT");
        return 1;
    }
    return 0;
}

#endif /* COMMON_ARGS_H */
