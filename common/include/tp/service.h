/* service.h: the wiring every service shares: reading its configuration
 * sections into the options of the common modules, the bus endpoints, and
 * signal-driven shutdown. Owns nothing long-lived but the signal handles
 * of tp_service_run. Keeps main.c a table of contents. */
#ifndef TP_SERVICE_H
#define TP_SERVICE_H

#include <uv.h>

#include "tp/config.h"
#include "tp/consumer.h"
#include "tp/emit.h"
#include "tp/exporter.h"
#include "tp/heartbeat.h"
#include "tp/metrics.h"
#include "tp/notify.h"
#include "tp/proto.h"
#include "tp/store.h"

/* The endpoint of `svc`'s event feed ([bus] <svc>_endpoint), or of intake's
 * ingress for TP_SERVICE_INTAKE ([bus] ingress_endpoint). Defaults:
 * tcp://127.0.0.1:5700 (ingress), 5701.. in catalogue order. A connecting
 * side uses the same string. Borrowed from cfg. */
const char *tp_service_endpoint(tp_config_t *cfg, tp_service_t svc);

/* [redis] host, port, user, password (or password_file), namespace,
 * reconnect_min/max, command_timeout, cluster, nodes, wait_replicas,
 * wait_timeout. Strings borrowed from cfg. */
/* Redis options of service `svc` from [redis]; with acl = on, its own ACL
 * user (the service's name) and password (<secrets_dir>/<svc>.pass). */
void tp_service_store_options(tp_config_t *cfg, tp_service_t svc, tp_store_options_t *out);
/* The same for the ACL user `name` (a tool's own, e.g. "tpctl"): with
 * acl = on, user `name` and <secrets_dir>/<name>.pass. */
void tp_service_store_options_as(tp_config_t *cfg, const char *name,
                                 tp_store_options_t *out);
/* CURVE on `bus` from [bus] curve (default on) and keys_dir: intake is the
 * server and admits the services' public keys (<dir>/<svc>.pub) with the
 * service's name as User-Id; a service is a client with <dir>/<svc>.key
 * and <dir>/intake.pub. Call before making sockets. 0, or -1 (logged). */
int tp_service_bus_secure(tp_bus_t *bus, tp_config_t *cfg, tp_service_t svc);

/* [<svc>] reconcile_lag, reconcile_interval, reconcile_batch, lease,
 * max_inflight, done_ttl and [bus] hwm for the service's consumer. */
void tp_service_consumer_options(tp_config_t *cfg, tp_service_t svc,
                                 const char *instance,
                                 tp_consumer_options_t *out);
/* [bus] hwm: every ZeroMQ socket's high-water marks (default 100000). */
int tp_service_bus_hwm(tp_config_t *cfg);
/* [<svc>] resend_after, outbox_sweep for the service's emitter; its
 * queue to intake from [bus] hwm. */
void tp_service_emitter_options(tp_config_t *cfg, tp_service_t svc,
                                tp_emitter_options_t *out);

/* [<svc>] heartbeat_interval (default: [service] heartbeat_interval, 2s),
 * read now so tp_config_check covers it. */
int64_t tp_service_heartbeat_interval(tp_config_t *cfg, tp_service_t svc);
/* Starts `svc`'s heartbeat (tp/heartbeat.h) for `instance`, on a Redis
 * connection of its own with the service's options, beating every
 * `interval_ms`. Caller owns the result; NULL on failure (logged). */
tp_heartbeat_t *tp_service_heartbeat_new(uv_loop_t *loop, tp_config_t *cfg,
                                         tp_service_t svc, const char *instance,
                                         int64_t interval_ms);

/* Loads the configuration named by argv ("-c FILE", or TP_CONFIG, or none),
 * sets up logging ([log] level, [<svc>] instance or host-pid) and writes
 * the instance name into `instance`. Returns the config (caller owns) or
 * NULL after printing why. */
tp_config_t *tp_service_config(int argc, char **argv, tp_service_t svc,
                               char *instance, size_t instance_len);

/* Runs `loop` until SIGINT or SIGTERM, then calls `stop(arg)` (which
 * destroys the service's modules) and runs the loop until every handle is
 * closed. Returns 0 when the loop closed cleanly. Under systemd (NOTIFY_SOCKET)
 * it tells READY=1 as the loop starts, pings the watchdog, and tells
 * STOPPING=1 on the signal (tp/notify.h). */
int tp_service_run(uv_loop_t *loop, void (*stop)(void *arg), void *arg);
/* tp_service_run, but READY=1 waits until ready(ready_arg) returns nonzero
 * (polled on the loop; ready_arg borrowed until then or the signal): intake
 * is ready once it listens and has Redis. */
int tp_service_run_ready(uv_loop_t *loop, tp_notify_ready_cb ready,
                         void *ready_arg, void (*stop)(void *arg), void *arg);

/* What every consuming service is made of: its configuration, loop, Redis,
 * bus, outbox emitter and event consumer. main.c adds its own modules
 * between tp_service_core_open and tp_service_core_consume. */
typedef struct tp_service_core {
    tp_service_t service;
    char instance[64];
    tp_config_t *cfg;
    uv_loop_t *loop;
    tp_store_t *store;
    tp_bus_t *bus;
    tp_emitter_t *emitter;
    tp_consumer_t *consumer;
    tp_consumer_options_t consumer_opts;
    tp_heartbeat_t *heartbeat;     /* from consume until stop_store */
    int64_t heartbeat_interval_ms;
    tp_metrics_t *metrics;   /* every series carries service and instance */
    tp_exporter_t *exporter; /* /metrics, /healthz, /readyz ([<svc>]
                                metrics_listen); the service adds its own
                                gauges to `metrics` and refreshes them with
                                tp_exporter_on_refresh */
} tp_service_core_t;

/* Reads the configuration (argv or TP_CONFIG), sets up logging, and makes
 * the store, the bus, the emitter, the metrics registry and the exporter
 * (listening from here on: /readyz says 503 until consuming). Returns 0, or -1 after logging why
 * (what was made is torn down; the caller just exits 1). */
int tp_service_core_open(tp_service_core_t *core, tp_service_t svc, int argc,
                         char **argv);
/* Checks every configuration value read so far (stopping with a message
 * naming section.key), then starts consuming the service's events and
 * beating (the heartbeat's "applied" is the consumer's count). Returns
 * 0 or -1 (logged). */
int tp_service_core_consume(tp_service_core_t *core, tp_consumer_tag_cb tag,
                            tp_consumer_apply_cb apply, void *arg);
/* Closes Redis first: every reply still owed arrives as NULL, so work in
 * flight ends while the service's own modules still exist; then the
 * exporter (no scrape from here on). Also ends the heartbeat (its field is
 * removed: a clean stop). */
void tp_service_core_stop_store(tp_service_core_t *core);
/* Destroys the consumer, emitter, bus and the metrics registry; call after
 * the service's own modules are gone. */
void tp_service_core_close(tp_service_core_t *core);
/* Runs until SIGINT or SIGTERM, then `stop(arg)` (which calls the two
 * functions above around the service's own teardown). Frees the config.
 * Returns the process exit code. */
int tp_service_core_run(tp_service_core_t *core, void (*stop)(void *arg),
                        void *arg);
/* For a failed start: tears down what `stop` knows, runs the loop until
 * every handle is closed, frees the config. Returns 1. */
int tp_service_core_abort(tp_service_core_t *core, void (*stop)(void *arg),
                          void *arg);

#endif
