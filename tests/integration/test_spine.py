"""The spine end to end, through HTTP and the real processes.

R-GRADE-2 / R-TOUCH-1: a grade-A lead is graded A and its first-touch
reminder reaches the webhook receiver exactly once (and the owner's inbox).
R-CAD-4: a lead whose contact is logged before the deadline gets none.
"""
import json
import time

from tp_harness import World, lead, now_ms, run, wait_until

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
        wait_until(lambda: w.customer("GLOBEX-1")[1]["open_reminders"] == [], 5,
                   what="reminder closed by the contact")
        time.sleep(3)  # past the 2 s deadline
        assert w.receiver.received() == []
        assert w.journal("reminder.due") == []
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_grade_a_lead_gets_one_first_touch_reminder,
         test_contact_before_deadline_closes_first_touch])
