/* ticketing_metrics.c: tickets by state, SLA warnings and breaches, for
 * /metrics. Ticket counts come from the exporter's refresh reads (ZCARD
 * of each status index), the counters from the SLA and escalation modules
 * at scrape; nothing here calls Redis itself. */
#include "ticketing_metrics.h"

#include "tp/keys.h"

/* The statuses of a ticket (the catalogue's ticket.updated status). */
static const char *const STATES[] = {"new",              "assigned", "in_progress",
                                     "waiting_customer", "resolved", "closed"};

static void collect_warnings(tp_metric_t *m, void *arg) {
    tp_series_set(tp_metric_at(m), (double)tp_escalate_warnings(arg));
}

static void collect_breaches(tp_metric_t *m, void *arg) {
    tp_series_set(tp_metric_at(m), (double)tp_sla_breaches(arg));
}

int tp_ticketing_metrics_register(tp_exporter_t *exporter, tp_sla_t *sla,
                                  tp_escalate_t *escalate) {
    tp_metrics_t *m = tp_exporter_metrics(exporter);
    if (!m) return 0;
    tp_metric_t *tickets = tp_metrics_gauge(m, "tp_tickets", "Tickets by status.", "state");
    tp_metric_on_collect(tp_metrics_counter(m, "tp_sla_warnings_total",
                                            "SLA owner warnings sent by this instance.", NULL),
                         collect_warnings, escalate);
    tp_metric_on_collect(tp_metrics_counter(m, "tp_sla_breaches_total",
                                            "SLA deadlines breached (sla.breached) by this "
                                            "instance.",
                                            NULL),
                         collect_breaches, sla);
    const char *ns = tp_store_ns(tp_exporter_store(exporter));
    for (size_t i = 0; i < sizeof STATES / sizeof *STATES; i++) {
        for (int n = 0; n < TP_SHARDS; n++) { /* summed over the shards */
            char key[128];
            tp_key_shard_key(key, sizeof key, ns, n, "tickets:status:%s", STATES[i]);
            const char *card[] = {"ZCARD", key};
            if (tp_exporter_track(exporter, tp_metric_at(tickets, STATES[i]), 2, card) < 0)
                return -1;
        }
    }
    return 0;
}
