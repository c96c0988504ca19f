/* scheduler_fire.h: fires due reminders on local libuv timers, exactly once
 * across every scheduler instance.
 *
 * Owns the in-memory set of reminders due soon (a min-heap by due time,
 * with one uv_timer armed for the earliest), the Redis link the claims go
 * out on, and the poll that fills the heap from
 * Redis every `poll_interval` for the next `lookahead` (per shard: the
 * groups due by then from {s<n>}:r:due, their reminders, their records). Reminders this
 * instance plans are armed at once. Firing claims the reminder in Redis
 * (it must still be due at that time: a replanned or closed one is not) and
 * derives reminder.due in the same script, so two instances racing for one
 * reminder fire it once. After downtime, overdue reminders fire on the
 * first poll, marked with how late they are. */
#ifndef SCHEDULER_FIRE_H
#define SCHEDULER_FIRE_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "tp/emit.h"
#include "tp/store.h"

typedef struct tp_fire tp_fire_t;

typedef struct tp_fire_options {
    int64_t poll_interval_ms; /* default 1000 */
    int64_t lookahead_ms;     /* default 2 x poll interval */
    int poll_batch;           /* per bucket and poll, default 1000 */
} tp_fire_options_t;

/* Polls on `store`; claims on a link of its own, made from `claim_link`
 * (the service's store options, copied). Everything borrowed. Caller owns
 * the result. */
tp_fire_t *tp_fire_new(uv_loop_t *loop, tp_store_t *store, const tp_store_options_t *claim_link,
                       tp_emitter_t *emitter, const tp_fire_options_t *opts);
/* Destroy `store` first (polls waiting on Redis end), then this (its own
 * link first: claims in flight end with it). */
void tp_fire_destroy(tp_fire_t **self_p);

/* Arms a timer for `reminder` of `bucket` (its shard) due at `due_ms` (a
 * tp_plan_armed_cb shape). `record` is the stored record (tp/reminder.h),
 * `record_len` bytes; everything is copied. */
void tp_fire_arm(const char *reminder, int bucket, int64_t due_ms,
                 const char *record, size_t record_len, void *arg);

/* The next due time and record (packed, tp/reminder.h; caller frees, its
 * length in *next_len) of a recurring reminder that fired (as stored,
 * unpacked; borrowed), or 0 when it does not recur or the series ended. */
typedef int64_t (*tp_fire_next_cb)(void *arg, const json_t *reminder, char **next_record,
                                   size_t *next_len);
/* Sets how recurring reminders find their next occurrence. */
void tp_fire_set_recurrence(tp_fire_t *self, tp_fire_next_cb next, void *arg);

/* The link the claims go out on (borrowed), for metrics. */
tp_store_t *tp_fire_claim_store(tp_fire_t *self);

typedef struct tp_fire_stats {
    uint64_t fired, lost_race, late;
    int64_t max_late_ms;
    size_t armed;
} tp_fire_stats_t;
void tp_fire_stats(const tp_fire_t *self, tp_fire_stats_t *out);

#endif
