/* test_heartbeat.c: the instance's beat in Redis (tp/heartbeat.h): its
 * JSON both ways, a beat written at connect and again every interval with
 * the applied count and metrics address, and the field removed by a clean
 * destroy. A real redis-server (harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "tp/heartbeat.h"
#include "tp/id.h"

static tp_test_redis_t redis;

static int setup(void **state) { return tp_test_redis_start(&redis); }
static int teardown(void **state) {
    tp_test_redis_stop(&redis);
    return 0;
}

static void test_json_round_trip(void **state) {
    tp_heartbeat_beat_t b = {.instance = "scoring-1", .service = "scoring", .host = "h1",
                             .version = "1.2.3", .metrics = "127.0.0.1:9100", .pid = 4242,
                             .started_at = 1000, .seen_at = 2000, .interval_ms = 500,
                             .applied = 77};
    char *text = tp_heartbeat_json(&b);
    tp_heartbeat_beat_t back;
    void *doc;
    assert_int_equal(tp_heartbeat_parse(text, strlen(text), &back, &doc), 0);
    assert_string_equal(back.instance, "scoring-1");
    assert_string_equal(back.service, "scoring");
    assert_string_equal(back.host, "h1");
    assert_string_equal(back.version, "1.2.3");
    assert_string_equal(back.metrics, "127.0.0.1:9100");
    assert_int_equal(back.pid, 4242);
    assert_int_equal(back.started_at, 1000);
    assert_int_equal(back.seen_at, 2000);
    assert_int_equal(back.interval_ms, 500);
    assert_int_equal(back.applied, 77);
    json_decref(doc);
    free(text);
    /* not a beat: named fields missing, or not JSON at all */
    const char *bad[] = {"{\"service\":\"scoring\",\"seen_at\":1}",
                         "{\"instance\":\"i\",\"service\":\"s\"}",
                         "{\"instance\":1,\"service\":\"s\",\"seen_at\":1}", "[]", "nope"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(tp_heartbeat_parse(bad[i], strlen(bad[i]), &back, &doc), -1);
        assert_null(doc);
    }
}

static uint64_t applied_count(void *arg) { return *(uint64_t *)arg; }

typedef struct watch {
    redisContext *c;
    uv_timer_t timer;
    int64_t want_seen_after; /* stop once a beat newer than this is in */
    char beat[1024];
} watch_t;

/* Polls the field with a plain client; stops the loop once a beat newer
 * than `want_seen_after` is there. */
static void watch_cb(uv_timer_t *t) {
    watch_t *w = t->data;
    redisReply *r = redisCommand(w->c, "HGET tp:heartbeat:scoring scoring-1");
    if (r && r->type == REDIS_REPLY_STRING) {
        tp_heartbeat_beat_t b;
        void *doc;
        if (tp_heartbeat_parse(r->str, r->len, &b, &doc) == 0) {
            if (b.seen_at > w->want_seen_after) {
                snprintf(w->beat, sizeof w->beat, "%s", r->str);
                uv_timer_stop(t);
            }
            json_decref(doc);
        }
    }
    if (r) freeReplyObject(r);
}

static void run_until_beat(uv_loop_t *loop, watch_t *w, int64_t after) {
    w->beat[0] = '\0';
    w->want_seen_after = after;
    uv_timer_start(&w->timer, watch_cb, 10, 10);
    int64_t deadline = tp_now_ms() + 5000;
    while (!w->beat[0] && tp_now_ms() < deadline) uv_run(loop, UV_RUN_ONCE);
    assert_true(w->beat[0] != '\0');
}

static void test_beats_then_clean_stop_removes_the_field(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    tp_store_options_t so = {.host = "127.0.0.1", .port = redis.port, .ns = "tp:"};
    tp_heartbeat_options_t ho = {.service = "scoring", .instance = "scoring-1",
                                 .interval_ms = 50};
    uint64_t applied = 7;
    watch_t w = {0};
    struct timeval tv = {2, 0};
    w.c = redisConnectWithTimeout("127.0.0.1", redis.port, tv);
    assert_non_null(w.c);
    uv_timer_init(&loop, &w.timer);
    w.timer.data = &w;

    int64_t start = tp_now_ms();
    tp_heartbeat_t *hb = tp_heartbeat_new(&loop, &so, &ho);
    assert_non_null(hb);
    tp_heartbeat_set_applied(hb, applied_count, &applied);
    tp_heartbeat_set_metrics(hb, "127.0.0.1:9100");
    run_until_beat(&loop, &w, 0);
    tp_heartbeat_beat_t b;
    void *doc;
    assert_int_equal(tp_heartbeat_parse(w.beat, strlen(w.beat), &b, &doc), 0);
    assert_string_equal(b.service, "scoring");
    assert_int_equal(b.pid, (long)getpid());
    assert_int_equal(b.interval_ms, 50);
    assert_true(b.started_at >= start && b.seen_at >= b.started_at);
    int64_t first = b.seen_at;
    json_decref(doc);

    /* the next beats carry the new count and the metrics address */
    applied = 12;
    run_until_beat(&loop, &w, first);
    assert_int_equal(tp_heartbeat_parse(w.beat, strlen(w.beat), &b, &doc), 0);
    assert_int_equal(b.applied, 12);
    assert_string_equal(b.metrics, "127.0.0.1:9100");
    json_decref(doc);

    tp_heartbeat_destroy(&hb);
    assert_null(hb);
    tp_heartbeat_destroy(&hb); /* safe twice */
    uv_close((uv_handle_t *)&w.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* until the HDEL is answered */
    redisReply *r = redisCommand(w.c, "HEXISTS tp:heartbeat:scoring scoring-1");
    assert_non_null(r);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    redisFree(w.c);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_destroy_without_redis_frees_everything(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* nobody listens on port 1: never connected, nothing to remove */
    tp_store_options_t so = {.host = "127.0.0.1", .port = 1, .ns = "tp:",
                             .reconnect_min_ms = 10, .reconnect_max_ms = 20};
    tp_heartbeat_options_t ho = {.service = "notifier", .instance = "n-1", .interval_ms = 20};
    tp_heartbeat_t *hb = tp_heartbeat_new(&loop, &so, &ho);
    assert_non_null(hb);
    for (int i = 0; i < 5; i++) uv_run(&loop, UV_RUN_NOWAIT);
    tp_heartbeat_destroy(&hb);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_beats_then_clean_stop_removes_the_field),
        cmocka_unit_test(test_destroy_without_redis_frees_everything),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
