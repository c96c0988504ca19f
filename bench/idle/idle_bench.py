"""idle_bench.py: the body of bench/idle/run.sh.

One throwaway Redis and intake (tests/lib/tp_harness.World, the tests'
configuration: CURVE on the bus, API keys, Redis ACL users). Per service,
RUNS times: the real binary started with NOTIFY_SOCKET pointing at a unix
datagram socket of this script, timed from just before exec to the
arrival of READY=1 (intake: listening and connected to Redis; a consuming
service: Redis, the bus and its consumer up); after the last run, IDLE_S
seconds of nothing, then VmRSS and VmHWM from /proc. The peer, in the same
run: redis-server (no persistence, a free port), timed from exec to its
first PONG, and its VmRSS after the same idle time.
"""
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../.."))
sys.path.insert(0, os.path.join(ROOT, "tests/lib"))
sys.path.insert(0, os.path.join(ROOT, "bench/lib"))
import tp_harness as h  # noqa: E402
from tpbench import env_int, log, record_pid, write_result  # noqa: E402

RUN_DIR = os.environ["TP_BENCH_DIR"]
RUNS = env_int("RUNS", 5)
IDLE_S = float(os.environ.get("IDLE_S", "3"))
TARGET_START_MS = 100.0
TARGET_RSS_MB = 10.0
SERVICES = ["intake", "scoring", "scheduler", "notifier", "ticketing"]


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rollup_kb(pid):
    """Pss, and Private (clean + dirty: what only this process holds), kB."""
    got = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                try:
                    got[parts[0][:-1]] = int(parts[1])
                except ValueError:
                    pass
    return got.get("Pss", 0), got.get("Private_Clean", 0) + got.get("Private_Dirty", 0)


def start_timed(w, service, path):
    """Starts `service` with NOTIFY_SOCKET; (process, ms to READY=1)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if os.path.exists(path):
        os.unlink(path)
    sock.bind(path)
    sock.settimeout(20)
    binary = os.path.join(h.BUILD, "services", service, "tp-" + service)
    env = dict(os.environ, TP_CONFIG=w.config_path, NOTIFY_SOCKET=path)
    env["TP_%s_INSTANCE" % service.upper()] = service
    log_file = open(os.path.join(w.dir, service + ".log"), "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen([binary], env=env, stdout=log_file, stderr=log_file)
    record_pid(proc.pid)
    try:
        while True:
            data = sock.recv(4096).decode()
            if "READY=1" in data.splitlines():
                return proc, (time.monotonic() - t0) * 1000
    except socket.timeout:
        proc.kill()
        raise AssertionError("%s: no READY=1 in 20 s:\n%s" % (service, w.log(service)[-2000:]))
    finally:
        sock.close()
        log_file.close()


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def redis_peer():
    """redis-server: (ms to the first PONG, idle VmRSS kB, its (Pss,
    Private) kB)."""
    port = h.free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", RUN_DIR],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record_pid(proc.pid)
    try:
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    s.close()
                    break
                s.close()
            except OSError:
                time.sleep(0.0005)
            if time.monotonic() - t0 > 20:
                raise AssertionError("redis-server did not answer")
        ms = (time.monotonic() - t0) * 1000
        time.sleep(IDLE_S)
        return ms, status_kb(proc.pid, "VmRSS"), rollup_kb(proc.pid)
    finally:
        stop(proc)


def main():
    import tempfile
    tempfile.tempdir = RUN_DIR
    w = h.World(services=["intake"], receiver=False)
    record_pid(w.redis_proc.pid)
    rows = []
    try:
        # each service started RUNS times; the last start of each stays up,
        # so the five idle side by side, as deployed
        for svc in SERVICES:
            if svc == "intake":
                w.kill("intake", signal.SIGTERM)
            times, proc = [], None
            for i in range(RUNS):
                proc, ms = start_timed(w, svc, os.path.join(RUN_DIR, svc + ".notify"))
                times.append(ms)
                if i + 1 < RUNS:
                    stop(proc)
            w.procs[svc] = proc  # World stops it
            rows.append({"name": svc, "start_ms": statistics.median(times),
                         "start_max_ms": max(times), "pid": proc.pid})
        time.sleep(IDLE_S)
        for r in rows:
            r["rss_kb"], r["hwm_kb"] = status_kb(r["pid"], "VmRSS"), status_kb(r["pid"], "VmHWM")
            r["pss_kb"], r["private_kb"] = rollup_kb(r["pid"])
            log("%s: start %.1f ms (median of %d, max %.1f), idle RSS %.1f MB (peak %.1f)"
                % (r["name"], r["start_ms"], RUNS, r["start_max_ms"], r["rss_kb"] / 1024,
                   r["hwm_kb"] / 1024))
        peer_times, peer_rss, peer_roll = [], 0, (0, 0)
        for _ in range(RUNS):
            ms, peer_rss, peer_roll = redis_peer()
            peer_times.append(ms)
    finally:
        w.close()
    peer_ms = statistics.median(peer_times)
    print("Touchpoint services: start (exec -> READY=1) and idle memory, %d starts each, "
          "%.0f s idle, %d cores" % (RUNS, IDLE_S, os.cpu_count()))
    print("%-12s %12s %12s %8s %12s %8s %8s %8s %8s" % (
        "service", "start p50 ms", "start max ms", "target", "idle RSS MB", "target",
        "PSS MB", "own MB", "verdict"))
    figures = []
    for r in rows:
        ok = r["start_ms"] < TARGET_START_MS and r["rss_kb"] / 1024 < TARGET_RSS_MB
        print("%-12s %12.1f %12.1f %8s %12.1f %8s %8.1f %8.1f %8s" % (
            r["name"], r["start_ms"], r["start_max_ms"], "< 100", r["rss_kb"] / 1024, "< 10",
            r["pss_kb"] / 1024, r["private_kb"] / 1024, "ok" if ok else "FAIL"))
        figures.append({"name": "%s start (exec to READY=1, median)" % r["name"],
                        "value": round(r["start_ms"], 1), "unit": "ms",
                        "ceiling": TARGET_START_MS, "peer": round(peer_ms, 1),
                        "note": "peer: redis-server to its first PONG; bound = the target"})
        figures.append({"name": "%s idle RSS" % r["name"], "value": round(r["rss_kb"] / 1024, 1),
                        "unit": "MB", "ceiling": TARGET_RSS_MB,
                        "peer": round(peer_rss / 1024, 1),
                        "note": "PSS %.1f MB, own (private) %.1f MB, peak %.1f MB; peer: "
                        "redis-server idle; bound = the target"
                        % (r["pss_kb"] / 1024, r["private_kb"] / 1024, r["hwm_kb"] / 1024)})
    print("%-12s %12.1f %12.1f %8s %12.1f %8s %8.1f %8.1f %8s" % (
        "redis-server", peer_ms, max(peer_times), "(peer)", peer_rss / 1024, "(peer)",
        peer_roll[0] / 1024, peer_roll[1] / 1024, ""))
    print("  start: a service connects to Redis (AUTH as its ACL user, loads its scripts), "
          "intake's bus (CURVE handshake) and starts consuming; redis-server only binds")
    print("  RSS counts every resident page of the shared libraries the process maps "
          "(Debian's libzmq, libical with ICU, libsodium; the notifier's libcurl with "
          "OpenSSL and GnuTLS); PSS divides shared pages among the processes mapping them "
          "(here the five services and Redis), own = pages no other process shares")
    write_result("idle", figures)


if __name__ == "__main__":
    main()
