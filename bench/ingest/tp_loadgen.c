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

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double cpu_self_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    fprintf(stderr, "tp-loadgen: %s: %s\n", what, strerror(errno));
    exit(2);
}

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
    int fd;
    char *out;
    size_t out_len, out_off, out_cap;
    char *in;
    size_t in_len, in_cap;
    int busy;
    long nevents;
    double started; /* scheduled start (latency mode) */
} conn_t;

static int http_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void ensure(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    *buf = realloc(*buf, c);
    if (!*buf) die("realloc");
    *cap = c;
}

/* Fills c->out with one POST /v1/events carrying `n` events from `first`. */
static void build_request(conn_t *c, const opts_t *o, unsigned long long first,
                          long n, int batch_form) {
    size_t hdr_room = 512;
    ensure(&c->out, &c->out_cap, hdr_room + (size_t)n * 400 + 64);
    char *body = c->out + hdr_room;
    size_t len = 0;
    long long ts = wall_ms();
    if (batch_form) len += (size_t)sprintf(body, "{\"events\":[");
    for (long i = 0; i < n; i++) {
        if (i) body[len++] = ',';
        len += (size_t)lead_json(body + len, c->out_cap - hdr_room - len,
                                 first + (unsigned long long)i, ts);
    }
    if (batch_form) len += (size_t)sprintf(body + len, "]}");
    char hdr[512];
    int h = snprintf(hdr, sizeof hdr,
                     "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     o->key, len);
    memmove(c->out + h, body, len);
    memcpy(c->out, hdr, (size_t)h);
    c->out_len = (size_t)h + len;
    c->out_off = 0;
    c->in_len = 0;
    c->nevents = n;
    c->busy = 1;
}

/* Returns the HTTP status once a whole response is in c->in, else 0;
 * *body / *body_len point at its body. -1 on a malformed response. */
static int parse_response(conn_t *c, const char **body, size_t *body_len) {
    if (c->in_len < 12) return 0;
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t hlen = (size_t)(end - c->in) + 4;
    int status = atoi(c->in + 9);
    size_t clen = 0;
    for (char *p = c->in; p < end; p++) {
        if ((p == c->in || p[-1] == '\n') &&
            strncasecmp(p, "Content-Length:", 15) == 0) {
            clen = (size_t)strtoul(p + 15, NULL, 10);
            break;
        }
    }
    if (c->in_len < hlen + clen) return 0;
    *body = c->in + hlen;
    *body_len = clen;
    return status > 0 ? status : -1;
}

/* Drives I/O on every busy connection once (poll up to timeout_ms).
 * Calls done(c, status, body, len) for each finished response. */
typedef void (*done_fn)(conn_t *c, int status, const char *body, size_t len,
                        void *arg);

static void http_pump(conn_t *cs, int n, double timeout_s, done_fn done, void *arg) {
    struct pollfd pfd[256];
    for (int i = 0; i < n; i++) {
        pfd[i].fd = cs[i].busy ? cs[i].fd : -1;
        pfd[i].events = cs[i].out_off < cs[i].out_len ? POLLOUT : POLLIN;
        pfd[i].revents = 0;
    }
    struct timespec ts = {.tv_sec = (time_t)timeout_s,
                          .tv_nsec = (long)((timeout_s - (double)(time_t)timeout_s) * 1e9)};
    int r = ppoll(pfd, (nfds_t)n, &ts, NULL);
    if (r < 0 && errno != EINTR) die("poll");
    for (int i = 0; i < n && r > 0; i++) {
        conn_t *c = &cs[i];
        if (!pfd[i].revents) continue;
        if (c->out_off < c->out_len) {
            ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
            if (w < 0 && errno != EAGAIN) die("write");
            if (w > 0) c->out_off += (size_t)w;
            continue;
        }
        for (;;) {
            ensure(&c->in, &c->in_cap, c->in_len + 65536);
            ssize_t got = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
            if (got < 0 && errno == EAGAIN) break;
            if (got <= 0) {
                fprintf(stderr, "tp-loadgen: intake closed a connection\n");
                exit(2);
            }
            c->in_len += (size_t)got;
        }
        const char *body;
        size_t blen;
        int status = parse_response(c, &body, &blen);
        if (status != 0) {
            c->busy = 0;
            done(c, status, body, blen, arg);
        }
    }
}

typedef struct batch_stats {
    long accepted, duplicates, rejected_events, busy_events, requests;
    int reported;
} batch_stats_t;

static void batch_done(conn_t *c, int status, const char *body, size_t len,
                       void *arg) {
    batch_stats_t *s = arg;
    s->requests++;
    if (status == 202) {
        long dups = 0;
        const char *d = memmem(body, len, "\"duplicates\":[", 14);
        if (d)
            for (d += 14; d < body + len && *d != ']'; d++) dups += *d == '"';
        dups /= 2;
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
    conn_t *cs = calloc((size_t)n, sizeof *cs);
    for (int i = 0; i < n; i++) cs[i].fd = http_connect(o->port);
    batch_stats_t s = {0};
    unsigned long long next = o->base;
    long issued = 0;
    double t0 = now_s(), cpu0 = cpu_self_s();
    for (;;) {
        int busy = 0;
        int stop = o->max_s > 0 && now_s() - t0 > o->max_s;
        for (int i = 0; i < n; i++) {
            if (!cs[i].busy && issued < o->events && !stop) {
                long k = o->events - issued < o->batch ? o->events - issued : o->batch;
                build_request(&cs[i], o, next, k, 1);
                next += (unsigned long long)k;
                issued += k;
            }
            busy += cs[i].busy;
        }
        if (!busy) break;
        http_pump(cs, n, 1.0, batch_done, &s);
    }
    double el = now_s() - t0;
    printf("mode=http-batch\nissued=%ld\naccepted=%ld\nduplicates=%ld\n"
           "rejected=%ld\nbusy=%ld\nrequests=%ld\nelapsed_s=%.3f\n"
           "accept_rate=%.0f\ngen_cpu_s=%.3f\n",
           issued, s.accepted, s.duplicates, s.rejected_events, s.busy_events,
           s.requests, el, s.accepted / el, cpu_self_s() - cpu0);
    return s.rejected_events ? 1 : 0;
}

/* ---- HTTP latency at a fixed rate (open loop: measured from the time a
 * request was due, so a stalled server cannot hide its queueing) ---- */

typedef struct lat_stats {
    double *lat;
    long n, cap, errors;
} lat_stats_t;

static void lat_done(conn_t *c, int status, const char *body, size_t len,
                     void *arg) {
    lat_stats_t *s = arg;
    (void)body, (void)len;
    if (status != 202) {
        s->errors++;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->lat = realloc(s->lat, (size_t)s->cap * sizeof *s->lat);
    }
    s->lat[s->n++] = now_s() - c->started;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_http_lat(const opts_t *o) {
    int n = o->conns;
    conn_t *cs = calloc((size_t)n, sizeof *cs);
    for (int i = 0; i < n; i++) cs[i].fd = http_connect(o->port);
    lat_stats_t s = {0};
    long total = (long)(o->rate * o->seconds), issued = 0, late = 0;
    double t0 = now_s() + 0.01, cpu0 = cpu_self_s();
    for (;;) {
        double t = now_s();
        int busy = 0;
        while (issued < total && t0 + (double)issued / o->rate <= t) {
            int free_i = -1;
            for (int i = 0; i < n; i++)
                if (!cs[i].busy) { free_i = i; break; }
            if (free_i < 0) break; /* all connections busy: it waits, counted */
            double due = t0 + (double)issued / o->rate;
            if (t - due > 0.001) late++;
            build_request(&cs[free_i], o, o->base + (unsigned long long)issued, 1, 0);
            cs[free_i].started = due;
            issued++;
        }
        for (int i = 0; i < n; i++) busy += cs[i].busy;
        if (!busy && issued >= total) break;
        /* sleep until the next request is due or an answer comes */
        double dt = issued < total ? t0 + (double)issued / o->rate - now_s() : 1.0;
        if (dt <= 0 && busy == n) dt = 1.0; /* due, but every connection busy */
        http_pump(cs, n, dt > 0 ? dt : 0, lat_done, &s);
    }
    double el = now_s() - t0;
    qsort(s.lat, (size_t)s.n, sizeof *s.lat, cmp_double);
#define PCT(p) (s.n ? s.lat[(long)((p) * (double)(s.n - 1))] * 1000 : 0)
    printf("mode=http-lat\nrequests=%ld\nerrors=%ld\nrate=%.0f\nelapsed_s=%.3f\n"
           "p50_ms=%.3f\np90_ms=%.3f\np99_ms=%.3f\np999_ms=%.3f\nmax_ms=%.3f\n"
           "late_sends=%ld\ngen_cpu_s=%.3f\n",
           s.n, s.errors, s.n / el, el, PCT(0.50), PCT(0.90), PCT(0.99),
           PCT(0.999), s.n ? s.lat[s.n - 1] * 1000 : 0, late, cpu_self_s() - cpu0);
    return s.errors ? 1 : 0;
}

/* ---- ZeroMQ ingress ---- */

static int run_zmq(const opts_t *o) {
    /* The envelope, packed once by the project's own codec. */
    tp_event_t ev;
    tp_event_init(&ev);
    ev.v = TP_PROTO_VERSION;
    ev.type = TP_EVENT_LEAD_CAPTURED;
    ev.ts = wall_ms();
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
    if (zmq_connect(s, o->endpoint) < 0) die("zmq_connect");

    long *retry = malloc((size_t)o->window * sizeof *retry);
    long nretry = 0, sent = 0, outstanding = 0, ok = 0, dup = 0, busy = 0, err = 0;
    double t0 = now_s(), cpu0 = cpu_self_s();
    char digits[16];
    while (ok + dup + err < o->events) {
        int stop = o->max_s > 0 && now_s() - t0 > o->max_s;
        if (stop && outstanding == 0) break;
        while (!stop && outstanding < o->window && (nretry || sent < o->events)) {
            uint64_t idx = nretry ? (uint64_t)retry[--nretry] : (uint64_t)sent++;
            snprintf(digits, sizeof digits, "%08llu",
                     (unsigned long long)((o->base + idx) % 100000000ULL));
            memcpy(sb.data + phone_off, digits, 8);
            if (zmq_send(s, &idx, sizeof idx, ZMQ_SNDMORE) < 0 ||
                zmq_send(s, sb.data, sb.size, 0) < 0)
                die("zmq_send");
            outstanding++;
        }
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 1000) < 0 && errno != EINTR) die("zmq_poll");
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
    double el = now_s() - t0;
    printf("mode=zmq\nissued=%ld\naccepted=%ld\nduplicates=%ld\nrejected=%ld\n"
           "busy=%ld\nelapsed_s=%.3f\naccept_rate=%.0f\ngen_cpu_s=%.3f\n",
           sent, ok, dup, err, busy, el, ok / el, cpu_self_s() - cpu0);
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
