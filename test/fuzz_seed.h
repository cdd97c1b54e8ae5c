/*
 * fuzz_seed.h — what the libFuzzer harnesses (test/fuzz_*.c) share: seeding their corpus from
 * LLVMFuzzerInitialize (finding the first corpus directory on the command line, only while it is still
 * empty, so seeds never mix into a corpus that has already grown, and writing seed files there), and
 * the per-process scratch file through which the readers under test see an input as a file.
 */
#ifndef TEST_FUZZ_SEED_H
#define TEST_FUZZ_SEED_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the first argument that is an existing, empty directory's path, or NULL */
static const char* fuzz_empty_corpus_dir(int argc, char** argv) {
    const char* dir = NULL;
    for (int i = 1; i < argc && !dir; i++) {
        struct stat st;
        if (argv[i][0] != '-' && stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) dir = argv[i];
    }
    if (!dir) return NULL;
    DIR* d = opendir(dir);
    if (!d) return NULL;
    int empty = 1;
    struct dirent* e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty ? dir : NULL;
}

/* writes dir/name = prefix[0..np) followed by data[0..n) (best effort: seeds are a convenience) */
static void fuzz_write_seed(const char* dir, const char* name, const void* prefix, size_t np, const void* data, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE* f = fopen(p, "wb");
    if (!f) return;
    if (np) fwrite(prefix, 1, np, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* a seed that starts with the harness's mode byte (which target of the harness it feeds) */
static inline void fuzz_write_mode_seed(const char* dir, const char* name, unsigned char mode, const void* data, size_t n) {
    fuzz_write_seed(dir, name, &mode, 1, data, n);
}

/* where scratch files go: tmpfs when there is one (the checkpoint and safetensors writers fsync, which on
 * a disk costs milliseconds per input, 10x fewer executions, and tests nothing more) */
static inline const char* fuzz_scratch_base(void) {
    struct stat st;
    return stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

/* The per-process scratch file fuzz_<tag>_<pid><suffix>, removed at exit with the ".tmp" sibling that
 * the crash-safe writers create first. The first call names it; later calls return the same path. */
static char g_fuzz_scratch[96];
static inline void fuzz_scratch_cleanup_(void) {
    char tmp[104];
    snprintf(tmp, sizeof tmp, "%s.tmp", g_fuzz_scratch);
    remove(g_fuzz_scratch);
    remove(tmp);
}
static inline const char* fuzz_scratch_path(const char* tag, const char* suffix) {
    if (!g_fuzz_scratch[0]) {
        snprintf(g_fuzz_scratch, sizeof g_fuzz_scratch, "%s/fuzz_%s_%d%s", fuzz_scratch_base(), tag, (int)getpid(), suffix);
        atexit(fuzz_scratch_cleanup_);
    }
    return g_fuzz_scratch;
}
/* writes a[0..na) then b[0..nb) to the scratch file (fuzz_scratch_path must have named it); its path */
static inline const char* fuzz_scratch_write(const void* a, size_t na, const void* b, size_t nb) {
    FILE* f = fopen(g_fuzz_scratch, "wb");
    if (!f) abort();
    if ((na && fwrite(a, 1, na, f) != na) || (nb && fwrite(b, 1, nb, f) != nb)) abort();
    fclose(f);
    return g_fuzz_scratch;
}

#endif /* TEST_FUZZ_SEED_H */
