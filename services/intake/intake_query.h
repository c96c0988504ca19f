/* intake_query.h: the read side of intake's API: the shared customer
 * record (R-SHARED-1) and its paged timeline, the deal pipeline of an owner
 * or a team (R-VALUE-1), the customers at risk (R-HEALTH-1), lookup by
 * phone or email (screen pop, R-SHARED-2), a user's in-app inbox, and
 * /healthz. Owns the read scripts; reads only, never writes a key.
 *
 * The code is split by noun: intake_query.c (dispatch, the record, lookup,
 * inbox), intake_timeline.c (the paged timeline), intake_lists.c (the
 * pipeline and the at-risk list) and intake_tickets.c (tickets). The second half of this header is what
 * they share; only tp_query_new / _destroy / _handle are for other
 * modules. */
#ifndef INTAKE_QUERY_H
#define INTAKE_QUERY_H

#include <jansson.h>
#include <stddef.h>

#include "tp/http.h"
#include "tp/store.h"

typedef struct tp_query tp_query_t;

/* `store` borrowed. `default_cc` copied (phone country code). */
tp_query_t *tp_query_new(tp_store_t *store, const char *default_cc);
void tp_query_destroy(tp_query_t **self_p);

/* Answers GET requests it knows; returns 0 when it took `req` (it will be
 * answered), -1 when the path is not one of its own. */
int tp_query_handle(tp_query_t *self, tp_http_request_t *req);

/* ---- shared by intake_query.c, intake_timeline.c, intake_lists.c ---- */

/* Most rows one list answer carries (pipeline, at-risk list). */
#define TP_QUERY_LIST_MAX 500

/* Answers `o` (taken) as JSON. */
void tp_query_respond(tp_http_request_t *req, int status, json_t *o);
/* Answers {"error": message, "field": field}; field NULL: left out. */
void tp_query_error(tp_http_request_t *req, int status, const char *message,
                    const char *field);
/* 503: the store did not answer (reply NULL or an error reply). */
void tp_query_unavailable(tp_http_request_t *req);

/* A customer id as the schema allows it in keys (A-Z a-z 0-9 . _ : @ + -,
 * 1 to TP_CUSTOMER_MAX bytes). */
int tp_query_id_ok(const char *s);
/* A name that keys a list (owner, team): 1 to `max` bytes of valid UTF-8
 * without control characters. */
int tp_query_name_ok(const char *s, size_t max);

/* A flat field/value array reply (HGETALL, a stream entry's fields) as an
 * object of strings. */
json_t *tp_query_hash(const redisReply *r);
/* Stored text as a JSON number: an integer when it is one, else a finite
 * decimal; NULL when it is neither (or absent: r NULL / not a string). */
json_t *tp_query_number(const char *s, size_t len);
json_t *tp_query_reply_number(const redisReply *r);
/* The string member `key` of `o` as a number, else null. */
json_t *tp_query_field_number(const json_t *o, const char *key);
/* The string member `key` of `o` (a new reference), else null. */
json_t *tp_query_field_string(const json_t *o, const char *key);
/* One stream entry [id, [field, value, ...]] as its fields plus "at" (the
 * stream id); NULL when the reply is not shaped like one. */
json_t *tp_query_stream_entry(const redisReply *entry);
/* A reminder as answered: its stored record (JSON text of `len` bytes)
 * with its id and customer, which the storage keeps out of the record
 * (tp/keys.h). NULL when the record does not parse. */
json_t *tp_query_reminder(const char *id, const char *record, size_t len);

/* The paged timeline: GET /v1/customers/{id}/timeline (intake_timeline.c).
 * Registers its script with `store`; returns the handle or -1. */
int tp_timeline_script(tp_store_t *store);
void tp_timeline_get(tp_store_t *store, int script, tp_http_request_t *req,
                     const char *customer);

/* GET /v1/pipeline and GET /v1/customers?at_risk=1 (intake_lists.c). */
int tp_pipeline_script(tp_store_t *store);
void tp_pipeline_get(tp_store_t *store, int script, tp_http_request_t *req);
int tp_at_risk_script(tp_store_t *store);
void tp_at_risk_get(tp_store_t *store, int script, tp_http_request_t *req);
/* GET /v1/tickets/{id} and GET /v1/tickets?status=&department=&owner=
 * &customer=&breached=&limit=&cursor= (intake_tickets.c). */
int tp_tickets_script(tp_store_t *store);
int tp_tickets_list_script(tp_store_t *store);
void tp_ticket_get(tp_store_t *store, int script, tp_http_request_t *req, const char *id);
void tp_tickets_get(tp_store_t *store, int script, tp_http_request_t *req);
/* GET /v1/reminders?owner=&due_before= (intake_reminders.c). */
void tp_reminders_get(tp_store_t *store, tp_http_request_t *req);

#endif
