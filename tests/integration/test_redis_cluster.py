"""Redis Cluster (issue 8): the services against a 6-node cluster (3
primaries, 3 replicas on loopback, node timeout 1 s) instead of one Redis.

test_intake_loses_nothing_acknowledged_in_a_failover: intake with
[redis] cluster = on and wait_replicas = 1 takes events from a client
thread while the primary holding the journal ({j}) is SIGKILLed; its
replica is promoted. Every event that got 202 must be in the journal
afterwards, every other one got 503 or no answer, and intake takes events
again without a restart.

test_intake_follows_a_failover: the same without WAIT: intake takes events
again once the replica is promoted, the killed node staying dead.

test_consumers_on_the_cluster: the spine's first step (a lead graded by
scoring) on the cluster. It waits for the key re-layout (every script on
one slot; until then scoring's scripts fail with CROSSSLOT) and runs only
with TP_CLUSTER_SPINE=1.
"""
import os
import threading
import time

from tp_harness import World, lead, run, wait_until


def journaled(w, ids):
    """The ids of `ids` that are in the journal: their dedupe key names a
    journal entry that XRANGE returns."""
    entries = {eid for eid, _ in w.journal()}
    found = set()
    for i in ids:
        eid = w.redis("GET", "tp:{j}:id:" + i)
        if eid and eid in entries:
            found.add(i)
    return found


def test_intake_loses_nothing_acknowledged_in_a_failover():
    w = World(services=["intake"], cluster=True,
              config={"redis": {"wait_replicas": 1, "wait_timeout": "1s",
                                "command_timeout": "3s", "reconnect_max": "500ms"}})
    try:
        assert w.post(lead("Cluster Co", customer="CL-0", id="cl-warmup"))[0] == 202
        outcomes = {}  # event id -> HTTP status, or None (no answer)
        lock = threading.Lock()
        stop = threading.Event()
        killed_at = []  # how many events had been posted when the kill came

        def load():
            n = 0
            while not stop.is_set():
                eid = "cl-%06d" % n
                n += 1
                try:
                    status, _ = w.post(lead("Cluster Co", customer="CL-%d" % (n % 50), id=eid))
                except OSError:
                    status = None
                with lock:
                    outcomes[eid] = status

        def acked_after(mark):
            with lock:
                return sum(1 for eid, s in outcomes.items()
                           if s == 202 and int(eid[3:]) >= mark)

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        wait_until(lambda: acked_after(0) >= 50, 60, what="50 events accepted before the kill")

        victim = w.cluster.primary_of("tp:{j}:journal")
        replica = w.cluster.replica_of(victim)
        with lock:
            killed_at.append(len(outcomes))
        w.cluster.kill(victim)
        # the replica takes over (node timeout 1 s) ...
        wait_until(lambda: w.cluster.primary_of("tp:{j}:journal") == replica, 60,
                   interval=0.2, what="the replica of the journal's primary promoted")
        # ... but has no replica of its own: WAIT 1 cannot be met, so nothing
        # written now is acknowledged (a second failure would lose it)
        with lock:
            promoted_at = len(outcomes)
        wait_until(lambda: len(outcomes) >= promoted_at + 5, 60,
                   what="events posted while the journal has no replica")
        with lock:
            unreplicated = len(outcomes)
        # the crashed node comes back (its supervisor restarts it) and joins
        # as the new primary's replica; intake takes events again, itself
        # never restarted
        w.cluster.start_node(victim)
        wait_until(lambda: acked_after(unreplicated + 1) >= 50, 90,
                   what="50 events accepted once a replica is back, without a restart")
        with lock:
            window = [s for eid, s in outcomes.items()
                      if promoted_at + 2 <= int(eid[3:]) < unreplicated]
        assert window and 202 not in window, window
        stop.set()
        thread.join(40)
        assert not thread.is_alive()
        assert w.cluster.primary_of("tp:{j}:journal") == replica

        with lock:
            statuses = dict(outcomes)
        acked = {eid for eid, s in statuses.items() if s == 202}
        others = {s for s in statuses.values() if s != 202}
        assert others <= {503, None}, others
        missing = acked - journaled(w, acked)
        assert not missing, "acknowledged but not in the journal: %s" % sorted(missing)[:20]
        # the cut was felt: some events around the kill were refused or unanswered
        assert any(s != 202 for s in statuses.values()), "the kill went unnoticed"
        status, body = w.request("GET", "/healthz", key=None)
        assert status == 200 and body["redis"] == "up", (status, body)
        assert w.post(lead("Cluster Co", customer="CL-9", id="cl-after"))[0] == 202
        assert journaled(w, ["cl-after"]) == {"cl-after"}
    finally:
        w.close()


def test_intake_follows_a_failover():
    """Without WAIT (wait_replicas = 0) intake takes events again as soon as
    the replica is promoted, the dead node staying dead."""
    w = World(services=["intake"], cluster=True,
              config={"redis": {"reconnect_max": "500ms"}})
    try:
        assert w.post(lead("Cluster Co", customer="CL-0", id="cf-warmup"))[0] == 202
        victim = w.cluster.primary_of("tp:{j}:journal")
        replica = w.cluster.replica_of(victim)
        w.cluster.kill(victim)
        statuses = []

        def accepted():
            status, _ = w.post(lead("Cluster Co", customer="CL-1", id="cf-%d" % len(statuses)))
            statuses.append(status)
            return status == 202
        wait_until(accepted, 60, interval=0.2, what="intake taking events after the failover")
        assert set(statuses) <= {202, 503}, statuses
        assert w.cluster.primary_of("tp:{j}:journal") == replica
        assert victim not in w.cluster.procs
        assert journaled(w, ["cf-%d" % (len(statuses) - 1)])
        status, body = w.request("GET", "/healthz", key=None)
        assert status == 200 and body["redis"] == "up", (status, body)
    finally:
        w.close()


def test_consumers_on_the_cluster():
    w = World(services=["intake", "scoring"], cluster=True,
              config={"redis": {"wait_replicas": 1}})
    try:
        assert w.post(lead("Spine Co", customer="CL-SPINE"))[0] == 202
        wait_until(lambda: w.redis.hgetall("tp:{c:CL-SPINE}:profile").get("grade"), 20,
                   what="the lead graded by scoring on the cluster")
    finally:
        w.close()


if __name__ == "__main__":
    tests = [test_intake_loses_nothing_acknowledged_in_a_failover,
             test_intake_follows_a_failover]
    if os.environ.get("TP_CLUSTER_SPINE") == "1":
        tests.append(test_consumers_on_the_cluster)
    run(tests)
