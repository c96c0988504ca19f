/* intake_ingress.h: the ZeroMQ ingress for msgpack events, used by native
 * producers and by the services for derived events. Owns the ROUTER socket.
 * Each message is [token][envelope]; the answer [token][status] goes out
 * only once the event is journaled ("ok"), known ("dup"), refused
 * ("err <field>: <why>") or could not be journaled now ("busy"). */
#ifndef INTAKE_INGRESS_H
#define INTAKE_INGRESS_H

#include "intake_journal.h"
#include "tp/bus.h"
#include "tp/metrics.h"
#include "tp/config.h"

typedef struct tp_ingress tp_ingress_t;

/* Binds [bus] ingress_endpoint. Everything borrowed. Caller owns the
 * result; NULL on failure (logged). */
tp_ingress_t *tp_ingress_new(tp_bus_t *bus, tp_config_t *cfg,
                             tp_journal_t *journal);
/* Destroy after the journal: answers still owed refer to the ingress. */
void tp_ingress_destroy(tp_ingress_t **self_p);
/* Counts events refused for a field in `rejected` (borrowed, NULL: not
 * counted). */
void tp_ingress_count_rejected(tp_ingress_t *self, tp_series_t *rejected);

#endif
