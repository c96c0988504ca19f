/* emit.h: derived events, sent back into intake without loss.
 *
 * A service that derives an event (lead.graded, reminder.due, ...) writes
 * its msgpack envelope into its outbox in the same Lua script as the effect
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
} tp_emitter_options_t;

/* Caller owns the result. NULL on failure (logged). */
tp_emitter_t *tp_emitter_new(uv_loop_t *loop, tp_bus_t *bus, tp_store_t *store,
                             const tp_emitter_options_t *opts);
/* Destroy the store first: a sweep waiting on Redis then ends while the
 * emitter still exists. */
void tp_emitter_destroy(tp_emitter_t **self_p);

/* The outbox key ("<ns>outbox:<svc>") to pass to the apply script.
 * Borrowed. */
const char *tp_emitter_outbox(const tp_emitter_t *self);

/* Sends one outbox entry now (payload as stored in the outbox; copied). */
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
    size_t inflight;
} tp_emitter_stats_t;
void tp_emitter_stats(const tp_emitter_t *self, tp_emitter_stats_t *out);

#endif
