/* consumer.c: events in from the bus and from the journal walk, handed to
 * the service's apply callback, bounded in number.
 *
 * The walk (reconcile) holds a lease so one instance walks at a time. Each
 * step reads up to `reconcile_batch` journal entries after the cursor and
 * older than the lag window, asks Redis in one call which of them already
 * carry this service's done mark, applies the others, and moves the cursor
 * past the step only when every one of them was applied. */
#include "tp/consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uthash.h>

#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

#define DONE_KEY_MAX (TP_ID_MAX + TP_CUSTOMER_MAX + 96)

/* KEYS[1] lease; ARGV[1] instance, ARGV[2] lease ms. Takes or renews the
 * lease; returns 1, or 0 when another instance holds it.
 *
 * The lease and the cursor are two keys of two slots (one script may touch
 * one slot only): the cursor is read, and set, right after the lease is
 * taken or renewed. A walker whose lease ran out in between may still set
 * the cursor once; that is harmless: it only ever sets it past entries it
 * applied itself (or found done), and a cursor set back only makes the next
 * walk see entries again, which their done marks turn into no-ops. */
static const char LEASE_LUA[] =
    "local holder = redis.call('GET', KEYS[1])\n"
    "if holder and holder ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return 1\n";

typedef struct walk_step walk_step_t;

struct tp_consumer_job {
    tp_consumer_t *consumer;
    walk_step_t *step; /* NULL when the event came from the bus */
    tp_event_t ev;
    char done_key[DONE_KEY_MAX];
    char done_field[TP_DONE_FIELD_LEN + 1]; /* "": the mark is the key */
    char tag[TP_CUSTOMER_MAX + 16];
    char turn[TP_CUSTOMER_MAX + 16]; /* whose turn it waits for: the tag, or
                                        the customer (turn_by_customer) */
    struct tp_consumer_job *queued; /* next job of the same turn waiting */
    uint64_t started_ns;            /* uv_hrtime when handed over */
    int duplicate;                  /* tp_consumer_job_duplicate */
};

/* A tag (a customer) with a job being applied, and the jobs of that tag
 * waiting behind it, in arrival order: one customer's events are applied
 * one after another, as the journal has them, so an update never
 * overtakes the event it follows (ticket.updated after ticket.opened). */
typedef struct tag_turn {
    char tag[TP_CUSTOMER_MAX + 16]; /* the uthash key */
    tp_consumer_job_t *head, *tail; /* waiting */
    UT_hash_handle hh;
} tag_turn_t;

/* One step of the journal walk and the jobs it started. */
struct walk_step {
    tp_consumer_t *consumer;
    char last_id[48]; /* journal id the cursor moves to */
    int full;         /* the read returned a whole batch: walk on */
    int remaining;    /* jobs not yet done, +1 while starting them */
    int failed;
    tp_consumer_job_t **jobs; /* candidates; NULL once started or done */
    size_t njobs;
    size_t next;              /* next candidate to start */
    /* the done marks being asked for: one EXISTS each, since the marks of
     * a step lie in every shard (a script may touch only one slot) */
    unsigned char *done;      /* per candidate: 1 done already */
    size_t asked;             /* EXISTS replies still to come */
    int ask_failed;
};

typedef struct done_ask {
    walk_step_t *step;
    size_t index;
} done_ask_t;

struct tp_consumer {
    uv_loop_t *loop;
    tp_store_t *store;
    tp_consumer_options_t opts;
    char endpoint[256], instance[128];
    tp_consumer_tag_cb tag;
    tp_consumer_apply_cb apply;
    void *arg;
    tp_bus_socket_t *pull;
    int paused;
    uv_timer_t walk_timer;
    int walking;
    walk_step_t *step; /* the step whose jobs are being started */
    int pumping;       /* inside step_pump: a job done at once must not
                          re-enter it and end the step under its feet */
    char journal_key[128], cursor_key[128], lease_key[128];
    char done_ttl[24];
    int lease_script;
    char advance_to[48]; /* the cursor the step ending moves to */
    tp_consumer_stats_t stats;
    tag_turn_t *turns; /* uthash: tags with a job being applied */
    /* metrics per event type (NULL without a registry), and their series
     * by type once used (a lookup by name per event is not needed) */
    tp_metric_t *m_received, *m_applied, *m_duplicate, *m_failed, *m_seconds;
    tp_series_t *s_received[TP_EVENT_COUNT], *s_applied[TP_EVENT_COUNT],
        *s_duplicate[TP_EVENT_COUNT], *s_failed[TP_EVENT_COUNT], *s_seconds[TP_EVENT_COUNT];
};

/* The series of `metric` for `type`, cached in `cache`; NULL-safe. */
static tp_series_t *series_of(tp_metric_t *metric, tp_series_t **cache, tp_event_type_t type) {
    if ((int)type < 0 || type >= TP_EVENT_COUNT) return NULL;
    if (!cache[type]) cache[type] = tp_metric_at(metric, tp_proto_type_name(type));
    return cache[type];
}

/* Runs the apply callback with the event's id and customer on every log
 * line it writes (and, through the store, on those of its replies); the
 * context around it (the reply that ended the job before) comes back. */
static void job_apply(tp_consumer_t *self, tp_consumer_job_t *job) {
    tp_log_context_t outer;
    tp_log_context_save(&outer);
    tp_log_context_set(job->ev.id, job->ev.customer);
    self->apply(self, job, &job->ev, self->arg);
    tp_log_context_restore(&outer);
}

static void walk(tp_consumer_t *self);

/* ---- jobs ---- */

static tp_consumer_job_t *job_new(tp_consumer_t *self, tp_event_t *ev) {
    char tag[TP_CUSTOMER_MAX + 16];
    if (self->tag(ev, tag, sizeof tag, self->arg) < 0) return NULL;
    tp_consumer_job_t *job = calloc(1, sizeof *job);
    if (!job) abort();
    job->consumer = self;
    snprintf(job->tag, sizeof job->tag, "%s", tag);
    snprintf(job->turn, sizeof job->turn, "%s",
             self->opts.turn_by_customer ? ev->customer : tag);
    job->ev = *ev; /* move */
    tp_event_init(ev);
    /* a key prefix ("{s3}:c:ACME") or a bare tag ("r3") */
    char prefix[sizeof job->tag + 2];
    if (tag[0] == '{')
        snprintf(prefix, sizeof prefix, "%s", tag);
    else
        snprintf(prefix, sizeof prefix, "{%s}", tag);
    int n;
    if (self->opts.done_grouped) {
        unsigned group = tp_consumer_done_mark(job->done_field, sizeof job->done_field,
                                               job->ev.id);
        n = tp_key(job->done_key, sizeof job->done_key, tp_store_ns(self->store),
                   "%s:done:%s:%lld:%u", prefix, tp_proto_service_name(self->opts.service),
                   (long long)(job->ev.ts > 0 ? job->ev.ts / 3600000 : 0), group);
    } else {
        n = tp_key(job->done_key, sizeof job->done_key, tp_store_ns(self->store),
                   "%s:done:%s:%s", prefix, tp_proto_service_name(self->opts.service),
                   job->ev.id);
    }
    if (n < 0) {
        tp_log_error("event %s: done key too long", job->ev.id);
        tp_event_clear(&job->ev);
        free(job);
        return NULL;
    }
    return job;
}

static void job_free(tp_consumer_job_t *job) {
    tp_event_clear(&job->ev);
    free(job);
}

/* Applies `job` now, or queues it behind the job of its tag being applied
 * (it then counts as in flight already: max_inflight bounds both). */
static void job_start(tp_consumer_job_t *job) {
    tp_consumer_t *self = job->consumer;
    tag_turn_t *turn = NULL;
    HASH_FIND_STR(self->turns, job->turn, turn);
    self->stats.inflight++;
    int waits = turn != NULL;
    if (turn) {
        if (turn->tail) turn->tail->queued = job;
        else turn->head = job;
        turn->tail = job;
    } else {
        turn = calloc(1, sizeof *turn);
        if (!turn) abort();
        snprintf(turn->tag, sizeof turn->tag, "%s", job->turn);
        HASH_ADD_STR(self->turns, tag, turn);
    }
    if (!self->paused && self->stats.inflight >= self->opts.max_inflight) {
        self->paused = 1;
        tp_bus_pause(self->pull);
    }
    job->started_ns = uv_hrtime();
    tp_series_inc(series_of(self->m_received, self->s_received, job->ev.type));
    if (waits) return; /* turn_next starts it */
    job_apply(self, job);
}

/* `job` of `tag` is done: the next of its tag goes, or the tag is free. */
static void turn_next(tp_consumer_t *self, const char *tag) {
    tag_turn_t *turn = NULL;
    HASH_FIND_STR(self->turns, tag, turn);
    if (!turn) return;
    tp_consumer_job_t *next = turn->head;
    if (!next) {
        HASH_DEL(self->turns, turn);
        free(turn);
        return;
    }
    turn->head = next->queued;
    if (!turn->head) turn->tail = NULL;
    next->queued = NULL;
    job_apply(self, next);
}

static void step_end(tp_consumer_t *self, walk_step_t *step);
static void step_pump(tp_consumer_t *self, walk_step_t *step);

void tp_consumer_job_done(tp_consumer_job_t *job, int status) {
    tp_consumer_t *self = job->consumer;
    walk_step_t *step = job->step;
    self->stats.inflight--;
    if (status == 0)
        self->stats.applied++;
    else
        self->stats.failed++;
    if (status == 0 && job->duplicate) self->stats.duplicates++;
    tp_event_type_t type = job->ev.type;
    tp_series_inc(status != 0       ? series_of(self->m_failed, self->s_failed, type)
                  : job->duplicate ? series_of(self->m_duplicate, self->s_duplicate, type)
                                   : series_of(self->m_applied, self->s_applied, type));
    tp_series_observe(series_of(self->m_seconds, self->s_seconds, type),
                      (double)(uv_hrtime() - job->started_ns) / 1e9);
    if (self->paused && self->stats.inflight <= self->opts.max_inflight / 2) {
        self->paused = 0;
        tp_bus_resume(self->pull);
    }
    char tag[sizeof job->turn];
    memcpy(tag, job->turn, sizeof tag);
    job_free(job);
    turn_next(self, tag); /* the tag's next job, if one waits */
    if (step && status != 0) step->failed = 1;
    if (self->step) step_pump(self, self->step); /* room for the walk */
    if (step && --step->remaining == 0) step_end(self, step);
}

void tp_consumer_job_duplicate(tp_consumer_job_t *job) {
    if (job) job->duplicate = 1;
}

int tp_consumer_reply_seen(const redisReply *reply) {
    return reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
           reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer == 0;
}

const char *tp_consumer_job_done_key(const tp_consumer_job_t *job) {
    return job->done_key;
}

unsigned tp_consumer_done_mark(char *field, size_t fieldlen, const char *event_id) {
    /* 9 bytes for the field, 2 more for the group: apart, so that the marks
     * of one hash differ in all of their field's bits */
    unsigned char digest[TP_DONE_FIELD_LEN * 3 / 4 + 2];
    if (crypto_generichash(digest, sizeof digest, (const unsigned char *)event_id,
                           strlen(event_id), NULL, 0) != 0 ||
        fieldlen < TP_DONE_FIELD_LEN + 1 ||
        !sodium_bin2base64(field, fieldlen, digest, TP_DONE_FIELD_LEN * 3 / 4,
                           sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        abort(); /* the callers' buffers are TP_DONE_FIELD_LEN + 1 */
    size_t g = TP_DONE_FIELD_LEN * 3 / 4;
    return ((unsigned)digest[g] | (unsigned)digest[g + 1] << 8) % TP_DONE_GROUPS;
}

const char *tp_consumer_job_done_field(const tp_consumer_job_t *job) {
    return job->done_field[0] ? job->done_field : NULL;
}

int tp_consumer_job_reconciled(const tp_consumer_job_t *job) {
    return job->step != NULL;
}

const char *tp_consumer_done_ttl(const tp_consumer_t *self) {
    return self->done_ttl;
}

/* ---- from the bus ---- */

static int consumes(const tp_consumer_t *self, tp_event_type_t type) {
    const tp_event_schema_t *s = tp_proto_schema(type);
    return s && (s->consumers & (1u << self->opts.service));
}

static void bus_cb(tp_bus_socket_t *sock, const void *const *frames,
                   const size_t *lens, size_t nframes, void *arg) {
    tp_consumer_t *self = arg;
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    if (nframes != 1 || tp_event_from_msgpack(&ev, frames[0], lens[0], &err) < 0) {
        tp_log_warn("bus: dropped a malformed message (%s %s)",
                    nframes == 1 ? err.field : "frames",
                    nframes == 1 ? err.message : "");
        return;
    }
    self->stats.received++;
    if (!consumes(self, ev.type)) {
        tp_event_clear(&ev);
        return;
    }
    tp_consumer_job_t *job = job_new(self, &ev);
    tp_event_clear(&ev);
    if (job) job_start(job);
}

/* ---- the journal walk ---- */

static void step_free(walk_step_t *step) {
    for (size_t i = 0; i < step->njobs; i++)
        if (step->jobs[i]) job_free(step->jobs[i]);
    free(step->jobs);
    free(step->done);
    free(step);
}

static void advance_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_consumer_t *self = arg;
    if (!r || r->type != REDIS_REPLY_STATUS) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("reconcile: SET cursor: %s", r->str);
        self->walking = 0; /* Redis gone: next tick */
        return;
    }
    int walk_on = self->walking == 2; /* step_end: the batch was full */
    self->walking = 0;
    if (walk_on) walk(self);
}

/* The lease is renewed for the step ending: the cursor moves. */
static void advance_lease_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_consumer_t *self = arg;
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        self->walking = 0; /* lease lost or Redis gone: next tick */
        return;
    }
    const char *argv[3] = {"SET", self->cursor_key, self->advance_to};
    size_t lens[3] = {3, strlen(argv[1]), strlen(argv[2])};
    if (tp_store_command_argv(self->store, advance_cb, self, 3, argv, lens) < 0)
        self->walking = 0;
}

static int lease_take(tp_consumer_t *self, tp_store_reply_cb cb) {
    char lease_ms[24];
    snprintf(lease_ms, sizeof lease_ms, "%lld", (long long)self->opts.lease_ms);
    const char *argv[3] = {self->lease_key, self->instance, lease_ms};
    size_t lens[3] = {strlen(argv[0]), strlen(argv[1]), strlen(argv[2])};
    return tp_store_eval(self->store, self->lease_script, cb, self, 1, 3, argv, lens);
}

static void step_end(tp_consumer_t *self, walk_step_t *step) {
    if (step->failed || !step->last_id[0]) {
        self->walking = 0;
        step_free(step);
        return;
    }
    snprintf(self->advance_to, sizeof self->advance_to, "%s", step->last_id);
    self->walking = step->full ? 2 : 1;
    if (lease_take(self, advance_lease_cb) < 0) self->walking = 0;
    step_free(step);
}

/* Starts the step's candidates while there is room under max_inflight;
 * job_done calls it again as room frees up. The step holds one extra count
 * in `remaining` until every candidate has started. */
static void step_pump(tp_consumer_t *self, walk_step_t *step) {
    if (self->pumping) return;
    self->pumping = 1;
    while (step->next < step->njobs &&
           self->stats.inflight < self->opts.max_inflight) {
        tp_consumer_job_t *job = step->jobs[step->next];
        step->jobs[step->next++] = NULL;
        job->step = step;
        step->remaining++;
        self->stats.reconciled++;
        job_start(job);
    }
    self->pumping = 0;
    if (step->next == step->njobs && self->step == step) {
        self->step = NULL;
        if (--step->remaining == 0) step_end(self, step);
    }
}

/* Every done mark of the step is known: start the ones not done. */
static void done_marks_known(walk_step_t *step) {
    tp_consumer_t *self = step->consumer;
    if (step->ask_failed) {
        self->walking = 0;
        step_free(step);
        return;
    }
    size_t kept = 0; /* compact: drop what is done already */
    for (size_t i = 0; i < step->njobs; i++) {
        tp_consumer_job_t *job = step->jobs[i];
        if (step->done[i])
            job_free(job);
        else
            step->jobs[kept++] = job;
    }
    step->njobs = kept;
    if (kept)
        tp_log_info("reconcile: applying %zu journal entries missed on the bus "
                    "(up to %s)", kept, step->last_id);
    step->remaining = 1; /* held until every candidate has started */
    self->step = step;
    step_pump(self, step);
}

static void done_mark_cb(tp_store_t *store, redisReply *r, void *arg) {
    done_ask_t *ask = arg;
    walk_step_t *step = ask->step;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("reconcile: EXISTS: %s", r->str);
        step->ask_failed = 1;
    } else {
        step->done[ask->index] = r->integer != 0;
    }
    free(ask);
    if (--step->asked == 0) done_marks_known(step);
}

/* Journal entries arrived: keep ours, ask which are done already. */
static void range_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_consumer_t *self = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("reconcile: XRANGE: %s", r->str);
        self->walking = 0;
        return;
    }
    walk_step_t *step = calloc(1, sizeof *step);
    if (!step) abort();
    step->consumer = self;
    step->full = (int)r->elements >= self->opts.reconcile_batch;
    step->jobs = calloc(r->elements ? r->elements : 1, sizeof *step->jobs);
    if (!step->jobs) abort();
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *entry = r->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
        snprintf(step->last_id, sizeof step->last_id, "%s", entry->element[0]->str);
        redisReply *fields = entry->element[1];
        const char *type = NULL, *blob = NULL;
        size_t type_len = 0, blob_len = 0;
        for (size_t f = 0; f + 1 < fields->elements; f += 2) {
            redisReply *k = fields->element[f], *v = fields->element[f + 1];
            if (k->len == 1 && k->str[0] == 't') type = v->str, type_len = v->len;
            if (k->len == 1 && k->str[0] == 'e') blob = v->str, blob_len = v->len;
        }
        char tname[64];
        if (!type || !blob || type_len >= sizeof tname) continue;
        memcpy(tname, type, type_len);
        tname[type_len] = '\0';
        if (!consumes(self, tp_proto_type(tname))) continue;
        tp_event_t ev;
        tp_event_error_t err;
        tp_event_init(&ev);
        if (tp_event_from_msgpack(&ev, blob, blob_len, &err) < 0) {
            tp_log_error("reconcile: journal entry %s unreadable (%s: %s); "
                         "skipped", step->last_id, err.field, err.message);
            continue;
        }
        tp_consumer_job_t *job = job_new(self, &ev);
        tp_event_clear(&ev);
        if (job) step->jobs[step->njobs++] = job;
    }
    if (step->njobs == 0) {
        step->remaining = 0;
        step_end(self, step);
        return;
    }
    step->done = calloc(step->njobs, 1);
    if (!step->done) abort();
    step->asked = 1; /* held while asking */
    for (size_t i = 0; i < step->njobs; i++) {
        done_ask_t *ask = malloc(sizeof *ask);
        if (!ask) abort();
        ask->step = step;
        ask->index = i;
        /* the mark is a key, or (done_grouped) a field of a key */
        const char *field = tp_consumer_job_done_field(step->jobs[i]);
        const char *argv[3] = {field ? "HEXISTS" : "EXISTS", step->jobs[i]->done_key, field};
        size_t lens[3] = {strlen(argv[0]), strlen(argv[1]), field ? strlen(field) : 0};
        step->asked++;
        if (tp_store_command_argv(self->store, done_mark_cb, ask, field ? 3 : 2, argv,
                                  lens) < 0) {
            free(ask);
            step->asked--;
            step->ask_failed = 1;
            break;
        }
    }
    if (--step->asked == 0) done_marks_known(step);
}

static void cursor_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_consumer_t *self = arg;
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        if (r && r->type == REDIS_REPLY_ERROR)
            tp_log_error("reconcile: GET cursor: %s", r->str);
        self->walking = 0;
        return;
    }
    char start[64], end[32], count[16];
    /* A cursor that is not a stream id (damaged by hand or by a bug) would
     * stop the walk for good: walk from the start instead; done marks make
     * seeing everything again harmless. */
    const char *cursor = r->type == REDIS_REPLY_STRING ? r->str : "0-0";
    size_t ms = strspn(cursor, "0123456789");
    if (strlen(cursor) > 60 || ms == 0 || cursor[ms] != '-' || cursor[ms + 1] == '\0' ||
        strspn(cursor + ms + 1, "0123456789") != strlen(cursor + ms + 1)) {
        tp_log_warn("reconcile: cursor %s is not a stream id; walking the journal "
                    "from its start", self->cursor_key);
        cursor = "0-0";
    }
    snprintf(start, sizeof start, "(%s", cursor);
    snprintf(end, sizeof end, "%lld",
             (long long)(tp_now_ms() - self->opts.reconcile_lag_ms));
    snprintf(count, sizeof count, "%d", self->opts.reconcile_batch);
    if (tp_store_command(self->store, range_cb, self, "XRANGE %s %s %s COUNT %s",
                         self->journal_key, start, end, count) < 0)
        self->walking = 0;
}

/* The lease is ours (or not): the walk reads the cursor. */
static void lease_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_consumer_t *self = arg;
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("reconcile: lease: %s", r->str);
        self->walking = 0; /* not ours, or Redis gone */
        return;
    }
    if (tp_store_command(self->store, cursor_cb, self, "GET %s", self->cursor_key) < 0)
        self->walking = 0;
}

static void walk(tp_consumer_t *self) {
    if (self->walking || !tp_store_connected(self->store)) return;
    self->walking = 1;
    if (lease_take(self, lease_cb) < 0) self->walking = 0;
}

static void walk_timer_cb(uv_timer_t *t) { walk(t->data); }

/* ---- life ---- */

tp_consumer_t *tp_consumer_new(uv_loop_t *loop, tp_bus_t *bus,
                               tp_store_t *store,
                               const tp_consumer_options_t *opts,
                               tp_consumer_tag_cb tag, tp_consumer_apply_cb apply,
                               void *arg) {
    tp_consumer_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->loop = loop;
    self->store = store;
    self->opts = *opts;
    self->tag = tag;
    self->apply = apply;
    self->arg = arg;
    snprintf(self->endpoint, sizeof self->endpoint, "%s", opts->endpoint);
    snprintf(self->instance, sizeof self->instance, "%s",
             opts->instance ? opts->instance : "anonymous");
    self->opts.endpoint = self->endpoint;
    self->opts.instance = self->instance;
    if (self->opts.max_inflight <= 0) self->opts.max_inflight = 1024;
    if (self->opts.reconcile_lag_ms <= 0) self->opts.reconcile_lag_ms = 2000;
    if (self->opts.reconcile_interval_ms <= 0) self->opts.reconcile_interval_ms = 1000;
    if (self->opts.reconcile_batch <= 0) self->opts.reconcile_batch = 1000;
    if (self->opts.lease_ms <= 0) self->opts.lease_ms = 10000;
    if (self->opts.done_ttl_s <= 0) self->opts.done_ttl_s = 30 * 86400;
    if (self->opts.done_grouped && sodium_init() < 0) abort(); /* done marks' digests */
    snprintf(self->done_ttl, sizeof self->done_ttl, "%lld",
             (long long)self->opts.done_ttl_s);
    const char *ns = tp_store_ns(store), *svc = tp_proto_service_name(opts->service);
    tp_key(self->journal_key, sizeof self->journal_key, ns, "{j}:journal");
    tp_key(self->cursor_key, sizeof self->cursor_key, ns, "cursor:%s", svc);
    tp_key(self->lease_key, sizeof self->lease_key, ns, "lease:%s:reconcile", svc);
    self->lease_script = tp_store_script(store, "consumer_lease", LEASE_LUA);

    self->pull = tp_bus_socket_new_watched(bus, ZMQ_PULL, self->endpoint, 0,
                                           self->opts.hwm, bus_cb, self);
    if (!self->pull || self->lease_script < 0) {
        tp_bus_socket_destroy(&self->pull);
        free(self);
        return NULL;
    }
    tp_metrics_t *m = opts->metrics;
    self->m_received = tp_metrics_counter(m, "tp_events_received_total",
                                          "Events of this service's types handed to it, from "
                                          "the bus or the reconcile walk.",
                                          "type");
    self->m_applied = tp_metrics_counter(m, "tp_events_applied_total",
                                         "Events applied (their effect made).", "type");
    self->m_duplicate = tp_metrics_counter(m, "tp_events_duplicate_total",
                                           "Events found applied already (seen again).",
                                           "type");
    self->m_failed = tp_metrics_counter(m, "tp_events_failed_total",
                                        "Applies that failed; reconcile retries them.", "type");
    self->m_seconds = tp_metrics_histogram(m, "tp_apply_seconds",
                                           "Time from handing an event over (queueing behind "
                                           "its customer included) to its apply's end.",
                                           "type", NULL, 0);
    self->opts.metrics = NULL; /* not kept beyond the families */
    uv_timer_init(loop, &self->walk_timer);
    self->walk_timer.data = self;
    uv_timer_start(&self->walk_timer, walk_timer_cb,
                   (uint64_t)self->opts.reconcile_interval_ms,
                   (uint64_t)self->opts.reconcile_interval_ms);
    return self;
}

static void walk_timer_close_cb(uv_handle_t *h) {
    tp_consumer_t *self = h->data;
    tag_turn_t *turn, *tmp;
    HASH_ITER(hh, self->turns, turn, tmp) { /* jobs still waiting their turn */
        for (tp_consumer_job_t *job = turn->head, *next; job; job = next) {
            next = job->queued;
            job_free(job);
        }
        HASH_DEL(self->turns, turn);
        free(turn);
    }
    free(self);
}

void tp_consumer_destroy(tp_consumer_t **self_p) {
    tp_consumer_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    tp_bus_socket_destroy(&self->pull);
    uv_close((uv_handle_t *)&self->walk_timer, walk_timer_close_cb);
}

void tp_consumer_stats(const tp_consumer_t *self, tp_consumer_stats_t *out) {
    *out = self->stats;
    out->bus_peers = tp_bus_socket_peers(self->pull);
    out->reconcile_lag_ms = self->opts.reconcile_lag_ms;
}
