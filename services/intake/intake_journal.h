/* intake_journal.h: appends accepted events to the journal, durably, once.
 *
 * Owns the journal and dedupe scripts, the customer resolution that happens
 * before an event is journaled (lead by phone or email, call by number,
 * ticket update by ticket id), and the coalescing of batches: every batch
 * submitted during one loop iteration goes to Redis in one script call, so
 * single-event requests share round trips. After Redis confirms, accepted
 * events are handed to the router. Never answers a producer itself, and
 * never reports an event as accepted before Redis has it. */
#ifndef INTAKE_JOURNAL_H
#define INTAKE_JOURNAL_H

#include <stddef.h>
#include <uv.h>

#include "intake_route.h"
#include "tp/event.h"
#include "tp/store.h"

typedef struct tp_journal tp_journal_t;
typedef struct tp_journal_batch tp_journal_batch_t;

typedef struct tp_journal_options {
    long long dedupe_ttl_s;  /* how long an event id is remembered */
    const char *default_cc;  /* phone country code, e.g. "86" */
    int max_pending;         /* batches waiting for Redis; beyond: busy */
    const char *departments; /* ticket departments, "a,b,c" ([ticketing]
                                departments); NULL: not checked */
} tp_journal_options_t;

/* Outcome of a batch: TP_JOURNAL_OK (every event journaled or found a
 * duplicate), _REJECTED (an event failed resolution; nothing journaled;
 * see tp_journal_batch_error), _UNAVAILABLE (Redis down or failed: the
 * producer retries; some events may be journaled and will then show as
 * duplicates), _BUSY (too much pending: retry later), _BACKLOGGED (the
 * journal holds more than its bound because a consumer is behind: slow
 * down; derived events from the services still go in). */
enum { TP_JOURNAL_OK = 0, TP_JOURNAL_REJECTED, TP_JOURNAL_UNAVAILABLE,
       TP_JOURNAL_BUSY, TP_JOURNAL_BACKLOGGED };

/* Runs once per submitted batch; the batch is borrowed until it returns,
 * then freed by the journal. */
typedef void (*tp_journal_done_cb)(tp_journal_batch_t *batch, int outcome,
                                   void *arg);

/* `store` and `router` are borrowed for the journal's life. Caller owns the
 * result. */
tp_journal_t *tp_journal_new(uv_loop_t *loop, tp_store_t *store,
                             tp_router_t *router,
                             const tp_journal_options_t *opts);
/* Queued batches complete with TP_JOURNAL_UNAVAILABLE. Destroy the store
 * first: batches in a script call complete when it fails their replies. */
void tp_journal_destroy(tp_journal_t **self_p);

/* A batch of up to `cap` events. Caller owns it until submit. */
tp_journal_batch_t *tp_journal_batch_new(tp_journal_t *self, size_t cap);
/* Takes ownership of what `ev` holds (ev is left cleared) and prepares it:
 * assigns an id when missing, a ticket id to a ticket.opened without one,
 * and checks that the customer is given or can be resolved. Returns 0, or
 * -1 with `err` filled (batch full, customer missing, address malformed);
 * `ev` is then left as it was. */
int tp_journal_batch_add(tp_journal_batch_t *batch, tp_event_t *ev,
                         tp_event_error_t *err);
/* Frees a batch that was never submitted. */
void tp_journal_batch_destroy(tp_journal_batch_t **batch_p);
/* Marks a batch of events derived by the services (the ZeroMQ ingress):
 * a backlog does not refuse it, as the consumers catching up emit them. */
void tp_journal_batch_internal(tp_journal_batch_t *batch);
/* Set while the journal is over its bound with a consumer behind (see
 * intake_trim): outside batches end TP_JOURNAL_BACKLOGGED meanwhile. */
void tp_journal_set_backlogged(tp_journal_t *self, int backlogged);
/* Takes ownership of the batch; `cb` runs exactly once, never before this
 * returns. */
void tp_journal_submit(tp_journal_batch_t *batch, tp_journal_done_cb cb,
                       void *arg);

/* Results, valid inside the done callback. */
size_t tp_journal_batch_count(const tp_journal_batch_t *batch);
const char *tp_journal_batch_id(const tp_journal_batch_t *batch, size_t i);
int tp_journal_batch_duplicate(const tp_journal_batch_t *batch, size_t i);
/* For TP_JOURNAL_REJECTED: which event and why. */
const tp_event_error_t *tp_journal_batch_error(const tp_journal_batch_t *batch,
                                               size_t *index);

typedef struct tp_journal_stats {
    unsigned long long accepted, duplicates, script_calls;
    int pending;
} tp_journal_stats_t;
void tp_journal_stats(const tp_journal_t *self, tp_journal_stats_t *out);

#endif
