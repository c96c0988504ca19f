/* tpctl_query.c: what intake's HTTP query API knows of a customer and a
 * person, for operators:
 *
 *   tpctl customer ID [--timeline [--limit N] [--before ID]]
 *   tpctl tickets --owner U [--status S] [--limit N]
 *   tpctl reminders --owner U [--due-before TIME]
 *
 * Asks intake (GET /v1/customers/{id}, /v1/customers/{id}/timeline,
 * /v1/tickets?owner=, /v1/reminders?owner=&due_before=) with tpctl's API
 * key instead of reading Redis, so the key layout stays intake's. --json
 * prints intake's answer as it came; plain output is the record as
 * aligned "field  value" lines, lists as tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/id.h"
#include "tpctl.h"
#include "tpctl_table.h"

/* GET `path`; prints intake's JSON with --json, else hands it to `show`. */
static int query(tpctl_t *t, const char *path, const char *what,
                 void (*show)(const json_t *answer, int64_t now)) {
    json_t *answer = NULL;
    int status = tpctl_http(t, "GET", path, NULL, 0, &answer);
    if (status < 0) return TPCTL_FAIL;
    int rc = TPCTL_OK;
    if (status == 404) {
        rc = tpctl_fail(t, TPCTL_FAIL, "%s: not found", what);
    } else if (status != 200 || !answer) {
        rc = tpctl_http_error(t, status, answer);
    } else if (t->json) {
        rc = tpctl_print_json(answer);
    } else {
        show(answer, tp_now_ms());
    }
    json_decref(answer);
    return rc;
}

static const tp_column_t TIMELINE_COLS[] = {
    {"TIME", "ts", TP_COLUMN_TIME},       {"TYPE", "type", TP_COLUMN_TEXT},
    {"SRC", "src", TP_COLUMN_TEXT},       {"EVENT", "event", TP_COLUMN_TEXT},
    {"CUSTOMER", "customer", TP_COLUMN_TEXT}, {"SUMMARY", "summary", TP_COLUMN_TEXT},
};
#define NCOLS(c) (sizeof(c) / sizeof *(c))

static void show_record(const json_t *answer, int64_t now) {
    tp_table_print_record(stdout, answer);
    /* the lists in full, as tables */
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)answer, k, v) {
        if (!json_is_array(v) || json_array_size(v) == 0 ||
            !json_is_object(json_array_get(v, 0)))
            continue;
        printf("\n%s:\n", k);
        if (strcmp(k, "timeline") == 0) {
            tp_table_print(stdout, v, TIMELINE_COLS, NCOLS(TIMELINE_COLS), now);
            continue;
        }
        /* the keys of the first item, scalars only, as columns */
        tp_column_t cols[12];
        size_t n = 0;
        const char *ik;
        json_t *iv;
        json_object_foreach(json_array_get(v, 0), ik, iv) {
            if (n == NCOLS(cols) || json_is_object(iv) || json_is_array(iv)) continue;
            cols[n++] = (tp_column_t){ik, ik,
                                      tp_table_time_key(ik) ? TP_COLUMN_TIME : TP_COLUMN_TEXT};
        }
        tp_table_print(stdout, v, cols, n, now);
    }
}

static void show_timeline(const json_t *answer, int64_t now) {
    json_t *entries = json_object_get(answer, "entries");
    if (json_array_size(entries) == 0) printf("no timeline entries\n");
    else tp_table_print(stdout, entries, TIMELINE_COLS, NCOLS(TIMELINE_COLS), now);
    const char *next = json_string_value(json_object_get(answer, "next_before"));
    if (next) printf("(older: --before %s)\n", next);
}

int tpctl_customer(tpctl_t *t, int argc, char **argv) {
    const char *id = NULL, *limit = NULL, *before = NULL;
    int timeline = 0;
    for (int i = 0; i < argc; i++) {
        int o;
        if ((o = tpctl_opt(t, argc, argv, &i, "--limit", &limit)) ||
            (o = tpctl_opt(t, argc, argv, &i, "--before", &before))) {
            if (o < 0) return TPCTL_USAGE;
            continue;
        }
        if (strcmp(argv[i], "--timeline") == 0) timeline = 1;
        else if (argv[i][0] == '-') return tpctl_fail(t, TPCTL_USAGE, "unknown option '%s'", argv[i]);
        else if (!id) id = argv[i];
        else return tpctl_fail(t, TPCTL_USAGE, "one customer ID only ('%s')", argv[i]);
    }
    if (!id || !*id) return tpctl_fail(t, TPCTL_USAGE, "ID: the customer's id is required");
    if ((limit || before) && !timeline)
        return tpctl_fail(t, TPCTL_USAGE, "--limit and --before go with --timeline");
    if (limit && (strspn(limit, "0123456789") != strlen(limit) || !*limit || atoi(limit) < 1 ||
                  atoi(limit) > 1000))
        return tpctl_fail(t, TPCTL_USAGE, "--limit: '%s' is not a number from 1 to 1000", limit);
    char eid[512], ebefore[512], path[1400];
    if (tpctl_url_escape(id, eid, sizeof eid) < 0)
        return tpctl_fail(t, TPCTL_USAGE, "ID: too long");
    if (before && tpctl_url_escape(before, ebefore, sizeof ebefore) < 0)
        return tpctl_fail(t, TPCTL_USAGE, "--before: too long");
    if (!timeline) {
        snprintf(path, sizeof path, "/v1/customers/%s", eid);
        return query(t, path, id, show_record);
    }
    snprintf(path, sizeof path, "/v1/customers/%s/timeline?limit=%s%s%s", eid,
             limit ? limit : "50", before ? "&before=" : "", before ? ebefore : "");
    return query(t, path, id, show_timeline);
}

static void show_tickets(const json_t *answer, int64_t now) {
    static const tp_column_t cols[] = {
        {"TICKET", "ticket", TP_COLUMN_TEXT},         {"STATUS", "status", TP_COLUMN_TEXT},
        {"PRIORITY", "priority", TP_COLUMN_TEXT}, {"CATEGORY", "category", TP_COLUMN_TEXT},
        {"CUSTOMER", "customer", TP_COLUMN_TEXT}, {"DEPARTMENT", "department", TP_COLUMN_TEXT},
        {"OPENED", "opened_at", TP_COLUMN_TIME},  {"RESOLUTION", "sla.resolution.state", TP_COLUMN_TEXT},
        {"LEFT", "sla.resolution.left_ms", TP_COLUMN_MS}, {"TITLE", "title", TP_COLUMN_TEXT},
    };
    json_t *items = json_object_get(answer, "tickets");
    if (json_array_size(items) == 0) printf("no tickets\n");
    else tp_table_print(stdout, items, cols, NCOLS(cols), now);
    const char *next = json_string_value(json_object_get(answer, "next_cursor"));
    if (next) printf("(more: the next page starts at cursor %s)\n", next);
}

int tpctl_tickets(tpctl_t *t, int argc, char **argv) {
    const char *owner = NULL, *status = NULL, *limit = NULL;
    for (int i = 0; i < argc; i++) {
        int o;
        if ((o = tpctl_opt(t, argc, argv, &i, "--owner", &owner)) ||
            (o = tpctl_opt(t, argc, argv, &i, "--status", &status)) ||
            (o = tpctl_opt(t, argc, argv, &i, "--limit", &limit))) {
            if (o < 0) return TPCTL_USAGE;
            continue;
        }
        return tpctl_fail(t, TPCTL_USAGE, "unexpected argument '%s'", argv[i]);
    }
    if (!owner || !*owner) return tpctl_fail(t, TPCTL_USAGE, "--owner U is required");
    if (limit && (strspn(limit, "0123456789") != strlen(limit) || !*limit || atoi(limit) < 1 ||
                  atoi(limit) > 200))
        return tpctl_fail(t, TPCTL_USAGE, "--limit: '%s' is not a number from 1 to 200", limit);
    char eo[512], es[128] = "", path[1024];
    if (tpctl_url_escape(owner, eo, sizeof eo) < 0 ||
        (status && tpctl_url_escape(status, es, sizeof es) < 0))
        return tpctl_fail(t, TPCTL_USAGE, "--owner or --status: too long");
    snprintf(path, sizeof path, "/v1/tickets?owner=%s%s%s%s%s", eo, status ? "&status=" : "", es,
             limit ? "&limit=" : "", limit ? limit : "");
    return query(t, path, owner, show_tickets);
}

static void show_reminders(const json_t *answer, int64_t now) {
    static const tp_column_t cols[] = {
        {"DUE", "due_at", TP_COLUMN_TIME},       {"IN", "due_at", TP_COLUMN_UNTIL},
        {"RULE", "rule", TP_COLUMN_TEXT},        {"CUSTOMER", "customer", TP_COLUMN_TEXT},
        {"REMINDER", "id", TP_COLUMN_TEXT},      {"TEXT", "text", TP_COLUMN_TEXT},
    };
    json_t *items = json_object_get(answer, "reminders");
    char before[32];
    tp_table_time(json_integer_value(json_object_get(answer, "due_before")), before, sizeof before);
    if (json_array_size(items) == 0) printf("nothing due before %s\n", before);
    else tp_table_print(stdout, items, cols, NCOLS(cols), now);
    if (json_is_true(json_object_get(answer, "truncated"))) printf("(more not shown)\n");
}

int tpctl_reminders(tpctl_t *t, int argc, char **argv) {
    const char *owner = NULL, *before = NULL;
    for (int i = 0; i < argc; i++) {
        int o;
        if ((o = tpctl_opt(t, argc, argv, &i, "--owner", &owner)) ||
            (o = tpctl_opt(t, argc, argv, &i, "--due-before", &before))) {
            if (o < 0) return TPCTL_USAGE;
            continue;
        }
        return tpctl_fail(t, TPCTL_USAGE, "unexpected argument '%s'", argv[i]);
    }
    if (!owner || !*owner) return tpctl_fail(t, TPCTL_USAGE, "--owner U is required");
    int64_t due = 0;
    if (before && tp_table_parse_time(before, tp_now_ms(), &due) < 0)
        return tpctl_fail(t, TPCTL_USAGE, "--due-before: '%s' is not a time (ms since the "
                          "epoch, 2026-12-03T18:00:00Z, 2026-12-03, or +2h from now)", before);
    char eo[512], path[1024];
    if (tpctl_url_escape(owner, eo, sizeof eo) < 0)
        return tpctl_fail(t, TPCTL_USAGE, "--owner: too long");
    if (before) snprintf(path, sizeof path, "/v1/reminders?owner=%s&due_before=%lld", eo, (long long)due);
    else snprintf(path, sizeof path, "/v1/reminders?owner=%s", eo);
    return query(t, path, owner, show_reminders);
}
