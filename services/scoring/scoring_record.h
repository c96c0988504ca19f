/* scoring_record.h: the shared customer record (R-SHARED-1): profile,
 * grade with its reason, and the timeline of every contact and effect.
 *
 * Owns the apply script and how each event type changes the record. Every
 * change is one script: effect, timeline entry, derived lead.graded in the
 * outbox and the done mark together. Grading reads the record first and
 * writes only if it did not change meanwhile (a version field), so two
 * scoring instances never lose each other's update. */
#ifndef SCORING_RECORD_H
#define SCORING_RECORD_H

#include "scoring_grade.h"
#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/store.h"

typedef struct tp_record tp_record_t;

/* Everything borrowed for the record's life; `rules` copied. */
tp_record_t *tp_record_new(tp_store_t *store, tp_emitter_t *emitter,
                           const tp_grade_rules_t *rules, tp_config_t *cfg);
void tp_record_destroy(tp_record_t **self_p);

/* tp_consumer_tag_cb: every event's effect lives under {c:<customer>}. */
int tp_record_tag(const tp_event_t *ev, char *tag, size_t len, void *arg);
/* tp_consumer_apply_cb; `arg` is the tp_record_t. */
void tp_record_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                     const tp_event_t *ev, void *arg);

#endif
