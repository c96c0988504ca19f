/* ticketing: after-sales tickets. Opens and updates tickets from events,
 * keeps their first-response deadlines, and derives sla.breached once per
 * missed deadline (R-TICKET-1..3). */
#include "ticketing_sla.h"
#include "ticketing_ticket.h"
#include "tp/bus.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/log.h"
#include "tp/service.h"
#include "tp/store.h"

typedef struct ticketing {
    tp_config_t *cfg;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_emitter_t *emitter;
    tp_ticketing_t *tickets;
    tp_sla_t *sla;
    tp_consumer_t *consumer;
} ticketing_t;

/* The store goes first: work waiting on Redis ends while its owners live. */
static void ticketing_stop(void *arg) {
    ticketing_t *app = arg;
    tp_store_destroy(&app->store);
    tp_consumer_destroy(&app->consumer);
    tp_sla_destroy(&app->sla);
    tp_ticketing_destroy(&app->tickets);
    tp_emitter_destroy(&app->emitter);
    tp_bus_destroy(&app->bus);
}

int main(int argc, char **argv) {
    char instance[64];
    ticketing_t app = {0};
    app.cfg = tp_service_config(argc, argv, TP_SERVICE_TICKETING, instance,
                                sizeof instance);
    if (!app.cfg) return 1;
    uv_loop_t *loop = uv_default_loop();

    tp_store_options_t store_opts;
    tp_consumer_options_t consumer_opts;
    tp_emitter_options_t emitter_opts;
    tp_ticket_rules_t rules;
    tp_service_store_options(app.cfg, &store_opts);
    tp_service_consumer_options(app.cfg, TP_SERVICE_TICKETING, instance,
                                &consumer_opts);
    tp_service_emitter_options(app.cfg, TP_SERVICE_TICKETING, &emitter_opts);
    tp_ticket_rules_load(&rules, app.cfg);
    int64_t sla_check = tp_config_ms(app.cfg, "ticketing", "sla_check", "1s");
    char err[256];
    if (tp_config_check(app.cfg, err, sizeof err) < 0) {
        tp_log_error("configuration: %s", err);
        return 1;
    }

    if (!(app.store = tp_store_new(loop, &store_opts)) ||
        !(app.bus = tp_bus_new(loop)) ||
        !(app.emitter = tp_emitter_new(loop, app.bus, app.store, &emitter_opts)) ||
        !(app.tickets = tp_ticketing_new(app.store, &rules)) ||
        !(app.sla = tp_sla_new(loop, app.store, app.emitter, sla_check,
                               rules.default_owner)) ||
        !(app.consumer = tp_consumer_new(loop, app.bus, app.store, &consumer_opts,
                                         tp_ticketing_tag, tp_ticketing_apply,
                                         app.tickets))) {
        ticketing_stop(&app);
        tp_service_run(loop, NULL, NULL);
        tp_config_destroy(&app.cfg);
        return 1;
    }
    tp_log_info("ticketing %s consuming %s", instance, consumer_opts.endpoint);
    int rc = tp_service_run(loop, ticketing_stop, &app);
    tp_config_destroy(&app.cfg);
    return rc == 0 ? 0 : 1;
}
