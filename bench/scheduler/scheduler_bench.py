"""scheduler_bench.py: the body of bench/scheduler/run.sh.

One throwaway Redis (tests/lib/tp_harness.World: redis-server with AOF
everysec in a temp dir, free ports on 127.0.0.1) with tp-intake and
tp-scheduler running, and BullMQ (installed by run.sh into the temp dir)
against the same Redis in db 1. Redis is emptied (FLUSHALL) before every
phase. Per system, in this order:

  cal     a small schedule (CAL_N, due in an hour): the schedule rate, to
          place the next phases' due times a few seconds after their
          scheduling will have ended; also warms everything up;
  burst   N scheduled, all due at the same instant DUE_LEAD seconds after
          the expected end of scheduling; schedule rate = N / time until
          all N are stored as pending (BullMQ: addBulk resolved; Touchpoint:
          sum of the shards' pending counts {s0..15}:r:count = N); fire rate = N / (time the last one
          fired - the due time) (BullMQ: last job completed; Touchpoint: the
          shards' {s0..15}:r:stats fired = N); lateness per reminder (BullMQ:
          processor start - (job.timestamp + job.delay); Touchpoint: late_ms
          of each reminder.due, computed at claim time vs the due time,
          decoded by tp-sched-load late from the journal and, for those
          intake has not journaled JOURNAL_WAIT_S after the last claim,
          from the scheduler's outbox; how long journaling took is shown
          apart, as the notifier only sees journaled ones);
  paced   LAT_RATE reminders/s falling due evenly over LAT_SECONDS (a due
          rate both systems can sustain): lateness of the timer itself, not
          of a queue;
  memory  MEM_N scheduled (Touchpoint: up to MEM_MAX, posted at 85% of
          the burst's schedule rate (faster, intake's bus queue to the
          scheduler overflows and the rest waits for the slower reconcile
          walk), as many as that does in MEM_BUDGET_S; BullMQ: N), due in an
          hour: (used_memory after - before) / MEM_N, and by key shape
          (tp-sched-load keys: SCAN, MEMORY USAGE on a sample per pattern).

Touchpoint's reminders: inquiry.received events (one customer each, HTTP
batches of BATCH on CONNS connections, tp-sched-load post) each plan one
R-SLA-1 reminder due ts + [scheduler] inquiry_response; inquiry_response is
10m and the events' ts are set 10 minutes before the wanted due time (only
the sum matters to the scheduler). Scheduler settings: the deployment's
(poll_interval 1s, lookahead 2s, poll_batch 1000; reconcile_lag 2s),
working_hours_only false and no quiet hours (so due times are not moved).
SCHED_OPTS (e.g. "poll_batch=20000 poll_interval=200ms") overrides them.

Prints the table: both systems side by side with the targets (5x BullMQ's
rates, p99 lateness < 10 ms, < 200 bytes per pending reminder) and a verdict;
per-process CPU and Redis time per reminder for each burst window (PERF=1:
perf profiles of Touchpoint's); the memory breakdown by structure.
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
from tpbench import (CpuWatch, write_result, commandstats, env_int, info, log,  # noqa: E402
                     record_pid, stats_delta)

RUN_DIR = os.environ["TP_BENCH_DIR"]
TOOL = os.environ["TP_SCHED_LOAD"]
NODE_PATH = os.environ["TP_NODE_PATH"]
BULL_JS = os.path.join(HERE, "bullmq_bench.js")

N = env_int("N", 100000)
CAL_N = env_int("CAL_N", 10000)
BATCH = env_int("BATCH", 1000)
CONNS = env_int("CONNS", 4)
BULL_INFLIGHT = env_int("BULL_INFLIGHT", CONNS)
BULL_CONCURRENCY = env_int("BULL_CONCURRENCY", 1000)
DUE_LEAD = float(os.environ.get("DUE_LEAD", "3"))
LAT_RATE = env_int("LAT_RATE", 5000)
LAT_SECONDS = float(os.environ.get("LAT_SECONDS", "4"))
MEM_MAX = env_int("MEM_MAX", 1000000)
MEM_BUDGET_S = float(os.environ.get("MEM_BUDGET_S", "60"))
SAMPLE = env_int("SAMPLE", 300)
PERF = os.environ.get("PERF", "0") == "1"
SYSTEMS = os.environ.get("SYSTEMS", "bull,tp").split(",")
PHASES = os.environ.get("PHASES", "burst,own,paced,memory").split(",")
SCHED_OPTS = dict(kv.split("=", 1) for kv in os.environ.get("SCHED_OPTS", "").split())
INQUIRY_MS = 600000  # [scheduler] inquiry_response = 10m
FAR_MS = 3600000     # "due in an hour": never due during the bench
JOURNAL_WAIT_S = 15  # for intake to journal every reminder.due after the last fired
PHASE_CAP_S = 90  # per wait; the whole run stays under 4 minutes by its sizes

# Moves every pending reminder to ARGV[2] (ms): in each shard's groups, the
# group's index, the records and the owners' indexes (bench only: the own
# path's reminders are planned due in an hour, then all fall due at once).
TARGET_X = 5.0
TARGET_P99 = 10.0
TARGET_BYTES = 200.0


def now_ms():
    return int(time.time() * 1000)


def kv(out):
    return dict(l.split("=", 1) for l in out.split() if "=" in l)


class Bench:
    def __init__(self):
        self.w = None
        self.res = {"bull": {}, "tp": {}}
        self.base = 0  # customers never repeat across phases
        self.perfs = []

    # ---- world ----

    def start(self):
        import tempfile
        tempfile.tempdir = RUN_DIR
        sched = {"reconcile_lag": "2s", "reconcile_interval": "1s",
                 "poll_interval": "1s", "lookahead": "2s", "poll_batch": "1000",
                 "working_hours_only": "false", "quiet_hours": "",
                 "inquiry_response": "%dms" % INQUIRY_MS}
        sched.update(SCHED_OPTS)
        self.sched_cfg = sched
        cfg = {"log": {"level": "info"}, "scheduler": sched,
               "intake": {"max_batch": str(max(BATCH, 1000))}}
        self.w = h.World(config=cfg, services=[], receiver=False, acl=False)
        record_pid(self.w.redis_proc.pid)
        for svc in ("intake", "scheduler"):
            record_pid(self.w.start(svc).pid)
        h.wait_until(self.w._healthy, what="intake /healthz with redis up")
        self.r = self.w.redis
        self.pids = {"redis": self.w.redis_proc.pid,
                     "intake": self.w.procs["intake"].pid,
                     "scheduler": self.w.procs["scheduler"].pid}
        log("world in %s: redis :%d, intake http :%d" %
            (self.w.dir, self.w.redis_port, self.w.http_port))

    def idle_check(self, seconds=1.0):
        """CPU the machine spends outside this bench while it is idle (other
        sessions' builds, tests, fuzzers), in % of one core."""
        w = CpuWatch(dict(self.pids))
        time.sleep(seconds)
        c = w.stop()
        self.res["idle_other"] = 100 * c["other"] / c["el"]
        log("before the run, other processes use %.0f%% of a core" % self.res["idle_other"])

    def reset(self):
        self.r("FLUSHALL")
        self.r("CONFIG", "RESETSTAT")
        time.sleep(0.3)

    def used_memory(self):
        time.sleep(0.3)  # intake and the scheduler settle (acks, outbox)
        return int(info(self.r, "memory")["used_memory"])

    def pending(self):
        """Sum of the shards' pending counts (HGET {s0..15}:r:count pending,
        kept by the scheduler's scripts with its writes), in one round trip."""
        cmds = b"".join(b"*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n$7\r\npending\r\n" % (len(k), k)
                        for k in (b"tp:{s%d}:r:count" % b for b in range(16)))
        self.r.sock.sendall(cmds)
        return sum(int(self.r._reply() or 0) for _ in range(16))

    def fired(self):
        """Reminders fired: the sum of the shards' counters ({s<n>}:r:stats
        fired), in one round trip."""
        cmds = b"".join(b"*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n$5\r\nfired\r\n" % (len(k), k)
                        for k in (b"tp:{s%d}:r:stats" % b for b in range(16)))
        self.r.sock.sendall(cmds)
        return sum(int(self.r._reply() or 0) for _ in range(16))

    def journaled(self):
        try:
            i = self.r("XINFO", "STREAM", "tp:{j}:journal")
        except RuntimeError:
            return 0
        f = dict(zip(i[0::2], i[1::2]))
        return int(f.get("entries-added", f.get("length", 0)))

    def tool(self, *args):
        p = subprocess.Popen([TOOL] + [str(a) for a in args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        record_pid(p.pid)
        return p

    @staticmethod
    def drain(p, name):
        """The output of `p` once it has ended, without reaping it: a CpuWatch
        stopped after this still reads its CPU in /proc (a zombie keeps its
        times until reaped). Call result() to reap."""
        out, err = p.stdout.read(), p.stderr.read()
        if err.strip():
            log("%s: %s" % (name, err.strip()[-600:]))
        return out

    @staticmethod
    def result(p, name, out=None):
        if out is None:
            out = Bench.drain(p, name)
        p.wait()
        if p.returncode != 0:
            log("%s exited %d" % (name, p.returncode))
        return out

    def node(self, *args):
        env = dict(os.environ, NODE_PATH=NODE_PATH)
        p = subprocess.Popen(["node", BULL_JS] + [str(a) for a in args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        record_pid(p.pid)
        return p

    def bull_args(self):
        return ["--port", self.w.redis_port, "--db", 1, "--queue", "reminders"]

    def keys(self, db):
        out = self.result(self.tool("keys", "--port", self.w.redis_port, "--db", db,
                                    "--sample", SAMPLE), "tp-sched-load keys")
        rows = []
        for line in out.splitlines():
            p = line.split("\t")
            if len(p) == 7:
                rows.append({"pattern": p[0], "count": int(p[1]), "sampled": int(p[2]),
                             "avg": float(p[3]), "type": p[4], "enc": p[5],
                             "elems": float(p[6])})
        return rows

    # ---- perf (PERF=1) ----

    def perf_start(self, name, pids=None):
        if not PERF:
            return None
        data = os.path.join(RUN_DIR, "perf.%s.data" % name)
        graph = ["--call-graph", "dwarf,16384"] if os.environ.get("PERF_GRAPH") == "1" else []
        p = subprocess.Popen(["perf", "record", "-F", "999"] + graph + ["-o", data, "-p",
                              ",".join(str(x) for x in (pids or self.pids).values())],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        record_pid(p.pid)
        return p, name, data

    def perf_stop(self, handle):
        if not handle:
            return
        p, name, data = handle
        p.send_signal(signal.SIGINT)
        p.wait(30)
        self.perfs.append((name, data))

    def perf_report(self):
        for name, data in self.perfs:
            print("perf profile of Touchpoint's burst, %s window (share of all samples):" %
                  name)
            sys.stdout.flush()
            subprocess.run("perf report -i %s --sort comm --stdio 2>/dev/null | grep '%%' | "
                           "head -5" % data, shell=True)
            for comm in ("redis-server", "tp-scheduler", "tp-intake"):
                print("  top symbols of %s:" % comm)
                sys.stdout.flush()
                subprocess.run("perf report -i %s --comms %s --sort dso,sym --stdio "
                               "2>/dev/null | grep '%%' | head -12" % (data, comm), shell=True)
            sys.stdout.flush()

    # ---- Touchpoint ----

    def tp_post(self, n, ts, spread_ms=0, rate=0):
        p = self.tool("post", "--port", self.w.http_port, "--key", h.API_KEY, "--conns",
                      CONNS, "--batch", BATCH, "--events", n, "--base", self.base, "--ts",
                      ts, "--spread-ms", spread_ms, "--rate", int(rate),
                      "--max-s", PHASE_CAP_S)
        self.base += n
        return p

    def tp_schedule(self, n, ts, spread_ms=0, watch=None, rate=0, cap_s=PHASE_CAP_S + 30):
        """Posts n inquiries; returns (seconds until all n are pending, the
        post tool's key=values). `watch` (a CpuWatch) counts the post tool
        as "load" and is stopped once all are pending."""
        t0 = time.time()
        p = self.tp_post(n, ts, spread_ms, rate)
        if watch:
            watch.add("load", p.pid)
        t_all = None
        last, last_t = -1, time.time()
        while time.time() - t0 < cap_s:
            k = self.pending()
            if k >= n:
                t_all = time.time() - t0
                break
            if k != last:
                last, last_t = k, time.time()
            elif ended(p.pid) and time.time() - last_t > 10:
                break  # everything posted and nothing planned for 10 s: stuck
            time.sleep(0.01)
        out = self.drain(p, "tp-sched-load post")
        cpu = watch.stop() if watch else None
        g = kv(self.result(p, "tp-sched-load post", out))
        if watch:
            g["cpu"] = cpu
        if t_all is None:
            log("Touchpoint: only %d of %d pending after %.0fs" %
                (self.pending(), n, time.time() - t0))
        return t_all, g

    def tp_cal(self):
        self.reset()
        t, g = self.tp_schedule(CAL_N, now_ms() + FAR_MS - INQUIRY_MS)
        self.tp_cal_rate = CAL_N / t if t else 1000.0
        self.res["tp"]["cal_rate"] = self.tp_cal_rate
        log("Touchpoint cal: %d scheduled in %.2fs -> %.0f/s (intake accepted at %s/s)" %
            (CAL_N, t or -1, self.tp_cal_rate, g.get("accept_rate")))

    def tp_wait_journal(self, n_events, n_due, cap_s=30):
        """Waits until intake has journaled every reminder.due (the journal
        holds the n_events inquiries and n_due reminders, the scheduler's
        outbox is empty)."""
        deadline = time.time() + cap_s
        while time.time() < deadline:
            if self.journaled() >= n_events + n_due and \
                    int(self.r("ZCARD", "tp:outbox:scheduler")) == 0:
                return True
            time.sleep(0.05)
        log("Touchpoint: journal holds %d of %d entries after %ds" %
            (self.journaled(), n_events + n_due, cap_s))
        return False

    def tp_late(self):
        return kv(self.result(self.tool("late", "--port", self.w.redis_port),
                              "tp-sched-load late"))

    def tp_burst(self):
        self.reset()
        R = self.res["tp"]
        due = now_ms() + int(1000 * (N / self.tp_cal_rate * 1.3 + DUE_LEAD))
        st0, w = commandstats(self.r), CpuWatch(dict(self.pids))
        perf = self.perf_start("schedule")
        t, g = self.tp_schedule(N, due - INQUIRY_MS, watch=w)
        self.perf_stop(perf)
        R["sched_cpu"], R["sched_cmd"] = g.pop("cpu"), stats_delta(commandstats(self.r), st0)
        R["sched_rate"] = N / t if t else 0.0
        R["sched_s"], R["post"] = t, g
        R["sched_margin_ms"] = due - now_ms()
        log("Touchpoint burst: %d scheduled in %.2fs -> %.0f/s; due in %.2fs" %
            (N, t or -1, R["sched_rate"], R["sched_margin_ms"] / 1000))
        if R["sched_margin_ms"] < 500:
            log("WARNING: Touchpoint's reminders fell due before scheduling ended: raise DUE_LEAD")
        while now_ms() < due:
            time.sleep(0.002)
        st0, w = commandstats(self.r), CpuWatch(dict(self.pids))
        perf = self.perf_start("fire")
        t_fired = None
        while now_ms() - due < 1000 * PHASE_CAP_S:
            if self.fired() >= N:
                t_fired = (now_ms() - due) / 1000
                break
            time.sleep(0.005)
        R["fire_cpu"], R["fire_cmd"] = w.stop(), stats_delta(commandstats(self.r), st0)
        self.perf_stop(perf)
        R["fire_s"] = t_fired
        R["fire_rate"] = N / t_fired if t_fired else 0.0
        log("Touchpoint burst: %d fired in %.2fs after the due time -> %.0f/s" %
            (self.fired(), t_fired or -1, R["fire_rate"]))
        R["journal_complete"] = self.tp_wait_journal(N, N, JOURNAL_WAIT_S)
        R["late"] = self.tp_late()
        log("Touchpoint burst lateness: p50 %s p99 %s max %s ms (%s reminders fired, %s of "
            "them journaled by intake, the rest still in the scheduler's outbox)"
            % (R["late"].get("late_p50_ms"), R["late"].get("late_p99_ms"),
               R["late"].get("late_max_ms"), R["late"].get("reminders"),
               R["late"].get("journaled")))

    def tp_own(self):
        """The scheduler's own path, without intake in the window measured:
        N inquiries posted while the scheduler is stopped (intake journals
        them; its bus has no scheduler to route them to), then the scheduler
        started: own schedule rate = N / (time until all N are pending),
        the scheduler reading them from the journal itself (its reconcile
        walk: XRANGE, the done marks, the applies), timed from the first one
        planned (the walk's first tick is a second after the start). Then intake is stopped
        before they fall due, so nothing journals reminder.due meanwhile:
        own fire rate = N / (time the last one fired - the due time), the
        claims and the outbox writes only."""
        self.reset()
        R = self.res["tp"]
        self.w.kill("scheduler", signal.SIGTERM)
        due = now_ms() + 3600000  # moved below once scheduling is timed
        t, g = self.tp_schedule_journal_only(N, due - INQUIRY_MS)
        if not t:
            return
        self.pids["scheduler"] = self.w.start("scheduler").pid
        record_pid(self.pids["scheduler"])
        t0, t_all = time.time(), None
        while self.pending() == 0 and time.time() - t0 < PHASE_CAP_S:
            time.sleep(0.002)  # the walk's first tick
        st0, w = commandstats(self.r), CpuWatch(dict(self.pids))
        t0 = time.time()
        while time.time() - t0 < PHASE_CAP_S:
            if self.pending() >= N:
                t_all = time.time() - t0
                break
            time.sleep(0.01)
        R["own_sched_cpu"], R["own_sched_cmd"] = w.stop(), stats_delta(commandstats(self.r), st0)
        R["own_sched_rate"] = N / t_all if t_all else 0.0
        log("Touchpoint own path: %d planned from the journal in %.2fs -> %.0f/s" %
            (N, t_all or -1, R["own_sched_rate"]))
        if not t_all:
            return
        # every reminder due DUE_LEAD from now: move them there (the same
        # instant for all), with intake stopped first
        self.w.kill("intake", signal.SIGTERM)
        due = now_ms() + int(1000 * DUE_LEAD)
        p = self.tool("move", "--port", self.w.redis_port, "--ts", due)
        moved = kv(self.result(p, "move")).get("moved")
        log("Touchpoint own path: %s reminders moved to one due time" % moved)
        while now_ms() < due:
            time.sleep(0.002)
        st0, w = commandstats(self.r), CpuWatch({"redis": self.pids["redis"],
                                                 "scheduler": self.pids["scheduler"]})
        perf = self.perf_start("own_fire", {"redis": self.pids["redis"],
                                            "scheduler": self.pids["scheduler"]})
        t_fired = None
        while now_ms() - due < 1000 * PHASE_CAP_S:
            if self.fired() >= N:
                t_fired = (now_ms() - due) / 1000
                break
            time.sleep(0.005)
        self.perf_stop(perf)
        R["own_fire_cpu"], R["own_fire_cmd"] = w.stop(), stats_delta(commandstats(self.r), st0)
        R["own_fire_rate"] = N / t_fired if t_fired else 0.0
        log("Touchpoint own path: %d fired in %.2fs after the due time, intake stopped -> "
            "%.0f/s" % (self.fired(), t_fired or -1, R["own_fire_rate"]))
        self.pids["intake"] = self.w.start("intake").pid
        record_pid(self.pids["intake"])
        h.wait_until(self.w._healthy, what="intake /healthz with redis up")

    def tp_schedule_journal_only(self, n, ts):
        """Posts n inquiries with no scheduler running; returns (seconds until
        intake journaled all n, the post tool's key=values)."""
        t0 = time.time()
        p = self.tp_post(n, ts)
        t_all = None
        while time.time() - t0 < PHASE_CAP_S:
            if self.journaled() >= n:
                t_all = time.time() - t0
                break
            time.sleep(0.02)
        g = kv(self.result(p, "tp-sched-load post"))
        if t_all is None:
            log("Touchpoint own path: only %d of %d journaled" % (self.journaled(), n))
        return t_all, g

    def tp_paced(self):
        self.reset()
        R = self.res["tp"]
        n = int(LAT_RATE * LAT_SECONDS)
        first = now_ms() + int(1000 * (n / self.tp_cal_rate * 1.3 + DUE_LEAD))
        t, _ = self.tp_schedule(n, first - INQUIRY_MS, int(LAT_SECONDS * 1000))
        end = first + int(LAT_SECONDS * 1000)
        while self.fired() < n and now_ms() < end + 1000 * PHASE_CAP_S:
            time.sleep(0.05)
        self.tp_wait_journal(n, n, JOURNAL_WAIT_S)
        R["paced"] = self.tp_late()
        R["paced_n"] = n
        log("Touchpoint paced (%d/s over %.0fs): lateness p50 %s p99 %s max %s ms" %
            (LAT_RATE, LAT_SECONDS, R["paced"].get("late_p50_ms"),
             R["paced"].get("late_p99_ms"), R["paced"].get("late_max_ms")))

    def tp_memory(self):
        self.reset()
        R = self.res["tp"]
        # posted at 85% of the burst's schedule rate: faster, intake's bus queue to
        # the scheduler overflows and the rest waits for the (slower)
        # reconcile walk of the journal
        rate = 0.85 * (R.get("sched_rate") or self.tp_cal_rate)
        n = int(min(MEM_MAX, max(N, rate * MEM_BUDGET_S)) // BATCH * BATCH)
        m0 = self.used_memory()
        k0 = int(self.r("DBSIZE"))
        t, _ = self.tp_schedule(n, now_ms() + FAR_MS - INQUIRY_MS, rate=rate,
                                cap_s=2 * MEM_BUDGET_S + 30)
        self.tp_wait_journal(n, 0, 10)
        m1 = self.used_memory()
        R["mem_posted"] = n
        R["mem_n"] = n if t else self.pending()  # all of them, unless it ran out of time
        R["mem_rate"] = n / t if t else 0.0
        R["mem_total"] = (m1 - m0) / max(1, R["mem_n"])
        R["mem_keys"] = int(self.r("DBSIZE")) - k0
        R["mem_info"] = info(self.r, "memory")
        log("Touchpoint memory: %d pending (scheduled at %.0f/s): %.0f bytes each "
            "(used_memory delta)" % (n, R["mem_rate"], R["mem_total"]))
        R["mem_rows"] = self.keys(0)
        # What stays once the journal's retention has passed: the inquiries'
        # journal entries and intake's dedupe keys ({j}:id:*, which expire)
        # go; the reminders stay.
        self.r("XTRIM", "tp:{j}:journal", "MAXLEN", "0")
        cursor = "0"
        while True:
            cursor, keys = self.r("SCAN", cursor, "MATCH", "tp:{j}:id:*", "COUNT", "10000")
            if keys:
                self.r("UNLINK", *keys)
            if cursor == "0":
                break
        m2 = self.used_memory()
        R["mem_kept"] = (m2 - m0) / max(1, R["mem_n"])
        log("Touchpoint memory once the journal's retention has passed: %.0f bytes each "
            "(used_memory delta)" % R["mem_kept"])

    # ---- BullMQ ----

    def bull_add(self, n, due, spread=0, watch=None):
        """Adds n jobs; `watch` counts the node process as "node add" and is
        stopped when it ends (its result as "cpu")."""
        p = self.node("add", *self.bull_args(), "--n", n, "--batch", BATCH, "--inflight",
                      BULL_INFLIGHT, "--due", due, "--spread", spread, "--base", self.base)
        self.base += n
        if watch:
            watch.add("node add", p.pid)
        out = self.drain(p, "bullmq add")
        cpu = watch.stop() if watch else None
        g = kv(self.result(p, "bullmq add", out))
        if watch:
            g["cpu"] = cpu
        return g

    def bull_worker(self, n):
        p = self.node("work", *self.bull_args(), "--n", n, "--concurrency", BULL_CONCURRENCY)
        line = p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError("BullMQ worker did not start: %r %s" % (line, p.stderr.read()))
        return p

    def bull_cal(self):
        self.reset()
        g = self.bull_add(CAL_N, now_ms() + FAR_MS)
        self.bull_cal_rate = float(g.get("add_rate", 1000))
        self.res["bull"]["cal_rate"] = self.bull_cal_rate
        log("BullMQ cal: %d added at %.0f/s" % (CAL_N, self.bull_cal_rate))

    def bull_burst(self):
        self.reset()
        R = self.res["bull"]
        wp = self.bull_worker(N)
        due = now_ms() + int(1000 * (N / self.bull_cal_rate * 1.3 + DUE_LEAD))
        pids = {"redis": self.w.redis_proc.pid, "node work": wp.pid}
        st0, w = commandstats(self.r), CpuWatch(dict(pids))
        g = self.bull_add(N, due, watch=w)
        R["sched_cpu"], R["sched_cmd"] = g.pop("cpu"), stats_delta(commandstats(self.r), st0)
        R["add"] = g
        R["sched_rate"] = float(g.get("add_rate", 0))
        R["sched_margin_ms"] = due - now_ms()
        log("BullMQ burst: %d added at %.0f/s; due in %.2fs" %
            (N, R["sched_rate"], R["sched_margin_ms"] / 1000))
        if R["sched_margin_ms"] < 500 or int(g.get("added_late", 0)):
            log("WARNING: BullMQ's jobs fell due before adding ended: raise DUE_LEAD")
        while now_ms() < due:
            time.sleep(0.002)
        st0, w = commandstats(self.r), CpuWatch(dict(pids))
        out = self.drain(wp, "bullmq work")  # ends when N jobs completed
        R["fire_cpu"], R["fire_cmd"] = w.stop(), stats_delta(commandstats(self.r), st0)
        wk = kv(self.result(wp, "bullmq work", out))
        R["work"] = wk
        t = (int(wk.get("last_done_ms", 0)) - due) / 1000
        R["fire_s"] = t
        R["fire_rate"] = N / t if t > 0 else 0.0
        log("BullMQ burst: %s processed in %.2fs after the due time -> %.0f/s; lateness p50 %s "
            "p99 %s max %s ms" % (wk.get("processed"), t, R["fire_rate"],
                                  wk.get("late_p50_ms"), wk.get("late_p99_ms"),
                                  wk.get("late_max_ms")))

    def bull_paced(self):
        self.reset()
        R = self.res["bull"]
        n = int(LAT_RATE * LAT_SECONDS)
        wp = self.bull_worker(n)
        first = now_ms() + int(1000 * (n / self.bull_cal_rate * 1.3 + DUE_LEAD))
        self.bull_add(n, first, int(LAT_SECONDS * 1000))
        R["paced"], R["paced_n"] = kv(self.result(wp, "bullmq work")), n
        log("BullMQ paced (%d/s over %.0fs): lateness p50 %s p99 %s max %s ms" %
            (LAT_RATE, LAT_SECONDS, R["paced"].get("late_p50_ms"),
             R["paced"].get("late_p99_ms"), R["paced"].get("late_max_ms")))

    def bull_memory(self):
        self.reset()
        R = self.res["bull"]
        m0 = self.used_memory()
        g = self.bull_add(N, now_ms() + FAR_MS)
        m1 = self.used_memory()
        R["mem_n"] = R["mem_posted"] = N
        R["mem_rate"] = float(g.get("add_rate", 0))
        R["mem_total"] = (m1 - m0) / N
        log("BullMQ memory: %d delayed jobs: %.0f bytes each (used_memory delta)" %
            (N, R["mem_total"]))
        R["mem_rows"] = self.keys(1)

    def count_log_lines(self):
        """Lines of the services' logs that explain delays."""
        import re
        pats = {"scheduler: late batches (> 1 s)": ("scheduler", r"fired \d+ reminders late"),
                "scheduler: emit resends": ("scheduler", r"emit: resending"),
                "scheduler: reconcile batches (missed on the bus)":
                    ("scheduler", r"reconcile: applying"),
                "warnings and errors": (None, r'"level":\s*"(?:warn|error)"')}
        out = {}
        seen = {}
        for svc in ("intake", "scheduler"):
            try:
                text = self.w.log(svc)
            except OSError:
                continue
            for m in re.finditer(r'"level":"(?:warn|error)".*?"msg":"(.*)"\}', text):
                shape = re.sub(r"\d+", "#", m.group(1))[:150]
                seen[(svc, shape)] = seen.get((svc, shape), 0) + 1
        self.res["warnings"] = sorted(seen.items(), key=lambda kv_: -kv_[1])[:6]
        for label, (svc, rx) in pats.items():
            n = 0
            for s in ([svc] if svc else ["intake", "scheduler"]):
                try:
                    n += len(re.findall(rx, self.w.log(s)))
                except OSError:
                    pass
            out[label] = n
        self.res["logs"] = out

    # ---- report ----

    def report(self):
        B, T = self.res["bull"], self.res["tp"]
        out = []
        P = out.append
        f0 = lambda x: "%.0f" % x if x else "n/a"  # noqa: E731

        def ratio_verdict(tp, bull, higher=True):
            if not tp or not bull:
                return "n/a", "n/a"
            x = tp / bull
            return "%.2fx" % x, ("PASS" if x >= TARGET_X else "FAIL")

        P("")
        P("Touchpoint scheduler vs BullMQ %s: %d reminders, one run, same redis-server %s "
          "(AOF everysec), %d cores" % (self.bull_version, N,
                                        info(self.r, "server").get("redis_version"),
                                        os.cpu_count()))
        if self.res.get("idle_other", 0) > 25:
            P("  WARNING: before the run, other processes used %.0f%% of a core of this "
              "%d-core machine: every figure below is lower than on an idle one" %
              (self.res["idle_other"], os.cpu_count()))
        P("  Touchpoint: inquiry.received in HTTP batches of %d on %d connections -> "
          "tp-intake -> journal -> tp-scheduler (poll_interval %s, lookahead %s, "
          "poll_batch %s)" % (BATCH, CONNS, self.sched_cfg["poll_interval"],
                              self.sched_cfg["lookahead"], self.sched_cfg["poll_batch"]))
        P("  BullMQ: Queue.addBulk of %d jobs, %d calls in flight (one node process), "
          "delay so all fall due at one instant; one Worker process, concurrency %d; "
          "jobId per job, removeOnComplete" % (BATCH, BULL_INFLIGHT, BULL_CONCURRENCY))
        P("")
        hdr = "%-44s %12s %12s %10s %-22s %s"
        P(hdr % ("", "BullMQ", "Touchpoint", "TP/BullMQ", "target", "verdict"))
        sx, sv = ratio_verdict(T.get("sched_rate"), B.get("sched_rate"))
        P(hdr % ("schedule rate, reminders/s (burst, N=%d)" % N, f0(B.get("sched_rate")),
                 f0(T.get("sched_rate")), sx, ">= 5x BullMQ", sv))
        fx, fv = ratio_verdict(T.get("fire_rate"), B.get("fire_rate"))
        P(hdr % ("fire rate, reminders/s (all due at once)", f0(B.get("fire_rate")),
                 f0(T.get("fire_rate")), fx, ">= 5x BullMQ", fv))
        if T.get("own_sched_rate") is not None:
            ox, ov = ratio_verdict(T.get("own_sched_rate"), B.get("sched_rate"))
            P(hdr % ("  own path: schedule (from the journal)", f0(B.get("sched_rate")),
                     f0(T.get("own_sched_rate")), ox, ">= 5x BullMQ", ov))
            ox, ov = ratio_verdict(T.get("own_fire_rate"), B.get("fire_rate"))
            P(hdr % ("  own path: fire (intake stopped)", f0(B.get("fire_rate")),
                     f0(T.get("own_fire_rate")), ox, ">= 5x BullMQ", ov))
        bl, tl = B.get("work", {}), T.get("late", {})
        for q in ("p50", "p99", "max"):
            k = "late_%s_ms" % q
            tv = tl.get(k)
            v = verdict(tv is not None and float(tv) < TARGET_P99, tv) if q == "p99" else ""
            P(hdr % ("lateness %s, ms (burst: queueing)" % q, bl.get(k, "n/a"),
                     tv if tv is not None else "n/a", "", "< 10 ms" if q == "p99" else "", v))
        bp, tp = B.get("paced", {}), T.get("paced", {})
        for q in ("p50", "p99", "max"):
            k = "late_%s_ms" % q
            tv = tp.get(k)
            v = verdict(tv is not None and float(tv) < TARGET_P99, tv) if q == "p99" else ""
            P(hdr % ("lateness %s, ms (paced %d/s over %.0fs)" % (q, LAT_RATE, LAT_SECONDS),
                     bp.get(k, "n/a"), tv if tv is not None else "n/a", "",
                     "< 10 ms" if q == "p99" else "", v))
        if tp:
            P(hdr % ("  Touchpoint paced: journaled p50/p99, ms", "", "%s/%s" % (
                tp.get("journal_delay_p50_ms"), tp.get("journal_delay_p99_ms")), "", "", ""))
        mb, mt, mk = B.get("mem_total"), T.get("mem_total"), T.get("mem_kept")
        P(hdr % ("bytes per pending reminder (used_memory)", f0(mb), f0(mk),
                 "%.2fx" % (mk / mb) if mb and mk else "n/a", "< 200 B",
                 verdict(mk and mk < TARGET_BYTES, mk)))
        P(hdr % ("  with the inquiries' journal entries", f0(mb), f0(mt),
                 "%.2fx" % (mt / mb) if mb and mt else "n/a", "", ""))
        sched_b = self.scheduler_bytes(T.get("mem_rows", []), T.get("mem_n", 1))
        P(hdr % ("  the scheduler's own keys (MEMORY USAGE)", "", f0(sched_b), "", "< 200 B",
                 verdict(sched_b and sched_b < TARGET_BYTES, sched_b)))
        P("  (Touchpoint's first figure: used_memory after scheduling, with the journal then "
          "trimmed and intake's dedupe keys removed, as its retention does, minus before: the "
          "reminders' books, indexes and done marks, what stays while they are pending)")
        P("  (memory: BullMQ at %d delayed jobs, Touchpoint at %d pending reminders (scheduled "
          "at %s/s); rates in reminders/s; lateness = start of processing (BullMQ) / claim "
          "(Touchpoint) - due time)" % (B.get("mem_n", 0), T.get("mem_n", 0),
                                        f0(T.get("mem_rate"))))
        if T.get("mem_n") and T.get("mem_n") < T.get("mem_posted", 0):
            P("  WARNING: Touchpoint's memory phase ran out of time: %d of %d posted were "
              "pending; bytes are per pending reminder, the journal holds all posted" %
              (T["mem_n"], T["mem_posted"]))
        P("  checks: Touchpoint burst: %s reminders fired of N=%d (reminder.due decoded from "
          "the journal, %s, and the scheduler's outbox, %s), %s journaled twice, fired "
          "counter %s; BullMQ %s processed, %s failed; due margins after scheduling: "
          "BullMQ %.1fs, Touchpoint %.1fs" %
          (tl.get("reminders"), N, tl.get("journaled"), tl.get("outbox_only"),
           tl.get("journaled_twice"), N if T.get("fire_s") else "short",
           bl.get("processed"), bl.get("failed"), B.get("sched_margin_ms", 0) / 1000,
           T.get("sched_margin_ms", 0) / 1000))
        pg = T.get("post", {})
        if pg:
            P("  Touchpoint burst posting: intake accepted %s events at %s/s, %s answered 503 "
              "(retried), %s connections reopened" % (pg.get("accepted"),
                                                      pg.get("accept_rate"),
                                                      pg.get("busy_retries"),
                                                      pg.get("reconnects")))
        if tl:
            P("  Touchpoint burst: first claim %+d ms, last claim %+d ms after the due time; "
              "reminder.due journaled by intake (what the notifier waits for) p50 %s ms / "
              "p99 %s ms / max %s ms after the due time, %s of %s within %ds of the last "
              "claim" % (int(tl.get("first_claim_ms", 0)) - int(tl.get("first_due_ms", 0)),
                         int(tl.get("last_claim_ms", 0)) - int(tl.get("first_due_ms", 0)),
                         tl.get("journal_delay_p50_ms"), tl.get("journal_delay_p99_ms"),
                         tl.get("journal_delay_max_ms"), tl.get("journaled"),
                         tl.get("reminders"), JOURNAL_WAIT_S))
        if bl:
            P("  BullMQ burst: first processor start %+d ms, last %+d ms after the due time"
              % (int(bl.get("first_start_ms", 0)) - int(bl.get("first_due_ms", 0)),
                 int(bl.get("last_start_ms", 0)) - int(bl.get("first_due_ms", 0))))
        P("  reference (measured elsewhere): BullMQ adds 21k delayed jobs/s, fires 18k/s, "
          "p99 lateness 97 ms; cal runs (%d): BullMQ %s/s, Touchpoint %s/s" %
          (CAL_N, f0(B.get("cal_rate")), f0(T.get("cal_rate"))))

        # ---- where the time goes ----
        P("")
        P("CPU in %% of one core over each burst window (this machine has %d cores), and "
          "Redis time per reminder:" % os.cpu_count())
        for sysname, R in (("BullMQ", B), ("Touchpoint", T)):
            for phase in ("sched", "fire", "own_sched", "own_fire"):
                c = R.get(phase + "_cpu")
                if not c:
                    continue
                el = c["el"]
                parts = ["%s %.0f%%" % (k, 100 * v / el) for k, v in c["used"].items()]
                parts += ["redis fork %.0f%%" % (100 * c["fork"] / el),
                          "bench %.0f%%" % (100 * c["helper"] / el),
                          "other %.0f%%" % (100 * c["other"] / el)]
                P("  %-10s %-8s %6.2fs: %s" % (sysname, {"sched": "schedule", "fire": "fire",
                                                          "own_sched": "own sch",
                                                          "own_fire": "own fire"}[phase],
                                               el, ", ".join(parts)))
                cmd = R.get(phase + "_cmd", {})
                ev = cmd.get("evalsha", (0, 0))
                top = sorted(((k, v) for k, v in cmd.items() if k != "evalsha"),
                             key=lambda kv_: -kv_[1][1])[:6]
                P("  %-10s %-8s redis CPU %.1f us/reminder; scripts (EVALSHA) %.1f us in %.2f "
                  "calls/reminder; commands (inside scripts or not): %s" % (
                      "", "", 1e6 * c["used"]["redis"] / N, ev[1] / N, ev[0] / N,
                      ", ".join("%s %.1fus x%.2f" % (k, v[1] / N, v[0] / N) for k, v in top)))
                if c["other"] / el > 0.25:
                    P("  WARNING: other processes took %.0f%% of a core in this window: "
                      "figures are low; run again on an idle machine" % (100 * c["other"] / el))
        logs = self.res.get("logs", {})
        if logs:
            P("  service log lines during the run: " + ", ".join(
                "%s %d" % (k, v) for k, v in logs.items()))
        for (svc, shape), cnt in self.res.get("warnings", []):
            P("    %dx %s: %s" % (cnt, svc, shape))
        pc = self.sched_cfg
        cap = 16 * int(pc["poll_batch"]) / (h_ms(pc["poll_interval"]) / 1000.0)
        P("  Touchpoint's poll arms at most 16 buckets x poll_batch %s per poll_interval %s "
          "= %.0f reminders/s (what the burst's fire rate can reach when all are due at once)"
          % (pc["poll_batch"], pc["poll_interval"], cap))

        # ---- memory ----
        for sysname, R in (("Touchpoint", T), ("BullMQ", B)):
            rows = R.get("mem_rows")
            if not rows:
                continue
            n = R["mem_n"]
            P("")
            P("%s memory by key shape at %d pending (used_memory delta %.0f B each; "
              "MEMORY USAGE per key, sampled %d per shape, includes key name and dict "
              "entry, not the keyspace's hash table buckets or expires):" %
              (sysname, n, R["mem_total"], SAMPLE))
            P("  %-40s %9s %-7s %-10s %10s %10s %12s" % ("key shape", "keys", "type", "encoding",
                                                       "elements", "B/key", "B/reminder"))
            total = 0.0
            for row in sorted(rows, key=lambda x: -x["avg"] * x["count"]):
                b = row["avg"] * row["count"]
                total += b
                if b / n < 0.5 and row["count"] < 100:
                    continue
                P("  %-40s %9d %-7s %-10s %10.0f %10.0f %12.1f" %
                  (row["pattern"][:40], row["count"], row["type"], row["enc"], row["elems"],
                   row["avg"], b / n))
            P("  %-40s %9d %-7s %-10s %10s %10s %12.1f" % ("sum of MEMORY USAGE", sum(
                r_["count"] for r_ in rows), "", "", "", "", total / n))
        print("\n".join(out))
        sys.stdout.flush()
        num = lambda v: float(v) if v not in (None, "", "n/a") else None  # noqa: E731
        peer = "BullMQ %s" % self.bull_version
        write_result("scheduler", [
            {"name": "schedule rate (burst, N=%d)" % N, "unit": "reminders/s",
             "value": num(T.get("sched_rate")) or None, "peer": num(B.get("sched_rate")),
             "note": "peer: %s; target >= %.0fx it" % (peer, TARGET_X)},
            {"name": "fire rate (all due at once)", "unit": "reminders/s",
             "value": num(T.get("fire_rate")), "peer": num(B.get("fire_rate")),
             "note": "peer: %s; target >= %.0fx it" % (peer, TARGET_X)},
            {"name": "lateness p99 (paced %d/s)" % LAT_RATE, "unit": "ms",
             "value": num(T.get("paced", {}).get("late_p99_ms")),
             "peer": num(B.get("paced", {}).get("late_p99_ms")), "ceiling": TARGET_P99,
             "note": "peer: %s; bound = the target" % peer},
            {"name": "bytes per pending reminder", "unit": "B",
             "value": num(T.get("mem_kept")), "peer": num(B.get("mem_total")),
             "ceiling": TARGET_BYTES,
             "note": "peer: %s, all keys; ours once the journal's retention has passed "
                     "(with the journal: %s B); bound = the target" %
                     (peer, f0(T.get("mem_total")))},
        ])

    @staticmethod
    def scheduler_bytes(rows, n):
        """Bytes per reminder of the scheduler's keys: {s*}:r:*, its done marks
        {s*}:done:scheduler:*, and nothing of the journal, intake or the
        outbox."""
        if not rows:
            return None
        s = sum(r_["avg"] * r_["count"] for r_ in rows
                if "{s#}:r:" in r_["pattern"] or "{s#}:done:scheduler:" in r_["pattern"])
        return s / n


def verdict(ok, value):
    return "n/a" if value is None else ("PASS" if ok else "FAIL")


def ended(pid):
    """True when `pid` has exited (a zombie not reaped yet, or gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def h_ms(d):
    for suf, mul in (("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000)):
        if d.endswith(suf) and d[:-len(suf)].isdigit():
            return int(d[:-len(suf)]) * mul
    return int(d)


def main():
    b = Bench()
    t0 = time.time()
    b.bull_version = os.environ.get("TP_BULLMQ_VERSION", "?")
    try:
        b.start()
        b.idle_check()
        for sysname in ("bull", "tp"):
            if sysname not in SYSTEMS:
                continue
            getattr(b, sysname + "_cal")()
            for phase in ("burst", "own", "paced", "memory"):
                if phase in PHASES and hasattr(b, "%s_%s" % (sysname, phase)):
                    getattr(b, "%s_%s" % (sysname, phase))()
        b.count_log_lines()
        b.report()
        b.perf_report()
        log("done in %.0fs" % (time.time() - t0))
    finally:
        if b.w:
            b.w.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    main()
