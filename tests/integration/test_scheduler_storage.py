"""How the scheduler stores pending reminders (tp/keys.h, tp/reminder.h),
through the real processes: each customer's state and open reminders in
one packed book, one field of its group hash; the customer in a small due
index of its group at its earliest due time, and in each owner's index at
the earliest of theirs; the shard's index of groups kept at (or below) each
group's earliest due time; a pending count per shard; and the per-person
query merging the owner's index of every shard and reading the books."""
import time

from tp_harness import (BOOK_FORM, World, book, book_bytes, booked_reminder, group_hash,
                        due_score, now_ms, owner_reminder_due, reminder_group, reminders_booked,
                        reminders_pending, run, scheduler_fired, shard, wait_until)

HOUR = 3600000


def inquiry(cid, ts, owner="rep-q", eid=None):
    ev = {"type": "inquiry.received", "ts": ts, "src": "web", "customer": cid,
          "data": {"channel": "web", "owner": owner}}
    if eid:
        ev["id"] = eid
    return ev


def group_of(w, n, customer):
    """The group of `customer` in shard n: the one whose due index holds it."""
    for g in w.redis("ZRANGE", "tp:{s%d}:r:due" % n, 0, -1) or []:
        if w.redis("ZSCORE", "tp:{s%d}:r:due:%s" % (n, g), customer) is not None:
            return g
    return None


def test_owner_query_merges_every_shard_by_due_time():
    w = World({"scheduler": {"inquiry_response": "2h"}},
              services=["intake", "scoring", "scheduler"])
    try:
        t = now_ms()
        customers = ["STORE-%d" % i for i in range(12)]
        assert len({shard(c) for c in customers}) >= 4  # the index is spread
        # due times in the reverse order of the customers' names
        events = [inquiry(c, t - i * 60000) for i, c in enumerate(customers)]
        events.append(inquiry("STORE-0", t + 60000))  # a second one: subject 2
        assert w.post(events)[0] == 202
        wait_until(lambda: reminders_pending(w) == 13, 15, what="13 reminders planned")
        s, mine = w.request("GET", "/v1/reminders?owner=rep-q&due_before=%d" % (t + 3 * HOUR))
        assert s == 200, mine
        got = mine["reminders"]
        assert mine["count"] == 13 and len(got) == 13, mine
        dues = [r["due_at"] for r in got]
        assert dues == sorted(dues), dues
        assert [r["customer"] for r in got][:12] == list(reversed(customers)), got
        # the inquiry's reminder is numbered per customer, in base62
        assert got[-1]["id"] == "STORE-0|R-SLA-1|2" and got[-1]["customer"] == "STORE-0"
        assert got[0]["id"] == "STORE-11|R-SLA-1|1"
        assert all(r["rule"] == "R-SLA-1" and r["owner"] == "rep-q" and
                   r["text"] == "Answer the web inquiry" and r["urgent"] is False for r in got)
        # STORE-0's two: one book, one entry in the due index and in the
        # owner's, at the earlier of the two
        store0 = min(r["due_at"] for r in got if r["customer"] == "STORE-0")
        assert len(book(w, "STORE-0")[1]) == 2
        assert owner_reminder_due(w, "STORE-0", "rep-q") == due_score(store0)
        assert int(w.redis("ZSCORE", "tp:{s%d}:r:due:%d" % (shard("STORE-0"),
                                                           reminder_group("STORE-0")),
                           "STORE-0")) == due_score(store0)
        # due_before cuts the list; another person sees none of them
        s, early = w.request("GET", "/v1/reminders?owner=rep-q&due_before=%d" % dues[2])
        assert s == 200 and [r["due_at"] for r in early["reminders"]] == dues[:3], early
        s, other = w.request("GET", "/v1/reminders?owner=rep-z&due_before=%d" % (t + 3 * HOUR))
        assert s == 200 and other["count"] == 0, other
        # the customer's record lists its open reminders from the same storage
        status, rec = w.customer("STORE-0")
        assert status == 200
        assert sorted(r["id"] for r in rec["open_reminders"]) == [
            "STORE-0|R-SLA-1|1", "STORE-0|R-SLA-1|2"], rec["open_reminders"]
    finally:
        assert w.close()


def test_packed_books_small_group_indexes_and_their_upkeep():
    w = World({"scheduler": {"inquiry_response": "3s", "poll_interval": "200ms",
                             "lookahead": "400ms"}},
              services=["intake", "scheduler"])
    try:
        t = now_ms()
        assert w.post([inquiry("KEEP-1", t), inquiry("GONE-1", t)])[0] == 202
        wait_until(lambda: reminders_pending(w) == 2, 10, what="2 reminders planned")
        assert reminders_booked(w) == 2
        for cid in ("KEEP-1", "GONE-1"):
            n, rem = shard(cid), cid + "|R-SLA-1|1"
            # one field per customer, its book: no field per reminder
            fields = w.redis("HKEYS", group_hash(cid))
            assert cid in fields and not [f for f in fields if "|" in f], fields
            raw = book_bytes(w, cid)
            assert raw[0] == 0x90 | (2 + 1) and raw[1] == BOOK_FORM, raw  # [3, {state}, one]
            _, reminders = book(w, cid)
            assert list(reminders) == [rem], reminders
            record = reminders[rem]
            assert record["owner"] == "rep-q" and record["rule"] == "R-SLA-1", record
            due = record["due_at"]
            # the due index holds the customer at its earliest due time (in
            # whole seconds: the book has the exact time)
            g = group_of(w, n, cid)
            assert g == str(reminder_group(cid)), (g, cid)
            assert int(w.redis("ZSCORE", "tp:{s%d}:r:due:%s" % (n, g), cid)) == due_score(due)
            assert w.redis("ZSCORE", "tp:{s%d}:r:due:%s" % (n, g), rem) is None
            assert int(w.redis("ZSCORE", "tp:{s%d}:r:due" % n, g)) <= due_score(due)
            assert w.redis("OBJECT", "ENCODING", "tp:{s%d}:r:due:%s" % (n, g)) == "listpack"
            # and the owner's index the same, per person
            assert owner_reminder_due(w, cid, "rep-q") == due_score(due)
            assert owner_reminder_due(w, cid, "rep-z") is None
        # a contact closes GONE-1's reminder (and plans its cadence, R-CAD-2):
        # its group's index entry stays low until a poll reaches that time
        assert w.post([{"type": "contact.logged", "ts": now_ms(), "src": "phone",
                        "customer": "GONE-1", "data": {"channel": "phone", "direction": "out",
                                                       "outcome": "reached"}}])[0] == 202
        gone_n = shard("GONE-1")
        wait_until(lambda: booked_reminder(w, "GONE-1", "GONE-1|R-CAD-1"), 10,
                   what="GONE-1's cadence planned")
        assert booked_reminder(w, "GONE-1", "GONE-1|R-SLA-1|1") is None
        assert reminders_pending(w) == 2 and reminders_booked(w) == 2
        gone_g = group_of(w, gone_n, "GONE-1")
        cadence_due = booked_reminder(w, "GONE-1", "GONE-1|R-CAD-1")["due_at"]
        # the customer's entry moved to its one open reminder's time
        assert int(w.redis("ZSCORE", "tp:{s%d}:r:due:%s" % (gone_n, gone_g), "GONE-1")) == \
            due_score(cadence_due)
        if now_ms() < t + 2000:  # no poll has reached the closed one's time yet
            assert int(w.redis("ZSCORE", "tp:{s%d}:r:due" % gone_n, gone_g)) < \
                due_score(cadence_due)

        # KEEP-1's fires; GONE-1's closed one does not; KEEP-1's group leaves
        # the index, GONE-1's is raised to its cadence's time by the poll
        def fired():
            return scheduler_fired(w)
        wait_until(lambda: fired() == 1, 15, what="KEEP-1's fired")
        keep_n, keep_g = shard("KEEP-1"), reminder_group("KEEP-1")
        assert booked_reminder(w, "KEEP-1", "KEEP-1|R-SLA-1|1") is None
        # a customer without open reminders is in no due index, no owner's
        assert w.redis("ZSCORE", "tp:{s%d}:r:due:%d" % (keep_n, keep_g), "KEEP-1") is None
        assert owner_reminder_due(w, "KEEP-1", "rep-q") is None
        assert reminders_pending(w) == 1 and reminders_booked(w) == 1
        wait_until(lambda: int(w.redis("ZSCORE", "tp:{s%d}:r:due" % gone_n, gone_g)) ==
                   due_score(cadence_due), 5, what="GONE-1's group entry at its cadence's time")
        if keep_n != gone_n:
            assert not w.redis("ZRANGE", "tp:{s%d}:r:due" % keep_n, 0, -1)
        time.sleep(1)
        assert fired() == 1
    finally:
        assert w.close()


def test_bad_apply_batch_stops_the_scheduler_at_start():
    """[scheduler] apply_batch (plans written per script call) out of its
    range: the scheduler refuses to start, naming the setting, and writes
    nothing."""
    w = World({"scheduler": {"apply_batch": "0"}}, services=["intake"])
    try:
        try:
            w.start("scheduler")
            raise AssertionError("the scheduler started with apply_batch = 0")
        except AssertionError as e:
            if "exited" not in str(e):
                raise
        proc = w.procs.pop("scheduler")
        assert proc.wait(10) == 1, proc.returncode
        log = w.log("scheduler")
        assert "scheduler.apply_batch: must be an integer from 1 to 1024" in log, log[-2000:]
        assert not w.redis("KEYS", "tp:{s*}:r:*")
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_owner_query_merges_every_shard_by_due_time,
         test_packed_books_small_group_indexes_and_their_upkeep,
         test_bad_apply_batch_stops_the_scheduler_at_start])
