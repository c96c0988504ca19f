/* calendar.h: the business calendar (R-CAL-1) and quiet hours (R-CAL-2).
 *
 * Owns one calendar: its time zone (IANA name, converted through libical),
 * working days and hours, public holidays and make-up working days, loaded
 * from an INI file:
 *
 *   [calendar]
 *   time_zone = Asia/Shanghai
 *   work_days = mon,tue,wed,thu,fri
 *   work_hours = 09:00-12:00,13:00-18:00
 *   [holidays]            ; days off that would be working days
 *   2026-10-01 = National Day
 *   [workdays]            ; make-up days that would be days off
 *   2026-09-20 = make-up working day (a Sunday)
 *
 * All times are ms since the epoch, UTC; the calendar does the civil-time
 * arithmetic in its zone (DST included). "Within 3 working days" counts in
 * the calendar; "within 24 hours" does not use it at all. Pure: no I/O
 * after loading. */
#ifndef TP_CALENDAR_H
#define TP_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

typedef struct tp_calendar tp_calendar_t;

/* Loads `path`, or the default calendar when NULL (UTC, Monday to Friday,
 * 09:00-18:00, no holidays). Returns NULL with "<path>:<line>: <why>" in
 * `err` when the file is unreadable or a line is wrong (unknown zone, bad
 * date, bad hours). Caller owns the result. */
tp_calendar_t *tp_calendar_new(const char *path, char *err, size_t errlen);
/* The default calendar in the IANA zone `zone_name` (a person's zone, for
 * their quiet hours). Returns NULL when the zone is unknown. Caller owns the
 * result. */
tp_calendar_t *tp_calendar_new_zone(const char *zone_name);
void tp_calendar_destroy(tp_calendar_t **self_p);

/* The zone's name ("UTC" for the default). Borrowed. */
const char *tp_calendar_zone(const tp_calendar_t *self);

/* 1 when the local day of `ms` is a working day (a work_days day that is not
 * a holiday, or a make-up day), else 0. */
int tp_calendar_working_day(const tp_calendar_t *self, int64_t ms);
/* 1 when `ms` falls in working hours of a working day. */
int tp_calendar_working_time(const tp_calendar_t *self, int64_t ms);
/* `ms` itself when it is working time, else the start of the next working
 * period. */
int64_t tp_calendar_next_working_time(const tp_calendar_t *self, int64_t ms);

/* The end of the working day `days` working days after the day of `from`
 * (R-STAGE-4: "a proposal within 3 working days"): local end of working
 * hours of that day. days >= 0; 0 is the end of `from`'s day when it is a
 * working day, else of the next one. */
int64_t tp_calendar_add_working_days(const tp_calendar_t *self, int64_t from,
                                     int days);
/* The instant after `from` when `work_ms` of working time has elapsed (a
 * business-hours clock, R-TICKET-3). */
int64_t tp_calendar_add_working_ms(const tp_calendar_t *self, int64_t from,
                                   int64_t work_ms);
/* Working time between a and b (0 when b <= a). */
int64_t tp_calendar_working_ms_between(const tp_calendar_t *self, int64_t a,
                                       int64_t b);

/* Local civil time in the calendar's zone, and back. `from_local` takes
 * year, month 1-12, day, hour, minute; a time that does not exist (DST gap)
 * moves forward past the gap; an ambiguous one takes the first. */
typedef struct tp_local_time {
    int year, month, day, hour, minute, second, weekday; /* weekday 0 = Sunday */
} tp_local_time_t;
void tp_calendar_to_local(const tp_calendar_t *self, int64_t ms,
                          tp_local_time_t *out);
int64_t tp_calendar_from_local(const tp_calendar_t *self,
                               const tp_local_time_t *local);

/* Quiet hours (R-CAL-2): a daily window in a zone, "21:00-08:00" (may cross
 * midnight); "" means none. */
typedef struct tp_quiet {
    int start_min, end_min; /* minutes after local midnight; equal: none */
    const tp_calendar_t *zone; /* borrowed: whose zone the window is in */
} tp_quiet_t;
/* Parses "HH:MM-HH:MM" or "". Returns 0 or -1 (bad text). */
int tp_quiet_parse(const char *text, const tp_calendar_t *zone, tp_quiet_t *out);
/* `ms` when it is outside the quiet window, else the window's end (the next
 * allowed minute). */
int64_t tp_quiet_next_allowed(const tp_quiet_t *quiet, int64_t ms);

#endif
