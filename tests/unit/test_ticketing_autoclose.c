/* test_ticketing_autoclose.c: resolved tickets close after the quiet
 * period (R-TICKET-2) and closing asks for a score (R-TICKET-6):
 * services/ticketing/ticketing_autoclose.h and tp_ticketing_autoclose
 * against a real Redis. Once per resolution with two instances; a ticket
 * reopened or resolved again meanwhile stays as it is. */
#include "ticketing_fixture.h"

#include "ticketing_autoclose.h"
#include "ticketing_ticket.h"

#define TICKET "tp:{s2}:c:C-1:ticket:T-1"
#define SCHEDULE "tp:{s2}:ticket:autoclose"

static tp_ticketing_t *tickets[2];
static tp_autoclose_t *watchers[2];

static void destroy_modules(fixture_t *fx) {
    (void)fx;
    for (int i = 0; i < 2; i++) {
        tp_autoclose_destroy(&watchers[i]);
        tp_ticketing_destroy(&tickets[i]);
        assert_null(watchers[i]);
    }
}

static int teardown(void **state) {
    fixture_close(*state, destroy_modules);
    return 0;
}

static void start(fixture_t *fx, int i, tp_store_t *store) {
    tp_ticket_rules_t rules;
    char path[] = "/tmp/tp-rules-XXXXXX", err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    tp_config_t *cfg = tp_config_new(path, err, sizeof err);
    unlink(path);
    assert_non_null(cfg);
    tp_ticket_rules_load(&rules, cfg);
    tickets[i] = tp_ticketing_new(store, fx->emitter, &rules, fx->hours, fx->roster);
    tp_config_destroy(&cfg); /* rules' strings were copied */
    assert_non_null(tickets[i]);
    watchers[i] = tp_autoclose_new(&fx->loop, store, tickets[i], 20);
    assert_non_null(watchers[i]);
}

static void resolved_ticket(fixture_t *fx, const char *status, long long resolved_at) {
    long long opened = resolved_at - 3600000;
    freeReplyObject(
        tp_test_cmd(fx->sync,
                    "HSET " TICKET " ticket T-1 customer C-1 ver 5 status %s "
                    "resolved_at %lld paused_at %lld opened_at %lld pauses [] "
                    "priority normal title Slow owner eng-1 department "
                    "engineering contact li@c1.example responded_at %lld",
                    status, resolved_at, resolved_at, opened, opened + 1000));
    freeReplyObject(tp_test_cmd(fx->sync,
                                "ZADD tp:{s2}:tickets:status:%s %lld C-1|T-1",
                                status, opened));
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD " SCHEDULE " %lld C-1|T-1|%lld",
                                resolved_at + 1000, resolved_at));
}

static void test_R_TICKET_2_closes_once_and_asks_for_a_score(void **state) {
    fixture_t *fx = *state;
    tp_store_t *second = store_new(fx);
    long long resolved = (long long)tp_now_ms() - 60000;
    resolved_ticket(fx, "resolved", resolved);
    start(fx, 0, fx->store);
    start(fx, 1, second);
    RUN_UNTIL(fx, !strcmp(hget(fx, TICKET, "status"), "closed"), 3000);
    RUN_UNTIL(fx, tp_test_int(fx->sync, "ZCARD " SCHEDULE) == 0, 3000);
    RUN_FOR(fx, 100);
    assert_string_equal(hget(fx, TICKET, "status"), "closed");
    assert_string_equal(hget(fx, TICKET, "ver"), "6");
    assert_string_equal(hget(fx, TICKET, "paused_at"), "");
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " SCHEDULE), 0);
    assert_int_equal(tp_test_int(fx->sync, "LLEN " TICKET ":history"), 1);
    redisReply *h = tp_test_cmd(fx->sync, "LINDEX " TICKET ":history 0");
    assert_non_null(strstr(h->str, "\"by\":\"ticketing\""));
    assert_non_null(strstr(h->str, "\"from\":\"resolved\",\"to\":\"closed\""));
    freeReplyObject(h);
    /* the indexes moved; the agent's load no longer counts it */
    assert_int_equal(
        tp_test_int(fx->sync, "ZCARD tp:{s2}:tickets:status:resolved"), 0);
    assert_int_equal(
        tp_test_int(fx->sync, "ZCARD tp:{s2}:tickets:status:closed"), 1);
    assert_int_equal(tp_test_int(fx->sync, "ZCARD tp:{s2}:tickets:open:eng-1"),
                     0);
    /* no clock runs on a closed ticket */
    assert_int_equal(tp_test_int(fx->sync, "ZCARD tp:{s2}:sla:due"), 0);
    assert_int_equal(tp_test_int(fx->sync, "ZCARD tp:{s2}:sla:escalate"), 0);
    tp_event_t evs[4];
    int n = outbox(fx, evs, 4);
    assert_int_equal(n, 1);
    assert_int_equal(evs[0].type, TP_EVENT_SURVEY_REQUESTED);
    assert_string_equal(evs[0].id, "T-1:survey");
    assert_string_equal(tp_event_str(&evs[0], "owner"), "li@c1.example");
    assert_string_equal(tp_event_str(&evs[0], "email"), "li@c1.example");
    tp_event_clear(&evs[0]);
    tp_store_destroy(&second);
}

static void test_R_TICKET_2_a_reopened_ticket_stays_open(void **state) {
    fixture_t *fx = *state;
    long long resolved = (long long)tp_now_ms() - 60000;
    resolved_ticket(fx, "in_progress", resolved); /* reopened: entry left behind */
    start(fx, 0, fx->store);
    RUN_UNTIL(fx, tp_test_int(fx->sync, "ZCARD " SCHEDULE) == 0, 3000);
    RUN_FOR(fx, 100);
    assert_string_equal(hget(fx, TICKET, "status"), "in_progress");
    assert_string_equal(hget(fx, TICKET, "ver"), "5");
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " OUTBOX), 0);
    /* resolved again later: the earlier resolution's entry closes nothing */
    freeReplyObject(tp_test_cmd(
        fx->sync, "HSET " TICKET " status resolved resolved_at %lld",
        resolved + 30000));
    freeReplyObject(
        tp_test_cmd(fx->sync, "ZADD " SCHEDULE " 1 C-1|T-1|%lld", resolved));
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD " SCHEDULE " 1 garbage"));
    RUN_UNTIL(fx, tp_test_int(fx->sync, "ZCARD " SCHEDULE) == 0, 3000);
    RUN_FOR(fx, 100);
    assert_string_equal(hget(fx, TICKET, "status"), "resolved");
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " OUTBOX), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_R_TICKET_2_closes_once_and_asks_for_a_score,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_R_TICKET_2_a_reopened_ticket_stays_open, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
