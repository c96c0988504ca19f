/* scheduler_fire.c: the heap of armed reminders, the poll and the claim. */
#include "scheduler_fire.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS due, rem, cust, outbox, the owner's reminders, the scheduler's
 * counters (fired: every claim that fired, across instances). ARGV reminder, due
 * ms, now, reminder.due envelope, next due ms (0: none) and next JSON of a
 * recurring reminder. Fires only a reminder still due at that time; a
 * recurring one moves to its next occurrence. Returns 1 fired, 0 not
 * (fired elsewhere, replanned or closed). */
static const char FIRE_LUA[] =
    "local s = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "if not s or tonumber(s) ~= tonumber(ARGV[2]) then return 0 end\n"
    "if tonumber(ARGV[5]) > 0 then\n"
    "  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])\n"
    "  redis.call('HSET', KEYS[2], ARGV[1], ARGV[6])\n"
    "  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "  redis.call('SREM', KEYS[3], ARGV[1])\n"
    "  redis.call('ZREM', KEYS[5], ARGV[1])\n"
    "end\n"
    "redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])\n"
    "redis.call('HINCRBY', KEYS[6], 'fired', 1)\n"
    "return 1\n";

/* KEYS due, rem. ARGV until ms, limit. Returns reminder, due, JSON, ... */
static const char SOON_LUA[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                       'WITHSCORES', 'LIMIT', 0, ARGV[2])\n"
    "local out = {}\n"
    "for i = 1, #ids, 2 do\n"
    "  out[#out + 1] = ids[i]\n"
    "  out[#out + 1] = ids[i + 1]\n"
    "  out[#out + 1] = redis.call('HGET', KEYS[2], ids[i]) or ''\n"
    "end\n"
    "return out\n";

typedef struct armed {
    int64_t due;
    int bucket;
    char *reminder;
    char *json;
} armed_t;

struct tp_fire {
    uv_loop_t *loop;
    tp_store_t *store;
    tp_emitter_t *emitter;
    tp_fire_options_t opts;
    int fire_script, soon_script;
    uv_timer_t next_timer, poll_timer;
    armed_t *heap;
    size_t n, cap;
    int64_t armed_at; /* due time the next timer is set for, -1 none */
    tp_fire_stats_t stats;
    int closing;
    tp_fire_next_cb next;
    void *next_arg;
};

/* ---- heap by due time ---- */

static void heap_swap(tp_fire_t *f, size_t a, size_t b) {
    armed_t t = f->heap[a];
    f->heap[a] = f->heap[b];
    f->heap[b] = t;
}

static void heap_push(tp_fire_t *f, armed_t item) {
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->heap = realloc(f->heap, f->cap * sizeof *f->heap);
        if (!f->heap) abort();
    }
    size_t i = f->n++;
    f->heap[i] = item;
    while (i > 0 && f->heap[(i - 1) / 2].due > f->heap[i].due) {
        heap_swap(f, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static armed_t heap_pop(tp_fire_t *f) {
    armed_t top = f->heap[0];
    f->heap[0] = f->heap[--f->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < f->n && f->heap[l].due < f->heap[m].due) m = l;
        if (r < f->n && f->heap[r].due < f->heap[m].due) m = r;
        if (m == i) break;
        heap_swap(f, i, m);
        i = m;
    }
    return top;
}

static void armed_free(armed_t *a) {
    free(a->reminder);
    free(a->json);
}

/* ---- firing ---- */

typedef struct fire_ctx {
    tp_fire_t *fire;
    armed_t item;
    int64_t late_ms;
    msgpack_sbuffer payload;
} fire_ctx_t;

static void fired_cb(tp_store_t *store, redisReply *r, void *arg) {
    fire_ctx_t *ctx = arg;
    tp_fire_t *f = ctx->fire;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        f->stats.fired++;
        if (ctx->late_ms > 1000) {
            f->stats.late++;
            tp_log_info("reminder %s fired %lld ms late", ctx->item.reminder,
                        (long long)ctx->late_ms);
        }
        if (ctx->late_ms > f->stats.max_late_ms) f->stats.max_late_ms = ctx->late_ms;
        tp_emitter_send(f->emitter, ctx->payload.data, ctx->payload.size);
    } else if (r && r->type == REDIS_REPLY_INTEGER) {
        f->stats.lost_race++;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        tp_log_error("fire %s: %s", ctx->item.reminder, r->str);
    } /* NULL: Redis gone; the reminder stays due and the poll finds it */
    armed_free(&ctx->item);
    msgpack_sbuffer_destroy(&ctx->payload);
    free(ctx);
}

static void fire_one(tp_fire_t *f, armed_t item, int64_t now) {
    fire_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->fire = f;
    ctx->item = item;
    ctx->late_ms = now > item.due ? now - item.due : 0;
    msgpack_sbuffer_init(&ctx->payload);

    json_t *rem = json_loads(item.json, 0, NULL);
    char customer_buf[TP_CUSTOMER_MAX + 1] = "";
    const char *cv = json_string_value(json_object_get(rem, "customer"));
    if (cv) snprintf(customer_buf, sizeof customer_buf, "%s", cv);
    const char *customer = cv ? customer_buf : NULL; /* outlives rem */
    const char *rule = json_string_value(json_object_get(rem, "rule"));
    char owner_buf[TP_ACTOR_MAX + 1] = "";
    const char *ov = json_string_value(json_object_get(rem, "owner"));
    if (ov) snprintf(owner_buf, sizeof owner_buf, "%s", ov);
    const char *owner = ov ? owner_buf : NULL; /* outlives rem */
    const char *text = json_string_value(json_object_get(rem, "text"));
    json_t *data = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:s}", "reminder",
                             item.reminder, "rule", rule ? rule : "unknown",
                             "owner", owner ? owner : "unassigned", "due_at",
                             (json_int_t)item.due, "late_ms",
                             (json_int_t)ctx->late_ms, "urgent",
                             json_is_true(json_object_get(rem, "urgent")), "text",
                             text ? text : "");
    char id[TP_ID_MAX + 1];
    snprintf(id, sizeof id, "rem:%.80s:%lld", item.reminder, (long long)item.due);
    /* '|' is not allowed in event ids */
    for (char *p = id; *p; p++)
        if (*p == '|') *p = '/';
    int packed = customer && tp_emit_pack(&ctx->payload, TP_EVENT_REMINDER_DUE, id,
                                          item.due, TP_SERVICE_SCHEDULER,
                                          customer, data) == 0;
    if (!customer) json_decref(data);
    json_decref(rem);
    if (!packed) {
        tp_log_error("reminder %s unreadable; left in place", item.reminder);
        fired_cb(f->store, NULL, ctx);
        return;
    }
    const char *ns = tp_store_ns(f->store);
    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_addf(&a, "%s{r%d}:due", ns, item.bucket);
    tp_argv_addf(&a, "%s{r%d}:rem", ns, item.bucket);
    tp_argv_addf(&a, "%s{r%d}:cust:%s", ns, item.bucket, customer ? customer : "");
    tp_argv_add(&a, tp_emitter_outbox(f->emitter), (size_t)-1);
    tp_argv_addf(&a, "%sreminders:owner:%s", ns, owner ? owner : "unassigned");
    tp_argv_addf(&a, "%sstats:scheduler", ns);
    tp_argv_add(&a, item.reminder, (size_t)-1);
    tp_argv_add_int(&a, item.due);
    tp_argv_add_int(&a, now);
    tp_argv_add(&a, ctx->payload.data, ctx->payload.size);
    char *next_json = NULL;
    int64_t next_due = f->next ? f->next(f->next_arg, item.json, &next_json) : 0;
    tp_argv_add_int(&a, next_due > item.due ? next_due : 0);
    tp_argv_add(&a, next_json ? next_json : "", (size_t)-1);
    int rc = tp_store_eval(f->store, f->fire_script, fired_cb, ctx, 6, (int)a.n,
                           a.v, a.len);
    tp_argv_clear(&a);
    free(next_json);
    if (rc < 0) fired_cb(f->store, NULL, ctx);
}

static void rearm(tp_fire_t *f);

static void next_timer_cb(uv_timer_t *t) {
    tp_fire_t *f = t->data;
    int64_t now = tp_now_ms();
    f->armed_at = -1;
    while (f->n > 0 && f->heap[0].due <= now) fire_one(f, heap_pop(f), now);
    f->stats.armed = f->n;
    rearm(f);
}

static void rearm(tp_fire_t *f) {
    if (f->closing || f->n == 0) return;
    int64_t due = f->heap[0].due;
    if (f->armed_at == due) return;
    int64_t wait = due - tp_now_ms();
    f->armed_at = due;
    uv_timer_start(&f->next_timer, next_timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

void tp_fire_arm(const char *reminder, int bucket, int64_t due_ms,
                 const char *json, void *arg) {
    tp_fire_t *f = arg;
    /* Only what falls due before the next poll looks further ahead. */
    if (f->closing || due_ms > tp_now_ms() + f->opts.lookahead_ms) return;
    for (size_t i = 0; i < f->n; i++) /* already armed for this due time */
        if (f->heap[i].due == due_ms && strcmp(f->heap[i].reminder, reminder) == 0)
            return;
    armed_t item = {.due = due_ms, .bucket = bucket,
                    .reminder = strdup(reminder), .json = strdup(json)};
    if (!item.reminder || !item.json) abort();
    heap_push(f, item);
    f->stats.armed = f->n;
    if (f->armed_at < 0 || due_ms < f->armed_at) {
        f->armed_at = -1;
        rearm(f);
    }
}

/* ---- the poll ---- */

typedef struct poll_ctx {
    tp_fire_t *fire;
    int bucket;
} poll_ctx_t;

static void soon_cb(tp_store_t *store, redisReply *r, void *arg) {
    poll_ctx_t *ctx = arg;
    tp_fire_t *f = ctx->fire;
    int bucket = ctx->bucket;
    free(ctx);
    if (!r || r->type != REDIS_REPLY_ARRAY || f->closing) return;
    for (size_t i = 0; i + 2 < r->elements; i += 3) {
        const redisReply *id = r->element[i], *due = r->element[i + 1],
                         *json = r->element[i + 2];
        if (id->type != REDIS_REPLY_STRING || json->type != REDIS_REPLY_STRING ||
            json->len == 0)
            continue;
        tp_fire_arm(id->str, bucket, atoll(due->str), json->str, f);
    }
}

static void poll_timer_cb(uv_timer_t *t) {
    tp_fire_t *f = t->data;
    if (!tp_store_connected(f->store)) return;
    const char *ns = tp_store_ns(f->store);
    char until[24], limit[16];
    snprintf(until, sizeof until, "%lld",
             (long long)(tp_now_ms() + f->opts.lookahead_ms));
    snprintf(limit, sizeof limit, "%d", f->opts.poll_batch);
    for (int b = 0; b < TP_REMINDER_BUCKETS; b++) {
        char due_key[128], rem_key[128];
        tp_key(due_key, sizeof due_key, ns, "{r%d}:due", b);
        tp_key(rem_key, sizeof rem_key, ns, "{r%d}:rem", b);
        const char *argv[4] = {due_key, rem_key, until, limit};
        size_t lens[4] = {strlen(due_key), strlen(rem_key), strlen(until),
                          strlen(limit)};
        poll_ctx_t *ctx = malloc(sizeof *ctx);
        if (!ctx) abort();
        ctx->fire = f;
        ctx->bucket = b;
        if (tp_store_eval(f->store, f->soon_script, soon_cb, ctx, 2, 4, argv,
                          lens) < 0)
            free(ctx);
    }
}

tp_fire_t *tp_fire_new(uv_loop_t *loop, tp_store_t *store,
                       tp_emitter_t *emitter, const tp_fire_options_t *opts) {
    tp_fire_t *f = calloc(1, sizeof *f);
    if (!f) abort();
    f->loop = loop;
    f->store = store;
    f->emitter = emitter;
    f->opts = *opts;
    if (f->opts.poll_interval_ms <= 0) f->opts.poll_interval_ms = 1000;
    if (f->opts.lookahead_ms <= 0) f->opts.lookahead_ms = 2 * f->opts.poll_interval_ms;
    if (f->opts.poll_batch <= 0) f->opts.poll_batch = 1000;
    f->armed_at = -1;
    f->fire_script = tp_store_script(store, "scheduler_fire", FIRE_LUA);
    f->soon_script = tp_store_script(store, "scheduler_soon", SOON_LUA);
    if (f->fire_script < 0 || f->soon_script < 0) {
        free(f);
        return NULL;
    }
    uv_timer_init(loop, &f->next_timer);
    uv_timer_init(loop, &f->poll_timer);
    f->next_timer.data = f->poll_timer.data = f;
    uv_timer_start(&f->poll_timer, poll_timer_cb, 0,
                   (uint64_t)f->opts.poll_interval_ms);
    return f;
}

static void close_cb(uv_handle_t *h) {
    tp_fire_t *f = h->data;
    if (++f->closing < 3) return; /* both timers closed */
    for (size_t i = 0; i < f->n; i++) armed_free(&f->heap[i]);
    free(f->heap);
    free(f);
}

void tp_fire_destroy(tp_fire_t **self_p) {
    tp_fire_t *f = self_p ? *self_p : NULL;
    if (!f) return;
    *self_p = NULL;
    f->closing = 1;
    uv_close((uv_handle_t *)&f->next_timer, close_cb);
    uv_close((uv_handle_t *)&f->poll_timer, close_cb);
}

void tp_fire_set_recurrence(tp_fire_t *self, tp_fire_next_cb next, void *arg) {
    self->next = next;
    self->next_arg = arg;
}

void tp_fire_stats(const tp_fire_t *self, tp_fire_stats_t *out) {
    *out = self->stats;
    out->armed = self->n;
}
