/* scheduler_fire.c: the heap of armed reminders, the poll and the claim.
 *
 * Two Redis links: the poll reads on the service's own (shared with the
 * plan's applies), the claims go out on a link of their own, so that
 * neither a burst of planning nor the poll's reads queue in front of a
 * reminder falling due. The poll reads a few shards at a time, each
 * page's books in one script, so Redis never runs a long stretch of poll
 * work while a claim waits. Claims are computed here from each customer's
 * book as known here and written only if Redis holds that very book. */
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
 * instances), the shard's count (pending), then per customer its group's
 * due index, its group's hash and the owners' indexes it changes. ARGV
 * now, the number of customers, then per customer: its id, its book as
 * the claim was computed from, the book after ("": the field removed), its
 * earliest due time after (0: none), its group, reminders gone (fired, not
 * recurring), the number m of owners' indexes, the number e of reminders
 * fired, m earliest due times (0: none) and e reminder.due envelopes. A
 * customer whose book is still the one the claim was computed from gets
 * the book after and its index entries, and its envelopes go to the
 * outbox; one whose book changed meanwhile (a plan, another instance's
 * claim) gets nothing. Returns per customer 1 (claimed), or its book now
 * (nil: none) to compute the claim again from. The index entries of the
 * groups claimed from are set to their earliest due time again (or
 * removed). One call claims a whole batch of one shard: Redis runs one
 * script for many reminders. */
static const char FIRE_LUA[] =
    "local out, fired, gone, env, groups = {}, 0, 0, {}, {}\n"
    "local a, k = 3, 5\n"
    "for i = 1, tonumber(ARGV[2]) do\n"
    "  local c, m, e = ARGV[a], tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])\n"
    "  local now = redis.call('HGET', KEYS[k + 1], c)\n"
    "  if now == ARGV[a + 1] then\n"
    "    if ARGV[a + 2] == '' then redis.call('HDEL', KEYS[k + 1], c)\n"
    "    else redis.call('HSET', KEYS[k + 1], c, ARGV[a + 2]) end\n"
    "    if ARGV[a + 3] == '0' then redis.call('ZREM', KEYS[k], c)\n"
    "    else redis.call('ZADD', KEYS[k], ARGV[a + 3], c) end\n"
    "    groups[ARGV[a + 4]] = KEYS[k]\n"
    "    gone = gone + tonumber(ARGV[a + 5])\n"
    "    for j = 1, m do\n"
    "      local at = ARGV[a + 7 + j]\n"
    "      if at == '0' then redis.call('ZREM', KEYS[k + 1 + j], c)\n"
    "      else redis.call('ZADD', KEYS[k + 1 + j], at, c) end\n"
    "    end\n"
    "    for j = 1, e do\n"
    "      env[#env + 1] = ARGV[1]\n"
    "      env[#env + 1] = ARGV[a + 7 + m + j]\n"
    "    end\n"
    "    fired = fired + e\n"
    "    out[i] = 1\n"
    "  else\n"
    "    out[i] = now\n"
    "  end\n"
    "  a = a + 8 + m + e\n"
    "  k = k + 2 + m\n"
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
 * ARGV[3..]; ARGV[1] until (its score: seconds), ARGV[2] at most this many per group. Per
 * group: its customers with a reminder due by then, {customer, earliest
 * due, ...}; the group's index entry is set to its earliest due time (or
 * removed when it is empty), so a close's stale entry is read once. The
 * books are read apart, for the customers not armed that far yet only: a
 * backlog polled again costs its ids, not its books. */
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

/* KEYS per customer its group's hash; ARGV its id. The books, in order
 * (nil: none since). */
static const char BOOKS_LUA[] =
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

/* A customer with reminders armed here: its book as last known here
 * (written by a plan or a claim of this instance, or read by a poll), what
 * its next claim is computed from. Every reminder of that book due by
 * `armed_until` is armed. Replies on the two Redis links come in no
 * common order, so a book is taken only when nothing was set since the
 * read or claim it comes from (`gen`); otherwise the newer one stays and
 * arms what is due again. */
typedef struct booked {
    char *customer; /* owned, the index key */
    int bucket;
    char *book;     /* owned; NULL: none */
    size_t len;
    uint64_t gen;        /* books set so far */
    int64_t earliest;    /* the book's earliest due time, 0 none */
    int64_t next_after;  /* its earliest due time after armed_until, 0 none */
    int64_t armed_until; /* its reminders due by then are armed */
    int armed;           /* armed reminders referring to it */
    UT_hash_handle hh;
} booked_t;

/* One reminder armed: in the heap by due time and in the index by "<due>
 * <reminder>", so that arming the same reminder for the same time twice
 * (planned here, then found by the poll) keeps one. */
typedef struct armed {
    int64_t due;
    int bucket;
    char *key;      /* "<due> <reminder>", owned */
    char *reminder; /* inside key */
    booked_t *booked; /* its customer, counted in booked->armed */
    UT_hash_handle hh;
} armed_t;

struct tp_fire {
    uv_loop_t *loop;
    tp_store_t *store;  /* the poll's (the service's link), borrowed */
    tp_store_t *claims; /* the claims' own link, owned */
    tp_emitter_t *emitter;
    tp_fire_options_t opts;
    int fire_script, poll_script, books_script;
    uv_timer_t next_timer, poll_timer;
    armed_t **heap;
    size_t n, cap;
    armed_t *index; /* uthash head: every armed reminder by key */
    booked_t *books; /* uthash head: the customers of the armed reminders */
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

/* ---- the customers' books ---- */

/* The customer `customer`'s entry, made when `make` and not there. */
static booked_t *booked_get(tp_fire_t *f, const char *customer, int bucket, int make) {
    booked_t *b = NULL;
    HASH_FIND_STR(f->books, customer, b);
    if (b || !make) return b;
    if (!(b = calloc(1, sizeof *b)) || !(b->customer = strdup(customer))) abort();
    b->bucket = bucket;
    HASH_ADD_KEYPTR(hh, f->books, b->customer, strlen(b->customer), b);
    return b;
}

/* Forgets `b` once no armed reminder refers to it. */
static void booked_release(tp_fire_t *f, booked_t *b) {
    if (!b || b->armed > 0) return;
    HASH_DEL(f->books, b);
    free(b->customer);
    free(b->book);
    free(b);
}

static void armed_free(tp_fire_t *f, armed_t *a) {
    if (!a) return;
    booked_t *b = a->booked;
    free(a->key);
    free(a);
    if (b) {
        b->armed--;
        booked_release(f, b);
    }
}

/* The index key of `reminder` armed for `due_ms`, allocated. */
static char *armed_key(const char *reminder, int64_t due_ms) {
    char *key = NULL;
    if (asprintf(&key, "%lld %s", (long long)due_ms, reminder) < 0) abort();
    return key;
}

static void rearm(tp_fire_t *f);

/* Arms `reminder` of `b` for `due_ms` unless it is armed for then already. */
static void arm_one(tp_fire_t *f, booked_t *b, const char *reminder, int64_t due_ms) {
    char *key = armed_key(reminder, due_ms);
    armed_t *item = NULL;
    HASH_FIND_STR(f->index, key, item);
    if (item) { /* armed for this due time already */
        free(key);
        return;
    }
    if (!(item = calloc(1, sizeof *item))) abort();
    item->due = due_ms;
    item->bucket = b->bucket;
    item->key = key;
    item->reminder = item->key + strcspn(item->key, " ") + 1;
    item->booked = b;
    b->armed++;
    HASH_ADD_KEYPTR(hh, f->index, item->key, strlen(item->key), item);
    heap_push(f, item);
    f->stats.armed = f->n;
    if (f->armed_at < 0 || due_ms < f->armed_at) {
        f->armed_at = -1;
        rearm(f);
    }
}

/* A reminder of a book being set: the earliest, and armed when due by
 * then. */
typedef struct booked_walk {
    tp_fire_t *fire;
    booked_t *booked;
} booked_walk_t;

static void booked_due(const char *id, int64_t due, void *arg) {
    booked_walk_t *w = arg;
    booked_t *b = w->booked;
    if (due <= 0) return; /* not a time: never armed (tp_book_earliest skips it too) */
    if (b->earliest == 0 || due < b->earliest) b->earliest = due;
    if (due > b->armed_until) {
        if (b->next_after == 0 || due < b->next_after) b->next_after = due;
    } else if (!w->fire->closing) {
        arm_one(w->fire, b, id, due);
    }
}

/* Arms the reminders of the book known of `b` due by its armed_until again
 * (those a claim just took out of the index and that are still due). */
static void booked_rearm(tp_fire_t *f, booked_t *b) {
    booked_walk_t w = {.fire = f, .booked = b};
    b->earliest = b->next_after = 0;
    if (b->book && tp_book_dues(b->customer, b->book, b->len, booked_due, &w) < 0)
        b->armed_until = 0;
}

/* Sets the book known of `b` (`len` bytes, NULL: none; copied), and arms
 * its reminders due by `until` (or by the time armed before): from
 * `reminders` (id -> record) when given, else from the bytes. Returns 0,
 * or -1 when the bytes are not a book (nothing is armed; `b` knows none). */
static int booked_set(tp_fire_t *f, booked_t *b, const char *book, size_t len,
                      const json_t *reminders, int64_t until) {
    free(b->book);
    b->book = NULL;
    b->len = 0;
    b->gen++;
    if (book) {
        if (!(b->book = malloc(len ? len : 1))) abort();
        memcpy(b->book, book, len);
        b->len = len;
    }
    b->earliest = b->next_after = 0;
    if (until > b->armed_until) b->armed_until = until;
    booked_walk_t w = {.fire = f, .booked = b};
    if (!reminders) {
        if (book && tp_book_dues(b->customer, book, len, booked_due, &w) < 0) {
            free(b->book);
            b->book = NULL;
            b->len = 0;
            b->armed_until = 0; /* the poll reads it again */
            return -1;
        }
        return 0;
    }
    const char *id;
    json_t *r;
    json_object_foreach((json_t *)reminders, id, r)
        booked_due(id, json_integer_value(json_object_get(r, "due_at")), &w);
    return 0;
}

void tp_fire_arm_book(const char *customer, int bucket, const char *book, size_t len,
                      const json_t *reminders, void *arg) {
    tp_fire_t *f = arg;
    if (f->closing || bucket < 0 || bucket >= TP_REMINDER_BUCKETS) return;
    /* Only what falls due before the next poll looks further ahead. */
    int64_t until = tp_now_ms() + f->opts.lookahead_ms;
    booked_t *b = booked_get(f, customer, bucket, 0);
    if (!b && tp_book_earliest(reminders, NULL) > until) return;
    b = booked_get(f, customer, bucket, 1);
    booked_set(f, b, book, len, reminders, until);
    booked_release(f, b);
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
    int fires;     /* found due in its customer's book: in the claim */
    msgpack_sbuffer payload;
} claim_t;

/* One customer of a claim batch: the claims of its reminders, and the book
 * after them. */
typedef struct claimed {
    booked_t *booked; /* held by its claims' items */
    uint64_t gen;     /* its book's generation the claim was computed from */
    int first;        /* its first claim; the next in claim_next */
    char *book;       /* after the claim (NULL: none left), owned */
    size_t len;
    json_t *reminders; /* after the claim, owned */
} claimed_t;

/* One claim script in flight: reminders of one bucket. */
typedef struct batch {
    tp_fire_t *fire;
    int bucket; /* the shard of every claim */
    int64_t now;
    int n, ncustomers;
    claim_t claims[FIRE_BATCH];
    int claim_next[FIRE_BATCH];  /* the customer's next claim, -1: none */
    int claim_of[FIRE_BATCH];    /* the customer of each claim */
    claimed_t customers[FIRE_BATCH];
} batch_t;

/* The claims of customer `c` of `b` are over: their reminders leave the
 * index, so that the book known now arms what is still due again. */
static void claims_end(batch_t *b, int c) {
    for (int i = b->customers[c].first; i >= 0; i = b->claim_next[i])
        if (b->claims[i].item) {
            HASH_DEL(b->fire->index, b->claims[i].item);
            armed_free(b->fire, b->claims[i].item);
            b->claims[i].item = NULL;
        }
}

/* Whatever became of the claims of `b` (Redis gone, an error), their
 * customers' books known here are no longer to be trusted: the next poll
 * reads them again and arms what is still due. */
static void batch_unknown(batch_t *b) {
    for (int c = 0; c < b->ncustomers; c++) b->customers[c].booked->armed_until = 0;
}

/* The claims are over: the reminders still held leave the index (a poll
 * may arm them again: what did not fire is still due). */
static void batch_free(batch_t *b) {
    for (int i = 0; i < b->n; i++) {
        if (b->claims[i].item) {
            HASH_DEL(b->fire->index, b->claims[i].item);
            armed_free(b->fire, b->claims[i].item);
        }
        msgpack_sbuffer_destroy(&b->claims[i].payload);
    }
    for (int c = 0; c < b->ncustomers; c++) {
        free(b->customers[c].book);
        json_decref(b->customers[c].reminders);
    }
    free(b);
}

/* Customer `c` of `b` is claimed: its reminder.due go to intake. */
static void claimed_ok(batch_t *b, int c, int64_t *max_late, uint64_t *late) {
    tp_fire_t *f = b->fire;
    claimed_t *cu = &b->customers[c];
    for (int i = cu->first; i >= 0; i = b->claim_next[i]) {
        claim_t *cl = &b->claims[i];
        if (!cl->fires) {
            f->stats.lost_race++; /* replanned or closed since it was armed */
            continue;
        }
        f->stats.fired++;
        if (cl->late_ms > LATE_MS) (*late)++;
        if (cl->late_ms > *max_late) *max_late = cl->late_ms;
        tp_emitter_send_shard(f->emitter, b->bucket, cl->payload.data, cl->payload.size);
    }
    booked_t *bk = cu->booked;
    bk->armed++; /* held across the end of its claims */
    claims_end(b, c);
    if (bk->gen == cu->gen)
        booked_set(f, bk, cu->book, cu->len, cu->reminders, 0);
    else /* a newer book came meanwhile (a plan's, a poll's) */
        booked_rearm(f, bk);
    bk->armed--;
    booked_release(f, bk);
}

/* Customer `c` of `b` had another book than its claim was computed from:
 * `now` (nil: none). Its reminders still due in that book are armed again
 * (due: claimed again at once, from that book); the others were replanned,
 * closed or fired by another instance meanwhile. */
static void claimed_changed(batch_t *b, int c, const redisReply *now) {
    tp_fire_t *f = b->fire;
    claimed_t *cu = &b->customers[c];
    booked_t *bk = cu->booked;
    json_t *state = NULL, *reminders = NULL;
    const char *book = now->type == REDIS_REPLY_STRING ? now->str : NULL;
    size_t len = book ? now->len : 0;
    if (tp_book_unpack(bk->customer, book, len, &state, &reminders) < 0) {
        tp_log_error("book of %s unreadable", bk->customer);
        book = NULL;
        len = 0;
    }
    for (int i = cu->first; i >= 0; i = b->claim_next[i]) {
        json_t *r = json_object_get(reminders, b->claims[i].item->reminder);
        if (!r || json_integer_value(json_object_get(r, "due_at")) != b->claims[i].item->due)
            f->stats.lost_race++;
    }
    bk->armed++; /* held across the end of its claims */
    claims_end(b, c);
    if (bk->gen == cu->gen)
        booked_set(f, bk, book, len, reminders, 0);
    else /* a newer book came meanwhile (a plan's, a poll's) */
        booked_rearm(f, bk);
    bk->armed--;
    booked_release(f, bk);
    json_decref(state);
    json_decref(reminders);
}

static void fired_cb(tp_store_t *store, redisReply *r, void *arg) {
    batch_t *b = arg;
    tp_fire_t *f = b->fire;
    f->inflight--;
    f->claims_inflight -= b->n;
    if (r && r->type == REDIS_REPLY_ARRAY && !f->closing) {
        uint64_t late = 0;
        int64_t max_late = 0;
        /* one answer per customer claimed, in order; those without a
         * reminder still due were not sent */
        size_t at = 0;
        for (int c = 0; c < b->ncustomers; c++) {
            claimed_t *cu = &b->customers[c];
            int sent = 0;
            for (int i = cu->first; i >= 0 && !sent; i = b->claim_next[i])
                sent = b->claims[i].fires;
            if (!sent) {
                for (int i = cu->first; i >= 0; i = b->claim_next[i]) f->stats.lost_race++;
                continue;
            }
            if (at >= r->elements) { /* not the script's answer: read them again */
                for (int rest = c; rest < b->ncustomers; rest++)
                    b->customers[rest].booked->armed_until = 0;
                break;
            }
            const redisReply *e = r->element[at++];
            if (e->type == REDIS_REPLY_INTEGER && e->integer == 1)
                claimed_ok(b, c, &max_late, &late);
            else
                claimed_changed(b, c, e);
        }
        f->stats.late += late;
        if (max_late > f->stats.max_late_ms) f->stats.max_late_ms = max_late;
        if (late > 0)
            tp_log_info("fired %llu reminders late, up to %lld ms",
                        (unsigned long long)late, (long long)max_late);
    } else {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("fire: %s", r->str);
        /* NULL: Redis gone; the reminders stay due and the poll finds them */
        batch_unknown(b);
    }
    batch_free(b);
    if (!f->closing) rearm(f); /* a backlog waits for room in flight */
}

/* Packs reminder.due for `c` from `rem`, its record (borrowed). Returns 0,
 * or -1 when it cannot be packed (the reminder is not claimed). */
static int claim_pack(claim_t *c, const char *customer, const json_t *rem) {
    armed_t *item = c->item;
    const char *ov = json_string_value(json_object_get(rem, "owner"));
    const char *rule = json_string_value(json_object_get(rem, "rule"));
    const char *text = json_string_value(json_object_get(rem, "text"));
    json_t *data = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:s}", "reminder",
                             item->reminder, "rule", rule ? rule : "unknown", "owner",
                             ov ? ov : "unassigned", "due_at", (json_int_t)item->due,
                             "late_ms", (json_int_t)c->late_ms, "urgent",
                             json_is_true(json_object_get(rem, "urgent")), "text",
                             text ? text : "");
    char id[TP_ID_MAX + 1];
    snprintf(id, sizeof id, "rem:%.80s:%lld", item->reminder, (long long)item->due);
    /* '|' is not allowed in event ids */
    for (char *p = id; *p; p++)
        if (*p == '|') *p = '/';
    if (!data) return -1;
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

/* Computes customer `c`'s claim from its book as known here: each of its
 * reminders still due at the armed time fires (a recurring one moves to
 * its next occurrence), and adds it to the script. Returns 1 when one
 * fires, 0 when none does (nothing is sent for it). */
static int claim_customer(tp_fire_t *f, batch_t *b, int c, tp_argv_t *keys, tp_argv_t *args) {
    claimed_t *cu = &b->customers[c];
    booked_t *bk = cu->booked;
    const char *ns = tp_store_ns(f->store);
    json_t *state = NULL, *before = NULL;
    cu->gen = bk->gen;
    if (!bk->book) return 0;
    if (tp_book_unpack(bk->customer, bk->book, bk->len, &state, &before) < 0) {
        tp_log_error("book of %s unreadable; its reminders stay in place", bk->customer);
        return 0;
    }
    cu->reminders = json_deep_copy(before);
    int fired = 0, gone = 0;
    for (int i = cu->first; i >= 0; i = b->claim_next[i]) {
        claim_t *cl = &b->claims[i];
        json_t *rem = json_object_get(cu->reminders, cl->item->reminder);
        if (!rem || json_integer_value(json_object_get(rem, "due_at")) != cl->item->due) {
            /* replanned or closed since, as far as the book known here
             * says: the next poll reads the book again */
            bk->armed_until = 0;
            continue;
        }
        if (claim_pack(cl, bk->customer, rem) != 0) {
            tp_log_error("reminder %s unreadable; left in place", cl->item->reminder);
            continue;
        }
        json_t *next = NULL;
        int64_t next_due = f->next ? f->next(f->next_arg, rem, &next) : 0;
        if (next && next_due > cl->item->due) {
            json_object_del(next, "rule");
            json_object_set_new(cu->reminders, cl->item->reminder, next);
        } else {
            json_decref(next);
            json_object_del(cu->reminders, cl->item->reminder);
            gone++;
        }
        cl->fires = 1;
        fired++;
    }
    if (fired == 0) goto done;
    int empty = json_object_size(state) == 0 && json_object_size(cu->reminders) == 0;
    if (!empty && !(cu->book = tp_book_pack(bk->customer, state, cu->reminders, &cu->len))) {
        for (int i = cu->first; i >= 0; i = b->claim_next[i]) b->claims[i].fires = 0;
        tp_log_error("book of %s not packable", bk->customer);
        fired = 0;
        goto done;
    }
    int group = tp_key_reminder_group(bk->customer);
    int part = group % TP_OWNER_PARTS;
    tp_argv_addf(keys, "%s{s%d}:r:due:%d", ns, b->bucket, group);
    tp_argv_addf(keys, "%s{s%d}:r:c:%d", ns, b->bucket, group);
    tp_argv_add(args, bk->customer, (size_t)-1);
    tp_argv_add(args, bk->book, bk->len);
    tp_argv_add(args, cu->book ? cu->book : "", cu->book ? cu->len : 0);
    tp_argv_add_int(args, tp_key_due_score(tp_book_earliest(cu->reminders, NULL)));
    tp_argv_addf(args, "%d", group);
    tp_argv_add_int(args, gone);
    /* the owners' entries that change */
    json_t *moves = tp_book_owner_moves(before, cu->reminders);
    const char *owner;
    json_t *v;
    tp_argv_t at;
    tp_argv_init(&at);
    json_object_foreach(moves, owner, v) {
        tp_argv_addf(keys, "%s{s%d}:r:owner:%d:%s", ns, b->bucket, part, owner);
        tp_argv_add_int(&at, json_integer_value(v));
    }
    json_decref(moves);
    tp_argv_add_int(args, (int64_t)at.n);
    tp_argv_add_int(args, fired);
    for (size_t i = 0; i < at.n; i++) tp_argv_add_copy(args, at.v[i], at.len[i]);
    tp_argv_clear(&at);
    for (int i = cu->first; i >= 0; i = b->claim_next[i])
        if (b->claims[i].fires)
            tp_argv_add(args, b->claims[i].payload.data, b->claims[i].payload.size);
done:
    json_decref(state);
    json_decref(before);
    return fired > 0;
}

/* Claims `items` (all of `bucket`, owned) in one script. */
static void fire_batch(tp_fire_t *f, int bucket, armed_t **items, int n, int64_t now) {
    batch_t *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->fire = f;
    b->bucket = bucket;
    b->now = now;
    /* the claims, their customers, each customer's claims in a list */
    for (int i = 0; i < n; i++) {
        claim_t *cl = &b->claims[b->n];
        cl->item = items[i];
        cl->late_ms = now > cl->item->due ? now - cl->item->due : 0;
        payload_init(&cl->payload);
        int c = 0;
        while (c < b->ncustomers && b->customers[c].booked != cl->item->booked) c++;
        if (c == b->ncustomers) {
            b->customers[c].booked = cl->item->booked;
            b->customers[c].first = -1;
            b->ncustomers++;
        }
        b->claim_of[b->n] = c;
        b->n++;
    }
    for (int i = b->n - 1; i >= 0; i--) { /* lists in claim order */
        claimed_t *cu = &b->customers[b->claim_of[i]];
        b->claim_next[i] = cu->first;
        cu->first = i;
    }
    const char *ns = tp_store_ns(f->store);
    tp_argv_t keys, args;
    tp_argv_init(&keys);
    tp_argv_init(&args);
    tp_argv_addf(&keys, "%s{s%d}:r:due", ns, bucket);
    tp_argv_add(&keys, tp_emitter_outbox_shard(f->emitter, bucket), (size_t)-1);
    tp_argv_addf(&keys, "%s{s%d}:r:stats", ns, bucket);
    tp_argv_addf(&keys, "%s{s%d}:r:count", ns, bucket);
    tp_argv_add_int(&args, now);
    tp_argv_add(&args, "0", 1); /* the customers sent: set below */
    int sent = 0;
    for (int c = 0; c < b->ncustomers; c++) sent += claim_customer(f, b, c, &keys, &args);
    int rc = -1;
    if (sent > 0) {
        char count[16];
        int l = snprintf(count, sizeof count, "%d", sent);
        tp_argv_set_copy(&args, 1, count, (size_t)l);
        rc = eval_split(f->claims, f->fire_script, fired_cb, b, &keys, &args);
        if (rc == 0) {
            f->inflight++;
            f->claims_inflight += b->n;
        }
    }
    tp_argv_clear(&keys);
    tp_argv_clear(&args);
    if (rc < 0) {
        if (sent == 0)
            f->stats.lost_race += (uint64_t)b->n; /* none still due */
        else
            batch_unknown(b); /* not sent: the poll finds them again */
        batch_free(b);
    }
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

/* ---- the poll ---- */

/* Per shard: its index of groups due by `until` (a page of poll_batch
 * groups at a time), one script reading those groups' customers due by
 * then, then scripts reading the books of those not known here as they
 * are. A shard is done when none of its reads is in flight; then the next
 * one starts. */
typedef struct poll_ctx {
    tp_fire_t *fire;
    int bucket, page;
    int64_t until;
} poll_ctx_t;

/* One books read of a page: the customers asked for, in order, at most
 * FIRE_BATCH (a backlog's page is read in several: Redis never runs one
 * long script for it while a claim waits). */
typedef struct books_ctx {
    tp_fire_t *fire;
    int bucket;
    size_t n;
    int64_t until;
    char *customer[FIRE_BATCH]; /* owned */
    uint64_t gen[FIRE_BATCH];   /* its book's generation here when asked, 0: none */
} books_ctx_t;

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

static void books_free(books_ctx_t *bc) {
    for (size_t i = 0; i < bc->n; i++) free(bc->customer[i]);
    free(bc);
}

static void books_cb(tp_store_t *store, redisReply *r, void *arg) {
    books_ctx_t *bc = arg;
    tp_fire_t *f = bc->fire;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == bc->n && !f->closing)
        for (size_t i = 0; i < bc->n; i++) {
            const redisReply *book = r->element[i];
            /* nil: none since; anything else: the next poll tries again */
            if (book->type != REDIS_REPLY_STRING) continue;
            booked_t *b = booked_get(f, bc->customer[i], bc->bucket, 0);
            if (b ? b->gen != bc->gen[i] : bc->gen[i] != 0)
                continue; /* a newer book came meanwhile (a plan's, a claim's) */
            b = booked_get(f, bc->customer[i], bc->bucket, 1);
            if (booked_set(f, b, book->str, book->len, NULL, bc->until) < 0)
                tp_log_warn("poll: book of %s unreadable", bc->customer[i]);
            booked_release(f, b);
        }
    else if (r && r->type == REDIS_REPLY_ERROR)
        tp_log_warn("poll: books: %s", r->str);
    int bucket = bc->bucket;
    books_free(bc);
    poll_answered(f, bucket);
}

/* The books of a page's customers not armed that far yet, FIRE_BATCH a
 * script. */
typedef struct books_read {
    tp_fire_t *fire;
    int bucket;
    int64_t until;
    books_ctx_t *bc; /* being filled, NULL: none */
    tp_argv_t keys, args;
} books_read_t;

/* Sends what `rd` holds (the ids stay borrowed from the poll's reply
 * until the call returns). */
static void books_send(books_read_t *rd) {
    books_ctx_t *bc = rd->bc;
    rd->bc = NULL;
    if (bc && bc->n > 0 &&
        eval_split(rd->fire->store, rd->fire->books_script, books_cb, bc, &rd->keys,
                   &rd->args) == 0)
        poll_sent(rd->fire, rd->bucket);
    else if (bc)
        books_free(bc);
    tp_argv_clear(&rd->keys);
    tp_argv_clear(&rd->args);
    tp_argv_init(&rd->keys);
    tp_argv_init(&rd->args);
}

/* Adds each customer of `due` (customer, earliest due, ...) whose book is
 * not known here as it is, armed that far, to the read. */
static void books_add(books_read_t *rd, const redisReply *due) {
    tp_fire_t *f = rd->fire;
    const char *ns = tp_store_ns(f->store);
    for (size_t i = 0; i + 1 < due->elements; i += 2) {
        const redisReply *cust = due->element[i], *at = due->element[i + 1];
        if (cust->type != REDIS_REPLY_STRING || at->type != REDIS_REPLY_STRING ||
            cust->len == 0 || cust->len > TP_CUSTOMER_MAX)
            continue;
        booked_t *known = booked_get(f, cust->str, rd->bucket, 0);
        if (known && known->armed_until > 0 &&
            tp_key_due_score(known->earliest) == atoll(at->str) &&
            (known->next_after == 0 || known->next_after > rd->until)) {
            /* the book known here is the one indexed, as far as its
             * earliest time tells, and arms nothing more by then */
            if (rd->until > known->armed_until) known->armed_until = rd->until;
            continue;
        }
        if (!rd->bc) {
            if (!(rd->bc = calloc(1, sizeof *rd->bc))) abort();
            rd->bc->fire = f;
            rd->bc->bucket = rd->bucket;
            rd->bc->until = rd->until;
        }
        books_ctx_t *bc = rd->bc;
        bc->gen[bc->n] = known ? known->gen : 0;
        if (!(bc->customer[bc->n++] = strdup(cust->str))) abort();
        tp_argv_addf(&rd->keys, "%s{s%d}:r:c:%d", ns, rd->bucket,
                     tp_key_reminder_group(cust->str));
        tp_argv_add(&rd->args, cust->str, cust->len);
        if (bc->n == FIRE_BATCH) books_send(rd);
    }
}

static void groups_due_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    poll_ctx_t *page = arg;
    tp_fire_t *f = page->fire;
    int bucket = page->bucket;
    int64_t until = page->until;
    free(page);
    if (r && r->type == REDIS_REPLY_ARRAY && !f->closing) {
        books_read_t rd = {.fire = f, .bucket = bucket, .until = until};
        tp_argv_init(&rd.keys);
        tp_argv_init(&rd.args);
        for (size_t g = 0; g < r->elements; g++)
            if (r->element[g]->type == REDIS_REPLY_ARRAY) books_add(&rd, r->element[g]);
        books_send(&rd);
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
    tp_argv_add_int(&args, tp_key_due_score(page.until));
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
                         (long long)tp_key_due_score(until), (long long)page * f->opts.poll_batch,
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
    f->books_script = tp_store_script_ro(store, "scheduler_books", BOOKS_LUA);
    if (f->fire_script < 0 || f->poll_script < 0 || f->books_script < 0) {
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
    for (size_t i = 0; i < f->n; i++) armed_free(f, f->heap[i]);
    for (int b = 0; b < TP_REMINDER_BUCKETS; b++)
        for (int i = 0; i < f->nstaged[b]; i++) armed_free(f, f->staged[b][i]);
    booked_t *bk, *tmp;
    HASH_ITER(hh, f->books, bk, tmp) { /* none left: every item held one */
        HASH_DEL(f->books, bk);
        free(bk->customer);
        free(bk->book);
        free(bk);
    }
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
