/* ticketing_ticket.c: opening and updating tickets. */
#include "ticketing_ticket.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ticketing_clock.h"
#include "ticketing_state.h"
#include "tp/apply.h"
#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

enum { F_VER, F_STATUS, F_RESPONDED, F_OWNER, F_PRIORITY, F_TITLE, F_DEADLINE,
       F_OPENED, F_PAUSED_AT, F_PAUSES, F_COUNT };
#define READ_FIELDS "ver status responded_at owner priority title first_response_due " \
                    "opened_at paused_at pauses"
#define MAX_ATTEMPTS 8

static const char *const priorities[] = {"urgent", "high", "normal", "low"};

struct tp_ticketing {
    tp_store_t *store;
    tp_ticket_rules_t rules;
    const tp_calendar_t *hours;
    char default_owner[TP_ACTOR_MAX + 1];
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
    static const char *const level[] = {"urgent", "high", "normal", "low"};
    static const char *const first[] = {"30m", "2h", "2h", "2h"};
    static const char *const resolve[] = {"4h", "8h", "24h", "40h"};
    for (int i = 0; i < 4; i++) {
        char key[48];
        snprintf(key, sizeof key, "first_response_%s", level[i]);
        r->first_response_ms[i] = tp_config_ms(cfg, "ticketing", key, first[i]);
        snprintf(key, sizeof key, "resolution_%s", level[i]);
        r->resolution_ms[i] = tp_config_ms(cfg, "ticketing", key, resolve[i]);
    }
    r->default_owner = tp_config_str(cfg, "ticketing", "default_owner", "support-lead");
}

tp_ticketing_t *tp_ticketing_new(tp_store_t *store, const tp_ticket_rules_t *rules,
                                 const tp_calendar_t *hours) {
    tp_ticketing_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->rules = *rules;
    self->hours = hours;
    snprintf(self->default_owner, sizeof self->default_owner, "%s",
             rules->default_owner);
    self->rules.default_owner = self->default_owner;
    if (tp_apply_script(store) < 0) {
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

/* The ticket's keys in an apply: the record (and version), open summaries,
 * history, and the shared deadline index. */
typedef struct ticket_keys {
    int ticket, summaries, history, due;
} ticket_keys_t;

static ticket_keys_t ticket_keys(tp_apply_t *a, const tp_ticketing_t *self,
                                 const char *customer, const char *ticket) {
    const char *ns = tp_store_ns(self->store);
    ticket_keys_t k;
    k.ticket = tp_apply_key(a, "%s{c:%s}:ticket:%s", ns, customer, ticket);
    k.summaries = tp_apply_key(a, "%s{c:%s}:tickets", ns, customer);
    k.history = tp_apply_key(a, "%s{c:%s}:ticket:%s:history", ns, customer, ticket);
    k.due = tp_apply_key(a, "%ssla:due", ns);
    return k;
}

static int priority_index(const char *priority) {
    for (int i = 0; i < 4; i++)
        if (priority && strcmp(priority, priorities[i]) == 0) return i;
    return 2;
}

/* A target's clock: urgent runs around the clock, the rest in business
 * hours; `pauses` is the ticket's JSON list of [from, to] pairs. */
static void clock_of(const tp_ticketing_t *self, tp_sla_clock_t *c, int64_t opened,
                     int p, int64_t target, const char *pauses) {
    tp_sla_clock_init(c, opened, target, p == 0 ? NULL : self->hours);
    json_t *list = pauses && *pauses ? json_loads(pauses, 0, NULL) : NULL;
    size_t i;
    json_t *pair;
    json_array_foreach(list, i, pair) {
        tp_sla_clock_pause(c, json_integer_value(json_array_get(pair, 0)));
        tp_sla_clock_resume(c, json_integer_value(json_array_get(pair, 1)));
    }
    json_decref(list);
}

static void deadline_member(char *out, size_t len, const char *customer,
                            const char *ticket, const char *target) {
    snprintf(out, len, "%s|%s|%s", customer, ticket, target);
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

static void opened_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_consumer_job_t *job = arg;
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1;
    if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("ticket open: %s", r->str);
    /* stale: the ticket exists already (opened twice): nothing to do */
    tp_consumer_job_done(job, ok ? 0 : -1);
}

static void open_ticket(tp_ticketing_t *self, tp_consumer_t *consumer,
                        tp_consumer_job_t *job, const tp_event_t *ev) {
    const char *ticket = tp_event_str(ev, "ticket");
    const char *owner = tp_event_str(ev, "owner");
    int p = priority_index(tp_event_str(ev, "priority"));
    if (!ticket) { /* intake assigns one; never reached for journaled events */
        tp_consumer_job_done(job, 0);
        return;
    }
    tp_sla_clock_t first, resolve;
    clock_of(self, &first, ev->ts, p, self->rules.first_response_ms[p], NULL);
    clock_of(self, &resolve, ev->ts, p, self->rules.resolution_ms[p], NULL);
    int64_t first_due = tp_sla_clock_deadline(&first);
    int64_t resolve_due = tp_sla_clock_deadline(&resolve);
    char *sum = summary(ticket, tp_event_str(ev, "title"), "new", priorities[p], owner,
                        first_due);
    char *hist = history_entry(ev, "opened", NULL, "new", tp_event_str(ev, "title"));
    char key[TP_CUSTOMER_MAX + 128], member[TP_CUSTOMER_MAX + 128];
    tp_key(key, sizeof key, tp_store_ns(self->store), "{c:%s}:ticket:%s", ev->customer,
           ticket);
    tp_apply_t a;
    tp_apply_init(&a, tp_consumer_job_done_key(job), tp_consumer_done_ttl(consumer), key, "0");
    ticket_keys_t k = ticket_keys(&a, self, ev->customer, ticket);
    tp_apply_cmd(&a, "HSET", k.ticket);
    tp_apply_pair(&a, "ticket", ticket);
    tp_apply_pair(&a, "customer", ev->customer);
    tp_apply_pair(&a, "title", tp_event_str(ev, "title"));
    tp_apply_pair(&a, "category", tp_event_str(ev, "category"));
    tp_apply_pair(&a, "priority", priorities[p]);
    tp_apply_pair(&a, "channel", tp_event_str(ev, "channel"));
    tp_apply_pair(&a, "owner", owner);
    tp_apply_pair(&a, "status", "new");
    tp_apply_pair(&a, "ver", "1");
    tp_apply_pair_int(&a, "opened_at", ev->ts);
    tp_apply_pair_int(&a, "first_response_due", first_due);
    tp_apply_pair_int(&a, "resolution_due", resolve_due);
    tp_apply_cmd(&a, "HSET", k.summaries);
    tp_apply_pair(&a, ticket, sum);
    tp_apply_cmd(&a, "RPUSH", k.history);
    tp_apply_str(&a, hist);
    tp_apply_cmd(&a, "ZADD", k.due);
    deadline_member(member, sizeof member, ev->customer, ticket, "first_response");
    tp_apply_int(&a, first_due);
    tp_apply_str(&a, member);
    deadline_member(member, sizeof member, ev->customer, ticket, "resolution");
    tp_apply_int(&a, resolve_due);
    tp_apply_str(&a, member);
    int rc = tp_apply_send(&a, self->store, opened_cb, job);
    tp_apply_clear(&a);
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

    /* R-TICKET-3: waiting for the customer, or resolved, pauses the clocks;
     * leaving those states resumes them with the pause recorded */
    int p = priority_index(got[F_PRIORITY]);
    int was_paused = got[F_PAUSED_AT] && *got[F_PAUSED_AT];
    int pausing = !strcmp(new_status, "waiting_customer") || !strcmp(new_status, "resolved");
    int closed = !strcmp(new_status, "closed");
    int64_t opened = got[F_OPENED] ? atoll(got[F_OPENED]) : ev->ts;
    json_t *pauses = json_loads(got[F_PAUSES] && *got[F_PAUSES] ? got[F_PAUSES] : "[]", 0,
                                NULL);
    if (!json_is_array(pauses)) {
        json_decref(pauses);
        pauses = json_array();
    }
    int resuming = !rejected && was_paused && !pausing && !closed;
    if (resuming)
        json_array_append_new(pauses, json_pack("[I, I]", (json_int_t)atoll(got[F_PAUSED_AT]),
                                                (json_int_t)ev->ts));
    char *pauses_text = json_dumps(pauses, JSON_COMPACT);
    json_decref(pauses);
    int first_running = !got[F_RESPONDED] && !stop_clock;

    tp_apply_t a;
    tp_apply_init(&a, tp_consumer_job_done_key(ctx->job), tp_consumer_done_ttl(ctx->consumer),
                  ctx->ticket_key, got[F_VER]);
    ticket_keys_t k = ticket_keys(&a, self, ev->customer, ticket);
    char member_first[TP_CUSTOMER_MAX + 128], member_resolve[TP_CUSTOMER_MAX + 128];
    deadline_member(member_first, sizeof member_first, ev->customer, ticket, "first_response");
    deadline_member(member_resolve, sizeof member_resolve, ev->customer, ticket, "resolution");
    int64_t first_due = 0;
    if (!rejected) {
        if (stop_clock || pausing || closed) { /* clocks that stop now */
            tp_apply_cmd(&a, "ZREM", k.due);
            tp_apply_str(&a, member_first);
            if (pausing || closed) tp_apply_str(&a, member_resolve);
        }
        if (resuming) { /* new deadlines, later by the pause */
            tp_sla_clock_t c;
            clock_of(self, &c, opened, p, self->rules.resolution_ms[p], pauses_text);
            tp_apply_cmd(&a, "ZADD", k.due);
            tp_apply_int(&a, tp_sla_clock_deadline(&c));
            tp_apply_str(&a, member_resolve);
            if (first_running) {
                clock_of(self, &c, opened, p, self->rules.first_response_ms[p], pauses_text);
                first_due = tp_sla_clock_deadline(&c);
                tp_apply_int(&a, first_due);
                tp_apply_str(&a, member_first);
            }
        }
        tp_apply_cmd(&a, "HSET", k.ticket);
        tp_apply_pair(&a, "status", new_status);
        tp_apply_pair(&a, "owner", owner ? owner : "");
        tp_apply_pair_int(&a, "ver", atoll(got[F_VER]) + 1);
        tp_apply_pair_int(&a, "updated_at", ev->ts);
        tp_apply_pair(&a, "pauses", pauses_text);
        if (pausing && !was_paused) tp_apply_pair_int(&a, "paused_at", ev->ts);
        if (resuming || closed) tp_apply_pair(&a, "paused_at", "");
        if (stop_clock) tp_apply_pair_int(&a, "responded_at", ev->ts);
        if (first_due) tp_apply_pair_int(&a, "first_response_due", first_due);
    } else { /* refused: only the history says why (the version still moves) */
        tp_apply_cmd(&a, "HSET", k.ticket);
        tp_apply_pair_int(&a, "ver", atoll(got[F_VER]) + 1);
    }
    tp_apply_cmd(&a, "RPUSH", k.history);
    tp_apply_str(&a, hist);
    if (settled) {
        tp_apply_cmd(&a, "HDEL", k.summaries);
        tp_apply_str(&a, ticket);
    } else {
        char *sum = summary(ticket, got[F_TITLE], new_status, got[F_PRIORITY], owner,
                            first_due ? first_due
                                      : (got[F_DEADLINE] ? atoll(got[F_DEADLINE]) : 0));
        tp_apply_cmd(&a, "HSET", k.summaries);
        tp_apply_pair(&a, ticket, sum);
        free(sum);
    }
    int rc = tp_apply_send(&a, self->store, updated_cb, ctx);
    tp_apply_clear(&a);
    free(hist);
    free(pauses_text);
    if (rc < 0) update_end(ctx, -1);
}

static void read_ticket(update_ctx_t *ctx) {
    if (tp_store_command(ctx->ticketing->store, ticket_read_cb, ctx,
                         "HMGET %s " READ_FIELDS, ctx->ticket_key) < 0)
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
