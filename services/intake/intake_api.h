/* intake_api.h: intake's HTTP API. Owns request dispatch, authentication
 * (Bearer API keys from [intake] api_keys, compared in constant time, never
 * logged) and the write path POST /v1/events: parse, validate every event,
 * journal the whole request, answer 202 only once Redis has it. Bad input
 * is answered 400 naming the field, and nothing of that request is
 * journaled. Reads are delegated to intake_query. */
#ifndef INTAKE_API_H
#define INTAKE_API_H

#include "intake_journal.h"
#include "intake_query.h"
#include "tp/config.h"
#include "tp/http.h"

typedef struct tp_api tp_api_t;

/* Everything borrowed for the API's life. Caller owns the result; NULL
 * when the configuration is unusable (logged). */
tp_api_t *tp_api_new(tp_config_t *cfg, tp_journal_t *journal,
                     tp_query_t *query);
void tp_api_destroy(tp_api_t **self_p);

/* The tp_http_handler_cb of intake's server; `arg` is the tp_api_t. */
void tp_api_handle(tp_http_request_t *req, void *arg);

#endif
