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
 * Each is one script: one round trip, one consistent snapshot. At most
 * TP_QUERY_LIST_MAX rows; "truncated": true when there are more. The
 * scripts build the per-customer keys from the namespace they are given
 * (see keys.h, issue 8, for what that means under Redis Cluster). */
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

/* KEYS[1] the pipeline zset; ARGV[1] the namespace, ARGV[2] the cap.
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
    "    deal = redis.call('HGETALL', ARGV[1] .. '{c:' ..\n"
    "      string.sub(member, 1, bar - 1) .. '}:deal:' ..\n"
    "      string.sub(member, bar + 1))\n"
    "  end\n"
    "  out[#out + 1] = member\n"
    "  out[#out + 1] = m[i + 1]\n"
    "  out[#out + 1] = deal\n"
    "end\n"
    "return out\n";

/* KEYS[1] the at_risk zset; ARGV[1] the namespace, ARGV[2] the cap.
 * Returns {truncated, customer, health, {owner, company, name}, ...}. */
static const char AT_RISK_LUA[] =
    "local cap = tonumber(ARGV[2])\n"
    "local m = redis.call('ZRANGE', KEYS[1], 0, cap, 'WITHSCORES')\n"
    "local out = {0}\n"
    "if #m > 2 * cap then out[1] = 1 end\n"
    "for i = 1, math.min(#m, 2 * cap), 2 do\n"
    "  out[#out + 1] = m[i]\n"
    "  out[#out + 1] = m[i + 1]\n"
    "  out[#out + 1] = redis.call('HMGET', ARGV[1] .. '{c:' .. m[i] ..\n"
    "    '}:profile', 'owner', 'company', 'name')\n"
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

static void list_failed(tp_http_request_t *req, const redisReply *r,
                        const char *what) {
    if (r && r->type == REDIS_REPLY_ERROR)
        tp_log_error("%s read: %s", what, r->str);
    else if (r)
        tp_log_error("%s read: unexpected reply type %d", what, r->type);
    tp_query_unavailable(req);
}

/* ---- GET /v1/pipeline ---- */

typedef struct pipeline_ctx {
    tp_http_request_t *req;
    const char *by; /* "owner" or "team" */
    char name[TP_ACTOR_MAX + 1];
} pipeline_ctx_t;

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

static void pipeline_cb(tp_store_t *store, redisReply *r, void *arg) {
    pipeline_ctx_t *ctx = arg;
    if (!list_reply_ok(r)) {
        list_failed(ctx->req, r, "pipeline");
        free(ctx);
        return;
    }
    json_t *deals = json_array();
    total_t total = {0, 0, 1};
    for (size_t i = 1; i + 2 < r->elements; i += 3) {
        json_t *d =
            pipeline_deal(r->element[i], r->element[i + 1], r->element[i + 2]);
        if (!d) continue;
        total_add(&total, json_object_get(d, "expected_value"));
        json_array_append_new(deals, d);
    }
    json_t *o = json_object();
    json_object_set_new(o, ctx->by, json_string(ctx->name));
    json_object_set_new(o, "deals", deals);
    json_object_set_new(o, "count",
                        json_integer((json_int_t)json_array_size(deals)));
    json_object_set_new(o, "total_expected_value", total_json(&total));
    if (r->element[0]->integer)
        json_object_set_new(o, "truncated", json_true());
    tp_query_respond(ctx->req, 200, o);
    free(ctx);
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
    const char *ns = tp_store_ns(store);
    char key[512], cap[16];
    tp_key(key, sizeof key, ns, "pipeline:%s:%s", by, name);
    snprintf(cap, sizeof cap, "%d", TP_QUERY_LIST_MAX);
    pipeline_ctx_t *ctx = malloc(sizeof *ctx);
    if (!ctx) abort();
    ctx->req = req;
    ctx->by = by;
    snprintf(ctx->name, sizeof ctx->name, "%s", name);
    const char *argv[3] = {key, ns, cap};
    size_t lens[3] = {strlen(key), strlen(ns), strlen(cap)};
    if (tp_store_eval(store, script, pipeline_cb, ctx, 1, 3, argv, lens) < 0) {
        free(ctx);
        tp_query_unavailable(req);
    }
}

/* ---- GET /v1/customers?at_risk=1 ---- */

static json_t *bulk_or_null(const redisReply *r) {
    json_t *s = NULL;
    if (r && r->type == REDIS_REPLY_STRING) s = json_stringn(r->str, r->len);
    return s ? s : json_null();
}

static void at_risk_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_http_request_t *req = arg;
    if (!list_reply_ok(r)) {
        list_failed(req, r, "at-risk");
        return;
    }
    json_t *list = json_array();
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
        json_array_append_new(list, c);
    }
    json_t *o = json_object();
    json_object_set_new(o, "customers", list);
    if (r->element[0]->integer)
        json_object_set_new(o, "truncated", json_true());
    tp_query_respond(req, 200, o);
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
    const char *ns = tp_store_ns(store);
    char key[256], cap[16];
    tp_key(key, sizeof key, ns, "at_risk");
    snprintf(cap, sizeof cap, "%d", TP_QUERY_LIST_MAX);
    const char *argv[3] = {key, ns, cap};
    size_t lens[3] = {strlen(key), strlen(ns), strlen(cap)};
    if (tp_store_eval(store, script, at_risk_cb, req, 1, 3, argv, lens) < 0)
        tp_query_unavailable(req);
}
