/* notifier_deliver.c: inbox, webhook attempts, retries, outcomes. */
#include "notifier_deliver.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS done, inbox, delivery, deliveries:due. ARGV ttl, inbox entry, inbox
 * max, delivery id ("" = no webhook), body, claim until, customer,
 * recipient, cause. */
static const char DELIVER_LUA[] =
    TP_LUA_DONE_CHECK
    "redis.call('LPUSH', KEYS[2], ARGV[2])\n"
    "redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)\n"
    "if ARGV[4] ~= '' then\n"
    "  redis.call('HSET', KEYS[3], 'status', 'sending', 'attempts', 0,\n"
    "             'body', ARGV[5], 'customer', ARGV[7], 'recipient', ARGV[8],\n"
    "             'cause', ARGV[9])\n"
    "  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[4])\n"
    "end\n"
    TP_LUA_DONE_MARK
    "return {1}\n";

/* KEYS delivery, deliveries:due, outbox. ARGV id, outcome (sent | failed |
 * retry), attempts, last error, next attempt ms, now, derived event ("" for
 * retry). Returns 1, or 0 when the delivery was already settled. */
static const char RESULT_LUA[] =
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if st ~= 'sending' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'attempts', ARGV[3], 'last_error', ARGV[4])\n"
    "if ARGV[2] == 'retry' then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'status', ARGV[2], 'settled_at', ARGV[6])\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])\n"
    "return 1\n";

/* KEYS deliveries:due. ARGV now, claim until, limit, delivery key prefix.
 * Claims due deliveries; returns id, attempts, body, customer, recipient,
 * cause per delivery. */
static const char CLAIM_LUA[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                       'LIMIT', 0, ARGV[3])\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  redis.call('ZADD', KEYS[1], ARGV[2], id)\n"
    "  local f = redis.call('HMGET', ARGV[4] .. id, 'attempts', 'body',\n"
    "                       'customer', 'recipient', 'cause', 'status')\n"
    "  if f[6] == 'sending' then\n"
    "    out[#out + 1] = id\n"
    "    for i = 1, 5 do out[#out + 1] = f[i] or '' end\n"
    "  else redis.call('ZREM', KEYS[1], id) end\n"
    "end\n"
    "return out\n";

#define CLAIM_BATCH "200"

struct tp_deliver {
    tp_store_t *store;
    tp_emitter_t *emitter;
    tp_webhook_t *webhook;
    tp_deliver_options_t opts;
    char webhook_url[1024];
    char due_key[128];
    int deliver_script, result_script, claim_script;
    uv_timer_t retry_timer;
    int closing;
};

/* One webhook attempt. */
typedef struct attempt {
    tp_deliver_t *deliver;
    char id[400];
    char customer[TP_CUSTOMER_MAX + 1];
    char recipient[TP_ACTOR_MAX + 1];
    char cause[TP_ID_MAX + 1];
    int attempts; /* made before this one */
} attempt_t;

void tp_deliver_options_load(tp_deliver_options_t *o, tp_config_t *cfg) {
    o->webhook_url = tp_config_str(cfg, "notifier", "webhook_url", "");
    o->max_attempts = (int)tp_config_int(cfg, "notifier", "max_attempts", 8, 1, 1000);
    o->backoff_ms = tp_config_ms(cfg, "notifier", "backoff", "1s");
    o->backoff_max_ms = tp_config_ms(cfg, "notifier", "backoff_max", "5m");
    o->claim_ms = tp_config_ms(cfg, "notifier", "claim", "60s");
    o->retry_poll_ms = tp_config_ms(cfg, "notifier", "retry_poll", "1s");
    o->inbox_max = (int)tp_config_int(cfg, "notifier", "inbox_max", 200, 1, 100000);
}

int tp_deliver_tag(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    (void)arg;
    const char *owner = tp_event_str(ev, "owner");
    if (!owner || !*owner) return -1;
    snprintf(tag, len, "u:%s", owner);
    return 0;
}

static int64_t backoff(const tp_deliver_t *self, int attempts) {
    int64_t wait = self->opts.backoff_ms;
    for (int i = 1; i < attempts && wait < self->opts.backoff_max_ms; i++) wait *= 2;
    if (wait > self->opts.backoff_max_ms) wait = self->opts.backoff_max_ms;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = 0;
    return wait * 4 / 5 + (int64_t)(r % (uint32_t)(wait * 2 / 5 + 1)); /* +-20% */
}

/* An outcome being recorded, with the event it derives. */
typedef struct settle_ctx {
    tp_deliver_t *deliver;
    msgpack_sbuffer derived;
} settle_ctx_t;

static void settle_free(settle_ctx_t *sc) {
    msgpack_sbuffer_destroy(&sc->derived);
    free(sc);
}

static void result_cb(tp_store_t *store, redisReply *r, void *arg) {
    settle_ctx_t *sc = arg;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 &&
        sc->derived.size && !sc->deliver->closing)
        tp_emitter_send(sc->deliver->emitter, sc->derived.data, sc->derived.size);
    settle_free(sc);
}

/* Records the outcome of attempt `a`: sent, failed, or retry later. */
static void settle(attempt_t *a, const char *outcome, const char *error) {
    tp_deliver_t *self = a->deliver;
    int64_t now = tp_now_ms();
    int attempts = a->attempts + 1;
    settle_ctx_t *sc = calloc(1, sizeof *sc);
    if (!sc) abort();
    sc->deliver = self;
    msgpack_sbuffer_init(&sc->derived);
    if (strcmp(outcome, "retry") != 0) {
        int sent = strcmp(outcome, "sent") == 0;
        json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:i}", "delivery", a->id,
                                 "channel", "webhook", "recipient", a->recipient,
                                 "cause", a->cause, "attempts", attempts);
        if (!sent) json_object_set_new(data, "error", json_string(error ? error : ""));
        char id[TP_ID_MAX + 1];
        snprintf(id, sizeof id, "%.110s:%s", a->id, outcome);
        tp_emit_pack(&sc->derived,
                     sent ? TP_EVENT_NOTIFICATION_SENT : TP_EVENT_NOTIFICATION_FAILED,
                     id, now, TP_SERVICE_NOTIFIER, a->customer, data);
        tp_log_info("delivery %s %s after %d attempt(s)%s%s", a->id, outcome,
                    attempts, error ? ": " : "", error ? error : "");
    }
    tp_argv_t v;
    tp_argv_init(&v);
    tp_argv_addf(&v, "%sdelivery:%s", tp_store_ns(self->store), a->id);
    tp_argv_add(&v, self->due_key, (size_t)-1);
    tp_argv_add(&v, tp_emitter_outbox(self->emitter), (size_t)-1);
    tp_argv_add(&v, a->id, (size_t)-1);
    tp_argv_add(&v, outcome, (size_t)-1);
    tp_argv_add_int(&v, attempts);
    tp_argv_add(&v, error ? error : "", (size_t)-1);
    tp_argv_add_int(&v, now + backoff(self, attempts));
    tp_argv_add_int(&v, now);
    tp_argv_add(&v, sc->derived.size ? sc->derived.data : "", sc->derived.size);
    int rc = tp_store_eval(self->store, self->result_script, result_cb, sc, 3,
                           (int)v.n, v.v, v.len);
    tp_argv_clear(&v);
    if (rc < 0) settle_free(sc); /* the claim expires; another attempt follows */
}

static void posted_cb(long status, const char *error, void *arg) {
    attempt_t *a = arg;
    tp_deliver_t *self = a->deliver;
    if (self->closing) { /* shutting down: the claim expires, retried later */
        free(a);
        return;
    }
    char why[160];
    if (status >= 200 && status < 300) {
        settle(a, "sent", NULL);
    } else {
        if (error)
            snprintf(why, sizeof why, "%s", error);
        else
            snprintf(why, sizeof why, "HTTP %ld", status);
        int permanent = status >= 400 && status < 500 && status != 408 && status != 429;
        tp_log_warn("delivery %s attempt %d failed: %s", a->id, a->attempts + 1, why);
        settle(a, permanent || a->attempts + 1 >= self->opts.max_attempts ? "failed"
                                                                          : "retry",
               why);
    }
    free(a);
}

static void attempt_start(tp_deliver_t *self, attempt_t *a, const char *body,
                          size_t len) {
    char key_header[460];
    snprintf(key_header, sizeof key_header, "Idempotency-Key: %s", a->id);
    const char *headers[] = {key_header, NULL};
    if (tp_webhook_post(self->webhook, self->webhook_url, body, len, headers,
                        posted_cb, a) < 0) {
        tp_log_warn("delivery %s: not started (%s); retried after its claim",
                    a->id, tp_webhook_errstr(self->webhook));
        free(a);
    }
}

/* ---- applying reminder.due / sla.breached ---- */

typedef struct deliver_ctx {
    tp_deliver_t *deliver;
    tp_consumer_job_t *job;
    attempt_t *attempt; /* NULL without webhook */
    char *body;
} deliver_ctx_t;

static void delivered_cb(tp_store_t *store, redisReply *r, void *arg) {
    deliver_ctx_t *ctx = arg;
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1;
    if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("deliver: %s", r->str);
    int fresh = ok && r->element[0]->integer == 1;
    tp_consumer_job_done(ctx->job, ok ? 0 : -1);
    if (fresh && ctx->attempt && !ctx->deliver->closing)
        attempt_start(ctx->deliver, ctx->attempt, ctx->body, strlen(ctx->body));
    else
        free(ctx->attempt);
    free(ctx->body);
    free(ctx);
}

void tp_deliver_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                      const tp_event_t *ev, void *arg) {
    tp_deliver_t *self = arg;
    const char *owner = tp_event_str(ev, "owner");
    const char *kind = tp_proto_type_name(ev->type);
    const char *ns = tp_store_ns(self->store);

    json_t *item = json_pack("{s:s, s:s, s:s, s:I}", "event", ev->id, "kind", kind,
                             "customer", ev->customer, "at", (json_int_t)ev->ts);
    static const char *const copied[] = {"rule", "reminder", "text", "ticket",
                                         "target", "title", "due_at", "deadline",
                                         "late_ms", "urgent", "priority"};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++) {
        json_t *v = json_object_get(ev->data, copied[i]);
        if (v) json_object_set(item, copied[i], v);
    }
    char *item_text = json_dumps(item, JSON_COMPACT);

    deliver_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->deliver = self;
    ctx->job = job;
    char delivery[400] = "";
    if (self->webhook_url[0]) {
        ctx->attempt = calloc(1, sizeof *ctx->attempt);
        if (!ctx->attempt) abort();
        attempt_t *a = ctx->attempt;
        a->deliver = self;
        snprintf(a->id, sizeof a->id, "%s/webhook/%s", ev->id, owner);
        snprintf(a->customer, sizeof a->customer, "%s", ev->customer);
        snprintf(a->recipient, sizeof a->recipient, "%s", owner);
        snprintf(a->cause, sizeof a->cause, "%s", ev->id);
        snprintf(delivery, sizeof delivery, "%s", a->id);
        json_t *body = json_object();
        json_object_set_new(body, "delivery", json_string(a->id));
        json_object_set_new(body, "recipient", json_string(owner));
        json_object_set_new(body, "kind", json_string(kind));
        json_object_set(body, "notification", item);
        json_object_set_new(body, "event", tp_event_to_json(ev));
        ctx->body = json_dumps(body, JSON_COMPACT);
        json_decref(body);
    }
    json_decref(item);

    tp_argv_t v;
    tp_argv_init(&v);
    tp_argv_add(&v, tp_consumer_job_done_key(job), (size_t)-1);
    tp_argv_addf(&v, "%s{u:%s}:inbox", ns, owner);
    tp_argv_addf(&v, "%sdelivery:%s", ns, delivery);
    tp_argv_add(&v, self->due_key, (size_t)-1);
    tp_argv_add(&v, tp_consumer_done_ttl(consumer), (size_t)-1);
    tp_argv_add(&v, item_text, (size_t)-1);
    tp_argv_add_int(&v, self->opts.inbox_max);
    tp_argv_add(&v, delivery, (size_t)-1);
    tp_argv_add(&v, ctx->body ? ctx->body : "", (size_t)-1);
    tp_argv_add_int(&v, tp_now_ms() + self->opts.claim_ms);
    tp_argv_add(&v, ev->customer, (size_t)-1);
    tp_argv_add(&v, owner, (size_t)-1);
    tp_argv_add(&v, ev->id, (size_t)-1);
    int rc = tp_store_eval(self->store, self->deliver_script, delivered_cb, ctx, 4,
                           (int)v.n, v.v, v.len);
    tp_argv_clear(&v);
    free(item_text);
    if (rc < 0) delivered_cb(self->store, NULL, ctx);
}

/* ---- retries ---- */

static void claimed_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_deliver_t *self = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || self->closing) return;
    for (size_t i = 0; i + 5 < r->elements; i += 6) {
        redisReply **f = &r->element[i];
        if (f[0]->type != REDIS_REPLY_STRING || f[2]->type != REDIS_REPLY_STRING)
            continue;
        attempt_t *a = calloc(1, sizeof *a);
        if (!a) abort();
        a->deliver = self;
        snprintf(a->id, sizeof a->id, "%s", f[0]->str);
        a->attempts = f[1]->type == REDIS_REPLY_STRING ? atoi(f[1]->str) : 0;
        snprintf(a->customer, sizeof a->customer, "%s",
                 f[3]->type == REDIS_REPLY_STRING ? f[3]->str : "");
        snprintf(a->recipient, sizeof a->recipient, "%s",
                 f[4]->type == REDIS_REPLY_STRING ? f[4]->str : "");
        snprintf(a->cause, sizeof a->cause, "%s",
                 f[5]->type == REDIS_REPLY_STRING ? f[5]->str : "");
        attempt_start(self, a, f[2]->str, f[2]->len);
    }
}

static void retry_timer_cb(uv_timer_t *t) {
    tp_deliver_t *self = t->data;
    if (self->closing || !tp_store_connected(self->store) || !self->webhook_url[0])
        return;
    int64_t now = tp_now_ms();
    tp_argv_t v;
    tp_argv_init(&v);
    tp_argv_add(&v, self->due_key, (size_t)-1);
    tp_argv_add_int(&v, now);
    tp_argv_add_int(&v, now + self->opts.claim_ms);
    tp_argv_add(&v, CLAIM_BATCH, (size_t)-1);
    tp_argv_addf(&v, "%sdelivery:", tp_store_ns(self->store));
    tp_store_eval(self->store, self->claim_script, claimed_cb, self, 1, (int)v.n,
                  v.v, v.len);
    tp_argv_clear(&v);
}

tp_deliver_t *tp_deliver_new(uv_loop_t *loop, tp_store_t *store,
                             tp_emitter_t *emitter, tp_webhook_t *webhook,
                             const tp_deliver_options_t *opts) {
    tp_deliver_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    self->webhook = webhook;
    self->opts = *opts;
    snprintf(self->webhook_url, sizeof self->webhook_url, "%s",
             opts->webhook_url ? opts->webhook_url : "");
    self->opts.webhook_url = self->webhook_url;
    tp_key(self->due_key, sizeof self->due_key, tp_store_ns(store), "deliveries:due");
    self->deliver_script = tp_store_script(store, "notifier_deliver", DELIVER_LUA);
    self->result_script = tp_store_script(store, "notifier_result", RESULT_LUA);
    self->claim_script = tp_store_script(store, "notifier_claim", CLAIM_LUA);
    if (self->deliver_script < 0 || self->result_script < 0 || self->claim_script < 0) {
        free(self);
        return NULL;
    }
    uv_timer_init(loop, &self->retry_timer);
    self->retry_timer.data = self;
    uv_timer_start(&self->retry_timer, retry_timer_cb,
                   (uint64_t)self->opts.retry_poll_ms,
                   (uint64_t)self->opts.retry_poll_ms);
    return self;
}

void tp_deliver_shutdown(tp_deliver_t *self) {
    if (self) self->closing = 1;
}

static void retry_close_cb(uv_handle_t *h) { free(h->data); }

void tp_deliver_destroy(tp_deliver_t **self_p) {
    tp_deliver_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    self->closing = 1;
    uv_close((uv_handle_t *)&self->retry_timer, retry_close_cb);
}
