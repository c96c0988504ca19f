/* scoring: keeps the shared customer record. Applies every event to the
 * customer's profile and timeline, grades leads from their dimensions and
 * fit (R-GRADE-1..3), and derives lead.graded when a grade is new or
 * changed. */
#include "scoring_grade.h"
#include "scoring_record.h"
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

int main(int argc, char **argv) {
    scoring_t app = {0};
    if (tp_service_core_open(&app.core, TP_SERVICE_SCORING, argc, argv) < 0)
        return 1;
    tp_grade_rules_t rules;
    tp_grade_rules_load(&rules, app.core.cfg);

    if (!(app.record = tp_record_new(app.core.store, app.core.emitter, &rules,
                                     app.core.cfg)) ||
        tp_service_core_consume(&app.core, tp_record_tag, tp_record_apply,
                                app.record) < 0)
        return tp_service_core_abort(&app.core, scoring_stop, &app);
    return tp_service_core_run(&app.core, scoring_stop, &app);
}
