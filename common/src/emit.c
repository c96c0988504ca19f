/* emit.c: the outbox of derived events and its delivery to intake.
 *
 * Owns the DEALER socket to intake's ingress, the table of messages sent
 * and not yet answered (by token), and the sweep timer that resends outbox
 * entries left unanswered, in every outbox: one per shard ({s<n>}:outbox:
 * <svc>, written by scripts of that shard) and, for one release, the old
 * unsharded outbox:<svc>. Never deletes an outbox entry before intake has
 * answered for it. The entries answered in one loop turn leave their
 * outbox in one ZREM per outbox (a uv_check after the turn's I/O): a burst
 * of derived events costs Redis one command per few hundred entries, not
 * one per entry. */
#include "tp/emit.h"

#include "tp/event.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

#define BUCKETS 4096
#define SWEEP_BATCH "500"
/* Members of one ZREM at most (a turn's answers beyond go in several). */
#define ZREM_BATCH 512

/* KEYS[1] outbox; ARGV[1] stale before (ms), ARGV[2] now, ARGV[3] limit.
 * Takes the stale entries and stamps them, so that instances sharing the
 * outbox do not resend the same entries at once. */
static const char SWEEP_LUA[] =
    "local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                         'LIMIT', 0, ARGV[3])\n"
    "for _, p in ipairs(items) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], p) end\n"
    "return items\n";

/* The outboxes: one per shard, and the old unsharded one (LEGACY). */
#define LEGACY TP_SHARDS
#define OUTBOXES (TP_SHARDS + 1)

typedef struct sweep_arg {
    tp_emitter_t *emitter;
    int outbox;
} sweep_arg_t;

typedef struct sent {
    uint64_t token;
    int outbox; /* the outbox it is taken from once answered */
    int64_t sent_at;
    char *payload;
    size_t len;
    struct sent *next;
} sent_t;

struct tp_emitter {
    tp_store_t *store;
    tp_bus_socket_t *dealer;
    tp_emitter_options_t opts;
    char outbox[OUTBOXES][128];
    sweep_arg_t sweep_args[OUTBOXES];
    int sweep_script;
    uv_timer_t sweep_timer;
    uint64_t next_token;
    sent_t *sent[BUCKETS];
    /* per outbox: the entries answered this turn, not yet removed (owned;
     * chained by next, newest first) */
    sent_t *answered[OUTBOXES];
    uv_check_t flush_check; /* runs answered_flush after the turn's I/O */
    int closed;             /* handles closed, of 2 */
    tp_emitter_stats_t stats;
};

static void sent_free(sent_t *s) {
    free(s->payload);
    free(s);
}

static sent_t *sent_take(tp_emitter_t *self, uint64_t token) {
    sent_t **pp = &self->sent[token % BUCKETS];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->token == token) {
            sent_t *s = *pp;
            *pp = s->next;
            self->stats.inflight--;
            return s;
        }
    return NULL;
}

static void zrem_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store, (void)r, (void)arg; /* a failed ZREM means resends */
}

/* Removes the answered entries from their outboxes: one ZREM per outbox
 * and ZREM_BATCH entries. Not connected: they stay, and the sweep resends
 * them later (intake answers "dup"). Runs on the loop. */
static void answered_flush(tp_emitter_t *self) {
    const char *argv[2 + ZREM_BATCH];
    size_t argl[2 + ZREM_BATCH];
    for (int o = 0; o < OUTBOXES; o++) {
        while (self->answered[o]) {
            argv[0] = "ZREM";
            argl[0] = 4;
            argv[1] = self->outbox[o];
            argl[1] = strlen(self->outbox[o]);
            int n = 2;
            sent_t *s = self->answered[o];
            for (; s && n < 2 + ZREM_BATCH; s = s->next, n++) {
                argv[n] = s->payload;
                argl[n] = s->len;
            }
            /* the arguments are copied: the entries can go */
            tp_store_command_argv(self->store, zrem_cb, NULL, n, argv, argl);
            while (self->answered[o] != s) {
                sent_t *done = self->answered[o];
                self->answered[o] = done->next;
                sent_free(done);
            }
        }
    }
}

static void flush_check_cb(uv_check_t *check) {
    tp_emitter_t *self = check->data;
    uv_check_stop(check);
    answered_flush(self);
}

static void answer_cb(tp_bus_socket_t *sock, const void *const *frames,
                      const size_t *lens, size_t nframes, void *arg) {
    tp_emitter_t *self = arg;
    uint64_t token;
    if (nframes != 2 || lens[0] != sizeof token) return;
    memcpy(&token, frames[0], sizeof token);
    sent_t *s = sent_take(self, token);
    if (!s) return; /* answered late, after a sweep forgot it */
    const char *status = frames[1];
    size_t slen = lens[1];
    if (slen == 4 && memcmp(status, "busy", 4) == 0) {
        sent_free(s); /* stays in the outbox; the sweep resends it */
        return;
    }
    if (slen >= 3 && memcmp(status, "err", 3) == 0) {
        self->stats.rejected++;
        tp_log_error("intake refused a derived event: %.*s (dropped from the "
                     "outbox)", (int)slen, status);
    } else {
        self->stats.acked++;
    }
    /* removed after this turn's I/O, with the other answers */
    s->next = self->answered[s->outbox];
    self->answered[s->outbox] = s;
    uv_check_start(&self->flush_check, flush_check_cb); /* no-op when started */
}

static void send_from(tp_emitter_t *self, int outbox, const char *payload,
                      size_t len) {
    uint64_t token = ++self->next_token;
    const void *frames[2] = {&token, payload};
    size_t lens[2] = {sizeof token, len};
    if (tp_bus_send(self->dealer, frames, lens, 2) < 0) {
        if (errno == EAGAIN)
            self->stats.deferred++;
        else
            tp_log_warn("emit: send to intake failed: %s", zmq_strerror(errno));
        return; /* in the outbox still: the sweep resends it */
    }
    sent_t *s = malloc(sizeof *s);
    if (!s) abort();
    s->token = token;
    s->outbox = outbox;
    s->sent_at = tp_now_ms();
    s->payload = malloc(len ? len : 1);
    if (!s->payload) abort();
    memcpy(s->payload, payload, len);
    s->len = len;
    s->next = self->sent[token % BUCKETS];
    self->sent[token % BUCKETS] = s;
    self->stats.sent++;
    self->stats.inflight++;
}

void tp_emitter_send(tp_emitter_t *self, const char *payload, size_t len) {
    send_from(self, LEGACY, payload, len);
}

void tp_emitter_send_of(tp_emitter_t *self, const char *id, const char *payload,
                        size_t len) {
    send_from(self, tp_key_shard(id), payload, len);
}

void tp_emitter_send_shard(tp_emitter_t *self, int shard, const char *payload,
                           size_t len) {
    send_from(self, shard >= 0 && shard < TP_SHARDS ? shard : LEGACY, payload, len);
}

static void sweep_cb(tp_store_t *store, redisReply *r, void *arg) {
    sweep_arg_t *sweep = arg;
    tp_emitter_t *self = sweep->emitter;
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    if (r->elements) tp_log_info("emit: resending %zu unanswered derived events",
                                 r->elements);
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            self->stats.resent++;
            send_from(self, sweep->outbox, r->element[i]->str, r->element[i]->len);
        }
}

static void sweep_timer_cb(uv_timer_t *t) {
    tp_emitter_t *self = t->data;
    int64_t now = tp_now_ms();
    answered_flush(self); /* before the sweep reads the outboxes */
    /* Forget answers not coming: their entries are resent from the outbox. */
    for (int b = 0; b < BUCKETS; b++) {
        sent_t **pp = &self->sent[b];
        while (*pp) {
            if (now - (*pp)->sent_at > self->opts.resend_after_ms) {
                sent_t *s = *pp;
                *pp = s->next;
                self->stats.inflight--;
                sent_free(s);
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    if (!tp_store_connected(self->store)) return;
    char before[24], nows[24];
    snprintf(before, sizeof before, "%lld",
             (long long)(now - self->opts.resend_after_ms));
    snprintf(nows, sizeof nows, "%lld", (long long)now);
    for (int o = 0; o < OUTBOXES; o++) { /* one script per slot */
        const char *argv[4] = {self->outbox[o], before, nows, SWEEP_BATCH};
        size_t lens[4] = {strlen(argv[0]), strlen(before), strlen(nows),
                          strlen(SWEEP_BATCH)};
        tp_store_eval(self->store, self->sweep_script, sweep_cb, &self->sweep_args[o],
                      1, 4, argv, lens);
    }
}

tp_emitter_t *tp_emitter_new(uv_loop_t *loop, tp_bus_t *bus, tp_store_t *store,
                             const tp_emitter_options_t *opts) {
    tp_emitter_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->opts = *opts;
    self->opts.endpoint = NULL; /* not kept */
    if (self->opts.resend_after_ms <= 0) self->opts.resend_after_ms = 2000;
    if (self->opts.sweep_interval_ms <= 0) self->opts.sweep_interval_ms = 1000;
    const char *svc = tp_proto_service_name(opts->service);
    for (int o = 0; o < OUTBOXES; o++) {
        self->sweep_args[o].emitter = self;
        self->sweep_args[o].outbox = o;
        if (o == LEGACY)
            tp_key(self->outbox[o], sizeof self->outbox[o], tp_store_ns(store),
                   "outbox:%s", svc);
        else
            tp_key_shard_key(self->outbox[o], sizeof self->outbox[o],
                             tp_store_ns(store), o, "outbox:%s", svc);
    }
    self->sweep_script = tp_store_script(store, "emit_sweep", SWEEP_LUA);
    self->dealer = tp_bus_socket_new(bus, ZMQ_DEALER, opts->endpoint, 0, opts->hwm,
                                     answer_cb, self);
    if (!self->dealer || self->sweep_script < 0) {
        tp_bus_socket_destroy(&self->dealer);
        free(self);
        return NULL;
    }
    uv_timer_init(loop, &self->sweep_timer);
    self->sweep_timer.data = self;
    uv_check_init(loop, &self->flush_check);
    self->flush_check.data = self;
    uv_timer_start(&self->sweep_timer, sweep_timer_cb,
                   (uint64_t)self->opts.sweep_interval_ms,
                   (uint64_t)self->opts.sweep_interval_ms);
    return self;
}

static void emitter_close_cb(uv_handle_t *h) {
    tp_emitter_t *self = h->data;
    if (++self->closed < 2) return; /* the timer and the check */
    /* answered, not removed: the store is gone; resent and dropped by
     * intake as repeats after the next start */
    for (int o = 0; o < OUTBOXES; o++)
        while (self->answered[o]) {
            sent_t *s = self->answered[o];
            self->answered[o] = s->next;
            sent_free(s);
        }
    for (int b = 0; b < BUCKETS; b++)
        while (self->sent[b]) {
            sent_t *s = self->sent[b];
            self->sent[b] = s->next;
            sent_free(s);
        }
    free(self);
}

void tp_emitter_destroy(tp_emitter_t **self_p) {
    tp_emitter_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    tp_bus_socket_destroy(&self->dealer);
    uv_close((uv_handle_t *)&self->sweep_timer, emitter_close_cb);
    uv_close((uv_handle_t *)&self->flush_check, emitter_close_cb);
}

int tp_emit_pack(msgpack_sbuffer *out, tp_event_type_t type, const char *id,
                 int64_t ts, tp_service_t src, const char *customer,
                 json_t *data) {
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    ev.v = TP_PROTO_VERSION;
    ev.type = type;
    ev.ts = ts;
    ev.data = data;
    snprintf(ev.id, sizeof ev.id, "%s", id);
    snprintf(ev.src, sizeof ev.src, "%s", tp_proto_service_name(src));
    snprintf(ev.customer, sizeof ev.customer, "%s", customer);
    int rc = 0;
    if (tp_event_validate_data(type, data, &err) < 0) {
        tp_log_error("derived %s %s invalid: %s: %s", tp_proto_type_name(type),
                     id, err.field, err.message);
        rc = -1;
    } else {
        rc = tp_event_pack(&ev, out);
    }
    tp_event_clear(&ev);
    return rc;
}

const char *tp_emitter_outbox(const tp_emitter_t *self) {
    return self->outbox[LEGACY];
}

const char *tp_emitter_outbox_shard(const tp_emitter_t *self, int shard) {
    return shard >= 0 && shard < TP_SHARDS ? self->outbox[shard] : NULL;
}

const char *tp_emitter_outbox_of(const tp_emitter_t *self, const char *id) {
    return self->outbox[tp_key_shard(id)];
}

void tp_emitter_stats(const tp_emitter_t *self, tp_emitter_stats_t *out) {
    *out = self->stats;
}
