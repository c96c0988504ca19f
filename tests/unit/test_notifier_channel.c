/* test_notifier_channel.c: what the channels share and their payloads: HTTP
 * verdicts, the circuit breaker, body templates (checked at load, JSON-
 * escaped, always valid JSON), the webhook's HMAC-SHA256 signature against
 * a vector computed independently (Python's hmac), the SMS gateway's body
 * and number checks. (Sending is tested in test_notifier_transfer and
 * tests/integration/test_notifier_channels.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "notifier_channel.h"
#include "notifier_fixture.h"
#include "notifier_sms.h"
#include "notifier_webhook.h"

static void test_http_verdicts(void **state) {
    (void)state;
    assert_int_equal(tp_channel_classify_http(200, NULL), TP_VERDICT_SENT);
    assert_int_equal(tp_channel_classify_http(204, NULL), TP_VERDICT_SENT);
    assert_int_equal(tp_channel_classify_http(500, NULL), TP_VERDICT_RETRY);
    assert_int_equal(tp_channel_classify_http(503, NULL), TP_VERDICT_RETRY);
    assert_int_equal(tp_channel_classify_http(429, NULL), TP_VERDICT_RETRY);
    assert_int_equal(tp_channel_classify_http(408, NULL), TP_VERDICT_RETRY);
    assert_int_equal(tp_channel_classify_http(0, "Connection refused"), TP_VERDICT_RETRY);
    assert_int_equal(tp_channel_classify_http(404, NULL), TP_VERDICT_PERMANENT);
    assert_int_equal(tp_channel_classify_http(400, NULL), TP_VERDICT_PERMANENT);
    assert_int_equal(tp_channel_classify_http(301, NULL), TP_VERDICT_RETRY);
}

static void test_breaker(void **state) {
    (void)state;
    tp_channel_t ch = {.name = "x", .breaker_failures = 3, .breaker_cooldown_ms = 1000};
    int64_t until = 0;
    char server[64];
    assert_true(tp_channel_allow(&ch, "a@b", 0, &until));
    assert_false(tp_channel_record(&ch, "a@b", TP_VERDICT_RETRY, 10, server, sizeof server));
    assert_false(tp_channel_record(&ch, "a@b", TP_VERDICT_SENT, 11, server, sizeof server));
    assert_false(tp_channel_record(&ch, "a@b", TP_VERDICT_RETRY, 12, server, sizeof server));
    assert_false(tp_channel_record(&ch, "c@d", TP_VERDICT_RETRY, 13, server, sizeof server));
    assert_true(tp_channel_record(&ch, "a@b", TP_VERDICT_RETRY, 14, server, sizeof server));
    assert_string_equal(server, ""); /* one server: every address shares it */
    assert_false(tp_channel_allow(&ch, "e@f", 500, &until));
    assert_int_equal(until, 1014);
    assert_true(tp_channel_allow(&ch, "a@b", 1014, &until)); /* another round */
    /* a permanent refusal is the server working: it closes the breaker */
    assert_false(tp_channel_record(&ch, "a@b", TP_VERDICT_PERMANENT, 1015, NULL, 0));
    assert_true(tp_channel_allow(&ch, "a@b", 1016, &until));
    tp_channel_t off = {.name = "y"};
    for (int i = 0; i < 100; i++)
        assert_false(tp_channel_record(&off, "a@b", TP_VERDICT_RETRY, i, NULL, 0));
}

static void test_breaker_per_webhook_host(void **state) {
    (void)state;
    char err[300];
    tp_config_t *cfg = tp_config_new(NULL, err, sizeof err);
    tp_channel_t *ch = tp_webhook_new(cfg, NULL, err, sizeof err);
    assert_non_null(ch);
    ch->breaker_failures = 2;
    ch->breaker_cooldown_ms = 1000;
    char server[64];
    const char *dead = "https://dead.example/hook?token=secret";
    assert_false(tp_channel_record(ch, dead, TP_VERDICT_RETRY, 1, server, sizeof server));
    assert_true(tp_channel_record(ch, "https://dead.example/other", TP_VERDICT_RETRY, 2,
                                  server, sizeof server));
    assert_string_equal(server, "dead.example:443"); /* no path, no token */
    int64_t until;
    assert_false(tp_channel_allow(ch, dead, 3, &until));
    assert_true(tp_channel_allow(ch, "https://alive.example/hook", 3, &until));
    assert_true(tp_channel_allow(ch, "http://dead.example/hook", 3, &until)); /* port 80 */
    /* many failing hosts at once: the table forgets, it never overflows */
    char url[64];
    for (int i = 0; i < 3 * TP_CHANNEL_SERVERS; i++) {
        snprintf(url, sizeof url, "https://h%d.example/", i);
        tp_channel_record(ch, url, TP_VERDICT_RETRY, 10 + i, NULL, 0);
    }
    tp_channel_destroy(&ch);
    tp_config_destroy(&cfg);
}

static tp_message_t message(void) {
    tp_message_t m = {.delivery = "ev-1/webhook/rep-wang",
                      .address = "https://hooks.example/abc",
                      .recipient = "rep-wang",
                      .customer = "ACME-1",
                      .kind = "reminder.due",
                      .lang = "zh-CN",
                      .subject = "【提醒】\"ACME\"",
                      .text = "line 1\nline 2\t\\",
                      .now_ms = 1};
    return m;
}

static void test_signature_vector(void **state) {
    (void)state;
    char sig[80];
    tp_webhook_sign("key", "1700000000", "{\"a\":1}", 7, sig, sizeof sig);
    /* python3 -c 'import hmac,hashlib; print(hmac.new(b"key",
     *   b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest())' */
    assert_string_equal(sig, "v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03");
}

static void test_webhook_body_templates(void **state) {
    (void)state;
    char cfg_path[128] = "", tpl_path[128] = "", err[400];
    fx_write(tpl_path, sizeof tpl_path, NULL, NULL,
             "{\"msgtype\": \"text\", \"text\": {\"content\": \"{{subject}}\\n{{text}}\"}}");
    char ini[512];
    snprintf(ini, sizeof ini, "[notifier]\nwebhook_template = %s\n", tpl_path);
    fx_write(cfg_path, sizeof cfg_path, NULL, NULL, ini);
    tp_config_t *cfg = tp_config_new(cfg_path, err, sizeof err);
    tp_channel_t *ch = tp_webhook_new(cfg, NULL, err, sizeof err);
    assert_non_null(ch);
    assert_string_equal(tp_webhook_default_url(ch), "");
    tp_message_t m = message();
    size_t len;
    char *body = ch->prepare(ch, &m, &len, err, sizeof err);
    assert_non_null(body);
    json_error_t je;
    json_t *doc = json_loads(body, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "text"), "content")),
                        "【提醒】\"ACME\"\nline 1\nline 2\t\\");
    json_decref(doc);
    free(body);
    m.address = "ftp://x"; /* no URL, no delivery */
    assert_null(ch->prepare(ch, &m, &len, err, sizeof err));
    tp_channel_destroy(&ch);
    tp_config_destroy(&cfg);

    /* an unknown placeholder or broken JSON stops the start, naming it */
    unlink(tpl_path);
    unlink(cfg_path);
    fx_write(tpl_path, sizeof tpl_path, NULL, NULL, "{\"x\": \"{{secret_token}}\"}");
    snprintf(ini, sizeof ini, "[notifier]\nwebhook_template = %s\n", tpl_path);
    fx_write(cfg_path, sizeof cfg_path, NULL, NULL, ini);
    cfg = tp_config_new(cfg_path, err, sizeof err);
    assert_null(tp_webhook_new(cfg, NULL, err, sizeof err));
    assert_non_null(strstr(err, "{{secret_token}} is not one of"));
    tp_config_destroy(&cfg);
    unlink(tpl_path);
    fx_write(tpl_path, sizeof tpl_path, NULL, NULL, "{\"x\": \n  oops}");
    snprintf(ini, sizeof ini, "[notifier]\nwebhook_template = %s\n", tpl_path);
    unlink(cfg_path);
    fx_write(cfg_path, sizeof cfg_path, NULL, NULL, ini);
    cfg = tp_config_new(cfg_path, err, sizeof err);
    assert_null(tp_webhook_new(cfg, NULL, err, sizeof err));
    if (!strstr(err, ":2:")) fail_msg("%s", err);
    tp_config_destroy(&cfg);
    unlink(tpl_path);
    unlink(cfg_path);
}

static void test_sms(void **state) {
    (void)state;
    char cfg_path[128] = "", err[400];
    fx_write(cfg_path, sizeof cfg_path, NULL, NULL, "[notifier]\n");
    tp_config_t *cfg = tp_config_new(cfg_path, err, sizeof err);
    assert_null(tp_sms_new(cfg, NULL, err, sizeof err)); /* off */
    assert_string_equal(err, "");
    tp_config_destroy(&cfg);
    fx_write(cfg_path, sizeof cfg_path, NULL, NULL,
             "[notifier]\nsms_url = https://sms.example/send\nsms_method = GET\n");
    cfg = tp_config_new(cfg_path, err, sizeof err);
    assert_null(tp_sms_new(cfg, NULL, err, sizeof err));
    assert_non_null(strstr(err, "notifier.sms_method"));
    tp_config_destroy(&cfg);
    fx_write(cfg_path, sizeof cfg_path, NULL, NULL,
             "[notifier]\nsms_url = https://sms.example/send\n");
    cfg = tp_config_new(cfg_path, err, sizeof err);
    tp_channel_t *ch = tp_sms_new(cfg, NULL, err, sizeof err);
    assert_non_null(ch);
    tp_message_t m = message();
    m.address = "+86 (138) 0000-1234";
    size_t len;
    char *body = ch->prepare(ch, &m, &len, err, sizeof err);
    assert_non_null(body);
    json_t *doc = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "to")), "+8613800001234");
    assert_string_equal(json_string_value(json_object_get(doc, "reference")),
                        "ev-1/webhook/rep-wang");
    json_decref(doc);
    free(body);
    m.address = "call me";
    assert_null(ch->prepare(ch, &m, &len, err, sizeof err));
    tp_channel_destroy(&ch);
    tp_config_destroy(&cfg);
    unlink(cfg_path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_verdicts),
        cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_breaker_per_webhook_host),
        cmocka_unit_test(test_signature_vector),
        cmocka_unit_test(test_webhook_body_templates),
        cmocka_unit_test(test_sms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
