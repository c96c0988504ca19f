/* notify.c: sd_notify for the services (see notify.h). One timer does both
 * jobs: it polls the readiness condition until READY=1 is out, and pings
 * the watchdog at half its interval. Sends nothing without NOTIFY_SOCKET;
 * must never block the loop or fail the service over a lost datagram.
 *
 * The protocol is spoken here, not through libsystemd: sd_notify(3) (its
 * "Standalone Implementations" note) documents the datagram as the stable
 * interface and advises services that want nothing else from libsystemd
 * to send it themselves. Linking libsystemd for it loaded six more
 * libraries (libgcrypt, liblzma, libzstd, liblz4, libcap, libgpg-error)
 * into every service: ~1.1 MB of idle RSS each (bench/idle). */
#include "tp/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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

/* The AF_UNIX address NOTIFY_SOCKET names: a path ("/run/systemd/notify")
 * or, with a leading '@', a name in the abstract namespace. -1 when it is
 * unset or names something else (vsock: and the like are not spoken here). */
static int notify_address(struct sockaddr_un *sa, socklen_t *salen) {
    const char *name = getenv("NOTIFY_SOCKET");
    size_t len = name ? strlen(name) : 0;
    if (!len || (name[0] != '/' && name[0] != '@') || len >= sizeof sa->sun_path)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, name, len);
    if (name[0] == '@') sa->sun_path[0] = '\0';
    *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    return 0;
}

/* One datagram `state` to NOTIFY_SOCKET. 0 sent, else -errno. Never
 * blocks: a supervisor whose queue is full answers -EAGAIN. */
static int notify_datagram(const char *state) {
    struct sockaddr_un sa;
    socklen_t salen;
    if (notify_address(&sa, &salen) < 0) return -EAFNOSUPPORT;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
                       (struct sockaddr *)&sa, salen);
    int rc = n < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* The watchdog interval systemd asks this process for, in microseconds
 * (WATCHDOG_USEC, when WATCHDOG_PID is unset or names this process), or 0. */
static uint64_t notify_watchdog_usec(void) {
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!usec || !*usec) return 0;
    char *end;
    if (pid && *pid) {
        errno = 0;
        long long p = strtoll(pid, &end, 10);
        if (errno || *end || p != (long long)getpid()) return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(usec, &end, 10);
    if (errno || *end || usec[0] == '-' || v == 0) {
        tp_log_warn("notify: WATCHDOG_USEC=%s is not a number of microseconds; "
                    "no watchdog pings", usec);
        return 0;
    }
    return (uint64_t)v;
}

/* 0 sent; 1 the supervisor had no room for it now (try again); -1 not
 * sent (logged). */
static int notify_send(const char *state) {
    int rc = notify_datagram(state);
    if (rc == -EAGAIN || rc == -ENOBUFS || rc == -EINTR) return 1;
    if (rc < 0) tp_log_warn("notify: sending %s failed: %s", state, strerror(-rc));
    return rc < 0 ? -1 : 0;
}

static int notify_always(void *arg) {
    (void)arg;
    return 1;
}

/* READY=1, once. A datagram the supervisor had no room for is sent again
 * at the next tick: lost, systemd would kill the unit at its start
 * timeout (WATCHDOG=1 has its next ping; READY=1 has none). */
static void notify_ready_send(tp_notify_t *self) {
    int rc = notify_send("READY=1");
    if (rc > 0) {
        self->ready = notify_always;
        self->ready_arg = NULL;
        return;
    }
    self->ready_sent = 1;
    self->ready = NULL;
    if (rc == 0) tp_log_info("notify: READY=1");
}

static void notify_arm(tp_notify_t *self);

static void notify_tick_cb(uv_timer_t *t) {
    tp_notify_t *self = t->data;
    if (self->stopping) return;
    if (!self->ready_sent && self->ready && self->ready(self->ready_arg))
        notify_ready_send(self);
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
    struct sockaddr_un sa;
    socklen_t salen;
    if (socket && *socket && notify_address(&sa, &salen) < 0)
        tp_log_warn("notify: NOTIFY_SOCKET %s is neither a path nor @name; "
                    "not notifying", socket);
    else
        self->active = socket && *socket;
    uint64_t usec = self->active ? notify_watchdog_usec() : 0;
    if (usec > 0) {
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
        notify_ready_send(self);
        if (!self->ready_sent) notify_arm(self);
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
