/* intake: the one door in. Validates and authenticates events from HTTP
 * and ZeroMQ, appends them to the journal, answers only once they are
 * durable, routes them to the services that consume them, and serves the
 * shared customer record to every contact point. */
#include <stdio.h>

#include "intake_api.h"
#include "intake_ingress.h"
#include "intake_journal.h"
#include "intake_metrics.h"
#include "intake_query.h"
#include "intake_route.h"
#include "intake_trim.h"
#include "tp/bus.h"
#include "tp/config.h"
#include "tp/exporter.h"
#include "tp/http.h"
#include "tp/log.h"
#include "tp/service.h"
#include "tp/store.h"

typedef struct intake {
    tp_config_t *cfg;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_router_t *router;
    tp_journal_t *journal;
    tp_query_t *query;
    tp_api_t *api;
    tp_ingress_t *ingress;
    tp_http_server_t *http;
    tp_trim_t *trim;
    tp_heartbeat_t *heartbeat;
    tp_metrics_t *metrics;
    tp_exporter_t *exporter;
} intake_t;

/* The heartbeat's "applied": events this instance journaled. */
static uint64_t journal_accepted(void *arg) {
    tp_journal_stats_t stats;
    tp_journal_stats(arg, &stats);
    return stats.accepted;
}

/* Teardown in reverse; the store goes first so that every batch waiting on
 * Redis completes (answered 503) while its answerers still exist. */
static void intake_stop(void *arg) {
    intake_t *app = arg;
    tp_heartbeat_destroy(&app->heartbeat);
    tp_http_server_destroy(&app->http);
    tp_store_destroy(&app->store);
    tp_exporter_destroy(&app->exporter);
    tp_journal_destroy(&app->journal);
    tp_trim_destroy(&app->trim);
    tp_ingress_destroy(&app->ingress);
    tp_api_destroy(&app->api);
    tp_query_destroy(&app->query);
    tp_router_destroy(&app->router);
    tp_bus_destroy(&app->bus);
    tp_metrics_destroy(&app->metrics);
}

/* Ready for systemd (READY=1) once it listens, which it does by now, and
 * has Redis: before that every request would be answered 503. */
static int intake_ready(void *arg) {
    intake_t *app = arg;
    return app->store && tp_store_connected(app->store);
}

int main(int argc, char **argv) {
    char instance[64];
    intake_t app = {0};
    app.cfg = tp_service_config(argc, argv, TP_SERVICE_INTAKE, instance,
                                sizeof instance);
    if (!app.cfg) return 1;
    uv_loop_t *loop = uv_default_loop();

    tp_store_options_t store_opts;
    tp_service_store_options(app.cfg, TP_SERVICE_INTAKE, &store_opts);
    const char *cc = tp_config_str(app.cfg, "intake", "default_country_code", "86");
    tp_journal_options_t journal_opts = {
        .dedupe_ttl_s = tp_config_ms(app.cfg, "intake", "dedupe_ttl", "7d") / 1000,
        .default_cc = cc,
        .max_pending = (int)tp_config_int(app.cfg, "intake", "max_pending",
                                          20000, 1, 10000000),
        /* the deployment's departments: a ticket names one of them or gets 400 */
        .departments = tp_config_str(app.cfg, "ticketing", "departments",
                                     "sales,engineering,maintenance"),
    };
    tp_http_options_t http_opts;
    tp_api_http_options(app.cfg, &http_opts);
    tp_trim_options_t trim_opts = {
        .retention_ms = tp_config_ms(app.cfg, "intake", "journal_retention", "7d"),
        .interval_ms = tp_config_ms(app.cfg, "intake", "journal_trim_interval", "1m"),
        .max_journal = tp_config_int(app.cfg, "intake", "max_journal", 2000000, 0,
                                     1000000000000LL),
        .backlog_check_ms = tp_config_ms(app.cfg, "intake", "backlog_check", "1s"),
    };
    int64_t beat_ms = tp_service_heartbeat_interval(app.cfg, TP_SERVICE_INTAKE);
    tp_exporter_options_t exporter_opts;
    char err[256];
    if (tp_exporter_options_load(app.cfg, TP_SERVICE_INTAKE, &exporter_opts, err,
                                 sizeof err) < 0 ||
        tp_config_check(app.cfg, err, sizeof err) < 0) {
        tp_log_error("configuration: %s", err);
        return 1;
    }

    app.metrics = tp_metrics_new("intake", instance);
    if (!(app.store = tp_store_new(loop, &store_opts)) ||
        !(app.exporter = tp_exporter_new(loop, app.store, app.metrics, &exporter_opts)) ||
        !(app.bus = tp_bus_new(loop)) ||
        tp_service_bus_secure(app.bus, app.cfg, TP_SERVICE_INTAKE) < 0 ||
        !(app.router = tp_router_new(app.bus, app.cfg)) ||
        !(app.journal = tp_journal_new(loop, app.store, app.router, &journal_opts)) ||
        !(app.query = tp_query_new(app.store, cc)) ||
        !(app.api = tp_api_new(app.cfg, loop, app.store, app.journal, app.query)) ||
        !(app.ingress = tp_ingress_new(app.bus, app.cfg, app.journal)) ||
        !(app.trim = tp_trim_new(loop, app.store, app.journal, &trim_opts)) ||
        !(app.http = tp_http_server_new(loop, &http_opts, tp_api_handle, app.api)) ||
        !(app.heartbeat = tp_service_heartbeat_new(loop, app.cfg, TP_SERVICE_INTAKE,
                                                   instance, beat_ms))) {
        intake_stop(&app);
        tp_service_run(loop, NULL, NULL);
        tp_config_destroy(&app.cfg);
        return 1;
    }
    tp_http_server_on_headers(app.http, tp_api_check_headers, app.api);
    tp_heartbeat_set_applied(app.heartbeat, journal_accepted, app.journal);
    char metrics_addr[96];
    if (tp_exporter_address(app.exporter, metrics_addr, sizeof metrics_addr) == 0)
        tp_heartbeat_set_metrics(app.heartbeat, metrics_addr);
    tp_series_t *rejected = tp_intake_metrics_register(app.metrics, app.journal);
    tp_api_count_rejected(app.api, rejected);
    tp_ingress_count_rejected(app.ingress, rejected);
    tp_intake_metrics_watch_http(app.metrics, app.http);
    tp_log_info("intake %s listening on http://%s:%d", instance, http_opts.host,
                tp_http_server_port(app.http));

    int rc = tp_service_run_ready(loop, intake_ready, &app, intake_stop, &app);
    tp_config_destroy(&app.cfg);
    return rc == 0 ? 0 : 1;
}
