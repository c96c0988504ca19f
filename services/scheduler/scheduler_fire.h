/* scheduler_fire.h: fires due reminders on local libuv timers, exactly once
 * across every scheduler instance.
 *
 * Owns the in-memory set of reminders due soon (a min-heap by due time,
 * with one uv_timer armed for the earliest), the Redis link the claims go
 * out on, and the poll that fills the heap from
 * Redis every `poll_interval` for the next `lookahead` (per shard: the
 * groups due by then from {s<n>}:r:due, their customers, their books). Reminders this
 * instance plans are armed at once. Firing claims the reminder in Redis
 * (its customer's book must still be the one the claim was computed from,
 * in which it is due at that time: a replanned or closed one is not) and
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

/* Arms a timer for each reminder of `customer` (its shard `bucket`) due
 * before the next poll looks further ahead; `book` (`len` bytes) is the
 * customer's book as just written (tp/reminder.h), its reminders (id ->
 * record) given unpacked. A tp_plan_armed_cb; everything is copied. */
void tp_fire_arm_book(const char *customer, int bucket, const char *book, size_t len,
                      const json_t *reminders, void *arg);

/* The next due time and record (*next_record, caller owns) of a recurring
 * reminder that fired (its record; borrowed), or 0 when it does not recur
 * or the series ended. */
typedef int64_t (*tp_fire_next_cb)(void *arg, const json_t *reminder, json_t **next_record);
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
