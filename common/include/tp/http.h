/* http.h: a small HTTP/1.1 server on libuv, parsing with llhttp.
 *
 * Owns the listening socket, its connections and their requests. Caps header
 * and body sizes (413 / 431 answered here, before any handler runs), cuts
 * off clients that stall mid-request (408: headers and body each have a
 * deadline, so trickling a byte at a time does not keep a connection),
 * closes idle keep-alive connections, and
 * handles one request per connection at a time (pipelined requests wait).
 * A handler may answer later, from another callback: the request stays
 * valid until tp_http_respond, even if the client has gone (the answer is
 * then dropped). Never blocks the loop. */
#ifndef TP_HTTP_H
#define TP_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct tp_http_server tp_http_server_t;
typedef struct tp_http_request tp_http_request_t;

/* Runs once per complete request. Must lead to exactly one tp_http_respond,
 * now or later. `req` is borrowed until then. */
typedef void (*tp_http_handler_cb)(tp_http_request_t *req, void *arg);

typedef struct tp_http_options {
    const char *host;          /* default "127.0.0.1" */
    int port;                  /* 0: any free port (see tp_http_server_port) */
    size_t max_body;           /* default 1 MiB; larger: 413 */
    size_t max_header;         /* all header bytes, default 16 KiB; 431 */
    int read_timeout_ms;       /* default of the two below, default 10 s */
    int header_timeout_ms;     /* request line and headers must be in within
                                  this of their first byte (and a new
                                  connection must send them); 408 */
    int body_timeout_ms;       /* the body must be in within this of the
                                  end of the headers; 408 */
    int idle_timeout_ms;       /* keep-alive connection idle; closed */
    int max_connections;       /* default 10000; beyond, accepted and closed */
} tp_http_options_t;

/* Listens now. Returns NULL on failure (logged, e.g. address in use).
 * Caller owns the result. */
tp_http_server_t *tp_http_server_new(uv_loop_t *loop,
                                     const tp_http_options_t *opts,
                                     tp_http_handler_cb handler, void *arg);
/* Stops listening and closes every connection; requests not yet answered
 * stay valid until answered. Run the loop afterwards. */
void tp_http_server_destroy(tp_http_server_t **self_p);
/* Runs with the status of every answer sent, the server's own (400, 408,
 * 413, 431) included, for metrics. One per server; `arg` borrowed. */
typedef void (*tp_http_status_cb)(int status, void *arg);
void tp_http_server_on_status(tp_http_server_t *self, tp_http_status_cb cb, void *arg);
/* An answer given from a request's headers alone (tp_http_headers_cb). */
typedef struct tp_http_early {
    int status;        /* 0: go on and read the body */
    char *json;        /* the answer's body (malloc'ed; the server takes it) */
    char extra[128];   /* extra header lines ("WWW-Authenticate: Bearer\r\n") */
} tp_http_early_t;
/* Runs once a request's headers are in, before a byte of its body is read
 * (method, path, query, headers and peer of `req` are readable; its body
 * is not). Setting answer->status answers the request at once and closes
 * the connection with its body unread: the handler never runs for it. So
 * a caller refuses a request it will refuse anyway (an unknown API key)
 * without holding its body. One per server; `arg` borrowed. */
typedef void (*tp_http_headers_cb)(tp_http_request_t *req, void *arg, tp_http_early_t *answer);
void tp_http_server_on_headers(tp_http_server_t *self, tp_http_headers_cb cb, void *arg);
/* The bound port (useful with port 0). */
int tp_http_server_port(const tp_http_server_t *self);

/* Request accessors; all borrowed until tp_http_respond. */
const char *tp_http_method(const tp_http_request_t *req);    /* "GET" */
const char *tp_http_path(const tp_http_request_t *req);      /* no query */
/* The %-decoded value of query parameter `name`, NULL when absent. */
const char *tp_http_query(const tp_http_request_t *req, const char *name);
/* Header `name` (case-insensitive), NULL when absent. */
const char *tp_http_header(const tp_http_request_t *req, const char *name);
const char *tp_http_body(const tp_http_request_t *req, size_t *len);
/* The peer's address as text. */
const char *tp_http_peer(const tp_http_request_t *req);
/* A pointer of the caller's kept with the request (borrowed, NULL until
 * set; cleared for the connection's next request): what the headers'
 * callback found, for the handler. */
void tp_http_set_user(tp_http_request_t *req, void *user);
void *tp_http_user(const tp_http_request_t *req);

/* Answers `req` and releases it. `body` is copied. `extra_headers` is NULL
 * or lines ending in "\r\n" ("Retry-After: 1\r\n"). */
void tp_http_respond(tp_http_request_t *req, int status,
                     const char *content_type, const char *body, size_t len,
                     const char *extra_headers);
/* Shorthand: a JSON body (copied). */
void tp_http_respond_json(tp_http_request_t *req, int status, const char *json);

#endif
