/* heartbeat.c: the instance's beat in <ns>heartbeat:<service>, over a
 * Redis connection of its own, and its removal on a clean stop.
 *
 * Owns a tp_store_t, a timer and the beat's strings. The struct lives
 * until the timer is closed and the last HDEL was answered (or failed);
 * the beats themselves carry no pointer to it, so a reply that arrives
 * late touches nothing freed. Must never write any key but its own field. */
#include "tp/heartbeat.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

struct tp_heartbeat {
    tp_store_t *store;
    uv_timer_t timer;
    char key[256];
    char *instance, *service, *metrics;
    char host[128];
    int64_t started_at, interval_ms;
    tp_heartbeat_applied_cb applied_cb;
    void *applied_arg;
    int closing;     /* destroy ran */
    int timer_open;  /* until its close callback */
    int hdel_owed;   /* the last HDEL not answered yet */
};

char *tp_heartbeat_json(const tp_heartbeat_beat_t *b) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:s}",
                          "instance", b->instance, "service", b->service, "host",
                          b->host ? b->host : "", "pid", (json_int_t)b->pid, "version",
                          b->version ? b->version : "", "started_at",
                          (json_int_t)b->started_at, "seen_at", (json_int_t)b->seen_at,
                          "interval_ms", (json_int_t)b->interval_ms, "applied",
                          (json_int_t)b->applied, "metrics", b->metrics ? b->metrics : "");
    if (!o) abort(); /* only NULL strings or memory make json_pack fail */
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) abort();
    return text;
}

int tp_heartbeat_parse(const char *text, size_t len, tp_heartbeat_beat_t *out, void **doc) {
    memset(out, 0, sizeof *out);
    *doc = NULL;
    json_t *o = json_loadb(text, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    json_int_t pid = 0, started = 0, seen = 0, interval = 0, applied = 0;
    const char *metrics = "", *version = "", *host = "";
    if (json_unpack(o, "{s:s, s:s, s?s, s?I, s?s, s?I, s:I, s?I, s?I, s?s}", "instance",
                    &out->instance, "service", &out->service, "host", &host, "pid", &pid,
                    "version", &version, "started_at", &started, "seen_at", &seen,
                    "interval_ms", &interval, "applied", &applied, "metrics",
                    &metrics) < 0) {
        json_decref(o);
        return -1;
    }
    out->host = host, out->version = version, out->metrics = metrics;
    out->pid = (long)pid;
    out->started_at = started, out->seen_at = seen;
    out->interval_ms = interval > 0 ? interval : 2000;
    out->applied = applied > 0 ? (uint64_t)applied : 0;
    *doc = o;
    return 0;
}

static void maybe_free(tp_heartbeat_t *self) {
    if (!self->closing || self->timer_open || self->hdel_owed) return;
    free(self->instance);
    free(self->service);
    free(self->metrics);
    free(self);
}

static void beat_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store, (void)arg;
    if (r && r->type == REDIS_REPLY_ERROR) tp_log_warn("heartbeat: %s", r->str);
}

static void beat(tp_heartbeat_t *self) {
    if (self->closing || !tp_store_connected(self->store)) return;
    tp_heartbeat_beat_t b = {
        .instance = self->instance, .service = self->service, .host = self->host,
        .version = TP_VERSION, .metrics = self->metrics, .pid = (long)getpid(),
        .started_at = self->started_at, .seen_at = tp_now_ms(),
        .interval_ms = self->interval_ms,
        .applied = self->applied_cb ? self->applied_cb(self->applied_arg) : 0,
    };
    char *text = tp_heartbeat_json(&b);
    tp_store_command(self->store, beat_cb, NULL, "HSET %s %s %s", self->key, self->instance,
                     text);
    free(text);
}

static void timer_cb(uv_timer_t *t) { beat(t->data); }

static void state_cb(tp_store_t *store, int connected, void *arg) {
    (void)store;
    if (connected) beat(arg); /* at once: tpctl sees a new instance now */
}

tp_heartbeat_t *tp_heartbeat_new(uv_loop_t *loop, const tp_store_options_t *store_opts,
                                  const tp_heartbeat_options_t *opts) {
    tp_heartbeat_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->interval_ms = opts->interval_ms > 0 ? opts->interval_ms : 2000;
    self->started_at = tp_now_ms();
    self->instance = strdup(opts->instance);
    self->service = strdup(opts->service);
    self->metrics = strdup("");
    if (!self->instance || !self->service || !self->metrics) abort();
    if (gethostname(self->host, sizeof self->host - 1) != 0)
        snprintf(self->host, sizeof self->host, "localhost");
    if (tp_key(self->key, sizeof self->key, store_opts->ns ? store_opts->ns : "tp:",
               "heartbeat:%s", opts->service) < 0) {
        tp_log_error("heartbeat: service name too long");
        goto fail_key;
    }
    tp_store_options_t link = *store_opts;
    link.name = "heartbeat"; /* its log lines apart from the service's own link */
    self->store = tp_store_new(loop, &link);
    if (!self->store) goto fail_key;
    tp_store_on_state(self->store, state_cb, self);
    uv_timer_init(loop, &self->timer);
    self->timer.data = self;
    self->timer_open = 1;
    uv_timer_start(&self->timer, timer_cb, (uint64_t)self->interval_ms,
                   (uint64_t)self->interval_ms);
    return self;

fail_key:
    free(self->instance);
    free(self->service);
    free(self->metrics);
    free(self);
    return NULL;
}

void tp_heartbeat_set_metrics(tp_heartbeat_t *self, const char *addr) {
    if (!self) return;
    free(self->metrics);
    self->metrics = strdup(addr ? addr : "");
    if (!self->metrics) abort();
}

void tp_heartbeat_set_applied(tp_heartbeat_t *self, tp_heartbeat_applied_cb cb, void *arg) {
    if (!self) return;
    self->applied_cb = cb;
    self->applied_arg = arg;
}

static void timer_closed(uv_handle_t *h) {
    tp_heartbeat_t *self = h->data;
    self->timer_open = 0;
    maybe_free(self);
}

static void removed_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_heartbeat_t *self = arg;
    (void)r; /* NULL: Redis went away; the beat goes stale, tpctl shows it */
    self->hdel_owed = 0;
    tp_store_destroy(&self->store); /* safe from its own reply callback */
    maybe_free(self);
}

void tp_heartbeat_destroy(tp_heartbeat_t **self_p) {
    tp_heartbeat_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    self->closing = 1;
    tp_store_on_state(self->store, NULL, NULL);
    uv_timer_stop(&self->timer);
    uv_close((uv_handle_t *)&self->timer, timer_closed);
    if (tp_store_connected(self->store) &&
        tp_store_command(self->store, removed_cb, self, "HDEL %s %s", self->key,
                         self->instance) == 0)
        self->hdel_owed = 1;
    else
        tp_store_destroy(&self->store);
}
