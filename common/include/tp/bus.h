/* bus.h: ZeroMQ sockets driven by a libuv loop.
 *
 * Owns one ZeroMQ context per tp_bus_t (one per service process) and the
 * sockets made from it. Each
 * socket is watched through a uv_poll_t on its ZMQ_FD; since that fd is
 * edge-triggered, every wake-up (and every send) drains the socket until
 * ZMQ_EVENTS says no more input. Never blocks the loop: sends are
 * non-blocking and report a full high-water mark as -1 with errno EAGAIN. */
#ifndef TP_BUS_H
#define TP_BUS_H

#include <stddef.h>
#include <uv.h>
#include <zmq.h>

typedef struct tp_bus tp_bus_t;
typedef struct tp_bus_socket tp_bus_socket_t;

/* One received multipart message: `frames[i]` of `lens[i]` bytes, borrowed
 * until the callback returns. */
typedef void (*tp_bus_recv_cb)(tp_bus_socket_t *sock, const void *const *frames,
                               const size_t *lens, size_t nframes, void *arg);

/* Caller owns the result. NULL on failure (logged). */
tp_bus_t *tp_bus_new(uv_loop_t *loop);
/* Closes every socket still open, then the context. The loop must run
 * afterwards so the poll handles close. */
void tp_bus_destroy(tp_bus_t **self_p);

/* A socket of `zmq_type` (ZMQ_PUSH, ZMQ_PULL, ZMQ_ROUTER, ZMQ_DEALER) that
 * binds (`bind` 1) or connects to `endpoint` (connecting: a comma-separated
 * list, one connection each, e.g. every intake instance). `hwm` sets both high-water
 * marks (0: libzmq's default). `recv_cb` may be NULL for send-only sockets.
 * Returns NULL on failure (logged). The bus owns the result; destroy it with
 * tp_bus_socket_destroy or let tp_bus_destroy close it. */
tp_bus_socket_t *tp_bus_socket_new(tp_bus_t *bus, int zmq_type,
                                   const char *endpoint, int bind, int hwm,
                                   tp_bus_recv_cb recv_cb, void *arg);
void tp_bus_socket_destroy(tp_bus_socket_t **sock_p);

/* Sends one multipart message without blocking. Frames are copied.
 * Returns 0, or -1 with errno (EAGAIN: high-water mark reached or no peer). */
int tp_bus_send(tp_bus_socket_t *sock, const void *const *frames,
                const size_t *lens, size_t nframes);

/* Stops / resumes reading (back-pressure: ZeroMQ then queues up to the
 * high-water mark and the sender sees EAGAIN). */
void tp_bus_pause(tp_bus_socket_t *sock);
void tp_bus_resume(tp_bus_socket_t *sock);

/* The same, and the socket's working connections are counted from
 * libzmq's socket monitor (handshake succeeded, minus disconnected), for
 * health probes (tp_bus_socket_peers). */
tp_bus_socket_t *tp_bus_socket_new_watched(tp_bus_t *bus, int zmq_type,
                                           const char *endpoint, int bind, int hwm,
                                           tp_bus_recv_cb recv_cb, void *arg);
/* Connections of a watched socket, or -1 when not watched. */
int tp_bus_socket_peers(const tp_bus_socket_t *sock);

/* ---- CURVE (encryption and authentication between processes) ----
 * Keys are Z85 text, 40 characters (`tpctl keygen curve` makes them). Set these
 * before making sockets: the side that binds is the CURVE server, the side
 * that connects the client. */

/* Sockets that bind from now on are CURVE servers with this key pair, and
 * admit only the clients tp_bus_curve_admit names: a ZAP handler on this
 * bus refuses every other key during the handshake. Returns 0 or -1
 * (logged). */
int tp_bus_curve_server(tp_bus_t *bus, const char *public_key, const char *secret_key);
/* Admits the client key `public_key` as `user_id` (a service name): its
 * messages carry that User-Id (tp_bus_peer). Returns 0 or -1 (logged). */
int tp_bus_curve_admit(tp_bus_t *bus, const char *public_key, const char *user_id);
/* Sockets that connect from now on are CURVE clients with this key pair,
 * talking only to the server whose public key is `server_key`. Returns 0
 * or -1 (logged). */
int tp_bus_curve_client(tp_bus_t *bus, const char *public_key, const char *secret_key,
                        const char *server_key);
/* Inside a receive callback: the User-Id the ZAP handler gave the sender,
 * or NULL (no CURVE). */
const char *tp_bus_peer(const tp_bus_socket_t *sock);

#endif
