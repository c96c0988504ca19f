/* scoring_record.c: events to the customer record.
 *
 * read_customer -> on_<type> (compute, queue writes) -> finish_apply (the
 * timeline entry, health, version) -> one guarded apply -> derived events
 * to intake. Handlers only touch ctx: the customer as read (updated in
 * memory as they go, so later rules see earlier changes) and the apply
 * being built. */
#include "scoring_record.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/apply.h"
#include "tp/argv.h"
#include "tp/id.h"
#include "tp/ident.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS profile, deals, complaints, overdue, scores (one customer's, one
 * slot). ARGV deal key prefix (the same customer's), scores kept.
 * Returns {profile, {deal id, deal, ...}, complaints, overdue, scores}.
 * A record merging in lies in another shard: read on its own. */
static const char READ_LUA[] =
    "local deals = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do\n"
    "  deals[#deals + 1] = id\n"
    "  deals[#deals + 1] = redis.call('HGETALL', ARGV[1] .. id)\n"
    "end\n"
    "return {redis.call('HGETALL', KEYS[1]), deals,\n"
    "        redis.call('SMEMBERS', KEYS[3]), redis.call('SMEMBERS', KEYS[4]),\n"
    "        redis.call('LRANGE', KEYS[5], 0, tonumber(ARGV[2]) - 1)}\n";

#define MAX_DEALS 64
#define MAX_SCORES 32
#define MAX_DERIVED 4
#define MAX_ATTEMPTS 8
#define MAX_LINKS 3
#define LINK_KEY_MAX (TP_CUSTOMER_MAX + 96)

struct tp_record {
    tp_store_t *store;
    tp_emitter_t *emitter;
    tp_record_rules_t rules;
    int read_script;
    uv_timer_t sweep_timer;
    int sweeping;      /* health checks in flight */
    int64_t done_ttl_s;
};

typedef struct deal_rec {
    tp_deal_t deal;
    char name[201], currency[4], owner[TP_ACTOR_MAX + 1], team[65];
    int64_t expected_close, stage_since, created_at;
} deal_rec_t;

typedef struct apply_ctx {
    tp_record_t *record;
    tp_consumer_job_t *job; /* NULL for a health check of the sweep */
    const tp_event_t *ev;
    tp_event_t check;       /* the sweep's synthetic event */
    char done_key[TP_CUSTOMER_MAX + TP_ID_MAX + 96];
    char done_ttl[24];
    int attempts;
    char prefix[TP_CUSTOMER_MAX + 64]; /* "<ns>{s<n>}:c:<customer>:" */
    char shard_prefix[32];             /* "<ns>{s<n>}:", its shard's indexes */
    /* the customer as read, changed in memory by the handlers */
    json_t *profile;     /* field -> string */
    json_t *changes;     /* profile fields to write */
    json_t *complaints;  /* array of ticket ids */
    json_t *overdue;     /* array of ticket ids */
    json_t *from;        /* profile of a record merging in, or NULL */
    deal_rec_t deals[MAX_DEALS];
    size_t ndeals;
    int scores[MAX_SCORES];
    size_t nscores;
    int health_touched;
    /* the write being built */
    tp_apply_t apply;
    int k_profile, k_timeline;
    /* a merge's links outside the customer's shard (field -> customer),
     * written before the apply: idempotent, so a crash between the two
     * repeats them with the apply */
    struct { char key[LINK_KEY_MAX]; char field[320]; } links[MAX_LINKS];
    int nlinks, links_waiting, links_failed;
    msgpack_sbuffer derived[MAX_DERIVED];
    int nderived;
} apply_ctx_t;

/* ---- life ---- */

tp_record_t *tp_record_new(tp_store_t *store, tp_emitter_t *emitter,
                           const tp_record_rules_t *rules) {
    tp_record_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    self->rules = *rules;
    self->sweep_timer.loop = NULL; /* not started */
    self->read_script = tp_store_script(store, "scoring_read", READ_LUA);
    if (self->read_script < 0 || tp_apply_script(store) < 0) {
        free(self);
        return NULL;
    }
    return self;
}

static void sweep_closed(uv_handle_t *h) { free(h->data); }

void tp_record_destroy(tp_record_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_record_t *self = *self_p;
    *self_p = NULL;
    if (self->sweep_timer.loop)
        uv_close((uv_handle_t *)&self->sweep_timer, sweep_closed);
    else
        free(self);
}

int tp_record_tag(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    (void)arg;
    if (!ev->customer[0]) return -1;
    return tp_key_customer_tag(tag, len, ev->customer) < 0 ? -1 : 0;
}

/* ---- the customer as read ---- */

static const char *pget(const apply_ctx_t *ctx, const char *field) {
    return json_string_value(json_object_get(ctx->profile, field));
}

static int64_t pint(const apply_ctx_t *ctx, const char *field, int64_t def) {
    const char *v = pget(ctx, field);
    return v && *v ? atoll(v) : def;
}

/* Queues a profile field and makes later rules see it. */
static void set(apply_ctx_t *ctx, const char *field, const char *value) {
    if (!value) return;
    json_object_set_new(ctx->profile, field, json_string(value));
    json_object_set_new(ctx->changes, field, json_string(value));
}

static void set_int(apply_ctx_t *ctx, const char *field, int64_t value) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)value);
    set(ctx, field, buf);
}

static json_t *flat_to_object(const redisReply *r) {
    json_t *o = json_object();
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            json_object_set_new(o, r->element[i]->str,
                                json_stringn(r->element[i + 1]->str,
                                             r->element[i + 1]->len));
    return o;
}

static json_t *members(const redisReply *r) {
    json_t *a = json_array();
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            json_array_append_new(a, json_string(r->element[i]->str));
    return a;
}

static int has_member(const json_t *set_, const char *id) {
    size_t i;
    json_t *v;
    json_array_foreach(set_, i, v) if (strcmp(json_string_value(v), id) == 0) return 1;
    return 0;
}

static void deal_from_hash(deal_rec_t *d, const char *id, const json_t *h) {
#define S(f) json_string_value(json_object_get(h, f))
#define I(f, def) (S(f) && *S(f) ? atoll(S(f)) : (def))
    memset(d, 0, sizeof *d);
    snprintf(d->deal.id, sizeof d->deal.id, "%s", id);
    d->deal.stage = (int)I("stage", 1);
    d->deal.probability = (int)I("probability", -1);
    d->deal.amount = I("amount", 0);
    snprintf(d->deal.status, sizeof d->deal.status, "%s", S("status") ? S("status") : "open");
    snprintf(d->deal.reason, sizeof d->deal.reason, "%s", S("reason") ? S("reason") : "");
    d->deal.closed_at = I("closed_at", 0);
    snprintf(d->name, sizeof d->name, "%s", S("name") ? S("name") : "");
    snprintf(d->currency, sizeof d->currency, "%s", S("currency") ? S("currency") : "");
    snprintf(d->owner, sizeof d->owner, "%s", S("owner") ? S("owner") : "");
    snprintf(d->team, sizeof d->team, "%s", S("team") ? S("team") : "");
    d->expected_close = I("expected_close", 0);
    d->stage_since = I("stage_since", 0);
    d->created_at = I("created_at", 0);
#undef S
#undef I
}

static void ctx_reset(apply_ctx_t *ctx) {
    json_decref(ctx->profile);
    json_decref(ctx->changes);
    json_decref(ctx->complaints);
    json_decref(ctx->overdue);
    json_decref(ctx->from);
    ctx->profile = ctx->changes = ctx->complaints = ctx->overdue = ctx->from = NULL;
    tp_apply_clear(&ctx->apply);
    for (int i = 0; i < ctx->nderived; i++) msgpack_sbuffer_destroy(&ctx->derived[i]);
    ctx->nderived = 0;
    ctx->ndeals = ctx->nscores = 0;
    ctx->health_touched = 0;
    ctx->nlinks = ctx->links_waiting = ctx->links_failed = 0;
}

static void finish(apply_ctx_t *ctx, int status) {
    if (ctx->job)
        tp_consumer_job_done(ctx->job, status);
    else
        ctx->record->sweeping--;
    ctx_reset(ctx);
    tp_event_clear(&ctx->check);
    free(ctx);
}

/* ---- writes ---- */

/* One timeline entry (R-SHARED-1): what happened, in a line. */
static void timeline(apply_ctx_t *ctx, const char *type, int64_t ts,
                     const char *src, const char *event, const char *summary) {
    tp_apply_t *a = &ctx->apply;
    tp_apply_cmd(a, "XADD", ctx->k_timeline);
    tp_apply_str(a, "MAXLEN");
    tp_apply_str(a, "~");
    tp_apply_int(a, ctx->record->rules.timeline_max);
    tp_apply_str(a, "*");
    tp_apply_pair(a, "type", type);
    tp_apply_pair_int(a, "ts", ts);
    tp_apply_pair(a, "src", src);
    tp_apply_pair(a, "event", event);
    if (ctx->ev->actor[0] && strcmp(event, ctx->ev->id) == 0)
        tp_apply_pair(a, "actor", ctx->ev->actor);
    tp_apply_pair(a, "summary", summary);
}

/* Derives an event (`data` taken), puts it in the outbox and on the
 * timeline. Its id is the cause's id plus `suffix`, so a repeated apply
 * derives the same id. */
static void derive(apply_ctx_t *ctx, tp_event_type_t type, const char *suffix,
                   json_t *data, const char *summary) {
    const tp_event_t *ev = ctx->ev;
    if (ctx->nderived == MAX_DERIVED) {
        tp_log_error("event %s derives more than %d events", ev->id, MAX_DERIVED);
        json_decref(data);
        return;
    }
    char id[TP_ID_MAX + 1];
    int room = TP_ID_MAX - (int)strlen(suffix);
    snprintf(id, sizeof id, "%.*s%s", room, ev->id, suffix);
    msgpack_sbuffer *out = &ctx->derived[ctx->nderived];
    msgpack_sbuffer_init(out);
    if (tp_emit_pack(out, type, id, ev->ts, TP_SERVICE_SCORING, ev->customer, data) < 0) {
        msgpack_sbuffer_destroy(out);
        return;
    }
    ctx->nderived++;
    tp_apply_t *a = &ctx->apply;
    tp_apply_cmd(a, "ZADD", tp_apply_key(a, "%s", tp_emitter_outbox_of(ctx->record->emitter,
                                                                         ev->customer)));
    tp_apply_int(a, tp_now_ms());
    tp_apply_arg(a, out->data, out->size);
    timeline(ctx, tp_proto_type_name(type), ev->ts, "scoring", id, summary);
}

/* ---- rules applied ---- */

/* R-GRADE-2/3: grade from the dimensions; lead.graded when it changed. */
static void regrade(apply_ctx_t *ctx, int urgency, int budget, int decision,
                    int fit, const char *reason) {
    const tp_grade_rules_t *rules = &ctx->record->rules.grade;
    const tp_event_t *ev = ctx->ev;
    int score = tp_grade_score(rules, urgency, budget, decision, fit);
    char grade[2] = {tp_grade_of(rules, score, urgency), '\0'};
    char previous[2] = "";
    if (pget(ctx, "grade")) snprintf(previous, sizeof previous, "%s", pget(ctx, "grade"));
    set_int(ctx, "urgency", urgency);
    set_int(ctx, "budget", budget);
    set_int(ctx, "decision", decision);
    set_int(ctx, "fit", fit);
    set_int(ctx, "score", score);
    set(ctx, "grade", grade);
    set(ctx, "grade_reason", reason);
    set_int(ctx, "graded_at", ev->ts);
    if (strcmp(previous, grade) == 0) return;
    const char *owner = pget(ctx, "owner");
    json_t *data = json_pack("{s:s, s:i, s:i, s:s, s:s, s:s}", "grade", grade, "score",
                             score, "fit", fit, "owner", owner ? owner : "unassigned",
                             "reason", reason, "cause", ev->id);
    if (previous[0]) json_object_set_new(data, "previous", json_string(previous));
    char summary[400];
    snprintf(summary, sizeof summary, "graded %s%s%s (score %d, fit %d): %s", grade,
             previous[0] ? " from " : "", previous, score, fit, reason);
    derive(ctx, TP_EVENT_LEAD_GRADED, ":graded", data, summary);
}

/* R-STAGE-2: the state follows the deals. */
static void restate(apply_ctx_t *ctx) {
    tp_deal_t deals[MAX_DEALS];
    for (size_t i = 0; i < ctx->ndeals; i++) deals[i] = ctx->deals[i].deal;
    char state[16], reason[16];
    tp_deal_customer_state(&ctx->record->rules.stages, deals, ctx->ndeals,
                           pget(ctx, "churn_reason"), state, reason);
    const char *was = pget(ctx, "state");
    if (was && strcmp(was, state) == 0) return;
    char summary[160];
    snprintf(summary, sizeof summary, "state %s -> %s%s%s", was ? was : "new", state,
             reason[0] ? ", reason " : "", reason);
    set(ctx, "state", state);
    set(ctx, "state_reason", reason);
    set_int(ctx, "state_since", ctx->ev->ts);
    timeline(ctx, "state.changed", ctx->ev->ts, "scoring", ctx->ev->id, summary);
}

/* R-HEALTH-1 and its at-risk episodes. */
static void recheck_health(apply_ctx_t *ctx) {
    const tp_health_rules_t *rules = &ctx->record->rules.health;
    const tp_event_t *ev = ctx->ev;
    tp_health_inputs_t in = {
        .scores = ctx->scores,
        .nscores = ctx->nscores,
        .open_complaints = (int)json_array_size(ctx->complaints),
        .overdue_tickets = (int)json_array_size(ctx->overdue),
        .last_contact_at = pint(ctx, "last_contact_at", 0),
        .now = ev->ts,
    };
    char why[300] = "";
    int health = tp_health_score(rules, &in, why, sizeof why);
    int at_risk = pint(ctx, "at_risk", 0) == 1;
    set_int(ctx, "health", health);
    set(ctx, "health_why", why);
    tp_apply_t *a = &ctx->apply;
    int k_risk = tp_apply_key(a, "%sat_risk", ctx->shard_prefix);
    switch (tp_health_transition(rules, at_risk, health)) {
    case 1: {
        set(ctx, "at_risk", "1");
        set_int(ctx, "at_risk_since", ev->ts);
        tp_apply_cmd(a, "ZADD", k_risk);
        tp_apply_int(a, health);
        tp_apply_str(a, ev->customer);
        const char *owner = pget(ctx, "owner");
        char text[400];
        snprintf(text, sizeof text, "health %d below %d: %s", health, rules->threshold, why);
        json_t *data = json_pack("{s:i, s:i, s:s, s:s, s:s}", "health", health,
                                 "threshold", rules->threshold, "owner",
                                 owner ? owner : "unassigned", "text", text, "cause",
                                 ev->id);
        derive(ctx, TP_EVENT_CUSTOMER_AT_RISK, ":at_risk", data, text);
        return;
    }
    case -1:
        set(ctx, "at_risk", "0");
        tp_apply_cmd(a, "ZREM", k_risk);
        tp_apply_str(a, ev->customer);
        timeline(ctx, "health.recovered", ev->ts, "scoring", ev->id, why[0] ? why : "healthy");
        return;
    default:
        if (at_risk) { /* keep the at-risk list's health current */
            tp_apply_cmd(a, "ZADD", k_risk);
            tp_apply_int(a, health);
            tp_apply_str(a, ev->customer);
        }
    }
}

/* The customer's next health check: when silence starts to count. */
static void watch_health(apply_ctx_t *ctx, int64_t at) {
    tp_apply_t *a = &ctx->apply;
    tp_apply_cmd(a, "ZADD", tp_apply_key(a, "%shealth:watch", ctx->shard_prefix));
    tp_apply_int(a, at);
    tp_apply_str(a, ctx->ev->customer);
}

static void contact_happened(apply_ctx_t *ctx) {
    if (ctx->ev->ts > pint(ctx, "last_contact_at", 0)) {
        set_int(ctx, "last_contact_at", ctx->ev->ts);
        watch_health(ctx, ctx->ev->ts + ctx->record->rules.health.contact_grace_ms);
    }
    ctx->health_touched = 1;
}

/* ---- by event type ---- */

static int contact_fields(const tp_event_t *ev) {
    static const char *const f[] = {"contact.name", "contact.title", "contact.phone",
                                    "contact.email"};
    int n = 0;
    for (int i = 0; i < 4; i++) {
        const char *v = tp_event_str(ev, f[i]);
        n += v && *v;
    }
    return n;
}

static void on_lead_captured(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    tp_lead_facts_t facts = {
        .industry = tp_event_str(ev, "industry"),
        .size = tp_event_int(ev, "size", -1),
        .contact_fields = contact_fields(ev),
        .known_brand = tp_event_str(ev, "brand") != NULL,
    };
    char why[128];
    int fit = tp_grade_fit(&ctx->record->rules.grade, &facts, why, sizeof why);
    static const char *const copied[][2] = {
        {"company", "company"},         {"contact.name", "contact_name"},
        {"contact.title", "contact_title"}, {"contact.phone", "contact_phone"},
        {"contact.email", "contact_email"}, {"industry", "industry"},
        {"channel", "channel"},         {"need", "need"},
        {"owner", "owner"}};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
        set(ctx, copied[i][1], tp_event_str(ev, copied[i][0]));
    if (tp_event_int(ev, "size", -1) >= 0) set_int(ctx, "size", tp_event_int(ev, "size", 0));
    set(ctx, "fit_reasons", why);
    int u = (int)tp_event_int(ev, "urgency", 0), b = (int)tp_event_int(ev, "budget", 0),
        d = (int)tp_event_int(ev, "decision", 0);
    char reason[200];
    snprintf(reason, sizeof reason,
             "lead captured: urgency %d, budget %d, decision %d, fit %d", u, b, d, fit);
    regrade(ctx, u, b, d, fit, reason);
}

static void on_lead_updated(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    int u0 = (int)pint(ctx, "urgency", 0), b0 = (int)pint(ctx, "budget", 0),
        d0 = (int)pint(ctx, "decision", 0);
    int u = (int)tp_event_int(ev, "urgency", u0), b = (int)tp_event_int(ev, "budget", b0),
        d = (int)tp_event_int(ev, "decision", d0);
    set(ctx, "need", tp_event_str(ev, "need"));
    char reason[400];
    snprintf(reason, sizeof reason, "lead updated: urgency %d->%d, budget %d->%d, "
             "decision %d->%d%s%.200s", u0, u, b0, b, d0, d,
             tp_event_str(ev, "reason") ? ": " : "",
             tp_event_str(ev, "reason") ? tp_event_str(ev, "reason") : "");
    regrade(ctx, u, b, d, (int)pint(ctx, "fit", 0), reason);
}

static void on_contact_logged(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    const char *outcome = tp_event_str(ev, "outcome");
    contact_happened(ctx);
    set(ctx, "last_outcome", outcome);
    if (tp_event_int(ev, "next_contact_at", 0) > 0)
        set_int(ctx, "next_contact_at", tp_event_int(ev, "next_contact_at", 0));
    if (!pget(ctx, "grade")) return; /* not a graded lead: nothing to move */
    int before = (int)pint(ctx, "urgency", 0);
    int urgency = tp_grade_urgency_after(&ctx->record->rules.grade, before, outcome);
    if (urgency == before) return;
    char reason[160];
    snprintf(reason, sizeof reason, "contact %s: urgency %d -> %d", outcome, before, urgency);
    regrade(ctx, urgency, (int)pint(ctx, "budget", 0), (int)pint(ctx, "decision", 0),
            (int)pint(ctx, "fit", 0), reason);
}

static deal_rec_t *deal_find(apply_ctx_t *ctx, const char *id, int create) {
    for (size_t i = 0; i < ctx->ndeals; i++)
        if (strcmp(ctx->deals[i].deal.id, id) == 0) return &ctx->deals[i];
    if (!create || ctx->ndeals == MAX_DEALS) return NULL;
    deal_rec_t *d = &ctx->deals[ctx->ndeals++];
    memset(d, 0, sizeof *d);
    snprintf(d->deal.id, sizeof d->deal.id, "%s", id);
    d->deal.probability = -1;
    snprintf(d->deal.status, sizeof d->deal.status, "open");
    return d;
}

/* Writes the deal and its place in the owner's and team's pipelines. */
static void deal_write(apply_ctx_t *ctx, const deal_rec_t *d, const char *old_owner,
                       const char *old_team) {
    tp_apply_t *a = &ctx->apply;
    const char *ns = ctx->shard_prefix; /* the shard's pipelines */
    const tp_stage_rules_t *rules = &ctx->record->rules.stages;
    int64_t ev_value = tp_deal_expected_value(rules, &d->deal);
    tp_apply_cmd(a, "SADD", tp_apply_key(a, "%sdeals", ctx->prefix));
    tp_apply_str(a, d->deal.id);
    tp_apply_cmd(a, "HSET", tp_apply_key(a, "%sdeal:%s", ctx->prefix, d->deal.id));
    tp_apply_pair(a, "name", d->name);
    tp_apply_pair_int(a, "amount", d->deal.amount);
    tp_apply_pair(a, "currency", d->currency);
    tp_apply_pair_int(a, "stage", d->deal.stage);
    if (d->deal.probability >= 0)
        tp_apply_pair_int(a, "probability", d->deal.probability);
    else
        tp_apply_pair(a, "probability", "");
    tp_apply_pair_int(a, "expected_value", ev_value);
    tp_apply_pair(a, "owner", d->owner);
    tp_apply_pair(a, "team", d->team);
    tp_apply_pair(a, "status", d->deal.status);
    tp_apply_pair(a, "reason", d->deal.reason);
    tp_apply_pair_int(a, "expected_close", d->expected_close);
    tp_apply_pair_int(a, "stage_since", d->stage_since);
    tp_apply_pair_int(a, "created_at", d->created_at);
    tp_apply_pair_int(a, "closed_at", d->deal.closed_at);
    char member[TP_CUSTOMER_MAX + 80];
    snprintf(member, sizeof member, "%s|%s", ctx->ev->customer, d->deal.id);
    int open = strcmp(d->deal.status, "open") == 0;
    struct { const char *kind, *now, *was; } ranks[] = {
        {"owner", d->owner, old_owner}, {"team", d->team, old_team}};
    for (int i = 0; i < 2; i++) {
        if (ranks[i].was && *ranks[i].was && strcmp(ranks[i].was, ranks[i].now) != 0) {
            tp_apply_cmd(a, "ZREM",
                         tp_apply_key(a, "%spipeline:%s:%s", ns, ranks[i].kind, ranks[i].was));
            tp_apply_str(a, member);
        }
        if (!*ranks[i].now) continue;
        tp_apply_cmd(a, open ? "ZADD" : "ZREM",
                     tp_apply_key(a, "%spipeline:%s:%s", ns, ranks[i].kind, ranks[i].now));
        if (open) tp_apply_int(a, ev_value);
        tp_apply_str(a, member);
    }
}

static void on_opportunity_updated(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    deal_rec_t *d = deal_find(ctx, tp_event_str(ev, "opportunity"), 1);
    if (!d) {
        tp_log_warn("customer %s has %d deals already; %s not recorded", ev->customer,
                    MAX_DEALS, tp_event_str(ev, "opportunity"));
        return;
    }
    int is_new = d->created_at == 0;
    int from = is_new ? 0 : d->deal.stage;
    int64_t dwell = is_new || ev->ts < d->stage_since ? 0 : ev->ts - d->stage_since;
    char old_owner[sizeof d->owner], old_team[sizeof d->team];
    snprintf(old_owner, sizeof old_owner, "%s", d->owner);
    snprintf(old_team, sizeof old_team, "%s", d->team);

    if (is_new) d->created_at = ev->ts;
    if (tp_event_str(ev, "name")) snprintf(d->name, sizeof d->name, "%s", tp_event_str(ev, "name"));
    if (tp_event_str(ev, "currency"))
        snprintf(d->currency, sizeof d->currency, "%s", tp_event_str(ev, "currency"));
    d->deal.amount = tp_event_int(ev, "amount", d->deal.amount);
    d->deal.probability = (int)tp_event_int(ev, "probability", d->deal.probability);
    d->expected_close = tp_event_int(ev, "expected_close", d->expected_close);
    /* owner and team: the event's, else the deal's, else the account's */
    const char *owner = tp_event_str(ev, "owner");
    if (!owner) owner = old_owner[0] ? old_owner : pget(ctx, "owner");
    snprintf(d->owner, sizeof d->owner, "%s", owner ? owner : "unassigned");
    const char *team = tp_event_str(ev, "team");
    if (!team) team = old_team[0] ? old_team : pget(ctx, "team");
    snprintf(d->team, sizeof d->team, "%s", team ? team : "");
    int to = (int)tp_event_int(ev, "stage", d->deal.stage);
    d->deal.stage = to;
    if (is_new || to != from) d->stage_since = ev->ts;
    deal_write(ctx, d, old_owner, old_team);
    restate(ctx);

    if (is_new || to != from) { /* R-STAGE-1: every stage change, with its dwell */
        json_t *data = json_pack("{s:s, s:s, s:i, s:i, s:I, s:s, s:s, s:s}", "opportunity",
                                 d->deal.id, "name", d->name, "from", from, "to", to,
                                 "dwell_ms", (json_int_t)dwell, "owner", d->owner, "state",
                                 pget(ctx, "state"), "cause", ev->id);
        char suffix[80], summary[300];
        snprintf(suffix, sizeof suffix, ":stage:%.64s", d->deal.id);
        snprintf(summary, sizeof summary, "deal %s stage %d -> %d after %lld h", d->deal.id,
                 from, to, (long long)(dwell / 3600000));
        derive(ctx, TP_EVENT_STAGE_CHANGED, suffix, data, summary);
    }
}

static void on_deal_closed(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    deal_rec_t *d = deal_find(ctx, tp_event_str(ev, "opportunity"), 1);
    if (!d) return;
    if (d->created_at == 0) { /* closed without ever being reported */
        d->created_at = d->stage_since = ev->ts;
        d->deal.stage = 1;
        const char *owner = pget(ctx, "owner");
        snprintf(d->owner, sizeof d->owner, "%s", owner ? owner : "unassigned");
    }
    snprintf(d->deal.status, sizeof d->deal.status, "%s", tp_event_str(ev, "outcome"));
    const char *reason = tp_event_str(ev, "reason");
    snprintf(d->deal.reason, sizeof d->deal.reason, "%s", reason ? reason : "");
    d->deal.closed_at = ev->ts;
    deal_write(ctx, d, NULL, NULL);
    restate(ctx);
}

static void on_customer_updated(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    static const char *const strings[] = {
        "name", "level", "address", "legal_rep", "business_state", "aftersales_state",
        "hardware", "notes", "owner", "team", "manager", "relationship", "growth",
        "need_level"};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
        set(ctx, strings[i], tp_event_str(ev, strings[i]));
    if (tp_event_int(ev, "revenue_tier", 0))
        set_int(ctx, "revenue_tier", tp_event_int(ev, "revenue_tier", 0));
    static const char *const lists[] = {"modules", "key_people", "special_days"};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        json_t *v = json_object_get(ev->data, lists[i]);
        if (!json_is_array(v)) continue;
        char *text = json_dumps(v, JSON_COMPACT);
        set(ctx, lists[i], text);
        free(text);
    }
    if (tp_event_str(ev, "churned")) {
        set(ctx, "churn_reason", tp_event_str(ev, "churned"));
        restate(ctx);
    }
}

/* Queues a link of a merge: HSET <key> <field> <this customer>. */
static void link_add(apply_ctx_t *ctx, const char *key, const char *field) {
    if (ctx->nlinks == MAX_LINKS || !key[0]) return;
    snprintf(ctx->links[ctx->nlinks].key, LINK_KEY_MAX, "%s", key);
    snprintf(ctx->links[ctx->nlinks].field, sizeof ctx->links[ctx->nlinks].field, "%s",
             field);
    ctx->nlinks++;
}

/* Two records are one customer: `from` joins this one. Both timelines stay
 * (the record lists merged_from; reads merge them); what this record lacks
 * it takes from `from`; numbers and addresses of `from` now find this one. */
static void on_customer_merged(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    const char *from = tp_event_str(ev, "from");
    const char *ns = tp_store_ns(ctx->record->store);
    if (strcmp(from, ev->customer) == 0 || !ctx->from || json_object_size(ctx->from) == 0) {
        tp_log_info("merge %s: nothing to merge from %s", ev->id, from);
        return;
    }
    json_t *list = json_loads(pget(ctx, "merged_from") ? pget(ctx, "merged_from") : "[]",
                              0, NULL);
    if (!json_is_array(list)) {
        json_decref(list);
        list = json_array();
    }
    if (!has_member(list, from)) json_array_append_new(list, json_string(from));
    char *text = json_dumps(list, JSON_COMPACT);
    set(ctx, "merged_from", text);
    free(text);
    json_decref(list);
    const char *key;
    json_t *v;
    json_object_foreach(ctx->from, key, v) {
        if (!strcmp(key, "ver") || !strcmp(key, "merged_into") || !strcmp(key, "merged_from"))
            continue;
        if (!pget(ctx, key) || !*pget(ctx, key)) set(ctx, key, json_string_value(v));
    }
    /* the other record and the contact indexes lie in other slots: linked
     * before the apply (apply_event) */
    char link[LINK_KEY_MAX] = "";
    tp_key_customer(link, sizeof link, ns, from, "profile");
    link_add(ctx, link, "merged_into");
    char norm[300];
    const char *phone = json_string_value(json_object_get(ctx->from, "contact_phone"));
    if (phone && tp_ident_phone(phone, ctx->record->rules.default_cc, norm, sizeof norm) == 0 &&
        tp_key(link, sizeof link, ns, "{j}:phone") > 0)
        link_add(ctx, link, norm);
    const char *email = json_string_value(json_object_get(ctx->from, "contact_email"));
    if (email && tp_ident_email(email, norm, sizeof norm) == 0 &&
        tp_key(link, sizeof link, ns, "{j}:email") > 0)
        link_add(ctx, link, norm);
    /* the event's own timeline line says what was merged (summarize) */
}

static void on_survey_answered(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    const tp_health_rules_t *rules = &ctx->record->rules.health;
    int score = (int)tp_event_int(ev, "score", 3);
    tp_apply_t *a = &ctx->apply;
    int k_scores = tp_apply_key(a, "%sscores", ctx->prefix);
    tp_apply_cmd(a, "LPUSH", k_scores);
    tp_apply_int(a, score);
    tp_apply_cmd(a, "LTRIM", k_scores);
    tp_apply_int(a, 0);
    tp_apply_int(a, MAX_SCORES - 1);
    memmove(ctx->scores + 1, ctx->scores,
            (MAX_SCORES - 1) * sizeof *ctx->scores); /* newest first */
    ctx->scores[0] = score;
    if (ctx->nscores < MAX_SCORES) ctx->nscores++;
    size_t kept = ctx->nscores < (size_t)rules->scores_kept ? ctx->nscores
                                                             : (size_t)rules->scores_kept;
    int sum = 0;
    for (size_t i = 0; i < kept; i++) sum += ctx->scores[i];
    char avg[16];
    snprintf(avg, sizeof avg, "%.1f", kept ? (double)sum / (double)kept : 0.0);
    set_int(ctx, "satisfaction_last", score);
    set(ctx, "satisfaction_avg", avg);
    set(ctx, "follow_up", score < rules->follow_up_below ? "1" : "0"); /* R-SAT-1 */
    ctx->health_touched = 1;
}

/* Adds or removes a ticket from one of the health sets. */
static void ticket_mark(apply_ctx_t *ctx, json_t *set_, const char *which,
                        const char *ticket, int add) {
    if (!ticket || has_member(set_, ticket) == add) return;
    tp_apply_t *a = &ctx->apply;
    tp_apply_cmd(a, add ? "SADD" : "SREM", tp_apply_key(a, "%s%s", ctx->prefix, which));
    tp_apply_str(a, ticket);
    if (add) {
        json_array_append_new(set_, json_string(ticket));
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(set_, i, v) if (strcmp(json_string_value(v), ticket) == 0) {
            json_array_remove(set_, i);
            break;
        }
    }
    ctx->health_touched = 1;
}

static void on_ticket_event(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    const char *ticket = tp_event_str(ev, "ticket");
    if (ev->type == TP_EVENT_TICKET_OPENED) {
        const char *category = tp_event_str(ev, "category");
        if (category && strcmp(category, "complaint") == 0)
            ticket_mark(ctx, ctx->complaints, "complaints", ticket, 1);
    } else if (ev->type == TP_EVENT_SLA_BREACHED) {
        ticket_mark(ctx, ctx->overdue, "overdue", ticket, 1);
    } else { /* ticket.updated: settled tickets leave both sets */
        const char *status = tp_event_str(ev, "status");
        if (status && (!strcmp(status, "resolved") || !strcmp(status, "closed"))) {
            ticket_mark(ctx, ctx->complaints, "complaints", ticket, 0);
            ticket_mark(ctx, ctx->overdue, "overdue", ticket, 0);
        }
    }
}

/* ---- the timeline line of the event itself ---- */

static void summarize(const tp_event_t *ev, char *out, size_t len) {
#define F(p) (tp_event_str(ev, p) ? tp_event_str(ev, p) : "")
    switch (ev->type) {
    case TP_EVENT_LEAD_CAPTURED:
        snprintf(out, len, "lead %s via %s, owner %s", F("company"),
                 tp_event_str(ev, "channel") ? F("channel") : "unknown", F("owner"));
        return;
    case TP_EVENT_CONTACT_LOGGED:
        snprintf(out, len, "%s %s: %s%s%.160s", F("direction"), F("channel"), F("outcome"),
                 tp_event_str(ev, "summary") ? " - " : "", F("summary"));
        return;
    case TP_EVENT_CALL_STARTED:
    case TP_EVENT_CALL_ENDED:
        snprintf(out, len, "%s call %s -> %s%s%s", F("direction"), F("from"), F("to"),
                 tp_event_str(ev, "agent") ? ", agent " : "", F("agent"));
        return;
    case TP_EVENT_REMINDER_DUE:
        snprintf(out, len, "%s for %s: %.160s", F("rule"), F("owner"), F("text"));
        return;
    case TP_EVENT_SLA_BREACHED:
        snprintf(out, len, "ticket %s missed %s (%s)", F("ticket"), F("target"),
                 F("priority"));
        return;
    case TP_EVENT_NOTIFICATION_SENT:
    case TP_EVENT_NOTIFICATION_FAILED:
        snprintf(out, len, "%s to %s via %s",
                 ev->type == TP_EVENT_NOTIFICATION_SENT ? "delivered" : "failed",
                 F("recipient"), F("channel"));
        return;
    case TP_EVENT_OPPORTUNITY_UPDATED:
        snprintf(out, len, "deal %s: stage %lld, amount %lld %s", F("opportunity"),
                 (long long)tp_event_int(ev, "stage", 0),
                 (long long)tp_event_int(ev, "amount", 0), F("currency"));
        return;
    case TP_EVENT_DEAL_CLOSED:
        snprintf(out, len, "deal %s %s%s%s", F("opportunity"), F("outcome"),
                 tp_event_str(ev, "reason") ? ": " : "", F("reason"));
        return;
    case TP_EVENT_SURVEY_ANSWERED:
        snprintf(out, len, "satisfaction %lld/5%s%.160s",
                 (long long)tp_event_int(ev, "score", 0),
                 tp_event_str(ev, "comment") ? ": " : "", F("comment"));
        return;
    case TP_EVENT_TICKET_OPENED:
        snprintf(out, len, "ticket %s opened (%s, %s): %.160s", F("ticket"), F("category"),
                 F("priority"), F("title"));
        return;
    case TP_EVENT_TICKET_UPDATED:
        snprintf(out, len, "ticket %s %s by %s%s%s", F("ticket"), F("action"), F("agent"),
                 tp_event_str(ev, "status") ? ": " : "", F("status"));
        return;
    case TP_EVENT_CUSTOMER_MERGED:
        snprintf(out, len, "merged %s into this record%s%.160s", F("from"),
                 tp_event_str(ev, "reason") ? ": " : "", F("reason"));
        return;
    default: {
        const char *text = tp_event_str(ev, "reason");
        if (!text) text = tp_event_str(ev, "text");
        if (!text) text = tp_event_str(ev, "title");
        snprintf(out, len, "%.200s", text ? text : "");
    }
    }
#undef F
}

/* ---- the apply ---- */

static void read_customer(apply_ctx_t *ctx);

static void applied_cb(tp_store_t *store, redisReply *r, void *arg) {
    apply_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("scoring apply of %s failed: %s", ctx->ev->id, r->str);
        finish(ctx, -1);
        return;
    }
    long long outcome = r->element[0]->integer;
    if (outcome == TP_APPLY_STALE) { /* the record moved under us */
        if (++ctx->attempts >= MAX_ATTEMPTS) {
            tp_log_warn("event %s: record of %s kept changing; left to reconcile",
                        ctx->ev->id, ctx->ev->customer);
            finish(ctx, -1);
            return;
        }
        ctx_reset(ctx);
        read_customer(ctx);
        return;
    }
    if (outcome == TP_APPLY_DONE)
        for (int i = 0; i < ctx->nderived; i++)
            tp_emitter_send_of(ctx->record->emitter, ctx->ev->customer,
                               ctx->derived[i].data, ctx->derived[i].size);
    if (outcome == TP_APPLY_DUPLICATE && ctx->job) tp_consumer_job_duplicate(ctx->job);
    finish(ctx, 0);
}

static void links_settle(apply_ctx_t *ctx);

static void link_cb(tp_store_t *store, redisReply *r, void *arg) {
    apply_ctx_t *ctx = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) tp_log_error("merge %s: link: %s", ctx->ev->id, r->str);
        ctx->links_failed = 1;
    }
    links_settle(ctx);
}

/* One link (or the hold) is answered: the apply follows the last. */
static void links_settle(apply_ctx_t *ctx) {
    if (--ctx->links_waiting) return;
    if (ctx->links_failed ||
        tp_apply_send(&ctx->apply, ctx->record->store, applied_cb, ctx) < 0)
        finish(ctx, -1);
}

/* A merge's links, each one key (one slot), then the apply. */
static void links_write(apply_ctx_t *ctx) {
    ctx->links_waiting = 1; /* held while sending */
    for (int i = 0; i < ctx->nlinks && !ctx->links_failed; i++) {
        const char *argv[4] = {"HSET", ctx->links[i].key, ctx->links[i].field,
                               ctx->ev->customer};
        size_t lens[4] = {4, strlen(argv[1]), strlen(argv[2]), strlen(argv[3])};
        ctx->links_waiting++;
        if (tp_store_command_argv(ctx->record->store, link_cb, ctx, 4, argv, lens) < 0) {
            ctx->links_waiting--;
            ctx->links_failed = 1;
        }
    }
    links_settle(ctx); /* the hold */
}

static void apply_event(apply_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    tp_record_t *self = ctx->record;
    char profile_key[TP_CUSTOMER_MAX + 80];
    snprintf(profile_key, sizeof profile_key, "%sprofile", ctx->prefix);
    const char *ver = pget(ctx, "ver");
    tp_apply_init(&ctx->apply, ctx->done_key, ctx->done_ttl, profile_key,
                  ver ? ver : "0");
    ctx->k_profile = tp_apply_key(&ctx->apply, "%s", profile_key);
    ctx->k_timeline = tp_apply_key(&ctx->apply, "%stimeline", ctx->prefix);
    ctx->changes = json_object();

    if (!ctx->job) { /* the sweep's daily check: health only */
        if (!pget(ctx, "created_at")) { /* the record is gone: nothing to do */
            finish(ctx, 0);
            return;
        }
        recheck_health(ctx);
        /* again a silence "day" later: health changes no faster */
        watch_health(ctx, ev->ts + self->rules.health.day_ms);
        set_int(ctx, "ver", (ver ? atoll(ver) : 0) + 1);
        goto write_profile;
    }
    char summary[400];
    summarize(ev, summary, sizeof summary);
    timeline(ctx, tp_proto_type_name(ev->type), ev->ts, ev->src, ev->id, summary);
    if (!pget(ctx, "created_at")) {
        set_int(ctx, "created_at", ev->ts);
        set(ctx, "state", "potential"); /* R-STAGE-2: every new customer */
    }
    switch (ev->type) {
    case TP_EVENT_LEAD_CAPTURED: on_lead_captured(ctx); break;
    case TP_EVENT_LEAD_UPDATED: on_lead_updated(ctx); break;
    case TP_EVENT_CONTACT_LOGGED: on_contact_logged(ctx); break;
    case TP_EVENT_CALL_ENDED: contact_happened(ctx); break;
    case TP_EVENT_OPPORTUNITY_UPDATED: on_opportunity_updated(ctx); break;
    case TP_EVENT_DEAL_CLOSED: on_deal_closed(ctx); break;
    case TP_EVENT_CUSTOMER_UPDATED: on_customer_updated(ctx); break;
    case TP_EVENT_CUSTOMER_MERGED: on_customer_merged(ctx); break;
    case TP_EVENT_SURVEY_ANSWERED: on_survey_answered(ctx); break;
    case TP_EVENT_TICKET_OPENED:
    case TP_EVENT_TICKET_UPDATED:
    case TP_EVENT_SLA_BREACHED: on_ticket_event(ctx); break;
    default: break; /* the timeline entry is the whole effect */
    }
    if (ctx->health_touched) recheck_health(ctx);
    if (ev->ts > pint(ctx, "updated_at", 0)) set_int(ctx, "updated_at", ev->ts);
    set_int(ctx, "ver", (ver ? atoll(ver) : 0) + 1);
write_profile:
    tp_apply_cmd(&ctx->apply, "HSET", ctx->k_profile);
    const char *field;
    json_t *value;
    json_object_foreach(ctx->changes, field, value)
        tp_apply_pair(&ctx->apply, field, json_string_value(value));
    if (ctx->nlinks) {
        links_write(ctx);
        return;
    }
    if (tp_apply_send(&ctx->apply, self->store, applied_cb, ctx) < 0) finish(ctx, -1);
}

static void from_read_cb(tp_store_t *store, redisReply *r, void *arg) {
    apply_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("scoring read: %s", r->str);
        finish(ctx, -1);
        return;
    }
    json_decref(ctx->from);
    ctx->from = flat_to_object(r);
    apply_event(ctx);
}

static void customer_read_cb(tp_store_t *store, redisReply *r, void *arg) {
    apply_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("scoring read: %s", r->str);
        finish(ctx, -1);
        return;
    }
    ctx->profile = flat_to_object(r->element[0]);
    redisReply *deals = r->element[1];
    for (size_t i = 0; i + 1 < deals->elements && ctx->ndeals < MAX_DEALS; i += 2) {
        json_t *h = flat_to_object(deals->element[i + 1]);
        if (json_object_size(h))
            deal_from_hash(&ctx->deals[ctx->ndeals++], deals->element[i]->str, h);
        json_decref(h);
    }
    ctx->complaints = members(r->element[2]);
    ctx->overdue = members(r->element[3]);
    redisReply *scores = r->element[4];
    for (size_t i = 0; i < scores->elements && ctx->nscores < MAX_SCORES; i++)
        if (scores->element[i]->type == REDIS_REPLY_STRING)
            ctx->scores[ctx->nscores++] = atoi(scores->element[i]->str);
    const tp_event_t *ev = ctx->ev;
    const char *from = ev->type == TP_EVENT_CUSTOMER_MERGED ? tp_event_str(ev, "from") : NULL;
    char key[LINK_KEY_MAX];
    if (from && tp_key_customer(key, sizeof key, tp_store_ns(ctx->record->store), from,
                                "profile") > 0) { /* another shard, on its own */
        if (tp_store_command(ctx->record->store, from_read_cb, ctx, "HGETALL %s", key) < 0)
            finish(ctx, -1);
        return;
    }
    ctx->from = json_object();
    apply_event(ctx);
}

static void read_customer(apply_ctx_t *ctx) {
    tp_record_t *self = ctx->record;
    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_addf(&a, "%sprofile", ctx->prefix);
    tp_argv_addf(&a, "%sdeals", ctx->prefix);
    tp_argv_addf(&a, "%scomplaints", ctx->prefix);
    tp_argv_addf(&a, "%soverdue", ctx->prefix);
    tp_argv_addf(&a, "%sscores", ctx->prefix);
    tp_argv_addf(&a, "%sdeal:", ctx->prefix);
    tp_argv_add_int(&a, MAX_SCORES);
    int rc = tp_store_eval(self->store, self->read_script, customer_read_cb, ctx, 5,
                           (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
    if (rc < 0) finish(ctx, -1);
}

/* The customer's key prefix and its shard's. */
static void customer_prefixes(apply_ctx_t *ctx, const char *customer) {
    const char *ns = tp_store_ns(ctx->record->store);
    tp_key_customer(ctx->prefix, sizeof ctx->prefix, ns, customer, "%s", "");
    tp_key_shard_key(ctx->shard_prefix, sizeof ctx->shard_prefix, ns,
                     tp_key_shard(customer), "%s", "");
}

void tp_record_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                     const tp_event_t *ev, void *arg) {
    tp_record_t *self = arg;
    apply_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->record = self;
    ctx->job = job;
    ctx->ev = ev;
    snprintf(ctx->done_key, sizeof ctx->done_key, "%s", tp_consumer_job_done_key(job));
    snprintf(ctx->done_ttl, sizeof ctx->done_ttl, "%s", tp_consumer_done_ttl(consumer));
    customer_prefixes(ctx, ev->customer);
    read_customer(ctx);
}

/* ---- the health sweep (R-HEALTH-1: silence counts without any event) ---- */

#define SWEEP_BATCH "200"

static void check_health(tp_record_t *self, const char *customer, int64_t now) {
    apply_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->record = self;
    self->sweeping++;
    tp_event_t *ev = &ctx->check;
    tp_event_init(ev);
    ev->v = TP_PROTO_VERSION;
    ev->ts = now;
    snprintf(ev->src, sizeof ev->src, "scoring");
    snprintf(ev->customer, sizeof ev->customer, "%s", customer);
    /* one check per customer and silence "day": its id is its done mark */
    long long day = (long long)(now / self->rules.health.day_ms);
    int n = snprintf(ev->id, sizeof ev->id, "health-%lld-%s", day, customer);
    if (n < 0 || (size_t)n >= sizeof ev->id - 12) /* room for derived suffixes */
        snprintf(ev->id, sizeof ev->id, "health-%lld-h%016llx", day,
                 (unsigned long long)tp_id_hash(customer, strlen(customer)));
    ctx->ev = ev;
    const char *ns = tp_store_ns(self->store);
    tp_key_customer(ctx->done_key, sizeof ctx->done_key, ns, customer, "done:scoring:%s",
                    ev->id);
    snprintf(ctx->done_ttl, sizeof ctx->done_ttl, "%lld", (long long)self->done_ttl_s);
    customer_prefixes(ctx, customer);
    read_customer(ctx);
}

static void due_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_record_t *self = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    int64_t now = tp_now_ms();
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i]->len <= TP_CUSTOMER_MAX)
            check_health(self, r->element[i]->str, now);
}

static void sweep_timer_cb(uv_timer_t *t) {
    tp_record_t *self = t->data;
    if (self->sweeping || !tp_store_connected(self->store)) return;
    char key[128], now[24];
    snprintf(now, sizeof now, "%lld", (long long)tp_now_ms());
    for (int shard = 0; shard < TP_SHARDS; shard++) { /* each shard's watch */
        tp_key_shard_key(key, sizeof key, tp_store_ns(self->store), shard,
                         "health:watch");
        tp_store_command(self->store, due_cb, self,
                         "ZRANGEBYSCORE %s -inf %s LIMIT 0 %s", key, now, SWEEP_BATCH);
    }
}

int tp_record_sweep_start(tp_record_t *self, uv_loop_t *loop, int64_t interval_ms,
                          int64_t done_ttl_s) {
    self->done_ttl_s = done_ttl_s > 0 ? done_ttl_s : 30 * 86400;
    uv_timer_init(loop, &self->sweep_timer);
    self->sweep_timer.data = self;
    return uv_timer_start(&self->sweep_timer, sweep_timer_cb, (uint64_t)interval_ms,
                          (uint64_t)interval_ms);
}
