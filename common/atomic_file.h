/*
 * atomic_file.h — atomic replacement of every file the project writes that a user keeps: checkpoints,
 * Hugging Face exports, token shards, tokenizer files. Plain C (POSIX).
 *
 * atomic_open creates <path>.tmp; the caller writes it; atomic_commit flushes, fsyncs and closes it,
 * renames it over <path> and fsyncs the directory; atomic_abort closes and removes it. A crash, a kill or
 * a full disk at any instant leaves the old file or the new one under <path>, never a torn one, and a
 * failed commit removes the .tmp. Errors: NULL / 1 with one line in err ("... (disk full?)" for failed
 * writes), written by ckpt_errf, which lives here as the lowest header of the file layer.
 */
#ifndef COMMON_ATOMIC_FILE_H
#define COMMON_ATOMIC_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ATOMIC_PATH_MAX 4096

/* A one-line message into the caller's buffer (cut at errlen; err may be NULL): how every function of
 * the file layer (this file, checkpoint.h, hf.h, logger.h) reports an error instead of dying. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void ckpt_errf(char* err, size_t errlen, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static inline void atomic_fsync_dir_(const char* path) {
    char dir[ATOMIC_PATH_MAX];
    const char* slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) { (void)fsync(fd); close(fd); }
}

/* tmp[cap] receives "<path>.tmp" */
static inline FILE* atomic_open(const char* path, char* tmp, size_t cap, char* err, size_t errlen) {
    if (snprintf(tmp, cap, "%s.tmp", path) >= (int)cap) {
        ckpt_errf(err, errlen, "path too long: %s", path);
        return NULL;
    }
    FILE* f = fopen(tmp, "wb");
    if (!f) ckpt_errf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    return f;
}

static inline void atomic_abort(FILE* f, const char* tmp) {
    if (f) fclose(f);
    remove(tmp);
}

/* write_ok: the caller's writes all succeeded (0: report a failed write, remove the .tmp) */
static inline int atomic_commit(FILE* f, int write_ok, const char* tmp, const char* path, char* err, size_t errlen) {
    int bad = !write_ok;
    int e = bad ? errno : 0;
    if (!bad && (fflush(f) != 0 || fsync(fileno(f)) != 0)) { bad = 1; e = errno; }
    if (fclose(f) != 0 && !bad) { bad = 1; e = errno; }
    if (bad) {
        ckpt_errf(err, errlen, "writing %s failed: %s (disk full?)", tmp, strerror(e));
        remove(tmp);
        return 1;
    }
    if (rename(tmp, path) != 0) {
        ckpt_errf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        remove(tmp);
        return 1;
    }
    atomic_fsync_dir_(path);
    return 0;
}

#endif /* COMMON_ATOMIC_FILE_H */
