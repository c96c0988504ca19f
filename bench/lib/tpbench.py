"""tpbench: what the benchmarks under bench/ share.

Process bookkeeping for run.sh's cleanup trap (record_pid), CPU accounting
(CpuWatch), Redis INFO helpers, MONITOR capture and parsing, argument
randomising for redis-benchmark, and one redis-benchmark run. Standard
library only. Each bench's run.sh exports TP_BENCH_DIR (its temp dir, where
the pid list lives) before starting its Python helper.
"""
import os
import re
import socket
import subprocess
import sys
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")


def log(msg):
    sys.stderr.write("[bench] %s\n" % msg)
    sys.stderr.flush()


def env_int(name, default):
    return int(os.environ.get(name, default))


def record_pid(pid):
    """Notes a process the bench started, with its start time, so run.sh's
    trap can end it (and only it: a pid reused since is left alone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return
    with open(os.path.join(os.environ["TP_BENCH_DIR"], "pids"), "a") as f:
        f.write("%d %s\n" % (pid, start))


# ---- CPU accounting ----

def proc_cpu(pid, children=False):
    """CPU seconds (user+sys) used so far by `pid`, or by its reaped
    children (for redis-server: its AOF-rewrite / RDB fork)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        i = 13 if children else 11
        return (int(fields[i]) + int(fields[i + 1])) / HZ
    except OSError:
        return 0.0


def machine_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


class CpuWatch:
    """CPU used over an interval: by each named process (`pids` must name
    "redis"), by redis' forks, by this helper and what it started and reaped
    (load generators, redis-benchmark), by the machine, and so by nobody of
    ours ("other": concurrent tests, builds...). `extra` pids (still running
    helpers of the bench) are counted as the bench's own."""

    def __init__(self, pids, extra=()):
        self.pids = pids
        self.extra = list(extra)
        self.start = {n: proc_cpu(p) for n, p in pids.items()}
        self.extra0 = {p: proc_cpu(p) for p in self.extra}
        self.fork0 = proc_cpu(pids["redis"], children=True)
        self.self0 = sum(os.times()[:4])
        self.m0 = machine_cpu()
        self.t0 = time.time()

    def add(self, name, pid, base=0.0):
        """A process started after the watch: `base` CPU seconds of it are
        not counted (0: all of it, from its birth)."""
        self.pids[name] = pid
        self.start[name] = base

    def stop(self):
        el = time.time() - self.t0
        used = {n: proc_cpu(p) - self.start[n] for n, p in self.pids.items()}
        fork = proc_cpu(self.pids["redis"], children=True) - self.fork0
        helper = sum(os.times()[:4]) - self.self0
        for p, c in self.extra0.items():
            if os.path.exists("/proc/%d" % p):  # running (or not reaped yet)
                helper += max(0.0, proc_cpu(p) - c)
            else:  # reaped: all of its CPU is in our children's times already
                helper -= c
        m1 = machine_cpu()
        machine = (m1[0] - self.m0[0]) / max(1, m1[1] - self.m0[1]) * os.cpu_count() * el
        other = max(0.0, machine - sum(used.values()) - fork - helper)
        return {"el": el, "used": used, "fork": fork, "helper": helper,
                "machine": machine, "other": other}


# ---- Redis helpers (r: a tp_harness.Redis) ----

def info(r, section):
    text = r("INFO", section)
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def commandstats(r):
    out = {}
    for k, v in info(r, "commandstats").items():
        if k.startswith("cmdstat_"):
            d = dict(x.split("=") for x in v.split(","))
            out[k[8:]] = (int(d["calls"]), int(d["usec"]))
    return out


def stats_delta(after, before):
    return {k: (v[0] - before.get(k, (0, 0))[0], v[1] - before.get(k, (0, 0))[1])
            for k, v in after.items()}


def redis_cpu(r):
    i = info(r, "cpu")
    return float(i["used_cpu_user"]) + float(i["used_cpu_sys"])


# ---- MONITOR capture ----

_ESC = {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b",
        "\\": b"\\", '"': b'"'}


def parse_monitor_line(line):
    """`<ts> [<db> <client>] "ARG" "ARG" ...` -> (client, [bytes...])."""
    m = re.match(r'^[\d.]+ \[\d+ ([^\]]+)\] (.*)$', line)
    if not m:
        return None, None
    client, rest = m.group(1), m.group(2)
    args, i, n = [], 0, len(rest)
    while i < n:
        if rest[i] != '"':
            i += 1
            continue
        i += 1
        buf = bytearray()
        while i < n and rest[i] != '"':
            c = rest[i]
            if c == "\\" and i + 1 < n:
                e = rest[i + 1]
                if e == "x":
                    buf += bytes([int(rest[i + 2:i + 4], 16)])
                    i += 4
                    continue
                buf += _ESC.get(e, e.encode())
                i += 2
                continue
            buf += c.encode("latin-1")
            i += 1
        args.append(bytes(buf))
        i += 1
    return client, args


class Monitor:
    """MONITOR on its own connection, collecting lines in a thread."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.lines = []
        self.buf = b""
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            self.buf += chunk
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                if line.startswith(b"+"):
                    self.lines.append(line[1:].decode("latin-1"))

    def stop(self):
        self.stopped = True
        self.sock.close()
        self.thread.join(2)
        return self.lines


# ---- redis-benchmark ----

ULID = re.compile(rb"[0-9A-HJKMNP-TV-Z]{26}")
PHONE = re.compile(rb"\+86\d{11}")


def randomize(arg, keep=()):
    """Per-call unique ids, customers and phones (so every call does what a
    new lead does: new keys, new hash fields); no NUL bytes (redis-benchmark
    takes its arguments from argv). Lengths are kept. ULIDs in `keep` (e.g.
    an existing customer's) stay as they are."""
    arg = ULID.sub(lambda m: m.group(0) if m.group(0) in keep
                   else b"__rand_int__" + m.group(0)[12:], arg)
    arg = PHONE.sub(b"+8__rand_int__", arg)
    return arg.replace(b"\x00", b"\x01")


def redis_benchmark(port, args, n, clients, pipeline, keyspace=2000000000):
    """Requests/s of redis-benchmark sending `args` (bytes) `n` times; each
    __rand_int__ becomes a random 12-digit number below `keyspace`."""
    cmd = [b"redis-benchmark", b"-h", b"127.0.0.1", b"-p", str(port).encode(),
           b"-c", str(clients).encode(), b"-n", str(n).encode(),
           b"-P", str(pipeline).encode(), b"-r", str(keyspace).encode(), b"--csv"] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    record_pid(p.pid)
    out, err = p.communicate()
    for line in reversed(out.splitlines()):
        parts = line.rsplit(b",", 7)
        if len(parts) == 8:
            try:
                return float(parts[1].strip(b'"'))
            except ValueError:
                continue
    raise RuntimeError("redis-benchmark said: %r %r" % (out[-300:], err[-300:]))


# ---- results for bench/report ----

def write_result(bench, figures):
    """When TP_BENCH_RESULT names a file (bench/report sets it), writes the
    bench's headline figures there as JSON: {"bench": name, "figures":
    [{"name", "value", "unit", "ceiling", "peer", "note"}...]}; `ceiling`
    and `peer` are the same quantity's bound and a peer system's figure, or
    None. The printed report stays the bench's own."""
    import json
    path = os.environ.get("TP_BENCH_RESULT")
    if not path:
        return
    rows = [dict({"ceiling": None, "peer": None, "note": ""}, **f) for f in figures]
    with open(path, "w") as f:
        json.dump({"bench": bench, "cores": os.cpu_count(), "figures": rows}, f, indent=1)
