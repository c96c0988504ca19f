/* scoring_grade.h: the grading rules, pure arithmetic (R-LEAD-2,
 * R-GRADE-1..3). Owns the rule values read from configuration; touches no
 * I/O, so each rule is tested on its own. */
#ifndef SCORING_GRADE_H
#define SCORING_GRADE_H

#include <stdint.h>

#include "tp/config.h"

typedef struct tp_grade_rules {
    /* R-GRADE-2: weights of the dimensions and of fit in the 0-100 score */
    int w_urgency, w_budget, w_decision, w_fit;
    int threshold_a, threshold_b; /* score >= a: A; >= b: B; else C */
    int urgent_lifts_to_a;        /* R-GRADE-3: urgency 3 makes it A at once */
    /* R-LEAD-2: fit criteria weights (sum scaled to 100) */
    int fit_w_size, fit_w_industry, fit_w_contact, fit_w_brand;
    int64_t fit_min_size;     /* "medium size or larger", employees */
    char fit_industries[256]; /* comma list */
    /* R-GRADE-3: how a logged contact moves urgency */
    int interested_urgency_step; /* added on "interested" */
    int refused_urgency;         /* set on "refused" */
} tp_grade_rules_t;

typedef struct tp_lead_facts {
    const char *industry; /* NULL when unknown */
    int64_t size;         /* employees, -1 when unknown */
    int contact_fields;   /* of name, title, phone, email: how many given */
    int known_brand;      /* data.brand given */
} tp_lead_facts_t;

/* Reads [grade] and [fit] of the rules file over the domain.md defaults.
 * Bad values are left to tp_config_check. */
void tp_grade_rules_load(tp_grade_rules_t *rules, tp_config_t *cfg);

/* Fit 0-100 and, in `why` (may be NULL), the criteria that made it, e.g.
 * "size>=100,industry,contact". */
int tp_grade_fit(const tp_grade_rules_t *rules, const tp_lead_facts_t *facts,
                 char *why, size_t whylen);
/* Weighted score 0-100 of the three dimensions (0-3 each) and fit. */
int tp_grade_score(const tp_grade_rules_t *rules, int urgency, int budget,
                   int decision, int fit);
/* 'A', 'B' or 'C' from the score and urgency. */
char tp_grade_of(const tp_grade_rules_t *rules, int score, int urgency);
/* Urgency after a contact with `outcome` (contact.logged). */
int tp_grade_urgency_after(const tp_grade_rules_t *rules, int urgency,
                           const char *outcome);

#endif
