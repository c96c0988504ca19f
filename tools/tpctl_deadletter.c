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

/* ---- the dead-letter set over a blocking connection ----
 * A list with a callback per entry and a replay of one id, in the shape a
 * shared module (common/) can take over when the key layout changes: the
 * commands below only print what these hand them. */

typedef struct dead_entry {
    const char *id;         /* "<event>/<channel>/<recipient>" */
    const char *channel;    /* "" when the record is gone */
    const char *recipient;
    const char *attempts;
    const char *last_error;
    int64_t failed_at;      /* ms since the epoch */
} dead_entry_t;

typedef void (*dead_entry_cb)(const dead_entry_t *entry, void *arg);

static const char *field(const redisReply *r, size_t i) {
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : "";
}

/* Every dead delivery, oldest failure first. Returns how many, or -1 with
 * the Redis error in `err`. */
static long dead_list(redisContext *c, const char *ns, dead_entry_cb cb, void *arg, char *err,
                      size_t errlen) {
    redisReply *ids = redisCommand(c, "ZRANGE %sdeadletter 0 -1 WITHSCORES", ns);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "ZRANGE deadletter: %s",
                 ids && ids->type == REDIS_REPLY_ERROR ? ids->str : c->errstr);
        freeReplyObject(ids);
        return -1;
    }
    long n = 0;
    for (size_t i = 0; i + 1 < ids->elements; i += 2, n++) {
        const char *id = ids->element[i]->str;
        redisReply *d =
            redisCommand(c, "HMGET %sdelivery:%s channel recipient attempts last_error", ns, id);
        if (!d || d->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "HMGET delivery: %s", d ? d->str : c->errstr);
            freeReplyObject(d);
            freeReplyObject(ids);
            return -1;
        }
        dead_entry_t e = {id, field(d, 0), field(d, 1), field(d, 2), field(d, 3),
                          atoll(ids->element[i + 1]->str)};
        cb(&e, arg);
        freeReplyObject(d);
    }
    freeReplyObject(ids);
    return n;
}

/* Replays `id`. Returns 1 replayed, 0 not dead (or unknown), -1 a Redis
 * error in `err`. */
static int dead_replay(redisContext *c, const char *ns, const char *id, char *err,
                       size_t errlen) {
    char k1[256], k2[256], k3[600], now[32];
    snprintf(k1, sizeof k1, "%sdeadletter", ns);
    snprintf(k2, sizeof k2, "%sdeliveries:due", ns);
    snprintf(k3, sizeof k3, "%sdelivery:%s", ns, id);
    snprintf(now, sizeof now, "%lld", (long long)tp_now_ms());
    redisReply *r = redisCommand(c, "EVAL %s 3 %s %s %s %s %s", REPLAY_LUA, k1, k2, k3, id, now);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s", r ? r->str : c->errstr);
        freeReplyObject(r);
        return -1;
    }
    int done = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return done;
}

/* ---- the commands ---- */

static void entry_row(const dead_entry_t *e, void *arg) {
    json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "id", e->id,
                                         "channel", e->channel, "recipient", e->recipient,
                                         "attempts", (json_int_t)atoll(e->attempts),
                                         "failed_at", (json_int_t)e->failed_at, "last_error",
                                         e->last_error));
}

static int list(tpctl_t *t) {
    json_t *rows = json_array();
    char err[512];
    if (dead_list(t->redis, t->ns, entry_row, rows, err, sizeof err) < 0) {
        json_decref(rows);
        return tpctl_fail(t, TPCTL_FAIL, "%s", err);
    }
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

static void entry_id(const dead_entry_t *e, void *arg) {
    json_array_append_new(arg, json_string(e->id));
}

static int replay(tpctl_t *t, int argc, char **argv) {
    json_t *ids = json_array(), *replayed = json_array(), *not_dead = json_array();
    int all = argc == 1 && strcmp(argv[0], "--all") == 0;
    char err[512];
    int rc = TPCTL_OK;
    if (all) {
        if (dead_list(t->redis, t->ns, entry_id, ids, err, sizeof err) < 0)
            rc = tpctl_fail(t, TPCTL_FAIL, "%s", err);
    } else {
        for (int i = 0; i < argc; i++) json_array_append_new(ids, json_string(argv[i]));
    }
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        if (rc != TPCTL_OK) break;
        int done = dead_replay(t->redis, t->ns, json_string_value(id), err, sizeof err);
        if (done < 0) {
            rc = tpctl_fail(t, TPCTL_FAIL, "%s: %s", json_string_value(id), err);
            break;
        }
        json_array_append(done ? replayed : not_dead, id);
    }
    if (json_array_size(not_dead) > 0 && rc == TPCTL_OK) rc = TPCTL_FAIL;
    if (t->json) {
        json_t *doc = json_pack("{s:O, s:O}", "replayed", replayed, "not_dead", not_dead);
        if (tpctl_print_json(doc) != TPCTL_OK) rc = TPCTL_FAIL;
        json_decref(doc);
    } else {
        json_array_foreach(replayed, i, id) printf("replayed %s\n", json_string_value(id));
        if (all && json_array_size(ids) == 0) printf("no dead deliveries\n");
    }
    json_array_foreach(not_dead, i, id)
        fprintf(stderr, "tpctl: deadletter replay: %s is not in the dead-letter set\n",
                json_string_value(id));
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
        for (int i = 1; i < argc; i++)
            if ((argc > 2 && strcmp(argv[i], "--all") == 0) || argv[i][0] == '\0')
                return tpctl_fail(t, TPCTL_USAGE, "replay takes delivery ids or --all alone");
        return tpctl_redis(t) ? replay(t, argc - 1, argv + 1) : TPCTL_FAIL;
    }
    if (argc >= 1 && strcmp(argv[0], "replay") == 0)
        return tpctl_fail(t, TPCTL_USAGE, "replay needs delivery ids or --all");
    return tpctl_fail(t, TPCTL_USAGE, "expected: deadletter list | replay ID... | replay --all");
}
