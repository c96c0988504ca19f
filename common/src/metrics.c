/* metrics.c: the registry of metric families and their series, and its
 * rendering as Prometheus text (exposition format 0.0.4).
 *
 * Owns the families (in registration order), their series (a uthash per
 * family keyed by the label values joined with a unit separator, iterated
 * in creation order) and each histogram's bucket counts. Never calls out
 * of the process: collect callbacks read what the service already holds. */
#include "tp/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "tp/log.h"

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind_t;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* 0.5 ms .. 10 s: Redis round trips to slow applies. */
static const double SECONDS_BOUNDS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                        5,      10};

struct tp_series {
    tp_metric_t *metric;
    char *key;                              /* uthash key: values joined */
    char *values[TP_METRICS_MAX_LABELS];    /* label values */
    double value;                           /* counter/gauge; histogram sum */
    unsigned long long count;               /* histogram observations */
    unsigned long long *buckets;            /* histogram, per bound (not
                                               cumulative) */
    UT_hash_handle hh;
};

struct tp_metric {
    tp_metrics_t *registry;
    metric_kind_t kind;
    char *name;
    char *help;
    char *labels[TP_METRICS_MAX_LABELS];
    int nlabels;
    double *bounds;
    size_t nbounds;
    tp_metrics_collect_cb collect;
    void *collect_arg;
    tp_series_t *series; /* uthash */
    tp_metric_t *next;
};

struct tp_metrics {
    char *const_labels; /* rendered: service="x",instance="y" (or "") */
    tp_metric_t *first, *last;
};

static void *metrics_alloc(size_t n) {
    void *p = calloc(1, n);
    if (!p) abort();
    return p;
}

static char *metrics_strdup(const char *s) {
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

/* ---- a growable text buffer ---- */

typedef struct text {
    char *buf;
    size_t len, cap;
} text_t;

static void text_reserve(text_t *t, size_t more) {
    if (t->len + more + 1 <= t->cap) return;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->len + more + 1) cap *= 2;
    char *grown = realloc(t->buf, cap);
    if (!grown) abort();
    t->buf = grown;
    t->cap = cap;
}

static void text_add(text_t *t, const char *s, size_t n) {
    text_reserve(t, n);
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void text_str(text_t *t, const char *s) { text_add(t, s, strlen(s)); }

static void text_printf(text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void text_printf(text_t *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    text_reserve(t, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* A label value: backslash, double quote and line feed escaped. */
static void text_label_value(text_t *t, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') text_add(t, "\\\\", 2);
        else if (*s == '"') text_add(t, "\\\"", 2);
        else if (*s == '\n') text_add(t, "\\n", 2);
        else text_add(t, s, 1);
    }
}

/* HELP text: backslash and line feed escaped. */
static void text_help(text_t *t, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') text_add(t, "\\\\", 2);
        else if (*s == '\n') text_add(t, "\\n", 2);
        else text_add(t, s, 1);
    }
}

/* A sample value as Prometheus reads it: integers without a fraction,
 * +Inf, -Inf, NaN. */
static void text_value(text_t *t, double v) {
    if (isnan(v)) text_str(t, "NaN");
    else if (isinf(v)) text_str(t, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15) text_printf(t, "%.0f", v);
    else {
        char buf[32];
        for (int prec = 1; prec <= 17; prec++) { /* shortest that reads back */
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
        text_str(t, buf);
    }
}

/* ---- registry ---- */

tp_metrics_t *tp_metrics_new(const char *service, const char *instance) {
    tp_metrics_t *self = metrics_alloc(sizeof *self);
    text_t t = {0};
    text_str(&t, "");
    if (service) {
        text_str(&t, "service=\"");
        text_label_value(&t, service);
        text_str(&t, "\"");
    }
    if (instance) {
        text_str(&t, service ? ",instance=\"" : "instance=\"");
        text_label_value(&t, instance);
        text_str(&t, "\"");
    }
    self->const_labels = t.buf;
    return self;
}

static void series_free(tp_series_t *s) {
    free(s->key);
    for (int i = 0; i < TP_METRICS_MAX_LABELS; i++) free(s->values[i]);
    free(s->buckets);
    free(s);
}

static void metric_free(tp_metric_t *m) {
    tp_series_t *s, *tmp;
    HASH_ITER(hh, m->series, s, tmp) {
        HASH_DEL(m->series, s);
        series_free(s);
    }
    free(m->name);
    free(m->help);
    for (int i = 0; i < m->nlabels; i++) free(m->labels[i]);
    free(m->bounds);
    free(m);
}

void tp_metrics_destroy(tp_metrics_t **self_p) {
    tp_metrics_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    for (tp_metric_t *m = self->first, *next; m; m = next) {
        next = m->next;
        metric_free(m);
    }
    free(self->const_labels);
    free(self);
}

static int name_valid(const char *name, int metric) {
    if (!name || !*name) return 0;
    for (const char *p = name; *p; p++) {
        int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                    (metric && *p == ':');
        int digit = *p >= '0' && *p <= '9';
        if (!alpha && !(digit && p != name)) return 0;
    }
    return 1;
}

static tp_metric_t *metric_add(tp_metrics_t *self, metric_kind_t kind, const char *name,
                               const char *help, const char *labels) {
    if (!self) return NULL;
    if (!name_valid(name, 1)) {
        tp_log_error("metrics: %s: not a metric name", name ? name : "(null)");
        return NULL;
    }
    for (tp_metric_t *m = self->first; m; m = m->next)
        if (strcmp(m->name, name) == 0) {
            if (m->kind == kind) return m;
            tp_log_error("metrics: %s registered as %s and %s", name, kind_names[m->kind],
                         kind_names[kind]);
            return NULL;
        }
    tp_metric_t *m = metrics_alloc(sizeof *m);
    m->registry = self;
    m->kind = kind;
    m->name = metrics_strdup(name);
    m->help = metrics_strdup(help);
    if (labels && *labels) {
        char copy[256], *save = NULL;
        snprintf(copy, sizeof copy, "%s", labels);
        for (char *l = strtok_r(copy, ", ", &save); l; l = strtok_r(NULL, ", ", &save)) {
            if (m->nlabels == TP_METRICS_MAX_LABELS || !name_valid(l, 0) ||
                strcmp(l, "le") == 0 || strcmp(l, "service") == 0 ||
                strcmp(l, "instance") == 0) {
                tp_log_error("metrics: %s: bad or too many labels \"%s\"", name, labels);
                metric_free(m);
                return NULL;
            }
            m->labels[m->nlabels++] = metrics_strdup(l);
        }
    }
    if (self->last) self->last->next = m;
    else self->first = m;
    self->last = m;
    return m;
}

tp_metric_t *tp_metrics_counter(tp_metrics_t *self, const char *name, const char *help,
                                const char *labels) {
    return metric_add(self, KIND_COUNTER, name, help, labels);
}

tp_metric_t *tp_metrics_gauge(tp_metrics_t *self, const char *name, const char *help,
                              const char *labels) {
    return metric_add(self, KIND_GAUGE, name, help, labels);
}

tp_metric_t *tp_metrics_histogram(tp_metrics_t *self, const char *name, const char *help,
                                  const char *labels, const double *bounds,
                                  size_t nbounds) {
    if (!bounds) {
        bounds = SECONDS_BOUNDS;
        nbounds = sizeof SECONDS_BOUNDS / sizeof *SECONDS_BOUNDS;
    }
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1])) {
            tp_log_error("metrics: %s: bucket bounds must ascend", name);
            return NULL;
        }
    tp_metric_t *m = metric_add(self, KIND_HISTOGRAM, name, help, labels);
    if (m && !m->bounds) {
        m->bounds = metrics_alloc((nbounds ? nbounds : 1) * sizeof *m->bounds);
        memcpy(m->bounds, bounds, nbounds * sizeof *bounds);
        m->nbounds = nbounds;
    }
    return m;
}

void tp_metric_on_collect(tp_metric_t *metric, tp_metrics_collect_cb cb, void *arg) {
    if (!metric) return;
    metric->collect = cb;
    metric->collect_arg = arg;
}

/* ---- series ---- */

tp_series_t *tp_metric_at(tp_metric_t *metric, ...) {
    if (!metric) return NULL;
    const char *values[TP_METRICS_MAX_LABELS] = {0};
    va_list ap;
    va_start(ap, metric);
    for (int i = 0; i < metric->nlabels; i++) {
        values[i] = va_arg(ap, const char *);
        if (!values[i]) values[i] = "";
    }
    va_end(ap);
    text_t key = {0};
    text_str(&key, "");
    for (int i = 0; i < metric->nlabels; i++) {
        if (i) text_add(&key, "\x1f", 1);
        text_str(&key, values[i]);
    }
    tp_series_t *s = NULL;
    HASH_FIND_STR(metric->series, key.buf, s);
    if (s) {
        free(key.buf);
        return s;
    }
    s = metrics_alloc(sizeof *s);
    s->metric = metric;
    s->key = key.buf;
    for (int i = 0; i < metric->nlabels; i++) s->values[i] = metrics_strdup(values[i]);
    if (metric->kind == KIND_HISTOGRAM)
        s->buckets = metrics_alloc((metric->nbounds + 1) * sizeof *s->buckets);
    HASH_ADD_KEYPTR(hh, metric->series, s->key, strlen(s->key), s);
    return s;
}

void tp_series_inc(tp_series_t *s) { tp_series_add(s, 1); }

void tp_series_add(tp_series_t *s, double v) {
    if (s && s->metric->kind != KIND_HISTOGRAM) s->value += v;
}

void tp_series_set(tp_series_t *s, double v) {
    if (s && s->metric->kind != KIND_HISTOGRAM) s->value = v;
}

void tp_series_observe(tp_series_t *s, double v) {
    if (!s || s->metric->kind != KIND_HISTOGRAM) return;
    size_t i = 0;
    while (i < s->metric->nbounds && v > s->metric->bounds[i]) i++;
    s->buckets[i]++; /* i == nbounds: only in +Inf */
    s->count++;
    s->value += v;
}

double tp_series_value(const tp_series_t *s) {
    if (!s) return 0;
    return s->metric->kind == KIND_HISTOGRAM ? (double)s->count : s->value;
}

/* ---- rendering ---- */

/* {service="..",instance="..",<labels>[,le=".."]}, or nothing when empty. */
static void text_labels(text_t *t, const tp_metrics_t *reg, const tp_series_t *s,
                        const char *le) {
    const tp_metric_t *m = s->metric;
    int any = reg->const_labels[0] != '\0';
    if (!any && m->nlabels == 0 && !le) return;
    text_str(t, "{");
    text_str(t, reg->const_labels);
    for (int i = 0; i < m->nlabels; i++) {
        if (any) text_str(t, ",");
        any = 1;
        text_str(t, m->labels[i]);
        text_str(t, "=\"");
        text_label_value(t, s->values[i]);
        text_str(t, "\"");
    }
    if (le) {
        if (any) text_str(t, ",");
        text_str(t, "le=\"");
        text_str(t, le);
        text_str(t, "\"");
    }
    text_str(t, "}");
}

static void render_histogram(text_t *t, const tp_metrics_t *reg, const tp_series_t *s) {
    const tp_metric_t *m = s->metric;
    unsigned long long cumulative = 0;
    char le[32];
    for (size_t i = 0; i <= m->nbounds; i++) {
        cumulative += s->buckets[i];
        if (i < m->nbounds) {
            text_t b = {0};
            text_value(&b, m->bounds[i]);
            snprintf(le, sizeof le, "%s", b.buf);
            free(b.buf);
        } else {
            snprintf(le, sizeof le, "+Inf");
        }
        text_printf(t, "%s_bucket", m->name);
        text_labels(t, reg, s, le);
        text_printf(t, " %llu\n", cumulative);
    }
    text_printf(t, "%s_sum", m->name);
    text_labels(t, reg, s, NULL);
    text_str(t, " ");
    text_value(t, s->value);
    text_printf(t, "\n%s_count", m->name);
    text_labels(t, reg, s, NULL);
    text_printf(t, " %llu\n", s->count);
}

char *tp_metrics_render(tp_metrics_t *self, size_t *len) {
    text_t t = {0};
    text_str(&t, "");
    for (tp_metric_t *m = self ? self->first : NULL; m; m = m->next) {
        if (m->collect) m->collect(m, m->collect_arg);
        text_printf(&t, "# HELP %s ", m->name);
        text_help(&t, m->help);
        text_printf(&t, "\n# TYPE %s %s\n", m->name, kind_names[m->kind]);
        /* an unlabelled family shows its one series even before first use */
        if (m->nlabels == 0 && !m->series) tp_metric_at(m);
        for (tp_series_t *s = m->series; s; s = s->hh.next) {
            if (m->kind == KIND_HISTOGRAM) {
                render_histogram(&t, self, s);
                continue;
            }
            text_str(&t, m->name);
            text_labels(&t, self, s, NULL);
            text_str(&t, " ");
            text_value(&t, s->value);
            text_str(&t, "\n");
        }
    }
    if (len) *len = t.len;
    return t.buf;
}
