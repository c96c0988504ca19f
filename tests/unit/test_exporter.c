/* test_exporter.c: the exporter's options from configuration (listen
 * address per service, "off", port 0, bad values named by key) and its
 * listener answering /healthz, /readyz and /metrics before Redis is there
 * (the store never connects: readiness says why). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tp/exporter.h"
#include "tp/log.h"

static tp_config_t *load(const char *text) {
    char path[] = "/tmp/test_exporter_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[256];
    tp_config_t *cfg = tp_config_new(path, err, sizeof err);
    unlink(path);
    if (!cfg) fail_msg("tp_config_new: %s", err);
    return cfg;
}

static void test_defaults_follow_the_catalogue(void **state) {
    (void)state;
    tp_config_t *cfg = load("[log]\nlevel = info\n");
    tp_exporter_options_t o;
    char err[256];
    assert_int_equal(tp_exporter_options_load(cfg, TP_SERVICE_INTAKE, &o, err, sizeof err), 0);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 9700);
    assert_int_equal(tp_exporter_options_load(cfg, TP_SERVICE_TICKETING, &o, err, sizeof err), 0);
    assert_int_equal(o.port, 9704);
    assert_int_equal(o.refresh_ms, 1000);
    assert_int_equal(o.ready_backlog, 1000);
    assert_int_equal(o.ready_age_ms, 0);
    assert_int_equal(o.backlog_max, 10000);
    assert_int_equal(tp_config_check(cfg, err, sizeof err), 0);
    tp_config_destroy(&cfg);
}

static void test_listen_values(void **state) {
    (void)state;
    tp_config_t *cfg = load("[scoring]\nmetrics_listen = 0.0.0.0:0\nready_backlog = -1\n"
                            "ready_age = 5m\n[scheduler]\nmetrics_listen = off\n"
                            "[notifier]\nmetrics_listen = 9703\n"
                            "[ticketing]\nmetrics_listen = host:70000\n"
                            "[metrics]\nrefresh = 250ms\n");
    tp_exporter_options_t o;
    char err[256] = "";
    assert_int_equal(tp_exporter_options_load(cfg, TP_SERVICE_SCORING, &o, err, sizeof err), 0);
    assert_string_equal(o.host, "0.0.0.0");
    assert_int_equal(o.port, 0);
    assert_int_equal(o.ready_backlog, -1);
    assert_int_equal(o.ready_age_ms, 300000);
    assert_int_equal(o.refresh_ms, 250);
    assert_int_equal(tp_exporter_options_load(cfg, TP_SERVICE_SCHEDULER, &o, err, sizeof err), 0);
    assert_int_equal(o.port, -1);
    assert_int_equal(tp_exporter_options_load(cfg, TP_SERVICE_NOTIFIER, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "notifier.metrics_listen"));
    assert_int_equal(tp_exporter_options_load(cfg, TP_SERVICE_TICKETING, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "ticketing.metrics_listen"));
    tp_config_destroy(&cfg);
}

/* ---- the listener, with a store that never connects ---- */

typedef struct {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    char request[128];
    char answer[8192];
    size_t len;
    int done;
} probe_t;

static void probe_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    probe_t *p = h->data;
    (void)hint;
    *buf = uv_buf_init(p->answer + p->len, (unsigned)(sizeof p->answer - 1 - p->len));
}

static void probe_closed(uv_handle_t *h) { ((probe_t *)h->data)->done = 1; }

static void probe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    probe_t *p = s->data;
    (void)buf;
    if (n > 0) {
        p->len += (size_t)n;
        p->answer[p->len] = '\0';
    } else if (n < 0) {
        uv_close((uv_handle_t *)s, probe_closed);
    }
}

static void probe_connected(uv_connect_t *c, int status) {
    probe_t *p = c->data;
    assert_int_equal(status, 0);
    uv_buf_t buf = uv_buf_init(p->request, (unsigned)strlen(p->request));
    uv_write(&p->write, (uv_stream_t *)&p->tcp, &buf, 1, NULL);
    uv_read_start((uv_stream_t *)&p->tcp, probe_alloc, probe_read);
}

/* GET `path` on 127.0.0.1:`port`; returns the whole answer (static). */
static const char *probe(uv_loop_t *loop, int port, const char *path) {
    static probe_t p;
    memset(&p, 0, sizeof p);
    p.loop = loop;
    snprintf(p.request, sizeof p.request,
             "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    uv_tcp_init(loop, &p.tcp);
    p.tcp.data = p.connect.data = &p;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_connect(&p.connect, &p.tcp, (struct sockaddr *)&sa, probe_connected);
    while (!p.done) uv_run(loop, UV_RUN_ONCE);
    return p.answer;
}

static void test_probes_without_redis(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    tp_store_options_t so = {.host = "127.0.0.1", .port = 1, .reconnect_min_ms = 50,
                             .reconnect_max_ms = 100};
    tp_store_t *store = tp_store_new(&loop, &so);
    assert_non_null(store);
    tp_metrics_t *metrics = tp_metrics_new("scoring", "s1");
    tp_exporter_options_t o = {.service = TP_SERVICE_SCORING, .port = 0, .ready_backlog = 10};
    tp_exporter_t *exp = tp_exporter_new(&loop, store, metrics, &o);
    assert_non_null(exp);
    int port = tp_exporter_port(exp);
    assert_true(port > 0);

    const char *a = probe(&loop, port, "/healthz");
    assert_non_null(strstr(a, "HTTP/1.1 200"));
    a = probe(&loop, port, "/readyz");
    assert_non_null(strstr(a, "HTTP/1.1 503"));
    assert_non_null(strstr(a, "\r\n\r\nredis: not connected\n"));
    a = probe(&loop, port, "/metrics");
    assert_non_null(strstr(a, "HTTP/1.1 200"));
    assert_non_null(strstr(a, "text/plain; version=0.0.4"));
    assert_non_null(strstr(a, "\ntp_redis_connected{service=\"scoring\",instance=\"s1\"} 0\n"));
    assert_non_null(strstr(a, "\ntp_ready{service=\"scoring\",instance=\"s1\"} 0\n"));
    assert_non_null(strstr(a, "# TYPE tp_reconcile_backlog gauge\n"));
    a = probe(&loop, port, "/nothing");
    assert_non_null(strstr(a, "HTTP/1.1 404"));

    tp_store_destroy(&store);
    tp_exporter_destroy(&exp);
    assert_null(exp);
    tp_exporter_destroy(&exp); /* twice: harmless */
    uv_run(&loop, UV_RUN_DEFAULT);
    tp_metrics_destroy(&metrics);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    tp_log_init("test_exporter", "", TP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_follow_the_catalogue),
        cmocka_unit_test(test_listen_values),
        cmocka_unit_test(test_probes_without_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
