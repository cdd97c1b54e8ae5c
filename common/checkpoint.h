/*
 * checkpoint.h — the checkpoint file format and its safe handling on disk. Plain C (POSIX).
 *
 * A checkpoint is ONE file, <out_dir>/ckpt_<step %08lld>.bin, little endian:
 *   [0, 2048)            header: 256 int64 slots (map below)
 *   [2048, +64*nsec)     section table: nsec x {char name[40]; u64 offset, bytes, checksum}
 *   then the sections, each starting at a multiple of 64 bytes (zero padding between).
 * Header slots:
 *   0 magic  1 version  2 model kind (1 GLA, 2 Mamba)  3 data start  4 nsec  5 num_params  6 step
 *   7 file bytes  8..11 rng state  12 ncfg  13 float mask of the config (bit i: field i is a double)
 *   14 checksum of header+table (taken with this slot 0)  15 reserved
 *   16..31 data-loader position (opaque to this file)  32..63 config values  64..127 config names
 *   (32 x char[16])  128..159 extra (free for the trainer: tokens seen, world size, ...)  rest 0.
 * Model config: up to 32 named int/double fields written by the trainer (D, L, H, Vc, ...). On load
 * they are compared field by field so a mismatch names the field ("checkpoint is D=768 but --model
 * gives D=1024") instead of failing later with a size error or, worse, loading garbage.
 * Checksums: a 64-bit multiply-rotate hash over 32-byte stripes (several GB/s, so a 6 GB
 * checkpoint costs a second or two, unlike a bytewise CRC32).
 * Safety: ckpt_write replaces <path> atomically (common/atomic_file.h: <path>.tmp, fsync, rename, fsync the
 * directory): a crash or a full disk leaves either the old file or the new one, never a torn one; a leftover
 * .tmp is ignored by ckpt_find_latest. ckpt_prune deletes only files named exactly ckpt_<digits>.bin.
 */
#ifndef COMMON_CHECKPOINT_H
#define COMMON_CHECKPOINT_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic_file.h"

#define CKPT_MAGIC 20251129LL
#define CKPT_VERSION 1
#define CKPT_HEADER_BYTES 2048
#define CKPT_TABLE_ENTRY_BYTES 64
#define CKPT_MAX_SECTIONS 64
#define CKPT_MAX_CONFIG 32
#define CKPT_LOADER_SLOTS 16
#define CKPT_EXTRA_SLOTS 32
#define CKPT_NAME_LEN 40       /* section names, including the terminating 0 */
#define CKPT_CFG_NAME_LEN 16   /* config field names, including the terminating 0 */
#define CKPT_ALIGN 64

enum { CKPT_MODEL_GLA = 1, CKPT_MODEL_MAMBA = 2 };

typedef struct {
    char name[CKPT_CFG_NAME_LEN];
    int is_float;
    long long i;
    double f;
} CkptConfigField;

typedef struct {
    char name[CKPT_NAME_LEN];
    uint64_t offset, bytes, checksum;
} CkptSectionInfo;

typedef struct {
    int64_t kind;                        /* CKPT_MODEL_* */
    int64_t version;                     /* set by read; write always writes CKPT_VERSION */
    int64_t num_params;
    int64_t step;                        /* optimizer steps completed = index of the next step */
    uint64_t rng[4];
    int64_t loader[CKPT_LOADER_SLOTS];   /* data-loader position blob */
    int64_t extra[CKPT_EXTRA_SLOTS];
    int ncfg;
    CkptConfigField cfg[CKPT_MAX_CONFIG];
    /* filled by ckpt_read_header, ignored by ckpt_write */
    int nsec;
    CkptSectionInfo sec[CKPT_MAX_SECTIONS];
    uint64_t file_bytes;
} CkptHeader;

/* a zeroed header for model `kind` (CKPT_MODEL_*); then set step, num_params, rng, loader, config */
static inline void ckpt_header_init(CkptHeader* h, int64_t kind) {
    memset(h, 0, sizeof *h);
    h->kind = kind;
    h->version = CKPT_VERSION;
}

/* what ckpt_write takes: name, bytes in memory */
typedef struct {
    const char* name;
    const void* data;
    size_t bytes;
} CkptSection;

/* Error messages: ckpt_errf (common/atomic_file.h). */

/* ---- checksum --------------------------------------------------------------------------------- */

static inline uint64_t ckpt_rotl_(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t ckpt_hash64(const void* data, size_t n) {
    const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL, P3 = 0x165667B19E3779F9ULL;
    const unsigned char* p = (const unsigned char*)data;
    uint64_t v[4] = {P1 + P2, P2, 0x0123456789ABCDEFULL, 0 - P1};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * l, 8);
            v[l] = ckpt_rotl_(v[l] + w * P2, 31) * P1;
        }
    uint64_t h = ckpt_rotl_(v[0], 1) + ckpt_rotl_(v[1], 7) + ckpt_rotl_(v[2], 12) + ckpt_rotl_(v[3], 18);
    h ^= (uint64_t)n * P3;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = ckpt_rotl_(h ^ (ckpt_rotl_(w * P2, 31) * P1), 27) * P1 + P3;
    }
    for (; i < n; i++) h = ckpt_rotl_(h ^ ((uint64_t)p[i] * P3), 11) * P1;
    h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32;
    return h;
}

/* ---- model config ----------------------------------------------------------------------------- */

static inline CkptConfigField* ckpt_config_slot_(CkptHeader* h, const char* name) {
    for (int i = 0; i < h->ncfg; i++)
        if (strcmp(h->cfg[i].name, name) == 0) return &h->cfg[i];
    if (h->ncfg >= CKPT_MAX_CONFIG || strlen(name) >= CKPT_CFG_NAME_LEN) return NULL;
    CkptConfigField* c = &h->cfg[h->ncfg++];
    memset(c, 0, sizeof *c);
    memcpy(c->name, name, strlen(name) + 1);
    return c;
}
/* Record a config field (replaces one of the same name). Returns 0, or 1 if full or the name too long. */
static inline int ckpt_config_int(CkptHeader* h, const char* name, long long v) {
    CkptConfigField* c = ckpt_config_slot_(h, name);
    if (!c) return 1;
    c->is_float = 0; c->i = v; c->f = 0.0;
    return 0;
}
static inline int ckpt_config_float(CkptHeader* h, const char* name, double v) {
    CkptConfigField* c = ckpt_config_slot_(h, name);
    if (!c) return 1;
    c->is_float = 1; c->f = v; c->i = 0;
    return 0;
}
static inline const CkptConfigField* ckpt_config_get(const CkptHeader* h, const char* name) {
    for (int i = 0; i < h->ncfg; i++)
        if (strcmp(h->cfg[i].name, name) == 0) return &h->cfg[i];
    return NULL;
}
static inline void ckpt_config_str_(const CkptConfigField* c, char* out, size_t cap) {
    if (c->is_float) snprintf(out, cap, "%.9g", c->f);
    else snprintf(out, cap, "%lld", c->i);
}
static inline const char* ckpt_kind_name(int64_t kind) {
    return kind == CKPT_MODEL_GLA ? "GLA" : (kind == CKPT_MODEL_MAMBA ? "Mamba" : "unknown");
}

/* Compares what a checkpoint holds (file) with what this run wants; `source` names where the wanted
 * values came from (e.g. "--model"). Returns 0, or 1 with a message naming the first difference. */
static inline int ckpt_config_compare(const CkptHeader* file, const CkptHeader* want, const char* source,
                                      char* err, size_t errlen) {
    const char* src = source ? source : "this run";
    if (file->kind != want->kind) {
        ckpt_errf(err, errlen, "checkpoint is a %s model (kind %lld) but %s builds a %s model (kind %lld)",
                 ckpt_kind_name(file->kind), (long long)file->kind, src, ckpt_kind_name(want->kind),
                 (long long)want->kind);
        return 1;
    }
    for (int i = 0; i < want->ncfg; i++) {
        const CkptConfigField* w = &want->cfg[i];
        const CkptConfigField* f = ckpt_config_get(file, w->name);
        char a[48], b[48];
        ckpt_config_str_(w, b, sizeof b);
        if (!f) {
            ckpt_errf(err, errlen, "checkpoint has no config field %s (%s gives %s=%s)", w->name, src, w->name, b);
            return 1;
        }
        int same = f->is_float == w->is_float && (f->is_float ? f->f == w->f : f->i == w->i);
        if (!same) {
            ckpt_config_str_(f, a, sizeof a);
            ckpt_errf(err, errlen, "checkpoint is %s=%s but %s gives %s=%s", w->name, a, src, w->name, b);
            return 1;
        }
    }
    for (int i = 0; i < file->ncfg; i++)
        if (!ckpt_config_get(want, file->cfg[i].name)) {
            char a[48];
            ckpt_config_str_(&file->cfg[i], a, sizeof a);
            ckpt_errf(err, errlen, "checkpoint has config field %s=%s that %s does not know", file->cfg[i].name, a, src);
            return 1;
        }
    if (file->num_params && want->num_params && file->num_params != want->num_params) {
        ckpt_errf(err, errlen, "checkpoint has %lld parameters but %s gives %lld", (long long)file->num_params, src,
                 (long long)want->num_params);
        return 1;
    }
    return 0;
}

/* ---- paths ------------------------------------------------------------------------------------ */

static inline int ckpt_path(const char* dir, long long step, char* out, size_t cap) {
    int n = snprintf(out, cap, "%s/ckpt_%08lld.bin", dir, step);
    return n < 0 || (size_t)n >= cap;
}

/* step of a file named exactly ckpt_<digits>.bin, else -1 (so .tmp leftovers and user files never match) */
static inline long long ckpt_parse_name(const char* name) {
    if (strncmp(name, "ckpt_", 5) != 0) return -1;
    const char* p = name + 5;
    long long step = 0;
    int nd = 0;
    while (*p >= '0' && *p <= '9' && nd < 18) { step = step * 10 + (*p - '0'); p++; nd++; }
    if (nd == 0 || strcmp(p, ".bin") != 0) return -1;
    return step;
}

/* ---- write ------------------------------------------------------------------------------------ */

static inline uint64_t ckpt_align_(uint64_t x) { return (x + CKPT_ALIGN - 1) / CKPT_ALIGN * CKPT_ALIGN; }

/* Serialises header + table into buf (CKPT_HEADER_BYTES + 64*nsec bytes), checksum included. */
static inline void ckpt_pack_header_(const CkptHeader* h, const CkptSectionInfo* tab, int nsec, uint64_t file_bytes,
                                     unsigned char* buf) {
    size_t table_bytes = (size_t)nsec * CKPT_TABLE_ENTRY_BYTES;
    int64_t s[256];
    memset(s, 0, sizeof s);
    s[0] = CKPT_MAGIC; s[1] = CKPT_VERSION; s[2] = h->kind; s[3] = (int64_t)(CKPT_HEADER_BYTES + table_bytes);
    s[4] = nsec; s[5] = h->num_params; s[6] = h->step; s[7] = (int64_t)file_bytes;
    for (int i = 0; i < 4; i++) s[8 + i] = (int64_t)h->rng[i];
    s[12] = h->ncfg;
    int64_t mask = 0;
    for (int i = 0; i < h->ncfg; i++) {
        if (h->cfg[i].is_float) {
            mask |= (int64_t)1 << i;
            memcpy(&s[32 + i], &h->cfg[i].f, 8);
        } else {
            s[32 + i] = h->cfg[i].i;
        }
        memcpy((char*)&s[64] + CKPT_CFG_NAME_LEN * i, h->cfg[i].name, CKPT_CFG_NAME_LEN);
    }
    s[13] = mask;
    for (int i = 0; i < CKPT_LOADER_SLOTS; i++) s[16 + i] = h->loader[i];
    for (int i = 0; i < CKPT_EXTRA_SLOTS; i++) s[128 + i] = h->extra[i];
    memcpy(buf, s, sizeof s);
    for (int i = 0; i < nsec; i++) {
        unsigned char* e = buf + CKPT_HEADER_BYTES + (size_t)i * CKPT_TABLE_ENTRY_BYTES;
        memcpy(e, tab[i].name, CKPT_NAME_LEN);
        memcpy(e + 40, &tab[i].offset, 8);
        memcpy(e + 48, &tab[i].bytes, 8);
        memcpy(e + 56, &tab[i].checksum, 8);
    }
    uint64_t sum = ckpt_hash64(buf, CKPT_HEADER_BYTES + table_bytes);   /* slot 14 is still 0 here */
    memcpy(buf + 14 * 8, &sum, 8);
}

static inline int ckpt_fwrite_all_(FILE* f, const void* data, size_t n) {
    const char* p = (const char*)data;
    while (n > 0) {   /* chunks: some libcs mishandle single multi-GB writes */
        size_t chunk = n < ((size_t)1 << 26) ? n : ((size_t)1 << 26);
        if (fwrite(p, 1, chunk, f) != chunk) return 1;
        p += chunk; n -= chunk;
    }
    return 0;
}

/* Writes a checkpoint atomically (path.tmp, fsync, rename, fsync dir). Returns 0, or 1 with err set. */
static inline int ckpt_write(const char* path, const CkptHeader* h, const CkptSection* sec, int nsec, char* err,
                             size_t errlen) {
    if (nsec < 0 || nsec > CKPT_MAX_SECTIONS || h->ncfg < 0 || h->ncfg > CKPT_MAX_CONFIG) {
        ckpt_errf(err, errlen, "checkpoint %s: %d sections / %d config fields (max %d / %d)", path, nsec, h->ncfg,
                 CKPT_MAX_SECTIONS, CKPT_MAX_CONFIG);
        return 1;
    }
    CkptSectionInfo* tab = (CkptSectionInfo*)calloc((size_t)(nsec ? nsec : 1), sizeof(CkptSectionInfo));
    size_t head_bytes = CKPT_HEADER_BYTES + (size_t)nsec * CKPT_TABLE_ENTRY_BYTES;
    unsigned char* head = (unsigned char*)calloc(1, head_bytes);
    char tmp[ATOMIC_PATH_MAX];
    int rc = 1;
    if (!tab || !head) { ckpt_errf(err, errlen, "checkpoint %s: out of host memory", path); goto done; }
    {
        uint64_t off = ckpt_align_(head_bytes);
        for (int i = 0; i < nsec; i++) {
            size_t len = sec[i].name ? strlen(sec[i].name) : 0;
            if (len == 0 || len >= CKPT_NAME_LEN) {
                ckpt_errf(err, errlen, "checkpoint section %d: name must have 1..%d characters", i, CKPT_NAME_LEN - 1);
                goto done;
            }
            for (int j = 0; j < i; j++)
                if (strcmp(sec[j].name, sec[i].name) == 0) {
                    ckpt_errf(err, errlen, "checkpoint section '%s' appears twice", sec[i].name);
                    goto done;
                }
            memcpy(tab[i].name, sec[i].name, len + 1);
            tab[i].offset = off;
            tab[i].bytes = sec[i].bytes;
            tab[i].checksum = ckpt_hash64(sec[i].data, sec[i].bytes);
            off = ckpt_align_(off + sec[i].bytes);
        }
        uint64_t file_bytes = nsec ? tab[nsec - 1].offset + tab[nsec - 1].bytes : head_bytes;
        ckpt_pack_header_(h, tab, nsec, file_bytes, head);
        FILE* f = atomic_open(path, tmp, sizeof tmp, err, errlen);
        if (!f) goto done;
        static const unsigned char zeros[CKPT_ALIGN] = {0};
        uint64_t pos = head_bytes;
        int ok = !ckpt_fwrite_all_(f, head, head_bytes);
        for (int i = 0; ok && i < nsec; i++) {
            ok = !ckpt_fwrite_all_(f, zeros, (size_t)(tab[i].offset - pos)) && !ckpt_fwrite_all_(f, sec[i].data, sec[i].bytes);
            pos = tab[i].offset + tab[i].bytes;
        }
        rc = atomic_commit(f, ok, tmp, path, err, errlen);
    }
done:
    free(tab);
    free(head);
    return rc;
}

/* ---- read ------------------------------------------------------------------------------------- */

/* Reads and validates header + section table (magic, version, checksum, file size, section bounds,
 * unique section names).
 * Returns 0, or 1 with err naming the problem. */
static inline int ckpt_read_header(const char* path, CkptHeader* h, char* err, size_t errlen) {
    memset(h, 0, sizeof *h);
    FILE* f = fopen(path, "rb");
    if (!f) { ckpt_errf(err, errlen, "cannot open checkpoint %s: %s", path, strerror(errno)); return 1; }
    int rc = 1;
    unsigned char* buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) { ckpt_errf(err, errlen, "cannot stat %s: %s", path, strerror(errno)); goto done; }
    {
        uint64_t size = (uint64_t)st.st_size;
        int64_t s[256];
        if (size < CKPT_HEADER_BYTES || fread(s, 1, sizeof s, f) != sizeof s) {
            ckpt_errf(err, errlen, "checkpoint %s is truncated: %llu bytes, the header alone needs %d", path,
                     (unsigned long long)size, CKPT_HEADER_BYTES);
            goto done;
        }
        if (s[0] != CKPT_MAGIC) {
            ckpt_errf(err, errlen, "%s is not a checkpoint (magic %lld, expected %lld)", path, (long long)s[0],
                     (long long)CKPT_MAGIC);
            goto done;
        }
        if (s[1] != CKPT_VERSION) {
            ckpt_errf(err, errlen, "checkpoint %s has format version %lld; this build reads version %d", path,
                     (long long)s[1], CKPT_VERSION);
            goto done;
        }
        int nsec = (int)s[4], ncfg = (int)s[12];
        if (s[4] < 0 || s[4] > CKPT_MAX_SECTIONS || s[12] < 0 || s[12] > CKPT_MAX_CONFIG ||
            s[3] != (int64_t)(CKPT_HEADER_BYTES + (size_t)nsec * CKPT_TABLE_ENTRY_BYTES)) {
            ckpt_errf(err, errlen, "checkpoint %s has a corrupt header (section/config counts)", path);
            goto done;
        }
        size_t head_bytes = (size_t)s[3];
        buf = (unsigned char*)malloc(head_bytes);
        if (!buf) { ckpt_errf(err, errlen, "out of host memory"); goto done; }
        memcpy(buf, s, sizeof s);
        if (size < head_bytes || fread(buf + sizeof s, 1, head_bytes - sizeof s, f) != head_bytes - sizeof s) {
            ckpt_errf(err, errlen, "checkpoint %s is truncated inside its section table", path);
            goto done;
        }
        uint64_t stored, zero = 0;
        memcpy(&stored, buf + 14 * 8, 8);
        memcpy(buf + 14 * 8, &zero, 8);
        if (ckpt_hash64(buf, head_bytes) != stored) {
            ckpt_errf(err, errlen, "checkpoint %s has a corrupt header (checksum mismatch)", path);
            goto done;
        }
        if ((uint64_t)s[7] != size) {
            ckpt_errf(err, errlen, "checkpoint %s is %s: %llu bytes on disk, header says %llu", path,
                     size < (uint64_t)s[7] ? "truncated" : "longer than written", (unsigned long long)size,
                     (unsigned long long)s[7]);
            goto done;
        }
        h->version = s[1]; h->kind = s[2]; h->num_params = s[5]; h->step = s[6]; h->file_bytes = (uint64_t)s[7];
        for (int i = 0; i < 4; i++) h->rng[i] = (uint64_t)s[8 + i];
        for (int i = 0; i < CKPT_LOADER_SLOTS; i++) h->loader[i] = s[16 + i];
        for (int i = 0; i < CKPT_EXTRA_SLOTS; i++) h->extra[i] = s[128 + i];
        h->ncfg = ncfg;
        for (int i = 0; i < ncfg; i++) {
            memcpy(h->cfg[i].name, (const char*)&s[64] + CKPT_CFG_NAME_LEN * i, CKPT_CFG_NAME_LEN);
            h->cfg[i].name[CKPT_CFG_NAME_LEN - 1] = '\0';
            h->cfg[i].is_float = (int)((s[13] >> i) & 1);
            if (h->cfg[i].is_float) memcpy(&h->cfg[i].f, &s[32 + i], 8);
            else h->cfg[i].i = s[32 + i];
        }
        h->nsec = nsec;
        for (int i = 0; i < nsec; i++) {
            const unsigned char* e = buf + CKPT_HEADER_BYTES + (size_t)i * CKPT_TABLE_ENTRY_BYTES;
            CkptSectionInfo* t = &h->sec[i];
            memcpy(t->name, e, CKPT_NAME_LEN);
            t->name[CKPT_NAME_LEN - 1] = '\0';
            memcpy(&t->offset, e + 40, 8);
            memcpy(&t->bytes, e + 48, 8);
            memcpy(&t->checksum, e + 56, 8);
            if (t->offset < head_bytes || t->offset > size || t->bytes > size - t->offset) {
                ckpt_errf(err, errlen, "checkpoint %s: section '%s' lies outside the file", path, t->name);
                goto done;
            }
            for (int j = 0; j < i; j++)   /* the writer never repeats a name; lookups assume it */
                if (strcmp(h->sec[j].name, t->name) == 0) {
                    ckpt_errf(err, errlen, "checkpoint %s: section '%s' appears twice", path, t->name);
                    goto done;
                }
        }
        rc = 0;
    }
done:
    free(buf);
    fclose(f);
    return rc;
}

/* bytes of section `name`, or -1 when the checkpoint has no such section */
static inline long long ckpt_section_bytes(const CkptHeader* h, const char* name) {
    for (int i = 0; i < h->nsec; i++)
        if (strcmp(h->sec[i].name, name) == 0) return (long long)h->sec[i].bytes;
    return -1;
}

/* Reads section `name` (exactly `bytes` long) into dst and verifies its checksum. 0, or 1 with err. */
static inline int ckpt_read_section(const char* path, const CkptHeader* h, const char* name, void* dst, size_t bytes,
                                    char* err, size_t errlen) {
    const CkptSectionInfo* t = NULL;
    for (int i = 0; i < h->nsec; i++)
        if (strcmp(h->sec[i].name, name) == 0) t = &h->sec[i];
    if (!t) { ckpt_errf(err, errlen, "checkpoint %s has no section '%s'", path, name); return 1; }
    if (t->bytes != bytes) {
        ckpt_errf(err, errlen, "checkpoint %s: section '%s' has %llu bytes, this run expects %llu", path, name,
                 (unsigned long long)t->bytes, (unsigned long long)bytes);
        return 1;
    }
    FILE* f = fopen(path, "rb");
    if (!f) { ckpt_errf(err, errlen, "cannot open checkpoint %s: %s", path, strerror(errno)); return 1; }
    int rc = 1;
    if (fseeko(f, (off_t)t->offset, SEEK_SET) != 0) {
        ckpt_errf(err, errlen, "checkpoint %s: cannot seek to section '%s'", path, name);
    } else {
        char* p = (char*)dst;
        size_t left = bytes, ok = 1;
        while (left > 0 && ok) {
            size_t chunk = left < ((size_t)1 << 26) ? left : ((size_t)1 << 26);
            ok = fread(p, 1, chunk, f) == chunk;
            p += chunk; left -= chunk;
        }
        if (!ok) ckpt_errf(err, errlen, "checkpoint %s: section '%s' is truncated", path, name);
        else if (ckpt_hash64(dst, bytes) != t->checksum)
            ckpt_errf(err, errlen, "checkpoint %s: section '%s' is corrupt (checksum mismatch)", path, name);
        else rc = 0;
    }
    fclose(f);
    return rc;
}

/* ---- directory management --------------------------------------------------------------------- */

static inline int ckpt_cmp_ll_(const void* a, const void* b) {
    long long x = *(const long long*)a, y = *(const long long*)b;
    return (x > y) - (x < y);
}

/* steps of all ckpt_<digits>.bin in dir, ascending, malloc'ed into *out; returns count (-1: no dir) */
static inline int ckpt_list_(const char* dir, long long** out) {
    *out = NULL;
    DIR* d = opendir(dir);
    if (!d) return -1;
    int n = 0, cap = 0;
    long long* steps = NULL;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        long long s = ckpt_parse_name(e->d_name);
        if (s < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long long* grown = (long long*)realloc(steps, sizeof(long long) * (size_t)cap);
            if (!grown) break;
            steps = grown;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (n > 1) qsort(steps, (size_t)n, sizeof(long long), ckpt_cmp_ll_);
    *out = steps;
    return n;
}

/* Newest checkpoint in dir whose header validates (a corrupt newer one is reported on stderr and
 * skipped). Writes its path to path_out and returns its step, or -1 when there is none. */
static inline long long ckpt_find_latest(const char* dir, char* path_out, size_t cap) {
    long long* steps;
    int n = ckpt_list_(dir, &steps);
    long long found = -1;
    for (int i = n - 1; i >= 0 && found < 0; i--) {
        char path[4096], err[512];
        CkptHeader* h = (CkptHeader*)malloc(sizeof(CkptHeader));
        if (!h) break;
        ckpt_path(dir, steps[i], path, sizeof path);
        if (ckpt_read_header(path, h, err, sizeof err) == 0) {
            found = steps[i];
            size_t len = strlen(path) < cap ? strlen(path) : cap - 1;
            memcpy(path_out, path, len);
            path_out[len] = '\0';
        } else {
            fprintf(stderr, "warning: skipping checkpoint: %s\n", err);
        }
        free(h);
    }
    free(steps);
    return found;
}

/* Deletes all but the newest `keep` ckpt_<digits>.bin files of dir (keep <= 0: deletes nothing).
 * Returns the number deleted, or -1 on an error. */
static inline int ckpt_prune(const char* dir, int keep) {
    if (keep <= 0) return 0;
    long long* steps;
    int n = ckpt_list_(dir, &steps);
    if (n < 0) return -1;
    int removed = 0, rc = 0;
    for (int i = 0; i < n - keep; i++) {
        char path[4096];
        ckpt_path(dir, steps[i], path, sizeof path);
        if (unlink(path) == 0) removed++;
        else rc = -1;
    }
    free(steps);
    return rc < 0 ? -1 : removed;
}

#endif /* COMMON_CHECKPOINT_H */
