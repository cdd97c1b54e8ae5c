/*
 * check.h — the one PASS/FAIL line format of the CPU tests (what test/run_tests.sh counts), and the
 * scratch directory most of them write into:
 *   check(ok, name, why...)     prints `PASS name`, or `FAIL name: why` (`FAIL name` when why is empty)
 *   check_line(ok, text...)     prints `PASS text` / `FAIL text`, the whole line the caller's: for a check
 *                               whose PASS line carries numbers too (an error next to its tolerance)
 *   check_summary(prog)         prints `prog: N passed, M failed` (no prefix when prog is NULL) and
 *                               returns the exit status, g_failures ? 1 : 0
 *   check_tmpdir(buf, n, tag)   creates $TMPDIR/tag.XXXXXX (TMPDIR unset: /tmp) into buf; on failure
 *                               prints `FAIL setup: ...` and returns -1
 *   check_rmdir(dir)            removes that directory and everything in it
 *   check_path(dir, name)       "dir/name" in one of 8 rotating buffers (several paths can be arguments
 *                               of one call)
 *   check_full_disk(b, fn, ctx) runs fn(ctx) as if the disk filled up after b bytes of any file (a file-size
 *                               limit, no privileges needed; SIGXFSZ ignored, so such writes fail with
 *                               EFBIG); returns fn's result, or -99 when the limit cannot be set. fn must
 *                               not print (stdout may be a file).
 * Every check counts in g_passes or g_failures; a test's main returns g_failures ? 1 : 0. All helpers are
 * static inline, so that a test that does not use one gets no warning. Needs -D_DEFAULT_SOURCE (the
 * Makefile's CFLAGS_BASE) for mkdtemp.
 */
#ifndef TEST_CHECK_H
#define TEST_CHECK_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#if defined(__GNUC__)
#define CHECK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CHECK_PRINTF(a, b)
#endif

static int g_failures = 0; /* FAIL lines so far */
static int g_passes = 0;   /* PASS lines so far */

/* no format attribute: some callers pass an empty why "" */
static inline void check(int ok, const char* name, const char* why_fmt, ...) {
    if (ok) {
        g_passes++;
        printf("PASS %s\n", name);
        fflush(stdout);
        return;
    }
    g_failures++;
    printf("FAIL %s", name);
    va_list ap, ap2;
    va_start(ap, why_fmt);
    va_copy(ap2, ap);
    if (vsnprintf(NULL, 0, why_fmt, ap2) > 0) {
        printf(": ");
        vprintf(why_fmt, ap);
    }
    va_end(ap2);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline void check_line(int ok, const char* fmt, ...) CHECK_PRINTF(2, 3);
static inline void check_line(int ok, const char* fmt, ...) {
    if (ok) g_passes++;
    else g_failures++;
    fputs(ok ? "PASS " : "FAIL ", stdout);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline int check_summary(const char* prog) {
    printf("%s%s%d passed, %d failed\n", prog ? prog : "", prog ? ": " : "", g_passes, g_failures);
    fflush(stdout);
    return g_failures ? 1 : 0;
}

static inline int check_tmpdir(char* buf, size_t n, const char* tag) {
    const char* base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    int len = snprintf(buf, n, "%s/%s.XXXXXX", base, tag);
    if (len < 0 || (size_t)len >= n) {
        buf[0] = 0;
        check(0, "setup", "temporary directory name too long under %s", base);
        return -1;
    }
    if (!mkdtemp(buf)) {
        int e = errno;
        check(0, "setup", "cannot create a temporary directory %s: %s", buf, strerror(e));
        buf[0] = 0;
        return -1;
    }
    return 0;
}

static inline void check_rmdir(const char* dir) {
    if (!dir || !*dir) return;
    char cmd[1100];
    int len = snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (len < 0 || (size_t)len >= sizeof cmd || strchr(dir, '\'') || system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

static inline const char* check_path(const char* dir, const char* name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static inline int check_full_disk(long bytes, int (*fn)(void*), void* ctx) {
    struct rlimit old, lim;
    if (getrlimit(RLIMIT_FSIZE, &old) != 0) return -99;
    lim = old;
    lim.rlim_cur = (rlim_t)bytes;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    int rc = -99;
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        rc = fn(ctx);
        setrlimit(RLIMIT_FSIZE, &old);
    }
    signal(SIGXFSZ, old_handler);
    return rc;
}

#endif /* TEST_CHECK_H */
