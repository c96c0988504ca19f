/* tp_loadclient.h: what the bench load generators (tp-loadgen,
 * tp-sched-load, tp-scoring-feed) share: clocks, a growing buffer, and a
 * small HTTP/1.1 client posting to intake on 127.0.0.1 (plain non-blocking
 * sockets, keep-alive, one request in flight per connection, driven by
 * tp_load_pump). Owns each connection's socket and buffers. A generator
 * must never be the bottleneck: bodies are written in place, no copies
 * beyond one memmove per request. Errors of the machine (socket, poll,
 * memory) end the process with status 2. */
#ifndef TP_LOADCLIENT_H
#define TP_LOADCLIENT_H

#include <stddef.h>

/* Monotonic seconds, wall-clock milliseconds, this process's CPU seconds. */
double tp_load_now_s(void);
long long tp_load_wall_ms(void);
double tp_load_cpu_s(void);
/* Prints "<program>: <what>: <errno's text>" and exits 2. */
void tp_load_die(const char *what);
/* Grows *buf (realloc) to at least `need` bytes. */
void tp_load_ensure(char **buf, size_t *cap, size_t need);

/* One connection. A generator keeps its own per-request fields beside it
 * (embed it first in its own struct). */
typedef struct tp_load_conn {
    int fd;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    int busy;   /* a request is out, its answer not yet in */
    int paused; /* busy, but not polled (a 503 to send again later) */
} tp_load_conn_t;

/* Connects to 127.0.0.1:port (TCP_NODELAY, non-blocking); the fd. */
int tp_load_connect(int port);
/* Drops the connection and opens a new one; the request in c->out goes
 * again from its start (the connection is busy again). */
void tp_load_reconnect(tp_load_conn_t *c, int port);
void tp_load_conn_free(tp_load_conn_t *c);

/* Where a request's body is written: room for `body_max` bytes after the
 * space its headers will take. Then tp_load_post. */
char *tp_load_body(tp_load_conn_t *c, size_t body_max);
/* Frames the `body_len` bytes written at tp_load_body as POST /v1/events
 * with "Authorization: Bearer <key>" and marks the connection busy. */
void tp_load_post(tp_load_conn_t *c, const char *key, size_t body_len);
/* How many ids the "duplicates" list of a 202 answer names. */
long tp_load_duplicates(const char *body, size_t len);

/* A finished exchange: `status` the answer's (body, len its body), -1 for
 * an answer that is not HTTP, or 0 when the connection closed or failed
 * before an answer (reconnect or give up). */
typedef void (*tp_load_done_cb)(tp_load_conn_t *c, int status, const char *body, size_t len,
                                void *arg);
/* Polls every busy, unpaused connection of `conns` (at most 256) up to
 * `timeout_s`, writes what is pending, reads what came, and calls `done`
 * for each exchange that ended (the connection is no longer busy when
 * `done` runs; it may start another request). */
void tp_load_pump(tp_load_conn_t *const *conns, int n, double timeout_s, tp_load_done_cb done,
                  void *arg);

#endif
