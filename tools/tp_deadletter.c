/* tp-deadletter: the operator's view of deliveries that never went through.
 *
 *   tp-deadletter [-c touchpoint.ini] list
 *   tp-deadletter [-c touchpoint.ini] replay <delivery id>... | --all
 *
 * list prints one line per dead delivery: id, channel, recipient, attempts,
 * when it failed (UTC) and the last error. replay puts a delivery back in
 * the notifier's queue (its shard's deliveries:due) with its attempts reset,
 * atomically
 * and only when it is still dead, so replaying twice sends it once; the
 * notifier sends the same stored payload with the same id (Message-ID,
 * Idempotency-Key). Reads [redis] from the configuration (-c FILE or
 * TP_CONFIG, with TP_REDIS_* overrides). Owns one blocking Redis
 * connection; the reads and the replay are common/src/deadletter.c's.
 * Never prints message bodies or addresses. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp/config.h"
#include "tp/deadletter.h"
#include "tp/id.h"
#include "tp/service.h"

static int usage(void) {
    fprintf(stderr, "usage: tp-deadletter [-c touchpoint.ini] list\n"
                    "       tp-deadletter [-c touchpoint.ini] replay <id>... | --all\n");
    return 2;
}

static void print_entry(const tp_deadletter_entry_t *e, void *arg) {
    (void)arg;
    time_t at = (time_t)(e->failed_at / 1000);
    struct tm tm;
    char when[32];
    gmtime_r(&at, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s\t%s\t%s\t%s\t%s\t%s\n", e->id, e->channel, e->recipient, e->attempts, when,
           e->last_error);
}

static int list(redisContext *c, const char *ns) {
    char err[300];
    long n = tp_deadletter_list(c, ns, print_entry, NULL, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "tp-deadletter: %s\n", err);
        return 1;
    }
    fprintf(stderr, "%ld dead deliver%s\n", n, n == 1 ? "y" : "ies");
    return 0;
}

static int replay_one(redisContext *c, const char *ns, const char *id) {
    char err[300];
    int r = tp_deadletter_replay(c, ns, id, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, "tp-deadletter: replay %s: %s\n", id, err);
        return 1;
    }
    if (r == 0) {
        fprintf(stderr, "tp-deadletter: %s is not in the dead-letter set\n", id);
        return 1;
    }
    printf("replayed %s\n", id);
    return 0;
}

/* --all: every dead delivery listed, replayed one by one. */
typedef struct replay_all {
    redisContext *c;
    const char *ns;
    int failed;
} replay_all_t;

static void replay_entry(const tp_deadletter_entry_t *e, void *arg) {
    replay_all_t *ra = arg;
    ra->failed |= replay_one(ra->c, ra->ns, e->id);
}

static int replay(redisContext *c, const char *ns, int argc, char **argv) {
    int failed = 0;
    if (argc == 1 && strcmp(argv[0], "--all") == 0) {
        replay_all_t ra = {c, ns, 0};
        char err[300];
        if (tp_deadletter_list(c, ns, replay_entry, &ra, err, sizeof err) < 0) {
            fprintf(stderr, "tp-deadletter: %s\n", err);
            return 1;
        }
        return ra.failed;
    }
    for (int i = 0; i < argc; i++) failed |= replay_one(c, ns, argv[i]);
    return failed;
}

int main(int argc, char **argv) {
    const char *path = getenv("TP_CONFIG");
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
