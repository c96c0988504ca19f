/* intake_api.c: dispatch, authentication and POST /v1/events. */
#include "intake_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/log.h"

#define API_KEYS_MAX 32
#define API_KEY_LEN_MAX 256

struct tp_api {
    tp_journal_t *journal;
    tp_query_t *query;
    char keys[API_KEYS_MAX][API_KEY_LEN_MAX + 1];
    size_t nkeys;
    size_t max_batch;
};

tp_api_t *tp_api_new(tp_config_t *cfg, tp_journal_t *journal,
                     tp_query_t *query) {
    tp_api_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->journal = journal;
    self->query = query;
    self->max_batch =
        (size_t)tp_config_int(cfg, "intake", "max_batch", 1000, 1, 100000);
    const char *keys = tp_config_str(cfg, "intake", "api_keys", "");
    const char *p = keys;
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        size_t n = strcspn(p, ", ");
        if (n == 0) break;
        if (n > API_KEY_LEN_MAX || self->nkeys == API_KEYS_MAX) {
            tp_log_error("intake.api_keys: at most %d keys of %d bytes",
                         API_KEYS_MAX, API_KEY_LEN_MAX);
            free(self);
            return NULL;
        }
        memcpy(self->keys[self->nkeys++], p, n);
        p += n;
    }
    if (self->nkeys == 0) {
        tp_log_error("intake.api_keys: no API key configured");
        free(self);
        return NULL;
    }
    return self;
}

void tp_api_destroy(tp_api_t **self_p) {
    if (!self_p || !*self_p) return;
    memset(*self_p, 0, sizeof **self_p); /* keys out of memory */
    free(*self_p);
    *self_p = NULL;
}

/* Compares in time independent of where the strings differ. */
static int key_equal(const char *given, size_t len, const char *key) {
    size_t klen = strlen(key);
    unsigned char diff = (unsigned char)(len != klen);
    for (size_t i = 0; i < API_KEY_LEN_MAX; i++) {
        unsigned char a = i < len ? (unsigned char)given[i] : 0;
        unsigned char b = i < klen ? (unsigned char)key[i] : 0;
        diff |= a ^ b;
    }
    return diff == 0;
}

static int authorized(const tp_api_t *self, tp_http_request_t *req) {
    const char *h = tp_http_header(req, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    const char *given = h + 7;
    size_t len = strlen(given);
    if (len > API_KEY_LEN_MAX) return 0;
    int ok = 0;
    for (size_t i = 0; i < self->nkeys; i++)
        ok |= key_equal(given, len, self->keys[i]);
    return ok;
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

static void bad_event(tp_http_request_t *req, int batch, size_t i,
                      const tp_event_error_t *err) {
    char field[160], message[400];
    if (batch)
        snprintf(field, sizeof field, "events[%zu]%s%s", i,
                 err->field[0] ? "." : "", err->field);
    else
        snprintf(field, sizeof field, "%s", err->field);
    snprintf(message, sizeof message, "%s%s%s", field, field[0] ? ": " : "",
             err->message);
    respond_error(req, 400, message, field);
}

typedef struct post_ctx {
    tp_http_request_t *req;
    int batch;
} post_ctx_t;

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
    } else if (outcome == TP_JOURNAL_REJECTED) {
        size_t i;
        const tp_event_error_t *err = tp_journal_batch_error(batch, &i);
        bad_event(req, ctx->batch, i, err);
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

static void post_events(tp_api_t *self, tp_http_request_t *req) {
    size_t len;
    const char *body = tp_http_body(req, &len);
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[256];
        snprintf(msg, sizeof msg, "malformed JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        respond_error(req, 400, msg, "");
        return;
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
            return;
        }
    } else if (!json_is_object(root)) {
        respond_error(req, 400, "body must be an event object or {\"events\":[...]}", "");
        json_decref(root);
        return;
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
            bad_event(req, batch, i, &err);
            goto fail;
        }
        if (tp_event_from_json(&ev, obj, &err) < 0 ||
            tp_journal_batch_add(b, &ev, &err) < 0) {
            tp_event_clear(&ev);
            bad_event(req, batch, i, &err);
            goto fail;
        }
    }
    json_decref(root);
    post_ctx_t *ctx = malloc(sizeof *ctx);
    if (!ctx) abort();
    ctx->req = req;
    ctx->batch = batch;
    tp_journal_submit(b, journaled_cb, ctx);
    return;
fail:
    tp_journal_batch_destroy(&b);
    json_decref(root);
}

void tp_api_handle(tp_http_request_t *req, void *arg) {
    tp_api_t *self = arg;
    const char *method = tp_http_method(req);
    const char *path = tp_http_path(req);
    if (strcmp(path, "/healthz") == 0) {
        if (tp_query_handle(self->query, req) == 0) return;
    }
    if (!authorized(self, req)) {
        static const char body[] = "{\"error\":\"missing or unknown API key\"}";
        tp_http_respond(req, 401, "application/json", body, sizeof body - 1,
                        "WWW-Authenticate: Bearer\r\n");
        return;
    }
    if (strcmp(path, "/v1/events") == 0) {
        if (strcmp(method, "POST") != 0) {
            respond_error(req, 405, "use POST", NULL);
            return;
        }
        post_events(self, req);
        return;
    }
    if (strcmp(method, "GET") == 0 && tp_query_handle(self->query, req) == 0)
        return;
    respond_error(req, 404, "no such resource", NULL);
}
