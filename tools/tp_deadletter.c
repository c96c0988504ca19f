/* tp-deadletter: the operator's view of deliveries that never went through.
 *
 *   tp-deadletter [-c touchpoint.ini] list
 *   tp-deadletter [-c touchpoint.ini] replay <delivery id>... | --all
 *
 * list prints one line per dead delivery: id, channel, recipient, attempts,
 * when it failed (UTC) and the last error. replay puts a delivery back in
 * the notifier's queue (deliveries:due) with its attempts reset, atomically
 * and only when it is still dead, so replaying twice sends it once; the
 * notifier sends the same stored payload with the same id (Message-ID,
 * Idempotency-Key). Reads [redis] from the configuration (-c FILE or
 * TP_CONFIG, with TP_REDIS_* overrides). Owns one blocking Redis
 * connection; never prints message bodies or addresses. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp/config.h"
#include "tp/id.h"
#include "tp/service.h"
#include "tp/log.h"

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

static int usage(void) {
    fprintf(stderr, "usage: tp-deadletter [-c touchpoint.ini] list\n"
                    "       tp-deadletter [-c touchpoint.ini] replay <id>... | --all\n");
    return 2;
}

static const char *field(redisReply *r, size_t i) {
    return r && i < r->elements && r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : "";
}

static int list(redisContext *c, const char *ns) {
    redisReply *ids = redisCommand(c, "ZRANGE %sdeadletter 0 -1 WITHSCORES", ns);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "tp-deadletter: ZRANGE failed: %s\n", ids ? ids->str : c->errstr);
        freeReplyObject(ids);
        return 1;
    }
    for (size_t i = 0; i + 1 < ids->elements; i += 2) {
        const char *id = ids->element[i]->str;
        redisReply *d = redisCommand(c, "HMGET %sdelivery:%s channel recipient attempts last_error",
                                     ns, id);
        time_t at = (time_t)(atoll(ids->element[i + 1]->str) / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&at, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s\t%s\t%s\t%s\t%s\t%s\n", id, field(d, 0), field(d, 1), field(d, 2),
               when, field(d, 3));
        freeReplyObject(d);
    }
    fprintf(stderr, "%zu dead deliver%s\n", ids->elements / 2,
            ids->elements == 2 ? "y" : "ies");
    freeReplyObject(ids);
    return 0;
}

static int replay_one(redisContext *c, const char *ns, const char *id) {
    char k1[256], k2[256], k3[600], now[32];
    snprintf(k1, sizeof k1, "%sdeadletter", ns);
    snprintf(k2, sizeof k2, "%sdeliveries:due", ns);
    snprintf(k3, sizeof k3, "%sdelivery:%s", ns, id);
    snprintf(now, sizeof now, "%lld", (long long)tp_now_ms());
    redisReply *r = redisCommand(c, "EVAL %s 3 %s %s %s %s %s", REPLAY_LUA, k1, k2, k3,
                                 id, now);
    int rc = 1;
    if (!r || r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "tp-deadletter: replay %s: %s\n", id, r ? r->str : c->errstr);
    else if (r->integer == 1)
        printf("replayed %s\n", id), rc = 0;
    else
        fprintf(stderr, "tp-deadletter: %s is not in the dead-letter set\n", id);
    freeReplyObject(r);
    return rc;
}

static int replay(redisContext *c, const char *ns, int argc, char **argv) {
    int failed = 0;
    if (argc == 1 && strcmp(argv[0], "--all") == 0) {
        redisReply *ids = redisCommand(c, "ZRANGE %sdeadletter 0 -1", ns);
        for (size_t i = 0; ids && ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++)
            failed |= replay_one(c, ns, ids->element[i]->str);
        freeReplyObject(ids);
        return failed;
    }
    for (int i = 0; i < argc; i++) failed |= replay_one(c, ns, argv[i]);
    return failed;
}

int main(int argc, char **argv) {
    const char *path = getenv("TP_CONFIG");
    tp_log_stream(stderr); /* stdout is this tool's answer; logs go aside */
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "-c") == 0) {
        path = argv[i + 1];
        i += 2;
    }
    if (i >= argc) return usage();
    char err[512];
    tp_config_t *cfg = tp_config_new(path && *path ? path : NULL, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "tp-deadletter: %s\n", err);
        return 1;
    }
    tp_store_options_t so;
    tp_service_store_options(cfg, TP_SERVICE_NOTIFIER, &so); /* the notifier's rights */
    if (tp_config_check(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "tp-deadletter: %s\n", err);
        tp_config_destroy(&cfg);
        return 1;
    }
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(so.host ? so.host : "127.0.0.1",
                                              so.port ? so.port : 6379, tv);
    if (!c || c->err) {
        fprintf(stderr, "tp-deadletter: cannot connect to Redis: %s\n",
                c ? c->errstr : "out of memory");
        redisFree(c);
        tp_config_destroy(&cfg);
        return 1;
    }
    int rc = 0;
    if (so.password && *so.password) {
        redisReply *r = so.user && *so.user
                            ? redisCommand(c, "AUTH %s %s", so.user, so.password)
                            : redisCommand(c, "AUTH %s", so.password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "tp-deadletter: AUTH failed\n");
            rc = 1;
        }
        freeReplyObject(r);
    }
    const char *ns = so.ns ? so.ns : "tp:";
    if (rc == 0) {
        if (strcmp(argv[i], "list") == 0 && i + 1 == argc)
            rc = list(c, ns);
        else if (strcmp(argv[i], "replay") == 0 && i + 1 < argc)
            rc = replay(c, ns, argc - i - 1, argv + i + 1);
        else
            rc = usage();
    }
    redisFree(c);
    tp_config_destroy(&cfg);
    return rc;
}
