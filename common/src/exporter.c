/* exporter.c: /metrics, /healthz and /readyz on the service's own port,
 * and the shared numbers behind them, refreshed on a timer.
 *
 * Owns the HTTP listener (tp/http.h), the refresh timer and the state the
 * probes answer from: Redis connected (asked of the store at scrape), the
 * bus (the watched consumer's PULL peers), the reconcile backlog and its
 * age (GET cursor:<svc>, then one read-only script counting journal
 * entries after it: two keys of different hash slots are never in one
 * script). Must never call Redis from a scrape or a probe, and never keep
 * a reply beyond its callback. */
#include "tp/exporter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/http.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

#define METRICS_BASE_PORT 9700

/* KEYS[1] journal; ARGV[1] cursor, ARGV[2] most entries to count, ARGV[3]
 * the last id the walk could have passed (now - reconcile_lag, ms).
 * Returns {entries after the cursor up to that id (at most ARGV[2]), id of
 * the first or ""}. What is younger is the bus's, not a backlog: counting
 * only the rest keeps the read short (a few entries) while the service
 * keeps up, and Redis is not held reading seconds of traffic each refresh. */
static const char BACKLOG_LUA[] =
    "local r = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], ARGV[3], 'COUNT', ARGV[2])\n"
    "return {#r, r[1] and r[1][1] or ''}\n";

/* A read of tp_exporter_track. */
typedef struct tracked_read {
    tp_exporter_t *exporter;
    tp_series_t *series;
    int argc;
    char **argv;
    int in_flight;
    int64_t last;             /* its last answer */
    struct tracked_read *next;
} tracked_read_t;

struct tp_exporter {
    uv_loop_t *loop;
    tp_store_t *store;
    tp_metrics_t *metrics;
    tp_exporter_options_t opts;
    char host[64];
    tp_http_server_t *http;
    uv_timer_t timer; /* data = self; freed in its close callback */
    tp_consumer_t *consumer;
    tp_exporter_refresh_cb refresh;
    void *refresh_arg;
    char journal_key[128], cursor_key[128];
    int backlog_script;
    int refreshing;             /* a backlog read is in flight */
    int closing;
    /* the last backlog reading */
    int measured;               /* at least one reading */
    uint64_t measured_at;       /* uv_now of the last reading */
    int64_t backlog;
    int64_t backlog_oldest_ms;  /* ms time of the oldest entry, 0: none */
    int64_t journal_length;
    /* series kept for speed */
    tp_series_t *redis_roundtrip, *redis_errors;
    tp_series_t *backlog_series, *backlog_age, *journal_series;
    tracked_read_t *reads;
    tp_store_t *watched[4]; /* the process's other links (readiness), borrowed */
    int nwatched;
};

/* ---- Redis round trips (the store's reply hook) ---- */

static void reply_timed(tp_store_t *store, double seconds, int ok, void *arg) {
    (void)store;
    tp_exporter_t *self = arg;
    tp_series_observe(self->redis_roundtrip, seconds);
    if (!ok) tp_series_inc(self->redis_errors);
}

/* ---- the refresh ---- */

static void backlog_read_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    tp_exporter_t *self = arg;
    self->refreshing = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_warn("metrics: backlog: %s", r->str);
        return;
    }
    self->backlog = r->element[0]->integer;
    self->backlog_oldest_ms = 0;
    if (r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->len > 0)
        self->backlog_oldest_ms = atoll(r->element[1]->str); /* "<ms>-<seq>" */
    self->measured = 1;
    self->measured_at = uv_now(self->loop);
}

static void cursor_read_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_exporter_t *self = arg;
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        self->refreshing = 0;
        return;
    }
    char cursor[64] = "0-0", max[24];
    if (r->type == REDIS_REPLY_STRING && r->len < sizeof cursor &&
        strspn(r->str, "0123456789-") == r->len && strchr(r->str, '-'))
        snprintf(cursor, sizeof cursor, "%s", r->str);
    snprintf(max, sizeof max, "%d", self->opts.backlog_max);
    int64_t lag_ms = 0;
    if (self->consumer) {
        tp_consumer_stats_t st;
        tp_consumer_stats(self->consumer, &st);
        lag_ms = st.reconcile_lag_ms;
    }
    char until[24];
    snprintf(until, sizeof until, "%lld", (long long)(tp_now_ms() - lag_ms));
    const char *argv[4] = {self->journal_key, cursor, max, until};
    if (tp_store_eval(store, self->backlog_script, backlog_read_cb, self, 1, 4, argv,
                      NULL) < 0)
        self->refreshing = 0;
}

static void journal_length_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    tp_exporter_t *self = arg;
    self->refreshing = 0;
    if (!r || r->type != REDIS_REPLY_INTEGER) return;
    self->journal_length = r->integer;
    self->measured = 1;
    self->measured_at = uv_now(self->loop);
}

static void tracked_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    tracked_read_t *read = arg;
    read->in_flight = 0;
    if (!r) return;
    if (r->type == REDIS_REPLY_INTEGER)
        read->last = r->integer;
    else if (r->type == REDIS_REPLY_NIL) /* HGET of a count not kept yet */
        read->last = 0;
    else if (r->type == REDIS_REPLY_STRING)
        read->last = strtoll(r->str, NULL, 10);
    else
        return;
    int64_t sum = 0; /* the series is the sum of its reads' last answers */
    for (tracked_read_t *o = read->exporter->reads; o; o = o->next)
        if (o->series == read->series) sum += o->last;
    tp_series_set(read->series, (double)sum);
}

static void tracked_send(tp_exporter_t *self) {
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)tp_now_ms());
    for (tracked_read_t *read = self->reads; read; read = read->next) {
        if (read->in_flight) continue;
        const char *argv[16];
        for (int i = 0; i < read->argc; i++)
            argv[i] = strcmp(read->argv[i], TP_EXPORTER_NOW) == 0 ? now : read->argv[i];
        if (tp_store_command_argv(self->store, tracked_cb, read, read->argc, argv, NULL) == 0)
            read->in_flight = 1;
    }
}

int tp_exporter_track(tp_exporter_t *self, tp_series_t *series, int argc,
                      const char *const *argv) {
    if (!self || !series || argc < 1 || argc > 16) return -1;
    tracked_read_t *read = calloc(1, sizeof *read);
    if (!read) abort();
    read->exporter = self;
    read->series = series;
    read->argc = argc;
    read->argv = calloc((size_t)argc, sizeof *read->argv);
    if (!read->argv) abort();
    for (int i = 0; i < argc; i++)
        if (!(read->argv[i] = strdup(argv[i]))) abort();
    read->next = self->reads;
    self->reads = read;
    return 0;
}

static void refresh_tick(uv_timer_t *t) {
    tp_exporter_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    if (!self->refreshing) {
        self->refreshing = 1;
        int rc = self->opts.service == TP_SERVICE_INTAKE
                     ? tp_store_command(self->store, journal_length_cb, self, "XLEN %s",
                                        self->journal_key)
                     : tp_store_command(self->store, cursor_read_cb, self, "GET %s",
                                        self->cursor_key);
        if (rc < 0) self->refreshing = 0;
    }
    tracked_send(self);
    if (self->refresh) self->refresh(self, self->refresh_arg);
}

/* ---- what the probes and the scrape read ---- */

static int bus_connected(const tp_exporter_t *self) {
    if (!self->consumer) return 1;
    tp_consumer_stats_t st;
    tp_consumer_stats(self->consumer, &st);
    return st.bus_peers > 0;
}

/* Why the service is not ready, or NULL when it is. */
static const char *not_ready(tp_exporter_t *self, char *why, size_t len) {
    const char *svc = tp_proto_service_name(self->opts.service);
    if (!tp_store_connected(self->store)) return "redis: not connected";
    for (int i = 0; i < self->nwatched; i++)
        if (!tp_store_connected(self->watched[i])) return "redis: a second link not connected";
    if (!bus_connected(self)) return "bus: not connected to intake";
    if (self->opts.service == TP_SERVICE_INTAKE) return NULL;
    if (!self->measured) return "backlog: not measured yet";
    uint64_t stale = (uint64_t)self->opts.refresh_ms * 3 + 1000;
    if (uv_now(self->loop) - self->measured_at > stale) {
        snprintf(why, len, "backlog: not measured for %llu ms",
                 (unsigned long long)(uv_now(self->loop) - self->measured_at));
        return why;
    }
    if (self->opts.ready_backlog >= 0 && self->backlog > self->opts.ready_backlog) {
        snprintf(why, len, "backlog: %lld journal entries not applied, more than %s.ready_backlog %lld",
                 (long long)self->backlog, svc, (long long)self->opts.ready_backlog);
        return why;
    }
    int64_t age = self->backlog_oldest_ms ? tp_now_ms() - self->backlog_oldest_ms : 0;
    if (self->opts.ready_age_ms > 0 && age > self->opts.ready_age_ms) {
        snprintf(why, len, "backlog: oldest entry not applied is %lld ms old, more than "
                           "%s.ready_age %lld ms",
                 (long long)age, svc, (long long)self->opts.ready_age_ms);
        return why;
    }
    return NULL;
}

static void collect_redis_connected(tp_metric_t *m, void *arg) {
    tp_exporter_t *self = arg;
    tp_series_set(tp_metric_at(m), tp_store_connected(self->store) ? 1 : 0);
}

static void collect_bus_connected(tp_metric_t *m, void *arg) {
    tp_series_set(tp_metric_at(m), bus_connected(arg) ? 1 : 0);
}

static void collect_queue_depth(tp_metric_t *m, void *arg) {
    tp_exporter_t *self = arg;
    tp_consumer_stats_t st;
    tp_consumer_stats(self->consumer, &st);
    tp_series_set(tp_metric_at(m), st.inflight);
}

static void collect_backlog(tp_metric_t *m, void *arg) {
    tp_exporter_t *self = arg;
    (void)m;
    tp_series_set(self->backlog_series, (double)self->backlog);
    double age = self->backlog_oldest_ms ? (double)(tp_now_ms() - self->backlog_oldest_ms) / 1000.0
                                         : 0;
    tp_series_set(self->backlog_age, age > 0 ? age : 0);
}

static void collect_ready(tp_metric_t *m, void *arg) {
    char why[256];
    tp_series_set(tp_metric_at(m), not_ready(arg, why, sizeof why) ? 0 : 1);
}

static void collect_journal(tp_metric_t *m, void *arg) {
    tp_exporter_t *self = arg;
    (void)m;
    tp_series_set(self->journal_series, (double)self->journal_length);
}

static void register_metrics(tp_exporter_t *self) {
    tp_metrics_t *m = self->metrics;
    tp_metric_t *f;
    f = tp_metrics_histogram(m, "tp_redis_roundtrip_seconds",
                             "Time from sending a Redis command to its reply.", NULL, NULL, 0);
    self->redis_roundtrip = tp_metric_at(f);
    f = tp_metrics_counter(m, "tp_redis_errors_total",
                           "Redis commands answered with an error or never answered "
                           "(link dropped, timed out).",
                           NULL);
    self->redis_errors = tp_metric_at(f);
    tp_metric_on_collect(tp_metrics_gauge(m, "tp_redis_connected",
                                          "1 while the Redis connection is up.", NULL),
                         collect_redis_connected, self);
    tp_metric_on_collect(tp_metrics_gauge(m, "tp_bus_connected",
                                          "1 while the service has a ZeroMQ connection to "
                                          "intake (intake: its sockets are bound).",
                                          NULL),
                         collect_bus_connected, self);
    tp_metric_on_collect(tp_metrics_gauge(m, "tp_ready", "1 while /readyz answers 200.", NULL),
                         collect_ready, self);
    if (self->opts.service == TP_SERVICE_INTAKE) {
        f = tp_metrics_gauge(m, "tp_journal_length", "Entries in the journal stream.", NULL);
        self->journal_series = tp_metric_at(f);
        tp_metric_on_collect(f, collect_journal, self);
        return;
    }
    f = tp_metrics_gauge(m, "tp_reconcile_backlog",
                         "Journal entries after this service's reconcile cursor "
                         "(counted up to [metrics] backlog_max).",
                         NULL);
    self->backlog_series = tp_metric_at(f);
    tp_metric_on_collect(f, collect_backlog, self);
    f = tp_metrics_gauge(m, "tp_reconcile_backlog_age_seconds",
                         "Age of the oldest journal entry after the cursor (0: none).", NULL);
    self->backlog_age = tp_metric_at(f);
}

/* ---- HTTP ---- */

static void http_handle(tp_http_request_t *req, void *arg) {
    tp_exporter_t *self = arg;
    const char *path = tp_http_path(req), *method = tp_http_method(req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        tp_http_respond(req, 405, "text/plain", "GET only\n", 9, "Allow: GET, HEAD\r\n");
    } else if (strcmp(path, "/metrics") == 0) {
        size_t len = 0;
        char *text = tp_metrics_render(self->metrics, &len);
        tp_http_respond(req, 200, TP_METRICS_CONTENT_TYPE, text, len, NULL);
        free(text);
    } else if (strcmp(path, "/healthz") == 0) {
        tp_http_respond(req, 200, "text/plain", "ok\n", 3, NULL);
    } else if (strcmp(path, "/readyz") == 0) {
        char why[256], line[300];
        const char *reason = not_ready(self, why, sizeof why);
        int n = snprintf(line, sizeof line, "%s\n", reason ? reason : "ready");
        tp_http_respond(req, reason ? 503 : 200, "text/plain", line, (size_t)n, NULL);
    } else {
        tp_http_respond(req, 404, "text/plain", "not found\n", 10, NULL);
    }
}

/* ---- life ---- */

tp_exporter_t *tp_exporter_new(uv_loop_t *loop, tp_store_t *store, tp_metrics_t *metrics,
                               const tp_exporter_options_t *opts) {
    tp_exporter_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->loop = loop;
    self->store = store;
    self->metrics = metrics;
    self->opts = *opts;
    snprintf(self->host, sizeof self->host, "%s", opts->host ? opts->host : "127.0.0.1");
    self->opts.host = self->host;
    if (self->opts.refresh_ms <= 0) self->opts.refresh_ms = 1000;
    if (self->opts.backlog_max <= 0) self->opts.backlog_max = 10000;
    const char *ns = tp_store_ns(store);
    tp_key(self->journal_key, sizeof self->journal_key, ns, "{j}:journal");
    tp_key(self->cursor_key, sizeof self->cursor_key, ns, "cursor:%s",
           tp_proto_service_name(opts->service));
    self->backlog_script = tp_store_script_ro(store, "exporter_backlog", BACKLOG_LUA);
    if (self->backlog_script < 0) {
        free(self);
        return NULL;
    }
    if (self->opts.port >= 0) {
        tp_http_options_t http_opts = {.host = self->host,
                                       .port = self->opts.port,
                                       .max_body = 1024,
                                       .max_header = 8192,
                                       .max_connections = 64};
        self->http = tp_http_server_new(loop, &http_opts, http_handle, self);
        if (!self->http) {
            tp_log_error("metrics: cannot listen on %s:%d ([%s] metrics_listen)", self->host,
                         self->opts.port, tp_proto_service_name(opts->service));
            free(self);
            return NULL;
        }
        tp_log_info("metrics: listening on %s:%d", self->host,
                    tp_http_server_port(self->http));
    }
    register_metrics(self);
    tp_store_on_reply(store, reply_timed, self);
    uv_timer_init(loop, &self->timer);
    self->timer.data = self;
    uv_timer_start(&self->timer, refresh_tick, 0, (uint64_t)self->opts.refresh_ms);
    return self;
}

void tp_exporter_watch_store(tp_exporter_t *self, tp_store_t *store) {
    if (!self || !store) return;
    tp_store_on_reply(store, reply_timed, self);
    if (self->nwatched < (int)(sizeof self->watched / sizeof *self->watched))
        self->watched[self->nwatched++] = store;
}

static void timer_closed(uv_handle_t *h) {
    tp_exporter_t *self = h->data;
    for (tracked_read_t *read = self->reads, *next; read; read = next) {
        next = read->next;
        for (int i = 0; i < read->argc; i++) free(read->argv[i]);
        free(read->argv);
        free(read);
    }
    free(self);
}

void tp_exporter_destroy(tp_exporter_t **self_p) {
    tp_exporter_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    tp_http_server_destroy(&self->http);
    uv_close((uv_handle_t *)&self->timer, timer_closed);
}

tp_metrics_t *tp_exporter_metrics(tp_exporter_t *self) { return self ? self->metrics : NULL; }

tp_store_t *tp_exporter_store(tp_exporter_t *self) { return self->store; }

int tp_exporter_port(const tp_exporter_t *self) {
    return self && self->http ? tp_http_server_port(self->http) : -1;
}

int tp_exporter_address(const tp_exporter_t *self, char *out, size_t outlen) {
    int port = tp_exporter_port(self);
    if (port < 0) {
        if (outlen) out[0] = '\0';
        return -1;
    }
    int n = snprintf(out, outlen, "%s:%d", self->host, port);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

void tp_exporter_watch_consumer(tp_exporter_t *self, tp_consumer_t *consumer) {
    if (!self) return;
    self->consumer = consumer;
    tp_metric_on_collect(tp_metrics_gauge(self->metrics, "tp_bus_queue_depth",
                                          "Events received and not yet applied (being "
                                          "applied, or waiting behind their customer's). "
                                          "ZeroMQ's own queues are not observable.",
                                          NULL),
                         collect_queue_depth, self);
}

void tp_exporter_on_refresh(tp_exporter_t *self, tp_exporter_refresh_cb cb, void *arg) {
    if (!self) return;
    self->refresh = cb;
    self->refresh_arg = arg;
}

int tp_exporter_options_load(tp_config_t *cfg, tp_service_t svc, tp_exporter_options_t *out,
                             char *err, size_t errlen) {
    const char *name = tp_proto_service_name(svc);
    static char hosts[TP_SERVICE_COUNT][64];
    char def[64];
    memset(out, 0, sizeof *out);
    out->service = svc;
    snprintf(def, sizeof def, "127.0.0.1:%d", METRICS_BASE_PORT + (int)svc);
    const char *listen = tp_config_str(cfg, name, "metrics_listen", def);
    out->refresh_ms = tp_config_ms(cfg, "metrics", "refresh", "1s");
    out->backlog_max = (int)tp_config_int(cfg, "metrics", "backlog_max", 10000, 1, 1000000);
    out->ready_backlog = tp_config_int(cfg, name, "ready_backlog", 1000, -1, 1000000000000LL);
    out->ready_age_ms = tp_config_ms(cfg, name, "ready_age", "0");
    if (strcmp(listen, "off") == 0) {
        out->port = -1;
        return 0;
    }
    const char *colon = strrchr(listen, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    size_t host_len = colon ? (size_t)(colon - listen) : 0;
    if (!colon || host_len == 0 || host_len >= sizeof hosts[svc] || end == colon + 1 ||
        *end || port < 0 || port > 65535) {
        snprintf(err, errlen, "%s.metrics_listen: must be host:port (port 0: any free "
                              "port) or off",
                 name);
        return -1;
    }
    memcpy(hosts[svc], listen, host_len);
    hosts[svc][host_len] = '\0';
    out->host = hosts[svc];
    out->port = (int)port;
    return 0;
}
