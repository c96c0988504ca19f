/* tpctl.h: what tpctl's command groups share (tools/tpctl_*.c): the
 * invocation (configuration, --json), the operator's Redis connection,
 * intake's HTTP API, argument helpers and the exit codes. Internal to
 * tpctl; nothing here is a library contract. */
#ifndef TPCTL_H
#define TPCTL_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tp/config.h"

/* Exit codes: 0 ok, 1 failure, 2 usage. */
enum { TPCTL_OK = 0, TPCTL_FAIL = 1, TPCTL_USAGE = 2 };

typedef struct tpctl {
    tp_config_t *cfg;      /* owned; -c FILE, TP_CONFIG, or the environment only */
    int json;              /* --json: one JSON document on stdout */
    redisContext *redis;   /* owned; NULL until tpctl_redis() */
    const char *ns;        /* [redis] namespace, borrowed from cfg */
    const char *command;   /* "status", "deadletter replay": for messages */
} tpctl_t;

/* Prints "tpctl: <command>: <message>" on stderr and returns `code`. */
int tpctl_fail(tpctl_t *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The Redis connection as ACL user "tpctl" (its password from
 * <secrets_dir>/tpctl.pass with [redis] acl = on), made on first use.
 * Borrowed; NULL after printing why. */
redisContext *tpctl_redis(tpctl_t *t);
/* A reply that is not an error: returns it (caller frees), or NULL after
 * printing the error naming `what`. Takes ownership of `r`. */
redisReply *tpctl_reply(tpctl_t *t, redisReply *r, const char *what);

/* One request to intake's HTTP API ([tpctl] intake_url, key from
 * [tpctl] api_key_file). `body` NULL for GET. Returns the HTTP status and
 * the parsed answer in `*answer` (caller owns; NULL when the body is not
 * JSON), or -1 after printing why (no key, intake unreachable). */
int tpctl_http(tpctl_t *t, const char *method, const char *path, const char *body,
               size_t body_len, json_t **answer);
/* `s` percent-encoded for a URL path segment or query value, into `out`.
 * Returns 0, or -1 when it does not fit. */
int tpctl_url_escape(const char *s, char *out, size_t outlen);
/* Prints intake's error answer ({"error","field"}) for `status`; returns
 * TPCTL_FAIL. */
int tpctl_http_error(tpctl_t *t, int status, json_t *answer);

/* Prints `doc` as the one JSON document of --json. Returns TPCTL_OK, or
 * TPCTL_FAIL when stdout fails. */
int tpctl_print_json(const json_t *doc);

/* Argument helpers: "--owner U" or "--owner=U". When argv[*i] is option
 * `name`, stores its value in *value, advances *i and returns 1; returns 0
 * when it is another argument, -1 (after printing the usage error) when
 * the value is missing. */
int tpctl_opt(tpctl_t *t, int argc, char **argv, int *i, const char *name,
              const char **value);

/* Reads the whole file `path` ("-": standard input). Caller frees; NULL
 * after printing why. */
char *tpctl_read_file(tpctl_t *t, const char *path, size_t *len);

/* Command groups: argv starts after the group's name. */
int tpctl_status(tpctl_t *t, int argc, char **argv);
int tpctl_lag(tpctl_t *t, int argc, char **argv);
int tpctl_journal(tpctl_t *t, int argc, char **argv);
int tpctl_deadletter(tpctl_t *t, int argc, char **argv);
int tpctl_keygen(tpctl_t *t, int argc, char **argv);
int tpctl_post(tpctl_t *t, int argc, char **argv);
int tpctl_customer(tpctl_t *t, int argc, char **argv);
int tpctl_tickets(tpctl_t *t, int argc, char **argv);
int tpctl_reminders(tpctl_t *t, int argc, char **argv);

/* The journal backlog behind one service's cursor (keys as
 * tp_horizon_keys names them): entries after the cursor (counted up to
 * `max`; *capped set when there were more), the time of the oldest of
 * them (0: none) and the cursor itself ("" when none). Returns 0 or -1
 * (printed). */
int tpctl_lag_of(tpctl_t *t, const char *journal_key, const char *cursor_key, int64_t max,
                 int64_t *entries, int *capped, int64_t *oldest_ms, char *cursor,
                 size_t cursor_len);

#endif
