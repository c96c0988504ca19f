/* test_http.c: the HTTP server against real sockets.
 *
 * Each test starts a server on a free port with its loop on its own thread;
 * the test thread is a plain blocking client with receive timeouts. The loop
 * thread alone touches the loop: the test stops it through a uv_async_t, and
 * every test ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tp/http.h"
#include "tp/log.h"

#define ASYNC_DELAY_MS 50
#define RECV_TIMEOUT_MS 5000
#define BIG_BODY (256 * 1024)

/* ---------------------------------------------------------------------
 * The server side: loop thread, handler */

typedef struct {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    int started;
    tp_http_server_t *server;
    int port;
    atomic_int handled;       /* handler calls */
    atomic_int answered_late; /* answers sent from a timer */
    atomic_int held_set;      /* /hold received */
    atomic_int held_answered; /* /hold answered after destroy */
    tp_http_request_t *held;  /* loop thread only */
    tp_http_headers_cb headers; /* set before fixture_start */
    atomic_int header_checks; /* its calls */
} fixture_t;

typedef struct {
    uv_timer_t timer;
    tp_http_request_t *req;
    fixture_t *fx;
} late_answer_t;

static void on_late_close(uv_handle_t *handle) {
    free(handle->data);
}

static void on_late(uv_timer_t *timer) {
    late_answer_t *late = timer->data;
    fixture_t *fx = late->fx;
    if (fx->server) {
        char body[256];
        const char *a = tp_http_query(late->req, "a");
        int n = snprintf(body, sizeof body, "late a=%s", a ? a : "-");
        tp_http_respond(late->req, 200, "text/plain", body, (size_t)n, NULL);
        atomic_fetch_add(&fx->answered_late, 1);
    } else { /* after destroy: the request is detached and still valid */
        const char *path = tp_http_path(late->req);
        int ok = strcmp(path, "/hold") == 0;
        tp_http_respond_json(late->req, 200, "{\"late\":true}");
        atomic_store(&fx->held_answered, ok ? 1 : -1);
    }
    uv_close((uv_handle_t *)&late->timer, on_late_close);
}

static void answer_later(fixture_t *fx, tp_http_request_t *req, uint64_t ms) {
    late_answer_t *late = calloc(1, sizeof *late);
    assert_non_null(late);
    late->req = req;
    late->fx = fx;
    uv_timer_init(&fx->loop, &late->timer);
    late->timer.data = late;
    uv_timer_start(&late->timer, on_late, ms, 0);
}

static const char *or_dash(const char *s) {
    return s ? s : "-";
}

static void on_request(tp_http_request_t *req, void *arg) {
    fixture_t *fx = arg;
    atomic_fetch_add(&fx->handled, 1);
    const char *path = tp_http_path(req);
    if (strcmp(path, "/async") == 0) {
        answer_later(fx, req, ASYNC_DELAY_MS);
    } else if (strcmp(path, "/hold") == 0) {
        fx->held = req;
        atomic_store(&fx->held_set, 1);
    } else if (strcmp(path, "/big") == 0) {
        static char big[BIG_BODY];
        memset(big, 'b', sizeof big);
        tp_http_respond(req, 200, "application/octet-stream", big, sizeof big, NULL);
    } else if (strcmp(path, "/echo") == 0) {
        size_t body_len;
        const char *body = tp_http_body(req, &body_len);
        char out[4096];
        int n = snprintf(out, sizeof out,
                         "m=%s p=%s a=%s b=%s c=%s d=%s h=%s e=[%s] peer=%s body=%.*s",
                         tp_http_method(req), path, or_dash(tp_http_query(req, "a")),
                         or_dash(tp_http_query(req, "b")),
                         or_dash(tp_http_query(req, "c")),
                         or_dash(tp_http_query(req, "d")),
                         or_dash(tp_http_header(req, "x-test")),
                         or_dash(tp_http_header(req, "X-EMPTY")), tp_http_peer(req),
                         (int)body_len, body);
        if (n >= (int)sizeof out)
            n = (int)sizeof out - 1;
        tp_http_respond(req, 200, "text/plain", out, (size_t)n,
                        "X-Served-By: test\r\n");
    } else if (strcmp(path, "/user") == 0) { /* what the headers' callback left */
        tp_http_respond(req, 200, "text/plain", tp_http_user(req) == fx ? "user=set" : "user=none",
                        tp_http_user(req) == fx ? 8 : 9, NULL);
    } else if (strcmp(path, "/len") == 0) {
        size_t body_len;
        const char *body = tp_http_body(req, &body_len);
        char out[64];
        /* the body is also readable as a string */
        int n = snprintf(out, sizeof out, "len=%zu strlen=%zu", body_len, strlen(body));
        tp_http_respond(req, 201, "text/plain", out, (size_t)n, NULL);
    } else {
        tp_http_respond_json(req, 404, "{\"error\":\"not found\"}");
    }
}

static void on_stop(uv_async_t *async) {
    fixture_t *fx = async->data;
    tp_http_server_destroy(&fx->server);
    tp_http_server_destroy(&fx->server); /* twice is harmless */
    uv_close((uv_handle_t *)&fx->stop, NULL);
    if (fx->held) { /* answered after its connection is gone and freed */
        answer_later(fx, fx->held, 20);
        fx->held = NULL;
    }
}

static void *loop_main(void *arg) {
    fixture_t *fx = arg;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void fixture_start(fixture_t *fx, const tp_http_options_t *opts) {
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_async_init(&fx->loop, &fx->stop, on_stop), 0);
    fx->stop.data = fx;
    fx->server = tp_http_server_new(&fx->loop, opts, on_request, fx);
    assert_non_null(fx->server);
    if (fx->headers) tp_http_server_on_headers(fx->server, fx->headers, fx);
    fx->port = tp_http_server_port(fx->server);
    assert_true(fx->port > 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, loop_main, fx), 0);
    fx->started = 1;
}

/* Destroys the server on its loop, waits for the loop to end. */
static int fixture_stop(fixture_t *fx) {
    if (!fx->started)
        return 0;
    fx->started = 0;
    uv_async_send(&fx->stop);
    pthread_join(fx->thread, NULL);
    return uv_loop_close(&fx->loop);
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    int rc = fixture_stop(fx);
    free(fx);
    return rc == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------
 * The client side: blocking sockets */

typedef struct {
    int fd;
    size_t len;
    char buf[64 * 1024];
} client_t;

typedef struct {
    int status;
    char head[4096];
    char body[8192];
    size_t body_len;
} response_t;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static client_t *client_open_rcvbuf(int port, int rcvbuf) {
    client_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    if (rcvbuf)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {RECV_TIMEOUT_MS / 1000, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return c;
}

static client_t *client_open(int port) {
    return client_open_rcvbuf(port, 0);
}

static void client_close(client_t **c_p) {
    if (*c_p) {
        close((*c_p)->fd);
        free(*c_p);
        *c_p = NULL;
    }
}

/* Sends everything; returns 0, or -1 once the server has closed. */
static int client_send(client_t *c, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void client_send_str(client_t *c, const char *s) {
    assert_int_equal(client_send(c, s, strlen(s)), 0);
}

static int client_fill(client_t *c) {
    if (c->len == sizeof c->buf)
        return -1;
    ssize_t n;
    do
        n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

/* Reads one response; `no_body`: it answers HEAD. Returns 0 or -1. */
static int client_read(client_t *c, response_t *r, int no_body) {
    char *end;
    memset(r, 0, sizeof *r);
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (client_fill(c) < 0)
            return -1;
    size_t head_len = (size_t)(end + 4 - c->buf);
    if (head_len >= sizeof r->head)
        return -1;
    memcpy(r->head, c->buf, head_len);
    if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1)
        return -1;
    size_t body_len = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    if (cl && !no_body)
        body_len = strtoul(cl + 17, NULL, 10);
    if (body_len >= sizeof r->body)
        return -1;
    while (c->len < head_len + body_len)
        if (client_fill(c) < 0)
            return -1;
    memcpy(r->body, c->buf + head_len, body_len);
    r->body_len = body_len;
    c->len -= head_len + body_len;
    memmove(c->buf, c->buf + head_len + body_len, c->len);
    return 0;
}

/* 1 when the server has closed (EOF or reset), 0 on timeout or data. */
static int client_eof(client_t *c) {
    if (c->len)
        return 0;
    char byte;
    ssize_t n;
    do
        n = recv(c->fd, &byte, 1, 0);
    while (n < 0 && errno == EINTR);
    return n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE));
}

static int has_header(const response_t *r, const char *line) {
    return strcasestr(r->head, line) != NULL;
}

static void assert_body(const response_t *r, const char *want) {
    char got[sizeof r->body + 1];
    memcpy(got, r->body, r->body_len);
    got[r->body_len] = '\0';
    assert_string_equal(got, want);
}

/* Polls `counter` until it reaches `want`; returns the last value. */
static int wait_for(atomic_int *counter, int want, int timeout_ms) {
    long deadline = now_ms() + timeout_ms;
    int v;
    while ((v = atomic_load(counter)) < want && now_ms() < deadline)
        sleep_ms(5);
    return v;
}

/* ---------------------------------------------------------------------
 * Tests */

static void test_get_query(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    response_t r;
    client_send_str(c, "GET /echo?a=hello%20world&b=x+y%2Bz&c&d=%zz%4 HTTP/1.1\r\n"
                       "Host: x\r\nX-TEST:   padded value  \r\nX-Empty:\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "\r\nContent-Type: text/plain\r\n"));
    assert_true(has_header(&r, "\r\nX-Served-By: test\r\n"));
    assert_false(has_header(&r, "Connection:"));
    assert_body(&r, "m=GET p=/echo a=hello world b=x y+z c= d=%zz%4 h=padded value "
                    "e=[] peer=127.0.0.1 body=");

    client_send_str(c, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 404);
    assert_true(has_header(&r, "\r\nContent-Type: application/json\r\n"));
    assert_body(&r, "{\"error\":\"not found\"}");
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_post_body(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    response_t r;
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
                       "hello=world");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_body(&r, "m=POST p=/echo a=- b=- c=- d=- h=- e=[-] peer=127.0.0.1 "
                    "body=hello=world");

    /* split across reads */
    client_send_str(c, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-");
    sleep_ms(20);
    client_send_str(c, "Length: 10\r\n\r\n01234");
    sleep_ms(20);
    client_send_str(c, "56789");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "m=PUT p=/echo a=- b=- c=- d=- h=- e=[-] peer=127.0.0.1 "
                    "body=0123456789");

    /* chunked */
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_body(&r, "m=POST p=/echo a=- b=- c=- d=- h=- e=[-] peer=127.0.0.1 "
                    "body=hello world");

    /* Expect: 100-continue gets its interim answer before the body is sent */
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                       "Content-Length: 3\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 100);
    client_send_str(c, "abc");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_body(&r, "m=POST p=/echo a=- b=- c=- d=- h=- e=[-] peer=127.0.0.1 body=abc");

    /* a large body, then a small request on the same connection */
    size_t big_len = 300 * 1024;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, 'x', big_len);
    char head[128];
    snprintf(head, sizeof head, "POST /len HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", big_len);
    client_send_str(c, head);
    assert_int_equal(client_send(c, big, big_len), 0);
    free(big);
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 201);
    assert_true(has_header(&r, "HTTP/1.1 201 Created\r\n"));
    assert_body(&r, "len=307200 strlen=307200");
    client_send_str(c, "POST /len HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "len=2 strlen=2");
    client_send_str(c, "GET /len HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "len=0 strlen=0");
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_keep_alive(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    response_t r;
    for (int i = 0; i < 2; i++) {
        client_send_str(c, "GET /echo?a=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(client_read(c, &r, 0), 0);
        assert_int_equal(r.status, 200);
        assert_false(has_header(&r, "Connection: close"));
    }
    assert_int_equal(atomic_load(&fx->handled), 2);

    /* HEAD: the length of the answer, not the answer */
    client_send_str(c, "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "\r\nContent-Length: %zu\r\n",
             strlen("m=HEAD p=/echo a=- b=- c=- d=- h=- e=[-] peer=127.0.0.1 body="));
    assert_true(has_header(&r, want));
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_body(&r, "m=GET p=/echo a=- b=- c=- d=- h=- e=[-] peer=127.0.0.1 body=");

    /* HTTP/1.0 asking for keep-alive keeps it */
    client_send_str(c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_true(has_header(&r, "\r\nConnection: keep-alive\r\n"));

    /* Connection: close is honoured */
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(client_eof(c));
    client_close(&c);

    /* HTTP/1.0 closes by default */
    c = client_open(fx->port);
    client_send_str(c, "GET /echo HTTP/1.0\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(client_eof(c));
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_pipelined(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    response_t r;
    /* the second one is answered late: the third must wait for it */
    client_send_str(c, "GET /echo?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /async?a=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /echo?a=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
                       "GET /echo?a=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       "GET /echo?a=5 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "m=GET p=/echo a=1 b=- c=- d=- h=- e=[-] peer=127.0.0.1 body=");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "late a=2");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "m=POST p=/echo a=3 b=- c=- d=- h=- e=[-] peer=127.0.0.1 body=hi");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "m=GET p=/echo a=4 b=- c=- d=- h=- e=[-] peer=127.0.0.1 body=");
    assert_true(has_header(&r, "Connection: close"));
    /* nothing is answered after "Connection: close" */
    assert_true(client_eof(c));
    assert_int_equal(atomic_load(&fx->handled), 4);
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_async_answer(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    response_t r;
    long t0 = now_ms();
    client_send_str(c, "GET /async?a=x%2Fy HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_true(now_ms() - t0 >= ASYNC_DELAY_MS - 5);
    assert_int_equal(r.status, 200);
    assert_body(&r, "late a=x/y");
    /* the connection goes on afterwards */
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_disconnect_before_async_answer(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    for (int i = 0; i < 5; i++) {
        client_t *c = client_open(fx->port);
        client_send_str(c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
        if (i % 2) { /* reset rather than FIN */
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        assert_int_equal(wait_for(&fx->handled, i + 1, 2000), i + 1);
        client_close(&c);
    }
    assert_int_equal(wait_for(&fx->answered_late, 5, 3000), 5);
    /* gone with a reset in the middle of a large answer: the server's write
     * fails (EPIPE or ECONNRESET), which must not kill the process */
    for (int i = 0; i < 5; i++) {
        client_t *c = client_open_rcvbuf(fx->port, 4096);
        client_send_str(c, "GET /big HTTP/1.1\r\n\r\nGET /big HTTP/1.1\r\n\r\n");
        char some[512];
        assert_true(recv(c->fd, some, sizeof some, 0) > 0);
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        client_close(&c);
    }
    /* gone (FIN) with pipelined requests queued: the first late answer meets
     * the closed socket and draws a reset, the next one gets EPIPE */
    for (int i = 0; i < 5; i++) {
        client_t *c = client_open(fx->port);
        client_send_str(c, "GET /async HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\n\r\n"
                           "GET /echo HTTP/1.1\r\n\r\n");
        sleep_ms(10);
        client_close(&c);
    }
    assert_int_equal(wait_for(&fx->answered_late, 10, 3000), 10);
    sleep_ms(100);
    /* still serving */
    client_t *c = client_open(fx->port);
    response_t r;
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_fragmented(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    response_t r;
    /* one byte per read: every llhttp span arrives in pieces */
    const char *req = "POST /echo?a=p%41rt&b=2#frag HTTP/1.1\r\nHost: x\r\n"
                      "X-Test: split value\r\nContent-Length: 4\r\n\r\nbody";
    for (const char *p = req; *p; p++) {
        assert_int_equal(client_send(c, p, 1), 0);
        sleep_ms(1);
    }
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_body(&r, "m=POST p=/echo a=pArt b=2 c=- d=- h=split value e=[-] "
                    "peer=127.0.0.1 body=body");

    /* many headers: the one looked up comes last */
    char head[4096];
    size_t n = (size_t)snprintf(head, sizeof head, "GET /echo HTTP/1.1\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(head + n, sizeof head - n, "X-H%d: %d\r\n", i, i);
    n += (size_t)snprintf(head + n, sizeof head - n, "x-tEsT: last\r\n\r\n");
    assert_int_equal(client_send(c, head, n), 0);
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "m=GET p=/echo a=- b=- c=- d=- h=last e=[-] peer=127.0.0.1 body=");
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

/* Reads and drops `len` bytes. Returns 0 or -1. */
static int client_drain(client_t *c, size_t len) {
    while (len > 0) {
        if (c->len == 0 && client_fill(c) < 0)
            return -1;
        size_t take = c->len < len ? c->len : len;
        memmove(c->buf, c->buf + take, c->len - take);
        c->len -= take;
        len -= take;
    }
    return 0;
}

static void test_half_close(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    response_t r;
    /* the client sends its requests and shuts down its side: every answer
     * still arrives, then the server closes */
    client_send_str(c, "GET /echo?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /async?a=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /echo?a=3 HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "m=GET p=/echo a=1 b=- c=- d=- h=- e=[-] peer=127.0.0.1 body=");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "late a=2");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "m=GET p=/echo a=3 b=- c=- d=- h=- e=[-] peer=127.0.0.1 body=");
    assert_true(client_eof(c));
    client_close(&c);

    for (int i = 0; i < 20; i++) {
        c = client_open(fx->port);
        client_send_str(c, "GET /big HTTP/1.1\r\n\r\n");
        shutdown(c->fd, SHUT_WR);
        assert_int_equal(client_read(c, &r, 1), 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(client_drain(c, BIG_BODY), 0);
        assert_true(client_eof(c));
        client_close(&c);
    }
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_slow_reader(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open_rcvbuf(fx->port, 16 * 1024);
    enum { REQUESTS = 40 };
    char reqs[REQUESTS * 40];
    size_t n = 0;
    for (int i = 0; i < REQUESTS; i++)
        n += (size_t)snprintf(reqs + n, sizeof reqs - n, "GET /big HTTP/1.1\r\n\r\n");
    assert_int_equal(client_send(c, reqs, n), 0);
    sleep_ms(300);
    /* The client reads nothing: the server stops answering once the kernel
     * buffers are full, instead of queueing 10 MiB of answers. */
    int handled = atomic_load(&fx->handled);
    assert_true(handled > 0 && handled < REQUESTS);

    response_t r;
    for (int i = 0; i < REQUESTS; i++) {
        assert_int_equal(client_read(c, &r, 1), 0); /* head only */
        assert_int_equal(r.status, 200);
        assert_int_equal(client_drain(c, BIG_BODY), 0);
    }
    assert_int_equal(atomic_load(&fx->handled), REQUESTS);
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_destroy_with_pending_request(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    client_t *idle = client_open(fx->port);
    client_send_str(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(wait_for(&fx->held_set, 1, 2000), 1);
    /* destroy closes both connections; the held request is answered
     * afterwards, from a timer, and just freed */
    assert_int_equal(fixture_stop(fx), 0);
    assert_int_equal(atomic_load(&fx->held_answered), 1);
    assert_true(client_eof(c));
    assert_true(client_eof(idle));
    client_close(&c);
    client_close(&idle);
}

static void test_body_too_large(void **state) {
    fixture_t *fx = *state;
    tp_http_options_t opts = {.max_body = 0}; /* default 1 MiB */
    fixture_start(fx, &opts);
    client_t *c = client_open(fx->port);
    response_t r;
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n");
    char chunk[1000];
    memset(chunk, 'z', sizeof chunk);
    client_send(c, chunk, sizeof chunk); /* refused without waiting for the rest */
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 413);
    assert_true(has_header(&r, "Connection: close"));
    /* The rest of the body is read and dropped (no reset that could destroy
     * the answer before a client reads it), then the server closes. */
    size_t sent = sizeof chunk;
    while (sent < 2097152 && client_send(c, chunk, sizeof chunk) == 0)
        sent += sizeof chunk;
    assert_true(sent >= 2097152);
    assert_true(client_eof(c));
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
    assert_int_equal(atomic_load(&fx->handled), 0);

    /* chunked, past a small cap */
    memset(fx, 0, sizeof *fx);
    opts.max_body = 1024;
    fixture_start(fx, &opts);
    c = client_open(fx->port);
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "400\r\n");
    char big[1024];
    memset(big, 'q', sizeof big);
    client_send(c, big, sizeof big);
    client_send_str(c, "\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 413);
    assert_true(client_eof(c));
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
    assert_int_equal(atomic_load(&fx->handled), 0);
}

/* Refuses any request but those carrying "X-Key: ok", from its headers. */
static void key_check(tp_http_request_t *req, void *arg, tp_http_early_t *answer) {
    fixture_t *fx = arg;
    atomic_fetch_add(&fx->header_checks, 1);
    const char *key = tp_http_header(req, "x-key");
    if (key && strcmp(key, "ok") == 0) {
        if (tp_http_header(req, "x-set-user")) tp_http_set_user(req, fx);
        return;
    }
    /* path and query are readable already */
    const char *a = tp_http_query(req, "a");
    char json[128];
    snprintf(json, sizeof json, "{\"error\":\"no key\",\"path\":\"%s\",\"a\":\"%s\"}",
             tp_http_path(req), a ? a : "-");
    answer->status = 401;
    answer->json = strdup(json);
    snprintf(answer->extra, sizeof answer->extra, "WWW-Authenticate: Bearer\r\n");
}

static void test_answer_from_headers(void **state) {
    fixture_t *fx = *state;
    fx->headers = key_check;
    tp_http_options_t opts = {.body_timeout_ms = 3000};
    fixture_start(fx, &opts);
    client_t *c = client_open(fx->port);
    response_t r;
    /* a body of 500 KB announced, none sent: refused at once, unread */
    long t0 = now_ms();
    client_send_str(c, "POST /echo?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_true(now_ms() - t0 < 1500); /* not after the body's deadline */
    assert_int_equal(r.status, 401);
    assert_body(&r, "{\"error\":\"no key\",\"path\":\"/echo\",\"a\":\"1\"}");
    assert_true(has_header(&r, "WWW-Authenticate: Bearer"));
    assert_true(has_header(&r, "Connection: close"));
    assert_true(client_eof(c));
    client_close(&c);

    /* with the key: the body is read and the handler runs, keep-alive */
    c = client_open(fx->port);
    client_send_str(c, "POST /echo?a=2 HTTP/1.1\r\nHost: x\r\nX-Key: ok\r\n"
                       "Content-Length: 5\r\n\r\nhello");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "a=2"));
    assert_non_null(strstr(r.body, "body=hello"));
    client_send_str(c, "GET /echo?a=3 HTTP/1.1\r\nHost: x\r\nX-Key: ok\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "a=3"));
    /* what the callback keeps with a request reaches its handler, and
     * that request's only: the next one on the connection starts without */
    client_send_str(c, "GET /user HTTP/1.1\r\nHost: x\r\nX-Key: ok\r\nX-Set-User: 1\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "user=set");
    client_send_str(c, "GET /user HTTP/1.1\r\nHost: x\r\nX-Key: ok\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_body(&r, "user=none");
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
    assert_int_equal(atomic_load(&fx->handled), 4);
    assert_int_equal(atomic_load(&fx->header_checks), 5);
}

static void test_headers_too_large(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    client_t *c = client_open(fx->port);
    response_t r;
    size_t n = 20 * 1024;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int len = snprintf(big, 64, "GET /echo HTTP/1.1\r\nX-Big: ");
    memset(big + len, 'a', n);
    memcpy(big + len + n, "\r\n\r\n", 4);
    client_send(c, big, (size_t)len + n + 4);
    free(big);
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 431);
    assert_true(client_eof(c));
    client_close(&c);

    /* so is the URL */
    c = client_open(fx->port);
    big = malloc(n + 64);
    assert_non_null(big);
    memcpy(big, "GET /", 5);
    memset(big + 5, 'u', n);
    memcpy(big + 5 + n, " HTTP/1.1\r\n\r\n", 13);
    client_send(c, big, n + 18);
    free(big);
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 431);
    assert_true(client_eof(c));
    client_close(&c);

    /* many small headers are counted too */
    c = client_open(fx->port);
    client_send_str(c, "GET /echo HTTP/1.1\r\n");
    for (int i = 0; i < 2000; i++) {
        char line[64];
        snprintf(line, sizeof line, "X-H%d: v\r\n", i);
        if (client_send(c, line, strlen(line)) < 0)
            break;
    }
    client_send(c, "\r\n", 2);
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 431);
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
    assert_int_equal(atomic_load(&fx->handled), 0);
}

static void test_slowloris_timeout(void **state) {
    fixture_t *fx = *state;
    tp_http_options_t opts = {.read_timeout_ms = 200};
    fixture_start(fx, &opts);
    client_t *c = client_open(fx->port);
    response_t r;
    long t0 = now_ms();
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: x\r\n");
    sleep_ms(100);
    client_send_str(c, "X-Slow: 1\r\n"); /* trickling does not extend the deadline */
    assert_int_equal(client_read(c, &r, 0), 0);
    long elapsed = now_ms() - t0;
    assert_int_equal(r.status, 408);
    assert_true(elapsed >= 180 && elapsed < 2000);
    assert_true(client_eof(c));
    client_close(&c);

    /* a connection that never sends a byte is closed silently */
    c = client_open(fx->port);
    assert_true(client_eof(c));
    assert_int_equal(c->len, 0);
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

/* Headers and body have deadlines of their own: headers sent just inside
 * theirs give the body its full time, and a body trickling a byte at a time
 * is still cut off when that time is up. */
static void test_body_timeout(void **state) {
    fixture_t *fx = *state;
    tp_http_options_t opts = {.header_timeout_ms = 300, .body_timeout_ms = 600};
    fixture_start(fx, &opts);
    client_t *c = client_open(fx->port);
    response_t r;
    long t0 = now_ms();
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\n");
    sleep_ms(200);
    client_send_str(c, "Content-Length: 100\r\n\r\n");
    long t_head = now_ms();
    for (int i = 0; i < 4; i++) { /* past the header deadline, within the body's */
        sleep_ms(100);
        client_send_str(c, "x");
    }
    assert_int_equal(client_read(c, &r, 0), 0);
    long elapsed = now_ms() - t0;
    assert_int_equal(r.status, 408);
    assert_true(now_ms() - t_head >= 550);
    assert_true(elapsed >= 700 && elapsed < 3000);
    assert_true(client_eof(c));
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
    assert_int_equal(atomic_load(&fx->handled), 0);
}

static void test_idle_timeout(void **state) {
    fixture_t *fx = *state;
    tp_http_options_t opts = {.idle_timeout_ms = 150};
    fixture_start(fx, &opts);
    client_t *c = client_open(fx->port);
    response_t r;
    client_send_str(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    long t0 = now_ms();
    assert_true(client_eof(c));
    long elapsed = now_ms() - t0;
    assert_true(elapsed >= 100 && elapsed < 2000);
    client_close(&c);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_malformed(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        client_t *c = client_open(fx->port);
        response_t r;
        client_send_str(c, bad[i]);
        assert_int_equal(client_read(c, &r, 0), 0);
        assert_int_equal(r.status, 400);
        assert_true(has_header(&r, "Connection: close"));
        assert_true(client_eof(c));
        client_close(&c);
    }
    assert_int_equal(fixture_stop(fx), 0);
    assert_int_equal(atomic_load(&fx->handled), 0);
}

static void test_max_connections(void **state) {
    fixture_t *fx = *state;
    tp_http_options_t opts = {.max_connections = 1};
    fixture_start(fx, &opts);
    client_t *first = client_open(fx->port);
    response_t r;
    client_send_str(first, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(first, &r, 0), 0);
    client_t *second = client_open(fx->port); /* the kernel accepts it */
    assert_true(client_eof(second));
    client_close(&second);
    client_send_str(first, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(first, &r, 0), 0);
    assert_int_equal(r.status, 200);
    client_close(&first);
    assert_int_equal(fixture_stop(fx), 0);
}

static void test_port_in_use(void **state) {
    fixture_t *fx = *state;
    fixture_start(fx, NULL);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    tp_http_options_t opts = {.port = fx->port};
    tp_http_server_t *other = tp_http_server_new(&loop, &opts, on_request, fx);
    assert_null(other);
    tp_http_server_destroy(&other); /* NULL is fine */
    tp_http_server_destroy(NULL);
    opts.port = 70000;
    assert_null(tp_http_server_new(&loop, &opts, on_request, fx));
    opts.port = 0;
    opts.host = "not-an-address";
    assert_null(tp_http_server_new(&loop, &opts, on_request, fx));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(fixture_stop(fx), 0);
}

int main(void) {
    tp_log_init("test_http", "0", TP_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragmented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_before_async_answer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_pending_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_from_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slowloris_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
