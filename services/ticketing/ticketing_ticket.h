/* ticketing_ticket.h: tickets from ticket.opened and ticket.updated.
 *
 * Owns the ticket record ({c:<cust>}:ticket:<id>), its history, the
 * customer's open-ticket summaries, and the first-response deadline in
 * sla:due, and the resolution deadline (R-SLA-1 / R-TICKET-3: urgent 30
 * min around the clock, otherwise 2 h in business hours by default). The
 * first agent action stops the first clock; waiting for the customer, or a
 * resolved ticket, pauses both, and leaving those states resumes them. A transition the state machine
 * refuses changes nothing but the history, which records why. Updates read
 * the ticket and write it back under its version, so instances never lose
 * each other's update. */
#ifndef TICKETING_TICKET_H
#define TICKETING_TICKET_H

#include <stdint.h>

#include "tp/calendar.h"
#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/store.h"

typedef struct tp_ticketing tp_ticketing_t;

typedef struct tp_ticket_rules {
    int64_t first_response_ms[4]; /* urgent, high, normal, low */
    int64_t resolution_ms[4];     /* urgent, high, normal, low */
    const char *default_owner;    /* notified on breach without an agent */
} tp_ticket_rules_t;

void tp_ticket_rules_load(tp_ticket_rules_t *rules, tp_config_t *cfg);

/* `store` and `hours` (the business calendar non-urgent clocks count in)
 * borrowed; rules copied (default_owner borrowed from cfg). */
tp_ticketing_t *tp_ticketing_new(tp_store_t *store, const tp_ticket_rules_t *rules,
                                 const tp_calendar_t *hours);
void tp_ticketing_destroy(tp_ticketing_t **self_p);

/* tp_consumer_tag_cb: tickets live under their customer, {c:<customer>}. */
int tp_ticketing_tag(const tp_event_t *ev, char *tag, size_t len, void *arg);
/* tp_consumer_apply_cb; `arg` is the tp_ticketing_t. */
void tp_ticketing_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                        const tp_event_t *ev, void *arg);

#endif
