/*
 * check.h — the one PASS/FAIL line format of the CPU tests (what test/run_tests.sh counts):
 * check(ok, name, why...) prints `PASS name` or `FAIL name: why` and counts failures in g_failures;
 * a test's main returns g_failures ? 1 : 0.
 */
#ifndef TEST_CHECK_H
#define TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int g_failures = 0;

static void check(int ok, const char* name, const char* why_fmt, ...) {
    if (ok) {
        printf("PASS %s\n", name);
        fflush(stdout);
        return;
    }
    g_failures++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, why_fmt);
    vprintf(why_fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

#endif /* TEST_CHECK_H */
