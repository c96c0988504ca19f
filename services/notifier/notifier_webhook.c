/* notifier_webhook.c: webhook bodies from the template, signed POSTs.
 * Owns its settings (copies). HMAC-SHA256 is libsodium's. */
#include "notifier_webhook.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/id.h"
#include "tp/proto.h"


typedef struct webhook {
    tp_channel_t base; /* first */
    tp_transfer_t *transfer;
    char *url, *secret;
    char *body; /* the body template; NULL: Touchpoint's own body */
} webhook_t;

void tp_webhook_sign(const char *secret, const char *timestamp,
                     const char *body, size_t len, char *out, size_t outlen) {
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret,
                                strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)timestamp,
                                  strlen(timestamp));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    char hex[2 * sizeof mac + 1];
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(out, outlen, "v1=%s", hex);
    sodium_memzero(&st, sizeof st);
}

static char *webhook_prepare(tp_channel_t *base, const tp_message_t *msg,
                             size_t *len, char *err, size_t errlen) {
    webhook_t *self = (webhook_t *)base;
    const char *url = msg->address;
    if (!url || (strncmp(url, "http://", 7) != 0 &&
                 strncmp(url, "https://", 8) != 0)) {
        snprintf(err, errlen, "no webhook URL");
        return NULL;
    }
    if (self->body) {
        char *body = tp_channel_body_render(self->body, msg, len);
        if (!body) snprintf(err, errlen, "the body template gave no valid JSON");
        return body;
    }
    /* Touchpoint's own body: the message, the inbox entry, the event */
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "delivery",
                            msg->delivery, "recipient", msg->recipient ? msg->recipient : "",
                            "customer", msg->customer ? msg->customer : "", "kind",
                            msg->kind ? msg->kind : "", "lang", msg->lang ? msg->lang : "",
                            "subject", msg->subject ? msg->subject : "", "text",
                            msg->text ? msg->text : "");
    if (!doc) {
        snprintf(err, errlen, "not UTF-8");
        return NULL;
    }
    const char *raw[2][2] = {{"notification", msg->item_json}, {"event", msg->event_json}};
    for (int i = 0; i < 2; i++)
        if (raw[i][1]) json_object_set_new(doc, raw[i][0], json_loads(raw[i][1], 0, NULL));
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!body) abort();
    *len = strlen(body);
    return body;
}

static int webhook_send(tp_channel_t *base, const char *id, const char *address,
                        const char *payload, size_t len, tp_transfer_done_cb cb,
                        void *arg) {
    webhook_t *self = (webhook_t *)base;
    char key[TP_ID_MAX * 4 + 64], ts[64], stamp[96], sig[128], sighdr[160];
    snprintf(key, sizeof key, "Idempotency-Key: %s", id);
    snprintf(ts, sizeof ts, "%lld", (long long)(tp_now_ms() / 1000));
    snprintf(stamp, sizeof stamp, "X-Touchpoint-Timestamp: %s", ts);
    const char *headers[4] = {key, stamp, NULL, NULL};
    if (*self->secret) {
        tp_webhook_sign(self->secret, ts, payload, len, sig, sizeof sig);
        snprintf(sighdr, sizeof sighdr, "X-Touchpoint-Signature: %s", sig);
        headers[2] = sighdr;
    }
    return tp_transfer_post(self->transfer, address, payload, len, headers, cb,
                            arg);
}

static void webhook_destroy(tp_channel_t *base) {
    webhook_t *self = (webhook_t *)base;
    free(self->url);
    if (self->secret) sodium_memzero(self->secret, strlen(self->secret));
    free(self->secret);
    free(self->body);
    free(self);
}

/* Each receiving host has its own breaker: one user's dead webhook does
 * not hold the others'. libcurl parses the URL. */
static void webhook_server(const char *address, char *out, size_t len) {
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, address, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        snprintf(out, len, "%s:%s", host, port);
    else
        snprintf(out, len, "?");
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

const char *tp_webhook_default_url(const tp_channel_t *base) {
    return ((const webhook_t *)base)->url;
}

tp_channel_t *tp_webhook_new(tp_config_t *cfg, tp_transfer_t *transfer,
                             char *err, size_t errlen) {
    err[0] = '\0';
    if (sodium_init() < 0) {
        snprintf(err, errlen, "sodium_init failed");
        return NULL;
    }
    const char *url = tp_config_str(cfg, "notifier", "webhook_url", "");
    if (*url && strncmp(url, "http://", 7) != 0 &&
        strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "notifier.webhook_url: expected http(s)://...");
        return NULL;
    }
    char why[400];
    const char *tpl = tp_config_str(cfg, "notifier", "webhook_template", "");
    char *body = *tpl ? tp_channel_body_load(tpl, "", why, sizeof why) : NULL;
    if (*tpl && !body) {
        snprintf(err, errlen, "notifier.webhook_template: %s", why);
        return NULL;
    }
    webhook_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->base.name = "webhook";
    self->base.prepare = webhook_prepare;
    self->base.send = webhook_send;
    self->base.classify = tp_channel_classify_http;
    self->base.destroy = webhook_destroy;
    self->base.server = webhook_server;
    self->transfer = transfer;
    self->url = strdup(url);
    self->secret = strdup(tp_config_str(cfg, "notifier", "webhook_secret", ""));
    if (!self->url || !self->secret) abort();
    self->body = body;
    return &self->base;
}
