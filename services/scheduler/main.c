/* scheduler: plans follow-up reminders from events and fires them on time,
 * once, as reminder.due (R-TOUCH-1, R-CAD-4, R-SLA-1). */
#include "scheduler_fire.h"
#include "scheduler_plan.h"
#include "tp/bus.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/log.h"
#include "tp/service.h"
#include "tp/store.h"

typedef struct scheduler {
    tp_config_t *cfg;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_emitter_t *emitter;
    tp_fire_t *fire;
    tp_plan_t *plan;
    tp_consumer_t *consumer;
} scheduler_t;

/* The store goes first: work waiting on Redis ends while its owners live. */
static void scheduler_stop(void *arg) {
    scheduler_t *app = arg;
    tp_store_destroy(&app->store);
    tp_consumer_destroy(&app->consumer);
    tp_plan_destroy(&app->plan);
    tp_fire_destroy(&app->fire);
    tp_emitter_destroy(&app->emitter);
    tp_bus_destroy(&app->bus);
}

int main(int argc, char **argv) {
    char instance[64];
    scheduler_t app = {0};
    app.cfg = tp_service_config(argc, argv, TP_SERVICE_SCHEDULER, instance,
                                sizeof instance);
    if (!app.cfg) return 1;
    uv_loop_t *loop = uv_default_loop();

    tp_store_options_t store_opts;
    tp_consumer_options_t consumer_opts;
    tp_emitter_options_t emitter_opts;
    tp_plan_rules_t rules;
    tp_service_store_options(app.cfg, &store_opts);
    tp_service_consumer_options(app.cfg, TP_SERVICE_SCHEDULER, instance,
                                &consumer_opts);
    tp_service_emitter_options(app.cfg, TP_SERVICE_SCHEDULER, &emitter_opts);
    tp_plan_rules_load(&rules, app.cfg);
    tp_fire_options_t fire_opts = {
        .poll_interval_ms = tp_config_ms(app.cfg, "scheduler", "poll_interval", "1s"),
        .lookahead_ms = tp_config_ms(app.cfg, "scheduler", "lookahead", "2s"),
        .poll_batch = (int)tp_config_int(app.cfg, "scheduler", "poll_batch", 1000,
                                         1, 100000),
    };
    char err[256];
    if (tp_config_check(app.cfg, err, sizeof err) < 0) {
        tp_log_error("configuration: %s", err);
        return 1;
    }

    if (!(app.store = tp_store_new(loop, &store_opts)) ||
        !(app.bus = tp_bus_new(loop)) ||
        !(app.emitter = tp_emitter_new(loop, app.bus, app.store, &emitter_opts)) ||
        !(app.fire = tp_fire_new(loop, app.store, app.emitter, &fire_opts)) ||
        !(app.plan = tp_plan_new(app.store, &rules, tp_fire_arm, app.fire)) ||
        !(app.consumer = tp_consumer_new(loop, app.bus, app.store, &consumer_opts,
                                         tp_plan_tag, tp_plan_apply, app.plan))) {
        scheduler_stop(&app);
        tp_service_run(loop, NULL, NULL);
        tp_config_destroy(&app.cfg);
        return 1;
    }
    tp_log_info("scheduler %s consuming %s", instance, consumer_opts.endpoint);
    int rc = tp_service_run(loop, scheduler_stop, &app);
    tp_config_destroy(&app.cfg);
    return rc == 0 ? 0 : 1;
}
