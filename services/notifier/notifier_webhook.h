/* notifier_webhook.h: the webhook channel: a signed JSON POST per delivery.
 *
 * Owns its settings ([notifier] webhook_url, the default receiver;
 * webhook_secret; webhook_template, a JSON body template, see
 * notifier_channel.h, so the same channel posts to DingTalk, WeCom or Slack
 * incoming webhooks). Without a template the body is Touchpoint's own:
 * delivery, recipient, customer, kind, lang, subject, text, notification
 * (the inbox entry) and event (the event delivered). Every POST carries
 *
 *   Idempotency-Key: <delivery id>           the same on every attempt
 *   X-Touchpoint-Timestamp: <unix seconds>   when this attempt was signed
 *   X-Touchpoint-Signature: v1=<hex>         HMAC-SHA256(secret,
 *                                            "<timestamp>.<body>")
 *
 * (the signature only when a secret is set). A receiver recomputes the HMAC
 * over the timestamp header, a dot and the raw body bytes, compares in
 * constant time, and rejects timestamps older than its window (README).
 * classify is tp_channel_classify_http. Never logs URLs (they carry
 * tokens) or bodies. */
#ifndef TP_NOTIFIER_WEBHOOK_H
#define TP_NOTIFIER_WEBHOOK_H

#include "notifier_channel.h"
#include "tp/config.h"

/* The webhook channel (always on: a user's own webhook address works
 * without a default). NULL with why in err on a bad setting. `transfer`
 * borrowed. Caller owns the result (tp_channel_destroy). */
tp_channel_t *tp_webhook_new(tp_config_t *cfg, tp_transfer_t *transfer,
                             char *err, size_t errlen);

/* The default receiver ("" for none). Borrowed from the channel. */
const char *tp_webhook_default_url(const tp_channel_t *self);

/* "v1=<64 hex>" into out (at least 68 bytes): the signature of `body` at
 * `timestamp` under `secret`. Exposed for tests. */
void tp_webhook_sign(const char *secret, const char *timestamp,
                     const char *body, size_t len, char *out, size_t outlen);

#endif
