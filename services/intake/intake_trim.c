/* intake_trim.c: XTRIM MINID below every consumer's cursor and the
 * retention horizon, and the journal's bound: while it holds more than
 * max_journal entries with a consumer behind, the journal refuses outside
 * events (tp_journal_set_backlogged) instead of growing without bound.
 * The cursors are read one GET each (each its own slot); the floor's rule
 * is common/src/horizon.c, shared with `tpctl journal trim`. */
#include "intake_trim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/horizon.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

/* KEYS journal; ARGV the bound. Returns {entries, the journal's last id,
 * or "" below the bound}. The cursors, each its own slot, are read apart
 * (one GET each) and compared with it. */
static const char BACKLOG_LUA[] =
    "local len = redis.call('XLEN', KEYS[1])\n"
    "if len <= tonumber(ARGV[1]) then return {len, ''} end\n"
    "local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]\n"
    "return {len, last and last[1] or ''}\n";

struct tp_trim {
    tp_store_t *store;
    tp_journal_t *journal;
    tp_trim_options_t opts;
    int backlog_script;
    uv_timer_t timer, backlog_timer;
    int backlogged;
    int closing;
};

static void trimmed_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store, (void)arg;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        tp_log_info("journal: trimmed %lld entries", r->integer);
    else if (r && r->type == REDIS_REPLY_ERROR)
        tp_log_error("journal trim: %s", r->str);
}

/* The consuming services' cursors, read one GET each (each key is its own
 * slot), then handed to `done` (NULL for a service without a cursor). */
typedef struct cursor_read cursor_read_t;
typedef void (*cursors_done_cb)(tp_trim_t *self, cursor_read_t *rd);

struct cursor_read {
    tp_trim_t *trim;
    cursors_done_cb done;
    int waiting, failed;
    char *cursor[TP_SERVICE_COUNT]; /* [intake] unused */
    long long len;                  /* the backlog check's journal length */
    char last[48];                  /* and its last id */
};

typedef struct cursor_ask {
    cursor_read_t *read;
    int service;
} cursor_ask_t;

static void cursors_settle(cursor_read_t *rd) {
    if (--rd->waiting) return;
    if (!rd->failed && !rd->trim->closing) rd->done(rd->trim, rd);
    for (int s = 0; s < TP_SERVICE_COUNT; s++) free(rd->cursor[s]);
    free(rd);
}

static void cursor_cb(tp_store_t *store, redisReply *r, void *arg) {
    cursor_ask_t *ask = arg;
    cursor_read_t *rd = ask->read;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) tp_log_error("journal trim: GET cursor: %s", r->str);
        rd->failed = 1;
    } else if (r->type == REDIS_REPLY_STRING) {
        rd->cursor[ask->service] = strndup(r->str, r->len);
        if (!rd->cursor[ask->service]) abort();
    }
    free(ask);
    cursors_settle(rd);
}

static void cursors_read(tp_trim_t *self, cursor_read_t *rd) {
    const char *ns = tp_store_ns(self->store);
    rd->trim = self;
    rd->waiting = 1; /* held while sending */
    for (int s = 0; s < TP_SERVICE_COUNT && !rd->failed; s++) {
        if (s == TP_SERVICE_INTAKE) continue;
        char key[128];
        tp_key(key, sizeof key, ns, "cursor:%s", tp_proto_service_name((tp_service_t)s));
        cursor_ask_t *ask = malloc(sizeof *ask);
        if (!ask) abort();
        ask->read = rd;
        ask->service = s;
        rd->waiting++;
        if (tp_store_command(self->store, cursor_cb, ask, "GET %s", key) < 0) {
            free(ask);
            rd->waiting--;
            rd->failed = 1;
        }
    }
    cursors_settle(rd);
}

/* The cursors are in: trim what is older than the retention horizon and
 * at or before every cursor (a cursor names the last entry its service
 * applied; a service without a cursor yet holds everything). Cursors only
 * move forward, so trimming below a reading that is a moment old is safe;
 * reading them apart from the XTRIM keeps intake's ACL user off the
 * services' keys (it may read them, not write them). */
static void cursors_trim(tp_trim_t *self, cursor_read_t *rd) {
    tp_store_t *store = self->store;
    const char *cursors[TP_SERVICE_COUNT];
    size_t n = 0;
    for (int s = 0; s < TP_SERVICE_COUNT; s++)
        if (s != TP_SERVICE_INTAKE) cursors[n++] = rd->cursor[s];
    char floor[48];
    if (tp_horizon_floor(cursors, n, tp_now_ms(), self->opts.retention_ms, floor,
                         sizeof floor) < 0)
        return; /* no cursor yet: that service holds everything */
    char key[128];
    tp_key(key, sizeof key, tp_store_ns(store), "{j}:journal");
    tp_store_command(store, trimmed_cb, NULL, "XTRIM %s MINID %s", key, floor);
}

static void timer_cb(uv_timer_t *t) {
    tp_trim_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    cursor_read_t *rd = calloc(1, sizeof *rd);
    if (!rd) abort();
    rd->done = cursors_trim;
    cursors_read(self, rd);
}

static void backlog_set(tp_trim_t *self, long long len, const char *behind);

/* The journal is over its bound and the cursors are in: a service whose
 * cursor is not at the journal's end is behind. */
static void backlog_verdict(tp_trim_t *self, cursor_read_t *rd) {
    const char *behind = "";
    for (int s = 0; s < TP_SERVICE_COUNT && !behind[0]; s++)
        if (s != TP_SERVICE_INTAKE && (!rd->cursor[s] || strcmp(rd->cursor[s], rd->last)))
            behind = tp_proto_service_name((tp_service_t)s);
    backlog_set(self, rd->len, behind);
}

static void backlog_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_trim_t *self = arg;
    if (self->closing) return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("journal backlog: %s", r->str);
        return; /* keep the last verdict until Redis answers again */
    }
    long long len = r->element[0]->integer;
    if (r->element[1]->len == 0) { /* below the bound */
        backlog_set(self, len, "");
        return;
    }
    cursor_read_t *rd = calloc(1, sizeof *rd);
    if (!rd) abort();
    rd->done = backlog_verdict;
    rd->len = len;
    snprintf(rd->last, sizeof rd->last, "%s", r->element[1]->str);
    cursors_read(self, rd);
}

static void backlog_set(tp_trim_t *self, long long len, const char *behind) {
    int backlogged = behind[0] != '\0';
    if (backlogged && !self->backlogged)
        tp_log_warn("journal: %lld entries, over max_journal %lld, and %s is behind: "
                    "refusing new events (429) until it catches up", len,
                    (long long)self->opts.max_journal, behind);
    else if (!backlogged && self->backlogged)
        tp_log_info("journal: %lld entries, taking new events again", len);
    self->backlogged = backlogged;
    tp_journal_set_backlogged(self->journal, backlogged);
}

static void backlog_timer_cb(uv_timer_t *t) {
    tp_trim_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    char key[128], bound[24];
    tp_key(key, sizeof key, tp_store_ns(self->store), "{j}:journal");
    snprintf(bound, sizeof bound, "%lld", (long long)self->opts.max_journal);
    const char *argv[2] = {key, bound};
    size_t lens[2] = {strlen(key), strlen(bound)};
    tp_store_eval(self->store, self->backlog_script, backlog_cb, self, 1, 2, argv, lens);
}

tp_trim_t *tp_trim_new(uv_loop_t *loop, tp_store_t *store, tp_journal_t *journal,
                       const tp_trim_options_t *opts) {
    tp_trim_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->journal = journal;
    self->opts = *opts;
    self->backlog_script = tp_store_script_ro(store, "journal_backlog", BACKLOG_LUA);
    if (self->backlog_script < 0) {
        free(self);
        return NULL;
    }
    uv_timer_init(loop, &self->timer);
    uv_timer_init(loop, &self->backlog_timer);
    self->timer.data = self->backlog_timer.data = self;
    uv_timer_start(&self->timer, timer_cb, (uint64_t)opts->interval_ms,
                   (uint64_t)opts->interval_ms);
    if (opts->max_journal > 0)
        uv_timer_start(&self->backlog_timer, backlog_timer_cb,
                       (uint64_t)opts->backlog_check_ms, (uint64_t)opts->backlog_check_ms);
    return self;
}

static void close_cb(uv_handle_t *h) {
    tp_trim_t *self = h->data;
    if (++self->closing == 3) free(self); /* both timers closed */
}

/* Destroy the store first: a trim or backlog check waiting on Redis ends
 * then. */
void tp_trim_destroy(tp_trim_t **self_p) {
    tp_trim_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    self->closing = 1;
    uv_close((uv_handle_t *)&self->timer, close_cb);
    uv_close((uv_handle_t *)&self->backlog_timer, close_cb);
}
