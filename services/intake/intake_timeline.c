/* intake_timeline.c: GET /v1/customers/{id}/timeline?before=&limit=, the
 * customer's timeline newest first, a page at a time (R-SHARED-1).
 *
 * A page holds the entries strictly older than `before` (a stream id
 * "<ms>-<seq>"; absent: from the newest), at most `limit` (1..200, default
 * 50). When the profile lists customers merged into this one
 * (merged_from), their timelines are merged in by stream id, and those of
 * the customers they had absorbed in turn (at most MERGED_MAX); every
 * entry names the customer whose timeline holds it. next_before is the id to
 * pass as `before` for the next page, null when there is none.
 *
 * One script reads the profile's merged_from and every timeline's page in
 * one round trip, each timeline limit + 1 deep: enough to know whether
 * another page exists, and to keep entries of different timelines that
 * share one stream id on the same page: a page never ends between two
 * entries with the same id (it ends before them, or, when they are the
 * whole page, after them: then it holds more than `limit`). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake_query.h"
#include "intake_reply.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 200
#define MERGED_MAX 64 /* merged customers whose timelines are merged in */

/* KEYS[1] the profile, KEYS[2] the timeline; ARGV[1] the namespace,
 * ARGV[2] the range's start ("+", "(<id>", or "" for nothing older),
 * ARGV[3] how many per timeline, ARGV[4] the customer, ARGV[5] the most
 * merged customers followed. Returns {exists, page, merged customer, its
 * page, ...}. merged_from is followed through: a record merged into this
 * one may itself have absorbed others before (scoring lists only the
 * direct ones), each customer once. */
static const char TIMELINE_LUA[] =
    "local exists = redis.call('EXISTS', KEYS[1], KEYS[2])\n"
    "local function page(key)\n"
    "  if ARGV[2] == '' then return {} end\n"
    "  return redis.call('XREVRANGE', key, ARGV[2], '-', 'COUNT', ARGV[3])\n"
    "end\n"
    "local out = {exists, page(KEYS[2])}\n"
    "local seen, queue = {[ARGV[4]] = true}, {}\n"
    "local function absorbed(text)\n"
    "  if not text then return end\n"
    "  local ok, list = pcall(cjson.decode, text)\n"
    "  if not ok or type(list) ~= 'table' then return end\n"
    "  for _, c in ipairs(list) do\n"
    "    if type(c) == 'string' and #c <= 128 and not seen[c] and\n"
    "       string.match(c, '^[%w._:@+-]+$') then\n"
    "      seen[c] = true\n"
    "      queue[#queue + 1] = c\n"
    "    end\n"
    "  end\n"
    "end\n"
    "absorbed(redis.call('HGET', KEYS[1], 'merged_from'))\n"
    "local i, most = 1, tonumber(ARGV[5])\n"
    "while i <= #queue and i <= most do\n"
    "  local c = queue[i]\n"
    "  local prefix = ARGV[1] .. '{c:' .. c .. '}:'\n"
    "  out[#out + 1] = c\n"
    "  out[#out + 1] = page(prefix .. 'timeline')\n"
    "  absorbed(redis.call('HGET', prefix .. 'profile', 'merged_from'))\n"
    "  i = i + 1\n"
    "end\n"
    "return out\n";

int tp_timeline_script(tp_store_t *store) {
    return tp_store_script_ro(store, "timeline", TIMELINE_LUA);
}

/* "<ms>-<seq>", both decimal and within 64 bits. */
static int stream_id_parse(const char *s, size_t len, uint64_t *ms,
                           uint64_t *seq) {
    uint64_t part[2] = {0, 0};
    int which = 0;
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '-' && which == 0 && digits > 0) {
            which = 1;
            digits = 0;
            continue;
        }
        if (c < '0' || c > '9') return -1;
        unsigned d = (unsigned)(c - '0');
        if (part[which] > (UINT64_MAX - d) / 10) return -1;
        part[which] = part[which] * 10 + d;
        digits++;
    }
    if (which != 1 || digits == 0) return -1;
    *ms = part[0];
    *seq = part[1];
    return 0;
}

typedef struct timeline_ctx {
    tp_http_request_t *req;
    char customer[TP_CUSTOMER_MAX + 1];
    size_t limit;
} timeline_ctx_t;

typedef struct candidate {
    uint64_t ms, seq;
    size_t source; /* 0: the customer's own timeline, then merged_from order */
    const redisReply *entry;
    const redisReply *customer; /* NULL: the customer asked for */
} candidate_t;

/* Newest first; among equal ids, the customer's own timeline first. */
static int candidate_cmp(const void *a, const void *b) {
    const candidate_t *x = a, *y = b;
    if (x->ms != y->ms) return x->ms < y->ms ? 1 : -1;
    if (x->seq != y->seq) return x->seq < y->seq ? 1 : -1;
    return x->source < y->source ? -1 : x->source > y->source;
}

static int same_id(const candidate_t *a, const candidate_t *b) {
    return a->ms == b->ms && a->seq == b->seq;
}

static size_t collect(candidate_t *out, size_t n, const redisReply *page,
                      size_t source, const redisReply *customer) {
    if (page->type != REDIS_REPLY_ARRAY) return n;
    for (size_t i = 0; i < page->elements; i++) {
        const redisReply *e = page->element[i];
        candidate_t c = {0, 0, source, e, customer};
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            stream_id_parse(e->element[0]->str, e->element[0]->len, &c.ms,
                            &c.seq) < 0)
            continue;
        out[n++] = c;
    }
    return n;
}

static void timeline_cb(tp_store_t *store, redisReply *r, void *arg) {
    timeline_ctx_t *ctx = arg;
    tp_http_request_t *req = ctx->req;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("timeline read: %s", r->str);
        tp_query_unavailable(req);
        free(ctx);
        return;
    }
    if (r->element[0]->integer == 0) {
        tp_query_error(req, 404, "no such customer", NULL);
        free(ctx);
        return;
    }
    size_t total = 0;
    for (size_t i = 1; i < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_ARRAY)
            total += r->element[i]->elements;
    candidate_t *cands = calloc(total + 1, sizeof *cands);
    if (!cands) abort();
    size_t n = collect(cands, 0, r->element[1], 0, NULL);
    for (size_t i = 2; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            n = collect(cands, n, r->element[i + 1], i / 2, r->element[i]);
    qsort(cands, n, sizeof *cands, candidate_cmp);

    size_t shown = n < ctx->limit ? n : ctx->limit;
    if (n > shown && same_id(&cands[shown - 1], &cands[shown])) {
        /* the page would end inside a run of equal ids (one per timeline
         * at most), and the next page, strictly older, would skip the rest
         * of the run: end the page before the run, or, when the run is
         * the whole page, after it */
        size_t keep = shown - 1;
        while (keep > 0 && same_id(&cands[keep - 1], &cands[shown]))
            keep--;
        if (keep > 0) {
            shown = keep;
        } else {
            while (shown < n && same_id(&cands[shown - 1], &cands[shown]))
                shown++;
        }
    }

    json_t *entries = json_array();
    for (size_t i = 0; i < shown; i++) {
        json_t *e = tp_query_stream_entry(cands[i].entry);
        if (!e) continue;
        const redisReply *c = cands[i].customer;
        json_object_set_new(e, "customer",
                            c ? json_stringn(c->str, c->len)
                              : json_string(ctx->customer));
        json_array_append_new(entries, e);
    }
    json_t *o = json_object();
    json_object_set_new(o, "customer", json_string(ctx->customer));
    json_object_set_new(o, "entries", entries);
    if (n > shown && shown > 0) {
        char next[48];
        snprintf(next, sizeof next, "%" PRIu64 "-%" PRIu64, cands[shown - 1].ms,
                 cands[shown - 1].seq);
        json_object_set_new(o, "next_before", json_string(next));
    } else {
        json_object_set_new(o, "next_before", json_null());
    }
    free(cands);
    free(ctx);
    tp_query_respond(req, 200, o);
}

void tp_timeline_get(tp_store_t *store, int script, tp_http_request_t *req,
                     const char *customer) {
    if (!tp_query_id_ok(customer)) {
        tp_query_error(req, 400, "customer: not a valid customer id",
                       "customer");
        return;
    }
    const char *before = tp_http_query(req, "before");
    const char *limit_s = tp_http_query(req, "limit");
    uint64_t ms = 0, seq = 0;
    if (before && stream_id_parse(before, strlen(before), &ms, &seq) < 0) {
        tp_query_error(req, 400,
                       "before: must be a timeline entry id <ms>-<seq>",
                       "before");
        return;
    }
    size_t limit = PAGE_DEFAULT;
    if (limit_s) {
        size_t len = strlen(limit_s);
        const char *digits = limit_s + strspn(limit_s, "0");
        limit = 0; /* not a number of at most 3 digits: out of range */
        if (len > 0 && strspn(limit_s, "0123456789") == len &&
            strlen(digits) <= 3)
            limit = (size_t)strtoul(digits, NULL, 10);
        if (limit < 1 || limit > PAGE_MAX) {
            char msg[64];
            snprintf(msg, sizeof msg, "limit: must be 1 to %d", PAGE_MAX);
            tp_query_error(req, 400, msg, "limit");
            return;
        }
    }

    char start[48], count[16], profile[256], timeline[256];
    if (!before)
        snprintf(start, sizeof start, "+");
    else if (ms == 0 && seq == 0)
        start[0] = '\0'; /* nothing is older than 0-0 */
    else
        snprintf(start, sizeof start, "(%" PRIu64 "-%" PRIu64, ms, seq);
    snprintf(count, sizeof count, "%zu", limit + 1);
    const char *ns = tp_store_ns(store);
    tp_key(profile, sizeof profile, ns, "{c:%s}:profile", customer);
    tp_key(timeline, sizeof timeline, ns, "{c:%s}:timeline", customer);

    timeline_ctx_t *ctx = malloc(sizeof *ctx);
    if (!ctx) abort();
    ctx->req = req;
    ctx->limit = limit;
    snprintf(ctx->customer, sizeof ctx->customer, "%s", customer);
    char most[16];
    snprintf(most, sizeof most, "%d", MERGED_MAX);
    const char *argv[7] = {profile, timeline, ns, start, count, customer, most};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    if (tp_store_eval(store, script, timeline_cb, ctx, 2, 7, argv, lens) < 0) {
        free(ctx);
        tp_query_unavailable(req);
    }
}
