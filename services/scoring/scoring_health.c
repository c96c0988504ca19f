/* scoring_health.c: a customer's health and its at-risk episodes
 * (R-HEALTH-1, R-SAT-1).
 *
 * Owns nothing beyond the rule values it copies out of the configuration.
 * Pure arithmetic over the inputs handed in: never does I/O and never reads
 * the clock (`now` is the time of the event being applied, so replaying the
 * same events gives the same health). Inputs come from the customer record,
 * so out-of-range counts and scores are clamped here, never asserted. */
#include "scoring_health.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS (86400 * INT64_C(1000))
#define SCORE_MAX 5 /* R-SAT-1: scores are 1..5 */

void tp_health_rules_load(tp_health_rules_t *r, tp_config_t *cfg) {
    memset(r, 0, sizeof *r);
    r->scores_kept =
        (int)tp_config_int(cfg, "health", "scores_kept", 5, 1, 100);
    r->per_score_point =
        (int)tp_config_int(cfg, "health", "per_score_point", 10, 0, 100);
    r->per_complaint =
        (int)tp_config_int(cfg, "health", "per_complaint", 15, 0, 100);
    r->per_overdue =
        (int)tp_config_int(cfg, "health", "per_overdue", 10, 0, 100);
    r->contact_grace_ms = tp_config_ms(cfg, "health", "contact_grace", "30d");
    r->per_silent_day =
        (int)tp_config_int(cfg, "health", "per_silent_day", 1, 0, 100);
    r->day_ms = tp_config_ms(cfg, "health", "silence_day", "1d");
    if (r->day_ms <= 0) r->day_ms = DAY_MS;
    r->silence_max =
        (int)tp_config_int(cfg, "health", "silence_max", 30, 0, 100);
    r->threshold = (int)tp_config_int(cfg, "health", "threshold", 60, 0, 100);
    r->hysteresis = (int)tp_config_int(cfg, "health", "hysteresis", 10, 0, 100);
    /* 1: no score needs a follow-up; 6: every score does */
    r->follow_up_below = (int)tp_config_int(cfg, "health", "follow_up_below", 4,
                                            1, SCORE_MAX + 1);
}

/* Appends one reason to `why`, comma separated; cuts it short rather than
 * overrun. */
static void note(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(char *why, size_t whylen, const char *fmt, ...) {
    if (!why || !whylen) return;
    size_t used = strlen(why);
    if (used && used + 2 < whylen) {
        memcpy(why + used, ", ", 3);
        used += 2;
    } else if (used) {
        return; /* no room for even the separator */
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + used, whylen - used, fmt, ap);
    va_end(ap);
}

/* The satisfaction penalty: per_score_point x (5 - the average of the
 * newest min(nscores, scores_kept) scores), rounded to nearest (halves up),
 * in integers: per * (5k - sum) / k. Writes the average in tenths. */
static int64_t satisfaction_penalty(const tp_health_rules_t *r,
                                    const tp_health_inputs_t *in,
                                    int64_t *avg_tenths) {
    size_t k = in->nscores;
    if (!in->scores || k == 0 || r->scores_kept < 1) return 0;
    if (k > (size_t)r->scores_kept) k = (size_t)r->scores_kept;
    int64_t sum = 0;
    for (size_t i = 0; i < k; i++) {
        int s = in->scores[i];
        sum += s < 1 ? 1 : s > SCORE_MAX ? SCORE_MAX : s;
    }
    int64_t n = (int64_t)k;
    *avg_tenths = (20 * sum + n) / (2 * n);
    int64_t below = (int64_t)r->per_score_point * (SCORE_MAX * n - sum);
    return (2 * below + n) / (2 * n);
}

int tp_health_score(const tp_health_rules_t *r, const tp_health_inputs_t *in,
                    char *why, size_t whylen) {
    if (why && whylen) why[0] = '\0';
    int64_t health = 100;

    int64_t avg_tenths = 0;
    int64_t penalty = satisfaction_penalty(r, in, &avg_tenths);
    if (penalty > 0) {
        note(why, whylen,
             "satisfaction %" PRId64 ".%" PRId64 "/5 (-%" PRId64 ")",
             avg_tenths / 10, avg_tenths % 10, penalty);
        health -= penalty;
    }

    int complaints = in->open_complaints > 0 ? in->open_complaints : 0;
    penalty = (int64_t)complaints * r->per_complaint;
    if (penalty > 0) {
        note(why, whylen, "%d open complaint%s (-%" PRId64 ")", complaints,
             complaints == 1 ? "" : "s", penalty);
        health -= penalty;
    }

    int overdue = in->overdue_tickets > 0 ? in->overdue_tickets : 0;
    penalty = (int64_t)overdue * r->per_overdue;
    if (penalty > 0) {
        note(why, whylen, "%d overdue ticket%s (-%" PRId64 ")", overdue,
             overdue == 1 ? "" : "s", penalty);
        health -= penalty;
    }

    /* Never contacted: nothing to be silent since (a new lead is not at
     * risk for it). A contact after `now` (an event applied late) is no
     * silence either. Only whole days beyond the grace count. */
    if (in->last_contact_at > 0 && in->now > in->last_contact_at) {
        int64_t silent = in->now - in->last_contact_at;
        if (silent > r->contact_grace_ms) {
            int64_t day = r->day_ms > 0 ? r->day_ms : DAY_MS;
            int64_t days = (silent - r->contact_grace_ms) / day;
            /* past silence_max days the cap is reached (or the rate is
             * 0): bounding the days first keeps the product small */
            if (days > r->silence_max) days = r->silence_max;
            penalty = days * r->per_silent_day;
            if (penalty > r->silence_max) penalty = r->silence_max;
            if (penalty > 0) {
                note(why, whylen,
                     "no contact for %" PRId64 " days (-%" PRId64 ")",
                     silent / (r->day_ms > 0 ? r->day_ms : DAY_MS), penalty);
                health -= penalty;
            }
        }
    }

    return health < 0 ? 0 : health > 100 ? 100 : (int)health;
}

int tp_health_transition(const tp_health_rules_t *r, int at_risk, int health) {
    /* A threshold + hysteresis above 100 could never be reached and the
     * episode would never end: full health always ends it. */
    int recovered = r->threshold + r->hysteresis;
    if (recovered > 100) recovered = 100;
    if (!at_risk && health < r->threshold) return 1;
    if (at_risk && health >= recovered) return -1;
    return 0;
}
