/* scheduler_plan.c: events to planned and closed reminders.
 *
 * read_customer -> on_<type> (queue plans and closes, change the state) ->
 * one guarded apply. The customer's book, the field "<customer>" of its
 * group hash {s<n>}:r:c:<g> (tp/keys.h, tp/reminder.h), keeps what the
 * rules need to know of the customer (grade, owner, tier, last contact,
 * whether the cadence runs, its inquiries' count) and its open reminders;
 * the apply writes it whole, compared with the book as read, with the
 * customer's entries in the due and owners' indexes derived from it. */
#include "scheduler_plan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/apply.h"
#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/recur.h"
#include "tp/reminder.h"

#define MAX_ATTEMPTS 8
#define MAX_PLANS 64

struct tp_plan {
    tp_store_t *store;
    tp_apply_batch_t *batch; /* the applies of one loop turn, sent together */
    tp_sched_rules_t rules;
    const tp_calendar_t *cal;
    tp_config_t *cfg;
    tp_plan_armed_cb armed;
    void *arg;
    uint64_t recomputed; /* applies refused for a changed book, computed again */
};

/* One reminder decided by a handler. */
typedef struct planned {
    char id[TP_CUSTOMER_MAX + TP_ID_MAX + 32];
    int64_t due;
    json_t *record; /* owned */
    char owner[TP_ACTOR_MAX + 1];
} planned_t;

typedef struct plan_ctx {
    tp_plan_t *plan;
    tp_consumer_t *consumer;
    tp_consumer_job_t *job;
    const tp_event_t *ev;
    int attempts;
    int bucket, group;
    char state_key[TP_CUSTOMER_MAX + 64]; /* the group hash */
    char *book_read; /* the book as read (NULL: none), the apply's guard */
    size_t book_read_len;
    json_t *state;   /* field -> string, as read and changed */
    json_t *open;    /* reminder id -> reminder object, as read */
    json_t *closing; /* reminder ids to close */
    planned_t plans[MAX_PLANS];
    int nplans;
    json_t *book;       /* reminder id -> record, after the apply */
    char *book_written; /* packed, as written (NULL: the field removed) */
    size_t book_written_len;
} plan_ctx_t;

/* ---- life ---- */

tp_plan_t *tp_plan_new(tp_store_t *store, const tp_sched_rules_t *rules,
                       const tp_calendar_t *calendar, tp_config_t *cfg,
                       tp_plan_armed_cb armed, void *arg) {
    tp_plan_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->rules = *rules;
    self->cal = calendar;
    self->cfg = cfg;
    self->armed = armed;
    self->arg = arg;
    int batch = (int)tp_config_int(cfg, "scheduler", "apply_batch", 64, 1, 1024);
    if (!(self->batch = tp_apply_batch_new(store, batch))) {
        free(self);
        return NULL;
    }
    return self;
}

void tp_plan_destroy(tp_plan_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_apply_batch_destroy(&(*self_p)->batch);
    free(*self_p);
    *self_p = NULL;
}

uint64_t tp_plan_recomputed(const tp_plan_t *self) { return self->recomputed; }

int tp_plan_tag(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    (void)arg;
    if (!ev->customer[0]) return -1;
    snprintf(tag, len, "s%d", tp_key_shard(ev->customer));
    return 0;
}

/* ---- state ---- */

static const char *sget(const plan_ctx_t *ctx, const char *field) {
    return json_string_value(json_object_get(ctx->state, field));
}

static int64_t sint(const plan_ctx_t *ctx, const char *field, int64_t def) {
    const char *v = sget(ctx, field);
    return v && *v ? atoll(v) : def;
}

static void sset(plan_ctx_t *ctx, const char *field, const char *value) {
    if (!value) return;
    json_object_set_new(ctx->state, field, json_string(value));
}

static void sset_int(plan_ctx_t *ctx, const char *field, int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    sset(ctx, field, buf);
}

static const char *owner_of(const plan_ctx_t *ctx) {
    const char *o = tp_event_str(ctx->ev, "owner");
    if (!o) o = sget(ctx, "owner");
    return o && *o ? o : "unassigned";
}

/* ---- plans and closes ---- */

static void close_reminder(plan_ctx_t *ctx, const char *id) {
    if (json_object_get(ctx->open, id)) json_array_append_new(ctx->closing, json_string(id));
}

/* Closes every open reminder whose id starts with `prefix`. */
static void close_prefix(plan_ctx_t *ctx, const char *prefix) {
    const char *id;
    json_t *r;
    size_t n = strlen(prefix);
    json_object_foreach(ctx->open, id, r) if (strncmp(id, prefix, n) == 0)
        close_reminder(ctx, id);
}

typedef struct reminder_spec {
    const char *rule;     /* "R-TOUCH-1" */
    const char *subject;  /* NULL, or a deal, payment, order ... */
    const char *owner;
    int64_t due;          /* before deliverable time shifting */
    int urgent;
    const char *closed_by; /* "contact", "inbound" or NULL */
    int agreed;           /* R-CAD-2: a time agreed with the customer */
    const char *text;
    const char *rrule;    /* recurring: rule, its start, an occurrence, lead time */
    int64_t dtstart;
    int64_t occurrence;
    int64_t ahead;
    int64_t until;
} reminder_spec_t;

/* Plans (or replans: same id) a reminder; the due time moves into working
 * time and out of the recipient's quiet hours unless urgent. */
static void plan(plan_ctx_t *ctx, const reminder_spec_t *r) {
    tp_plan_t *self = ctx->plan;
    const tp_event_t *ev = ctx->ev;
    if (ctx->nplans == MAX_PLANS) return;
    planned_t *p = &ctx->plans[ctx->nplans];
    snprintf(p->id, sizeof p->id, "%s|%s%s%s", ev->customer, r->rule,
             r->subject ? "|" : "", r->subject ? r->subject : "");
    snprintf(p->owner, sizeof p->owner, "%s", r->owner ? r->owner : "unassigned");
    tp_quiet_t quiet;
    const char *window = tp_config_str(self->cfg, "quiet", p->owner, self->rules.quiet_hours);
    int has_quiet = tp_quiet_parse(window, self->cal, &quiet) == 0;
    p->due = tp_sched_deliverable(&self->rules, self->cal, has_quiet ? &quiet : NULL,
                                  r->due, r->urgent);
    /* the record: no id, customer or rule, which its field gives */
    json_t *j = json_pack("{s:s, s:I, s:b, s:I, s:s}", "owner", p->owner, "due_at",
                          (json_int_t)p->due, "urgent", r->urgent, "cause_ts",
                          (json_int_t)ev->ts, "text", r->text);
    if (r->closed_by) json_object_set_new(j, "closed_by", json_string(r->closed_by));
    if (r->agreed) json_object_set_new(j, "agreed", json_true());
    if (r->rrule) {
        json_object_set_new(j, "rrule", json_string(r->rrule));
        json_object_set_new(j, "dtstart", json_integer(r->dtstart));
        json_object_set_new(j, "occurrence", json_integer(r->occurrence));
        json_object_set_new(j, "ahead", json_integer(r->ahead));
        if (r->until) json_object_set_new(j, "until", json_integer(r->until));
    }
    p->record = j;
    ctx->nplans++;
    /* a reminder replanned is no longer one to close */
    size_t i;
    json_t *v;
    json_array_foreach(ctx->closing, i, v) if (strcmp(json_string_value(v), p->id) == 0) {
        json_array_remove(ctx->closing, i);
        break;
    }
}

/* A recurring reminder from `rrule`, first occurrence strictly after
 * `after`, reminded `ahead` before each occurrence. */
static void plan_series(plan_ctx_t *ctx, reminder_spec_t *r, int64_t dtstart, int64_t after) {
    int64_t next;
    char why[128];
    if (tp_recur_between(r->rrule, dtstart, tp_calendar_zone(ctx->plan->cal), after,
                         r->until, &next, 1, why, sizeof why) != 1) {
        if (why[0]) tp_log_warn("%s of %s: %s", r->rule, ctx->ev->customer, why);
        return;
    }
    r->dtstart = dtstart;
    r->occurrence = next;
    r->due = next - r->ahead;
    plan(ctx, r);
}

int64_t tp_plan_next_occurrence(const tp_plan_t *self, const json_t *reminder,
                                json_t **next_record) {
    if (json_object_get(reminder, "rrule") == NULL) return 0;
    json_t *j = json_deep_copy(reminder);
    const char *rrule = json_string_value(json_object_get(j, "rrule"));
    int64_t dtstart = json_integer_value(json_object_get(j, "dtstart"));
    int64_t occurrence = json_integer_value(json_object_get(j, "occurrence"));
    int64_t ahead = json_integer_value(json_object_get(j, "ahead"));
    int64_t until = json_integer_value(json_object_get(j, "until"));
    /* The next occurrence still ahead: occurrences missed while nobody ran
     * collapse into the one late firing that just happened. */
    int64_t after = occurrence, now = tp_now_ms();
    if (now + ahead > after) after = now + ahead;
    int64_t next = 0, due = 0;
    char why[128];
    if (rrule && tp_recur_between(rrule, dtstart ? dtstart : occurrence,
                                  tp_calendar_zone(self->cal), after, until, &next, 1, why,
                                  sizeof why) == 1) {
        due = next - ahead;
        if (!json_is_true(json_object_get(j, "urgent")) && self->rules.working_hours_only)
            due = tp_calendar_next_working_time(self->cal, due);
        json_object_set_new(j, "occurrence", json_integer(next));
        json_object_set_new(j, "due_at", json_integer(due));
        *next_record = json_incref(j);
    }
    json_decref(j);
    return due;
}

/* ---- the rules, by event ---- */

static const char *const how_first[] = {"call within the day",
                                        "send a personalised email",
                                        "add to the monthly nurture push"};

static int64_t cadence_of(const plan_ctx_t *ctx) {
    const char *g = sget(ctx, "grade");
    return g ? ctx->plan->rules.cadence_ms[tp_sched_grade_index(g)]
             : ctx->plan->rules.cadence_default_ms;
}

static void plan_cadence(plan_ctx_t *ctx, int64_t due, const char *why) {
    char text[200];
    snprintf(text, sizeof text, "Follow up (%s)", why);
    reminder_spec_t r = {.rule = "R-CAD-1", .owner = owner_of(ctx), .due = due,
                         .closed_by = "contact", .text = text};
    plan(ctx, &r);
}

static void on_lead_graded(plan_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    const char *grade = tp_event_str(ev, "grade");
    const char *before = sget(ctx, "grade");
    int changed = !before || strcmp(before, grade) != 0;
    sset(ctx, "grade", grade);
    sset(ctx, "owner", tp_event_str(ev, "owner"));
    int g = tp_sched_grade_index(grade);
    if (sint(ctx, "last_contact_at", 0) < ev->ts) { /* R-TOUCH-1: not touched yet */
        char text[160];
        snprintf(text, sizeof text, "First touch, grade %c: %s", 'A' + g, how_first[g]);
        reminder_spec_t r = {.rule = "R-TOUCH-1", .owner = owner_of(ctx),
                             .due = ev->ts + ctx->plan->rules.first_touch_ms[g],
                             .urgent = g == 0, .closed_by = "contact", .text = text};
        plan(ctx, &r);
    }
    char cadence_id[TP_CUSTOMER_MAX + 16];
    snprintf(cadence_id, sizeof cadence_id, "%s|R-CAD-1", ev->customer);
    json_t *cad = json_object_get(ctx->open, cadence_id);
    /* R-CAD-1: a grade change replans the cadence from now, but never an
     * agreed next contact (R-CAD-2) */
    if (changed && cad && !json_is_true(json_object_get(cad, "agreed")))
        plan_cadence(ctx, ev->ts + cadence_of(ctx), "grade changed");
}

static void on_contact_logged(plan_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    const tp_sched_rules_t *rules = &ctx->plan->rules;
    const char *outcome = tp_event_str(ev, "outcome");
    const char *direction = tp_event_str(ev, "direction");
    const char *channel = tp_event_str(ev, "channel");
    int inbound = direction && strcmp(direction, "in") == 0;
    if (ev->ts > sint(ctx, "last_contact_at", 0)) sset_int(ctx, "last_contact_at", ev->ts);
    /* R-CAD-4: the contact a reminder asks for closes it */
    const char *id;
    json_t *r;
    json_object_foreach(ctx->open, id, r) {
        const char *by = json_string_value(json_object_get(r, "closed_by"));
        int64_t cause = json_integer_value(json_object_get(r, "cause_ts"));
        if (!by || cause > ev->ts) continue;
        if (!strcmp(by, "contact") || (!strcmp(by, "inbound") && inbound))
            close_reminder(ctx, id);
    }
    if (outcome && strcmp(outcome, "refused") == 0) { /* R-CAD-3: refusal stops it */
        sset(ctx, "cadence", "stopped");
        return;
    }
    sset(ctx, "cadence", "on");
    int64_t agreed = tp_event_int(ev, "next_contact_at", 0);
    if (outcome && strcmp(outcome, "needs_time") == 0 && agreed > 0) {
        /* R-CAD-2: the agreed time replaces the cadence */
        reminder_spec_t c = {.rule = "R-CAD-1", .owner = owner_of(ctx), .due = agreed,
                             .closed_by = "contact", .agreed = 1,
                             .text = "Follow up at the time agreed with the customer"};
        plan(ctx, &c);
    } else {
        plan_cadence(ctx, ev->ts + cadence_of(ctx), sget(ctx, "grade") ? "cadence" : "after a contact");
    }
    if (!inbound && channel && strcmp(channel, "email") == 0) { /* R-MAIL-1 */
        reminder_spec_t m = {.rule = "R-MAIL-1", .owner = owner_of(ctx),
                             .due = ev->ts + rules->mail_window_ms, .closed_by = "inbound",
                             .text = "No reply to the product email: plan the next step"};
        plan(ctx, &m);
    }
}

/* `v` > 0 in base62 into `out`. */
static void base62(char *out, size_t len, int64_t v) {
    static const char digits[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char rev[16];
    size_t n = 0;
    do {
        rev[n++] = digits[v % 62];
        v /= 62;
    } while (v > 0 && n < sizeof rev);
    size_t i = 0;
    for (; i < n && i + 1 < len; i++) out[i] = rev[n - 1 - i];
    out[i] = '\0';
}

static void on_inquiry(plan_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    int urgent = tp_event_bool(ev, "urgent", 0);
    char text[160];
    snprintf(text, sizeof text, "Answer the %s inquiry%s", tp_event_str(ev, "channel"),
             urgent ? " (urgent)" : "");
    const char *owner = tp_event_str(ev, "owner");
    /* the subject: the customer's next inquiry number (base62), a few bytes
     * where the event id took 26 in each of the reminder's index entries */
    char subject[16];
    int64_t seq = sint(ctx, "seq", 0) + 1;
    sset_int(ctx, "seq", seq);
    base62(subject, sizeof subject, seq);
    reminder_spec_t r = {.rule = "R-SLA-1", .subject = subject,
                         .owner = owner ? owner : (ev->actor[0] ? ev->actor : owner_of(ctx)),
                         .due = ev->ts + (urgent ? ctx->plan->rules.inquiry_urgent_ms
                                                 : ctx->plan->rules.inquiry_ms),
                         .urgent = urgent, .closed_by = "contact", .text = text};
    plan(ctx, &r);
}

static void plan_visits(plan_ctx_t *ctx) {
    const tp_sched_rules_t *rules = &ctx->plan->rules;
    int tier = (int)sint(ctx, "tier", 1);
    if (tier < 1 || tier > 3) tier = 1;
    int64_t from = ctx->ev->ts;
    reminder_spec_t p = {.rule = "R-VISIT-1", .subject = "phone", .owner = owner_of(ctx),
                         .text = "Return visit by phone", .rrule = rules->visit_phone[tier]};
    plan_series(ctx, &p, from, from);
    reminder_spec_t s = {.rule = "R-VISIT-1", .subject = "site", .owner = owner_of(ctx),
                         .text = "Return visit on site", .rrule = rules->visit_site[tier]};
    plan_series(ctx, &s, from, from);
    sset(ctx, "visits", "on");
}

static void on_stage_changed(plan_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    tp_plan_t *self = ctx->plan;
    const tp_sched_rules_t *rules = &self->rules;
    const char *deal = tp_event_str(ev, "opportunity");
    const char *owner = tp_event_str(ev, "owner");
    int to = (int)tp_event_int(ev, "to", 1);
    char prefix[TP_CUSTOMER_MAX + 96];
    static const char *const kinds[] = {"R-STAGE-3", "R-STAGE-3-manager", "R-STAGE-4"};
    for (int i = 0; i < 3; i++) { /* the old stage's alarms and deadline go */
        snprintf(prefix, sizeof prefix, "%s|%s|%s", ev->customer, kinds[i], deal);
        close_reminder(ctx, prefix);
    }
    if (to != 5) {
        snprintf(prefix, sizeof prefix, "%s|R-STAGE-4-report|%s", ev->customer, deal);
        close_reminder(ctx, prefix);
    }
    int64_t dwell = to >= 1 && to <= 6 ? rules->stage_duration_ms[to] : 0;
    char text[200];
    if (dwell > 0) { /* R-STAGE-3: the owner, then the manager */
        snprintf(text, sizeof text, "Deal %s has been in stage %d longer than planned",
                 deal, to);
        reminder_spec_t r = {.rule = "R-STAGE-3", .subject = deal, .owner = owner,
                             .due = ev->ts + dwell, .text = text};
        plan(ctx, &r);
        const char *manager = tp_config_str(self->cfg, "managers", owner, NULL);
        if (manager && *manager) {
            reminder_spec_t m = {.rule = "R-STAGE-3-manager", .subject = deal,
                                 .owner = manager, .due = ev->ts + dwell + rules->dwell_escalate_ms,
                                 .text = text};
            plan(ctx, &m);
        }
    }
    /* R-STAGE-4: what each stage owes the customer, in working days */
    int days = -1;
    const char *what = NULL;
    if (to == 2) days = rules->summary_days, what = "Send the needs summary after the first meeting";
    if (to == 3) days = rules->proposal_days, what = "Send the proposal";
    if (to == 4) days = rules->contract_days, what = "Send the signed contract and the kickoff plan";
    if (what) {
        snprintf(text, sizeof text, "%s (deal %s)", what, deal);
        reminder_spec_t r = {.rule = "R-STAGE-4", .subject = deal, .owner = owner,
                             .due = tp_calendar_add_working_days(self->cal, ev->ts, days),
                             .text = text};
        plan(ctx, &r);
    }
    if (to == 5) {
        snprintf(text, sizeof text, "Weekly progress report for deal %s", deal);
        reminder_spec_t r = {.rule = "R-STAGE-4-report", .subject = deal, .owner = owner,
                             .text = text, .rrule = rules->report_rrule};
        plan_series(ctx, &r, ev->ts, ev->ts);
    }
    const char *state = tp_event_str(ev, "state");
    if (state && (!strcmp(state, "signed") || !strcmp(state, "long_term")) &&
        !sget(ctx, "visits"))
        plan_visits(ctx); /* R-VISIT-1: after the sale */
}

static void on_customer_updated(plan_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    sset(ctx, "owner", tp_event_str(ev, "owner"));
    if (tp_event_int(ev, "revenue_tier", 0)) {
        sset_int(ctx, "tier", tp_event_int(ev, "revenue_tier", 1));
        if (sget(ctx, "visits")) plan_visits(ctx); /* replanned at the new tier */
    }
    /* R-DAYS-1: every key person's birthday and every special day, yearly */
    json_t *people = json_object_get(ev->data, "key_people");
    json_t *days = json_object_get(ev->data, "special_days");
    if (!people && !days) return;
    char prefix[TP_CUSTOMER_MAX + 16];
    snprintf(prefix, sizeof prefix, "%s|R-DAYS-1|", ev->customer);
    close_prefix(ctx, prefix); /* the lists replace what was there */
    struct { json_t *list; const char *name, *date, *fmt; } sources[] = {
        {people, "name", "birthday", "Birthday of %s"},
        {days, "what", "date", "%s"}};
    for (int s = 0; s < 2; s++) {
        size_t i;
        json_t *item;
        json_array_foreach(sources[s].list, i, item) {
            const char *name = json_string_value(json_object_get(item, sources[s].name));
            const char *date = json_string_value(json_object_get(item, sources[s].date));
            int64_t next = tp_sched_next_yearly(ctx->plan->cal, date, ev->ts);
            if (!name || !next) continue;
            char subject[24], text[300];
            char key[300];
            snprintf(key, sizeof key, "%s|%s", name, date);
            snprintf(subject, sizeof subject, "%016llx",
                     (unsigned long long)tp_id_hash(key, strlen(key)));
            snprintf(text, sizeof text, sources[s].fmt, name);
            strncat(text, ": send a greeting", sizeof text - strlen(text) - 1);
            reminder_spec_t r = {.rule = "R-DAYS-1", .subject = subject,
                                 .owner = owner_of(ctx), .text = text,
                                 .rrule = "FREQ=YEARLY", .ahead = ctx->plan->rules.greet_ahead_ms};
            plan_series(ctx, &r, next, next - 1);
        }
    }
}

static void on_payment_scheduled(plan_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    const tp_sched_rules_t *rules = &ctx->plan->rules;
    const char *pay = tp_event_str(ev, "payment");
    int64_t due = tp_event_int(ev, "due_at", ev->ts);
    char text[200];
    snprintf(text, sizeof text, "Payment %s of %lld %s is due in %lld days", pay,
             (long long)tp_event_int(ev, "amount", 0),
             tp_event_str(ev, "currency") ? tp_event_str(ev, "currency") : "",
             (long long)(rules->pay_ahead_ms / 86400000));
    char sub_ahead[80], sub_day[80], sub_over[80];
    snprintf(sub_ahead, sizeof sub_ahead, "ahead|%s", pay);
    snprintf(sub_day, sizeof sub_day, "day|%s", pay);
    snprintf(sub_over, sizeof sub_over, "overdue|%s", pay);
    reminder_spec_t a = {.rule = "R-PAY-1", .subject = sub_ahead, .owner = owner_of(ctx),
                         .due = due - rules->pay_ahead_ms, .text = text};
    plan(ctx, &a);
    char day_text[200];
    snprintf(day_text, sizeof day_text, "Payment %s is due today", pay);
    reminder_spec_t d = {.rule = "R-PAY-1", .subject = sub_day, .owner = owner_of(ctx),
                         .due = due, .text = day_text};
    plan(ctx, &d);
    const char *manager = tp_config_str(ctx->plan->cfg, "managers", owner_of(ctx), NULL);
    char over_text[200];
    snprintf(over_text, sizeof over_text, "Payment %s is overdue: escalated", pay);
    reminder_spec_t o = {.rule = "R-PAY-1", .subject = sub_over,
                         .owner = manager && *manager ? manager : owner_of(ctx),
                         .text = over_text, .rrule = "FREQ=DAILY"};
    plan_series(ctx, &o, due + rules->pay_overdue_ms, due + rules->pay_overdue_ms - 1);
}

static void on_payment_received(plan_ctx_t *ctx) {
    const char *pay = tp_event_str(ctx->ev, "payment");
    static const char *const kinds[] = {"ahead", "day", "overdue"};
    for (int i = 0; i < 3; i++) {
        char id[TP_CUSTOMER_MAX + 96];
        snprintf(id, sizeof id, "%s|R-PAY-1|%s|%s", ctx->ev->customer, kinds[i], pay);
        close_reminder(ctx, id);
    }
}

/* R-SAT-1: a low satisfaction score plans the account owner's follow-up,
 * one per ticket (or answer); the owner's logged contact satisfies it. */
static void on_survey_answered(plan_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    const tp_sched_rules_t *rules = &ctx->plan->rules;
    int64_t score = tp_event_int(ev, "score", rules->survey_low);
    if (score >= rules->survey_low) return;
    const char *ticket = tp_event_str(ev, "ticket");
    char text[300];
    snprintf(text, sizeof text, "Satisfaction %lld on %s: follow up with the customer",
             (long long)score, ticket ? ticket : "a survey");
    reminder_spec_t r = {.rule = "R-SAT-1", .subject = ticket ? ticket : ev->id,
                         .owner = owner_of(ctx), .due = ev->ts + rules->survey_follow_up_ms,
                         .closed_by = "contact", .text = text};
    plan(ctx, &r);
}

static void on_order_placed(plan_ctx_t *ctx) {
    const tp_event_t *ev = ctx->ev;
    char rule[220];
    const char *rrule = tp_event_str(ev, "rrule");
    if (rrule) {
        snprintf(rule, sizeof rule, "%s", rrule);
    } else if (tp_recur_rule(tp_event_str(ev, "unit") ? tp_event_str(ev, "unit") : "month",
                             (int)tp_event_int(ev, "interval", 1), rule, sizeof rule) < 0) {
        tp_log_warn("order %s: no cycle", tp_event_str(ev, "order"));
        return;
    }
    int advance = (int)tp_event_int(ev, "advance_days", ctx->plan->rules.reorder_advance_days);
    char text[300];
    snprintf(text, sizeof text, "Reorder of %s expected: contact the customer",
             tp_event_str(ev, "product"));
    reminder_spec_t r = {.rule = "R-REORDER-1", .subject = tp_event_str(ev, "order"),
                         .owner = owner_of(ctx), .text = text, .rrule = rule,
                         .ahead = (int64_t)advance * 86400000, .until = tp_event_int(ev, "end", 0)};
    int64_t start = tp_event_int(ev, "start", 0);
    if (start) /* the first expected reorder is given */
        plan_series(ctx, &r, start, start - 1);
    else       /* one cycle after this order */
        plan_series(ctx, &r, ev->ts, ev->ts);
}

/* ---- the apply ---- */

static void read_customer(plan_ctx_t *ctx);

static void ctx_reset(plan_ctx_t *ctx) {
    json_decref(ctx->state);
    free(ctx->book_read);
    ctx->book_read = NULL;
    json_decref(ctx->open);
    json_decref(ctx->closing);
    json_decref(ctx->book);
    free(ctx->book_written);
    ctx->book_written = NULL;
    ctx->state = ctx->open = ctx->closing = ctx->book = NULL;
    for (int i = 0; i < ctx->nplans; i++) json_decref(ctx->plans[i].record);
    ctx->nplans = 0;
}

static void ctx_end(plan_ctx_t *ctx, int status) {
    tp_consumer_job_done(ctx->job, status);
    ctx_reset(ctx);
    free(ctx);
}

static void applied_cb(tp_store_t *store, redisReply *r, void *arg) {
    plan_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("plan for %s failed: %s", ctx->ev->id, r->str);
        ctx_end(ctx, -1);
        return;
    }
    if (r->element[0]->integer == TP_APPLY_STALE) {
        ctx->plan->recomputed++;
        if (++ctx->attempts >= MAX_ATTEMPTS) {
            tp_log_warn("plan for %s: the book of %s changed under %d applies in a row; "
                        "the event is left to the journal walk",
                        ctx->ev->id, ctx->ev->customer, MAX_ATTEMPTS);
            ctx_end(ctx, -1);
            return;
        }
        ctx_reset(ctx);
        read_customer(ctx);
        return;
    }
    if (r->element[0]->integer == TP_APPLY_DONE && ctx->plan->armed)
        ctx->plan->armed(ctx->ev->customer, ctx->bucket, ctx->book_written,
                         ctx->book_written_len, ctx->book, ctx->plan->arg);
    if (r->element[0]->integer == TP_APPLY_DUPLICATE) tp_consumer_job_duplicate(ctx->job);
    ctx_end(ctx, 0);
}

/* Writes the plans and closes in the customer's shard {s<n>}: its book,
 * whole, compared with the book as read; its entry in its group's due
 * index (its earliest due time) and the shard's index of groups (lowered
 * with ZADD LT; a close leaves it low, the poll and the firing script set
 * it exact); its entry in each owner's index whose earliest due time
 * changed; the shard's pending count. */
static void apply_plans(plan_ctx_t *ctx) {
    tp_plan_t *self = ctx->plan;
    const char *ns = tp_store_ns(self->store);
    const char *customer = ctx->ev->customer;
    int shard = ctx->bucket, part = ctx->group % TP_OWNER_PARTS;
    /* the book after: open less closed, plus planned (replacing) */
    ctx->book = json_object();
    json_object_update(ctx->book, ctx->open);
    size_t i;
    json_t *v;
    json_array_foreach(ctx->closing, i, v) json_object_del(ctx->book, json_string_value(v));
    for (int p = 0; p < ctx->nplans; p++)
        json_object_set(ctx->book, ctx->plans[p].id, ctx->plans[p].record);
    ctx->book_written = tp_book_pack(customer, ctx->state, ctx->book, &ctx->book_written_len);
    if (!ctx->book_written) {
        tp_log_error("book of %s not packable", customer);
        ctx_end(ctx, -1);
        return;
    }
    tp_apply_t a;
    tp_apply_init(&a, tp_consumer_job_done_key(ctx->job), tp_consumer_done_ttl(ctx->consumer),
                  ctx->state_key, "0");
    if (ctx->book_read) tp_apply_expect(&a, ctx->book_read, ctx->book_read_len);
    tp_apply_version_field(&a, customer);
    tp_apply_done_field(&a, tp_consumer_job_done_field(ctx->job));
    int k_state = tp_apply_key(&a, "%s", ctx->state_key);
    if (json_object_size(ctx->state) > 0 || json_object_size(ctx->book) > 0) {
        tp_apply_cmd(&a, "HSET", k_state);
        tp_apply_str(&a, customer);
        tp_apply_arg(&a, ctx->book_written, ctx->book_written_len);
    } else { /* nothing to keep: no field at all */
        if (ctx->book_read) {
            tp_apply_cmd(&a, "HDEL", k_state);
            tp_apply_str(&a, customer);
        }
        free(ctx->book_written);
        ctx->book_written = NULL;
        ctx->book_written_len = 0;
    }
    int64_t before = tp_key_due_score(tp_book_earliest(ctx->open, NULL));
    int64_t after = tp_key_due_score(tp_book_earliest(ctx->book, NULL));
    if (after != before) {
        int k_due = tp_apply_key(&a, "%s{s%d}:r:due:%d", ns, shard, ctx->group);
        if (after) {
            tp_apply_cmd(&a, "ZADD", k_due);
            tp_apply_int(&a, after);
            tp_apply_str(&a, customer);
            tp_apply_cmd(&a, "ZADD", tp_apply_key(&a, "%s{s%d}:r:due", ns, shard));
            tp_apply_str(&a, "LT");
            tp_apply_int(&a, after);
            tp_apply_int(&a, ctx->group);
        } else {
            tp_apply_cmd(&a, "ZREM", k_due);
            tp_apply_str(&a, customer);
        }
    }
    json_t *moves = tp_book_owner_moves(ctx->open, ctx->book);
    const char *owner;
    json_object_foreach(moves, owner, v) {
        int64_t score = json_integer_value(v);
        tp_apply_cmd(&a, score ? "ZADD" : "ZREM",
                     tp_apply_key(&a, "%s{s%d}:r:owner:%d:%s", ns, shard, part, owner));
        if (score) tp_apply_int(&a, score);
        tp_apply_str(&a, customer);
    }
    json_decref(moves);
    int64_t delta = (int64_t)json_object_size(ctx->book) - (int64_t)json_object_size(ctx->open);
    if (delta != 0) {
        tp_apply_cmd(&a, "HINCRBY", tp_apply_key(&a, "%s{s%d}:r:count", ns, shard));
        tp_apply_pair_int(&a, "pending", delta);
    }
    tp_apply_batch_send(self->batch, &a, applied_cb, ctx);
    tp_apply_clear(&a);
}

static void read_cb(tp_store_t *store, redisReply *r, void *arg) {
    plan_ctx_t *ctx = arg;
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("scheduler read: %s", r->str);
        ctx_end(ctx, -1);
        return;
    }
    size_t len = r->type == REDIS_REPLY_STRING ? r->len : 0;
    if (tp_book_unpack(ctx->ev->customer, r->str, len, &ctx->state, &ctx->open) < 0) {
        tp_log_error("scheduler book of %s unreadable", ctx->ev->customer);
        ctx_end(ctx, -1);
        return;
    }
    if (r->type == REDIS_REPLY_STRING) {
        if (!(ctx->book_read = malloc(len ? len : 1))) abort();
        memcpy(ctx->book_read, r->str, len);
        ctx->book_read_len = len;
    }
    ctx->closing = json_array();
    switch (ctx->ev->type) {
    case TP_EVENT_LEAD_GRADED: on_lead_graded(ctx); break;
    case TP_EVENT_CONTACT_LOGGED: on_contact_logged(ctx); break;
    case TP_EVENT_INQUIRY_RECEIVED: on_inquiry(ctx); break;
    case TP_EVENT_STAGE_CHANGED: on_stage_changed(ctx); break;
    case TP_EVENT_CUSTOMER_UPDATED: on_customer_updated(ctx); break;
    case TP_EVENT_PAYMENT_SCHEDULED: on_payment_scheduled(ctx); break;
    case TP_EVENT_PAYMENT_RECEIVED: on_payment_received(ctx); break;
    case TP_EVENT_ORDER_PLACED: on_order_placed(ctx); break;
    case TP_EVENT_SURVEY_ANSWERED: on_survey_answered(ctx); break;
    default: break;
    }
    apply_plans(ctx);
}

static void read_customer(plan_ctx_t *ctx) {
    if (tp_store_command(ctx->plan->store, read_cb, ctx, "HGET %s %s", ctx->state_key,
                         ctx->ev->customer) < 0)
        ctx_end(ctx, -1);
}

void tp_plan_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                   const tp_event_t *ev, void *arg) {
    tp_plan_t *self = arg;
    plan_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->plan = self;
    ctx->consumer = consumer;
    ctx->job = job;
    ctx->ev = ev;
    ctx->bucket = tp_key_shard(ev->customer);
    ctx->group = tp_key_reminder_group(ev->customer);
    tp_key(ctx->state_key, sizeof ctx->state_key, tp_store_ns(self->store), "{s%d}:r:c:%d",
           ctx->bucket, ctx->group);
    read_customer(ctx);
}
