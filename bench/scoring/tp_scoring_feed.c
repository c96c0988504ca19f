/* tp_scoring_feed.c: the event source and the fake intake of bench/scoring.
 *
 * Owns its sockets, its Redis connection and its buffers only. Builds a
 * realistic stream of events the way intake would have journaled them
 * (ids and customers assigned, msgpack envelopes packed by the project's own
 * tp_event_pack, every `data` checked against proto/ first), all in memory
 * before any clock starts, then either
 *
 *   journal  appends them to the journal stream as intake does
 *            (XADD <ns>{j}:journal * t <type> e <envelope>), pipelined
 *            over hiredis, for the reconcile walk to find; or
 *   push     binds a PUSH socket at scoring's endpoint, as intake's router
 *            does, and sends them (blocking at the high-water mark instead
 *            of dropping, so every event gets there); or
 *   sink     binds a ROUTER at intake's ingress endpoint and answers "ok"
 *            to every derived event scoring emits, as intake would once it
 *            had journaled it, so scoring's outbox drains (ZREM) as in
 *            production; counts them by type into a stats file.
 *
 * The stream: lead.captured makes a new customer, with an id shaped like
 * intake's ("C" + 26 Crockford characters) but made of a per-stream prefix
 * (C + the stream's ULID time + 4 characters from the seed, 15 in all,
 * printed as customer_prefix) and a 12-digit index, so that redis-benchmark's
 * __rand_int__ (12 digits) can address the stream's customers at random in
 * the ceiling; contact.logged,
 * opportunity.updated and survey.answered go to a customer captured at
 * least --gap events earlier (uniformly among those), so follow-ups come
 * later than their lead as in life, and within a window two events of the
 * same customer happen only by chance; and only once --pool-min customers
 * are that old (before, every event is a lead). Deals per customer: up to 3, moved
 * along their stages. Random choices come from a seeded generator.
 *
 * Output: key=value lines on stdout, for the bench's helper.
 *
 *   tp-scoring-feed journal --port P --events N [gen options]
 *   tp-scoring-feed push --endpoint E --events N [--hwm H] [--go-on-stdin 1]
 *                        [gen options]   (1: prints "ready" once built and
 *                        bound, sends once a line comes on stdin)
 *   tp-scoring-feed sink --endpoint E --stats FILE
 * gen options: --seed S --gap G --pool-min M
 *              --mix lead=30,contact=35,opportunity=20,survey=15
 *              --ns tp:
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <msgpack.h>
#include <zmq.h>

#include "tp/event.h"
#include "tp/id.h"
#include "tp_loadclient.h"

typedef struct opts {
    const char *mode;
    long events;
    uint64_t seed;
    long gap;
    long pool_min;
    const char *mix;
    const char *ns;
    int port;
    const char *endpoint;
    int hwm;
    const char *stats;
    double max_s;
    int go_stdin;
} opts_t;

static void fail(const char *what) {
    fprintf(stderr, "tp-scoring-feed: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(2);
}

/* ---- the stream ---- */

static uint64_t rng_state;

static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static long pick(long n) { return n > 0 ? (long)(rnd() % (uint64_t)n) : 0; }
static int chance(int percent) { return pick(100) < percent; }
#define ONE_OF(arr) (arr[pick((long)(sizeof arr / sizeof *arr))])

enum { K_LEAD, K_CONTACT, K_OPPORTUNITY, K_SURVEY, K_COUNT };
static const char *const kind_name[K_COUNT] = {"lead", "contact", "opportunity", "survey"};
static const tp_event_type_t kind_type[K_COUNT] = {
    TP_EVENT_LEAD_CAPTURED, TP_EVENT_CONTACT_LOGGED, TP_EVENT_OPPORTUNITY_UPDATED,
    TP_EVENT_SURVEY_ANSWERED};

#define DEALS_MAX 3

typedef struct customer {
    char id[TP_ULID_LEN + 2];
    long born;     /* position of its lead.captured in the stream */
    int owner;     /* rep number */
    int ndeals;
    int stage[DEALS_MAX];
    int64_t amount[DEALS_MAX];
} customer_t;

typedef struct item {
    tp_event_type_t type;
    char *blob;
    size_t len;
} item_t;

typedef struct stream {
    char prefix[16]; /* customers' ids: prefix + %012ld */
    item_t *items;
    long n;
    long count[K_COUNT];
    long customers;
    size_t bytes;
} stream_t;

static void parse_mix(const char *mix, int w[K_COUNT]) {
    memset(w, 0, K_COUNT * sizeof *w);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", mix);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int k = -1;
        if (eq) {
            *eq = '\0';
            for (int i = 0; i < K_COUNT; i++)
                if (!strcmp(tok, kind_name[i])) k = i;
        }
        if (k < 0 || atoi(eq + 1) < 0) {
            fprintf(stderr, "tp-scoring-feed: --mix: want lead=N,contact=N,"
                            "opportunity=N,survey=N, got %s\n", mix);
            exit(2);
        }
        w[k] = atoi(eq + 1);
    }
    if (w[K_LEAD] <= 0) {
        fprintf(stderr, "tp-scoring-feed: --mix needs lead > 0\n");
        exit(2);
    }
}

static json_t *lead_data(long n, customer_t *c) {
    static const char *const industries[] = {"manufacturing", "fmcg", "hightech",
                                             "retail", "logistics", "services"};
    static const char *const channels[] = {"exhibition", "community", "cold_visit",
                                           "referral", "directory", "search",
                                           "phone", "email", "web", "other"};
    static const int sizes[] = {12, 45, 80, 150, 320, 800, 2500};
    static const char *const titles[] = {"purchasing manager", "CTO", "plant manager",
                                         "owner", "IT lead"};
    json_t *contact = json_pack("{s:s, s:s}", "name", "Li Lei", "phone", "");
    char phone[24];
    snprintf(phone, sizeof phone, "139%08ld", n % 100000000L);
    json_object_set_new(contact, "phone", json_string(phone));
    if (chance(60)) json_object_set_new(contact, "title", json_string(ONE_OF(titles)));
    if (chance(50)) {
        char email[64];
        snprintf(email, sizeof email, "li.lei%ld@bench%ld.example.com", n, n % 997);
        json_object_set_new(contact, "email", json_string(email));
    }
    char company[64], owner[16];
    snprintf(company, sizeof company, "Bench Manufacturing %ld Co., Ltd.", n);
    snprintf(owner, sizeof owner, "rep-%d", c->owner);
    json_t *d = json_pack("{s:s, s:o, s:s, s:i, s:s, s:i, s:i, s:i, s:s}", "company",
                          company, "contact", contact, "industry", ONE_OF(industries),
                          "size", ONE_OF(sizes), "channel", ONE_OF(channels), "urgency",
                          (int)pick(4), "budget", (int)pick(4), "decision", (int)pick(4),
                          "owner", owner);
    if (chance(40))
        json_object_set_new(d, "need",
                            json_string("wants one system for orders, stock and "
                                        "after-sales across its plants; asked for a demo"));
    return d;
}

static json_t *contact_data(int64_t ts) {
    static const char *const channels[] = {"phone", "phone", "phone", "email", "visit",
                                           "meeting", "im"};
    static const char *const outcomes[] = {"reached", "reached", "no_answer", "no_answer",
                                           "refused", "needs_time", "interested",
                                           "interested"};
    json_t *d = json_pack("{s:s, s:s, s:s}", "channel", ONE_OF(channels), "direction",
                          chance(70) ? "out" : "in", "outcome", ONE_OF(outcomes));
    if (chance(40))
        json_object_set_new(d, "next_contact_at",
                            json_integer(ts + (1 + pick(14)) * 86400000LL));
    if (chance(60))
        json_object_set_new(d, "summary",
                            json_string("went through pricing and the rollout plan; "
                                        "they want references from their industry"));
    return d;
}

static json_t *opportunity_data(customer_t *c, int64_t ts) {
    int k;
    if (c->ndeals == 0 || (c->ndeals < DEALS_MAX && chance(25))) {
        k = c->ndeals++;
        c->stage[k] = 1 + (int)pick(2);
        c->amount[k] = 10000 * (1 + pick(500));
    } else {
        k = (int)pick(c->ndeals);
        if (c->stage[k] < 6 && chance(60)) c->stage[k]++;
        if (chance(30)) c->amount[k] = c->amount[k] * (80 + pick(41)) / 100;
    }
    char opp[16], name[64];
    snprintf(opp, sizeof opp, "opp-%d", k + 1);
    snprintf(name, sizeof name, "ERP rollout, phase %d", k + 1);
    json_t *d = json_pack("{s:s, s:s, s:I, s:s, s:i, s:I}", "opportunity", opp, "name",
                          name, "amount", (json_int_t)c->amount[k], "currency", "CNY",
                          "stage", c->stage[k], "expected_close",
                          (json_int_t)(ts + (30 + pick(120)) * 86400000LL));
    if (chance(20)) json_object_set_new(d, "probability", json_integer(pick(101)));
    if (chance(50)) {
        char team[16];
        snprintf(team, sizeof team, "team-%d", c->owner % 8);
        json_object_set_new(d, "team", json_string(team));
    }
    return d;
}

static json_t *survey_data(void) {
    static const int scores[] = {5, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 3, 3, 3, 2, 2, 1, 1};
    static const char *const about[] = {"ticket", "project", "visit", "other"};
    json_t *d = json_pack("{s:i, s:s}", "score", ONE_OF(scores), "about", ONE_OF(about));
    if (chance(40))
        json_object_set_new(d, "comment",
                            json_string("engineer came on time, fix took two visits"));
    return d;
}

static void build(const opts_t *o, stream_t *s) {
    int w[K_COUNT], total = 0;
    parse_mix(o->mix, w);
    for (int k = 0; k < K_COUNT; k++) total += w[k];
    rng_state = o->seed;
    memset(s, 0, sizeof *s);
    s->items = calloc((size_t)o->events, sizeof *s->items);
    customer_t *cs = calloc((size_t)o->events, sizeof *cs);
    if (!s->items || !cs) fail("calloc");
    long eligible = 0; /* customers born at least `gap` events ago */
    int64_t t0 = tp_now_ms() - o->events; /* 1 ms apart, ending about now */
    {
        static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        char u[TP_ULID_LEN + 1];
        tp_id_ulid(u, t0);
        s->prefix[0] = 'C';
        memcpy(s->prefix + 1, u, 10);
        uint64_t tag = o->seed * 0x9E3779B97F4A7C15ULL;
        for (int i = 0; i < 4; i++) s->prefix[11 + i] = crockford[(tag >> (59 - 5 * i)) & 31];
        s->prefix[15] = '\0';
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (long i = 0; i < o->events; i++) {
        while (eligible < s->customers && cs[eligible].born <= i - o->gap) eligible++;
        long r = pick(total);
        int k = 0;
        while (r >= w[k]) r -= w[k++];
        /* until enough customers exist, everything is a lead: a handful of
         * customers taking every follow-up would be a hot spot no CRM has */
        if (k != K_LEAD && (eligible == 0 || eligible < o->pool_min)) k = K_LEAD;
        tp_event_t ev;
        tp_event_init(&ev);
        ev.v = TP_PROTO_VERSION;
        ev.type = kind_type[k];
        ev.ts = t0 + i;
        tp_id_ulid(ev.id, ev.ts);
        customer_t *c;
        if (k == K_LEAD) {
            c = &cs[s->customers];
            snprintf(c->id, sizeof c->id, "%s%012ld", s->prefix, s->customers);
            s->customers++;
            c->born = i;
            c->owner = (int)pick(50);
            ev.data = lead_data(i, c);
            snprintf(ev.src, sizeof ev.src, "%s", chance(70) ? "web" : "api");
        } else {
            c = &cs[pick(eligible)];
            snprintf(ev.src, sizeof ev.src, "%s", k == K_SURVEY ? "web" : "api");
            if (k == K_CONTACT) ev.data = contact_data(ev.ts);
            else if (k == K_OPPORTUNITY) ev.data = opportunity_data(c, ev.ts);
            else ev.data = survey_data();
            if (k != K_SURVEY) snprintf(ev.actor, sizeof ev.actor, "rep-%d", c->owner);
        }
        snprintf(ev.customer, sizeof ev.customer, "%s", c->id);
        tp_event_error_t err;
        if (!ev.data || tp_event_validate_data(ev.type, ev.data, &err) < 0) {
            fprintf(stderr, "tp-scoring-feed: built an invalid %s: %s: %s\n",
                    tp_proto_type_name(ev.type), ev.data ? err.field : "data",
                    ev.data ? err.message : "json_pack failed");
            exit(2);
        }
        sb.size = 0;
        if (tp_event_pack(&ev, &sb) < 0) fail("tp_event_pack");
        item_t *it = &s->items[s->n++];
        it->type = ev.type;
        it->len = sb.size;
        it->blob = malloc(sb.size);
        if (!it->blob) fail("malloc");
        memcpy(it->blob, sb.data, sb.size);
        s->bytes += sb.size;
        s->count[k]++;
        tp_event_clear(&ev);
    }
    msgpack_sbuffer_destroy(&sb);
    free(cs);
}

static void print_stream(const stream_t *s, double build_s) {
    printf("events=%ld\ncustomers=%ld\ncustomer_prefix=%s\n", s->n, s->customers,
           s->prefix);
    for (int k = 0; k < K_COUNT; k++)
        printf("%s=%ld\n", tp_proto_type_name(kind_type[k]), s->count[k]);
    printf("envelope_bytes_avg=%.0f\nbuild_s=%.3f\n",
           s->n ? (double)s->bytes / (double)s->n : 0.0, build_s);
}

/* ---- journal ---- */

static int run_journal(const opts_t *o) {
    double b0 = tp_load_now_s();
    stream_t s;
    build(o, &s);
    double built = tp_load_now_s() - b0;
    redisContext *c = redisConnect("127.0.0.1", o->port);
    if (!c || c->err) {
        fprintf(stderr, "tp-scoring-feed: redis: %s\n", c ? c->errstr : "no memory");
        return 2;
    }
    char key[128];
    snprintf(key, sizeof key, "%s{j}:journal", o->ns);
    double t0 = tp_load_now_s();
    const long chunk = 1000;
    for (long i = 0; i < s.n; i += chunk) {
        long end = i + chunk < s.n ? i + chunk : s.n;
        for (long j = i; j < end; j++) {
            const char *name = tp_proto_type_name(s.items[j].type);
            const char *argv[7] = {"XADD", key, "*", "t", name, "e", s.items[j].blob};
            size_t lens[7] = {4, strlen(key), 1, 1, strlen(name), 1, s.items[j].len};
            redisAppendCommandArgv(c, 7, argv, lens);
        }
        for (long j = i; j < end; j++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || !r ||
                r->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "tp-scoring-feed: XADD: %s\n",
                        r ? r->str : c->errstr);
                return 2;
            }
            freeReplyObject(r);
        }
    }
    double el = tp_load_now_s() - t0;
    redisFree(c);
    printf("mode=journal\n");
    print_stream(&s, built);
    printf("elapsed_s=%.3f\nrate=%.0f\ngen_cpu_s=%.3f\n", el, (double)s.n / el,
           tp_load_cpu_s());
    return 0;
}

/* ---- push ---- */

static int run_push(const opts_t *o) {
    double b0 = tp_load_now_s();
    stream_t s;
    build(o, &s);
    double built = tp_load_now_s() - b0;
    void *ctx = zmq_ctx_new();
    void *p = zmq_socket(ctx, ZMQ_PUSH);
    int linger = (int)(o->max_s * 1000);
    zmq_setsockopt(p, ZMQ_SNDHWM, &o->hwm, sizeof o->hwm);
    zmq_setsockopt(p, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(p, o->endpoint) < 0) fail("zmq_bind");
    /* the clock starts once scoring's PULL has connected: a blocking send
     * with no peer waits for one */
    int tmo = (int)(o->max_s * 1000);
    zmq_setsockopt(p, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    if (o->go_stdin) { /* built and bound: the caller starts its clock */
        char line[16];
        printf("ready\n");
        if (!fgets(line, sizeof line, stdin)) return 2;
    }
    double cpu0 = tp_load_cpu_s(), t0 = 0;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    long sent = 0;
    for (long i = 0; i < s.n; i++) {
        if (zmq_send(p, s.items[i].blob, s.items[i].len, 0) < 0) {
            fprintf(stderr, "tp-scoring-feed: send %ld: %s\n", i, zmq_strerror(errno));
            break;
        }
        if (i == 0) t0 = tp_load_now_s();
        sent++;
    }
    double el = tp_load_now_s() - t0; /* queued: every message is in a zmq buffer */
    zmq_close(p);             /* lingers until delivered (or max_s) */
    zmq_ctx_term(ctx);
    double flushed = tp_load_now_s() - t0;
    printf("mode=push\n");
    print_stream(&s, built);
    printf("sent=%ld\nqueued_s=%.3f\nflushed_s=%.3f\nsend_cpu_s=%.3f\n"
           "go_wall=%.6f\n", sent, el, flushed, tp_load_cpu_s() - cpu0,
           (double)wall.tv_sec + (double)wall.tv_nsec / 1e9);
    return sent == s.n ? 0 : 1;
}

/* ---- sink: intake's ingress, answering ok ---- */

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static void write_stats(const char *path, long received, const long *by_type,
                        long bad) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "received=%ld\nmalformed=%ld\n", received, bad);
    for (int t = 1; t < TP_EVENT_COUNT; t++)
        if (by_type[t]) fprintf(f, "%s=%ld\n", tp_proto_type_name((tp_event_type_t)t), by_type[t]);
    fprintf(f, "cpu_s=%.3f\n", tp_load_cpu_s());
    fclose(f);
    rename(tmp, path);
}

static int run_sink(const opts_t *o) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    void *ctx = zmq_ctx_new();
    void *r = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(r, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(r, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(r, o->endpoint) < 0) fail("zmq_bind");
    long received = 0, bad = 0, by_type[TP_EVENT_COUNT] = {0};
    double last = 0;
    write_stats(o->stats, 0, by_type, 0);
    while (!stopping) {
        zmq_pollitem_t it = {.socket = r, .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 100);
        for (;;) {
            zmq_msg_t part[3];
            int n = 0, more = 1;
            while (more) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, r, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                more = zmq_msg_more(&m);
                if (n < 3) part[n] = m;
                else zmq_msg_close(&m);
                n++;
            }
            if (n == 0) break;
            if (n == 3) {
                tp_event_t ev;
                tp_event_error_t err;
                tp_event_init(&ev);
                if (tp_event_from_msgpack(&ev, zmq_msg_data(&part[2]), zmq_msg_size(&part[2]),
                                          &err) == 0) {
                    by_type[ev.type]++;
                    received++;
                } else {
                    bad++;
                }
                tp_event_clear(&ev);
                zmq_msg_send(&part[0], r, ZMQ_SNDMORE); /* identity */
                zmq_msg_send(&part[1], r, ZMQ_SNDMORE); /* token */
                zmq_send(r, "ok", 2, 0);
                zmq_msg_close(&part[2]);
            } else {
                for (int i = 0; i < n && i < 3; i++) zmq_msg_close(&part[i]);
                bad++;
            }
        }
        if (tp_load_now_s() - last > 0.1) {
            write_stats(o->stats, received, by_type, bad);
            last = tp_load_now_s();
        }
    }
    write_stats(o->stats, received, by_type, bad);
    zmq_close(r);
    zmq_ctx_term(ctx);
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: tp-scoring-feed journal|push|sink [--events N] [--seed S] [--gap G]\n"
            "       [--pool-min M]\n"
            "       [--mix lead=30,contact=35,opportunity=20,survey=15] [--ns tp:]\n"
            "       [--port P] [--endpoint E] [--hwm H] [--stats FILE] [--max-s S]\n"
            "       [--go-on-stdin 1]\n");
    exit(2);
}

int main(int argc, char **argv) {
    opts_t o = {.events = 100000, .seed = 1, .gap = 2000, .pool_min = 1000,
                .mix = "lead=30,contact=35,opportunity=20,survey=15", .ns = "tp:",
                .port = 6379, .endpoint = "tcp://127.0.0.1:5701", .hwm = 100000,
                .max_s = 60};
    if (argc < 2) usage();
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--events")) o.events = atol(v);
        else if (!strcmp(k, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--gap")) o.gap = atol(v);
        else if (!strcmp(k, "--pool-min")) o.pool_min = atol(v);
        else if (!strcmp(k, "--mix")) o.mix = v;
        else if (!strcmp(k, "--ns")) o.ns = v;
        else if (!strcmp(k, "--port")) o.port = atoi(v);
        else if (!strcmp(k, "--endpoint")) o.endpoint = v;
        else if (!strcmp(k, "--hwm")) o.hwm = atoi(v);
        else if (!strcmp(k, "--stats")) o.stats = v;
        else if (!strcmp(k, "--max-s")) o.max_s = atof(v);
        else if (!strcmp(k, "--go-on-stdin")) o.go_stdin = atoi(v);
        else usage();
    }
    if (o.events < 1 || o.gap < 0 || o.pool_min < 0 || o.hwm < 0) usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(o.mode, "journal")) return run_journal(&o);
    if (!strcmp(o.mode, "push")) return run_push(&o);
    if (!strcmp(o.mode, "sink")) {
        if (!o.stats) usage();
        return run_sink(&o);
    }
    usage();
    return 2;
}
