/* scoring_deal.h: deals, stages, expected value and the customer's state
 * (R-STAGE-1, R-STAGE-2, R-VALUE-1, R-CHURN-1). Pure: owns the stage rules
 * read from the rules file and arithmetic over deal records; no I/O. */
#ifndef SCORING_DEAL_H
#define SCORING_DEAL_H

#include <stddef.h>
#include <stdint.h>

#include "tp/config.h"
#include "tp/proto.h"

#define TP_STAGES 6

typedef struct tp_stage_rules {
    int probability[TP_STAGES + 1];   /* [1..6] default probability, percent */
    int64_t duration_ms[TP_STAGES + 1]; /* [1..6] reference duration (dwell) */
    char state[TP_STAGES + 1][16];    /* [1..6] customer state an open deal in
                                         that stage gives, e.g. "target" */
    int state_rejected;               /* first stage whose state_N in the
                                         file was not a state, 0 if none */
} tp_stage_rules_t;

/* Reads [stages] from the rules config: probability_1..6 (10, 20, 50, 80,
 * 100, 100), duration_1..6 (21d, 14d, 28d, 7d, 0 = ongoing, 182d), state_1..6
 * (target, target, intent, intent, signed, signed). Bad values are left to
 * tp_config_check. */
void tp_stage_rules_load(tp_stage_rules_t *rules, tp_config_t *cfg);

/* The check tp_config_check cannot make: state_N must be one of potential,
 * target, intent, signed, long_term (any case; stored in lower case).
 * tp_stage_rules_load keeps the default for a state_N that is not, and notes
 * N in state_rejected so that the error is reported here.
 * Also checks each state[1..6] and probability[1..6] (0..100), for rules
 * built by hand. Returns 0, or -1 and the first problem in `err` (may be
 * NULL), e.g. "stages.state_3: must be one of
 * potential|target|intent|signed|long_term"; never quotes the value. Call it
 * next to tp_config_check, once the rules are loaded. */
int tp_stage_rules_check(const tp_stage_rules_t *rules, char *err,
                         size_t errlen);

typedef struct tp_deal {
    char id[65];
    int stage;               /* 1..6 */
    int probability;         /* percent override, -1 for the stage default */
    int64_t amount;          /* whole currency units */
    char status[8];          /* "open", "won" or "lost" */
    char reason[16];         /* R-CHURN-1, for lost */
    int64_t closed_at;       /* ms, 0 while open */
} tp_deal_t;

/* The probability that applies to `deal`: its override, else the stage's. */
int tp_deal_probability(const tp_stage_rules_t *rules, const tp_deal_t *deal);
/* amount x probability / 100, rounded down (R-VALUE-1); 0 for lost deals,
 * the amount for won ones. */
int64_t tp_deal_expected_value(const tp_stage_rules_t *rules,
                               const tp_deal_t *deal);

/* The customer's state from its deals (R-STAGE-2), written into `state`
 * (16 bytes) with the reason, if any, into `reason` (16 bytes):
 * - no deals: "potential";
 * - a won deal: "signed", or "long_term" once a won deal is at stage 5 or
 *   beyond (delivered);
 * - else an open deal: the state of the most advanced open deal's stage;
 * - else every deal lost: "lost", with the reason of the last one closed.
 * `churned` (a reason, or NULL/"") overrides everything: "churned". */
void tp_deal_customer_state(const tp_stage_rules_t *rules,
                            const tp_deal_t *deals, size_t n,
                            const char *churned, char *state, char *reason);

#endif
