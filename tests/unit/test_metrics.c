/* test_metrics.c: the registry of tp/metrics.h and its Prometheus text:
 * HELP/TYPE lines, constant and own labels, escaping of label values and
 * help text, histogram _bucket/_sum/_count, collect callbacks, and the
 * registration rules (names, label clashes, NULL safety). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tp/log.h"
#include "tp/metrics.h"

/* Asserts that `text` holds `line` as a whole line. */
static void assert_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return;
    fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void test_counter_and_gauge_lines(void **state) {
    (void)state;
    tp_metrics_t *m = tp_metrics_new("scoring", "scoring-1");
    tp_metric_t *events = tp_metrics_counter(m, "tp_events_applied_total",
                                             "Events applied.", "type");
    tp_metric_t *up = tp_metrics_gauge(m, "tp_redis_connected", "1 while up.", NULL);
    tp_series_add(tp_metric_at(events, "lead.captured"), 2);
    tp_series_inc(tp_metric_at(events, "lead.captured"));
    tp_series_inc(tp_metric_at(events, "contact.logged"));
    tp_series_set(tp_metric_at(up), 1);
    assert_true(tp_series_value(tp_metric_at(events, "lead.captured")) == 3);

    char *text = tp_metrics_render(m, NULL);
    assert_line(text, "# HELP tp_events_applied_total Events applied.");
    assert_line(text, "# TYPE tp_events_applied_total counter");
    assert_line(text, "tp_events_applied_total{service=\"scoring\",instance=\"scoring-1\","
                      "type=\"lead.captured\"} 3");
    assert_line(text, "tp_events_applied_total{service=\"scoring\",instance=\"scoring-1\","
                      "type=\"contact.logged\"} 1");
    assert_line(text, "# TYPE tp_redis_connected gauge");
    assert_line(text, "tp_redis_connected{service=\"scoring\",instance=\"scoring-1\"} 1");
    /* HELP and TYPE come once per family, before its samples */
    assert_true(strstr(text, "# TYPE tp_events_applied_total") <
                strstr(text, "tp_events_applied_total{"));
    assert_null(strstr(strstr(text, "# TYPE tp_events_applied_total") + 1,
                       "# TYPE tp_events_applied_total"));
    free(text);
    tp_metrics_destroy(&m);
    assert_null(m);
    tp_metrics_destroy(&m); /* twice: harmless */
}

static void test_escaping(void **state) {
    (void)state;
    tp_metrics_t *m = tp_metrics_new("a\"b", NULL);
    tp_metric_t *c = tp_metrics_counter(m, "tp_x_total", "back\\slash\nnew line \"q\"",
                                        "who");
    tp_series_inc(tp_metric_at(c, "q\"uote\\back\nline"));
    char *text = tp_metrics_render(m, NULL);
    /* HELP escapes backslash and line feed, not quotes */
    assert_line(text, "# HELP tp_x_total back\\\\slash\\nnew line \"q\"");
    /* label values escape all three */
    assert_line(text, "tp_x_total{service=\"a\\\"b\",who=\"q\\\"uote\\\\back\\nline\"} 1");
    free(text);
    tp_metrics_destroy(&m);
}

static void test_histogram(void **state) {
    (void)state;
    tp_metrics_t *m = tp_metrics_new(NULL, NULL);
    const double bounds[] = {0.1, 0.5, 1};
    tp_metric_t *h = tp_metrics_histogram(m, "tp_apply_seconds", "Apply time.", "type",
                                          bounds, 3);
    tp_series_t *s = tp_metric_at(h, "t");
    tp_series_observe(s, 0.05);
    tp_series_observe(s, 0.1); /* on the bound: in that bucket (le) */
    tp_series_observe(s, 0.7);
    tp_series_observe(s, 3);
    char *text = tp_metrics_render(m, NULL);
    assert_line(text, "# TYPE tp_apply_seconds histogram");
    assert_line(text, "tp_apply_seconds_bucket{type=\"t\",le=\"0.1\"} 2");
    assert_line(text, "tp_apply_seconds_bucket{type=\"t\",le=\"0.5\"} 2");
    assert_line(text, "tp_apply_seconds_bucket{type=\"t\",le=\"1\"} 3");
    assert_line(text, "tp_apply_seconds_bucket{type=\"t\",le=\"+Inf\"} 4");
    assert_line(text, "tp_apply_seconds_sum{type=\"t\"} 3.85");
    assert_line(text, "tp_apply_seconds_count{type=\"t\"} 4");
    assert_true(tp_series_value(s) == 4);
    free(text);

    /* the default bounds are seconds from 0.5 ms, unlabelled series shown
     * before first use */
    tp_metric_t *d = tp_metrics_histogram(m, "tp_redis_roundtrip_seconds", "RTT.", NULL,
                                          NULL, 0);
    assert_non_null(d);
    text = tp_metrics_render(m, NULL);
    assert_line(text, "tp_redis_roundtrip_seconds_bucket{le=\"0.0005\"} 0");
    assert_line(text, "tp_redis_roundtrip_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(text, "tp_redis_roundtrip_seconds_count 0");
    free(text);
    tp_metrics_destroy(&m);
}

static void collect_tickets(tp_metric_t *metric, void *arg) {
    int *calls = arg;
    (*calls)++;
    tp_series_set(tp_metric_at(metric, "open"), 7);
    tp_series_set(tp_metric_at(metric, "closed"), 2.5);
}

static void test_collect_runs_at_render(void **state) {
    (void)state;
    tp_metrics_t *m = tp_metrics_new("ticketing", "t1");
    int calls = 0;
    tp_metric_on_collect(tp_metrics_gauge(m, "tp_tickets", "Tickets by state.", "state"),
                         collect_tickets, &calls);
    assert_int_equal(calls, 0);
    size_t len = 0;
    char *text = tp_metrics_render(m, &len);
    assert_int_equal(calls, 1);
    assert_int_equal(len, strlen(text));
    assert_line(text, "tp_tickets{service=\"ticketing\",instance=\"t1\",state=\"open\"} 7");
    assert_line(text, "tp_tickets{service=\"ticketing\",instance=\"t1\",state=\"closed\"} 2.5");
    free(text);
    tp_metrics_destroy(&m);
}

static void test_registration_rules(void **state) {
    (void)state;
    tp_metrics_t *m = tp_metrics_new(NULL, NULL);
    tp_metric_t *a = tp_metrics_counter(m, "tp_a_total", "A.", "x");
    assert_non_null(a);
    assert_ptr_equal(tp_metrics_counter(m, "tp_a_total", "A.", "x"), a); /* same */
    assert_null(tp_metrics_gauge(m, "tp_a_total", "A.", NULL));           /* clash */
    assert_null(tp_metrics_counter(m, "9bad", "B.", NULL));
    assert_null(tp_metrics_counter(m, "tp-bad", "B.", NULL));
    assert_null(tp_metrics_counter(m, "tp_b", "B.", "le"));       /* reserved */
    assert_null(tp_metrics_counter(m, "tp_c", "C.", "service"));  /* constant */
    assert_null(tp_metrics_counter(m, "tp_d", "D.", "a,b,c,d,e")); /* too many */
    const double down[] = {1, 0.5};
    assert_null(tp_metrics_histogram(m, "tp_h", "H.", NULL, down, 2));
    /* NULL everywhere is a no-op */
    assert_null(tp_metrics_counter(NULL, "tp_x", "X.", NULL));
    assert_null(tp_metric_at(NULL));
    tp_series_inc(NULL);
    tp_series_observe(NULL, 1);
    assert_true(tp_series_value(NULL) == 0);
    /* a gauge ignores observe, a histogram set */
    tp_series_t *g = tp_metric_at(tp_metrics_gauge(m, "tp_g", "G.", NULL));
    tp_series_observe(g, 5);
    assert_true(tp_series_value(g) == 0);
    /* a NULL label value is "" */
    tp_series_inc(tp_metric_at(a, NULL));
    char *text = tp_metrics_render(m, NULL);
    assert_line(text, "tp_a_total{x=\"\"} 1");
    assert_line(text, "tp_g 0");
    free(text);
    tp_metrics_destroy(&m);
}

int main(void) {
    tp_log_init("test_metrics", "", TP_LOG_ERROR);
    tp_log_stream(stderr);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge_lines),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_collect_runs_at_render),
        cmocka_unit_test(test_registration_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
