/* notifier_email.h: the email channel: RFC 5322 messages over SMTP.
 *
 * Owns its SMTP settings ([notifier] smtp_url, smtp_username,
 * smtp_password, smtp_require_tls, smtp_verify_peer, mail_from,
 * mail_from_name). prepare writes the whole message: From, To, a UTF-8
 * Subject encoded per RFC 2047, Date, a Message-ID derived from the
 * delivery id (the same on every attempt, so a receiving system can drop a
 * repeat), MIME multipart/alternative with the plain text and the HTML
 * (base64, UTF-8). send hands it to the transfer client (STARTTLS when the
 * server offers it). classify: accepted is sent; a 5xx reply is permanent;
 * a 4xx reply or no answer is transient.
 *
 * Never logs addresses or contents. */
#ifndef TP_NOTIFIER_EMAIL_H
#define TP_NOTIFIER_EMAIL_H

#include "notifier_channel.h"
#include "tp/config.h"

/* The email channel, or NULL with why in err (a bad setting, named).
 * `transfer` borrowed: must outlive the channel. Returns NULL and err ""
 * when smtp_url is empty (email is off). Caller owns the result
 * (tp_channel_destroy). */
tp_channel_t *tp_email_new(tp_config_t *cfg, tp_transfer_t *transfer,
                           char *err, size_t errlen);

/* The message of `msg` from `from` (display name `from_name`, may be "");
 * exposed for tests. Caller owns the result. */
char *tp_email_compose(const tp_message_t *msg, const char *from,
                       const char *from_name, size_t *len);

#endif
