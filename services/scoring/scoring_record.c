/* scoring_record.c: events to the customer record.
 *
 * Every event: a timeline entry. lead.captured: the profile and a grade.
 * contact.logged: last contact, and a regrade when the outcome moves the
 * urgency (R-GRADE-3). A new or changed grade derives lead.graded. */
#include "scoring_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS done, profile, timeline, outbox.
 * ARGV ttl, timeline max, expected version ("" = any), now, derived event
 * ("" = none), n, then n profile field/value pairs, then the timeline
 * entry's field/value pairs. Returns {0} already done, {2} the record
 * changed meanwhile (read again), {1} applied. */
static const char APPLY_LUA[] =
    TP_LUA_DONE_CHECK
    "if ARGV[3] ~= '' and (redis.call('HGET', KEYS[2], 'ver') or '0') ~= ARGV[3]\n"
    "then return {2} end\n"
    "local n = tonumber(ARGV[6])\n"
    "if n > 0 then redis.call('HSET', KEYS[2], unpack(ARGV, 7, 6 + 2 * n)) end\n"
    "if #ARGV > 6 + 2 * n then\n"
    "  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',\n"
    "             unpack(ARGV, 7 + 2 * n))\n"
    "end\n"
    "if ARGV[5] ~= '' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5]) end\n"
    TP_LUA_DONE_MARK
    "return {1}\n";

#define READ_FIELDS "ver", "grade", "urgency", "budget", "decision", "fit", "owner"
enum { F_VER, F_GRADE, F_URGENCY, F_BUDGET, F_DECISION, F_FIT, F_OWNER, F_COUNT };
#define MAX_ATTEMPTS 8

struct tp_record {
    tp_store_t *store;
    tp_emitter_t *emitter;
    tp_grade_rules_t rules;
    int apply_script;
    int64_t timeline_max;
};

typedef struct apply_ctx {
    tp_record_t *record;
    tp_consumer_t *consumer;
    tp_consumer_job_t *job;
    const tp_event_t *ev;
    int attempts;
    char profile_key[TP_CUSTOMER_MAX + 64];
    char timeline_key[TP_CUSTOMER_MAX + 64];
    msgpack_sbuffer derived;
} apply_ctx_t;

tp_record_t *tp_record_new(tp_store_t *store, tp_emitter_t *emitter,
                           const tp_grade_rules_t *rules, tp_config_t *cfg) {
    tp_record_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    self->rules = *rules;
    self->timeline_max = tp_config_int(cfg, "scoring", "timeline_max", 1000, 10,
                                       1000000);
    self->apply_script = tp_store_script(store, "scoring_apply", APPLY_LUA);
    if (self->apply_script < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void tp_record_destroy(tp_record_t **self_p) {
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

int tp_record_tag(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    (void)arg;
    if (!ev->customer[0]) return -1;
    int n = snprintf(tag, len, "c:%s", ev->customer);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* One line for the timeline: what happened, in the event's own words. */
static void summarize(const tp_event_t *ev, char *out, size_t len) {
    const char *text = NULL;
    switch (ev->type) {
    case TP_EVENT_LEAD_CAPTURED:
        snprintf(out, len, "lead %s via %s, owner %s",
                 tp_event_str(ev, "company") ? tp_event_str(ev, "company") : "",
                 tp_event_str(ev, "channel") ? tp_event_str(ev, "channel") : "unknown",
                 tp_event_str(ev, "owner"));
        return;
    case TP_EVENT_CONTACT_LOGGED:
        snprintf(out, len, "%s %s: %s%s%.160s", tp_event_str(ev, "direction"),
                 tp_event_str(ev, "channel"), tp_event_str(ev, "outcome"),
                 tp_event_str(ev, "summary") ? " - " : "",
                 tp_event_str(ev, "summary") ? tp_event_str(ev, "summary") : "");
        return;
    case TP_EVENT_LEAD_GRADED:
        snprintf(out, len, "graded %s (score %lld, fit %lld): %.160s",
                 tp_event_str(ev, "grade"), (long long)tp_event_int(ev, "score", 0),
                 (long long)tp_event_int(ev, "fit", 0),
                 tp_event_str(ev, "reason") ? tp_event_str(ev, "reason") : "");
        return;
    case TP_EVENT_REMINDER_DUE:
    case TP_EVENT_SLA_BREACHED:
        text = tp_event_str(ev, "text") ? tp_event_str(ev, "text")
                                        : tp_event_str(ev, "title");
        snprintf(out, len, "%s for %s%s%.160s",
                 tp_event_str(ev, "rule") ? tp_event_str(ev, "rule")
                                          : tp_event_str(ev, "target"),
                 tp_event_str(ev, "owner"), text ? ": " : "", text ? text : "");
        return;
    case TP_EVENT_NOTIFICATION_SENT:
    case TP_EVENT_NOTIFICATION_FAILED:
        snprintf(out, len, "%s to %s via %s",
                 ev->type == TP_EVENT_NOTIFICATION_SENT ? "delivered" : "failed",
                 tp_event_str(ev, "recipient"), tp_event_str(ev, "channel"));
        return;
    default:
        text = tp_event_str(ev, "title");
        if (!text) text = tp_event_str(ev, "text");
        if (!text) text = tp_event_str(ev, "note");
        snprintf(out, len, "%.200s", text ? text : "");
    }
}

static void ctx_free(apply_ctx_t *ctx) {
    msgpack_sbuffer_destroy(&ctx->derived);
    free(ctx);
}

static void finish(apply_ctx_t *ctx, int status) {
    tp_consumer_job_done(ctx->job, status);
    ctx_free(ctx);
}

static void read_record(apply_ctx_t *ctx);

static void applied_cb(tp_store_t *store, redisReply *r, void *arg) {
    apply_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("scoring apply of %s failed: %s", ctx->ev->id, r->str);
        finish(ctx, -1);
        return;
    }
    long long status = r->element[0]->integer;
    if (status == 2) { /* the record moved under us: read it again */
        if (++ctx->attempts >= MAX_ATTEMPTS) {
            tp_log_warn("event %s: record of %s kept changing; left to "
                        "reconcile", ctx->ev->id, ctx->ev->customer);
            finish(ctx, -1);
            return;
        }
        msgpack_sbuffer_destroy(&ctx->derived);
        msgpack_sbuffer_init(&ctx->derived);
        read_record(ctx);
        return;
    }
    if (status == 1 && ctx->derived.size)
        tp_emitter_send(ctx->record->emitter, ctx->derived.data, ctx->derived.size);
    finish(ctx, 0);
}

/* Sends the apply script; `profile` holds the profile pairs already. */
static void send_apply(apply_ctx_t *ctx, tp_argv_t *profile, const char *ver) {
    tp_record_t *self = ctx->record;
    const tp_event_t *ev = ctx->ev;
    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_add(&a, tp_consumer_job_done_key(ctx->job), (size_t)-1);
    tp_argv_add(&a, ctx->profile_key, (size_t)-1);
    tp_argv_add(&a, ctx->timeline_key, (size_t)-1);
    tp_argv_add(&a, tp_emitter_outbox(self->emitter), (size_t)-1);
    tp_argv_add(&a, tp_consumer_done_ttl(ctx->consumer), (size_t)-1);
    tp_argv_add_int(&a, self->timeline_max);
    tp_argv_add(&a, ver, (size_t)-1);
    tp_argv_add_int(&a, tp_now_ms());
    tp_argv_add(&a, ctx->derived.size ? ctx->derived.data : "", ctx->derived.size);
    tp_argv_add_int(&a, (int64_t)(profile->n / 2));
    for (size_t i = 0; i < profile->n; i++)
        tp_argv_add(&a, profile->v[i], profile->len[i]);
    char summary[320];
    summarize(ev, summary, sizeof summary);
    tp_argv_add(&a, "type", 4);
    tp_argv_add(&a, tp_proto_type_name(ev->type), (size_t)-1);
    tp_argv_add(&a, "ts", 2);
    tp_argv_add_int(&a, ev->ts);
    tp_argv_add(&a, "src", 3);
    tp_argv_add(&a, ev->src, (size_t)-1);
    tp_argv_add(&a, "event", 5);
    tp_argv_add(&a, ev->id, (size_t)-1);
    if (ev->actor[0]) {
        tp_argv_add(&a, "actor", 5);
        tp_argv_add(&a, ev->actor, (size_t)-1);
    }
    tp_argv_add(&a, "summary", 7);
    tp_argv_add(&a, summary, (size_t)-1);
    int rc = tp_store_eval(self->store, self->apply_script, applied_cb, ctx, 4,
                           (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
    if (rc < 0) finish(ctx, -1);
}

static void pair(tp_argv_t *p, const char *field, const char *value) {
    tp_argv_add(p, field, (size_t)-1);
    tp_argv_add(p, value ? value : "", (size_t)-1);
}

static int contact_fields(const tp_event_t *ev) {
    static const char *const f[] = {"contact.name", "contact.title",
                                    "contact.phone", "contact.email"};
    int n = 0;
    for (int i = 0; i < 4; i++) {
        const char *v = tp_event_str(ev, f[i]);
        n += v && *v;
    }
    return n;
}

/* The record as read: grade it, write it back under its version. */
static void record_read_cb(tp_store_t *store, redisReply *r, void *arg) {
    apply_ctx_t *ctx = arg;
    tp_record_t *self = ctx->record;
    const tp_event_t *ev = ctx->ev;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != F_COUNT) {
        finish(ctx, -1);
        return;
    }
    const char *got[F_COUNT];
    for (int i = 0; i < F_COUNT; i++)
        got[i] = r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
    long long ver = got[F_VER] ? atoll(got[F_VER]) : 0;
    char ver_text[24], new_ver[24];
    snprintf(ver_text, sizeof ver_text, "%lld", ver);
    snprintf(new_ver, sizeof new_ver, "%lld", ver + 1);

    tp_argv_t p;
    tp_argv_init(&p);
    int grading = 0, urgency = 0, budget = 0, decision = 0, fit = 0;
    char reason[300] = "", why[128] = "", grade[2] = ""; /* borrowed by p */
    const char *owner = got[F_OWNER];

    if (ev->type == TP_EVENT_LEAD_CAPTURED) {
        grading = 1;
        urgency = (int)tp_event_int(ev, "urgency", 0);
        budget = (int)tp_event_int(ev, "budget", 0);
        decision = (int)tp_event_int(ev, "decision", 0);
        tp_lead_facts_t facts = {
            .industry = tp_event_str(ev, "industry"),
            .size = tp_event_int(ev, "size", -1),
            .contact_fields = contact_fields(ev),
            .known_brand = tp_event_str(ev, "brand") != NULL,
        };
        fit = tp_grade_fit(&self->rules, &facts, why, sizeof why);
        owner = tp_event_str(ev, "owner");
        snprintf(reason, sizeof reason,
                 "lead captured: urgency %d, budget %d, decision %d, fit %d",
                 urgency, budget, decision, fit);
        pair(&p, "company", tp_event_str(ev, "company"));
        pair(&p, "contact_name", tp_event_str(ev, "contact.name"));
        pair(&p, "contact_title", tp_event_str(ev, "contact.title"));
        pair(&p, "contact_phone", tp_event_str(ev, "contact.phone"));
        pair(&p, "contact_email", tp_event_str(ev, "contact.email"));
        pair(&p, "industry", tp_event_str(ev, "industry"));
        tp_argv_add(&p, "size", 4);
        tp_argv_add_int(&p, tp_event_int(ev, "size", 0));
        pair(&p, "channel", tp_event_str(ev, "channel"));
        pair(&p, "need", tp_event_str(ev, "need"));
        pair(&p, "owner", owner);
        pair(&p, "fit_reasons", why);
        if (ver == 0) {
            pair(&p, "state", "potential");
            tp_argv_add(&p, "created_at", 10);
            tp_argv_add_int(&p, ev->ts);
        }
    } else if (ev->type == TP_EVENT_CONTACT_LOGGED) {
        const char *outcome = tp_event_str(ev, "outcome");
        tp_argv_add(&p, "last_contact_at", 15);
        tp_argv_add_int(&p, ev->ts);
        pair(&p, "last_outcome", outcome);
        if (got[F_URGENCY] && got[F_GRADE]) { /* a graded lead: regrade */
            int before = atoi(got[F_URGENCY]);
            urgency = tp_grade_urgency_after(&self->rules, before, outcome);
            budget = got[F_BUDGET] ? atoi(got[F_BUDGET]) : 0;
            decision = got[F_DECISION] ? atoi(got[F_DECISION]) : 0;
            fit = got[F_FIT] ? atoi(got[F_FIT]) : 0;
            grading = urgency != before;
            snprintf(reason, sizeof reason, "contact %s: urgency %d -> %d",
                     outcome, before, urgency);
        }
    }
    if (grading) {
        int score = tp_grade_score(&self->rules, urgency, budget, decision, fit);
        grade[0] = tp_grade_of(&self->rules, score, urgency);
        tp_argv_add(&p, "urgency", 7);
        tp_argv_add_int(&p, urgency);
        tp_argv_add(&p, "budget", 6);
        tp_argv_add_int(&p, budget);
        tp_argv_add(&p, "decision", 8);
        tp_argv_add_int(&p, decision);
        tp_argv_add(&p, "fit", 3);
        tp_argv_add_int(&p, fit);
        tp_argv_add(&p, "score", 5);
        tp_argv_add_int(&p, score);
        pair(&p, "grade", grade);
        pair(&p, "grade_reason", reason);
        tp_argv_add(&p, "graded_at", 9);
        tp_argv_add_int(&p, ev->ts);
        if (!got[F_GRADE] || strcmp(got[F_GRADE], grade) != 0) {
            json_t *data = json_pack("{s:s, s:i, s:i, s:s, s:s, s:s}", "grade",
                                     grade, "score", score, "fit", fit, "owner",
                                     owner ? owner : "unassigned", "reason",
                                     reason, "cause", ev->id);
            if (got[F_GRADE] && strchr("ABC", got[F_GRADE][0]) && got[F_GRADE][0])
                json_object_set_new(data, "previous", json_string(got[F_GRADE]));
            char id[TP_ID_MAX + 1];
            snprintf(id, sizeof id, "%.*s:graded", TP_ID_MAX - 7, ev->id);
            if (tp_emit_pack(&ctx->derived, TP_EVENT_LEAD_GRADED, id, ev->ts,
                             TP_SERVICE_SCORING, ev->customer, data) < 0) {
                tp_argv_clear(&p);
                finish(ctx, -1);
                return;
            }
        }
    }
    tp_argv_add(&p, "updated_at", 10);
    tp_argv_add_int(&p, ev->ts);
    pair(&p, "ver", new_ver);
    send_apply(ctx, &p, ver_text);
    tp_argv_clear(&p);
}

static void read_record(apply_ctx_t *ctx) {
    static const char *const fields[] = {READ_FIELDS};
    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_add(&a, "HMGET", 5);
    tp_argv_add(&a, ctx->profile_key, (size_t)-1);
    for (int i = 0; i < F_COUNT; i++) tp_argv_add(&a, fields[i], (size_t)-1);
    int rc = tp_store_command_argv(ctx->record->store, record_read_cb, ctx,
                                   (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
    if (rc < 0) finish(ctx, -1);
}

void tp_record_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                     const tp_event_t *ev, void *arg) {
    tp_record_t *self = arg;
    apply_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->record = self;
    ctx->consumer = consumer;
    ctx->job = job;
    ctx->ev = ev;
    msgpack_sbuffer_init(&ctx->derived);
    const char *ns = tp_store_ns(self->store);
    tp_key(ctx->profile_key, sizeof ctx->profile_key, ns, "{c:%s}:profile",
           ev->customer);
    tp_key(ctx->timeline_key, sizeof ctx->timeline_key, ns, "{c:%s}:timeline",
           ev->customer);
    if (ev->type == TP_EVENT_LEAD_CAPTURED || ev->type == TP_EVENT_CONTACT_LOGGED) {
        read_record(ctx);
        return;
    }
    /* Everything else: a timeline entry (calls also mark the last contact). */
    tp_argv_t p;
    tp_argv_init(&p);
    if (ev->type == TP_EVENT_CALL_ENDED) {
        tp_argv_add(&p, "last_contact_at", 15);
        tp_argv_add_int(&p, ev->ts);
    }
    send_apply(ctx, &p, "");
    tp_argv_clear(&p);
}
