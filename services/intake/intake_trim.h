/* intake_trim.h: keeps the journal bounded. Every `interval` it trims the
 * entries that are older than `retention` AND that every consuming service
 * has reconciled past (their cursors), so nothing still owed to a service
 * is ever trimmed: a service that is down holds the journal until it is
 * back. Owns its timer and the trim script; never touches anything else. */
#ifndef INTAKE_TRIM_H
#define INTAKE_TRIM_H

#include <stdint.h>
#include <uv.h>

#include "tp/store.h"

typedef struct tp_trim tp_trim_t;

/* `store` borrowed. Caller owns the result. */
tp_trim_t *tp_trim_new(uv_loop_t *loop, tp_store_t *store, int64_t retention_ms,
                       int64_t interval_ms);
/* Destroy the store first, then this. */
void tp_trim_destroy(tp_trim_t **self_p);

#endif
