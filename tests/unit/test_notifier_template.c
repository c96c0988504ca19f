/* test_notifier_template.c: templates load only when every placeholder is
 * a field of the event in the catalogue (or an extra), optional fields
 * need a fallback, errors name file:line, rendering falls back by rule and
 * language, HTML escapes; the shipped deploy/templates load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "notifier_fixture.h"
#include "notifier_template.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tp-test-tpl-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    fx_rmdir(dir);
    return 0;
}

static void put(const char *name, const char *text) {
    char path[200];
    fx_write(path, sizeof path, dir, name, text);
}

static tp_templates_t *load(char *err, size_t len) {
    return tp_templates_new(dir, err, len);
}

static void test_renders_with_fallbacks(void **state) {
    (void)state;
    put("reminder.due.en.txt", "Subject: {{rule}} for {{customer_name}}\n\n"
                               "Do: {{text|something}}\nby {{due_at}}\n");
    put("reminder.due.en.html", "<p>{{text|something}}</p>");
    put("reminder.due.R-DAYS-1.zh-CN.txt", "Subject: 问候 {{customer_name}}\n\n你好\n");
    char err[300] = "";
    tp_templates_t *t = load(err, sizeof err);
    assert_non_null(t);
    json_t *f = json_pack("{s:s, s:s, s:s}", "rule", "R-TOUCH-1", "customer_name",
                          "ACME", "due_at", "2026-12-03 09:00");
    char *subject, *text, *html;
    /* zh-CN has no plain reminder template: falls back to en */
    assert_int_equal(tp_templates_render(t, "reminder.due", "R-TOUCH-1", "zh-CN", "en",
                                         f, &subject, &text, &html, err, sizeof err),
                     0);
    assert_string_equal(subject, "R-TOUCH-1 for ACME");
    assert_string_equal(text, "Do: something\nby 2026-12-03 09:00\n");
    assert_string_equal(html, "<p>something</p>");
    free(subject), free(text), free(html);
    /* the rule's own template wins in its language; HTML escapes */
    json_object_set_new(f, "text", json_string("<script>&"));
    assert_int_equal(tp_templates_render(t, "reminder.due", "R-TOUCH-1", "en", "en", f,
                                         &subject, &text, &html, err, sizeof err),
                     0);
    assert_string_equal(html, "<p>&lt;script&gt;&amp;</p>");
    assert_string_equal(text, "Do: <script>&\nby 2026-12-03 09:00\n");
    free(subject), free(text), free(html);
    assert_int_equal(tp_templates_render(t, "reminder.due", "R-DAYS-1", "zh-CN", "en",
                                         f, &subject, &text, &html, err, sizeof err),
                     0);
    assert_string_equal(subject, "问候 ACME");
    assert_null(html);
    free(subject), free(text);
    /* a customer-facing rule never falls back to a staff template */
    assert_false(tp_templates_has(t, "reminder.due", "R-DAYS-1.customer", "en", "en"));
    assert_int_equal(tp_templates_render(t, "sla.breached", "", "en", "en", f, &subject,
                                         &text, &html, err, sizeof err),
                     -1);
    /* a subject stays one line whatever a field holds */
    json_object_set_new(f, "customer_name", json_string("A\r\nBcc: x"));
    assert_int_equal(tp_templates_render(t, "reminder.due", "", "en", "en", f, &subject,
                                         &text, &html, err, sizeof err),
                     0);
    assert_null(strchr(subject, '\n'));
    free(subject), free(text), free(html);
    json_decref(f);
    tp_templates_destroy(&t);
    tp_templates_destroy(&t);
}

static void expect_refused(const char *name, const char *text, const char *why) {
    put(name, text);
    char err[300] = "";
    tp_templates_t *t = load(err, sizeof err);
    assert_null(t);
    if (!strstr(err, why)) fail_msg("got \"%s\", want \"%s\"", err, why);
    char path[200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static void test_refusals_name_file_and_line(void **state) {
    (void)state;
    expect_refused("reminder.due.en.txt", "Subject: x\n\n{{nosuch}}\n",
                   "reminder.due.en.txt:3: {{nosuch}}: reminder.due has no such field");
    expect_refused("reminder.due.en.txt", "Subject: x\n\nok\n{{late_ms}}\n",
                   "reminder.due.en.txt:4: {{late_ms}}: optional in reminder.due");
    expect_refused("sla.breached.en.txt", "Subject: {{title}}\n\n.\n",
                   "sla.breached.en.txt:1: {{title}}: optional");
    expect_refused("no.such.en.txt", "Subject: x\n\n.\n", "unknown event type \"no.such\"");
    expect_refused("reminder.due.en.txt", "Hello\n", ":1: expected \"Subject: ...\"");
    expect_refused("reminder.due.en.txt", "Subject: {{rule\n\n.\n", "malformed placeholder");
    expect_refused("reminder.due.en.html", "<p>{{rule}}</p>", "no reminder.due.en.txt");
    /* a digest has its own fields, not the event's */
    expect_refused("reminder.due.digest.en.txt", "Subject: {{count}}\n\n{{rule}}\n",
                   "digest.en.txt:3: {{rule}}: a digest has only");
    /* nested fields of an object: contact.name of lead.captured exists */
    put("lead.captured.en.txt", "Subject: {{company}}\n\n{{contact.name|someone}}\n");
    char err[300];
    tp_templates_t *t = load(err, sizeof err);
    assert_non_null(t);
    tp_templates_destroy(&t);
}

static void test_shipped_templates_load(void **state) {
    (void)state;
    char shipped[512], err[300] = "";
    const char *src = getenv("TP_SOURCE_DIR");
    snprintf(shipped, sizeof shipped, "%s/deploy/templates", src ? src : "../..");
    tp_templates_t *t = tp_templates_new(shipped, err, sizeof err);
    if (!t) fail_msg("%s", err);
    static const char *const kinds[] = {"reminder.due", "sla.breached", "customer.at_risk"};
    for (size_t i = 0; i < 3; i++) {
        assert_true(tp_templates_has(t, kinds[i], "", "en", NULL));
        assert_true(tp_templates_has(t, kinds[i], "", "zh-CN", NULL));
    }
    assert_true(tp_templates_has(t, "reminder.due", "R-DAYS-1.customer", "zh-CN", NULL));
    assert_true(tp_templates_has(t, "reminder.due", "digest", "en", NULL));
    assert_true(tp_templates_has(t, "reminder.due", "digest", "zh-CN", NULL));
    tp_templates_destroy(&t);
}

static void test_expand_and_check(void **state) {
    (void)state;
    char bad[64];
    assert_int_equal(tp_template_check("{\"t\": \"{{text}}\"}", "text|subject", bad, sizeof bad), 0);
    assert_int_equal(tp_template_check("{{nope}}", "text|subject", bad, sizeof bad), -1);
    assert_string_equal(bad, "nope");
    json_t *f = json_pack("{s:s}", "text", "a \"quoted\"\nline");
    char *out;
    assert_int_equal(tp_template_expand("{\"t\": \"{{text}}\"}", f, 1, &out), 0);
    assert_string_equal(out, "{\"t\": \"a \\\"quoted\\\"\\nline\"}");
    free(out);
    assert_int_equal(tp_template_expand("{{missing}}", f, 1, &out), -1);
    json_decref(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_renders_with_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_name_file_and_line, setup, teardown),
        cmocka_unit_test(test_shipped_templates_load),
        cmocka_unit_test(test_expand_and_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
