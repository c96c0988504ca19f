/* scoring_health.h: a customer's health and at-risk episodes (R-HEALTH-1,
 * R-SAT-1). Pure: owns the health rules read from the rules file and the
 * arithmetic; no I/O. */
#ifndef SCORING_HEALTH_H
#define SCORING_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "tp/config.h"

typedef struct tp_health_rules {
    int scores_kept;          /* last N satisfaction scores averaged, 5 */
    int per_score_point;      /* penalty per point the average is below 5, 10 */
    int per_complaint;        /* per open complaint, 15 */
    int per_overdue;          /* per ticket past its SLA, 10 */
    int64_t contact_grace_ms; /* no penalty before this since last contact, 30d */
    int per_silent_day;       /* per day beyond the grace, 1 */
    int64_t day_ms;           /* the "day" of silence, 1d (shorter in tests) */
    int silence_max;          /* cap of the silence penalty, 30 */
    int threshold;            /* below: at risk, 60 */
    int hysteresis;           /* an episode ends at threshold + this, 10 */
    int follow_up_below;      /* R-SAT-1: a score below this needs follow-up, 4 */
} tp_health_rules_t;

/* Reads [health] from the rules config (defaults above). */
void tp_health_rules_load(tp_health_rules_t *rules, tp_config_t *cfg);

typedef struct tp_health_inputs {
    const int *scores;        /* newest first; may be NULL */
    size_t nscores;
    int open_complaints;
    int overdue_tickets;
    int64_t last_contact_at;  /* ms, 0 when never */
    int64_t now;              /* ms: the time of the event being applied */
} tp_health_inputs_t;

/* Health 0..100 (100 = nothing wrong), and in `why` (may be NULL) what pulls
 * it down, e.g. "satisfaction 2.0/5 (-30), 1 open complaint (-15)". */
int tp_health_score(const tp_health_rules_t *rules,
                    const tp_health_inputs_t *in, char *why, size_t whylen);

/* Episode logic: given whether the customer is at risk now and the new
 * health, returns 1 when an episode starts (emit customer.at_risk once),
 * -1 when it ends (health recovered to threshold + hysteresis), 0 else. */
int tp_health_transition(const tp_health_rules_t *rules, int at_risk,
                         int health);

#endif
