"""The follow-up rules of the scheduler (issue 4), through HTTP and the real
processes, with short durations from the test configuration: each rule
fires when it should, and not when its condition is met first."""
import datetime
import json
import os
import time

from tp_harness import World, ckey, lead, now_ms, run, wait_until

DAY = 86400000
FAST = {"scheduler": {"cadence_a": "1s", "cadence_b": "1s", "cadence_c": "1s",
                      "cadence_default": "1s", "first_touch_a": "1h",
                      "first_touch_b": "1h", "first_touch_c": "1h",
                      "mail_window": "1s", "mail_window_unchecked": "true"}}


def due_events(w, customer=None, rule=None):
    """reminder.due events in the journal, decoded from the timeline of
    `customer` (scoring puts every event there)."""
    out = []
    keys = [ckey(customer, "timeline")] if customer else []
    for key in keys:
        for _, f in w.redis("XRANGE", key, "-", "+") or []:
            d = dict(zip(f[0::2], f[1::2]))
            if d["type"] == "reminder.due" and (rule is None or d["summary"].startswith(rule)):
                out.append(d)
    return out


def open_reminders(w, cid):
    status, rec = w.customer(cid)
    return rec.get("open_reminders", []) if status == 200 else []


def contact(cid, outcome="reached", channel="phone", direction="out", ts=None, **data):
    d = {"channel": channel, "direction": direction, "outcome": outcome}
    d.update(data)
    return {"type": "contact.logged", "ts": ts or now_ms(), "src": "phone", "customer": cid,
            "data": d}


def test_R_CAD_1_cadence_after_contact_and_R_CAD_3_refusal_stops_it():
    w = World(FAST)
    try:
        assert w.post(lead("Cadco", customer="CAD-1", owner="rep-c"))[0] == 202
        assert w.post(contact("CAD-1", "reached"))[0] == 202
        wait_until(lambda: len(due_events(w, "CAD-1", "R-CAD-1")) >= 1, 10,
                   what="a cadence follow-up after the contact")
        # a refusal stops the cadence: nothing more after it
        assert w.post(contact("CAD-1", "refused"))[0] == 202
        wait_until(lambda: not [r for r in open_reminders(w, "CAD-1")
                                if r["rule"] == "R-CAD-1"], 5, what="cadence stopped")
        n = len(due_events(w, "CAD-1", "R-CAD-1"))
        time.sleep(2.5)
        assert len(due_events(w, "CAD-1", "R-CAD-1")) == n
    finally:
        assert w.close()


def test_R_CAD_2_agreed_time_replaces_cadence():
    w = World(FAST)
    try:
        agreed = now_ms() + 60 * 60 * 1000
        assert w.post(lead("Thinkco", customer="CAD-2", owner="rep-c"))[0] == 202
        assert w.post(contact("CAD-2", "needs_time", next_contact_at=agreed))[0] == 202
        wait_until(lambda: [r for r in open_reminders(w, "CAD-2") if r["rule"] == "R-CAD-1"],
                   5, what="the agreed follow-up")
        cad = [r for r in open_reminders(w, "CAD-2") if r["rule"] == "R-CAD-1"]
        assert len(cad) == 1 and cad[0]["due_at"] == agreed and cad[0]["agreed"], cad
        time.sleep(2)  # the 1 s cadence does not chase them meanwhile
        assert due_events(w, "CAD-2", "R-CAD-1") == []
    finally:
        assert w.close()


def test_R_MAIL_1_reply_window():
    w = World(FAST)
    try:
        for cid in ("MAIL-1", "MAIL-2"):
            assert w.post(lead("Mailco", customer=cid, owner="rep-m"))[0] == 202
            assert w.post(contact(cid, "reached", channel="email", direction="out"))[0] == 202
        # MAIL-2 answers within the window
        assert w.post(contact("MAIL-2", "interested", channel="email", direction="in"))[0] == 202
        wait_until(lambda: due_events(w, "MAIL-1", "R-MAIL-1"), 10,
                   what="no reply: the window's reminder")
        time.sleep(1.5)
        assert due_events(w, "MAIL-2", "R-MAIL-1") == []
    finally:
        assert w.close()


def test_R_STAGE_3_dwell_alarm_then_manager_and_R_STAGE_4_deadline():
    """A deal that stays in stage 3 past its reference duration alarms its
    owner, then the manager; moving on first cancels both. Stage 3 also owes
    a proposal within 3 working days (R-CAL-1 counted on the calendar)."""
    os.environ["TP_STAGES_DURATION_3"] = "1s"
    w = World({"scheduler": {"dwell_escalate": "1s"}, "managers": {"rep-d": "mgr-d"}})
    try:
        t = now_ms()
        for cid in ("DWELL-1", "DWELL-2"):
            assert w.post({"type": "opportunity.updated", "ts": t, "src": "api",
                           "customer": cid, "data": {"opportunity": "D", "stage": 3,
                                                     "owner": "rep-d", "amount": 10}})[0] == 202
        assert w.post({"type": "opportunity.updated", "ts": t + 10, "src": "api",
                       "customer": "DWELL-2",
                       "data": {"opportunity": "D", "stage": 4}})[0] == 202
        wait_until(lambda: len(due_events(w, "DWELL-1", "R-STAGE-3")) == 2, 10,
                   what="owner then manager")
        # timeline lines read "<rule> for <recipient>: <text>"
        owners = sorted(r["summary"].split(" for ")[1].split(":")[0]
                        for r in due_events(w, "DWELL-1", "R-STAGE-3"))
        assert owners == ["mgr-d", "rep-d"], owners
        time.sleep(1)
        assert due_events(w, "DWELL-2", "R-STAGE-3") == []
        # R-STAGE-4 + R-CAL-1: the proposal is due at the end of the 3rd
        # working day (default calendar: UTC, Mon-Fri, 09:00-18:00)
        deadline = [r for r in open_reminders(w, "DWELL-1") if r["rule"] == "R-STAGE-4"]
        day = datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc).date()
        n = 0
        while n < 3:
            day += datetime.timedelta(days=1)
            if day.weekday() < 5:
                n += 1
        end = datetime.datetime(day.year, day.month, day.day, 18, tzinfo=datetime.timezone.utc)
        assert deadline and deadline[0]["due_at"] == int(end.timestamp() * 1000), (deadline, end)
    finally:
        os.environ.pop("TP_STAGES_DURATION_3", None)
        assert w.close()


def test_R_DAYS_1_birthday_greeting_every_year():
    w = World()
    try:
        soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2))
        birthday = soon.strftime("%m-%d")
        assert w.post({"type": "customer.updated", "ts": now_ms(), "src": "api",
                       "customer": "DAYS-1",
                       "data": {"owner": "rep-y", "key_people": [
                           {"name": "Wang Fang", "role": "decision_maker",
                            "birthday": birthday}]}})[0] == 202
        # three days ahead of a birthday two days away: due now, fires
        wait_until(lambda: due_events(w, "DAYS-1", "R-DAYS-1"), 10, what="the greeting")
        # and the series moved to next year's birthday
        nxt = [r for r in open_reminders(w, "DAYS-1") if r["rule"] == "R-DAYS-1"]
        assert len(nxt) == 1 and nxt[0]["due_at"] > now_ms() + 300 * DAY, nxt
        assert len(due_events(w, "DAYS-1", "R-DAYS-1")) == 1
    finally:
        assert w.close()


def test_R_PAY_1_ahead_on_the_day_overdue_until_paid():
    w = World()
    try:
        due = now_ms() - 2 * DAY - 60000  # two days overdue already
        assert w.post({"type": "payment.scheduled", "ts": now_ms(), "src": "api",
                       "customer": "PAY-1", "data": {"payment": "P1", "amount": 5000,
                                                      "currency": "CNY", "due_at": due,
                                                      "owner": "rep-p"}})[0] == 202
        # ahead, on the day, and overdue (fired late, once each)
        wait_until(lambda: len(due_events(w, "PAY-1", "R-PAY-1")) >= 3, 10,
                   what="three payment reminders")
        # escalated daily from now on (the missed days fired once, late)
        wait_until(lambda: [r for r in open_reminders(w, "PAY-1")
                            if "overdue" in r["id"] and r["due_at"] > now_ms()], 5,
                   what="the overdue series moved to tomorrow")
        assert len(due_events(w, "PAY-1", "R-PAY-1")) == 3
        # what is due for the rep, with the rule that made each
        s, mine = w.request("GET", "/v1/reminders?owner=rep-p&due_before=%d" % (now_ms() + 3 * DAY))
        assert s == 200 and [r["rule"] for r in mine["reminders"]] == ["R-PAY-1"], mine
        s, bad = w.request("GET", "/v1/reminders?owner=rep-p&due_before=soon")
        assert s == 400 and bad["field"] == "due_before", bad
        assert w.post({"type": "payment.received", "ts": now_ms(), "src": "api",
                       "customer": "PAY-1", "data": {"payment": "P1"}})[0] == 202
        wait_until(lambda: not [r for r in open_reminders(w, "PAY-1")
                                if r["rule"] == "R-PAY-1"], 5, what="collection stopped")
    finally:
        assert w.close()


def test_R_REORDER_1_series_from_an_rrule():
    """The order's RRULE (via libical) yields each expected reorder; the
    occurrences missed before the order arrived fire late once (together),
    the next one on time, and the series ends with its COUNT."""
    w = World()
    try:
        start = now_ms() - 2 * DAY + 3000  # occurrences: -2d, -1d, +3 s
        assert w.post({"type": "order.placed", "ts": now_ms(), "src": "api",
                       "customer": "ORDER-1",
                       "data": {"order": "O1", "product": "toner", "owner": "rep-o",
                                "rrule": "FREQ=DAILY;COUNT=3", "start": start,
                                "advance_days": 0}})[0] == 202
        wait_until(lambda: len(due_events(w, "ORDER-1", "R-REORDER-1")) == 2, 15,
                   what="the late one, then the one on time")
        time.sleep(1.5)
        assert len(due_events(w, "ORDER-1", "R-REORDER-1")) == 2
        assert not [r for r in open_reminders(w, "ORDER-1") if r["rule"] == "R-REORDER-1"]
        status, body = w.post({"type": "order.placed", "ts": now_ms(), "src": "api",
                               "customer": "ORDER-1",
                               "data": {"order": "O2", "product": "ink",
                                        "rrule": "FREQ=SOMETIMES"}})
        assert status == 400 and body["field"] == "data.rrule", body
    finally:
        assert w.close()


def test_R_CAL_2_quiet_hours_hold_non_urgent_reminders():
    """A non-urgent reminder due inside its recipient's quiet hours waits
    for their end; an urgent one goes at once."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start = (now - datetime.timedelta(minutes=1)).strftime("%H:%M")
    end = (now + datetime.timedelta(minutes=30)).strftime("%H:%M")
    w = World({"scheduler": {"inquiry_response": "1s", "inquiry_response_urgent": "1s"},
               "quiet": {"rep-q": "%s-%s" % (start, end)}})
    try:
        for cid, urgent in (("QUIET-1", False), ("QUIET-2", True)):
            assert w.post({"type": "inquiry.received", "ts": now_ms(), "src": "email",
                           "customer": cid, "data": {"channel": "email", "urgent": urgent,
                                                     "owner": "rep-q"}})[0] == 202
        wait_until(lambda: due_events(w, "QUIET-2"), 10, what="the urgent one at once")
        held = open_reminders(w, "QUIET-1")
        assert len(held) == 1 and held[0]["due_at"] > now_ms() + 20 * 60000, held
        assert due_events(w, "QUIET-1") == []
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_R_CAD_1_cadence_after_contact_and_R_CAD_3_refusal_stops_it,
         test_R_CAD_2_agreed_time_replaces_cadence,
         test_R_MAIL_1_reply_window,
         test_R_STAGE_3_dwell_alarm_then_manager_and_R_STAGE_4_deadline,
         test_R_DAYS_1_birthday_greeting_every_year,
         test_R_PAY_1_ahead_on_the_day_overdue_until_paid,
         test_R_REORDER_1_series_from_an_rrule,
         test_R_CAL_2_quiet_hours_hold_non_urgent_reminders])
