"""Intake's HTTP contract, against the real tp-intake and a real redis-server.

POST /v1/events takes one event or {"events": [...]} (up to 1,000) with
"Authorization: Bearer <key>". It answers 202 {"accepted": [ids],
"duplicates": [ids]} only once the events are in the journal; 400 with
{"error", "field"} and nothing of that request journaled; 401 without a
valid key; 413 over 1 MiB; 503 while Redis is unreachable. The same id twice
is a duplicate: reported, not journaled again (DESIGN "nothing lost, nothing
done twice"). Reads: GET /v1/customers/<id> (404 when unknown), /v1/lookup by
phone or email in their normal forms (R-SHARED-2), /healthz without a key.

Scopes, request signatures and replays, rate limits, header and body caps,
slow clients and parser abuse: test_intake_security.py.

Most cases run intake alone, so that no service adds derived events to the
journal while a test proves that a request added nothing (XLEN unchanged).
"""
import http.client
import json
import os
import signal
import socket
import struct
import time
import urllib.parse

from tp_harness import API_KEY, Redis, World, lead, now_ms, run, wait_until

JOURNAL = "tp:{j}:journal"


def xlen(w):
    return w.redis("XLEN", JOURNAL)


class RawRedis(Redis):
    """The harness' RESP client, but bulk strings stay bytes: journal
    envelopes are msgpack, which text decoding would garble."""

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        self.buf = line + b"\r\n" + self.buf
        return Redis._reply(self)


def unpack(b, i=0):
    """A minimal msgpack decoder (the subset tp_event_pack writes):
    returns (value, next offset)."""
    c = b[i]
    i += 1

    def num(n, signed=False):
        return int.from_bytes(b[i:i + n], "big", signed=signed), i + n

    def seq(n, i, pairs):
        out = {} if pairs else []
        for _ in range(n):
            k, i = unpack(b, i)
            if pairs:
                v, i = unpack(b, i)
                out[k] = v
            else:
                out.append(k)
        return out, i
    if c <= 0x7f:
        return c, i
    if c >= 0xe0:
        return c - 0x100, i
    if 0xa0 <= c <= 0xbf:
        n = c & 0x1f
        return b[i:i + n].decode(), i + n
    if 0x80 <= c <= 0x8f:
        return seq(c & 0x0f, i, True)
    if 0x90 <= c <= 0x9f:
        return seq(c & 0x0f, i, False)
    if c == 0xc0:
        return None, i
    if c in (0xc2, 0xc3):
        return c == 0xc3, i
    if c in (0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6):
        width = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}[c]
        n, i = num(width)
        raw = b[i:i + n]
        return (raw.decode() if c >= 0xd9 else raw), i + n
    if c in (0xcc, 0xcd, 0xce, 0xcf):
        return num({0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[c])
    if c in (0xd0, 0xd1, 0xd2, 0xd3):
        return num({0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[c], True)
    if c in (0xdc, 0xdd):
        n, i = num(2 if c == 0xdc else 4)
        return seq(n, i, False)
    if c in (0xde, 0xdf):
        n, i = num(2 if c == 0xde else 4)
        return seq(n, i, True)
    if c in (0xca, 0xcb):
        n = 4 if c == 0xca else 8
        return struct.unpack(">f" if n == 4 else ">d", b[i:i + n])[0], i + n
    raise ValueError("msgpack byte 0x%02x not handled" % c)


def journal_events(w):
    """Every journal entry's envelope, decoded."""
    r = w.client(RawRedis)
    try:
        entries = r("XRANGE", JOURNAL, "-", "+") or []
    finally:
        r.close()
    out = []
    for _, fields in entries:
        f = dict(zip(fields[0::2], fields[1::2]))
        ev, end = unpack(f[b"e"])
        assert end == len(f[b"e"]), "trailing bytes after a journal envelope"
        assert ev["type"] == f[b"t"].decode(), (ev, f[b"t"])
        out.append(ev)
    return out


def in_journal(w, event_id):
    """How many journal entries carry `event_id` as their id."""
    return sum(1 for ev in journal_events(w) if ev.get("id") == event_id)


def contact(customer, outcome="reached", **extra):
    ev = {"type": "contact.logged", "ts": now_ms(), "src": "phone",
          "customer": customer,
          "data": {"channel": "phone", "direction": "out", "outcome": outcome}}
    ev.update(extra)
    return ev


def raw_http(w, method, path, body=b"", headers=None, timeout=10.0,
             chunked=False):
    """One request on a fresh connection: (status, headers, parsed body).
    Raises socket.timeout when no answer comes within `timeout`."""
    conn = http.client.HTTPConnection("127.0.0.1", w.http_port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        if chunked:
            def chunks(data=body, size=64 * 1024):
                for i in range(0, len(data), size):
                    yield data[i:i + size]
            conn.request(method, path, body=chunks(), headers=hdrs,
                         encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed
    finally:
        conn.close()


def assert_bad_request(status, body, field, xlen_before, w):
    assert status == 400, (status, body)
    assert isinstance(body, dict) and body.get("error"), body
    assert body.get("field") == field, (field, body)
    assert xlen(w) == xlen_before, "a rejected request was journaled"


# ---- 202 and duplicates -------------------------------------------------


def test_accepted_only_once_journaled():
    """202 names the event's id, and the journal already holds it when the
    answer arrives (DESIGN: answer 202 only after the append)."""
    w = World(services=["intake"])
    try:
        ev = contact("ACME-1", id="evt-accept-1")
        status, body = w.post(ev)
        assert status == 202, body
        assert body == {"accepted": ["evt-accept-1"], "duplicates": []}, body
        # read right after the answer: no waiting
        assert xlen(w) == 1
        (got,) = journal_events(w)
        assert got["id"] == "evt-accept-1" and got["type"] == "contact.logged", got
        assert got["customer"] == "ACME-1" and got["src"] == "phone", got
        assert got["data"]["outcome"] == "reached", got
        # without an id, intake assigns one (a ULID) and reports it
        status, body = w.post(contact("ACME-1"))
        assert status == 202, body
        assert len(body["accepted"]) == 1 and body["duplicates"] == []
        assigned = body["accepted"][0]
        assert len(assigned) == 26 and assigned.isalnum(), assigned
        assert in_journal(w, assigned) == 1
        assert xlen(w) == 2
    finally:
        assert w.close()


def test_same_id_twice_is_a_duplicate_applied_once():
    """The same event id posted twice: the second answer lists it under
    duplicates, the journal holds it once, and scoring applied it once
    (one lead.captured on the customer's timeline)."""
    w = World(services=["intake", "scoring"])
    try:
        ev = lead("Initech", owner="rep-d", id="lead-dup-1", customer="INITECH-1")
        status, body = w.post(ev)
        assert status == 202, body
        assert body == {"accepted": ["lead-dup-1"], "duplicates": []}, body

        def graded():
            s, rec = w.customer("INITECH-1")
            return s == 200 and rec["grade"] == "A" and rec
        wait_until(graded, what="the lead applied by scoring")
        before = len(w.journal("lead.captured"))
        assert before == 1

        # the same id again, even with other content: a duplicate
        again = lead("Initech Renamed", owner="rep-x", id="lead-dup-1",
                     customer="INITECH-1")
        status, body = w.post(again)
        assert status == 202, body
        assert body == {"accepted": [], "duplicates": ["lead-dup-1"]}, body
        # and twice inside one batch: the first is new, the second a duplicate
        status, body = w.post([contact("INITECH-1", id="dup-in-batch"),
                               contact("INITECH-1", id="dup-in-batch")])
        assert status == 202, body
        assert body == {"accepted": ["dup-in-batch"],
                        "duplicates": ["dup-in-batch"]}, body

        # a re-journaled lead would reach scoring within milliseconds and
        # reconcile runs every 300 ms behind a 1 s lag: 2.5 s proves absence
        time.sleep(2.5)
        assert len(w.journal("lead.captured")) == 1
        assert in_journal(w, "lead-dup-1") == 1
        assert in_journal(w, "dup-in-batch") == 1
        s, rec = w.customer("INITECH-1")
        assert s == 200
        captured = [e for e in rec["timeline"] if e.get("type") == "lead.captured"]
        assert len(captured) == 1, rec["timeline"]
        contacts = [e for e in rec["timeline"] if e.get("type") == "contact.logged"]
        assert len(contacts) == 1, rec["timeline"]
        # the duplicate's content changed nothing
        assert rec["owner"] == "rep-d", rec
        assert rec["profile"]["company"] == "Initech", rec["profile"]
    finally:
        assert w.close()


def test_batch_of_1000_accepted_1001_refused():
    w = World(services=["intake"])
    try:
        events = [contact("BULK-%d" % (i % 7), id="bulk-%04d" % i) for i in range(1000)]
        status, body = w.post(events)
        assert status == 202, body
        assert body["accepted"] == ["bulk-%04d" % i for i in range(1000)]
        assert body["duplicates"] == []
        assert xlen(w) == 1000

        more = [contact("BULK-1", id="more-%04d" % i) for i in range(1001)]
        status, body = w.post(more)
        assert_bad_request(status, body, "events", 1000, w)
        # an empty batch is no batch either
        status, body = w.post({"events": []})
        assert_bad_request(status, body, "events", 1000, w)
        status, body = w.post({"events": {"type": "contact.logged"}})
        assert_bad_request(status, body, "events", 1000, w)
    finally:
        assert w.close()


# ---- 400: nothing of the request journaled ------------------------------


def test_invalid_third_event_rejects_whole_batch():
    """events[2] is invalid: 400 naming events[2].<field>, and events[0] and
    events[1], though valid, are not journaled either."""
    w = World(services=["intake"])
    try:
        assert w.post(contact("SEED-1"))[0] == 202  # the journal exists
        before = xlen(w)
        bad = lead("Umbrella")
        bad["data"]["urgency"] = "high"
        batch = [contact("HOOLI-1", id="batch-ok-0"),
                 lead("Hooli", id="batch-ok-1",
                      data=dict(lead()["data"], contact={"phone": "139 0000 1111"})),
                 bad,
                 contact("HOOLI-1", id="batch-ok-3")]
        status, body = w.post(batch)
        assert_bad_request(status, body, "events[2].data.urgency", before, w)
        assert in_journal(w, "batch-ok-0") == 0
        assert in_journal(w, "batch-ok-1") == 0
        # the valid lead left no trace: its phone finds no customer
        s, found = w.request("GET", "/v1/lookup?phone=13900001111")
        assert s == 200 and found["customers"] == [], found

        # other positions and kinds of error name their own index
        status, body = w.post([contact("HOOLI-1"), "not an event"])
        assert_bad_request(status, body, "events[1]", before, w)
        status, body = w.post([contact("HOOLI-1"), contact("HOOLI-1"),
                               contact("HOOLI-1"), {"type": "lead.captured",
                                                    "ts": now_ms(), "src": "web",
                                                    "data": {}}])
        assert_bad_request(status, body, "events[3].data.company", before, w)

        # the same batch without the bad event goes through, all of it
        del batch[2]
        status, body = w.post(batch)
        assert status == 202, body
        assert body["accepted"] == ["batch-ok-0", "batch-ok-1", "batch-ok-3"]
        assert xlen(w) == before + 3
    finally:
        assert w.close()


def test_malformed_json_400():
    w = World(services=["intake"])
    try:
        assert w.post(contact("SEED-1"))[0] == 202
        before = xlen(w)
        bodies = [b"{", b"not json", b"", b"{\"type\": \"contact.logged\",}",
                  json.dumps(contact("X-1")).encode() + b" trailing",
                  b"[1, 2]", b"42", b"\"a string\"", b"null",
                  # one key twice: which one counts would be a guess
                  b'{"type":"contact.logged","type":"lead.captured","ts":1,'
                  b'"src":"web","customer":"X-1","data":{}}',
                  # invalid UTF-8 inside a string
                  b'{"type":"contact.logged","ts":1,"src":"phone","customer":"X-1",'
                  b'"data":{"channel":"phone","direction":"out","outcome":"reached",'
                  b'"summary":"\xff\xfe"}}']
        for raw in bodies:
            status, body = w.request("POST", "/v1/events", raw=raw)
            assert status == 400, (raw, status, body)
            assert isinstance(body, dict) and body.get("error"), (raw, body)
            assert "field" in body, (raw, body)
        assert xlen(w) == before
    finally:
        assert w.close()


def test_field_errors_name_the_field():
    w = World(services=["intake"])
    try:
        assert w.post(contact("SEED-1"))[0] == 202
        before = xlen(w)
        # R-GRADE-1: urgency is an integer 0-3
        for urgency in ("high", 4, -1, 2.5, True, [3]):
            ev = lead("Stark")
            ev["data"]["urgency"] = urgency
            status, body = w.post(ev)
            assert_bad_request(status, body, "data.urgency", before, w)
        ev = lead("Stark")
        del ev["data"]["urgency"]
        assert_bad_request(*w.post(ev), "data.urgency", before, w)

        # unknown types are rejected (DESIGN: grow them in proto/ only)
        for t in ("lead.invented", "Lead.Captured", "", 7):
            ev = contact("STARK-1")
            ev["type"] = t
            assert_bad_request(*w.post(ev), "type", before, w)
        ev = contact("STARK-1")
        del ev["type"]
        assert_bad_request(*w.post(ev), "type", before, w)

        # contact.logged must say whose contact it was
        ev = contact("STARK-1")
        del ev["customer"]
        assert_bad_request(*w.post(ev), "customer", before, w)
        ev = contact("STARK-1")
        ev["customer"] = "no spaces allowed"
        assert_bad_request(*w.post(ev), "customer", before, w)

        # a few more envelope and data fields, each named
        ev = contact("STARK-1")
        ev["data"]["outcome"] = "maybe"
        assert_bad_request(*w.post(ev), "data.outcome", before, w)
        ev = contact("STARK-1")
        ev["ts"] = "yesterday"
        assert_bad_request(*w.post(ev), "ts", before, w)
        ev = lead("Stark")
        ev["data"]["contact"] = {"phone": "call me maybe"}
        assert_bad_request(*w.post(ev), "data.contact.phone", before, w)
        ev = lead("Stark")
        ev["data"]["contact"] = {"email": "not-an-address"}
        assert_bad_request(*w.post(ev), "data.contact.email", before, w)
    finally:
        assert w.close()


def test_ticket_update_for_unknown_ticket_400():
    w = World(services=["intake"])
    try:
        opened = {"type": "ticket.opened", "ts": now_ms(), "src": "hotline",
                  "customer": "WAYNE-1",
                  "data": {"ticket": "T-KNOWN", "title": "printer on fire",
                           "category": "fault", "priority": "high"}}
        assert w.post(opened)[0] == 202
        before = xlen(w)

        def update(ticket, **kw):
            ev = {"type": "ticket.updated", "ts": now_ms(), "src": "api",
                  "data": {"ticket": ticket, "action": "comment", "agent": "ag-1"}}
            ev.update(kw)
            return ev
        status, body = w.post(update("T-NOPE"))
        assert_bad_request(status, body, "data.ticket", before, w)
        # inside a batch, it is named with its index, and the rest is dropped
        status, body = w.post([contact("WAYNE-1"), update("T-NOPE")])
        assert_bad_request(status, body, "events[1].data.ticket", before, w)
        # the known ticket is accepted, and its customer found by intake
        status, body = w.post(update("T-KNOWN", id="upd-known"))
        assert status == 202 and body["accepted"] == ["upd-known"], body
        assert xlen(w) == before + 1
    finally:
        assert w.close()


def test_rejected_batch_registers_no_address():
    """400 means nothing of the request happened: a valid lead in a batch
    refused for another event's unknown ticket must not leave its phone or
    email pointing at a customer that was never journaled (R-SHARED-2: a
    screen pop would find a customer that does not exist)."""
    w = World(services=["intake"])
    try:
        ghost_lead = lead("Ghost Corp", data=dict(
            lead()["data"], contact={"phone": "137 0000 2222",
                                     "email": "Ghost@Example.com"}))
        unknown = {"type": "ticket.updated", "ts": now_ms(), "src": "api",
                   "data": {"ticket": "T-NEVER", "action": "comment",
                            "agent": "ag-1"}}
        before = xlen(w)
        status, body = w.post([ghost_lead, unknown])
        assert_bad_request(status, body, "events[1].data.ticket", before, w)
        s, found = w.request("GET", "/v1/lookup?phone=13700002222")
        assert s == 200 and found["customers"] == [], \
            "refused lead registered its phone: %s" % found
        s, found = w.request("GET", "/v1/lookup?email=ghost%40example.com")
        assert s == 200 and found["customers"] == [], \
            "refused lead registered its email: %s" % found
    finally:
        assert w.close()


def test_rejected_batch_leaves_no_ticket_behind():
    """A ticket.opened in a request that was refused never existed: a later
    ticket.updated for its id is an update of an unknown ticket (400), not
    an event journaled for a ticket that ticketing will never find."""
    w = World(services=["intake"])
    try:
        opened = {"type": "ticket.opened", "ts": now_ms(), "src": "hotline",
                  "customer": "WAYNE-2",
                  "data": {"ticket": "T-GHOST", "title": "cannot log in",
                           "category": "fault", "priority": "normal"}}
        unknown = {"type": "ticket.updated", "ts": now_ms(), "src": "api",
                   "data": {"ticket": "T-NEVER", "action": "comment",
                            "agent": "ag-1"}}
        before = xlen(w)
        status, body = w.post([opened, unknown])
        assert_bad_request(status, body, "events[1].data.ticket", before, w)
        update = {"type": "ticket.updated", "ts": now_ms(), "src": "api",
                  "id": "upd-ghost",
                  "data": {"ticket": "T-GHOST", "action": "comment",
                           "agent": "ag-1"}}
        status, body = w.post(update)
        assert status == 400, \
            "update of a ticket whose opening was refused: %s %s" % (status, body)
        assert_bad_request(status, body, "data.ticket", before, w)
    finally:
        assert w.close()


def test_ticket_id_of_another_customer_refused():
    """A ticket belongs to one customer (R-TICKET-1). A ticket.opened that
    names another customer's ticket id must be refused, not journaled under
    the other customer: that would put one customer's complaint on another
    customer's record (R-SHARED-2, R-ROLE-1)."""
    w = World(services=["intake"])
    try:
        def opened(customer, title, eid):
            return {"type": "ticket.opened", "ts": now_ms(), "src": "hotline",
                    "customer": customer, "id": eid,
                    "data": {"ticket": "T-SHARED", "title": title,
                             "category": "complaint", "priority": "high"}}
        assert w.post(opened("ALPHA-1", "alpha's printer", "open-alpha"))[0] == 202
        before = xlen(w)
        status, body = w.post(opened("BETA-1", "beta's complaint", "open-beta"))
        moved = [ev.get("customer") for ev in journal_events(w)
                 if ev.get("id") == "open-beta"]
        assert status == 400, \
            "answered %s %s; journaled for customer %s" % (status, body, moved)
        assert_bad_request(status, body, "data.ticket", before, w)
    finally:
        assert w.close()


# ---- 401, 413 ------------------------------------------------------------


def test_missing_or_wrong_key_401():
    w = World(services=["intake"])
    try:
        assert w.post(contact("SEED-1"))[0] == 202
        before = xlen(w)
        ev = contact("ACME-1", id="unauthorised")
        attempts = [
            {},                                              # no header
            {"Authorization": "Bearer wrong-key"},
            {"Authorization": "Bearer " + API_KEY + "x"},    # longer
            {"Authorization": "Bearer " + API_KEY[:-1]},     # a prefix
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer"},
            {"Authorization": API_KEY},                      # no scheme
            {"Authorization": "Basic " + API_KEY},
            {"Authorization": "Bearer " + "k" * 5000},
        ]
        for hdrs in attempts:
            status, headers, body = raw_http(w, "POST", "/v1/events",
                                             json.dumps(ev).encode(), hdrs)
            assert status == 401, (hdrs, status, body)
            assert "bearer" in headers.get("www-authenticate", "").lower(), headers
            assert xlen(w) == before, "journaled without a valid key: %r" % hdrs
        # reads need the key as well
        assert w.request("GET", "/v1/customers/ACME-1", key=None)[0] == 401
        assert w.request("GET", "/v1/lookup?phone=13800138000", key="nope")[0] == 401
        # the scheme is case-insensitive (RFC 7235); the key is not
        status, _, body = raw_http(w, "POST", "/v1/events", json.dumps(ev).encode(),
                                   {"Authorization": "bearer " + API_KEY})
        assert status == 202, body
        status, _, body = raw_http(w, "POST", "/v1/events",
                                   json.dumps(contact("ACME-1")).encode(),
                                   {"Authorization": "Bearer " + API_KEY.upper()})
        assert status == 401, body
        assert xlen(w) == before + 1
    finally:
        assert w.close()


def test_healthz_without_key():
    w = World(services=["intake"])
    try:
        status, body = w.request("GET", "/healthz", key=None)
        assert status == 200 and body["redis"] == "up", body
    finally:
        assert w.close()


def test_body_over_1mib_413():
    w = World(services=["intake"])
    try:
        assert w.post(contact("SEED-1"))[0] == 202
        before = xlen(w)
        # a valid event padded with an unknown field to 2 MiB
        ev = contact("BIG-1", id="too-big")
        ev["padding"] = "x" * (2 << 20)
        big = json.dumps(ev).encode()
        auth = {"Authorization": "Bearer " + API_KEY}
        status, _, body = raw_http(w, "POST", "/v1/events", big, auth, timeout=20)
        assert status == 413, (status, body)
        # the same without a Content-Length (chunked): cut off at the cap
        status, _, body = raw_http(w, "POST", "/v1/events", big, auth, timeout=20,
                                   chunked=True)
        assert status == 413, (status, body)
        assert xlen(w) == before
        assert in_journal(w, "too-big") == 0
        # just under 1 MiB is fine
        ev["padding"] = "x" * ((1 << 20) - 4096)
        status, _, body = raw_http(w, "POST", "/v1/events", json.dumps(ev).encode(),
                                   auth, timeout=20)
        assert status == 202, (status, body)
        assert xlen(w) == before + 1
    finally:
        assert w.close()


# ---- reads ---------------------------------------------------------------


def test_unknown_customer_404():
    w = World(services=["intake"])
    try:
        status, body = w.customer("NOBODY-42")
        assert status == 404, (status, body)
        assert body.get("error"), body
        # a name that cannot be a customer id is a bad request, not a lookup
        status, body = w.customer("bad%20id")
        assert status == 400, (status, body)
        status, body = w.request("GET", "/v1/nothing-here")
        assert status == 404, (status, body)
        status, body = w.request("GET", "/v1/events")
        assert status == 405, (status, body)
    finally:
        assert w.close()


def test_lookup_by_email_case_folded():
    """R-SHARED-2: a lead's email, as typed, finds the customer in any case
    and with surrounding spaces; so does its phone in any notation."""
    w = World(services=["intake"])
    try:
        ev = lead("Cyberdyne", customer="CYBER-1",
                  data=dict(lead()["data"],
                            contact={"name": "Miles", "email": "Miles.Dyson@Cyberdyne.COM",
                                     "phone": "(021) 5555-0101"}))
        assert w.post(ev)[0] == 202
        for email in ("miles.dyson@cyberdyne.com", "MILES.DYSON@CYBERDYNE.COM",
                      "Miles.Dyson@Cyberdyne.COM", "  miles.dyson@Cyberdyne.com "):
            q = urllib.parse.urlencode({"email": email})
            status, found = w.request("GET", "/v1/lookup?" + q)
            assert status == 200 and found["customers"] == ["CYBER-1"], (email, found)
        for phone in ("+86 21 5555 0101", "02155550101", "0086-21-5555-0101"):
            q = urllib.parse.urlencode({"phone": phone})
            status, found = w.request("GET", "/v1/lookup?" + q)
            assert status == 200 and found["customers"] == ["CYBER-1"], (phone, found)
        status, found = w.request("GET", "/v1/lookup?email=someone.else%40cyberdyne.com")
        assert status == 200 and found["customers"] == [], found
        status, body = w.request("GET", "/v1/lookup?email=not-an-address")
        assert status == 400, (status, body)
        status, body = w.request("GET", "/v1/lookup")
        assert status == 400, (status, body)
    finally:
        assert w.close()


# ---- 503 while Redis is unreachable --------------------------------------


def post_timed(w, ev, timeout):
    """POST with a deadline: (status, headers, body, seconds taken)."""
    start = time.time()
    try:
        status, headers, body = raw_http(
            w, "POST", "/v1/events", json.dumps(ev).encode(),
            {"Authorization": "Bearer " + API_KEY}, timeout=timeout)
    except (socket.timeout, TimeoutError):
        raise AssertionError("no answer within %.0fs while Redis is unreachable"
                             % timeout)
    return status, headers, body, time.time() - start


def restart_redis(w):
    """Starts redis-server again on the same port and folder (its AOF)."""
    w._start_redis()
    w.redis = w.client()


def test_redis_killed_503_then_recovers():
    w = World(services=["intake"])
    try:
        assert w.post(contact("SEED-1", id="before-kill"))[0] == 202
        w.redis.close()
        w.redis_proc.kill()
        w.redis_proc.wait(10)
        status, headers, body, took = post_timed(w, contact("ACME-1", id="during-outage"), 5)
        assert status == 503, (status, body)
        assert took < 5, took
        assert body.get("error"), body
        assert headers.get("retry-after"), headers
        status, body = w.request("GET", "/healthz", key=None)
        assert status == 200 and body["redis"] == "down", body

        restart_redis(w)
        wait_until(w._healthy, 15, what="intake reconnected to redis")
        status, body = w.post(contact("ACME-1", id="after-restart"))
        assert status == 202 and body["accepted"] == ["after-restart"], body
        # nothing half-accepted: the refused event is not there, and the
        # producer's retry is new, not a duplicate
        assert in_journal(w, "during-outage") == 0
        status, body = w.post(contact("ACME-1", id="during-outage"))
        assert status == 202 and body["accepted"] == ["during-outage"], body
    finally:
        assert w.close()


def test_redis_stopped_503_within_seconds():
    """A Redis that accepts connections but answers nothing (SIGSTOP: hung,
    swapped out, partitioned) is unreachable too: POST must answer 503
    within a few seconds, not hold the producer until Redis comes back."""
    w = World(services=["intake"])
    stopped = False
    try:
        assert w.post(contact("SEED-1"))[0] == 202
        os.kill(w.redis_proc.pid, signal.SIGSTOP)
        stopped = True
        status, headers, body, took = post_timed(w, contact("ACME-1", id="while-stopped"), 10)
        assert status == 503, (status, body)
        assert took < 10, took
        os.kill(w.redis_proc.pid, signal.SIGCONT)
        stopped = False
        wait_until(w._healthy, 15, what="intake healthy after SIGCONT")

        def accepted():
            s, b = w.post(contact("ACME-1", id="after-cont"))
            return s == 202 and b
        body = wait_until(accepted, 15, interval=0.2, what="202 after SIGCONT")
        assert "after-cont" in body["accepted"] + body["duplicates"], body
    finally:
        if stopped:
            os.kill(w.redis_proc.pid, signal.SIGCONT)
        assert w.close()


if __name__ == "__main__":
    run([test_accepted_only_once_journaled,
         test_same_id_twice_is_a_duplicate_applied_once,
         test_batch_of_1000_accepted_1001_refused,
         test_invalid_third_event_rejects_whole_batch,
         test_malformed_json_400,
         test_field_errors_name_the_field,
         test_ticket_update_for_unknown_ticket_400,
         test_rejected_batch_registers_no_address,
         test_rejected_batch_leaves_no_ticket_behind,
         test_ticket_id_of_another_customer_refused,
         test_missing_or_wrong_key_401,
         test_healthz_without_key,
         test_body_over_1mib_413,
         test_unknown_customer_404,
         test_lookup_by_email_case_folded,
         test_redis_killed_503_then_recovers,
         test_redis_stopped_503_within_seconds])
