/* intake_query.h: the read side of intake's API: the shared customer
 * record (R-SHARED-1) and its paged timeline, the deal pipeline of an owner
 * or a team (R-VALUE-1), the customers at risk (R-HEALTH-1), lookup by
 * phone or email (screen pop, R-SHARED-2), a user's in-app inbox, and
 * /healthz. Owns the read scripts; reads only, never writes a key.
 *
 * The code is split by noun: intake_query.c (dispatch, the record, lookup,
 * inbox), intake_timeline.c (the paged timeline), intake_lists.c (the
 * pipeline and the at-risk list), intake_reminders.c and intake_tickets.c;
 * intake_reply.c is what they answer with. Only tp_query_new / _destroy /
 * _handle are for other modules. */
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

/* ---- the query modules, dispatched by tp_query_handle; what they
 * answer with is intake_reply.h ---- */

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
