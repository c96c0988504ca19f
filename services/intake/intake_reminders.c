/* intake_reminders.c: GET /v1/reminders?owner=<user>[&due_before=<ms>]:
 * what is due for a person (default: within the next 24 hours), soonest
 * first, each with the rule that planned it (issue 4). Reads the owner's
 * index in each part of each shard, {s<n>}:r:owner:<p>:<user> (reminder id
 * -> due), merges them by due time, then reads each reminder's record in
 * its customer's group hash (tp/keys.h). Reads only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake_query.h"
#include "intake_reply.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

/* One reminder of the owner's indexes, before its record is read. */
typedef struct indexed {
    char *id; /* owned */
    int64_t due;
} indexed_t;

typedef struct reminders_read {
    tp_http_request_t *req;
    char owner[TP_ACTOR_MAX + 1];
    int64_t due_before;
    json_t *items;
    int waiting, failed, truncated;
    int shards_waiting;
    indexed_t *found; /* from every shard, then sorted by due */
    size_t nfound, capfound;
} reminders_read_t;

static void answer(reminders_read_t *rd) {
    if (rd->failed) {
        tp_query_unavailable(rd->req);
    } else {
        json_t *o = json_object();
        json_object_set_new(o, "owner", json_string(rd->owner));
        json_object_set_new(o, "due_before", json_integer(rd->due_before));
        json_object_set_new(o, "count", json_integer((json_int_t)json_array_size(rd->items)));
        json_object_set(o, "reminders", rd->items);
        if (rd->truncated) json_object_set_new(o, "truncated", json_true());
        tp_query_respond(rd->req, 200, o);
    }
    json_decref(rd->items);
    for (size_t i = 0; i < rd->nfound; i++) free(rd->found[i].id);
    free(rd->found);
    free(rd);
}

typedef struct item_ctx {
    reminders_read_t *rd;
    size_t index;
    char id[]; /* the reminder, NUL-terminated */
} item_ctx_t;

static void item_cb(tp_store_t *store, redisReply *r, void *arg) {
    item_ctx_t *ctx = arg;
    reminders_read_t *rd = ctx->rd;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        rd->failed = 1;
    } else if (r->type == REDIS_REPLY_STRING) {
        json_t *j = tp_query_reminder(ctx->id, r->str, r->len);
        if (j) json_array_set_new(rd->items, ctx->index, j);
    } /* nil: closed meanwhile; its slot stays null and is dropped */
    free(ctx);
    if (--rd->waiting == 0) {
        for (size_t i = json_array_size(rd->items); i-- > 0;)
            if (json_is_null(json_array_get(rd->items, i))) json_array_remove(rd->items, i);
        answer(rd);
    }
}

static int by_due(const void *a, const void *b) {
    const indexed_t *x = a, *y = b;
    if (x->due != y->due) return x->due < y->due ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Every shard answered: the soonest TP_QUERY_LIST_MAX, then their records. */
static void read_records(tp_store_t *store, reminders_read_t *rd) {
    if (rd->failed) {
        answer(rd);
        return;
    }
    if (rd->nfound > 1) qsort(rd->found, rd->nfound, sizeof *rd->found, by_due);
    rd->truncated = rd->nfound > TP_QUERY_LIST_MAX;
    size_t n = rd->truncated ? TP_QUERY_LIST_MAX : rd->nfound;
    rd->waiting = 1; /* held while sending */
    for (size_t i = 0; i < n; i++) {
        const char *id = rd->found[i].id;
        size_t len = strlen(id);
        char customer[TP_CUSTOMER_MAX + 1], key[256];
        if (tp_key_reminder_customer(customer, sizeof customer, id) < 0 ||
            tp_key(key, sizeof key, tp_store_ns(store), "{s%d}:r:c:%d", tp_key_shard(customer),
                   tp_key_reminder_group(customer)) < 0)
            continue;
        item_ctx_t *ctx = malloc(sizeof *ctx + len + 1);
        if (!ctx) abort();
        ctx->rd = rd;
        ctx->index = json_array_size(rd->items);
        memcpy(ctx->id, id, len + 1);
        json_array_append_new(rd->items, json_null());
        if (tp_store_command(store, item_cb, ctx, "HGET %s %s", key, id) < 0) {
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
            const redisReply *id = r->element[i], *due = r->element[i + 1];
            if (id->type != REDIS_REPLY_STRING || due->type != REDIS_REPLY_STRING) continue;
            if (rd->nfound == rd->capfound) {
                rd->capfound = rd->capfound ? 2 * rd->capfound : 64;
                rd->found = realloc(rd->found, rd->capfound * sizeof *rd->found);
                if (!rd->found) abort();
            }
            indexed_t *x = &rd->found[rd->nfound++];
            if (!(x->id = strdup(id->str))) abort();
            x->due = atoll(due->str);
        }
    }
    if (--rd->shards_waiting == 0) read_records(store, rd);
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
    /* every part of the owner's index, each up to the list's limit (the
     * soonest of them all are among those) */
    rd->shards_waiting = 1; /* held while sending */
    for (int i = 0; i < TP_SHARDS * TP_OWNER_PARTS; i++) {
        char key[512];
        tp_key(key, sizeof key, tp_store_ns(store), "{s%d}:r:owner:%d:%s", i / TP_OWNER_PARTS,
               i % TP_OWNER_PARTS, owner);
        if (tp_store_command(store, index_cb, rd,
                             "ZRANGEBYSCORE %s -inf %lld WITHSCORES LIMIT 0 %d", key,
                             (long long)due_before, TP_QUERY_LIST_MAX + 1) < 0) {
            rd->failed = 1;
            continue;
        }
        rd->shards_waiting++;
    }
    if (--rd->shards_waiting == 0) read_records(store, rd);
}
