/* bus.c: ZeroMQ sockets on the libuv loop.
 *
 * Owns one ZeroMQ context per tp_bus_t, every socket made from it, and the
 * libuv handles that watch them: a uv_poll_t on ZMQ_FD and a uv_idle_t that
 * schedules one extra drain on the next loop iteration. ZMQ_FD only tells
 * "something changed" and goes quiet once libzmq has read its own commands,
 * which any zmq_send, zmq_recv or ZMQ_EVENTS query may do; so every wake-up,
 * every send and every resume ends in a drain that reads until ZMQ_EVENTS
 * shows no input.
 *
 * Must never block the loop (every send and receive is ZMQ_DONTWAIT, linger
 * is 0), never call a receive callback from inside tp_bus_send or
 * tp_bus_resume (those only schedule a drain), and never touch a zmq socket
 * after zmq_close: that happens in the poll handle's close callback, once
 * libuv no longer watches the fd. */
#include "tp/bus.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/log.h"

/* Frames a message may carry; larger sets are read whole and dropped. */
#define TP_BUS_MAX_FRAMES 16
/* Messages one drain reads before it yields to the rest of the loop; the
 * idle handle resumes it on the next iteration. */
#define TP_BUS_DRAIN_BUDGET 512

/* A client key the ZAP handler admits. */
typedef struct curve_client {
    uint8_t key[32];
    char user_id[64];
} curve_client_t;

#define TP_BUS_CLIENTS_MAX 64
#define ZAP_ENDPOINT "inproc://zeromq.zap.01" /* fixed by ZMTP 27/ZAP */

struct tp_bus {
    uv_loop_t *loop;
    void *ctx;
    /* CURVE: a server's key pair and admitted clients, or a client's key
     * pair and its server's public key (Z85, NUL-terminated); "" unset. */
    char server_public[41], server_secret[41];
    char client_public[41], client_secret[41], client_server[41];
    curve_client_t clients[TP_BUS_CLIENTS_MAX];
    size_t nclients;
    tp_bus_socket_t *zap; /* the ZAP handler (REP), when a server */
    tp_bus_socket_t *sockets; /* open sockets, newest first */
    size_t closing;           /* sockets whose handles are still closing */
    int destroyed;            /* tp_bus_destroy ran; the last close frees */
};

struct tp_bus_socket {
    tp_bus_t *bus;
    void *zsock;
    uv_poll_t poll; /* watches ZMQ_FD; data = self */
    uv_idle_t kick; /* one deferred drain; data = self */
    tp_bus_recv_cb recv_cb;
    void *arg;
    const char *kind; /* socket type name, for log lines */
    int paused;       /* tp_bus_pause: not reading */
    int draining;     /* inside socket_drain */
    int closing;      /* tp_bus_socket_destroy ran */
    int handles_open; /* poll and kick not yet closed */
    const char *peer; /* User-Id of the message being delivered, or NULL */
    uint64_t dropped; /* oversize messages dropped */
    tp_bus_socket_t *monitor; /* PAIR reading this socket's monitor events */
    int peers;        /* connections counted by the monitor, -1 unwatched */
    tp_bus_socket_t *prev, *next;
};

static const char *socket_kind(int zmq_type) {
    switch (zmq_type) {
    case ZMQ_PUSH:
        return "PUSH";
    case ZMQ_PULL:
        return "PULL";
    case ZMQ_ROUTER:
        return "ROUTER";
    case ZMQ_DEALER:
        return "DEALER";
    case ZMQ_PUB:
        return "PUB";
    case ZMQ_SUB:
        return "SUB";
    case ZMQ_REP:
        return "REP";
    case ZMQ_PAIR:
        return "PAIR";
    default:
        return "zmq";
    }
}

tp_bus_t *tp_bus_new(uv_loop_t *loop) {
    assert(loop);
    tp_bus_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->loop = loop;
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        tp_log_error("bus: zmq_ctx_new failed: %s", zmq_strerror(errno));
        free(self);
        return NULL;
    }
    return self;
}

/* Last step of a bus: every socket is zmq_closed, so with linger 0 the
 * context terminates at once. */
static void bus_free(tp_bus_t *self) {
    assert(self->sockets == NULL && self->closing == 0);
    while (zmq_ctx_term(self->ctx) == -1 && errno == EINTR) {
    }
    free(self);
}

static void socket_handle_closed(uv_handle_t *handle) {
    tp_bus_socket_t *sock = handle->data;
    if (handle == (uv_handle_t *)&sock->poll) {
        /* libuv no longer watches ZMQ_FD: now the socket may go. */
        zmq_close(sock->zsock);
        sock->zsock = NULL;
    }
    if (--sock->handles_open > 0) return;

    tp_bus_t *bus = sock->bus;
    free(sock);
    bus->closing--;
    if (bus->destroyed && bus->closing == 0 && bus->sockets == NULL)
        bus_free(bus);
}

/* Starts closing `sock`: unlinked at once, freed in the last close
 * callback. Safe from inside the socket's own receive callback. */
static void socket_close(tp_bus_socket_t *sock) {
    if (sock->closing) return;
    sock->closing = 1;
    if (sock->monitor) { /* still allocated: frees happen in callbacks */
        /* stop the monitor before either socket closes: an event sent into
         * the pipe of a PAIR already closed is never freed by libzmq */
        zmq_socket_monitor(sock->zsock, NULL, 0);
        socket_close(sock->monitor);
        sock->monitor = NULL;
    }
    tp_bus_t *bus = sock->bus;
    if (sock->prev)
        sock->prev->next = sock->next;
    else
        bus->sockets = sock->next;
    if (sock->next) sock->next->prev = sock->prev;
    sock->prev = sock->next = NULL;
    bus->closing++;
    uv_close((uv_handle_t *)&sock->poll, socket_handle_closed);
    uv_close((uv_handle_t *)&sock->kick, socket_handle_closed);
}

void tp_bus_destroy(tp_bus_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_bus_t *self = *self_p;
    *self_p = NULL;
    self->destroyed = 1;
    while (self->sockets)
        socket_close(self->sockets);
    if (self->closing == 0) bus_free(self);
}

static void socket_kick(tp_bus_socket_t *sock);

/* Receives one whole message and hands it to the callback. Returns 1 when a
 * message was consumed (delivered or dropped), 0 when none was waiting, -1
 * on a socket error (logged). */
static int message_recv(tp_bus_socket_t *sock) {
    zmq_msg_t frames[TP_BUS_MAX_FRAMES];
    size_t nframes = 0;
    int oversize = 0, rc = 1;

    for (;;) {
        zmq_msg_t scratch,
            *msg = nframes < TP_BUS_MAX_FRAMES ? &frames[nframes] : &scratch;
        zmq_msg_init(msg);
        if (zmq_msg_recv(msg, sock->zsock, ZMQ_DONTWAIT) == -1) {
            int err = errno;
            zmq_msg_close(msg);
            if (nframes == 0 && !oversize && (err == EAGAIN || err == EINTR))
                return 0;
            /* libzmq delivers the parts of a message together, so a
             * failure in the middle is a broken socket, not a race. */
            tp_log_error("bus: zmq_msg_recv on %s failed: %s", sock->kind,
                         zmq_strerror(err));
            rc = -1;
            break;
        }
        int more = zmq_msg_more(msg);
        if (msg == &scratch) {
            oversize = 1;
            zmq_msg_close(msg);
        } else {
            nframes++;
        }
        if (!more) break;
    }

    if (rc == 1 && oversize) {
        /* Bytes from the network: count and drop, log on powers of two so
         * a flood cannot flood the log. */
        sock->dropped++;
        if ((sock->dropped & (sock->dropped - 1)) == 0)
            tp_log_warn("bus: %s dropped a message of more than %d frames "
                        "(%llu dropped so far)",
                        sock->kind, TP_BUS_MAX_FRAMES,
                        (unsigned long long)sock->dropped);
    } else if (rc == 1 && sock->recv_cb) {
        const void *ptrs[TP_BUS_MAX_FRAMES];
        size_t lens[TP_BUS_MAX_FRAMES];
        for (size_t i = 0; i < nframes; i++) {
            ptrs[i] = zmq_msg_data(&frames[i]);
            lens[i] = zmq_msg_size(&frames[i]);
        }
        /* ZAP's User-Id travels with the frames the peer sent (not with
         * the identity frame a ROUTER puts first); NULL without CURVE */
        sock->peer = nframes > 0 ? zmq_msg_gets(&frames[nframes - 1], "User-Id") : NULL;
        sock->recv_cb(sock, ptrs, lens, nframes, sock->arg);
        sock->peer = NULL;
    }
    for (size_t i = 0; i < nframes; i++)
        zmq_msg_close(&frames[i]);
    return rc;
}

/* Reads until ZMQ_EVENTS shows no input, the budget runs out (then the
 * kick finishes the job next iteration), or the callback paused or closed
 * the socket. Querying ZMQ_EVENTS also makes libzmq process its commands,
 * which is what re-arms ZMQ_FD, so every path through here queries it at
 * least once, receive callback or not. */
static void socket_drain(tp_bus_socket_t *sock) {
    if (sock->draining || sock->closing || sock->paused) return;
    sock->draining = 1;
    for (int budget = TP_BUS_DRAIN_BUDGET;; budget--) {
        int events = 0;
        size_t size = sizeof events;
        if (zmq_getsockopt(sock->zsock, ZMQ_EVENTS, &events, &size) == -1) {
            if (errno == EINTR) {
                socket_kick(sock);
                break;
            }
            tp_log_error("bus: zmq_getsockopt(ZMQ_EVENTS) on %s failed: %s",
                         sock->kind, zmq_strerror(errno));
            break;
        }
        if (!(events & ZMQ_POLLIN)) break;
        if (budget == 0) {
            socket_kick(sock);
            break;
        }
        if (message_recv(sock) != 1) break;
        if (sock->closing || sock->paused) break;
    }
    sock->draining = 0;
}

static void socket_polled(uv_poll_t *handle, int status, int events) {
    tp_bus_socket_t *sock = handle->data;
    if (status < 0) {
        /* The fd itself is broken; polling again would spin. */
        tp_log_error("bus: uv_poll on %s failed: %s", sock->kind,
                     uv_strerror(status));
        uv_poll_stop(handle);
        return;
    }
    socket_drain(sock);
}

static void socket_kicked(uv_idle_t *handle) {
    tp_bus_socket_t *sock = handle->data;
    uv_idle_stop(handle);
    socket_drain(sock);
}

/* Schedules one drain on the next loop iteration: a send or a resume may
 * have consumed the ZMQ_FD edge while input is waiting. */
static void socket_kick(tp_bus_socket_t *sock) {
    if (sock->closing || sock->paused) return;
    uv_idle_start(&sock->kick, socket_kicked);
}

static int socket_set_int(tp_bus_socket_t *sock, int option, int value,
                          const char *name) {
    if (zmq_setsockopt(sock->zsock, option, &value, sizeof value) == 0)
        return 0;
    tp_log_error("bus: zmq_setsockopt(%s) on %s failed: %s", name, sock->kind,
                 zmq_strerror(errno));
    return -1;
}

static int socket_set_str(tp_bus_socket_t *sock, int option, const char *value,
                          const char *name) {
    if (zmq_setsockopt(sock->zsock, option, value, strlen(value)) == 0) return 0;
    tp_log_error("bus: zmq_setsockopt(%s) on %s failed: %s", name, sock->kind,
                 zmq_strerror(errno));
    return -1;
}

/* CURVE options of a new socket: a server when it binds (and the bus is
 * one), a client when it connects (and the bus is one). */
static int socket_curve(tp_bus_socket_t *sock, int bind) {
    tp_bus_t *bus = sock->bus;
    if (bind && bus->server_secret[0]) {
        /* Z85 keys go in as 40 characters plus the NUL (libzmq's rule) */
        if (socket_set_int(sock, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER") ||
            zmq_setsockopt(sock->zsock, ZMQ_CURVE_SECRETKEY, bus->server_secret, 41) ||
            socket_set_str(sock, ZMQ_ZAP_DOMAIN, "touchpoint", "ZMQ_ZAP_DOMAIN")) {
            tp_log_error("bus: CURVE server options on %s failed: %s", sock->kind,
                         zmq_strerror(errno));
            return -1;
        }
    } else if (!bind && bus->client_secret[0]) {
        if (zmq_setsockopt(sock->zsock, ZMQ_CURVE_SERVERKEY, bus->client_server, 41) ||
            zmq_setsockopt(sock->zsock, ZMQ_CURVE_PUBLICKEY, bus->client_public, 41) ||
            zmq_setsockopt(sock->zsock, ZMQ_CURVE_SECRETKEY, bus->client_secret, 41)) {
            tp_log_error("bus: CURVE client options on %s failed: %s", sock->kind,
                         zmq_strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void monitor_event(tp_bus_socket_t *monitor, const void *const *frames,
                          const size_t *lens, size_t nframes, void *arg);

/* Before `sock` binds or connects (libzmq reports only what happens after
 * the monitor is set): its monitor and a PAIR reading it. 0 or -1. */
/* Binds `endpoint`, or connects to each of a comma-separated list of them
 * (a consumer reaching every intake instance: ZeroMQ fair-queues their
 * feeds into one PULL, and spreads a DEALER's sends over them). */
static int socket_attach(tp_bus_socket_t *sock, const char *endpoint, int bind) {
    const char *at = endpoint;
    do {
        const char *comma = bind ? NULL : strchr(at, ',');
        size_t len = comma ? (size_t)(comma - at) : strlen(at);
        char one[512];
        if (len == 0 || len >= sizeof one) {
            tp_log_error("bus: endpoint list \"%s\": an empty or too long entry", endpoint);
            return -1;
        }
        memcpy(one, at, len);
        one[len] = '\0';
        if ((bind ? zmq_bind : zmq_connect)(sock->zsock, one) == -1) {
            tp_log_error("bus: %s(%s, %s) failed: %s", bind ? "zmq_bind" : "zmq_connect",
                         sock->kind, one, zmq_strerror(errno));
            return -1;
        }
        at = comma ? comma + 1 : NULL;
    } while (at);
    return 0;
}

static int socket_monitor(tp_bus_socket_t *sock) {
    static unsigned serial;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://tp-monitor-%u", ++serial);
    if (zmq_socket_monitor(sock->zsock, endpoint,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == -1) {
        tp_log_error("bus: zmq_socket_monitor on %s failed: %s", sock->kind,
                     zmq_strerror(errno));
        return -1;
    }
    /* inproc has no security handshake: CURVE options do not apply */
    sock->monitor = tp_bus_socket_new(sock->bus, ZMQ_PAIR, endpoint, 0, 0, monitor_event, sock);
    if (!sock->monitor) return -1;
    sock->peers = 0;
    return 0;
}

static tp_bus_socket_t *socket_make(tp_bus_t *bus, int zmq_type, const char *endpoint,
                                    int bind, int hwm, tp_bus_recv_cb recv_cb, void *arg,
                                    int watch);

tp_bus_socket_t *tp_bus_socket_new(tp_bus_t *bus, int zmq_type,
                                   const char *endpoint, int bind, int hwm,
                                   tp_bus_recv_cb recv_cb, void *arg) {
    return socket_make(bus, zmq_type, endpoint, bind, hwm, recv_cb, arg, 0);
}

tp_bus_socket_t *tp_bus_socket_new_watched(tp_bus_t *bus, int zmq_type,
                                           const char *endpoint, int bind, int hwm,
                                           tp_bus_recv_cb recv_cb, void *arg) {
    return socket_make(bus, zmq_type, endpoint, bind, hwm, recv_cb, arg, 1);
}

static tp_bus_socket_t *socket_make(tp_bus_t *bus, int zmq_type, const char *endpoint,
                                    int bind, int hwm, tp_bus_recv_cb recv_cb, void *arg,
                                    int watch) {
    assert(bus && !bus->destroyed && endpoint);
    tp_bus_socket_t *sock = calloc(1, sizeof *sock);
    if (!sock) abort();
    sock->bus = bus;
    sock->recv_cb = recv_cb;
    sock->arg = arg;
    sock->kind = socket_kind(zmq_type);
    sock->peers = -1;

    sock->zsock = zmq_socket(bus->ctx, zmq_type);
    if (!sock->zsock) {
        tp_log_error("bus: zmq_socket(%s) failed: %s", sock->kind,
                     zmq_strerror(errno));
        goto fail_socket;
    }
    if (hwm > 0 && (socket_set_int(sock, ZMQ_SNDHWM, hwm, "ZMQ_SNDHWM") ||
                    socket_set_int(sock, ZMQ_RCVHWM, hwm, "ZMQ_RCVHWM")))
        goto fail_options;
    /* Never wait for unsent messages on close: the journal replays them. */
    if (socket_set_int(sock, ZMQ_LINGER, 0, "ZMQ_LINGER")) goto fail_options;
    /* A connecting sender queues nothing for a peer not yet there, so a
     * send with no peer fails with EAGAIN instead of piling up. */
    if (!bind && (zmq_type == ZMQ_PUSH || zmq_type == ZMQ_DEALER) &&
        socket_set_int(sock, ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE"))
        goto fail_options;
    /* A ROUTER otherwise drops silently what it cannot deliver; mandatory
     * routing turns a full HWM into EAGAIN and a vanished peer into
     * EHOSTUNREACH, both reported to the caller. */
    if (zmq_type == ZMQ_ROUTER &&
        socket_set_int(sock, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY"))
        goto fail_options;
    if (socket_curve(sock, bind) < 0) goto fail_options;
    if (watch && socket_monitor(sock) < 0) goto fail_options;
    if (socket_attach(sock, endpoint, bind) < 0) goto fail_options;

    int fd = -1;
    size_t fd_size = sizeof fd;
    if (zmq_getsockopt(sock->zsock, ZMQ_FD, &fd, &fd_size) == -1) {
        tp_log_error("bus: zmq_getsockopt(ZMQ_FD) on %s failed: %s", sock->kind,
                     zmq_strerror(errno));
        goto fail_options;
    }
    int err = uv_poll_init(bus->loop, &sock->poll, fd);
    if (err < 0) {
        tp_log_error("bus: uv_poll_init on %s failed: %s", sock->kind,
                     uv_strerror(err));
        goto fail_options;
    }
    sock->poll.data = sock;
    uv_idle_init(bus->loop, &sock->kick); /* cannot fail on unix */
    sock->kick.data = sock;
    sock->handles_open = 2;

    err = uv_poll_start(&sock->poll, UV_READABLE, socket_polled);
    if (err < 0) {
        tp_log_error("bus: uv_poll_start on %s failed: %s", sock->kind,
                     uv_strerror(err));
        /* The handles are initialised: only the close path frees now. */
        sock->next = bus->sockets;
        if (bus->sockets) bus->sockets->prev = sock;
        bus->sockets = sock;
        socket_close(sock);
        return NULL;
    }

    sock->next = bus->sockets;
    if (bus->sockets) bus->sockets->prev = sock;
    bus->sockets = sock;
    /* libzmq signals ZMQ_FD only on a change it has not yet reported: a
     * monitor's PAIR may hold events from before the poll began */
    if (sock->monitor) socket_kick(sock->monitor);
    return sock;

fail_options:
    tp_bus_socket_destroy(&sock->monitor);
    zmq_close(sock->zsock);
fail_socket:
    free(sock);
    return NULL;
}

void tp_bus_socket_destroy(tp_bus_socket_t **sock_p) {
    if (!sock_p || !*sock_p) return;
    tp_bus_socket_t *sock = *sock_p;
    *sock_p = NULL;
    socket_close(sock);
}

int tp_bus_send(tp_bus_socket_t *sock, const void *const *frames,
                const size_t *lens, size_t nframes) {
    assert(sock);
    if (sock->closing) {
        errno = ENOTSOCK;
        return -1;
    }
    if (nframes == 0 || !frames || !lens) {
        errno = EINVAL;
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < nframes; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < nframes ? ZMQ_SNDMORE : 0);
        if (zmq_send(sock->zsock, frames[i], lens[i], flags) == -1) {
            int err = errno;
            /* libzmq admits a message whole or not at all, so only the
             * first frame can fail with EAGAIN (a full HWM or no peer) or,
             * on a ROUTER, EHOSTUNREACH (no peer with that identity). Both
             * are the caller's to handle; anything else is logged here. */
            if (!(i == 0 && (err == EAGAIN || err == EHOSTUNREACH)))
                tp_log_error("bus: zmq_send on %s failed at frame %zu: %s",
                             sock->kind, i, zmq_strerror(err));
            errno = err;
            rc = -1;
            break;
        }
    }
    socket_kick(sock);
    return rc;
}

void tp_bus_pause(tp_bus_socket_t *sock) {
    assert(sock);
    if (sock->closing || sock->paused) return;
    sock->paused = 1;
    uv_poll_stop(&sock->poll);
    uv_idle_stop(&sock->kick);
}

void tp_bus_resume(tp_bus_socket_t *sock) {
    assert(sock);
    if (sock->closing || !sock->paused) return;
    sock->paused = 0;
    int err = uv_poll_start(&sock->poll, UV_READABLE, socket_polled);
    if (err < 0)
        tp_log_error("bus: uv_poll_start on %s failed: %s", sock->kind,
                     uv_strerror(err));
    /* Input that arrived while paused raised its edge long ago. */
    socket_kick(sock);
}

/* ---- CURVE ---- */

const char *tp_bus_peer(const tp_bus_socket_t *sock) { return sock->peer; }

/* ---- connection monitor ---- */

/* A monitor event: frame 1 is the event (uint16) and its value (uint32),
 * frame 2 the endpoint. */
static void monitor_event(tp_bus_socket_t *monitor, const void *const *frames,
                          const size_t *lens, size_t nframes, void *arg) {
    (void)monitor;
    tp_bus_socket_t *sock = arg;
    if (nframes < 1 || lens[0] < 2) return;
    uint16_t event;
    memcpy(&event, frames[0], sizeof event);
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        sock->peers++;
    else if (event == ZMQ_EVENT_DISCONNECTED && sock->peers > 0)
        sock->peers--;
}

int tp_bus_socket_peers(const tp_bus_socket_t *sock) { return sock ? sock->peers : -1; }

/* Copies a Z85 key of 40 characters into `out` (41 bytes). 0, or -1 when
 * it is not one (libzmq decodes it to check). */
static int key_copy(char out[41], const char *key, const char *what) {
    uint8_t bin[32];
    if (!key || strlen(key) != 40 || !zmq_z85_decode(bin, key)) {
        tp_log_error("bus: %s is not a CURVE key (40 characters of Z85)", what);
        return -1;
    }
    memcpy(out, key, 41);
    return 0;
}

/* ZAP (ZMTP 27): version, request id, domain, address, identity,
 * mechanism, credentials. Answers 200 with the client's user id for an
 * admitted key, 400 otherwise. */
static void zap_request(tp_bus_socket_t *sock, const void *const *frames,
                        const size_t *lens, size_t nframes, void *arg) {
    tp_bus_t *bus = arg;
    const char *status = "400", *text = "unknown key", *user = "";
    if (nframes < 6) return; /* not ZAP: no answer possible */
    if (nframes == 7 && lens[5] == 5 && memcmp(frames[5], "CURVE", 5) == 0 &&
        lens[6] == 32) {
        for (size_t i = 0; i < bus->nclients; i++)
            if (memcmp(bus->clients[i].key, frames[6], 32) == 0) {
                status = "200", text = "OK", user = bus->clients[i].user_id;
                /* once per connection: when a service is reachable */
                tp_log_info("bus: admitted %s from %.*s", user,
                            (int)(lens[3] < 64 ? lens[3] : 64), (const char *)frames[3]);
                break;
            }
        if (user[0] == '\0') {
            char z85[41];
            zmq_z85_encode(z85, frames[6], 32);
            tp_log_warn("bus: refused a connection from %.*s: key %s is not admitted",
                        (int)(lens[3] < 64 ? lens[3] : 64), (const char *)frames[3], z85);
        }
    } else {
        text = "CURVE only";
        tp_log_warn("bus: refused a connection without CURVE from %.*s",
                    (int)(lens[3] < 64 ? lens[3] : 64), (const char *)frames[3]);
    }
    const void *reply[6] = {"1.0", frames[1], status, text, user, ""};
    size_t rlens[6] = {3, lens[1], 3, strlen(text), strlen(user), 0};
    if (tp_bus_send(sock, reply, rlens, 6) < 0)
        tp_log_error("bus: ZAP answer not sent: %s", zmq_strerror(errno));
}

int tp_bus_curve_server(tp_bus_t *bus, const char *public_key, const char *secret_key) {
    if (!zmq_has("curve")) {
        tp_log_error("bus: this libzmq has no CURVE");
        return -1;
    }
    if (!bus->zap) {
        /* bound before any CURVE socket, so no handshake goes unanswered,
         * and before the keys are set, so it stays plain itself */
        bus->zap = tp_bus_socket_new(bus, ZMQ_REP, ZAP_ENDPOINT, 1, 0, zap_request, bus);
        if (!bus->zap) return -1;
    }
    if (key_copy(bus->server_public, public_key, "the server's public key") < 0 ||
        key_copy(bus->server_secret, secret_key, "the server's secret key") < 0)
        return -1;
    return 0;
}

int tp_bus_curve_admit(tp_bus_t *bus, const char *public_key, const char *user_id) {
    char z85[41];
    if (key_copy(z85, public_key, user_id) < 0) return -1;
    if (bus->nclients == TP_BUS_CLIENTS_MAX || strlen(user_id) >= 64) {
        tp_log_error("bus: cannot admit %s (at most %d keys, names under 64 bytes)",
                     user_id, TP_BUS_CLIENTS_MAX);
        return -1;
    }
    curve_client_t *c = &bus->clients[bus->nclients++];
    zmq_z85_decode(c->key, z85);
    snprintf(c->user_id, sizeof c->user_id, "%s", user_id);
    return 0;
}

int tp_bus_curve_client(tp_bus_t *bus, const char *public_key, const char *secret_key,
                        const char *server_key) {
    if (!zmq_has("curve")) {
        tp_log_error("bus: this libzmq has no CURVE");
        return -1;
    }
    if (key_copy(bus->client_public, public_key, "this service's public key") < 0 ||
        key_copy(bus->client_secret, secret_key, "this service's secret key") < 0 ||
        key_copy(bus->client_server, server_key, "intake's public key") < 0)
        return -1;
    return 0;
}
