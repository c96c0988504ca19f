/* tp-notify-sink: the receiving end of bench/notifier: an HTTP server (the
 * project's own, common/src/http.c) answering 204 to every POST and
 * counting them; GET /count answers the count. Owns its loop and server;
 * never looks at bodies.
 *
 *   tp-notify-sink PORT */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "tp/http.h"
#include "tp/log.h"

static unsigned long long received;

static void on_request(tp_http_request_t *req, void *arg) {
    (void)arg;
    if (strcmp(tp_http_method(req), "GET") == 0) {
        char body[32];
        int n = snprintf(body, sizeof body, "%llu", received);
        tp_http_respond(req, 200, "text/plain", body, (size_t)n, NULL);
        return;
    }
    received++;
    tp_http_respond(req, 204, NULL, NULL, 0, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
    (void)signum;
    uv_stop(s->loop);
}

int main(int argc, char **argv) {
    tp_log_stream(stderr); /* stdout is this tool's answer; logs go aside */
    if (argc != 2) {
        fprintf(stderr, "usage: tp-notify-sink PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    tp_http_options_t opts = {.port = atoi(argv[1]), .max_connections = 20000,
                              .idle_timeout_ms = 60000, .read_timeout_ms = 10000};
    tp_http_server_t *srv = tp_http_server_new(loop, &opts, on_request, NULL);
    if (!srv) return 1;
    uv_signal_t sig;
    uv_signal_init(loop, &sig);
    uv_signal_start(&sig, on_signal, SIGTERM);
    printf("listening on %d\n", tp_http_server_port(srv));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    tp_http_server_destroy(&srv);
    uv_close((uv_handle_t *)&sig, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
