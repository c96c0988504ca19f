/* ticketing_sla.h: the SLA watch (R-TICKET-3). Every `check_interval` it
 * takes the deadlines that passed from sla:due and, for each, marks the
 * ticket breached and derives sla.breached in one script whose first step
 * removes the deadline: with any number of ticketing instances, each
 * deadline breaches once. Owns its timer; never changes ticket state. */
#ifndef TICKETING_SLA_H
#define TICKETING_SLA_H

#include <stdint.h>
#include <uv.h>

#include "tp/emit.h"
#include "tp/store.h"

typedef struct tp_sla tp_sla_t;

/* Everything borrowed; `default_owner` copied. Caller owns the result. */
tp_sla_t *tp_sla_new(uv_loop_t *loop, tp_store_t *store, tp_emitter_t *emitter,
                     int64_t check_interval_ms, const char *default_owner);
/* Destroy the store first, then this. */
void tp_sla_destroy(tp_sla_t **self_p);

/* Deadlines breached (sla.breached derived) by this instance. */
uint64_t tp_sla_breaches(const tp_sla_t *self);

#endif
