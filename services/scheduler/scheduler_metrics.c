/* scheduler_metrics.c: reminders pending, due, fired and late, for
 * /metrics. The Redis numbers come from the exporter's refresh reads (one
 * ZCARD and one ZCOUNT per bucket), the rest from tp_fire_stats at
 * scrape; nothing here calls Redis itself. */
#include "scheduler_metrics.h"

#include <stdio.h>

#include "tp/keys.h"

static void collect_fired(tp_metric_t *m, void *arg) {
    tp_fire_stats_t st;
    tp_fire_stats(arg, &st);
    tp_series_set(tp_metric_at(m), (double)st.fired);
}

static void collect_late(tp_metric_t *m, void *arg) {
    tp_fire_stats_t st;
    tp_fire_stats(arg, &st);
    tp_series_set(tp_metric_at(m), (double)st.late);
}

int tp_sched_metrics_register(tp_exporter_t *exporter, tp_fire_t *fire) {
    tp_metrics_t *m = tp_exporter_metrics(exporter);
    if (!m) return 0;
    tp_series_t *pending = tp_metric_at(tp_metrics_gauge(
        m, "tp_reminders_pending", "Reminders planned and not yet fired (every instance).",
        NULL));
    tp_series_t *due = tp_metric_at(tp_metrics_gauge(
        m, "tp_reminders_due", "Reminders whose time has come, not yet fired.", NULL));
    tp_metric_on_collect(tp_metrics_counter(m, "tp_reminders_fired_total",
                                            "Reminders fired by this instance.", NULL),
                         collect_fired, fire);
    tp_metric_on_collect(tp_metrics_counter(m, "tp_reminders_late_total",
                                            "Reminders this instance fired late (more than "
                                            "its lateness bound after their time).",
                                            NULL),
                         collect_late, fire);
    const char *ns = tp_store_ns(tp_exporter_store(exporter));
    for (int b = 0; b < TP_REMINDER_BUCKETS; b++) {
        char key[128];
        tp_key(key, sizeof key, ns, "{r%d}:due", b);
        const char *card[] = {"ZCARD", key};
        const char *count[] = {"ZCOUNT", key, "-inf", TP_EXPORTER_NOW};
        if (tp_exporter_track(exporter, pending, 2, card) < 0 ||
            tp_exporter_track(exporter, due, 4, count) < 0)
            return -1;
    }
    return 0;
}
