/* test_horizon.c: the journal trim floor shared by intake and tpctl
 * (tp/horizon.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "tp/horizon.h"

static void test_slowest_cursor_bounds_the_floor(void **state) {
    const char *cursors[] = {"1000-3", "900-0", "1200-7", "1000-3"};
    char out[48];
    /* the horizon (now - retention) far ahead: the slowest cursor's successor */
    assert_int_equal(tp_horizon_floor(cursors, 4, 5000, 0, out, sizeof out), 0);
    assert_string_equal(out, "900-1");
    /* the horizon behind every cursor: the horizon */
    assert_int_equal(tp_horizon_floor(cursors, 4, 5000, 4500, out, sizeof out), 0);
    assert_string_equal(out, "500-0");
    /* never below zero */
    assert_int_equal(tp_horizon_floor(cursors, 4, 5000, 9000, out, sizeof out), 0);
    assert_string_equal(out, "0-0");
}

static void test_a_service_without_cursor_holds_everything(void **state) {
    const char *cursors[] = {"1000-3", NULL, "1200-7", "1000-3"};
    char out[48] = "untouched";
    assert_int_equal(tp_horizon_floor(cursors, 4, 5000, 0, out, sizeof out), -1);
    const char *bad[] = {"1000-3", "soon", "1200-7", "1000-x"};
    assert_int_equal(tp_horizon_floor(bad, 4, 5000, 0, out, sizeof out), -1);
    const char *fine[] = {"1000-3"};
    assert_int_equal(tp_horizon_floor(fine, 1, 5000, 0, out, 3), -1); /* too small */
}

static void test_ids_compare_by_time_then_sequence(void **state) {
    assert_true(tp_horizon_older("999-9", "1000-0"));
    assert_true(tp_horizon_older("1000-1", "1000-2"));
    assert_false(tp_horizon_older("1000-2", "1000-2"));
    assert_false(tp_horizon_older("1001-0", "1000-9"));
    assert_true(tp_horizon_older("1000", "1000-1"));
}

static void test_keys_are_the_journal_then_every_consumers_cursor(void **state) {
    tp_argv_t a;
    tp_argv_init(&a);
    int n = tp_horizon_keys(&a, "tp:");
    assert_int_equal(n, 1 + tp_horizon_count());
    assert_int_equal(tp_horizon_count(), 4);
    assert_string_equal(a.v[0], "tp:{j}:journal");
    assert_string_equal(a.v[1], "tp:cursor:scoring");
    assert_string_equal(a.v[4], "tp:cursor:ticketing");
    for (int i = 0; i < tp_horizon_count(); i++)
        assert_string_not_equal(tp_horizon_service(i), "intake");
    tp_argv_clear(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowest_cursor_bounds_the_floor),
        cmocka_unit_test(test_a_service_without_cursor_holds_everything),
        cmocka_unit_test(test_ids_compare_by_time_then_sequence),
        cmocka_unit_test(test_keys_are_the_journal_then_every_consumers_cursor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
