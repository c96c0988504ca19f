/* scheduler_metrics.c: reminders pending, due, fired and late, for
 * /metrics. The Redis numbers come from the exporter's refresh reads (each
 * shard's pending count, and a read-only script counting what is due in
 * the shard's due groups), the rest from tp_fire_stats at scrape; nothing
 * here calls Redis itself. */
#include "scheduler_metrics.h"

#include <stdio.h>

#include "tp/keys.h"

/* KEYS[1] a shard's index of reminder groups ({s<n>}:r:due: group -> a
 * lower bound of its earliest due, in seconds); ARGV[1] now (ms). The
 * customers with a reminder due in the groups it names due, at most 256
 * groups a tick (a gauge, not a walk of a backlog). */
#define DUE_COUNT_LUA                                                          \
    "local n, now = 0, math.floor(tonumber(ARGV[1]) / 1000)\n"                 \
    "for _, g in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', now,"             \
    " 'BYSCORE', 'LIMIT', 0, 256)) do\n"                                       \
    "  n = n + redis.call('ZCOUNT', KEYS[1] .. ':' .. g, '-inf', now)\n"       \
    "end\n"                                                                    \
    "return n\n"

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

static void collect_recomputed(tp_metric_t *m, void *arg) {
    tp_series_set(tp_metric_at(m), (double)tp_plan_recomputed(arg));
}

int tp_sched_metrics_register(tp_exporter_t *exporter, tp_fire_t *fire, tp_plan_t *plan) {
    tp_metrics_t *m = tp_exporter_metrics(exporter);
    if (!m) return 0;
    tp_exporter_watch_store(exporter, tp_fire_claim_store(fire));
    tp_series_t *pending = tp_metric_at(tp_metrics_gauge(
        m, "tp_reminders_pending", "Reminders planned and not yet fired (every instance).",
        NULL));
    tp_series_t *due = tp_metric_at(tp_metrics_gauge(
        m, "tp_reminders_due",
        "Customers with a reminder whose time has come, not yet fired (each counts once).",
        NULL));
    tp_metric_on_collect(tp_metrics_counter(m, "tp_reminders_fired_total",
                                            "Reminders fired by this instance.", NULL),
                         collect_fired, fire);
    tp_metric_on_collect(tp_metrics_counter(m, "tp_reminders_late_total",
                                            "Reminders this instance fired late (more than "
                                            "its lateness bound after their time).",
                                            NULL),
                         collect_late, fire);
    tp_metric_on_collect(tp_metrics_counter(m, "tp_plan_recomputed_total",
                                            "Applies computed again because the customer's "
                                            "book changed since it was read (a firing, "
                                            "another instance).",
                                            NULL),
                         collect_recomputed, plan);
    const char *ns = tp_store_ns(tp_exporter_store(exporter));
    for (int n = 0; n < TP_SHARDS; n++) {
        char count_key[64], due_key[64];
        tp_key(count_key, sizeof count_key, ns, "{s%d}:r:count", n);
        tp_key(due_key, sizeof due_key, ns, "{s%d}:r:due", n);
        const char *card[] = {"HGET", count_key, "pending"};
        const char *count[] = {"EVAL_RO", DUE_COUNT_LUA, "1", due_key, TP_EXPORTER_NOW};
        if (tp_exporter_track(exporter, pending, 3, card) < 0 ||
            tp_exporter_track(exporter, due, 5, count) < 0)
            return -1;
    }
    return 0;
}
