/* fuzz_http.c: bytes -> the HTTP server's whole request path, over a real
 * socket: llhttp, the request arena, the size caps, pipelining, the answers
 * and the connection's end.
 *
 * http.c has no entry point but a listening socket, so the fuzzer is its own
 * client, on the same loop: one server started once on 127.0.0.1, port 0;
 * per input, a libuv TCP client connects, writes the input, shuts its write
 * side (EOF), reads every answer until the server closes, and the loop runs
 * until the server's connection handles are gone too, so no state crosses
 * inputs but the server's own. No sleeps: the loop only waits for loopback
 * I/O. The handler answers at once after reading every accessor: 200, or
 * 201 with an extra header for /created. The headers' hook reads them too
 * and answers paths under /refuse from the headers alone (401, its own
 * body and an extra header, the body unread).
 *
 * The caps are small (1 KiB of head, 4 KiB of body) so inputs of libFuzzer's
 * sizes reach 413 and 431; the paths are the same as with the defaults.
 * Invariants: the connection ends within GUARD_MS of the client's EOF (the
 * server must never hold a finished client), and the handler sees a body of
 * the length it is told, NUL-terminated after it.
 *
 * Each input uses its own source address in 127.1.0.0/16, so the client
 * ports left in TIME_WAIT never run out during a long run. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz.h"
#include "tp/http.h"

#define GUARD_MS 5000 /* below the server's own timeouts and libFuzzer's */
#define MAX_BODY 4096
#define MAX_HEADER 1024
#define SOURCES 65000 /* 127.1.0.1 .. */

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_shutdown_t shutdown;
    uv_timer_t guard;
    char *bytes; /* the input: libFuzzer's buffer must not outlive the call */
    size_t len;
    int tcp_open; /* until the client handle's close callback */
    size_t answer_bytes;
} client_t;

static uv_loop_t loop;
static tp_http_server_t *server;
static struct sockaddr_in server_addr;
static unsigned next_source;
static char readbuf[64 * 1024];

/* ---------------------------------------------------------------------
 * The server's handler */

static void on_request(tp_http_request_t *req, void *arg) {
    (void)arg;
    size_t len = (size_t)-1;
    const char *body = tp_http_body(req, &len);
    if (len > MAX_BODY) fuzz_die("a body of %zu bytes got past max_body", len);
    if (body[len] != '\0')
        fuzz_die("the body is not NUL-terminated after its %zu bytes", len);
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += (unsigned char)body[i];
    const char *strs[] = {tp_http_method(req),
                          tp_http_path(req),
                          tp_http_peer(req),
                          tp_http_query(req, "a"),
                          tp_http_query(req, ""),
                          tp_http_header(req, "host"),
                          tp_http_header(req, "content-type"),
                          tp_http_header(req, "x-tp-signature"),
                          tp_http_header(req, "")};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strs[i]) sum += (unsigned)strlen(strs[i]);
    char answer[64];
    int n = snprintf(answer, sizeof answer, "{\"sum\":%u}", sum);
    if (strcmp(tp_http_path(req), "/created") == 0)
        tp_http_respond(req, 201, "application/json", answer, (size_t)n,
                        "Retry-After: 1\r\n");
    else
        tp_http_respond_json(req, 200, answer);
}

/* Runs at the end of each request's headers: reads what is readable, and
 * refuses /refuse... from them. */
static void on_headers(tp_http_request_t *req, void *arg, tp_http_early_t *answer) {
    (void)arg;
    const char *path = tp_http_path(req);
    const char *strs[] = {tp_http_method(req), path, tp_http_query(req, "a"),
                          tp_http_header(req, "authorization")};
    size_t sum = 0;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strs[i]) sum += strlen(strs[i]);
    if (strncmp(path, "/refuse", 7) != 0) return;
    char json[64];
    snprintf(json, sizeof json, "{\"refused\":%zu}", sum);
    answer->status = 401;
    answer->json = strdup(json);
    if (!answer->json) fuzz_die("strdup failed");
    snprintf(answer->extra, sizeof answer->extra, "WWW-Authenticate: Bearer\r\n");
}

static void server_start(void) {
    if (uv_loop_init(&loop) != 0) fuzz_die("uv_loop_init failed");
    tp_http_options_t opts = {.host = "127.0.0.1",
                              .port = 0,
                              .max_body = MAX_BODY,
                              .max_header = MAX_HEADER,
                              .read_timeout_ms = 10000,
                              .idle_timeout_ms = 10000};
    server = tp_http_server_new(&loop, &opts, on_request, NULL);
    if (server == NULL) fuzz_die("tp_http_server_new failed");
    tp_http_server_on_headers(server, on_headers, NULL);
    uv_ip4_addr("127.0.0.1", tp_http_server_port(server), &server_addr);
}

/* ---------------------------------------------------------------------
 * The client */

static void on_client_close(uv_handle_t *handle) {
    client_t *c = handle->data;
    c->tcp_open = 0;
}

static void client_close(client_t *c) {
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_client_close);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    (void)handle, (void)suggested;
    *buf = uv_buf_init(readbuf, sizeof readbuf);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    client_t *c = stream->data;
    if (nread > 0) {
        c->answer_bytes += (size_t)nread;
        return;
    }
    if (nread < 0) client_close(c); /* EOF, or a reset: the server is done */
}

static void on_write(uv_write_t *w, int status) {
    (void)w, (void)status; /* a reset before every byte went out is fine */
}

static void on_shutdown(uv_shutdown_t *s, int status) {
    (void)s, (void)status;
}

static void on_connect(uv_connect_t *connect, int status) {
    client_t *c = connect->data;
    if (status < 0)
        fuzz_die("connect to the server failed: %s", uv_strerror(status));
    uv_buf_t buf = uv_buf_init(c->bytes, (unsigned)c->len);
    if (c->len > 0 &&
        uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0)
        fuzz_die("uv_write failed");
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        fuzz_die("uv_shutdown failed");
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        fuzz_die("uv_read_start failed");
}

static void on_guard(uv_timer_t *timer) {
    client_t *c = timer->data;
    fuzz_die(
        "the server still holds the connection %d ms after the client's EOF "
        "(%zu answer bytes read)",
        GUARD_MS, c->answer_bytes);
}

static void count_handle(uv_handle_t *handle, void *arg) {
    (void)handle;
    (*(int *)arg)++;
}

/* Handles on the loop: the listener alone once every connection is gone. */
static int loop_handles(void) {
    int n = 0;
    uv_walk(&loop, count_handle, &n);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (server == NULL) server_start();
    int baseline = loop_handles();

    client_t c;
    memset(&c, 0, sizeof c);
    c.len = size;
    c.bytes = malloc(size ? size : 1);
    if (c.bytes == NULL) abort();
    if (size) memcpy(c.bytes, data, size);

    uv_tcp_init(&loop, &c.tcp);
    c.tcp.data = &c;
    c.tcp_open = 1;
    uv_timer_init(&loop, &c.guard);
    c.guard.data = &c;
    uv_timer_start(&c.guard, on_guard, GUARD_MS, 0);

    struct sockaddr_in source;
    uv_ip4_addr("127.1.0.0", 0, &source);
    source.sin_addr.s_addr =
        htonl(ntohl(source.sin_addr.s_addr) + 1 + next_source++ % SOURCES);
    int rc = uv_tcp_bind(&c.tcp, (const struct sockaddr *)&source, 0);
    if (rc != 0)
        fuzz_die("bind to a 127.1/16 source failed: %s", uv_strerror(rc));
    c.connect.data = &c;
    rc = uv_tcp_connect(&c.connect, &c.tcp,
                        (const struct sockaddr *)&server_addr, on_connect);
    if (rc != 0) fuzz_die("uv_tcp_connect failed: %s", uv_strerror(rc));

    /* Until the client has closed and the server's connection is gone: then
     * only the guard is left beside the listener. */
    while (c.tcp_open || loop_handles() > baseline + 1)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&c.guard, NULL);
    while (loop_handles() > baseline)
        uv_run(&loop, UV_RUN_NOWAIT);
    free(c.bytes);
    return 0;
}
