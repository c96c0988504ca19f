/* ticketing: after-sales tickets. Opens and updates tickets from events,
 * keeps their first-response and resolution clocks (business hours, paused
 * while waiting for the customer), and derives sla.breached once per missed
 * deadline (R-TICKET-1..3). */
#include "ticketing_sla.h"
#include "ticketing_ticket.h"
#include "tp/calendar.h"
#include "tp/log.h"
#include "tp/service.h"

typedef struct ticketing {
    tp_service_core_t core;
    tp_calendar_t *hours;
    tp_ticketing_t *tickets;
    tp_sla_t *sla;
} ticketing_t;

static void ticketing_stop(void *arg) {
    ticketing_t *app = arg;
    tp_service_core_stop_store(&app->core);
    tp_sla_destroy(&app->sla);
    tp_ticketing_destroy(&app->tickets);
    tp_calendar_destroy(&app->hours);
    tp_service_core_close(&app->core);
}

int main(int argc, char **argv) {
    ticketing_t app = {0};
    if (tp_service_core_open(&app.core, TP_SERVICE_TICKETING, argc, argv) < 0)
        return 1;
    tp_ticket_rules_t rules;
    tp_ticket_rules_load(&rules, app.core.cfg);
    int64_t sla_check = tp_config_ms(app.core.cfg, "ticketing", "sla_check", "1s");
    /* business hours: [ticketing] calendar, else the scheduler's (R-CAL-1) */
    const char *cal = tp_config_str(app.core.cfg, "ticketing", "calendar",
                                    tp_config_str(app.core.cfg, "scheduler", "calendar", ""));
    char err[512];
    if (!(app.hours = tp_calendar_new(*cal ? cal : NULL, err, sizeof err))) {
        tp_log_error("calendar: %s", err);
        return tp_service_core_abort(&app.core, ticketing_stop, &app);
    }

    if (!(app.tickets = tp_ticketing_new(app.core.store, &rules, app.hours)) ||
        !(app.sla = tp_sla_new(app.core.loop, app.core.store, app.core.emitter,
                               sla_check, rules.default_owner)) ||
        tp_service_core_consume(&app.core, tp_ticketing_tag, tp_ticketing_apply,
                                app.tickets) < 0)
        return tp_service_core_abort(&app.core, ticketing_stop, &app);
    return tp_service_core_run(&app.core, ticketing_stop, &app);
}
