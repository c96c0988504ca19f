"""sd_notify: each service tells its supervisor (systemd, Type=notify) when
it is ready, keeps the watchdog fed, and says when it stops.

The test is the supervisor: it binds a unix datagram socket, starts the
real service with NOTIFY_SOCKET pointing at it and WATCHDOG_USEC /
WATCHDOG_PID set as systemd sets them, and reads what arrives: READY=1
once (a consuming service once it consumes; intake once it listens and has
Redis), WATCHDOG=1 at about half the interval, STOPPING=1 on SIGTERM.
"""
import os
import signal
import socket
import time

from tp_harness import World, run, wait_until

WATCHDOG_MS = 600  # WATCHDOG_USEC: pings every ~300 ms


class Supervisor:
    """The fake NOTIFY_SOCKET: every datagram with the time it arrived."""

    def __init__(self, directory, name):
        self.path = os.path.join(directory, name + ".notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages = []  # (monotonic time, "KEY=value")

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def seen(self, what):
        return [t for t, m in self.drain() if m == what]

    def close(self):
        self.sock.close()


def start_supervised(w, service, sup, watchdog_pid="$$"):
    """Starts `service` under `sup`, WATCHDOG_PID being its own pid (as
    systemd sets it) or, given, another's."""
    env = {"NOTIFY_SOCKET": sup.path, "WATCHDOG_USEC": str(WATCHDOG_MS * 1000)}
    wrap = ["sh", "-c", 'WATCHDOG_PID=%s exec "$0"' % watchdog_pid]
    return w.start(service, env=env, wrap=wrap)


def test_consuming_service_ready_watchdog_stopping():
    w = World(services=["intake"])
    sup = Supervisor(w.dir, "scoring")
    try:
        start_supervised(w, "scoring", sup)
        wait_until(lambda: sup.seen("READY=1"), 10, what="READY=1 from scoring")
        # the watchdog keeps coming, at about half the interval
        wait_until(lambda: len(sup.seen("WATCHDOG=1")) >= 6, 10 * WATCHDOG_MS / 1000,
                   what="six WATCHDOG=1 from scoring")
        pings = sup.seen("WATCHDOG=1")
        gaps = [b - a for a, b in zip(pings[1:], pings[2:])]
        assert max(gaps) < WATCHDOG_MS / 1000, gaps  # never a whole interval without
        assert min(gaps) > WATCHDOG_MS / 1000 / 4, gaps  # paced, not a flood
        assert len(sup.seen("READY=1")) == 1
        assert "consuming" in w.log("scoring")
        w.kill("scoring", signal.SIGTERM)
        wait_until(lambda: sup.seen("STOPPING=1"), 5, what="STOPPING=1 from scoring")
    finally:
        sup.close()
        assert w.close()


def test_watchdog_for_another_pid_is_not_fed():
    """WATCHDOG_PID names another process (systemd's main pid is not us):
    the service must not ping, but still says READY=1."""
    w = World(services=["intake"])
    sup = Supervisor(w.dir, "ticketing")
    try:
        start_supervised(w, "ticketing", sup, watchdog_pid="1")
        wait_until(lambda: sup.seen("READY=1"), 10, what="READY=1 from ticketing")
        time.sleep(3 * WATCHDOG_MS / 1000)  # several intervals: none may come
        assert sup.seen("WATCHDOG=1") == []
    finally:
        sup.close()
        assert w.close()


def test_intake_ready_only_with_redis():
    """Intake listening without Redis is not ready: every request would get
    503. Redis hung (SIGSTOP) at intake's start: no READY=1 until it runs."""
    w = World(services=[])
    sup = Supervisor(w.dir, "intake")
    try:
        w.redis_proc.send_signal(signal.SIGSTOP)
        try:
            start_supervised(w, "intake", sup)  # returns once intake listens
            time.sleep(1.0)
            early = sup.seen("READY=1")
        finally:
            w.redis_proc.send_signal(signal.SIGCONT)
        assert early == [], "READY=1 before intake had Redis"
        wait_until(lambda: sup.seen("READY=1"), 15, what="READY=1 from intake with Redis")
        wait_until(lambda: len(sup.seen("WATCHDOG=1")) >= 3, 10, what="intake's watchdog")
        w.kill("intake", signal.SIGTERM)
        wait_until(lambda: sup.seen("STOPPING=1"), 5, what="STOPPING=1 from intake")
    finally:
        sup.close()
        assert w.close()


def test_no_notify_socket_sends_nothing():
    """Without NOTIFY_SOCKET (by hand, containers) nothing is sent, even
    with WATCHDOG_USEC set, and the service runs as before."""
    w = World(services=["intake"])
    sup = Supervisor(w.dir, "scheduler")
    try:
        w.start("scheduler", env={"WATCHDOG_USEC": str(WATCHDOG_MS * 1000)},
                wrap=["sh", "-c", 'WATCHDOG_PID=$$ exec "$0"'])
        time.sleep(2 * WATCHDOG_MS / 1000)
        assert sup.drain() == []
        assert "notify:" not in w.log("scheduler")
    finally:
        sup.close()
        assert w.close()


if __name__ == "__main__":
    run([test_consuming_service_ready_watchdog_stopping,
         test_watchdog_for_another_pid_is_not_fed,
         test_intake_ready_only_with_redis,
         test_no_notify_socket_sends_nothing])
