/* ticketing_autoclose.h: resolved tickets close after a quiet period
 * (R-TICKET-2). Every `check_interval` it takes the resolutions whose
 * quiet period ended from ticket:autoclose (written by ticketing_ticket
 * when a ticket is resolved, removed when it moves on) and asks
 * tp_ticketing_autoclose to close each: once per resolution whatever the
 * number of instances. Owns its timer; changes tickets only through
 * ticketing_ticket. */
#ifndef TICKETING_AUTOCLOSE_H
#define TICKETING_AUTOCLOSE_H

#include <stdint.h>
#include <uv.h>

#include "ticketing_ticket.h"
#include "tp/store.h"

typedef struct tp_autoclose tp_autoclose_t;

/* Everything borrowed. Caller owns the result. */
tp_autoclose_t *tp_autoclose_new(uv_loop_t *loop, tp_store_t *store, tp_ticketing_t *tickets,
                                 int64_t check_interval_ms);
/* Destroy the store first, then this. */
void tp_autoclose_destroy(tp_autoclose_t **self_p);

#endif
