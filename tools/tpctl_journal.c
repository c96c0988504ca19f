/* tpctl_journal.c: `tpctl journal trim [--retention DUR]`: trims the
 * journal by the very rule intake's timer uses (tp/horizon.h): entries
 * older than the retention ([intake] journal_retention unless given) and
 * at or before every consuming service's cursor. A service without a
 * cursor holds everything. Writes nothing but the XTRIM. */
#include <string.h>

#include "tp/argv.h"
#include "tp/horizon.h"
#include "tp/id.h"
#include "tp/proto.h"
#include "tpctl.h"

int tpctl_journal(tpctl_t *t, int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "trim") != 0)
        return tpctl_fail(t, TPCTL_USAGE, "expected: journal trim [--retention DUR]");
    t->command = "journal trim";
    const char *retention_text = NULL;
    for (int i = 1; i < argc; i++) {
        int o = tpctl_opt(t, argc, argv, &i, "--retention", &retention_text);
        if (o < 0) return TPCTL_USAGE;
        if (!o) return tpctl_fail(t, TPCTL_USAGE, "unexpected argument '%s'", argv[i]);
    }
    int64_t retention = tp_config_ms(t->cfg, "intake", "journal_retention", "7d");
    if (retention_text && (tp_config_parse_ms(retention_text, &retention) < 0 || retention < 0))
        return tpctl_fail(t, TPCTL_USAGE, "--retention: '%s' is not a duration (0, 1h, 7d)",
                          retention_text);
    if (!tpctl_redis(t)) return TPCTL_FAIL;
    tp_argv_t a; /* the journal, then each service's cursor: intake's names */
    tp_argv_init(&a);
    tp_horizon_keys(&a, t->ns);
    const char *journal = a.v[0];
    /* one GET per cursor, not an MGET: the cursors need not share a slot */
    char values[TP_SERVICE_COUNT][64];
    const char *cursors[TP_SERVICE_COUNT] = {0};
    const char *holder = NULL, *slowest = NULL;
    size_t n = (size_t)tp_horizon_count();
    for (size_t i = 0; i < n; i++) {
        redisReply *c =
            tpctl_reply(t, redisCommand(t->redis, "GET %s", a.v[1 + i]), "GET cursor");
        if (!c) {
            tp_argv_clear(&a);
            return TPCTL_FAIL;
        }
        if (c->type == REDIS_REPLY_STRING) {
            snprintf(values[i], sizeof values[i], "%s", c->str);
            cursors[i] = values[i];
        } else if (!holder) {
            holder = tp_horizon_service((int)i);
        }
        freeReplyObject(c);
    }
    /* the slowest service: the oldest cursor */
    int slow = -1;
    for (size_t i = 0; i < n; i++)
        if (cursors[i] && (slow < 0 || tp_horizon_older(cursors[i], cursors[slow]))) slow = (int)i;
    slowest = slow >= 0 ? tp_horizon_service(slow) : NULL;
    int64_t now = tp_now_ms();
    char floor[48];
    long long trimmed = 0;
    int rc = TPCTL_OK;
    int can = tp_horizon_floor(cursors, n, now, retention, floor, sizeof floor) == 0;
    if (can) {
        redisReply *x = tpctl_reply(
            t, redisCommand(t->redis, "XTRIM %s MINID %s", journal, floor), "XTRIM");
        if (!x) rc = TPCTL_FAIL;
        else trimmed = x->integer, freeReplyObject(x);
    }
    redisReply *len = rc == TPCTL_OK ? tpctl_reply(t, redisCommand(t->redis, "XLEN %s", journal), "XLEN")
                                     : NULL;
    if (rc == TPCTL_OK && !len) rc = TPCTL_FAIL;
    if (rc == TPCTL_OK) {
        if (t->json) {
            json_t *doc = json_pack("{s:I, s:s?, s:I, s:I, s:s?, s:s?}", "trimmed",
                                    (json_int_t)trimmed, "min_id", can ? floor : NULL,
                                    "remaining", (json_int_t)len->integer, "retention_ms",
                                    (json_int_t)retention, "held_by", holder, "slowest",
                                    slowest);
            rc = tpctl_print_json(doc);
            json_decref(doc);
        } else if (!can) {
            printf("not trimmed: %s has no cursor yet (it holds the whole journal); "
                   "%lld entries\n", holder ? holder : "a service", len->integer);
        } else {
            printf("trimmed %lld entries below %s (retention %lld ms, slowest service %s); "
                   "%lld remain\n", trimmed, floor, (long long)retention,
                   slowest ? slowest : "-", len->integer);
        }
    }
    freeReplyObject(len);
    tp_argv_clear(&a);
    return rc;
}
