/* intake_api.h: intake's HTTP API. Owns request dispatch, the checks every
 * request passes (API key of an integration: 401; its scopes: 403; request
 * signature and replay, for integrations that sign: 401; rate limit: 429;
 * rules in intake_auth), and the write path POST /v1/events: parse,
 * validate every event, journal the whole request, answer 202 only once
 * Redis has it. Bad input
 * is answered 400 naming the field, and nothing of that request is
 * journaled. Reads are delegated to intake_query. */
#ifndef INTAKE_API_H
#define INTAKE_API_H

#include "intake_journal.h"
#include "intake_query.h"
#include "tp/config.h"
#include "tp/http.h"
#include "tp/metrics.h"
#include "tp/store.h"

typedef struct tp_api tp_api_t;

/* Reads [intake] keys_file / api_keys and the limits. Everything borrowed
 * for the API's life (the store remembers signatures seen). Caller owns
 * the result; NULL when the configuration is unusable (logged, naming the
 * file and line or key). Destroy after the store: its pending callbacks
 * reach the API. */
tp_api_t *tp_api_new(tp_config_t *cfg, uv_loop_t *loop, tp_store_t *store,
                     tp_journal_t *journal, tp_query_t *query);
void tp_api_destroy(tp_api_t **self_p);
/* Counts events refused for a field (400, 403) in `rejected` (borrowed,
 * NULL: not counted). */
void tp_api_count_rejected(tp_api_t *self, tp_series_t *rejected);

/* intake's HTTP server options from [intake]: listen, port, max_body,
 * max_header, header_timeout, body_timeout, idle_timeout (read_timeout:
 * the default of header_timeout), max_connections. Strings borrowed from `cfg`. */
void tp_api_http_options(tp_config_t *cfg, tp_http_options_t *opts);

/* The tp_http_headers_cb of intake's server (`arg` the tp_api_t): a
 * request without a known API key (401) or whose key lacks the scope of
 * its path (403) is refused from its headers, before its body is read,
 * and its connection closed. tp_api_handle checks the same again. */
void tp_api_check_headers(tp_http_request_t *req, void *arg, tp_http_early_t *answer);
/* The tp_http_handler_cb of intake's server; `arg` is the tp_api_t. */
void tp_api_handle(tp_http_request_t *req, void *arg);

#endif
