/* scheduler_plan.h: which reminders each event plans or closes.
 *
 * Owns the follow-up rules of the spine and their Redis scripts:
 * R-TOUCH-1 (first touch by grade, planned on lead.graded, replanned on a
 * regrade), R-CAD-4 (a logged contact closes the reminders it satisfies)
 * and R-SLA-1 (an inquiry's answer is due in 2 h, urgent 30 min). Time
 * flows from the event's ts. Never fires anything: scheduler_fire does. */
#ifndef SCHEDULER_PLAN_H
#define SCHEDULER_PLAN_H

#include <stdint.h>

#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/store.h"

typedef struct tp_plan tp_plan_t;

typedef struct tp_plan_rules {
    int64_t first_touch_ms[3]; /* A, B, C: 24h, 3d, 30d (R-TOUCH-1) */
    int64_t inquiry_ms;        /* 2h (R-SLA-1) */
    int64_t inquiry_urgent_ms; /* 30m */
} tp_plan_rules_t;

void tp_plan_rules_load(tp_plan_rules_t *rules, tp_config_t *cfg);

/* Called with each reminder planned, so the planning instance can arm its
 * timer at once. Arguments borrowed for the call. */
typedef void (*tp_plan_armed_cb)(const char *reminder, int bucket,
                                 int64_t due_ms, const char *json, void *arg);

/* `store` borrowed. Caller owns the result. */
tp_plan_t *tp_plan_new(tp_store_t *store, const tp_plan_rules_t *rules,
                       tp_plan_armed_cb armed, void *arg);
void tp_plan_destroy(tp_plan_t **self_p);

/* tp_consumer_tag_cb: the reminder bucket of the event's customer. */
int tp_plan_tag(const tp_event_t *ev, char *tag, size_t len, void *arg);
/* tp_consumer_apply_cb; `arg` is the tp_plan_t. */
void tp_plan_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                   const tp_event_t *ev, void *arg);

#endif
