/* test_scoring_health.c: the health rules of services/scoring/scoring_health.h
 * (R-HEALTH-1 health and at-risk episodes, R-SAT-1 follow-up below a score).
 *
 * Rules are loaded with tp_health_rules_load from a configuration without a
 * file (environment only, every TP_HEALTH_* variable cleared first), so the
 * defaults under test are the code's own. The arithmetic behind each
 * expected value is written out next to it.
 *
 * The defaults (scoring_health.h):
 *   scores_kept 5, per_score_point 10, per_complaint 15, per_overdue 10,
 *   contact_grace 30d, per_silent_day 1, silence_max 30,
 *   threshold 60, hysteresis 10, follow_up_below 4
 * health = 100
 *        - round(10 * (5 - average of the newest min(n, 5) scores))
 *        - 15 * open complaints - 10 * overdue tickets
 *        - min(30, 1 * whole days since the last contact beyond 30 days)
 * clamped to 0..100. At risk below 60; recovered at 60 + 10 = 70.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scoring_health.h"
#include "tp/config.h"

#define DAY_MS (86400 * INT64_C(1000))
#define NOW (INT64_C(1700000000000)) /* 2023-11-14T22:13:20Z */

extern char **environ;

/* Removes every TP_HEALTH_* variable so that defaults are the code's. */
static void clear_health_env(void) {
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "TP_HEALTH_", 10) == 0) {
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
    tp_health_rules_t rules;
} fixture_t;

/* Loads the rules from the environment only; fails the test on a config
 * error (tp_config_check), which a valid environment must not give. */
static void load_rules(fixture_t *fx) {
    char err[256] = "";
    tp_config_destroy(&fx->cfg);
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    if (!fx->cfg) fail_msg("tp_config_new(NULL): %s", err);
    tp_health_rules_load(&fx->rules, fx->cfg);
    if (tp_config_check(fx->cfg, err, sizeof err) != 0)
        fail_msg("tp_config_check: %s", err);
}

static int setup(void **state) {
    clear_health_env();
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
    clear_health_env();
    return 0;
}

/* Inputs with nothing wrong: no scores, nothing open, just contacted. */
static tp_health_inputs_t healthy(void) {
    return (tp_health_inputs_t){NULL, 0, 0, 0, NOW, NOW};
}

/* The health of `in`, with `why` checked against `expected_why`. */
static int health_of(const tp_health_rules_t *r, const tp_health_inputs_t *in,
                     const char *expected_why) {
    char why[256];
    memset(why, 'x', sizeof why); /* stale bytes: the call must write it */
    why[sizeof why - 1] = '\0';
    int health = tp_health_score(r, in, why, sizeof why);
    assert_string_equal(why, expected_why);
    assert_int_equal(tp_health_score(r, in, NULL, 0),
                     health); /* why optional */
    return health;
}

/* The defaults documented at the top of this file are what loads. */
static void test_defaults_loaded(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    assert_int_equal(r->scores_kept, 5);
    assert_int_equal(r->per_score_point, 10);
    assert_int_equal(r->per_complaint, 15);
    assert_int_equal(r->per_overdue, 10);
    assert_int_equal(r->contact_grace_ms, 30 * DAY_MS);
    assert_int_equal(r->per_silent_day, 1);
    assert_int_equal(r->silence_max, 30);
    assert_int_equal(r->threshold, 60);
    assert_int_equal(r->hysteresis, 10);
    assert_int_equal(r->follow_up_below, 4);
}

/* ---- R-HEALTH-1: health, penalty by penalty ---- */

/* Nothing wrong: 100 and nothing to say. */
static void test_R_HEALTH_1_nothing_wrong(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    tp_health_inputs_t in = healthy();
    assert_int_equal(health_of(r, &in, ""), 100);
    /* perfect scores: average 5.0, no penalty, not named */
    int fives[] = {5, 5, 5};
    in.scores = fives;
    in.nscores = 3;
    assert_int_equal(health_of(r, &in, ""), 100);
    /* never contacted (a new lead): no silence, however late */
    in = healthy();
    in.last_contact_at = 0;
    in.now = NOW + 1000 * DAY_MS;
    assert_int_equal(health_of(r, &in, ""), 100);
    /* a contact after `now` (an event applied late): no silence */
    in = healthy();
    in.last_contact_at = NOW + DAY_MS;
    assert_int_equal(health_of(r, &in, ""), 100);
}

/* Satisfaction alone: 10 x (5 - average of the newest 5), rounded to
 * nearest. */
static void test_R_HEALTH_1_satisfaction_alone(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    tp_health_inputs_t in = healthy();

    int one_two[] = {2}; /* 10 * (5 - 2.0) = 30 */
    in.scores = one_two;
    in.nscores = 1;
    assert_int_equal(health_of(r, &in, "satisfaction 2.0/5 (-30)"), 70);

    int thirds[] = {4, 4, 3}; /* avg 11/3 = 3.67; 10 * 1.33 = 13.3 -> 13 */
    in.scores = thirds;
    in.nscores = 3;
    assert_int_equal(health_of(r, &in, "satisfaction 3.7/5 (-13)"), 87);

    int up[] = {4, 4, 5}; /* avg 13/3 = 4.33; 10 * 0.67 = 6.7 -> 7 */
    in.scores = up;
    assert_int_equal(health_of(r, &in, "satisfaction 4.3/5 (-7)"), 93);

    int half[] = {4, 5}; /* avg 4.5; 10 * 0.5 = 5 exactly */
    in.scores = half;
    in.nscores = 2;
    assert_int_equal(health_of(r, &in, "satisfaction 4.5/5 (-5)"), 95);

    /* only the newest 5 count: {1,5,5,5,5} avg 4.2 -> 8; the old 1s not */
    int many[] = {1, 5, 5, 5, 5, 1, 1, 1};
    in.scores = many;
    in.nscores = 8;
    assert_int_equal(health_of(r, &in, "satisfaction 4.2/5 (-8)"), 92);
    int old_bad[] = {5, 5, 5, 5, 5, 1, 1}; /* newest five all 5: nothing */
    in.scores = old_bad;
    in.nscores = 7;
    assert_int_equal(health_of(r, &in, ""), 100);

    /* scores given but nscores 0, or nscores but NULL: no scores */
    in.scores = one_two;
    in.nscores = 0;
    assert_int_equal(health_of(r, &in, ""), 100);
    in.scores = NULL;
    in.nscores = 3;
    assert_int_equal(health_of(r, &in, ""), 100);
}

/* Halves round up, with a rate that makes one: 15 x (5 - 3.5) = 22.5. */
static void test_R_HEALTH_1_satisfaction_rounds_half_up(void **state) {
    fixture_t *fx = *state;
    setenv("TP_HEALTH_PER_SCORE_POINT", "15", 1);
    load_rules(fx);
    tp_health_inputs_t in = healthy();
    int scores[] = {3, 4};
    in.scores = scores;
    in.nscores = 2;
    assert_int_equal(health_of(&fx->rules, &in, "satisfaction 3.5/5 (-23)"),
                     77);
}

/* Open complaints alone: 15 each. */
static void test_R_HEALTH_1_complaints_alone(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    tp_health_inputs_t in = healthy();
    in.open_complaints = 1; /* 100 - 15 */
    assert_int_equal(health_of(r, &in, "1 open complaint (-15)"), 85);
    in.open_complaints = 2; /* 100 - 30 */
    assert_int_equal(health_of(r, &in, "2 open complaints (-30)"), 70);
    in.open_complaints = -1; /* not a count: none */
    assert_int_equal(health_of(r, &in, ""), 100);
}

/* Overdue tickets alone: 10 each. */
static void test_R_HEALTH_1_overdue_alone(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    tp_health_inputs_t in = healthy();
    in.overdue_tickets = 1; /* 100 - 10 */
    assert_int_equal(health_of(r, &in, "1 overdue ticket (-10)"), 90);
    in.overdue_tickets = 3; /* 100 - 30 */
    assert_int_equal(health_of(r, &in, "3 overdue tickets (-30)"), 70);
}

/* Silence alone: 1 per whole day beyond 30 days since the last contact. */
static void test_R_HEALTH_1_silence_alone(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    tp_health_inputs_t in = healthy();
    in.last_contact_at = NOW - 45 * DAY_MS; /* 45 - 30 = 15 days: -15 */
    assert_int_equal(health_of(r, &in, "no contact for 45 days (-15)"), 85);
    /* 45 days and 23 hours: still 15 whole days beyond */
    in.last_contact_at = NOW - 46 * DAY_MS + 1;
    assert_int_equal(health_of(r, &in, "no contact for 45 days (-15)"), 85);
}

/* The grace is exclusive: exactly 30 days is no silence; 30 days and a
 * millisecond is none either (no whole day beyond); 31 days is one day. */
static void test_R_HEALTH_1_grace_boundary(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    tp_health_inputs_t in = healthy();
    in.last_contact_at = NOW - 30 * DAY_MS;
    assert_int_equal(health_of(r, &in, ""), 100);
    in.last_contact_at = NOW - 30 * DAY_MS - 1;
    assert_int_equal(health_of(r, &in, ""), 100);
    in.last_contact_at = NOW - 31 * DAY_MS + 1; /* a day less 1 ms beyond */
    assert_int_equal(health_of(r, &in, ""), 100);
    in.last_contact_at = NOW - 31 * DAY_MS; /* grace + 1 day: one day */
    assert_int_equal(health_of(r, &in, "no contact for 31 days (-1)"), 99);
    in.last_contact_at = NOW - 32 * DAY_MS; /* two days */
    assert_int_equal(health_of(r, &in, "no contact for 32 days (-2)"), 98);
}

/* The silence penalty stops at silence_max (30). */
static void test_R_HEALTH_1_silence_cap(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    tp_health_inputs_t in = healthy();
    in.last_contact_at = NOW - 59 * DAY_MS; /* 29 days beyond: -29 */
    assert_int_equal(health_of(r, &in, "no contact for 59 days (-29)"), 71);
    in.last_contact_at = NOW - 60 * DAY_MS; /* 30 days beyond: -30 */
    assert_int_equal(health_of(r, &in, "no contact for 60 days (-30)"), 70);
    in.last_contact_at = NOW - 61 * DAY_MS; /* 31 beyond, capped at 30 */
    assert_int_equal(health_of(r, &in, "no contact for 61 days (-30)"), 70);
    in.last_contact_at = 1; /* the epoch: ~19,676 days, capped at 30 */
    assert_int_equal(tp_health_score(r, &in, NULL, 0), 70);
}

/* A rate of 0 per day is no silence penalty at all, however long. */
static void test_R_HEALTH_1_silence_rate_zero(void **state) {
    fixture_t *fx = *state;
    setenv("TP_HEALTH_PER_SILENT_DAY", "0", 1);
    load_rules(fx);
    tp_health_inputs_t in = healthy();
    in.last_contact_at = NOW - 400 * DAY_MS;
    assert_int_equal(health_of(&fx->rules, &in, ""), 100);
}

/* Every penalty together, listed in order. */
static void test_R_HEALTH_1_combined(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    int scores[] = {2};
    tp_health_inputs_t in = {scores, 1, 1, 1, NOW - 40 * DAY_MS, NOW};
    /* 100 - 30 (satisfaction 2.0) - 15 (1 complaint) - 10 (1 overdue)
     *     - 10 (40 - 30 days) = 35 */
    assert_int_equal(health_of(r, &in,
                               "satisfaction 2.0/5 (-30), 1 open complaint "
                               "(-15), 1 overdue ticket (-10), no contact for "
                               "40 days (-10)"),
                     35);
    /* without the complaint: 35 + 15 = 50 */
    in.open_complaints = 0;
    assert_int_equal(health_of(r, &in,
                               "satisfaction 2.0/5 (-30), 1 overdue ticket "
                               "(-10), no contact for 40 days (-10)"),
                     50);
}

/* Health never goes below 0. */
static void test_R_HEALTH_1_clamp_at_zero(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    int scores[] = {1};
    tp_health_inputs_t in = {scores, 1, 3, 2, NOW - 100 * DAY_MS, NOW};
    /* 100 - 40 (satisfaction 1.0) - 45 (3 complaints) - 20 (2 overdue)
     *     - 30 (70 days beyond, capped) = -35 -> 0 */
    assert_int_equal(health_of(r, &in,
                               "satisfaction 1.0/5 (-40), 3 open complaints "
                               "(-45), 2 overdue tickets (-20), no contact "
                               "for 100 days (-30)"),
                     0);
    in.open_complaints = 1000000; /* no overflow, still 0 */
    assert_int_equal(tp_health_score(r, &in, NULL, 0), 0);
}

/* A short `why` is cut, never overrun. */
static void test_R_HEALTH_1_why_truncated_safely(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    int scores[] = {2};
    tp_health_inputs_t in = {scores, 1, 1, 1, NOW - 40 * DAY_MS, NOW};
    char buf[32];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(tp_health_score(r, &in, buf, 16), 35);
    assert_int_equal(strlen(buf), 15);
    assert_memory_equal(buf, "satisfaction 2.", 16);
    assert_int_equal(buf[16], 'x');
    memset(buf, 'x', sizeof buf);
    assert_int_equal(tp_health_score(r, &in, buf, 1), 35);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[1], 'x');
}

/* ---- R-HEALTH-1: at-risk episodes ---- */

/* The transition table at its edges: start below 60; end at 70. */
static void test_R_HEALTH_1_transition_edges(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    /* not at risk */
    assert_int_equal(tp_health_transition(r, 0, 100), 0);
    assert_int_equal(tp_health_transition(r, 0, 60), 0); /* at threshold */
    assert_int_equal(tp_health_transition(r, 0, 59), 1); /* below: start */
    assert_int_equal(tp_health_transition(r, 0, 0), 1);
    /* at risk */
    assert_int_equal(tp_health_transition(r, 1, 0), 0); /* still low */
    assert_int_equal(tp_health_transition(r, 1, 59), 0);
    assert_int_equal(tp_health_transition(r, 1, 60), 0);  /* not recovered */
    assert_int_equal(tp_health_transition(r, 1, 69), 0);  /* 60 + 10 - 1 */
    assert_int_equal(tp_health_transition(r, 1, 70), -1); /* 60 + 10 */
    assert_int_equal(tp_health_transition(r, 1, 100), -1);
}

/* Applies each health in turn as scoring would: emits customer.at_risk on
 * 1, clears the flag on -1. Returns how many were emitted; `starts` and
 * `ends` get the steps where they happened. */
static int run_episodes(const tp_health_rules_t *r, const int *health, size_t n,
                        int *starts, int *ends) {
    int at_risk = 0, emitted = 0, ended = 0;
    for (size_t i = 0; i < n; i++) {
        int t = tp_health_transition(r, at_risk, health[i]);
        if (t == 1) {
            assert_false(at_risk); /* never a second start in one episode */
            at_risk = 1;
            starts[emitted++] = (int)i;
        } else if (t == -1) {
            assert_true(at_risk);
            at_risk = 0;
            ends[ended++] = (int)i;
        }
    }
    return emitted;
}

/* A sequence of healths: at_risk is emitted exactly once per episode. */
static void test_R_HEALTH_1_episode_sequence(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    static const int health[] = {
        80, 65, 60, /* 0-2: not below 60 */
        59,         /* 3: below: episode 1 starts */
        50, 45, 58, /* 4-6: still low: nothing more */
        62, 69,     /* 7-8: above 60 but below 70: not over */
        70,         /* 9: 60 + 10: episode 1 ends */
        68, 61, 60, /* 10-12: not at risk and not below 60: nothing */
        40,         /* 13: episode 2 starts */
        35, 69,     /* 14-15 */
        95,         /* 16: episode 2 ends */
    };
    int starts[8], ends[8];
    memset(ends, -1, sizeof ends);
    int emitted =
        run_episodes(r, health, sizeof health / sizeof *health, starts, ends);
    assert_int_equal(emitted, 2);
    assert_int_equal(starts[0], 3);
    assert_int_equal(ends[0], 9);
    assert_int_equal(starts[1], 13);
    assert_int_equal(ends[1], 16);
}

/* The same, driven by the inputs scoring keeps: complaints open and close,
 * a contact ends a silence. */
static void test_R_HEALTH_1_episode_from_inputs(void **state) {
    const tp_health_rules_t *r = &((fixture_t *)*state)->rules;
    static const struct {
        int complaints, overdue;
        int silent_days; /* beyond the grace */
        int health;      /* 100 - 15c - 10o - days */
        int transition;
    } steps[] = {
        {0, 0, 0, 100, 0}, {2, 0, 0, 70, 0},
        {2, 1, 0, 60, 0},                    /* at 60: not yet */
        {3, 0, 0, 55, 1},                    /* below: customer.at_risk */
        {3, 1, 0, 45, 0},                    /* worse: nothing more */
        {2, 0, 1, 69, 0},                    /* 100 - 30 - 1: one short */
        {2, 0, 0, 70, -1},                   /* contact logged: recovered */
        {2, 1, 0, 60, 0},  {3, 0, 2, 53, 1}, /* a new episode */
    };
    int at_risk = 0, emitted = 0;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        tp_health_inputs_t in = healthy();
        in.open_complaints = steps[i].complaints;
        in.overdue_tickets = steps[i].overdue;
        in.last_contact_at = NOW - (30 + steps[i].silent_days) * DAY_MS;
        int health = tp_health_score(r, &in, NULL, 0);
        if (health != steps[i].health)
            fail_msg("step %zu: health %d, expected %d", i, health,
                     steps[i].health);
        int t = tp_health_transition(r, at_risk, health);
        if (t != steps[i].transition)
            fail_msg("step %zu: transition %d, expected %d", i, t,
                     steps[i].transition);
        if (t == 1) emitted++;
        if (t != 0) at_risk = t == 1;
    }
    assert_int_equal(emitted, 2);
    assert_true(at_risk);
}

/* A threshold + hysteresis above 100 could never be reached: full health
 * ends the episode. */
static void test_R_HEALTH_1_recovery_capped_at_100(void **state) {
    fixture_t *fx = *state;
    setenv("TP_HEALTH_THRESHOLD", "95", 1);
    setenv("TP_HEALTH_HYSTERESIS", "20", 1);
    load_rules(fx);
    assert_int_equal(tp_health_transition(&fx->rules, 0, 94), 1);
    assert_int_equal(tp_health_transition(&fx->rules, 1, 99), 0);
    assert_int_equal(tp_health_transition(&fx->rules, 1, 100), -1);
}

/* ---- R-SAT-1: below 4 needs a follow-up ---- */

static void test_R_SAT_1_follow_up_below(void **state) {
    fixture_t *fx = *state;
    const tp_health_rules_t *r = &fx->rules;
    /* the rule scoring applies to each new score: score < follow_up_below */
    assert_int_equal(r->follow_up_below, 4);
    assert_true(3 < r->follow_up_below);  /* 3: follow-up */
    assert_false(4 < r->follow_up_below); /* 4: none */

    setenv("TP_HEALTH_FOLLOW_UP_BELOW", "5", 1);
    load_rules(fx);
    assert_int_equal(fx->rules.follow_up_below, 5);

    /* scores are 1..5: below 7 means nothing; reported, default kept */
    setenv("TP_HEALTH_FOLLOW_UP_BELOW", "7", 1);
    char err[256] = "";
    tp_config_destroy(&fx->cfg);
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    assert_non_null(fx->cfg);
    tp_health_rules_load(&fx->rules, fx->cfg);
    assert_int_equal(fx->rules.follow_up_below, 4);
    assert_int_equal(tp_config_check(fx->cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "health.follow_up_below"));
}

/* ---- configuration, not rebuilding (domain.md: every number a default) ----
 */

static void test_R_HEALTH_1_env_overrides(void **state) {
    fixture_t *fx = *state;
    setenv("TP_HEALTH_SCORES_KEPT", "1", 1);
    setenv("TP_HEALTH_PER_COMPLAINT", "25", 1);
    setenv("TP_HEALTH_CONTACT_GRACE", "7d", 1);
    setenv("TP_HEALTH_PER_SILENT_DAY", "2", 1);
    setenv("TP_HEALTH_SILENCE_MAX", "10", 1);
    setenv("TP_HEALTH_THRESHOLD", "50", 1);
    setenv("TP_HEALTH_HYSTERESIS", "5", 1);
    load_rules(fx);
    const tp_health_rules_t *r = &fx->rules;
    assert_int_equal(r->per_overdue, 10); /* untouched keys keep defaults */
    int scores[] = {3, 1, 1}; /* only the newest: 10 * (5 - 3) = 20 */
    tp_health_inputs_t in = {scores, 3, 1, 0, NOW - 10 * DAY_MS, NOW};
    /* 100 - 20 - 25 (1 complaint) - 2 * 3 (10 - 7 days) = 49 */
    assert_int_equal(health_of(r, &in,
                               "satisfaction 3.0/5 (-20), 1 open complaint "
                               "(-25), no contact for 10 days (-6)"),
                     49);
    in.last_contact_at = NOW - 20 * DAY_MS; /* 2 * 13 = 26, capped at 10 */
    assert_int_equal(tp_health_score(r, &in, NULL, 0), 45);
    assert_int_equal(tp_health_transition(r, 0, 50), 0);
    assert_int_equal(tp_health_transition(r, 0, 49), 1);
    assert_int_equal(tp_health_transition(r, 1, 54), 0);
    assert_int_equal(tp_health_transition(r, 1, 55), -1);
}

/* A value that does not parse is reported naming the key; the default
 * stays. "1w" is no duration (config.h has no weeks). */
static void test_R_HEALTH_1_bad_values_reported(void **state) {
    fixture_t *fx = *state;
    static const struct {
        const char *env, *value, *key;
    } bad[] = {
        {"TP_HEALTH_CONTACT_GRACE", "1w", "health.contact_grace"},
        {"TP_HEALTH_THRESHOLD", "101", "health.threshold"},
        {"TP_HEALTH_SCORES_KEPT", "0", "health.scores_kept"},
        {"TP_HEALTH_PER_COMPLAINT", "-5", "health.per_complaint"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        clear_health_env();
        setenv(bad[i].env, bad[i].value, 1);
        char err[256] = "";
        tp_config_destroy(&fx->cfg);
        fx->cfg = tp_config_new(NULL, err, sizeof err);
        assert_non_null(fx->cfg);
        tp_health_rules_load(&fx->rules, fx->cfg);
        assert_int_equal(tp_config_check(fx->cfg, err, sizeof err), -1);
        if (!strstr(err, bad[i].key))
            fail_msg("%s=%s: \"%s\" does not name %s", bad[i].env, bad[i].value,
                     err, bad[i].key);
    }
    assert_int_equal(fx->rules.per_complaint, 15);
    clear_health_env();
    setenv("TP_HEALTH_CONTACT_GRACE", "1w", 1);
    char err[256];
    tp_config_destroy(&fx->cfg);
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    tp_health_rules_load(&fx->rules, fx->cfg);
    assert_int_equal(fx->rules.contact_grace_ms, 30 * DAY_MS);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults_loaded),
        T(test_R_HEALTH_1_nothing_wrong),
        T(test_R_HEALTH_1_satisfaction_alone),
        T(test_R_HEALTH_1_satisfaction_rounds_half_up),
        T(test_R_HEALTH_1_complaints_alone),
        T(test_R_HEALTH_1_overdue_alone),
        T(test_R_HEALTH_1_silence_alone),
        T(test_R_HEALTH_1_grace_boundary),
        T(test_R_HEALTH_1_silence_cap),
        T(test_R_HEALTH_1_silence_rate_zero),
        T(test_R_HEALTH_1_combined),
        T(test_R_HEALTH_1_clamp_at_zero),
        T(test_R_HEALTH_1_why_truncated_safely),
        T(test_R_HEALTH_1_transition_edges),
        T(test_R_HEALTH_1_episode_sequence),
        T(test_R_HEALTH_1_episode_from_inputs),
        T(test_R_HEALTH_1_recovery_capped_at_100),
        T(test_R_SAT_1_follow_up_below),
        T(test_R_HEALTH_1_env_overrides),
        T(test_R_HEALTH_1_bad_values_reported),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
