"""tp_cluster: a 6-node Redis Cluster for tests that are not Python.

    python3 tp_cluster.py start DIR   # builds it in DIR, prints nothing
    python3 tp_cluster.py stop DIR    # SIGTERM to every node, waits

`start` leaves the nodes running (their own sessions) and writes
DIR/nodes, one line per node: "<port> <pid>"; the first three were made
primaries by redis-cli --cluster create. Exit status 0 once every node says
cluster_state:ok and every replica is in sync. Used by
tests/unit/test_store_cluster.c; Python tests use tp_harness.RedisCluster.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tp_harness import RedisCluster  # noqa: E402


def start(dir):
    os.makedirs(dir, exist_ok=True)
    c = RedisCluster(dir, detach=True)
    with open(os.path.join(dir, "nodes.tmp"), "w") as f:
        for port in c.ports:
            f.write("%d %d\n" % (port, c.procs[port].pid))
    os.rename(os.path.join(dir, "nodes.tmp"), os.path.join(dir, "nodes"))


def stop(dir):
    try:
        with open(os.path.join(dir, "nodes")) as f:
            pids = [int(line.split()[1]) for line in f if line.strip()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 20
    for pid in pids:
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: tp_cluster.py start|stop DIR")
    (start if sys.argv[1] == "start" else stop)(sys.argv[2])
