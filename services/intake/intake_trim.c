/* intake_trim.c: XTRIM MINID below every consumer's cursor and the
 * retention horizon, and the journal's bound: while it holds more than
 * max_journal entries with a consumer behind, the journal refuses outside
 * events (tp_journal_set_backlogged) instead of growing without bound. */
#include "intake_trim.h"

#include <stdio.h>
#include <stdlib.h>

#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

/* KEYS journal, then one cursor per consuming service. ARGV horizon (ms):
 * trims what is older than the horizon and at or before every cursor (a
 * cursor names the last entry its service applied); a service without a
 * cursor yet holds everything.
 * Returns the number of entries trimmed. */
static const char TRIM_LUA[] =
    "local floor = ARGV[1] .. '-0'\n"
    "local function older(a, b)\n"
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
    "  if #am ~= #bm then return #am < #bm end\n"
    "  if am ~= bm then return am < bm end\n"
    "  return tonumber(as) < tonumber(bs)\n"
    "end\n"
    "for i = 2, #KEYS do\n"
    "  local c = redis.call('GET', KEYS[i])\n"
    "  if not c then return 0 end\n"
    "  local ms, seq = string.match(c, '^(%d+)-(%d+)$')\n"
    "  local next = ms .. '-' .. (tonumber(seq) + 1)  -- c itself is applied\n"
    "  if older(next, floor) then floor = next end\n"
    "end\n"
    "return redis.call('XTRIM', KEYS[1], 'MINID', floor)\n";

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
    int script, backlog_script;
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
    const char *ns = tp_store_ns(self->store);
    tp_argv_addf(a, "%s{j}:journal", ns);
    int nkeys = 1;
    for (int s = 0; s < TP_SERVICE_COUNT; s++) {
        if (s == TP_SERVICE_INTAKE) continue;
        tp_argv_addf(a, "%scursor:%s", ns, tp_proto_service_name((tp_service_t)s));
        nkeys++;
    }
    return nkeys;
}

static void timer_cb(uv_timer_t *t) {
    tp_trim_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    tp_argv_t a;
    tp_argv_init(&a);
    int nkeys = journal_keys(self, &a);
    tp_argv_add_int(&a, tp_now_ms() - self->opts.retention_ms);
    tp_store_eval(self->store, self->script, trimmed_cb, NULL, nkeys, (int)a.n,
                  a.v, a.len);
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
    for (int s = 0; s < TP_SERVICE_COUNT; s++)
        if (s != TP_SERVICE_INTAKE)
            tp_argv_add(&a, tp_proto_service_name((tp_service_t)s), (size_t)-1);
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
    self->script = tp_store_script(store, "journal_trim", TRIM_LUA);
    self->backlog_script = tp_store_script(store, "journal_backlog", BACKLOG_LUA);
    if (self->script < 0 || self->backlog_script < 0) {
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

/* Destroy the store first: a backlog check waiting on Redis ends then. */
void tp_trim_destroy(tp_trim_t **self_p) {
    tp_trim_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    self->closing = 1;
    uv_close((uv_handle_t *)&self->timer, close_cb);
    uv_close((uv_handle_t *)&self->backlog_timer, close_cb);
}
