/* notify.c: sd_notify for the services (see notify.h). One timer does both
 * jobs: it polls the readiness condition until READY=1 is out, and pings
 * the watchdog at half its interval. Sends nothing without NOTIFY_SOCKET;
 * must never block the loop or fail the service over a lost datagram. */
#include "tp/notify.h"

#include <stdint.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "tp/log.h"

struct tp_notify {
    uv_timer_t timer;
    int active;              /* NOTIFY_SOCKET is set */
    uint64_t watchdog_ms;    /* ping period, 0: no watchdog */
    int ready_sent;
    tp_notify_ready_cb ready;
    void *ready_arg;
    int stopping;
    uint64_t watchdog_due;   /* loop time of the next ping */
};

static void notify_send(const char *state) {
    int rc = sd_notify(0, state);
    if (rc < 0) tp_log_warn("notify: sd_notify(%s) failed: %d", state, rc);
}

static void notify_arm(tp_notify_t *self);

static void notify_tick_cb(uv_timer_t *t) {
    tp_notify_t *self = t->data;
    if (self->stopping) return;
    if (!self->ready_sent && self->ready && self->ready(self->ready_arg)) {
        self->ready_sent = 1;
        self->ready = NULL;
        notify_send("READY=1");
        tp_log_info("notify: READY=1");
    }
    if (self->watchdog_ms && uv_now(t->loop) >= self->watchdog_due) {
        notify_send("WATCHDOG=1");
        self->watchdog_due = uv_now(t->loop) + self->watchdog_ms;
    }
    notify_arm(self);
}

/* The next tick: the watchdog's next ping, sooner while readiness is polled. */
static void notify_arm(tp_notify_t *self) {
    uint64_t now = uv_now(self->timer.loop), next = UINT64_MAX;
    if (self->watchdog_ms)
        next = self->watchdog_due > now ? self->watchdog_due - now : 0;
    if (!self->ready_sent && self->ready && next > TP_NOTIFY_READY_POLL_MS)
        next = TP_NOTIFY_READY_POLL_MS;
    if (next != UINT64_MAX) uv_timer_start(&self->timer, notify_tick_cb, next, 0);
}

tp_notify_t *tp_notify_new(uv_loop_t *loop) {
    tp_notify_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    if (uv_timer_init(loop, &self->timer) != 0) {
        free(self);
        return NULL;
    }
    self->timer.data = self;
    const char *socket = getenv("NOTIFY_SOCKET");
    self->active = socket && *socket;
    uint64_t usec = 0;
    if (self->active && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        /* half the interval: one late tick on a loaded machine is not a kill */
        self->watchdog_ms = usec / 2000 ? usec / 2000 : 1;
        tp_log_info("notify: watchdog every %llu ms",
                    (unsigned long long)self->watchdog_ms);
        notify_send("WATCHDOG=1");
        self->watchdog_due = uv_now(loop) + self->watchdog_ms;
        notify_arm(self);
    }
    return self;
}

void tp_notify_ready(tp_notify_t *self, tp_notify_ready_cb ready, void *arg) {
    if (!self->active || self->ready_sent || self->stopping) return;
    if (!ready || ready(arg)) {
        self->ready_sent = 1;
        notify_send("READY=1");
        tp_log_info("notify: READY=1");
        return;
    }
    self->ready = ready;
    self->ready_arg = arg;
    notify_arm(self);
}

void tp_notify_stopping(tp_notify_t *self) {
    if (!self || self->stopping) return;
    self->stopping = 1;
    self->ready = NULL;
    uv_timer_stop(&self->timer);
    if (self->active) notify_send("STOPPING=1");
}

static void notify_closed_cb(uv_handle_t *h) { free(h->data); }

void tp_notify_destroy(tp_notify_t **self_p) {
    tp_notify_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    uv_timer_stop(&self->timer);
    uv_close((uv_handle_t *)&self->timer, notify_closed_cb);
}
