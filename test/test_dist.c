/*
 * test_dist.c — CPU tests of common/dist.h, the process group around NCCL: rank/world from every
 * launcher convention and its bad values; the TCP rendezvous among forked processes (the blob arrives
 * intact, a wrong world size or a duplicate rank is refused with a message, a missing rank 0 times out);
 * the file rendezvous (a stale file is refused); the liveness watch (a rank that dies without goodbye is
 * reported to rank 0 within a second, rank 0's death to the others, a clean goodbye to nobody); and the
 * --gpus launcher (environment, exit codes, one failing rank stops the rest). No GPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist.h"
#include "check.h"

static const char* const ENV_NAMES[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                        "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID",
                                        "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "MASTER_ADDR", "MASTER_PORT",
                                        "DIST_INIT_FILE"};
static void env_clear(void) {
    for (size_t i = 0; i < sizeof ENV_NAMES / sizeof ENV_NAMES[0]; i++) unsetenv(ENV_NAMES[i]);
}

static void test_env(void) {
    char err[256] = "";
    DistEnv e;
    env_clear();
    check(dist_env_read(&e, err, sizeof err) == 0 && e.rank == 0 && e.world == 1 && e.local_rank == -1, "env_none_single",
          "%d/%d %s", e.rank, e.world, err);
    setenv("RANK", "2", 1); setenv("WORLD_SIZE", "4", 1); setenv("LOCAL_RANK", "0", 1);
    check(dist_env_read(&e, err, sizeof err) == 0 && e.rank == 2 && e.world == 4 && e.local_rank == 0, "env_torchrun",
          "%d/%d/%d %s", e.rank, e.world, e.local_rank, err);
    env_clear();
    setenv("OMPI_COMM_WORLD_RANK", "1", 1); setenv("OMPI_COMM_WORLD_SIZE", "2", 1); setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    check(dist_env_read(&e, err, sizeof err) == 0 && e.rank == 1 && e.world == 2 && e.local_rank == 1 &&
          !strcmp(e.source, "Open MPI"), "env_openmpi", "%d/%d %s", e.rank, e.world, e.source);
    env_clear();
    setenv("SLURM_PROCID", "3", 1); setenv("SLURM_NTASKS", "8", 1);
    check(dist_env_read(&e, err, sizeof err) == 0 && e.rank == 3 && e.world == 8 && e.local_rank == -1, "env_slurm",
          "%d/%d", e.rank, e.world);
    env_clear();
    setenv("PMI_RANK", "0", 1); setenv("PMI_SIZE", "3", 1); setenv("MPI_LOCALRANKID", "0", 1);
    check(dist_env_read(&e, err, sizeof err) == 0 && e.world == 3 && !strcmp(e.source, "PMI"), "env_pmi", "%s", err);
    /* torchrun's variables win over a surrounding Slurm allocation */
    env_clear();
    setenv("SLURM_PROCID", "0", 1); setenv("SLURM_NTASKS", "16", 1); setenv("RANK", "1", 1); setenv("WORLD_SIZE", "2", 1);
    check(dist_env_read(&e, err, sizeof err) == 0 && e.world == 2 && e.rank == 1, "env_torchrun_first", "%d", e.world);
    struct { const char *k1, *v1, *k2, *v2, *want; } bad[] = {
        {"RANK", "1", NULL, NULL, "WORLD_SIZE is not"},
        {"WORLD_SIZE", "2", NULL, NULL, "RANK is not"},
        {"RANK", "2", "WORLD_SIZE", "2", "not below"},
        {"RANK", "x", "WORLD_SIZE", "2", "not an integer"},
        {"RANK", "-1", "WORLD_SIZE", "2", "not an integer"},
        {"RANK", "0", "WORLD_SIZE", "0", "not an integer"},
        {"RANK", "0", "WORLD_SIZE", "2 ", "not an integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env_clear();
        setenv(bad[i].k1, bad[i].v1, 1);
        if (bad[i].k2) setenv(bad[i].k2, bad[i].v2, 1);
        err[0] = 0;
        char name[64];
        snprintf(name, sizeof name, "env_bad_%zu", i);
        check(dist_env_read(&e, err, sizeof err) != 0 && strstr(err, bad[i].want), name, "message '%s'", err);
    }
    env_clear();
    setenv("RANK", "0", 1); setenv("WORLD_SIZE", "2", 1); setenv("LOCAL_RANK", "5", 1);
    check(dist_env_read(&e, err, sizeof err) != 0 && strstr(err, "LOCAL_RANK"), "env_bad_local_rank", "'%s'", err);
    env_clear();
}

/* ---------------------------------------------------------------- rendezvous */
static const char BLOB[] = "the unique id of a NCCL communicator, 128 bytes in real life";

/* child rank: join, compare the blob, then (mode) 0: say goodbye; 1: die without goodbye; 2: wait for the
 * watch to report rank 0's death and exit 42 from the callback */
static void lost_exit42(int me, int peer, const char* why) { (void)me; (void)peer; (void)why; _exit(42); }
static int child_rank(int rank, int world, int mode) {
    DistEnv e = {rank, world, rank, "test"};
    DistLink L;
    char blob[DIST_BLOB_MAX], err[256];
    uint32_t len = 0;
    if (dist_rendezvous(&e, blob, &len, 10.0, &L, err, sizeof err) != 0) { fprintf(stderr, "child: %s\n", err); return 2; }
    if (len != sizeof BLOB || memcmp(blob, BLOB, len)) return 3;
    if (mode == 1) _exit(1);
    if (mode == 2) {
        dist_watch_start(&L, lost_exit42);
        sleep(10);
        return 4;   /* the watch never fired */
    }
    dist_link_close(&L);
    return 0;
}
static pid_t spawn(int rank, int world, int mode) {
    pid_t p = fork();
    if (p == 0) _exit(child_rank(rank, world, mode));
    return p;
}
static int reap(pid_t p) {
    int st;
    if (waitpid(p, &st, 0) != p) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static volatile int g_lost_peer = -1;
static void lost_record(int me, int peer, const char* why) { (void)me; (void)why; g_lost_peer = peer; }

static void set_tcp(int port) {
    char b[16];
    snprintf(b, sizeof b, "%d", port);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", b, 1);
}

static void test_tcp(void) {
    char err[256] = "";
    DistLink L;
    DistEnv e0 = {0, 4, 0, "test"};
    uint32_t len = sizeof BLOB;
    char blob[DIST_BLOB_MAX];
    memcpy(blob, BLOB, sizeof BLOB);
    /* 1. four ranks, children started before rank 0 listens (they retry), all receive the blob, clean goodbyes */
    env_clear();
    set_tcp(dist_free_port());
    pid_t c[3];
    for (int r = 1; r < 4; r++) c[r - 1] = spawn(r, 4, 0);
    usleep(300000);
    int rc = dist_rendezvous(&e0, blob, &len, 10.0, &L, err, sizeof err);
    g_lost_peer = -1;
    if (rc == 0) dist_watch_start(&L, lost_record);
    int ok = rc == 0;
    for (int i = 0; i < 3; i++) ok &= reap(c[i]) == 0;
    usleep(300000);
    check(ok, "tcp_rendezvous_4_ranks", "%s", err);
    check(g_lost_peer == -1, "tcp_goodbye_is_not_a_loss", "peer %d reported lost", g_lost_peer);
    if (rc == 0) dist_link_close(&L);

    /* 2. a rank that dies without goodbye is reported to rank 0 */
    set_tcp(dist_free_port());
    DistEnv e2 = {0, 2, 0, "test"};
    pid_t d = spawn(1, 2, 1);
    rc = dist_rendezvous(&e2, blob, &len, 10.0, &L, err, sizeof err);
    g_lost_peer = -1;
    double t0 = dist_now_();
    if (rc == 0) dist_watch_start(&L, lost_record);
    reap(d);
    while (g_lost_peer < 0 && dist_now_() - t0 < 5.0) usleep(10000);
    check(rc == 0 && g_lost_peer == 1, "tcp_dead_rank_reported", "rc %d lost %d after %.2f s: %s", rc, g_lost_peer,
          dist_now_() - t0, err);
    if (rc == 0) dist_link_close(&L);

    /* 3. rank 0 dies without goodbye: the other rank's watch fires (its callback exits 42) */
    set_tcp(dist_free_port());
    pid_t w = spawn(1, 2, 2);
    rc = dist_rendezvous(&e2, blob, &len, 10.0, &L, err, sizeof err);
    if (rc == 0) {   /* close without goodbye, as a crash would */
        for (int i = 0; i < L.nfd; i++) if (L.fd[i] >= 0) close(L.fd[i]);
        free(L.fd); free(L.done);
    }
    t0 = dist_now_();
    int wrc = reap(w);
    check(rc == 0 && wrc == 42 && dist_now_() - t0 < 5.0, "tcp_rank0_death_reported", "rc %d child exit %d: %s", rc, wrc, err);

    /* 4. a rank started with another world size is refused, with the reason on its side */
    set_tcp(dist_free_port());
    pid_t m = fork();
    if (m == 0) {
        DistEnv e = {1, 3, 1, "test"};
        DistLink Lm;
        char b[DIST_BLOB_MAX], er[256] = "";
        uint32_t n = 0;
        int r = dist_rendezvous(&e, b, &n, 3.0, &Lm, er, sizeof er);
        _exit(r != 0 && strstr(er, "world size 2") ? 0 : 1);
    }
    rc = dist_rendezvous(&e2, blob, &len, 1.5, &L, err, sizeof err);   /* nobody valid comes: times out */
    check(reap(m) == 0, "tcp_world_mismatch_refused", "the joining rank did not report the mismatch");
    check(rc != 0 && strstr(err, "only 1 of 2"), "tcp_rank0_timeout_message", "'%s'", err);
    free(L.fd); free(L.done);

    /* 5. no rank 0: a joining rank gives up at its timeout with a message */
    set_tcp(dist_free_port());
    DistEnv e1 = {1, 2, 1, "test"};
    rc = dist_rendezvous(&e1, blob, &len, 0.5, &L, err, sizeof err);
    check(rc != 0 && strstr(err, "could not connect to rank 0"), "tcp_no_rank0_timeout", "'%s'", err);
    free(L.fd); free(L.done);

    /* 6. neither TCP nor file configured */
    env_clear();
    rc = dist_rendezvous(&e1, blob, &len, 0.5, &L, err, sizeof err);
    check(rc != 0 && strstr(err, "MASTER_ADDR"), "rendezvous_unconfigured", "'%s'", err);
    free(L.fd); free(L.done);
}

static void test_file(void) {
    char err[256] = "", path[256], blob[DIST_BLOB_MAX];
    snprintf(path, sizeof path, "%s/dist_id.%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    unlink(path);
    env_clear();
    setenv("DIST_INIT_FILE", path, 1);
    pid_t c = fork();
    if (c == 0) {
        DistEnv e = {1, 2, 1, "test"};
        DistLink L;
        char b[DIST_BLOB_MAX], er[256];
        uint32_t n = 0;
        int r = dist_rendezvous(&e, b, &n, 10.0, &L, er, sizeof er);
        _exit(r == 0 && n == sizeof BLOB && !memcmp(b, BLOB, n) ? 0 : 1);
    }
    usleep(200000);
    DistEnv e0 = {0, 2, 0, "test"};
    DistLink L;
    uint32_t len = sizeof BLOB;
    memcpy(blob, BLOB, sizeof BLOB);
    int rc = dist_rendezvous(&e0, blob, &len, 10.0, &L, err, sizeof err);
    check(rc == 0 && reap(c) == 0, "file_rendezvous", "%s", err);
    free(L.fd); free(L.done);
    rc = dist_rendezvous(&e0, blob, &len, 1.0, &L, err, sizeof err);   /* the file is still there */
    check(rc != 0 && strstr(err, "exists already"), "file_stale_refused", "'%s'", err);
    free(L.fd); free(L.done);
    unlink(path);
    env_clear();
}

static void test_launcher(void) {
    char* ok_argv[] = {(char*)"sh", (char*)"-c",
                       (char*)"[ \"$WORLD_SIZE\" = 3 ] && [ \"$RANK\" = \"$LOCAL_RANK\" ] && [ -n \"$MASTER_PORT\" ] && "
                              "[ \"$MASTER_ADDR\" = 127.0.0.1 ]", NULL};
    check(dist_launch_local(3, "/bin/sh", ok_argv, 2.0) == 0, "launcher_env_and_success", "");
    char* fail_argv[] = {(char*)"sh", (char*)"-c", (char*)"if [ \"$RANK\" = 1 ]; then sleep 0.2; exit 7; fi; sleep 30", NULL};
    double t0 = dist_now_();
    int rc = dist_launch_local(3, "/bin/sh", fail_argv, 2.0);
    double dt = dist_now_() - t0;
    check(rc == 7 && dt < 5.0, "launcher_one_failure_stops_all", "rc %d after %.1f s", rc, dt);
    /* a rank killed from outside, reaped after a peer that noticed and stopped first (exit 3): the launcher
     * names both (rank 1 ignores the launcher's SIGTERM so that it dies of its own SIGKILL after rank 0) */
    char* kill_argv[] = {(char*)"sh", (char*)"-c",
                         (char*)"case $RANK in 0) sleep 0.1; exit 3;; 1) trap '' TERM; sleep 0.5; kill -9 $$;; "
                                "*) exec sleep 30;; esac", NULL};
    char log[] = "/tmp/test_dist_launcher.XXXXXX";
    int lfd = mkstemp(log), saved = dup(2);
    fflush(stderr);
    dup2(lfd, 2);
    rc = dist_launch_local(3, "/bin/sh", kill_argv, 2.0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char text[2048] = {0};
    ssize_t got = pread(lfd, text, sizeof text - 1, 0);
    close(lfd);
    unlink(log);
    check(rc == 3 && got > 0 && strstr(text, "rank 0 exited with code 3") && strstr(text, "rank 1 was killed by signal 9"),
          "launcher_names_a_killed_rank_reaped_late", "rc %d, launcher said: %s", rc, text);
    env_clear();
    unsetenv("LOCAL_WORLD_SIZE");
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_env();
    test_tcp();
    test_file();
    test_launcher();
    return g_failures ? 1 : 0;
}
