/* ticketing_sla.c: passed deadlines to sla.breached, once each. */
#include "ticketing_sla.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS one shard's sla:due. ARGV now, limit, the shard's key prefix
 * ("<ns>{s<n>}:": its customers' tickets are under it). Returns per passed
 * deadline: member, deadline, owner, priority, title. */
static const char PASSED_LUA[] =
    "local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                     'WITHSCORES', 'LIMIT', 0, ARGV[2])\n"
    "local out = {}\n"
    "for i = 1, #m, 2 do\n"
    "  local c, t = string.match(m[i], '^([^|]+)|([^|]+)|')\n"
    "  local f = {false, false, false}\n"
    "  if c then\n"
    "    f = redis.call('HMGET', ARGV[3] .. 'c:' .. c .. ':ticket:' .. t,\n"
    "                   'owner', 'priority', 'title')\n"
    "  end\n"
    "  out[#out + 1] = m[i]\n"
    "  out[#out + 1] = m[i + 1]\n"
    "  for j = 1, 3 do out[#out + 1] = f[j] or '' end\n"
    "end\n"
    "return out\n";

/* KEYS the shard's sla:due, ticket, history, the shard's outbox and
 * tickets:breached (one slot: the customer's shard). ARGV member,
 * now, sla.breached envelope, history entry, target, "<cust>|<ticket>".
 * Returns 1 breached here, 0 not (taken elsewhere, or breached before:
 * a target breaches once even when its clock is rescheduled). */
static const char BREACH_LUA[] =
    "if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "if redis.call('HSETNX', KEYS[2], 'breached_' .. ARGV[5], ARGV[2]) == 0 then\n"
    "  return 0\n"
    "end\n"
    "redis.call('RPUSH', KEYS[3], ARGV[4])\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])\n"
    "redis.call('ZADD', KEYS[5], ARGV[2], ARGV[6])\n"
    "return 1\n";

#define CHECK_BATCH "200"

struct tp_sla {
    tp_store_t *store;
    tp_emitter_t *emitter;
    char default_owner[TP_ACTOR_MAX + 1];
    char due_key[TP_SHARDS][128];
    char shard_prefix[TP_SHARDS][32];
    struct due_arg { /* a scan's callback: which shard answered */
        struct tp_sla *sla;
        int shard;
    } due_args[TP_SHARDS];
    int passed_script, breach_script;
    uv_timer_t timer;
    uint64_t breaches;
};

typedef struct breach_ctx {
    tp_sla_t *sla;
    char customer[TP_CUSTOMER_MAX + 1];
    msgpack_sbuffer payload;
} breach_ctx_t;

static void breached_cb(tp_store_t *store, redisReply *r, void *arg) {
    breach_ctx_t *ctx = arg;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        ctx->sla->breaches++;
        tp_emitter_send_of(ctx->sla->emitter, ctx->customer, ctx->payload.data,
                           ctx->payload.size);
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        tp_log_error("sla breach: %s", r->str);
    }
    msgpack_sbuffer_destroy(&ctx->payload);
    free(ctx);
}

static void breach(tp_sla_t *self, int shard, const char *member, int64_t deadline,
                   const char *owner, const char *priority, const char *title) {
    char customer[TP_CUSTOMER_MAX + 1], ticket[80], target[32];
    if (sscanf(member, "%128[^|]|%79[^|]|%31s", customer, ticket, target) != 3) {
        tp_log_error("sla: malformed deadline %s", member);
        return;
    }
    if (tp_key_shard(customer) != shard) { /* its ticket is in another slot */
        tp_log_error("sla: deadline %s outside its customer's shard (dropped)", member);
        tp_store_command(self->store, NULL, NULL, "ZREM %s %s", self->due_key[shard], member);
        return;
    }
    int64_t now = tp_now_ms();
    breach_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->sla = self;
    snprintf(ctx->customer, sizeof ctx->customer, "%s", customer);
    msgpack_sbuffer_init(&ctx->payload);
    json_t *data = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "ticket", ticket,
                             "target", target, "priority",
                             *priority ? priority : "normal", "deadline",
                             (json_int_t)deadline, "owner",
                             *owner ? owner : self->default_owner, "title", title);
    char id[TP_ID_MAX + 1];
    snprintf(id, sizeof id, "%s:breach:%s", ticket, target);
    if (tp_emit_pack(&ctx->payload, TP_EVENT_SLA_BREACHED, id, deadline,
                     TP_SERVICE_TICKETING, customer, data) < 0) {
        breached_cb(self->store, NULL, ctx);
        return;
    }
    json_t *h = json_pack("{s:I, s:s, s:s, s:s}", "at", (json_int_t)now, "by",
                          "ticketing", "what", "sla_breached", "why", target);
    char *hist = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    const char *ns = tp_store_ns(self->store);
    tp_argv_t a;
    tp_argv_init(&a);
    char key[TP_CUSTOMER_MAX + 200];
    tp_argv_add(&a, self->due_key[shard], (size_t)-1);
    tp_key_customer(key, sizeof key, ns, customer, "ticket:%s", ticket);
    tp_argv_addf(&a, "%s", key);
    tp_key_customer(key, sizeof key, ns, customer, "ticket:%s:history", ticket);
    tp_argv_addf(&a, "%s", key);
    tp_argv_add(&a, tp_emitter_outbox_of(self->emitter, customer), (size_t)-1);
    tp_argv_addf(&a, "%stickets:breached", self->shard_prefix[shard]);
    tp_argv_add(&a, member, (size_t)-1);
    tp_argv_add_int(&a, now);
    tp_argv_add(&a, ctx->payload.data, ctx->payload.size);
    tp_argv_add(&a, hist, (size_t)-1);
    tp_argv_add(&a, target, (size_t)-1);
    tp_argv_addf(&a, "%s|%s", customer, ticket);
    int rc = tp_store_eval(self->store, self->breach_script, breached_cb, ctx, 5,
                           (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
    free(hist);
    if (rc < 0) breached_cb(self->store, NULL, ctx);
}

static void passed_cb(tp_store_t *store, redisReply *r, void *arg) {
    struct due_arg *due = arg;
    tp_sla_t *self = due->sla;
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i + 4 < r->elements; i += 5) {
        redisReply **f = &r->element[i];
        int ok = 1;
        for (int j = 0; j < 5; j++) ok &= f[j]->type == REDIS_REPLY_STRING;
        if (ok) breach(self, due->shard, f[0]->str, atoll(f[1]->str), f[2]->str, f[3]->str,
                       f[4]->str);
    }
}

static void timer_cb(uv_timer_t *t) {
    tp_sla_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    for (int shard = 0; shard < TP_SHARDS; shard++) { /* one script per slot */
        tp_argv_t a;
        tp_argv_init(&a);
        tp_argv_add(&a, self->due_key[shard], (size_t)-1);
        tp_argv_add_int(&a, tp_now_ms());
        tp_argv_add(&a, CHECK_BATCH, (size_t)-1);
        tp_argv_add(&a, self->shard_prefix[shard], (size_t)-1);
        tp_store_eval(self->store, self->passed_script, passed_cb, &self->due_args[shard], 1,
                      (int)a.n, a.v, a.len);
        tp_argv_clear(&a);
    }
}

tp_sla_t *tp_sla_new(uv_loop_t *loop, tp_store_t *store, tp_emitter_t *emitter,
                     int64_t check_interval_ms, const char *default_owner) {
    tp_sla_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    snprintf(self->default_owner, sizeof self->default_owner, "%s", default_owner);
    for (int shard = 0; shard < TP_SHARDS; shard++) {
        self->due_args[shard].sla = self;
        self->due_args[shard].shard = shard;
        tp_key_shard_key(self->due_key[shard], sizeof self->due_key[shard],
                         tp_store_ns(store), shard, "sla:due");
        tp_key_shard_key(self->shard_prefix[shard], sizeof self->shard_prefix[shard],
                         tp_store_ns(store), shard, "%s", "");
    }
    self->passed_script = tp_store_script(store, "sla_passed", PASSED_LUA);
    self->breach_script = tp_store_script(store, "sla_breach", BREACH_LUA);
    if (self->passed_script < 0 || self->breach_script < 0) {
        free(self);
        return NULL;
    }
    if (check_interval_ms <= 0) check_interval_ms = 1000;
    uv_timer_init(loop, &self->timer);
    self->timer.data = self;
    uv_timer_start(&self->timer, timer_cb, (uint64_t)check_interval_ms,
                   (uint64_t)check_interval_ms);
    return self;
}

static void close_cb(uv_handle_t *h) { free(h->data); }

uint64_t tp_sla_breaches(const tp_sla_t *self) { return self ? self->breaches : 0; }

void tp_sla_destroy(tp_sla_t **self_p) {
    tp_sla_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    uv_close((uv_handle_t *)&self->timer, close_cb);
}
