/* notifier_webhook.h: outbound webhook POSTs through libcurl's multi socket
 * interface, driven by the service's libuv loop.
 *
 * Owns one curl multi handle (its connection cache and DNS cache, so
 * connections to a receiver are reused), one uv_poll_t per socket curl asks
 * to watch, one uv_timer_t for curl's timeouts, and every request in flight.
 * One thread, many requests at once (thousands; bounded by max_inflight and
 * the process's file descriptors).
 *
 * Must never: block the loop; follow redirects; speak anything but http and
 * https; retry (the caller owns retries and sends its delivery id as
 * Idempotency-Key); log URLs, headers or bodies (webhook URLs often carry
 * tokens). It logs only its own faults; the outcome of each request goes to
 * its callback, and the caller logs it next to its delivery id.
 *
 * Process requirements: libcurl is initialised by tp_webhook_new
 * (curl_global_init) and released by tp_webhook_destroy (curl_global_cleanup);
 * curl counts the pairs, so several webhooks may coexist. Create and destroy
 * them on the loop thread before other threads start or after they stop
 * (a single-threaded service always does). Requests set CURLOPT_NOSIGNAL, so
 * the process should ignore SIGPIPE (main: signal(SIGPIPE, SIG_IGN)), as
 * every process writing to sockets should. Names are resolved without
 * blocking only when libcurl has an asynchronous resolver (Debian's has the
 * threaded one); tp_webhook_new warns when it does not. */
#ifndef TP_NOTIFIER_WEBHOOK_H
#define TP_NOTIFIER_WEBHOOK_H

#include <stddef.h>
#include <uv.h>

typedef struct tp_webhook tp_webhook_t;

typedef struct tp_webhook_options {
    long timeout_ms;         /* whole request, queueing included; 10000 */
    long connect_timeout_ms; /* TCP (and TLS) connect; default 3000 */
    const char *user_agent;  /* default "touchpoint-notifier/1"; copied */
    int max_inflight;        /* accepted, not yet called back; default
                                10000; beyond, tp_webhook_post says -1 */
    int max_connections;     /* open connections in all; 0: no limit.
                                Requests beyond wait inside curl */
} tp_webhook_options_t;

/* Runs exactly once per accepted request, on the loop thread.
 * `http_status` is the server's status (200, 404, 500...) and `error` NULL
 * when the server answered, whatever it answered; `http_status` is 0 and
 * `error` a short reason when no answer came (connection refused, timeout,
 * bad URL, "shutting down"). `error` is borrowed until the callback returns.
 * The response body is discarded. The callback may post new requests or
 * destroy the webhook. */
typedef void (*tp_webhook_done_cb)(long http_status, const char *error,
                                   void *arg);

/* A webhook client on `loop` (borrowed; must outlive the webhook). `opts`
 * may be NULL for the defaults; its strings are copied. Returns NULL on
 * failure (logged). Caller owns the result. */
tp_webhook_t *tp_webhook_new(uv_loop_t *loop, const tp_webhook_options_t *opts);

/* Completes every pending request at once with status 0 and error
 * "shutting down" (in no particular order), closes every connection and
 * frees the webhook once libuv is done with its handles: run the loop
 * afterwards. Accepts NULL and *self_p == NULL; sets *self_p to NULL. Safe
 * to call from a done callback. */
void tp_webhook_destroy(tp_webhook_t **self_p);

/* Starts POSTing `len` bytes of `body` (JSON) to `url`, without waiting.
 * Sends "Content-Type: application/json" unless `headers` names another
 * Content-Type. `headers` is NULL or a NULL-terminated array of
 * "Name: value" lines (no CR or LF). `url`, `body` and `headers` are copied:
 * the caller keeps ownership and may free them on return. `arg` is passed
 * to `cb` untouched.
 *
 * Returns 0: `cb` will run exactly once, never before this call returns.
 * Returns -1: `cb` will never run; tp_webhook_errstr says why (too many in
 * flight, an invalid header line, shutting down, a curl fault). A bad or
 * unreachable URL is not refused here: it is reported to `cb`. */
int tp_webhook_post(tp_webhook_t *self, const char *url, const char *body,
                    size_t len, const char *const *headers,
                    tp_webhook_done_cb cb, void *arg);

/* Requests accepted whose callback has not run yet. */
size_t tp_webhook_inflight(const tp_webhook_t *self);

/* Why the last tp_webhook_post returned -1; "" before any failure.
 * Borrowed: valid until the next call on `self`. */
const char *tp_webhook_errstr(const tp_webhook_t *self);

#endif
