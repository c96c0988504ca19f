/* test_ticketing_escalate.c: escalation steps (R-TICKET-4) of
 * services/ticketing/ticketing_escalate.h against a real Redis: a step
 * that fell due goes out once as ticket.escalated to its recipient, with
 * two instances taking steps from the same schedule, and a step already
 * marked on the ticket never goes out again. */
#include "ticketing_fixture.h"

#include "ticketing_escalate.h"

#define TICKET "tp:{s2}:c:C-1:ticket:T-1"
#define SCHEDULE "tp:{s2}:sla:escalate"

static tp_escalate_t *instances[2];

static void destroy_modules(fixture_t *fx) {
    (void)fx;
    tp_escalate_destroy(&instances[0]);
    tp_escalate_destroy(&instances[1]);
    assert_null(instances[0]);
    tp_escalate_destroy(&instances[0]); /* NULL is fine */
}

static int teardown(void **state) {
    fixture_close(*state, destroy_modules);
    return 0;
}

static void ticket_at(fixture_t *fx, const char *owner) {
    freeReplyObject(
        tp_test_cmd(fx->sync,
                    "HSET " TICKET " ver 3 owner %s department engineering "
                    "priority urgent title Down first_response_due 1000 "
                    "resolution_due 5000",
                    owner));
}

static void test_R_TICKET_4_each_step_once_across_instances(void **state) {
    fixture_t *fx = *state;
    tp_store_t *second = store_new(fx);
    int64_t now = tp_now_ms();
    ticket_at(fx, "eng-2");
    freeReplyObject(tp_test_cmd(
        fx->sync, "ZADD " SCHEDULE " %lld C-1|T-1|first_response|warning",
        (long long)(now - 10)));
    freeReplyObject(tp_test_cmd(
        fx->sync, "ZADD " SCHEDULE " %lld C-1|T-1|first_response|lead",
        (long long)(now - 5)));
    freeReplyObject(tp_test_cmd(
        fx->sync, "ZADD " SCHEDULE " %lld C-1|T-1|first_response|manager",
        (long long)(now + 3600000)));
    instances[0] = tp_escalate_new(&fx->loop, fx->store, fx->emitter, fx->roster, 20);
    instances[1] = tp_escalate_new(&fx->loop, second, fx->emitter, fx->roster, 20);
    assert_non_null(instances[0]);
    assert_non_null(instances[1]);
    RUN_UNTIL(fx, tp_test_int(fx->sync, "ZCARD " OUTBOX) == 2, 3000);
    RUN_FOR(fx, 200); /* both instances looked again */
    tp_event_t evs[8];
    int n = outbox(fx, evs, 8);
    assert_int_equal(n, 2);
    int warning = 0, lead = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(evs[i].type, TP_EVENT_TICKET_ESCALATED);
        assert_string_equal(evs[i].customer, "C-1");
        const char *step = tp_event_str(&evs[i], "step");
        if (!strcmp(step, "warning")) {
            warning++;
            assert_string_equal(tp_event_str(&evs[i], "owner"), "eng-2");
            assert_string_equal(evs[i].id, "T-1:first_response:warning");
        } else {
            lead++;
            assert_string_equal(step, "lead");
            assert_string_equal(tp_event_str(&evs[i], "owner"), "eng-lead");
        }
        assert_int_equal(tp_event_int(&evs[i], "deadline", 0), 1000);
        tp_event_clear(&evs[i]);
    }
    assert_int_equal(warning, 1);
    assert_int_equal(lead, 1);
    assert_true(*hget(fx, TICKET, "esc_first_response_warning"));
    assert_true(*hget(fx, TICKET, "esc_first_response_lead"));
    assert_int_equal(tp_test_int(fx->sync, "LLEN " TICKET ":history"), 2);
    /* the manager's step waits for its time */
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " SCHEDULE), 1);

    /* rescheduled after its mark (a read raced the step): it never repeats */
    freeReplyObject(tp_test_cmd(
        fx->sync, "ZADD " SCHEDULE " %lld C-1|T-1|first_response|warning",
        (long long)(now - 1)));
    RUN_UNTIL(fx, tp_test_int(fx->sync, "ZCARD " SCHEDULE) == 1, 3000);
    RUN_FOR(fx, 100);
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " OUTBOX), 2);
    tp_store_destroy(&second);
}

static void test_steps_of_gone_or_malformed_tickets_are_dropped(void **state) {
    fixture_t *fx = *state;
    int64_t now = tp_now_ms();
    freeReplyObject(tp_test_cmd(
        fx->sync, "ZADD " SCHEDULE " %lld C-9|T-9|resolution|manager",
        (long long)(now - 10)));
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD " SCHEDULE " %lld nonsense",
                                (long long)(now - 10)));
    instances[0] = tp_escalate_new(&fx->loop, fx->store, fx->emitter, fx->roster, 20);
    RUN_UNTIL(fx, tp_test_int(fx->sync, "ZCARD " SCHEDULE) == 0, 3000);
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " SCHEDULE), 0);
    RUN_FOR(fx, 100);
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " OUTBOX), 0);
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:{s10}:c:C-9:ticket:T-9"),
                     0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_R_TICKET_4_each_step_once_across_instances, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_steps_of_gone_or_malformed_tickets_are_dropped,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
