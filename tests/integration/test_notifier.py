"""The notifier's spine: retries with backoff until the receiver is back,
one delivery per id however often the event is redelivered, and a failure
event when every attempt failed."""
import json
import time

from tp_harness import World, dkey, now_ms, run, skeys, wait_until


def reminder_due(ev_id, owner="rep-n", customer="NOTE-1"):
    return {"id": ev_id, "type": "reminder.due", "ts": now_ms(), "src": "scheduler",
            "customer": customer,
            "data": {"reminder": "NOTE-1|R-TOUCH-1", "rule": "R-TOUCH-1",
                     "owner": owner, "due_at": now_ms(), "text": "call them"}}


def test_failed_webhook_is_retried_until_delivered_once():
    w = World({"notifier": {"max_attempts": "20"}})
    try:
        w.receiver.failing = True
        assert w.post(reminder_due("due-retry-1"))[0] == 202
        wait_until(lambda: len(w.receiver.requests) >= 2, 15,
                   what="at least two failed attempts")
        w.receiver.failing = False
        wait_until(lambda: w.receiver.received(), 15, what="delivery after recovery")
        time.sleep(1.5)
        ok = w.receiver.received()
        assert len(ok) == 1, ok
        keys = {r["headers"]["Idempotency-Key"] for r in w.receiver.requests}
        assert keys == {"due-retry-1/webhook/rep-n"}, keys  # same id every attempt
        wait_until(lambda: w.journal("notification.sent"), 10, what="notification.sent")
        d = w.redis.hgetall(dkey("due-retry-1/webhook/rep-n"))
        assert d["status"] == "sent" and int(d["attempts"]) >= 3, d
    finally:
        assert w.close()


def test_redelivered_reminder_sends_once():
    w = World()
    try:
        for _ in range(3):  # the same event id three times
            assert w.post(reminder_due("due-dup-1"))[0] == 202
        # and once more straight onto the notifier's bus after it was done
        wait_until(lambda: w.receiver.received(), 10, what="the delivery")
        time.sleep(2.5)  # past the reconcile lag: the walk sees it again
        assert len(w.receiver.received()) == 1
        s, inbox = w.request("GET", "/v1/inbox/rep-n")
        assert len(inbox["items"]) == 1, inbox
    finally:
        assert w.close()


def test_every_attempt_failing_ends_in_notification_failed():
    w = World({"notifier": {"max_attempts": "3"}})
    try:
        w.receiver.failing = True
        assert w.post(reminder_due("due-fail-1"))[0] == 202
        wait_until(lambda: w.journal("notification.failed"), 20,
                   what="notification.failed")
        time.sleep(1)
        assert len(w.receiver.requests) == 3, len(w.receiver.requests)
        d = w.redis.hgetall(dkey("due-fail-1/webhook/rep-n"))
        assert d["status"] == "failed" and d["last_error"] == "HTTP 500", d
        assert sum(w.redis("ZCARD", k) for k in skeys("deliveries:due")) == 0
    finally:
        assert w.close()


def test_read_marks_the_inbox_entry():
    w = World()
    try:
        assert w.post(reminder_due("due-read-1"))[0] == 202
        assert w.post(reminder_due("due-read-2"))[0] == 202
        wait_until(lambda: len(w.request("GET", "/v1/inbox/rep-n")[1]["items"]) == 2, 10,
                   what="two inbox entries")
        read = {"id": "read-1", "type": "notification.read", "ts": now_ms(), "src": "web",
                "customer": "NOTE-1", "data": {"owner": "rep-n", "notification": "due-read-1"}}
        for _ in range(2):  # redelivered: still one mark
            assert w.post(read)[0] == 202

        def marks():
            items = w.request("GET", "/v1/inbox/rep-n")[1]["items"]
            return {i["event"]: i.get("read", False) for i in items}
        wait_until(lambda: marks()["due-read-1"] is True, 10, what="the read mark")
        assert marks() == {"due-read-1": True, "due-read-2": False}, marks()
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_failed_webhook_is_retried_until_delivered_once,
         test_redelivered_reminder_sends_once,
         test_every_attempt_failing_ends_in_notification_failed,
         test_read_marks_the_inbox_entry])
