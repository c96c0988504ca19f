/* test_notifier_deliver.c: a delivery's life after it is recorded, against
 * a real redis-server and a fake channel behind the channel interface (the
 * one place a mock stands in: the test decides each attempt's answer).
 * Claimed from deliveries:due, sent with its stored payload and id; sent
 * settles it and derives notification.sent into the outbox; a permanent
 * refusal goes to the dead-letter set at once; a transient one is retried
 * after a backoff, until max_attempts; an open breaker defers attempts
 * without spending them. Every test ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tp/keys.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "harness.h"
#include "notifier_deliver.h"
#include "tp/bus.h"
#include "tp/id.h"
#include "tp/log.h"

/* The shard of the recipient rep-1 (tp_key_shard; checked in start()):
 * its deliveries are there. */
#define SHARD "{s0}:"

static tp_test_redis_t redis;

#define MAX_SENDS 16

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int expired;
    redisContext *sync;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_emitter_t *emitter;
    tp_templates_t *templates;
    tp_recipients_t *recipients;
    tp_config_t *cfg;
    tp_deliver_t *deliver;
    tp_channel_t fake; /* the email channel */
    struct {
        char id[200], address[100], payload[100];
        tp_transfer_done_cb cb;
        void *arg;
    } sends[MAX_SENDS];
    int nsends;
} fixture_t;

static fixture_t *current;


static int fake_send(tp_channel_t *self, const char *id, const char *address,
                     const char *payload, size_t len, tp_transfer_done_cb cb,
                     void *arg) {
    (void)self;
    fixture_t *fx = current;
    if (fx->nsends == MAX_SENDS) return -1;
    snprintf(fx->sends[fx->nsends].id, 200, "%s", id);
    snprintf(fx->sends[fx->nsends].address, 100, "%s", address);
    snprintf(fx->sends[fx->nsends].payload, 100, "%.*s", (int)len, payload);
    fx->sends[fx->nsends].cb = cb;
    fx->sends[fx->nsends].arg = arg;
    fx->nsends++;
    return 0;
}

static tp_verdict_t fake_classify(long status, const char *error) {
    if (!error) return TP_VERDICT_SENT;
    return status >= 500 ? TP_VERDICT_PERMANENT : TP_VERDICT_RETRY;
}

static void fake_destroy(tp_channel_t *self) { (void)self; }

static long long integer(fixture_t *fx, const char *fmt, const char *arg) {
    return tp_test_int(fx->sync, fmt, arg);
}

static void field(fixture_t *fx, const char *id, const char *name, char *out, size_t len) {
    redisReply *r =
        tp_test_cmd(fx->sync, "HGET " SHARD "delivery:%s %s", id, name);
    snprintf(out, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* A recorded delivery, due now, as the deliver script leaves one. */
static void recorded(fixture_t *fx, const char *id) {
    freeReplyObject(tp_test_cmd(
        fx->sync,
        "HSET " SHARD "delivery:%s status sending attempts 0 channel email "
        "address a@example.com body payload-of-%s customer C-1 "
        "recipient rep-1 cause ev-1",
        id, id));
    freeReplyObject(tp_test_cmd(fx->sync,
                                "ZADD " SHARD "deliveries:due %lld %s",
                                (long long)tp_now_ms(), id));
}

static void start(fixture_t *fx, int max_attempts, int breaker_failures) {
    assert_int_equal(tp_key_shard("rep-1"), 0); /* SHARD */
    tp_deliver_options_t o;
    char err[300];
    assert_int_equal(tp_deliver_options_load(&o, fx->cfg, err, sizeof err), 0);
    o.max_attempts = max_attempts;
    o.backoff_ms = 60000; /* a retry waits: the test moves it */
    o.backoff_max_ms = 60000;
    o.retry_poll_ms = 20;
    o.claim_ms = 60000;
    o.breaker_failures = breaker_failures;
    o.breaker_cooldown_ms = 60000;
    tp_channel_t *channels[TP_DELIVER_CHANNELS] = {&fx->fake, NULL, NULL};
    fx->deliver = tp_deliver_new(&fx->loop, fx->store, fx->emitter, fx->templates,
                                 fx->recipients, channels, &o);
    assert_non_null(fx->deliver);
}

/* Answers send `i`, then lets the outcome reach Redis. */
static void answer(fixture_t *fx, int i, long status, const char *error) {
    fx->sends[i].cb(status, error, fx->sends[i].arg);
    RUN_UNTIL(fx, 0, 100);
}

static int group_setup(void **state) {
    (void)state;
    tp_log_init("test_notifier_deliver", "", TP_LOG_ERROR);
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
    current = fx;
    *state = fx;
    if (!(fx->sync = tp_test_redis_connect(&redis))) return -1;
    tp_store_options_t so = {.host = "127.0.0.1", .port = redis.port, .ns = "",
                             .reconnect_min_ms = 10, .reconnect_max_ms = 100};
    fx->store = tp_store_new(&fx->loop, &so);
    if (!fx->store) return -1;
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    fx->bus = tp_bus_new(&fx->loop);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tp_test_free_port());
    tp_emitter_options_t eo = {.service = TP_SERVICE_NOTIFIER, .endpoint = endpoint,
                               .resend_after_ms = 60000, .sweep_interval_ms = 60000};
    fx->emitter = tp_emitter_new(&fx->loop, fx->bus, fx->store, &eo);
    char err[300], tpl[512];
    const char *src = getenv("TP_SOURCE_DIR");
    snprintf(tpl, sizeof tpl, "%s/deploy/templates", src ? src : "../..");
    fx->templates = tp_templates_new(tpl, err, sizeof err);
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    fx->recipients = tp_recipients_new(fx->cfg, err, sizeof err);
    fx->fake = (tp_channel_t){.name = "email", .send = fake_send,
                              .classify = fake_classify, .destroy = fake_destroy};
    return fx->emitter && fx->templates && fx->recipients ? 0 : -1;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    tp_deliver_shutdown(fx->deliver);
    for (int i = 0; i < fx->nsends; i++)
        if (fx->sends[i].cb) fx->sends[i].cb(0, "shutting down", fx->sends[i].arg);
    tp_store_destroy(&fx->store);
    tp_deliver_destroy(&fx->deliver);
    tp_deliver_destroy(&fx->deliver);
    tp_emitter_destroy(&fx->emitter);
    tp_bus_destroy(&fx->bus);
    tp_templates_destroy(&fx->templates);
    tp_recipients_destroy(&fx->recipients);
    tp_config_destroy(&fx->cfg);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    redisFree(fx->sync);
    free(fx);
    assert_int_equal(rc, 0);
    return 0;
}

/* answered sends are cleared so teardown does not answer them again */
static void answered(fixture_t *fx, int i) { fx->sends[i].cb = NULL; }

static void test_sent_once_with_its_payload(void **state) {
    fixture_t *fx = *state;
    start(fx, 3, 0);
    recorded(fx, "ev-1/email/rep-1");
    RUN_UNTIL(fx, fx->nsends == 1, 2000);
    assert_int_equal(fx->nsends, 1);
    assert_string_equal(fx->sends[0].id, "ev-1/email/rep-1");
    assert_string_equal(fx->sends[0].address, "a@example.com");
    assert_string_equal(fx->sends[0].payload, "payload-of-ev-1/email/rep-1");
    RUN_UNTIL(fx, 0, 100); /* claimed: not sent twice meanwhile */
    assert_int_equal(fx->nsends, 1);
    answer(fx, 0, 250, NULL);
    answered(fx, 0);
    char st[32];
    field(fx, "ev-1/email/rep-1", "status", st, sizeof st);
    assert_string_equal(st, "sent");
    assert_int_equal(integer(fx, "ZCARD %s", SHARD "deliveries:due"), 0);
    assert_int_equal(integer(fx, "ZCARD %s", SHARD "outbox:notifier"), 1); /* notification.sent */
    assert_int_equal(integer(fx, "ZCARD %s", SHARD "deadletter"), 0);
}

static void test_permanent_goes_to_dead_letters(void **state) {
    fixture_t *fx = *state;
    start(fx, 5, 0);
    recorded(fx, "ev-2/email/rep-1");
    RUN_UNTIL(fx, fx->nsends == 1, 2000);
    answer(fx, 0, 550, "RCPT failed: 550");
    answered(fx, 0);
    char st[32], why[100];
    field(fx, "ev-2/email/rep-1", "status", st, sizeof st);
    field(fx, "ev-2/email/rep-1", "last_error", why, sizeof why);
    assert_string_equal(st, "failed");
    assert_string_equal(why, "550: RCPT failed: 550");
    assert_true(integer(fx, "ZSCORE " SHARD "deadletter %s", "ev-2/email/rep-1") > 0);
    assert_int_equal(integer(fx, "ZCARD %s", SHARD "outbox:notifier"), 1); /* .failed */
}

static void test_retry_with_backoff_then_dead(void **state) {
    fixture_t *fx = *state;
    start(fx, 2, 0);
    recorded(fx, "ev-3/email/rep-1");
    RUN_UNTIL(fx, fx->nsends == 1, 2000);
    int64_t before = tp_now_ms();
    answer(fx, 0, 451, "try later");
    answered(fx, 0);
    char st[32];
    field(fx, "ev-3/email/rep-1", "status", st, sizeof st);
    assert_string_equal(st, "sending");
    assert_int_equal(integer(fx, "HGET " SHARD "delivery:%s attempts", "ev-3/email/rep-1"), 1);
    long long next = integer(fx, "ZSCORE " SHARD "deliveries:due %s", "ev-3/email/rep-1");
    assert_true(next >= before + 48000 && next <= tp_now_ms() + 72000); /* 60 s +-20% */
    assert_int_equal(integer(fx, "ZCARD %s", SHARD "outbox:notifier"), 0);
    /* time passes */
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD " SHARD "deliveries:due 0 %s",
                                "ev-3/email/rep-1"));
    RUN_UNTIL(fx, fx->nsends == 2, 2000);
    assert_int_equal(fx->nsends, 2);
    assert_string_equal(fx->sends[1].payload, "payload-of-ev-3/email/rep-1");
    answer(fx, 1, 0, "Connection refused");
    answered(fx, 1);
    field(fx, "ev-3/email/rep-1", "status", st, sizeof st);
    assert_string_equal(st, "failed"); /* the last of max_attempts */
    assert_true(integer(fx, "ZSCORE " SHARD "deadletter %s", "ev-3/email/rep-1") > 0);
}

static void test_open_breaker_defers_without_spending(void **state) {
    fixture_t *fx = *state;
    start(fx, 5, 1);
    recorded(fx, "ev-4/email/rep-1");
    RUN_UNTIL(fx, fx->nsends == 1, 2000);
    answer(fx, 0, 0, "Connection refused"); /* opens the breaker */
    answered(fx, 0);
    recorded(fx, "ev-5/email/rep-1");
    freeReplyObject(tp_test_cmd(fx->sync, "ZADD " SHARD "deliveries:due 0 %s",
                                "ev-4/email/rep-1"));
    RUN_UNTIL(fx, 0, 300);
    assert_int_equal(fx->nsends, 1); /* nothing tried while open */
    assert_int_equal(integer(fx, "HGET " SHARD "delivery:%s attempts", "ev-5/email/rep-1"), 0);
    assert_int_equal(integer(fx, "HGET " SHARD "delivery:%s attempts", "ev-4/email/rep-1"), 1);
    long long at = integer(fx, "ZSCORE " SHARD "deliveries:due %s", "ev-5/email/rep-1");
    assert_true(at > tp_now_ms() + 50000); /* waits for the cooldown */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sent_once_with_its_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_goes_to_dead_letters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_with_backoff_then_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_breaker_defers_without_spending, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
