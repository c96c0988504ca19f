/* scoring_deal.c: stage rules, deal probability and expected value, and the
 * customer's state from its deals (R-STAGE-1, R-STAGE-2, R-VALUE-1,
 * R-CHURN-1).
 *
 * Owns nothing beyond the rule values it copies out of the configuration.
 * Pure arithmetic over deal records handed in: never does I/O, never keeps
 * a pointer to a deal. Deal fields come from events, so out-of-range values
 * are clamped here, never asserted. */
#include "scoring_deal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The states an open deal's stage may give (R-STAGE-2); "lost" and
 * "churned" come from closed deals and the customer, never from a stage. */
static const char *const stage_states[] = {"potential", "target", "intent",
                                           "signed", "long_term"};
#define STAGE_STATES "potential|target|intent|signed|long_term"

static const struct {
    int probability;
    const char *duration; /* R-STAGE-1: 1-3 weeks, 1-2, 2-4, 1, ongoing,
                             half-yearly review */
    const char *state;
} stage_defaults[TP_STAGES + 1] = {
    {0, "0", ""}, /* no stage 0 */
    {10, "21d", "target"}, {20, "14d", "target"}, {50, "28d", "intent"},
    {80, "7d", "intent"},  {100, "0", "signed"},  {100, "182d", "signed"},
};

/* The canonical spelling of a stage state, or NULL when it is not one. */
static const char *stage_state_of(const char *text) {
    for (size_t i = 0; i < sizeof stage_states / sizeof *stage_states; i++)
        if (strcasecmp(text, stage_states[i]) == 0) return stage_states[i];
    return NULL;
}

void tp_stage_rules_load(tp_stage_rules_t *r, tp_config_t *cfg) {
    memset(r, 0, sizeof *r);
    for (int s = 1; s <= TP_STAGES; s++) {
        char key[32];
        snprintf(key, sizeof key, "probability_%d", s);
        r->probability[s] = (int)tp_config_int(
            cfg, "stages", key, stage_defaults[s].probability, 0, 100);
        snprintf(key, sizeof key, "duration_%d", s);
        r->duration_ms[s] =
            tp_config_ms(cfg, "stages", key, stage_defaults[s].duration);
        snprintf(key, sizeof key, "state_%d", s);
        const char *text = tp_config_str(cfg, "stages", key, NULL);
        const char *state = text ? stage_state_of(text) : NULL;
        if (text && !state && !r->state_rejected)
            r->state_rejected = s; /* config.h has no enum getter */
        snprintf(r->state[s], sizeof r->state[s], "%s",
                 state ? state : stage_defaults[s].state);
    }
}

int tp_stage_rules_check(const tp_stage_rules_t *r, char *err, size_t errlen) {
    int bad_state = 0, bad_probability = 0;
    if (r->state_rejected >= 1 && r->state_rejected <= TP_STAGES)
        bad_state = r->state_rejected;
    for (int s = 1; s <= TP_STAGES && !bad_state && !bad_probability; s++) {
        char state[sizeof r->state[s]];
        memcpy(state, r->state[s], sizeof state);
        state[sizeof state - 1] = '\0';
        const char *canonical = stage_state_of(state);
        if (!canonical || strcmp(state, canonical) != 0) /* as load stores */
            bad_state = s;
        else if (r->probability[s] < 0 || r->probability[s] > 100)
            bad_probability = s;
    }
    if (bad_state) {
        if (err && errlen)
            snprintf(err, errlen, "stages.state_%d: must be one of %s",
                     bad_state, STAGE_STATES);
        return -1;
    }
    if (bad_probability) {
        if (err && errlen)
            snprintf(err, errlen,
                     "stages.probability_%d: must be an integer from 0 to 100",
                     bad_probability);
        return -1;
    }
    return 0;
}

/* The stage as an index into the rules: the schema says 1..6, anything
 * else is clamped rather than read out of bounds. */
static int stage_index(int stage) {
    return stage < 1 ? 1 : stage > TP_STAGES ? TP_STAGES : stage;
}

int tp_deal_probability(const tp_stage_rules_t *r, const tp_deal_t *deal) {
    if (deal->probability < 0) return r->probability[stage_index(deal->stage)];
    return deal->probability > 100 ? 100 : deal->probability;
}

int64_t tp_deal_expected_value(const tp_stage_rules_t *r,
                               const tp_deal_t *deal) {
    if (strcmp(deal->status, "lost") == 0) return 0;
    if (strcmp(deal->status, "won") == 0) return deal->amount;
    int64_t p = tp_deal_probability(r, deal);
    /* amount * p could overflow for amounts above INT64_MAX / 100; split the
     * amount at 100 instead: (100q + m) * p / 100 = q * p + m * p / 100,
     * exactly amount * p / 100 rounded down for amount >= 0 (the schema's
     * 0..1e15), and no term exceeds the amount. */
    return deal->amount / 100 * p + deal->amount % 100 * p / 100;
}

void tp_deal_customer_state(const tp_stage_rules_t *r, const tp_deal_t *deals,
                            size_t n, const char *churned, char *state,
                            char *reason) {
    enum { LEN = 16 }; /* both buffers, per the header */
    reason[0] = '\0';
    if (churned && churned[0]) {
        snprintf(state, LEN, "churned");
        snprintf(reason, LEN, "%s", churned);
        return;
    }
    int won = 0, delivered = 0, open_stage = 0;
    const tp_deal_t *last_lost = NULL;
    for (size_t i = 0; i < n; i++) {
        const tp_deal_t *d = &deals[i];
        if (strcmp(d->status, "won") == 0) {
            won = 1;
            if (d->stage >= 5) delivered = 1; /* after-sales: delivered */
        } else if (strcmp(d->status, "open") == 0) {
            if (stage_index(d->stage) > open_stage)
                open_stage = stage_index(d->stage);
        } else if (strcmp(d->status, "lost") == 0) {
            /* the later of equal closing times: the later in the list */
            if (!last_lost || d->closed_at >= last_lost->closed_at)
                last_lost = d;
        }
        /* any other status is no deal of this customer's, as if absent */
    }
    if (delivered)
        snprintf(state, LEN, "long_term");
    else if (won)
        snprintf(state, LEN, "signed");
    else if (open_stage)
        snprintf(state, LEN, "%.*s", (int)sizeof r->state[0] - 1,
                 r->state[open_stage]);
    else if (last_lost) {
        snprintf(state, LEN, "lost");
        snprintf(reason, LEN, "%.*s", (int)sizeof last_lost->reason - 1,
                 last_lost->reason);
    } else
        snprintf(state, LEN, "potential");
}
