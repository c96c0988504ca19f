/* store.h: Redis through hiredis' async API, attached to a libuv loop.
 *
 * Owns the connection, its reconnection with backoff, and the Lua scripts
 * registered with it (loaded on every connect, called by SHA, re-sent as
 * EVAL on NOSCRIPT). hiredis 0.14's own libuv adapter frees its poll handle
 * while libuv may still use it; this module attaches through hiredis' event
 * hooks itself and frees only in the close callback. The reader's
 * maxelements is bounded. Never blocks the loop.
 *
 * Cluster mode (opts.cluster): host:port and opts.nodes are seeds; the
 * slot map comes from CLUSTER SLOTS and every primary gets a link of its
 * own (same reconnect, AUTH, scripts and watchdog as the single link).
 * Commands go to the primary of their key's slot (tp_store_slot), follow
 * MOVED and ASK, and retry TRYAGAIN / CLUSTERDOWN within the command
 * timeout. With opts.wait_replicas > 0 every writing script is followed by
 * WAIT on its link and answered only once enough replicas have it. The
 * keys of one command or script must share a slot (hash tags, keys.h),
 * else Redis answers with a CROSSSLOT error reply; a script without keys
 * goes to any primary.
 *
 * Every callback runs exactly once: with the reply (which may be an error
 * reply: check reply->type), or with NULL when the command could not be
 * sent or the connection dropped before the reply. Replies are borrowed
 * until the callback returns. */
#ifndef TP_STORE_H
#define TP_STORE_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

typedef struct tp_store tp_store_t;

typedef void (*tp_store_reply_cb)(tp_store_t *store, redisReply *reply,
                                  void *arg);
typedef void (*tp_store_state_cb)(tp_store_t *store, int connected, void *arg);

typedef struct tp_store_options {
    const char *host;         /* default 127.0.0.1 */
    int port;                 /* default 6379 */
    const char *user;         /* ACL user, NULL for none */
    const char *password;     /* NULL for none; never logged */
    const char *ns;           /* key namespace, default "tp:" */
    int reconnect_min_ms;     /* default 100 */
    int reconnect_max_ms;     /* default 5000 */
    int command_timeout_ms;   /* replies owed, none for this long: the link
                                 is dropped (callbacks get NULL), default 3000 */
    const char *name;         /* in the link's log lines ("store heartbeat:
                                 connected ..."), for a process with two
                                 links; NULL: plain "store:" */
    int cluster;              /* 0: one Redis; 1: a Redis Cluster, host:port
                                 (and nodes) being seeds */
    const char *nodes;        /* cluster: more seeds, "h:p,h:p"; NULL none */
    int wait_replicas;        /* > 0: a writing script's reply is given only
                                 once WAIT says this many replicas have it,
                                 else NULL; default 0 (no WAIT) */
    int wait_timeout_ms;      /* WAIT's timeout, default 1000; keep it well
                                 under command_timeout_ms */
} tp_store_options_t;

/* Connects in the background and keeps reconnecting. Strings are copied.
 * Caller owns the result. NULL on failure. */
tp_store_t *tp_store_new(uv_loop_t *loop, const tp_store_options_t *opts);
/* Fails every pending callback with NULL, closes, frees once libuv is done
 * with the handles (run the loop afterwards). */
void tp_store_destroy(tp_store_t **self_p);

/* Called on every connect (after the scripts are loaded) and disconnect. */
void tp_store_on_state(tp_store_t *self, tp_store_state_cb cb, void *arg);
/* Single: the link is ready. Cluster: every slot has a ready primary. */
int tp_store_connected(const tp_store_t *self);
/* The key namespace, e.g. "tp:". Borrowed. */
const char *tp_store_ns(const tp_store_t *self);

/* Registers a Lua script before or after connecting; returns its handle
 * (>= 0) or -1. `lua` is copied. */
int tp_store_script(tp_store_t *self, const char *name, const char *lua);
/* The same for a script that only reads: sent as EVALSHA_RO, so an ACL
 * user with read access to its keys may run it (an EVALSHA needs write
 * access to every key it names), and a replica could. */
int tp_store_script_ro(tp_store_t *self, const char *name, const char *lua);

/* Sends a command. Returns 0 (cb will run once) or -1 (cb never runs; not
 * connected). Arguments are copied. Cluster: to the primary of the key's
 * slot (argv[1]; the first key of EVAL*; the first stream after STREAMS);
 * key-less commands to any primary; SCRIPT LOAD / FLUSH to every primary
 * (the first reply, once all answered; NULL if any link failed). */
int tp_store_command(tp_store_t *self, tp_store_reply_cb cb, void *arg,
                     const char *fmt, ...);
int tp_store_command_argv(tp_store_t *self, tp_store_reply_cb cb, void *arg,
                          int argc, const char **argv, const size_t *argvlen);
/* EVALSHA of script `script` with `nkeys` keys then args in argv. On
 * NOSCRIPT the call is re-sent once as EVAL. Same contract as above.
 * With opts.wait_replicas > 0 and a writing script (not _ro), the reply
 * comes only after WAIT; when fewer replicas acknowledged it in
 * wait_timeout_ms, cb gets NULL although the write may have happened (so
 * a write retried after NULL must be idempotent: event ids, done marks). */
int tp_store_eval(tp_store_t *self, int script, tp_store_reply_cb cb,
                  void *arg, int nkeys, int argc, const char **argv,
                  const size_t *argvlen);

/* Called once per caller's command as its callback is about to run:
 * `seconds` from sending to the reply, `ok` 0 when the reply is an error
 * or none came (link dropped, timed out). For metrics; one hook per store,
 * `arg` borrowed until the store is destroyed. */
typedef void (*tp_store_reply_hook_cb)(tp_store_t *store, double seconds, int ok,
                                       void *arg);
void tp_store_on_reply(tp_store_t *self, tp_store_reply_hook_cb cb, void *arg);
/* The cluster hash slot (0..16383) of a key: CRC16 (XMODEM) of the key, or
 * of its hash tag (the bytes between the first '{' and the next '}', when
 * not empty), modulo 16384, as the cluster specification defines it. */
int tp_store_slot(const char *key, size_t len);

/* The loop the store runs on. Borrowed. */
uv_loop_t *tp_store_loop(const tp_store_t *self);

/* Replies still owed (commands sent, callbacks not run). */
size_t tp_store_pending(const tp_store_t *self);

#endif
