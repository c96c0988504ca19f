/* apply.c: the shared guarded-apply script, its builder, and the batcher
 * that sends the applies of one loop turn as one script per slot. */
#include "tp/apply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ARGV[1] the number of applies; then per apply its key count, its
 * argument count and its arguments, its keys being the next ones of KEYS.
 * Within one apply (A, K below): K[1] done mark, K[2] versioned record
 * (without a version: the done key again, never read), K[3..] others. A[1] done ttl, A[2] expected version ("" = none),
 * A[3] the done mark's field ("" = the mark is the key K[1] itself; else a
 * field of the hash K[1], which expires as a whole A[1] after its last
 * mark), A[4] the record's field holding its version ("ver" unless set),
 * A[5] command count, then per command: argument count n, name, key index
 * (into K), n arguments. The record's version is bumped by the writes
 * themselves (HSET ver). Each apply answers on its own, in order: {0}
 * seen before, {2} stale, {1} done, or an error: a command, key or count
 * not allowed (checked before that apply writes anything), or one its
 * writes raised (WRONGTYPE...; that apply's writes before it stay, as with
 * any script, and its done mark is not set, so it is retried; the applies
 * after it still run). A hash of marks touched by several applies of one
 * call is given its expiry once (every apply of a consumer has the same
 * ttl). */
static const char APPLY_LUA[] =
    "local allowed = {" TP_APPLY_ALLOWED "}\n"
    "local expired = {}\n"
    "local function apply(ko, nk, a, na)\n" /* KEYS[ko + i], ARGV[a + i] */
    "  local mark, done = ARGV[a + 3], KEYS[ko + 1]\n"
    "  if mark ~= '' then\n"
    "    if redis.call('HEXISTS', done, mark) == 1 then return {0} end\n"
    "  elseif redis.call('EXISTS', done) == 1 then return {0} end\n"
    "  if ARGV[a + 2] ~= '' and\n"
    "     (redis.call('HGET', KEYS[ko + 2], ARGV[a + 4]) or '0') ~= ARGV[a + 2]\n"
    "  then return {2} end\n"
    "  local cmds, i = {}, a + 6\n"
    "  for c = 1, tonumber(ARGV[a + 5]) do\n" /* check all before writing any */
    "    local n, name, k = tonumber(ARGV[i]), ARGV[i + 1], tonumber(ARGV[i + 2])\n"
    "    local key = k and k >= 1 and k <= nk and KEYS[ko + k]\n"
    "    if not n or n < 0 or i + 2 + n > a + na or not allowed[name] or not key or\n"
    "       key == '' then\n"
    "      return redis.error_reply('apply: command or key not allowed: ' .. tostring(name))\n"
    "    end\n"
    "    cmds[c] = {name, key, i + 3, i + 2 + n}\n"
    "    i = i + 3 + n\n"
    "  end\n"
    "  for _, c in ipairs(cmds) do redis.call(c[1], c[2], unpack(ARGV, c[3], c[4])) end\n"
    "  if mark ~= '' then\n"
    "    redis.call('HSET', done, mark, '1')\n"
    "    if not expired[done] then redis.call('EXPIRE', done, ARGV[a + 1]); expired[done] = 1 end\n"
    "  else redis.call('SET', done, '1', 'EX', ARGV[a + 1]) end\n"
    "  return {1}\n"
    "end\n"
    "local out, ko, ai = {}, 0, 2\n"
    "for b = 1, tonumber(ARGV[1]) do\n"
    "  local nk, na = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1])\n"
    "  local ok, res = pcall(apply, ko, nk, ai + 1, na)\n"
    "  if ok then out[b] = res\n"
    "  elseif type(res) == 'table' and res.err then out[b] = res\n"
    "  else out[b] = redis.error_reply('apply: ' .. tostring(res)) end\n"
    "  ko, ai = ko + nk, ai + 2 + na\n"
    "end\n"
    "return out\n";

void tp_apply_init(tp_apply_t *a, const char *done_key, const char *done_ttl,
                   const char *version_key, const char *expected) {
    memset(a, 0, sizeof *a);
    tp_argv_init(&a->keys);
    tp_argv_init(&a->args);
    tp_argv_addf(&a->keys, "%s", done_key);
    /* without a version, KEYS[2] is never read: the done key stands in, so
     * every key of the apply is in the done mark's slot (a cluster refuses
     * a script naming "", slot 0, beside keys of another slot) */
    tp_argv_addf(&a->keys, "%s", version_key ? version_key : done_key);
    tp_argv_addf(&a->args, "%s", done_ttl);
    tp_argv_addf(&a->args, "%s", version_key && expected ? expected : "");
    a->field_at = a->args.n;
    tp_argv_add(&a->args, "", 0); /* the done mark's field: none */
    a->version_field_at = a->args.n;
    tp_argv_add(&a->args, "ver", 3);
    a->count_at = a->args.n;
    tp_argv_add(&a->args, "0", 1); /* set when sent */
}

void tp_apply_expect(tp_apply_t *a, const char *bytes, size_t len) {
    tp_argv_set_copy(&a->args, 1, bytes, len);
}

void tp_apply_done_field(tp_apply_t *a, const char *field) {
    if (field && *field) tp_argv_setf(&a->args, a->field_at, "%s", field);
}

void tp_apply_version_field(tp_apply_t *a, const char *field) {
    if (field && *field) tp_argv_setf(&a->args, a->version_field_at, "%s", field);
}

void tp_apply_clear(tp_apply_t *a) {
    tp_argv_clear(&a->keys);
    tp_argv_clear(&a->args);
}

int tp_apply_key(tp_apply_t *a, const char *fmt, ...) {
    char *key = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&key, fmt, ap) < 0) abort();
    va_end(ap);
    for (size_t i = 1; i < a->keys.n; i++)
        if (strcmp(a->keys.v[i], key) == 0) {
            free(key);
            return (int)i + 1; /* Lua's KEYS are 1-based */
        }
    tp_argv_addf(&a->keys, "%s", key);
    free(key);
    return (int)a->keys.n;
}

/* The open command's argument count goes in its slot. */
static void close_cmd(tp_apply_t *a) {
    if (a->commands) tp_argv_setf(&a->args, a->nargs_at, "%d", a->open_args);
}

void tp_apply_cmd(tp_apply_t *a, const char *name, int key) {
    close_cmd(a);
    a->nargs_at = a->args.n;
    tp_argv_add(&a->args, "0", 1); /* set when the command closes */
    tp_argv_addf(&a->args, "%s", name);
    tp_argv_addf(&a->args, "%d", key);
    a->commands++;
    a->open_args = 0;
}

void tp_apply_arg(tp_apply_t *a, const char *s, size_t len) {
    tp_argv_add_copy(&a->args, s, len);
    a->open_args++;
}

void tp_apply_str(tp_apply_t *a, const char *s) {
    tp_apply_arg(a, s ? s : "", s ? strlen(s) : 0);
}

void tp_apply_int(tp_apply_t *a, int64_t v) {
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    tp_apply_arg(a, buf, (size_t)n);
}

void tp_apply_pair(tp_apply_t *a, const char *field, const char *value) {
    tp_apply_str(a, field);
    tp_apply_str(a, value);
}

void tp_apply_pair_int(tp_apply_t *a, const char *field, int64_t value) {
    tp_apply_str(a, field);
    tp_apply_int(a, value);
}

int tp_apply_script(tp_store_t *store) {
    return tp_store_script(store, "apply", APPLY_LUA);
}

/* ---- sending: one script call for one apply or many ---- */

/* Who waits for which apply of a call. */
typedef struct waiter {
    tp_store_reply_cb cb;
    void *arg;
} waiter_t;

typedef struct call {
    int n;
    waiter_t w[]; /* in the order of the applies */
} call_t;

/* Each waiter gets its apply's own answer; all get the call's reply when
 * it is none, an error, or not one answer per apply. */
static void call_answered(tp_store_t *store, redisReply *r, void *arg) {
    call_t *call = arg;
    int each = r && r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)call->n;
    for (int i = 0; i < call->n; i++)
        call->w[i].cb(store, each ? r->element[i] : r, call->w[i].arg);
    free(call);
}

/* The closed apply's key count, argument count and arguments, the form the
 * script reads. */
static void apply_close(tp_apply_t *a) {
    close_cmd(a);
    tp_argv_setf(&a->args, a->count_at, "%d", a->commands);
}

int tp_apply_send(tp_apply_t *a, tp_store_t *store, tp_store_reply_cb cb,
                  void *arg) {
    apply_close(a);
    char counts[3][24];
    int nc[3] = {snprintf(counts[0], sizeof counts[0], "1"),
                 snprintf(counts[1], sizeof counts[1], "%zu", a->keys.n),
                 snprintf(counts[2], sizeof counts[2], "%zu", a->args.n)};
    tp_argv_t all; /* KEYS then ARGV, borrowed */
    tp_argv_init(&all);
    for (size_t i = 0; i < a->keys.n; i++) tp_argv_add(&all, a->keys.v[i], a->keys.len[i]);
    for (int i = 0; i < 3; i++) tp_argv_add(&all, counts[i], (size_t)nc[i]);
    for (size_t i = 0; i < a->args.n; i++) tp_argv_add(&all, a->args.v[i], a->args.len[i]);
    call_t *call = malloc(sizeof *call + sizeof(waiter_t));
    if (!call) abort();
    call->n = 1;
    call->w[0] = (waiter_t){cb, arg};
    int rc = tp_store_eval(store, tp_apply_script(store), call_answered, call,
                           (int)a->keys.n, (int)all.n, all.v, all.len);
    tp_argv_clear(&all);
    if (rc < 0) free(call);
    return rc;
}

/* ---- the batcher ---- */

/* A byte string kept in an open batch's buffer (offsets: it grows). */
typedef struct span {
    size_t off, len;
} span_t;

typedef struct spans {
    span_t *v;
    size_t n, cap;
} spans_t;

/* The applies of one slot waiting for the end of the loop turn. */
typedef struct open_batch {
    int slot;
    int napplies;
    spans_t keys, args;
    char *bytes;
    size_t used, cap;
    waiter_t *w;
    int wcap;
} open_batch_t;

struct tp_apply_batch {
    uv_prepare_t prepare; /* first: the handle's data is not needed */
    tp_store_t *store;
    int max_applies;
    open_batch_t *open;
    int nopen, capopen;
    int script;
};

static span_t bytes_add(open_batch_t *b, const char *s, size_t len) {
    if (b->used + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->used + len) cap *= 2;
        if (!(b->bytes = realloc(b->bytes, cap))) abort();
        b->cap = cap;
    }
    if (len) memcpy(b->bytes + b->used, s, len);
    span_t sp = {b->used, len};
    b->used += len;
    return sp;
}

static void spans_add(spans_t *s, span_t sp) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        if (!(s->v = realloc(s->v, s->cap * sizeof *s->v))) abort();
    }
    s->v[s->n++] = sp;
}

static void spans_addf(open_batch_t *b, spans_t *s, const char *fmt, size_t v) {
    char buf[24];
    int n = snprintf(buf, sizeof buf, fmt, v);
    spans_add(s, bytes_add(b, buf, (size_t)n));
}

static void batch_reset(open_batch_t *b) {
    free(b->keys.v);
    free(b->args.v);
    free(b->bytes);
    free(b->w);
    memset(b, 0, sizeof *b);
}

/* The waiters of `b`, as a call's (the caller owns it). */
static call_t *call_of(const open_batch_t *b) {
    call_t *call = malloc(sizeof *call + (size_t)b->napplies * sizeof(waiter_t));
    if (!call) abort();
    call->n = b->napplies;
    memcpy(call->w, b->w, (size_t)b->napplies * sizeof(waiter_t));
    return call;
}

/* Sends the open batch `b` (its slot's one call) and empties it. Its
 * waiters get NULL when it cannot be sent. */
static void batch_send(tp_apply_batch_t *self, open_batch_t *b) {
    if (b->napplies == 0) return;
    char count[24];
    int countlen = snprintf(count, sizeof count, "%d", b->napplies);
    size_t argc = b->keys.n + 1 + b->args.n;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *argvlen = malloc(argc * sizeof *argvlen);
    call_t *call = call_of(b);
    if (!argv || !argvlen) abort();
    size_t i = 0;
    for (size_t k = 0; k < b->keys.n; k++, i++) {
        argv[i] = b->bytes + b->keys.v[k].off;
        argvlen[i] = b->keys.v[k].len;
    }
    argv[i] = count;
    argvlen[i++] = (size_t)countlen;
    for (size_t k = 0; k < b->args.n; k++, i++) {
        argv[i] = b->bytes + b->args.v[k].off;
        argvlen[i] = b->args.v[k].len;
    }
    int rc = tp_store_eval(self->store, self->script, call_answered, call,
                           (int)b->keys.n, (int)argc, argv, argvlen);
    free(argv);
    free(argvlen);
    int slot = b->slot;
    batch_reset(b);
    b->slot = slot; /* b may stay open, empty, for more of its slot */
    if (rc < 0) call_answered(self->store, NULL, call);
}

/* Sends every open batch. Waiters answered NULL meanwhile may add applies
 * again: those wait for the next turn. */
static void batch_flush(tp_apply_batch_t *self) {
    int n = self->nopen;
    open_batch_t *open = self->open;
    self->open = NULL;
    self->nopen = self->capopen = 0;
    for (int i = 0; i < n; i++) batch_send(self, &open[i]);
    free(open);
    if (self->nopen == 0) uv_prepare_stop(&self->prepare);
}

static void prepare_cb(uv_prepare_t *handle) {
    batch_flush((tp_apply_batch_t *)handle);
}

tp_apply_batch_t *tp_apply_batch_new(tp_store_t *store, int max_applies) {
    tp_apply_batch_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->max_applies = max_applies > 0 ? max_applies : 64;
    if ((self->script = tp_apply_script(store)) < 0 ||
        uv_prepare_init(tp_store_loop(store), &self->prepare) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

static void batch_closed(uv_handle_t *handle) { free(handle); }

void tp_apply_batch_destroy(tp_apply_batch_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_apply_batch_t *self = *self_p;
    *self_p = NULL;
    /* unsent applies are answered NULL, as a dropped link answers them */
    while (self->nopen > 0) {
        open_batch_t b = self->open[--self->nopen];
        call_t *call = call_of(&b);
        batch_reset(&b);
        call_answered(NULL, NULL, call); /* the store may be gone */
    }
    free(self->open);
    uv_close((uv_handle_t *)&self->prepare, batch_closed);
}

int tp_apply_batch_send(tp_apply_batch_t *self, tp_apply_t *a, tp_store_reply_cb cb,
                        void *arg) {
    apply_close(a);
    /* a script's keys share a slot: on a cluster, and on one Redis in
     * cluster mode that a client not in cluster mode talks to. An apply
     * whose keys do not goes alone: its error is its own. */
    int slot = tp_store_slot(a->keys.v[0], a->keys.len[0]);
    for (size_t i = 1; i < a->keys.n; i++)
        if (tp_store_slot(a->keys.v[i], a->keys.len[i]) != slot) {
            if (tp_apply_send(a, self->store, cb, arg) < 0) cb(self->store, NULL, arg);
            return 0;
        }
    open_batch_t *b = NULL;
    for (int i = 0; i < self->nopen && !b; i++)
        if (self->open[i].slot == slot) b = &self->open[i];
    if (!b) {
        if (self->nopen == self->capopen) {
            self->capopen = self->capopen ? self->capopen * 2 : 16;
            self->open = realloc(self->open, (size_t)self->capopen * sizeof *self->open);
            if (!self->open) abort();
        }
        b = &self->open[self->nopen++];
        memset(b, 0, sizeof *b);
        b->slot = slot;
        if (self->nopen == 1) uv_prepare_start(&self->prepare, prepare_cb);
    }
    for (size_t i = 0; i < a->keys.n; i++)
        spans_add(&b->keys, bytes_add(b, a->keys.v[i], a->keys.len[i]));
    spans_addf(b, &b->args, "%zu", a->keys.n);
    spans_addf(b, &b->args, "%zu", a->args.n);
    for (size_t i = 0; i < a->args.n; i++)
        spans_add(&b->args, bytes_add(b, a->args.v[i], a->args.len[i]));
    if (b->napplies == b->wcap) {
        b->wcap = b->wcap ? b->wcap * 2 : 16;
        if (!(b->w = realloc(b->w, (size_t)b->wcap * sizeof *b->w))) abort();
    }
    b->w[b->napplies++] = (waiter_t){cb, arg};
    if (b->napplies >= self->max_applies) batch_send(self, b); /* stays open, empty */
    return 0;
}
