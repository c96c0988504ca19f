/* consumer.h: how a service receives events, exactly once in effect.
 *
 * Owns the service's PULL socket (events routed by intake), the bound on
 * events in flight, and the reconcile walk over the journal. The walk runs
 * in one instance at a time (a lease in Redis), reads journal entries older
 * than the lag window from the service's cursor, and hands the ones of the
 * service's types to the same apply callback; the cursor only moves past an
 * entry once it is applied. An event whose ZeroMQ message was lost is
 * therefore still applied, a little later.
 *
 * The apply callback must make the effect and the done mark one atomic
 * Redis step: its Lua script starts with TP_LUA_DONE_CHECK and ends with
 * TP_LUA_DONE_MARK, with KEYS[1] the done key (tp_consumer_job_done_key) and
 * ARGV[1] its time to live (tp_consumer_done_ttl). Seeing an event again is
 * then a no-op. Never acknowledges anything itself: nothing is lost when
 * the process dies. */
#ifndef TP_CONSUMER_H
#define TP_CONSUMER_H

#include <stdint.h>
#include <uv.h>

#include "tp/bus.h"
#include "tp/event.h"
#include "tp/metrics.h"
#include "tp/store.h"

typedef struct tp_consumer tp_consumer_t;
typedef struct tp_consumer_job tp_consumer_job_t;

/* Writes into `tag` where the effect of `ev` lives, either as the key
 * prefix of its owner, with its hash tag (tp_key_customer_tag:
 * "{s3}:c:ACME-1"; the done mark is "<ns><tag>:done:<svc>:<event id>"), or
 * as a bare hash tag ("r3"; the done mark is "<ns>{<tag>}:done:..."). Events
 * of one tag are applied one after another. Returns 0, or -1 when the event
 * is not this service's business (it is then skipped). */
typedef int (*tp_consumer_tag_cb)(const tp_event_t *ev, char *tag,
                                  size_t len, void *arg);
/* Applies `ev`, borrowed until tp_consumer_job_done(job). Runs on the loop. */
typedef void (*tp_consumer_apply_cb)(tp_consumer_t *consumer,
                                     tp_consumer_job_t *job,
                                     const tp_event_t *ev, void *arg);

typedef struct tp_consumer_options {
    tp_service_t service;
    const char *endpoint;          /* intake's PUSH for this service */
    int hwm;                       /* ZeroMQ high-water mark */
    int max_inflight;              /* events being applied, default 1024 */
    int64_t reconcile_lag_ms;      /* default 2000 */
    int64_t reconcile_interval_ms; /* default 1000 */
    int reconcile_batch;           /* entries per walk step, default 1000 */
    int64_t lease_ms;              /* reconcile lease, default 10000 */
    int64_t done_ttl_s;            /* done marks live this long, default 30 d */
    int done_grouped;              /* 1: each done mark is a field of a
                                      small hash of marks, see below */
    int turn_by_customer;          /* 1: events wait only for the events of
                                      their customer, not of their whole tag
                                      (for a tag shared by many customers
                                      whose applies do not conflict) */
    const char *instance;          /* this instance's name (lease holder) */
    tp_metrics_t *metrics;         /* NULL, or where tp_events_*_total{type}
                                      and tp_apply_seconds{type} go;
                                      borrowed, must outlive the consumer */
} tp_consumer_options_t;

/* Starts receiving and reconciling. Strings are copied; loop, bus and store
 * are borrowed and must outlive the consumer. Caller owns the result. NULL
 * on failure (logged). */
tp_consumer_t *tp_consumer_new(uv_loop_t *loop, tp_bus_t *bus,
                               tp_store_t *store,
                               const tp_consumer_options_t *opts,
                               tp_consumer_tag_cb tag, tp_consumer_apply_cb apply,
                               void *arg);
/* Destroy the store first: jobs waiting on Redis then end (status -1)
 * while the consumer still exists. */
void tp_consumer_destroy(tp_consumer_t **self_p);

/* Ends a job. status 0: applied, or found already applied; -1: failed, the
 * event stays unapplied and reconcile retries it. Exactly once per job. */
void tp_consumer_job_done(tp_consumer_job_t *job, int status);
/* Before tp_consumer_job_done(job, 0): the event was found applied already
 * (its done mark was there), so it counts as a duplicate, not as applied,
 * in tp_events_duplicate_total. */
void tp_consumer_job_duplicate(tp_consumer_job_t *job);
/* 1 when `reply` is {0}: what TP_LUA_DONE_CHECK (and tp_apply's
 * TP_APPLY_DUPLICATE) answers for an event applied before; else 0. */
int tp_consumer_reply_seen(const redisReply *reply);

/* KEYS[1] of the apply script: "<ns><tag>:done:<svc>:<event id>" (or
 * "<ns>{<tag>}:done:..." for a bare tag). With done_grouped,
 * "<ns><tag>:done:<svc>:<hour>:<g>", a hash whose field
 * tp_consumer_job_done_field is the mark: the event's hour (its ts / 1 h)
 * and g = the event id's group (tp_consumer_done_mark), so a hash holds a
 * few dozen marks (one listpack: ~20 bytes a mark instead of ~100 for a
 * key with an expiry) and expires as a whole done_ttl after its last mark
 * (tp_apply_done_field). Borrowed until tp_consumer_job_done. */
const char *tp_consumer_job_done_key(const tp_consumer_job_t *job);
/* The done mark's field in the hash tp_consumer_job_done_key (the event
 * id's digest, tp_consumer_done_mark), or NULL when the mark is the key
 * itself. Borrowed likewise. */
const char *tp_consumer_job_done_field(const tp_consumer_job_t *job);
/* The length of a done mark's field with done_grouped: the base64url of a
 * 72-bit BLAKE2b digest of the event id. Ids are up to TP_ID_MAX bytes
 * (derived ones "rem:<reminder>:<due>" some 60); 12 bytes a mark instead,
 * and second preimages out of reach (a client choosing its own ids cannot
 * make another's event look applied). Within one hash (a tag, an hour, a
 * group) two ids colliding by chance is ~n^2/2^73 for n marks. */
#define TP_DONE_FIELD_LEN 12
/* The done mark of `event_id` with done_grouped: its field into `field`
 * (at least TP_DONE_FIELD_LEN + 1 bytes); returns its group, 0 ..
 * TP_DONE_GROUPS-1 (from other bits of the same digest: evenly spread
 * whatever the ids look like). */
unsigned tp_consumer_done_mark(char *field, size_t fieldlen, const char *event_id);
/* ARGV[1] of the apply script: the done mark's time to live in seconds, as
 * text. Borrowed. */
const char *tp_consumer_done_ttl(const tp_consumer_t *self);
/* 1 when the job came from the reconcile walk (its ZeroMQ message was lost
 * or not yet applied), else 0. */
int tp_consumer_job_reconciled(const tp_consumer_job_t *job);

/* Counters for logs and tests. */
typedef struct tp_consumer_stats {
    uint64_t received;   /* from the bus */
    uint64_t reconciled; /* handed over by the journal walk */
    uint64_t applied;    /* jobs done with status 0 */
    uint64_t failed;     /* jobs done with status -1 */
    uint64_t duplicates; /* of the applied, those found applied already
                            (tp_consumer_job_duplicate) */
    int inflight;
    int bus_peers;       /* ZeroMQ connections of the PULL socket */
    int64_t reconcile_lag_ms; /* how far the walk trails the journal's end */
} tp_consumer_stats_t;
void tp_consumer_stats(const tp_consumer_t *self, tp_consumer_stats_t *out);

/* Hashes of done marks per tag, service and hour with done_grouped. */
#define TP_DONE_GROUPS 1024

/* The Lua guard every apply script uses (see above; with done_grouped,
 * tp_apply's script). */
#define TP_LUA_DONE_CHECK                                                     \
    "if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end\n"
#define TP_LUA_DONE_MARK "redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])\n"

#endif
