/* ticketing_clock.h: SLA clocks (R-TICKET-3). A clock measures a target
 * (first response, resolution) from the moment a ticket opens: in business
 * hours on the shared calendar for normal priority, around the clock for
 * urgent, and paused while the ticket waits for the customer. Pure: owns
 * the arithmetic only; the ticket's pauses come from its history. */
#ifndef TICKETING_CLOCK_H
#define TICKETING_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "tp/calendar.h"

#define TP_CLOCK_PAUSES_MAX 32

typedef struct tp_sla_clock {
    int64_t started;            /* when the clock started (ticket opened) */
    int64_t target_ms;          /* how much clock time the target allows */
    const tp_calendar_t *hours; /* business hours, or NULL: around the clock */
    int64_t pauses[TP_CLOCK_PAUSES_MAX][2]; /* [from, to), to 0 = still paused */
    size_t npauses;
} tp_sla_clock_t;

/* A clock of `target_ms` started at `started`, counting in `hours`
 * (borrowed; NULL for 24x7). */
void tp_sla_clock_init(tp_sla_clock_t *c, int64_t started, int64_t target_ms,
                       const tp_calendar_t *hours);
/* The ticket started / stopped waiting for the customer at `at`. Pauses
 * must come in time order; a pause while paused, or a resume while
 * running, changes nothing. Returns 0, or -1 when the pause list is full
 * (the clock then keeps running: the SLA errs on the customer's side). */
int tp_sla_clock_pause(tp_sla_clock_t *c, int64_t at);
void tp_sla_clock_resume(tp_sla_clock_t *c, int64_t at);

/* 1 while paused. */
int tp_sla_clock_paused(const tp_sla_clock_t *c);
/* Clock time used up to `at` (working time for business hours, minus the
 * pauses). */
int64_t tp_sla_clock_used(const tp_sla_clock_t *c, int64_t at);
/* The instant the target is reached if nothing else pauses it, or 0 while
 * paused (no deadline runs). */
int64_t tp_sla_clock_deadline(const tp_sla_clock_t *c);
/* The instant `share` (percent, 1..100) of the target is used: the
 * warning point (R-TICKET-4); 0 while paused. */
int64_t tp_sla_clock_point(const tp_sla_clock_t *c, int share);

#endif
