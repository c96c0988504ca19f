/* test_scoring_grade.c: the grading rules of services/scoring/scoring_grade.h
 * (R-LEAD-2 fit, R-GRADE-1/2 score and grade, R-GRADE-3 grades move).
 *
 * Rules are loaded with tp_grade_rules_load from a configuration without a
 * file (environment only, every TP_GRADE_* and TP_FIT_* variable cleared first), so the
 * defaults under test are the code's own. The arithmetic behind each
 * expected value is written out next to it.
 *
 * The defaults (scoring_grade.c, tp_grade_rules_load):
 *   weights urgency 4, budget 3, decision 3, fit 2      (sum 12)
 *   threshold_a 70, threshold_b 40, urgent_lifts_to_a on
 *   fit weights size 30, industry 30, contact 25, brand 15 (sum 100)
 *   fit_min_size 100, industries manufacturing,fmcg,hightech
 *   interested_urgency_step 1, refused_urgency 0
 * score = (4*u*100 + 3*b*100 + 3*d*100 + 2*fit*3) / (12*3), integer division
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scoring_grade.h"
#include "tp/config.h"

extern char **environ;

/* Removes every TP_GRADE_* and TP_FIT_* variable so defaults are the code's. */
static void clear_scoring_env(void) {
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "TP_GRADE_", 9) == 0 || strncmp(*e, "TP_FIT_", 7) == 0) {
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
    tp_grade_rules_t rules;
} fixture_t;

/* Loads the rules from the environment only; fails the test on a config
 * error (tp_config_check), which a valid environment must not give. */
static void load_rules(fixture_t *fx) {
    char err[256] = "";
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    if (!fx->cfg) fail_msg("tp_config_new(NULL): %s", err);
    tp_grade_rules_load(&fx->rules, fx->cfg);
    if (tp_config_check(fx->cfg, err, sizeof err) != 0)
        fail_msg("tp_config_check: %s", err);
}

static int setup(void **state) {
    clear_scoring_env();
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
    clear_scoring_env();
    return 0;
}

/* The defaults documented at the top of this file are what loads. */
static void test_defaults_loaded(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    assert_int_equal(r->w_urgency, 4);
    assert_int_equal(r->w_budget, 3);
    assert_int_equal(r->w_decision, 3);
    assert_int_equal(r->w_fit, 2);
    assert_int_equal(r->threshold_a, 70);
    assert_int_equal(r->threshold_b, 40);
    assert_true(r->urgent_lifts_to_a);
    assert_int_equal(r->fit_w_size, 30);
    assert_int_equal(r->fit_w_industry, 30);
    assert_int_equal(r->fit_w_contact, 25);
    assert_int_equal(r->fit_w_brand, 15);
    assert_int_equal(r->fit_min_size, 100);
    assert_string_equal(r->fit_industries, "manufacturing,fmcg,hightech");
    assert_int_equal(r->interested_urgency_step, 1);
    assert_int_equal(r->refused_urgency, 0);
}

/* ---- R-LEAD-2: fit ---- */

/* Medium size or larger, a fitting industry, complete contact data and a
 * known brand: every criterion, fit 100, and `why` names them all. */
static void test_fit_all_criteria(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    tp_lead_facts_t f = {"manufacturing", 500, 4, 1};
    char why[128] = "junk";
    /* (30 + 30 + 25*4/4 + 15) * 100 / 100 = 100 */
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 100);
    assert_string_equal(why, "size,industry,contact,brand");
    /* more than four contact fields count as four */
    f.contact_fields = 9;
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 100);
    assert_string_equal(why, "size,industry,contact,brand");
}

/* Each criterion alone gives its own weight and its own name. */
static void test_fit_each_criterion(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    char why[128];
    tp_lead_facts_t size_only = {NULL, 100, 0, 0};     /* exactly the minimum */
    assert_int_equal(tp_grade_fit(r, &size_only, why, sizeof why), 30);
    assert_string_equal(why, "size");
    tp_lead_facts_t industry_only = {"fmcg", -1, 0, 0};
    assert_int_equal(tp_grade_fit(r, &industry_only, why, sizeof why), 30);
    assert_string_equal(why, "industry");
    tp_lead_facts_t contact_only = {NULL, -1, 4, 0};
    assert_int_equal(tp_grade_fit(r, &contact_only, why, sizeof why), 25);
    assert_string_equal(why, "contact");
    tp_lead_facts_t brand_only = {NULL, -1, 0, 1};
    assert_int_equal(tp_grade_fit(r, &brand_only, why, sizeof why), 15);
    assert_string_equal(why, "brand");
    tp_lead_facts_t nothing = {NULL, -1, 0, 0};
    strcpy(why, "stale");
    assert_int_equal(tp_grade_fit(r, &nothing, why, sizeof why), 0);
    assert_string_equal(why, "");
    /* `why` may be NULL */
    tp_lead_facts_t all = {"hightech", 1000, 4, 1};
    assert_int_equal(tp_grade_fit(r, &all, NULL, 0), 100);
}

/* R-LEAD-1/2: missing contact data is allowed but lowers fit: partial
 * contact data earns a share of the contact weight, named as partial. */
static void test_fit_partial_contact(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    char why[128];
    /* name + phone of the lead in tests/lib (2 of 4 fields), manufacturing,
     * 500 employees, no brand: 30 + 30 + 25*2/4 (= 12, integer) = 72 */
    tp_lead_facts_t f = {"manufacturing", 500, 2, 0};
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 72);
    assert_string_equal(why, "size,industry,contact(partial)");
    f.contact_fields = 1; /* 25*1/4 = 6 */
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 66);
    f.contact_fields = 3; /* 25*3/4 = 18 */
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 78);
    assert_string_equal(why, "size,industry,contact(partial)");
    f.contact_fields = 4; /* complete: 25 */
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 85);
    assert_string_equal(why, "size,industry,contact");
    f.contact_fields = 0; /* none: no share, not named */
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 60);
    assert_string_equal(why, "size,industry");
}

/* "Medium size or larger" and the industry list, at their edges. */
static void test_fit_size_and_industry_edges(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    char why[128];
    tp_lead_facts_t f = {NULL, 99, 0, 0};
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 0); /* below 100 */
    f.size = -1;                                               /* unknown */
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 0);
    f.size = 0;
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 0);

    const char *fitting[] = {"manufacturing", "Manufacturing", "FMCG", "hightech",
                             "HighTech"};
    for (size_t i = 0; i < sizeof fitting / sizeof *fitting; i++) {
        tp_lead_facts_t g = {fitting[i], -1, 0, 0};
        assert_int_equal(tp_grade_fit(r, &g, why, sizeof why), 30);
    }
    /* only whole list entries match: no prefixes, no substrings */
    const char *not_fitting[] = {"retail", "", "manufactur", "manufacturingx",
                                 "fmcg,hightech", "tech", "high"};
    for (size_t i = 0; i < sizeof not_fitting / sizeof *not_fitting; i++) {
        tp_lead_facts_t g = {not_fitting[i], -1, 0, 0};
        if (tp_grade_fit(r, &g, why, sizeof why) != 0)
            fail_msg("industry \"%s\" must not fit", not_fitting[i]);
    }
}

/* A `why` buffer too small for every name is cut short, never overrun. */
static void test_fit_why_truncated_safely(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    tp_lead_facts_t f = {"manufacturing", 500, 4, 1};
    char buf[16];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(tp_grade_fit(r, &f, buf, 8), 100);
    assert_int_equal(strlen(buf), 7);
    assert_memory_equal(buf, "size,in", 8);
    assert_int_equal(buf[8], 'x');
}

/* ---- R-GRADE-1/2: score and grade ---- */

/* A: short-term need, clear budget, decision maker reachable. */
static void test_grade_full_marks_is_a(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    /* 3/3/3, fit 100: (1200 + 900 + 900 + 2*100*3) / 36 = 3600/36 = 100 */
    int score = tp_grade_score(r, 3, 3, 3, 100);
    assert_int_equal(score, 100);
    assert_int_equal(tp_grade_of(r, score, 3), 'A');
    /* 3/3/3 with the harness lead's fit 72: (3000 + 432) / 36 = 95 */
    assert_int_equal(tp_grade_score(r, 3, 3, 3, 72), 95);
    /* 3/3/3, fit 0: 3000/36 = 83, still A on the score alone */
    score = tp_grade_score(r, 3, 3, 3, 0);
    assert_int_equal(score, 83);
    assert_int_equal(tp_grade_of(r, score, 3), 'A');
}

/* 1/1/1 under the defaults: B with full fit, C without. */
static void test_grade_weak_lead_b_or_c(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    /* 1/1/1, fit 100: (400 + 300 + 300 + 600) / 36 = 1600/36 = 44 >= 40: B */
    int score = tp_grade_score(r, 1, 1, 1, 100);
    assert_int_equal(score, 44);
    assert_int_equal(tp_grade_of(r, score, 1), 'B');
    /* 1/1/1, fit 0: 1000/36 = 27 < 40: C */
    score = tp_grade_score(r, 1, 1, 1, 0);
    assert_int_equal(score, 27);
    assert_int_equal(tp_grade_of(r, score, 1), 'C');
    /* nothing at all: 0, C */
    assert_int_equal(tp_grade_score(r, 0, 0, 0, 0), 0);
    assert_int_equal(tp_grade_of(r, 0, 0), 'C');
}

/* The thresholds are inclusive: score >= 70 is A, >= 40 is B. */
static void test_grade_threshold_edges(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    assert_int_equal(tp_grade_of(r, 70, 2), 'A');
    assert_int_equal(tp_grade_of(r, 69, 2), 'B');
    assert_int_equal(tp_grade_of(r, 40, 2), 'B');
    assert_int_equal(tp_grade_of(r, 39, 2), 'C');
    /* 2/2/2, fit 50: (800 + 600 + 600 + 300) / 36 = 2300/36 = 63: B */
    assert_int_equal(tp_grade_score(r, 2, 2, 2, 50), 63);
    /* 2/3/3, fit 100: (800 + 900 + 900 + 600) / 36 = 3200/36 = 88: A */
    assert_int_equal(tp_grade_score(r, 2, 3, 3, 100), 88);
}

/* Urgency weighs most (4 of 12): one more point of urgency moves the score
 * more than one more point of budget. */
static void test_score_weights_order(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    /* 2/1/1: (800+300+300)/36 = 38; 1/2/1: (400+600+300)/36 = 36 */
    assert_int_equal(tp_grade_score(r, 2, 1, 1, 0), 38);
    assert_int_equal(tp_grade_score(r, 1, 2, 1, 0), 36);
    assert_int_equal(tp_grade_score(r, 1, 1, 2, 0), 36);
}

/* ---- R-GRADE-3: grades move ---- */

/* A C lead with a sudden urgent need becomes A at once. */
static void test_urgent_need_lifts_c_to_a(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    /* before: 1/0/0, fit 0: 400/36 = 11: C */
    int before = tp_grade_score(r, 1, 0, 0, 0);
    assert_int_equal(before, 11);
    assert_int_equal(tp_grade_of(r, before, 1), 'C');
    /* after: urgency 3: 1200/36 = 33, still below B's 40 on the score, but
     * urgent_lifts_to_a makes it A */
    int after = tp_grade_score(r, 3, 0, 0, 0);
    assert_int_equal(after, 33);
    assert_int_equal(tp_grade_of(r, after, 3), 'A');
    /* the lift is urgency 3 only: urgency 2 with the same score stays C */
    assert_int_equal(tp_grade_of(r, after, 2), 'C');
    /* and it lifts a B too: 3/1/1, fit 0: (1200+300+300)/36 = 50 */
    assert_int_equal(tp_grade_score(r, 3, 1, 1, 0), 50);
    assert_int_equal(tp_grade_of(r, 50, 3), 'A');
}

/* With the lift switched off, urgency counts only through the score. */
static void test_urgent_lift_disabled(void **state) {
    fixture_t *fx = *state;
    tp_config_destroy(&fx->cfg);
    setenv("TP_GRADE_URGENT_LIFTS_TO_A", "false", 1);
    load_rules(fx);
    assert_false(fx->rules.urgent_lifts_to_a);
    int score = tp_grade_score(&fx->rules, 3, 0, 0, 0); /* 33, as above */
    assert_int_equal(score, 33);
    assert_int_equal(tp_grade_of(&fx->rules, score, 3), 'C');
    /* 3/1/1: 50: B, not A */
    assert_int_equal(tp_grade_of(&fx->rules, tp_grade_score(&fx->rules, 3, 1, 1, 0), 3),
                     'B');
    /* the score alone still makes A */
    assert_int_equal(tp_grade_of(&fx->rules, 70, 0), 'A');
}

/* A logged contact moves urgency: "interested" raises it by the step (at
 * most 3), "refused" sets it to refused_urgency, other outcomes keep it. */
static void test_contact_outcome_moves_urgency(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    assert_int_equal(tp_grade_urgency_after(r, 0, "interested"), 1);
    assert_int_equal(tp_grade_urgency_after(r, 1, "interested"), 2);
    assert_int_equal(tp_grade_urgency_after(r, 2, "interested"), 3);
    assert_int_equal(tp_grade_urgency_after(r, 3, "interested"), 3); /* capped */
    assert_int_equal(tp_grade_urgency_after(r, 3, "refused"), 0);
    assert_int_equal(tp_grade_urgency_after(r, 1, "refused"), 0);
    assert_int_equal(tp_grade_urgency_after(r, 2, "reached"), 2);
    assert_int_equal(tp_grade_urgency_after(r, 2, "no_answer"), 2);
    assert_int_equal(tp_grade_urgency_after(r, 2, "needs_time"), 2);
    assert_int_equal(tp_grade_urgency_after(r, 2, NULL), 2);
}

/* R-GRADE-3 end to end in arithmetic: a B lead at urgency 2 says it is
 * interested, reaches urgency 3 and becomes A; a refusal then drops it. */
static void test_interested_then_refused_regrades(void **state) {
    const tp_grade_rules_t *r = &((fixture_t *)*state)->rules;
    /* 2/1/1, fit 72: (800 + 300 + 300 + 432) / 36 = 1832/36 = 50: B */
    int u = 2;
    int score = tp_grade_score(r, u, 1, 1, 72);
    assert_int_equal(score, 50);
    assert_int_equal(tp_grade_of(r, score, u), 'B');
    u = tp_grade_urgency_after(r, u, "interested"); /* 3 */
    assert_int_equal(u, 3);
    score = tp_grade_score(r, u, 1, 1, 72); /* (1200+600+432)/36 = 62 */
    assert_int_equal(score, 62);
    assert_int_equal(tp_grade_of(r, score, u), 'A'); /* lifted */
    u = tp_grade_urgency_after(r, u, "refused"); /* 0 */
    assert_int_equal(u, 0);
    score = tp_grade_score(r, u, 1, 1, 72); /* (600+432)/36 = 28 */
    assert_int_equal(score, 28);
    assert_int_equal(tp_grade_of(r, score, u), 'C');
}

/* ---- configuration, not rebuilding (domain.md: every number a default) ---- */

static void test_env_overrides(void **state) {
    fixture_t *fx = *state;
    tp_config_destroy(&fx->cfg);
    setenv("TP_GRADE_THRESHOLD_A", "90", 1);
    setenv("TP_GRADE_REFUSED_URGENCY", "1", 1);
    setenv("TP_GRADE_INTERESTED_URGENCY_STEP", "2", 1);
    setenv("TP_FIT_INDUSTRIES", "retail, logistics", 1);
    setenv("TP_FIT_MIN_SIZE", "1000", 1);
    load_rules(fx);
    const tp_grade_rules_t *r = &fx->rules;
    assert_int_equal(r->threshold_a, 90);
    assert_int_equal(r->threshold_b, 40); /* untouched keys keep defaults */
    /* 2/3/3, fit 100 = 88 (see test_grade_threshold_edges): A under the
     * default 70, B under 90 (urgency 2: no lift) */
    int score = tp_grade_score(r, 2, 3, 3, 100);
    assert_int_equal(score, 88);
    assert_int_equal(tp_grade_of(r, score, 2), 'B');
    assert_int_equal(tp_grade_of(r, 90, 2), 'A');
    assert_int_equal(tp_grade_urgency_after(r, 3, "refused"), 1);
    assert_int_equal(tp_grade_urgency_after(r, 0, "interested"), 2);
    assert_int_equal(tp_grade_urgency_after(r, 2, "interested"), 3);
    char why[64];
    tp_lead_facts_t f = {"Logistics", 999, 0, 0};
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 30); /* industry */
    assert_string_equal(why, "industry");
    f.industry = "manufacturing"; /* no longer in the list */
    f.size = 1000;
    assert_int_equal(tp_grade_fit(r, &f, why, sizeof why), 30); /* size */
    assert_string_equal(why, "size");
}

/* A value that does not parse is reported by tp_config_check naming the
 * key, and the default stays in force meanwhile. */
static void test_bad_env_value_reported(void **state) {
    fixture_t *fx = *state;
    tp_config_destroy(&fx->cfg);
    setenv("TP_GRADE_THRESHOLD_A", "high", 1);
    char err[256] = "";
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    assert_non_null(fx->cfg);
    tp_grade_rules_load(&fx->rules, fx->cfg);
    assert_int_equal(fx->rules.threshold_a, 70);
    assert_int_equal(tp_config_check(fx->cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "grade.threshold_a"));

    tp_config_destroy(&fx->cfg);
    setenv("TP_GRADE_THRESHOLD_A", "101", 1); /* out of 0..100 */
    fx->cfg = tp_config_new(NULL, err, sizeof err);
    assert_non_null(fx->cfg);
    tp_grade_rules_load(&fx->rules, fx->cfg);
    assert_int_equal(tp_config_check(fx->cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "grade.threshold_a"));
}

/* Weights may be changed, even to nothing, without dividing by zero. */
static void test_zero_weights_safe(void **state) {
    fixture_t *fx = *state;
    tp_config_destroy(&fx->cfg);
    setenv("TP_GRADE_WEIGHT_URGENCY", "0", 1);
    setenv("TP_GRADE_WEIGHT_BUDGET", "0", 1);
    setenv("TP_GRADE_WEIGHT_DECISION", "0", 1);
    setenv("TP_GRADE_WEIGHT_FIT", "0", 1);
    setenv("TP_FIT_WEIGHT_SIZE", "0", 1);
    setenv("TP_FIT_WEIGHT_INDUSTRY", "0", 1);
    setenv("TP_FIT_WEIGHT_CONTACT", "0", 1);
    setenv("TP_FIT_WEIGHT_BRAND", "0", 1);
    load_rules(fx);
    tp_lead_facts_t f = {"manufacturing", 500, 4, 1};
    char why[64] = "stale";
    assert_int_equal(tp_grade_fit(&fx->rules, &f, why, sizeof why), 0);
    assert_int_equal(tp_grade_score(&fx->rules, 3, 3, 3, 100), 0);
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults_loaded),
        T(test_fit_all_criteria),
        T(test_fit_each_criterion),
        T(test_fit_partial_contact),
        T(test_fit_size_and_industry_edges),
        T(test_fit_why_truncated_safely),
        T(test_grade_full_marks_is_a),
        T(test_grade_weak_lead_b_or_c),
        T(test_grade_threshold_edges),
        T(test_score_weights_order),
        T(test_urgent_need_lifts_c_to_a),
        T(test_urgent_lift_disabled),
        T(test_contact_outcome_moves_urgency),
        T(test_interested_then_refused_regrades),
        T(test_env_overrides),
        T(test_bad_env_value_reported),
        T(test_zero_weights_safe),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
