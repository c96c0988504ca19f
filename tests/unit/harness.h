/* harness.h: a throwaway redis-server for unit tests, header-only.
 *
 * Owns the child process and its temporary folder: starts `redis-server`
 * bound to 127.0.0.1 on a free port with persistence off, waits until it
 * answers PING, and stops it (SIGTERM, waitpid, folder removed). Can kill -9
 * and restart it on the same port for reconnect tests. Never touches a
 * redis it did not start; the child dies with the test (PR_SET_PDEATHSIG).
 *
 * The binary is `redis-server` from PATH, or $TP_REDIS_SERVER. Also runs a
 * test's loop with a deadline (RUN_UNTIL, RUN_FOR). */
#ifndef TP_TEST_HARNESS_H
#define TP_TEST_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* A test's loop run with a deadline: the fixture `fx` has `uv_loop_t
 * loop; uv_timer_t watchdog; int expired;`, its watchdog initialised on the
 * loop with `watchdog.data = &fx->expired`. RUN_UNTIL runs the loop until
 * `cond` holds or `ms` pass (then `expired` is 1); RUN_FOR just runs it. */
static inline void tp_test_watchdog_fire(uv_timer_t *timer) { *(int *)timer->data = 1; }

#define RUN_UNTIL(fx, cond, ms)                                               \
    do {                                                                      \
        (fx)->expired = 0;                                                    \
        uv_timer_start(&(fx)->watchdog, tp_test_watchdog_fire, (ms), 0);      \
        while (!(cond) && !(fx)->expired) uv_run(&(fx)->loop, UV_RUN_ONCE);   \
        uv_timer_stop(&(fx)->watchdog);                                       \
    } while (0)
#define RUN_FOR(fx, ms) RUN_UNTIL(fx, 0, ms)

typedef struct {
    pid_t pid;      /* 0 when not running */
    int port;
    char dir[256];  /* temporary folder: redis.log lives here */
} tp_test_redis_t;

/* A port the kernel just handed out on 127.0.0.1, or -1. Racy by nature:
 * tp_test_redis_start retries with another one if redis cannot bind. */
static inline int tp_test_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

static inline void tp_test_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Reaps the child if it has exited. Returns 1 when it is gone. */
static inline int tp_test_redis_exited(tp_test_redis_t *r) {
    if (r->pid <= 0) return 1;
    int status;
    pid_t got = waitpid(r->pid, &status, WNOHANG);
    if (got == r->pid || (got < 0 && errno == ECHILD)) {
        r->pid = 0;
        return 1;
    }
    return 0;
}

/* Forks redis-server on r->port in r->dir and waits (up to 5 s) for PING.
 * Returns 0, or -1 with the child reaped. */
static inline int tp_test_redis_spawn(tp_test_redis_t *r) {
    char port[16], logfile[300];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(logfile, sizeof logfile, "%s/redis.log", r->dir);
    const char *bin = getenv("TP_REDIS_SERVER");
    if (!bin || !*bin) bin = "redis-server";
    pid_t parent = getpid();

    pid_t pid = fork();
    if (pid < 0) {
        perror("harness: fork");
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
            close(devnull);
        }
        /* Tests must not inherit SIGPIPE being ignored into redis. */
        signal(SIGPIPE, SIG_DFL);
        execlp(bin, bin, "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", r->dir, "--logfile", logfile,
               "--daemonize", "no", (char *)NULL);
        fprintf(stderr, "harness: exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    r->pid = pid;

    for (int i = 0; i < 500; i++) {
        if (tp_test_redis_exited(r)) return -1; /* port taken, or no binary */
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
        if (c && !c->err) {
            redisReply *reply = redisCommand(c, "PING");
            int ok = reply && reply->type == REDIS_REPLY_STATUS &&
                     strcmp(reply->str, "PONG") == 0;
            if (reply) freeReplyObject(reply);
            redisFree(c);
            if (ok) return 0;
        } else if (c) {
            redisFree(c);
        }
        tp_test_sleep_ms(10);
    }
    fprintf(stderr, "harness: redis on port %d never answered PING\n",
            r->port);
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
    return -1;
}

static inline void tp_test_redis_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[600];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Starts redis on `port` in a new temporary folder. Returns 0 or -1. */
static inline int tp_test_redis_start_port(tp_test_redis_t *r, int port) {
    memset(r, 0, sizeof *r);
    const char *tmp = getenv("TMPDIR");
    snprintf(r->dir, sizeof r->dir, "%s/tp-redis-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(r->dir)) {
        perror("harness: mkdtemp");
        r->dir[0] = '\0';
        return -1;
    }
    r->port = port;
    if (tp_test_redis_spawn(r) == 0) return 0;
    tp_test_redis_rmdir(r->dir);
    r->dir[0] = '\0';
    return -1;
}

/* Starts redis on a free port. Returns 0, or -1 after a few tries. */
static inline int tp_test_redis_start(tp_test_redis_t *r) {
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = tp_test_free_port();
        if (port > 0 && tp_test_redis_start_port(r, port) == 0) return 0;
    }
    fprintf(stderr, "harness: could not start redis-server\n");
    return -1;
}

/* kill -9, as a crash would: clients see the connection drop. */
static inline void tp_test_redis_kill(tp_test_redis_t *r) {
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

/* Starts it again on the same port and folder (after tp_test_redis_kill).
 * Retries for a while in case the port is briefly unavailable. */
static inline int tp_test_redis_respawn(tp_test_redis_t *r) {
    for (int attempt = 0; attempt < 20; attempt++) {
        if (tp_test_redis_spawn(r) == 0) return 0;
        tp_test_sleep_ms(50);
    }
    return -1;
}

/* kill -9, then start again on the same port. Returns 0 or -1. */
static inline int tp_test_redis_restart(tp_test_redis_t *r) {
    tp_test_redis_kill(r);
    return tp_test_redis_respawn(r);
}

/* SIGTERM, wait, remove the folder. Safe to call twice. */
static inline void tp_test_redis_stop(tp_test_redis_t *r) {
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        int waited = 0;
        while (!tp_test_redis_exited(r) && waited < 5000) {
            tp_test_sleep_ms(10);
            waited += 10;
        }
        if (r->pid > 0) tp_test_redis_kill(r);
    }
    if (r->dir[0]) {
        tp_test_redis_rmdir(r->dir);
        r->dir[0] = '\0';
    }
}

/* ---- a test's loop and its own Redis connection ---- */

/* A test's loop with its deadline watchdog (RUN_UNTIL, RUN_FOR):
 * `expired` is the fixture's flag. Returns 0, or -1 when the loop cannot
 * be made. */
static inline int tp_test_loop_init(uv_loop_t *loop, uv_timer_t *watchdog,
                                    int *expired) {
    if (uv_loop_init(loop) != 0) return -1;
    uv_timer_init(loop, watchdog);
    watchdog->data = expired;
    return 0;
}

/* A blocking connection to `r` for the test's own commands, with what an
 * earlier test left flushed; NULL when Redis cannot be reached. */
static inline redisContext *tp_test_redis_connect(const tp_test_redis_t *r) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    redisReply *flushed = c && !c->err ? redisCommand(c, "FLUSHALL") : NULL;
    if (!flushed) {
        if (c) redisFree(c);
        return NULL;
    }
    freeReplyObject(flushed);
    return c;
}

/* A command on the test's connection `c` (caller frees the reply); the
 * test stops when Redis does not answer. */
static inline redisReply *tp_test_vcmd(redisContext *c, const char *fmt,
                                       va_list ap) {
    redisReply *r = redisvCommand(c, fmt, ap);
    if (!r) {
        fprintf(stderr, "test: redis did not answer %s: %s\n", fmt, c->errstr);
        abort();
    }
    return r;
}

static inline redisReply *tp_test_cmd(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = tp_test_vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

/* The integer a command answers (or the number in a string it answers),
 * -1 for anything else. */
static inline long long tp_test_int(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = tp_test_vcmd(c, fmt, ap);
    va_end(ap);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                  : -1;
    freeReplyObject(r);
    return v;
}

#endif
