/* scheduler_rules.h: when each follow-up rule wants its reminder (domain.md
 * sections 2, 3, 4 and 7). Owns the rule values from configuration and the
 * arithmetic of due times on the business calendar; pure, no I/O, so each
 * rule is tested on its own. scheduler_plan turns these into reminders. */
#ifndef SCHEDULER_RULES_H
#define SCHEDULER_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "tp/calendar.h"
#include "tp/config.h"

typedef struct tp_sched_rules {
    int64_t first_touch_ms[3];   /* R-TOUCH-1: A 24h, B 3d, C 30d */
    int64_t cadence_ms[3];       /* R-CAD-1: A 1d, B 3d (2-3 a week), C 30d */
    int64_t cadence_default_ms;  /* R-CAD-2: after a contact, ungraded: 3d */
    int64_t inquiry_ms;          /* R-SLA-1: 2h */
    int64_t inquiry_urgent_ms;   /* R-SLA-1: 30m */
    int64_t mail_window_ms;      /* R-MAIL-1: 5d (3d..7d) */
    int64_t stage_duration_ms[7];/* R-STAGE-3: [1..6] reference durations */
    int64_t dwell_escalate_ms;   /* R-STAGE-3: then the manager, 2d later */
    int summary_days;            /* R-STAGE-4: needs summary, 1 working day */
    int proposal_days;           /* R-STAGE-4: proposal, 3 working days */
    int contract_days;           /* R-STAGE-4: contract sent, 1 working day */
    char report_rrule[64];       /* R-STAGE-4: delivery reports, weekly */
    char visit_phone[4][64];     /* R-VISIT-1: [tier 1..3] FREQ=MONTHLY */
    char visit_site[4][64];      /* R-VISIT-1: [tier 1..3] FREQ=MONTHLY;INTERVAL=3 */
    int64_t greet_ahead_ms;      /* R-DAYS-1: 3d before the day */
    int64_t pay_ahead_ms;        /* R-PAY-1: 3d before the due date */
    int64_t pay_overdue_ms;      /* R-PAY-1: escalate 1d after, then daily */
    int reorder_advance_days;    /* R-REORDER-1: 7 */
    int survey_low;              /* R-SAT-1: a score below this (4) ... */
    int64_t survey_follow_up_ms; /* R-SAT-1: ... plans a follow-up this late, 1d */
    int working_hours_only;      /* reminders to staff land in working time */
    char quiet_hours[16];        /* R-CAL-2: default window, "21:00-08:00" */
} tp_sched_rules_t;

/* Reads [scheduler] of the deployment config and [stages] of the rules
 * file (`rules`, may be the same config). Bad values are left to
 * tp_config_check; a mail window outside 3d..7d is clamped and logged. */
void tp_sched_rules_load(tp_sched_rules_t *rules, tp_config_t *cfg,
                         tp_config_t *rules_file);

/* Grade letter to index 0..2 (C for anything else). */
int tp_sched_grade_index(const char *grade);

/* The due time a reminder for a member of staff actually gets: moved into
 * working time when working_hours_only, then out of the recipient's quiet
 * hours unless urgent (R-CAL-1, R-CAL-2). */
int64_t tp_sched_deliverable(const tp_sched_rules_t *rules,
                             const tp_calendar_t *cal, const tp_quiet_t *quiet,
                             int64_t due, int urgent);

/* The next occurrence of a yearly day "MM-DD" or "YYYY-MM-DD" at 09:00
 * local strictly after `after` minus nothing; 0 when the text is not a
 * date (R-DAYS-1). Feb 29 falls on Feb 28 in other years. */
int64_t tp_sched_next_yearly(const tp_calendar_t *cal, const char *date,
                             int64_t after);

#endif
