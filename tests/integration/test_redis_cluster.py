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

test_spine_loses_nothing_in_a_failover: every service on the cluster with
wait_replicas = 1; leads of many customers flow while the primary of a
customer shard is SIGKILLed; every acknowledged lead is journaled and
graded by scoring afterwards.

The spine's own scenarios run on this cluster too: ctest's
cluster/test_spine (TP_TEST_REDIS_CLUSTER=6).
"""
import threading
import time

from tp_harness import World, ckey, lead, run, shard, wait_until


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


def test_spine_loses_nothing_in_a_failover():
    """Every service on the cluster (wait_replicas = 1): leads of many
    customers flow while the primary holding a customer shard is SIGKILLed;
    its replica takes over, the dead node comes back as a replica. Every lead
    intake acknowledged is journaled AND graded by scoring (its customer's
    record in the failed-over shard or another): nothing acknowledged is
    lost on the way from intake to the state."""
    w = World(cluster=True,
              config={"redis": {"wait_replicas": 1, "wait_timeout": "1s",
                                "command_timeout": "3s", "reconnect_max": "500ms"}})
    try:
        assert w.post(lead("Failover Co", customer="CF-warm", id="cf-warm"))[0] == 202
        wait_until(lambda: w.redis("HGET", ckey("CF-warm", "profile"), "grade"), 30,
                   what="the first lead graded on the cluster")
        outcomes = {}  # event id -> (customer, HTTP status or None)
        lock = threading.Lock()
        stop = threading.Event()

        def load():
            n = 0
            while not stop.is_set():
                eid, customer = "cf-%06d" % n, "CF-%d" % n
                n += 1
                try:
                    status, _ = w.post(lead("Failover Co", customer=customer, id=eid))
                except OSError:
                    status = None
                with lock:
                    outcomes[eid] = (customer, status)

        def acked():
            with lock:
                return {e: c for e, (c, st) in outcomes.items() if st == 202}

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        wait_until(lambda: len(acked()) >= 40, 60, what="40 leads accepted before the kill")
        victim = w.cluster.primary_of("tp:{s3}:outbox:scoring")
        replica = w.cluster.replica_of(victim)
        before = len(acked())
        w.cluster.kill(victim)
        wait_until(lambda: w.cluster.primary_of("tp:{s3}:outbox:scoring") == replica, 60,
                   interval=0.2, what="the replica of shard 3's primary promoted")
        w.cluster.start_node(victim)  # back as the new primary's replica
        w.cluster.wait_ok()
        wait_until(lambda: len(acked()) >= before + 40, 90,
                   what="40 more leads accepted after the failover")
        stop.set()
        thread.join(30)

        done = acked()
        missing = set(done) - journaled(w, done)
        assert not missing, "acknowledged but not journaled: %s" % sorted(missing)[:20]

        def ungraded():
            return [c for c in done.values()
                    if not w.redis("HGET", ckey(c, "profile"), "grade")]
        try:
            wait_until(lambda: not ungraded(), 120, interval=1,
                       what="every acknowledged lead graded")
        except AssertionError:
            raise AssertionError("acknowledged, never graded: %s" % ungraded()[:20])
        in_shard = [c for c in done.values() if shard(c) == 3]
        assert in_shard, "no lead reached the failed-over shard"
        with lock:
            others = {st for _, st in outcomes.values() if st != 202}
        assert others <= {503, None}, others
    finally:
        w.close()


if __name__ == "__main__":
    tests = [test_intake_loses_nothing_acknowledged_in_a_failover,
             test_intake_follows_a_failover,
             test_spine_loses_nothing_in_a_failover]
    run(tests)
