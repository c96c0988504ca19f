/* scoring: keeps the shared customer record. Applies every event to the
 * customer's profile and timeline; grades leads (R-GRADE-1..3); follows
 * deals through their stages to the customer's state and expected value
 * (R-STAGE-1..2, R-VALUE-1); keeps satisfaction and health (R-SAT-1,
 * R-HEALTH-1); derives lead.graded, stage.changed and customer.at_risk. */
#include <stdio.h>

#include "scoring_record.h"
#include "tp/log.h"
#include "tp/service.h"

typedef struct scoring {
    tp_service_core_t core;
    tp_record_t *record;
} scoring_t;

static void scoring_stop(void *arg) {
    scoring_t *app = arg;
    tp_service_core_stop_store(&app->core);
    tp_record_destroy(&app->record);
    tp_service_core_close(&app->core);
}

/* The rules file ([scoring] rules): grading, fit, stages, health. A bad
 * file stops the service with the file and line to fix. */
static int rules_load(tp_config_t *cfg, tp_record_rules_t *rules) {
    char err[512];
    const char *path = tp_config_str(cfg, "scoring", "rules", "");
    tp_config_t *file = tp_config_new(*path ? path : NULL, err, sizeof err);
    if (!file) {
        tp_log_error("rules: %s", err);
        return -1;
    }
    tp_grade_rules_load(&rules->grade, file);
    tp_stage_rules_load(&rules->stages, file);
    tp_health_rules_load(&rules->health, file);
    int rc = tp_config_check(file, err, sizeof err) == 0 &&
                     tp_stage_rules_check(&rules->stages, err, sizeof err) == 0
                 ? 0
                 : -1;
    if (rc < 0) tp_log_error("rules: %s", err);
    tp_config_destroy(&file);
    rules->timeline_max = tp_config_int(cfg, "scoring", "timeline_max", 1000, 10, 1000000);
    snprintf(rules->default_cc, sizeof rules->default_cc, "%s",
             tp_config_str(cfg, "intake", "default_country_code", "86"));
    return rc;
}

int main(int argc, char **argv) {
    scoring_t app = {0};
    if (tp_service_core_open(&app.core, TP_SERVICE_SCORING, argc, argv) < 0)
        return 1;
    tp_record_rules_t rules;
    int64_t sweep = tp_config_ms(app.core.cfg, "scoring", "health_sweep", "10m");
    if (rules_load(app.core.cfg, &rules) < 0 ||
        !(app.record = tp_record_new(app.core.store, app.core.emitter, &rules)) ||
        tp_record_sweep_start(app.record, app.core.loop, sweep,
                              app.core.consumer_opts.done_ttl_s) < 0 ||
        tp_service_core_consume(&app.core, tp_record_tag, tp_record_apply,
                                app.record) < 0)
        return tp_service_core_abort(&app.core, scoring_stop, &app);
    return tp_service_core_run(&app.core, scoring_stop, &app);
}
