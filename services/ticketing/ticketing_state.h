/* ticketing_state.h: the ticket state machine (R-TICKET-2). Pure: owns the
 * table of allowed transitions and nothing else. */
#ifndef TICKETING_STATE_H
#define TICKETING_STATE_H

#include <stddef.h>

/* The states, in lifecycle order. XX(ENUM, "name") */
#define TP_TICKET_STATE_MAP(XX)                                               \
    XX(NEW, "new")                                                            \
    XX(ASSIGNED, "assigned")                                                  \
    XX(IN_PROGRESS, "in_progress")                                            \
    XX(WAITING_CUSTOMER, "waiting_customer")                                  \
    XX(RESOLVED, "resolved")                                                  \
    XX(CLOSED, "closed")

typedef enum {
#define XX(e, n) TP_TICKET_##e,
    TP_TICKET_STATE_MAP(XX)
#undef XX
        TP_TICKET_STATE_COUNT
} tp_ticket_state_t;

/* The state named `name`, or -1. */
int tp_ticket_state(const char *name);
const char *tp_ticket_state_name(tp_ticket_state_t state);
/* 1 when `from` may move to `to`, else 0 with the reason in `why`. */
int tp_ticket_transition_ok(tp_ticket_state_t from, tp_ticket_state_t to,
                            char *why, size_t whylen);
/* 1 for states that leave the customer's open tickets (resolved, closed). */
int tp_ticket_state_settled(tp_ticket_state_t state);

#endif
