/* ticketing_escalate.c: escalation steps that fell due, to
 * ticket.escalated, once each. */
#include "ticketing_escalate.h"

#include "ticketing_due.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

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

/* The ticket's fields each step due comes with (tp_due_item_t fields). */
enum { F_OWNER, F_DEPARTMENT, F_PRIORITY, F_TITLE, F_FIRST_RESPONSE_DUE, F_RESOLUTION_DUE };
static const char *const STEP_FIELDS[] = {"owner", "department", "priority", "title",
                                          "first_response_due", "resolution_due"};

struct tp_escalate {
    tp_store_t *store;
    tp_emitter_t *emitter;
    const tp_roster_t *roster;
    tp_due_watch_t *watch; /* sla:escalate, owned */
    int claim_script;
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

static void escalate(void *arg, const tp_due_item_t *item) {
    tp_escalate_t *self = arg;
    const char *customer = item->customer, *ticket = item->ticket;
    const char *due_key = tp_due_watch_key(self->watch, item->shard);
    char target[32], step[16];
    if (sscanf(item->rest, "%31[^|]|%15s", target, step) != 2 ||
        (strcmp(target, "first_response") && strcmp(target, "resolution")) ||
        (strcmp(step, "warning") && strcmp(step, "lead") && strcmp(step, "manager"))) {
        tp_log_error("escalate: malformed step %s (dropped)", item->member);
        tp_store_command(self->store, NULL, NULL, "ZREM %s %s", due_key, item->member);
        return;
    }
    int64_t at = item->when;
    const char *const *f = item->fields;
    const char *owner = f[F_OWNER], *dept = f[F_DEPARTMENT], *priority = f[F_PRIORITY];
    int64_t deadline = atoll(!strcmp(target, "first_response") ? f[F_FIRST_RESPONSE_DUE]
                                                               : f[F_RESOLUTION_DUE]);
    const char *to = tp_escalate_recipient(self->roster, step, dept, owner);
    claim_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->escalate = self;
    ctx->warning = strcmp(step, "warning") == 0;
    snprintf(ctx->customer, sizeof ctx->customer, "%s", customer);
    msgpack_sbuffer_init(&ctx->payload);
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ticket", ticket, "step",
                             step, "owner", to, "target", target, "priority",
                             *priority ? priority : "normal", "title", f[F_TITLE], "text",
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
    tp_argv_add(&a, due_key, (size_t)-1);
    tp_key_customer(key, sizeof key, ns, customer, "ticket:%s", ticket);
    tp_argv_addf(&a, "%s", key);
    tp_key_customer(key, sizeof key, ns, customer, "ticket:%s:history", ticket);
    tp_argv_addf(&a, "%s", key);
    tp_argv_add(&a, tp_emitter_outbox_of(self->emitter, customer), (size_t)-1);
    tp_argv_add(&a, item->member, (size_t)-1);
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

tp_escalate_t *tp_escalate_new(uv_loop_t *loop, tp_store_t *store, tp_emitter_t *emitter,
                               const tp_roster_t *roster, int64_t check_interval_ms) {
    tp_escalate_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    self->roster = roster;
    self->claim_script = tp_store_script(store, "escalate_claim", CLAIM_LUA);
    if (self->claim_script < 0 ||
        !(self->watch = tp_due_watch_new(loop, store, "sla:escalate", STEP_FIELDS,
                                         (int)(sizeof STEP_FIELDS / sizeof *STEP_FIELDS),
                                         check_interval_ms, escalate, self))) {
        free(self);
        return NULL;
    }
    return self;
}

uint64_t tp_escalate_warnings(const tp_escalate_t *self) { return self ? self->warnings : 0; }

void tp_escalate_destroy(tp_escalate_t **self_p) {
    tp_escalate_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    tp_due_watch_destroy(&self->watch); /* no step is handed over after this */
    free(self);
}
