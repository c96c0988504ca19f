/* intake_lists.c: the lists across customers.
 *
 * GET /v1/pipeline?owner=<user> | ?team=<team>: the open deals of an owner
 * or a team ranked by expected value, highest first (R-VALUE-1), from the
 * pipeline:owner:<user> / pipeline:team:<team> zset (member
 * "<customer>|<deal>", score the expected value) and each deal's hash.
 *
 * GET /v1/customers?at_risk=1: the customers at risk, worst health first
 * (R-HEALTH-1), from the at_risk zset (customer -> health) and each
 * profile's owner, company and name.
 *
 * The lists are kept per shard ({s<n>}:pipeline:..., {s<n>}:at_risk, with
 * the shard's customers): one read-only script per shard reads its list
 * and the rows' keys (all in that shard's slot), and the replies are
 * merged here in the list's order. At most TP_QUERY_LIST_MAX rows;
 * "truncated": true when there are more. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake_query.h"
#include "intake_reply.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

#define TEAM_MAX 64

/* KEYS[1] one shard's pipeline zset; ARGV[1] the shard's key prefix
 * ("<ns>{s<n>}:", under which its customers' keys are), ARGV[2] the cap.
 * Returns {truncated, member, score, HGETALL of its deal, ...}. */
static const char PIPELINE_LUA[] =
    "local cap = tonumber(ARGV[2])\n"
    "local m = redis.call('ZREVRANGE', KEYS[1], 0, cap, 'WITHSCORES')\n"
    "local out = {0}\n"
    "if #m > 2 * cap then out[1] = 1 end\n"
    "for i = 1, math.min(#m, 2 * cap), 2 do\n"
    "  local member = m[i]\n"
    "  local bar = string.find(member, '|', 1, true)\n"
    "  local deal = {}\n"
    "  if bar then\n"
    "    deal = redis.call('HGETALL', ARGV[1] .. 'c:' ..\n"
    "      string.sub(member, 1, bar - 1) .. ':deal:' ..\n"
    "      string.sub(member, bar + 1))\n"
    "  end\n"
    "  out[#out + 1] = member\n"
    "  out[#out + 1] = m[i + 1]\n"
    "  out[#out + 1] = deal\n"
    "end\n"
    "return out\n";

/* KEYS[1] one shard's at_risk zset; ARGV[1] the shard's key prefix,
 * ARGV[2] the cap.
 * Returns {truncated, customer, health, {owner, company, name}, ...}. */
static const char AT_RISK_LUA[] =
    "local cap = tonumber(ARGV[2])\n"
    "local m = redis.call('ZRANGE', KEYS[1], 0, cap, 'WITHSCORES')\n"
    "local out = {0}\n"
    "if #m > 2 * cap then out[1] = 1 end\n"
    "for i = 1, math.min(#m, 2 * cap), 2 do\n"
    "  out[#out + 1] = m[i]\n"
    "  out[#out + 1] = m[i + 1]\n"
    "  out[#out + 1] = redis.call('HMGET', ARGV[1] .. 'c:' .. m[i] ..\n"
    "    ':profile', 'owner', 'company', 'name')\n"
    "end\n"
    "return out\n";

int tp_pipeline_script(tp_store_t *store) {
    return tp_store_script_ro(store, "pipeline", PIPELINE_LUA);
}

int tp_at_risk_script(tp_store_t *store) {
    return tp_store_script_ro(store, "at_risk", AT_RISK_LUA);
}

/* Adds number `v` to a running total kept as an integer while it can be. */
typedef struct total {
    int64_t i;
    double d;
    int integral;
} total_t;

static void total_add(total_t *t, const json_t *v) {
    if (!json_is_number(v)) return;
    if (json_is_integer(v))
        t->i += json_integer_value(v);
    else
        t->integral = 0;
    t->d += json_number_value(v);
}

static json_t *total_json(const total_t *t) {
    return t->integral ? json_integer(t->i) : json_real(t->d);
}

/* The script's reply shape: {truncated, then triples}. */
static int list_reply_ok(const redisReply *r) {
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           r->element[0]->type == REDIS_REPLY_INTEGER &&
           (r->elements - 1) % 3 == 0;
}

/* ---- one read per shard, merged ---- */

typedef struct fanout fanout_t;
/* Appends the rows of one shard's reply (checked by list_reply_ok). */
typedef void (*fanout_rows_cb)(fanout_t *f, const redisReply *r);
/* Answers with the merged rows (sorted, capped). */
typedef void (*fanout_answer_cb)(fanout_t *f);

struct fanout {
    tp_http_request_t *req;
    const char *what;
    fanout_rows_cb rows_cb;
    fanout_answer_cb answer_cb;
    int waiting, failed, truncated;
    json_t *rows;
    const char *by; /* pipeline: "owner" or "team" */
    char name[TP_ACTOR_MAX + 1];
};

static void fanout_settle(fanout_t *f) {
    if (--f->waiting) return;
    if (f->failed)
        tp_query_unavailable(f->req);
    else
        f->answer_cb(f);
    json_decref(f->rows);
    free(f);
}

static void fanout_cb(tp_store_t *store, redisReply *r, void *arg) {
    fanout_t *f = arg;
    if (!list_reply_ok(r)) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("%s read: %s", f->what, r->str);
        f->failed = 1;
    } else if (!f->failed) {
        if (r->element[0]->integer) f->truncated = 1;
        f->rows_cb(f, r);
    }
    fanout_settle(f);
}

/* Sends `script` for every shard's `index` key (KEYS[1]) with the shard's
 * key prefix and the cap; `f` answers once every shard has. Takes `f`. */
static void fanout_send(tp_store_t *store, int script, fanout_t *f, const char *fmt,
                        const char *a1, const char *a2) {
    const char *ns = tp_store_ns(store);
    char key[512], prefix[32], cap[16];
    snprintf(cap, sizeof cap, "%d", TP_QUERY_LIST_MAX);
    f->rows = json_array();
    f->waiting = 1; /* held while sending */
    for (int shard = 0; shard < TP_SHARDS && !f->failed; shard++) {
        tp_key_shard_key(prefix, sizeof prefix, ns, shard, "%s", "");
        if (tp_key_shard_key(key, sizeof key, ns, shard, fmt, a1, a2) < 0) {
            f->failed = 1;
            break;
        }
        const char *argv[3] = {key, prefix, cap};
        size_t lens[3] = {strlen(key), strlen(prefix), strlen(cap)};
        f->waiting++;
        if (tp_store_eval(store, script, fanout_cb, f, 1, 3, argv, lens) < 0) {
            f->waiting--;
            f->failed = 1;
        }
    }
    fanout_settle(f);
}

/* Sorts `f`'s rows by `cmp` and keeps TP_QUERY_LIST_MAX of them. */
static void fanout_order(fanout_t *f, int (*cmp)(const void *, const void *)) {
    size_t n = json_array_size(f->rows);
    json_t **v = malloc((n ? n : 1) * sizeof *v);
    if (!v) abort();
    for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(f->rows, i));
    qsort(v, n, sizeof *v, cmp);
    json_array_clear(f->rows);
    for (size_t i = 0; i < n; i++) {
        if (i < TP_QUERY_LIST_MAX)
            json_array_append_new(f->rows, v[i]);
        else
            json_decref(v[i]);
    }
    if (n > TP_QUERY_LIST_MAX) f->truncated = 1;
    free(v);
}

static double row_number(const json_t *row, const char *field) {
    return json_number_value(json_object_get(row, field));
}

static int row_cmp_str(const json_t *a, const json_t *b, const char *field) {
    const char *x = json_string_value(json_object_get(a, field));
    const char *y = json_string_value(json_object_get(b, field));
    return strcmp(x ? x : "", y ? y : "");
}

/* ---- GET /v1/pipeline ---- */

/* One ranked deal: member "<customer>|<deal>", its score, its hash. NULL
 * when the member is malformed or the deal's hash is gone. */
static json_t *pipeline_deal(const redisReply *member, const redisReply *score,
                             const redisReply *hash) {
    if (member->type != REDIS_REPLY_STRING || hash->type != REDIS_REPLY_ARRAY ||
        hash->elements == 0)
        return NULL;
    const char *bar = memchr(member->str, '|', member->len);
    if (!bar) return NULL;
    size_t clen = (size_t)(bar - member->str);
    json_t *h = tp_query_hash(hash);
    json_t *d = json_object();
    json_object_set_new(d, "customer", json_stringn(member->str, clen));
    json_object_set_new(d, "id", json_stringn(bar + 1, member->len - clen - 1));
    json_object_set_new(d, "name", tp_query_field_string(h, "name"));
    json_object_set_new(d, "amount", tp_query_field_number(h, "amount"));
    json_object_set_new(d, "currency", tp_query_field_string(h, "currency"));
    json_t *stage = tp_query_field_number(h, "stage");
    if (json_is_null(stage)) { /* not a stage number: shown as stored */
        json_decref(stage);
        stage = tp_query_field_string(h, "stage");
    }
    json_object_set_new(d, "stage", stage);
    json_object_set_new(d, "probability",
                        tp_query_field_number(h, "probability"));
    /* the ranking's own value, so that order and total agree */
    json_t *ev = tp_query_reply_number(score);
    json_object_set_new(d, "expected_value", ev ? ev : json_null());
    json_object_set_new(d, "status", tp_query_field_string(h, "status"));
    json_object_set_new(d, "owner", tp_query_field_string(h, "owner"));
    json_decref(h);
    return d;
}

static void pipeline_rows(fanout_t *f, const redisReply *r) {
    for (size_t i = 1; i + 2 < r->elements; i += 3) {
        json_t *d =
            pipeline_deal(r->element[i], r->element[i + 1], r->element[i + 2]);
        if (d) json_array_append_new(f->rows, d);
    }
}

/* Highest expected value first; ties as ZREVRANGE has them. */
static int pipeline_cmp(const void *pa, const void *pb) {
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    double x = row_number(a, "expected_value"), y = row_number(b, "expected_value");
    if (x != y) return x < y ? 1 : -1;
    int c = row_cmp_str(b, a, "customer");
    return c ? c : row_cmp_str(b, a, "id");
}

static void pipeline_answer(fanout_t *f) {
    fanout_order(f, pipeline_cmp);
    json_t *deals = json_array();
    total_t total = {0, 0, 1};
    size_t i;
    json_t *d;
    json_array_foreach(f->rows, i, d) {
        total_add(&total, json_object_get(d, "expected_value"));
        json_array_append(deals, d);
    }
    json_t *o = json_object();
    json_object_set_new(o, f->by, json_string(f->name));
    json_object_set_new(o, "deals", deals);
    json_object_set_new(o, "count",
                        json_integer((json_int_t)json_array_size(deals)));
    json_object_set_new(o, "total_expected_value", total_json(&total));
    if (f->truncated)
        json_object_set_new(o, "truncated", json_true());
    tp_query_respond(f->req, 200, o);
}

void tp_pipeline_get(tp_store_t *store, int script, tp_http_request_t *req) {
    const char *owner = tp_http_query(req, "owner");
    const char *team = tp_http_query(req, "team");
    if (!owner == !team) {
        tp_query_error(req, 400,
                       owner ? "owner, team: give one of them, not both"
                             : "owner or team: one is required",
                       "owner");
        return;
    }
    const char *by = owner ? "owner" : "team";
    const char *name = owner ? owner : team;
    if (!tp_query_name_ok(name, owner ? TP_ACTOR_MAX : TEAM_MAX)) {
        char msg[96];
        snprintf(msg, sizeof msg,
                 "%s: must be 1 to %d bytes of text without control "
                 "characters",
                 by, owner ? TP_ACTOR_MAX : TEAM_MAX);
        tp_query_error(req, 400, msg, by);
        return;
    }
    fanout_t *f = calloc(1, sizeof *f);
    if (!f) abort();
    f->req = req;
    f->what = "pipeline";
    f->rows_cb = pipeline_rows;
    f->answer_cb = pipeline_answer;
    f->by = by;
    snprintf(f->name, sizeof f->name, "%s", name);
    fanout_send(store, script, f, "pipeline:%s:%s", by, name);
}

/* ---- GET /v1/customers?at_risk=1 ---- */

static json_t *bulk_or_null(const redisReply *r) {
    json_t *s = NULL;
    if (r && r->type == REDIS_REPLY_STRING) s = json_stringn(r->str, r->len);
    return s ? s : json_null();
}

static void at_risk_rows(fanout_t *f, const redisReply *r) {
    for (size_t i = 1; i + 2 < r->elements; i += 3) {
        const redisReply *id = r->element[i], *fields = r->element[i + 2];
        if (id->type != REDIS_REPLY_STRING) continue;
        json_t *c = json_object();
        json_t *health = tp_query_reply_number(r->element[i + 1]);
        json_object_set_new(c, "id", json_stringn(id->str, id->len));
        json_object_set_new(c, "health", health ? health : json_null());
        int ok = fields->type == REDIS_REPLY_ARRAY && fields->elements == 3;
        json_object_set_new(c, "owner",
                            bulk_or_null(ok ? fields->element[0] : NULL));
        json_object_set_new(c, "company",
                            bulk_or_null(ok ? fields->element[1] : NULL));
        json_object_set_new(c, "name",
                            bulk_or_null(ok ? fields->element[2] : NULL));
        json_array_append_new(f->rows, c);
    }
}

/* Worst health first; ties as ZRANGE has them. */
static int at_risk_cmp(const void *pa, const void *pb) {
    const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    double x = row_number(a, "health"), y = row_number(b, "health");
    if (x != y) return x < y ? -1 : 1;
    return row_cmp_str(a, b, "id");
}

static void at_risk_answer(fanout_t *f) {
    fanout_order(f, at_risk_cmp);
    json_t *o = json_object();
    json_object_set(o, "customers", f->rows);
    if (f->truncated)
        json_object_set_new(o, "truncated", json_true());
    tp_query_respond(f->req, 200, o);
}

void tp_at_risk_get(tp_store_t *store, int script, tp_http_request_t *req) {
    const char *at_risk = tp_http_query(req, "at_risk");
    if (!at_risk) {
        tp_query_error(req, 400,
                       "at_risk: the customer list is served as "
                       "?at_risk=1 only",
                       "at_risk");
        return;
    }
    if (strcmp(at_risk, "1") != 0) {
        tp_query_error(req, 400, "at_risk: must be 1", "at_risk");
        return;
    }
    fanout_t *f = calloc(1, sizeof *f);
    if (!f) abort();
    f->req = req;
    f->what = "at-risk";
    f->rows_cb = at_risk_rows;
    f->answer_cb = at_risk_answer;
    fanout_send(store, script, f, "at_risk%s%s", "", "");
}
