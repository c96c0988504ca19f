/* recur.h: RFC 5545 recurrence rules through libical (R-REORDER-1). Owns
 * nothing; never hand-rolls date arithmetic: every occurrence comes from
 * libical's recurrence iterator. */
#ifndef TP_RECUR_H
#define TP_RECUR_H

#include <stddef.h>
#include <stdint.h>

/* 1 when `rrule` ("FREQ=MONTHLY;INTERVAL=2;COUNT=6") is a rule libical
 * accepts and that ends or repeats at least daily at most (FREQ of DAILY,
 * WEEKLY, MONTHLY or YEARLY), else 0 with the reason in `why`. */
int tp_recur_valid(const char *rrule, char *why, size_t whylen);

/* "FREQ=<unit>LY;INTERVAL=<n>" for unit day|week|month|year. Returns 0 or
 * -1 (unknown unit, n < 1, no room). */
int tp_recur_rule(const char *unit, int interval, char *out, size_t outlen);

/* Up to `max` occurrences of `rrule` started at `dtstart` (ms, UTC; the
 * rule runs in the IANA zone `zone`, "UTC" when NULL, so "monthly" keeps the
 * local time of day across DST), strictly after `after` and not after
 * `until` (0: no bound besides the rule's own COUNT/UNTIL), ascending, into
 * `out`. Returns how many, or -1 with `why` when the rule is invalid. */
int tp_recur_between(const char *rrule, int64_t dtstart, const char *zone,
                     int64_t after, int64_t until, int64_t *out, int max,
                     char *why, size_t whylen);

#endif
