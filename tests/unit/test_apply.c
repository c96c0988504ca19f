/* test_apply.c: the shared guarded-apply script (tp/apply.h) against a
 * throwaway redis-server: writes happen once under their done mark, not at
 * all under a stale version, and a command outside the whitelist is refused
 * before anything is written; batched, the applies of one loop turn go out
 * as one call per slot and each still gets its own answer. Every test ends
 * with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "tp/apply.h"
#include "tp/log.h"
#include "tp/store.h"

static tp_test_redis_t redis;

typedef struct fixture {
    uv_loop_t loop;
    tp_store_t *store;
    redisContext *sync;
    int replied;
    long long outcome; /* first element, or -1 for an error reply */
    char error[256];
} fixture_t;

static void state_cb(tp_store_t *store, int connected, void *arg) {
    (void)store;
    *(int *)arg = connected;
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || uv_loop_init(&fx->loop) != 0) return -1;
    tp_store_options_t o = {.host = "127.0.0.1", .port = redis.port, .ns = "tp:"};
    fx->store = tp_store_new(&fx->loop, &o);
    int connected = 0;
    tp_store_on_state(fx->store, state_cb, &connected);
    tp_apply_script(fx->store);
    for (int i = 0; i < 500 && !connected; i++) uv_run(&fx->loop, UV_RUN_ONCE);
    if (!connected) return -1;
    if (!(fx->sync = tp_test_redis_connect(&redis))) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    tp_store_destroy(&fx->store);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    redisFree(fx->sync);
    free(fx);
    return 0;
}

static void reply_cb(tp_store_t *store, redisReply *r, void *arg) {
    fixture_t *fx = arg;
    fx->replied = 1;
    fx->outcome = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1)
        fx->outcome = r->element[0]->integer;
    else if (r && r->type == REDIS_REPLY_ERROR)
        snprintf(fx->error, sizeof fx->error, "%s", r->str);
}

/* Sends the apply and runs the loop until its reply. */
static long long apply_now(fixture_t *fx, tp_apply_t *a) {
    fx->replied = 0;
    fx->error[0] = '\0';
    assert_int_equal(tp_apply_send(a, fx->store, reply_cb, fx), 0);
    tp_apply_clear(a);
    for (int i = 0; i < 1000 && !fx->replied; i++) uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(fx->replied);
    return fx->outcome;
}

/* A record update guarded by version `expected`, bumping it to `next`:
 * the record <prefix>rec counts it, the set <prefix>seen names its mark. */
static void bump_in(tp_apply_t *a, const char *prefix, const char *done, const char *expected,
                    int next) {
    char rec[64];
    snprintf(rec, sizeof rec, "%srec", prefix);
    tp_apply_init(a, done, "60", rec, expected);
    int k = tp_apply_key(a, "%s", rec);
    tp_apply_cmd(a, "HSET", k);
    tp_apply_pair_int(a, "ver", next);
    tp_apply_cmd(a, "HINCRBY", k);
    tp_apply_str(a, "count");
    tp_apply_int(a, 1);
    tp_apply_cmd(a, "SADD", tp_apply_key(a, "%sseen", prefix));
    tp_apply_str(a, done);
}

static void bump(tp_apply_t *a, const char *done, const char *expected, int next) {
    bump_in(a, "tp:", done, expected, next);
}

static void test_applied_once_under_its_done_mark(void **state) {
    fixture_t *fx = *state;
    tp_apply_t a;
    bump(&a, "tp:done:e1", "0", 1);
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DONE);
    bump(&a, "tp:done:e1", "1", 2); /* redelivered: nothing happens */
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DUPLICATE);
    assert_int_equal(tp_test_int(fx->sync, "HGET tp:rec count"), 1);
    assert_int_equal(tp_test_int(fx->sync, "HGET tp:rec ver"), 1);
    assert_true(tp_test_int(fx->sync, "TTL tp:done:e1") > 0);
}

/* Marks as fields of one hash (tp_apply_done_field): each event once, the
 * events independent of each other, the hash expiring as a whole. */
static void test_applied_once_under_a_field_mark(void **state) {
    fixture_t *fx = *state;
    tp_apply_t a;
    bump(&a, "tp:marks", "0", 1);
    tp_apply_done_field(&a, "e1");
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DONE);
    bump(&a, "tp:marks", "1", 2); /* e1 redelivered: nothing happens */
    tp_apply_done_field(&a, "e1");
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DUPLICATE);
    bump(&a, "tp:marks", "1", 2); /* e2, marked in the same hash */
    tp_apply_done_field(&a, "e2");
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DONE);
    assert_int_equal(tp_test_int(fx->sync, "HGET tp:rec count"), 2);
    assert_int_equal(tp_test_int(fx->sync, "HLEN tp:marks"), 2);
    long long ttl = tp_test_int(fx->sync, "TTL tp:marks");
    assert_true(ttl > 0 && ttl <= 60);
    /* a field mark and a key mark of the same name are not each other */
    bump(&a, "tp:marks", "2", 3);
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DUPLICATE); /* the key exists */
    bump(&a, "tp:done:e1", "2", 3);
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DONE);
}

/* A record kept as one field of a shared hash, guarded by that field's
 * whole value (tp_apply_version_field). */
static void test_version_in_a_field_of_a_shared_hash(void **state) {
    fixture_t *fx = *state;
    tp_apply_t a;
    for (int round = 0; round < 2; round++) {
        const char *expected = round == 0 ? "0" : "{\"v\":1}";
        tp_apply_init(&a, round == 0 ? "tp:done:f1" : "tp:done:f2", "60", "tp:group",
                      expected);
        tp_apply_version_field(&a, "CUST-1");
        tp_apply_cmd(&a, "HSET", tp_apply_key(&a, "tp:group"));
        tp_apply_pair(&a, "CUST-1", round == 0 ? "{\"v\":1}" : "{\"v\":2}");
        assert_int_equal(apply_now(fx, &a), TP_APPLY_DONE);
    }
    /* computed from the first value: stale; another customer's field is
     * not this one's version */
    tp_apply_init(&a, "tp:done:f3", "60", "tp:group", "{\"v\":1}");
    tp_apply_version_field(&a, "CUST-1");
    tp_apply_cmd(&a, "HSET", tp_apply_key(&a, "tp:group"));
    tp_apply_pair(&a, "CUST-1", "{\"v\":9}");
    assert_int_equal(apply_now(fx, &a), TP_APPLY_STALE);
    tp_apply_init(&a, "tp:done:f4", "60", "tp:group", "0");
    tp_apply_version_field(&a, "CUST-2");
    tp_apply_cmd(&a, "HSET", tp_apply_key(&a, "tp:group"));
    tp_apply_pair(&a, "CUST-2", "{\"v\":1}");
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DONE);
    redisReply *r = redisCommand(fx->sync, "HGET tp:group CUST-1");
    assert_string_equal(r->str, "{\"v\":2}");
    freeReplyObject(r);
}

static void test_stale_version_writes_nothing(void **state) {
    fixture_t *fx = *state;
    tp_apply_t a;
    bump(&a, "tp:done:e1", "0", 1);
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DONE);
    bump(&a, "tp:done:e2", "0", 1); /* computed from version 0: stale */
    assert_int_equal(apply_now(fx, &a), TP_APPLY_STALE);
    assert_int_equal(tp_test_int(fx->sync, "HGET tp:rec count"), 1);
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:done:e2"),
                     0); /* can be retried */
    assert_int_equal(tp_test_int(fx->sync, "SCARD tp:seen"), 1);
}

static void test_disallowed_command_refused_before_any_write(void **state) {
    fixture_t *fx = *state;
    tp_apply_t a;
    bump(&a, "tp:done:e3", "0", 1); /* three good writes first */
    tp_apply_cmd(&a, "FLUSHALL", tp_apply_key(&a, "tp:rec"));
    assert_int_equal(apply_now(fx, &a), -1);
    assert_non_null(strstr(fx->error, "not allowed: FLUSHALL"));
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:rec"), 0);
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:seen"), 0);
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:done:e3"), 0);
}

static void test_keys_are_declared_once(void **state) {
    (void)state;
    tp_apply_t a;
    tp_apply_init(&a, "tp:done:x", "60", "tp:rec", "0");
    int k1 = tp_apply_key(&a, "tp:rec");
    int k2 = tp_apply_key(&a, "tp:%s", "other");
    assert_int_equal(k1, 2); /* the version record is KEYS[2] */
    assert_int_equal(tp_apply_key(&a, "tp:other"), k2);
    assert_int_equal(k2, 3);
    tp_apply_clear(&a);
}

/* ---- batches ---- */

typedef struct answer {
    int replied;
    long long outcome; /* first element, -1 an error reply, -2 none */
    char error[128];
} answer_t;

static void batch_answer_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    answer_t *an = arg;
    an->replied++;
    an->outcome = -2;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1)
        an->outcome = r->element[0]->integer;
    else if (r && r->type == REDIS_REPLY_ERROR) {
        an->outcome = -1;
        snprintf(an->error, sizeof an->error, "%s", r->str);
    }
}

/* Script calls Redis ran since CONFIG RESETSTAT. */
static long long evalsha_calls(fixture_t *fx) {
    redisReply *r = tp_test_cmd(fx->sync, "INFO commandstats");
    const char *at = strstr(r->str, "cmdstat_evalsha:calls=");
    long long n = at ? atoll(at + strlen("cmdstat_evalsha:calls=")) : 0;
    freeReplyObject(r);
    return n;
}

static void run_until_answered(fixture_t *fx, answer_t *an, int n) {
    for (int i = 0; i < 1000; i++) {
        int all = 1;
        for (int k = 0; k < n; k++) all = all && an[k].replied;
        if (all) return;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    fail_msg("not every apply of the batch was answered");
}

/* bump() with every key in the hash tag {t}: the applies a batch puts in
 * one call (a call is one slot's). */
static void bump_t(tp_apply_t *a, const char *done, const char *expected, int next) {
    bump_in(a, "tp:{t}:", done, expected, next);
}

static void batch_add(tp_apply_batch_t *batch, tp_apply_t *a, answer_t *an) {
    assert_int_equal(tp_apply_batch_send(batch, a, batch_answer_cb, an), 0);
    tp_apply_clear(a); /* copied by the batcher */
}

/* One turn's applies: one call, each apply its own answer in its order (a
 * duplicate, a stale one, a good one behind them still applied; applies
 * of different shapes side by side), the marks' hash given its expiry by
 * the call. */
static void test_batch_answers_each_apply(void **state) {
    fixture_t *fx = *state;
    tp_apply_t a;
    bump_t(&a, "tp:{t}:marks", "0", 1);
    tp_apply_done_field(&a, "e0");
    assert_int_equal(apply_now(fx, &a), TP_APPLY_DONE);
    tp_test_int(fx->sync, "PERSIST tp:{t}:marks"); /* the call must give it one */
    tp_test_int(fx->sync, "CONFIG RESETSTAT");
    tp_apply_batch_t *batch = tp_apply_batch_new(fx->store, 0);
    assert_non_null(batch);
    answer_t an[5] = {0};
    const char *marks[4] = {"e0", "e1", "e2", "e3"}; /* e0: seen before */
    const char *expected[4] = {"1", "1", "1", "2"};  /* e2: stale after e1 */
    for (int i = 0; i < 4; i++) {
        bump_t(&a, "tp:{t}:marks", expected[i], i == 3 ? 3 : 2);
        tp_apply_done_field(&a, marks[i]);
        batch_add(batch, &a, &an[i]);
        if (i == 1) { /* another shape between: no version, one key, two writes */
            tp_apply_init(&a, "tp:{t}:done:other", "60", NULL, NULL);
            int k = tp_apply_key(&a, "tp:{t}:other");
            tp_apply_cmd(&a, "RPUSH", k);
            tp_apply_str(&a, "a");
            tp_apply_str(&a, "b");
            tp_apply_cmd(&a, "LTRIM", k);
            tp_apply_int(&a, 0);
            tp_apply_int(&a, 9);
            batch_add(batch, &a, &an[4]);
        }
    }
    assert_int_equal(an[0].replied, 0); /* nothing before the turn ends */
    run_until_answered(fx, an, 5);
    assert_int_equal(an[0].outcome, TP_APPLY_DUPLICATE);
    assert_int_equal(an[1].outcome, TP_APPLY_DONE);
    assert_int_equal(an[4].outcome, TP_APPLY_DONE);
    assert_int_equal(an[2].outcome, TP_APPLY_STALE);
    assert_int_equal(an[3].outcome, TP_APPLY_DONE);
    for (int i = 0; i < 5; i++) assert_int_equal(an[i].replied, 1);
    assert_int_equal(evalsha_calls(fx), 1);
    assert_int_equal(tp_test_int(fx->sync, "HGET tp:{t}:rec count"), 3);
    assert_int_equal(tp_test_int(fx->sync, "HGET tp:{t}:rec ver"), 3);
    assert_int_equal(tp_test_int(fx->sync, "LLEN tp:{t}:other"), 2);
    assert_int_equal(tp_test_int(fx->sync, "HEXISTS tp:{t}:marks e2"), 0); /* can be retried */
    long long ttl = tp_test_int(fx->sync, "TTL tp:{t}:marks");
    assert_true(ttl > 0 && ttl <= 60);
    tp_apply_batch_destroy(&batch);
}

/* A command outside the whitelist fails its own apply only, before that
 * apply writes anything; a write that raises (WRONGTYPE) fails its own
 * apply only, its mark unset; the others of the call are applied. */
static void test_batch_refuses_a_bad_apply_alone(void **state) {
    fixture_t *fx = *state;
    tp_test_int(fx->sync, "SET tp:{t}:text hello");
    tp_test_int(fx->sync, "CONFIG RESETSTAT");
    tp_apply_batch_t *batch = tp_apply_batch_new(fx->store, 0);
    tp_apply_t a;
    answer_t an[4] = {0};
    bump_t(&a, "tp:{t}:done:b1", "0", 1);
    batch_add(batch, &a, &an[0]);
    tp_apply_init(&a, "tp:{t}:done:b2", "60", NULL, NULL);
    tp_apply_cmd(&a, "SADD", tp_apply_key(&a, "tp:{t}:bad"));
    tp_apply_str(&a, "x");
    tp_apply_cmd(&a, "FLUSHALL", tp_apply_key(&a, "tp:{t}:bad"));
    batch_add(batch, &a, &an[1]);
    tp_apply_init(&a, "tp:{t}:done:b3", "60", NULL, NULL);
    tp_apply_cmd(&a, "HINCRBY", tp_apply_key(&a, "tp:{t}:text")); /* not a hash */
    tp_apply_pair_int(&a, "n", 1);
    batch_add(batch, &a, &an[2]);
    bump_t(&a, "tp:{t}:done:b4", "1", 2);
    batch_add(batch, &a, &an[3]);
    run_until_answered(fx, an, 4);
    assert_int_equal(evalsha_calls(fx), 1);
    assert_int_equal(an[0].outcome, TP_APPLY_DONE);
    assert_int_equal(an[1].outcome, -1);
    assert_non_null(strstr(an[1].error, "not allowed: FLUSHALL"));
    assert_int_equal(an[2].outcome, -1);
    assert_non_null(strstr(an[2].error, "WRONGTYPE"));
    assert_int_equal(an[3].outcome, TP_APPLY_DONE);
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:{t}:bad"), 0);
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:{t}:done:b2"), 0);
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:{t}:done:b3"), 0); /* retried later */
    assert_int_equal(tp_test_int(fx->sync, "HGET tp:{t}:rec count"), 2);
    tp_apply_batch_destroy(&batch);
}

/* An apply whose keys are not all in its done mark's slot goes in a call
 * of its own (on a cluster only it fails, CROSSSLOT); one without a
 * version names no "" key (slot 0). */
static void test_batch_sends_a_cross_slot_apply_alone(void **state) {
    fixture_t *fx = *state;
    tp_test_int(fx->sync, "CONFIG RESETSTAT");
    tp_apply_batch_t *batch = tp_apply_batch_new(fx->store, 0);
    tp_apply_t a;
    answer_t an[3] = {0};
    bump_t(&a, "tp:{t}:done:c1", "0", 1);
    batch_add(batch, &a, &an[0]);
    bump(&a, "tp:{t}:done:c2", "0", 1); /* tp:rec, tp:seen: other slots */
    batch_add(batch, &a, &an[1]);
    bump_t(&a, "tp:{t}:done:c3", "1", 2);
    batch_add(batch, &a, &an[2]);
    run_until_answered(fx, an, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(an[i].outcome, TP_APPLY_DONE);
    assert_int_equal(evalsha_calls(fx), 2);
    tp_apply_init(&a, "tp:{t}:done:c4", "60", NULL, NULL);
    assert_string_equal(a.keys.v[1], "tp:{t}:done:c4");
    tp_apply_clear(&a);
    tp_apply_batch_destroy(&batch);
}

/* A call holds at most max_applies; applies of another slot (hash tag) go
 * in calls of their own. */
static void send_tagged(tp_apply_batch_t *batch, answer_t *an, int n) {
    for (int i = 0; i < n; i++) {
        tp_apply_t a;
        char done[32];
        const char *tag = i % 2 ? "{a}" : "{b}";
        snprintf(done, sizeof done, "tp:%s:done:%d", tag, i);
        tp_apply_init(&a, done, "60", NULL, NULL);
        tp_apply_cmd(&a, "SADD", tp_apply_key(&a, "tp:%s:seen", tag));
        tp_apply_int(&a, i);
        tp_apply_batch_send(batch, &a, batch_answer_cb, &an[i]);
        tp_apply_clear(&a);
    }
}

static void test_batch_splits_by_size(void **state) {
    fixture_t *fx = *state;
    tp_test_int(fx->sync, "CONFIG RESETSTAT");
    tp_apply_batch_t *batch = tp_apply_batch_new(fx->store, 2);
    answer_t an[5] = {0};
    send_tagged(batch, an, 5); /* {b}: 2 + 1 calls, {a}: 2 */
    assert_int_equal(an[0].replied, 0); /* the full call is sent, not answered */
    run_until_answered(fx, an, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(an[i].outcome, TP_APPLY_DONE);
    assert_int_equal(evalsha_calls(fx), 3);
    tp_apply_batch_destroy(&batch);
    tp_test_int(fx->sync, "CONFIG RESETSTAT");
    batch = tp_apply_batch_new(fx->store, 0);
    answer_t more[5] = {0};
    send_tagged(batch, more, 5); /* seen before; one call per tag */
    run_until_answered(fx, more, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(more[i].outcome, TP_APPLY_DUPLICATE);
    assert_int_equal(evalsha_calls(fx), 2);
    assert_int_equal(tp_test_int(fx->sync, "SCARD tp:{a}:seen"), 2);
    assert_int_equal(tp_test_int(fx->sync, "SCARD tp:{b}:seen"), 3);
    tp_apply_batch_destroy(&batch);
}

/* Destroyed before the turn ended: each unsent apply is answered NULL
 * once, and nothing reaches Redis. */
static void test_batch_destroyed_answers_unsent(void **state) {
    fixture_t *fx = *state;
    tp_apply_batch_t *batch = tp_apply_batch_new(fx->store, 0);
    answer_t an[2] = {0};
    for (int i = 0; i < 2; i++) {
        tp_apply_t a;
        bump_t(&a, i ? "tp:{t}:done:d2" : "tp:{t}:done:d1", "0", 1);
        tp_apply_batch_send(batch, &a, batch_answer_cb, &an[i]);
        tp_apply_clear(&a);
    }
    tp_apply_batch_destroy(&batch);
    assert_null(batch);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(an[i].replied, 1);
        assert_int_equal(an[i].outcome, -2);
    }
    for (int i = 0; i < 5; i++) uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(tp_test_int(fx->sync, "EXISTS tp:{t}:rec"), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(an[i].replied, 1);
}

int main(void) {
    tp_log_init("test_apply", "", TP_LOG_WARN);
    if (tp_test_redis_start(&redis) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_applied_once_under_its_done_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_applied_once_under_a_field_mark, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_version_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_in_a_field_of_a_shared_hash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_disallowed_command_refused_before_any_write,
                                        setup, teardown),
        cmocka_unit_test(test_keys_are_declared_once),
        cmocka_unit_test_setup_teardown(test_batch_answers_each_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_refuses_a_bad_apply_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_sends_a_cross_slot_apply_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_splits_by_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_destroyed_answers_unsent, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tp_test_redis_stop(&redis);
    return failed;
}
