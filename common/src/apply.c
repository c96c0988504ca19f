/* apply.c: the shared guarded-apply script and its builder. */
#include "tp/apply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] done mark, KEYS[2] versioned record (or ""), KEYS[3..] others.
 * ARGV[1] done ttl, ARGV[2] expected version ("" = none), ARGV[3] the done
 * mark's field ("" = the mark is the key KEYS[1] itself; else a field of
 * the hash KEYS[1], which expires as a whole ARGV[1] after its last mark),
 * ARGV[4] the record's field holding its version ("ver" unless set),
 * ARGV[5] command count, then per command: argument count n, name, key
 * index, n arguments. The record's version is bumped by the writes
 * themselves (HSET ver). */
static const char APPLY_LUA[] =
    "if ARGV[3] ~= '' then\n"
    "  if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then return {0} end\n"
    "elseif redis.call('EXISTS', KEYS[1]) == 1 then return {0} end\n"
    "if ARGV[2] ~= '' and (redis.call('HGET', KEYS[2], ARGV[4]) or '0') ~= ARGV[2]\n"
    "then return {2} end\n"
    "local allowed = {" TP_APPLY_ALLOWED "}\n"
    "local cmds, i = {}, 6\n"
    "for c = 1, tonumber(ARGV[5]) do\n" /* check all before writing any */
    "  local n, name, key = tonumber(ARGV[i]), ARGV[i + 1], KEYS[tonumber(ARGV[i + 2])]\n"
    "  if not n or not allowed[name] or not key or key == '' then\n"
    "    return redis.error_reply('apply: command or key not allowed: ' .. tostring(name))\n"
    "  end\n"
    "  cmds[c] = {name, key, i + 3, i + 2 + n}\n"
    "  i = i + 3 + n\n"
    "end\n"
    "for _, c in ipairs(cmds) do redis.call(c[1], c[2], unpack(ARGV, c[3], c[4])) end\n"
    "if ARGV[3] ~= '' then\n"
    "  redis.call('HSET', KEYS[1], ARGV[3], '1')\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "else redis.call('SET', KEYS[1], '1', 'EX', ARGV[1]) end\n"
    "return {1}\n";

void tp_apply_init(tp_apply_t *a, const char *done_key, const char *done_ttl,
                   const char *version_key, const char *expected) {
    memset(a, 0, sizeof *a);
    tp_argv_init(&a->keys);
    tp_argv_init(&a->args);
    tp_argv_addf(&a->keys, "%s", done_key);
    tp_argv_addf(&a->keys, "%s", version_key ? version_key : "");
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

int tp_apply_send(tp_apply_t *a, tp_store_t *store, tp_store_reply_cb cb,
                  void *arg) {
    close_cmd(a);
    tp_argv_setf(&a->args, a->count_at, "%d", a->commands);
    tp_argv_t all; /* KEYS then ARGV, borrowed from the two lists */
    tp_argv_init(&all);
    for (size_t i = 0; i < a->keys.n; i++) tp_argv_add(&all, a->keys.v[i], a->keys.len[i]);
    for (size_t i = 0; i < a->args.n; i++) tp_argv_add(&all, a->args.v[i], a->args.len[i]);
    int rc = tp_store_eval(store, tp_apply_script(store), cb, arg, (int)a->keys.n,
                           (int)all.n, all.v, all.len);
    tp_argv_clear(&all);
    return rc;
}
