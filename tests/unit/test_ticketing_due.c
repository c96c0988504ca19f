/* test_ticketing_due.c: the per-shard watch of times that fell due
 * (services/ticketing/ticketing_due.h) against a real Redis: members due
 * are handed over with the ticket's fields and their parts, members not
 * due yet wait, a missing field or ticket reads "", and a malformed member
 * or one outside its customer's shard is dropped. The watch only reads:
 * what it hands over stays until its owner claims it. */
#include "ticketing_fixture.h"

#include "ticketing_due.h"

#define WATCHED "tp:{s2}:due:test" /* C-1's shard is 2 */
#define TICKET "tp:{s2}:c:C-1:ticket:T-1"

typedef struct seen {
    int n;
    char member[8][96], rest[8][32], customer[8][32], ticket[8][32], owner[8][32],
        title[8][32];
    int shard[8];
    int64_t when[8];
} seen_t;

static seen_t seen;
static tp_due_watch_t *watch;

static void on_due(void *arg, const tp_due_item_t *item) {
    seen_t *s = arg;
    if (s->n == 8) return;
    int i = s->n++;
    snprintf(s->member[i], sizeof s->member[i], "%s", item->member);
    snprintf(s->rest[i], sizeof s->rest[i], "%s", item->rest);
    snprintf(s->customer[i], sizeof s->customer[i], "%s", item->customer);
    snprintf(s->ticket[i], sizeof s->ticket[i], "%s", item->ticket);
    snprintf(s->owner[i], sizeof s->owner[i], "%s", item->fields[0]);
    snprintf(s->title[i], sizeof s->title[i], "%s", item->fields[1]);
    s->shard[i] = item->shard;
    s->when[i] = item->when;
}

static void destroy_modules(fixture_t *fx) {
    (void)fx;
    tp_due_watch_destroy(&watch);
    assert_null(watch);
    tp_due_watch_destroy(&watch); /* NULL is fine */
}

static int teardown(void **state) {
    fixture_close(*state, destroy_modules);
    return 0;
}

static const char *const FIELDS[] = {"owner", "title"};

static void test_members_due_are_handed_over_with_their_ticket(void **state) {
    fixture_t *fx = *state;
    memset(&seen, 0, sizeof seen);
    int64_t now = tp_now_ms();
    assert_int_equal(tp_key_shard("C-1"), 2);
    freeReplyObject(
        tp_test_cmd(fx->sync, "HSET " TICKET " owner eng-2 title Down"));
    freeReplyObject(tp_test_cmd(fx->sync,
                                "ZADD " WATCHED " %lld C-1|T-1|resolution",
                                (long long)(now - 10)));
    freeReplyObject(tp_test_cmd(
        fx->sync, "ZADD " WATCHED " %lld C-1|T-2|first_response|lead",
        (long long)(now - 5))); /* no such ticket */
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD " WATCHED " %lld C-1|T-1|later",
                                (long long)(now + 3600000)));
    watch = tp_due_watch_new(&fx->loop, fx->store, "due:test", FIELDS, 2, 20, on_due, &seen);
    assert_non_null(watch);
    assert_string_equal(tp_due_watch_key(watch, 2), WATCHED);
    assert_string_equal(tp_due_watch_prefix(watch, 2), "tp:{s2}:");
    RUN_UNTIL(fx, seen.n >= 2, 3000);
    assert_int_equal(seen.n, 2);
    /* in due order, with their parts */
    assert_string_equal(seen.member[0], "C-1|T-1|resolution");
    assert_string_equal(seen.customer[0], "C-1");
    assert_string_equal(seen.ticket[0], "T-1");
    assert_string_equal(seen.rest[0], "resolution");
    assert_string_equal(seen.owner[0], "eng-2");
    assert_string_equal(seen.title[0], "Down");
    assert_int_equal(seen.shard[0], 2);
    assert_int_equal(seen.when[0], now - 10);
    assert_string_equal(seen.rest[1], "first_response|lead");
    assert_string_equal(seen.owner[1], "");
    assert_string_equal(seen.title[1], "");
    /* it only reads: the ticket is as it was, nothing is derived, and
     * unclaimed members are handed over again next turn */
    assert_string_equal(hget(fx, TICKET, "owner"), "eng-2");
    tp_event_t none[1];
    assert_int_equal(outbox(fx, none, 1), 0);
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " WATCHED), 3);
    RUN_UNTIL(fx, seen.n >= 4, 3000);
    assert_string_equal(seen.member[2], "C-1|T-1|resolution");
}

static void test_malformed_and_misplaced_members_are_dropped(void **state) {
    fixture_t *fx = *state;
    memset(&seen, 0, sizeof seen);
    int64_t now = tp_now_ms();
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD " WATCHED " %lld nonsense",
                                (long long)(now - 10)));
    /* C-9 lives in another shard than 2 */
    assert_int_not_equal(tp_key_shard("C-9"), 2);
    freeReplyObject(tp_test_cmd(fx->sync,
                                "ZADD " WATCHED " %lld C-9|T-9|resolution",
                                (long long)(now - 10)));
    watch = tp_due_watch_new(&fx->loop, fx->store, "due:test", FIELDS, 2, 20, on_due, &seen);
    RUN_UNTIL(fx, tp_test_int(fx->sync, "ZCARD " WATCHED) == 0, 3000);
    assert_int_equal(tp_test_int(fx->sync, "ZCARD " WATCHED), 0);
    assert_int_equal(seen.n, 0);
}

/* Destroys the watch from its own callback, at the first member. */
static void on_due_destroy(void *arg, const tp_due_item_t *item) {
    on_due(arg, item);
    tp_due_watch_destroy(&watch);
}

static void test_nothing_is_handed_over_after_destroy(void **state) {
    fixture_t *fx = *state;
    memset(&seen, 0, sizeof seen);
    int64_t now = tp_now_ms();
    freeReplyObject(tp_test_cmd(fx->sync,
                                "ZADD " WATCHED " %lld C-1|T-1|resolution",
                                (long long)(now - 20)));
    freeReplyObject(tp_test_cmd(fx->sync,
                                "ZADD " WATCHED " %lld C-1|T-2|resolution",
                                (long long)(now - 10)));
    watch = tp_due_watch_new(&fx->loop, fx->store, "due:test", FIELDS, 2, 20, on_due_destroy,
                             &seen);
    assert_non_null(watch);
    RUN_UNTIL(fx, seen.n >= 1, 3000);
    RUN_FOR(fx, 200); /* the rest of that answer, and later turns: nothing */
    assert_int_equal(seen.n, 1);
    assert_null(watch);
}

static void test_too_many_fields_is_refused(void **state) {
    fixture_t *fx = *state;
    const char *many[TP_DUE_FIELDS_MAX + 1];
    for (int i = 0; i <= TP_DUE_FIELDS_MAX; i++) many[i] = "owner";
    assert_null(tp_due_watch_new(&fx->loop, fx->store, "due:test", many,
                                 TP_DUE_FIELDS_MAX + 1, 20, on_due, &seen));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_members_due_are_handed_over_with_their_ticket,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_and_misplaced_members_are_dropped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_is_handed_over_after_destroy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_too_many_fields_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
