/* notifier_transfer.h: every outbound transfer of the notifier (HTTP for
 * webhooks and SMS gateways, SMTP for email) through libcurl's multi socket
 * interface, driven by the service's libuv loop.
 *
 * Owns one curl multi handle (its connection cache and DNS cache, so
 * connections to a receiver are reused), one uv_poll_t per socket curl asks
 * to watch, one uv_timer_t for curl's timeouts, and every transfer in
 * flight. One thread, many transfers at once (thousands; bounded by
 * max_inflight and the process's file descriptors). The channels
 * (notifier_channel.h) say what to send; this module only moves bytes.
 *
 * Must never: block the loop; follow redirects; speak anything but http,
 * https, smtp and smtps; retry (the caller owns retries and sends its
 * delivery id as Idempotency-Key or Message-ID); log URLs, headers, bodies
 * or addresses (webhook URLs often carry tokens). It logs only its own
 * faults; the outcome of each transfer goes to its callback, and the caller
 * logs it next to its delivery id.
 *
 * Process requirements: libcurl is initialised by tp_transfer_new
 * (curl_global_init) and released by tp_transfer_destroy (curl_global_cleanup);
 * curl counts the pairs, so several may coexist. Create and destroy
 * them on the loop thread before other threads start or after they stop
 * (a single-threaded service always does). Transfers set CURLOPT_NOSIGNAL, so
 * the process should ignore SIGPIPE (main: signal(SIGPIPE, SIG_IGN)), as
 * every process writing to sockets should. Names are resolved without
 * blocking only when libcurl has an asynchronous resolver (Debian's has the
 * threaded one); tp_transfer_new warns when it does not. */
#ifndef TP_NOTIFIER_TRANSFER_H
#define TP_NOTIFIER_TRANSFER_H

#include <stddef.h>
#include <uv.h>

typedef struct tp_transfer tp_transfer_t;

typedef struct tp_transfer_options {
    long timeout_ms;         /* whole request, queueing included; 10000 */
    long connect_timeout_ms; /* TCP (and TLS) connect; default 3000 */
    const char *user_agent;  /* default "touchpoint-notifier/1"; copied */
    int max_inflight;        /* accepted, not yet called back; default
                                10000; beyond, tp_transfer_post says -1 */
    int max_connections;     /* open connections in all; 0: no limit.
                                Requests beyond wait inside curl */
} tp_transfer_options_t;

/* Runs exactly once per accepted request, on the loop thread.
 * HTTP: `http_status` is the server's status (200, 404, 500...) and `error`
 * NULL when the server answered, whatever it answered. SMTP: `error` is NULL
 * when the server took the message (`http_status` its last reply, 250);
 * otherwise `http_status` is the reply code that refused it (550, 421...)
 * and `error` says which step failed. `http_status` is 0 and `error` a short
 * reason when no answer came (connection refused, timeout, bad URL,
 * "shutting down"). `error` is borrowed until the callback returns.
 * The response body is discarded. The callback may post new requests or
 * destroy the transfer client. */
typedef void (*tp_transfer_done_cb)(long http_status, const char *error,
                                   void *arg);

/* A transfer client on `loop` (borrowed; must outlive it). `opts`
 * may be NULL for the defaults; its strings are copied. Returns NULL on
 * failure (logged). Caller owns the result. */
tp_transfer_t *tp_transfer_new(uv_loop_t *loop, const tp_transfer_options_t *opts);

/* Completes every pending request at once with status 0 and error
 * "shutting down" (in no particular order), closes every connection and
 * frees the client once libuv is done with its handles: run the loop
 * afterwards. Accepts NULL and *self_p == NULL; sets *self_p to NULL. Safe
 * to call from a done callback. */
void tp_transfer_destroy(tp_transfer_t **self_p);

/* Starts POSTing `len` bytes of `body` (JSON) to `url`, without waiting.
 * Sends "Content-Type: application/json" unless `headers` names another
 * Content-Type. `headers` is NULL or a NULL-terminated array of
 * "Name: value" lines (no CR or LF). `url`, `body` and `headers` are copied:
 * the caller keeps ownership and may free them on return. `arg` is passed
 * to `cb` untouched.
 *
 * Returns 0: `cb` will run exactly once, never before this call returns.
 * Returns -1: `cb` will never run; tp_transfer_errstr says why (too many in
 * flight, an invalid header line, shutting down, a curl fault). A bad or
 * unreachable URL is not refused here: it is reported to `cb`. */
int tp_transfer_post(tp_transfer_t *self, const char *url, const char *body,
                    size_t len, const char *const *headers,
                    tp_transfer_done_cb cb, void *arg);

/* Sends `len` bytes of `body` with HTTP `method` ("POST", "PUT"; NULL is
 * POST) to `url`; otherwise as tp_transfer_post. */
int tp_transfer_http(tp_transfer_t *self, const char *method, const char *url,
                     const char *body, size_t len, const char *const *headers,
                     tp_transfer_done_cb cb, void *arg);

/* Where and how mail is sent. Strings borrowed for the call only. */
typedef struct tp_transfer_smtp {
    const char *url;      /* smtp://host:port (smtps:// for implicit TLS) */
    const char *username; /* "" or NULL: no AUTH */
    const char *password;
    int require_tls;      /* 0: STARTTLS when offered; 1: refuse without */
    int verify_peer;      /* check the server's certificate (default 1) */
} tp_transfer_smtp_t;

/* Sends the RFC 5322 message `message` (`len` bytes, CRLF line ends) from
 * envelope sender `mail_from` to the one envelope recipient `rcpt` through
 * `smtp`. Everything is copied; ownership stays with the caller. Returns
 * and calls back as tp_transfer_post. */
int tp_transfer_mail(tp_transfer_t *self, const tp_transfer_smtp_t *smtp,
                     const char *mail_from, const char *rcpt,
                     const char *message, size_t len, tp_transfer_done_cb cb,
                     void *arg);

/* Requests accepted whose callback has not run yet. */
size_t tp_transfer_inflight(const tp_transfer_t *self);

/* Why the last tp_transfer_post returned -1; "" before any failure.
 * Borrowed: valid until the next call on `self`. */
const char *tp_transfer_errstr(const tp_transfer_t *self);

#endif
