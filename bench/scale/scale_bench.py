"""scale_bench.py: the body of bench/scale/run.sh.

Scale-out of the scoring path: the same stream of N events pushed at
scoring's endpoint (as intake's router does) with 1, 2 and 4 tp-scoring
instances started from the one shipped configuration (each only with its
own instance name, as touchpoint-scoring@N does), ZeroMQ spreading the
events over them. For each count: events/s until every event is applied
(done marks, as bench/scoring counts them), Redis's CPU over the run (INFO
cpu deltas), the instances' CPU (/proc), the machine's cores and what else
ran; then where the ceiling is: Redis (one core, single-threaded, near
full), the machine's CPU (every core busy) or neither.

Reuses bench/scoring's world, feed and counting (scoring_bench.Bench).
Knobs: EVENTS (50000 per count), COUNTS (1,2,4), MIX, GAP, POOL_MIN, LAG,
PHASE_CAP_S (90), TP_BENCH_RESULT (a JSON file for bench/report).
"""
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../.."))
sys.path.insert(0, os.path.join(ROOT, "bench/scoring"))
sys.path.insert(0, os.path.join(ROOT, "bench/lib"))
import scoring_bench as sb  # noqa: E402
from scoring_bench import h  # noqa: E402
from tpbench import CpuWatch, env_int, log, record_pid, redis_cpu  # noqa: E402

EVENTS = env_int("EVENTS", 50000)
COUNTS = [int(c) for c in os.environ.get("COUNTS", "1,2,4").split(",")]
PHASE_CAP_S = env_int("PHASE_CAP_S", 90)
REDIS_FULL = 0.85   # of one core: Redis is single-threaded
MACHINE_FULL = 0.85  # of every core


def connected(port):
    """Established TCP connections to `port` on this host (the PULL
    instances connected to the pusher)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True).stdout
    return len([l for l in out.splitlines() if l.strip()])


def gave_up(w, names):
    n = 0
    for name in names:
        try:
            with open(os.path.join(w.dir, name + ".log"), "rb") as f:
                n += f.read().count(b"left to reconcile")
        except OSError:
            pass
    return n


def run_count(b, k, seed):
    w = b.w
    b.reset()
    port = int(b.endpoint.rsplit(":", 1)[1])
    feed = b.feed("push", "--endpoint", b.endpoint, "--events", EVENTS, "--seed", seed,
                  "--gap", sb.GAP, "--pool-min", sb.POOL_MIN, "--mix", sb.MIX,
                  "--max-s", PHASE_CAP_S, "--go-on-stdin", 1, stdin=subprocess.PIPE)
    if feed.stdout.readline().strip() != "ready":
        raise RuntimeError("tp-scoring-feed push did not get ready: %s" % feed.stderr.read())
    names = ["scoring-%d-of-%d" % (i + 1, k) for i in range(k)]
    for name in names:
        p = w.start("scoring", instance=name)  # the shipped config, its own name only
        record_pid(p.pid)
    # every instance's PULL connected, or PUSH would give the first ones more
    h.wait_until(lambda: connected(port) >= k, 20, what="%d instances connected" % k)
    r = w.redis
    rcpu0 = redis_cpu(r)
    pids = {"redis": w.redis_proc.pid}
    pids.update({n: w.procs[n].pid for n in names})
    watch = CpuWatch(pids, extra=[b.sink.pid, feed.pid])
    t0 = time.time()
    feed.stdin.write("go\n")
    feed.stdin.flush()
    t_applied = None
    while time.time() < t0 + PHASE_CAP_S:
        if b.applied() + gave_up(w, names) >= EVENTS:
            t_applied = time.time() - t0
            break
        time.sleep(0.02)
    gen = b.feed_result(feed)
    cpu = watch.stop()
    rcpu = redis_cpu(r) - rcpu0
    if t_applied is None:
        raise RuntimeError("%d instances: %d of %d applied after %ds"
                           % (k, b.applied(), EVENTS, PHASE_CAP_S))
    t_applied -= max(0.0, float(gen["go_wall"]) - t0)
    given = gave_up(w, names)
    for name in names:
        w.kill(name, signal.SIGTERM)
    el = cpu["el"]
    res = {"instances": k, "events": EVENTS, "gave_up": given, "seconds": t_applied,
           "eps": (EVENTS - given) / t_applied,
           "redis_cpu_pct": 100 * rcpu / el,
           "scoring_cpu_pct": 100 * sum(v for n, v in cpu["used"].items() if n != "redis") / el,
           "per_instance_cpu_pct": [100 * cpu["used"][n] / el for n in names],
           "bench_cpu_pct": 100 * cpu["helper"] / el,
           "other_cpu_pct": 100 * cpu["other"] / el,
           "machine_busy_pct": 100 * cpu["machine"] / el / os.cpu_count()}
    log("%d instance(s): %d events in %.2fs -> %.0f ev/s; redis %.0f%% of a core, "
        "scoring %.0f%%, machine %.0f%% busy" % (k, EVENTS, t_applied, res["eps"],
                                                 res["redis_cpu_pct"], res["scoring_cpu_pct"],
                                                 res["machine_busy_pct"]))
    return res


def ceiling(rows, cores):
    """One sentence: where the ceiling of the scoring path is on this machine."""
    last = rows[-1]
    base = rows[0]["eps"]
    gain = last["eps"] / base if base else 0
    redis = last["redis_cpu_pct"] / 100
    busy = last["machine_busy_pct"] / 100
    where = ("%d instances reach %.1fx the events/s of one" % (last["instances"], gain))
    if redis >= REDIS_FULL:
        return ("The ceiling is Redis: %s, and Redis, single-threaded, is %.0f%% of one core "
                "busy; more scoring instances add nothing here, more Redis (Redis Cluster, "
                "another host) would." % (where, 100 * redis))
    if busy >= MACHINE_FULL:
        hog = max(("Redis", last["redis_cpu_pct"]), ("the scoring instances",
                  last["scoring_cpu_pct"]), ("other processes", last["other_cpu_pct"]),
                  key=lambda x: x[1])
        slower = (" (here more were slower than one: they compete for the same cores "
                  "with Redis and everything else on the machine)" if gain < 0.95 else "")
        return ("The ceiling is this machine's CPU: %s%s, with all %d cores %.0f%% busy "
                "(most of it %s, %.0f%% of a core) and Redis at %.0f%% of its one core; "
                "on more cores (or instances on other hosts) it would go on until Redis's "
                "core is full." % (where, slower, cores, 100 * busy, hog[0], hog[1],
                                   100 * redis))
    return ("Neither Redis (%.0f%% of a core) nor the CPU (%.0f%% of %d cores) is full: %s; "
            "the limit is the pipeline's latency (events in flight per instance), so more "
            "instances still help." % (100 * redis, 100 * busy, cores, where))


def main():
    b = sb.Bench()
    rows = []
    t0 = time.time()
    try:
        b.start_world()
        for i, k in enumerate(COUNTS):
            rows.append(run_count(b, k, 10 + i))
    finally:
        if b.sink and b.sink.poll() is None:
            b.sink.send_signal(signal.SIGTERM)
            try:
                b.sink.wait(5)
            except subprocess.TimeoutExpired:
                b.sink.kill()
        if b.w:
            redis_version = sb.info(b.w.redis, "server").get("redis_version")
            b.w.close()
    cores = os.cpu_count()
    verdict = ceiling(rows, cores)
    out = ["", "Touchpoint scale-out: the scoring path (ZeroMQ PUSH -> N tp-scoring -> Redis), "
           "%d events per run, one shipped configuration" % EVENTS,
           "machine: %d cores; redis-server %s, AOF everysec" % (cores, redis_version), "",
           "| instances | events/s | vs 1 | Redis CPU (%% of its 1 core) | scoring CPU "
           "(%% of a core, per instance) | machine busy (%% of %d cores) | other |" % cores,
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| %d | %.0f | %.2fx | %.0f%% | %.0f%% (%s) | %.0f%% | %.0f%% |" % (
            r["instances"], r["eps"], r["eps"] / rows[0]["eps"], r["redis_cpu_pct"],
            r["scoring_cpu_pct"], ", ".join("%.0f" % c for c in r["per_instance_cpu_pct"]),
            r["machine_busy_pct"], r["other_cpu_pct"]))
    out += ["", verdict]
    if any(r["gave_up"] for r in rows):
        out.append("(events given up to the reconcile walk: %s)" %
                   ", ".join("%d with %d" % (r["gave_up"], r["instances"]) for r in rows))
    print("\n".join(out))
    sys.stdout.flush()
    path = os.environ.get("TP_BENCH_RESULT")
    if path:
        with open(path, "w") as f:
            json.dump({"bench": "scale", "cores": cores, "events": EVENTS, "rows": rows,
                       "ceiling": verdict, "redis_version": redis_version}, f, indent=1)
    log("done in %.0fs" % (time.time() - t0))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    main()
