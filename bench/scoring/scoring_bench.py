"""scoring_bench.py: the body of bench/scoring/run.sh.

Throughput of tp-scoring ALONE against Redis, next to the Redis ceiling of
the same work, in one run. One throwaway world (tests/lib/tp_harness.World
with no services: redis-server, AOF everysec, on free ports in a temp dir),
tp-scoring started by hand, no intake:

  0. sink: tp-scoring-feed binds a ROUTER at intake's ingress endpoint and
     answers "ok" to every derived event scoring emits (lead.graded,
     stage.changed, customer.at_risk), as intake does once it has journaled
     one; so scoring's outbox drains with one ZREM per derived event, as in
     production.
  1. journal walk: N realistic events (tp-scoring-feed journal: lead.captured
     making new customers; contact.logged, opportunity.updated and
     survey.answered on customers captured earlier) are XADDed to the journal
     as intake would have left them, BEFORE tp-scoring starts; scoring then
     starts with reconcile_lag small, and its reconcile walk applies them
     all (XRANGE 1000, done-mark check, then read script + guarded apply per
     event). Clock: from starting tp-scoring to the last apply.
  2. bus: Redis emptied; tp-scoring-feed push binds a PUSH at scoring's
     endpoint (as intake's router does) and sends N other such events.
     Clock: from the first send to the last apply.
  3. capture: on top of what the bus phase left, a small stream through the
     walk with MONITOR on, recording the exact commands scoring sends: per
     event type the read script and the apply script call, and the walk's
     XRANGE and done-mark check, ZREM.
  4. ceiling: tp-scoring stopped; redis-benchmark replays each captured call
     pipelined against the same Redis, ids randomised per call: a lead on a
     new customer each call; the other types on a random one of the bus
     phase's customers each call (customer ids end in 12 digits, which
     __rand_int__ replaces), so the ceiling reads and writes records with
     their real deals, scores and timelines, as cold in cache as the run's
     (replaying one customer's calls would keep it in CPU cache and make
     the ceiling 2-4x too cheap per read). Per event of the run's mix: read
     + apply of its type, + ZREM per derived event acked, + for the walk
     XRANGE and done check per 1000.

"All applied", exactly: every successful apply sets the event's done mark
with a TTL (SET ... EX) in the same script, and nothing else scoring writes
here has a TTL but the reconcile lease; so applied = INFO keyspace
`expires` - EXISTS lease, polled every 20 ms. Checked at the end of each
phase two other ways: a SCAN counting done marks, and the sum of every
profile's `ver` (each apply bumps it by exactly one). On the bus, an event
whose record kept changing under 8 attempts is given up ("left to
reconcile": in production the walk applies it from the journal; here there
is none): such give-ups are counted from scoring's log, end the phase like
applies, and are reported.

The bus phase journals nothing: in production intake journals every event
before routing it, and the walk reads it again reconcile_lag later (XRANGE
and a done check per 1000, about 2 us of Redis per event, which the journal
walk's ceiling includes and the bus's does not).

Environment knobs: EVENTS (100000 per phase), MIX
(lead=30,contact=35,opportunity=20,survey=15), GAP (2000: follow-ups go to
customers captured at least this many events earlier), POOL_MIN (1000: and
only once that many such customers exist; before, every event is a lead),
LAG (50ms: the reconcile_lag), BENCH_SECONDS (1.2 per redis-benchmark run,
best of 2), PHASE_CAP_S (60), SERVICE_PRELOAD (LD_PRELOAD for tp-scoring
only), PERF (1: perf profile of both phases).
"""
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../.."))
sys.path.insert(0, os.path.join(ROOT, "tests/lib"))
sys.path.insert(0, os.path.join(ROOT, "bench/lib"))
import tp_harness as h  # noqa: E402
from tpbench import (CpuWatch, write_result, Monitor, commandstats, env_int, info, log,  # noqa: E402
                     parse_monitor_line, randomize, record_pid, redis_benchmark,
                     redis_cpu, stats_delta)

RUN_DIR = os.environ["TP_BENCH_DIR"]
FEED = os.environ["TP_FEED"]

EVENTS = env_int("EVENTS", 100000)
MIX = os.environ.get("MIX", "lead=30,contact=35,opportunity=20,survey=15")
GAP = env_int("GAP", 2000)
POOL_MIN = env_int("POOL_MIN", 1000)
LAG = os.environ.get("LAG", "50ms")
BENCH_SECONDS = float(os.environ.get("BENCH_SECONDS", "1.2"))
PHASE_CAP_S = env_int("PHASE_CAP_S", 60)
SERVICE_PRELOAD = os.environ.get("SERVICE_PRELOAD", "")
PERF = os.environ.get("PERF", "0") == "1"
CAPTURE_EVENTS = 400
WALK_BATCH = 1000  # reconcile_batch (the default, kept)
TYPES = ["lead.captured", "contact.logged", "opportunity.updated", "survey.answered"]
NS = "tp:"
LEASE_KEY = NS + "lease:scoring:reconcile"

def outbox_left(r):
    """Derived events of scoring not yet acknowledged: every shard's outbox."""
    return sum(int(r("ZCARD", k)) for k in h.skeys("outbox:scoring", NS))


# Scans once: done marks of scoring (the health sweep's own, "health-...",
# aside), profiles, and the sum of their versions.
VERIFY_LUA = """
local cur, done, profiles, ver = '0', 0, 0, 0
repeat
  local r = redis.call('SCAN', cur, 'COUNT', 10000)
  cur = r[1]
  for _, k in ipairs(r[2]) do
    if string.find(k, ':done:scoring:', 1, true) then
      if not string.find(k, ':done:scoring:health-', 1, true) then done = done + 1 end
    elseif string.sub(k, -8) == ':profile' then
      profiles = profiles + 1
      ver = ver + (tonumber(redis.call('HGET', k, 'ver') or '0') or 0)
    end
  end
until cur == '0'
return {done, profiles, ver}
"""


def kv(text):
    return dict(l.split("=", 1) for l in text.split() if "=" in l)


class Bench:
    def __init__(self):
        self.w = None
        self.sink = None
        self.results = {}

    # ---- world ----

    def start_world(self):
        import tempfile
        tempfile.tempdir = RUN_DIR
        # the bus on TCP loopback, as deployed (deploy/local/touchpoint.ini),
        # on ports of our own
        self.endpoint = "tcp://127.0.0.1:%d" % h.free_port()
        self.ingress = "tcp://127.0.0.1:%d" % h.free_port()
        cfg = {
            # tp-scoring-feed stands in for intake without its CURVE keys:
            # the plain bus (one "bus" entry: a second one would replace it
            # and leave CURVE on, refusing the feed's handshakes)
            "bus": {"curve": "off", "scoring_endpoint": self.endpoint,
                    "ingress_endpoint": self.ingress},
            # info: the harness waits for the "consuming" line (nothing is
            # logged per event at that level)
            "log": {"level": "info"},
            "scoring": {"reconcile_lag": LAG, "reconcile_interval": "10ms",
                        "rules": os.path.join(ROOT, "deploy/local/rules.ini"),
                        "health_sweep": "10m"},
        }
        self.w = h.World(config=cfg, services=[], receiver=False, acl=False)
        record_pid(self.w.redis_proc.pid)
        self.sink_stats = os.path.join(RUN_DIR, "sink.stats")
        self.sink = subprocess.Popen([FEED, "sink", "--endpoint", self.ingress,
                                      "--stats", self.sink_stats],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        record_pid(self.sink.pid)
        h.wait_until(lambda: os.path.exists(self.sink_stats), 5, what="sink up")
        log("world in %s: redis :%d, scoring PULL %s, fake intake ingress %s" %
            (self.w.dir, self.w.redis_port, self.endpoint, self.ingress))

    def start_scoring(self):
        if SERVICE_PRELOAD:
            os.environ["LD_PRELOAD"] = SERVICE_PRELOAD
        try:
            p = self.w.start("scoring")
        finally:
            os.environ.pop("LD_PRELOAD", None)
        record_pid(p.pid)
        return p

    def feed(self, *args, **kw):
        p = subprocess.Popen([FEED] + [str(a) for a in args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, **kw)
        record_pid(p.pid)
        return p

    def feed_result(self, p, stdin=None):
        out, err = p.communicate(stdin, timeout=PHASE_CAP_S + 30)
        if err.strip():
            log("tp-scoring-feed: " + err.strip())
        if p.returncode != 0:
            raise RuntimeError("tp-scoring-feed exited %d" % p.returncode)
        return kv(out)

    def sink_counts(self):
        with open(self.sink_stats) as f:
            return {k: float(v) if "." in v else int(v) for k, v in kv(f.read()).items()}

    # ---- measuring ----

    def applied(self):
        """Events applied so far: done marks are the only keys with a TTL
        besides the reconcile lease."""
        r = self.w.redis
        ks = info(r, "keyspace").get("db0", "")
        d = dict(x.split("=") for x in ks.split(",")) if ks else {}
        return int(d.get("expires", 0)) - int(r("EXISTS", LEASE_KEY))

    def log_mark(self):
        try:
            return os.path.getsize(os.path.join(self.w.dir, "scoring.log"))
        except OSError:
            return 0

    def gave_up(self, mark):
        """Events scoring gave up since `mark` (a log offset): the record
        kept changing under every attempt; left to the walk."""
        with open(os.path.join(self.w.dir, "scoring.log"), "rb") as f:
            f.seek(mark)
            return f.read().count(b"left to reconcile")

    def verify(self):
        done, profiles, ver = self.w.redis("EVAL", VERIFY_LUA, 0)
        outbox = outbox_left(self.w.redis)
        return {"done_marks": done, "profiles": profiles, "ver_sum": ver,
                "outbox_left": outbox}

    def reset(self):
        self.w.redis("FLUSHALL")
        self.w.redis("CONFIG", "RESETSTAT")
        time.sleep(0.3)

    def perf_start(self, name):
        if not PERF:
            return None
        p = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o",
                              os.path.join(RUN_DIR, "perf-%s.data" % name), "-p",
                              "%d,%d" % (self.w.redis_proc.pid,
                                         self.w.procs["scoring"].pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        record_pid(p.pid)
        return p

    def wait_applied(self, n, t0, deadline, mark=None):
        """Until n events are applied (or, on the bus, given up)."""
        t_first = None
        while time.time() < deadline:
            a = self.applied()
            if a and t_first is None:
                t_first = time.time() - t0
            if a >= n or (mark is not None and a + self.gave_up(mark) >= n):
                return time.time() - t0, t_first
            time.sleep(0.02)
        return None, t_first

    def finish_phase(self, name, n, gen, t_applied, t_first, watch, stats0, rcpu0,
                     sink0, perf, mark):
        r = self.w.redis
        cpu = watch.stop()
        rcpu = redis_cpu(r) - rcpu0
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
        cmd = stats_delta(commandstats(r), stats0)
        # derived events still unanswered at the finish line: a moment more
        try:
            h.wait_until(lambda: outbox_left(r) == 0, 5,
                         what="outbox drained")
        except AssertionError:
            log("%s: outbox not drained 5s after the finish" % name)
        time.sleep(0.15)
        sink1 = self.sink_counts()
        derived = {k: sink1.get(k, 0) - sink0.get(k, 0) for k in sink1
                   if k not in ("received", "malformed", "cpu_s")}
        v = self.verify()
        given_up = self.gave_up(mark)
        applied = n - given_up if name == "bus" else n  # the walk retries its own
        res = {"n": n, "gave_up": given_up, "gen": gen, "t_applied": t_applied,
               "t_first": t_first, "cpu": cpu, "redis_cpu": rcpu, "cmd": cmd, "verify": v,
               "derived": {k: c for k, c in derived.items() if c},
               "derived_total": sink1["received"] - sink0["received"],
               "eps": applied / t_applied if t_applied else 0.0}
        self.results[name] = res
        ok = v["done_marks"] == applied and v["ver_sum"] == applied
        log("%s: %d events applied%s in %.2fs -> %.0f ev/s (first apply at %.2fs); "
            "check: %d done marks, ver sum %d over %d profiles%s" %
            (name, applied, " + %d given up" % given_up if given_up else "",
             t_applied or -1, res["eps"], t_first or -1, v["done_marks"],
             v["ver_sum"], v["profiles"], "" if ok else "  MISMATCH"))
        if not ok:
            raise RuntimeError("%s: applied count does not check out: %r" % (name, v))

    def phase_journal(self):
        """N events in the journal first, then tp-scoring starts and walks."""
        self.reset()
        gen = self.feed_result(self.feed("journal", "--port", self.w.redis_port,
                                         "--events", EVENTS, "--seed", 1, "--gap", GAP,
                                         "--pool-min", POOL_MIN, "--mix", MIX))
        log("journal: %s events loaded (%s customers, %s B/envelope avg) in %ss" %
            (gen["events"], gen["customers"], gen["envelope_bytes_avg"], gen["elapsed_s"]))
        r = self.w.redis
        r("CONFIG", "RESETSTAT")
        stats0, rcpu0, sink0 = commandstats(r), redis_cpu(r), self.sink_counts()
        watch = CpuWatch({"redis": self.w.redis_proc.pid}, extra=[self.sink.pid])
        mark = 0  # a new log
        t0 = time.time()
        p = self.start_scoring()  # returns once it logged "consuming"
        watch.add("scoring", p.pid)
        perf = self.perf_start("journal")
        t_applied, t_first = self.wait_applied(EVENTS, t0, t0 + PHASE_CAP_S)
        if t_applied is None:
            raise RuntimeError("journal walk: %d of %d applied after %ds" %
                               (self.applied(), EVENTS, PHASE_CAP_S))
        self.finish_phase("journal", EVENTS, gen, t_applied, t_first, watch, stats0,
                          rcpu0, sink0, perf, mark)

    def phase_bus(self):
        """N other events pushed at scoring's PULL, as intake's router does."""
        self.reset()
        p = self.feed("push", "--endpoint", self.endpoint, "--events", EVENTS,
                      "--seed", 2, "--gap", GAP, "--pool-min", POOL_MIN, "--mix", MIX,
                      "--max-s", PHASE_CAP_S,
                      "--go-on-stdin", 1, stdin=subprocess.PIPE)
        line = p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError("tp-scoring-feed push: %r %s" % (line, p.stderr.read()))
        r = self.w.redis
        stats0, rcpu0, sink0 = commandstats(r), redis_cpu(r), self.sink_counts()
        watch = CpuWatch({"redis": self.w.redis_proc.pid,
                          "scoring": self.w.procs["scoring"].pid},
                         extra=[self.sink.pid, p.pid])
        perf = self.perf_start("bus")
        mark = self.log_mark()
        t0 = time.time()
        p.stdin.write("go\n")
        p.stdin.flush()
        t_applied, t_first = self.wait_applied(EVENTS, t0, t0 + PHASE_CAP_S, mark)
        gen = self.feed_result(p)
        if t_applied is None:
            raise RuntimeError("bus: %d of %d applied after %ds" %
                               (self.applied(), EVENTS, PHASE_CAP_S))
        self.bus_prefix = gen["customer_prefix"].encode()
        self.bus_customers = int(gen["customers"])
        # the clock from the first send (the pusher's own wall clock)
        t_applied -= max(0.0, float(gen["go_wall"]) - t0)
        self.finish_phase("bus", EVENTS, gen, t_applied, t_first, watch, stats0, rcpu0,
                          sink0, perf, mark)

    # ---- capture ----

    def capture(self):
        """The commands scoring sends, from a small walk on top of the bus
        phase's records (kept for the ceiling): the read script for a new
        and for an existing customer; per event type its apply calls,
        grouped by shape (the commands in them: a contact that regrades
        writes more than one that does not); the walk's XRANGE and done
        check; ZREM."""
        base = self.applied()
        mon = Monitor(self.w.redis_port)
        time.sleep(0.2)
        g = self.feed_result(self.feed("journal", "--port", self.w.redis_port, "--events",
                                       CAPTURE_EVENTS, "--seed", 3, "--gap", 40,
                                       "--pool-min", 20, "--mix", MIX))
        self.capture_prefix = g["customer_prefix"].encode()
        h.wait_until(lambda: self.applied() >= base + CAPTURE_EVENTS, 20,
                     what="capture events applied")
        h.wait_until(lambda: outbox_left(self.w.redis) == 0, 5,
                     what="capture outbox drained")
        time.sleep(0.3)
        lines = mon.stop()
        reads = {}   # customer key prefix -> the last read script call on it
        self.t = {}  # "read new", "read existing", "xrange", "zrem", "done_check"
        shapes = {t: {} for t in TYPES}  # type -> shape -> [count, args, desc]
        for line in lines:
            client, args = parse_monitor_line(line)
            if not args or client == "lua":
                continue
            cmd = args[0].upper()
            if cmd == b"XRANGE":
                self.t["xrange"] = args
            elif cmd == b"ZREM" and b"outbox:" in args[1]:
                self.t["zrem"] = args
            elif cmd in (b"EVALSHA", b"EVALSHA_RO"):  # read-only scripts: _RO
                nkeys = int(args[2])
                keys, argv = args[3:3 + nkeys], args[3 + nkeys:]
                if nkeys == 5 and keys[0].endswith(b":profile") and \
                        keys[1].endswith(b":deals"):
                    reads[keys[0][:-len(b"profile")]] = args
                elif nkeys and b":done:scoring:" in keys[0] and argv:
                    etype, desc = self.parse_apply(keys, argv)
                    prefix = keys[0][:keys[0].index(b"done:scoring:")]
                    if etype not in shapes or prefix not in reads:
                        continue
                    if argv[1] == b"0" and etype == "lead.captured":
                        self.t["read new"] = reads[prefix]
                    elif argv[1] != b"0":
                        self.t["read existing"] = reads[prefix]
                    s = shapes[etype].setdefault(desc["shape"], [0, None, desc])
                    s[0] += 1
                    s[1] = args
            elif cmd in (b"EXISTS", b"HEXISTS") and len(args) > 1 and \
                    b":done:scoring:" in args[1]:
                # the walk asks one done mark a command (pipelined): keys of
                # a step lie in many slots
                self.t["done_check"] = args
        # per type the shapes worth a bench (>= 5%, at most 4), weights among them
        self.variants = {}
        for t in TYPES:
            total = sum(c for c, _, _ in shapes[t].values())
            kept = sorted(shapes[t].values(), key=lambda s: -s[0])[:4]
            kept = [s for s in kept if total and s[0] >= 0.05 * total]
            w = sum(s[0] for s in kept)
            self.variants[t] = [("apply %s #%d" % (t, i + 1), s[0] / w, s[1], s[2],
                                 s[0] / total) for i, s in enumerate(kept)]
        need = ["xrange", "zrem", "done_check", "read new", "read existing"]
        missing = [k for k in need if k not in self.t] + \
            [t for t in TYPES if not self.variants[t]]
        if missing:
            raise RuntimeError("MONITOR capture lacks %s; saw %s" % (missing, sorted(self.t)))
        log("captured %d lines: %s" % (len(lines), "; ".join(
            "%s %d shapes (%s)" % (t, len(shapes[t]), ", ".join(
                "%.0f%%" % (100 * v[4]) for v in self.variants[t])) for t in TYPES)))

    @staticmethod
    def parse_apply(keys, argv):
        """(event type, description) of an apply call, its commands as the
        script reads them (common/src/apply.c: ARGV ttl, expected version,
        done field, version field, count, then per command: n, name, key
        index, n args)."""
        count, i, cmds, etype, derived = int(argv[4]), 5, [], None, 0
        for _ in range(count):
            n, name, key = int(argv[i]), argv[i + 1], keys[int(argv[i + 2]) - 1]
            a = argv[i + 3:i + 3 + n]
            if name == b"XADD" and etype is None and b"type" in a:
                etype = a[a.index(b"type") + 1].decode()
            role = key.rsplit(b"}:", 1)[-1].split(b":")[0] if b"}:" in key else \
                key[len(NS):].split(b":")[0]
            if name == b"ZADD" and b"outbox:" in key:
                derived += 1
            cmds.append("%s %s" % (name.decode(), role.decode()))
            i += 3 + n
        return etype, {"shape": tuple(cmds), "commands": count, "keys": len(keys),
                       "args": len(argv), "derived": derived}

    # ---- ceiling ----

    def ceiling_args(self, name, args):
        """(args, keyspace): a captured call made repeatable. New ids per
        call; a new customer per call for a lead; for the other types a
        random customer of the bus phase (its 12-digit index from
        __rand_int__ below `keyspace`), without the version guard (ARGV[2]
        ""): it does not know the record's version (one HGET less per
        apply)."""
        if name == "done_check":  # one mark not there yet, per call
            return [randomize(a) for a in args], None
        if name == "xrange":
            return [b"XRANGE", args[1], b"-", b"+", b"COUNT", str(WALK_BATCH).encode()], None
        if name in ("zrem", "read new") or name.startswith("apply lead.captured"):
            return [randomize(a) for a in args], None
        cust = re.compile(re.escape(self.capture_prefix) + rb"\d{12}")
        to = self.bus_prefix + b"__rand_int__"
        out = [randomize(cust.sub(to, a)) for a in args]
        if name.startswith("apply"):
            out[3 + int(args[2]) + 1] = b""
        return out, self.bus_customers

    def check_call(self, name, args, keyspace):
        """Runs the repeatable call once, as redis-benchmark will: an apply
        must apply (reply {1}), nothing may fail; else the ceiling would time
        error replies or no-ops."""
        import random
        one = [a.replace(b"__rand_int__", b"%012d" % random.randrange(keyspace))
               for a in args]
        try:
            reply = self.w.redis(*one)
        except RuntimeError as e:
            raise RuntimeError("ceiling call %s fails: %s" % (name, e))
        if name.startswith("apply") and reply != [1]:
            raise RuntimeError("ceiling call %s does not apply: reply %r" % (name, reply))

    SALTED = re.compile(rb"__rand_int__[0-9A-HJKMNP-TV-Z]{14}")

    def run_once(self, name, args, n, clients, pipeline, keyspace):
        """One redis-benchmark run, its ids salted anew. redis-benchmark
        seeds with time(NULL) ^ getpid(): runs started a second and a pid
        apart often get the same seed, so the same __rand_int__ numbers, and
        would find their done marks set by the run before (a no-op apply in
        a few us). Every randomised id (a ULID: 12 random digits + 14
        characters kept) gets this run's own 14 characters; customers of
        the bus phase keep their prefix. An apply run must leave n new done
        marks."""
        import random
        salt = "".join(random.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
                       for _ in range(14)).encode()
        run = [self.SALTED.sub(b"__rand_int__" + salt, a) for a in args]
        before = self.applied() if name.startswith("apply") else 0
        rps = redis_benchmark(self.w.redis_port, run, n, clients, pipeline, keyspace)
        if name.startswith("apply"):
            new = self.applied() - before
            if new < 0.99 * n:
                raise RuntimeError("ceiling %s: %d calls left only %d done marks: "
                                   "repeated ids, the ceiling would time no-ops" %
                                   (name, n, new))
        return rps

    def bench(self, name, args, clients=4, pipeline=16):
        args, keyspace = self.ceiling_args(name, args)
        keyspace = keyspace or 2000000000
        self.check_call(name, args, keyspace)
        probe = max(clients * pipeline * 4, 2000 if name != "xrange" else 64)
        rps = self.run_once(name, args, probe, clients, pipeline, keyspace)
        n = max(probe, int(rps * BENCH_SECONDS))
        rps = max(self.run_once(name, args, n, clients, pipeline, keyspace)
                  for _ in range(2))
        self.ceiling[name] = rps
        log("ceiling %-34s %10.0f calls/s  %8.2f us/call" % (name, rps, 1e6 / rps))

    def ceilings(self):
        self.w.kill("scoring", signal.SIGTERM)
        # a journal of realistic entries for XRANGE to read
        self.feed_result(self.feed("journal", "--port", self.w.redis_port, "--events",
                                   2 * WALK_BATCH, "--seed", 4, "--gap", 40,
                                   "--pool-min", 20, "--mix", MIX))
        self.ceiling = {}
        watch = CpuWatch({"redis": self.w.redis_proc.pid})
        self.bench("read new", self.t["read new"])
        self.bench("read existing", self.t["read existing"])
        for t in TYPES:
            for name, _, args, _, _ in self.variants[t]:
                self.bench(name, args)
        self.bench("zrem", self.t["zrem"])
        self.bench("xrange", self.t["xrange"], 2, 2)
        self.bench("done_check", self.t["done_check"])
        self.ceiling_cpu = watch.stop()

    def type_us(self, t):
        """Redis us of one event of type t: its read, its apply shapes
        weighted by how often the capture saw them."""
        read = "read new" if t == "lead.captured" else "read existing"
        return 1e6 / self.ceiling[read] + sum(w * 1e6 / self.ceiling[name]
                                              for name, w, _, _, _ in self.variants[t])

    def chain(self, res, walk):
        """Redis microseconds per event of the run's mix (its own counts),
        and the events/s that makes."""
        g, n = res["gen"], res["n"]
        us = {t: int(g.get(t, 0)) / n * self.type_us(t) for t in TYPES}
        us["ZREM per derived"] = res["derived_total"] / n * 1e6 / self.ceiling["zrem"]
        if walk:
            us["walk XRANGE+done"] = (1e6 / self.ceiling["xrange"] / WALK_BATCH +
                                      1e6 / self.ceiling["done_check"])
        total = sum(us.values())
        return 1e6 / total, total, us


    # ---- report ----

    def report(self):
        self.figures = []
        out = []
        P = out.append
        P("")
        P("Touchpoint scoring benchmark: tp-scoring alone (no intake) applying "
          "events to customer records in Redis")
        P("machine: %d cores; redis-server %s, AOF everysec; reconcile_lag %s, "
          "reconcile_batch %d, max_inflight 1024 (defaults); rules deploy/local/"
          "rules.ini%s" % (os.cpu_count(), info(self.w.redis, "server").get("redis_version"),
                           LAG, WALK_BATCH,
                           "; LD_PRELOAD=%s" % SERVICE_PRELOAD if SERVICE_PRELOAD else ""))
        g = self.results["journal"]["gen"]
        P("events per phase: %d (%s), %s customers, %s B per envelope; follow-ups "
          "on customers captured >= %d events earlier" %
          (EVENTS, ", ".join("%s %s" % (t, g.get(t)) for t in TYPES), g["customers"],
           g["envelope_bytes_avg"], GAP))
        P("")
        P("Redis ceiling (redis-benchmark, same Redis, scoring's own scripts by SHA, "
          "args as captured, pipelined -c 4 -P 16; leads on new customers, other "
          "types on a random one of the bus phase's %d customers per call):"
          % self.bus_customers)
        P("  %-36s %10s %9s %6s   %s" % ("call", "calls/s", "us/call", "share",
                                           "apply shape (command key...)"))
        for name, rps in self.ceiling.items():
            label, share, shape = name, "", ""
            if name.startswith("apply "):
                t = name.split(" ")[1]
                v = next(v for v in self.variants[t] if v[0] == name)
                share = "%.0f%%" % (100 * v[4])
                shape = ", ".join(v[3]["shape"])
            if name == "xrange":
                label = "%s x%d (walk step)" % (name, WALK_BATCH)
            elif name == "done_check":
                label = "done_check (EXISTS, per event)"
            P("  %-36s %10.0f %9.2f %6s   %s" % (label, rps, 1e6 / rps, share, shape))
        P("  per event, read + apply shapes weighted: " + ", ".join(
            "%s %.1f us" % (t, self.type_us(t)) for t in TYPES))
        P("")
        P("%-34s %10s %12s %8s" % ("path", "events/s", "ceiling ev/s", "ratio"))
        chains = {}
        for name, label, walk in (("journal", "journal walk (reconcile, batch %d)"
                                   % WALK_BATCH, True),
                                  ("bus", "bus (ZeroMQ PUSH -> PULL)", False)):
            r = self.results.get(name)
            if not r:
                continue
            ceil, us, parts = self.chain(r, walk)
            chains[name] = (ceil, us, parts)
            P("%-34s %10.0f %12.0f %7.0f%%" % (label, r["eps"], ceil, 100 * r["eps"] / ceil))
            self.figures.append({"name": "tp-scoring alone, " + label, "value": r["eps"],
                                 "unit": "events/s", "ceiling": ceil,
                                 "note": "ceiling: Redis, scoring's scripts, the run's mix"})
        for name, (ceil, us, parts) in chains.items():
            r = self.results[name]
            P("  ceiling %-7s = %.1f us of Redis per event: %s; in the run redis used "
              "%.1f us CPU per event (%.0f%% busy)" % (
                  name, us, ", ".join("%s %.1f" % (k, v) for k, v in parts.items()),
                  1e6 * r["cpu"]["used"]["redis"] / r["n"],
                  100 * r["cpu"]["used"]["redis"] / r["cpu"]["el"]))
        P("")
        P("CPU from start to 'all applied', in %% of one core (this machine has %d):"
          % os.cpu_count())
        hdr = "%-8s %8s %8s %7s %6s %8s %7s %7s   %7s %8s"
        P(hdr % ("path", "elapsed", "1st at", "redis", "fork", "scoring", "bench", "other",
                 "redis", "scoring"))
        P(hdr % ("", "", "", "", "", "", "", "", "us/ev", "us/ev"))
        warn = []
        for name in ("journal", "bus"):
            r = self.results.get(name)
            if not r:
                continue
            c, el, n = r["cpu"], r["cpu"]["el"], r["n"]
            pct = lambda x: "%.0f%%" % (100 * x / el)  # noqa: E731
            P(hdr % (name, "%.2fs" % r["t_applied"],
                     "%.2fs" % r["t_first"] if r["t_first"] else "n/a",
                     pct(c["used"]["redis"]), pct(c["fork"]), pct(c["used"]["scoring"]),
                     pct(c["helper"]), pct(c["other"]),
                     "%.1f" % (1e6 * c["used"]["redis"] / n),
                     "%.1f" % (1e6 * c["used"]["scoring"] / n)))
            if c["other"] / el > 0.25:
                warn.append("%s phase (%s)" % (name, pct(c["other"])))
        c = self.ceiling_cpu
        P(hdr % ("ceiling", "%.1fs" % c["el"], "", "%.0f%%" % (100 * c["used"]["redis"] / c["el"]),
                 "%.0f%%" % (100 * c["fork"] / c["el"]), "",
                 "%.0f%%" % (100 * c["helper"] / c["el"]),
                 "%.0f%%" % (100 * c["other"] / c["el"]), "", ""))
        P("  (1st at = first apply seen; fork = redis' AOF-rewrite child; bench = "
          "tp-scoring-feed (push, fake intake), redis-benchmark and this helper; "
          "other = processes not of this bench)")
        if c["other"] / c["el"] > 0.25:
            warn.append("ceiling phase (%.0f%%)" % (100 * c["other"] / c["el"]))
        if warn:
            P("  WARNING: other processes took CPU during the " + ", ".join(warn) +
              ": on this shared machine the figures above are low; run again when it "
              "is idle")
        P("")
        for name in ("journal", "bus"):
            r = self.results.get(name)
            if not r:
                continue
            n, cmd = r["n"], r["cmd"]
            calls = lambda k: cmd.get(k, (0, 0))[0]  # noqa: E731
            reads, applies, done = calls("lrange"), calls("hget"), r["verify"]["done_marks"]
            if r["gave_up"]:
                P("        GAVE UP on %d events (record kept changing through 8 attempts; "
                  "'left to reconcile')" % r["gave_up"])
            top = sorted(cmd.items(), key=lambda kv: -kv[1][1])[:6]
            P("%-7s Redis per event: %s" % (name, ", ".join(
                "%s %.1fus (%.2f calls)" % (k, v[1] / n, v[0] / n) for k, v in top)))
            P("        read scripts %.3f/event, apply scripts %.3f/event (%d stale "
              "retries), derived acked %.3f/event (%s), outbox left %d; checks: %d done "
              "marks, ver sum %d" % (
                  reads / n, applies / n, applies - done, r["derived_total"] / n,
                  ", ".join("%s %d" % kv for kv in sorted(r["derived"].items())),
                  r["verify"]["outbox_left"], done, r["verify"]["ver_sum"]))
        print("\n".join(out))
        sys.stdout.flush()
        write_result("scoring", self.figures)

    def perf_report(self):
        """Per phase: the share of samples by process, then for redis-server
        and tp-scoring their libraries and top symbols (shares of that
        process's own samples)."""
        for name in ("journal", "bus"):
            data = os.path.join(RUN_DIR, "perf-%s.data" % name)
            if not os.path.exists(data):
                continue
            print("perf profile of the %s phase:" % name)
            subprocess.run("perf report -i %s --no-children --sort comm --stdio -g none "
                           "2>/dev/null | grep '%%' | head -6" % data, shell=True)
            for comm in ("redis-server", "tp-scoring"):
                print("  %s by library, then top symbols (%% of its samples):" % comm)
                for sort, n in (("dso", 6), ("dso,sym", 14)):
                    subprocess.run("perf report -i %s --no-children --comms %s --sort %s "
                                   "--percentage relative --stdio -g none 2>/dev/null | "
                                   "grep '%%' | head -%d" % (data, comm, sort, n), shell=True)
            sys.stdout.flush()

def main():
    b = Bench()
    t0 = time.time()
    try:
        b.start_world()
        b.phase_journal()
        b.phase_bus()
        b.capture()
        b.ceilings()
        b.report()
        b.perf_report()
        log("done in %.0fs" % (time.time() - t0))
    finally:
        if b.sink and b.sink.poll() is None:
            b.sink.send_signal(signal.SIGTERM)
            try:
                b.sink.wait(5)
            except subprocess.TimeoutExpired:
                b.sink.kill()
        if b.w:
            b.w.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    main()
