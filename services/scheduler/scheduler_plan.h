/* scheduler_plan.h: which reminders each event plans, replans or closes.
 *
 * Owns the follow-up rules' effect on the reminder store: first touch
 * (R-TOUCH-1), cadences (R-CAD-1..4), the email reply window (R-MAIL-1),
 * inquiry response (R-SLA-1), dwell alarms and stage deadlines (R-STAGE-3,
 * R-STAGE-4), return visits (R-VISIT-1), special days (R-DAYS-1), payments
 * (R-PAY-1) and reorder cycles (R-REORDER-1). Each event is applied as: read
 * the customer's book (its scheduler state and open reminders), decide in C
 * (times from scheduler_rules, on the business calendar), write the book
 * whole with every plan and close as one apply, guarded by the book as
 * read. Time flows from the event's ts. Never fires anything:
 * scheduler_fire does.
 *
 * A reminder is "<customer>|<rule>[|<subject>]", a record in its
 * customer's book (tp/reminder.h), the field "<customer>" of its group's
 * hash in the customer's shard {s<n>}; the customer is in its group's due
 * index and in the shard's index of each owner of its reminders for the
 * per-person query, at their earliest due second (tp/keys.h). Recurring
 * reminders carry their RRULE; scheduler_fire moves them to their next
 * occurrence. */
#ifndef SCHEDULER_PLAN_H
#define SCHEDULER_PLAN_H

#include <jansson.h>
#include <stdint.h>

#include "scheduler_rules.h"
#include "tp/calendar.h"
#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/store.h"

typedef struct tp_plan tp_plan_t;

/* Called with a customer's book as an apply wrote it (packed, `len`
 * bytes, NULL when the apply removed an empty one; and its reminders: id ->
 * record), so the planning instance can arm the timers of what falls due
 * soon at once. Arguments borrowed for the call. */
typedef void (*tp_plan_armed_cb)(const char *customer, int bucket, const char *book,
                                 size_t len, const json_t *reminders, void *arg);

/* `store`, `calendar` and `cfg` (users' quiet hours in [quiet], managers
 * in [managers], [scheduler] apply_batch: the most applies sent as one
 * script call, default 64) borrowed for the plan's life; rules copied.
 * Applies of one turn of the loop go out together (tp_apply_batch_send).
 * Destroy it before running the loop a last time. */
tp_plan_t *tp_plan_new(tp_store_t *store, const tp_sched_rules_t *rules,
                       const tp_calendar_t *calendar, tp_config_t *cfg,
                       tp_plan_armed_cb armed, void *arg);
void tp_plan_destroy(tp_plan_t **self_p);

/* Applies refused because the customer's book changed since it was read
 * (a firing, another instance), and computed again: for /metrics. */
uint64_t tp_plan_recomputed(const tp_plan_t *self);

/* tp_consumer_tag_cb: the reminder bucket of the event's customer. */
int tp_plan_tag(const tp_event_t *ev, char *tag, size_t len, void *arg);
/* tp_consumer_apply_cb; `arg` is the tp_plan_t. */
void tp_plan_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                   const tp_event_t *ev, void *arg);

/* When a recurring reminder (its record; borrowed) fired for the
 * occurrence it was due for, its next due time and record (*next_record,
 * caller owns), or 0 when it does not recur or the series ended. Used by
 * scheduler_fire. */
int64_t tp_plan_next_occurrence(const tp_plan_t *self, const json_t *reminder,
                                json_t **next_record);

#endif
