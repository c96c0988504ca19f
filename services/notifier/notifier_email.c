/* notifier_email.c: composing RFC 5322 / MIME messages and sending them
 * over SMTP. Owns its settings (copies). base64 and the Message-ID hash are
 * libsodium's; SMTP is libcurl's (notifier_transfer.c). */
#include "notifier_email.h"
#include "notifier_text.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct email {
    tp_channel_t base; /* first: the channel is the email */
    tp_transfer_t *transfer;
    char *url, *username, *password, *from, *from_name;
    int require_tls, verify_peer;
} email_t;


static int plain_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) return 0;
    return 1;
}

/* RFC 2047: "=?UTF-8?B?...?=" words of at most 45 input bytes (60 encoded,
 * 75 with the wrapper), never splitting a UTF-8 sequence, folded. */
static void put_encoded_words(tp_text_t *b, const char *s) {
    if (plain_ascii(s) && strlen(s) < 900 && !strstr(s, "=?")) {
        tp_text_adds(b, s);
        return;
    }
    size_t n = strlen(s), i = 0;
    int first = 1;
    while (i < n) {
        size_t take = n - i > 45 ? 45 : n - i;
        /* back off to a character boundary */
        while (take > 0 && i + take < n &&
               ((unsigned char)s[i + take] & 0xC0) == 0x80)
            take--;
        if (take == 0) take = n - i > 45 ? 45 : n - i;
        char enc[sodium_base64_ENCODED_LEN(45, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(enc, sizeof enc, (const unsigned char *)s + i, take,
                          sodium_base64_VARIANT_ORIGINAL);
        if (!first) tp_text_adds(b, "\r\n ");
        tp_text_adds(b, "=?UTF-8?B?");
        tp_text_adds(b, enc);
        tp_text_adds(b, "?=");
        first = 0;
        i += take;
    }
}

/* `s` with every line end made CRLF, base64 in lines of 76. */
static void put_base64_body(tp_text_t *b, const char *s) {
    tp_text_t crlf = {0};
    tp_text_add(&crlf, "", 0);
    for (const char *p = s; *p; p++) {
        if (*p == '\r') continue;
        if (*p == '\n')
            tp_text_add(&crlf, "\r\n", 2);
        else
            tp_text_add(&crlf, p, 1);
    }
    for (size_t i = 0; i < crlf.n; i += 57) {
        size_t take = crlf.n - i > 57 ? 57 : crlf.n - i;
        char enc[sodium_base64_ENCODED_LEN(57, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(enc, sizeof enc, (const unsigned char *)crlf.p + i,
                          take, sodium_base64_VARIANT_ORIGINAL);
        tp_text_adds(b, enc);
        tp_text_adds(b, "\r\n");
    }
    free(crlf.p);
}

static void put_part(tp_text_t *b, const char *boundary, const char *type,
                     const char *content) {
    tp_text_adds(b, "--");
    tp_text_adds(b, boundary);
    tp_text_adds(b, "\r\nContent-Type: ");
    tp_text_adds(b, type);
    tp_text_adds(b, "; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    put_base64_body(b, content);
}

char *tp_email_compose(const tp_message_t *msg, const char *from,
                       const char *from_name, size_t *len) {
    unsigned char hash[16];
    crypto_generichash(hash, sizeof hash, (const unsigned char *)msg->delivery,
                       strlen(msg->delivery), NULL, 0);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    const char *at = strrchr(from, '@');
    const char *domain = at && at[1] ? at + 1 : "touchpoint.invalid";

    char date[64];
    time_t secs = (time_t)(msg->now_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                       "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                         "May", "Jun", "Jul", "Aug",
                                         "Sep", "Oct", "Nov", "Dec"};
    snprintf(date, sizeof date, "%s, %02d %s %04d %02d:%02d:%02d +0000",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);

    tp_text_t b = {0};
    tp_text_adds(&b, "From: ");
    if (from_name && *from_name) {
        put_encoded_words(&b, from_name);
        tp_text_adds(&b, " ");
    }
    tp_text_adds(&b, "<");
    tp_text_adds(&b, from);
    tp_text_adds(&b, ">\r\nTo: <");
    tp_text_adds(&b, msg->address);
    tp_text_adds(&b, ">\r\nSubject: ");
    put_encoded_words(&b, msg->subject);
    tp_text_adds(&b, "\r\nDate: ");
    tp_text_adds(&b, date);
    tp_text_adds(&b, "\r\nMessage-ID: <tp.");
    tp_text_adds(&b, hex);
    tp_text_adds(&b, "@");
    tp_text_adds(&b, domain);
    tp_text_adds(&b, ">\r\nMIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\n");
    if (plain_ascii(msg->delivery) && strlen(msg->delivery) < 900) {
        tp_text_adds(&b, "X-Touchpoint-Delivery: ");
        tp_text_adds(&b, msg->delivery);
        tp_text_adds(&b, "\r\n");
    }
    if (msg->html && *msg->html) {
        char boundary[48];
        snprintf(boundary, sizeof boundary, "tp-%s", hex);
        tp_text_adds(&b, "Content-Type: multipart/alternative; boundary=\"");
        tp_text_adds(&b, boundary);
        tp_text_adds(&b, "\"\r\n\r\n");
        put_part(&b, boundary, "text/plain", msg->text);
        put_part(&b, boundary, "text/html", msg->html);
        tp_text_adds(&b, "--");
        tp_text_adds(&b, boundary);
        tp_text_adds(&b, "--\r\n");
    } else {
        tp_text_adds(&b, "Content-Type: text/plain; charset=UTF-8\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n");
        put_base64_body(&b, msg->text);
    }
    *len = b.n;
    return b.p;
}

/* An address we can put in an envelope and a To: line. */
static int address_valid(const char *a) {
    const char *at = strchr(a, '@');
    if (!at || at == a || !at[1] || strchr(at + 1, '@')) return 0;
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p <= 0x20 || strchr("<>()[],;:\\\"", *p)) return 0;
    return strlen(a) <= 254;
}

static char *email_prepare(tp_channel_t *base, const tp_message_t *msg,
                           size_t *len, char *err, size_t errlen) {
    email_t *self = (email_t *)base;
    if (!msg->address || !address_valid(msg->address)) {
        snprintf(err, errlen, "no valid email address");
        return NULL;
    }
    return tp_email_compose(msg, self->from, self->from_name, len);
}

static int email_send(tp_channel_t *base, const char *id, const char *address,
                      const char *payload, size_t len, tp_transfer_done_cb cb,
                      void *arg) {
    (void)id; /* it travels as the Message-ID inside the payload */
    email_t *self = (email_t *)base;
    tp_transfer_smtp_t smtp = {.url = self->url,
                               .username = self->username,
                               .password = self->password,
                               .require_tls = self->require_tls,
                               .verify_peer = self->verify_peer};
    return tp_transfer_mail(self->transfer, &smtp, self->from, address,
                            payload, len, cb, arg);
}

static tp_verdict_t email_classify(long status, const char *error) {
    if (!error) return TP_VERDICT_SENT;
    if (status >= 500 && status < 600) return TP_VERDICT_PERMANENT;
    return TP_VERDICT_RETRY; /* 4xx, no answer, TLS trouble */
}

static void email_destroy(tp_channel_t *base) {
    email_t *self = (email_t *)base;
    free(self->url);
    free(self->username);
    free(self->password);
    free(self->from);
    free(self->from_name);
    free(self);
}

static char *str_copy(const char *s) {
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

tp_channel_t *tp_email_new(tp_config_t *cfg, tp_transfer_t *transfer,
                           char *err, size_t errlen) {
    err[0] = '\0';
    const char *url = tp_config_str(cfg, "notifier", "smtp_url", "");
    if (!*url) return NULL;
    if (strncmp(url, "smtp://", 7) != 0 && strncmp(url, "smtps://", 8) != 0) {
        snprintf(err, errlen, "notifier.smtp_url: expected smtp://host[:port] "
                              "or smtps://host[:port]");
        return NULL;
    }
    const char *from = tp_config_str(cfg, "notifier", "mail_from", "");
    if (!address_valid(from)) {
        snprintf(err, errlen, "notifier.mail_from: not an email address");
        return NULL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "sodium_init failed");
        return NULL;
    }
    email_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->base.name = "email";
    self->base.prepare = email_prepare;
    self->base.send = email_send;
    self->base.classify = email_classify;
    self->base.destroy = email_destroy;
    self->transfer = transfer;
    self->url = str_copy(url);
    self->from = str_copy(from);
    self->from_name = str_copy(tp_config_str(cfg, "notifier", "mail_from_name", ""));
    self->username = str_copy(tp_config_str(cfg, "notifier", "smtp_username", ""));
    self->password = str_copy(tp_config_str(cfg, "notifier", "smtp_password", ""));
    self->require_tls = tp_config_bool(cfg, "notifier", "smtp_require_tls", 0);
    self->verify_peer = tp_config_bool(cfg, "notifier", "smtp_verify_peer", 1);
    return &self->base;
}
