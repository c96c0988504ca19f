/* notifier_transfer.c: HTTP and SMTP transfers on curl's multi socket
 * interface.
 *
 * Owns the curl multi handle, a uv_poll_t per socket curl watches (each its
 * own allocation, freed in its close callback), the one uv_timer_t curl's
 * timeouts run on (embedded; the client is freed in its close callback),
 * and the requests in flight (a list, so destroy can fail them). Never
 * blocks the loop, never calls back from inside tp_transfer_post, never logs
 * a URL, header or body.
 *
 * The flow: tp_transfer_post adds an easy handle; curl tells us which
 * sockets to watch (on_curl_socket) and when to wake it (on_curl_timer);
 * libuv wakes us (on_poll, on_timeout) and we hand the event back to curl
 * with curl_multi_socket_action, then collect finished transfers with
 * curl_multi_info_read (transfer_drain). curl forbids calling it from inside
 * its own callbacks, so those only (re)arm libuv handles. */
#include "notifier_transfer.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tp/log.h"

#define DEFAULT_TIMEOUT_MS 10000L
#define DEFAULT_CONNECT_TIMEOUT_MS 3000L
#define DEFAULT_MAX_INFLIGHT 10000
#define DEFAULT_USER_AGENT "touchpoint-notifier/1"
#define MAX_HEADER_LINE 8192

/* One socket curl asked us to watch. */
typedef struct transfer_socket {
    uv_poll_t poll; /* data = this */
    curl_socket_t fd;
    tp_transfer_t *owner;
    struct transfer_socket *prev, *next;
} transfer_socket_t;

/* One accepted POST, from tp_transfer_post until its callback returns. */
typedef struct transfer_request {
    CURL *easy; /* CURLOPT_PRIVATE = this */
    struct curl_slist *headers;
    struct curl_slist *rcpt; /* SMTP envelope recipients */
    size_t len, sent;        /* body length; bytes uploaded (SMTP) */
    tp_transfer_done_cb cb;
    void *arg;
    struct transfer_request *prev, *next;
    char errbuf[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER */
    char body[];                  /* the caller's body, copied */
} transfer_request_t;

struct tp_transfer {
    uv_loop_t *loop;
    uv_timer_t timer; /* curl's timeout; data = self */
    CURLM *multi;
    transfer_request_t *requests; /* in flight */
    size_t inflight;
    size_t max_inflight;
    transfer_socket_t *sockets; /* being watched */
    long timeout_ms;
    long connect_timeout_ms;
    char *user_agent;
    int closing; /* destroy has begun: accept nothing, arm nothing */
    char errstr[128];
};

static void on_poll(uv_poll_t *poll, int status, int events);
static void on_timeout(uv_timer_t *timer);

/* Out of memory aborts; the supervisor restarts the service. */
static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) {
        tp_log_error("transfer: out of memory (%zu bytes)", n * size);
        abort();
    }
    return p;
}

static void set_errstr(tp_transfer_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_errstr(tp_transfer_t *self, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->errstr, sizeof self->errstr, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Sockets: curl says what to watch, libuv watches                     */
/* ------------------------------------------------------------------ */

static void on_socket_close(uv_handle_t *handle) {
    free(handle->data);
}

/* Stops watching and frees `sock` once libuv lets go of it. Called while
 * the fd is still open (curl announces REMOVE before closing), so libuv
 * can take it out of epoll cleanly. */
static void socket_close(tp_transfer_t *self, transfer_socket_t *sock) {
    if (sock->prev)
        sock->prev->next = sock->next;
    else
        self->sockets = sock->next;
    if (sock->next) sock->next->prev = sock->prev;
    uv_close((uv_handle_t *)&sock->poll, on_socket_close);
}

/* CURLMOPT_SOCKETFUNCTION. Returning -1 makes curl fail every transfer in
 * progress, which then completes through transfer_drain as usual. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
    tp_transfer_t *self = userp;
    transfer_socket_t *sock = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (sock) {
            curl_multi_assign(self->multi, fd, NULL);
            socket_close(self, sock);
        }
        return 0;
    }
    if (self->closing) return 0;
    if (!sock) {
        sock = xcalloc(1, sizeof *sock);
        int rc = uv_poll_init_socket(self->loop, &sock->poll, fd);
        if (rc != 0) {
            tp_log_error("transfer: uv_poll_init_socket(%d): %s", (int)fd,
                         uv_strerror(rc));
            free(sock);
            return -1;
        }
        sock->poll.data = sock;
        sock->fd = fd;
        sock->owner = self;
        sock->next = self->sockets;
        if (self->sockets) self->sockets->prev = sock;
        self->sockets = sock;
        curl_multi_assign(self->multi, fd, sock);
    }
    int events = 0;
    if (what & CURL_POLL_IN) events |= UV_READABLE;
    if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
    int rc = uv_poll_start(&sock->poll, events, on_poll);
    if (rc != 0) {
        tp_log_error("transfer: uv_poll_start(%d): %s", (int)fd,
                     uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: one non-repeating timer; -1 deletes it. A 0 ms
 * timer still waits for the next loop iteration, as curl asks (no calling
 * back into curl from here). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    tp_transfer_t *self = userp;
    if (self->closing) return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&self->timer);
        return 0;
    }
    int rc = uv_timer_start(&self->timer, on_timeout, (uint64_t)timeout_ms, 0);
    if (rc != 0) {
        tp_log_error("transfer: uv_timer_start: %s", uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* Takes `req` out of curl and out of the in-flight list. Its callback has
 * not run yet; the caller runs it, then frees `req`. */
static void request_detach(tp_transfer_t *self, transfer_request_t *req) {
    curl_multi_remove_handle(self->multi, req->easy);
    curl_easy_cleanup(req->easy);
    req->easy = NULL;
    curl_slist_free_all(req->headers); /* only after the easy handle */
    req->headers = NULL;
    curl_slist_free_all(req->rcpt);
    req->rcpt = NULL;
    if (req->prev)
        req->prev->next = req->next;
    else
        self->requests = req->next;
    if (req->next) req->next->prev = req->prev;
    req->prev = req->next = NULL;
    self->inflight--;
}

/* Runs the callbacks of finished transfers. Stops as soon as a callback
 * destroys the client: the multi handle is gone then, but `self` itself
 * lives until its timer's close callback, a later loop phase. */
static void transfer_drain(tp_transfer_t *self) {
    CURLMsg *msg;
    int left;
    while (!self->closing && (msg = curl_multi_info_read(self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result; /* msg dies with remove_handle */
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        transfer_request_t *req = (transfer_request_t *)priv;
        long status = 0;
        const char *error = NULL;
        /* the last reply code, also when a refusal ended the transfer
         * (SMTP 550 on RCPT TO); 0 when none came */
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        if (result != CURLE_OK)
            error = req->errbuf[0] ? req->errbuf : curl_easy_strerror(result);
        request_detach(self, req);
        req->cb(status, error, req->arg);
        free(req);
    }
}

/* Hands a socket event (or CURL_SOCKET_TIMEOUT) to curl, then collects. */
static void transfer_act(tp_transfer_t *self, curl_socket_t fd, int flags) {
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(self->multi, fd, flags, &running);
    if (mc != CURLM_OK)
        tp_log_error("transfer: curl_multi_socket_action: %s",
                     curl_multi_strerror(mc));
    transfer_drain(self);
}

static void on_poll(uv_poll_t *poll, int status, int events) {
    transfer_socket_t *sock = poll->data;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR; /* curl fails the connection */
    } else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    /* `sock` may be closed (not freed) during this call; not used after. */
    transfer_act(sock->owner, sock->fd, flags);
}

static void on_timeout(uv_timer_t *timer) {
    transfer_act(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

/* The response body is not wanted; accept and drop it. */
static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *arg) {
    return size * nmemb;
}

/* "Name: value": a non-empty token, a colon, no CR or LF anywhere. */
static int header_line_valid(const char *line) {
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    size_t n = 0;
    while (line[n] && line[n] != ':') {
        unsigned char ch = (unsigned char)line[n];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || strchr(tchar, ch)))
            return 0;
        n++;
    }
    if (n == 0 || line[n] != ':') return 0;
    if (strpbrk(line, "\r\n")) return 0;
    return strlen(line) <= MAX_HEADER_LINE;
}

/* Whether `headers` has a line for header `name` (case-insensitive). */
static int header_named(const char *const *headers, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return 1;
    return 0;
}

static struct curl_slist *slist_add(struct curl_slist *list, const char *s) {
    struct curl_slist *grown = curl_slist_append(list, s); /* copies `s` */
    if (!grown) {
        tp_log_error("transfer: out of memory (curl_slist_append)");
        abort();
    }
    return grown;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

tp_transfer_t *tp_transfer_new(uv_loop_t *loop,
                             const tp_transfer_options_t *opts) {
    assert(loop);
    static const tp_transfer_options_t defaults;
    if (!opts) opts = &defaults;

    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        tp_log_error("transfer: curl_global_init: %s", curl_easy_strerror(cc));
        return NULL;
    }
    const curl_version_info_data *ver = curl_version_info(CURLVERSION_NOW);
    if (!(ver->features & CURL_VERSION_ASYNCHDNS))
        tp_log_warn("transfer: libcurl %s resolves names synchronously; "
                    "a slow DNS server will block the loop",
                    ver->version);

    tp_transfer_t *self = xcalloc(1, sizeof *self);
    self->loop = loop;
    self->timeout_ms =
        opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    self->connect_timeout_ms = opts->connect_timeout_ms > 0
                                   ? opts->connect_timeout_ms
                                   : DEFAULT_CONNECT_TIMEOUT_MS;
    self->max_inflight =
        (size_t)(opts->max_inflight > 0 ? opts->max_inflight
                                        : DEFAULT_MAX_INFLIGHT);
    const char *ua = opts->user_agent ? opts->user_agent : DEFAULT_USER_AGENT;
    self->user_agent = xcalloc(1, strlen(ua) + 1);
    strcpy(self->user_agent, ua); /* sized just above */

    int rc;
    CURLMcode mc;
    self->multi = curl_multi_init();
    if (!self->multi) {
        tp_log_error("transfer: curl_multi_init failed");
        goto fail_multi;
    }
    mc =
        curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION,
                               on_curl_timer);
    if (mc == CURLM_OK)
        mc = curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
    if (mc == CURLM_OK && opts->max_connections > 0)
        mc = curl_multi_setopt(self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                               (long)opts->max_connections);
    if (mc != CURLM_OK) {
        tp_log_error("transfer: curl_multi_setopt: %s", curl_multi_strerror(mc));
        goto fail_setopt;
    }

    rc = uv_timer_init(loop, &self->timer);
    if (rc != 0) {
        tp_log_error("transfer: uv_timer_init: %s", uv_strerror(rc));
        goto fail_setopt;
    }
    self->timer.data = self;
    return self;

fail_setopt:
    curl_multi_cleanup(self->multi);
fail_multi:
    free(self->user_agent);
    free(self);
    curl_global_cleanup();
    return NULL;
}

static void on_timer_close(uv_handle_t *handle) {
    tp_transfer_t *self = handle->data;
    free(self->user_agent);
    free(self);
}

void tp_transfer_destroy(tp_transfer_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_transfer_t *self = *self_p;
    *self_p = NULL;
    if (self->closing) return; /* already being destroyed (a callback) */
    self->closing = 1;

    /* Take every request out of curl first, so their callbacks (run last)
     * see a client that refuses new work but is still valid memory. */
    transfer_request_t *pending = NULL;
    while (self->requests) {
        transfer_request_t *req = self->requests;
        request_detach(self, req);
        req->next = pending;
        pending = req;
    }
    /* Stop watching while the fds are still open; curl's own REMOVEs
     * during cleanup then find no socket context. */
    while (self->sockets) {
        curl_multi_assign(self->multi, self->sockets->fd, NULL);
        socket_close(self, self->sockets);
    }
    curl_multi_cleanup(self->multi); /* closes cached connections */
    self->multi = NULL;
    curl_global_cleanup();

    uv_timer_stop(&self->timer);
    uv_close((uv_handle_t *)&self->timer, on_timer_close);

    while (pending) {
        transfer_request_t *req = pending;
        pending = req->next;
        req->cb(0, "shutting down", req->arg);
        free(req);
    }
}

/* The message, a piece at a time (CURLOPT_READFUNCTION for SMTP). */
static size_t upload_body(char *buf, size_t size, size_t nitems, void *arg) {
    transfer_request_t *req = arg;
    size_t n = size * nitems, left = req->len - req->sent;
    if (n > left) n = left;
    memcpy(buf, req->body + req->sent, n);
    req->sent += n;
    return n;
}

/* A request holding a copy of `body`, its easy handle set with what every
 * transfer shares. NULL (errstr set) when refused. */
static transfer_request_t *request_new(tp_transfer_t *self, const char *body,
                                       size_t len, tp_transfer_done_cb cb,
                                       void *arg) {
    if (self->closing) {
        set_errstr(self, "shutting down");
        return NULL;
    }
    if (self->inflight >= self->max_inflight) {
        set_errstr(self, "too many requests in flight (%zu)", self->inflight);
        return NULL;
    }
    transfer_request_t *req = xcalloc(1, sizeof *req + len + 1);
    if (len) memcpy(req->body, body, len);
    req->len = len;
    req->cb = cb;
    req->arg = arg;
    req->easy = curl_easy_init();
    if (!req->easy) {
        tp_log_error("transfer: curl_easy_init failed");
        set_errstr(self, "curl_easy_init failed");
        free(req);
        return NULL;
    }
    CURL *easy = req->easy;
    int bad = 0;
    bad |= curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, self->timeout_ms) !=
           CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                            self->connect_timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    /* answers are short and dropped: a small receive buffer (curl's default
     * is 16 KiB per transfer) keeps thousands in flight cheap */
    bad |= curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 4096L) != CURLE_OK;
    bad |=
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)req) != CURLE_OK;
    if (bad) {
        tp_log_error("transfer: curl_easy_setopt failed");
        set_errstr(self, "curl_easy_setopt failed");
        curl_easy_cleanup(easy);
        free(req);
        return NULL;
    }
    return req;
}

static void request_free(transfer_request_t *req) {
    curl_easy_cleanup(req->easy);
    curl_slist_free_all(req->headers);
    curl_slist_free_all(req->rcpt);
    free(req);
}

/* Hands `req` to curl. Returns 0, or -1 (req freed, errstr set). */
static int request_start(tp_transfer_t *self, transfer_request_t *req,
                         int setopt_failed) {
    if (setopt_failed) {
        tp_log_error("transfer: curl_easy_setopt failed");
        set_errstr(self, "curl_easy_setopt failed");
        request_free(req);
        return -1;
    }
    CURLMcode mc = curl_multi_add_handle(self->multi, req->easy);
    if (mc != CURLM_OK) {
        tp_log_error("transfer: curl_multi_add_handle: %s",
                     curl_multi_strerror(mc));
        set_errstr(self, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        request_free(req);
        return -1;
    }
    req->next = self->requests;
    if (self->requests) self->requests->prev = req;
    self->requests = req;
    self->inflight++;
    return 0;
}

static int set_protocols(CURL *easy, const char *list, long mask) {
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string form */
    (void)mask;
    return curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, list) != CURLE_OK;
#else
    (void)list;
    return curl_easy_setopt(easy, CURLOPT_PROTOCOLS, mask) != CURLE_OK;
#endif
}

int tp_transfer_post(tp_transfer_t *self, const char *url, const char *body,
                     size_t len, const char *const *headers,
                     tp_transfer_done_cb cb, void *arg) {
    return tp_transfer_http(self, "POST", url, body, len, headers, cb, arg);
}

int tp_transfer_http(tp_transfer_t *self, const char *method, const char *url,
                     const char *body, size_t len, const char *const *headers,
                     tp_transfer_done_cb cb, void *arg) {
    assert(self && url && cb && (body || len == 0));
    if (!method) method = "POST";
    for (size_t i = 0; headers && headers[i]; i++)
        if (!header_line_valid(headers[i])) {
            set_errstr(self, "invalid header line %zu", i);
            return -1;
        }
    if (!*method ||
        strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method)) {
        set_errstr(self, "invalid method");
        return -1;
    }
    transfer_request_t *req = request_new(self, body, len, cb, arg);
    if (!req) return -1;

    for (size_t i = 0; headers && headers[i]; i++)
        req->headers = slist_add(req->headers, headers[i]);
    if (!header_named(headers, "Content-Type"))
        req->headers =
            slist_add(req->headers, "Content-Type: application/json");
    if (!header_named(headers, "Expect")) /* no 100-continue round trip */
        req->headers = slist_add(req->headers, "Expect:");

    CURL *easy = req->easy;
    int bad = 0;
    bad |= curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_POST, 1L) != CURLE_OK;
    if (strcmp(method, "POST") != 0)
        bad |= curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t)len) != CURLE_OK;
    bad |=
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, &req->body[0]) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers) != CURLE_OK;
    bad |=
        curl_easy_setopt(easy, CURLOPT_USERAGENT, self->user_agent) != CURLE_OK;
    bad |= set_protocols(easy, "http,https",
                         (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    return request_start(self, req, bad);
}

int tp_transfer_mail(tp_transfer_t *self, const tp_transfer_smtp_t *smtp,
                     const char *mail_from, const char *rcpt,
                     const char *message, size_t len, tp_transfer_done_cb cb,
                     void *arg) {
    assert(self && smtp && smtp->url && mail_from && rcpt && cb && message);
    if (strpbrk(rcpt, "\r\n<>") || strpbrk(mail_from, "\r\n<>") || !*rcpt) {
        set_errstr(self, "invalid address");
        return -1;
    }
    transfer_request_t *req = request_new(self, message, len, cb, arg);
    if (!req) return -1;
    char angle[600];
    snprintf(angle, sizeof angle, "<%s>", rcpt);
    req->rcpt = slist_add(req->rcpt, angle);
    snprintf(angle, sizeof angle, "<%s>", mail_from);

    CURL *easy = req->easy;
    int bad = 0;
    bad |= curl_easy_setopt(easy, CURLOPT_URL, smtp->url) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_MAIL_FROM, angle) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, req->rcpt) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_READFUNCTION, upload_body) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_READDATA, (void *)req) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len) !=
           CURLE_OK;
    /* STARTTLS when the server offers it; with require_tls, never in clear */
    bad |= curl_easy_setopt(easy, CURLOPT_USE_SSL,
                            (long)(smtp->require_tls ? CURLUSESSL_ALL
                                                     : CURLUSESSL_TRY)) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER,
                            (long)(smtp->verify_peer ? 1 : 0)) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST,
                            (long)(smtp->verify_peer ? 2 : 0)) != CURLE_OK;
    if (smtp->username && *smtp->username) {
        bad |= curl_easy_setopt(easy, CURLOPT_USERNAME, smtp->username) != CURLE_OK;
        bad |= curl_easy_setopt(easy, CURLOPT_PASSWORD,
                                smtp->password ? smtp->password : "") != CURLE_OK;
    }
    bad |= set_protocols(easy, "smtp,smtps",
                         (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
    return request_start(self, req, bad);
}

size_t tp_transfer_inflight(const tp_transfer_t *self) {
    assert(self);
    return self->inflight;
}

const char *tp_transfer_errstr(const tp_transfer_t *self) {
    assert(self);
    return self->errstr;
}
