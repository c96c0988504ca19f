/* notifier_recipient.h: who people are and how to reach them.
 *
 * Owns the people of the users file ([notifier] users, an INI file with one
 * section per person):
 *
 *   [user.rep-wang]
 *   name = 王伟
 *   role = rep                    ; rep | manager | agent
 *   channels = inbox,email,webhook ; inbox, email, webhook, sms
 *   email = wang@example.com
 *   phone = +86 138 0000 0000
 *   webhook_url = https://oapi.dingtalk.com/robot/send?access_token=...
 *   lang = zh-CN                  ; en | zh-CN
 *   time_zone = Asia/Shanghai
 *   quiet_hours = 21:00-08:00     ; R-CAL-2, in time_zone; "" none
 *   manager = mgr-zhou            ; escalations also go there
 *   digest = 18:00                ; non-urgent reminders folded into one
 *                                 ; message a day at this local time
 *
 * and the defaults for everyone else ([notifier] default_channels,
 * default_lang, default_time_zone, default_quiet_hours). One calendar per
 * distinct zone, for the quiet hours. Pure after loading. */
#ifndef TP_NOTIFIER_RECIPIENT_H
#define TP_NOTIFIER_RECIPIENT_H

#include <stddef.h>

#include "tp/calendar.h"
#include "tp/config.h"

#define TP_CHANNEL_INBOX (1u << 0)
#define TP_CHANNEL_EMAIL (1u << 1)
#define TP_CHANNEL_WEBHOOK (1u << 2)
#define TP_CHANNEL_SMS (1u << 3)

/* One person. Strings borrowed from the recipients object. */
typedef struct tp_recipient {
    const char *id, *name, *role, *email, *phone, *webhook_url, *lang,
        *manager;
    unsigned channels;  /* TP_CHANNEL_* bits */
    int has_quiet;
    tp_quiet_t quiet;   /* when has_quiet */
    const tp_calendar_t *zone; /* their time zone, for dates in messages */
    int digest_min;     /* minutes after local midnight; -1: no digest */
} tp_recipient_t;

typedef struct tp_recipients tp_recipients_t;

/* Loads the users file named by [notifier] users ("" for none) and the
 * defaults. Returns NULL with "<file>:<line>: why" (or the setting's name)
 * in err. Caller owns the result. */
tp_recipients_t *tp_recipients_new(tp_config_t *cfg, char *err, size_t errlen);
void tp_recipients_destroy(tp_recipients_t **self_p);

/* The person `id` (the defaults when unknown; out->id is then `id`
 * itself, borrowed from the caller). */
void tp_recipients_get(const tp_recipients_t *self, const char *id,
                       tp_recipient_t *out);

/* Parses "inbox,email" into TP_CHANNEL_* bits. Returns -1 on an unknown
 * name. */
int tp_recipients_channels(const char *text, unsigned *out);

#endif
