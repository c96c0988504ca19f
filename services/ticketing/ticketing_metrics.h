/* ticketing_metrics.h: ticketing's gauges on /metrics: tp_tickets{state}
 * (tickets by status, every instance, from the status indexes),
 * tp_sla_warnings_total (owner warnings sent by this instance) and
 * tp_sla_breaches_total (deadlines breached by this instance). Owns
 * nothing: families live in the exporter's registry. */
#ifndef TICKETING_METRICS_H
#define TICKETING_METRICS_H

#include "ticketing_escalate.h"
#include "ticketing_sla.h"
#include "tp/exporter.h"

/* Registers the families and the reads of tickets:status:<status>
 * (refreshed by the exporter's timer). `sla` and `escalate` are borrowed
 * until the exporter is destroyed. Returns 0 or -1. */
int tp_ticketing_metrics_register(tp_exporter_t *exporter, tp_sla_t *sla,
                                  tp_escalate_t *escalate);

#endif
