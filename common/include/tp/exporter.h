/* exporter.h: a service's own HTTP listener for operators and probes:
 * GET /metrics (Prometheus text), GET /healthz (alive: 200) and GET /readyz
 * (200 when connected to Redis and the bus and caught up within the
 * configured bound, else 503 with a one-line reason).
 *
 * Owns the listener, the refresh timer and the metrics every service
 * shares: Redis round trips, errors and connection, the bus connection and
 * queue, the reconcile backlog (journal entries after the service's
 * cursor, and the age of the oldest) or, for intake, the journal's length.
 * Those numbers are read from Redis on the timer ([metrics] refresh), never
 * per scrape: a scrape only renders what is held. A service adds its own
 * gauges to tp_exporter_metrics and refreshes them from
 * tp_exporter_on_refresh. Never blocks the loop. */
#ifndef TP_EXPORTER_H
#define TP_EXPORTER_H

#include <stdint.h>
#include <uv.h>

#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/metrics.h"
#include "tp/proto.h"
#include "tp/store.h"

typedef struct tp_exporter tp_exporter_t;

/* Runs on every refresh tick while Redis is connected: the service sends
 * its own reads and sets its gauges when they answer. */
typedef void (*tp_exporter_refresh_cb)(tp_exporter_t *exporter, void *arg);

typedef struct tp_exporter_options {
    tp_service_t service;
    const char *host;          /* listen address, default 127.0.0.1 */
    int port;                  /* 0: any free port; -1: no listener */
    int64_t refresh_ms;        /* backlog and domain gauges, default 1000 */
    int64_t ready_backlog;     /* entries; more: not ready (< 0: no bound) */
    int64_t ready_age_ms;      /* oldest unapplied entry older: not ready
                                  (0: no bound) */
    int backlog_max;           /* entries counted at most, default 10000 */
} tp_exporter_options_t;

/* Starts the timer and (port >= 0) the listener, and logs "metrics:
 * listening on HOST:PORT". `store` and `metrics` are borrowed and must
 * outlive the exporter. Caller owns the result; NULL on failure (logged,
 * e.g. the port is taken). */
tp_exporter_t *tp_exporter_new(uv_loop_t *loop, tp_store_t *store, tp_metrics_t *metrics,
                               const tp_exporter_options_t *opts);
/* Stops the listener and timer. Destroy the store first (replies owed to
 * the exporter then arrive while it exists), the registry after. */
void tp_exporter_destroy(tp_exporter_t **self_p);

/* The registry (borrowed). */
tp_metrics_t *tp_exporter_metrics(tp_exporter_t *self);
/* Counts the round trips and errors of another Redis link of the process
 * too, and /readyz wants it connected as well (borrowed: it must outlive
 * the exporter). */
void tp_exporter_watch_store(tp_exporter_t *self, tp_store_t *store);
/* The store (borrowed), for refresh callbacks. */
tp_store_t *tp_exporter_store(tp_exporter_t *self);
/* The bound port, or -1 without a listener. */
int tp_exporter_port(const tp_exporter_t *self);
/* "host:port" of the listener into `out` (for the heartbeat). Returns 0, or
 * -1 with `out` empty when there is none or it does not fit. */
int tp_exporter_address(const tp_exporter_t *self, char *out, size_t outlen);

/* The consumer whose bus connection and queue the exporter reports;
 * borrowed until tp_exporter_destroy. Without one (intake), the bus counts
 * as connected: intake binds its sockets at start or does not start. */
void tp_exporter_watch_consumer(tp_exporter_t *self, tp_consumer_t *consumer);
/* `cb(self, arg)` on every refresh tick; `arg` borrowed. One per exporter. */
void tp_exporter_on_refresh(tp_exporter_t *self, tp_exporter_refresh_cb cb, void *arg);

/* A Redis read run on every refresh tick whose integer reply (or a string
 * holding one, HGET; nil counts 0) sets
 * `series` (borrowed from the exporter's registry): ZCARD of an index,
 * ZCOUNT of what is due. Several reads tracked into one series are summed
 * (e.g. one per bucket). An argument equal to TP_EXPORTER_NOW is replaced
 * by the time of the tick in ms. `argv` is copied. Returns 0 or -1. */
#define TP_EXPORTER_NOW "$now"
int tp_exporter_track(tp_exporter_t *self, tp_series_t *series, int argc,
                      const char *const *argv);

/* Options from [<svc>] metrics_listen (host:port, "off"; default
 * 127.0.0.1:9700 for intake, 9701.. in catalogue order; port 0: any free
 * port), ready_backlog (default 1000 entries, -1: none), ready_age
 * (default 0: none) and [metrics] refresh (1s), backlog_max (10000).
 * `out->host` is kept in static storage, one per service. Returns 0, or
 * -1 with a message naming the key in `err` (numbers and durations are
 * checked by tp_config_check). */
int tp_exporter_options_load(tp_config_t *cfg, tp_service_t svc,
                             tp_exporter_options_t *out, char *err, size_t errlen);

#endif
