/* ticketing_fixture.h: what the unit tests of ticketing's timers share,
 * header-only: a throwaway redis-server (harness.h), a loop, a store, a
 * bus and the ticketing's emitter pointed at an ingress nobody serves (so
 * derived events stay in the outbox, where the tests read them), a roster
 * and a 24x7 calendar. Owns all of them; teardown checks the loop closes. */
#ifndef TICKETING_FIXTURE_H
#define TICKETING_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ticketing_roster.h"
#include "tp/bus.h"
#include "tp/calendar.h"
#include "tp/config.h"
#include "tp/emit.h"
#include "tp/event.h"
#include "tp/id.h"
#include "tp/log.h"
#include "tp/store.h"

#define OUTBOX "tp:{s2}:outbox:ticketing"

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int expired;
    redisContext *sync;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_emitter_t *emitter;
    tp_roster_t *roster;
    tp_calendar_t *hours;
} fixture_t;

static tp_test_redis_t redis;

/* The field of a hash, "" when absent (static buffer). */
static const char *hget(fixture_t *fx, const char *key, const char *field) {
    static char out[512];
    redisReply *r = tp_test_cmd(fx->sync, "HGET %s %s", key, field);
    snprintf(out, sizeof out, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return out;
}

/* The derived events in the outbox, decoded into `evs` (at most max). */
static int outbox(fixture_t *fx, tp_event_t *evs, int max) {
    redisReply *r = tp_test_cmd(fx->sync, "ZRANGE %s 0 -1", OUTBOX);
    int n = 0;
    for (size_t i = 0; i < r->elements && n < max; i++) {
        tp_event_error_t err;
        tp_event_init(&evs[n]);
        if (tp_event_from_msgpack(&evs[n], r->element[i]->str, r->element[i]->len, &err) < 0)
            fail_msg("outbox entry: %s: %s", err.field, err.message);
        n++;
    }
    freeReplyObject(r);
    return n;
}

static const char *const ROSTER_INI =
    "[ticketing]\n"
    "agents_engineering = eng-1, eng-2\n"
    "lead_engineering = eng-lead\n"
    "manager = boss\n";

static int group_setup(void **state) {
    (void)state;
    tp_log_init("test_ticketing", "", TP_LOG_WARN);
    return tp_test_redis_start(&redis);
}

static int group_teardown(void **state) {
    (void)state;
    tp_test_redis_stop(&redis);
    return 0;
}

static tp_store_t *store_new(fixture_t *fx) {
    tp_store_options_t so;
    memset(&so, 0, sizeof so);
    so.host = "127.0.0.1";
    so.port = redis.port;
    so.reconnect_min_ms = 10;
    so.reconnect_max_ms = 100;
    tp_store_t *s = tp_store_new(&fx->loop, &so);
    assert_non_null(s);
    RUN_UNTIL(fx, tp_store_connected(s), 3000);
    assert_true(tp_store_connected(s));
    return s;
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || tp_test_loop_init(&fx->loop, &fx->watchdog, &fx->expired) < 0)
        return -1;
    *state = fx;
    if (!(fx->sync = tp_test_redis_connect(&redis))) return -1;
    fx->store = store_new(fx);
    fx->bus = tp_bus_new(&fx->loop);
    if (!fx->bus) return -1;
    tp_emitter_options_t o;
    memset(&o, 0, sizeof o);
    o.service = TP_SERVICE_TICKETING;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", tp_test_free_port());
    o.endpoint = endpoint;
    o.resend_after_ms = 60000; /* nobody answers: entries stay put */
    fx->emitter = tp_emitter_new(&fx->loop, fx->bus, fx->store, &o);
    if (!fx->emitter) return -1;
    char path[] = "/tmp/tp-fixture-XXXXXX", err[256];
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, ROSTER_INI, strlen(ROSTER_INI)) < 0) return -1;
    close(fd);
    tp_config_t *cfg = tp_config_new(path, err, sizeof err);
    unlink(path);
    if (!cfg) return -1;
    fx->roster = tp_roster_new(cfg, err, sizeof err);
    tp_config_destroy(&cfg);
    fx->hours = tp_calendar_new(NULL, err, sizeof err);
    return fx->roster && fx->hours ? 0 : -1;
}

/* The services' order: the store first, then the modules, the emitter,
 * the bus. `destroy_modules` tears down the test's own modules. */
static void fixture_close(fixture_t *fx, void (*destroy_modules)(fixture_t *fx)) {
    tp_store_destroy(&fx->store);
    if (destroy_modules) destroy_modules(fx);
    tp_emitter_destroy(&fx->emitter);
    tp_bus_destroy(&fx->bus);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    tp_roster_destroy(&fx->roster);
    tp_calendar_destroy(&fx->hours);
    redisFree(fx->sync);
    free(fx);
    assert_int_equal(rc, 0);
}

#endif
