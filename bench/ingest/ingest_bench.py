"""ingest_bench.py: the body of bench/ingest/run.sh.

One throwaway world (tests/lib/tp_harness.World: redis-server with AOF
everysec, tp-intake and tp-scoring on free ports, all in a temp dir), then:

  1. capture: a few events with MONITOR on, to record the exact commands the
     services send per event (scripts by SHA, ZREM, reconcile reads);
  2. e2e HTTP: tp-loadgen http-batch (N lead.captured in batches of 1000,
     several connections) -> journal -> scoring; the clock stops when every
     event is applied by scoring, i.e. when the journal holds N lead.graded
     (scoring derives lead.graded in the same Lua step that applies
     lead.captured, so "graded journaled" implies "applied"); "derived at":
     when scoring's outbox is empty, i.e. intake acknowledged every one;
  3. e2e ZeroMQ: the same through intake's ROUTER ingress (tp-loadgen zmq);
  4. latency: single-event POSTs at a fixed rate, open loop;
  5. ceiling: services stopped, the same Redis, redis-benchmark replaying the
     captured commands (keys and ids randomised per call with __rand_int__,
     so every call creates what a new lead creates) with pipelining.

Prints a table: path, events/s, ceiling events/s, ratio; per-process CPU;
Redis time per event. Environment knobs: HTTP_EVENTS, ZMQ_EVENTS, HTTP_CONNS,
BATCH, ZMQ_WINDOW, LAT_RATE, LAT_SECONDS, LAT_CONNS, PERF (1: perf profile of
the HTTP phase), BENCH_SECONDS (per redis-benchmark run; each test is the
best of two runs), SERVICE_PRELOAD (an LD_PRELOAD for the services only,
e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2).
"""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../.."))
sys.path.insert(0, os.path.join(ROOT, "tests/lib"))
sys.path.insert(0, os.path.join(ROOT, "bench/lib"))
import tp_harness as h  # noqa: E402
from tpbench import (write_result, CpuWatch, Monitor, commandstats, env_int, info,  # noqa: E402,F401
                     log, parse_monitor_line, randomize, record_pid, redis_benchmark,
                     redis_cpu)

RUN_DIR = os.environ["TP_BENCH_DIR"]
LOADGEN = os.environ["TP_LOADGEN"]


HTTP_EVENTS = env_int("HTTP_EVENTS", 100000)
ZMQ_EVENTS = env_int("ZMQ_EVENTS", 60000)
HTTP_CONNS = env_int("HTTP_CONNS", 4)
BATCH = env_int("BATCH", 1000)
ZMQ_WINDOW = env_int("ZMQ_WINDOW", 2000)
LAT_RATE = env_int("LAT_RATE", 500)
LAT_SECONDS = env_int("LAT_SECONDS", 5)
LAT_CONNS = env_int("LAT_CONNS", 16)
BENCH_SECONDS = float(os.environ.get("BENCH_SECONDS", "1.2"))
BATCH_SIZES = sorted({100, BATCH} - {1})  # script batch sizes of the ceiling
SERVICE_PRELOAD = os.environ.get("SERVICE_PRELOAD", "")
PERF = os.environ.get("PERF", "0") == "1"
PHASE_CAP_S = 45


def classify(args):
    """Names a client command captured by MONITOR, or None."""
    cmd = args[0].upper()
    if cmd == b"ZREM" and b"outbox:" in args[1]:
        return "zrem"
    if cmd == b"XRANGE":
        return "xrange"
    if cmd not in (b"EVALSHA", b"EVALSHA_RO"):  # read-only scripts go as EVALSHA_RO
        return None
    nkeys = int(args[2])
    keys, argv = args[3:3 + nkeys], args[3 + nkeys:]
    if keys[0].endswith(b"{j}:journal") and any(b"{j}:id:" in k for k in keys):
        return "journal_graded" if argv[1] == b"lead.graded" else "journal_captured"
    if keys[0].endswith(b"{j}:phone"):
        return "resolve" if argv and argv[0] == b"lead" else None
    if nkeys == 5 and keys[0].endswith(b":profile") and keys[1].endswith(b":deals"):
        return "read"  # scoring's read script: the customer before an apply
    if nkeys == 4 and b":done:scoring:" in keys[0]:
        try:
            t = argv.index(b"type")
        except ValueError:
            return None
        return "apply_graded" if argv[t + 1] == b"lead.graded" else "apply_captured"
    if all(b":done:" in k for k in keys) and len(argv) == nkeys:
        return "done_check"
    return None


def batched(kind, args, n):
    """The script call of `args` narrowed to its first event, then widened to
    `n` events, as intake builds it. Journal: KEYS some fixed keys (journal,
    maybe indexes), then one id key per event; ARGV ttl, then a group of
    arguments per event (type, envelope, ...). Resolve: KEYS the indexes;
    ARGV a group of 4 (op, customer, x, y) per event looked up."""
    sha, nkeys = args[1], int(args[2])
    keys, argv = args[3:3 + nkeys], args[3 + nkeys:]
    if kind.startswith("journal"):
        first = next(i for i, k in enumerate(keys) if b"{j}:id:" in k)
        fixed, ids = keys[:first], keys[first:]
        per = (len(argv) - 1) // len(ids)
        if 1 + per * len(ids) != len(argv):
            raise RuntimeError("journal call of an unexpected shape: %d keys, "
                               "%d args" % (nkeys, len(argv)))
        ks = fixed + [ids[0]] * n
        av = [argv[0]] + argv[1:1 + per] * n
    else:
        if len(argv) % 4:
            raise RuntimeError("resolve call of an unexpected shape")
        ks = keys
        av = argv[0:4] * n
    return [args[0], sha, str(len(ks)).encode()] + ks + av


# ---- phases ----

class Bench:
    def __init__(self):
        self.w = None
        self.results = {}

    def start(self):
        import tempfile
        tempfile.tempdir = RUN_DIR
        # info: the harness waits for the services' "ready" lines, logged at
        # info (nothing is logged per event at that level)
        cfg = {"log": {"level": "info"},
               # tp-loadgen talks to the ingress without a CURVE key: the
               # plain bus (CURVE's cost is not part of this figure)
               "bus": {"curve": "off"},
               # the deployment's values (deploy/local/touchpoint.ini)
               "scoring": {"reconcile_lag": "2s", "reconcile_interval": "1s"},
               "intake": {"max_batch": str(max(BATCH, 1000))}}
        self.w = h.World(config=cfg, services=[], receiver=False, acl=False)
        record_pid(self.w.redis_proc.pid)
        # e.g. SERVICE_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2: an
        # allocator for the services only, to try one without a rebuild
        if SERVICE_PRELOAD:
            os.environ["LD_PRELOAD"] = SERVICE_PRELOAD
        try:
            for svc in ("intake", "scoring"):
                record_pid(self.w.start(svc).pid)
        finally:
            os.environ.pop("LD_PRELOAD", None)
        h.wait_until(self.w._healthy, what="intake /healthz with redis up")
        self.pids = {"redis": self.w.redis_proc.pid,
                     "intake": self.w.procs["intake"].pid,
                     "scoring": self.w.procs["scoring"].pid}
        log("world in %s: redis :%d, intake http :%d, ingress %s" %
            (self.w.dir, self.w.redis_port, self.w.http_port,
             self.w.bus["ingress"]))

    def gen(self, *args):
        p = subprocess.Popen([LOADGEN] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        record_pid(p.pid)
        return p

    @staticmethod
    def gen_result(p):
        out, err = p.communicate()
        if err.strip():
            log("tp-loadgen: " + err.strip())
        kv = dict(l.split("=", 1) for l in out.split() if "=" in l)
        if p.returncode != 0:
            log("tp-loadgen exited %d" % p.returncode)
        return kv

    def xlen(self):
        """Entries ever appended to the journal (so intake's trimming behind
        the consumers' cursors cannot hide any), 0 before the first."""
        try:
            info = self.w.redis("XINFO", "STREAM", "tp:{j}:journal")
        except RuntimeError:
            return 0
        fields = dict(zip(info[0::2], info[1::2]))
        return int(fields.get("entries-added", fields.get("length", 0)))

    def reset(self):
        """Empties Redis between phases (scripts stay cached) and waits for
        the services to be idle."""
        self.w.redis("FLUSHALL")
        self.w.redis("CONFIG", "RESETSTAT")
        time.sleep(0.3)

    def capture(self):
        """Records the commands of 2 events per ingress path."""
        mon = Monitor(self.w.redis_port)
        time.sleep(0.2)
        self.gen_result(self.gen("http-batch", "--port", self.w.http_port, "--key",
                                 h.API_KEY, "--conns", 1, "--batch", 2, "--events", 2,
                                 "--base", 90000000))
        self.gen_result(self.gen("zmq", "--endpoint", self.w.bus["ingress"], "--window", 1,
                                 "--events", 2, "--base", 91000000))
        h.wait_until(lambda: self.xlen() >= 8, 10, what="capture events applied")
        time.sleep(3.5)  # one reconcile walk past the lag window
        lines = mon.stop()
        self.templates = {}
        for line in lines:
            client, args = parse_monitor_line(line)
            if not args or client == "lua":
                continue
            kind = classify(args)
            if kind and kind not in self.templates:
                self.templates[kind] = args
        # script calls of several events (the HTTP pair, coalesced graded
        # events) are narrowed to one event: the per-call form is rebuilt
        for kind in ("resolve", "journal_captured", "journal_graded"):
            if kind in self.templates:
                self.templates[kind] = batched(kind, self.templates[kind], 1)
        # (lead.graded goes to the scheduler only: scoring no longer applies it)
        # ("resolve" only when the generated leads need one: optional)
        need = ["journal_captured", "read", "apply_captured", "journal_graded", "zrem"]
        missing = [k for k in need if k not in self.templates]
        if missing:
            for line in lines:
                client, args = parse_monitor_line(line)
                if args and client != "lua" and args[0].upper() in (b"EVALSHA",
                                                                    b"EVALSHA_RO"):
                    log("seen: " + b" ".join(args[:3 + int(args[2])])[:300].decode(
                        "latin-1"))
            raise RuntimeError("MONITOR capture lacks %s; saw %s" %
                               (missing, sorted(self.templates)))
        log("captured: " + ", ".join("%s(%d args)" % (k, len(v))
                                     for k, v in sorted(self.templates.items())))

    def e2e(self, name, gen_args, n, base):
        self.reset()
        r = self.w.redis
        stats0 = commandstats(r)
        rcpu0 = redis_cpu(r)
        watch = CpuWatch(self.pids)
        perf = None
        if PERF and name == "http":
            perf = subprocess.Popen(
                ["perf", "record", "-F", "999", "-o",
                 os.path.join(RUN_DIR, "perf.data"), "-p",
                 ",".join(str(p) for p in self.pids.values())],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            record_pid(perf.pid)
        t0 = time.time()
        p = self.gen(*gen_args, "--events", n, "--base", base, "--max-s", PHASE_CAP_S)
        target, g, t_applied = 2 * n, None, None
        while time.time() - t0 < PHASE_CAP_S + 30:
            if g is None and p.poll() is not None:
                g = self.gen_result(p)
                target = 2 * int(g.get("accepted", 0))
            if self.xlen() >= target and g is not None:
                t_applied = time.time() - t0
                break
            time.sleep(0.005)
        if g is None and p.poll() is not None:
            g = self.gen_result(p)  # reaped inside the watch: counted as ours
        cpu = watch.stop()
        rcpu = redis_cpu(r) - rcpu0
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(20)
        if g is None:
            p.kill()
            g = self.gen_result(p)
        accepted = int(g.get("accepted", 0))
        # every derived lead.graded acknowledged by intake: the outbox is empty
        t_derived = None
        while t_applied and time.time() - t0 < t_applied + 15:
            if sum(int(r("ZCARD", k)) for k in h.skeys("outbox:scoring")) == 0:
                t_derived = time.time() - t0
                break
            time.sleep(0.01)
        stats1 = commandstats(r)
        grades = self.xlen() - accepted
        res = {
            "accepted": accepted, "gen": g, "t_applied": t_applied,
            "t_derived": t_derived, "cpu": cpu, "redis_cpu": rcpu, "graded": grades,
            "cmd": {k: (v[0] - stats0.get(k, (0, 0))[0], v[1] - stats0.get(k, (0, 0))[1])
                    for k, v in stats1.items()},
        }
        res["eps"] = accepted / t_applied if t_applied else 0.0
        self.results[name] = res
        log("%s: %d accepted in %.2fs (intake %s ev/s), all applied by scoring "
            "at %.2fs -> %.0f ev/s" % (name, accepted, float(g.get("elapsed_s", 0)),
                                        g.get("accept_rate"), t_applied or -1, res["eps"]))

    def latency(self):
        self.reset()
        g = self.gen_result(self.gen("http-lat", "--port", self.w.http_port, "--key",
                                     h.API_KEY, "--conns", LAT_CONNS, "--rate", LAT_RATE,
                                     "--seconds", LAT_SECONDS, "--base", 40000000))
        self.results["latency"] = g
        log("latency at %s/s: p50 %s ms, p99 %s ms" %
            (LAT_RATE, g.get("p50_ms"), g.get("p99_ms")))

    # ---- ceiling ----

    def stop_services(self):
        for name in list(self.w.procs):
            self.w.kill(name, signal.SIGTERM)

    def rb(self, args, n, clients, pipeline):
        return redis_benchmark(self.w.redis_port, args, n, clients, pipeline)

    def bench(self, label, args, events_per_call, clients=4, pipeline=16):
        """Calls/s of `args` for ~BENCH_SECONDS, after a short calibration."""
        args = [randomize(a) for a in args]
        self.w.redis("FLUSHALL")
        probe = max(clients * pipeline * 4, 64 if events_per_call > 1 else 2000)
        rps = self.rb(args, probe, clients, pipeline)
        n = max(probe, int(rps * BENCH_SECONDS))
        # best of two: a ceiling, so a run slowed by an AOF-rewrite fork or
        # by a neighbour on this machine should not lower it
        runs = []
        for _ in range(2):
            self.w.redis("FLUSHALL")
            runs.append(self.rb(args, n, clients, pipeline))
        rps = max(runs)
        eps = rps * events_per_call
        self.ceiling[label] = (rps, events_per_call, eps)
        log("ceiling %-24s %10.0f calls/s x %4d = %10.0f events/s" %
            (label, rps, events_per_call, eps))

    def ceilings(self):
        self.ceiling = {}
        t = self.templates
        for script, kind in (("resolve", "resolve"),
                             ("journal (captured)", "journal_captured"),
                             ("journal (graded)", "journal_graded")):
            if kind not in t:
                continue
            self.bench("%s x1" % script, t[kind], 1)
            for n in BATCH_SIZES:
                self.bench("%s x%d" % (script, n), batched(kind, t[kind], n), n,
                           2 if n > 10 else 4, 2 if n > 100 else 4)
        self.bench("read (scoring)", t["read"], 1)
        self.bench("apply (captured)", t["apply_captured"], 1)
        self.bench("ZREM outbox", t["zrem"], 1)

    def chain(self, parts):
        """Events/s of Redis doing `parts` (labels) for every event."""
        us = sum(1e6 / self.ceiling[p][2] for p in parts)
        return 1e6 / us, us

    def best(self, script):
        """The label of `script`'s cheapest measured batch size per event."""
        labels = ["%s x%d" % (script, n) for n in [1] + BATCH_SIZES]
        return max(labels, key=lambda l: self.ceiling[l][2])

    # ---- report ----

    def report(self):
        B = BATCH
        per_event = ["read (scoring)", "apply (captured)", "ZREM outbox"]
        scripts = [x for x in ("resolve", "journal (captured)", "journal (graded)")
                   if "%s x1" % x in self.ceiling]
        batched_chain = [self.best(x) for x in scripts] + per_event
        single_chain = ["%s x1" % x for x in scripts] + per_event
        c_b, us_b = self.chain(batched_chain)
        c_1, us_1 = self.chain(single_chain)
        out = []
        P = out.append
        P("")
        P("Touchpoint ingest benchmark: lead.captured -> intake -> journal -> scoring "
          "applied (+ lead.graded derived and journaled)")
        P("machine: %d cores; redis-server %s, AOF everysec; services: tp-intake, "
          "tp-scoring%s" % (os.cpu_count(),
                            info(self.w.redis, "server").get("redis_version"),
                            " (LD_PRELOAD=%s)" % SERVICE_PRELOAD if SERVICE_PRELOAD else ""))
        P("")
        P("Redis ceiling (redis-benchmark, same Redis, the services' own scripts by "
          "SHA, args as captured, new keys per call):")
        P("  %-26s %12s %8s %12s %10s" % ("command", "calls/s", "ev/call", "events/s",
                                          "us/event"))
        for k, (rps, epc, eps) in self.ceiling.items():
            P("  %-26s %12.0f %8d %12.0f %10.2f" % (k, rps, epc, eps, 1e6 / eps))
        P("  per lead, best batching (%s; read, apply, ZREM): "
          "%.1f us -> %.0f events/s" % (", ".join(batched_chain[:len(scripts)]), us_b, c_b))
        P("  per lead, one event per script call: %.1f us -> %.0f events/s"
          % (us_1, c_1))
        P("")
        P("%-34s %10s %12s %8s %12s %8s" % ("path", "events/s", "ceiling ev/s",
                                           "ratio", "ceiling x1", "ratio"))
        for name, label in (("http", "HTTP batch x%d, %d conns" % (B, HTTP_CONNS)),
                            ("zmq", "ZeroMQ DEALER, window %d" % ZMQ_WINDOW)):
            r = self.results.get(name)
            if not r:
                continue
            P("%-34s %10.0f %12.0f %7.0f%% %12.0f %7.0f%%" %
              (label, r["eps"], c_b, 100 * r["eps"] / c_b, c_1, 100 * r["eps"] / c_1))
        P("  (ceiling = the best-batching chain above; target: events/s >= 60% of "
          "it. ceiling x1 = one event per script call)")
        P("")
        P("CPU from start to 'all applied', in %% of one core (this machine has %d):"
          % os.cpu_count())
        hdr = "%-5s %8s %9s %8s %8s %7s %6s %8s %9s %7s %7s   %7s %7s %7s"
        P(hdr % ("path", "accepted", "intake/s", "applied", "derived", "redis", "fork",
                 "intake", "scoring", "bench", "other", "redis", "intake", "scoring"))
        P(hdr % ("", "", "", "at", "at", "", "", "", "", "", "", "us/ev", "us/ev",
                 "us/ev"))
        warn = []
        for name in ("http", "zmq"):
            r = self.results.get(name)
            if not r:
                continue
            c, el, n = r["cpu"], r["cpu"]["el"], max(1, r["accepted"])
            pct = lambda x: "%.0f%%" % (100 * x / el)  # noqa: E731
            P(hdr % (name, r["accepted"], r["gen"].get("accept_rate"),
                     "%.2fs" % r["t_applied"] if r["t_applied"] else "n/a",
                     "%.2fs" % r["t_derived"] if r["t_derived"] else "n/a",
                     pct(c["used"]["redis"]), pct(c["fork"]), pct(c["used"]["intake"]),
                     pct(c["used"]["scoring"]), pct(c["helper"]), pct(c["other"]),
                     "%.1f" % (1e6 * c["used"]["redis"] / n),
                     "%.1f" % (1e6 * c["used"]["intake"] / n),
                     "%.1f" % (1e6 * c["used"]["scoring"] / n)))
            if c["other"] / el > 0.25:
                warn.append("%s phase (%s)" % (name, pct(c["other"])))
        c = self.ceiling_cpu
        P("%-5s %8s %9s %8s %8s %7s %6s %8s %9s %7s %7s" %
          ("ceil.", "", "", "", "", "%.0f%%" % (100 * c["used"]["redis"] / c["el"]),
           "%.0f%%" % (100 * c["fork"] / c["el"]), "", "",
           "%.0f%%" % (100 * c["helper"] / c["el"]),
           "%.0f%%" % (100 * c["other"] / c["el"])))
        if c["other"] / c["el"] > 0.25:
            warn.append("ceiling phase (%.0f%%)" % (100 * c["other"] / c["el"]))
        P("  (fork = redis' AOF-rewrite child; bench = tp-loadgen, redis-benchmark and "
          "this helper; other = processes not of this bench)")
        if warn:
            P("  WARNING: other processes took CPU during the " + ", ".join(warn) +
              ": on this shared machine the figures above are low; run again "
              "when it is idle")
        for name in ("http", "zmq"):
            r = self.results.get(name)
            if not r:
                continue
            n = max(1, r["accepted"])
            top = sorted(r["cmd"].items(), key=lambda kv: -kv[1][1])[:8]
            P("  redis time per lead in %-4s: " % name + ", ".join(
                "%s %.1fus (%.2f calls)" % (k, v[1] / n, v[0] / n) for k, v in top))
        lat = self.results.get("latency")
        if lat:
            P("")
            P("single-event POST /v1/events at %s/s (open loop, %d conns, %ss): "
              "p50 %s ms, p90 %s ms, p99 %s ms, p99.9 %s ms, max %s ms, errors %s" %
              (lat.get("rate"), LAT_CONNS, LAT_SECONDS, lat.get("p50_ms"),
               lat.get("p90_ms"), lat.get("p99_ms"), lat.get("p999_ms"),
               lat.get("max_ms"), lat.get("errors")))
        print("\n".join(out))
        sys.stdout.flush()
        figures = []
        for name, label in (("http", "HTTP batches of %d, %d conns" % (B, HTTP_CONNS)),
                            ("zmq", "ZeroMQ ingress, window %d" % ZMQ_WINDOW)):
            r = self.results.get(name)
            if r:
                figures.append({"name": "ingest to applied, " + label, "value": r["eps"],
                                "unit": "events/s", "ceiling": c_b,
                                "note": "ceiling: Redis, the services' scripts, best batching"})
        if lat:
            figures.append({"name": "single-event POST p99 at %s/s" % lat.get("rate"),
                            "value": float(lat.get("p99_ms") or 0), "unit": "ms",
                            "note": "open loop, %d conns" % LAT_CONNS})
        write_result("ingest", figures)


def main():
    b = Bench()
    t0 = time.time()
    try:
        b.start()
        b.capture()
        b.e2e("http", ["http-batch", "--port", b.w.http_port, "--key", h.API_KEY,
                       "--conns", HTTP_CONNS, "--batch", BATCH], HTTP_EVENTS, 0)
        b.e2e("zmq", ["zmq", "--endpoint", b.w.bus["ingress"],
                      "--window", ZMQ_WINDOW], ZMQ_EVENTS, 20000000)
        b.latency()
        if PERF:
            data = os.path.join(RUN_DIR, "perf.data")
            print("perf profile of the HTTP phase (share of all samples):")
            subprocess.run("perf report -i %s --sort comm --stdio 2>/dev/null | "
                           "grep '%%' | head -8" % data, shell=True)
            for comm in ("redis-server", "tp-intake", "tp-scoring"):
                print("  top symbols of %s:" % comm)
                subprocess.run("perf report -i %s --comms %s --sort dso,sym --stdio "
                               "2>/dev/null | grep '%%' | head -14" % (data, comm),
                               shell=True)
            sys.stdout.flush()
        b.stop_services()
        watch = CpuWatch({"redis": b.w.redis_proc.pid})
        b.ceilings()
        b.ceiling_cpu = watch.stop()
        b.report()
        log("done in %.0fs" % (time.time() - t0))
    finally:
        if b.w:
            b.w.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    main()
