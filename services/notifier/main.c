/* notifier: delivers reminders and SLA alarms to the recipient's in-app
 * inbox and to a webhook, once, retrying failures with backoff, and derives
 * notification.sent / notification.failed. */
#include "notifier_deliver.h"
#include "notifier_webhook.h"
#include "tp/log.h"
#include "tp/service.h"

typedef struct notifier {
    tp_service_core_t core;
    tp_webhook_t *webhook;
    tp_deliver_t *deliver;
} notifier_t;

/* Attempts in flight end first (their claims expire and are retried), then
 * work waiting on Redis, then the rest. */
static void notifier_stop(void *arg) {
    notifier_t *app = arg;
    tp_deliver_shutdown(app->deliver);
    tp_webhook_destroy(&app->webhook);
    tp_service_core_stop_store(&app->core);
    tp_deliver_destroy(&app->deliver);
    tp_service_core_close(&app->core);
}

int main(int argc, char **argv) {
    notifier_t app = {0};
    if (tp_service_core_open(&app.core, TP_SERVICE_NOTIFIER, argc, argv) < 0)
        return 1;
    tp_config_t *cfg = app.core.cfg;
    tp_deliver_options_t deliver_opts;
    tp_deliver_options_load(&deliver_opts, cfg);
    tp_webhook_options_t webhook_opts = {
        .timeout_ms = (long)tp_config_ms(cfg, "notifier", "webhook_timeout", "10s"),
        .connect_timeout_ms =
            (long)tp_config_ms(cfg, "notifier", "webhook_connect_timeout", "3s"),
        .max_inflight =
            (int)tp_config_int(cfg, "notifier", "max_inflight", 10000, 1, 1000000),
        .max_connections = (int)tp_config_int(cfg, "notifier",
                                              "webhook_max_connections", 64, 1,
                                              100000),
    };
    if (deliver_opts.claim_ms <= webhook_opts.timeout_ms) {
        tp_log_error("configuration: notifier.claim must be longer than "
                     "notifier.webhook_timeout, or a slow attempt gets a twin");
        return tp_service_core_abort(&app.core, notifier_stop, &app);
    }

    if (!(app.webhook = tp_webhook_new(app.core.loop, &webhook_opts)) ||
        !(app.deliver = tp_deliver_new(app.core.loop, app.core.store,
                                       app.core.emitter, app.webhook,
                                       &deliver_opts)) ||
        tp_service_core_consume(&app.core, tp_deliver_tag, tp_deliver_apply,
                                app.deliver) < 0)
        return tp_service_core_abort(&app.core, notifier_stop, &app);
    return tp_service_core_run(&app.core, notifier_stop, &app);
}
