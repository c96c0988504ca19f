/* intake_api.c: dispatch, the checks before a request is served (API key,
 * scope, signature and replay, rate limit; decided by intake_auth) and
 * POST /v1/events. Logs integrations by name, never a key. */
#include "intake_api.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "intake_auth.h"
#include "tp/keys.h"
#include "tp/log.h"

#define API_WINDOW_DEFAULT "5m"

struct tp_api {
    uv_loop_t *loop;
    tp_store_t *store;
    tp_journal_t *journal;
    tp_query_t *query;
    tp_auth_t *auth;
    tp_lockout_t *lockout; /* NULL: failed authentications not limited */
    size_t max_batch;
    tp_series_t *rejected; /* events refused for a field (metrics) */
};

void tp_api_count_rejected(tp_api_t *self, tp_series_t *rejected) {
    self->rejected = rejected;
}

tp_api_t *tp_api_new(tp_config_t *cfg, uv_loop_t *loop, tp_store_t *store,
                     tp_journal_t *journal, tp_query_t *query) {
    tp_auth_options_t auth_opts = {
        .keys_file = tp_config_str(cfg, "intake", "keys_file", ""),
        .legacy_keys = tp_config_str(cfg, "intake", "api_keys", ""),
        .replay_window_s =
            tp_config_ms(cfg, "intake", "signature_window", API_WINDOW_DEFAULT) / 1000,
        .rate = (double)tp_config_int(cfg, "intake", "rate_limit", 0, 0, 1000000),
        .burst = (double)tp_config_int(cfg, "intake", "rate_burst", 0, 0, 10000000),
    };
    size_t max_batch =
        (size_t)tp_config_int(cfg, "intake", "max_batch", 1000, 1, 100000);
    int64_t failures_per_min =
        tp_config_int(cfg, "intake", "auth_failures_per_minute", 60, 0, 1000000);
    int64_t failures_burst = tp_config_int(cfg, "intake", "auth_failures_burst", 20, 1, 1000000);
    char err[600];
    if (tp_config_check(cfg, err, sizeof err) < 0) {
        tp_log_error("configuration: %s", err);
        return NULL;
    }
    if (auth_opts.replay_window_s < 1) {
        tp_log_error("configuration: intake.signature_window: at least 1s");
        return NULL;
    }
    tp_auth_t *auth = tp_auth_new(&auth_opts, err, sizeof err);
    if (!auth) {
        tp_log_error("api keys: %s", err);
        return NULL;
    }
    tp_api_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->loop = loop;
    self->store = store;
    self->journal = journal;
    self->query = query;
    self->auth = auth;
    self->lockout = tp_lockout_new((double)failures_per_min / 60.0, (double)failures_burst);
    self->max_batch = max_batch;
    tp_log_info("api keys: %zu integrations", tp_auth_count(auth));
    return self;
}

void tp_api_destroy(tp_api_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_auth_destroy(&(*self_p)->auth); /* wipes keys and secrets */
    tp_lockout_destroy(&(*self_p)->lockout);
    free(*self_p);
    *self_p = NULL;
}

void tp_api_http_options(tp_config_t *cfg, tp_http_options_t *opts) {
    const char *read = tp_config_str(cfg, "intake", "read_timeout", "10s");
    *opts = (tp_http_options_t){
        .host = tp_config_str(cfg, "intake", "listen", "127.0.0.1"),
        .port = (int)tp_config_int(cfg, "intake", "port", 8080, 0, 65535),
        .max_body = (size_t)tp_config_int(cfg, "intake", "max_body", 1 << 20,
                                          1024, 64 << 20),
        .max_header = (size_t)tp_config_int(cfg, "intake", "max_header", 16 << 10,
                                            1024, 1 << 20),
        .read_timeout_ms = (int)tp_config_ms(cfg, "intake", "read_timeout", "10s"),
        .header_timeout_ms = (int)tp_config_ms(cfg, "intake", "header_timeout", read),
        .body_timeout_ms = (int)tp_config_ms(cfg, "intake", "body_timeout", "30s"),
        .idle_timeout_ms = (int)tp_config_ms(cfg, "intake", "idle_timeout", "60s"),
        .max_connections = (int)tp_config_int(cfg, "intake", "max_connections",
                                              10000, 1, 1000000),
    };
}

static void respond_error(tp_http_request_t *req, int status,
                          const char *message, const char *field) {
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(message));
    if (field) json_object_set_new(o, "field", json_string(field));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    tp_http_respond_json(req, status, body);
    free(body);
}

static void event_refused(tp_api_t *self, tp_http_request_t *req, int status, int batch,
                          size_t i, const tp_event_error_t *err) {
    char field[160], message[400];
    tp_series_inc(self->rejected);
    if (batch)
        snprintf(field, sizeof field, "events[%zu]%s%s", i,
                 err->field[0] ? "." : "", err->field);
    else
        snprintf(field, sizeof field, "%s", err->field);
    snprintf(message, sizeof message, "%s%s%s", field, field[0] ? ": " : "",
             err->message);
    respond_error(req, status, message, field);
}

static void bad_event(tp_api_t *self, tp_http_request_t *req, int batch, size_t i,
                      const tp_event_error_t *err) {
    event_refused(self, req, 400, batch, i, err);
}

/* Events the services derive (lead.graded, reminder.due, sla.breached...)
 * come from their services over the bus; over HTTP only with the
 * events:derived scope (tests, replays by an operator). 0, or -1 with the
 * reason in `err`. */
static int derived_check(const tp_auth_client_t *client, const tp_event_t *ev,
                         tp_event_error_t *err) {
    const tp_event_schema_t *schema = tp_proto_schema(ev->type);
    if (!schema || schema->producer == TP_SERVICE_INTAKE ||
        tp_auth_client_allows(client, TP_SCOPE_EVENTS_DERIVED))
        return 0;
    snprintf(err->field, sizeof err->field, "type");
    snprintf(err->message, sizeof err->message,
             "%s comes from %s; posting it needs the events:derived scope", schema->name,
             tp_proto_service_name(schema->producer));
    return -1;
}

/* Signed requests are remembered in Redis for twice the replay window
 * (`replay:<mac hex>`), so a replay is refused by whichever intake instance
 * it reaches. */
#define REPLAY_KEY_MAX 128

typedef struct post_ctx {
    tp_api_t *api;
    tp_http_request_t *req;
    int batch;
    char replay_key[REPLAY_KEY_MAX]; /* "" when unsigned */
} post_ctx_t;

static void forgot_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store, (void)r, (void)arg;
}

static void journaled_cb(tp_journal_batch_t *batch, int outcome, void *arg) {
    post_ctx_t *ctx = arg;
    tp_http_request_t *req = ctx->req;
    if (outcome == TP_JOURNAL_OK) {
        json_t *accepted = json_array(), *dups = json_array();
        for (size_t i = 0; i < tp_journal_batch_count(batch); i++)
            json_array_append_new(tp_journal_batch_duplicate(batch, i) ? dups
                                                                       : accepted,
                                  json_string(tp_journal_batch_id(batch, i)));
        json_t *o = json_object();
        json_object_set_new(o, "accepted", accepted);
        json_object_set_new(o, "duplicates", dups);
        char *body = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        tp_http_respond_json(req, 202, body);
        free(body);
        free(ctx);
        return;
    }
    /* Nothing was journaled: the signature is forgotten, so a refused
     * request leaves no trace and the producer may send the same signed
     * request again after a 503 (best effort: with Redis gone, it signs
     * anew). */
    if (ctx->replay_key[0])
        tp_store_command(ctx->api->store, forgot_cb, NULL, "DEL %s", ctx->replay_key);
    if (outcome == TP_JOURNAL_REJECTED) {
        size_t i;
        const tp_event_error_t *err = tp_journal_batch_error(batch, &i);
        bad_event(ctx->api, req, ctx->batch, i, err);
    } else {
        const char *msg = outcome == TP_JOURNAL_BUSY ? "intake is overloaded, retry later"
                          : outcome == TP_JOURNAL_BACKLOGGED
                              ? "a service is behind and the journal is full, slow down"
                              : "journal unavailable, retry later";
        char body[128];
        snprintf(body, sizeof body, "{\"error\":\"%s\"}", msg);
        tp_http_respond(req, outcome == TP_JOURNAL_BACKLOGGED ? 429 : 503,
                        "application/json", body, strlen(body), "Retry-After: 1\r\n");
    }
    free(ctx);
}

/* Parses and validates the body into a batch (caller owns it); NULL when
 * refused (answered 400, or 403 for a derived event `client` may not
 * post). `*is_batch`: the body was {"events": [...]}. */
static tp_journal_batch_t *events_parse(tp_api_t *self, tp_http_request_t *req,
                                        const tp_auth_client_t *client, int *is_batch) {
    size_t len;
    const char *body = tp_http_body(req, &len);
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[256];
        snprintf(msg, sizeof msg, "malformed JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        respond_error(req, 400, msg, "");
        return NULL;
    }
    json_t *list = NULL;
    int batch = 0;
    if (json_is_object(root) && json_object_get(root, "events") &&
        !json_object_get(root, "type")) {
        list = json_object_get(root, "events");
        batch = 1;
        if (!json_is_array(list) || json_array_size(list) == 0 ||
            json_array_size(list) > self->max_batch) {
            char msg[128];
            snprintf(msg, sizeof msg,
                     "events: must be an array of 1 to %zu events",
                     self->max_batch);
            respond_error(req, 400, msg, "events");
            json_decref(root);
            return NULL;
        }
    } else if (!json_is_object(root)) {
        respond_error(req, 400, "body must be an event object or {\"events\":[...]}", "");
        json_decref(root);
        return NULL;
    }
    size_t n = batch ? json_array_size(list) : 1;
    tp_journal_batch_t *b = tp_journal_batch_new(self->journal, n);
    for (size_t i = 0; i < n; i++) {
        const json_t *obj = batch ? json_array_get(list, i) : root;
        tp_event_t ev;
        tp_event_error_t err;
        tp_event_init(&ev);
        if (!json_is_object(obj)) {
            snprintf(err.field, sizeof err.field, "%s", "");
            snprintf(err.message, sizeof err.message, "must be an event object");
            bad_event(self, req, batch, i, &err);
            goto fail;
        }
        if (tp_event_from_json(&ev, obj, &err) < 0) {
            tp_event_clear(&ev);
            bad_event(self, req, batch, i, &err);
            goto fail;
        }
        if (derived_check(client, &ev, &err) < 0) {
            tp_event_clear(&ev);
            event_refused(self, req, 403, batch, i, &err);
            goto fail;
        }
        if (tp_journal_batch_add(b, &ev, &err) < 0) {
            tp_event_clear(&ev);
            bad_event(self, req, batch, i, &err);
            goto fail;
        }
    }
    json_decref(root);
    *is_batch = batch;
    return b;
fail:
    tp_journal_batch_destroy(&b);
    json_decref(root);
    return NULL;
}

/* Journals `b` (taken) and answers `req` once Redis has it. `replay_key`:
 * the remembered signature of a signed request, or "". */
static void events_submit(tp_api_t *self, tp_http_request_t *req,
                          tp_journal_batch_t *b, int is_batch,
                          const char *replay_key) {
    post_ctx_t *ctx = malloc(sizeof *ctx);
    if (!ctx) abort();
    ctx->api = self;
    ctx->req = req;
    ctx->batch = is_batch;
    snprintf(ctx->replay_key, sizeof ctx->replay_key, "%s", replay_key);
    tp_journal_submit(b, journaled_cb, ctx);
}

static void post_events(tp_api_t *self, tp_http_request_t *req,
                        const tp_auth_client_t *client) {
    int is_batch;
    tp_journal_batch_t *b = events_parse(self, req, client, &is_batch);
    if (b) events_submit(self, req, b, is_batch, "");
}

/* ---- the checks before a request is served ---- */

/* {"error": why}, allocated. */
static char *error_json(const char *why) {
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(why));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!body) abort();
    return body;
}

static void refuse_401(tp_http_request_t *req, const char *why,
                       const char *challenge) {
    char *body = error_json(why);
    tp_http_respond(req, 401, "application/json", body, strlen(body), challenge);
    free(body);
}

/* The 403 for a key without `scope`, allocated (logged). */
static char *scope_refusal(tp_http_request_t *req, const tp_auth_client_t *client,
                           tp_scope_t scope) {
    const char *name = tp_auth_scope_name(scope);
    tp_log_info("api: %s: integration %s lacks scope %s for %s %s",
                tp_http_peer(req), tp_auth_client_name(client), name,
                tp_http_method(req), tp_http_path(req));
    char msg[160];
    snprintf(msg, sizeof msg, "this API key lacks the scope %s", name);
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    json_object_set_new(o, "scope", json_string(name));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!body) abort();
    return body;
}

static void refuse_403(tp_http_request_t *req, const tp_auth_client_t *client,
                       tp_scope_t scope) {
    char *body = scope_refusal(req, client, scope);
    tp_http_respond_json(req, 403, body);
    free(body);
}

/* Takes a token; answers 429 and returns -1 when the bucket is empty. */
static int rate_limited(tp_api_t *self, tp_http_request_t *req,
                        tp_auth_client_t *client) {
    int wait_s;
    if (tp_auth_admit(client, uv_now(self->loop), &wait_s) == 0) return 0;
    tp_log_debug("api: integration %s over its rate limit", tp_auth_client_name(client));
    char headers[48], body[96];
    snprintf(headers, sizeof headers, "Retry-After: %d\r\n", wait_s);
    int n = snprintf(body, sizeof body,
                     "{\"error\":\"rate limit exceeded, retry after %d s\"}", wait_s);
    tp_http_respond(req, 429, "application/json", body, (size_t)n, headers);
    return -1;
}

typedef struct replay_ctx {
    tp_api_t *api;
    tp_http_request_t *req;
    const tp_auth_client_t *client;
    tp_journal_batch_t *batch; /* owned until submitted */
    int is_batch;
    char key[REPLAY_KEY_MAX];
} replay_ctx_t;

static void remembered_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    replay_ctx_t *ctx = arg;
    if (r && r->type == REDIS_REPLY_STATUS) { /* OK: first time seen */
        events_submit(ctx->api, ctx->req, ctx->batch, ctx->is_batch, ctx->key);
        free(ctx);
        return;
    }
    tp_journal_batch_destroy(&ctx->batch);
    if (!r || r->type != REDIS_REPLY_NIL) {
        static const char body[] = "{\"error\":\"journal unavailable, retry later\"}";
        tp_http_respond(ctx->req, 503, "application/json", body, sizeof body - 1,
                        "Retry-After: 1\r\n");
    } else {
        tp_log_info("api: %s: integration %s: replayed signature refused",
                    tp_http_peer(ctx->req), tp_auth_client_name(ctx->client));
        refuse_401(ctx->req,
                   "X-TP-Signature: already used (a replay); sign each request anew",
                   "WWW-Authenticate: TP-HMAC-SHA256\r\n");
    }
    free(ctx);
}

/* A signed POST: checks the MAC and the window, the rate limit (after the
 * MAC, so that a stolen Bearer key without the secret cannot spend the
 * integration's tokens) and the body, then remembers the MAC in Redis (SET NX, shared by every intake
 * instance) before the events go on; a MAC seen before is a replay. A
 * request refused on the way leaves nothing in Redis. */
static void post_signed(tp_api_t *self, tp_http_request_t *req,
                        tp_auth_client_t *client) {
    size_t len;
    const char *body = tp_http_body(req, &len);
    unsigned char mac[TP_AUTH_MAC_BYTES];
    char why[200];
    if (tp_auth_verify(client, tp_http_header(req, TP_AUTH_TIMESTAMP_HEADER),
                       tp_http_header(req, TP_AUTH_SIGNATURE_HEADER), body, len,
                       (int64_t)time(NULL), mac, why, sizeof why) < 0) {
        tp_log_info("api: %s: integration %s: signature refused: %s",
                    tp_http_peer(req), tp_auth_client_name(client), why);
        tp_lockout_fail(self->lockout, tp_http_peer(req), uv_now(self->loop));
        refuse_401(req, why, "WWW-Authenticate: TP-HMAC-SHA256\r\n");
        return;
    }
    if (rate_limited(self, req, client) < 0) return;
    int is_batch;
    tp_journal_batch_t *batch = events_parse(self, req, client, &is_batch);
    if (!batch) return;
    char hex[2 * TP_AUTH_MAC_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    replay_ctx_t *ctx = malloc(sizeof *ctx);
    if (!ctx) abort();
    ctx->api = self;
    ctx->req = req;
    ctx->client = client;
    ctx->batch = batch;
    ctx->is_batch = is_batch;
    tp_key(ctx->key, sizeof ctx->key, tp_store_ns(self->store), "replay:%s", hex);
    long long ttl = 2 * (long long)tp_auth_client_window(client) + 1;
    if (tp_store_command(self->store, remembered_cb, ctx, "SET %s 1 NX EX %lld",
                         ctx->key, ttl) < 0) {
        tp_journal_batch_destroy(&ctx->batch);
        free(ctx);
        static const char unavailable[] = "{\"error\":\"journal unavailable, retry later\"}";
        tp_http_respond(req, 503, "application/json", unavailable,
                        sizeof unavailable - 1, "Retry-After: 1\r\n");
    }
}

/* ---- dispatch: who, what scope, how often, then the resource ---- */

void tp_api_check_headers(tp_http_request_t *req, void *arg, tp_http_early_t *answer) {
    tp_api_t *self = arg;
    const char *path = tp_http_path(req);
    if (strcmp(path, "/healthz") == 0) return;
    int wait_s;
    if (tp_lockout_check(self->lockout, tp_http_peer(req), uv_now(self->loop), &wait_s) < 0) {
        /* too many failures from this address: its key is not even looked at */
        char why[120];
        snprintf(why, sizeof why,
                 "too many failed authentications from this address, retry after %d s", wait_s);
        answer->status = 429;
        answer->json = error_json(why);
        snprintf(answer->extra, sizeof answer->extra, "Retry-After: %d\r\n", wait_s);
        return;
    }
    tp_auth_client_t *client =
        tp_auth_find(self->auth, tp_http_header(req, "authorization"));
    if (!client) {
        tp_log_debug("api: %s: missing or unknown API key", tp_http_peer(req));
        tp_lockout_fail(self->lockout, tp_http_peer(req), uv_now(self->loop));
        answer->status = 401;
        answer->json = error_json("missing or unknown API key");
        snprintf(answer->extra, sizeof answer->extra, "WWW-Authenticate: Bearer\r\n");
        return;
    }
    tp_scope_t scope = tp_auth_scope_for(tp_http_method(req), path);
    if (scope != TP_SCOPE_NONE && !tp_auth_client_allows(client, scope)) {
        answer->status = 403;
        answer->json = scope_refusal(req, client, scope);
        return;
    }
    tp_http_set_user(req, client); /* the handler need not look it up again */
}

void tp_api_handle(tp_http_request_t *req, void *arg) {
    tp_api_t *self = arg;
    const char *method = tp_http_method(req);
    const char *path = tp_http_path(req);
    if (strcmp(path, "/healthz") == 0) {
        if (tp_query_handle(self->query, req) == 0) return;
    }
    tp_auth_client_t *client = tp_http_user(req); /* tp_api_check_headers found it */
    if (!client) client = tp_auth_find(self->auth, tp_http_header(req, "authorization"));
    if (!client) {
        tp_log_debug("api: %s: missing or unknown API key", tp_http_peer(req));
        refuse_401(req, "missing or unknown API key", "WWW-Authenticate: Bearer\r\n");
        return;
    }
    tp_scope_t scope = tp_auth_scope_for(method, path);
    if (scope != TP_SCOPE_NONE && !tp_auth_client_allows(client, scope)) {
        refuse_403(req, client, scope);
        return;
    }
    int events = strcmp(path, "/v1/events") == 0;
    if (events && strcmp(method, "POST") == 0 && tp_auth_client_signs(client)) {
        post_signed(self, req, client); /* rate limit after the signature */
        return;
    }
    if (rate_limited(self, req, client) < 0) return;
    if (events) {
        if (strcmp(method, "POST") != 0)
            respond_error(req, 405, "use POST", NULL);
        else
            post_events(self, req, client);
        return;
    }
    if (scope != TP_SCOPE_NONE && strcmp(method, "GET") == 0 &&
        tp_query_handle(self->query, req) == 0)
        return;
    respond_error(req, 404, "no such resource", NULL);
}
