"""Real local receivers for Keel's play deliveries, for the CLI tests.

Starts an SMTP server (aiosmtpd) and an HTTP webhook receiver that verifies
Standard Webhooks signatures with the `standardwebhooks` package. Prints
`ready <smtp port> <http port>`, then one JSON line per message received.
The receiver answers 500 to the first `FAIL_FIRST` webhook attempts, so the
sender's retries are exercised.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook

SECRET = os.environ["SINK_SECRET"]
FAIL_FIRST = int(os.environ.get("FAIL_FIRST", "0"))
lock = threading.Lock()
attempts = {"n": 0}


def emit(record):
    with lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


class Smtp:
    async def handle_DATA(self, server, session, envelope):
        text = envelope.content.decode("utf-8", "replace")
        head, _, body = text.partition("\r\n\r\n")
        subject = next(
            (l[len("Subject: "):] for l in head.split("\r\n") if l.startswith("Subject: ")), ""
        )
        emit({"kind": "email", "from": envelope.mail_from, "to": envelope.rcpt_tos,
              "subject": subject, "body": body})
        return "250 Message accepted"


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        with lock:
            attempts["n"] += 1
            n = attempts["n"]
        if n <= FAIL_FIRST:
            emit({"kind": "webhook_refused", "attempt": n})
            self.send_response(500)
            self.end_headers()
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = Webhook(SECRET).verify(body, headers)
            emit({"kind": "webhook", "id": headers.get("webhook-id"), "payload": payload})
            self.send_response(204)
        except Exception as e:  # a bad signature is a test failure the test reads
            emit({"kind": "webhook_bad_signature", "error": str(e)})
            self.send_response(400)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


smtp_port = free_port()
smtp = Controller(Smtp(), hostname="127.0.0.1", port=smtp_port)
smtp.start()
http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=http.serve_forever, daemon=True).start()
print(f"ready {smtp_port} {http.server_address[1]}", flush=True)
sys.stdin.read()  # run until the test closes stdin
smtp.stop()
