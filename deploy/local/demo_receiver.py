"""A webhook receiver for the local demo: appends each POST as one JSON line
(delivery id, signature headers, body) to a log file and answers 200."""
import http.server
import json
import sys

port, path = int(sys.argv[1]), sys.argv[2]


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        with open(path, "a") as f:
            f.write(json.dumps({"idempotency_key": self.headers.get("Idempotency-Key"),
                                "body": parsed}, ensure_ascii=False) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
