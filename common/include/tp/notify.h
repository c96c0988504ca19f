/* notify.h: the service's conversation with its supervisor (systemd's
 * sd_notify protocol): READY=1 once the service does its work, WATCHDOG=1
 * at half the interval systemd asks for, STOPPING=1 on shutdown. Owns one
 * libuv timer. Inert when NOTIFY_SOCKET is unset (started by hand, by the
 * tests, by a container runtime) or names neither a path nor an abstract
 * "@name" (logged once): no timer runs and nothing is sent.
 * Never blocks: each message is one datagram. */
#ifndef TP_NOTIFY_H
#define TP_NOTIFY_H

#include <uv.h>

typedef struct tp_notify tp_notify_t;

/* Polled until it returns nonzero; `arg` is borrowed until READY=1 is sent
 * or tp_notify_stopping is called. */
typedef int (*tp_notify_ready_cb)(void *arg);

/* Starts the watchdog pings when the supervisor asked for them
 * (WATCHDOG_USEC, with WATCHDOG_PID unset or naming this process). Runs on `loop`. Caller owns the result. NULL on failure. */
tp_notify_t *tp_notify_new(uv_loop_t *loop);
/* Sends READY=1 at once when `ready` is NULL, or once ready(arg) returns
 * nonzero (checked every TP_NOTIFY_READY_POLL_MS on the loop). Once; when
 * the supervisor's queue is full, again every TP_NOTIFY_READY_POLL_MS
 * until it is taken. */
void tp_notify_ready(tp_notify_t *self, tp_notify_ready_cb ready, void *arg);
/* Sends STOPPING=1 and stops the timer: no READY=1 or WATCHDOG=1 after. */
void tp_notify_stopping(tp_notify_t *self);
/* Closes the timer; freed in its close callback (run the loop after).
 * Accepts NULL; sets *self_p to NULL. */
void tp_notify_destroy(tp_notify_t **self_p);

/* How often a readiness condition is checked: a start-up matter, short
 * enough that systemd's ordering waits no longer than it must. */
#define TP_NOTIFY_READY_POLL_MS 50

#endif
