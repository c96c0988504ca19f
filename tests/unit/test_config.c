/* test_config.c: INI files in a temporary folder, environment overrides,
 * durations, and the first-error report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tp/config.h"

/* Writes `text` to a fresh temporary file; `path` receives its name. */
static void write_file(char path[64], const char *text) {
    snprintf(path, 64, "/tmp/tp-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static tp_config_t *load(const char *text, char path[64]) {
    char err[256] = "";
    write_file(path, text);
    tp_config_t *cfg = tp_config_new(path, err, sizeof err);
    if (!cfg) fail_msg("tp_config_new: %s", err);
    return cfg;
}

static void test_file_values(void **state) {
    char path[64];
    tp_config_t *cfg = load("; comment\n"
                            "# comment too\n"
                            "[redis]\n"
                            "url = redis://127.0.0.1:6379\n"
                            "namespace=tp:\n"
                            "\n"
                            "[scoring]\n"
                            "weight_urgency = -3 ; inline comment\n"
                            "enabled = yes\n"
                            "Lag = 30s\n"
                            "weight_urgency = 7\n", /* later wins */
                            path);
    assert_string_equal(tp_config_str(cfg, "redis", "url", NULL),
                        "redis://127.0.0.1:6379");
    assert_string_equal(tp_config_str(cfg, "redis", "namespace", "x"), "tp:");
    assert_string_equal(tp_config_str(cfg, "REDIS", "URL", NULL),
                        "redis://127.0.0.1:6379");
    assert_null(tp_config_str(cfg, "redis", "missing", NULL));
    assert_string_equal(tp_config_str(cfg, "nosuch", "url", "dflt"), "dflt");
    assert_int_equal(
        tp_config_int(cfg, "scoring", "weight_urgency", 0, -10, 10), 7);
    assert_int_equal(tp_config_int(cfg, "scoring", "missing", 42, 0, 1), 42);
    assert_true(tp_config_bool(cfg, "scoring", "enabled", 0));
    assert_int_equal(tp_config_ms(cfg, "scoring", "lag", "1s"), 30000);
    assert_int_equal(tp_config_ms(cfg, "scoring", "missing", "250ms"), 250);

    char err[256] = "untouched";
    assert_int_equal(tp_config_check(cfg, err, sizeof err), 0);
    assert_string_equal(err, "untouched");
    tp_config_destroy(&cfg);
    assert_null(cfg);
    tp_config_destroy(&cfg);
    tp_config_destroy(NULL);
    unlink(path);
}

static void test_env_beats_file(void **state) {
    char path[64];
    tp_config_t *cfg = load("[notifier]\n"
                            "webhook_url = https://file.example/hook\n"
                            "[http-api]\n"
                            "max.body = 100\n",
                            path);
    setenv("TP_NOTIFIER_WEBHOOK_URL", "https://env.example/hook", 1);
    setenv("TP_HTTP_API_MAX_BODY", "200", 1);
    setenv("TP_NOTIFIER_RETRIES", "5", 1); /* only in the environment */

    const char *url = tp_config_str(cfg, "notifier", "webhook_url", NULL);
    assert_string_equal(url, "https://env.example/hook");
    assert_int_equal(tp_config_int(cfg, "http-api", "max.body", 0, 0, 1000),
                     200);
    assert_int_equal(tp_config_int(cfg, "notifier", "retries", 1, 0, 10), 5);

    /* The string stays valid, and unchanged, after the environment moves. */
    setenv("TP_NOTIFIER_WEBHOOK_URL", "https://other.example/hook", 1);
    assert_string_equal(url, "https://env.example/hook");
    assert_string_equal(tp_config_str(cfg, "notifier", "webhook_url", NULL),
                        "https://other.example/hook");
    unsetenv("TP_NOTIFIER_WEBHOOK_URL");
    assert_string_equal(url, "https://env.example/hook");
    assert_string_equal(tp_config_str(cfg, "notifier", "webhook_url", NULL),
                        "https://file.example/hook");

    /* An empty variable is set, and still wins. */
    setenv("TP_HTTP_API_MAX_BODY", "", 1);
    assert_string_equal(tp_config_str(cfg, "http-api", "max.body", "x"), "");

    unsetenv("TP_HTTP_API_MAX_BODY");
    unsetenv("TP_NOTIFIER_RETRIES");
    assert_int_equal(tp_config_check(cfg, NULL, 0), 0);
    tp_config_destroy(&cfg);
    unlink(path);
}

static void test_env_only(void **state) {
    char err[256] = "";
    tp_config_t *cfg = tp_config_new(NULL, err, sizeof err);
    assert_non_null(cfg);
    setenv("TP_SCHEDULER_TICK", "2s", 1);
    setenv("TP_SCHEDULER_DRY_RUN", "On", 1);
    assert_int_equal(tp_config_ms(cfg, "scheduler", "tick", "1s"), 2000);
    assert_int_equal(tp_config_bool(cfg, "scheduler", "dry-run", 0), 1);
    assert_int_equal(tp_config_ms(cfg, "scheduler", "missing", "3d"),
                     3 * 86400000LL);
    assert_string_equal(tp_config_str(cfg, "scheduler", "nope", "d"), "d");
    unsetenv("TP_SCHEDULER_TICK");
    unsetenv("TP_SCHEDULER_DRY_RUN");
    assert_int_equal(tp_config_check(cfg, err, sizeof err), 0);
    tp_config_destroy(&cfg);
}

static void test_durations(void **state) {
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"0", 0},
        {"250", 250},
        {"250ms", 250},
        {"2s", 2000},
        {"30m", 1800000},
        {"24h", 86400000},
        {"3d", 259200000},
        {"9223372036854775807", INT64_MAX},
        {"9223372036854775ms", 9223372036854775LL},
        {"106751991167d", 106751991167LL * 86400000LL},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        if (tp_config_parse_ms(good[i].text, &ms) != 0)
            fail_msg("rejected \"%s\"", good[i].text);
        assert_int_equal(ms, good[i].ms);
    }
    static const char *const bad[] = {
        "",
        "-1",
        "-1s",
        "+1s",
        " 1s",
        "1s ",
        "1 s",
        "1.5s",
        "1w",
        "1S",
        "ms",
        "s",
        "1ms2",
        "1sms",
        "0x10",
        "1e3",
        "9223372036854775808",
        "99999999999999999999",
        "9223372036854776s",
        "106751991168d",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 12345;
        if (tp_config_parse_ms(bad[i], &ms) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(ms, 12345); /* untouched */
    }
    int64_t ms;
    assert_int_equal(tp_config_parse_ms(NULL, &ms), -1);
}

static void test_bad_values_reported(void **state) {
    char path[64];
    tp_config_t *cfg = load("[scoring]\n"
                            "weight_urgency = lots\n"
                            "weight_value = 11\n"
                            "enabled = maybe\n"
                            "lag = soon\n"
                            "[limits]\n"
                            "a = 12abc\n"
                            "b = 0x10\n"
                            "c = 99999999999999999999\n"
                            "d = \n",
                            path);
    char err[256] = "";
    assert_int_equal(tp_config_check(cfg, err, sizeof err), 0);

    assert_int_equal(tp_config_int(cfg, "scoring", "weight_urgency", 3, 0, 10),
                     3);
    assert_int_equal(tp_config_check(cfg, err, sizeof err), -1);
    /* a value from the file is named by file and line (a rules file's
     * reader finds the line to fix) */
    char expected[300];
    snprintf(expected, sizeof expected,
             "%s:2: scoring.weight_urgency: must be an integer from 0 to 10", path);
    assert_string_equal(err, expected);

    /* Later errors still return the default but keep the first message. */
    assert_int_equal(tp_config_int(cfg, "scoring", "weight_value", 4, 0, 10),
                     4);
    assert_int_equal(tp_config_bool(cfg, "scoring", "enabled", 1), 1);
    assert_int_equal(tp_config_ms(cfg, "scoring", "lag", "5s"), 5000);
    assert_int_equal(
        tp_config_int(cfg, "limits", "a", -1, INT64_MIN, INT64_MAX), -1);
    assert_int_equal(
        tp_config_int(cfg, "limits", "b", -1, INT64_MIN, INT64_MAX), -1);
    assert_int_equal(
        tp_config_int(cfg, "limits", "c", -1, INT64_MIN, INT64_MAX), -1);
    assert_int_equal(
        tp_config_int(cfg, "limits", "d", -1, INT64_MIN, INT64_MAX), -1);
    assert_int_equal(tp_config_check(cfg, err, sizeof err), -1);
    assert_string_equal(err, expected); /* still the first error */
    tp_config_destroy(&cfg);

    /* Each kind of getter names its key, never the value. */
    struct {
        const char *which, *expect;
    } cases[] = {
        {"range", "scoring.weight_value: must be an integer from 0 to 10"},
        {"bool", "scoring.enabled: must be true/false, yes/no, on/off or 1/0"},
        {"ms", "scoring.lag: must be a duration such as 250ms, 2s, 30m, 24h "
               "or 3d"},
    };
    for (size_t i = 0; i < 3; i++) {
        char err2[256] = "";
        cfg = tp_config_new(path, err2, sizeof err2);
        assert_non_null(cfg);
        if (i == 0) tp_config_int(cfg, "scoring", "weight_value", 0, 0, 10);
        if (i == 1) tp_config_bool(cfg, "scoring", "enabled", 0);
        if (i == 2) tp_config_ms(cfg, "scoring", "lag", "1s");
        assert_int_equal(tp_config_check(cfg, err2, sizeof err2), -1);
        /* "<path>:<line>: " then the message */
        size_t plen = strlen(path), elen = strlen(cases[i].expect);
        assert_true(strncmp(err2, path, plen) == 0 && err2[plen] == ':');
        assert_true(strlen(err2) > elen);
        assert_string_equal(err2 + strlen(err2) - elen, cases[i].expect);
        tp_config_destroy(&cfg);
    }

    /* A short buffer still gets a terminated prefix. */
    cfg = tp_config_new(path, err, sizeof err);
    tp_config_int(cfg, "limits", "a", 0, 0, 1);
    char small[8];
    assert_int_equal(tp_config_check(cfg, small, sizeof small), -1);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_true(strncmp(small, path, sizeof small - 1) == 0);
    tp_config_destroy(&cfg);

    /* Integers at the edges of int64 parse; the bounds are inclusive. */
    setenv("TP_LIMITS_A", "-9223372036854775808", 1);
    setenv("TP_LIMITS_B", "9223372036854775807", 1);
    cfg = tp_config_new(NULL, err, sizeof err);
    assert_true(tp_config_int(cfg, "limits", "a", 0, INT64_MIN, 0) ==
                INT64_MIN);
    assert_true(tp_config_int(cfg, "limits", "b", 0, 0, INT64_MAX) ==
                INT64_MAX);
    assert_int_equal(tp_config_check(cfg, err, sizeof err), 0);
    unsetenv("TP_LIMITS_A");
    unsetenv("TP_LIMITS_B");
    tp_config_destroy(&cfg);
    unlink(path);
}

static void test_syntax_error_names_line(void **state) {
    char path[64], err[256] = "", expect[128];
    write_file(path, "[ok]\n"
                     "a = 1\n"
                     "this line has no equals sign\n"
                     "b = 2\n");
    assert_null(tp_config_new(path, err, sizeof err));
    snprintf(expect, sizeof expect, "%s:3: syntax error", path);
    assert_string_equal(err, expect);
    unlink(path);

    write_file(path, "[unclosed\n");
    assert_null(tp_config_new(path, err, sizeof err));
    snprintf(expect, sizeof expect, "%s:1: syntax error", path);
    assert_string_equal(err, expect);
    unlink(path);

    /* inih would cut a long line and read its tail as a line of its own. */
    char text[1024];
    int n = snprintf(text, sizeof text, "[ok]\nurl = https://x/");
    memset(text + n, 'a', 600);
    snprintf(text + n + 600, sizeof text - (size_t)n - 600, "\nb = 2\n");
    write_file(path, text);
    assert_null(tp_config_new(path, err, sizeof err));
    snprintf(expect, sizeof expect, "%s:2: line too long", path);
    assert_string_equal(err, expect);
    unlink(path);
}

static void test_missing_file(void **state) {
    char err[256] = "";
    assert_null(tp_config_new("/nonexistent/tp.ini", err, sizeof err));
    assert_string_equal(err, "cannot open /nonexistent/tp.ini: No such file or "
                             "directory");
    assert_null(tp_config_new("/nonexistent/tp.ini", NULL, 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_env_beats_file),
        cmocka_unit_test(test_env_only),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_bad_values_reported),
        cmocka_unit_test(test_syntax_error_names_line),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
