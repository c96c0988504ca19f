/* metrics.h: a registry of counters, gauges and histograms, rendered in the
 * Prometheus text exposition format (0.0.4).
 *
 * Owns every metric family and series registered with it. A family has a
 * name, help text, a type and zero or more label names; its series are made
 * on first use of a set of label values and live as long as the registry.
 * Every series also carries the registry's constant labels (service and
 * instance), so a scrape needs no relabelling to tell instances apart.
 * Collect callbacks run at render time only, on the loop: they set values
 * the service already holds (counters kept in memory, numbers refreshed by
 * a timer) and must never block or call Redis.
 *
 * Every function accepts a NULL registry, family or series and then does
 * nothing (returns NULL): code that counts need not know whether metrics
 * are on. One thread (the loop's) only. */
#ifndef TP_METRICS_H
#define TP_METRICS_H

#include <stddef.h>

typedef struct tp_metrics tp_metrics_t;
typedef struct tp_metric tp_metric_t;  /* a family */
typedef struct tp_series tp_series_t;  /* one set of label values */

#define TP_METRICS_MAX_LABELS 4

/* Runs at render time, before family `metric` is written: sets its series
 * from what the service holds (tp_metric_at + tp_series_set). */
typedef void (*tp_metrics_collect_cb)(tp_metric_t *metric, void *arg);

/* A registry whose series all carry service="<service>" and
 * instance="<instance>" (either may be NULL: left out). Strings copied.
 * Caller owns the result. */
tp_metrics_t *tp_metrics_new(const char *service, const char *instance);
void tp_metrics_destroy(tp_metrics_t **self_p);

/* Registers a family. `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*; `labels`
 * is NULL or comma-separated label names ("channel,status"), at most
 * TP_METRICS_MAX_LABELS. Registering the same name again with the same
 * type returns the existing family. Returns the family (borrowed, lives as
 * long as the registry) or NULL (bad name, clash: logged). */
tp_metric_t *tp_metrics_counter(tp_metrics_t *self, const char *name,
                                const char *help, const char *labels);
tp_metric_t *tp_metrics_gauge(tp_metrics_t *self, const char *name,
                              const char *help, const char *labels);
/* `bounds`: ascending upper bounds (copied), +Inf added; NULL for
 * TP_METRICS_SECONDS (0.5 ms .. 10 s), for durations in seconds. */
tp_metric_t *tp_metrics_histogram(tp_metrics_t *self, const char *name,
                                  const char *help, const char *labels,
                                  const double *bounds, size_t nbounds);
/* Runs `cb(metric, arg)` before each render of `metric`. */
void tp_metric_on_collect(tp_metric_t *metric, tp_metrics_collect_cb cb,
                          void *arg);

/* The series of `metric` for its label values, one `const char *` per
 * label name in order (NULL: ""); made on first use. Borrowed, lives as
 * long as the registry: callers may keep it. */
tp_series_t *tp_metric_at(tp_metric_t *metric, ...);

void tp_series_inc(tp_series_t *s);                /* counter or gauge +1 */
void tp_series_add(tp_series_t *s, double v);      /* counters: v >= 0 */
void tp_series_set(tp_series_t *s, double v);      /* gauges, or a counter
                                                      kept elsewhere */
void tp_series_observe(tp_series_t *s, double v);  /* histograms */
double tp_series_value(const tp_series_t *s);      /* counter/gauge; the
                                                      count of a histogram */

/* The whole registry as Prometheus text: HELP and TYPE once per family,
 * then its samples (histograms as _bucket{le}, _sum, _count). Runs the
 * collect callbacks. Caller owns the result (free); `len` gets its length
 * when not NULL. */
char *tp_metrics_render(tp_metrics_t *self, size_t *len);

/* The Content-Type of what tp_metrics_render returns. */
#define TP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
