/* service.c: configuration to module options, endpoints, and the signal-
 * driven run of a service's loop. */
#include "tp/service.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tp/log.h"
#include "tp/notify.h"

#define ENDPOINT_BASE_PORT 5700

const char *tp_service_endpoint(tp_config_t *cfg, tp_service_t svc) {
    static char defaults[TP_SERVICE_COUNT][64];
    char key[64];
    if (svc == TP_SERVICE_INTAKE)
        snprintf(key, sizeof key, "ingress_endpoint");
    else
        snprintf(key, sizeof key, "%s_endpoint", tp_proto_service_name(svc));
    snprintf(defaults[svc], sizeof defaults[svc], "tcp://127.0.0.1:%d",
             ENDPOINT_BASE_PORT + (int)svc);
    return tp_config_str(cfg, "bus", key, defaults[svc]);
}

/* A secret from a file (first line), for passwords kept out of configs. */
static const char *read_secret_file(const char *path) {
    static char secret[512];
    FILE *f = fopen(path, "r");
    if (!f) {
        tp_log_error("redis: cannot open the password file %s", path);
        return NULL;
    }
    if (!fgets(secret, sizeof secret, f)) secret[0] = '\0';
    fclose(f);
    secret[strcspn(secret, "\r\n")] = '\0';
    return secret;
}

void tp_service_store_options(tp_config_t *cfg, tp_service_t svc, tp_store_options_t *out) {
    tp_service_store_options_as(cfg, tp_proto_service_name(svc), out);
}

void tp_service_store_options_as(tp_config_t *cfg, const char *name,
                                 tp_store_options_t *out) {
    memset(out, 0, sizeof *out);
    out->host = tp_config_str(cfg, "redis", "host", "127.0.0.1");
    out->port = (int)tp_config_int(cfg, "redis", "port", 6379, 1, 65535);
    out->user = tp_config_str(cfg, "redis", "user", NULL);
    out->password = tp_config_str(cfg, "redis", "password", NULL);
    const char *file = tp_config_str(cfg, "redis", "password_file", NULL);
    /* One ACL user per service (deploy/redis-acl.sh): the service's name,
     * its password in <secrets_dir>/<service>.pass. */
    static char acl_file[1024];
    if (tp_config_bool(cfg, "redis", "acl", 0)) {
        if (!out->user || !*out->user) out->user = name;
        if (!file || !*file) {
            snprintf(acl_file, sizeof acl_file, "%s/%s.pass",
                     tp_config_str(cfg, "redis", "secrets_dir", "var/secrets"), name);
            file = acl_file;
        }
    }
    if (file && *file) out->password = read_secret_file(file);
    if (out->user && !*out->user) out->user = NULL;
    if (out->password && !*out->password) out->password = NULL;
    out->ns = tp_config_str(cfg, "redis", "namespace", "tp:");
    out->reconnect_min_ms =
        (int)tp_config_ms(cfg, "redis", "reconnect_min", "100ms");
    out->reconnect_max_ms =
        (int)tp_config_ms(cfg, "redis", "reconnect_max", "5s");
    out->command_timeout_ms =
        (int)tp_config_ms(cfg, "redis", "command_timeout", "3s");
    /* Redis Cluster: host:port (and nodes) are seeds; see store.h. */
    out->cluster = tp_config_bool(cfg, "redis", "cluster", 0);
    out->nodes = tp_config_str(cfg, "redis", "nodes", NULL);
    if (out->nodes && !*out->nodes) out->nodes = NULL;
    out->wait_replicas =
        (int)tp_config_int(cfg, "redis", "wait_replicas", 0, 0, 16);
    out->wait_timeout_ms =
        (int)tp_config_ms(cfg, "redis", "wait_timeout", "1s");
}

void tp_service_consumer_options(tp_config_t *cfg, tp_service_t svc,
                                 const char *instance,
                                 tp_consumer_options_t *out) {
    const char *s = tp_proto_service_name(svc);
    memset(out, 0, sizeof *out);
    out->service = svc;
    out->endpoint = tp_service_endpoint(cfg, svc);
    out->instance = instance;
    out->hwm = tp_service_bus_hwm(cfg);
    out->max_inflight =
        (int)tp_config_int(cfg, s, "max_inflight", 1024, 1, 1000000);
    out->reconcile_lag_ms = tp_config_ms(cfg, s, "reconcile_lag", "2s");
    out->reconcile_interval_ms = tp_config_ms(cfg, s, "reconcile_interval", "1s");
    out->reconcile_batch =
        (int)tp_config_int(cfg, s, "reconcile_batch", 1000, 1, 100000);
    out->lease_ms = tp_config_ms(cfg, s, "lease", "10s");
    out->done_ttl_s = tp_config_ms(cfg, s, "done_ttl", "30d") / 1000;
}

int tp_service_bus_hwm(tp_config_t *cfg) {
    return (int)tp_config_int(cfg, "bus", "hwm", 100000, 0, 10000000);
}

void tp_service_emitter_options(tp_config_t *cfg, tp_service_t svc,
                                tp_emitter_options_t *out) {
    const char *s = tp_proto_service_name(svc);
    memset(out, 0, sizeof *out);
    out->service = svc;
    out->endpoint = tp_service_endpoint(cfg, TP_SERVICE_INTAKE);
    out->resend_after_ms = tp_config_ms(cfg, s, "resend_after", "2s");
    out->sweep_interval_ms = tp_config_ms(cfg, s, "outbox_sweep", "1s");
    out->hwm = tp_service_bus_hwm(cfg);
}

int64_t tp_service_heartbeat_interval(tp_config_t *cfg, tp_service_t svc) {
    /* [service] first, so a bad value there is named as service.heartbeat_interval */
    char def[32];
    snprintf(def, sizeof def, "%lldms",
             (long long)tp_config_ms(cfg, "service", "heartbeat_interval", "2s"));
    int64_t ms = tp_config_ms(cfg, tp_proto_service_name(svc), "heartbeat_interval", def);
    return ms > 0 ? ms : 2000;
}

tp_heartbeat_t *tp_service_heartbeat_new(uv_loop_t *loop, tp_config_t *cfg,
                                         tp_service_t svc, const char *instance,
                                         int64_t interval_ms) {
    tp_store_options_t store_opts;
    tp_service_store_options(cfg, svc, &store_opts);
    tp_heartbeat_options_t opts = {.service = tp_proto_service_name(svc),
                                   .instance = instance,
                                   .interval_ms = interval_ms};
    return tp_heartbeat_new(loop, &store_opts, &opts);
}

/* SIGINT and SIGTERM stay blocked from the start of main until
 * tp_service_run has its handlers in place; one that arrives meanwhile is
 * delivered then, and stops the service cleanly instead of killing it. */
static void stop_signals(int how) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(how, &set, NULL);
}

tp_config_t *tp_service_config(int argc, char **argv, tp_service_t svc,
                               char *instance, size_t instance_len) {
    stop_signals(SIG_BLOCK);
    const char *path = getenv("TP_CONFIG");
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
            i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "usage: tp-%s [-c CONFIG_FILE]\n"
                            "  every key can be overridden by TP_<SECTION>_<KEY>\n",
                    tp_proto_service_name(svc));
            return NULL;
        }
    }
    char err[256];
    tp_config_t *cfg = tp_config_new(path && *path ? path : NULL, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "tp-%s: %s\n", tp_proto_service_name(svc), err);
        return NULL;
    }
    const char *name = tp_proto_service_name(svc);
    char host[64] = "localhost", fallback[96];
    gethostname(host, sizeof host - 1);
    snprintf(fallback, sizeof fallback, "%s-%ld", host, (long)getpid());
    snprintf(instance, instance_len, "%s",
             tp_config_str(cfg, name, "instance", fallback));
    tp_log_level_t level = TP_LOG_INFO;
    const char *lv = tp_config_str(cfg, "log", "level", "info");
    if (tp_log_level_parse(lv, &level) < 0) {
        fprintf(stderr, "tp-%s: log.level: must be debug, info, warn or error\n",
                name);
        tp_config_destroy(&cfg);
        return NULL;
    }
    tp_log_init(name, instance, level);
    return cfg;
}

typedef struct run_state {
    uv_signal_t sigint, sigterm;
    tp_notify_t *notify;
    void (*stop)(void *arg);
    void *arg;
    int stopping;
} run_state_t;

static void signal_cb(uv_signal_t *h, int signum) {
    run_state_t *rs = h->data;
    if (rs->stopping) return;
    rs->stopping = 1;
    tp_log_info("stopping on signal %d", signum);
    uv_close((uv_handle_t *)&rs->sigint, NULL);
    uv_close((uv_handle_t *)&rs->sigterm, NULL);
    tp_notify_stopping(rs->notify);
    tp_notify_destroy(&rs->notify);
    if (rs->stop) rs->stop(rs->arg);
}

int tp_service_run(uv_loop_t *loop, void (*stop)(void *arg), void *arg) {
    return tp_service_run_ready(loop, NULL, NULL, stop, arg);
}

int tp_service_run_ready(uv_loop_t *loop, tp_notify_ready_cb ready,
                         void *ready_arg, void (*stop)(void *arg), void *arg) {
    signal(SIGPIPE, SIG_IGN);
    if (stop) {
        run_state_t rs = {.stop = stop, .arg = arg};
        /* the supervisor hears READY=1 only from a service that runs: a
         * failed start (stop == NULL) never says it */
        if (!(rs.notify = tp_notify_new(loop))) {
            stop(arg);
            uv_run(loop, UV_RUN_DEFAULT);
            uv_loop_close(loop);
            return -1;
        }
        tp_notify_ready(rs.notify, ready, ready_arg);
        uv_signal_init(loop, &rs.sigint);
        uv_signal_init(loop, &rs.sigterm);
        rs.sigint.data = rs.sigterm.data = &rs;
        uv_signal_start(&rs.sigint, signal_cb, SIGINT);
        uv_signal_start(&rs.sigterm, signal_cb, SIGTERM);
        stop_signals(SIG_UNBLOCK);
        uv_run(loop, UV_RUN_DEFAULT);
    }
    uv_run(loop, UV_RUN_DEFAULT); /* close callbacks of the teardown */
    int rc = uv_loop_close(loop);
    if (rc != 0) tp_log_warn("loop closed with handles open: %s", uv_strerror(rc));
    return rc == 0 ? 0 : -1;
}

/* ---- the consuming service's core ---- */

/* ---- bus security ---- */

/* Reads the key file `<dir>/<name>.<ext>` ([curve] public, secret) into
 * `public_key` and, when `secret_key` is not NULL, `secret_key`. */
static int key_file(const char *dir, const char *name, const char *ext, char *public_key,
                    char *secret_key) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    tp_config_t *k = tp_config_new(path, err, sizeof err);
    if (!k) {
        tp_log_error("bus: %s (make keys with: tpctl keygen curve --dir %s intake scoring scheduler "
                     "notifier ticketing)", err, dir);
        return -1;
    }
    snprintf(public_key, 41, "%s", tp_config_str(k, "curve", "public", ""));
    if (secret_key) snprintf(secret_key, 41, "%s", tp_config_str(k, "curve", "secret", ""));
    tp_config_destroy(&k);
    if (!public_key[0] || (secret_key && !secret_key[0])) {
        tp_log_error("bus: %s holds no %s key", path, secret_key ? "secret" : "public");
        return -1;
    }
    return 0;
}

int tp_service_bus_secure(tp_bus_t *bus, tp_config_t *cfg, tp_service_t svc) {
    if (!tp_config_bool(cfg, "bus", "curve", 1)) {
        tp_log_warn("bus: CURVE is off ([bus] curve = off): any local process can "
                    "talk to the services; a development setting only");
        return 0;
    }
    const char *dir = tp_config_str(cfg, "bus", "keys_dir", "");
    if (!*dir) {
        tp_log_error("bus: [bus] keys_dir is not set (CURVE is on; make keys with "
                     "tpctl keygen curve --dir DIR intake scoring scheduler notifier ticketing)");
        return -1;
    }
    char public_key[41], secret_key[41], server_key[41];
    const char *self = tp_proto_service_name(svc);
    if (key_file(dir, self, "key", public_key, secret_key) < 0) return -1;
    if (svc != TP_SERVICE_INTAKE) {
        if (key_file(dir, "intake", "pub", server_key, NULL) < 0) return -1;
        return tp_bus_curve_client(bus, public_key, secret_key, server_key);
    }
    if (tp_bus_curve_server(bus, public_key, secret_key) < 0) return -1;
    for (int s = 0; s < TP_SERVICE_COUNT; s++) {
        if (s == TP_SERVICE_INTAKE) continue;
        const char *name = tp_proto_service_name((tp_service_t)s);
        if (key_file(dir, name, "pub", public_key, NULL) < 0 ||
            tp_bus_curve_admit(bus, public_key, name) < 0)
            return -1;
    }
    /* outside producers on the ZeroMQ ingress (a phone system, an
     * integration): admitted by name, they may emit what intake accepts
     * from the outside world only */
    char names[1024];
    snprintf(names, sizeof names, "%s", tp_config_str(cfg, "bus", "producers", ""));
    for (char *save = NULL, *name = strtok_r(names, ", ", &save); name;
         name = strtok_r(NULL, ", ", &save)) {
        if (tp_proto_service(name) >= 0) {
            tp_log_error("bus: [bus] producers: %s is a service's name", name);
            return -1;
        }
        if (key_file(dir, name, "pub", public_key, NULL) < 0 ||
            tp_bus_curve_admit(bus, public_key, name) < 0)
            return -1;
    }
    return 0;
}

int tp_service_core_open(tp_service_core_t *core, tp_service_t svc, int argc,
                         char **argv) {
    memset(core, 0, sizeof *core);
    core->service = svc;
    core->cfg = tp_service_config(argc, argv, svc, core->instance,
                                  sizeof core->instance);
    if (!core->cfg) return -1;
    core->loop = uv_default_loop();
    tp_store_options_t store_opts;
    tp_emitter_options_t emitter_opts;
    tp_service_store_options(core->cfg, svc, &store_opts);
    tp_service_emitter_options(core->cfg, svc, &emitter_opts);
    tp_service_consumer_options(core->cfg, svc, core->instance,
                                &core->consumer_opts);
    core->heartbeat_interval_ms = tp_service_heartbeat_interval(core->cfg, svc);
    tp_exporter_options_t exporter_opts;
    char err[256];
    if (tp_exporter_options_load(core->cfg, svc, &exporter_opts, err, sizeof err) < 0) {
        tp_log_error("configuration: %s", err);
        tp_config_destroy(&core->cfg);
        return -1;
    }
    core->metrics = tp_metrics_new(tp_proto_service_name(svc), core->instance);
    core->consumer_opts.metrics = core->metrics;
    if ((core->store = tp_store_new(core->loop, &store_opts)) &&
        (core->exporter = tp_exporter_new(core->loop, core->store, core->metrics,
                                          &exporter_opts)) &&
        (core->bus = tp_bus_new(core->loop)) &&
        tp_service_bus_secure(core->bus, core->cfg, svc) == 0 &&
        (core->emitter = tp_emitter_new(core->loop, core->bus, core->store,
                                        &emitter_opts)))
        return 0;
    tp_service_core_stop_store(core);
    tp_service_core_close(core);
    tp_service_run(core->loop, NULL, NULL);
    tp_config_destroy(&core->cfg);
    return -1;
}

static uint64_t consumer_applied(void *arg) {
    tp_consumer_stats_t stats;
    tp_consumer_stats(arg, &stats);
    return stats.applied;
}

int tp_service_core_consume(tp_service_core_t *core, tp_consumer_tag_cb tag,
                            tp_consumer_apply_cb apply, void *arg) {
    char err[256];
    if (tp_config_check(core->cfg, err, sizeof err) < 0) {
        tp_log_error("configuration: %s", err);
        return -1;
    }
    core->consumer = tp_consumer_new(core->loop, core->bus, core->store,
                                     &core->consumer_opts, tag, apply, arg);
    if (!core->consumer) return -1;
    core->heartbeat = tp_service_heartbeat_new(core->loop, core->cfg, core->service,
                                               core->instance,
                                               core->heartbeat_interval_ms);
    if (!core->heartbeat) return -1;
    tp_heartbeat_set_applied(core->heartbeat, consumer_applied, core->consumer);
    char metrics_addr[96];
    if (tp_exporter_address(core->exporter, metrics_addr, sizeof metrics_addr) == 0)
        tp_heartbeat_set_metrics(core->heartbeat, metrics_addr);
    tp_exporter_watch_consumer(core->exporter, core->consumer);
    tp_log_info("%s %s consuming %s", tp_proto_service_name(core->service),
                core->instance, core->consumer_opts.endpoint);
    return 0;
}

void tp_service_core_stop_store(tp_service_core_t *core) {
    tp_heartbeat_destroy(&core->heartbeat); /* before the consumer it counts */
    tp_store_destroy(&core->store);
    tp_exporter_destroy(&core->exporter);
}

void tp_service_core_close(tp_service_core_t *core) {
    tp_consumer_destroy(&core->consumer);
    tp_emitter_destroy(&core->emitter);
    tp_bus_destroy(&core->bus);
    tp_metrics_destroy(&core->metrics);
}

int tp_service_core_run(tp_service_core_t *core, void (*stop)(void *arg),
                        void *arg) {
    int rc = tp_service_run(core->loop, stop, arg);
    tp_config_destroy(&core->cfg);
    return rc == 0 ? 0 : 1;
}

int tp_service_core_abort(tp_service_core_t *core, void (*stop)(void *arg),
                          void *arg) {
    stop(arg);
    tp_service_run(core->loop, NULL, NULL);
    tp_config_destroy(&core->cfg);
    return 1;
}
