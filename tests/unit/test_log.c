/* test_log.c: the JSON line of tp/log.h: its fields, escaping, the event
 * context, the level filter, and that lines go to stdout by default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tp/log.h"

/* Parses one line as JSON; asserts it is one object ending in '\n'. */
static json_t *parse_line(const char *line) {
    size_t n = strlen(line);
    assert_true(n > 0 && line[n - 1] == '\n');
    assert_null(memchr(line, '\n', n - 1)); /* one line */
    json_error_t err;
    json_t *o = json_loadb(line, n, 0, &err);
    if (!o) fail_msg("not JSON (%s): %s", err.text, line);
    assert_true(json_is_object(o));
    return o;
}

static const char *field(json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static void test_fields(void **state) {
    (void)state;
    char line[4096];
    tp_log_init("scoring", "scoring-7", TP_LOG_INFO);
    tp_log_format(line, sizeof line, TP_LOG_WARN, "redis: reconnecting");
    json_t *o = parse_line(line);
    assert_string_equal(field(o, "level"), "warn");
    assert_string_equal(field(o, "service"), "scoring");
    assert_string_equal(field(o, "instance"), "scoring-7");
    assert_string_equal(field(o, "msg"), "redis: reconnecting");
    const char *t = field(o, "time"); /* 2026-12-03T17:45:01.123Z */
    assert_non_null(t);
    assert_int_equal(strlen(t), 24);
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[23], 'Z');
    assert_null(json_object_get(o, "event")); /* no context: left out */
    assert_null(json_object_get(o, "customer"));
    json_decref(o);
}

static void test_escaping(void **state) {
    (void)state;
    char line[4096];
    const char *msg = "quote \" backslash \\ newline \n tab \t bell \a del \x7f utf8 \xc3\xa9";
    tp_log_init("svc\"x", "inst\\y", TP_LOG_INFO);
    tp_log_format(line, sizeof line, TP_LOG_ERROR, msg);
    json_t *o = parse_line(line);
    assert_string_equal(field(o, "msg"), msg);
    assert_string_equal(field(o, "service"), "svc\"x");
    assert_string_equal(field(o, "instance"), "inst\\y");
    json_decref(o);
}

static void test_context(void **state) {
    (void)state;
    char line[4096];
    tp_log_init("ticketing", "t1", TP_LOG_INFO);
    tp_log_context_set("01JZB0000000000000000000AB", "ACME-\"1\"");
    tp_log_format(line, sizeof line, TP_LOG_INFO, "ticket opened");
    json_t *o = parse_line(line);
    assert_string_equal(field(o, "event"), "01JZB0000000000000000000AB");
    assert_string_equal(field(o, "customer"), "ACME-\"1\"");
    json_decref(o);
    tp_log_context_set("ev-2", NULL); /* an event without a customer yet */
    tp_log_format(line, sizeof line, TP_LOG_INFO, "x");
    o = parse_line(line);
    assert_string_equal(field(o, "event"), "ev-2");
    assert_null(json_object_get(o, "customer"));
    json_decref(o);
    tp_log_context_clear();
    tp_log_format(line, sizeof line, TP_LOG_INFO, "after");
    o = parse_line(line);
    assert_null(json_object_get(o, "event"));
    json_decref(o);
}

static void test_cut_to_fit(void **state) {
    (void)state;
    char line[120];
    char msg[1000];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    tp_log_init("s", "i", TP_LOG_INFO);
    size_t n = tp_log_format(line, sizeof line, TP_LOG_INFO, msg);
    assert_int_equal(n, sizeof line - 1);
    json_decref(parse_line(line)); /* still one JSON line */
}

/* tp_log writes to stdout (not stderr) and filters by level. */
static void test_stdout_and_level(void **state) {
    (void)state;
    char path[] = "/tmp/test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    assert_true(dup2(fd, 1) == 1);
    tp_log_stream(NULL); /* the default: stdout */
    tp_log_init("notifier", "n1", TP_LOG_WARN);
    tp_log_info("below the level: %d", 1);
    tp_log_warn("delivery %s failed", "d-1");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    char line[4096] = "";
    assert_non_null(fgets(line, sizeof line, f));
    json_t *o = parse_line(line);
    assert_string_equal(field(o, "msg"), "delivery d-1 failed");
    assert_string_equal(field(o, "level"), "warn");
    json_decref(o);
    assert_null(fgets(line, sizeof line, f)); /* the info line was filtered */
    fclose(f);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_context),
        cmocka_unit_test(test_cut_to_fit),
        cmocka_unit_test(test_stdout_and_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
