/* scheduler: plans every follow-up rule's reminders from events and fires
 * them on time, once, in working hours and outside quiet hours, as
 * reminder.due (domain.md sections 2, 3, 4 and 7). */
#include "scheduler_fire.h"
#include "scheduler_metrics.h"
#include "scheduler_plan.h"
#include "scheduler_rules.h"
#include "tp/calendar.h"
#include "tp/log.h"
#include "tp/service.h"

typedef struct scheduler {
    tp_service_core_t core;
    tp_calendar_t *calendar;
    tp_fire_t *fire;
    tp_plan_t *plan;
} scheduler_t;

static void scheduler_stop(void *arg) {
    scheduler_t *app = arg;
    tp_service_core_stop_store(&app->core);
    tp_plan_destroy(&app->plan);
    tp_fire_destroy(&app->fire);
    tp_calendar_destroy(&app->calendar);
    tp_service_core_close(&app->core);
}

/* A recurring reminder's next occurrence, for scheduler_fire. */
static int64_t next_occurrence(void *plan, const json_t *reminder, json_t **next_record) {
    return tp_plan_next_occurrence(plan, reminder, next_record);
}

/* The business calendar ([scheduler] calendar) and the rules file's stage
 * durations ([scoring] rules, shared with scoring). */
static int rules_load(scheduler_t *app, tp_sched_rules_t *rules) {
    tp_config_t *cfg = app->core.cfg;
    char err[512];
    const char *cal = tp_config_str(cfg, "scheduler", "calendar", "");
    if (!(app->calendar = tp_calendar_new(*cal ? cal : NULL, err, sizeof err))) {
        tp_log_error("calendar: %s", err);
        return -1;
    }
    const char *path = tp_config_str(cfg, "scoring", "rules", "");
    tp_config_t *file = tp_config_new(*path ? path : NULL, err, sizeof err);
    if (!file) {
        tp_log_error("rules: %s", err);
        return -1;
    }
    tp_sched_rules_load(rules, cfg, file);
    int rc = tp_config_check(file, err, sizeof err);
    if (rc < 0) tp_log_error("rules: %s", err);
    tp_config_destroy(&file);
    return rc;
}

int main(int argc, char **argv) {
    scheduler_t app = {0};
    if (tp_service_core_open(&app.core, TP_SERVICE_SCHEDULER, argc, argv) < 0)
        return 1;
    tp_config_t *cfg = app.core.cfg;
    tp_sched_rules_t rules;
    tp_fire_options_t fire_opts = {
        .poll_interval_ms = tp_config_ms(cfg, "scheduler", "poll_interval", "1s"),
        .lookahead_ms = tp_config_ms(cfg, "scheduler", "lookahead", "2s"),
        .poll_batch = (int)tp_config_int(cfg, "scheduler", "poll_batch", 1000, 1, 100000),
    };
    /* done marks as fields of small hashes (tp/consumer.h): a pending
     * reminder's event costs ~40 bytes of mark instead of ~100; and the
     * customers of a shard applied side by side (each customer's applies
     * are guarded by its book as read, the shard's indexes take commuting
     * writes), each customer's events still in order */
    app.core.consumer_opts.done_grouped = 1;
    app.core.consumer_opts.turn_by_customer = 1;

    tp_store_options_t claim_link;
    tp_service_store_options(cfg, TP_SERVICE_SCHEDULER, &claim_link);

    if (rules_load(&app, &rules) < 0 ||
        !(app.fire = tp_fire_new(app.core.loop, app.core.store, &claim_link, app.core.emitter,
                                 &fire_opts)) ||
        !(app.plan = tp_plan_new(app.core.store, &rules, app.calendar, cfg, tp_fire_arm_book,
                                 app.fire)) ||
        tp_sched_metrics_register(app.core.exporter, app.fire, app.plan) < 0 ||
        tp_service_core_consume(&app.core, tp_plan_tag, tp_plan_apply, app.plan) < 0)
        return tp_service_core_abort(&app.core, scheduler_stop, &app);
    tp_fire_set_recurrence(app.fire, next_occurrence, app.plan);
    return tp_service_core_run(&app.core, scheduler_stop, &app);
}
