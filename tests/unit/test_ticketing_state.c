/* test_ticketing_state.c: the ticket state machine of
 * services/ticketing/ticketing_state.h (R-TICKET-2: new, assigned, in
 * progress, waiting for customer, resolved, closed; reopened on a customer
 * reply within the reopen window).
 *
 * All 36 (from, to) pairs are written out below, so any change to the
 * allowed set fails here until this table is changed with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ticketing_state.h"

#define N TP_TICKET_STATE_COUNT

static const char *const state_names[N] = {
    "new", "assigned", "in_progress", "waiting_customer", "resolved", "closed",
};

/* R-TICKET-2, expected[from][to]: 1 allowed, 0 refused.
 *
 *   to:               new asg prg wait res clo
 *   new                0   1   1   0    1   1   straight to work, solve or
 *                                               close (spam, duplicate); no
 *                                               waiting before anyone looked
 *   assigned           0   1   1   1    1   1   re-assignment allowed
 *   in_progress        0   1   0   1    1   0   hand over, wait, resolve;
 *                                               closing needs resolved first
 *   waiting_customer   0   0   1   0    1   1   the customer answered, or
 *                                               solved, or gave up on
 *   resolved           0   0   1   0    0   1   reopen (customer reply in the
 *                                               reopen window) or close
 *   closed             0   0   0   0    0   0   final
 *
 * Nothing ever goes back to new. */
static const int expected[N][N] = {
    /* new */              {0, 1, 1, 0, 1, 1},
    /* assigned */         {0, 1, 1, 1, 1, 1},
    /* in_progress */      {0, 1, 0, 1, 1, 0},
    /* waiting_customer */ {0, 0, 1, 0, 1, 1},
    /* resolved */         {0, 0, 1, 0, 0, 1},
    /* closed */           {0, 0, 0, 0, 0, 0},
};

static void test_state_names_round_trip(void **state) {
    (void)state;
    assert_int_equal(N, 6);
    for (int s = 0; s < N; s++) {
        assert_string_equal(tp_ticket_state_name((tp_ticket_state_t)s), state_names[s]);
        assert_int_equal(tp_ticket_state(state_names[s]), s);
    }
    assert_int_equal(tp_ticket_state("open"), -1);
    assert_int_equal(tp_ticket_state("New"), -1); /* names are exact */
    assert_int_equal(tp_ticket_state("in progress"), -1);
    assert_int_equal(tp_ticket_state(""), -1);
    assert_int_equal(tp_ticket_state(NULL), -1);
    assert_string_equal(tp_ticket_state_name((tp_ticket_state_t)-1), "unknown");
    assert_string_equal(tp_ticket_state_name((tp_ticket_state_t)N), "unknown");
}

/* Every one of the 36 pairs, against the table; a refused one always says
 * why, an allowed one leaves `why` alone. */
static void test_every_transition(void **state) {
    (void)state;
    int allowed = 0, refused = 0;
    for (int from = 0; from < N; from++)
        for (int to = 0; to < N; to++) {
            char why[160] = "untouched";
            int ok = tp_ticket_transition_ok((tp_ticket_state_t)from,
                                             (tp_ticket_state_t)to, why, sizeof why);
            if (ok != expected[from][to])
                fail_msg("R-TICKET-2: %s -> %s gave %d, table says %d (%s)",
                         state_names[from], state_names[to], ok, expected[from][to],
                         why);
            if (ok) {
                allowed++;
                assert_string_equal(why, "untouched");
            } else {
                refused++;
                assert_true(strcmp(why, "untouched") != 0 && why[0] != '\0');
                /* the reason names where it was going */
                if (!strstr(why, state_names[to]))
                    fail_msg("%s -> %s: reason \"%s\" does not name %s",
                             state_names[from], state_names[to], why, state_names[to]);
            }
        }
    assert_int_equal(allowed, 17);
    assert_int_equal(refused, 19);
}

/* The reason text of a refused transition, exactly. */
static void test_refusal_reasons(void **state) {
    (void)state;
    char why[160];
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_NEW, TP_TICKET_WAITING_CUSTOMER,
                                             why, sizeof why),
                     0);
    assert_string_equal(why, "new cannot move to waiting_customer");
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_IN_PROGRESS, TP_TICKET_CLOSED,
                                             why, sizeof why),
                     0);
    assert_string_equal(why, "in_progress cannot move to closed");
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_RESOLVED, TP_TICKET_NEW, why,
                                             sizeof why),
                     0);
    assert_string_equal(why, "resolved cannot move to new");
    /* closed is final, and says so */
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_CLOSED, TP_TICKET_IN_PROGRESS,
                                             why, sizeof why),
                     0);
    assert_string_equal(why, "a closed ticket cannot change (to in_progress)");
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_CLOSED, TP_TICKET_CLOSED, why,
                                             sizeof why),
                     0);
    assert_string_equal(why, "a closed ticket cannot change (to closed)");
}

/* R-TICKET-2 reopen: a resolved ticket goes back to work, a closed one
 * never does. */
static void test_reopen_only_before_closed(void **state) {
    (void)state;
    char why[160];
    assert_true(tp_ticket_transition_ok(TP_TICKET_RESOLVED, TP_TICKET_IN_PROGRESS, why,
                                        sizeof why));
    for (int to = 0; to < N; to++)
        assert_false(tp_ticket_transition_ok(TP_TICKET_CLOSED, (tp_ticket_state_t)to,
                                             why, sizeof why));
}

/* States outside the enum (a corrupt stored status reads as -1) are
 * refused, never indexed. */
static void test_unknown_states_refused(void **state) {
    (void)state;
    char why[160];
    assert_int_equal(tp_ticket_transition_ok((tp_ticket_state_t)-1, TP_TICKET_ASSIGNED,
                                             why, sizeof why),
                     0);
    assert_string_equal(why, "unknown state");
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_NEW, (tp_ticket_state_t)-1, why,
                                             sizeof why),
                     0);
    assert_string_equal(why, "unknown state");
    assert_int_equal(tp_ticket_transition_ok((tp_ticket_state_t)N, TP_TICKET_NEW, why,
                                             sizeof why),
                     0);
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_NEW, (tp_ticket_state_t)N, why,
                                             sizeof why),
                     0);
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_NEW, (tp_ticket_state_t)99, why,
                                             sizeof why),
                     0);
}

/* A short `why` is cut, NUL-terminated, never overrun. */
static void test_reason_truncated_safely(void **state) {
    (void)state;
    char why[16];
    memset(why, 'x', sizeof why);
    assert_int_equal(tp_ticket_transition_ok(TP_TICKET_CLOSED, TP_TICKET_NEW, why, 8), 0);
    assert_string_equal(why, "a close");
    assert_int_equal(why[8], 'x');
}

/* Resolved and closed leave the customer's open tickets; the rest do not. */
static void test_settled_states(void **state) {
    (void)state;
    static const int settled[N] = {0, 0, 0, 0, 1, 1};
    for (int s = 0; s < N; s++)
        if (tp_ticket_state_settled((tp_ticket_state_t)s) != settled[s])
            fail_msg("settled(%s) != %d", state_names[s], settled[s]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names_round_trip),
        cmocka_unit_test(test_every_transition),
        cmocka_unit_test(test_refusal_reasons),
        cmocka_unit_test(test_reopen_only_before_closed),
        cmocka_unit_test(test_unknown_states_refused),
        cmocka_unit_test(test_reason_truncated_safely),
        cmocka_unit_test(test_settled_states),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
