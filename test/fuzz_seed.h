/*
 * fuzz_seed.h — what the libFuzzer harnesses (test/fuzz_*.c) share for seeding their corpus from
 * LLVMFuzzerInitialize: finding the first corpus directory on the command line, only while it is still
 * empty (so seeds never mix into a corpus that has already grown), and writing one seed file there.
 */
#ifndef TEST_FUZZ_SEED_H
#define TEST_FUZZ_SEED_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

#endif /* TEST_FUZZ_SEED_H */
