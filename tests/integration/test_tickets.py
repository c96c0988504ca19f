"""After-sales tickets end to end (issue 6): departments and transfers
(R-TICKET-1), auto-close (R-TICKET-2), escalation steps once each with two
ticketing instances and one killed (R-TICKET-4), complaints (R-TICKET-5),
hotline calls and emails (R-TICKET-1, R-TICKET-2, R-TICKET-7) and the
survey loop (R-TICKET-6, R-SAT-1). Durations come from configuration."""
import json
import time

from tp_harness import (World, booked_reminder, ckey, due_score, now_ms, owner_reminder_due,
                        run, skey, skeys, wait_until)


AGENTS = {"agents_engineering": "eng-1, eng-2", "lead_engineering": "eng-lead",
          "manager_engineering": "eng-boss", "agents_maintenance": "mnt-1",
          "lead_maintenance": "mnt-lead", "department_fault": "engineering",
          "department_complaint": "sales", "lead_sales": "sales-lead",
          "assignment": "least_open"}


FOLLOW_UP_MS = 3000  # [scheduler] survey_follow_up in the survey test


def opened(cid, ticket, category="fault", priority="normal", **data):
    d = {"ticket": ticket, "title": "Export fails", "category": category,
         "priority": priority}
    d.update(data)
    return {"type": "ticket.opened", "ts": now_ms(), "src": "web", "customer": cid, "data": d}


def update(cid, ticket, action, agent="agent-k", **data):
    d = {"ticket": ticket, "action": action, "agent": agent}
    d.update(data)
    return {"type": "ticket.updated", "ts": now_ms(), "src": "api", "customer": cid, "data": d}


def follow_up_planned(w, reminder, owner):
    """SAT-1's `reminder` is in its book, `owner`'s, and SAT-1 is in that
    person's index no later than it is due."""
    record = booked_reminder(w, "SAT-1", reminder)
    due = owner_reminder_due(w, "SAT-1", owner)
    return bool(record and record.get("owner") == owner and due is not None and
                due <= due_score(record["due_at"]))


def ticket(w, cid, tid):
    return w.redis.hgetall(ckey(cid, "ticket:%s" % tid))


def history(w, cid, tid):
    return [json.loads(h) for h in
            w.redis("LRANGE", ckey(cid, "ticket:%s:history" % tid), 0, -1)]


def hooks(w, kind):
    """Events of `kind` the notifier delivered by webhook, decoded."""
    out = []
    for r in w.receiver.received():
        body = json.loads(r["body"])
        if body["kind"] == kind:
            out.append(body["event"])
    return out


def test_R_TICKET_1_departments_assignment_and_transfer_history():
    w = World({"ticketing": AGENTS})
    try:
        assert w.post(opened("DEP-1", "T-D1"))[0] == 202
        wait_until(lambda: ticket(w, "DEP-1", "T-D1").get("owner"), 5, what="assigned")
        assert w.post(opened("DEP-1", "T-D2"))[0] == 202
        wait_until(lambda: ticket(w, "DEP-1", "T-D2").get("owner"), 5, what="assigned")
        t1, t2 = ticket(w, "DEP-1", "T-D1"), ticket(w, "DEP-1", "T-D2")
        # least open: the second ticket goes to the agent with fewer
        assert {t1["owner"], t2["owner"]} == {"eng-1", "eng-2"}, (t1, t2)
        assert t1["department"] == "engineering" and t1["status"] == "assigned"
        # a transfer needs its reason: 400 naming the field, nothing changes
        status, body = w.post(update("DEP-1", "T-D1", "transfer", department="maintenance"))
        assert status == 400 and "note" in json.dumps(body), body
        assert w.post(update("DEP-1", "T-D1", "transfer", agent="eng-1",
                             department="maintenance", note="hardware, not software")
                      )[0] == 202
        wait_until(lambda: ticket(w, "DEP-1", "T-D1").get("department") == "maintenance", 5,
                   what="transferred")
        t1 = ticket(w, "DEP-1", "T-D1")
        assert t1["owner"] == "mnt-1", t1
        moves = [h for h in history(w, "DEP-1", "T-D1") if h["what"] == "transferred"]
        assert len(moves) == 1, history(w, "DEP-1", "T-D1")
        m = moves[0]
        assert (m["by"], m["from"], m["to"], m["why"]) == (
            "eng-1", "engineering/%s" % t2_other(t2), "maintenance/mnt-1",
            "hardware, not software"), m
        assert m["at"] > 0
        # an unknown department: 400 naming the field, nothing journaled
        n = len(w.journal("ticket.updated"))
        status, body = w.post(update("DEP-1", "T-D1", "transfer", department="legal",
                                     note="wrong place"))
        assert status == 400 and body["field"] == "data.department", body
        status, body = w.post(opened("DEP-1", "T-D9", department="legal"))
        assert status == 400 and body["field"] == "data.department", body
        assert len(w.journal("ticket.updated")) == n
        # a resolved ticket is not transferred: the history says why, nothing moves
        assert w.post(update("DEP-1", "T-D2", "status", status="resolved"))[0] == 202
        assert w.post(update("DEP-1", "T-D2", "transfer", department="sales",
                             note="wrong place"))[0] == 202
        wait_until(lambda: history(w, "DEP-1", "T-D2")[-1]["what"] == "rejected", 5,
                   what="refusal")
        assert "resolved ticket cannot be transferred" in history(w, "DEP-1", "T-D2")[-1]["why"]
        assert ticket(w, "DEP-1", "T-D2")["department"] == "engineering"
        assert ticket(w, "DEP-1", "T-D1")["department"] == "maintenance"
        # the indexes the queries read follow the moves
        assert w.redis("ZSCORE", skey("DEP-1", "tickets:department:maintenance"), "DEP-1|T-D1")
        assert w.redis("ZSCORE", skey("DEP-1", "tickets:department:engineering"),
                       "DEP-1|T-D1") is None
        assert w.redis("ZSCORE", skey("DEP-1", "tickets:open:mnt-1"), "DEP-1|T-D1")
    finally:
        assert w.close()


def test_R_TICKET_1_round_robin_skips_agents_away():
    w = World({"ticketing": dict(AGENTS, assignment="round_robin")})
    try:
        owners = []
        for n in range(4):
            if n == 3:
                w.redis("SADD", "tp:ticketing:away", "eng-2")  # its turn: skipped
            tid = "T-R%d" % n
            assert w.post(opened("RR-1", tid))[0] == 202
            wait_until(lambda: ticket(w, "RR-1", tid).get("owner"), 5, what="assigned")
            owners.append(ticket(w, "RR-1", tid)["owner"])
        assert owners == ["eng-1", "eng-2", "eng-1", "eng-1"], owners
        # nobody available: the ticket waits in its department's queue, unowned
        w.redis("SADD", "tp:ticketing:away", "eng-1")
        assert w.post(opened("RR-1", "T-R9"))[0] == 202
        wait_until(lambda: ticket(w, "RR-1", "T-R9").get("status"), 5, what="opened")
        t = ticket(w, "RR-1", "T-R9")
        assert t["status"] == "new" and t["owner"] == "", t
        status, body = w.request("GET", "/v1/tickets?department=engineering&status=new")
        assert [x["ticket"] for x in body["tickets"]] == ["T-R9"], body
    finally:
        assert w.close()


def t2_other(t2):
    return "eng-1" if t2["owner"] == "eng-2" else "eng-2"


def test_R_TICKET_2_resolved_ticket_closes_after_quiet_period_and_asks_for_a_score():
    w = World({"ticketing": {"auto_close": "1s"},
               "scheduler": {"survey_low": "4", "survey_follow_up": "%dms" % FOLLOW_UP_MS}})
    try:
        assert w.post({"type": "lead.captured", "ts": now_ms(), "src": "web",
                       "customer": "SAT-1",
                       "data": {"company": "Satco", "urgency": 1, "budget": 1,
                                "decision": 1, "owner": "rep-s",
                                "contact": {"name": "Li", "email": "li@satco.example"}}}
                      )[0] == 202
        assert w.post(opened("SAT-1", "T-S1"))[0] == 202
        assert w.post(update("SAT-1", "T-S1", "status", status="in_progress"))[0] == 202
        assert w.post(update("SAT-1", "T-S1", "status", status="resolved"))[0] == 202
        wait_until(lambda: ticket(w, "SAT-1", "T-S1").get("status") == "closed", 10,
                   what="auto-closed")
        last = [h for h in history(w, "SAT-1", "T-S1") if h.get("to") == "closed"]
        assert len(last) == 1 and last[0]["by"] == "ticketing", history(w, "SAT-1", "T-S1")
        assert sum(w.redis("ZCARD", k) for k in skeys("ticket:autoclose")) == 0
        # R-TICKET-6: the survey goes to the customer's contact through the notifier
        wait_until(lambda: hooks(w, "survey.requested"), 10, what="survey delivered")
        s = hooks(w, "survey.requested")
        assert len(s) == 1 and s[0]["data"]["owner"] == "li@satco.example", s
        assert s[0]["data"]["ticket"] == "T-S1"
        # R-SAT-1: the answer lands on the ticket; a 2 plans the owner's follow-up
        assert w.post({"type": "survey.answered", "ts": now_ms(), "src": "web",
                       "customer": "SAT-1",
                       "data": {"score": 2, "about": "ticket", "ticket": "T-S1",
                                "comment": "slow"}})[0] == 202
        wait_until(lambda: ticket(w, "SAT-1", "T-S1").get("satisfaction") == "2", 5,
                   what="score on the ticket")
        rem = "SAT-1|R-SAT-1|T-S1"  # the scheduler plans it (it reads the answer too)
        wait_until(lambda: follow_up_planned(w, rem, "rep-s"), 5,
                   what="the owner's follow-up planned")
        # the scheduler fires it like its own reminders: the owner is told
        wait_until(lambda: [r for r in hooks(w, "reminder.due")
                            if r["data"]["rule"] == "R-SAT-1"], 15, what="follow-up fired")
        r = [r for r in hooks(w, "reminder.due") if r["data"]["rule"] == "R-SAT-1"]
        assert len(r) == 1 and r[0]["data"]["owner"] == "rep-s", r
        # a contact logged before the follow-up is due satisfies it (R-CAD-4)
        answered = now_ms()
        assert w.post({"type": "survey.answered", "ts": answered, "src": "web",
                       "customer": "SAT-1", "data": {"score": 1, "ticket": "T-S2"}})[0] == 202
        rem2 = "SAT-1|R-SAT-1|T-S2"
        wait_until(lambda: follow_up_planned(w, rem2, "rep-s"), 5,
                   what="second follow-up planned")
        assert w.post({"type": "contact.logged", "ts": now_ms(), "src": "api",
                       "customer": "SAT-1", "actor": "rep-s",
                       "data": {"channel": "phone", "direction": "out",
                                "outcome": "reached"}})[0] == 202
        wait_until(lambda: booked_reminder(w, "SAT-1", rem2) is None, 5,
                   what="follow-up closed by the contact")
        # past its due time (survey_follow_up after the answer) and a poll:
        # closed, so it never fired
        time.sleep(max(0.0, (answered + FOLLOW_UP_MS + 500 - now_ms()) / 1000.0))
        assert not [r for r in hooks(w, "reminder.due") if r["data"]["reminder"] == rem2]
        # a good score plans nothing
        assert w.post({"type": "survey.answered", "ts": now_ms(), "src": "web",
                       "customer": "SAT-1", "data": {"score": 5, "ticket": "T-NONE"}}
                      )[0] == 202
        time.sleep(1)
        assert booked_reminder(w, "SAT-1", "SAT-1|R-SAT-1|T-NONE") is None
    finally:
        assert w.close()


def test_R_TICKET_4_urgent_breach_escalates_each_step_once_with_an_instance_killed():
    cfg = dict(AGENTS, first_response_urgent="3s", resolution_urgent="1h",
               warning_share="50", manager_delay="2s", resend_after="500ms",
               outbox_sweep="200ms")
    w = World({"ticketing": cfg})
    try:
        w.start("ticketing", "ticketing-2")
        assert w.post(opened("ESC-1", "T-E1", priority="urgent", owner="eng-2"))[0] == 202
        wait_until(lambda: [e for e in hooks(w, "ticket.escalated")
                            if e["data"]["step"] == "warning"], 10, what="the warning")
        w.kill("ticketing")  # SIGKILL midway: the other instance carries on
        wait_until(lambda: [e for e in hooks(w, "ticket.escalated")
                            if e["data"]["step"] == "manager"], 15, what="the manager")
        time.sleep(1.5)
        steps = sorted((e["data"]["step"], e["data"]["owner"], e["data"]["target"])
                       for e in hooks(w, "ticket.escalated"))
        assert steps == [("lead", "eng-lead", "first_response"),
                         ("manager", "eng-boss", "first_response"),
                         ("warning", "eng-2", "first_response")], steps
        assert len(w.journal("ticket.escalated")) == 3
        assert len(w.journal("sla.breached")) == 1
        t = ticket(w, "ESC-1", "T-E1")
        for s in ("warning", "lead", "manager"):
            assert t.get("esc_first_response_" + s), t
        assert w.redis("ZSCORE", skey("ESC-1", "tickets:breached"), "ESC-1|T-E1") is not None
        esc = [h for h in history(w, "ESC-1", "T-E1") if h["what"] == "escalated"]
        assert len(esc) == 3, esc
    finally:
        assert w.close()


def test_R_TICKET_5_complaint_is_high_priority_and_tells_the_account_owner():
    w = World({"ticketing": AGENTS})
    try:
        assert w.post({"type": "lead.captured", "ts": now_ms(), "src": "web",
                       "customer": "CMP-1",
                       "data": {"company": "Complainco", "urgency": 1, "budget": 1,
                                "decision": 1, "owner": "rep-c"}})[0] == 202
        wait_until(lambda: w.redis("HGET", ckey("CMP-1", "profile"), "owner"), 5,
                   what="the account owner")
        assert w.post(opened("CMP-1", "T-K1", category="complaint", priority="low"))[0] == 202
        wait_until(lambda: hooks(w, "ticket.escalated"), 10, what="owner told")
        e = hooks(w, "ticket.escalated")
        assert len(e) == 1 and e[0]["data"]["step"] == "complaint", e
        assert e[0]["data"]["owner"] == "rep-c"
        t = ticket(w, "CMP-1", "T-K1")
        assert t["priority"] == "high" and t["department"] == "sales", t
    finally:
        assert w.close()


def call(number, queue="hotline", **data):
    d = {"from": number, "to": "400-800-1234", "direction": "in", "queue": queue,
         "duration_s": 120}
    d.update(data)
    return {"type": "call.ended", "ts": now_ms(), "src": "phone", "data": d}


def open_tickets(w, cid):
    return w.redis.hgetall(ckey(cid, "tickets"))


def test_R_TICKET_7_a_second_hotline_call_joins_the_open_ticket():
    w = World({"ticketing": dict(AGENTS, join_window="1h")})
    try:
        assert w.post({"type": "lead.captured", "ts": now_ms(), "src": "web",
                       "customer": "HOT-1",
                       "data": {"company": "Hotco", "urgency": 1, "budget": 1, "decision": 1,
                                "owner": "rep-h",
                                "contact": {"name": "Wu", "phone": "+86 138 0000 1111"}}}
                      )[0] == 202
        time.sleep(0.3)
        assert w.post(call("+86 138 0000 1111", queue="sales"))[0] == 202  # not support
        assert w.post(call("+86 138 0000 1111", summary="printer offline"))[0] == 202
        wait_until(lambda: open_tickets(w, "HOT-1"), 5, what="a ticket from the call")
        assert w.post(call("+86 138 0000 1111", summary="still offline"))[0] == 202
        wait_until(lambda: any(h["what"] == "joined"
                               for tid in open_tickets(w, "HOT-1")
                               for h in history(w, "HOT-1", tid)), 5, what="joined")
        tids = list(open_tickets(w, "HOT-1"))
        assert len(tids) == 1, tids
        t = ticket(w, "HOT-1", tids[0])
        assert t["reports"] == "2" and t["channel"] == "hotline", t
        assert t["department"] == "engineering" and t["owner"] in ("eng-1", "eng-2"), t
        # an agent updates it by its id alone (intake knows its customer)
        assert w.post({"type": "ticket.updated", "ts": now_ms(), "src": "api",
                       "data": {"ticket": tids[0], "action": "status", "agent": t["owner"],
                                "status": "in_progress"}})[0] == 202
        wait_until(lambda: ticket(w, "HOT-1", tids[0]).get("status") == "in_progress", 5,
                   what="updated by id")
        # another category is another problem: a ticket of its own
        assert w.post(call("+86 138 0000 1111", category="question"))[0] == 202
        wait_until(lambda: len(open_tickets(w, "HOT-1")) == 2, 5, what="a second ticket")
        # the customer record lists both open tickets
        status, rec = w.customer("HOT-1")
        assert status == 200 and len(rec["open_tickets"]) == 2, rec
    finally:
        assert w.close()


def email(sender, mid, reply_to=None, subject="Export fails", text="It fails"):
    d = {"from": sender, "to": "support@tp.example", "subject": subject,
         "message_id": mid, "text": text}
    if reply_to:
        d["in_reply_to"] = reply_to
    return {"type": "email.received", "ts": now_ms(), "src": "email", "data": d}


def test_R_TICKET_2_an_email_reply_comments_and_reopens():
    w = World({"ticketing": dict(AGENTS, reopen_window="1h",
                                 support_addresses="Support@tp.example, help@tp.example")})
    try:
        assert w.post({"type": "lead.captured", "ts": now_ms(), "src": "web",
                       "customer": "MAIL-1",
                       "data": {"company": "Mailco", "urgency": 1, "budget": 1, "decision": 1,
                                "owner": "rep-m",
                                "contact": {"name": "Zhao", "email": "zhao@mailco.example"}}}
                      )[0] == 202
        time.sleep(0.3)
        assert w.post(email("Zhao@Mailco.example", "<m1@mailco>"))[0] == 202
        wait_until(lambda: open_tickets(w, "MAIL-1"), 5, what="a ticket from the email")
        tid = list(open_tickets(w, "MAIL-1"))[0]
        assert ticket(w, "MAIL-1", tid)["channel"] == "email"
        assert w.post(update("MAIL-1", tid, "status", status="in_progress"))[0] == 202
        assert w.post(update("MAIL-1", tid, "status", status="resolved"))[0] == 202
        wait_until(lambda: ticket(w, "MAIL-1", tid).get("status") == "resolved", 5,
                   what="resolved")
        assert w.post(email("zhao@mailco.example", "<m2@mailco>", reply_to="<m1@mailco>",
                            text="It is back"))[0] == 202
        wait_until(lambda: ticket(w, "MAIL-1", tid).get("status") == "in_progress", 5,
                   what="reopened")
        h = history(w, "MAIL-1", tid)
        assert [x for x in h if x["what"] == "comment" and x.get("why") == "It is back"], h
        assert h[-1]["from"] == "resolved" and "reopened" in h[-1]["why"], h[-1]
        assert len(open_tickets(w, "MAIL-1")) == 1
        # a reply to the reply finds the same ticket
        assert w.post(email("zhao@mailco.example", "<m3@mailco>", reply_to="<m2@mailco>",
                            text="more logs"))[0] == 202
        wait_until(lambda: any(x.get("why") == "more logs" for x in history(w, "MAIL-1", tid)),
                   5, what="second comment")
        # a reply to a closed ticket opens a new one that follows it
        assert w.post(update("MAIL-1", tid, "status", status="resolved"))[0] == 202
        assert w.post(update("MAIL-1", tid, "status", status="closed"))[0] == 202
        wait_until(lambda: ticket(w, "MAIL-1", tid).get("status") == "closed", 5,
                   what="closed")
        assert w.post(email("zhao@mailco.example", "<m3b@mailco>", reply_to="<m3@mailco>",
                            text="again"))[0] == 202
        wait_until(lambda: len(open_tickets(w, "MAIL-1")) == 1, 5, what="a follow-on ticket")
        nid = list(open_tickets(w, "MAIL-1"))[0]
        assert nid != tid and history(w, "MAIL-1", nid)[0]["why"] == "follows " + tid
        assert ticket(w, "MAIL-1", tid)["status"] == "closed"
        # an email that answers nothing opens a ticket of its own
        assert w.post(email("zhao@mailco.example", "<m4@mailco>", subject="New thing"))[0] == 202
        wait_until(lambda: len(open_tickets(w, "MAIL-1")) == 2, 5, what="another ticket")
        # mail to another address is not the support desk's
        other = email("zhao@mailco.example", "<m6@mailco>", subject="Invoice")
        other["data"]["to"] = "billing@tp.example"
        assert w.post(other)[0] == 202
        time.sleep(1)
        assert len(open_tickets(w, "MAIL-1")) == 2
        # bad input: 400 naming the field
        status, body = w.post(email("not-an-address", "<m5@mailco>"))
        assert status == 400 and "data.from" in json.dumps(body), body
    finally:
        assert w.close()


def test_ticket_queries_with_history_sla_state_filters_and_paging():
    w = World({"ticketing": dict(AGENTS, first_response_high="1h", resolution_high="4h")})
    try:
        assert w.post(opened("Q-1", "T-Q1", priority="high"))[0] == 202
        assert w.post(opened("Q-1", "T-Q2", category="question"))[0] == 202
        assert w.post(opened("Q-2", "T-Q3"))[0] == 202
        wait_until(lambda: sum(w.redis("ZCARD", k) for k in skeys("tickets:all")) == 3, 5,
                   what="three tickets")
        assert w.post(update("Q-1", "T-Q1", "status", status="in_progress",
                             agent="eng-1"))[0] == 202
        assert w.post(update("Q-1", "T-Q1", "status", status="waiting_customer",
                             agent="eng-1"))[0] == 202
        wait_until(lambda: ticket(w, "Q-1", "T-Q1").get("status") == "waiting_customer", 5,
                   what="waiting")
        status, t = w.request("GET", "/v1/tickets/T-Q1")
        assert status == 200, t
        assert t["customer"] == "Q-1" and t["status"] == "waiting_customer", t
        assert [h["what"] for h in t["history"]] == ["opened", "assigned", "status", "status"]
        assert t["sla"]["first_response"]["state"] == "met"
        assert t["sla"]["resolution"]["state"] == "paused", t["sla"]
        assert isinstance(t["opened_at"], int) and isinstance(t["pauses"], list)
        status, t = w.request("GET", "/v1/tickets/T-Q3")
        r = t["sla"]["resolution"]
        assert r["state"] == "running" and 0 < r["left_ms"] <= 24 * 3600 * 1000, r
        assert r["deadline"] == t["resolution_due"] and r["breached"] is False
        assert w.request("GET", "/v1/tickets/T-NOPE")[0] == 404
        status, body = w.request("GET", "/v1/tickets/bad%7Bid")
        assert status == 400 and body["field"] == "ticket", body
        # filters
        status, body = w.request("GET", "/v1/tickets?customer=Q-1")
        assert status == 200 and sorted(x["ticket"] for x in body["tickets"]) == ["T-Q1", "T-Q2"]
        status, body = w.request("GET", "/v1/tickets?status=waiting_customer")
        assert [x["ticket"] for x in body["tickets"]] == ["T-Q1"], body
        status, body = w.request("GET", "/v1/tickets?department=engineering&customer=Q-1")
        assert [x["ticket"] for x in body["tickets"]] == ["T-Q1"], body
        owner = ticket(w, "Q-2", "T-Q3")["owner"]
        status, body = w.request("GET", "/v1/tickets?owner=" + owner)
        assert "T-Q3" in [x["ticket"] for x in body["tickets"]], body
        status, body = w.request("GET", "/v1/tickets?breached=true")
        assert body["tickets"] == [], body
        status, body = w.request("GET", "/v1/tickets?breached=false")
        assert body["count"] == 3
        # paging: newest first, then the rest
        status, p1 = w.request("GET", "/v1/tickets?limit=2")
        assert p1["count"] == 2 and p1["next_cursor"], p1
        status, p2 = w.request("GET", "/v1/tickets?limit=2&cursor=" + p1["next_cursor"])
        assert p2["count"] == 1 and p2["next_cursor"] is None, p2
        seen = [x["ticket"] for x in p1["tickets"] + p2["tickets"]]
        assert sorted(seen) == ["T-Q1", "T-Q2", "T-Q3"], seen
        # bad input: 400 naming the field
        for q, field in (("status=open", "status"), ("breached=maybe", "breached"),
                         ("limit=0", "limit"), ("limit=x", "limit"), ("cursor=-1", "cursor"),
                         ("customer=a%7Bb", "customer")):
            status, body = w.request("GET", "/v1/tickets?" + q)
            assert status == 400 and body["field"] == field, (q, body)
        # the customer record lists the open tickets
        status, rec = w.customer("Q-1")
        assert sorted(x["ticket"] for x in rec["open_tickets"]) == ["T-Q1", "T-Q2"], rec
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_R_TICKET_1_departments_assignment_and_transfer_history,
         test_R_TICKET_1_round_robin_skips_agents_away,
         test_R_TICKET_2_resolved_ticket_closes_after_quiet_period_and_asks_for_a_score,
         test_R_TICKET_4_urgent_breach_escalates_each_step_once_with_an_instance_killed,
         test_R_TICKET_5_complaint_is_high_priority_and_tells_the_account_owner,
         test_R_TICKET_7_a_second_hotline_call_joins_the_open_ticket,
         test_R_TICKET_2_an_email_reply_comments_and_reopens,
         test_ticket_queries_with_history_sla_state_filters_and_paging])
