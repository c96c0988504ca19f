/* tp_loadgen.c: the load generator of bench/ingest.
 *
 * Owns its sockets and buffers only; talks to a running intake over HTTP
 * (plain sockets, keep-alive, one request in flight per connection) or over
 * ZeroMQ (a DEALER to intake's ROUTER ingress, a window of unanswered
 * messages). Every event is a lead.captured with a phone number of its own
 * (139 + 8 digits from --base), so each one makes a new customer and a new
 * grade, as a real lead would. Must never be the bottleneck: request bodies
 * are built with snprintf, msgpack envelopes are packed once with
 * tp_event_pack and only the phone digits are patched per event.
 *
 * Modes (output: key=value lines on stdout, for run.sh's helper):
 *   http-batch  --port P --key K --conns C --batch B --events N [--max-s S]
 *   zmq         --endpoint E --window W --events N [--max-s S]
 *   http-lat    --port P --key K --conns C --rate R --seconds S
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>
#include <zmq.h>

#include "tp/event.h"
#include "tp_loadclient.h"

typedef struct opts {
    const char *mode;
    int port;
    const char *key;
    int conns;
    int batch;
    long events;
    double max_s;
    const char *endpoint;
    int window;
    double rate;
    double seconds;
    unsigned long long base;
} opts_t;

/* One lead.captured as JSON; `n` picks the phone number. */
static int lead_json(char *out, size_t cap, unsigned long long n, long long ts) {
    return snprintf(out, cap,
                    "{\"type\":\"lead.captured\",\"ts\":%lld,\"src\":\"web\","
                    "\"data\":{\"company\":\"Bench %llu\",\"urgency\":3,"
                    "\"budget\":2,\"decision\":3,\"owner\":\"rep-%llu\","
                    "\"industry\":\"manufacturing\",\"size\":500,"
                    "\"contact\":{\"name\":\"Li Lei\",\"phone\":\"139%08llu\"}}}",
                    ts, n, n % 50, n % 100000000ULL);
}

/* ---- HTTP ---- */

typedef struct conn {
    tp_load_conn_t http; /* first: the pump's view of it */
    long nevents;
    double started; /* scheduled start (latency mode) */
} conn_t;

/* Fills c's request with one POST /v1/events carrying `n` events from `first`. */
static void build_request(conn_t *c, const opts_t *o, unsigned long long first,
                          long n, int batch_form) {
    size_t cap = (size_t)n * 400 + 64;
    char *body = tp_load_body(&c->http, cap);
    size_t len = 0;
    long long ts = tp_load_wall_ms();
    if (batch_form) len += (size_t)sprintf(body, "{\"events\":[");
    for (long i = 0; i < n; i++) {
        if (i) body[len++] = ',';
        len += (size_t)lead_json(body + len, cap - len, first + (unsigned long long)i, ts);
    }
    if (batch_form) len += (size_t)sprintf(body + len, "]}");
    tp_load_post(&c->http, o->key, len);
    c->nevents = n;
}

/* Opens `n` connections to intake, and the pump's list of them. */
static conn_t *conns_open(const opts_t *o, tp_load_conn_t ***list) {
    conn_t *cs = calloc((size_t)o->conns, sizeof *cs);
    *list = calloc((size_t)o->conns, sizeof **list);
    if (!cs || !*list) tp_load_die("calloc");
    for (int i = 0; i < o->conns; i++) {
        cs[i].http.fd = tp_load_connect(o->port);
        (*list)[i] = &cs[i].http;
    }
    return cs;
}

static void conns_close(conn_t *cs, tp_load_conn_t **list, int n) {
    for (int i = 0; i < n; i++) tp_load_conn_free(&cs[i].http);
    free(cs);
    free(list);
}

static void closed_die(void) {
    fprintf(stderr, "tp-loadgen: intake closed a connection\n");
    exit(2);
}

typedef struct batch_stats {
    long accepted, duplicates, rejected_events, busy_events, requests;
    int reported;
} batch_stats_t;

static void batch_done(tp_load_conn_t *http, int status, const char *body, size_t len,
                       void *arg) {
    conn_t *c = (conn_t *)http;
    batch_stats_t *s = arg;
    if (status == 0) closed_die();
    s->requests++;
    if (status == 202) {
        long dups = tp_load_duplicates(body, len);
        s->duplicates += dups;
        s->accepted += c->nevents - dups;
    } else if (status == 503) {
        s->busy_events += c->nevents;
    } else {
        s->rejected_events += c->nevents;
        if (!s->reported++)
            fprintf(stderr, "tp-loadgen: HTTP %d: %.*s\n", status,
                    (int)(len > 300 ? 300 : len), body);
    }
}

static int run_http_batch(const opts_t *o) {
    int n = o->conns;
    tp_load_conn_t **list;
    conn_t *cs = conns_open(o, &list);
    batch_stats_t s = {0};
    unsigned long long next = o->base;
    long issued = 0;
    double t0 = tp_load_now_s(), cpu0 = tp_load_cpu_s();
    for (;;) {
        int busy = 0;
        int stop = o->max_s > 0 && tp_load_now_s() - t0 > o->max_s;
        for (int i = 0; i < n; i++) {
            if (!cs[i].http.busy && issued < o->events && !stop) {
                long k = o->events - issued < o->batch ? o->events - issued : o->batch;
                build_request(&cs[i], o, next, k, 1);
                next += (unsigned long long)k;
                issued += k;
            }
            busy += cs[i].http.busy;
        }
        if (!busy) break;
        tp_load_pump(list, n, 1.0, batch_done, &s);
    }
    double el = tp_load_now_s() - t0;
    printf("mode=http-batch\nissued=%ld\naccepted=%ld\nduplicates=%ld\n"
           "rejected=%ld\nbusy=%ld\nrequests=%ld\nelapsed_s=%.3f\n"
           "accept_rate=%.0f\ngen_cpu_s=%.3f\n",
           issued, s.accepted, s.duplicates, s.rejected_events, s.busy_events,
           s.requests, el, s.accepted / el, tp_load_cpu_s() - cpu0);
    conns_close(cs, list, n);
    return s.rejected_events ? 1 : 0;
}

/* ---- HTTP latency at a fixed rate (open loop: measured from the time a
 * request was due, so a stalled server cannot hide its queueing) ---- */

typedef struct lat_stats {
    double *lat;
    long n, cap, errors;
} lat_stats_t;

static void lat_done(tp_load_conn_t *http, int status, const char *body, size_t len,
                     void *arg) {
    conn_t *c = (conn_t *)http;
    lat_stats_t *s = arg;
    (void)body, (void)len;
    if (status == 0) closed_die();
    if (status != 202) {
        s->errors++;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->lat = realloc(s->lat, (size_t)s->cap * sizeof *s->lat);
    }
    s->lat[s->n++] = tp_load_now_s() - c->started;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_http_lat(const opts_t *o) {
    int n = o->conns;
    tp_load_conn_t **list;
    conn_t *cs = conns_open(o, &list);
    lat_stats_t s = {0};
    long total = (long)(o->rate * o->seconds), issued = 0, late = 0;
    double t0 = tp_load_now_s() + 0.01, cpu0 = tp_load_cpu_s();
    for (;;) {
        double t = tp_load_now_s();
        int busy = 0;
        while (issued < total && t0 + (double)issued / o->rate <= t) {
            int free_i = -1;
            for (int i = 0; i < n; i++)
                if (!cs[i].http.busy) { free_i = i; break; }
            if (free_i < 0) break; /* all connections busy: it waits, counted */
            double due = t0 + (double)issued / o->rate;
            if (t - due > 0.001) late++;
            build_request(&cs[free_i], o, o->base + (unsigned long long)issued, 1, 0);
            cs[free_i].started = due;
            issued++;
        }
        for (int i = 0; i < n; i++) busy += cs[i].http.busy;
        if (!busy && issued >= total) break;
        /* sleep until the next request is due or an answer comes */
        double dt = issued < total ? t0 + (double)issued / o->rate - tp_load_now_s() : 1.0;
        if (dt <= 0 && busy == n) dt = 1.0; /* due, but every connection busy */
        tp_load_pump(list, n, dt > 0 ? dt : 0, lat_done, &s);
    }
    double el = tp_load_now_s() - t0;
    qsort(s.lat, (size_t)s.n, sizeof *s.lat, cmp_double);
#define PCT(p) (s.n ? s.lat[(long)((p) * (double)(s.n - 1))] * 1000 : 0)
    printf("mode=http-lat\nrequests=%ld\nerrors=%ld\nrate=%.0f\nelapsed_s=%.3f\n"
           "p50_ms=%.3f\np90_ms=%.3f\np99_ms=%.3f\np999_ms=%.3f\nmax_ms=%.3f\n"
           "late_sends=%ld\ngen_cpu_s=%.3f\n",
           s.n, s.errors, s.n / el, el, PCT(0.50), PCT(0.90), PCT(0.99),
           PCT(0.999), s.n ? s.lat[s.n - 1] * 1000 : 0, late, tp_load_cpu_s() - cpu0);
    conns_close(cs, list, n);
    free(s.lat);
    return s.errors ? 1 : 0;
}

/* ---- ZeroMQ ingress ---- */

static int run_zmq(const opts_t *o) {
    /* The envelope, packed once by the project's own codec. */
    tp_event_t ev;
    tp_event_init(&ev);
    ev.v = TP_PROTO_VERSION;
    ev.type = TP_EVENT_LEAD_CAPTURED;
    ev.ts = tp_load_wall_ms();
    snprintf(ev.src, sizeof ev.src, "web");
    ev.data = json_pack("{s:s, s:i, s:i, s:i, s:s, s:s, s:i, s:{s:s, s:s}}",
                        "company", "Bench 1", "urgency", 3, "budget", 2,
                        "decision", 3, "owner", "rep-1", "industry",
                        "manufacturing", "size", 500, "contact", "name",
                        "Li Lei", "phone", "13900000000");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (!ev.data || tp_event_pack(&ev, &sb) < 0) {
        fprintf(stderr, "tp-loadgen: cannot pack the envelope\n");
        return 2;
    }
    char *phone = memmem(sb.data, sb.size, "13900000000", 11);
    if (!phone) {
        fprintf(stderr, "tp-loadgen: phone not found in the envelope\n");
        return 2;
    }
    size_t phone_off = (size_t)(phone - sb.data) + 3; /* the 8 digits */

    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(s, o->endpoint) < 0) tp_load_die("zmq_connect");

    long *retry = malloc((size_t)o->window * sizeof *retry);
    long nretry = 0, sent = 0, outstanding = 0, ok = 0, dup = 0, busy = 0, err = 0;
    double t0 = tp_load_now_s(), cpu0 = tp_load_cpu_s();
    char digits[16];
    while (ok + dup + err < o->events) {
        int stop = o->max_s > 0 && tp_load_now_s() - t0 > o->max_s;
        if (stop && outstanding == 0) break;
        while (!stop && outstanding < o->window && (nretry || sent < o->events)) {
            uint64_t idx = nretry ? (uint64_t)retry[--nretry] : (uint64_t)sent++;
            snprintf(digits, sizeof digits, "%08llu",
                     (unsigned long long)((o->base + idx) % 100000000ULL));
            memcpy(sb.data + phone_off, digits, 8);
            if (zmq_send(s, &idx, sizeof idx, ZMQ_SNDMORE) < 0 ||
                zmq_send(s, sb.data, sb.size, 0) < 0)
                tp_load_die("zmq_send");
            outstanding++;
        }
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 1000) < 0 && errno != EINTR) tp_load_die("zmq_poll");
        for (;;) {
            uint64_t idx;
            char status[320];
            int a = zmq_recv(s, &idx, sizeof idx, ZMQ_DONTWAIT);
            if (a < 0) break;
            int more = 0;
            size_t ml = sizeof more;
            zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
            int b = more ? zmq_recv(s, status, sizeof status - 1, 0) : 0;
            if (b < 0) break;
            status[b < (int)sizeof status - 1 ? b : (int)sizeof status - 1] = '\0';
            outstanding--;
            if (strcmp(status, "ok") == 0) ok++;
            else if (strcmp(status, "dup") == 0) dup++;
            else if (strcmp(status, "busy") == 0) {
                busy++;
                retry[nretry++] = (long)idx;
            } else {
                if (!err++) fprintf(stderr, "tp-loadgen: intake answered %s\n", status);
            }
        }
    }
    double el = tp_load_now_s() - t0;
    printf("mode=zmq\nissued=%ld\naccepted=%ld\nduplicates=%ld\nrejected=%ld\n"
           "busy=%ld\nelapsed_s=%.3f\naccept_rate=%.0f\ngen_cpu_s=%.3f\n",
           sent, ok, dup, err, busy, el, ok / el, tp_load_cpu_s() - cpu0);
    zmq_close(s);
    zmq_ctx_term(ctx);
    msgpack_sbuffer_destroy(&sb);
    tp_event_clear(&ev);
    free(retry);
    return err ? 1 : 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: tp-loadgen http-batch|zmq|http-lat [--port P] [--key K] "
            "[--conns C] [--batch B] [--events N] [--max-s S] [--endpoint E] "
            "[--window W] [--rate R] [--seconds S] [--base N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    opts_t o = {.port = 8080, .key = "test-key", .conns = 4, .batch = 1000,
                .events = 100000, .endpoint = "tcp://127.0.0.1:5700",
                .window = 1000, .rate = 500, .seconds = 5};
    if (argc < 2) usage();
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) o.port = atoi(v);
        else if (!strcmp(k, "--key")) o.key = v;
        else if (!strcmp(k, "--conns")) o.conns = atoi(v);
        else if (!strcmp(k, "--batch")) o.batch = atoi(v);
        else if (!strcmp(k, "--events")) o.events = atol(v);
        else if (!strcmp(k, "--max-s")) o.max_s = atof(v);
        else if (!strcmp(k, "--endpoint")) o.endpoint = v;
        else if (!strcmp(k, "--window")) o.window = atoi(v);
        else if (!strcmp(k, "--rate")) o.rate = atof(v);
        else if (!strcmp(k, "--seconds")) o.seconds = atof(v);
        else if (!strcmp(k, "--base")) o.base = strtoull(v, NULL, 10);
        else usage();
    }
    if (o.conns < 1 || o.conns > 256 || o.batch < 1 || o.window < 1) usage();
    if (!strcmp(o.mode, "http-batch")) return run_http_batch(&o);
    if (!strcmp(o.mode, "http-lat")) return run_http_lat(&o);
    if (!strcmp(o.mode, "zmq")) return run_zmq(&o);
    usage();
    return 2;
}
