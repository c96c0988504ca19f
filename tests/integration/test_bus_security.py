"""Between services (issue 7, "Security"): ZeroMQ CURVE with a ZAP handler
in intake that admits only the configured keys, and each sender may emit
only the event types it owns (checked against the ZAP identity).

`tpctl post --bus --as NAME` posts one event over the ZeroMQ ingress with a
named key pair.
"""
import json
import os
import shutil
import subprocess
import time

from tp_harness import BUILD, World, ckey, now_ms, run, wait_until

TPCTL = os.path.join(BUILD, "tools", "tpctl")


def send(w, name, event, config=None):
    """(exit code, intake's answer) of `tpctl post --bus`; the answer is
    what follows "event <id>: ", else everything printed."""
    p = subprocess.run([TPCTL, "-c", config or w.config_path, "post", "--bus", "--as", name,
                        "-"], input=json.dumps(event).encode(), capture_output=True, timeout=20)
    out = p.stdout.decode().strip()
    if out.startswith("event") and ": " in out:
        return p.returncode, out.split(": ", 1)[1]
    return p.returncode, (p.stdout + p.stderr).decode().strip()


def lead_event(eid, cid):
    return {"type": "lead.captured", "id": eid, "ts": now_ms(), "src": "phone",
            "customer": cid, "data": {"company": "Bus Co", "urgency": 3, "budget": 3,
                                      "decision": 3, "owner": "rep-1"}}


def graded_event(eid, cid):
    return {"type": "lead.graded", "id": eid, "ts": now_ms(), "src": "scoring",
            "customer": cid, "data": {"grade": "A", "score": 90, "fit": 80,
                                      "owner": "rep-1", "cause": "x"}}


def due_event(eid, cid):
    return {"type": "reminder.due", "id": eid, "ts": now_ms(), "src": "scheduler",
            "customer": cid, "data": {"reminder": "r", "rule": "R-CAD-1", "owner": "rep-1",
                                      "due_at": now_ms()}}


def journaled(w, eid):
    return w.redis("EXISTS", "tp:{j}:id:" + eid) == 1


def test_admitted_keys_emit_only_their_own_types():
    w = World(services=["intake"])
    try:
        # an outside producer ([bus] producers) sends what the outside may
        assert send(w, "producer", lead_event("bus-1", "BUS-1")) == (0, "ok")
        assert journaled(w, "bus-1")
        assert send(w, "producer", lead_event("bus-1", "BUS-1")) == (0, "dup")
        # ... and not a service's event
        rc, out = send(w, "producer", graded_event("bus-2", "BUS-2"))
        assert rc == 1 and out == "err type: producer may not emit lead.graded", out
        assert not journaled(w, "bus-2")
        # a service sends its own events only
        assert send(w, "scoring", graded_event("bus-3", "BUS-3")) == (0, "ok")
        rc, out = send(w, "scoring", due_event("bus-4", "BUS-4"))
        assert rc == 1 and out == "err type: scoring may not emit reminder.due", out
        assert not journaled(w, "bus-4")
        rc, out = send(w, "scoring", lead_event("bus-5", "BUS-5"))
        assert rc == 1 and out == "err type: scoring may not emit lead.captured", out
        assert send(w, "scheduler", due_event("bus-6", "BUS-6")) == (0, "ok")
        assert "refused an event: err type: scoring may not emit" in w.log("intake")
    finally:
        w.close()


def test_unknown_key_and_plain_client_are_refused():
    w = World(services=["intake"])
    try:
        # a key pair intake was not told about, with intake's public key
        rogue = os.path.join(w.dir, "rogue-keys")
        subprocess.run([TPCTL, "keygen", "curve", "--dir", rogue, "rogue"], check=True,
                       stdout=subprocess.DEVNULL)
        shutil.copy(os.path.join(w.keys_dir, "intake.pub"), rogue)
        cfg = os.path.join(w.dir, "rogue.ini")
        with open(w.config_path) as src, open(cfg, "w") as dst:
            dst.write(src.read().replace("keys_dir = %s" % w.keys_dir, "keys_dir = %s" % rogue))
        rc, out = send(w, "rogue", lead_event("rogue-1", "ROGUE-1"), config=cfg)
        assert rc == 1 and "no answer from intake" in out, (rc, out)
        wait_until(lambda: "is not admitted" in w.log("intake"), 5, what="the refusal logged")
        # a client without CURVE at all
        plain = os.path.join(w.dir, "plain.ini")
        with open(w.config_path) as src, open(plain, "w") as dst:
            dst.write(src.read().replace("curve = on", "curve = off"))
        rc, out = send(w, "producer", lead_event("plain-1", "PLAIN-1"), config=plain)
        assert rc == 1 and "no answer from intake" in out, (rc, out)
        assert not journaled(w, "rogue-1") and not journaled(w, "plain-1")
        # a secret key file is for its service only
        mode = os.stat(os.path.join(w.keys_dir, "scoring.key")).st_mode & 0o777
        assert mode == 0o600, oct(mode)
        # the services run with CURVE on, and nothing says otherwise
        assert "CURVE is off" not in w.log("intake")
    finally:
        w.close()


def test_services_talk_over_curve():
    """The feeds (intake's PUSH to each service) and the ingress work under
    CURVE: with the reconcile walk held back a minute, a lead is graded and
    its lead.graded journaled, which only the bus can have carried."""
    w = World(services=["intake", "scoring"],
              config={"scoring": {"reconcile_lag": "60s", "reconcile_interval": "60s"}})
    try:
        # a lead sent before scoring's CURVE handshake ends waits for the
        # (held back) reconcile walk: send until one goes over the bus
        graded = None
        for i in range(40):
            assert w.post(lead_event("curve-%d" % i, "CURVE-%d" % i))[0] == 202
            time.sleep(0.5)
            graded = [n for n in range(i + 1)
                      if w.redis.hgetall(ckey("CURVE-%d" % n, "profile")).get("grade")]
            if graded:
                break
        assert graded, "no lead graded over the bus in 20 s"
        wait_until(lambda: any(t == "lead.graded" for _, t in w.journal()), 10,
                   what="lead.graded in over the ingress")
    finally:
        w.close()


if __name__ == "__main__":
    run([test_admitted_keys_emit_only_their_own_types,
         test_unknown_key_and_plain_client_are_refused,
         test_services_talk_over_curve])
