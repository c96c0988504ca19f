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
 * One script per customer reads its profile's merged_from and its
 * timeline's page (one slot: a customer's keys; merged customers live in
 * other shards, so each is read on its own as its id is learnt), each
 * timeline limit + 1 deep: enough to know whether
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

/* KEYS[1] the profile, KEYS[2] the timeline (one customer's); ARGV[1]
 * the range's start ("+", "(<id>", or "" for nothing older), ARGV[2] how
 * many. Returns {exists, page, merged_from (or "")}. */
static const char TIMELINE_LUA[] =
    "local exists = redis.call('EXISTS', KEYS[1], KEYS[2])\n"
    "local page = {}\n"
    "if ARGV[1] ~= '' then\n"
    "  page = redis.call('XREVRANGE', KEYS[2], ARGV[1], '-', 'COUNT', ARGV[2])\n"
    "end\n"
    "return {exists, page, redis.call('HGET', KEYS[1], 'merged_from') or ''}\n";

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

typedef struct candidate {
    uint64_t ms, seq;
    size_t source; /* 0: the customer's own timeline, then in the order found */
    json_t *entry; /* with its "customer" */
} candidate_t;

/* merged_from is followed through: a record merged into this one may
 * itself have absorbed others before (scoring lists only the direct ones),
 * each customer once, at most MERGED_MAX. */
typedef struct timeline_ctx {
    tp_http_request_t *req;
    tp_store_t *store;
    int script;
    size_t limit;
    char start[48], count[16];
    char sources[MERGED_MAX + 1][TP_CUSTOMER_MAX + 1]; /* [0]: the customer */
    size_t nsources;
    int waiting, failed, exists;
    candidate_t *cands;
    size_t n, cap;
} timeline_ctx_t;

typedef struct source_read {
    timeline_ctx_t *ctx;
    size_t source;
} source_read_t;

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

static void collect(timeline_ctx_t *ctx, const redisReply *page, size_t source) {
    if (page->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i < page->elements; i++) {
        const redisReply *e = page->element[i];
        candidate_t c = {0, 0, source, NULL};
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            stream_id_parse(e->element[0]->str, e->element[0]->len, &c.ms,
                            &c.seq) < 0)
            continue;
        c.entry = tp_query_stream_entry(e);
        if (!c.entry) continue;
        json_object_set_new(c.entry, "customer", json_string(ctx->sources[source]));
        if (ctx->n == ctx->cap) {
            ctx->cap = ctx->cap ? ctx->cap * 2 : 64;
            ctx->cands = realloc(ctx->cands, ctx->cap * sizeof *ctx->cands);
            if (!ctx->cands) abort();
        }
        ctx->cands[ctx->n++] = c;
    }
}

static void timeline_answer(timeline_ctx_t *ctx) {
    tp_http_request_t *req = ctx->req;
    if (!ctx->exists) {
        tp_query_error(req, 404, "no such customer", NULL);
        return;
    }
    candidate_t *cands = ctx->cands;
    size_t n = ctx->n;
    if (n) qsort(cands, n, sizeof *cands, candidate_cmp);

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
    for (size_t i = 0; i < shown; i++) json_array_append(entries, cands[i].entry);
    json_t *o = json_object();
    json_object_set_new(o, "customer", json_string(ctx->sources[0]));
    json_object_set_new(o, "entries", entries);
    if (n > shown && shown > 0) {
        char next[48];
        snprintf(next, sizeof next, "%" PRIu64 "-%" PRIu64, cands[shown - 1].ms,
                 cands[shown - 1].seq);
        json_object_set_new(o, "next_before", json_string(next));
    } else {
        json_object_set_new(o, "next_before", json_null());
    }
    tp_query_respond(req, 200, o);
}

static void timeline_settle(timeline_ctx_t *ctx) {
    if (--ctx->waiting) return;
    if (ctx->failed)
        tp_query_unavailable(ctx->req);
    else
        timeline_answer(ctx);
    for (size_t i = 0; i < ctx->n; i++) json_decref(ctx->cands[i].entry);
    free(ctx->cands);
    free(ctx);
}

static void source_send(timeline_ctx_t *ctx, size_t source);

/* Queues the customers `text` (a JSON list) names, not seen yet. */
static void absorbed(timeline_ctx_t *ctx, const redisReply *text) {
    if (text->type != REDIS_REPLY_STRING || !text->len) return;
    json_t *list = json_loadb(text->str, text->len, 0, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *c = json_string_value(v);
        if (!c || !tp_query_id_ok(c) || ctx->nsources > MERGED_MAX) continue;
        int seen = 0;
        for (size_t k = 0; k < ctx->nsources && !seen; k++)
            seen = strcmp(ctx->sources[k], c) == 0;
        if (seen) continue;
        snprintf(ctx->sources[ctx->nsources], sizeof ctx->sources[0], "%s", c);
        source_send(ctx, ctx->nsources++);
    }
    json_decref(list);
}

static void timeline_cb(tp_store_t *store, redisReply *r, void *arg) {
    source_read_t *rd = arg;
    timeline_ctx_t *ctx = rd->ctx;
    size_t source = rd->source;
    free(rd);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("timeline read: %s", r->str);
        ctx->failed = 1;
    } else if (!ctx->failed) {
        if (source == 0) ctx->exists = r->element[0]->integer != 0;
        collect(ctx, r->element[1], source);
        absorbed(ctx, r->element[2]);
    }
    timeline_settle(ctx);
}

static void source_send(timeline_ctx_t *ctx, size_t source) {
    const char *ns = tp_store_ns(ctx->store);
    char profile[256], timeline[256];
    tp_key_customer(profile, sizeof profile, ns, ctx->sources[source], "profile");
    tp_key_customer(timeline, sizeof timeline, ns, ctx->sources[source], "timeline");
    const char *argv[4] = {profile, timeline, ctx->start, ctx->count};
    size_t lens[4];
    for (int i = 0; i < 4; i++) lens[i] = strlen(argv[i]);
    source_read_t *rd = malloc(sizeof *rd);
    if (!rd) abort();
    rd->ctx = ctx;
    rd->source = source;
    ctx->waiting++;
    if (tp_store_eval(ctx->store, ctx->script, timeline_cb, rd, 2, 4, argv, lens) < 0) {
        free(rd);
        ctx->waiting--;
        ctx->failed = 1;
    }
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

    timeline_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->req = req;
    ctx->store = store;
    ctx->script = script;
    ctx->limit = limit;
    if (!before)
        snprintf(ctx->start, sizeof ctx->start, "+");
    else if (ms == 0 && seq == 0)
        ctx->start[0] = '\0'; /* nothing is older than 0-0 */
    else
        snprintf(ctx->start, sizeof ctx->start, "(%" PRIu64 "-%" PRIu64, ms, seq);
    snprintf(ctx->count, sizeof ctx->count, "%zu", limit + 1);
    snprintf(ctx->sources[0], sizeof ctx->sources[0], "%s", customer);
    ctx->nsources = 1;
    ctx->waiting = 1; /* held while the first read is sent */
    source_send(ctx, 0);
    timeline_settle(ctx);
}
