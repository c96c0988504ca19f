/* http.c: a small HTTP/1.1 server on libuv, parsing with llhttp.
 *
 * Owns the listening socket, one connection object per client (an embedded
 * uv_tcp_t, uv_timer_t and llhttp parser) and one reusable request object per
 * connection. Answers 400 / 408 / 413 / 431 itself, before any handler runs.
 * Handles one request per connection at a time: reading stops while a request
 * waits for its answer, pipelined bytes wait in a per-connection buffer.
 *
 * Lifetimes: a connection is freed only in the close callback of its last
 * handle. A request waiting for its answer when its connection closes is
 * detached (req->conn = NULL) and then belongs to whoever holds it until
 * tp_http_respond, which frees it. The server struct outlives its listener and
 * every connection (reference count), so callbacks may always reach it.
 *
 * Never blocks the loop, never asserts on bytes from the network, never
 * buffers a body larger than max_body. Runs on the loop thread only. */
#include "tp/http.h"

#include <assert.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "llhttp.h"
#include "tp/log.h"

#define HTTP_DEFAULT_HOST "127.0.0.1"
#define HTTP_DEFAULT_MAX_BODY (1024u * 1024u)
#define HTTP_DEFAULT_MAX_HEADER (16u * 1024u)
#define HTTP_DEFAULT_READ_TIMEOUT_MS 10000
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 60000
#define HTTP_DEFAULT_MAX_CONNECTIONS 10000
#define HTTP_BACKLOG 511
#define HTTP_READ_BUFFER (64u * 1024u)
/* After answering with "Connection: close" we send FIN and keep reading
 * (discarding) for a while, so unread request bytes do not turn our close
 * into a RST that would destroy the answer before the client reads it. */
#define HTTP_LINGER_MS 2000
/* Buffers bigger than this are given back after each request. */
#define HTTP_ARENA_KEEP (64u * 1024u)
#define HTTP_HEADERS_KEEP 256u
/* ": " and CRLF around each header, counted against max_header. */
#define HTTP_HEADER_OVERHEAD 4u

typedef struct tp_http_conn tp_http_conn_t;

/* Offsets into the request's arena (it may move while it grows). */
typedef struct {
    size_t name, name_len, value, value_len;
} http_header_t;

typedef struct {
    size_t name, value;
} http_param_t;

struct tp_http_request {
    tp_http_conn_t *conn;       /* NULL once detached */
    const char *method;         /* static, from llhttp */
    /* url\0 name\0 value\0 ... body\0, offsets below point into it */
    char *arena;
    size_t len, cap;
    http_header_t *headers;
    size_t nheaders, headers_cap;
    http_param_t *params;
    size_t nparams, params_cap;
    size_t body, body_len;
    size_t head_bytes;          /* counted against max_header */
    unsigned in_field : 1;      /* a header name is being collected */
    unsigned in_value : 1;
    unsigned headers_done : 1;  /* later fields are trailers: ignored */
    unsigned keep_alive : 1;
    unsigned http10 : 1;
    unsigned head : 1;          /* HEAD: answer without body */
    void *user;                 /* the caller's, for this request only */
    char peer[64];
};

typedef enum {
    TIMER_NONE,
    TIMER_IDLE,   /* waiting for a request to begin */
    TIMER_HEAD,   /* a request has begun: its headers must complete */
    TIMER_BODY,   /* its headers are in: its body must complete */
    TIMER_WRITE,  /* our answer is stuck: the client does not read */
    TIMER_LINGER  /* closing: discarding input until EOF */
} http_timer_t;

struct tp_http_conn {
    uv_tcp_t tcp;               /* data = this */
    uv_timer_t timer;           /* data = this */
    uv_shutdown_t shutdown;
    llhttp_t parser;            /* data = this */
    tp_http_server_t *server;
    tp_http_request_t *req;     /* owned; NULL once detached */
    tp_http_conn_t *prev, *next;
    char *pend;                 /* received, not yet parsed (pipelining) */
    size_t pend_off, pend_len, pend_cap;
    unsigned writes;            /* uv_write requests in flight */
    unsigned served;
    int open_handles;
    int reject_status;          /* set by a parser callback before failing */
    char *reject_json;          /* its body when not the default, owned */
    char *reject_extra;         /* its extra header lines, owned */
    http_timer_t timer_mode;
    unsigned closing : 1;       /* uv_close called */
    unsigned busy : 1;          /* a request waits for tp_http_respond */
    unsigned parsing : 1;       /* inside conn_parse (maybe in the handler) */
    unsigned reading : 1;
    unsigned in_message : 1;    /* a request has begun, not completed */
    unsigned in_body : 1;       /* ... and its headers are complete */
    unsigned want_close : 1;    /* close once every write is done */
    unsigned write_blocked : 1; /* wait for the kernel before parsing on */
    unsigned lingering : 1;
    unsigned eof : 1;
};

struct tp_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;          /* data = this */
    tp_http_handler_cb handler;
    void *arg;
    size_t max_body, max_header;
    uint64_t header_timeout_ms, body_timeout_ms, idle_timeout_ms; /* 0: none */
    int max_connections;
    int nconns;                 /* connections not yet closing */
    int refs;                   /* listener + connection structs alive */
    int port;
    int destroying;
    tp_http_conn_t *conns;
    tp_http_status_cb status_cb; /* every answer's status, for metrics */
    void *status_arg;
    tp_http_headers_cb headers_cb; /* answers from the headers alone */
    void *headers_arg;
    /* Shared by every connection: a read callback consumes its bytes before
     * the next read begins (one thread, one loop). */
    char readbuf[HTTP_READ_BUFFER];
};

typedef struct {
    uv_write_t req;             /* data = connection */
    char data[];
} http_write_t;

static void conn_close(tp_http_conn_t *conn);
static void conn_drive(tp_http_conn_t *conn);
static void conn_arm_timer(tp_http_conn_t *conn);

/* ---------------------------------------------------------------------
 * Memory: out of memory aborts (the supervisor restarts the service). */

static void *xrealloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p) {
        tp_log_error("http: realloc(%zu) failed: out of memory", size);
        abort();
    }
    return p;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) {
        tp_log_error("http: calloc(%zu) failed: out of memory", n * size);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

/* ---------------------------------------------------------------------
 * Request object */

static tp_http_request_t *req_new(void) {
    return xcalloc(1, sizeof(tp_http_request_t));
}

static void req_free(tp_http_request_t *req) {
    if (!req)
        return;
    free(req->arena);
    free(req->headers);
    free(req->params);
    free(req);
}

/* Forgets the previous request, keeping modest buffers for the next. */
static void req_reset(tp_http_request_t *req) {
    if (req->cap > HTTP_ARENA_KEEP) {
        free(req->arena);
        req->arena = NULL;
        req->cap = 0;
    }
    if (req->headers_cap > HTTP_HEADERS_KEEP) {
        free(req->headers);
        req->headers = NULL;
        req->headers_cap = 0;
    }
    if (req->params_cap > HTTP_HEADERS_KEEP) {
        free(req->params);
        req->params = NULL;
        req->params_cap = 0;
    }
    req->method = NULL;
    req->user = NULL;
    req->len = 0;
    req->nheaders = 0;
    req->nparams = 0;
    req->body = 0;
    req->body_len = 0;
    req->head_bytes = 0;
    req->in_field = 0;
    req->in_value = 0;
    req->headers_done = 0;
    req->keep_alive = 0;
    req->http10 = 0;
    req->head = 0;
}

static void req_reserve(tp_http_request_t *req, size_t extra) {
    if (req->cap - req->len >= extra)
        return;
    size_t cap = req->cap ? req->cap : 1024;
    while (cap - req->len < extra)
        cap *= 2;
    req->arena = xrealloc(req->arena, cap);
    req->cap = cap;
}

static void req_append(tp_http_request_t *req, const char *at, size_t len) {
    if (len == 0) return; /* llhttp may call with nothing, arena still NULL */
    req_reserve(req, len);
    memcpy(req->arena + req->len, at, len);
    req->len += len;
}

static void req_terminate(tp_http_request_t *req) {
    req_reserve(req, 1);
    req->arena[req->len++] = '\0';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes [s, end) in place: %XX to a byte, '+' to a space; a malformed
 * escape stays as it is. Terminates the result; returns its length. */
static size_t query_decode(char *s, const char *end) {
    char *out = s;
    for (const char *p = s; p < end; p++) {
        if (*p == '+') {
            *out++ = ' ';
        } else if (*p == '%' && end - p >= 3 && hex_value(p[1]) >= 0 &&
                   hex_value(p[2]) >= 0) {
            *out++ = (char)(hex_value(p[1]) * 16 + hex_value(p[2]));
            p += 2;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* Splits the URL (at offset 0) into path and decoded query parameters, in
 * place: decoding only shrinks. Done once, before the handler runs, so the
 * accessors never move the arena. */
static void req_split_url(tp_http_request_t *req) {
    char *url = req->arena;
    char *hash = strchr(url, '#');
    if (hash)
        *hash = '\0';
    char *q = strchr(url, '?');
    if (!q)
        return;
    *q++ = '\0';
    while (*q) {
        char *amp = strchr(q, '&');
        char *seg_end = amp ? amp : q + strlen(q);
        if (seg_end > q) {
            char *eq = memchr(q, '=', (size_t)(seg_end - q));
            http_param_t param;
            param.name = (size_t)(q - req->arena);
            size_t name_len = query_decode(q, eq ? eq : seg_end);
            /* Without '=', the value is the empty string after the name. */
            param.value = param.name + name_len;
            if (eq) {
                query_decode(eq + 1, seg_end);
                param.value = (size_t)(eq + 1 - req->arena);
            }
            if (req->nparams == req->params_cap) {
                req->params_cap = req->params_cap ? req->params_cap * 2 : 8;
                req->params = xrealloc(req->params,
                                       req->params_cap * sizeof(http_param_t));
            }
            req->params[req->nparams++] = param;
        }
        if (!amp)
            break;
        q = amp + 1;
    }
}

static const char *req_header(const tp_http_request_t *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->arena + req->headers[i].name, name) == 0)
            return req->arena + req->headers[i].value;
    return NULL;
}

/* ---------------------------------------------------------------------
 * Server reference count */

static void server_unref(tp_http_server_t *server) {
    if (--server->refs == 0)
        free(server);
}

static void on_listener_close(uv_handle_t *handle) {
    server_unref(handle->data);
}

/* ---------------------------------------------------------------------
 * Answers */

static const char *status_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

static char *put_str(char *p, const char *s, size_t len) {
    memcpy(p, s, len);
    return p + len;
}

#define PUT_LIT(p, lit) put_str((p), (lit), sizeof(lit) - 1)

static char *put_uint(char *p, size_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void on_write(uv_write_t *wreq, int status) {
    tp_http_conn_t *conn = wreq->data;
    free((http_write_t *)wreq); /* wreq is its first member */
    conn->writes--;
    if (conn->closing)
        return;
    if (status < 0) {
        tp_log_debug("http: write to %s failed: %s", conn->req ? conn->req->peer : "?",
                     uv_strerror(status));
        conn_close(conn);
        return;
    }
    if (conn->write_blocked &&
        uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp) == 0)
        conn->write_blocked = 0;
    conn_drive(conn);
}

/* Queues `len` bytes prepared by the caller in `w` (which it gives up).
 * Returns 0, or -1 after closing the connection. */
static int conn_write(tp_http_conn_t *conn, http_write_t *w, size_t len) {
    uv_buf_t buf = uv_buf_init(w->data, (unsigned int)len);
    w->req.data = conn;
    int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_write);
    if (rc < 0) {
        tp_log_warn("http: uv_write failed: %s", uv_strerror(rc));
        free(w);
        conn_close(conn);
        return -1;
    }
    conn->writes++;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp) > 0)
        conn->write_blocked = 1;
    return 0;
}

/* Writes one answer in one uv_write. `body` and `extra` are copied. */
static int conn_send(tp_http_conn_t *conn, int status, const char *content_type,
                     const char *body, size_t len, const char *extra, int close,
                     int head, int http10) {
    int no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
    if (conn->server->status_cb) conn->server->status_cb(status, conn->server->status_arg);
    const char *reason = status_reason(status);
    size_t reason_len = strlen(reason);
    size_t type_len = content_type && !no_body ? strlen(content_type) : 0;
    size_t extra_len = extra ? strlen(extra) : 0;
    size_t body_copy = no_body || head ? 0 : len;
    size_t cap = 16 + reason_len + 2 + (type_len ? 16 + type_len : 0) + 40 + 26 +
                 extra_len + 2 + body_copy;

    http_write_t *w = xrealloc(NULL, sizeof *w + cap);
    char *p = w->data;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_uint(p, (size_t)status);
    *p++ = ' ';
    p = put_str(p, reason, reason_len);
    p = PUT_LIT(p, "\r\n");
    if (type_len) {
        p = PUT_LIT(p, "Content-Type: ");
        p = put_str(p, content_type, type_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (!no_body) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_uint(p, len);
        p = PUT_LIT(p, "\r\n");
    }
    if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (http10)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    if (extra_len)
        p = put_str(p, extra, extra_len);
    p = PUT_LIT(p, "\r\n");
    if (body_copy)
        p = put_str(p, body, body_copy);
    assert((size_t)(p - w->data) <= cap);
    return conn_write(conn, w, (size_t)(p - w->data));
}

/* Answers `status` and closes: the request is refused before any handler. */
static void conn_reject(tp_http_conn_t *conn, int status) {
    if (conn->closing || conn->want_close)
        return;
    tp_log_debug("http: %s: refused with %d",
                 conn->req ? conn->req->peer : "?", status);
    char body[96];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", status_reason(status));
    const char *json = conn->reject_json ? conn->reject_json : body;
    size_t json_len = conn->reject_json ? strlen(conn->reject_json) : (size_t)n;
    conn->in_message = 0;
    conn->want_close = 1;
    int rc = conn_send(conn, status, "application/json", json, json_len, conn->reject_extra,
                       1, 0, 0);
    free(conn->reject_json);
    free(conn->reject_extra);
    conn->reject_json = conn->reject_extra = NULL;
    if (rc == 0)
        conn_drive(conn);
}

/* ---------------------------------------------------------------------
 * Connection: reading, timers, closing */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    tp_http_conn_t *conn = handle->data;
    buf->base = conn->server->readbuf;
    buf->len = sizeof conn->server->readbuf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(tp_http_conn_t *conn) {
    if (conn->reading)
        return;
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (rc < 0) {
        tp_log_warn("http: uv_read_start failed: %s", uv_strerror(rc));
        conn_close(conn);
        return;
    }
    conn->reading = 1;
}

static void conn_read_stop(tp_http_conn_t *conn) {
    if (!conn->reading)
        return;
    uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->reading = 0;
}

static void on_timer(uv_timer_t *timer) {
    tp_http_conn_t *conn = timer->data;
    http_timer_t mode = conn->timer_mode;
    conn->timer_mode = TIMER_NONE;
    if ((mode == TIMER_HEAD || mode == TIMER_BODY) && conn->in_message) {
        conn_reject(conn, 408); /* slowloris */
        return;
    }
    /* idle, stalled writes, lingering, or no byte of a first request */
    conn_close(conn);
}

static void conn_set_timer(tp_http_conn_t *conn, http_timer_t mode, uint64_t ms) {
    if (mode == TIMER_NONE || ms == 0) {
        if (conn->timer_mode != TIMER_NONE)
            uv_timer_stop(&conn->timer);
        conn->timer_mode = TIMER_NONE;
        return;
    }
    if (conn->timer_mode == mode)
        return; /* already counting down from when this state began */
    uv_timer_start(&conn->timer, on_timer, ms, 0);
    conn->timer_mode = mode;
}

/* Derives the one timer a connection needs from its state. */
static void conn_arm_timer(tp_http_conn_t *conn) {
    tp_http_server_t *server = conn->server;
    if (conn->closing || conn->lingering)
        return;
    if (conn->writes && (conn->write_blocked || conn->want_close))
        conn_set_timer(conn, TIMER_WRITE, server->idle_timeout_ms);
    else if (conn->busy || conn->want_close)
        conn_set_timer(conn, TIMER_NONE, 0); /* the handler's time is its own */
    else if (conn->in_message && conn->in_body)
        conn_set_timer(conn, TIMER_BODY, server->body_timeout_ms);
    else if (conn->in_message)
        conn_set_timer(conn, TIMER_HEAD, server->header_timeout_ms);
    else /* a fresh connection must start a request within header_timeout */
        conn_set_timer(conn, TIMER_IDLE, conn->served ? server->idle_timeout_ms
                                                      : server->header_timeout_ms);
}

static void on_conn_close(uv_handle_t *handle) {
    tp_http_conn_t *conn = handle->data;
    if (--conn->open_handles > 0)
        return;
    tp_http_server_t *server = conn->server;
    req_free(conn->req); /* NULL when detached: its holder frees it */
    free(conn->reject_json);
    free(conn->reject_extra);
    free(conn->pend);
    free(conn);
    server_unref(server);
}

/* Closes now; in-flight writes are cancelled. A request waiting for its
 * answer is detached and stays valid until tp_http_respond. */
static void conn_close(tp_http_conn_t *conn) {
    if (conn->closing)
        return;
    conn->closing = 1;
    tp_http_server_t *server = conn->server;
    server->nconns--;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        server->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
    if (conn->busy && conn->req) {
        conn->req->conn = NULL;
        conn->req = NULL;
    }
    uv_close((uv_handle_t *)&conn->tcp, on_conn_close);
    uv_close((uv_handle_t *)&conn->timer, on_conn_close);
}

static void on_shutdown(uv_shutdown_t *sreq, int status) {
    tp_http_conn_t *conn = sreq->data;
    if (status < 0 && !conn->closing)
        conn_close(conn);
}

/* Every answer is out and the connection must end: FIN, then discard input
 * until the client closes or HTTP_LINGER_MS pass. */
static void conn_linger(tp_http_conn_t *conn) {
    if (conn->eof) {
        conn_close(conn);
        return;
    }
    conn->lingering = 1;
    conn->shutdown.data = conn;
    int rc = uv_shutdown(&conn->shutdown, (uv_stream_t *)&conn->tcp, on_shutdown);
    if (rc < 0) {
        tp_log_debug("http: uv_shutdown failed: %s", uv_strerror(rc));
        conn_close(conn);
        return;
    }
    conn->timer_mode = TIMER_NONE;
    uv_timer_stop(&conn->timer);
    uv_timer_start(&conn->timer, on_timer, HTTP_LINGER_MS, 0);
    conn->timer_mode = TIMER_LINGER;
    conn_read_start(conn);
}

/* ---------------------------------------------------------------------
 * Parsing */

static int conn_can_parse(const tp_http_conn_t *conn) {
    return !conn->closing && !conn->want_close && !conn->busy && !conn->write_blocked &&
           !conn->lingering;
}

/* Hands a complete request to the handler, which may answer at once (the
 * caller then parses on) or later. */
static void conn_dispatch(tp_http_conn_t *conn) {
    tp_http_request_t *req = conn->req;
    conn->busy = 1;
    conn->in_message = 0;
    conn_read_stop(conn);
    conn_arm_timer(conn);
    conn->server->handler(req, conn->server->arg);
}

/* Parses until the bytes are used up, a request waits for its answer, or the
 * connection must close. Returns the bytes consumed. */
static size_t conn_parse(tp_http_conn_t *conn, const char *data, size_t len) {
    const char *p = data;
    const char *end = data + len;
    conn->parsing = 1;
    while (p < end && conn_can_parse(conn)) {
        llhttp_errno_t err = llhttp_execute(&conn->parser, p, (size_t)(end - p));
        if (err == HPE_OK) {
            p = end;
        } else if (err == HPE_PAUSED) { /* a request is complete */
            p = llhttp_get_error_pos(&conn->parser);
            llhttp_resume(&conn->parser);
            conn_dispatch(conn);
        } else {
            int status = conn->reject_status ? conn->reject_status : 400;
            if (status == 400)
                tp_log_debug("http: %s: bad request: %s", conn->req->peer,
                             llhttp_errno_name(err));
            conn_reject(conn, status);
            p = end;
        }
    }
    conn->parsing = 0;
    return (size_t)(p - data);
}

/* Moves the connection on after a change: parses what is pending, then
 * reads or waits, and arms the timer for the new state. */
static void conn_drive(tp_http_conn_t *conn) {
    if (conn->closing || conn->lingering || conn->parsing)
        return;
    if (conn->pend_off < conn->pend_len && conn_can_parse(conn)) {
        size_t used = conn_parse(conn, conn->pend + conn->pend_off,
                                 conn->pend_len - conn->pend_off);
        if (conn->closing)
            return;
        conn->pend_off += used;
    }
    if (conn->want_close || conn->pend_off == conn->pend_len)
        conn->pend_off = conn->pend_len = 0;
    if (conn->want_close && conn->writes == 0) {
        conn_linger(conn);
        return;
    }
    if (conn_can_parse(conn) && conn->pend_len == 0)
        conn_read_start(conn);
    else
        conn_read_stop(conn);
    conn_arm_timer(conn);
}

/* Keeps bytes received after a complete request, for when it is answered.
 * Reading stops until they are used up, so this rarely holds more than one
 * read's worth; the buffer is reused. */
static void conn_keep_pending(tp_http_conn_t *conn, const char *at, size_t len) {
    if (conn->pend_off > 0) {
        memmove(conn->pend, conn->pend + conn->pend_off, conn->pend_len - conn->pend_off);
        conn->pend_len -= conn->pend_off;
        conn->pend_off = 0;
    }
    if (conn->pend_cap - conn->pend_len < len) {
        conn->pend_cap = conn->pend_len + len;
        conn->pend = xrealloc(conn->pend, conn->pend_cap);
    }
    memcpy(conn->pend + conn->pend_len, at, len);
    conn->pend_len += len;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    tp_http_conn_t *conn = stream->data;
    if (nread == 0 || conn->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            tp_log_debug("http: read from %s failed: %s", conn->req ? conn->req->peer : "?",
                         uv_strerror((int)nread));
        conn_read_stop(conn);
        conn->eof = 1;
        if (conn->writes && nread == UV_EOF && !conn->lingering) {
            /* half-closed: let the answers already queued go out first */
            conn->want_close = 1;
            conn->in_message = 0;
            conn_arm_timer(conn);
            return;
        }
        conn_close(conn);
        return;
    }
    if (conn->lingering)
        return; /* discarded */
    size_t used = conn_parse(conn, buf->base, (size_t)nread);
    if (conn->closing)
        return;
    if (used < (size_t)nread && !conn->want_close)
        conn_keep_pending(conn, buf->base + used, (size_t)nread - used);
    conn_drive(conn);
}

/* ---------------------------------------------------------------------
 * llhttp callbacks: collect the request into its arena */

static tp_http_conn_t *parser_conn(llhttp_t *parser) {
    return parser->data;
}

/* Counts head bytes; returns 0, or -1 with 431 decided. */
static int head_account(tp_http_conn_t *conn, size_t len) {
    tp_http_request_t *req = conn->req;
    req->head_bytes += len;
    if (req->head_bytes > conn->server->max_header) {
        conn->reject_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *parser) {
    tp_http_conn_t *conn = parser_conn(parser);
    req_reset(conn->req);
    conn->in_message = 1;
    conn->in_body = 0;
    conn_arm_timer(conn);
    return 0;
}

static int on_url(llhttp_t *parser, const char *at, size_t len) {
    tp_http_conn_t *conn = parser_conn(parser);
    if (head_account(conn, len) < 0)
        return HPE_USER;
    req_append(conn->req, at, len);
    return 0;
}

static int on_url_complete(llhttp_t *parser) {
    req_terminate(parser_conn(parser)->req);
    return 0;
}

static int on_header_field(llhttp_t *parser, const char *at, size_t len) {
    tp_http_conn_t *conn = parser_conn(parser);
    tp_http_request_t *req = conn->req;
    if (head_account(conn, len + (req->in_field ? 0 : HTTP_HEADER_OVERHEAD)) < 0)
        return HPE_USER;
    if (req->headers_done) {
        req->in_field = 1; /* trailers count, but are not kept */
        return 0;
    }
    if (!req->in_field) {
        if (req->nheaders == req->headers_cap) {
            req->headers_cap = req->headers_cap ? req->headers_cap * 2 : 16;
            req->headers =
                xrealloc(req->headers, req->headers_cap * sizeof(http_header_t));
        }
        http_header_t *h = &req->headers[req->nheaders++];
        h->name = req->len;
        h->name_len = 0;
        h->value = 0;
        h->value_len = 0;
        req->in_field = 1;
    }
    req_append(req, at, len);
    req->headers[req->nheaders - 1].name_len += len;
    return 0;
}

static int on_header_field_complete(llhttp_t *parser) {
    tp_http_request_t *req = parser_conn(parser)->req;
    if (req->in_field && !req->headers_done)
        req_terminate(req);
    req->in_field = 0;
    return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len) {
    tp_http_conn_t *conn = parser_conn(parser);
    tp_http_request_t *req = conn->req;
    if (head_account(conn, len) < 0)
        return HPE_USER;
    if (req->headers_done || req->nheaders == 0)
        return 0;
    http_header_t *h = &req->headers[req->nheaders - 1];
    if (!req->in_value) {
        h->value = req->len;
        h->value_len = 0;
        req->in_value = 1;
    }
    req_append(req, at, len);
    h->value_len += len;
    return 0;
}

static int on_header_value_complete(llhttp_t *parser) {
    tp_http_request_t *req = parser_conn(parser)->req;
    if (!req->headers_done && req->nheaders > 0) {
        http_header_t *h = &req->headers[req->nheaders - 1];
        if (!req->in_value) { /* empty value */
            h->value = req->len;
            h->value_len = 0;
        }
        /* llhttp skips leading whitespace; drop the trailing one */
        while (h->value_len > 0 && (req->arena[h->value + h->value_len - 1] == ' ' ||
                                    req->arena[h->value + h->value_len - 1] == '\t')) {
            h->value_len--;
            req->len--;
        }
        req_terminate(req);
    }
    req->in_value = 0;
    return 0;
}

/* The 100 Continue interim answer; a client asking for it waits before
 * sending its body. */
static void conn_continue(tp_http_conn_t *conn) {
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    http_write_t *w = xrealloc(NULL, sizeof *w + sizeof line);
    memcpy(w->data, line, sizeof line - 1);
    conn_write(conn, w, sizeof line - 1);
}

static int on_headers_complete(llhttp_t *parser) {
    tp_http_conn_t *conn = parser_conn(parser);
    tp_http_request_t *req = conn->req;
    req->headers_done = 1;
    int has_length = (parser->flags & F_CONTENT_LENGTH) != 0;
    if (has_length && parser->content_length > conn->server->max_body) {
        conn->reject_status = 413; /* refused before a body byte is read */
        return -1;
    }
    req->method = llhttp_method_name((llhttp_method_t)parser->method);
    req->head = parser->method == HTTP_HEAD;
    req->http10 = parser->http_major == 1 && parser->http_minor == 0;
    req_split_url(req); /* path and query, for the headers' callback too */
    tp_http_server_t *server = conn->server;
    if (server->headers_cb) {
        tp_http_early_t early = {0};
        server->headers_cb(req, server->headers_arg, &early);
        if (early.status) {
            conn->reject_status = early.status;
            conn->reject_json = early.json;
            if (early.extra[0]) conn->reject_extra = xstrdup(early.extra);
            return -1; /* answered below, the body unread */
        }
        free(early.json);
    }
    req->body = req->len;
    req->body_len = 0;
    if (has_length && parser->content_length > 0) {
        req_reserve(req, (size_t)parser->content_length + 1);
    }
    if ((has_length && parser->content_length > 0) || (parser->flags & F_CHUNKED)) {
        const char *expect = req_header(req, "expect");
        if (expect && strcasecmp(expect, "100-continue") == 0 && !req->http10) {
            conn_continue(conn);
            if (conn->closing)
                return -1;
        }
    }
    conn->in_body = 1; /* the body's own deadline starts now */
    conn_arm_timer(conn);
    return 0;
}

static int on_body(llhttp_t *parser, const char *at, size_t len) {
    tp_http_conn_t *conn = parser_conn(parser);
    tp_http_request_t *req = conn->req;
    if (len > conn->server->max_body - req->body_len) {
        conn->reject_status = 413; /* chunked, past the cap */
        return HPE_USER;
    }
    req_append(req, at, len);
    req->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *parser) {
    tp_http_conn_t *conn = parser_conn(parser);
    tp_http_request_t *req = conn->req;
    req_terminate(req); /* the body, for callers that read it as text */
    /* No protocol upgrades here: answer, then close. */
    req->keep_alive = llhttp_should_keep_alive(parser) && !parser->upgrade;
    conn->in_message = 0;
    return HPE_PAUSED; /* one request at a time: conn_parse dispatches it */
}

static const llhttp_settings_t http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------------------------------------------------------------------
 * Accepting */

static void on_refused_close(uv_handle_t *handle) {
    tp_http_server_t *server = handle->data;
    free(handle);
    server_unref(server);
}

/* Accepts and closes at once: over max_connections, or out of resources. */
static void server_refuse(tp_http_server_t *server) {
    uv_tcp_t *tcp = xcalloc(1, sizeof *tcp);
    int rc = uv_tcp_init(server->loop, tcp);
    if (rc < 0) {
        tp_log_warn("http: uv_tcp_init failed: %s", uv_strerror(rc));
        free(tcp);
        return;
    }
    tcp->data = server;
    server->refs++;
    rc = uv_accept((uv_stream_t *)&server->listener, (uv_stream_t *)tcp);
    if (rc < 0)
        tp_log_warn("http: uv_accept failed: %s", uv_strerror(rc));
    uv_close((uv_handle_t *)tcp, on_refused_close);
}

static void conn_peer(tp_http_conn_t *conn) {
    struct sockaddr_storage addr;
    int len = sizeof addr;
    char *peer = conn->req->peer;
    size_t cap = sizeof conn->req->peer;
    snprintf(peer, cap, "?");
    if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&addr, &len) < 0)
        return;
    if (addr.ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)&addr, peer, cap);
    else if (addr.ss_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)&addr, peer, cap);
}

static void on_connection(uv_stream_t *listener, int status) {
    tp_http_server_t *server = listener->data;
    if (status < 0) {
        tp_log_warn("http: accept on port %d failed: %s", server->port,
                    uv_strerror(status));
        return;
    }
    if (server->nconns >= server->max_connections) {
        tp_log_debug("http: %d connections: refusing one more", server->nconns);
        server_refuse(server);
        return;
    }

    tp_http_conn_t *conn = xcalloc(1, sizeof *conn);
    int rc = uv_tcp_init(server->loop, &conn->tcp);
    if (rc < 0) {
        tp_log_warn("http: uv_tcp_init failed: %s", uv_strerror(rc));
        free(conn);
        server_refuse(server);
        return;
    }
    conn->tcp.data = conn;
    conn->server = server;
    conn->open_handles = 1;
    server->refs++;
    uv_timer_init(server->loop, &conn->timer); /* cannot fail on unix */
    conn->timer.data = conn;
    conn->open_handles = 2;
    conn->req = req_new();
    conn->req->conn = conn;
    llhttp_init(&conn->parser, HTTP_REQUEST, &http_settings);
    conn->parser.data = conn;

    conn->next = server->conns;
    if (server->conns)
        server->conns->prev = conn;
    server->conns = conn;
    server->nconns++;

    rc = uv_accept(listener, (uv_stream_t *)&conn->tcp);
    if (rc < 0) {
        tp_log_warn("http: uv_accept failed: %s", uv_strerror(rc));
        conn_close(conn);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1); /* answers are small and complete */
    conn_peer(conn);
    conn_drive(conn);
}

/* ---------------------------------------------------------------------
 * Public API */

tp_http_server_t *tp_http_server_new(uv_loop_t *loop, const tp_http_options_t *opts,
                                     tp_http_handler_cb handler, void *arg) {
    assert(loop && handler);
    tp_http_options_t none = {0};
    if (!opts)
        opts = &none;
    const char *host = opts->host ? opts->host : HTTP_DEFAULT_HOST;
    if (opts->port < 0 || opts->port > 65535) {
        tp_log_error("http: port %d out of range", opts->port);
        return NULL;
    }

    struct sockaddr_storage addr;
    int rc = strchr(host, ':')
                 ? uv_ip6_addr(host, opts->port, (struct sockaddr_in6 *)&addr)
                 : uv_ip4_addr(host, opts->port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        tp_log_error("http: bad listen address %s: %s", host, uv_strerror(rc));
        return NULL;
    }

    /* libuv writes with write(2): a client that resets while pipelined
     * answers are still going out would kill the process with SIGPIPE.
     * Ignore it unless the service chose otherwise (as store.c does). */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);

    tp_http_server_t *self = xcalloc(1, sizeof *self);
    self->loop = loop;
    self->handler = handler;
    self->arg = arg;
    self->max_body = opts->max_body ? opts->max_body : HTTP_DEFAULT_MAX_BODY;
    self->max_header = opts->max_header ? opts->max_header : HTTP_DEFAULT_MAX_HEADER;
    /* 0: the default; negative: no timeout */
    int read_ms = opts->read_timeout_ms ? opts->read_timeout_ms
                                        : HTTP_DEFAULT_READ_TIMEOUT_MS;
    int head_ms = opts->header_timeout_ms ? opts->header_timeout_ms : read_ms;
    int body_ms = opts->body_timeout_ms ? opts->body_timeout_ms : read_ms;
    self->header_timeout_ms = head_ms < 0 ? 0 : (uint64_t)head_ms;
    self->body_timeout_ms = body_ms < 0 ? 0 : (uint64_t)body_ms;
    self->idle_timeout_ms = opts->idle_timeout_ms < 0 ? 0
                            : opts->idle_timeout_ms ? (uint64_t)opts->idle_timeout_ms
                                                    : HTTP_DEFAULT_IDLE_TIMEOUT_MS;
    self->max_connections =
        opts->max_connections > 0 ? opts->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;

    rc = uv_tcp_init(loop, &self->listener);
    if (rc < 0) {
        tp_log_error("http: uv_tcp_init failed: %s", uv_strerror(rc));
        free(self);
        return NULL;
    }
    self->listener.data = self;
    self->refs = 1;

    rc = uv_tcp_bind(&self->listener, (const struct sockaddr *)&addr, 0);
    if (rc < 0) {
        tp_log_error("http: bind %s:%d failed: %s", host, opts->port, uv_strerror(rc));
        goto fail_listen;
    }
    rc = uv_listen((uv_stream_t *)&self->listener, HTTP_BACKLOG, on_connection);
    if (rc < 0) {
        tp_log_error("http: listen on %s:%d failed: %s", host, opts->port,
                     uv_strerror(rc));
        goto fail_listen;
    }
    int len = sizeof addr;
    rc = uv_tcp_getsockname(&self->listener, (struct sockaddr *)&addr, &len);
    if (rc < 0) {
        tp_log_error("http: uv_tcp_getsockname failed: %s", uv_strerror(rc));
        goto fail_listen;
    }
    self->port = addr.ss_family == AF_INET6
                     ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                     : ntohs(((struct sockaddr_in *)&addr)->sin_port);
    return self;

fail_listen:
    /* The handle is registered with the loop: freed in its close callback. */
    uv_close((uv_handle_t *)&self->listener, on_listener_close);
    return NULL;
}

void tp_http_server_destroy(tp_http_server_t **self_p) {
    if (!self_p || !*self_p)
        return;
    tp_http_server_t *self = *self_p;
    *self_p = NULL;
    self->destroying = 1;
    uv_close((uv_handle_t *)&self->listener, on_listener_close);
    while (self->conns)
        conn_close(self->conns); /* unlinks it */
    /* freed by the last close callback */
}

int tp_http_server_port(const tp_http_server_t *self) {
    return self ? self->port : -1;
}

const char *tp_http_method(const tp_http_request_t *req) {
    return req->method ? req->method : "";
}

const char *tp_http_path(const tp_http_request_t *req) {
    return req->len ? req->arena : "";
}

const char *tp_http_query(const tp_http_request_t *req, const char *name) {
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->arena + req->params[i].name, name) == 0)
            return req->arena + req->params[i].value;
    return NULL;
}

const char *tp_http_header(const tp_http_request_t *req, const char *name) {
    return req_header(req, name);
}

const char *tp_http_body(const tp_http_request_t *req, size_t *len) {
    if (len)
        *len = req->body_len;
    return req->len ? req->arena + req->body : "";
}

const char *tp_http_peer(const tp_http_request_t *req) {
    return req->peer;
}

void tp_http_respond(tp_http_request_t *req, int status, const char *content_type,
                     const char *body, size_t len, const char *extra_headers) {
    if (!req)
        return;
    assert(status >= 100 && status <= 999);
    tp_http_conn_t *conn = req->conn;
    if (!conn) { /* the client or the server went away meanwhile */
        req_free(req);
        return;
    }
    assert(conn->busy && conn->req == req);
    conn->busy = 0;
    conn->served++;
    int close = !req->keep_alive;
    if (close)
        conn->want_close = 1;
    int rc = conn_send(conn, status, content_type, body, body ? len : 0,
                       extra_headers, close, req->head, req->http10);
    req_reset(req);
    if (rc == 0)
        conn_drive(conn); /* no-op when called from the handler: parsing goes on */
}

void tp_http_set_user(tp_http_request_t *req, void *user) { req->user = user; }

void *tp_http_user(const tp_http_request_t *req) { return req->user; }

void tp_http_server_on_headers(tp_http_server_t *self, tp_http_headers_cb cb, void *arg) {
    self->headers_cb = cb;
    self->headers_arg = arg;
}

void tp_http_server_on_status(tp_http_server_t *self, tp_http_status_cb cb, void *arg) {
    self->status_cb = cb;
    self->status_arg = arg;
}

void tp_http_respond_json(tp_http_request_t *req, int status, const char *json) {
    tp_http_respond(req, status, "application/json", json, json ? strlen(json) : 0, NULL);
}
