"""Intake's read side over the full customer record, against the real
tp-intake and a real redis-server.

Only intake runs: each test writes the records straight into Redis in the
layout the scoring service keeps (keys.h: the profile hash, the deals set
and deal hashes, the pipeline:owner / pipeline:team zsets, the at_risk
zset, the timeline stream) and checks what the HTTP reads make of them:

- GET /v1/customers/<id>: the whole record (R-SHARED-1): grading
  (R-GRADE-1/2), classification (R-CUST-2), archive (R-CUST-1), deals
  ranked by expected value with the open total (R-VALUE-1), satisfaction
  (R-SAT-1), health (R-HEALTH-1), merges; absent fields null.
- GET /v1/customers/<id>/timeline?before=&limit=: newest first, paged,
  merged customers' timelines merged in by stream id.
- GET /v1/pipeline?owner= | ?team=: deals ranked by expected value
  (R-VALUE-1's worked example), count and total, capped at 500.
- GET /v1/customers?at_risk=1: worst health first (R-HEALTH-1).
- open reminders, as the scheduler keeps them (keys.h: a book per customer
  in its group hash, the owner's index of customers): the record's and
  GET /v1/reminders?owner=&due_before=: a person's, soonest first, capped
  at 500.
- 400 naming the field for every bad input, 404 for an unknown customer,
  503 while Redis is down.
"""
import json
import os
import signal
import time
import urllib.parse

from tp_harness import Redis, World, ckey, group_hash, run, skey, wait_until, write_book

NS = "tp:"


def zadd_sharded(w, index, *pairs):
    """ZADD score member, ... into the index `index` of each member's
    customer's shard (a member is "<customer>|..." or a customer)."""
    for score, member in zip(pairs[0::2], pairs[1::2]):
        w.redis("ZADD", skey(member.split("|")[0], index), score, member)


def zrem_sharded(w, index, member):
    w.redis("ZREM", skey(member.split("|")[0], index), member)


def hset(w, key, fields):
    args = []
    for k, v in fields.items():
        args += [k, v]
    assert w.redis("HSET", NS + key, *args) == len(fields)


def get(w, path, **query):
    if query:
        path += "?" + urllib.parse.urlencode(query)
    return w.request("GET", path)


def bad(w, path, field, status=400, **query):
    s, body = get(w, path, **query)
    assert s == status, (path, query, s, body)
    assert body.get("error") and body.get("field") == field, (path, query, body)
    return body


# ---- the record ------------------------------------------------------------

ACME_PROFILE = {
    # lead (R-LEAD-1)
    "company": "ACME Ltd", "contact_name": "Li Lei", "contact_title": "CTO",
    "contact_phone": "+8613800138000", "contact_email": "li@acme.cn",
    "industry": "manufacturing", "size": "500", "channel": "exhibition",
    "need": "MES upgrade this quarter",
    # archive (R-CUST-1)
    "name": "ACME Manufacturing Co.", "level": "group",
    "address": "1 Main Street, Suzhou", "legal_rep": "Wang Wu",
    "business_state": "operating", "aftersales_state": "in_service",
    "modules": json.dumps(["MES", "WMS"]), "hardware": "2 servers, 40 scanners",
    "notes": "prefers email before calls",
    "key_people": json.dumps([{"name": "Zhao Liu", "role": "decision_maker",
                               "birthday": "03-14"}]),
    "special_days": json.dumps([{"what": "company anniversary",
                                 "date": "2008-09-01"}]),
    "owner": "rep-1", "team": "east", "manager": "mgr-1",
    # classification (R-CUST-2)
    "relationship": "vip", "revenue_tier": "3", "growth": "quality",
    "need_level": "high",
    # grading (R-GRADE-1/2)
    "urgency": "3", "budget": "2", "decision": "3", "fit": "85",
    "fit_reasons": "size,industry, contact", "score": "92", "grade": "A",
    "grade_reason": "short-term need, clear budget", "graded_at": "1717000000000",
    "state": "intent", "state_reason": "deal D-2 at stage 4",
    "state_since": "1717000050000",
    "last_contact_at": "1717000100000", "last_outcome": "reached",
    # satisfaction (R-SAT-1) and health (R-HEALTH-1)
    "satisfaction_last": "3", "satisfaction_avg": "3.5", "follow_up": "1",
    "health": "55", "health_why": "satisfaction 3.5/5 (-15), 1 open complaint (-15)",
    "at_risk": "1", "at_risk_since": "1717000200000",
    "merged_from": json.dumps(["ACME-OLD"]),
    "created_at": "1716000000000", "updated_at": "1717000200000", "ver": "7",
}

ACME_DEALS = {
    # R-VALUE-1's worked example after the bad demo: A 1,000,000 at 20%,
    # B 300,000 at 90%: B ranks first
    "D-1": {"name": "MES rollout", "amount": "1000000", "currency": "CNY",
            "stage": "3", "probability": "20", "expected_value": "200000",
            "owner": "rep-1", "team": "east", "status": "open",
            "expected_close": "1719000000000", "stage_since": "1717000000000",
            "created_at": "1716000000000"},
    "D-2": {"name": "WMS", "amount": "300000", "currency": "CNY",
            "stage": "4", "probability": "90", "expected_value": "270000",
            "owner": "rep-1", "team": "east", "status": "open",
            "expected_close": "1718000000000", "stage_since": "1717000010000",
            "created_at": "1716000000000"},
    "D-3": {"name": "Support renewal", "amount": "50000", "currency": "CNY",
            "stage": "5", "probability": "", "expected_value": "50000",
            "owner": "rep-1", "team": "east", "status": "won", "reason": "",
            "expected_close": "", "stage_since": "1716500000000",
            "created_at": "1716000000000"},
    "D-4": {"name": "Scanners", "amount": "80000", "currency": "CNY",
            "stage": "2", "probability": "", "expected_value": "0",
            "owner": "rep-4", "team": "west", "status": "lost",
            "reason": "price", "stage_since": "1716400000000",
            "created_at": "1716000000000"},
}


def write_deals(w, customer, deals):
    w.redis("SADD", ckey(customer, "deals"), *deals.keys())
    for did, fields in deals.items():
        hset(w, ckey(customer, "deal:%s" % did, ""), fields)


def entry_fields(i, customer):
    return {"type": "contact.logged", "ts": str(1717000000000 + i),
            "src": "phone", "event": "ev-%s-%d" % (customer, i),
            "actor": "rep-1", "summary": "call %d" % i}


def xadd(w, customer, sid, fields):
    args = []
    for k, v in fields.items():
        args += [k, v]
    assert w.redis("XADD", ckey(customer, "timeline"), sid, *args) == sid


def test_full_record():
    w = World(services=["intake"])
    try:
        hset(w, ckey("ACME-1", "profile", ""), ACME_PROFILE)
        write_deals(w, "ACME-1", ACME_DEALS)
        xadd(w, "ACME-1", "1717000000000-0", entry_fields(1, "ACME-1"))
        s, rec = w.customer("ACME-1")
        assert s == 200, (s, rec)
        # the keys that were there before stay as they were
        assert rec["id"] == "ACME-1"
        assert rec["grade"] == "A" and rec["owner"] == "rep-1"
        assert rec["profile"] == ACME_PROFILE, rec["profile"]
        assert rec["open_reminders"] == [] and rec["open_tickets"] == []
        assert rec["timeline"] == [dict(entry_fields(1, "ACME-1"),
                                        at="1717000000000-0")], rec["timeline"]
        # and the record around them
        assert rec["state"] == "intent"
        assert rec["state_reason"] == "deal D-2 at stage 4"
        assert rec["team"] == "east" and rec["manager"] == "mgr-1"
        assert rec["grading"] == {
            "grade": "A", "score": 92, "fit": 85,
            "fit_reasons": ["size", "industry", "contact"],
            "reason": "short-term need, clear budget",
            "urgency": 3, "budget": 2, "decision": 3,
            "graded_at": 1717000000000}, rec["grading"]
        assert rec["classification"] == {
            "relationship": "vip", "revenue_tier": 3, "growth": "quality",
            "need_level": "high"}, rec["classification"]
        assert rec["archive"] == {
            "name": "ACME Manufacturing Co.", "level": "group",
            "address": "1 Main Street, Suzhou", "legal_rep": "Wang Wu",
            "business_state": "operating", "aftersales_state": "in_service",
            "modules": ["MES", "WMS"], "hardware": "2 servers, 40 scanners",
            "notes": "prefers email before calls",
            "key_people": [{"name": "Zhao Liu", "role": "decision_maker",
                            "birthday": "03-14"}],
            "special_days": [{"what": "company anniversary",
                              "date": "2008-09-01"}]}, rec["archive"]
        assert [d["id"] for d in rec["deals"]] == ["D-2", "D-1", "D-3", "D-4"], \
            rec["deals"]
        assert rec["deals"][0] == {
            "id": "D-2", "name": "WMS", "amount": 300000, "currency": "CNY",
            "stage": 4, "probability": 90, "expected_value": 270000,
            "status": "open", "reason": None, "owner": "rep-1",
            "team": "east", "expected_close": 1718000000000,
            "stage_since": 1717000010000}, rec["deals"][0]
        assert rec["deals"][2] == {
            "id": "D-3", "name": "Support renewal", "amount": 50000,
            "currency": "CNY", "stage": 5, "probability": None,
            "expected_value": 50000, "status": "won", "reason": "",
            "owner": "rep-1", "team": "east", "expected_close": None,
            "stage_since": 1716500000000}, rec["deals"][2]
        assert rec["deals"][3]["status"] == "lost"
        assert rec["deals"][3]["reason"] == "price"
        assert rec["deals"][3]["probability"] is None
        assert rec["deals"][3]["expected_close"] is None
        # open deals only: 270,000 + 200,000; the won and lost ones are out
        assert rec["expected_value_total"] == 470000, rec["expected_value_total"]
        assert rec["satisfaction"] == {"last": 3, "average": 3.5,
                                       "follow_up": True}, rec["satisfaction"]
        assert rec["health"] == {
            "score": 55, "at_risk": True,
            "why": "satisfaction 3.5/5 (-15), 1 open complaint (-15)",
            "since": 1717000200000}, rec["health"]
        assert rec["merged_into"] is None
        assert rec["merged_from"] == ["ACME-OLD"]
    finally:
        assert w.close()


def test_sparse_record_nulls():
    """A record with little in it: every absent field null, the archive
    empty, no deals and a zero total; flags false."""
    w = World(services=["intake"])
    try:
        hset(w, ckey("MIN-1", "profile", ""), {"company": "Min Co", "owner": "rep-3"})
        s, rec = w.customer("MIN-1")
        assert s == 200, (s, rec)
        assert rec == {
            "id": "MIN-1", "grade": None, "owner": "rep-3", "team": None,
            "manager": None, "state": None, "state_reason": None,
            "grading": {"grade": None, "score": None, "fit": None,
                        "fit_reasons": None, "reason": None, "urgency": None,
                        "budget": None, "decision": None, "graded_at": None},
            "classification": {"relationship": None, "revenue_tier": None,
                               "growth": None, "need_level": None},
            "archive": {}, "deals": [], "expected_value_total": 0,
            "satisfaction": {"last": None, "average": None, "follow_up": False},
            "health": {"score": None, "at_risk": False, "why": None,
                       "since": None},
            "merged_into": None, "merged_from": None,
            "profile": {"company": "Min Co", "owner": "rep-3"},
            "open_reminders": [], "open_tickets": [], "timeline": []}, rec
        # an empty fit_reasons is no reasons; at_risk "0" is false
        # ("since" is the current episode's: scoring leaves at_risk_since
        # behind when an episode ends); a deal id without its hash is left
        # out; expected_close 0 is scoring's "no date"
        hset(w, ckey("MIN-2", "profile", ""), {"fit_reasons": "", "at_risk": "0",
                                      "at_risk_since": "1717000200000",
                                      "follow_up": "0", "health": "80",
                                      "satisfaction_avg": "4.0"})
        w.redis("SADD", ckey("MIN-2", "deals"), "GONE")
        write_deals(w, "MIN-2", {"M-1": {
            "name": "Pilot", "amount": "1000", "currency": "CNY",
            "stage": "1", "probability": "", "expected_value": "100",
            "owner": "rep-3", "team": "", "status": "open", "reason": "",
            "expected_close": "0", "stage_since": "1717000000000",
            "created_at": "1717000000000", "closed_at": "0"}})
        s, rec = w.customer("MIN-2")
        assert s == 200, (s, rec)
        assert rec["grading"]["fit_reasons"] == [], rec["grading"]
        assert rec["health"] == {"score": 80, "at_risk": False, "why": None,
                                 "since": None}, rec["health"]
        assert rec["satisfaction"] == {"last": None, "average": 4.0,
                                       "follow_up": False}, rec["satisfaction"]
        assert rec["deals"] == [{
            "id": "M-1", "name": "Pilot", "amount": 1000, "currency": "CNY",
            "stage": 1, "probability": None, "expected_value": 100,
            "status": "open", "reason": "", "owner": "rep-3", "team": "",
            "expected_close": None, "stage_since": 1717000000000}], rec["deals"]
        assert rec["expected_value_total"] == 100, rec
    finally:
        assert w.close()


def test_merged_customer_answers_its_own_record():
    w = World(services=["intake"])
    try:
        hset(w, ckey("MAIN-1", "profile", ""), {"company": "Main", "owner": "rep-1",
                                       "merged_from": '["OLD-1","OLD-2"]'})
        hset(w, ckey("OLD-1", "profile", ""), {"company": "Old", "owner": "rep-9",
                                      "merged_into": "MAIN-1"})
        s, rec = w.customer("OLD-1")
        assert s == 200, (s, rec)
        assert rec["id"] == "OLD-1" and rec["owner"] == "rep-9", rec
        assert rec["merged_into"] == "MAIN-1" and rec["merged_from"] is None
        s, rec = w.customer("MAIN-1")
        assert s == 200 and rec["merged_from"] == ["OLD-1", "OLD-2"], rec
        assert rec["merged_into"] is None
    finally:
        assert w.close()


# ---- the timeline ------------------------------------------------------------


def sid(i):
    return "%d-0" % (1717000000000 + i * 1000)


def test_timeline_pages():
    """25 entries, 10 a page: 10, 10, 5, newest first; next_before leads
    from page to page and is null on the last."""
    w = World(services=["intake"])
    try:
        hset(w, ckey("PAGE-1", "profile", ""), {"company": "Pager", "owner": "rep-1"})
        for i in range(1, 26):
            xadd(w, "PAGE-1", sid(i), entry_fields(i, "PAGE-1"))

        def expect(i):
            return dict(entry_fields(i, "PAGE-1"), at=sid(i), customer="PAGE-1")

        path = "/v1/customers/PAGE-1/timeline"
        s, p1 = get(w, path, limit=10)
        assert s == 200, (s, p1)
        assert p1 == {"customer": "PAGE-1",
                      "entries": [expect(i) for i in range(25, 15, -1)],
                      "next_before": sid(16)}, p1
        s, p2 = get(w, path, limit=10, before=p1["next_before"])
        assert s == 200 and p2["entries"] == [expect(i) for i in range(15, 5, -1)], p2
        assert p2["next_before"] == sid(6), p2
        s, p3 = get(w, path, limit=10, before=p2["next_before"])
        assert s == 200 and p3["entries"] == [expect(i) for i in range(5, 0, -1)], p3
        assert p3["next_before"] is None, p3

        # default limit 50: everything in one page
        s, all_ = get(w, path)
        assert s == 200 and all_["entries"] == [expect(i) for i in range(25, 0, -1)]
        assert all_["next_before"] is None
        # exactly the rest fits: no further page
        s, p = get(w, path, limit=25)
        assert s == 200 and len(p["entries"]) == 25 and p["next_before"] is None
        s, p = get(w, path, limit=24)
        assert s == 200 and len(p["entries"]) == 24 and p["next_before"] == sid(2)
        # `before` need not be an entry's id; strictly older only
        s, p = get(w, path, limit=2, before="%d-5" % (1717000000000 + 3000))
        assert s == 200 and p["entries"] == [expect(3), expect(2)], p
        assert p["next_before"] == sid(2)
        s, p = get(w, path, before=sid(1))
        assert s == 200 and p == {"customer": "PAGE-1", "entries": [],
                                  "next_before": None}, p
        s, p = get(w, path, before="0-0")
        assert s == 200 and p["entries"] == [] and p["next_before"] is None, p
        s, p = get(w, path, limit=200, before="18446744073709551615-18446744073709551615")
        assert s == 200 and len(p["entries"]) == 25, p
        # a timeline without a profile is still a customer
        xadd(w, "BARE-1", "5-0", entry_fields(1, "BARE-1"))
        s, p = get(w, "/v1/customers/BARE-1/timeline")
        assert s == 200 and len(p["entries"]) == 1, p
        assert p["entries"][0]["customer"] == "BARE-1"
    finally:
        assert w.close()


def test_merged_timelines():
    """MAIN-1 absorbed OLD-1 and OLD-2: its timeline merges theirs in by
    stream id, each entry naming its customer, the limit counted after the
    merge; a page never splits entries of different timelines that share
    one stream id."""
    w = World(services=["intake"])
    try:
        hset(w, ckey("MAIN-1", "profile", ""), {"company": "Main", "owner": "rep-1",
                                       "merged_from": '["OLD-1","OLD-2"]'})
        hset(w, ckey("OLD-1", "profile", ""), {"company": "Old", "merged_into": "MAIN-1"})
        hset(w, ckey("OLD-2", "profile", ""), {"company": "Older", "merged_into": "MAIN-1"})
        layout = {"MAIN-1": [100, 300, 500, 600], "OLD-1": [200, 400, 500],
                  "OLD-2": [150, 450]}
        for cust, ms_list in layout.items():
            for ms in ms_list:
                xadd(w, cust, "%d-0" % ms, entry_fields(ms, cust))
        merged = [(600, "MAIN-1"), (500, "MAIN-1"), (500, "OLD-1"),
                  (450, "OLD-2"), (400, "OLD-1"), (300, "MAIN-1"),
                  (200, "OLD-1"), (150, "OLD-2"), (100, "MAIN-1")]

        def expect(ms, cust):
            return dict(entry_fields(ms, cust), at="%d-0" % ms, customer=cust)

        path = "/v1/customers/MAIN-1/timeline"
        s, p = get(w, path)
        assert s == 200, (s, p)
        assert p == {"customer": "MAIN-1",
                     "entries": [expect(*e) for e in merged],
                     "next_before": None}, p

        # three pages of 3
        s, p1 = get(w, path, limit=3)
        assert s == 200 and p1["entries"] == [expect(*e) for e in merged[0:3]], p1
        assert p1["next_before"] == "500-0"
        s, p2 = get(w, path, limit=3, before=p1["next_before"])
        assert s == 200 and p2["entries"] == [expect(*e) for e in merged[3:6]], p2
        assert p2["next_before"] == "300-0"
        s, p3 = get(w, path, limit=3, before=p2["next_before"])
        assert s == 200 and p3["entries"] == [expect(*e) for e in merged[6:9]], p3
        assert p3["next_before"] is None

        # pages of 2: the first would end between the two 500-0 entries, so
        # it ends before them and the next page holds both
        pages, before = [], None
        while True:
            q = {"limit": 2}
            if before:
                q["before"] = before
            s, p = get(w, path, **q)
            assert s == 200, (s, p)
            pages.append([(int(e["at"].split("-")[0]), e["customer"])
                          for e in p["entries"]])
            before = p["next_before"]
            if before is None:
                break
            assert len(pages) < 10, pages
        assert pages == [merged[0:1], merged[1:3], merged[3:5], merged[5:7],
                         merged[7:9]], pages
        # a page of one whose entry shares its id: both come, rather than
        # one lost between pages
        s, p = get(w, path, limit=1, before="600-0")
        assert s == 200 and p["entries"] == [expect(*e) for e in merged[1:3]], p
        assert p["next_before"] == "500-0"

        # the absorbed customer's own timeline is its own
        s, p = get(w, "/v1/customers/OLD-1/timeline")
        assert s == 200, (s, p)
        assert p["entries"] == [expect(500, "OLD-1"), expect(400, "OLD-1"),
                                expect(200, "OLD-1")], p

        # OLD-2 had absorbed ANCIENT-1 before it joined MAIN-1 (scoring
        # lists only direct merges): ANCIENT-1's timeline comes too, once,
        # and a merge cycle back to MAIN-1 adds nothing
        hset(w, ckey("ANCIENT-1", "profile", ""), {"merged_into": "OLD-2"})
        xadd(w, "ANCIENT-1", "50-0", entry_fields(50, "ANCIENT-1"))
        w.redis("HSET", ckey("OLD-2", "profile"), "merged_from",
                '["ANCIENT-1","MAIN-1","OLD-1"]')
        s, p = get(w, path)
        assert s == 200, (s, p)
        assert p["entries"] == [expect(*e) for e in merged] + \
            [expect(50, "ANCIENT-1")], p
        s, p = get(w, path, before="100-0")
        assert s == 200 and p["entries"] == [expect(50, "ANCIENT-1")], p
    finally:
        assert w.close()


# ---- the pipeline ------------------------------------------------------------


def pipeline_deal(cust, did, fields, ev):
    return {"customer": cust, "id": did, "name": fields["name"],
            "amount": int(fields["amount"]), "currency": fields["currency"],
            "stage": int(fields["stage"]),
            "probability": int(fields["probability"]) if fields["probability"] else None,
            "expected_value": ev, "status": fields["status"],
            "owner": fields["owner"]}


def test_pipeline_ranked_by_expected_value():
    w = World(services=["intake"])
    try:
        beta = {"B-1": {"name": "ERP", "amount": "625000", "currency": "EUR",
                        "stage": "4", "probability": "", "expected_value": "500000",
                        "owner": "rep-1", "team": "华东", "status": "open"},
                "B-2": {"name": "Training", "amount": "250000", "currency": "EUR",
                        "stage": "4", "probability": "80", "expected_value": "200000",
                        "owner": "rep-1", "team": "east", "status": "open"}}
        write_deals(w, "ACME-1", ACME_DEALS)
        write_deals(w, "BETA-2", beta)
        zadd_sharded(w, "pipeline:owner:rep-1", 200000, "ACME-1|D-1", 270000, "ACME-1|D-2",
                500000, "BETA-2|B-1", 200000, "BETA-2|B-2",
                100, "GONE-1|X-1")  # a member whose deal hash is gone
        s, p = get(w, "/v1/pipeline", owner="rep-1")
        assert s == 200, (s, p)
        # equal values (200,000) come in descending member order, as
        # ZREVRANGE gives them
        assert p == {"owner": "rep-1", "deals": [
            pipeline_deal("BETA-2", "B-1", beta["B-1"], 500000),
            pipeline_deal("ACME-1", "D-2", ACME_DEALS["D-2"], 270000),
            pipeline_deal("BETA-2", "B-2", beta["B-2"], 200000),
            pipeline_deal("ACME-1", "D-1", ACME_DEALS["D-1"], 200000)],
            "count": 4, "total_expected_value": 1170000}, p

        # a team, by a name that needs %-encoding
        zadd_sharded(w, "pipeline:team:华东", 500000, "BETA-2|B-1")
        s, p = get(w, "/v1/pipeline", team="华东")
        assert s == 200, (s, p)
        assert p == {"team": "华东", "deals": [
            pipeline_deal("BETA-2", "B-1", beta["B-1"], 500000)],
            "count": 1, "total_expected_value": 500000}, p
        zadd_sharded(w, "pipeline:team:east", 270000, "ACME-1|D-2",
                200000, "ACME-1|D-1", 200000, "BETA-2|B-2")
        s, p = get(w, "/v1/pipeline", team="east")
        assert s == 200 and [(d["customer"], d["id"]) for d in p["deals"]] == [
            ("ACME-1", "D-2"), ("BETA-2", "B-2"), ("ACME-1", "D-1")], p
        assert p["count"] == 3 and p["total_expected_value"] == 670000, p

        # R-VALUE-1: a re-estimate moves the ranking
        zadd_sharded(w, "pipeline:team:east", 900000, "ACME-1|D-1")
        s, p = get(w, "/v1/pipeline", team="east")
        assert s == 200 and p["deals"][0]["id"] == "D-1", p
        assert p["deals"][0]["expected_value"] == 900000
        assert p["total_expected_value"] == 1370000, p

        # nobody's pipeline: empty, not an error
        s, p = get(w, "/v1/pipeline", owner="nobody")
        assert s == 200 and p == {"owner": "nobody", "deals": [], "count": 0,
                                  "total_expected_value": 0}, p
    finally:
        assert w.close()


def test_pipeline_capped_at_500():
    w = World(services=["intake"])
    try:
        args = []
        for i in range(501):
            hset(w, ckey("BIG-%d" % i, "deal:D", ""),
                 {"name": "deal %d" % i, "amount": str(i * 10),
                  "currency": "CNY", "stage": "1", "probability": "",
                  "expected_value": str(i), "owner": "rep-big",
                  "status": "open"})
            args += [i, "BIG-%d|D" % i]
        zadd_sharded(w, "pipeline:owner:rep-big", *args)
        s, p = get(w, "/v1/pipeline", owner="rep-big")
        assert s == 200, (s, str(p)[:300])
        assert p["truncated"] is True and p["count"] == 500, {k: p[k] for k in ("count", "truncated")}
        assert len(p["deals"]) == 500
        assert [d["expected_value"] for d in p["deals"]] == list(range(500, 0, -1))
        assert p["total_expected_value"] == sum(range(1, 501))
        # one fewer: not truncated
        zrem_sharded(w, "pipeline:owner:rep-big", "BIG-0|D")
        s, p = get(w, "/v1/pipeline", owner="rep-big")
        assert s == 200 and p["count"] == 500 and "truncated" not in p, \
            {k: p.get(k) for k in ("count", "truncated")}
    finally:
        assert w.close()


# ---- at risk -----------------------------------------------------------------


def test_at_risk_worst_first():
    w = World(services=["intake"])
    try:
        s, p = get(w, "/v1/customers", at_risk=1)
        assert s == 200 and p == {"customers": []}, (s, p)
        hset(w, ckey("ACME-1", "profile", ""), ACME_PROFILE)
        hset(w, ckey("BETA-2", "profile", ""), {"company": "Beta GmbH", "owner": "rep-2",
                                       "health": "30", "at_risk": "1"})
        zadd_sharded(w, "at_risk", 55, "ACME-1", 30, "BETA-2", 58, "GAMMA-3")
        s, p = get(w, "/v1/customers", at_risk=1)
        assert s == 200, (s, p)
        assert p == {"customers": [
            {"id": "BETA-2", "health": 30, "owner": "rep-2",
             "company": "Beta GmbH", "name": None},
            {"id": "ACME-1", "health": 55, "owner": "rep-1",
             "company": "ACME Ltd", "name": "ACME Manufacturing Co."},
            # in the list without a profile: shown, with nothing known
            {"id": "GAMMA-3", "health": 58, "owner": None, "company": None,
             "name": None}]}, p
    finally:
        assert w.close()


# ---- bad requests ------------------------------------------------------------


def reminder(owner, due, text="Answer the web inquiry"):
    r = {"due_at": due, "urgent": False, "cause_ts": due - 7200000, "text": text}
    if owner:
        r["owner"] = owner
    return r


def test_reminders_read_from_the_books():
    w = World(services=["intake"])
    try:
        t = 1763900000000
        # 12 customers: two of rep-1's each, one of rep-2's; every 4th one
        # unassigned (no owner)
        for i in range(12):
            cid = "BK-%d" % i
            rems = {cid + "|R-SLA-1|1": reminder("rep-1", t + i * 1000),
                    cid + "|R-SLA-1|2": reminder("rep-1", t + i * 1000 + 500),
                    cid + "|R-CAD-1": reminder("rep-2", t + 20000 + i)}
            if i % 4 == 0:
                rems[cid + "|R-DAYS-1"] = reminder(None, t + 50)
            write_book(w, cid, rems, {"owner": "rep-1"})
            w.redis("HSET", ckey(cid, "profile"), "grade", "B")
        # an index entry whose book is gone (closed meanwhile): nothing
        w.redis("ZADD", "tp:{s%d}:r:owner:%d:rep-1" % (0, 0), t, "GONE")

        s, mine = w.request("GET", "/v1/reminders?owner=rep-1&due_before=%d" % (t + 5500))
        assert s == 200, mine
        got = mine["reminders"]
        assert mine["owner"] == "rep-1" and mine["due_before"] == t + 5500
        assert mine["count"] == 12 and len(got) == 12 and "truncated" not in mine, mine
        assert [(r["due_at"], r["id"]) for r in got] == sorted(
            (t + i * 1000 + k * 500, "BK-%d|R-SLA-1|%d" % (i, k + 1))
            for i in range(6) for k in range(2)), got
        assert got[0] == {"owner": "rep-1", "due_at": t, "urgent": False,
                          "cause_ts": t - 7200000, "text": "Answer the web inquiry",
                          "rule": "R-SLA-1", "id": "BK-0|R-SLA-1|1", "customer": "BK-0"}, got[0]
        # another person's, of the same books; the unassigned ones
        s, two = w.request("GET", "/v1/reminders?owner=rep-2&due_before=%d" % (t + 20002))
        assert s == 200 and [r["id"] for r in two["reminders"]] == [
            "BK-0|R-CAD-1", "BK-1|R-CAD-1", "BK-2|R-CAD-1"], two
        s, un = w.request("GET", "/v1/reminders?owner=unassigned&due_before=%d" % (t + 50))
        assert s == 200 and [r["id"] for r in un["reminders"]] == [
            "BK-0|R-DAYS-1", "BK-4|R-DAYS-1", "BK-8|R-DAYS-1"], un
        assert "owner" not in un["reminders"][0], un
        s, none = w.request("GET", "/v1/reminders?owner=rep-9")
        assert s == 200 and none["count"] == 0 and none["reminders"] == [], none

        # the customer's record: every open reminder of its book, by id
        s, rec = w.customer("BK-4")
        assert s == 200, rec
        assert [r["id"] for r in rec["open_reminders"]] == [
            "BK-4|R-CAD-1", "BK-4|R-DAYS-1", "BK-4|R-SLA-1|1", "BK-4|R-SLA-1|2"], rec
        assert rec["open_reminders"][1] == {
            "due_at": t + 50, "urgent": False, "cause_ts": t + 50 - 7200000,
            "text": "Answer the web inquiry", "rule": "R-DAYS-1", "id": "BK-4|R-DAYS-1",
            "customer": "BK-4"}, rec["open_reminders"][1]
        # a book without reminders (its state only), none, one that is not a book
        write_book(w, "EMPTY-1", {}, {"owner": "rep-1"})
        w.redis("HSET", ckey("EMPTY-1", "profile"), "grade", "C")
        w.redis("HSET", ckey("NOBOOK-1", "profile"), "grade", "C")
        w.redis("HSET", ckey("BAD-1", "profile"), "grade", "C")
        w.redis("HSET", group_hash("BAD-1"), "BAD-1", b"\x93\x03")
        for cid in ("EMPTY-1", "NOBOOK-1", "BAD-1"):
            s, rec = w.customer(cid)
            assert s == 200 and rec["open_reminders"] == [], (cid, rec)
    finally:
        assert w.close()


def test_reminders_capped_at_500():
    w = World(services=["intake"])
    try:
        t = 1763900000000
        # 300 customers with two of rep-1's each, 300 with one: 900 in all,
        # more customers than the 501 whose books are read
        want = []
        for i in range(600):
            cid = "CAP-%d" % i
            dues = [t + i * 10] + ([t + 3000 + i * 3] if i < 300 else [])
            rems = {"%s|R-SLA-1|%d" % (cid, k + 1): reminder("rep-1", d)
                    for k, d in enumerate(dues)}
            want += sorted((r["due_at"], rid) for rid, r in rems.items())
            write_book(w, cid, rems)
        want.sort()
        s, mine = w.request("GET", "/v1/reminders?owner=rep-1&due_before=%d" % (t + 100000))
        assert s == 200 and mine["count"] == 500 and mine["truncated"] is True, mine["count"]
        assert [(r["due_at"], r["id"]) for r in mine["reminders"]] == want[:500]
        # exactly 500 due by then: the whole list
        s, mine = w.request("GET", "/v1/reminders?owner=rep-1&due_before=%d" % want[499][0])
        assert s == 200 and mine["count"] == 500 and "truncated" not in mine, mine["count"]
    finally:
        assert w.close()


def test_bad_input_400_names_the_field():
    w = World(services=["intake"])
    try:
        hset(w, ckey("ACME-1", "profile", ""), {"company": "ACME", "owner": "rep-1"})
        # customer ids
        bad(w, "/v1/customers/bad%20id", "customer")
        bad(w, "/v1/customers/bad%20id/timeline", "customer")
        bad(w, "/v1/customers/" + "X" * 129, "customer")
        bad(w, "/v1/customers/" + "X" * 200 + "/timeline", "customer")
        s, _ = w.customer("X" * 128)
        assert s == 404, s
        # before: a stream id "<ms>-<seq>"
        path = "/v1/customers/ACME-1/timeline"
        for before in ["", "abc", "12", "12-", "-5", "1-2-3", "+", "-", "1 -2",
                       "0x10-1", "1.5-0", "18446744073709551616-0",
                       "1-18446744073709551616", "(5-0"]:
            bad(w, path, "before", before=before)
        # limit: 1..200
        for limit in ["", "0", "000", "201", "1000", "-1", "abc", "1.5", "+5",
                      " 5", "99999999999999999999999"]:
            bad(w, path, "limit", limit=limit)
        for limit in ["1", "200", "050", "0000000200"]:
            s, p = get(w, path, limit=limit)
            assert s == 200 and p["entries"] == [], (limit, s, p)
        # the pipeline: exactly one of owner, team
        bad(w, "/v1/pipeline", "owner")
        bad(w, "/v1/pipeline", "owner", owner="rep-1", team="east")
        bad(w, "/v1/pipeline", "owner", owner="")
        bad(w, "/v1/pipeline", "team", team="")
        bad(w, "/v1/pipeline", "owner", owner="rep\x01")
        bad(w, "/v1/pipeline", "owner", owner="r" * 129)
        bad(w, "/v1/pipeline", "team", team="t" * 65)
        s, _ = get(w, "/v1/pipeline", owner="r" * 128)
        assert s == 200
        s, _ = get(w, "/v1/pipeline", team="t" * 64)
        assert s == 200
        # the customer list: at_risk=1 only
        bad(w, "/v1/customers", "at_risk")
        bad(w, "/v1/customers", "at_risk", at_risk="0")
        bad(w, "/v1/customers", "at_risk", at_risk="true")
        bad(w, "/v1/customers", "at_risk", at_risk="")
        bad(w, "/v1/customers", "at_risk", owner="rep-1")
        # the older reads name their field too
        bad(w, "/v1/lookup", "phone")
        bad(w, "/v1/lookup", "phone", phone="abc")
        bad(w, "/v1/inbox/bad%20user", "user")
        # unknown customers and resources
        s, body = w.customer("NOBODY-1")
        assert s == 404 and body.get("error"), (s, body)
        s, body = get(w, "/v1/customers/NOBODY-1/timeline")
        assert s == 404 and body.get("error"), (s, body)
        s, body = get(w, "/v1/customers/ACME-1/nothing")
        assert s == 404, (s, body)
        s, body = get(w, "/v1/customers/ACME-1/timeline/x")
        assert s == 404, (s, body)
        # and every read wants the key
        for path in ["/v1/customers/ACME-1/timeline", "/v1/pipeline?owner=rep-1",
                     "/v1/customers?at_risk=1"]:
            assert w.request("GET", path, key=None)[0] == 401, path
    finally:
        assert w.close()


# ---- the store down ----------------------------------------------------------

READS = ["/v1/customers/ACME-1", "/v1/customers/ACME-1/timeline",
         "/v1/pipeline?owner=rep-1", "/v1/customers?at_risk=1"]


def test_store_down_503():
    w = World(services=["intake"])
    stopped = False
    try:
        hset(w, ckey("ACME-1", "profile", ""), {"company": "ACME", "owner": "rep-1"})
        for path in READS:
            assert w.request("GET", path)[0] == 200, path
        # hung: answered 503 once the store's reply watchdog gives up
        os.kill(w.redis_proc.pid, signal.SIGSTOP)
        stopped = True
        t0 = time.time()
        s, body = w.request("GET", "/v1/customers/ACME-1/timeline")
        assert s == 503 and body.get("error"), (s, body)
        assert time.time() - t0 < 10
        os.kill(w.redis_proc.pid, signal.SIGCONT)
        stopped = False
        wait_until(w._healthy, 15, what="intake healthy after SIGCONT")
        # gone: answered 503 at once
        w.redis.close()
        w.redis_proc.kill()
        w.redis_proc.wait(10)
        for path in READS:
            s, body = w.request("GET", path)
            assert s == 503 and body.get("error"), (path, s, body)
        w._start_redis()
        w.redis = w.client()
        wait_until(w._healthy, 15, what="intake reconnected to redis")
        for path in READS:
            assert w.request("GET", path)[0] == 200, path
    finally:
        if stopped:
            os.kill(w.redis_proc.pid, signal.SIGCONT)
        assert w.close()


if __name__ == "__main__":
    run([test_full_record,
         test_sparse_record_nulls,
         test_merged_customer_answers_its_own_record,
         test_timeline_pages,
         test_merged_timelines,
         test_pipeline_ranked_by_expected_value,
         test_pipeline_capped_at_500,
         test_at_risk_worst_first,
         test_reminders_read_from_the_books,
         test_reminders_capped_at_500,
         test_bad_input_400_names_the_field,
         test_store_down_503])
