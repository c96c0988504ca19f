/* scoring_record.h: the shared customer record (R-SHARED-1): profile,
 * grade with its reasons, state, deals and their value, satisfaction,
 * health, and the timeline of every contact and effect.
 *
 * Owns how each event type changes the record. Every event is applied in
 * three steps: read the customer (one script), compute the change in C
 * (the rules are scoring_grade, scoring_deal, scoring_health), and write it
 * as one guarded apply (tp/apply.h) under the record's version, together
 * with the derived events (lead.graded, stage.changed, customer.at_risk) in
 * the outbox, their timeline entries and the done mark. A record changed
 * meanwhile is read again; a redelivered event changes nothing. Never
 * writes a customer outside one apply. */
#ifndef SCORING_RECORD_H
#define SCORING_RECORD_H

#include "scoring_deal.h"
#include "scoring_grade.h"
#include "scoring_health.h"
#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/store.h"

#include <uv.h>

typedef struct tp_record tp_record_t;

typedef struct tp_record_rules {
    tp_grade_rules_t grade;
    tp_stage_rules_t stages;
    tp_health_rules_t health;
    int64_t timeline_max;    /* entries kept per customer */
    char default_cc[8];      /* phone country code, for merges */
} tp_record_rules_t;

/* `store` and `emitter` borrowed for the record's life; rules copied.
 * Caller owns the result. */
tp_record_t *tp_record_new(tp_store_t *store, tp_emitter_t *emitter,
                           const tp_record_rules_t *rules);
void tp_record_destroy(tp_record_t **self_p);

/* Starts the health sweep: every `interval_ms` the customers whose silence
 * now counts (health:watch) get a health check, once per customer and day
 * (done marks kept `done_ttl_s`), so an at-risk episode can start without
 * any new event. */
int tp_record_sweep_start(tp_record_t *self, uv_loop_t *loop, int64_t interval_ms,
                          int64_t done_ttl_s);

/* tp_consumer_tag_cb: every event's effect lives under {c:<customer>}. */
int tp_record_tag(const tp_event_t *ev, char *tag, size_t len, void *arg);
/* tp_consumer_apply_cb; `arg` is the tp_record_t. */
void tp_record_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                     const tp_event_t *ev, void *arg);

#endif
