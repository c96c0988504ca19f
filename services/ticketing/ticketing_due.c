/* ticketing_due.c: the per-shard watch of times that fell due (see
 * ticketing_due.h). */
#include "ticketing_due.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/log.h"
#include "tp/proto.h"

/* KEYS one shard's watched zset. ARGV now, limit, the shard's key prefix
 * ("<ns>{s<n>}:": its customers' tickets are under it), then the ticket
 * fields to read. Returns per member due: member, when, then the fields
 * (false when the member names no ticket, or a field is unset). */
static const char DUE_LUA[] =
    "local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                     'WITHSCORES', 'LIMIT', 0, ARGV[2])\n"
    "local names, out = {}, {}\n"
    "for j = 4, #ARGV do names[#names + 1] = ARGV[j] end\n"
    "for i = 1, #m, 2 do\n"
    "  local c, t = string.match(m[i], '^([^|]+)|([^|]+)|')\n"
    "  local f = {}\n"
    "  if c and #names > 0 then\n"
    "    f = redis.call('HMGET', ARGV[3] .. 'c:' .. c .. ':ticket:' .. t, unpack(names))\n"
    "  end\n"
    "  out[#out + 1] = m[i]\n"
    "  out[#out + 1] = m[i + 1]\n"
    "  for j = 1, #names do out[#out + 1] = f[j] or '' end\n"
    "end\n"
    "return out\n";

#define DUE_BATCH "200"

struct tp_due_watch {
    tp_store_t *store;
    char name[64];
    char *fields[TP_DUE_FIELDS_MAX]; /* owned */
    int nfields;
    tp_due_cb due;
    void *arg;
    char key[TP_SHARDS][128];
    char prefix[TP_SHARDS][32];
    struct due_shard { /* a scan's callback: which shard answered */
        struct tp_due_watch *watch;
        int shard;
    } shards[TP_SHARDS];
    int script;
    uv_timer_t timer;
    int owed;   /* scans sent, not answered */
    int closed; /* destroyed: nothing more is handed over; freed once the
                   timer is closed and nothing is owed */
    int timer_open;
};

static void item_hand(tp_due_watch_t *self, int shard, redisReply **f) {
    char customer[TP_CUSTOMER_MAX + 1], ticket[80];
    const char *member = f[0]->str;
    int n = 0;
    if (sscanf(member, "%128[^|]|%79[^|]|%n", customer, ticket, &n) != 2 || n == 0) {
        tp_log_error("%s: malformed member %s (dropped)", self->name, member);
        tp_store_command(self->store, NULL, NULL, "ZREM %s %s", self->key[shard], member);
        return;
    }
    if (tp_key_shard(customer) != shard) { /* its ticket is in another slot */
        tp_log_error("%s: %s outside its customer's shard (dropped)", self->name, member);
        tp_store_command(self->store, NULL, NULL, "ZREM %s %s", self->key[shard], member);
        return;
    }
    const char *fields[TP_DUE_FIELDS_MAX];
    for (int j = 0; j < self->nfields; j++) fields[j] = f[2 + j]->str;
    tp_due_item_t item = {.shard = shard, .member = member, .customer = customer,
                          .ticket = ticket, .rest = member + n, .when = atoll(f[1]->str),
                          .fields = fields};
    self->due(self->arg, &item);
}

static void watch_free(tp_due_watch_t *self);

static void due_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    struct due_shard *shard = arg;
    tp_due_watch_t *self = shard->watch;
    self->owed--;
    if (self->closed) { /* its owner is gone */
        if (!self->timer_open && self->owed == 0) watch_free(self);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    size_t width = 2 + (size_t)self->nfields;
    for (size_t i = 0; i + width - 1 < r->elements && !self->closed; i += width) {
        redisReply **f = &r->element[i];
        int ok = 1;
        for (size_t j = 0; j < width; j++) ok &= f[j]->type == REDIS_REPLY_STRING;
        if (ok) item_hand(self, shard->shard, f);
    }
}

static void timer_cb(uv_timer_t *t) {
    tp_due_watch_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    for (int shard = 0; shard < TP_SHARDS; shard++) { /* one script per slot */
        tp_argv_t a;
        tp_argv_init(&a);
        tp_argv_add(&a, self->key[shard], (size_t)-1);
        tp_argv_add_int(&a, tp_now_ms());
        tp_argv_add(&a, DUE_BATCH, (size_t)-1);
        tp_argv_add(&a, self->prefix[shard], (size_t)-1);
        for (int j = 0; j < self->nfields; j++) tp_argv_add(&a, self->fields[j], (size_t)-1);
        if (tp_store_eval(self->store, self->script, due_cb, &self->shards[shard], 1,
                          (int)a.n, a.v, a.len) == 0)
            self->owed++;
        tp_argv_clear(&a);
    }
}

static void watch_free(tp_due_watch_t *self) {
    for (int j = 0; j < self->nfields; j++) free(self->fields[j]);
    free(self);
}

tp_due_watch_t *tp_due_watch_new(uv_loop_t *loop, tp_store_t *store, const char *name,
                                 const char *const *fields, int nfields, int64_t interval_ms,
                                 tp_due_cb due, void *arg) {
    if (nfields < 0 || nfields > TP_DUE_FIELDS_MAX || !due) return NULL;
    tp_due_watch_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->due = due;
    self->arg = arg;
    snprintf(self->name, sizeof self->name, "%s", name);
    for (int j = 0; j < nfields; j++)
        if (!(self->fields[self->nfields++] = strdup(fields[j]))) abort();
    for (int shard = 0; shard < TP_SHARDS; shard++) {
        self->shards[shard].watch = self;
        self->shards[shard].shard = shard;
        if (tp_key_shard_key(self->key[shard], sizeof self->key[shard], tp_store_ns(store),
                             shard, "%s", name) < 0 ||
            tp_key_shard_key(self->prefix[shard], sizeof self->prefix[shard],
                             tp_store_ns(store), shard, "%s", "") < 0) {
            watch_free(self);
            return NULL;
        }
    }
    self->script = tp_store_script_ro(store, "due_watch", DUE_LUA);
    if (self->script < 0) {
        watch_free(self);
        return NULL;
    }
    if (interval_ms <= 0) interval_ms = 1000;
    uv_timer_init(loop, &self->timer);
    self->timer.data = self;
    self->timer_open = 1;
    uv_timer_start(&self->timer, timer_cb, (uint64_t)interval_ms, (uint64_t)interval_ms);
    return self;
}

const char *tp_due_watch_key(const tp_due_watch_t *self, int shard) { return self->key[shard]; }

const char *tp_due_watch_prefix(const tp_due_watch_t *self, int shard) {
    return self->prefix[shard];
}

static void close_cb(uv_handle_t *h) {
    tp_due_watch_t *self = h->data;
    self->timer_open = 0;
    if (self->owed == 0) watch_free(self);
}

void tp_due_watch_destroy(tp_due_watch_t **self_p) {
    tp_due_watch_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    self->closed = 1; /* scans still owed end quietly: the owner may go now */
    uv_close((uv_handle_t *)&self->timer, close_cb);
}
