/*
 * test_infra.c — CPU tests of the training infrastructure headers: args.h (parser, every error class,
 * help lists every flag), schedule.h (warm-up, peak, end == min, WSD phases), checkpoint.h (round trip,
 * truncation, corrupt payload and header, wrong magic/version, config mismatch message, find_latest
 * ignoring leftovers, prune), logger.h (resume truncation), sampler.h (greedy, top-k, distribution),
 * mfu.h (peak table). Prints `PASS name` / `FAIL name: why`; exits non-zero on any failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "logger.h"
#include "mfu.h"
#include "rng.h"
#include "sampler.h"
#include "schedule.h"
#include "check.h"

static char g_dir[256];   /* scratch directory of this run */

/* ---- args ------------------------------------------------------------------------------------- */

/* parses a space-separated command line with the common table; returns the parser's code */
static int parse_line(TrainOptions* o, const char* line, char* err, size_t errlen) {
    ArgSpec specs[TRAIN_OPTIONS_MAX];
    int n = train_options_table(o, specs);
    char buf[1024];
    char* argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    argv[argc++] = (char*)"prog";
    for (char* tok = strtok(buf, " "); tok && argc < 64; tok = strtok(NULL, " ")) argv[argc++] = tok;
    return args_parse(specs, n, argc, argv, err, errlen);
}

static void expect_error(const char* name, const char* line, const char* needle) {
    TrainOptions o;
    char err[512];
    int rc = parse_line(&o, line, err, sizeof err);
    check(rc == ARGS_ERROR && strstr(err, needle) != NULL, name, "'%s' gave rc %d, message '%s' (want '%s')", line,
          rc, err, needle);
}

static void test_args(void) {
    TrainOptions o;
    char err[512];
    int rc = parse_line(&o, "-b 4 --seq=128 --lr 1e-3 --schedule wsd --bench --steps -1 -o runs/x --task=mqar "
                            "--profile=0 --total-batch 1024",
                        err, sizeof err);
    check(rc == ARGS_OK && o.batch == 4 && o.seq == 128 && fabsf(o.lr - 1e-3f) < 1e-9f && o.schedule == LR_WSD &&
              o.bench == 1 && o.steps == -1 && strcmp(o.out_dir, "runs/x") == 0 && o.task == TASK_MQAR &&
              o.profile == 0 && o.total_batch == 1024,
          "args_parse_values", "rc %d err '%s' B %d T %d lr %g sched %d", rc, err, o.batch, o.seq, (double)o.lr,
          o.schedule);
    rc = parse_line(&o, "", err, sizeof err);
    check(rc == ARGS_OK && o.batch == 8 && o.seq == 256 && o.steps == 1000 && o.schedule == LR_COSINE &&
              o.nan_policy == NAN_SKIP && o.deterministic == 1 && o.seed == 1337,
          "args_defaults", "rc %d", rc);

    expect_error("args_unknown_suggests", "--lrr 3", "did you mean --lr?");
    expect_error("args_unknown_far", "--frobnicate 3", "unknown option '--frobnicate'");
    expect_error("args_missing_value", "-b 4 --batch", "expects a value");
    expect_error("args_non_numeric_int", "--batch abc", "expects an integer, got 'abc'");
    expect_error("args_trailing_garbage", "--batch 4x", "expects an integer, got '4x'");
    expect_error("args_non_numeric_float", "--lr=fast", "expects a number, got 'fast'");
    expect_error("args_out_of_range", "--batch 0", "out of range [1, 65536]");
    expect_error("args_out_of_range_float", "--lr-min-frac 1.5", "out of range [0, 1]");
    expect_error("args_bad_choice", "--schedule foo", "choices: cosine|wsd|constant|linear");
    expect_error("args_flag_value", "--bench=2", "is a flag");
    expect_error("args_positional", "train.bin", "unexpected argument 'train.bin'");

    rc = parse_line(&o, "-b 2 --help", err, sizeof err);
    check(rc == ARGS_HELP, "args_help_code", "rc %d", rc);

    /* help lists every long name of both tables, with defaults read at print time */
    ArgSpec specs[TRAIN_OPTIONS_MAX];
    int n = train_options_table(&o, specs);
    int depth = 12;
    float drop = 0.5f;
    ArgSpec model[] = {
        {NULL, "--depth", ARG_INT, &depth, "layers", 1, 128, NULL},
        {NULL, "--dropout", ARG_FLOAT, &drop, "dropout", 0, 1, NULL},
    };
    const ArgSpec* tables[2] = {specs, model};
    int counts[2] = {n, 2};
    FILE* f = tmpfile();
    args_print_help(f, "train_gla", "trains GLA", tables, counts, 2);
    long len = ftell(f);
    char* text = (char*)calloc((size_t)len + 1, 1);
    rewind(f);
    size_t got = fread(text, 1, (size_t)len, f);
    text[got] = '\0';
    fclose(f);
    const char* missing = NULL;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < counts[t]; i++) {
            char key[80];
            snprintf(key, sizeof key, "%s ", tables[t][i].longname);
            if (!strstr(text, key)) missing = tables[t][i].longname;
            if (tables[t][i].shortname) {
                snprintf(key, sizeof key, "%s, %s", tables[t][i].shortname, tables[t][i].longname);
                if (!strstr(text, key)) missing = tables[t][i].shortname;
            }
        }
    check(missing == NULL, "args_help_lists_every_flag", "help lacks %s", missing ? missing : "");
    check(strstr(text, "default: 8") && strstr(text, "default: cosine") && strstr(text, "model options") &&
              strstr(text, "default: 12"),
          "args_help_defaults", "help text:\n%s", text);
    free(text);

    /* two tables parse together; a name in both is reported */
    char* argv2[] = {(char*)"p", (char*)"--depth", (char*)"24", (char*)"-b", (char*)"2"};
    rc = args_parse_multi(tables, counts, 2, 5, argv2, err, sizeof err);
    check(rc == ARGS_OK && depth == 24 && o.batch == 2, "args_multi_table", "rc %d err %s", rc, err);
    ArgSpec dup[] = {{NULL, "--batch", ARG_INT, &depth, "again", 0, 0, NULL}};
    const ArgSpec* tables3[2] = {specs, dup};
    int counts3[2] = {n, 1};
    rc = args_parse_multi(tables3, counts3, 2, 1, argv2, err, sizeof err);
    check(rc == ARGS_ERROR && strstr(err, "defined twice"), "args_duplicate_name", "rc %d err %s", rc, err);

    /* cross-field checks */
    rc = parse_line(&o, "-b 4 -t 64 -d 1000", err, sizeof err);
    int rc2 = train_options_check(&o, "gla", 1, err, sizeof err);
    check(rc == ARGS_OK && rc2 == 1 && strstr(err, "not a multiple of B*T*world") && strstr(err, "try 1024"),
          "args_total_batch_multiple", "rc %d/%d err %s", rc, rc2, err);
    parse_line(&o, "-b 4 -t 64 -d 2048", err, sizeof err);
    rc2 = train_options_check(&o, "mamba", 2, err, sizeof err);
    check(rc2 == 0 && o.grad_accum == 4 && strcmp(o.out_dir, "log_mamba") == 0, "args_grad_accum_and_out_dir",
          "rc %d accum %d out %s", rc2, o.grad_accum, o.out_dir);
}

/* ---- schedule --------------------------------------------------------------------------------- */

static int close_to(double a, double b) { return fabs(a - b) <= 1e-6 * (fabs(b) + 1e-12) + 1e-9; }

static void test_schedule(void) {
    const float peak = 1e-3f, mf = 0.1f;
    float a = lr_at(0, 1000, 100, peak, mf, LR_COSINE, 0.2f);
    float b = lr_at(99, 1000, 100, peak, mf, LR_COSINE, 0.2f);
    float c = lr_at(100, 1000, 100, peak, mf, LR_COSINE, 0.2f);
    float d = lr_at(999, 1000, 100, peak, mf, LR_COSINE, 0.2f);
    float e = lr_at(5000, 1000, 100, peak, mf, LR_COSINE, 0.2f);
    float mid = lr_at(100 + 899 / 2, 1000, 100, peak, mf, LR_COSINE, 0.2f);
    check(close_to(a, peak / 100) && close_to(b, peak) && close_to(c, peak), "schedule_warmup",
          "lr(0) %g lr(99) %g lr(100) %g", (double)a, (double)b, (double)c);
    check(close_to(d, peak * mf) && close_to(e, peak * mf), "schedule_cosine_end_is_min", "lr(999) %g lr(5000) %g",
          (double)d, (double)e);
    check(fabs(mid - 0.55 * peak) < 0.01 * peak, "schedule_cosine_midpoint", "lr(mid) %g", (double)mid);
    int mono = 1;
    for (long s = 101; s < 1000; s++)
        if (lr_at(s, 1000, 100, peak, mf, LR_COSINE, 0.2f) > lr_at(s - 1, 1000, 100, peak, mf, LR_COSINE, 0.2f)) mono = 0;
    check(mono, "schedule_cosine_monotone", "lr increases after warm-up");

    int stable = 1;
    for (long s = 100; s <= 800; s++)
        if (lr_at(s, 1000, 100, peak, mf, LR_WSD, 0.2f) != peak) stable = 0;
    float w900 = lr_at(900, 1000, 100, peak, mf, LR_WSD, 0.2f), w999 = lr_at(999, 1000, 100, peak, mf, LR_WSD, 0.2f);
    float w801 = lr_at(801, 1000, 100, peak, mf, LR_WSD, 0.2f);
    check(stable && w801 < peak && w900 < w801 && w900 > peak * mf && close_to(w999, peak * mf), "schedule_wsd_phases",
          "stable %d lr(801) %g lr(900) %g lr(999) %g", stable, (double)w801, (double)w900, (double)w999);
    check(close_to(lr_at(10, 1000, 100, peak, mf, LR_WSD, 0.2f), peak * 11 / 100), "schedule_wsd_warmup", "");
    check(lr_at(500, 1000, 100, peak, mf, LR_CONSTANT, 0.2f) == peak &&
              lr_at(999, 1000, 100, peak, mf, LR_CONSTANT, 0.2f) == peak,
          "schedule_constant", "");
    check(close_to(lr_at(999, 1000, 0, peak, mf, LR_LINEAR, 0.2f), peak * mf) &&
              close_to(lr_at(0, 1000, 0, peak, mf, LR_LINEAR, 0.2f), peak),
          "schedule_linear_no_warmup", "lr(0) %g", (double)lr_at(0, 1000, 0, peak, mf, LR_LINEAR, 0.2f));
    check(close_to(lr_at(0, 1, 0, peak, mf, LR_COSINE, 0.2f), peak * mf) ||
              close_to(lr_at(0, 1, 0, peak, mf, LR_COSINE, 0.2f), peak),
          "schedule_single_step_finite", "");
}

/* ---- checkpoint ------------------------------------------------------------------------------- */

static int file_bytes(const char* path, unsigned char** out, long* n) {
    FILE* f = fopen(path, "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    rewind(f);
    *out = (unsigned char*)malloc((size_t)*n + 1);
    size_t got = fread(*out, 1, (size_t)*n, f);
    fclose(f);
    return got != (size_t)*n;
}
static void put_bytes(const char* path, const unsigned char* p, long n) {
    FILE* f = fopen(path, "wb");
    fwrite(p, 1, (size_t)n, f);
    fclose(f);
}
static int exists(const char* path) { return access(path, F_OK) == 0; }

static void make_header(CkptHeader* h, long long step) {
    ckpt_header_init(h, CKPT_MODEL_GLA);
    h->num_params = 1000;
    h->step = step;
    h->rng[0] = 0xDEADBEEFCAFEF00DULL;
    h->rng[3] = 7;
    h->loader[0] = 3; h->loader[1] = 123456789012LL;
    h->extra[5] = -42;
    ckpt_config_int(h, "D", 768);
    ckpt_config_int(h, "L", 12);
    ckpt_config_float(h, "eps", 1e-6);
}

static int write_ckpt(const char* dir, long long step, float* params, float* m, char* err) {
    CkptHeader h;
    make_header(&h, step);
    unsigned char blob[37];
    for (int i = 0; i < 37; i++) blob[i] = (unsigned char)(i * 7 + step);
    CkptSection sec[4] = {{"params", params, 1000 * sizeof(float)},
                          {"adam_m", m, 1000 * sizeof(float)},
                          {"loader_blob", blob, sizeof blob},
                          {"empty", NULL, 0}};
    char path[512];
    ckpt_path(dir, step, path, sizeof path);
    return ckpt_write(path, &h, sec, 4, err, 512);
}

/* A disk that fills up during a checkpoint write (check_full_disk; the header fits, the first section
 * does not): the error says so, the previous checkpoint at `path` survives bit for bit, no .tmp is left. */
typedef struct { const char* dir; float *params, *m; char err[512]; } FullDiskCkpt;
static int full_disk_ckpt_(void* ctx) {
    FullDiskCkpt* c = (FullDiskCkpt*)ctx;
    return write_ckpt(c->dir, 10, c->params, c->m, c->err);
}
static void test_checkpoint_disk_full(const char* dir, const char* path, const char* tmp, float* params, float* m) {
    long n_before = 0, n_after = 0;
    unsigned char *before = NULL, *after = NULL;
    int bad_before = file_bytes(path, &before, &n_before);
    FullDiskCkpt c = {dir, params, m, ""};
    params[0] = -1.0f;   /* would differ from what is on disk */
    int rc = check_full_disk(4096, full_disk_ckpt_, &c);
    params[0] = 99.0f;
    int bad_after = file_bytes(path, &after, &n_after);
    check(rc == 1 && strstr(c.err, "disk full?") && !exists(tmp), "ckpt_disk_full_reported_no_tmp", "rc %d err %s", rc, c.err);
    check(!bad_before && !bad_after && n_before == n_after && memcmp(before, after, (size_t)n_before) == 0,
          "ckpt_disk_full_keeps_previous", "%ld -> %ld bytes", n_before, n_after);
    free(before);
    free(after);
}

static void test_checkpoint(void) {
    char err[512], path[512], bad[600];
    char dir[300];
    snprintf(dir, sizeof dir, "%s/ckpt", g_dir);
    mkdir_p(dir);
    float* params = (float*)malloc(1000 * sizeof(float));
    float* m = (float*)malloc(1000 * sizeof(float));
    float* back = (float*)malloc(1000 * sizeof(float));
    for (int i = 0; i < 1000; i++) { params[i] = (float)i * 0.5f - 3.0f; m[i] = -(float)i; }

    int rc = write_ckpt(dir, 10, params, m, err);
    ckpt_path(dir, 10, path, sizeof path);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    check(rc == 0 && exists(path) && !exists(tmp), "ckpt_write_atomic", "rc %d err %s", rc, err);

    CkptHeader h, want;
    rc = ckpt_read_header(path, &h, err, sizeof err);
    check(rc == 0 && h.kind == CKPT_MODEL_GLA && h.step == 10 && h.num_params == 1000 && h.version == CKPT_VERSION &&
              h.rng[0] == 0xDEADBEEFCAFEF00DULL && h.rng[3] == 7 && h.loader[1] == 123456789012LL &&
              h.extra[5] == -42 && h.nsec == 4 && h.ncfg == 3 && ckpt_config_get(&h, "eps")->is_float &&
              ckpt_config_get(&h, "eps")->f == 1e-6 && ckpt_config_get(&h, "L")->i == 12,
          "ckpt_header_round_trip", "rc %d err %s", rc, err);
    memset(back, 0, 1000 * sizeof(float));
    int ok = ckpt_read_section(path, &h, "params", back, 1000 * sizeof(float), err, sizeof err) == 0 &&
             memcmp(back, params, 1000 * sizeof(float)) == 0;
    ok = ok && ckpt_read_section(path, &h, "adam_m", back, 1000 * sizeof(float), err, sizeof err) == 0 &&
         memcmp(back, m, 1000 * sizeof(float)) == 0;
    unsigned char blob[37];
    ok = ok && ckpt_read_section(path, &h, "loader_blob", blob, 37, err, sizeof err) == 0 && blob[36] == (unsigned char)(36 * 7 + 10);
    ok = ok && ckpt_read_section(path, &h, "empty", NULL, 0, err, sizeof err) == 0;
    check(ok, "ckpt_sections_round_trip", "%s", err);
    check(ckpt_section_bytes(&h, "loader_blob") == 37 && ckpt_section_bytes(&h, "nope") == -1, "ckpt_section_bytes", "");
    rc = ckpt_read_section(path, &h, "params", back, 999 * sizeof(float), err, sizeof err);
    check(rc == 1 && strstr(err, "has 4000 bytes, this run expects 3996"), "ckpt_section_size_mismatch", "%s", err);
    rc = ckpt_read_section(path, &h, "adam_v", back, 4, err, sizeof err);
    check(rc == 1 && strstr(err, "no section 'adam_v'"), "ckpt_section_missing", "%s", err);

    /* config comparison names the field */
    make_header(&want, 0);
    ckpt_config_int(&want, "D", 1024);
    rc = ckpt_config_compare(&h, &want, "--model", err, sizeof err);
    check(rc == 1 && strcmp(err, "checkpoint is D=768 but --model gives D=1024") == 0, "ckpt_config_mismatch_message",
          "'%s'", err);
    make_header(&want, 0);
    check(ckpt_config_compare(&h, &want, "--model", err, sizeof err) == 0, "ckpt_config_match", "%s", err);
    want.kind = CKPT_MODEL_MAMBA;
    rc = ckpt_config_compare(&h, &want, "train_mamba", err, sizeof err);
    check(rc == 1 && strstr(err, "checkpoint is a GLA model"), "ckpt_kind_mismatch", "%s", err);
    make_header(&want, 0);
    ckpt_config_int(&want, "Vc", 50304);
    rc = ckpt_config_compare(&h, &want, "--model", err, sizeof err);
    check(rc == 1 && strstr(err, "no config field Vc"), "ckpt_config_missing_field", "%s", err);

    unsigned char* bytes = NULL;
    long n = 0;
    if (file_bytes(path, &bytes, &n) != 0 || n < 4096) {
        check(0, "ckpt_file_readable", "%s", path);
        return;
    }
    snprintf(bad, sizeof bad, "%s/bad.bin", g_dir);

    put_bytes(bad, bytes, n - 100);
    rc = ckpt_read_header(bad, &h, err, sizeof err);
    check(rc == 1 && strstr(err, "truncated"), "ckpt_truncated_rejected", "rc %d %s", rc, err);
    put_bytes(bad, bytes, 1000);
    rc = ckpt_read_header(bad, &h, err, sizeof err);
    check(rc == 1 && strstr(err, "truncated"), "ckpt_truncated_header_rejected", "rc %d %s", rc, err);

    CkptHeader good;
    ckpt_read_header(path, &good, err, sizeof err);
    unsigned char* copy = (unsigned char*)malloc((size_t)n);
    memcpy(copy, bytes, (size_t)n);
    copy[good.sec[0].offset + 123] ^= 0x10;   /* inside "params" */
    put_bytes(bad, copy, n);
    rc = ckpt_read_header(bad, &h, err, sizeof err);
    int rc_sec = rc == 0 ? ckpt_read_section(bad, &h, "params", back, 4000, err, sizeof err) : -1;
    check(rc == 0 && rc_sec == 1 && strstr(err, "checksum"), "ckpt_flipped_payload_rejected", "rc %d/%d %s", rc,
          rc_sec, err);

    memcpy(copy, bytes, (size_t)n);
    copy[32 * 8] ^= 0x01;   /* config value D */
    put_bytes(bad, copy, n);
    rc = ckpt_read_header(bad, &h, err, sizeof err);
    check(rc == 1 && strstr(err, "corrupt header"), "ckpt_flipped_header_rejected", "rc %d %s", rc, err);

    memcpy(copy, bytes, (size_t)n);
    copy[0] ^= 0xFF;
    put_bytes(bad, copy, n);
    rc = ckpt_read_header(bad, &h, err, sizeof err);
    check(rc == 1 && strstr(err, "not a checkpoint"), "ckpt_wrong_magic_rejected", "%s", err);

    memcpy(copy, bytes, (size_t)n);
    int64_t v2 = 2;
    memcpy(copy + 8, &v2, 8);
    put_bytes(bad, copy, n);
    rc = ckpt_read_header(bad, &h, err, sizeof err);
    check(rc == 1 && strstr(err, "format version 2"), "ckpt_wrong_version_rejected", "%s", err);

    memcpy(copy, bytes, (size_t)n);
    put_bytes(bad, copy, n);
    FILE* f = fopen(bad, "ab");
    fputc(0, f);
    fclose(f);
    rc = ckpt_read_header(bad, &h, err, sizeof err);
    check(rc == 1 && strstr(err, "longer than written"), "ckpt_appended_rejected", "%s", err);
    free(copy);
    free(bytes);
    remove(bad);

    /* overwrite in place is atomic too, and the new content wins */
    params[0] = 99.0f;
    rc = write_ckpt(dir, 10, params, m, err);
    ckpt_read_header(path, &h, err, sizeof err);
    ckpt_read_section(path, &h, "params", back, 4000, err, sizeof err);
    check(rc == 0 && back[0] == 99.0f && !exists(tmp), "ckpt_overwrite", "rc %d back %g", rc, (double)back[0]);

    char nodir[400];
    snprintf(nodir, sizeof nodir, "%s/missing_dir", g_dir);
    rc = write_ckpt(nodir, 1, params, m, err);
    check(rc == 1 && strstr(err, "cannot create"), "ckpt_write_error_reported", "%s", err);
    test_checkpoint_disk_full(dir, path, tmp, params, m);

    /* find_latest ignores .tmp leftovers, other files, and corrupt newer checkpoints */
    write_ckpt(dir, 20, params, m, err);
    write_ckpt(dir, 30, params, m, err);
    char other[600];
    snprintf(other, sizeof other, "%s/ckpt_00000040.bin.tmp", dir);
    put_bytes(other, (const unsigned char*)"partial", 7);
    snprintf(other, sizeof other, "%s/notes.txt", dir);
    put_bytes(other, (const unsigned char*)"mine", 4);
    snprintf(other, sizeof other, "%s/ckpt_final.bin", dir);
    put_bytes(other, (const unsigned char*)"mine", 4);
    char latest[600];
    long long step = ckpt_find_latest(dir, latest, sizeof latest);
    char expect[600];
    ckpt_path(dir, 30, expect, sizeof expect);
    check(step == 30 && strcmp(latest, expect) == 0, "ckpt_find_latest_ignores_tmp", "step %lld path %s", step, latest);
    char corrupt[600];
    ckpt_path(dir, 50, corrupt, sizeof corrupt);
    put_bytes(corrupt, (const unsigned char*)"garbage", 7);
    fprintf(stderr, "(the next warning is expected)\n");
    step = ckpt_find_latest(dir, latest, sizeof latest);
    check(step == 30, "ckpt_find_latest_skips_corrupt", "step %lld", step);
    remove(corrupt);
    check(ckpt_find_latest(nodir, latest, sizeof latest) == -1, "ckpt_find_latest_no_dir", "");

    int removed = ckpt_prune(dir, 2);
    char p10[600], p20[600], p30[600];
    ckpt_path(dir, 10, p10, sizeof p10);
    ckpt_path(dir, 20, p20, sizeof p20);
    ckpt_path(dir, 30, p30, sizeof p30);
    snprintf(other, sizeof other, "%s/ckpt_00000040.bin.tmp", dir);
    char notes[600];
    snprintf(notes, sizeof notes, "%s/notes.txt", dir);
    check(removed == 1 && !exists(p10) && exists(p20) && exists(p30) && exists(other) && exists(notes),
          "ckpt_prune_keeps_newest", "removed %d", removed);
    check(ckpt_prune(dir, 0) == 0 && exists(p20), "ckpt_prune_zero_keeps_all", "");
    check(ckpt_parse_name("ckpt_00000012.bin") == 12 && ckpt_parse_name("ckpt_12.bin.tmp") == -1 &&
              ckpt_parse_name("ckpt_.bin") == -1 && ckpt_parse_name("xckpt_1.bin") == -1,
          "ckpt_parse_name", "");

    /* the hash sees every byte position and length */
    unsigned char hb[100] = {0};
    uint64_t h0 = ckpt_hash64(hb, 100), h1;
    int distinct = 1;
    for (int i = 0; i < 100; i++) {
        hb[i] = 1;
        h1 = ckpt_hash64(hb, 100);
        if (h1 == h0) distinct = 0;
        hb[i] = 0;
    }
    check(distinct && ckpt_hash64(hb, 99) != h0, "ckpt_hash_sensitivity", "");
    free(params); free(m); free(back);
}

/* ---- logger ----------------------------------------------------------------------------------- */

static int count_lines(const char* path, const char* needle) {
    FILE* f = fopen(path, "r");
    if (!f) return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (!needle || strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static void test_logger(void) {
    char dir[400], err[512];
    snprintf(dir, sizeof dir, "%s/logs/run1", g_dir);
    Logger lg;
    int rc = logger_open(&lg, dir, -1, err, sizeof err);
    for (int s = 0; s < 10; s++) {
        LogStep st = logstep_empty(s);
        st.loss = 5.0 - 0.1 * s; st.lr = 1e-3; st.grad_norm = 1.5; st.ms = 100; st.tokens_per_s = 1e5;
        logger_step(&lg, &st);
        if (s == 5) logger_val(&lg, s, 4.2);
        if (s == 7) logger_event(&lg, s, "skip_nan", "loss is \"nan\"\n");
    }
    logger_close(&lg);
    char path[600];
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    check(rc == 0 && count_lines(path, NULL) == 12 && count_lines(path, "\"val_loss\":4.2") == 1 &&
              count_lines(path, "\"detail\":\"loss is \\\"nan\\\"\\u000a\"") == 1 &&
              count_lines(path, "\"mfu\"") == 0,
          "logger_records", "rc %d err %s lines %d", rc, err, count_lines(path, NULL));

    /* a crash mid-write leaves a torn last line */
    FILE* f = fopen(path, "a");
    fputs("{\"step\":10,\"lo", f);
    fclose(f);
    rc = logger_open(&lg, dir, 6, err, sizeof err);
    LogStep st = logstep_empty(6);
    st.loss = 4.4;
    logger_step(&lg, &st);
    logger_close(&lg);
    check(rc == 0 && count_lines(path, NULL) == 8 && count_lines(path, "\"step\":6,") == 1 &&
              count_lines(path, "\"step\":7") == 0 && count_lines(path, "\"step\":10") == 0 &&
              count_lines(path, "\"step\":5,") == 2,
          "logger_resume_truncates", "rc %d err %s lines %d", rc, err, count_lines(path, NULL));
    rc = logger_open(&lg, dir, -1, err, sizeof err);
    logger_close(&lg);
    check(rc == 0 && count_lines(path, NULL) == 0, "logger_fresh_run_starts_empty", "");
    FILE* mem = tmpfile();
    st = logstep_empty(41);
    st.loss = 3.25; st.mfu = 0.5; st.eta_s = 3725;
    progress_print(mem, &st, 100);
    rewind(mem);
    char line[256] = {0};
    char* got = fgets(line, sizeof line, mem);
    fclose(mem);
    check(got && strstr(line, "step    42/100 | loss 3.2500") && strstr(line, "50.0% MFU") && strstr(line, "ETA 1h02m"),
          "logger_progress_line",
          "'%s'", line);
}

/* ---- sampler ---------------------------------------------------------------------------------- */

static int cmp_desc(const void* a, const void* b) {
    float x = *(const float*)a, y = *(const float*)b;
    return (x < y) - (x > y);
}

static void test_spike(void) {
    SpikeDetector d;
    spike_init(&d, 50);
    int early = 0, false_alarm = 0;
    for (int i = 0; i < 100; i++) {
        double x = 3.0 - 0.001 * i + 0.01 * ((i * 7919) % 13 - 6) / 6.0;   /* slowly falling, noisy */
        double z = spike_update(&d, x);
        if (i < 8 && z != 0.0) early = 1;
        if (z > 6.0 || z < -6.0) false_alarm = 1;
    }
    check(!early, "spike_warmup", "z-score reported before 8 values");
    check(!false_alarm, "spike_no_false_alarm", "a smooth noisy series raised |z| > 6");
    double z = spike_update(&d, 4.0);
    check(z > 20.0, "spike_detects_jump", "a jump from ~2.9 to 4.0 gave z = %.2f", z);
    double zn = spike_update(&d, NAN);
    check(zn == 0.0 && d.n == 50, "spike_ignores_nonfinite", "NaN gave z = %g, window count %d", zn, d.n);
}

static void test_sampler(void) {
    Rng r = rng_seed(42);
    enum { N = 1000 };
    float logits[N], scratch[N], sorted[N];
    int greedy_ok = 1, kth_ok = 1;
    for (int trial = 0; trial < 50; trial++) {
        for (int i = 0; i < N; i++) logits[i] = (float)rng_normal(&r) * 3.0f;
        if (trial % 2) for (int i = 0; i < N; i++) logits[i] = floorf(logits[i]);   /* many ties */
        int am = sample_argmax(logits, N);
        for (int c = 0; c < 5; c++) {
            float coin = (float)rng_uniform(&r);
            if (sample_logits(logits, N, 1.0f, 1, coin, scratch) != am) greedy_ok = 0;
            if (sample_logits(logits, N, 0.0f, 0, coin, NULL) != am) greedy_ok = 0;
        }
        memcpy(sorted, logits, sizeof logits);
        qsort(sorted, N, sizeof(float), cmp_desc);
        int k = 1 + (int)rng_below(&r, N);
        memcpy(scratch, logits, sizeof logits);
        if (sampler_kth_largest_(scratch, N, k) != sorted[k - 1]) kth_ok = 0;
    }
    check(greedy_ok, "sampler_topk1_is_argmax", "");
    check(kth_ok, "sampler_kth_largest", "");

    float l4[4] = {0.0f, 1.0f, 2.0f, 3.0f}, p4[4];
    sampler_softmax(p4, l4, 4, 1.0f);
    int counts[4] = {0}, counts_k2[4] = {0};
    const int S = 200000;
    for (int s = 0; s < S; s++) {
        float coin = (float)rng_uniform(&r);
        counts[sample_logits(l4, 4, 1.0f, 0, coin, NULL)]++;
        counts_k2[sample_logits(l4, 4, 1.0f, 2, coin, NULL)]++;
    }
    double maxdev = 0.0;
    for (int i = 0; i < 4; i++) maxdev = fmax(maxdev, fabs((double)counts[i] / S - p4[i]));
    check(maxdev < 0.005, "sampler_distribution", "max deviation %g", maxdev);
    double p3 = exp(3.0) / (exp(2.0) + exp(3.0));
    check(counts_k2[0] == 0 && counts_k2[1] == 0 && fabs((double)counts_k2[3] / S - p3) < 0.005, "sampler_topk2",
          "counts %d %d %d %d", counts_k2[0], counts_k2[1], counts_k2[2], counts_k2[3]);
    int a = sample_logits(l4, 4, 0.7f, 3, 0.3f, NULL), b = sample_logits(l4, 4, 0.7f, 3, 0.3f, NULL);
    float hot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    check(a == b && sample_logits(hot, 4, 1.0f, 0, 0.0f, NULL) == 0 && sample_logits(hot, 4, 1.0f, 0, 0.9999f, NULL) == 3 &&
              sample_logits(hot, 4, 1.0f, 2, 0.9999f, NULL) == 1,
          "sampler_deterministic_and_ties", "");
    float withnan[3] = {NAN, 1.0f, NAN};
    check(sample_logits(withnan, 3, 1.0f, 0, 0.999f, NULL) == 1 && sample_argmax(withnan, 3) == 1, "sampler_nan_never_chosen", "");
}

/* ---- mfu -------------------------------------------------------------------------------------- */

static void test_mfu(void) {
    check(peak_bf16_tflops_by_name("NVIDIA H200") == 989.0 && peak_bf16_tflops_by_name("NVIDIA H100 80GB HBM3") == 989.0 &&
              peak_bf16_tflops_by_name("NVIDIA H100 PCIe") == 756.0 &&
              peak_bf16_tflops_by_name("NVIDIA A100-SXM4-80GB") == 312.0 &&
              peak_bf16_tflops_by_name("NVIDIA A10G") == 70.0 && peak_bf16_tflops_by_name("Tesla T4") == 0.0,
          "mfu_peak_table", "");
    double est = peak_bf16_tflops_from_props(9, 0, 132, 1.83);
    check(fabs(est - 989.0) < 15.0, "mfu_peak_estimate_h100", "%g", est);
    check(fabs(mfu(6e9, 1e5, 1000.0) - 0.6) < 1e-12 && mfu(1, 1, 0) < 0, "mfu_formula", "");
}

int main(void) {
    if (check_tmpdir(g_dir, sizeof g_dir, "test_infra")) return 1;
    test_args();
    test_schedule();
    test_checkpoint();
    test_logger();
    test_spike();
    test_sampler();
    test_mfu();
    check_rmdir(g_dir);
    return g_failures ? 1 : 0;
}
