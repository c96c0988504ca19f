/* notifier: delivers reminders and alarms to the right people (the owner,
 * the manager for escalations, the customer's contact for customer-facing
 * rules) on their channels (in-app inbox, email, webhook, SMS), in their
 * language, outside their quiet hours, once; retries with backoff, parks
 * what never goes through in the dead-letter set, and derives
 * notification.sent / notification.failed. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "notifier_channel.h"
#include "notifier_deliver.h"
#include "notifier_email.h"
#include "notifier_recipient.h"
#include "notifier_sms.h"
#include "notifier_template.h"
#include "notifier_transfer.h"
#include "notifier_webhook.h"
#include "tp/log.h"
#include "tp/service.h"

typedef struct notifier {
    tp_service_core_t core;
    tp_transfer_t *transfer;
    tp_channel_t *channels[TP_DELIVER_CHANNELS];
    tp_templates_t *templates;
    tp_recipients_t *recipients;
    tp_deliver_t *deliver;
} notifier_t;

/* Attempts in flight end first (their claims expire and are retried), then
 * work waiting on Redis, then the rest. */
static void notifier_stop(void *arg) {
    notifier_t *app = arg;
    tp_deliver_shutdown(app->deliver);
    tp_transfer_destroy(&app->transfer);
    tp_service_core_stop_store(&app->core);
    tp_deliver_destroy(&app->deliver);
    for (int c = 0; c < TP_DELIVER_CHANNELS; c++) tp_channel_destroy(&app->channels[c]);
    tp_templates_destroy(&app->templates);
    tp_recipients_destroy(&app->recipients);
    tp_service_core_close(&app->core);
}

/* Who, what words, which channels: everything read from configuration.
 * Returns 0, or -1 after logging the setting or file:line at fault. */
static int notifier_configure(notifier_t *app, tp_deliver_options_t *deliver_opts) {
    tp_config_t *cfg = app->core.cfg;
    char err[600] = "";
    const char *dir = tp_config_str(cfg, "notifier", "templates", "deploy/templates");
    if (tp_deliver_options_load(deliver_opts, cfg, err, sizeof err) < 0 ||
        !(app->templates = tp_templates_new(dir, err, sizeof err)) ||
        !(app->recipients = tp_recipients_new(cfg, err, sizeof err)) ||
        !(app->channels[TP_DELIVER_WEBHOOK] = tp_webhook_new(cfg, app->transfer, err, sizeof err)) ||
        (!(app->channels[TP_DELIVER_EMAIL] = tp_email_new(cfg, app->transfer, err, sizeof err)) && *err) ||
        (!(app->channels[TP_DELIVER_SMS] = tp_sms_new(cfg, app->transfer, err, sizeof err)) && *err)) {
        tp_log_error("configuration: %s", err);
        return -1;
    }
    /* every message the notifier can send has words in the fallback language */
    static const char *const kinds[][2] = {{"reminder.due", ""}, {"reminder.due", "digest"},
                                           {"sla.breached", ""}, {"customer.at_risk", ""}};
    const char *lang = deliver_opts->fallback_lang;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!tp_templates_has(app->templates, kinds[i][0], kinds[i][1], lang, NULL)) {
            tp_log_error("configuration: %s has no %s%s%s.%s.txt (notifier.fallback_lang)", dir,
                         kinds[i][0], *kinds[i][1] ? "." : "", kinds[i][1], lang);
            return -1;
        }
    /* kinds added to the catalogue later reach the inbox; say what is missing */
    for (int t = 1; t < TP_EVENT_COUNT; t++) {
        const tp_event_schema_t *schema = tp_proto_schema((tp_event_type_t)t);
        int to_customer = strstr(deliver_opts->customer_kinds, schema->name) != NULL;
        if (t != TP_EVENT_NOTIFICATION_READ && (schema->consumers & TP_TO(NOTIFIER)) &&
            !tp_templates_has(app->templates, schema->name, to_customer ? "customer" : "",
                              lang, NULL))
            tp_log_warn("configuration: %s has no %s%s.%s.txt: %s goes to the inbox only",
                        dir, schema->name, to_customer ? ".customer" : "", lang,
                        schema->name);
    }
    char rules[512], *save = NULL, rule[96];
    snprintf(rules, sizeof rules, "%s", deliver_opts->customer_rules);
    for (char *r = strtok_r(rules, ", ", &save); r; r = strtok_r(NULL, ", ", &save)) {
        snprintf(rule, sizeof rule, "%.80s.customer", r);
        if (!tp_templates_has(app->templates, "reminder.due", rule, lang, NULL)) {
            tp_log_error("configuration: notifier.customer_rules names %s, but %s has no "
                         "reminder.due.%s.%s.txt", r, dir, rule, lang);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    notifier_t app = {0};
    signal(SIGPIPE, SIG_IGN);
    if (tp_service_core_open(&app.core, TP_SERVICE_NOTIFIER, argc, argv) < 0)
        return 1;
    tp_config_t *cfg = app.core.cfg;
    /* send_timeout and the rest were webhook_* once: the old names still
     * work (and are checked under their own names) */
    char old_timeout[32], old_connect[32];
    snprintf(old_timeout, sizeof old_timeout, "%lldms",
             (long long)tp_config_ms(cfg, "notifier", "webhook_timeout", "10s"));
    snprintf(old_connect, sizeof old_connect, "%lldms",
             (long long)tp_config_ms(cfg, "notifier", "webhook_connect_timeout", "3s"));
    tp_transfer_options_t transfer_opts = {
        .timeout_ms = (long)tp_config_ms(cfg, "notifier", "send_timeout", old_timeout),
        .connect_timeout_ms = (long)tp_config_ms(cfg, "notifier", "connect_timeout", old_connect),
        .max_inflight = (int)tp_config_int(cfg, "notifier", "max_inflight", 10000, 1, 1000000),
        .max_connections = (int)tp_config_int(
            cfg, "notifier", "max_connections",
            tp_config_int(cfg, "notifier", "webhook_max_connections", 64, 1, 100000), 1,
            100000),
    };
    tp_deliver_options_t deliver_opts;
    if (!(app.transfer = tp_transfer_new(app.core.loop, &transfer_opts)) ||
        notifier_configure(&app, &deliver_opts) < 0)
        return tp_service_core_abort(&app.core, notifier_stop, &app);
    if (deliver_opts.claim_ms <= transfer_opts.timeout_ms) {
        tp_log_error("configuration: notifier.claim must be longer than "
                     "notifier.send_timeout, or a slow attempt gets a twin");
        return tp_service_core_abort(&app.core, notifier_stop, &app);
    }
    if (!(app.deliver = tp_deliver_new(app.core.loop, app.core.store, app.core.emitter,
                                       app.templates, app.recipients, app.channels,
                                       &deliver_opts)))
        return tp_service_core_abort(&app.core, notifier_stop, &app);
    tp_deliver_count_in(app.deliver, app.core.metrics);
    if (tp_service_core_consume(&app.core, tp_deliver_tag, tp_deliver_apply,
                                app.deliver) < 0)
        return tp_service_core_abort(&app.core, notifier_stop, &app);
    return tp_service_core_run(&app.core, notifier_stop, &app);
}
