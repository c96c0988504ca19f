/* ticketing_state.c: allowed ticket transitions. */
#include "ticketing_state.h"

#include <stdio.h>
#include <string.h>

static const char *const names[] = {
#define XX(e, n) n,
    TP_TICKET_STATE_MAP(XX)
#undef XX
};

#define T(s) (1u << TP_TICKET_##s)
/* allowed[from] = set of states it may move to */
static const unsigned allowed[TP_TICKET_STATE_COUNT] = {
    [TP_TICKET_NEW] = T(ASSIGNED) | T(IN_PROGRESS) | T(RESOLVED) | T(CLOSED),
    [TP_TICKET_ASSIGNED] = T(ASSIGNED) | T(IN_PROGRESS) | T(WAITING_CUSTOMER) |
                           T(RESOLVED) | T(CLOSED),
    [TP_TICKET_IN_PROGRESS] = T(ASSIGNED) | T(WAITING_CUSTOMER) | T(RESOLVED),
    [TP_TICKET_WAITING_CUSTOMER] = T(IN_PROGRESS) | T(RESOLVED) | T(CLOSED),
    [TP_TICKET_RESOLVED] = T(IN_PROGRESS) | T(CLOSED), /* reopen, or close */
    [TP_TICKET_CLOSED] = 0,
};
#undef T

int tp_ticket_state(const char *name) {
    for (int i = 0; name && i < TP_TICKET_STATE_COUNT; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

const char *tp_ticket_state_name(tp_ticket_state_t s) {
    return (int)s >= 0 && s < TP_TICKET_STATE_COUNT ? names[s] : "unknown";
}

int tp_ticket_transition_ok(tp_ticket_state_t from, tp_ticket_state_t to,
                            char *why, size_t whylen) {
    if ((int)from < 0 || from >= TP_TICKET_STATE_COUNT || (int)to < 0 ||
        to >= TP_TICKET_STATE_COUNT) {
        snprintf(why, whylen, "unknown state");
        return 0;
    }
    if (allowed[from] & (1u << to)) return 1;
    if (from == TP_TICKET_CLOSED)
        snprintf(why, whylen, "a closed ticket cannot change (to %s)", names[to]);
    else
        snprintf(why, whylen, "%s cannot move to %s", names[from], names[to]);
    return 0;
}

int tp_ticket_state_settled(tp_ticket_state_t s) {
    return s == TP_TICKET_RESOLVED || s == TP_TICKET_CLOSED;
}
