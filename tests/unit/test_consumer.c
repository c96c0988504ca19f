/* test_consumer.c: tp_consumer against a throwaway redis-server and a real
 * PUSH socket standing in for intake.
 *
 * The apply callback follows the contract of consumer.h: one Lua script
 * that starts with TP_LUA_DONE_CHECK, INCRs a counter per event and ends
 * with TP_LUA_DONE_MARK. The counter proves the effect happened once; the
 * invocation counts prove what the consumer handed over. Covers bus
 * delivery, repeats, the reconcile walk (lag, cursor, done marks checked
 * before applying, a failing apply holding the cursor), the lease between
 * two instances (and its hand-over), and max_inflight.
 *
 * Everything callbacks touch lives in the heap fixture. Conditions seen
 * inside callbacks are recorded there and asserted after the loop ran, so
 * a failed assert never jumps out of a hiredis or libuv callback. Every
 * test ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "tp/bus.h"
#include "tp/consumer.h"
#include "tp/event.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/store.h"

#define MAX_EVENTS 96
#define MAX_CALLS 4
#define JOURNAL "tp:{j}:journal"
#define CURSOR "tp:cursor:scoring"
#define LEASE "tp:lease:scoring:reconcile"

typedef struct fixture fixture_t;

/* One event the test made, and what happened to it. */
typedef struct {
    char id[64];
    char customer[32];
    char journal_id[48];                /* XADD id; "" when not journaled */
    int64_t ts;                         /* when it occurred; 0: not packed yet */
    int calls;                          /* apply invocations */
    int reconciled_calls;               /* of which handed over by the walk */
    int by[2];                          /* invocations per member */
    char cursor_at[MAX_CALLS][48];      /* cursor when apply was called */
} tracked_t;

/* One consumer instance with its own connection. */
typedef struct {
    fixture_t *fx;
    int idx;
    tp_store_t *store;
    tp_consumer_t *consumer;
    int script;
    int max_inflight_seen;
} member_t;

/* An apply in progress (its eval or its delay timer). */
typedef struct pending {
    member_t *m;
    tp_consumer_job_t *job;
    char customer[TP_CUSTOMER_MAX + 1];
    uv_timer_t timer;
    int timer_used;
    struct pending *prev, *next;
} pending_t;

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int expired;
    redisContext *sync; /* the test's own view of redis */
    tp_bus_t *bus;
    tp_bus_socket_t *push; /* stands in for intake's PUSH */
    char endpoint[64];
    member_t members[2];
    pending_t *pending;
    tracked_t events[MAX_EVENTS];
    int nevents;
    int untracked_calls;   /* apply for an event the test never made */
    int bad_reconciled;    /* tp_consumer_job_reconciled disagreed */
    int bad_done_key;      /* done key not as keys.h says */
    /* behaviour of the apply callback */
    char fail_id[64];      /* fail this event ... */
    int fail_left;         /* ... this many times */
    int record_cursor;     /* GET the cursor at every call */
    uint64_t delay_ms;     /* hold the job this long after the script */
    int inflight_bound;    /* > 0: check stats.inflight <= this in apply */
    int inflight_violations;
    int inflight_worst;
    int customer_overlaps;  /* a job started while one of its customer ran */
    int order_violations;   /* CUST-<n>'s events started out of push order */
    int last_started[16];   /* per CUST-<n>: index of the last event started */
    int grouped;            /* done_grouped: marks are fields */
    int shared_tag;         /* every customer's tag is "s0" */
    int max_running;        /* most applies of one member at once */
};

static tp_test_redis_t redis;

/* ---------------------------------------------------------------------------
 * The test's synchronous view of redis */

static redisReply *sync_cmd(fixture_t *fx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(fx->sync, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    return r;
}

/* GET `key` into `out` ("" when absent). */
static void sync_get(fixture_t *fx, const char *key, char *out, size_t cap) {
    redisReply *r = redisCommand(fx->sync, "GET %s", key);
    out[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(out, cap, "%.*s", (int)r->len, r->str);
    if (r) freeReplyObject(r);
}

static long long sync_int(fixture_t *fx, const char *key) {
    char buf[32];
    sync_get(fx, key, buf, sizeof buf);
    return buf[0] ? atoll(buf) : 0;
}

static int cursor_is(fixture_t *fx, const char *id) {
    char cur[64];
    sync_get(fx, CURSOR, cur, sizeof cur);
    return strcmp(cur, id) == 0;
}

/* ---------------------------------------------------------------------------
 * Events */

static tracked_t *track(fixture_t *fx, const char *id, const char *customer) {
    assert_true(fx->nevents < MAX_EVENTS);
    tracked_t *t = &fx->events[fx->nevents++];
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->customer, sizeof t->customer, "%s", customer);
    return t;
}

static tracked_t *find(fixture_t *fx, const char *id) {
    for (int i = 0; i < fx->nevents; i++)
        if (strcmp(fx->events[i].id, id) == 0) return &fx->events[i];
    return NULL;
}

/* A valid lead.captured envelope for `t`, occurred `age_ms` ago when it is
 * packed first; the same event sent again (the bus, then the journal) is
 * the same envelope, its time included (done marks are grouped by the
 * event's hour: two times across an hour would be two events). */
static void pack_event(tracked_t *t, int64_t age_ms, msgpack_sbuffer *buf) {
    tp_event_t ev;
    tp_event_init(&ev);
    ev.v = TP_PROTO_VERSION;
    ev.type = TP_EVENT_LEAD_CAPTURED;
    if (!t->ts) t->ts = tp_now_ms() - age_ms;
    ev.ts = t->ts;
    snprintf(ev.id, sizeof ev.id, "%s", t->id);
    snprintf(ev.src, sizeof ev.src, "web");
    snprintf(ev.customer, sizeof ev.customer, "%s", t->customer);
    ev.data = json_pack("{s:s, s:i, s:i, s:i, s:s}", "company", "ACME Ltd",
                        "urgency", 2, "budget", 1, "decision", 3, "owner", "u-7");
    assert_non_null(ev.data);
    msgpack_sbuffer_init(buf);
    assert_int_equal(tp_event_pack(&ev, buf), 0);
    tp_event_clear(&ev);
}

/* Sends `t` on the bus, as intake routes it. */
static void push_event(fixture_t *fx, tracked_t *t) {
    msgpack_sbuffer buf;
    pack_event(t, 1000, &buf);
    const void *frames[] = {buf.data};
    size_t lens[] = {buf.size};
    int tries = 0;
    while (tp_bus_send(fx->push, frames, lens, 1) < 0) {
        assert_int_equal(errno, EAGAIN); /* no consumer connected yet */
        assert_true(++tries < 600);
        RUN_FOR(fx, 5);
    }
    msgpack_sbuffer_destroy(&buf);
}

/* Appends `t` to the journal, as intake does, and remembers the id. */
static void journal_event(fixture_t *fx, tracked_t *t) {
    msgpack_sbuffer buf;
    pack_event(t, 60000, &buf);
    redisReply *r = sync_cmd(fx, "XADD %s * t %s e %b", JOURNAL, "lead.captured",
                             buf.data, buf.size);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(t->journal_id, sizeof t->journal_id, "%s", r->str);
    freeReplyObject(r);
    msgpack_sbuffer_destroy(&buf);
}

/* The effect's counter for `t`: how many times the script ran past the
 * done check. */
static long long applied(fixture_t *fx, const tracked_t *t) {
    char key[256];
    tp_key_customer(key, sizeof key, "tp:", t->customer, "applied:%s", t->id);
    return sync_int(fx, key);
}

/* ---------------------------------------------------------------------------
 * The service under test: tag and apply */

static const char APPLY_LUA[] =
    TP_LUA_DONE_CHECK
    "redis.call('INCR', KEYS[2])\n"
    TP_LUA_DONE_MARK
    "return {1}\n";

/* The same with done_grouped: ARGV[2] the mark's field. */
static const char APPLY_FIELD_LUA[] =
    "if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then return {0} end\n"
    "redis.call('INCR', KEYS[2])\n"
    "redis.call('HSET', KEYS[1], ARGV[2], '1')\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "return {1}\n";

/* As the services tag: the customer's key prefix in its shard, so the
 * done marks of one walk step lie in many slots. */
static int tag_cb(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    member_t *m = arg;
    if (!ev->customer[0]) return -1;
    if (m->fx->shared_tag) {
        int n = snprintf(tag, len, "s0");
        return n < 0 || (size_t)n >= len ? -1 : 0;
    }
    return tp_key_customer_tag(tag, len, ev->customer) < 0 ? -1 : 0;
}

static void pending_unlink(pending_t *p) {
    fixture_t *fx = p->m->fx;
    if (p->prev)
        p->prev->next = p->next;
    else
        fx->pending = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

static void pending_closed(uv_handle_t *h) { free(h->data); }

/* Ends the job and lets the pending record go. */
static void finish(pending_t *p, int status) {
    pending_unlink(p);
    tp_consumer_job_done(p->job, status);
    if (p->timer_used) {
        uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *)&p->timer, pending_closed);
    } else {
        free(p);
    }
}

static void delay_fired(uv_timer_t *t) { finish(t->data, 0); }

static void script_cb(tp_store_t *store, redisReply *r, void *arg) {
    pending_t *p = arg;
    fixture_t *fx = p->m->fx;
    int ok = r && r->type == REDIS_REPLY_ARRAY;
    if (tp_consumer_reply_seen(r)) tp_consumer_job_duplicate(p->job);
    if (ok && fx->delay_ms > 0) {
        uv_timer_init(&fx->loop, &p->timer);
        p->timer.data = p;
        p->timer_used = 1;
        uv_timer_start(&p->timer, delay_fired, fx->delay_ms, 0);
        return;
    }
    finish(p, ok ? 0 : -1);
}

static void apply_cb(tp_consumer_t *c, tp_consumer_job_t *job,
                     const tp_event_t *ev, void *arg) {
    member_t *m = arg;
    fixture_t *fx = m->fx;

    tp_consumer_stats_t st;
    tp_consumer_stats(c, &st);
    if (st.inflight > m->max_inflight_seen) m->max_inflight_seen = st.inflight;
    if (fx->inflight_bound > 0 && st.inflight > fx->inflight_bound) {
        fx->inflight_violations++;
        if (st.inflight > fx->inflight_worst) fx->inflight_worst = st.inflight;
    }

    tracked_t *t = find(fx, ev->id);
    if (!t) {
        fx->untracked_calls++;
    } else {
        if (fx->record_cursor && t->calls < MAX_CALLS)
            sync_get(fx, CURSOR, t->cursor_at[t->calls], sizeof t->cursor_at[0]);
        t->calls++;
        t->by[m->idx]++;
        if (tp_consumer_job_reconciled(job)) t->reconciled_calls++;
        /* the walk only hands over what the journal holds */
        if (tp_consumer_job_reconciled(job) && !t->journal_id[0])
            fx->bad_reconciled++;
    }

    char want[512];
    if (fx->shared_tag) {
        snprintf(want, sizeof want, "tp:{s0}:done:scoring:%s", ev->id);
    } else if (fx->grouped) {
        char tag[128];
        tp_key_customer_tag(tag, sizeof tag, ev->customer);
        char digest[TP_DONE_FIELD_LEN + 1];
        snprintf(want, sizeof want, "tp:%s:done:scoring:%lld:%u", tag,
                 (long long)(ev->ts / 3600000),
                 tp_consumer_done_mark(digest, sizeof digest, ev->id));
    } else {
        tp_key_customer(want, sizeof want, "tp:", ev->customer, "done:scoring:%s", ev->id);
    }
    if (strcmp(tp_consumer_job_done_key(job), want) != 0) fx->bad_done_key++;
    const char *field = tp_consumer_job_done_field(job);
    char digest[TP_DONE_FIELD_LEN + 1];
    tp_consumer_done_mark(digest, sizeof digest, ev->id);
    if (fx->grouped ? !field || strcmp(field, digest) != 0 || strlen(field) != TP_DONE_FIELD_LEN
                    : field != NULL)
        fx->bad_done_key++;

    int running = 1;
    for (pending_t *q = fx->pending; q; q = q->next) {
        if (q->m == m && strcmp(q->customer, ev->customer) == 0) fx->customer_overlaps++;
        if (q->m == m) running++;
    }
    if (running > fx->max_running) fx->max_running = running;
    int cust;
    if (t && sscanf(ev->customer, "CUST-%d", &cust) == 1 && cust >= 0 && cust < 16) {
        int idx = (int)(t - fx->events);
        if (idx < fx->last_started[cust]) fx->order_violations++;
        fx->last_started[cust] = idx;
    }
    pending_t *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->m = m;
    p->job = job;
    snprintf(p->customer, sizeof p->customer, "%s", ev->customer);
    p->next = fx->pending;
    if (p->next) p->next->prev = p;
    fx->pending = p;

    if (fx->fail_left > 0 && strcmp(ev->id, fx->fail_id) == 0) {
        fx->fail_left--;
        finish(p, -1);
        return;
    }

    char counter[256];
    tp_key_customer(counter, sizeof counter, tp_store_ns(m->store), ev->customer,
                    "applied:%s", ev->id);
    const char *argv[4] = {tp_consumer_job_done_key(job), counter,
                           tp_consumer_done_ttl(c), field};
    if (tp_store_eval(m->store, m->script, script_cb, p, 2, field ? 4 : 3, argv, NULL) < 0)
        finish(p, -1);
}

/* ---------------------------------------------------------------------------
 * Fixture */

static tp_consumer_options_t options(fixture_t *fx, const char *instance) {
    tp_consumer_options_t o;
    memset(&o, 0, sizeof o);
    o.service = TP_SERVICE_SCORING;
    o.endpoint = fx->endpoint;
    o.instance = instance;
    o.reconcile_lag_ms = 100;
    o.reconcile_interval_ms = 100;
    return o;
}

/* Connects member `idx` and starts its consumer. */
static member_t *start_member(fixture_t *fx, int idx,
                              const tp_consumer_options_t *o) {
    member_t *m = &fx->members[idx];
    m->fx = fx;
    m->idx = idx;
    tp_store_options_t so;
    memset(&so, 0, sizeof so);
    so.host = "127.0.0.1";
    so.port = redis.port;
    so.reconnect_min_ms = 10;
    so.reconnect_max_ms = 100;
    m->store = tp_store_new(&fx->loop, &so);
    assert_non_null(m->store);
    m->script = fx->grouped ? tp_store_script(m->store, "test_apply_field", APPLY_FIELD_LUA)
                            : tp_store_script(m->store, "test_apply", APPLY_LUA);
    assert_true(m->script >= 0);
    RUN_UNTIL(fx, tp_store_connected(m->store), 3000);
    assert_true(tp_store_connected(m->store));
    m->consumer = tp_consumer_new(&fx->loop, fx->bus, m->store, o, tag_cb,
                                  apply_cb, m);
    assert_non_null(m->consumer);
    return m;
}

/* The order consumer.h asks for: the store first, so jobs waiting on it
 * end (status -1) while the consumer lives; then jobs held by a timer. */
static void stop_member(fixture_t *fx, member_t *m) {
    tp_store_destroy(&m->store);
    pending_t *p = fx->pending;
    while (p) {
        pending_t *next = p->next;
        if (p->m == m) finish(p, -1);
        p = next;
    }
    tp_consumer_destroy(&m->consumer);
    assert_null(m->consumer);
}

static tp_consumer_stats_t stats(const member_t *m) {
    tp_consumer_stats_t st;
    tp_consumer_stats(m->consumer, &st);
    return st;
}

static int group_setup(void **state) {
    tp_log_init("test_consumer", "", TP_LOG_WARN);
    return tp_test_redis_start(&redis);
}

static int group_teardown(void **state) {
    tp_test_redis_stop(&redis);
    return 0;
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || tp_test_loop_init(&fx->loop, &fx->watchdog, &fx->expired) < 0)
        return -1;
    if (!(fx->sync = tp_test_redis_connect(&redis))) return -1;
    fx->bus = tp_bus_new(&fx->loop);
    if (!fx->bus) return -1;
    int port = tp_test_free_port();
    snprintf(fx->endpoint, sizeof fx->endpoint, "tcp://127.0.0.1:%d", port);
    fx->push = tp_bus_socket_new(fx->bus, ZMQ_PUSH, fx->endpoint, 1, 0, NULL, NULL);
    if (!fx->push) return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    for (int i = 0; i < 2; i++) stop_member(fx, &fx->members[i]);
    assert_null(fx->pending);
    tp_bus_destroy(&fx->bus);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    int odd = fx->bad_reconciled + fx->bad_done_key + fx->untracked_calls;
    redisFree(fx->sync);
    free(fx);
    assert_int_equal(rc, 0);
    assert_int_equal(odd, 0); /* checks made inside apply, every test */
    return 0;
}

/* ---------------------------------------------------------------------------
 * a) bus delivery */

static void test_bus_events_applied_once(void **state) {
    fixture_t *fx = *state;
    tp_consumer_options_t o = options(fx, "a");
    member_t *m = start_member(fx, 0, &o);
    assert_string_equal(tp_consumer_done_ttl(m->consumer), "2592000");

    enum { N = 10 };
    for (int i = 0; i < N; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-a-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i % 3);
        push_event(fx, track(fx, id, cust));
    }
    /* Not this service's business (the tag callback says so): skipped. */
    tracked_t *orphan = track(fx, "ev-a-orphan", "");
    push_event(fx, orphan);

    RUN_UNTIL(fx, stats(m).received == N + 1 && stats(m).inflight == 0, 5000);
    tp_consumer_stats_t st = stats(m);
    assert_int_equal(st.received, N + 1);
    assert_int_equal(st.applied, N);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.reconciled, 0);
    assert_int_equal(st.inflight, 0);
    for (int i = 0; i < N; i++) {
        tracked_t *t = &fx->events[i];
        assert_int_equal(t->calls, 1);
        assert_int_equal(t->reconciled_calls, 0);
        assert_int_equal(applied(fx, t), 1);
        /* the done mark is where keys.h says, with the ttl */
        char done[256];
        tp_key_customer(done, sizeof done, "tp:", t->customer, "done:scoring:%s", t->id);
        redisReply *r = sync_cmd(fx, "TTL %s", done);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_true(r->integer > 2592000 - 60 && r->integer <= 2592000);
        freeReplyObject(r);
    }
    assert_int_equal(orphan->calls, 0);
    assert_int_equal(fx->untracked_calls, 0);
    assert_int_equal(fx->bad_done_key, 0);

    /* nothing more happens on later walks: the journal is empty */
    RUN_FOR(fx, 300);
    assert_int_equal(stats(m).applied, N);
    assert_int_equal(stats(m).reconciled, 0);
}

/* ---------------------------------------------------------------------------
 * b) the same event three times */

static void test_repeat_applied_once(void **state) {
    fixture_t *fx = *state;
    tp_consumer_options_t o = options(fx, "a");
    member_t *m = start_member(fx, 0, &o);
    tracked_t *t = track(fx, "ev-b-1", "CUST-B");
    for (int i = 0; i < 3; i++) push_event(fx, t);
    RUN_UNTIL(fx, stats(m).applied == 3, 5000);
    tp_consumer_stats_t st = stats(m);
    assert_int_equal(st.received, 3);
    assert_int_equal(st.applied, 3); /* "found already applied" counts as 0 */
    assert_int_equal(st.failed, 0);
    assert_int_equal(t->calls, 3);
    assert_int_equal(applied(fx, t), 1);

    /* and again, long after the first */
    push_event(fx, t);
    RUN_UNTIL(fx, stats(m).applied == 4, 5000);
    assert_int_equal(t->calls, 4);
    assert_int_equal(applied(fx, t), 1);
}

/* The same, counted in a metrics registry: per type, a repeat found
 * applied already is a duplicate, not applied again; every job is timed. */
static void test_repeat_counted_in_metrics(void **state) {
    fixture_t *fx = *state;
    tp_metrics_t *reg = tp_metrics_new("scoring", "a");
    tp_consumer_options_t o = options(fx, "a");
    o.metrics = reg;
    member_t *m = start_member(fx, 0, &o);
    tracked_t *t = track(fx, "ev-m-1", "CUST-M");
    for (int i = 0; i < 3; i++) push_event(fx, t);
    push_event(fx, track(fx, "ev-m-2", "CUST-N"));
    RUN_UNTIL(fx, stats(m).applied == 4, 5000);
    assert_int_equal(stats(m).duplicates, 2);
    double v;
#define COUNTED(name)                                                                  \
    (v = tp_series_value(tp_metric_at(tp_metrics_counter(reg, name, "", "type"),         \
                                      "lead.captured")))
    assert_true(COUNTED("tp_events_received_total") == 4);
    assert_true(COUNTED("tp_events_applied_total") == 2);
    assert_true(COUNTED("tp_events_duplicate_total") == 2);
    assert_true(COUNTED("tp_events_failed_total") == 0);
#undef COUNTED
    tp_series_t *timed = tp_metric_at(
        tp_metrics_histogram(reg, "tp_apply_seconds", "", "type", NULL, 0), "lead.captured");
    assert_true(tp_series_value(timed) == 4);
    (void)v;
    stop_member(fx, m); /* the consumer goes before the registry it counts in */
    tp_metrics_destroy(&reg);
}

/* ---------------------------------------------------------------------------
 * c) the walk applies what the bus lost */

/* A cursor that is not a stream id (damaged by hand, or by an old bug)
 * must not stop the walk for good: it walks from the start again. */
static void test_reconcile_survives_a_damaged_cursor(void **state) {
    fixture_t *fx = *state;
    redisReply *r = sync_cmd(fx, "SET %s %s", CURSOR, "\x01garbage");
    freeReplyObject(r);
    tp_consumer_options_t o = options(fx, "a");
    o.reconcile_lag_ms = 100;
    member_t *m = start_member(fx, 0, &o);
    tracked_t *ev = track(fx, "ev-damaged", "CUST-D");
    journal_event(fx, ev);
    RUN_UNTIL(fx, cursor_is(fx, ev->journal_id), 5000);
    assert_true(cursor_is(fx, ev->journal_id));
    RUN_UNTIL(fx, stats(m).inflight == 0, 2000);
    assert_int_equal(ev->calls, 1);
    assert_int_equal(applied(fx, ev), 1);
}

static void test_reconcile_applies_missed(void **state) {
    fixture_t *fx = *state;
    tp_consumer_options_t o = options(fx, "a");
    o.reconcile_lag_ms = 300;
    member_t *m = start_member(fx, 0, &o);

    enum { N = 6 };
    for (int i = 0; i < N; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-c-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i % 2);
        journal_event(fx, track(fx, id, cust));
    }
    /* Entries the walk must step over without applying anything: an
     * unknown type, an unreadable envelope, an event without customer. */
    redisReply *r = sync_cmd(fx, "XADD %s * t %s e %s", JOURNAL, "no.such", "x");
    freeReplyObject(r);
    r = sync_cmd(fx, "XADD %s * t %s e %s", JOURNAL, "lead.captured", "\xc1garbage");
    freeReplyObject(r);
    tracked_t *orphan = track(fx, "ev-c-orphan", "");
    journal_event(fx, orphan);
    const char *last = orphan->journal_id;

    /* Younger than the lag window: left alone for now. */
    RUN_FOR(fx, 120);
    assert_int_equal(stats(m).reconciled, 0);

    RUN_UNTIL(fx, cursor_is(fx, last), 5000);
    assert_true(cursor_is(fx, last));
    RUN_UNTIL(fx, stats(m).inflight == 0, 2000);
    tp_consumer_stats_t st = stats(m);
    assert_int_equal(st.received, 0);
    assert_int_equal(st.reconciled, N);
    assert_int_equal(st.applied, N);
    assert_int_equal(st.failed, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(fx->events[i].calls, 1);
        assert_int_equal(fx->events[i].reconciled_calls, 1);
        assert_int_equal(applied(fx, &fx->events[i]), 1);
    }
    assert_int_equal(orphan->calls, 0);
    assert_int_equal(fx->untracked_calls, 0);

    /* Later walks start after the cursor: nothing again. */
    RUN_FOR(fx, 400);
    assert_int_equal(stats(m).reconciled, N);
    assert_true(cursor_is(fx, last));
}

/* ---------------------------------------------------------------------------
 * d) what the bus applied, the walk does not hand over again */

static void reconcile_skips_done(fixture_t *fx, int grouped) {
    fx->grouped = grouped;
    tp_consumer_options_t o = options(fx, "a");
    o.done_grouped = grouped;
    member_t *m = start_member(fx, 0, &o);

    enum { N = 8 };
    for (int i = 0; i < N; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-d-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i % 3);
        push_event(fx, track(fx, id, cust));
    }
    RUN_UNTIL(fx, stats(m).applied == N, 5000);
    assert_int_equal(stats(m).applied, N);

    /* Now journaled (intake's order differs, the outcome must not): the
     * walk finds the done marks and leaves them alone. One more entry the
     * bus lost shows the walk really ran. */
    for (int i = 0; i < N; i++) journal_event(fx, &fx->events[i]);
    char lost_id[32] = "ev-d-lost";
    const char *lost_customer = "CUST-9";
    if (grouped) { /* in the very hash of marks of a done event (CUST-0's
                      ev-d-0): only its own field says it is not done */
        uint64_t g0 = tp_id_hash("ev-d-0", 6) % TP_DONE_GROUPS;
        for (int k = 0; tp_id_hash(lost_id, strlen(lost_id)) % TP_DONE_GROUPS != g0; k++)
            snprintf(lost_id, sizeof lost_id, "ev-d-lost-%d", k);
        lost_customer = "CUST-0";
    }
    tracked_t *lost = track(fx, lost_id, lost_customer);
    journal_event(fx, lost);

    RUN_UNTIL(fx, cursor_is(fx, lost->journal_id), 5000);
    assert_true(cursor_is(fx, lost->journal_id));
    RUN_UNTIL(fx, stats(m).inflight == 0, 2000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(fx->events[i].calls, 1); /* not even invoked */
        assert_int_equal(applied(fx, &fx->events[i]), 1);
    }
    assert_int_equal(lost->calls, 1);
    assert_int_equal(lost->reconciled_calls, 1);
    assert_int_equal(applied(fx, lost), 1);
    tp_consumer_stats_t st = stats(m);
    assert_int_equal(st.received, N);
    assert_int_equal(st.reconciled, 1);
    assert_int_equal(st.applied, N + 1);
}

static void test_reconcile_skips_done(void **state) { reconcile_skips_done(*state, 0); }

/* The same with done marks as fields of small hashes (done_grouped): the
 * walk asks for the fields, and sees them. */
static void test_reconcile_skips_done_grouped(void **state) {
    reconcile_skips_done(*state, 1);
    fixture_t *fx = *state;
    redisReply *r = redisCommand(fx->sync, "KEYS tp:{s*}:c:CUST-0:done:scoring:*");
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1);
    for (size_t i = 0; i < r->elements; i++) { /* hashes of marks, expiring */
        redisReply *t = redisCommand(fx->sync, "TYPE %s", r->element[i]->str);
        assert_string_equal(t->str, "hash");
        freeReplyObject(t);
        t = redisCommand(fx->sync, "TTL %s", r->element[i]->str);
        assert_true(t->integer > 0);
        freeReplyObject(t);
    }
    freeReplyObject(r);
}

/* ---------------------------------------------------------------------------
 * e) a failed apply holds the cursor */

/* One entry per step: the cursor stops right before the failed entry, the
 * next walk retries it, and nothing after it runs before it succeeded. */
static void test_reconcile_failure_holds_cursor(void **state) {
    fixture_t *fx = *state;
    tp_consumer_options_t o = options(fx, "a");
    o.reconcile_batch = 1;
    fx->record_cursor = 1;
    snprintf(fx->fail_id, sizeof fx->fail_id, "ev-e-2");
    fx->fail_left = 1;

    tracked_t *t[4];
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "ev-e-%d", i);
        t[i] = track(fx, id, "CUST-E");
        journal_event(fx, t[i]);
    }
    member_t *m = start_member(fx, 0, &o);
    RUN_UNTIL(fx, cursor_is(fx, t[3]->journal_id), 5000);
    assert_true(cursor_is(fx, t[3]->journal_id));
    RUN_UNTIL(fx, stats(m).inflight == 0, 2000);

    assert_int_equal(t[0]->calls, 1);
    assert_string_equal(t[0]->cursor_at[0], "");
    assert_int_equal(t[1]->calls, 1);
    assert_string_equal(t[1]->cursor_at[0], t[0]->journal_id);
    assert_int_equal(t[2]->calls, 2); /* failed, then retried */
    assert_string_equal(t[2]->cursor_at[0], t[1]->journal_id);
    assert_string_equal(t[2]->cursor_at[1], t[1]->journal_id);
    assert_int_equal(t[3]->calls, 1); /* only after the retry succeeded */
    assert_string_equal(t[3]->cursor_at[0], t[2]->journal_id);
    for (int i = 0; i < 4; i++) assert_int_equal(applied(fx, t[i]), 1);
    tp_consumer_stats_t st = stats(m);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.applied, 4);
    assert_int_equal(st.reconciled, 5);
}

/* One step for all: the failure keeps the cursor where it was; the retry
 * hands over only the failed entry (the others carry their done marks). */
static void test_reconcile_failure_in_batch(void **state) {
    fixture_t *fx = *state;
    tp_consumer_options_t o = options(fx, "a");
    fx->record_cursor = 1;
    snprintf(fx->fail_id, sizeof fx->fail_id, "ev-f-1");
    fx->fail_left = 1;

    tracked_t *t[4];
    for (int i = 0; i < 4; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-f-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i);
        t[i] = track(fx, id, cust);
        journal_event(fx, t[i]);
    }
    member_t *m = start_member(fx, 0, &o);
    RUN_UNTIL(fx, cursor_is(fx, t[3]->journal_id), 5000);
    assert_true(cursor_is(fx, t[3]->journal_id));
    RUN_UNTIL(fx, stats(m).inflight == 0, 2000);

    assert_int_equal(t[0]->calls, 1);
    assert_int_equal(t[1]->calls, 2);
    assert_string_equal(t[1]->cursor_at[0], "");
    assert_string_equal(t[1]->cursor_at[1], ""); /* the step did not advance */
    assert_int_equal(t[2]->calls, 1);
    assert_int_equal(t[3]->calls, 1);
    for (int i = 0; i < 4; i++) assert_int_equal(applied(fx, t[i]), 1);
    tp_consumer_stats_t st = stats(m);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.applied, 4);
    assert_int_equal(st.reconciled, 5);
}

/* ---------------------------------------------------------------------------
 * f) two instances: one walks at a time */

static int all_applied_once(fixture_t *fx) {
    for (int i = 0; i < fx->nevents; i++)
        if (applied(fx, &fx->events[i]) != 1) return 0;
    return 1;
}

static void test_lease_one_walker(void **state) {
    fixture_t *fx = *state;
    tp_consumer_options_t oa = options(fx, "a"), ob = options(fx, "b");
    oa.lease_ms = ob.lease_ms = 500;
    member_t *a = start_member(fx, 0, &oa);
    member_t *b = start_member(fx, 1, &ob);

    /* Some on the bus (both instances pull), applied first ... */
    enum { BUS = 10, LOST = 10, LATER = 5 };
    for (int i = 0; i < BUS; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-g-bus-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i % 4);
        push_event(fx, track(fx, id, cust));
    }
    RUN_UNTIL(fx, stats(a).applied + stats(b).applied == BUS, 5000);
    assert_int_equal(stats(a).applied + stats(b).applied, BUS);
    /* ... then everything journaled, with entries the bus lost between. */
    for (int i = 0; i < LOST; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-g-lost-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i % 4);
        journal_event(fx, &fx->events[i]);
        journal_event(fx, track(fx, id, cust));
    }
    const char *last = fx->events[fx->nevents - 1].journal_id;
    RUN_UNTIL(fx, cursor_is(fx, last), 5000);
    assert_true(cursor_is(fx, last));
    RUN_UNTIL(fx, stats(a).inflight + stats(b).inflight == 0, 2000);

    char holder[16];
    sync_get(fx, LEASE, holder, sizeof holder);
    assert_true(strcmp(holder, "a") == 0 || strcmp(holder, "b") == 0);
    member_t *walker = holder[0] == 'a' ? a : b, *other = walker == a ? b : a;
    assert_int_equal(stats(walker).reconciled, LOST);
    assert_int_equal(stats(other).reconciled, 0);
    for (int i = 0; i < fx->nevents; i++) {
        assert_int_equal(fx->events[i].calls, 1);
        assert_int_equal(applied(fx, &fx->events[i]), 1);
        if (fx->events[i].reconciled_calls) {
            assert_int_equal(fx->events[i].by[walker->idx], 1);
        }
    }
    /* a few more walks: still one walker */
    RUN_FOR(fx, 300);
    sync_get(fx, LEASE, holder, sizeof holder);
    assert_int_equal(holder[0], walker == a ? 'a' : 'b');

    /* The walker goes away: once its lease expires, the other walks. */
    int survivor_idx = other->idx;
    stop_member(fx, walker);
    int first_later = fx->nevents;
    for (int i = 0; i < LATER; i++) {
        char id[32];
        snprintf(id, sizeof id, "ev-g-later-%d", i);
        journal_event(fx, track(fx, id, "CUST-L"));
    }
    last = fx->events[fx->nevents - 1].journal_id;
    RUN_UNTIL(fx, cursor_is(fx, last), 5000);
    assert_true(cursor_is(fx, last));
    RUN_UNTIL(fx, stats(other).inflight == 0, 2000);
    sync_get(fx, LEASE, holder, sizeof holder);
    assert_string_equal(holder, survivor_idx == 0 ? "a" : "b");
    assert_int_equal(stats(other).reconciled, LATER);
    for (int i = first_later; i < fx->nevents; i++)
        assert_int_equal(fx->events[i].by[survivor_idx], 1);
    assert_true(all_applied_once(fx));
    for (int i = 0; i < fx->nevents; i++) assert_int_equal(fx->events[i].calls, 1);
}

/* ---------------------------------------------------------------------------
 * g) max_inflight */

static void test_max_inflight_bus(void **state) {
    fixture_t *fx = *state;
    tp_consumer_options_t o = options(fx, "a");
    o.max_inflight = 4;
    fx->delay_ms = 20;
    fx->inflight_bound = 4;
    member_t *m = start_member(fx, 0, &o);

    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-h-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i % 5);
        push_event(fx, track(fx, id, cust));
    }
    RUN_UNTIL(fx, stats(m).applied == N, 10000);
    tp_consumer_stats_t st = stats(m);
    assert_int_equal(st.applied, N);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(fx->inflight_violations, 0);
    assert_int_equal(m->max_inflight_seen, 4); /* the bound was reached */
    /* one customer's events one after another, in the order they came */
    assert_int_equal(fx->customer_overlaps, 0);
    assert_int_equal(fx->order_violations, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(fx->events[i].calls, 1);
        assert_int_equal(applied(fx, &fx->events[i]), 1);
    }
}

/* A tag shared by many customers (the scheduler's shards): by default its
 * events are applied one at a time; with turn_by_customer, the customers'
 * events go at once, each customer's still one after another, in order. */
static void shared_tag_turns(fixture_t *fx, int by_customer) {
    fx->shared_tag = 1;
    fx->delay_ms = 20;
    tp_consumer_options_t o = options(fx, "a");
    o.turn_by_customer = by_customer;
    member_t *m = start_member(fx, 0, &o);
    enum { N = 30 };
    for (int i = 0; i < N; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-t-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i % 5);
        push_event(fx, track(fx, id, cust));
    }
    RUN_UNTIL(fx, stats(m).applied == N, 10000);
    assert_int_equal(stats(m).applied, N);
    assert_int_equal(fx->customer_overlaps, 0);
    assert_int_equal(fx->order_violations, 0);
    for (int i = 0; i < N; i++) assert_int_equal(applied(fx, &fx->events[i]), 1);
}

static void test_shared_tag_one_at_a_time(void **state) {
    fixture_t *fx = *state;
    shared_tag_turns(fx, 0);
    assert_int_equal(fx->max_running, 1);
}

static void test_shared_tag_turn_by_customer(void **state) {
    fixture_t *fx = *state;
    shared_tag_turns(fx, 1);
    assert_int_equal(fx->max_running, 5); /* every customer at once */
}

/* The same bound for what the walk hands over: max_inflight is documented
 * as "events being applied", whatever their origin. */
static void test_max_inflight_walk(void **state) {
    fixture_t *fx = *state;
    tp_consumer_options_t o = options(fx, "a");
    o.max_inflight = 4;
    fx->delay_ms = 20;
    fx->inflight_bound = 4;

    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        char id[32], cust[32];
        snprintf(id, sizeof id, "ev-i-%d", i);
        snprintf(cust, sizeof cust, "CUST-%d", i % 5);
        journal_event(fx, track(fx, id, cust));
    }
    member_t *m = start_member(fx, 0, &o);
    const char *last = fx->events[N - 1].journal_id;
    RUN_UNTIL(fx, cursor_is(fx, last), 10000);
    assert_true(cursor_is(fx, last));
    RUN_UNTIL(fx, stats(m).inflight == 0, 2000);
    for (int i = 0; i < N; i++) {
        assert_int_equal(fx->events[i].calls, 1);
        assert_int_equal(applied(fx, &fx->events[i]), 1);
    }
    if (fx->inflight_violations)
        print_message("    walk: %d applies started beyond max_inflight=4 "
                      "(up to %d in flight)\n",
                      fx->inflight_violations, fx->inflight_worst);
    assert_int_equal(fx->inflight_violations, 0);
    assert_true(m->max_inflight_seen <= 4);
}

/* A done mark's field: a short digest of the event id, the same for the
 * same id, another for another id, whatever the id's length. */
static void test_done_field_is_a_short_digest(void **state) {
    (void)state;
    char a[TP_DONE_FIELD_LEN + 1], b[TP_DONE_FIELD_LEN + 1], c[TP_DONE_FIELD_LEN + 1];
    unsigned ga = tp_consumer_done_mark(a, sizeof a, "01M8Z4JWZEHWED03AH5FBZQC4Y");
    assert_int_equal(tp_consumer_done_mark(b, sizeof b, "01M8Z4JWZEHWED03AH5FBZQC4Y"), ga);
    tp_consumer_done_mark(c, sizeof c, "01M8Z4JWZEHWED03AH5FBZQC4Z");
    assert_true(ga < TP_DONE_GROUPS);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), TP_DONE_FIELD_LEN);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     TP_DONE_FIELD_LEN);
    tp_consumer_done_mark(c, sizeof c, "rem:C01JZB000000000000000000186/R-SLA-1/1:1796349175923");
    assert_int_equal(strlen(c), TP_DONE_FIELD_LEN);
    /* ids alike but for a counter still spread over the groups */
    unsigned char used[TP_DONE_GROUPS] = {0};
    int groups = 0;
    for (int i = 0; i < 4096; i++) {
        char id[32];
        snprintf(id, sizeof id, "ev-%06d", i);
        unsigned g = tp_consumer_done_mark(c, sizeof c, id);
        groups += !used[g];
        used[g] = 1;
    }
    assert_true(groups > TP_DONE_GROUPS * 9 / 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_done_field_is_a_short_digest),
        cmocka_unit_test_setup_teardown(test_bus_events_applied_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeat_applied_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeat_counted_in_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_survives_a_damaged_cursor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_applies_missed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_skips_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_skips_done_grouped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_tag_one_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_tag_turn_by_customer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_failure_holds_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_failure_in_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_one_walker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_inflight_bus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_inflight_walk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
