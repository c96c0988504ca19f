/* ticketing_autoclose.c: quiet resolved tickets to closed. */
#include "ticketing_autoclose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

#define CHECK_BATCH 100

typedef struct shard_queue { /* one shard's ticket:autoclose */
    tp_autoclose_t *autoclose;
    char key[128];
} shard_queue_t;

struct tp_autoclose {
    tp_store_t *store;
    tp_ticketing_t *tickets;
    shard_queue_t queues[TP_SHARDS];
    uv_timer_t timer;
};

static void due_cb(tp_store_t *store, redisReply *r, void *arg) {
    shard_queue_t *queue = arg;
    tp_autoclose_t *self = queue->autoclose;
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) continue;
        char customer[TP_CUSTOMER_MAX + 1], ticket[80];
        long long at;
        if (sscanf(r->element[i]->str, "%128[^|]|%79[^|]|%lld", customer, ticket, &at) != 3) {
            tp_log_error("autoclose: malformed entry %s (dropped)", r->element[i]->str);
            tp_store_command(self->store, NULL, NULL, "ZREM %s %s", queue->key,
                             r->element[i]->str);
            continue;
        }
        tp_ticketing_autoclose(self->tickets, customer, ticket, at);
    }
}

static void timer_cb(uv_timer_t *t) {
    tp_autoclose_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    for (int shard = 0; shard < TP_SHARDS; shard++)
        tp_store_command(self->store, due_cb, &self->queues[shard],
                         "ZRANGEBYSCORE %s -inf %lld LIMIT 0 %d", self->queues[shard].key,
                         (long long)tp_now_ms(), CHECK_BATCH);
}

tp_autoclose_t *tp_autoclose_new(uv_loop_t *loop, tp_store_t *store, tp_ticketing_t *tickets,
                                 int64_t check_interval_ms) {
    tp_autoclose_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->tickets = tickets;
    for (int shard = 0; shard < TP_SHARDS; shard++) {
        self->queues[shard].autoclose = self;
        tp_key_shard_key(self->queues[shard].key, sizeof self->queues[shard].key,
                         tp_store_ns(store), shard, "ticket:autoclose");
    }
    if (check_interval_ms <= 0) check_interval_ms = 1000;
    uv_timer_init(loop, &self->timer);
    self->timer.data = self;
    uv_timer_start(&self->timer, timer_cb, (uint64_t)check_interval_ms,
                   (uint64_t)check_interval_ms);
    return self;
}

static void close_cb(uv_handle_t *h) { free(h->data); }

void tp_autoclose_destroy(tp_autoclose_t **self_p) {
    tp_autoclose_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    uv_close((uv_handle_t *)&self->timer, close_cb);
}
