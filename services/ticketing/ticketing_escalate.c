/* ticketing_escalate.c: escalation steps that fell due, to
 * ticket.escalated, once each. */
#include "ticketing_escalate.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS one shard's sla:escalate. ARGV now, limit, the shard's key prefix
 * ("<ns>{s<n>}:"). Returns per step due:
 * member, when, owner, department, priority, title, then the deadlines of
 * first response and resolution. */
static const char DUE_LUA[] =
    "local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                     'WITHSCORES', 'LIMIT', 0, ARGV[2])\n"
    "local out = {}\n"
    "for i = 1, #m, 2 do\n"
    "  local c, t = string.match(m[i], '^([^|]+)|([^|]+)|')\n"
    "  local f = {false, false, false, false, false, false}\n"
    "  if c then\n"
    "    f = redis.call('HMGET', ARGV[3] .. 'c:' .. c .. ':ticket:' .. t, 'owner',\n"
    "                   'department', 'priority', 'title', 'first_response_due',\n"
    "                   'resolution_due')\n"
    "  end\n"
    "  out[#out + 1] = m[i]\n"
    "  out[#out + 1] = m[i + 1]\n"
    "  for j = 1, 6 do out[#out + 1] = f[j] or '' end\n"
    "end\n"
    "return out\n";

/* KEYS the shard's sla:escalate, ticket, history, the shard's outbox (one
 * slot: the customer's shard). ARGV member, now,
 * ticket.escalated envelope, history entry, the ticket's mark of the step.
 * Returns 1 escalated here, 0 not (taken elsewhere, or already done). */
static const char CLAIM_LUA[] =
    "if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end\n"
    "if redis.call('HSETNX', KEYS[2], ARGV[5], ARGV[2]) == 0 then return 0 end\n"
    "redis.call('RPUSH', KEYS[3], ARGV[4])\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])\n"
    "return 1\n";

#define CHECK_BATCH "200"
#define FIELDS 8

struct tp_escalate {
    tp_store_t *store;
    tp_emitter_t *emitter;
    const tp_roster_t *roster;
    char due_key[TP_SHARDS][128];
    char shard_prefix[TP_SHARDS][32];
    struct due_arg { /* a scan's callback: which shard answered */
        struct tp_escalate *escalate;
        int shard;
    } due_args[TP_SHARDS];
    int due_script, claim_script;
    uv_timer_t timer;
    uint64_t warnings; /* owner warnings sent from this instance */
};

typedef struct claim_ctx {
    tp_escalate_t *escalate;
    int warning; /* the step is the owner's warning */
    char customer[TP_CUSTOMER_MAX + 1];
    msgpack_sbuffer payload;
} claim_ctx_t;

const char *tp_escalate_recipient(const tp_roster_t *roster, const char *step,
                                  const char *department, const char *owner) {
    if (!strcmp(step, "warning")) return owner && *owner ? owner : tp_roster_lead(roster, department);
    if (!strcmp(step, "lead")) return tp_roster_lead(roster, department);
    return tp_roster_manager(roster, department);
}

static void claimed_cb(tp_store_t *store, redisReply *r, void *arg) {
    claim_ctx_t *ctx = arg;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        ctx->escalate->warnings += ctx->warning;
        tp_emitter_send_of(ctx->escalate->emitter, ctx->customer, ctx->payload.data,
                           ctx->payload.size);
    } else if (r && r->type == REDIS_REPLY_ERROR)
        tp_log_error("escalate: %s", r->str);
    msgpack_sbuffer_destroy(&ctx->payload);
    free(ctx);
}

static const char *texts(const char *step) {
    if (!strcmp(step, "warning")) return "the SLA target is close: act now";
    if (!strcmp(step, "lead")) return "the SLA target was missed: see that it is handled";
    return "the SLA target was missed and is still open";
}

static void escalate(tp_escalate_t *self, int shard, redisReply **f) {
    const char *member = f[0]->str;
    char customer[TP_CUSTOMER_MAX + 1], ticket[80], target[32], step[16];
    if (sscanf(member, "%128[^|]|%79[^|]|%31[^|]|%15s", customer, ticket, target, step) != 4 ||
        (strcmp(target, "first_response") && strcmp(target, "resolution")) ||
        (strcmp(step, "warning") && strcmp(step, "lead") && strcmp(step, "manager"))) {
        tp_log_error("escalate: malformed step %s (dropped)", member);
        tp_store_command(self->store, NULL, NULL, "ZREM %s %s", self->due_key[shard], member);
        return;
    }
    if (tp_key_shard(customer) != shard) { /* its ticket is in another slot */
        tp_log_error("escalate: step %s outside its customer's shard (dropped)", member);
        tp_store_command(self->store, NULL, NULL, "ZREM %s %s", self->due_key[shard], member);
        return;
    }
    int64_t at = atoll(f[1]->str);
    const char *owner = f[2]->str, *dept = f[3]->str, *priority = f[4]->str;
    int64_t deadline = atoll(!strcmp(target, "first_response") ? f[6]->str : f[7]->str);
    const char *to = tp_escalate_recipient(self->roster, step, dept, owner);
    claim_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->escalate = self;
    ctx->warning = strcmp(step, "warning") == 0;
    snprintf(ctx->customer, sizeof ctx->customer, "%s", customer);
    msgpack_sbuffer_init(&ctx->payload);
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ticket", ticket, "step",
                             step, "owner", to, "target", target, "priority",
                             *priority ? priority : "normal", "title", f[5]->str, "text",
                             texts(step));
    if (*dept) json_object_set_new(data, "department", json_string(dept));
    if (deadline > 0) json_object_set_new(data, "deadline", json_integer(deadline));
    char id[TP_ID_MAX + 1], field[64];
    snprintf(id, sizeof id, "%s:%s:%s", ticket, target, step);
    snprintf(field, sizeof field, "esc_%s_%s", target, step);
    if (tp_emit_pack(&ctx->payload, TP_EVENT_TICKET_ESCALATED, id, at, TP_SERVICE_TICKETING,
                     customer, data) < 0) {
        claimed_cb(self->store, NULL, ctx);
        return;
    }
    int64_t now = tp_now_ms();
    char why[128];
    snprintf(why, sizeof why, "%s %s", target, step);
    json_t *h = json_pack("{s:I, s:s, s:s, s:s, s:s}", "at", (json_int_t)now, "by", "ticketing",
                          "what", "escalated", "to", to, "why", why);
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
    tp_argv_add(&a, member, (size_t)-1);
    tp_argv_add_int(&a, now);
    tp_argv_add(&a, ctx->payload.data, ctx->payload.size);
    tp_argv_add(&a, hist, (size_t)-1);
    tp_argv_add(&a, field, (size_t)-1);
    int rc = tp_store_eval(self->store, self->claim_script, claimed_cb, ctx, 4, (int)a.n, a.v,
                           a.len);
    tp_argv_clear(&a);
    free(hist);
    if (rc < 0) claimed_cb(self->store, NULL, ctx);
}

static void due_cb(tp_store_t *store, redisReply *r, void *arg) {
    struct due_arg *due = arg;
    tp_escalate_t *self = due->escalate;
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i + FIELDS - 1 < r->elements; i += FIELDS) {
        redisReply **f = &r->element[i];
        int ok = 1;
        for (int j = 0; j < FIELDS; j++) ok &= f[j]->type == REDIS_REPLY_STRING;
        if (ok) escalate(self, due->shard, f);
    }
}

static void timer_cb(uv_timer_t *t) {
    tp_escalate_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    for (int shard = 0; shard < TP_SHARDS; shard++) { /* one script per slot */
        tp_argv_t a;
        tp_argv_init(&a);
        tp_argv_add(&a, self->due_key[shard], (size_t)-1);
        tp_argv_add_int(&a, tp_now_ms());
        tp_argv_add(&a, CHECK_BATCH, (size_t)-1);
        tp_argv_add(&a, self->shard_prefix[shard], (size_t)-1);
        tp_store_eval(self->store, self->due_script, due_cb, &self->due_args[shard], 1,
                      (int)a.n, a.v, a.len);
        tp_argv_clear(&a);
    }
}

tp_escalate_t *tp_escalate_new(uv_loop_t *loop, tp_store_t *store, tp_emitter_t *emitter,
                               const tp_roster_t *roster, int64_t check_interval_ms) {
    tp_escalate_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    self->roster = roster;
    for (int shard = 0; shard < TP_SHARDS; shard++) {
        self->due_args[shard].escalate = self;
        self->due_args[shard].shard = shard;
        tp_key_shard_key(self->due_key[shard], sizeof self->due_key[shard],
                         tp_store_ns(store), shard, "sla:escalate");
        tp_key_shard_key(self->shard_prefix[shard], sizeof self->shard_prefix[shard],
                         tp_store_ns(store), shard, "%s", "");
    }
    self->due_script = tp_store_script(store, "escalate_due", DUE_LUA);
    self->claim_script = tp_store_script(store, "escalate_claim", CLAIM_LUA);
    if (self->due_script < 0 || self->claim_script < 0) {
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

uint64_t tp_escalate_warnings(const tp_escalate_t *self) { return self ? self->warnings : 0; }

static void close_cb(uv_handle_t *h) { free(h->data); }

void tp_escalate_destroy(tp_escalate_t **self_p) {
    tp_escalate_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    uv_close((uv_handle_t *)&self->timer, close_cb);
}
