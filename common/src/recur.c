/* recur.c: RFC 5545 recurrence rules through libical (R-REORDER-1).
 *
 * Owns nothing between calls: each call parses the rule, walks one libical
 * iterator and frees it. The zones it looks up stay in libical's own
 * process-wide cache (icaltimezone_free_builtin_timezones empties it).
 *
 * Must never: do date arithmetic of its own (every occurrence comes from
 * icalrecur_iterator_next, every zone conversion from libical's tables),
 * let a rule from the network abort the process or print to stderr (libical
 * does both when built with ICAL_ERRORS_ARE_FATAL), leave icalerrno set
 * behind it, or spin on a rule that never ends (STEPS_MAX).
 *
 * One thread per service: libical's error switch is process-wide. */
#include "tp/recur.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libical/ical.h>

/* Occurrences asked of libical per call, at most: 273 years of a daily
 * rule, which no reorder window needs, and a few ms of work. */
#define STEPS_MAX 100000
/* dtstart range: the same bound as event timestamps (9999-12-31). */
#define MS_MAX 253402300799999LL
/* Where to ask libical whether a rule can be iterated and occurs at all:
 * the start of a leap year that is also a 400-year one. */
#define PROBE_START 946684800 /* 2000-01-01T00:00:00Z */

static int say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes the reason into `why` (when there is room). Returns -1. */
static int say(char *why, size_t whylen, const char *fmt, ...) {
    if (why != NULL && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* libical reports through icalerrno, and aborts on it when built with
 * ICAL_ERRORS_ARE_FATAL (Debian's is not: errors are then silent). Make
 * sure of both, writing the process-wide switch only when it is on. */
static void ical_quiet(void) {
    if (icalerror_get_errors_are_fatal()) icalerror_set_errors_are_fatal(0);
    icalerror_clear_errno();
}

/* More than one value in a BY list of `rt` (BYHOUR=9,17). */
static int by_many(const short *by) {
    return by[0] != ICAL_RECURRENCE_ARRAY_MAX &&
           by[1] != ICAL_RECURRENCE_ARRAY_MAX;
}

/* Parses `rrule` into `rt` and checks that libical can iterate it and that
 * it occurs at all. Returns 0, or -1 with the reason in `why`. Leaves
 * icalerrno clear either way. */
static int rule_parse(const char *rrule, struct icalrecurrencetype *rt,
                      char *why, size_t whylen) {
    if (rrule == NULL || rrule[0] == '\0')
        return say(why, whylen,
                   "empty rule (expected e.g. FREQ=MONTHLY;INTERVAL=2)");
    ical_quiet();
    *rt = icalrecurrencetype_from_string(rrule);
    icalerrorenum e = icalerrno;
    icalerror_clear_errno();
    /* libical mallocs RSCALE's value and nothing of ours frees a parsed
     * rule: refuse it here, where the string is still ours to free.
     * Cycles are Gregorian (a lunar-calendar reorder is not a thing). */
    if (rt->rscale != NULL) {
        free(rt->rscale);
        rt->rscale = NULL;
        if (e == ICAL_NO_ERROR)
            return say(why, whylen,
                       "RSCALE is not supported: cycles follow the Gregorian "
                       "calendar");
    }
    if (e != ICAL_NO_ERROR)
        return say(why, whylen,
                   "not an RFC 5545 RRULE: unknown part, bad value, or both "
                   "COUNT and UNTIL (expected e.g. FREQ=MONTHLY;INTERVAL=2)");
    if (rt->freq == ICAL_NO_RECURRENCE)
        return say(why, whylen, "FREQ is missing");
    if (rt->freq < ICAL_DAILY_RECURRENCE)
        return say(why, whylen,
                   "FREQ=%s is finer than DAILY; a cycle repeats at most daily "
                   "(DAILY, WEEKLY, MONTHLY or YEARLY)",
                   icalrecur_freq_to_string(rt->freq));
    /* FREQ=DAILY;BYHOUR=0,1,...,23 is hourly under another name. */
    if (by_many(rt->by_hour) || by_many(rt->by_minute) ||
        by_many(rt->by_second))
        return say(why, whylen,
                   "BYHOUR, BYMINUTE and BYSECOND take one value each: a "
                   "cycle repeats at most daily");
    /* RFC 5545 3.3.10: with a DTSTART in a zone (ours always is), UNTIL
     * MUST be a UTC date-time; libical would compare a date or a floating
     * time as if it were UTC and drop the last day's occurrence. */
    if (!icaltime_is_null_time(rt->until) &&
        (rt->until.is_date || !icaltime_is_utc(rt->until)))
        return say(why, whylen,
                   "UNTIL must be a UTC date-time, e.g. 20261231T235959Z");
    /* Rule parts that cannot go together (BYWEEKNO in a MONTHLY rule), and
     * patterns that never occur (BYMONTH=4;BYMONTHDAY=31): libical walks
     * those to its horizon (year 2582, ~0.3 s) before it says so, so pay
     * that once here, at the door, rather than on every plan. COUNT and
     * UNTIL only cut a series short, and INTERVAL only picks which of the
     * pattern's periods count from a given start (INTERVAL=6;BYMONTH=3,9
     * never occurs from January, but does from March): the probe goes
     * without them, so a rule is refused only when no start could help. */
    struct icalrecurrencetype probe = *rt;
    probe.interval = 1;
    probe.count = 0;
    probe.until = icaltime_null_time();
    icaltimezone *utc = icaltimezone_get_utc_timezone();
    icalrecur_iterator *it = icalrecur_iterator_new(
        probe, icaltime_from_timet_with_zone(PROBE_START, 0, utc));
    icalerror_clear_errno();
    if (it == NULL)
        return say(why, whylen,
                   "rule parts that cannot go together or a date that never "
                   "occurs (libical cannot iterate it)");
    int never = icaltime_is_null_time(icalrecur_iterator_next(it));
    icalrecur_iterator_free(it);
    icalerror_clear_errno();
    if (never) return say(why, whylen, "the rule never occurs");
    return 0;
}

int tp_recur_valid(const char *rrule, char *why, size_t whylen) {
    struct icalrecurrencetype rt;
    if (why != NULL && whylen > 0) why[0] = '\0';
    return rule_parse(rrule, &rt, why, whylen) == 0;
}

int tp_recur_rule(const char *unit, int interval, char *out, size_t outlen) {
    static const struct {
        const char *unit, *freq;
    } units[] = {{"day", "DAILY"},
                 {"week", "WEEKLY"},
                 {"month", "MONTHLY"},
                 {"year", "YEARLY"}};
    if (out != NULL && outlen > 0) out[0] = '\0';
    if (unit == NULL || out == NULL || interval < 1) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) != 0) continue;
        int n = snprintf(out, outlen, "FREQ=%s;INTERVAL=%d", units[i].freq,
                         interval);
        /* libical keeps INTERVAL in a short: ask it rather than guess. */
        if (n < 0 || (size_t)n >= outlen || !tp_recur_valid(out, NULL, 0)) {
            if (outlen > 0) out[0] = '\0';
            return -1;
        }
        return 0;
    }
    return -1;
}

/* The zone named `zone` (NULL: UTC), from libical's cache, or NULL. */
static icaltimezone *zone_find(const char *zone) {
    if (zone == NULL || strcmp(zone, "UTC") == 0)
        return icaltimezone_get_utc_timezone();
    icaltimezone *tz = icaltimezone_get_builtin_timezone(zone);
    icalerror_clear_errno();
    return tz;
}

int tp_recur_between(const char *rrule, int64_t dtstart, const char *zone,
                     int64_t after, int64_t until, int64_t *out, int max,
                     char *why, size_t whylen) {
    assert(max >= 0 && (out != NULL || max == 0));
    if (why != NULL && whylen > 0) why[0] = '\0';
    struct icalrecurrencetype rt;
    if (rule_parse(rrule, &rt, why, whylen) != 0) return -1;
    if (dtstart < 0 || dtstart > MS_MAX)
        return say(why, whylen, "start %lld is out of range",
                   (long long)dtstart);
    icaltimezone *tz = zone_find(zone);
    if (tz == NULL) return say(why, whylen, "unknown time zone %s", zone);
    if (max == 0) return 0;

    /* Whole seconds go to libical; the ms part of dtstart rides along on
     * every occurrence, so the first one is dtstart itself. */
    int64_t frac = dtstart % 1000;
    struct icaltimetype start =
        icaltime_from_timet_with_zone((time_t)(dtstart / 1000), 0, tz);
    /* libical 3.0 turns the fields into the zone's wall time but leaves
     * .zone at UTC: name the zone, or UNTIL would be compared with the
     * wall time as if it were UTC. */
    icaltime_set_timezone(&start, tz);
    icalrecur_iterator *it = icalrecur_iterator_new(rt, start);
    icalerror_clear_errno();
    if (it == NULL)
        return say(why, whylen, "libical cannot iterate the rule from %lld",
                   (long long)dtstart);

    int n = 0;
    int64_t last = after; /* a repeated day (BYDAY=MO,MO) comes once */
    for (int step = 0; n < max; step++) {
        if (step == STEPS_MAX) {
            say(why, whylen, "stopped after %d occurrences of the rule",
                STEPS_MAX);
            break;
        }
        struct icaltimetype t = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(t)) break; /* COUNT or UNTIL reached */
        /* At most one a day (rule_parse), so ascending in UTC too, DST
         * folds included. */
        int64_t ms = (int64_t)icaltime_as_timet_with_zone(t, tz) * 1000 + frac;
        if (until != 0 && ms > until) break;
        if (ms > last) out[n++] = last = ms;
    }
    icalrecur_iterator_free(it);
    icalerror_clear_errno();
    return n;
}
