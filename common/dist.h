/*
 * dist.h — the process group of a multi-GPU run, everything around NCCL but NCCL itself:
 *   - who am I: rank, world size and local rank from the launcher's environment (torchrun's RANK /
 *     WORLD_SIZE / LOCAL_RANK, Open MPI's OMPI_COMM_WORLD_*, MPICH/PMI's PMI_RANK / PMI_SIZE, Slurm's
 *     SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID), so mpirun, srun and plain variables all work and
 *     MPI is never linked;
 *   - the rendezvous that hands a small blob (NCCL's unique id) from rank 0 to every rank: over TCP
 *     (rank 0 listens on MASTER_PORT, the others connect to MASTER_ADDR:MASTER_PORT) or through a file
 *     on a shared filesystem (DIST_INIT_FILE);
 *   - a liveness watch on the TCP links: a rank whose process ends without saying goodbye (crash,
 *     kill -9, a failed check that called exit) closes its socket, the kernel tells its peer at once,
 *     and every rank stops within a second with a message naming the rank, instead of hanging in a
 *     collective forever (NCCL itself would wait);
 *   - the one-machine launcher behind `--gpus N`: starts N copies of the program with the variables
 *     set, forwards SIGINT/SIGTERM, and when one rank fails stops the others.
 * Plain C11 / C++17, POSIX sockets and pthreads, header-only; no GPU. Tested by test/test_dist.c.
 * Functions that can fail return 0 / -1 with a message in err; they never exit (the watch, by design,
 * ends the process through its on_lost callback).
 */
#ifndef COMMON_DIST_H
#define COMMON_DIST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "shard.h" /* data_error: the message-and-return -1 helper of the C headers */

#define DIST_MAGIC 0x474C4D44u      /* "DMLG": a hello from one of our ranks */
#define DIST_BLOB_MAX 256           /* NCCL's unique id is 128 bytes */
#define DIST_BYE 'B'                /* "I am ending normally": the peer's EOF is expected */
#define DIST_ABORT 'A'              /* from rank 0: "rank <next byte..> failed, stop" */

static inline double dist_now_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* ------------------------------------------------------------------ environment */
typedef struct {
    int rank, world;
    int local_rank;          /* -1: not given (the caller picks rank % devices) */
    char source[48];         /* which convention set them, for the start-up line */
} DistEnv;

/* strict decimal integer in [lo, hi] from variable name; 1 = set and valid, 0 = unset, -1 = bad */
static inline int dist_env_int_(const char* name, long lo, long hi, int* out, char* err, size_t errlen) {
    const char* v = getenv(name);
    if (!v || !*v) return 0;
    char* end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi)
        return data_error(err, errlen, "%s=%s is not an integer in [%ld, %ld]", name, v, lo, hi);
    *out = (int)x;
    return 1;
}

/* Reads rank / world / local rank; none of the conventions set: rank 0 of 1 ("single process").
 * A convention half set (a rank without a size), rank >= world or a local rank that cannot be: error. */
static inline int dist_env_read(DistEnv* e, char* err, size_t errlen) {
    static const char* const conv[][4] = {
        /* rank, world, local rank, name */
        {"RANK", "WORLD_SIZE", "LOCAL_RANK", "RANK/WORLD_SIZE"},
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "Open MPI"},
        {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "PMI"},
        {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "Slurm"},
    };
    memset(e, 0, sizeof *e);
    e->world = 1;
    e->local_rank = -1;
    snprintf(e->source, sizeof e->source, "single process");
    for (size_t c = 0; c < sizeof conv / sizeof conv[0]; c++) {
        int r = 0, w = 0, l = -1;
        int hr = dist_env_int_(conv[c][0], 0, 1 << 20, &r, err, errlen);
        int hw = dist_env_int_(conv[c][1], 1, 1 << 20, &w, err, errlen);
        if (hr < 0 || hw < 0) return -1;
        if (!hr && !hw) continue;
        if (hr != hw)
            return data_error(err, errlen, "%s is set but %s is not (%s launch: set both)", hr ? conv[c][0] : conv[c][1],
                               hr ? conv[c][1] : conv[c][0], conv[c][3]);
        if (r >= w) return data_error(err, errlen, "%s=%d is not below %s=%d", conv[c][0], r, conv[c][1], w);
        int hl = dist_env_int_(conv[c][2], 0, 1 << 20, &l, err, errlen);
        if (hl < 0) return -1;
        if (hl && l >= w) return data_error(err, errlen, "%s=%d is not below %s=%d", conv[c][2], l, conv[c][1], w);
        e->rank = r;
        e->world = w;
        e->local_rank = hl ? l : -1;
        snprintf(e->source, sizeof e->source, "%s", conv[c][3]);
        return 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ sockets */
static inline int dist_write_all_(int fd, const void* p, size_t n) {
    const char* c = (const char*)p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}
/* reads exactly n bytes, waiting at most until deadline (monotonic seconds) */
static inline int dist_read_all_(int fd, void* p, size_t n, double deadline) {
    char* c = (char*)p;
    while (n) {
        struct pollfd q = {fd, POLLIN, 0};
        int ms = (int)((deadline - dist_now_()) * 1000);
        if (ms <= 0) return -1;
        int r = poll(&q, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t k = recv(fd, c, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

typedef struct {
    uint32_t magic, rank, world, status;   /* status: 0 ok, else a refusal code from rank 0 */
} DistHello;

/* ------------------------------------------------------------------ the link */
typedef void (*DistLostFn)(int my_rank, int peer_rank, const char* why);

typedef struct {
    int rank, world;
    int* fd;                 /* rank 0: [world] (fd[r] to rank r, fd[0] = -1); others: fd[0] to rank 0 */
    int nfd;
    int* done;               /* [nfd] the peer said goodbye */
    pthread_t watcher;
    int watching;
    volatile int closing;    /* we are ending: EOFs are expected now */
    DistLostFn on_lost;
} DistLink;

/* The default reaction to a lost peer: one line on stderr and an immediate exit. _exit, not exit: the
 * main thread may be inside a CUDA call or a collective that would never return. */
static inline void dist_lost_exit(int my_rank, int peer_rank, const char* why) {
    fprintf(stderr, "error: rank %d: %s (rank %d); stopping this rank\n", my_rank, why, peer_rank);
    fflush(stderr);
    _exit(3);
}

static void* dist_watch_main_(void* arg) {
    DistLink* L = (DistLink*)arg;
    struct pollfd* q = (struct pollfd*)calloc((size_t)L->nfd, sizeof *q);
    if (!q) return NULL;
    for (;;) {
        int n = 0;
        for (int i = 0; i < L->nfd; i++) {
            q[i].fd = (L->fd[i] >= 0 && !L->done[i]) ? L->fd[i] : -1;   /* poll ignores negative fds */
            q[i].events = POLLIN;
            q[i].revents = 0;
            n += q[i].fd >= 0;
        }
        if (n == 0 || L->closing) break;
        int r = poll(q, (nfds_t)L->nfd, 200);
        if (L->closing) break;
        if (r < 0 && errno != EINTR) break;
        for (int i = 0; r > 0 && i < L->nfd; i++) {
            if (!q[i].revents) continue;
            int peer = L->rank == 0 ? i : 0;
            unsigned char msg[2] = {0, 0};
            ssize_t k = recv(L->fd[i], msg, 1, 0);
            if (L->closing) break;
            if (k == 1 && msg[0] == DIST_BYE) { L->done[i] = 1; continue; }
            if (k == 1 && msg[0] == DIST_ABORT) {
                unsigned char who[4] = {0, 0, 0, 0};
                dist_read_all_(L->fd[i], who, 4, dist_now_() + 1.0);
                int failed = who[0] | who[1] << 8 | who[2] << 16 | who[3] << 24;
                L->on_lost(L->rank, failed, "rank 0 reports that a rank failed");
                L->done[i] = 1;
                continue;
            }
            if (k < 0 && errno == EINTR) continue;
            if (L->rank == 0) {   /* tell everybody else first, so their message names the failed rank */
                unsigned char a[5] = {DIST_ABORT, (unsigned char)peer, (unsigned char)(peer >> 8),
                                      (unsigned char)(peer >> 16), (unsigned char)(peer >> 24)};
                for (int j = 1; j < L->nfd; j++)
                    if (j != i && L->fd[j] >= 0 && !L->done[j]) dist_write_all_(L->fd[j], a, sizeof a);
            }
            L->on_lost(L->rank, peer, L->rank == 0 ? "a rank ended without finishing (it crashed, was killed, or failed)"
                                                   : "lost the connection to rank 0 (it ended, crashed or was killed)");
            L->done[i] = 1;   /* a test's on_lost may return */
        }
    }
    free(q);
    return NULL;
}

/* Starts the liveness watch (TCP links only; on_lost NULL: dist_lost_exit). */
static inline int dist_watch_start(DistLink* L, DistLostFn on_lost) {
    L->on_lost = on_lost ? on_lost : dist_lost_exit;
    if (L->nfd == 0) return 0;
    if (pthread_create(&L->watcher, NULL, dist_watch_main_, L) != 0) return -1;
    L->watching = 1;
    return 0;
}

/* Normal end: say goodbye to every peer (their watch then ignores our EOF) and close. */
static inline void dist_link_close(DistLink* L) {
    L->closing = 1;
    for (int i = 0; i < L->nfd; i++) {
        if (L->fd[i] < 0) continue;
        char b = DIST_BYE;
        dist_write_all_(L->fd[i], &b, 1);
    }
    if (L->watching) pthread_join(L->watcher, NULL);
    for (int i = 0; i < L->nfd; i++)
        if (L->fd[i] >= 0) close(L->fd[i]);
    free(L->fd);
    free(L->done);
    memset(L, 0, sizeof *L);
}

static inline int dist_link_alloc_(DistLink* L, int rank, int world, int nfd) {
    memset(L, 0, sizeof *L);
    L->rank = rank;
    L->world = world;
    L->nfd = nfd;
    L->fd = (int*)malloc(sizeof(int) * (size_t)(nfd ? nfd : 1));
    L->done = (int*)calloc((size_t)(nfd ? nfd : 1), sizeof(int));
    if (!L->fd || !L->done) return -1;
    for (int i = 0; i < nfd; i++) L->fd[i] = -1;
    return 0;
}

/* ------------------------------------------------------------------ rendezvous over TCP */
/* rank 0: listen on port, accept world-1 ranks (each says hello with its rank), send each the blob */
static inline int dist_serve_(DistLink* L, int port, const void* blob, uint32_t len, double deadline, char* err,
                              size_t errlen) {
    int ls = socket(AF_INET6, SOCK_STREAM, 0);
    int v6 = ls >= 0;
    if (!v6) ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0) return data_error(err, errlen, "rank 0: socket(): %s", strerror(errno));
    int one = 1, zero = 0;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {   /* one dual-stack socket answers IPv4 and IPv6 peers */
        setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_any;
        a.sin6_port = htons((uint16_t)port);
        rc = bind(ls, (struct sockaddr*)&a, sizeof a);
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        a.sin_port = htons((uint16_t)port);
        rc = bind(ls, (struct sockaddr*)&a, sizeof a);
    }
    if (rc != 0 || listen(ls, 128) != 0) {
        int e = errno;
        close(ls);
        return data_error(err, errlen, "rank 0: cannot listen on MASTER_PORT=%d: %s (is another run using it?)", port,
                           strerror(e));
    }
    int got = 0;
    while (got < L->world - 1) {
        struct pollfd q = {ls, POLLIN, 0};
        int ms = (int)((deadline - dist_now_()) * 1000);
        if (ms <= 0 || poll(&q, 1, ms) <= 0) {
            if (errno == EINTR && ms > 0) continue;
            close(ls);
            return data_error(err, errlen, "rank 0: only %d of %d ranks connected to port %d before the timeout "
                               "(are they started, with the same MASTER_ADDR/MASTER_PORT and WORLD_SIZE?)",
                               got + 1, L->world, port);
        }
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        DistHello h;
        if (dist_read_all_(fd, &h, sizeof h, dist_now_() + 10.0) != 0 || h.magic != DIST_MAGIC) { close(fd); continue; }
        DistHello reply = {DIST_MAGIC, 0, (uint32_t)L->world, 0};
        if (h.world != (uint32_t)L->world) reply.status = 1;
        else if (h.rank == 0 || h.rank >= (uint32_t)L->world || L->fd[h.rank] >= 0) reply.status = 2;
        dist_write_all_(fd, &reply, sizeof reply);
        if (reply.status) { close(fd); continue; }   /* the peer reports the refusal; we keep waiting */
        if (dist_write_all_(fd, &len, sizeof len) != 0 || dist_write_all_(fd, blob, len) != 0) { close(fd); continue; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        L->fd[h.rank] = fd;
        got++;
    }
    close(ls);
    return 0;
}

/* other ranks: connect to addr:port (retrying until rank 0 listens), say hello, receive the blob */
static inline int dist_join_(DistLink* L, const char* addr, int port, void* blob, uint32_t cap, uint32_t* len,
                             double deadline, char* err, size_t errlen) {
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(addr, ports, &hints, &res);
    if (g != 0) return data_error(err, errlen, "rank %d: cannot resolve MASTER_ADDR=%s: %s", L->rank, addr, gai_strerror(g));
    int fd = -1;
    while (fd < 0) {
        for (struct addrinfo* a = res; a && fd < 0; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) { close(fd); fd = -1; }
        }
        if (fd >= 0) break;
        if (dist_now_() > deadline) {
            freeaddrinfo(res);
            return data_error(err, errlen, "rank %d: could not connect to rank 0 at %s:%d before the timeout (is rank 0 "
                               "running, and the address reachable?)", L->rank, addr, port);
        }
        usleep(100000);
    }
    freeaddrinfo(res);
    DistHello h = {DIST_MAGIC, (uint32_t)L->rank, (uint32_t)L->world, 0}, reply;
    if (dist_write_all_(fd, &h, sizeof h) != 0 || dist_read_all_(fd, &reply, sizeof reply, deadline) != 0 ||
        reply.magic != DIST_MAGIC) {
        close(fd);
        return data_error(err, errlen, "rank %d: %s:%d did not answer as rank 0 of this program", L->rank, addr, port);
    }
    if (reply.status) {
        close(fd);
        if (reply.status == 1)
            return data_error(err, errlen, "rank %d: rank 0 runs with world size %u, this rank with %d", L->rank,
                               reply.world, L->world);
        return data_error(err, errlen, "rank %d: rank 0 refused this rank (another process already joined as rank %d)",
                           L->rank, L->rank);
    }
    if (dist_read_all_(fd, len, sizeof *len, deadline) != 0 || *len > cap || dist_read_all_(fd, blob, *len, deadline) != 0) {
        close(fd);
        return data_error(err, errlen, "rank %d: the blob from rank 0 was cut short", L->rank);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    L->fd[0] = fd;
    return 0;
}

/* ------------------------------------------------------------------ rendezvous through a file */
/* Rank 0 writes the blob to path.tmp and renames it (readers never see half a file); the others wait
 * for it. The path must be new for every run (put the job id in it): rank 0 refuses an existing one,
 * since a stale file would hand the other ranks a dead id. */
static inline int dist_file_exchange_(int rank, const char* path, void* blob, uint32_t* len, double deadline, char* err,
                                      size_t errlen) {
    if (rank == 0) {
        if (access(path, F_OK) == 0)
            return data_error(err, errlen, "DIST_INIT_FILE %s exists already (left by an earlier run?): remove it, or "
                               "use a new path per run, e.g. with the job id in it", path);
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE* f = fopen(tmp, "wb");
        if (!f) return data_error(err, errlen, "rank 0: cannot write %s: %s", tmp, strerror(errno));
        int ok = fwrite(len, sizeof *len, 1, f) == 1 && fwrite(blob, 1, *len, f) == *len;
        ok = (fclose(f) == 0) && ok;
        if (!ok || rename(tmp, path) != 0) return data_error(err, errlen, "rank 0: cannot write %s", path);
        return 0;
    }
    for (;;) {
        FILE* f = fopen(path, "rb");
        if (f) {
            uint32_t n = 0;
            int ok = fread(&n, sizeof n, 1, f) == 1 && n <= DIST_BLOB_MAX && fread(blob, 1, n, f) == n;
            fclose(f);
            if (!ok) return data_error(err, errlen, "rank %d: %s is not a rendezvous file of this program", rank, path);
            *len = n;
            return 0;
        }
        if (dist_now_() > deadline)
            return data_error(err, errlen, "rank %d: %s did not appear before the timeout (is rank 0 running, and "
                               "the path on a filesystem all ranks share?)", rank, path);
        usleep(100000);
    }
}

/* Hands blob[0..*len) from rank 0 to every rank (others: blob has DIST_BLOB_MAX bytes of room).
 * TCP when MASTER_ADDR/MASTER_PORT are set (the link stays open for the liveness watch), else the file
 * DIST_INIT_FILE (no watch: the collective timeout is the only guard). timeout_s bounds the wait. */
static inline int dist_rendezvous(const DistEnv* e, void* blob, uint32_t* len, double timeout_s, DistLink* L, char* err,
                                  size_t errlen) {
    double deadline = dist_now_() + timeout_s;
    const char* file = getenv("DIST_INIT_FILE");
    const char* addr = getenv("MASTER_ADDR");
    int port = 0;
    int hp = dist_env_int_("MASTER_PORT", 1, 65535, &port, err, errlen);
    if (hp < 0) return -1;
    if (!hp || !addr || !*addr) {
        if (dist_link_alloc_(L, e->rank, e->world, 0) != 0) return data_error(err, errlen, "out of memory");
        if (file && *file) return dist_file_exchange_(e->rank, file, blob, len, deadline, err, errlen);
        return data_error(err, errlen, "a %d-rank run needs MASTER_ADDR and MASTER_PORT (rank 0's host and a free port) "
                           "or DIST_INIT_FILE (a new file on a filesystem all ranks share)", e->world);
    }
    if (dist_link_alloc_(L, e->rank, e->world, e->rank == 0 ? e->world : 1) != 0)
        return data_error(err, errlen, "out of memory");
    if (e->rank == 0) return dist_serve_(L, port, blob, *len, deadline, err, errlen);
    return dist_join_(L, addr, port, blob, DIST_BLOB_MAX, len, deadline, err, errlen);
}

/* ------------------------------------------------------------------ the one-machine launcher */
static volatile sig_atomic_t dist_launcher_signal_ = 0;
static inline void dist_launcher_on_signal_(int sig) { dist_launcher_signal_ = sig; }

/* A free TCP port on this machine (bound, read back, released; a tiny race is acceptable here). */
static inline int dist_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr*)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr*)&a, &n) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Runs n copies of exe with argv, rank r with RANK=r LOCAL_RANK=r WORLD_SIZE=n MASTER_ADDR=127.0.0.1 and a
 * free MASTER_PORT. SIGINT/SIGTERM are passed on to every rank (they checkpoint and stop together). When
 * a rank fails (non-zero exit or a signal), the others get SIGTERM, then SIGKILL after grace_s seconds.
 * Returns 0 when all ranks exited 0, else the first failure's exit code (128 + signal for a signal). */
static inline int dist_launch_local(int n, const char* exe, char* const argv[], double grace_s) {
    int port = dist_free_port();
    if (port < 0) { fprintf(stderr, "error: launcher: no free TCP port on this machine\n"); return 1; }
    char buf[32];
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    snprintf(buf, sizeof buf, "%d", port); setenv("MASTER_PORT", buf, 1);
    snprintf(buf, sizeof buf, "%d", n); setenv("WORLD_SIZE", buf, 1); setenv("LOCAL_WORLD_SIZE", buf, 1);
    pid_t* pid = (pid_t*)calloc((size_t)n, sizeof(pid_t));
    if (!pid) return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = dist_launcher_on_signal_;   /* no SA_RESTART: waitpid returns EINTR and we forward */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < n; r++) {
        pid[r] = fork();
        if (pid[r] == 0) {
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            snprintf(buf, sizeof buf, "%d", r); setenv("RANK", buf, 1); setenv("LOCAL_RANK", buf, 1);
            execv(exe, argv);
            fprintf(stderr, "error: launcher: cannot start %s: %s\n", exe, strerror(errno));
            _exit(127);
        }
        if (pid[r] < 0) { fprintf(stderr, "error: launcher: fork failed: %s\n", strerror(errno)); n = r; break; }
    }
    int alive = n, first_rc = 0, sent_kill = 0;
    double kill_at = 0;
    while (alive > 0) {
        if (dist_launcher_signal_) {
            for (int r = 0; r < n; r++) if (pid[r] > 0) kill(pid[r], dist_launcher_signal_);
            dist_launcher_signal_ = 0;
        }
        if (kill_at > 0 && dist_now_() > kill_at) {
            for (int r = 0; r < n; r++) if (pid[r] > 0) kill(pid[r], SIGKILL);
            kill_at = 0;
            sent_kill = 1;
        }
        int st;
        pid_t p = waitpid(-1, &st, kill_at > 0 ? WNOHANG : 0);
        if (p == 0) { usleep(50000); continue; }
        if (p < 0) { if (errno == EINTR) continue; break; }
        int r = 0;
        while (r < n && pid[r] != p) r++;
        if (r == n) continue;
        pid[r] = 0;
        alive--;
        int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (rc != 0 && first_rc == 0) {
            first_rc = rc;
            if (WIFEXITED(st)) fprintf(stderr, "launcher: rank %d exited with code %d; stopping the other ranks\n", r, rc);
            else fprintf(stderr, "launcher: rank %d was killed by signal %d; stopping the other ranks\n", r, WTERMSIG(st));
            for (int q = 0; q < n; q++) if (pid[q] > 0) kill(pid[q], SIGTERM);
            kill_at = dist_now_() + grace_s;
        } else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM && !(WTERMSIG(st) == SIGKILL && sent_kill)) {
            /* a rank killed from outside may be reaped after a peer that noticed its death and stopped first:
             * name it too, it is the cause */
            fprintf(stderr, "launcher: rank %d was killed by signal %d\n", r, WTERMSIG(st));
        }
    }
    free(pid);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    return first_rc;
}

#endif /* COMMON_DIST_H */
