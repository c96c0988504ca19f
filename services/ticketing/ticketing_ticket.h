/* ticketing_ticket.h: tickets, from every event that touches one.
 *
 * Owns the ticket record ({c:<cust>}:ticket:<id>), its history (who, when,
 * from, to, why: R-TICKET-1), the customer's open-ticket summaries, the
 * email threads of the customer's tickets, the ticket indexes the intake
 * queries read (tickets:*), and the schedule of the ticket's clocks: the
 * first-response and resolution deadlines in sla:due, their escalation
 * steps in sla:escalate (R-TICKET-4) and the auto-close of a resolved
 * ticket in ticket:autoclose.
 *
 * Every change is read -> decide in C -> one guarded apply under the
 * ticket's version (tp/apply.h): instances never lose each other's update,
 * and an event applies once. A transition the state machine refuses
 * changes nothing but the history, which records why (R-TICKET-2).
 *
 *  ticket.opened    opens; the department by category unless named, the
 *                   agent picked in it unless named; a complaint is high
 *                   priority and tells the account owner (R-TICKET-5)
 *  ticket.updated   assign, comment, status, transfer (department and/or
 *                   agent, with the reason)
 *  call.ended       inbound on a support queue: joins the caller's open
 *                   ticket of the same category reported within the join
 *                   window (R-TICKET-7), else opens one
 *  email.received   (to a support address) answers a ticket's thread: a comment, which reopens a
 *                   resolved ticket within the reopen window and brings a
 *                   waiting one back to work; otherwise opens a ticket
 *  survey.answered  lands on the ticket; below the low score it plans the
 *                   account owner's follow-up as a scheduler reminder
 *                   (R-SAT-1)
 * Closing derives survey.requested (R-TICKET-6). Clocks run in business
 * hours (urgent around the clock) and pause while waiting for the customer
 * or resolved (R-TICKET-3). */
#ifndef TICKETING_TICKET_H
#define TICKETING_TICKET_H

#include <stdint.h>

#include "ticketing_roster.h"
#include "tp/calendar.h"
#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/store.h"

typedef struct tp_ticketing tp_ticketing_t;

typedef struct tp_ticket_rules {
    int64_t first_response_ms[4]; /* urgent, high, normal, low */
    int64_t resolution_ms[4];     /* urgent, high, normal, low */
    const char *default_owner;    /* told when nobody else is */
    int warning_share;            /* percent of a target: the warning */
    int64_t manager_delay_ms;     /* the manager this long after the lead */
    int64_t auto_close_ms;        /* a resolved ticket closes after this */
    int64_t join_window_ms;       /* R-TICKET-7 */
    int64_t reopen_window_ms;     /* R-TICKET-2 */
    const char *support_queues;   /* phone queues that open tickets, "a,b" */
    const char *support_addresses; /* addresses whose mail opens tickets,
                                      "a,b" (case-folded); "": every one */
    const char *call_category;    /* a call's category when it names none */
    const char *email_category;
} tp_ticket_rules_t;

/* Reads [ticketing]; strings borrowed from cfg. */
void tp_ticket_rules_load(tp_ticket_rules_t *rules, tp_config_t *cfg);

/* `store`, `emitter`, `hours` (the business calendar non-urgent clocks
 * count in) and `roster` borrowed; rules copied. Caller owns the result. */
tp_ticketing_t *tp_ticketing_new(tp_store_t *store, tp_emitter_t *emitter,
                                 const tp_ticket_rules_t *rules,
                                 const tp_calendar_t *hours, const tp_roster_t *roster);
/* Destroy the store first (changes in flight end), then this. */
void tp_ticketing_destroy(tp_ticketing_t **self_p);

/* tp_consumer_tag_cb: tickets live under their customer, {c:<customer>}. */
int tp_ticketing_tag(const tp_event_t *ev, char *tag, size_t len, void *arg);
/* tp_consumer_apply_cb; `arg` is the tp_ticketing_t. */
void tp_ticketing_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                        const tp_event_t *ev, void *arg);

/* Closes `ticket` of `customer` if it is still the resolved ticket it was
 * at `resolved_at` (auto-close after the quiet period). Once per
 * resolution whatever the number of instances asking: the change is
 * guarded by its own done mark. Runs on the loop; strings copied. */
void tp_ticketing_autoclose(tp_ticketing_t *self, const char *customer,
                            const char *ticket, int64_t resolved_at);

#endif
