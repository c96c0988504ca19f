/* intake_reminders.c: GET /v1/reminders?owner=<user>[&due_before=<ms>]:
 * what is due for a person (default: within the next 24 hours), soonest
 * first, each with the rule that planned it (issue 4). Reads the owner's
 * index in each part of each shard, {s<n>}:r:owner:<p>:<user> (customer ->
 * the earliest due time of its reminders the person owns), then the books
 * of the soonest of those customers in their group hashes (tp/keys.h),
 * keeping the person's reminders due by then (tp_query_book_reminders, the
 * decoding the customer's record shares), and merges them by due time.
 * Reads only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake_query.h"
#include "intake_reply.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

/* One customer of the owner's indexes, before its book is read. */
typedef struct indexed {
    char *customer; /* owned */
    int64_t due;    /* the earliest due time of the owner's reminders */
} indexed_t;

typedef struct reminders_read {
    tp_http_request_t *req;
    char owner[TP_ACTOR_MAX + 1];
    int64_t due_before;
    json_t *items; /* the owner's reminders of every book read */
    int waiting, failed;
    int parts_waiting;
    indexed_t *found; /* from every part of every shard, then sorted by due */
    size_t nfound, capfound;
    size_t nread; /* the soonest customers whose books are read */
} reminders_read_t;

static int item_by_due(const void *a, const void *b) {
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t dx = json_integer_value(json_object_get(x, "due_at"));
    json_int_t dy = json_integer_value(json_object_get(y, "due_at"));
    if (dx != dy) return dx < dy ? -1 : 1;
    return strcmp(json_string_value(json_object_get(x, "id")),
                  json_string_value(json_object_get(y, "id")));
}

/* The items soonest first, at most TP_QUERY_LIST_MAX; truncated when more
 * were found, or customers with some were left unread. */
static json_t *soonest(reminders_read_t *rd, int *truncated) {
    size_t n = json_array_size(rd->items);
    json_t **rows = malloc((n ? n : 1) * sizeof *rows);
    if (!rows) abort();
    for (size_t i = 0; i < n; i++) rows[i] = json_array_get(rd->items, i);
    qsort(rows, n, sizeof *rows, item_by_due);
    *truncated = n > TP_QUERY_LIST_MAX || rd->nfound > rd->nread;
    json_t *out = json_array();
    for (size_t i = 0; i < n && i < TP_QUERY_LIST_MAX; i++) json_array_append(out, rows[i]);
    free(rows);
    return out;
}

static void answer(reminders_read_t *rd) {
    if (rd->failed) {
        tp_query_unavailable(rd->req);
    } else {
        int truncated;
        json_t *items = soonest(rd, &truncated);
        json_t *o = json_object();
        json_object_set_new(o, "owner", json_string(rd->owner));
        json_object_set_new(o, "due_before", json_integer(rd->due_before));
        json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(items)));
        json_object_set_new(o, "reminders", items);
        if (truncated) json_object_set_new(o, "truncated", json_true());
        tp_query_respond(rd->req, 200, o);
    }
    json_decref(rd->items);
    for (size_t i = 0; i < rd->nfound; i++) free(rd->found[i].customer);
    free(rd->found);
    free(rd);
}

typedef struct book_ctx {
    reminders_read_t *rd;
    char customer[]; /* NUL-terminated */
} book_ctx_t;

static void book_cb(tp_store_t *store, redisReply *r, void *arg) {
    book_ctx_t *ctx = arg;
    reminders_read_t *rd = ctx->rd;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) tp_log_error("reminders read: %s", r->str);
        rd->failed = 1;
    } else if (r->type == REDIS_REPLY_STRING &&
               tp_query_book_reminders(ctx->customer, r->str, r->len, rd->owner,
                                       rd->due_before, rd->items) < 0) {
        tp_log_error("reminders read: %s: its book of reminders does not decode",
                     ctx->customer);
    } /* nil: its reminders closed meanwhile */
    free(ctx);
    if (--rd->waiting == 0) answer(rd);
}

static int customer_by_due(const void *a, const void *b) {
    const indexed_t *x = a, *y = b;
    if (x->due != y->due) return x->due < y->due ? -1 : 1;
    return strcmp(x->customer, y->customer);
}

/* Every part answered: the books of the soonest TP_QUERY_LIST_MAX + 1
 * customers. Each has one of the owner's reminders at its index's due time
 * or later: a customer after those has only reminders after as many as the
 * list shows (up to ties in due time), and the one more tells whether the
 * list is cut. */
static void read_books(tp_store_t *store, reminders_read_t *rd) {
    if (rd->failed) {
        answer(rd);
        return;
    }
    if (rd->nfound > 1) qsort(rd->found, rd->nfound, sizeof *rd->found, customer_by_due);
    rd->nread = rd->nfound > TP_QUERY_LIST_MAX + 1 ? TP_QUERY_LIST_MAX + 1 : rd->nfound;
    rd->waiting = 1; /* held while sending */
    for (size_t i = 0; i < rd->nread; i++) {
        const char *customer = rd->found[i].customer;
        size_t len = strlen(customer);
        char key[256];
        if (tp_key(key, sizeof key, tp_store_ns(store), "{s%d}:r:c:%d", tp_key_shard(customer),
                   tp_key_reminder_group(customer)) < 0)
            continue;
        book_ctx_t *ctx = malloc(sizeof *ctx + len + 1);
        if (!ctx) abort();
        ctx->rd = rd;
        memcpy(ctx->customer, customer, len + 1);
        if (tp_store_command(store, book_cb, ctx, "HGET %s %s", key, customer) < 0) {
            free(ctx);
            rd->failed = 1;
            continue;
        }
        rd->waiting++;
    }
    if (--rd->waiting == 0) answer(rd); /* nothing to read, or all failed */
}

static void index_cb(tp_store_t *store, redisReply *r, void *arg) {
    reminders_read_t *rd = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("reminders read: %s", r->str);
        rd->failed = 1;
    } else {
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *customer = r->element[i], *due = r->element[i + 1];
            if (customer->type != REDIS_REPLY_STRING || due->type != REDIS_REPLY_STRING)
                continue;
            if (rd->nfound == rd->capfound) {
                rd->capfound = rd->capfound ? 2 * rd->capfound : 64;
                rd->found = realloc(rd->found, rd->capfound * sizeof *rd->found);
                if (!rd->found) abort();
            }
            indexed_t *x = &rd->found[rd->nfound++];
            if (!(x->customer = strdup(customer->str))) abort();
            x->due = atoll(due->str);
        }
    }
    if (--rd->parts_waiting == 0) read_books(store, rd);
}

void tp_reminders_get(tp_store_t *store, tp_http_request_t *req) {
    const char *owner = tp_http_query(req, "owner");
    const char *before = tp_http_query(req, "due_before");
    if (!owner || !tp_query_name_ok(owner, TP_ACTOR_MAX)) {
        tp_query_error(req, 400, "owner: required, 1 to 128 bytes of text", "owner");
        return;
    }
    int64_t due_before = tp_now_ms() + 86400000;
    if (before) {
        char *end;
        long long v = strtoll(before, &end, 10);
        if (!*before || *end || v < 0) {
            tp_query_error(req, 400, "due_before: must be a time in ms since the epoch",
                           "due_before");
            return;
        }
        due_before = v;
    }
    reminders_read_t *rd = calloc(1, sizeof *rd);
    if (!rd) abort();
    rd->req = req;
    rd->due_before = due_before;
    rd->items = json_array();
    snprintf(rd->owner, sizeof rd->owner, "%s", owner);
    /* every part of the owner's index, each up to the list's limit and one
     * (the soonest customers of them all are among those) */
    rd->parts_waiting = 1; /* held while sending */
    for (int i = 0; i < TP_SHARDS * TP_OWNER_PARTS; i++) {
        char key[512];
        tp_key(key, sizeof key, tp_store_ns(store), "{s%d}:r:owner:%d:%s", i / TP_OWNER_PARTS,
               i % TP_OWNER_PARTS, owner);
        if (tp_store_command(store, index_cb, rd,
                             "ZRANGEBYSCORE %s -inf %lld WITHSCORES LIMIT 0 %d", key,
                             (long long)tp_key_due_score(due_before),
                             TP_QUERY_LIST_MAX + 1) < 0) {
            rd->failed = 1;
            continue;
        }
        rd->parts_waiting++;
    }
    if (--rd->parts_waiting == 0) read_books(store, rd);
}
