/* test_notifier_recipient.c: the users file and the defaults: who gets
 * what on which channel, in which language and zone; quiet hours per
 * person (R-CAL-2); errors naming file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "notifier_fixture.h"
#include "notifier_recipient.h"

static tp_recipients_t *load(const char *users, const char *notifier_extra,
                             char *err, size_t errlen, char *cfg_path,
                             char *users_path) {
    fx_write(users_path, 128, NULL, NULL, users);
    char ini[1024];
    snprintf(ini, sizeof ini, "[notifier]\nusers = %s\n%s", users_path, notifier_extra);
    fx_write(cfg_path, 128, NULL, NULL, ini);
    char e[300];
    tp_config_t *cfg = tp_config_new(cfg_path, e, sizeof e);
    assert_non_null(cfg);
    tp_recipients_t *r = tp_recipients_new(cfg, err, errlen);
    tp_config_destroy(&cfg);
    unlink(cfg_path);
    unlink(users_path);
    return r;
}

static void test_people_and_defaults(void **state) {
    (void)state;
    char cfg[128] = "", users[128] = "", err[400] = "";
    tp_recipients_t *r = load(
        "[user.rep-wang]\nname = 王伟\nchannels = email,sms\nemail = w@example.com\n"
        "phone = +8613800000000\nlang = zh-CN\ntime_zone = Asia/Shanghai\n"
        "quiet_hours = 21:00-08:00\nmanager = mgr-zhou\ndigest = 18:30\n"
        "[user.mgr-zhou]\nrole = manager\nlang = en\nquiet_hours =\n",
        "default_channels = inbox,webhook\ndefault_lang = en\n"
        "default_time_zone = UTC\ndefault_quiet_hours = 22:00-07:00\n",
        err, sizeof err, cfg, users);
    if (!r) fail_msg("%s", err);
    tp_recipient_t p;
    tp_recipients_get(r, "rep-wang", &p);
    assert_string_equal(p.name, "王伟");
    assert_int_equal(p.channels, TP_CHANNEL_INBOX | TP_CHANNEL_EMAIL | TP_CHANNEL_SMS);
    assert_string_equal(p.manager, "mgr-zhou");
    assert_int_equal(p.digest_min, 18 * 60 + 30);
    assert_string_equal(p.lang, "zh-CN");
    assert_true(p.has_quiet);
    assert_string_equal(tp_calendar_zone(p.zone), "Asia/Shanghai");
    /* 2026-12-03 14:00 UTC = 22:00 in Shanghai: quiet until 08:00 local */
    int64_t at = 1796306400000LL;
    assert_int_equal(tp_quiet_next_allowed(&p.quiet, at), 1796342400000LL);

    tp_recipients_get(r, "mgr-zhou", &p);
    assert_false(p.has_quiet); /* "" switches the default off */
    assert_string_equal(p.lang, "en");
    assert_string_equal(p.role, "manager");
    assert_int_equal(p.channels, TP_CHANNEL_INBOX | TP_CHANNEL_WEBHOOK);

    tp_recipients_get(r, "stranger", &p); /* the defaults */
    assert_string_equal(p.id, "stranger");
    assert_string_equal(p.name, "stranger");
    assert_true(p.has_quiet);
    assert_string_equal(tp_calendar_zone(p.zone), "UTC");
    assert_string_equal(p.manager, "");
    assert_int_equal(p.digest_min, -1);
    tp_recipients_destroy(&r);
    tp_recipients_destroy(&r);
}

static void expect(const char *users, const char *extra, const char *why) {
    char cfg[128] = "", path[128] = "", err[400] = "";
    tp_recipients_t *r = load(users, extra, err, sizeof err, cfg, path);
    assert_null(r);
    if (!strstr(err, why)) fail_msg("got \"%s\", want \"%s\"", err, why);
}

static void test_refusals(void **state) {
    (void)state;
    expect("[user.a]\nname = A\n\nchannels = pigeon\n", "", ":4: channels: \"pigeon\"");
    expect("[people]\nx = 1\n", "", ":2: [people]: expected [user.<id>]");
    expect("[user.a]\ncolour = red\n", "", ":2: unknown key \"colour\"");
    expect("[user.a]\ntime_zone = Mars/Base\n", "", "[user.a]: time_zone \"Mars/Base\"");
    expect("[user.a]\nquiet_hours = late\n", "", "[user.a]: quiet_hours \"late\"");
    expect("[user.a]\nwebhook_url = ftp://x\n", "", ":2: webhook_url");
    expect("", "default_channels = fax\n", "notifier.default_channels");
    expect("[user.a]\ndigest = 25:00\n", "", ":2: digest: \"25:00\" is not HH:MM");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_people_and_defaults),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
