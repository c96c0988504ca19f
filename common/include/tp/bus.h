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
 * binds (`bind` 1) or connects to `endpoint`. `hwm` sets both high-water
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

#endif
