/* fuzz_calendar.c: bytes as the business-calendar INI file -> tp_calendar_new,
 * then one call of each walk over what was loaded.
 *
 * Like fuzz_config, the file is a memfd read through /proc/self/fd. The
 * walks start at fixed instants (one in a DST change) and are bounded by
 * the calendar's horizon, so an input that loads costs a few ms at most.
 * Invariants (calendar.h): a failed load says why; a loaded calendar names
 * its zone; next_working_time and add_working_ms never go back in time;
 * working_ms_between is never negative nor longer than its interval. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "tp/calendar.h"

#define T0 1774742400000LL /* 2026-03-29T00:00:00Z: Europe's spring change */
#define DAY 86400000LL

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) {
        fd = memfd_create("tp-fuzz-calendar", 0);
        if (fd < 0) fuzz_die("memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        fuzz_die("cannot write the calendar memfd");

    char err[256] = "";
    tp_calendar_t *cal = tp_calendar_new(path, err, sizeof err);
    if (cal == NULL) {
        if (err[0] == '\0') fuzz_die("tp_calendar_new failed without a reason");
        return 0;
    }
    if (tp_calendar_zone(cal) == NULL || tp_calendar_zone(cal)[0] == '\0')
        fuzz_die("a loaded calendar without a zone name");

    (void)tp_calendar_working_time(cal, T0 + 9 * 3600000LL);
    int64_t next = tp_calendar_next_working_time(cal, T0);
    if (next < T0)
        fuzz_die("next_working_time went back: %lld < %lld", (long long)next,
                 T0);
    (void)tp_calendar_add_working_days(cal, T0, 3);
    int64_t due = tp_calendar_add_working_ms(cal, T0, 8 * 3600000LL);
    if (due < T0)
        fuzz_die("add_working_ms went back: %lld < %lld", (long long)due, T0);
    int64_t worked = tp_calendar_working_ms_between(cal, T0, T0 + 7 * DAY);
    if (worked < 0 || worked > 7 * DAY)
        fuzz_die("working_ms_between gave %lld for a week", (long long)worked);

    tp_local_time_t local;
    tp_calendar_to_local(cal, T0 + 3600000LL, &local);
    (void)tp_calendar_from_local(cal, &local);
    tp_quiet_t quiet;
    if (tp_quiet_parse("21:00-08:00", cal, &quiet) != 0)
        fuzz_die("tp_quiet_parse refused");
    if (tp_quiet_next_allowed(&quiet, T0) < T0)
        fuzz_die("quiet hours went back");

    tp_calendar_destroy(&cal);
    return 0;
}
