/* intake_trim.c: XTRIM MINID below every consumer's cursor and the
 * retention horizon. */
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

struct tp_trim {
    tp_store_t *store;
    int64_t retention_ms;
    int script;
    uv_timer_t timer;
};

static void trimmed_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store, (void)arg;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        tp_log_info("journal: trimmed %lld entries", r->integer);
    else if (r && r->type == REDIS_REPLY_ERROR)
        tp_log_error("journal trim: %s", r->str);
}

static void timer_cb(uv_timer_t *t) {
    tp_trim_t *self = t->data;
    if (!tp_store_connected(self->store)) return;
    const char *ns = tp_store_ns(self->store);
    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_addf(&a, "%s{j}:journal", ns);
    int nkeys = 1;
    for (int s = 0; s < TP_SERVICE_COUNT; s++) {
        if (s == TP_SERVICE_INTAKE) continue;
        tp_argv_addf(&a, "%scursor:%s", ns, tp_proto_service_name((tp_service_t)s));
        nkeys++;
    }
    tp_argv_add_int(&a, tp_now_ms() - self->retention_ms);
    tp_store_eval(self->store, self->script, trimmed_cb, NULL, nkeys, (int)a.n,
                  a.v, a.len);
    tp_argv_clear(&a);
}

tp_trim_t *tp_trim_new(uv_loop_t *loop, tp_store_t *store, int64_t retention_ms,
                       int64_t interval_ms) {
    tp_trim_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->retention_ms = retention_ms;
    self->script = tp_store_script(store, "journal_trim", TRIM_LUA);
    if (self->script < 0) {
        free(self);
        return NULL;
    }
    uv_timer_init(loop, &self->timer);
    self->timer.data = self;
    uv_timer_start(&self->timer, timer_cb, (uint64_t)interval_ms,
                   (uint64_t)interval_ms);
    return self;
}

static void close_cb(uv_handle_t *h) { free(h->data); }

void tp_trim_destroy(tp_trim_t **self_p) {
    tp_trim_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    uv_close((uv_handle_t *)&self->timer, close_cb);
}
