/* intake_tickets.c: GET /v1/tickets/{id} (the ticket, its history and the
 * state of its SLA clocks: deadlines and time left) and GET /v1/tickets?
 * status=&department=&owner=&customer=&breached=&limit=&cursor= (issue 6).
 * Reads what ticketing writes: {j}:ticket (id -> customer), the ticket
 * and its history, and the indexes tickets:* (keys.h). Reads only.
 *
 * The list walks one index, newest ticket first: the customer's tickets
 * when a customer is given, else the owner's, the department's, the
 * status', the breached ones, else all; the other filters are checked on
 * each ticket. `cursor` is the position in that walk where the next page
 * starts (opaque to callers; absent: the first page). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake_query.h"
#include "intake_reply.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 200
#define WALK_MAX 5000 /* index entries one page looks at, at most */

/* KEYS {j}:ticket. ARGV ns, ticket. Returns {customer, HGETALL ticket,
 * history}, or {} when unknown. */
static const char TICKET_LUA[] =
    "local c = redis.call('HGET', KEYS[1], ARGV[2])\n"
    "if not c then return {} end\n"
    "local k = ARGV[1] .. '{c:' .. c .. '}:ticket:' .. ARGV[2]\n"
    "return {c, redis.call('HGETALL', k), redis.call('LRANGE', k .. ':history', 0, -1)}\n";

/* KEYS the index walked. ARGV ns, status, department, owner, customer,
 * breached ("", "1", "0"), cursor, limit, walk max, customer-index (1:
 * members are bare ticket ids of ARGV[5]). Returns {next cursor or "",
 * HGETALL of each ticket shown...}. */
static const char LIST_LUA[] =
    "local ns, want = ARGV[1], {status = ARGV[2], department = ARGV[3], owner = ARGV[4]}\n"
    "local from, limit, walk = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])\n"
    "local ids = redis.call('ZREVRANGE', KEYS[1], from, from + walk - 1)\n"
    "local out, next = {''}, ''\n"
    "for i, m in ipairs(ids) do\n"
    "  local c, t\n"
    "  if ARGV[10] == '1' then c, t = ARGV[5], m\n"
    "  else c, t = string.match(m, '^([^|]+)|(.+)$') end\n"
    "  if c then\n"
    "    local f = redis.call('HGETALL', ns .. '{c:' .. c .. '}:ticket:' .. t)\n"
    "    local h = {}\n"
    "    for j = 1, #f, 2 do h[f[j]] = f[j + 1] end\n"
    "    local ok = h.ver ~= nil\n"
    "    for k, v in pairs(want) do if v ~= '' and h[k] ~= v then ok = false end end\n"
    "    if ARGV[5] ~= '' and h.customer ~= ARGV[5] then ok = false end\n"
    "    local b = (h.breached_first_response or h.breached_resolution) and '1' or '0'\n"
    "    if ARGV[6] ~= '' and b ~= ARGV[6] then ok = false end\n"
    "    if ok then\n"
    "      if #out - 1 == limit then next = tostring(from + i - 1); break end\n"
    "      out[#out + 1] = f\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if next == '' and #ids == walk then next = tostring(from + walk) end\n"
    "out[1] = next\n"
    "return out\n";

static const char *const number_fields[] = {
    "opened_at", "reported_at", "updated_at", "responded_at", "resolved_at", "closed_at",
    "first_response_due", "resolution_due", "paused_at", "reports", "ver", "transfers",
    "satisfaction", "survey_at", "breached_first_response", "breached_resolution"};

/* The ticket's fields, times and counts as numbers. Caller owns. */
static json_t *ticket_json(const redisReply *r) {
    json_t *o = tp_query_hash(r);
    for (size_t i = 0; i < sizeof number_fields / sizeof *number_fields; i++) {
        const char *s = json_string_value(json_object_get(o, number_fields[i]));
        if (!s) continue;
        json_t *n = *s ? tp_query_number(s, strlen(s)) : NULL;
        if (n) json_object_set_new(o, number_fields[i], n);
        else json_object_del(o, number_fields[i]);
    }
    json_t *p = json_loads(json_string_value(json_object_get(o, "pauses")) ?
                               json_string_value(json_object_get(o, "pauses")) : "[]",
                           0, NULL);
    json_object_set_new(o, "pauses", json_is_array(p) ? p : json_array());
    if (!json_is_array(p)) json_decref(p);
    const char *f;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(o, tmp, f, v) if (!strncmp(f, "esc_", 4)) json_object_del(o, f);
    return o;
}

/* The state of one SLA clock: met, stopped, paused, or running with its
 * deadline and the time left (negative: overdue). */
static json_t *clock_json(const json_t *t, const char *target, int64_t now) {
    char key[64];
    json_t *c = json_object();
    snprintf(key, sizeof key, "breached_%s", target);
    json_t *breached = json_object_get(t, key);
    if (breached) json_object_set(c, "breached_at", breached);
    json_object_set_new(c, "breached", json_boolean(breached != NULL));
    snprintf(key, sizeof key, "%s_due", target);
    json_int_t due = json_integer_value(json_object_get(t, key));
    const char *status = json_string_value(json_object_get(t, "status"));
    const char *state = "running";
    if (!strcmp(target, "first_response") && json_object_get(t, "responded_at"))
        state = "met";
    else if (status && !strcmp(status, "closed"))
        state = "stopped";
    else if (json_object_get(t, "paused_at"))
        state = "paused";
    json_object_set_new(c, "state", json_string(state));
    if (!strcmp(state, "running") && due > 0) {
        json_object_set_new(c, "deadline", json_integer(due));
        json_object_set_new(c, "left_ms", json_integer(due - now));
    }
    return c;
}

static void ticket_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_http_request_t *req = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("ticket read: %s", r->str);
        tp_query_unavailable(req);
        return;
    }
    if (r->elements != 3 || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[1]->elements == 0) {
        tp_query_error(req, 404, "no such ticket", NULL);
        return;
    }
    json_t *o = ticket_json(r->element[1]);
    int64_t now = tp_now_ms();
    json_t *sla = json_object();
    json_object_set_new(sla, "first_response", clock_json(o, "first_response", now));
    json_object_set_new(sla, "resolution", clock_json(o, "resolution", now));
    json_object_set_new(o, "sla", sla);
    json_t *h = json_array();
    const redisReply *hist = r->element[2];
    for (size_t i = 0; hist->type == REDIS_REPLY_ARRAY && i < hist->elements; i++) {
        json_t *e = hist->element[i]->type == REDIS_REPLY_STRING
                        ? json_loadb(hist->element[i]->str, hist->element[i]->len, 0, NULL)
                        : NULL;
        if (e) json_array_append_new(h, e);
    }
    json_object_set_new(o, "history", h);
    tp_query_respond(req, 200, o);
}

int tp_tickets_script(tp_store_t *store) {
    return tp_store_script_ro(store, "ticket_get", TICKET_LUA);
}

int tp_tickets_list_script(tp_store_t *store) {
    return tp_store_script_ro(store, "tickets_list", LIST_LUA);
}

void tp_ticket_get(tp_store_t *store, int script, tp_http_request_t *req, const char *id) {
    if (!tp_query_id_ok(id) || strlen(id) > 64) {
        tp_query_error(req, 400, "ticket: not a valid ticket id", "ticket");
        return;
    }
    char index[128];
    tp_key(index, sizeof index, tp_store_ns(store), "{j}:ticket");
    const char *argv[3] = {index, tp_store_ns(store), id};
    size_t lens[3] = {strlen(index), strlen(argv[1]), strlen(id)};
    if (tp_store_eval(store, script, ticket_cb, req, 1, 3, argv, lens) < 0)
        tp_query_unavailable(req);
}

static void list_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_http_request_t *req = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("tickets list: %s", r->str);
        tp_query_unavailable(req);
        return;
    }
    json_t *items = json_array();
    int64_t now = tp_now_ms();
    for (size_t i = 1; i < r->elements; i++) {
        json_t *t = ticket_json(r->element[i]);
        json_t *sla = json_object();
        json_object_set_new(sla, "first_response", clock_json(t, "first_response", now));
        json_object_set_new(sla, "resolution", clock_json(t, "resolution", now));
        json_object_set_new(t, "sla", sla);
        json_array_append_new(items, t);
    }
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(items)));
    json_object_set_new(o, "tickets", items);
    const redisReply *next = r->element[0];
    if (next->type == REDIS_REPLY_STRING && next->len)
        json_object_set_new(o, "next_cursor", json_string(next->str));
    else
        json_object_set_new(o, "next_cursor", json_null());
    tp_query_respond(req, 200, o);
}

/* A count in [lo, hi] written in decimal digits, else -1. */
static long long count_of(const char *s, long long lo, long long hi) {
    size_t n = strlen(s);
    if (n == 0 || n > 12 || strspn(s, "0123456789") != n) return -1;
    long long v = strtoll(s, NULL, 10);
    return v < lo || v > hi ? -1 : v;
}

void tp_tickets_get(tp_store_t *store, int script, tp_http_request_t *req) {
    const char *status = tp_http_query(req, "status");
    const char *dept = tp_http_query(req, "department");
    const char *owner = tp_http_query(req, "owner");
    const char *customer = tp_http_query(req, "customer");
    const char *breached = tp_http_query(req, "breached");
    const char *limit_s = tp_http_query(req, "limit");
    const char *cursor_s = tp_http_query(req, "cursor");
    static const char *const states[] = {"new", "assigned", "in_progress",
                                         "waiting_customer", "resolved", "closed"};
    int state_ok = 0;
    for (size_t i = 0; status && i < 6; i++) state_ok |= !strcmp(status, states[i]);
    if (status && !state_ok) {
        tp_query_error(req, 400, "status: must be new, assigned, in_progress, "
                                 "waiting_customer, resolved or closed", "status");
        return;
    }
    if (dept && !tp_query_name_ok(dept, 64)) {
        tp_query_error(req, 400, "department: 1 to 64 bytes of text", "department");
        return;
    }
    if (owner && !tp_query_name_ok(owner, TP_ACTOR_MAX)) {
        tp_query_error(req, 400, "owner: 1 to 128 bytes of text", "owner");
        return;
    }
    if (customer && !tp_query_id_ok(customer)) {
        tp_query_error(req, 400, "customer: not a valid customer id", "customer");
        return;
    }
    const char *b = "";
    if (breached) {
        if (!strcmp(breached, "true") || !strcmp(breached, "1")) b = "1";
        else if (!strcmp(breached, "false") || !strcmp(breached, "0")) b = "0";
        else {
            tp_query_error(req, 400, "breached: must be true or false", "breached");
            return;
        }
    }
    long long limit = limit_s ? count_of(limit_s, 1, PAGE_MAX) : PAGE_DEFAULT;
    if (limit < 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "limit: must be 1 to %d", PAGE_MAX);
        tp_query_error(req, 400, msg, "limit");
        return;
    }
    long long cursor = cursor_s ? count_of(cursor_s, 0, 1000000000000LL) : 0;
    if (cursor < 0) {
        tp_query_error(req, 400, "cursor: not a cursor of this list", "cursor");
        return;
    }
    const char *ns = tp_store_ns(store);
    char index[512];
    int by_customer = customer != NULL;
    if (customer) tp_key(index, sizeof index, ns, "{c:%s}:ticket_ids", customer);
    else if (owner) tp_key(index, sizeof index, ns, "tickets:owner:%s", owner);
    else if (dept) tp_key(index, sizeof index, ns, "tickets:department:%s", dept);
    else if (status) tp_key(index, sizeof index, ns, "tickets:status:%s", status);
    else if (*b == '1') tp_key(index, sizeof index, ns, "tickets:breached");
    else tp_key(index, sizeof index, ns, "tickets:all");
    char cur[24], lim[24], walk[24];
    snprintf(cur, sizeof cur, "%lld", cursor);
    snprintf(lim, sizeof lim, "%lld", limit);
    snprintf(walk, sizeof walk, "%d", WALK_MAX);
    const char *argv[11] = {index, ns, status ? status : "", dept ? dept : "",
                            owner ? owner : "", customer ? customer : "", b, cur, lim, walk,
                            by_customer ? "1" : "0"};
    size_t lens[11];
    for (int i = 0; i < 11; i++) lens[i] = strlen(argv[i]);
    if (tp_store_eval(store, script, list_cb, req, 1, 11, argv, lens) < 0)
        tp_query_unavailable(req);
}
