/* store.c: Redis through hiredis 0.14's async API on the service's libuv loop.
 *
 * Owns the links (one redisAsyncContext at a time each, the uv_poll_t that
 * watches its socket, the timer that paces its reconnects and bounds its
 * handshake), the registry of Lua scripts, the requests that carry a
 * caller's callback across hiredis and, in cluster mode, the slot map.
 * Must never block the loop (non-blocking connect, names resolved through
 * uv_getaddrinfo), never free memory libuv may still touch (handles are
 * freed only in their close callbacks; links live as long as the store),
 * never run a caller's callback twice, and never log the password.
 *
 * Single mode has one link, to host:port. Cluster mode has one link per
 * seed and per primary of the slot map (CLUSTER SLOTS, asked of any ready
 * link): a command goes to the primary of its key's slot, MOVED updates
 * that slot (and asks for a fresh map) and re-sends, ASK re-sends once to
 * the named node after ASKING, TRYAGAIN / CLUSTERDOWN / READONLY park the
 * request and retry it until its command timeout, then give NULL.
 *
 * Life of a link: link_start -> (resolve) -> link_connect -> link_opened ->
 * handshake (AUTH, SCRIPT LOAD each script, or PING) -> link_ready. Any
 * failure ends in link_failed (backoff, rate-limited log); a drop after
 * link_ready ends in link_closed (one log line, state callback).
 *
 * Whoever tears a link down on purpose (destroy, the handshake deadline,
 * the watchdog, a primary leaving the map) clears link->ac first, so
 * link_closed can tell hiredis' report of our own teardown from a real drop
 * by comparing pointers. */
#include "tp/store.h"

#include "tp/log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
/* Cluster: slots of the hash space, per the cluster specification. */
#define STORE_SLOTS 16384
/* Cluster: distinct node addresses one store may ever link to (seeds,
 * primaries, redirect targets); links are kept for the store's life. */
#define STORE_MAX_LINKS 64
/* Cluster: MOVED/ASK hops one command may take before its error is given. */
#define STORE_MAX_REDIRECTS 5
/* Cluster: pause before a parked command (TRYAGAIN, CLUSTERDOWN, no ready
 * primary for its slot yet) is routed again. */
#define STORE_RETRY_MS 50
/* Cluster: fewest ms between two CLUSTER SLOTS, and the pace of refreshes
 * while some slot has no ready primary. */
#define STORE_REFRESH_MS 250

typedef struct store_link store_link_t;

typedef struct store_script {
    tp_store_t *store;
    char *name;
    char *lua;
    size_t lua_len;
    char sha[41];      /* "" until a SCRIPT LOAD answered; SHA1 is stable */
    int read_only;     /* sent as EVALSHA_RO / EVAL_RO */
} store_script_t;

/* One SCRIPT LOAD on one link: the script and whether that link's
 * handshake waits on it. Freed in script_loaded. */
typedef struct store_load {
    store_link_t *link;
    store_script_t *script;
    int in_handshake;
} store_load_t;

/* Heap-allocated, embedded handle: freed only in poll_closed, never in the
 * cleanup hook, because libuv still owns the handle until then. */
typedef struct store_poll {
    uv_poll_t handle;      /* handle.data = this */
    tp_store_t *store;
    redisAsyncContext *ac; /* NULL once hiredis called cleanup */
    int events;            /* UV_READABLE | UV_WRITABLE wanted by hiredis */
} store_poll_t;

/* One connection to one Redis node, kept (with its timer) for the store's
 * life; ac->data points here. */
struct store_link {
    tp_store_t *store;
    char *host;
    int port;
    uv_timer_t timer;          /* reconnect backoff, then handshake deadline */
    uv_getaddrinfo_t resolver; /* only when host is not an address */
    int resolving;
    redisAsyncContext *ac;  /* current link or attempt; NULL between */
    int active;             /* wanted connected: reconnects while set */
    int ready;              /* handshake done on ac: callers may send */
    int handshake_pending;
    int handshake_failed;
    char reason[128];       /* why the handshake failed, for the log */
    unsigned attempts;      /* failed attempts since the last ready link */
    size_t owed;            /* replies owed on ac for our requests */
    uint64_t last_progress; /* loop time of the last reply, or of the
                               first command sent when none was owed */
    int seed;               /* cluster: from the configuration */
    int primary;            /* cluster: a primary in the slot map */
};

/* One caller's command in flight. For evals it also holds a copy of the
 * arguments so a NOSCRIPT reply can be answered by re-sending as EVAL; in
 * cluster mode a plain command holds its formatted bytes, for re-sending
 * after MOVED, ASK or TRYAGAIN. Freed once the caller was answered and no
 * hiredis callback for it is still to come. */
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
    char *cmd;              /* cluster, plain commands: RESP bytes */
    size_t cmd_len;
    int slot;               /* cluster: -1 for any primary */
    int redirects;          /* MOVED / ASK hops taken */
    store_link_t *ask;      /* ASK target for the next send, once */
    uint64_t deadline;      /* cluster: give NULL when parked past this */
    int parked;             /* on the store's parked list */
    struct store_request *next_parked;
    int wait;               /* a WAIT follows each send of this script */
    redisReply *held;       /* the script's reply, until WAIT answers */
    const redisAsyncContext *held_ac; /* the link it came on */
    int owed;               /* hiredis callbacks still to come */
    int delivered;          /* the caller's callback ran */
    uint64_t sent_ns;       /* uv_hrtime when made, for the reply hook
                               (redirects included) */
    tp_log_context_t *log_context; /* the sender's (an apply's event), or NULL */
} store_request_t;

struct tp_store {
    uv_loop_t *loop;
    uv_timer_t watchdog;         /* replies owed but none coming: drop link */
    uv_timer_t retry;            /* cluster: routes parked requests again */
    uv_timer_t refresh;          /* cluster: paces CLUSTER SLOTS */
    uint64_t command_timeout_ms;
    uint64_t watchdog_tick;      /* loop time the watchdog last looked */
    int resolving;               /* links' name lookups in libuv's pool */
    int open_handles;            /* timers + live polls; free at zero */
    int destroying;

    char *user;
    char *password;
    char *ns;
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;
    int wait_replicas;
    int wait_timeout_ms;
    unsigned wait_short;         /* WAITs that came back short, for the log */

    store_link_t **links;        /* links[0]: host:port */
    int nlinks;
    int next_any;                /* round robin for key-less commands */

    int cluster;
    store_link_t **slot_link;    /* cluster: the primary of each slot */
    store_link_t **slot_scratch; /* cluster: the map being read */
    int covered;                 /* cluster: every slot's primary ready, as
                                    of the last store_state_changed */
    int refresh_wanted;          /* a CLUSTER SLOTS is due */
    int refresh_inflight;
    uint64_t last_refresh;
    store_request_t *parked_head, *parked_tail;
    unsigned gave_up;            /* parked requests that timed out */
    unsigned map_failures;       /* CLUSTER SLOTS replies we could not read */

    int announced;          /* last state given to state_cb */
    size_t pending;         /* callers' callbacks still owed */

    tp_store_state_cb state_cb;
    void *state_arg;
    tp_store_reply_hook_cb reply_hook;
    void *reply_hook_arg;
    char label[48]; /* "store" or "store <name>", for log lines */

    store_script_t **scripts;
    int nscripts;
    int scripts_cap;
};

static void link_start(store_link_t *link);
static void refresh_request(tp_store_t *self);
static void store_state_changed(tp_store_t *self);

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
    for (int i = 0; i < self->nlinks; i++) {
        free(self->links[i]->host);
        free(self->links[i]);
    }
    free(self->links);
    free(self->slot_link);
    free(self->slot_scratch);
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
    if (self->destroying && self->open_handles == 0 && self->resolving == 0)
        store_free(self);
}

static void timer_closed(uv_handle_t *handle) {
    tp_store_t *self = handle->data;
    self->open_handles--;
    store_release_check(self);
}

static void link_timer_closed(uv_handle_t *handle) {
    store_link_t *link = handle->data;
    tp_store_t *self = link->store;
    self->open_handles--;
    store_release_check(self);
}

/* A deep copy of a reply, freed with freeReplyObject: a script's reply
 * waits for its WAIT, but hiredis frees replies when their callback
 * returns. */
static redisReply *reply_clone(const redisReply *r) {
    redisReply *c = store_alloc(sizeof *c);
    c->type = r->type;
    c->integer = r->integer;
    if (r->str) {
        c->str = store_alloc(r->len + 1);
        memcpy(c->str, r->str, r->len);
        c->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        c->element = store_alloc(r->elements * sizeof *c->element);
        c->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++)
            c->element[i] = reply_clone(r->element[i]);
    }
    return c;
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
 * Link state. User callbacks (state_cb, a failed request's callback) run
 * last in each function, so a callback that destroys the store finds
 * nothing left to do after it. */

static void store_announce(tp_store_t *self, int connected) {
    if (self->announced == connected) return;
    self->announced = connected;
    if (self->state_cb) self->state_cb(self, connected, self->state_arg);
}

/* The context commands may go to, or NULL while there is none, the
 * handshake is running, or hiredis is tearing it down. */
static redisAsyncContext *link_usable(const store_link_t *link) {
    if (!link || !link->ready || !link->ac) return NULL;
    if (link->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)) return NULL;
    return link->ac;
}

/* A reply (or NULL) came for something counted with link_owe. */
static void link_progress(store_link_t *link) {
    if (link->owed > 0) link->owed--;
    link->last_progress = uv_now(link->store->loop);
}

static void link_owe(store_link_t *link) {
    if (link->owed++ == 0) link->last_progress = uv_now(link->store->loop);
}

static void reconnect_fire(uv_timer_t *timer) {
    store_link_t *link = timer->data;
    link_start(link);
}

static void schedule_reconnect(store_link_t *link) {
    tp_store_t *self = link->store;
    if (self->destroying || !link->active) return;
    uint64_t delay = self->reconnect_min_ms;
    unsigned shift = link->attempts > 1 ? link->attempts - 1 : 0;
    if (shift > 20) shift = 20;
    delay <<= shift;
    if (delay > self->reconnect_max_ms) delay = self->reconnect_max_ms;
    uv_timer_start(&link->timer, reconnect_fire, delay, 0);
}

/* An attempt (resolve, connect or handshake) failed: count it, log the
 * first and every tenth, and try again later. */
static void link_failed(store_link_t *link, const char *stage,
                        const char *why) {
    link->attempts++;
    if (link->attempts == 1 || link->attempts % STORE_LOG_EVERY == 0)
        tp_log_warn("%s: %s to %s:%d failed (attempt %u, retrying): %s",
                    link->store->label, stage, link->host, link->port, link->attempts, why);
    schedule_reconnect(link);
    refresh_request(link->store);
}

static void link_ready(store_link_t *link) {
    tp_store_t *self = link->store;
    link->ready = 1;
    uv_timer_stop(&link->timer);
    if (link->attempts)
        tp_log_info("%s: connected to %s:%d after %u failed attempts",
                    self->label, link->host, link->port, link->attempts);
    else
        tp_log_info("%s: connected to %s:%d", self->label, link->host, link->port);
    link->attempts = 0;
    if (self->refresh_wanted) refresh_request(self);
    store_state_changed(self);
}

/* hiredis' disconnect callback: runs after the pending callbacks got NULL
 * and the poll was cleaned up, just before the context is freed. */
static void link_closed(const redisAsyncContext *cac, int status) {
    store_link_t *link = cac->data;
    tp_store_t *self = link->store;
    if (cac != link->ac) return; /* our own teardown; already handled */
    link->ac = NULL;
    if (link->ready) {
        link->ready = 0;
        tp_log_warn("%s: lost connection to %s:%d: %s", self->label, link->host,
                    link->port, cac->err ? cac->errstr : "closed");
        schedule_reconnect(link);
        refresh_request(self);
        store_state_changed(self);
    } else {
        link_failed(link, "handshake",
                    link->reason[0] ? link->reason
                    : cac->err      ? cac->errstr
                                    : "closed");
    }
}

/* Replies are owed on a link and none came for command_timeout: the server
 * hangs (stopped, overloaded, a network black hole). Free that link, which
 * fails every pending callback with NULL so callers can answer
 * "unavailable", and reconnect. */
static void watchdog_fire(uv_timer_t *timer) {
    tp_store_t *self = timer->data;
    uint64_t now = uv_now(self->loop), last_tick = self->watchdog_tick;
    self->watchdog_tick = now;
    /* The loop itself stalled (a long callback): replies may sit unread
     * in the socket. That is not the server's silence; start counting
     * from now. */
    int stalled = now - last_tick > 2 * uv_timer_get_repeat(timer);
    int dropped = 0;
    for (int i = 0; i < self->nlinks; i++) {
        store_link_t *link = self->links[i];
        redisAsyncContext *ac = link->ac;
        if (!ac || !link->ready || link->owed == 0) continue;
        if (stalled) {
            link->last_progress = now;
            continue;
        }
        if (now - link->last_progress < self->command_timeout_ms) continue;
        tp_log_warn("%s: no reply from %s:%d for %llu ms with %zu owed; "
                    "reconnecting", self->label, link->host, link->port,
                    (unsigned long long)self->command_timeout_ms, link->owed);
        link->ac = NULL;
        link->ready = 0;
        link->owed = 0;
        redisAsyncFree(ac); /* not inside a hiredis callback: fails them now */
        if (self->destroying) return; /* a callback destroyed the store */
        schedule_reconnect(link);
        dropped = 1;
    }
    if (dropped) {
        refresh_request(self);
        store_state_changed(self);
    }
}

/* The handshake took too long: free the link (its handshake callbacks get
 * NULL, link_closed sees a foreign pointer) and try again. */
static void handshake_expired(uv_timer_t *timer) {
    store_link_t *link = timer->data;
    redisAsyncContext *ac = link->ac;
    if (!ac || link->ready) return;
    link->ac = NULL;
    redisAsyncFree(ac); /* not inside a hiredis callback: frees now */
    link_failed(link, "handshake", "timed out");
}

/* One handshake reply (NULL when the link is going away, which link_closed
 * or the deadline already handles). The last one decides. */
static void handshake_step(store_link_t *link, redisAsyncContext *ac,
                           const redisReply *reply, const char *fail) {
    if (ac != link->ac) return; /* a context we already let go of */
    assert(link->handshake_pending > 0);
    link->handshake_pending--;
    if (!reply) return;
    if (fail && !link->handshake_failed) {
        link->handshake_failed = 1;
        snprintf(link->reason, sizeof link->reason, "%s", fail);
    }
    if (link->handshake_pending > 0) return;
    if (link->handshake_failed)
        redisAsyncDisconnect(ac); /* in a callback: hiredis defers it */
    else
        link_ready(link);
}

static void handshake_answered(redisAsyncContext *ac, void *r, void *privdata) {
    store_link_t *link = privdata;
    redisReply *reply = r;
    handshake_step(link, ac, reply,
                   reply && reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
}

static void script_loaded(redisAsyncContext *ac, void *r, void *privdata) {
    store_load_t *load = privdata;
    store_link_t *link = load->link;
    store_script_t *s = load->script;
    int in_handshake = load->in_handshake;
    redisReply *reply = r;
    const char *fail = NULL;

    free(load);
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
    if (in_handshake) handshake_step(link, ac, reply, fail);
}

static int script_load(store_link_t *link, redisAsyncContext *ac,
                       store_script_t *s, int in_handshake) {
    const char *argv[3] = {"SCRIPT", "LOAD", s->lua};
    size_t argvlen[3] = {6, 4, s->lua_len};
    store_load_t *load = store_alloc(sizeof *load);
    load->link = link;
    load->script = s;
    load->in_handshake = in_handshake;
    if (redisAsyncCommandArgv(ac, script_loaded, load, 3, argv, argvlen) !=
        REDIS_OK) {
        tp_log_error("store: SCRIPT LOAD %s: %s", s->name,
                     ac->err ? ac->errstr : "cannot queue");
        free(load);
        return -1;
    }
    return 0;
}

/* Queues AUTH, then SCRIPT LOAD for each script, or a PING when there is
 * neither, so that readiness always arrives inside a reply callback, where
 * a state callback may safely destroy the store. Pipelined: one round trip. */
static void handshake_begin(store_link_t *link) {
    tp_store_t *self = link->store;
    redisAsyncContext *ac = link->ac;
    link->handshake_pending = 0;
    link->handshake_failed = 0;
    link->reason[0] = '\0';
    link->owed = 0;

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
        if (redisAsyncCommandArgv(ac, handshake_answered, link, argc, argv,
                                  argvlen) == REDIS_OK)
            link->handshake_pending++;
        else
            link->handshake_failed = 1; /* the deadline cleans up */
    }
    for (int i = 0; i < self->nscripts; i++) {
        if (script_load(link, ac, self->scripts[i], 1) == 0)
            link->handshake_pending++;
        else
            link->handshake_failed = 1;
    }
    if (!self->password && self->nscripts == 0) {
        const char *argv[1] = {"PING"};
        size_t argvlen[1] = {4};
        if (redisAsyncCommandArgv(ac, handshake_answered, link, 1, argv,
                                  argvlen) == REDIS_OK)
            link->handshake_pending++;
        else
            link->handshake_failed = 1;
    }
}

/* hiredis' connect callback, on the first socket event. On failure hiredis
 * frees the context right after this returns (without link_closed). Calls
 * no user code: a destroy from here would free the context under hiredis. */
static void link_opened(const redisAsyncContext *cac, int status) {
    store_link_t *link = cac->data;
    if (cac != link->ac) return;
    if (status != REDIS_OK) {
        link->ac = NULL;
        link_failed(link, "connect", cac->errstr);
        return;
    }
    handshake_begin(link);
}

static void link_connect(store_link_t *link, const char *ip) {
    tp_store_t *self = link->store;
    redisAsyncContext *ac = redisAsyncConnect(ip, link->port);
    if (!ac) {
        tp_log_error("store: redisAsyncConnect: out of memory");
        abort();
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac); /* no hooks, no callbacks yet */
        link_failed(link, "connect", why);
        return;
    }
    if (poll_attach(self, ac) < 0) {
        redisAsyncFree(ac);
        link_failed(link, "connect", "uv_poll_init failed");
        return;
    }
    ac->data = link;
    reader_bound(ac->c.reader);
    link->ac = ac;
    redisAsyncSetDisconnectCallback(ac, link_closed);
    redisAsyncSetConnectCallback(ac, link_opened); /* arms the write hook */
    uv_timer_start(&link->timer, handshake_expired, STORE_HANDSHAKE_MS, 0);
}

static void host_resolved(uv_getaddrinfo_t *req, int status,
                          struct addrinfo *res) {
    store_link_t *link = req->data;
    tp_store_t *self = link->store;
    link->resolving = 0;
    self->resolving--;
    if (self->destroying || !link->active) {
        uv_freeaddrinfo(res);
        store_release_check(self);
        return;
    }
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        link_failed(link, "resolve", uv_strerror(status));
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
        link_failed(link, "resolve", uv_strerror(rc));
        return;
    }
    link_connect(link, ip);
}

/* Starts an attempt. hiredis would resolve a name with a blocking
 * getaddrinfo, so names go through libuv's thread pool first. */
static void link_start(store_link_t *link) {
    tp_store_t *self = link->store;
    if (self->destroying || !link->active || link->ac || link->resolving)
        return;
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, link->host, addr) == 1 ||
        inet_pton(AF_INET6, link->host, addr) == 1) {
        link_connect(link, link->host);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    link->resolver.data = link;
    int rc = uv_getaddrinfo(self->loop, &link->resolver, host_resolved,
                            link->host, NULL, &hints);
    if (rc < 0) {
        link_failed(link, "resolve", uv_strerror(rc));
        return;
    }
    link->resolving = 1;
    self->resolving++;
}

/* A new, idle link to host:port (not started), or NULL at the bound. */
static store_link_t *link_add(tp_store_t *self, const char *host, int port) {
    if (self->nlinks == STORE_MAX_LINKS) {
        tp_log_error("store: more than %d Redis nodes; not linking %s:%d",
                     STORE_MAX_LINKS, host, port);
        return NULL;
    }
    store_link_t *link = store_alloc(sizeof *link);
    link->store = self;
    link->host = store_strdup(host);
    link->port = port;
    if (uv_timer_init(self->loop, &link->timer) < 0) {
        tp_log_error("store: uv_timer_init failed");
        abort();
    }
    link->timer.data = link;
    self->open_handles++;
    if (!self->links)
        self->links = store_alloc(STORE_MAX_LINKS * sizeof *self->links);
    self->links[self->nlinks++] = link;
    return link;
}

static store_link_t *link_find(tp_store_t *self, const char *host,
                               size_t host_len, int port) {
    for (int i = 0; i < self->nlinks; i++) {
        store_link_t *link = self->links[i];
        if (link->port == port && strlen(link->host) == host_len &&
            memcmp(link->host, host, host_len) == 0)
            return link;
    }
    return NULL;
}

/* The link to host:port, made and started when new or idle. */
static store_link_t *link_get(tp_store_t *self, const char *host,
                              size_t host_len, int port) {
    store_link_t *link = link_find(self, host, host_len, port);
    if (!link) {
        char name[256];
        if (host_len >= sizeof name) return NULL;
        memcpy(name, host, host_len);
        name[host_len] = '\0';
        link = link_add(self, name, port);
        if (!link) return NULL;
    }
    if (!link->active) {
        link->active = 1;
        link->attempts = 0;
        link_start(link);
    }
    return link;
}

/* Cluster: the node left the map (a replica now, or gone). Replies owed on
 * it still arrive (a graceful disconnect); then it stays idle until a map
 * names it again. */
static void link_retire(store_link_t *link) {
    link->active = 0;
    uv_timer_stop(&link->timer);
    redisAsyncContext *ac = link->ac;
    link->ac = NULL;
    link->ready = 0;
    link->owed = 0;
    if (ac) redisAsyncDisconnect(ac);
}

/* ---------------------------------------------------------------------------
 * Cluster: slots, the map, routing. */

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the cluster's key
 * hash. Bitwise: keys are short. */
static uint16_t slot_crc16(const unsigned char *p, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                                 : (uint16_t)(crc << 1);
    }
    return crc;
}

int tp_store_slot(const char *key, size_t len) {
    assert(key || len == 0);
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - from);
        if (close && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - open - 1);
        }
    }
    return slot_crc16((const unsigned char *)key, len) & (STORE_SLOTS - 1);
}

/* Walks the arguments of a command in RESP, as redisFormatCommand makes
 * it. Returns 1 with the next argument, 0 at the end or on bad bytes. */
typedef struct resp_walk {
    const char *p, *end;
    long left;
} resp_walk_t;

static int resp_begin(resp_walk_t *w, const char *cmd, size_t len) {
    w->p = cmd;
    w->end = cmd + len;
    if (len < 4 || *w->p != '*') return -1;
    char *stop;
    w->left = strtol(w->p + 1, &stop, 10);
    if (stop + 2 > w->end || stop[0] != '\r' || w->left < 1) return -1;
    w->p = stop + 2;
    return (int)w->left;
}

static int resp_next(resp_walk_t *w, const char **arg, size_t *len) {
    if (w->left <= 0 || w->p >= w->end || *w->p != '$') return 0;
    char *stop;
    long n = strtol(w->p + 1, &stop, 10);
    if (n < 0 || stop + 2 > w->end || stop[0] != '\r') return 0;
    const char *data = stop + 2;
    if ((size_t)(w->end - data) < (size_t)n + 2) return 0;
    *arg = data;
    *len = (size_t)n;
    w->p = data + n + 2;
    w->left--;
    return 1;
}

static int word_is(const char *arg, size_t len, const char *word) {
    return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

/* Commands that name no key (or only a channel): any primary will do. */
static const char *const keyless_commands[] = {
    "PING", "INFO", "SCRIPT", "WAIT", "TIME", "CLIENT", "CLUSTER", "DBSIZE",
    "CONFIG", "COMMAND", "ACL", "ECHO", "HELLO", "AUTH", "SELECT",
    "FLUSHALL", "FLUSHDB", "LASTSAVE", "MULTI", "EXEC", "DISCARD",
    "PUBLISH", "FUNCTION", "SLOWLOG", "LATENCY", "READONLY", "READWRITE",
    "ASKING", "RANDOMKEY", "ROLE", "SAVE", "BGSAVE", "BGREWRITEAOF",
    "DEBUG", "MONITOR", "QUIT", "RESET", "SWAPDB", "LOLWUT", NULL};

/* The slot of a formatted command's key: argv[1] for ordinary commands,
 * the first key of EVAL / EVALSHA / FCALL (and their _RO forms), the
 * first stream after STREAMS for XREAD / XREADGROUP; -1 when it names no
 * key (or the bytes do not parse: any primary, which will say so). */
static int command_slot(const char *cmd, size_t len) {
    resp_walk_t w;
    const char *name, *arg;
    size_t name_len, arg_len;
    if (resp_begin(&w, cmd, len) < 0 || !resp_next(&w, &name, &name_len))
        return -1;
    for (int i = 0; keyless_commands[i]; i++)
        if (word_is(name, name_len, keyless_commands[i])) return -1;
    if (word_is(name, name_len, "EVAL") || word_is(name, name_len, "EVALSHA") ||
        word_is(name, name_len, "EVAL_RO") ||
        word_is(name, name_len, "EVALSHA_RO") ||
        word_is(name, name_len, "FCALL") || word_is(name, name_len, "FCALL_RO")) {
        char digits[24];
        if (!resp_next(&w, &arg, &arg_len) || !resp_next(&w, &arg, &arg_len) ||
            arg_len == 0 || arg_len >= sizeof digits)
            return -1;
        memcpy(digits, arg, arg_len);
        digits[arg_len] = '\0';
        if (atol(digits) <= 0 || !resp_next(&w, &arg, &arg_len)) return -1;
        return tp_store_slot(arg, arg_len);
    }
    if (word_is(name, name_len, "XREAD") ||
        word_is(name, name_len, "XREADGROUP")) {
        while (resp_next(&w, &arg, &arg_len))
            if (word_is(arg, arg_len, "STREAMS"))
                return resp_next(&w, &arg, &arg_len)
                           ? tp_store_slot(arg, arg_len)
                           : -1;
        return -1;
    }
    if (!resp_next(&w, &arg, &arg_len)) return -1;
    return tp_store_slot(arg, arg_len);
}

/* Where a command for `slot` goes: its primary, or (slot -1) the next
 * ready primary in turn. NULL when there is none. */
static store_link_t *route_link(tp_store_t *self, int slot) {
    if (!self->cluster) return self->links[0];
    if (slot >= 0) return self->slot_link[slot];
    for (int i = 0; i < self->nlinks; i++) {
        store_link_t *link = self->links[(self->next_any + i) % self->nlinks];
        if (link->primary && link_usable(link)) {
            self->next_any = (self->next_any + i + 1) % self->nlinks;
            return link;
        }
    }
    return NULL;
}

/* Cluster: every slot has a primary with a ready link. */
static int cluster_covered(const tp_store_t *self) {
    const store_link_t *last = NULL;
    for (int s = 0; s < STORE_SLOTS; s++) {
        const store_link_t *link = self->slot_link[s];
        if (link == last) continue;
        if (!link_usable(link)) return 0;
        last = link;
    }
    return last != NULL;
}

/* Every change of a link's readiness or of the map ends here: the
 * cluster's coverage is computed once per change, not per command. */
static void store_state_changed(tp_store_t *self) {
    if (self->destroying) return;
    if (self->cluster) self->covered = cluster_covered(self);
    store_announce(self, tp_store_connected(self));
}

/* Reads a CLUSTER SLOTS reply into the map: each range's primary gets an
 * active link, nodes that are no longer primaries (and no seeds) are let
 * go. Returns 0, or -1 (logged, map unchanged) on a malformed reply. */
static int cluster_apply(tp_store_t *self, store_link_t *from,
                         const redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY) {
        /* e.g. "ERR This instance has cluster support disabled": asked
         * again every STORE_REFRESH_MS, so logged the first and every
         * hundredth time */
        if (self->map_failures++ % 100 == 0)
            tp_log_warn("store: CLUSTER SLOTS from %s:%d (%u times): %s",
                        from->host, from->port, self->map_failures,
                        r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY ||
            e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[0]->integer < 0 ||
            e->element[1]->integer >= STORE_SLOTS ||
            e->element[0]->integer > e->element[1]->integer ||
            e->element[2]->element[1]->integer <= 0 ||
            e->element[2]->element[1]->integer > 65535) {
            if (self->map_failures++ % 100 == 0)
                tp_log_warn("store: CLUSTER SLOTS from %s:%d (%u times): "
                            "entry %zu malformed", from->host, from->port,
                            self->map_failures, i);
            return -1;
        }
    }
    memset(self->slot_scratch, 0, STORE_SLOTS * sizeof *self->slot_scratch);
    char in_map[STORE_MAX_LINKS] = {0};
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *node = e->element[2];
        /* An empty address: the node does not know its own; it is the one
         * we asked. */
        const char *host = node->element[0]->len ? node->element[0]->str
                                                 : from->host;
        size_t host_len = node->element[0]->len ? node->element[0]->len
                                                : strlen(from->host);
        store_link_t *link = link_get(self, host, host_len,
                                      (int)node->element[1]->integer);
        if (!link) continue;
        for (int k = 0; k < self->nlinks; k++)
            if (self->links[k] == link) in_map[k] = 1;
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer;
             s++)
            self->slot_scratch[s] = link;
    }
    for (int k = 0; k < self->nlinks; k++) {
        store_link_t *link = self->links[k];
        link->primary = in_map[k];
        if (!link->primary && !link->seed && link->active) {
            tp_log_info("store: %s:%d is no longer a primary", link->host,
                        link->port);
            link_retire(link);
        }
    }
    memcpy(self->slot_link, self->slot_scratch,
           STORE_SLOTS * sizeof *self->slot_link);
    return 0;
}

static void refresh_fire(uv_timer_t *timer);

static void refresh_later(tp_store_t *self, uint64_t ms) {
    if (self->destroying) return;
    uv_timer_start(&self->refresh, refresh_fire, ms, 0);
}

static void slots_answered(redisAsyncContext *ac, void *r, void *privdata) {
    tp_store_t *self = privdata;
    store_link_t *link = ac->data;
    redisReply *reply = r;
    link_progress(link);
    self->refresh_inflight = 0;
    if (self->destroying) return;
    if (!reply || cluster_apply(self, link, reply) < 0)
        self->refresh_wanted = 1;
    /* Asked for meanwhile, failed, or some slot still has no ready
     * primary (a failover in progress): ask again soon. */
    if (self->refresh_wanted || !cluster_covered(self))
        refresh_later(self, STORE_REFRESH_MS);
    store_state_changed(self);
}

/* Sends CLUSTER SLOTS to a ready link (seeds first), at most once per
 * STORE_REFRESH_MS. Without a ready link, the next link_ready asks. */
static void refresh_fire(uv_timer_t *timer) {
    tp_store_t *self = timer->data;
    if (self->destroying || self->refresh_inflight || !self->refresh_wanted)
        return;
    uint64_t now = uv_now(self->loop);
    if (self->last_refresh && now - self->last_refresh < STORE_REFRESH_MS) {
        refresh_later(self, STORE_REFRESH_MS - (now - self->last_refresh));
        return;
    }
    for (int i = 0; i < self->nlinks; i++) {
        store_link_t *link =
            self->links[(self->next_any + i) % self->nlinks];
        redisAsyncContext *ac = link_usable(link);
        if (!ac) continue;
        const char *argv[2] = {"CLUSTER", "SLOTS"};
        size_t argvlen[2] = {7, 5};
        if (redisAsyncCommandArgv(ac, slots_answered, self, 2, argv,
                                  argvlen) != REDIS_OK)
            continue;
        link_owe(link);
        self->refresh_inflight = 1;
        self->refresh_wanted = 0;
        self->last_refresh = now;
        self->next_any = (self->next_any + i + 1) % self->nlinks;
        return;
    }
}

/* Asks for a fresh slot map (soon, never from inside this call). */
static void refresh_request(tp_store_t *self) {
    if (!self->cluster || self->destroying) return;
    self->refresh_wanted = 1;
    if (!self->refresh_inflight && !uv_is_active((uv_handle_t *)&self->refresh))
        refresh_later(self, 0);
}

/* ---------------------------------------------------------------------------
 * Requests */

static int store_noscript(const redisReply *reply) {
    return reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
           memcmp(reply->str, "NOSCRIPT", 8) == 0;
}

static int error_is(const redisReply *reply, const char *prefix) {
    size_t n = strlen(prefix);
    return reply->type == REDIS_REPLY_ERROR && reply->len >= n &&
           memcmp(reply->str, prefix, n) == 0;
}

/* Every request ends here (answered, or never queued). */
static void request_free(store_request_t *req) {
    free(req->cmd);
    free(req->log_context);
    if (req->held) freeReplyObject(req->held);
    free(req);
}

/* Frees the request once nothing can reach it any more. */
static void request_release(store_request_t *req) {
    if (req->delivered && req->owed == 0 && !req->parked) request_free(req);
}

/* Runs the caller's callback, once. Last in every caller: it may destroy
 * the store. */
static void request_finish(store_request_t *req, redisReply *reply) {
    tp_store_t *self = req->store;
    tp_store_reply_cb cb = req->cb;
    void *arg = req->arg;
    /* the sender's log context holds while its callback runs; taken from
     * the request, which the release below may free */
    tp_log_context_t outer, *inner = req->log_context;
    req->log_context = NULL;
    if (self->reply_hook)
        self->reply_hook(self, (double)(uv_hrtime() - req->sent_ns) / 1e9,
                         reply && reply->type != REDIS_REPLY_ERROR, self->reply_hook_arg);
    assert(!req->delivered);
    req->delivered = 1;
    request_release(req);
    assert(self->pending > 0);
    self->pending--;
    tp_log_context_save(&outer);
    if (inner) tp_log_context_restore(inner);
    if (cb) cb(self, reply, arg);
    if (inner) {
        tp_log_context_restore(&outer);
        free(inner);
    }
}

static void request_answered(redisAsyncContext *ac, void *r, void *privdata);
static void wait_answered(redisAsyncContext *ac, void *r, void *privdata);

/* Queues the request on `ac` (link's context): ASKING first after an ASK,
 * WAIT after it for a writing script. Returns 0 or -1 (nothing queued). */
static int request_send(store_request_t *req, store_link_t *link,
                        redisAsyncContext *ac) {
    tp_store_t *self = req->store;
    if (req->ask) {
        const char *asking[1] = {"ASKING"};
        size_t asking_len[1] = {6};
        if (redisAsyncCommandArgv(ac, NULL, NULL, 1, asking, asking_len) !=
            REDIS_OK)
            return -1;
    }
    int rc = req->cmd ? redisAsyncFormattedCommand(ac, request_answered, req,
                                                   req->cmd, req->cmd_len)
                      : redisAsyncCommandArgv(ac, request_answered, req,
                                              req->argc, req->argv,
                                              req->argvlen);
    if (rc != REDIS_OK) return -1;
    link_owe(link);
    req->owed++;
    if (req->wait) {
        char n[16], ms[16];
        snprintf(n, sizeof n, "%d", self->wait_replicas);
        snprintf(ms, sizeof ms, "%d", self->wait_timeout_ms);
        const char *argv[3] = {"WAIT", n, ms};
        size_t argvlen[3] = {4, strlen(n), strlen(ms)};
        /* Fails only when the link is closing: the script's reply then
         * comes back NULL too. */
        if (redisAsyncCommandArgv(ac, wait_answered, req, 3, argv, argvlen) ==
            REDIS_OK) {
            link_owe(link);
            req->owed++;
        }
    }
    return 0;
}

static void retry_fire(uv_timer_t *timer);

/* Cluster: holds the request until retry_fire routes it again. */
static void request_park(store_request_t *req) {
    tp_store_t *self = req->store;
    req->parked = 1;
    req->next_parked = NULL;
    if (self->parked_tail)
        self->parked_tail->next_parked = req;
    else
        self->parked_head = req;
    self->parked_tail = req;
    if (!uv_is_active((uv_handle_t *)&self->retry))
        uv_timer_start(&self->retry, retry_fire, STORE_RETRY_MS, 0);
}

static store_request_t *request_unpark(tp_store_t *self) {
    store_request_t *req = self->parked_head;
    if (!req) return NULL;
    self->parked_head = req->next_parked;
    if (!self->parked_head) self->parked_tail = NULL;
    req->parked = 0;
    req->next_parked = NULL;
    return req;
}

/* Cluster: sends to the ASK target or the slot's primary when ready, else
 * parks. */
static void request_route(store_request_t *req) {
    tp_store_t *self = req->store;
    store_link_t *link = req->ask ? req->ask : route_link(self, req->slot);
    redisAsyncContext *ac = link_usable(link);
    if (ac && request_send(req, link, ac) == 0) return;
    request_park(req);
}

static void retry_fire(uv_timer_t *timer) {
    tp_store_t *self = timer->data;
    uint64_t now = uv_now(self->loop);
    size_t n = 0;
    for (store_request_t *r = self->parked_head; r; r = r->next_parked) n++;
    while (n-- > 0 && !self->destroying) {
        store_request_t *req = request_unpark(self);
        if (!req) break;
        if (now < req->deadline) {
            request_route(req); /* sends, or parks at the tail */
            continue;
        }
        self->gave_up++;
        if (self->gave_up == 1 || self->gave_up % 100 == 0)
            tp_log_warn("store: a command for slot %d found no ready primary "
                        "within %llu ms of retries (%u so far); answering "
                        "unavailable",
                        req->slot,
                        (unsigned long long)self->command_timeout_ms,
                        self->gave_up);
        request_finish(req, NULL); /* may destroy the store */
    }
}

/* Cluster: an error reply that redirects or asks to retry. Returns 1 when
 * the request was re-sent or parked (nothing for the caller yet), 0 when
 * the reply is the caller's. */
static int request_redirected(store_request_t *req, const redisReply *reply) {
    tp_store_t *self = req->store;
    int moved = error_is(reply, "MOVED "), ask = error_is(reply, "ASK ");
    req->ask = NULL;
    if (moved || ask) {
        /* "MOVED <slot> <host>:<port>" */
        const char *p = reply->str + (moved ? 6 : 4);
        char *stop;
        long slot = strtol(p, &stop, 10);
        const char *addr = stop + 1;
        const char *colon = NULL; /* the last one: IPv6 has more */
        for (const char *c = addr; c < reply->str + reply->len; c++)
            if (*c == ':') colon = c;
        if (*stop != ' ' || slot < 0 || slot >= STORE_SLOTS || !colon)
            return 0;
        long port = strtol(colon + 1, &stop, 10);
        if (port <= 0 || port > 65535 || ++req->redirects > STORE_MAX_REDIRECTS)
            return 0;
        store_link_t *link = link_get(self, addr, (size_t)(colon - addr),
                                      (int)port);
        if (!link) return 0;
        if (moved) {
            self->slot_link[slot] = link;
            link->primary = 1;
            refresh_request(self);
        } else {
            req->ask = link;
        }
        request_route(req);
        return 1;
    }
    if (error_is(reply, "TRYAGAIN") || error_is(reply, "CLUSTERDOWN") ||
        error_is(reply, "READONLY") || error_is(reply, "LOADING")) {
        /* A multi-key command mid-migration, a cluster without quorum, a
         * primary that became a replica, a node still loading: wait a bit,
         * and for the last three look at the map again. */
        if (!error_is(reply, "TRYAGAIN")) refresh_request(self);
        request_park(req);
        return 1;
    }
    return 0;
}

/* Every caller's command comes back here exactly once per send: with its
 * reply, or NULL when hiredis fails it on teardown. */
static void request_answered(redisAsyncContext *ac, void *r, void *privdata) {
    store_request_t *req = privdata;
    tp_store_t *self = req->store;
    redisReply *reply = r;

    link_progress(ac->data);
    req->owed--;
    if (req->delivered) { /* cannot happen: one send answered at a time */
        request_release(req);
        return;
    }
    if (reply && req->script && !req->retried && store_noscript(reply)) {
        /* The server lost the script (restart, SCRIPT FLUSH): send the body
         * once; EVAL also puts it back in the server's cache. */
        req->retried = 1;
        req->argv[0] = req->script->read_only ? "EVAL_RO" : "EVAL";
        req->argvlen[0] = strlen(req->argv[0]);
        req->argv[1] = req->script->lua;
        req->argvlen[1] = req->script->lua_len;
        if (request_send(req, ac->data, ac) == 0)
            return; /* still pending; the EVAL reply comes back here */
        tp_log_warn("store: re-sending script %s as EVAL: %s",
                    req->script->name, ac->err ? ac->errstr : "link closing");
        reply = NULL;
    }
    if (reply && self->cluster && reply->type == REDIS_REPLY_ERROR &&
        !self->destroying && request_redirected(req, reply))
        return;
    if (reply && req->wait && reply->type != REDIS_REPLY_ERROR) {
        /* Durable only once replicas have it: WAIT's answer decides. */
        req->held = reply_clone(reply);
        req->held_ac = ac;
        return;
    }
    request_finish(req, reply);
}

/* WAIT after a writing script: on the link the held reply came from, the
 * script's own WAIT (a WAIT after a send that was redirected or retried
 * comes first, or on another link, and is ignored). */
static void wait_answered(redisAsyncContext *ac, void *r, void *privdata) {
    store_request_t *req = privdata;
    tp_store_t *self = req->store;
    redisReply *reply = r;

    link_progress(ac->data);
    req->owed--;
    if (req->delivered || !req->held || req->held_ac != ac) {
        request_release(req);
        return;
    }
    redisReply *held = req->held;
    req->held = NULL;
    int durable = reply && reply->type == REDIS_REPLY_INTEGER &&
                  reply->integer >= self->wait_replicas;
    if (!durable) {
        self->wait_short++;
        if (self->wait_short == 1 || self->wait_short % 100 == 0)
            tp_log_warn("store: script %s: WAIT %d %d answered %s (%u so "
                        "far); answering unavailable",
                        req->script ? req->script->name : "?",
                        self->wait_replicas, self->wait_timeout_ms,
                        !reply ? "nothing (link lost)"
                        : reply->type == REDIS_REPLY_INTEGER ? "too few"
                                                              : "an error",
                        self->wait_short);
    }
    request_finish(req, durable ? held : NULL);
    freeReplyObject(held);
}

static store_request_t *request_new(tp_store_t *self, tp_store_reply_cb cb,
                                    void *arg, size_t extra) {
    store_request_t *req = store_alloc(sizeof *req + extra);
    req->store = self;
    req->cb = cb;
    req->arg = arg;
    req->slot = -1;
    req->sent_ns = uv_hrtime();
    tp_log_context_t now;
    if (tp_log_context_save(&now)) {
        req->log_context = store_alloc(sizeof now);
        *req->log_context = now;
    }
    return req;
}

/* Cluster: one caller's command sent to every primary (SCRIPT LOAD, SCRIPT
 * FLUSH: their meaning is "on this server"). The caller gets the first
 * reply once all answered: NULL if any link failed it, else the first error
 * reply if any, else the first reply. */
typedef struct store_fanout {
    tp_store_t *store;
    tp_store_reply_cb cb;
    void *arg;
    int owed;
    int lost;           /* some link failed it (NULL) */
    redisReply *answer; /* the first reply, or the first error reply */
} store_fanout_t;

static void fanout_answered(redisAsyncContext *ac, void *r, void *privdata) {
    store_fanout_t *fo = privdata;
    redisReply *reply = r;
    link_progress(ac->data);
    if (!reply)
        fo->lost = 1;
    else if (!fo->answer || (reply->type == REDIS_REPLY_ERROR &&
                             fo->answer->type != REDIS_REPLY_ERROR)) {
        if (fo->answer) freeReplyObject(fo->answer);
        fo->answer = reply_clone(reply);
    }
    if (--fo->owed > 0) return;
    tp_store_t *self = fo->store;
    tp_store_reply_cb cb = fo->cb;
    void *arg = fo->arg;
    redisReply *answer = fo->answer;
    int lost = fo->lost;
    free(fo);
    assert(self->pending > 0);
    self->pending--;
    if (cb) cb(self, lost ? NULL : answer, arg);
    if (answer) freeReplyObject(answer);
}

/* SCRIPT LOAD / SCRIPT FLUSH: the commands meant for every primary. */
static int command_everywhere(const char *cmd, size_t len) {
    resp_walk_t w;
    const char *name, *sub;
    size_t name_len, sub_len;
    return resp_begin(&w, cmd, len) >= 2 && resp_next(&w, &name, &name_len) &&
           word_is(name, name_len, "SCRIPT") && resp_next(&w, &sub, &sub_len) &&
           (word_is(sub, sub_len, "LOAD") || word_is(sub, sub_len, "FLUSH"));
}

static int cluster_fanout(tp_store_t *self, tp_store_reply_cb cb, void *arg,
                          char *cmd, size_t len) {
    store_fanout_t *fo = NULL;
    if (self->covered) {
        fo = store_alloc(sizeof *fo);
        fo->store = self;
        fo->cb = cb;
        fo->arg = arg;
        fo->owed = 1; /* held until every send is queued */
        for (int i = 0; i < self->nlinks; i++) {
            store_link_t *link = self->links[i];
            redisAsyncContext *ac = link_usable(link);
            if (!link->primary || !ac) continue;
            if (redisAsyncFormattedCommand(ac, fanout_answered, fo, cmd, len) !=
                REDIS_OK)
                continue;
            link_owe(link);
            fo->owed++;
        }
        fo->owed--;
    }
    free(cmd);
    if (!fo || fo->owed == 0) { /* nothing queued: no callback will come */
        free(fo);
        return -1;
    }
    self->pending++;
    return 0;
}

/* Cluster: sends formatted bytes (takes ownership of cmd) to the primary of
 * their key's slot. Returns 0, or -1 (cmd freed) when that primary is not
 * ready. */
static int cluster_submit(tp_store_t *self, tp_store_reply_cb cb, void *arg,
                          char *cmd, size_t len) {
    if (command_everywhere(cmd, len))
        return cluster_fanout(self, cb, arg, cmd, len);
    int slot = command_slot(cmd, len);
    store_link_t *link = route_link(self, slot);
    redisAsyncContext *ac = link_usable(link);
    if (!ac) {
        free(cmd);
        return -1;
    }
    store_request_t *req = request_new(self, cb, arg, 0);
    req->cmd = cmd;
    req->cmd_len = len;
    req->slot = slot;
    req->deadline = uv_now(self->loop) + self->command_timeout_ms;
    if (request_send(req, link, ac) < 0) {
        tp_log_error("store: command to %s:%d: cannot queue", link->host,
                     link->port);
        request_free(req);
        return -1;
    }
    self->pending++;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Public API */

/* Cluster: links for the seeds in "h:p,h:p". Returns 0, or -1 (logged,
 * naming [redis] nodes) on a malformed entry. */
static int seeds_add(tp_store_t *self, const char *nodes) {
    const char *p = nodes;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        size_t n = strcspn(p, ", ");
        const char *colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (p[i] == ':') colon = p + i;
        char *stop = NULL;
        long port = colon ? strtol(colon + 1, &stop, 10) : 0;
        if (!colon || colon == p || stop != p + n || port <= 0 ||
            port > 65535) {
            tp_log_error("store: [redis] nodes: \"%.*s\" is not host:port",
                         (int)n, p);
            return -1;
        }
        store_link_t *link = link_find(self, p, (size_t)(colon - p), (int)port);
        if (!link) {
            char host[256];
            size_t hn = (size_t)(colon - p);
            if (hn >= sizeof host) {
                tp_log_error("store: [redis] nodes: host name too long");
                return -1;
            }
            memcpy(host, p, hn);
            host[hn] = '\0';
            link = link_add(self, host, (int)port);
            if (!link) return -1;
        }
        link->seed = 1;
        p += n;
    }
    return 0;
}

static void store_timer(tp_store_t *self, uv_timer_t *timer) {
    int rc = uv_timer_init(self->loop, timer);
    if (rc < 0) {
        tp_log_error("store: uv_timer_init: %s", uv_strerror(rc));
        abort();
    }
    timer->data = self;
    self->open_handles++;
}

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
    if (opts->wait_replicas < 0 || opts->wait_timeout_ms < 0) {
        tp_log_error("store: wait_replicas and wait_timeout_ms must not be "
                     "negative");
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
    snprintf(self->label, sizeof self->label, "store%s%.40s", opts->name ? " " : "",
             opts->name ? opts->name : "");
    self->user = opts->user ? store_strdup(opts->user) : NULL;
    self->password = opts->password ? store_strdup(opts->password) : NULL;
    self->ns = store_strdup(opts->ns ? opts->ns : "tp:");
    self->reconnect_min_ms =
        (uint64_t)(opts->reconnect_min_ms > 0 ? opts->reconnect_min_ms : 100);
    self->reconnect_max_ms =
        (uint64_t)(opts->reconnect_max_ms > 0 ? opts->reconnect_max_ms : 5000);
    if (self->reconnect_max_ms < self->reconnect_min_ms)
        self->reconnect_max_ms = self->reconnect_min_ms;
    self->command_timeout_ms =
        (uint64_t)(opts->command_timeout_ms > 0 ? opts->command_timeout_ms : 3000);
    self->wait_replicas = opts->wait_replicas;
    self->wait_timeout_ms =
        opts->wait_timeout_ms > 0 ? opts->wait_timeout_ms : 1000;
    self->cluster = opts->cluster != 0;

    /* Seeds stay linked (and reconnecting) for the store's life, whatever
     * their role: the map can always be asked of them. */
    store_link_t *first = link_add(self, opts->host ? opts->host : "127.0.0.1",
                                   opts->port ? opts->port : 6379);
    first->seed = 1;
    if (self->cluster) {
        if (opts->nodes && seeds_add(self, opts->nodes) < 0) goto fail_seeds;
        self->slot_link = store_alloc(STORE_SLOTS * sizeof *self->slot_link);
        self->slot_scratch =
            store_alloc(STORE_SLOTS * sizeof *self->slot_scratch);
        self->refresh_wanted = 1;
    }
    store_timer(self, &self->watchdog);
    store_timer(self, &self->retry);
    store_timer(self, &self->refresh);
    uint64_t tick = self->command_timeout_ms / 4 ? self->command_timeout_ms / 4 : 1;
    uv_timer_start(&self->watchdog, watchdog_fire, tick, tick);

    for (int i = 0; i < self->nlinks; i++) {
        self->links[i]->active = 1;
        link_start(self->links[i]);
    }
    return self;

fail_seeds:
    /* Only the links' timers exist yet: close them, run the loop to free. */
    self->destroying = 1;
    for (int i = 0; i < self->nlinks; i++)
        uv_close((uv_handle_t *)&self->links[i]->timer, link_timer_closed);
    return NULL;
}

void tp_store_destroy(tp_store_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_store_t *self = *self_p;
    *self_p = NULL;

    self->destroying = 1;
    self->state_cb = NULL;
    self->reply_hook = NULL; /* its owner may go before the store's replies */
    uv_close((uv_handle_t *)&self->watchdog, timer_closed);
    uv_close((uv_handle_t *)&self->retry, timer_closed);
    uv_close((uv_handle_t *)&self->refresh, timer_closed);
    for (int i = 0; i < self->nlinks; i++) {
        store_link_t *link = self->links[i];
        link->ready = 0;
        link->active = 0;
        if (link->resolving) uv_cancel((uv_req_t *)&link->resolver);
        uv_timer_stop(&link->timer);
        uv_close((uv_handle_t *)&link->timer, link_timer_closed);
    }
    for (int i = 0; i < self->nlinks; i++) {
        store_link_t *link = self->links[i];
        redisAsyncContext *ac = link->ac;
        link->ac = NULL;
        /* Runs every pending callback with NULL, now, or (when called from
         * inside a reply callback) as soon as that callback returns. */
        if (ac) redisAsyncFree(ac);
    }
    store_request_t *req;
    while ((req = request_unpark(self)) != NULL) request_finish(req, NULL);
}

void tp_store_on_reply(tp_store_t *self, tp_store_reply_hook_cb cb, void *arg) {
    assert(self);
    self->reply_hook = cb;
    self->reply_hook_arg = arg;
}

void tp_store_on_state(tp_store_t *self, tp_store_state_cb cb, void *arg) {
    assert(self);
    self->state_cb = cb;
    self->state_arg = arg;
}

int tp_store_connected(const tp_store_t *self) {
    if (!self || self->destroying) return 0;
    if (!self->cluster) return link_usable(self->links[0]) != NULL;
    return self->covered;
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

    /* On every link: connected, load it now; mid-handshake, it joins the
     * handshake, so readiness still means every script is loaded.
     * Otherwise the next handshake loads it. Until the SHA is known, evals
     * go out as EVAL. */
    for (int i = 0; i < self->nlinks; i++) {
        store_link_t *link = self->links[i];
        redisAsyncContext *ac = link->ac;
        if (!ac || (ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
            continue;
        if (link->ready)
            script_load(link, ac, s, 0);
        else if (link->handshake_pending > 0 && script_load(link, ac, s, 1) == 0)
            link->handshake_pending++;
    }
    return self->nscripts++;
}

int tp_store_script_ro(tp_store_t *self, const char *name, const char *lua) {
    int i = tp_store_script(self, name, lua);
    if (i >= 0) self->scripts[i]->read_only = 1;
    return i;
}

int tp_store_command(tp_store_t *self, tp_store_reply_cb cb, void *arg,
                     const char *fmt, ...) {
    assert(self && fmt);
    va_list ap;
    if (self->cluster) {
        char *cmd = NULL;
        va_start(ap, fmt);
        int len = redisvFormatCommand(&cmd, fmt, ap);
        va_end(ap);
        if (len < 0) {
            tp_log_error("store: redisvFormatCommand(\"%s\"): bad format", fmt);
            return -1;
        }
        return cluster_submit(self, cb, arg, cmd, (size_t)len);
    }
    store_link_t *link = self->links[0];
    redisAsyncContext *ac = link_usable(link);
    if (!ac) return -1;
    store_request_t *req = request_new(self, cb, arg, 0);
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(ac, request_answered, req, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        tp_log_error("store: redisvAsyncCommand(\"%s\"): bad format", fmt);
        request_free(req);
        return -1;
    }
    link_owe(link);
    req->owed = 1;
    self->pending++;
    return 0;
}

int tp_store_command_argv(tp_store_t *self, tp_store_reply_cb cb, void *arg,
                          int argc, const char **argv, const size_t *argvlen) {
    assert(self && argc > 0 && argv);
    if (self->cluster) {
        char *cmd = NULL;
        int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
        if (len < 0) {
            tp_log_error("store: redisFormatCommandArgv: out of memory");
            abort();
        }
        return cluster_submit(self, cb, arg, cmd, (size_t)len);
    }
    store_link_t *link = self->links[0];
    redisAsyncContext *ac = link_usable(link);
    if (!ac) return -1;
    store_request_t *req = request_new(self, cb, arg, 0);
    if (redisAsyncCommandArgv(ac, request_answered, req, argc, argv,
                              argvlen) != REDIS_OK) {
        tp_log_error("store: redisAsyncCommandArgv(%.*s): cannot queue",
                     argvlen ? (int)argvlen[0] : (int)strlen(argv[0]),
                     argv[0]);
        request_free(req);
        return -1;
    }
    link_owe(link);
    req->owed = 1;
    self->pending++;
    return 0;
}

int tp_store_eval(tp_store_t *self, int script, tp_store_reply_cb cb,
                  void *arg, int nkeys, int argc, const char **argv,
                  const size_t *argvlen) {
    assert(self && script >= 0 && script < self->nscripts);
    assert(argc >= 0 && nkeys >= 0 && nkeys <= argc && (argc == 0 || argv));
    int slot = -1;
    if (self->cluster && nkeys > 0)
        slot = tp_store_slot(argv[0], argvlen ? argvlen[0] : strlen(argv[0]));
    store_link_t *link = route_link(self, slot);
    redisAsyncContext *ac = link_usable(link);
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
    req->slot = slot;
    req->deadline = uv_now(self->loop) + self->command_timeout_ms;
    req->wait = !s->read_only && self->wait_replicas > 0;
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
    if (request_send(req, link, ac) < 0) {
        tp_log_error("store: eval %s: cannot queue", s->name);
        request_free(req);
        return -1;
    }
    self->pending++;
    return 0;
}

uv_loop_t *tp_store_loop(const tp_store_t *self) { return self->loop; }

size_t tp_store_pending(const tp_store_t *self) {
    return self ? self->pending : 0;
}
