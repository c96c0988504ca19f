/* notifier_deliver.h: notifications to the right people on the right
 * channels, once.
 *
 * Owns the delivery records and their life. On reminder.due, sla.breached
 * or customer.at_risk it reads the customer's record (name, contact), works
 * out the recipients (the owner; for escalating kinds also the owner's
 * manager; for reminders of a customer-facing rule the customer's contact),
 * renders each message from the templates in the recipient's language, has
 * each channel prepare its payload, and then one script writes the in-app
 * inbox entries, records every delivery (stable id
 * "<event>/<channel>/<recipient>", payload included) and marks the event
 * done. A redelivered event finds its done mark and changes nothing.
 *
 * A delivery due now is claimed and started at once; one in its
 * recipient's quiet hours (R-CAL-2; urgent ones excepted) waits in
 * deliveries:due until the window ends. A customer-facing message beyond
 * the cap per customer and period (R-CAD-3) is recorded as capped and not
 * sent. Outcomes: sent -> notification.sent; a permanent refusal or the
 * last of max_attempts -> notification.failed and the dead-letter set
 * (`tpctl deadletter replay` replays it); otherwise a retry after exponential
 * backoff with jitter, by whichever instance claims it. A claim expires,
 * so a crash mid-send repeats only that delivery, with the same id. While a
 * channel's circuit breaker is open its deliveries wait without spending
 * attempts. notification.read marks the user's inbox entry read. */
#ifndef NOTIFIER_DELIVER_H
#define NOTIFIER_DELIVER_H

#include <stdint.h>
#include <uv.h>

#include "notifier_channel.h"
#include "notifier_recipient.h"
#include "notifier_template.h"
#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/metrics.h"
#include "tp/store.h"

typedef struct tp_deliver tp_deliver_t;

/* The channels, by index; NULL when off. */
enum { TP_DELIVER_EMAIL, TP_DELIVER_WEBHOOK, TP_DELIVER_SMS, TP_DELIVER_CHANNELS };

typedef struct tp_deliver_options {
    int max_attempts;        /* default 8 */
    int64_t backoff_ms;      /* first retry, default 1 s, doubling */
    int64_t backoff_max_ms;  /* default 5 min */
    int64_t claim_ms;        /* an attempt's claim, default 60 s */
    int64_t retry_poll_ms;   /* default 1 s */
    int inbox_max;           /* entries kept per user, default 200 */
    const char *fallback_lang;    /* template language when the
                                     recipient's has none; "en" */
    const char *escalate;         /* kinds also sent to the manager */
    const char *customer_rules;   /* reminder rules that go to the customer */
    const char *customer_kinds;   /* event types that go to the customer
                                     only (e.g. survey.requested) */
    unsigned customer_channels;   /* TP_CHANNEL_* for the customer */
    const char *customer_lang;
    int customer_cap;             /* R-CAD-3: messages per period, 0 = none */
    int64_t customer_cap_period_ms;
    int breaker_failures;         /* in a row, to open; 0 = no breaker */
    int64_t breaker_cooldown_ms;
} tp_deliver_options_t;

/* Reads [notifier]; strings borrowed from cfg. Returns 0, or -1 with the
 * setting named in err. */
int tp_deliver_options_load(tp_deliver_options_t *opts, tp_config_t *cfg,
                            char *err, size_t errlen);

/* Everything borrowed (channels may be NULL: off); option strings copied.
 * Caller owns the result. */
/* Counts delivery outcomes in `metrics` (borrowed; must outlive the
 * deliverer) as tp_deliveries_total{channel,status}. */
void tp_deliver_count_in(tp_deliver_t *self, tp_metrics_t *metrics);
tp_deliver_t *tp_deliver_new(uv_loop_t *loop, tp_store_t *store,
                             tp_emitter_t *emitter,
                             const tp_templates_t *templates,
                             const tp_recipients_t *recipients,
                             tp_channel_t *const channels[TP_DELIVER_CHANNELS],
                             const tp_deliver_options_t *opts);
/* Stops starting attempts; call before destroying the transfer client and
 * store (their failing callbacks are then ignored), destroy after them. */
void tp_deliver_shutdown(tp_deliver_t *self);
void tp_deliver_destroy(tp_deliver_t **self_p);

/* tp_consumer_tag_cb: the done mark lives with the recipient's inbox. */
int tp_deliver_tag(const tp_event_t *ev, char *tag, size_t len, void *arg);
/* tp_consumer_apply_cb; `arg` is the tp_deliver_t. */
void tp_deliver_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                      const tp_event_t *ev, void *arg);

#endif
