/* scoring: keeps the shared customer record. Applies every event to the
 * customer's profile and timeline, grades leads from their dimensions and
 * fit (R-GRADE-1..3), and derives lead.graded when a grade is new or
 * changed. */
#include "scoring_grade.h"
#include "scoring_record.h"
#include "tp/bus.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/log.h"
#include "tp/service.h"
#include "tp/store.h"

typedef struct scoring {
    tp_config_t *cfg;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_emitter_t *emitter;
    tp_record_t *record;
    tp_consumer_t *consumer;
} scoring_t;

/* The store goes first: jobs waiting on Redis end while their owners live. */
static void scoring_stop(void *arg) {
    scoring_t *app = arg;
    tp_store_destroy(&app->store);
    tp_consumer_destroy(&app->consumer);
    tp_record_destroy(&app->record);
    tp_emitter_destroy(&app->emitter);
    tp_bus_destroy(&app->bus);
}

int main(int argc, char **argv) {
    char instance[64];
    scoring_t app = {0};
    app.cfg = tp_service_config(argc, argv, TP_SERVICE_SCORING, instance,
                                sizeof instance);
    if (!app.cfg) return 1;
    uv_loop_t *loop = uv_default_loop();

    tp_store_options_t store_opts;
    tp_consumer_options_t consumer_opts;
    tp_emitter_options_t emitter_opts;
    tp_grade_rules_t rules;
    tp_service_store_options(app.cfg, &store_opts);
    tp_service_consumer_options(app.cfg, TP_SERVICE_SCORING, instance, &consumer_opts);
    tp_service_emitter_options(app.cfg, TP_SERVICE_SCORING, &emitter_opts);
    tp_grade_rules_load(&rules, app.cfg);
    char err[256];
    if (tp_config_check(app.cfg, err, sizeof err) < 0) {
        tp_log_error("configuration: %s", err);
        return 1;
    }

    if (!(app.store = tp_store_new(loop, &store_opts)) ||
        !(app.bus = tp_bus_new(loop)) ||
        !(app.emitter = tp_emitter_new(loop, app.bus, app.store, &emitter_opts)) ||
        !(app.record = tp_record_new(app.store, app.emitter, &rules, app.cfg)) ||
        !(app.consumer = tp_consumer_new(loop, app.bus, app.store, &consumer_opts,
                                         tp_record_tag, tp_record_apply,
                                         app.record))) {
        scoring_stop(&app);
        tp_service_run(loop, NULL, NULL);
        tp_config_destroy(&app.cfg);
        return 1;
    }
    tp_log_info("scoring %s consuming %s", instance, consumer_opts.endpoint);
    int rc = tp_service_run(loop, scoring_stop, &app);
    tp_config_destroy(&app.cfg);
    return rc == 0 ? 0 : 1;
}
