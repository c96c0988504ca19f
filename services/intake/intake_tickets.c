/* intake_tickets.c: GET /v1/tickets/{id} (the ticket, its history and the
 * state of its SLA clocks: deadlines and time left) and GET /v1/tickets?
 * status=&department=&owner=&customer=&breached=&limit=&cursor= (issue 6).
 * Reads what ticketing writes: {j}:ticket (id -> customer), the ticket
 * and its history, and the per-shard indexes {s<n>}:tickets:* (keys.h).
 * Reads only; every script reads one slot.
 *
 * The list walks one index, newest ticket first: the customer's tickets
 * when a customer is given (its shard only), else the owner's, the
 * department's, the status', the breached ones, else all, in every shard
 * (one script each), merged here newest first; the other filters are
 * checked on each ticket. `cursor` is the last ticket of the walk a page
 * covered, "<opened>.<hex of its index member>" (opaque to callers;
 * absent: the first page); the next page starts after it. */
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

/* KEYS the ticket, its history (its customer's, found in {j}:ticket
 * first). Returns {HGETALL ticket, history}. */
static const char TICKET_LUA[] =
    "return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}\n";

/* KEYS one shard's index walked. ARGV the shard's key prefix
 * ("<ns>{s<n>}:"), status, department, owner, customer, breached ("", "1",
 * "0"), after score and member ("" = from the newest), limit, walk max,
 * customer-index (1: members are bare ticket ids of ARGV[5]). Walks at most
 * `walk` entries after (score, member) in ZREVRANGE order and returns
 * {exhausted (1: nothing left after the walk), resume score, resume member
 * (the last entry looked at, when not exhausted), then per ticket shown:
 * score, member, HGETALL of the ticket}, up to `limit` tickets. */
static const char LIST_LUA[] =
    "local ns, want = ARGV[1], {status = ARGV[2], department = ARGV[3], owner = ARGV[4]}\n"
    "local limit, walk = tonumber(ARGV[9]), tonumber(ARGV[10])\n"
    "local after = ARGV[7] ~= '' and tonumber(ARGV[7]) or nil\n"
    "local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[7] ~= '' and ARGV[7] or '+inf',\n"
    "                       '-inf', 'WITHSCORES', 'LIMIT', 0, walk)\n"
    "local out, n, last_s, last_m, stopped = {1, '', ''}, 0, nil, nil, false\n"
    "for i = 1, #ids, 2 do\n"
    "  local m, sc = ids[i], ids[i + 1]\n"
    "  if not (after and tonumber(sc) == after and m >= ARGV[8]) then\n"
    "    last_s, last_m = sc, m\n"
    "    local c, t\n"
    "    if ARGV[11] == '1' then c, t = ARGV[5], m\n"
    "    else c, t = string.match(m, '^([^|]+)|(.+)$') end\n"
    "    if c then\n"
    "      local f = redis.call('HGETALL', ns .. 'c:' .. c .. ':ticket:' .. t)\n"
    "      local h = {}\n"
    "      for j = 1, #f, 2 do h[f[j]] = f[j + 1] end\n"
    "      local ok = h.ver ~= nil\n"
    "      for k, v in pairs(want) do if v ~= '' and h[k] ~= v then ok = false end end\n"
    "      if ARGV[5] ~= '' and h.customer ~= ARGV[5] then ok = false end\n"
    "      local b = (h.breached_first_response or h.breached_resolution) and '1' or '0'\n"
    "      if ARGV[6] ~= '' and b ~= ARGV[6] then ok = false end\n"
    "      if ok then\n"
    "        out[#out + 1] = sc\n"
    "        out[#out + 1] = m\n"
    "        out[#out + 1] = f\n"
    "        n = n + 1\n"
    "        if n == limit then stopped = true; break end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if last_s and (stopped or #ids == 2 * walk) then\n"
    "  out[1], out[2], out[3] = 0, last_s, last_m\n"
    "end\n"
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

typedef struct ticket_read {
    tp_http_request_t *req;
    int script;
    char id[80];
} ticket_read_t;

static void ticket_cb(tp_store_t *store, redisReply *r, void *arg) {
    ticket_read_t *rd = arg;
    tp_http_request_t *req = rd->req;
    free(rd);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("ticket read: %s", r->str);
        tp_query_unavailable(req);
        return;
    }
    if (r->elements != 2 || r->element[0]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->elements == 0) {
        tp_query_error(req, 404, "no such ticket", NULL);
        return;
    }
    json_t *o = ticket_json(r->element[0]);
    int64_t now = tp_now_ms();
    json_t *sla = json_object();
    json_object_set_new(sla, "first_response", clock_json(o, "first_response", now));
    json_object_set_new(sla, "resolution", clock_json(o, "resolution", now));
    json_object_set_new(o, "sla", sla);
    json_t *h = json_array();
    const redisReply *hist = r->element[1];
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

/* The ticket's customer is known: its ticket and history, in its slot. */
static void owner_cb(tp_store_t *store, redisReply *r, void *arg) {
    ticket_read_t *rd = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) tp_log_error("ticket read: %s", r->str);
        tp_query_unavailable(rd->req);
        free(rd);
        return;
    }
    if (r->type != REDIS_REPLY_STRING || !tp_query_id_ok(r->str)) {
        tp_query_error(rd->req, 404, "no such ticket", NULL);
        free(rd);
        return;
    }
    const char *ns = tp_store_ns(store);
    char ticket[TP_CUSTOMER_MAX + 160], history[TP_CUSTOMER_MAX + 170];
    tp_key_customer(ticket, sizeof ticket, ns, r->str, "ticket:%s", rd->id);
    tp_key_customer(history, sizeof history, ns, r->str, "ticket:%s:history", rd->id);
    const char *argv[2] = {ticket, history};
    size_t lens[2] = {strlen(ticket), strlen(history)};
    tp_http_request_t *req = rd->req;
    if (tp_store_eval(store, rd->script, ticket_cb, rd, 2, 2, argv, lens) < 0) {
        free(rd);
        tp_query_unavailable(req);
    }
}

void tp_ticket_get(tp_store_t *store, int script, tp_http_request_t *req, const char *id) {
    if (!tp_query_id_ok(id) || strlen(id) > 64) {
        tp_query_error(req, 400, "ticket: not a valid ticket id", "ticket");
        return;
    }
    ticket_read_t *rd = calloc(1, sizeof *rd);
    if (!rd) abort();
    rd->req = req;
    rd->script = script;
    snprintf(rd->id, sizeof rd->id, "%s", id);
    char index[128];
    tp_key(index, sizeof index, tp_store_ns(store), "{j}:ticket");
    if (tp_store_command(store, owner_cb, rd, "HGET %s %s", index, id) < 0) {
        free(rd);
        tp_query_unavailable(req);
    }
}

/* A place in the walk: newest first is score down, then member down. */
typedef struct walk_pos {
    long long score;
    char *member;
} walk_pos_t;

/* < 0 when `a` comes before (is newer than) `b` in the walk. */
static int pos_cmp(const walk_pos_t *a, const walk_pos_t *b) {
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return -strcmp(a->member, b->member);
}

typedef struct listed {
    walk_pos_t pos;
    json_t *ticket;
} listed_t;

typedef struct list_read {
    tp_http_request_t *req;
    long long limit;
    int waiting, failed;
    listed_t *items;
    size_t n, cap;
    int resume_set;      /* some shard has entries left after its walk */
    walk_pos_t resume;   /* the newest of those shards' resume points */
} list_read_t;

static int listed_cmp(const void *a, const void *b) {
    return pos_cmp(&((const listed_t *)a)->pos, &((const listed_t *)b)->pos);
}

/* "<score>.<hex of member>" into `out`. */
static void cursor_of(const walk_pos_t *p, char *out, size_t len) {
    int n = snprintf(out, len, "%lld.", p->score);
    for (const unsigned char *m = (const unsigned char *)p->member;
         *m && n >= 0 && (size_t)n + 3 < len; m++)
        n += snprintf(out + n, len - (size_t)n, "%02x", *m);
}

/* Reads a cursor; 0, or -1 when it is none of ours. */
static int cursor_parse(const char *s, walk_pos_t *p, char *member, size_t len) {
    size_t digits = strspn(s, "0123456789");
    if (digits == 0 || digits > 15 || s[digits] != '.') return -1;
    const char *hex = s + digits + 1;
    size_t hl = strlen(hex);
    if (hl == 0 || hl % 2 || hl / 2 >= len || strspn(hex, "0123456789abcdef") != hl)
        return -1;
    for (size_t i = 0; i < hl / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || v == 0) return -1;
        member[i] = (char)v;
    }
    member[hl / 2] = '\0';
    p->score = strtoll(s, NULL, 10);
    p->member = member;
    return 0;
}

static char *reply_dup(const redisReply *r) {
    char *s = strndup(r->type == REDIS_REPLY_STRING ? r->str : "",
                      r->type == REDIS_REPLY_STRING ? r->len : 0);
    if (!s) abort();
    return s;
}

static void list_answer(list_read_t *rd) {
    if (rd->n) qsort(rd->items, rd->n, sizeof *rd->items, listed_cmp);
    size_t shown = 0; /* tickets newer than every unwalked rest */
    while (shown < rd->n &&
           (!rd->resume_set || pos_cmp(&rd->items[shown].pos, &rd->resume) <= 0))
        shown++;
    json_t *items = json_array();
    int64_t now = tp_now_ms();
    const walk_pos_t *next = NULL;
    for (size_t i = 0; i < shown && i < (size_t)rd->limit; i++) {
        json_t *t = rd->items[i].ticket;
        json_t *sla = json_object();
        json_object_set_new(sla, "first_response", clock_json(t, "first_response", now));
        json_object_set_new(sla, "resolution", clock_json(t, "resolution", now));
        json_object_set_new(t, "sla", sla);
        json_array_append(items, t);
        next = &rd->items[i].pos;
    }
    if (shown <= (size_t)rd->limit) next = rd->resume_set ? &rd->resume : NULL;
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(items)));
    json_object_set_new(o, "tickets", items);
    if (next) {
        char cur[600];
        cursor_of(next, cur, sizeof cur);
        json_object_set_new(o, "next_cursor", json_string(cur));
    } else {
        json_object_set_new(o, "next_cursor", json_null());
    }
    tp_query_respond(rd->req, 200, o);
}

static void list_settle(list_read_t *rd) {
    if (--rd->waiting) return;
    if (rd->failed)
        tp_query_unavailable(rd->req);
    else
        list_answer(rd);
    for (size_t i = 0; i < rd->n; i++) {
        free(rd->items[i].pos.member);
        json_decref(rd->items[i].ticket);
    }
    free(rd->items);
    free(rd->resume.member);
    free(rd);
}

static void list_cb(tp_store_t *store, redisReply *r, void *arg) {
    list_read_t *rd = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || (r->elements - 3) % 3) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("tickets list: %s", r->str);
        rd->failed = 1;
        list_settle(rd);
        return;
    }
    if (r->element[0]->integer == 0) { /* this shard has more: a resume point */
        walk_pos_t p = {atoll(r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str
                                                                       : "0"),
                        reply_dup(r->element[2])};
        if (!rd->resume_set || pos_cmp(&p, &rd->resume) < 0) {
            free(rd->resume.member);
            rd->resume = p;
            rd->resume_set = 1;
        } else {
            free(p.member);
        }
    }
    for (size_t i = 3; i + 2 < r->elements; i += 3) {
        if (rd->n == rd->cap) {
            rd->cap = rd->cap ? rd->cap * 2 : 64;
            rd->items = realloc(rd->items, rd->cap * sizeof *rd->items);
            if (!rd->items) abort();
        }
        listed_t *it = &rd->items[rd->n++];
        it->pos.score = atoll(r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str
                                                                       : "0");
        it->pos.member = reply_dup(r->element[i + 1]);
        it->ticket = ticket_json(r->element[i + 2]);
    }
    list_settle(rd);
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
    walk_pos_t after = {0, NULL};
    char after_member[TP_CUSTOMER_MAX + 100];
    if (cursor_s && cursor_parse(cursor_s, &after, after_member, sizeof after_member) < 0) {
        tp_query_error(req, 400, "cursor: not a cursor of this list", "cursor");
        return;
    }
    const char *ns = tp_store_ns(store);
    char index[512], prefix[32];
    int by_customer = customer != NULL;
    char after_s[24] = "";
    if (cursor_s) snprintf(after_s, sizeof after_s, "%lld", after.score);
    char lim[24], walk[24];
    snprintf(lim, sizeof lim, "%lld", limit + 1); /* one more: is there a next page */
    snprintf(walk, sizeof walk, "%d", WALK_MAX);
    list_read_t *rd = calloc(1, sizeof *rd);
    if (!rd) abort();
    rd->req = req;
    rd->limit = limit;
    rd->waiting = 1; /* held while sending */
    /* a customer's tickets are in its shard; the other indexes in all */
    int first = customer ? tp_key_shard(customer) : 0;
    int last = customer ? first : TP_SHARDS - 1;
    for (int shard = first; shard <= last && !rd->failed; shard++) {
        tp_key_shard_key(prefix, sizeof prefix, ns, shard, "%s", "");
        if (customer) tp_key_customer(index, sizeof index, ns, customer, "ticket_ids");
        else if (owner) tp_key_shard_key(index, sizeof index, ns, shard, "tickets:owner:%s", owner);
        else if (dept)
            tp_key_shard_key(index, sizeof index, ns, shard, "tickets:department:%s", dept);
        else if (status)
            tp_key_shard_key(index, sizeof index, ns, shard, "tickets:status:%s", status);
        else if (*b == '1') tp_key_shard_key(index, sizeof index, ns, shard, "tickets:breached");
        else tp_key_shard_key(index, sizeof index, ns, shard, "tickets:all");
        const char *argv[12] = {index, prefix, status ? status : "", dept ? dept : "",
                                owner ? owner : "", customer ? customer : "", b, after_s,
                                cursor_s ? after_member : "", lim, walk,
                                by_customer ? "1" : "0"};
        size_t lens[12];
        for (int i = 0; i < 12; i++) lens[i] = strlen(argv[i]);
        rd->waiting++;
        if (tp_store_eval(store, script, list_cb, rd, 1, 12, argv, lens) < 0) {
            rd->waiting--;
            rd->failed = 1;
        }
    }
    list_settle(rd);
}
