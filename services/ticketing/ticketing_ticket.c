/* ticketing_ticket.c: opening and updating tickets. */
#include "ticketing_ticket.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ticketing_state.h"
#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS done, ticket, open summaries, history, sla:due. ARGV ttl, ticket id,
 * summary, history entry, sla member, deadline, then field pairs. */
static const char OPEN_LUA[] =
    TP_LUA_DONE_CHECK
    "if redis.call('EXISTS', KEYS[2]) == 0 then\n"
    "  redis.call('HSET', KEYS[2], unpack(ARGV, 7))\n"
    "  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])\n"
    "  redis.call('RPUSH', KEYS[4], ARGV[4])\n"
    "  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[5])\n"
    "end\n"
    TP_LUA_DONE_MARK
    "return {1}\n";

/* KEYS done, ticket, open summaries, history, sla:due. ARGV ttl, ticket id,
 * expected version, stop first-response clock (0/1), sla member, history
 * entry, open summary ("" = settled: remove), then field pairs.
 * Returns {0} done before, {2} changed meanwhile, {1} applied. */
static const char UPDATE_LUA[] =
    TP_LUA_DONE_CHECK
    "if (redis.call('HGET', KEYS[2], 'ver') or '0') ~= ARGV[3] then\n"
    "  return {2}\n"
    "end\n"
    "if ARGV[4] == '1' then redis.call('ZREM', KEYS[5], ARGV[5]) end\n"
    "if #ARGV > 7 then redis.call('HSET', KEYS[2], unpack(ARGV, 8)) end\n"
    "redis.call('RPUSH', KEYS[4], ARGV[6])\n"
    "if ARGV[7] == '' then redis.call('HDEL', KEYS[3], ARGV[2])\n"
    "else redis.call('HSET', KEYS[3], ARGV[2], ARGV[7]) end\n"
    TP_LUA_DONE_MARK
    "return {1}\n";

enum { F_VER, F_STATUS, F_RESPONDED, F_OWNER, F_PRIORITY, F_TITLE, F_DEADLINE,
       F_COUNT };
#define MAX_ATTEMPTS 8

static const char *const priorities[] = {"urgent", "high", "normal", "low"};

struct tp_ticketing {
    tp_store_t *store;
    tp_ticket_rules_t rules;
    char default_owner[TP_ACTOR_MAX + 1];
    int open_script, update_script;
};

typedef struct update_ctx {
    tp_ticketing_t *ticketing;
    tp_consumer_t *consumer;
    tp_consumer_job_t *job;
    const tp_event_t *ev;
    int attempts;
    char ticket_key[TP_CUSTOMER_MAX + 128];
} update_ctx_t;

void tp_ticket_rules_load(tp_ticket_rules_t *r, tp_config_t *cfg) {
    static const char *const keys[] = {"first_response_urgent", "first_response_high",
                                       "first_response_normal", "first_response_low"};
    static const char *const defaults[] = {"30m", "2h", "2h", "2h"};
    for (int i = 0; i < 4; i++)
        r->first_response_ms[i] = tp_config_ms(cfg, "ticketing", keys[i], defaults[i]);
    r->default_owner = tp_config_str(cfg, "ticketing", "default_owner", "support-lead");
}

tp_ticketing_t *tp_ticketing_new(tp_store_t *store, const tp_ticket_rules_t *rules) {
    tp_ticketing_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->rules = *rules;
    snprintf(self->default_owner, sizeof self->default_owner, "%s",
             rules->default_owner);
    self->rules.default_owner = self->default_owner;
    self->open_script = tp_store_script(store, "ticket_open", OPEN_LUA);
    self->update_script = tp_store_script(store, "ticket_update", UPDATE_LUA);
    if (self->open_script < 0 || self->update_script < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void tp_ticketing_destroy(tp_ticketing_t **self_p) {
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

int tp_ticketing_tag(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    (void)arg;
    if (!ev->customer[0]) return -1;
    snprintf(tag, len, "c:%s", ev->customer);
    return 0;
}

static void ticket_keys(tp_argv_t *a, const tp_ticketing_t *self,
                        const tp_consumer_job_t *job, const char *customer,
                        const char *ticket) {
    const char *ns = tp_store_ns(self->store);
    tp_argv_add(a, tp_consumer_job_done_key(job), (size_t)-1);
    tp_argv_addf(a, "%s{c:%s}:ticket:%s", ns, customer, ticket);
    tp_argv_addf(a, "%s{c:%s}:tickets", ns, customer);
    tp_argv_addf(a, "%s{c:%s}:ticket:%s:history", ns, customer, ticket);
    tp_argv_addf(a, "%ssla:due", ns);
}

/* A history line: who, when, what, why (R-TICKET-1). Caller frees. */
static char *history_entry(const tp_event_t *ev, const char *what,
                           const char *from, const char *to, const char *why) {
    json_t *h = json_pack("{s:I, s:s, s:s, s:s}", "at", (json_int_t)ev->ts, "by",
                          ev->actor[0] ? ev->actor
                                       : (tp_event_str(ev, "agent")
                                              ? tp_event_str(ev, "agent")
                                              : ev->src),
                          "what", what, "event", ev->id);
    if (from) json_object_set_new(h, "from", json_string(from));
    if (to) json_object_set_new(h, "to", json_string(to));
    if (why && *why) json_object_set_new(h, "why", json_string(why));
    char *s = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    return s;
}

static char *summary(const char *ticket, const char *title, const char *status,
                     const char *priority, const char *owner, int64_t deadline) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "ticket", ticket,
                          "title", title ? title : "", "status", status,
                          "priority", priority ? priority : "normal", "owner",
                          owner ? owner : "", "first_response_due",
                          (json_int_t)deadline);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void done_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_consumer_job_t *job = arg;
    if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("ticket open: %s", r->str);
    tp_consumer_job_done(job, r && r->type == REDIS_REPLY_ARRAY ? 0 : -1);
}

static void open_ticket(tp_ticketing_t *self, tp_consumer_t *consumer,
                        tp_consumer_job_t *job, const tp_event_t *ev) {
    const char *ticket = tp_event_str(ev, "ticket");
    const char *priority = tp_event_str(ev, "priority");
    const char *owner = tp_event_str(ev, "owner");
    int p = 2;
    for (int i = 0; i < 4; i++)
        if (priority && strcmp(priority, priorities[i]) == 0) p = i;
    int64_t deadline = ev->ts + self->rules.first_response_ms[p];
    if (!ticket) { /* intake assigns one; never reached for journaled events */
        tp_consumer_job_done(job, 0);
        return;
    }
    char *sum = summary(ticket, tp_event_str(ev, "title"), "new", priorities[p],
                        owner, deadline);
    char *hist = history_entry(ev, "opened", NULL, "new", tp_event_str(ev, "title"));
    tp_argv_t a;
    tp_argv_init(&a);
    ticket_keys(&a, self, job, ev->customer, ticket);
    tp_argv_add(&a, tp_consumer_done_ttl(consumer), (size_t)-1);
    tp_argv_add(&a, ticket, (size_t)-1);
    tp_argv_add(&a, sum, (size_t)-1);
    tp_argv_add(&a, hist, (size_t)-1);
    tp_argv_addf(&a, "%s|%s|first_response", ev->customer, ticket);
    tp_argv_add_int(&a, deadline);
#define PAIR(k, v) (tp_argv_add(&a, k, (size_t)-1), tp_argv_add(&a, (v) ? (v) : "", (size_t)-1))
    PAIR("ticket", ticket);
    PAIR("customer", ev->customer);
    PAIR("title", tp_event_str(ev, "title"));
    PAIR("category", tp_event_str(ev, "category"));
    PAIR("priority", priorities[p]);
    PAIR("channel", tp_event_str(ev, "channel"));
    PAIR("owner", owner);
    PAIR("status", "new");
    PAIR("ver", "1");
#undef PAIR
    tp_argv_add(&a, "opened_at", 9);
    tp_argv_add_int(&a, ev->ts);
    tp_argv_add(&a, "first_response_due", 18);
    tp_argv_add_int(&a, deadline);
    int rc = tp_store_eval(self->store, self->open_script, done_cb, job, 5,
                           (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
    free(sum);
    free(hist);
    if (rc < 0) tp_consumer_job_done(job, -1);
}

static void read_ticket(update_ctx_t *ctx);

static void update_end(update_ctx_t *ctx, int status) {
    tp_consumer_job_done(ctx->job, status);
    free(ctx);
}

static void updated_cb(tp_store_t *store, redisReply *r, void *arg) {
    update_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("ticket update: %s", r->str);
        update_end(ctx, -1);
        return;
    }
    if (r->element[0]->integer == 2) {
        if (++ctx->attempts < MAX_ATTEMPTS) {
            read_ticket(ctx);
            return;
        }
        update_end(ctx, -1);
        return;
    }
    update_end(ctx, 0);
}

static void ticket_read_cb(tp_store_t *store, redisReply *r, void *arg) {
    update_ctx_t *ctx = arg;
    tp_ticketing_t *self = ctx->ticketing;
    const tp_event_t *ev = ctx->ev;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != F_COUNT) {
        update_end(ctx, -1);
        return;
    }
    const char *got[F_COUNT];
    for (int i = 0; i < F_COUNT; i++)
        got[i] = r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
    if (!got[F_VER]) { /* not opened yet: its ticket.opened is on the way */
        tp_log_info("ticket %s of %s not found yet; retried by reconcile",
                    tp_event_str(ev, "ticket"), ev->customer);
        update_end(ctx, -1);
        return;
    }
    const char *ticket = tp_event_str(ev, "ticket");
    const char *action = tp_event_str(ev, "action");
    const char *agent = tp_event_str(ev, "agent");
    const char *status = got[F_STATUS] ? got[F_STATUS] : "new";
    const char *owner = got[F_OWNER];
    const char *new_status = status;
    char why[160] = "", what[32];
    snprintf(what, sizeof what, "%s", action);

    if (strcmp(action, "assign") == 0) {
        owner = agent;
        if (tp_ticket_state(status) == TP_TICKET_NEW) new_status = "assigned";
    } else if (strcmp(action, "status") == 0) {
        const char *to = tp_event_str(ev, "status");
        int from_s = tp_ticket_state(status), to_s = tp_ticket_state(to);
        if (!to) {
            snprintf(why, sizeof why, "no status given");
            snprintf(what, sizeof what, "rejected");
        } else if (!tp_ticket_transition_ok((tp_ticket_state_t)from_s,
                                            (tp_ticket_state_t)to_s, why,
                                            sizeof why)) {
            snprintf(what, sizeof what, "rejected");
        } else {
            new_status = to;
        }
    }
    int rejected = strcmp(what, "rejected") == 0;
    int stop_clock = !rejected && !got[F_RESPONDED];
    int settled = tp_ticket_state_settled((tp_ticket_state_t)tp_ticket_state(new_status));
    if (rejected)
        tp_log_info("ticket %s: %s", ticket, why);

    const char *note = tp_event_str(ev, "note");
    char *hist = history_entry(ev, what, strcmp(status, new_status) ? status : NULL,
                               strcmp(status, new_status) ? new_status : NULL,
                               rejected ? why : note);
    char *sum = settled ? NULL
                        : summary(ticket, got[F_TITLE], new_status, got[F_PRIORITY],
                                  owner, got[F_DEADLINE] ? atoll(got[F_DEADLINE]) : 0);
    long long ver = atoll(got[F_VER]);
    tp_argv_t a;
    tp_argv_init(&a);
    ticket_keys(&a, self, ctx->job, ev->customer, ticket);
    tp_argv_add(&a, tp_consumer_done_ttl(ctx->consumer), (size_t)-1);
    tp_argv_add(&a, ticket, (size_t)-1);
    tp_argv_add(&a, got[F_VER], (size_t)-1);
    tp_argv_add(&a, stop_clock ? "1" : "0", 1);
    tp_argv_addf(&a, "%s|%s|first_response", ev->customer, ticket);
    tp_argv_add(&a, hist, (size_t)-1);
    tp_argv_add(&a, sum ? sum : "", (size_t)-1);
    if (!rejected) {
        tp_argv_add(&a, "status", 6);
        tp_argv_add(&a, new_status, (size_t)-1);
        tp_argv_add(&a, "owner", 5);
        tp_argv_add(&a, owner ? owner : "", (size_t)-1);
        tp_argv_add(&a, "ver", 3);
        tp_argv_add_int(&a, ver + 1);
        tp_argv_add(&a, "updated_at", 10);
        tp_argv_add_int(&a, ev->ts);
        if (stop_clock) {
            tp_argv_add(&a, "responded_at", 12);
            tp_argv_add_int(&a, ev->ts);
        }
    }
    int rc = tp_store_eval(self->store, self->update_script, updated_cb, ctx, 5,
                           (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
    free(hist);
    free(sum);
    if (rc < 0) update_end(ctx, -1);
}

static void read_ticket(update_ctx_t *ctx) {
    if (tp_store_command(ctx->ticketing->store, ticket_read_cb, ctx,
                         "HMGET %s ver status responded_at owner priority title "
                         "first_response_due",
                         ctx->ticket_key) < 0)
        update_end(ctx, -1);
}

void tp_ticketing_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                        const tp_event_t *ev, void *arg) {
    tp_ticketing_t *self = arg;
    if (ev->type == TP_EVENT_TICKET_OPENED) {
        open_ticket(self, consumer, job, ev);
        return;
    }
    if (ev->type != TP_EVENT_TICKET_UPDATED) {
        tp_consumer_job_done(job, 0);
        return;
    }
    update_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->ticketing = self;
    ctx->consumer = consumer;
    ctx->job = job;
    ctx->ev = ev;
    tp_key(ctx->ticket_key, sizeof ctx->ticket_key, tp_store_ns(self->store),
           "{c:%s}:ticket:%s", ev->customer, tp_event_str(ev, "ticket"));
    read_ticket(ctx);
}
