"""An SMTP server on loopback that insists on STARTTLS (aiosmtpd, from
Debian's python3-aiosmtpd, run by Debian's /usr/bin/python3): refuses MAIL
before TLS, writes each message it accepts to <dir>/<n>.eml with a first
line "TLS: <cipher>". Used by test_notifier_channels.py.

    starttls_server.py PORT CERT KEY DIR"""
import asyncio
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller

port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)


class Handler:
    n = 0

    async def handle_DATA(self, server, session, envelope):
        Handler.n += 1
        cipher = session.ssl.get("cipher") if session.ssl else None
        path = os.path.join(out, "%d.eml" % Handler.n)
        with open(path + ".tmp", "wb") as f:
            f.write(b"TLS: %s\n" % str(cipher).encode())
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"


c = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
               require_starttls=True)
c.start()
print("ready", flush=True)
# until the test stops it (SIGTERM) or ^C
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
try:
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
finally:
    c.stop()
