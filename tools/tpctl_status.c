/* tpctl_status.c: `tpctl status` (every service instance from its
 * heartbeat: host, pid, age, applied, its service's lag; stale ones marked,
 * and pruned with --prune) and `tpctl lag` (per consuming service: journal
 * entries after its cursor and the age of the oldest).
 *
 * Reads heartbeat:<svc>, cursor:<svc> and the journal; writes nothing but
 * the HDEL of a pruned heartbeat, and that only if it is still as old as
 * when it was read (a script re-checks seen_at). */
#include <stdlib.h>
#include <string.h>

#include "tp/argv.h"
#include "tp/config.h"
#include "tp/heartbeat.h"
#include "tp/horizon.h"
#include "tp/id.h"
#include "tp/proto.h"
#include "tpctl.h"
#include "tpctl_table.h"

/* KEYS heartbeat:<svc>; ARGV instance, the seen_at bound. Removes the
 * field only when its seen_at is still older than the bound. */
static const char PRUNE_LUA[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not v then return 0 end\n"
    "local ok, b = pcall(cjson.decode, v)\n"
    "if ok and type(b) == 'table' and tonumber(b.seen_at) and\n"
    "   tonumber(b.seen_at) >= tonumber(ARGV[2]) then return 0 end\n"
    "return redis.call('HDEL', KEYS[1], ARGV[1])\n";

int tpctl_lag_of(tpctl_t *t, const char *journal_key, const char *cursor_key, int64_t max,
                 int64_t *entries, int *capped, int64_t *oldest_ms, char *cursor,
                 size_t cursor_len) {
    redisContext *c = t->redis;
    *entries = 0, *capped = 0, *oldest_ms = 0;
    redisReply *r = tpctl_reply(t, redisCommand(c, "GET %s", cursor_key), "GET cursor");
    if (!r) return -1;
    char from[64] = "-";
    cursor[0] = '\0';
    if (r->type == REDIS_REPLY_STRING) {
        snprintf(cursor, cursor_len, "%s", r->str);
        snprintf(from, sizeof from, "(%s", r->str);
    }
    freeReplyObject(r);
    /* counted a page at a time, up to `max`: the journal may be long */
    for (;;) {
        r = tpctl_reply(t, redisCommand(c, "XRANGE %s %s + COUNT 1000", journal_key, from),
                        "XRANGE journal");
        if (!r) return -1;
        size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        if (n > 0 && *oldest_ms == 0 && r->element[0]->elements > 0)
            *oldest_ms = strtoll(r->element[0]->element[0]->str, NULL, 10);
        *entries += (int64_t)n;
        if (n > 0) snprintf(from, sizeof from, "(%s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
        if (n < 1000) return 0;
        if (*entries >= max) {
            *capped = 1;
            return 0;
        }
    }
}

static int64_t lag_max(tpctl_t *t) {
    return tp_config_int(t->cfg, "tpctl", "lag_count_max", 100000, 1000, 100000000);
}

/* {service, cursor, entries, capped, oldest_at, oldest_age_ms} of every
 * consuming service. NULL after printing why. */
static json_t *lag_rows(tpctl_t *t, int64_t now, int64_t max) {
    json_t *rows = json_array();
    tp_argv_t keys; /* the journal, then each service's cursor: intake's names */
    tp_argv_init(&keys);
    tp_horizon_keys(&keys, t->ns);
    for (int i = 0; i < tp_horizon_count(); i++) {
        const char *svc = tp_horizon_service(i);
        int64_t entries, oldest;
        int capped;
        char cursor[64];
        if (tpctl_lag_of(t, keys.v[0], keys.v[1 + i], max, &entries, &capped, &oldest, cursor,
                         sizeof cursor) < 0) {
            tp_argv_clear(&keys);
            json_decref(rows);
            return NULL;
        }
        json_t *o = json_pack("{s:s, s:s?, s:I, s:b}", "service", svc, "cursor",
                              cursor[0] ? cursor : NULL, "entries", (json_int_t)entries,
                              "capped", capped);
        json_object_set_new(o, "oldest_at", oldest ? json_integer(oldest) : json_null());
        json_object_set_new(o, "oldest_age_ms",
                            json_integer(oldest ? (json_int_t)(now - oldest) : 0));
        json_array_append_new(rows, o);
    }
    tp_argv_clear(&keys);
    return rows;
}

int tpctl_lag(tpctl_t *t, int argc, char **argv) {
    if (argc > 0) return tpctl_fail(t, TPCTL_USAGE, "unexpected argument '%s'", argv[0]);
    int64_t max = lag_max(t); /* read before tpctl_redis checks the configuration */
    if (!tpctl_redis(t)) return TPCTL_FAIL;
    int64_t now = tp_now_ms();
    json_t *rows = lag_rows(t, now, max);
    if (!rows) return TPCTL_FAIL;
    int rc = TPCTL_OK;
    if (t->json) {
        json_t *doc = json_pack("{s:I, s:o}", "now", (json_int_t)now, "services", rows);
        rc = tpctl_print_json(doc);
        json_decref(doc);
        return rc;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) { /* "100000+" when counting stopped */
        char n[32];
        snprintf(n, sizeof n, "%" JSON_INTEGER_FORMAT "%s",
                 json_integer_value(json_object_get(row, "entries")),
                 json_is_true(json_object_get(row, "capped")) ? "+" : "");
        json_object_set_new(row, "entries_text", json_string(n));
        if (json_integer_value(json_object_get(row, "entries")) == 0)
            json_object_set_new(row, "oldest_age_ms", json_null());
    }
    static const tp_column_t cols[] = {
        {"SERVICE", "service", TP_COLUMN_TEXT},
        {"BEHIND", "entries_text", TP_COLUMN_TEXT},
        {"OLDEST", "oldest_age_ms", TP_COLUMN_MS},
        {"CURSOR", "cursor", TP_COLUMN_TEXT},
    };
    tp_table_print(stdout, rows, cols, sizeof cols / sizeof *cols, now);
    json_decref(rows);
    return rc;
}

int tpctl_status(tpctl_t *t, int argc, char **argv) {
    int prune = 0;
    const char *older = NULL;
    for (int i = 0; i < argc; i++) {
        int o = tpctl_opt(t, argc, argv, &i, "--older-than", &older);
        if (o < 0) return TPCTL_USAGE;
        if (o) continue;
        if (strcmp(argv[i], "--prune") == 0) prune = 1;
        else return tpctl_fail(t, TPCTL_USAGE, "unexpected argument '%s'", argv[i]);
    }
    int64_t prune_ms = tp_config_ms(t->cfg, "tpctl", "prune_after", "10m");
    if (older && (tp_config_parse_ms(older, &prune_ms) < 0 || prune_ms < 0))
        return tpctl_fail(t, TPCTL_USAGE, "--older-than: '%s' is not a duration (30s, 10m, 1h)",
                          older);
    if (older && !prune)
        return tpctl_fail(t, TPCTL_USAGE, "--older-than goes with --prune");
    int64_t max = lag_max(t);
    if (!tpctl_redis(t)) return TPCTL_FAIL;
    int64_t now = tp_now_ms();
    json_t *lags = lag_rows(t, now, max);
    if (!lags) return TPCTL_FAIL;
    json_t *rows = json_array(), *pruned = json_array();
    int rc = TPCTL_OK;
    for (int s = 0; s < TP_SERVICE_COUNT && rc == TPCTL_OK; s++) {
        const char *svc = tp_proto_service_name((tp_service_t)s);
        redisReply *r = tpctl_reply(t, redisCommand(t->redis, "HGETALL %sheartbeat:%s", t->ns, svc),
                                    "HGETALL heartbeat");
        if (!r) {
            rc = TPCTL_FAIL;
            break;
        }
        json_t *lag = NULL;
        size_t li;
        json_t *l;
        json_array_foreach(lags, li, l) if (strcmp(json_string_value(json_object_get(l, "service")),
                                                   svc) == 0) lag = l;
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
            const char *instance = r->element[i]->str;
            tp_heartbeat_beat_t b;
            void *doc;
            json_t *row;
            if (tp_heartbeat_parse(r->element[i + 1]->str, r->element[i + 1]->len, &b, &doc) < 0) {
                row = json_pack("{s:s, s:s, s:s}", "service", svc, "instance", instance, "state",
                                "unreadable");
            } else {
                int64_t age = now - b.seen_at;
                row = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:s}",
                                "service", svc, "instance", instance, "host", b.host, "pid",
                                (json_int_t)b.pid, "version", b.version, "started_at",
                                (json_int_t)b.started_at, "seen_at", (json_int_t)b.seen_at,
                                "age_ms", (json_int_t)age, "interval_ms",
                                (json_int_t)b.interval_ms, "applied", (json_int_t)b.applied,
                                "metrics", b.metrics);
                json_object_set_new(row, "state",
                                    json_string(age > 3 * b.interval_ms ? "stale" : "up"));
                json_decref((json_t *)doc);
            }
            json_object_set(row, "lag", lag ? json_object_get(lag, "entries") : json_null());
            const char *state = json_string_value(json_object_get(row, "state"));
            json_int_t age = json_integer_value(json_object_get(row, "age_ms"));
            if (prune && strcmp(state, "up") != 0 && (strcmp(state, "unreadable") == 0 || age > prune_ms)) {
                char bound[32];
                snprintf(bound, sizeof bound, "%lld", (long long)(now - prune_ms));
                redisReply *d = tpctl_reply(
                    t, redisCommand(t->redis, "EVAL %s 1 %sheartbeat:%s %s %s", PRUNE_LUA, t->ns,
                                    svc, instance, bound),
                    "prune");
                if (!d) {
                    json_decref(row);
                    rc = TPCTL_FAIL;
                    break;
                }
                if (d->type == REDIS_REPLY_INTEGER && d->integer == 1) {
                    json_array_append_new(pruned, row);
                    freeReplyObject(d);
                    continue;
                }
                freeReplyObject(d);
            }
            json_array_append_new(rows, row);
        }
        freeReplyObject(r);
    }
    json_decref(lags);
    if (rc != TPCTL_OK) {
        json_decref(rows);
        json_decref(pruned);
        return rc;
    }
    if (t->json) {
        json_t *doc = json_pack("{s:I, s:o}", "now", (json_int_t)now, "instances", rows);
        if (prune) json_object_set(doc, "pruned", pruned);
        rc = tpctl_print_json(doc);
        json_decref(doc);
        json_decref(pruned);
        return rc;
    }
    static const tp_column_t cols[] = {
        {"SERVICE", "service", TP_COLUMN_TEXT},   {"INSTANCE", "instance", TP_COLUMN_TEXT},
        {"STATE", "state", TP_COLUMN_TEXT},       {"HOST", "host", TP_COLUMN_TEXT},
        {"PID", "pid", TP_COLUMN_TEXT},           {"AGE", "seen_at", TP_COLUMN_AGE},
        {"APPLIED", "applied", TP_COLUMN_TEXT},   {"LAG", "lag", TP_COLUMN_TEXT},
        {"METRICS", "metrics", TP_COLUMN_TEXT},
    };
    if (json_array_size(rows) == 0) printf("no instance has a heartbeat\n");
    else tp_table_print(stdout, rows, cols, sizeof cols / sizeof *cols, now);
    size_t i;
    json_t *p;
    json_array_foreach(pruned, i, p)
        printf("pruned %s %s\n", json_string_value(json_object_get(p, "service")),
               json_string_value(json_object_get(p, "instance")));
    json_decref(rows);
    json_decref(pruned);
    return TPCTL_OK;
}
