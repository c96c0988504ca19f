"""Metrics, health and readiness of every service (issue 8), and the logs.

A World's five services each serve /metrics, /healthz and /readyz on a
port of their own ([<svc>] metrics_listen = 127.0.0.1:0; the port is read
from the "metrics: listening on" line of the log, which is on stdout).
Every scrape is parsed by a strict parser of the Prometheus text format
0.0.4: a line that does not parse, a sample of a family without TYPE, or a
histogram whose buckets do not add up fails the test.
"""
import collections
import json
import math
import os
import re
import signal
import subprocess
import time

from tp_harness import (BUILD, SERVICES, World, lead, now_ms, reminders_booked, run,
                        wait_until)

CONSUMERS = SERVICES[1:]
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s)(?:,%s)*\})? (\S+)$" % (NAME, LABEL, LABEL))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
# time for a reading: the exporter refreshes every [metrics] refresh (1 s by
# default), reconcile runs behind a 1 s lag; generous for a loaded machine
SETTLE = 60


def unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """Prometheus text -> {(name, frozenset(labels)): value}, and the types.
    Raises AssertionError on anything that is not the format."""
    types, helps, samples = {}, set(), {}
    assert text.endswith("\n"), "the text must end with a line feed"
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(NAME, name), where
            assert name not in helps, "HELP twice: " + where
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4 and re.fullmatch(NAME, parts[2]) and parts[3] in TYPES, where
            assert parts[2] not in types, "TYPE twice: " + where
            types[parts[2]] = parts[3]
            continue
        assert not line.startswith("#") and line.strip(), where
        m = SAMPLE.match(line)
        assert m, "not a sample: " + where
        name, labels, value = m.group(1), m.group(2) or "", m.group(m.lastindex)
        family = name
        if name not in types:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert types.get(family) == "histogram", "no TYPE for " + where
        pairs = re.findall(LABEL, labels)
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), "label twice: " + where
        if name.endswith("_bucket") and types.get(family) == "histogram":
            assert "le" in keys, "bucket without le: " + where
        v = float(value)  # accepts +Inf, -Inf, NaN; raises on garbage
        assert not math.isnan(v) or types.get(family) == "gauge", where
        key = (name, frozenset((k, unescape(x)) for k, x in pairs))
        assert key not in samples, "sample twice: " + where
        samples[key] = v
    check_histograms(types, samples)
    return types, samples


def check_histograms(types, samples):
    """Buckets cumulative, ending in +Inf equal to _count."""
    series = collections.defaultdict(list)
    for (name, labels), v in samples.items():
        if name.endswith("_bucket") and types.get(name[:-7]) == "histogram":
            rest = frozenset(p for p in labels if p[0] != "le")
            le = dict(labels)["le"]
            series[(name[:-7], rest)].append((float(le), v))
    for (family, rest), buckets in series.items():
        buckets.sort()
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), "%s buckets not cumulative: %s" % (family, buckets)
        assert buckets[-1][0] == math.inf, "%s has no +Inf bucket" % family
        assert samples[(family + "_count", rest)] == counts[-1], family
        assert (family + "_sum", rest) in samples, family


def scrape(w, name):
    status, text = w.probe(name, "/metrics")
    assert status == 200, (name, status, text)
    return parse(text)[1]


def value(samples, name, **labels):
    """The sample `name` whose labels include `labels` (summed over the
    others), 0 when absent."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def routing():
    """type -> the services it is routed to, from tp-schema's table."""
    out = subprocess.run([os.path.join(BUILD, "tools", "tp-schema")], capture_output=True,
                         text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        m = re.match(r"^\| `([a-z_.]+)` \| ([a-z, ]*) \|", line)
        if m:
            table[m.group(1)] = [s.strip() for s in m.group(2).split(",") if s.strip()]
    assert table.get("lead.captured") == ["scoring"], table
    return table


def events():
    """Leads, contacts, an inquiry and a ticket, each of a customer of its
    own (so no event waits behind another's turn)."""
    out = []
    for i in range(4):
        out.append(lead(company="Metric %d" % i, customer="MET-L%d" % i, id="met-lead-%d" % i))
    for i in range(3):
        out.append({"id": "met-contact-%d" % i, "type": "contact.logged", "ts": now_ms(),
                    "src": "phone", "customer": "MET-C%d" % i,
                    "data": {"channel": "phone", "direction": "out", "outcome": "reached"}})
    out.append({"id": "met-inquiry", "type": "inquiry.received", "ts": now_ms(), "src": "web",
                "customer": "MET-Q", "data": {"channel": "web", "text": "price?"}})
    out.append({"id": "met-ticket", "type": "ticket.opened", "ts": now_ms(), "src": "hotline",
                "customer": "MET-T", "data": {"title": "broken", "category": "fault",
                                              "priority": "normal"}})
    return out


def expected_applied(w, table):
    """(service, type) -> journal entries of that type the service consumes."""
    want = collections.Counter()
    for _, t in w.journal():
        for s in table.get(t, []):
            want[(s, t)] += 1
    return want


def test_every_service_reports_what_it_applied():
    w = World()
    try:
        table = routing()
        for name in SERVICES:
            assert w.probe(name, "/healthz")[0] == 200, name
            wait_until(lambda: w.probe(name, "/readyz")[0] == 200, SETTLE,
                       what="%s ready" % name)
        sent = events()
        status, body = w.post(sent)
        assert status == 202 and len(body["accepted"]) == len(sent), (status, body)
        status, body = w.post(sent[:2])  # the same ids again: duplicates at intake
        assert status == 202 and len(body["duplicates"]) == 2, body
        status, _ = w.post({"type": "lead.captured", "ts": now_ms(), "src": "web",
                            "data": {"company": "X", "urgency": 9, "budget": 1,
                                     "decision": 1, "owner": "rep-1"}})
        assert status == 400

        # every consuming service applied, once, every journal entry routed to it
        def applied_all():
            if len(w.journal("lead.graded")) < 4:  # scoring's derived events still coming
                return False
            want = expected_applied(w, table)
            got = {}
            for name in CONSUMERS:
                s = scrape(w, name)
                for (svc, t), n in want.items():
                    if svc == name:
                        got[(svc, t)] = value(s, "tp_events_applied_total", type=t)
            return got == dict(want) and want
        want = wait_until(applied_all, SETTLE, interval=0.5, what="applied counts = journal")
        assert want[("scoring", "lead.captured")] == 4, want
        assert want[("scheduler", "lead.graded")] == 4, want  # derived by scoring, routed on
        assert want[("ticketing", "ticket.opened")] == 1, want

        # the backlog behind the cursor drains to 0 once reconcile has walked
        wait_until(lambda: all(value(scrape(w, n), "tp_reconcile_backlog") == 0
                               for n in CONSUMERS), SETTLE, interval=0.5,
                   what="every reconcile backlog back to 0")
        for name in CONSUMERS:
            s = scrape(w, name)
            assert value(s, "tp_events_failed_total") == 0, name
            assert value(s, "tp_redis_connected") == 1, name
            assert value(s, "tp_bus_connected") == 1, name
            assert value(s, "tp_reconcile_backlog_age_seconds") == 0, name
            assert value(s, "tp_ready") == 1, name
            # every apply timed, and the labels name the service and instance
            applied = value(s, "tp_events_applied_total") + value(s, "tp_events_duplicate_total")
            assert value(s, "tp_apply_seconds_count") == applied, (name, s)
            assert value(s, "tp_redis_roundtrip_seconds_count") > 0, name
            for (n, labels) in s:
                assert dict(labels).get("service") == name, (n, labels)
                assert dict(labels).get("instance") == name, (n, labels)

        # Redis-backed numbers are refreshed each [metrics] refresh: they
        # agree with Redis within one refresh of a quiet moment
        def journal_agrees():
            s, journal = scrape(w, "intake"), len(w.journal())
            return value(s, "tp_journal_length") == journal and (s, journal)
        s, journal = wait_until(journal_agrees, SETTLE, interval=0.5,
                                what="tp_journal_length = XLEN")
        assert value(s, "tp_intake_events_total", outcome="accepted") == journal, s
        assert value(s, "tp_intake_events_total", outcome="duplicate") == 2
        assert value(s, "tp_intake_events_total", outcome="rejected") == 1
        assert value(s, "tp_http_requests_total", code="202") == 2
        assert value(s, "tp_http_requests_total", code="400") == 1

        def pending_agrees():
            # every customer's book, counted apart from the scheduler's own count
            pending = reminders_booked(w)
            return pending > 0 and value(scrape(w, "scheduler"), "tp_reminders_pending") == pending
        wait_until(pending_agrees, SETTLE, interval=0.5, what="tp_reminders_pending = books")
        # nothing fired meanwhile, nobody else plans: no apply met a changed book
        s = scrape(w, "scheduler")
        assert any(n == "tp_plan_recomputed_total" for n, _ in s), "no tp_plan_recomputed_total"
        assert value(s, "tp_plan_recomputed_total") == 0
        wait_until(lambda: sum(v for (n, _), v in scrape(w, "ticketing").items()
                               if n == "tp_tickets") == 1, SETTLE, interval=0.5,
                   what="one ticket in tp_tickets")
        s = scrape(w, "ticketing")
        assert any(n == "tp_sla_breaches_total" for n, _ in s), "no tp_sla_breaches_total"
        assert any(n == "tp_sla_warnings_total" for n, _ in s), "no tp_sla_warnings_total"

    finally:
        assert w.close()


def test_redis_down_means_not_ready_but_alive():
    w = World(services=["intake", "scoring"])
    try:
        wait_until(lambda: w.probe("scoring", "/readyz")[0] == 200, SETTLE, what="ready")
        w.redis.close()
        w.redis_proc.send_signal(signal.SIGKILL)
        w.redis_proc.wait(10)
        for name in ("intake", "scoring"):
            wait_until(lambda: w.probe(name, "/readyz")[0] == 503, SETTLE,
                       what="%s not ready without Redis" % name)
            status, reason = w.probe(name, "/readyz")
            assert reason.startswith("redis: ") and reason.count("\n") == 1, reason
            assert w.probe(name, "/healthz")[0] == 200, name  # alive all the same
            s = scrape(w, name)
            assert value(s, "tp_redis_connected") == 0 and value(s, "tp_ready") == 0, name
        # back: ready again, and the errors of the outage were counted
        time.sleep(0.5)
        w._start_redis()
        w.redis = w.client()
        for name in ("intake", "scoring"):
            wait_until(lambda: w.probe(name, "/readyz")[0] == 200, SETTLE,
                       what="%s ready again" % name)
            assert value(scrape(w, name), "tp_redis_connected") == 1
    finally:
        assert w.close()


def test_readiness_bound_on_backlog():
    """ready_backlog = 0: any journal entry older than reconcile_lag that
    the walk has not passed (here: it never runs again) makes the service
    unready, with the bound named."""
    w = World(services=["intake", "scoring"],
              config={"scoring": {"ready_backlog": "0", "reconcile_lag": "200ms",
                                  "reconcile_interval": "1h"}})
    try:
        wait_until(lambda: w.probe("scoring", "/readyz")[0] == 200, SETTLE, what="ready")
        assert w.post(lead(company="Behind", customer="MET-B"))[0] == 202
        wait_until(lambda: w.probe("scoring", "/readyz")[0] == 503, SETTLE,
                   what="scoring unready behind the journal")
        status, reason = w.probe("scoring", "/readyz")
        assert "scoring.ready_backlog 0" in reason, reason
        s = scrape(w, "scoring")
        assert value(s, "tp_reconcile_backlog") >= 1, s
        assert value(s, "tp_reconcile_backlog_age_seconds") > 0, s
    finally:
        assert w.close()


def test_log_lines_of_an_apply_carry_its_event():
    """A line ticketing logs from deep in an apply (after Redis answered its
    read of the ticket) names the event being applied and its customer."""
    w = World(services=["intake", "ticketing"])
    try:
        def update(eid, status):
            return {"id": eid, "type": "ticket.updated", "ts": now_ms(), "src": "api",
                    "customer": "MET-LOG", "data": {"ticket": "T-LOG-1", "action": "status",
                                                    "agent": "eng-chen", "status": status}}
        opened = {"id": "met-log-open", "type": "ticket.opened", "ts": now_ms(),
                  "src": "hotline", "customer": "MET-LOG",
                  "data": {"ticket": "T-LOG-1", "title": "noisy", "category": "fault",
                           "priority": "normal"}}
        for ev in (opened, update("met-log-close", "closed"),
                   update("met-log-reopen", "in_progress")):
            assert w.post(ev)[0] == 202
        wait_until(lambda: value(scrape(w, "ticketing"), "tp_events_applied_total",
                                 type="ticket.updated") == 2, SETTLE, interval=0.5,
                   what="both updates applied")

        def refused():
            for line in w.log("ticketing").splitlines():
                x = json.loads(line)
                if x["msg"].startswith("ticket T-LOG-1: a closed ticket cannot change"):
                    return x
        x = wait_until(refused, SETTLE, what="the refused move logged")
        assert x["event"] == "met-log-reopen" and x["customer"] == "MET-LOG", x
        # lines outside any apply carry no event
        for line in w.log("ticketing").splitlines():
            x = json.loads(line)
            if x["msg"].startswith("metrics: listening"):
                assert "event" not in x and "customer" not in x, x
    finally:
        assert w.close()


def test_bad_listen_address_and_logs_on_stdout():
    w = World(services=["intake"])
    try:
        env = dict(os.environ, TP_CONFIG=w.config_path, TP_SCORING_METRICS_LISTEN="nowhere")
        p = subprocess.run([os.path.join(BUILD, "services", "scoring", "tp-scoring")],
                           env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, p
        assert p.stderr == "", p.stderr  # the log is on stdout
        lines = [json.loads(line) for line in p.stdout.splitlines()]
        error = [x for x in lines if x["level"] == "error"]
        assert error and "scoring.metrics_listen" in error[0]["msg"], lines
        for x in lines:
            assert {"time", "level", "service", "instance", "msg"} <= set(x), x
            assert x["service"] == "scoring", x
        # the services' own logs are JSON lines naming the metrics port
        log = w.log("intake").splitlines()
        assert any("metrics: listening on 127.0.0.1:" in json.loads(x)["msg"] for x in log)
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_every_service_reports_what_it_applied,
         test_redis_down_means_not_ready_but_alive,
         test_readiness_bound_on_backlog,
         test_log_lines_of_an_apply_carry_its_event,
         test_bad_listen_address_and_logs_on_stdout])
