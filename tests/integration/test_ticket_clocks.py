"""SLA clocks of tickets (R-TICKET-3): the resolution clock pauses while
the ticket waits for the customer and resumes after; a breach comes once,
later by the pause."""
import time

from tp_harness import World, ckey, now_ms, run, skey, wait_until


def update(ticket, action, **data):
    d = {"ticket": ticket, "action": action, "agent": "agent-k"}
    d.update(data)
    return {"type": "ticket.updated", "ts": now_ms(), "src": "api", "data": d}


def breaches(w):
    out = []
    for _, f in w.redis("XRANGE", ckey("CLOCK-1", "timeline"), "-", "+") or []:
        d = dict(zip(f[0::2], f[1::2]))
        if d["type"] == "sla.breached":
            out.append(d["summary"])
    return out


def test_R_TICKET_3_waiting_for_the_customer_pauses_the_resolution_clock():
    # 5 s: the pause must land before the target passes, also under ASan on
    # a loaded machine
    w = World({"ticketing": {"resolution_high": "5s", "first_response_high": "1h"}})
    try:
        opened = now_ms()
        assert w.post({"type": "ticket.opened", "ts": opened, "src": "hotline",
                       "customer": "CLOCK-1",
                       "data": {"ticket": "T-C1", "title": "Report export fails",
                                "category": "fault", "priority": "high"}})[0] == 202
        assert w.post(update("T-C1", "assign"))[0] == 202  # new -> assigned
        assert w.post(update("T-C1", "status", status="waiting_customer"))[0] == 202
        wait_until(lambda: w.redis("HGET", ckey("CLOCK-1", "ticket:T-C1"), "paused_at"), 5,
                   what="the clock paused")
        assert w.redis("ZSCORE", skey("CLOCK-1", "sla:due"), "CLOCK-1|T-C1|resolution") is None
        time.sleep(max(0.0, (opened + 6000 - now_ms()) / 1000.0))  # past the target, paused
        assert breaches(w) == []
        paused_ms = now_ms() - opened
        assert w.post(update("T-C1", "status", status="in_progress",
                             note="customer sent the logs"))[0] == 202
        wait_until(lambda: w.redis("ZSCORE", skey("CLOCK-1", "sla:due"), "CLOCK-1|T-C1|resolution"), 5,
                   what="the clock resumed")
        due = int(float(w.redis("ZSCORE", skey("CLOCK-1", "sla:due"), "CLOCK-1|T-C1|resolution")))
        assert due >= opened + 5000 + paused_ms - 3000, (due - opened, paused_ms)
        wait_until(lambda: breaches(w), 15, what="the resolution breach")
        time.sleep(1)
        assert len(breaches(w)) == 1 and "resolution" in breaches(w)[0], breaches(w)
        t = w.redis.hgetall(ckey("CLOCK-1", "ticket:T-C1"))
        assert t["status"] == "in_progress" and t["pauses"].count("[") == 2, t
    finally:
        assert w.close()


def test_R_TICKET_2_refused_transition_changes_nothing_but_history():
    w = World()
    try:
        assert w.post({"type": "ticket.opened", "ts": now_ms(), "src": "web",
                       "customer": "CLOCK-2",
                       "data": {"ticket": "T-C2", "title": "Question", "category": "question",
                                "priority": "low"}})[0] == 202
        assert w.post(update("T-C2", "status", status="closed"))[0] == 202
        wait_until(lambda: w.redis.hgetall(ckey("CLOCK-2", "ticket:T-C2")).get("status")
                   == "closed", 5, what="closed")
        assert w.post(update("T-C2", "status", status="in_progress"))[0] == 202
        wait_until(lambda: w.redis("LLEN", ckey("CLOCK-2", "ticket:T-C2:history")) == 3, 5,
                   what="the refusal in the history")
        assert w.redis.hgetall(ckey("CLOCK-2", "ticket:T-C2"))["status"] == "closed"
        last = w.redis("LINDEX", ckey("CLOCK-2", "ticket:T-C2:history"), -1)
        assert '"what":"rejected"' in last and "closed ticket cannot change" in last, last
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_R_TICKET_3_waiting_for_the_customer_pauses_the_resolution_clock,
         test_R_TICKET_2_refused_transition_changes_nothing_but_history])
