/* emit.h: derived events, sent back into intake without loss.
 *
 * A service that derives an event (lead.graded, reminder.due, ...) writes
 * its msgpack envelope into the outbox of the shard it works in
 * (tp_emitter_outbox_of: the customer's or user's shard) in the same Lua
 * script as the effect
 * that caused it (ZADD <outbox> <now ms> <payload>), so the two are atomic.
 * The emitter then sends it over a DEALER socket to intake's ingress and
 * removes it from the outbox once intake acknowledges it as journaled (or as
 * a duplicate). Entries left unacknowledged (intake down, a crash, a lost
 * message) are resent by a sweep; intake drops repeats by event id, so the
 * journal holds each derived event once.
 *
 * Wire: the service sends [token][payload]; intake answers [token][status]
 * where status is "ok", "dup", "busy" (retry later) or "err <field>: <msg>"
 * (never accepted; the entry is dropped from the outbox and logged). */
#ifndef TP_EMIT_H
#define TP_EMIT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <jansson.h>
#include <msgpack.h>

#include "tp/bus.h"
#include "tp/proto.h"
#include "tp/store.h"

typedef struct tp_emitter tp_emitter_t;

typedef struct tp_emitter_options {
    tp_service_t service;
    const char *endpoint;      /* intake's ingress (ROUTER) */
    int64_t resend_after_ms;   /* unacked entries are resent after this, default 2000 */
    int64_t sweep_interval_ms; /* default 1000 */
    int hwm;                   /* derived events queued for intake (the
                                  DEALER's high-water marks) before a send
                                  is refused and left to the sweep; 0:
                                  libzmq's default (1000). The services
                                  use [bus] hwm. */
} tp_emitter_options_t;

/* Caller owns the result. NULL on failure (logged). */
tp_emitter_t *tp_emitter_new(uv_loop_t *loop, tp_bus_t *bus, tp_store_t *store,
                             const tp_emitter_options_t *opts);
/* Destroy the store first: a sweep waiting on Redis then ends while the
 * emitter still exists. */
void tp_emitter_destroy(tp_emitter_t **self_p);

/* The outbox of the shard of `id` (a customer or user id: tp_key_shard),
 * "<ns>{s<n>}:outbox:<svc>", for a script whose keys are that shard's: the
 * derived event goes in with the effect, in one slot. Borrowed. */
const char *tp_emitter_outbox_of(const tp_emitter_t *self, const char *id);
/* The outbox of shard `shard` (0 .. TP_SHARDS-1), or NULL. Borrowed. */
const char *tp_emitter_outbox_shard(const tp_emitter_t *self, int shard);
/* Sends one entry of the outbox of `id`'s shard now (payload as stored;
 * copied); intake's answer removes it from that outbox. */
void tp_emitter_send_of(tp_emitter_t *self, const char *id, const char *payload,
                        size_t len);
/* The same for an entry of shard `shard`'s outbox (tp_emitter_outbox_shard). */
void tp_emitter_send_shard(tp_emitter_t *self, int shard, const char *payload,
                           size_t len);

/* DEPRECATED, for one release (the scheduler until it moves to {s<n>}):
 * the old unsharded outbox "<ns>outbox:<svc>", and sending one of its
 * entries. Written together with keys of a shard it is refused by Redis
 * Cluster (CROSSSLOT). Both outboxes are swept. Borrowed. */
const char *tp_emitter_outbox(const tp_emitter_t *self);
void tp_emitter_send(tp_emitter_t *self, const char *payload, size_t len);

/* Packs the envelope of a derived event into `out` (an initialised
 * sbuffer, caller owns): v 1, `id` (deterministic, so a repeated apply
 * derives the same id and intake drops the repeat), `type`, `ts` (the
 * time of the cause, not of processing), src = the emitting service,
 * `customer`, `data`. Takes ownership of `data`. Returns 0, or -1 when
 * `data` does not fit the schema (a programming error; logged). */
int tp_emit_pack(msgpack_sbuffer *out, tp_event_type_t type, const char *id,
                 int64_t ts, tp_service_t src, const char *customer,
                 json_t *data);

typedef struct tp_emitter_stats {
    uint64_t sent, acked, resent, rejected;
    uint64_t deferred; /* sends refused by a full queue, left to the sweep */
    size_t inflight;
} tp_emitter_stats_t;
void tp_emitter_stats(const tp_emitter_t *self, tp_emitter_stats_t *out);

#endif
