/* test_emit.c: tp_emitter against a throwaway redis-server and a ROUTER
 * socket the test binds, answering as intake's ingress does: it receives
 * [identity][token][payload] and answers [identity][token][status], status
 * "ok", "dup", "busy" or "err <field>: <msg>" (or, here, nothing at all).
 *
 * Each case puts the payload into the outbox first (ZADD <outbox> <now>
 * <payload>, as an apply script would), sends it, and checks what became
 * of the outbox entry and what the router saw. Also covers tp_emit_pack.
 *
 * Everything callbacks touch lives in the heap fixture, callbacks only
 * record, and every test ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "tp/bus.h"
#include "tp/emit.h"
#include "tp/event.h"
#include "tp/id.h"
#include "tp/log.h"
#include "tp/keys.h"
#include "tp/store.h"

#define MAX_SEEN 16
#define MAX_ANSWERS 8
#define OUTBOX "tp:outbox:scoring"

typedef struct {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int expired;
    redisContext *sync;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_bus_socket_t *router; /* stands in for intake's ingress */
    char endpoint[64];
    tp_emitter_t *emitter;
    /* the router's script: the n-th message gets answers[n] (NULL: no
     * answer at all); from nanswers on: "ok" */
    const char *answers[MAX_ANSWERS];
    int nanswers;
    int received;
    int bad_frames;
    int answer_failures;
    char seen[MAX_SEEN][512]; /* payloads, in arrival order */
    size_t seen_len[MAX_SEEN];
    int64_t seen_at[MAX_SEEN];
} fixture_t;

static tp_test_redis_t redis;

/* ---------------------------------------------------------------------------
 * The fake ingress */

static void router_recv(tp_bus_socket_t *sock, const void *const *frames,
                        const size_t *lens, size_t nframes, void *arg) {
    fixture_t *fx = arg;
    if (nframes != 3 || lens[1] != sizeof(uint64_t)) {
        fx->bad_frames++;
        return;
    }
    int n = fx->received++;
    if (n < MAX_SEEN) {
        size_t len = lens[2] < sizeof fx->seen[0] ? lens[2] : sizeof fx->seen[0];
        memcpy(fx->seen[n], frames[2], len);
        fx->seen_len[n] = lens[2];
        fx->seen_at[n] = tp_now_ms();
    }
    const char *status = n < fx->nanswers ? fx->answers[n] : "ok";
    if (!status) return; /* lost on the way, or intake died */
    const void *out[3] = {frames[0], frames[1], status};
    size_t out_lens[3] = {lens[0], lens[1], strlen(status)};
    if (tp_bus_send(sock, out, out_lens, 3) < 0) fx->answer_failures++;
}

/* ---------------------------------------------------------------------------
 * Helpers */

static redisReply *sync_cmd(fixture_t *fx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(fx->sync, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    return r;
}

static long long outbox_size(fixture_t *fx) {
    redisReply *r = sync_cmd(fx, "ZCARD %s", OUTBOX);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static int in_outbox(fixture_t *fx, const msgpack_sbuffer *p) {
    redisReply *r = sync_cmd(fx, "ZSCORE %s %b", OUTBOX, p->data, p->size);
    int there = r->type != REDIS_REPLY_NIL;
    freeReplyObject(r);
    return there;
}

static tp_emitter_stats_t stats(const fixture_t *fx) {
    tp_emitter_stats_t st;
    tp_emitter_stats(fx->emitter, &st);
    return st;
}

/* A derived lead.graded, as scoring packs it. */
static void derived(msgpack_sbuffer *out, const char *id) {
    msgpack_sbuffer_init(out);
    json_t *data = json_pack("{s:s, s:i, s:i, s:s, s:s}", "grade", "A", "score",
                             87, "fit", 90, "owner", "u-7", "cause", "ev-cause");
    assert_non_null(data);
    assert_int_equal(tp_emit_pack(out, TP_EVENT_LEAD_GRADED, id, 1700000000000LL,
                                  TP_SERVICE_SCORING, "ACME-1", data),
                     0);
}

/* What the apply script does: the entry goes into the outbox, now.
 * Returns the score. */
static int64_t outbox_add(fixture_t *fx, const msgpack_sbuffer *p) {
    int64_t now = tp_now_ms();
    redisReply *r = sync_cmd(fx, "ZADD %s %lld %b", OUTBOX, (long long)now,
                             p->data, p->size);
    freeReplyObject(r);
    return now;
}

/* tp_emitter_send, once the DEALER is connected (before that, ZMQ_IMMEDIATE
 * makes the send fail with EAGAIN, which the emitter leaves to the sweep). */
static void send_connected(fixture_t *fx, const msgpack_sbuffer *p) {
    uint64_t before = stats(fx).sent;
    for (int tries = 0; stats(fx).sent == before; tries++) {
        assert_true(tries < 600);
        tp_emitter_send(fx->emitter, p->data, p->size);
        if (stats(fx).sent == before) RUN_FOR(fx, 5);
    }
}

static int seen_is(const fixture_t *fx, int n, const msgpack_sbuffer *p) {
    return n < fx->received && n < MAX_SEEN && fx->seen_len[n] == p->size &&
           memcmp(fx->seen[n], p->data, p->size) == 0;
}

/* ---------------------------------------------------------------------------
 * Fixture */

static int group_setup(void **state) {
    tp_log_init("test_emit", "", TP_LOG_WARN);
    return tp_test_redis_start(&redis);
}

static int group_teardown(void **state) {
    tp_test_redis_stop(&redis);
    return 0;
}

static void start_emitter_hwm(fixture_t *fx, int hwm) {
    tp_emitter_options_t o;
    memset(&o, 0, sizeof o);
    o.service = TP_SERVICE_SCORING;
    o.endpoint = fx->endpoint;
    o.resend_after_ms = 200;
    o.sweep_interval_ms = 100;
    o.hwm = hwm;
    fx->emitter = tp_emitter_new(&fx->loop, fx->bus, fx->store, &o);
    assert_non_null(fx->emitter);
    assert_string_equal(tp_emitter_outbox(fx->emitter), OUTBOX);
}

static void start_emitter(fixture_t *fx) { start_emitter_hwm(fx, 0); }

static void start_router(fixture_t *fx) {
    fx->router = tp_bus_socket_new(fx->bus, ZMQ_ROUTER, fx->endpoint, 1, 0,
                                   router_recv, fx);
    assert_non_null(fx->router);
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || tp_test_loop_init(&fx->loop, &fx->watchdog, &fx->expired) < 0)
        return -1;
    *state = fx;
    if (!(fx->sync = tp_test_redis_connect(&redis))) return -1;

    tp_store_options_t so;
    memset(&so, 0, sizeof so);
    so.host = "127.0.0.1";
    so.port = redis.port;
    so.reconnect_min_ms = 10;
    so.reconnect_max_ms = 100;
    fx->store = tp_store_new(&fx->loop, &so);
    if (!fx->store) return -1;
    RUN_UNTIL(fx, tp_store_connected(fx->store), 3000);
    if (!tp_store_connected(fx->store)) return -1;
    fx->bus = tp_bus_new(&fx->loop);
    if (!fx->bus) return -1;
    snprintf(fx->endpoint, sizeof fx->endpoint, "tcp://127.0.0.1:%d",
             tp_test_free_port());
    return 0;
}

/* The services' order: the store first, then the emitter, then the bus. */
static int teardown(void **state) {
    fixture_t *fx = *state;
    tp_store_destroy(&fx->store);
    tp_emitter_destroy(&fx->emitter);
    assert_null(fx->emitter);
    tp_emitter_destroy(&fx->emitter); /* NULL is fine */
    tp_bus_destroy(&fx->bus);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    int odd = fx->bad_frames + fx->answer_failures;
    redisFree(fx->sync);
    free(fx);
    assert_int_equal(rc, 0);
    assert_int_equal(odd, 0);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Answers */

/* "ok" and "dup" both mean journaled: the entry leaves the outbox and is
 * never sent again. */
static void acked_and_removed(fixture_t *fx, const char *answer) {
    fx->answers[0] = answer;
    fx->nanswers = 1;
    start_router(fx);
    start_emitter(fx);
    msgpack_sbuffer p;
    derived(&p, "ev-derived-1");
    outbox_add(fx, &p);
    send_connected(fx, &p);
    RUN_UNTIL(fx, outbox_size(fx) == 0, 3000);
    assert_int_equal(outbox_size(fx), 0);
    assert_int_equal(fx->received, 1);
    assert_true(seen_is(fx, 0, &p));
    tp_emitter_stats_t st = stats(fx);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.acked, 1);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.inflight, 0);

    /* several sweeps later: not sent again */
    RUN_FOR(fx, 500);
    assert_int_equal(fx->received, 1);
    assert_int_equal(stats(fx).resent, 0);
    assert_int_equal(stats(fx).sent, 1);
    msgpack_sbuffer_destroy(&p);
}

static void test_ok_removes(void **state) { acked_and_removed(*state, "ok"); }

static void test_dup_removes(void **state) { acked_and_removed(*state, "dup"); }

/* "busy": kept, and the sweep resends it once resend_after_ms passed. */
static void test_busy_kept_and_resent(void **state) {
    fixture_t *fx = *state;
    fx->answers[0] = "busy";
    fx->nanswers = 1;
    start_router(fx);
    start_emitter(fx);
    msgpack_sbuffer p;
    derived(&p, "ev-derived-busy");
    int64_t added = outbox_add(fx, &p);
    send_connected(fx, &p);

    RUN_UNTIL(fx, fx->received == 1 && stats(fx).inflight == 0, 3000);
    assert_int_equal(stats(fx).inflight, 0); /* the answer came */
    assert_true(in_outbox(fx, &p));          /* but the entry stays */
    assert_int_equal(stats(fx).acked, 0);

    RUN_UNTIL(fx, fx->received == 2, 3000);
    assert_int_equal(fx->received, 2);
    assert_true(seen_is(fx, 1, &p));
    assert_true(fx->seen_at[1] - added >= 200); /* not before resend_after */
    RUN_UNTIL(fx, outbox_size(fx) == 0, 3000);
    assert_int_equal(outbox_size(fx), 0);
    tp_emitter_stats_t st = stats(fx);
    assert_int_equal(st.sent, 2);
    assert_int_equal(st.resent, 1);
    assert_int_equal(st.acked, 1);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.inflight, 0);
    RUN_FOR(fx, 400);
    assert_int_equal(fx->received, 2);
    msgpack_sbuffer_destroy(&p);
}

/* No answer at all: the entry is forgotten in memory and resent from the
 * outbox by the sweep. */
static void test_no_answer_resent(void **state) {
    fixture_t *fx = *state;
    fx->answers[0] = NULL;
    fx->nanswers = 1;
    start_router(fx);
    start_emitter(fx);
    msgpack_sbuffer p;
    derived(&p, "ev-derived-silence");
    int64_t added = outbox_add(fx, &p);
    send_connected(fx, &p);
    RUN_UNTIL(fx, fx->received == 1, 3000);
    assert_int_equal(stats(fx).inflight, 1); /* waiting for the answer */

    RUN_UNTIL(fx, fx->received == 2, 3000);
    assert_int_equal(fx->received, 2);
    assert_true(seen_is(fx, 1, &p));
    assert_true(fx->seen_at[1] - added >= 200); /* not before resend_after */
    RUN_UNTIL(fx, outbox_size(fx) == 0, 3000);
    assert_int_equal(outbox_size(fx), 0);
    /* the unanswered send is forgotten by a sweep (maybe the next one) */
    RUN_UNTIL(fx, stats(fx).inflight == 0, 1000);
    tp_emitter_stats_t st = stats(fx);
    assert_int_equal(st.sent, 2);
    assert_int_equal(st.resent, 1);
    assert_int_equal(st.acked, 1);
    assert_int_equal(st.inflight, 0);
    RUN_FOR(fx, 400);
    assert_int_equal(fx->received, 2);
    msgpack_sbuffer_destroy(&p);
}

/* "err ...": never accepted: dropped from the outbox, counted as rejected. */
static void test_err_removes_and_counts(void **state) {
    fixture_t *fx = *state;
    fx->answers[0] = "err data.grade: must be one of A|B|C";
    fx->nanswers = 1;
    start_router(fx);
    start_emitter(fx);
    msgpack_sbuffer p;
    derived(&p, "ev-derived-refused");
    outbox_add(fx, &p);
    send_connected(fx, &p);
    RUN_UNTIL(fx, outbox_size(fx) == 0, 3000);
    assert_int_equal(outbox_size(fx), 0);
    tp_emitter_stats_t st = stats(fx);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.acked, 0);
    assert_int_equal(st.inflight, 0);
    RUN_FOR(fx, 500);
    assert_int_equal(fx->received, 1);
    assert_int_equal(stats(fx).resent, 0);
    msgpack_sbuffer_destroy(&p);
}

/* Intake not there yet: the send fails (EAGAIN), the entry stays in the
 * outbox and the sweep delivers it once intake binds. */
static void test_intake_down_then_up(void **state) {
    fixture_t *fx = *state;
    start_emitter(fx);
    msgpack_sbuffer p;
    derived(&p, "ev-derived-early");
    outbox_add(fx, &p);
    tp_emitter_send(fx->emitter, p.data, p.size);
    assert_int_equal(stats(fx).sent, 0);
    assert_int_equal(stats(fx).inflight, 0);
    RUN_FOR(fx, 100);
    start_router(fx);
    RUN_UNTIL(fx, outbox_size(fx) == 0, 5000);
    assert_int_equal(outbox_size(fx), 0);
    assert_true(fx->received >= 1);
    assert_true(seen_is(fx, 0, &p));
    tp_emitter_stats_t st = stats(fx);
    assert_true(st.resent >= 1);
    assert_int_equal(st.acked, 1);
    msgpack_sbuffer_destroy(&p);
}

static long long zcard(fixture_t *fx, const char *key) {
    redisReply *r = sync_cmd(fx, "ZCARD %s", key);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* An outbox per shard: an entry a script left in one shard's outbox is
 * found by the sweep (every shard's outbox is swept), one sent with
 * tp_emitter_send_of is taken from its customer's shard's outbox once
 * answered, and neither touches the old unsharded outbox. */
static void test_shard_outboxes(void **state) {
    fixture_t *fx = *state;
    start_router(fx);
    start_emitter(fx);
    assert_string_equal(tp_emitter_outbox_shard(fx->emitter, 5), "tp:{s5}:outbox:scoring");
    assert_null(tp_emitter_outbox_shard(fx->emitter, TP_SHARDS));
    char of[64];
    snprintf(of, sizeof of, "tp:{s%d}:outbox:scoring", tp_key_shard("ACME-1"));
    assert_string_equal(tp_emitter_outbox_of(fx->emitter, "ACME-1"), of);
    assert_int_not_equal(tp_key_shard("ACME-1"), 5);
    msgpack_sbuffer sent, swept;
    derived(&sent, "ev-derived-shard-sent");
    derived(&swept, "ev-derived-shard-swept");
    freeReplyObject(sync_cmd(fx, "ZADD %s %lld %b", of, (long long)tp_now_ms(), sent.data,
                             sent.size));
    freeReplyObject(sync_cmd(fx, "ZADD tp:{s5}:outbox:scoring %lld %b",
                             (long long)(tp_now_ms() - 1000), swept.data, swept.size));
    uint64_t before = stats(fx).sent;
    for (int tries = 0; stats(fx).sent == before; tries++) { /* once connected */
        assert_true(tries < 600);
        tp_emitter_send_of(fx->emitter, "ACME-1", sent.data, sent.size);
        if (stats(fx).sent == before) RUN_FOR(fx, 5);
    }
    RUN_UNTIL(fx, zcard(fx, of) == 0 && zcard(fx, "tp:{s5}:outbox:scoring") == 0, 3000);
    assert_int_equal(zcard(fx, of), 0);
    assert_int_equal(zcard(fx, "tp:{s5}:outbox:scoring"), 0);
    int saw_sent = 0, saw_swept = 0;
    for (int i = 0; i < fx->received && i < MAX_SEEN; i++) {
        saw_sent |= seen_is(fx, i, &sent);
        saw_swept |= seen_is(fx, i, &swept);
    }
    assert_true(saw_sent && saw_swept);
    assert_true(stats(fx).resent >= 1); /* the swept one */
    assert_int_equal(outbox_size(fx), 0);
    msgpack_sbuffer_destroy(&sent);
    msgpack_sbuffer_destroy(&swept);
}

/* Several entries at once, each with its own token: each answer removes
 * exactly its own entry. */
static void test_tokens_match_entries(void **state) {
    fixture_t *fx = *state;
    fx->answers[0] = "ok";
    fx->answers[1] = "busy";
    fx->answers[2] = "err data: nope";
    fx->answers[3] = "dup";
    fx->nanswers = 4;
    start_router(fx);
    start_emitter(fx);
    msgpack_sbuffer p[4];
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "ev-derived-m%d", i);
        derived(&p[i], id);
        outbox_add(fx, &p[i]);
    }
    send_connected(fx, &p[0]);
    for (int i = 1; i < 4; i++) tp_emitter_send(fx->emitter, p[i].data, p[i].size);
    RUN_UNTIL(fx, fx->received == 4 && stats(fx).inflight == 0 &&
                      outbox_size(fx) == 1, 3000);
    assert_int_equal(fx->received, 4);
    for (int i = 0; i < 4; i++) assert_true(seen_is(fx, i, &p[i]));
    assert_int_equal(outbox_size(fx), 1);
    assert_true(in_outbox(fx, &p[1])); /* the busy one */
    tp_emitter_stats_t st = stats(fx);
    assert_int_equal(st.acked, 2);
    assert_int_equal(st.rejected, 1);
    RUN_UNTIL(fx, outbox_size(fx) == 0, 3000);
    assert_int_equal(fx->received, 5);
    assert_true(seen_is(fx, 4, &p[1]));
    for (int i = 0; i < 4; i++) msgpack_sbuffer_destroy(&p[i]);
}

/* More answers than one ZREM takes (512 members): the entries answered in
 * a loop turn leave their outbox in batches, every one of them. (The
 * DEALER queues 1,000 at once; the sweep sends the rest, and may send again
 * any whose answer is slower than resend_after_ms: intake answers "dup".) */
static void test_many_answers_removed(void **state) {
    fixture_t *fx = *state;
    enum { MANY = 1200 };
    start_router(fx);
    start_emitter(fx);
    msgpack_sbuffer *p = calloc(MANY, sizeof *p);
    assert_non_null(p);
    for (int i = 0; i < MANY; i++) {
        char id[32];
        snprintf(id, sizeof id, "ev-derived-many-%d", i);
        derived(&p[i], id);
        outbox_add(fx, &p[i]);
    }
    send_connected(fx, &p[0]);
    for (int i = 1; i < MANY; i++) tp_emitter_send(fx->emitter, p[i].data, p[i].size);
    RUN_UNTIL(fx, outbox_size(fx) == 0 && stats(fx).inflight == 0, 10000);
    assert_int_equal(outbox_size(fx), 0);
    assert_int_equal(stats(fx).inflight, 0);
    assert_true(stats(fx).acked >= MANY);
    assert_true(fx->received >= MANY);
    RUN_FOR(fx, 500); /* several sweeps: nothing comes back */
    assert_int_equal(outbox_size(fx), 0);
    for (int i = 0; i < MANY; i++) msgpack_sbuffer_destroy(&p[i]);
    free(p);
}

/* ---------------------------------------------------------------------------
 * Bursts */

/* A burst of derived events while intake reads none (busy journaling the
 * ones before): with hwm, all of them wait in the queue to intake; with
 * libzmq's default (1000 a side, over a unix socket's small buffers) the
 * rest are refused and left to the sweep, seconds later. */
#define BURST 10000
static uint64_t deferred_in_burst(fixture_t *fx, int hwm) {
    snprintf(fx->endpoint, sizeof fx->endpoint, "ipc:///tmp/tp-test-emit-%ld-%d.sock",
             (long)getpid(), hwm);
    start_router(fx);
    start_emitter_hwm(fx, hwm);
    msgpack_sbuffer p;
    derived(&p, "ev-burst");
    send_connected(fx, &p);
    RUN_UNTIL(fx, fx->received == 1, 3000);
    tp_bus_pause(fx->router);
    tp_emitter_stats_t before = stats(fx); /* connecting may have deferred some */
    for (int i = 0; i < BURST; i++) tp_emitter_send(fx->emitter, p.data, p.size);
    msgpack_sbuffer_destroy(&p);
    tp_emitter_stats_t st = stats(fx);
    assert_int_equal((st.sent - before.sent) + (st.deferred - before.deferred), BURST);
    return st.deferred - before.deferred;
}

static void test_burst_queued_up_to_hwm(void **state) {
    assert_int_equal(deferred_in_burst(*state, 2 * BURST), 0);
}

static void test_burst_beyond_default_queue_deferred(void **state) {
    assert_true(deferred_in_burst(*state, 0) > 0);
}

/* ---------------------------------------------------------------------------
 * tp_emit_pack */

static void test_pack_invalid(void **state) {
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    /* grade out of its enum, cause missing: not a lead.graded */
    json_t *data = json_pack("{s:s, s:i, s:i, s:s}", "grade", "Z", "score", 87,
                             "fit", 90, "owner", "u-7");
    assert_int_equal(tp_emit_pack(&out, TP_EVENT_LEAD_GRADED, "ev-x", 1,
                                  TP_SERVICE_SCORING, "ACME-1", data),
                     -1);
    /* a lead.captured without its required fields */
    data = json_pack("{s:s}", "company", "ACME");
    assert_int_equal(tp_emit_pack(&out, TP_EVENT_LEAD_CAPTURED, "ev-y", 1,
                                  TP_SERVICE_SCORING, "ACME-1", data),
                     -1);
    assert_int_equal(out.size, 0); /* nothing written */
    msgpack_sbuffer_destroy(&out);
}

static void test_pack_roundtrip(void **state) {
    msgpack_sbuffer out;
    derived(&out, "ev-derived-rt");
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    assert_int_equal(tp_event_from_msgpack(&ev, out.data, out.size, &err), 0);
    assert_int_equal(ev.v, TP_PROTO_VERSION);
    assert_int_equal(ev.type, TP_EVENT_LEAD_GRADED);
    assert_string_equal(ev.id, "ev-derived-rt");
    assert_int_equal(ev.ts, 1700000000000LL);
    assert_string_equal(ev.src, "scoring");
    assert_string_equal(ev.customer, "ACME-1");
    assert_string_equal(ev.actor, "");
    assert_string_equal(tp_event_str(&ev, "grade"), "A");
    assert_int_equal(tp_event_int(&ev, "score", -1), 87);
    assert_int_equal(tp_event_int(&ev, "fit", -1), 90);
    assert_string_equal(tp_event_str(&ev, "owner"), "u-7");
    assert_string_equal(tp_event_str(&ev, "cause"), "ev-cause");
    assert_null(tp_event_str(&ev, "previous"));
    assert_int_equal(json_object_size(ev.data), 5);
    tp_event_clear(&ev);

    /* the same inputs pack to the same bytes: a repeated apply derives
     * an identical outbox member */
    msgpack_sbuffer again;
    derived(&again, "ev-derived-rt");
    assert_int_equal(again.size, out.size);
    assert_memory_equal(again.data, out.data, out.size);
    msgpack_sbuffer_destroy(&again);
    msgpack_sbuffer_destroy(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dup_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_kept_and_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_err_removes_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_down_then_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_match_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_outboxes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_answers_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_queued_up_to_hwm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_beyond_default_queue_deferred, setup,
                                        teardown),
        cmocka_unit_test(test_pack_invalid),
        cmocka_unit_test(test_pack_roundtrip),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
