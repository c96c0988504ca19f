/* heartbeat.h: "this instance is alive", in Redis, for operators (tpctl).
 *
 * Every `interval` (and at once on every connect) writes
 *   HSET <ns>heartbeat:<service> <instance> <json>
 * with json {"instance","service","host","pid","version","started_at",
 * "seen_at","interval_ms","applied","metrics"} (times in ms since the
 * epoch). An instance that stops cleanly HDELs its field on destroy; one
 * that dies keeps its last beat, which tpctl shows as stale after three
 * intervals and `tpctl status --prune` removes.
 *
 * Owns its own Redis connection (a tp_store_t of the service's ACL user),
 * so the last HDEL still goes out while the service tears its own store
 * down, and its timer. Never touches another key; never blocks the loop.
 * Runs on the service's loop thread only. */
#ifndef TP_HEARTBEAT_H
#define TP_HEARTBEAT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tp/store.h"

#ifndef TP_VERSION
#define TP_VERSION "0.1.0"
#endif

typedef struct tp_heartbeat tp_heartbeat_t;

/* How many events this instance applied so far (a consumer's count, the
 * journal's accepted count for intake). Runs on the loop. */
typedef uint64_t (*tp_heartbeat_applied_cb)(void *arg);

typedef struct tp_heartbeat_options {
    const char *service;  /* "scoring" */
    const char *instance; /* the instance's name, the hash field */
    int64_t interval_ms;  /* default 2000 */
} tp_heartbeat_options_t;

/* One instance's beat, as tpctl reads it back. */
typedef struct tp_heartbeat_beat {
    const char *instance, *service, *host, *version, *metrics;
    long pid;
    int64_t started_at, seen_at, interval_ms;
    uint64_t applied;
} tp_heartbeat_beat_t;

/* Starts beating over a connection of its own made from `store_opts`
 * (copied). Strings are copied. Caller owns the result. NULL on failure
 * (logged). */
tp_heartbeat_t *tp_heartbeat_new(uv_loop_t *loop, const tp_store_options_t *store_opts,
                                  const tp_heartbeat_options_t *opts);
/* Removes this instance's field (when Redis is reachable) and closes;
 * the memory goes once the HDEL is answered or failed (run the loop).
 * Accepts NULL, safe twice. */
void tp_heartbeat_destroy(tp_heartbeat_t **self_p);

/* The /metrics address ("127.0.0.1:9100") shown by tpctl; copied; NULL or
 * "" for none. Takes effect at the next beat. */
void tp_heartbeat_set_metrics(tp_heartbeat_t *self, const char *addr);
/* Where the "applied" count comes from; `arg` borrowed while beating. */
void tp_heartbeat_set_applied(tp_heartbeat_t *self, tp_heartbeat_applied_cb cb,
                              void *arg);

/* The JSON text of `beat` (pure; for the beat itself and tests). Caller
 * owns the result (free()). */
char *tp_heartbeat_json(const tp_heartbeat_beat_t *beat);
/* Parses a beat's JSON into `out`; strings are borrowed from `*doc`, a
 * jansson object the caller releases with json_decref((json_t *)*doc).
 * Returns 0, or -1 when `text` is not a beat (missing or ill-typed
 * field). */
int tp_heartbeat_parse(const char *text, size_t len, tp_heartbeat_beat_t *out, void **doc);

#endif
