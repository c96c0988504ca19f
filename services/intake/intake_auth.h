/* intake_auth.h: who may call intake, and how much. Owns the integrations
 * (one per API key, from the keys file and the legacy [intake] api_keys),
 * their scopes, request signatures (HMAC-SHA256 over timestamp and raw
 * body, checked against a replay window) and one token bucket per
 * integration (per intake instance).
 *
 * Pure decisions, no I/O after tp_auth_new: the caller passes the clock in,
 * so every rule is unit-tested without a loop. Remembering seen signatures
 * (replays inside the window) needs state shared by every intake instance
 * and lives with the caller (Redis, intake_api.c).
 *
 * Never logs or returns a key or a secret; keys are kept only as their
 * SHA-256, compared in constant time. */
#ifndef INTAKE_AUTH_H
#define INTAKE_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* The scopes: XX(enum suffix, bit, name). Every endpoint maps to one. */
#define TP_SCOPE_MAP(XX)                       \
    XX(EVENTS_WRITE, 0, "events:write")        \
    XX(CUSTOMERS_READ, 1, "customers:read")    \
    XX(TICKETS_READ, 2, "tickets:read")        \
    XX(REMINDERS_READ, 3, "reminders:read")    \
    XX(INBOX_READ, 4, "inbox:read")            \
    XX(EVENTS_DERIVED, 5, "events:derived")

typedef enum {
    TP_SCOPE_NONE = 0, /* any valid key (unknown paths: 404 after auth) */
#define XX(name, bit, text) TP_SCOPE_##name = 1u << (bit),
    TP_SCOPE_MAP(XX)
#undef XX
    TP_SCOPE_ALL = (1u << 6) - 1
} tp_scope_t;

/* Headers of a signed request. */
#define TP_AUTH_TIMESTAMP_HEADER "x-tp-timestamp"
#define TP_AUTH_SIGNATURE_HEADER "x-tp-signature"
#define TP_AUTH_MAC_BYTES 32

typedef struct tp_auth tp_auth_t;
typedef struct tp_auth_client tp_auth_client_t;

/* A token bucket (zeroed: full on first use). */
typedef struct tp_bucket {
    double tokens;
    uint64_t last_ms;
    int started;
} tp_bucket_t;

typedef struct tp_auth_options {
    const char *keys_file;   /* NULL or "": none */
    const char *legacy_keys; /* [intake] api_keys, comma-separated: each an
                                integration of every scope, unsigned */
    int64_t replay_window_s; /* default for require_signature integrations */
    double rate;             /* default requests per second, 0: unlimited */
    double burst;            /* default bucket size; 0: max(1, rate) */
} tp_auth_options_t;

/* Loads the integrations. Returns NULL with a message naming the file and
 * line (or section and key) in `err` when the configuration is unusable:
 * unknown key or scope, duplicate API key, unreadable key file, no key at
 * all. Caller owns the result. */
tp_auth_t *tp_auth_new(const tp_auth_options_t *opts, char *err, size_t errlen);
/* Wipes keys and secrets from memory. Accepts NULL, safe twice. */
void tp_auth_destroy(tp_auth_t **self_p);
size_t tp_auth_count(const tp_auth_t *self);

/* The integration whose key an "Authorization: Bearer <key>" header value
 * carries, or NULL (no header, other scheme, unknown key). Compares against
 * every key in time independent of the key given. Borrowed for the life of
 * `self`. */
tp_auth_client_t *tp_auth_find(const tp_auth_t *self,
                                     const char *authorization);

/* The integration's name (for logs and answers; never the key). */
const char *tp_auth_client_name(const tp_auth_client_t *client);
int tp_auth_client_allows(const tp_auth_client_t *client, tp_scope_t scope);
int tp_auth_client_signs(const tp_auth_client_t *client);
int64_t tp_auth_client_window(const tp_auth_client_t *client);

/* The scope a request needs: TP_SCOPE_NONE for paths intake does not
 * serve (the caller answers 404 to any valid key). */
tp_scope_t tp_auth_scope_for(const char *method, const char *path);
/* "customers:read"; "" for TP_SCOPE_NONE. */
const char *tp_auth_scope_name(tp_scope_t scope);

/* Checks a signed request: `timestamp` (Unix seconds, decimal) within the
 * client's window of `now_s`, `signature` ("v1=<64 hex>", possibly several
 * comma-separated during a secret rotation) equal to
 * HMAC-SHA256(secret, timestamp "." body). Returns 0 and the MAC in `mac`,
 * or -1 with the reason in `why` (safe to answer to the client). */
int tp_auth_verify(const tp_auth_client_t *client, const char *timestamp,
                   const char *signature, const char *body, size_t len,
                   int64_t now_s, unsigned char mac[TP_AUTH_MAC_BYTES],
                   char *why, size_t whylen);

/* Takes one token from the client's bucket at monotonic time `now_ms`.
 * Returns 0, or -1 when empty with the whole seconds to wait in
 * `*retry_after_s` (at least 1). Loop thread only. */
int tp_auth_admit(tp_auth_client_t *client, uint64_t now_ms,
                  int *retry_after_s);

/* Failed authentications per peer address (per intake instance): each
 * peer may fail `burst` times, then once per 1/`rate` seconds; past that
 * it is locked out (the caller answers 429 without looking at its key), so
 * guessing keys is slowed to a trickle. A locked-out address locks out
 * every client behind it until its bucket refills. Caller owns the
 * result; NULL when `rate` <= 0 (no lockout: the functions accept NULL). */
typedef struct tp_lockout tp_lockout_t;
tp_lockout_t *tp_lockout_new(double rate, double burst);
void tp_lockout_destroy(tp_lockout_t **self_p);
/* 0: `peer` may try now; -1: locked out, the whole seconds until it may
 * try again in *retry_after_s (at least 1). */
int tp_lockout_check(tp_lockout_t *self, const char *peer, uint64_t now_ms,
                     int *retry_after_s);
/* Counts a failure of `peer` at `now_ms`. */
void tp_lockout_fail(tp_lockout_t *self, const char *peer, uint64_t now_ms);

#endif
