/* notifier_sms.h: the SMS channel: a configured HTTP gateway.
 *
 * Owns its settings ([notifier] sms_url, sms_method (POST or PUT),
 * sms_template (a JSON body template, notifier_channel.h; the phone number
 * is {{address}}), sms_auth_header (one "Name: value" line, e.g. a bearer
 * token; may be a secret)). Sends Idempotency-Key: <delivery id> so a
 * gateway that honours it never texts twice. classify is
 * tp_channel_classify_http. Never logs numbers, texts or the auth header. */
#ifndef TP_NOTIFIER_SMS_H
#define TP_NOTIFIER_SMS_H

#include "notifier_channel.h"
#include "tp/config.h"

/* The SMS channel; NULL and err "" when sms_url is empty (SMS is off), NULL
 * with why in err on a bad setting. `transfer` borrowed. Caller owns the
 * result (tp_channel_destroy). */
tp_channel_t *tp_sms_new(tp_config_t *cfg, tp_transfer_t *transfer, char *err,
                         size_t errlen);

#endif
