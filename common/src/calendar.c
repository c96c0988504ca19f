/* calendar.c: the business calendar (R-CAL-1) and quiet hours (R-CAL-2).
 *
 * Owns one calendar loaded from an INI file: its zone (libical's builtin
 * zone, read from the system zoneinfo; never freed here, libical owns it),
 * the weekday mask, the working periods of a day, the holiday and make-up
 * dates, and a small cache of the UTC bounds of each local date's working
 * periods. Every civil-time conversion goes through libical: this file only
 * counts days (proleptic Gregorian arithmetic), it never knows an offset of
 * its own. Must never do I/O after loading.
 *
 * The cache is the one thing that changes after loading, through a pointer
 * member so the const API stays honest: a calendar belongs to one thread
 * (its service's loop), like everything else in a service.
 *
 * Walking loops stop after TP_CAL_HORIZON_DAYS local days (about ten years):
 * a calendar with no working day left in that span gets a finite answer
 * (the start of the day after the horizon), never a hang. */
#include "tp/calendar.h"

#include <assert.h>
#include <errno.h>
#include <ini.h>
#include <libical/ical.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define TP_CAL_MAX_PERIODS 8     /* working periods in one day */
#define TP_CAL_HORIZON_DAYS 3660 /* how far a walk looks, in local days */
#define TP_CAL_CACHE_DAYS 64     /* local dates whose bounds are kept */
#define SECS_PER_DAY 86400

typedef struct {
    int start_min, end_min; /* [start, end) minutes after local midnight */
} period_t;

typedef struct {
    int64_t day; /* days since 1970-01-01, local */
    int line;    /* where the file named it, for errors */
} date_entry_t;

typedef struct {
    date_entry_t *items;
    size_t count, cap;
} date_set_t;

/* One local date's working periods as UTC ms. */
typedef struct {
    int64_t day; /* INT64_MIN: empty slot */
    int64_t start[TP_CAL_MAX_PERIODS], end[TP_CAL_MAX_PERIODS];
} day_bounds_t;

struct tp_calendar {
    char *zone_name;
    icaltimezone *zone; /* libical's builtin zone: borrowed for ever */
    unsigned work_days; /* bit n: weekday n (0 = Sunday) works */
    period_t periods[TP_CAL_MAX_PERIODS];
    int nperiods;
    date_set_t holidays, workdays; /* sorted by day after loading */
    day_bounds_t *cache;           /* TP_CAL_CACHE_DAYS slots, by day */
};

/* ---------------------------------------------------------------------
 * Day arithmetic (no zones here)
 * --------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date; month may be any
 * integer (normalised into the year), day any integer (counted on). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y += floor_div(m - 1, 12);
    m = m - 1 - floor_div(m - 1, 12) * 12 + 1; /* 1..12 */
    /* Count from March so the leap day ends the year. */
    if (m <= 2) y -= 1;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                         /* 0..399 */
    int64_t mp = (m + 9) % 12;                           /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + d - 1;            /* day of that year */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* day of the era */
    return era * 146097 + doe - 719468; /* 719468: 0000-03-01 to 1970-01-01 */
}

static int weekday_of(int64_t day) { /* 1970-01-01 was a Thursday */
    return (int)(((day + 4) % 7 + 7) % 7);
}

static int leap_year(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return days[m - 1] + (m == 2 && leap_year(y));
}

/* ---------------------------------------------------------------------
 * Civil time through libical
 * --------------------------------------------------------------------- */

/* The local wall clock of UTC second `t`, as seconds since a local epoch
 * (1970-01-01 00:00 local). */
static int64_t local_secs(icaltimezone *zone, int64_t t) {
    struct icaltimetype tt = icaltime_from_timet_with_zone((time_t)t, 0, zone);
    return days_from_civil(tt.year, tt.month, tt.day) * SECS_PER_DAY +
           tt.hour * 3600 + tt.minute * 60 + tt.second;
}

/* The UTC second whose wall clock reads `local`. libical's own
 * icaltime_as_timet_with_zone resolves a gap backwards, so the candidates
 * come from the offsets in force two days either side: a wall time valid
 * under both is ambiguous (the first wins), under neither is in a gap (the
 * instant the gap ends wins, found by bisection on libical's answers). Real
 * zones never change offset twice within four days. */
static int64_t utc_secs(icaltimezone *zone, int64_t local) {
    int64_t before = local - 2 * SECS_PER_DAY, after = local + 2 * SECS_PER_DAY;
    int64_t off_before = local_secs(zone, before) - before;
    int64_t off_after = local_secs(zone, after) - after;
    int64_t t_before = local - off_before, t_after = local - off_after;
    if (off_before == off_after) return t_before;
    int ok_before = local_secs(zone, t_before) == local;
    int ok_after = local_secs(zone, t_after) == local;
    if (ok_before && ok_after) return t_before < t_after ? t_before : t_after;
    if (ok_before) return t_before;
    if (ok_after) return t_after;
    /* Gap: the clock jumps forward between the two candidates. */
    int64_t lo = t_before < t_after ? t_before : t_after;
    int64_t hi = t_before < t_after ? t_after : t_before;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (local_secs(zone, mid) - mid == off_after)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* The local date of UTC ms. */
static int64_t local_day(icaltimezone *zone, int64_t ms) {
    return floor_div(local_secs(zone, floor_div(ms, 1000)), SECS_PER_DAY);
}

/* UTC ms of `minute` minutes after local midnight of `day`. */
static int64_t local_minute_ms(icaltimezone *zone, int64_t day, int minute) {
    return utc_secs(zone, day * SECS_PER_DAY + (int64_t)minute * 60) * 1000;
}

/* ---------------------------------------------------------------------
 * Working days and periods
 * --------------------------------------------------------------------- */

static int date_cmp(const void *a, const void *b) {
    const date_entry_t *x = a, *y = b;
    if (x->day != y->day) return x->day < y->day ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

static int date_set_has(const date_set_t *set, int64_t day) {
    size_t lo = 0, hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->items[mid].day == day) return 1;
        if (set->items[mid].day < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static int day_working(const tp_calendar_t *self, int64_t day) {
    if (date_set_has(&self->workdays, day)) return 1;
    if (date_set_has(&self->holidays, day)) return 0;
    return (self->work_days >> weekday_of(day)) & 1;
}

/* The UTC bounds of `day`'s working periods, from the cache when it has
 * them. Borrowed until the next call. */
static const day_bounds_t *day_bounds(const tp_calendar_t *self, int64_t day) {
    day_bounds_t *b = &self->cache[(size_t)((uint64_t)day % TP_CAL_CACHE_DAYS)];
    if (b->day == day) return b;
    b->day = day;
    for (int i = 0; i < self->nperiods; i++) {
        b->start[i] =
            local_minute_ms(self->zone, day, self->periods[i].start_min);
        b->end[i] = local_minute_ms(self->zone, day, self->periods[i].end_min);
    }
    return b;
}

/* Where a walk that found nothing within the horizon stops. */
static int64_t horizon_end(const tp_calendar_t *self, int64_t day) {
    return local_minute_ms(self->zone, day, 0);
}

/* ---------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------- */

typedef struct {
    tp_calendar_t *cal;
    FILE *file;
    int lines_read;
    int long_line; /* first line longer than inih's buffer, 0 if none */
    int err_line;  /* first line a value was wrong on, 0 if none */
    char err[200];
    int have_zone;
} load_t;

static char *copy(const char *s) {
    char *out = strdup(s);
    if (!out) abort();
    return out;
}

static void date_set_add(date_set_t *set, int64_t day, int line) {
    if (set->count == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 32;
        set->items = realloc(set->items, set->cap * sizeof *set->items);
        if (!set->items) abort();
    }
    set->items[set->count++] = (date_entry_t){day, line};
}

/* Records the first wrong value and its line; returns 0 for inih. */
static int load_fail(load_t *ld, const char *fmt, const char *arg) {
    if (!ld->err_line) {
        ld->err_line = ld->lines_read;
        snprintf(ld->err, sizeof ld->err, fmt, arg);
    }
    return 0;
}

static const char *skip_spaces(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* "HH:MM" into minutes after midnight; 24:00 only when `allow_24`.
 * Advances *p past it. Returns 0 or -1. */
static int parse_hhmm(const char **p, int allow_24, int *out) {
    const char *s = *p;
    for (int i = 0; i < 5; i++) {
        if (i == 2 ? s[i] != ':' : (s[i] < '0' || s[i] > '9')) return -1;
    }
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24))) return -1;
    *out = h * 60 + m;
    *p = s + 5;
    return 0;
}

/* "YYYY-MM-DD", a real date, into days since 1970-01-01. */
static int parse_date(const char *s, int64_t *out) {
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return -1;
    }
    if (s[10] != '\0') return -1;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return -1;
    *out = days_from_civil(y, m, d);
    return 0;
}

static int parse_work_days(load_t *ld, const char *value) {
    static const char *const names[7][2] = {
        {"sun", "sunday"},    {"mon", "monday"},   {"tue", "tuesday"},
        {"wed", "wednesday"}, {"thu", "thursday"}, {"fri", "friday"},
        {"sat", "saturday"}};
    unsigned mask = 0;
    const char *p = value;
    for (;;) {
        p = skip_spaces(p);
        size_t len = strcspn(p, ", \t");
        int found = -1;
        for (int d = 0; d < 7 && found < 0 && len; d++)
            for (int n = 0; n < 2; n++)
                if (strlen(names[d][n]) == len &&
                    strncasecmp(p, names[d][n], len) == 0)
                    found = d;
        if (found < 0)
            return load_fail(ld, "work_days: \"%s\" is not a list of mon..sun",
                             value);
        if (mask & (1u << found))
            return load_fail(ld, "work_days: \"%s\" names a day twice", value);
        mask |= 1u << found;
        p = skip_spaces(p + len);
        if (*p == '\0') break;
        if (*p++ != ',')
            return load_fail(ld, "work_days: \"%s\" is not a list of mon..sun",
                             value);
    }
    ld->cal->work_days = mask;
    return 1;
}

static int parse_work_hours(load_t *ld, const char *value) {
    period_t periods[TP_CAL_MAX_PERIODS];
    int n = 0;
    const char *p = value;
    for (;;) {
        period_t pd;
        p = skip_spaces(p);
        if (parse_hhmm(&p, 0, &pd.start_min) < 0) goto bad;
        p = skip_spaces(p);
        if (*p++ != '-') goto bad;
        p = skip_spaces(p);
        if (parse_hhmm(&p, 1, &pd.end_min) < 0) goto bad;
        if (pd.end_min <= pd.start_min)
            return load_fail(ld,
                             "work_hours: \"%s\": a period must end after it "
                             "starts, within the day",
                             value);
        if (n > 0 && pd.start_min < periods[n - 1].end_min)
            return load_fail(ld,
                             "work_hours: \"%s\": periods must be in order and "
                             "must not overlap",
                             value);
        if (n == TP_CAL_MAX_PERIODS)
            return load_fail(ld, "work_hours: \"%s\": too many periods", value);
        periods[n++] = pd;
        p = skip_spaces(p);
        if (*p == '\0') break;
        if (*p++ != ',') goto bad;
    }
    memcpy(ld->cal->periods, periods, sizeof periods);
    ld->cal->nperiods = n;
    return 1;
bad:
    return load_fail(ld, "work_hours: \"%s\" is not HH:MM-HH:MM[,HH:MM-HH:MM]",
                     value);
}

static int parse_zone(load_t *ld, const char *value) {
    icaltimezone *zone =
        *value ? icaltimezone_get_builtin_timezone(value) : NULL;
    if (!zone) return load_fail(ld, "time_zone: unknown zone \"%s\"", value);
    free(ld->cal->zone_name);
    ld->cal->zone_name = copy(value);
    ld->cal->zone = zone;
    ld->have_zone = 1;
    return 1;
}

/* inih's handler: one key = value line. Returns 0 (and records why) when the
 * line is wrong; inih notes the line and reads on. */
static int line_parsed(void *user, const char *section, const char *key,
                       const char *value) {
    load_t *ld = user;
    if (strcasecmp(section, "calendar") == 0) {
        if (strcasecmp(key, "time_zone") == 0) return parse_zone(ld, value);
        if (strcasecmp(key, "work_days") == 0)
            return parse_work_days(ld, value);
        if (strcasecmp(key, "work_hours") == 0)
            return parse_work_hours(ld, value);
        return load_fail(ld, "unknown key \"%s\" in [calendar]", key);
    }
    int holiday = strcasecmp(section, "holidays") == 0;
    if (holiday || strcasecmp(section, "workdays") == 0) {
        int64_t day;
        if (parse_date(key, &day) < 0)
            return load_fail(ld, "\"%s\" is not a date (YYYY-MM-DD)", key);
        date_set_add(holiday ? &ld->cal->holidays : &ld->cal->workdays, day,
                     ld->lines_read);
        return 1;
    }
    return load_fail(ld, "unknown section [%s]", section);
}

/* ini_parse_stream's line source: fgets, counting lines; a line longer than
 * inih's buffer is noted and its tail skipped (inih would read the tail as a
 * line of its own). */
static char *line_read(char *str, int num, void *stream) {
    load_t *ld = stream;
    if (!fgets(str, num, ld->file)) return NULL;
    ld->lines_read++;
    size_t len = strlen(str);
    if (len == (size_t)num - 1 && str[len - 1] != '\n') {
        int ch = getc(ld->file);
        if (ch != EOF && ch != '\n') {
            if (!ld->long_line) ld->long_line = ld->lines_read;
            while (ch != EOF && ch != '\n')
                ch = getc(ld->file);
        }
    }
    return str;
}

/* A date may not be both a holiday and a make-up day: names the later
 * line. Sorts both sets. Returns 0 or -1 with the message in `ld`. */
static int dates_check(load_t *ld) {
    date_set_t *h = &ld->cal->holidays, *w = &ld->cal->workdays;
    if (h->count) qsort(h->items, h->count, sizeof *h->items, date_cmp);
    if (w->count) qsort(w->items, w->count, sizeof *w->items, date_cmp);
    int line = 0;
    int64_t day = 0;
    for (size_t i = 0, j = 0; i < h->count && j < w->count;) {
        if (h->items[i].day < w->items[j].day) {
            i++;
        } else if (h->items[i].day > w->items[j].day) {
            j++;
        } else {
            int at = h->items[i].line > w->items[j].line ? h->items[i].line
                                                         : w->items[j].line;
            if (!line || at < line) line = at, day = h->items[i].day;
            i++, j++;
        }
    }
    if (!line) return 0;
    ld->err_line = line;
    time_t secs = (time_t)(day * SECS_PER_DAY);
    struct tm tm;
    gmtime_r(&secs, &tm); /* a date, not an instant: no zone involved */
    snprintf(ld->err, sizeof ld->err,
             "%04d-%02d-%02d is both a holiday and a make-up working day",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    return -1;
}

static tp_calendar_t *calendar_default(void) {
    tp_calendar_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->zone_name = copy("UTC");
    self->zone = icaltimezone_get_utc_timezone();
    self->work_days = 0x3e; /* Monday to Friday */
    self->periods[0] = (period_t){9 * 60, 18 * 60};
    self->nperiods = 1;
    self->cache = malloc(TP_CAL_CACHE_DAYS * sizeof *self->cache);
    if (!self->cache) abort();
    for (int i = 0; i < TP_CAL_CACHE_DAYS; i++)
        self->cache[i].day = INT64_MIN;
    return self;
}

/* Keys the file leaves out keep the default's value (Monday to Friday,
 * 09:00-18:00), except time_zone: a file of local dates in an unstated zone
 * is a mistake, not a default. */
tp_calendar_t *tp_calendar_new(const char *path, char *err, size_t errlen) {
    tp_calendar_t *self = calendar_default();
    if (!path) return self;

    load_t ld = {.cal = self};
    ld.file = fopen(path, "r");
    if (!ld.file) {
        if (err && errlen)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    int syntax_line = ini_parse_stream(line_read, &ld, line_parsed, &ld);
    int read_failed = ferror(ld.file);
    fclose(ld.file);
    if (syntax_line == -2) abort(); /* inih ran out of memory */
    if (read_failed) {
        if (err && errlen) snprintf(err, errlen, "cannot read %s", path);
        goto fail;
    }
    /* inih notes the first line it or the handler rejected: when that is
     * not the handler's, it was a line inih could not parse. The earliest
     * problem wins. */
    int line = 0;
    const char *why = NULL;
    if (syntax_line > 0 && syntax_line != ld.err_line)
        line = syntax_line,
        why = "syntax error (expected [section] or key = value)";
    if (ld.err_line && (!line || ld.err_line < line))
        line = ld.err_line, why = ld.err;
    if (ld.long_line && (!line || ld.long_line <= line))
        line = ld.long_line, why = "line too long";
    if (!line && dates_check(&ld) < 0) line = ld.err_line, why = ld.err;
    if (line) {
        if (err && errlen) snprintf(err, errlen, "%s:%d: %s", path, line, why);
        goto fail;
    }
    if (!ld.have_zone) {
        if (err && errlen)
            snprintf(err, errlen, "%s: [calendar] time_zone is missing", path);
        goto fail;
    }
    return self;

fail:
    tp_calendar_destroy(&self);
    return NULL;
}

tp_calendar_t *tp_calendar_new_zone(const char *zone_name) {
    icaltimezone *zone =
        zone_name && *zone_name ? icaltimezone_get_builtin_timezone(zone_name) : NULL;
    if (!zone) return NULL;
    tp_calendar_t *self = calendar_default();
    free(self->zone_name);
    self->zone_name = copy(zone_name);
    self->zone = zone;
    return self;
}

void tp_calendar_destroy(tp_calendar_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_calendar_t *self = *self_p;
    *self_p = NULL;
    free(self->zone_name);
    free(self->holidays.items);
    free(self->workdays.items);
    free(self->cache);
    free(self);
}

const char *tp_calendar_zone(const tp_calendar_t *self) {
    assert(self);
    return self->zone_name;
}

/* ---------------------------------------------------------------------
 * Working time
 * --------------------------------------------------------------------- */

int tp_calendar_working_day(const tp_calendar_t *self, int64_t ms) {
    assert(self);
    return day_working(self, local_day(self->zone, ms));
}

int tp_calendar_working_time(const tp_calendar_t *self, int64_t ms) {
    assert(self);
    int64_t day = local_day(self->zone, ms);
    if (!day_working(self, day)) return 0;
    const day_bounds_t *b = day_bounds(self, day);
    for (int i = 0; i < self->nperiods; i++)
        if (b->start[i] <= ms && ms < b->end[i]) return 1;
    return 0;
}

int64_t tp_calendar_next_working_time(const tp_calendar_t *self, int64_t ms) {
    assert(self);
    int64_t day = local_day(self->zone, ms);
    for (int n = 0; n < TP_CAL_HORIZON_DAYS; n++, day++) {
        if (!day_working(self, day)) continue;
        const day_bounds_t *b = day_bounds(self, day);
        for (int i = 0; i < self->nperiods; i++)
            if (ms < b->end[i]) return ms > b->start[i] ? ms : b->start[i];
    }
    return horizon_end(self, day);
}

/* Day 0 is `from`'s own day when it works, even when its hours are over:
 * the deadline is that day's close, as the header promises. */
int64_t tp_calendar_add_working_days(const tp_calendar_t *self, int64_t from,
                                     int days) {
    assert(self);
    if (days < 0) days = 0;
    int64_t day = local_day(self->zone, from);
    for (int n = 0; n < TP_CAL_HORIZON_DAYS; n++, day++) {
        if (!day_working(self, day)) continue;
        if (days-- == 0) return day_bounds(self, day)->end[self->nperiods - 1];
    }
    return horizon_end(self, day);
}

/* Walks the working periods from `from`'s local day on, spending `work_ms`;
 * the answer lands inside a period or on its end (an SLA that runs out at
 * 18:00 is due at 18:00, not at 09:00 next morning). */
int64_t tp_calendar_add_working_ms(const tp_calendar_t *self, int64_t from,
                                   int64_t work_ms) {
    assert(self);
    if (work_ms <= 0) return from;
    int64_t day = local_day(self->zone, from);
    for (int n = 0; n < TP_CAL_HORIZON_DAYS; n++, day++) {
        if (!day_working(self, day)) continue;
        const day_bounds_t *b = day_bounds(self, day);
        for (int i = 0; i < self->nperiods; i++) {
            int64_t start = b->start[i] > from ? b->start[i] : from;
            if (start >= b->end[i]) continue;
            if (work_ms <= b->end[i] - start) return start + work_ms;
            work_ms -= b->end[i] - start;
        }
    }
    return horizon_end(self, day);
}

int64_t tp_calendar_working_ms_between(const tp_calendar_t *self, int64_t a,
                                       int64_t b) {
    assert(self);
    if (b <= a) return 0;
    int64_t day = local_day(self->zone, a), last = local_day(self->zone, b);
    if (last - day > TP_CAL_HORIZON_DAYS) last = day + TP_CAL_HORIZON_DAYS;
    int64_t total = 0;
    for (; day <= last; day++) {
        if (!day_working(self, day)) continue;
        const day_bounds_t *bounds = day_bounds(self, day);
        for (int i = 0; i < self->nperiods; i++) {
            int64_t start = bounds->start[i] > a ? bounds->start[i] : a;
            int64_t end = bounds->end[i] < b ? bounds->end[i] : b;
            if (end > start) total += end - start;
        }
    }
    return total;
}

/* ---------------------------------------------------------------------
 * Local time
 * --------------------------------------------------------------------- */

void tp_calendar_to_local(const tp_calendar_t *self, int64_t ms,
                          tp_local_time_t *out) {
    assert(self && out);
    struct icaltimetype tt = icaltime_from_timet_with_zone(
        (time_t)floor_div(ms, 1000), 0, self->zone);
    *out = (tp_local_time_t){
        .year = tt.year,
        .month = tt.month,
        .day = tt.day,
        .hour = tt.hour,
        .minute = tt.minute,
        .second = tt.second,
        .weekday = weekday_of(days_from_civil(tt.year, tt.month, tt.day))};
}

/* Takes second too, and counts fields past their range on (day 32 is the
 * 1st of the next month, minute 90 is 1:30 later) so callers can step by
 * fields; weekday is ignored. */
int64_t tp_calendar_from_local(const tp_calendar_t *self,
                               const tp_local_time_t *local) {
    assert(self && local);
    int64_t day =
        days_from_civil(local->year, local->month, 1) + local->day - 1;
    int64_t secs = day * SECS_PER_DAY + (int64_t)local->hour * 3600 +
                   (int64_t)local->minute * 60 + local->second;
    return utc_secs(self->zone, secs) * 1000;
}

/* ---------------------------------------------------------------------
 * Quiet hours
 * --------------------------------------------------------------------- */

/* A window of the whole day cannot be written: 24:00 is not accepted, and
 * equal ends mean no window at all. A NULL zone means UTC. */
int tp_quiet_parse(const char *text, const tp_calendar_t *zone,
                   tp_quiet_t *out) {
    assert(out);
    int start = 0, end = 0;
    const char *p = skip_spaces(text ? text : "");
    if (*p) {
        if (parse_hhmm(&p, 0, &start) < 0) return -1;
        p = skip_spaces(p);
        if (*p++ != '-') return -1;
        p = skip_spaces(p);
        if (parse_hhmm(&p, 0, &end) < 0) return -1;
        if (*skip_spaces(p) != '\0') return -1;
    }
    *out = (tp_quiet_t){.start_min = start, .end_min = end, .zone = zone};
    return 0;
}

int64_t tp_quiet_next_allowed(const tp_quiet_t *quiet, int64_t ms) {
    if (!quiet || quiet->start_min == quiet->end_min) return ms;
    icaltimezone *zone =
        quiet->zone ? quiet->zone->zone : icaltimezone_get_utc_timezone();
    int64_t local = local_secs(zone, floor_div(ms, 1000));
    int64_t day = floor_div(local, SECS_PER_DAY);
    int minute = (int)((local - day * SECS_PER_DAY) / 60);
    int start = quiet->start_min, end = quiet->end_min;
    int quiet_now = start < end ? minute >= start && minute < end
                                : minute >= start || minute < end;
    if (!quiet_now) return ms;
    /* Crossing midnight and still before it: the window ends tomorrow. */
    if (start > end && minute >= start) day++;
    int64_t allowed = local_minute_ms(zone, day, end);
    return allowed > ms ? allowed : ms;
}
