/* tpctl_deadletter.c: the notifier's deliveries that never went through.
 *
 *   tpctl deadletter list                   id, channel, recipient, attempts, when, error
 *   tpctl deadletter replay ID... | --all
 *
 * replay puts a delivery back in the notifier's queue (deliveries:due)
 * with its attempts reset, atomically and only when it is still dead, so
 * replaying twice sends it once; the notifier sends the same stored
 * payload with the same id (Message-ID, Idempotency-Key). Never prints
 * message bodies or addresses. (Was tools/tp-deadletter.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/id.h"
#include "tpctl.h"
#include "tpctl_table.h"

/* KEYS deadletter, deliveries:due, delivery. ARGV id, now. */
static const char REPLAY_LUA[] =
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return 0 end\n"
    "if redis.call('HGET', KEYS[3], 'status') ~= 'failed' then return 0 end\n"
    "redis.call('HSET', KEYS[3], 'status', 'sending', 'attempts', 0,\n"
    "           'replayed_at', ARGV[2])\n"
    "redis.call('HDEL', KEYS[3], 'settled_at')\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "return 1\n";

static json_t *field(redisReply *r, size_t i) {
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? json_string(r->element[i]->str)
               : json_null();
}

static int list(tpctl_t *t) {
    redisReply *ids = tpctl_reply(
        t, redisCommand(t->redis, "ZRANGE %sdeadletter 0 -1 WITHSCORES", t->ns), "ZRANGE deadletter");
    if (!ids) return TPCTL_FAIL;
    json_t *rows = json_array();
    for (size_t i = 0; i + 1 < ids->elements; i += 2) {
        const char *id = ids->element[i]->str;
        redisReply *d = tpctl_reply(
            t, redisCommand(t->redis, "HMGET %sdelivery:%s channel recipient attempts last_error",
                            t->ns, id), "HMGET delivery");
        if (!d) {
            json_decref(rows);
            freeReplyObject(ids);
            return TPCTL_FAIL;
        }
        json_t *o = json_pack("{s:s, s:o, s:o, s:I, s:I, s:o}", "id", id, "channel", field(d, 0),
                              "recipient", field(d, 1), "attempts",
                              (json_int_t)(d->elements > 2 && d->element[2]->str
                                               ? atoll(d->element[2]->str) : 0),
                              "failed_at", (json_int_t)atoll(ids->element[i + 1]->str),
                              "last_error", field(d, 3));
        json_array_append_new(rows, o);
        freeReplyObject(d);
    }
    freeReplyObject(ids);
    int rc = TPCTL_OK;
    if (t->json) {
        json_t *doc = json_pack("{s:o}", "dead", rows);
        rc = tpctl_print_json(doc);
        json_decref(doc);
        return rc;
    }
    static const tp_column_t cols[] = {
        {"ID", "id", TP_COLUMN_TEXT},           {"CHANNEL", "channel", TP_COLUMN_TEXT},
        {"RECIPIENT", "recipient", TP_COLUMN_TEXT}, {"ATTEMPTS", "attempts", TP_COLUMN_TEXT},
        {"FAILED", "failed_at", TP_COLUMN_TIME}, {"ERROR", "last_error", TP_COLUMN_TEXT},
    };
    size_t n = json_array_size(rows);
    if (n) tp_table_print(stdout, rows, cols, sizeof cols / sizeof *cols, tp_now_ms());
    printf("%zu dead deliver%s\n", n, n == 1 ? "y" : "ies");
    json_decref(rows);
    return rc;
}

/* 1 replayed, 0 not dead, -1 failed (printed). */
static int replay_one(tpctl_t *t, const char *id) {
    char k1[256], k2[256], k3[600], now[32];
    snprintf(k1, sizeof k1, "%sdeadletter", t->ns);
    snprintf(k2, sizeof k2, "%sdeliveries:due", t->ns);
    snprintf(k3, sizeof k3, "%sdelivery:%s", t->ns, id);
    snprintf(now, sizeof now, "%lld", (long long)tp_now_ms());
    redisReply *r = tpctl_reply(t, redisCommand(t->redis, "EVAL %s 3 %s %s %s %s %s", REPLAY_LUA,
                                                k1, k2, k3, id, now), "replay");
    if (!r) return -1;
    int done = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return done;
}

static int replay(tpctl_t *t, int argc, char **argv) {
    json_t *ids = json_array(), *replayed = json_array(), *not_dead = json_array();
    int all = argc == 1 && strcmp(argv[0], "--all") == 0;
    if (all) {
        redisReply *r = tpctl_reply(t, redisCommand(t->redis, "ZRANGE %sdeadletter 0 -1", t->ns),
                                    "ZRANGE deadletter");
        if (!r) return TPCTL_FAIL;
        for (size_t i = 0; i < r->elements; i++)
            json_array_append_new(ids, json_string(r->element[i]->str));
        freeReplyObject(r);
    } else {
        for (int i = 0; i < argc; i++) {
            if (strcmp(argv[i], "--all") == 0 || argv[i][0] == '\0')
                return json_decref(ids), json_decref(replayed), json_decref(not_dead),
                       tpctl_fail(t, TPCTL_USAGE, "replay takes delivery ids or --all alone");
            json_array_append_new(ids, json_string(argv[i]));
        }
    }
    int rc = TPCTL_OK;
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        int done = replay_one(t, json_string_value(id));
        if (done < 0) {
            rc = TPCTL_FAIL;
            break;
        }
        json_array_append(done ? replayed : not_dead, id);
        if (!done) rc = TPCTL_FAIL;
    }
    if (t->json) {
        json_t *doc = json_pack("{s:O, s:O}", "replayed", replayed, "not_dead", not_dead);
        if (tpctl_print_json(doc) != TPCTL_OK) rc = TPCTL_FAIL;
        json_decref(doc);
    } else {
        json_array_foreach(replayed, i, id) printf("replayed %s\n", json_string_value(id));
        json_array_foreach(not_dead, i, id)
            fprintf(stderr, "tpctl: deadletter replay: %s is not in the dead-letter set\n",
                    json_string_value(id));
        if (all && json_array_size(ids) == 0) printf("no dead deliveries\n");
    }
    json_decref(ids);
    json_decref(replayed);
    json_decref(not_dead);
    return rc;
}

int tpctl_deadletter(tpctl_t *t, int argc, char **argv) {
    if (argc == 1 && strcmp(argv[0], "list") == 0) {
        t->command = "deadletter list";
        return tpctl_redis(t) ? list(t) : TPCTL_FAIL;
    }
    if (argc >= 2 && strcmp(argv[0], "replay") == 0) {
        t->command = "deadletter replay";
        if (argc > 2)
            for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--all") == 0)
                    return tpctl_fail(t, TPCTL_USAGE, "replay takes delivery ids or --all alone");
        return tpctl_redis(t) ? replay(t, argc - 1, argv + 1) : TPCTL_FAIL;
    }
    if (argc >= 1 && strcmp(argv[0], "replay") == 0)
        return tpctl_fail(t, TPCTL_USAGE, "replay needs delivery ids or --all");
    return tpctl_fail(t, TPCTL_USAGE, "expected: deadletter list | replay ID... | replay --all");
}
