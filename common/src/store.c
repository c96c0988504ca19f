/* store.c: Redis through hiredis 0.14's async API on the service's libuv loop.
 *
 * Owns one redisAsyncContext at a time (the "link"), the uv_poll_t that
 * watches its socket, the timer that paces reconnects and bounds the
 * handshake, the registry of Lua scripts and the requests that carry a
 * caller's callback across hiredis. Must never block the loop (non-blocking
 * connect, names resolved through uv_getaddrinfo), never free memory libuv
 * may still touch (handles are freed only in their close callbacks), never
 * run a caller's callback twice, and never log the password.
 *
 * Life of a link: link_start -> (resolve) -> link_connect -> link_opened ->
 * handshake (AUTH, SCRIPT LOAD each script, or PING) -> link_ready. Any
 * failure ends in link_failed (backoff, rate-limited log); a drop after
 * link_ready ends in link_closed (one log line, state callback).
 *
 * Whoever tears a link down on purpose (destroy, the handshake deadline)
 * clears self->ac first, so link_closed can tell hiredis' report of our own
 * teardown from a real drop by comparing pointers. */
#include "tp/store.h"

#include "tp/log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest array a reply may announce. hiredis 0.14's reader has no
 * maxelements field (added in 1.0), so the bound is enforced by wrapping the
 * reader's createArray; a NULL from it is a reader error, which drops the
 * link like any protocol error. */
#define STORE_MAX_ELEMENTS (1 << 20)
/* Connect + AUTH + SCRIPT LOAD must finish within this, or the attempt is
 * abandoned: hiredis 0.14's async API has no timeouts of its own, and a
 * server that accepts but never answers would otherwise hold us forever. */
#define STORE_HANDSHAKE_MS 5000
/* While reconnecting, log the first failed attempt and then every tenth. */
#define STORE_LOG_EVERY 10

typedef struct store_script {
    tp_store_t *store;
    char *name;
    char *lua;
    size_t lua_len;
    char sha[41];      /* "" until a SCRIPT LOAD answered; SHA1 is stable */
    int in_handshake;  /* the current handshake waits on its SCRIPT LOAD */
    int read_only;     /* sent as EVALSHA_RO / EVAL_RO */
} store_script_t;

/* Heap-allocated, embedded handle: freed only in poll_closed, never in the
 * cleanup hook, because libuv still owns the handle until then. */
typedef struct store_poll {
    uv_poll_t handle;      /* handle.data = this */
    tp_store_t *store;
    redisAsyncContext *ac; /* NULL once hiredis called cleanup */
    int events;            /* UV_READABLE | UV_WRITABLE wanted by hiredis */
} store_poll_t;

/* One caller's command in flight. For evals it also holds a copy of the
 * arguments so a NOSCRIPT reply can be answered by re-sending as EVAL. */
typedef struct store_request {
    tp_store_t *store;
    tp_store_reply_cb cb;
    void *arg;
    store_script_t *script; /* NULL for plain commands */
    int retried;            /* EVAL already sent: never retry again */
    int argc;               /* EVALSHA sha nkeys args... */
    const char **argv;
    size_t *argvlen;
    char nkeys[16];
    uint64_t sent_ns;       /* uv_hrtime when sent, for the reply hook */
    tp_log_context_t *log_context; /* the sender's (an apply's event), or NULL */
} store_request_t;

struct tp_store {
    uv_loop_t *loop;
    uv_timer_t timer;            /* reconnect backoff, then handshake deadline */
    uv_timer_t watchdog;         /* replies owed but none coming: drop link */
    uint64_t command_timeout_ms;
    uint64_t watchdog_tick;      /* loop time the watchdog last looked */
    uint64_t last_progress;      /* loop time of the last reply, or of the
                                    first command sent when none was owed */
    uv_getaddrinfo_t resolver;   /* only when host is not an address */
    int resolving;
    int open_handles;            /* timer + live polls; free at zero */
    int destroying;

    char *host;
    char label[48]; /* "store" or "store <name>", for log lines */
    int port;
    char *user;
    char *password;
    char *ns;
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;

    redisAsyncContext *ac;  /* current link or attempt; NULL between */
    int ready;              /* handshake done on ac: callers may send */
    int announced;          /* last state given to state_cb */
    int handshake_pending;
    int handshake_failed;
    char reason[128];       /* why the handshake failed, for the log */
    unsigned attempts;      /* failed attempts since the last ready link */
    size_t pending;         /* callers' callbacks still owed */

    tp_store_state_cb state_cb;
    void *state_arg;
    tp_store_reply_hook_cb reply_hook;
    void *reply_hook_arg;

    store_script_t **scripts;
    int nscripts;
    int scripts_cap;
};

static void link_start(tp_store_t *self);

/* ---------------------------------------------------------------------------
 * Memory: out of memory aborts (the supervisor restarts the service). */

static void *store_alloc(size_t n) {
    void *p = calloc(1, n);
    if (!p) {
        tp_log_error("store: calloc(%zu): out of memory", n);
        abort();
    }
    return p;
}

static char *store_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = store_alloc(n);
    memcpy(p, s, n);
    return p;
}

static void store_free(tp_store_t *self) {
    for (int i = 0; i < self->nscripts; i++) {
        free(self->scripts[i]->name);
        free(self->scripts[i]->lua);
        free(self->scripts[i]);
    }
    free(self->scripts);
    free(self->host);
    free(self->user);
    if (self->password) {
        memset(self->password, 0, strlen(self->password));
        free(self->password);
    }
    free(self->ns);
    free(self);
}

/* The struct goes once destroy ran and libuv let go of every handle and
 * request that points at it. */
static void store_release_check(tp_store_t *self) {
    if (self->destroying && self->open_handles == 0 && !self->resolving)
        store_free(self);
}

static void timer_closed(uv_handle_t *handle) {
    tp_store_t *self = handle->data;
    self->open_handles--;
    store_release_check(self);
}

/* ---------------------------------------------------------------------------
 * Reader bound. The table is process-wide because the default functions it
 * wraps are; one loop thread per service, so no locking. */

static redisReplyObjectFunctions bounded_reply_fn;
static void *(*base_create_array)(const redisReadTask *, int);

static void *bounded_create_array(const redisReadTask *task, int elements) {
    if (elements < 0 || elements > STORE_MAX_ELEMENTS) {
        tp_log_error("store: reply announces %d elements, bound is %d; "
                     "dropping the connection", elements, STORE_MAX_ELEMENTS);
        return NULL; /* the reader fails; hiredis drops the link */
    }
    return base_create_array(task, elements);
}

static void reader_bound(redisReader *reader) {
    if (!base_create_array) {
        bounded_reply_fn = *reader->fn;
        base_create_array = reader->fn->createArray;
        bounded_reply_fn.createArray = bounded_create_array;
    }
    reader->fn = &bounded_reply_fn;
}

/* ---------------------------------------------------------------------------
 * hiredis event hooks on a uv_poll_t. Every hook is a no-op after cleanup. */

static void poll_ready(uv_poll_t *handle, int status, int events) {
    store_poll_t *p = handle->data;
    if (status < 0) {
        /* libuv stopped the handle; let hiredis meet the socket error on
         * whatever it was waiting for. Its handlers re-arm what they need. */
        events = p->events;
        p->events = 0;
    }
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
    /* The read may have dropped the link: cleanup then cleared p->ac. */
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void poll_update(store_poll_t *p, int events) {
    if (!p->ac || events == p->events) return;
    p->events = events;
    int rc = events ? uv_poll_start(&p->handle, events, poll_ready)
                    : uv_poll_stop(&p->handle);
    if (rc < 0) tp_log_error("store: uv_poll_start: %s", uv_strerror(rc));
}

static void poll_add_read(void *privdata) {
    store_poll_t *p = privdata;
    poll_update(p, p->events | UV_READABLE);
}

static void poll_del_read(void *privdata) {
    store_poll_t *p = privdata;
    poll_update(p, p->events & ~UV_READABLE);
}

static void poll_add_write(void *privdata) {
    store_poll_t *p = privdata;
    poll_update(p, p->events | UV_WRITABLE);
}

static void poll_del_write(void *privdata) {
    store_poll_t *p = privdata;
    poll_update(p, p->events & ~UV_WRITABLE);
}

static void poll_closed(uv_handle_t *handle) {
    store_poll_t *p = handle->data;
    tp_store_t *self = p->store;
    free(p);
    self->open_handles--;
    store_release_check(self);
}

/* hiredis is about to free the context and close the fd: stop watching now
 * (uv_close stops the poll before the fd goes), free later. */
static void poll_cleanup(void *privdata) {
    store_poll_t *p = privdata;
    p->ac = NULL;
    if (!uv_is_closing((uv_handle_t *)&p->handle))
        uv_close((uv_handle_t *)&p->handle, poll_closed);
}

/* Returns 0, or -1 (logged) when libuv refuses the fd. */
static int poll_attach(tp_store_t *self, redisAsyncContext *ac) {
    store_poll_t *p = store_alloc(sizeof *p);
    int rc = uv_poll_init(self->loop, &p->handle, ac->c.fd);
    if (rc < 0) {
        tp_log_error("store: uv_poll_init(fd %d): %s", ac->c.fd,
                     uv_strerror(rc));
        free(p);
        return -1;
    }
    p->handle.data = p;
    p->store = self;
    p->ac = ac;
    self->open_handles++;
    ac->ev.data = p;
    ac->ev.addRead = poll_add_read;
    ac->ev.delRead = poll_del_read;
    ac->ev.addWrite = poll_add_write;
    ac->ev.delWrite = poll_del_write;
    ac->ev.cleanup = poll_cleanup;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Link state. User callbacks (state_cb) run last in each function, so a
 * callback that destroys the store finds nothing left to do after it. */

static void store_announce(tp_store_t *self, int connected) {
    if (self->announced == connected) return;
    self->announced = connected;
    if (self->state_cb) self->state_cb(self, connected, self->state_arg);
}

static void reconnect_fire(uv_timer_t *timer) {
    tp_store_t *self = timer->data;
    link_start(self);
}

static void schedule_reconnect(tp_store_t *self) {
    if (self->destroying) return;
    uint64_t delay = self->reconnect_min_ms;
    unsigned shift = self->attempts > 1 ? self->attempts - 1 : 0;
    if (shift > 20) shift = 20;
    delay <<= shift;
    if (delay > self->reconnect_max_ms) delay = self->reconnect_max_ms;
    uv_timer_start(&self->timer, reconnect_fire, delay, 0);
}

/* An attempt (resolve, connect or handshake) failed: count it, log the
 * first and every tenth, and try again later. */
static void link_failed(tp_store_t *self, const char *stage, const char *why) {
    self->attempts++;
    if (self->attempts == 1 || self->attempts % STORE_LOG_EVERY == 0)
        tp_log_warn("%s: %s to %s:%d failed (attempt %u, retrying): %s",
                    self->label, stage, self->host, self->port, self->attempts, why);
    schedule_reconnect(self);
}

static void link_ready(tp_store_t *self) {
    self->ready = 1;
    uv_timer_stop(&self->timer);
    if (self->attempts)
        tp_log_info("%s: connected to %s:%d after %u failed attempts",
                    self->label, self->host, self->port, self->attempts);
    else
        tp_log_info("%s: connected to %s:%d", self->label, self->host, self->port);
    self->attempts = 0;
    store_announce(self, 1);
}

/* hiredis' disconnect callback: runs after the pending callbacks got NULL
 * and the poll was cleaned up, just before the context is freed. */
static void link_closed(const redisAsyncContext *cac, int status) {
    tp_store_t *self = cac->data;
    if (cac != self->ac) return; /* our own teardown; already handled */
    self->ac = NULL;
    if (self->ready) {
        self->ready = 0;
        tp_log_warn("%s: lost connection to %s:%d: %s", self->label, self->host,
                    self->port, cac->err ? cac->errstr : "closed");
        schedule_reconnect(self);
        store_announce(self, 0);
    } else {
        link_failed(self, "handshake",
                    self->reason[0] ? self->reason
                    : cac->err      ? cac->errstr
                                    : "closed");
    }
}

/* Replies are owed and none came for command_timeout: the server hangs
 * (stopped, overloaded, a network black hole). Free the link, which fails
 * every pending callback with NULL so callers can answer "unavailable",
 * and reconnect. */
static void watchdog_fire(uv_timer_t *timer) {
    tp_store_t *self = timer->data;
    redisAsyncContext *ac = self->ac;
    uint64_t now = uv_now(self->loop), last_tick = self->watchdog_tick;
    self->watchdog_tick = now;
    if (!ac || !self->ready || self->pending == 0) return;
    /* The loop itself stalled (a long callback): replies may sit unread
     * in the socket. That is not the server's silence; start counting
     * from now. */
    if (now - last_tick > 2 * uv_timer_get_repeat(timer)) {
        self->last_progress = now;
        return;
    }
    if (now - self->last_progress < self->command_timeout_ms)
        return;
    tp_log_warn("%s: no reply from %s:%d for %llu ms with %zu owed; "
                "reconnecting", self->label, self->host, self->port,
                (unsigned long long)self->command_timeout_ms, self->pending);
    self->ac = NULL;
    self->ready = 0;
    redisAsyncFree(ac); /* not inside a hiredis callback: fails them now */
    schedule_reconnect(self);
    store_announce(self, 0);
}

/* The handshake took too long: free the link (its handshake callbacks get
 * NULL, link_closed sees a foreign pointer) and try again. */
static void handshake_expired(uv_timer_t *timer) {
    tp_store_t *self = timer->data;
    redisAsyncContext *ac = self->ac;
    if (!ac || self->ready) return;
    self->ac = NULL;
    redisAsyncFree(ac); /* not inside a hiredis callback: frees now */
    link_failed(self, "handshake", "timed out");
}

/* One handshake reply (NULL when the link is going away, which link_closed
 * or the deadline already handles). The last one decides. */
static void handshake_step(tp_store_t *self, redisAsyncContext *ac,
                           const redisReply *reply, const char *fail) {
    assert(self->handshake_pending > 0);
    self->handshake_pending--;
    if (!reply) return;
    if (fail && !self->handshake_failed) {
        self->handshake_failed = 1;
        snprintf(self->reason, sizeof self->reason, "%s", fail);
    }
    if (self->handshake_pending > 0) return;
    if (self->handshake_failed)
        redisAsyncDisconnect(ac); /* in a callback: hiredis defers it */
    else
        link_ready(self);
}

static void handshake_answered(redisAsyncContext *ac, void *r, void *privdata) {
    tp_store_t *self = privdata;
    redisReply *reply = r;
    handshake_step(self, ac, reply,
                   reply && reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
}

static void script_loaded(redisAsyncContext *ac, void *r, void *privdata) {
    store_script_t *s = privdata;
    tp_store_t *self = s->store;
    redisReply *reply = r;
    int in_handshake = s->in_handshake;
    const char *fail = NULL;

    s->in_handshake = 0;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(s->sha, reply->str, 40);
        s->sha[40] = '\0';
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        /* "ERR ..." is the script's own fault (it does not compile): log it
         * and let evals report it. NOAUTH, NOPERM, LOADING and the like are
         * the link's fault: fail the handshake and retry. */
        if (in_handshake && strncmp(reply->str, "ERR", 3) != 0)
            fail = reply->str;
        else
            tp_log_error("store: SCRIPT LOAD %s: %s", s->name, reply->str);
    } else if (reply) {
        tp_log_error("store: SCRIPT LOAD %s: unexpected reply type %d",
                     s->name, reply->type);
    }
    if (in_handshake) handshake_step(self, ac, reply, fail);
}

static int script_load(tp_store_t *self, redisAsyncContext *ac,
                       store_script_t *s) {
    const char *argv[3] = {"SCRIPT", "LOAD", s->lua};
    size_t argvlen[3] = {6, 4, s->lua_len};
    if (redisAsyncCommandArgv(ac, script_loaded, s, 3, argv, argvlen) !=
        REDIS_OK) {
        tp_log_error("store: SCRIPT LOAD %s: %s", s->name,
                     ac->err ? ac->errstr : "cannot queue");
        return -1;
    }
    return 0;
}

/* Queues AUTH, then SCRIPT LOAD for each script, or a PING when there is
 * neither, so that readiness always arrives inside a reply callback, where
 * a state callback may safely destroy the store. Pipelined: one round trip. */
static void handshake_begin(tp_store_t *self) {
    redisAsyncContext *ac = self->ac;
    self->handshake_pending = 0;
    self->handshake_failed = 0;
    self->reason[0] = '\0';

    if (self->password) {
        const char *argv[3];
        size_t argvlen[3];
        int argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;
        if (self->user) {
            argv[argc] = self->user;
            argvlen[argc++] = strlen(self->user);
        }
        argv[argc] = self->password;
        argvlen[argc++] = strlen(self->password);
        if (redisAsyncCommandArgv(ac, handshake_answered, self, argc, argv,
                                  argvlen) == REDIS_OK)
            self->handshake_pending++;
        else
            self->handshake_failed = 1; /* the deadline cleans up */
    }
    for (int i = 0; i < self->nscripts; i++) {
        store_script_t *s = self->scripts[i];
        if (script_load(self, ac, s) == 0) {
            s->in_handshake = 1;
            self->handshake_pending++;
        } else {
            self->handshake_failed = 1;
        }
    }
    if (!self->password && self->nscripts == 0) {
        const char *argv[1] = {"PING"};
        size_t argvlen[1] = {4};
        if (redisAsyncCommandArgv(ac, handshake_answered, self, 1, argv,
                                  argvlen) == REDIS_OK)
            self->handshake_pending++;
        else
            self->handshake_failed = 1;
    }
}

/* hiredis' connect callback, on the first socket event. On failure hiredis
 * frees the context right after this returns (without link_closed). Calls
 * no user code: a destroy from here would free the context under hiredis. */
static void link_opened(const redisAsyncContext *cac, int status) {
    tp_store_t *self = cac->data;
    if (cac != self->ac) return;
    if (status != REDIS_OK) {
        self->ac = NULL;
        link_failed(self, "connect", cac->errstr);
        return;
    }
    handshake_begin(self);
}

static void link_connect(tp_store_t *self, const char *ip) {
    redisAsyncContext *ac = redisAsyncConnect(ip, self->port);
    if (!ac) {
        tp_log_error("store: redisAsyncConnect: out of memory");
        abort();
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac); /* no hooks, no callbacks yet */
        link_failed(self, "connect", why);
        return;
    }
    if (poll_attach(self, ac) < 0) {
        redisAsyncFree(ac);
        link_failed(self, "connect", "uv_poll_init failed");
        return;
    }
    ac->data = self;
    reader_bound(ac->c.reader);
    self->ac = ac;
    redisAsyncSetDisconnectCallback(ac, link_closed);
    redisAsyncSetConnectCallback(ac, link_opened); /* arms the write hook */
    uv_timer_start(&self->timer, handshake_expired, STORE_HANDSHAKE_MS, 0);
}

static void host_resolved(uv_getaddrinfo_t *req, int status,
                          struct addrinfo *res) {
    tp_store_t *self = req->data;
    self->resolving = 0;
    if (self->destroying) {
        uv_freeaddrinfo(res);
        store_release_check(self);
        return;
    }
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        link_failed(self, "resolve", uv_strerror(status));
        return;
    }
    /* IPv4 first, as hiredis itself prefers. */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    char ip[INET6_ADDRSTRLEN] = "";
    int rc = pick->ai_family == AF_INET6
                 ? uv_ip6_name((const struct sockaddr_in6 *)pick->ai_addr, ip,
                               sizeof ip)
                 : uv_ip4_name((const struct sockaddr_in *)pick->ai_addr, ip,
                               sizeof ip);
    uv_freeaddrinfo(res);
    if (rc < 0) {
        link_failed(self, "resolve", uv_strerror(rc));
        return;
    }
    link_connect(self, ip);
}

/* Starts an attempt. hiredis would resolve a name with a blocking
 * getaddrinfo, so names go through libuv's thread pool first. */
static void link_start(tp_store_t *self) {
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, self->host, addr) == 1 ||
        inet_pton(AF_INET6, self->host, addr) == 1) {
        link_connect(self, self->host);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    self->resolver.data = self;
    int rc = uv_getaddrinfo(self->loop, &self->resolver, host_resolved,
                            self->host, NULL, &hints);
    if (rc < 0) {
        link_failed(self, "resolve", uv_strerror(rc));
        return;
    }
    self->resolving = 1;
}

/* The context commands may go to, or NULL while there is none, the
 * handshake is running, or hiredis is tearing it down. */
static redisAsyncContext *link_usable(const tp_store_t *self) {
    if (!self->ready || !self->ac) return NULL;
    if (self->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) return NULL;
    return self->ac;
}

/* ---------------------------------------------------------------------------
 * Public API */

tp_store_t *tp_store_new(uv_loop_t *loop, const tp_store_options_t *opts) {
    assert(loop);
    tp_store_options_t none;
    if (!opts) {
        memset(&none, 0, sizeof none);
        opts = &none;
    }
    if (opts->port < 0 || opts->port > 65535) {
        tp_log_error("store: port %d out of range", opts->port);
        return NULL;
    }

    /* hiredis 0.14 writes with write(2): a dead server would kill the
     * process with SIGPIPE. Ignore it unless the service chose otherwise. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);

    tp_store_t *self = store_alloc(sizeof *self);
    self->loop = loop;
    self->host = store_strdup(opts->host ? opts->host : "127.0.0.1");
    snprintf(self->label, sizeof self->label, "store%s%.40s", opts->name ? " " : "",
             opts->name ? opts->name : "");
    self->port = opts->port ? opts->port : 6379;
    self->user = opts->user ? store_strdup(opts->user) : NULL;
    self->password = opts->password ? store_strdup(opts->password) : NULL;
    self->ns = store_strdup(opts->ns ? opts->ns : "tp:");
    self->reconnect_min_ms =
        (uint64_t)(opts->reconnect_min_ms > 0 ? opts->reconnect_min_ms : 100);
    self->reconnect_max_ms =
        (uint64_t)(opts->reconnect_max_ms > 0 ? opts->reconnect_max_ms : 5000);
    if (self->reconnect_max_ms < self->reconnect_min_ms)
        self->reconnect_max_ms = self->reconnect_min_ms;

    int rc = uv_timer_init(loop, &self->timer);
    if (rc < 0) {
        tp_log_error("store: uv_timer_init: %s", uv_strerror(rc));
        goto fail_timer;
    }
    self->timer.data = self;
    self->open_handles = 1;
    self->command_timeout_ms =
        (uint64_t)(opts->command_timeout_ms > 0 ? opts->command_timeout_ms : 3000);
    uv_timer_init(loop, &self->watchdog);
    self->watchdog.data = self;
    self->open_handles++;
    uint64_t tick = self->command_timeout_ms / 4 ? self->command_timeout_ms / 4 : 1;
    uv_timer_start(&self->watchdog, watchdog_fire, tick, tick);

    link_start(self);
    return self;

fail_timer:
    store_free(self);
    return NULL;
}

void tp_store_destroy(tp_store_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_store_t *self = *self_p;
    *self_p = NULL;

    self->destroying = 1;
    self->ready = 0;
    self->state_cb = NULL;
    self->reply_hook = NULL; /* its owner may go before the store's replies */
    if (self->resolving) uv_cancel((uv_req_t *)&self->resolver);
    uv_timer_stop(&self->timer);
    uv_close((uv_handle_t *)&self->timer, timer_closed);
    uv_close((uv_handle_t *)&self->watchdog, timer_closed);

    redisAsyncContext *ac = self->ac;
    self->ac = NULL;
    /* Runs every pending callback with NULL, now, or (when called from
     * inside a reply callback) as soon as that callback returns. */
    if (ac) redisAsyncFree(ac);
}

void tp_store_on_state(tp_store_t *self, tp_store_state_cb cb, void *arg) {
    assert(self);
    self->state_cb = cb;
    self->state_arg = arg;
}

void tp_store_on_reply(tp_store_t *self, tp_store_reply_hook_cb cb, void *arg) {
    assert(self);
    self->reply_hook = cb;
    self->reply_hook_arg = arg;
}

int tp_store_connected(const tp_store_t *self) {
    return self && link_usable(self) != NULL;
}

const char *tp_store_ns(const tp_store_t *self) {
    assert(self);
    return self->ns;
}

int tp_store_script(tp_store_t *self, const char *name, const char *lua) {
    assert(self && name && lua);
    for (int i = 0; i < self->nscripts; i++) {
        if (strcmp(self->scripts[i]->name, name) != 0) continue;
        if (strcmp(self->scripts[i]->lua, lua) == 0) return i;
        tp_log_error("store: script %s registered twice with different bodies",
                     name);
        return -1;
    }
    if (self->nscripts == self->scripts_cap) {
        int cap = self->scripts_cap ? self->scripts_cap * 2 : 8;
        store_script_t **grown =
            realloc(self->scripts, (size_t)cap * sizeof *grown);
        if (!grown) {
            tp_log_error("store: realloc: out of memory");
            abort();
        }
        self->scripts = grown;
        self->scripts_cap = cap;
    }
    store_script_t *s = store_alloc(sizeof *s);
    s->store = self;
    s->name = store_strdup(name);
    s->lua = store_strdup(lua);
    s->lua_len = strlen(lua);
    self->scripts[self->nscripts] = s;

    /* Connected: load it now. Mid-handshake: it joins the handshake, so
     * readiness still means every script is loaded. Otherwise the next
     * handshake loads it. Until the SHA is known, evals go out as EVAL. */
    redisAsyncContext *ac = self->ac;
    if (ac && !(ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) {
        if (self->ready) {
            script_load(self, ac, s);
        } else if (self->handshake_pending > 0 && script_load(self, ac, s) == 0) {
            s->in_handshake = 1;
            self->handshake_pending++;
        }
    }
    return self->nscripts++;
}

int tp_store_script_ro(tp_store_t *self, const char *name, const char *lua) {
    int i = tp_store_script(self, name, lua);
    if (i >= 0) self->scripts[i]->read_only = 1;
    return i;
}

static int store_noscript(const redisReply *reply) {
    return reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
           memcmp(reply->str, "NOSCRIPT", 8) == 0;
}

/* Every caller's command comes back here exactly once: with its reply, or
 * NULL when hiredis fails it on teardown. */
static void request_answered(redisAsyncContext *ac, void *r, void *privdata) {
    store_request_t *req = privdata;
    tp_store_t *self = req->store;
    redisReply *reply = r;

    if (reply && req->script && !req->retried && store_noscript(reply)) {
        /* The server lost the script (restart, SCRIPT FLUSH): send the body
         * once; EVAL also puts it back in the server's cache. */
        req->retried = 1;
        req->argv[0] = req->script->read_only ? "EVAL_RO" : "EVAL";
        req->argvlen[0] = strlen(req->argv[0]);
        req->argv[1] = req->script->lua;
        req->argvlen[1] = req->script->lua_len;
        if (redisAsyncCommandArgv(ac, request_answered, req, req->argc,
                                  req->argv, req->argvlen) == REDIS_OK)
            return; /* still pending; the EVAL reply comes back here */
        tp_log_warn("store: re-sending script %s as EVAL: %s",
                    req->script->name, ac->err ? ac->errstr : "link closing");
        reply = NULL;
    }

    tp_store_reply_cb cb = req->cb;
    void *arg = req->arg;
    /* the sender's log context holds while its callback runs */
    tp_log_context_t outer, *inner = req->log_context;
    tp_log_context_save(&outer);
    if (inner) tp_log_context_restore(inner);
    if (self->reply_hook)
        self->reply_hook(self, (double)(uv_hrtime() - req->sent_ns) / 1e9,
                         reply && reply->type != REDIS_REPLY_ERROR, self->reply_hook_arg);
    free(req);
    self->last_progress = uv_now(self->loop);
    assert(self->pending > 0);
    self->pending--;
    if (cb) cb(self, reply, arg);
    if (inner) {
        tp_log_context_restore(&outer);
        free(inner);
    }
}

static store_request_t *request_new(tp_store_t *self, tp_store_reply_cb cb,
                                    void *arg, size_t extra) {
    store_request_t *req = store_alloc(sizeof *req + extra);
    req->store = self;
    req->cb = cb;
    req->arg = arg;
    req->sent_ns = uv_hrtime();
    tp_log_context_t now;
    if (tp_log_context_save(&now)) {
        req->log_context = store_alloc(sizeof now);
        *req->log_context = now;
    }
    return req;
}

int tp_store_command(tp_store_t *self, tp_store_reply_cb cb, void *arg,
                     const char *fmt, ...) {
    assert(self && fmt);
    redisAsyncContext *ac = link_usable(self);
    if (!ac) return -1;
    store_request_t *req = request_new(self, cb, arg, 0);
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(ac, request_answered, req, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        tp_log_error("store: redisvAsyncCommand(\"%s\"): bad format", fmt);
        free(req->log_context);
        free(req);
        return -1;
    }
    if (self->pending++ == 0) self->last_progress = uv_now(self->loop);
    return 0;
}

int tp_store_command_argv(tp_store_t *self, tp_store_reply_cb cb, void *arg,
                          int argc, const char **argv, const size_t *argvlen) {
    assert(self && argc > 0 && argv);
    redisAsyncContext *ac = link_usable(self);
    if (!ac) return -1;
    store_request_t *req = request_new(self, cb, arg, 0);
    if (redisAsyncCommandArgv(ac, request_answered, req, argc, argv,
                              argvlen) != REDIS_OK) {
        tp_log_error("store: redisAsyncCommandArgv(%.*s): cannot queue",
                     argvlen ? (int)argvlen[0] : (int)strlen(argv[0]),
                     argv[0]);
        free(req->log_context);
        free(req);
        return -1;
    }
    if (self->pending++ == 0) self->last_progress = uv_now(self->loop);
    return 0;
}

int tp_store_eval(tp_store_t *self, int script, tp_store_reply_cb cb,
                  void *arg, int nkeys, int argc, const char **argv,
                  const size_t *argvlen) {
    assert(self && script >= 0 && script < self->nscripts);
    assert(argc >= 0 && nkeys >= 0 && nkeys <= argc && (argc == 0 || argv));
    redisAsyncContext *ac = link_usable(self);
    if (!ac) return -1;
    store_script_t *s = self->scripts[script];

    /* One block: the request, argv[argc + 3], argvlen[argc + 3], the bytes.
     * Kept until the reply so NOSCRIPT can be answered with EVAL. */
    size_t n = (size_t)argc + 3, bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += argvlen ? argvlen[i] : strlen(argv[i]);
    store_request_t *req = request_new(
        self, cb, arg, n * (sizeof(char *) + sizeof(size_t)) + bytes);
    req->script = s;
    req->argc = (int)n;
    req->argv = (const char **)(req + 1);
    req->argvlen = (size_t *)(req->argv + n);
    char *copy = (char *)(req->argvlen + n);
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        memcpy(copy, argv[i], len);
        req->argv[3 + i] = copy;
        req->argvlen[3 + i] = len;
        copy += len;
    }
    snprintf(req->nkeys, sizeof req->nkeys, "%d", nkeys);
    req->argv[2] = req->nkeys;
    req->argvlen[2] = strlen(req->nkeys);
    if (s->sha[0]) {
        req->argv[0] = s->read_only ? "EVALSHA_RO" : "EVALSHA";
        req->argvlen[0] = strlen(req->argv[0]);
        req->argv[1] = s->sha;
        req->argvlen[1] = 40;
    } else { /* not loaded yet (registered mid-handshake, or bad script) */
        req->retried = 1;
        req->argv[0] = s->read_only ? "EVAL_RO" : "EVAL";
        req->argvlen[0] = strlen(req->argv[0]);
        req->argv[1] = s->lua;
        req->argvlen[1] = s->lua_len;
    }
    if (redisAsyncCommandArgv(ac, request_answered, req, req->argc, req->argv,
                              req->argvlen) != REDIS_OK) {
        tp_log_error("store: eval %s: cannot queue", s->name);
        free(req->log_context);
        free(req);
        return -1;
    }
    if (self->pending++ == 0) self->last_progress = uv_now(self->loop);
    return 0;
}

size_t tp_store_pending(const tp_store_t *self) {
    return self ? self->pending : 0;
}
