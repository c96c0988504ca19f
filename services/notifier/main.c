/* notifier: delivers reminders and SLA alarms to the recipient's in-app
 * inbox and to a webhook, once, retrying failures with backoff, and derives
 * notification.sent / notification.failed. */
#include "notifier_deliver.h"
#include "notifier_webhook.h"
#include "tp/bus.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/log.h"
#include "tp/service.h"
#include "tp/store.h"

typedef struct notifier {
    tp_config_t *cfg;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_emitter_t *emitter;
    tp_webhook_t *webhook;
    tp_deliver_t *deliver;
    tp_consumer_t *consumer;
} notifier_t;

/* Attempts in flight end first (their claims expire and are retried), then
 * work waiting on Redis, then the rest. */
static void notifier_stop(void *arg) {
    notifier_t *app = arg;
    tp_deliver_shutdown(app->deliver);
    tp_webhook_destroy(&app->webhook);
    tp_store_destroy(&app->store);
    tp_consumer_destroy(&app->consumer);
    tp_deliver_destroy(&app->deliver);
    tp_emitter_destroy(&app->emitter);
    tp_bus_destroy(&app->bus);
}

int main(int argc, char **argv) {
    char instance[64];
    notifier_t app = {0};
    app.cfg = tp_service_config(argc, argv, TP_SERVICE_NOTIFIER, instance,
                                sizeof instance);
    if (!app.cfg) return 1;
    uv_loop_t *loop = uv_default_loop();

    tp_store_options_t store_opts;
    tp_consumer_options_t consumer_opts;
    tp_emitter_options_t emitter_opts;
    tp_deliver_options_t deliver_opts;
    tp_service_store_options(app.cfg, &store_opts);
    tp_service_consumer_options(app.cfg, TP_SERVICE_NOTIFIER, instance,
                                &consumer_opts);
    tp_service_emitter_options(app.cfg, TP_SERVICE_NOTIFIER, &emitter_opts);
    tp_deliver_options_load(&deliver_opts, app.cfg);
    tp_webhook_options_t webhook_opts = {
        .timeout_ms = (long)tp_config_ms(app.cfg, "notifier", "webhook_timeout", "10s"),
        .connect_timeout_ms =
            (long)tp_config_ms(app.cfg, "notifier", "webhook_connect_timeout", "3s"),
        .max_inflight = (int)tp_config_int(app.cfg, "notifier", "max_inflight",
                                           10000, 1, 1000000),
        .max_connections = (int)tp_config_int(app.cfg, "notifier",
                                              "webhook_max_connections", 64, 1,
                                              100000),
    };
    char err[256];
    if (tp_config_check(app.cfg, err, sizeof err) < 0) {
        tp_log_error("configuration: %s", err);
        return 1;
    }
    if (deliver_opts.claim_ms <= webhook_opts.timeout_ms) {
        tp_log_error("configuration: notifier.claim must be longer than "
                     "notifier.webhook_timeout, or a slow attempt gets a twin");
        return 1;
    }

    if (!(app.store = tp_store_new(loop, &store_opts)) ||
        !(app.bus = tp_bus_new(loop)) ||
        !(app.emitter = tp_emitter_new(loop, app.bus, app.store, &emitter_opts)) ||
        !(app.webhook = tp_webhook_new(loop, &webhook_opts)) ||
        !(app.deliver = tp_deliver_new(loop, app.store, app.emitter, app.webhook,
                                       &deliver_opts)) ||
        !(app.consumer = tp_consumer_new(loop, app.bus, app.store, &consumer_opts,
                                         tp_deliver_tag, tp_deliver_apply,
                                         app.deliver))) {
        notifier_stop(&app);
        tp_service_run(loop, NULL, NULL);
        tp_config_destroy(&app.cfg);
        return 1;
    }
    tp_log_info("notifier %s consuming %s, webhook %s", instance,
                consumer_opts.endpoint,
                deliver_opts.webhook_url[0] ? "configured" : "off");
    int rc = tp_service_run(loop, notifier_stop, &app);
    tp_config_destroy(&app.cfg);
    return rc == 0 ? 0 : 1;
}
