/* ticketing_roster.c: departments, agents, leads and managers from
 * configuration, and the choice of an agent. */
#include "ticketing_roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct department {
    char *name, *lead, *manager;
    char *agents[TP_ROSTER_AGENTS_MAX];
    size_t nagents;
} department_t;

struct tp_roster {
    department_t depts[TP_ROSTER_DEPARTMENTS_MAX];
    size_t ndepts;
    char *by_category[4]; /* fault, question, complaint, change */
    char *fallback_dept;
    char *default_owner;
    tp_roster_strategy_t strategy;
};

static const char *const categories[4] = {"fault", "question", "complaint", "change"};

static char *dup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) abort();
    return d;
}

/* Splits "a, b,c" into trimmed words; returns how many (at most max), or
 * -1 when there are more. */
static int split(const char *list, char **out, size_t max) {
    int n = 0;
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t') p++;
        if (!*p) break;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) last--;
        if ((size_t)n == max) return -1;
        out[n] = strndup(p, (size_t)(last - p));
        if (!out[n]) abort();
        n++;
        p = end;
    }
    return n;
}

static department_t *find(const tp_roster_t *self, const char *dept) {
    for (size_t i = 0; dept && i < self->ndepts; i++)
        if (strcmp(self->depts[i].name, dept) == 0) return (department_t *)&self->depts[i];
    return NULL;
}

tp_roster_t *tp_roster_new(tp_config_t *cfg, char *err, size_t errlen) {
    tp_roster_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    char *names[TP_ROSTER_DEPARTMENTS_MAX];
    int n = split(tp_config_str(cfg, "ticketing", "departments",
                                "sales,engineering,maintenance"),
                  names, TP_ROSTER_DEPARTMENTS_MAX);
    if (n <= 0) {
        snprintf(err, errlen, "ticketing.departments: %s",
                 n < 0 ? "too many departments" : "at least one department");
        for (int i = 0; i < n; i++) free(names[i]);
        free(self);
        return NULL;
    }
    self->default_owner = dup(tp_config_str(cfg, "ticketing", "default_owner", "support-lead"));
    const char *manager = tp_config_str(cfg, "ticketing", "manager", self->default_owner);
    for (int i = 0; i < n; i++) {
        department_t *d = &self->depts[self->ndepts++];
        char key[96];
        d->name = names[i];
        snprintf(key, sizeof key, "agents_%s", d->name);
        int na = split(tp_config_str(cfg, "ticketing", key, ""), d->agents,
                       TP_ROSTER_AGENTS_MAX);
        if (na < 0) {
            snprintf(err, errlen, "ticketing.%s: at most %d agents", key,
                     TP_ROSTER_AGENTS_MAX);
            tp_roster_destroy(&self);
            return NULL;
        }
        d->nagents = (size_t)na;
        snprintf(key, sizeof key, "lead_%s", d->name);
        d->lead = dup(tp_config_str(cfg, "ticketing", key, self->default_owner));
        snprintf(key, sizeof key, "manager_%s", d->name);
        d->manager = dup(tp_config_str(cfg, "ticketing", key, manager));
    }
    self->fallback_dept = dup(tp_config_str(cfg, "ticketing", "default_department",
                                            self->depts[0].name));
    if (!find(self, self->fallback_dept)) {
        snprintf(err, errlen, "ticketing.default_department: %s is not in departments",
                 self->fallback_dept);
        tp_roster_destroy(&self);
        return NULL;
    }
    /* faults and changes to engineering, questions and complaints to sales,
     * when those departments exist */
    static const char *const usual[4] = {"engineering", "sales", "sales", "engineering"};
    for (int c = 0; c < 4; c++) {
        char key[64];
        snprintf(key, sizeof key, "department_%s", categories[c]);
        const char *def = find(self, usual[c]) ? usual[c] : self->fallback_dept;
        self->by_category[c] = dup(tp_config_str(cfg, "ticketing", key, def));
        if (!find(self, self->by_category[c])) {
            snprintf(err, errlen, "ticketing.%s: %s is not in departments", key,
                     self->by_category[c]);
            tp_roster_destroy(&self);
            return NULL;
        }
    }
    const char *how = tp_config_str(cfg, "ticketing", "assignment", "least_open");
    if (strcmp(how, "round_robin") == 0) {
        self->strategy = TP_ROSTER_ROUND_ROBIN;
    } else if (strcmp(how, "least_open") == 0) {
        self->strategy = TP_ROSTER_LEAST_OPEN;
    } else {
        snprintf(err, errlen, "ticketing.assignment: must be round_robin or least_open");
        tp_roster_destroy(&self);
        return NULL;
    }
    return self;
}

void tp_roster_destroy(tp_roster_t **self_p) {
    tp_roster_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    for (size_t i = 0; i < self->ndepts; i++) {
        department_t *d = &self->depts[i];
        free(d->name);
        free(d->lead);
        free(d->manager);
        for (size_t a = 0; a < d->nagents; a++) free(d->agents[a]);
    }
    for (int c = 0; c < 4; c++) free(self->by_category[c]);
    free(self->fallback_dept);
    free(self->default_owner);
    free(self);
    *self_p = NULL;
}

int tp_roster_has(const tp_roster_t *self, const char *dept) {
    return find(self, dept) != NULL;
}

const char *tp_roster_department_for(const tp_roster_t *self, const char *category) {
    for (int c = 0; category && c < 4; c++)
        if (strcmp(categories[c], category) == 0) return self->by_category[c];
    return self->fallback_dept;
}

const char *const *tp_roster_agents(const tp_roster_t *self, const char *dept, size_t *n) {
    department_t *d = find(self, dept);
    *n = d ? d->nagents : 0;
    return d ? (const char *const *)d->agents : NULL;
}

const char *tp_roster_lead(const tp_roster_t *self, const char *dept) {
    department_t *d = find(self, dept);
    return d ? d->lead : self->default_owner;
}

const char *tp_roster_manager(const tp_roster_t *self, const char *dept) {
    department_t *d = find(self, dept);
    return d ? d->manager : self->default_owner;
}

tp_roster_strategy_t tp_roster_strategy(const tp_roster_t *self) { return self->strategy; }

const char *tp_roster_pick(const tp_roster_t *self, const char *dept, int64_t turn,
                           const int *away, const int64_t *open) {
    department_t *d = find(self, dept);
    if (!d || !d->nagents) return NULL;
    size_t n = d->nagents;
    if (self->strategy == TP_ROSTER_ROUND_ROBIN) {
        size_t start = (size_t)((turn < 0 ? -turn : turn) % (int64_t)n);
        for (size_t k = 0; k < n; k++) {
            size_t i = (start + k) % n;
            if (!away[i]) return d->agents[i];
        }
        return NULL;
    }
    const char *best = NULL;
    int64_t least = 0;
    for (size_t i = 0; i < n; i++)
        if (!away[i] && (!best || open[i] < least)) {
            best = d->agents[i];
            least = open[i];
        }
    return best;
}
