"""Scale out (issue 8): several instances of intake and of a consuming
service from one configuration, each instance told only what is its own
(environment overrides TP_<SECTION>_<KEY>, as the systemd units' per-
instance files do). Two intakes bind their own bus endpoints; the scoring
instances connect to every intake ([bus] <svc>_endpoint and
ingress_endpoint as comma-separated lists), so an event taken by either
intake reaches scoring over the bus at once, not only by the reconcile
walk (turned off here: a one-hour interval)."""
import json
import time
import urllib.request

from tp_harness import API_KEY, World, ckey, free_port, lead, run, wait_until

FEEDS = ("ingress", "scoring", "scheduler", "notifier", "ticketing")


def post_to(port, event):
    req = urllib.request.Request("http://127.0.0.1:%d/v1/events" % port,
                                 data=json.dumps(event).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + API_KEY})
    with urllib.request.urlopen(req, timeout=15) as resp:
        return resp.status


def applied_leads(w, name):
    """lead.captured events `name` applied, from its /metrics."""
    status, text = w.probe(name, "/metrics")
    assert status == 200, (name, status)
    total = 0
    for line in text.splitlines():
        if line.startswith("tp_events_applied_total{") and 'type="lead.captured"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_two_intakes_and_two_scorings():
    w = World(services=[], config={"scoring": {"reconcile_interval": "1h",
                                               "reconcile_lag": "1h"}})
    try:
        own = {n: w.bus[n] for n in FEEDS}
        second = {n: "ipc://%s/%s-2.sock" % (w.dir, n) for n in FEEDS}
        port2 = free_port()
        w.start("intake")
        w.start("intake", "intake-2",
                env=dict({"TP_INTAKE_PORT": str(port2)},
                         **{"TP_BUS_%s_ENDPOINT" % n.upper(): second[n] for n in FEEDS}))
        both = {"TP_BUS_%s_ENDPOINT" % n.upper(): "%s,%s" % (own[n], second[n])
                for n in ("ingress", "scoring")}
        w.start("scoring", "scoring-1", env=both)
        w.start("scoring", "scoring-2", env=both)
        wait_until(lambda: w.log("intake-2").count("bus: admitted scoring") >= 4, 20,
                   what="both scoring instances admitted by the second intake")

        started = time.time()
        accepted = []
        for i in range(20):  # over both intakes
            port = w.http_port if i % 2 == 0 else port2
            assert post_to(port, lead("Scale Co", customer="SO-%d" % i, id="so-%d" % i)) == 202
            accepted.append("SO-%d" % i)

        def graded():
            return all(w.redis("HGET", ckey(c, "profile"), "grade") for c in accepted)
        # no reconcile walk within the hour: only the bus can have brought them
        wait_until(graded, 20, interval=0.2, what="every lead graded over the bus")
        assert time.time() - started < 60
        # both scoring instances took a share (each intake's PUSH spreads
        # over its peers), and between them applied every lead once
        applied = [applied_leads(w, n) for n in ("scoring-1", "scoring-2")]
        assert all(a > 0 for a in applied), applied
        assert sum(applied) == len(accepted), applied
    finally:
        w.close()


if __name__ == "__main__":
    run([test_two_intakes_and_two_scorings])
