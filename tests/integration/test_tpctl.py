"""tpctl, the operator's command line (issue 8), against a real World:
heartbeats (status, stale after SIGKILL, pruned; removed on a clean stop),
lag moving to 0 after a stopped consumer resumes, the customer record,
timeline, tickets and reminders through intake's API with a key tpctl made
(and a scope it lacks refused by name), posting from a file over HTTP and
over the bus with a CURVE key tpctl made, dead-letter list and replay,
journal trim by the slowest cursor, keygen output, and usage errors. Every
command in plain and --json (parsed). tpctl logs into Redis as its own ACL
user (deploy/redis-acl.sh)."""
import json
import os
import signal
import subprocess
import tempfile
import time

from tp_harness import BUILD, SERVICES, World, lead, now_ms, run, shard, skey, wait_until

TPCTL = os.path.join(BUILD, "tools", "tpctl")
BEAT_MS = 300  # [service] heartbeat_interval of the worlds below
AGENTS = {"agents_engineering": "eng-1", "lead_engineering": "eng-lead",
          "department_fault": "engineering", "assignment": "least_open"}


def tpctl(*args, config=None, stdin=None, env=None):
    """(exit code, stdout, stderr) of one tpctl run."""
    cmd = [TPCTL] + (["-c", config] if config else []) + list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def tpctl_json(*args, config=None, ok=0):
    rc, out, err = tpctl("--json", *args, config=config)
    assert rc == ok, (args, rc, out, err)
    return json.loads(out)


def columns(out):
    """Plain output as rows of whitespace-split cells, header first."""
    return [line.split() for line in out.strip().splitlines()]


# ---- no world needed ----

def test_usage_errors_name_the_argument():
    cases = [
        ([], "usage: tpctl"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["tickets"], "--owner U is required"),
        (["tickets", "--owner"], "--owner needs a value"),
        (["reminders", "--owner", "u", "--due-before", "soon"], "--due-before: 'soon'"),
        (["status", "--older-than", "x", "--prune"], "--older-than: 'x'"),
        (["status", "--older-than", "1m"], "--older-than goes with --prune"),
        (["deadletter", "replay"], "replay needs delivery ids or --all"),
        (["deadletter", "replay", "a", "--all"], "ids or --all alone"),
        (["deadletter", "drop"], "expected: deadletter list"),
        (["journal"], "expected: journal trim"),
        (["journal", "trim", "--retention", "forever"], "--retention: 'forever'"),
        (["keygen", "apikey", "ops"], "--scopes is required"),
        (["keygen", "apikey", "ops", "--scopes", "events:write,root"], "unknown scope 'root'"),
        (["keygen", "apikey", "bad name", "--scopes", "*"], "NAME: 'bad name'"),
        (["keygen", "curve", "--dir", "/tmp"], "NAME: at least one"),
        (["keygen", "curve", "../x", "--dir", "/tmp"], "'../x' is not a name"),
        (["keygen"], "expected: keygen curve"),
        (["post"], "FILE: the event"),
        (["post", "a.json", "--as", "p"], "--as goes with --bus"),
        (["customer"], "ID: the customer's id is required"),
        (["customer", "C1", "--limit", "5"], "--limit and --before go with --timeline"),
        (["customer", "C1", "--timeline", "--limit", "0"], "--limit: '0'"),
        (["lag", "extra"], "unexpected argument 'extra'"),
    ]
    for args, message in cases:
        rc, out, err = tpctl(*args)
        assert rc == 2, (args, rc, out, err)
        assert message in err, (args, err)
    # failures that are not usage: exit 1, naming the file or the setting
    rc, _, err = tpctl("-c", "/nonexistent/touchpoint.ini", "status")
    assert rc == 1 and "/nonexistent/touchpoint.ini" in err, err
    rc, _, err = tpctl("post", "/nonexistent/event.json")
    assert rc == 1 and "/nonexistent/event.json" in err, err
    rc, _, err = tpctl("customer", "C1", env={"TP_TPCTL_API_KEY_FILE": ""})
    assert rc == 1 and "tpctl.api_key_file is not set" in err, err
    rc, _, err = tpctl("lag", env={"TP_TPCTL_LAG_COUNT_MAX": "lots"})
    assert rc == 1 and "tpctl.lag_count_max" in err, err
    rc, _, err = tpctl("status", env={"TP_REDIS_PORT": "1", "TP_REDIS_ACL": "off"})
    assert rc == 1 and "cannot connect to Redis" in err, err
    assert tpctl("help")[0] == 0


def test_keygen_outputs():
    # an API key: a keys-file section; 64 hex digits, the scopes as given
    rc, out, err = tpctl("keygen", "apikey", "ops", "--scopes", "customers:read, tickets:read")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "[ops]" and lines[2] == "scopes = customers:read, tickets:read", out
    key = lines[1].split(" = ")[1]
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key), key
    doc = tpctl_json("keygen", "apikey", "ops", "--scopes", "*")
    assert doc["name"] == "ops" and doc["scopes"] == ["*"] and doc["key"] != key
    assert doc["section"].startswith("[ops]\nkey = " + doc["key"])
    # CURVE pairs: new, then kept
    d = tempfile.mkdtemp(prefix="tp-tpctl-keys-")
    rc, out, err = tpctl("keygen", "curve", "a", "b", "--dir", d)
    assert rc == 0 and out.splitlines() == ["%s/a.key: new" % d, "%s/b.key: new" % d], out
    assert os.stat(os.path.join(d, "a.key")).st_mode & 0o777 == 0o600
    doc = tpctl_json("keygen", "curve", "--dir", d, "a", "c")
    assert [(k["name"], k["status"]) for k in doc["keys"]] == [("a", "kept"), ("c", "new")]
    assert len(doc["keys"][1]["public"]) == 40
    with open(os.path.join(d, "c.pub")) as f:
        assert doc["keys"][1]["public"] in f.read()


# ---- one full world: heartbeats, lag, queries, posting ----

W = {}


def full_world():
    """Redis with ACLs, the five services, tpctl's API key made by tpctl
    (without tickets:read) and a producer key pair made by tpctl."""
    if W:
        return W["w"]
    key = tpctl_json("keygen", "apikey", "ops",
                     "--scopes", "customers:read,reminders:read,events:write")
    keydir = tempfile.mkdtemp(prefix="tp-tpctl-")
    key_file = os.path.join(keydir, "tpctl.key")
    with open(key_file, "w") as f:
        f.write(key["key"] + "\n")
    w = World({"service": {"heartbeat_interval": "%dms" % BEAT_MS},
               "ticketing": AGENTS,
               "bus": {"producers": "producer,ops-cti"},
               "tpctl": {"api_key_file": key_file}},
              services=[], keys=key["section"])
    W.update(w=w, key_file=key_file)
    rc, out, err = tpctl("keygen", "curve", "--dir", w.keys_dir, "ops-cti")
    assert rc == 0 and "ops-cti.key: new" in out, (out, err)
    for s in SERVICES:
        w.start(s)
    wait_until(w._healthy, what="intake healthy")
    return w


def status(w):
    return {(i["service"], i["instance"]): i
            for i in tpctl_json("status", config=w.config_path)["instances"]}


def test_status_heartbeats_stale_prune_and_clean_stop():
    w = full_world()
    beats = wait_until(lambda: len(status(w)) == 5 and status(w), 10, what="five heartbeats")
    for s in SERVICES:
        b = beats[(s, s)]
        assert b["state"] == "up" and b["pid"] == w.procs[s].pid, b
        assert b["age_ms"] <= 3 * BEAT_MS and b["interval_ms"] == BEAT_MS, b
        assert b["host"] and b["version"] and b["started_at"] <= b["seen_at"], b
    assert beats[("intake", "intake")]["lag"] is None
    assert beats[("scoring", "scoring")]["lag"] is not None
    # applied counts move: intake journals, scoring applies
    assert w.post(lead(id="hb-lead-1"))[0] == 202
    wait_until(lambda: status(w)[("scoring", "scoring")]["applied"] >= 1, 10,
               what="scoring's applied count in its heartbeat")
    wait_until(lambda: status(w)[("intake", "intake")]["applied"] >= 1, 10,
               what="intake's journaled count in its heartbeat")
    rc, out, err = tpctl("status", config=w.config_path)
    rows = columns(out)
    assert rc == 0 and rows[0] == ["SERVICE", "INSTANCE", "STATE", "HOST", "PID", "AGE",
                                   "APPLIED", "LAG", "METRICS"], out
    assert {r[0] for r in rows[1:]} == set(SERVICES), out
    # a second scoring instance, SIGKILLed: its beat stays and goes stale
    w.start("scoring", instance="scoring-2")
    wait_until(lambda: ("scoring", "scoring-2") in status(w), 10, what="scoring-2's heartbeat")
    w.kill("scoring-2")
    wait_until(lambda: status(w)[("scoring", "scoring-2")]["state"] == "stale",
               10 * BEAT_MS / 1000 + 5, what="scoring-2 stale")
    rc, out, _ = tpctl("status", config=w.config_path)
    stale = [r for r in columns(out) if r[1] == "scoring-2"]
    assert stale and stale[0][2] == "stale", out
    assert all(r[2] == "up" for r in columns(out)[1:] if r[1] != "scoring-2"), out
    # prune: not while younger than the bound, then gone; live ones stay
    doc = tpctl_json("status", "--prune", "--older-than", "1h", config=w.config_path)
    assert doc["pruned"] == [] and len(doc["instances"]) == 6
    time.sleep(0.1)
    rc, out, err = tpctl("status", "--prune", "--older-than", "%dms" % (3 * BEAT_MS),
                         config=w.config_path)
    assert rc == 0 and "pruned scoring scoring-2" in out, (out, err)
    assert w.redis("HGET", "tp:heartbeat:scoring", "scoring-2") is None
    assert len(status(w)) == 5
    # a clean stop removes the instance's own field at once
    w.start("notifier", instance="notifier-2")
    wait_until(lambda: ("notifier", "notifier-2") in status(w), 10, what="notifier-2's beat")
    w.kill("notifier-2", signal.SIGTERM)
    assert w.redis("HGET", "tp:heartbeat:notifier", "notifier-2") is None
    assert w.redis("HGET", "tp:heartbeat:notifier", "notifier") is not None


def lag(w):
    return {s["service"]: s for s in tpctl_json("lag", config=w.config_path)["services"]}


def test_lag_grows_while_a_consumer_is_stopped_then_returns_to_zero():
    w = full_world()
    scoring = w.procs["scoring"]
    scoring.send_signal(signal.SIGSTOP)
    try:
        for i in range(3):
            assert w.post(lead(company="Lag %d" % i, id="lag-%d" % i))[0] == 202
        behind = wait_until(lambda: lag(w)["scoring"]["entries"] >= 3 and lag(w), 20,
                            what="scoring's lag")
        assert behind["scoring"]["oldest_at"] <= now_ms()
        assert behind["scoring"]["oldest_age_ms"] >= 0
        rc, out, _ = tpctl("lag", config=w.config_path)
        rows = {r[0]: r for r in columns(out)[1:]}
        assert columns(out)[0] == ["SERVICE", "BEHIND", "OLDEST", "CURSOR"], out
        assert int(rows["scoring"][1]) >= 3, out
    finally:
        scoring.send_signal(signal.SIGCONT)
    wait_until(lambda: all(s["entries"] == 0 for s in lag(w).values()), 30,
               what="every service's lag back to 0")
    rc, out, _ = tpctl("lag", config=w.config_path)
    assert all(r[1] == "0" for r in columns(out)[1:]), out
    assert all(b["lag"] == 0 for (s, _), b in status(w).items() if s != "intake")


def customer_of(w, phone="+8613800138000"):
    return wait_until(lambda: w.redis("HGET", "tp:{j}:phone", phone), 10, what="the customer")


def test_customer_timeline_reminders_and_tickets_through_intake():
    w = full_world()
    ev = lead(company="Query Co", owner="rep-q", id="q-lead")
    ev["data"]["contact"]["phone"] = "139 0000 0001"  # a customer of its own
    assert w.post(ev)[0] == 202
    cid = customer_of(w, "+8613900000001")
    wait_until(lambda: (w.customer(cid)[1] or {}).get("grading", {}).get("grade"), 10,
               what="graded")
    doc = tpctl_json("customer", cid, config=w.config_path)
    assert doc["grading"]["grade"] in ("A", "B", "C"), doc
    rc, out, err = tpctl("customer", cid, config=w.config_path)
    assert rc == 0 and "grading.grade" in out and doc["grading"]["grade"] in out, (out, err)
    # the timeline, paged as intake pages it
    doc = tpctl_json("customer", cid, "--timeline", "--limit", "1", config=w.config_path)
    assert len(doc["entries"]) == 1 and doc["next_before"], doc
    rc, out, _ = tpctl("customer", cid, "--timeline", config=w.config_path)
    assert columns(out)[0] == ["TIME", "TYPE", "SRC", "EVENT", "CUSTOMER", "SUMMARY"], out
    assert "lead.captured" in out and "lead.graded" in out, out
    # unknown customer: 404 said plainly
    rc, _, err = tpctl("customer", "NO-SUCH-CUSTOMER", config=w.config_path)
    assert rc == 1 and "NO-SUCH-CUSTOMER: not found" in err, err
    # the first-touch reminder of the graded lead, due within the day
    rem = wait_until(lambda: tpctl_json("reminders", "--owner", "rep-q", "--due-before", "+3d",
                                        config=w.config_path)["reminders"], 10,
                     what="rep-q's reminder")
    assert rem[0]["customer"] == cid, rem
    rc, out, _ = tpctl("reminders", "--owner", "rep-q", "--due-before", "+3d",
                       config=w.config_path)
    assert rc == 0 and rem[0]["rule"] in out and cid in out, out
    none = tpctl_json("reminders", "--owner", "rep-q", "--due-before", str(now_ms() - 60000),
                      config=w.config_path)
    assert none["reminders"] == [], none
    # tickets: the key tpctl made lacks tickets:read; intake says which scope
    ticket = {"type": "ticket.opened", "ts": now_ms(), "src": "web", "customer": cid,
              "data": {"ticket": "T-Q1", "title": "Export fails", "category": "fault",
                       "priority": "normal"}}
    assert w.post(ticket)[0] == 202
    rc, _, err = tpctl("tickets", "--owner", "eng-1", config=w.config_path)
    assert rc == 1 and "lacks the scope tickets:read" in err, err
    # with a key of every scope (the world's own), the agent's ticket
    env = {"TP_TPCTL_API_KEY_FILE": os.path.join(w.dir, "all.key")}
    with open(env["TP_TPCTL_API_KEY_FILE"], "w") as f:
        f.write("test-key\n")
    wait_until(lambda: tpctl("--json", "tickets", "--owner", "eng-1", config=w.config_path,
                             env=env)[1].count("T-Q1"), 10, what="T-Q1 assigned to eng-1")
    rc, out, err = tpctl("--json", "tickets", "--owner", "eng-1", config=w.config_path, env=env)
    doc = json.loads(out)
    assert [t["ticket"] for t in doc["tickets"]] == ["T-Q1"], doc
    rc, out, err = tpctl("tickets", "--owner", "eng-1", config=w.config_path, env=env)
    assert rc == 0 and columns(out)[0][:3] == ["TICKET", "STATUS", "PRIORITY"], out
    assert "T-Q1" in out and "engineering" in out, out


def test_post_from_a_file_over_http_and_over_the_bus():
    w = full_world()
    d = tempfile.mkdtemp(prefix="tp-tpctl-post-")
    one = os.path.join(d, "one.json")
    with open(one, "w") as f:
        json.dump(lead(company="File Co", id="file-1"), f)
    rc, out, err = tpctl("post", one, config=w.config_path)
    assert rc == 0 and out.split() == ["accepted", "file-1"], (out, err)
    doc = tpctl_json("post", one, config=w.config_path)
    assert doc["status"] == 202 and doc["answer"]["duplicates"] == ["file-1"], doc
    batch = os.path.join(d, "batch.json")
    with open(batch, "w") as f:
        json.dump({"events": [lead(company="B1", id="file-2"), lead(company="B2", id="file-3")]}, f)
    doc = tpctl_json("post", batch, config=w.config_path)
    assert doc["answer"]["accepted"] == ["file-2", "file-3"], doc
    # a bad event: intake's 400 names the field; nothing journaled
    bad = os.path.join(d, "bad.json")
    ev = lead(id="file-bad")
    ev["data"]["urgency"] = 9
    with open(bad, "w") as f:
        json.dump(ev, f)
    rc, out, err = tpctl("post", bad, config=w.config_path)
    assert rc == 1 and "data.urgency" in err and "400" in err, (out, err)
    assert w.redis("EXISTS", "tp:{j}:id:file-bad") == 0
    with open(os.path.join(d, "junk.json"), "w") as f:
        f.write("{not json")
    rc, _, err = tpctl("post", os.path.join(d, "junk.json"), config=w.config_path)
    assert rc == 1 and "junk.json" in err, err
    # over the bus, as the producer whose key tpctl made: admitted by intake
    bus = os.path.join(d, "bus.json")
    with open(bus, "w") as f:
        json.dump(lead(company="Bus Co", id="bus-file-1"), f)
    rc, out, err = tpctl("post", "--bus", "--as", "ops-cti", bus, config=w.config_path)
    assert rc == 0 and out.strip() == "event bus-file-1: ok", (out, err)
    assert w.redis("EXISTS", "tp:{j}:id:bus-file-1") == 1
    doc = tpctl_json("post", "--bus", "--as", "ops-cti", bus, config=w.config_path)
    assert doc["answers"] == [{"event": "event", "id": "bus-file-1", "answer": "dup"}], doc
    rc, out, err = tpctl("post", "--bus", "--as", "ops-cti", bad, config=w.config_path)
    assert rc == 1 and "data.urgency" in err, (out, err)  # checked before sending


def test_journal_trim_behind_the_slowest_cursor():
    w = full_world()
    wait_until(lambda: all(s["entries"] == 0 for s in lag(w).values()), 30,
               what="every service caught up")
    before = w.redis("XLEN", "tp:{j}:journal")
    assert before > 0
    # the default retention (7 days) keeps everything
    doc = tpctl_json("journal", "trim", config=w.config_path)
    assert doc["trimmed"] == 0 and doc["remaining"] >= before, doc
    cursors = [w.redis("GET", "tp:cursor:" + s) for s in SERVICES[1:]]
    slowest = min(cursors, key=lambda c: tuple(map(int, c.split("-"))))
    doc = tpctl_json("journal", "trim", "--retention", "0", config=w.config_path)
    assert doc["trimmed"] > 0 and doc["slowest"] in SERVICES[1:], doc
    first = (w.redis("XRANGE", "tp:{j}:journal", "-", "+", "COUNT", 1) or [[None]])[0][0]
    if first:  # nothing at or before the slowest cursor is left
        assert tuple(map(int, first.split("-"))) > tuple(map(int, slowest.split("-"))), (
            first, slowest)
    rc, out, _ = tpctl("journal", "trim", "--retention", "0", config=w.config_path)
    assert rc == 0 and out.startswith("trimmed ") and "remain" in out, out


def test_zz_world_stops_cleanly():
    assert W["w"].close()


# ---- a world of intake alone: dead letters, a journal held by a service ----

def test_deadletter_list_and_replay_once():
    w = World(services=["intake"])
    try:
        now = now_ms()
        for i, d in enumerate(["ev-1/webhook/rep-1", "ev-2/email/rep-2"]):
            n = shard(d.split("/")[2])  # the shard of the person reached
            w.redis("HSET", skey(n, "delivery:" + d), "status", "failed", "channel",
                    d.split("/")[1], "recipient", d.split("/")[2], "attempts", 5,
                    "last_error", "HTTP 500 from the hook", "body", "{}")
            w.redis("ZADD", skey(n, "deadletter"), now - 1000 * i, d)
        rc, out, err = tpctl("deadletter", "list", config=w.config_path)
        rows = columns(out)
        assert rc == 0 and rows[0] == ["ID", "CHANNEL", "RECIPIENT", "ATTEMPTS", "FAILED",
                                       "ERROR"], out
        assert rows[-1] == ["2", "dead", "deliveries"], out
        doc = tpctl_json("deadletter", "list", config=w.config_path)
        dead = {d["id"]: d for d in doc["dead"]}
        assert dead["ev-1/webhook/rep-1"]["attempts"] == 5, doc
        assert dead["ev-2/email/rep-2"]["last_error"] == "HTTP 500 from the hook", doc
        # replay one: back in the queue, attempts reset; twice: refused
        rc, out, err = tpctl("deadletter", "replay", "ev-1/webhook/rep-1", config=w.config_path)
        assert rc == 0 and out.strip() == "replayed ev-1/webhook/rep-1", (out, err)
        d = w.redis.hgetall(skey("rep-1", "delivery:ev-1/webhook/rep-1"))
        assert d["status"] == "sending" and d["attempts"] == "0", d
        assert w.redis("ZSCORE", skey("rep-1", "deliveries:due"), "ev-1/webhook/rep-1") is not None
        rc, out, err = tpctl("deadletter", "replay", "ev-1/webhook/rep-1", config=w.config_path)
        assert rc == 1 and "is not in the dead-letter set" in err, (out, err)
        doc = tpctl_json("deadletter", "replay", "--all", config=w.config_path)
        assert doc == {"replayed": ["ev-2/email/rep-2"], "not_dead": []}, doc
        assert tpctl_json("deadletter", "list", config=w.config_path)["dead"] == []
        # tpctl's own Redis user: what its commands need, nothing more
        with open(os.path.join(w.secrets_dir, "tpctl.pass")) as f:
            me = w.client().__class__(w.redis_port, auth=("tpctl", f.read().strip()))
        try:
            assert me("HGETALL", "tp:heartbeat:intake") is not None
            for cmd in (["HGETALL", "tp:{c:X}:profile"], ["XADD", "tp:{j}:journal", "*", "a", "b"],
                        ["SET", "tp:cursor:scoring", "1-0"], ["FLUSHALL"], ["KEYS", "*"]):
                try:
                    me(*cmd)
                    raise AssertionError("tpctl's user may %s" % cmd)
                except RuntimeError as e:
                    assert "NOPERM" in str(e), (cmd, e)
        finally:
            me.close()
    finally:
        assert w.close()


def test_journal_held_by_a_service_without_a_cursor():
    w = World(services=["intake"])
    try:
        for i in range(4):
            assert w.post(lead(company="Held %d" % i, id="held-%d" % i))[0] == 202
        ids = [e[0] for e in w.journal()]
        rc, out, _ = tpctl("journal", "trim", "--retention", "0", config=w.config_path)
        assert rc == 0 and "not trimmed: scoring has no cursor yet" in out, out
        doc = tpctl_json("journal", "trim", "--retention", "0", config=w.config_path)
        assert doc["held_by"] == "scoring" and doc["trimmed"] == 0 and doc["min_id"] is None
        # cursors as the services would leave them: the slowest holds the rest
        for s, at in zip(SERVICES[1:], [ids[3], ids[1], ids[2], ids[3]]):
            w.redis("SET", "tp:cursor:" + s, at)
        doc = tpctl_json("journal", "trim", "--retention", "0", config=w.config_path)
        assert doc["trimmed"] == 2 and doc["slowest"] == "scheduler", doc
        assert [e[0] for e in w.journal()] == ids[2:]
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_usage_errors_name_the_argument, test_keygen_outputs,
         test_status_heartbeats_stale_prune_and_clean_stop,
         test_lag_grows_while_a_consumer_is_stopped_then_returns_to_zero,
         test_customer_timeline_reminders_and_tickets_through_intake,
         test_post_from_a_file_over_http_and_over_the_bus,
         test_journal_trim_behind_the_slowest_cursor, test_zz_world_stops_cleanly,
         test_deadletter_list_and_replay_once, test_journal_held_by_a_service_without_a_cursor])
