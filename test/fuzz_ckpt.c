/*
 * fuzz_ckpt.c — owns the libFuzzer harness of the checkpoint reader (common/checkpoint.h). The
 * checkpoint is the one file a run trusts on restart, and a corrupt or truncated one must give an
 * error, never a crash, a leak or an out-of-bounds read. The first input byte picks the target
 * (mod 4), the rest is its input:
 *   0  raw: the bytes are the file. ckpt_read_header, then every section it lists.
 *   1  repaired: as 0, but the fields that gate everything (magic, version, counts, data start, file
 *      size, header checksum) are made consistent first, so the section-table checks and the section
 *      reads are reached; bits 2..3 of the first byte also pull section bounds into the file and fix
 *      the section checksums (otherwise one random byte would stop almost every input at the checksum).
 *   2  round trip: a header and sections built from the bytes go through ckpt_write, must read back
 *      bit for bit, and ckpt_find_latest / ckpt_prune must see the file.
 *   3  names and config: ckpt_parse_name on the bytes, ckpt_config_* and ckpt_config_compare on
 *      fields named by them.
 * After every successful ckpt_read_header: counts in range, every section inside the file, every section
 * read into a heap buffer of exactly its size (ASan flags any overrun) and compared with the file bytes
 * at its offset; a wrong size and a missing name must fail without touching the buffer.
 * Seeds: LLVMFuzzerInitialize writes valid checkpoints (made by ckpt_write) into the first corpus
 * directory when it is empty, so `make test` needs no stored corpus; also regression inputs.
 * Build and run (clang; `make fuzz` does the same):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icommon test/fuzz_ckpt.c -o /tmp/fz
 *   /tmp/fz -max_total_time=60 CORPUS_DIR
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz_seed.h"
#include "checkpoint.h"

/* ---- per-process scratch paths ---------------------------------------------------------------- */

static char g_dir[64];    /* mode 2: a directory that holds ckpt_<step>.bin files */

static void fuzz_rm_dir(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) return;
    struct dirent* e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove(p);
    }
    closedir(d);
    rmdir(dir);
}
static void fuzz_cleanup(void) { fuzz_rm_dir(g_dir); }
/* modes 0, 1 see the input through fuzz_seed.h's scratch file; mode 2 writes into g_dir (both on tmpfs
 * when there is one) */
static void fuzz_paths(void) {
    if (g_dir[0]) return;
    fuzz_scratch_path("ckpt", ".bin");
    snprintf(g_dir, sizeof g_dir, "%s/fuzz_ckpt_%d.d", fuzz_scratch_base(), (int)getpid());
    atexit(fuzz_cleanup);
}

static const char* fuzz_file(const uint8_t* data, size_t size) {
    fuzz_paths();
    return fuzz_scratch_write(data, size, NULL, 0);
}

/* ---- the reader and its invariants ------------------------------------------------------------ */

/* the configuration a run would compare the file against */
static void fuzz_want(CkptHeader* w) {
    ckpt_header_init(w, CKPT_MODEL_GLA);
    ckpt_config_int(w, "D", 768);
    ckpt_config_int(w, "L", 12);
    ckpt_config_float(w, "eps", 1e-6);
    w->num_params = 1000;
}

/* Reads the file (whose bytes are data[0, size)) the way a trainer does; aborts on a broken invariant. */
static void fuzz_read(const char* path, const uint8_t* data, size_t size) {
    CkptHeader* h = (CkptHeader*)malloc(sizeof(CkptHeader));
    char err[256];
    if (ckpt_read_header(path, h, err, sizeof err) != 0) {
        if (!memchr(err, 0, sizeof err) || !err[0]) abort();   /* an error always says what */
        free(h);
        return;
    }
    uint64_t data_start = CKPT_HEADER_BYTES + (uint64_t)h->nsec * CKPT_TABLE_ENTRY_BYTES;
    if (h->nsec < 0 || h->nsec > CKPT_MAX_SECTIONS || h->ncfg < 0 || h->ncfg > CKPT_MAX_CONFIG ||
        h->file_bytes != size || h->version != CKPT_VERSION)
        abort();
    for (int i = 0; i < h->ncfg; i++)
        if (strnlen(h->cfg[i].name, CKPT_CFG_NAME_LEN) >= CKPT_CFG_NAME_LEN) abort();
    for (int i = 0; i < h->nsec; i++) {
        const CkptSectionInfo* t = &h->sec[i];
        if (strnlen(t->name, CKPT_NAME_LEN) >= CKPT_NAME_LEN) abort();
        if (t->offset < data_start || t->offset > size || t->bytes > size - t->offset) abort();
        /* one name, one section: the size lookup and the reader must agree on which one */
        if (ckpt_section_bytes(h, t->name) != (long long)t->bytes) abort();
        unsigned char* buf = (unsigned char*)malloc(t->bytes ? t->bytes : 1);
        /* a size mismatch must be refused before anything is read (buf is one byte short) */
        if (t->bytes && ckpt_read_section(path, h, t->name, buf, t->bytes - 1, err, sizeof err) == 0) abort();
        int rc = ckpt_read_section(path, h, t->name, buf, t->bytes, err, sizeof err);
        int good = ckpt_hash64(data + t->offset, t->bytes) == t->checksum;
        if (rc != !good) abort();
        if (rc == 0 && t->bytes && memcmp(buf, data + t->offset, t->bytes) != 0) abort();
        free(buf);
    }
    if (ckpt_read_section(path, h, "\x01no such section", NULL, 0, err, sizeof err) == 0) abort();
    CkptHeader* want = (CkptHeader*)malloc(sizeof(CkptHeader));
    fuzz_want(want);
    char small[24];   /* messages may be cut, never overrun */
    (void)ckpt_config_compare(h, want, "--model", small, sizeof small);
    (void)ckpt_config_compare(want, h, NULL, err, sizeof err);
    (void)ckpt_config_compare(h, h, "itself", NULL, 0);
    free(want);
    free(h);
}

/* ---- mode 1: make the gating fields consistent ------------------------------------------------ */

static void fuzz_repair(uint8_t* f, size_t size, unsigned flags) {
    if (size < CKPT_HEADER_BYTES) return;
    int64_t s[256];
    memcpy(s, f, sizeof s);
    uint64_t nsec = (uint64_t)s[4] % (CKPT_MAX_SECTIONS + 1);
    uint64_t fit = (size - CKPT_HEADER_BYTES) / CKPT_TABLE_ENTRY_BYTES;
    if (nsec > fit) nsec = fit;
    s[0] = CKPT_MAGIC; s[1] = CKPT_VERSION;
    s[3] = (int64_t)(CKPT_HEADER_BYTES + nsec * CKPT_TABLE_ENTRY_BYTES);
    s[4] = (int64_t)nsec;
    s[7] = (int64_t)size;
    s[12] = (int64_t)((uint64_t)s[12] % (CKPT_MAX_CONFIG + 1));
    s[14] = 0;
    memcpy(f, s, sizeof s);
    for (uint64_t i = 0; i < nsec; i++) {
        uint8_t* e = f + CKPT_HEADER_BYTES + i * CKPT_TABLE_ENTRY_BYTES;
        uint64_t off, bytes;
        memcpy(&off, e + 40, 8);
        memcpy(&bytes, e + 48, 8);
        if (flags & 1) {   /* inside the file (possibly overlapping the header: the reader must refuse) */
            off %= size + 1;
            bytes %= size - off + 1;
            memcpy(e + 40, &off, 8);
            memcpy(e + 48, &bytes, 8);
        }
        if ((flags & 2) && off <= size && bytes <= size - off) {
            uint64_t sum = ckpt_hash64(f + off, bytes);
            memcpy(e + 56, &sum, 8);
        }
    }
    uint64_t sum = ckpt_hash64(f, (size_t)s[3]);
    memcpy(f + 14 * 8, &sum, 8);
}

/* ---- mode 2: write, then read back ------------------------------------------------------------ */

/* the input as a stream of fields; past its end every field reads 0 */
typedef struct {
    const uint8_t* p;
    size_t n;
} Bytes;
static uint64_t take(Bytes* b, size_t k) {
    uint64_t v = 0;
    if (k > b->n) k = b->n;
    memcpy(&v, b->p, k);
    b->p += k; b->n -= k;
    return v;
}
static const uint8_t* take_ptr(Bytes* b, size_t* k) {
    const uint8_t* p = b->p;
    if (*k > b->n) *k = b->n;
    b->p += *k; b->n -= *k;
    return p;
}
/* A name from control byte c: mostly a valid generated one ("<prefix><c>"), with the top bit set raw
 * input bytes (any length up to `mask`, NULs included) so the writer's name checks are reached too. */
static void take_name(Bytes* b, const char* prefix, unsigned mask, char* out, size_t cap) {
    unsigned c = (unsigned)take(b, 1);
    if (!(c & 0x80)) { snprintf(out, cap, "%s%u", prefix, c); return; }
    size_t k = c & mask;
    if (k > cap - 1) k = cap - 1;
    const uint8_t* p = take_ptr(b, &k);
    memcpy(out, p, k);
    out[k] = '\0';
}
static uint64_t splitmix(uint64_t* x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned char* slurp(const char* path, size_t* n) {
    struct stat st;
    if (stat(path, &st) != 0) abort();
    *n = (size_t)st.st_size;
    unsigned char* buf = (unsigned char*)malloc(*n ? *n : 1);
    FILE* f = fopen(path, "rb");
    if (!f || fread(buf, 1, *n, f) != *n) abort();
    fclose(f);
    return buf;
}

#define RT_MAX_SEC 8
static void fuzz_round_trip(const uint8_t* data, size_t size) {
    Bytes b = {data, size};
    CkptHeader* h = (CkptHeader*)malloc(sizeof(CkptHeader));
    CkptHeader* r = (CkptHeader*)malloc(sizeof(CkptHeader));
    ckpt_header_init(h, (int64_t)take(&b, 8));
    h->num_params = (int64_t)take(&b, 8);
    h->step = (int64_t)take(&b, 8);
    uint64_t x = take(&b, 8);
    for (int i = 0; i < 4; i++) h->rng[i] = splitmix(&x);
    for (int i = 0; i < CKPT_LOADER_SLOTS; i++) h->loader[i] = (int64_t)splitmix(&x);
    for (int i = 0; i < CKPT_EXTRA_SLOTS; i++) h->extra[i] = (int64_t)splitmix(&x);
    int ncfg = (int)(take(&b, 1) % 40);   /* > CKPT_MAX_CONFIG: the table must refuse, not overflow */
    for (int i = 0; i < ncfg; i++) {
        char name[24];
        take_name(&b, "f", 0x17, name, sizeof name);
        int is_float = (int)(take(&b, 1) & 1);
        uint64_t v = take(&b, 8);
        double d;
        memcpy(&d, &v, 8);
        int expect = strlen(name) >= CKPT_CFG_NAME_LEN ? 1
                     : (ckpt_config_get(h, name) ? 0 : h->ncfg >= CKPT_MAX_CONFIG);   /* full: refused */
        int rc = is_float ? ckpt_config_float(h, name, d) : ckpt_config_int(h, name, (long long)v);
        if (rc != expect || h->ncfg > CKPT_MAX_CONFIG) abort();
    }
    int nsec = (int)(take(&b, 1) % (RT_MAX_SEC + 1));
    char names[RT_MAX_SEC][48];
    CkptSection sec[RT_MAX_SEC];
    int expect_fail = 0;
    for (int i = 0; i < nsec; i++) {
        take_name(&b, "sec", 0x3f, names[i], sizeof names[i]);
        size_t len = strlen(names[i]);
        if (len == 0 || len >= CKPT_NAME_LEN) expect_fail = 1;
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) expect_fail = 1;
        size_t k = (size_t)take(&b, 2);
        sec[i].name = names[i];
        sec[i].data = take_ptr(&b, &k);
        sec[i].bytes = k;
    }
    fuzz_paths();
    mkdir(g_dir, 0700);
    long long step = (long long)(take(&b, 1) % 6);
    char path[128], tmp[160], found[128], err[256];
    ckpt_path(g_dir, step, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = ckpt_write(path, h, sec, nsec, err, sizeof err);
    if (rc != expect_fail) abort();
    if (access(tmp, F_OK) == 0) abort();   /* never a leftover .tmp */
    if (rc == 0) {
        if (ckpt_read_header(path, r, err, sizeof err) != 0) abort();
        if (r->kind != h->kind || r->num_params != h->num_params || r->step != h->step ||
            memcmp(r->rng, h->rng, sizeof h->rng) || memcmp(r->loader, h->loader, sizeof h->loader) ||
            memcmp(r->extra, h->extra, sizeof h->extra) || r->ncfg != h->ncfg || r->nsec != nsec)
            abort();
        for (int i = 0; i < h->ncfg; i++) {
            const CkptConfigField *a = &h->cfg[i], *c = &r->cfg[i];
            if (strcmp(a->name, c->name) || a->is_float != c->is_float ||
                (a->is_float ? memcmp(&a->f, &c->f, 8) != 0 : a->i != c->i))
                abort();
        }
        for (int i = 0; i < nsec; i++) {
            if (strcmp(r->sec[i].name, names[i]) || r->sec[i].bytes != sec[i].bytes) abort();
            unsigned char* buf = (unsigned char*)malloc(sec[i].bytes ? sec[i].bytes : 1);
            if (ckpt_read_section(path, r, names[i], buf, sec[i].bytes, err, sizeof err) != 0) abort();
            if (sec[i].bytes && memcmp(buf, sec[i].data, sec[i].bytes)) abort();
            free(buf);
        }
        size_t n;
        unsigned char* file = slurp(path, &n);
        fuzz_read(path, file, n);
        free(file);
        /* every file in the dir was written by ckpt_write: the newest must be found */
        long long latest = ckpt_find_latest(g_dir, found, sizeof found);
        const char* base = strrchr(found, '/');
        if (latest < step || !base || ckpt_parse_name(base + 1) != latest) abort();
        /* keep 1: the newest survives, and a later find sees the same one */
        if (ckpt_prune(g_dir, 1) < 0 || ckpt_find_latest(g_dir, found, sizeof found) != latest) abort();
    }
    free(h);
    free(r);
}

/* ---- mode 3: file names and config fields ----------------------------------------------------- */

static void fuzz_names(const uint8_t* data, size_t size) {
    char* s = (char*)malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    long long step = ckpt_parse_name(s);
    if (step >= 0) {   /* only ckpt_<digits>.bin, and the step survives a trip through ckpt_path */
        char p[64];
        size_t len = strlen(s);
        if (strncmp(s, "ckpt_", 5) || len < 10 || strcmp(s + len - 4, ".bin")) abort();
        if (ckpt_path("d", step, p, sizeof p) || ckpt_parse_name(p + 2) != step) abort();
    }
    CkptHeader* a = (CkptHeader*)malloc(sizeof(CkptHeader));
    CkptHeader* c = (CkptHeader*)malloc(sizeof(CkptHeader));
    ckpt_header_init(a, CKPT_MODEL_GLA);
    ckpt_header_init(c, (int64_t)(size % 3));
    Bytes b = {data, size};
    for (int i = 0; b.n > 0 && i < 48; i++) {
        char name[24];
        take_name(&b, "f", 0x17, name, sizeof name);
        uint64_t v = take(&b, 2);
        (void)ckpt_config_int(a, name, (long long)v);
        if (v & 1) (void)ckpt_config_float(c, name, (double)v * 0.5);
        else (void)ckpt_config_int(c, name, (long long)(v & 0xff));
    }
    if (a->ncfg > CKPT_MAX_CONFIG || c->ncfg > CKPT_MAX_CONFIG) abort();
    char err[96];
    (void)ckpt_config_compare(a, c, "--model", err, sizeof err);
    (void)ckpt_config_compare(c, a, s, err, sizeof err);
    (void)ckpt_kind_name(c->kind);
    free(a);
    free(c);
    free(s);
}

/* ---- entry points ----------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    unsigned mode = data[0] % 4, flags = data[0] >> 2;
    data++; size--;
    switch (mode) {
    case 0: fuzz_read(fuzz_file(data, size), data, size); break;
    case 1: {
        uint8_t* f = (uint8_t*)malloc(size ? size : 1);
        memcpy(f, data, size);
        fuzz_repair(f, size, flags);
        fuzz_read(fuzz_file(f, size), f, size);
        free(f);
        break;
    }
    case 2: fuzz_round_trip(data, size); break;
    default: fuzz_names(data, size); break;
    }
    return 0;
}

/* Seeds the first corpus directory on the command line when it is empty: checkpoints as ckpt_write
 * makes them (as they are, and in repaired mode), a round-trip input and a file name. */
int LLVMFuzzerInitialize(int* argc, char*** argv) {
    const char* dir = fuzz_empty_corpus_dir(*argc, *argv);
    if (!dir) return 0;

    CkptHeader* h = (CkptHeader*)malloc(sizeof(CkptHeader));
    fuzz_want(h);
    h->step = 42;
    for (int i = 0; i < 4; i++) h->rng[i] = 0x1234567ULL * (uint64_t)(i + 1);
    h->loader[0] = 7;
    h->extra[0] = 1 << 20;
    float params[64];
    unsigned char blob[37];
    for (int i = 0; i < 64; i++) params[i] = 0.01f * (float)i;
    for (int i = 0; i < 37; i++) blob[i] = (unsigned char)(i * 7 + 10);
    CkptSection sec[3] = {{"params", params, sizeof params}, {"loader_blob", blob, sizeof blob}, {"empty", NULL, 0}};
    char err[256];
    fuzz_paths();
    mkdir(g_dir, 0700);
    const char* names[2] = {"seed_ckpt3", "seed_ckpt0"};
    for (int k = 0; k < 2; k++) {
        char path[128];
        size_t n;
        ckpt_path(g_dir, k, path, sizeof path);
        if (ckpt_write(path, h, sec, k == 0 ? 3 : 0, err, sizeof err) != 0) abort();
        unsigned char* file = slurp(path, &n);
        fuzz_write_mode_seed(dir, names[k], 0, file, n);
        char rep[32];
        snprintf(rep, sizeof rep, "%s_repaired", names[k]);
        fuzz_write_mode_seed(dir, rep, 1 + 4 * 3, file, n);
        if (k == 0) {   /* regression: two sections of one name (the repaired mode fixes the checksum) */
            memcpy(file + CKPT_HEADER_BYTES + CKPT_TABLE_ENTRY_BYTES, "params", 7);
            fuzz_write_mode_seed(dir, "seed_ckpt3_duplicate_name", 1 + 4 * 3, file, n);
        }
        free(file);
        remove(path);
    }
    free(h);
    /* round trip: kind, params, step, rng seed, 2 config fields, 3 sections of 8/0/5 bytes, step 1 */
    static const unsigned char rt[] = {
        1, 0, 0, 0, 0, 0, 0, 0,  100, 0, 0, 0, 0, 0, 0, 0,  5, 0, 0, 0, 0, 0, 0, 0,  9, 9, 9, 9, 9, 9, 9, 9,
        2,  1, 0, 7, 0, 0, 0, 0, 0, 0, 0,  2, 1, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f,
        3,  1, 8, 0, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h',  2, 0, 0,  0x83, 'x', 'y', 'z', 5, 0, 1, 2, 3, 4, 5,
        1};
    fuzz_write_mode_seed(dir, "seed_round_trip", 2, rt, sizeof rt);
    fuzz_write_mode_seed(dir, "seed_name", 3, "ckpt_00000042.bin", 17);
    return 0;
}
