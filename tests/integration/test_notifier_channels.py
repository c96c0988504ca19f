"""The notifier's channels against real servers: email through postfix's
smtp-sink on loopback (the test reads the messages it wrote), webhooks to a
real HTTP receiver that checks the signature the way README tells a
receiver to; a mail server down for a while (retries until it is back), a
permanent refusal (the dead-letter set, replayed once by tpctl deadletter), a
redelivered event (one message), quiet hours (R-CAL-2) and the
per-customer cap (R-CAD-3)."""
import hashlib
import hmac
import os
import subprocess
import time

from tp_harness import (BUILD, SmtpSink, World, ckey, dkey, now_ms, run, shard, skey,
                        skeys, ukey, wait_until)

SECRET = "s3cret-for-tests"


def users_file(path, **extra):
    """rep-e: email + webhook in Chinese; mgr-e: rep-e's manager."""
    with open(path, "w") as f:
        f.write("[user.rep-e]\nname = 王伟\nchannels = inbox,email,webhook\n"
                "email = wang@example.com\nlang = zh-CN\ntime_zone = Asia/Shanghai\n"
                "manager = mgr-e\n")
        f.write("[user.mgr-e]\nname = Zhou\nchannels = inbox,email\n"
                "email = zhou@example.com\nlang = en\n")
        for uid, keys in extra.items():
            f.write("[user.%s]\n" % uid)
            for k, v in keys.items():
                f.write("%s = %s\n" % (k, v))
    return path


def world(sink, users, **notifier):
    cfg = {"mail_from": "touchpoint@example.com", "mail_from_name": "Touchpoint 提醒",
           "smtp_url": sink.url if sink else "", "users": users,
           "webhook_secret": SECRET, "breaker_failures": "0"}
    cfg.update(notifier)
    return World({"notifier": cfg}, services=["intake", "notifier"])


def reminder(ev_id, owner="rep-e", customer="MAIL-1", rule="R-TOUCH-1", **data):
    d = {"reminder": customer + "|" + rule, "rule": rule, "owner": owner,
         "due_at": now_ms(), "text": "给客户打电话"}
    d.update(data)
    return {"id": ev_id, "type": "reminder.due", "ts": now_ms(), "src": "scheduler",
            "customer": customer, "data": d}


_tmp_dirs = []


def _cleanup():
    import shutil
    for d in _tmp_dirs:
        shutil.rmtree(d, ignore_errors=True)


import atexit  # noqa: E402
atexit.register(_cleanup)


def tmp_users(**extra):
    import tempfile
    d = tempfile.mkdtemp(prefix="tp-users-")
    _tmp_dirs.append(d)
    return users_file(os.path.join(d, "users.ini"), **extra)


def verify_signature(req):
    """README's recipe: HMAC-SHA256 over "<timestamp>.<raw body>" with the
    shared secret, hex, compared in constant time; a stale timestamp is
    refused."""
    ts = req["headers"]["X-Touchpoint-Timestamp"]
    sig = req["headers"]["X-Touchpoint-Signature"]
    assert sig.startswith("v1="), sig
    mac = hmac.new(SECRET.encode(), ts.encode() + b"." + req["body"], hashlib.sha256)
    assert hmac.compare_digest(sig[3:], mac.hexdigest()), "bad signature"
    assert abs(time.time() - int(ts)) < 300, "stale timestamp"


def test_email_and_signed_webhook():
    sink = SmtpSink()
    w = world(sink, tmp_users())
    try:
        assert w.post(reminder("mail-1"))[0] == 202
        wait_until(lambda: len(sink.messages()) >= 1 and w.receiver.received(), 15,
                   what="the email and the webhook")
        m = sink.messages()[0]
        assert m["To"] == "<wang@example.com>" or "wang@example.com" in m["To"], m["To"]
        assert "给客户打电话" in str(m["Subject"]), m["Subject"]  # RFC 2047, decoded
        assert m["Message-ID"].startswith("<tp.") and m["Message-ID"].endswith("@example.com>")
        assert m["X-Touchpoint-Delivery"] == "mail-1/email/rep-e"
        assert m.get_content_type() == "multipart/alternative"
        parts = {p.get_content_type(): p.get_content() for p in m.iter_parts()}
        assert "王伟" in parts["text/plain"] and "给客户打电话" in parts["text/plain"]
        assert "<b>" in parts["text/html"]
        assert "Touchpoint" in str(m["From"])

        req = w.receiver.received()[0]
        verify_signature(req)
        assert req["headers"]["Idempotency-Key"] == "mail-1/webhook/rep-e"
        import json
        body = json.loads(req["body"])
        assert body["delivery"] == "mail-1/webhook/rep-e" and body["lang"] == "zh-CN"
        wait_until(lambda: len(w.journal("notification.sent")) == 2, 10,
                   what="notification.sent for both channels")
    finally:
        assert w.close()
        sink.close()


def test_mail_server_down_then_back():
    sink = SmtpSink()
    sink.stop()  # down before the first attempt
    w = world(sink, tmp_users(), max_attempts="30")
    try:
        for i in range(3):
            assert w.post(reminder("down-%d" % i, customer="DOWN-%d" % i))[0] == 202
        wait_until(lambda: "attempt 2 failed" in w.log("notifier"), 15,
                   what="failed attempts while the server is down")
        sink.start()
        wait_until(lambda: len(sink.messages()) >= 3, 20, what="all three after recovery")
        time.sleep(1.5)
        ids = sorted(m["X-Touchpoint-Delivery"] for m in sink.messages())
        assert ids == ["down-%d/email/rep-e" % i for i in range(3)], ids
        for i in range(3):
            d = w.redis.hgetall(dkey("down-%d/email/rep-e" % i))
            assert d["status"] == "sent" and int(d["attempts"]) >= 2, d
    finally:
        assert w.close()
        sink.close()


def test_circuit_breaker_pauses_a_channel_that_is_down():
    sink = SmtpSink()
    sink.stop()
    w = world(sink, tmp_users(), breaker_failures="2", breaker_cooldown="3s",
              max_attempts="30")
    try:
        for i in range(4):
            assert w.post(reminder("brk-%d" % i, customer="BRK-%d" % i))[0] == 202
        wait_until(lambda: "channel email: 2 failures in a row" in w.log("notifier"), 10,
                   what="the breaker opening")
        time.sleep(1)  # open: nothing is tried, no attempt is spent

        def attempts():
            return sum(int(w.redis.hgetall(dkey("brk-%d/email/rep-e" % i))
                           .get("attempts", 0)) for i in range(4))
        spent = attempts()
        time.sleep(1)
        assert attempts() == spent, (spent, attempts())
        assert spent <= 4, spent  # the four first tries at most, then waiting
        sink.start()
        wait_until(lambda: len(sink.messages()) == 4, 20, what="all four after the cooldown")
    finally:
        assert w.close()
        sink.close()


def test_permanent_refusal_dead_letter_and_replay_once():
    sink = SmtpSink(args=["-f", "RCPT", "-B", "550 5.1.1 no such user"])
    w = world(sink, tmp_users())
    try:
        assert w.post(reminder("dead-1"))[0] == 202
        dead = "dead-1/email/rep-e"
        wait_until(lambda: w.redis("ZSCORE", skey("rep-e", "deadletter"), dead), 15,
                   what="the dead-letter entry")
        d = w.redis.hgetall(dkey(dead))
        assert d["status"] == "failed" and d["attempts"] == "1", d  # no retry on 550
        assert "550" in d["last_error"], d
        wait_until(lambda: w.journal("notification.failed"), 10, what="notification.failed")
        tool = os.path.join(BUILD, "tools", "tpctl")
        out = subprocess.run([tool, "-c", w.config_path, "deadletter", "list"],
                             capture_output=True, text=True, check=True).stdout
        assert dead in out and "550" in out, out

        sink.stop()
        sink.start()  # the mailbox exists now
        for _ in range(2):  # replaying twice sends once
            subprocess.run([tool, "-c", w.config_path, "deadletter", "replay", dead],
                           capture_output=True)
        wait_until(lambda: sink.messages(), 10, what="the replayed message")
        time.sleep(1.5)
        assert len(sink.messages()) == 1
        assert w.redis.hgetall(dkey(dead))["status"] == "sent"
        assert sum(w.redis("ZCARD", k) for k in skeys("deadletter")) == 0
    finally:
        assert w.close()
        sink.close()


def test_redelivered_event_sends_one_message():
    sink = SmtpSink()
    w = world(sink, tmp_users())
    try:
        for _ in range(3):
            assert w.post(reminder("twice-1"))[0] == 202
        wait_until(lambda: sink.messages() and w.receiver.received(), 10, what="delivery")
        time.sleep(2.5)  # past the reconcile lag: the journal walk sees it again
        assert len(sink.messages()) == 1
        assert len(w.receiver.received()) == 1
    finally:
        assert w.close()
        sink.close()


def test_quiet_hours_hold_non_urgent_and_pass_urgent():
    # a quiet window around the present, in UTC
    t = time.gmtime()
    start = (t.tm_hour * 60 + t.tm_min - 60) % 1440
    end = (t.tm_hour * 60 + t.tm_min + 60) % 1440
    window = "%02d:%02d-%02d:%02d" % (start // 60, start % 60, end // 60, end % 60)
    sink = SmtpSink()
    users = tmp_users(**{"rep-q": {"channels": "inbox,email", "email": "q@example.com",
                                   "lang": "en", "time_zone": "UTC",
                                   "quiet_hours": window}})
    w = world(sink, users)
    try:
        assert w.post(reminder("quiet-1", owner="rep-q"))[0] == 202
        assert w.post(reminder("quiet-2", owner="rep-q", urgent=True))[0] == 202
        wait_until(lambda: sink.messages(), 10, what="the urgent message")
        time.sleep(1.5)
        assert [m["X-Touchpoint-Delivery"] for m in sink.messages()] == ["quiet-2/email/rep-q"]
        held = w.redis("ZSCORE", skey("rep-q", "deliveries:due"), "quiet-1/email/rep-q")
        assert held and int(held) > now_ms() + 50 * 60 * 1000, held  # the window's end
        s, inbox = w.request("GET", "/v1/inbox/rep-q")
        assert len(inbox["items"]) == 2  # the in-app inbox is silent: both there
    finally:
        assert w.close()
        sink.close()


def test_customer_cap_and_manager_escalation():
    sink = SmtpSink()
    w = world(sink, tmp_users(), customer_rules="R-DAYS-1", customer_cap="1",
              customer_cap_period="1h", customer_lang="en",
              escalate="sla.breached,customer.at_risk")
    try:
        w.redis("HSET", ckey("CAP-1", "profile"), "name", "Cap Ltd", "contact_name",
                "Ms Li", "contact_email", "li@cap.example")
        for i in range(3):
            assert w.post(reminder("greet-%d" % i, customer="CAP-1", rule="R-DAYS-1"))[0] == 202
        wait_until(lambda: len([m for m in sink.messages()
                                if "wang@" in m["To"]]) == 3, 15, what="the owner's three")
        time.sleep(1)
        to_customer = [m for m in sink.messages() if "li@cap.example" in m["To"]]
        assert len(to_customer) == 1, [m["To"] for m in sink.messages()]  # R-CAD-3
        assert "Ms Li" in to_customer[0].get_body(("plain",)).get_content()
        capped = [w.redis.hgetall(dkey("greet-%d/email/contact" % i, "CAP-1"))["status"]
                  for i in range(3)]
        assert sorted(capped) == ["capped", "capped", "sent"], capped
        # the contact's part (deliveries, cap counter) lies in the customer's
        # shard, not the owner's: recorded by a script of its own, once
        assert shard("CAP-1") != shard("rep-e")
        assert all(w.redis("EXISTS", skey("CAP-1", "done:notifier:greet-%d" % i)) == 1
                   for i in range(3))
        hour = now_ms() // 3600000  # the cap window (1h) now, or the one before
        assert any(w.redis("EXISTS", ckey("CAP-1", "contact_cap:%d" % n)) for n in (hour, hour - 1))

        # an escalating kind reaches the owner's manager too
        sla = {"id": "sla-1", "type": "sla.breached", "ts": now_ms(), "src": "ticketing",
               "customer": "CAP-1",
               "data": {"ticket": "T-1", "target": "resolution", "priority": "high",
                        "deadline": now_ms(), "owner": "rep-e", "title": "down"}}
        assert w.post(sla)[0] == 202
        wait_until(lambda: any("zhou@" in m["To"] for m in sink.messages()), 10,
                   what="the manager's copy")
        m = [m for m in sink.messages() if "zhou@" in m["To"]][0]
        assert "SLA breached" in str(m["Subject"])  # mgr-e reads English
    finally:
        assert w.close()
        sink.close()


def test_crash_mid_send_repeats_only_that_delivery_with_its_id():
    sink = SmtpSink()
    w = world(sink, tmp_users())
    try:
        assert w.post(reminder("crash-a"))[0] == 202
        wait_until(lambda: len(sink.messages()) == 1, 10, what="the first message")
        sink.stop()
        sink.start(["-w", "3"])  # slow to answer DATA: the send hangs
        assert w.post(reminder("crash-b", customer="CRASH-2"))[0] == 202
        wait_until(lambda: w.redis("EXISTS", dkey("crash-b/email/rep-e")), 5,
                   what="crash-b recorded")
        time.sleep(1)  # mid-send
        w.kill("notifier")  # SIGKILL
        sink.stop()
        sink.start()
        w.start("notifier")  # its claim expires; the same delivery again
        wait_until(lambda: any(m["X-Touchpoint-Delivery"] == "crash-b/email/rep-e"
                               for m in sink.messages()), 20, what="crash-b after restart")
        time.sleep(2)
        msgs = sink.messages()
        a = [m for m in msgs if m["X-Touchpoint-Delivery"] == "crash-a/email/rep-e"]
        b = [m for m in msgs if m["X-Touchpoint-Delivery"] == "crash-b/email/rep-e"]
        assert len(a) == 1, len(a)  # nothing else repeats
        assert 1 <= len(b) <= 2 and len({m["Message-ID"] for m in b}) == 1, \
            [m["Message-ID"] for m in b]
        assert w.redis.hgetall(dkey("crash-b/email/rep-e"))["status"] == "sent"
    finally:
        assert w.close()
        sink.close()


def test_digest_folds_non_urgent_reminders():
    sink = SmtpSink()
    users = tmp_users(**{"rep-d": {"channels": "inbox,email", "email": "d@example.com",
                                   "lang": "en", "time_zone": "UTC", "digest": "18:00"}})
    w = world(sink, users)
    try:
        for i in range(3):
            assert w.post(reminder("dig-%d" % i, owner="rep-d", customer="DIG-%d" % i))[0] == 202
        assert w.post(reminder("dig-urgent", owner="rep-d", urgent=True))[0] == 202
        wait_until(lambda: sink.messages(), 10, what="the urgent one, at once")
        wait_until(lambda: w.redis("LLEN", ukey("rep-d", "digest")) == 3, 10,
                   what="three lines waiting for the digest")
        at = int(w.redis("GET", ukey("rep-d", "digest:at")))
        assert time.gmtime(at / 1000).tm_hour == 18 and at > now_ms(), at
        assert [m["X-Touchpoint-Delivery"] for m in sink.messages()] == \
            ["dig-urgent/email/rep-d"]
        # time passes: the digest falls due
        w.redis("ZADD", skey("rep-d", "digest:due"), str(now_ms()), "rep-d")
        wait_until(lambda: len(sink.messages()) == 2, 10, what="the digest")
        time.sleep(1)
        assert len(sink.messages()) == 2
        d = sink.messages()[1]
        assert d["X-Touchpoint-Delivery"] == "digest:%d/email/rep-d" % at
        body = d.get_body(("plain",)).get_content()
        assert "3 waiting" in str(d["Subject"]), d["Subject"]
        for i in range(3):
            assert "DIG-%d" % i in body, body
        assert w.redis("LLEN", ukey("rep-d", "digest")) == 0
        assert w.redis("ZCARD", skey("rep-d", "digest:due")) == 0
        s, inbox = w.request("GET", "/v1/inbox/rep-d")
        assert len(inbox["items"]) == 4  # the inbox has each one at once
    finally:
        assert w.close()
        sink.close()


def test_starttls_to_a_server_that_requires_it():
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="tp-tls-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", os.path.join(d, "key.pem"),
                    "-out", os.path.join(d, "cert.pem")], check=True, capture_output=True)
    from tp_harness import free_port
    port = free_port()
    server = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "starttls_server.py"),
         str(port), os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"), d],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = None
    try:
        assert server.stdout.readline().strip() == "ready", server.stderr.read()
        w = world(None, tmp_users(), smtp_url="smtp://127.0.0.1:%d/touchpoint.test" % port,
                  smtp_require_tls="true", smtp_verify_peer="false")
        assert w.post(reminder("tls-1"))[0] == 202

        def got():
            return [n for n in os.listdir(d) if n.endswith(".eml")]
        wait_until(got, 15, what="the message over STARTTLS")
        with open(os.path.join(d, got()[0]), "rb") as f:
            first = f.readline()
            raw = f.read()
        assert first.startswith(b"TLS: ('TLS"), first  # e.g. TLS_AES_256_GCM_SHA384
        assert b"X-Touchpoint-Delivery: tls-1/email/rep-e" in raw
    finally:
        if w:
            assert w.close()
        server.terminate()
        server.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def test_sms_gateway_and_the_timeline():
    users = tmp_users(**{"rep-s": {"channels": "inbox,sms", "phone": "+86 138-0000-1234",
                                   "lang": "en"}})
    w = World({"notifier": {"users": users, "breaker_failures": "0"}},
              services=["intake", "scoring", "notifier"])
    try:
        cfg = open(w.config_path).read().replace(
            "[notifier]\n", "[notifier]\nsms_url = %s/sms\n" % w.receiver.url.rsplit("/", 1)[0], 1)
        with open(w.config_path, "w") as f:
            f.write(cfg)
        w.kill("notifier")
        w.start("notifier")
        assert w.post(reminder("sms-1", owner="rep-s", customer="SMS-1"))[0] == 202
        wait_until(lambda: [r for r in w.receiver.received() if r["path"] == "/sms"], 10,
                   what="the SMS gateway request")
        req = [r for r in w.receiver.received() if r["path"] == "/sms"][0]
        import json
        body = json.loads(req["body"])
        assert body["to"] == "+8613800001234" and body["reference"] == "sms-1/sms/rep-s", body
        assert req["headers"]["Idempotency-Key"] == "sms-1/sms/rep-s"

        def on_timeline():
            entries = w.redis("XRANGE", ckey("SMS-1", "timeline"), "-", "+")
            lines = [dict(zip(e[1][::2], e[1][1::2])) for e in entries]
            return [l for l in lines if l.get("type") == "notification.sent"]
        wait_until(on_timeline, 10, what="notification.sent on the customer's timeline")
        assert "rep-s via sms" in on_timeline()[0]["summary"], on_timeline()
    finally:
        assert w.close()


def test_bad_template_stops_start_naming_file_and_line():
    import tempfile
    d = tempfile.mkdtemp(prefix="tp-tpl-")
    _tmp_dirs.append(d)
    src = os.path.join(os.environ.get("TP_SOURCE_DIR", "."), "deploy", "templates")
    for name in os.listdir(src):
        if not os.path.isfile(os.path.join(src, name)):
            continue
        with open(os.path.join(src, name), "rb") as f, open(os.path.join(d, name), "wb") as g:
            g.write(f.read())
    with open(os.path.join(d, "sla.breached.en.txt"), "w") as f:
        f.write("Subject: x\n\nline two\n{{title}} has no fallback\n")
    cfg = os.path.join(d, "t.ini")
    with open(cfg, "w") as f:
        f.write("[notifier]\ntemplates = %s\nmetrics_listen = off\n[redis]\nport = 1\n[bus]\ncurve = off\n" % d)
    p = subprocess.run([os.path.join(BUILD, "services", "notifier", "tp-notifier"), "-c", cfg],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "sla.breached.en.txt:4: {{title}}: optional" in p.stdout + p.stderr, p.stdout + p.stderr


if __name__ == "__main__":
    run([test_email_and_signed_webhook,
         test_mail_server_down_then_back,
         test_circuit_breaker_pauses_a_channel_that_is_down,
         test_permanent_refusal_dead_letter_and_replay_once,
         test_redelivered_event_sends_one_message,
         test_quiet_hours_hold_non_urgent_and_pass_urgent,
         test_customer_cap_and_manager_escalation,
         test_crash_mid_send_repeats_only_that_delivery_with_its_id,
         test_digest_folds_non_urgent_reminders,
         test_starttls_to_a_server_that_requires_it,
         test_sms_gateway_and_the_timeline,
         test_bad_template_stops_start_naming_file_and_line])
