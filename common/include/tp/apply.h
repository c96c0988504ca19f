/* apply.h: a batch of writes applied atomically, once, under a version.
 *
 * Services compute an event's effect in C and describe it as a list of
 * Redis writes; one shared Lua script then checks the event's done mark
 * (seen before: nothing happens), optionally that a record's version is
 * still the one the writes were computed from (changed meanwhile: nothing
 * happens, read and compute again), runs the writes, and sets the done mark,
 * all in one step. Only plain write commands are allowed (see TP_APPLY_
 * ALLOWED); keys are declared once each, so the script knows them all.
 *
 * Owns the builder's argument lists. Never sends anything by itself before
 * tp_apply_send. */
#ifndef TP_APPLY_H
#define TP_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "tp/argv.h"
#include "tp/store.h"

/* The writes an apply may contain, as a Lua table literal for the script. */
#define TP_APPLY_ALLOWED                                                      \
    "HSET=1, HSETNX=1, HDEL=1, HINCRBY=1, SADD=1, SREM=1, ZADD=1, ZREM=1, "   \
    "XADD=1, LPUSH=1, RPUSH=1, LTRIM=1, SET=1, DEL=1, PEXPIRE=1"

/* Outcome in the reply callback. */
enum { TP_APPLY_DUPLICATE = 0, TP_APPLY_DONE = 1, TP_APPLY_STALE = 2 };

typedef struct tp_apply {
    tp_argv_t keys;  /* KEYS: done mark, version record, then the others */
    tp_argv_t args;  /* ARGV: ttl, expected version, done field, version
                        field, count, commands */
    size_t field_at; /* index in args of the done mark's field */
    size_t version_field_at; /* index in args of the version's field */
    size_t count_at; /* index in args of the command count */
    size_t nargs_at; /* index in args of the open command's arg count */
    int commands;
    int open_args;
} tp_apply_t;

/* Starts an apply guarded by `done_key` (kept `done_ttl` seconds, text)
 * and, when `version_key` is not NULL, by the field "ver" of that hash
 * being `expected` ("0" for a record that does not exist yet). Strings are
 * copied. */
void tp_apply_init(tp_apply_t *a, const char *done_key, const char *done_ttl,
                   const char *version_key, const char *expected);
void tp_apply_clear(tp_apply_t *a);
/* Makes the done mark the field `field` of the hash `done_key` (the hash
 * expires as a whole `done_ttl` after its last mark) rather than the key
 * itself: tp_consumer_job_done_field. NULL or "": no change. Copied. */
void tp_apply_done_field(tp_apply_t *a, const char *field);
/* Guards by the field `field` of the version record (whose value is then
 * compared whole with `expected`) rather than "ver": for records kept as
 * one field of a shared hash. NULL or "": no change. Copied. */
void tp_apply_version_field(tp_apply_t *a, const char *field);
/* Compares the version with the `len` bytes at `bytes` (binary-safe: a
 * packed record compared whole) rather than the `expected` of init.
 * Copied. */
void tp_apply_expect(tp_apply_t *a, const char *bytes, size_t len);

/* Declares a key (formatted) and returns its handle for tp_apply_cmd; the
 * same key twice gives the same handle. */
int tp_apply_key(tp_apply_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Opens a command `name` on key `key`; add its arguments with the calls
 * below. The command closes when the next opens or the apply is sent. */
void tp_apply_cmd(tp_apply_t *a, const char *name, int key);
void tp_apply_arg(tp_apply_t *a, const char *s, size_t len); /* copied */
void tp_apply_str(tp_apply_t *a, const char *s);             /* copied */
void tp_apply_int(tp_apply_t *a, int64_t v);
/* A field/value pair, for HSET and XADD. */
void tp_apply_pair(tp_apply_t *a, const char *field, const char *value);
void tp_apply_pair_int(tp_apply_t *a, const char *field, int64_t value);

/* Registers the shared script with `store` (idempotent). Returns its handle. */
int tp_apply_script(tp_store_t *store);
/* Sends the apply. `cb` gets the reply: an array whose first element is
 * TP_APPLY_DUPLICATE, TP_APPLY_DONE or TP_APPLY_STALE (or NULL / an error
 * reply, per tp_store_eval). Returns 0, or -1 (cb never runs). The builder
 * can be cleared right after. */
int tp_apply_send(tp_apply_t *a, tp_store_t *store, tp_store_reply_cb cb,
                  void *arg);

/* Batches: the applies handed over in one turn of the loop go to Redis as
 * one script call per slot (the slot of each apply's done mark: a
 * script's keys must share a slot on a cluster, and on a one-node cluster
 * a client talks to as to one Redis), run in the order given, each with
 * the guards and the answer it would have alone: one apply's refused
 * command or failed write (WRONGTYPE) is its error only. An apply whose
 * keys are not all in its done mark's slot goes in a call of its own.
 * Saves a script call's fixed cost and a round of hiredis per apply (the
 * writes cost Redis the same). A call holds at most `max_applies`
 * (default 64 when <= 0); a fuller one is sent at once. Runs on the
 * store's loop. Caller owns the result; NULL on failure. */
typedef struct tp_apply_batch tp_apply_batch_t;
tp_apply_batch_t *tp_apply_batch_new(tp_store_t *store, int max_applies);
/* Applies not sent yet are answered NULL (as by a dropped link), without
 * touching the store (which may be destroyed already). Run the loop
 * afterwards: the batcher's handle closes there. */
void tp_apply_batch_destroy(tp_apply_batch_t **self_p);
/* Queues the apply (copied: the builder can be cleared right after) for
 * the end of this turn of the loop. `cb` runs exactly once, as with
 * tp_apply_send: its apply's answer, or NULL / an error reply for the
 * call; NULL at once, inside this call, when an apply sent alone (keys
 * across slots) cannot be sent. The store must be alive while applies
 * are queued. Returns 0. */
int tp_apply_batch_send(tp_apply_batch_t *self, tp_apply_t *a, tp_store_reply_cb cb,
                        void *arg);

#endif
