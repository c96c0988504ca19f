"""The spine end to end, through HTTP and the real processes.

R-GRADE-2 / R-TOUCH-1: a grade-A lead is graded A and its first-touch
reminder reaches the webhook receiver exactly once (and the owner's inbox).
R-CAD-4: a lead whose contact is logged before the deadline gets none.
"""
import json
import time

from tp_harness import World, ckey, lead, now_ms, run, wait_until


FIRST_TOUCH = {"scheduler": {"first_touch_a": "2s", "first_touch_b": "2s",
                             "first_touch_c": "2s"}}


def test_grade_a_lead_gets_one_first_touch_reminder():
    w = World(FIRST_TOUCH)
    try:
        status, body = w.post(lead("ACME", owner="rep-a"))
        assert status == 202, body
        assert len(body["accepted"]) == 1 and body["duplicates"] == []
        status, found = w.request("GET", "/v1/lookup?phone=%2B86%2013800138000")
        assert status == 200 and len(found["customers"]) == 1, found
        cid = found["customers"][0]

        def graded():
            s, rec = w.customer(cid)
            return s == 200 and rec["grade"] == "A" and rec
        rec = wait_until(graded, what="grade A on the customer record")
        assert rec["owner"] == "rep-a"
        assert rec["profile"]["company"] == "ACME"
        assert any(e["type"] == "lead.captured" for e in rec["timeline"])
        # the first-touch reminder is open, then fires once
        wait_until(lambda: w.customer(cid)[1]["open_reminders"], 5,
                   what="open first-touch reminder")
        wait_until(lambda: w.receiver.received(), 15, what="webhook delivery")
        time.sleep(1.5)  # a second delivery would arrive in this window
        got = w.receiver.received()
        assert len(got) == 1, got
        body = json.loads(got[0]["body"])
        assert body["kind"] == "reminder.due" and body["recipient"] == "rep-a"
        assert body["notification"]["rule"] == "R-TOUCH-1"
        assert got[0]["headers"]["Idempotency-Key"] == body["delivery"]
        assert len(w.journal("reminder.due")) == 1
        wait_until(lambda: len(w.journal("notification.sent")) == 1, 10,
                   what="notification.sent journaled")
        s, inbox = w.request("GET", "/v1/inbox/rep-a")
        assert s == 200 and len(inbox["items"]) == 1, inbox
        assert w.customer(cid)[1]["open_reminders"] == []
    finally:
        assert w.close()


def test_contact_before_deadline_closes_first_touch():
    w = World(FIRST_TOUCH)
    try:
        ev = lead("Globex", owner="rep-b")
        ev["customer"] = "GLOBEX-1"
        assert w.post(ev)[0] == 202
        wait_until(lambda: w.customer("GLOBEX-1")[1].get("open_reminders"), 5,
                   what="first-touch reminder planned")
        status, _ = w.post({"type": "contact.logged", "ts": now_ms(), "src": "phone",
                            "customer": "GLOBEX-1",
                            "data": {"channel": "phone", "direction": "out",
                                     "outcome": "reached"}})
        assert status == 202
        def first_touch_open():
            return [r for r in w.customer("GLOBEX-1")[1]["open_reminders"]
                    if r["rule"] == "R-TOUCH-1"]
        wait_until(lambda: not first_touch_open(), 5,
                   what="first touch closed by the contact (R-CAD-4)")
        time.sleep(3)  # past the 2 s deadline
        assert w.receiver.received() == []
        assert w.journal("reminder.due") == []
    finally:
        assert w.close()


def graded_events(w, customer):
    """lead.graded data of `customer`, in journal order."""
    out = []
    for eid, fields in w.redis("XRANGE", ckey(customer, "timeline"), "-", "+"):
        f = dict(zip(fields[0::2], fields[1::2]))
        if f["type"] == "lead.graded":
            out.append(f["summary"])
    return out


def test_interested_contacts_regrade_c_to_a():
    """R-GRADE-3: every signal regrades; a C lead whose need turns urgent
    becomes A at once, and lead.graded says what it was before."""
    w = World()
    try:
        ev = lead("Slowco", urgency=0, budget=1, decision=0, owner="rep-c")
        ev["customer"] = "SLOWCO-1"
        assert w.post(ev)[0] == 202
        wait_until(lambda: w.customer("SLOWCO-1")[1].get("grade") == "C", 5,
                   what="grade C")
        for n in range(3):  # each "interested" raises urgency by one step
            assert w.post({"type": "contact.logged", "ts": now_ms(), "src": "phone",
                           "customer": "SLOWCO-1",
                           "data": {"channel": "phone", "direction": "out",
                                    "outcome": "interested"}})[0] == 202
        wait_until(lambda: w.customer("SLOWCO-1")[1].get("grade") == "A", 10,
                   what="grade A after the urgent need")
        rec = w.customer("SLOWCO-1")[1]
        assert rec["profile"]["urgency"] == "3"
        assert "urgency 2 -> 3" in rec["profile"]["grade_reason"]
        wait_until(lambda: len(graded_events(w, "SLOWCO-1")) >= 2, 5,
                   what="lead.graded on the timeline")
        grades = w.journal("lead.graded")
        assert 2 <= len(grades) <= 4  # C, then each change (C->B?, ->A), never a repeat
        last = graded_events(w, "SLOWCO-1")[-1]
        assert last.startswith("graded A"), last
    finally:
        assert w.close()


def test_regrade_replans_first_touch():
    """R-TOUCH-1: a lead re-captured with an urgent need is replanned from
    its new grade (C: a month; A: 2 s here) before anyone touched it."""
    w = World({"scheduler": {"first_touch_a": "2s", "first_touch_c": "1h"}})
    try:
        ev = lead("Latecomer", urgency=0, budget=0, decision=0, owner="rep-r")
        ev["customer"] = "LATE-1"
        assert w.post(ev)[0] == 202
        wait_until(lambda: w.customer("LATE-1")[1].get("open_reminders"), 5,
                   what="first touch planned for grade C")
        due_c = w.customer("LATE-1")[1]["open_reminders"][0]["due_at"]
        ev = lead("Latecomer", urgency=3, budget=3, decision=3, owner="rep-r")
        ev["customer"] = "LATE-1"
        assert w.post(ev)[0] == 202
        wait_until(lambda: w.receiver.received(), 10, what="the replanned reminder")
        body = json.loads(w.receiver.received()[0]["body"])
        assert body["notification"]["due_at"] < due_c
        assert "grade A" in body["notification"]["text"]
    finally:
        assert w.close()


def test_call_resolves_customer_by_number():
    """R-SHARED-2: a call from the lead's number, in another notation, lands
    on the same customer's timeline."""
    w = World()
    try:
        ev = lead("Callco")
        ev["customer"] = "CALLCO-1"
        assert w.post(ev)[0] == 202
        status, body = w.post({"type": "call.ended", "ts": now_ms(), "src": "phone",
                               "data": {"from": "0086 138-0013-8000", "to": "4008001234",
                                        "direction": "in", "agent": "agent-1",
                                        "queue": "sales", "duration_s": 42}})
        assert status == 202, body
        wait_until(lambda: any(e["type"] == "call.ended"
                               for e in (w.customer("CALLCO-1")[1] or {}).get("timeline", [])), 5,
                   what="the call on CALLCO-1's timeline")
        s, found = w.request("GET", "/v1/lookup?phone=13800138000")
        assert found["customers"] == ["CALLCO-1"]
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_grade_a_lead_gets_one_first_touch_reminder,
         test_contact_before_deadline_closes_first_touch,
         test_interested_contacts_regrade_c_to_a,
         test_regrade_replans_first_touch,
         test_call_resolves_customer_by_number])
