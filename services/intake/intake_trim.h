/* intake_trim.h: keeps the journal bounded. Every `interval` it trims the
 * entries that are older than `retention` AND that every consuming service
 * has reconciled past (their cursors), so nothing still owed to a service
 * is ever trimmed: a service that is down holds the journal until it is
 * back. Owns its timer and the trim script; never touches anything else. */
#ifndef INTAKE_TRIM_H
#define INTAKE_TRIM_H

#include <stdint.h>
#include <uv.h>

#include "intake_journal.h"
#include "tp/store.h"

typedef struct tp_trim tp_trim_t;

/* `store` borrowed. Caller owns the result. */
typedef struct tp_trim_options {
    int64_t retention_ms;     /* keep at least this much history */
    int64_t interval_ms;      /* trim this often */
    int64_t max_journal;      /* entries; more with a consumer behind: refuse (0: no bound) */
    int64_t backlog_check_ms; /* how often the bound is checked */
} tp_trim_options_t;

/* `store` and `journal` are borrowed. Caller owns the result. */
tp_trim_t *tp_trim_new(uv_loop_t *loop, tp_store_t *store, tp_journal_t *journal,
                       const tp_trim_options_t *opts);
/* Destroy the store first, then this. */
void tp_trim_destroy(tp_trim_t **self_p);

#endif
