"""The shared customer record, through HTTP and the real processes
(issue 3): stages and states, expected value and its ranking, health and
at-risk episodes, merges, and exactly-once under redelivery."""
import json
import os
import signal
import subprocess
import time

from tp_harness import BUILD, World, ckey, lead, now_ms, run, skey, wait_until

DAY = 86400000


def opp(customer, deal, stage, ts, **data):
    d = {"opportunity": deal, "stage": stage}
    d.update(data)
    return {"type": "opportunity.updated", "ts": ts, "src": "api", "customer": customer,
            "data": d}


def record(w, cid):
    status, body = w.customer(cid)
    return body if status == 200 else {}


def state_of(w, cid):
    return record(w, cid).get("profile", {}).get("state")


def journal_data(w, type_name):
    """The `data` of every journal entry of `type_name`, decoded."""
    out = []
    for eid, fields in w.redis("XRANGE", "tp:{j}:journal", "-", "+") or []:
        f = dict(zip(fields[0::2], fields[1::2]))
        if f.get("t") == type_name:
            out.append(eid)
    return out


def stage_changes(w, cid):
    entries = w.redis("XRANGE", ckey(cid, "timeline"), "-", "+") or []
    return [dict(zip(f[0::2], f[1::2]))["summary"] for _, f in entries
            if dict(zip(f[0::2], f[1::2]))["type"] == "stage.changed"]


def test_R_STAGE_lead_to_won_to_long_term():
    """R-STAGE-1/2: the customer's state follows its most advanced open deal,
    a won deal makes it signed, delivery (stage 5) long-term; each stage
    change is derived once, with the time spent in the previous stage."""
    w = World()
    try:
        t0 = now_ms() - 40 * DAY
        ev = lead("Stageco", owner="rep-s")
        ev["customer"], ev["ts"] = "STAGE-1", t0
        assert w.post(ev)[0] == 202
        wait_until(lambda: state_of(w, "STAGE-1") == "potential", 5,
                   what="a new customer is potential")
        steps = [(1, "target"), (2, "target"), (3, "intent"), (4, "intent")]
        for i, (stage, state) in enumerate(steps):
            body = opp("STAGE-1", "D-1", stage, t0 + (i + 1) * 7 * DAY, name="MES rollout",
                       amount=500000, currency="CNY")
            assert w.post(body)[0] == 202
            wait_until(lambda: state_of(w, "STAGE-1") == state, 5,
                       what="state %s at stage %d" % (state, stage))
        assert w.post({"type": "deal.closed", "ts": t0 + 35 * DAY, "src": "api",
                       "customer": "STAGE-1",
                       "data": {"opportunity": "D-1", "outcome": "won"}})[0] == 202
        wait_until(lambda: state_of(w, "STAGE-1") == "signed", 5,
                   what="signed after the win")
        assert w.post(opp("STAGE-1", "D-1", 5, t0 + 38 * DAY))[0] == 202
        wait_until(lambda: state_of(w, "STAGE-1") == "long_term", 5,
                   what="long-term after delivery")
        wait_until(lambda: len(journal_data(w, "stage.changed")) == 5, 10,
                   what="five stage.changed")
        changes = stage_changes(w, "STAGE-1")
        assert changes == ["deal D-1 stage 0 -> 1 after 0 h",
                           "deal D-1 stage 1 -> 2 after 168 h",
                           "deal D-1 stage 2 -> 3 after 168 h",
                           "deal D-1 stage 3 -> 4 after 168 h",
                           "deal D-1 stage 4 -> 5 after 240 h"], changes
        deal = w.redis.hgetall(ckey("STAGE-1", "deal:D-1"))
        assert deal["status"] == "won" and deal["expected_value"] == "500000", deal
        # a won deal leaves the pipeline ranking
        assert w.redis("ZSCORE", skey("STAGE-1", "pipeline:owner:rep-s"), "STAGE-1|D-1") is None
    finally:
        assert w.close()


def test_R_VALUE_1_ranking_flips():
    """R-VALUE-1, domain.md's worked example: A 1,000,000 at 80% = 800,000
    ranks above B 300,000 at 80% = 240,000; after a bad demo A is at 20%
    (200,000) and B at 90% (270,000): B ranks first."""
    w = World()
    try:
        t = now_ms()
        for cid, deal, amount in (("VAL-A", "A", 1000000), ("VAL-B", "B", 300000)):
            assert w.post(opp(cid, deal, 3, t, amount=amount, probability=80,
                              owner="rep-v", team="east"))[0] == 202

        def ranking(by="owner=rep-v"):  # merged over the shards by intake
            status, body = w.request("GET", "/v1/pipeline?" + by)
            assert status == 200, body
            return [("%s|%s" % (d["customer"], d["id"]), int(d["expected_value"]))
                    for d in body["deals"]]
        wait_until(lambda: len(ranking()) == 2, 5, what="both deals ranked")
        assert ranking() == [("VAL-A|A", 800000), ("VAL-B|B", 240000)], ranking()
        assert w.post(opp("VAL-A", "A", 3, t + 1, probability=20))[0] == 202
        assert w.post(opp("VAL-B", "B", 3, t + 1, probability=90))[0] == 202
        wait_until(lambda: ranking() == [("VAL-B|B", 270000), ("VAL-A|A", 200000)], 5,
                   what="B first after the bad demo")
        assert [m for m, _ in ranking("team=east")] == ["VAL-B|B", "VAL-A|A"]
    finally:
        assert w.close()


def test_R_HEALTH_1_at_risk_once_per_episode():
    """R-HEALTH-1 / R-SAT-1: low scores and an open complaint pull health
    below the threshold: customer.at_risk once, however many bad events
    follow; recovery ends the episode; a new fall starts a new one."""
    w = World()
    try:
        cid = "HEALTH-1"

        def survey(score, n):
            return {"id": "survey-%d" % n, "type": "survey.answered", "ts": now_ms(),
                    "src": "web", "customer": cid,
                    "data": {"score": score, "about": "ticket"}}
        assert w.post(lead("Healthco", owner="rep-h", customer=cid))[0] == 202
        assert w.post(survey(2, 1))[0] == 202  # avg 2.0: -30 -> 70, not yet at risk
        wait_until(lambda: record(w, cid).get("profile", {}).get("health") == "70", 5,
                   what="health 70")
        assert record(w, cid)["profile"]["follow_up"] == "1"  # R-SAT-1: below 4
        assert w.post({"type": "ticket.opened", "ts": now_ms(), "src": "hotline",
                       "customer": cid, "data": {"title": "Rude support",
                                                 "category": "complaint",
                                                 "priority": "high"}})[0] == 202
        wait_until(lambda: len(journal_data(w, "customer.at_risk")) == 1, 5,
                   what="customer.at_risk")  # 100 - 30 - 15 = 55 < 60
        for n in range(2, 5):  # more bad news in the same episode
            assert w.post(survey(1, n))[0] == 202
        wait_until(lambda: record(w, cid)["profile"].get("satisfaction_last") == "1", 5,
                   what="the later surveys applied")
        time.sleep(0.5)
        assert len(journal_data(w, "customer.at_risk")) == 1
        assert w.redis("ZSCORE", skey(cid, "at_risk"), cid) is not None
        for n in range(5, 10):  # five good scores: average 5, recovered
            assert w.post(survey(5, n))[0] == 202
        tickets = w.redis("SMEMBERS", ckey(cid, "complaints"))
        assert w.post({"type": "ticket.updated", "ts": now_ms(), "src": "api",
                       "customer": cid, "data": {"ticket": tickets[0], "action": "status",
                                                 "agent": "a-1", "status": "resolved"}}
                      )[0] == 202
        wait_until(lambda: record(w, cid)["profile"].get("at_risk") == "0", 5,
                   what="episode ended")
        assert w.redis("ZSCORE", skey(cid, "at_risk"), cid) is None
        for n in range(10, 15):  # a new fall (1/5 average: -40) and a complaint
            assert w.post(survey(1, n))[0] == 202
        assert w.post({"type": "ticket.opened", "ts": now_ms(), "src": "hotline",
                       "customer": cid, "data": {"title": "Still rude",
                                                 "category": "complaint",
                                                 "priority": "high"}})[0] == 202
        wait_until(lambda: len(journal_data(w, "customer.at_risk")) == 2, 5,
                   what="a second episode")
    finally:
        assert w.close()


def test_R_HEALTH_1_silence_alone_raises_at_risk():
    """R-HEALTH-1: days without contact count even when no event arrives:
    the sweep checks silent customers and raises the episode once. Here a
    "day" is 300 ms, the grace 1 day and each silent day costs 10."""
    w = World({"scoring": {"health_sweep": "100ms"}})
    try:
        for s, v in (("TP_HEALTH_SILENCE_DAY", "300ms"), ("TP_HEALTH_CONTACT_GRACE", "300ms"),
                     ("TP_HEALTH_PER_SILENT_DAY", "10"), ("TP_HEALTH_SILENCE_MAX", "60")):
            os.environ[s] = v
        w.kill("scoring", signal.SIGTERM)
        w.start("scoring")
        cid = "SILENT-1"
        assert w.post(lead("Silentco", owner="rep-q", customer=cid))[0] == 202
        assert w.post({"type": "contact.logged", "ts": now_ms(), "src": "phone",
                       "customer": cid, "data": {"channel": "phone", "direction": "out",
                                                 "outcome": "reached"}})[0] == 202
        wait_until(lambda: len(journal_data(w, "customer.at_risk")) == 1, 10,
                   what="at risk from silence alone")
        rec = record(w, cid)
        assert "no contact for" in rec["profile"]["health_why"], rec["profile"]
        time.sleep(1.5)  # silence goes on: still one episode
        assert len(journal_data(w, "customer.at_risk")) == 1
    finally:
        for s in ("TP_HEALTH_SILENCE_DAY", "TP_HEALTH_CONTACT_GRACE",
                  "TP_HEALTH_PER_SILENT_DAY", "TP_HEALTH_SILENCE_MAX"):
            os.environ.pop(s, None)
        assert w.close()


def test_merge_keeps_both_timelines():
    """Two records of one customer: the merge keeps both timelines, fills
    what the surviving record lacks, and the duplicate's number now finds
    the surviving record."""
    w = World()
    try:
        a = lead("Mergeco", owner="rep-m", customer="MERGE-A")
        del a["data"]["contact"]
        b = lead("Mergeco Ltd", owner="rep-m", customer="MERGE-B")
        b["data"]["contact"] = {"name": "Zhao", "phone": "139 0000 1111"}
        assert w.post([a, b])[0] == 202
        wait_until(lambda: record(w, "MERGE-B").get("grade"), 5, what="both graded")
        status, body = w.post({"type": "customer.merged", "ts": now_ms(), "src": "api",
                               "customer": "MERGE-A",
                               "data": {"from": "MERGE-B", "reason": "same company"}})
        assert status == 202, body
        wait_until(lambda: record(w, "MERGE-A").get("profile", {}).get("merged_from"), 5,
                   what="merge applied")
        rec = record(w, "MERGE-A")
        assert json.loads(rec["profile"]["merged_from"]) == ["MERGE-B"]
        assert rec["profile"]["contact_phone"] == "139 0000 1111"  # filled in
        assert record(w, "MERGE-B")["profile"]["merged_into"] == "MERGE-A"
        s, found = w.request("GET", "/v1/lookup?phone=13900001111")
        assert found["customers"] == ["MERGE-A"], found
        # both timelines are still there
        assert w.redis("XLEN", ckey("MERGE-B", "timeline")) >= 2
        assert w.redis("XLEN", ckey("MERGE-A", "timeline")) >= 3
    finally:
        assert w.close()


def test_state_changes_once_when_bus_messages_are_lost():
    """Scoring down while deals move: intake's messages to it are dropped
    (no instance to take them); when it starts, the journal walk applies
    every event once, in order, and each stage change is derived once."""
    w = World(services=["intake", "notifier", "ticketing"])  # no reminders meanwhile
    try:
        t0 = now_ms() - 10 * DAY
        events = [lead("Lostco", owner="rep-l", customer="LOST-1", ts=t0)]
        for i, stage in enumerate((1, 2, 3)):
            events.append(opp("LOST-1", "D-9", stage, t0 + (i + 1) * DAY, amount=1000))
        for ev in events:  # one request each: routed (and dropped) one by one
            ev["data"].pop("contact", None)
            assert w.post(ev)[0] == 202
        w.start("scoring")
        wait_until(lambda: state_of(w, "LOST-1") == "intent", 15,
                   what="state applied from the journal")
        time.sleep(2.5)  # a repeated apply would show now
        assert stage_changes(w, "LOST-1") == ["deal D-9 stage 0 -> 1 after 0 h",
                                               "deal D-9 stage 1 -> 2 after 24 h",
                                               "deal D-9 stage 2 -> 3 after 24 h"]
        assert len(journal_data(w, "stage.changed")) == 3
        ver = record(w, "LOST-1")["profile"]["ver"]
        assert ver == "4", ver  # four events, once each
        assert "reconcile: applying" in w.log("scoring")
    finally:
        assert w.close()


def test_bad_rules_file_names_the_line():
    w = World(services=["intake"])
    try:
        rules = os.path.join(w.dir, "rules.ini")
        with open(rules, "w") as f:
            f.write("[grade]\nweight_urgency = 4\nthreshold_a = very high\n")
        env = dict(os.environ, TP_CONFIG=w.config_path, TP_SCORING_RULES=rules)
        p = subprocess.run([os.path.join(BUILD, "services", "scoring", "tp-scoring")],
                           env=env, capture_output=True, text=True, timeout=20)
        assert p.returncode == 1, p
        assert "%s:3: grade.threshold_a" % rules in p.stdout, p.stdout + p.stderr  # the log: stdout
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_R_STAGE_lead_to_won_to_long_term,
         test_R_VALUE_1_ranking_flips,
         test_R_HEALTH_1_at_risk_once_per_episode,
         test_R_HEALTH_1_silence_alone_raises_at_risk,
         test_merge_keeps_both_timelines,
         test_state_changes_once_when_bus_messages_are_lost,
         test_bad_rules_file_names_the_line])
