/* intake_metrics.c: HTTP answers by status code and events by outcome, for
 * intake's /metrics. Reads the journal's in-memory counters at scrape;
 * never calls Redis. */
#include "intake_metrics.h"

#include <stdio.h>

static void collect_events(tp_metric_t *m, void *arg) {
    tp_journal_stats_t st;
    tp_journal_stats(arg, &st);
    tp_series_set(tp_metric_at(m, "accepted"), (double)st.accepted);
    tp_series_set(tp_metric_at(m, "duplicate"), (double)st.duplicates);
}

static void collect_pending(tp_metric_t *m, void *arg) {
    tp_journal_stats_t st;
    tp_journal_stats(arg, &st);
    tp_series_set(tp_metric_at(m), st.pending);
}

tp_series_t *tp_intake_metrics_register(tp_metrics_t *metrics, tp_journal_t *journal) {
    tp_metric_on_collect(tp_metrics_gauge(metrics, "tp_intake_pending",
                                          "Batches of events waiting for Redis to journal "
                                          "them (beyond [intake] max_pending: 503).",
                                          NULL),
                         collect_pending, journal);
    tp_metric_t *events = tp_metrics_counter(
        metrics, "tp_intake_events_total",
        "Events by outcome: accepted (journaled), duplicate (an id seen before), rejected "
        "(refused for a field, over HTTP or the ZeroMQ ingress).",
        "outcome");
    tp_metric_on_collect(events, collect_events, journal);
    tp_metric_at(events, "accepted");
    tp_metric_at(events, "duplicate");
    return tp_metric_at(events, "rejected");
}

static void http_answered(int status, void *arg) {
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    tp_series_inc(tp_metric_at(arg, code));
}

void tp_intake_metrics_watch_http(tp_metrics_t *metrics, tp_http_server_t *http) {
    tp_metric_t *requests = tp_metrics_counter(metrics, "tp_http_requests_total",
                                               "HTTP answers of the API by status code.",
                                               "code");
    if (requests) tp_http_server_on_status(http, http_answered, requests);
}
