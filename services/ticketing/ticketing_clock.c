/* ticketing_clock.c: SLA clock arithmetic on the business calendar. */
#include "ticketing_clock.h"

#include <string.h>

void tp_sla_clock_init(tp_sla_clock_t *c, int64_t started, int64_t target_ms,
                       const tp_calendar_t *hours) {
    memset(c, 0, sizeof *c);
    c->started = started;
    c->target_ms = target_ms;
    c->hours = hours;
}

int tp_sla_clock_paused(const tp_sla_clock_t *c) {
    return c->npauses > 0 && c->pauses[c->npauses - 1][1] == 0;
}

int tp_sla_clock_pause(tp_sla_clock_t *c, int64_t at) {
    if (tp_sla_clock_paused(c)) return 0;
    if (c->npauses == TP_CLOCK_PAUSES_MAX) return -1;
    if (at < c->started) at = c->started;
    c->pauses[c->npauses][0] = at;
    c->pauses[c->npauses][1] = 0;
    c->npauses++;
    return 0;
}

void tp_sla_clock_resume(tp_sla_clock_t *c, int64_t at) {
    if (!tp_sla_clock_paused(c)) return;
    int64_t *p = c->pauses[c->npauses - 1];
    p[1] = at > p[0] ? at : p[0];
}

/* Clock time in [a, b), in the clock's hours. */
static int64_t span(const tp_sla_clock_t *c, int64_t a, int64_t b) {
    if (b <= a) return 0;
    return c->hours ? tp_calendar_working_ms_between(c->hours, a, b) : b - a;
}

/* The instant `need` clock time after `from`. */
static int64_t advance(const tp_sla_clock_t *c, int64_t from, int64_t need) {
    return c->hours ? tp_calendar_add_working_ms(c->hours, from, need) : from + need;
}

int64_t tp_sla_clock_used(const tp_sla_clock_t *c, int64_t at) {
    int64_t used = 0, from = c->started;
    for (size_t i = 0; i < c->npauses && from < at; i++) {
        int64_t pause_from = c->pauses[i][0], pause_to = c->pauses[i][1];
        used += span(c, from, pause_from < at ? pause_from : at);
        if (pause_to == 0 || pause_to >= at) return used; /* paused at `at` */
        from = pause_to;
    }
    return used + span(c, from, at);
}

/* The instant `need` clock time is used, walking the pauses. */
static int64_t reach(const tp_sla_clock_t *c, int64_t need) {
    int64_t from = c->started;
    for (size_t i = 0; i < c->npauses; i++) {
        int64_t run = span(c, from, c->pauses[i][0]);
        if (run >= need) return advance(c, from, need);
        need -= run;
        if (c->pauses[i][1] == 0) return 0; /* paused now: no deadline runs */
        from = c->pauses[i][1];
    }
    return advance(c, from, need);
}

int64_t tp_sla_clock_deadline(const tp_sla_clock_t *c) {
    return reach(c, c->target_ms);
}

int64_t tp_sla_clock_point(const tp_sla_clock_t *c, int share) {
    if (share < 1) share = 1;
    if (share > 100) share = 100;
    return reach(c, c->target_ms * share / 100);
}
