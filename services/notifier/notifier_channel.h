/* notifier_channel.h: the one interface every outbound channel has.
 *
 * A channel (email, webhook, sms) is an object with three operations:
 * prepare turns a rendered message into the exact bytes one delivery sends
 * (stored with the delivery record, so every attempt, on any instance,
 * sends the same Message-ID and body); send starts one attempt through the
 * shared transfer client (notifier_transfer.h); classify says what an
 * outcome means (sent, try again later, never). Each channel also carries
 * circuit breakers, one per server it talks to (the SMTP server, the SMS
 * gateway, each webhook host): after `breaker_failures` transient failures
 * in a row a server's breaker opens for `breaker_cooldown`, and attempts to
 * it wait instead of hammering a server that is down, while the others go
 * on.
 *
 * The in-app inbox is not a channel here: it is written in the same Redis
 * script that records the deliveries (notifier_deliver.c). Channels never
 * touch Redis and never log message contents or addresses. */
#ifndef TP_NOTIFIER_CHANNEL_H
#define TP_NOTIFIER_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "notifier_transfer.h"

/* What an attempt's outcome means. */
typedef enum {
    TP_VERDICT_SENT,
    TP_VERDICT_RETRY,     /* transient: try again after a backoff */
    TP_VERDICT_PERMANENT, /* the server refused for good (550, 404) */
} tp_verdict_t;

/* One rendered message, borrowed for the call. */
typedef struct tp_message {
    const char *delivery;  /* stable delivery id */
    const char *address;   /* email address, phone number or URL */
    const char *recipient; /* user id, or the customer's key */
    const char *customer;
    const char *kind;      /* event type */
    const char *lang;
    const char *subject;   /* UTF-8, one line */
    const char *text;      /* UTF-8 */
    const char *html;      /* NULL: plain text only */
    const char *item_json;  /* the inbox entry, JSON text; NULL for none */
    const char *event_json; /* the event delivered, JSON text; NULL for none */
    int64_t now_ms;        /* when it is prepared */
} tp_message_t;

typedef struct tp_channel tp_channel_t;

/* One server's breaker. */
typedef struct tp_channel_server {
    char name[160]; /* "host:port", "" for the channel's only server */
    int failures;   /* transient, in a row */
    int64_t open_until;
} tp_channel_server_t;

#define TP_CHANNEL_SERVERS 64

struct tp_channel {
    const char *name; /* "email", "webhook", "sms", as in notification.* */
    /* The payload of `msg`'s delivery: caller owns the result (free), its
     * length in *len. NULL with why in err when the message cannot be sent
     * on this channel at all (no usable address). */
    char *(*prepare)(tp_channel_t *self, const tp_message_t *msg, size_t *len,
                     char *err, size_t errlen);
    /* One attempt of delivery `id` to `address` with `payload`; returns
     * and calls back exactly as tp_transfer_post. */
    int (*send)(tp_channel_t *self, const char *id, const char *address,
                const char *payload, size_t len, tp_transfer_done_cb cb,
                void *arg);
    tp_verdict_t (*classify)(long status, const char *error);
    void (*destroy)(tp_channel_t *self);
    /* The server behind `address` into `out` ("host:port"); NULL when the
     * channel has one server whatever the address. */
    void (*server)(const char *address, char *out, size_t len);
    /* circuit breakers, kept by tp_channel_allow / tp_channel_record */
    int breaker_failures;
    int64_t breaker_cooldown_ms;
    tp_channel_server_t servers[TP_CHANNEL_SERVERS];
};

/* The verdict for an HTTP answer: 2xx sent; 408, 425, 429, 5xx and no
 * answer retry; other statuses permanent. */
tp_verdict_t tp_channel_classify_http(long status, const char *error);

/* 0 when the breaker of `address`'s server is open at `now` (the attempt
 * should wait until *until), 1 when an attempt may start. */
int tp_channel_allow(const tp_channel_t *self, const char *address, int64_t now,
                     int64_t *until);
/* Feeds an attempt's verdict to the breaker of `address`'s server (a
 * permanent refusal is the server working: it closes the breaker like a
 * success). Returns 1 when this verdict opened it; its name is then in
 * `server` ("" for the channel's only server). Beyond TP_CHANNEL_SERVERS
 * servers failing at once, the quietest breaker is forgotten. */
int tp_channel_record(tp_channel_t *self, const char *address, tp_verdict_t verdict,
                      int64_t now, char *server, size_t len);

/* Body templates of the HTTP channels: a JSON document whose strings hold
 * {{field}} placeholders among TP_CHANNEL_BODY_FIELDS, so one setting fits
 * DingTalk, WeCom, Slack or an SMS gateway. */
#define TP_CHANNEL_BODY_FIELDS                                                \
    "delivery|recipient|customer|kind|lang|subject|text|address"
/* Reads the template at `path` ("" for `def`) and checks it: valid JSON,
 * known fields only. Returns it (caller owns) or NULL with "<path>: why"
 * in err. */
char *tp_channel_body_load(const char *path, const char *def, char *err,
                           size_t errlen);
/* The body for `msg` (values JSON-escaped). Caller owns the result; NULL
 * when the result is not valid JSON. */
char *tp_channel_body_render(const char *tmpl, const tp_message_t *msg,
                             size_t *len);

/* Destroys through the channel's own destroy; accepts NULL, nulls *self_p. */
void tp_channel_destroy(tp_channel_t **self_p);

#endif
