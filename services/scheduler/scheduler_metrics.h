/* scheduler_metrics.h: the scheduler's gauges on /metrics:
 * tp_reminders_pending (every planned reminder not yet fired, across
 * instances), tp_reminders_due (those whose time has come and which are not
 * fired yet), tp_reminders_late_total and tp_reminders_fired_total (fired
 * by this instance; late: more than the scheduler's lateness bound after
 * their time), tp_plan_recomputed_total (applies this instance computed
 * again because the customer's book changed meanwhile). Owns nothing:
 * families live in the exporter's registry. */
#ifndef SCHEDULER_METRICS_H
#define SCHEDULER_METRICS_H

#include "scheduler_fire.h"
#include "scheduler_plan.h"
#include "tp/exporter.h"

/* Registers the families and their reads of the shards' indexes
 * ({s<n>}:r:due, refreshed by the exporter's timer). `fire` and `plan`
 * are borrowed until the exporter is destroyed. Returns 0 or -1. */
int tp_sched_metrics_register(tp_exporter_t *exporter, tp_fire_t *fire, tp_plan_t *plan);

#endif
