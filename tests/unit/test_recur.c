/* test_recur.c: reorder cycles as RFC 5545 rules through libical
 * (R-REORDER-1, common/include/tp/recur.h): the 31st of a month, COUNT and
 * UNTIL, the after/until window, local wall time across DST, the rules
 * tp_recur_rule writes, and rules refused with a reason (and without a word
 * from libical on stderr).
 *
 * Owns nothing beyond each test; libical's zone cache is freed at the end.
 * Expected instants are written as UTC civil times and turned into ms by
 * timegm: the occurrences themselves only ever come from tp_recur_between. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libical/ical.h>

#include "tp/recur.h"

#define WHY_MAX 160
#define DAY_MS 86400000LL

/* ms of the UTC civil time y-mo-d h:mi. */
static int64_t utc(int y, int mo, int d, int h, int mi) {
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

/* Up to `max` occurrences of `rrule` from `dtstart` in `zone`, dtstart
 * included; fails the test when refused or when icalerrno is left set. */
static int expand(const char *rrule, int64_t dtstart, const char *zone,
                  int64_t until, int64_t *out, int max) {
    char why[WHY_MAX];
    int n = tp_recur_between(rrule, dtstart, zone, dtstart - 1, until, out, max,
                             why, sizeof why);
    if (n < 0) fail_msg("%s refused: %s", rrule, why);
    assert_int_equal(icalerrno, ICAL_NO_ERROR);
    return n;
}

static void expect_times(const int64_t *got, int n, const int64_t *want,
                         int nwant) {
    if (n != nwant) fail_msg("got %d occurrences, wanted %d", n, nwant);
    for (int i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("occurrence %d: got %lld, wanted %lld", i,
                     (long long)got[i], (long long)want[i]);
}

/* ---- R-REORDER-1: what libical does with the calendar ---- */

/* RFC 5545 3.3.10: an instance on an invalid date (September 31st) "MUST
 * be ignored and MUST NOT be counted"; libical skips it, it does not move
 * to the 30th. Every two months from January 31st: Sep and Nov are skipped,
 * the series goes on in January. */
static void test_R_REORDER_1_monthly_interval_2_from_31st(void **state) {
    (void)state;
    int64_t got[8];
    int n = expand("FREQ=MONTHLY;INTERVAL=2", utc(2026, 1, 31, 9, 0), NULL, 0,
                   got, 6);
    const int64_t want[] = {utc(2026, 1, 31, 9, 0), utc(2026, 3, 31, 9, 0),
                            utc(2026, 5, 31, 9, 0), utc(2026, 7, 31, 9, 0),
                            utc(2027, 1, 31, 9, 0), utc(2027, 3, 31, 9, 0)};
    expect_times(got, n, want, 6);
}

/* The skipped dates do not count towards COUNT either. */
static void test_R_REORDER_1_skipped_31st_not_counted(void **state) {
    (void)state;
    int64_t got[8];
    int n =
        expand("FREQ=MONTHLY;COUNT=5", utc(2026, 1, 31, 9, 0), NULL, 0, got, 8);
    const int64_t want[] = {utc(2026, 1, 31, 9, 0), utc(2026, 3, 31, 9, 0),
                            utc(2026, 5, 31, 9, 0), utc(2026, 7, 31, 9, 0),
                            utc(2026, 8, 31, 9, 0)};
    expect_times(got, n, want, 5);
}

static void test_R_REORDER_1_count_3_gives_exactly_3(void **state) {
    (void)state;
    int64_t got[10];
    int64_t start = utc(2026, 1, 15, 8, 0);
    int n = expand("FREQ=DAILY;COUNT=3", start, NULL, 0, got, 10);
    const int64_t want[] = {start, start + DAY_MS, start + 2 * DAY_MS};
    expect_times(got, n, want, 3);
    /* COUNT counts from dtstart, not from the window: one left after the
     * second. */
    char why[WHY_MAX];
    n = tp_recur_between("FREQ=DAILY;COUNT=3", start, NULL, start + DAY_MS, 0,
                         got, 10, why, sizeof why);
    assert_int_equal(n, 1);
    assert_int_equal(got[0], start + 2 * DAY_MS);
}

/* A day named twice (BYDAY=MO,MO, found by fuzz_rrule) is one occurrence:
 * every occurrence is after the one before. */
static void test_R_REORDER_1_repeated_day_once(void **state) {
    (void)state;
    int64_t got[16];
    int64_t start = utc(2026, 3, 2, 8, 30); /* a Monday */
    int n = expand("FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,MO;COUNT=10", start, NULL, 0, got, 16);
    assert_true(n >= 2);
    assert_int_equal(got[0], start);
    for (int i = 1; i < n; i++) assert_int_equal(got[i] - got[i - 1], 21 * DAY_MS);
}

/* UNTIL is inclusive: an occurrence exactly at UNTIL is the last. */
static void test_R_REORDER_1_until_stops(void **state) {
    (void)state;
    int64_t got[10];
    int n = expand("FREQ=WEEKLY;UNTIL=20260301T090000Z", utc(2026, 2, 1, 9, 0),
                   NULL, 0, got, 10);
    const int64_t want[] = {utc(2026, 2, 1, 9, 0), utc(2026, 2, 8, 9, 0),
                            utc(2026, 2, 15, 9, 0), utc(2026, 2, 22, 9, 0),
                            utc(2026, 3, 1, 9, 0)};
    expect_times(got, n, want, 5);
    n = expand("FREQ=WEEKLY;UNTIL=20260301T085959Z", utc(2026, 2, 1, 9, 0),
               NULL, 0, got, 10);
    assert_int_equal(n, 4);
}

/* Strictly after `after`, not after `until`, whichever of the rule's end
 * and the window's comes first. */
static void test_R_REORDER_1_after_until_window(void **state) {
    (void)state;
    char why[WHY_MAX];
    int64_t got[10];
    int64_t start = utc(2026, 1, 1, 9, 0);
    int n = tp_recur_between("FREQ=DAILY", start, "UTC", utc(2026, 1, 5, 9, 0),
                             utc(2026, 1, 8, 9, 0), got, 10, why, sizeof why);
    const int64_t want[] = {utc(2026, 1, 6, 9, 0), utc(2026, 1, 7, 9, 0),
                            utc(2026, 1, 8, 9, 0)};
    expect_times(got, n, want, 3);
    assert_string_equal(why, "");
    /* One ms past an occurrence skips it; one ms short of one drops it. */
    n = tp_recur_between("FREQ=DAILY", start, "UTC", utc(2026, 1, 5, 9, 0) - 1,
                         utc(2026, 1, 8, 9, 0) - 1, got, 10, why, sizeof why);
    const int64_t want2[] = {utc(2026, 1, 5, 9, 0), utc(2026, 1, 6, 9, 0),
                             utc(2026, 1, 7, 9, 0)};
    expect_times(got, n, want2, 3);
    /* A window before dtstart holds nothing; one past a COUNT neither. */
    n = tp_recur_between("FREQ=DAILY", start, NULL, 0, start - 1, got, 10, why,
                         sizeof why);
    assert_int_equal(n, 0);
    n = tp_recur_between("FREQ=DAILY;COUNT=2", start, NULL, start + 2 * DAY_MS,
                         0, got, 10, why, sizeof why);
    assert_int_equal(n, 0);
    /* The rule's UNTIL wins over a later window end. */
    n = tp_recur_between("FREQ=DAILY;UNTIL=20260103T090000Z", start, NULL,
                         start - 1, utc(2027, 1, 1, 0, 0), got, 10, why,
                         sizeof why);
    assert_int_equal(n, 3);
}

/* Milliseconds of dtstart ride along: the first occurrence is dtstart. */
static void test_R_REORDER_1_ms_of_dtstart_kept(void **state) {
    (void)state;
    int64_t got[3];
    int64_t start = utc(2026, 1, 15, 8, 0) + 123;
    int n = expand("FREQ=WEEKLY", start, NULL, 0, got, 3);
    const int64_t want[] = {start, start + 7 * DAY_MS, start + 14 * DAY_MS};
    expect_times(got, n, want, 3);
}

/* ---- R-REORDER-1: local wall time across DST ---- */

/* Monthly at 09:00 in Berlin: 08:00Z in winter (CET), 07:00Z from April
 * (CEST, from 2026-03-29), 08:00Z again in November. */
static void test_R_REORDER_1_berlin_monthly_keeps_0900(void **state) {
    (void)state;
    int64_t got[12];
    int n = expand("FREQ=MONTHLY", utc(2026, 1, 15, 8, 0), "Europe/Berlin", 0,
                   got, 11);
    const int64_t want[] = {
        utc(2026, 1, 15, 8, 0),  utc(2026, 2, 15, 8, 0), utc(2026, 3, 15, 8, 0),
        utc(2026, 4, 15, 7, 0),  utc(2026, 5, 15, 7, 0), utc(2026, 6, 15, 7, 0),
        utc(2026, 7, 15, 7, 0),  utc(2026, 8, 15, 7, 0), utc(2026, 9, 15, 7, 0),
        utc(2026, 10, 15, 7, 0), utc(2026, 11, 15, 8, 0)};
    expect_times(got, n, want, 11);
    /* In UTC the same rule keeps 08:00Z all year. */
    n = expand("FREQ=MONTHLY", utc(2026, 1, 15, 8, 0), NULL, 0, got, 4);
    assert_int_equal(got[3], utc(2026, 4, 15, 8, 0));
}

/* Daily across the night the clocks go forward: a 23-hour day. */
static void test_R_REORDER_1_berlin_daily_across_switch(void **state) {
    (void)state;
    int64_t got[4];
    int n = expand("FREQ=DAILY", utc(2026, 3, 27, 8, 0), "Europe/Berlin", 0,
                   got, 4);
    const int64_t want[] = {utc(2026, 3, 27, 8, 0), utc(2026, 3, 28, 8, 0),
                            utc(2026, 3, 29, 7, 0), utc(2026, 3, 30, 7, 0)};
    expect_times(got, n, want, 4);
}

/* UNTIL is a UTC instant even when the rule runs in a zone: 09:00 CEST on
 * April 15th is 07:00Z, so UNTIL=...T070000Z still takes it. */
static void test_R_REORDER_1_berlin_until_is_utc(void **state) {
    (void)state;
    int64_t got[8];
    int n = expand("FREQ=MONTHLY;UNTIL=20260415T070000Z",
                   utc(2026, 1, 15, 8, 0), "Europe/Berlin", 0, got, 8);
    assert_int_equal(n, 4);
    assert_int_equal(got[3], utc(2026, 4, 15, 7, 0));
    n = expand("FREQ=MONTHLY;UNTIL=20260415T065959Z", utc(2026, 1, 15, 8, 0),
               "Europe/Berlin", 0, got, 8);
    assert_int_equal(n, 3);
}

static void test_R_REORDER_1_unknown_zone_refused(void **state) {
    (void)state;
    char why[WHY_MAX];
    int64_t got[2];
    assert_int_equal(tp_recur_between("FREQ=DAILY", utc(2026, 1, 1, 0, 0),
                                      "Mars/Olympus_Mons", 0, 0, got, 2, why,
                                      sizeof why),
                     -1);
    assert_non_null(strstr(why, "unknown time zone"));
    assert_int_equal(
        tp_recur_between("FREQ=DAILY", -1, NULL, 0, 0, got, 2, why, sizeof why),
        -1);
    assert_non_null(strstr(why, "out of range"));
}

/* ---- R-REORDER-1: the rules tp_recur_rule writes ---- */

static void test_R_REORDER_1_rule_each_unit(void **state) {
    (void)state;
    static const struct {
        const char *unit, *want;
        int interval;
        int64_t step_days; /* between the first two occurrences from Jan 1 */
    } cases[] = {{"day", "FREQ=DAILY;INTERVAL=3", 3, 3},
                 {"week", "FREQ=WEEKLY;INTERVAL=2", 2, 14},
                 {"month", "FREQ=MONTHLY;INTERVAL=1", 1, 31},
                 {"year", "FREQ=YEARLY;INTERVAL=1", 1, 365}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        assert_int_equal(
            tp_recur_rule(cases[i].unit, cases[i].interval, out, sizeof out),
            0);
        assert_string_equal(out, cases[i].want);
        char why[WHY_MAX];
        if (!tp_recur_valid(out, why, sizeof why)) fail_msg("%s: %s", out, why);
        int64_t got[2];
        assert_int_equal(expand(out, utc(2026, 1, 1, 9, 0), NULL, 0, got, 2),
                         2);
        assert_int_equal(got[1] - got[0], cases[i].step_days * DAY_MS);
    }
}

static void test_R_REORDER_1_rule_refused(void **state) {
    (void)state;
    char out[64];
    assert_int_equal(tp_recur_rule("fortnight", 1, out, sizeof out), -1);
    assert_string_equal(out, "");
    assert_int_equal(tp_recur_rule("Month", 1, out, sizeof out), -1);
    assert_int_equal(tp_recur_rule(NULL, 1, out, sizeof out), -1);
    assert_int_equal(tp_recur_rule("month", 0, out, sizeof out), -1);
    assert_int_equal(tp_recur_rule("month", -3, out, sizeof out), -1);
    /* libical keeps INTERVAL in a short */
    assert_int_equal(tp_recur_rule("day", 40000, out, sizeof out), -1);
    assert_string_equal(out, "");
    /* no room: "FREQ=MONTHLY;INTERVAL=12" is 24 bytes and its NUL */
    assert_int_equal(tp_recur_rule("month", 12, out, 24), -1);
    assert_string_equal(out, "");
    assert_int_equal(tp_recur_rule("month", 12, out, 25), 0);
    assert_string_equal(out, "FREQ=MONTHLY;INTERVAL=12");
    assert_int_equal(tp_recur_rule("month", 1, out, 0), -1);
}

/* ---- R-REORDER-1: rules refused at the door ---- */

static void test_R_REORDER_1_invalid_rules_refused(void **state) {
    (void)state;
    static const struct {
        const char *rule, *why; /* a part of the reason */
    } bad[] = {
        {"", "empty"},
        {"FREQ=SECONDLY", "finer than DAILY"},
        {"FREQ=MINUTELY", "finer than DAILY"},
        {"FREQ=HOURLY;INTERVAL=24", "finer than DAILY"},
        {"garbage", "not an RFC 5545 RRULE"},
        {"FREQ=SOMETIMES", "not an RFC 5545 RRULE"},
        {"RRULE:FREQ=DAILY", "not an RFC 5545 RRULE"},
        {"FREQ=MONTHLY;INTERVAL=0", "not an RFC 5545 RRULE"},
        {"FREQ=MONTHLY;BYMONTHDAY=40", "not an RFC 5545 RRULE"},
        {"FREQ=DAILY;COUNT=2;UNTIL=20260101T000000Z", "not an RFC 5545 RRULE"},
        {"INTERVAL=2", "FREQ is missing"},
        {"FREQ=DAILY;BYHOUR=9,17", "at most daily"},
        {"FREQ=WEEKLY;BYMINUTE=0,30", "at most daily"},
        {"FREQ=DAILY;UNTIL=20260415", "UTC date-time"},
        {"FREQ=DAILY;UNTIL=20260415T090000", "UTC date-time"},
        {"FREQ=MONTHLY;BYWEEKNO=1", "cannot go together"},
        {"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never occurs"},
        {"FREQ=MONTHLY;BYMONTH=4;BYMONTHDAY=31", "never occurs"},
        {"RSCALE=CHINESE;FREQ=YEARLY", "RSCALE is not supported"},
        {"RSCALE=GREGORIAN;FREQ=BOGUS", "not an RFC 5545 RRULE"},
    };
    /* libical must stay quiet on stderr about all of them. */
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *sink = tmpfile();
    assert_non_null(sink);
    dup2(fileno(sink), STDERR_FILENO);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[WHY_MAX] = "untouched";
        int64_t got[2] = {42, 42};
        int valid = tp_recur_valid(bad[i].rule, why, sizeof why);
        int ierr = icalerrno;
        int n = tp_recur_between(bad[i].rule, utc(2026, 1, 1, 0, 0), NULL, 0, 0,
                                 got, 2, why, sizeof why);
        if (valid || strstr(why, bad[i].why) == NULL || n != -1 ||
            got[0] != 42 || ierr != ICAL_NO_ERROR ||
            icalerrno != ICAL_NO_ERROR) {
            dup2(saved, STDERR_FILENO);
            fail_msg("%s: valid %d, between %d, icalerrno %d, why \"%s\", "
                     "wanted \"%s\"",
                     bad[i].rule, valid, n, ierr, why, bad[i].why);
        }
    }
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(lseek(fileno(sink), 0, SEEK_END), 0);
    fclose(sink);

    char why[WHY_MAX];
    assert_int_equal(tp_recur_valid(NULL, why, sizeof why), 0);
    assert_non_null(strstr(why, "empty"));
    /* No room for the reason, or a short one: still a clean answer. */
    assert_int_equal(tp_recur_valid("FREQ=SECONDLY", NULL, 0), 0);
    char tiny[8];
    assert_int_equal(tp_recur_valid("FREQ=SECONDLY", tiny, sizeof tiny), 0);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void test_R_REORDER_1_valid_rules_accepted(void **state) {
    (void)state;
    static const char *good[] = {
        "FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=90;BYHOUR=10",
        "FREQ=WEEKLY;BYDAY=MO,TH;COUNT=8",
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "FREQ=MONTHLY;BYDAY=1MO;UNTIL=20271231T235959Z",
        "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=1",
        "freq=monthly;interval=2",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char why[WHY_MAX] = "untouched";
        if (!tp_recur_valid(good[i], why, sizeof why))
            fail_msg("%s refused: %s", good[i], why);
        assert_string_equal(why, "");
        assert_int_equal(icalerrno, ICAL_NO_ERROR);
    }
}

/* ---- R-REORDER-1: bounds ---- */

static void test_R_REORDER_1_max_respected(void **state) {
    (void)state;
    int64_t got[5] = {0, 0, 0, -7, -7};
    int64_t start = utc(2026, 1, 1, 9, 0);
    assert_int_equal(expand("FREQ=DAILY", start, NULL, 0, got, 3), 3);
    assert_int_equal(got[2], start + 2 * DAY_MS);
    assert_int_equal(got[3], -7);
    assert_int_equal(expand("FREQ=DAILY", start, NULL, 0, got, 1), 1);
    assert_int_equal(got[0], start);
    assert_int_equal(expand("FREQ=DAILY", start, NULL, 0, NULL, 0), 0);
    /* an invalid rule is still refused with room for nothing */
    char why[WHY_MAX];
    assert_int_equal(tp_recur_between("FREQ=HOURLY", start, NULL, 0, 0, NULL, 0,
                                      why, sizeof why),
                     -1);
}

/* A window 500 years after dtstart is past the step bound: the call gives
 * up (with a reason) instead of walking forever. */
static void test_R_REORDER_1_bounded_iteration(void **state) {
    (void)state;
    char why[WHY_MAX];
    int64_t got[2];
    int n = tp_recur_between("FREQ=DAILY", utc(1970, 1, 1, 0, 0), NULL,
                             utc(2470, 1, 1, 0, 0), 0, got, 2, why, sizeof why);
    assert_int_equal(n, 0);
    assert_non_null(strstr(why, "stopped after 100000"));
}

/* A rule whose pattern occurs is valid even when INTERVAL makes it miss
 * from some starts: twice a year in March and September works from March,
 * never from January (libical gives up at its horizon: 0, quickly); every
 * 4 years on February 29th works from a leap year, and libical refuses to
 * start it from any other. */
static void test_R_REORDER_1_interval_phase(void **state) {
    (void)state;
    char why[WHY_MAX];
    int64_t got[3];
    const char *semi = "FREQ=MONTHLY;INTERVAL=6;BYMONTH=3,9";
    assert_true(tp_recur_valid(semi, why, sizeof why));
    int n = expand(semi, utc(2026, 3, 1, 9, 0), NULL, 0, got, 3);
    const int64_t want[] = {utc(2026, 3, 1, 9, 0), utc(2026, 9, 1, 9, 0),
                            utc(2027, 3, 1, 9, 0)};
    expect_times(got, n, want, 3);
    assert_int_equal(expand(semi, utc(2026, 1, 1, 9, 0), NULL, 0, got, 3), 0);

    const char *leap = "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29";
    assert_true(tp_recur_valid(leap, why, sizeof why));
    n = expand(leap, utc(2028, 1, 1, 0, 0), NULL, 0, got, 2);
    const int64_t want2[] = {utc(2028, 2, 29, 0, 0), utc(2032, 2, 29, 0, 0)};
    expect_times(got, n, want2, 2);
    n = tp_recur_between(leap, utc(2026, 1, 1, 0, 0), NULL, 0, 0, got, 2, why,
                         sizeof why);
    assert_int_equal(n, -1);
    assert_non_null(strstr(why, "cannot iterate"));
}

static int free_zones(void **state) {
    (void)state;
    icaltimezone_free_builtin_timezones();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R_REORDER_1_monthly_interval_2_from_31st),
        cmocka_unit_test(test_R_REORDER_1_skipped_31st_not_counted),
        cmocka_unit_test(test_R_REORDER_1_count_3_gives_exactly_3),
        cmocka_unit_test(test_R_REORDER_1_repeated_day_once),
        cmocka_unit_test(test_R_REORDER_1_until_stops),
        cmocka_unit_test(test_R_REORDER_1_after_until_window),
        cmocka_unit_test(test_R_REORDER_1_ms_of_dtstart_kept),
        cmocka_unit_test(test_R_REORDER_1_berlin_monthly_keeps_0900),
        cmocka_unit_test(test_R_REORDER_1_berlin_daily_across_switch),
        cmocka_unit_test(test_R_REORDER_1_berlin_until_is_utc),
        cmocka_unit_test(test_R_REORDER_1_unknown_zone_refused),
        cmocka_unit_test(test_R_REORDER_1_rule_each_unit),
        cmocka_unit_test(test_R_REORDER_1_rule_refused),
        cmocka_unit_test(test_R_REORDER_1_invalid_rules_refused),
        cmocka_unit_test(test_R_REORDER_1_valid_rules_accepted),
        cmocka_unit_test(test_R_REORDER_1_max_respected),
        cmocka_unit_test(test_R_REORDER_1_bounded_iteration),
        cmocka_unit_test(test_R_REORDER_1_interval_phase),
    };
    return cmocka_run_group_tests(tests, NULL, free_zones);
}
