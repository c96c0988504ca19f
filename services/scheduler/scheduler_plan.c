/* scheduler_plan.c: events to planned and closed reminders.
 *
 * A reminder is "<customer>|<rule>[|<cause>]" in its customer's bucket
 * {r<n>}: score in :due, JSON in :rem, listed in :cust:<customer>. The
 * bucket's :touch hash keeps each customer's last logged contact, so a
 * reminder planned after the contact that satisfies it (events of two
 * services arrive in any order) is never planned at all. */
#include "scheduler_plan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS done, due, rem, cust, touch. ARGV ttl, reminder, due ms, JSON,
 * satisfiable since ("" = not satisfied by a contact), customer.
 * Returns {0} done before, {1, 0} already satisfied, {1, 1} planned. */
static const char PLAN_LUA[] =
    TP_LUA_DONE_CHECK
    "if ARGV[5] ~= '' then\n"
    "  local t = redis.call('HGET', KEYS[5], ARGV[6])\n"
    "  if t and tonumber(t) >= tonumber(ARGV[5]) then\n"
    "    " TP_LUA_DONE_MARK
    "    return {1, 0}\n"
    "  end\n"
    "end\n"
    "redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])\n"
    "redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])\n"
    "redis.call('SADD', KEYS[4], ARGV[2])\n"
    TP_LUA_DONE_MARK
    "return {1, 1}\n";

/* KEYS done, due, rem, cust, touch. ARGV ttl, customer, contact ts.
 * Closes the customer's open reminders that a contact satisfies (R-CAD-4)
 * and were planned for a cause at or before the contact. Returns {1, n}. */
static const char CLOSE_LUA[] =
    TP_LUA_DONE_CHECK
    "local ts = tonumber(ARGV[3])\n"
    "local last = tonumber(redis.call('HGET', KEYS[5], ARGV[2]) or '0')\n"
    "if ts > last then redis.call('HSET', KEYS[5], ARGV[2], ARGV[3]) end\n"
    "local closed = 0\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do\n"
    "  local j = redis.call('HGET', KEYS[3], id)\n"
    "  local r = j and cjson.decode(j)\n"
    "  if not r or (r.by_contact and tonumber(r.cause_ts) <= ts) then\n"
    "    redis.call('ZREM', KEYS[2], id)\n"
    "    redis.call('HDEL', KEYS[3], id)\n"
    "    redis.call('SREM', KEYS[4], id)\n"
    "    closed = closed + 1\n"
    "  end\n"
    "end\n"
    TP_LUA_DONE_MARK
    "return {1, closed}\n";

struct tp_plan {
    tp_store_t *store;
    tp_plan_rules_t rules;
    tp_plan_armed_cb armed;
    void *arg;
    int plan_script, close_script;
};

typedef struct plan_ctx {
    tp_plan_t *plan;
    tp_consumer_job_t *job;
    char reminder[TP_CUSTOMER_MAX + TP_ID_MAX + 32];
    int bucket;
    int64_t due;
    char *json;
} plan_ctx_t;

void tp_plan_rules_load(tp_plan_rules_t *r, tp_config_t *cfg) {
    r->first_touch_ms[0] = tp_config_ms(cfg, "scheduler", "first_touch_a", "24h");
    r->first_touch_ms[1] = tp_config_ms(cfg, "scheduler", "first_touch_b", "3d");
    r->first_touch_ms[2] = tp_config_ms(cfg, "scheduler", "first_touch_c", "30d");
    r->inquiry_ms = tp_config_ms(cfg, "scheduler", "inquiry_response", "2h");
    r->inquiry_urgent_ms =
        tp_config_ms(cfg, "scheduler", "inquiry_response_urgent", "30m");
}

tp_plan_t *tp_plan_new(tp_store_t *store, const tp_plan_rules_t *rules,
                       tp_plan_armed_cb armed, void *arg) {
    tp_plan_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->rules = *rules;
    self->armed = armed;
    self->arg = arg;
    self->plan_script = tp_store_script(store, "scheduler_plan", PLAN_LUA);
    self->close_script = tp_store_script(store, "scheduler_close", CLOSE_LUA);
    if (self->plan_script < 0 || self->close_script < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void tp_plan_destroy(tp_plan_t **self_p) {
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

int tp_plan_tag(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    (void)arg;
    if (!ev->customer[0]) return -1;
    snprintf(tag, len, "r%d", tp_key_reminder_bucket(ev->customer));
    return 0;
}

static void bucket_keys(tp_argv_t *a, const tp_plan_t *self, int bucket,
                        const char *customer) {
    const char *ns = tp_store_ns(self->store);
    tp_argv_addf(a, "%s{r%d}:due", ns, bucket);
    tp_argv_addf(a, "%s{r%d}:rem", ns, bucket);
    tp_argv_addf(a, "%s{r%d}:cust:%s", ns, bucket, customer);
    tp_argv_addf(a, "%s{r%d}:touch", ns, bucket);
}

static void ctx_end(plan_ctx_t *ctx, int status) {
    tp_consumer_job_done(ctx->job, status);
    free(ctx->json);
    free(ctx);
}

static void planned_cb(tp_store_t *store, redisReply *r, void *arg) {
    plan_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("plan %s: %s", ctx->reminder, r->str);
        ctx_end(ctx, -1);
        return;
    }
    if (r->elements == 2 && r->element[1]->integer == 1 && ctx->plan->armed)
        ctx->plan->armed(ctx->reminder, ctx->bucket, ctx->due, ctx->json,
                         ctx->plan->arg);
    ctx_end(ctx, 0);
}

/* Plans reminder `rule` for `owner`, due at `due`; `by_contact` when a
 * logged contact after `cause_ts` satisfies it. */
static void plan(tp_plan_t *self, tp_consumer_t *consumer, tp_consumer_job_t *job,
                 const tp_event_t *ev, const char *rule, const char *suffix,
                 const char *owner, int64_t due, int urgent, int by_contact,
                 const char *text) {
    plan_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->plan = self;
    ctx->job = job;
    ctx->bucket = tp_key_reminder_bucket(ev->customer);
    ctx->due = due;
    snprintf(ctx->reminder, sizeof ctx->reminder, "%s|%s%s%s", ev->customer,
             rule, suffix ? "|" : "", suffix ? suffix : "");
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:I, s:s, s:s}",
                          "id", ctx->reminder, "customer", ev->customer, "rule",
                          rule, "owner", owner, "due_at", (json_int_t)due,
                          "urgent", urgent, "by_contact", by_contact, "cause_ts",
                          (json_int_t)ev->ts, "cause", ev->id, "text", text);
    ctx->json = json_dumps(j, JSON_COMPACT);
    json_decref(j);

    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_add(&a, tp_consumer_job_done_key(job), (size_t)-1);
    bucket_keys(&a, self, ctx->bucket, ev->customer);
    tp_argv_add(&a, tp_consumer_done_ttl(consumer), (size_t)-1);
    tp_argv_add(&a, ctx->reminder, (size_t)-1);
    tp_argv_add_int(&a, due);
    tp_argv_add(&a, ctx->json, (size_t)-1);
    if (by_contact)
        tp_argv_add_int(&a, ev->ts);
    else
        tp_argv_add(&a, "", 0);
    tp_argv_add(&a, ev->customer, (size_t)-1);
    int rc = tp_store_eval(self->store, self->plan_script, planned_cb, ctx, 5,
                           (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
    if (rc < 0) ctx_end(ctx, -1);
}

static void closed_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_consumer_job_t *job = arg;
    int ok = r && r->type == REDIS_REPLY_ARRAY;
    if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("close: %s", r->str);
    tp_consumer_job_done(job, ok ? 0 : -1);
}

static void close_satisfied(tp_plan_t *self, tp_consumer_t *consumer,
                            tp_consumer_job_t *job, const tp_event_t *ev) {
    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_add(&a, tp_consumer_job_done_key(job), (size_t)-1);
    bucket_keys(&a, self, tp_key_reminder_bucket(ev->customer), ev->customer);
    tp_argv_add(&a, tp_consumer_done_ttl(consumer), (size_t)-1);
    tp_argv_add(&a, ev->customer, (size_t)-1);
    tp_argv_add_int(&a, ev->ts);
    int rc = tp_store_eval(self->store, self->close_script, closed_cb, job, 5,
                           (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
    if (rc < 0) tp_consumer_job_done(job, -1);
}

void tp_plan_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                   const tp_event_t *ev, void *arg) {
    tp_plan_t *self = arg;
    char text[300];
    switch (ev->type) {
    case TP_EVENT_LEAD_GRADED: { /* R-TOUCH-1; a regrade replans */
        const char *grade = tp_event_str(ev, "grade");
        int g = grade ? grade[0] - 'A' : 2;
        if (g < 0 || g > 2) g = 2;
        static const char *const how[] = {"call within the day",
                                          "send a personalised email",
                                          "add to the monthly nurture push"};
        snprintf(text, sizeof text, "First touch, grade %c: %s", 'A' + g, how[g]);
        plan(self, consumer, job, ev, "R-TOUCH-1", NULL, tp_event_str(ev, "owner"),
             ev->ts + self->rules.first_touch_ms[g], g == 0, 1, text);
        return;
    }
    case TP_EVENT_INQUIRY_RECEIVED: { /* R-SLA-1 */
        int urgent = tp_event_bool(ev, "urgent", 0);
        const char *owner = tp_event_str(ev, "owner");
        snprintf(text, sizeof text, "Answer the %s inquiry%s", 
                 tp_event_str(ev, "channel"), urgent ? " (urgent)" : "");
        plan(self, consumer, job, ev, "R-SLA-1", ev->id,
             owner ? owner : (ev->actor[0] ? ev->actor : "support"),
             ev->ts + (urgent ? self->rules.inquiry_urgent_ms : self->rules.inquiry_ms),
             urgent, 1, text);
        return;
    }
    case TP_EVENT_CONTACT_LOGGED: /* R-CAD-4 */
        close_satisfied(self, consumer, job, ev);
        return;
    default:
        tp_consumer_job_done(job, 0);
    }
}
