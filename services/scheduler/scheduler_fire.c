/* scheduler_fire.c: the heap of armed reminders, the poll and the claim.
 *
 * Two Redis links: the poll reads on the service's own (shared with the
 * plan's applies), the claims go out on a link of their own, so that
 * neither a burst of planning nor the poll's reads queue in front of a
 * reminder falling due. The poll reads a few shards at a time, each
 * page's records in one script, so Redis never runs a long stretch of
 * poll work while a claim waits. */
#include "scheduler_fire.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/reminder.h"

/* KEYS the shard's index of groups ({s<n>}:r:due), its outbox, its
 * counters ({s<n>}:r:stats fired: every claim that fired, across
 * instances),
 * the shard's count (pending), then per reminder its group's due index, its
 * group's hash (its customer's state and its record, tp/keys.h) and its
 * owner's reminders in the shard. ARGV now, then per reminder: id, its
 * customer, due ms, reminder.due envelope, next due ms (0: none) and next
 * record of a recurring reminder, its group. Fires each reminder still due
 * at that time (a replanned or closed one, or one another instance fired,
 * is not); a recurring one moves to its next occurrence. A firing bumps the
 * version in the customer's state, so a plan computed from the state
 * before it reads again (the apply compares the state whole: one bump per
 * customer per call is enough). The bump rewrites the digits of "ver" in
 * place, as the plan writes the state (compact JSON, string values: a
 * '"' inside a value is escaped, so only the key matches); a state without
 * them is decoded and encoded whole. The
 * index entries of the groups fired from are set to their earliest due
 * time again (or removed). Returns one 1 (fired) or 0 (not) per reminder.
 * One call claims a whole batch of one shard: Redis runs one script for
 * many reminders. */
static const char FIRE_LUA[] =
    "local out, fired, gone, env, groups, bump = {}, 0, 0, {}, {}, {}\n"
    "for i = 1, (#ARGV - 1) / 7 do\n"
    "  local a, k = 1 + (i - 1) * 7, 4 + (i - 1) * 3\n"
    "  local id = ARGV[a + 1]\n"
    "  local s = redis.call('ZSCORE', KEYS[k + 1], id)\n"
    "  if s and tonumber(s) == tonumber(ARGV[a + 3]) then\n"
    "    if tonumber(ARGV[a + 5]) > 0 then\n"
    "      redis.call('ZADD', KEYS[k + 1], ARGV[a + 5], id)\n"
    "      redis.call('HSET', KEYS[k + 2], id, ARGV[a + 6])\n"
    "      redis.call('ZADD', KEYS[k + 3], ARGV[a + 5], id)\n"
    "    else\n"
    "      redis.call('ZREM', KEYS[k + 1], id)\n"
    "      redis.call('HDEL', KEYS[k + 2], id)\n"
    "      redis.call('ZREM', KEYS[k + 3], id)\n"
    "      gone = gone + 1\n"
    "    end\n"
    "    bump[ARGV[a + 2]] = KEYS[k + 2]\n"
    "    groups[ARGV[a + 7]] = KEYS[k + 1]\n"
    "    env[#env + 1] = ARGV[1]\n"
    "    env[#env + 1] = ARGV[a + 4]\n"
    "    fired = fired + 1\n"
    "    out[i] = 1\n"
    "  else\n"
    "    out[i] = 0\n"
    "  end\n"
    "end\n"
    "for c, key in pairs(bump) do\n"
    "  local st = redis.call('HGET', key, c)\n"
    "  local i, j, v = nil, nil, nil\n"
    "  if st then i, j, v = string.find(st, '[{,]\"ver\":\"(%d+)\"') end\n"
    "  if i then\n"
    "    redis.call('HSET', key, c, string.sub(st, 1, i + 7) ..\n"
    "               tostring(tonumber(v) + 1) .. string.sub(st, j))\n"
    "  elseif st then\n"
    "    local o = cjson.decode(st)\n"
    "    o.ver = tostring((tonumber(o.ver) or 0) + 1)\n"
    "    redis.call('HSET', key, c, cjson.encode(o))\n"
    "  end\n"
    "end\n"
    "for g, key in pairs(groups) do\n"
    "  local m = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')\n"
    "  if m[1] then redis.call('ZADD', KEYS[1], m[2], g)\n"
    "  else redis.call('ZREM', KEYS[1], g) end\n"
    "end\n"
    "if fired > 0 then\n"
    "  redis.call('ZADD', KEYS[2], unpack(env))\n"
    "  redis.call('HINCRBY', KEYS[3], 'fired', fired)\n"
    "end\n"
    "if gone > 0 then redis.call('HINCRBY', KEYS[4], 'pending', -gone) end\n"
    "return out\n";

/* KEYS the shard's index of groups, then the due index of each group in
 * ARGV[3..]; ARGV[1] until (ms), ARGV[2] at most this many per group. Per
 * group: its reminders due by then, {id, due, id, due, ...}; the group's
 * index entry is set to its earliest due time (or removed when it is
 * empty), so a close's stale entry is read once. The records are read
 * apart, for the reminders not armed yet only: a backlog polled again
 * costs its ids, not its records. */
static const char POLL_LUA[] =
    "local out = {}\n"
    "for i = 2, #KEYS do\n"
    "  out[i - 1] = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', ARGV[1], 'WITHSCORES',\n"
    "                          'LIMIT', 0, ARGV[2])\n"
    "  local m = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')\n"
    "  if m[1] then redis.call('ZADD', KEYS[1], m[2], ARGV[i + 1])\n"
    "  else redis.call('ZREM', KEYS[1], ARGV[i + 1]) end\n"
    "end\n"
    "return out\n";

/* KEYS per reminder its group's hash; ARGV its id. The records, in order
 * (nil: closed since). */
static const char RECORDS_LUA[] =
    "local out = {}\n"
    "for i = 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], ARGV[i]) end\n"
    "return out\n";

/* At most this many reminders per claim script (Lua's unpack of the
 * envelopes stays far below its stack limit). */
#define FIRE_BATCH 256
/* A poll pages through a bucket's due reminders up to this many pages. */
#define POLL_PAGES_MAX 200
/* Claim scripts in flight at most; the rest wait in the heap. */
#define FIRE_INFLIGHT_MAX 64
/* Reminders in claim scripts in flight at most: one timer
 * callback prepares no more than this before the loop writes them and
 * reads replies, so that Redis runs the first batches of a burst while
 * the next are prepared (64 scripts of 256 took the loop ~100 ms before
 * Redis saw one). Counted in reminders, not scripts: a paced flow of
 * small scripts, one per shard a tick, never waits for room. Measured
 * (own-path burst, 20,000 due at once, the shared machine): 64 scripts
 * ~47k/s with Redis at 70-85%; 2048 reminders 49-60k/s, Redis at 94-98%. */
#define FIRE_CLAIMS_MAX 2048
/* Shards a poll reads side by side; the next starts as one is done. */
#define POLL_SHARDS_INFLIGHT 2
/* Firing later than this counts (and is logged) as late. */
#define LATE_MS 1000

/* One reminder armed: in the heap by due time and in the index by "<due>
 * <reminder>", so that arming the same reminder for the same time twice
 * (planned here, then found by the poll) keeps one. */
typedef struct armed {
    int64_t due;
    int bucket;
    char *key;      /* "<due> <reminder>", owned */
    char *reminder; /* inside key */
    char *record;   /* packed (tp/reminder.h), owned */
    size_t record_len;
    UT_hash_handle hh;
} armed_t;

struct tp_fire {
    uv_loop_t *loop;
    tp_store_t *store;  /* the poll's (the service's link), borrowed */
    tp_store_t *claims; /* the claims' own link, owned */
    tp_emitter_t *emitter;
    tp_fire_options_t opts;
    int fire_script, poll_script, records_script;
    uv_timer_t next_timer, poll_timer;
    armed_t **heap;
    size_t n, cap;
    armed_t *index; /* uthash head: every armed reminder by key */
    int inflight;   /* claim scripts sent, not answered */
    int claims_inflight; /* reminders in those scripts */
    /* per shard: reminders taken from the heap for its next claim script
     * (still in the index; owned): while a backlog is claimed, a shard's
     * batch goes when it is full, so that batches stay large */
    armed_t *staged[TP_REMINDER_BUCKETS][FIRE_BATCH];
    int nstaged[TP_REMINDER_BUCKETS];
    int staged_total;
    int polling;    /* poll reads sent, not answered: the next poll waits */
    int poll_owed[TP_REMINDER_BUCKETS]; /* per shard: its reads in flight */
    int poll_next;  /* the next shard this poll reads, TP_REMINDER_BUCKETS: all started */
    int64_t poll_until;
    int64_t armed_at; /* due time the next timer is set for, -1 none */
    tp_fire_stats_t stats;
    int closing;
    tp_fire_next_cb next;
    void *next_arg;
};

/* ---- heap by due time ---- */

static void heap_swap(tp_fire_t *f, size_t a, size_t b) {
    armed_t *t = f->heap[a];
    f->heap[a] = f->heap[b];
    f->heap[b] = t;
}

static void heap_push(tp_fire_t *f, armed_t *item) {
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->heap = realloc(f->heap, f->cap * sizeof *f->heap);
        if (!f->heap) abort();
    }
    size_t i = f->n++;
    f->heap[i] = item;
    while (i > 0 && f->heap[(i - 1) / 2]->due > f->heap[i]->due) {
        heap_swap(f, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static armed_t *heap_pop(tp_fire_t *f) {
    armed_t *top = f->heap[0];
    f->heap[0] = f->heap[--f->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < f->n && f->heap[l]->due < f->heap[m]->due) m = l;
        if (r < f->n && f->heap[r]->due < f->heap[m]->due) m = r;
        if (m == i) break;
        heap_swap(f, i, m);
        i = m;
    }
    return top;
}

static void armed_free(armed_t *a) {
    if (!a) return;
    free(a->key);
    free(a->record);
    free(a);
}

/* EVALSHA of `script` with `keys` then `args` (borrowed until it returns),
 * as tp_store_eval. */
static int eval_split(tp_store_t *store, int script, tp_store_reply_cb cb, void *arg,
                      const tp_argv_t *keys, const tp_argv_t *args) {
    tp_argv_t all; /* keys first; the strings stay owned by keys and args */
    tp_argv_init(&all);
    for (size_t i = 0; i < keys->n; i++) tp_argv_add(&all, keys->v[i], keys->len[i]);
    for (size_t i = 0; i < args->n; i++) tp_argv_add(&all, args->v[i], args->len[i]);
    int rc = tp_store_eval(store, script, cb, arg, (int)keys->n, (int)all.n, all.v, all.len);
    tp_argv_clear(&all);
    return rc;
}

/* ---- firing ---- */

/* One reminder of a claim batch. */
typedef struct claim {
    armed_t *item; /* owned */
    int64_t late_ms;
    msgpack_sbuffer payload;
} claim_t;

/* One claim script in flight: reminders of one bucket. */
typedef struct batch {
    tp_fire_t *fire;
    int bucket; /* the shard of every claim */
    int64_t now;
    int n;
    claim_t claims[FIRE_BATCH];
} batch_t;

/* The claims are over: their reminders leave the index (a poll may arm
 * them again: what did not fire is still due). */
static void batch_free(batch_t *b) {
    for (int i = 0; i < b->n; i++) {
        HASH_DEL(b->fire->index, b->claims[i].item);
        armed_free(b->claims[i].item);
        msgpack_sbuffer_destroy(&b->claims[i].payload);
    }
    free(b);
}

static void rearm(tp_fire_t *f);

static void fired_cb(tp_store_t *store, redisReply *r, void *arg) {
    batch_t *b = arg;
    tp_fire_t *f = b->fire;
    f->inflight--;
    f->claims_inflight -= b->n;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)b->n) {
        uint64_t late = 0;
        int64_t max_late = 0;
        for (int i = 0; i < b->n; i++) {
            claim_t *c = &b->claims[i];
            if (r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer != 1) {
                f->stats.lost_race++;
                continue;
            }
            f->stats.fired++;
            if (c->late_ms > LATE_MS) late++;
            if (c->late_ms > max_late) max_late = c->late_ms;
            tp_emitter_send_shard(f->emitter, b->bucket, c->payload.data, c->payload.size);
        }
        f->stats.late += late;
        if (max_late > f->stats.max_late_ms) f->stats.max_late_ms = max_late;
        if (late > 0)
            tp_log_info("fired %llu reminders late, up to %lld ms",
                        (unsigned long long)late, (long long)max_late);
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        tp_log_error("fire: %s", r->str);
    } /* NULL: Redis gone; the reminders stay due and the poll finds them */
    batch_free(b);
    if (!f->closing) rearm(f); /* a backlog waits for room in flight */
}

/* Packs reminder.due for `c` from `rem`, its stored reminder (borrowed).
 * Returns 0, or -1 when the reminder is unreadable (it is left in place).
 * Sets *customer and *owner. */
static int claim_pack(claim_t *c, const json_t *rem, char *customer, size_t customer_len,
                      char *owner, size_t owner_len) {
    armed_t *item = c->item;
    int has_customer = tp_key_reminder_customer(customer, customer_len, item->reminder) > 0;
    const char *ov = json_string_value(json_object_get(rem, "owner"));
    const char *rule = json_string_value(json_object_get(rem, "rule"));
    const char *text = json_string_value(json_object_get(rem, "text"));
    snprintf(owner, owner_len, "%s", ov ? ov : "unassigned");
    json_t *data = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:s}", "reminder",
                             item->reminder, "rule", rule ? rule : "unknown", "owner",
                             owner, "due_at", (json_int_t)item->due, "late_ms",
                             (json_int_t)c->late_ms, "urgent",
                             json_is_true(json_object_get(rem, "urgent")), "text",
                             text ? text : "");
    char id[TP_ID_MAX + 1];
    snprintf(id, sizeof id, "rem:%.80s:%lld", item->reminder, (long long)item->due);
    /* '|' is not allowed in event ids */
    for (char *p = id; *p; p++)
        if (*p == '|') *p = '/';
    if (!has_customer || !rem || !data) {
        json_decref(data);
        return -1;
    }
    /* tp_emit_pack takes `data` */
    return tp_emit_pack(&c->payload, TP_EVENT_REMINDER_DUE, id, item->due,
                        TP_SERVICE_SCHEDULER, customer, data);
}

/* Room for a reminder.due envelope (a few hundred bytes; it doubles when
 * one is longer): msgpack's first write would take 8 KB, for each of the
 * thousands of claims in flight in a burst. */
#define PAYLOAD_ROOM 512

static void payload_init(msgpack_sbuffer *sb) {
    msgpack_sbuffer_init(sb);
    if (!(sb->data = malloc(PAYLOAD_ROOM))) abort();
    sb->alloc = PAYLOAD_ROOM;
}

/* Claims `items` (all of `bucket`, owned) in one script. */
static void fire_batch(tp_fire_t *f, int bucket, armed_t **items, int n, int64_t now) {
    batch_t *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->fire = f;
    b->bucket = bucket;
    b->now = now;
    const char *ns = tp_store_ns(f->store);
    tp_argv_t keys, args;
    tp_argv_init(&keys);
    tp_argv_init(&args);
    tp_argv_addf(&keys, "%s{s%d}:r:due", ns, bucket);
    tp_argv_add(&keys, tp_emitter_outbox_shard(f->emitter, bucket), (size_t)-1);
    tp_argv_addf(&keys, "%s{s%d}:r:stats", ns, bucket);
    tp_argv_addf(&keys, "%s{s%d}:r:count", ns, bucket);
    tp_argv_add_int(&args, now);
    for (int i = 0; i < n; i++) {
        claim_t *c = &b->claims[b->n];
        c->item = items[i];
        c->late_ms = now > c->item->due ? now - c->item->due : 0;
        payload_init(&c->payload);
        char customer[TP_CUSTOMER_MAX + 1], owner[TP_ACTOR_MAX + 1];
        json_t *rem = tp_reminder_unpack(c->item->reminder, c->item->record,
                                         c->item->record_len);
        if (claim_pack(c, rem, customer, sizeof customer, owner, sizeof owner) != 0) {
            tp_log_error("reminder %s unreadable; left in place", c->item->reminder);
            json_decref(rem);
            HASH_DEL(f->index, c->item);
            armed_free(c->item);
            msgpack_sbuffer_destroy(&c->payload);
            continue;
        }
        b->n++;
        int group = tp_key_reminder_group(customer);
        tp_argv_addf(&keys, "%s{s%d}:r:due:%d", ns, bucket, group);
        tp_argv_addf(&keys, "%s{s%d}:r:c:%d", ns, bucket, group);
        tp_argv_addf(&keys, "%s{s%d}:r:owner:%d:%s", ns, bucket,
                     group % TP_OWNER_PARTS, owner);
        char *next_record = NULL;
        size_t next_len = 0;
        int64_t next_due = f->next ? f->next(f->next_arg, rem, &next_record, &next_len) : 0;
        json_decref(rem);
        tp_argv_add(&args, c->item->reminder, (size_t)-1);
        tp_argv_add_copy(&args, customer, strlen(customer));
        tp_argv_add_int(&args, c->item->due);
        tp_argv_add(&args, c->payload.data, c->payload.size);
        tp_argv_add_int(&args, next_due > c->item->due ? next_due : 0);
        tp_argv_add_copy(&args, next_record ? next_record : "", next_record ? next_len : 0);
        tp_argv_addf(&args, "%d", group);
        free(next_record);
    }
    int rc = -1;
    if (b->n > 0) {
        rc = eval_split(f->claims, f->fire_script, fired_cb, b, &keys, &args);
        if (rc == 0) {
            f->inflight++;
            f->claims_inflight += b->n;
        }
    }
    tp_argv_clear(&keys);
    tp_argv_clear(&args);
    if (rc < 0) batch_free(b);
}

/* Sends shard `b`'s staged reminders in one claim script. */
static void staged_send(tp_fire_t *f, int b, int64_t now) {
    int n = f->nstaged[b];
    f->nstaged[b] = 0;
    f->staged_total -= n;
    fire_batch(f, b, f->staged[b], n, now); /* takes the reminders */
}

/* 1 when the claims in flight leave room for more. The staged ones do not
 * count: at most TP_REMINDER_BUCKETS x (FIRE_BATCH - 1) of them wait, and
 * taking them from the heap costs little (a claim is prepared as it is
 * sent). */
static int claims_room(const tp_fire_t *f) {
    return f->inflight < FIRE_INFLIGHT_MAX && f->claims_inflight < FIRE_CLAIMS_MAX;
}

/* What is due by now, claimed in batches per bucket, while there is room
 * in flight; a backlog goes on as replies come back. */
static void next_timer_cb(uv_timer_t *t) {
    tp_fire_t *f = t->data;
    int64_t now = tp_now_ms();
    f->armed_at = -1;
    while (f->n > 0 && f->heap[0]->due <= now && claims_room(f)) {
        /* it stays in the index while staged and while its claim is in
         * flight, so that a poll meanwhile does not arm it again */
        armed_t *item = heap_pop(f);
        int b = item->bucket;
        f->staged[b][f->nstaged[b]++] = item;
        f->staged_total++;
        if (f->nstaged[b] == FIRE_BATCH) staged_send(f, b, now);
    }
    /* The partial batches go once nothing more is due, or when no claim is
     * in flight (no reply would call again); while a backlog waits for
     * room, they wait for more of their shard. */
    int backlog = f->n > 0 && f->heap[0]->due <= now;
    if (!backlog || f->inflight == 0)
        for (int b = 0; b < TP_REMINDER_BUCKETS; b++)
            if (f->nstaged[b] > 0) staged_send(f, b, now);
    f->stats.armed = f->n;
    rearm(f);
}

static void rearm(tp_fire_t *f) {
    if (f->closing || f->n == 0) return;
    if (!claims_room(f) && f->inflight > 0) { /* fired_cb calls again */
        uv_timer_stop(&f->next_timer);
        f->armed_at = -1;
        return;
    }
    int64_t due = f->heap[0]->due;
    if (f->armed_at == due) return;
    int64_t wait = due - tp_now_ms();
    f->armed_at = due;
    uv_timer_start(&f->next_timer, next_timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* The index key of `reminder` armed for `due_ms`, allocated. */
static char *armed_key(const char *reminder, int64_t due_ms) {
    char *key = NULL;
    if (asprintf(&key, "%lld %s", (long long)due_ms, reminder) < 0) abort();
    return key;
}

void tp_fire_arm(const char *reminder, int bucket, int64_t due_ms,
                 const char *record, size_t record_len, void *arg) {
    tp_fire_t *f = arg;
    /* Only what falls due before the next poll looks further ahead. */
    if (f->closing || due_ms > tp_now_ms() + f->opts.lookahead_ms) return;
    if (bucket < 0 || bucket >= TP_REMINDER_BUCKETS) return;
    char *key = armed_key(reminder, due_ms);
    armed_t *item = NULL;
    HASH_FIND_STR(f->index, key, item);
    if (item) { /* armed for this due time already */
        free(key);
        return;
    }
    item = calloc(1, sizeof *item);
    if (!item || !(item->record = malloc(record_len ? record_len : 1))) abort();
    memcpy(item->record, record, record_len);
    item->record_len = record_len;
    item->due = due_ms;
    item->bucket = bucket;
    item->key = key;
    item->reminder = item->key + strcspn(item->key, " ") + 1;
    HASH_ADD_KEYPTR(hh, f->index, item->key, strlen(item->key), item);
    heap_push(f, item);
    f->stats.armed = f->n;
    if (f->armed_at < 0 || due_ms < f->armed_at) {
        f->armed_at = -1;
        rearm(f);
    }
}

/* ---- the poll ---- */

/* Per shard: its index of groups due by `until` (a page of poll_batch
 * groups at a time), one script reading those groups' due reminders, then
 * one script reading the records of those not armed yet. A shard is done
 * when none of its reads is in flight; then the next one starts. */
typedef struct poll_ctx {
    tp_fire_t *fire;
    int bucket, page;
    int64_t until;
} poll_ctx_t;

/* One records read of a page: the reminders asked for, in order, at most
 * FIRE_BATCH (a backlog's page is read in several: Redis never runs one
 * long script for it while a claim waits). */
typedef struct records_ctx {
    tp_fire_t *fire;
    int bucket;
    size_t n;
    int64_t due[FIRE_BATCH];
    char *reminder[FIRE_BATCH]; /* owned */
} records_ctx_t;

static void poll_page(tp_fire_t *f, int bucket, int page, int64_t until);

static void poll_sent(tp_fire_t *f, int bucket) {
    f->polling++;
    f->poll_owed[bucket]++;
}

/* Starts shards while fewer than POLL_SHARDS_INFLIGHT are being read. */
static void poll_more(tp_fire_t *f) {
    if (f->closing || !tp_store_connected(f->store)) { /* the next poll starts over */
        f->poll_next = TP_REMINDER_BUCKETS;
        return;
    }
    int active = 0;
    for (int b = 0; b < TP_REMINDER_BUCKETS; b++) active += f->poll_owed[b] > 0;
    while (active < POLL_SHARDS_INFLIGHT && f->poll_next < TP_REMINDER_BUCKETS) {
        int b = f->poll_next++;
        poll_page(f, b, 0, f->poll_until);
        active += f->poll_owed[b] > 0;
    }
}

static void poll_answered(tp_fire_t *f, int bucket) {
    f->polling--;
    if (--f->poll_owed[bucket] == 0) poll_more(f);
}

static void records_free(records_ctx_t *rc) {
    for (size_t i = 0; i < rc->n; i++) free(rc->reminder[i]);
    free(rc);
}

static void records_cb(tp_store_t *store, redisReply *r, void *arg) {
    records_ctx_t *rc = arg;
    tp_fire_t *f = rc->fire;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == rc->n && !f->closing)
        for (size_t i = 0; i < rc->n; i++) {
            const redisReply *rec = r->element[i];
            /* nil: closed since; anything else: the next poll tries again */
            if (rec->type == REDIS_REPLY_STRING && rec->len > 0)
                tp_fire_arm(rc->reminder[i], rc->bucket, rc->due[i], rec->str, rec->len, f);
        }
    else if (r && r->type == REDIS_REPLY_ERROR)
        tp_log_warn("poll: records: %s", r->str);
    int bucket = rc->bucket;
    records_free(rc);
    poll_answered(f, bucket);
}

/* 1 when `reminder` is armed (or being claimed) for `due_ms` already. */
static int armed_find(tp_fire_t *f, const char *reminder, int64_t due_ms) {
    char *key = armed_key(reminder, due_ms);
    armed_t *found = NULL;
    HASH_FIND_STR(f->index, key, found);
    free(key);
    return found != NULL;
}

/* The records of a page's reminders not armed yet, FIRE_BATCH a script. */
typedef struct records_read {
    tp_fire_t *fire;
    int bucket;
    records_ctx_t *rc; /* being filled, NULL: none */
    tp_argv_t keys, args;
} records_read_t;

/* Sends what `rd` holds (the ids stay borrowed from the poll's reply
 * until the call returns). */
static void records_send(records_read_t *rd) {
    records_ctx_t *rc = rd->rc;
    rd->rc = NULL;
    if (rc && rc->n > 0 &&
        eval_split(rd->fire->store, rd->fire->records_script, records_cb, rc, &rd->keys,
                   &rd->args) == 0)
        poll_sent(rd->fire, rd->bucket);
    else if (rc)
        records_free(rc);
    tp_argv_clear(&rd->keys);
    tp_argv_clear(&rd->args);
    tp_argv_init(&rd->keys);
    tp_argv_init(&rd->args);
}

/* Adds each reminder of `due` (id, due, ...) not armed yet to the read. */
static void records_add(records_read_t *rd, const redisReply *due) {
    tp_fire_t *f = rd->fire;
    const char *ns = tp_store_ns(f->store);
    for (size_t i = 0; i + 1 < due->elements; i += 2) {
        const redisReply *id = due->element[i], *at = due->element[i + 1];
        char customer[TP_CUSTOMER_MAX + 1];
        if (id->type != REDIS_REPLY_STRING || at->type != REDIS_REPLY_STRING ||
            tp_key_reminder_customer(customer, sizeof customer, id->str) < 0)
            continue;
        int64_t due_ms = atoll(at->str);
        if (armed_find(f, id->str, due_ms)) continue; /* no need to read it */
        if (!rd->rc) {
            if (!(rd->rc = calloc(1, sizeof *rd->rc))) abort();
            rd->rc->fire = f;
            rd->rc->bucket = rd->bucket;
        }
        records_ctx_t *rc = rd->rc;
        if (!(rc->reminder[rc->n] = strdup(id->str))) abort();
        rc->due[rc->n++] = due_ms;
        tp_argv_addf(&rd->keys, "%s{s%d}:r:c:%d", ns, rd->bucket,
                     tp_key_reminder_group(customer));
        tp_argv_add(&rd->args, id->str, id->len);
        if (rc->n == FIRE_BATCH) records_send(rd);
    }
}

static void groups_due_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    poll_ctx_t *page = arg;
    tp_fire_t *f = page->fire;
    int bucket = page->bucket;
    free(page);
    if (r && r->type == REDIS_REPLY_ARRAY && !f->closing) {
        records_read_t rd = {.fire = f, .bucket = bucket};
        tp_argv_init(&rd.keys);
        tp_argv_init(&rd.args);
        for (size_t g = 0; g < r->elements; g++)
            if (r->element[g]->type == REDIS_REPLY_ARRAY) records_add(&rd, r->element[g]);
        records_send(&rd);
        tp_argv_clear(&rd.keys);
        tp_argv_clear(&rd.args);
    }
    poll_answered(f, bucket);
}

static void groups_cb(tp_store_t *store, redisReply *r, void *arg) {
    poll_ctx_t page = *(poll_ctx_t *)arg;
    free(arg);
    tp_fire_t *f = page.fire;
    if (!r || r->type != REDIS_REPLY_ARRAY || f->closing) {
        poll_answered(f, page.bucket);
        return;
    }
    const char *ns = tp_store_ns(store);
    tp_argv_t keys, args;
    tp_argv_init(&keys);
    tp_argv_init(&args);
    tp_argv_addf(&keys, "%s{s%d}:r:due", ns, page.bucket);
    tp_argv_addf(&args, "%lld", (long long)page.until);
    tp_argv_addf(&args, "%d", f->opts.poll_batch);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *g = r->element[i];
        if (g->type != REDIS_REPLY_STRING) continue;
        tp_argv_addf(&keys, "%s{s%d}:r:due:%s", ns, page.bucket, g->str);
        tp_argv_add_copy(&args, g->str, g->len);
    }
    if (keys.n > 1) {
        poll_ctx_t *ctx = malloc(sizeof *ctx);
        if (!ctx) abort();
        *ctx = page;
        if (eval_split(store, f->poll_script, groups_due_cb, ctx, &keys, &args) < 0)
            free(ctx);
        else
            poll_sent(f, page.bucket);
    }
    tp_argv_clear(&keys);
    tp_argv_clear(&args);
    /* A full page: a backlog (a burst falling due together, or downtime).
     * Read on at once rather than a page per poll interval; what firing
     * takes out meanwhile shifts the rest, and the next poll finds any
     * group skipped that way. */
    if (r->elements == (size_t)f->opts.poll_batch && page.page + 1 < POLL_PAGES_MAX)
        poll_page(f, page.bucket, page.page + 1, page.until);
    poll_answered(f, page.bucket);
}

static void poll_page(tp_fire_t *f, int bucket, int page, int64_t until) {
    char groups_key[128];
    tp_key(groups_key, sizeof groups_key, tp_store_ns(f->store), "{s%d}:r:due", bucket);
    poll_ctx_t *ctx = malloc(sizeof *ctx);
    if (!ctx) abort();
    *ctx = (poll_ctx_t){.fire = f, .bucket = bucket, .page = page, .until = until};
    if (tp_store_command(f->store, groups_cb, ctx,
                         "ZRANGEBYSCORE %s -inf %lld LIMIT %lld %d", groups_key,
                         (long long)until, (long long)page * f->opts.poll_batch,
                         f->opts.poll_batch) < 0)
        free(ctx);
    else
        poll_sent(f, bucket);
}

static void poll_timer_cb(uv_timer_t *t) {
    tp_fire_t *f = t->data;
    /* a poll still being answered (a backlog on a loaded Redis): polls
     * never pile up on it */
    if (!tp_store_connected(f->store) || f->polling > 0) return;
    f->poll_until = tp_now_ms() + f->opts.lookahead_ms;
    f->poll_next = 0;
    poll_more(f);
}

tp_fire_t *tp_fire_new(uv_loop_t *loop, tp_store_t *store, const tp_store_options_t *claim_link,
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
    f->poll_next = TP_REMINDER_BUCKETS;
    tp_store_options_t link = *claim_link;
    link.name = "claims"; /* its log lines apart from the service's link */
    if (!(f->claims = tp_store_new(loop, &link))) {
        free(f);
        return NULL;
    }
    f->fire_script = tp_store_script(f->claims, "scheduler_fire", FIRE_LUA);
    f->poll_script = tp_store_script(store, "scheduler_poll", POLL_LUA);
    f->records_script = tp_store_script_ro(store, "scheduler_records", RECORDS_LUA);
    if (f->fire_script < 0 || f->poll_script < 0 || f->records_script < 0) {
        tp_store_destroy(&f->claims);
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
    HASH_CLEAR(hh, f->index);
    for (size_t i = 0; i < f->n; i++) armed_free(f->heap[i]);
    for (int b = 0; b < TP_REMINDER_BUCKETS; b++)
        for (int i = 0; i < f->nstaged[b]; i++) armed_free(f->staged[b][i]);
    free(f->heap);
    free(f);
}

void tp_fire_destroy(tp_fire_t **self_p) {
    tp_fire_t *f = self_p ? *self_p : NULL;
    if (!f) return;
    *self_p = NULL;
    f->closing = 1;
    tp_store_destroy(&f->claims); /* the claims in flight end (NULL) now */
    uv_close((uv_handle_t *)&f->next_timer, close_cb);
    uv_close((uv_handle_t *)&f->poll_timer, close_cb);
}

void tp_fire_set_recurrence(tp_fire_t *self, tp_fire_next_cb next, void *arg) {
    self->next = next;
    self->next_arg = arg;
}

tp_store_t *tp_fire_claim_store(tp_fire_t *self) { return self->claims; }

void tp_fire_stats(const tp_fire_t *self, tp_fire_stats_t *out) {
    *out = self->stats;
    out->armed = self->n;
}
