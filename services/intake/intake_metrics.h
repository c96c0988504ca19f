/* intake_metrics.h: intake's own metrics: HTTP requests by status code
 * (tp_http_requests_total{code}), events by outcome
 * (tp_intake_events_total{outcome}: accepted, duplicate, rejected) and
 * batches waiting for Redis (tp_intake_pending).
 *
 * Owns nothing but the families it registers in the borrowed registry and
 * the journal it reads at scrape (its in-memory counters, no Redis). The
 * journal's length is the exporter's (tp_journal_length). */
#ifndef INTAKE_METRICS_H
#define INTAKE_METRICS_H

#include "intake_journal.h"
#include "tp/http.h"
#include "tp/metrics.h"

/* Registers the families; `journal` is borrowed until the registry is
 * destroyed or the journal is (whichever first: destroy the journal after
 * the exporter's listener, so no scrape reads it late). Returns the series
 * counting rejected events (borrowed from the registry; NULL when
 * `metrics` is NULL). */
tp_series_t *tp_intake_metrics_register(tp_metrics_t *metrics, tp_journal_t *journal);
/* Counts every answer of `http` by its status code. */
void tp_intake_metrics_watch_http(tp_metrics_t *metrics, tp_http_server_t *http);

#endif
