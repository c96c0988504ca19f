"""Intake under hostile input: the negative-test matrix of issue 7, against
the real tp-intake and a real redis-server.

Integrations come from a keys file (tests/lib World(keys=...)): a writer,
a reader, a signer (require_signature) and a rate-limited one. Every refused
request gets its status and changes nothing: the journal's length and the
set of Redis keys are the same before and after it. test_intake_api.py
covers the older contract (401 variants of the Bearer header, 413, 400
naming the field); this file adds scopes, signatures and replays, rate
limits, header and body caps, slow clients, and parser abuse.
"""
import hashlib
import hmac
import json
import select
import socket
import time

from tp_harness import Redis, World, free_port, now_ms, run, wait_until

JOURNAL = "tp:{j}:journal"

KEYS = """
[writer]
key = writer-key-0123456789
scopes = events:write

[reader]
key = reader-key-0123456789
scopes = customers:read, tickets:read

[signer]
key = signer-key-0123456789
scopes = events:write, customers:read
require_signature = true
secret = signer-secret-abcdef-0123
replay_window = 60s

[limited]
key = limited-key-0123456789
scopes = *
rate = 0.5
burst = 2
"""
SECRETS = ["writer-key-0123456789", "reader-key-0123456789", "signer-key-0123456789",
           "signer-secret-abcdef-0123", "limited-key-0123456789"]
WRITER, READER, SIGNER, LIMITED = ("writer-key-0123456789", "reader-key-0123456789",
                                   "signer-key-0123456789", "limited-key-0123456789")
SIGNING_SECRET = "signer-secret-abcdef-0123"

CONFIG = {"intake": {"header_timeout": "1s", "body_timeout": "2s",
                     "idle_timeout": "1500ms", "max_header": "8192",
                     "journal_trim_interval": "1h"}}


def world(**kw):
    return World(services=["intake"], config=CONFIG, keys=KEYS, **kw)


def snapshot(w):
    """What a refused request must leave alone: the journal's length and
    every key in Redis but the instance's heartbeat, which its own timer
    writes (its first beat can land after the snapshot on a slow build)."""
    keys = [k for k in (w.redis("KEYS", "*") or []) if not k.startswith("tp:heartbeat:")]
    return w.redis("XLEN", JOURNAL), sorted(keys)


def contact(customer="SEC-1", **extra):
    ev = {"type": "contact.logged", "ts": now_ms(), "src": "phone",
          "customer": customer,
          "data": {"channel": "phone", "direction": "out", "outcome": "reached"}}
    ev.update(extra)
    return ev


def sign(body, ts=None, secret=SIGNING_SECRET):
    """The README's recipe: v1=hex(HMAC-SHA256(secret, ts "." body))."""
    ts = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256)
    return {"X-TP-Timestamp": ts, "X-TP-Signature": "v1=" + mac.hexdigest()}


def http(w, method, path, body=b"", key=None, headers=None, port=None):
    """One request on a fresh socket: (status, headers, parsed body)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port or w.http_port, timeout=15)
    try:
        hdrs = {"Content-Type": "application/json"}
        if key:
            hdrs["Authorization"] = "Bearer " + key
        hdrs.update(headers or {})
        conn.request(method, path, body=body or None, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed
    finally:
        conn.close()


def refused(w, want, method, path, body=b"", **kw):
    """Sends, expects `want`, and proves the request changed nothing."""
    before = snapshot(w)
    status, headers, parsed = http(w, method, path, body, **kw)
    assert status == want, (want, status, parsed, method, path, body[:200])
    assert snapshot(w) == before, "refused %s %s changed Redis" % (method, path)
    return headers, parsed


def raw_exchange(w, data, port=None):
    """Sends raw bytes (tolerating a server that stops reading), returns
    the status line's code and the rest of the answer."""
    s = socket.create_connection(("127.0.0.1", port or w.http_port), timeout=10)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        return int(answer.split(b" ", 2)[1]), answer
    finally:
        s.close()


def read_to_eof(s):
    """Everything the server sends until it closes the connection."""
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


def trickle_until_answer(s, pieces, every):
    """Sends `pieces` one at a time, `every` seconds apart, until the server
    answers; returns (answer bytes, seconds from the first piece)."""
    start = time.time()
    for piece in pieces:
        readable, _, _ = select.select([s], [], [], every)
        if readable:
            break
        try:
            s.sendall(piece)
        except OSError:
            break
    answer = b""
    s.settimeout(10)
    while True:
        try:
            chunk = s.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        answer += chunk
    return answer, time.time() - start


# ---- keys and scopes -----------------------------------------------------


def test_keys_and_scopes():
    w = world()
    try:
        body = json.dumps(contact(id="sec-ok-1")).encode()
        status, _, parsed = http(w, "POST", "/v1/events", body, key=WRITER)
        assert status == 202 and parsed["accepted"] == ["sec-ok-1"], parsed
        # the legacy [intake] api_keys key still works beside the keys file
        status, _, parsed = http(w, "POST", "/v1/events",
                                 json.dumps(contact(id="sec-ok-2")).encode(),
                                 key="test-key")
        assert status == 202, parsed

        ev = json.dumps(contact(id="sec-refused")).encode()
        # unknown keys: 401, whatever they look like
        for key in ("writer-key-012345678", "writer-key-0123456789x", "nope",
                    WRITER.upper()):
            headers, parsed = refused(w, 401, "POST", "/v1/events", ev, key=key)
            assert "bearer" in headers.get("www-authenticate", "").lower()
        refused(w, 401, "POST", "/v1/events", ev)
        refused(w, 401, "GET", "/v1/customers/SEC-1", key="nope")

        # a known key without the scope: 403 naming the scope needed
        cases = [(READER, "POST", "/v1/events", ev, "events:write"),
                 (WRITER, "GET", "/v1/customers/SEC-1", b"", "customers:read"),
                 (WRITER, "GET", "/v1/customers/SEC-1/timeline", b"", "customers:read"),
                 (WRITER, "GET", "/v1/customers?at_risk=1", b"", "customers:read"),
                 (WRITER, "GET", "/v1/lookup?phone=13800138000", b"", "customers:read"),
                 (WRITER, "GET", "/v1/pipeline?owner=rep-1", b"", "customers:read"),
                 (WRITER, "GET", "/v1/tickets/T-1", b"", "tickets:read"),
                 (READER, "GET", "/v1/reminders?owner=rep-1", b"", "reminders:read"),
                 (READER, "GET", "/v1/inbox/rep-1", b"", "inbox:read")]
        for key, method, path, body, scope in cases:
            _, parsed = refused(w, 403, method, path, body, key=key)
            assert parsed["scope"] == scope and scope in parsed["error"], (path, parsed)
        # an event a service derives: 403 naming the type, without events:derived
        derived = json.dumps({"type": "reminder.due", "id": "sec-derived", "ts": 1,
                              "src": "scheduler", "customer": "SEC-1",
                              "data": {"reminder": "r", "rule": "R-CAD-1", "owner": "rep-1",
                                       "due_at": 1}}).encode()
        _, parsed = refused(w, 403, "POST", "/v1/events", derived, key=WRITER)
        assert parsed["field"] == "type" and "events:derived" in parsed["error"], parsed
        status, _, parsed = http(w, "POST", "/v1/events", derived, key=LIMITED)
        assert status == 202, parsed  # scopes = * has it
        # with the scope, the reads answer (intake alone: no record is built)
        status, _, parsed = http(w, "GET", "/v1/customers/SEC-1", key=READER)
        assert status == 404 and parsed["error"] == "no such customer", (status, parsed)
        status, _, _ = http(w, "GET", "/v1/lookup?phone=13800138000", key=READER)
        assert status == 200
        # an endpoint nobody serves is 404 to any valid key, 401 without one
        refused(w, 404, "GET", "/v1/tickets/T-1", key=READER)
        refused(w, 404, "GET", "/v1/nothing", key=WRITER)
        refused(w, 401, "GET", "/v1/nothing")
        check_log(w, ["integration reader lacks scope events:write"])
    finally:
        assert w.close()


def test_unknown_key_refused_before_its_body():
    """A request without a known key is answered 401 from its headers: its
    body (announced, never sent) is not waited for, and the connection is
    closed; a known key's body is read as before."""
    w = world()
    try:
        before = snapshot(w)
        s = socket.create_connection(("127.0.0.1", w.http_port), timeout=10)
        start = time.time()
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 900000\r\n\r\n")
        answer = read_to_eof(s)
        took = time.time() - start
        s.close()
        assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
        assert b"missing or unknown API key" in answer, answer
        assert b"Connection: close" in answer, answer
        assert took < 1.5, took  # body_timeout is 2 s: not waited for
        # a known key without the scope: 403 from the headers too
        s = socket.create_connection(("127.0.0.1", w.http_port), timeout=10)
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  READER.encode() + b"\r\nContent-Length: 900000\r\n\r\n")
        answer = s.recv(65536)
        s.close()
        assert answer.startswith(b"HTTP/1.1 403"), answer[:80]
        assert snapshot(w) == before
        status, _, parsed = http(w, "POST", "/v1/events",
                                 json.dumps(contact(id="sec-after-early")).encode(), key=WRITER)
        assert status == 202, parsed
    finally:
        assert w.close()


def test_failed_authentications_lock_the_address_out():
    """After auth_failures_burst failures an address gets 429 with
    Retry-After, its key not even looked at (a good one neither), until
    auth_failures_per_minute lets it try again; /healthz stays open."""
    cfg = {"intake": dict(CONFIG["intake"], auth_failures_burst="3",
                          auth_failures_per_minute="60")}
    w = World(services=["intake"], config=cfg, keys=KEYS)
    try:
        ev = json.dumps(contact(id="sec-lock")).encode()
        for key in ("guess-1", "guess-2", "guess-3"):
            refused(w, 401, "POST", "/v1/events", ev, key=key)
        headers, parsed = refused(w, 429, "POST", "/v1/events", ev, key="guess-4")
        assert int(headers["retry-after"]) >= 1, headers
        assert "too many failed authentications" in parsed["error"], parsed
        refused(w, 429, "GET", "/v1/customers/SEC-1", key=READER)
        assert http(w, "GET", "/healthz")[0] == 200
        # one failure a second: a token back within about a second
        wait_until(lambda: http(w, "GET", "/v1/customers/SEC-1", key=READER)[0] != 429,
                   5, interval=0.2, what="the address may try again")
        status, _, parsed = http(w, "POST", "/v1/events", ev, key=WRITER)
        assert status == 202, parsed
    finally:
        assert w.close()


def check_log(w, wanted):
    """Refusals are logged by integration name; no key or secret ever is."""
    log = w.log("intake")
    for secret in SECRETS:
        assert secret not in log, "a key or secret in intake's log"
    for line in wanted:
        assert line in log, "not logged: %s" % line


# ---- signatures and replays ---------------------------------------------


def test_signatures_and_replays():
    w = world()
    try:
        body = json.dumps(contact(id="signed-1")).encode()
        good = sign(body)
        status, _, parsed = http(w, "POST", "/v1/events", body, key=SIGNER, headers=good)
        assert status == 202 and parsed["accepted"] == ["signed-1"], (status, parsed)

        # the very same request again: a replay
        _, parsed = refused(w, 401, "POST", "/v1/events", body, key=SIGNER, headers=good)
        assert "replay" in parsed["error"], parsed
        # ... even with a new event id nobody has seen: the MAC is what counts
        other = json.dumps(contact(id="signed-2")).encode()
        tampered_body = refused(w, 401, "POST", "/v1/events", other, key=SIGNER,
                                headers=good)[1]
        assert "does not match" in tampered_body["error"], tampered_body
        # a tampered signature
        bad = dict(sign(other))
        last = bad["X-TP-Signature"][-1]
        bad["X-TP-Signature"] = bad["X-TP-Signature"][:-1] + ("0" if last != "0" else "1")
        _, parsed = refused(w, 401, "POST", "/v1/events", other, key=SIGNER, headers=bad)
        assert "does not match" in parsed["error"], parsed
        # signed with another secret
        refused(w, 401, "POST", "/v1/events", other, key=SIGNER,
                headers=sign(other, secret="guessed"))
        # the timestamp moved, the MAC kept
        moved = dict(sign(other))
        moved["X-TP-Timestamp"] = str(int(moved["X-TP-Timestamp"]) + 1)
        refused(w, 401, "POST", "/v1/events", other, key=SIGNER, headers=moved)
        # stale and future timestamps, correctly signed: the window is 60 s
        _, parsed = refused(w, 401, "POST", "/v1/events", other, key=SIGNER,
                            headers=sign(other, ts=int(time.time()) - 120))
        assert "stale" in parsed["error"], parsed
        _, parsed = refused(w, 401, "POST", "/v1/events", other, key=SIGNER,
                            headers=sign(other, ts=int(time.time()) + 120))
        assert "future" in parsed["error"], parsed
        # missing or malformed headers
        _, parsed = refused(w, 401, "POST", "/v1/events", other, key=SIGNER)
        assert "X-TP-Timestamp" in parsed["error"], parsed
        _, parsed = refused(w, 401, "POST", "/v1/events", other, key=SIGNER,
                            headers={"X-TP-Timestamp": str(int(time.time()))})
        assert "X-TP-Signature" in parsed["error"], parsed
        for ts in ("yesterday", "-5", "1.5e9"):
            refused(w, 401, "POST", "/v1/events", other, key=SIGNER,
                    headers={"X-TP-Timestamp": ts,
                             "X-TP-Signature": sign(other)["X-TP-Signature"]})
        refused(w, 401, "POST", "/v1/events", other, key=SIGNER,
                headers={"X-TP-Timestamp": str(int(time.time())),
                         "X-TP-Signature": "sha256=abc"})
        # a signed integration's reads need no signature (the MAC covers no path)
        status, _, _ = http(w, "GET", "/v1/customers/SEC-1", key=SIGNER)
        assert status in (200, 404), status

        # a fresh signature of the second event goes through, once
        fresh = sign(other)
        status, _, parsed = http(w, "POST", "/v1/events", other, key=SIGNER, headers=fresh)
        assert status == 202 and parsed["accepted"] == ["signed-2"], (status, parsed)
        refused(w, 401, "POST", "/v1/events", other, key=SIGNER, headers=fresh)

        # a second intake instance shares the memory of signatures (Redis):
        # a replay sent there is refused too
        port2 = free_port()
        env = {"TP_INTAKE_PORT": str(port2)}
        for name in ("ingress", "scoring", "scheduler", "notifier", "ticketing"):
            env["TP_BUS_%s_ENDPOINT" % name.upper()] = "ipc://%s/%s-2.sock" % (w.dir, name)
        w.start("intake", "intake-2", env=env)
        # listening is not yet connected to Redis (slow under ASan)
        wait_until(lambda: (http(w, "GET", "/healthz", port=port2)[2] or {}).get("redis")
                   == "up", 15, what="intake-2 connected to redis")
        third = json.dumps(contact(id="signed-3")).encode()
        h3 = sign(third)
        status, _, parsed = http(w, "POST", "/v1/events", third, key=SIGNER, headers=h3)
        assert status == 202, (status, parsed)
        before = snapshot(w)
        status, _, parsed = http(w, "POST", "/v1/events", third, key=SIGNER, headers=h3,
                                 port=port2)
        assert status == 401 and "replay" in parsed["error"], (status, parsed)
        assert snapshot(w) == before
        check_log(w, ["integration signer: replayed signature refused",
                      "integration signer: signature refused: X-TP-Timestamp: stale"])
    finally:
        assert w.close()


def test_signed_request_refused_or_503_can_be_sent_again():
    """A signature is remembered only for a request that was journaled: a
    signed request refused by the journal (400, unknown ticket) or answered
    503 while Redis is down leaves nothing behind, and the very same bytes
    go through once the cause is gone."""
    w = world()
    try:
        update = {"type": "ticket.updated", "ts": now_ms(), "src": "api",
                  "id": "upd-later",
                  "data": {"ticket": "T-LATER", "action": "comment", "agent": "ag-1"}}
        body = json.dumps(update).encode()
        h = sign(body)
        before = snapshot(w)
        status, _, parsed = http(w, "POST", "/v1/events", body, key=SIGNER, headers=h)
        assert status == 400 and parsed["field"] == "data.ticket", (status, parsed)
        # the signature is forgotten right after the answer (fire and forget)
        wait_until(lambda: snapshot(w) == before, 5, what="nothing left in Redis")

        ev = json.dumps(contact(id="during-outage")).encode()
        h = sign(ev)
        w.redis.close()
        w.redis_proc.kill()
        w.redis_proc.wait(10)
        status, headers, parsed = http(w, "POST", "/v1/events", ev, key=SIGNER, headers=h)
        assert status == 503 and headers.get("retry-after"), (status, parsed)
        w._start_redis()
        w.redis = Redis(w.redis_port)
        wait_until(w._healthy, 15, what="intake reconnected to redis")
        status, _, parsed = http(w, "POST", "/v1/events", ev, key=SIGNER, headers=h)
        assert status == 202 and parsed["accepted"] == ["during-outage"], (status, parsed)
        status, _, parsed = http(w, "POST", "/v1/events", ev, key=SIGNER, headers=h)
        assert status == 401 and "replay" in parsed["error"], (status, parsed)
    finally:
        assert w.close()


# ---- rate limit ------------------------------------------------------------


def test_rate_limit_429():
    w = world()
    try:
        # burst 2, then one every 2 s (slow enough for a loaded machine)
        for _ in range(2):
            status, _, _ = http(w, "GET", "/v1/customers/NOBODY-1", key=LIMITED)
            assert status == 404, status
        headers, parsed = refused(w, 429, "GET", "/v1/customers/NOBODY-1", key=LIMITED)
        assert int(headers["retry-after"]) >= 1, headers
        headers, _ = refused(w, 429, "POST", "/v1/events",
                             json.dumps(contact(id="limited-1")).encode(), key=LIMITED)
        assert headers.get("retry-after"), headers
        # others are not held back by it
        status, _, _ = http(w, "POST", "/v1/events", json.dumps(contact()).encode(),
                            key=WRITER)
        assert status == 202, status
        # a token comes back within Retry-After
        time.sleep(int(headers["retry-after"]) + 0.1)
        status, _, parsed = http(w, "POST", "/v1/events",
                                 json.dumps(contact(id="limited-1")).encode(), key=LIMITED)
        assert status == 202 and parsed["accepted"] == ["limited-1"], (status, parsed)
    finally:
        assert w.close()


# ---- sizes -----------------------------------------------------------------


def test_oversized_header_and_body():
    w = world()
    try:
        auth = b"Authorization: Bearer " + WRITER.encode() + b"\r\n"
        body = json.dumps(contact(id="big-head")).encode()
        before = snapshot(w)
        status, _ = raw_exchange(
            w, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth +
            b"X-Padding: " + b"a" * 9000 + b"\r\nContent-Length: %d\r\n\r\n" % len(body) +
            body)
        assert status == 431, status
        # many small headers add up the same
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(300))
        status, _ = raw_exchange(w, b"GET /v1/customers/SEC-1 HTTP/1.1\r\nHost: x\r\n" +
                                 auth + many + b"\r\n")
        assert status == 431, status
        # a long URL too
        status, _ = raw_exchange(w, b"GET /v1/customers/" + b"A" * 9000 +
                                 b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        assert status == 431, status
        # a body announced over 1 MiB is refused before it is sent
        status, _ = raw_exchange(w, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth +
                                 b"Content-Length: 2000000\r\n\r\n")
        assert status == 413, status
        assert snapshot(w) == before
    finally:
        assert w.close()


# ---- slow clients ------------------------------------------------------------


def test_slowloris_headers_and_body():
    w = world()
    try:
        before = snapshot(w)
        # headers trickling a line every 0.3 s: 408 once header_timeout (1 s) is up
        s = socket.create_connection(("127.0.0.1", w.http_port), timeout=10)
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
        answer, took = trickle_until_answer(
            s, [b"X-Slow-%d: 1\r\n" % i for i in range(30)], 0.3)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert 0.7 <= took < 3.5, took

        # the body trickling a byte every 0.3 s: 408 once body_timeout (2 s) is
        # up, counted from the end of the headers, not cut at header_timeout
        body = json.dumps(contact(id="slow-body")).encode()
        s = socket.create_connection(("127.0.0.1", w.http_port), timeout=10)
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                  WRITER.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        answer, took = trickle_until_answer(s, [body[i:i + 1] for i in range(len(body))],
                                            0.3)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert 1.6 <= took < 4.5, took

        # a connection that sends nothing is closed after header_timeout
        s = socket.create_connection(("127.0.0.1", w.http_port), timeout=10)
        start = time.time()
        assert s.recv(100) == b""
        assert 0.7 <= time.time() - start < 3.5
        s.close()

        # an idle keep-alive connection is closed after idle_timeout (1.5 s)
        s = socket.create_connection(("127.0.0.1", w.http_port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        start = time.time()
        read_to_eof(s)
        assert 1.2 <= time.time() - start < 4, time.time() - start
        s.close()
        assert snapshot(w) == before
        assert http(w, "GET", "/healthz")[0] == 200  # still serving
    finally:
        assert w.close()


# ---- parser abuse ------------------------------------------------------------


def test_hostile_bodies_400():
    w = world()
    try:
        assert http(w, "POST", "/v1/events", json.dumps(contact()).encode(),
                    key=WRITER)[0] == 202
        good = json.dumps(contact(id="hostile")).encode()
        bodies = {
            "invalid UTF-8 in a value": good.replace(b'"SEC-1"', b'"SEC-\xff"'),
            "invalid UTF-8 in a key": good.replace(b'"outcome"', b'"out\xc3come"'),
            "overlong UTF-8": good.replace(b'"reached"', b'"\xc0\xafreached"'),
            "UTF-16 surrogate": good.replace(b'"reached"', b'"\xed\xa0\x80"'),
            "a NUL escape": good.replace(b'"SEC-1"', b'"SEC\\u0000-1"'),
            "deep nesting": good[:-1] + b',"extra":' + b"[" * 100000 + b"]" * 100000 + b"}",
            "deep objects": good[:-1] + b',"extra":' + b'{"a":' * 5000 + b"1" +
                            b"}" * 5000 + b"}",
            "huge integer": good.replace(b'"ts": ', b'"ts": 123456789012345678901234567890'
                                         b', "x": '),
            "huge real": good.replace(b'"ts": ', b'"ts": 1e400, "x": '),
            "negative ts": good.replace(b'"ts": ', b'"ts": -1, "x": '),
            "NaN": good.replace(b'"ts": ', b'"ts": NaN, "x": '),
            "unknown type": good.replace(b'"contact.logged"', b'"contact.invented"'),
            "type of another case": good.replace(b'"contact.logged"', b'"Contact.Logged"'),
            "not JSON": b"\x00\x01\x02",
        }
        for what, body in bodies.items():
            assert body != good, what
            _, parsed = refused(w, 400, "POST", "/v1/events", body, key=WRITER)
            assert isinstance(parsed, dict) and parsed.get("error"), (what, parsed)
        # a huge number of events in a batch is refused as a whole, as is a
        # batch with one hostile event among good ones
        batch = {"events": [contact(id="b-%d" % i) for i in range(3)] +
                 [dict(contact(), customer="x" * 10000)]}
        _, parsed = refused(w, 400, "POST", "/v1/events", json.dumps(batch).encode(),
                            key=WRITER)
        assert parsed["field"].startswith("events[3]"), parsed
        # the same with a valid signature: refused for the body, not the MAC
        body = bodies["deep nesting"]
        _, parsed = refused(w, 400, "POST", "/v1/events", body, key=SIGNER,
                            headers=sign(body))
        # intake is still up and well
        status, _, parsed = http(w, "POST", "/v1/events", good, key=WRITER)
        assert status == 202, (status, parsed)
    finally:
        assert w.close()


def test_bad_keys_file_stops_intake_naming_the_line():
    """A keys file intake cannot use stops it at start, naming file:line and
    the setting at fault, and never the key."""
    bad = KEYS.replace("scopes = customers:read, tickets:read",
                       "scopes = customers:read, tickets:raed")
    w = World(services=[], config=CONFIG, keys=bad)
    try:
        try:
            w.start("intake")
            raise AssertionError("intake started with a bad keys file")
        except AssertionError as e:
            if "exited" not in str(e):
                raise
        proc = w.procs.pop("intake")
        assert proc.wait(10) == 1, proc.returncode
        log = w.log("intake")
        line = bad.split("\n").index("scopes = customers:read, tickets:raed") + 1
        want = "%s:%d: [reader]: scopes: unknown scope 'tickets:raed'" % (w.keys_path, line)
        assert want in log, log
        assert "reader-key-0123456789" not in log
    finally:
        assert w.close()


if __name__ == "__main__":
    run([test_keys_and_scopes,
         test_unknown_key_refused_before_its_body,
         test_failed_authentications_lock_the_address_out,
         test_signatures_and_replays,
         test_signed_request_refused_or_503_can_be_sent_again,
         test_rate_limit_429,
         test_oversized_header_and_body,
         test_slowloris_headers_and_body,
         test_hostile_bodies_400,
         test_bad_keys_file_stops_intake_naming_the_line])
