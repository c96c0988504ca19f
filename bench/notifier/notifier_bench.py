"""bench/notifier end to end: reminder.due events posted to intake in
batches, journaled, routed to tp-notifier, each rendered, recorded and sent
as a signed webhook to tp-notify-sink. Prints deliveries/s from the first
post to the last delivery received, and Redis bytes per delivery record.
Uses the test harness's World (real redis-server, real binaries)."""
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../tests/lib"))
from tp_harness import World, now_ms, wait_until  # noqa: E402

N = int(os.environ.get("N", "20000"))
BATCH = int(os.environ.get("BATCH", "1000"))
sink = os.environ["SINK_URL"]


def count():
    with urllib.request.urlopen(sink.rsplit("/", 1)[0] + "/count") as r:
        return int(r.read())


w = World({"notifier": {"webhook_url": sink, "webhook_secret": "bench",
                        "max_inflight": "10000", "max_connections": "256",
                        "default_channels": "inbox,webhook", "claim": "60s",
                        "send_timeout": "30s", "retry_poll": "1s"}},
          services=["intake", "notifier"], receiver=False)
try:
    before_mem = int(dict(l.split(":", 1) for l in w.redis("INFO", "memory").split("\r\n")
                          if ":" in l)["used_memory"])
    base = count()
    t0 = time.time()
    for b in range(0, N, BATCH):
        evs = [{"id": "bench-%d" % i, "type": "reminder.due", "ts": now_ms(),
                "src": "scheduler", "customer": "BENCH-%d" % (i % 500),
                "data": {"reminder": "BENCH|R-TOUCH-1|%d" % i, "rule": "R-TOUCH-1",
                         "owner": "rep-%d" % (i % 50), "due_at": now_ms(),
                         "text": "call them"}} for i in range(b, min(N, b + BATCH))]
        s, body = w.request("POST", "/v1/events", {"events": evs})
        assert s == 202, (s, body)
    posted = time.time() - t0
    wait_until(lambda: count() - base >= N, 600, interval=0.05, what="every delivery")
    secs = time.time() - t0
    after_mem = int(dict(l.split(":", 1) for l in w.redis("INFO", "memory").split("\r\n")
                         if ":" in l)["used_memory"])
    records = w.redis("DBSIZE")
    print("end to end: %d reminders -> %d signed webhooks in %.2f s (posting took %.2f s): "
          "%.0f deliveries/s; Redis %.0f B per delivery (record, inbox entry, done mark, "
          "journal; %d keys)" % (N, count() - base, secs, posted, N / secs,
                                 (after_mem - before_mem) / N, records))
finally:
    w.close()
