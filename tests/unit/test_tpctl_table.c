/* test_tpctl_table.c: tpctl's plain output (tools/tpctl_table.c): aligned
 * columns from JSON rows, nested paths, times and durations, the record
 * as "field  value" lines, and the time arguments operators type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tpctl_table.h"

static void test_durations_and_times(void **state) {
    char out[64];
    const struct { int64_t ms; const char *text; } d[] = {
        {0, "0ms"}, {850, "850ms"}, {4000, "4s"}, {59999, "59s"}, {192000, "3m12s"},
        {7500000, "2h05m"}, {356400000, "4d03h"}, {-4000, "-4s"},
    };
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
        tp_table_duration(d[i].ms, out, sizeof out);
        assert_string_equal(out, d[i].text);
    }
    tp_table_time(1796320730599, out, sizeof out);
    assert_string_equal(out, "2026-12-03T17:58:50Z");
    tp_table_time(0, out, sizeof out);
    assert_string_equal(out, "-");
    assert_true(tp_table_time_key("ts") && tp_table_time_key("opened_at") &&
                tp_table_time_key("resolution_due") && tp_table_time_key("due"));
    assert_false(tp_table_time_key("at") || tp_table_time_key("status") ||
                 tp_table_time_key("_due"));
}

static void test_time_arguments(void **state) {
    int64_t t;
    const int64_t now = 1796320730000;
    assert_int_equal(tp_table_parse_time("1796320000000", now, &t), 0);
    assert_int_equal(t, 1796320000000);
    assert_int_equal(tp_table_parse_time("2026-12-03T18:00:00Z", now, &t), 0);
    assert_int_equal(t, 1796320800000);
    assert_int_equal(tp_table_parse_time("2026-12-03T18:00Z", now, &t), 0);
    assert_int_equal(t, 1796320800000);
    assert_int_equal(tp_table_parse_time("2026-12-03", now, &t), 0);
    assert_int_equal(t, 1796256000000);
    assert_int_equal(tp_table_parse_time("+2h", now, &t), 0);
    assert_int_equal(t, now + 7200000);
    const char *bad[] = {"", "soon", "+", "+x", "2026-13-45", "2026-12-03T18:00:00",
                         "12345678901234567890"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(tp_table_parse_time(bad[i], now, &t), -1);
}

static char *render(const json_t *rows, const tp_column_t *cols, size_t n, int64_t now) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tp_table_print(f, rows, cols, n, now);
    fclose(f);
    return buf;
}

static void test_columns_are_aligned_and_missing_is_a_dash(void **state) {
    json_t *rows = json_loads(
        "[{\"service\":\"scoring\",\"applied\":12,\"seen_at\":9000,"
        "  \"sla\":{\"state\":\"running\",\"left_ms\":65000}},"
        " {\"service\":\"ticketing\",\"applied\":3,\"seen_at\":9990,\"up\":true}]",
        0, NULL);
    assert_non_null(rows);
    const tp_column_t cols[] = {
        {"SERVICE", "service", TP_COLUMN_TEXT}, {"AGE", "seen_at", TP_COLUMN_AGE},
        {"N", "applied", TP_COLUMN_TEXT},       {"SLA", "sla.state", TP_COLUMN_TEXT},
        {"LEFT", "sla.left_ms", TP_COLUMN_MS},  {"UP", "up", TP_COLUMN_TEXT},
    };
    char *out = render(rows, cols, 6, 10000);
    assert_string_equal(out,
                        "SERVICE    AGE   N   SLA      LEFT   UP\n"
                        "scoring    1s    12  running  1m05s  -\n"
                        "ticketing  10ms  3   -        -      yes\n");
    free(out);
    /* no rows: the header alone */
    json_t *none = json_array();
    out = render(none, cols, 1, 0);
    assert_string_equal(out, "SERVICE\n");
    free(out);
    json_decref(none);
    json_decref(rows);
}

static void test_cells_stay_on_one_line(void **state) {
    json_t *row = json_pack("{s:s, s:I, s:s}", "text", "two\nlines\tand tab", "due", 1000,
                            "at", "1796320730599");
    char out[128];
    tp_column_t text = {"T", "text", TP_COLUMN_TEXT};
    tp_table_cell(row, &text, 0, out, sizeof out);
    assert_string_equal(out, "two lines and tab");
    tp_column_t until = {"IN", "due", TP_COLUMN_UNTIL};
    tp_table_cell(row, &until, 0, out, sizeof out);
    assert_string_equal(out, "in 1s");
    tp_table_cell(row, &until, 3000, out, sizeof out);
    assert_string_equal(out, "2s ago");
    tp_column_t at = {"AT", "at", TP_COLUMN_TIME}; /* ms as a string: still a time */
    tp_table_cell(row, &at, 0, out, sizeof out);
    assert_string_equal(out, "2026-12-03T17:58:50Z");
    json_decref(row);
}

static void test_record_lines(void **state) {
    json_t *rec = json_loads("{\"id\":\"C1\",\"grading\":{\"grade\":\"A\",\"graded_at\":1796320730599,"
                             "\"reasons\":[\"size\",\"industry\"]},\"deals\":[{\"id\":\"d1\"}],"
                             "\"team\":null,\"tags\":[]}", 0, NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tp_table_print_record(f, rec);
    fclose(f);
    assert_string_equal(buf, "id                 C1\n"
                             "grading.grade      A\n"
                             "grading.graded_at  2026-12-03T17:58:50Z\n"
                             "grading.reasons    size, industry\n"
                             "deals              (1)\n"
                             "team               -\n"
                             "tags               -\n");
    free(buf);
    json_decref(rec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations_and_times),
        cmocka_unit_test(test_time_arguments),
        cmocka_unit_test(test_columns_are_aligned_and_missing_is_a_dash),
        cmocka_unit_test(test_cells_stay_on_one_line),
        cmocka_unit_test(test_record_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
