/* test_scoring_deal.c: the deal rules of services/scoring/scoring_deal.h
 * (R-STAGE-1 stages, R-STAGE-2 customer states, R-VALUE-1 expected value,
 * R-CHURN-1 reasons).
 *
 * Rules are loaded with tp_stage_rules_load from a configuration without a
 * file (environment only, every TP_STAGES_* variable cleared first), so the
 * defaults under test are the code's own. The arithmetic behind each
 * expected value is written out next to it.
 *
 * The defaults (scoring_deal.c), stage: probability, duration, state
 *   1 lead screening          10%   21d  target
 *   2 first meeting / needs   20%   14d  target
 *   3 proposal / negotiation  50%   28d  intent
 *   4 contract / kickoff      80%    7d  intent
 *   5 after-sales             100%   0   signed   (0 = ongoing)
 *   6 review                  100% 182d  signed
 * expected value = amount * probability / 100, rounded down; won: the
 * amount; lost: 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scoring_deal.h"
#include "tp/config.h"

#define DAY_MS (86400 * INT64_C(1000))

extern char **environ;

/* Removes every TP_STAGES_* variable so that defaults are the code's. */
static void clear_stages_env(void) {
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "TP_STAGES_", 10) == 0) {
                size_t n = strcspn(*e, "=");
                if (n >= sizeof name) n = sizeof name - 1;
                memcpy(name, *e, n);
                name[n] = '\0';
                break;
            }
        if (!name[0]) return;
        unsetenv(name);
    }
}

typedef struct fixture {
    tp_config_t *cfg;
    tp_stage_rules_t rules;
} fixture_t;

/* Loads the rules from the environment only; fails the test on a config
 * error (tp_config_check or tp_stage_rules_check), which a valid
 * environment must not give. */
static void load_rules(fixture_t *fx) {
    char err[256] = "";
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    if (!fx->cfg) fail_msg("tp_config_new(NULL): %s", err);
    tp_stage_rules_load(&fx->rules, fx->cfg);
    if (tp_config_check(fx->cfg, err, sizeof err) != 0)
        fail_msg("tp_config_check: %s", err);
    if (tp_stage_rules_check(&fx->rules, err, sizeof err) != 0)
        fail_msg("tp_stage_rules_check: %s", err);
}

/* Loads whatever the environment says, without failing on errors. */
static void load_rules_unchecked(fixture_t *fx) {
    char err[256] = "";
    tp_config_destroy(&fx->cfg);
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    assert_non_null(fx->cfg);
    tp_stage_rules_load(&fx->rules, fx->cfg);
}

static int setup(void **state) {
    clear_stages_env();
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    load_rules(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    tp_config_destroy(&fx->cfg);
    free(fx);
    clear_stages_env();
    return 0;
}

/* A deal record as scoring keeps it. */
static tp_deal_t deal(const char *id, int stage, int probability,
                      int64_t amount, const char *status, const char *reason,
                      int64_t closed_at) {
    tp_deal_t d;
    memset(&d, 0, sizeof d);
    snprintf(d.id, sizeof d.id, "%s", id);
    d.stage = stage;
    d.probability = probability;
    d.amount = amount;
    snprintf(d.status, sizeof d.status, "%s", status);
    snprintf(d.reason, sizeof d.reason, "%s", reason ? reason : "");
    d.closed_at = closed_at;
    return d;
}

static tp_deal_t open_deal(const char *id, int stage, int probability,
                           int64_t amount) {
    return deal(id, stage, probability, amount, "open", NULL, 0);
}

/* The customer's state and reason from its deals. */
typedef struct {
    char state[16], reason[16];
} customer_state_t;

static customer_state_t state_of(const tp_stage_rules_t *r,
                                 const tp_deal_t *deals, size_t n,
                                 const char *churned) {
    customer_state_t cs;
    memset(&cs, 'x', sizeof cs); /* stale bytes: the call must write both */
    tp_deal_customer_state(r, deals, n, churned, cs.state, cs.reason);
    return cs;
}

/* ---- R-STAGE-1: six stages and their rules ---- */

/* The defaults documented at the top of this file are what loads. */
static void test_R_STAGE_1_defaults_loaded(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    static const int probability[] = {0, 10, 20, 50, 80, 100, 100};
    static const int64_t days[] = {0, 21, 14, 28, 7, 0, 182};
    static const char *const states[] = {"",       "target", "target", "intent",
                                         "intent", "signed", "signed"};
    for (int s = 1; s <= TP_STAGES; s++) {
        assert_int_equal(r->probability[s], probability[s]);
        assert_int_equal(r->duration_ms[s], days[s] * DAY_MS);
        assert_string_equal(r->state[s], states[s]);
    }
    /* stage 4 (contract and kickoff, "1 week"): 7 * 86,400,000 ms */
    assert_int_equal(r->duration_ms[4], INT64_C(604800000));
    /* stage 5 is ongoing: no reference duration, no dwell alarm */
    assert_int_equal(r->duration_ms[5], 0);
    char err[128] = "";
    assert_int_equal(tp_stage_rules_check(r, err, sizeof err), 0);
}

/* ---- R-VALUE-1: probability and expected value ---- */

/* Each stage's default probability applies to a deal without an override,
 * and the expected value follows from it. */
static void test_R_VALUE_1_stage_default_probabilities(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    static const int probability[] = {0, 10, 20, 50, 80, 100, 100};
    /* 1,000,000 at each stage: 100,000 / 200,000 / 500,000 / 800,000 /
     * 1,000,000 / 1,000,000 */
    static const int64_t ev[] = {0,      100000,  200000, 500000,
                                 800000, 1000000, 1000000};
    for (int s = 1; s <= TP_STAGES; s++) {
        tp_deal_t d = open_deal("d", s, -1, 1000000);
        assert_int_equal(tp_deal_probability(r, &d), probability[s]);
        assert_int_equal(tp_deal_expected_value(r, &d), ev[s]);
    }
}

/* A deal's own probability overrides its stage's, 0 and 100 included. */
static void test_R_VALUE_1_override(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    tp_deal_t d = open_deal("d", 3, 35, 200000); /* stage 3 default: 50 */
    assert_int_equal(tp_deal_probability(r, &d), 35);
    assert_int_equal(tp_deal_expected_value(r, &d), 70000); /* 200,000*35/100 */
    d.probability = 0;
    assert_int_equal(tp_deal_probability(r, &d), 0);
    assert_int_equal(tp_deal_expected_value(r, &d), 0);
    d.probability = 100;
    assert_int_equal(tp_deal_expected_value(r, &d), 200000);
    d.probability = -1; /* back to the stage's */
    assert_int_equal(tp_deal_probability(r, &d), 50);
    assert_int_equal(tp_deal_expected_value(r, &d), 100000);
}

typedef struct {
    const tp_deal_t *deal;
    int64_t ev;
} ranked_t;

/* Highest expected value first (R-VALUE-1: effort goes where value is). */
static int by_expected_value(const void *a, const void *b) {
    const ranked_t *x = a, *y = b;
    return x->ev < y->ev   ? 1
           : x->ev > y->ev ? -1
                           : strcmp(x->deal->id, y->deal->id);
}

static void rank(const tp_stage_rules_t *r, const tp_deal_t *deals, size_t n,
                 ranked_t *out) {
    for (size_t i = 0; i < n; i++)
        out[i] = (ranked_t){&deals[i], tp_deal_expected_value(r, &deals[i])};
    qsort(out, n, sizeof *out, by_expected_value);
}

/* domain.md's worked example: A 1,000,000 at 80% = 800,000 and B 300,000
 * at 80% = 240,000 rank A first; after a bad demo A drops to 20% (200,000)
 * and B rises to 90% (270,000): B now ranks first. */
static void test_R_VALUE_1_worked_example(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    /* both at stage 4, contract and kickoff, whose default is 80% */
    tp_deal_t deals[2] = {open_deal("A", 4, -1, 1000000),
                          open_deal("B", 4, -1, 300000)};
    ranked_t ranked[2];
    assert_int_equal(tp_deal_probability(r, &deals[0]), 80);
    assert_int_equal(tp_deal_probability(r, &deals[1]), 80);
    rank(r, deals, 2, ranked);
    assert_string_equal(ranked[0].deal->id, "A");
    assert_int_equal(ranked[0].ev, 800000); /* 1,000,000 * 80 / 100 */
    assert_string_equal(ranked[1].deal->id, "B");
    assert_int_equal(ranked[1].ev, 240000); /* 300,000 * 80 / 100 */

    /* the bad demo: the owner overrides both deals' probabilities */
    deals[0].probability = 20;
    deals[1].probability = 90;
    rank(r, deals, 2, ranked);
    assert_string_equal(ranked[0].deal->id, "B");
    assert_int_equal(ranked[0].ev, 270000); /* 300,000 * 90 / 100 */
    assert_string_equal(ranked[1].deal->id, "A");
    assert_int_equal(ranked[1].ev, 200000); /* 1,000,000 * 20 / 100 */
}

/* Won deals are worth their amount whatever the probability said; lost
 * deals nothing. */
static void test_R_VALUE_1_won_and_lost(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    tp_deal_t won = deal("w", 4, 30, 500000, "won", NULL, 1000);
    assert_int_equal(tp_deal_expected_value(r, &won), 500000);
    tp_deal_t lost = deal("l", 4, 90, 500000, "lost", "price", 1000);
    assert_int_equal(tp_deal_expected_value(r, &lost), 0);
    tp_deal_t lost_at_review = deal("l6", 6, -1, 500000, "lost", "market", 1);
    assert_int_equal(tp_deal_expected_value(r, &lost_at_review), 0);
}

/* Rounded down, and exact for the schema's largest amount (1e15) and
 * beyond, where amount * probability would not fit in 64 bits. */
static void test_R_VALUE_1_rounding_and_large_amounts(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    tp_deal_t d = open_deal("d", 1, 50, 999);
    assert_int_equal(tp_deal_expected_value(r, &d), 499); /* 499.5 down */
    d = open_deal("d", 1, 33, 100);
    assert_int_equal(tp_deal_expected_value(r, &d), 33);
    d = open_deal("d", 1, 33, 99);
    assert_int_equal(tp_deal_expected_value(r, &d), 32); /* 32.67 down */
    d = open_deal("d", 1, 99, 1);
    assert_int_equal(tp_deal_expected_value(r, &d), 0); /* 0.99 down */

    /* 1e15 at 99%: 990,000,000,000,000 */
    d = open_deal("d", 1, 99, INT64_C(1000000000000000));
    assert_int_equal(tp_deal_expected_value(r, &d), INT64_C(990000000000000));
    /* 1e15 - 1 at 99%: 989,999,999,999,999.01 down */
    d.amount = INT64_C(999999999999999);
    assert_int_equal(tp_deal_expected_value(r, &d), INT64_C(989999999999999));
    /* INT64_MAX = 9,223,372,036,854,775,807: at 100% itself; at 50% half,
     * rounded down; at 99%: INT64_MAX = 92,233,720,368,547,758 * 100 + 7,
     * so 92,233,720,368,547,758 * 99 + 7 * 99 / 100 (= 6) */
    d.amount = INT64_MAX;
    d.probability = 100;
    assert_int_equal(tp_deal_expected_value(r, &d), INT64_MAX);
    d.probability = 50;
    assert_int_equal(tp_deal_expected_value(r, &d), INT64_MAX / 2);
    d.probability = 99;
    assert_int_equal(tp_deal_expected_value(r, &d),
                     INT64_C(92233720368547758) * 99 + 6);
}

/* A stage outside 1..6 (not valid per the schema) is read as the nearest
 * stage, never out of bounds; a probability above 100 as 100. */
static void test_R_VALUE_1_out_of_range_clamped(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    tp_deal_t d = open_deal("d", 0, -1, 1000);
    assert_int_equal(tp_deal_probability(r, &d), 10);
    d.stage = 9;
    assert_int_equal(tp_deal_probability(r, &d), 100);
    d.stage = 3;
    d.probability = 150;
    assert_int_equal(tp_deal_probability(r, &d), 100);
    assert_int_equal(tp_deal_expected_value(r, &d), 1000);
}

/* ---- R-STAGE-2: customer states follow the deals ---- */

/* No deals at all: a potential customer. */
static void test_R_STAGE_2_no_deals_potential(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    customer_state_t cs = state_of(r, NULL, 0, NULL);
    assert_string_equal(cs.state, "potential");
    assert_string_equal(cs.reason, "");
    cs = state_of(r, NULL, 0, "");
    assert_string_equal(cs.state, "potential");
}

/* Open deals: the state of the most advanced open deal's stage. */
static void test_R_STAGE_2_open_deals_follow_stage(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    static const char *const expected[] = {
        "", "target", "target", "intent", "intent", "signed", "signed"};
    for (int s = 1; s <= TP_STAGES; s++) {
        tp_deal_t d = open_deal("d", s, -1, 1000);
        customer_state_t cs = state_of(r, &d, 1, NULL);
        assert_string_equal(cs.state, expected[s]);
        assert_string_equal(cs.reason, "");
    }
    /* stage 1 and stage 3 open, in either order: stage 3's intent */
    tp_deal_t two[2] = {open_deal("a", 3, -1, 10), open_deal("b", 1, -1, 10)};
    assert_string_equal(state_of(r, two, 2, NULL).state, "intent");
    two[0].stage = 1;
    two[1].stage = 3;
    assert_string_equal(state_of(r, two, 2, NULL).state, "intent");
    /* a lost deal, however advanced, does not count while one is open */
    tp_deal_t mixed[2] = {open_deal("a", 2, -1, 10),
                          deal("b", 6, -1, 10, "lost", "price", 5)};
    customer_state_t cs = state_of(r, mixed, 2, NULL);
    assert_string_equal(cs.state, "target");
    assert_string_equal(cs.reason, "");
}

/* A won deal: signed, and long_term once a won deal is at stage 5 or
 * beyond (delivered), whatever else is open or lost. */
static void test_R_STAGE_2_won_signed_then_long_term(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    tp_deal_t deals[3] = {deal("w", 4, -1, 1000, "won", NULL, 10),
                          open_deal("o", 3, -1, 1000),
                          deal("l", 2, -1, 1000, "lost", "price", 20)};
    customer_state_t cs = state_of(r, deals, 3, NULL);
    assert_string_equal(cs.state, "signed");
    assert_string_equal(cs.reason, "");
    /* the won deal moves on to after-sales (stage 5) */
    deals[0].stage = 5;
    assert_string_equal(state_of(r, deals, 3, NULL).state, "long_term");
    deals[0].stage = 6;
    assert_string_equal(state_of(r, deals, 3, NULL).state, "long_term");
    /* an open deal at stage 5 is not delivered: won at 4 stays signed */
    tp_deal_t upsell[2] = {deal("w", 4, -1, 1000, "won", NULL, 10),
                           open_deal("o", 5, -1, 1000)};
    assert_string_equal(state_of(r, upsell, 2, NULL).state, "signed");
    /* one delivered won deal among several is enough */
    tp_deal_t both[2] = {deal("w1", 4, -1, 1000, "won", NULL, 10),
                         deal("w2", 5, -1, 1000, "won", NULL, 20)};
    assert_string_equal(state_of(r, both, 2, NULL).state, "long_term");
}

/* R-CHURN-1: every deal lost: lost, with the reason of the last deal
 * closed (by closed_at, not by position in the list). */
static void test_R_STAGE_2_all_lost_last_reason(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    tp_deal_t deals[3] = {deal("a", 3, -1, 1000, "lost", "price", 3000),
                          deal("b", 2, -1, 1000, "lost", "competitor", 9000),
                          deal("c", 4, -1, 1000, "lost", "product", 5000)};
    customer_state_t cs = state_of(r, deals, 3, NULL);
    assert_string_equal(cs.state, "lost");
    assert_string_equal(cs.reason, "competitor"); /* closed at 9000 */
    deals[2].closed_at = 12000;
    cs = state_of(r, deals, 3, NULL);
    assert_string_equal(cs.reason, "product");
    /* one lost deal */
    cs = state_of(r, &deals[0], 1, NULL);
    assert_string_equal(cs.state, "lost");
    assert_string_equal(cs.reason, "price");
    /* a new open deal takes the customer back to the stage's state */
    tp_deal_t again[2] = {deals[0], open_deal("d", 1, -1, 10)};
    cs = state_of(r, again, 2, NULL);
    assert_string_equal(cs.state, "target");
    assert_string_equal(cs.reason, "");
}

/* R-CHURN-1: a churned customer is churned whatever its deals say, with
 * the churn reason. */
static void test_R_STAGE_2_churned_overrides(void **state) {
    const tp_stage_rules_t *r = &((fixture_t *)*state)->rules;
    tp_deal_t deals[2] = {deal("w", 6, -1, 1000, "won", NULL, 10),
                          open_deal("o", 3, -1, 1000)};
    customer_state_t cs = state_of(r, deals, 2, "service");
    assert_string_equal(cs.state, "churned");
    assert_string_equal(cs.reason, "service");
    cs = state_of(r, NULL, 0, "competitor");
    assert_string_equal(cs.state, "churned");
    assert_string_equal(cs.reason, "competitor");
    /* "" and NULL are no churn */
    assert_string_equal(state_of(r, deals, 2, "").state, "long_term");
    assert_string_equal(state_of(r, deals, 2, NULL).state, "long_term");
}

/* ---- configuration, not rebuilding (domain.md: every number a default) ----
 */

/* TP_STAGES_PROBABILITY_3=60 changes stage 3's default, and only it. */
static void test_R_VALUE_1_env_override(void **state) {
    fixture_t *fx = *state;
    tp_config_destroy(&fx->cfg);
    setenv("TP_STAGES_PROBABILITY_3", "60", 1);
    load_rules(fx);
    const tp_stage_rules_t *r = &fx->rules;
    assert_int_equal(r->probability[3], 60);
    assert_int_equal(r->probability[2], 20); /* untouched keys keep defaults */
    assert_int_equal(r->probability[4], 80);
    tp_deal_t d = open_deal("d", 3, -1, 1000000);
    assert_int_equal(tp_deal_probability(r, &d), 60);
    assert_int_equal(tp_deal_expected_value(r, &d), 600000); /* was 500,000 */
    d.probability = 45; /* a deal's own still wins */
    assert_int_equal(tp_deal_expected_value(r, &d), 450000);
}

/* Durations and states are configuration too. */
static void test_R_STAGE_1_duration_and_state_override(void **state) {
    fixture_t *fx = *state;
    tp_config_destroy(&fx->cfg);
    setenv("TP_STAGES_DURATION_4", "10d", 1);
    setenv("TP_STAGES_DURATION_5", "90d", 1);
    setenv("TP_STAGES_STATE_2", "Intent", 1); /* any case, stored lower */
    load_rules(fx);
    const tp_stage_rules_t *r = &fx->rules;
    assert_int_equal(r->duration_ms[4], 10 * DAY_MS);
    assert_int_equal(r->duration_ms[5], 90 * DAY_MS);
    assert_int_equal(r->duration_ms[3], 28 * DAY_MS);
    assert_string_equal(r->state[2], "intent");
    tp_deal_t d = open_deal("d", 2, -1, 10);
    assert_string_equal(state_of(r, &d, 1, NULL).state, "intent");
}

/* R-STAGE-2: a state_N that is no customer state fails
 * tp_stage_rules_check naming the key (never quoting the value); the
 * default stays in force meanwhile. */
static void test_R_STAGE_2_bad_state_fails_check(void **state) {
    fixture_t *fx = *state;
    setenv("TP_STAGES_STATE_3", "hot", 1);
    load_rules_unchecked(fx);
    const tp_stage_rules_t *r = &fx->rules;
    char err[256] = "";
    assert_int_equal(tp_config_check(fx->cfg, err, sizeof err), 0);
    assert_string_equal(r->state[3], "intent"); /* the default kept */
    assert_int_equal(tp_stage_rules_check(r, err, sizeof err), -1);
    assert_string_equal(err, "stages.state_3: must be one of "
                             "potential|target|intent|signed|long_term");
    assert_null(strstr(err, "hot"));
    assert_int_equal(tp_stage_rules_check(r, NULL, 0), -1);
    tp_deal_t d = open_deal("d", 3, -1, 10);
    assert_string_equal(state_of(r, &d, 1, NULL).state, "intent");

    /* lost and churned come from closed deals, never from a stage; the
     * first bad key is named */
    setenv("TP_STAGES_STATE_3", "intent", 1);
    setenv("TP_STAGES_STATE_5", "lost", 1);
    setenv("TP_STAGES_STATE_6", "churned", 1);
    load_rules_unchecked(fx);
    assert_int_equal(tp_stage_rules_check(r, err, sizeof err), -1);
    assert_non_null(strstr(err, "stages.state_5:"));
    assert_string_equal(r->state[5], "signed");
    assert_string_equal(r->state[6], "signed");

    /* empty is no state either */
    clear_stages_env();
    setenv("TP_STAGES_STATE_1", "", 1);
    load_rules_unchecked(fx);
    assert_int_equal(tp_stage_rules_check(r, err, sizeof err), -1);
    assert_non_null(strstr(err, "stages.state_1:"));
}

/* Numbers that do not parse are tp_config_check's to report, naming the
 * key; the default stays. "1w" is no duration (config.h has no weeks). */
static void test_R_STAGE_1_bad_numbers_reported(void **state) {
    fixture_t *fx = *state;
    char err[256] = "";
    setenv("TP_STAGES_PROBABILITY_3", "101", 1);
    load_rules_unchecked(fx);
    assert_int_equal(fx->rules.probability[3], 50);
    assert_int_equal(tp_config_check(fx->cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "stages.probability_3"));

    clear_stages_env();
    setenv("TP_STAGES_DURATION_4", "1w", 1);
    load_rules_unchecked(fx);
    assert_int_equal(fx->rules.duration_ms[4], 7 * DAY_MS);
    assert_int_equal(tp_config_check(fx->cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "stages.duration_4"));
}

/* Rules built by hand are checked too: states in canonical spelling,
 * probabilities 0..100. */
static void test_R_STAGE_2_check_hand_built_rules(void **state) {
    tp_stage_rules_t r = ((fixture_t *)*state)->rules;
    char err[256] = "";
    assert_int_equal(tp_stage_rules_check(&r, err, sizeof err), 0);
    snprintf(r.state[2], sizeof r.state[2], "Target");
    assert_int_equal(tp_stage_rules_check(&r, err, sizeof err), -1);
    assert_non_null(strstr(err, "stages.state_2:"));
    snprintf(r.state[2], sizeof r.state[2], "target");
    memset(r.state[4], 'x', sizeof r.state[4]); /* not even terminated */
    assert_int_equal(tp_stage_rules_check(&r, err, sizeof err), -1);
    assert_non_null(strstr(err, "stages.state_4:"));
    snprintf(r.state[4], sizeof r.state[4], "intent");
    r.probability[6] = 101;
    assert_int_equal(tp_stage_rules_check(&r, err, sizeof err), -1);
    assert_string_equal(
        err, "stages.probability_6: must be an integer from 0 to 100");
    r.probability[6] = -1;
    assert_int_equal(tp_stage_rules_check(&r, err, sizeof err), -1);
    r.probability[6] = 100;
    assert_int_equal(tp_stage_rules_check(&r, err, sizeof err), 0);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_R_STAGE_1_defaults_loaded),
        T(test_R_VALUE_1_stage_default_probabilities),
        T(test_R_VALUE_1_override),
        T(test_R_VALUE_1_worked_example),
        T(test_R_VALUE_1_won_and_lost),
        T(test_R_VALUE_1_rounding_and_large_amounts),
        T(test_R_VALUE_1_out_of_range_clamped),
        T(test_R_STAGE_2_no_deals_potential),
        T(test_R_STAGE_2_open_deals_follow_stage),
        T(test_R_STAGE_2_won_signed_then_long_term),
        T(test_R_STAGE_2_all_lost_last_reason),
        T(test_R_STAGE_2_churned_overrides),
        T(test_R_VALUE_1_env_override),
        T(test_R_STAGE_1_duration_and_state_override),
        T(test_R_STAGE_2_bad_state_fails_check),
        T(test_R_STAGE_1_bad_numbers_reported),
        T(test_R_STAGE_2_check_hand_built_rules),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
