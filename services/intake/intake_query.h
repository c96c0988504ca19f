/* intake_query.h: the read side of intake's API: the shared customer
 * record, lookup by phone or email (screen pop, R-SHARED-2), a user's
 * in-app inbox, and /healthz. Owns the read scripts; reads only, never
 * writes a key. */
#ifndef INTAKE_QUERY_H
#define INTAKE_QUERY_H

#include "tp/http.h"
#include "tp/store.h"

typedef struct tp_query tp_query_t;

/* `store` borrowed. `default_cc` copied (phone country code). */
tp_query_t *tp_query_new(tp_store_t *store, const char *default_cc);
void tp_query_destroy(tp_query_t **self_p);

/* Answers GET requests it knows; returns 0 when it took `req` (it will be
 * answered), -1 when the path is not one of its own. */
int tp_query_handle(tp_query_t *self, tp_http_request_t *req);

#endif
