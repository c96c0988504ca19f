/* ticketing_escalate.h: the escalation steps of SLA targets (R-TICKET-4).
 * Every `check_interval` it takes the steps that fell due from
 * sla:escalate (written by ticketing_ticket while a clock runs): the
 * warning at a share of the target (to the ticket's owner, else the
 * department lead), the breach (to the department lead) and, a configured
 * delay later, the manager. Each step is claimed and its ticket.escalated
 * derived in one script that first removes the step and checks the
 * ticket's mark of it: with any number of ticketing instances, each step
 * of each ticket and target goes out once. Owns its timer; never changes
 * a ticket's state. */
#ifndef TICKETING_ESCALATE_H
#define TICKETING_ESCALATE_H

#include <stdint.h>
#include <uv.h>

#include "ticketing_roster.h"
#include "tp/emit.h"
#include "tp/store.h"

typedef struct tp_escalate tp_escalate_t;

/* Everything borrowed. Caller owns the result. */
tp_escalate_t *tp_escalate_new(uv_loop_t *loop, tp_store_t *store, tp_emitter_t *emitter,
                               const tp_roster_t *roster, int64_t check_interval_ms);
/* Destroy the store first, then this. */
void tp_escalate_destroy(tp_escalate_t **self_p);

/* Who a step goes to: warning -> `owner` (else the lead), lead -> the
 * department's lead, manager -> its manager. Borrowed. */
const char *tp_escalate_recipient(const tp_roster_t *roster, const char *step,
                                  const char *department, const char *owner);

/* Owner warnings (the first escalation step) sent from this instance. */
uint64_t tp_escalate_warnings(const tp_escalate_t *self);

#endif
