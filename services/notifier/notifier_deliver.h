/* notifier_deliver.h: reminders and alarms to their recipient, once.
 *
 * Owns the delivery records and their life: on reminder.due or
 * sla.breached, one script writes the in-app inbox entry, records the
 * webhook delivery (stable id "<event>/webhook/<recipient>") as claimed by
 * this instance, and marks the event done. The webhook is then POSTed with
 * the delivery id as Idempotency-Key; the outcome is recorded with the
 * derived notification.sent (2xx) or notification.failed (a 4xx, or the
 * last of max_attempts) in the same script. Failed attempts are retried
 * with exponential backoff and jitter by whichever instance claims them
 * from deliveries:due; a claim expires, so a crash mid-send repeats only
 * that delivery, with the same id. */
#ifndef NOTIFIER_DELIVER_H
#define NOTIFIER_DELIVER_H

#include <stdint.h>
#include <uv.h>

#include "notifier_webhook.h"
#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/store.h"

typedef struct tp_deliver tp_deliver_t;

typedef struct tp_deliver_options {
    const char *webhook_url; /* "" or NULL: inbox only */
    int max_attempts;        /* default 8 */
    int64_t backoff_ms;      /* first retry, default 1 s, doubling */
    int64_t backoff_max_ms;  /* default 5 min */
    int64_t claim_ms;        /* an attempt's claim, default 60 s */
    int64_t retry_poll_ms;   /* default 1 s */
    int inbox_max;           /* entries kept per user, default 200 */
} tp_deliver_options_t;

void tp_deliver_options_load(tp_deliver_options_t *opts, tp_config_t *cfg);

/* Everything borrowed; option strings copied. Caller owns the result. */
tp_deliver_t *tp_deliver_new(uv_loop_t *loop, tp_store_t *store,
                             tp_emitter_t *emitter, tp_webhook_t *webhook,
                             const tp_deliver_options_t *opts);
/* Stops starting attempts; call before destroying the webhook and store
 * (their failing callbacks are then ignored), destroy after them. */
void tp_deliver_shutdown(tp_deliver_t *self);
void tp_deliver_destroy(tp_deliver_t **self_p);

/* tp_consumer_tag_cb: the done mark lives with the recipient's inbox. */
int tp_deliver_tag(const tp_event_t *ev, char *tag, size_t len, void *arg);
/* tp_consumer_apply_cb; `arg` is the tp_deliver_t. */
void tp_deliver_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                      const tp_event_t *ev, void *arg);

#endif
