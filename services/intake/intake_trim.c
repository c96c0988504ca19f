/* intake_trim.c: XTRIM MINID below every consumer's cursor and the
 * retention horizon, and the journal's bound: while it holds more than
 * max_journal entries with a consumer behind, the journal refuses outside
 * events (tp_journal_set_backlogged) instead of growing without bound.
 * The floor's rule is common/src/horizon.c, shared with `tpctl journal
 * trim`. */
#include "intake_trim.h"

#include <stdio.h>
#include <stdlib.h>

#include "tp/argv.h"
#include "tp/horizon.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

/* KEYS journal, then one cursor per consuming service; ARGV the bound,
 * then the services' names. Returns {entries, the first service behind
 * the journal's end or ""}; below the bound, "" without looking. */
static const char BACKLOG_LUA[] =
    "local len = redis.call('XLEN', KEYS[1])\n"
    "if len <= tonumber(ARGV[1]) then return {len, ''} end\n"
    "local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1][1]\n"
    "for i = 2, #KEYS do\n"
    "  if redis.call('GET', KEYS[i]) ~= last then return {len, ARGV[i]} end\n"
    "end\n"
    "return {len, ''}\n";

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

/* The journal and every consuming service's cursor, as KEYS. */
static int journal_keys(tp_trim_t *self, tp_argv_t *a) {
    return tp_horizon_keys(a, tp_store_ns(self->store));
}

/* The cursors are in: trim what is older than the retention horizon and
 * at or before every cursor (a cursor names the last entry its service
 * applied; a service without a cursor yet holds everything). Cursors only
 * move forward, so trimming below a reading that is a moment old is safe;
 * reading them apart from the XTRIM keeps intake's ACL user off the
 * services' keys (it may read them, not write them). */
static void cursors_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_trim_t *self = arg;
    if (self->closing || !r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("journal trim: %s", r->str);
        return;
    }
    const char *cursors[TP_SERVICE_COUNT] = {0};
    size_t n = r->elements < TP_SERVICE_COUNT ? r->elements : TP_SERVICE_COUNT;
    for (size_t i = 0; i < n; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING) cursors[i] = r->element[i]->str;
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
    tp_argv_t a;
    tp_argv_init(&a);
    journal_keys(self, &a);
    a.v[0] = "MGET", a.len[0] = 4; /* the cursors only */
    tp_store_command_argv(self->store, cursors_cb, self, (int)a.n, a.v, a.len);
    tp_argv_clear(&a);
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
    const char *behind = r->element[1]->str;
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
    tp_argv_t a;
    tp_argv_init(&a);
    int nkeys = journal_keys(self, &a);
    tp_argv_add_int(&a, self->opts.max_journal);
    for (int i = 0; i < tp_horizon_count(); i++)
        tp_argv_add(&a, tp_horizon_service(i), (size_t)-1);
    tp_store_eval(self->store, self->backlog_script, backlog_cb, self, nkeys, (int)a.n,
                  a.v, a.len);
    tp_argv_clear(&a);
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
