/* scheduler: plans follow-up reminders from events and fires them on time,
 * once, as reminder.due (R-TOUCH-1, R-CAD-4, R-SLA-1). */
#include "scheduler_fire.h"
#include "scheduler_plan.h"
#include "tp/service.h"

typedef struct scheduler {
    tp_service_core_t core;
    tp_fire_t *fire;
    tp_plan_t *plan;
} scheduler_t;

static void scheduler_stop(void *arg) {
    scheduler_t *app = arg;
    tp_service_core_stop_store(&app->core);
    tp_plan_destroy(&app->plan);
    tp_fire_destroy(&app->fire);
    tp_service_core_close(&app->core);
}

int main(int argc, char **argv) {
    scheduler_t app = {0};
    if (tp_service_core_open(&app.core, TP_SERVICE_SCHEDULER, argc, argv) < 0)
        return 1;
    tp_config_t *cfg = app.core.cfg;
    tp_plan_rules_t rules;
    tp_plan_rules_load(&rules, cfg);
    tp_fire_options_t fire_opts = {
        .poll_interval_ms = tp_config_ms(cfg, "scheduler", "poll_interval", "1s"),
        .lookahead_ms = tp_config_ms(cfg, "scheduler", "lookahead", "2s"),
        .poll_batch = (int)tp_config_int(cfg, "scheduler", "poll_batch", 1000, 1,
                                         100000),
    };

    if (!(app.fire = tp_fire_new(app.core.loop, app.core.store, app.core.emitter,
                                 &fire_opts)) ||
        !(app.plan = tp_plan_new(app.core.store, &rules, tp_fire_arm, app.fire)) ||
        tp_service_core_consume(&app.core, tp_plan_tag, tp_plan_apply, app.plan) < 0)
        return tp_service_core_abort(&app.core, scheduler_stop, &app);
    return tp_service_core_run(&app.core, scheduler_stop, &app);
}
