"""The journal is trimmed by age once every service has reconciled past it
(DESIGN.md), and never past a service that is down."""
import time

from tp_harness import World, ckey, lead, run, wait_until

TRIM = {"intake": {"journal_retention": "1s", "journal_trim_interval": "200ms"}}


def test_journal_trimmed_only_behind_every_cursor():
    w = World(TRIM)
    try:
        events = []
        for n in range(20):
            ev = lead("Trim %d" % n)
            ev["customer"] = "TRIM-%d" % n
            del ev["data"]["contact"]
            events.append(ev)
        assert w.post(events)[0] == 202
        wait_until(lambda: w.redis("XLEN", "tp:{j}:journal") == 0, 20,
                   what="journal trimmed after every service reconciled")
        # a service that is down holds the journal for itself
        w.kill("ticketing")
        held = w.redis("GET", "tp:cursor:ticketing")
        ev = {"type": "ticket.opened", "ts": int(time.time() * 1000), "src": "web",
              "customer": "TRIM-HELD", "data": {"ticket": "T-HELD", "title": "x",
                                                "category": "question",
                                                "priority": "low"}}
        assert w.post(ev)[0] == 202
        time.sleep(2.5)  # well past the retention, while ticketing is down
        assert w.redis("XLEN", "tp:{j}:journal") >= 1
        assert w.redis("GET", "tp:cursor:ticketing") == held
        w.start("ticketing")
        wait_until(lambda: w.redis.hgetall(ckey("TRIM-HELD", "ticket:T-HELD")), 10,
                   what="the held event applied after ticketing came back")
        wait_until(lambda: w.redis("XLEN", "tp:{j}:journal") == 0, 20,
                   what="journal trimmed once ticketing caught up")
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_journal_trimmed_only_behind_every_cursor])
