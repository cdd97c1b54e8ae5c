/*
 * logger.h — the run's record: one JSON object per line in <out_dir>/log.jsonl (flushed after every
 * record, so a crash loses nothing and `tail -f` works), and the human progress line on stdout.
 * Records:  {"step":12,"loss":3.2104,"lr":0.0003,"grad_norm":1.02,"ms":120.5,"tokens_per_s":...,
 *            "mfu":0.41,"mem_gib":31.2,"host_mib":812}   (fields that are NaN are left out)
 *           {"step":100,"val_loss":3.01}
 *           {"step":57,"event":"skip_nan","detail":"loss is nan"}
 * Resume: logger_open(..., resume_step) keeps only records with step < resume_step (rewritten atomically,
 * common/atomic_file.h), so steps replayed after a resume never appear twice. A fresh run (resume_step < 0)
 * starts an empty log. Only rank 0 should open a logger. Plain C (POSIX).
 */
#ifndef COMMON_LOGGER_H
#define COMMON_LOGGER_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "checkpoint.h"   /* ckpt_errf: error messages that may be cut at errlen */

typedef struct {
    FILE* f;
    char path[4096];
} Logger;

/* one optimizer step; set a field to NAN to leave it out of the record */
typedef struct {
    long long step;
    double loss, val_loss, lr, grad_norm, ms, tokens_per_s, mfu, mem_gib;
    double host_mib;   /* resident host memory of the process (logger_host_mib) */
    double eta_s;      /* estimated seconds to the last step (progress line only) */
} LogStep;

static inline LogStep logstep_empty(long long step) {
    LogStep s;
    s.step = step;
    s.loss = s.val_loss = s.lr = s.grad_norm = s.ms = s.tokens_per_s = s.mfu = s.mem_gib = s.host_mib = s.eta_s = NAN;
    return s;
}

/* mkdir -p; returns 0 or -1 (errno set) */
static inline int mkdir_p(const char* path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}

/* step of a record line ("step":N anywhere in it), or -1 when it has none */
static inline long long logger_line_step_(const char* line) {
    const char* p = strstr(line, "\"step\":");
    if (!p) return -1;
    return strtoll(p + 7, NULL, 10);
}

/* Rewrites path keeping only lines whose step < resume_step (and lines without a step). */
static inline int logger_truncate_(const char* path, long long resume_step, char* err, size_t errlen) {
    FILE* in = fopen(path, "r");
    if (!in) return 0;   /* no log yet: nothing to drop */
    char tmp[ATOMIC_PATH_MAX];
    FILE* out = atomic_open(path, tmp, sizeof tmp, err, errlen);
    if (!out) {
        fclose(in);
        return 1;
    }
    size_t cap = 4096, len = 0;
    char* line = (char*)malloc(cap);
    int c, ok = 1;
    while (line) {
        c = fgetc(in);
        if (c == EOF && len == 0) break;
        if (c == '\n' || c == EOF) {
            line[len] = '\0';
            /* a torn last line (crash mid-write) has no newline and is dropped */
            if (c == '\n' && logger_line_step_(line) < resume_step) ok &= fprintf(out, "%s\n", line) >= 0;
            len = 0;
            if (c == EOF) break;
            continue;
        }
        if (len + 2 > cap) {
            char* grown = (char*)realloc(line, cap * 2);
            if (!grown) { free(line); line = NULL; break; }
            line = grown; cap *= 2;
        }
        line[len++] = (char)c;
    }
    fclose(in);
    if (!line) {
        atomic_abort(out, tmp);
        ckpt_errf(err, errlen, "out of host memory reading %s", path);
        return 1;
    }
    free(line);
    return atomic_commit(out, ok, tmp, path, err, errlen);
}

/* Creates out_dir and opens out_dir/log.jsonl. resume_step < 0: fresh log; else drops records with
 * step >= resume_step and appends. Returns 0, or 1 with err set. */
static inline int logger_open(Logger* lg, const char* out_dir, long long resume_step, char* err, size_t errlen) {
    lg->f = NULL;
    if (mkdir_p(out_dir) != 0) {
        ckpt_errf(err, errlen, "cannot create output dir %s: %s", out_dir, strerror(errno));
        return 1;
    }
    if (snprintf(lg->path, sizeof lg->path, "%s/log.jsonl", out_dir) >= (int)sizeof lg->path) {
        ckpt_errf(err, errlen, "output dir name too long");
        return 1;
    }
    if (resume_step >= 0 && logger_truncate_(lg->path, resume_step, err, errlen) != 0) return 1;
    lg->f = fopen(lg->path, resume_step >= 0 ? "a" : "w");
    if (!lg->f) {
        ckpt_errf(err, errlen, "cannot open %s: %s", lg->path, strerror(errno));
        return 1;
    }
    return 0;
}

static inline void logger_close(Logger* lg) {
    if (lg->f) fclose(lg->f);
    lg->f = NULL;
}

/* resident set of this process in MiB (Linux /proc/self/statm), NAN where unknown: logged every step
 * so a long run shows whether host memory grows */
static inline double logger_host_mib(void) {
    FILE* f = fopen("/proc/self/statm", "r");
    if (!f) return NAN;
    long long pages_total = 0, pages_resident = 0;
    int n = fscanf(f, "%lld %lld", &pages_total, &pages_resident);
    fclose(f);
    return n == 2 ? (double)pages_resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0 : NAN;
}

static inline void logger_field_(FILE* f, const char* key, double v) {
    if (!isnan(v)) fprintf(f, ",\"%s\":%.9g", key, isfinite(v) ? v : (v > 0 ? 1e308 : -1e308));
}

static inline void logger_step(Logger* lg, const LogStep* s) {
    if (!lg || !lg->f) return;
    fprintf(lg->f, "{\"step\":%lld", s->step);
    logger_field_(lg->f, "loss", s->loss);
    logger_field_(lg->f, "val_loss", s->val_loss);
    logger_field_(lg->f, "lr", s->lr);
    logger_field_(lg->f, "grad_norm", s->grad_norm);
    logger_field_(lg->f, "ms", s->ms);
    logger_field_(lg->f, "tokens_per_s", s->tokens_per_s);
    logger_field_(lg->f, "mfu", s->mfu);
    logger_field_(lg->f, "mem_gib", s->mem_gib);
    logger_field_(lg->f, "host_mib", s->host_mib);
    fprintf(lg->f, "}\n");
    fflush(lg->f);
}

static inline void logger_val(Logger* lg, long long step, double val_loss) {
    LogStep s = logstep_empty(step);
    s.val_loss = val_loss;
    logger_step(lg, &s);
}

/* a free-form event: {"step":N,"event":"name","detail":"printf text"} (detail JSON-escaped) */
static inline void logger_event(Logger* lg, long long step, const char* event, const char* fmt, ...) {
    if (!lg || !lg->f) return;
    char detail[1024];
    detail[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    fprintf(lg->f, "{\"step\":%lld,\"event\":\"%s\",\"detail\":\"", step, event);
    for (const char* p = detail; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') fprintf(lg->f, "\\%c", c);
        else if (c < 0x20) fprintf(lg->f, "\\u%04x", c);
        else fputc(c, lg->f);
    }
    fprintf(lg->f, "\"}\n");
    fflush(lg->f);
}

/* The human line (LogStep.step is 0-based, shown 1-based):
 * step 12/1000 | loss 3.2104 | norm 1.0200 | lr 3.00e-04 | 120.5 ms | 41.0% MFU | ... | ETA 1h05m */
static inline void progress_print(FILE* f, const LogStep* s, long long total_steps) {
    fprintf(f, "step %5lld/%lld", s->step + 1, total_steps);
    if (!isnan(s->loss)) fprintf(f, " | loss %.4f", s->loss);
    if (!isnan(s->val_loss)) fprintf(f, " | val %.4f", s->val_loss);
    if (!isnan(s->grad_norm)) fprintf(f, " | norm %.4f", s->grad_norm);
    if (!isnan(s->lr)) fprintf(f, " | lr %.2e", s->lr);
    if (!isnan(s->ms)) fprintf(f, " | %.1f ms", s->ms);
    if (!isnan(s->mfu)) fprintf(f, " | %.1f%% MFU", 100.0 * s->mfu);
    if (!isnan(s->tokens_per_s)) fprintf(f, " | %.0f tok/s", s->tokens_per_s);
    if (!isnan(s->mem_gib)) fprintf(f, " | %.1f GiB", s->mem_gib);
    if (isfinite(s->eta_s) && s->eta_s >= 0) {
        long long e = (long long)(s->eta_s + 0.5);
        if (e >= 3600) fprintf(f, " | ETA %lldh%02lldm", e / 3600, e / 60 % 60);
        else fprintf(f, " | ETA %lldm%02llds", e / 60, e % 60);
    }
    fprintf(f, "\n");
    fflush(f);
}

/* Spike detector: the z-score of a value (loss, grad norm) against the mean and standard deviation of the
 * previous `window` finite values, so a sudden jump is logged as an event instead of passing unnoticed.
 * Non-finite values are not added (the NaN guard reports those). Returns 0 until 8 values are in. */
#define SPIKE_MAX_WINDOW 256
typedef struct {
    double v[SPIKE_MAX_WINDOW];
    int window, n, head;
} SpikeDetector;

static inline void spike_init(SpikeDetector* d, int window) {
    memset(d, 0, sizeof *d);
    d->window = window < 2 ? 2 : (window > SPIKE_MAX_WINDOW ? SPIKE_MAX_WINDOW : window);
}
static inline double spike_update(SpikeDetector* d, double x) {
    if (!isfinite(x)) return 0.0;
    double z = 0.0;
    if (d->n >= 8) {
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < d->n; i++) mean += d->v[i];
        mean /= d->n;
        for (int i = 0; i < d->n; i++) var += (d->v[i] - mean) * (d->v[i] - mean);
        double sd = sqrt(var / (d->n - 1));
        z = (x - mean) / (sd > 1e-12 * fabs(mean) + 1e-12 ? sd : 1e-12 * fabs(mean) + 1e-12);
    }
    d->v[d->head] = x;
    d->head = (d->head + 1) % d->window;
    if (d->n < d->window) d->n++;
    return z;
}

#endif /* COMMON_LOGGER_H */
