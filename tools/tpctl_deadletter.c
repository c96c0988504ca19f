/* tpctl_deadletter.c: the notifier's deliveries that never went through.
 *
 *   tpctl deadletter list                   id, channel, recipient, attempts, when, error
 *   tpctl deadletter replay ID... | --all
 *
 * The reads and the replay are common/src/deadletter.c's (every shard's
 * set): replay puts a delivery back in its shard's queue with its attempts
 * reset, atomically and only when it is still dead, so replaying twice
 * sends it once; the notifier sends the same stored payload with the same
 * id (Message-ID, Idempotency-Key). Never prints message bodies or
 * addresses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/deadletter.h"
#include "tp/id.h"
#include "tpctl.h"
#include "tpctl_table.h"

/* ---- the commands ---- */

static void entry_row(const tp_deadletter_entry_t *e, void *arg) {
    json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "id", e->id,
                                         "channel", e->channel, "recipient", e->recipient,
                                         "attempts", (json_int_t)atoll(e->attempts),
                                         "failed_at", (json_int_t)e->failed_at, "last_error",
                                         e->last_error));
}

static int list(tpctl_t *t) {
    json_t *rows = json_array();
    char err[512];
    if (tp_deadletter_list(t->redis, t->ns, entry_row, rows, err, sizeof err) < 0) {
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

static void entry_id(const tp_deadletter_entry_t *e, void *arg) {
    json_array_append_new(arg, json_string(e->id));
}

static int replay(tpctl_t *t, int argc, char **argv) {
    json_t *ids = json_array(), *replayed = json_array(), *not_dead = json_array();
    int all = argc == 1 && strcmp(argv[0], "--all") == 0;
    char err[512];
    int rc = TPCTL_OK;
    if (all) {
        if (tp_deadletter_list(t->redis, t->ns, entry_id, ids, err, sizeof err) < 0)
            rc = tpctl_fail(t, TPCTL_FAIL, "%s", err);
    } else {
        for (int i = 0; i < argc; i++) json_array_append_new(ids, json_string(argv[i]));
    }
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        if (rc != TPCTL_OK) break;
        int done = tp_deadletter_replay(t->redis, t->ns, json_string_value(id), err, sizeof err);
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
