/* test_store.c: tp_store against a throwaway redis-server.
 *
 * Covers commands and replies, scripts (EVALSHA, the NOSCRIPT fallback),
 * binary-safe arguments, a 10,000-command pipeline, the reply-size bound,
 * a redis crash and restart, a refused then answered connect, a server that
 * accepts but never answers, AUTH (password, ACL user, wrong password), and
 * destroy with replies outstanding, from outside and inside a callback.
 * Everything callbacks touch lives in the heap fixture, so a failed assert
 * leaves nothing dangling; every test ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#define TP_ANSWER_STR 16384 /* INFO commandstats must fit whole */
#include "store_answer.h"
#include "tp/log.h"
#include "tp/store.h"

#define ANSWERS 16
#define PIPELINE 10000


typedef struct {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int expired;
    tp_store_t *store;
    tp_store_t *extra[3];
    int states[16]; /* every state callback, in order */
    int nstates;
    answer_t ans[ANSWERS];
    long long next_incr; /* pipeline: the value the next INCR must return */
    int pipeline_ok;
    int pipeline_calls;
    int nulls;           /* NULL replies counted by count_cb */
    int replies;         /* non-NULL replies counted by count_cb */
} fixture_t;

static tp_test_redis_t redis;

static void state_cb(tp_store_t *store, int connected, void *arg) {
    fixture_t *fx = arg;
    if (fx->nstates < 16) fx->states[fx->nstates] = connected;
    fx->nstates++;
}

static void count_cb(tp_store_t *store, redisReply *reply, void *arg) {
    fixture_t *fx = arg;
    if (reply) fx->replies++;
    else fx->nulls++;
}

static tp_store_options_t store_options(int port) {
    tp_store_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.host = "127.0.0.1";
    opts.port = port;
    opts.reconnect_min_ms = 10;
    opts.reconnect_max_ms = 100;
    return opts;
}

/* Creates fx->store on the test redis and waits for it to be ready. */
static void connect_store(fixture_t *fx) {
    tp_store_options_t opts = store_options(redis.port);
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    tp_store_on_state(fx->store, state_cb, fx);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    assert_true(tp_store_connected(fx->store));
}

/* Sends a command and waits for its answer in fx->ans[slot]. */
static answer_t *roundtrip(fixture_t *fx, tp_store_t *store, int slot,
                           const char *fmt, const char *a1, const char *a2) {
    answer_t *a = &fx->ans[slot];
    memset(a, 0, sizeof *a);
    assert_int_equal(tp_store_command(store, answer_cb, a, fmt, a1, a2), 0);
    RUN_UNTIL(fx, a->calls > 0, 3000);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 0);
    return a;
}

static answer_t *eval_wait(fixture_t *fx, int slot, int script, int nkeys,
                           int argc, const char **argv, const size_t *len) {
    answer_t *a = &fx->ans[slot];
    memset(a, 0, sizeof *a);
    assert_int_equal(tp_store_eval(fx->store, script, answer_cb, a, nkeys, argc,
                                   argv, len),
                     0);
    RUN_UNTIL(fx, a->calls > 0, 3000);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 0);
    return a;
}

/* ---------------------------------------------------------------------------
 * Fixture */

static int group_setup(void **state) {
    tp_log_init("test_store", "", TP_LOG_INFO);
    return tp_test_redis_start(&redis);
}

static int group_teardown(void **state) {
    tp_test_redis_stop(&redis);
    return 0;
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || uv_loop_init(&fx->loop) != 0) return -1;
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = &fx->expired;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    tp_store_destroy(&fx->store);
    for (int i = 0; i < 3; i++) tp_store_destroy(&fx->extra[i]);
    assert_null(fx->store);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    free(fx);
    assert_int_equal(rc, 0);
    if (redis.pid <= 0 && tp_test_redis_respawn(&redis) != 0) return -1;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Tests */

static void test_commands_and_replies(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    assert_int_equal(fx->nstates, 1);
    assert_int_equal(fx->states[0], 1);
    assert_string_equal(tp_store_ns(fx->store), "tp:");

    answer_t *a = roundtrip(fx, fx->store, 0, "SET %s %s", "tp:test:k", "hello");
    assert_int_equal(a->type, REDIS_REPLY_STATUS);
    assert_string_equal(a->str, "OK");

    a = roundtrip(fx, fx->store, 0, "GET %s", "tp:test:k", NULL);
    assert_int_equal(a->type, REDIS_REPLY_STRING);
    assert_string_equal(a->str, "hello");

    a = roundtrip(fx, fx->store, 0, "DEL %s", "tp:test:n", NULL);
    a = roundtrip(fx, fx->store, 0, "INCRBY %s %s", "tp:test:n", "41");
    assert_int_equal(a->type, REDIS_REPLY_INTEGER);
    assert_int_equal(a->integer, 41);

    a = roundtrip(fx, fx->store, 0, "GET %s", "tp:test:absent", NULL);
    assert_int_equal(a->type, REDIS_REPLY_NIL);

    a = roundtrip(fx, fx->store, 0, "NOSUCHCOMMAND", NULL, NULL);
    assert_int_equal(a->type, REDIS_REPLY_ERROR);

    const char *argv[] = {"RPUSH", "tp:test:list", "a", "b", "c"};
    assert_int_equal(tp_store_command_argv(fx->store, answer_cb, &fx->ans[1],
                                           5, argv, NULL),
                     0);
    assert_int_equal(tp_store_pending(fx->store), 1);
    RUN_UNTIL(fx, fx->ans[1].calls > 0, 3000);
    assert_int_equal(fx->ans[1].type, REDIS_REPLY_INTEGER);
    a = roundtrip(fx, fx->store, 0, "LRANGE %s 0 -1", "tp:test:list", NULL);
    assert_int_equal(a->type, REDIS_REPLY_ARRAY);
    assert_int_equal(a->elements, 3);
    roundtrip(fx, fx->store, 0, "DEL %s", "tp:test:list", NULL);
    assert_int_equal(tp_store_pending(fx->store), 0);

    /* destroy accepts NULL and nulls the pointer */
    tp_store_t *none = NULL;
    tp_store_destroy(&none);
    tp_store_destroy(NULL);
}

/* The reply hook and the log context carried from a command to its reply. */
typedef struct {
    int hooked, hooked_ok;
    double seconds;
    int calls;
    tp_log_context_t seen; /* the context inside the reply callback */
    int had_context;
} carried_t;

static void hook_cb(tp_store_t *store, double seconds, int ok, void *arg) {
    carried_t *c = arg;
    c->hooked++;
    c->hooked_ok += ok;
    c->seconds = seconds;
}

static void carried_cb(tp_store_t *store, redisReply *reply, void *arg) {
    carried_t *c = arg;
    c->calls++;
    c->had_context = tp_log_context_save(&c->seen);
}

static void test_reply_hook_and_log_context(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    carried_t c = {0};
    tp_store_on_reply(fx->store, hook_cb, &c);
    tp_log_context_set("ev-1", "CUST-1"); /* as the consumer does around an apply */
    assert_int_equal(tp_store_command(fx->store, carried_cb, &c, "PING"), 0);
    tp_log_context_clear(); /* the apply callback returned */
    assert_int_equal(tp_store_command(fx->store, carried_cb, &c, "NOSUCHCOMMAND"), 0);
    RUN_UNTIL(fx, c.calls == 2, 3000);
    assert_int_equal(c.hooked, 2);
    assert_int_equal(c.hooked_ok, 1); /* the error reply is not ok */
    assert_true(c.seconds >= 0 && c.seconds < 3);
    assert_int_equal(c.had_context, 0); /* the second command had none */
    tp_log_context_t now;
    assert_int_equal(tp_log_context_save(&now), 0); /* restored after each */

    tp_log_context_set("ev-2", "CUST-2");
    assert_int_equal(tp_store_command(fx->store, carried_cb, &c, "PING"), 0);
    tp_log_context_set("ev-other", NULL); /* another apply runs meanwhile */
    RUN_UNTIL(fx, c.calls == 3, 3000);
    assert_int_equal(c.had_context, 1);
    assert_string_equal(c.seen.event, "ev-2");
    assert_string_equal(c.seen.customer, "CUST-2");
    tp_log_context_save(&now);
    assert_string_equal(now.event, "ev-other"); /* and put back after */
    tp_log_context_clear();
}

static const char *const echo_lua =
    "return {KEYS[1], ARGV[1], tostring(#KEYS), tostring(#ARGV)}";

static void test_eval(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = store_options(redis.port);
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    int echo = tp_store_script(fx->store, "echo", echo_lua);
    assert_true(echo >= 0);
    assert_int_equal(tp_store_script(fx->store, "echo", echo_lua), echo);
    assert_int_equal(tp_store_script(fx->store, "echo", "return 2"), -1);
    /* not connected yet: -1, callback never runs */
    const char *args[] = {"tp:test:key", "value", "extra"};
    assert_int_equal(tp_store_eval(fx->store, echo, answer_cb, &fx->ans[0], 1,
                                   3, args, NULL),
                     -1);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    assert_true(tp_store_connected(fx->store));
    assert_int_equal(fx->ans[0].calls, 0);

    answer_t *a = eval_wait(fx, 0, echo, 1, 3, args, NULL);
    assert_int_equal(a->type, REDIS_REPLY_ARRAY);
    assert_int_equal(a->elements, 4);

    /* registered after connecting: usable at once (EVAL until loaded) */
    int sum = tp_store_script(fx->store, "sum",
                              "return tonumber(ARGV[1]) + tonumber(ARGV[2])");
    assert_true(sum > echo);
    const char *nums[] = {"40", "2"};
    a = eval_wait(fx, 1, sum, 0, 2, nums, NULL);
    assert_int_equal(a->type, REDIS_REPLY_INTEGER);
    assert_int_equal(a->integer, 42);
    a = eval_wait(fx, 1, sum, 0, 2, nums, NULL);
    assert_int_equal(a->integer, 42);

    /* a script error comes back as an error reply, not a drop */
    int bad = tp_store_script(fx->store, "bad", "return redis.call('NOPE')");
    a = eval_wait(fx, 2, bad, 0, 0, NULL, NULL);
    assert_int_equal(a->type, REDIS_REPLY_ERROR);
    assert_true(tp_store_connected(fx->store));
    assert_int_equal(tp_store_pending(fx->store), 0);
}

static void test_noscript_falls_back_to_eval(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = store_options(redis.port);
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    int sum = tp_store_script(fx->store, "sum2",
                              "return tonumber(ARGV[1]) * tonumber(ARGV[2])");
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    assert_true(tp_store_connected(fx->store));
    roundtrip(fx, fx->store, 0, "CONFIG RESETSTAT", NULL, NULL);

    const char *nums[] = {"6", "7"};
    answer_t *a = eval_wait(fx, 1, sum, 0, 2, nums, NULL);
    assert_int_equal(a->integer, 42);

    roundtrip(fx, fx->store, 0, "SCRIPT FLUSH", NULL, NULL);
    a = eval_wait(fx, 1, sum, 0, 2, nums, NULL); /* NOSCRIPT -> EVAL */
    assert_int_equal(a->type, REDIS_REPLY_INTEGER);
    assert_int_equal(a->integer, 42);
    a = eval_wait(fx, 1, sum, 0, 2, nums, NULL); /* EVAL cached it again */
    assert_int_equal(a->integer, 42);

    a = roundtrip(fx, fx->store, 0, "INFO commandstats", NULL, NULL);
    assert_non_null(strstr(a->str, "cmdstat_eval:calls=1,"));
    assert_non_null(strstr(a->str, "cmdstat_evalsha:calls=3,"));
    assert_int_equal(tp_store_pending(fx->store), 0);
}

static void test_binary_safe(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    static const char key[] = "tp:test:bin\0key";
    static const char value[] = "a\0b\r\n$3\r\n*1\r\n\xff\x00z";
    const char *set[] = {"SET", key, value};
    size_t setlen[] = {3, sizeof key - 1, sizeof value - 1};
    assert_int_equal(
        tp_store_command_argv(fx->store, answer_cb, &fx->ans[0], 3, set, setlen),
        0);
    const char *get[] = {"GET", key};
    size_t getlen[] = {3, sizeof key - 1};
    assert_int_equal(
        tp_store_command_argv(fx->store, answer_cb, &fx->ans[1], 2, get, getlen),
        0);
    RUN_UNTIL(fx, fx->ans[1].calls > 0, 3000);
    assert_string_equal(fx->ans[0].str, "OK");
    assert_int_equal(fx->ans[1].type, REDIS_REPLY_STRING);
    assert_int_equal(fx->ans[1].len, sizeof value - 1);
    assert_memory_equal(fx->ans[1].str, value, sizeof value - 1);

    int echo = tp_store_script(fx->store, "echo_arg", "return ARGV[1]");
    const char *args[] = {value};
    size_t arglen[] = {sizeof value - 1};
    answer_t *a = eval_wait(fx, 2, echo, 0, 1, args, arglen);
    assert_int_equal(a->type, REDIS_REPLY_STRING);
    assert_int_equal(a->len, sizeof value - 1);
    assert_memory_equal(a->str, value, sizeof value - 1);

    const char *del[] = {"DEL", key};
    assert_int_equal(
        tp_store_command_argv(fx->store, answer_cb, &fx->ans[3], 2, del, getlen),
        0);
    RUN_UNTIL(fx, fx->ans[3].calls > 0, 3000);
    assert_int_equal(fx->ans[3].integer, 1);
}

static void incr_cb(tp_store_t *store, redisReply *reply, void *arg) {
    fixture_t *fx = arg;
    fx->pipeline_calls++;
    fx->next_incr++;
    if (!reply || reply->type != REDIS_REPLY_INTEGER ||
        reply->integer != fx->next_incr)
        fx->pipeline_ok = 0;
}

static void test_pipeline_10k(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    roundtrip(fx, fx->store, 0, "DEL %s", "tp:test:pipe", NULL);
    fx->pipeline_ok = 1;
    uint64_t start = uv_hrtime();
    for (int i = 0; i < PIPELINE; i++)
        assert_int_equal(
            tp_store_command(fx->store, incr_cb, fx, "INCR tp:test:pipe"), 0);
    assert_int_equal(tp_store_pending(fx->store), PIPELINE);
    RUN_UNTIL(fx, fx->pipeline_calls == PIPELINE, 10000);
    uint64_t took = (uv_hrtime() - start) / 1000000;
    print_message("    %d pipelined INCR answered in %llu ms\n", PIPELINE,
                  (unsigned long long)took);
    assert_int_equal(fx->pipeline_calls, PIPELINE);
    assert_true(fx->pipeline_ok); /* in order, each exactly once */
    assert_int_equal(tp_store_pending(fx->store), 0);
    answer_t *a = roundtrip(fx, fx->store, 0, "GET %s", "tp:test:pipe", NULL);
    assert_string_equal(a->str, "10000");
}

static void test_reconnect_after_crash(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = store_options(redis.port);
    opts.reconnect_min_ms = 20;
    opts.reconnect_max_ms = 200;
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    tp_store_on_state(fx->store, state_cb, fx);
    int sum = tp_store_script(fx->store, "sum3",
                              "return tonumber(ARGV[1]) + tonumber(ARGV[2])");
    RUN_UNTIL(fx, fx->nstates == 1, 3000);
    assert_int_equal(fx->nstates, 1);
    assert_int_equal(fx->states[0], 1);

    /* replies that will never come: blocked forever */
    for (int i = 0; i < 5; i++)
        assert_int_equal(tp_store_command(fx->store, count_cb, fx,
                                          "BLPOP tp:test:never 0"),
                         0);
    RUN_FOR(fx, 50); /* make sure they reached the server */
    assert_int_equal(tp_store_pending(fx->store), 5);

    tp_test_redis_kill(&redis);
    RUN_UNTIL(fx, fx->nulls == 5 && fx->nstates == 2, 3000);
    assert_int_equal(fx->nulls, 5);
    assert_int_equal(fx->replies, 0);
    assert_int_equal(fx->nstates, 2);
    assert_int_equal(fx->states[1], 0);
    assert_int_equal(tp_store_pending(fx->store), 0);
    assert_false(tp_store_connected(fx->store));

    /* while down: refused at once, callbacks never run */
    RUN_FOR(fx, 300); /* several failed attempts, backing off */
    assert_int_equal(tp_store_command(fx->store, count_cb, fx, "PING"), -1);
    const char *nums[] = {"1", "2"};
    assert_int_equal(
        tp_store_eval(fx->store, sum, count_cb, fx, 0, 2, nums, NULL), -1);
    assert_int_equal(tp_store_pending(fx->store), 0);
    assert_int_equal(fx->nstates, 2); /* failed attempts are not transitions */

    assert_int_equal(tp_test_redis_respawn(&redis), 0);
    RUN_UNTIL(fx, fx->nstates == 3, 3000);
    assert_int_equal(fx->nstates, 3);
    assert_int_equal(fx->states[2], 1);
    assert_true(tp_store_connected(fx->store));

    /* the handshake loaded the script again: plain EVALSHA, no fallback */
    answer_t *a = eval_wait(fx, 0, sum, 0, 2, nums, NULL);
    assert_int_equal(a->integer, 3);
    a = roundtrip(fx, fx->store, 1, "INFO commandstats", NULL, NULL);
    assert_non_null(strstr(a->str, "cmdstat_evalsha:calls=1,"));
    assert_null(strstr(a->str, "cmdstat_eval:"));
    assert_int_equal(fx->nulls, 5); /* nothing ran twice */
    assert_int_equal(fx->replies, 0);
}

static void test_destroy_with_pending(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tp_store_command(fx->store, count_cb, fx,
                                          "BLPOP tp:test:never 0"),
                         0);
    RUN_FOR(fx, 50);
    for (int i = 0; i < 1000; i++) /* queued, not even written yet */
        assert_int_equal(tp_store_command(fx->store, count_cb, fx, "PING"), 0);
    assert_int_equal(tp_store_pending(fx->store), 1003);
    /* and one destroyed while its connect is still in progress */
    tp_store_options_t opts = store_options(redis.port);
    fx->extra[0] = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->extra[0]);
    tp_store_destroy(&fx->extra[0]);
    tp_store_destroy(&fx->store);
    assert_null(fx->store);
    assert_int_equal(fx->nulls, 1003); /* failed right away, each once */
    assert_int_equal(fx->replies, 0);
    tp_store_destroy(&fx->store); /* twice is fine */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->nulls, 1003);
}

static void destroy_cb(tp_store_t *store, redisReply *reply, void *arg) {
    fixture_t *fx = arg;
    if (reply) fx->replies++;
    else fx->nulls++;
    tp_store_destroy(&fx->store);
    /* the store is gone for us; sending on it is the caller's bug, so we
     * stop here */
}

static void test_destroy_inside_callback(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    assert_int_equal(tp_store_command(fx->store, destroy_cb, fx, "PING"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tp_store_command(fx->store, count_cb, fx,
                                          "BLPOP tp:test:never 0"),
                         0);
    RUN_UNTIL(fx, fx->store == NULL && fx->nulls == 3, 3000);
    assert_null(fx->store);
    assert_int_equal(fx->replies, 1); /* the PING */
    assert_int_equal(fx->nulls, 3);   /* the BLPOPs */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->nulls, 3);
}

static void destroy_on_state(tp_store_t *store, int connected, void *arg) {
    fixture_t *fx = arg;
    state_cb(store, connected, arg);
    tp_store_destroy(&fx->store);
}

static void test_destroy_inside_state_callback(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = store_options(redis.port);
    fx->store = tp_store_new(&fx->loop, &opts);
    tp_store_on_state(fx->store, destroy_on_state, fx);
    RUN_UNTIL(fx, fx->store == NULL, 3000);
    assert_null(fx->store);
    assert_int_equal(fx->nstates, 1);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static void test_refused_then_server_appears(void **state) {
    fixture_t *fx = *state;
    int port = tp_test_free_port();
    assert_true(port > 0);
    tp_store_options_t opts = store_options(port);
    opts.reconnect_max_ms = 50;
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    tp_store_on_state(fx->store, state_cb, fx);
    RUN_FOR(fx, 300);
    assert_false(tp_store_connected(fx->store));
    assert_int_equal(fx->nstates, 0);
    assert_int_equal(tp_store_command(fx->store, count_cb, fx, "PING"), -1);
    assert_int_equal(tp_store_pending(fx->store), 0);

    tp_test_redis_t late;
    assert_int_equal(tp_test_redis_start_port(&late, port), 0);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    int up = tp_store_connected(fx->store);
    if (up) roundtrip(fx, fx->store, 0, "PING", NULL, NULL);
    tp_store_destroy(&fx->store);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    tp_test_redis_stop(&late);
    assert_true(up);
    assert_int_equal(fx->nstates, 1);
    assert_string_equal(fx->ans[0].str, "PONG");
}

static void test_name_resolution(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = store_options(redis.port);
    opts.host = "localhost"; /* goes through uv_getaddrinfo */
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    assert_true(tp_store_connected(fx->store));
    answer_t *a = roundtrip(fx, fx->store, 0, "PING", NULL, NULL);
    assert_string_equal(a->str, "PONG");

    /* destroy while a name is still being resolved */
    opts.host = "localhost";
    fx->extra[0] = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->extra[0]);
    tp_store_destroy(&fx->extra[0]);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static void test_reply_bound(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    /* one element over the bound: the reader refuses, the link drops */
    answer_t *a = &fx->ans[0];
    assert_int_equal(tp_store_command(fx->store, answer_cb, a,
                                      "EVAL %s 0",
                                      "local t = {} for i = 1, 1048577 do "
                                      "t[i] = 1 end return t"),
                     0);
    RUN_UNTIL(fx, a->calls > 0 && fx->nstates >= 3, 5000);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 1);
    assert_int_equal(fx->nstates, 3); /* up, down, up again */
    assert_int_equal(fx->states[1], 0);
    assert_int_equal(fx->states[2], 1);
    a = roundtrip(fx, fx->store, 1, "EVAL %s 0",
                  "local t = {} for i = 1, 1000 do t[i] = i end return t",
                  NULL);
    assert_int_equal(a->type, REDIS_REPLY_ARRAY);
    assert_int_equal(a->elements, 1000);
}

static void test_loop_stall_is_not_a_hung_server(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = store_options(redis.port);
    opts.command_timeout_ms = 200;
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    tp_store_on_state(fx->store, state_cb, fx);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    RUN_FOR(fx, 100); /* the watchdog has ticked */
    /* The reply arrives while this process is busy elsewhere for 5x the
     * timeout: it waits in the socket, and the server is not to blame. */
    answer_t *a = &fx->ans[0];
    assert_int_equal(tp_store_command(fx->store, answer_cb, a, "PING"), 0);
    usleep(5 * opts.command_timeout_ms * 1000);
    RUN_UNTIL(fx, a->calls > 0, 3000);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 0);
    assert_string_equal(a->str, "PONG");
    assert_int_equal(fx->nstates, 1); /* never dropped */
    /* A server that really hangs is still given up on. */
    assert_int_equal(kill(redis.pid, SIGSTOP), 0);
    a = &fx->ans[1];
    assert_int_equal(tp_store_command(fx->store, answer_cb, a, "PING"), 0);
    RUN_UNTIL(fx, a->calls > 0, 3000);
    kill(redis.pid, SIGCONT);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 1);
}

static void test_handshake_deadline(void **state) {
    fixture_t *fx = *state;
    /* A stopped server still completes TCP connects (the kernel's backlog)
     * but never answers: only the handshake deadline gets us out. */
    assert_int_equal(kill(redis.pid, SIGSTOP), 0);
    tp_store_options_t opts = store_options(redis.port);
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    tp_store_on_state(fx->store, state_cb, fx);
    /* a second store, destroyed mid-handshake: its PING gets NULL */
    fx->extra[0] = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->extra[0]);
    RUN_FOR(fx, 200);
    tp_store_destroy(&fx->extra[0]);
    /* a script registered mid-handshake joins it */
    int late = tp_store_script(fx->store, "late", "return 'late'");
    RUN_FOR(fx, 5400);
    int up_while_stopped = tp_store_connected(fx->store);
    kill(redis.pid, SIGCONT);
    assert_false(up_while_stopped);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    assert_true(tp_store_connected(fx->store));
    assert_int_equal(fx->nstates, 1);
    answer_t *a = roundtrip(fx, fx->store, 0, "PING", NULL, NULL);
    assert_string_equal(a->str, "PONG");
    roundtrip(fx, fx->store, 0, "CONFIG RESETSTAT", NULL, NULL);
    a = eval_wait(fx, 1, late, 0, 0, NULL, NULL);
    assert_string_equal(a->str, "late");
    a = roundtrip(fx, fx->store, 0, "INFO commandstats", NULL, NULL);
    assert_non_null(strstr(a->str, "cmdstat_evalsha:calls=1,"));
    assert_null(strstr(a->str, "cmdstat_eval:"));
}

static void test_auth(void **state) {
    fixture_t *fx = *state;
    connect_store(fx); /* already authenticated before requirepass is set */
    answer_t *a = roundtrip(fx, fx->store, 0,
                            "ACL SETUSER tpuser on >%s ~* &* +@all", "s3cret",
                            NULL);
    assert_string_equal(a->str, "OK");
    a = roundtrip(fx, fx->store, 0, "CONFIG SET requirepass %s", "topsecret",
                  NULL);
    assert_string_equal(a->str, "OK");

    tp_store_options_t opts = store_options(redis.port);
    opts.password = "topsecret";
    fx->extra[0] = tp_store_new(&fx->loop, &opts);
    opts.user = "tpuser";
    opts.password = "s3cret";
    fx->extra[1] = tp_store_new(&fx->loop, &opts);
    int sum = tp_store_script(fx->extra[1], "sum4", "return 40 + 2");
    opts.user = NULL;
    opts.password = "wrong";
    fx->extra[2] = tp_store_new(&fx->loop, &opts);
    RUN_UNTIL(fx, tp_store_connected(fx->extra[0]) &&
                      tp_store_connected(fx->extra[1]), 3000);
    RUN_FOR(fx, 200);
    int up0 = tp_store_connected(fx->extra[0]);
    int up1 = tp_store_connected(fx->extra[1]);
    int up2 = tp_store_connected(fx->extra[2]);
    int refused = tp_store_command(fx->extra[2], count_cb, fx, "PING");

    int evaluated = 0;
    if (up1) {
        memset(&fx->ans[1], 0, sizeof fx->ans[1]);
        if (tp_store_eval(fx->extra[1], sum, answer_cb, &fx->ans[1], 0, 0,
                          NULL, NULL) == 0) {
            RUN_UNTIL(fx, fx->ans[1].calls > 0, 3000);
            evaluated = fx->ans[1].integer == 42;
        }
    }
    /* put the server back before asserting */
    roundtrip(fx, fx->store, 0, "CONFIG SET requirepass %s", "", NULL);
    roundtrip(fx, fx->store, 0, "ACL DELUSER %s", "tpuser", NULL);

    assert_true(up0);
    assert_true(up1);
    assert_true(evaluated);
    assert_false(up2);
    assert_int_equal(refused, -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commands_and_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_hook_and_log_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noscript_falls_back_to_eval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_safe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_10k, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_inside_state_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_then_server_appears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_resolution, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_stall_is_not_a_hung_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
