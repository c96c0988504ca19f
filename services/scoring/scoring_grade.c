/* scoring_grade.c: fit, score and grade. */
#include "scoring_grade.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void tp_grade_rules_load(tp_grade_rules_t *r, tp_config_t *cfg) {
    memset(r, 0, sizeof *r);
    r->w_urgency = (int)tp_config_int(cfg, "grade", "weight_urgency", 4, 0, 100);
    r->w_budget = (int)tp_config_int(cfg, "grade", "weight_budget", 3, 0, 100);
    r->w_decision = (int)tp_config_int(cfg, "grade", "weight_decision", 3, 0, 100);
    r->w_fit = (int)tp_config_int(cfg, "grade", "weight_fit", 2, 0, 100);
    r->threshold_a = (int)tp_config_int(cfg, "grade", "threshold_a", 70, 0, 100);
    r->threshold_b = (int)tp_config_int(cfg, "grade", "threshold_b", 40, 0, 100);
    r->urgent_lifts_to_a = tp_config_bool(cfg, "grade", "urgent_lifts_to_a", 1);
    r->interested_urgency_step =
        (int)tp_config_int(cfg, "grade", "interested_urgency_step", 1, 0, 3);
    r->refused_urgency = (int)tp_config_int(cfg, "grade", "refused_urgency", 0, 0, 3);
    r->fit_w_size = (int)tp_config_int(cfg, "fit", "weight_size", 30, 0, 100);
    r->fit_w_industry = (int)tp_config_int(cfg, "fit", "weight_industry", 30, 0, 100);
    r->fit_w_contact = (int)tp_config_int(cfg, "fit", "weight_contact", 25, 0, 100);
    r->fit_w_brand = (int)tp_config_int(cfg, "fit", "weight_brand", 15, 0, 100);
    r->fit_min_size = tp_config_int(cfg, "fit", "min_size", 100, 0, 10000000);
    snprintf(r->fit_industries, sizeof r->fit_industries, "%s",
             tp_config_str(cfg, "fit", "industries", "manufacturing,fmcg,hightech"));
}

static int industry_fits(const char *list, const char *industry) {
    size_t n = strlen(industry);
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ') p++;
        size_t len = strcspn(p, ",");
        while (len > 0 && p[len - 1] == ' ') len--;
        if (len && len == n && strncasecmp(p, industry, n) == 0) return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

static void note(char *why, size_t whylen, const char *criterion) {
    if (!why) return;
    size_t used = strlen(why);
    snprintf(why + used, whylen - used, "%s%s", used ? "," : "", criterion);
}

int tp_grade_fit(const tp_grade_rules_t *r, const tp_lead_facts_t *f,
                 char *why, size_t whylen) {
    int total = r->fit_w_size + r->fit_w_industry + r->fit_w_contact + r->fit_w_brand;
    if (why && whylen) why[0] = '\0';
    if (total <= 0) return 0;
    int got = 0;
    if (f->size >= r->fit_min_size) {
        got += r->fit_w_size;
        note(why, whylen, "size");
    }
    if (f->industry && industry_fits(r->fit_industries, f->industry)) {
        got += r->fit_w_industry;
        note(why, whylen, "industry");
    }
    if (f->contact_fields > 0) { /* partial contact data: partial credit */
        got += r->fit_w_contact * (f->contact_fields > 4 ? 4 : f->contact_fields) / 4;
        note(why, whylen, f->contact_fields >= 4 ? "contact" : "contact(partial)");
    }
    if (f->known_brand) {
        got += r->fit_w_brand;
        note(why, whylen, "brand");
    }
    return got * 100 / total;
}

int tp_grade_score(const tp_grade_rules_t *r, int urgency, int budget,
                   int decision, int fit) {
    int total = r->w_urgency + r->w_budget + r->w_decision + r->w_fit;
    if (total <= 0) return 0;
    /* dimensions are 0-3, fit 0-100: bring both to 0-300 */
    int sum = r->w_urgency * urgency * 100 + r->w_budget * budget * 100 +
              r->w_decision * decision * 100 + r->w_fit * fit * 3;
    return sum / (total * 3);
}

char tp_grade_of(const tp_grade_rules_t *r, int score, int urgency) {
    if (score >= r->threshold_a) return 'A';
    if (r->urgent_lifts_to_a && urgency >= 3) return 'A';
    if (score >= r->threshold_b) return 'B';
    return 'C';
}

int tp_grade_urgency_after(const tp_grade_rules_t *r, int urgency,
                           const char *outcome) {
    if (!outcome) return urgency;
    if (strcmp(outcome, "interested") == 0) {
        urgency += r->interested_urgency_step;
        return urgency > 3 ? 3 : urgency;
    }
    if (strcmp(outcome, "refused") == 0) return r->refused_urgency;
    return urgency;
}
