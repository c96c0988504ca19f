/* intake_query.c: dispatch of intake's reads, the helpers they share, and
 * GET /v1/customers/{id} (the full record), /v1/lookup, /v1/inbox/{user},
 * /healthz. The record is assembled from a few pipelined reads, its open
 * reminders from the scheduler's book of the customer (one field of its
 * group hash, decoded by tp_query_book_reminders); the paged timeline is in
 * intake_timeline.c, the pipeline and at-risk list in intake_lists.c.
 * Reads only. */
#include "intake_query.h"
#include "intake_reply.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/event.h"
#include "tp/ident.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

/* KEYS[1] a customer's deal ids (set); ARGV[1] the prefix of its deal keys
 * ("<ns>{s<n>}:c:<cust>:deal:", the same slot). Returns id, HGETALL of the deal, id, ... */
static const char DEALS_LUA[] =
    "local ids = redis.call('SMEMBERS', KEYS[1])\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  out[#out + 1] = id\n"
    "  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. id)\n"
    "end\n"
    "return out\n";

#define TIMELINE_SHOWN 20
#define INBOX_SHOWN 50

struct tp_query {
    tp_store_t *store;
    char default_cc[8];
    int deals_script;
    int timeline_script;
    int pipeline_script;
    int at_risk_script;
    int ticket_script;
    int tickets_script;
};

tp_query_t *tp_query_new(tp_store_t *store, const char *default_cc) {
    tp_query_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    snprintf(self->default_cc, sizeof self->default_cc, "%s", default_cc);
    self->deals_script = tp_store_script_ro(store, "deals", DEALS_LUA);
    self->timeline_script = tp_timeline_script(store);
    self->pipeline_script = tp_pipeline_script(store);
    self->at_risk_script = tp_at_risk_script(store);
    self->ticket_script = tp_tickets_script(store);
    self->tickets_script = tp_tickets_list_script(store);
    if (self->deals_script < 0 ||
        self->timeline_script < 0 || self->pipeline_script < 0 ||
        self->at_risk_script < 0 || self->ticket_script < 0 || self->tickets_script < 0) {
        tp_log_error("intake: could not register the read scripts");
        free(self);
        return NULL;
    }
    return self;
}

void tp_query_destroy(tp_query_t **self_p) {
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

/* ---- shared helpers ---- */

/* ---- GET /v1/customers/{id} ---- */

enum {
    PART_PROFILE,
    PART_TIMELINE,
    PART_TICKETS,
    PART_REMINDERS,
    PART_DEALS,
    PARTS
};

typedef struct customer_read {
    tp_http_request_t *req;
    char id[TP_CUSTOMER_MAX + 1];
    json_t *parts[PARTS];
    int waiting, failed;
} customer_read_t;

typedef struct part_ctx {
    customer_read_t *read;
    int part;
} part_ctx_t;

/* A stored JSON text, parsed; the string itself when it is not JSON. */
static json_t *stored_json(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_STRING) return json_null();
    json_t *v = json_loadb(r->str, r->len, 0, NULL);
    if (!v) v = json_stringn(r->str, r->len);
    return v ? v : json_null();
}

/* The profile member `key`, stored as JSON text, parsed (the text itself
 * when it does not parse); NULL when absent. */
static json_t *field_json(const json_t *profile, const char *key) {
    const json_t *v = json_object_get(profile, key);
    if (!json_is_string(v)) return NULL;
    json_t *parsed =
        json_loadb(json_string_value(v), json_string_length(v), 0, NULL);
    return parsed ? parsed : json_incref((json_t *)v);
}

/* "1" is true; anything else, or absent, is false. */
static json_t *field_flag(const json_t *profile, const char *key) {
    const char *v = json_string_value(json_object_get(profile, key));
    return json_boolean(v && strcmp(v, "1") == 0);
}

/* A comma-separated list as an array of its trimmed, non-empty items;
 * null when absent. */
static json_t *field_list(const json_t *profile, const char *key) {
    const json_t *v = json_object_get(profile, key);
    if (!json_is_string(v)) return json_null();
    json_t *a = json_array();
    const char *p = json_string_value(v);
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *b = p, *e = p + n;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (e > b) json_array_append_new(a, json_stringn(b, (size_t)(e - b)));
        p += n;
        if (*p == ',') p++;
    }
    return a;
}

static json_t *record_grading(const json_t *p) {
    json_t *g = json_object();
    json_object_set_new(g, "grade", tp_query_field_string(p, "grade"));
    json_object_set_new(g, "score", tp_query_field_number(p, "score"));
    json_object_set_new(g, "fit", tp_query_field_number(p, "fit"));
    json_object_set_new(g, "fit_reasons", field_list(p, "fit_reasons"));
    json_object_set_new(g, "reason", tp_query_field_string(p, "grade_reason"));
    json_object_set_new(g, "urgency", tp_query_field_number(p, "urgency"));
    json_object_set_new(g, "budget", tp_query_field_number(p, "budget"));
    json_object_set_new(g, "decision", tp_query_field_number(p, "decision"));
    json_object_set_new(g, "graded_at", tp_query_field_number(p, "graded_at"));
    return g;
}

static json_t *record_classification(const json_t *p) {
    json_t *c = json_object();
    json_object_set_new(c, "relationship",
                        tp_query_field_string(p, "relationship"));
    json_object_set_new(c, "revenue_tier",
                        tp_query_field_number(p, "revenue_tier"));
    json_object_set_new(c, "growth", tp_query_field_string(p, "growth"));
    json_object_set_new(c, "need_level",
                        tp_query_field_string(p, "need_level"));
    return c;
}

/* R-CUST-1: only the fields the record has. */
static json_t *record_archive(const json_t *p) {
    static const char *const text[] = {"name",           "level",
                                       "address",        "legal_rep",
                                       "business_state", "aftersales_state",
                                       "hardware",       "notes"};
    static const char *const parsed[] = {"modules", "key_people",
                                         "special_days"};
    json_t *a = json_object();
    for (size_t i = 0; i < sizeof text / sizeof *text; i++) {
        json_t *v = json_object_get(p, text[i]);
        if (json_is_string(v)) json_object_set(a, text[i], v);
    }
    for (size_t i = 0; i < sizeof parsed / sizeof *parsed; i++) {
        json_t *v = field_json(p, parsed[i]);
        if (v) json_object_set_new(a, parsed[i], v);
    }
    return a;
}

/* One deal of the record from its hash. */
static json_t *deal_object(const redisReply *id, const redisReply *hash) {
    json_t *h = tp_query_hash(hash);
    json_t *d = json_object();
    json_object_set_new(d, "id", json_stringn(id->str, id->len));
    json_object_set_new(d, "name", tp_query_field_string(h, "name"));
    json_object_set_new(d, "amount", tp_query_field_number(h, "amount"));
    json_object_set_new(d, "currency", tp_query_field_string(h, "currency"));
    json_t *stage = tp_query_field_number(h, "stage");
    if (json_is_null(stage)) { /* not a stage number: shown as stored */
        json_decref(stage);
        stage = tp_query_field_string(h, "stage");
    }
    json_object_set_new(d, "stage", stage);
    /* "" (the stage default) and absent alike: null */
    json_object_set_new(d, "probability",
                        tp_query_field_number(h, "probability"));
    json_object_set_new(d, "expected_value",
                        tp_query_field_number(h, "expected_value"));
    json_object_set_new(d, "status", tp_query_field_string(h, "status"));
    json_object_set_new(d, "reason", tp_query_field_string(h, "reason"));
    json_object_set_new(d, "owner", tp_query_field_string(h, "owner"));
    json_object_set_new(d, "team", tp_query_field_string(h, "team"));
    /* scoring writes 0 for "no date given" */
    json_t *close = tp_query_field_number(h, "expected_close");
    if (json_is_integer(close) && json_integer_value(close) <= 0) {
        json_decref(close);
        close = json_null();
    }
    json_object_set_new(d, "expected_close", close);
    json_object_set_new(d, "stage_since",
                        tp_query_field_number(h, "stage_since"));
    json_decref(h);
    return d;
}

/* Expected value desc (deals without one last), then id. */
static int deal_cmp(const void *a, const void *b) {
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const json_t *ex = json_object_get(x, "expected_value");
    const json_t *ey = json_object_get(y, "expected_value");
    int hx = json_is_number(ex), hy = json_is_number(ey);
    if (hx != hy) return hy - hx;
    if (hx) {
        double vx = json_number_value(ex), vy = json_number_value(ey);
        if (vx != vy) return vx < vy ? 1 : -1;
    }
    return strcmp(json_string_value(json_object_get(x, "id")),
                  json_string_value(json_object_get(y, "id")));
}

/* The deals script's reply: the customer's deals, ranked. A deal id whose
 * hash is gone is left out. */
static json_t *deals_ranked(const redisReply *r) {
    size_t n = 0;
    json_t **rows = calloc(r->elements / 2 + 1, sizeof *rows);
    if (!rows) abort();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *id = r->element[i], *h = r->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || h->type != REDIS_REPLY_ARRAY ||
            h->elements == 0)
            continue;
        rows[n++] = deal_object(id, h);
    }
    qsort(rows, n, sizeof *rows, deal_cmp);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, rows[i]);
    free(rows);
    return a;
}

/* Sum of the expected values of the open deals: an integer while every
 * one is. */
static json_t *open_value_total(const json_t *deals) {
    int64_t isum = 0;
    double dsum = 0;
    int integral = 1;
    size_t i;
    json_t *d;
    json_array_foreach(deals, i, d) {
        const char *status = json_string_value(json_object_get(d, "status"));
        const json_t *ev = json_object_get(d, "expected_value");
        if (!status || strcmp(status, "open") != 0 || !json_is_number(ev))
            continue;
        if (json_is_integer(ev))
            isum += json_integer_value(ev);
        else
            integral = 0;
        dsum += json_number_value(ev);
    }
    return integral ? json_integer(isum) : json_real(dsum);
}

static json_t *record_satisfaction(const json_t *p) {
    json_t *s = json_object();
    json_object_set_new(s, "last",
                        tp_query_field_number(p, "satisfaction_last"));
    json_object_set_new(s, "average",
                        tp_query_field_number(p, "satisfaction_avg"));
    json_object_set_new(s, "follow_up", field_flag(p, "follow_up"));
    return s;
}

static json_t *record_health(const json_t *p) {
    json_t *h = json_object();
    json_object_set_new(h, "score", tp_query_field_number(p, "health"));
    json_t *at_risk = field_flag(p, "at_risk");
    json_object_set_new(h, "at_risk", at_risk);
    json_object_set_new(h, "why", tp_query_field_string(p, "health_why"));
    /* at_risk_since stays in the profile after an episode ends: shown only
     * while the customer is at risk */
    json_object_set_new(h, "since",
                        json_is_true(at_risk)
                            ? tp_query_field_number(p, "at_risk_since")
                            : json_null());
    return h;
}

static void customer_answer(customer_read_t *rd) {
    tp_http_request_t *req = rd->req;
    json_t *profile = rd->parts[PART_PROFILE];
    if (rd->failed) {
        tp_query_unavailable(req);
    } else if (json_object_size(profile) == 0 &&
               json_array_size(rd->parts[PART_TIMELINE]) == 0) {
        tp_query_error(req, 404, "no such customer", NULL);
    } else {
        json_t *o = json_object();
        json_t *deals = rd->parts[PART_DEALS];
        json_object_set_new(o, "id", json_string(rd->id));
        json_object_set_new(o, "grade",
                            tp_query_field_string(profile, "grade"));
        json_object_set_new(o, "owner",
                            tp_query_field_string(profile, "owner"));
        json_object_set_new(o, "team", tp_query_field_string(profile, "team"));
        json_object_set_new(o, "manager",
                            tp_query_field_string(profile, "manager"));
        json_object_set_new(o, "state",
                            tp_query_field_string(profile, "state"));
        json_object_set_new(o, "state_reason",
                            tp_query_field_string(profile, "state_reason"));
        json_object_set_new(o, "grading", record_grading(profile));
        json_object_set_new(o, "classification",
                            record_classification(profile));
        json_object_set_new(o, "archive", record_archive(profile));
        json_object_set(o, "deals", deals);
        json_object_set_new(o, "expected_value_total", open_value_total(deals));
        json_object_set_new(o, "satisfaction", record_satisfaction(profile));
        json_object_set_new(o, "health", record_health(profile));
        json_object_set_new(o, "merged_into",
                            tp_query_field_string(profile, "merged_into"));
        json_t *from = field_json(profile, "merged_from");
        json_object_set_new(o, "merged_from", from ? from : json_null());
        json_object_set(o, "profile", profile);
        json_object_set(o, "open_reminders", rd->parts[PART_REMINDERS]);
        json_object_set(o, "open_tickets", rd->parts[PART_TICKETS]);
        json_object_set(o, "timeline", rd->parts[PART_TIMELINE]);
        tp_query_respond(req, 200, o);
    }
    for (int i = 0; i < PARTS; i++) json_decref(rd->parts[i]);
    free(rd);
}

static void customer_part_cb(tp_store_t *store, redisReply *r, void *arg) {
    part_ctx_t ctx = *(part_ctx_t *)arg;
    free(arg);
    customer_read_t *rd = ctx.read;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) tp_log_error("customer read: %s", r->str);
        rd->failed = 1;
    } else if (ctx.part == PART_REMINDERS) {
        /* the customer's book (nil: none, no open reminders) */
        if (r->type == REDIS_REPLY_STRING &&
            tp_query_book_reminders(rd->id, r->str, r->len, NULL, 0,
                                    rd->parts[PART_REMINDERS]) < 0)
            tp_log_error("customer read: %s: its book of reminders does not decode", rd->id);
    } else if (r->type == REDIS_REPLY_ARRAY) {
        json_t *v = NULL;
        switch (ctx.part) {
        case PART_PROFILE:
            v = tp_query_hash(r);
            break;
        case PART_TIMELINE:
            v = json_array();
            for (size_t i = 0; i < r->elements; i++) {
                json_t *e = tp_query_stream_entry(r->element[i]);
                if (e) json_array_append_new(v, e);
            }
            break;
        case PART_TICKETS:
            v = json_array();
            for (size_t i = 1; i < r->elements; i += 2)
                json_array_append_new(v, stored_json(r->element[i]));
            break;
        case PART_DEALS:
            v = deals_ranked(r);
            break;
        }
        json_decref(rd->parts[ctx.part]);
        rd->parts[ctx.part] = v;
    }
    if (--rd->waiting == 0) customer_answer(rd);
}

/* A read that could not be sent: the record is answered as unavailable. */
static void part_not_sent(customer_read_t *rd, part_ctx_t *ctx) {
    free(ctx);
    rd->failed = 1;
    rd->waiting--;
}

static void get_customer(tp_query_t *self, tp_http_request_t *req,
                         const char *id) {
    if (!tp_query_id_ok(id)) {
        tp_query_error(req, 400, "customer: not a valid customer id",
                       "customer");
        return;
    }
    customer_read_t *rd = calloc(1, sizeof *rd);
    if (!rd) abort();
    rd->req = req;
    snprintf(rd->id, sizeof rd->id, "%s", id);
    rd->parts[PART_PROFILE] = json_object();
    rd->parts[PART_TIMELINE] = json_array();
    rd->parts[PART_TICKETS] = json_array();
    rd->parts[PART_REMINDERS] = json_array();
    rd->parts[PART_DEALS] = json_array();
    rd->waiting = PARTS + 1; /* +1 held until every read is sent */

    const char *ns = tp_store_ns(self->store);
    char k1[256], k2[256];
    part_ctx_t *ctx;
#define CTX(p) (ctx = malloc(sizeof *ctx), ctx->read = rd, ctx->part = (p), ctx)
    tp_key_customer(k1, sizeof k1, ns, id, "profile");
    if (tp_store_command(self->store, customer_part_cb, CTX(PART_PROFILE),
                         "HGETALL %s", k1) < 0) {
        part_not_sent(rd, ctx);
    }
    tp_key_customer(k1, sizeof k1, ns, id, "timeline");
    if (tp_store_command(self->store, customer_part_cb, CTX(PART_TIMELINE),
                         "XREVRANGE %s + - COUNT %d", k1, TIMELINE_SHOWN) < 0) {
        part_not_sent(rd, ctx);
    }
    tp_key_customer(k1, sizeof k1, ns, id, "tickets");
    if (tp_store_command(self->store, customer_part_cb, CTX(PART_TICKETS),
                         "HGETALL %s", k1) < 0) {
        part_not_sent(rd, ctx);
    }
    /* the scheduler's book of the customer: one field of its group hash */
    tp_key(k1, sizeof k1, ns, "{s%d}:r:c:%d", tp_key_shard(id), tp_key_reminder_group(id));
    if (tp_store_command(self->store, customer_part_cb, CTX(PART_REMINDERS),
                         "HGET %s %s", k1, id) < 0) {
        part_not_sent(rd, ctx);
    }
    tp_key_customer(k1, sizeof k1, ns, id, "deals");
    tp_key_customer(k2, sizeof k2, ns, id, "deal:");
    const char *argv[2] = {k1, k2};
    size_t lens[2] = {strlen(k1), strlen(k2)};
    if (tp_store_eval(self->store, self->deals_script, customer_part_cb,
                      CTX(PART_DEALS), 1, 2, argv, lens) < 0) {
        part_not_sent(rd, ctx);
    }
#undef CTX
    if (--rd->waiting == 0) customer_answer(rd);
}

/* ---- GET /v1/lookup?phone=|email= ---- */

static void lookup_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_http_request_t *req = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        tp_query_unavailable(req);
        return;
    }
    json_t *o = json_object(), *ids = json_array();
    if (r->type == REDIS_REPLY_STRING)
        json_array_append_new(ids, json_stringn(r->str, r->len));
    json_object_set_new(o, "customers", ids);
    tp_query_respond(req, 200, o);
}

static void lookup(tp_query_t *self, tp_http_request_t *req) {
    const char *phone = tp_http_query(req, "phone");
    const char *email = tp_http_query(req, "email");
    char norm[300], key[128];
    const char *ns = tp_store_ns(self->store);
    if (phone) {
        if (tp_ident_phone(phone, self->default_cc, norm, sizeof norm) < 0) {
            tp_query_error(req, 400, "phone: not a phone number", "phone");
            return;
        }
        tp_key(key, sizeof key, ns, "{j}:phone");
    } else if (email) {
        if (tp_ident_email(email, norm, sizeof norm) < 0) {
            tp_query_error(req, 400, "email: not an email address", "email");
            return;
        }
        tp_key(key, sizeof key, ns, "{j}:email");
    } else {
        tp_query_error(req, 400, "phone or email: one is required", "phone");
        return;
    }
    if (tp_store_command(self->store, lookup_cb, req, "HGET %s %s", key, norm) < 0)
        tp_query_unavailable(req);
}

/* ---- GET /v1/inbox/{user} ---- */

typedef struct inbox_ctx {
    tp_http_request_t *req;
    char user[TP_ACTOR_MAX + 1];
} inbox_ctx_t;

static void inbox_cb(tp_store_t *store, redisReply *r, void *arg) {
    inbox_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        tp_query_unavailable(ctx->req);
    } else {
        json_t *o = json_object(), *items = json_array();
        for (size_t i = 0; i < r->elements; i++)
            json_array_append_new(items, stored_json(r->element[i]));
        json_object_set_new(o, "user", json_string(ctx->user));
        json_object_set_new(o, "items", items);
        tp_query_respond(ctx->req, 200, o);
    }
    free(ctx);
}

static void inbox(tp_query_t *self, tp_http_request_t *req, const char *user) {
    if (!tp_query_id_ok(user)) {
        tp_query_error(req, 400, "user: not a valid user id", "user");
        return;
    }
    inbox_ctx_t *ctx = malloc(sizeof *ctx);
    if (!ctx) abort();
    ctx->req = req;
    snprintf(ctx->user, sizeof ctx->user, "%s", user);
    char key[256];
    tp_key_user(key, sizeof key, tp_store_ns(self->store), user, "inbox");
    if (tp_store_command(self->store, inbox_cb, ctx, "LRANGE %s 0 %d", key,
                         INBOX_SHOWN - 1) < 0) {
        free(ctx);
        tp_query_unavailable(req);
    }
}

/* ---- dispatch ---- */

int tp_query_handle(tp_query_t *self, tp_http_request_t *req) {
    const char *path = tp_http_path(req);
    if (strcmp(path, "/healthz") == 0) {
        int up = tp_store_connected(self->store);
        char body[64];
        snprintf(body, sizeof body, "{\"status\":\"ok\",\"redis\":\"%s\"}",
                 up ? "up" : "down");
        tp_http_respond_json(req, 200, body);
        return 0;
    }
    if (strcmp(path, "/v1/customers") == 0) {
        tp_at_risk_get(self->store, self->at_risk_script, req);
        return 0;
    }
    if (strncmp(path, "/v1/customers/", 14) == 0) {
        const char *id = path + 14;
        const char *slash = strchr(id, '/');
        if (!slash) {
            get_customer(self, req, id);
            return 0;
        }
        if (strcmp(slash, "/timeline") == 0) {
            char cust[TP_CUSTOMER_MAX + 2];
            size_t n = (size_t)(slash - id);
            if (n >= sizeof cust) n = sizeof cust - 1; /* too long: invalid */
            memcpy(cust, id, n);
            cust[n] = '\0';
            tp_timeline_get(self->store, self->timeline_script, req, cust);
            return 0;
        }
        return -1;
    }
    if (strcmp(path, "/v1/tickets") == 0) {
        tp_tickets_get(self->store, self->tickets_script, req);
        return 0;
    }
    if (strncmp(path, "/v1/tickets/", 12) == 0 && !strchr(path + 12, '/')) {
        tp_ticket_get(self->store, self->ticket_script, req, path + 12);
        return 0;
    }
    if (strcmp(path, "/v1/reminders") == 0) {
        tp_reminders_get(self->store, req);
        return 0;
    }
    if (strcmp(path, "/v1/pipeline") == 0) {
        tp_pipeline_get(self->store, self->pipeline_script, req);
        return 0;
    }
    if (strcmp(path, "/v1/lookup") == 0) {
        lookup(self, req);
        return 0;
    }
    if (strncmp(path, "/v1/inbox/", 10) == 0 && !strchr(path + 10, '/')) {
        inbox(self, req, path + 10);
        return 0;
    }
    return -1;
}
