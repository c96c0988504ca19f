/* test_scheduler_fire.c: the firing of reminders from customers' books
 * (services/scheduler/scheduler_fire.h) against a real Redis: a reminder
 * the poll finds fires once, its book and index entries follow; a claim
 * computed from a book that changed meanwhile is refused and computed
 * again from the book Redis holds (the reminder still due there fires
 * once, the others stay); a reminder replanned meanwhile does not fire.
 * The emitter points at an ingress nobody serves, so reminder.due stays in
 * the shard's outbox, where the tests read it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "scheduler_fire.h"
#include "tp/bus.h"
#include "tp/emit.h"
#include "tp/event.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/reminder.h"
#include "tp/store.h"

#define CUSTOMER "C-1" /* shard 2 */

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int expired;
    redisContext *sync;
    tp_store_t *store;
    tp_store_options_t link;
    tp_bus_t *bus;
    tp_emitter_t *emitter;
    tp_fire_t *fire;
    int shard, group;
} fixture_t;

static tp_test_redis_t redis;

/* A reminder record due at `due` for `owner`. */
static json_t *record(int64_t due, const char *owner) {
    return json_pack("{s:s, s:I, s:b, s:s}", "owner", owner, "due_at", (json_int_t)due,
                     "urgent", 0, "text", "Answer the web inquiry");
}

/* Stores the customer's book (`state`, `reminders`: taken) and indexes it
 * as the scheduler does. Returns the packed book (caller frees) in *len. */
static char *put_book(fixture_t *fx, json_t *state, json_t *reminders, size_t *len) {
    char *book = tp_book_pack(CUSTOMER, state, reminders, len);
    assert_non_null(book);
    freeReplyObject(tp_test_cmd(fx->sync, "HSET tp:{s%d}:r:c:%d %s %b",
                                fx->shard, fx->group, CUSTOMER, book, *len));
    int64_t first = tp_key_due_score(tp_book_earliest(reminders, NULL));
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD tp:{s%d}:r:due:%d %lld %s",
                                fx->shard, fx->group, (long long)first,
                                CUSTOMER));
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD tp:{s%d}:r:due %lld %d",
                                fx->shard, (long long)first, fx->group));
    json_t *none = json_object(), *moves = tp_book_owner_moves(none, reminders);
    const char *owner;
    json_t *v;
    json_object_foreach(moves, owner, v) freeReplyObject(
        tp_test_cmd(fx->sync, "ZADD tp:{s%d}:r:owner:%d:%s %lld %s", fx->shard,
                    fx->group % TP_OWNER_PARTS, owner,
                    (long long)json_integer_value(v), CUSTOMER));
    freeReplyObject(tp_test_cmd(fx->sync, "HSET tp:{s%d}:r:count pending %d",
                                fx->shard, (int)json_object_size(reminders)));
    json_decref(moves);
    json_decref(none);
    json_decref(state);
    json_decref(reminders);
    return book;
}

/* The customer's reminders in its book as Redis holds it, and its state
 * into *state unless NULL (caller owns both), NULL when it has no book. */
static json_t *stored_reminders(fixture_t *fx, json_t **state) {
    redisReply *r = tp_test_cmd(fx->sync, "HGET tp:{s%d}:r:c:%d %s", fx->shard,
                                fx->group, CUSTOMER);
    json_t *st = NULL, *rems = NULL;
    if (r->type == REDIS_REPLY_STRING)
        assert_int_equal(tp_book_unpack(CUSTOMER, r->str, r->len, &st, &rems), 0);
    freeReplyObject(r);
    if (state)
        *state = st;
    else
        json_decref(st);
    return rems;
}

/* The reminder.due in the shard's outbox, their reminder ids into `ids`. */
static int fired(fixture_t *fx, char ids[][64], int max) {
    redisReply *r =
        tp_test_cmd(fx->sync, "ZRANGE %s 0 -1",
                    tp_emitter_outbox_shard(fx->emitter, fx->shard));
    int n = 0;
    for (size_t i = 0; i < r->elements && n < max; i++) {
        tp_event_t ev;
        tp_event_error_t err;
        tp_event_init(&ev);
        if (tp_event_from_msgpack(&ev, r->element[i]->str, r->element[i]->len, &err) < 0)
            fail_msg("outbox entry: %s: %s", err.field, err.message);
        assert_int_equal(ev.type, TP_EVENT_REMINDER_DUE);
        assert_string_equal(ev.customer, CUSTOMER);
        snprintf(ids[n++], 64, "%s", tp_event_str(&ev, "reminder"));
        tp_event_clear(&ev);
    }
    freeReplyObject(r);
    return n;
}

static int group_setup(void **state) {
    (void)state;
    tp_log_init("test_scheduler_fire", "", TP_LOG_ERROR);
    return tp_test_redis_start(&redis);
}

static int group_teardown(void **state) {
    (void)state;
    tp_test_redis_stop(&redis);
    return 0;
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || tp_test_loop_init(&fx->loop, &fx->watchdog, &fx->expired) < 0)
        return -1;
    *state = fx;
    if (!(fx->sync = tp_test_redis_connect(&redis))) return -1;
    fx->shard = tp_key_shard(CUSTOMER);
    fx->group = tp_key_reminder_group(CUSTOMER);
    fx->link.host = "127.0.0.1";
    fx->link.port = redis.port;
    fx->link.reconnect_min_ms = 10;
    fx->link.reconnect_max_ms = 100;
    fx->store = tp_store_new(&fx->loop, &fx->link);
    if (!fx->store) return -1;
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    fx->bus = tp_bus_new(&fx->loop);
    if (!fx->bus) return -1;
    tp_emitter_options_t o;
    memset(&o, 0, sizeof o);
    o.service = TP_SERVICE_SCHEDULER;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tp_test_free_port());
    o.endpoint = endpoint;
    o.resend_after_ms = 60000; /* nobody answers: entries stay put */
    fx->emitter = tp_emitter_new(&fx->loop, fx->bus, fx->store, &o);
    return fx->emitter ? 0 : -1;
}

/* The firing, polling every `poll_ms` (the first poll at once) for the
 * next second. */
static void fire_start(fixture_t *fx, int64_t poll_ms) {
    tp_fire_options_t fo = {.poll_interval_ms = poll_ms, .lookahead_ms = 1000, .poll_batch = 100};
    fx->fire = tp_fire_new(&fx->loop, fx->store, &fx->link, fx->emitter, &fo);
    assert_non_null(fx->fire);
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    tp_store_destroy(&fx->store);
    tp_fire_destroy(&fx->fire);
    tp_emitter_destroy(&fx->emitter);
    tp_bus_destroy(&fx->bus);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    redisFree(fx->sync);
    free(fx);
    assert_int_equal(rc, 0);
    return 0;
}

static void test_polled_reminder_fires_once_and_leaves_the_book(void **state) {
    fixture_t *fx = *state;
    int64_t due = tp_now_ms() + 300;
    size_t len;
    free(put_book(fx, json_pack("{s:s}", "seq", "1"),
                  json_pack("{s:o, s:o}", CUSTOMER "|R-SLA-1|1", record(due, "rep-1"),
                            CUSTOMER "|R-CAD-1", record(due + 86400000, "rep-2")),
                  &len));
    fire_start(fx, 100);
    char ids[4][64];
    RUN_UNTIL(fx, fired(fx, ids, 4) >= 1, 3000);
    RUN_FOR(fx, 300); /* nothing more */
    assert_int_equal(fired(fx, ids, 4), 1);
    assert_string_equal(ids[0], CUSTOMER "|R-SLA-1|1");
    /* the book keeps the other one, the indexes follow it */
    json_t *rems = stored_reminders(fx, NULL);
    assert_int_equal(json_object_size(rems), 1);
    assert_non_null(json_object_get(rems, CUSTOMER "|R-CAD-1"));
    json_decref(rems);
    assert_int_equal(tp_test_int(fx->sync, "ZSCORE tp:{s%d}:r:due:%d %s",
                                 fx->shard, fx->group, CUSTOMER),
                     tp_key_due_score(due + 86400000));
    redisReply *r =
        tp_test_cmd(fx->sync, "ZSCORE tp:{s%d}:r:owner:%d:rep-1 %s", fx->shard,
                    fx->group % TP_OWNER_PARTS, CUSTOMER);
    assert_int_equal(r->type, REDIS_REPLY_NIL); /* rep-1 has none left */
    freeReplyObject(r);
    assert_int_equal(
        tp_test_int(fx->sync, "HGET tp:{s%d}:r:count pending", fx->shard), 1);
    assert_int_equal(
        tp_test_int(fx->sync, "HGET tp:{s%d}:r:stats fired", fx->shard), 1);
    tp_fire_stats_t st;
    tp_fire_stats(fx->fire, &st);
    assert_int_equal(st.fired, 1);
}

static void test_changed_book_is_claimed_again_from_redis(void **state) {
    fixture_t *fx = *state;
    int64_t due = tp_now_ms() + 400;
    /* Redis holds a book with a third reminder the instance never saw */
    size_t len_redis, len_known;
    free(put_book(fx, json_pack("{s:s}", "grade", "A"),
                  json_pack("{s:o, s:o}", CUSTOMER "|R-SLA-1|1", record(due, "rep-1"),
                            CUSTOMER "|R-TOUCH-1", record(due + 3600000, "rep-1")),
                  &len_redis));
    json_t *known_state = json_pack("{s:s}", "grade", "B");
    json_t *known = json_pack("{s:o}", CUSTOMER "|R-SLA-1|1", record(due, "rep-1"));
    char *book_known = tp_book_pack(CUSTOMER, known_state, known, &len_known);
    /* no poll after the first (which finds the book known here as indexed):
     * only the claim computed again from Redis's book can fire it */
    fire_start(fx, 60000);
    /* as a plan of this instance would hand it over: another book */
    tp_fire_arm_book(CUSTOMER, fx->shard, book_known, len_known, known, fx->fire);
    char ids[4][64];
    RUN_UNTIL(fx, fired(fx, ids, 4) >= 1, 3000);
    RUN_FOR(fx, 300);
    assert_int_equal(fired(fx, ids, 4), 1);
    assert_string_equal(ids[0], CUSTOMER "|R-SLA-1|1");
    /* claimed from the book Redis held: its other reminder and its state
     * stay */
    json_t *st = NULL, *rems = stored_reminders(fx, &st);
    assert_int_equal(json_object_size(rems), 1);
    assert_non_null(json_object_get(rems, CUSTOMER "|R-TOUCH-1"));
    assert_string_equal(json_string_value(json_object_get(st, "grade")), "A");
    json_decref(rems);
    json_decref(st);
    assert_int_equal(
        tp_test_int(fx->sync, "HGET tp:{s%d}:r:stats fired", fx->shard), 1);
    free(book_known);
    json_decref(known);
    json_decref(known_state);
}

static void test_replanned_reminder_does_not_fire(void **state) {
    fixture_t *fx = *state;
    int64_t due = tp_now_ms() + 300, later = due + 3600000;
    size_t len_known, len;
    /* armed for `due` from the book this instance wrote ... */
    json_t *known_state = json_object();
    json_t *known = json_pack("{s:o}", CUSTOMER "|R-CAD-1", record(due, "rep-1"));
    char *book_known = tp_book_pack(CUSTOMER, known_state, known, &len_known);
    fire_start(fx, 100);
    /* ... while another instance has moved it an hour on */
    char *now_book = put_book(fx, json_object(),
                              json_pack("{s:o}", CUSTOMER "|R-CAD-1", record(later, "rep-1")),
                              &len);
    tp_fire_arm_book(CUSTOMER, fx->shard, book_known, len_known, known, fx->fire);
    RUN_FOR(fx, 1200);
    char ids[4][64];
    assert_int_equal(fired(fx, ids, 4), 0);
    tp_fire_stats_t st;
    tp_fire_stats(fx->fire, &st);
    assert_int_equal(st.fired, 0);
    assert_true(st.lost_race >= 1);
    /* the book is as the other instance left it */
    redisReply *r = tp_test_cmd(fx->sync, "HGET tp:{s%d}:r:c:%d %s", fx->shard,
                                fx->group, CUSTOMER);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, len);
    assert_memory_equal(r->str, now_book, len);
    freeReplyObject(r);
    free(now_book);
    free(book_known);
    json_decref(known);
    json_decref(known_state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_polled_reminder_fires_once_and_leaves_the_book,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_book_is_claimed_again_from_redis, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replanned_reminder_does_not_fire, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
