/* test_notifier_email.c: the messages the email channel composes: RFC 5322
 * headers, an RFC 2047 UTF-8 subject folded into encoded words, a
 * Message-ID that depends on the delivery id only, multipart/alternative
 * with base64 UTF-8 parts, CRLF line ends; refusals of bad settings and
 * addresses. (Sending is tested against smtp-sink in
 * tests/integration/test_notifier_channels.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "notifier_email.h"
#include "notifier_fixture.h"

static tp_message_t message(const char *id, const char *subject, const char *html) {
    tp_message_t m = {.delivery = id,
                      .address = "wang@example.com",
                      .recipient = "rep-wang",
                      .subject = subject,
                      .text = "第一行\n第二行\n",
                      .html = html,
                      .now_ms = 1796292000000LL}; /* Thu, 03 Dec 2026 10:00:00 UTC */
    return m;
}

/* The header `name` of `msg` (unfolded), into out. */
static int header(const char *msg, const char *name, char *out, size_t len) {
    size_t n = strlen(name);
    for (const char *p = msg; *p && !(p[0] == '\r' && p[1] == '\n');) {
        const char *eol = strstr(p, "\r\n");
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            size_t o = 0;
            const char *v = p + n + 1;
            while (*v == ' ') v++;
            for (;;) {
                while (v < eol && o + 1 < len) out[o++] = *v++;
                if (eol[2] != ' ') break; /* folded lines start with a space */
                v = eol + 2;
                eol = strstr(v, "\r\n");
            }
            out[o] = '\0';
            return 0;
        }
        p = eol + 2;
    }
    return -1;
}

static void test_headers(void **state) {
    (void)state;
    assert_true(sodium_init() >= 0);
    tp_message_t m = message("ev-1/email/rep-wang",
                             "【提醒】客户「华东制造有限公司」需要在今天下午三点之前回电确认方案细节",
                             "<p>hi</p>");
    size_t len;
    char *msg = tp_email_compose(&m, "tp@example.com", "Touchpoint 提醒", &len);
    assert_int_equal(strlen(msg), len);
    char v[2048];
    assert_int_equal(header(msg, "To", v, sizeof v), 0);
    assert_string_equal(v, "<wang@example.com>");
    assert_int_equal(header(msg, "Date", v, sizeof v), 0);
    assert_string_equal(v, "Thu, 03 Dec 2026 10:00:00 +0000");
    assert_int_equal(header(msg, "MIME-Version", v, sizeof v), 0);
    assert_int_equal(header(msg, "X-Touchpoint-Delivery", v, sizeof v), 0);
    assert_string_equal(v, "ev-1/email/rep-wang");
    assert_int_equal(header(msg, "From", v, sizeof v), 0);
    assert_non_null(strstr(v, "=?UTF-8?B?"));
    assert_non_null(strstr(v, "<tp@example.com>"));

    /* the subject: encoded words of whole characters, each under 76 */
    assert_int_equal(header(msg, "Subject", v, sizeof v), 0);
    char decoded[1024] = "";
    size_t dn = 0;
    for (char *w = strstr(v, "=?UTF-8?B?"); w; w = strstr(w, "=?UTF-8?B?")) {
        char *end = strstr(w + 10, "?=");
        assert_non_null(end);
        assert_true(end + 2 - w <= 75);
        size_t bin;
        assert_int_equal(sodium_base642bin((unsigned char *)decoded + dn,
                                           sizeof decoded - dn - 1, w + 10,
                                           (size_t)(end - w - 10), NULL, &bin, NULL,
                                           sodium_base64_VARIANT_ORIGINAL),
                         0);
        /* every word is valid UTF-8 on its own */
        char word[128];
        memcpy(word, decoded + dn, bin);
        word[bin] = 0;
        dn += bin;
        w = end + 2;
    }
    decoded[dn] = '\0';
    assert_string_equal(decoded, m.subject);

    /* every line ends in CRLF, none is longer than 998 */
    for (char *p = msg; *p;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(nl > p ? nl[-1] == '\r' : 0);
        assert_true(nl - p < 998);
        p = nl + 1;
    }
    assert_non_null(strstr(msg, "Content-Type: multipart/alternative; boundary="));
    assert_non_null(strstr(msg, "Content-Type: text/plain; charset=UTF-8"));
    assert_non_null(strstr(msg, "Content-Type: text/html; charset=UTF-8"));
    free(msg);
}

static void test_message_id_from_delivery(void **state) {
    (void)state;
    tp_message_t a = message("ev-1/email/rep-wang", "Hi", NULL);
    tp_message_t b = a;
    b.now_ms += 3600 * 1000; /* a retry an hour later */
    tp_message_t c = message("ev-2/email/rep-wang", "Hi", NULL);
    size_t len;
    char *ma = tp_email_compose(&a, "tp@example.com", "", &len);
    char *mb = tp_email_compose(&b, "tp@example.com", "", &len);
    char *mc = tp_email_compose(&c, "tp@example.com", "", &len);
    char ia[200], ib[200], ic[200];
    assert_int_equal(header(ma, "Message-ID", ia, sizeof ia), 0);
    assert_int_equal(header(mb, "Message-ID", ib, sizeof ib), 0);
    assert_int_equal(header(mc, "Message-ID", ic, sizeof ic), 0);
    assert_string_equal(ia, ib);
    assert_string_not_equal(ia, ic);
    assert_true(strncmp(ia, "<tp.", 4) == 0);
    assert_non_null(strstr(ia, "@example.com>"));
    /* plain ASCII subject stays as it is; text only is one part */
    char s[200];
    assert_int_equal(header(ma, "Subject", s, sizeof s), 0);
    assert_string_equal(s, "Hi");
    assert_non_null(strstr(ma, "Content-Type: text/plain; charset=UTF-8\r\n"
                               "Content-Transfer-Encoding: base64\r\n\r\n"));
    assert_null(strstr(ma, "multipart"));
    free(ma), free(mb), free(mc);
}

static void test_settings_and_addresses(void **state) {
    (void)state;
    char path[128] = "", err[300];
    fx_write(path, sizeof path, NULL, NULL,
             "[notifier]\nsmtp_url = http://mail\nmail_from = a@b.c\n");
    tp_config_t *cfg = tp_config_new(path, err, sizeof err);
    assert_null(tp_email_new(cfg, NULL, err, sizeof err));
    assert_non_null(strstr(err, "notifier.smtp_url"));
    tp_config_destroy(&cfg);
    fx_write(path, sizeof path, NULL, NULL, "[notifier]\nsmtp_url = smtp://mail\n");
    cfg = tp_config_new(path, err, sizeof err);
    assert_null(tp_email_new(cfg, NULL, err, sizeof err));
    assert_non_null(strstr(err, "notifier.mail_from"));
    tp_config_destroy(&cfg);
    fx_write(path, sizeof path, NULL, NULL, "[notifier]\n");
    cfg = tp_config_new(path, err, sizeof err);
    assert_null(tp_email_new(cfg, NULL, err, sizeof err)); /* off */
    assert_string_equal(err, "");
    tp_config_destroy(&cfg);
    fx_write(path, sizeof path, NULL, NULL,
             "[notifier]\nsmtp_url = smtp://mail\nmail_from = tp@example.com\n");
    cfg = tp_config_new(path, err, sizeof err);
    tp_channel_t *ch = tp_email_new(cfg, NULL, err, sizeof err);
    assert_non_null(ch);
    tp_message_t m = message("x", "Hi", NULL);
    static const char *const bad[] = {"", "nobody", "a@b@c", "a b@c", "<a@b>",
                                      "a@b\r\nRCPT TO:<x@y>"};
    size_t len;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m.address = bad[i];
        assert_null(ch->prepare(ch, &m, &len, err, sizeof err));
    }
    assert_int_equal(ch->classify(250, NULL), TP_VERDICT_SENT);
    assert_int_equal(ch->classify(550, "RCPT failed"), TP_VERDICT_PERMANENT);
    assert_int_equal(ch->classify(451, "try later"), TP_VERDICT_RETRY);
    assert_int_equal(ch->classify(0, "Connection refused"), TP_VERDICT_RETRY);
    tp_channel_destroy(&ch);
    tp_channel_destroy(&ch);
    tp_config_destroy(&cfg);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_message_id_from_delivery),
        cmocka_unit_test(test_settings_and_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
