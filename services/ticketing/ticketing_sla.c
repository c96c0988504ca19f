/* ticketing_sla.c: passed deadlines to sla.breached, once each. */
#include "ticketing_sla.h"

#include "ticketing_due.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

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

/* The ticket's fields each passed deadline comes with. */
enum { F_OWNER, F_PRIORITY, F_TITLE };
static const char *const DEADLINE_FIELDS[] = {"owner", "priority", "title"};

struct tp_sla {
    tp_store_t *store;
    tp_emitter_t *emitter;
    char default_owner[TP_ACTOR_MAX + 1];
    tp_due_watch_t *watch; /* sla:due, owned */
    int breach_script;
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

static void breach(void *arg, const tp_due_item_t *item) {
    tp_sla_t *self = arg;
    const char *customer = item->customer, *ticket = item->ticket;
    const char *owner = item->fields[F_OWNER], *priority = item->fields[F_PRIORITY];
    const char *title = item->fields[F_TITLE];
    int64_t deadline = item->when;
    char target[32];
    if (sscanf(item->rest, "%31s", target) != 1) {
        tp_log_error("sla: malformed deadline %s (dropped)", item->member);
        tp_store_command(self->store, NULL, NULL, "ZREM %s %s",
                         tp_due_watch_key(self->watch, item->shard), item->member);
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
    tp_argv_add(&a, tp_due_watch_key(self->watch, item->shard), (size_t)-1);
    tp_key_customer(key, sizeof key, ns, customer, "ticket:%s", ticket);
    tp_argv_addf(&a, "%s", key);
    tp_key_customer(key, sizeof key, ns, customer, "ticket:%s:history", ticket);
    tp_argv_addf(&a, "%s", key);
    tp_argv_add(&a, tp_emitter_outbox_of(self->emitter, customer), (size_t)-1);
    tp_argv_addf(&a, "%stickets:breached", tp_due_watch_prefix(self->watch, item->shard));
    tp_argv_add(&a, item->member, (size_t)-1);
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

tp_sla_t *tp_sla_new(uv_loop_t *loop, tp_store_t *store, tp_emitter_t *emitter,
                     int64_t check_interval_ms, const char *default_owner) {
    tp_sla_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    snprintf(self->default_owner, sizeof self->default_owner, "%s", default_owner);
    self->breach_script = tp_store_script(store, "sla_breach", BREACH_LUA);
    if (self->breach_script < 0 ||
        !(self->watch = tp_due_watch_new(loop, store, "sla:due", DEADLINE_FIELDS,
                                         (int)(sizeof DEADLINE_FIELDS / sizeof *DEADLINE_FIELDS),
                                         check_interval_ms, breach, self))) {
        free(self);
        return NULL;
    }
    return self;
}

uint64_t tp_sla_breaches(const tp_sla_t *self) { return self ? self->breaches : 0; }

void tp_sla_destroy(tp_sla_t **self_p) {
    tp_sla_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    tp_due_watch_destroy(&self->watch); /* no deadline is handed over after this */
    free(self);
}
