/* scheduler_rules.c: rule values and due-time arithmetic. */
#include "scheduler_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/log.h"

#define DAY_MS 86400000LL

void tp_sched_rules_load(tp_sched_rules_t *r, tp_config_t *cfg, tp_config_t *rules_file) {
    memset(r, 0, sizeof *r);
    const char *s = "scheduler";
    r->first_touch_ms[0] = tp_config_ms(cfg, s, "first_touch_a", "24h");
    r->first_touch_ms[1] = tp_config_ms(cfg, s, "first_touch_b", "3d");
    r->first_touch_ms[2] = tp_config_ms(cfg, s, "first_touch_c", "30d");
    r->cadence_ms[0] = tp_config_ms(cfg, s, "cadence_a", "1d");
    r->cadence_ms[1] = tp_config_ms(cfg, s, "cadence_b", "3d");
    r->cadence_ms[2] = tp_config_ms(cfg, s, "cadence_c", "30d");
    r->cadence_default_ms = tp_config_ms(cfg, s, "cadence_default", "3d");
    r->inquiry_ms = tp_config_ms(cfg, s, "inquiry_response", "2h");
    r->inquiry_urgent_ms = tp_config_ms(cfg, s, "inquiry_response_urgent", "30m");
    r->mail_window_ms = tp_config_ms(cfg, s, "mail_window", "5d");
    if (r->mail_window_ms < 3 * DAY_MS || r->mail_window_ms > 7 * DAY_MS) {
        /* R-MAIL-1 says 3-7 natural days; shorter only for tests */
        if (!tp_config_bool(cfg, s, "mail_window_unchecked", 0)) {
            tp_log_warn("scheduler.mail_window outside 3d..7d (R-MAIL-1); clamped");
            r->mail_window_ms = r->mail_window_ms < 3 * DAY_MS ? 3 * DAY_MS : 7 * DAY_MS;
        }
    }
    static const char *const durations[] = {"", "21d", "14d", "28d", "7d", "0", "182d"};
    for (int i = 1; i <= 6; i++) {
        char key[32];
        snprintf(key, sizeof key, "duration_%d", i);
        r->stage_duration_ms[i] = tp_config_ms(rules_file, "stages", key, durations[i]);
    }
    r->dwell_escalate_ms = tp_config_ms(cfg, s, "dwell_escalate", "2d");
    r->summary_days = (int)tp_config_int(cfg, s, "summary_days", 1, 0, 30);
    r->proposal_days = (int)tp_config_int(cfg, s, "proposal_days", 3, 0, 30);
    r->contract_days = (int)tp_config_int(cfg, s, "contract_days", 1, 0, 30);
    snprintf(r->report_rrule, sizeof r->report_rrule, "%s",
             tp_config_str(cfg, s, "report_rrule", "FREQ=WEEKLY"));
    static const char *const phone[] = {"", "FREQ=MONTHLY", "FREQ=MONTHLY",
                                        "FREQ=WEEKLY;INTERVAL=2"};
    static const char *const site[] = {"", "FREQ=MONTHLY;INTERVAL=3",
                                       "FREQ=MONTHLY;INTERVAL=3", "FREQ=MONTHLY;INTERVAL=2"};
    for (int t = 1; t <= 3; t++) {
        char key[32];
        snprintf(key, sizeof key, "visit_phone_tier_%d", t);
        snprintf(r->visit_phone[t], sizeof r->visit_phone[t], "%s",
                 tp_config_str(cfg, s, key, phone[t]));
        snprintf(key, sizeof key, "visit_site_tier_%d", t);
        snprintf(r->visit_site[t], sizeof r->visit_site[t], "%s",
                 tp_config_str(cfg, s, key, site[t]));
    }
    r->greet_ahead_ms = tp_config_ms(cfg, s, "greet_ahead", "3d");
    r->pay_ahead_ms = tp_config_ms(cfg, s, "pay_ahead", "3d");
    r->pay_overdue_ms = tp_config_ms(cfg, s, "pay_overdue", "1d");
    r->reorder_advance_days = (int)tp_config_int(cfg, s, "reorder_advance_days", 7, 0, 365);
    r->survey_low = (int)tp_config_int(cfg, s, "survey_low", 4, 1, 6);
    r->survey_follow_up_ms = tp_config_ms(cfg, s, "survey_follow_up", "1d");
    r->working_hours_only = tp_config_bool(cfg, s, "working_hours_only", 1);
    snprintf(r->quiet_hours, sizeof r->quiet_hours, "%s",
             tp_config_str(cfg, s, "quiet_hours", "21:00-08:00"));
}

int tp_sched_grade_index(const char *grade) {
    if (grade && grade[0] == 'A') return 0;
    if (grade && grade[0] == 'B') return 1;
    return 2;
}

int64_t tp_sched_deliverable(const tp_sched_rules_t *rules, const tp_calendar_t *cal,
                             const tp_quiet_t *quiet, int64_t due, int urgent) {
    if (urgent) return due; /* R-CAL-2: urgent goes through at once */
    if (rules->working_hours_only && cal) due = tp_calendar_next_working_time(cal, due);
    if (quiet) due = tp_quiet_next_allowed(quiet, due);
    return due;
}

int64_t tp_sched_next_yearly(const tp_calendar_t *cal, const char *date, int64_t after) {
    int y = 0, m = 0, d = 0;
    if (!date) return 0;
    if (strlen(date) == 10) {
        if (sscanf(date, "%4d-%2d-%2d", &y, &m, &d) != 3) return 0;
    } else if (strlen(date) != 5 || sscanf(date, "%2d-%2d", &m, &d) != 2) {
        return 0;
    }
    if (m < 1 || m > 12 || d < 1 || d > 31) return 0;
    tp_local_time_t now;
    tp_calendar_to_local(cal, after, &now);
    for (int year = now.year; year <= now.year + 2; year++) { /* this year or next */
        int day = d;
        int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        static const int days_in[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int last = days_in[m - 1] + (m == 2 && leap);
        if (day > last) day = last; /* Feb 29 in a common year: Feb 28 */
        tp_local_time_t at = {.year = year, .month = m, .day = day, .hour = 9};
        int64_t ms = tp_calendar_from_local(cal, &at);
        if (ms > after) return ms;
    }
    return 0;
}
