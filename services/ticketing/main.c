/* ticketing: after-sales tickets (R-TICKET-1..7). Opens and updates tickets
 * from events (agents, hotline calls, emails, surveys), assigns them in
 * their department, keeps their first-response and resolution clocks
 * (business hours, paused while waiting for the customer), derives
 * sla.breached once per missed deadline and ticket.escalated once per
 * escalation step, and closes quiet resolved tickets. */
#include "ticketing_autoclose.h"
#include "ticketing_escalate.h"
#include "ticketing_metrics.h"
#include "ticketing_roster.h"
#include "ticketing_sla.h"
#include "ticketing_ticket.h"
#include "tp/calendar.h"
#include "tp/log.h"
#include "tp/service.h"

typedef struct ticketing {
    tp_service_core_t core;
    tp_calendar_t *hours;
    tp_roster_t *roster;
    tp_ticketing_t *tickets;
    tp_sla_t *sla;
    tp_escalate_t *escalate;
    tp_autoclose_t *autoclose;
} ticketing_t;

static void ticketing_stop(void *arg) {
    ticketing_t *app = arg;
    tp_service_core_stop_store(&app->core);
    tp_autoclose_destroy(&app->autoclose);
    tp_escalate_destroy(&app->escalate);
    tp_sla_destroy(&app->sla);
    tp_ticketing_destroy(&app->tickets);
    tp_roster_destroy(&app->roster);
    tp_calendar_destroy(&app->hours);
    tp_service_core_close(&app->core);
}

int main(int argc, char **argv) {
    ticketing_t app = {0};
    if (tp_service_core_open(&app.core, TP_SERVICE_TICKETING, argc, argv) < 0)
        return 1;
    tp_config_t *cfg = app.core.cfg;
    tp_ticket_rules_t rules;
    tp_ticket_rules_load(&rules, cfg);
    int64_t sla_check = tp_config_ms(cfg, "ticketing", "sla_check", "1s");
    /* business hours: [ticketing] calendar, else the scheduler's (R-CAL-1) */
    const char *cal = tp_config_str(cfg, "ticketing", "calendar",
                                    tp_config_str(cfg, "scheduler", "calendar", ""));
    char err[512];
    if (!(app.hours = tp_calendar_new(*cal ? cal : NULL, err, sizeof err))) {
        tp_log_error("calendar: %s", err);
        return tp_service_core_abort(&app.core, ticketing_stop, &app);
    }
    if (!(app.roster = tp_roster_new(cfg, err, sizeof err))) {
        tp_log_error("configuration: %s", err);
        return tp_service_core_abort(&app.core, ticketing_stop, &app);
    }

    if (!(app.tickets = tp_ticketing_new(app.core.store, app.core.emitter, &rules, app.hours,
                                         app.roster)) ||
        !(app.sla = tp_sla_new(app.core.loop, app.core.store, app.core.emitter,
                               sla_check, rules.default_owner)) ||
        !(app.escalate = tp_escalate_new(app.core.loop, app.core.store, app.core.emitter,
                                         app.roster, sla_check)) ||
        tp_ticketing_metrics_register(app.core.exporter, app.sla, app.escalate) < 0 ||
        !(app.autoclose = tp_autoclose_new(app.core.loop, app.core.store, app.tickets,
                                           sla_check)) ||
        tp_service_core_consume(&app.core, tp_ticketing_tag, tp_ticketing_apply,
                                app.tickets) < 0)
        return tp_service_core_abort(&app.core, ticketing_stop, &app);
    return tp_service_core_run(&app.core, ticketing_stop, &app);
}
