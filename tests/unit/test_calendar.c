/* test_calendar.c: the business calendar (R-CAL-1), business-hours clocks
 * (R-TICKET-3) and quiet hours (R-CAL-2), against calendar files written to
 * temporary files and the shipped deploy/calendars/cn-2026.ini. Times are
 * written as local wall clocks and checked as local wall clocks, with the
 * UTC instant spelled out where the zone's offset is the point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tp/calendar.h"

#define HOUR_MS (3600 * 1000LL)
#define MIN_MS (60 * 1000LL)

/* ---------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

/* Writes `text` to a fresh temporary file; `path` receives its name. */
static void write_file(char path[64], const char *text) {
    snprintf(path, 64, "/tmp/tp-test-calendar-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* Loads `text` as a calendar file; fails the test when it does not load. */
static tp_calendar_t *load_text(const char *text) {
    char path[64], err[256] = "";
    write_file(path, text);
    tp_calendar_t *cal = tp_calendar_new(path, err, sizeof err);
    unlink(path);
    if (!cal) fail_msg("tp_calendar_new: %s", err);
    return cal;
}

/* The shipped calendar: $TP_SOURCE_DIR (set by ctest), else the source
 * tree this file was compiled from. */
static tp_calendar_t *load_cn_2026(void) {
    char path[512], err[512] = "";
    const char *root = getenv("TP_SOURCE_DIR");
    if (root) {
        snprintf(path, sizeof path, "%s/deploy/calendars/cn-2026.ini", root);
    } else {
        snprintf(path, sizeof path, "%s", __FILE__);
        char *cut = strstr(path, "/tests/unit/test_calendar.c");
        assert_non_null(cut);
        snprintf(cut, sizeof path - (size_t)(cut - path),
                 "/deploy/calendars/cn-2026.ini");
    }
    tp_calendar_t *cal = tp_calendar_new(path, err, sizeof err);
    if (!cal) fail_msg("tp_calendar_new(%s): %s", path, err);
    return cal;
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi) {
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

static int64_t local_ms(const tp_calendar_t *cal, int y, int mo, int d, int h,
                        int mi) {
    tp_local_time_t t = {
        .year = y, .month = mo, .day = d, .hour = h, .minute = mi};
    return tp_calendar_from_local(cal, &t);
}

/* "2026-03-09 18:00:00 Mon", the calendar's wall clock at `ms`. */
static const char *show(const tp_calendar_t *cal, int64_t ms) {
    static char buf[4][40];
    static int next;
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                       "Thu", "Fri", "Sat"};
    char *out = buf[next++ % 4];
    tp_local_time_t t;
    tp_calendar_to_local(cal, ms, &t);
    assert_in_range(t.weekday, 0, 6);
    snprintf(out, sizeof buf[0], "%04d-%02d-%02d %02d:%02d:%02d %s", t.year,
             t.month, t.day, t.hour, t.minute, t.second, days[t.weekday]);
    return out;
}

#define SHANGHAI_9_TO_6                                                        \
    "[calendar]\n"                                                             \
    "time_zone = Asia/Shanghai\n"                                              \
    "work_days = mon,tue,wed,thu,fri\n"                                        \
    "work_hours = 09:00-12:00,13:00-18:00\n"

/* ---------------------------------------------------------------------
 * R-CAL-1: working days, holidays, make-up days
 * --------------------------------------------------------------------- */

static void test_default_calendar_is_utc_mon_fri_9_to_18(void **state) {
    tp_calendar_t *cal = tp_calendar_new(NULL, NULL, 0);
    assert_non_null(cal);
    assert_string_equal(tp_calendar_zone(cal), "UTC");
    /* 2026-03-02 is a Monday, 2026-03-07 a Saturday. */
    assert_true(tp_calendar_working_time(cal, utc_ms(2026, 3, 2, 9, 0)));
    assert_true(tp_calendar_working_time(cal, utc_ms(2026, 3, 2, 17, 59)));
    assert_false(tp_calendar_working_time(cal, utc_ms(2026, 3, 2, 18, 0)));
    assert_false(tp_calendar_working_time(cal, utc_ms(2026, 3, 2, 8, 59)));
    assert_false(tp_calendar_working_day(cal, utc_ms(2026, 3, 7, 12, 0)));
    assert_int_equal(
        tp_calendar_next_working_time(cal, utc_ms(2026, 3, 6, 18, 0)),
        utc_ms(2026, 3, 9, 9, 0));
    tp_calendar_destroy(&cal);
    assert_null(cal);
    tp_calendar_destroy(&cal);
    tp_calendar_destroy(NULL);
}

/* The contract counts `days` working days after from's day (day 0 is
 * from's own day): Tuesday + 3 is Friday's close in a plain week; with
 * Wednesday a holiday the three are Thursday, Friday and Monday. */
static void test_r_cal_1_holiday_inside_three_working_days(void **state) {
    tp_calendar_t *plain = load_text(SHANGHAI_9_TO_6);
    tp_calendar_t *cal =
        load_text(SHANGHAI_9_TO_6 "[holidays]\n"
                                  "2026-03-04 = a Wednesday off\n");
    int64_t tuesday = local_ms(cal, 2026, 3, 3, 10, 0);

    assert_string_equal(
        show(plain, tp_calendar_add_working_days(plain, tuesday, 3)),
        "2026-03-06 18:00:00 Fri");
    assert_string_equal(
        show(cal, tp_calendar_add_working_days(cal, tuesday, 3)),
        "2026-03-09 18:00:00 Mon");
    assert_string_equal(
        show(cal, tp_calendar_add_working_days(cal, tuesday, 2)),
        "2026-03-06 18:00:00 Fri");
    assert_string_equal(
        show(cal, tp_calendar_add_working_days(cal, tuesday, 1)),
        "2026-03-05 18:00:00 Thu");
    assert_string_equal(
        show(cal, tp_calendar_add_working_days(cal, tuesday, 0)),
        "2026-03-03 18:00:00 Tue");
    /* From the holiday itself, day 0 is the next working day. */
    int64_t wednesday = local_ms(cal, 2026, 3, 4, 10, 0);
    assert_false(tp_calendar_working_day(cal, wednesday));
    assert_false(tp_calendar_working_time(cal, wednesday));
    assert_string_equal(
        show(cal, tp_calendar_add_working_days(cal, wednesday, 0)),
        "2026-03-05 18:00:00 Thu");
    /* Local dates, not UTC ones: 07:00 Wednesday in Shanghai is still
     * Tuesday in UTC, and it is the holiday. */
    assert_false(tp_calendar_working_day(cal, local_ms(cal, 2026, 3, 4, 7, 0)));
    assert_true(
        tp_calendar_working_day(cal, local_ms(cal, 2026, 3, 3, 23, 59)));
    tp_calendar_destroy(&plain);
    tp_calendar_destroy(&cal);
}

static void test_r_cal_1_makeup_saturday_is_working_day(void **state) {
    tp_calendar_t *cal =
        load_text(SHANGHAI_9_TO_6 "[workdays]\n"
                                  "2026-03-07 = make-up Saturday\n");
    assert_true(tp_calendar_working_day(cal, local_ms(cal, 2026, 3, 7, 0, 0)));
    assert_true(
        tp_calendar_working_time(cal, local_ms(cal, 2026, 3, 7, 10, 0)));
    assert_false(
        tp_calendar_working_time(cal, local_ms(cal, 2026, 3, 7, 12, 30)));
    assert_false(
        tp_calendar_working_day(cal, local_ms(cal, 2026, 3, 8, 10, 0)));

    int64_t friday_late = local_ms(cal, 2026, 3, 6, 17, 0);
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(cal, friday_late, 2 * HOUR_MS)),
        "2026-03-07 10:00:00 Sat");
    assert_string_equal(
        show(cal, tp_calendar_add_working_days(cal, friday_late, 1)),
        "2026-03-07 18:00:00 Sat");
    assert_string_equal(show(cal, tp_calendar_next_working_time(
                                      cal, local_ms(cal, 2026, 3, 6, 18, 0))),
                        "2026-03-07 09:00:00 Sat");
    tp_calendar_destroy(&cal);
}

static void test_r_cal_1_next_working_time(void **state) {
    tp_calendar_t *cal = load_cn_2026();
    /* Inside hours: itself. Lunch: 13:00. Evening: tomorrow 09:00. */
    int64_t at = local_ms(cal, 2026, 3, 5, 10, 15);
    assert_int_equal(tp_calendar_next_working_time(cal, at), at);
    assert_string_equal(show(cal, tp_calendar_next_working_time(
                                      cal, local_ms(cal, 2026, 3, 5, 12, 0))),
                        "2026-03-05 13:00:00 Thu");
    assert_string_equal(show(cal, tp_calendar_next_working_time(
                                      cal, local_ms(cal, 2026, 3, 5, 18, 0))),
                        "2026-03-06 09:00:00 Fri");
    /* Across the National Day week to the first day back. */
    assert_string_equal(show(cal, tp_calendar_next_working_time(
                                      cal, local_ms(cal, 2026, 9, 30, 18, 30))),
                        "2026-10-08 09:00:00 Thu");
    /* Friday evening after the week back: the make-up Saturday. */
    assert_string_equal(show(cal, tp_calendar_next_working_time(
                                      cal, local_ms(cal, 2026, 10, 9, 19, 0))),
                        "2026-10-10 09:00:00 Sat");
    tp_calendar_destroy(&cal);
}

/* ---------------------------------------------------------------------
 * Zones: Asia/Shanghai has no DST, Europe/Berlin does
 * --------------------------------------------------------------------- */

static void test_r_cal_1_shanghai_has_no_dst(void **state) {
    tp_calendar_t *cal = load_text(SHANGHAI_9_TO_6);
    assert_string_equal(tp_calendar_zone(cal), "Asia/Shanghai");
    /* +08:00 all year, including Europe's and America's switch nights. */
    assert_int_equal(local_ms(cal, 2026, 1, 15, 9, 0),
                     utc_ms(2026, 1, 15, 1, 0));
    assert_int_equal(local_ms(cal, 2026, 3, 29, 2, 30),
                     utc_ms(2026, 3, 28, 18, 30));
    assert_int_equal(local_ms(cal, 2026, 3, 8, 2, 30),
                     utc_ms(2026, 3, 7, 18, 30));
    assert_int_equal(local_ms(cal, 2026, 7, 1, 9, 0), utc_ms(2026, 7, 1, 1, 0));
    /* Every local 02:30 of the year round-trips. */
    for (int day = 1; day <= 365; day++) {
        tp_local_time_t in = {.year = 2026,
                              .month = 1,
                              .day = day,
                              .hour = 2,
                              .minute = 30},
                        out;
        int64_t ms = tp_calendar_from_local(cal, &in);
        assert_int_equal(ms % (24 * HOUR_MS), 18 * HOUR_MS + 30 * MIN_MS);
        tp_calendar_to_local(cal, ms, &out);
        assert_int_equal(out.hour, 2);
        assert_int_equal(out.minute, 30);
    }
    /* A working day: 8 hours between 09:00 and 18:00, lunch excluded. */
    assert_int_equal(
        tp_calendar_working_ms_between(cal, local_ms(cal, 2026, 3, 2, 0, 0),
                                       local_ms(cal, 2026, 3, 3, 0, 0)),
        8 * HOUR_MS);
    tp_calendar_destroy(&cal);
}

static void test_r_cal_1_berlin_dst_switch(void **state) {
    tp_calendar_t *cal = load_text("[calendar]\n"
                                   "time_zone = Europe/Berlin\n"
                                   "work_days = mon,tue,wed,thu,fri,sat,sun\n"
                                   "work_hours = 00:00-24:00\n");
    /* Spring: 02:00 CET jumps to 03:00 CEST on 2026-03-29 (01:00Z). A wall
     * time in the gap moves forward to the gap's end. */
    assert_int_equal(local_ms(cal, 2026, 3, 29, 1, 59),
                     utc_ms(2026, 3, 29, 0, 59));
    assert_int_equal(local_ms(cal, 2026, 3, 29, 2, 30),
                     utc_ms(2026, 3, 29, 1, 0));
    assert_int_equal(local_ms(cal, 2026, 3, 29, 2, 0),
                     utc_ms(2026, 3, 29, 1, 0));
    assert_int_equal(local_ms(cal, 2026, 3, 29, 3, 0),
                     utc_ms(2026, 3, 29, 1, 0));
    assert_string_equal(show(cal, local_ms(cal, 2026, 3, 29, 2, 30)),
                        "2026-03-29 03:00:00 Sun");
    /* Autumn: 02:30 happens twice on 2026-10-25; the first (CEST) wins. */
    assert_int_equal(local_ms(cal, 2026, 10, 25, 2, 30),
                     utc_ms(2026, 10, 25, 0, 30));
    assert_string_equal(show(cal, utc_ms(2026, 10, 25, 1, 30)),
                        "2026-10-25 02:30:00 Sun");

    /* A round-the-clock calendar counts elapsed time: 24 working hours from
     * Saturday noon end at 13:00 on the 23-hour Sunday, 11:00 on the
     * 25-hour one. */
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(
                      cal, local_ms(cal, 2026, 3, 28, 12, 0), 24 * HOUR_MS)),
        "2026-03-29 13:00:00 Sun");
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(
                      cal, local_ms(cal, 2026, 10, 24, 12, 0), 24 * HOUR_MS)),
        "2026-10-25 11:00:00 Sun");
    assert_int_equal(
        tp_calendar_working_ms_between(cal, local_ms(cal, 2026, 3, 29, 0, 0),
                                       local_ms(cal, 2026, 3, 30, 0, 0)),
        23 * HOUR_MS);
    assert_int_equal(
        tp_calendar_working_ms_between(cal, local_ms(cal, 2026, 10, 25, 0, 0),
                                       local_ms(cal, 2026, 10, 26, 0, 0)),
        25 * HOUR_MS);
    tp_calendar_destroy(&cal);

    /* Office hours keep to the wall clock: Friday 16:00 CET + 2 working
     * hours is Monday 10:00 CEST, 08:00Z (09:00Z had the clocks not moved). */
    cal = load_text("[calendar]\n"
                    "time_zone = Europe/Berlin\n"
                    "work_days = mon,tue,wed,thu,fri\n"
                    "work_hours = 09:00-17:00\n");
    int64_t friday = local_ms(cal, 2026, 3, 27, 16, 0);
    assert_int_equal(friday, utc_ms(2026, 3, 27, 15, 0));
    int64_t due = tp_calendar_add_working_ms(cal, friday, 2 * HOUR_MS);
    assert_int_equal(due, utc_ms(2026, 3, 30, 8, 0));
    assert_string_equal(show(cal, due), "2026-03-30 10:00:00 Mon");
    assert_int_equal(tp_calendar_working_ms_between(cal, friday, due),
                     2 * HOUR_MS);
    tp_calendar_destroy(&cal);
}

/* ---------------------------------------------------------------------
 * R-TICKET-3: the business-hours clock
 * --------------------------------------------------------------------- */

static void
test_r_ticket_3_add_working_ms_lunch_nights_weekends_holiday(void **state) {
    tp_calendar_t *cal = load_cn_2026();
    /* Lunch: Thursday 11:00 + 2h = 1h before lunch, 1h after. */
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(
                      cal, local_ms(cal, 2026, 3, 5, 11, 0), 2 * HOUR_MS)),
        "2026-03-05 14:00:00 Thu");
    /* A night: Thursday 17:30 + 1h = Friday 09:30. */
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(
                      cal, local_ms(cal, 2026, 3, 5, 17, 30), HOUR_MS)),
        "2026-03-06 09:30:00 Fri");
    /* A weekend: Friday 17:00 + 2h = Monday 10:00. */
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(
                      cal, local_ms(cal, 2026, 3, 6, 17, 0), 2 * HOUR_MS)),
        "2026-03-09 10:00:00 Mon");
    /* A night, the weekend and Qingming Monday: Friday 2026-04-03 17:00
     * + 2h = Tuesday 10:00. */
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(
                      cal, local_ms(cal, 2026, 4, 3, 17, 0), 2 * HOUR_MS)),
        "2026-04-07 10:00:00 Tue");
    /* Outside hours the clock starts at the next period. */
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(
                      cal, local_ms(cal, 2026, 3, 7, 15, 0), 30 * MIN_MS)),
        "2026-03-09 09:30:00 Mon");
    /* Running out at a period's end is due then, not next morning. */
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(
                      cal, local_ms(cal, 2026, 3, 5, 9, 0), 8 * HOUR_MS)),
        "2026-03-05 18:00:00 Thu");
    /* Zero: no time passes. */
    int64_t at = local_ms(cal, 2026, 3, 7, 15, 0);
    assert_int_equal(tp_calendar_add_working_ms(cal, at, 0), at);
    /* Over the Spring Festival: Friday 13 Feb 09:00 + 16h is Friday's 8h
     * and the make-up Saturday's 8h, due Saturday 18:00; one hour more is
     * Tuesday 24 Feb 10:00, after the nine days off. */
    int64_t feb13 = local_ms(cal, 2026, 2, 13, 9, 0);
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(cal, feb13, 16 * HOUR_MS)),
        "2026-02-14 18:00:00 Sat");
    assert_string_equal(
        show(cal, tp_calendar_add_working_ms(cal, feb13, 17 * HOUR_MS)),
        "2026-02-24 10:00:00 Tue");
    tp_calendar_destroy(&cal);
}

static uint64_t next_random(uint64_t *seed) {
    *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return *seed >> 17;
}

static void check_inverse(const tp_calendar_t *cal) {
    uint64_t seed = 20260101;
    int64_t base = utc_ms(2026, 1, 1, 0, 0);
    for (int i = 0; i < 3000; i++) {
        int64_t from =
            base + (int64_t)(next_random(&seed) % (365 * 24 * HOUR_MS));
        int64_t work = (int64_t)(next_random(&seed) % (80 * HOUR_MS)) + 1;
        int64_t due = tp_calendar_add_working_ms(cal, from, work);
        assert_true(due > from);
        assert_int_equal(tp_calendar_working_ms_between(cal, from, due), work);
        assert_true(tp_calendar_working_time(cal, due - 1));
        assert_int_equal(tp_calendar_working_ms_between(cal, due, from), 0);

        /* And the other way: any span's working time brings `from` no
         * later than the span's end. */
        int64_t to = from + (int64_t)(next_random(&seed) % (20 * 24 * HOUR_MS));
        int64_t spent = tp_calendar_working_ms_between(cal, from, to);
        int64_t back = tp_calendar_add_working_ms(cal, from, spent);
        assert_true(back <= to);
        assert_int_equal(tp_calendar_working_ms_between(cal, from, back),
                         spent);
    }
}

static void test_r_ticket_3_working_ms_between_inverts_add(void **state) {
    tp_calendar_t *cal = load_cn_2026();
    check_inverse(cal);
    tp_calendar_destroy(&cal);
    cal = load_text("[calendar]\n"
                    "time_zone = Europe/Berlin\n"
                    "work_hours = 08:00-12:00,12:30-16:30\n");
    check_inverse(cal);
    tp_calendar_destroy(&cal);
}

/* ---------------------------------------------------------------------
 * R-CAL-2: quiet hours
 * --------------------------------------------------------------------- */

static void test_r_cal_2_quiet_hours_cross_midnight(void **state) {
    tp_calendar_t *cal = load_text(SHANGHAI_9_TO_6);
    tp_quiet_t quiet;
    assert_int_equal(tp_quiet_parse("21:00-08:00", cal, &quiet), 0);
    assert_int_equal(quiet.start_min, 21 * 60);
    assert_int_equal(quiet.end_min, 8 * 60);

    /* Late evening: tomorrow 08:00. Early morning: today 08:00. */
    assert_string_equal(
        show(cal,
             tp_quiet_next_allowed(&quiet, local_ms(cal, 2026, 3, 5, 23, 30))),
        "2026-03-06 08:00:00 Fri");
    assert_string_equal(
        show(cal,
             tp_quiet_next_allowed(&quiet, local_ms(cal, 2026, 3, 5, 21, 0))),
        "2026-03-06 08:00:00 Fri");
    assert_string_equal(show(cal, tp_quiet_next_allowed(
                                      &quiet, local_ms(cal, 2026, 3, 6, 0, 0))),
                        "2026-03-06 08:00:00 Fri");
    assert_string_equal(
        show(cal,
             tp_quiet_next_allowed(&quiet, local_ms(cal, 2026, 3, 6, 7, 59))),
        "2026-03-06 08:00:00 Fri");
    /* Outside the window: itself, to the millisecond. */
    int64_t eight = local_ms(cal, 2026, 3, 6, 8, 0);
    assert_int_equal(tp_quiet_next_allowed(&quiet, eight), eight);
    int64_t before_nine_pm = local_ms(cal, 2026, 3, 6, 20, 59) + 59999;
    assert_int_equal(tp_quiet_next_allowed(&quiet, before_nine_pm),
                     before_nine_pm);
    /* The window is in the zone's wall clock: 23:30 Shanghai is 15:30Z. */
    assert_int_equal(tp_quiet_next_allowed(&quiet, utc_ms(2026, 3, 5, 15, 30)),
                     utc_ms(2026, 3, 6, 0, 0));

    /* Across Berlin's spring switch: 23:30 CET -> 08:00 CEST (06:00Z). */
    tp_calendar_t *berlin =
        load_text("[calendar]\ntime_zone = Europe/Berlin\n");
    assert_int_equal(tp_quiet_parse("21:00-08:00", berlin, &quiet), 0);
    assert_int_equal(
        tp_quiet_next_allowed(&quiet, local_ms(berlin, 2026, 3, 28, 23, 30)),
        utc_ms(2026, 3, 29, 6, 0));

    /* A window within a day; no zone means UTC. */
    assert_int_equal(tp_quiet_parse("12:00-14:00", NULL, &quiet), 0);
    assert_int_equal(tp_quiet_next_allowed(&quiet, utc_ms(2026, 3, 5, 13, 0)),
                     utc_ms(2026, 3, 5, 14, 0));
    assert_int_equal(tp_quiet_next_allowed(&quiet, utc_ms(2026, 3, 5, 14, 0)),
                     utc_ms(2026, 3, 5, 14, 0));
    assert_int_equal(tp_quiet_next_allowed(&quiet, utc_ms(2026, 3, 5, 11, 59)),
                     utc_ms(2026, 3, 5, 11, 59));

    /* None: "" (or equal ends) lets everything through. */
    assert_int_equal(tp_quiet_parse("", cal, &quiet), 0);
    assert_int_equal(
        tp_quiet_next_allowed(&quiet, local_ms(cal, 2026, 3, 5, 23, 30)),
        local_ms(cal, 2026, 3, 5, 23, 30));
    assert_int_equal(tp_quiet_parse("08:00-08:00", cal, &quiet), 0);
    assert_int_equal(tp_quiet_next_allowed(&quiet, 12345), 12345);

    /* Bad text. */
    static const char *const bad[] = {
        "21:00",        "21:00-",      "25:00-08:00",
        "21:00-08:60",  "21:00-24:00", "9:00-17:00",
        "21:00-08:00x", "21:00 08:00", "night"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (tp_quiet_parse(bad[i], cal, &quiet) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    tp_calendar_destroy(&berlin);
    tp_calendar_destroy(&cal);
}

/* ---------------------------------------------------------------------
 * Loading: bad files name their line; the shipped calendar loads
 * --------------------------------------------------------------------- */

static void test_bad_calendar_files_name_the_line(void **state) {
    static const struct {
        const char *text;
        int line; /* 0: the error names the file only */
        const char *why;
    } cases[] = {
        {"[calendar]\ntime_zone = Mars/Olympus_Mons\n", 2, "unknown zone"},
        {"[calendar]\ntime_zone =\n", 2, "unknown zone"},
        {"[calendar]\ntime_zone = UTC\n[holidays]\n2026-10-01 = ok\n"
         "2026-02-30 = no such day\n",
         5, "not a date"},
        {"[calendar]\ntime_zone = UTC\n[holidays]\n2026-1-01 = short\n", 4,
         "not a date"},
        {"[calendar]\ntime_zone = UTC\n[workdays]\nsoon = x\n", 4,
         "not a date"},
        {"[calendar]\ntime_zone = UTC\nwork_hours = 09:00-08:00\n", 3,
         "must end after it starts"},
        {"[calendar]\ntime_zone = UTC\nwork_hours = 22:00-02:00\n", 3,
         "must end after it starts"},
        {"[calendar]\ntime_zone = UTC\nwork_hours = 13:00-18:00,09:00-12:00\n",
         3, "in order"},
        {"[calendar]\ntime_zone = UTC\nwork_hours = 09:00-12:00,11:00-18:00\n",
         3, "must not overlap"},
        {"[calendar]\ntime_zone = UTC\nwork_hours = 9-18\n", 3, "HH:MM-HH:MM"},
        {"[calendar]\ntime_zone = UTC\nwork_hours = 09:00-25:00\n", 3,
         "HH:MM-HH:MM"},
        {"[calendar]\ntime_zone = UTC\nwork_hours =\n", 3, "HH:MM-HH:MM"},
        {"[calendar]\ntime_zone = UTC\nwork_days = mon,funday\n", 3,
         "work_days"},
        {"[calendar]\ntime_zone = UTC\nwork_days = mon,mon\n", 3, "twice"},
        {"[calendar]\ntime_zone = UTC\nwork_days =\n", 3, "work_days"},
        {"[calendar]\ntime_zone = UTC\nworkdays = mon\n", 3, "unknown key"},
        {"[calender]\ntime_zone = UTC\n", 2, "unknown section"},
        {"[calendar]\ntime_zone = UTC\nthis line has no equals sign\n", 3,
         "syntax error"},
        {"[calendar]\ntime_zone = UTC\n[holidays]\n2026-10-01 = off\n"
         "[workdays]\n2026-10-02 = fine\n2026-10-01 = and on?\n",
         7, "both a holiday and a make-up"},
        /* The first wrong line wins. */
        {"[calendar]\n\n\nwork_days = someday\ntime_zone = Nowhere\n", 4,
         "work_days"},
        {"[calendar]\nwork_days = mon\n", 0, "time_zone is missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64], err[256] = "", want[128];
        write_file(path, cases[i].text);
        tp_calendar_t *cal = tp_calendar_new(path, err, sizeof err);
        unlink(path);
        if (cal) fail_msg("case %zu loaded", i);
        if (cases[i].line)
            snprintf(want, sizeof want, "%s:%d: ", path, cases[i].line);
        else
            snprintf(want, sizeof want, "%s: ", path);
        if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, cases[i].why))
            fail_msg("case %zu: got \"%s\", want \"%s...%s\"", i, err, want,
                     cases[i].why);
    }

    char err[256] = "";
    assert_null(tp_calendar_new("/nonexistent/calendar.ini", err, sizeof err));
    assert_non_null(strstr(err, "cannot open /nonexistent/calendar.ini"));
}

static void test_r_cal_1_shipped_cn_2026_loads(void **state) {
    tp_calendar_t *cal = load_cn_2026();
    assert_string_equal(tp_calendar_zone(cal), "Asia/Shanghai");
    /* Holidays on weekdays, make-up weekend days, and an ordinary week. */
    static const struct {
        int month, day, working;
    } days[] = {
        {1, 1, 0},  {1, 2, 0},   {1, 4, 1},   {1, 5, 1},   {2, 13, 1},
        {2, 14, 1}, {2, 16, 0},  {2, 23, 0},  {2, 24, 1},  {2, 28, 1},
        {4, 6, 0},  {4, 7, 1},   {5, 1, 0},   {5, 5, 0},   {5, 9, 1},
        {6, 19, 0}, {9, 20, 1},  {9, 25, 0},  {10, 1, 0},  {10, 7, 0},
        {10, 8, 1}, {10, 10, 1}, {10, 11, 0}, {10, 12, 1},
    };
    for (size_t i = 0; i < sizeof days / sizeof days[0]; i++) {
        int64_t noon = local_ms(cal, 2026, days[i].month, days[i].day, 12, 30);
        if (tp_calendar_working_day(cal, noon) != days[i].working)
            fail_msg("2026-%02d-%02d: working_day %d, want %d", days[i].month,
                     days[i].day, !days[i].working, days[i].working);
    }
    assert_false(
        tp_calendar_working_time(cal, local_ms(cal, 2026, 10, 1, 10, 0)));
    /* 261 weekdays, 19 of them holidays, 6 make-up days: 248. */
    int working = 0;
    for (int day = 1; day <= 365; day++)
        working +=
            tp_calendar_working_day(cal, local_ms(cal, 2026, 1, day, 12, 0));
    assert_int_equal(working, 248);
    tp_calendar_destroy(&cal);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_calendar_is_utc_mon_fri_9_to_18),
        cmocka_unit_test(test_r_cal_1_holiday_inside_three_working_days),
        cmocka_unit_test(test_r_cal_1_makeup_saturday_is_working_day),
        cmocka_unit_test(test_r_cal_1_next_working_time),
        cmocka_unit_test(test_r_cal_1_shanghai_has_no_dst),
        cmocka_unit_test(test_r_cal_1_berlin_dst_switch),
        cmocka_unit_test(
            test_r_ticket_3_add_working_ms_lunch_nights_weekends_holiday),
        cmocka_unit_test(test_r_ticket_3_working_ms_between_inverts_add),
        cmocka_unit_test(test_r_cal_2_quiet_hours_cross_midnight),
        cmocka_unit_test(test_bad_calendar_files_name_the_line),
        cmocka_unit_test(test_r_cal_1_shipped_cn_2026_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
