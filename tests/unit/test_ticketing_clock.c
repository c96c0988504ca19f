/* test_ticketing_clock.c: SLA clocks (R-TICKET-3, R-TICKET-4): around the
 * clock for urgent tickets, in business hours on the calendar otherwise,
 * paused while waiting for the customer. The default calendar: UTC,
 * Monday to Friday, 09:00-18:00. 2026-11-20 is a Friday. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "ticketing_clock.h"

#define MIN 60000LL
#define HOUR (60 * MIN)

/* ms of a UTC civil time */
static int64_t at(int y, int mo, int d, int h, int mi) {
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

static tp_calendar_t *cal;

static void test_R_TICKET_3_urgent_runs_around_the_clock(void **state) {
    (void)state;
    tp_sla_clock_t c;
    int64_t t = at(2026, 11, 20, 23, 50); /* Friday night */
    tp_sla_clock_init(&c, t, 30 * MIN, NULL);
    assert_int_equal(tp_sla_clock_deadline(&c), t + 30 * MIN);
    assert_int_equal(tp_sla_clock_used(&c, t + 10 * MIN), 10 * MIN);
}

static void test_R_TICKET_3_business_hours_skip_the_weekend(void **state) {
    (void)state;
    tp_sla_clock_t c;
    tp_sla_clock_init(&c, at(2026, 11, 20, 17, 0), 2 * HOUR, cal);
    /* one hour on Friday, one on Monday morning */
    assert_int_equal(tp_sla_clock_deadline(&c), at(2026, 11, 23, 10, 0));
    assert_int_equal(tp_sla_clock_used(&c, at(2026, 11, 22, 12, 0)), HOUR);
    /* opened outside hours: the clock starts when work does */
    tp_sla_clock_init(&c, at(2026, 11, 21, 11, 0), 2 * HOUR, cal);
    assert_int_equal(tp_sla_clock_deadline(&c), at(2026, 11, 23, 11, 0));
}

static void test_R_TICKET_3_waiting_for_the_customer_pauses(void **state) {
    (void)state;
    tp_sla_clock_t c;
    /* Monday 10:00, two working hours; waiting for the customer from 10:30
     * until Tuesday 09:00: 1.5 h remain from Tuesday 09:00 */
    tp_sla_clock_init(&c, at(2026, 11, 23, 10, 0), 2 * HOUR, cal);
    assert_int_equal(tp_sla_clock_pause(&c, at(2026, 11, 23, 10, 30)), 0);
    assert_true(tp_sla_clock_paused(&c));
    assert_int_equal(tp_sla_clock_deadline(&c), 0); /* no deadline runs */
    assert_int_equal(tp_sla_clock_used(&c, at(2026, 11, 23, 17, 0)), 30 * MIN);
    tp_sla_clock_resume(&c, at(2026, 11, 24, 9, 0));
    assert_false(tp_sla_clock_paused(&c));
    assert_int_equal(tp_sla_clock_deadline(&c), at(2026, 11, 24, 10, 30));
    assert_int_equal(tp_sla_clock_used(&c, at(2026, 11, 24, 10, 0)), 90 * MIN);
    /* a second wait */
    tp_sla_clock_pause(&c, at(2026, 11, 24, 10, 0));
    tp_sla_clock_resume(&c, at(2026, 11, 24, 15, 0));
    assert_int_equal(tp_sla_clock_deadline(&c), at(2026, 11, 24, 15, 30));
    /* pausing twice or resuming a running clock changes nothing */
    tp_sla_clock_resume(&c, at(2026, 11, 24, 16, 0));
    assert_int_equal(tp_sla_clock_deadline(&c), at(2026, 11, 24, 15, 30));
}

static void test_R_TICKET_3_pause_on_a_24x7_clock(void **state) {
    (void)state;
    tp_sla_clock_t c;
    int64_t t = at(2026, 11, 21, 3, 0);
    tp_sla_clock_init(&c, t, 30 * MIN, NULL);
    tp_sla_clock_pause(&c, t + 10 * MIN);
    tp_sla_clock_resume(&c, t + 70 * MIN);
    assert_int_equal(tp_sla_clock_deadline(&c), t + 90 * MIN);
}

static void test_R_TICKET_4_warning_point(void **state) {
    (void)state;
    tp_sla_clock_t c;
    /* 80% of two working hours from Monday 09:00: 10:36 */
    tp_sla_clock_init(&c, at(2026, 11, 23, 9, 0), 2 * HOUR, cal);
    assert_int_equal(tp_sla_clock_point(&c, 80), at(2026, 11, 23, 10, 36));
    assert_int_equal(tp_sla_clock_point(&c, 100), tp_sla_clock_deadline(&c));
    assert_int_equal(tp_sla_clock_point(&c, 500), tp_sla_clock_deadline(&c));
}

/* R-TICKET-4: the warning of a business-hours clock falls in working time,
 * across the weekend, and moves with a pause like the deadline does. */
static void test_R_TICKET_4_warning_point_across_the_weekend_and_a_pause(void **state) {
    (void)state;
    tp_sla_clock_t c;
    /* Friday 17:00, two working hours: 80% (96 min) is Monday 09:36 */
    tp_sla_clock_init(&c, at(2026, 11, 20, 17, 0), 2 * HOUR, cal);
    assert_int_equal(tp_sla_clock_point(&c, 80), at(2026, 11, 23, 9, 36));
    assert_int_equal(tp_sla_clock_point(&c, 50), at(2026, 11, 20, 18, 0));
    /* waiting for the customer Friday 17:30 .. Monday 11:00 */
    tp_sla_clock_pause(&c, at(2026, 11, 20, 17, 30));
    assert_int_equal(tp_sla_clock_point(&c, 80), 0); /* no warning runs */
    tp_sla_clock_resume(&c, at(2026, 11, 23, 11, 0));
    /* 30 min used; 66 more to the warning, 90 to the deadline */
    assert_int_equal(tp_sla_clock_point(&c, 80), at(2026, 11, 23, 12, 6));
    assert_int_equal(tp_sla_clock_deadline(&c), at(2026, 11, 23, 12, 30));
}

/* A pause that lies wholly outside working time costs nothing. */
static void test_R_TICKET_3_pause_outside_hours_changes_nothing(void **state) {
    (void)state;
    tp_sla_clock_t c, d;
    tp_sla_clock_init(&c, at(2026, 11, 20, 16, 0), 4 * HOUR, cal);
    tp_sla_clock_init(&d, at(2026, 11, 20, 16, 0), 4 * HOUR, cal);
    tp_sla_clock_pause(&d, at(2026, 11, 21, 10, 0)); /* Saturday */
    tp_sla_clock_resume(&d, at(2026, 11, 22, 10, 0)); /* Sunday */
    assert_int_equal(tp_sla_clock_deadline(&c), tp_sla_clock_deadline(&d));
    assert_int_equal(tp_sla_clock_deadline(&c), at(2026, 11, 23, 11, 0));
}

static void test_pause_list_full_keeps_the_clock_running(void **state) {
    (void)state;
    tp_sla_clock_t c;
    int64_t t = at(2026, 11, 21, 0, 0);
    tp_sla_clock_init(&c, t, 10 * HOUR, NULL);
    for (int i = 0; i < TP_CLOCK_PAUSES_MAX; i++) {
        assert_int_equal(tp_sla_clock_pause(&c, t + i * 2 * MIN), 0);
        tp_sla_clock_resume(&c, t + i * 2 * MIN + MIN);
    }
    assert_int_equal(tp_sla_clock_pause(&c, t + HOUR), -1);
    assert_false(tp_sla_clock_paused(&c));
    /* 32 one-minute pauses: 32 minutes later than without */
    assert_int_equal(tp_sla_clock_deadline(&c), t + 10 * HOUR + 32 * MIN);
}

int main(void) {
    char err[256];
    cal = tp_calendar_new(NULL, err, sizeof err);
    if (!cal) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R_TICKET_3_urgent_runs_around_the_clock),
        cmocka_unit_test(test_R_TICKET_3_business_hours_skip_the_weekend),
        cmocka_unit_test(test_R_TICKET_3_waiting_for_the_customer_pauses),
        cmocka_unit_test(test_R_TICKET_3_pause_on_a_24x7_clock),
        cmocka_unit_test(test_R_TICKET_4_warning_point),
        cmocka_unit_test(test_R_TICKET_4_warning_point_across_the_weekend_and_a_pause),
        cmocka_unit_test(test_R_TICKET_3_pause_outside_hours_changes_nothing),
        cmocka_unit_test(test_pause_list_full_keeps_the_clock_running),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tp_calendar_destroy(&cal);
    return failed;
}
