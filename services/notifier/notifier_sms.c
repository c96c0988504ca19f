/* notifier_sms.c: SMS through an HTTP gateway. Owns its settings
 * (copies). */
#include "notifier_sms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/id.h"
#include "tp/proto.h"

#define DEFAULT_BODY                                                          \
    "{\"to\": \"{{address}}\", \"text\": \"{{subject}}: {{text}}\", "         \
    "\"reference\": \"{{delivery}}\"}"

typedef struct sms {
    tp_channel_t base; /* first */
    tp_transfer_t *transfer;
    char *url, *method, *body, *auth;
} sms_t;

/* A phone number as gateways take it: digits, an optional leading '+',
 * common separators dropped. */
static int phone_normal(const char *in, char *out, size_t outlen) {
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '+' && n == 0) {
            if (n + 1 >= outlen) return -1;
            out[n++] = '+';
        } else if (*p >= '0' && *p <= '9') {
            if (n + 1 >= outlen) return -1;
            out[n++] = *p;
        } else if (!strchr(" -().", *p)) {
            return -1;
        }
    }
    out[n] = '\0';
    return n >= 5 ? 0 : -1;
}

static char *sms_prepare(tp_channel_t *base, const tp_message_t *msg,
                         size_t *len, char *err, size_t errlen) {
    sms_t *self = (sms_t *)base;
    char phone[48];
    if (!msg->address || phone_normal(msg->address, phone, sizeof phone) < 0) {
        snprintf(err, errlen, "no valid phone number");
        return NULL;
    }
    tp_message_t m = *msg;
    m.address = phone;
    char *body = tp_channel_body_render(self->body, &m, len);
    if (!body) snprintf(err, errlen, "the SMS template gave no valid JSON");
    return body;
}

static int sms_send(tp_channel_t *base, const char *id, const char *address,
                    const char *payload, size_t len, tp_transfer_done_cb cb,
                    void *arg) {
    (void)address; /* it is inside the payload */
    sms_t *self = (sms_t *)base;
    char key[TP_ID_MAX * 4 + 64];
    snprintf(key, sizeof key, "Idempotency-Key: %s", id);
    const char *headers[3] = {key, *self->auth ? self->auth : NULL, NULL};
    return tp_transfer_http(self->transfer, self->method, self->url, payload,
                            len, headers, cb, arg);
}

static void sms_destroy(tp_channel_t *base) {
    sms_t *self = (sms_t *)base;
    free(self->url);
    free(self->method);
    free(self->body);
    free(self->auth);
    free(self);
}

tp_channel_t *tp_sms_new(tp_config_t *cfg, tp_transfer_t *transfer, char *err,
                         size_t errlen) {
    err[0] = '\0';
    const char *url = tp_config_str(cfg, "notifier", "sms_url", "");
    if (!*url) return NULL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "notifier.sms_url: expected http(s)://...");
        return NULL;
    }
    const char *method = tp_config_str(cfg, "notifier", "sms_method", "POST");
    if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0) {
        snprintf(err, errlen, "notifier.sms_method: POST or PUT");
        return NULL;
    }
    const char *auth = tp_config_str(cfg, "notifier", "sms_auth_header", "");
    if (*auth && (!strchr(auth, ':') || strpbrk(auth, "\r\n"))) {
        snprintf(err, errlen, "notifier.sms_auth_header: expected \"Name: value\"");
        return NULL;
    }
    char why[400];
    char *body = tp_channel_body_load(
        tp_config_str(cfg, "notifier", "sms_template", ""), DEFAULT_BODY, why,
        sizeof why);
    if (!body) {
        snprintf(err, errlen, "notifier.sms_template: %s", why);
        return NULL;
    }
    sms_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->base.name = "sms";
    self->base.prepare = sms_prepare;
    self->base.send = sms_send;
    self->base.classify = tp_channel_classify_http;
    self->base.destroy = sms_destroy;
    self->transfer = transfer;
    self->url = strdup(url);
    self->method = strdup(method);
    self->auth = strdup(auth);
    if (!self->url || !self->method || !self->auth) abort();
    self->body = body;
    return &self->base;
}
