/* deadletter.c: listing and replaying the notifier's dead deliveries over a
 * blocking connection, one shard at a time (one slot per command). */
#include "tp/deadletter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/id.h"
#include "tp/keys.h"

/* KEYS deadletter, deliveries:due, delivery (one shard's). ARGV id, now. */
static const char REPLAY_LUA[] =
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then return 0 end\n"
    "if redis.call('HGET', KEYS[3], 'status') ~= 'failed' then return 0 end\n"
    "redis.call('HSET', KEYS[3], 'status', 'sending', 'attempts', 0,\n"
    "           'replayed_at', ARGV[2])\n"
    "redis.call('HDEL', KEYS[3], 'settled_at')\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
    "redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "return 1\n";

typedef struct dead {
    char *id;
    int64_t at;
    int shard;
} dead_t;

static int dead_cmp(const void *a, const void *b) {
    const dead_t *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return strcmp(x->id, y->id);
}

static const char *field(const redisReply *r, size_t i) {
    return r && r->type == REDIS_REPLY_ARRAY && i < r->elements &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : "";
}

static void failed(redisContext *c, const redisReply *r, const char *what, char *err,
                   size_t errlen) {
    snprintf(err, errlen, "%s: %s", what,
             r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr[0] ? c->errstr
                                                                       : "bad reply");
}

long tp_deadletter_list(redisContext *c, const char *ns, tp_deadletter_entry_cb cb,
                        void *arg, char *err, size_t errlen) {
    dead_t *all = NULL;
    size_t n = 0, cap = 0;
    long rc = 0;
    char key[256];
    for (int shard = 0; shard < TP_SHARDS && rc == 0; shard++) {
        tp_key_shard_key(key, sizeof key, ns, shard, "deadletter");
        redisReply *ids = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", key);
        if (!ids || ids->type != REDIS_REPLY_ARRAY) {
            failed(c, ids, "ZRANGE", err, errlen);
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i + 1 < ids->elements; i += 2) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                all = realloc(all, cap * sizeof *all);
                if (!all) abort();
            }
            all[n].id = strdup(ids->element[i]->str);
            if (!all[n].id) abort();
            all[n].at = atoll(ids->element[i + 1]->str);
            all[n].shard = shard;
            n++;
        }
        freeReplyObject(ids);
    }
    if (rc == 0 && n) qsort(all, n, sizeof *all, dead_cmp);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char prefix[32];
        tp_key_shard_key(prefix, sizeof prefix, ns, all[i].shard, "%s", "");
        redisReply *d = redisCommand(c, "HMGET %sdelivery:%s channel recipient attempts "
                                        "last_error", prefix, all[i].id);
        if (!d || d->type == REDIS_REPLY_ERROR) {
            failed(c, d, "HMGET", err, errlen);
            rc = -1;
        } else {
            tp_deadletter_entry_t e = {all[i].id, field(d, 0), field(d, 1), field(d, 2),
                                       field(d, 3), all[i].at, all[i].shard};
            cb(&e, arg);
        }
        freeReplyObject(d);
    }
    for (size_t i = 0; i < n; i++) free(all[i].id);
    free(all);
    return rc < 0 ? -1 : (long)n;
}

int tp_deadletter_replay(redisContext *c, const char *ns, const char *id, char *err,
                         size_t errlen) {
    char dead[256], due[256], record[700], now[32];
    snprintf(now, sizeof now, "%lld", (long long)tp_now_ms());
    for (int shard = 0; shard < TP_SHARDS; shard++) { /* the shard holding it */
        tp_key_shard_key(dead, sizeof dead, ns, shard, "deadletter");
        redisReply *r = redisCommand(c, "ZSCORE %s %s", dead, id);
        int found = r && r->type == REDIS_REPLY_STRING;
        if (!r || r->type == REDIS_REPLY_ERROR) {
            failed(c, r, "ZSCORE", err, errlen);
            freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
        if (!found) continue;
        tp_key_shard_key(due, sizeof due, ns, shard, "deliveries:due");
        if (tp_key_shard_key(record, sizeof record, ns, shard, "delivery:%s", id) < 0) {
            snprintf(err, errlen, "delivery id too long");
            return -1;
        }
        r = redisCommand(c, "EVAL %s 3 %s %s %s %s %s", REPLAY_LUA, dead, due, record, id,
                         now);
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            failed(c, r, "replay", err, errlen);
            freeReplyObject(r);
            return -1;
        }
        int replayed = r->integer == 1;
        freeReplyObject(r);
        return replayed;
    }
    return 0;
}
